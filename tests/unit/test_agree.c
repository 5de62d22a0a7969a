/*
 * test_agree.c - the standardisation agreement (agree.h): the two leaves (the mix of statistics
 * vectors, the min in the total order), the screening of every reason, the diameter, and whole
 * fleets run step by step the way macc-sim runs them: a ring of 8 agents with shards that differ
 * in size and in their means (the error bound of macc-algorithms(7) checked against W^S computed
 * on its own, and agreement bit for bit), missing vectors folded, a directed ring in push-sum
 * form, a neighbour that lies (what it can and cannot do, in numbers), a late joiner, one agent.
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

#include "macc/agree.h"
#include "macc/consensus.h"
#include "macc/data.h"
#include "macc/rng.h"

#define MAXN 16
#define DIM 3
#define LEN (1 + 2 * DIM)

/* ---- leaves --------------------------------------------------------------------------------- */

static void test_mix_by_hand(void **state)
{
	/* s = 1/2 s + 1/4 a + 1/4 b, every value exact in binary; the NULL entry has weight 0. */
	double s[3] = {4, 8, -2};
	const double a[3] = {0, 4, 2}, b[3] = {8, 0, 6};
	const double w[3] = {0.25, 0.0, 0.25};
	const double *nb[3] = {a, NULL, b};

	(void)state;
	macc_agree_mix(3, s, 0.5, w, nb, 3);
	assert_true(s[0] == 4.0 && s[1] == 5.0 && s[2] == 1.0);
}

static void test_min_total_order(void **state)
{
	/* -0 is below +0 whichever comes first, so two orders of arrival give the same bits. */
	float v1[4] = {0.0f, -0.0f, 3.0f, -1.0f}, v2[4];
	const double a[4] = {-0.0, 0.0, 2.5, -1.0}, b[4] = {1.0, 1.0, 4.0, -2.0};
	const double *ab[2] = {a, b}, *ba[2] = {b, a};

	(void)state;
	memcpy(v2, v1, sizeof(v1));
	assert_int_equal(macc_agree_min(4, v1, ab, 2), 3);
	assert_int_equal(macc_agree_min(4, v2, ba, 2), 3);
	assert_memory_equal(v1, v2, sizeof(v1));
	assert_true(signbit(v1[0]) && v1[0] == 0.0f);
	assert_true(signbit(v1[1]));
	assert_true(v1[2] == 2.5f && v1[3] == -2.0f);
	/* NULL entries (nothing arrived) change nothing. */
	{
		const double *none[2] = {NULL, NULL};

		assert_int_equal(macc_agree_min(4, v1, none, 2), 0);
		assert_memory_equal(v1, v2, sizeof(v1));
	}
}

static void adj_set(uint8_t *adj, uint32_t n, uint32_t a, uint32_t b, bool both)
{
	adj[a * n + b] = 1;
	if (both) {
		adj[b * n + a] = 1;
	}
}

static void test_diameter(void **state)
{
	uint8_t adj[8 * 8];
	uint32_t d = 99;

	(void)state;
	memset(adj, 0, sizeof(adj));
	for (uint32_t j = 0; j < 6; j++) {
		adj_set(adj, 6, j, (j + 1) % 6, true);
	}
	assert_int_equal(macc_agree_diameter(adj, 6, &d), 0);
	assert_int_equal(d, 3); /* ring of 6 */
	memset(adj, 0, sizeof(adj));
	for (uint32_t j = 0; j < 4; j++) {
		adj_set(adj, 4, j, (j + 1) % 4, false);
	}
	assert_int_equal(macc_agree_diameter(adj, 4, &d), 0);
	assert_int_equal(d, 3); /* directed ring of 4: 0 reaches 3 in three hops */
	memset(adj, 0, sizeof(adj));
	adj_set(adj, 4, 0, 1, true);
	adj_set(adj, 4, 2, 3, true);
	d = 77;
	assert_int_equal(macc_agree_diameter(adj, 4, &d), MACC_EGRAPH);
	assert_int_equal(d, 77);
	assert_int_equal(macc_agree_diameter(adj, 1, &d), 0);
	assert_int_equal(d, 0);
}

/* ---- screening ------------------------------------------------------------------------------ */

