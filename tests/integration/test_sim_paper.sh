#!/bin/bash
# test_sim_paper.sh - the paper comparison pipeline end to end on the reduced grid: run.sh --quick
# produces one CSV per cell, table.sh turns them into a markdown table with every algorithm and
# every (partition, topology) row, and plot.sh draws the PNGs (when gnuplot is installed).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=test_sim_lib.sh
. "$(dirname "$0")/test_sim_lib.sh"
need_data

paper=$MACC_SRC/examples/paper
out=$TMP/grid
timeout --kill-after=5 240 "$paper/run.sh" --quick --out "$out" --sim "$SIM" --threads 2 \
	>"$TMP/run.log" 2>&1 || fail "run.sh --quick failed: $(tail -n 20 "$TMP/run.log")"
n=$(find "$out" -name '*_s*.csv' | wc -l)
[ "$n" -eq 40 ] || fail "expected 40 CSVs (5 algorithms x 2 topologies x 2 partitions x 2 seeds), got $n"
for f in "$out"/*_s*.csv; do
	[ "$(wc -l <"$f")" -eq 4 ] || fail "$f: expected header + 3 epochs"
done
# Resuming does not rerun finished cells.
timeout 60 "$paper/run.sh" --quick --out "$out" --sim "$SIM" >"$TMP/rerun.log" 2>&1 \
	|| fail "rerun failed"
grep -q '^\[' "$TMP/rerun.log" && fail "rerun recomputed finished cells: $(cat "$TMP/rerun.log")"

"$paper/table.sh" "$out" >"$TMP/table.md" || fail "table.sh failed"
cat "$TMP/table.md"
head -n 1 "$TMP/table.md" | grep -q 'mean ± std over 2 seed' || fail "table title"
header=$(grep -m1 '^| model |' "$TMP/table.md")
for a in dmsgd cdmsgd cdsgd dsgd centralized; do
	echo "$header" | grep -q "| $a |" || fail "table lacks column $a"
done
for p in iid dirichlet0.5; do
	for t in ring bipartite; do
		row=$(grep -m1 "^| mlp | $p | $t |" "$TMP/table.md") || fail "table lacks row $p $t"
		# 5 accuracy cells "xx.xx ± y.yy" plus the dmsgd difference column.
		[ "$(echo "$row" | grep -o '[0-9]*\.[0-9][0-9] ± [0-9]*\.[0-9][0-9]' | wc -l)" -eq 5 ] \
			|| fail "row $p $t does not have 5 mean ± std cells: $row"
		echo "$row" | grep -q '| [+-][0-9]*\.[0-9][0-9] |$' || fail "row $p $t lacks the difference"
	done
done

if command -v gnuplot >/dev/null; then
	"$paper/plot.sh" "$out" >"$TMP/plot.log" 2>&1 || fail "plot.sh failed: $(cat "$TMP/plot.log")"
	for p in iid dirichlet0.5; do
		png=$out/plot_mlp_$p.png
		[ -s "$png" ] || fail "no $png"
		[ "$(head -c 4 "$png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "$png is not a PNG"
	done
else
	echo "gnuplot not installed: plots not checked"
fi
echo "PASS"
