#!/bin/bash
# test_protocol_peer.sh (suite 'integration'): macc-protocol(7) is enough to implement a peer.
#
# protocol_peer.py was written from the page alone. First it recomputes every test vector of
# the page from the page's text (selftest). Then, in five runs, one real macc-agentd on
# loopback whose only neighbour is that Python peer:
#   encrypt = no (twice), then yes (twice): the peer dials the agent, runs the handshake and
#     rounds of STATEs to round BYE_AT, says BYE, and accepts the agent's redial on its own
#     listening port for a second session (fresh nonces and keys, freshness from scratch, the
#     current round re-sent) that goes on to the end of the run;
#   encrypt = yes, compress = int8 (compressed exchange with public copies): the agent's first
#     state is a difference the fresh peer cannot apply, so the peer closes with BYE state and
#     accepts the redial, where both sides open with a full resync state; at BYE_AT the peer
#     dials a third session, whose resync state must equal, bit for bit, the copy the peer
#     built by decoding the agent's int8 differences.
# The runs differ in the peer's HELLO flags (macc-protocol(7), HELLO flags), so that between
# them they cover: SHA-256 STATE digests both ways, and each way alone (per direction), in the
# clear, where the agent checks every signature; BLAKE2b-256 both ways as an older peer sends
# no digest bits; XChaCha20-Poly1305 (the peer does not offer AES) and AES-256-GCM (both offer
# it: the agent does where its CPU has AES instructions, which this test reads from
# /proc/cpuinfo and prints). The platform fields: sent as they are, sent hostile (control
# characters, too long: the agent must show them cleaned and cut), and not sent.
# Both rekey schedules are short, so both directions rekey several times per sealed session.
# The test passes when
#   - the peer saw nothing wrong (signatures, proofs, sealing, freshness, types, vectors) and
#     got every round's state;
#   - the agent finished the run, counted no rejected message from the peer, and reports the
#     session up, sealed or not as configured, with the peer at the last round;
#   - the agent's log shows every session and no rejection, loss or copy out of sync;
#   - every session ran the suite and digests the page's rules give for both HELLOs' flags,
#     as the peer computed them and as the agent logged them, and the agent's own flags are
#     what the page says macc-agentd sets on this CPU;
#   - macc-ctl peers shows the platform the peer sent, as the page says a receiver keeps it.
# Loopback only; every wait is bounded; only the processes started here are ended, by pid.
set -euo pipefail

# shellcheck source=tests/integration/agentd_lib.sh
. "$(dirname "$0")/agentd_lib.sh"

CTL="$MACC_BUILD/src/ctl/macc-ctl"
PEER="$MACC_SRC/tests/integration/protocol_peer.py"
PAGE="$MACC_SRC/man/macc-protocol.7"
# Debian's interpreter, where python3-nacl, python3-cryptography and python3-msgpack are
# installed (deploy/install-deps.sh); a python3 earlier in PATH may lack them.
PY=/usr/bin/python3
ROUNDS=12
BYE_AT=5
PORT_AGENT=$BASE_PORT
PORT_PEER=$((BASE_PORT + 1))

"$PY" -c 'import nacl.bindings, msgpack, cryptography.hazmat.primitives.ciphers.aead' \
	2>/dev/null || fail "$PY cannot import nacl, msgpack and cryptography" \
	"(deploy/install-deps.sh installs python3-nacl, python3-msgpack and python3-cryptography)"
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

# cpu_has FEATURE...: this CPU has every feature, as the kernel lists it in /proc/cpuinfo
# ("flags" on x86, "Features" on ARM).
cpu_has() {
	local f line
	line=$(grep -m1 -E '^(flags|Features)[[:space:]]*:' /proc/cpuinfo) || return 1
	for f in "$@"; do
		grep -qw -- "$f" <<<"$line" || return 1
	done
}
# What macc-protocol(7) says macc-agentd offers on this CPU (HELLO flags bits 1 and 3).
case $(uname -m) in
x86_64 | i?86)
	AGENT_AES=$(cpu_has aes pclmulqdq avx && echo 1 || echo 0)
	AGENT_SHA=$(cpu_has sha_ni && echo 1 || echo 0)
	;;
aarch64 | arm*)
	AGENT_AES=$(cpu_has aes pmull && echo 1 || echo 0)
	AGENT_SHA=$(cpu_has sha2 && echo 1 || echo 0)
	;;
*) AGENT_AES=0 AGENT_SHA=0 ;;
esac
echo "this CPU: the agent offers AES-256-GCM: $AGENT_AES, signs with SHA-256: $AGENT_SHA"
# Each run below says which suite it exercised; GCM_RUNS counts those that ran AES-256-GCM.
GCM_RUNS=0

