/*
 * test_mixer.c - the mixer (mixer.h), the one composition of a round: two-agent rounds computed
 * by hand for every algorithm and every mode (plain, schedule, push-sum, CHOCO, robust), the fold
 * of a missing neighbour in each, robust exclusions and quarantine, CHOCO's copy bookkeeping
 * (lost sync, a difference that does not follow, a full resync state), the outgoing state, and
 * the table of option combinations.
 *
 * The hand-computed rounds use values that are exact in binary (and in bfloat16), so every
 * order of summation gives the same bits and the expected floats are written out.
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

#include <cmocka.h>

#include "macc/consensus.h"
#include "macc/err.h"
#include "macc/mixer.h"

#define P 2

/* Two agents: x0 = (1, 2), x1 = (3, 6); v0 = (0.5, 0), v1 = (0, 1); g0 = (1, 2), g1 = (2, 0);
 * alpha = beta = 0.5, omega = 1; W = [[1/2, 1/2], [1/2, 1/2]]. mix(x) = (2, 4), mix(v) =
 * (0.25, 0.5) for both. */
static const float X0[2][P] = {{1, 2}, {3, 6}};
static const float V0[2][P] = {{0.5f, 0}, {0, 1}};
static const float G0[2][P] = {{1, 2}, {2, 0}};
static const struct macc_hparams HP = {.alpha = 0.5f, .beta = 0.5f, .omega = 1.0f};

struct pair {
	struct macc_mixer m[2];
	struct macc_mixer_out out[2];
	struct macc_mixer_report rep[2];
	float x[2][P], v[2][P], g[2][P];
};

/* Two mixers of cfg c (nnb 1), each the other's neighbour (agent numbers 0 and 1), from x0 (the
 * shared x^0 of CHOCO's copies; NULL: each its own x), with rows (self_w[j], w[j]). */
static void pair_init(struct pair *t, const struct macc_mixer_cfg *c, const float *x0,
		      const double *self_w, const double *w)
{
	struct macc_errmsg e = {{0}};

	memcpy(t->x, X0, sizeof(t->x));
	memcpy(t->v, V0, sizeof(t->v));
	memcpy(t->g, G0, sizeof(t->g));
	for (int j = 0; j < 2; j++) {
		if (macc_mixer_init(&t->m[j], c, x0 != NULL ? x0 : t->x[j], 0, true, &e) != 0) {
			fail_msg("init: %s", e.text);
		}
		macc_mixer_set_link(&t->m[j], 0, (uint32_t)(1 - j), true, true);
		macc_mixer_set_row(&t->m[j], self_w[j], &w[j]);
	}
}

static void pair_finish(struct pair *t)
{
	macc_mixer_finish(&t->m[0]);
	macc_mixer_finish(&t->m[1]);
}

static struct macc_mixer_in in_of(const struct macc_mixer_out *o, bool arrived)
{
	return (struct macc_mixer_in){arrived, o->x, o->v, o->weight, false, o->x_blob, o->v_blob,
				      o->x_len, o->v_len};
}

/* One round: both outgoing states, then both steps (on copies: the neighbour reads the round-k
 * values), arrived[j] = whether agent j received the other's state. */
static void pair_round(struct pair *t, uint64_t round, const uint32_t *partner,
		       const bool *arrived, unsigned flags)
{
	float xn[2][P], vn[2][P];
	struct macc_errmsg e = {{0}};

	for (int j = 0; j < 2; j++) {
		macc_mixer_begin(&t->m[j], round, partner != NULL ? partner[j] : MACC_NO_PARTNER);
		assert_int_equal(macc_mixer_outgoing(&t->m[j], &HP, t->x[j], t->v[j], t->g[j],
						     &t->out[j], &e), 0);
	}
	memcpy(xn, t->x, sizeof(xn));
	memcpy(vn, t->v, sizeof(vn));
	for (int j = 0; j < 2; j++) {
		struct macc_mixer_in in = in_of(&t->out[1 - j], arrived == NULL || arrived[j]);

		macc_mixer_step(&t->m[j], &HP, xn[j], vn[j], t->g[j], &in, flags, &t->rep[j]);
	}
	memcpy(t->x, xn, sizeof(xn));
	memcpy(t->v, vn, sizeof(vn));
}

static const double HALF[2] = {0.5, 0.5};

static void check(const float *got, float a, float b, const char *what)
{
	if (got[0] != a || got[1] != b) {
		fail_msg("%s: got (%.9g, %.9g), want (%.9g, %.9g)", what, (double)got[0],
			 (double)got[1], (double)a, (double)b);
	}
}

/* ---- plain path, every algorithm, by hand ---- */

