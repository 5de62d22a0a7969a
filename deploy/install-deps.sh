#!/bin/sh
# Install every Debian package that macc's build, tests and demos need. Idempotent and
# non-interactive: packages already installed are left alone, and apt is only called when
# something is missing. Run as root on Debian 12 (bookworm).
#
# Besides the build and test tools: the platform stages of tests/run.sh need Docker's engine
# and Compose (docker.io, docker-compose), debootstrap and systemd-nspawn (systemd-container)
# for the Compose and systemd stages, and the arm64 cross toolchain, arm64 -dev packages
# (dpkg multiarch) and qemu-user-static for the arm64 build, its tests and the mixed ring.
set -eu

# The :arm64 packages need arm64 as a foreign architecture (dpkg multiarch).
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: arm64 is not a dpkg architecture here; run as root" >&2
		exit 1
	fi
	dpkg --add-architecture arm64
fi

PACKAGES="
build-essential
meson ninja-build pkg-config
libuv1-dev libsodium-dev libmsgpack-dev libopenblas-dev libcmocka-dev zlib1g-dev
libssl-dev
dataset-fashion-mnist
clang
iproute2 procps util-linux nftables
python3-torch
python3-nacl python3-msgpack python3-cryptography
gnuplot-nox
mandoc shellcheck docker-compose
valgrind
systemd
libprotobuf-c-dev protobuf-c-compiler libonnx-dev
python3-onnx
nodejs
file
docker.io debootstrap systemd-container
crossbuild-essential-arm64 qemu-user-static
libuv1-dev:arm64 libsodium-dev:arm64 libmsgpack-dev:arm64 libopenblas-dev:arm64
libcmocka-dev:arm64 zlib1g-dev:arm64 libprotobuf-c-dev:arm64
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
