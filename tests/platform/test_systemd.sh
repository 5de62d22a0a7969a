#!/bin/bash
# test_systemd.sh: the systemd units booted for real. systemd 252 runs as PID 1 in a
# systemd-nspawn container (private network: loopback only) made from the debootstrap base of
# platform_lib.sh, with this build installed into it by `meson install` (DESTDIR). Inside, the
# steps of macc-agentd(8) EXAMPLES, as root:
#   1. systemd-sysusers, systemd-tmpfiles --create: user macc, /etc/macc, /var/lib/macc, /run/macc;
#   2. first the mistake the man page used to lead to: a key only root can read. The unit's
#      ExecStartPre (--check-config as user macc) fails, and the start limit stops the restarts
#      ("Start request repeated too quickly") instead of looping forever;
#   3. keys and configs made as the man page says now; three agents on a loopback ring:
#      macc-agentd.service and two macc-agentd@ instances (a, b) side by side;
#   4. start: active (READY=1), STATUS= progress in `systemctl status`; reload (SIGHUP);
#      stopping macc-agentd checkpoints and keeps /run/macc (the instances' sockets live
#      there); started again it resumes from its checkpoint; the same for instance a;
#   5. every agent finishes: state done, STATUS= "done ... acc N%", accuracy >= FLOOR.
# Environment: MACC_BUILD (the build to install), MACC_SRC. Needs root, systemd-nspawn
# (systemd-container) and nsenter (util-linux).
. "$(dirname "$0")/platform_lib.sh"
build=${MACC_BUILD:?MACC_BUILD must point to the build directory}
FLOOR=0.70
[ "$(id -u)" = 0 ] || plat_fail "run as root (systemd-nspawn)"
command -v systemd-nspawn >/dev/null || plat_fail "systemd-nspawn not found (systemd-container)"
command -v nsenter >/dev/null || plat_fail "nsenter not found (util-linux)"
# systemd-nspawn makes its container's mounts slaves of "/" and so needs "/" to be a mount
# point: inside a plain chroot (as a fresh-machine check runs the test command) it is not, and
# nspawn fails with "Failed to mount n/a on / (MS_REC|MS_SLAVE)". That is the one case this
# stage cannot run in; it says so and exits 77 (tests/run.sh reports the stage as skipped).
if ! mountpoint -q /; then
	echo "SKIP: / is not a mount point (a chroot): systemd-nspawn cannot boot a container here"
	exit 77
fi

work=$(mktemp -d /tmp/macc-nspawn.XXXXXX)
root="$work/root"
T0=$SECONDS
NSPAWN_PID=
LEADER=
MOUNTED_RUN=
finish() {
	local rc=$? t
	if [ -n "$LEADER" ] && kill -0 "$LEADER" 2>/dev/null; then
		kill -RTMIN+4 "$LEADER" 2>/dev/null || true # systemd: poweroff
	fi
	if [ -n "$NSPAWN_PID" ]; then
		for t in $(seq 1 30); do
			kill -0 "$NSPAWN_PID" 2>/dev/null || break
			sleep 1
		done
		if kill -0 "$NSPAWN_PID" 2>/dev/null; then
			kill -TERM "$NSPAWN_PID" 2>/dev/null || true
			sleep 2
			kill -KILL "$NSPAWN_PID" 2>/dev/null || true
		fi
		wait "$NSPAWN_PID" 2>/dev/null || true
	fi
	[ -z "$MOUNTED_RUN" ] || umount /run/systemd/nspawn 2>/dev/null || true
	if [ "$rc" != 0 ] && [ -d "$root" ]; then
		echo "---- journal of the container (last 40 lines)" >&2
		tail -n 40 "$work/journal.txt" 2>/dev/null >&2 || true
	fi
	rm -rf "$work"
	exit "$rc"
}
trap finish EXIT
step() {
	echo "== systemd [$((SECONDS - T0)) s]: $*"
}
# inside CMD...: run CMD inside the booted container (all its namespaces), as root.
inside() {
	nsenter -t "$LEADER" -a -- env -i \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		LANG=C.UTF-8 "$@"
}
fail_in() {
	inside journalctl --no-pager -n 200 >"$work/journal.txt" 2>&1 || true
	plat_fail "$@"
}
wait_until() { # SECONDS CMD...: every second
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 1
	done
}
booted() {
	case $(inside systemctl is-system-running 2>/dev/null) in
	running | degraded) return 0 ;;
	esac
	return 1
}
ctl() { # SOCKET-NAME ARGS: macc-ctl against /run/macc/NAME.sock
	local s=$1
	shift
	inside macc-ctl -s "/run/macc/$s.sock" "$@"
}
round_of() {
	ctl "$1" status | sed -n 's/^round: *\([0-9]*\).*/\1/p'
}
round_at_least() {
	[ "$(round_of "$1")" -ge "$2" ]
}
state_is() {
	[ "$(ctl "$1" status | sed -n 's/^state: *//p')" = "$2" ]
}
journal_has() { # UNIT REGEX: the unit's journal has a line matching REGEX
	inside journalctl -u "$1" --no-pager | grep -q -- "$2"
}
# The start limit ended the restarts: the unit is failed (not waiting to restart) and systemd
# said so ("Start request repeated too quickly").
start_limited() {
	[ "$(inside systemctl show -p ActiveState --value "$1")" = failed ] &&
		inside journalctl -u "$1" --no-pager | grep -q 'Start request repeated too quickly'
}

