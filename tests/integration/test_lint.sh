#!/bin/bash
# test_lint.sh (suite 'lint'): static checks of everything that is not C.
#
#   1. shellcheck on every shell script under deploy/ examples/ tests/ .ci/ (files named *.sh and
#      files whose first line is a sh/bash shebang), plus macc-ctl's bash completion;
#   2. mandoc -T lint on every man page: any warning or error fails;
#   3. systemd-analyze verify on the configured units (ExecStart pointed at the build's
#      macc-agentd, so the binary path resolves), and systemd-analyze security --offline=true
#      with an exposure level of 2.0 or lower;
#   4. the sysusers.d and tmpfiles.d snippets applied to a scratch root;
#   5. docker-compose config on the Compose demo, and a structural check of the Dockerfile.
# Every tool comes from deploy/install-deps.sh, so a missing tool is a failure, not a skip.
# Environment: MACC_SRC (source tree) and MACC_BUILD (build tree), set by meson test.
set -uo pipefail

src=${MACC_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${MACC_BUILD:-$src/build}
tmp=$(mktemp -d /tmp/macc-lint.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

failures=0
fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}
pass() {
	echo "ok: $*"
}
need() {
	local t
	for t in "$@"; do
		if ! command -v "$t" >/dev/null 2>&1; then
			fail "$t is not installed (deploy/install-deps.sh installs it)"
			return 1
		fi
	done
}

# --- 1. shell scripts --------------------------------------------------------------------------
# The files under version control (what CI's clone has), or every file outside a git checkout.
list_files() {
	if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
		git -C "$src" ls-files -z -- deploy examples tests .ci |
			grep -zv -e '^tests/fuzz/corpus/' -e '^tests/data/'
	else
		(cd "$src" && find deploy examples tests .ci -type f -not -path 'tests/fuzz/corpus/*' \
			-not -path 'tests/data/*' -print0 2>/dev/null)
	fi
}
if need shellcheck; then
	scripts=()
	while IFS= read -r -d '' f; do
		case $f in
		*.sh) scripts+=("$f") ;;
		*)
			if head -n 1 "$f" 2>/dev/null | grep -Eq '^#!.*[/ ](ba|da)?sh([[:space:]]|$)'; then
				scripts+=("$f")
			fi
			;;
		esac
	done < <(list_files)
	if [ "${#scripts[@]}" -eq 0 ]; then
		fail "no shell scripts found under $src (wrong MACC_SRC?)"
	fi
	for f in "${scripts[@]}"; do
		if (cd "$src" && shellcheck -x -S warning --source-path=SCRIPTDIR "$f") >"$tmp/sc.out" 2>&1; then
			pass "shellcheck $f"
		else
			fail "shellcheck $f"
			cat "$tmp/sc.out" >&2
		fi
	done
	if [ -f "$src/deploy/macc-ctl.bash-completion" ]; then
		if (cd "$src" && shellcheck -s bash deploy/macc-ctl.bash-completion) >"$tmp/sc.out" 2>&1; then
			pass "shellcheck deploy/macc-ctl.bash-completion"
		else
			fail "shellcheck deploy/macc-ctl.bash-completion"
			cat "$tmp/sc.out" >&2
		fi
	fi
fi

# --- 2. man pages ------------------------------------------------------------------------------
if need mandoc; then
	# Every page under man/ (the expected ones must be there), each installed by man/meson.build.
	for page in macc-sim.1 macc.conf.5 macc-agentd.8 macc-ctl.8 macc-protocol.7 macc-algorithms.7; do
		[ -f "$src/man/$page" ] || fail "man/$page is missing"
	done
	for path in "$src"/man/*.[1-9]; do
		[ -f "$path" ] || continue
		page=${path##*/}
		grep -q "'$page'" "$src/man/meson.build" ||
			fail "man/$page is not installed by man/meson.build"
		# -W warning: report warnings and worse (style notes such as cross-references to pages
		# that are not installed yet are not failures); the exit status alone misses warnings.
		mandoc -T lint -W warning "$src/man/$page" >"$tmp/mandoc.out" 2>&1
		if grep -Eq ': (WARNING|ERROR|UNSUPP|BADARG)' "$tmp/mandoc.out"; then
			fail "mandoc -T lint man/$page"
			cat "$tmp/mandoc.out" >&2
		else
			pass "mandoc -T lint man/$page"
		fi
	done
fi

