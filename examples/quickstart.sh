#!/bin/bash
# quickstart.sh: the README's main job. Starts a ring of four macc-agentd daemons on loopback
# that learn Fashion-MNIST (mlp:784-256-128-10, dmsgd, 2 epochs), shows their progress, draws
# the training curves (test accuracy and consensus distance of every agent over the rounds) as
# a PNG with gnuplot, and ends with each agent's test accuracy. It builds nothing: point it at a
# build directory with MACC_BUILD (default ./build) or put macc-agentd and macc-ctl in PATH.
#
# The curves come from what the daemons report on their control sockets: every 2 s the script
# asks each agent for `macc-ctl --json status` and records round, test accuracy (evaluated
# every 26 rounds) and consensus distance (to its neighbours) in WORKDIR/metrics.tsv.
#
# usage: examples/quickstart.sh [-o WORKDIR] [-p BASE_PORT] [--epochs N] [--plot FILE.png]
#                               [--keep]
#   --plot FILE   where to write the PNG (default BUILD/macc-quickstart.png, beside the binaries)
# Needs the Fashion-MNIST IDX files (Debian: dataset-fashion-mnist, or $MACC_DATA_DIR) and,
# for the plot, gnuplot (Debian: gnuplot-nox; without it the plot is skipped).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${MACC_BUILD:-$here/../build}
agentd=$build/src/agentd/macc-agentd
if [ ! -x "$agentd" ]; then
	agentd=$(command -v macc-agentd || true)
fi
if [ -z "$agentd" ] || [ ! -x "$agentd" ]; then
	echo "quickstart: macc-agentd not found (build it, or set MACC_BUILD)" >&2
	exit 1
fi
ctl=$build/src/ctl/macc-ctl
if [ ! -x "$ctl" ]; then
	ctl=$(command -v macc-ctl || true)
fi
if [ -z "$ctl" ] || [ ! -x "$ctl" ]; then
	echo "quickstart: macc-ctl not found (build it, or set MACC_BUILD)" >&2
	exit 1
fi
export MACC_CTL=$ctl # gen.sh makes the keys with it
work=""
port=7640
epochs=2
keep=0
# The PNG goes beside the build (not into the source tree's top level) unless --plot says where.
if [ -d "$build" ]; then
	plot=$(cd "$build" && pwd)/macc-quickstart.png
else
	plot=$PWD/macc-quickstart.png
fi
while [ $# -gt 0 ]; do
	case $1 in
	-o) work=${2:?}; shift ;;
	-p) port=${2:?}; shift ;;
	--epochs) epochs=${2:?}; shift ;;
	--plot) plot=${2:?}; shift ;;
	--keep) keep=1 ;;
	-h | --help)
		sed -n '2,17p' "$0"
		exit 0
		;;
	*)
		echo "quickstart: unknown argument '$1'" >&2
		exit 2
		;;
	esac
	shift
done
if [ -z "$work" ]; then
	work=$(mktemp -d /tmp/macc-quickstart.XXXXXX)
fi

pids=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	if [ "$keep" = 0 ]; then
		rm -rf "$work"
	else
		echo "kept $work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 234 rounds per epoch (a quarter of Fashion-MNIST's 60000 samples in batches of 64): a test
# evaluation every 26 rounds gives 9 points per epoch for the curves, for ~2% more time. One
# compute thread per agent: the four share this host's cores.
"$here/ring-4/gen.sh" -o "$work" -p "$port" --set epochs="$epochs" --set lr=0.1 \
	--set checkpoint_every=0 --set eval_every=26 --set threads=1 >/dev/null
echo "ring of 4 agents on 127.0.0.1:$port-$((port + 3)), mlp:784-256-128-10, dmsgd, lr 0.1," \
	"$epochs epochs; logs in $work/agentJ.log"
start=$(date +%s.%N)
# No --exit-when-done: a finished daemon stays up (state "done") so its final status can be
# read over the control socket; the script stops them at the end.
for j in 0 1 2 3; do
	"$agentd" -c "$work/agent$j/agentd.conf" >"$work/agent$j.log" 2>&1 &
	pids+=("$!")
done

# json_field NAME JSON: a number, null or lower-case string field of macc-ctl's JSON.
json_field() {
	sed -n "s/.*\"$1\":\(\"[a-z]*\"\|null\|[-+0-9.eE][-+0-9.eE]*\).*/\1/p" <<<"$2" | tr -d '"'
}

