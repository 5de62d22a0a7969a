#!/bin/bash
# test_agentd_check.sh: `macc-agentd --check-config` reports every error that start-up would,
# with file and line, and start-up reports the same ones (both run src/agentd/check.c).
#
# For each broken variant of a generated ring config (a topology or model spec that does not
# parse, a model whose input size does not fit the data, a data path that is missing, a
# directory or not a dataset, a control socket in a directory that does not exist, a ring whose
# neighbours do not match the [peer] sections, no [peer] at all, standalone = yes beside
# peers, Fashion-MNIST not installed): --check-config exits 1 and prints the expected sentence
# with the right FILE:LINE, no prefix said twice; the daemon started on the same file exits 1
# and logs exactly the same problems. Then: several problems at once are all listed; a valid
# config is "ok"; standalone = yes trains alone; --check-config --user names the user and the
# key's mode (as root); a daemon started with -s reloads (the socket from -s is not a changed
# key) and refuses a reload that leaves no [peer]; the checkpoint it leaves refuses a config of
# another setup (the check runs the checkpoint loader); neighbours with different models name both
# model specs in their logs, not only hashes.
. "$(dirname "$0")/agentd_lib.sh"

CTL="$MACC_BUILD/src/ctl/macc-ctl"
NBAD=0
ok() {
	echo "ok: $*"
}
bad() {
	NBAD=$((NBAD + 1))
	echo "FAIL: $*" >&2
}

gen_ring "$WORK/r" --set model=mlp:784-16-10 --set rounds=4
BASE="$WORK/r/agent0/agentd.conf"

# variant NAME SED...: $WORK/NAME.conf, the base config edited by sed expressions.
variant() {
	local name=$1
	shift
	local args=() e
	for e in "$@"; do
		args+=(-e "$e")
	done
	sed "${args[@]}" "$BASE" >"$WORK/$name.conf"
}

# check_case NAME REGEX KEY: --check-config on NAME.conf fails with a line matching
# "NAME.conf:LINE: REGEX", LINE being the line of KEY in the file ("" = any line), and the
# daemon on the same file fails with the same problems.
check_case() {
	local name=$1 re=$2 key=$3 conf="$WORK/$1.conf" line rc=0 want
	line='[0-9]+'
	if [ -n "$key" ]; then
		line=$(grep -n "^$key *=" "$conf" | cut -d: -f1 | head -n 1)
	fi
	"$AGENTD" --check-config -c "$conf" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
	want="^macc-agentd: ${conf//./\\.}:$line: $re"
	if [ "$rc" = 1 ] && grep -Eq -- "$want" "$WORK/$name.err" &&
		! grep -Eq "([a-z]+): \\1 " "$WORK/$name.err"; then
		ok "$name: --check-config: $(head -n 1 "$WORK/$name.err" | sed "s#$WORK/##")"
	else
		bad "$name: --check-config exit $rc, wanted '$want': $(cat "$WORK/$name.out" "$WORK/$name.err")"
		return
	fi
	# Start-up: exits 1 at once, with the same problem lines.
	rc=0
	timeout 60 "$AGENTD" -c "$conf" --exit-when-done >"$WORK/$name.log" 2>&1 || rc=$?
	sed -n 's/^macc-agentd: //p' "$WORK/$name.err" | grep -v "error.* (checked as user" \
		>"$WORK/$name.want"
	sed -n 's/^error: //p' "$WORK/$name.log" | grep -v "configuration error.* (listed above)" \
		>"$WORK/$name.got"
	if [ "$rc" = 1 ] && diff "$WORK/$name.want" "$WORK/$name.got" >/dev/null &&
		grep -q "configuration error.* (listed above)" "$WORK/$name.log"; then
		ok "$name: start-up fails with the same $(wc -l <"$WORK/$name.got") problem(s)"
	else
		bad "$name: start-up exit $rc; check said: $(cat "$WORK/$name.want"); daemon said: $(cat "$WORK/$name.log")"
	fi
}