static void test_plain_by_hand(void **state)
{
	struct macc_mixer_cfg c = {.n = P, .nnb = 1};
	struct pair t;

	(void)state;
	/* dmsgd: v' = beta mix(v) - alpha g; x' = mix(x) + v' */
	c.algo = MACC_ALGO_DMSGD;
	pair_init(&t, &c, NULL, HALF, HALF);
	pair_round(&t, 0, NULL, NULL, MACC_MIXER_MEASURE);
	check(t.v[0], -0.375f, -0.75f, "dmsgd v0");
	check(t.x[0], 1.625f, 3.25f, "dmsgd x0");
	check(t.v[1], -0.875f, 0.25f, "dmsgd v1");
	check(t.x[1], 1.125f, 4.25f, "dmsgd x1");
	assert_int_equal(t.rep[0].count[MACC_ROBUST_OK], 1);
	assert_int_equal(t.rep[0].missed, 0);
	assert_true(t.rep[0].dist == 20.0); /* ||(1, 2) - (3, 6)||^2 */
	pair_finish(&t);
	/* cdmsgd: v' = beta v - alpha g; x' = mix(x) + v' */
	c.algo = MACC_ALGO_CDMSGD;
	pair_init(&t, &c, NULL, HALF, HALF);
	pair_round(&t, 0, NULL, NULL, 0);
	check(t.v[0], -0.25f, -1.0f, "cdmsgd v0");
	check(t.x[0], 1.75f, 3.0f, "cdmsgd x0");
	check(t.x[1], 1.0f, 4.5f, "cdmsgd x1");
	assert_true(isnan(t.rep[0].dist)); /* not asked */
	pair_finish(&t);
	/* cdsgd: x' = mix(x) - alpha g */
	c.algo = MACC_ALGO_CDSGD;
	pair_init(&t, &c, NULL, HALF, HALF);
	pair_round(&t, 0, NULL, NULL, 0);
	check(t.x[0], 1.5f, 3.0f, "cdsgd x0");
	check(t.x[1], 1.0f, 4.0f, "cdsgd x1");
	pair_finish(&t);
	/* dsgd: y = x - alpha g is what travels; x' = mix(y) */
	c.algo = MACC_ALGO_DSGD;
	pair_init(&t, &c, NULL, HALF, HALF);
	pair_round(&t, 0, NULL, NULL, 0);
	check(t.out[0].x, 0.5f, 1.0f, "dsgd y0 sent");
	check(t.out[1].x, 2.0f, 6.0f, "dsgd y1 sent");
	assert_null(t.out[0].v);
	check(t.x[0], 1.25f, 3.5f, "dsgd x0");
	check(t.x[1], 1.25f, 3.5f, "dsgd x1");
	pair_finish(&t);
}

/* A neighbour that did not arrive folds into the own weight: agent 0 steps alone. */
static void test_plain_fold(void **state)
{
	struct macc_mixer_cfg c = {.algo = MACC_ALGO_DMSGD, .n = P, .nnb = 1};
	const bool arrived[2] = {false, true};
	struct pair t;

	(void)state;
	pair_init(&t, &c, NULL, HALF, HALF);
	pair_round(&t, 0, NULL, arrived, 0);
	/* self weight 1: v' = 0.5 (0.5, 0) - 0.5 (1, 2); x' = (1, 2) + v' */
	check(t.v[0], -0.25f, -1.0f, "folded v0");
	check(t.x[0], 0.75f, 1.0f, "folded x0");
	check(t.x[1], 1.125f, 4.25f, "agent 1 unaffected");
	assert_int_equal(t.rep[0].missed, 1);
	assert_int_equal(t.rep[0].count[MACC_ROBUST_MISSING], 1);
	assert_true(macc_mixer_outcome(&t.m[0], 0)->expected);
	assert_int_equal(macc_mixer_outcome(&t.m[0], 0)->reason, MACC_ROBUST_MISSING);
	pair_finish(&t);
}

/* Nesterov look-ahead: x' = mix(x) + beta v' - alpha g. */
static void test_plain_nesterov(void **state)
{
	struct macc_mixer_cfg c = {.algo = MACC_ALGO_DMSGD, .n = P, .nnb = 1};
	struct macc_hparams hp = HP;
	struct macc_mixer_report rep;
	struct macc_mixer m;
	struct macc_errmsg e;
	float x[P] = {1, 2}, v[P] = {0.5f, 0}, g[P] = {1, 2};
	struct macc_mixer_in in = {.arrived = true, .x = X0[1], .v = V0[1]};

	(void)state;
	hp.nesterov = true;
	assert_int_equal(macc_mixer_init(&m, &c, x, 0, true, &e), 0);
	macc_mixer_set_row(&m, 0.5, &HALF[1]);
	macc_mixer_step(&m, &hp, x, v, g, &in, 0, &rep);
	check(v, -0.375f, -0.75f, "nesterov v0");
	check(x, 1.3125f, 2.625f, "nesterov x0");
	macc_mixer_finish(&m);
}

/* ---- schedules: the partner only, at 1/2 and 1/2; idle: alone ---- */

