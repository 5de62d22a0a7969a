#!/bin/bash
# run.sh - the attack table of robust mixing: macc-sim on 8 agents, 4-regular graph, Fashion-MNIST
# MLP, dmsgd, a short run, with one byzantine agent (agent 0) under each attack and each
# aggregation rule, next to the attack-free run. One macc-sim last line per run goes to
# $OUT/runs.txt; table.sh turns it into the table (honest agents' final accuracy, mean and min).
#
# Usage: examples/robust/run.sh [OUTDIR]
# Env: MACC_SIM (the binary), EPOCHS (2), SEED (1), THREADS (1), RULES (the aggregation rules,
# default "mean clip:auto trimmed:1"), SCREEN (a --screen-factor for every run; default: each
# rule's own, 0 for mean and 10 otherwise; SCREEN=0 shows what the rule alone does).
# The machine may be shared: every run is niced and uses THREADS worker threads.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
SIM=${MACC_SIM:-$here/../../build/src/sim/macc-sim}
OUT=${1:-$here/out}
EPOCHS=${EPOCHS:-2}
SEED=${SEED:-1}
THREADS=${THREADS:-1}
RULES=${RULES:-mean clip:auto trimmed:1}
screen=()
if [ -n "${SCREEN:-}" ]; then
	screen=(--screen-factor "$SCREEN")
fi

if [ ! -x "$SIM" ]; then
	echo "run.sh: macc-sim not found at $SIM (set MACC_SIM)" >&2
	exit 1
fi
mkdir -p "$OUT"
runs=$OUT/runs.txt
: >"$runs"

for agg in $RULES; do
	for attack in none signflip scale:10 noise:1 nan stale; do
		byz=()
		if [ "$attack" != none ]; then
			byz=(--byzantine "1:$attack")
		else
			byz=(--byzantine "0:none")
		fi
		echo "run.sh: aggregation=$agg attack=$attack" >&2
		line=$(nice -n 10 "$SIM" --agents 8 --topology regular:4 --algorithm dmsgd \
			--model mlp:784-256-128-10 --data fashion-mnist --epochs "$EPOCHS" \
			--seed "$SEED" --threads "$THREADS" --quiet --aggregation "$agg" \
			"${screen[@]}" "${byz[@]}" | tail -n 1)
		echo "attack=$attack $line" >>"$runs"
	done
done
"$here/table.sh" "$runs"
