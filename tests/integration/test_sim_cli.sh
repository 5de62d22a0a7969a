#!/bin/bash
# test_sim_cli.sh - macc-sim's command line and reports: --help documents every flag, bad flags
# and values exit 2 with a message naming them, a short single-agent run and a short 4-agent run
# print their progress and key=value lines, and the CSV has the header and one row per epoch.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=test_sim_lib.sh
. "$(dirname "$0")/test_sim_lib.sh"

# --help: exit 0, every long option of the source's option table is documented.
sim 10 --help || fail "--help exited $?"
grep -q '^Usage: macc-sim' "$TMP/out" || fail "--help has no usage line"
flags=$(sed -n 's/^\t{"\([a-z-]*\)", [a-z_]*_argument.*/\1/p' "$MACC_SRC/src/sim/main.c")
[ -n "$flags" ] || fail "could not read the option table from main.c"
for f in $flags; do
	grep -q -- "--$f\\b" "$TMP/out" || fail "--help does not document --$f"
done

# Usage errors: status 2 and a message that names the problem.
expect_usage() {
	local what=$1 pattern=$2
	shift 2
	set +e
	sim 20 "$@"
	local rc=$?
	set -e
	[ "$rc" -eq 2 ] || fail "$what: exit status $rc, expected 2 (stderr: $(cat "$TMP/err"))"
	grep -q -- "$pattern" "$TMP/err" || fail "$what: stderr lacks '$pattern': $(cat "$TMP/err")"
}
expect_usage "unknown flag" "unknown option '--bogus'" --bogus
expect_usage "missing value" "needs a value" --agents
expect_usage "non-numeric lr" "--lr: expected a number" --lr abc
expect_usage "negative agents" "--agents: expected an integer" --agents -3
expect_usage "momentum 1" "--momentum" --momentum 1
expect_usage "zero batch" "--batch" --batch 0
expect_usage "stray argument" "unexpected argument 'extra'" extra
expect_usage "bad model" "foo" --model mlp:foo
expect_usage "bad algorithm" "nosuch" --agents 2 --algorithm nosuch
expect_usage "bad lr schedule" "" --lr-schedule wobble

need_data
expect_usage "bad topology" "" --agents 4 --topology moebius
expect_usage "bipartite with odd N" "" --agents 3 --topology bipartite
expect_usage "bad partition" "" --agents 4 --partition halves
# An agent's own configuration error names the agent once, with the mixer's text intact (it was
# formatted into itself: "agent 0: agent 0: on trimmed:1 ...").
set +e
sim 60 --agents 4 --topology torus:2x2 --aggregation trimmed:1 --rounds 1
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "trimmed:1 on a 2-regular graph was accepted"
grep -q '^macc-sim: agent 0: aggregation trimmed:1 needs at least 3 neighbours' "$TMP/err" ||
	fail "trimmed:1 on a 2-regular graph: $(cat "$TMP/err")"

# Single agent: 2 epochs of 30 rounds.
sim 120 --rounds 60 --epoch-rounds 30 --eval-samples 1000 --csv "$TMP/one.csv" \
	|| fail "single-agent run exited $?: $(cat "$TMP/err")"
[ "$(grep -c '^epoch=' "$TMP/out")" -eq 2 ] || fail "expected 2 progress lines: $(cat "$TMP/out")"
for k in test_acc train_loss samples_per_s; do
	[ -n "$(kv "$k" "$TMP/out")" ] || fail "last line lacks $k=: $(tail -n 1 "$TMP/out")"
done
ge "$(kv samples_per_s "$TMP/out")" 1 || fail "samples_per_s is not positive"
head -n 1 "$TMP/one.csv" | grep -qx \
	'epoch,round,algorithm,topology,train_loss,test_acc_avg,test_acc_mean,test_acc_min,test_acc_max,consensus_dist,wall_s,bytes_per_agent' \
	|| fail "CSV header: $(head -n 1 "$TMP/one.csv")"
[ "$(wc -l <"$TMP/one.csv")" -eq 3 ] || fail "CSV should have header + 2 rows: $(cat "$TMP/one.csv")"
awk -F, 'NR > 1 && NF != 12 { exit 1 }' "$TMP/one.csv" || fail "CSV rows need 12 fields"
[ "$(sed -n 3p "$TMP/one.csv" | cut -d, -f1,2)" = "2,60" ] || fail "CSV row 2 is not epoch 2, round 60"

# --quiet: only the last line on stdout.
sim 120 --rounds 5 --eval-samples 100 --quiet || fail "quiet run exited $?"
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "--quiet printed more than one line: $(cat "$TMP/out")"

# Four agents, 3 epochs of 10 rounds, the last one partial (--rounds 25).
sim 120 --agents 4 --topology ring --algorithm dmsgd --rounds 25 --epoch-rounds 10 \
	--eval-samples 1000 --threads 2 --csv "$TMP/four.csv" \
	|| fail "4-agent run exited $?: $(cat "$TMP/err")"
for k in test_acc_avg test_acc_mean test_acc_min test_acc_max consensus_dist spectral_gap \
	train_loss; do
	[ -n "$(kv "$k" "$TMP/out")" ] || fail "last line lacks $k=: $(tail -n 1 "$TMP/out")"
done
awk -v g="$(kv spectral_gap "$TMP/out")" 'BEGIN { exit !(g > 0.66 && g < 0.67) }' \
	|| fail "4-ring Metropolis spectral gap should be 2/3"
[ "$(wc -l <"$TMP/four.csv")" -eq 4 ] || fail "CSV should have header + 3 rows: $(cat "$TMP/four.csv")"
[ "$(tail -n 1 "$TMP/four.csv" | cut -d, -f1-4)" = "3,25,dmsgd,ring" ] \
	|| fail "last CSV row: $(tail -n 1 "$TMP/four.csv")"
# Per-agent columns: empty before the last epoch, filled at the end.
[ "$(sed -n 2p "$TMP/four.csv" | cut -d, -f7)" = "" ] || fail "row 1 should leave test_acc_mean empty"
[ -n "$(tail -n 1 "$TMP/four.csv" | cut -d, -f7)" ] || fail "last row lacks test_acc_mean"
ge "$(tail -n 1 "$TMP/four.csv" | cut -d, -f10)" 0.0000000001 \
	|| fail "consensus distance of dmsgd on a ring should be positive"
echo "PASS"
