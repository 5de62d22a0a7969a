/*
 * test_consensus.c - graphs, mixing weights, spectral gap, and the mathematics of every update
 * rule (macc-algorithms(7)), checked by a small synchronous N-agent driver written over the pure
 * functions: every agent sends its round-k state, then every agent steps with what it received.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "macc/consensus.h"
#include "macc/err.h"
#include "macc/rng.h"

/* ---- helpers ---- */

/* cmocka 1.1.5 has no double comparison: |a - b| <= tol, printing both on failure. */
#define assert_close(a, b, tol) assert_close_at((a), (b), (tol), __FILE__, __LINE__)

static void assert_close_at(double a, double b, double tol, const char *file, int line)
{
	if (!(fabs(a - b) <= tol)) {
		fail_msg("%s:%d: %.17g != %.17g (tolerance %g)", file, line, a, b, tol);
	}
}

static struct macc_graph make_graph(const char *spec, uint32_t n, uint64_t seed)
{
	struct macc_graph g = {0};
	struct macc_errmsg e = {{0}};
	int rc = macc_graph_create(spec, n, seed, &g, &e);

	if (rc != 0) {
		fail_msg("%s on %u: %d %s", spec, n, rc, e.text);
	}
	return g;
}

static double *make_w(const struct macc_graph *g, enum macc_weights_kind k)
{
	double *W = malloc((size_t)g->n * g->n * sizeof(*W));

	assert_non_null(W);
	assert_int_equal(macc_weights_build(g, k, W), 0);
	return W;
}

/* Asserts that creating `spec` on n agents fails with `code` and a message containing `needle`. */
static void expect_spec_error(const char *spec, uint32_t n, int code, const char *needle)
{
	struct macc_graph g = {0};
	struct macc_errmsg e = {{0}};
	int rc = macc_graph_create(spec, n, 1, &g, &e);

	if (rc != code || strstr(e.text, needle) == NULL) {
		fail_msg("'%s' on %u: got %d '%s', want %d containing '%s'", spec, n, rc, e.text,
			 code, needle);
	}
	assert_null(g.adj);
}

/* ---- the synchronous driver ---- */

struct net {
	uint32_t n;
	size_t p;
	const double *W; /* [n][n] */
	float *x, *v, *g; /* [n][p] each */
	float *sx, *sv;   /* what each agent sent this round */
};

static void net_init(struct net *t, uint32_t n, size_t p, const double *W)
{
	t->n = n;
	t->p = p;
	t->W = W;
	t->x = calloc((size_t)n * p, sizeof(float));
	t->v = calloc((size_t)n * p, sizeof(float));
	t->g = calloc((size_t)n * p, sizeof(float));
	t->sx = calloc((size_t)n * p, sizeof(float));
	t->sv = calloc((size_t)n * p, sizeof(float));
	assert_true(t->x && t->v && t->g && t->sx && t->sv);
}

static void net_finish(struct net *t)
{
	free(t->x);
	free(t->v);
	free(t->g);
	free(t->sx);
	free(t->sv);
}

/*
 * One round of algorithm a (not centralized) with the gradients already in t->g. drop[j*n+l]
 * set means l's round-k message did not reach j (NULL: nothing dropped); the missing weight is
 * folded with macc_fold_missing and the neighbour removed from the list, as the daemon does.
 */
static void net_round(struct net *t, enum macc_algo a, const struct macc_hparams *hp,
		      const uint8_t *drop)
{
	uint32_t n = t->n;
	size_t p = t->p;
	struct macc_neighbour *nb = calloc(n, sizeof(*nb));
	double *w = calloc(n, sizeof(*w)), *wf = calloc(n, sizeof(*wf));
	bool *arrived = calloc(n, sizeof(*arrived));
	uint32_t *who = calloc(n, sizeof(*who));
	float *scratch = calloc(2 * p, sizeof(float));

	assert_true(nb && w && wf && arrived && who && scratch);
	for (uint32_t j = 0; j < n; j++) {
		const float *out = macc_algo_outgoing(a, hp, p, t->x + j * p, t->g + j * p,
						      t->sx + j * p);

		if (out != t->sx + j * p) {
			memcpy(t->sx + j * p, out, p * sizeof(float));
		}
		memcpy(t->sv + j * p, t->v + j * p, p * sizeof(float));
	}
	for (uint32_t j = 0; j < n; j++) {
		size_t k = 0, used = 0;
		double self_w;

		for (uint32_t l = 0; l < n; l++) {
			if (l != j && t->W[(size_t)j * n + l] > 0.0) {
				w[k] = t->W[(size_t)j * n + l];
				arrived[k] = drop == NULL || !drop[(size_t)j * n + l];
				who[k++] = l;
			}
		}
		macc_fold_missing(t->W[(size_t)j * n + j], w, arrived, k, &self_w, wf);
		for (size_t i = 0; i < k; i++) {
			if (arrived[i]) {
				nb[used].w = (float)wf[i];
				nb[used].x = t->sx + who[i] * p;
				nb[used].v = macc_algo_sends_momentum(a) ? t->sv + who[i] * p : NULL;
				used++;
			}
		}
		macc_consensus_step(a, hp, p, t->x + j * p, t->v + j * p, t->g + j * p,
				    (float)self_w, nb, used, scratch);
	}
	free(nb);
	free(w);
	free(wf);
	free(arrived);
	free(who);
	free(scratch);
}

/* sqrt(sum_j ||x_j - mean||^2), in double. */
static double net_spread(const struct net *t)
{
	double s = 0.0;

	for (size_t i = 0; i < t->p; i++) {
		double m = 0.0;

		for (uint32_t j = 0; j < t->n; j++) {
			m += t->x[j * t->p + i];
		}
		m /= t->n;
		for (uint32_t j = 0; j < t->n; j++) {
			double d = t->x[j * t->p + i] - m;

			s += d * d;
		}
	}
	return sqrt(s);
}

static void fill_normal(struct macc_rng *r, float *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		a[i] = (float)macc_rng_normal(r);
	}
}

static double second_modulus(const double *W, uint32_t n)
{
	double gap = -1.0;

	assert_int_equal(macc_spectral_gap(W, n, &gap), 0);
	return 1.0 - gap;
}

/* ---- graphs ---- */

