#!/bin/bash
# test_ctl.sh: macc-ctl against real macc-agentd daemons.
#
# Part A, a pair of agents on loopback (mlp:784-16-10, a run far longer than the test):
#   - every command in human and --json form; JSON parsed and its keys and values checked
#     (state, round advancing, peers up, ...); `metrics` checked as Prometheus text (HELP/TYPE,
#     sample syntax, histogram consistency) and for the metric names of the issue;
#   - the state machine through the CLI: pause / resume / stop / start / checkpoint / eval /
#     reload / log-level, with the refusals (exit 1, status bad-state) where a command does
#     not fit the state;
#   - exit codes: 0 ok, 1 daemon error, 2 usage, 3 cannot connect;
#   - permissions: uid 65534 (setpriv) cannot connect to the 0660 socket; with the socket
#     made 0666 it may read but every mutating command is refused (exit 1, permission-denied);
#     the same uid with the socket's group as a supplementary group is allowed;
#   - raw bytes on the socket (ctl_lib.sh's helper): version mismatch, malformed requests,
#     oversized headers, garbage, half frames, byte-by-byte and pipelined requests, more
#     clients than the limit; the daemon answers or drops and keeps training;
#   - 50 concurrent macc-ctl clients all succeed.
#   - every JSON key and metric name follows the naming rule of macc-ctl(8) NAMES and is
#     documented there (ctl_lib.sh's `names` check);
#   - the three programs answer -V/--version and -h/--help alike and report a usage error in one
#     line; with --json, usage and connection errors are JSON documents too; options may follow
#     the command;
#   - on a terminal (script(1)): the watch bar and the peers table fit the width, the bar says
#     "paused", and Ctrl-C ends the bar's line;
#   - at the end, a neighbour stopped: its RTT is unknown (null, no metric sample); the daemon
#     stopped mid-run: `watch` exits 3, not 0 with a final event.
# Part B, a short run: before its first round the training loss is unknown (null, "-"); `watch`
#   (plain and --json) started at the beginning exits 0 by itself when the run ends, with
#   progress lines and a final event; afterwards the run is `done` and start/pause/stop are
#   refused.
. "$(dirname "$0")/agentd_lib.sh"
. "$(dirname "$0")/ctl_lib.sh"

BASE_PORT=$(pick_base_port)
T0=$SECONDS

# two_agents DIR [gen.sh options]: a ring of 4 from gen.sh, cut down to a pair: agent0 and
# agent1 keep only each other as peers and take half of the data each.
two_agents() {
	local dir=$1 j drop
	shift
	gen_ring "$dir" "$@"
	for j in 0 1; do
		drop=$([ "$j" = 0 ] && echo agent3 || echo agent2)
		awk -v d="name = $drop" 'BEGIN { RS = ""; ORS = "\n\n" } index($0, d) == 0' \
			"$dir/agent$j/agentd.conf" | sed "s#^shard = .*#shard = $j/2#" \
			>"$dir/agent$j/pair.conf"
	done
}

A="$WORK/a"
two_agents "$A" --set model=mlp:784-16-10 --set rounds=10000000 --set round_timeout_ms=2000 \
	--set dead_peer_timeout_ms=4000 --set checkpoint_every=0 --set lr=0.05
start_agent 0 "$A/agent0/pair.conf"
start_agent 1 "$A/agent1/pair.conf"
SOCK="$A/agent0/ctl.sock"
SOCK1="$A/agent1/ctl.sock"
wait_log "$WORK/agent0.log" "\[agent1\] session up" 30 || fail "agent0 and agent1 did not connect"
wait_log "$WORK/agent0.log" "round [0-9]+/" 30 || fail "agent0 is not training"

# --- exit codes that need no daemon ---------------------------------------------------------
SOCK="$WORK/no-such.sock"
expect_rc 3 status && grep -q . "$ERR" && ok "missing socket: exit 3 ($(head -n 1 "$ERR"))"
expect_rc 3 --json status && ok "missing socket with --json: exit 3"
: >"$WORK/not-a-socket"
SOCK="$WORK/not-a-socket"
expect_rc 3 peers && ok "a regular file as socket: exit 3"
SOCK="$A/agent0/ctl.sock"
expect_rc 2 frobnicate && ok "unknown command: exit 2"
expect_rc 2 --frobnicate status && ok "unknown option: exit 2"
expect_rc 2 status extra && ok "extra argument: exit 2"
expect_rc 2 log-level && ok "log-level without a level: exit 2"
expect_rc 2 log-level loud && ok "log-level with an invalid level: exit 2"
expect_rc 2 help frobnicate && ok "help for an unknown command: exit 2"
if [ "$(wc -l <"$ERR")" = 1 ]; then
	ok "usage error is one line on stderr"
else
	bad "usage error is not one line: $(cat "$ERR")"
fi

# --- the three programs alike: --version/-V, --help/-h, a usage error in one line -------------
for prog in "$CTL" "$AGENTD" "$SIM"; do
	name=$(basename "$prog")
	v1='' v2='' h1='' h2=''
	v1=$("$prog" --version 2>&1) && v2=$("$prog" -V 2>&1) && [ "$v1" = "$v2" ] &&
		[[ "$v1" =~ ^$name\ [0-9]+\.[0-9]+ ]] && ok "$name --version = -V: $(head -n 1 <<<"$v1")" ||
		bad "$name --version / -V: '$v1' / '$v2'"
	h1=$("$prog" --help 2>&1) && h2=$("$prog" -h 2>&1) && [ "$h1" = "$h2" ] &&
		[[ "$h1" =~ ^Usage:\ $name ]] && ok "$name --help = -h, starting 'Usage: $name'" ||
		bad "$name --help / -h: $(head -n 2 <<<"$h1")"
	rc=0
	"$prog" --bogus >"$OUT" 2>"$ERR" || rc=$?
	if [ "$rc" = 2 ] && [ "$(wc -l <"$ERR")" = 1 ] && [ ! -s "$OUT" ] &&
		grep -q "^$name: unknown option '--bogus'; see '$name --help'.$" "$ERR"; then
		ok "$name --bogus: exit 2, one line: $(cat "$ERR")"
	else
		bad "$name --bogus: exit $rc, stderr: $(cat "$ERR") stdout: $(head -c 200 "$OUT")"
	fi
done
# Options after the command (like --json), and `--` before a file argument.
SOCK="$WORK/no-such.sock"
expect_rc 0 status -s "$A/agent0/ctl.sock" && grep -q "^state: " "$OUT" &&
	ok "status -s SOCKET (option after the command)"
