#!/bin/bash
# test_adversary.sh: an authenticated but hostile peer (tests/faults/adversary.c) against agent0.
# agent0 has two configured neighbours: agent1 (an honest daemon) and agent2, whose key the
# adversary holds. The adversary completes a valid handshake, then sends forged signatures,
# STATEs for the wrong parameter count, truncated frames, rounds from the future, byte-exact
# replays, correctly signed NaN/Inf states, a PING flood and a slow-loris half frame.
# Expected, and measured:
#   - every bad message is dropped and counted by reason in `macc-ctl --json peers`, exactly as
#     many as were sent (rate_limited: all PINGs beyond 20 per second);
#   - the control socket answers `status` within 2 s throughout the flood;
#   - agent0 keeps training with agent1, and no NaN enters its model: the loss and a fresh
#     evaluation are finite, and a checkpoint written afterwards holds only finite values.
# All of it twice: against a plain daemon (encrypt = no) and an encrypting one (encrypt = yes),
# where the adversary completes a sealed handshake and seals its hostile frames. In each mode an
# adversary with the other setting is refused and counted as encrypt_mismatch; in the sealed
# mode a frame of random bytes on a sealed session fails to open (bad_signature, session closed).
# A sealed daemon does not check STATE signatures on receipt (the AEAD authenticates the frame as
# the peer's); the adversary sends its forged state after the round's other one, so there it is
# refused by the round rule (the adversary reports it under replay) and plain counts it under
# bad_signature.
. "$(dirname "$0")/faults_lib.sh"
encrypt_modes "$@"

ROUNDS=30
FLOOD_MS=3000
if [ "$LONG" = 1 ]; then
	ROUNDS=300
	FLOOD_MS=20000
fi
FLEET="$WORK/fleet"
printf '0 1\n0 2\n' >"$WORK/edges"
gen_fleet "$FLEET" 3 "$WORK/edges" --set rounds=1000000 --set round_timeout_ms=300 \
	--set dead_peer_timeout_ms=1500 --set checkpoint_every=0 --agent-set "encrypt=$ENCRYPT"
start_agent 0 "$FLEET/agent0/agentd.conf"
start_agent 1 "$FLEET/agent1/agentd.conf"
wait_log "$WORK/agent0.log" "\[agent1\] session up" 60 || fail "agent0 and agent1 did not connect"
wait_round 0 20 60 || fail "agent0 did not reach round 20"

"$ADVERSARY" --key "$FLEET/agent2/agent.key" --connect "127.0.0.1:$BASE_PORT" \
	--rounds "$ROUNDS" --flood-ms "$FLOOD_MS" --loris-ms 4000 >"$WORK/adv.out" 2>&1 &
ADV=$!
PIDS+=("$ADV")
wait_log "$WORK/adv.out" "handshake ok" 20 || fail "adversary handshake: $(cat "$WORK/adv.out")"
if [ "$ENCRYPT" = yes ]; then
	grep -q "handshake ok.*, sealed" "$WORK/adv.out" || fail "adversary session not sealed"
	grep -q "\[agent1\] session up (.*, sealed)" "$WORK/agent0.log" ||
		fail "agent0's session with agent1 is not sealed"
else
	grep -q "handshake ok.*not sealed" "$WORK/adv.out" || fail "adversary session sealed"
fi
echo "ok: adversary completed a valid handshake (encrypt = $ENCRYPT)"

# Control socket latency during the PING flood.
wait_log "$WORK/adv.out" "phase flood start" 90 || fail "adversary never flooded: $(cat "$WORK/adv.out")"
worst=0
n=0
while ! grep -q "phase flood end" "$WORK/adv.out" && [ "$n" -lt 200 ]; do
	t0=$(date +%s%N)
	"$CTL" -s "$FLEET/agent0/ctl.sock" status >/dev/null || fail "status failed during the flood"
	dt=$((($(date +%s%N) - t0) / 1000000))
	[ "$dt" -gt "$worst" ] && worst=$dt
	n=$((n + 1))
	sleep 0.1
done
[ "$n" -gt 0 ] || fail "no status sample during the flood"
[ "$worst" -lt 2000 ] || fail "status took $worst ms during the PING flood (bound 2000 ms)"
echo "ok: status answered $n times during the PING flood, worst $worst ms"

wait_exit "$ADV" 60 || fail "adversary did not finish"
[ "$EXIT_RC" = 0 ] || fail "adversary failed ($EXIT_RC): $(cat "$WORK/adv.out")"
wait_log "$WORK/agent0.log" "\[agent2\] no traffic .*declared dead" 10 ||
	fail "agent0 did not drop the slow-loris session"