static void test_graph_degrees_and_connectivity(void **state)
{
	(void)state;
	for (uint32_t n = 1; n <= 12; n++) {
		struct macc_graph r = make_graph("ring", n, 0), f = make_graph("full", n, 0);
		struct macc_graph s = make_graph("star", n, 0);

		for (uint32_t j = 0; j < n; j++) {
			assert_int_equal(macc_graph_degree(&r, j), n >= 3 ? 2 : n - 1);
			assert_int_equal(macc_graph_degree(&f, j), n - 1);
			assert_int_equal(macc_graph_degree(&s, j), j == 0 ? n - 1 : 1);
			assert_int_equal(r.adj[j * n + j], 0);
		}
		assert_true(macc_graph_connected(&r) && macc_graph_connected(&f) &&
			    macc_graph_connected(&s));
		macc_graph_finish(&r);
		macc_graph_finish(&f);
		macc_graph_finish(&s);
		if (n % 2 == 0) {
			struct macc_graph b = make_graph("bipartite", n, 0);

			for (uint32_t j = 0; j < n; j++) {
				assert_int_equal(macc_graph_degree(&b, j), n / 2);
				/* no edge inside a half */
				assert_int_equal(b.adj[j * n + (j + 1) % n],
						 (j + 1) % n < n / 2 ? j >= n / 2 : j < n / 2);
			}
			macc_graph_finish(&b);
		}
	}
	/* torus: 4 neighbours when both sides >= 3; a side of 2 wraps onto the same agent. */
	const struct {
		const char *spec;
		uint32_t n, deg;
	} tor[] = {{"torus:3x4", 12, 4}, {"torus:5x5", 25, 4}, {"torus:2x3", 6, 3},
		   {"torus:1x6", 6, 2}, {"torus:2x2", 4, 2}, {"torus:1x1", 1, 0}};
	for (size_t i = 0; i < sizeof(tor) / sizeof(tor[0]); i++) {
		struct macc_graph g = make_graph(tor[i].spec, tor[i].n, 0);

		for (uint32_t j = 0; j < g.n; j++) {
			assert_int_equal(macc_graph_degree(&g, j), tor[i].deg);
		}
		assert_true(macc_graph_connected(&g));
		macc_graph_finish(&g);
	}
	/* symmetric adjacency everywhere */
	struct macc_graph t = make_graph("torus:3x5", 15, 0);
	for (uint32_t a = 0; a < 15; a++) {
		for (uint32_t b = 0; b < 15; b++) {
			assert_int_equal(t.adj[a * 15 + b], t.adj[b * 15 + a]);
		}
	}
	/* (0,0) is next to (0,1), (0,4), (1,0), (2,0) */
	assert_true(t.adj[1] && t.adj[4] && t.adj[5] && t.adj[10] && !t.adj[6]);
	macc_graph_finish(&t);
}

static void test_graph_random_regular(void **state)
{
	const struct {
		uint32_t n, d;
	} cases[] = {{10, 3}, {10, 2}, {12, 4}, {10, 7}, {9, 8}, {30, 5}, {2, 1}, {64, 31}};

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		char spec[32];

		snprintf(spec, sizeof(spec), "regular:%u", cases[c].d);
		for (uint64_t seed = 1; seed <= 5; seed++) {
			struct macc_graph g = make_graph(spec, cases[c].n, seed);

			for (uint32_t j = 0; j < g.n; j++) {
				assert_int_equal(macc_graph_degree(&g, j), cases[c].d);
				assert_int_equal(g.adj[j * g.n + j], 0);
			}
			assert_true(macc_graph_connected(&g));
			macc_graph_finish(&g);
		}
	}
	/* seeded: same seed same graph, different seeds different graphs */
	struct macc_graph a = make_graph("regular:3", 20, 7), b = make_graph("regular:3", 20, 7);
	struct macc_graph c = make_graph("regular:3", 20, 8);
	assert_memory_equal(a.adj, b.adj, 400);
	assert_memory_not_equal(a.adj, c.adj, 400);
	macc_graph_finish(&a);
	macc_graph_finish(&b);
	macc_graph_finish(&c);
}

static void test_graph_erdos_renyi(void **state)
{
	struct macc_graph a, b, c;
	size_t edges = 0;

	(void)state;
	a = make_graph("er:0.3", 40, 11);
	b = make_graph("er:0.3", 40, 11);
	c = make_graph("er:0.3", 40, 12);
	assert_true(macc_graph_connected(&a));
	assert_memory_equal(a.adj, b.adj, 1600);
	assert_memory_not_equal(a.adj, c.adj, 1600);
	for (uint32_t j = 0; j < 40; j++) {
		edges += macc_graph_degree(&a, j);
		assert_int_equal(a.adj[j * 40 + j], 0);
	}
	edges /= 2;
	/* 780 pairs at p = 0.3: mean 234, sd ~12.8 */
	assert_in_range(edges, 234 - 60, 234 + 60);
	macc_graph_finish(&a);
	macc_graph_finish(&b);
	macc_graph_finish(&c);
	a = make_graph("er:1", 6, 3);
	for (uint32_t j = 0; j < 6; j++) {
		assert_int_equal(macc_graph_degree(&a, j), 5);
	}
	macc_graph_finish(&a);
	/* a probability far below the connectivity threshold gives up, bounded */
	expect_spec_error("er:0.001", 50, MACC_EGRAPH, "er:0.001");
}

static void test_graph_bad_specs(void **state)
{
	(void)state;
	expect_spec_error("hypercube", 8, MACC_ESPEC, "unknown topology 'hypercube'");
	expect_spec_error("ring:3", 8, MACC_ESPEC, "'ring:3'");
	expect_spec_error("", 8, MACC_ESPEC, "unknown topology ''");
	expect_spec_error("ring", 0, MACC_ESPEC, "'ring'");
	expect_spec_error("ring", 100000, MACC_ESPEC, "'ring'");
	expect_spec_error("bipartite", 5, MACC_ESPEC, "even");
	expect_spec_error("torus:3x3", 10, MACC_ESPEC, "'torus:3x3': 3x3 = 9 agents");
	expect_spec_error("torus:3", 3, MACC_ESPEC, "torus:RxC");
	expect_spec_error("torus:ax3", 3, MACC_ESPEC, "'torus:ax3'");
	expect_spec_error("torus:0x4", 0 + 4, MACC_ESPEC, "'torus:0x4'");
	expect_spec_error("torus:2x2x", 4, MACC_ESPEC, "'torus:2x2x'");
	expect_spec_error("torus:", 4, MACC_ESPEC, "'torus:'");
	expect_spec_error("regular:3", 5, MACC_ESPEC, "n*D even");
	expect_spec_error("regular:5", 5, MACC_ESPEC, "D < n");
	expect_spec_error("regular:x", 5, MACC_ESPEC, "'regular:x'");
	expect_spec_error("regular:-2", 5, MACC_ESPEC, "'regular:-2'");
	expect_spec_error("regular:1", 6, MACC_EGRAPH, "never connected");
	expect_spec_error("regular:0", 6, MACC_EGRAPH, "'regular:0'");
	expect_spec_error("er:0", 6, MACC_ESPEC, "'er:0'");
	expect_spec_error("er:1.5", 6, MACC_ESPEC, "'er:1.5'");
	expect_spec_error("er:abc", 6, MACC_ESPEC, "'er:abc'");
	expect_spec_error("er:", 6, MACC_ESPEC, "'er:'");
	expect_spec_error("er:0.5x", 6, MACC_ESPEC, "'er:0.5x'");
	expect_spec_error("er:nan", 6, MACC_ESPEC, "'er:nan'");
	expect_spec_error("file:", 6, MACC_ESPEC, "missing path");
	expect_spec_error("file:/nonexistent/macc-edges", 6, -ENOENT, "/nonexistent/macc-edges");
	struct macc_errmsg e = {{0}};
	struct macc_graph g = {0};
	assert_int_equal(macc_graph_create(NULL, 4, 0, &g, &e), MACC_ESPEC);
	macc_graph_finish(NULL);
	macc_graph_finish(&g);
}

static int parse(const char *text, uint32_t n, struct macc_graph *g, struct macc_errmsg *e)
{
	return macc_graph_parse_edgelist(text, strlen(text), n, "edges.txt", g, e);
}

