/*
 * fuzz_modelspec.c - fuzzes the model spec parser (macc_model_create) and the learning-rate
 * schedule parser (macc_lr_parse).
 *
 * The input is the spec text (cut at the first NUL). Whatever the bytes, both parsers must
 * return 0 or a negative code with a message. On success the model must be self-consistent: its
 * views tile the parameter block, and its canonical spec must parse again to the same
 * canonical spec, hash and size (canonicalisation is idempotent, so peers that normalise
 * differently still agree). Otherwise the harness aborts so the fuzzer reports it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macc/nn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_model(const char *spec)
{
	struct macc_model *m = NULL, *again = NULL;
	struct macc_errmsg err = {{0}};
	int rc = macc_model_create(spec, 1, &m, &err);
	size_t off = 0;

	if (rc > 0 || (rc < 0 && (m != NULL || err.text[0] == '\0'))) {
		abort();
	}
	if (rc < 0) {
		return;
	}
	for (size_t v = 0; v < macc_model_nviews(m); v++) {
		const struct macc_param_view *pv = macc_model_view(m, v);

		if (pv->offset != off || pv->count == 0) {
			abort();
		}
		off += pv->count;
	}
	if (off != macc_model_nparams(m) || macc_model_nclasses(m) == 0 ||
	    macc_model_input_dim(m) == 0) {
		abort();
	}
	if (macc_model_create(macc_model_spec(m), 1, &again, &err) != 0 ||
	    strcmp(macc_model_spec(again), macc_model_spec(m)) != 0 ||
	    macc_model_hash(again) != macc_model_hash(m) ||
	    macc_model_nparams(again) != macc_model_nparams(m)) {
		abort();
	}
	macc_model_destroy(again);
	macc_model_destroy(m);
}

static void check_lr(const char *spec)
{
	struct macc_lr_schedule s;
	struct macc_errmsg err = {{0}};
	int rc = macc_lr_parse(spec, 0.1f, &s, &err);

	if (rc > 0 || (rc < 0 && err.text[0] == '\0')) {
		abort();
	}
	if (rc == 0) {
		float a = macc_lr_at(&s, 0.0, 10.0), b = macc_lr_at(&s, 25.5, 10.0);

		if (!(a >= 0.0f && a <= 0.1f) || !(b >= 0.0f && b <= 0.1f)) {
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *spec;

	if (size > 4096) {
		return 0;
	}
	spec = malloc(size + 1);
	if (!spec) {
		return 0;
	}
	memcpy(spec, data, size);
	spec[size] = '\0';
	check_model(spec);
	check_lr(spec);
	free(spec);
	return 0;
}