expect_rc 0 status --socket="$A/agent0/ctl.sock" --json &&
	jcheck "$OUT" "d['name'] == 'agent0'" "status --socket=SOCKET --json"
expect_rc 0 status --help && grep -q "^Usage: macc-ctl .*status" "$OUT" &&
	ok "status --help: the command's help"
expect_rc 2 status --frobnicate && grep -q "unknown option '--frobnicate'" "$ERR" &&
	ok "an unknown option after the command: exit 2"
expect_rc 1 verify-audit -- -no-such-file && grep -q -- "-no-such-file" "$ERR" &&
	ok "verify-audit -- -FILE: the file is an argument"
# --json: every run prints one JSON document, errors included.
expect_rc 3 --json status && jcheck "$OUT" "d['ok'] is False and d['command'] == 'status' and \
d['exit_code'] == 3 and d['status'] is None and 'no-such.sock' in d['error']" \
	"connect error with --json: an error document on stdout, exit_code 3"
expect_rc 2 --json frobnicate && jcheck "$OUT" "d['ok'] is False and d['exit_code'] == 2 and \
'frobnicate' in d['error']" "unknown command with --json: an error document"
expect_rc 2 --bogus --json status && jcheck "$OUT" "d['ok'] is False and d['exit_code'] == 2" \
	"an unknown option before --json: still an error document"
expect_rc 2 log-level loud --json && jcheck "$OUT" "d['ok'] is False and \
d['command'] == 'log-level' and d['exit_code'] == 2" "a bad argument with --json: an error document"
expect_rc 0 --version && grep -Eq "^macc-ctl [0-9.]+ \(control protocol 1\)$" "$OUT" &&
	ok "macc-ctl --version needs no daemon: $(cat "$OUT")"
expect_rc 0 --json -V && jcheck "$OUT" "d == {'macc_ctl': d['macc_ctl'], 'protocol': 1}" \
	"macc-ctl --json --version"
SOCK="$A/agent0/ctl.sock"

# --- help and version -----------------------------------------------------------------------
expect_rc 0 help
for c in status peers start stop pause resume checkpoint eval metrics watch reload log-level \
	version audit verify-audit genkey pubkey help; do
	grep -Eq "^  $c( |$)" "$OUT" || bad "help does not list '$c'"
done
ok "help lists every command"
expect_rc 0 help watch && grep -q "watch" "$OUT" && ok "help watch"
expect_rc 0 --json help &&
	jcheck "$OUT" "isinstance(d, dict)" "help --json is one JSON document"
expect_rc 0 version
if grep -Eq "^macc-ctl [0-9]" "$OUT" && grep -Eq "^macc-agentd [0-9]" "$OUT"; then
	ok "version (human): $(tr '\n' ' ' <"$OUT")"
else
	bad "version (human) output: $(cat "$OUT")"
fi
expect_rc 0 --json version && jcheck "$OUT" \
	"sorted(d) == ['daemon', 'macc_ctl', 'protocol'] and d['protocol'] == 1 and d['daemon']" \
	"version --json: macc_ctl, daemon, protocol 1"
MACC_CTL_SOCKET="$SOCK" "$CTL" version >/dev/null 2>&1 && ok "MACC_CTL_SOCKET is used" ||
	bad "macc-ctl did not use MACC_CTL_SOCKET"

# --- genkey / pubkey (local) ----------------------------------------------------------------
expect_rc 0 genkey
key=$(cat "$OUT")
[[ "$key" =~ ^[A-Za-z0-9+/]{43}=$ ]] && ok "genkey prints a base64 key" || bad "genkey: $key"
"$CTL" pubkey <"$A/agent0/agent.key" >"$WORK/pub0" 2>"$ERR" &&
	[ "$(cat "$WORK/pub0")" = "$(cat "$A/agent0/agent.pub")" ] &&
	ok "pubkey of agent0's key is agent0.pub" || bad "pubkey: $(cat "$WORK/pub0" "$ERR")"
"$CTL" --json genkey >"$OUT" 2>"$ERR" &&
	jcheck "$OUT" "list(d) == ['secret_key'] and len(d['secret_key']) == 44" "genkey --json"
printf '%s\n' "$key" | "$CTL" --json pubkey >"$OUT" 2>"$ERR" &&
	jcheck "$OUT" "list(d) == ['public_key'] and len(d['public_key']) == 44" "pubkey --json"
echo "not a key" | "$CTL" pubkey >/dev/null 2>"$ERR" && bad "pubkey accepted junk" ||
	ok "pubkey refuses junk ($(cat "$ERR"))"

# --- status ---------------------------------------------------------------------------------
STATUS_KEYS="['algorithm', 'arch', 'blas', 'consensus_distance', 'digest', 'epoch', 'epochs_planned', \
'last_error', 'model', 'name', 'peers_configured', 'peers_up', 'process_start_time_seconds', \
'round', 'round_seconds', 'rounds_planned', 'samples_per_second', 'state', \
'state_bytes_received_total', 'state_bytes_sent_total', 'test_accuracy_ratio', 'test_loss', \
'train_loss', 'uptime_seconds', 'version', 'degraded', 'rollbacks_total', \
'connections_rejected_total', 'standardize', 'standardize_digest', 'standardize_refused_total', \
'max_rate_bytes_per_second', 'send_rate_bytes_per_second']"
expect_rc 0 status
for re in "^agent: +agent0 \(dmsgd, mlp:784-16-10\)$" "^state: +training$" \
	"^round: +[0-9]+ / 10000000$" "^epoch: +[0-9.]+ / " "^peers: +1 / 1 up$" "^train loss: " \
	"^throughput: +[0-9]+ samples/s$" "^consensus: " "^uptime: " \
	"^refused: +- \(connections, before identification\)$" \
	"^state bytes: [0-9.]+ (B|KiB|MiB|GiB) sent, [0-9.]+ (B|KiB|MiB|GiB) received$"; do
	grep -Eq "$re" "$OUT" || bad "status (human) has no line matching '$re': $(cat "$OUT")"
done
ok "status (human): $(grep -E '^(state|round|peers):' "$OUT" | tr -s ' ' | tr '\n' ';')"
expect_rc 0 --json status
cp "$OUT" "$WORK/status1.json"
jcheck "$OUT" "sorted(d) == sorted($STATUS_KEYS)" "status --json has exactly the documented keys"
jcheck "$OUT" "d['state'] == 'training' and d['name'] == 'agent0' and d['model'] == \
'mlp:784-16-10' and d['algorithm'] == 'dmsgd' and d['rounds_planned'] == 10000000 and \
d['round'] > 0 and d['peers_up'] == 1 and d['peers_configured'] == 1 and \
d['samples_per_second'] > 0 and d['epoch'] > 0 and d['last_error'] == '' and \
abs(d['process_start_time_seconds'] + d['uptime_seconds'] - $(date +%s)) < 5" \
	"status --json: training, round > 0, 1/1 peers up, start time + uptime = now"
