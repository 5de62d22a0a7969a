#!/bin/bash
# test_log_injection.sh: strings chosen by a peer or a control client reach the
# log, and the operator's terminal, escaped. Each carries a newline followed by a forged line
# "error: [a1] forged-..." and terminal escape sequences:
#   - the HELLO name of a client whose key is not allow-listed (quoted in the refusal);
#   - the HELLO algorithm of a configured key (quoted in the model-mismatch refusal);
#   - the BYE text of an allow-listed peer after a valid session;
#   - the command name of a control request.
# Before the fix the first three reached the log raw: a line starting with "error: [a1]" was
# forged. Expected: no log line starts with a forged prefix, no control byte (ESC, BEL, CR) is
# in the log, and each string appears escaped (\x0a, \x1b, ...). Both encrypt modes.
. "$(dirname "$0")/faults_lib.sh"
encrypt_modes "$@"

hostile_fleet
"$CTL" genkey >"$WORK/stranger.key"
chmod 600 "$WORK/stranger.key"
adv name.out --key "$WORK/stranger.key" --rounds 0 --flood-ms 0 \
	--name $'x\nerror: [a1] forged-name\e[2J\e]0;pwned\a'
[ "$ADV_RC" = 1 ] || fail "the unknown key was not refused: $(cat "$WORK/name.out")"
adv algo.out --key "$FLEET/agent2/agent.key" --rounds 0 --flood-ms 0 \
	--algo $'d\nerror: [a1] forged-model\e[31m'
[ "$ADV_RC" = 1 ] || fail "the other algorithm was not refused: $(cat "$WORK/algo.out")"
adv bye.out --key "$FLEET/agent2/agent.key" --echo 5 --hold-ms 5000 \
	--bye $'bye\r\nerror: [a1] forged-bye\e[2K'
[ "$ADV_RC" = 0 ] || fail "adversary (BYE): $(cat "$WORK/bye.out")"
grep -q "^sent bye 1" "$WORK/bye.out" || fail "no BYE sent: $(cat "$WORK/bye.out")"
python3 - "$FLEET/agent0/ctl.sock" <<'PY' || fail "control request"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
name = b"status\nerror: [a1] forged-ctl\x1b[2J"
body = b"\x83\xa1v\x01\xa2id\x01\xa3cmd" + bytes([0xa0 | len(name)]) + name
s.sendall(struct.pack(">I", len(body)) + body)
s.settimeout(10)
n = struct.unpack(">I", s.recv(4))[0]
PY
sleep 1
log="$WORK/agent0.log"
if grep -En '^[a-z]*: \[a1\]|^error: \[a1\]|forged' "$log" | grep -Ev '\\x0a|forged-ctl' | grep -q .; then
	grep -En 'forged' "$log" >&2
	fail "a forged line reached the log"
fi
grep -Eq '^(error|warn|info|debug): \[a1\]' "$log" && fail "a line with a forged prefix"
LC_ALL=C grep -q $'[\e\a\r]' "$log" && fail "a control byte reached the log"
for what in forged-name forged-model forged-bye; do
	grep -Fq "\\x0aerror: [a1] $what" "$log" || fail "'$what' does not appear escaped in the log"
done
grep -Fq '\x0d\x0aerror: [a1] forged-bye\x1b[2K' "$log" || fail "the BYE text is not escaped"
echo "ok: the HELLO name, the HELLO algorithm, the BYE text and the control command are escaped in the log"
grep -F 'forged' "$log" | head -n 4
# macc-ctl: nothing raw on the terminal either.
"$CTL" -s "$FLEET/agent0/ctl.sock" status >"$WORK/status.txt" || fail "status"
"$CTL" -s "$FLEET/agent0/ctl.sock" peers >>"$WORK/status.txt" || fail "peers"
LC_ALL=C grep -q $'[\e\a\r]' "$WORK/status.txt" && fail "a control byte in macc-ctl's output"
alive 0
echo "PASS"