step "root file system: the debootstrap base plus meson install of $build"
tar=$(base_tarball)
mkdir -p "$root"
tar -C "$root" -xf "$tar"
DESTDIR="$root" meson install -C "$build" --no-rebuild --quiet >"$work/install.log" 2>&1 ||
	{ cat "$work/install.log"; plat_fail "meson install failed"; }
for f in usr/local/sbin/macc-agentd usr/local/bin/macc-ctl \
	usr/local/lib/systemd/system/macc-agentd.service \
	usr/local/lib/systemd/system/macc-agentd@.service usr/local/lib/sysusers.d/macc.conf \
	usr/local/lib/tmpfiles.d/macc.conf; do
	[ -e "$root/$f" ] || plat_fail "meson install did not install /$f"
done

step "boot (systemd-nspawn --boot, private network)"
mkdir -p /run/systemd/nspawn
if ! mountpoint -q /run/systemd/nspawn; then
	mount -t tmpfs tmpfs /run/systemd/nspawn
	MOUNTED_RUN=1
fi
systemd-nspawn -D "$root" --boot --private-network --register=no --keep-unit \
	-M "macc-ci-$$" --console=pipe </dev/null >"$work/console.log" 2>&1 &
NSPAWN_PID=$!
# The container's PID 1 is nspawn's child named systemd (nspawn may have other, short-lived
# children while it sets the container up).
for t in $(seq 1 30); do
	LEADER=$(pgrep -P "$NSPAWN_PID" -x systemd | head -n 1 || true)
	[ -z "$LEADER" ] || break
	kill -0 "$NSPAWN_PID" 2>/dev/null || break
	sleep 1
done
if [ -z "$LEADER" ]; then
	cat "$work/console.log"
	plat_fail "systemd-nspawn did not start a container"
fi
# A container whose own systemd never finishes booting (before any macc unit is started) is a
# host that cannot run systemd-nspawn containers: seen on a host after many container runs, with
# dbus-daemon failing "Cannot setup inotify ... Permission denied" and every boot job waiting on
# it. Nothing of macc has run yet, so the stage says SKIPPED, with the evidence, not FAILED.
if ! wait_until 90 booted; then
	echo "---- the container's boot jobs and its dbus journal" >&2
	inside systemctl list-jobs --no-pager >&2 || true
	inside journalctl -u dbus --no-pager -n 20 >&2 || true
	tail -n 20 "$work/console.log" >&2
	echo "SKIP: the container's systemd did not finish booting in 90 s" \
		"($(inside systemctl is-system-running 2>&1)); this host cannot boot containers"
	exit 77
fi
echo "ok: booted: $(inside systemctl --version | head -n 1), $(inside systemctl is-system-running)"

step "sysusers, tmpfiles (as macc-agentd(8) says after meson install)"
inside systemd-sysusers
inside systemd-tmpfiles --create
inside id macc >/dev/null || fail_in "no user macc after systemd-sysusers"
[ "$(inside stat -c '%U:%G %a' /etc/macc)" = "root:macc 750" ] ||
	fail_in "/etc/macc is $(inside stat -c '%U:%G %a' /etc/macc), expected root:macc 750"