/* An agent of DIM features with the honest stats of 4 samples, S = 2, D = 1, one neighbour. */
static void one_agent(struct macc_agree *a, uint32_t S)
{
	const double st[LEN] = {4, 8, 2, 20, 20, 2, 100}; /* means 2, 0.5, 5; msq 5, 0.5, 25 */
	struct macc_agree_cfg c = {.dim = DIM, .avg_steps = S, .exact_steps = 1, .nnb = 1};
	struct macc_errmsg e = {{0}};
	const double w = 0.5;

	if (macc_agree_init(a, &c, st, &e) != 0) {
		fail_msg("init: %s", e.text);
	}
	macc_agree_set_row(a, 0.5, &w);
}

static enum macc_agree_reason check(const struct macc_agree *a, uint64_t step, const double *v,
				    size_t n)
{
	struct macc_errmsg e = {{0}};
	enum macc_agree_reason r = macc_agree_check(a, step, v, n, &e);

	if (r != MACC_AGREE_OK) {
		assert_true(e.text[0] != '\0'); /* every refusal says why */
	}
	return r;
}

static void test_screen_average(void **state)
{
	struct macc_agree a;
	double v[LEN] = {4, 8, 2, 20, 20, 2, 100};

	(void)state;
	one_agent(&a, 2);
	assert_int_equal(check(&a, 0, v, LEN), MACC_AGREE_OK);
	assert_int_equal(check(&a, 0, v, LEN - 1), MACC_AGREE_MALFORMED);
	assert_int_equal(check(&a, 0, NULL, LEN), MACC_AGREE_MALFORMED);
	assert_int_equal(check(&a, 4, v, 2 * DIM), MACC_AGREE_MALFORMED); /* past S + D */
	v[3] = NAN;
	assert_int_equal(check(&a, 1, v, LEN), MACC_AGREE_NONFINITE);
	v[3] = INFINITY;
	assert_int_equal(check(&a, 1, v, LEN), MACC_AGREE_NONFINITE);
	v[3] = 20;
	v[0] = -1;
	assert_int_equal(check(&a, 0, v, LEN), MACC_AGREE_RANGE);
	v[0] = 2 * MACC_AGREE_MAX_COUNT;
	assert_int_equal(check(&a, 0, v, LEN), MACC_AGREE_RANGE);
	v[0] = 0; /* no samples, yet sums */
	assert_int_equal(check(&a, 0, v, LEN), MACC_AGREE_RANGE);
	memset(v, 0, sizeof(v)); /* an agent without data: all zero is fine */
	assert_int_equal(check(&a, 0, v, LEN), MACC_AGREE_OK);
	/* Negative variance: sum^2 = 64 > count * sumsq = 4 * 15. */
	memcpy(v, (double[LEN]){4, 8, 2, 20, 15, 2, 100}, sizeof(v));
	assert_int_equal(check(&a, 0, v, LEN), MACC_AGREE_RANGE);
	/* Mean beyond float, mean square beyond float^2, negative sum of squares. */
	memcpy(v, (double[LEN]){1, 1e39, 0, 0, 1e78, 0, 0}, sizeof(v));
	assert_int_equal(check(&a, 0, v, LEN), MACC_AGREE_RANGE);
	memcpy(v, (double[LEN]){1, 0, 0, 0, 2e77, 0, 0}, sizeof(v));
	assert_int_equal(check(&a, 0, v, LEN), MACC_AGREE_RANGE);
	memcpy(v, (double[LEN]){1, 0, 0, 0, -1, 0, 0}, sizeof(v));
	assert_int_equal(check(&a, 0, v, LEN), MACC_AGREE_RANGE);
	macc_agree_finish(&a);
}

