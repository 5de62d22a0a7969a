#!/bin/bash
# test_power_cut.sh: kill -9 an agent while it writes checkpoints, again and again, and restart it.
# The model is large (mlp:784-512-512-10, ~5.4 MB per checkpoint) and checkpoint_every = 1, so
# the worker spends much of each round writing, fsyncing and renaming. Short form: 8 cuts; long
# form: 30. Expected, and measured after every cut:
#   - the checkpoint files present load (ckpt_check), whatever moment the cut hit;
#   - the restarted agent resumes from a valid checkpoint ("resumed from ... at round R") and R
#     never goes backwards from one restart to the next.
# The number of cuts that landed while a temporary checkpoint file existed is reported.
. "$(dirname "$0")/faults_lib.sh"

CUTS=8
[ "$LONG" = 1 ] && CUTS=30
RANDOM=5
FLEET="$WORK/fleet"
printf '0 1\n' >"$WORK/edges"
gen_fleet "$FLEET" 2 "$WORK/edges" --set model=mlp:784-512-512-10 --set rounds=1000000 \
	--set checkpoint_every=1 --set round_timeout_ms=1000 --set dead_peer_timeout_ms=2500
start_agent 1 "$FLEET/agent1/agentd.conf"
start_agent 0 "$FLEET/agent0/agentd.conf"
st="$FLEET/agent0/state"
last=0 mid=0
for ((k = 1; k <= CUTS; k++)); do
	wait_log "$WORK/agent0.log" "training from round" 60 || fail "agent0 did not start (cut $k)"
	# Let it write a few checkpoints, then cut at a random moment.
	wait_round 0 $((last + 3)) 60 || fail "agent0 made no progress after restart $k"
	sleep "0.$((RANDOM % 10))$((RANDOM % 10))"
	kill -9 "$(pid_of 0)"
	wait_gone "$(pid_of 0)" 5 || fail "agent0 survived kill -9"
	[ -e "$st/checkpoint.tmp" ] && mid=$((mid + 1))
	for f in "$st/checkpoint.bin" "$st/checkpoint.prev"; do
		[ -e "$f" ] || continue
		"$CKPT_CHECK" "$f" >/dev/null || fail "cut $k left an unloadable $f: $("$CKPT_CHECK" "$f" 2>&1)"
	done
	: >"$WORK/agent0.log"
	start_agent 0 "$FLEET/agent0/agentd.conf"
	wait_log "$WORK/agent0.log" "resumed from .* at round [0-9]+" 60 ||
		fail "agent0 did not resume from a checkpoint after cut $k: $(head -5 "$WORK/agent0.log")"
	r=$(sed -n 's/.*resumed from .* at round \([0-9]*\).*/\1/p' "$WORK/agent0.log" | head -n 1)
	[ "$r" -ge "$last" ] || fail "cut $k: resumed at round $r, before the previous resume at $last"
	echo "cut $k: resumed at round $r"
	last=$r
done
echo "ok: $CUTS power cuts, $mid of them while a checkpoint was being written; every restart resumed from a valid checkpoint (last at round $last)"
echo "RESULT power_cut cuts=$CUTS mid_write=$mid last_resume_round=$last"
echo "PASS"
