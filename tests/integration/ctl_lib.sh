#!/bin/bash
# ctl_lib.sh: helpers for test_ctl.sh (sourced after agentd_lib.sh, not run).
#
# - ctl ARGS...: runs macc-ctl against $SOCK with a bound in time, output in $OUT / $ERR, exit
#   status in RC. The process is ended by pid if it overstays.
# - check / bad: soft assertions. A failed check is reported and counted, the test goes on (so
#   one run shows every problem), and the test fails at the end when any check failed.
# - $PY $HELPER ...: a small python3 program (written into $WORK) for what bash does badly:
#   JSON checks, Prometheus text format checks, free-port search, and raw bytes on the control
#   socket (a minimal msgpack encoder/decoder of its own: no modules beyond the standard ones).
CTL="$MACC_BUILD/src/ctl/macc-ctl"
[ -x "$CTL" ] || { echo "SKIP: $CTL not built"; exit 77; }
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
[ -n "$PY" ] || { echo "SKIP: python3 not found"; exit 77; }
HELPER="$WORK/ctl_helper.py"
OUT="$WORK/ctl.out"
ERR="$WORK/ctl.err"
SOCK=
RC=
NBAD=0

ok() {
	echo "ok: $*"
}

# bad MESSAGE: a failed check; the test goes on and fails at the end.
bad() {
	NBAD=$((NBAD + 1))
	echo "FAIL: $*" >&2
}

# forget PID: drop a process that has ended from the EXIT trap's list (its pid may be reused).
forget() {
	local p keep=()
	for p in "${PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

# ctl ARGS...: macc-ctl -s $SOCK ARGS, bounded by 30 s.
ctl() {
	"$CTL" -s "$SOCK" "$@" >"$OUT" 2>"$ERR" &
	local p=$!
	if ! wait_exit "$p" 30; then
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
		fail "macc-ctl $* did not finish within 30 s"
	fi
	RC=$EXIT_RC
}

# expect_rc WANT ARGS...: run macc-ctl ARGS and check its exit status; true when it matched.
expect_rc() {
	local want=$1
	shift
	ctl "$@"
	if [ "$RC" != "$want" ]; then
		bad "macc-ctl $* exited $RC, expected $want (stderr: $(head -c 300 "$ERR"))"
		return 1
	fi
	return 0
}

# jcheck FILE EXPR DESCRIPTION: FILE holds one JSON document d for which the python
# expression EXPR is true.
jcheck() {
	if "$PY" "$HELPER" json "$1" "$2"; then
		ok "$3"
	else
		bad "$3: JSON check '$2' failed on: $(head -c 600 "$1")"
	fi
}

# json_get FILE EXPR: print the value of a python expression over the JSON document d in FILE.
json_get() {
	"$PY" "$HELPER" get "$1" "$2"
}

# status_field NAME: one field of `macc-ctl --json status` on $SOCK.
status_field() {
	ctl --json status
	[ "$RC" = 0 ] || fail "status failed: $(cat "$ERR")"
	json_get "$OUT" "d['$1']"
}

# wait_state STATE SECONDS: wait until the agent at $SOCK reports STATE.
wait_state() {
	local want=$1 t=$(($2 * 5)) st
	while :; do
		st=$(status_field state)
		[ "$st" = "$want" ] && return 0
		t=$((t - 1))
		[ "$t" -gt 0 ] || return 1
		sleep 0.2
	done
}

cat >"$HELPER" <<'PY'
"""ctl_helper.py: JSON / Prometheus checks and raw control-socket tests for test_ctl.sh."""
import json
import os
import random
import re
import socket
import struct
import sys
import time


# --- minimal msgpack --------------------------------------------------------------------------
def pack(o):
    if o is None:
        return b"\xc0"
    if o is True:
        return b"\xc3"
    if o is False:
        return b"\xc2"
    if isinstance(o, int):
        if 0 <= o < 0x80:
            return bytes([o])
        if 0 <= o < 2**32:
            return b"\xce" + struct.pack(">I", o)
        if 0 <= o < 2**64:
            return b"\xcf" + struct.pack(">Q", o)
        return b"\xd3" + struct.pack(">q", o)
    if isinstance(o, float):
        return b"\xcb" + struct.pack(">d", o)
    if isinstance(o, str):
        b = o.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(o, bytes):
        return b"\xc5" + struct.pack(">H", len(o)) + o
    if isinstance(o, list):
        return b"\xdc" + struct.pack(">H", len(o)) + b"".join(pack(x) for x in o)
    if isinstance(o, dict):
        out = b"\xde" + struct.pack(">H", len(o))
        for k, v in o.items():
            out += pack(k) + pack(v)
        return out
    raise TypeError(type(o))


def unpack(b, i=0):
    t = b[i]
    i += 1

    def take(n):
        return b[i:i + n], i + n

    if t <= 0x7F:
        return t, i
    if t >= 0xE0:
        return t - 256, i
    if 0x80 <= t <= 0x8F:
        return unpack_map(b, i, t & 15)
    if 0x90 <= t <= 0x9F:
        return unpack_arr(b, i, t & 15)
    if 0xA0 <= t <= 0xBF:
        s, j = take(t & 31)
        return s.decode(), j
    if t == 0xC0:
        return None, i
    if t in (0xC2, 0xC3):
        return t == 0xC3, i
    fixed = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
             0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
    if t in fixed:
        n = struct.calcsize(fixed[t])
        s, j = take(n)
        return struct.unpack(fixed[t], s)[0], j
    lens = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4,
            0xDC: 2, 0xDD: 4, 0xDE: 2, 0xDF: 4}
    if t in lens:
        w = lens[t]
        n = int.from_bytes(b[i:i + w], "big")
        i += w
        if t in (0xC4, 0xC5, 0xC6):
            return b[i:i + n], i + n
        if t in (0xD9, 0xDA, 0xDB):
            return b[i:i + n].decode(), i + n
        if t in (0xDC, 0xDD):
            return unpack_arr(b, i, n)
        return unpack_map(b, i, n)
    raise ValueError("msgpack type 0x%02x not handled" % t)