static void test_graph_edgelist(void **state)
{
	struct macc_graph g = {0};
	struct macc_errmsg e = {{0}};

	(void)state;
	assert_int_equal(parse("# a path and a chord\n0 1\n1 2  # comment\n\t2 3\r\n\n3 1\n1 0\n",
			       4, &g, &e), 0);
	assert_int_equal(macc_graph_degree(&g, 0), 1);
	assert_int_equal(macc_graph_degree(&g, 1), 3);
	assert_int_equal(macc_graph_degree(&g, 2), 2);
	assert_int_equal(macc_graph_degree(&g, 3), 2);
	assert_true(g.adj[1 * 4 + 3] && g.adj[3 * 4 + 1]);
	macc_graph_finish(&g);
	/* no trailing newline */
	assert_int_equal(parse("0 1", 2, &g, &e), 0);
	macc_graph_finish(&g);

	const struct {
		const char *text;
		uint32_t n;
		int code;
		const char *needle;
	} bad[] = {
		{"0 1\n1 2\n0 5\n", 5, MACC_ESPEC, "edges.txt:3: agent number out of range"},
		{"0 1\n2\n", 3, MACC_ESPEC, "edges.txt:2: expected two agent numbers"},
		{"0 1 2\n", 3, MACC_ESPEC, "edges.txt:1: trailing text"},
		{"0 -1\n", 3, MACC_ESPEC, "edges.txt:1: expected two"},
		{"0 1x\n", 3, MACC_ESPEC, "edges.txt:1: expected two"},
		{"a b\n", 3, MACC_ESPEC, "edges.txt:1: expected two"},
		{"0 1\n1 1\n", 3, MACC_ESPEC, "edges.txt:2: self loop 1-1"},
		{"0 99999999999999999999999\n", 3, MACC_ESPEC, "out of range"},
		{"0 1\n2 3\n", 4, MACC_EGRAPH, "edges.txt: graph on 4 agents is not connected"},
		{"", 3, MACC_EGRAPH, "not connected"},
		{"0 1\n", 0, MACC_ESPEC, "edges.txt"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse(bad[i].text, bad[i].n, &g, &e);

		if (rc != bad[i].code || strstr(e.text, bad[i].needle) == NULL) {
			fail_msg("case %zu: got %d '%s'", i, rc, e.text);
		}
		assert_null(g.adj);
	}
	/* NUL bytes inside the buffer are bad syntax, not a string end */
	assert_int_equal(macc_graph_parse_edgelist("0 1\n\0 2\n", 8, 3, "x", &g, &e), MACC_ESPEC);

	/* the file: spec goes through the same parser */
	char path[] = "/tmp/macc-edges-XXXXXX";
	int fd = mkstemp(path);
	char spec[64];

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0 1\n1 2\n2 0\n", 12), 12);
	close(fd);
	snprintf(spec, sizeof(spec), "file:%s", path);
	g = make_graph(spec, 3, 0);
	for (uint32_t j = 0; j < 3; j++) {
		assert_int_equal(macc_graph_degree(&g, j), 2);
	}
	macc_graph_finish(&g);
	expect_spec_error(spec, 4, MACC_EGRAPH, "not connected");
	expect_spec_error(spec, 2, MACC_ESPEC, ":2: agent number out of range");
	unlink(path);
}

/* ---- weights ---- */

static void test_weights_metropolis_and_uniform(void **state)
{
	const char *specs[] = {"ring", "star", "full", "torus:2x4", "regular:3", "er:0.4"};
	struct macc_errmsg e = {{0}};
	enum macc_weights_kind k;

	(void)state;
	assert_int_equal(macc_weights_parse("metropolis", &k), 0);
	assert_int_equal(k, MACC_WEIGHTS_METROPOLIS);
	assert_int_equal(macc_weights_parse("uniform", &k), 0);
	assert_int_equal(k, MACC_WEIGHTS_UNIFORM);
	assert_int_equal(macc_weights_parse("max-degree", &k), MACC_ESPEC);
	assert_close(macc_metropolis_weight(2, 5), 1.0 / 6.0, 0.0);
	assert_close(macc_metropolis_weight(7, 3), 1.0 / 8.0, 0.0);

	for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++) {
		struct macc_graph g = make_graph(specs[s], 8, 5);
		double *M = make_w(&g, MACC_WEIGHTS_METROPOLIS), *U = make_w(&g, MACC_WEIGHTS_UNIFORM);
		uint32_t n = g.n;

		for (uint32_t j = 0; j < n; j++) {
			uint32_t dj = macc_graph_degree(&g, j);
			uint32_t nbdeg[8];
			double row[8], self_w;
			size_t nnb = 0;

			for (uint32_t l = 0; l < n; l++) {
				double mj = M[j * n + l], uj = U[j * n + l];

				assert_close(mj, M[l * n + j], 0.0); /* symmetric */
				if (l != j && g.adj[j * n + l]) {
					uint32_t dl = macc_graph_degree(&g, l);

					assert_close(mj, 1.0 / (1.0 + (dj > dl ? dj : dl)), 0.0);
					assert_close(uj, 1.0 / (1.0 + dj), 0.0);
					nbdeg[nnb++] = dl;
				} else if (l != j) {
					assert_true(mj == 0.0 && uj == 0.0);
				}
			}
			/* The daemon's path: the same row from degrees alone, bit for bit. */
			macc_weights_row(MACC_WEIGHTS_METROPOLIS, dj, nbdeg, nnb, &self_w, row);
			assert_memory_equal(&self_w, &M[j * n + j], sizeof(double));
			for (size_t i = 0, l = 0; l < n; l++) {
				if (l != j && g.adj[j * n + l]) {
					assert_memory_equal(&row[i], &M[j * n + l], sizeof(double));
					i++;
				}
			}
			assert_true(M[j * n + j] > 0.0);
		}
		if (macc_weights_validate(&g, M, true, &e) != 0) {
			fail_msg("%s metropolis: %s", specs[s], e.text);
		}
		if (macc_weights_validate(&g, U, false, &e) != 0) {
			fail_msg("%s uniform: %s", specs[s], e.text);
		}
		free(M);
		free(U);
		macc_graph_finish(&g);
	}
}

