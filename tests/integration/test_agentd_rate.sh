#!/bin/bash
# test_agentd_rate.sh (suite 'integration'): max_rate holds on a shaped link shared with other
# traffic. Two network namespaces made here, joined by a veth pair shaped with tc tbf (50 Mbit/s
# from a to b); agent a (max_rate = 2M in [agent]) and agent b train the default model (1.9 MB
# states) across it while a bulk TCP flow (python3 sockets) competes on the same link, a to b.
# Measured over a window while rounds advance: agent a's send rate from its metrics
# (macc_bytes_sent_total) and, where `ss` shows it, from the kernel's bytes_acked of the
# daemon's own sockets; both within 10 % of the cap. Then `macc-ctl reload` with max_rate = 1M
# applies to the live session: the next window within 10 % of 1 MB/s. Skips (77) where
# namespaces or tbf are not available. Bounded: every wait has a deadline; the EXIT trap ends
# the processes started here (by pid) and deletes the namespaces.
. "$(dirname "$0")/agentd_lib.sh"

CTL="$MACC_BUILD/src/ctl/macc-ctl"
WIN=${RATE_WINDOW:-10}
LINK_MBIT=50
PORT=7801
SINK_PORT=7999
tag="mr$$"
NA="${tag}a" NB="${tag}b"
command -v python3 >/dev/null || { echo "SKIP: python3 is needed"; exit 77; }
command -v tc >/dev/null || { echo "SKIP: no tc (iproute2)"; exit 77; }
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] ||
	{ echo "SKIP: Fashion-MNIST is not installed"; exit 77; }

netns_made=()
net_cleanup() {
	local ns
	cleanup
	for ns in ${netns_made[@]+"${netns_made[@]}"}; do
		ip netns delete "$ns" 2>/dev/null || true
	done
}
trap net_cleanup EXIT

if ! ip netns add "$NA" 2>/dev/null; then
	echo "SKIP: cannot create network namespaces here (needs root / CAP_SYS_ADMIN)"
	exit 77
fi
netns_made+=("$NA")
if ! ip netns exec "$NA" true 2>/dev/null; then
	echo "SKIP: cannot run commands in a network namespace here (ip netns exec failed)"
	exit 77
fi
ip netns add "$NB"
netns_made+=("$NB")
ip link add name va netns "$NA" type veth peer name vb netns "$NB"
ip -n "$NA" link set lo up
ip -n "$NB" link set lo up
ip -n "$NA" addr add 10.89.0.1/24 dev va
ip -n "$NB" addr add 10.89.0.2/24 dev vb
ip -n "$NA" link set va up
ip -n "$NB" link set vb up
# 50 Mbit/s from a to b, the direction that agent a's cap and the competing flow share; the
# bucket holds 2 ms of traffic (at least 64 KB), up to 100 ms queue. b to a is not shaped (an
# asymmetric link): a round waits for the neighbour's state, and with b's 1.9 MB crossing a
# shaped link too, agent a at times has nothing to send, so its average fell below the cap
# (1.5 MB/s against 2, one run in three) although its pacing never passed it. What is measured
# here is the cap, not how rounds couple the two directions.
burst=$((LINK_MBIT * 1000000 / 8 / 500))
((burst >= 65536)) || burst=65536
if ! tc -n "$NA" qdisc replace dev va root tbf rate "${LINK_MBIT}mbit" burst "$burst" \
	latency 100ms 2>"$WORK/tc.err"; then
	echo "SKIP: cannot shape the link with tbf: $(cat "$WORK/tc.err")"
	exit 77
fi

# Two agents, a <-> b.
for n in a b; do
	mkdir -p "$WORK/$n/state"
	(umask 077 && "$CTL" genkey >"$WORK/$n/agent.key")
	"$CTL" pubkey <"$WORK/$n/agent.key" >"$WORK/$n/agent.pub"
done
conf() { # conf NAME IP SHARD PEER PEER_IP [agent keys...]
	local n=$1 ip=$2 shard=$3 peer=$4 pip=$5
	shift 5
	{
		echo "[agent]"
		echo "name = agent-$n"
		echo "listen = $ip:$PORT"
		echo "key_file = $WORK/$n/agent.key"
		echo "state_dir = $WORK/$n/state"
		echo "control_socket = $WORK/$n/ctl.sock"
		printf '%s\n' "$@"
		echo
		echo "[train]"
		echo "data = fashion-mnist"
		echo "shard = $shard"
		echo "rounds = 100000"
		echo "checkpoint_every = 0"
		echo "round_timeout_ms = 10000"
		echo "dead_peer_timeout_ms = 30000"
		echo
		echo "[peer]"
		echo "name = agent-$peer"
		echo "endpoint = $pip:$PORT"
		echo "public_key = $(cat "$WORK/$peer/agent.pub")"
	} >"$WORK/$n/agentd.conf"
}
conf a 10.89.0.1 0/2 b 10.89.0.2 "max_rate = 2M"
conf b 10.89.0.2 1/2 a 10.89.0.1

# The competing flow: a sink in b counting what it receives, a bulk sender in a.
ip netns exec "$NB" python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.89.0.2", int(sys.argv[1]))); s.listen(1); c, _ = s.accept()
n = 0; last = time.monotonic()
with open(sys.argv[2], "w") as f:
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        n += len(b)
        t = time.monotonic()
        if t - last >= 0.2:
            f.write("%.3f %d\n" % (t, n)); f.flush(); last = t
' "$SINK_PORT" "$WORK/sink.txt" &
PIDS+=("$!")
sleep 0.5
ip netns exec "$NA" python3 -c '
import socket, sys, time
s = socket.socket()
for _ in range(50):
    try:
        s.connect(("10.89.0.2", int(sys.argv[1]))); break
    except OSError:
        time.sleep(0.1)