def unpack_map(b, i, n):
    d = {}
    for _ in range(n):
        k, i = unpack(b, i)
        v, i = unpack(b, i)
        d[k] = v
    return d, i


def unpack_arr(b, i, n):
    a = []
    for _ in range(n):
        v, i = unpack(b, i)
        a.append(v)
    return a, i


def frame(body):
    return struct.pack(">I", len(body)) + body


def req(cmd, rid, v=1, args=None):
    m = {"v": v, "id": rid, "cmd": cmd}
    if args is not None:
        m["args"] = args
    return frame(pack(m))


class Conn:
    def __init__(self, path, timeout=5.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def reply(self):
        """The next reply as a dict, or None at EOF."""
        if not self._fill(4):
            return None
        n = struct.unpack(">I", self.buf[:4])[0]
        if n > 16 * 1024 * 1024:
            raise ValueError("reply frame of %d bytes" % n)
        if not self._fill(4 + n):
            raise ValueError("EOF inside a reply frame")
        body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        d, used = unpack(body)
        if used != n or not isinstance(d, dict):
            raise ValueError("reply is not one msgpack map")
        return d

    def eof(self, within=5.0):
        """True if the daemon closes the connection within the time (after any replies)."""
        self.s.settimeout(within)
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


FAILS = []


def expect(cond, what):
    if cond:
        print("ok: raw: " + what)
    else:
        print("FAIL: raw: " + what, file=sys.stderr)
        FAILS.append(what)


def status_ok(path, rid=9000):
    c = Conn(path)
    c.send(req("status", rid))
    r = c.reply()
    c.close()
    return r is not None and r.get("status") == 0 and r.get("id") == rid and \
        isinstance(r.get("data"), dict) and "state" in r["data"]


def raw_tests(path):
    # 1. Version mismatch: a `version` reply (not a silent close) carrying the daemon's version,
    #    checked before the command name; the connection stays usable.
    c = Conn(path)
    c.send(req("status", 41, v=2))
    r = c.reply()
    expect(r is not None and r.get("status") == 2 and r.get("id") == 41 and r.get("v") == 1
           and "version" in str(r.get("error", "")),
           "v=2 request answered with status 2 (version), id echoed, v=1: %r" % (r,))
    c.send(req("no-such-command", 42, v=7))
    r = c.reply()
    expect(r is not None and r.get("status") == 2,
           "version is checked before the command name: %r" % (r,))
    c.send(req("status", 43))
    r = c.reply()
    expect(r is not None and r.get("status") == 0 and r.get("id") == 43 and "data" in r,
           "after a version mismatch the same connection serves a v=1 status")
    c.close()

    # 2. Malformed and invalid requests on one connection: each one answered, in order, with
    #    its status, and the connection keeps working.
    cases = [
        (frame(pack(5)), 1, "a msgpack integer instead of a map"),
        (frame(b"\x83\xa1v"), 1, "a truncated msgpack map"),
        (frame(pack({"v": 1, "id": 3})), 1, "a map without cmd"),
        (frame(pack({"v": "1", "id": 4, "cmd": "status"})), 1, "a string version"),
        (frame(pack({"v": 1, "id": 5, "cmd": 17})), 1, "a non-string cmd"),
        (frame(b""), 1, "an empty frame"),
        (frame(pack({"v": 1, "id": 6, "cmd": "status"}) + b"\x00"), 1,
         "trailing bytes after the map"),
        (req("launch-missiles", 7), 3, "an unknown command"),
        (req("status", 8, args=[1]), 4, "args that are not a map"),
        (req("status", 9, args={"verbose": True}), 4, "an argument status does not take"),
        (req("log-level", 10, args={"level": "loud"}), 4, "log-level with an invalid level"),
        (req("log-level", 11), 4, "log-level without a level"),
        (req("log-level", 12, args={"level": 3}), 4, "log-level with a non-string level"),
    ]
    c = Conn(path)
    for data, want, what in cases:
        c.send(data)
        r = c.reply()
        expect(r is not None and r.get("status") == want and r.get("error"),
               "%s -> status %d with an error text (got %r)" % (what, want, r))
    c.send(req("status", 99))
    r = c.reply()
    expect(r is not None and r.get("status") == 0 and r.get("id") == 99,
           "the connection still serves status after %d bad requests" % len(cases))
    c.close()

    # 3. Oversized frame headers: a too-big reply, then the daemon closes the connection.
    for n in (1024 * 1024 + 1, 0x7FFFFFFF, 0xFFFFFFFF):
        c = Conn(path)
        c.send(struct.pack(">I", n) + b"\x81")
        r = c.reply()
        expect(r is not None and r.get("status") == 6, "frame header of %d -> too-big" % n)
        expect(c.eof(5), "connection closed after the too-big reply (%d)" % n)
        c.close()
    # A frame exactly at the limit is read in full and judged on its content (malformed).
    c = Conn(path)
    c.send(struct.pack(">I", 1024 * 1024) + b"\xc1" * (1024 * 1024))
    r = c.reply()
    expect(r is not None and r.get("status") == 1, "a 1 MiB frame of junk -> malformed")
    c.close()

    # 4. Random garbage: whatever comes back is a well-formed error reply, then close or silence.
    rnd = random.Random(6)
    for k in range(5):
        c = Conn(path)
        try:
            c.send(bytes(rnd.getrandbits(8) for _ in range(4096 if k else 65536)))
            n_err = 0
            while True:
                r = c.reply()
                if r is None:
                    break
                expect(r.get("status", 0) != 0, "garbage reply is an error (%r)" % (r,))
                n_err += 1
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            pass
        c.close()
    expect(status_ok(path), "status works after 5 connections of random garbage")

    # 5. Half frames then disconnect; a client that connects and says nothing.
    for k in range(20):
        c = Conn(path)
        if k % 2 == 0:
            c.send(struct.pack(">I", 100) + b"\x85" + b"x" * 9)
        c.close()
    c = Conn(path)
    c.send(struct.pack(">I", 30)[:2])
    c.close()
    expect(status_ok(path), "status works after 21 half frames and 10 silent clients")

    # 6. A client stuck in the middle of a frame does not hold up the others.
    stuck = Conn(path)
    stuck.send(struct.pack(">I", 200) + b"\x83")
    t0 = time.monotonic()
    okk = status_ok(path)
    dt = time.monotonic() - t0
    expect(okk and dt < 2.0, "another client is served in %.3f s while one is mid-frame" % dt)
    stuck.send(b"\x00" * 199)  # completes a 200-byte junk frame: malformed, still answered
    r = stuck.reply()
    expect(r is not None and r.get("status") == 1, "the completed junk frame -> malformed")
    stuck.close()

    # 7. A request sent one byte at a time.
    c = Conn(path)
    for byte in req("version", 77):
        c.send(bytes([byte]))
        time.sleep(0.003)
    r = c.reply()
    expect(r is not None and r.get("status") == 0 and r.get("id") == 77,
           "a request sent byte by byte is answered (%r)" % (r,))
    c.close()

    # 8. Pipelining: 40 requests in one write are all answered, in order (more than one loop
    #    turn's budget, so the deferral path runs too).
    c = Conn(path)
    c.send(b"".join(req(("status", "peers", "version", "metrics")[k % 4], 100 + k)
                    for k in range(40)))
    ids = []
    for _ in range(40):
        r = c.reply()
        if r is None or r.get("status") != 0:
            break
        ids.append(r.get("id"))
    expect(ids == list(range(100, 140)), "40 pipelined requests answered in order (%d)"
           % len(ids))
    c.close()

    # 9. Too many clients: beyond the limit (64) new connections get `busy` and are closed;
    #    the ones inside the limit are served; all slots come back afterwards.
    conns = []
    for _ in range(72):
        conns.append(Conn(path))
    time.sleep(0.3)
    n_ok = n_busy = n_other = 0
    for k, c in enumerate(conns):
        try:
            c.send(req("status", 500 + k))
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            r = c.reply()
        except (socket.timeout, ConnectionResetError):
            r = None
        if r is not None and r.get("status") == 0:
            n_ok += 1
        elif r is not None and r.get("status") == 9:
            n_busy += 1
        else:
            n_other += 1
    for c in conns:
        c.close()
    expect(n_busy >= 1 and n_ok >= 56 and n_other == 0,
           "72 clients at once: %d served, %d told busy, %d other" % (n_ok, n_busy, n_other))
    time.sleep(0.3)
    expect(status_ok(path), "status works after the busy storm")
    return 1 if FAILS else 0


# --- other subcommands ------------------------------------------------------------------------
PROM_SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*,?)?\})? '
    r'([-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|Inf|NaN))( -?[0-9]+)?$')