static void test_weights_validate_errors(void **state)
{
	struct macc_graph g = make_graph("ring", 5, 0), star = make_graph("star", 5, 0);
	double *W = make_w(&g, MACC_WEIGHTS_METROPOLIS), *S = make_w(&star, MACC_WEIGHTS_UNIFORM);
	double saved;
	struct macc_errmsg e = {{0}};

	(void)state;
	/* uniform on a star is row- but not column-stochastic */
	assert_int_equal(macc_weights_validate(&star, S, false, &e), 0);
	assert_int_equal(macc_weights_validate(&star, S, true, &e), MACC_EGRAPH);
	assert_non_null(strstr(e.text, "column 0 sums to"));

	saved = W[2 * 5 + 3];
	W[2 * 5 + 3] = saved + 0.01;
	assert_int_equal(macc_weights_validate(&g, W, false, &e), MACC_EGRAPH);
	assert_non_null(strstr(e.text, "row 2 sums to"));
	W[2 * 5 + 3] = saved;

	W[1 * 5 + 3] = 0.1; /* 1 and 3 are not neighbours on a 5-ring */
	W[1 * 5 + 1] -= 0.1;
	assert_int_equal(macc_weights_validate(&g, W, false, &e), MACC_EGRAPH);
	assert_non_null(strstr(e.text, "W[1][3] = 0.1 but agents 1 and 3 are not neighbours"));
	W[1 * 5 + 3] = 0.0;
	W[1 * 5 + 1] += 0.1;

	W[4 * 5 + 0] = -W[4 * 5 + 0];
	assert_int_equal(macc_weights_validate(&g, W, false, &e), MACC_EGRAPH);
	assert_non_null(strstr(e.text, "W[4][0]"));
	W[4 * 5 + 0] = -W[4 * 5 + 0];

	W[0] = NAN;
	assert_int_equal(macc_weights_validate(&g, W, false, &e), MACC_EGRAPH);
	assert_non_null(strstr(e.text, "W[0][0]"));
	W[0] = 1.0 / 3.0;
	assert_int_equal(macc_weights_validate(&g, W, true, &e), 0);

	/* zero weights on both edges of agent 2 cut it off even though the graph is connected */
	W[2 * 5 + 1] = W[2 * 5 + 3] = 0.0;
	W[1 * 5 + 2] = W[3 * 5 + 2] = 0.0;
	W[2 * 5 + 2] = 1.0;
	W[1 * 5 + 1] += 1.0 / 3.0;
	W[3 * 5 + 3] += 1.0 / 3.0;
	assert_int_equal(macc_weights_validate(&g, W, true, &e), MACC_EGRAPH);
	assert_non_null(strstr(e.text, "agent 2"));

	/* a disconnected graph is refused */
	memset(g.adj, 0, 25);
	assert_int_equal(macc_weights_validate(&g, W, false, &e), MACC_EGRAPH);
	assert_non_null(strstr(e.text, "not connected"));
	free(W);
	free(S);
	macc_graph_finish(&g);
	macc_graph_finish(&star);
}

static void test_spectral_gap_closed_forms(void **state)
{
	(void)state;
	/* Metropolis on a ring of n >= 5: W = (I + A)/3, eigenvalues 1/3 + 2/3 cos(2 pi k / n);
	 * the second largest modulus is k = 1 (the most negative one is >= -1/3). */
	for (uint32_t n = 5; n <= 24; n++) {
		struct macc_graph g = make_graph("ring", n, 0);
		double *W = make_w(&g, MACC_WEIGHTS_METROPOLIS);
		double want = 1.0 / 3.0 + 2.0 / 3.0 * cos(2.0 * M_PI / n);

		assert_close(second_modulus(W, n), want, 1e-12);
		free(W);
		macc_graph_finish(&g);
	}
	/* full graph, uniform (= Metropolis) weights: W = 11^T / n, gap exactly 1 */
	for (uint32_t n = 2; n <= 10; n++) {
		struct macc_graph g = make_graph("full", n, 0);
		double *W = make_w(&g, MACC_WEIGHTS_UNIFORM), gap;

		assert_int_equal(macc_spectral_gap(W, n, &gap), 0);
		assert_close(gap, 1.0, 1e-12);
		free(W);
		macc_graph_finish(&g);
	}
	/* torus 4x4, Metropolis: W = (I + A)/5 with eigenvalues (1 + 2cos(a pi/2) + 2cos(b pi/2))/5;
	 * the second largest modulus is 3/5 (both +3/5 and -3/5 occur). */
	struct macc_graph t = make_graph("torus:4x4", 16, 0);
	double *T = make_w(&t, MACC_WEIGHTS_METROPOLIS);
	assert_close(second_modulus(T, 16), 0.6, 1e-12);
	free(T);
	macc_graph_finish(&t);
	/* Non-symmetric (dgeev path): uniform weights on a star of n. Leaf-difference vectors give
	 * 1/2 (n-2 times); the (hub, leaf mean) block [[1/n, (n-1)/n], [1/2, 1/2]] gives 1 and
	 * 1/n - 1/2. So |lambda_2| = 1/2. */
	struct macc_graph s = make_graph("star", 7, 0);
	double *S = make_w(&s, MACC_WEIGHTS_UNIFORM);
	assert_close(second_modulus(S, 7), 0.5, 1e-10);
	free(S);
	macc_graph_finish(&s);
	/* one agent, and bad arguments */
	double one = 1.0, gap = -1.0;
	assert_int_equal(macc_spectral_gap(&one, 1, &gap), 0);
	assert_close(gap, 1.0, 0.0);
	assert_int_equal(macc_spectral_gap(&one, 0, &gap), -EINVAL);
}

/* ---- algorithms: names and what travels ---- */

static void test_algo_names_and_outgoing(void **state)
{
	enum macc_algo a;
	const char *names[] = {"dmsgd", "cdmsgd", "cdsgd", "dsgd", "centralized"};
	struct macc_hparams hp = {.alpha = 0.5f, .beta = 0.9f, .omega = 1.0f};
	float x[3] = {1.0f, 2.0f, 3.0f}, g[3] = {2.0f, -2.0f, 0.5f}, out[3] = {0};

	(void)state;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(macc_algo_parse(names[i], &a), 0);
		assert_int_equal(a, i);
		assert_string_equal(macc_algo_name(a), names[i]);
	}
	assert_int_equal(macc_algo_parse("adam", &a), MACC_ESPEC);
	assert_int_equal(macc_algo_parse(NULL, &a), MACC_ESPEC);
	assert_string_equal(macc_algo_name((enum macc_algo)99), "unknown");
	assert_true(macc_algo_sends_momentum(MACC_ALGO_DMSGD));
	assert_false(macc_algo_sends_momentum(MACC_ALGO_CDMSGD));
	assert_false(macc_algo_sends_momentum(MACC_ALGO_DSGD));
	assert_true(macc_algo_sends_after_grad(MACC_ALGO_DSGD));
	assert_false(macc_algo_sends_after_grad(MACC_ALGO_DMSGD));
	assert_ptr_equal(macc_algo_outgoing(MACC_ALGO_DMSGD, &hp, 3, x, g, out), x);
	assert_ptr_equal(macc_algo_outgoing(MACC_ALGO_DSGD, &hp, 3, x, g, out), out);
	assert_true(out[0] == 0.0f && out[1] == 3.0f && out[2] == 2.75f);

	/* cdsgd and dsgd have no momentum: v may be NULL; a weight-0 neighbour may be NULL too */
	float nx[3] = {3.0f, 2.0f, 1.0f};
	struct macc_neighbour nb[2] = {{.w = 0.0f}, {.w = 0.5f, .x = nx}};
	macc_consensus_step(MACC_ALGO_CDSGD, &hp, 3, x, NULL, g, 0.5f, nb, 2, NULL);
	/* x = (1 + 3)/2 - 1, (2 + 2)/2 + 1, (3 + 1)/2 - 0.25 */
	assert_true(x[0] == 1.0f && x[1] == 3.0f && x[2] == 1.75f);
	macc_consensus_step(MACC_ALGO_DSGD, &hp, 3, x, NULL, g, 0.5f, nb, 2, NULL);
	/* y = (0, 4, 1.5); x = (0 + 3)/2, (4 + 2)/2, (1.5 + 1)/2 */
	assert_true(x[0] == 1.5f && x[1] == 3.0f && x[2] == 1.25f);
}

/* ---- (1) zero gradients: exact average, at rate |lambda_2| ---- */

struct algo_case {
	enum macc_algo a;
	bool nesterov;
	float beta, omega;
};

