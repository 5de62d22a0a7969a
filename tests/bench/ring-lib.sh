#!/bin/bash
# ring-lib.sh - helpers shared by bench_ring.sh and bench_scaling.sh (sourced, not run).
#
# A benchmark ring is N real macc-agentd processes on 127.0.0.1, each started with
# --exit-when-done, MACC_LOG_TIME=1 and log level debug, so every log line carries a wall-clock
# time stamp and the daemon logs "round K starts" for every round. The round time of a ring is
# measured from those lines: per agent, from the start of round WARMUP to the start of the last
# round it began, divided by the rounds in between; the ring's figure is its slowest agent's.
# That is steady-state time: it leaves out data loading, connection set-up (round 0 waits for
# the neighbours to come up) and the final evaluation and checkpoint. Everything else the daemon
# does per round (gradient, framing, signing, sending, waiting, verifying, the consensus step)
# is inside it.
#
# Processes: ring_start records the pid of every daemon it starts in RING_PIDS; ring_wait waits
# for them with a deadline and kills (by pid) those still running when it passes; ring_kill ends
# whichever are left. Callers put ring_kill in their EXIT trap. Nothing else is ever signalled.

RING_PIDS=()

# ring_port_free PORT: true when nothing listens on 127.0.0.1:PORT (or on any address).
ring_port_free() {
	[[ -z $(ss -Htln "sport = :$1" 2>/dev/null) ]]
}

# ring_pick_port N: print a base port B such that B .. B+N-1 look free; 1 when none is found.
ring_pick_port() {
	local n=$1 try base k ok
	for try in $(seq 1 40); do
		base=$((20000 + (RANDOM * 7 + try * 131) % 30000))
		ok=1
		for ((k = 0; k < n; k++)); do
			if ! ring_port_free $((base + k)); then
				ok=0
				break
			fi
		done
		if [[ $ok == 1 ]]; then
			echo "$base"
			return 0
		fi
	done
	return 1
}

# ring_start AGENTD LOGDIR CONF...: start one daemon per config, logs in LOGDIR/agentJ.log
# (J = 0.. in argument order). Appends the pids to RING_PIDS.
ring_start() {
	local agentd=$1 logdir=$2 j=0 conf
	shift 2
	for conf in "$@"; do
		MACC_LOG_TIME=1 "$agentd" -c "$conf" --exit-when-done --log-level debug \
			>"$logdir/agent$j.log" 2>&1 &
		RING_PIDS+=("$!")
		j=$((j + 1))
	done
}

# ring_cpu_ticks: the CPU clock ticks (user + system) that the daemons of RING_PIDS still running
# have used so far (/proc/PID/stat fields 14 and 15).
ring_cpu_ticks() {
	local p f s=0
	local -a v
	for p in "${RING_PIDS[@]}"; do
		if f=$(cat "/proc/$p/stat" 2>/dev/null); then
			read -r -a v <<<"${f##*) }"
			s=$((s + v[11] + v[12]))
		fi
	done
	echo "$s"
}

# ring_wait_round LOGDIR N K SECONDS: wait until each of LOGDIR/agent0..N-1.log says "round K
# starts"; 1 when a daemon of RING_PIDS exits first or SECONDS pass.
ring_wait_round() {
	local dir=$1 n=$2 k=$3 deadline=$((SECONDS + $4)) j p
	for ((j = 0; j < n; j++)); do
		until grep -q "debug: round $k starts\$" "$dir/agent$j.log" 2>/dev/null; do
			for p in "${RING_PIDS[@]}"; do
				kill -0 "$p" 2>/dev/null || return 1
			done
			((SECONDS < deadline)) || return 1
			sleep 0.05
		done
	done
}

# ring_steady_cpu LOGDIR N SECONDS: while a ring of N daemons (logs in LOGDIR) runs, the CPU its
# processes use per agent-round from round 5 to two rounds before the end, in milliseconds
# (data loading, set-up and the final evaluation left out, like ring_round_s); prints nothing
# when the run is too short or a daemon exits early. Call it right after ring_start.
ring_steady_cpu() {
	local dir=$1 n=$2 limit=$3 total="" k1=5 k2 c0 c1 deadline=$((SECONDS + $3))
	while [[ -z $total ]] && ((SECONDS < deadline)); do
		total=$(sed -n 's/.* rounds per epoch\( ([^)]*)\)\{0,1\}, \([0-9]*\) rounds$/\2/p' "$dir/agent0.log" 2>/dev/null |
			head -n 1)
		[[ -n $total ]] || sleep 0.1
	done
	if [[ -z $total ]] || ((total < k1 + 5)); then
		return 0
	fi
	k2=$((total - 2))
	ring_wait_round "$dir" "$n" "$k1" "$limit" || return 0
	c0=$(ring_cpu_ticks)
	ring_wait_round "$dir" "$n" "$k2" "$limit" || return 0
	c1=$(ring_cpu_ticks)
	awk -v a="$c0" -v b="$c1" -v t="$(getconf CLK_TCK)" -v r=$((k2 - k1)) -v n="$n" \
		'BEGIN { printf "%.2f\n", (b - a) / t * 1000 / r / n }'
}

