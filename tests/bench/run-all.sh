#!/bin/bash
# run-all.sh - run every benchmark of issue 9 in one go and print the ratios as a markdown table.
#
#   tests/bench/run-all.sh [-C BUILD] [-o OUTDIR] [--quick] [--no-build] [--only NAMES]
#
#   -C BUILD     meson build directory (default $MACC_BUILD, else ./build); use a release build
#   -o OUTDIR    where the logs, the scaling CSV and PNG and the table go
#                (default BUILD/bench-results)
#   --quick      small scale, to check that everything runs (fewer threads, rounds and points);
#                the ratios are then rough
#   --no-build   do not run ninja first (by default the benchmark targets are built)
#   --only NAMES comma list of: train, nn, msg, ring, scaling (default all)
#
# The benchmarks are the scripts and programs meson registers with benchmark() in
# tests/bench/meson.build, run one after another (never concurrently, so they do not compete for
# the cores) with the same environment meson gives them and a time limit each:
#   train    bench_train.sh    1. local training, macc-sim --agents 1 vs torch_train.py
#   nn       bench_nn          the learning core's samples/s table (information, no target)
#   msg      bench_msg         4. frame + sign + verify + decode vs raw BLAKE2b and memcpy
#   ring     bench_ring.sh     2. 4 macc-agentd on loopback vs torch_dmsgd.py (gloo), and
#                              3. the same ring vs macc-sim (cost of the network path)
#   scaling  bench_scaling.sh  5. round time vs agents and vs model size (CSV + PNG)
# Each one's full output is in OUTDIR/NAME.log. The table (also in OUTDIR/results.md) has one
# row per measured ratio: benchmark, macc's figure, the reference's, the ratio, the target of
# issue 9 and whether this run met it. A ratio is only meaningful within one run on one
# machine; on a busy machine they are noisy (the header records the load average).
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
only="train,nn,msg,ring,scaling"

while [[ $# -gt 0 ]]; do
	case $1 in
	-C) build=${2:?-C needs a directory}; shift ;;
	-o) out=${2:?-o needs a directory}; shift ;;
	--quick) quick=1 ;;
	--no-build) do_build=0 ;;
	--only) only=${2:?--only needs a list}; shift ;;
	-h | --help)
		sed -n '2,13p' "$0"
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
	case $name in
	train | nn | msg | ring | scaling) ;;
	*)
		echo "run-all: --only: unknown benchmark '$name' (train, nn, msg, ring, scaling)" >&2
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
	targets=(src/sim/macc-sim src/agentd/macc-agentd src/ctl/macc-ctl)
	wanted nn && targets+=(tests/bench/bench_nn)
	wanted msg && targets+=(tests/bench/bench_msg)
	echo "building ${targets[*]} in $build"
	if ! ninja -C "$build" -j 2 "${targets[@]}" >"$out/build.log" 2>&1; then
		echo "run-all: build failed, see $out/build.log" >&2
		exit 1
	fi
fi

if [[ $quick == 1 ]]; then
	export BENCH_THREADS=${BENCH_THREADS:-1} BENCH_EPOCHS=${BENCH_EPOCHS:-1}
	export BENCH_ROUNDS=${BENCH_ROUNDS:-20} BENCH_AGENTS=${BENCH_AGENTS:-"2 4 8"}
	export BENCH_DAEMON_AGENTS=${BENCH_DAEMON_AGENTS:-"2 4"}
	export BENCH_SIZES=${BENCH_SIZES:-"10000 1000000 10000000"}
fi

