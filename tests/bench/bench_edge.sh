#!/bin/bash
# bench_edge.sh - the edge-link benchmark: a 4-agent ring whose every link is a shaped
# point-to-point cable, macc-agentd against torch_dmsgd.py (PyTorch/gloo) on the same links.
#
# Network: four network namespaces (hosts h1..h4, made and deleted by this script); host i owns
# 10.88.0.i and is cabled to host i+1 (mod 4) by a veth pair, "right" on its side and "left" on
# the other. Every veth end's egress is shaped by tc tbf to RATE Mbit/s, so each direction of each
# ring link is one RATE link; neighbours are routed over their cable, the opposite host (which
# gloo's full mesh connects to, but the algorithms never send to) clockwise through a neighbour.
# Nothing is added to the machine's own namespace.
#
# Runs, at each rate of BENCH_RATES (Mbit/s, default "100 20"), for each mode of BENCH_MODES:
#   fp32           macc dmsgd, float32 states (x and v)
#   int8           macc dmsgd, compress = int8 (CHOCO-gossip, error feedback)
#   matching-int8  the same with schedule = matching (a random maximal matching each round)
#   best           macc's fastest mode to the target: int8 and local_steps = 4 (BENCH_BEST
#                  overrides the [train] settings, e.g. "compress=int8 local_steps=8")
#   torch          torch_dmsgd.py, one gloo rank per namespace (dmsgd, x and v as float32)
# All: mlp:784-256-128-10, Fashion-MNIST IID shard per agent, batch 64, lr 0.05, momentum 0.9,
# seed 1, one compute thread per agent, sealed sessions (macc's default), at most
# BENCH_EDGE_EPOCHS epochs (default 4). Every run stops once the target is reached.
#
# Measured per run:
#   round_ms   steady seconds per round: macc, the mean over agents of the time between
#              consecutive "round K starts" log lines (MACC_LOG_TIME=1), leaving out round 0, 1
#              and the rounds that held a test evaluation; torch, the growth of its own clock
#              (paused while it evaluates) between its progress lines, per round.
#   link_bytes bytes per round on the busiest directed link, from the veth transmit counters
#              (Ethernet frames: the STATE bodies plus TCP/IP and framing), over the rounds run.
#   limit_ms   link_bytes * 8 / RATE: the time the link needs for one round's bytes, so
#              round_ms / limit_ms is how close the round gets to the link (1 = the link never
#              idles). payload_ms is the same for the state alone (2 x 235146 float32 for fp32).
#   cpu_ms     CPU time per agent and round (all four processes, /proc/PID/stat, from round 2
#              or the first evaluation to the end), and sys_pct the share of it spent in the
#              kernel (TCP, veth, tc); cpu_floor_ms = cpu_ms x 4 / cores is the
#              shortest round this machine's cores allow when nothing else runs: when it is near
#              or above limit_ms, the round is CPU-bound, not link-bound.
#   ttt_s      time to target: seconds from the start of round 0 (the last agent's) until the
#              mean test accuracy of the four agents' own models first reaches BENCH_TARGET
#              (default 0.84), with every BENCH_EVAL_BATCHES (default 12) batches per agent an
#              evaluation of all four on the 10,000 test images. Evaluation time is taken out on
#              both sides: torch_dmsgd.py pauses its clock; for macc, the excess of each round
#              that held an evaluation over the agent's median round is subtracted.
# The last lines are machine-readable, for run-all.sh:
#   RESULT bench=edge rate=R mode=M round_ms=X limit_ms=X payload_ms=X ratio=X link_bytes=N
#          cpu_ms=X sys_pct=P cpu_floor_ms=X ttt_s=X ttt_round=K reached=yes|no final_acc=A rounds=N
#   RESULT bench=edge_vs rate=R mode=M ttt_s=X torch_ttt_s=X speedup=X
# Logs of every run in BENCH_OUT (default $MACC_BUILD/bench-results/edge).
#
# Needs root (network namespaces, tc); exit 77 when namespaces cannot be made or Fashion-MNIST
# is missing. Every wait is bounded (BENCH_TIMEOUT seconds per run, default 2400); on exit a
# trap stops the processes this script started (by pid) and deletes its namespaces.
# Environment: MACC_BUILD, MACC_SRC, BENCH_RATES, BENCH_MODES, BENCH_TARGET, BENCH_EDGE_EPOCHS,
# BENCH_EVAL_BATCHES, BENCH_BEST, BENCH_TIMEOUT, BENCH_OUT, BENCH_REFERENCE_DIR (where
# torch_dmsgd.py is; default $MACC_SRC/../shared/reference), BENCH_TCP_CC (the namespaces'
# default TCP congestion control, for macc and torch alike; unset: what a new namespace gets
# here, usually the host's default. A namespace may only default to one of the host's
# net.ipv4.tcp_allowed_congestion_control). It decides much of these figures; see "The
# edge-link benchmark" in tests/bench/README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MACC_SRC=${MACC_SRC:-$(cd "$here/../.." && pwd)}
MACC_BUILD=${MACC_BUILD:-$MACC_SRC/build}
export MACC_BUILD
# shellcheck source=tests/bench/ring-lib.sh
. "$here/ring-lib.sh"

