#!/bin/bash
# run-all.sh - run every benchmark in one go and print all the speed figures (and the
# message-path and scaling figures) as one markdown table.
#
#   tests/bench/run-all.sh [-C BUILD] [-o OUTDIR] [--quick] [--no-build] [--only NAMES] [--report]
#
#   -C BUILD     meson build directory (default $MACC_BUILD, else ./build); use a release build
#   -o OUTDIR    where the logs, the scaling CSV and PNG and the table go
#                (default BUILD/bench-results)
#   --quick      small scale, to check that everything runs (one repetition, fewer rounds and
#                points, one link rate and a low accuracy target); the ratios are then rough
#   --no-build   do not run ninja first (by default the benchmark targets are built)
#   --only NAMES comma list of: blas, train, nn, msg, ring, edge, scaling (default all)
#   --report     run nothing: print the table from the logs already in OUTDIR (after a benchmark
#                was rerun by hand, e.g. BENCH_OUT=OUTDIR/edge bench_edge.sh >OUTDIR/edge.log)
#
# The benchmarks are the scripts and programs meson registers with benchmark() in
# tests/bench/meson.build, run one after another (never concurrently, so they do not compete for
# the cores) with the same environment meson gives them and a time limit each:
#   blas     bench_blas.sh     sgemm with macc's OpenBLAS kernel, OpenBLAS's own and Prescott
#   train    bench_train.sh    local training vs PyTorch (as installed, and on the same kernel)
#                              and vs the sgemm limit; cnn:cifar training steps on synthetic
#                              data vs torch_steps.py
#   nn       bench_nn          the learning core's samples/s table (information, no target)
#   msg      bench_msg         frame + sign + verify + decode vs raw BLAKE2b and memcpy
#   ring     bench_ring.sh     4 macc-agentd on loopback, sealed and plain, vs macc-sim and vs
#                              torch_dmsgd.py (gloo)
#   edge     bench_edge.sh     the 4-agent ring on tc-shaped links (100 and 20 Mbit/s) in network
#                              namespaces: round time vs the link, time to 0.84 accuracy vs
#                              torch/gloo (needs root; skipped otherwise)
#   scaling  bench_scaling.sh  round time vs agents and vs model size (CSV + PNG)
# Each one's full output is in OUTDIR/NAME.log. The table (also in OUTDIR/results.md) has one
# row per figure: what was measured, macc's figure, the reference's, the ratio, the target and
# whether this run met it. A ratio is only meaningful within one run on one machine; on a busy
# machine they are noisy (the header records the load average at the start and the end).
# BENCH_REFERENCE_DIR says where the PyTorch references are (default
# $MACC_SRC/../shared/reference). The benchmarks' own variables pass through, e.g.
# BENCH_TCP_CC=reno for the shaped links' TCP congestion control (bench_edge.sh; the table names
# the one that ran).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# kv_value, shared with the ring benchmarks.
# shellcheck source=tests/bench/ring-lib.sh
. "$here/ring-lib.sh"
MACC_SRC=$(cd "$here/../.." && pwd)
build=${MACC_BUILD:-$MACC_SRC/build}
out=""
quick=0
do_build=1
report=0
all="blas,train,nn,msg,ring,edge,scaling"
only=$all

while [[ $# -gt 0 ]]; do
	case $1 in
	-C) build=${2:?-C needs a directory}; shift ;;
	-o) out=${2:?-o needs a directory}; shift ;;
	--quick) quick=1 ;;
	--no-build) do_build=0 ;;
	--report) report=1 do_build=0 ;;
	--only) only=${2:?--only needs a list}; shift ;;
	-h | --help)
		sed -n '2,17p' "$0"
		exit 0
		;;
	*)
		echo "run-all: unknown argument '$1' (see --help)" >&2
		exit 2
		;;
	esac
	shift
done
for name in ${only//,/ }; do
	case ,$all, in
	*",$name,"*) ;;
	*)
		echo "run-all: --only: unknown benchmark '$name' (${all//,/, })" >&2
		exit 2
		;;
	esac
done
if [[ ! -f $build/build.ninja ]]; then
	echo "run-all: $build is not a meson build directory (meson setup $build --buildtype=release)" >&2
	exit 2
fi
build=$(cd "$build" && pwd)
out=${out:-$build/bench-results}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export MACC_BUILD=$build MACC_SRC