# run NAME LIMIT_S COMMAND...: run one benchmark, output to OUT/NAME.log; records its status.
declare -A status
run() {
	local name=$1 limit=$2 t0 rc=0
	shift 2
	if ! wanted "$name"; then
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
run train 7200 bash "$here/bench_train.sh"
run nn 1200 "$build/tests/bench/bench_nn" "${nn_args[@]}"
run msg 1200 "$build/tests/bench/bench_msg"
BENCH_OUT=$out/ring run ring 7200 bash "$here/bench_ring.sh"
BENCH_OUT=$out/scaling run scaling 7200 bash "$here/bench_scaling.sh"

# ---- the table -------------------------------------------------------------------------------
# result NAME KEY: KEY=... of the RESULT line with bench=NAME in a log.
result() {
	local line
	line=$(grep "^RESULT bench=$1 " "$2" 2>/dev/null | tail -n 1 || true)
	kv_value "$3" "$line"
}
yesno() {
	awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {
		if (v == "") { print "n/a"; exit }
		print ((op == ">=" ? v + 0 >= t + 0 : v + 0 <= t + 0) ? "yes" : "**no**")
	}'
}
missing() {
	local name=$1 what=$2
	if ! wanted "$name"; then
		return
	fi
	echo "| $what | - | - | - | - | not measured ($name: status ${status[$name]:-?}, see $name.log) |"
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
commit=$(git -C "$MACC_SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
buildtype=$(grep -o '"name": "buildtype", "value": "[a-z]*"' \
	"$build/meson-info/intro-buildoptions.json" 2>/dev/null | sed 's/.*"value": "//; s/"$//' || true)
{
	echo "## macc benchmarks ($started)"
	echo
	echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores, $(uname -sr); load average at start" \
		"$load. Commit $commit, build ${buildtype:-?} in $build$([[ $quick == 1 ]] && echo ', --quick')."
	echo
	echo "| benchmark | macc | reference | ratio | target | met? |"
	echo "|---|---|---|---|---|---|"

	# 1. local training: bench_train.sh's table, columns found by their header names.
	if wanted train; then
		rows=$(awk '
		$1 == "model" { for (i = 1; i <= NF; i++) col[$i] = i; hdr = 1; next }
		hdr && NF >= 5 && ($1 ~ /^(mlp|cnn|logreg):/) && col["ratio"] && $col["ratio"] ~ /x$/ {
			r = $col["ratio"]; sub(/x$/, "", r)
			tgt = ($1 ~ /^cnn:/) ? 1.0 : 1.3
			what = "1. local training " $1
			if (col["threads"]) what = what " threads " $col["threads"]
			if (col["batch"]) what = what " batch " $col["batch"]
			printf "| %s | %s samples/s | %s samples/s (PyTorch) | %.2fx | >= %.1fx | %s |\n",
				what, $col["macc_sps"], $col["torch_sps"], r, tgt, (r + 0 >= tgt) ? "yes" : "**no**"
		}' "$out/train.log" 2>/dev/null || true)
		if [[ -n $rows ]]; then
			echo "$rows"
		else
			missing train "1. local training"
		fi
	fi

	# 2. daemon ring vs PyTorch/gloo.
	if wanted ring && [[ -n $(result ring "$out/ring.log" ratio) ]]; then
		m=$(result ring "$out/ring.log" macc)
		r=$(result ring "$out/ring.log" ref)
		echo "| 2. 4-agent ring epochs/s (macc-agentd vs torch gloo) |" \
			"$(awk -v s="$m" 'BEGIN { printf "%.4f", 1 / s }') ($m s/epoch) |" \
			"$(awk -v s="$r" 'BEGIN { printf "%.4f", 1 / s }') ($r s/epoch) |" \
			"$(result ring "$out/ring.log" ratio)x | >= 2x |" \
			"$(yesno "$(result ring "$out/ring.log" ratio)" 2 '>=') |"
		d=$(result ring "$out/ring.log" acc_diff_pts)
		echo "| 2. final test accuracy (mean of 4 agents) | $(result ring "$out/ring.log" macc_acc) |" \
			"$(result ring "$out/ring.log" ref_acc) | $d points | within 0.5 points |" \
			"$(awk -v d="$d" 'BEGIN { print ((d < 0 ? -d : d) <= 0.5 ? "yes" : "**no**") }') |"
	else
		missing ring "2. 4-agent ring vs torch gloo"
	fi

	# 3. network path, sealed (the default) and plain.
	if wanted ring && [[ -n $(result netpath "$out/ring.log" ratio) ]]; then
		for b in netpath netpath_plain; do
			[[ -n $(result $b "$out/ring.log" ratio) ]] || continue
			echo "| 3. network path: $([[ $b == netpath ]] && echo sealed || echo plain) ring" \
				"epoch time / macc-sim epoch time" \
				"(same arithmetic: $(result $b "$out/ring.log" identical)) |" \
				"$(result $b "$out/ring.log" macc) s | $(result $b "$out/ring.log" ref) s |" \
				"$(result $b "$out/ring.log" ratio)x | <= 1.15x |" \
				"$(yesno "$(result $b "$out/ring.log" ratio)" 1.15 '<=') |"
		done
	else
		missing ring "3. network path"
	fi
	# The same comparisons in CPU per agent-round (steadier on a shared machine; no target).
	if wanted ring && [[ -n $(result cpu "$out/ring.log" sealed) ]]; then
		cs=$(result cpu "$out/ring.log" sealed)
		cp=$(result cpu "$out/ring.log" plain)
		csim=$(result cpu "$out/ring.log" sim)
		echo "| 3. CPU per agent-round: sealed ring / macc-sim (information) | $cs ms | $csim ms |" \
			"$(awk -v a="$cs" -v b="$csim" 'BEGIN { if (b > 0) printf "%.2f", a / b }')x | - | - |"
		if [[ -n $cp ]]; then
			echo "| 3. CPU per agent-round: plain ring / macc-sim (information) | $cp ms |" \
				"$csim ms | $(awk -v a="$cp" -v b="$csim" 'BEGIN { if (b > 0) printf "%.2f", a / b }')x |" \
				"- | - |"
			echo "| issue 12: CPU per agent-round, sealed / plain (information) | $cs ms | $cp ms |" \
				"$(awk -v a="$cs" -v b="$cp" 'BEGIN { if (b > 0) printf "%.2f", a / b }')x | - | - |"
		fi
	fi
	# Issue 12: what sealing costs the ring.
	if wanted ring && [[ -n $(result sealed "$out/ring.log" ratio) ]]; then
		echo "| issue 12: sealed ring epoch time / plain ring epoch time |" \
			"$(result sealed "$out/ring.log" macc) s | $(result sealed "$out/ring.log" ref) s |" \
			"$(result sealed "$out/ring.log" ratio)x | <= 1.05x |" \
			"$(yesno "$(result sealed "$out/ring.log" ratio)" 1.05 '<=') |"
	fi

	# 4. message path: bench_msg's "sign+verify path" against "blake2b", per state size, and
	# each side on its own (sender: encode + BLAKE2b + prefix; receiver: decode + BLAKE2b +
	# verify + load), each of which has one digest; sender + receiver has two, so at most 50%.
	if wanted msg; then
		rows=$(awk '
		/^STATE / { state = $0; sub(/^STATE /, "", state); sub(/ \(.*/, "", state) }
		$1 == "blake2b" { b2 = $2 }
		function row(what, v, note,   frac) {
			frac = b2 > 0 ? v / b2 : 0
			if (state ~ /^10 MB/) {
				printf "| 4. %s of a %s state vs raw BLAKE2b%s | %s MB/s | %s MB/s | %.0f%% | >= 60%% | %s |\n",
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
			missing msg "4. message path"
		fi
	fi

	# 5. scaling: no target, point at the files.
	if wanted scaling && [[ -n $(result scaling "$out/scaling.log" csv) ]]; then
		echo "| 5. scaling: round time vs agents and vs model size" \
			"($(result scaling "$out/scaling.log" points) points) |" \
			"CSV $(result scaling "$out/scaling.log" csv) | - | - | curves, no target |" \
			"PNG $(result scaling "$out/scaling.log" png) |"
	else
		missing scaling "5. scaling"
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
