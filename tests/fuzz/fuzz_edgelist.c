/*
 * fuzz_edgelist.c - fuzzes the "file:PATH" edge-list parser, macc_graph_parse_edgelist().
 *
 * The first input byte picks the number of agents (1..64), the rest is the file text. Whatever
 * the bytes, the parser must return 0 or a negative code; on success the graph must be a valid
 * one (symmetric, no self loops, connected), else the harness aborts so the fuzzer reports it.
 */
#include <stdint.h>
#include <stdlib.h>

#include "macc/consensus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct macc_graph g = {0};
	struct macc_errmsg err;
	uint32_t n;
	int rc;

	if (size == 0) {
		return 0;
	}
	n = 1 + data[0] % 64;
	rc = macc_graph_parse_edgelist((const char *)data + 1, size - 1, n, "fuzz", &g, &err);
	if (rc > 0) {
		abort();
	}
	if (rc == 0) {
		if (g.n != n || g.adj == NULL || !macc_graph_connected(&g)) {
			abort();
		}
		for (uint32_t a = 0; a < n; a++) {
			if (g.adj[(size_t)a * n + a] != 0) {
				abort();
			}
			for (uint32_t b = 0; b < n; b++) {
				if (g.adj[(size_t)a * n + b] != g.adj[(size_t)b * n + a] ||
				    g.adj[(size_t)a * n + b] > 1) {
					abort();
				}
			}
		}
	} else if (g.adj != NULL) {
		abort();
	}
	macc_graph_finish(&g);
	return 0;
}
