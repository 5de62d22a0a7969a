#!/bin/bash
# platform_lib.sh: helpers for the platform stages of tests/run.sh (sourced, not run): the
# Debian 12 base root file system that the Compose stage imports as its base image and the
# systemd stage boots, and the Docker engine.
#
# The base is made once by debootstrap (minbase, plus systemd and the runtime libraries) and
# kept as a tarball in $MACC_CI_CACHE (default /var/cache/macc-ci): the stages of one run share
# it, and a later run reuses it while it is younger than $MACC_BASE_MAX_AGE_DAYS (7) and was
# made from the same package list. No registry is needed: the packages come from Debian's
# mirror, like everything apt installs here.
set -euo pipefail

MACC_CI_CACHE=${MACC_CI_CACHE:-/var/cache/macc-ci}
MACC_BASE_MAX_AGE_DAYS=${MACC_BASE_MAX_AGE_DAYS:-7}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# systemd for the nspawn boot; the runtime libraries and Fashion-MNIST for macc itself.
BASE_PACKAGES="systemd,systemd-sysv,dbus,libuv1,libsodium23,libmsgpackc2,libopenblas0-pthread,libssl3,libprotobuf-c1"
BASE_PACKAGES="$BASE_PACKAGES,zlib1g,dataset-fashion-mnist"
BASE_TAR="$MACC_CI_CACHE/bookworm-base.tar"
# Recorded beside the tarball: a tarball made from another package list or by an older recipe
# (BASE_RECIPE) is made again.
BASE_RECIPE=2

plat_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# base_tarball: make sure $BASE_TAR exists and is current; prints its path.
base_tarball() {
	local stamp="$BASE_TAR.packages" root
	mkdir -p "$MACC_CI_CACHE"
	if [ -s "$BASE_TAR" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$BASE_RECIPE $BASE_PACKAGES" ] &&
		[ -n "$(find "$BASE_TAR" -mtime -"$MACC_BASE_MAX_AGE_DAYS" 2>/dev/null)" ]; then
		echo "$BASE_TAR"
		return 0
	fi
	command -v debootstrap >/dev/null || plat_fail "debootstrap is not installed"
	root=$(mktemp -d "$MACC_CI_CACHE/root.XXXXXX")
	echo "platform: debootstrap bookworm into $root" >&2
	if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$root" \
		"$DEBIAN_MIRROR" >"$MACC_CI_CACHE/debootstrap.log" 2>&1; then
		tail -n 20 "$MACC_CI_CACHE/debootstrap.log" >&2
		rm -rf "$root"
		plat_fail "debootstrap failed (log: $MACC_CI_CACHE/debootstrap.log)"
	fi
	# The suites a bookworm image has, so apt inside the base sees the current packages.
	cat >"$root/etc/apt/sources.list" <<SRC
deb $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SRC
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
	# The tarball's "." becomes the container's "/": mktemp made it 0700, and a "/" that only
	# root may search breaks every unprivileged process inside (dbus-daemon's "Cannot setup
	# inotify ... Permission denied" hung the nspawn boot; user macc could not exec anything).
	chmod 0755 "$root"
	tar -C "$root" -cf "$BASE_TAR.tmp" .
	rm -rf "$root"
	mv "$BASE_TAR.tmp" "$BASE_TAR"
	echo "$BASE_RECIPE $BASE_PACKAGES" >"$stamp"
	echo "$BASE_TAR"
}

# DOCKERD_PID is set when ensure_dockerd started the engine (stop_dockerd stops only that one).
DOCKERD_PID=
ensure_dockerd() {
	local t
	if docker info >/dev/null 2>&1; then
		return 0
	fi
	command -v dockerd >/dev/null || plat_fail "no Docker engine: dockerd is not installed"
	mkdir -p "$MACC_CI_CACHE"
	dockerd >"$MACC_CI_CACHE/dockerd.log" 2>&1 &
	DOCKERD_PID=$!
	for t in $(seq 1 60); do
		if docker info >/dev/null 2>&1; then
			echo "platform: started dockerd (pid $DOCKERD_PID) in $t s" >&2
			return 0
		fi
		if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
			# The engine cannot run here at all (no cgroups, no iptables, no overlay
			# in this container or chroot): the stage cannot run, which is not a defect
			# of macc. Said loudly; tests/run.sh reports the stage as SKIPPED.
			tail -n 20 "$MACC_CI_CACHE/dockerd.log" >&2
			DOCKERD_PID=
			echo "SKIP: dockerd exited at start in this environment (log above)"
			exit 77
		fi
		sleep 1
	done
	tail -n 20 "$MACC_CI_CACHE/dockerd.log" >&2
	plat_fail "the Docker engine did not answer in 60 s (log: $MACC_CI_CACHE/dockerd.log)"
}

stop_dockerd() {
	local t
	[ -n "$DOCKERD_PID" ] || return 0
	kill -TERM "$DOCKERD_PID" 2>/dev/null || return 0
	for t in $(seq 1 30); do
		kill -0 "$DOCKERD_PID" 2>/dev/null || { DOCKERD_PID=; return 0; }
		sleep 1
	done
	echo "platform: dockerd (pid $DOCKERD_PID) still running after 30 s" >&2
}
