/*
 * publish.c - the published model (see publish.h for when copies are taken and why).
 *
 * One copy of the parameters and the standardiser, its round and generation, and a model
 * object of our own for predictions. Taking a copy is one memcpy of the parameter block (about
 * 0.1 ms for the 0.9 MB of mlp:784-256-128-10); its digest is computed only when a reply needs
 * it. Nothing here blocks or allocates per round; a `model` reply allocates its chunk and a
 * `predict` reply its input copy and outputs, both bounded by the protocol's limits.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "publish.h"

struct macc_pub {
	const struct macc_model *live; /* the agent's model: spec, sizes, standardiser */
	struct macc_model *model;      /* ours, for predictions */
	char name[64];
	size_t np, dim;
	uint32_t nout;
	float *x;                      /* np */
	float *mean, *inv;             /* dim each, valid when std */
	bool std;
	uint64_t round, generation, digest;
	bool have_digest;
	uint64_t taken_ms, asked_ms, pinned_until_ms;
	bool asked;
	uint64_t model_gen;            /* the copy whose standardiser `model` has */
};

int pub_create(const struct macc_model *m, const char *agent_name, struct macc_pub **ret,
	       struct macc_errmsg *err)
{
	struct macc_pub *p = calloc(1, sizeof(*p));
	int rc;

	if (p == NULL) {
		return macc_errf(err, -ENOMEM, "out of memory for the published model");
	}
	p->live = m;
	p->np = macc_model_nparams(m);
	p->dim = macc_model_input_dim(m);
	p->nout = macc_model_nclasses(m);
	snprintf(p->name, sizeof(p->name), "%s", agent_name);
	rc = macc_model_create(macc_model_spec(m), MACC_CTL_PREDICT_BATCH, &p->model, err);
	if (rc < 0) {
		goto fail;
	}
	p->x = malloc((p->np ? p->np : 1) * sizeof(float));
	p->mean = malloc(p->dim * sizeof(float));
	p->inv = malloc(p->dim * sizeof(float));
	if (p->x == NULL || p->mean == NULL || p->inv == NULL) {
		rc = macc_errf(err, -ENOMEM, "out of memory for the published model");
		goto fail;
	}
	*ret = p;
	return 0;
fail:
	pub_destroy(p);
	return rc;
}

void pub_destroy(struct macc_pub *p)
{
	if (p == NULL) {
		return;
	}
	macc_model_destroy(p->model);
	free(p->x);
	free(p->mean);
	free(p->inv);
	free(p);
}

bool pub_due(struct macc_pub *p, uint64_t round, bool request, uint64_t now_ms)
{
	const float *m, *s;
	bool live_std = macc_model_standardizer(p->live, &m, &s);

	if (request) {
		p->asked = true;
		p->asked_ms = now_ms;
	}
	if (p->generation == 0) {
		return true;
	}
	if (now_ms < p->pinned_until_ms) {
		return false;
	}
	if (p->round == round && p->std == live_std) {
		return false;
	}
	if (request) {
		return true;
	}
	return (p->asked && now_ms - p->asked_ms < PUB_ASKED_MS) ||
	       now_ms - p->taken_ms >= PUB_IDLE_MS;
}

void pub_take(struct macc_pub *p, const float *x, uint64_t round, const struct macc_model *m,
	      uint64_t now_ms)
{
	const float *mean, *inv;

	memcpy(p->x, x, p->np * sizeof(float));
	p->std = macc_model_standardizer(m, &mean, &inv);
	if (p->std) {
		memcpy(p->mean, mean, p->dim * sizeof(float));
		memcpy(p->inv, inv, p->dim * sizeof(float));
	}
	p->round = round;
	p->generation++;
	p->have_digest = false;
	p->taken_ms = now_ms;
}

static uint64_t digest(struct macc_pub *p)
{
	if (!p->have_digest) {
		p->digest = macc_params_digest(p->x, p->np);
		p->have_digest = true;
	}
	return p->digest;
}

static const char *task(const struct macc_pub *p)
{
	return macc_model_loss(p->live) == MACC_LOSS_MSE ? "regression" : "classification";
}

/* Copy floats [off, off + n) of the stream (params, then mean and inv_std) into dst. */
static void stream_copy(const struct macc_pub *p, uint64_t off, size_t n, float *dst)
{
	const float *seg[3] = {p->x, p->mean, p->inv};
	const uint64_t len[3] = {p->np, p->std ? p->dim : 0, p->std ? p->dim : 0};
	uint64_t start = 0;

	for (int s = 0; s < 3 && n > 0; s++) {
		if (off < start + len[s]) {
			size_t k = (size_t)(start + len[s] - off) < n ? (size_t)(start + len[s] - off)
								      : n;

			memcpy(dst, seg[s] + (off - start), k * sizeof(float));
			dst += k;
			off += k;
			n -= k;
		}
		start += len[s];
	}
}