jcheck "$OUT" "d['degraded'] is False and d['rollbacks_total'] == 0 and \
sorted(d['connections_rejected_total']) == sorted(['unknown_key', 'version', 'malformed', \
'timeout', 'flood', 'unproven_state', 'bad_proof', 'replay', 'rate_limited', 'other']) and \
set(d['connections_rejected_total'].values()) == {0}" \
	"status --json: not degraded, no rollback, every connection-refusal reason at 0"
r1=$(json_get "$WORK/status1.json" "d['round']")
sleep 1
expect_rc 0 --json status
r2=$(json_get "$OUT" "d['round']")
[ "$r2" -gt "$r1" ] && ok "round advances ($r1 -> $r2 in 1 s)" || bad "round stuck at $r1 -> $r2"
# json: status of agent1 is its own
SOCK="$SOCK1"
expect_rc 0 --json status && jcheck "$OUT" "d['name'] == 'agent1' and d['peers_up'] == 1" \
	"agent1's status --json names agent1"
SOCK="$A/agent0/ctl.sock"

# --- peers ----------------------------------------------------------------------------------
PEER_KEYS="['arch', 'blas', 'bytes_received_total', 'bytes_sent_total', 'endpoint', 'key', 'last_round', \
'messages_rejected_total', 'name', 'quarantine_active', 'quarantine_until', 'quarantines_total', \
'rtt_seconds', 'sealed', 'session', 'states_clipped_total', 'states_excluded_total', 'weight', \
'max_rate_bytes_per_second', 'send_rate_bytes_per_second']"
pub1=$(cat "$A/agent1/agent.pub")
expect_rc 0 peers
if grep -Eq "^NAME +ENDPOINT +KEY +SESSION +SEALED +PLATFORM +LAST ROUND +RTT +RECEIVED +SENT +RATE \
+EXCLUDED +QUARANTINE +REJECTED$" "$OUT" &&
	awk -v ep="127.0.0.1:$((BASE_PORT + 1))" -v key="${pub1:0:8}..." \
		'$1 == "agent1" && $2 == ep && $3 == key && $4 == "up" { found = 1 } END { exit !found }' \
		"$OUT"; then
	# (fields compared as strings: a base64 key may hold '+' or '/', which a regex would misread)
	ok "peers (human): $(grep '^agent1' "$OUT" | tr -s ' ')"
else
	bad "peers (human): $(cat "$OUT")"
fi
expect_rc 0 --json peers
jcheck "$OUT" "list(d) == ['peers'] and len(d['peers']) == 1 and \
sorted(d['peers'][0]) == sorted($PEER_KEYS)" "peers --json has exactly the documented keys"
jcheck "$OUT" "d['peers'][0]['name'] == 'agent1' and d['peers'][0]['session'] == 'up' and \
d['peers'][0]['endpoint'] == '127.0.0.1:$((BASE_PORT + 1))' and \
d['peers'][0]['key'] == '$pub1' and d['peers'][0]['last_round'] > 0 and \
d['peers'][0]['bytes_received_total'] > 0 and d['peers'][0]['bytes_sent_total'] > 0 and \
d['peers'][0]['weight'] == 0.5" \
	"peers --json: agent1 up, its key and endpoint, traffic counted, weight 0.5"
jcheck "$OUT" "d['peers'][0]['messages_rejected_total'].get('malformed') == 0 and \
d['peers'][0]['messages_rejected_total'].get('bad_signature') == 0 and \
set(d['peers'][0]['messages_rejected_total'].values()) == {0}" \
	"peers --json: every known rejection reason listed at 0"
jcheck "$OUT" "d['peers'][0]['sealed'] is True and \
d['peers'][0]['states_excluded_total'] == {'nonfinite': 0, 'distance': 0, 'quarantined': 0} and \
d['peers'][0]['quarantine_active'] is False and d['peers'][0]['quarantines_total'] == 0 and \
d['peers'][0]['quarantine_until'] == 0 and d['peers'][0]['states_clipped_total'] == 0" \
	"peers --json: session sealed (encrypt = yes), nothing excluded, not quarantined"
# The issue lists RTT among what `peers` shows; a training session is never idle, so it must
# be measured without waiting for idleness.
up=$(status_field uptime_seconds)
ctl --json peers
cp "$OUT" "$WORK/peers.json"
jcheck "$OUT" "isinstance(d['peers'][0]['rtt_seconds'], float) and \
0 < d['peers'][0]['rtt_seconds'] < 1" \
	"peers --json: RTT known while training, in seconds (agent up for $up s)"

# --- metrics --------------------------------------------------------------------------------
REQUIRED_METRICS=(macc_up macc_state macc_rounds_total:counter macc_epoch macc_samples_total
	macc_train_loss:gauge macc_test_loss macc_test_accuracy_ratio:gauge macc_consensus_distance
	macc_samples_per_second macc_peers_up macc_peers_configured macc_checkpoints_total
	macc_neighbours_missed_total macc_messages_sent_total macc_messages_received_total
	macc_bytes_sent_total:counter macc_bytes_received_total macc_uptime_seconds
	process_start_time_seconds:gauge macc_state_bytes_sent_total:counter
	macc_state_bytes_received_total:counter
	'macc_messages_rejected_total{peer="agent1",reason="malformed"}'
	'macc_messages_rejected_total{peer="agent1",reason="bad_signature"}'
	'macc_peer_up{peer="agent1"}' macc_peer_rtt_seconds macc_peer_last_round
	macc_peer_bytes_sent_total macc_peer_bytes_received_total
	macc_messages_rejected_total:counter macc_round_seconds:histogram
	'macc_state{state="training"}' 'macc_states_excluded_total{reason="distance"}'
	macc_states_excluded_total:counter macc_states_clipped_total macc_quarantines_total:counter
	'macc_peer_quarantine_active{peer="agent1"}' macc_peer_states_excluded_total
	macc_audit_entries_total:counter macc_audit_errors_total
	macc_connections_rejected_total:counter 'macc_connections_rejected_total{reason="flood"}'
	'macc_connections_rejected_total{reason="unknown_key"}' macc_degraded:gauge
	macc_rollbacks_total:counter macc_round_jumps_total:counter
	macc_round_jumps_refused_total:counter)
