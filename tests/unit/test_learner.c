/*
 * test_learner.c - the learner (learner.h): the one epoch rule (rounds per epoch = the smallest
 * shard's full batches / local steps) and learning-rate rule, a round's local steps against the
 * same steps written out with the model, batcher and optimiser, where the gradient is taken,
 * loss accounting, checkpoint state, and the errors. Synthetic data: a 30-sample, 4-feature,
 * 3-class set.
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

#include "macc/data.h"
#include "macc/err.h"
#include "macc/learner.h"
#include "macc/nn.h"
#include "macc/rng.h"

#define N 30
#define DIM 4

struct fixture {
	struct macc_dataset d;
	struct macc_partition part; /* 3 agents, 10 samples each */
	float x[N * DIM];
	int32_t y[N];
	uint32_t off[4], idx[N];
};

static void fixture_init(struct fixture *f)
{
	struct macc_rng r;

	memset(f, 0, sizeof(*f));
	macc_rng_seed(&r, 9, 1);
	for (size_t i = 0; i < N * DIM; i++) {
		f->x[i] = (float)macc_rng_normal(&r);
	}
	for (size_t i = 0; i < N; i++) {
		f->y[i] = (int32_t)(i % 3);
		f->idx[i] = (uint32_t)i;
	}
	f->d = (struct macc_dataset){.n = N, .dim = DIM, .channels = 1, .height = 1,
				     .width = DIM, .nclasses = 3, .x = f->x, .y = f->y};
	f->off[0] = 0;
	f->off[1] = 10;
	f->off[2] = 20;
	f->off[3] = 30;
	f->part = (struct macc_partition){.nagents = 3, .offsets = f->off, .indices = f->idx};
}

static struct macc_learner_opts opts(struct fixture *f, uint32_t h)
{
	return (struct macc_learner_opts){
		.model = "logreg:4-3",
		.batch = 2,
		.train = &f->d,
		.part = &f->part,
		.agent = 1,
		.seed = 5,
		.weight_decay = 0.01f,
		.beta = 0.5f,
		.local_steps = h,
		.lr_schedule = "step:1:0.5",
		.lr = 0.4f,
		.epochs = 3,
	};
}

static void test_epoch_rule(void **state)
{
	uint32_t off[4] = {0, 10, 17, 29}, idx[29];
	struct macc_partition p = {.nagents = 3, .offsets = off, .indices = idx};
	struct macc_errmsg e = {{0}};
	uint64_t r = 0;

	(void)state;
	/* the smallest shard (7 samples) holds 3 batches of 2 */
	assert_int_equal(macc_learner_epoch_rule(&p, 29, 2, 1, &r, &e), 0);
	assert_int_equal(r, 3);
	assert_int_equal(macc_learner_epoch_rule(&p, 29, 2, 2, &r, &e), 0);
	assert_int_equal(r, 1);
	assert_int_equal(macc_learner_epoch_rule(&p, 29, 2, 3, &r, &e), 0);
	assert_int_equal(r, 1);
	r = 77;
	assert_int_equal(macc_learner_epoch_rule(&p, 29, 2, 4, &r, &e), MACC_ECONFIG);
	assert_int_equal(r, 77);
	assert_non_null(strstr(e.text, "local steps 4"));
	assert_non_null(strstr(e.text, "shard 1, 7 samples"));
	assert_int_equal(macc_learner_epoch_rule(&p, 29, 8, 1, &r, &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "shard 1 has 7 samples, fewer than one batch of 8"));
	/* one shard of all n samples */
	assert_int_equal(macc_learner_epoch_rule(NULL, 29, 2, 0, &r, &e), 0);
	assert_int_equal(r, 14);
	assert_int_equal(macc_learner_epoch_rule(NULL, 29, 2, 4, &r, &e), 0);
	assert_int_equal(r, 3);
}

