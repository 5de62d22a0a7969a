#!/bin/bash
# bench_ring.sh - the loopback daemon ring (issues 9 and 22), in one run on one machine.
#
#  2. Distributed throughput: a ring of 4 real macc-agentd processes on 127.0.0.1 against
#     ../shared/reference/torch_dmsgd.py (the same algorithm over torch.distributed/gloo, 4
#     processes on loopback, run with /usr/bin/python3). Same model, data (Fashion-MNIST, IID
#     shard J/4), batch, lr, momentum, algorithm, epochs; one compute thread per agent on both
#     sides. Reported: wall time per epoch, epochs/s, mean test accuracy of the 4 agents, and
#     the ratio macc epochs/s over PyTorch epochs/s (speed target: >= 1.5 at equal
#     accuracy, within 0.5 points; the message path target was 2).
#  3. Cost of the network path: the same daemon ring against `macc-sim --agents 4 --topology
#     ring` with the same settings (the same arithmetic bit for bit - examples/ring-4/gen.sh
#     orders the keys so - without sockets). Reported: ring epoch time over macc-sim epoch time
#     (<= 1.15 for the message path), and the CPU per agent-round of both: the difference is the
#     network path's (speed target: <= 5 ms for the MLP's 1.9 MB state). macc-sim runs with
#     BENCH_SIM_THREADS threads (default: the cores, at most 4), so both use the same cores.
#  Sealing: the ring runs twice, sealed (encrypt = yes, the default, used for 2 and
#     3) and plain (encrypt = no). Reported: sealed epoch time over plain (speed target: <= 1.10;
#     sealing asked for 1.05), and the plain ring over macc-sim too.
#
# How time is measured (see ring-lib.sh): the daemons' steady-state seconds per round (from the
# start of round 1 to the start of the last round, slowest agent), times the rounds of an epoch;
# PyTorch's own epoch_s (time from a barrier to the end of training, over epochs); macc-sim's
# train_s over its rounds, times the rounds of an epoch. None of them includes data loading or
# the test evaluation. The launch-to-exit wall time of each run and the CPU seconds its processes
# used (user + system, whole run including data loading) are printed too: a ring whose CPU time
# is close to macc-sim's but whose wall time is much longer spends its time waiting, not working.
# On a shared or loaded machine only the ratios of this one run mean anything.
#
# The last lines are machine-readable, for run-all.sh:
#   RESULT bench=ring macc=EPOCH_S ref=EPOCH_S ratio=X macc_acc=A ref_acc=A acc_diff_pts=D met=yes|no
#   RESULT bench=netpath macc=EPOCH_S ref=EPOCH_S ratio=X identical=yes|no met=yes|no
#   RESULT bench=netpath_plain (the same for the plain ring)
#   RESULT bench=sealed macc=SEALED_EPOCH_S ref=PLAIN_EPOCH_S ratio=X met=yes|no
#   RESULT bench=cpu sealed=MS plain=MS sim=MS   (steady-state CPU per agent-round, ring-lib.sh)
#
# Environment (all optional): MACC_BUILD, MACC_SRC (set by meson); BENCH_MODEL
# (mlp:784-256-128-10), BENCH_EPOCHS (1), BENCH_BATCH (64), BENCH_LR (0.05), BENCH_MOMENTUM
# (0.9), BENCH_ALGORITHM (dmsgd; or cdmsgd, cdsgd), BENCH_SEED (1), BENCH_SIM_THREADS,
# BENCH_TIMEOUT (seconds allowed to each of the three runs, default 3600), BENCH_OUT (directory
# for logs, default $MACC_BUILD/bench-results/ring), BENCH_SKIP_TORCH=1 (benchmark 3 only),
# BENCH_SKIP_PLAIN=1 (the sealed ring only), BENCH_REFERENCE_DIR (where torch_dmsgd.py is; default
# $MACC_SRC/../shared/reference).
# Exit status: 0 ran (targets missed or not), 1 a run failed, 77 skipped (no data).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MACC_SRC=${MACC_SRC:-$(cd "$here/../.." && pwd)}
MACC_BUILD=${MACC_BUILD:-$MACC_SRC/build}
# shellcheck source=tests/bench/ring-lib.sh
. "$here/ring-lib.sh"