static const struct algo_case all_algos[] = {
	{MACC_ALGO_DMSGD, false, 0.9f, 1.0f}, {MACC_ALGO_DMSGD, false, 0.9f, 0.5f},
	{MACC_ALGO_DMSGD, true, 0.9f, 1.0f},  {MACC_ALGO_CDMSGD, false, 0.9f, 1.0f},
	{MACC_ALGO_CDMSGD, true, 0.9f, 1.0f}, {MACC_ALGO_CDSGD, false, 0.0f, 1.0f},
	{MACC_ALGO_DSGD, false, 0.0f, 1.0f},
};

static void test_zero_gradient_consensus_rate(void **state)
{
	const struct {
		const char *spec;
		uint32_t n;
	} nets[] = {{"ring", 8}, {"ring", 12}, {"torus:4x4", 16}, {"torus:3x5", 15},
		    {"regular:3", 10}};

	(void)state;
	for (size_t s = 0; s < sizeof(nets) / sizeof(nets[0]); s++) {
		struct macc_graph gr = make_graph(nets[s].spec, nets[s].n, 3);
		double *W = make_w(&gr, MACC_WEIGHTS_METROPOLIS);
		double lam = second_modulus(W, gr.n);
		/* measure between the rounds where the spread is ~1e-1 and ~1e-4 of the start */
		int k0 = (int)ceil(log(1e-1) / log(lam)), k1 = (int)ceil(log(1e-4) / log(lam));

		for (size_t c = 0; c < sizeof(all_algos) / sizeof(all_algos[0]); c++) {
			struct macc_hparams hp = {.alpha = 0.1f, .beta = all_algos[c].beta,
						  .omega = all_algos[c].omega,
						  .nesterov = all_algos[c].nesterov};
			struct net t;
			struct macc_rng r;
			double avg[32], d0 = 0.0, d1 = 0.0, worst = 0.0;
			const size_t p = 32;

			net_init(&t, gr.n, p, W);
			macc_rng_seed(&r, 100 + s, 0);
			fill_normal(&r, t.x, gr.n * p);
			for (size_t i = 0; i < p; i++) {
				avg[i] = 0.0;
				for (uint32_t j = 0; j < gr.n; j++) {
					avg[i] += t.x[j * p + i];
				}
				avg[i] /= gr.n;
			}
			for (int k = 1; k <= 3 * k1; k++) {
				net_round(&t, all_algos[c].a, &hp, NULL);
				if (k == k0) {
					d0 = net_spread(&t);
				}
				if (k == k1) {
					d1 = net_spread(&t);
				}
			}
			double rate = pow(d1 / d0, 1.0 / (k1 - k0));

			for (size_t i = 0; i < gr.n * p; i++) {
				double d = fabs(t.x[i] - avg[i % p]);

				worst = d > worst ? d : worst;
				/* with g = 0 and v0 = 0 the momentum never leaves 0 */
				assert_true(t.v[i] == 0.0f);
			}
			if (worst > 1e-5 || fabs(rate - lam) > 0.02) {
				fail_msg("%s/%s nesterov=%d: worst |x - avg| %g, rate %.4f vs |lambda_2| "
					 "%.4f", nets[s].spec, macc_algo_name(all_algos[c].a),
					 all_algos[c].nesterov, worst, rate, lam);
			}
			if (c == 0) {
				print_message("  %-10s n=%-3u |lambda_2| %.4f  measured rate %.4f\n",
					      nets[s].spec, gr.n, lam, rate);
			}
			net_finish(&t);
		}
		free(W);
		macc_graph_finish(&gr);
	}
}

/* ---- (2) full graph with uniform weights: dmsgd is centralized ---- */

static void test_full_uniform_dmsgd_is_centralized(void **state)
{
	const uint32_t n = 5;
	const size_t p = 64;
	struct macc_graph gr = make_graph("full", n, 0);
	double *W = make_w(&gr, MACC_WEIGHTS_UNIFORM);

	(void)state;
	for (int same = 0; same < 2; same++) {
		for (int nest = 0; nest < 2; nest++) {
			struct macc_hparams hp = {.alpha = 0.05f, .beta = 0.9f, .omega = 1.0f,
						  .nesterov = nest};
			struct net t;
			struct macc_rng r;
			float xc[64], vc[64] = {0}, gbar[64];
			double worst = 0.0;

			net_init(&t, n, p, W);
			macc_rng_seed(&r, 7, 0);
			fill_normal(&r, xc, p);
			for (uint32_t j = 0; j < n; j++) {
				memcpy(t.x + j * p, xc, sizeof(xc));
			}
			for (int k = 0; k < 15; k++) {
				/* random gradients: identical on all agents, or different */
				fill_normal(&r, t.g, same ? p : n * p);
				for (uint32_t j = 1; same && j < n; j++) {
					memcpy(t.g + j * p, t.g, p * sizeof(float));
				}
				for (size_t i = 0; i < p; i++) {
					double s = 0.0;

					for (uint32_t j = 0; j < n; j++) {
						s += t.g[j * p + i];
					}
					gbar[i] = (float)(s / n);
				}
				net_round(&t, MACC_ALGO_DMSGD, &hp, NULL);
				macc_centralized_step(&hp, p, xc, vc, gbar);
				/*
				 * Identical gradients: every agent IS the centralized model. Different
				 * gradients: the network means of x and v follow centralized exactly
				 * (sum_j of the dmsgd equations with W = 11^T/N), while each agent
				 * sits one own-gradient step off it.
				 */
				for (size_t i = 0; i < p; i++) {
					double mx = 0.0, mv = 0.0;

					for (uint32_t j = 0; j < n; j++) {
						double dx = t.x[j * p + i] - xc[i];

						mx += t.x[j * p + i];
						mv += t.v[j * p + i];
						if (same) {
							worst = fmax(worst, fabs(dx));
							worst = fmax(worst,
								     fabs(t.v[j * p + i] - vc[i]));
						}
					}
					worst = fmax(worst, fabs(mx / n - xc[i]));
					worst = fmax(worst, fabs(mv / n - vc[i]));
				}
			}
			if (worst > 2e-5) {
				fail_msg("same=%d nesterov=%d: dmsgd vs centralized differ by %g", same,
					 nest, worst);
			}
			print_message("  full/uniform dmsgd vs centralized (same grads %d, nesterov %d): "
				      "max diff %.2g\n", same, nest, worst);
			net_finish(&t);
		}
	}
	free(W);
	macc_graph_finish(&gr);
}

/* ---- (3) dmsgd with omega = 0 is cdmsgd, bit for bit ---- */