static void test_length_and_lr(void **state)
{
	struct fixture f;
	struct macc_learner l;
	struct macc_learner_opts o;
	struct macc_errmsg e = {{0}};

	(void)state;
	fixture_init(&f);
	o = opts(&f, 2);
	assert_int_equal(macc_learner_init(&l, &o, &e), 0);
	/* 10 samples a shard, batch 2: 5 batches; two per round: 2 rounds an epoch, 6 in 3 */
	assert_int_equal(macc_learner_epoch_rounds(&l), 2);
	assert_int_equal(macc_learner_total_rounds(&l), 6);
	assert_int_equal(macc_learner_shard_n(&l), 10);
	assert_int_equal(macc_learner_samples_per_round(&l), 4);
	assert_true(macc_learner_epoch(&l, 3) == 1.5);
	/* step:1:0.5: halved at every epoch boundary, rounds 2 and 4 */
	assert_true(macc_learner_lr(&l, 0) == 0.4f && macc_learner_lr(&l, 1) == 0.4f);
	assert_true(macc_learner_lr(&l, 2) == 0.2f && macc_learner_lr(&l, 3) == 0.2f);
	assert_true(macc_learner_lr(&l, 4) == 0.1f);
	macc_learner_finish(&l);
	/* rounds instead of epochs; an explicit epoch length */
	o.rounds = 5;
	o.epoch_rounds = 7;
	assert_int_equal(macc_learner_init(&l, &o, &e), 0);
	assert_int_equal(macc_learner_epoch_rounds(&l), 7);
	assert_int_equal(macc_learner_total_rounds(&l), 5);
	macc_learner_finish(&l);
	macc_learner_finish(NULL);
}

static int moved_calls;

/* A point that is half of x (the way push-sum de-biases x = z / w with w = 2). */
static void halve(void *ctx, const float *x)
{
	float *at = ctx;

	for (size_t i = 0; i < 15; i++) {
		at[i] = x[i] / 2.0f;
	}
	moved_calls++;
}

/* H = 3 local work against the same steps written out: batches from a batcher on the same shard
 * and stream, the gradient at the point, macc_sgd_step for the first two. */
static void test_round_matches_manual(void **state)
{
	struct fixture f;
	struct macc_learner l;
	struct macc_learner_opts o;
	struct macc_errmsg e = {{0}};
	struct macc_batcher b;
	struct macc_model *m = NULL;
	struct macc_rng rng;
	float x[15], v[15] = {0}, g[15], at[15], x2[15], v2[15] = {0}, g2[15], at2[15];
	float bx[2 * DIM], want_loss = 0.0f, loss;
	int32_t by[2];
	struct macc_learner_point pt = {at, halve, at};
	double sum;
	uint64_t batches;

	(void)state;
	fixture_init(&f);
	o = opts(&f, 3);
	assert_int_equal(macc_learner_init(&l, &o, &e), 0);
	assert_int_equal(macc_model_nparams(macc_learner_model(&l)), 15);
	macc_model_init_params(macc_learner_model(&l), x, 5);
	memcpy(x2, x, sizeof(x));
	halve(at, x);
	halve(at2, x2);
	moved_calls = 0;
	loss = macc_learner_round(&l, 0.4f, x, v, g, &pt);
	assert_int_equal(moved_calls, 2);
	/* the same by hand */
	assert_int_equal(macc_model_create("logreg:4-3", 2, &m, &e), 0);
	assert_int_equal(macc_batcher_init(&b, &f.d, f.idx + 10, 10, 2, 5, MACC_STREAM_BATCH + 1),
			 0);
	macc_rng_seed(&rng, 5, MACC_STREAM_DROPOUT + 1);
	for (int h = 0; h < 3; h++) {
		macc_batcher_next(&b, bx, by);
		want_loss += macc_model_train_batch(m, at2, g2, bx, by, 2, 0.01f, &rng);
		if (h < 2) {
			macc_sgd_step(15, x2, v2, g2, 0.4f, 0.5f, false);
			halve(at2, x2);
		}
	}
	assert_memory_equal(x, x2, sizeof(x));
	assert_memory_equal(v, v2, sizeof(v));
	assert_memory_equal(g, g2, sizeof(g));
	assert_memory_equal(at, at2, sizeof(at));
	assert_true(fabsf(loss - want_loss / 3.0f) < 1e-6f);
	macc_learner_take_loss(&l, &sum, &batches);
	assert_int_equal(batches, 3);
	assert_true(fabs(sum - (double)want_loss) < 1e-5);
	macc_learner_take_loss(&l, &sum, &batches);
	assert_int_equal(batches, 0);
	assert_true(sum == 0.0);
	macc_batcher_finish(&b);
	macc_model_destroy(m);
	macc_learner_finish(&l);
}

