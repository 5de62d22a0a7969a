#!/bin/bash
# bench_train.sh - single-agent training speed of macc against the PyTorch reference and
# against the sgemm limit, in one run (speed targets, "local training").
#
# For each model (mlp:784-256-128-10, cnn:lenet5) and thread count (1) it trains one epoch of
# Fashion-MNIST with the same settings (batch 64, lr 0.05, momentum 0.9, seed 1) with
#   $MACC_BUILD/src/sim/macc-sim --agents 1 ...   (or tests/bench/bench_nn --train when macc-sim
#                                                  is not built)
#   /usr/bin/python3 $MACC_SRC/../shared/reference/torch_train.py ...
# in two environments:
#   default  as installed: macc chooses its OpenBLAS kernel (src/nn/blas.c), PyTorch runs on the
#            kernel OpenBLAS picks by itself (Debian's python3-torch uses the same OpenBLAS);
#   same     PyTorch with OPENBLAS_CORETYPE set to macc's kernel, so both use the same kernels
#            (skipped, and the default row reused, when OpenBLAS already picked macc's kernel).
# Each pair runs BENCH_REPEAT times (default 3) alternately and each side's best samples/s is
# kept: on a shared machine the best of a few runs is the closest to an idle core. Both
# samples/s figures come from the programs' own summary lines (training time only: loading and
# evaluation excluded).
#
# The sgemm limit: tests/bench/bench_nn --sgemm 1024 at the same thread count and kernel, best
# of BENCH_REPEAT; for the MLPs, macc's samples/s x training FLOP per sample (forward 2*a*b per
# dense layer a->b, backward twice that, less the first layer's input gradient; biases and
# activations left out) over the sgemm GFLOP/s.
#
# Convolutions on 3x32x32 images (BENCH_STEP_MODELS, default cnn:cifar): no CIFAR-10 ships with
# Debian, so these are steady-state training steps on synthetic data (the speed does not depend
# on the values): tests/bench/bench_nn --model M --batch 64 against tests/bench/torch_steps.py
# --model M --batch 64 --clock wall, for BENCH_STEP_SECONDS (default 4) each, alternately, best
# of BENCH_REPEAT, in the same two environments (macc's samples/s does not change with PyTorch's
# kernel, so "same" reruns only PyTorch).
#
# Output: a table, the kernels each side ran (OpenBLAS's "Core:" lines, OPENBLAS_VERBOSE=2) and
# machine-readable lines for run-all.sh:
#   RESULT bench=train model=M threads=T env=default|same macc_sps=S torch_sps=S ratio=R
#          macc_blas=K torch_blas=K macc_acc=A torch_acc=A
#   RESULT bench=steps model=M threads=T env=default|same batch=64 macc_sps=S torch_sps=S
#          ratio=R macc_blas=K torch_blas=K
#   RESULT bench=sgemm n=1024 threads=T gflops=G blas=K
#   RESULT bench=sgemm_frac model=M threads=T flop_per_sample=F macc_sps=S gflops=G frac=X
#
# Environment: MACC_BUILD, MACC_SRC (set by meson), BENCH_MODELS, BENCH_THREADS, BENCH_EPOCHS,
# BENCH_REPEAT override the lists; BENCH_REFERENCE_DIR is where torch_train.py is (default
# $MACC_SRC/../shared/reference). Exit 77 (skipped) when the reference or the data is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MACC_SRC=${MACC_SRC:-$(cd "$here/../.." && pwd)}
MACC_BUILD=${MACC_BUILD:-$MACC_SRC/build}
ref=${BENCH_REFERENCE_DIR:-$MACC_SRC/../shared/reference}/torch_train.py
python=/usr/bin/python3
models=${BENCH_MODELS:-"mlp:784-256-128-10 cnn:lenet5"}
threads_list=${BENCH_THREADS:-1}
epochs=${BENCH_EPOCHS:-1}
repeat=${BENCH_REPEAT:-3}
step_models=${BENCH_STEP_MODELS-cnn:cifar}
step_seconds=${BENCH_STEP_SECONDS:-4}
steps_py=$here/torch_steps.py
common=(--epochs "$epochs" --batch 64 --lr 0.05 --momentum 0.9 --seed 1)
bench_nn=$MACC_BUILD/tests/bench/bench_nn
tmp=$(mktemp -d "${TMPDIR:-/tmp}/macc-bench-train.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if [[ ! -x $python || ! -f $ref ]]; then
	echo "bench_train: PyTorch reference $ref (or $python) not found; skipping"
	exit 77
fi

sim=$MACC_BUILD/src/sim/macc-sim
if [[ -x $sim ]]; then
	impl=macc-sim
else
	sim=$bench_nn
	impl=bench_nn
	if [[ ! -x $sim ]]; then
		echo "bench_train: neither macc-sim nor bench_nn is built in $MACC_BUILD"
		exit 1
	fi
fi

# kv_value KEY LINE (ring-lib.sh): the value of KEY=... in a line of key=value pairs.
# shellcheck source=tests/bench/ring-lib.sh
. "$here/ring-lib.sh"

# The last line of a run's stdout into $tmp/line, its stderr into $tmp/err.
run_macc() {
	local model=$1 threads=$2
	if [[ $impl == macc-sim ]]; then
		OPENBLAS_VERBOSE=2 "$sim" --agents 1 --model "$model" --data fashion-mnist \
			"${common[@]}" --threads "$threads" --quiet >"$tmp/out" 2>"$tmp/err"
	else
		OPENBLAS_VERBOSE=2 "$sim" --train "$model" "${common[@]}" --threads "$threads" \
			>"$tmp/out" 2>"$tmp/err"
	fi
	tail -n 1 "$tmp/out" >"$tmp/line"
}
run_torch() {
	local model=$1 threads=$2 coretype=$3
	env ${coretype:+OPENBLAS_CORETYPE=$coretype} OPENBLAS_VERBOSE=2 "$python" "$ref" \
		--model "$model" "${common[@]}" --threads "$threads" >"$tmp/out" 2>"$tmp/err"
	tail -n 1 "$tmp/out" >"$tmp/line"
}
# The kernel OpenBLAS finally ran with in the last run (its last "Core:" line).
last_core() {
	sed -n 's/^Core: //p' "$tmp/err" | tail -n 1
}
best() {
	awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 >= b + 0) ? a : b }'
}
# FLOP per training sample of mlp:A-B-...-Z (and logreg:A-B); empty for other models.
mlp_flop() {
	case $1 in
	mlp:* | logreg:*) ;;
	*) return 0 ;;
	esac
	echo "${1#*:}" | cut -d: -f1 | awk -F- '{
		f = 0
		for (i = 1; i < NF; i++) {
			f += 6 * $i * $(i + 1)
		}
		printf "%.0f\n", f - 2 * $1 * $2
	}'
}