expect_rc 0 metrics
cp "$OUT" "$WORK/metrics.txt"
if "$PY" "$HELPER" prom "$WORK/metrics.txt" "${REQUIRED_METRICS[@]}"; then
	ok "metrics: well-formed Prometheus text, $(grep -c '^# TYPE' "$WORK/metrics.txt") families"
else
	bad "metrics text (see above)"
fi
grep -q '^macc_peer_up{peer="agent1"} 1$' "$WORK/metrics.txt" && ok "macc_peer_up agent1 = 1" ||
	bad "macc_peer_up{peer=\"agent1\"} is not 1"
grep -q '^macc_state{state="training"} 1$' "$WORK/metrics.txt" ||
	bad "macc_state{state=\"training\"} is not 1"
grep -q '^macc_messages_rejected_total{peer="agent1",reason="malformed"} 0$' "$WORK/metrics.txt" &&
	ok "macc_messages_rejected_total has its known reasons at 0 before any rejection" ||
	bad "no macc_messages_rejected_total{peer=\"agent1\",reason=\"malformed\"} 0"
expect_rc 0 --json metrics
cp "$OUT" "$WORK/metrics.json"
jcheck "$OUT" "list(d) == ['metrics'] and d['metrics'].startswith('# HELP')" \
	"metrics --json is {\"metrics\": TEXT}"
"$PY" "$HELPER" prom "$WORK/metrics.json" "${REQUIRED_METRICS[@]}" &&
	ok "metrics --json text is well-formed too" || bad "metrics --json text"

# --- audit, verify-audit (audit = no here; tests/faults/test_poison.sh has a real trail) ------
AUDIT_KEYS="['enabled', 'entries', 'entries_kept', 'entries_total', 'errors_total', 'file']"
expect_rc 0 --json audit
cp "$OUT" "$WORK/audit.json"
jcheck "$OUT" "sorted(d) == sorted($AUDIT_KEYS) and d['enabled'] is False and \
d['entries'] == [] and d['entries_kept'] == 0 and d['file'].endswith('/audit.log')" \
	"audit --json: exactly the documented keys, off, empty"
expect_rc 0 audit 5 && grep -q "^audit trail: off" "$OUT" && ok "audit (human), with a COUNT" ||
	bad "audit (human): $(cat "$OUT")"
expect_rc 2 audit 0 && grep -q "COUNT must be" "$ERR" && ok "audit 0: usage error, exit 2" ||
	bad "audit 0: $(cat "$ERR")"
expect_rc 2 verify-audit && ok "verify-audit without FILE: exit 2"
expect_rc 1 verify-audit "$WORK/no-such-audit.log" &&
	[ "$(grep -o "no-such-audit.log" "$ERR" | wc -l)" = 1 ] &&
	ok "verify-audit of a missing file: exit 1 naming it once ($(cat "$ERR"))" ||
	bad "verify-audit missing: $(cat "$ERR")"
expect_rc 1 --json verify-audit "$WORK/no-such-audit.log" && jcheck "$OUT" "d['ok'] is False \
and d['error'].count('no-such-audit.log') == 1" "verify-audit --json of a missing file: one document"
: >"$WORK/empty-audit.log"
expect_rc 0 --json verify-audit "$WORK/empty-audit.log"
cp "$OUT" "$WORK/verify.json"
jcheck "$OUT" "d['ok'] is True and d['entries_verified'] == 0 and d['error'] is None" \
	"verify-audit --json of an empty log: ok, 0 entries"

# --- export, predict: their JSON keys go to the names check below ----------------------------
expect_rc 0 --json export "$WORK/ctl-model.onnx" && cp "$OUT" "$WORK/export.json" &&
	jcheck "$OUT" "d['ok'] is True and d['source'] == 'daemon' and d['agent'] == 'agent0' and \
d['nparams'] == 784 * 16 + 16 + 16 * 10 + 10" "export --json from the daemon"
awk 'BEGIN { for (i = 0; i < 3; i++) { for (k = 0; k < 784; k++) printf "%.2f,", (i + k) % 7 / 7
	print i } }' >"$WORK/rows.csv"
expect_rc 0 --json predict "$WORK/rows.csv" && cp "$OUT" "$WORK/predict.json" &&
	jcheck "$OUT" "d['rows'] == 3 and d['task'] == 'classification' and \
len(d['predictions']) == 3 and d['predictions'][2]['label'] == 2 and \
abs(sum(d['predictions'][0]['probabilities']) - 1) < 1e-4 and \
0 <= d['accuracy_ratio'] <= 1" "predict --json: 3 labelled rows scored by the daemon"

# --- log-level, eval, checkpoint ------------------------------------------------------------
expect_rc 0 log-level debug && grep -q "log level set to debug" "$OUT" && ok "log-level debug"
wait_log "$WORK/agent0.log" "log level set to debug" 5 || bad "daemon did not log the new level"
expect_rc 0 --json log-level info && jcheck "$OUT" \
	"d == {'ok': True, 'command': 'log-level'}" "log-level --json"
ck0=$(grep -c "^macc_checkpoints_total" "$WORK/metrics.txt" || true)
[ "$ck0" = 1 ] || bad "metrics has no macc_checkpoints_total sample"
expect_rc 0 checkpoint && ok "checkpoint (human): $(cat "$OUT")"
expect_rc 0 --json checkpoint && jcheck "$OUT" "d == {'ok': True, 'command': 'checkpoint'}" \
	"checkpoint --json"
