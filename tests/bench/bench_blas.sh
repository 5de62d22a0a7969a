#!/bin/bash
# bench_blas.sh - what the OpenBLAS kernel choice (src/nn/blas.c) is worth on this machine.
#
# Single-thread sgemm 1024 x 1024 x 1024 (tests/bench/bench_nn --sgemm) with
#   auto      the kernel macc chooses (what macc-sim and macc-agentd run by default),
#   openblas  the kernel OpenBLAS picks by itself (its first "Core:" line; what any other
#             program on this machine runs, PyTorch included),
#   prescott  OpenBLAS's generic x86-64 kernel (what 0.3.21 falls back to on CPUs it does not
#             know),
# each BENCH_REPEAT times (default 3, best kept), with OPENBLAS_VERBOSE=2 so the "Core:" lines
# show which kernels were loaded (two lines when macc re-executed itself).
# Prints the table and, last, for run-all.sh:
#   RESULT bench=blas auto=K auto_gflops=G auto_cpu=G openblas=K openblas_gflops=G
#          openblas_cpu=G prescott_gflops=G prescott_cpu=G choice=kept|upgraded|...
#          cores=Core:_A_->_Core:_B   (spaces as _, so the line stays key=value pairs)
# Environment: MACC_BUILD, MACC_SRC, BENCH_REPEAT.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MACC_SRC=${MACC_SRC:-$(cd "$here/../.." && pwd)}
MACC_BUILD=${MACC_BUILD:-$MACC_SRC/build}
# shellcheck source=tests/bench/ring-lib.sh
. "$here/ring-lib.sh"
bench_nn=$MACC_BUILD/tests/bench/bench_nn
repeat=${BENCH_REPEAT:-3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/macc-bench-blas.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if [[ ! -x $bench_nn ]]; then
	echo "bench_blas: $bench_nn is not built (ninja -C $MACC_BUILD tests/bench/bench_nn)"
	exit 1
fi

# measure KERNEL|auto: best GFLOP/s of $repeat runs, per second of wall time (g_best) and of CPU
# time (c_best, steadier when the machine is shared); sets g_kernel, g_cores, g_choice too.
measure() {
	local want=$1 r line g c
	g_best=0
	c_best=0
	for ((r = 1; r <= repeat; r++)); do
		if [[ $want == auto ]]; then
			line=$(env -u MACC_BLAS_KERNEL -u OPENBLAS_CORETYPE OPENBLAS_VERBOSE=2 \
				"$bench_nn" --sgemm 1024 --threads 1 --seconds 2 2>"$tmp/err")
		else
			line=$(env -u OPENBLAS_CORETYPE MACC_BLAS_KERNEL="$want" OPENBLAS_VERBOSE=2 \
				"$bench_nn" --sgemm 1024 --threads 1 --seconds 2 2>"$tmp/err")
		fi
		g=$(kv_value gflops "$line")
		c=$(kv_value gflops_per_cpu_s "$line")
		g_best=$(awk -v a="$g_best" -v b="$g" 'BEGIN { print (b + 0 > a + 0) ? b : a }')
		c_best=$(awk -v a="$c_best" -v b="$c" 'BEGIN { print (b + 0 > a + 0) ? b : a }')
		g_kernel=$(kv_value blas "$line")
	done
	g_cores=$(sed -n 's/^Core: /Core: /p' "$tmp/err" | paste -sd';' | sed 's/;/ -> /g')
	g_choice=$(sed -n 's/^bench_nn: BLAS kernel [A-Za-z0-9_]* (\([a-z ]*\);.*/\1/p' "$tmp/err")
	sed -n 's/^bench_nn: //p' "$tmp/err"
}

measure auto
auto=$g_kernel auto_g=$g_best auto_c=$c_best auto_cores=$g_cores auto_choice=$g_choice
own=${auto_cores#Core: }
own=${own%% *}
if [[ $own == "$auto" ]]; then
	own_g=$auto_g own_c=$auto_c
else
	measure "$own"
	own_g=$g_best own_c=$c_best
fi
if [[ $auto == Prescott ]]; then
	pres_g=$auto_g pres_c=$auto_c
elif [[ $own == Prescott ]]; then
	pres_g=$own_g pres_c=$own_c
else
	measure Prescott
	pres_g=$g_best pres_c=$c_best
fi
printf '%-28s %-12s %10s %14s\n' "sgemm 1024, 1 thread" kernel GFLOP/s "GFLOP/cpu-s"
printf '%-28s %-12s %10s %14s\n' "macc's choice ($auto_choice)" "$auto" "$auto_g" "$auto_c"
printf '%-28s %-12s %10s %14s\n' "OpenBLAS's own pick" "$own" "$own_g" "$own_c"
printf '%-28s %-12s %10s %14s\n' "generic (Prescott)" Prescott "$pres_g" "$pres_c"
echo "OpenBLAS loaded, for macc's choice: $auto_cores"
echo "RESULT bench=blas auto=$auto auto_gflops=$auto_g auto_cpu=$auto_c openblas=$own" \
	"openblas_gflops=$own_g openblas_cpu=$own_c prescott_gflops=$pres_g prescott_cpu=$pres_c" \
	"choice=${auto_choice// /_} cores=${auto_cores// /_}"
