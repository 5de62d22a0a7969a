#!/usr/bin/python3
"""onnx_compare.py: check an ONNX file macc exported, and compare ONNX Runtime with macc.

    onnx_compare.py --model M.onnx --macc PRED.json --data idx:IMAGES[.gz] | csv:FILE
                    --ort-js ort_run.js --node-path DIR --work DIR [--rtol 1e-4]

1. onnx.checker.check_model (full check, with shape inference) on M.onnx; the producer must be
   macc and the metadata must name the spec, digest and round that PRED.json names.
2. The rows of the data are read as macc reads them (IDX pixels / 255 in float32; CSV cells as
   a double rounded to float32; a header line is skipped; the model's inputs are the first
   columns), run through ONNX Runtime (ort_run.js, the npm package onnxruntime-node), and
   compared with PRED.json (`macc-ctl --json predict DATA model M.onnx`):
   classification: the same class (arg-max) for every row, every probability within rtol of
   ONNX Runtime's, relative to itself (|macc - ort| <= rtol * max(|macc|, |ort|): a softmax
   output is accurate relative to itself, however small), and the logits within rtol relative
   to their row (|macc - ort| <= rtol * the row's largest |ort|: a logit near 0 is a sum of
   larger terms and is only as accurate as they are); regression: the values within rtol
   relative to their row likewise. The worst differences of both kinds are printed either way.
Exit status 0 when everything holds, 1 otherwise.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import onnx


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def read_idx_images(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        fail("%s: not an IDX ubyte file" % path)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    off = 4 + 4 * ndim
    n = dims[0]
    per = int(np.prod(dims[1:]))
    px = np.frombuffer(raw, dtype=np.uint8, count=n * per, offset=off).reshape(n, per)
    return px.astype(np.float32) / np.float32(255.0)


def read_csv(path, dim):
    rows = []
    for k, line in enumerate(open(path)):
        line = line.strip()
        if not line:
            continue
        cells = line.split(",")
        try:
            vals = [float(c) for c in cells[:dim]]
        except ValueError:
            if k == 0 and not rows:
                continue  # a header
            raise
        rows.append(vals)
    return np.array(rows, dtype=np.float64).astype(np.float32)


def worst(name, macc, ort, rtol, elementwise):
    """Largest relative difference (to the element or to its row); returns (ok, text)."""
    macc = np.asarray(macc, dtype=np.float64)
    ort = np.asarray(ort, dtype=np.float64)
    absd = np.abs(macc - ort)
    own = absd / np.maximum(np.maximum(np.abs(macc), np.abs(ort)), 1e-30)
    row = absd / np.maximum(np.max(np.abs(ort), axis=1, keepdims=True), 1e-30)
    rel = own if elementwise else row
    i = np.unravel_index(np.argmax(rel), rel.shape)
    text = ("%s: worst relative difference %.3g (to the %s; row %d, output %d: macc %.9g, "
            "ort %.9g); worst to itself %.3g, to its row %.3g, max abs %.3g"
            % (name, rel[i], "element" if elementwise else "row", i[0], i[1], macc[i], ort[i],
               np.max(own), np.max(row), np.max(absd)))
    return rel[i] <= rtol, text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--macc", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--ort-js", required=True)
    ap.add_argument("--node-path", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--rtol", type=float, default=1e-4)
    a = ap.parse_args()

    m = onnx.load(a.model)
    onnx.checker.check_model(m, full_check=True)
    meta = {p.key: p.value for p in m.metadata_props}
    pred = json.load(open(a.macc))
    if m.producer_name != "macc" or meta.get("macc.spec") != pred["model"] or \
            meta.get("macc.params_digest") != pred["digest"] or \
            int(meta.get("macc.round", -1)) != pred["round"]:
        fail("%s: producer/metadata %s do not match the predictions' %s"
             % (a.model, meta, {k: pred[k] for k in ("model", "digest", "round")}))
    shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim[1:]]
    dim = int(np.prod(shape))
    kind, path = a.data.split(":", 1)
    x = read_idx_images(path) if kind == "idx" else read_csv(path, dim)
    if x.shape[1] < dim or x.shape[0] != pred["rows"]:
        fail("data %s: %s rows of %s values; the predictions have %d rows, the model takes %d"
             % (path, x.shape[0], x.shape[1], pred["rows"], dim))
    x = np.ascontiguousarray(x[:, :dim])
    inp = os.path.join(a.work, "ort-in.f32")
    x.tofile(inp)
    prefix = os.path.join(a.work, "ort-out")
    env = dict(os.environ, NODE_PATH=a.node_path)
    subprocess.run(["node", a.ort_js, a.model, inp, str(x.shape[0]),
                    "x".join(str(s) for s in shape), prefix], check=True, env=env)
    k = pred["outputs"]

    def out(name):
        return np.fromfile(prefix + "." + name + ".f32", dtype=np.float32).reshape(-1, k)

    rows = pred["predictions"]
    ok = True
    if pred["task"] == "classification":
        probs, logits = out("probabilities"), out("logits")
        cls = np.array([r["class"] for r in rows])
        diff = np.nonzero(cls != np.argmax(probs, axis=1))[0]
        print("%s: %d rows, %d with another class than ONNX Runtime's" %
              (a.model, len(rows), len(diff)))
        if len(diff) > 0:
            ok = False
            print("  first: row %d, macc %d, ort %d" % (diff[0], cls[diff[0]],
                                                        np.argmax(probs[diff[0]])))
        for name, mine, theirs, elem in (
                ("probabilities", [r["probabilities"] for r in rows], probs, True),
                ("logits", [r["logits"] for r in rows], logits, False)):
            good, text = worst(name, mine, theirs, a.rtol, elem)
            print("  " + text)
            ok = ok and good
    else:
        good, text = worst("values", [r["values"] for r in rows], out("values"), a.rtol, False)
        print("%s: %d rows\n  %s" % (a.model, len(rows), text))
        ok = good
    if not ok:
        fail("%s: macc and ONNX Runtime differ beyond rtol %g" % (a.model, a.rtol))
    print("PASS: %s: onnx.checker ok, ONNX Runtime agrees with macc (rtol %g)" % (a.model, a.rtol))


if __name__ == "__main__":
    main()