static void test_screen_exact(void **state)
{
	struct macc_agree a;
	/* Own estimate (S = 0): means 2, 0.5, 5; variances 1, 0.25, 0 -> inv 1, 2, 1 (zero-variance
	 * rule). */
	double v[2 * DIM] = {2, 0.5, 5, 1, 2, 1};
	float mean[DIM], inv[DIM];

	(void)state;
	one_agent(&a, 0);
	assert_int_equal(macc_agree_result(&a, mean, inv), MACC_ESTATE);
	assert_int_equal(check(&a, 0, v, 2 * DIM), MACC_AGREE_OK);
	assert_int_equal(check(&a, 0, v, LEN), MACC_AGREE_MALFORMED);
	v[0] = 0.1; /* not a float32 */
	assert_int_equal(check(&a, 0, v, 2 * DIM), MACC_AGREE_MALFORMED);
	v[0] = 2 + 4.5; /* 4.5 own deviations away */
	assert_int_equal(check(&a, 0, v, 2 * DIM), MACC_AGREE_FAR);
	v[0] = 2 - 3.5; /* 3.5: within */
	assert_int_equal(check(&a, 0, v, 2 * DIM), MACC_AGREE_OK);
	v[0] = 2;
	v[4] = 8.5; /* inv 2 -> 8.5: more than four times */
	assert_int_equal(check(&a, 0, v, 2 * DIM), MACC_AGREE_FAR);
	v[4] = 0.25;
	assert_int_equal(check(&a, 0, v, 2 * DIM), MACC_AGREE_FAR);
	v[4] = 0;
	assert_int_equal(check(&a, 0, v, 2 * DIM), MACC_AGREE_RANGE);
	v[4] = 2e6;
	assert_int_equal(check(&a, 0, v, 2 * DIM), MACC_AGREE_RANGE);
	v[4] = NAN;
	assert_int_equal(check(&a, 0, v, 2 * DIM), MACC_AGREE_NONFINITE);
	/* The agreed transform (step S + D = 1) is not compared with the own estimate. */
	memcpy(v, (double[2 * DIM]){-1000, 0.5, 5, 1, 2, 1}, sizeof(v));
	assert_int_equal(check(&a, 0, v, 2 * DIM), MACC_AGREE_FAR);
	assert_int_equal(check(&a, 1, v, 2 * DIM), MACC_AGREE_OK);
	macc_agree_finish(&a);
}

static void test_init_errors(void **state)
{
	struct macc_agree a;
	struct macc_agree_cfg c = {.dim = DIM, .avg_steps = 1, .exact_steps = 1, .nnb = 1};
	const double bad[LEN] = {4, NAN, 2, 20, 20, 2, 100};
	const double good[LEN] = {4, 8, 2, 20, 20, 2, 100};
	struct macc_errmsg e = {{0}};

	(void)state;
	assert_int_equal(macc_agree_init(&a, &c, bad, &e), MACC_EDATA);
	assert_non_null(strstr(e.text, "NaN"));
	assert_null(a.s);
	c.dim = 0;
	assert_int_equal(macc_agree_init(&a, &c, good, NULL), MACC_ECONFIG);
	c.dim = DIM;
	c.avg_steps = MACC_AGREE_MAX_STEPS;
	assert_int_equal(macc_agree_init(&a, &c, good, NULL), MACC_ECONFIG);
	macc_agree_finish(&a);
	macc_agree_finish(NULL);
}

/* ---- fleets --------------------------------------------------------------------------------- */

/* N agents; W row j = what j receives (W or push-sum's P); agent j's neighbours are every l with
 * an edge either way, ascending, with w = W[j][l] (0 for an out-only neighbour). */
struct fleet {
	uint32_t n;
	double W[MAXN * MAXN];
	double stats[MAXN][LEN];
	struct macc_agree a[MAXN];
	uint32_t nb[MAXN][MAXN], nnb[MAXN];
	float mean[MAXN][DIM], inv[MAXN][DIM];
	uint64_t counts[MACC_AGREE_NREASONS];
};

/* Shard j of agent j: 40 + 10 j rows; feature 0 ~ N(20 + j, 1), feature 1 ~ N(0.01 (j % 3),
 * 0.005), feature 2 = 5 (constant everywhere). Also the statistics of everything into all[]. */
static void make_shards(struct fleet *f, double *all)
{
	struct macc_rng r;

	macc_rng_seed(&r, 7, 1);
	memset(all, 0, LEN * sizeof(double));
	for (uint32_t j = 0; j < f->n; j++) {
		size_t rows = 40 + 10 * (size_t)j;
		struct macc_dataset d = {.n = rows, .dim = DIM, .channels = 1, .height = 1,
					 .width = DIM};

		d.x = malloc(rows * DIM * sizeof(float));
		assert_non_null(d.x);
		for (size_t i = 0; i < rows; i++) {
			d.x[i * DIM] = (float)(20.0 + j + macc_rng_normal(&r));
			d.x[i * DIM + 1] = (float)(0.01 * (j % 3) + 0.005 * macc_rng_normal(&r));
			d.x[i * DIM + 2] = 5.0f;
		}
		macc_feature_stats_compute(&d, NULL, 0, f->stats[j]);
		for (size_t k = 0; k < LEN; k++) {
			all[k] += f->stats[j][k];
		}
		free(d.x);
	}
}

