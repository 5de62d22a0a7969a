#!/usr/bin/python3
"""Training-step throughput of PyTorch (Debian's python3-torch) for the models bench_nn times.

Times whole training steps (forward, cross-entropy, backward, momentum SGD) on synthetic data
(the speed does not depend on the values). With --clock cpu (the default) in CPU time of the
process, so that on a shared machine it measures the work done, like bench_nn's
samples_per_cpu_s; with --clock wall in elapsed time, like bench_nn's samples_per_s and like
torch_train.py (bench_train.sh compares cnn:cifar so, as installed: PyTorch's OpenBLAS may run
more threads than --threads, which helps it in wall time and costs it in CPU time). Prints one
key=value line per model, e.g.:

  /usr/bin/python3 tests/bench/torch_steps.py --model cnn:cifar --batch 64 --seconds 4
  impl=pytorch-1.13.0a0 model=cnn:cifar batch=64 threads=1 samples_per_cpu_s=2024
"""
import argparse
import time

import torch


def build(spec):
    nn = torch.nn
    if spec.startswith("mlp:"):
        sizes = [int(s) for s in spec[4:].split("-")]
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers), (sizes[0],)
    if spec == "cnn:lenet5":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10)), (1, 28, 28)
    if spec == "cnn:cifar":
        return nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(1024, 128), nn.ReLU(), nn.Linear(128, 10)), (3, 32, 32)
    raise SystemExit(f"unknown model {spec!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    a = ap.parse_args()
    clock = time.process_time if a.clock == "cpu" else time.perf_counter
    key = "samples_per_cpu_s" if a.clock == "cpu" else "samples_per_s"
    torch.manual_seed(1)
    torch.set_num_threads(a.threads)
    for spec in a.model or ["mlp:784-256-128-10", "cnn:lenet5", "cnn:cifar"]:
        model, shape = build(spec)
        x = torch.rand(4096, *shape)
        y = torch.randint(0, 10, (4096,))
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        lossf = torch.nn.CrossEntropyLoss()
        steps = 0

        def step():
            i = (steps * a.batch) % (4096 - a.batch)
            opt.zero_grad()
            lossf(model(x[i:i + a.batch]), y[i:i + a.batch]).backward()
            opt.step()

        for _ in range(5):
            step()
        c0 = clock()
        while clock() - c0 < a.seconds:
            step()
            steps += 1
        el = clock() - c0
        print(f"impl=pytorch-{torch.__version__} model={spec} batch={a.batch} "
              f"threads={a.threads} {key}={steps * a.batch / el:.0f}", flush=True)


if __name__ == "__main__":
    main()
