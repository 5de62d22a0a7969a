#!/bin/bash
# test_sim_edge.sh - macc-sim beyond a fixed undirected graph (macc-algorithms(7)), on tiny runs:
#   - static schedule, --compress none and --local-steps 1 are today's path bit for bit;
#   - matching and exp-pairs run, are bit-identical whatever --threads, and send less;
#   - sgp and push-sum dmsgd run on a directed ring file and learn; sgp equals cdmsgd on an
#     undirected ring (equal shares and weights), other algorithms are refused on a directed graph;
#   - local steps change the run, not the traffic per round, and shorten the default epoch;
#   - every compressor runs, thread-independently, and int8 sends >= 3.5x fewer bytes than none;
#   - bytes_per_agent is the exact STATE frame size (computed by hand below) times messages.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=test_sim_lib.sh
. "$(dirname "$0")/test_sim_lib.sh"
need_data

common=(--rounds 6 --epoch-rounds 3 --eval-samples 200 --quiet --print-digest --batch 32)

# run ARGS...: a bounded run that must succeed; the last line stays in $TMP/out.
run() {
	sim 120 "${common[@]}" "$@" || fail "run $* exited $?: $(cat "$TMP/err")"
}

# digest ARGS...: the digest= of a run's last line.
digest() {
	run "$@"
	local d
	d=$(kv digest "$TMP/out")
	[ -n "$d" ] || fail "no digest= in: $(tail -n 1 "$TMP/out")"
	echo "$d"
}

# same_threads ARGS...: digests with 1, 2 and 3 threads agree; prints the digest.
same_threads() {
	local d1 d2 d3
	d1=$(digest "$@" --threads 1)
	d2=$(digest "$@" --threads 2)
	d3=$(digest "$@" --threads 3)
	if [ "$d1" != "$d2" ] || [ "$d1" != "$d3" ]; then
		fail "$*: digests differ: T=1 $d1, T=2 $d2, T=3 $d3"
	fi
	echo "$d1"
}

# expect_usage PATTERN ARGS...: exit status 2 and PATTERN on stderr.
expect_usage() {
	local pattern=$1
	shift
	set +e
	sim 60 "${common[@]}" "$@"
	local rc=$?
	set -e
	[ "$rc" -eq 2 ] || fail "$*: exit status $rc, expected 2 (stderr: $(cat "$TMP/err"))"
	grep -q -- "$pattern" "$TMP/err" || fail "$*: stderr lacks '$pattern': $(cat "$TMP/err")"
}

# ---- The defaults are today's path, bit for bit -------------------------------------------
for alg in dmsgd dsgd cdsgd; do
	for drop in 0 0.3; do
		base=$(digest --agents 4 --algorithm "$alg" --drop-prob "$drop" --threads 2)
		for flag in "--schedule static" "--local-steps 1" "--compress none"; do
			# shellcheck disable=SC2086 # flag is two words on purpose
			d=$(digest --agents 4 --algorithm "$alg" --drop-prob "$drop" \
				--threads 2 $flag)
			[ "$d" = "$base" ] || fail "$alg drop=$drop: $flag changed the digest"
		done
	done
	echo "ok defaults unchanged: $alg"
done

# ---- Exact bytes: 4-agent ring, dmsgd, P = 235146 (mlp:784-256-128-10) ---------------------
# body  = fixmap 1 + "round" 6+1 + "n" 2+5 + "enc" 4+1 + "x" 2+5+4P + "mom" 4+5+4P = 1881204
# frame = len 4 + fixmap 1 + "ver" 4+1 + "type" 5+1 + "from" 5+34 + "sig" 4+66 + "body" 5+5
#       + body = 1881339; 2 neighbours x 6 rounds = 22576068 bytes per agent.
run --agents 4 --algorithm dmsgd
[ "$(kv bytes_per_agent "$TMP/out")" = 22576068 ] \
	|| fail "bytes_per_agent=$(kv bytes_per_agent "$TMP/out"), expected 22576068"
