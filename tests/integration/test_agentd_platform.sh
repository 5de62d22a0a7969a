#!/bin/bash
# test_agentd_platform.sh: what a fleet shows about its platforms, and a finished agent that is
# restarted.
#   - status and peers name each agent's architecture (uname -m) and BLAS kernel, the latter
#     from the optional HELLO platform fields;
#   - an agent whose run is done, stopped and started again, reports the test accuracy the
#     run ended with (status, its log) instead of nan / null: it evaluates the final model it
#     resumed from its checkpoint.
# A ring of four on loopback, mlp:784-16-10, 40 rounds. The agents are not told to exit when
# done, so the ring stays up for the queries.
. "$(dirname "$0")/agentd_lib.sh"
CTL="$MACC_BUILD/src/ctl/macc-ctl"
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }

dir="$WORK/ring"
gen_ring "$dir" --set model=mlp:784-16-10 --set rounds=40 --set lr=0.05 \
	--set round_timeout_ms=3000 --set dead_peer_timeout_ms=6000 --set checkpoint_every=20
for j in 0 1 2 3; do
	: >"$WORK/agent$j.log"
	start_agent "$j" "$dir/agent$j/agentd.conf"
done
for j in 0 1 2 3; do
	wait_log "$WORK/agent$j.log" "training done:" 120 || fail "agent$j did not finish 40 rounds"
done
sock="$dir/agent0/ctl.sock"

# json FILE EXPR: evaluate a python expression over the parsed JSON document `d`.
json() {
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$1" "$2"
}

arch=$(uname -m)
"$CTL" -s "$sock" --json status >"$WORK/status.json" || fail "macc-ctl status failed"
[ "$(json "$WORK/status.json" 'd["arch"]')" = "$arch" ] ||
	fail "status arch is '$(json "$WORK/status.json" 'd["arch"]')', expected $arch"
kernel=$(json "$WORK/status.json" 'd["blas"]')
[ -n "$kernel" ] || fail "status has no BLAS kernel"
"$CTL" -s "$sock" status | grep -q "^platform: *$arch, BLAS kernel $kernel$" ||
	fail "no 'platform:' line in the human status: $("$CTL" -s "$sock" status)"
echo "ok: status shows platform $arch, BLAS kernel $kernel"

# Every neighbour's platform arrived in its HELLO (all on this host: the same as ours).
"$CTL" -s "$sock" --json peers >"$WORK/peers.json" || fail "macc-ctl peers failed"
got=$(json "$WORK/peers.json" \
	'" ".join(sorted(set(p["arch"] + "/" + p["blas"] for p in d["peers"])))')
[ "$got" = "$arch/$kernel" ] || fail "peers show platforms '$got', expected $arch/$kernel"
"$CTL" -s "$sock" peers | grep -c " $arch/$kernel " | grep -qx 2 ||
	fail "the human peers table does not show $arch/$kernel twice: $("$CTL" -s "$sock" peers)"
echo "ok: peers show $got (from HELLO)"

# The run's final accuracy, then a restart of the finished agent.
want=$(sed -n 's/.*training done:.*test accuracy \([0-9.]*\) .*/\1/p' "$WORK/agent0.log" |
	tail -n 1)
[ -n "$want" ] || fail "no final accuracy in agent0's log"
kill -TERM "$PID_0"
wait_exit "$PID_0" 20 || fail "agent0 did not stop within 20 s of SIGTERM"
[ "$EXIT_RC" = 0 ] || fail "agent0 exited with $EXIT_RC on SIGTERM"
: >"$WORK/agent0.log"
start_agent 0 "$dir/agent0/agentd.conf"
wait_log "$WORK/agent0.log" "training done:" 30 || fail "the restarted agent0 did not say done"
grep -q "resumed from .* at round 40 " "$WORK/agent0.log" ||
	fail "the restarted agent0 did not resume from its round-40 checkpoint"
again=$(sed -n 's/.*training done:.*test accuracy \([0-9.na]*\) .*/\1/p' "$WORK/agent0.log" |
	tail -n 1)
[ "$again" = "$want" ] || fail "after the restart the log says test accuracy '$again', the run" \
	"ended with $want"
"$CTL" -s "$sock" --json status >"$WORK/status2.json" || fail "macc-ctl status failed"
[ "$(json "$WORK/status2.json" 'd["state"]')" = "done" ] || fail "the restarted agent is not done"
acc=$(json "$WORK/status2.json" \
	'"null" if d["test_accuracy_ratio"] is None else "%.4f" % d["test_accuracy_ratio"]')
[ "$acc" = "$want" ] || fail "after the restart status says test accuracy $acc, the run ended" \
	"with $want"
"$CTL" -s "$sock" status | grep -Eq "^test: +accuracy [0-9]" ||
	fail "the human status shows no accuracy after the restart"
echo "ok: a finished agent restarted reports the accuracy the run ended with ($want)"
echo "PASS"