static void fleet_init(struct fleet *f, uint32_t S, uint32_t D)
{
	struct macc_errmsg e = {{0}};
	double w[MAXN];

	for (uint32_t j = 0; j < f->n; j++) {
		struct macc_agree_cfg c = {.dim = DIM, .avg_steps = S, .exact_steps = D};

		f->nnb[j] = 0;
		for (uint32_t l = 0; l < f->n; l++) {
			if (l != j && (f->W[j * f->n + l] != 0 || f->W[l * f->n + j] != 0)) {
				w[f->nnb[j]] = f->W[j * f->n + l];
				f->nb[j][f->nnb[j]++] = l;
			}
		}
		c.nnb = f->nnb[j];
		if (macc_agree_init(&f->a[j], &c, f->stats[j], &e) != 0) {
			fail_msg("agent %u: %s", j, e.text);
		}
		macc_agree_set_row(&f->a[j], f->W[j * f->n + j], w);
	}
}

/* What a lying agent 0 sends instead, when it lies (NULL: the truth). */
typedef const double *(*lie_fn)(uint64_t step, const double *honest, size_t n);

/* Every step: all messages first, then all steps (like a round). drop: the probability that a
 * vector of the average phase does not arrive (the exact phase loses none, like the daemon
 * that waits longer for it). */
static void fleet_run(struct fleet *f, double drop, lie_fn lie)
{
	const double *out[MAXN];
	size_t nout[MAXN];
	struct macc_agree_in in[MAXN];
	struct macc_rng r;

	macc_rng_seed(&r, 3, 2);
	memset(f->counts, 0, sizeof(f->counts));
	while (!macc_agree_done(&f->a[0])) {
		uint64_t t = macc_agree_step_no(&f->a[0]);
		bool avg = t < f->a[0].cfg.avg_steps;

		for (uint32_t j = 0; j < f->n; j++) {
			nout[j] = macc_agree_outgoing(&f->a[j], &out[j]);
		}
		if (lie != NULL && lie(t, out[0], nout[0]) != NULL) {
			out[0] = lie(t, out[0], nout[0]);
		}
		for (uint32_t j = 0; j < f->n; j++) {
			for (uint32_t i = 0; i < f->nnb[j]; i++) {
				uint32_t l = f->nb[j][i];

				in[i] = (struct macc_agree_in){true, out[l], nout[l]};
				if (avg && drop > 0 && macc_rng_uniform(&r) < drop) {
					in[i].arrived = false;
				}
			}
			macc_agree_step(&f->a[j], in, NULL);
		}
	}
	for (uint32_t j = 0; j < f->n; j++) {
		uint64_t c[MACC_AGREE_NREASONS];

		assert_true(macc_agree_done(&f->a[j]));
		assert_int_equal(macc_agree_result(&f->a[j], f->mean[j], f->inv[j]), 0);
		macc_agree_counts(&f->a[j], c);
		for (int k = 0; k < MACC_AGREE_NREASONS; k++) {
			f->counts[k] += c[k];
		}
	}
}

static void fleet_finish(struct fleet *f)
{
	for (uint32_t j = 0; j < f->n; j++) {
		macc_agree_finish(&f->a[j]);
	}
}

/* Every agent's transform is agent 0's, bit for bit. */
static void assert_agreed(const struct fleet *f)
{
	for (uint32_t j = 1; j < f->n; j++) {
		assert_memory_equal(f->mean[j], f->mean[0], sizeof(f->mean[0]));
		assert_memory_equal(f->inv[j], f->inv[0], sizeof(f->inv[0]));
	}
}

static void ring(struct fleet *f, uint32_t n)
{
	struct macc_graph g;
	struct macc_errmsg e = {{0}};

	f->n = n;
	assert_int_equal(macc_graph_create("ring", n, 1, &g, &e), 0);
	assert_int_equal(macc_weights_build(&g, MACC_WEIGHTS_METROPOLIS, f->W), 0);
	macc_graph_finish(&g);
}