# ring_wait SECONDS: wait until every daemon of RING_PIDS has exited, at most SECONDS. Returns 0
# when all exited with status 0, 1 otherwise (a failure, or the deadline: the rest are killed).
ring_wait() {
	local deadline=$((SECONDS + $1)) p status=0 rc
	for p in "${RING_PIDS[@]}"; do
		while kill -0 "$p" 2>/dev/null; do
			if ((SECONDS >= deadline)); then
				echo "ring: daemons still running after $1 s: stopping them" >&2
				ring_kill
				return 1
			fi
			sleep 0.2
		done
		rc=0
		wait "$p" || rc=$?
		if [[ $rc != 0 ]]; then
			echo "ring: daemon pid $p exited with status $rc" >&2
			status=1
		fi
	done
	RING_PIDS=()
	return "$status"
}

# ring_kill: end the daemons this script started and still runs (TERM, then KILL after 5 s).
ring_kill() {
	local p left=()
	for p in "${RING_PIDS[@]}"; do
		if kill -0 "$p" 2>/dev/null; then
			kill "$p" 2>/dev/null || true
			left+=("$p")
		fi
	done
	for p in "${left[@]}"; do
		for _ in $(seq 1 25); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.2
		done
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	RING_PIDS=()
}

# ring_round_s WARMUP LOG...: seconds per round of the ring (the slowest agent's steady-state
# figure, see the top of this file); prints nothing when a log has too few rounds.
ring_round_s() {
	local warm=$1
	shift
	awk -v warm="$warm" '
	function ts(s,   h) {
		split(s, h, ":")
		return h[1] * 3600 + h[2] * 60 + h[3]
	}
	FNR == 1 { nf++; have[nf] = 0; last = -1 }
	$2 == "debug:" && $3 == "round" && $5 == "starts" && $4 + 0 >= warm {
		t = ts($1)
		if (last >= 0 && t < last) {
			t += 86400 # past midnight
		}
		last = t
		if (!have[nf]) {
			k1[nf] = $4; t1[nf] = t; have[nf] = 1
		}
		k2[nf] = $4; t2[nf] = t
	}
	END {
		worst = -1
		for (i = 1; i <= nf; i++) {
			if (!have[i] || k2[i] <= k1[i]) {
				exit 1
			}
			r = (t2[i] - t1[i]) / (k2[i] - k1[i])
			if (r > worst) {
				worst = r
			}
		}
		if (nf > 0) {
			printf "%.6f\n", worst
		}
	}' "$@"
}

# ring_done_value KEY LOG: from the "training done" line, the number after KEY ("test accuracy").
ring_done_value() {
	local key=$1 log=$2
	sed -n "s/.*training done: .*${key} \([0-9.]*\).*/\1/p" "$log" | tail -n 1
}

# ring_digest LOG: the digest= of the "training done" line.
ring_digest() {
	sed -n 's/.*training done: .*digest=\([0-9a-f]*\).*/\1/p' "$1" | tail -n 1
}

# ring_epoch_rounds LOG: rounds per epoch the daemon computed for its shard.
ring_epoch_rounds() {
	sed -n 's/.* \([0-9]*\) rounds per epoch[ ,].*/\1/p' "$1" | head -n 1
}

# kv_value KEY LINE: the value of KEY=... in a line of key=value pairs ("" when absent).
kv_value() {
	local kv
	for kv in $2; do
		if [[ $kv == "$1="* ]]; then
			printf '%s\n' "${kv#*=}"
			return
		fi
	done
}

# cpu_mark VAR: set VAR to the user + system CPU seconds of this shell's children reaped so far
# (bash `times`, which must run in this shell, not in a $(...) subshell). The difference of two
# marks around a run is the CPU its processes used, whatever the wall time.
cpu_mark() {
	local f
	f=$(mktemp)
	times >"$f"
	printf -v "$1" '%s' "$(awk 'NR == 2 {
		s = 0
		for (i = 1; i <= 2; i++) {
			split($i, p, "m"); sub(/s$/, "", p[2]); s += p[1] * 60 + p[2]
		}
		printf "%.2f\n", s
	}' "$f")"
	rm -f "$f"
}