# The platform fields as the page says a receiver keeps them: cut at the first NUL or after
# 31 bytes, every byte outside A-Z a-z 0-9 . _ + - replaced by '?'.
HOSTILE_ARCH=$'x86_64\e[2J\e]0;owned\a-with-a-very-long-tail-beyond-31'
HOSTILE_ARCH_SHOWN='x86_64??2J??0?owned?-with-a-ver'
HOSTILE_BLAS=$'Has\rwell\nfake log line'
HOSTILE_BLAS_SHOWN='Has?well?fake?log?line'

# run_mode ENCRYPT COMPRESS LEGS SESSIONS [PEER OPTION...]: one agent, one Python peer, a whole
# run; LEGS are the peer's sessions (protocol_peer.py --legs), SESSIONS what the peer must
# report of them: (outbound, sealed, its round, the agent's round) at each session's start.
# PEER OPTIONs go to protocol_peer.py run: --aes, --sha256-ok, --sha256 (its HELLO flags),
# --arch A, --blas B (its platform fields); PEER_ARCH_SHOWN and PEER_BLAS_SHOWN, when set, are
# what macc-ctl peers must show for them (default: what was sent).
run_mode() {
	local enc=$1 comp=$2 legs=$3 sessions_want=$4 seal_arg=() sealed_want=False
	shift 4
	local peer_opts=("$@") o flags=""
	for o in "$@"; do
		case $o in --aes | --sha256-ok | --sha256) flags="$flags $o" ;; esac
	done
	local log="$WORK/agent0.log" py_pid agent_pid t rc
	local mode="encrypt=$enc compress=$comp peer flags:${flags:- none}"
	local dir="$WORK/run$((++RUN))"
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
		--legs "$legs" --status "$dir/peer.json" --timeout 200 "${peer_opts[@]}" \
		>"$dir/peer.log" 2>&1 &
	py_pid=$!
	PIDS+=("$py_pid")
	t=1800
	until [ -s "$dir/peer.json" ]; do
		kill -0 "$py_pid" 2>/dev/null || {
			cat "$dir/peer.log" >&2
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
		sum(p["messages_rejected_total"].values())) for p in d["peers"]]')" = \
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
	check_negotiation
	check_platform

	# End: the peer says BYE, then the agent stops cleanly.
	kill -TERM "$py_pid"
	wait_exit "$py_pid" 20 || fail "$mode: the Python peer did not stop"
	rc=$EXIT_RC
	[ "$rc" = 0 ] || { cat "$dir/peer.log" >&2; fail "$mode: the Python peer exited $rc"; }
	kill -TERM "$agent_pid"
	wait_exit "$agent_pid" 30 || fail "$mode: the agent did not stop on SIGTERM"
	[ "$EXIT_RC" = 0 ] || fail "$mode: the agent exited $EXIT_RC"
	echo "ok: $mode: $ROUNDS rounds with the Python peer over $nsessions sessions," \
		"$(json_get "$dir/peer.json" 'd["states_in"]') states received, none rejected;" \
		"$(json_get "$dir/peer.json" 'sorted({(s["aead"] or "not sealed") + ", digests " +
			s["digest_rx"] + "/" + s["digest_tx"] for s in d["sessions"]})')"
	cp "$log" "$dir/agent0.log"
}

# has_opt OPTION: the peer of this run was given OPTION.
has_opt() {
	local o
	for o in "${peer_opts[@]}"; do
		[ "$o" = "$1" ] && return 0
	done
	return 1
}

