#!/bin/bash
# bench_train.sh - single-agent training speed of macc against the PyTorch reference, in one run.
#
# For each model (mlp:784-256-128-10, cnn:lenet5) and thread count (1, 2) it trains one epoch of
# Fashion-MNIST with the same settings (batch 64, lr 0.05, momentum 0.9, seed 1) with
#   $MACC_BUILD/src/sim/macc-sim --agents 1 ...   (or tests/bench/bench_nn --train when macc-sim
#                                                  is not built)
#   /usr/bin/python3 $MACC_SRC/../shared/reference/torch_train.py ...
# and prints both samples/s (from the key=value summary line each prints last), the ratio
# macc / PyTorch and both test accuracies. Hosts differ and the machine may be shared, so only
# the ratio of runs made side by side means anything.
#
# Environment: MACC_BUILD, MACC_SRC (set by meson), BENCH_MODELS, BENCH_THREADS, BENCH_EPOCHS
# override the lists. Exit 77 (skipped) when the reference or the data is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MACC_SRC=${MACC_SRC:-$(cd "$here/../.." && pwd)}
MACC_BUILD=${MACC_BUILD:-$MACC_SRC/build}
ref=$MACC_SRC/../shared/reference/torch_train.py
python=/usr/bin/python3
models=${BENCH_MODELS:-"mlp:784-256-128-10 cnn:lenet5"}
threads_list=${BENCH_THREADS:-"1 2"}
epochs=${BENCH_EPOCHS:-1}
common=(--epochs "$epochs" --batch 64 --lr 0.05 --momentum 0.9 --seed 1)

if [[ ! -x $python || ! -f $ref ]]; then
	echo "bench_train: PyTorch reference $ref (or $python) not found; skipping"
	exit 77
fi

sim=$MACC_BUILD/src/sim/macc-sim
if [[ -x $sim ]]; then
	impl=macc-sim
else
	sim=$MACC_BUILD/tests/bench/bench_nn
	impl=bench_nn
	if [[ ! -x $sim ]]; then
		echo "bench_train: neither macc-sim nor bench_nn is built in $MACC_BUILD"
		exit 1
	fi
fi

# kv_value KEY LINE (ring-lib.sh): the value of KEY=... in a line of key=value pairs.
# shellcheck source=tests/bench/ring-lib.sh
. "$(dirname "$0")/ring-lib.sh"

run_macc() {
	local model=$1 threads=$2
	if [[ $impl == macc-sim ]]; then
		"$sim" --agents 1 --model "$model" --data fashion-mnist "${common[@]}" \
			--threads "$threads" --quiet
	else
		"$sim" --train "$model" "${common[@]}" --threads "$threads"
	fi
}

printf '%-20s %7s %12s %12s %7s %9s %9s\n' model threads macc_sps torch_sps ratio macc_acc \
	torch_acc
status=0
for model in $models; do
	for threads in $threads_list; do
		if ! mine=$(run_macc "$model" "$threads" | tail -n 1); then
			echo "bench_train: $impl failed for $model threads=$threads"
			status=1
			continue
		fi
		if ! theirs=$("$python" "$ref" --model "$model" "${common[@]}" \
			--threads "$threads" | tail -n 1); then
			echo "bench_train: torch_train.py failed for $model threads=$threads"
			status=1
			continue
		fi
		m_sps=$(kv_value samples_per_s "$mine")
		t_sps=$(kv_value samples_per_s "$theirs")
		m_acc=$(kv_value test_acc "$mine")
		t_acc=$(kv_value test_acc "$theirs")
		if [[ -z $m_sps || -z $t_sps ]]; then
			echo "bench_train: no samples_per_s in: '$mine' / '$theirs'"
			status=1
			continue
		fi
		ratio=$(awk -v a="$m_sps" -v b="$t_sps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
		printf '%-20s %7s %12s %12s %7s %9s %9s\n' "$model" "$threads" "$m_sps" "$t_sps" \
			"${ratio}x" "${m_acc:--}" "${t_acc:--}"
	done
done
echo "impl=$impl epochs=$epochs batch=64 (ratio = macc samples/s over PyTorch's, same run)"
exit "$status"
