#!/bin/bash
# bench_scaling.sh - the scaling benchmark: round time against the number of agents and against
# the model size, on one machine, as a CSV and a gnuplot PNG.
#
# Two sweeps, each point measured with macc-sim (all agents in one process, no network) and, for
# a few points, with a ring of real macc-agentd processes on 127.0.0.1 (deploy/netns/gen-fleet.sh
# makes the keys and configs):
#   agents  N = BENCH_AGENTS (default 2 4 6 8 12 16) agents on a ring, model BENCH_MODEL
#           (mlp:784-256-128-10); daemon rings for N = BENCH_DAEMON_AGENTS (default 2 4 8).
#   params  4 agents on a ring (BENCH_SIZE_AGENTS), models mlp:784-H-10 with H chosen so the
#           parameter count 795*H + 10 is nearest each of BENCH_SIZES (default 1e4 1e5 1e6
#           1e7); a daemon ring at every size unless BENCH_SIZE_DAEMON=0.
# Every point runs dmsgd, batch 64, lr 0.05, momentum 0.9, seed 1, for a fixed number of rounds
# (BENCH_ROUNDS, default chosen per point so that each takes a few seconds).
#
# What one machine allows: all agents share its cores. macc-sim spreads its agents over
# BENCH_SIM_THREADS threads (default: the cores, at most 4), so its round time grows about
# linearly with N / cores: that is the compute part. Each daemon is a process with one compute
# thread, so a ring of N daemons on C cores runs N / C processes per core and its round time adds
# scheduling, the network path and waiting for the slowest neighbour. On a 2-core machine rings
# beyond 8 daemons measure mostly the scheduler, hence the default list; each daemon also holds
# the whole Fashion-MNIST training set in memory (about 190 MB).
#
# Round time: macc-sim's train_s over its rounds (no data loading, no evaluation); for a daemon
# ring, the slowest agent's steady-state seconds per round from its time-stamped debug log (from
# the start of round 1 to the start of its last round; see ring-lib.sh).
#
# Output in BENCH_OUT (default $MACC_BUILD/bench-results/scaling): scaling.csv with the columns
#   sweep,impl,agents,params,model,batch,rounds,round_ms,procs_per_core
# and scaling.png (when gnuplot is installed), plus every run's log. The last line is
#   RESULT bench=scaling csv=PATH png=PATH|none points=K
# Environment: MACC_BUILD, MACC_SRC, the BENCH_* above, BENCH_TIMEOUT (seconds per run, default
# 1800). Exit status: 0 ran, 1 a run failed, 77 skipped (no data).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MACC_SRC=${MACC_SRC:-$(cd "$here/../.." && pwd)}
MACC_BUILD=${MACC_BUILD:-$MACC_SRC/build}
# shellcheck source=tests/bench/ring-lib.sh
. "$here/ring-lib.sh"

agentd=$MACC_BUILD/src/agentd/macc-agentd
sim=$MACC_BUILD/src/sim/macc-sim
ctl=$MACC_BUILD/src/ctl/macc-ctl
gen=$MACC_SRC/deploy/netns/gen-fleet.sh
model=${BENCH_MODEL:-mlp:784-256-128-10}
agents_list=${BENCH_AGENTS:-"2 4 6 8 12 16"}
daemon_agents=${BENCH_DAEMON_AGENTS:-"2 4 8"}
sizes=${BENCH_SIZES:-"10000 100000 1000000 10000000"}
size_agents=${BENCH_SIZE_AGENTS:-4}
size_daemon=${BENCH_SIZE_DAEMON:-1}
cores=$(nproc)
sim_threads=${BENCH_SIM_THREADS:-$((cores < 4 ? cores : 4))}
limit=${BENCH_TIMEOUT:-1800}
out=${BENCH_OUT:-$MACC_BUILD/bench-results/scaling}
data_dir=${MACC_DATA_DIR:+$MACC_DATA_DIR/fashion-mnist}
data_dir=${data_dir:-/usr/share/datasets/fashion-mnist}
train=(--batch 64 --lr 0.05 --momentum 0.9 --seed 1 --algorithm dmsgd)

