#!/bin/sh
# Install every Debian package that macc's build, tests and demos need. Idempotent and
# non-interactive: packages already installed are left alone, and apt is only called when
# something is missing. Run as root on Debian 12 (bookworm).
set -eu

PACKAGES="
build-essential
meson ninja-build pkg-config
libuv1-dev libsodium-dev libmsgpack-dev libopenblas-dev libcmocka-dev zlib1g-dev
dataset-fashion-mnist
clang
iproute2 procps util-linux nftables
python3-torch
python3-nacl python3-msgpack
gnuplot-nox
mandoc shellcheck docker-compose
valgrind
systemd
libprotobuf-c-dev protobuf-c-compiler libonnx-dev
python3-onnx
nodejs
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

# ONNX Runtime for the export checks is an npm package (tests/integration/ort_lib.sh installs
# it under the build directory); npm may come with nodejs (NodeSource) or as Debian's npm.
if ! command -v npm >/dev/null 2>&1; then
	missing="$missing npm"
fi

if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing; run as root" >&2
	exit 1
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
