#!/bin/bash
# examples/bandwidth/table.sh - the markdown table of examples/bandwidth/run.sh's grid, with a
# simulated wall time on a slow link, and whether the bandwidth targets hold.
#
# Link model (applied to what macc-sim measured; documented in examples/bandwidth/README.md):
# every agent has its own uplink of BANDWIDTH bit/s and every message arrives LATENCY after it
# was sent. A round lasts until its busiest uplink has sent its last byte, plus one latency:
#   comm_s    = comm_rounds * LATENCY + bytes_round_max_sum * 8 / BANDWIDTH
# (bytes_round_max_sum: over rounds, the most bytes one agent sent in that round; comm_rounds:
# rounds in which anything was sent). Compute is what the simulator measured for all agents
# over its threads, scaled to one agent per machine:
#   compute_s = train_s * threads / agents
# and the simulated wall time is compute_s + comm_s (no overlap of compute and communication:
# an upper bound for the daemon, which overlaps the gradient with the transfers).
# The reference cell is static / none / H = 1 (the ring with uncompressed dmsgd).
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: examples/bandwidth/table.sh [--bandwidth-mbit B] [--latency-ms L] DIR
  DIR                results of examples/bandwidth/run.sh (*.kv)
  --bandwidth-mbit B uplink per agent in Mbit/s (default 10)
  --latency-ms L     one-way latency in ms (default 50)
EOF
}

bw=10
lat=50
dir=
while [ $# -gt 0 ]; do
	case $1 in
	--bandwidth-mbit) bw=${2:?--bandwidth-mbit needs a value}; shift 2 ;;
	--latency-ms) lat=${2:?--latency-ms needs a value}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	-*) echo "table.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
	*) dir=$1; shift ;;
	esac
done
[ -n "$dir" ] || { usage >&2; exit 2; }
shopt -s nullglob
files=("$dir"/*.kv)
[ "${#files[@]}" -gt 0 ] || { echo "table.sh: no .kv files in $dir" >&2; exit 1; }

cat "${files[@]}" | awk -v bw="$bw" -v lat="$lat" '
function v(k) { return (k in kv) ? kv[k] : "" }
{
	delete kv
	for (i = 1; i <= NF; i++) {
		p = index($i, "=")
		if (p > 0) {
			kv[substr($i, 1, p - 1)] = substr($i, p + 1)
		}
	}
	n++
	sched[n] = v("schedule"); comp[n] = v("compress"); h[n] = v("local_steps")
	model[n] = v("model")
	rounds[n] = v("rounds"); acc[n] = v("test_acc_avg") * 100
	bytes[n] = v("bytes_per_agent")
	comm = v("comm_rounds") * lat / 1000 + v("bytes_round_max_sum") * 8 / (bw * 1e6)
	compute[n] = v("train_s") * v("threads") / v("agents")
	wall[n] = compute[n] + comm
	if (sched[n] == "static" && comp[n] == "none" && h[n] == 1) {
		ref = n
	}
	order[n] = (h[n] == 1 ? 0 : 100) + \
		(sched[n] == "static" ? 0 : sched[n] == "matching" ? 10 : 20) + \
		(comp[n] == "none" ? 0 : comp[n] == "bf16" ? 1 : comp[n] == "int8" ? 2 : 3)
}
END {
	if (!ref) {
		print "table.sh: the reference cell static/none/H=1 is missing" > "/dev/stderr"
		exit 1
	}
	# Rows in a fixed order (H, schedule, compressor): a simple selection sort.
	for (i = 1; i <= n; i++) {
		idx[i] = i
	}
	for (i = 1; i <= n; i++) {
		for (j = i + 1; j <= n; j++) {
			if (order[idx[j]] < order[idx[i]]) {
				t = idx[i]; idx[i] = idx[j]; idx[j] = t
			}
		}
	}
	printf "Model %s, 8 agents, dmsgd; link %g Mbit/s per uplink, %g ms latency.\n\n", \
		model[ref], bw, lat
	printf "| schedule | compress | H | rounds | MB sent per agent | fewer bytes "
	printf "| test acc (avg model) | vs reference | sim. wall time | of which compute |\n"
	print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for (k = 1; k <= n; k++) {
		i = idx[k]
		printf "| %s | %s | %s | %d | %.1f | %.2fx | %.2f%% | %+.2f | %.0f s | %.0f s |\n",
			sched[i], comp[i], h[i], rounds[i], bytes[i] / 1e6, bytes[ref] / bytes[i],
			acc[i], acc[i] - acc[ref], wall[i], compute[i]
	}
	print ""
	for (i = 1; i <= n; i++) {
		if (sched[i] == "static" && comp[i] == "int8" && h[i] == 1) {
			ok = (acc[ref] - acc[i] <= 1.0 && bytes[ref] >= 3.5 * bytes[i])
			printf "- target int8 (static, H=1): within 1 point of none with >= 3.5x "
			printf "fewer bytes: %.2f points, %.2fx: %s\n", acc[i] - acc[ref],
				bytes[ref] / bytes[i], ok ? "MET" : "NOT MET"
		}
		if (sched[i] == "matching" && comp[i] == "none" && h[i] == 1) {
			ok = (acc[ref] - acc[i] <= 1.5 && 2 * bytes[i] <= bytes[ref])
			printf "- target matching (none, H=1): within 1.5 points of the static "
			printf "ring at half the bytes or less: %.2f points, %.2f of the bytes: %s\n",
				acc[i] - acc[ref], bytes[i] / bytes[ref], ok ? "MET" : "NOT MET"
		}
	}
}'