n=50
until ls "$A"/agent0/state/*checkpoint* >/dev/null 2>&1; do
	n=$((n - 1))
	[ "$n" -gt 0 ] || break
	sleep 0.1
done
if ls "$A"/agent0/state/*checkpoint* >/dev/null 2>&1; then
	ok "checkpoint written: $(cd "$A/agent0/state" && ls)"
else
	bad "no checkpoint file in $A/agent0/state after 'checkpoint'"
fi
sleep 0.5
expect_rc 0 metrics
ck=$(sed -n 's/^macc_checkpoints_total \([0-9]*\)$/\1/p' "$OUT")
[ "${ck:-0}" -ge 1 ] && ok "macc_checkpoints_total = $ck" || bad "macc_checkpoints_total ${ck:-?}"
nev=$(grep -c "eval at round" "$WORK/agent0.log" || true)
expect_rc 0 eval && ok "eval (human): $(cat "$OUT")"
# The eval runs on the worker after the reply: wait (bounded) for one more 'eval at round' line.
nev2=$nev
for _ in $(seq 100); do
	nev2=$(grep -c "eval at round" "$WORK/agent0.log" || true)
	[ "$nev2" -gt "$nev" ] && break
	sleep 0.1
done
[ "$nev2" -gt "$nev" ] && ok "eval ran" || bad "eval did not run (no new 'eval at round' line)"
expect_rc 0 --json eval && jcheck "$OUT" "d == {'ok': True, 'command': 'eval'}" "eval --json"
sleep 0.5
expect_rc 0 --json status && jcheck "$OUT" \
	"0 < d['test_accuracy_ratio'] <= 1 and d['test_loss'] > 0" "status shows the test accuracy"

# --- pause / resume / stop / start and the refusals -----------------------------------------
expect_rc 0 pause && ok "pause (human): $(cat "$OUT")"
wait_state paused 10 && ok "state paused" || bad "agent0 did not pause"
pr1=$(status_field round)
sleep 1
pr2=$(status_field round)
[ "$pr1" = "$pr2" ] && ok "round stays at $pr1 while paused" || bad "round $pr1 -> $pr2 paused"
expect_rc 0 status && grep -Eq "^state: +paused$" "$OUT" && ok "status (human) says paused"
expect_rc 1 pause && grep -q "bad-state" "$ERR" && ok "pause while paused: exit 1 ($(cat "$ERR"))"
expect_rc 1 --json pause && jcheck "$OUT" "d['ok'] is False and d['command'] == 'pause' and \
d['status'] == 7 and d['status_name'] == 'bad-state' and d['error']" \
	"pause --json while paused: ok false, status 7 bad-state"
# RTT: sessions that go quiet are pinged, so a paused agent learns its RTT.
rtt=null
for _ in $(seq 30); do
	ctl --json peers
	rtt=$(json_get "$OUT" "d['peers'][0]['rtt_seconds']")
	[ "$rtt" != null ] && break
	sleep 0.2
done
awk -v r="$rtt" 'BEGIN { exit !(r + 0 > 0 && r + 0 < 1) }' &&
	ok "peers rtt_seconds $rtt while paused" ||
	bad "peers rtt_seconds is $rtt while paused (expected a small positive number)"
# On a terminal the bar says the run is paused and shows no running ETA.
if command -v script >/dev/null; then
	script -qec "stty cols 100; timeout -s INT 3 $CTL -s $SOCK watch" /dev/null \
		>"$WORK/tty-paused.txt" 2>&1 || true
	tr '\r' '\n' <"$WORK/tty-paused.txt" | grep -a "paused" | grep -aq "ETA -" &&
		ok "watch on a terminal: the bar says paused, ETA -" ||
		bad "watch bar while paused: $(tr '\r' '\n' <"$WORK/tty-paused.txt" | tail -n 3)"
else
	bad "script(1) is missing (util-linux's bsdutils)"
fi
expect_rc 0 resume && ok "resume (human): $(cat "$OUT")"
wait_state training 10 && ok "state training again" || bad "agent0 did not resume"
expect_rc 0 --json pause && jcheck "$OUT" "d == {'ok': True, 'command': 'pause'}" "pause --json"
wait_state paused 10 || bad "agent0 did not pause (second time)"
expect_rc 0 --json resume && jcheck "$OUT" "d == {'ok': True, 'command': 'resume'}" \
	"resume --json"
wait_state training 10 || bad "agent0 did not resume (second time)"
r1=$(status_field round)
sleep 1
r2=$(status_field round)
[ "$r2" -gt "$r1" ] && ok "training after resume ($r1 -> $r2)" || bad "stuck after resume"
# Documented (macc/ctl.h, macc-ctl(8)): start while training is bad-state.
expect_rc 1 start && ok "start while training: exit 1 ($(cat "$ERR"))"

expect_rc 0 stop && ok "stop (human): $(cat "$OUT")"
wait_state idle 10 && ok "state idle after stop" || bad "agent0 did not stop"
wait_log "$WORK/agent0.log" "training stopped at round" 5 || bad "no 'training stopped' log"
sr=$(status_field round)
expect_rc 1 stop && grep -q "bad-state" "$ERR" && ok "stop while idle: exit 1"
expect_rc 1 pause && ok "pause while idle: exit 1"
expect_rc 1 resume && ok "resume while idle: exit 1 ($(cat "$ERR"))"
expect_rc 1 --json resume && jcheck "$OUT" "d['ok'] is False and d['status_name'] == \
'bad-state'" "resume --json while idle: bad-state"
expect_rc 0 status && grep -Eq "^state: +idle$" "$OUT" && ok "status (human) says idle"
expect_rc 0 start && ok "start (human): $(cat "$OUT")"
wait_state training 10 && ok "training again after start" || bad "start did not restart training"
sleep 0.5
r3=$(status_field round)
[ "$r3" -gt "$sr" ] && ok "start continued from round $sr (now $r3)" ||
	bad "round $sr -> $r3 after start"
expect_rc 0 --json stop && jcheck "$OUT" "d == {'ok': True, 'command': 'stop'}" "stop --json"
wait_state idle 10 || bad "agent0 did not stop (second time)"
expect_rc 0 --json start && jcheck "$OUT" "d == {'ok': True, 'command': 'start'}" "start --json"
wait_state training 10 || bad "agent0 did not start (second time)"

# --- reload -----------------------------------------------------------------------------------
nrel=$(grep -c "reloaded:" "$WORK/agent0.log" || true)
expect_rc 0 reload && ok "reload (human): $(cat "$OUT")"
[ "$(grep -c "reloaded: 1 peers" "$WORK/agent0.log")" -gt "$nrel" ] && ok "daemon reloaded" ||
	bad "no 'reloaded: 1 peers' after reload"
expect_rc 0 --json reload && jcheck "$OUT" "d == {'ok': True, 'command': 'reload'}" \
	"reload --json"
cp "$A/agent0/pair.conf" "$WORK/pair0.good"
printf '\n[peer]\nname = broken\nendpoint = nowhere\n' >>"$A/agent0/pair.conf"
expect_rc 1 reload && ok "reload of a broken config: exit 1 ($(cat "$ERR"))"
expect_rc 1 --json reload && jcheck "$OUT" "d['ok'] is False and d['status'] == 8 and \
d['status_name'] == 'config' and 'pair.conf' in d['error']" \
	"reload --json of a broken config: status 8, names the file"
cp "$WORK/pair0.good" "$A/agent0/pair.conf"
expect_rc 0 --json status && jcheck "$OUT" "d['state'] == 'training' and d['peers_up'] == 1" \
	"still training with its peer after the failed reload"

# --- watch on a long run: plain lines, then the client leaves ----------------------------------
"$CTL" -s "$SOCK" watch >"$WORK/watch-a.txt" 2>&1 &
wp=$!
PIDS+=("$wp")
"$CTL" -s "$SOCK" --json watch >"$WORK/watch-a.jsonl" 2>&1 &
wj=$!
PIDS+=("$wj")
sleep 5
kill -0 "$wp" 2>/dev/null && kill -0 "$wj" 2>/dev/null && ok "watch keeps running on a long run" ||
	bad "watch exited on a run that is not over"
kill "$wp" "$wj" 2>/dev/null || true
wait_gone "$wp" 5 || bad "watch did not end on SIGTERM"
wait_gone "$wj" 5 || bad "watch --json did not end on SIGTERM"
forget "$wp"
forget "$wj"
nl=$(grep -cE "^training round [0-9]+/10000000 epoch [0-9.]+/[0-9.]+ loss " "$WORK/watch-a.txt" ||
	true)
[ "$nl" -ge 2 ] && ok "watch (plain) printed $nl progress lines in 5 s" ||
	bad "watch (plain) output: $(head -c 400 "$WORK/watch-a.txt")"
# A kill may cut the last line; judge complete lines only.
sed -i '$!b; /}$/!d' "$WORK/watch-a.jsonl"
cp "$WORK/watch-a.jsonl" "$WORK/watch-names.jsonl"
if "$PY" "$HELPER" jsonl "$WORK/watch-a.jsonl" "len(L) >= 2 and all(sorted(x) == sorted(['state', \
'round', 'rounds_planned', 'epoch', 'epochs_planned', 'train_loss', 'test_accuracy_ratio', \
'samples_per_second', 'round_seconds', 'eta_seconds', 'final']) and x['final'] is False for x in L) and \
all(L[i]['round'] <= L[i + 1]['round'] for i in range(len(L) - 1)) and L[-1]['round'] > \
L[0]['round']"; then
	ok "watch --json: $(wc -l <"$WORK/watch-a.jsonl") events, documented keys, rounds rising"
else
	bad "watch --json output: $(head -c 400 "$WORK/watch-a.jsonl")"
fi
expect_rc 0 status && ok "status works after two watchers left"

# --- permissions ------------------------------------------------------------------------------
UNPRIV=(setpriv --reuid=65534 --regid=65534 --clear-groups)
# asuser ARGS: macc-ctl as uid 65534 (no groups); RC, $OUT, $ERR as ctl().
asuser() {
	"${UNPRIV[@]}" "$CTL" -s "$SOCK" "$@" >"$OUT" 2>"$ERR" &
	local p=$!
	wait_exit "$p" 30 || fail "macc-ctl as uid 65534 did not finish"
	RC=$EXIT_RC
}
if ! command -v setpriv >/dev/null || [ "$(id -u)" != 0 ]; then
	echo "skip: permission checks need root and setpriv"
else
	chmod 0711 "$WORK" "$A" "$A/agent0"
	sm=$(stat -c %a "$SOCK")
	[ "$sm" = 660 ] && ok "control socket is created 0660" || bad "control socket mode $sm"
	asuser status
	[ "$RC" = 3 ] && ok "uid 65534 cannot connect to the 0660 socket: exit 3 ($(cat "$ERR"))" ||
		bad "uid 65534 on a 0660 socket: exit $RC"
	chmod 0666 "$SOCK"
	for c in status peers metrics version "--json status"; do
		# shellcheck disable=SC2086 # "--json status" is two words on purpose
		asuser $c
		[ "$RC" = 0 ] || bad "read-only '$c' as uid 65534: exit $RC ($(cat "$ERR"))"
	done
	ok "read-only commands work for uid 65534"
	npaused=$(grep -c "paused at round" "$WORK/agent0.log" || true)
	for c in start stop pause resume checkpoint eval reload "log-level debug"; do
		# shellcheck disable=SC2086
		asuser $c
		if [ "$RC" = 1 ] && grep -q "permission-denied" "$ERR"; then
			:
		else
			bad "mutating '$c' as uid 65534: exit $RC ($(cat "$ERR"))"
		fi
	done
	ok "mutating commands refused for uid 65534 ($(head -n 1 "$ERR"))"
	asuser --json pause
	jcheck "$OUT" "d['ok'] is False and d['status'] == 5 and d['status_name'] == \
'permission-denied'" "pause --json as uid 65534: status 5 permission-denied"
	[ "$(grep -c "paused at round" "$WORK/agent0.log")" = "$npaused" ] &&
		grep -q "refused 'pause' from uid 65534" "$WORK/agent0.log" &&
		ok "nothing changed, the daemon logged the refusal" ||
		bad "refused commands changed state or were not logged"
	expect_rc 0 --json status && jcheck "$OUT" "d['state'] == 'training'" \
		"still training after the refused commands"
	# The socket's group grants the mutating commands (macc when it exists, else our gid).
	sg=$(stat -c %g "$SOCK")
	"${UNPRIV[@]/--clear-groups/--groups=$sg}" "$CTL" -s "$SOCK" log-level info \
		>"$OUT" 2>"$ERR" &
	gp=$!
	wait_exit "$gp" 30 || fail "macc-ctl as uid 65534 did not finish"
	[ "$EXIT_RC" = 0 ] && ok "uid 65534 in the socket's group $sg may run log-level" ||
		bad "uid 65534 with supplementary group $sg: exit $EXIT_RC ($(cat "$ERR"))"
	chmod 0660 "$SOCK"
fi

# --- raw bytes on the socket --------------------------------------------------------------------
r1=$(status_field round)
if "$PY" "$HELPER" raw "$SOCK"; then
	ok "raw socket tests"
else
	bad "raw socket tests (see FAIL lines above)"
fi
kill -0 "$PID_0" || fail "agent0 died during the raw socket tests"
r2=$(status_field round)
sleep 1
r3=$(status_field round)
[ "$r3" -gt "$r2" ] && [ "$r2" -gt "$r1" ] &&
	ok "agent0 kept training through the raw tests ($r1 -> $r2 -> $r3)" ||
	bad "rounds $r1 -> $r2 -> $r3 around the raw tests"

# --- 50 concurrent clients --------------------------------------------------------------------
cmds=(status peers metrics version "--json status" "--json peers")
cpids=()
t0=$(date +%s%N)
for k in $(seq 0 49); do
	# shellcheck disable=SC2086
	"$CTL" -s "$SOCK" ${cmds[$((k % 6))]} >"$WORK/c$k.out" 2>"$WORK/c$k.err" &
	cpids+=("$!")
	PIDS+=("$!")
done
# One bounded wait for all of them (polling each in turn would time the poll, not the daemon).
n=300
while :; do
	alive=0
	for p in "${cpids[@]}"; do
		kill -0 "$p" 2>/dev/null && alive=$((alive + 1))
	done
	[ "$alive" = 0 ] && break
	n=$((n - 1))
	[ "$n" -gt 0 ] || fail "$alive of 50 concurrent clients still running after 30 s"
	sleep 0.02
done
ms=$((($(date +%s%N) - t0) / 1000000))
nfail=0
for k in $(seq 0 49); do
	rc=0
	wait "${cpids[$k]}" || rc=$?
	forget "${cpids[$k]}"
	if [ "$rc" != 0 ] || [ ! -s "$WORK/c$k.out" ]; then
		nfail=$((nfail + 1))
		echo "client $k (${cmds[$((k % 6))]}): exit $rc $(cat "$WORK/c$k.err")" >&2
	fi
	if [ $((k % 6)) -ge 4 ]; then
		"$PY" "$HELPER" json "$WORK/c$k.out" "isinstance(d, dict)" ||
			{ nfail=$((nfail + 1)); echo "client $k: bad JSON" >&2; }
	fi
done
[ "$nfail" = 0 ] && ok "50 concurrent clients all succeeded in $ms ms" ||
	bad "$nfail of 50 concurrent clients failed"
expect_rc 0 --json status && jcheck "$OUT" "d['state'] == 'training' and d['peers_up'] == 1" \
	"agent0 fine after the 50 clients"

# --- on a terminal: tables and the bar fit its width; Ctrl-C ends the bar's line ---------------
# (script(1) gives the programs a pseudo-terminal of a chosen width)
script -qec "stty cols 70; $CTL -s $SOCK peers" /dev/null >"$WORK/tty-peers.txt" 2>&1 || true
w=$(tr -d '\r' <"$WORK/tty-peers.txt" | awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }')
if [ "$w" -le 70 ] && grep -aq "^NAME" "$WORK/tty-peers.txt" && grep -aq "^agent1 " "$WORK/tty-peers.txt" &&
	grep -aq "^(not shown in 70 columns: " "$WORK/tty-peers.txt"; then
	ok "peers on a 70-column terminal: lines of at most $w columns, hidden columns named"
else
	bad "peers on a 70-column terminal ($w columns): $(cat "$WORK/tty-peers.txt")"
fi
script -qec "stty cols 60; timeout -s INT 3 $CTL -s $SOCK watch" /dev/null >"$WORK/tty-watch.txt" \
	2>&1 || true
w=$(tr '\r' '\n' <"$WORK/tty-watch.txt" | sed 's/\x1b\[K//g' |
	awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }')
nbar=$(tr '\r' '\n' <"$WORK/tty-watch.txt" | grep -ac "round [0-9]*/10000000")
if [ "$nbar" -ge 1 ] && [ "$w" -lt 60 ] && [ "$(tail -c 2 "$WORK/tty-watch.txt" | od -An -c | tr -d ' ')" = '\r\n' ]; then
	ok "watch on a 60-column terminal: $nbar bar updates of at most $w columns, Ctrl-C ends the line"
