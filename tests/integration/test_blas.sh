#!/bin/bash
# test_blas.sh - the OpenBLAS kernel choice in the real programs (src/nn/blas.c).
#
# OPENBLAS_VERBOSE=2 makes OpenBLAS print "Core: NAME" each time it loads, so the stderr of a run
# shows every image the program went through. Checked, on a tiny generated CSV set (no download):
#   - by default macc-sim runs the kernel it reports (blas= on its last line) and loads OpenBLAS
#     once when it kept OpenBLAS's pick, twice when it upgraded it;
#   - a kernel asked for (--blas-kernel, MACC_BLAS_KERNEL, the daemon's [train] blas_kernel; the
#     command line first) is loaded by one re-exec, self-tested and reported;
#   - a kernel whose self-test fails (MACC_BLAS_SELFTEST_FAULT) is left for the previous one
#     after exactly one more exec (no loop), and the run goes on;
#   - a kernel the CPU cannot run is refused without being loaded; an unknown name is a usage
#     error naming it;
#   - macc-agentd -V and macc-sim report the same kernel (the daemons and the simulator of one
#     machine compute with the same code, so their digests can match).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=test_sim_lib.sh
. "$(dirname "$0")/test_sim_lib.sh"
AGENTD=$MACC_BUILD/src/agentd/macc-agentd

case $(uname -m) in
x86_64 | i?86) ;;
*)
	echo "SKIP: the kernel choice is made on x86 only"
	exit 77
	;;
esac

# 200 + 60 rows of 8 features, 3 classes; deterministic.
awk 'BEGIN {
	s = 7
	for (i = 0; i < 260; i++) {
		line = ""
		for (k = 0; k < 8; k++) {
			s = (s * 1103515245 + 12345) % 2147483648
			line = line sprintf("%.3f,", s / 2147483648)
		}
		print line (i % 3) > (i < 200 ? "'"$TMP"'/train.csv" : "'"$TMP"'/test.csv")
	}
}'
DATA="csv:$TMP/train.csv;$TMP/test.csv"

# run [VAR=VALUE...] -- [ARGS...]: macc-sim with OPENBLAS_VERBOSE=2; status in $rc.
run() {
	local envs=()
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	shift
	rc=0
	env -u MACC_BLAS_KERNEL -u OPENBLAS_CORETYPE "${envs[@]}" OPENBLAS_VERBOSE=2 \
		timeout --kill-after=5 60 "$SIM" --model mlp:8-8-3 --data "$DATA" --rounds 2 \
		--batch 8 "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
}
cores() {
	sed -n 's/^Core: //p' "$TMP/err" | tr '\n' ' ' | sed 's/ $//'
}
blasline() {
	sed -n 's/^macc-sim: BLAS kernel //p' "$TMP/err"
}

# Default.
run --
[ "$rc" = 0 ] || fail "default run exited $rc: $(cat "$TMP/err")"
native=$(kv blas "$TMP/out")
[ -n "$native" ] || fail "no blas= in: $(tail -n 1 "$TMP/out")"
loads=$(cores)
case $(blasline) in
*"(kept;"*) [ "$loads" = "$native" ] || fail "kept $native but OpenBLAS loaded: $loads" ;;
*"(upgraded;"*)
	if [ "$(echo "$loads" | wc -w)" != 2 ] || [ "${loads##* }" != "$native" ]; then
		fail "upgraded to $native but OpenBLAS loaded: $loads"
	fi
	;;
*) fail "default choice neither kept nor upgraded: $(blasline)" ;;
esac
echo "ok: default kernel $native (loaded: $loads): $(blasline)"
first=${loads%% *} # OpenBLAS's own pick

other=Prescott
[ "$native" != Prescott ] || other=Nehalem