buf = b"\0" * (1 << 16)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    s.sendall(buf)
' "$SINK_PORT" 400 &
PIDS+=("$!")

ip netns exec "$NA" "$AGENTD" -c "$WORK/a/agentd.conf" >>"$WORK/agenta.log" 2>&1 &
PIDS+=("$!")
ip netns exec "$NB" "$AGENTD" -c "$WORK/b/agentd.conf" >>"$WORK/agentb.log" 2>&1 &
PIDS+=("$!")

ctl() { # ctl NAME ARGS...
	local n=$1
	shift
	"$CTL" -s "$WORK/$n/ctl.sock" "$@"
}
metric() { # metric NAME METRIC
	ctl "$1" metrics 2>/dev/null |
		awk -v m="$2" '$1 == m { print $2; f = 1 } END { if (!f) print "" }'
}
round_of() {
	ctl "$1" --json status 2>/dev/null |
		python3 -c 'import json,sys
print(json.load(sys.stdin).get("round", ""))' 2>/dev/null ||
		echo ""
}
now_ms() {
	echo $(($(date +%s%N) / 1000000))
}
# acked: bytes_acked of agent a's sockets to b's agent port and from a's (not the competing
# flow), summed; empty when ss does not show it.
acked() {
	ip netns exec "$NA" ss -tinH 2>/dev/null | awk -v p=":$PORT" -v s=":$SINK_PORT" '
		/^ESTAB/ { keep = (index($0, s) == 0) && (index($0, p) > 0); next }
		keep && match($0, /bytes_acked:[0-9]+/) {
			t += substr($0, RSTART + 12, RLENGTH - 12); f = 1
		}
		{ keep = 0 }
		END { if (f) print t; else print "" }'
}
sink_bytes() {
	tail -n 1 "$WORK/sink.txt" 2>/dev/null | awk '{ print $2 + 0 }'
}

# Wait for training across the link (bounded).
t=600
until r=$(round_of a) && [ -n "$r" ] && [ "$r" -ge 5 ]; do
	t=$((t - 1))
	[ "$t" -gt 0 ] || fail "agent a did not reach round 5 in 120 s"
	sleep 0.2
done

# measure CAP LABEL: the rates over WIN seconds; fails unless a's stay within 10 % of CAP
# and rounds advance.
measure() {
	local cap=$1 label=$2 b0 b1 a0 a1 s0 s1 r0 r1 t0 t1 rate wire comp
	t0=$(now_ms)
	b0=$(metric a macc_bytes_sent_total)
	a0=$(acked)
	s0=$(sink_bytes)
	r0=$(round_of a)
	sleep "$WIN"
	t1=$(now_ms)
	b1=$(metric a macc_bytes_sent_total)
	a1=$(acked)
	s1=$(sink_bytes)
	r1=$(round_of a)
	[ -n "$b0" ] && [ -n "$b1" ] || fail "no macc_bytes_sent_total from agent a"
	rate=$(((b1 - b0) * 1000 / (t1 - t0)))
	comp=$(((s1 - s0) * 1000 / (t1 - t0)))
	wire=-
	if [ -n "$a0" ] && [ -n "$a1" ]; then
		wire=$(((a1 - a0) * 1000 / (t1 - t0)))
	fi
	echo "$label: cap $cap B/s, agent a sent $rate B/s (metrics), $wire B/s (acked on the" \
		"wire), rounds $r0 -> $r1; competing flow $comp B/s; agent a peers:"
	ctl a peers | sed 's/^/  /'
	[ "$r1" -ge $((r0 + 2)) ] || fail "$label: rounds did not advance ($r0 -> $r1)"
	awk -v r="$rate" -v c="$cap" 'BEGIN { exit !(r >= 0.9 * c && r <= 1.1 * c) }' ||
		fail "$label: agent a sent $rate B/s, not within 10 % of $cap"
	if [ "$wire" != - ]; then
		awk -v r="$wire" -v c="$cap" 'BEGIN { exit !(r >= 0.9 * c && r <= 1.1 * c) }' ||
			fail "$label: $wire B/s acked on the wire, not within 10 % of $cap"
	fi
	[ "$comp" -gt 1000000 ] || fail "$label: the competing flow got only $comp B/s"
	echo "RESULT rate $label cap=$cap sent=$rate wire=$wire competing=$comp rounds=$((r1 - r0))"
}

sleep 2 # past the start-up burst
measure 2000000 "max_rate=2M"
v=$(ctl a --json peers | python3 -c 'import json,sys
p = json.load(sys.stdin)["peers"][0]
print(p["send_rate_bytes_per_second"] is not None, p["max_rate_bytes_per_second"])')
[ "$v" = "True None" ] ||
	fail "peers --json: per-peer send rate / cap '$v' (expected a rate, no cap)"
[ "$(metric a macc_max_rate_bytes_per_second)" = 2000000 ] ||
	fail "metrics: macc_max_rate_bytes_per_second is not 2000000"

# Reload with a lower cap, now on the peer: it applies to the live session.
sed -i '/^max_rate = /d' "$WORK/a/agentd.conf"
echo "max_rate = 1M" >>"$WORK/a/agentd.conf"
ctl a reload >/dev/null || fail "reload failed"
grep -q "\[agent-b\] max_rate 1000000 bytes/s" "$WORK/agenta.log" ||
	fail "reload did not change max_rate"
sleep 3
measure 1000000 "reloaded, [peer] max_rate=1M"
[ "$(metric a 'macc_peer_max_rate_bytes_per_second{peer="agent-b"}')" = 1000000 ] ||
	fail "metrics: macc_peer_max_rate_bytes_per_second is not 1000000 after the reload"
echo "PASS"