static void test_schedule_by_hand(void **state)
{
	struct macc_mixer_cfg c = {.algo = MACC_ALGO_DMSGD, .schedule = MACC_SCHEDULE_MATCHING,
				   .n = P, .nnb = 1};
	const uint32_t paired[2] = {1, 0}, idle[2] = {MACC_NO_PARTNER, MACC_NO_PARTNER};
	const bool lost[2] = {false, true};
	const double zero[2] = {0, 0};
	struct pair t;

	(void)state;
	/* the row is not used: the schedule's weights are (the row here is 0) */
	pair_init(&t, &c, NULL, zero, zero);
	assert_false(macc_mixer_sends_to(&t.m[0], 1, true)); /* no round yet: no partner */
	pair_round(&t, 0, paired, NULL, 0);
	assert_true(macc_mixer_sends_to(&t.m[0], 1, true));
	check(t.x[0], 1.625f, 3.25f, "matched x0");
	check(t.x[1], 1.125f, 4.25f, "matched x1");
	pair_finish(&t);
	pair_init(&t, &c, NULL, zero, zero);
	pair_round(&t, 0, idle, NULL, 0);
	check(t.x[0], 0.75f, 1.0f, "idle x0");
	assert_false(macc_mixer_sends_to(&t.m[0], 1, true));
	assert_false(macc_mixer_expects(&t.m[0], 1, true));
	assert_int_equal(t.rep[0].missed, 0); /* nothing was due */
	assert_false(macc_mixer_outcome(&t.m[0], 0)->expected);
	pair_finish(&t);
	/* the partner's state lost: folded */
	pair_init(&t, &c, NULL, zero, zero);
	pair_round(&t, 0, paired, lost, 0);
	check(t.x[0], 0.75f, 1.0f, "partner lost x0");
	assert_int_equal(t.rep[0].missed, 1);
	pair_finish(&t);
}

/* ---- push-sum: shares, the weight, the de-biased x, a missing share folded ---- */

/* Column-stochastic P for two agents: agent 0 keeps 1/4 and receives 1/2 of agent 1's; agent 1
 * keeps 1/2 and receives 3/4 of agent 0's. sgp (cdmsgd form), u = 0:
 *   u0' = -0.5 (1, 2) = (-0.5, -1);  z0' = 1/4 (1, 2) + 1/2 (3, 6) + u0' = (1.25, 2.5); w0' = 3/4
 *   u1' = -0.5 (2, 0) = (-1, 0);     z1' = 1/2 (3, 6) + 3/4 (1, 2) + u1' = (1.25, 4.5); w1' = 5/4 */
static void test_pushsum_by_hand(void **state)
{
	struct macc_mixer_cfg c = {.algo = MACC_ALGO_CDMSGD, .pushsum = true, .n = P, .nnb = 1};
	const double self[2] = {0.25, 0.5}, share[2] = {0.5, 0.75};
	const bool lost[2] = {false, true};
	struct pair t;

	(void)state;
	pair_init(&t, &c, NULL, self, share);
	memset(t.v, 0, sizeof(t.v));
	assert_true(macc_mixer_model(&t.m[0], t.x[0]) != t.x[0]); /* the de-biased copy */
	pair_round(&t, 0, NULL, NULL, 0);
	assert_true(t.out[0].has_weight && t.out[0].weight == 1.0);
	check(t.v[0], -0.5f, -1.0f, "sgp u0");
	check(t.x[0], 1.25f, 2.5f, "sgp z0");
	check(t.x[1], 1.25f, 4.5f, "sgp z1");
	assert_true(macc_mixer_pushsum_weight(&t.m[0]) == 0.75);
	assert_true(macc_mixer_pushsum_weight(&t.m[1]) == 1.25);
	/* the model is z / w, divided in float by (float)w */
	check(macc_mixer_model(&t.m[0], t.x[0]), 1.25f / 0.75f, 2.5f / 0.75f, "sgp x0 = z0/w0");
	check(macc_mixer_model(&t.m[1], t.x[1]), 1.25f / 1.25f, 4.5f / 1.25f, "sgp x1 = z1/w1");
	pair_finish(&t);
	/* agent 0 misses agent 1's state: its share folds into its own (numerators and weight) */
	pair_init(&t, &c, NULL, self, share);
	memset(t.v, 0, sizeof(t.v));
	pair_round(&t, 0, NULL, lost, 0);
	check(t.x[0], 0.25f, 0.5f, "folded z0 = 3/4 (1, 2) + u0'");
	assert_true(macc_mixer_pushsum_weight(&t.m[0]) == 0.75);
	assert_int_equal(t.rep[0].missed, 1);
	pair_finish(&t);
}

/* Push-sum follows the edges: an out-only neighbour is sent to, not waited for. */
static void test_pushsum_links(void **state)
{
	struct macc_mixer_cfg c = {.algo = MACC_ALGO_DMSGD, .pushsum = true, .n = P, .nnb = 2};
	struct macc_mixer m;
	struct macc_errmsg e;
	float x[P] = {1, 2}, v[P] = {0}, g[P] = {0};
	const double w[2] = {0.5, 0.0};
	struct macc_mixer_in in[2] = {{.arrived = false}, {.arrived = false}};
	struct macc_mixer_report rep;

	(void)state;
	assert_int_equal(macc_mixer_init(&m, &c, x, 0, true, &e), 0);
	macc_mixer_set_link(&m, 0, 4, true, false); /* 4 -> us */
	macc_mixer_set_link(&m, 1, 7, false, true); /* us -> 7 */
	macc_mixer_set_row(&m, 0.5, w);
	assert_true(macc_mixer_expects(&m, 4, true) && !macc_mixer_sends_to(&m, 4, false));
	assert_true(macc_mixer_sends_to(&m, 7, true) && !macc_mixer_expects(&m, 7, false));
	macc_mixer_begin(&m, 0, MACC_NO_PARTNER);
	macc_mixer_step(&m, &HP, x, v, g, in, 0, &rep);
	assert_int_equal(rep.missed, 1); /* only the in-neighbour was due */
	assert_false(macc_mixer_outcome(&m, 1)->expected);
	assert_true(macc_mixer_pushsum_weight(&m) == 1.0); /* 1/2 + the folded 1/2 */
	macc_mixer_finish(&m);
	/* no push-sum form for dsgd */
	c.algo = MACC_ALGO_DSGD;
	assert_int_equal(macc_mixer_init(&m, &c, x, 0, true, &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "no push-sum form"));
}