wanted() {
	[[ ,$only, == *",$1,"* ]]
}

if [[ $do_build == 1 ]]; then
	targets=(src/sim/macc-sim src/agentd/macc-agentd src/ctl/macc-ctl tests/bench/bench_nn)
	wanted msg && targets+=(tests/bench/bench_msg)
	echo "building ${targets[*]} in $build"
	if ! ninja -C "$build" -j 2 "${targets[@]}" >"$out/build.log" 2>&1; then
		echo "run-all: build failed, see $out/build.log" >&2
		exit 1
	fi
fi

if [[ $quick == 1 ]]; then
	export BENCH_THREADS=${BENCH_THREADS:-1} BENCH_EPOCHS=${BENCH_EPOCHS:-1}
	export BENCH_REPEAT=${BENCH_REPEAT:-1}
	export BENCH_ROUNDS=${BENCH_ROUNDS:-20} BENCH_AGENTS=${BENCH_AGENTS:-"2 4 8"}
	export BENCH_DAEMON_AGENTS=${BENCH_DAEMON_AGENTS:-"2 4"}
	export BENCH_SIZES=${BENCH_SIZES:-"10000 1000000 10000000"}
	export BENCH_RATES=${BENCH_RATES:-100} BENCH_TARGET=${BENCH_TARGET:-0.75}
	export BENCH_EDGE_EPOCHS=${BENCH_EDGE_EPOCHS:-1}
fi

# run NAME LIMIT_S COMMAND...: run one benchmark, output to OUT/NAME.log; records its status.
declare -A status
run() {
	local name=$1 limit=$2 t0 rc=0
	shift 2
	if ! wanted "$name" || [[ $report == 1 ]]; then
		return
	fi
	t0=$SECONDS
	printf 'running %-8s ... ' "$name"
	timeout -k 30 "$limit" "$@" >"$out/$name.log" 2>&1 || rc=$?
	status[$name]=$rc
	case $rc in
	0) echo "done in $((SECONDS - t0)) s" ;;
	77) echo "skipped (see $out/$name.log)" ;;
	124) echo "TIMED OUT after $limit s (see $out/$name.log)" ;;
	*) echo "FAILED with status $rc (see $out/$name.log)" ;;
	esac
}

nn_args=()
if [[ $quick == 1 ]]; then
	nn_args=(--seconds 1)
fi
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load=$(cut -d' ' -f1-3 /proc/loadavg)
commit=$(git -C "$MACC_SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$MACC_SRC" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
	commit+=" with uncommitted changes"
fi
run blas 1200 bash "$here/bench_blas.sh"
run train 7200 bash "$here/bench_train.sh"
run nn 1200 "$build/tests/bench/bench_nn" "${nn_args[@]}"
run msg 1200 "$build/tests/bench/bench_msg"
BENCH_OUT=$out/ring run ring 7200 bash "$here/bench_ring.sh"
BENCH_OUT=$out/edge run edge 14400 bash "$here/bench_edge.sh"
BENCH_OUT=$out/scaling run scaling 7200 bash "$here/bench_scaling.sh"
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the table -------------------------------------------------------------------------------
# result NAME LOG KEY [FILTER]: KEY=... of the last RESULT line with bench=NAME (and containing
# the words FILTER) in a log.
result() {
	local line
	line=$(grep "^RESULT bench=$1 " "$2" 2>/dev/null | grep -e "${4:-}" | tail -n 1 || true)
	kv_value "$3" "$line"
}
yesno() {
	awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {
		if (v == "" || v == "-") { print "n/a"; exit }
		print ((op == ">=" ? v + 0 >= t + 0 : v + 0 <= t + 0) ? "yes" : "**no**")
	}'
}
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'
}
pct() {
	awk -v x="$1" 'BEGIN { if (x == "") printf "-"; else printf "%.1f", x * 100 }'
}
missing() {
	local name=$1 what=$2
	if ! wanted "$name"; then
		return
	fi
	echo "| $what | - | - | - | - | not measured ($name: status ${status[$name]:-?}, see $name.log) |"
}