/* Two learners with the same options compute the same bits; a checkpointed state continues
 * the same sequence in a new learner. */
static void test_state(void **state)
{
	struct fixture f;
	struct macc_learner a, b;
	struct macc_learner_opts o;
	struct macc_errmsg e = {{0}};
	struct macc_batcher_state bs;
	struct macc_rng rng;
	float xa[15], va[15] = {0}, ga[15], xb[15], vb[15] = {0}, gb[15];
	struct macc_learner_point pa = {xa, NULL, NULL}, pb = {xb, NULL, NULL};

	(void)state;
	fixture_init(&f);
	o = opts(&f, 2);
	assert_int_equal(macc_learner_init(&a, &o, &e), 0);
	assert_int_equal(macc_learner_init(&b, &o, &e), 0);
	macc_model_init_params(macc_learner_model(&a), xa, 5);
	memcpy(xb, xa, sizeof(xa));
	for (int r = 0; r < 4; r++) {
		(void)macc_learner_round(&a, 0.1f, xa, va, ga, &pa);
		(void)macc_learner_round(&b, 0.1f, xb, vb, gb, &pb);
	}
	assert_memory_equal(xa, xb, sizeof(xa));
	/* a's state into a fresh learner c (= b reused after finish) */
	macc_learner_get_state(&a, &bs, &rng);
	macc_learner_finish(&b);
	assert_int_equal(macc_learner_init(&b, &o, &e), 0);
	assert_int_equal(macc_learner_set_state(&b, &bs, &rng), 0);
	(void)macc_learner_round(&a, 0.1f, xa, va, ga, &pa);
	(void)macc_learner_round(&b, 0.1f, xb, vb, gb, &pb);
	assert_memory_equal(ga, gb, sizeof(ga));
	assert_memory_equal(xa, xb, sizeof(xa));
	/* a batcher position past the epoch does not fit */
	bs.pos = 99;
	assert_int_equal(macc_learner_set_state(&b, &bs, &rng), MACC_ESTATE);
	macc_learner_finish(&a);
	macc_learner_finish(&b);
}

static void test_errors(void **state)
{
	struct fixture f;
	struct macc_learner l;
	struct macc_learner_opts o;
	struct macc_errmsg e = {{0}};

	(void)state;
	fixture_init(&f);
	o = opts(&f, 1);
	o.model = "logreg:5-3x";
	assert_int_equal(macc_learner_init(&l, &o, &e), MACC_ESPEC);
	assert_null(l.model);
	o = opts(&f, 1);
	o.batch = 11;
	assert_int_equal(macc_learner_init(&l, &o, &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "shard 1 has 10 samples, fewer than one batch of 11"));
	o = opts(&f, 6); /* 5 batches a shard, 6 a round */
	assert_int_equal(macc_learner_init(&l, &o, &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "local steps 6"));
	o = opts(&f, 1);
	o.agent = 3;
	assert_int_equal(macc_learner_init(&l, &o, &e), -EINVAL);
	o = opts(&f, 1);
	o.lr_schedule = "wobble";
	assert_int_equal(macc_learner_init(&l, &o, &e), MACC_ESPEC);
	macc_learner_finish(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_epoch_rule),
		cmocka_unit_test(test_length_and_lr),
		cmocka_unit_test(test_round_matches_manual),
		cmocka_unit_test(test_state),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