# In run_mode: every session ran what the page's rules give for both HELLOs' flags. The peer's
# flags are its options; the agent's must be what the page says macc-agentd sets here (bit 2
# always, bits 1 and 3 by the CPU). The peer computed the same by the rules and the session
# worked (a wrong suite does not open, a wrong digest does not verify); the agent's log must
# name the same suite and digests for every session.
check_negotiation() {
	local want_flags=$((4 | (AGENT_SHA ? 8 : 0))) suite=None d_in=blake2b256 d_out=blake2b256
	local got logged want_log="" name=xchacha20poly1305
	if [ "$enc" = yes ]; then
		want_flags=$((want_flags | 1 | (AGENT_AES ? 2 : 0)))
		if has_opt --aes && [ "$AGENT_AES" = 1 ]; then
			name=aes256gcm
			GCM_RUNS=$((GCM_RUNS + 1))
		fi
		suite="'$name'"
		want_log="$name, "
	fi
	# d_in: the agent's STATEs to the peer; d_out: the peer's to the agent.
	if has_opt --sha256-ok && [ "$AGENT_SHA" = 1 ]; then
		d_in=sha256
	fi
	if has_opt --sha256; then
		d_out=sha256
	fi
	got=$(json_get "$dir/peer.json" 'sorted({(s["agent_flags"], s["aead"], s["digest_rx"],
		s["digest_tx"]) for s in d["sessions"]})')
	[ "$got" = "[($want_flags, $suite, '$d_in', '$d_out')]" ] ||
		fail "$mode: sessions ran (agent flags, suite, digests in/out) $got," \
			"the page's rules give ($want_flags, $suite, $d_in, $d_out)"
	want_log="${want_log}digests sent/received $d_in/$d_out"
	logged=$(grep -c "session up (.*), peer at round .*, $want_log\$" "$log" || true)
	[ "$logged" = "$nsessions" ] ||
		fail "$mode: the agent's log does not show '$want_log' for all $nsessions sessions:" \
			"$(grep 'session up' "$log")"
}

# In run_mode: the agent shows the platform fields as the page says a receiver keeps them, and
# sends its own (those of macc-ctl status) in its HELLO.
check_platform() {
	local arch="" blas="" i
	for ((i = 0; i < ${#peer_opts[@]}; i++)); do
		case ${peer_opts[i]} in
		--arch) arch=${peer_opts[i + 1]} ;;
		--blas) blas=${peer_opts[i + 1]} ;;
		esac
	done
	arch=${PEER_ARCH_SHOWN-$arch}
	blas=${PEER_BLAS_SHOWN-$blas}
	[ "$(json_get "$dir/peers.json" '[(p["arch"], p["blas"]) for p in d["peers"]]')" = \
		"$("$PY" -c 'import sys; print([(sys.argv[1], sys.argv[2])])' "$arch" "$blas")" ] ||
		fail "$mode: macc-ctl peers shows the platform" \
			"$(json_get "$dir/peers.json" '[(p["arch"], p["blas"]) for p in d["peers"]]'), not" \
			"${arch@Q} ${blas@Q} (the peer's fields as the page says a receiver keeps them)"
	[ "$(json_get "$dir/peer.json" 'sorted({(s["agent_arch"], s["agent_blas"])
		for s in d["sessions"]})')" = \
		"$(json_get "$dir/status.json" '[(d["arch"], d["blas"])]')" ] ||
		fail "$mode: the agent's HELLO platform differs from macc-ctl status"
}

# (outbound, sealed, peer round, agent round) per session; S stands for the sealing setting.
TWO="[(True, S, 0, 0), (False, S, $BYE_AT, $BYE_AT)]"
RUN=0
# In the clear, where the agent checks every signature: SHA-256 both ways (where this CPU lets
# the agent sign with it), the platform as it is.
run_mode no none "dial:$BYE_AT,listen" "$TWO" --sha256-ok --sha256 --arch "$(uname -m)" \
	--blas pure-python
# In the clear, the peer signs with SHA-256 and checks only BLAKE2b-256: one digest per
# direction.
run_mode no none "dial:$BYE_AT,listen" "$TWO" --sha256
# Sealed, as an older peer: no digest bits, no AES offer, no platform: XChaCha20-Poly1305 and
# BLAKE2b-256 whatever this CPU has.
run_mode yes none "dial:$BYE_AT,listen" "$TWO"
# Sealed, AES-256-GCM offered, the peer checks SHA-256 but signs with BLAKE2b-256; a hostile
# platform.
PEER_ARCH_SHOWN=$HOSTILE_ARCH_SHOWN PEER_BLAS_SHOWN=$HOSTILE_BLAS_SHOWN \
	run_mode yes none "dial:$BYE_AT,listen" "$TWO" --aes --sha256-ok --arch "$HOSTILE_ARCH" \
	--blas "$HOSTILE_BLAS"
run_mode yes int8 "dial,listen:$BYE_AT,dial" \
	"[(True, S, 0, 0), (False, S, 0, 0), (True, S, $BYE_AT, $BYE_AT)]" --aes --sha256-ok --sha256
if [ "$AGENT_AES" = 1 ] && [ "$GCM_RUNS" != 2 ]; then
	fail "AES-256-GCM ran in $GCM_RUNS runs, not the 2 that offered it"
fi
[ "$AGENT_AES" = 1 ] ||
	echo "note: this CPU has no AES instructions, so the agent offered no AES-256-GCM and" \
		"the suite was not run against it here (the page's GCM vectors were, in selftest)"
echo "PASS: a peer written from macc-protocol(7) alone works with macc-agentd"