# Asked for on the command line, in the environment; the command line first.
run -- --blas-kernel "${other,,}"
[ "$rc" = 0 ] || fail "--blas-kernel $other exited $rc: $(cat "$TMP/err")"
[ "$(kv blas "$TMP/out")" = "$other" ] || fail "--blas-kernel $other ran $(kv blas "$TMP/out")"
[ "$(cores)" = "$first $other" ] || fail "--blas-kernel $other: OpenBLAS loaded $(cores)"
case $(blasline) in
*"(as asked;"*"$other asked by command line"*"sgemm self-test passed"*) ;;
*) fail "--blas-kernel $other: $(blasline)" ;;
esac
echo "ok: --blas-kernel $other: $(blasline)"
run MACC_BLAS_KERNEL="$other" --
[ "$rc" = 0 ] || fail "MACC_BLAS_KERNEL=$other exited $rc"
[ "$(kv blas "$TMP/out")" = "$other" ] || fail "MACC_BLAS_KERNEL=$other: $(blasline)"
blasline | grep -q "asked by MACC_BLAS_KERNEL" || fail "source not named: $(blasline)"
run MACC_BLAS_KERNEL="$other" -- --blas-kernel auto
[ "$(kv blas "$TMP/out")" = "$other" ] || fail "--blas-kernel auto dropped MACC_BLAS_KERNEL"
run MACC_BLAS_KERNEL=Core2 -- --blas-kernel "$other"
[ "$(kv blas "$TMP/out")" = "$other" ] || fail "the command line did not win over the environment"
echo "ok: MACC_BLAS_KERNEL, and --blas-kernel before it"

# A self-test failure: back to the kernel it came from, after one more exec, and the run goes on.
run MACC_BLAS_KERNEL="$other" MACC_BLAS_SELFTEST_FAULT="$other" --
[ "$rc" = 0 ] || fail "fallback run exited $rc: $(cat "$TMP/err")"
[ "$(kv blas "$TMP/out")" = "$first" ] || fail "after a failed self-test ran $(kv blas "$TMP/out")"
[ "$(cores)" = "$first $other $first" ] || fail "fallback: OpenBLAS loaded $(cores) (a loop?)"
blasline | grep -q "(fallback;.*$other failed its sgemm self-test" || fail "fallback: $(blasline)"
echo "ok: failed self-test: $(blasline)"

# A kernel this CPU cannot run is refused and never loaded.
missing=""
if ! blasline | grep -q 'avx512('; then
	missing=SkylakeX
elif ! blasline | grep -q 'fma4'; then
	missing=Bulldozer
fi
if [ -n "$missing" ]; then
	run -- --blas-kernel "$missing"
	[ "$rc" = 0 ] || fail "--blas-kernel $missing exited $rc"
	[ "$(kv blas "$TMP/out")" = "$native" ] || fail "$missing: ran $(kv blas "$TMP/out")"
	case " $(cores) " in *" $missing "*) fail "$missing was loaded: $(cores)" ;; esac
	blasline | grep -q "(refused;.*$missing needs instructions this CPU lacks" ||
		fail "refusal not reported: $(blasline)"
	echo "ok: $missing refused: $(blasline)"
fi
run -- --blas-kernel Skylake
[ "$rc" = 2 ] || fail "--blas-kernel Skylake exited $rc, expected 2"
grep -q "unknown OpenBLAS kernel 'Skylake'" "$TMP/err" || fail "unknown name: $(cat "$TMP/err")"

# The daemon: -V reports the same kernel as the simulator; config, then command line.
v=$(env -u MACC_BLAS_KERNEL -u OPENBLAS_CORETYPE "$AGENTD" -V -c /nonexistent)
echo "$v" | grep -q "^BLAS kernel $native (" || fail "macc-agentd -V: $v (macc-sim: $native)"
printf '[agent]\nname = a\n[train]\nblas_kernel = %s\n' "${other^^}" >"$TMP/agentd.conf"
v=$(env -u MACC_BLAS_KERNEL "$AGENTD" -V -c "$TMP/agentd.conf")
echo "$v" | grep -q "^BLAS kernel $other (as asked;.*asked by config" || fail "config: $v"
v=$(env -u MACC_BLAS_KERNEL "$AGENTD" -V -c "$TMP/agentd.conf" --blas-kernel auto)
echo "$v" | grep -q "^BLAS kernel $other (" || fail "--blas-kernel auto dropped the config: $v"
v=$(env -u MACC_BLAS_KERNEL "$AGENTD" -V -c "$TMP/agentd.conf" --blas-kernel "$native")
echo "$v" | grep -q "^BLAS kernel $native (as asked;.*asked by command line" || fail "cli: $v"
rc=0
"$AGENTD" -V --blas-kernel nope >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" = 2 ] || fail "macc-agentd --blas-kernel nope exited $rc, expected 2"
echo "ok: macc-agentd -V: $native by default, config and command line honoured"