ref=${BENCH_REFERENCE_DIR:-$MACC_SRC/../shared/reference}/torch_dmsgd.py
python=/usr/bin/python3
agentd=$MACC_BUILD/src/agentd/macc-agentd
sim=$MACC_BUILD/src/sim/macc-sim
gen=$MACC_SRC/examples/ring-4/gen.sh
model=${BENCH_MODEL:-mlp:784-256-128-10}
epochs=${BENCH_EPOCHS:-1}
batch=${BENCH_BATCH:-64}
lr=${BENCH_LR:-0.05}
momentum=${BENCH_MOMENTUM:-0.9}
algorithm=${BENCH_ALGORITHM:-dmsgd}
seed=${BENCH_SEED:-1}
cores=$(nproc)
sim_threads=${BENCH_SIM_THREADS:-$((cores < 4 ? cores : 4))}
limit=${BENCH_TIMEOUT:-3600}
out=${BENCH_OUT:-$MACC_BUILD/bench-results/ring}
data_dir=${MACC_DATA_DIR:+$MACC_DATA_DIR/fashion-mnist}
data_dir=${data_dir:-/usr/share/datasets/fashion-mnist}

for f in "$agentd" "$sim"; do
	if [[ ! -x $f ]]; then
		echo "bench_ring: $f is not built (ninja -C $MACC_BUILD)"
		exit 1
	fi
done
if [[ ! -f $data_dir/train-images-idx3-ubyte.gz ]]; then
	echo "bench_ring: no Fashion-MNIST in $data_dir; skipping"
	exit 77
fi
torch=1
if [[ ${BENCH_SKIP_TORCH:-0} == 1 ]]; then
	torch=0
elif [[ ! -x $python || ! -f $ref ]]; then
	echo "bench_ring: PyTorch reference $ref (or $python) not found: benchmark 2 skipped"
	torch=0
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/ring"
trap ring_kill EXIT
trap 'exit 130' INT TERM

echo "4-agent ring, $model, $algorithm, batch $batch, lr $lr, momentum $momentum, $epochs" \
	"epoch(s), seed $seed; $cores cores; logs in $out"

# ---- macc-agentd rings: sealed (encrypt = yes, the default) and plain (encrypt = no) ---------
# run_ring ENCRYPT: one ring; sets ring_epoch, ring_acc, ring_wall, ring_cpu, ring_round_ms,
# ring_cpu_round (steady-state CPU ms per agent-round), digests (per agent) and er (rounds per
# epoch). Logs in $out/ENCRYPT/.
run_ring() {
	local enc=$1 base j round_s d=$out/$1
	mkdir -p "$d"
	rm -rf "$d/ring"
	if ! base=$(ring_pick_port 4); then
		echo "bench_ring: no 4 free consecutive ports on 127.0.0.1"
		exit 1
	fi
	"$gen" -o "$d/ring" -p "$base" --set model="$model" --set epochs="$epochs" \
		--set batch="$batch" --set lr="$lr" --set momentum="$momentum" \
		--set algorithm="$algorithm" --set seed="$seed" --set threads=1 \
		--set checkpoint_every=0 --set eval_every=4000000000 \
		--set round_timeout_ms=600000 --set dead_peer_timeout_ms=1200000 \
		--agent-set encrypt="$enc" >/dev/null
	cpu0=0
	cpu1=0
	cpu_mark cpu0
	t0=$(date +%s.%N)
	ring_start "$agentd" "$d" "$d"/ring/agent{0,1,2,3}/agentd.conf
	ring_cpu_round=$(ring_steady_cpu "$d" 4 "$limit")
	if ! ring_wait "$limit"; then
		echo "bench_ring: the daemon ring (encrypt = $enc) failed; logs: $d/agent{0..3}.log"
		exit 1
	fi
	t1=$(date +%s.%N)
	cpu_mark cpu1
	ring_cpu=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')
	ring_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
	round_s=$(ring_round_s 1 "$d"/agent{0,1,2,3}.log)
	er=$(ring_epoch_rounds "$d/agent0.log")
	if [[ -z $round_s || -z $er ]]; then
		echo "bench_ring: no round timings in $d/agent0..3.log (too few rounds?)"
		exit 1
	fi
	ring_round_ms=$(awk -v r="$round_s" 'BEGIN { printf "%.1f", r * 1000 }')
	ring_epoch=$(awk -v r="$round_s" -v n="$er" 'BEGIN { printf "%.3f", r * n }')
	accs=()
	digests=()
	for j in 0 1 2 3; do
		accs+=("$(ring_done_value 'test accuracy' "$d/agent$j.log")")
		digests+=("$(ring_digest "$d/agent$j.log")")
	done
	ring_acc=$(printf '%s\n' "${accs[@]}" | awk '{ s += $1; n++ } END { if (n) printf "%.4f", s / n }')
}

