#!/bin/bash
# test_netns_fleet.sh (suite 'integration'): five hosts on a ring, each its own network
# namespace with one macc-agentd, learn Fashion-MNIST for one epoch through deploy/netns/fleet.sh
# (the same generator as the Docker Compose demo). Asserts that every agent reports `done` with
# a sane test accuracy. Skips (77) where network namespaces cannot be created. Bounded in time:
# fleet.sh gives up after 600 s of training and `timeout` stops it (its trap tears everything
# down) after 840 s.
set -euo pipefail

src=${MACC_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${MACC_BUILD:-$src/build}
min_acc=0.70

probe="maccprobe$$"
if ! ip netns add "$probe" 2>/dev/null; then
	echo "SKIP: cannot create network namespaces here (needs root / CAP_SYS_ADMIN)"
	exit 77
fi
# `ip netns exec` also needs a mount namespace whose / is a mount point (it remounts / rslave):
# inside a plain chroot that fails even as root, so probe it too.
if ! ip netns exec "$probe" true 2>/dev/null; then
	ip netns delete "$probe"
	echo "SKIP: cannot run commands in a network namespace here (ip netns exec failed; chroot?)"
	exit 77
fi
ip netns delete "$probe"

for p in "$build/src/agentd/macc-agentd" "$build/src/ctl/macc-ctl"; do
	if [ ! -x "$p" ]; then
		echo "FAIL: $p is not built" >&2
		exit 1
	fi
done
if [ -z "${MACC_FASHION_MNIST_DIR:-}" ] && [ -z "${MACC_DATA_DIR:-}" ] &&
	[ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
	echo "FAIL: Fashion-MNIST is not installed (deploy/install-deps.sh: dataset-fashion-mnist)" >&2
	exit 1
fi

tmp=$(mktemp -d /tmp/macc-netns-test.XXXXXX)
tag="mt$$"
trap 'rm -rf "$tmp"' EXIT

t0=$(date +%s)
rc=0
timeout -s TERM 840 "$src/deploy/netns/fleet.sh" --agents 5 --topology ring \
	--bin "$build/src/agentd" --bin "$build/src/ctl" \
	--set model=mlp:784-256-128-10 --set epochs=1 --set batch=64 \
	--set lr=0.05 --set momentum=0.9 --set seed=7 \
	--tag "$tag" --timeout 600 --min-accuracy "$min_acc" --results "$tmp/results" || rc=$?
t1=$(date +%s)
if [ "$rc" -eq 77 ]; then
	echo "SKIP: fleet.sh could not create network namespaces"
	exit 77
fi
if [ "$rc" -ne 0 ]; then
	echo "FAIL: fleet.sh exited $rc after $((t1 - t0)) s" >&2
	exit 1
fi

# Independent check of what fleet.sh reported: five agents, all done, accuracy >= min_acc.
n=0
while read -r name state round epoch acc; do
	n=$((n + 1))
	if [ "$state" != "done" ]; then
		echo "FAIL: $name ended in state $state (round $round)" >&2
		exit 1
	fi
	if ! awk -v a="$acc" -v m="$min_acc" 'BEGIN { exit !(a + 0 == a && a >= m && a <= 1) }'; then
		echo "FAIL: $name test accuracy '$acc' is not in [$min_acc, 1]" >&2
		exit 1
	fi
	echo "$name: round $round, epoch $epoch, test accuracy $acc"
done <"$tmp/results"
if [ "$n" -ne 5 ]; then
	echo "FAIL: $n agents reported, expected 5" >&2
	exit 1
fi
# No namespace of ours may survive the run.
if ip netns list | grep -Eq "^${tag}(br|h[0-9]+)( |\$)"; then
	echo "FAIL: fleet.sh left network namespaces behind:" >&2
	ip netns list >&2
	exit 1
fi
echo "ok: 5-host ring on Fashion-MNIST in $((t1 - t0)) s"