/* W^S in long double, row j. */
static void matrix_power_row(const double *W, uint32_t n, uint32_t S, uint32_t j,
			     long double *row)
{
	long double tmp[MAXN];

	for (uint32_t l = 0; l < n; l++) {
		row[l] = l == j ? 1.0L : 0.0L;
	}
	for (uint32_t s = 0; s < S; s++) {
		for (uint32_t l = 0; l < n; l++) {
			tmp[l] = 0;
			for (uint32_t m = 0; m < n; m++) {
				tmp[l] += row[m] * (long double)W[m * n + l];
			}
		}
		memcpy(row, tmp, n * sizeof(long double));
	}
}

/* The average phase against W^S, and the error bound of macc-algorithms(7). */
static void check_average_phase(const struct fleet *f, uint32_t S, const double *all)
{
	double gap, lambda, eps, slack, worst_m = 0, worst_q = 0;
	double dev_m[DIM] = {0}, dev_q[DIM] = {0};

	assert_int_equal(macc_spectral_gap(f->W, f->n, &gap), 0);
	lambda = 1 - gap;
	eps = f->n * pow(lambda, S);
	slack = 2 * eps / (1 - eps);
	for (uint32_t i = 0; i < f->n; i++) {
		for (size_t k = 0; k < DIM; k++) {
			dev_m[k] = fmax(dev_m[k], fabs(f->stats[i][1 + k] / f->stats[i][0] -
						       all[1 + k] / all[0]));
			dev_q[k] = fmax(dev_q[k], fabs(f->stats[i][1 + DIM + k] / f->stats[i][0] -
						       all[1 + DIM + k] / all[0]));
		}
	}
	for (uint32_t j = 0; j < f->n; j++) {
		const double *s = macc_agree_stats(&f->a[j]);
		long double c[MAXN];

		matrix_power_row(f->W, f->n, S, j, c);
		for (size_t k = 0; k < LEN; k++) {
			long double want = 0;

			for (uint32_t i = 0; i < f->n; i++) {
				want += c[i] * (long double)f->stats[i][k];
			}
			assert_true(fabsl((long double)s[k] - want) <=
				    1e-12L * fabsl(want) + 1e-300L);
		}
		for (size_t k = 0; k < DIM; k++) {
			double em = fabs(s[1 + k] / s[0] - all[1 + k] / all[0]);
			double eq = fabs(s[1 + DIM + k] / s[0] - all[1 + DIM + k] / all[0]);

			worst_m = fmax(worst_m, dev_m[k] > 0 ? em / (slack * dev_m[k]) : 0);
			worst_q = fmax(worst_q, dev_q[k] > 0 ? eq / (slack * dev_q[k]) : 0);
			assert_true(em <= slack * dev_m[k] + 1e-12 * fabs(all[1 + k] / all[0]));
			assert_true(eq <= slack * dev_q[k] +
					      1e-12 * fabs(all[1 + DIM + k] / all[0]));
		}
	}
	printf("  ring of %u, S = %u: lambda %.4f, eps %.3g; error / bound: mean %.3f, mean "
	       "square %.3f\n", f->n, S, lambda, eps, worst_m, worst_q);
}