static void test_dmsgd_omega0_is_cdmsgd_bitwise(void **state)
{
	const uint32_t n = 6;
	const size_t p = 1000; /* not a multiple of the kernel block */
	struct macc_graph gr = make_graph("ring", n, 0);
	double *W = make_w(&gr, MACC_WEIGHTS_METROPOLIS);

	(void)state;
	for (int nest = 0; nest < 2; nest++) {
		struct macc_hparams hd = {.alpha = 0.03f, .beta = 0.9f, .omega = 0.0f,
					  .nesterov = nest};
		struct macc_hparams hc = hd;
		struct net a, b;
		struct macc_rng r;

		hc.omega = 1.0f; /* ignored by cdmsgd */
		net_init(&a, n, p, W);
		net_init(&b, n, p, W);
		macc_rng_seed(&r, 9, 0);
		fill_normal(&r, a.x, n * p);
		fill_normal(&r, a.v, n * p);
		memcpy(b.x, a.x, n * p * sizeof(float));
		memcpy(b.v, a.v, n * p * sizeof(float));
		for (int k = 0; k < 20; k++) {
			fill_normal(&r, a.g, n * p);
			memcpy(b.g, a.g, n * p * sizeof(float));
			net_round(&a, MACC_ALGO_DMSGD, &hd, NULL);
			net_round(&b, MACC_ALGO_CDMSGD, &hc, NULL);
			assert_memory_equal(a.x, b.x, n * p * sizeof(float));
			assert_memory_equal(a.v, b.v, n * p * sizeof(float));
		}
		net_finish(&a);
		net_finish(&b);
	}
	/* with omega = 0 the neighbours' momentum is not even read */
	float x[2] = {1.0f, 2.0f}, v[2] = {0.5f, -0.5f}, g[2] = {1.0f, 1.0f};
	float x2[2] = {1.0f, 2.0f}, v2[2] = {0.5f, -0.5f};
	float nx[2] = {3.0f, 4.0f}, nv[2] = {NAN, NAN};
	struct macc_neighbour nb = {.w = 0.5f, .x = nx, .v = nv}, nbc = {.w = 0.5f, .x = nx};
	struct macc_hparams h0 = {.alpha = 0.5f, .beta = 0.5f, .omega = 0.0f};
	macc_consensus_step(MACC_ALGO_DMSGD, &h0, 2, x, v, g, 0.5f, &nb, 1, NULL);
	macc_consensus_step(MACC_ALGO_CDMSGD, &h0, 2, x2, v2, g, 0.5f, &nbc, 1, NULL);
	assert_memory_equal(x, x2, sizeof(x));
	assert_memory_equal(v, v2, sizeof(v));
	free(W);
	macc_graph_finish(&gr);
}

/* ---- (4) strongly convex quadratics ---- */

/*
 * f_j(x) = 0.5 a_j ||x - b_j||^2 on a ring of 8, exact gradients g_j = a_j (x_j - b_j). The
 * minimiser of sum_j f_j is x* = sum a_j b_j / sum a_j. With a constant step, decentralized
 * methods stop at a fixed point O(alpha) away from x* (Yuan, Ling, Yin 2016 for DGD: the
 * consensus error is at most alpha G / (1 - |lambda_2|), G a bound on the local gradients, and
 * the mean is within the same order of x*). The bound asserted here is
 *
 *     max_j ||x_j - x*|| <= (L / mu) * alpha_eff * G / (1 - |lambda_2|)
 *
 * with L = max a_j, mu = min a_j, G = max_j a_j ||x* - b_j|| (the local gradients at the
 * optimum, which is what the bias is made of) and alpha_eff = alpha / (1 - beta), the step of a
 * heavy-ball method at steady state. Halving alpha must roughly halve the error (ratio >= 1.6).
 * Centralized has no bias: it reaches x* to float precision.
 */
static double quad_run(const struct algo_case *ac, float alpha, const double *W, uint32_t n,
		       const float *a, const float *b, const double *xstar, size_t p, int rounds)
{
	struct macc_hparams hp = {.alpha = alpha, .beta = ac->beta, .omega = ac->omega,
				  .nesterov = ac->nesterov};
	struct net t;
	double worst = 0.0;

	net_init(&t, n, p, W);
	for (int k = 0; k < rounds; k++) {
		for (uint32_t j = 0; j < n; j++) {
			for (size_t i = 0; i < p; i++) {
				t.g[j * p + i] = a[j] * (t.x[j * p + i] - b[j * p + i]);
			}
		}
		if (ac->a == MACC_ALGO_CENTRALIZED) {
			/* one shared model: agent 0's copy, gradients of all agents at it */
			float gbar[8];

			for (size_t i = 0; i < p; i++) {
				double s = 0.0;

				for (uint32_t j = 0; j < n; j++) {
					s += a[j] * (t.x[i] - b[j * p + i]);
				}
				gbar[i] = (float)(s / n);
			}
			macc_centralized_step(&hp, p, t.x, t.v, gbar);
			for (uint32_t j = 1; j < n; j++) {
				memcpy(t.x + j * p, t.x, p * sizeof(float));
			}
		} else {
			net_round(&t, ac->a, &hp, NULL);
		}
	}
	for (uint32_t j = 0; j < n; j++) {
		double d = 0.0;

		for (size_t i = 0; i < p; i++) {
			d += (t.x[j * p + i] - xstar[i]) * (t.x[j * p + i] - xstar[i]);
		}
		worst = fmax(worst, sqrt(d));
	}
	net_finish(&t);
	return worst;
}

static void test_quadratics_converge_within_bound(void **state)
{
	const uint32_t n = 8;
	const size_t p = 4;
	struct macc_graph gr = make_graph("ring", n, 0);
	double *W = make_w(&gr, MACC_WEIGHTS_METROPOLIS);
	double lam = second_modulus(W, n);
	float a[8], b[32];
	double xstar[4] = {0}, sa = 0.0, L = 0.0, mu = 1e9, G = 0.0;
	struct macc_rng r;

	(void)state;
	macc_rng_seed(&r, 21, 0);
	for (uint32_t j = 0; j < n; j++) {
		a[j] = 0.5f + 1.5f * (float)macc_rng_uniform(&r);
		sa += a[j];
		L = fmax(L, a[j]);
		mu = fmin(mu, a[j]);
		for (size_t i = 0; i < p; i++) {
			b[j * p + i] = (float)(2.0 * macc_rng_uniform(&r) - 1.0);
			xstar[i] += a[j] * b[j * p + i];
		}
	}
	for (size_t i = 0; i < p; i++) {
		xstar[i] /= sa;
	}
	for (uint32_t j = 0; j < n; j++) {
		double d = 0.0;

		for (size_t i = 0; i < p; i++) {
			d += (xstar[i] - b[j * p + i]) * (xstar[i] - b[j * p + i]);
		}
		G = fmax(G, a[j] * sqrt(d));
	}
	for (size_t c = 0; c < sizeof(all_algos) / sizeof(all_algos[0]); c++) {
		const struct algo_case *ac = &all_algos[c];
		float alpha = 0.005f;
		double eff = alpha / (1.0 - ac->beta);
		double bound = L / mu * eff * G / (1.0 - lam);
		double e1 = quad_run(ac, alpha, W, n, a, b, xstar, p, 12000);
		double e2 = quad_run(ac, alpha / 2, W, n, a, b, xstar, p, 24000);

		print_message("  %-6s nesterov=%d omega=%.1f: error %.3g (bound %.3g), "
			      "alpha/2: %.3g (ratio %.2f)\n", macc_algo_name(ac->a), ac->nesterov,
			      (double)ac->omega, e1, bound, e2, e1 / e2);
		if (!(e1 <= bound) || !(e1 / e2 >= 1.6) || e1 < 1e-5) {
			fail_msg("%s nesterov=%d: error %g (bound %g), halved alpha %g",
				 macc_algo_name(ac->a), ac->nesterov, e1, bound, e2);
		}
	}
	struct algo_case cen = {MACC_ALGO_CENTRALIZED, false, 0.9f, 1.0f};
	double ec = quad_run(&cen, 0.02f, W, n, a, b, xstar, p, 3000);
	print_message("  centralized: error %.3g\n", ec);
	assert_true(ec < 1e-5);
	free(W);
	macc_graph_finish(&gr);
}

