#!/bin/bash
# ort_lib.sh: ONNX checks for the export tests (sourced, not run).
#
# ort_setup installs ONNX Runtime for Node.js, the npm package onnxruntime-node at a pinned
# version, into $MACC_BUILD/ort-node (never into the source tree). --ignore-scripts: its CPU
# binaries ship inside the package, so nothing is downloaded at install time besides the
# package itself; Debian's nodejs runs it. The install is kept for later runs of the same build
# directory. A failed install fails the test (the check must not vanish silently), except when
# the registry cannot be reached or its certificate is not trusted here: then the test says
# SKIP with npm's error code. MACC_SKIP_ORT=1 skips the tests that need it outright.
#
# onnx_compare MODEL PRED.json DATA: onnx.checker, then ONNX Runtime against macc's predictions
# (tests/integration/onnx_compare.py for the rules); DATA is idx:IMAGES or csv:FILE.

ORT_VERSION=1.30.0
ORT_DIR=${MACC_BUILD:?MACC_BUILD not set}/ort-node
ORT_JS=${MACC_SRC:?MACC_SRC not set}/tests/integration/ort_run.js
ONNX_COMPARE=$MACC_SRC/tests/integration/onnx_compare.py
# Debian's python3 (python3-onnx, numpy), not one that a version manager puts first on PATH.
PYTHON=${MACC_PYTHON:-/usr/bin/python3}

ort_setup() {
	if [ "${MACC_SKIP_ORT:-0}" = 1 ]; then
		echo "SKIP: MACC_SKIP_ORT=1"
		exit 77
	fi
	command -v node >/dev/null || { echo "FAIL: node is not installed (deploy/install-deps.sh)" >&2; exit 1; }
	"$PYTHON" -c 'import onnx, numpy' 2>/dev/null ||
		{ echo "FAIL: $PYTHON cannot import onnx and numpy (python3-onnx)" >&2; exit 1; }
	if [ -f "$ORT_DIR/node_modules/onnxruntime-node/package.json" ] &&
		grep -q "\"version\": \"$ORT_VERSION\"" "$ORT_DIR/node_modules/onnxruntime-node/package.json"; then
		return 0
	fi
	mkdir -p "$ORT_DIR"
	echo "installing onnxruntime-node@$ORT_VERSION into $ORT_DIR"
	timeout 600 npm install --prefix "$ORT_DIR" --ignore-scripts --no-audit --no-fund \
		--no-save --loglevel=error "onnxruntime-node@$ORT_VERSION" >"$ORT_DIR/install.log" 2>&1 &&
		return 0
	# The registry cannot be reached or trusted from this machine (no route, no DNS, a TLS
	# proxy whose certificate this system does not trust): the check cannot run here. Said
	# loudly, as a skip; any other install failure fails the test.
	if grep -qE 'ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|CERT_|_CERT|UNABLE_TO_VERIFY' \
		"$ORT_DIR/install.log"; then
		echo "SKIP: the npm registry cannot be reached from here, so ONNX Runtime is not" \
			"installed: $(grep -m 1 -oE 'npm ERR! (code|errno) [A-Z_]+' "$ORT_DIR/install.log")"
		exit 77
	fi
	echo "FAIL: npm install onnxruntime-node@$ORT_VERSION failed: $(tail -n 5 "$ORT_DIR/install.log")" >&2
	exit 1
}

onnx_compare() {
	local work
	work=$(mktemp -d "${TMPDIR:-/tmp}/macc-ort.XXXXXX")
	"$PYTHON" "$ONNX_COMPARE" --model "$1" --macc "$2" --data "$3" --ort-js "$ORT_JS" \
		--node-path "$ORT_DIR/node_modules" --work "$work"
	local rc=$?
	rm -rf "$work"
	return $rc
}
