/*
 * schedule.c - time-varying schedules: which configured edges each round uses.
 *
 * macc-algorithms(7) ("Time-varying schedules"): W^r is the Metropolis matrix of round r's graph, a
 * subgraph of the configured one chosen by a pure function of (seed, r, configured graph). Both
 * schedules here produce matchings, so a round's row is {self 1/2, partner 1/2} or {self 1}:
 * nothing O(N^2) per round, and the daemon needs no coordination message.
 *
 * matching: a random maximal matching. Round r seeds a fresh macc_rng from (seed XOR r times an
 * odd constant, MACC_STREAM_SCHEDULE) -- a bijection of r, so every round has its own sequence,
 * and no state carries over between rounds (a restarted daemon computes round r without
 * replaying 0..r-1). The agents are visited in a Fisher-Yates order; each still unmatched agent
 * picks a uniformly random still-unmatched neighbour, if any. The result is maximal (an edge with
 * two unmatched ends would have been taken when the first end was visited), and every configured
 * edge a-b is chosen with positive probability (a first in the order, picking b), so over many
 * rounds all edges are used. The configured graph is kept as ascending neighbour lists (CSR),
 * built once, so a round costs O(N + E).
 *
 * exp-pairs: N = 2^k, round r pairs j with j XOR 2^(r mod k): the hypercube's dimensions in turn.
 * With zero gradients and weights 1/2, k rounds give every agent the exact average (each round
 * averages pairs along one dimension; both ends compute 0.5 a + 0.5 b, which is commutative, so
 * they hold the same float).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macc/consensus.h"
#include "macc/rng.h"

static const char *const names[] = {
	[MACC_SCHEDULE_STATIC] = "static",
	[MACC_SCHEDULE_MATCHING] = "matching",
	[MACC_SCHEDULE_EXP_PAIRS] = "exp-pairs",
};

int macc_schedule_parse(const char *name, enum macc_schedule_kind *ret)
{
	for (size_t i = 0; name != NULL && i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(name, names[i]) == 0) {
			*ret = (enum macc_schedule_kind)i;
			return 0;
		}
	}
	return MACC_ESPEC;
}

const char *macc_schedule_name(enum macc_schedule_kind k)
{
	if ((unsigned)k < sizeof(names) / sizeof(names[0])) {
		return names[k];
	}
	return "unknown";
}

void macc_schedule_finish(struct macc_schedule *s)
{
	if (s == NULL) {
		return;
	}
	free(s->off);
	free(s->nbr);
	memset(s, 0, sizeof(*s));
}

int macc_schedule_init(struct macc_schedule *s, enum macc_schedule_kind kind,
		       const struct macc_graph *g, uint64_t seed, struct macc_errmsg *err)
{
	struct macc_schedule t = {.kind = kind, .n = g->n, .seed = seed};
	uint32_t n = g->n;
	int rc = 0;

	switch (kind) {
	case MACC_SCHEDULE_STATIC:
		break;
	case MACC_SCHEDULE_EXP_PAIRS:
		if (n < 2 || (n & (n - 1)) != 0) {
			return macc_errf(err, MACC_EGRAPH, "schedule exp-pairs needs a power of "
					 "two >= 2 agents, got %u", n);
		}
		while ((1u << t.k) < n) {
			t.k++;
		}
		for (uint32_t j = 0; j < n; j++) {
			for (uint32_t b = 0; b < t.k; b++) {
				uint32_t l = j ^ (1u << b);

				if (!g->adj[(size_t)j * n + l]) {
					return macc_errf(err, MACC_EGRAPH,
							 "schedule exp-pairs: the configured "
							 "graph lacks the hypercube edge %u-%u",
							 j, l);
				}
			}
		}
		break;
	case MACC_SCHEDULE_MATCHING: {
		size_t e = 0;

		t.off = malloc(((size_t)n + 1) * sizeof(*t.off));
		if (t.off == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < (size_t)n * n; i++) {
			e += g->adj[i] != 0;
		}
		t.nbr = malloc((e ? e : 1) * sizeof(*t.nbr));
		if (t.nbr == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
		e = 0;
		for (uint32_t j = 0; j < n; j++) {
			t.off[j] = (uint32_t)e;
			for (uint32_t l = 0; l < n; l++) {
				if (g->adj[(size_t)j * n + l]) {
					t.nbr[e++] = l;
				}
			}
		}
		t.off[n] = (uint32_t)e;
		break;
	}
	default:
		return macc_errf(err, MACC_ESPEC, "unknown schedule %d", (int)kind);
	}
	*s = t;
	return 0;
fail:
	macc_schedule_finish(&t);
	return rc;
}

static void round_matching(const struct macc_schedule *s, uint64_t round, uint32_t *partner,
			   uint32_t *order)
{
	struct macc_rng r;
	uint32_t n = s->n;

	macc_rng_seed(&r, s->seed ^ (round * 0x9e3779b97f4a7c15ull), MACC_STREAM_SCHEDULE);
	for (uint32_t j = 0; j < n; j++) {
		partner[j] = MACC_NO_PARTNER;
		order[j] = j;
	}
	macc_rng_shuffle_u32(&r, order, n);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t a = order[i], free_nb = 0;

		if (partner[a] != MACC_NO_PARTNER) {
			continue;
		}
		for (uint32_t e = s->off[a]; e < s->off[a + 1]; e++) {
			free_nb += partner[s->nbr[e]] == MACC_NO_PARTNER;
		}
		if (free_nb == 0) {
			continue;
		}
		/* The pick-th free neighbour in ascending order. */
		uint32_t pick = (uint32_t)macc_rng_below(&r, free_nb);

		for (uint32_t e = s->off[a]; e < s->off[a + 1]; e++) {
			uint32_t b = s->nbr[e];

			if (partner[b] != MACC_NO_PARTNER) {
				continue;
			}
			if (pick-- == 0) {
				partner[a] = b;
				partner[b] = a;
				break;
			}
		}
	}
}