[ "$(kv comm_rounds "$TMP/out")" = 6 ] || fail "comm_rounds=$(kv comm_rounds "$TMP/out")"
none_bytes=$(kv bytes_per_agent "$TMP/out")
# cdmsgd sends no momentum: body 1881204 - (4+5+4P) = 940611, frame 940746, x 12 = 11288952.
run --agents 4 --algorithm cdmsgd
[ "$(kv bytes_per_agent "$TMP/out")" = 11288952 ] \
	|| fail "cdmsgd bytes_per_agent=$(kv bytes_per_agent "$TMP/out"), expected 11288952"
# The CSV's last column is the running total.
run --agents 4 --algorithm dmsgd --csv "$TMP/b.csv"
[ "$(head -n 1 "$TMP/b.csv" | awk -F, '{ print $NF }')" = bytes_per_agent ] \
	|| fail "CSV header: $(head -n 1 "$TMP/b.csv")"
[ "$(sed -n 2p "$TMP/b.csv" | awk -F, '{ print $NF }')" = 11288034 ] \
	|| fail "CSV row 1 bytes: $(sed -n 2p "$TMP/b.csv")"
[ "$(sed -n 3p "$TMP/b.csv" | awk -F, '{ print $NF }')" = 22576068 ] \
	|| fail "CSV row 2 bytes: $(sed -n 3p "$TMP/b.csv")"
echo "ok exact bytes"

# ---- Schedules ------------------------------------------------------------------------------
static=$(digest --agents 8 --algorithm dmsgd)
static_bytes=$(kv bytes_per_agent "$TMP/out")
m=$(same_threads --agents 8 --schedule matching)
[ "$m" != "$static" ] || fail "matching gave the static digest"
m_bytes=$(kv bytes_per_agent "$TMP/out")
ge "$((static_bytes / 2))" "$m_bytes" || fail "matching sent $m_bytes, static $static_bytes"
[ "$(kv schedule "$TMP/out")" = matching ] || fail "schedule=$(kv schedule "$TMP/out")"
# With drops (only the partner's message is drawn for) and dsgd (which sends after the gradient).
same_threads --agents 8 --schedule matching --drop-prob 0.3 --algorithm dsgd >/dev/null
echo "ok matching (bytes $m_bytes vs static $static_bytes)"

hyper="$TMP/hypercube8.txt"
for i in 0 1 2 3 4 5 6 7; do
	for b in 1 2 4; do
		j=$((i ^ b))
		if [ "$i" -lt "$j" ]; then
			echo "$i $j"
		fi
	done
done >"$hyper"
e=$(same_threads --agents 8 --topology "file:$hyper" --schedule exp-pairs)
static_h=$(digest --agents 8 --topology "file:$hyper")
[ "$e" != "$static_h" ] || fail "exp-pairs gave the static digest"
# Every agent has exactly one partner each round: 6 messages, dmsgd frames (see above).
run --agents 8 --topology "file:$hyper" --schedule exp-pairs
[ "$(kv bytes_per_agent "$TMP/out")" = $((22576068 / 2)) ] \
	|| fail "exp-pairs bytes_per_agent=$(kv bytes_per_agent "$TMP/out")"
expect_usage "hypercube edge" --agents 8 --schedule exp-pairs
expect_usage "unknown schedule" --agents 8 --schedule sometimes
echo "ok exp-pairs"

# ---- Push-sum ------------------------------------------------------------------------------
dring="$TMP/dring8.txt"
{
	echo "# directed ring of 8 with one chord: not doubly stochastic"
	for i in 0 1 2 3 4 5 6 7; do
		echo "$i -> $(((i + 1) % 8))"
	done
	echo "0 -> 4"
} >"$dring"
for alg in sgp dmsgd; do
	same_threads --agents 8 --topology "file:$dring" --algorithm "$alg" >/dev/null
	[ "$(kv pushsum "$TMP/out")" = 1 ] || fail "$alg on a directed file: no pushsum=1"
	[ "$(kv algorithm "$TMP/out")" = "$alg" ] || fail "algorithm=$(kv algorithm "$TMP/out")"
	sim 120 --agents 8 --topology "file:$dring" --algorithm "$alg" --rounds 40 --batch 32 \
		--lr 0.02 --eval-samples 500 --quiet || fail "$alg learning run: $(cat "$TMP/err")"
	ge "$(kv test_acc_avg "$TMP/out")" 0.45 \
		|| fail "$alg on a directed ring: test_acc_avg=$(kv test_acc_avg "$TMP/out")"
	echo "ok push-sum $alg: test_acc_avg=$(kv test_acc_avg "$TMP/out")"