# --- 3. systemd units --------------------------------------------------------------------------
agentd="$build/src/agentd/macc-agentd"
if need systemd-analyze; then
	[ -x "$agentd" ] || fail "$agentd is not built (systemd-analyze verify needs the ExecStart binary)"
	mkdir -p "$tmp/units"
	for unit in macc-agentd.service macc-agentd@.service; do
		if [ ! -f "$build/deploy/$unit" ]; then
			fail "$build/deploy/$unit was not configured by meson"
			continue
		fi
		# The installed unit names the prefix's sbin; point it at the build's binary instead.
		sed -E "s|^(Exec[A-Za-z]*=)[^ ]*/macc-agentd|\\1$agentd|" "$build/deploy/$unit" \
			>"$tmp/units/$unit"
		grep -q "^ExecStart=$agentd " "$tmp/units/$unit" ||
			fail "$unit: ExecStart does not run macc-agentd"
	done
	ln -sf 'macc-agentd@.service' "$tmp/units/macc-agentd@lint.service"
	for unit in macc-agentd.service macc-agentd@lint.service; do
		[ -f "$tmp/units/$unit" ] || continue
		if (cd "$tmp/units" && systemd-analyze verify --man=no "./$unit") >"$tmp/verify.out" 2>&1 &&
			! [ -s "$tmp/verify.out" ]; then
			pass "systemd-analyze verify $unit"
		else
			fail "systemd-analyze verify $unit"
			cat "$tmp/verify.out" >&2
		fi
		(cd "$tmp/units" && systemd-analyze security --offline=true --no-pager "./$unit") \
			>"$tmp/sec.out" 2>&1
		score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' "$tmp/sec.out")
		if [ -z "$score" ]; then
			fail "systemd-analyze security $unit: no exposure level in its output"
			cat "$tmp/sec.out" >&2
		elif awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
			pass "systemd-analyze security $unit: exposure $score (<= 2.0)"
		else
			fail "systemd-analyze security $unit: exposure $score > 2.0"
			grep '✗' "$tmp/sec.out" >&2
		fi
	done
	# The unit's contract with the daemon and the docs.
	u="$tmp/units/macc-agentd.service"
	for line in 'Type=notify' 'ExecStartPre=.*--check-config' "ExecReload=/bin/kill -HUP \\\$MAINPID" \
		'Restart=on-failure' 'WatchdogSec=' 'StateDirectory=macc' 'RuntimeDirectory=macc' \
		'ConfigurationDirectory=macc' 'User=macc' 'CapabilityBoundingSet=$' 'UMask=0077'; do
		grep -Eq "^$line" "$u" 2>/dev/null || fail "macc-agentd.service lacks '$line'"
	done
fi

# --- 4. sysusers.d / tmpfiles.d ------------------------------------------------------------------
if need systemd-sysusers systemd-tmpfiles; then
	root="$tmp/root"
	mkdir -p "$root/etc"
	cp /etc/passwd /etc/group "$root/etc/"
	if systemd-sysusers --root="$root" "$src/deploy/systemd/macc.sysusers" >"$tmp/su.out" 2>&1 &&
		grep -q '^macc:' "$root/etc/passwd" && grep -q '^macc:' "$root/etc/group"; then
		pass "sysusers.d snippet creates user and group macc"
	else
		fail "systemd-sysusers macc.sysusers"
		cat "$tmp/su.out" >&2
	fi
	if systemd-tmpfiles --root="$root" --create "$src/deploy/systemd/macc.tmpfiles" >"$tmp/tf.out" 2>&1 &&
		[ -d "$root/etc/macc" ] && [ -d "$root/var/lib/macc" ] && [ -d "$root/run/macc" ] &&
		! [ -s "$tmp/tf.out" ]; then
		pass "tmpfiles.d snippet creates /etc/macc, /var/lib/macc, /run/macc"
	else
		fail "systemd-tmpfiles macc.tmpfiles"
		cat "$tmp/tf.out" >&2
	fi
fi

# --- 5. Docker ---------------------------------------------------------------------------------
dockerdir="$src/deploy/docker"
if need docker-compose; then
	if (cd "$dockerdir" && docker-compose -f compose.yaml config) >"$tmp/compose.out" 2>"$tmp/compose.err"; then
		pass "docker-compose config"
		# Five agents, each with its own read-only config directory and state volume, gated on
		# the generator; the generator is gen-fleet.sh.
		for i in 1 2 3 4 5; do
			grep -q "fleet/agent$i:/etc/macc:ro" "$tmp/compose.out" ||
				fail "compose: agent$i does not mount its own config read-only"
			grep -q "state$i:/var/lib/macc" "$tmp/compose.out" ||
				fail "compose: agent$i has no state volume"
		done
		grep -q 'service_completed_successfully' "$tmp/compose.out" ||
			fail "compose: agents do not wait for the key/config generator"
		grep -q 'service_healthy' "$tmp/compose.out" || fail "compose: no health-gated dependency"
		grep -q 'gen-fleet.sh' "$tmp/compose.out" || fail "compose: keygen does not run gen-fleet.sh"
	else
		fail "docker-compose config"
		cat "$tmp/compose.err" >&2
	fi
fi

