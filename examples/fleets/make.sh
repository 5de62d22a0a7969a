#!/bin/bash
# make.sh: ready-to-run loopback fleets for the three topologies of the paper's comparison.
#
#   examples/fleets/make.sh ring      8 agents on a ring             (spectral gap 0.195)
#   examples/fleets/make.sh torus     9 agents on a 3x3 torus        (each with 4 neighbours)
#   examples/fleets/make.sh bipartite 8 agents, complete bipartite 4+4
#
# Each writes OUTDIR (default ./fleet-TOPOLOGY) with agentI/{agent.key,agent.pub,agentd.conf}
# on 127.0.0.1, ports 7640 + I - 1, through deploy/netns/gen-fleet.sh (the one generator that the
# network-namespace fleet and the Docker Compose demo use too). Keys are made fresh with
# `macc-ctl genkey` and never committed. Extra arguments go to gen-fleet.sh, e.g.
# `--set=epochs=3 --set=algorithm=cdmsgd`. Then start every agent:
#
#   for c in fleet-ring/agent*/agentd.conf; do macc-agentd -c "$c" --exit-when-done & done
#   macc-ctl -s fleet-ring/agent1/ctl.sock watch
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kind=${1:-}
[ $# -gt 0 ] && shift
case $kind in
ring) args=(--agents=8 --topology=ring) ;;
torus) args=(--agents=9 --topology=torus:3x3) ;;
bipartite) args=(--agents=8 --topology=bipartite) ;;
*)
	sed -n '2,16p' "$0" >&2
	exit 2
	;;
esac
out=./fleet-$kind
build=${MACC_BUILD:-$here/../../build}
if [ -z "${MACC_CTL:-}" ] && [ -x "$build/src/ctl/macc-ctl" ]; then
	export MACC_CTL=$build/src/ctl/macc-ctl
fi
exec "$here/../../deploy/netns/gen-fleet.sh" "${args[@]}" --host-format=127.0.0.1 \
	--listen-host=127.0.0.1 --port=7640 --port-step=1 "$@" "$out"