variant torus '/^\[train\]/a topology = torus:2x'
check_case torus "topology 'torus:2x': expected torus:RxC" topology
variant hexagon '/^\[train\]/a topology = hexagon'
check_case hexagon "topology: unknown topology 'hexagon'" topology
variant relu6 's/^model = .*/model = mlp:784-32-10:relu6/'
check_case relu6 "model spec 'mlp:784-32-10:relu6': unknown activation 'relu6'" model
variant dim 's/^model = .*/model = mlp:100-32-10/'
check_case dim "model 'mlp:100-32-10' takes 100 inputs per sample but data 'fashion-mnist' has 784" model
variant nocsv "s#^data = .*#data = csv:$WORK/no-such.csv#"
check_case nocsv "key 'data' = 'csv:$WORK/no-such.csv': $WORK/no-such.csv: cannot open: No such file" data
variant dircsv "s#^data = .*#data = csv:$WORK#"
check_case dircsv "key 'data' = 'csv:$WORK': $WORK: not a regular file" data
variant mnist 's/^data = .*/data = mnist/'
check_case mnist "data: unknown dataset spec 'mnist'" data
variant sockdir "s#^control_socket = .*#control_socket = $WORK/no-such-dir/ctl.sock#"
check_case sockdir "key 'control_socket' = '$WORK/no-such-dir/ctl.sock': directory $WORK/no-such-dir does not exist" control_socket
# A ring of 4 with one [peer]: agent 0 has two neighbours in the ring.
awk 'BEGIN { RS = ""; ORS = "\n\n" } index($0, "name = agent3") == 0' "$BASE" |
	sed '/^\[train\]/a topology = ring' >"$WORK/ring1.conf"
check_case ring1 "topology 'ring' of 4 agents gives agent 0 \\(shard 0/4\\) 2 neighbours, but the config has 1 \\[peer\\] section" topology
# No [peer] at all.
sed '/^\[peer\]/,$d' "$BASE" >"$WORK/alone.conf"
check_case alone "\\[agent\\] 'agent0' has no \\[peer\\] section, so it would train alone.*standalone = yes" ""
grep -q "^$WORK/alone.conf:2: " <(sed -n 's/^macc-agentd: //p' "$WORK/alone.err") &&
	ok "alone: the error points at the [agent] header" || bad "alone: $(cat "$WORK/alone.err")"
variant standalone_peers '/^\[agent\]/a standalone = yes'
check_case standalone_peers "key 'standalone' = 'yes', but the config has 2 \\[peer\\] sections" standalone
rc=0
MACC_FASHION_MNIST_DIR="$WORK/no-fmnist" "$AGENTD" --check-config -c "$BASE" >"$WORK/fm.out" \
	2>"$WORK/fm.err" || rc=$?
[ "$rc" = 1 ] && grep -q "Fashion-MNIST is not installed: Debian's dataset-fashion-mnist" "$WORK/fm.err" &&
	ok "fashion-mnist missing: $(head -n 1 "$WORK/fm.err" | sed "s#$WORK/##")" ||
	bad "fashion-mnist missing: exit $rc: $(cat "$WORK/fm.err")"

# Several problems: all of them, and the count.
variant many 's/^model = .*/model = mlp:784-32-10:relu6/' "s#^data = .*#data = csv:$WORK/x.csv#" \
	"s#^control_socket = .*#control_socket = $WORK/nodir/ctl.sock#"
rc=0
"$AGENTD" --check-config -c "$WORK/many.conf" >/dev/null 2>"$WORK/many.err" || rc=$?
[ "$rc" = 1 ] && grep -q "relu6" "$WORK/many.err" && grep -q "x.csv" "$WORK/many.err" &&
	grep -q "nodir" "$WORK/many.err" && grep -q "many.conf: 3 errors" "$WORK/many.err" &&
	ok "three problems in one file: all three reported, '3 errors'" ||
	bad "three problems: exit $rc: $(cat "$WORK/many.err")"

# A valid config.
rc=0
"$AGENTD" --check-config -c "$BASE" >"$WORK/good.out" 2>"$WORK/good.err" || rc=$?
[ "$rc" = 0 ] && grep -Eq "^${BASE//./\\.}: ok \\(agent agent0, 2 peers, model mlp:784-16-10 with [0-9]+ parameters, data fashion-mnist; checked as user [a-z0-9]+\\)$" "$WORK/good.out" &&
	[ ! -s "$WORK/good.err" ] && ok "a valid config: $(sed "s#$WORK/##" "$WORK/good.out")" ||
	bad "valid config: exit $rc: $(cat "$WORK/good.out" "$WORK/good.err")"

