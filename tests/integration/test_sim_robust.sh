#!/bin/bash
# test_sim_robust.sh - macc-sim's robust mixing and byzantine agents: nonsense
# combinations are usage errors (exit 2); mean without screening is today's path bit for bit
# (the flags alone change nothing); robust runs are bit-identical whatever --threads; a NaN
# attacker is excluded, counted and quarantined, and the attack is real (mean breaks under it
# and under signflip, clip:auto keeps the honest agents learning).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=test_sim_lib.sh
. "$(dirname "$0")/test_sim_lib.sh"
need_data

common=(--agents 8 --topology regular:4 --eval-samples 300 --quiet --print-digest --batch 32)

# usage WHAT PATTERN ARGS...: exit status 2 and stderr matching PATTERN.
usage() {
	local what=$1 pat=$2 rc=0
	shift 2
	sim 60 "$@" || rc=$?
	[ "$rc" -eq 2 ] || fail "$what: exit status $rc, expected 2 (stderr: $(cat "$TMP/err"))"
	grep -qi -- "$pat" "$TMP/err" || fail "$what: stderr does not say '$pat': $(cat "$TMP/err")"
	echo "ok usage: $what"
}
usage "bad rule" "aggregation\|median\|mean\|clip" "${common[@]}" --rounds 2 --aggregation median
usage "bad attack" "attack" "${common[@]}" --rounds 2 --byzantine 1:flip
usage "K = N" "below the number of agents" "${common[@]}" --rounds 2 --byzantine 8:nan
usage "compress" "compress" "${common[@]}" --rounds 2 --compress int8 --byzantine 1:nan
usage "push-sum" "push-sum" "${common[@]}" --rounds 2 --algorithm sgp --aggregation clip:auto
usage "centralized" "no messages" "${common[@]}" --rounds 2 --algorithm centralized \
	--byzantine 1:nan
usage "single agent" "no messages" --agents 1 --rounds 2 --aggregation clip:1
usage "trimmed degree" "trimmed\|neighbour\|deg" "${common[@]}" --rounds 2 --topology ring \
	--aggregation trimmed:1
usage "schedule" "schedule" "${common[@]}" --rounds 2 --schedule matching \
	--aggregation clip:auto
usage "screen factor" "screen-factor" "${common[@]}" --rounds 2 --screen-factor -1

# digest ARGS...: the digest= of a run's last line (the run's output stays in $TMP/out).
digest() {
	sim 60 "${common[@]}" "$@" || fail "run $* exited $?: $(cat "$TMP/err")"
	local d
	d=$(kv digest "$TMP/out")
	[ -n "$d" ] || fail "no digest= in: $(tail -n 1 "$TMP/out")"
	echo "$d"
}

# mean without screening is the plain path: the flags change no bit, and print no robust keys.
for alg in dmsgd dsgd; do
	plain=$(digest --rounds 6 --algorithm "$alg" --drop-prob 0.2)
	[ "$(digest --rounds 6 --algorithm "$alg" --drop-prob 0.2 --aggregation mean \
		--screen-factor 0 --byzantine 0:signflip)" = "$plain" ] \
		|| fail "$alg: mean / screen 0 / K = 0 changed the digest"
	echo "ok $alg: mean is today's path ($plain)"
done
digest --rounds 6 >/dev/null
! grep -q 'excluded_\|aggregation=' "$TMP/out" || fail "plain run prints robust keys"

# Bit-identical whatever --threads, for each rule under an attack, with drops and dsgd.
for cfg in "clip:auto 1:nan dmsgd" "trimmed:1 1:scale:10 dmsgd" "clip:0.5 2:noise:1 dsgd" \
	"mean 1:stale cdmsgd"; do
	read -r agg byz alg <<<"$cfg"
	args=(--rounds 8 --aggregation "$agg" --byzantine "$byz" --algorithm "$alg" --drop-prob 0.1)
	d1=$(digest "${args[@]}" --threads 1)
	d2=$(digest "${args[@]}" --threads 2)
	d3=$(digest "${args[@]}" --threads 3)
	if [ "$d1" != "$d2" ] || [ "$d1" != "$d3" ]; then
		fail "$cfg: digests differ: T=1 $d1, T=2 $d2, T=3 $d3"
	fi
	echo "ok threads $cfg digest=$d1"
done
# Robust mixing really changes the run, and the attack changes it too.
[ "$(digest --rounds 8 --aggregation clip:auto)" != "$(digest --rounds 8)" ] \
	|| fail "clip:auto has no effect"
[ "$(digest --rounds 8 --byzantine 1:signflip)" != "$(digest --rounds 8)" ] \
	|| fail "--byzantine has no effect"

# A NaN attacker (agent 0, 4 neighbours) over R rounds: every one of its 4R messages is
# excluded as non-finite or skipped in quarantine, quarantines start, the honest agents learn.
R=40
digest --rounds $R --aggregation clip:auto --byzantine 1:nan >/dev/null
nf=$(kv excluded_nonfinite "$TMP/out")
qd=$(kv quarantined "$TMP/out")
if [ -z "$nf" ] || [ -z "$qd" ]; then
	fail "no exclusion counts: $(tail -n 1 "$TMP/out")"
fi
[ "$nf" -ge 12 ] || fail "excluded_nonfinite=$nf, expected >= 12"
[ $((nf + qd)) -ge $((4 * R)) ] || fail "nonfinite $nf + quarantined $qd < $((4 * R))"
[ "$(kv quarantines "$TMP/out")" -ge 4 ] || fail "quarantines=$(kv quarantines "$TMP/out")"
clip_nan=$(kv test_acc_honest_min "$TMP/out")
ge "$clip_nan" 0.5 || fail "clip:auto under nan: honest min accuracy $clip_nan"
echo "ok nan: excluded_nonfinite=$nf quarantined=$qd honest_min=$clip_nan"

# The attack is real: mean breaks under nan and signflip, clip:auto does not.
digest --rounds $R --byzantine 1:nan >/dev/null
mean_nan=$(kv test_acc_honest "$TMP/out")
ge 0.2 "$mean_nan" || fail "mean under nan: honest accuracy $mean_nan, expected broken"
digest --rounds $R --byzantine 1:signflip >/dev/null
mean_sf=$(kv test_acc_honest_min "$TMP/out")
digest --rounds $R --byzantine 1:signflip --aggregation clip:auto >/dev/null
clip_sf=$(kv test_acc_honest_min "$TMP/out")
ge "$clip_sf" "$(awk -v m="$mean_sf" 'BEGIN { print m + 0.2 }')" \
	|| fail "signflip: clip:auto honest min $clip_sf not well above mean's $mean_sf"
echo "ok attack is real: mean nan=$mean_nan signflip min=$mean_sf, clip:auto signflip min=$clip_sf"
echo "PASS"
