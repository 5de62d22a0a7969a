#!/bin/bash
# test_agentd_net.sh: refusals and reload.
#   - an impostor (right endpoint, wrong key) is refused and counted on the peer it pretends to be;
#   - a daemon with another model is refused with model_mismatch;
#   - a client spewing garbage at the peer port is dropped; the agents keep training;
#   - SIGHUP with a new peer list: a removed peer goes away, an added one gets a session, and
#     training continues without a restart.
. "$(dirname "$0")/agentd_lib.sh"

dir="$WORK/ring"
gen_ring "$dir" --set model=mlp:784-32-10 --set rounds=100000 --set round_timeout_ms=500 \
	--set dead_peer_timeout_ms=1500 --set checkpoint_every=0

# Impostor for agent2: agent2's config with a fresh key (macc-ctl genkey, like gen.sh).
mkdir -p "$WORK/imp"
(umask 077 && "$MACC_BUILD/src/ctl/macc-ctl" genkey >"$WORK/imp/agent.key") ||
	fail "macc-ctl genkey failed"
sed -e "s#^key_file = .*#key_file = $WORK/imp/agent.key#" \
	-e "s#^state_dir = .*#state_dir = $WORK/imp#" \
	-e "s#^control_socket = .*#control_socket = $WORK/imp/ctl.sock#" \
	"$dir/agent2/agentd.conf" >"$WORK/imp/agentd.conf"
# agent3 with another model.
sed -e "s#^model = .*#model = mlp:784-16-10#" -e "s#/agent3/state#/agent3/state-other#" \
	"$dir/agent3/agentd.conf" >"$WORK/other3.conf"
mkdir -p "$dir/agent3/state-other"

start_agent 0 "$dir/agent0/agentd.conf"
start_agent 1 "$dir/agent1/agentd.conf"
start_agent 2 "$WORK/imp/agentd.conf"
start_agent 3 "$WORK/other3.conf"

wait_log "$WORK/agent1.log" "\[agent2\] rejected \(unknown_peer\)" 20 ||
	fail "agent1 did not refuse the impostor at agent2's endpoint"
echo "ok: impostor refused (unknown_peer)"
wait_log "$WORK/agent0.log" "\[agent3\] rejected \(model_mismatch\)" 20 ||
	fail "agent0 did not refuse agent3's other model"
echo "ok: other model refused (model_mismatch)"
wait_log "$WORK/agent0.log" "\[agent1\] session up" 20 || fail "agent0 and agent1 did not connect"

# Garbage: a large length prefix, then random bytes, at agent0's port.
port0=$(sed -n 's/^listen = 127.0.0.1:\([0-9]*\)$/\1/p' "$dir/agent0/agentd.conf")
{
	printf '\x7f\xff\xff\xff'
	head -c 65536 /dev/urandom
} >"$WORK/garbage.bin"
# (Not `timeout`: it would signal its whole process group, our daemons included.)
send_garbage() {
	(exec 3>"/dev/tcp/127.0.0.1/$port0" && cat "$1" >&3) 2>/dev/null &
	local gp=$!
	wait_gone "$gp" 5 || kill "$gp" 2>/dev/null || true
	wait "$gp" 2>/dev/null || true
}
send_garbage "$WORK/garbage.bin"
head -c 200000 /dev/urandom >"$WORK/garbage2.bin"
send_garbage "$WORK/garbage2.bin"
wait_log "$WORK/agent0.log" "connection refused before identification \(malformed\)" 10 ||
	fail "agent0 did not log the garbage connection"
kill -0 "$PID_0" || fail "agent0 died from garbage"
r1=$(grep -c "round [0-9]*/" "$WORK/agent0.log" || true)
wait_log "$WORK/agent0.log" "round $(((r1 + 2) * 46))/" 60 || fail "agent0 stopped training after garbage"
echo "ok: garbage dropped, agent0 still training"

# Reload: drop agent3 from agent0's peers.
awk 'BEGIN { RS = ""; ORS = "\n\n" } !/name = agent3/' "$dir/agent0/agentd.conf" \
	>"$WORK/agent0-no3.conf"
cp "$dir/agent0/agentd.conf" "$WORK/agent0-full.conf"
cp "$WORK/agent0-no3.conf" "$dir/agent0/agentd.conf"
kill -HUP "$PID_0"
wait_log "$WORK/agent0.log" "\[agent3\] peer removed" 10 || fail "reload did not remove agent3"
wait_log "$WORK/agent0.log" "reloaded: 1 peers" 10 || fail "reload did not report 1 peer"
echo "ok: SIGHUP removed a peer"

# Put the real agent3 in place of the other-model daemon, and add it back by reload.
kill "$PID_3"
wait_gone "$PID_3" 10 || fail "other-model agent3 did not stop"
: >"$WORK/agent3.log"
start_agent 3 "$dir/agent3/agentd.conf"
wait_log "$WORK/agent3.log" "listening on" 30 || fail "agent3 did not start"
cp "$WORK/agent0-full.conf" "$dir/agent0/agentd.conf"
kill -HUP "$PID_0"
wait_log "$WORK/agent0.log" "\[agent3\] peer added" 10 || fail "reload did not add agent3"
wait_log "$WORK/agent0.log" "\[agent3\] session up" 20 || fail "no session with the re-added agent3"
kill -0 "$PID_0" || fail "agent0 exited across reloads"
echo "ok: SIGHUP added a peer and its session came up without a restart"

for j in 0 1 3; do
	pid_var="PID_$j"
	kill -TERM "${!pid_var}"
	wait_exit "${!pid_var}" 15 || fail "agent$j did not stop on SIGTERM"
	[ "$EXIT_RC" = 0 ] || fail "agent$j exited $EXIT_RC"
done
echo "PASS"
