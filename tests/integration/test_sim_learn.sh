#!/bin/bash
# test_sim_learn.sh - accuracy smoke test on short runs: a single agent and 8-agent fleets learn
# Fashion-MNIST well above chance (10%) within a few hundred rounds, their training loss falls,
# including with 20% of the messages dropped and on non-IID (Dirichlet) shards.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=test_sim_lib.sh
. "$(dirname "$0")/test_sim_lib.sh"
need_data

# check NAME KEY MIN ARGS...: run, then KEY on the last line must be >= MIN and the CSV's train
# loss must fall from the first epoch to the last.
check() {
	local name=$1 key=$2 min=$3
	shift 3
	sim 180 --eval-samples 2000 --quiet --csv "$TMP/run.csv" "$@" \
		|| fail "$name: exited $?: $(cat "$TMP/err")"
	local v
	v=$(kv "$key" "$TMP/out")
	[ -n "$v" ] || fail "$name: no $key= in $(tail -n 1 "$TMP/out")"
	ge "$v" "$min" || fail "$name: $key=$v, expected at least $min"
	awk -F, 'NR == 2 { first = $5 } END { exit !($5 < first) }' "$TMP/run.csv" \
		|| fail "$name: train loss did not fall: $(cut -d, -f1,5 "$TMP/run.csv" | tr '\n' ' ')"
	echo "ok $name $key=$v"
}

check "single agent" test_acc 0.72 --rounds 300 --epoch-rounds 100
check "dmsgd ring iid" test_acc_avg 0.72 --agents 8 --algorithm dmsgd --rounds 100 \
	--epoch-rounds 25 --threads 2
check "dmsgd ring iid, 20% drops" test_acc_avg 0.70 --agents 8 --algorithm dmsgd \
	--drop-prob 0.2 --rounds 100 --epoch-rounds 25 --threads 2
check "cdsgd ring dirichlet:0.5" test_acc_avg 0.50 --agents 8 --algorithm cdsgd \
	--partition dirichlet:0.5 --rounds 100 --epoch-rounds 25 --threads 2
check "centralized" test_acc_avg 0.72 --agents 8 --algorithm centralized --rounds 100 \
	--epoch-rounds 25 --threads 2
echo "PASS"
