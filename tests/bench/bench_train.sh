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
#   RESULT bench=train|steps model=M threads=T env=default|same batch=64 macc_sps=S
#          torch_sps=S ratio=R macc_blas=K torch_blas=K macc_acc=A torch_acc=A
# (train: an epoch of Fashion-MNIST; steps: the synthetic steps, whose accuracies are empty).
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

# The measurements. KIND "train" is one epoch of Fashion-MNIST, "steps" steady-state training
# steps on synthetic data. Each function runs one measurement and leaves its key=value summary
# line (samples_per_s, and where known test_acc and blas) in $tmp/line, its stderr in $tmp/err.
# shellcheck disable=SC2317 # called as macc_$kind / torch_$kind
macc_train() {
	local model=$1 threads=$2
	if [[ $impl == macc-sim ]]; then
		OPENBLAS_VERBOSE=2 "$sim" --agents 1 --model "$model" --data fashion-mnist \
			"${common[@]}" --threads "$threads" --quiet >"$tmp/out" 2>"$tmp/err" || return 1
	else
		OPENBLAS_VERBOSE=2 "$sim" --train "$model" "${common[@]}" --threads "$threads" \
			>"$tmp/out" 2>"$tmp/err" || return 1
	fi
	tail -n 1 "$tmp/out" >"$tmp/line"
}
# shellcheck disable=SC2317 # called as macc_$kind / torch_$kind
macc_steps() {
	local model=$1 threads=$2
	"$bench_nn" --model "$model" --batch 64 --threads "$threads" --seconds "$step_seconds" \
		>"$tmp/out" 2>"$tmp/err" || return 1
	grep "^model=$model batch=64 " "$tmp/out" | tail -n 1 >"$tmp/line" || return 1
	echo " blas=$(sed -n 's/^bench_nn: BLAS kernel \([^ ]*\).*/\1/p' "$tmp/err")" >>"$tmp/line"
}
# torch_KIND MODEL THREADS CORETYPE: PyTorch, with OPENBLAS_CORETYPE=CORETYPE when not empty.
# shellcheck disable=SC2317 # called as macc_$kind / torch_$kind
torch_train() {
	env ${3:+OPENBLAS_CORETYPE=$3} OPENBLAS_VERBOSE=2 "$python" "$ref" --model "$1" \
		"${common[@]}" --threads "$2" >"$tmp/out" 2>"$tmp/err" || return 1
	tail -n 1 "$tmp/out" >"$tmp/line"
}
# shellcheck disable=SC2317 # called as macc_$kind / torch_$kind
torch_steps() {
	env ${3:+OPENBLAS_CORETYPE=$3} OPENBLAS_VERBOSE=2 "$python" "$steps_py" --model "$1" \
		--batch 64 --threads "$2" --clock wall --seconds "$step_seconds" \
		>"$tmp/out" 2>"$tmp/err" || return 1
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
# pair KIND MODEL THREADS ENV CORETYPE: best of $repeat alternate runs of macc_KIND and
# torch_KIND into the arrays above (key KIND/MODEL/THREADS/ENV). ENV "same" reruns only PyTorch
# (macc's kernel and samples/s do not change with PyTorch's environment).
pair() {
	local kind=$1 model=$2 threads=$3 envname=$4 coretype=$5 k="$1/$2/$3/$4" r line
	for ((r = 1; r <= repeat; r++)); do
		if [[ $envname == default ]]; then
			if ! "macc_$kind" "$model" "$threads"; then
				echo "bench_train: macc ($kind) failed for $model threads=$threads:" \
					"$(tail -n 3 "$tmp/err")"
				return 1
			fi
			line=$(<"$tmp/line")
			macc_sps[$k]=$(best "${macc_sps[$k]:-0}" "$(kv_value samples_per_s "$line")")
			macc_acc[$k]=$(kv_value test_acc "$line")
			macc_blas[$k]=$(kv_value blas "$line")
		fi
		if ! "torch_$kind" "$model" "$threads" "$coretype"; then
			echo "bench_train: PyTorch ($kind) failed for $model threads=$threads:" \
				"$(tail -n 3 "$tmp/err")"
			return 1
		fi
		line=$(<"$tmp/line")
		torch_sps[$k]=$(best "${torch_sps[$k]:-0}" "$(kv_value samples_per_s "$line")")
		torch_acc[$k]=$(kv_value test_acc "$line")
		torch_blas[$k]=$(last_core)
	done
}

row() {
	printf '%-20s %7s %-8s %10s %10s %7s %-10s %-10s %8s %9s\n' "$@"
}
# compare KIND MODEL THREADS: pair in the default environment, then, where PyTorch's kernel was
# not macc's, again with PyTorch on macc's kernel ("same"). Prints a row per environment that
# ran and adds a RESULT line for both ("same" repeats "default" where the kernels agreed). macc's
# side is always the default run's: its kernel does not depend on PyTorch's environment.
compare() {
	local kind=$1 model=$2 threads=$3 k="$1/$2/$3" e t tt ratio rc=0
	local m=$k/default
	pair "$kind" "$model" "$threads" default "" || return 1
	t=$k/default
	if [[ ${torch_blas[$m]} != "${macc_blas[$m]}" ]]; then
		if pair "$kind" "$model" "$threads" same "${macc_blas[$m]}"; then
			t=$k/same
		else
			rc=1
		fi
	fi
	# the default row, then the same-kernel one: its own PyTorch run, or the default's again
	# (RESULT line only) where the kernels agreed; none if that run failed
	for e in default same; do
		tt=$k/default
		if [[ $e == same ]]; then
			[[ $rc == 0 ]] || break
			tt=$t
		fi
		ratio=$(awk -v a="${macc_sps[$m]}" -v b="${torch_sps[$tt]}" \
			'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
		[[ $e == same && $tt == "$k/default" ]] ||
			row "$model" "$threads" "$e" "${macc_sps[$m]}" "${torch_sps[$tt]}" "${ratio}x" \
				"${macc_blas[$m]}" "${torch_blas[$tt]}" "${macc_acc[$m]:--}" \
				"${torch_acc[$tt]:--}"
		results+=("RESULT bench=$kind model=$model threads=$threads env=$e batch=64 macc_sps=${macc_sps[$m]} torch_sps=${torch_sps[$tt]} ratio=$ratio macc_blas=${macc_blas[$m]} torch_blas=${torch_blas[$tt]} macc_acc=${macc_acc[$m]} torch_acc=${torch_acc[$tt]}")
	done
	return "$rc"
}

row model threads env macc_sps torch_sps ratio macc_blas torch_blas macc_acc \
	torch_acc
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
		compare train "$model" "$threads" || status=1
		[[ -n ${macc_sps[train/$model/$threads/default]:-} ]] || continue
		flop=$(mlp_flop "$model")
		sps=${macc_sps[train/$model/$threads/default]}
		if [[ -n $flop && $gf != 0 ]]; then
			frac=$(awk -v s="$sps" -v f="$flop" -v g="$gf" \
				'BEGIN { printf "%.3f", s * f / (g * 1e9) }')
			echo "$model threads $threads: $flop FLOP per sample x $sps samples/s =" \
				"$(awk -v s="$sps" -v f="$flop" 'BEGIN { printf "%.1f", s * f / 1e9 }')" \
				"GFLOP/s, sgemm 1024 limit $gf GFLOP/s ($sg_blas):" \
				"$(awk -v x="$frac" 'BEGIN { printf "%.1f", x * 100 }')%"
			results+=("RESULT bench=sgemm_frac model=$model threads=$threads flop_per_sample=$flop macc_sps=$sps gflops=$gf frac=$frac")
		fi
	done
	if [[ -n $step_models && -x $bench_nn && -f $steps_py ]]; then
		echo "steady-state training steps on synthetic data, batch 64, ${step_seconds} s each" \
			"(bench_nn against torch_steps.py --clock wall):"
		for model in $step_models; do
			compare steps "$model" "$threads" || status=1
		done
	fi
done
echo "impl=$impl epochs=$epochs batch=64 repeat=$repeat (best of each; ratio = macc samples/s" \
	"over PyTorch's, same run)"
printf '%s\n' "${results[@]}"
exit "$status"