# Dockerfile: no linter in Debian, so check its structure: known instructions, a build stage and
# a Debian 12 runtime stage, COPY --from naming a stage, COPY sources that exist, apt hygiene, a
# non-root USER and a HEALTHCHECK running macc-ctl status in the final stage, exec-form JSON.
if python3 - "$dockerdir/Dockerfile" "$src" >"$tmp/df.out" 2>&1 <<'EOF'
import json, os, re, sys
path, src = sys.argv[1], sys.argv[2]
errors = []
known = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
         "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
text = open(path).read()
# join continuation lines, drop comments and blank lines
logical, cur = [], ""
for raw in text.splitlines():
    line = raw.rstrip()
    if not cur and (not line.strip() or line.lstrip().startswith("#")):
        continue
    if line.endswith("\\"):
        cur += line[:-1] + " "
        continue
    logical.append(cur + line)
    cur = ""
if cur:
    errors.append("file ends inside a line continuation")
stages, final = [], None
for ins in logical:
    word = ins.split(None, 1)[0].upper()
    rest = ins.split(None, 1)[1] if " " in ins.strip() else ""
    if word not in known:
        errors.append("unknown instruction: " + ins[:60])
        continue
    if not stages and word not in ("FROM", "ARG"):
        errors.append("first instruction is not FROM: " + ins[:60])
    if word == "FROM":
        m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", rest, re.I)
        if not m:
            errors.append("bad FROM: " + rest)
            continue
        if not m.group(1).startswith("debian:bookworm"):
            errors.append("base image is not Debian 12 (bookworm): " + m.group(1))
        final = {"name": m.group(2), "user": None, "health": None, "ins": []}
        stages.append(final)
        continue
    final["ins"].append((word, rest))
    if word == "USER":
        final["user"] = rest.strip()
    if word == "HEALTHCHECK":
        final["health"] = rest
    if word in ("CMD", "ENTRYPOINT") or (word == "HEALTHCHECK" and " CMD [" in rest):
        js = rest[rest.index("CMD") + 3:] if word == "HEALTHCHECK" else rest
        try:
            v = json.loads(js)
            assert isinstance(v, list) and all(isinstance(x, str) for x in v)
        except Exception:
            errors.append(word + " is not exec-form JSON: " + rest)
    if word == "RUN" and "apt-get install" in rest:
        if "--no-install-recommends" not in rest:
            errors.append("apt-get install without --no-install-recommends")
        if "rm -rf /var/lib/apt/lists" not in rest:
            errors.append("apt-get install without cleaning /var/lib/apt/lists")
        if "apt-get update" not in rest:
            errors.append("apt-get install without apt-get update in the same RUN")
    if word == "COPY":
        args = [a for a in rest.split() if not a.startswith("--")]
        frm = re.search(r"--from=(\S+)", rest)
        if frm:
            names = [s["name"] for s in stages[:-1]]
            if frm.group(1) not in names:
                errors.append("COPY --from=%s names no earlier stage" % frm.group(1))
        elif len(args) >= 2:
            for a in args[:-1]:
                if a != "." and not os.path.exists(os.path.join(src, a)):
                    errors.append("COPY source %s does not exist in the tree" % a)
if len(stages) < 2:
    errors.append("not multi-stage (%d FROM)" % len(stages))
if final:
    if not final["user"] or final["user"].split(":")[0] in ("root", "0"):
        errors.append("final stage does not switch to a non-root USER")
    if not final["health"] or "macc-ctl" not in final["health"] or "status" not in final["health"]:
        errors.append("final stage has no HEALTHCHECK running macc-ctl status")
    if any(w == "RUN" and "meson" in r for w, r in final["ins"]):
        errors.append("final stage builds (meson): build in the first stage only")
opts = open(os.path.join(src, "meson_options.txt")).read()
for o in re.findall(r"-D(\w+)=", text):
    if "'%s'" % o not in opts:
        errors.append("meson option -D%s does not exist" % o)
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
EOF
then
	pass "Dockerfile structure"
else
	fail "Dockerfile structure"
	cat "$tmp/df.out" >&2
fi
# Packages the Dockerfile installs must exist in Debian 12 (checked against apt's lists when
# this machine has them: install-deps.sh runs apt-get update before installing anything).
if compgen -G '/var/lib/apt/lists/*Packages*' >/dev/null; then
	pkgs=$(sed -n '/apt-get install/,/rm -rf/p' "$dockerdir/Dockerfile" | tr -s ' \\&' '\n' |
		grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vE '^(apt-get|install|rm|y|no|update)$' | sort -u)
	for p in $pkgs; do
		apt-cache show "$p" >/dev/null 2>&1 || fail "Dockerfile installs '$p', which is not a Debian package here"
	done
	pass "Dockerfile packages known to apt ($(echo "$pkgs" | wc -w))"
else
	echo "note: no apt lists on this machine; Dockerfile package names not checked"
fi

if [ "$failures" -ne 0 ]; then
	echo "lint: $failures failure(s)" >&2
	exit 1
fi
echo "lint: all checks passed"
