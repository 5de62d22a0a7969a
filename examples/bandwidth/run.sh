#!/bin/bash
# examples/bandwidth/run.sh - the bandwidth trade-off, measured with macc-sim.
#
# 8 agents train on Fashion-MNIST with dmsgd (the default algorithm) for each cell of
#   schedule {static, matching, exp-pairs} x compressor {none, bf16, int8, topk:0.1}
#   x local steps H {1, 4}
# and each run leaves OUT/NAME.kv (macc-sim's last key=value line: accuracy of the averaged
# model, rounds, bytes_per_agent, bytes_round_max_sum, comm_rounds, train_s) and OUT/NAME.csv
# (one row per epoch). Cells already done are skipped, so an interrupted grid resumes. Then
#   examples/bandwidth/table.sh OUT   markdown table with the simulated wall time on a link
#   examples/bandwidth/plot.sh OUT    accuracy against bytes per agent (gnuplot PNG)
#
# Graphs: static and matching run on the ring (matching: each round a random maximal matching
# of the ring, so an agent talks to at most one neighbour); exp-pairs needs the hypercube's
# edges, so it runs on the 3-cube of 8 agents (round r pairs j with j XOR 2^(r mod 3)).
# With compression, every agent sends its compressed difference to EVERY configured neighbour
# each round, also under matching / exp-pairs (only the mixing uses the round's partner):
# the public copies of CHOCO-gossip stay identical only if every holder sees every difference.
#
# An epoch is one pass over every agent's shard whatever H (macc-sim's default): H = 4 runs a
# quarter of the rounds of H = 1, each with 3 local steps and one gossip step.
# Every cell uses the same learning rate (MLP 0.05, LeNet-5 0.02), batch 64, momentum 0.9, seed,
# and each compressor's default gossip step (int8 and bf16 1, topk 0.2): nothing is tuned per cell.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: examples/bandwidth/run.sh [--model mlp|lenet5] [--epochs E] [--out DIR] [--sim PATH]
                                 [--threads T] [--quick]
  --model M     mlp (default: mlp:784-256-128-10) or lenet5 (cnn:lenet5)
  --epochs E    epochs per run (default 3)
  --out DIR     output directory (default: bandwidth-results)
  --sim PATH    macc-sim binary (default: $MACC_BUILD/src/sim/macc-sim, else macc-sim in PATH)
  --threads T   threads per macc-sim run (default: number of CPUs)
  --quick       smoke test: 2 epochs of 5 rounds, 500 test samples (a minute or two)
EOF
}

model=mlp
epochs=3
out=bandwidth-results
sim=
threads=$(nproc 2>/dev/null || echo 1)
quick=0
while [ $# -gt 0 ]; do
	case $1 in
	--model) model=${2:?--model needs a value}; shift 2 ;;
	--epochs) epochs=${2:?--epochs needs a value}; shift 2 ;;
	--out) out=${2:?--out needs a value}; shift 2 ;;
	--sim) sim=${2:?--sim needs a value}; shift 2 ;;
	--threads) threads=${2:?--threads needs a value}; shift 2 ;;
	--quick) quick=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
done

case $model in
mlp) spec=mlp:784-256-128-10; lr=0.05 ;;
lenet5) spec=cnn:lenet5; lr=0.02 ;;
*) echo "run.sh: --model must be mlp or lenet5, got '$model'" >&2; exit 2 ;;
esac

if [ -z "$sim" ]; then
	if [ -n "${MACC_BUILD:-}" ] && [ -x "$MACC_BUILD/src/sim/macc-sim" ]; then
		sim=$MACC_BUILD/src/sim/macc-sim
	else
		sim=$(command -v macc-sim) || {
			echo "run.sh: macc-sim not found (--sim)" >&2
			exit 2
		}
	fi
fi

mkdir -p "$out"
hyper=$out/hypercube8.txt
{
	echo "# the 3-cube on 8 agents: j - (j XOR 1), (j XOR 2), (j XOR 4)"
	for i in 0 1 2 3 4 5 6 7; do
		for b in 1 2 4; do
			j=$((i ^ b))
			if [ "$i" -lt "$j" ]; then
				echo "$i $j"
			fi
		done
	done
} >"$hyper"

extra=()
if [ "$quick" -eq 1 ]; then
	epochs=2
	extra=(--epoch-rounds 5 --eval-samples 500)
fi

for h in 1 4; do
	for sched in static matching exp-pairs; do
		for comp in none int8 bf16 topk:0.1; do
			topo=ring
			if [ "$sched" = exp-pairs ]; then
				topo=file:$hyper
			fi
			name=${model}_${sched}_${comp/:/}_h${h}
			if [ -s "$out/$name.kv" ] && [ -s "$out/$name.csv" ]; then
				continue
			fi
			echo "run.sh: $name" >&2
			if ! "$sim" --agents 8 --model "$spec" --lr "$lr" --batch 64 \
				--momentum 0.9 --algorithm dmsgd --topology "$topo" \
				--schedule "$sched" \
				--compress "$comp" --local-steps "$h" --epochs "$epochs" --seed 1 \
				--threads "$threads" --quiet "${extra[@]}" --csv "$out/$name.csv" \
				>"$out/$name.out" 2>"$out/$name.err"; then
				echo "run.sh: $name failed: $(tail -n 1 "$out/$name.err")" >&2
				continue
			fi
			tail -n 1 "$out/$name.out" >"$out/$name.kv"
		done
	done
done
echo "run.sh: done; now examples/bandwidth/table.sh $out" >&2
