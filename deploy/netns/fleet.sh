#!/bin/bash
# fleet.sh: a multi-host macc fleet on one Linux machine, without Docker.
#
# Each host is a network namespace with one interface (eth0, 10.77.0.I/24) whose veth peer is
# plugged into a bridge that lives in a namespace of its own, so nothing is added to the
# machine's own network namespace and the 10.77.0.0/24 addresses exist only inside the fleet.
# Keys and configs come from gen-fleet.sh (the generator the Docker Compose demo uses too); one
# macc-agentd runs in each host namespace and is driven with macc-ctl through its control
# socket (a path in the work directory, reachable from any namespace). Optional tc netem delay
# and loss shape the links, and a timed partition unplugs some hosts for a while.
#
# The script waits until every agent reports `done` (or fails, or --timeout passes), prints each
# agent's round, epoch and test accuracy, and exits 0 only if all finished (and reached
# --min-accuracy). On exit, whatever the reason, a trap stops the agents it started (by pid:
# SIGTERM, then SIGKILL after a bounded wait), deletes the namespaces it created and removes its
# temporary work directory. Every wait is bounded. Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN);
# exits 77 when network namespaces cannot be created here.
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)

usage() {
	cat <<EOF
usage: $prog [options]
  -n, --agents N         hosts / agents (default 5, at most 250)
  -t, --topology T       ring | full | star | bipartite | torus:RxC | line (default ring)
      --set KEY=VALUE    [train] key for every agent, repeatable (model=, epochs=, lr=, ...)
      --agent-set K=V    [agent] key for every agent, repeatable (log_level=debug)
      --bin DIR          where macc-agentd and macc-ctl are (repeatable; default: \$MACC_BUILD's
                         src/agentd and src/ctl, then PATH)
      --port P           listen port of every agent (default 7640)
      --delay MS         netem delay on every host's link (e.g. 20 or 20:5 for 20 ms +- 5 ms)
      --loss PCT         netem loss on every host's link (e.g. 1)
      --partition I,J@S+D  cut hosts I,J,... off (cable unplugged) from S to S+D seconds into
                         training
      --timeout S        give up when training has not finished after S seconds (default 900)
      --min-accuracy A   fail when an agent's final test accuracy is below A (0..1)
      --workdir DIR      keep keys, configs, logs and checkpoints there (default: a temporary
                         directory, removed on exit)
      --results FILE     write one line per agent: name state round epoch test_accuracy
      --tag NAME         prefix of the namespaces (NAMEbr, NAMEh1, ...; default macc<pid>)
  -h, --help
Exit status: 0 all agents done, 1 a failure (agent died or errored, timeout, low accuracy),
2 usage error, 77 network namespaces are not permitted here.
EOF
}

die() {
	echo "$prog: $*" >&2
	exit 2
}
log() {
	echo "$prog: $*" >&2
}

n=5
topology=ring
train_sets=()
agent_sets=()
bindirs=()
port=7640
delay=""
loss=""
partition=""
timeout_s=900
min_acc=""
workdir=""
results=""
tag="macc$$"

while [ $# -gt 0 ]; do
	case $1 in
	-n | --agents) n=${2:?}; shift ;;
	-t | --topology) topology=${2:?}; shift ;;
	--set) train_sets+=(--set "${2:?}"); shift ;;
	--agent-set) agent_sets+=(--agent-set "${2:?}"); shift ;;
	--bin) bindirs+=("${2:?}"); shift ;;
	--port) port=${2:?}; shift ;;
	--delay) delay=${2:?}; shift ;;
	--loss) loss=${2:?}; shift ;;
	--partition) partition=${2:?}; shift ;;
	--timeout) timeout_s=${2:?}; shift ;;
	--min-accuracy) min_acc=${2:?}; shift ;;
	--workdir) workdir=${2:?}; shift ;;
	--results) results=${2:?}; shift ;;
	--tag) tag=${2:?}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument '$1'" ;;
	esac
	shift
