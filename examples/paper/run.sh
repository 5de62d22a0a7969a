#!/bin/bash
# examples/paper/run.sh - reproduce the paper's kind of comparison with macc-sim.
#
# Runs the grid  algorithms x topologies x partitions x models x seeds  with 8 agents on
# Fashion-MNIST, one macc-sim process per cell, and leaves in OUT/ one CSV per run
# (MODEL_PARTITION_TOPOLOGY_ALGORITHM_sSEED.csv, one row per epoch) and the run's last key=value
# line (.kv). Cells already done (CSV and .kv present) are skipped, so an interrupted grid resumes.
# Then:  examples/paper/plot.sh OUT   (PNG plots)   and   examples/paper/table.sh OUT   (markdown).
#
# Full grid (default): {dmsgd, cdmsgd, cdmsgd-nesterov, cdsgd, dsgd, centralized}
#   x {full, ring, bipartite} x {iid, dirichlet:0.5} x {mlp:784-256-128-10, cnn:lenet5}
#   x seeds {1, 2, 3}, 10 epochs.  cdmsgd-nesterov is cdmsgd with --nesterov (the published
#   baseline's form, see macc-algorithms(7)); the table shows both.
# --quick: {dmsgd, cdmsgd, cdsgd, dsgd, centralized} x {ring, bipartite} x {iid, dirichlet:0.5},
#   MLP only, seeds 1 and 2 (40 runs), 3 tiny epochs of 10 rounds each, evaluated on 1000 test
#   samples: under a minute on 2 idle cores (mostly loading the data), for CI.
#
# An epoch here is one pass's worth of samples over the whole fleet, floor(60000 / (agents * 64))
# rounds (117 for 8 agents), for every partition: macc-sim's own default (the smallest shard's
# batches) would make Dirichlet epochs shorter and differ between seeds, and the comparison is
# meant at equal rounds.
#
# Every cell uses the same learning rate per model (0.05 MLP, 0.02 CNN), batch 64, momentum 0.9,
# Metropolis weights, and the same seeds: nothing is tuned per algorithm.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: examples/paper/run.sh [--quick] [--out DIR] [--sim PATH] [--threads T] [--epochs E]
                             [--seeds "1 2 3"] [--models "mlp cnn"] [--algorithms "..."]
                             [--topologies "..."] [--partitions "..."] [--agents N]
  --quick        reduced grid for CI (MLP, ring and bipartite, 2 seeds, 3 epochs of 10 rounds)
  --out DIR      output directory (default: paper-results)
  --sim PATH     macc-sim binary (default: $MACC_BUILD/src/sim/macc-sim, else macc-sim in PATH)
  --threads T    threads per macc-sim run (default: number of CPUs)
  --epochs E     epochs per run (default 10; --quick: 3)
  --seeds, --models (mlp, cnn), --algorithms, --topologies, --partitions: override the grid
EOF
}

quick=0
out=paper-results
sim=""
threads=$(nproc 2>/dev/null || echo 1)
epochs=""
seeds=""
models=""
algorithms=""
topologies=""
partitions=""
agents=8

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--out) out=${2:?--out needs a value}; shift ;;
	--sim) sim=${2:?--sim needs a value}; shift ;;
	--threads) threads=${2:?--threads needs a value}; shift ;;
	--epochs) epochs=${2:?--epochs needs a value}; shift ;;
	--seeds) seeds=${2:?--seeds needs a value}; shift ;;
	--models) models=${2:?--models needs a value}; shift ;;
	--algorithms) algorithms=${2:?--algorithms needs a value}; shift ;;
	--topologies) topologies=${2:?--topologies needs a value}; shift ;;
	--partitions) partitions=${2:?--partitions needs a value}; shift ;;
	--agents) agents=${2:?--agents needs a value}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

if [ -z "$sim" ]; then
	if [ -n "${MACC_BUILD:-}" ] && [ -x "$MACC_BUILD/src/sim/macc-sim" ]; then
		sim=$MACC_BUILD/src/sim/macc-sim
	else
		sim=$(command -v macc-sim || true)
	fi
fi
if [ -z "$sim" ] || [ ! -x "$sim" ]; then
	echo "run.sh: macc-sim not found (build it, or pass --sim PATH)" >&2
	exit 1
fi

: "${partitions:=iid dirichlet:0.5}"
extra=()
if [ "$quick" = 1 ]; then
	: "${algorithms:=dmsgd cdmsgd cdsgd dsgd centralized}"
	: "${topologies:=ring bipartite}"
	: "${epochs:=3}"
	: "${seeds:=1 2}"
	: "${models:=mlp}"
	extra=(--epoch-rounds 10 --eval-samples 1000)
else
	: "${algorithms:=dmsgd cdmsgd cdmsgd-nesterov cdsgd dsgd centralized}"
	: "${topologies:=full ring bipartite}"
	: "${epochs:=10}"
	: "${seeds:=1 2 3}"
	: "${models:=mlp cnn}"
	extra=(--epoch-rounds $((60000 / (agents * 64))))
fi

mkdir -p "$out"
ncells=0
for _m in $models; do for _p in $partitions; do for _t in $topologies; do
	for _a in $algorithms; do for _s in $seeds; do ncells=$((ncells + 1)); done; done
done; done; done

cell=0
start=$(date +%s)
for model in $models; do
	case "$model" in
	mlp) spec=mlp:784-256-128-10; lr=0.05 ;;
	cnn) spec=cnn:lenet5; lr=0.02 ;;
	*) echo "run.sh: unknown model '$model' (mlp, cnn)" >&2; exit 2 ;;
	esac
	for part in $partitions; do
		ptag=${part//:/}
		for topo in $topologies; do
			for alg in $algorithms; do
				flags=()
				case "$alg" in
				cdmsgd-nesterov) flags=(--algorithm cdmsgd --nesterov) ;;
				*) flags=(--algorithm "$alg") ;;
				esac
				for seed in $seeds; do
					cell=$((cell + 1))
					base="$out/${model}_${ptag}_${topo}_${alg}_s${seed}"
					if [ -s "$base.csv" ] && [ -s "$base.kv" ]; then
						continue
					fi
					printf '[%d/%d] %s %s %s %s seed %s\n' "$cell" "$ncells" \
						"$model" "$part" "$topo" "$alg" "$seed"
					if ! "$sim" --agents "$agents" --topology "$topo" \
						--weights metropolis "${flags[@]}" --partition "$part" \
						--model "$spec" --data fashion-mnist --epochs "$epochs" \
						--batch 64 --lr "$lr" --momentum 0.9 --seed "$seed" \
						--threads "$threads" --quiet "${extra[@]}" \
						--csv "$base.csv.tmp" >"$base.out" 2>"$base.err"; then
						echo "run.sh: run failed, see $base.err:" >&2
						tail -n 5 "$base.err" >&2
						exit 1
					fi
					# Rename the CSV to its own tag for cdmsgd-nesterov.
					sed "s/,cdmsgd,/,$alg,/" "$base.csv.tmp" >"$base.csv"
					rm -f "$base.csv.tmp"
					tail -n 1 "$base.out" >"$base.kv"
				done
			done
		done
	done
done
echo "run.sh: $ncells runs in $(($(date +%s) - start)) s, results in $out"