agentd=$MACC_BUILD/src/agentd/macc-agentd
gen=$MACC_SRC/examples/ring-4/gen.sh
ref=${BENCH_REFERENCE_DIR:-$MACC_SRC/../shared/reference}/torch_dmsgd.py
python=/usr/bin/python3
rates=${BENCH_RATES:-"100 20"}
modes=${BENCH_MODES:-"fp32 int8 matching-int8 best torch"}
target=${BENCH_TARGET:-0.84}
max_epochs=${BENCH_EDGE_EPOCHS:-4}
eval_batches=${BENCH_EVAL_BATCHES:-12}
best_mode=${BENCH_BEST:-"compress=int8 local_steps=4"}
limit=${BENCH_TIMEOUT:-2400}
tcp_cc=${BENCH_TCP_CC-}
out=${BENCH_OUT:-$MACC_BUILD/bench-results/edge}
model=mlp:784-256-128-10
nparams=235146
data_dir=${MACC_DATA_DIR:+$MACC_DATA_DIR/fashion-mnist}
data_dir=${data_dir:-/usr/share/datasets/fashion-mnist}
tag=medge$$
port=7640
N=4

if [[ ! -x $agentd ]]; then
	echo "bench_edge: $agentd is not built (ninja -C $MACC_BUILD)"
	exit 1
fi
if [[ ! -f $data_dir/train-images-idx3-ubyte.gz ]]; then
	echo "bench_edge: no Fashion-MNIST in $data_dir; skipping"
	exit 77
fi
for m in $modes; do
	case $m in
	fp32 | int8 | matching-int8 | best | torch) ;;
	*)
		echo "bench_edge: unknown mode '$m' (fp32, int8, matching-int8, best, torch)"
		exit 2
		;;
	esac
