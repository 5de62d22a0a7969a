#!/bin/bash
# test_sim_threads.sh - macc-sim is bit-identical whatever --threads, for every algorithm, with
# and without simulated message drops; the digest really depends on the run (another seed, drops
# or omega change it); --dump-params writes every agent's parameters and matches the digests.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=test_sim_lib.sh
. "$(dirname "$0")/test_sim_lib.sh"
need_data

common=(--agents 4 --topology ring --rounds 6 --epoch-rounds 3 --eval-samples 200 --quiet
	--print-digest --batch 32)

# digest ARGS...: the digest= of a run's last line.
digest() {
	sim 120 "${common[@]}" "$@" || fail "run $* exited $?: $(cat "$TMP/err")"
	local d
	d=$(kv digest "$TMP/out")
	[ -n "$d" ] || fail "no digest= in: $(tail -n 1 "$TMP/out")"
	echo "$d"
}

for alg in dmsgd cdmsgd cdsgd dsgd centralized; do
	for drop in 0 0.3; do
		d1=$(digest --algorithm "$alg" --drop-prob "$drop" --threads 1)
		d2=$(digest --algorithm "$alg" --drop-prob "$drop" --threads 2)
		d3=$(digest --algorithm "$alg" --drop-prob "$drop" --threads 3)
		if [ "$d1" != "$d2" ] || [ "$d1" != "$d3" ]; then
			fail "$alg drop $drop: digests differ: T=1 $d1, T=2 $d2, T=3 $d3"
		fi
		echo "ok $alg drop=$drop digest=$d1"
	done
done

# The digest is sensitive to what happened.
base=$(digest --algorithm dmsgd --threads 2)
[ "$base" = "$(digest --algorithm dmsgd --threads 2)" ] || fail "same flags twice differ"
[ "$base" != "$(digest --algorithm dmsgd --threads 2 --seed 2)" ] || fail "seed has no effect"
[ "$base" != "$(digest --algorithm dmsgd --threads 2 --drop-prob 0.3)" ] \
	|| fail "--drop-prob has no effect"
[ "$base" != "$(digest --algorithm dmsgd --threads 2 --omega 0.5)" ] || fail "--omega has no effect"
# Drops are counted: 4 agents x 2 ring neighbours x 6 rounds = 48 messages, about 25% dropped.
digest --algorithm dmsgd --drop-prob 0.25 >/dev/null
[ "$(kv messages "$TMP/out")" = 48 ] || fail "messages=$(kv messages "$TMP/out"), expected 48"
awk -v d="$(kv dropped "$TMP/out")" 'BEGIN { exit !(d >= 5 && d <= 20) }' \
	|| fail "dropped=$(kv dropped "$TMP/out") of 48 at p=0.25"
# dmsgd with omega 0 is cdmsgd exactly (macc-algorithms(7)).
[ "$(digest --algorithm dmsgd --omega 0)" = "$(digest --algorithm cdmsgd)" ] \
	|| fail "dmsgd --omega 0 differs from cdmsgd"

# --dump-params: 4 agents x P float32; agent digests differ between agents (no consensus yet).
sim 120 "${common[@]}" --algorithm dmsgd --dump-params "$TMP/x.f32" || fail "dump run failed"
p=235146 # mlp:784-256-128-10: 784*256+256 + 256*128+128 + 128*10+10
[ "$(stat -c %s "$TMP/x.f32")" -eq $((4 * 4 * p)) ] || fail "dump size $(stat -c %s "$TMP/x.f32")"
[ "$(grep -c '^agent=[0-3] digest=' "$TMP/out")" -eq 4 ] || fail "expected 4 agent digest lines"
[ "$(grep '^agent=' "$TMP/out" | cut -d= -f3 | sort -u | wc -l)" -eq 4 ] \
	|| fail "agents' parameters should differ after 6 rounds of dmsgd on a ring"
echo "PASS"
