#!/bin/bash
# table.sh - the attack table from run.sh's runs.txt: one row per attack, for each aggregation
# rule the honest agents' final accuracy (average model / worst agent, in %) and the change in
# points of the worst honest agent against the attack-free run of the same rule (negative: the
# attack cost that much).
# Without byzantine agents (attack none) "honest" is every agent.
#
# Usage: examples/robust/table.sh RUNS.TXT
set -euo pipefail

runs=${1:?usage: table.sh RUNS.TXT}
awk '
function kv(key,   i, a) {
	for (i = 1; i <= NF; i++) {
		if (index($i, key "=") == 1) {
			return substr($i, length(key) + 2)
		}
	}
	return ""
}
{
	att = kv("attack"); agg = kv("aggregation")
	h = kv("test_acc_honest"); hm = kv("test_acc_honest_min")
	if (h == "") { h = kv("test_acc_avg"); hm = kv("test_acc_min") }
	H[att, agg] = h * 100; HM[att, agg] = hm * 100
	if (!(att in seen_att)) { seen_att[att] = 1; atts[++na] = att }
	if (!(agg in seen_agg)) { seen_agg[agg] = 1; aggs[++ng] = agg }
	EX[att, agg] = kv("excluded_nonfinite") + kv("excluded_distance") + kv("quarantined")
}
END {
	printf "%-10s", "attack"
	for (g = 1; g <= ng; g++) { printf " | %-28s", aggs[g] " avg / min (d min)" }
	printf "\n"
	for (a = 1; a <= na; a++) {
		printf "%-10s", atts[a]
		for (g = 1; g <= ng; g++) {
			d = HM[atts[a], aggs[g]] - HM["none", aggs[g]]
			printf " | %5.1f / %5.1f (%+5.1f)       ", H[atts[a], aggs[g]], HM[atts[a], aggs[g]], d
		}
		printf "\n"
	}
}' "$runs"
