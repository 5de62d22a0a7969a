#!/bin/bash
# examples/paper/plot.sh - gnuplot PNGs from run.sh's CSVs.
#
# Usage: examples/paper/plot.sh DIR
#
# Writes DIR/plot_MODEL_PARTITION.png for every model and partition in DIR: one column per
# topology; the top row is the test accuracy of the average model per epoch, the bottom row the
# consensus distance (mean ||x_j - x_bar||^2, log scale; centralized is 0 and left out). Each
# line is one algorithm, averaged over the seeds. The per-line data go to DIR/plot-data/.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
	echo "Usage: plot.sh DIR (a directory of run.sh CSVs)" >&2
	exit 2
fi
dir=$1
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not installed" >&2; exit 1; }
shopt -s nullglob
files=("$dir"/*_s*.csv)
if [ ${#files[@]} -eq 0 ]; then
	echo "plot.sh: no run CSVs in $dir" >&2
	exit 1
fi
data=$dir/plot-data
mkdir -p "$data"
rm -f "$data"/*.dat

# Average over seeds: DATA/MODEL_PART_TOPO_ALG.dat with "epoch acc_avg consensus_dist".
declare -A groups=()
for f in "${files[@]}"; do
	name=$(basename "$f" .csv)
	groups[${name%_s*}]+="$f "
done
for g in "${!groups[@]}"; do
	# shellcheck disable=SC2086 # the file list is space separated on purpose
	awk -F, 'FNR > 1 { acc[$1] += $6; cd[$1] += $10; n[$1]++; if ($1 > max) max = $1 }
		END { for (e = 1; e <= max; e++) if (n[e] > 0)
			printf "%d %.6f %.6g\n", e, acc[e] / n[e], cd[e] / n[e] }' \
		${groups[$g]} >"$data/$g.dat"
done

terminal="pngcairo size 1500,900 font ',10'"
if ! gnuplot -e "set terminal pngcairo" >/dev/null 2>&1; then
	terminal="png size 1500,900"
fi

declare -A mp=()
for g in "${!groups[@]}"; do
	IFS=_ read -r model part _topo _alg <<<"$g"
	mp["${model}_${part}"]=1
done
order="dmsgd cdmsgd cdmsgd-nesterov cdsgd dsgd centralized"
for key in "${!mp[@]}"; do
	png=$dir/plot_$key.png
	topos=()
	for t in full ring bipartite star; do
		compgen -G "$data/${key}_${t}_*.dat" >/dev/null && topos+=("$t")
	done
	for f in "$data/${key}"_*.dat; do
		IFS=_ read -r _m _p t _a <<<"$(basename "$f" .dat)"
		case " ${topos[*]} " in
		*" $t "*) ;;
		*) topos+=("$t") ;;
		esac
	done
	ncol=${#topos[@]}
	{
		echo "set terminal $terminal"
		echo "set output '$png'"
		echo "set multiplot layout 2,$ncol title '${key//_/, }: 8 agents, Fashion-MNIST'"
		echo "set grid"
		echo "set xtics 1"
		echo "set key bottom right"
		for row in acc cd; do
			for t in "${topos[@]}"; do
				if [ "$row" = acc ]; then
					echo "unset logscale y"
					echo "set title '$t: test accuracy of the average model'"
					echo "set ylabel 'accuracy'"
					col=2
				else
					echo "set logscale y"
					echo "set title '$t: consensus distance'"
					echo "set ylabel 'mean ||x_j - x_{bar}||^2'"
					col=3
				fi
				echo "set xlabel 'epoch'"
				plots=()
				for a in $order; do
					f=$data/${key}_${t}_${a}.dat
					[ -s "$f" ] || continue
					[ "$row" = cd ] && [ "$a" = centralized ] && continue
					plots+=("'$f' using 1:$col with linespoints title '$a'")
				done
				if [ ${#plots[@]} -eq 0 ]; then
					echo "set multiplot next"
					continue
				fi
				(
					IFS=,
					echo "plot ${plots[*]}"
				)
			done
		done
		echo "unset multiplot"
	} >"$data/$key.gp"
	gnuplot "$data/$key.gp" 2>"$data/$key.gnuplot.log" || {
		echo "plot.sh: gnuplot failed for $key:" >&2
		cat "$data/$key.gnuplot.log" >&2
		exit 1
	}
	echo "plot.sh: wrote $png"
done
