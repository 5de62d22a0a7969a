#!/bin/bash
# test_memcheck.sh: real programs under valgrind memcheck. A ring of 3 macc-agentd on
# loopback, each under `valgrind --leak-check=full --errors-for-leak-kinds=definite`, trains a
# small model (mlp:20-16-3 on a generated CSV set of 300 rows, so that each round takes
# milliseconds even under valgrind) while macc-ctl, itself under valgrind, queries and steers
# every agent: status, peers, metrics, version, pause, checkpoint, resume, eval, log-level,
# reload, export and predict (from the daemon and from the exported file), plus a malformed
# command. One agent is killed with SIGTERM and restarted (it resumes
# from its checkpoint); at the end SIGTERM stops all three. A short macc-sim run on the same data
# follows. Expected, and measured: every program exits 0 and valgrind reports no error and no
# definitely lost block (its --error-exitcode is 99, so a memcheck finding can not hide behind a
# program's own failure status); the agents train past round 10 and their checkpoints load.
# Suite 'memcheck' (CI); skipped without valgrind.
. "$(dirname "$0")/faults_lib.sh"

command -v valgrind >/dev/null || { echo "SKIP: no valgrind (deploy/install-deps.sh)"; exit 77; }
VG=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
	--show-leak-kinds=definite --suppressions="$MACC_SRC/tests/valgrind.supp" --num-callers=30
	--quiet)
N=3
R=${MEMCHECK_ROUNDS:-12}
# One BLAS thread: valgrind serialises threads anyway, and fewer threads mean a shorter run.
export OPENBLAS_NUM_THREADS=1

# 300 training and 90 test rows, 20 features, label = argmax of three fixed linear forms (so
# the model can learn it); deterministic.
awk -v n=390 'BEGIN {
	s = 12345
	for (i = 0; i < n; i++) {
		l0 = l1 = l2 = 0
		line = ""
		for (k = 0; k < 20; k++) {
			s = (s * 1103515245 + 12345) % 2147483648
			x = s / 2147483648 - 0.5
			line = line sprintf("%.4f,", x)
			if (k % 3 == 0) { l0 += x } else if (k % 3 == 1) { l1 += x } else { l2 += x }
		}
		lab = (l0 >= l1 && l0 >= l2) ? 0 : (l1 >= l2 ? 1 : 2)
		print line lab > (i < 300 ? "'"$WORK"'/train.csv" : "'"$WORK"'/test.csv")
	}
}'
DATA="csv:$WORK/train.csv;$WORK/test.csv"

FLEET="$WORK/fleet"
ring_edges "$N" "$WORK/edges"
gen_fleet "$FLEET" "$N" "$WORK/edges" --set model=mlp:20-16-3 --set "data=$DATA" \
	--set batch=16 --set rounds=1000000 --set checkpoint_every=5 --set eval_every=5 \
	--set threads=1 --set round_timeout_ms=20000 --set dead_peer_timeout_ms=60000

# start_vg J: agent J under valgrind, its report in $WORK/vg-agentJ.N.log (N counts restarts).
declare -A starts
start_vg() {
	local j=$1
	starts[$j]=$((${starts[$j]:-0} + 1))
	"${VG[@]}" --log-file="$WORK/vg-agent$j.${starts[$j]}.log" \
		"$AGENTD" -c "$FLEET/agent$j/agentd.conf" >>"$WORK/agent$j.log" 2>&1 &
	PIDS+=("$!")
	eval "PID_$j=$!"
}

# vg_ctl J ARGS...: macc-ctl under valgrind on agent J's socket; its output in $WORK/ctl.out.
nctl=0
vg_ctl() {
	local j=$1 rc=0
	shift
	nctl=$((nctl + 1))
	"${VG[@]}" --log-file="$WORK/vg-ctl.$nctl.log" \
		"$CTL" -s "$FLEET/agent$j/ctl.sock" "$@" >"$WORK/ctl.out" 2>&1 || rc=$?
	[ "$rc" != 99 ] || fail "valgrind: errors in macc-ctl $*: $(cat "$WORK/vg-ctl.$nctl.log")"
	return "$rc"
}

# vg_clean FILE: the valgrind report FILE (--quiet: findings only) holds no finding.
vg_clean() {
	if grep -Eqv '^==[0-9]+== (Warning: .*)?$' "$1"; then
		fail "valgrind reported in $1:
$(head -n 60 "$1")"
	fi
}

t0=$(date +%s)
for ((j = 0; j < N; j++)); do
	start_vg "$j"
done
for ((j = 0; j < N; j++)); do
	wait_round "$j" 4 240 || fail "agent$j did not train under valgrind"
done
echo "ok: $N agents under valgrind train ($(($(date +%s) - t0)) s to round 4)"