# train_row BENCH MODEL ENV: the row of one RESULT line of train.log (bench=train: an epoch of
# Fashion-MNIST; bench=steps: steady-state steps on synthetic data), with its target where the
# issue sets one: the MLP as installed, LeNet-5 and cnn:cifar on the same kernel.
train_row() {
	local bench=$1 model=$2 e=$3 line r what tgt="" shown="-" met="-"
	line=$(grep "^RESULT bench=$bench model=$model threads=1 env=$e " "$out/train.log" \
		2>/dev/null | tail -n 1 || true)
	[[ -n $line ]] || return 0
	case $bench/$model/$e in
	train/mlp:*/default) tgt=2 ;;
	train/cnn:lenet5/same) tgt=1.5 ;;
	steps/cnn:cifar/same) tgt=1 ;;
	esac
	r=$(kv_value ratio "$line")
	if [[ -n $tgt ]]; then
		shown=">= ${tgt}x"
		met=$(yesno "$r" "$tgt" '>=')
	fi
	if [[ $bench == steps ]]; then
		what="training steps $model (synthetic data)"
	else
		what="local training $model"
	fi
	what+=", batch 64, 1 thread, "
	if [[ $e == default ]]; then
		what+="as installed (macc $(kv_value macc_blas "$line"), PyTorch"
		what+=" $(kv_value torch_blas "$line"))"
	else
		what+="same kernel for both ($(kv_value torch_blas "$line"))"
	fi
	echo "| $what | $(kv_value macc_sps "$line") samples/s |" \
		"$(kv_value torch_sps "$line") samples/s (PyTorch) | ${r}x | $shown | $met |"
}