def prom_check(text, required):
    """Errors found in a Prometheus text exposition (empty list: well-formed, names present)."""
    errs = []
    types, helps, samples = {}, set(), []
    if not text.endswith("\n"):
        errs.append("does not end with a newline")
    for ln, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP "):
            parts = line.split(" ", 3)
            if len(parts) < 4 or not re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", parts[2]):
                errs.append("line %d: bad HELP: %r" % (ln, line))
            elif parts[2] in helps:
                errs.append("line %d: second HELP for %s" % (ln, parts[2]))
            else:
                helps.add(parts[2])
        elif line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary",
                                                    "untyped"):
                errs.append("line %d: bad TYPE: %r" % (ln, line))
            elif parts[2] in types:
                errs.append("line %d: second TYPE for %s" % (ln, parts[2]))
            else:
                types[parts[2]] = parts[3]
        elif line.startswith("#") or line == "":
            if line == "":
                errs.append("line %d: empty line" % ln)
        else:
            m = PROM_SAMPLE.match(line)
            if not m:
                errs.append("line %d: bad sample: %r" % (ln, line))
                continue
            name = m.group(1)
            fam = name
            for suf in ("_bucket", "_sum", "_count"):
                if name.endswith(suf) and types.get(name[:-len(suf)]) == "histogram":
                    fam = name[:-len(suf)]
            if fam not in types:
                errs.append("line %d: sample %s before its TYPE" % (ln, name))
            samples.append((name, m.group(2) or "", m.group(3)))
    for fam, t in types.items():
        if fam not in helps:
            errs.append("%s has TYPE but no HELP" % fam)
        if t == "counter" and not fam.endswith("_total"):
            errs.append("counter %s does not end in _total" % fam)
        if t == "histogram":
            buckets = [(s[1], float(s[2])) for s in samples if s[0] == fam + "_bucket"]
            count = [float(s[2]) for s in samples if s[0] == fam + "_count"]
            if not buckets or 'le="+Inf"' not in buckets[-1][0] or len(count) != 1:
                errs.append("histogram %s lacks +Inf bucket or _count" % fam)
            else:
                vals = [b[1] for b in buckets]
                if vals != sorted(vals):
                    errs.append("histogram %s buckets not cumulative" % fam)
                if vals[-1] != count[0]:
                    errs.append("histogram %s: +Inf bucket %g != count %g"
                                % (fam, vals[-1], count[0]))
            if not any(s[0] == fam + "_sum" for s in samples):
                errs.append("histogram %s lacks _sum" % fam)
    for r in required:
        # NAME: a family with a TYPE line; NAME{...}: a sample with these labels exists.
        if "{" in r:
            name, lab = r.split("{", 1)
            want = "{" + lab
            if not any(s[0] == name and s[1].startswith(want.rstrip("}")) for s in samples):
                errs.append("no sample %s" % r)
        elif ":" in r:
            name, t = r.split(":")
            if types.get(name) != t:
                errs.append("%s is not a %s (TYPE %s)" % (name, t, types.get(name)))
        elif r not in types:
            errs.append("metric %s missing" % r)
    return errs


