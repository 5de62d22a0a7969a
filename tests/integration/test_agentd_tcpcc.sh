#!/bin/bash
# test_agentd_tcpcc.sh: [agent] tcp_congestion.
#   - a value that is not an algorithm's name is an error of the config, naming the key;
#   - a name this kernel has not loaded is a warning of --check-config (exit 0);
#   - two daemons, agent0 with tcp_congestion set to an algorithm other than the system's
#     default: every established peer socket of agent0 uses it (ss -ti), while agent1, which
#     leaves the key unset, keeps the default on its own ends;
#   - agent2 with a name the kernel cannot use logs one warning naming it, and still trains with
#     the default.
. "$(dirname "$0")/agentd_lib.sh"

command -v ss >/dev/null || { echo "SKIP: no ss (iproute2)"; exit 77; }
avail=/proc/sys/net/ipv4/tcp_available_congestion_control
dflt=$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || true)
[ -r "$avail" ] && [ -n "$dflt" ] || { echo "SKIP: no TCP congestion control in /proc"; exit 77; }
# An algorithm other than the default that this kernel has loaded (reno always is).
other=""
for cc in reno cubic bbr; do
	if [ "$cc" != "$dflt" ] && grep -qw "$cc" "$avail"; then
		other=$cc
		break
	fi
done
[ -n "$other" ] || { echo "SKIP: only $dflt is loaded"; exit 77; }
if [ "$(id -u)" != 0 ] && ! grep -qw "$other" /proc/sys/net/ipv4/tcp_allowed_congestion_control; then
	echo "SKIP: $other needs CAP_NET_ADMIN here"
	exit 77
fi

gen_ring "$WORK/r" --set model=mlp:784-16-10 --set rounds=100000 --set checkpoint_every=0
conf0="$WORK/r/agent0/agentd.conf"

# The parser: not a name.
sed "/^\[agent\]/a tcp_congestion = Cubic!" "$conf0" >"$WORK/bad.conf"
rc=0
"$AGENTD" --check-config -c "$WORK/bad.conf" >"$WORK/bad.out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "tcp_congestion.*expected the name of a TCP congestion control" \
	"$WORK/bad.out" || fail "tcp_congestion = Cubic!: exit $rc: $(cat "$WORK/bad.out")"
echo "ok: a value that is not a name is refused: $(grep -m1 tcp_congestion "$WORK/bad.out" | sed "s#$WORK/##")"

# The check: not loaded is a warning.
sed "/^\[agent\]/a tcp_congestion = nosuchcc" "$conf0" >"$WORK/warn.conf"
rc=0
"$AGENTD" --check-config -c "$WORK/warn.conf" >"$WORK/warn.out" 2>&1 || rc=$?
[ "$rc" = 0 ] && grep -q "warning.*tcp_congestion.*not loaded in this kernel" "$WORK/warn.out" ||
	fail "tcp_congestion = nosuchcc: exit $rc: $(cat "$WORK/warn.out")"
echo "ok: an algorithm that is not loaded is a warning"

# Live: agent0 asks for $other, agent1 keeps the default, agent2 asks for one that cannot be set.
sed -i "/^\[agent\]/a tcp_congestion = $other" "$conf0"
sed -i "/^\[agent\]/a tcp_congestion = nosuchcc" "$WORK/r/agent2/agentd.conf"
start_agent 0 "$conf0"
start_agent 1 "$WORK/r/agent1/agentd.conf"
start_agent 2 "$WORK/r/agent2/agentd.conf"
wait_log "$WORK/agent0.log" "\[agent1\] session up" 30 || fail "agent0 and agent1 did not connect"
wait_log "$WORK/agent1.log" "\[agent2\] session up" 30 || fail "agent1 and agent2 did not connect"
wait_log "$WORK/agent2.log" "tcp_congestion = nosuchcc refused by the kernel" 10 ||
	fail "agent2 did not log the refused algorithm"
[ "$(grep -c "tcp_congestion = nosuchcc refused" "$WORK/agent2.log")" = 1 ] ||
	fail "agent2 logged the refusal more than once"
echo "ok: agent2 logs one warning for an algorithm the kernel refuses, and connects"

# ss -tinp: the socket line names the process, the next line holds the algorithm.
# algos PID: the algorithm of each established TCP socket of PID, one per line.
algos() {
	ss -tinpH state established 2>/dev/null | awk -v pid="pid=$1," '
		/users:/ { mine = index($0, pid) > 0; next }
		mine { for (i = 1; i <= NF; i++) if ($i ~ /^(reno|cubic|bbr|[a-z0-9_]+)$/ && $(i + 1) ~ /^wscale:|^rto:/) { print $i; break }; mine = 0 }'
}
# PID_0 and PID_1 are set by start_agent.
# shellcheck disable=SC2154
mine0=$(algos "$PID_0" | sort | uniq -c)
# shellcheck disable=SC2154
mine1=$(algos "$PID_1" | sort | uniq -c)
echo "agent0's sockets: $mine0"
echo "agent1's sockets: $mine1"
[ -n "$mine0" ] || fail "no established socket of agent0 in ss -tinp"
[ "$(algos "$PID_0" | sort -u)" = "$other" ] ||
	fail "agent0's peer sockets do not all use $other: $mine0"
algos "$PID_1" | grep -qx "$dflt" || fail "agent1 (key unset) has no socket with the default $dflt: $mine1"
echo "ok: agent0's peer sockets use $other, agent1's the system default $dflt"