# standalone = yes: trains alone and says so in no error.
sed -e '/^\[peer\]/,$d' -e '/^\[agent\]/a standalone = yes' "$BASE" >"$WORK/solo.conf"
rc=0
"$AGENTD" --check-config -c "$WORK/solo.conf" >"$WORK/solo.out" 2>&1 || rc=$?
[ "$rc" = 0 ] && grep -q "0 peers" "$WORK/solo.out" && ok "standalone = yes without [peer]: ok" ||
	bad "standalone: $(cat "$WORK/solo.out")"
rc=0
timeout 120 "$AGENTD" -c "$WORK/solo.conf" --exit-when-done >"$WORK/solo.log" 2>&1 || rc=$?
[ "$rc" = 0 ] && grep -q "training done: round 4 " "$WORK/solo.log" &&
	ok "standalone = yes: trains alone to the end, exit 0" ||
	bad "standalone run: exit $rc: $(tail -n 5 "$WORK/solo.log")"

# --user: checked for the daemon's user (root only).
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	chmod 0711 "$WORK" "$WORK/r" "$WORK/r/agent0"
	chmod 0644 "$BASE"
	rc=0
	"$AGENTD" --check-config --user nobody -c "$BASE" >"$WORK/user.out" 2>"$WORK/user.err" || rc=$?
	key="$WORK/r/agent0/agent.key"
	if [ "$rc" = 1 ] &&
		grep -q "key_file: user nobody cannot read $key (mode 0600 root:root)$" "$WORK/user.err" &&
		grep -q "user nobody cannot create files in $WORK/r/agent0 (mode 0711 root:root)" "$WORK/user.err" &&
		grep -q "(checked as user nobody)" "$WORK/user.err"; then
		ok "--user nobody: $(grep key_file "$WORK/user.err" | sed "s#$WORK/##g")"
	else
		bad "--user nobody: exit $rc: $(cat "$WORK/user.out" "$WORK/user.err")"
	fi
	chmod 0600 "$BASE"
	rc=0
	"$AGENTD" --check-config --user nobody -c "$BASE" >/dev/null 2>"$WORK/user2.err" || rc=$?
	[ "$rc" = 1 ] && grep -q "^macc-agentd: user nobody cannot read ${BASE//./\\.} (mode 0600 root:root)$" \
		"$WORK/user2.err" && ok "--user nobody, config 0600: names the config and its mode" ||
		bad "--user nobody, config 0600: $(cat "$WORK/user2.err")"
	rc=0
	setpriv --reuid=65534 --regid=65534 --clear-groups "$AGENTD" --check-config --user root \
		-c /dev/null >/dev/null 2>"$WORK/user3.err" || rc=$?
	[ "$rc" = 1 ] && grep -q "only root can check as another user" "$WORK/user3.err" &&
		ok "--user by a non-root caller: refused" || bad "--user as nobody: $(cat "$WORK/user3.err")"
	# As root without --user: ok, but a warning that nobody, who owns state_dir, cannot read
	# the key (a root-only key for a service that runs as another user).
	chmod 0644 "$BASE"
	mkdir -p "$WORK/r/agent0/state"
	chown nobody "$WORK/r/agent0/state"
	rc=0
	"$AGENTD" --check-config -c "$BASE" >"$WORK/user5.out" 2>"$WORK/user5.err" || rc=$?
	chown root "$WORK/r/agent0/state"
	[ "$rc" = 0 ] && grep -q "checked as user root" "$WORK/user5.out" &&
		grep -q "^macc-agentd: warning: key_file $key: user nobody, who owns state_dir $WORK/r/agent0/state .*cannot read it" \
			"$WORK/user5.err" &&
		ok "as root, state_dir owned by nobody: ok with a warning naming nobody" ||
		bad "as root, state_dir owned by nobody: exit $rc $(cat "$WORK/user5.out" "$WORK/user5.err")"
	rc=0
	"$AGENTD" --check-config -c "$BASE" >/dev/null 2>"$WORK/user6.err" || rc=$?
	[ "$rc" = 0 ] && ! grep -q warning "$WORK/user6.err" &&
		ok "as root, state_dir owned by root: no warning" ||
		bad "as root, state_dir owned by root: exit $rc $(cat "$WORK/user6.err")"
	chmod 0600 "$BASE"
else
	echo "skip: --user checks need root and a user nobody"
fi
rc=0
"$AGENTD" --user nobody >/dev/null 2>"$WORK/user4.err" || rc=$?
[ "$rc" = 2 ] && [ "$(wc -l <"$WORK/user4.err")" = 1 ] && ok "--user without --check-config: usage error" ||
	bad "--user alone: exit $rc $(cat "$WORK/user4.err")"