done

case $n$timeout_s in
'' | *[!0-9]*) die "--agents and --timeout must be numbers" ;;
esac
if [ "$n" -lt 2 ] || [ "$n" -gt 250 ]; then
	die "--agents must be 2..250, got $n"
fi
if [ -n "$delay" ] && ! [[ $delay =~ ^[0-9]+(:[0-9]+)?$ ]]; then
	die "--delay wants MS or MS:JITTER, got '$delay'"
fi
if [ -n "$loss" ] && ! [[ $loss =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
	die "--loss wants a percentage, got '$loss'"
fi
part_hosts=()
part_start=0
part_end=0
if [ -n "$partition" ]; then
	[[ $partition =~ ^([0-9]+(,[0-9]+)*)@([0-9]+)\+([0-9]+)$ ]] ||
		die "--partition wants I,J,...@START+DURATION, got '$partition'"
	IFS=, read -r -a part_hosts <<<"${BASH_REMATCH[1]}"
	part_start=${BASH_REMATCH[3]}
	part_end=$((part_start + BASH_REMATCH[4]))
	for h in "${part_hosts[@]}"; do
		if [ "$h" -lt 1 ] || [ "$h" -gt "$n" ]; then
			die "--partition host $h is not in 1..$n"
		fi
	done
fi

# Programs: --bin dirs, then the build tree, then PATH.
if [ -n "${MACC_BUILD:-}" ]; then
	bindirs+=("$MACC_BUILD/src/agentd" "$MACC_BUILD/src/ctl")
fi
find_prog() {
	local d
	for d in ${bindirs[@]+"${bindirs[@]}"}; do
		if [ -x "$d/$1" ]; then
			echo "$d/$1"
			return 0
		fi
	done
	command -v "$1" || return 1
}
agentd=$(find_prog macc-agentd) || die "macc-agentd not found (--bin DIR or MACC_BUILD)"
ctl=$(find_prog macc-ctl) || die "macc-ctl not found (--bin DIR or MACC_BUILD)"
command -v ip >/dev/null || die "ip (iproute2) not found"
command -v python3 >/dev/null || die "python3 not found (used to read macc-ctl --json)"
if [ -n "$delay$loss" ]; then
	command -v tc >/dev/null || die "tc (iproute2) not found"
fi

[[ $tag =~ ^[A-Za-z0-9_-]{1,20}$ ]] || die "--tag wants 1..20 characters [A-Za-z0-9_-], got '$tag'"

# --- state for the trap: everything this script creates, and only that ---------------------
brns="${tag}br"
netns_made=()
pids=()
own_workdir=0
started=$(date +%s)

# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
	local rc=$? pid i ns
	trap - EXIT INT TERM
	for pid in ${pids[@]+"${pids[@]}"}; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	# bounded wait (10 s) for a graceful exit (checkpoint, BYE), then SIGKILL what is left
	for ((i = 0; i < 100; i++)); do
		local alive=0
		for pid in ${pids[@]+"${pids[@]}"}; do
			if kill -0 "$pid" 2>/dev/null; then
				alive=1
			fi
		done
		[ "$alive" -eq 1 ] || break
		sleep 0.1
	done
	for pid in ${pids[@]+"${pids[@]}"}; do
		if kill -0 "$pid" 2>/dev/null; then
			log "agent pid $pid ignored SIGTERM for 10 s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	for ns in ${netns_made[@]+"${netns_made[@]}"}; do
		ip netns delete "$ns" 2>/dev/null || true
	done
	if [ "$own_workdir" -eq 1 ]; then
		rm -rf "$workdir"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

if [ -z "$workdir" ]; then
	workdir=$(mktemp -d /tmp/macc-fleet.XXXXXX)
	own_workdir=1
else
	mkdir -p "$workdir"
	workdir=$(cd "$workdir" && pwd)
fi

# --- network ---------------------------------------------------------------------------------
if ! ip netns add "$brns" 2>"$workdir/netns.err"; then
	log "cannot create network namespaces here: $(cat "$workdir/netns.err")"
	exit 77
fi
netns_made+=("$brns")
ip -n "$brns" link add br0 type bridge
ip -n "$brns" link set br0 up
for ((i = 1; i <= n; i++)); do
	ns="${tag}h$i"
	ip netns add "$ns"
	netns_made+=("$ns")
	ip -n "$brns" link add "v$i" type veth peer name eth0 netns "$ns"
	ip -n "$brns" link set "v$i" master br0 up
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add "10.77.0.$i/24" dev eth0
	ip -n "$ns" link set eth0 up
done

# netem on every host's own link (so delay and loss apply once at each end of every edge).
# The partition needs no netem: it unplugs the hosts' cables (their bridge ports go down).
netem_args=()
if [ -n "$delay" ]; then
	netem_args+=(delay "${delay%%:*}ms")
	if [[ $delay == *:* ]]; then
		netem_args+=("${delay#*:}ms")
	fi
fi
if [ -n "$loss" ]; then
	netem_args+=(loss "$loss%")
fi
if [ "${#netem_args[@]}" -gt 0 ]; then
	for ((i = 1; i <= n; i++)); do
		if ! tc -n "${tag}h$i" qdisc replace dev eth0 root netem "${netem_args[@]}" \
			2>"$workdir/tc.err"; then
			log "tc netem failed ($(cat "$workdir/tc.err")); is the sch_netem kernel module available?"
			exit 1
		fi
	done
	log "links: netem ${netem_args[*]}"
fi
set_cable() {
	# set_cable HOST up|down
	ip -n "$brns" link set "v$1" "$2"
}

# --- keys, configs, agents -------------------------------------------------------------------
"$here/gen-fleet.sh" --ctl "$ctl" -n "$n" -t "$topology" --host-format '10.77.0.%d' \
	--listen-host 0.0.0.0 --port "$port" ${train_sets[@]+"${train_sets[@]}"} \
	${agent_sets[@]+"${agent_sets[@]}"} "$workdir" >/dev/null
for ((i = 1; i <= n; i++)); do
	d="$workdir/agent$i"
	mkdir -p "$d/state"
	"$agentd" --check-config -c "$d/agentd.conf" >"$d/check.log" 2>&1 ||
		{ log "agent$i: config rejected:"; cat "$d/check.log" >&2; exit 1; }
done
for ((i = 1; i <= n; i++)); do
	d="$workdir/agent$i"
	# `ip netns exec` execs the daemon, so $! is the daemon's own pid
	ip netns exec "${tag}h$i" "$agentd" -c "$d/agentd.conf" </dev/null >"$d/agentd.log" 2>&1 &
	pids+=("$!")
done
log "$n agents ($topology) started in $workdir"

ctl_json() {
	# ctl_json I CMD: macc-ctl --json CMD of agent I, bounded in time
	timeout 10 "$ctl" -s "$workdir/agent$1/ctl.sock" --json "$2"
}
# One line from a status JSON document: "state round epoch test_accuracy" (accepts the status
# at the top level or under "data"; unknown numbers print as nan).
status_fields() {
	python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    print("unreachable 0 0 nan"); sys.exit(0)
if isinstance(d.get("data"), dict):
    d = d["data"]
def num(k):
    v = d.get(k)
    return "nan" if v is None else v
print(d.get("state", "unknown"), num("round"), num("epoch"), num("test_accuracy_ratio"))
'
}
agent_failed() {
	log "agent$1 failed: $2; last lines of its log:"
	tail -n 20 "$workdir/agent$1/agentd.log" >&2 || true
	exit 1
}

# Wait (bounded: 60 s) until every control socket answers.
for ((i = 1; i <= n; i++)); do
	ok=0
	for ((t = 0; t < 600; t++)); do
		kill -0 "${pids[i - 1]}" 2>/dev/null || agent_failed "$i" "exited during start-up"
		if [ -S "$workdir/agent$i/ctl.sock" ] && ctl_json "$i" status >/dev/null 2>&1; then
			ok=1
			break
		fi
		sleep 0.1
	done
	[ "$ok" -eq 1 ] || agent_failed "$i" "control socket did not answer within 60 s"
done

# Agents that wait for an explicit start get one (a start while already training is refused with
# bad-state, which is fine).
for ((i = 1; i <= n; i++)); do
	read -r state _ <<<"$(ctl_json "$i" status | status_fields)"
	if [ "$state" = idle ]; then
		"$ctl" -s "$workdir/agent$i/ctl.sock" start >/dev/null 2>&1 || true
	fi
done
train_t0=$(date +%s)

# --- drive: poll every agent until all are done ----------------------------------------------
part_state=0 # 0 before, 1 during, 2 after the partition
last_report=0
declare -a st rd ep acc
while :; do
	now=$(date +%s)
	el=$((now - train_t0))
	if [ "${#part_hosts[@]}" -gt 0 ]; then
		if [ "$part_state" -eq 0 ] && [ "$el" -ge "$part_start" ]; then
			for h in "${part_hosts[@]}"; do
				set_cable "$h" down
			done
			part_state=1
			log "t=${el}s partition: hosts ${part_hosts[*]} cut off"
		elif [ "$part_state" -eq 1 ] && [ "$el" -ge "$part_end" ]; then
			for h in "${part_hosts[@]}"; do
				set_cable "$h" up
			done
			part_state=2
			log "t=${el}s partition healed"
		fi
	fi
	ndone=0
	for ((i = 1; i <= n; i++)); do
		kill -0 "${pids[i - 1]}" 2>/dev/null || agent_failed "$i" "exited before the end of training"
		read -r a_st a_rd a_ep a_acc <<<"$(ctl_json "$i" status 2>/dev/null | status_fields)"
		st[i]=$a_st rd[i]=$a_rd ep[i]=$a_ep acc[i]=$a_acc
		case ${st[i]} in
		done) ndone=$((ndone + 1)) ;;
		error) agent_failed "$i" "state error" ;;
		esac
	done
	if [ "$ndone" -eq "$n" ]; then
		break
	fi
	if [ "$el" -ge "$timeout_s" ]; then
		log "timeout: $ndone of $n agents done after ${el}s"
		for ((i = 1; i <= n; i++)); do
			log "  agent$i state=${st[i]} round=${rd[i]} epoch=${ep[i]}"
		done
		exit 1
	fi
	if [ $((now - last_report)) -ge 10 ]; then
		line="t=${el}s"
		for ((i = 1; i <= n; i++)); do
			line="$line agent$i:${st[i]}/r${rd[i]}"
		done
		log "$line"
		last_report=$now
	fi
	sleep 1
done

# --- results ---------------------------------------------------------------------------------
wall=$(($(date +%s) - train_t0))
rc=0
[ -z "$results" ] || : >"$results"
for ((i = 1; i <= n; i++)); do
	printf 'agent%d state=%s round=%s epoch=%s test_accuracy=%s\n' "$i" "${st[i]}" "${rd[i]}" \
		"${ep[i]}" "${acc[i]}"
	if [ -n "$results" ]; then
		echo "agent$i ${st[i]} ${rd[i]} ${ep[i]} ${acc[i]}" >>"$results"
	fi
	if [ -n "$min_acc" ] && ! python3 -c 'import sys, math; a = float(sys.argv[1]); sys.exit(0 if not math.isnan(a) and a >= float(sys.argv[2]) else 1)' "${acc[i]}" "$min_acc"; then
		log "agent$i: test accuracy ${acc[i]} is below $min_acc"
		rc=1
	fi
done
echo "fleet: $n agents ($topology) trained in ${wall}s (set-up $((train_t0 - started))s)"
exit "$rc"
