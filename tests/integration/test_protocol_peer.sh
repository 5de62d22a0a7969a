#!/bin/bash
# test_protocol_peer.sh (suite 'integration'): macc-protocol(7) is enough to implement a peer.
#
# protocol_peer.py was written from the page alone. First it recomputes every test vector of
# the page from the page's text (selftest). Then, in three runs, one real macc-agentd on
# loopback whose only neighbour is that Python peer:
#   encrypt = no, then yes: the peer dials the agent, runs the handshake and rounds of STATEs to
#     round BYE_AT, says BYE, and accepts the agent's redial on its own listening port for a
#     second session (fresh nonces and keys, freshness from scratch, the current round re-sent)
#     that goes on to the end of the run;
#   encrypt = yes, compress = int8 (compressed exchange with public copies): the agent's first
#     state is a difference the fresh peer cannot apply, so the peer closes with BYE state and
#     accepts the redial, where both sides open with a full resync state; at BYE_AT the peer
#     dials a third session, whose resync state must equal, bit for bit, the copy the peer
#     built by decoding the agent's int8 differences.
# Both rekey schedules are short, so both directions rekey several times per sealed session.
# The test passes when
#   - the peer saw nothing wrong (signatures, proofs, sealing, freshness, types, vectors) and
#     got every round's state;
#   - the agent finished the run, counted no rejected message from the peer, and reports the
#     session up, sealed or not as configured, with the peer at the last round;
#   - the agent's log shows every session and no rejection, loss or copy out of sync.
# Loopback only; every wait is bounded; only the processes started here are ended, by pid.
set -euo pipefail

# shellcheck source=tests/integration/agentd_lib.sh
. "$(dirname "$0")/agentd_lib.sh"

CTL="$MACC_BUILD/src/ctl/macc-ctl"
PEER="$MACC_SRC/tests/integration/protocol_peer.py"
PAGE="$MACC_SRC/man/macc-protocol.7"
# Debian's interpreter, where python3-nacl and python3-msgpack are installed
# (deploy/install-deps.sh); a python3 earlier in PATH may lack them.
PY=/usr/bin/python3
ROUNDS=12
BYE_AT=5
PORT_AGENT=$BASE_PORT
PORT_PEER=$((BASE_PORT + 1))

"$PY" -c 'import nacl.bindings, msgpack' 2>/dev/null ||
	fail "$PY cannot import nacl and msgpack" \
		"(deploy/install-deps.sh installs python3-nacl and python3-msgpack)"
[ -x "$CTL" ] || fail "$CTL is not built"

"$PY" "$PEER" selftest "$PAGE" >"$WORK/selftest.log" 2>&1 ||
	{ cat "$WORK/selftest.log" >&2; fail "the page's test vectors do not follow from its text"; }
tail -n 1 "$WORK/selftest.log"

(umask 077 && "$CTL" genkey >"$WORK/agent.key" && "$CTL" genkey >"$WORK/peer.key")
agent_pub=$("$CTL" pubkey <"$WORK/agent.key")
peer_pub=$("$CTL" pubkey <"$WORK/peer.key")