/* ---- (5) two agents, two rounds, by hand ---- */

/*
 * W = [[3/4, 1/4], [1/4, 3/4]], alpha = beta = omega = 1/2, scalar states, x^0 = (1, 3),
 * v^0 = (0, 0), given gradients g^0 = (2, -2), g^1 = (1, 4). Every number below is a dyadic
 * rational, so float32 computes it exactly and the test compares with ==.
 *
 * Round 0 mixes: mix(x)^0 = (3/4 + 3/4, 1/4 + 9/4) = (1.5, 2.5), mix(v)^0 = (0, 0).
 * Round 1 mixes are written per algorithm below.
 *
 * dmsgd:  v^1 = 1/2 (1/2*0 + 1/2*0) - 1/2 g^0 = (-1, 1);  x^1 = (1.5 - 1, 2.5 + 1) = (0.5, 3.5)
 *         mix(v)^1 = (-3/4 + 1/4, -1/4 + 3/4) = (-0.5, 0.5)
 *         m = 1/2 mix(v) + 1/2 v^1 = (-0.75, 0.75); v^2 = m/2 - g^1/2 = (-0.875, -1.625)
 *         mix(x)^1 = (0.375 + 0.875, 0.125 + 2.625) = (1.25, 2.75); x^2 = (0.375, 1.125)
 * dmsgd nesterov: v^1 = (-1, 1); x^1 = mix(x) + v^1/2 - g^0/2 = (1.5 - 0.5 - 1, 2.5 + 0.5 + 1)
 *         = (0, 4); v^2 = (-0.875, -1.625) as above (v does not depend on x);
 *         mix(x)^1 = (0 + 1, 0 + 3) = (1, 3); x^2 = (1 - 0.4375 - 0.5, 3 - 0.8125 - 2)
 *         = (0.0625, 0.1875)
 * cdmsgd: v^1 = (-1, 1); x^1 = (0.5, 3.5); v^2 = v^1/2 - g^1/2 = (-1, -1.5);
 *         x^2 = (1.25 - 1, 2.75 - 1.5) = (0.25, 1.25)
 * cdmsgd nesterov: x^1 = (0, 4) as for dmsgd; v^2 = (-1, -1.5);
 *         x^2 = (1 - 0.5 - 0.5, 3 - 0.75 - 2) = (0, 0.25)
 * cdsgd:  x^1 = (1.5 - 1, 2.5 + 1) = (0.5, 3.5); x^2 = (1.25 - 0.5, 2.75 - 2) = (0.75, 0.75)
 * dsgd:   y^0 = (1 - 1, 3 + 1) = (0, 4); x^1 = (0 + 1, 0 + 3) = (1, 3);
 *         y^1 = (1 - 0.5, 3 - 2) = (0.5, 1); x^2 = (0.375 + 0.25, 0.125 + 0.75) = (0.625, 0.875)
 * centralized (x^0 = 2, v^0 = 0, gbar = 1 then 2): v^1 = -0.5, x^1 = 1.5;
 *         v^2 = -0.25 - 1 = -1.25, x^2 = 0.25; nesterov: x^1 = 2 - 0.25 - 0.5 = 1.25,
 *         x^2 = 1.25 - 0.625 - 1 = -0.375
 */
static void test_two_agents_by_hand(void **state)
{
	const double W[4] = {0.75, 0.25, 0.25, 0.75};
	const struct {
		enum macc_algo a;
		bool nesterov;
		float x1[2], v1[2], x2[2], v2[2];
	} cases[] = {
		{MACC_ALGO_DMSGD, false, {0.5f, 3.5f}, {-1, 1}, {0.375f, 1.125f}, {-0.875f, -1.625f}},
		{MACC_ALGO_DMSGD, true, {0, 4}, {-1, 1}, {0.0625f, 0.1875f}, {-0.875f, -1.625f}},
		{MACC_ALGO_CDMSGD, false, {0.5f, 3.5f}, {-1, 1}, {0.25f, 1.25f}, {-1, -1.5f}},
		{MACC_ALGO_CDMSGD, true, {0, 4}, {-1, 1}, {0, 0.25f}, {-1, -1.5f}},
		{MACC_ALGO_CDSGD, false, {0.5f, 3.5f}, {0, 0}, {0.75f, 0.75f}, {0, 0}},
		{MACC_ALGO_DSGD, false, {1, 3}, {0, 0}, {0.625f, 0.875f}, {0, 0}},
	};

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct macc_hparams hp = {.alpha = 0.5f, .beta = 0.5f, .omega = 0.5f,
					  .nesterov = cases[c].nesterov};
		struct net t;

		net_init(&t, 2, 1, W);
		t.x[0] = 1.0f;
		t.x[1] = 3.0f;
		t.g[0] = 2.0f;
		t.g[1] = -2.0f;
		net_round(&t, cases[c].a, &hp, NULL);
		if (memcmp(t.x, cases[c].x1, 8) != 0 || memcmp(t.v, cases[c].v1, 8) != 0) {
			fail_msg("%s nesterov=%d round 1: x (%g, %g) v (%g, %g)",
				 macc_algo_name(cases[c].a), cases[c].nesterov, (double)t.x[0],
				 (double)t.x[1], (double)t.v[0], (double)t.v[1]);
		}
		t.g[0] = 1.0f;
		t.g[1] = 4.0f;
		net_round(&t, cases[c].a, &hp, NULL);
		if (memcmp(t.x, cases[c].x2, 8) != 0 || memcmp(t.v, cases[c].v2, 8) != 0) {
			fail_msg("%s nesterov=%d round 2: x (%g, %g) v (%g, %g)",
				 macc_algo_name(cases[c].a), cases[c].nesterov, (double)t.x[0],
				 (double)t.x[1], (double)t.v[0], (double)t.v[1]);
		}
		net_finish(&t);
	}
	for (int nest = 0; nest < 2; nest++) {
		struct macc_hparams hp = {.alpha = 0.5f, .beta = 0.5f, .nesterov = nest};
		float x = 2.0f, v = 0.0f, g = 1.0f;

		macc_centralized_step(&hp, 1, &x, &v, &g);
		assert_true(v == -0.5f && x == (nest ? 1.25f : 1.5f));
		g = 2.0f;
		macc_centralized_step(&hp, 1, &x, &v, &g);
		assert_true(v == -1.25f && x == (nest ? -0.375f : 0.25f));
	}
}

/* ---- (6) missing neighbours ---- */

static void test_fold_missing(void **state)
{
	const double w[4] = {0.25, 0.125, 0.2, 0.1};
	const bool arrived[4] = {true, false, true, false};
	double wo[4], self_w;

	(void)state;
	assert_int_equal(macc_fold_missing(0.325, w, arrived, 4, &self_w, wo), 2);
	assert_close(self_w, 0.325 + 0.125 + 0.1, 1e-15);
	assert_true(wo[0] == 0.25 && wo[1] == 0.0 && wo[2] == 0.2 && wo[3] == 0.0);
	assert_close(self_w + wo[0] + wo[1] + wo[2] + wo[3], 1.0, 1e-15);

	/* every row of a Metropolis W stays stochastic under any drop pattern */
	struct macc_graph gr = make_graph("regular:4", 10, 2);
	double *W = make_w(&gr, MACC_WEIGHTS_METROPOLIS);
	struct macc_rng r;
	macc_rng_seed(&r, 5, MACC_STREAM_DROP);
	for (int trial = 0; trial < 200; trial++) {
		uint32_t j = (uint32_t)macc_rng_below(&r, 10);
		double ww[10], out[10], s;
		bool arr[10];
		size_t k = 0, missing = 0;

		for (uint32_t l = 0; l < 10; l++) {
			if (l != j && gr.adj[j * 10 + l]) {
				ww[k] = W[j * 10 + l];
				arr[k] = macc_rng_uniform(&r) < 0.5;
				missing += !arr[k];
				k++;
			}
		}
		assert_int_equal(macc_fold_missing(W[j * 10 + j], ww, arr, k, &s, out), missing);
		for (size_t i = 0; i < k; i++) {
			s += out[i];
			assert_true(out[i] == (arr[i] ? ww[i] : 0.0));
		}
		assert_close(s, 1.0, 1e-12);
	}
	free(W);
	macc_graph_finish(&gr);
}