# -s and reload: the socket from -s is not a changed key; a reload to no [peer] is refused.
sed -e 's/^rounds = .*/rounds = 100000/' "$BASE" >"$WORK/long.conf"
start_agent 0 "$WORK/long.conf" -s "$WORK/s.sock"
n=100
until [ -S "$WORK/s.sock" ]; do
	n=$((n - 1))
	[ "$n" -gt 0 ] || fail "$WORK/s.sock did not appear"
	sleep 0.1
done
rc=0
"$CTL" -s "$WORK/s.sock" reload >"$WORK/rl.out" 2>"$WORK/rl.err" || rc=$?
[ "$rc" = 0 ] && ok "a daemon started with -s reloads its config" ||
	bad "reload with -s: exit $rc: $(cat "$WORK/rl.err")"
sed -i '/^\[peer\]/,$d' "$WORK/long.conf"
rc=0
"$CTL" -s "$WORK/s.sock" reload >"$WORK/rl.out" 2>"$WORK/rl.err" || rc=$?
[ "$rc" = 1 ] && grep -q "has no \\[peer\\] section" "$WORK/rl.err" &&
	ok "reload to a config without [peer]: refused ($(sed "s#$WORK/##" "$WORK/rl.err"))" ||
	bad "reload to no peers: exit $rc: $(cat "$WORK/rl.err")"
kill -TERM "$PID_0"
wait_exit "$PID_0" 15 || fail "the daemon did not stop"
# It left a checkpoint: a config of another setup (batch) cannot resume from it.
[ -e "$WORK/r/agent0/state/checkpoint.bin" ] || bad "no checkpoint after SIGTERM"
variant batch32 's/^batch = .*/batch = 32/'
check_case batch32 "state_dir: .*checkpoint.bin: checkpoint belongs to another training setup" \
	state_dir

# Two neighbours with different models: each log names both model specs (HELLO carries only a
# hash; the spec travels in the BYE).
for j in 0 1; do
	other=$([ "$j" = 0 ] && echo agent3 || echo agent2)
	awk -v d="name = $other" 'BEGIN { RS = ""; ORS = "\n\n" } index($0, d) == 0' \
		"$WORK/r/agent$j/agentd.conf" | sed -e "s#^shard = .*#shard = $j/2#" \
		-e 's/^rounds = .*/rounds = 100000/' -e "s#^state_dir = .*#state_dir = $WORK/mm$j#" \
		>"$WORK/mm$j.conf"
done
sed -i 's/^model = .*/model = mlp:784-32-10/' "$WORK/mm1.conf"
start_agent 1 "$WORK/mm0.conf"
start_agent 2 "$WORK/mm1.conf"
# The side that accepts the connection rejects the HELLO (naming its own spec and the peer's
# hash) and says BYE with its spec; the dialling side logs that BYE. Which side dials first
# depends on timing: look at the first exchange, whichever it was.
got=
for _ in $(seq 300); do
	for j in 1 2; do
		grep -q "peer closed the session: model mismatch" "$WORK/agent$j.log" && got=$j
	done
	[ -n "$got" ] && break
	sleep 0.1
done
if [ "$got" = 1 ]; then
	dialler="$WORK/agent1.log" acceptor="$WORK/agent2.log" theirs=mlp:784-32-10 mine=mlp:784-16-10
	aname=agent1
else
	dialler="$WORK/agent2.log" acceptor="$WORK/agent1.log" theirs=mlp:784-16-10 mine=mlp:784-32-10
	aname=agent0
fi
if [ -n "$got" ] && grep -q "model mismatch: agent '$aname' runs $theirs " "$dialler" &&
	grep -q "runs another model or algorithm (model hash [0-9a-f]*, .*this agent runs $theirs " \
		"$acceptor"; then
	ok "model mismatch: the rejecting side logs its spec $theirs and the peer's hash, the other" \
		"side gets $theirs in the BYE (its own is $mine)"
else
	bad "model mismatch logs: $(grep -h "mismatch\|another model" "$WORK"/agent[12].log | head -n 4)"
fi
for j in 1 2; do
	pid_var="PID_$j"
	kill -TERM "${!pid_var}"
	wait_exit "${!pid_var}" 15 || fail "agent of the mismatch pair did not stop"
done

if [ "$NBAD" -gt 0 ]; then
	echo "FAIL: $NBAD checks failed" >&2
	exit 1
fi
echo "PASS"