status=0
declare -A macc_sps macc_acc macc_blas torch_sps torch_acc torch_blas
# pair MODEL THREADS ENV CORETYPE: best of $repeat alternate runs into the arrays above
# (key MODEL/THREADS/ENV). ENV "same" reruns only PyTorch (macc's kernel does not change).
pair() {
	local model=$1 threads=$2 envname=$3 coretype=$4 k="$1/$2/$3" r v
	for ((r = 1; r <= repeat; r++)); do
		if [[ $envname == default ]]; then
			if ! run_macc "$model" "$threads"; then
				echo "bench_train: $impl failed for $model threads=$threads:" \
					"$(tail -n 3 "$tmp/err")"
				return 1
			fi
			v=$(kv_value samples_per_s "$(cat "$tmp/line")")
			macc_sps[$k]=$(best "${macc_sps[$k]:-0}" "$v")
			macc_acc[$k]=$(kv_value test_acc "$(cat "$tmp/line")")
			macc_blas[$k]=$(kv_value blas "$(cat "$tmp/line")")
		fi
		if ! run_torch "$model" "$threads" "$coretype"; then
			echo "bench_train: torch_train.py failed for $model threads=$threads:" \
				"$(tail -n 3 "$tmp/err")"
			return 1
		fi
		v=$(kv_value samples_per_s "$(cat "$tmp/line")")
		torch_sps[$k]=$(best "${torch_sps[$k]:-0}" "$v")
		torch_acc[$k]=$(kv_value test_acc "$(cat "$tmp/line")")
		torch_blas[$k]=$(last_core)
	done
}

