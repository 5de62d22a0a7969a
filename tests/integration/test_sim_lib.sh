#!/bin/bash
# test_sim_lib.sh - shared helpers for the macc-sim integration tests (sourced, not run).
#
# Finds the binary through $MACC_BUILD, skips (exit 77, meson's SKIP) when Fashion-MNIST is not
# installed, gives every test a scratch directory removed on exit, and bounds every run in time.

SIM=${MACC_BUILD:?MACC_BUILD not set}/src/sim/macc-sim
TMP=$(mktemp -d "${TMPDIR:-/tmp}/macc-sim-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

need_data() {
	local d=${MACC_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
	if [ ! -r "$d/train-images-idx3-ubyte.gz" ] && [ ! -r "$d/train-images-idx3-ubyte" ]; then
		echo "SKIP: Fashion-MNIST not found in $d (install dataset-fashion-mnist)"
		exit 77
	fi
}

# sim SECONDS ARGS...: run macc-sim bounded in time, stdout to $TMP/out, stderr to $TMP/err.
sim() {
	local secs=$1
	shift
	timeout --kill-after=5 "$secs" "$SIM" "$@" >"$TMP/out" 2>"$TMP/err"
}

# kv KEY FILE: the value of KEY= on the last line of FILE.
kv() {
	tail -n 1 "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# ge A B: true if the number A >= B.
ge() {
	awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'
}