# --- the naming rule of macc-ctl(8) NAMES ---------------------------------------------------------
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
# unit words that must not appear in a name: SI base units only, spelled out
BAD_WORDS = {"ms", "s", "sec", "secs", "msec", "us", "ns", "min", "mins", "kb", "kib", "mb", "mib",
             "gb", "gib", "pct", "percent", "in", "out"}
SUFFIXES = ("_per_second", "_seconds", "_bytes", "_ratio", "_total")
# Suffixes that say the same dimension: two names with one stem and suffixes of one group (or
# one with _total and one without) are one meaning with two names. (A rate and a counter of the
# same thing, samples_per_second and samples_total, are two meanings.)
DIMENSIONS = [("_seconds", "_ms", "_s", "_us"), ("_bytes", "_kib", "_mib"), ("_ratio", "_pct"),
              ("_per_second", "_per_s")]
LOOSE = tuple(x for g in DIMENSIONS for x in g) + ("_total",)


def same_meaning(sa, sb):
    if "_total" in (sa, sb):
        return "" in (sa, sb)
    return any(sa in g and sb in g for g in DIMENSIONS)


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def suffix_of(name, table):
    for suf in table:
        if name.endswith(suf):
            return suf
    return ""


def check_value(where, k, v, errs):
    """The value fits what the name's suffix promises."""
    suf = suffix_of(k, SUFFIXES)
    if isinstance(v, bool) and suf:
        errs.append("%s: %s is a boolean but its name ends in %s" % (where, k, suf))
    elif suf == "_total":
        vals = list(v.values()) if isinstance(v, dict) else [v]
        if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in vals):
            errs.append("%s: counter %s = %r is not a count (or map of counts)" % (where, k, v))
    elif suf == "_bytes" and not (isinstance(v, int) and v >= 0):
        errs.append("%s: %s = %r is not a byte count" % (where, k, v))
    elif suf == "_ratio" and v is not None and not (is_num(v) and 0 <= v <= 1):
        errs.append("%s: %s = %r is not a ratio in [0, 1]" % (where, k, v))
    elif suf in ("_seconds", "_per_second") and v is not None and not (is_num(v) and v >= 0):
        errs.append("%s: %s = %r is not a non-negative number" % (where, k, v))