int pub_model(struct macc_pub *p, const struct macc_ctl_request *req, uint64_t now_ms,
	      struct macc_ctl_model *ret, struct macc_errmsg *err)
{
	struct macc_shape in = macc_model_input_shape(p->live);
	uint64_t total = p->np + (p->std ? 2 * (uint64_t)p->dim : 0), n;

	if (req->generation != 0 && req->generation != p->generation) {
		return macc_errf(err, MACC_ESTATE, "the model snapshot moved on from generation "
				 "%" PRIu64 " to %" PRIu64 " during the transfer: start again",
				 req->generation, p->generation);
	}
	if (req->offset > total) {
		return macc_errf(err, MACC_ESPEC, "offset %" PRIu64 " is past the end of the "
				 "%" PRIu64 "-float model stream", req->offset, total);
	}
	n = total - req->offset;
	n = req->count < n ? req->count : n;
	n = n < MACC_CTL_MODEL_CHUNK ? n : MACC_CTL_MODEL_CHUNK;
	if (n > 0) {
		ret->data = malloc(n * sizeof(float));
		if (ret->data == NULL) {
			return macc_errf(err, -ENOMEM, "out of memory for a %" PRIu64 "-float chunk",
					 n);
		}
		stream_copy(p, req->offset, (size_t)n, (float *)ret->data);
		ret->data_len = n * sizeof(float);
	}
	if (n > 0 && req->offset + n < total) {
		p->pinned_until_ms = now_ms + PUB_PIN_MS; /* more chunks to come */
	} else if (n > 0 && req->offset > 0) {
		p->pinned_until_ms = 0; /* the last chunk of a transfer */
	}
	snprintf(ret->name, sizeof(ret->name), "%s", p->name);
	ret->spec = (char *)macc_model_spec(p->live);
	snprintf(ret->task, sizeof(ret->task), "%s", task(p));
	ret->round = p->round;
	ret->generation = p->generation;
	snprintf(ret->digest, sizeof(ret->digest), "%016" PRIx64, digest(p));
	ret->nparams = p->np;
	ret->input_c = in.c;
	ret->input_h = in.h;
	ret->input_w = in.w;
	ret->input_flat = in.flat;
	ret->outputs = p->nout;
	ret->standardized = p->std;
	ret->total = total;
	ret->offset = req->offset;
	return 0;
}

/* The request's rows into a fresh aligned block, every value finite. */
static int read_rows(const struct macc_pub *p, const struct macc_ctl_request *req,
		     float **ret_x, size_t *ret_rows, struct macc_errmsg *err)
{
	size_t row = p->dim * sizeof(float), rows;
	float *x;

	if (req->inputs_len == 0 || req->inputs_len % row != 0) {
		return macc_errf(err, MACC_ESPEC, "%zu bytes of inputs are not whole rows: model "
				 "'%.80s' takes %zu float32 inputs (%zu bytes) per row",
				 req->inputs_len, macc_model_spec(p->live), p->dim, row);
	}
	rows = req->inputs_len / row;
	if (rows > MACC_CTL_PREDICT_MAX_ROWS) {
		return macc_errf(err, MACC_ESPEC, "%zu rows in one request; at most %u", rows,
				 MACC_CTL_PREDICT_MAX_ROWS);
	}
	x = malloc(req->inputs_len);
	if (x == NULL) {
		return macc_errf(err, -ENOMEM, "out of memory for %zu rows", rows);
	}
	memcpy(x, req->inputs, req->inputs_len);
	for (size_t i = 0; i < rows * p->dim; i++) {
		if (!isfinite(x[i])) {
			free(x);
			return macc_errf(err, MACC_ESPEC, "row %zu, input %zu is not a finite number",
					 i / p->dim, i % p->dim);
		}
	}
	*ret_x = x;
	*ret_rows = rows;
	return 0;
}

int pub_predict(struct macc_pub *p, const struct macc_ctl_request *req,
		struct macc_ctl_predict *ret, struct macc_errmsg *err)
{
	float *x = NULL, *out;
	size_t rows = 0;
	int rc;

	rc = read_rows(p, req, &x, &rows, err);
	if (rc < 0) {
		return rc;
	}
	out = malloc(rows * p->nout * sizeof(float));
	if (out == NULL) {
		free(x);
		return macc_errf(err, -ENOMEM, "out of memory for %zu rows of outputs", rows);
	}
	if (p->model_gen != p->generation) {
		/* cannot fail: the values were finite in the live model, the sizes match */
		(void)macc_model_set_standardizer(p->model, p->std ? p->mean : NULL,
						  p->std ? p->inv : NULL);
		p->model_gen = p->generation;
	}
	macc_model_predict(p->model, p->x, x, rows, out);
	free(x);
	ret->round = p->round;
	ret->generation = p->generation;
	snprintf(ret->digest, sizeof(ret->digest), "%016" PRIx64, digest(p));
	snprintf(ret->task, sizeof(ret->task), "%s", task(p));
	ret->rows = (uint32_t)rows;
	ret->outputs = p->nout;
	ret->values = (uint8_t *)out;
	ret->values_len = rows * p->nout * sizeof(float);
	return 0;
}
