#!/bin/bash
# quickstart.sh: the README's main job. Starts a ring of four macc-agentd daemons on loopback
# that learn Fashion-MNIST (mlp:784-256-128-10, dmsgd, 2 epochs), shows their progress, and ends
# with each agent's test accuracy. It builds nothing: point it at a build directory with
# MACC_BUILD (default ./build) or put macc-agentd in PATH.
#
# usage: examples/quickstart.sh [-o WORKDIR] [-p BASE_PORT] [--epochs N] [--keep]
# Needs the Fashion-MNIST IDX files (Debian: dataset-fashion-mnist, or $MACC_DATA_DIR).
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
work=""
port=7640
epochs=2
keep=0
while [ $# -gt 0 ]; do
	case $1 in
	-o) work=${2:?}; shift ;;
	-p) port=${2:?}; shift ;;
	--epochs) epochs=${2:?}; shift ;;
	--keep) keep=1 ;;
	-h | --help)
		sed -n '2,9p' "$0"
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

"$here/ring-4/gen.sh" -o "$work" -p "$port" --set epochs="$epochs" --set lr=0.1 \
	--set checkpoint_every=0 >/dev/null
echo "ring of 4 agents on 127.0.0.1:$port-$((port + 3)), mlp:784-256-128-10, dmsgd, lr 0.1," \
	"$epochs epochs; logs in $work/agentJ.log"
start=$(date +%s.%N)
for j in 0 1 2 3; do
	"$agentd" -c "$work/agent$j/agentd.conf" --exit-when-done >"$work/agent$j.log" 2>&1 &
	pids+=("$!")
done

# Progress: agent0's lines as they come, until every daemon has exited (bounded).
# tail ends by itself when agent0 exits (--pid), so the pipeline drains before the summary.
tail -n +1 -F --pid="${pids[0]}" "$work/agent0.log" 2>/dev/null |
	grep --line-buffered -E "round [0-9]+/|eval at|error" | sed -u 's/^/  agent0: /' &
tailpid=$!
deadline=$((SECONDS + 1800))
status=0
for i in 0 1 2 3; do
	while kill -0 "${pids[$i]}" 2>/dev/null; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "quickstart: agents still running after 30 minutes, stopping" >&2
			status=1
			break 2
		fi
		sleep 0.5
	done
	wait "${pids[$i]}" || status=$?
done
wait "$tailpid" 2>/dev/null || true
end=$(date +%s.%N)

echo
echo "final test accuracy:"
for j in 0 1 2 3; do
	line=$(grep "training done" "$work/agent$j.log" | tail -n 1 || true)
	if [ -z "$line" ]; then
		echo "  agent$j: did not finish (see $work/agent$j.log)"
		status=1
		keep=1
		continue
	fi
	acc=$(sed -n 's/.*test accuracy \([0-9.]*\).*/\1/p' <<<"$line")
	echo "  agent$j: $(awk -v a="$acc" 'BEGIN { printf "%.2f%%", 100 * a }')"
done
awk -v s="$start" -v e="$end" -v n="$epochs" \
	'BEGIN { printf "wall time %.1f s, %.1f s per epoch\n", e - s, (e - s) / n }'
exit "$status"