else
	bad "watch on a 60-column terminal: $nbar updates, widest $w: $(tail -c 300 "$WORK/tty-watch.txt" | od -c | tail -n 5)"
fi

# --- a neighbour goes away: its RTT is no longer known ------------------------------------------
"$CTL" -s "$SOCK" watch >"$WORK/watch-crash.txt" 2>"$WORK/watch-crash.err" &
wc1=$!
PIDS+=("$wc1")
"$CTL" -s "$SOCK" --json watch >"$WORK/watch-crash.jsonl" 2>"$WORK/watch-crash-j.err" &
wc2=$!
PIDS+=("$wc2")
kill -TERM "$PID_1"
wait_exit "$PID_1" 15 || fail "agent1 did not stop on SIGTERM"
[ "$EXIT_RC" = 0 ] || bad "agent1 exited $EXIT_RC on SIGTERM"
for _ in $(seq 50); do
	ctl --json peers
	[ "$(json_get "$OUT" "d['peers'][0]['session']")" != up ] && break
	sleep 0.2
done
jcheck "$OUT" "d['peers'][0]['session'] != 'up' and d['peers'][0]['rtt_seconds'] is None" \
	"peers --json: agent1 down, its RTT unknown (null)"
expect_rc 0 peers && awk '$1 == "agent1" && $0 ~ / -  / { f = 1 } END { exit !f }' "$OUT" &&
	ok "peers: agent1's RTT shown as -" || bad "peers after agent1 stopped: $(cat "$OUT")"