/* ---- CHOCO: with bf16 these values compress exactly, so the round equals the plain one ---- */

static void test_choco_by_hand(void **state)
{
	struct macc_mixer_cfg c = {.algo = MACC_ALGO_DMSGD, .comp = {.kind = MACC_COMPRESS_BF16},
				   .gamma = 1.0f, .n = P, .nnb = 1};
	const float zero[P] = {0, 0};
	struct pair t;

	(void)state;
	/* every public copy starts at the shared x^0 = 0 */
	pair_init(&t, &c, zero, HALF, HALF);
	pair_round(&t, 0, NULL, NULL, 0);
	assert_int_equal(t.out[0].enc, MACC_COMPRESS_BF16);
	assert_true(t.out[0].x_len > 0 && t.out[0].v_len > 0);
	/* mixhat(x) = x + gamma w (xhat_l - xhat_j) = (1, 2) + 1/2 ((3, 6) - (1, 2)) = (2, 4) */
	check(t.x[0], 1.625f, 3.25f, "choco x0");
	check(t.x[1], 1.125f, 4.25f, "choco x1");
	/* agent 0's copy of agent 1 is bit for bit agent 1's own public copy */
	assert_memory_equal(macc_choco_peer_x(&t.m[0].choco, 0), macc_mixer_public_x(&t.m[1]),
			    P * sizeof(float));
	pair_finish(&t);
}

/* A copy misses a difference (lost sync), then a difference that does not follow it is left out
 * (resync needed), then a full state puts it back. */
static void test_choco_sync(void **state)
{
	struct macc_mixer_cfg c = {.algo = MACC_ALGO_CDSGD, .comp = {.kind = MACC_COMPRESS_BF16},
				   .gamma = 1.0f, .n = P, .nnb = 1};
	const bool lost[2] = {false, true};
	const float zero[P] = {0, 0};
	struct macc_mixer_report rep;
	struct macc_mixer_in full;
	float xs[P];
	struct pair t;

	(void)state;
	pair_init(&t, &c, zero, HALF, HALF);
	pair_round(&t, 0, NULL, NULL, 0);
	assert_int_equal(t.rep[0].count[MACC_ROBUST_OK], 1);
	/* round 1: agent 1's difference never reaches agent 0: alone, copy now stale */
	memcpy(xs, t.x[0], sizeof(xs));
	pair_round(&t, 1, NULL, lost, 0);
	assert_int_equal(t.rep[0].sync_lost, 1);
	assert_int_equal(t.rep[0].missed, 1);
	assert_true(t.x[0][0] == xs[0] - 0.5f * G0[0][0]); /* mixhat = x: x' = x - alpha g */
	/* round 2: the next difference arrives, but does not follow the copy: not used */
	pair_round(&t, 2, NULL, NULL, 0);
	assert_int_equal(t.rep[0].out_of_sync, 1);
	assert_true(macc_mixer_outcome(&t.m[0], 0)->out_of_sync);
	assert_int_equal(t.rep[0].count[MACC_ROBUST_OK], 0);
	assert_int_equal(t.rep[1].out_of_sync, 0); /* agent 1's copy of agent 0 is fine */
	/* round 3: a full state (agent 1's public copies) replaces the copy: in sync again */
	macc_mixer_begin(&t.m[0], 3, MACC_NO_PARTNER);
	full = (struct macc_mixer_in){.arrived = true, .full = true,
				      .x = macc_mixer_public_x(&t.m[1])};
	macc_mixer_step(&t.m[0], &HP, t.x[0], t.v[0], t.g[0], &full, 0, &rep);
	assert_int_equal(rep.resynced, 1);
	assert_int_equal(rep.count[MACC_ROBUST_OK], 1);
	assert_memory_equal(macc_choco_peer_x(&t.m[0].choco, 0), macc_mixer_public_x(&t.m[1]),
			    P * sizeof(float));
	pair_finish(&t);
}

/* A restarted agent (not fresh) holds no usable copy until a full state arrives. */
static void test_choco_restart(void **state)
{
	struct macc_mixer_cfg c = {.algo = MACC_ALGO_CDSGD, .comp = {.kind = MACC_COMPRESS_INT8},
				   .n = P, .nnb = 1};
	struct macc_mixer m;
	struct macc_errmsg e;
	struct macc_mixer_out o;
	struct macc_mixer_report rep;
	float x[P] = {1, 2}, g[P] = {0, 0};
	struct macc_mixer_in in;

	(void)state;
	assert_int_equal(macc_mixer_init(&m, &c, x, 5, false, &e), 0);
	assert_true(m.cfg.gamma == macc_compress_default_gamma(&c.comp));
	macc_mixer_set_row(&m, 0.5, &HALF[1]);
	macc_mixer_begin(&m, 5, MACC_NO_PARTNER);
	assert_int_equal(macc_mixer_outgoing(&m, &HP, x, NULL, g, &o, &e), 0);
	in = in_of(&o, true);
	macc_mixer_step(&m, &HP, x, NULL, g, &in, 0, &rep);
	assert_int_equal(rep.out_of_sync, 1);
	macc_mixer_finish(&m);
}

