#!/bin/sh
# The test command: install what is missing, build from scratch, and run every suite that belongs
# in CI, then the unit and fuzz-replay suites again under valgrind memcheck (without the
# 'memcheck-slow' unit tests; see tests/meson.build for the full command) and under
# AddressSanitizer + UBSan (with three daemon tests), then the platform stages: the arm64 cross
# build with its unit and fuzz-replay suites under qemu-user, a mixed x86/arm64 ring, the
# systemd units booted in systemd-nspawn, and the Docker Compose demo built and run (each
# stage's time is printed; tests/platform/).
# Usage (as root on Debian 12): tests/run.sh
set -eu
cd "$(dirname "$0")/.."

# stage NAME CMD...: run one platform stage and print how long it took. Exit status 77 means the
# stage cannot run in this environment at all (it printed why): reported as skipped, loudly.
stage() {
	name=$1
	shift
	t0=$(date +%s)
	echo "== $name"
	rc=0
	"$@" || rc=$?
	if [ "$rc" = 77 ]; then
		echo "== $name: SKIPPED after $(($(date +%s) - t0)) s (see the reason above)"
		return 0
	fi
	[ "$rc" = 0 ] || { echo "== $name: FAILED ($rc)"; exit "$rc"; }
	echo "== $name: passed in $(($(date +%s) - t0)) s"
}

# setup DIR ARGS...: meson setup, quiet unless it fails (meson prints its errors on stdout).
setup() {
	dir=$1
	shift
	log=$(mktemp)
	meson setup "$dir" "$@" >"$log" 2>&1 || {
		cat "$log"
		rm -f "$log"
		echo "== meson setup $dir failed"
		exit 1
	}
	rm -f "$log"
}

./deploy/install-deps.sh

suites="--suite unit --suite fuzz-replay --suite integration --suite lint --suite faults"

rm -rf build-ci build-asan build-arm64
echo "== build (release, --werror)"
setup build-ci --werror
meson compile -C build-ci
echo "== tests"
# shellcheck disable=SC2086
meson test -C build-ci $suites --print-errorlogs --num-processes 2

echo "== tests under valgrind memcheck"
# The compiled suites through the 'valgrind' test setup, and the 'memcheck' suite (a daemon
# ring, macc-ctl and macc-sim, each run under valgrind by the script itself).
meson test -C build-ci --setup valgrind --suite unit --suite fuzz-replay --no-suite memcheck-slow \
	--print-errorlogs --num-processes 2
meson test -C build-ci --suite memcheck --print-errorlogs --num-processes 2

echo "== build (address,undefined sanitizers)"
setup build-asan --werror -Db_sanitize=address,undefined -Db_lundef=false
meson compile -C build-asan
echo "== tests under sanitizers"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
meson test -C build-asan --suite unit --suite fuzz-replay --print-errorlogs --num-processes 2 \
	--timeout-multiplier 4
# Real daemons under the sanitizers, on the paths that take hostile input: four daemons against
# macc-sim, the adversarial peer, the duplicate-session race, and every hostile-peer attack in
# turn (faults_hostile). (The whole integration and faults suites pass under them too but take
# ~20 minutes; the soak's RSS bound needs ASAN_OPTIONS=quarantine_size_mb=0 there, as ASan holds
# freed memory back.)
meson test -C build-asan agentd_sim faults_adversary faults_duplicate faults_hostile \
	--print-errorlogs \
	--num-processes 2 --timeout-multiplier 4

# Platform stages. A stage that fails fails the run. Two environments make a stage impossible,
# and then it says SKIPPED with the reason: the systemd and Compose stages inside a plain chroot,
# where neither systemd-nspawn nor Docker can work ("/" is not a mount point), and the Compose
# stage where a Docker engine cannot run at all (dockerd exits at start).
arm64_build() {
	setup build-arm64 --werror --buildtype=release \
		--cross-file deploy/cross/aarch64-linux-gnu.ini
	meson compile -C build-arm64
}
# The whole-model gradient check takes ~2 min under qemu: it runs natively above; every other
# unit test, including test_nn's layer checks against reference loops, runs on arm64.
arm64_tests() {
	MACC_TEST_SKIP=test_model_gradients meson test -C build-arm64 --suite unit \
		--suite fuzz-replay --print-errorlogs --num-processes 2 --timeout-multiplier 3
}
export MACC_SRC="$PWD"
stage "arm64 cross build (release, --werror)" arm64_build
stage "arm64 unit and fuzz-replay suites under qemu-aarch64-static" arm64_tests
stage "mixed-architecture ring (x86 + arm64 under qemu)" env MACC_BUILD="$PWD/build-ci" \
	MACC_BUILD_ARM64="$PWD/build-arm64" bash tests/platform/test_mixed_ring.sh
stage "systemd units booted in systemd-nspawn" env MACC_BUILD="$PWD/build-ci" \
	bash tests/platform/test_systemd.sh
stage "Docker Compose demo (non-root docker user)" bash tests/platform/test_compose.sh
echo "== all tests passed"