done
if [[ " $modes " == *" torch "* && (! -x $python || ! -f $ref) ]]; then
	echo "bench_edge: PyTorch reference $ref (or $python) not found: torch runs skipped"
	modes=${modes//torch/}
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

# ---- the network ---------------------------------------------------------------------------
netns_made=()
cleanup() {
	ring_kill
	local ns
	for ns in ${netns_made[@]+"${netns_made[@]}"}; do
		ip netns delete "$ns" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

host() { echo "${tag}h$1"; }
right() { echo $(($1 % N + 1)); }
left() { echo $((($1 + N - 2) % N + 1)); }

net_up() {
	local i
	if ! ip netns add "$(host 1)" 2>"$out/netns.err"; then
		echo "bench_edge: cannot create network namespaces here: $(cat "$out/netns.err")"
		exit 77
	fi
	netns_made+=("$(host 1)")
	for ((i = 2; i <= N; i++)); do
		ip netns add "$(host "$i")"
		netns_made+=("$(host "$i")")
	done
	for ((i = 1; i <= N; i++)); do
		ip link add name right netns "$(host "$i")" type veth peer name left \
			netns "$(host "$(right "$i")")"
	done
	for ((i = 1; i <= N; i++)); do
		ip -n "$(host "$i")" link set lo up
		ip -n "$(host "$i")" link set dev right up
		ip -n "$(host "$i")" link set dev left up
		ip -n "$(host "$i")" addr add "10.88.0.$i/32" dev right
		ip netns exec "$(host "$i")" sysctl -qw net.ipv4.ip_forward=1 \
			net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
			net.ipv4.conf.right.rp_filter=0 net.ipv4.conf.left.rp_filter=0
		if [[ -n $tcp_cc ]]; then
			ip netns exec "$(host "$i")" sysctl -qw net.ipv4.tcp_congestion_control="$tcp_cc"
		fi
	done
	for ((i = 1; i <= N; i++)); do
		ip -n "$(host "$i")" route add "10.88.0.$(right "$i")/32" dev right
		ip -n "$(host "$i")" route add "10.88.0.$(left "$i")/32" dev left
		ip -n "$(host "$i")" route add 10.88.0.0/24 via "10.88.0.$(right "$i")" dev right onlink
	done
}

# shape RATE: every veth end sends at most RATE Mbit/s (tbf; the bucket holds 2 ms of traffic
# or 64 KB, and up to 200 ms may queue).
shape() {
	local rate=$1 i dev burst
	burst=$((rate * 1000000 / 8 / 500))
	((burst >= 65536)) || burst=65536
	for ((i = 1; i <= N; i++)); do
		for dev in right left; do
			tc -n "$(host "$i")" qdisc replace dev "$dev" root tbf rate "${rate}mbit" \
				burst "$burst" latency 200ms
		done
	done
}

# tx_all: the bytes transmitted by every veth end, one per line (host 1 right, host 1 left, ...).
tx_all() {
	local i dev
	for ((i = 1; i <= N; i++)); do
		for dev in right left; do
			ip -n "$(host "$i")" -s link show dev "$dev" |
				awk '/TX:/ { getline; print $1; exit }'
		done
	done
}
# busiest_link BEFORE AFTER: the largest difference between two tx_all outputs.
busiest_link() {
	paste <(echo "$1") <(echo "$2") | awk '{ d = $2 - $1; if (d > m) m = d } END { print m + 0 }'
}

# link_check RATE: a 9 MB transfer from h1 to h2; h2 times the last 8 MB (from the moment the
# first 1 MB has arrived, when the queue is full), so what it prints is the TCP payload rate
# the shaped link sustains (at most 1448/1514 of RATE: headers).
link_check() {
	local rate=$1 pid mbit
	ip netns exec "$(host 2)" timeout 60 "$python" -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.88.0.2", 7999)); s.listen(1); c, _ = s.accept()
got, t1 = 0, None
while True:
    b = c.recv(1 << 20)
    if not b: break
    got += len(b)
    if t1 is None and got >= 1 << 20: t1, g1 = time.perf_counter(), got
t2 = time.perf_counter()
print("%.1f" % ((got - g1) * 8 / (t2 - t1) / 1e6) if t1 and t2 > t1 else "?")
' >"$out/linkcheck.txt" 2>&1 &
	pid=$!
	sleep 0.5
	ip netns exec "$(host 1)" timeout 60 "$python" -c '
import socket, time
for _ in range(50):
    try:
        s = socket.create_connection(("10.88.0.2", 7999)); break
    except OSError: time.sleep(0.1)
buf = b"x" * (1 << 20)
for _ in range(9): s.sendall(buf)
s.close()
' || true
	wait "$pid" 2>/dev/null || true
	mbit=$(head -n 1 "$out/linkcheck.txt")
	echo "link check at $rate Mbit/s: TCP payload through h1 -> h2 ran at ${mbit:-?} Mbit/s"
}

# cpu_ticks: "USER SYSTEM" clock ticks used so far by the processes of RING_PIDS still running
# (/proc/PID/stat fields 14 and 15).
cpu_ticks() {
	local p f u=0 s=0
	local -a v
	for p in "${RING_PIDS[@]}"; do
		if f=$(cat "/proc/$p/stat" 2>/dev/null); then
			read -r -a v <<<"${f##*) }"
			u=$((u + v[11]))
			s=$((s + v[12]))
		fi
	done
	echo "$u $s"
}

# ring_poll ROUND_FN: false once no process of RING_PIDS runs. While every one runs and the
# CPU window is open (c0 set), moves the window's end: c1 (cpu_ticks) and r1 (the round ROUND_FN
# prints), since an exited process's ticks are gone from /proc. c0, c1, r1 and d are the
# caller's (run_macc, run_torch).
ring_poll() {
	local p alive=0 all=1
	for p in "${RING_PIDS[@]}"; do
		if kill -0 "$p" 2>/dev/null; then alive=1; else all=0; fi
	done
	if [[ -n $c0 && $all == 1 ]]; then
		c1=$(cpu_ticks)
		r1=$("$1")
	fi
	[[ $alive == 1 ]]
}
# The round reached so far: macc's (the agents' logs), torch's (rank 0's progress lines).
macc_round() { max_round "$d"/agent{0,1,2,3}.log; }
torch_round() { torch_progress "$d/rank0.log" | tail -n 1 | awk '{ print $2 }'; }

# cpu_per_agent_round TICKS0 TICKS1 ROUND0 ROUND1: "MS SYS%" - CPU milliseconds per agent and
# round between two cpu_ticks marks, and the kernel's share of it; "- -" without a window.
cpu_per_agent_round() {
	awk -v a="$1" -v b="$2" -v r0="$3" -v r1="$4" -v t="$(getconf CLK_TCK)" -v n="$N" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		if (a == "" || r1 + 0 <= r0 + 0) { print "- -"; exit }
		tot = (y[1] + y[2]) - (x[1] + x[2])
		printf "%.1f %.0f\n", tot / t * 1000 / (r1 - r0) / n, (tot > 0 ? (y[2] - x[2]) * 100 / tot : 0) }'
}

# ---- macc ----------------------------------------------------------------------------------
# macc_analyse LOG...: one line "ROUND_MS TTT_S TTT_ROUND REACHED FINAL_ACC ROUNDS" from the
# four agents' logs (see the top of this file for the definitions).
macc_analyse() {
	awk -v target="$target" '
	function ts(s,   h) { split(s, h, ":"); return h[1] * 3600 + h[2] * 60 + h[3] }
	# median of v[1..n] (insertion sort: mawk has no asort)
	function median(v, n,   i, j, x) {
		for (i = 2; i <= n; i++) {
			x = v[i]
			for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]
			v[j + 1] = x
		}
		return n ? v[int((n + 1) / 2)] : 0
	}
	FNR == 1 { a++; last = -1 }
	{ t = ts($1); if (last >= 0 && t < last) t += 86400; last = t }
	$2 == "debug:" && $3 == "round" && $5 == "starts" { st[a, $4 + 0] = t; if ($4 + 0 > kmax[a]) kmax[a] = $4 + 0 }
	$2 == "info:" && $3 == "eval" && $4 == "at" {
		k = $6 + 0; acc[a, k] = $(NF - 2) + 0; isev[k] = 1; nev[k]++
		if (k > evmax) evmax = k
	}
	END {
		na = a
		t0 = -1
		for (a = 1; a <= na; a++) if (st[a, 0] > t0) t0 = st[a, 0]
		# per agent: median of the rounds without evaluation (from round 2 on)
		sum = 0; cnt = 0
		for (a = 1; a <= na; a++) {
			n = 0
			for (k = 2; k < kmax[a]; k++) {
				if ((a SUBSEP k) in st && (a SUBSEP (k + 1)) in st && !isev[k + 1]) {
					d[++n] = st[a, k + 1] - st[a, k]; sum += d[n]; cnt++
				}
			}
			med[a] = median(d, n)
			split("", d)
		}
		round_ms = cnt ? sum / cnt * 1000 : 0
		rounds = kmax[1]; for (a = 2; a <= na; a++) if (kmax[a] < rounds) rounds = kmax[a]
		ttt = -1; tround = -1; final = ""
		for (a = 1; a <= na; a++) excess[a] = 0
		for (k = 1; k <= evmax; k++) {
			if (!isev[k] || nev[k] < na) continue
			worst = 0; s = 0
			for (a = 1; a <= na; a++) {
				if ((a SUBSEP (k - 1)) in st && (a SUBSEP k) in st) {
					x = st[a, k] - st[a, k - 1] - med[a]; if (x > 0) excess[a] += x
				}
				tt = st[a, k] - t0 - excess[a]
				if (tt > worst) worst = tt
				s += acc[a, k]
			}
			mean = s / na; final = mean
			if (ttt < 0 && mean >= target) { ttt = worst; tround = k }
		}
		printf "%.1f %s %s %s %s %d\n", round_ms, (ttt < 0 ? "-" : sprintf("%.1f", ttt)),
			(tround < 0 ? "-" : tround), (ttt < 0 ? "no" : "yes"),
			(final == "" ? "-" : sprintf("%.4f", final)), rounds
	}' "$@"
}

