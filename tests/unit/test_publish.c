/*
 * test_publish.c - the daemon's published model (src/agentd/publish.c): when copies are taken
 * (first, on requests, at round boundaries while asked, at most once a second otherwise, never
 * during a chunked transfer), the `model` stream (parameters then standardiser, chunk bounds,
 * generation checks), and `predict` (the live model's outputs at the copy's parameters, with
 * the copy's standardiser; partial rows, too many rows and non-finite inputs refused).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "publish.h"

#define SPEC "input:3,dense:4,tanh,dense:2"

struct fx {
	struct macc_model *m;
	struct macc_pub *p;
	float *x;
	size_t np;
};

static void setup(struct fx *f)
{
	struct macc_errmsg err = {{0}};

	assert_int_equal(macc_model_create(SPEC, 4, &f->m, &err), 0);
	f->np = macc_model_nparams(f->m);
	f->x = malloc(f->np * sizeof(float));
	macc_model_init_params(f->m, f->x, 5);
	assert_int_equal(pub_create(f->m, "agent9", &f->p, &err), 0);
}

static void teardown(struct fx *f)
{
	pub_destroy(f->p);
	macc_model_destroy(f->m);
	free(f->x);
}

static void test_due(void **state)
{
	struct fx f;

	(void)state;
	setup(&f);
	assert_true(pub_due(f.p, 0, false, 1000)); /* no copy yet */
	pub_take(f.p, f.x, 0, f.m, 1000);
	assert_false(pub_due(f.p, 0, true, 1001)); /* a request, but the same round */
	assert_true(pub_due(f.p, 1, false, 1500));  /* asked 0.5 s ago: every boundary */
	pub_take(f.p, f.x, 1, f.m, 1500);
	assert_true(pub_due(f.p, 2, false, 1600));
	pub_take(f.p, f.x, 2, f.m, 1600);
	assert_true(pub_due(f.p, 3, false, 11500)); /* not asked for 10 s, but a second old */
	pub_take(f.p, f.x, 3, f.m, 11500);
	assert_false(pub_due(f.p, 4, false, 11600)); /* neither */
	assert_true(pub_due(f.p, 4, false, 12500));
	assert_true(pub_due(f.p, 4, true, 11700)); /* a request finding another round */
	pub_take(f.p, f.x, 4, f.m, 11700);
	assert_false(pub_due(f.p, 4, true, 11800));
	/* a standardiser set on the live model is news even in the same round */
	float mean[3] = {1, 2, 3}, inv[3] = {0.5f, 0.25f, 2};

	assert_int_equal(macc_model_set_standardizer(f.m, mean, inv), 0);
	assert_true(pub_due(f.p, 4, true, 11900));
	teardown(&f);
}