def walk_json(where, d, keys, errs):
    """Check every key of a document; collect key -> set of JSON types."""
    if isinstance(d, list):
        for x in d:
            walk_json(where, x, keys, errs)
        return
    if not isinstance(d, dict):
        return
    for k, v in d.items():
        if not NAME_RE.match(k):
            errs.append("%s: key %r is not snake_case" % (where, k))
        words = k.split("_")
        if words[-1] in BAD_WORDS or {"ms", "mib", "kib"} & set(words):
            errs.append("%s: key %r has a unit that is not an SI base unit" % (where, k))
        check_value(where, k, v, errs)
        t = "null" if v is None else "number" if is_num(v) else type(v).__name__
        keys.setdefault(k, set()).add(t)
        if k.endswith("_total") and isinstance(v, dict):
            continue  # a map from label values (reasons) to counts: not names
        walk_json(where, v, keys, errs)


def metric_families(text):
    fam = {}
    for line in text.split("\n"):
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            fam[name] = typ
    return fam


def check_names(docs, metrics_path, man_path):
    errs, keys = [], {}
    for path in docs:
        text = open(path).read()
        parts = [ln for ln in text.split("\n") if ln.strip()]
        for i, ln in enumerate(parts):
            walk_json("%s:%d" % (os.path.basename(path), i + 1), json.loads(ln), keys, errs)
    for k, ts in keys.items():
        if len(ts - {"null"}) > 1:
            errs.append("key %r has several JSON types: %s" % (k, sorted(ts)))
    fam = metric_families(open(metrics_path).read())
    for name, typ in fam.items():
        if not re.match(r"^(macc|process)_[a-z0-9]+(_[a-z0-9]+)*$", name):
            errs.append("metric %s: not macc_/process_ snake_case" % name)
        if (typ == "counter") != name.endswith("_total"):
            errs.append("metric %s (%s): _total is for counters, and only them" % (name, typ))
        if set(name.split("_")) & BAD_WORDS:
            errs.append("metric %s has a unit that is not an SI base unit" % name)
        if typ == "histogram" and not name.endswith(("_seconds", "_bytes")):
            errs.append("histogram %s has no unit" % name)
    # One meaning, one name: no two names differ only by a unit or _total.
    names = set(keys)
    for name in fam:
        names.add(re.sub(r"^macc_(peer_)?", "", name))
    stems = {}
    for n in names:
        suf = suffix_of(n, LOOSE)
        stems.setdefault(n[:len(n) - len(suf)] if suf else n, []).append((n, suf))
    for stem, group in stems.items():
        # (lists and objects are not quantities: `entries` and `entries_total` are two things)
        group = [(n, x) for n, x in group if not keys.get(n, set()) & {"list", "dict"} or
                 n.endswith("_total")]
        for a, sa in group:
            for b, sb in group:
                if a < b and same_meaning(sa, sb):
                    errs.append("%r and %r: one meaning with two names?" % (a, b))
    # Every name is documented in the man page.
    man = open(man_path).read()
    for n in sorted(set(keys) | set(fam)):
        if not re.search(r"(^|[^a-z0-9_])%s([^a-z0-9_]|$)" % re.escape(n), man):
            errs.append("%s is not documented in %s" % (n, os.path.basename(man_path)))
    return errs, len(keys), len(fam)


