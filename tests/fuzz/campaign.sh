#!/bin/sh
# Long fuzz campaign: run each libFuzzer harness (ASan+UBSan) for SECONDS, one after the other,
# starting from the committed corpus, and print one line per harness with the executions, the
# coverage reached and whether anything was found. New inputs that add coverage are merged back
# into tests/fuzz/corpus/<name>/ (minimised by libFuzzer's -merge=1) when --merge is given, so that
# CI's fuzz-replay suite replays them. Crash inputs are kept in WORK/<name>/ and make the script
# exit 1.
#
# Build first (clang): CC=clang meson setup build-fuzz -Dfuzzing=true && ninja -C build-fuzz
# Usage: tests/fuzz/campaign.sh [-C BUILD] [--merge] [--seconds N] [HARNESS ...]
#   (default: every harness, 1800 s each, build dir build-fuzz, work dir BUILD/fuzz-campaign)
set -eu
cd "$(dirname "$0")/../.."
build="build-fuzz"
seconds=1800
merge=no
while [ $# -gt 0 ]; do
	case "$1" in
	-C) build=$2; shift 2 ;;
	--seconds) seconds=$2; shift 2 ;;
	--merge) merge=yes; shift ;;
	--) shift; break ;;
	-*) echo "campaign.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
if [ $# -eq 0 ]; then
	for d in tests/fuzz/corpus/*/; do
		d=${d%/}
		set -- "$@" "${d##*/}"
	done
fi
work=$build/fuzz-campaign
mkdir -p "$work"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
printf '%-12s %8s %12s %10s %6s %6s %s\n' harness seconds executions exec/s cov corpus result
for h in "$@"; do
	bin=$build/tests/fuzz/fuzz_$h
	if [ ! -x "$bin" ]; then
		echo "campaign.sh: $bin missing (build with -Dfuzzing=true)" >&2
		exit 2
	fi
	dir=$work/$h
	rm -rf "$dir"
	mkdir -p "$dir/corpus" "$dir/artifacts"
	cp tests/fuzz/corpus/"$h"/* "$dir/corpus/" 2>/dev/null || true
	result=clean
	if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/log" 2>&1; then
		result="FINDING (see $dir/artifacts, $dir/log)"
		status=1
	fi
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$dir/log" | tail -1 | cut -d' ' -f2)
	n=$(find "$dir/corpus" -type f | wc -l)
	rate=$(( ${execs:-0} / seconds ))
	printf '%-12s %8s %12s %10s %6s %6s %s\n' "$h" "$seconds" "${execs:-?}" "$rate" "${cov:-?}" "$n" \
		"$result"
	if [ "$merge" = yes ] && [ "$result" = clean ]; then
		"$bin" -merge=1 tests/fuzz/corpus/"$h" "$dir/corpus" >"$dir/merge.log" 2>&1 ||
			echo "campaign.sh: merge for $h failed (see $dir/merge.log)" >&2
	fi
done
exit "$status"