expect_rc 0 metrics
grep -q '^macc_peer_rtt_seconds{peer="agent1"}' "$OUT" &&
	bad "macc_peer_rtt_seconds still has a sample for the stopped agent1" ||
	ok "metrics: no macc_peer_rtt_seconds sample for the stopped agent1"

# --- the daemon stops mid-run: watch exits 3 (not 0 with a final event) ---------------------------
kill -TERM "$PID_0"
wait_exit "$PID_0" 15 || fail "agent0 did not stop on SIGTERM"
[ "$EXIT_RC" = 0 ] || bad "agent0 exited $EXIT_RC on SIGTERM"
wait_exit "$wc1" 15 || fail "watch did not end when agent0 stopped"
forget "$wc1"
[ "$EXIT_RC" = 3 ] && ! grep -q "^done " "$WORK/watch-crash.txt" &&
	grep -q "before the run ended" "$WORK/watch-crash.err" &&
	ok "watch: agent0 stopped mid-run: exit 3 ($(tail -n 1 "$WORK/watch-crash.err"))" ||
	bad "watch when agent0 stopped: exit $EXIT_RC, $(tail -n 2 "$WORK/watch-crash.txt" "$WORK/watch-crash.err")"
wait_exit "$wc2" 15 || fail "watch --json did not end when agent0 stopped"
forget "$wc2"
[ "$EXIT_RC" = 3 ] && "$PY" "$HELPER" jsonl "$WORK/watch-crash.jsonl" "len(L) >= 2 and \
all(x.get('final') is False for x in L[:-1]) and L[-1]['ok'] is False and \
L[-1]['exit_code'] == 3 and 'before the run ended' in L[-1]['error']" &&
	ok "watch --json: events with final false, then an error document with exit_code 3" ||
	bad "watch --json when agent0 stopped: exit $EXIT_RC, $(tail -n 2 "$WORK/watch-crash.jsonl")"
