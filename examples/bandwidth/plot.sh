#!/bin/bash
# examples/bandwidth/plot.sh - accuracy against bytes, from examples/bandwidth/run.sh's results.
#
# Usage: examples/bandwidth/plot.sh DIR
#
# Writes DIR/bandwidth.png: one point per run (test accuracy of the averaged model at the end
# against megabytes sent per agent, log scale), one series per schedule x H, each point labelled
# with its compressor. The points' data go to DIR/plot-data/SCHEDULE_hH.dat.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
	echo "Usage: plot.sh DIR (a directory of examples/bandwidth/run.sh results)" >&2
	exit 2
fi
dir=$1
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not installed" >&2; exit 1; }
shopt -s nullglob
files=("$dir"/*.kv)
[ "${#files[@]}" -gt 0 ] || { echo "plot.sh: no .kv files in $dir" >&2; exit 1; }
data=$dir/plot-data
mkdir -p "$data"
rm -f "$data"/*.dat

# DATA/SCHEDULE_hH.dat: "MB accuracy% compressor", one line per run.
cat "${files[@]}" | awk -v data="$data" '
{
	delete kv
	for (i = 1; i <= NF; i++) {
		p = index($i, "=")
		if (p > 0) {
			kv[substr($i, 1, p - 1)] = substr($i, p + 1)
		}
	}
	f = data "/" kv["schedule"] "_h" kv["local_steps"] ".dat"
	printf "%.3f %.3f %s\n", kv["bytes_per_agent"] / 1e6, kv["test_acc_avg"] * 100, \
		kv["compress"] >> f
	model = kv["model"]
}
END { print model > (data "/model") }'
model=$(cat "$data/model")

terminal="pngcairo size 1100,700 font ',10'"
if ! gnuplot -e "set terminal pngcairo" >/dev/null 2>&1; then
	terminal="png size 1100,700"
fi
plots=()
for f in "$data"/*.dat; do
	t=$(basename "$f" .dat)
	plots+=("'$f' using 1:2 with points pointsize 1.5 title '${t/_h/, H=}', \
'$f' using 1:2:3 with labels offset 0,0.8 notitle")
done
joined=$(printf '%s, ' "${plots[@]}")
{
	echo "set terminal $terminal"
	echo "set output '$dir/bandwidth.png'"
	echo "set title '$model, 8 agents, dmsgd: accuracy against traffic'"
	echo "set logscale x"
	echo "set xlabel 'MB sent per agent (STATE frames, as macc-agentd would send them)'"
	echo "set ylabel 'test accuracy of the averaged model (%)'"
	echo "set grid"
	echo "set key bottom right"
	echo "plot ${joined%, }"
} | gnuplot
echo "plot.sh: wrote $dir/bandwidth.png" >&2