[ "$(inside stat -c '%U:%G %a' /var/lib/macc)" = "macc:macc 700" ] ||
	fail_in "/var/lib/macc is $(inside stat -c '%U:%G %a' /var/lib/macc)"
echo "ok: user macc, /etc/macc root:macc 750, /var/lib/macc macc:macc 700"

# Keys: agent (macc-agentd.service), a and b (macc-agentd@a, @b). Configs for a 3-ring.
# mkconf NAME PORT KEYFILE STATEDIR I: a config with the other two as peers
inside sh -c 'umask 077; for k in agent a b; do macc-ctl genkey > /etc/macc/$k.key; done'
declare -A pub
for k in agent a b; do
	pub[$k]=$(inside sh -c "macc-ctl pubkey < /etc/macc/$k.key")
done
mkconf() {
	local name=$1 port=$2 key=$3 st=$4 i=$5 p
	printf '[agent]\nname = %s\nlisten = 127.0.0.1:%s\nkey_file = %s\nstate_dir = %s\n' \
		"$name" "$port" "$key" "$st"
	# Sending 2 x 1.9 MB a round at 20 MB/s, a round takes at least 0.19 s, the run at least
	# 45 s whatever the CPU: long enough for STATUS=, reload, stop and resume to happen while
	# it trains (a fast CPU ends 240 unpaced rounds in a few seconds).
	printf 'max_rate = 20M\n\n'
	printf '[train]\nmodel = mlp:784-256-128-10\nrounds = 240\nlr = 0.05\nshard = %s/3\n' "$i"
	printf 'checkpoint_every = 10\nround_timeout_ms = 3000\ndead_peer_timeout_ms = 6000\n'
	printf 'threads = 1\n'
	for p in agent:7640 a:7641 b:7642; do
		[ "${p%%:*}" != "$name" ] || continue
		printf '\n[peer]\nname = %s\nendpoint = 127.0.0.1:%s\npublic_key = %s\n' \
			"${p%%:*}" "${p#*:}" "${pub[${p%%:*}]}"
	done
}
mkconf agent 7640 /etc/macc/agent.key /var/lib/macc 0 >"$work/agentd.conf"
mkconf a 7641 /etc/macc/a.key /var/lib/macc/a 1 >"$work/a.conf"
mkconf b 7642 /etc/macc/b.key /var/lib/macc/b 2 >"$work/b.conf"
for c in agentd a b; do
	install -m 0640 "$work/$c.conf" "$root/etc/macc/$c.conf"
	inside chgrp macc "/etc/macc/$c.conf"
done
# The old EXAMPLES' key: root 0600 (umask 077, made by root), unreadable by user macc.
[ "$(inside stat -c '%U %a' /etc/macc/agent.key)" = "root 600" ] || fail_in "unexpected key mode"

step "a key user macc cannot read: the unit fails and the start limit ends the restarts"
# As root without --user the check passes (root reads the key) but warns that macc, who owns
# state_dir, cannot read it; with --user macc it fails and names the file.
out=$(inside macc-agentd --check-config -c /etc/macc/agentd.conf 2>&1) ||
	fail_in "--check-config as root failed: $out"
echo "$out" | grep -q 'warning: key_file /etc/macc/agent.key: user macc.*cannot read' ||
	fail_in "--check-config as root did not warn that user macc cannot read the key: $out"
echo "ok: --check-config as root warns: $(echo "$out" | grep warning)"
if out=$(inside macc-agentd --check-config --user macc -c /etc/macc/agentd.conf 2>&1); then
	fail_in "--check-config --user macc passed with a key macc cannot read: $out"
fi
echo "$out" | grep -q 'key_file: user macc cannot read' ||
	fail_in "--check-config --user macc did not name the key: $out"
echo "ok: --check-config --user macc fails: $(echo "$out" | head -n 1)"
t_start=$SECONDS
if inside systemctl start macc-agentd >/dev/null 2>&1; then
	fail_in "macc-agentd started with an unreadable key"
fi
wait_until 120 start_limited macc-agentd ||
	fail_in "no start limit: $(inside systemctl show -p ActiveState --value macc-agentd)," \
	"$(inside systemctl show -p NRestarts --value macc-agentd) restarts"