static void test_ring_agrees_within_bound(void **state)
{
	static struct fleet f;
	double all[LEN];
	float emean[DIM], einv[DIM];
	const uint32_t S = 60, D = 4; /* diameter of a ring of 8 */

	(void)state;
	ring(&f, 8);
	make_shards(&f, all);
	/* A short average phase first, where the bound is not trivially met (eps ~ 0.1). */
	fleet_init(&f, 20, D);
	fleet_run(&f, 0, NULL);
	check_average_phase(&f, 20, all);
	assert_agreed(&f);
	fleet_finish(&f);
	fleet_init(&f, S, D);
	fleet_run(&f, 0, NULL);
	check_average_phase(&f, S, all);
	assert_agreed(&f);
	assert_int_equal(f.counts[MACC_AGREE_OK], 8 * 2 * (S + D));
	assert_int_equal(f.counts[MACC_AGREE_FAR] + f.counts[MACC_AGREE_MISSING], 0);
	/* Each agreed value is one of the agents' own estimates at the end of the average phase. */
	for (size_t k = 0; k < 2 * DIM; k++) {
		float got = k < DIM ? f.mean[0][k] : f.inv[0][k - DIM];
		bool found = false;

		for (uint32_t j = 0; j < f.n; j++) {
			found = found || memcmp(&got, &f.a[j].ref[k], sizeof(got)) == 0;
		}
		assert_true(found);
	}
	/* Against the exact transform of all the data: a few float32 roundings. */
	macc_standardizer_from_stats(all, DIM, emean, einv);
	for (size_t k = 0; k < DIM; k++) {
		double dm = fabs((double)f.mean[0][k] - emean[k]) * einv[k];
		double ds = fabs((double)f.inv[0][k] / einv[k] - 1);

		printf("  feature %zu: mean %.6g (exact %.6g), inv_std %.6g (exact %.6g)\n", k,
		       (double)f.mean[0][k], (double)emean[k], (double)f.inv[0][k],
		       (double)einv[k]);
		assert_true(dm <= 1e-4);
		assert_true(ds <= 1e-4);
	}
	assert_true(f.inv[0][2] == 1.0f); /* the constant feature: centred, not scaled */
	fleet_finish(&f);
}

/* Too few average steps to reach the bound: the exact phase still makes every agent agree. */
static void test_few_steps_still_agree(void **state)
{
	static struct fleet f;
	double all[LEN];

	(void)state;
	ring(&f, 8);
	make_shards(&f, all);
	fleet_init(&f, 3, 4);
	fleet_run(&f, 0, NULL);
	assert_agreed(&f);
	/* After 3 steps the own estimates differ: the min phase lowered something. */
	assert_true(memcmp(f.a[1].ref, f.a[5].ref, 2 * DIM * sizeof(float)) != 0);
	fleet_finish(&f);
}

/* D below the diameter: agents on opposite sides of the ring keep different transforms (which
 * is why D must be at least the diameter). */
static void test_short_exact_phase_disagrees(void **state)
{
	static struct fleet f;
	double all[LEN];

	(void)state;
	ring(&f, 8);
	make_shards(&f, all);
	fleet_init(&f, 2, 1);
	fleet_run(&f, 0, NULL);
	assert_true(memcmp(f.mean[0], f.mean[4], sizeof(f.mean[0])) != 0 ||
		    memcmp(f.inv[0], f.inv[4], sizeof(f.inv[0])) != 0);
	fleet_finish(&f);
}

/* A third of the average phase's vectors lost: folded, each agent's statistics stay a positive
 * combination of the shards (so each mean lies between the shards' means), and the exact phase
 * still ends in agreement. */
static void test_missing_folded(void **state)
{
	static struct fleet f;
	double all[LEN];

	(void)state;
	ring(&f, 8);
	make_shards(&f, all);
	fleet_init(&f, 40, 4);
	fleet_run(&f, 0.33, NULL);
	assert_true(f.counts[MACC_AGREE_MISSING] > 100);
	assert_agreed(&f);
	for (uint32_t j = 0; j < f.n; j++) {
		const double *s = macc_agree_stats(&f.a[j]);

		for (size_t k = 0; k < DIM; k++) {
			double lo = INFINITY, hi = -INFINITY, m = s[1 + k] / s[0];

			for (uint32_t i = 0; i < f.n; i++) {
				lo = fmin(lo, f.stats[i][1 + k] / f.stats[i][0]);
				hi = fmax(hi, f.stats[i][1 + k] / f.stats[i][0]);
			}
			assert_true(m >= lo - 1e-9 * fabs(lo) && m <= hi + 1e-9 * fabs(hi));
		}
	}
	printf("  33%% lost: %llu vectors folded, mean of feature 0 %.6g (exact %.6g)\n",
	       (unsigned long long)f.counts[MACC_AGREE_MISSING], (double)f.mean[0][0],
	       all[1] / all[0]);
	fleet_finish(&f);
}

/* Push-sum on a directed ring of 6: P is column-stochastic, the ratios still converge to the
 * global ones (count is the push-sum weight), and the exact phase needs the directed diameter. */
