#!/bin/bash
# test_agentd_notify.sh: the daemon's sd_notify(3) protocol, with this test playing systemd.
# A small python3 listener binds a Unix datagram socket, NOTIFY_SOCKET points the daemon at it,
# and every datagram is written to a file with its arrival time. Asserted:
#   - READY=1 arrives, and only once the peer port accepts connections (the listener connects
#     to it the moment READY=1 arrives);
#   - with WATCHDOG_USEC set (1 s), WATCHDOG=1 arrives periodically, never WATCHDOG_USEC apart;
#   - STATUS= lines with the agent's progress (shown by systemctl status);
#   - SIGHUP: RELOADING=1 (with MONOTONIC_USEC) and then READY=1 again;
#   - SIGTERM: STOPPING=1, then the daemon exits 0.
# One agent of a ring alone is enough (its neighbours stay down; it is not waited for).
. "$(dirname "$0")/agentd_lib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }

dir="$WORK/ring"
gen_ring "$dir" --set model=mlp:784-16-10 --set rounds=100000 --set round_timeout_ms=300 \
	--set dead_peer_timeout_ms=1000 --set checkpoint_every=0
sock="$WORK/notify.sock"
msgs="$WORK/notify.txt"
port=$BASE_PORT # agent0 listens on the base port

# The listener: one line per datagram, "<monotonic seconds> <message with \n as |>"; on READY=1
# it also records whether the peer port accepted a TCP connection at that moment.
python3 - "$sock" "$msgs" "$port" <<'EOF' &
import os, socket, sys, time
path, out, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(60)
with open(out + ".tmp", "w") as f:
    f.write("listening\n")
os.rename(out + ".tmp", out)
with open(out, "a", buffering=1) as f:
    while True:
        try:
            data = s.recv(4096)
        except socket.timeout:
            break
        msg = data.decode("utf-8", "replace").replace("\n", "|")
        f.write("%.3f %s\n" % (time.monotonic(), msg))
        if "READY=1" in msg.split("|"):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.settimeout(2)
            try:
                c.connect(("127.0.0.1", port))
                f.write("ready-port open\n")
            except OSError as e:
                f.write("ready-port closed %s\n" % e)
            finally:
                c.close()
EOF
PIDS+=("$!")
wait_log "$msgs" "^listening" 10 || fail "the notify listener did not start"

# WATCHDOG_USEC=1 s: the daemon pings every half of it.
: >"$WORK/agent0.log"
NOTIFY_SOCKET="$sock" WATCHDOG_USEC=1000000 start_agent 0 "$dir/agent0/agentd.conf"

wait_log "$msgs" " READY=1" 30 || fail "no READY=1 from the daemon"
wait_log "$msgs" "^ready-port " 5 || fail "the listener did not check the port"
grep -q "^ready-port open" "$msgs" ||
	fail "READY=1 came before the peer port listened: $(grep '^ready-port' "$msgs")"
grep -q "listening on" "$WORK/agent0.log" || fail "no 'listening on' in the daemon's log"
echo "ok: READY=1 after the peer port listens"

# Watchdog: at least 5 pings within ~3 s after READY, never more than WATCHDOG_USEC apart.
sleep 3
n=$(grep -c " WATCHDOG=1$" "$msgs" || true)
[ "$n" -ge 5 ] || fail "only $n WATCHDOG=1 in ~3 s with WATCHDOG_USEC=1000000"
gap=$(awk '$2 == "WATCHDOG=1" { if (t) { d = $1 - t; if (d > m) m = d } t = $1 }
	END { printf "%.3f", m }' "$msgs")
awk -v g="$gap" 'BEGIN { exit !(g <= 1.0) }' ||
	fail "WATCHDOG=1 pings $gap s apart, more than WATCHDOG_USEC (1 s)"
echo "ok: $n WATCHDOG=1 pings, at most $gap s apart"

# Progress for `systemctl status`: STATUS= lines with state, round, epoch, loss, accuracy, peers.
re=" STATUS=training round [0-9]+/100000 epoch [0-9.]+ loss [-0-9.]+ acc [-0-9.]+%? peers up [0-9]/2$"
grep -Eq "$re" "$msgs" || fail "no STATUS= progress line: $(grep STATUS= "$msgs" | head -n 3)"
echo "ok: STATUS= progress: $(grep -m 1 -o 'STATUS=.*' "$msgs")"

# Reload: RELOADING=1 with MONOTONIC_USEC, then READY=1 again.
before=$(wc -l <"$msgs")
kill -HUP "$PID_0"
wait_log "$WORK/agent0.log" "reloaded: " 10 || fail "the daemon did not reload on SIGHUP"
sleep 0.3
tail -n +"$((before + 1))" "$msgs" | grep -v "WATCHDOG=1$" >"$WORK/after-hup.txt"
grep -Eq " RELOADING=1\|MONOTONIC_USEC=[0-9]+$" "$WORK/after-hup.txt" ||
	fail "no RELOADING=1|MONOTONIC_USEC=... after SIGHUP: $(cat "$WORK/after-hup.txt")"
awk '/ RELOADING=1/ { r = NR } / READY=1$/ && r && NR > r { ok = 1 } END { exit !ok }' \
	"$WORK/after-hup.txt" || fail "no READY=1 after RELOADING=1: $(cat "$WORK/after-hup.txt")"
echo "ok: SIGHUP -> RELOADING=1 (MONOTONIC_USEC) then READY=1"

# Stop: STOPPING=1, exit 0.
kill -TERM "$PID_0"
wait_exit "$PID_0" 15 || fail "the daemon did not exit within 15 s of SIGTERM"
[ "$EXIT_RC" = 0 ] || fail "the daemon exited with $EXIT_RC after SIGTERM"
grep -q " STOPPING=1$" "$msgs" || fail "no STOPPING=1 after SIGTERM"
awk '/ STOPPING=1$/ { s = 1 } / READY=1$/ && s { bad = 1 } END { exit bad }' "$msgs" ||
	fail "READY=1 after STOPPING=1"
echo "ok: SIGTERM -> STOPPING=1, exit 0"
echo "PASS"