/* ---- robust mixing: exclusions, quarantine, clipping, the agent's own state ---- */

/* Agent 0 of a star with three neighbours, uniform row 1/4; cdsgd, alpha 0. */
static void robust_setup(struct macc_mixer *m, const char *agg, double factor)
{
	struct macc_mixer_cfg c = {.algo = MACC_ALGO_CDSGD, .n = P, .nnb = 3, .robust = true};
	const double w[3] = {0.25, 0.25, 0.25};
	struct macc_errmsg e = {{0}};
	const float x0[P] = {0, 0};
	bool on;

	assert_int_equal(macc_mixer_robust_cfg(agg, true, factor, &c.rcfg, &on, &e), 0);
	assert_true(on);
	if (macc_mixer_init(m, &c, x0, 0, true, &e) != 0) {
		fail_msg("%s", e.text);
	}
	for (size_t i = 0; i < 3; i++) {
		macc_mixer_set_link(m, i, (uint32_t)(i + 1), true, true);
	}
	macc_mixer_set_row(m, 0.25, w);
}

static void test_robust_exclusions(void **state)
{
	const struct macc_hparams hp = {.alpha = 0.0f, .beta = 0.0f, .omega = 1.0f};
	const float near1[P] = {1, 0}, near2[P] = {0, 2}, far[P] = {1000, 1000};
	float nan_x[P] = {NAN, 1};
	float g[P] = {0, 0}, x[P], want[P];
	struct macc_mixer_in in[3] = {{.arrived = true, .x = near1}, {.arrived = true, .x = near2},
				      {.arrived = true, .x = far}};
	struct macc_mixer_report rep;
	struct macc_mixer m, plain;
	struct macc_mixer_cfg pc = {.algo = MACC_ALGO_CDSGD, .n = P, .nnb = 3};
	const double w[3] = {0.25, 0.25, 0.25};
	struct macc_errmsg e;
	int quarantined_at = -1;

	(void)state;
	robust_setup(&m, "mean", 10.0);
	/* the reference: the plain path with the far neighbour missing (folded) */
	assert_int_equal(macc_mixer_init(&plain, &pc, g, 0, true, &e), 0);
	macc_mixer_set_row(&plain, 0.25, w);
	for (int r = 0; r < 6; r++) {
		memset(x, 0, sizeof(x));
		memset(want, 0, sizeof(want));
		in[2].arrived = false;
		macc_mixer_step(&plain, &hp, want, NULL, g, in, 0, &rep);
		in[2].arrived = true;
		macc_mixer_begin(&m, (uint64_t)r, MACC_NO_PARTNER);
		macc_mixer_step(&m, &hp, x, NULL, g, in, 0, &rep);
		/* excluded by distance (the round's bound: 10 x the lower median of 1, 2, 1414),
		 * weight folded like a missing neighbour: the same bits */
		assert_memory_equal(x, want, sizeof(x));
		if (rep.quarantined > 0) {
			quarantined_at = r;
			assert_true(macc_mixer_outcome(&m, 2)->quarantined);
		}
		assert_int_equal(rep.count[MACC_ROBUST_OK], 2);
		assert_int_equal(rep.missed, 0);
		assert_int_equal(macc_mixer_outcome(&m, 2)->reason,
				 r <= 2 ? MACC_ROBUST_DISTANCE : MACC_ROBUST_QUARANTINED);
	}
	/* three fails in a row start a quarantine (the default), from the next round on */
	assert_int_equal(quarantined_at, 2);
	assert_true(macc_quarantine_active(macc_mixer_quarantine(&m, 2), 3));
	macc_mixer_finish(&m);
	/* a NaN is excluded as nonfinite, under any rule */
	robust_setup(&m, "clip:auto", 10.0);
	in[2].x = nan_x;
	memset(x, 0, sizeof(x));
	macc_mixer_begin(&m, 0, MACC_NO_PARTNER);
	macc_mixer_step(&m, &hp, x, NULL, g, in, 0, &rep);
	assert_int_equal(rep.count[MACC_ROBUST_NONFINITE], 1);
	assert_int_equal(macc_mixer_outcome(&m, 2)->reason, MACC_ROBUST_NONFINITE);
	assert_true(isfinite(x[0]) && isfinite(x[1]));
	macc_mixer_finish(&m);
	macc_mixer_finish(&plain);
}

