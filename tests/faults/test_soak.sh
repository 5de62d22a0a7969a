#!/bin/bash
# test_soak.sh: many agents on a random 4-regular graph for many rounds.
# Long form (FAULTS_LONG=1): 16 agents, 500 rounds after a 50-round warm-up; short form (CI):
# 6 agents, 300 rounds. Expected, and measured:
#   - no deadlock: every agent passes the target round within the time bound and still trains;
#   - per agent, resident memory (VmRSS, /proc/PID/status) and open file descriptors
#     (/proc/PID/fd) after warm-up and at the end: no fd growth (at most +2 for a reconnect in
#     flight) and RSS growth at most 2 MiB (the ~260 MB an agent holds, mostly its copy of the
#     dataset, are all allocated during warm-up; a leak of 4 kB per round fails the long form);
#   - SIGTERM ends every agent with exit 0 and a checkpoint that loads.
. "$(dirname "$0")/faults_lib.sh"

N=6 R=300 WARM=50
if [ "$LONG" = 1 ]; then
	N=16 R=500
fi
FLEET="$WORK/fleet"
regular4_edges "$N" 4 "$WORK/edges"
gen_fleet "$FLEET" "$N" "$WORK/edges" --set rounds=1000000 --set checkpoint_every=50 \
	--set round_timeout_ms=2000 --set dead_peer_timeout_ms=5000 --set threads=1
for ((j = 0; j < N; j++)); do
	start_agent "$j" "$FLEET/agent$j/agentd.conf"
done
for ((j = 0; j < N; j++)); do
	wait_round "$j" "$WARM" 300 || fail "agent$j did not warm up (deadlock?)"
done
declare -A rss0 fd0
for ((j = 0; j < N; j++)); do
	rss0[$j]=$(rss_kb "$(pid_of "$j")")
	fd0[$j]=$(fd_count "$(pid_of "$j")")
done
r0=$(status_of 0 round)
t0=$(date +%s)
for ((j = 0; j < N; j++)); do
	wait_round "$j" $((r0 + R)) $((60 + R * N / 4)) ||
		fail "agent$j did not reach round $((r0 + R)) (at $(status_of "$j" round)): deadlock or stall"
done
t1=$(date +%s)
printf '%-8s %10s %10s %8s %8s %8s\n' agent rss0_kB rss1_kB growth fd0 fd1
worst_fd=0
for ((j = 0; j < N; j++)); do
	p=$(pid_of "$j")
	rss1=$(rss_kb "$p")
	fd1=$(fd_count "$p")
	printf '%-8s %10s %10s %7s%% %8s %8s\n' "agent$j" "${rss0[$j]}" "$rss1" \
		"$(awk -v a="${rss0[$j]}" -v b="$rss1" 'BEGIN { printf "%.1f", (b - a) * 100 / a }')" \
		"${fd0[$j]}" "$fd1"
	echo "RESULT soak agent$j rss_start_kB=${rss0[$j]} rss_end_kB=$rss1 fd_start=${fd0[$j]} fd_end=$fd1"
	[ "$fd1" -le $((fd0[$j] + 2)) ] || fail "agent$j file descriptors grew from ${fd0[$j]} to $fd1"
	[ "$rss1" -le $((rss0[$j] + 2048)) ] ||
		fail "agent$j resident memory grew from ${rss0[$j]} kB to $rss1 kB"
	[ $((fd1 - fd0[$j])) -gt "$worst_fd" ] && worst_fd=$((fd1 - fd0[$j]))
done
echo "ok: $N agents, $R rounds in $((t1 - t0)) s after warm-up: no deadlock, fd growth at most $worst_fd, RSS within bounds"
for ((j = 0; j < N; j++)); do
	kill -TERM "$(pid_of "$j")"
done
for ((j = 0; j < N; j++)); do
	wait_exit "$(pid_of "$j")" 30 || fail "agent$j did not stop on SIGTERM"
	[ "$EXIT_RC" = 0 ] || fail "agent$j exited with $EXIT_RC after SIGTERM"
done
nck=$(check_all_ckpts "$FLEET")
echo "ok: all agents stopped with exit 0; $nck checkpoint files load"
echo "PASS"
