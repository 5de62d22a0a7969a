/*
 * test_export.c - ONNX export and the reader (macc/onnx.h): round trips of an MLP, a CNN with
 * every layer kind and a standardised regression model give back the same spec, parameters,
 * standardiser and predictions; the reader refuses what macc did not write (bytes that are no
 * ONNX, another producer, an edited graph, changed parameters, a truncated file) with the
 * reason; a spec longer than a config line survives; diverged parameters are not exported.
 * Whether ONNX Runtime computes the same outputs is tests/integration/test_export_ort.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macc/nn.h"
#include "macc/onnx.h"
#include "macc/rng.h"

#define CNN_SPEC                                                                                 \
	"input:2x9x9,conv:4:3:pad=1,leakyrelu:0.1,maxpool:2,conv:3:2,sigmoid,"                   \
	"avgpool:2:stride=1,flatten,dense:8,gelu,dropout:0.25,dense:6,tanh,dense:3"

struct fixture {
	struct macc_model *m;
	float *params;
	float *x; /* [N][dim] */
};

#define N 17

static void setup_model(struct fixture *f, const char *spec, uint64_t seed)
{
	struct macc_errmsg err = {{0}};
	struct macc_rng rng;
	size_t dim;

	if (macc_model_create(spec, 8, &f->m, &err) < 0) {
		fail_msg("%s: %s", spec, err.text);
	}
	f->params = malloc(macc_model_nparams(f->m) * sizeof(float));
	dim = macc_model_input_dim(f->m);
	f->x = malloc(N * dim * sizeof(float));
	assert_non_null(f->params);
	assert_non_null(f->x);
	macc_model_init_params(f->m, f->params, seed);
	macc_rng_seed(&rng, seed, 77);
	for (size_t i = 0; i < N * dim; i++) {
		f->x[i] = (float)(4.0 * macc_rng_uniform(&rng) - 2.0);
	}
}

static void teardown_model(struct fixture *f)
{
	macc_model_destroy(f->m);
	free(f->params);
	free(f->x);
}

static uint8_t *encode(const struct fixture *f, const char *agent, uint64_t round, size_t *len)
{
	struct macc_onnx_info info = {.agent = agent, .round = round};
	struct macc_errmsg err = {{0}};
	uint8_t *buf = NULL;

	if (macc_onnx_encode(f->m, f->params, &info, &buf, len, &err) < 0) {
		fail_msg("encode: %s", err.text);
	}
	return buf;
}

/* Encode, decode, and compare everything the reader gives back with the original. */
static void roundtrip(const char *spec, bool standardize)
{
	struct fixture f = {0};
	struct macc_onnx_model r = {0};
	struct macc_errmsg err = {{0}};
	const float *mean, *inv, *rmean, *rinv;
	size_t len, np, dim, nout;
	uint8_t *buf;

	setup_model(&f, spec, 3);
	np = macc_model_nparams(f.m);
	dim = macc_model_input_dim(f.m);
	nout = macc_model_nclasses(f.m);
	if (standardize) {
		float *mu = malloc(dim * sizeof(float)), *is = malloc(dim * sizeof(float));

		for (size_t k = 0; k < dim; k++) {
			mu[k] = 0.25f * (float)k - 1.0f;
			is[k] = 1.0f / (1.0f + (float)k);
		}
		assert_int_equal(macc_model_set_standardizer(f.m, mu, is), 0);
		free(mu);
		free(is);
	}
	buf = encode(&f, "agent7", 1234, &len);
	if (macc_onnx_decode(buf, len, "mem.onnx", 5, &r, &err) < 0) {
		fail_msg("decode %s: %s", spec, err.text);
	}
	assert_string_equal(macc_model_spec(r.model), macc_model_spec(f.m));
	assert_int_equal(macc_model_nparams(r.model), np);
	assert_memory_equal(r.params, f.params, np * sizeof(float));
	assert_int_equal(r.digest, macc_params_digest(f.params, np));
	assert_int_equal(r.round, 1234);
	assert_string_equal(r.agent, "agent7");
	assert_int_equal(macc_model_standardizer(r.model, &rmean, &rinv), standardize);
	if (standardize) {
		assert_true(macc_model_standardizer(f.m, &mean, &inv));
		assert_memory_equal(rmean, mean, dim * sizeof(float));
		assert_memory_equal(rinv, inv, dim * sizeof(float));
	}
	/* The same model computes the same outputs (same code, same batch size). */
	float *a = malloc(N * nout * sizeof(float)), *b = malloc(N * nout * sizeof(float));
	struct macc_model *same;

	assert_int_equal(macc_model_create(spec, 5, &same, &err), 0);
	if (standardize) {
		assert_true(macc_model_standardizer(f.m, &mean, &inv));
		assert_int_equal(macc_model_set_standardizer(same, mean, inv), 0);
	}
	macc_model_predict(same, f.params, f.x, N, a);
	macc_model_predict(r.model, r.params, f.x, N, b);
	assert_memory_equal(a, b, N * nout * sizeof(float));
	for (size_t i = 0; i < N * nout; i++) {
		assert_true(isfinite(a[i]));
	}
	macc_model_destroy(same);
	free(a);
	free(b);
	macc_onnx_model_finish(&r);
	free(buf);
	teardown_model(&f);
}

static void test_roundtrip_mlp(void **state)
{
	(void)state;
	roundtrip("mlp:20-16-3", false);
	roundtrip("logreg:7-4", false);
}

static void test_roundtrip_cnn(void **state)
{
	(void)state;
	roundtrip(CNN_SPEC, false);
	roundtrip(CNN_SPEC, true);
}