static void test_robust_clip_and_own_state(void **state)
{
	const struct macc_hparams hp = {.alpha = 0.0f, .beta = 0.0f, .omega = 1.0f};
	const float a[P] = {3, 4}, b[P] = {0.25f, 0}, c2[P] = {0, 0.25f};
	float g[P] = {0, 0}, x[P] = {0, 0}, x1;
	struct macc_mixer_in in[3] = {{.arrived = true, .x = a}, {.arrived = true, .x = b},
				      {.arrived = true, .x = c2}};
	struct macc_mixer_report rep;
	struct macc_mixer m;

	(void)state;
	/* clip:1 without screening: (3, 4) is 5 away, clipped to norm 1 */
	robust_setup(&m, "clip:1", 0.0);
	macc_mixer_begin(&m, 0, MACC_NO_PARTNER);
	macc_mixer_step(&m, &hp, x, NULL, g, in, 0, &rep);
	assert_int_equal(rep.clipped, 1);
	assert_true(macc_mixer_outcome(&m, 0)->clipped);
	assert_false(macc_mixer_outcome(&m, 1)->clipped);
	assert_true(fabsf(x[0] - 0.25f * (0.6f + 0.25f)) < 1e-6f);
	assert_true(fabsf(x[1] - 0.25f * (0.8f + 0.25f)) < 1e-6f);
	/* the agent's own state not finite: mixes with nobody, says so */
	x1 = x[1];
	x[0] = NAN;
	macc_mixer_step(&m, &hp, x, NULL, g, in, 0, &rep);
	assert_int_equal(rep.rc, MACC_ENONFINITE);
	assert_int_equal(rep.count[MACC_ROBUST_OK], 0);
	assert_true(x[1] == x1); /* x unchanged: self weight 1, alpha 0 */
	macc_mixer_finish(&m);
}

/* The one rule for robust mixing's settings. */
static void test_robust_cfg_rule(void **state)
{
	struct macc_robust_cfg c;
	struct macc_errmsg e;
	bool on = true;

	(void)state;
	assert_int_equal(macc_mixer_robust_cfg(NULL, false, 0, &c, &on, &e), 0);
	assert_false(on);
	assert_true(c.agg.kind == MACC_AGG_MEAN && c.factor == 0.0);
	assert_int_equal(macc_mixer_robust_cfg("mean", true, 3.0, &c, &on, &e), 0);
	assert_true(on && c.factor == 3.0);
	assert_int_equal(macc_mixer_robust_cfg("clip:auto", false, 0, &c, &on, &e), 0);
	assert_true(on && c.agg.kind == MACC_AGG_CLIP_AUTO && c.factor == 10.0);
	assert_int_equal(macc_mixer_robust_cfg("trimmed:2", true, 0.0, &c, &on, &e), 0);
	assert_true(on && c.factor == 0.0 && c.agg.b == 2);
	assert_int_equal(macc_mixer_robust_cfg("median", false, 0, &c, &on, &e), MACC_ESPEC);
	assert_true(c.agg.b == 2); /* untouched on error */
	assert_true(macc_mixer_robust_cfg("mean", true, -1.0, &c, &on, &e) < 0);
}

/* ---- the neighbour set (a reload) and switching robust mixing ---- */

static void test_set_nnb_and_robust(void **state)
{
	struct macc_mixer_cfg c = {.algo = MACC_ALGO_CDSGD, .n = P, .nnb = 1};
	const struct macc_hparams hp = {.alpha = 0.0f, .beta = 0.0f, .omega = 1.0f};
	const double w3[3] = {0.25, 0.25, 0.25};
	const float a[P] = {4, 0}, b[P] = {0, 4}, d[P] = {4, 4};
	struct macc_mixer_in in[3] = {{.arrived = true, .x = a}, {.arrived = true, .x = b},
				      {.arrived = true, .x = d}};
	struct macc_robust_cfg rc;
	struct macc_mixer_report rep;
	struct macc_mixer m;
	struct macc_errmsg e;
	float x[P] = {0, 0}, g[P] = {0, 0};
	bool on;

	(void)state;
	assert_int_equal(macc_mixer_init(&m, &c, x, 0, true, &e), 0);
	assert_int_equal(macc_mixer_set_nnb(&m, 3), 0);
	assert_int_equal(macc_mixer_nnb(&m), 3);
	macc_mixer_set_row(&m, 0.25, w3);
	macc_mixer_step(&m, &hp, x, NULL, g, in, 0, &rep);
	check(x, 2.0f, 2.0f, "three neighbours at 1/4");
	assert_int_equal(macc_mixer_set_nnb(&m, 2), 0);
	macc_mixer_set_row(&m, 0.5, w3);
	memset(x, 0, sizeof(x));
	macc_mixer_step(&m, &hp, x, NULL, g, in, 0, &rep);
	check(x, 1.0f, 1.0f, "two neighbours at 1/4");
	/* trimmed:1 needs 3 neighbours: refused with 2, taken with 3 */
	assert_int_equal(macc_mixer_robust_cfg("trimmed:1", true, 0.0, &rc, &on, &e), 0);
	assert_int_equal(macc_mixer_set_robust(&m, true, &rc), MACC_ESTATE);
	assert_false(m.cfg.robust);
	assert_int_equal(macc_mixer_set_nnb(&m, 3), 0);
	macc_mixer_set_row(&m, 0.25, w3);
	assert_int_equal(macc_mixer_set_robust(&m, true, &rc), 0);
	memset(x, 0, sizeof(x));
	macc_mixer_step(&m, &hp, x, NULL, g, in, 0, &rep);
	assert_int_equal(rep.count[MACC_ROBUST_OK], 3);
	assert_int_equal(macc_mixer_set_robust(&m, false, NULL), 0);
	macc_mixer_finish(&m);
	/* the neighbours of a schedule, push-sum or CHOCO are the graph's: fixed */
	c.schedule = MACC_SCHEDULE_MATCHING;
	assert_int_equal(macc_mixer_init(&m, &c, x, 0, true, &e), 0);
	assert_int_equal(macc_mixer_set_nnb(&m, 2), MACC_ESTATE);
	assert_int_equal(macc_mixer_set_nnb(&m, 1), 0);
	macc_mixer_finish(&m);
	macc_mixer_finish(NULL);
}