int macc_schedule_round(const struct macc_schedule *s, uint64_t round, uint32_t *partner,
			uint32_t *work)
{
	switch (s->kind) {
	case MACC_SCHEDULE_EXP_PAIRS:
		for (uint32_t j = 0; j < s->n; j++) {
			partner[j] = j ^ (1u << (round % s->k));
		}
		return 0;
	case MACC_SCHEDULE_MATCHING:
		if (work == NULL) {
			return -EINVAL;
		}
		round_matching(s, round, partner, work);
		return 0;
	default:
		return MACC_ESTATE;
	}
}

uint32_t macc_schedule_partner(const struct macc_schedule *s, uint64_t round, uint32_t j)
{
	uint32_t *buf, p;

	if (j >= s->n) {
		return MACC_NO_PARTNER;
	}
	if (s->kind == MACC_SCHEDULE_EXP_PAIRS) {
		return j ^ (1u << (round % s->k));
	}
	if (s->kind != MACC_SCHEDULE_MATCHING) {
		return MACC_NO_PARTNER;
	}
	buf = malloc(2 * (size_t)s->n * sizeof(*buf));
	if (buf == NULL) {
		return MACC_NO_PARTNER;
	}
	round_matching(s, round, buf, buf + s->n);
	p = buf[j];
	free(buf);
	return p;
}

void macc_schedule_weights(uint32_t partner, double *ret_self_w, double *ret_w)
{
	const uint32_t one = 1;

	if (partner == MACC_NO_PARTNER) {
		*ret_self_w = 1.0;
		*ret_w = 0.0;
		return;
	}
	/* Both ends have degree 1 in the round's graph. */
	macc_weights_row(MACC_WEIGHTS_METROPOLIS, 1, &one, 1, ret_self_w, ret_w);
}

int macc_schedule_graph(const struct macc_schedule *s, uint64_t round, struct macc_graph *ret)
{
	uint32_t n = s->n;
	uint32_t *buf = malloc(2 * ((size_t)n + 1) * sizeof(*buf));
	struct macc_graph g = {.n = n};
	int rc;

	g.adj = calloc((size_t)n * n, 1);
	if (buf == NULL || g.adj == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	rc = macc_schedule_round(s, round, buf, buf + n);
	if (rc < 0) {
		goto out;
	}
	for (uint32_t j = 0; j < n; j++) {
		if (buf[j] != MACC_NO_PARTNER) {
			g.adj[(size_t)j * n + buf[j]] = 1;
		}
	}
	*ret = g;
	g.adj = NULL;
out:
	free(buf);
	free(g.adj);
	return rc;
}