static void test_dropped_neighbour_matches_folded_equations(void **state)
{
	/* ring of 4 with Metropolis weights 1/3; agent 0 misses agent 1 in round 0 */
	const uint32_t n = 4;
	const size_t p = 700;
	struct macc_graph gr = make_graph("ring", n, 0);
	double *W = make_w(&gr, MACC_WEIGHTS_METROPOLIS);
	uint8_t drop[16] = {0};

	(void)state;
	drop[0 * n + 1] = 1;
	for (size_t c = 0; c < sizeof(all_algos) / sizeof(all_algos[0]); c++) {
		const struct algo_case *ac = &all_algos[c];
		struct macc_hparams hp = {.alpha = 0.1f, .beta = ac->beta, .omega = ac->omega,
					  .nesterov = ac->nesterov};
		struct net t;
		struct macc_rng r;
		float *sent = malloc(n * p * sizeof(float)), *x0 = malloc(p * sizeof(float));
		float *v0 = malloc(p * sizeof(float)), *xz = malloc(p * sizeof(float));
		float *vz = malloc(p * sizeof(float));
		const float sw = (float)(W[0] + W[1]), w3 = (float)W[3];

		assert_true(sent && x0 && v0 && xz && vz);
		net_init(&t, n, p, W);
		macc_rng_seed(&r, 77, 0);
		fill_normal(&r, t.x, n * p);
		fill_normal(&r, t.v, n * p);
		fill_normal(&r, t.g, n * p);
		for (uint32_t j = 0; j < n; j++) {
			const float *o = macc_algo_outgoing(ac->a, &hp, p, t.x + j * p, t.g + j * p,
							    sent + j * p);
			if (o != sent + j * p) {
				memcpy(sent + j * p, o, p * sizeof(float));
			}
		}
		memcpy(x0, t.x, p * sizeof(float));
		memcpy(v0, t.v, p * sizeof(float));
		const float *v3 = t.v + 3 * p;
		/* The folded equations for agent 0, written out in the documented order. */
		for (size_t i = 0; i < p; i++) {
			float mx = sw * sent[i] + w3 * sent[3 * p + i];
			float m = v0[i], nv;

			if (ac->a == MACC_ALGO_DMSGD) {
				float mv = sw * v0[i] + w3 * v3[i];

				m = ac->omega == 1.0f ? mv : ac->omega * mv + (1.0f - ac->omega) * v0[i];
			}
			nv = ac->beta * m - hp.alpha * t.g[i];
			switch (ac->a) {
			case MACC_ALGO_DSGD:
				xz[i] = mx;
				vz[i] = v0[i];
				break;
			case MACC_ALGO_CDSGD:
				xz[i] = mx - hp.alpha * t.g[i];
				vz[i] = v0[i];
				break;
			default:
				vz[i] = nv;
				xz[i] = ac->nesterov ? mx + ac->beta * nv - hp.alpha * t.g[i] : mx + nv;
			}
		}
		/* the same step with the neighbour left in the list at weight 0, x = NULL */
		struct macc_neighbour nb[2] = {
			{.w = 0.0f, .x = NULL, .v = NULL},
			{.w = w3, .x = sent + 3 * p, .v = t.v + 3 * p},
		};
		float *xl = malloc(p * sizeof(float)), *vl = malloc(p * sizeof(float));
		assert_true(xl && vl);
		memcpy(xl, x0, p * sizeof(float));
		memcpy(vl, v0, p * sizeof(float));
		macc_consensus_step(ac->a, &hp, p, xl, vl, t.g, sw, nb, 2, NULL);

		net_round(&t, ac->a, &hp, drop);
		assert_memory_equal(t.x, xz, p * sizeof(float));
		assert_memory_equal(t.v, vz, p * sizeof(float));
		assert_memory_equal(xl, xz, p * sizeof(float));
		assert_memory_equal(vl, vz, p * sizeof(float));
		free(xl);
		free(vl);
		free(sent);
		free(x0);
		free(v0);
		free(xz);
		free(vz);
		net_finish(&t);
	}
	free(W);
	macc_graph_finish(&gr);
}

static void test_random_drops_still_reach_consensus(void **state)
{
	const uint32_t n = 8;
	const size_t p = 16;
	struct macc_graph gr = make_graph("ring", n, 0);
	double *W = make_w(&gr, MACC_WEIGHTS_METROPOLIS);
	struct macc_hparams hp = {.alpha = 0.1f, .beta = 0.9f, .omega = 1.0f};
	uint8_t drop[64];
	struct macc_rng r, rd;
	struct net t;
	double d0;

	(void)state;
	net_init(&t, n, p, W);
	macc_rng_seed(&r, 3, 0);
	macc_rng_seed(&rd, 3, MACC_STREAM_DROP);
	fill_normal(&r, t.x, n * p);
	d0 = net_spread(&t);
	for (int k = 0; k < 300; k++) {
		for (size_t i = 0; i < 64; i++) {
			drop[i] = macc_rng_uniform(&rd) < 0.3;
		}
		net_round(&t, MACC_ALGO_DMSGD, &hp, drop);
	}
	print_message("  ring 8, 30%% drops: spread %.3g -> %.3g in 300 rounds\n", d0,
		      net_spread(&t));
	assert_true(net_spread(&t) < 1e-4 * d0);
	net_finish(&t);
	free(W);
	macc_graph_finish(&gr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_graph_degrees_and_connectivity),
		cmocka_unit_test(test_graph_random_regular),
		cmocka_unit_test(test_graph_erdos_renyi),
		cmocka_unit_test(test_graph_bad_specs),
		cmocka_unit_test(test_graph_edgelist),
		cmocka_unit_test(test_weights_metropolis_and_uniform),
		cmocka_unit_test(test_weights_validate_errors),
		cmocka_unit_test(test_spectral_gap_closed_forms),
		cmocka_unit_test(test_algo_names_and_outgoing),
		cmocka_unit_test(test_zero_gradient_consensus_rate),
		cmocka_unit_test(test_full_uniform_dmsgd_is_centralized),
		cmocka_unit_test(test_dmsgd_omega0_is_cdmsgd_bitwise),
		cmocka_unit_test(test_quadratics_converge_within_bound),
		cmocka_unit_test(test_two_agents_by_hand),
		cmocka_unit_test(test_fold_missing),
		cmocka_unit_test(test_dropped_neighbour_matches_folded_equations),
		cmocka_unit_test(test_random_drops_still_reach_consensus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