# Steady-state steps on synthetic data (the convolutions on 3x32x32): best of $repeat alternate
# runs into step_macc/step_torch/step_blas (key MODEL/THREADS/ENV); ENV "same" reruns only
# PyTorch, with OPENBLAS_CORETYPE=CORETYPE.
declare -A step_macc step_torch step_blas step_mblas
step_pair() {
	local model=$1 threads=$2 envname=$3 coretype=$4 k="$1/$2/$3" r v line
	for ((r = 1; r <= repeat; r++)); do
		if [[ $envname == default ]]; then
			if ! line=$("$bench_nn" --model "$model" --batch 64 --threads "$threads" \
				--seconds "$step_seconds" 2>"$tmp/err" | grep "^model=$model batch=64 "); then
				echo "bench_train: bench_nn failed for $model: $(tail -n 3 "$tmp/err")"
				return 1
			fi
			step_macc[$k]=$(best "${step_macc[$k]:-0}" "$(kv_value samples_per_s "$line")")
			step_mblas[$k]=$(sed -n 's/^bench_nn: BLAS kernel \([^ ]*\).*/\1/p' "$tmp/err")
		fi
		if ! env ${coretype:+OPENBLAS_CORETYPE=$coretype} OPENBLAS_VERBOSE=2 "$python" \
			"$steps_py" --model "$model" --batch 64 --threads "$threads" --clock wall \
			--seconds "$step_seconds" >"$tmp/out" 2>"$tmp/err"; then
			echo "bench_train: torch_steps.py failed for $model: $(tail -n 3 "$tmp/err")"
			return 1
		fi
		v=$(kv_value samples_per_s "$(tail -n 1 "$tmp/out")")
		step_torch[$k]=$(best "${step_torch[$k]:-0}" "$v")
		step_blas[$k]=$(last_core)
	done
}

printf '%-20s %7s %-8s %10s %10s %7s %-10s %-10s %8s %9s\n' model threads env macc_sps \
	torch_sps ratio macc_blas torch_blas macc_acc torch_acc