static void test_roundtrip_regression(void **state)
{
	(void)state;
	roundtrip("input:5,dense:8,relu,dense:2,loss:mse", true);
	roundtrip("input:3,dense:1,loss:mse", false);
}

/* A spec longer than a config line (1023 bytes) comes back: the canonical spec is recorded. */
static void test_long_spec(void **state)
{
	char spec[2048];
	size_t n = 0;

	(void)state;
	n += (size_t)snprintf(spec + n, sizeof(spec) - n, "input:4");
	for (int i = 0; i < 70; i++) {
		n += (size_t)snprintf(spec + n, sizeof(spec) - n, ",leakyrelu:0.125");
	}
	snprintf(spec + n, sizeof(spec) - n, ",dense:3");
	assert_true(strlen(spec) > 1023);
	roundtrip(spec, false);
}

static void *find(uint8_t *buf, size_t len, const void *pat, size_t plen)
{
	void *p = memmem(buf, len, pat, plen);

	assert_non_null(p);
	return p;
}

/* Decoding must fail with `want` and a message containing `text`. */
static void refused(const uint8_t *buf, size_t len, int want, const char *text)
{
	struct macc_onnx_model r = {0};
	struct macc_errmsg err = {{0}};
	int rc = macc_onnx_decode(buf, len, "bad.onnx", 4, &r, &err);

	if (rc != want || !strstr(err.text, text)) {
		fail_msg("want %d '%s', got %d: %s", want, text, rc, err.text);
	}
	assert_null(r.model);
}

static void test_refuse(void **state)
{
	struct fixture f = {0};
	size_t len;
	uint8_t *buf, *copy;

	(void)state;
	setup_model(&f, "input:6,dense:5,tanh,dense:3", 9);
	buf = encode(&f, "a", 1, &len);
	copy = malloc(len);

	/* not protobuf at all */
	refused((const uint8_t *)"\xff\xff\xff\xff\xff\xff", 6, MACC_EMALFORMED, "not an ONNX");
	/* another producer: producer_name is field 2 (tag 0x12) */
	memcpy(copy, buf, len);
	memcpy(find(copy, len, "\x12\x04macc", 6), "\x12\x04mack", 6);
	refused(copy, len, MACC_EMODEL, "not written by macc (producer 'mack')");
	/* an edited graph: the Tanh node made a Relu */
	memcpy(copy, buf, len);
	memcpy(find(copy, len, "Tanh", 4), "Relu", 4);
	refused(copy, len, MACC_EMODEL, "is not what macc writes");
	/* changed parameters */
	memcpy(copy, buf, len);
	((uint8_t *)find(copy, len, f.params + 3, 8))[1] ^= 0x40;
	refused(copy, len, MACC_ECORRUPT, "do not match the digest");
	/* another format version */
	memcpy(copy, buf, len);
	memcpy(find(copy, len, "macc.format\x12\x01" "1", 14), "macc.format\x12\x01" "9", 14);
	refused(copy, len, MACC_EVERSION, "format '9'");
	/* truncated anywhere: refused, never crashes or leaks */
	for (size_t cut = 0; cut < len; cut += 1 + cut / 8) {
		struct macc_onnx_model r = {0};
		struct macc_errmsg err = {{0}};

		assert_true(macc_onnx_decode(buf, cut, "cut.onnx", 4, &r, &err) < 0);
	}
	free(copy);
	free(buf);
	teardown_model(&f);
}

static void test_nonfinite(void **state)
{
	struct fixture f = {0};
	struct macc_errmsg err = {{0}};
	uint8_t *buf = NULL;
	size_t len = 0;

	(void)state;
	setup_model(&f, "mlp:4-3", 1);
	f.params[5] = NAN;
	assert_int_equal(macc_onnx_encode(f.m, f.params, NULL, &buf, &len, &err), MACC_ENONFINITE);
	assert_non_null(strstr(err.text, "parameter 5 of 15 is not finite"));
	assert_null(buf);
	teardown_model(&f);
}

static void test_file(void **state)
{
	struct fixture f = {0};
	struct macc_onnx_model r = {0};
	struct macc_errmsg err = {{0}};
	struct macc_onnx_info info = {.agent = "sim", .round = 5};
	char dir[] = "/tmp/macc-test-export-XXXXXX", path[128];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/m.onnx", dir);
	setup_model(&f, "mlp:10-3", 2);
	assert_int_equal(macc_onnx_save(path, f.m, f.params, &info, &err), 0);
	assert_int_equal(macc_onnx_load(path, 2, &r, &err), 0);
	assert_memory_equal(r.params, f.params, macc_model_nparams(f.m) * sizeof(float));
	assert_int_equal(r.round, 5);
	macc_onnx_model_finish(&r);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(macc_onnx_load(path, 2, &r, &err), -ENOENT);
	assert_non_null(strstr(err.text, "m.onnx: cannot open"));
	/* an unwritable place: nothing left behind, the error names the file */
	snprintf(path, sizeof(path), "%s/no/such/dir.onnx", dir);
	assert_int_equal(macc_onnx_save(path, f.m, f.params, &info, &err), -ENOENT);
	assert_non_null(strstr(err.text, "dir.onnx.tmp."));
	assert_int_equal(rmdir(dir), 0);
	teardown_model(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_mlp), cmocka_unit_test(test_roundtrip_cnn),
		cmocka_unit_test(test_roundtrip_regression), cmocka_unit_test(test_long_spec),
		cmocka_unit_test(test_refuse), cmocka_unit_test(test_nonfinite),
		cmocka_unit_test(test_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