# poll: ask every agent for its status; append "agent round epoch accuracy distance loss" to
# metrics.tsv when its round moved (and keep its last status); print how many agents are done.
last_round=(-1 -1 -1 -1)
final=("" "" "" "")
metrics=$work/metrics.tsv
printf 'agent\tround\tepoch\ttest_accuracy\tconsensus_distance\ttrain_loss\n' >"$metrics"
poll() {
	local j st r done_n=0
	for j in 0 1 2 3; do
		st=$("$ctl" -s "$work/agent$j/ctl.sock" --json status 2>/dev/null) || continue
		if [ "$(json_field state "$st")" = "done" ]; then
			done_n=$((done_n + 1))
			final[j]=$(json_field test_accuracy_ratio "$st")
		fi
		r=$(json_field round "$st")
		if [ -z "$r" ] || [ "$r" = "${last_round[$j]}" ]; then
			continue
		fi
		last_round[j]=$r
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$j" "$r" "$(json_field epoch "$st")" \
			"$(json_field test_accuracy_ratio "$st")" "$(json_field consensus_distance "$st")" \
			"$(json_field train_loss "$st")" >>"$metrics"
	done
	ndone=$done_n
}

# Progress: agent0's lines as they come, while every agent is polled, until all four report
# "done" (bounded) or one of them exits early. tail ends by itself when agent0 exits (--pid).
tail -n +1 -F --pid="${pids[0]}" "$work/agent0.log" 2>/dev/null |
	grep --line-buffered -E "round [0-9]+/|eval at|error" | sed -u 's/^/  agent0: /' &
tailpid=$!
deadline=$((SECONDS + 1800))
status=0
ndone=0
while [ "$ndone" -lt 4 ]; do
	sleep 2
	poll
	for i in 0 1 2 3; do
		if ! kill -0 "${pids[$i]}" 2>/dev/null; then
			echo "quickstart: agent$i exited early (see $work/agent$i.log)" >&2
			status=1
			break 2
		fi
	done
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "quickstart: agents still running after 30 minutes, stopping" >&2
		status=1
		break
	fi
done
end=$(date +%s.%N)
for i in 0 1 2 3; do
	kill -TERM "${pids[$i]}" 2>/dev/null || true
done
for i in 0 1 2 3; do
	wait "${pids[$i]}" 2>/dev/null || true
done
wait "$tailpid" 2>/dev/null || true

# The curves: one line per agent, accuracy on top, consensus distance (log scale) below.
plotted=""
if ! command -v gnuplot >/dev/null; then
	plotted="(gnuplot not found: no plot; the numbers are in $metrics)"
elif [ "$(wc -l <"$metrics")" -lt 3 ]; then
	plotted="(too few status samples for a plot)"
else
	for j in 0 1 2 3; do
		awk -F'\t' -v j="$j" 'NR > 1 && $1 == j' "$metrics" >"$work/curve$j.tsv"
	done
	if gnuplot >"$work/gnuplot.err" 2>&1 <<GNUPLOT; then
set terminal pngcairo size 900,700 noenhanced
set output '$plot'
set multiplot layout 2,1 title 'macc quickstart: ring of 4 agents, mlp:784-256-128-10, dmsgd'
set grid
set datafile missing 'null'
set key bottom right
set ylabel 'test accuracy (%)'
plot for [j=0:3] '$work/curve'.j.'.tsv' using 2:(100*\$4) with linespoints pt 7 ps 0.5 \\
	title 'agent'.j
set key top right
set xlabel 'round'
set ylabel 'consensus distance'
set logscale y
plot for [j=0:3] '$work/curve'.j.'.tsv' using 2:5 with lines title 'agent'.j
unset multiplot
GNUPLOT
		plotted="training curves: $plot"
	else
		plotted="(gnuplot failed: $(head -c 300 "$work/gnuplot.err"); numbers in $metrics)"
	fi
fi

echo
echo "$plotted"
echo "final test accuracy:"
for j in 0 1 2 3; do
	acc=${final[$j]}
	if [ -z "$acc" ] || [ "$acc" = null ]; then
		echo "  agent$j: did not finish (see $work/agent$j.log)"
		status=1
		keep=1
		continue
	fi
	echo "  agent$j: $(awk -v a="$acc" 'BEGIN { printf "%.2f%%", 100 * a }')"
done
awk -v s="$start" -v e="$end" -v n="$epochs" \
	'BEGIN { printf "wall time %.1f s, %.1f s per epoch\n", e - s, (e - s) / n }'
exit "$status"