for f in "$sim" "$agentd" "$ctl"; do
	if [[ ! -x $f ]]; then
		echo "bench_scaling: $f is not built (ninja -C $MACC_BUILD)"
		exit 1
	fi
done
if [[ ! -f $data_dir/train-images-idx3-ubyte.gz ]]; then
	echo "bench_scaling: no Fashion-MNIST in $data_dir; skipping"
	exit 77
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
csv=$out/scaling.csv
trap ring_kill EXIT
trap 'exit 130' INT TERM

# params_of H: parameters of mlp:784-H-10.
params_of() {
	echo $((795 * $1 + 10))
}

# spec_params SPEC: parameters of an mlp:A-B-...-Z spec (weights and biases); a guess of 235146
# for other models (only used to choose the number of rounds: the CSV has the real count).
spec_params() {
	awk -v s="$1" 'BEGIN {
		if (s !~ /^mlp:[0-9]+(-[0-9]+)+/) { print 235146; exit }
		sub(/^mlp:/, "", s); sub(/:.*/, "", s)
		n = split(s, w, "-"); p = 0
		for (i = 2; i <= n; i++) p += w[i - 1] * w[i] + w[i]
		print p
	}'
}

# width_for P: the hidden width H whose mlp:784-H-10 has the parameter count nearest P.
width_for() {
	awk -v p="$1" 'BEGIN { h = int((p - 10) / 795 + 0.5); print (h < 1 ? 1 : h) }'
}

# rounds_for PARAMS AGENTS: rounds for one point, about a few seconds of work on a small machine.
rounds_for() {
	if [[ -n ${BENCH_ROUNDS:-} ]]; then
		echo "$BENCH_ROUNDS"
		return
	fi
	awk -v p="$1" -v n="$2" 'BEGIN {
		r = int(4e8 / (p * n)); if (r > 1000) r = 1000; if (r < 10) r = 10; print r
	}'
}

# sim_point SWEEP AGENTS MODEL ROUNDS: one macc-sim run, appended to the CSV.
sim_point() {
	local sweep=$1 n=$2 m=$3 r=$4 tag line train_s p
	tag=$sweep-sim-$n-${m//[:]/_}
	if ! line=$(timeout -k 10 "$limit" "$sim" --agents "$n" --topology ring --model "$m" \
		--data fashion-mnist "${train[@]}" --rounds "$r" --threads "$sim_threads" \
		2>"$out/$tag.err" | tee "$out/$tag.log" | tail -n 1); then
		echo "bench_scaling: macc-sim failed for $n agents, $m (see $out/$tag.err)"
		return 1
	fi
	train_s=$(kv_value train_s "$line")
	p=$(sed -n 's/.*model [^ ]* (\([0-9]*\) parameters).*/\1/p' "$out/$tag.err" | head -n 1)
	awk -v s="$sweep" -v n="$n" -v p="$p" -v m="$m" -v r="$r" -v t="$train_s" \
		-v c="$(awk -v n="$n" -v c="$cores" 'BEGIN { printf "%.2f", n / c }')" 'BEGIN {
		printf "%s,macc-sim,%d,%d,%s,64,%d,%.3f,%s\n", s, n, p, m, r, t / r * 1000, c
	}' >>"$csv"
}