n1=$(inside systemctl show -p NRestarts --value macc-agentd)
sleep 7 # longer than RestartSec
n2=$(inside systemctl show -p NRestarts --value macc-agentd)
[ "$n1" = "$n2" ] && [ "$(inside systemctl is-active macc-agentd)" = failed ] ||
	fail_in "restarts go on after the start limit ($n1 -> $n2)"
echo "ok: start limit after $((SECONDS - t_start)) s and $n2 restarts, then no more;" \
	"$(inside journalctl -u macc-agentd --no-pager | grep -m 1 -o 'agent.key.*' || true)"

step "keys made as macc-agentd(8) says; three agents side by side"
inside chown macc:macc /etc/macc/agent.key /etc/macc/a.key /etc/macc/b.key
inside runuser -u macc -- macc-agentd --check-config -c /etc/macc/agentd.conf >/dev/null ||
	fail_in "--check-config as user macc fails with the documented ownership"
inside systemctl reset-failed macc-agentd
inside systemctl start macc-agentd macc-agentd@a macc-agentd@b ||
	fail_in "systemctl start failed"
for u in macc-agentd macc-agentd@a macc-agentd@b; do
	[ "$(inside systemctl is-active "$u")" = active ] || fail_in "$u is not active"
done
echo "ok: three units active (Type=notify: READY=1 received)"
wait_until 120 round_at_least agentd 20 || fail_in "macc-agentd did not reach round 20"
# STATUS= is sent at most every 5 s (and on state changes): wait for one past round 0.
status_progress() {
	local re='^training round [1-9][0-9]*/240 epoch [0-9.]+ loss [0-9.]+ acc .* peers up 2/2$'
	inside systemctl show -p StatusText --value macc-agentd | grep -Eq "$re"
}
wait_until 30 status_progress || fail_in "no STATUS= progress in systemctl status:" \
	"'$(inside systemctl show -p StatusText --value macc-agentd)'"
status=$(inside systemctl show -p StatusText --value macc-agentd)
echo "ok: systemctl status shows '$status'"

step "reload, stop with checkpoint, resume"
inside systemctl reload macc-agentd || fail_in "systemctl reload failed"
wait_until 20 journal_has macc-agentd 'reloaded' ||
	fail_in "no 'reloaded' in the journal after systemctl reload"
[ "$(inside systemctl is-active macc-agentd)" = active ] || fail_in "inactive after reload"
echo "ok: reload"
r_stop=$(round_of agentd)
inside systemctl stop macc-agentd
journal_has macc-agentd 'finishing the round, checkpointing, leaving' ||
	fail_in "macc-agentd did not checkpoint on stop"
for s in a b; do
	inside test -S "/run/macc/$s.sock" ||
		fail_in "stopping macc-agentd removed /run/macc/$s.sock"
done
echo "ok: stopped at round $r_stop with a checkpoint; /run/macc/a.sock and b.sock still there"
inside systemctl start macc-agentd || fail_in "restart failed"
wait_until 30 journal_has macc-agentd 'resumed from .* at round [1-9]' ||
	fail_in "macc-agentd did not resume from a checkpoint"
echo "ok: macc-agentd $(inside journalctl -u macc-agentd --no-pager |
	grep -o 'resumed from .* at round [0-9]*' | tail -n 1)"
inside systemctl restart macc-agentd@a || fail_in "restart of macc-agentd@a failed"
wait_until 30 journal_has macc-agentd@a 'resumed from .* at round [1-9]' ||
	fail_in "macc-agentd@a did not resume from a checkpoint"
echo "ok: macc-agentd@a restarted and resumed"

step "training to the end"
for s in agentd a b; do
	wait_until 600 state_is "$s" "done" || fail_in "agent $s did not finish within 600 s"
done
for u in macc-agentd macc-agentd@a macc-agentd@b; do
	st=$(inside systemctl show -p StatusText --value "$u")
	acc=$(echo "$st" | sed -n 's/^done round 240\/240 .* acc \([0-9.]*\)% .*/\1/p')
	[ -n "$acc" ] || fail_in "$u: StatusText at the end is '$st'"
	awk -v a="$acc" -v f="$FLOOR" 'BEGIN { exit !(a / 100 >= f) }' ||
		fail_in "$u ended at $acc %, below $FLOOR"
	echo "ok: $u: $st"
done
inside systemctl stop macc-agentd macc-agentd@a macc-agentd@b
echo "ok: total $((SECONDS - T0)) s"
echo "PASS"