results=()
for threads in $threads_list; do
	# The sgemm limit at this thread count, with macc's kernel.
	gf=0
	sg_blas=""
	if [[ -x $bench_nn ]]; then
		for ((r = 1; r <= repeat; r++)); do
			if line=$("$bench_nn" --sgemm 1024 --threads "$threads" --seconds 2 2>/dev/null); then
				gf=$(best "$gf" "$(kv_value gflops "$line")")
				sg_blas=$(kv_value blas "$line")
			fi
		done
		results+=("RESULT bench=sgemm n=1024 threads=$threads gflops=$gf blas=$sg_blas")
	fi
	for model in $models; do
		if ! pair "$model" "$threads" default ""; then
			status=1
			continue
		fi
		k="$model/$threads"
		envs=(default)
		if [[ ${torch_blas[$k/default]} != "${macc_blas[$k/default]}" ]]; then
			envs+=(same)
			macc_sps[$k/same]=${macc_sps[$k/default]}
			macc_acc[$k/same]=${macc_acc[$k/default]}
			macc_blas[$k/same]=${macc_blas[$k/default]}
			pair "$model" "$threads" same "${macc_blas[$k/default]}" || status=1
		fi
		for e in "${envs[@]}"; do
			[[ -n ${torch_sps[$k/$e]:-} ]] || continue
			ratio=$(awk -v a="${macc_sps[$k/$e]}" -v b="${torch_sps[$k/$e]}" \
				'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
			printf '%-20s %7s %-8s %10s %10s %7s %-10s %-10s %8s %9s\n' "$model" "$threads" \
				"$e" "${macc_sps[$k/$e]}" "${torch_sps[$k/$e]}" "${ratio}x" \
				"${macc_blas[$k/$e]}" "${torch_blas[$k/$e]}" "${macc_acc[$k/$e]}" \
				"${torch_acc[$k/$e]}"
			results+=("RESULT bench=train model=$model threads=$threads env=$e macc_sps=${macc_sps[$k/$e]} torch_sps=${torch_sps[$k/$e]} ratio=$ratio macc_blas=${macc_blas[$k/$e]} torch_blas=${torch_blas[$k/$e]} macc_acc=${macc_acc[$k/$e]} torch_acc=${torch_acc[$k/$e]}")
			if [[ $e == default ]]; then
				# "same" repeats the default row's figure when OpenBLAS already agreed.
				[[ ${#envs[@]} == 2 ]] ||
					results+=("RESULT bench=train model=$model threads=$threads env=same macc_sps=${macc_sps[$k/$e]} torch_sps=${torch_sps[$k/$e]} ratio=$ratio macc_blas=${macc_blas[$k/$e]} torch_blas=${torch_blas[$k/$e]} macc_acc=${macc_acc[$k/$e]} torch_acc=${torch_acc[$k/$e]}")
			fi
		done
		flop=$(mlp_flop "$model")
		if [[ -n $flop && $gf != 0 ]]; then
			frac=$(awk -v s="${macc_sps[$k/default]}" -v f="$flop" -v g="$gf" \
				'BEGIN { printf "%.3f", s * f / (g * 1e9) }')
			echo "$model threads $threads: $flop FLOP per sample x ${macc_sps[$k/default]}" \
				"samples/s = $(awk -v s="${macc_sps[$k/default]}" -v f="$flop" \
				'BEGIN { printf "%.1f", s * f / 1e9 }') GFLOP/s, sgemm 1024 limit $gf" \
				"GFLOP/s ($sg_blas): $(awk -v x="$frac" 'BEGIN { printf "%.0f", x * 100 }')%"
			results+=("RESULT bench=sgemm_frac model=$model threads=$threads flop_per_sample=$flop macc_sps=${macc_sps[$k/default]} gflops=$gf frac=$frac")
		fi
	done
done
if [[ -n $step_models && -x $bench_nn && -f $steps_py ]]; then
	echo
	echo "steady-state training steps on synthetic data, batch 64, ${step_seconds} s each" \
		"(bench_nn against torch_steps.py --clock wall):"
	printf '%-20s %7s %-8s %10s %10s %7s %-10s %-10s\n' model threads env macc_sps torch_sps \
		ratio macc_blas torch_blas
	for threads in $threads_list; do
		for model in $step_models; do
			k="$model/$threads"
			if ! step_pair "$model" "$threads" default ""; then
				status=1
				continue
			fi
			envs=(default)
			if [[ ${step_blas[$k/default]} != "${step_mblas[$k/default]}" ]]; then
				envs+=(same)
				step_macc[$k/same]=${step_macc[$k/default]}
				step_mblas[$k/same]=${step_mblas[$k/default]}
				step_pair "$model" "$threads" same "${step_mblas[$k/default]}" || status=1
			fi
			for e in default same; do
				# "same" repeats the default row when OpenBLAS already agreed
				ee=$e
				[[ ${#envs[@]} == 2 ]] || ee=default
				[[ -n ${step_torch[$k/$ee]:-} ]] || continue
				ratio=$(awk -v a="${step_macc[$k/$ee]}" -v b="${step_torch[$k/$ee]}" \
					'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
				[[ $e == "$ee" ]] && printf '%-20s %7s %-8s %10s %10s %7s %-10s %-10s\n' \
					"$model" "$threads" "$e" "${step_macc[$k/$ee]}" \
					"${step_torch[$k/$ee]}" "${ratio}x" "${step_mblas[$k/$ee]}" \
					"${step_blas[$k/$ee]}"
				results+=("RESULT bench=steps model=$model threads=$threads env=$e batch=64 macc_sps=${step_macc[$k/$ee]} torch_sps=${step_torch[$k/$ee]} ratio=$ratio macc_blas=${step_mblas[$k/$ee]} torch_blas=${step_blas[$k/$ee]}")
			done
		done
	done
fi
echo "impl=$impl epochs=$epochs batch=64 repeat=$repeat (best of each; ratio = macc samples/s" \
	"over PyTorch's, same run)"
printf '%s\n' "${results[@]}"
exit "$status"