# The local-training rows of bench_train.sh.
train_rows() {
	local line model e
	for model in mlp:784-256-128-10 cnn:lenet5; do
		for e in default same; do
			train_row train "$model" "$e"
		done
	done
	for e in default same; do
		train_row steps cnn:cifar "$e"
	done
	line=$(grep "^RESULT bench=sgemm_frac model=mlp:784-256-128-10 threads=1 " "$out/train.log" \
		2>/dev/null | tail -n 1 || true)
	if [[ -n $line ]]; then
		local f g s fl
		f=$(kv_value frac "$line")
		g=$(kv_value gflops "$line")
		s=$(kv_value macc_sps "$line")
		fl=$(kv_value flop_per_sample "$line")
		echo "| local training MLP vs the sgemm limit (samples/s x $fl FLOP over single-thread" \
			"sgemm 1024) | $(awk -v s="$s" -v f="$fl" 'BEGIN { printf "%.1f", s * f / 1e9 }')" \
			"GFLOP/s | $g GFLOP/s (sgemm) | $(pct "$f")% | >= 80% | $(yesno "$f" 0.8 '>=') |"
	fi
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
buildtype=$(grep -o '"name": "buildtype", "value": "[a-z]*"' \
	"$build/meson-info/intro-buildoptions.json" 2>/dev/null | sed 's/.*"value": "//; s/"$//' || true)
{
	echo "## macc benchmarks ($started)"
	echo
	if [[ $report == 1 ]]; then
		echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores, $(uname -sr). Table made from the" \
			"logs in $out (their own headers and dates say when they ran); commit $commit" \
			"now, build ${buildtype:-?} in $build."
	else
		echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores, $(uname -sr); load average $load" \
			"at the start, $load_end at the end. Commit $commit, build ${buildtype:-?} in" \
			"$build$([[ $quick == 1 ]] && echo ', --quick')."
	fi
	echo
	echo "| figure | macc | reference | ratio | target | met? |"
	echo "|---|---|---|---|---|---|"

	# BLAS kernel: macc's choice against OpenBLAS's own pick and the generic kernel.
	if wanted blas && [[ -n $(result blas "$out/blas.log" auto) ]]; then
		l=$out/blas.log
		echo "| sgemm 1024, 1 thread: macc's kernel $(result blas "$l" auto) ($(result blas "$l" \
			choice | tr _ ' '); $(result blas "$l" cores | tr _ ' ')) vs OpenBLAS's own pick" \
			"$(result blas "$l" openblas) | $(result blas "$l" auto_gflops) GFLOP/s" \
			"($(result blas "$l" auto_cpu) per CPU s) | $(result blas "$l" openblas_gflops)" \
			"GFLOP/s ($(result blas "$l" openblas_cpu)) | $(ratio "$(result blas "$l" \
			auto_gflops)" "$(result blas "$l" openblas_gflops)")x | information (1x where" \
			"OpenBLAS picked right) | - |"
		echo "| sgemm 1024, 1 thread: macc's kernel vs the generic Prescott kernel (what" \
			"0.3.21 falls back to on CPUs it does not know) | $(result blas "$l" auto_gflops)" \
			"GFLOP/s | $(result blas "$l" prescott_gflops) GFLOP/s ($(result blas "$l" \
			prescott_cpu) per CPU s) | $(ratio "$(result blas "$l" auto_gflops)" \
			"$(result blas "$l" prescott_gflops)")x | information | - |"
	else
		missing blas "BLAS kernel choice"
	fi

	# Local training.
	if wanted train; then
		rows=$(train_rows)
		if [[ -n $rows ]]; then
			echo "$rows"
		else
			missing train "local training"
		fi
	fi

	# Sealed daemon ring on loopback.
	if wanted ring && [[ -n $(result ring "$out/ring.log" ratio) ]]; then
		m=$(result ring "$out/ring.log" macc)
		r=$(result ring "$out/ring.log" ref)
		echo "| 4-agent loopback ring, sealed: epochs/s, macc-agentd vs torch/gloo |" \
			"$(awk -v s="$m" 'BEGIN { printf "%.4f", 1 / s }') ($m s/epoch) |" \
			"$(awk -v s="$r" 'BEGIN { printf "%.4f", 1 / s }') ($r s/epoch) |" \
			"$(result ring "$out/ring.log" ratio)x | >= 1.5x |" \
			"$(yesno "$(result ring "$out/ring.log" ratio)" 1.5 '>=') |"
		d=$(result ring "$out/ring.log" acc_diff_pts)
		echo "| the same: final mean test accuracy of the 4 agents |" \
			"$(result ring "$out/ring.log" macc_acc) | $(result ring "$out/ring.log" ref_acc) |" \
			"$d points | within 0.5 points |" \
			"$(awk -v d="$d" 'BEGIN { print ((d < 0 ? -d : d) <= 0.5 ? "yes" : "**no**") }') |"
	else
		missing ring "4-agent loopback ring vs torch/gloo"
	fi
	if wanted ring && [[ -n $(result cpu "$out/ring.log" sealed) ]]; then
		cs=$(result cpu "$out/ring.log" sealed)
		cp=$(result cpu "$out/ring.log" plain)
		csim=$(result cpu "$out/ring.log" sim)
		np=$(awk -v a="$cs" -v b="$csim" 'BEGIN { if (a != "" && b != "") printf "%.2f", a - b }')
		echo "| network-path CPU per agent-round: sealed ring - macc-sim (MLP, 1.9 MB state) |" \
			"$cs ms | $csim ms (macc-sim) | $np ms | <= 5 ms | $(yesno "$np" 5 '<=') |"
		if [[ -n $cp ]]; then
			echo "| CPU per agent-round, plain ring (information) | $cp ms | $csim ms" \
				"(macc-sim) | $(awk -v a="$cp" -v b="$csim" 'BEGIN { printf "%.2f", a - b }')" \
				"ms | - | - |"
			echo "| CPU per agent-round, sealed / plain (information) | $cs ms | $cp ms |" \
				"$(ratio "$cs" "$cp")x | - | - |"
		fi
	fi
	if wanted ring && [[ -n $(result sealed "$out/ring.log" ratio) ]]; then
		echo "| sealed ring epoch time / plain ring epoch time |" \
			"$(result sealed "$out/ring.log" macc) s | $(result sealed "$out/ring.log" ref) s |" \
			"$(result sealed "$out/ring.log" ratio)x | <= 1.10x |" \
			"$(yesno "$(result sealed "$out/ring.log" ratio)" 1.10 '<=') |"
	fi
	if wanted ring && [[ -n $(result netpath "$out/ring.log" ratio) ]]; then
		echo "| sealed ring epoch time / macc-sim epoch time (same arithmetic:" \
			"$(result netpath "$out/ring.log" identical); information) |" \
			"$(result netpath "$out/ring.log" macc) s | $(result netpath "$out/ring.log" ref) s |" \
			"$(result netpath "$out/ring.log" ratio)x | - | - |"
	fi

	# Shaped links.
	if wanted edge && grep -q '^RESULT bench=edge ' "$out/edge.log" 2>/dev/null; then
		l=$out/edge.log
		cc=$(sed -n 's/^TCP congestion control in the namespaces: \([a-z0-9_-]*\).*/\1/p' "$l" |
			head -n 1)
		for rate in $(sed -n 's/^RESULT bench=edge rate=\([0-9]*\) .*/\1/p' "$l" | sort -rnu); do
			for mode in fp32 int8 matching-int8 best torch; do
				line=$(grep "^RESULT bench=edge rate=$rate mode=$mode " "$l" | tail -n 1 || true)
				[[ -n $line ]] || continue
				rr=$(kv_value ratio "$line")
				tgt="-" met="-"
				if [[ $mode == fp32 ]]; then
					tgt="<= 1.10x"
					met=$(yesno "$rr" 1.10 '<=')
				fi
				echo "| $rate Mbit/s links (TCP ${cc:-?}), $mode: round time vs the link limit" \
					"($(kv_value link_bytes "$line") B per round on the busiest link;" \
					"CPU $(kv_value cpu_ms "$line") ms per agent-round," \
					"$(kv_value sys_pct "$line")% in the kernel, so at least" \
					"$(kv_value cpu_floor_ms "$line") ms per round on $(nproc) cores) |" \
					"$(kv_value round_ms "$line") ms | $(kv_value limit_ms "$line") ms" \
					"(payload only: $(kv_value payload_ms "$line") ms) | ${rr}x | $tgt | $met |"
			done
			for mode in fp32 int8 matching-int8 best; do
				line=$(grep "^RESULT bench=edge_vs rate=$rate mode=$mode " "$l" | tail -n 1 || true)
				[[ -n $line ]] || continue
				sp=$(kv_value speedup "$line")
				tgt="-" met="-"
				if [[ $mode == best ]]; then
					tgt=">= 5x"
					met=$(yesno "$sp" 5 '>=')
				fi
				echo "| $rate Mbit/s links (TCP ${cc:-?}): time to ${BENCH_TARGET:-0.84} mean test accuracy, macc $mode vs" \
					"torch/gloo | $(kv_value ttt_s "$line") s | $(kv_value torch_ttt_s "$line") s |" \
					"${sp}x | $tgt | $met |"
			done
		done
	else
		missing edge "shaped links (edge)"
	fi

	# Message path: bench_msg's "sign+verify path" against "blake2b", per state size.
	if wanted msg; then
		rows=$(awk '
		/^STATE / { state = $0; sub(/^STATE /, "", state); sub(/ \(.*/, "", state) }
		$1 == "blake2b" { b2 = $2 }
		function row(what, v, note,   frac) {
			frac = b2 > 0 ? v / b2 : 0
			if (state ~ /^10 MB/) {
				printf "| message path: %s of a %s state vs raw BLAKE2b%s | %s MB/s | %s MB/s | %.0f%% | >= 60%% | %s |\n",
					what, state, note, v, b2, frac * 100, (frac >= 0.6 ? "yes" : "**no**")
			}
		}
		$1 == "send" { row("sign (sender)", $6, "") }
		$1 == "receive" { row("verify (receiver)", $3, "") }
		$1 == "sign+verify" && $2 == "path" { row("sign+verify", $3, " (two digests: 50% at most)") }
		' "$out/msg.log" 2>/dev/null || true)
		if [[ -n $rows ]]; then
			echo "$rows"
		else
			missing msg "message path"
		fi
	fi

	# Scaling: no target, point at the files.
	if wanted scaling && [[ -n $(result scaling "$out/scaling.log" csv) ]]; then
		echo "| scaling: round time vs agents and vs model size" \
			"($(result scaling "$out/scaling.log" points) points) |" \
			"CSV $(result scaling "$out/scaling.log" csv) | - | - | curves, no target |" \
			"PNG $(result scaling "$out/scaling.log" png) |"
	else
		missing scaling "scaling"
	fi
	echo
	echo "Logs: $out/NAME.log. Only ratios measured side by side in this run mean anything."
} | tee "$out/results.md"

rc=0
for name in "${!status[@]}"; do
	case ${status[$name]} in
	0 | 77) ;;
	*) rc=1 ;;
	esac
done
exit "$rc"