sent() { sed -n "s/^sent $1 \([0-9]*\)$/\1/p" "$WORK/adv.out"; }
ctl_json 0 peers >"$WORK/peers.json" || fail "peers failed"
got() {
	python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
p = [q for q in d["peers"] if q["name"] == "agent2"][0]
print(p["messages_rejected_total"].get(sys.argv[2], 0))' "$WORK/peers.json" "$1"
}
check_eq() {
	local reason=$1 want=$2 have
	have=$(got "$reason")
	[ "$have" = "$want" ] || fail "rejected[$reason] = $have, expected $want"
	echo "ok: $reason: $have dropped and counted"
}
[ "$(sent nonfinite)" -gt 0 ] || fail "adversary sent no NaN state"
[ "$(sent forged)" -gt 0 ] || fail "adversary sent no forged state"
check_eq bad_signature "$(sent bad_signature)"
check_eq model_mismatch "$(sent model_mismatch)"
check_eq malformed "$(sent malformed)"
check_eq replay "$(($(sent future) + $(sent replay)))"
check_eq nonfinite "$(sent nonfinite)"
pings=$(sent ping)
limited=$(got rate_limited)
min_limited=$((pings - 20 * (FLOOD_MS / 1000 + 2)))
[ "$limited" -ge "$min_limited" ] && [ "$limited" -le "$pings" ] ||
	fail "rate_limited = $limited for $pings PINGs (expected at least $min_limited)"
echo "ok: PING flood: $pings sent, $limited not answered (rate_limited)"
[ "$(got timeout)" -ge 1 ] || fail "slow-loris half frame not counted as timeout"
echo "ok: slow-loris half frame counted (timeout) and the session dropped"

# The other encryption setting is refused at the handshake and counted.
other=yes
[ "$ENCRYPT" = yes ] && other=no
rc=0
"$ADVERSARY" --key "$FLEET/agent2/agent.key" --connect "127.0.0.1:$BASE_PORT" --rounds 0 \
	--flood-ms 0 --seal "$other" >"$WORK/adv-mismatch.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "adversary with encrypt = $other was not refused: $(cat "$WORK/adv-mismatch.out")"
ctl_json 0 peers >"$WORK/peers.json" || fail "peers failed"
[ "$(got encrypt_mismatch)" = 1 ] || fail "encrypt_mismatch = $(got encrypt_mismatch), expected 1"
echo "ok: a peer with encrypt = $other is refused and counted (encrypt_mismatch)"

if [ "$ENCRYPT" = yes ]; then
	before=$(got bad_signature)
	rc=0
	"$ADVERSARY" --key "$FLEET/agent2/agent.key" --connect "127.0.0.1:$BASE_PORT" \
		--rounds 0 --flood-ms 0 --garbage >"$WORK/adv-garbage.out" 2>&1 || rc=$?
	[ "$rc" = 0 ] || fail "garbage sealed frame: $(cat "$WORK/adv-garbage.out")"
	ctl_json 0 peers >"$WORK/peers.json" || fail "peers failed"
	[ "$(got bad_signature)" = $((before + 1)) ] ||
		fail "garbage sealed frame: bad_signature $(got bad_signature), expected $((before + 1))"
	echo "ok: a sealed frame that does not open is counted (bad_signature) and the session closed"
fi

# Still training, nothing non-finite in the model.
r0=$(status_of 0 round)
wait_round 0 $((r0 + 20)) 60 || fail "agent0 stopped training after the attack"
"$CTL" -s "$FLEET/agent0/ctl.sock" eval >/dev/null || fail "eval refused"
"$CTL" -s "$FLEET/agent0/ctl.sock" checkpoint >/dev/null || fail "checkpoint refused"
wait_log "$WORK/agent0.log" "round" 1 || true
sleep 2
ctl_json 0 status >"$WORK/status.json" || fail "status failed"
python3 -c 'import json,math,sys
d = json.load(open(sys.argv[1]))
for k in ("train_loss", "test_accuracy_ratio", "test_loss"):
    v = d.get(k)
    if v is None or not math.isfinite(v):
        sys.exit("%s is %r" % (k, v))
print("ok: train_loss %.4f test_accuracy_ratio %.4f test_loss %.4f, all finite" %
      (d["train_loss"], d["test_accuracy_ratio"], d["test_loss"]))' "$WORK/status.json" ||
	fail "non-finite figure in agent0's status: $(cat "$WORK/status.json")"
"$CKPT_CHECK" "$FLEET/agent0/state/checkpoint.bin" || fail "agent0's checkpoint is not finite"
echo "ok: agent0's checkpoint loads and holds only finite values"
echo "PASS"