plain=1
if [[ ${BENCH_SKIP_PLAIN:-0} == 1 ]]; then
	plain=0
fi
if [[ $plain == 1 ]]; then
	run_ring no
	plain_epoch=$ring_epoch plain_acc=$ring_acc plain_wall=$ring_wall plain_cpu=$ring_cpu
	plain_round_ms=$ring_round_ms plain_digests=("${digests[@]}") plain_cpu_round=$ring_cpu_round
fi
run_ring yes

# ---- macc-sim, same settings -------------------------------------------------------------------
cpu_mark cpu0
if ! simline=$(timeout -k 10 "$limit" "$sim" --agents 4 --topology ring --model "$model" \
	--data fashion-mnist --algorithm "$algorithm" --epochs "$epochs" --batch "$batch" \
	--lr "$lr" --momentum "$momentum" --seed "$seed" --threads "$sim_threads" --quiet \
	--print-digest 2>"$out/sim.err" | tee "$out/sim.log" | tail -n 1); then
	echo "bench_ring: macc-sim failed (see $out/sim.err)"
	exit 1
fi
cpu_mark cpu1
sim_cpu=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')
# The simulator's CPU per agent-round: the run above less a one-round run (loading, set-up and
# the final evaluation are in both).
cpu_mark cpu0
if ! timeout -k 10 "$limit" "$sim" --agents 4 --topology ring --model "$model" \
	--data fashion-mnist --algorithm "$algorithm" --rounds 1 --batch "$batch" --lr "$lr" \
	--momentum "$momentum" --seed "$seed" --threads "$sim_threads" --quiet \
	>"$out/sim1.log" 2>&1; then
	echo "bench_ring: macc-sim (one round) failed (see $out/sim1.log)"
	exit 1
fi
cpu_mark cpu1
sim_train=$(kv_value train_s "$simline")
sim_rounds=$(kv_value rounds "$simline")
sim_epochs=$(kv_value epochs "$simline")
sim_acc=$(kv_value test_acc_mean "$simline")
sim_epoch=$(awk -v t="$sim_train" -v r="$sim_rounds" -v e="$sim_epochs" \
	'BEGIN { printf "%.3f", (r > 0 && e > 0) ? t / r * (r / e) : 0 }')
sim_cpu_round=$(awk -v c="$sim_cpu" -v a="$cpu0" -v b="$cpu1" -v r="$sim_rounds" \
	'BEGIN { if (r > 1) printf "%.2f", (c - (b - a)) * 1000 / (r - 1) / 4 }')
identical=yes
plain_identical=yes
for j in 0 1 2 3; do
	d=$(sed -n "s/^agent=$j digest=\([0-9a-f]*\)$/\1/p" "$out/sim.log")
	if [[ -z $d || $d != "${digests[$j]}" ]]; then
		identical=no
	fi
	if [[ $plain == 1 && $d != "${plain_digests[$j]}" ]]; then
		plain_identical=no
	fi
done

# ---- PyTorch / gloo ------------------------------------------------------------------------------
torch_epoch=""
torch_acc=""
torch_cpu=-
if [[ $torch == 1 ]]; then
	cpu_mark cpu0
	if ! tport=$(ring_pick_port 1); then
		echo "bench_ring: no free port for gloo"
		exit 1
	fi
	if ! tline=$(timeout -k 10 "$limit" "$python" "$ref" --agents 4 --algorithm "$algorithm" \
		--model "$model" --epochs "$epochs" --batch "$batch" --lr "$lr" \
		--momentum "$momentum" --threads 1 --seed "$seed" --port "$tport" \
		2>"$out/torch.err" | tee "$out/torch.log" | grep '^impl=' | tail -n 1); then
		echo "bench_ring: torch_dmsgd.py failed (see $out/torch.err)"
		exit 1
	fi
	cpu_mark cpu1
	torch_cpu=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')
	torch_epoch=$(kv_value epoch_s "$tline")
	torch_acc=$(kv_value test_acc_mean "$tline")