# json_get FILE EXPR: evaluate a Python expression over the JSON document `d` in FILE.
json_get() {
	"$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# run_mode ENCRYPT COMPRESS LEGS SESSIONS: one agent, one Python peer, a whole run; LEGS are the
# peer's sessions (protocol_peer.py --legs), SESSIONS what the peer must report of them:
# (outbound, sealed, its round, the agent's round) at each session's start.
run_mode() {
	local enc=$1 comp=$2 legs=$3 sessions_want=$4 seal_arg=() sealed_want=False
	local log="$WORK/agent0.log" py_pid agent_pid t rc mode="encrypt=$1 compress=$2"
	local dir="$WORK/$enc-$comp"
	mkdir -p "$dir/state"
	[ "$enc" = yes ] && seal_arg=(--seal) && sealed_want=True
	cat >"$dir/agentd.conf" <<EOF
[agent]
name = agent0
listen = 127.0.0.1:$PORT_AGENT
key_file = $WORK/agent.key
state_dir = $dir/state
control_socket = $dir/ctl.sock
encrypt = $enc
rekey_frames = 4
rekey_bytes = 100000

[train]
model = logreg:784-10
data = fashion-mnist
algorithm = dmsgd
lr = 0.01
momentum = 0.9
batch = 64
rounds = $ROUNDS
seed = 1
threads = 1
round_timeout_ms = 30000
dead_peer_timeout_ms = 60000
checkpoint_every = 0
compress = $comp

[peer]
name = pypeer
endpoint = 127.0.0.1:$PORT_PEER
public_key = $peer_pub
EOF
	: >"$log"
	start_agent 0 "$dir/agentd.conf"
	agent_pid=$PID_0
	wait_log "$log" 'listening on' 60 || fail "$mode: the agent did not start listening"
	"$PY" "$PEER" run --key "$WORK/peer.key" --peer-key "$agent_pub" --model logreg:784-10 \
		--algo dmsgd "${seal_arg[@]}" --compress "$comp" --rk-frames 3 --rk-bytes 50000 \
		--rounds "$ROUNDS" --connect "127.0.0.1:$PORT_AGENT" --listen "127.0.0.1:$PORT_PEER" \
		--legs "$legs" --status "$dir/peer.json" --timeout 200 \
		>"$WORK/peer-$enc-$comp.log" 2>&1 &
	py_pid=$!
	PIDS+=("$py_pid")
	t=1800
	until [ -s "$dir/peer.json" ]; do
		kill -0 "$py_pid" 2>/dev/null || {
			cat "$WORK/peer-$enc-$comp.log" >&2
			fail "$mode: the Python peer stopped before the end of the run"
		}
		t=$((t - 1))
		[ "$t" -gt 0 ] || fail "$mode: the run did not reach round $ROUNDS in 180 s"
		sleep 0.1
	done
	wait_log "$log" 'training done' 30 || fail "$mode: the agent did not finish the run"

	# The peer's side: every round's state arrived and checked out, in the sessions expected.
	[ "$(json_get "$dir/peer.json" 'd["round"]')" = "$ROUNDS" ] ||
		fail "$mode: the peer ended at round $(json_get "$dir/peer.json" 'd["round"]')"
	[ "$(json_get "$dir/peer.json" 'd["states_in"] >= '"$ROUNDS")" = True ] ||
		fail "$mode: the peer received fewer than $ROUNDS states"
	[ "$(json_get "$dir/peer.json" '[(s["outbound"], s["sealed"], s["our_round"],
		s["agent_round"]) for s in d["sessions"]]')" = "${sessions_want//S/$sealed_want}" ] ||
		fail "$mode: sessions $(json_get "$dir/peer.json" 'd["sessions"]')"
	if [ "$comp" != none ] &&
		[ "$(json_get "$dir/peer.json" 'd["resync_checks"] >= 1')" != True ]; then
		fail "$mode: no resync state was checked against the peer's decoded copy"
	fi

	# Sealed: both directions of the last session stepped their keys (rekey_frames 4 on the
	# agent, 3 on the peer), with no message about it.
	if [ "$enc" = yes ] &&
		[ "$(json_get "$dir/peer.json" 'min(d["rekeys"]) >= 2')" != True ]; then
		fail "$mode: too few rekeys on the last session: $(json_get "$dir/peer.json" 'd["rekeys"]')"
	fi

	# The agent's side: no rejection, the peer at the last round, the session as configured.
	"$CTL" -s "$dir/ctl.sock" --json status >"$dir/status.json" ||
		fail "$mode: macc-ctl status failed"
	"$CTL" -s "$dir/ctl.sock" --json peers >"$dir/peers.json" ||
		fail "$mode: macc-ctl peers failed"
	[ "$(json_get "$dir/status.json" 'd["state"], d["round"]')" = "('done', $ROUNDS)" ] ||
		fail "$mode: agent status $(cat "$dir/status.json")"
	[ "$(json_get "$dir/peers.json" '[(p["name"], p["session"], p["sealed"], p["last_round"],
		sum(p["rejected"].values())) for p in d["peers"]]')" = \
		"[('pypeer', 'up', $sealed_want, $((ROUNDS - 1)), 0)]" ] ||
		fail "$mode: agent peers $(cat "$dir/peers.json")"
	local how=sealed nsessions
	[ "$enc" = yes ] || how="not sealed"
	nsessions=$(json_get "$dir/peer.json" 'len(d["sessions"])')
	[ "$(grep -c "session up (.*, $how)" "$log")" = "$nsessions" ] ||
		fail "$mode: the agent's log does not show the peer's $nsessions sessions ($how)"
	if grep -Eq 'rejected|does not open|timed out waiting|never arrived|does not follow' "$log" ||
		grep -q 'until a resync' "$log"; then
		fail "$mode: the agent logged a problem with the peer"
	fi

	# End: the peer says BYE, then the agent stops cleanly.
	kill -TERM "$py_pid"
	wait_exit "$py_pid" 20 || fail "$mode: the Python peer did not stop"
	rc=$EXIT_RC
	[ "$rc" = 0 ] || { cat "$WORK/peer-$enc-$comp.log" >&2; fail "$mode: the Python peer exited $rc"; }
	kill -TERM "$agent_pid"
	wait_exit "$agent_pid" 30 || fail "$mode: the agent did not stop on SIGTERM"
	[ "$EXIT_RC" = 0 ] || fail "$mode: the agent exited $EXIT_RC"
	echo "ok: $mode: $ROUNDS rounds with the Python peer over $nsessions sessions," \
		"$(json_get "$dir/peer.json" 'd["states_in"]') states received, none rejected"
	cp "$log" "$WORK/agent0-$enc-$comp.log"
}

# (outbound, sealed, peer round, agent round) per session; S stands for the sealing setting.
run_mode no none "dial:$BYE_AT,listen" "[(True, S, 0, 0), (False, S, $BYE_AT, $BYE_AT)]"
run_mode yes none "dial:$BYE_AT,listen" "[(True, S, 0, 0), (False, S, $BYE_AT, $BYE_AT)]"
run_mode yes int8 "dial,listen:$BYE_AT,dial" \
	"[(True, S, 0, 0), (False, S, 0, 0), (True, S, $BYE_AT, $BYE_AT)]"
echo "PASS: a peer written from macc-protocol(7) alone works with macc-agentd"