static void test_pushsum_directed_ring(void **state)
{
	static struct fleet f;
	struct macc_digraph g;
	struct macc_errmsg e = {{0}};
	const char edges[] = "0 -> 1\n1 -> 2\n2 -> 3\n3 -> 4\n4 -> 5\n5 -> 0\n";
	double all[LEN];
	uint32_t diam;

	(void)state;
	f.n = 6;
	assert_int_equal(macc_digraph_parse_edgelist(edges, strlen(edges), 6, "t", &g, &e), 0);
	assert_int_equal(macc_pushsum_matrix(&g, f.W), 0);
	assert_int_equal(macc_agree_diameter(g.adj, 6, &diam), 0);
	assert_int_equal(diam, 5);
	macc_digraph_finish(&g);
	make_shards(&f, all);
	fleet_init(&f, 300, diam);
	fleet_run(&f, 0, NULL);
	assert_agreed(&f);
	for (uint32_t j = 0; j < f.n; j++) {
		const double *s = macc_agree_stats(&f.a[j]);

		for (size_t k = 0; k < DIM; k++) {
			assert_true(fabs(s[1 + k] / s[0] - all[1 + k] / all[0]) <=
				    1e-9 * fabs(all[1 + k] / all[0]));
		}
	}
	fleet_finish(&f);
}

/* ---- a lying neighbour ---------------------------------------------------------------------- */

static double lie_buf[LEN];

/* Average phase: NaN. */
static const double *lie_nan(uint64_t step, const double *honest, size_t n)
{
	if (n != LEN) {
		return NULL;
	}
	(void)step;
	memcpy(lie_buf, honest, n * sizeof(double));
	lie_buf[1] = NAN;
	return lie_buf;
}

/* Average phase: 2^40 samples of feature 0 at 1000 (variance 1); the truth afterwards. */
static const double *lie_count(uint64_t step, const double *honest, size_t n)
{
	const double c = MACC_AGREE_MAX_COUNT;

	if (n != LEN) {
		return NULL;
	}
	(void)step;
	(void)honest;
	memcpy(lie_buf, (double[LEN]){c, 1000 * c, 0, 5 * c, (1000.0 * 1000 + 1) * c,
				      0.0001 * c, 25 * c}, sizeof(lie_buf));
	return lie_buf;
}

/* Exact phase: a mean far below everything. */
static const double *lie_low(uint64_t step, const double *honest, size_t n)
{
	if (n == LEN) {
		return NULL;
	}
	(void)step;
	memcpy(lie_buf, honest, n * sizeof(double));
	lie_buf[0] = (double)-1e30f; /* a float32, far below */
	return lie_buf;
}

static void test_liar(void **state)
{
	static struct fleet f;
	double all[LEN];
	float emean[DIM], einv[DIM];

	(void)state;
	ring(&f, 8);
	make_shards(&f, all);
	macc_standardizer_from_stats(all, DIM, emean, einv);

	/* Non-finite statistics: screened, folded like a missing vector; the fleet agrees. */
	fleet_init(&f, 60, 4);
	fleet_run(&f, 0, lie_nan);
	assert_int_equal(f.counts[MACC_AGREE_NONFINITE], 2 * 60);
	assert_agreed(&f);
	assert_true(isfinite(f.mean[0][0]) && fabs(f.mean[0][0] - emean[0]) * einv[0] < 0.2);
	fleet_finish(&f);

	/* A huge count passes the bounds and outweighs everyone: the mean of feature 0 moves to the
	 * liar's 1000 (what macc-algorithms(7) warns about). Still finite, still agreed. */
	fleet_init(&f, 60, 4);
	fleet_run(&f, 0, lie_count);
	assert_agreed(&f);
	printf("  a liar claiming 2^40 samples at 1000: agreed mean %.6g (exact %.6g), inv_std "
	       "%.6g (exact %.6g)\n", (double)f.mean[0][0], (double)emean[0],
	       (double)f.inv[0][0], (double)einv[0]);
	assert_true(fabs(f.mean[0][0] - 1000) < 1);
	assert_true(isfinite(f.inv[0][0]) && f.inv[0][0] > 0);
	fleet_finish(&f);

	/* In the exact phase a value far below the own estimate is refused. */
	fleet_init(&f, 60, 4);
	fleet_run(&f, 0, lie_low);
	assert_int_equal(f.counts[MACC_AGREE_FAR], 2 * 4);
	for (uint32_t j = 1; j < f.n; j++) {
		assert_true(fabs(f.mean[j][0] - emean[0]) * einv[0] < 1e-4);
	}
	fleet_finish(&f);
}