# daemon_point SWEEP AGENTS MODEL ROUNDS: one ring of real daemons, appended to the CSV.
daemon_point() {
	local sweep=$1 n=$2 m=$3 r=$4 tag dir base round_s confs=() logs=() i p
	tag=$sweep-daemon-$n-${m//[:]/_}
	dir=$out/$tag
	rm -rf "$dir"
	mkdir -p "$dir"
	if ! base=$(ring_pick_port "$n"); then
		echo "bench_scaling: no $n free consecutive ports on 127.0.0.1"
		return 1
	fi
	if ! "$gen" -n "$n" -t ring --port "$base" --port-step 1 --listen-host 127.0.0.1 \
		--ctl "$ctl" --set model="$m" --set rounds="$r" --set batch=64 --set lr=0.05 \
		--set momentum=0.9 --set seed=1 --set algorithm=dmsgd --set threads=1 \
		--set checkpoint_every=0 --set eval_every=4000000000 \
		--set round_timeout_ms=600000 --set dead_peer_timeout_ms=1200000 \
		"$dir/conf" >"$dir/gen.log" 2>&1; then
		echo "bench_scaling: gen-fleet.sh failed (see $dir/gen.log)"
		return 1
	fi
	for ((i = 1; i <= n; i++)); do
		confs+=("$dir/conf/agent$i/agentd.conf")
		logs+=("$dir/agent$((i - 1)).log")
	done
	ring_start "$agentd" "$dir" "${confs[@]}"
	if ! ring_wait "$limit"; then
		echo "bench_scaling: ring of $n daemons failed for $m (logs in $dir)"
		return 1
	fi
	if ! round_s=$(ring_round_s 1 "${logs[@]}") || [[ -z $round_s ]]; then
		echo "bench_scaling: no round timings in $dir (too few rounds?)"
		return 1
	fi
	p=$(sed -n 's/.*model [^ ]*: \([0-9]*\) parameters;.*/\1/p' "$dir/agent0.log" | head -n 1)
	awk -v s="$sweep" -v n="$n" -v p="$p" -v m="$m" -v r="$r" -v t="$round_s" \
		-v c="$cores" 'BEGIN {
		printf "%s,macc-agentd,%d,%d,%s,64,%d,%.3f,%.2f\n", s, n, p, m, r, t * 1000, n / c
	}' >>"$csv"
	rm -rf "$dir/conf" # keys and state; the logs stay
}

echo "sweep,impl,agents,params,model,batch,rounds,round_ms,procs_per_core" >"$csv"
echo "scaling on $cores cores (macc-sim with $sim_threads threads); results in $out"
status=0
mp=$(spec_params "$model")
for n in $agents_list; do
	sim_point agents "$n" "$model" "$(rounds_for "$mp" "$n")" || status=1
done
for n in $daemon_agents; do
	daemon_point agents "$n" "$model" "$(rounds_for "$mp" "$n")" || status=1
done
for p in $sizes; do
	w=$(width_for "$p")
	m=mlp:784-$w-10
	pp=$(params_of "$w")
	r=$(rounds_for "$pp" "$size_agents")
	sim_point params "$size_agents" "$m" "$r" || status=1
	if [[ $size_daemon == 1 ]]; then
		daemon_point params "$size_agents" "$m" "$r" || status=1
	fi
done

column -s, -t <"$csv" 2>/dev/null || cat "$csv"

png=none
if command -v gnuplot >/dev/null; then
	for s in agents params; do
		for impl in macc-sim macc-agentd; do
			awk -F, -v s="$s" -v i="$impl" '$1 == s && $2 == i {
				print (s == "agents" ? $3 : $4), $8
			}' "$csv" | sort -n >"$out/$s-$impl.dat"
		done
	done
	if gnuplot <<EOF 2>"$out/gnuplot.err"; then
set terminal pngcairo size 1200,500 font ",10"
set output "$out/scaling.png"
set multiplot layout 1,2 title "macc round time on $cores cores (dmsgd, batch 64, ring)"
set grid
set key top left
set title "vs agents ($model)"
set xlabel "agents"
set ylabel "round time (ms)"
plot "$out/agents-macc-sim.dat" using 1:2 with linespoints title "macc-sim ($sim_threads threads)", \
     "$out/agents-macc-agentd.dat" using 1:2 with linespoints title "macc-agentd ring (1 proc/agent)"
set title "vs model size ($size_agents agents, mlp:784-H-10)"
set xlabel "parameters"
set logscale xy
plot "$out/params-macc-sim.dat" using 1:2 with linespoints title "macc-sim", \
     "$out/params-macc-agentd.dat" using 1:2 with linespoints title "macc-agentd ring"
unset multiplot
EOF
		png=$out/scaling.png
	else
		echo "bench_scaling: gnuplot failed (see $out/gnuplot.err); CSV only"
	fi
else
	echo "bench_scaling: gnuplot not installed; CSV only"
fi
echo "RESULT bench=scaling csv=$csv png=$png points=$(($(wc -l <"$csv") - 1))"
exit "$status"
