#!/bin/bash
# gen-fleet.sh: keys and macc.conf(5) files for a fleet of N macc-agentd agents on a chosen
# topology. One generator for every multi-host setup (the network-namespace fleet, the Docker
# Compose demo, the loopback examples), so what CI runs is what Compose runs.
#
# Output, for agent I in 1..N (named agentI):
#   OUTDIR/agentI/agentd.conf   [agent], [train] (with shard I-1/N), one [peer] per neighbour
#   OUTDIR/agentI/agent.key     secret key (macc-ctl genkey), mode 0600
#   OUTDIR/agentI/agent.pub     public key (macc-ctl pubkey)
# Existing keys are kept, so running it again only rewrites the configs.
#
# Addresses: agent I is reached at HOST:PORT, where HOST comes from --hosts (a comma list) or
# --host-format (printf format of I, e.g. 10.77.0.%d or agent%d), and PORT is --port plus
# (I-1)*--port-step (a step lets several agents share one address, e.g. loopback).
# Paths written into the configs (--key-file, --state-dir, --socket) may contain %d (I) and %n
# (agentI); by default they point into OUTDIR.
set -euo pipefail

prog=${0##*/}

usage() {
	cat <<EOF
usage: $prog [options] OUTDIR
  -n, --agents N          number of agents (default 5)
  -t, --topology T        ring | full | star | bipartite | torus:RxC | line (default ring)
      --hosts H1,H2,...   address of each agent (N entries)
      --host-format FMT   printf format of the agent number (default 127.0.0.1)
      --listen-host A     address each agent binds (default 0.0.0.0)
      --port P            first port (default 7640)
      --port-step S       port increment per agent (default 0; use 1 on loopback)
      --key-file PATH     key_file in the configs (default OUTDIR/%n/agent.key)
      --state-dir PATH    state_dir (default OUTDIR/%n/state)
      --socket PATH       control_socket (default OUTDIR/%n/ctl.sock)
      --set KEY=VALUE     extra [train] key, repeatable (model=, data=, epochs=, lr=, ...)
      --agent-set KEY=V   extra [agent] key, repeatable (log_level=debug)
      --no-shard          every agent uses its whole dataset (no shard = I/N line)
      --owner UID:GID     chown the generated files (used by the Docker generator)
      --ctl PATH          macc-ctl to make keys with (default \$MACC_CTL or macc-ctl in PATH)
  -h, --help
EOF
}

die() {
	echo "$prog: $*" >&2
	exit 2
}

n=5
topology=ring
hosts=""
host_format="127.0.0.1"
listen_host="0.0.0.0"
port=7640
port_step=0
key_tpl=""
state_tpl=""
sock_tpl=""
train_sets=()
agent_sets=()
shard=1
owner=""
ctl=${MACC_CTL:-macc-ctl}
outdir=""

while [ $# -gt 0 ]; do
	case $1 in
	--*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;; # --opt=value is --opt value
	esac
	case $1 in
	-n | --agents) n=${2:?}; shift ;;
	-t | --topology) topology=${2:?}; shift ;;
	--hosts) hosts=${2:?}; shift ;;
	--host-format) host_format=${2:?}; shift ;;
	--listen-host) listen_host=${2:?}; shift ;;
	--port) port=${2:?}; shift ;;
	--port-step) port_step=${2:?}; shift ;;
	--key-file) key_tpl=${2:?}; shift ;;
	--state-dir) state_tpl=${2:?}; shift ;;
	--socket) sock_tpl=${2:?}; shift ;;
	--set) train_sets+=("${2:?}"); shift ;;
	--agent-set) agent_sets+=("${2:?}"); shift ;;
	--no-shard) shard=0 ;;
	--owner) owner=${2:?}; shift ;;
	--ctl) ctl=${2:?}; shift ;;
	-h | --help) usage; exit 0 ;;
	-*) usage >&2; die "unknown option '$1'" ;;
	*)
		[ -z "$outdir" ] || die "only one OUTDIR, got '$outdir' and '$1'"
		outdir=$1
		;;
	esac
	shift
done

[ -n "$outdir" ] || { usage >&2; die "missing OUTDIR"; }
case $n in
'' | *[!0-9]*) die "--agents must be a number, got '$n'" ;;
esac
if [ "$n" -lt 2 ] || [ "$n" -gt 256 ]; then
	die "--agents must be 2..256, got $n"
fi
case $port$port_step in
*[!0-9]*) die "--port and --port-step must be numbers" ;;
esac
[ $((port + (n - 1) * port_step)) -le 65535 ] || die "ports past 65535"
command -v "$ctl" >/dev/null 2>&1 || die "macc-ctl not found ('$ctl'); pass --ctl PATH"
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
[ -n "$key_tpl" ] || key_tpl="$outdir/%n/agent.key"
[ -n "$state_tpl" ] || state_tpl="$outdir/%n/state"
[ -n "$sock_tpl" ] || sock_tpl="$outdir/%n/ctl.sock"

IFS=, read -r -a host_list <<<"$hosts"
if [ -n "$hosts" ] && [ "${#host_list[@]}" -ne "$n" ]; then
	die "--hosts has ${#host_list[@]} entries for $n agents"