/* A neighbour that is not due (w = 0) is never read, whatever it sends. */
static void test_not_due_ignored(void **state)
{
	struct macc_agree a;
	const double w = 0, junk[LEN] = {NAN};
	struct macc_agree_in in = {true, junk, LEN};
	struct macc_agree_report rep;
	double before[LEN];

	(void)state;
	one_agent(&a, 2);
	macc_agree_set_row(&a, 1.0, &w);
	memcpy(before, macc_agree_stats(&a), sizeof(before));
	macc_agree_step(&a, &in, &rep);
	assert_memory_equal(before, macc_agree_stats(&a), sizeof(before));
	assert_int_equal(rep.count[MACC_AGREE_OK] + rep.count[MACC_AGREE_NONFINITE] +
				 rep.count[MACC_AGREE_MISSING],
			 0);
	macc_agree_finish(&a);
}

/* A late joiner takes a neighbour's agreed transform; a bad one changes nothing. */
static void test_adopt(void **state)
{
	struct macc_agree a;
	const double good[2 * DIM] = {20, -0.5, 5, 0.25, 8, 1};
	double bad[2 * DIM];
	float mean[DIM], inv[DIM];
	const double *out;

	(void)state;
	one_agent(&a, 2);
	memcpy(bad, good, sizeof(bad));
	bad[3] = -1;
	assert_int_equal(macc_agree_adopt(&a, bad, 2 * DIM, NULL), MACC_ECONFIG);
	bad[3] = NAN;
	assert_int_equal(macc_agree_adopt(&a, bad, 2 * DIM, NULL), MACC_ENONFINITE);
	assert_int_equal(macc_agree_adopt(&a, good, LEN, NULL), MACC_EMALFORMED);
	assert_false(macc_agree_done(&a));
	assert_int_equal(macc_agree_adopt(&a, good, 2 * DIM, NULL), 0);
	assert_true(macc_agree_done(&a));
	assert_int_equal(macc_agree_result(&a, mean, inv), 0);
	assert_true(mean[0] == 20.0f && mean[1] == -0.5f && inv[0] == 0.25f && inv[1] == 8.0f);
	/* What it would send to a later joiner in turn. */
	assert_int_equal(macc_agree_outgoing(&a, &out), 2 * DIM);
	assert_memory_equal(out, good, sizeof(good));
	macc_agree_finish(&a);
}

/* One agent, S = D = 0: its own statistics' transform, the rule of data.h. */
static void test_single_agent(void **state)
{
	struct macc_agree a;
	struct macc_agree_cfg c = {.dim = DIM};
	const double st[LEN] = {4, 8, 2, 20, 20, 2, 100};
	float mean[DIM], inv[DIM], wm[DIM], wi[DIM];

	(void)state;
	assert_int_equal(macc_agree_init(&a, &c, st, NULL), 0);
	assert_true(macc_agree_done(&a));
	assert_int_equal(macc_agree_result(&a, mean, inv), 0);
	macc_standardizer_from_stats(st, DIM, wm, wi);
	assert_memory_equal(mean, wm, sizeof(wm));
	assert_memory_equal(inv, wi, sizeof(wi));
	assert_true(mean[0] == 2.0f && inv[0] == 1.0f && inv[1] == 2.0f);
	macc_agree_finish(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mix_by_hand),
		cmocka_unit_test(test_min_total_order),
		cmocka_unit_test(test_diameter),
		cmocka_unit_test(test_screen_average),
		cmocka_unit_test(test_screen_exact),
		cmocka_unit_test(test_init_errors),
		cmocka_unit_test(test_ring_agrees_within_bound),
		cmocka_unit_test(test_few_steps_still_agree),
		cmocka_unit_test(test_short_exact_phase_disagrees),
		cmocka_unit_test(test_missing_folded),
		cmocka_unit_test(test_pushsum_directed_ring),
		cmocka_unit_test(test_liar),
		cmocka_unit_test(test_not_due_ignored),
		cmocka_unit_test(test_adopt),
		cmocka_unit_test(test_single_agent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
