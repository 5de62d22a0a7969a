/*
 * fuzz_modelspec.c - fuzzes the model spec parser (macc_model_create) and the learning-rate
 * schedule parser (macc_lr_parse).
 *
 * The input is the spec text (cut at the first NUL). Whatever the bytes, both parsers must
 * return 0 or a negative code with a message. On success the model must be self-consistent: its
 * views tile the parameter block, and its canonical spec must parse again to the same
 * canonical spec, hash and size (canonicalisation is idempotent, so peers that normalise
 * differently still agree). The layer list must agree with the views (every dense and
 * convolution layer's tensors inside the block, shapes chaining), and a small model must run
 * one training step on a sample of zeros with a finite loss. Otherwise the harness aborts so
 * the fuzzer reports it. Specs naming a model file ('@PATH') are skipped: the harness reads no
 * files.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macc/nn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Layers chain and their tensors lie inside the block; returns the summed activation size. */
static size_t check_layers(const struct macc_model *m)
{
	size_t acts = 0;
	struct macc_shape prev = macc_model_input_shape(m);

	if (macc_model_nlayers(m) == 0 || macc_model_layer(m, macc_model_nlayers(m)) != NULL) {
		abort();
	}
	for (size_t i = 0; i < macc_model_nlayers(m); i++) {
		const struct macc_layer *l = macc_model_layer(m, i);

		if (l->in.c != prev.c || l->in.h != prev.h || l->in.w != prev.w ||
		    l->in.flat != prev.flat || l->out.c == 0 || l->out.h == 0 || l->out.w == 0) {
			abort();
		}
		if ((l->kind == MACC_LAYER_DENSE || l->kind == MACC_LAYER_CONV) &&
		    (l->w_count == 0 || l->b_count != l->out.c ||
		     l->w_off + l->w_count != l->b_off ||
		     l->b_off + l->b_count > macc_model_nparams(m))) {
			abort();
		}
		acts += (size_t)l->out.c * l->out.h * l->out.w;
		prev = l->out;
	}
	if (!prev.flat || prev.c != macc_model_nclasses(m)) {
		abort();
	}
	return acts;
}

/* One batch-1 training step on zeros: finite loss, finite gradient. */
static void run_step(struct macc_model *m)
{
	size_t np = macc_model_nparams(m), in = macc_model_input_dim(m);
	size_t nout = macc_model_nclasses(m);
	float *p = calloc(np, sizeof(float)), *g = calloc(np, sizeof(float));
	float *x = calloc(in, sizeof(float)), *t = calloc(nout, sizeof(float));
	int32_t y = (int32_t)(nout - 1);

	if (p && g && x && t) {
		macc_model_init_params(m, p, 1);
		float loss = macc_model_train_batch_t(m, p, g, x, &y, t, 1, 0.0f, NULL);

		if (!isfinite(loss)) {
			abort();
		}
		for (size_t i = 0; i < np; i++) {
			if (!isfinite(g[i])) {
				abort();
			}
		}
	}
	free(p);
	free(g);
	free(x);
	free(t);
}

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
	if (check_layers(m) <= (1u << 20) && macc_model_nparams(m) <= (1u << 18)) {
		run_step(m);
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
	if (spec[0] != '@') {
		check_model(spec);
	}
	check_lr(spec);
	free(spec);
	return 0;
}