done
[ "$(digest --agents 4 --algorithm sgp)" = "$(digest --agents 4 --algorithm cdmsgd)" ] \
	|| fail "sgp on an undirected ring (shares 1/3 = Metropolis 1/3) differs from cdmsgd"
expect_usage "no push-sum form" --agents 8 --topology "file:$dring" --algorithm cdsgd
expect_usage "does not support --compress" --agents 8 --topology "file:$dring" --compress int8
expect_usage "does not support --schedule" --agents 8 --algorithm sgp --schedule matching
echo "ok push-sum refusals"

# ---- Local steps ----------------------------------------------------------------------------
base=$(digest --agents 4)
base_bytes=$(kv bytes_per_agent "$TMP/out")
h=$(same_threads --agents 4 --local-steps 3)
[ "$h" != "$base" ] || fail "--local-steps 3 gave the H=1 digest"
[ "$(kv bytes_per_agent "$TMP/out")" = "$base_bytes" ] || fail "local steps changed bytes per round"
# The default epoch stays one pass over the shard: 15000 / 32 = 468 batches, 234 rounds at H=2.
sim 120 --agents 4 --batch 32 --rounds 1 --eval-samples 100 --local-steps 2 \
	|| fail "H=2 run: $(cat "$TMP/err")"
grep -q '234 rounds per epoch' "$TMP/err" || fail "H=2 epoch: $(head -n 1 "$TMP/err")"
expect_usage "several agents" --agents 1 --local-steps 2
expect_usage "no messages" --agents 4 --algorithm centralized --local-steps 2
echo "ok local steps"

# ---- Compression ----------------------------------------------------------------------------
for alg in dmsgd dsgd; do
	none=$(digest --agents 8 --algorithm "$alg")
	for c in bf16 int8 topk:0.1; do
		d=$(same_threads --agents 8 --algorithm "$alg" --compress "$c")
		[ "$d" != "$none" ] || fail "$alg --compress $c gave the uncompressed digest"
		[ -n "$(kv gossip_step "$TMP/out")" ] || fail "no gossip_step= with --compress $c"
	done
	same_threads --agents 8 --algorithm "$alg" --compress int8 --schedule matching >/dev/null
	echo "ok compressors $alg"
done
run --agents 4 --algorithm dmsgd --compress int8
int8_bytes=$(kv bytes_per_agent "$TMP/out")
awk -v a="$none_bytes" -v b="$int8_bytes" 'BEGIN { exit !(a >= 3.5 * b) }' \
	|| fail "int8 sent $int8_bytes bytes, none $none_bytes: less than 3.5x fewer"
[ "$(kv gossip_step "$TMP/out")" = 1 ] || fail "int8 default gamma $(kv gossip_step "$TMP/out")"
run --agents 4 --compress topk:0.1 --gossip-step 0.3
[ "$(kv gossip_step "$TMP/out")" = 0.3 ] || fail "--gossip-step not used"
# Blobs go to every configured neighbour whatever the schedule: same bytes as static.
run --agents 8 --compress int8
a=$(kv bytes_per_agent "$TMP/out")
run --agents 8 --compress int8 --schedule matching
[ "$(kv bytes_per_agent "$TMP/out")" = "$a" ] || fail "compressed matching should send to all"
expect_usage "unknown compressor" --agents 4 --compress int9
expect_usage "stale" --agents 4 --compress int8 --drop-prob 0.1
expect_usage "--gossip-step" --agents 4 --compress int8 --gossip-step 0
echo "ok compression (int8 $int8_bytes vs none $none_bytes bytes)"
echo "PASS"