fi

# host I / port I / path template for agent I
host_of() {
	if [ -n "$hosts" ]; then
		printf '%s' "${host_list[$(($1 - 1))]}"
	else
		# shellcheck disable=SC2059 # the format is the user's, by design
		printf "$host_format" "$1"
	fi
}
port_of() {
	echo $((port + ($1 - 1) * port_step))
}
endpoint_of() {
	local h
	h=$(host_of "$1")
	case $h in
	*:*) printf '[%s]:%s' "$h" "$(port_of "$1")" ;;
	*) printf '%s:%s' "$h" "$(port_of "$1")" ;;
	esac
}
path_of() {
	local p=${1//%n/agent$2}
	printf '%s' "${p//%d/$2}"
}

# Neighbours of agent I (1-based), one per line, without duplicates or I itself.
neighbours() {
	local i=$1 j r c rr cc k
	case $topology in
	ring)
		echo $(((i % n) + 1))
		echo $((((i + n - 2) % n) + 1))
		;;
	line)
		[ "$i" -gt 1 ] && echo $((i - 1))
		[ "$i" -lt "$n" ] && echo $((i + 1))
		;;
	full)
		for ((j = 1; j <= n; j++)); do echo "$j"; done
		;;
	star)
		if [ "$i" -eq 1 ]; then
			for ((j = 2; j <= n; j++)); do echo "$j"; done
		else
			echo 1
		fi
		;;
	bipartite)
		k=$((n / 2))
		if [ "$i" -le "$k" ]; then
			for ((j = k + 1; j <= n; j++)); do echo "$j"; done
		else
			for ((j = 1; j <= k; j++)); do echo "$j"; done
		fi
		;;
	torus:*)
		r=$(((i - 1) / torus_c))
		c=$(((i - 1) % torus_c))
		for rr in $(((r + 1) % torus_r)) $(((r + torus_r - 1) % torus_r)); do
			echo $((rr * torus_c + c + 1))
		done
		for cc in $(((c + 1) % torus_c)) $(((c + torus_c - 1) % torus_c)); do
			echo $((r * torus_c + cc + 1))
		done
		;;
	esac | awk -v self="$i" '$1 != self && !seen[$1]++'
}

case $topology in
ring | line | full | star) ;;
bipartite) [ "$n" -ge 2 ] || die "bipartite needs 2 agents or more" ;;
torus:*)
	spec=${topology#torus:}
	torus_r=${spec%x*}
	torus_c=${spec#*x}
	case $torus_r$torus_c in
	'' | *[!0-9]*) die "torus needs torus:RxC, got '$topology'" ;;
	esac
	[ $((torus_r * torus_c)) -eq "$n" ] || die "torus:${torus_r}x${torus_c} needs $((torus_r * torus_c)) agents, not $n"
	;;
*) die "unknown topology '$topology' (ring, full, star, bipartite, torus:RxC, line)" ;;
esac

# Keys first: every config names its neighbours' public keys.
declare -a pub
for ((i = 1; i <= n; i++)); do
	d="$outdir/agent$i"
	mkdir -p "$d"
	if [ ! -s "$d/agent.key" ]; then
		(umask 077 && "$ctl" genkey >"$d/agent.key.tmp") || die "macc-ctl genkey failed"
		mv "$d/agent.key.tmp" "$d/agent.key"
	fi
	chmod 600 "$d/agent.key"
	"$ctl" pubkey <"$d/agent.key" >"$d/agent.pub" || die "macc-ctl pubkey failed for $d/agent.key"
	pub[i]=$(cat "$d/agent.pub")
done

for ((i = 1; i <= n; i++)); do
	d="$outdir/agent$i"
	{
		echo "# agent$i of a $n-agent $topology fleet, written by gen-fleet.sh; see macc.conf(5)."
		echo "[agent]"
		echo "name = agent$i"
		case $listen_host in
		*:*) echo "listen = [$listen_host]:$(port_of "$i")" ;;
		*) echo "listen = $listen_host:$(port_of "$i")" ;;
		esac
		echo "key_file = $(path_of "$key_tpl" "$i")"
		echo "state_dir = $(path_of "$state_tpl" "$i")"
		echo "control_socket = $(path_of "$sock_tpl" "$i")"
		for kv in ${agent_sets[@]+"${agent_sets[@]}"}; do
			echo "${kv%%=*} = ${kv#*=}"
		done
		echo
		echo "[train]"
		[ "$shard" -eq 0 ] || echo "shard = $((i - 1))/$n"
		for kv in ${train_sets[@]+"${train_sets[@]}"}; do
			echo "${kv%%=*} = ${kv#*=}"
		done
		for j in $(neighbours "$i"); do
			echo
			echo "[peer]"
			echo "name = agent$j"
			echo "endpoint = $(endpoint_of "$j")"
			echo "public_key = ${pub[j]}"
		done
	} >"$d/agentd.conf.tmp"
	mv "$d/agentd.conf.tmp" "$d/agentd.conf"
	if [ -n "$owner" ]; then
		chown -R "$owner" "$d"
	fi
done
echo "$prog: $n agents ($topology) in $outdir"