fi

# ---- report ------------------------------------------------------------------------------------
eps() {
	awk -v s="$1" 'BEGIN { printf "%.4f", (s > 0 ? 1 / s : 0) }'
}
printf '%-28s %9s %9s %13s %8s %8s\n' impl epoch_s epochs/s test_acc_mean wall_s cpu_s
printf '%-28s %9s %9s %13s %8s %8s\n' "macc-agentd ring, sealed" "$ring_epoch" \
	"$(eps "$ring_epoch")" "$ring_acc" "$ring_wall" "$ring_cpu"
if [[ $plain == 1 ]]; then
	printf '%-28s %9s %9s %13s %8s %8s\n' "macc-agentd ring, plain" "$plain_epoch" \
		"$(eps "$plain_epoch")" "$plain_acc" "$plain_wall" "$plain_cpu"
fi
printf '%-28s %9s %9s %13s %8s %8s\n' "macc-sim (threads $sim_threads)" "$sim_epoch" \
	"$(eps "$sim_epoch")" "$sim_acc" "$(kv_value wall_s "$simline")" "$sim_cpu"
if [[ $torch == 1 ]]; then
	printf '%-28s %9s %9s %13s %8s %8s\n' "pytorch gloo (4 procs)" "$torch_epoch" \
		"$(eps "$torch_epoch")" "$torch_acc" - "$torch_cpu"
fi
echo "sealed ring: $er rounds per epoch, $ring_round_ms ms per round; final parameters" \
	"identical to macc-sim: $identical"
if [[ $plain == 1 ]]; then
	echo "plain ring: $plain_round_ms ms per round; final parameters identical to macc-sim:" \
		"$plain_identical"
fi
# CPU per agent-round does not depend on how busy the machine is: with more processes than
# cores, wall time follows it, so on a shared machine it is the steadier comparison.
echo "CPU ms per agent-round (steady state): sealed ring ${ring_cpu_round:-?}," \
	"plain ring ${plain_cpu_round:--}, macc-sim ${sim_cpu_round:-?}"
echo "RESULT bench=cpu sealed=${ring_cpu_round:-} plain=${plain_cpu_round:-} sim=${sim_cpu_round:-}"

if [[ $torch == 1 ]]; then
	awk -v m="$ring_epoch" -v r="$torch_epoch" -v ma="$ring_acc" -v ra="$torch_acc" 'BEGIN {
		ratio = m > 0 ? r / m : 0
		d = (ma - ra) * 100
		met = (ratio >= 1.5 && (d < 0 ? -d : d) <= 0.5) ? "yes" : "no"
		printf "RESULT bench=ring macc=%s ref=%s ratio=%.2f macc_acc=%s ref_acc=%s acc_diff_pts=%.2f met=%s\n",
			m, r, ratio, ma, ra, d, met
	}'
fi
netpath() {
	awk -v b="$1" -v m="$2" -v s="$sim_epoch" -v id="$3" 'BEGIN {
		ratio = s > 0 ? m / s : 0
		printf "RESULT bench=%s macc=%s ref=%s ratio=%.3f identical=%s met=%s\n",
			b, m, s, ratio, id, (ratio > 0 && ratio <= 1.15) ? "yes" : "no"
	}'
}
netpath netpath "$ring_epoch" "$identical"
if [[ $plain == 1 ]]; then
	netpath netpath_plain "$plain_epoch" "$plain_identical"
	awk -v m="$ring_epoch" -v p="$plain_epoch" 'BEGIN {
		ratio = p > 0 ? m / p : 0
		printf "RESULT bench=sealed macc=%s ref=%s ratio=%.3f met=%s\n", m, p, ratio,
			(ratio > 0 && ratio <= 1.10) ? "yes" : "no"
	}'
fi
