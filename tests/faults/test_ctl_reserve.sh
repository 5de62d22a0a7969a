#!/bin/bash
# test_ctl_reserve.sh: other users' control clients cannot lock the operator out.
# A local user who may use the control socket (uid nobody, in the socket's group) opens 64
# connections and keeps each one with a `watch` stream (watchers are exempt from the idle
# timeout). Before the fix all 64 slots went to it and root's `status` and `stop` got `busy` for
# as long as it held them. Expected (defaults: control_max_clients = 64, of which
# control_reserved_clients = 4 are kept for root and the daemon's user):
#   - the user gets 60 slots and `busy` for the other 4;
#   - meanwhile root's `status`, `peers`, `pause` and `resume` work, 4 at once included;
#   - with control_idle_timeout_ms = 1500 (restart), a client that sends nothing is closed after
#     it, and one that completed a request is closed 1.5 s after its last one.
# Root only (it switches the flooding client to another uid); encryption plays no part.
. "$(dirname "$0")/faults_lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to act as another local user"; exit 77; }
ENCRYPT=no
hostile_fleet
sock="$FLEET/agent0/ctl.sock"
# The other user must reach the socket: search permission on the directories above it (the
# group bits too: it keeps the socket's group, which owns them).
chmod go+x "$WORK" "$FLEET" "$FLEET/agent0"
"$ADVERSARY" --ctl-flood "$sock" --clients 64 --hold-ms 20000 --as-uid 65534 >"$WORK/flood.out" 2>&1 &
FL=$!
PIDS+=("$FL")
wait_log "$WORK/flood.out" "^ctl connected" 30 || fail "the flood did not connect: $(cat "$WORK/flood.out")"
cat "$WORK/flood.out"
for cmd in status peers pause resume; do
	"$CTL" -s "$sock" "$cmd" >"$WORK/root-$cmd.out" 2>&1 ||
		fail "root's '$cmd' refused while the other user holds its slots: $(cat "$WORK/root-$cmd.out")"
done
for k in 1 2 3 4; do
	"$CTL" -s "$sock" status >"$WORK/root-par$k.out" 2>&1 &
	eval "P$k=\$!"
done
for k in 1 2 3 4; do
	v="P$k"
	wait "${!v}" || fail "root's parallel status $k refused: $(cat "$WORK/root-par$k.out")"
done
read -r _ _ got _ busy < <(grep '^ctl connected' "$WORK/flood.out")
[ "$got" = 60 ] && [ "$busy" = 4 ] || fail "the other user got $got slots and $busy busy, expected 60 and 4"
echo "ok: 64 watchers of uid 65534 hold 60 slots (4 busy); root's status, peers, pause, resume and 4 parallel status all answered"
kill "$FL" 2>/dev/null || true
wait_exit "$FL" 10 || true

# The idle timeout, shortened by the config.
kill -TERM "$(pid_of 0)"
wait_exit "$(pid_of 0)" 30 || fail "agent0 did not stop"
hostile_conf --agent-set control_idle_timeout_ms=1500
start_agent 0 "$FLEET/agent0/agentd.conf"
wait_round 0 5 60 || fail "agent0 did not restart"
python3 - "$sock" <<'PY' || fail "idle timeout"
import socket, struct, sys, time
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    s.settimeout(10)
    return s
def closed_after(s):
    t0 = time.monotonic()
    while True:
        d = s.recv(65536)
        if not d:
            return time.monotonic() - t0
# silent client
t = closed_after(conn())
assert 1.2 <= t <= 5.0, "silent client closed after %.2f s" % t
# a client with one request (msgpack {"v":1,"id":1,"cmd":"version"}), then silence
s = conn()
body = b"\x83\xa1v\x01\xa2id\x01\xa3cmd\xa7version"
s.sendall(struct.pack(">I", len(body)) + body)
hdr = s.recv(4)
n = struct.unpack(">I", hdr)[0]
got = b""
while len(got) < n:
    got += s.recv(n - len(got))
t = closed_after(s)
assert 1.2 <= t <= 5.0, "client closed %.2f s after its reply" % t
print("ok: idle clients closed after the 1.5 s idle timeout")
PY
echo "PASS"
