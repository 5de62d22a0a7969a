#!/bin/bash
# examples/paper/table.sh - markdown tables of final accuracies from run.sh's CSVs.
#
# Usage: examples/paper/table.sh DIR     (writes the markdown to stdout)
#
# For every (model, partition, topology) row and every algorithm column, takes the last CSV row
# of each seed's run and prints mean ± sample standard deviation over the seeds, in percent:
# first the test accuracy of the average model (test_acc_avg), then the mean of the agents' own
# test accuracies (test_acc_mean). The last column of the first table is DMSGD minus the better
# of CDMSGD (either form) and CDSGD, in points, so the paper's claim can be read off directly.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
	echo "Usage: table.sh DIR (a directory of run.sh CSVs)" >&2
	exit 2
fi
dir=$1
shopt -s nullglob
files=("$dir"/*_s*.csv)
if [ ${#files[@]} -eq 0 ]; then
	echo "table.sh: no run CSVs in $dir" >&2
	exit 1
fi

# One line per run: model partition topology algorithm seed epoch round acc_avg acc_mean
for f in "${files[@]}"; do
	name=$(basename "$f" .csv)
	IFS=_ read -r model part topo alg seed <<<"$name"
	last=$(tail -n 1 "$f")
	case "$last" in
	epoch,*) continue ;; # header only: the run did not finish an epoch
	esac
	IFS=, read -r epoch round _alg _topo _loss acc_avg acc_mean _rest <<<"$last"
	printf '%s %s %s %s %s %s %s %s %s\n' "$model" "$part" "$topo" "$alg" "${seed#s}" \
		"$epoch" "$round" "$acc_avg" "${acc_mean:-nan}"
done | awk '
function fmt(key, col,    n, i, s, m, v) {
	n = cnt[key]
	if (n == 0) {
		return "–"
	}
	s = 0
	for (i = 1; i <= n; i++) {
		s += val[key, col, i]
	}
	m = s / n
	v = 0
	for (i = 1; i <= n; i++) {
		v += (val[key, col, i] - m) ^ 2
	}
	v = n > 1 ? sqrt(v / (n - 1)) : 0
	means[key, col] = m
	return sprintf("%.2f ± %.2f", 100 * m, 100 * v)
}
{
	row = $1 SUBSEP $2 SUBSEP $3
	key = row SUBSEP $4
	if (!(row in seen_row)) {
		seen_row[row] = 1
		rows[++nrows] = row
	}
	seen_alg[$4] = 1
	n = ++cnt[key]
	val[key, "avg", n] = $8
	val[key, "mean", n] = $9
	seeds[$5] = 1
	epochs[$6] = 1
	rounds[$1 " " $2 ": " $7 " rounds"] = 1
}
END {
	split("dmsgd cdmsgd cdmsgd-nesterov cdsgd dsgd centralized", order, " ")
	na = 0
	for (i = 1; i <= 6; i++) {
		if (order[i] in seen_alg) {
			algs[++na] = order[i]
		}
	}
	for (a in seen_alg) {
		known = 0
		for (i = 1; i <= 6; i++) {
			if (a == order[i]) {
				known = 1
			}
		}
		if (!known) {
			algs[++na] = a
		}
	}
	ns = 0
	for (s in seeds) {
		ns++
	}
	ep = ""
	for (e in epochs) {
		ep = ep (ep == "" ? "" : ", ") e
	}
	for (t = 1; t <= 2; t++) {
		col = t == 1 ? "avg" : "mean"
		if (t == 1) {
			printf "Test accuracy of the average model (%%), mean ± std over %d seed(s), " \
				"after %s epoch(s)\n\n", ns, ep
		} else {
			printf "\nMean of the agents\047 own test accuracies (%%), mean ± std over " \
				"%d seed(s)\n\n", ns
		}
		printf "| model | partition | topology |"
		for (i = 1; i <= na; i++) {
			printf " %s |", algs[i]
		}
		if (t == 1) {
			printf " dmsgd − best(cdmsgd, cdmsgd-nesterov, cdsgd) |"
		}
		printf "\n|---|---|---|"
		for (i = 1; i <= na; i++) {
			printf "---:|"
		}
		if (t == 1) {
			printf "---:|"
		}
		printf "\n"
		for (r = 1; r <= nrows; r++) {
			split(rows[r], parts, SUBSEP)
			printf "| %s | %s | %s |", parts[1], parts[2], parts[3]
			for (i = 1; i <= na; i++) {
				printf " %s |", fmt(rows[r] SUBSEP algs[i], col)
			}
			if (t == 1) {
				d = rows[r] SUBSEP "dmsgd"
				best = -1
				split("cdmsgd cdmsgd-nesterov cdsgd", base, " ")
				for (b = 1; b <= 3; b++) {
					k = rows[r] SUBSEP base[b]
					if (cnt[k] > 0 && means[k, col] > best) {
						best = means[k, col]
					}
				}
				if (cnt[d] > 0 && best >= 0) {
					printf " %+.2f |", 100 * (means[d, col] - best)
				} else {
					printf " – |"
				}
			}
			printf "\n"
		}
	}
	printf "\nRounds per run:"
	first = 1
	for (k in rounds) {
		printf "%s %s", first ? "" : ";", k
		first = 0
	}
	printf "\n"
}'