/* Outgoing states: x itself, push-sum's weight, CHOCO's differences on the own copy. */
static void test_outgoing(void **state)
{
	struct macc_mixer_cfg c = {.algo = MACC_ALGO_DMSGD, .comp = {.kind = MACC_COMPRESS_INT8},
				   .n = P, .nnb = 1};
	struct macc_mixer m;
	struct macc_errmsg e;
	struct macc_mixer_out o;
	float x[P] = {2, 254}, v[P] = {0.5f, 0}, g[P] = {0, 0}, zero[P] = {0, 0};
	float inf_x[P] = {INFINITY, 0};

	(void)state;
	assert_int_equal(macc_mixer_init(&m, &c, zero, 0, true, &e), 0);
	assert_int_equal(macc_mixer_outgoing(&m, &HP, x, v, g, &o, &e), 0);
	assert_true(o.x == x && o.v == v && !o.has_weight);
	assert_true(o.x_len == macc_compress_size(&c.comp, P) && o.v_blob != NULL);
	/* the own public copy moved by the difference sent: int8 of (2, 254) is exact (scale 2) */
	check(macc_mixer_public_x(&m), 2.0f, 254.0f, "own public copy");
	/* a non-finite value cannot be compressed: the model diverged */
	assert_int_equal(macc_mixer_outgoing(&m, &HP, inf_x, v, g, &o, &e), -ERANGE);
	macc_mixer_finish(&m);
	c.comp.kind = MACC_COMPRESS_NONE;
	assert_int_equal(macc_mixer_init(&m, &c, zero, 0, true, &e), 0);
	assert_null(macc_mixer_public_x(&m));
	assert_int_equal(macc_mixer_outgoing(&m, &HP, x, v, g, &o, &e), 0);
	assert_int_equal(o.enc, MACC_COMPRESS_NONE);
	assert_null(o.x_blob);
	assert_true(macc_mixer_model(&m, x) == x);
	assert_true(macc_mixer_pushsum_weight(&m) == 1.0);
	macc_mixer_finish(&m);
}

/* ---- the table of option combinations ---- */

enum toggle {
	T_CENTRAL, T_SINGLE, T_NOGRAPH, T_PUSHSUM, T_SCHEDULE, T_LOCAL, T_COMPRESS, T_ROBUST,
	T_BYZ, T_DROP, T_EXPLICIT, T_GOSSIP, T_N,
};
static const char *const tname[T_N] = {
	"centralized", "1 agent", "no graph", "push-sum", "schedule", "local steps", "compress",
	"robust", "byzantine", "drops", "explicit w", "gossip step",
};
/* What each names in a message: CLI dialect, config dialect. */
static const char *const tword[T_N][2] = {
	{"centralized", "centralized"},      {"single agent", "single agent"},
	{"--topology", "key 'topology'"},    {"push-sum", "push-sum"},
	{"--schedule matching", "schedule = matching"},
	{"--local-steps", "local_steps"},    {"--compress", "compress"},
	{"--aggregation", "aggregation"},    {"--byzantine", "byzantine"},
	{"--drop-prob", "drops"},            {"--weights explicit", "weights = explicit"},
	{"--gossip-step", "gossip_step"},
};

static void apply(struct macc_mix_opts *o, enum toggle t)
{
	switch (t) {
	case T_CENTRAL: o->algo = MACC_ALGO_CENTRALIZED; break;
	case T_SINGLE: o->single = true; break;
	case T_NOGRAPH: o->no_graph = true; break;
	case T_PUSHSUM: o->pushsum = true; break;
	case T_SCHEDULE: o->schedule = MACC_SCHEDULE_MATCHING; break;
	case T_LOCAL: o->local_steps = 4; break;
	case T_COMPRESS: o->compress = MACC_COMPRESS_INT8; break;
	case T_ROBUST: o->robust = true; break;
	case T_BYZ: o->byzantine = true; break;
	case T_DROP: o->drops = true; break;
	case T_EXPLICIT: o->explicit_weights = true; break;
	case T_GOSSIP: o->gossip_step = true; break;
	default: break;
	}
}

/* The refused pairs, written out independently of mixer.c: macc-sim(1)'s and macc.conf(5)'s
 * table. Everything not listed combines. */
static bool refused_pair(enum toggle a, enum toggle b)
{
	static const uint8_t no[][2] = {
		{T_CENTRAL, T_LOCAL}, {T_CENTRAL, T_SCHEDULE}, {T_CENTRAL, T_COMPRESS},
		{T_CENTRAL, T_ROBUST}, {T_CENTRAL, T_BYZ}, {T_CENTRAL, T_PUSHSUM},
		{T_SINGLE, T_LOCAL}, {T_SINGLE, T_ROBUST}, {T_SINGLE, T_BYZ},
		{T_NOGRAPH, T_SCHEDULE}, {T_NOGRAPH, T_PUSHSUM},
		{T_PUSHSUM, T_SCHEDULE}, {T_PUSHSUM, T_COMPRESS}, {T_PUSHSUM, T_DROP},
		{T_PUSHSUM, T_ROBUST}, {T_PUSHSUM, T_BYZ},
		{T_COMPRESS, T_DROP}, {T_COMPRESS, T_ROBUST}, {T_COMPRESS, T_BYZ},
		{T_SCHEDULE, T_ROBUST}, {T_SCHEDULE, T_EXPLICIT},
	};

	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		if ((no[i][0] == a && no[i][1] == b) || (no[i][0] == b && no[i][1] == a)) {
			return true;
		}
	}
	return false;
}