for ((j = 0; j < N; j++)); do
	for c in status peers metrics version; do
		vg_ctl "$j" --json "$c" || fail "macc-ctl --json $c on agent$j failed: $(cat "$WORK/ctl.out")"
	done
done
vg_ctl 0 pause || fail "pause failed: $(cat "$WORK/ctl.out")"
vg_ctl 0 checkpoint || fail "checkpoint failed: $(cat "$WORK/ctl.out")"
vg_ctl 0 eval || fail "eval failed: $(cat "$WORK/ctl.out")"
vg_ctl 0 resume || fail "resume failed: $(cat "$WORK/ctl.out")"
vg_ctl 1 log-level debug || fail "log-level failed: $(cat "$WORK/ctl.out")"
vg_ctl 1 log-level info || fail "log-level failed: $(cat "$WORK/ctl.out")"
vg_ctl 2 reload || fail "reload failed: $(cat "$WORK/ctl.out")"
rc=0
vg_ctl 2 log-level loud || rc=$?
[ "$rc" = 1 ] || [ "$rc" = 2 ] || fail "macc-ctl log-level loud: exit $rc, expected a reported error"
# The model out: export over the socket, predictions from the live model and from the export.
vg_ctl 0 export "$WORK/m.onnx" || fail "export failed: $(cat "$WORK/ctl.out")"
vg_ctl 0 predict "$WORK/test.csv" || fail "predict failed: $(cat "$WORK/ctl.out")"
vg_ctl 0 predict "$WORK/test.csv" model "$WORK/m.onnx" ||
	fail "offline predict failed: $(cat "$WORK/ctl.out")"
grep -q "90 rows scored" "$WORK/ctl.out" || fail "predict: $(cat "$WORK/ctl.out")"
# A malformed request straight on the socket: answered with an error, the daemon lives on.
python3 - "$FLEET/agent2/ctl.sock" <<'PY' || fail "the control socket did not answer a malformed request"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(60)
s.connect(sys.argv[1])
# A frame whose body is a msgpack array, not a map: a MALFORMED reply, the connection lives.
s.sendall(b"\x00\x00\x00\x04\x93\x01\x02\x03")
ok = len(s.recv(4096)) > 4
# A frame header announcing 2 GiB: a TOO-BIG reply, then the daemon closes.
s.sendall(b"\x7f\xff\xff\xff")
ok = ok and len(s.recv(4096)) > 4
sys.exit(0 if ok else 1)
PY
echo "ok: macc-ctl queries and commands under valgrind ($nctl runs)"

# A clean stop and restart of agent1: it resumes from its checkpoint.
wait_round 1 6 240 || fail "agent1 did not reach round 6"
kill -TERM "$(pid_of 1)"
wait_exit "$(pid_of 1)" 120 || fail "agent1 did not stop on SIGTERM under valgrind"
[ "$EXIT_RC" = 0 ] || fail "agent1 exited with $EXIT_RC after SIGTERM (99: valgrind errors)"
vg_clean "$WORK/vg-agent1.1.log"
start_vg 1
wait_log "$WORK/agent1.log" "resumed from .*checkpoint" 120 || fail "agent1 did not resume after restart"

for ((j = 0; j < N; j++)); do
	wait_round "$j" "$R" 300 || fail "agent$j did not reach round $R under valgrind"
done
for ((j = 0; j < N; j++)); do
	kill -TERM "$(pid_of "$j")"
done
for ((j = 0; j < N; j++)); do
	wait_exit "$(pid_of "$j")" 120 || fail "agent$j did not stop on SIGTERM under valgrind"
	[ "$EXIT_RC" = 0 ] || fail "agent$j exited with $EXIT_RC after SIGTERM (99: valgrind errors)"
done
for f in "$WORK"/vg-*.log; do
	vg_clean "$f"
done
nck=$(check_all_ckpts "$FLEET")
[ "$nck" -ge "$N" ] || fail "only $nck checkpoint files for $N agents"
t1=$(date +%s)
echo "ok: $N agents trained $R+ rounds under valgrind, stopped with exit 0, no memcheck error ($((t1 - t0)) s); $nck checkpoints load"

"${VG[@]}" --log-file="$WORK/vg-sim.log" "$SIM" --agents 3 --topology ring --model mlp:20-16-3 \
	--data "$DATA" --batch 16 --rounds 20 --lr 0.05 --seed 3 --quiet >"$WORK/sim.out" 2>&1 ||
	fail "macc-sim under valgrind exited with $? (99: valgrind errors): $(cat "$WORK/sim.out" "$WORK/vg-sim.log")"
vg_clean "$WORK/vg-sim.log"
echo "ok: macc-sim under valgrind: no memcheck error"
echo "RESULT memcheck agents=$N rounds=$R ctl_runs=$nctl seconds=$(($(date +%s) - t0))"
echo "PASS"