def main():
    cmd = sys.argv[1]
    if cmd == "names":
        # names MAN METRICS DOC...: the naming rule over JSON documents and metric families
        errs, nk, nf = check_names(sys.argv[4:], sys.argv[3], sys.argv[2])
        for e in errs:
            print("  names: " + e, file=sys.stderr)
        if not errs:
            print("%d JSON keys and %d metric families follow the rule" % (nk, nf))
        return 1 if errs else 0
    if cmd == "raw":
        return raw_tests(sys.argv[2])
    if cmd == "json":
        with open(sys.argv[2]) as f:
            d = json.load(f)
        return 0 if eval(sys.argv[3], {"d": d}) else 1
    if cmd == "get":
        with open(sys.argv[2]) as f:
            d = json.load(f)
        v = eval(sys.argv[3], {"d": d})
        print(json.dumps(v) if not isinstance(v, str) else v)
        return 0
    if cmd == "jsonl":
        # Every line one JSON object; EXPR over the list L of them.
        with open(sys.argv[2]) as f:
            lines = [ln for ln in f.read().split("\n") if ln != ""]
        L = [json.loads(ln) for ln in lines]
        return 0 if eval(sys.argv[3], {"L": L}) else 1
    if cmd == "prom":
        text = open(sys.argv[2]).read()
        if sys.argv[2].endswith(".json"):
            text = json.loads(text)["metrics"]
        errs = prom_check(text, sys.argv[3:])
        for e in errs:
            print("  metrics: " + e, file=sys.stderr)
        return 1 if errs else 0
    print("unknown helper command " + cmd, file=sys.stderr)
    return 2


sys.exit(main())
PY