# reached_macc DIR: true once the four agents' evaluations at one round average >= target.
reached_macc() {
	awk -v target="$target" '
	FNR == 1 { a++ }
	$2 == "info:" && $3 == "eval" && $4 == "at" { k = $6 + 0; s[k] += $(NF - 2); n[k]++ }
	END { for (k in n) if (n[k] == a && s[k] / a >= target) exit 0; exit 1 }' \
		"$1"/agent{0,1,2,3}.log 2>/dev/null
}
# max_round LOG...: the highest round any of the logs started (nothing while none exists yet).
max_round() {
	cat "$@" 2>/dev/null | sed -n 's/.* debug: round \([0-9]*\) starts$/\1/p' | sort -n |
		tail -n 1 || true
}

# run_macc RATE MODE KEY=VALUE...: one ring; sets R_* for the report.
run_macc() {
	local rate=$1 mode=$2 d=$out/$1/$2 i j kv sets=() h=1 ev tx0 tx1 deadline rounds
	shift 2
	for kv in "$@"; do
		sets+=(--set "$kv")
		[[ $kv != local_steps=* ]] || h=${kv#local_steps=}
	done
	ev=$((eval_batches / h))
	((ev >= 1)) || ev=1
	rm -rf "$d"
	mkdir -p "$d"
	"$gen" -o "$d/ring" -p "$port" --set model="$model" --set epochs="$max_epochs" \
		--set batch=64 --set lr=0.05 --set momentum=0.9 --set algorithm=dmsgd --set seed=1 \
		--set threads=1 --set checkpoint_every=0 --set eval_every="$ev" \
		--set round_timeout_ms=600000 --set dead_peer_timeout_ms=1200000 \
		${sets[@]+"${sets[@]}"} >/dev/null
	for j in 0 1 2 3; do
		for ((i = 0; i < N; i++)); do
			sed -i "s/127\.0\.0\.1:$((port + i))\$/10.88.0.$((i + 1)):$((port + i))/" \
				"$d/ring/agent$j/agentd.conf"
		done
	done
	tx0=$(tx_all)
	for j in 0 1 2 3; do
		ip netns exec "$(host $((j + 1)))" env MACC_LOG_TIME=1 "$agentd" \
			-c "$d/ring/agent$j/agentd.conf" --exit-when-done --log-level debug \
			>"$d/agent$j.log" 2>&1 &
		RING_PIDS+=("$!")
	done
	deadline=$((SECONDS + limit))
	R_stop="end of run"
	c0="" r0="" c1="" r1=""
	while :; do
		if [[ -z $c0 ]]; then
			r0=$(max_round "$d"/agent{0,1,2,3}.log)
			if ((${r0:-0} >= 2)); then
				c0=$(cpu_ticks)
			fi
		fi
		if reached_macc "$d"; then
			R_stop="target reached"
			break
		fi
		ring_poll macc_round || break
		if ((SECONDS >= deadline)); then
			R_stop="time limit ($limit s)"
			break
		fi
		sleep 0.5
	done
	tx1=$(tx_all)
	rounds=$(max_round "$d"/agent{0,1,2,3}.log)
	read -r R_cpu_ms R_sys <<<"$(cpu_per_agent_round "$c0" "$c1" "$r0" "$r1")"
	ring_kill
	read -r R_round_ms R_ttt R_tround R_reached R_final R_rounds \
		<<<"$(macc_analyse "$d"/agent{0,1,2,3}.log)"
	R_link_bytes=$(awk -v b="$(busiest_link "$tx0" "$tx1")" -v r="${rounds:-0}" \
		'BEGIN { printf "%.0f", (r > 0 ? b / r : 0) }')
	grep -h "BLAS kernel\|error:" "$d/agent0.log" | head -n 3 >"$d/notes" || true
}

# ---- torch ---------------------------------------------------------------------------------
# torch_progress LOG: "T_S ROUND ACC" per progress line of rank 0 (nothing while LOG is missing).
torch_progress() {
	sed -n 's/^progress t_s=\([0-9.]*\) round=\([0-9]*\) epoch=[0-9.]* test_acc_mean=\([0-9.]*\).*/\1 \2 \3/p' \
		"$1" 2>/dev/null || true
}

run_torch() {
	local rate=$1 d=$out/$1/torch j tx0 tx1 deadline rounds first last
	rm -rf "$d"
	mkdir -p "$d"
	tx0=$(tx_all)
	for j in 0 1 2 3; do
		ip netns exec "$(host $((j + 1)))" env GLOO_SOCKET_IFNAME=right OMP_NUM_THREADS=1 \
			"$python" "$ref" --agents 4 --rank "$j" --master-addr 10.88.0.1 \
			--port 29517 --algorithm dmsgd --model "$model" --epochs "$max_epochs" \
			--batch 64 --lr 0.05 --momentum 0.9 --threads 1 --seed 1 \
			--eval-every "$eval_batches" >"$d/rank$j.log" 2>&1 &
		RING_PIDS+=("$!")
	done
	deadline=$((SECONDS + limit))
	R_stop="end of run"
	c0="" r0="" c1="" r1=""
	while :; do
		if [[ -z $c0 ]] && [[ -n $(torch_progress "$d/rank0.log") ]]; then
			c0=$(cpu_ticks)
			r0=$(torch_progress "$d/rank0.log" | tail -n 1 | awk '{ print $2 }')
		fi
		if torch_progress "$d/rank0.log" | awk -v t="$target" '$3 >= t { f = 1 } END { exit !f }'; then
			R_stop="target reached"
			break
		fi
		ring_poll torch_round || break
		if ((SECONDS >= deadline)); then
			R_stop="time limit ($limit s)"
			break
		fi
		sleep 0.5
	done
	tx1=$(tx_all)
	ring_kill
	torch_progress "$d/rank0.log" >"$d/progress"
	rounds=$(tail -n 1 "$d/progress" | awk '{ print $2 }')
	read -r R_cpu_ms R_sys <<<"$(cpu_per_agent_round "$c0" "$c1" "$r0" "$r1")"
	first=$(head -n 1 "$d/progress")
	last=$(tail -n 1 "$d/progress")
	R_round_ms=$(awk -v a="$first" -v b="$last" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		if (y[2] > x[2]) printf "%.1f", (y[1] - x[1]) / (y[2] - x[2]) * 1000
		else if (y[2] > 0) printf "%.1f", y[1] / y[2] * 1000
		else printf "0" }')
	read -r R_ttt R_tround <<<"$(awk -v t="$target" '$3 >= t { print $1, $2; f = 1; exit }
		END { if (!f) print "- -" }' "$d/progress")"
	R_reached=$([[ $R_ttt != - ]] && echo yes || echo no)
	R_final=$(awk '{ a = $3 } END { print (a == "" ? "-" : a) }' "$d/progress")
	R_rounds=${rounds:-0}
	# The counters ran a little past the last progress line: at most the rounds of one poll.
	R_link_bytes=$(awk -v b="$(busiest_link "$tx0" "$tx1")" -v r="${rounds:-0}" \
		'BEGIN { printf "%.0f", (r > 0 ? b / r : 0) }')
}

# ---- the runs ------------------------------------------------------------------------------
echo "edge-link benchmark: 4-agent ring, $model, dmsgd, batch 64, lr 0.05, momentum 0.9, seed 1;" \
	"rates: $rates Mbit/s; modes: $modes; target mean test accuracy $target (at most" \
	"$max_epochs epochs); best = $best_mode; logs in $out"
net_up
echo "TCP congestion control in the namespaces: $(ip netns exec "$(host 1)" \
	cat /proc/sys/net/ipv4/tcp_congestion_control)${tcp_cc:+ (BENCH_TCP_CC)}"
results=()
declare -A ttt
printf '%-5s %-14s %9s %9s %10s %7s %11s %11s %8s %9s %7s  %s\n' Mbit mode round_ms limit_ms \
	payload_ms ratio link_bytes cpu_ms/sys ttt_s ttt_round final stop
for rate in $rates; do
	shape "$rate"
	link_check "$rate"
	for mode in $modes; do
		case $mode in
		fp32) run_macc "$rate" "$mode" compress=none ;;
		int8) run_macc "$rate" "$mode" compress=int8 ;;
		matching-int8) run_macc "$rate" "$mode" compress=int8 schedule=matching topology=ring ;;
		best)
			# shellcheck disable=SC2086 # a list of KEY=VALUE words
			run_macc "$rate" "$mode" $best_mode
			;;
		torch) run_torch "$rate" ;;
		esac
		# payload: the state of one round on one link (fp32 and torch: x and v as float32;
		# compressed modes: measured bytes are all there is to compare).
		payload_ms=$(awk -v n="$nparams" -v r="$rate" -v m="$mode" 'BEGIN {
			if (m == "fp32" || m == "torch") printf "%.1f", 2 * n * 4 * 8 / (r * 1e6) * 1000
			else printf "-" }')
		limit_ms=$(awk -v b="$R_link_bytes" -v r="$rate" 'BEGIN { printf "%.1f", b * 8 / (r * 1e6) * 1000 }')
		ratio=$(awk -v a="$R_round_ms" -v b="$limit_ms" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
		ttt[$rate/$mode]=$R_ttt
		cpu_floor=$(awk -v c="$R_cpu_ms" -v n="$N" -v k="$(nproc)" 'BEGIN {
			if (c == "-") print "-"; else printf "%.1f", c * n / (k < n ? k : n) }')
		printf '%-5s %-14s %9s %9s %10s %7s %11s %11s %8s %9s %7s  %s\n' "$rate" "$mode" \
			"$R_round_ms" "$limit_ms" "$payload_ms" "${ratio}x" "$R_link_bytes" \
			"$R_cpu_ms/$R_sys%" \
			"$R_ttt" "$R_tround" "$R_final" "$R_stop ($R_rounds rounds)"
		results+=("RESULT bench=edge rate=$rate mode=$mode round_ms=$R_round_ms limit_ms=$limit_ms payload_ms=$payload_ms ratio=$ratio link_bytes=$R_link_bytes cpu_ms=$R_cpu_ms sys_pct=$R_sys cpu_floor_ms=$cpu_floor ttt_s=$R_ttt ttt_round=$R_tround reached=$R_reached final_acc=$R_final rounds=$R_rounds")
	done
done
for rate in $rates; do
	t=${ttt[$rate/torch]:--}
	for mode in $modes; do
		[[ $mode != torch ]] || continue
		m=${ttt[$rate/$mode]:--}
		results+=("RESULT bench=edge_vs rate=$rate mode=$mode ttt_s=$m torch_ttt_s=$t speedup=$(awk -v a="$m" -v b="$t" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", b / a; else printf "-" }')")
	done
done
printf '%s\n' "${results[@]}"