static void test_model_stream(void **state)
{
	struct fx f;
	struct macc_errmsg err = {{0}};
	struct macc_ctl_model r;
	struct macc_ctl_request q = {.cmd = MACC_CTL_CMD_MODEL, .count = MACC_CTL_MODEL_CHUNK};
	float mean[3] = {1, 2, 3}, inv[3] = {0.5f, 0.25f, 2};

	(void)state;
	setup(&f);
	assert_int_equal(macc_model_set_standardizer(f.m, mean, inv), 0);
	pub_take(f.p, f.x, 7, f.m, 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(pub_model(f.p, &q, 0, &r, &err), 0);
	assert_string_equal(r.name, "agent9");
	assert_string_equal(r.spec, macc_model_spec(f.m));
	assert_string_equal(r.task, "classification");
	assert_int_equal(r.round, 7);
	assert_int_equal(r.generation, 1);
	assert_int_equal(r.nparams, f.np);
	assert_int_equal(r.total, f.np + 6);
	assert_true(r.standardized && r.input_flat);
	assert_int_equal(r.input_c, 3);
	assert_int_equal(r.outputs, 2);
	assert_int_equal(r.data_len, (f.np + 6) * sizeof(float));
	assert_memory_equal(r.data, f.x, f.np * sizeof(float));
	assert_memory_equal((float *)r.data + f.np, mean, sizeof(mean));
	assert_memory_equal((float *)r.data + f.np + 3, inv, sizeof(inv));
	free(r.data);
	/* a chunk across the parameters / mean boundary, from the same generation */
	q.offset = f.np - 2;
	q.count = 4;
	q.generation = 1;
	memset(&r, 0, sizeof(r));
	assert_int_equal(pub_model(f.p, &q, 5, &r, &err), 0);
	assert_int_equal(r.data_len, 4 * sizeof(float));
	assert_memory_equal(r.data, f.x + f.np - 2, 2 * sizeof(float));
	assert_memory_equal((float *)r.data + 2, mean, 2 * sizeof(float));
	free(r.data);
	/* more to come: the copy is held (no new one at a boundary within 10 s) */
	assert_false(pub_due(f.p, 8, false, 2000));
	assert_false(pub_due(f.p, 8, true, 9000));
	/* the last chunk releases it */
	q.offset = f.np + 2;
	q.count = 100;
	memset(&r, 0, sizeof(r));
	assert_int_equal(pub_model(f.p, &q, 9001, &r, &err), 0);
	assert_int_equal(r.data_len, 4 * sizeof(float));
	free(r.data);
	assert_true(pub_due(f.p, 8, true, 9002));
	pub_take(f.p, f.x, 8, f.m, 9002);
	/* the description alone; an old generation; past the end */
	q.offset = 0;
	q.count = 0;
	q.generation = 0;
	memset(&r, 0, sizeof(r));
	assert_int_equal(pub_model(f.p, &q, 9003, &r, &err), 0);
	assert_null(r.data);
	assert_int_equal(r.generation, 2);
	q.generation = 1;
	assert_int_equal(pub_model(f.p, &q, 9003, &r, &err), MACC_ESTATE);
	assert_non_null(strstr(err.text, "moved on from generation 1 to 2"));
	q.generation = 0;
	q.offset = f.np + 7;
	assert_int_equal(pub_model(f.p, &q, 9003, &r, &err), MACC_ESPEC);
	teardown(&f);
}

static void test_predict(void **state)
{
	struct fx f;
	struct macc_errmsg err = {{0}};
	struct macc_ctl_predict r;
	struct macc_ctl_request q = {.cmd = MACC_CTL_CMD_PREDICT};
	float in[5 * 3], want[5 * 2];
	float mean[3] = {1, 2, 3}, inv[3] = {0.5f, 0.25f, 2};

	(void)state;
	setup(&f);
	for (int i = 0; i < 15; i++) {
		in[i] = (float)i * 0.37f - 2.0f;
	}
	pub_take(f.p, f.x, 3, f.m, 0);
	/* the live model moves on: the copy still answers with the round-3 parameters */
	float *xs = malloc(f.np * sizeof(float));

	memcpy(xs, f.x, f.np * sizeof(float));
	f.x[0] += 1.0f;
	macc_model_predict(f.m, xs, in, 5, want);
	q.inputs = (const uint8_t *)in;
	q.inputs_len = sizeof(in);
	memset(&r, 0, sizeof(r));
	assert_int_equal(pub_predict(f.p, &q, &r, &err), 0);
	assert_int_equal(r.rows, 5);
	assert_int_equal(r.outputs, 2);
	assert_int_equal(r.round, 3);
	assert_memory_equal(r.values, want, sizeof(want));
	free(r.values);
	/* with the standardiser of the next copy */
	assert_int_equal(macc_model_set_standardizer(f.m, mean, inv), 0);
	pub_take(f.p, xs, 4, f.m, 1);
	macc_model_predict(f.m, xs, in, 5, want);
	memset(&r, 0, sizeof(r));
	assert_int_equal(pub_predict(f.p, &q, &r, &err), 0);
	assert_memory_equal(r.values, want, sizeof(want));
	free(r.values);
	/* partial rows, too many rows, a NaN */
	q.inputs_len = sizeof(float) * 4;
	assert_int_equal(pub_predict(f.p, &q, &r, &err), MACC_ESPEC);
	assert_non_null(strstr(err.text, "not whole rows"));
	float *many = calloc((MACC_CTL_PREDICT_MAX_ROWS + 1) * 3, sizeof(float));

	q.inputs = (const uint8_t *)many;
	q.inputs_len = (MACC_CTL_PREDICT_MAX_ROWS + 1) * 3 * sizeof(float);
	assert_int_equal(pub_predict(f.p, &q, &r, &err), MACC_ESPEC);
	assert_non_null(strstr(err.text, "1025 rows in one request"));
	in[4] = NAN;
	q.inputs = (const uint8_t *)in;
	q.inputs_len = sizeof(in);
	assert_int_equal(pub_predict(f.p, &q, &r, &err), MACC_ESPEC);
	assert_non_null(strstr(err.text, "row 1, input 1 is not a finite number"));
	free(many);
	free(xs);
	teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_due),
		cmocka_unit_test(test_model_stream),
		cmocka_unit_test(test_predict),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