/* Alone, only a gossip step is refused (it needs compression); one agent ignores what has no
 * meaning for it (graph, schedule, compression, drops) instead of refusing it. */
static bool refused(enum toggle a, enum toggle b)
{
	bool single = a == T_SINGLE || b == T_SINGLE;
	bool gossip = (a == T_GOSSIP || b == T_GOSSIP) && a != T_COMPRESS && b != T_COMPRESS;

	return refused_pair(a, b) || (gossip && !single);
}

static void test_combination_table(void **state)
{
	int refusals = 0;

	(void)state;
	printf("  %-12s", "");
	for (int b = 0; b < T_N; b++) {
		printf(" %.3s", tname[b]);
	}
	printf("\n");
	for (int a = 0; a < T_N; a++) {
		printf("  %-12s", tname[a]);
		for (int b = 0; b < T_N; b++) {
			struct macc_mix_opts o = {.algo = MACC_ALGO_DMSGD, .local_steps = 1};
			struct macc_errmsg e = {{0}};
			bool want = refused((enum toggle)a, (enum toggle)b);
			int rc;

			apply(&o, (enum toggle)a);
			apply(&o, (enum toggle)b);
			rc = macc_mixer_check_opts(&o, MACC_MIX_CLI, &e);
			printf("   %c", rc < 0 ? 'x' : '.');
			if ((rc < 0) != want || (rc < 0 && rc != MACC_ECONFIG)) {
				fail_msg("%s + %s: got %d (%s), want %s", tname[a], tname[b], rc,
					 e.text, want ? "refused" : "accepted");
			}
			if (rc < 0 && a != b && refused_pair((enum toggle)a, (enum toggle)b)) {
				/* the message names both, in the caller's words */
				for (int d = 0; d < 2; d++) {
					assert_int_equal(macc_mixer_check_opts(
						&o, (enum macc_mix_dialect)d, &e), MACC_ECONFIG);
					if (!strstr(e.text, tword[a][d]) ||
					    !strstr(e.text, tword[b][d])) {
						fail_msg("%s + %s: '%s' does not name both",
							 tname[a], tname[b], e.text);
					}
				}
				refusals++;
			}
		}
		printf("\n");
	}
	assert_int_equal(refusals, 2 * 21);
}

/* The cases the programs met: what macc-sim refused and the daemon accepted, and back. */
static void test_combination_cases(void **state)
{
	struct macc_mix_opts o = {.algo = MACC_ALGO_DMSGD, .local_steps = 2, .robust = true};
	struct macc_errmsg e = {{0}};

	(void)state;
	/* macc-sim --aggregation clip:auto --local-steps 2, and the same config */
	assert_int_equal(macc_mixer_check_opts(&o, MACC_MIX_CLI, &e), 0);
	assert_int_equal(macc_mixer_check_opts(&o, MACC_MIX_CONF, &e), 0);
	/* a directed topology with dsgd: no push-sum form */
	o = (struct macc_mix_opts){.algo = MACC_ALGO_DSGD, .pushsum = true};
	assert_int_equal(macc_mixer_check_opts(&o, MACC_MIX_CLI, &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "--algorithm dsgd has no push-sum form"));
	o.algo = MACC_ALGO_CDMSGD; /* sgp */
	assert_int_equal(macc_mixer_check_opts(&o, MACC_MIX_CLI, &e), 0);
	/* a gossip step without compression */
	o = (struct macc_mix_opts){.algo = MACC_ALGO_DMSGD, .gossip_step = true};
	assert_int_equal(macc_mixer_check_opts(&o, MACC_MIX_CONF, &e), MACC_ECONFIG);
	assert_string_equal(e.text, "gossip_step needs compress other than none");
	/* one agent ignores compression, a schedule, drops and a topology */
	o = (struct macc_mix_opts){.algo = MACC_ALGO_DMSGD, .single = true, .drops = true,
				   .compress = MACC_COMPRESS_TOPK, .schedule = MACC_SCHEDULE_EXP_PAIRS,
				   .no_graph = true};
	assert_int_equal(macc_mixer_check_opts(&o, MACC_MIX_CLI, &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_by_hand),
		cmocka_unit_test(test_plain_fold),
		cmocka_unit_test(test_plain_nesterov),
		cmocka_unit_test(test_schedule_by_hand),
		cmocka_unit_test(test_pushsum_by_hand),
		cmocka_unit_test(test_pushsum_links),
		cmocka_unit_test(test_choco_by_hand),
		cmocka_unit_test(test_choco_sync),
		cmocka_unit_test(test_choco_restart),
		cmocka_unit_test(test_robust_exclusions),
		cmocka_unit_test(test_robust_clip_and_own_state),
		cmocka_unit_test(test_robust_cfg_rule),
		cmocka_unit_test(test_set_nnb_and_robust),
		cmocka_unit_test(test_outgoing),
		cmocka_unit_test(test_combination_table),
		cmocka_unit_test(test_combination_cases),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