[ ! -e "$SOCK" ] && ok "socket removed at exit" || bad "control socket left behind: $SOCK"
grep -Eq "AddressSanitizer|runtime error" "$WORK"/agent*.log && bad "sanitizer reports in logs"
echo "part A took $((SECONDS - T0)) s"

# --- part B: watch a short run to its end -----------------------------------------------------
R=${R:-1500}
BASE_PORT=$(pick_base_port)
B="$WORK/b"
two_agents "$B" --set model=mlp:784-16-10 --set rounds="$R" --set round_timeout_ms=3000 \
	--set dead_peer_timeout_ms=8000 --set checkpoint_every=0 --set lr=0.05
start_agent 2 "$B/agent0/pair.conf"
SOCK="$B/agent0/ctl.sock"
# Before its first round (its neighbour is not started yet) the training loss is unknown.
n=100
until [ -S "$SOCK" ]; do
	n=$((n - 1))
	[ "$n" -gt 0 ] || fail "$SOCK did not appear"
	sleep 0.1
done
expect_rc 0 --json status && jcheck "$OUT" "d['round'] == 0 and d['train_loss'] is None and \
d['test_accuracy_ratio'] is None" "status before the first round: train_loss null (not 0)"
expect_rc 0 status && grep -Eq "^train loss: +-$" "$OUT" && ok "status before the first round: loss -" ||
	bad "status before the first round: $(grep "^train loss" "$OUT")"
start_agent 3 "$B/agent1/pair.conf" --exit-when-done
for s in "$B/agent0/ctl.sock" "$B/agent1/ctl.sock"; do
	n=100
	until [ -S "$s" ]; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || fail "$s did not appear"
		sleep 0.1
	done
done
"$CTL" -s "$B/agent0/ctl.sock" watch >"$WORK/watch-b.txt" 2>"$WORK/watch-b.err" &
wb=$!
PIDS+=("$wb")
"$CTL" -s "$B/agent1/ctl.sock" --json watch >"$WORK/watch-b1.jsonl" 2>"$WORK/watch-b1.err" &
wb1=$!
PIDS+=("$wb1")
wait_exit "$wb" 150 || fail "watch did not end with the run (R=$R)"
forget "$wb"
[ "$EXIT_RC" = 0 ] && ok "watch exited 0 by itself at the end of the run" ||
	bad "watch exited $EXIT_RC: $(cat "$WORK/watch-b.err")"
wait_exit "$wb1" 30 || fail "watch --json on agent1 did not end with the run"
forget "$wb1"
[ "$EXIT_RC" = 0 ] && ok "watch --json on the --exit-when-done agent1 exited 0" ||
	bad "watch --json on agent1 exited $EXIT_RC: $(cat "$WORK/watch-b1.err")"
nl=$(grep -cE "^training round [0-9]+/$R " "$WORK/watch-b.txt" || true)
last=$(tail -n 1 "$WORK/watch-b.txt")
if [ "$nl" -ge 2 ] && [[ "$last" =~ ^done\ round\ $R/$R\  ]]; then
	ok "watch (plain): $nl progress lines, last: $last"
else
	bad "watch (plain) output ($nl lines): $(head -n 3 "$WORK/watch-b.txt"); last: $last"
fi
"$PY" "$HELPER" jsonl "$WORK/watch-b1.jsonl" "len(L) >= 2 and L[-1]['final'] is True and \
L[-1]['state'] == 'done' and L[-1]['round'] == $R and all(not x['final'] for x in L[:-1]) and \
all(L[i]['round'] <= L[i + 1]['round'] for i in range(len(L) - 1))" &&
	ok "watch --json: $(wc -l <"$WORK/watch-b1.jsonl") events, the last final with round $R" ||
	bad "watch --json output: $(tail -n 2 "$WORK/watch-b1.jsonl")"
expect_rc 0 --json status && jcheck "$OUT" "d['state'] == 'done' and d['round'] == $R and \
d['rounds_planned'] == $R" "status after the run: done at round $R"
expect_rc 0 watch && [[ "$(cat "$OUT")" =~ ^done\ round\ $R/$R ]] &&
	ok "watch on a finished run prints the final line and exits 0"
expect_rc 1 start && ok "start on a done run: exit 1 ($(cat "$ERR"))"
expect_rc 1 pause && ok "pause on a done run: exit 1"
expect_rc 1 stop && ok "stop on a done run: exit 1"
expect_rc 0 metrics && grep -q '^macc_state{state="done"} 1$' "$OUT" &&
	grep -q "^macc_rounds_total $R$" "$OUT" && ok "metrics: state done, macc_rounds_total $R" ||
	bad "metrics after the run: $(grep -E '^macc_(state|rounds_total)' "$OUT" | tr '\n' ' ')"
# --- names: every JSON key and metric name of this test follows macc-ctl(8) NAMES -------------
expect_rc 0 --json version && cp "$OUT" "$WORK/version.json"
expect_rc 0 --json help && cp "$OUT" "$WORK/help.json"
expect_rc 1 --json pause && cp "$OUT" "$WORK/error.json"
expect_rc 0 --json status && cp "$OUT" "$WORK/status-done.json"
if "$PY" "$HELPER" names "$MACC_SRC/man/macc-ctl.8" "$WORK/metrics.txt" "$WORK/status1.json" \
	"$WORK/status-done.json" "$WORK/peers.json" "$WORK/audit.json" "$WORK/verify.json" \
	"$WORK/watch-names.jsonl" "$WORK/watch-b1.jsonl" "$WORK/version.json" "$WORK/help.json" \
	"$WORK/error.json" "$WORK/export.json" "$WORK/predict.json" >"$WORK/names.out"; then
	ok "names: $(cat "$WORK/names.out")"
else
	bad "JSON keys or metric names break the naming rule (see above)"
fi
kill -TERM "$PID_2"
wait_exit "$PID_2" 15 || fail "agent0 (part B) did not stop on SIGTERM"
[ "$EXIT_RC" = 0 ] || bad "agent0 (part B) exited $EXIT_RC"
wait_exit "$PID_3" 15 || fail "agent1 (part B, --exit-when-done) did not exit"
[ "$EXIT_RC" = 0 ] || bad "agent1 (part B) exited $EXIT_RC"
echo "total $((SECONDS - T0)) s"
if [ "$NBAD" -gt 0 ]; then
	echo "FAIL: $NBAD checks failed" >&2
	exit 1
fi
echo "PASS"
