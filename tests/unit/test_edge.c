/*
 * test_edge.c - beyond a fixed undirected graph, the pure functions: time-varying schedules,
 * push-sum forms on directed
 * graphs, compressors and CHOCO error feedback (macc-algorithms(7), "Beyond a fixed undirected
 * graph"). The maths is checked through small synchronous N-agent drivers written over the
 * public functions, the way macc-sim uses them: every agent sends its round-k state, then every
 * agent steps with what it received. The numeric checks of macc-algorithms(7) are redone and their
 * numbers printed.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macc/consensus.h"
#include "macc/err.h"
#include "macc/mixer.h"
#include "macc/rng.h"

/* ---- helpers ---- */

#define assert_close(a, b, tol) assert_close_at((a), (b), (tol), __FILE__, __LINE__)

static void assert_close_at(double a, double b, double tol, const char *file, int line)
{
	if (!(fabs(a - b) <= tol)) {
		fail_msg("%s:%d: %.17g != %.17g (tolerance %g)", file, line, a, b, tol);
	}
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	assert_non_null(p);
	return p;
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

static struct macc_digraph make_digraph(const char *text, uint32_t n)
{
	struct macc_digraph g = {0};
	struct macc_errmsg e = {{0}};
	int rc = macc_digraph_parse_edgelist(text, strlen(text), n, "test", &g, &e);

	if (rc != 0) {
		fail_msg("digraph: %d %s", rc, e.text);
	}
	return g;
}

/*
 * max |a[i] - b[i]| (b may be NULL: max |a[i]|), reduced in float, the elements' own type: a
 * float difference and its absolute value are exact in float, so this equals the double-valued
 * fmax(m, fabs((double)...)) loop bit for bit. That loop (a double fmax reduction fed by a
 * widened float) makes aarch64 GCC 12.2 at -O3 die in the vectorizer (internal compiler error in
 * vect_transform_reduction); the arm64 cross build in CI compiles every test at -O3.
 */
static double max_abs_diff(const float *a, const float *b, size_t n)
{
	float m = 0.0f;

	for (size_t i = 0; i < n; i++) {
		m = fmaxf(m, fabsf(b ? a[i] - b[i] : a[i]));
	}
	return m;
}

static void fill_normal(struct macc_rng *r, float *x, size_t n, double sd)
{
	for (size_t i = 0; i < n; i++) {
		x[i] = (float)(sd * macc_rng_normal(r));
	}
}

/* Heterogeneous quadratics f_j(x) = 0.5 sum_i a_ji (x_i - b_ji)^2; the minimiser of the
 * unweighted sum is x*_i = sum_j a_ji b_ji / sum_j a_ji. */
struct quad {
	uint32_t n;
	size_t p;
	float *a, *b; /* [n][p] */
	double *xstar; /* [p] */
};

static struct quad quad_make(uint32_t n, size_t p, uint64_t seed)
{
	struct quad q = {.n = n, .p = p};
	struct macc_rng r;

	macc_rng_seed(&r, seed, 77);
	q.a = xcalloc((size_t)n * p, sizeof(float));
	q.b = xcalloc((size_t)n * p, sizeof(float));
	q.xstar = xcalloc(p, sizeof(double));
	for (size_t k = 0; k < (size_t)n * p; k++) {
		q.a[k] = (float)(0.5 + 1.5 * macc_rng_uniform(&r));
		q.b[k] = (float)(3.0 * macc_rng_normal(&r));
	}
	for (size_t i = 0; i < p; i++) {
		double num = 0, den = 0;

		for (uint32_t j = 0; j < n; j++) {
			num += (double)q.a[(size_t)j * p + i] * q.b[(size_t)j * p + i];
			den += q.a[(size_t)j * p + i];
		}
		q.xstar[i] = num / den;
	}
	return q;
}

static void quad_free(struct quad *q)
{
	free(q->a);
	free(q->b);
	free(q->xstar);
}

static void quad_grad(const struct quad *q, uint32_t j, const float *x, float *g)
{
	const float *a = q->a + (size_t)j * q->p, *b = q->b + (size_t)j * q->p;

	for (size_t i = 0; i < q->p; i++) {
		g[i] = a[i] * (x[i] - b[i]);
	}
}

/* || mean_j x_j - x* || */
static double dist_to_opt(const struct quad *q, const float *x)
{
	double s = 0;

	for (size_t i = 0; i < q->p; i++) {
		double m = 0;

		for (uint32_t j = 0; j < q->n; j++) {
			m += x[(size_t)j * q->p + i];
		}
		m /= q->n;
		s += (m - q->xstar[i]) * (m - q->xstar[i]);
	}
	return sqrt(s);
}

/* max over agents and coordinates of |x_j - mean| */
static double spread(const float *x, uint32_t n, size_t p)
{
	double worst = 0;

	for (size_t i = 0; i < p; i++) {
		double m = 0;

		for (uint32_t j = 0; j < n; j++) {
			m += x[(size_t)j * p + i];
		}
		m /= n;
		for (uint32_t j = 0; j < n; j++) {
			worst = fmax(worst, fabs(x[(size_t)j * p + i] - m));
		}
	}
	return worst;
}

/* ---- N agents driven through the mixer (mixer.h), the way macc-sim and macc-agentd run them:
 * every agent forms its outgoing state, then every agent steps with its neighbours' ---- */

struct drive {
	uint32_t n;
	size_t p;
	enum macc_algo algo;
	struct macc_hparams hp;
	const double *W;          /* [n][n], row j = what j receives: W, or P with pushsum */
	bool pushsum;             /* l is an in-neighbour of j iff P[j][l] > 0 */
	const struct macc_schedule *sched; /* a time-varying schedule, or NULL */
	uint64_t round0;          /* the first round's number */
	const struct quad *q;     /* NULL: zero gradients */
	struct macc_compressor c; /* none: uncompressed */
	float gamma;
	uint64_t bytes;           /* blob bytes sent per agent, summed over rounds */
	bool diverged;            /* a compressed run overflowed (outgoing refused a non-finite) */
	/* optional, called after every round with the new and the previous numerators / weights */
	void (*check)(uint32_t n, size_t p, const float *z, const float *u, const double *w,
		      const float *zo, const float *uo, const double *wo, float beta);
	double *w;                /* pushsum: the weights after the run (n), or NULL */
};

static bool drive_linked(const struct drive *d, uint32_t j, uint32_t l, bool *in, bool *out)
{
	uint32_t n = d->n;

	*in = d->W[(size_t)j * n + l] != 0.0;
	*out = d->pushsum ? d->W[(size_t)l * n + j] != 0.0 : *in;
	return l != j && (*in || *out);
}

/* Agent j's mixer from x0, its neighbours (ascending) into nb, their count returned. */
static size_t drive_mixer(const struct drive *d, uint32_t j, const float *x0,
			  struct macc_mixer *m, uint32_t *nb)
{
	struct macc_mixer_cfg mc = {
		.algo = d->algo,
		.pushsum = d->pushsum,
		.schedule = d->sched != NULL ? d->sched->kind : MACC_SCHEDULE_STATIC,
		.comp = d->c,
		.gamma = d->gamma,
		.n = d->p,
	};
	double *w = xcalloc(d->n, sizeof(double));
	struct macc_errmsg e = {{0}};
	bool in, out;
	size_t k = 0;

	for (uint32_t l = 0; l < d->n; l++) {
		if (drive_linked(d, j, l, &in, &out)) {
			w[k] = d->W[(size_t)j * d->n + l];
			nb[k++] = l;
		}
	}
	mc.nnb = k;
	if (macc_mixer_init(m, &mc, x0, d->round0, true, &e) != 0) {
		fail_msg("mixer of agent %u: %s", j, e.text);
	}
	for (size_t i = 0; i < k; i++) {
		(void)drive_linked(d, j, nb[i], &in, &out);
		macc_mixer_set_link(m, i, nb[i], in, out);
	}
	macc_mixer_set_row(m, d->W[(size_t)j * d->n + j], w);
	free(w);
	return k;
}

/* Every agent's gradient at its model and its outgoing state; false if one diverged. */
static bool drive_outgoing(struct drive *d, struct macc_mixer *m, float *x, float *v, float *g,
			   struct macc_mixer_out *out)
{
	size_t p = d->p;

	for (uint32_t j = 0; j < d->n; j++) {
		struct macc_errmsg e = {{0}};
		int rc;

		if (d->q != NULL) {
			quad_grad(d->q, j, macc_mixer_model(&m[j], x + (size_t)j * p),
				  g + (size_t)j * p);
		}
		rc = macc_mixer_outgoing(&m[j], &d->hp, x + (size_t)j * p, v + (size_t)j * p,
					 g + (size_t)j * p, &out[j], &e);
		if (rc == -ERANGE) {
			return false;
		}
		assert_int_equal(rc, 0);
		d->bytes += out[j].x_len + out[j].v_len;
	}
	return true;
}

/* Runs `rounds` rounds from x (and v) in place ([n][p] each; an agent's public copies of the
 * others start at its own x: give them all the same x^0 when compressing). */
static void drive_rounds(struct drive *d, float *x, float *v, int rounds)
{
	uint32_t n = d->n;
	size_t p = d->p;
	struct macc_mixer *m = xcalloc(n, sizeof(*m));
	struct macc_mixer_out *out = xcalloc(n, sizeof(*out));
	struct macc_mixer_in *in = xcalloc(n, sizeof(*in));
	uint32_t *nb = xcalloc((size_t)n * n, sizeof(uint32_t)), *part = xcalloc(n, sizeof(*part));
	size_t *nnb = xcalloc(n, sizeof(size_t));
	float *xn = xcalloc((size_t)n * p, sizeof(float)), *vn = xcalloc((size_t)n * p, 4);
	float *g = xcalloc((size_t)n * p, sizeof(float));
	double *w = xcalloc(n, sizeof(double)), *wo = xcalloc(n, sizeof(double));

	for (uint32_t j = 0; j < n; j++) {
		nnb[j] = drive_mixer(d, j, x + (size_t)j * p, &m[j], nb + (size_t)j * n);
	}
	for (int k = 0; k < rounds; k++) {
		uint64_t r = d->round0 + (uint64_t)k;

		if (d->sched != NULL) {
			assert_int_equal(macc_schedule_round(d->sched, r, part, NULL), 0);
		}
		for (uint32_t j = 0; j < n; j++) {
			macc_mixer_begin(&m[j], r, d->sched != NULL ? part[j] : MACC_NO_PARTNER);
			wo[j] = macc_mixer_pushsum_weight(&m[j]);
		}
		if (!drive_outgoing(d, m, x, v, g, out)) {
			d->diverged = true;
			break;
		}
		memcpy(xn, x, (size_t)n * p * sizeof(float));
		memcpy(vn, v, (size_t)n * p * sizeof(float));
		for (uint32_t j = 0; j < n; j++) {
			struct macc_mixer_report rep;

			for (size_t i = 0; i < nnb[j]; i++) {
				const struct macc_mixer_out *o = &out[nb[(size_t)j * n + i]];

				in[i] = (struct macc_mixer_in){true, o->x, o->v, o->weight, false,
							       o->x_blob, o->v_blob, o->x_len,
							       o->v_len};
			}
			macc_mixer_step(&m[j], &d->hp, xn + (size_t)j * p, vn + (size_t)j * p,
					g + (size_t)j * p, in, 0, &rep);
			assert_int_equal(rep.missed, 0);
			w[j] = macc_mixer_pushsum_weight(&m[j]);
		}
		if (d->check != NULL) {
			d->check(n, p, xn, vn, w, x, v, wo, d->hp.beta);
		}
		memcpy(x, xn, (size_t)n * p * sizeof(float));
		memcpy(v, vn, (size_t)n * p * sizeof(float));
	}
	if (d->w != NULL) {
		memcpy(d->w, w, n * sizeof(double));
	}
	for (uint32_t j = 0; j < n; j++) {
		macc_mixer_finish(&m[j]);
	}
	free(m);
	free(out);
	free(in);
	free(nb);
	free(part);
	free(nnb);
	free(xn);
	free(vn);
	free(g);
	free(w);
	free(wo);
}

/* ---- an undirected run: static W, optional CHOCO compression ---- */

struct urun {
	uint32_t n;
	size_t p;
	enum macc_algo algo;
	struct macc_hparams hp;
	const double *W;          /* [n][n] */
	const struct quad *q;     /* NULL: zero gradients */
	struct macc_compressor c; /* none: today's path */
	float gamma;
	uint64_t bytes;           /* blob bytes sent per agent, summed over rounds */
	bool diverged;            /* a compressed run overflowed (encode refused a non-finite) */
};

static void urun_rounds(struct urun *u, float *x, float *v, int rounds)
{
	struct drive d = {.n = u->n, .p = u->p, .algo = u->algo, .hp = u->hp, .W = u->W,
			  .q = u->q, .c = u->c, .gamma = u->gamma};

	drive_rounds(&d, x, v, rounds);
	u->bytes += d.bytes;
	u->diverged = d.diverged;
}

/* ---- a push-sum run on a digraph ---- */

struct prun {
	const struct macc_digraph *g;
	size_t p;
	enum macc_algo base;
	struct macc_hparams hp;
	const struct quad *q; /* NULL: zero gradients */
	bool biased;          /* the wrong variant of the note: heavy-ball step on x, z = w x */
};

typedef void (*check_fn)(uint32_t n, size_t p, const float *z, const float *u, const double *w,
			 const float *zo, const float *uo, const double *wo, float beta);

/* NOT macc's round: macc-algorithms(7)'s counter-example (heavy-ball on the de-biased x, then
 * z = w x and a plain push of z), kept to show its alpha-independent bias. */
static void biased_rounds(const struct prun *r, const double *P, float *z, float *u, double *w,
			  int rounds)
{
	uint32_t n = r->g->n;
	size_t p = r->p;
	float *zo = xcalloc((size_t)n * p, sizeof(float)), *g = xcalloc(p, sizeof(float));
	float *x = xcalloc(p, sizeof(float));
	double *wo = xcalloc(n, sizeof(double));

	for (int k = 0; k < rounds; k++) {
		for (uint32_t j = 0; j < n; j++) {
			float *zj = z + (size_t)j * p, *vj = u + (size_t)j * p;

			macc_pushsum_debias(p, zj, w[j], x);
			quad_grad(r->q, j, x, g);
			for (size_t i = 0; i < p; i++) {
				vj[i] = r->hp.beta * vj[i] - r->hp.alpha * g[i];
				zj[i] = (float)w[j] * (x[i] + vj[i]);
			}
		}
		memcpy(zo, z, (size_t)n * p * sizeof(float));
		memcpy(wo, w, n * sizeof(double));
		for (uint32_t j = 0; j < n; j++) {
			for (size_t i = 0; i < p; i++) {
				float acc = (float)P[(size_t)j * n + j] * zo[(size_t)j * p + i];

				for (uint32_t l = 0; l < n; l++) {
					if (l != j && r->g->adj[(size_t)l * n + j]) {
						acc += (float)P[(size_t)j * n + l] * zo[(size_t)l * p + i];
					}
				}
				z[(size_t)j * p + i] = acc;
			}
			w[j] = 0.0;
			for (uint32_t l = 0; l < n; l++) {
				w[j] += P[(size_t)j * n + l] * wo[l];
			}
		}
	}
	free(zo);
	free(g);
	free(x);
	free(wo);
}

/* z, u: [n][p] numerators; w: [n] weights (all 1 on entry: where push-sum starts); all in
 * place. Optional per-round check callback. */
static void prun_rounds(const struct prun *r, float *z, float *u, double *w, int rounds,
			check_fn check)
{
	uint32_t n = r->g->n;
	double *P = xcalloc((size_t)n * n, sizeof(double));
	struct drive d = {.n = n, .p = r->p, .algo = r->base, .hp = r->hp, .W = P, .pushsum = true,
			  .q = r->q, .check = check, .w = w};

	assert_int_equal(macc_pushsum_matrix(r->g, P), 0);
	for (uint32_t j = 0; j < n; j++) {
		assert_true(w[j] == 1.0);
	}
	if (r->biased) {
		biased_rounds(r, P, z, u, w, rounds);
	} else {
		drive_rounds(&d, z, u, rounds);
	}
	free(P);
}

/* ======================================================================================== */
/* Schedules                                                                                */
/* ======================================================================================== */

static void test_schedule_parse_and_checks(void **state)
{
	enum macc_schedule_kind k;
	struct macc_schedule s = {0};
	struct macc_errmsg e = {{0}};
	struct macc_graph ring8 = make_graph("ring", 8, 0), full6 = make_graph("full", 6, 0);

	(void)state;
	assert_int_equal(macc_schedule_parse("static", &k), 0);
	assert_int_equal(k, MACC_SCHEDULE_STATIC);
	assert_int_equal(macc_schedule_parse("matching", &k), 0);
	assert_int_equal(k, MACC_SCHEDULE_MATCHING);
	assert_int_equal(macc_schedule_parse("exp-pairs", &k), 0);
	assert_int_equal(k, MACC_SCHEDULE_EXP_PAIRS);
	assert_int_equal(macc_schedule_parse("exp_pairs", &k), MACC_ESPEC);
	assert_int_equal(macc_schedule_parse(NULL, &k), MACC_ESPEC);
	assert_string_equal(macc_schedule_name(MACC_SCHEDULE_EXP_PAIRS), "exp-pairs");

	/* exp-pairs: the ring on 8 lacks the hypercube edge 0-2; 6 is not a power of two */
	assert_int_equal(macc_schedule_init(&s, MACC_SCHEDULE_EXP_PAIRS, &ring8, 1, &e),
			 MACC_EGRAPH);
	assert_non_null(strstr(e.text, "hypercube edge 0-2"));
	assert_int_equal(macc_schedule_init(&s, MACC_SCHEDULE_EXP_PAIRS, &full6, 1, &e),
			 MACC_EGRAPH);
	assert_non_null(strstr(e.text, "power of two"));
	assert_null(s.off);
	/* static has no per-round graph: callers keep the configured W */
	assert_int_equal(macc_schedule_init(&s, MACC_SCHEDULE_STATIC, &ring8, 1, &e), 0);
	uint32_t part[8];

	assert_int_equal(macc_schedule_round(&s, 0, part, NULL), MACC_ESTATE);
	assert_int_equal(macc_schedule_partner(&s, 0, 3), MACC_NO_PARTNER);
	macc_schedule_finish(&s);
	macc_schedule_finish(NULL);
	macc_graph_finish(&ring8);
	macc_graph_finish(&full6);
}

static void test_exp_pairs_exact_average(void **state)
{
	const uint32_t n = 16;
	const size_t p = 7;
	struct macc_graph g = {0};
	struct macc_schedule s = {0};
	struct macc_errmsg e = {{0}};
	struct macc_rng r;
	float *x = xcalloc((size_t)n * p, sizeof(float));
	float *v = xcalloc((size_t)n * p, sizeof(float));
	double *W = xcalloc((size_t)n * n, sizeof(double));
	double avg[7] = {0};
	struct drive d = {.n = n, .p = p, .algo = MACC_ALGO_CDSGD, .W = W, .sched = &s,
			  .hp = {.alpha = 0.1f, .beta = 0.0f, .omega = 1.0f}};
	char text[4096];
	size_t len = 0;

	(void)state;
	/* the hypercube itself, as an edge list */
	for (uint32_t j = 0; j < n; j++) {
		for (uint32_t b = 1; b < n; b <<= 1) {
			if (j < (j ^ b)) {
				len += (size_t)snprintf(text + len, sizeof(text) - len,
							"%u %u\n", j, j ^ b);
			}
		}
	}
	assert_int_equal(macc_graph_parse_edgelist(text, len, n, "cube", &g, &e), 0);
	assert_int_equal(macc_schedule_init(&s, MACC_SCHEDULE_EXP_PAIRS, &g, 5, &e), 0);
	assert_int_equal(s.k, 4);
	assert_int_equal(macc_weights_build(&g, MACC_WEIGHTS_METROPOLIS, W), 0);

	macc_rng_seed(&r, 11, 1);
	fill_normal(&r, x, (size_t)n * p, 10.0);
	for (size_t i = 0; i < p; i++) {
		for (uint32_t j = 0; j < n; j++) {
			avg[i] += x[(size_t)j * p + i];
		}
		avg[i] /= n;
	}
	for (uint32_t round = 0; round < s.k; round++) {
		uint32_t part[16];

		assert_int_equal(macc_schedule_round(&s, round, part, NULL), 0);
		for (uint32_t j = 0; j < n; j++) {
			double sw, w;

			assert_int_equal(part[j], j ^ (1u << round));
			assert_int_equal(part[part[j]], j);
			assert_int_equal(macc_schedule_partner(&s, round, j), part[j]);
			assert_true(g.adj[(size_t)j * n + part[j]]);
			macc_schedule_weights(part[j], &sw, &w);
			assert_true(sw == 0.5 && w == 0.5);
		}
		/* one round of the mixers: each agent with its partner only */
		d.round0 = round;
		drive_rounds(&d, x, v, 1);
		/* not yet the average before the k-th round */
		if (round + 1 < s.k) {
			assert_true(spread(x, n, p) > 1e-3);
		}
	}
	/* after k rounds every agent holds the same float, the average up to float rounding */
	for (uint32_t j = 1; j < n; j++) {
		assert_memory_equal(x, x + (size_t)j * p, p * sizeof(float));
	}
	for (size_t i = 0; i < p; i++) {
		assert_close(x[i], avg[i], 1e-5 * (1.0 + fabs(avg[i])));
	}
	/* the pattern repeats with period k */
	assert_int_equal(macc_schedule_partner(&s, 4, 5), 5 ^ 1);
	assert_int_equal(macc_schedule_partner(&s, 7, 5), 5 ^ 8);
	macc_schedule_finish(&s);
	macc_graph_finish(&g);
	free(x);
	free(v);
	free(W);
}

/* Checks that one round of `s` is a valid maximal matching of g. */
static void check_matching(const struct macc_graph *g, const uint32_t *part)
{
	uint32_t n = g->n;

	for (uint32_t j = 0; j < n; j++) {
		if (part[j] == MACC_NO_PARTNER) {
			/* maximal: no idle neighbour */
			for (uint32_t l = 0; l < n; l++) {
				if (g->adj[(size_t)j * n + l] && part[l] == MACC_NO_PARTNER) {
					fail_msg("not maximal: %u and %u both idle", j, l);
				}
			}
			continue;
		}
		assert_true(part[j] < n && part[j] != j);
		assert_true(g->adj[(size_t)j * n + part[j]]);
		assert_int_equal(part[part[j]], j);
	}
}

static void test_matching_valid_deterministic_covering(void **state)
{
	const char *specs[] = {"torus:3x4", "er:0.4", "regular:3", "star", "full"};
	const uint32_t ns[] = {12, 11, 10, 7, 6};

	(void)state;
	for (size_t t = 0; t < sizeof(specs) / sizeof(specs[0]); t++) {
		struct macc_graph g = make_graph(specs[t], ns[t], 3);
		struct macc_schedule s = {0}, s2 = {0}, s3 = {0};
		struct macc_errmsg e = {{0}};
		uint32_t n = g.n;
		uint32_t *part = xcalloc(n, sizeof(uint32_t));
		uint32_t *part2 = xcalloc(n, sizeof(uint32_t));
		uint32_t *work = xcalloc(n, sizeof(uint32_t));
		uint8_t *used = xcalloc((size_t)n * n, 1);
		double *W = xcalloc((size_t)n * n, sizeof(double));
		int differs = 0, rounds = 400;
		size_t edges = 0, covered = 0;

		assert_int_equal(macc_schedule_init(&s, MACC_SCHEDULE_MATCHING, &g, 42, &e), 0);
		assert_int_equal(macc_schedule_init(&s2, MACC_SCHEDULE_MATCHING, &g, 42, &e), 0);
		assert_int_equal(macc_schedule_init(&s3, MACC_SCHEDULE_MATCHING, &g, 43, &e), 0);
		for (int r = 0; r < rounds; r++) {
			struct macc_graph rg = {0};

			assert_int_equal(macc_schedule_round(&s, (uint64_t)r, part, work), 0);
			check_matching(&g, part);
			/* a pure function of (seed, round, graph): another instance, same answer */
			assert_int_equal(macc_schedule_round(&s2, (uint64_t)r, part2, work), 0);
			assert_memory_equal(part, part2, n * sizeof(uint32_t));
			for (uint32_t j = 0; j < n; j++) {
				assert_int_equal(macc_schedule_partner(&s2, (uint64_t)r, j),
						 part[j]);
				if (part[j] != MACC_NO_PARTNER) {
					used[(size_t)j * n + part[j]] = 1;
				}
			}
			assert_int_equal(macc_schedule_round(&s3, (uint64_t)r, part2, work), 0);
			differs += memcmp(part, part2, n * sizeof(uint32_t)) != 0;
			/* the round's Metropolis W is doubly stochastic, and matches the row API */
			assert_int_equal(macc_schedule_graph(&s, (uint64_t)r, &rg), 0);
			assert_int_equal(macc_weights_build(&rg, MACC_WEIGHTS_METROPOLIS, W), 0);
			for (uint32_t j = 0; j < n; j++) {
				double rs = 0, cs = 0, sw, w;

				for (uint32_t l = 0; l < n; l++) {
					rs += W[(size_t)j * n + l];
					cs += W[(size_t)l * n + j];
					assert_true(W[(size_t)j * n + l] >= 0.0);
				}
				assert_close(rs, 1.0, 1e-12);
				assert_close(cs, 1.0, 1e-12);
				macc_schedule_weights(part[j], &sw, &w);
				assert_true(W[(size_t)j * n + j] == sw);
				if (part[j] != MACC_NO_PARTNER) {
					assert_true(W[(size_t)j * n + part[j]] == w);
				}
			}
			macc_graph_finish(&rg);
		}
		/* a later round does not depend on having computed the earlier ones */
		assert_int_equal(macc_schedule_round(&s2, 123, part2, work), 0);
		assert_int_equal(macc_schedule_round(&s, 123, part, work), 0);
		assert_memory_equal(part, part2, n * sizeof(uint32_t));
		for (size_t k = 0; k < (size_t)n * n; k++) {
			edges += g.adj[k];
			covered += g.adj[k] && used[k];
		}
		printf("  matching on %s (%u agents): %zu/%zu directed edge slots used in %d "
		       "rounds; seed 43 differs in %d rounds\n", specs[t], n, covered, edges,
		       rounds, differs);
		assert_int_equal(covered, edges);
		assert_true(differs > rounds / 2);
		macc_schedule_finish(&s);
		macc_schedule_finish(&s2);
		macc_schedule_finish(&s3);
		macc_graph_finish(&g);
		free(part);
		free(part2);
		free(work);
		free(used);
		free(W);
	}
}

/* ======================================================================================== */
/* Directed graphs and push-sum                                                             */
/* ======================================================================================== */

static const char DRING_CHORD[] = "# directed ring plus one chord\n"
				  "0 -> 1\n1 -> 2\n2 -> 3\n3 -> 4\n4 -> 5\n5 -> 0\n0 -> 3\n";

static void test_digraph_parse(void **state)
{
	struct macc_digraph g = make_digraph(DRING_CHORD, 6);
	struct macc_graph u = {0};
	struct macc_errmsg e = {{0}};

	(void)state;
	assert_int_equal(macc_digraph_outdeg(&g, 0), 2);
	assert_int_equal(macc_digraph_indeg(&g, 0), 1);
	assert_int_equal(macc_digraph_indeg(&g, 3), 2);
	assert_true(g.adj[0 * 6 + 3] && !g.adj[3 * 6 + 0]);
	macc_digraph_finish(&g);
	/* "a b" is both directions; blanks around the arrow */
	g = make_digraph("0 1\n1\t->\t2\n2 ->0 # c\n", 3);
	assert_true(g.adj[0 * 3 + 1] && g.adj[1 * 3 + 0] && g.adj[1 * 3 + 2] && !g.adj[2 * 3 + 1]);
	assert_true(g.adj[2 * 3 + 0]);
	macc_digraph_finish(&g);

	const struct {
		const char *text;
		uint32_t n;
		int code;
		const char *needle;
	} bad[] = {
		{"0 -> 1\n1 -> 2\n", 3, MACC_EGRAPH, "not strongly connected"},
		{"0 -> 1\n1 -> 3\n", 3, MACC_ESPEC, "test:2: agent number out of range"},
		{"0 -> \n", 3, MACC_ESPEC, "test:1: expected 'a -> b'"},
		{"0 => 1\n", 3, MACC_ESPEC, "test:1: expected"},
		{"0 -> 1 -> 2\n", 3, MACC_ESPEC, "test:1: trailing text"},
		{"1 -> 1\n", 3, MACC_ESPEC, "self loop"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = macc_digraph_parse_edgelist(bad[i].text, strlen(bad[i].text), bad[i].n,
						     "test", &g, &e);

		if (rc != bad[i].code || strstr(e.text, bad[i].needle) == NULL) {
			fail_msg("case %zu: got %d '%s'", i, rc, e.text);
		}
		assert_null(g.adj);
	}
	/* the undirected parser refuses arrows with a message that says why */
	assert_int_equal(macc_graph_parse_edgelist("0 -> 1\n", 7, 2, "u", &u, &e), MACC_ESPEC);
	assert_non_null(strstr(e.text, "u:1: directed edge"));
	/* other specs: both directions */
	assert_int_equal(macc_digraph_create("ring", 5, 0, &g, &e), 0);
	for (uint32_t j = 0; j < 5; j++) {
		assert_int_equal(macc_digraph_outdeg(&g, j), 2);
		assert_int_equal(macc_digraph_indeg(&g, j), 2);
	}
	assert_true(macc_digraph_strongly_connected(&g));
	macc_digraph_finish(&g);
	assert_int_equal(macc_digraph_create("file:/nonexistent/x", 5, 0, &g, &e), -ENOENT);
	macc_digraph_finish(NULL);
}

static void test_pushsum_matrix_and_parse(void **state)
{
	struct macc_digraph g = make_digraph(DRING_CHORD, 6);
	double P[36], self, pin[2];
	uint32_t od[2] = {2, 1};
	enum macc_algo a;

	(void)state;
	assert_int_equal(macc_pushsum_matrix(&g, P), 0);
	/* column-stochastic, not row-stochastic */
	for (uint32_t j = 0; j < 6; j++) {
		double cs = 0;

		for (uint32_t l = 0; l < 6; l++) {
			cs += P[l * 6 + j];
		}
		assert_close(cs, 1.0, 1e-15);
	}
	assert_true(P[3 * 6 + 0] == 1.0 / 3 && P[0 * 6 + 0] == 1.0 / 3 && P[1 * 6 + 1] == 0.5);
	double rs3 = P[3 * 6 + 3] + P[3 * 6 + 2] + P[3 * 6 + 0];

	assert_true(fabs(rs3 - 1.0) > 0.1);
	/* agent 3's row from out-degrees: in-neighbours 0 (outdeg 2) and 2 (outdeg 1) */
	macc_pushsum_row(1, od, 2, &self, pin);
	assert_true(self == P[3 * 6 + 3] && pin[0] == P[3 * 6 + 0] && pin[1] == P[3 * 6 + 2]);
	assert_int_equal(macc_pushsum_algo_parse("sgp", &a), 0);
	assert_int_equal(a, MACC_ALGO_CDMSGD);
	assert_int_equal(macc_pushsum_algo_parse("dmsgd", &a), 0);
	assert_int_equal(a, MACC_ALGO_DMSGD);
	assert_int_equal(macc_pushsum_algo_parse("dsgd", &a), MACC_ESPEC);
	struct macc_hparams hp = {.alpha = 0.1f, .beta = 0.9f, .omega = 1.0f};
	float z[2] = {1, 2}, u[2] = {0}, gr[2] = {0};

	assert_int_equal(macc_pushsum_step(MACC_ALGO_DSGD, &hp, 2, z, u, gr, 1.0f, NULL, 0, NULL),
			 MACC_ESPEC);
	assert_true(z[0] == 1.0f && z[1] == 2.0f);
	macc_digraph_finish(&g);
}

/* On a doubly stochastic P (a ring: every share 1/3 = the Metropolis weight), w stays 1 and sgp /
 * push-sum dmsgd equal cdmsgd / dmsgd bit for bit. */
static void test_pushsum_equals_undirected_on_ring(void **state)
{
	const uint32_t n = 6;
	const size_t p = 33;
	struct quad q = quad_make(n, p, 5);
	struct macc_graph ug = make_graph("ring", n, 0);
	struct macc_digraph dg = make_digraph("0 1\n1 2\n2 3\n3 4\n4 5\n5 0\n", n);
	double *W = xcalloc((size_t)n * n, sizeof(double)), w[6];
	float *x = xcalloc((size_t)n * p, sizeof(float));
	float *v = xcalloc((size_t)n * p, sizeof(float));
	float *z = xcalloc((size_t)n * p, sizeof(float));
	float *u = xcalloc((size_t)n * p, sizeof(float));
	struct macc_rng r;
	const enum macc_algo algos[] = {MACC_ALGO_CDMSGD, MACC_ALGO_DMSGD, MACC_ALGO_DMSGD};
	const float omegas[] = {1.0f, 1.0f, 0.5f};

	(void)state;
	assert_int_equal(macc_weights_build(&ug, MACC_WEIGHTS_METROPOLIS, W), 0);
	for (size_t t = 0; t < 3; t++) {
		struct urun ur = {.n = n, .p = p, .algo = algos[t], .W = W, .q = &q};
		struct prun pr = {.g = &dg, .p = p, .base = algos[t], .q = &q};

		ur.hp = (struct macc_hparams){.alpha = 0.05f, .beta = 0.9f, .omega = omegas[t]};
		pr.hp = ur.hp;
		macc_rng_seed(&r, 9, 2);
		fill_normal(&r, x, (size_t)n * p, 1.0);
		memcpy(z, x, (size_t)n * p * sizeof(float));
		memset(v, 0, (size_t)n * p * sizeof(float));
		memset(u, 0, (size_t)n * p * sizeof(float));
		for (uint32_t j = 0; j < n; j++) {
			w[j] = 1.0;
		}
		double d0 = dist_to_opt(&q, x);

		urun_rounds(&ur, x, v, 50);
		prun_rounds(&pr, z, u, w, 50, NULL);
		for (uint32_t j = 0; j < n; j++) {
			assert_true(w[j] == 1.0);
		}
		assert_memory_equal(x, z, (size_t)n * p * sizeof(float));
		assert_memory_equal(v, u, (size_t)n * p * sizeof(float));
		/* and it did move towards the optimum */
		assert_true(dist_to_opt(&q, x) < 0.5 * d0);
	}
	quad_free(&q);
	macc_graph_finish(&ug);
	macc_digraph_finish(&dg);
	free(W);
	free(x);
	free(v);
	free(z);
	free(u);
}

static int mass_rounds;

/* push conserves sum z (up to the added momentum), sum u (times beta), sum w */
static void check_mass(uint32_t n, size_t p, const float *z, const float *u, const double *w,
		       const float *zo, const float *uo, const double *wo, float beta)
{
	double sw = 0, swo = 0;

	for (uint32_t j = 0; j < n; j++) {
		sw += w[j];
		swo += wo[j];
	}
	assert_close(sw, swo, 1e-12);
	assert_close(sw, (double)n, 1e-12);
	for (size_t i = 0; i < p; i++) {
		double sz = 0, szo = 0, su = 0, suo = 0, mag = 0;

		for (uint32_t j = 0; j < n; j++) {
			sz += z[(size_t)j * p + i];
			szo += zo[(size_t)j * p + i];
			su += u[(size_t)j * p + i];
			suo += uo[(size_t)j * p + i];
			mag += fabs(zo[(size_t)j * p + i]) + fabs(uo[(size_t)j * p + i]);
		}
		/* zero gradients: sum u' = beta * sum u, sum z' = sum z + sum u' */
		assert_close(su, beta * suo, 1e-6 * (mag + 1.0));
		assert_close(sz, szo + su, 1e-6 * (mag + 1.0));
	}
	mass_rounds++;
}

static void test_pushsum_mass_and_average(void **state)
{
	const uint32_t n = 6;
	const size_t p = 9;
	struct macc_digraph g = make_digraph(DRING_CHORD, n);
	float *z = xcalloc((size_t)n * p, sizeof(float));
	float *u = xcalloc((size_t)n * p, sizeof(float));
	float *x = xcalloc(p, sizeof(float));
	double w[6], avg[9] = {0}, worst = 0, zworst = 0, wmin = 10, wmax = 0;
	struct macc_rng r;

	(void)state;
	macc_rng_seed(&r, 3, 4);
	/* mass, dmsgd push-sum form with momentum numerators, zero gradients */
	fill_normal(&r, z, (size_t)n * p, 5.0);
	fill_normal(&r, u, (size_t)n * p, 1.0);
	for (uint32_t j = 0; j < n; j++) {
		w[j] = 1.0;
	}
	struct prun pr = {.g = &g, .p = p, .base = MACC_ALGO_DMSGD,
			  .hp = {.alpha = 0.1f, .beta = 0.9f, .omega = 1.0f}};

	mass_rounds = 0;
	prun_rounds(&pr, z, u, w, 60, check_mass);
	assert_int_equal(mass_rounds, 60);

	/* zero gradients, beta = 0: de-biased x_j -> the average of the initial x's */
	fill_normal(&r, z, (size_t)n * p, 5.0);
	memset(u, 0, (size_t)n * p * sizeof(float));
	for (size_t i = 0; i < p; i++) {
		for (uint32_t j = 0; j < n; j++) {
			avg[i] += z[(size_t)j * p + i];
		}
		avg[i] /= n;
	}
	for (uint32_t j = 0; j < n; j++) {
		w[j] = 1.0;
	}
	pr.base = MACC_ALGO_CDMSGD;
	pr.hp.beta = 0.0f;
	prun_rounds(&pr, z, u, w, 300, NULL);
	for (uint32_t j = 0; j < n; j++) {
		macc_pushsum_debias(p, z + (size_t)j * p, w[j], x);
		for (size_t i = 0; i < p; i++) {
			worst = fmax(worst, fabs(x[i] - avg[i]));
			zworst = fmax(zworst, fabs(z[(size_t)j * p + i] - avg[i]));
		}
		wmin = fmin(wmin, w[j]);
		wmax = fmax(wmax, w[j]);
	}
	printf("  directed ring + chord, 300 rounds: |x - avg| <= %.3g; numerators off by %.3g; "
	       "w in [%.4f, %.4f]\n", worst, zworst, wmin, wmax);
	assert_true(worst < 1e-5);
	/* the weights are not 1 on this graph, so the de-biasing is what made it exact */
	assert_true(wmax - wmin > 0.1);
	assert_true(zworst > 0.1);
	free(z);
	free(u);
	free(x);
	macc_digraph_finish(&g);
}

/* Distance of the average de-biased x to the minimiser of the unweighted sum, after `rounds`. */
static double directed_quad_run(const struct macc_digraph *g, const struct quad *q,
				enum macc_algo base, bool biased, float alpha, int rounds)
{
	uint32_t n = g->n;
	size_t p = q->p;
	float *z = xcalloc((size_t)n * p, sizeof(float));
	float *u = xcalloc((size_t)n * p, sizeof(float));
	float *x = xcalloc((size_t)n * p, sizeof(float));
	double w[16], d;
	struct prun pr = {.g = g, .p = p, .base = base, .q = q, .biased = biased,
			  .hp = {.alpha = alpha, .beta = 0.9f, .omega = 1.0f}};

	for (uint32_t j = 0; j < n; j++) {
		w[j] = 1.0;
	}
	prun_rounds(&pr, z, u, w, rounds, NULL);
	for (uint32_t j = 0; j < n; j++) {
		macc_pushsum_debias(p, z + (size_t)j * p, w[j], x + (size_t)j * p);
	}
	d = dist_to_opt(q, x);
	free(z);
	free(u);
	free(x);
	return d;
}

/* macc-algorithms(7): on a directed graph with different quadratics per agent, the average of the
 * x_j approaches the minimiser of the unweighted sum with an error shrinking with alpha; the
 * numerator form has no w-weighting bias; push-sum dmsgd ends closer than sgp. */
static void test_pushsum_directed_quadratic(void **state)
{
	struct macc_digraph g = make_digraph(DRING_CHORD, 6);
	struct quad q = quad_make(6, 4, 21);
	const float alphas[] = {0.004f, 0.002f, 0.001f};
	double e_sgp[3], e_dm[3], e_bias[3];

	(void)state;
	for (int i = 0; i < 3; i++) {
		int rounds = (int)(40.0f / alphas[i]);

		e_sgp[i] = directed_quad_run(&g, &q, MACC_ALGO_CDMSGD, false, alphas[i], rounds);
		e_dm[i] = directed_quad_run(&g, &q, MACC_ALGO_DMSGD, false, alphas[i], rounds);
		e_bias[i] = directed_quad_run(&g, &q, MACC_ALGO_CDMSGD, true, alphas[i], rounds);
		printf("  directed quadratics, alpha %.3f (%d rounds): |xbar - x*| sgp %.3e, "
		       "push-sum dmsgd %.3e (%.1fx closer), step-on-x variant %.3e\n",
		       (double)alphas[i], rounds, e_sgp[i], e_dm[i], e_sgp[i] / e_dm[i],
		       e_bias[i]);
	}
	for (int i = 1; i < 3; i++) {
		/* halving alpha about halves the error of both numerator forms */
		assert_true(e_sgp[i] < 0.6 * e_sgp[i - 1] && e_sgp[i] > 0.4 * e_sgp[i - 1]);
		assert_true(e_dm[i] < 0.7 * e_dm[i - 1]);
	}
	/* push-sum dmsgd closer than sgp */
	assert_true(e_dm[2] < e_sgp[2]);
	/* the step-on-x variant keeps an alpha-independent bias */
	assert_true(e_bias[2] > 0.7 * e_bias[0]);
	assert_true(e_bias[2] > 10.0 * e_sgp[2]);
	quad_free(&q);
	macc_digraph_finish(&g);
}

/* ======================================================================================== */
/* Compressors                                                                              */
/* ======================================================================================== */

static void test_compress_parse(void **state)
{
	struct macc_compressor c;
	struct macc_errmsg e = {{0}};

	(void)state;
	assert_int_equal(macc_compress_parse("none", &c, &e), 0);
	assert_int_equal(c.kind, MACC_COMPRESS_NONE);
	assert_int_equal(macc_compress_size(&c, 100), 0);
	assert_int_equal(macc_compress_parse("bf16", &c, &e), 0);
	assert_int_equal(c.kind, MACC_COMPRESS_BF16);
	assert_int_equal(macc_compress_size(&c, 100), 12 + 200);
	assert_int_equal(macc_compress_parse("int8", &c, &e), 0);
	assert_int_equal(macc_compress_size(&c, 257), 12 + 8 + 257);
	assert_true(macc_compress_default_gamma(&c) == 1.0f);
	assert_int_equal(macc_compress_parse("topk:0.1", &c, &e), 0);
	assert_int_equal(c.kind, MACC_COMPRESS_TOPK);
	assert_int_equal(macc_compress_count(&c, 1000), 100);
	assert_int_equal(macc_compress_count(&c, 3), 1);
	assert_int_equal(macc_compress_size(&c, 1000), 12 + 800);
	assert_true(macc_compress_default_gamma(&c) < 0.5f);
	assert_int_equal(macc_compress_parse("topk:1", &c, &e), 0);
	assert_int_equal(macc_compress_count(&c, 10), 10);
	const char *bad[] = {"topk:0", "topk:1.5", "topk:", "topk:-0.1", "topk:0.1x", "topk:nan",
			     "int4", "", "BF16"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e.text[0] = '\0';
		assert_int_equal(macc_compress_parse(bad[i], &c, &e), MACC_ESPEC);
		assert_non_null(strstr(e.text, bad[i]));
	}
	assert_int_equal(macc_compress_parse(NULL, &c, &e), MACC_ESPEC);
	/* none has no blob: running CHOCO with none is a caller bug, refused */
	c.kind = MACC_COMPRESS_NONE;
	uint8_t buf[64];
	float d[2] = {1, 2};

	assert_int_equal(macc_compress_encode(&c, 2, d, buf, sizeof(buf), &e), -EINVAL);
}

static ssize_t enc(const char *spec, size_t n, const float *d, uint8_t *buf, size_t cap)
{
	struct macc_compressor c;
	struct macc_errmsg e = {{0}};
	ssize_t len;

	assert_int_equal(macc_compress_parse(spec, &c, &e), 0);
	len = macc_compress_encode(&c, n, d, buf, cap, &e);
	if (len < 0) {
		fail_msg("encode %s: %zd %s", spec, len, e.text);
	}
	assert_int_equal((size_t)len, macc_compress_size(&c, n));
	return len;
}

static void dec(const uint8_t *buf, size_t len, size_t n, float *out)
{
	struct macc_errmsg e = {{0}};
	int rc;

	memset(out, 0, n * sizeof(float));
	rc = macc_compress_decode_add(buf, len, n, out, NULL, &e);
	if (rc != 0) {
		fail_msg("decode: %d %s", rc, e.text);
	}
}

static void test_compress_golden(void **state)
{
	/* bf16: 1 + 2^-8 is a tie and rounds to even (1.0), 1 + 3*2^-8 rounds up to 1 + 2^-6;
	 * int8 in one block: scale 2/127; topk:0.5 of 4 keeps |-3| and |2| */
	const float d[4] = {1.00390625f, 1.01171875f, -3.0f, 0.0f};
	uint8_t buf[64];
	ssize_t len;
	float out[4];
	static const uint8_t gold_bf16[] = {1, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 0x80, 0x3f, 0x82,
					    0x3f, 0x40, 0xc0, 0x00, 0x00};
	static const uint8_t gold_topk[] = {3, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0,
					    0, 0x00, 0x80, 0x81, 0x3f, 0x00, 0x00, 0x40, 0xc0};

	(void)state;
	len = enc("bf16", 4, d, buf, sizeof(buf));
	assert_int_equal(len, sizeof(gold_bf16));
	assert_memory_equal(buf, gold_bf16, sizeof(gold_bf16));
	dec(buf, (size_t)len, 4, out);
	assert_true(out[0] == 1.0f && out[1] == 1.015625f && out[2] == -3.0f && out[3] == 0.0f);

	len = enc("topk:0.5", 4, d, buf, sizeof(buf));
	assert_int_equal(len, sizeof(gold_topk));
	assert_memory_equal(buf, gold_topk, sizeof(gold_topk));

	len = enc("int8", 4, d, buf, sizeof(buf));
	assert_int_equal(len, 12 + 4 + 4);
	assert_int_equal(buf[0], 2);
	assert_int_equal(buf[8], 1); /* one block */
	/* scale 3/127 as little-endian f32, then the codes: 1.0039/(3/127) = 42.498 -> 42,
	 * 1.0117/(3/127) = 42.83 -> 43, -3 -> -127, 0 -> 0 */
	const float scale = 3.0f / 127.0f;
	uint32_t sb;

	memcpy(&sb, &scale, 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(buf[12 + i], (sb >> (8 * i)) & 0xff);
	}
	assert_int_equal((int8_t)buf[16], 42);
	assert_int_equal((int8_t)buf[17], 43);
	assert_int_equal((int8_t)buf[18], -127);
	assert_int_equal((int8_t)buf[19], 0);
	dec(buf, (size_t)len, 4, out);
	assert_true(out[0] == scale * 42.0f && out[2] == -3.0f && out[3] == 0.0f);
}

static void test_compress_round_trip_bounds(void **state)
{
	const size_t n = 1000; /* 3 full int8 blocks and a partial one */
	float *x = xcalloc(n, sizeof(float));
	float *y = xcalloc(n, sizeof(float));
	uint8_t *buf = xcalloc(12 + 8 * n, 1);
	struct macc_rng r;
	double worst_bf = 0, worst_i8 = 0;

	(void)state;
	macc_rng_seed(&r, 17, 1);
	for (int trial = 0; trial < 20; trial++) {
		for (size_t i = 0; i < n; i++) {
			/* magnitudes over many decades, exact zeros, a zero block, ties */
			double m = pow(10.0, -6.0 + 12.0 * macc_rng_uniform(&r));

			x[i] = (float)(m * macc_rng_normal(&r));
			if (i % 17 == 0 || (i >= 256 && i < 512 && trial % 2 == 0)) {
				x[i] = 0.0f;
			}
			if (trial == 1) {
				x[i] = (float)(i % 7) - 3.0f; /* many equal |x|: top-k ties */
			}
		}
		/* bf16: relative error <= 2^-8 */
		ssize_t len = enc("bf16", n, x, buf, 12 + 8 * n);

		dec(buf, (size_t)len, n, y);
		for (size_t i = 0; i < n; i++) {
			double err = fabs((double)y[i] - x[i]);

			assert_true(err <= ldexp(fabs(x[i]), -8));
			worst_bf = fmax(worst_bf, x[i] != 0 ? err / fabs(x[i]) : 0);
		}
		/* int8: error <= max|x| / 254 per block (plus float rounding) */
		len = enc("int8", n, x, buf, 12 + 8 * n);
		dec(buf, (size_t)len, n, y);
		for (size_t lo = 0; lo < n; lo += 256) {
			size_t hi = lo + 256 < n ? lo + 256 : n;
			double m = max_abs_diff(x + lo, NULL, hi - lo);

			for (size_t i = lo; i < hi; i++) {
				double err = fabs((double)y[i] - x[i]);

				assert_true(err <= m / 254.0 * (1.0 + 1e-5));
				if (x[i] == 0.0f) {
					assert_true(y[i] == 0.0f);
				}
				worst_i8 = fmax(worst_i8, m > 0 ? err / (m / 254.0) : 0);
			}
		}
		/* topk: exact on the kept entries, zero elsewhere, and the kept ones are the
		 * largest |x| with ties to the lower index (oracle: O(n^2) rank count) */
		const double fracs[] = {0.1, 0.013, 1.0};

		for (size_t f = 0; f < 3; f++) {
			char spec[32];
			struct macc_compressor c = {.kind = MACC_COMPRESS_TOPK, .frac = fracs[f]};
			size_t k = macc_compress_count(&c, n), kept = 0;

			snprintf(spec, sizeof(spec), "topk:%g", fracs[f]);
			len = enc(spec, n, x, buf, 12 + 8 * n);
			dec(buf, (size_t)len, n, y);
			for (size_t i = 0; i < n; i++) {
				size_t rank = 0; /* entries that beat i */

				for (size_t l = 0; l < n; l++) {
					float a = fabsf(x[l]), b = fabsf(x[i]);

					rank += a > b || (a == b && l < i);
				}
				if (rank < k) {
					assert_true(y[i] == x[i]);
					kept++;
				} else {
					assert_true(y[i] == 0.0f);
				}
			}
			assert_int_equal(kept, k);
		}
	}
	printf("  round trips: bf16 worst relative error %.3g (bound 2^-8 = %.3g); int8 worst "
	       "error %.3f of max|x|/254\n", worst_bf, ldexp(1, -8), worst_i8);
	/* tiny and huge values */
	const float edge[5] = {FLT_MIN / 4, -FLT_MIN, 3.0e38f, -1e-45f, 0.0f};
	ssize_t len = enc("int8", 5, edge, buf, 12 + 8 * 5);

	dec(buf, (size_t)len, 5, y);
	assert_true(fabs(y[2] - 3.0e38) <= 3.0e38 / 254);
	len = enc("bf16", 5, edge, buf, 12 + 8 * 5);
	dec(buf, (size_t)len, 5, y);
	assert_true(isfinite(y[2]));
	free(x);
	free(y);
	free(buf);
}

static void test_compress_encode_errors(void **state)
{
	struct macc_compressor c = {.kind = MACC_COMPRESS_BF16};
	struct macc_errmsg e = {{0}};
	uint8_t buf[64];
	float d[3] = {1.0f, NAN, 2.0f};

	(void)state;
	assert_int_equal(macc_compress_encode(&c, 3, d, buf, sizeof(buf), &e), -ERANGE);
	assert_non_null(strstr(e.text, "value 1"));
	d[1] = FLT_MAX; /* rounds to infinity in bf16 */
	assert_int_equal(macc_compress_encode(&c, 3, d, buf, sizeof(buf), &e), -ERANGE);
	d[1] = INFINITY;
	c.kind = MACC_COMPRESS_INT8;
	assert_int_equal(macc_compress_encode(&c, 3, d, buf, sizeof(buf), &e), -ERANGE);
	d[1] = FLT_MAX; /* fine for int8 and topk */
	assert_true(macc_compress_encode(&c, 3, d, buf, sizeof(buf), &e) > 0);
	assert_int_equal(macc_compress_encode(&c, 3, d, buf, 10, &e), -ENOSPC);
	c.kind = MACC_COMPRESS_TOPK;
	c.frac = 0.5;
	assert_int_equal(macc_compress_encode(&c, 3, d, buf, sizeof(buf), &e), 12 + 16);
}

/* Appends bytes to a blob under construction. */
static size_t put(uint8_t *b, size_t off, const void *p, size_t len)
{
	memcpy(b + off, p, len);
	return off + len;
}

/* Header with host-order u32 fields: these hand-made blobs assume a little-endian host. */
static size_t hdr(uint8_t *b, uint8_t kind, uint32_t n, uint32_t count)
{
	uint8_t h[4] = {kind, 0, 0, 0};
	size_t off = put(b, 0, h, 4);

	off = put(b, off, &n, 4);
	return put(b, off, &count, 4);
}

static void test_compress_decode_rejects(void **state)
{
	uint8_t b[256];
	float acc[8];
	struct macc_errmsg e = {{0}};
	const float one = 1.0f, nan = NAN, neg = -1.0f, huge = FLT_MAX / 100.0f;
	const uint16_t bf_one = 0x3f80, bf_inf = 0x7f80;
	const uint32_t i0 = 0, i1 = 1, i2 = 2, i9 = 9;
	struct {
		size_t len;
		const char *needle;
	} cases[32];
	uint8_t blobs[32][256];
	size_t nc = 0, off;

#define ADD(needle_)                                                                             \
	do {                                                                                     \
		memcpy(blobs[nc], b, off);                                                       \
		cases[nc].len = off;                                                             \
		cases[nc].needle = (needle_);                                                    \
		nc++;                                                                            \
	} while (0)

	(void)state;
	off = 11; memset(b, 0, sizeof(b)); ADD("shorter than");
	off = hdr(b, 0, 2, 2); ADD("unknown encoding 0");
	off = hdr(b, 9, 2, 2); ADD("unknown encoding 9");
	off = hdr(b, 1, 2, 2); b[1] = 1; off = put(b, off, &bf_one, 2);
	off = put(b, off, &bf_one, 2); ADD("reserved");
	off = hdr(b, 1, 3, 3); off = put(b, off, &bf_one, 2); ADD("n = 3, expected 2");
	off = hdr(b, 1, 2, 1); off = put(b, off, &bf_one, 2); ADD("bf16 count");
	off = hdr(b, 1, 2, 2); off = put(b, off, &bf_one, 2); ADD("bytes, expected 16");
	off = hdr(b, 1, 2, 2); off = put(b, off, &bf_one, 2); off = put(b, off, &bf_inf, 2);
	ADD("bf16 value 1 is not finite");
	off = hdr(b, 2, 2, 2); ADD("int8 block count");
	off = hdr(b, 2, 2, 1); off = put(b, off, &nan, 4); b[off++] = 1; b[off++] = 2;
	ADD("block 0 has scale nan");
	off = hdr(b, 2, 2, 1); off = put(b, off, &neg, 4); b[off++] = 1; b[off++] = 2;
	ADD("scale -1");
	off = hdr(b, 2, 2, 1); off = put(b, off, &huge, 4); b[off++] = 1; b[off++] = 2;
	ADD("has scale");
	off = hdr(b, 2, 2, 1); off = put(b, off, &one, 4); b[off++] = 1; b[off++] = 0x80;
	ADD("code -128 at 1");
	off = hdr(b, 2, 2, 1); off = put(b, off, &one, 4); b[off++] = 1; ADD("expected 18");
	off = hdr(b, 3, 2, 3); ADD("top-k count 3 > n 2");
	off = hdr(b, 3, 2, 1); off = put(b, off, &i2, 4); off = put(b, off, &one, 4);
	ADD("index 2 at 0 is out of range");
	off = hdr(b, 3, 2, 2); off = put(b, off, &i1, 4); off = put(b, off, &i0, 4);
	off = put(b, off, &one, 4); off = put(b, off, &one, 4); ADD("not ascending");
	off = hdr(b, 3, 2, 2); off = put(b, off, &i1, 4); off = put(b, off, &i1, 4);
	off = put(b, off, &one, 4); off = put(b, off, &one, 4); ADD("not ascending");
	off = hdr(b, 3, 2, 1); off = put(b, off, &i0, 4); off = put(b, off, &nan, 4);
	ADD("top-k value 0 is not finite");
	off = hdr(b, 3, 2, 1); off = put(b, off, &i9, 4); ADD("bytes, expected 20");
	off = hdr(b, 3, 2, 1); off = put(b, off, &i0, 4); off = put(b, off, &one, 4);
	off = put(b, off, &one, 4); ADD("bytes, expected 20");
#undef ADD
	for (size_t i = 0; i < nc; i++) {
		int rc;

		for (int k = 0; k < 8; k++) {
			acc[k] = 7.0f;
		}
		e.text[0] = '\0';
		rc = macc_compress_decode_add(blobs[i], cases[i].len, 2, acc, NULL, &e);
		if (rc != MACC_EMALFORMED || strstr(e.text, cases[i].needle) == NULL) {
			fail_msg("case %zu: got %d '%s', wanted '%s'", i, rc, e.text,
				 cases[i].needle);
		}
		for (int k = 0; k < 8; k++) {
			assert_true(acc[k] == 7.0f); /* untouched */
		}
	}
	/* and a valid one adds */
	enum macc_compress_kind kind;

	off = hdr(b, 3, 2, 1);
	off = put(b, off, &i1, 4);
	off = put(b, off, &one, 4);
	acc[0] = acc[1] = 7.0f;
	assert_int_equal(macc_compress_decode_add(b, off, 2, acc, &kind, &e), 0);
	assert_int_equal(kind, MACC_COMPRESS_TOPK);
	assert_true(acc[0] == 7.0f && acc[1] == 8.0f);
}

/* Error feedback: with a fixed true value, the public copy converges to it. */
static void test_choco_error_feedback_converges(void **state)
{
	const size_t n = 700;
	const char *specs[] = {"bf16", "int8", "topk:0.1", "topk:0.01"};
	float *x = xcalloc(n, sizeof(float));
	float *hat = xcalloc(n, sizeof(float));
	float *peer = xcalloc(n, sizeof(float));
	uint8_t *buf = xcalloc(12 + 8 * n, 1);
	struct macc_rng r;

	(void)state;
	macc_rng_seed(&r, 23, 1);
	for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++) {
		struct macc_compressor c;
		struct macc_errmsg e = {{0}};
		double first = 0, last = 0, m = 0;
		int rounds = 0;

		assert_int_equal(macc_compress_parse(specs[s], &c, &e), 0);
		fill_normal(&r, x, n, 3.0);
		fill_normal(&r, hat, n, 1.0); /* x^0 */
		memcpy(peer, hat, n * sizeof(float));
		first = max_abs_diff(x, hat, n);
		m = max_abs_diff(x, NULL, n);
		for (rounds = 0; rounds < 400; rounds++) {
			ssize_t len = macc_choco_send(&c, n, x, hat, buf, 12 + 8 * n, &e);

			assert_true(len > 0);
			/* the receiver's copy stays bit for bit the sender's */
			assert_int_equal(macc_compress_decode_add(buf, (size_t)len, n, peer, NULL,
								  &e), 0);
			assert_memory_equal(peer, hat, n * sizeof(float));
			last = max_abs_diff(x, hat, n);
			if (last <= 1e-6 * m) {
				break;
			}
		}
		printf("  error feedback %-9s: max|x - xhat| %.3g -> %.3g in %d rounds\n",
		       specs[s], first, last, rounds + 1);
		assert_true(last <= 1e-6 * m);
	}
	free(x);
	free(hat);
	free(peer);
	free(buf);
}

/* macc-algorithms(7)'s compression check: 8-agent ring, mixed quadratics, dmsgd beta 0.9. */
static double choco_ring_run(const char *spec, float gamma, const struct quad *q, const double *W,
			     int rounds, uint64_t *bytes, float *xout)
{
	const uint32_t n = q->n;
	const size_t p = q->p;
	float *x = xcalloc((size_t)n * p, sizeof(float));
	float *v = xcalloc((size_t)n * p, sizeof(float));
	struct urun u = {.n = n, .p = p, .algo = MACC_ALGO_DMSGD, .W = W, .q = q, .gamma = gamma,
			 .hp = {.alpha = 0.01f, .beta = 0.9f, .omega = 1.0f}};
	struct macc_errmsg e = {{0}};
	double d;

	assert_int_equal(macc_compress_parse(spec, &u.c, &e), 0);
	urun_rounds(&u, x, v, rounds);
	d = u.diverged ? INFINITY : dist_to_opt(q, x);
	for (size_t i = 0; i < (size_t)n * p; i++) {
		if (!isfinite(x[i])) {
			d = INFINITY;
		}
	}
	if (bytes != NULL) {
		*bytes = u.bytes / n;
	}
	if (xout != NULL) {
		memcpy(xout, x, (size_t)n * p * sizeof(float));
	}
	free(x);
	free(v);
	return d;
}

static void test_choco_ring_numeric_check(void **state)
{
	const uint32_t n = 8;
	const size_t p = 100;
	const int rounds = 5000;
	struct quad q = quad_make(n, p, 31);
	struct macc_graph g = make_graph("ring", n, 0);
	double *W = xcalloc((size_t)n * n, sizeof(double));
	float *x_none = xcalloc((size_t)n * p, sizeof(float));
	float *x_ref = xcalloc((size_t)n * p, sizeof(float));
	double d_none, d_bf16, d_int8, d_topk[6];
	const float gammas[] = {1.0f, 0.5f, 0.4f, 0.3f, 0.2f, 0.1f};
	uint64_t b_int8, b_topk, b_bf16;

	(void)state;
	assert_int_equal(macc_weights_build(&g, MACC_WEIGHTS_METROPOLIS, W), 0);
	d_none = choco_ring_run("none", 1.0f, &q, W, rounds, NULL, x_none);
	d_bf16 = choco_ring_run("bf16", 1.0f, &q, W, rounds, &b_bf16, NULL);
	d_int8 = choco_ring_run("int8", 1.0f, &q, W, rounds, &b_int8, NULL);
	printf("  ring 8, dmsgd beta 0.9, alpha 0.01, %d rounds, |xbar - x*|: none %.3e, "
	       "bf16(g=1) %.3e, int8(g=1) %.3e\n", rounds, d_none, d_bf16, d_int8);
	for (int i = 0; i < 6; i++) {
		d_topk[i] = choco_ring_run("topk:0.1", gammas[i], &q, W, rounds, &b_topk, NULL);
		printf("  topk:0.1 gamma %.1f: %.3e (%.1fx uncompressed)\n", (double)gammas[i],
		       d_topk[i], d_topk[i] / d_none);
	}
	printf("  bytes per agent per round (x and v): f32 %zu, bf16 %.0f, int8 %.0f, topk:0.1 "
	       "%.0f\n", 2 * p * sizeof(float), (double)b_bf16 / rounds,
	       (double)b_int8 / rounds, (double)b_topk / rounds);
	/* int8 and bf16 at gamma = 1 end where uncompressed dmsgd ends */
	assert_true(d_int8 < 1.01 * d_none);
	assert_true(d_bf16 < 1.01 * d_none);
	/* topk:0.1 diverges at gamma >= 0.5 and converges at the default gamma (0.2), ending
	 * a few times farther from the optimum */
	assert_true(d_topk[0] > 100 * d_none && d_topk[1] > 100 * d_none);
	struct macc_compressor tk = {.kind = MACC_COMPRESS_TOPK, .frac = 0.1};

	assert_true(macc_compress_default_gamma(&tk) == gammas[4]);
	assert_true(d_topk[4] < 5 * d_none);
	assert_true(b_int8 * 3 < (uint64_t)rounds * 2 * p * sizeof(float));

	/* `none` is today's path: the same bits as a plain macc_consensus_step driver */
	float *x = xcalloc((size_t)n * p, sizeof(float));
	float *v = xcalloc((size_t)n * p, sizeof(float));
	struct urun u = {.n = n, .p = p, .algo = MACC_ALGO_DMSGD, .W = W, .q = &q,
			 .hp = {.alpha = 0.01f, .beta = 0.9f, .omega = 1.0f}};

	urun_rounds(&u, x, v, rounds);
	assert_memory_equal(x, x_none, (size_t)n * p * sizeof(float));
	/* while CHOCO with gamma = 1 and a near-lossless bf16 is close but not the same bits */
	choco_ring_run("bf16", 1.0f, &q, W, rounds, NULL, x_ref);
	assert_memory_not_equal(x_ref, x_none, (size_t)n * p * sizeof(float));
	free(x);
	free(v);
	quad_free(&q);
	macc_graph_finish(&g);
	free(W);
	free(x_none);
	free(x_ref);
}

/* CHOCO with every algorithm (dsgd's public copy tracks the half-step y): int8 at gamma 1 ends
 * about where the uncompressed algorithm ends on heterogeneous quadratics. */
static void test_choco_all_algorithms_consensus(void **state)
{
	const uint32_t n = 6;
	const size_t p = 40;
	struct quad q = quad_make(n, p, 41);
	struct macc_graph g = make_graph("ring", n, 0);
	double *W = xcalloc((size_t)n * n, sizeof(double));
	const enum macc_algo algos[] = {MACC_ALGO_DMSGD, MACC_ALGO_CDMSGD, MACC_ALGO_CDSGD,
					MACC_ALGO_DSGD};

	(void)state;
	assert_int_equal(macc_weights_build(&g, MACC_WEIGHTS_METROPOLIS, W), 0);
	for (size_t a = 0; a < 4; a++) {
		float *x = xcalloc((size_t)n * p, sizeof(float));
		float *v = xcalloc((size_t)n * p, sizeof(float));
		struct urun u = {.n = n, .p = p, .algo = algos[a], .W = W, .q = &q, .gamma = 1.0f,
				 .hp = {.alpha = 0.01f, .beta = 0.5f, .omega = 0.5f}};
		struct macc_errmsg e = {{0}};
		double d_none, d_int8;

		const int rounds = 2000;

		urun_rounds(&u, x, v, rounds);
		d_none = dist_to_opt(&q, x);
		memset(x, 0, (size_t)n * p * sizeof(float));
		memset(v, 0, (size_t)n * p * sizeof(float));
		assert_int_equal(macc_compress_parse("int8", &u.c, &e), 0);
		urun_rounds(&u, x, v, rounds);
		d_int8 = dist_to_opt(&q, x);
		printf("  %s: |xbar - x*| none %.3e, int8 %.3e, spread %.3e\n",
		       macc_algo_name(algos[a]), d_none, d_int8, spread(x, n, p));
		assert_true(d_int8 < 2.0 * d_none + 1e-3);
		free(x);
		free(v);
	}
	quad_free(&q);
	macc_graph_finish(&g);
	free(W);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schedule_parse_and_checks),
		cmocka_unit_test(test_exp_pairs_exact_average),
		cmocka_unit_test(test_matching_valid_deterministic_covering),
		cmocka_unit_test(test_digraph_parse),
		cmocka_unit_test(test_pushsum_matrix_and_parse),
		cmocka_unit_test(test_pushsum_equals_undirected_on_ring),
		cmocka_unit_test(test_pushsum_mass_and_average),
		cmocka_unit_test(test_pushsum_directed_quadratic),
		cmocka_unit_test(test_compress_parse),
		cmocka_unit_test(test_compress_golden),
		cmocka_unit_test(test_compress_round_trip_bounds),
		cmocka_unit_test(test_compress_encode_errors),
		cmocka_unit_test(test_compress_decode_rejects),
		cmocka_unit_test(test_choco_error_feedback_converges),
		cmocka_unit_test(test_choco_ring_numeric_check),
		cmocka_unit_test(test_choco_all_algorithms_consensus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
