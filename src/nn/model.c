/*
 * model.c - models built from spec strings, over one flat parameter block.
 *
 * A model is a short list of ops (dense, conv, max-pool, flatten, dropout) run in order. The
 * parameter block is laid out like llm.c's: each parameterised op owns a weight tensor then a
 * bias tensor, in op order, and the named views ("conv1.w", "dense2.b", ...) record where. The
 * model itself never owns parameters, gradients or momentum.
 *
 * All activations, im2col matrices, pool arg-max indices and dropout masks are allocated once,
 * at create, for max_batch samples: a training step allocates nothing. Backward ping-pongs
 * between two gradient buffers sized for the widest activation; the first parameterised op
 * skips its input gradient. Activations are [B][C][H][W] like PyTorch's, so flatten aliases
 * its input and dense1 sees PyTorch's feature order.
 *
 * Architectures:
 *   logreg:IN-OUT    one dense layer, softmax cross-entropy on its logits.
 *   mlp:A-B-...-Z    dense layers, ReLU (or tanh with ":tanh") after every one but the last.
 *   cnn:lenet5       input 1x28x28: conv 1->6 5x5 pad 2, ReLU, max-pool 2 -> 6x14x14;
 *                    conv 6->16 5x5, ReLU, max-pool 2 -> 16x5x5; flatten 400; dense 120, ReLU;
 *                    dense 84, ReLU; dense 10. 61,706 parameters: PyTorch reference's LeNet-5.
 *   cnn:cifar        input 3x32x32: three blocks of conv 3x3 pad 1 + ReLU + max-pool 2 with
 *                    16, 32, 64 filters (-> 16x16x16, 32x8x8, 64x4x4); flatten 1024; dense 128,
 *                    ReLU; dense 10. 156,074 parameters; a small, fast net for CIFAR-10.
 *   ",dropout=P"     inverted dropout with rate P after every hidden dense layer's activation.
 *
 * Initialisation follows PyTorch's defaults for Linear and Conv2d (kaiming-uniform with
 * a = sqrt(5), which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for biases), so
 * accuracy per epoch tracks the PyTorch reference.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "macc/nn.h"
#include "layers.h"

/* How the canonical spec writes the dropout rate; the parser rounds the rate through it too. */
#define DROPOUT_FMT "%g"

/* OpenBLAS's cblas.h declares it; a generic cblas.h (same library underneath) may not. */
#ifndef OPENBLAS_VERSION
void openblas_set_num_threads(int num_threads);
#endif

#define MAX_DENSE 32  /* dense layers in an MLP */
#define MAX_OPS 96
#define MAX_VIEWS 80
#define MAX_SPEC 400  /* longest accepted spec string */
#define MAX_WIDTH (1u << 24)
#define MAX_PARAMS (1u << 30) /* 4 GiB of floats per block */

enum op_kind { OP_DENSE, OP_CONV, OP_POOL, OP_FLATTEN, OP_DROPOUT };

struct op {
	enum op_kind kind;
	enum nn_act act;
	size_t in_dim, out_dim;  /* floats per sample */
	size_t w_off, b_off;     /* parameter offsets (dense, conv) */
	struct nn_conv_shape cs; /* conv */
	size_t h, w, c;          /* pool input shape */
	float p;                 /* dropout rate */
	bool need_din;           /* an earlier op has parameters */
	/* workspace, sized for max_batch */
	float *out;              /* [max_batch][out_dim] (flatten: aliases its input) */
	const float *in;         /* input of the last forward pass (borrowed) */
	float *col;              /* conv: im2col matrix */
	uint32_t *arg;           /* pool: arg-max offsets */
	float *mask;             /* dropout: factors */
};

struct macc_model {
	char spec[MAX_SPEC + 64];
	uint64_t hash;
	size_t nparams, input_dim, max_batch;
	uint32_t nclasses;
	float dropout;
	size_t nops;
	struct op ops[MAX_OPS];
	size_t nviews;
	struct macc_param_view views[MAX_VIEWS];
	char view_names[MAX_VIEWS][16];
	float *g0, *g1; /* [max_batch][widest] gradient ping-pong */
	float *dcol;    /* widest im2col of a conv that needs its input gradient */
	float *ctmp;    /* widest conv output in [K][B*OH*OW] order (forward and backward) */
};

/* Shape of the activation while the model is being built. */
struct builder {
	struct macc_model *m;
	size_t h, w, c; /* image shape, or h = w = 1, c = dim once flat */
	size_t ndense, nconv;
	struct macc_errmsg *err;
};

static struct op *add_op(struct builder *bd, enum op_kind kind)
{
	struct macc_model *m = bd->m;
	struct op *op;

	if (m->nops >= MAX_OPS) {
		return NULL;
	}
	op = &m->ops[m->nops++];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->in_dim = bd->h * bd->w * bd->c;
	return op;
}

static void add_view(struct macc_model *m, const char *prefix, size_t idx, const char *suffix,
		     size_t count)
{
	size_t v = m->nviews++;

	snprintf(m->view_names[v], sizeof(m->view_names[v]), "%s%zu.%s", prefix, idx, suffix);
	m->views[v].name = m->view_names[v];
	m->views[v].offset = m->nparams;
	m->views[v].count = count;
	m->nparams += count;
}

static int add_dense(struct builder *bd, size_t out, enum nn_act act)
{
	struct op *op = add_op(bd, OP_DENSE);

	if (!op || bd->m->nviews + 2 > MAX_VIEWS) {
		return macc_errf(bd->err, MACC_ESPEC, "model spec: too many layers");
	}
	op->act = act;
	op->out_dim = out;
	bd->ndense++;
	add_view(bd->m, "dense", bd->ndense, "w", op->in_dim * out);
	op->w_off = bd->m->nparams - op->in_dim * out;
	add_view(bd->m, "dense", bd->ndense, "b", out);
	op->b_off = bd->m->nparams - out;
	bd->h = bd->w = 1;
	bd->c = out;
	return 0;
}

static int add_conv(struct builder *bd, size_t k, size_t ksize, size_t pad)
{
	struct op *op = add_op(bd, OP_CONV);

	if (!op || bd->m->nviews + 2 > MAX_VIEWS) {
		return macc_errf(bd->err, MACC_ESPEC, "model spec: too many layers");
	}
	op->act = NN_ACT_RELU;
	op->cs = (struct nn_conv_shape){.c = bd->c, .h = bd->h, .w = bd->w, .k = k, .kh = ksize,
					.kw = ksize, .pad = pad};
	if (nn_conv_shape_finish(&op->cs) < 0) {
		return macc_errf(bd->err, MACC_ESPEC, "model spec: %zux%zu filter larger than "
				 "%zux%zu input", ksize, ksize, bd->h, bd->w);
	}
	op->out_dim = op->cs.oh * op->cs.ow * k;
	bd->nconv++;
	size_t wn = k * ksize * ksize * bd->c;

	add_view(bd->m, "conv", bd->nconv, "w", wn);
	op->w_off = bd->m->nparams - wn;
	add_view(bd->m, "conv", bd->nconv, "b", k);
	op->b_off = bd->m->nparams - k;
	bd->h = op->cs.oh;
	bd->w = op->cs.ow;
	bd->c = k;
	return 0;
}

static int add_simple(struct builder *bd, enum op_kind kind)
{
	struct op *op = add_op(bd, kind);

	if (!op) {
		return macc_errf(bd->err, MACC_ESPEC, "model spec: too many layers");
	}
	if (kind == OP_POOL) {
		if (bd->h < 2 || bd->w < 2) {
			return macc_errf(bd->err, MACC_ESPEC, "model spec: cannot pool %zux%zu",
					 bd->h, bd->w);
		}
		op->h = bd->h;
		op->w = bd->w;
		op->c = bd->c;
		bd->h /= 2;
		bd->w /= 2;
	} else if (kind == OP_FLATTEN) {
		bd->c = bd->h * bd->w * bd->c;
		bd->h = bd->w = 1;
	} else {
		op->p = bd->m->dropout;
	}
	op->out_dim = bd->h * bd->w * bd->c;
	return 0;
}

/* Hidden dense layer with its activation, then dropout when configured. */
static int add_hidden(struct builder *bd, size_t out, enum nn_act act)
{
	int r = add_dense(bd, out, act);

	if (r == 0 && bd->m->dropout > 0.0f) {
		r = add_simple(bd, OP_DROPOUT);
	}
	return r;
}

/* Parse a decimal size in [1, MAX_WIDTH] from [s, end). */
static int parse_size(const char *s, const char *end, size_t *ret)
{
	size_t v = 0;

	if (s == end) {
		return -1;
	}
	for (const char *p = s; p < end; p++) {
		if (*p < '0' || *p > '9') {
			return -1;
		}
		v = v * 10 + (size_t)(*p - '0');
		if (v > MAX_WIDTH) {
			return -1;
		}
	}
	if (v == 0) {
		return -1;
	}
	*ret = v;
	return 0;
}

/* "A-B-...-Z" into sizes; returns the count or a negative code. */
static int parse_sizes(const char *s, const char *end, size_t *sizes, size_t max,
		       const char *what, struct macc_errmsg *err)
{
	size_t n = 0;

	while (s <= end) {
		const char *dash = memchr(s, '-', (size_t)(end - s));
		const char *e = dash ? dash : end;

		if (n == max) {
			return macc_errf(err, MACC_ESPEC, "model spec: %s has more than %zu sizes",
					 what, max);
		}
		if (parse_size(s, e, &sizes[n]) < 0) {
			return macc_errf(err, MACC_ESPEC, "model spec: %s: bad size '%.*s' (want an "
					 "integer in 1..%u)", what, (int)(e - s), s, MAX_WIDTH);
		}
		n++;
		if (!dash) {
			break;
		}
		s = dash + 1;
	}
	return (int)n;
}

static int parse_options(struct macc_model *m, const char *opts, struct macc_errmsg *err)
{
	while (opts) {
		const char *comma = strchr(opts, ',');
		size_t len = comma ? (size_t)(comma - opts) : strlen(opts);

		if (len == 0) {
			return macc_errf(err, MACC_ESPEC, "model spec: empty option after ','");
		}
		if (len > 8 && strncmp(opts, "dropout=", 8) == 0) {
			char buf[32], canon[32], *end;
			double p;
			float pf;

			if (len - 8 >= sizeof(buf)) {
				return macc_errf(err, MACC_ESPEC, "model spec: bad dropout '%.*s'",
						 (int)len, opts);
			}
			memcpy(buf, opts + 8, len - 8);
			buf[len - 8] = '\0';
			errno = 0;
			p = strtod(buf, &end);
			if (errno || *end || end == buf || !(p >= 0.0 && p < 1.0)) {
				return macc_errf(err, MACC_ESPEC, "model spec: dropout '%s' must be "
						 "a number in [0, 1)", buf);
			}
			/* The rate the model uses is the one its canonical spec shows (%g, six
			 * digits; see below), so a spec and its canonical form make the same model
			 * and hash; that rate, as a float, must still be below 1 (0.9999999 is
			 * "1": inverted dropout would divide by zero). */
			snprintf(canon, sizeof(canon), DROPOUT_FMT, p);
			pf = strtof(canon, NULL);
			if (!(pf < 1.0f)) {
				return macc_errf(err, MACC_ESPEC, "model spec: dropout '%s' rounds to "
						 "1 (six significant digits); it must be below 1", buf);
			}
			m->dropout = pf;
		} else {
			return macc_errf(err, MACC_ESPEC, "model spec: unknown option '%.*s' "
					 "(known: dropout=P)", (int)len, opts);
		}
		opts = comma ? comma + 1 : NULL;
	}
	return 0;
}

static int build(struct macc_model *m, const char *spec, struct macc_errmsg *err)
{
	struct builder bd = {.m = m, .err = err};
	char base[MAX_SPEC + 1];
	const char *comma = strchr(spec, ',');
	size_t blen = comma ? (size_t)(comma - spec) : strlen(spec);
	size_t sizes[MAX_DENSE + 1];
	int r, n;
	int len = 0;

	memcpy(base, spec, blen);
	base[blen] = '\0';
	r = parse_options(m, comma ? comma + 1 : NULL, err);
	if (r < 0) {
		return r;
	}
	if (strncmp(base, "logreg:", 7) == 0 || strncmp(base, "mlp:", 4) == 0) {
		bool logreg = base[0] == 'l';
		const char *s = base + (logreg ? 7 : 4);
		const char *colon = strchr(s, ':');
		const char *end = colon ? colon : s + strlen(s);
		enum nn_act act = NN_ACT_RELU;

		if (colon && !logreg && strcmp(colon + 1, "tanh") == 0) {
			act = NN_ACT_TANH;
		} else if (colon && !logreg && strcmp(colon + 1, "relu") == 0) {
			act = NN_ACT_RELU;
		} else if (colon) {
			return macc_errf(err, MACC_ESPEC, "model spec '%s': unknown activation "
					 "'%s' (known: relu, tanh%s)", spec, colon + 1,
					 logreg ? "; logreg has none" : "");
		}
		n = parse_sizes(s, end, sizes, MAX_DENSE + 1, logreg ? "logreg" : "mlp", err);
		if (n < 0) {
			return n;
		}
		if (n < 2 || (logreg && n != 2)) {
			return macc_errf(err, MACC_ESPEC, "model spec '%s': want %s", spec,
					 logreg ? "logreg:IN-OUT" : "mlp:IN-H1-...-OUT (at least "
					 "IN-OUT)");
		}
		bd.h = bd.w = 1;
		bd.c = sizes[0];
		len = snprintf(m->spec, sizeof(m->spec), "%s:%zu", logreg ? "logreg" : "mlp",
			       sizes[0]);
		for (int i = 1; i < n; i++) {
			r = i < n - 1 ? add_hidden(&bd, sizes[i], act)
				      : add_dense(&bd, sizes[i], NN_ACT_NONE);
			if (r < 0) {
				return r;
			}
			len += snprintf(m->spec + len, sizeof(m->spec) - (size_t)len, "-%zu",
					sizes[i]);
		}
		if (act == NN_ACT_TANH) {
			len += snprintf(m->spec + len, sizeof(m->spec) - (size_t)len, ":tanh");
		}
		m->input_dim = sizes[0];
	} else if (strcmp(base, "cnn:lenet5") == 0) {
		bd.h = bd.w = 28;
		bd.c = 1;
		if ((r = add_conv(&bd, 6, 5, 2)) < 0 || (r = add_simple(&bd, OP_POOL)) < 0 ||
		    (r = add_conv(&bd, 16, 5, 0)) < 0 || (r = add_simple(&bd, OP_POOL)) < 0 ||
		    (r = add_simple(&bd, OP_FLATTEN)) < 0 || (r = add_hidden(&bd, 120,
		    NN_ACT_RELU)) < 0 || (r = add_hidden(&bd, 84, NN_ACT_RELU)) < 0 ||
		    (r = add_dense(&bd, 10, NN_ACT_NONE)) < 0) {
			return r;
		}
		m->input_dim = 28 * 28;
		len = snprintf(m->spec, sizeof(m->spec), "cnn:lenet5");
	} else if (strcmp(base, "cnn:cifar") == 0) {
		bd.h = bd.w = 32;
		bd.c = 3;
		for (size_t k = 16; k <= 64; k *= 2) {
			if ((r = add_conv(&bd, k, 3, 1)) < 0 || (r = add_simple(&bd, OP_POOL)) < 0) {
				return r;
			}
		}
		if ((r = add_simple(&bd, OP_FLATTEN)) < 0 || (r = add_hidden(&bd, 128,
		    NN_ACT_RELU)) < 0 || (r = add_dense(&bd, 10, NN_ACT_NONE)) < 0) {
			return r;
		}
		m->input_dim = 3 * 32 * 32;
		len = snprintf(m->spec, sizeof(m->spec), "cnn:cifar");
	} else {
		return macc_errf(err, MACC_ESPEC, "model spec '%s': unknown model (known: "
				 "logreg:IN-OUT, mlp:IN-...-OUT[:tanh], cnn:lenet5, cnn:cifar)",
				 spec);
	}
	if (m->dropout > 0.0f) {
		snprintf(m->spec + len, sizeof(m->spec) - (size_t)len, ",dropout=" DROPOUT_FMT,
			 (double)m->dropout);
	}
	if (m->nparams > MAX_PARAMS) {
		return macc_errf(err, MACC_ESPEC, "model spec '%s': %zu parameters, more than the "
				 "%zu supported", spec, m->nparams, (size_t)MAX_PARAMS);
	}
	m->nclasses = (uint32_t)m->ops[m->nops - 1].out_dim;
	return 0;
}

/* Allocate every workspace buffer for max_batch samples. */
static int alloc_workspace(struct macc_model *m, struct macc_errmsg *err)
{
	const size_t B = m->max_batch;
	size_t widest = m->input_dim, dcol = 0, ctmp = 0;
	bool seen_params = false;

	for (size_t i = 0; i < m->nops; i++) {
		struct op *op = &m->ops[i];
		size_t col = op->kind == OP_CONV ? nn_conv_col_size(&op->cs, 1) : 0;

		op->need_din = seen_params;
		seen_params |= op->kind == OP_DENSE || op->kind == OP_CONV;
		if (op->out_dim > widest) {
			widest = op->out_dim;
		}
		/* sgemm takes int dimensions; pool offsets are 32-bit */
		if (B > (size_t)INT32_MAX / (op->out_dim > col ? op->out_dim : col) ||
		    B > (size_t)INT32_MAX / op->in_dim) {
			return macc_errf(err, -EINVAL, "max_batch %zu too large for model %s", B,
					 m->spec);
		}
		if (op->kind == OP_CONV && op->need_din && col > dcol) {
			dcol = col;
		}
		if (op->kind == OP_CONV && op->out_dim > ctmp) {
			ctmp = op->out_dim;
		}
		if (op->kind == OP_FLATTEN) {
			continue; /* aliases its input */
		}
		op->out = malloc(B * op->out_dim * sizeof(float));
		if (!op->out) {
			return -ENOMEM;
		}
		if (op->kind == OP_CONV && !(op->col = malloc(B * col * sizeof(float)))) {
			return -ENOMEM;
		}
		if (op->kind == OP_POOL &&
		    !(op->arg = malloc(B * op->out_dim * sizeof(uint32_t)))) {
			return -ENOMEM;
		}
		if (op->kind == OP_DROPOUT &&
		    !(op->mask = malloc(B * op->out_dim * sizeof(float)))) {
			return -ENOMEM;
		}
	}
	m->g0 = malloc(B * widest * sizeof(float));
	m->g1 = malloc(B * widest * sizeof(float));
	if (!m->g0 || !m->g1) {
		return -ENOMEM;
	}
	if (dcol && !(m->dcol = malloc(B * dcol * sizeof(float)))) {
		return -ENOMEM;
	}
	if (ctmp && !(m->ctmp = malloc(B * ctmp * sizeof(float)))) {
		return -ENOMEM;
	}
	return 0;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

int macc_model_create(const char *spec, size_t max_batch, struct macc_model **ret_model,
		      struct macc_errmsg *err)
{
	struct macc_model *m;
	char buf[MAX_SPEC + 96];
	int r;

	if (!spec || strlen(spec) > MAX_SPEC) {
		return macc_errf(err, MACC_ESPEC, "model spec missing or longer than %d bytes",
				 MAX_SPEC);
	}
	if (max_batch == 0) {
		return macc_errf(err, -EINVAL, "max_batch must be at least 1");
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		return macc_errf(err, -ENOMEM, "out of memory for model %s", spec);
	}
	m->max_batch = max_batch;
	r = build(m, spec, err);
	if (r < 0) {
		goto out;
	}
	r = alloc_workspace(m, err);
	if (r == -ENOMEM) {
		macc_errf(err, r, "model %s: out of memory for the workspace of %zu samples",
			  m->spec, max_batch);
	}
	if (r < 0) {
		goto out;
	}
	snprintf(buf, sizeof(buf), "%s/%zu", m->spec, m->nparams);
	m->hash = fnv1a(buf);
	*ret_model = m;
	return 0;
out:
	macc_model_destroy(m);
	return r;
}

void macc_model_destroy(struct macc_model *m)
{
	if (!m) {
		return;
	}
	for (size_t i = 0; i < m->nops; i++) {
		struct op *op = &m->ops[i];

		if (op->kind != OP_FLATTEN) {
			free(op->out);
		}
		free(op->col);
		free(op->arg);
		free(op->mask);
	}
	free(m->g0);
	free(m->g1);
	free(m->dcol);
	free(m->ctmp);
	free(m);
}

size_t macc_model_nparams(const struct macc_model *m)
{
	return m->nparams;
}

size_t macc_model_input_dim(const struct macc_model *m)
{
	return m->input_dim;
}

uint32_t macc_model_nclasses(const struct macc_model *m)
{
	return m->nclasses;
}

size_t macc_model_max_batch(const struct macc_model *m)
{
	return m->max_batch;
}

const char *macc_model_spec(const struct macc_model *m)
{
	return m->spec;
}

uint64_t macc_model_hash(const struct macc_model *m)
{
	return m->hash;
}

size_t macc_model_nviews(const struct macc_model *m)
{
	return m->nviews;
}

const struct macc_param_view *macc_model_view(const struct macc_model *m, size_t i)
{
	return i < m->nviews ? &m->views[i] : NULL;
}

void macc_model_init_params(const struct macc_model *m, float *params, uint64_t seed)
{
	struct macc_rng rng;

	macc_rng_seed(&rng, seed, MACC_STREAM_INIT);
	for (size_t i = 0; i < m->nops; i++) {
		const struct op *op = &m->ops[i];
		size_t fan_in, nw, nb;

		if (op->kind == OP_DENSE) {
			fan_in = op->in_dim;
			nw = op->in_dim * op->out_dim;
			nb = op->out_dim;
		} else if (op->kind == OP_CONV) {
			fan_in = op->cs.kh * op->cs.kw * op->cs.c;
			nw = op->cs.k * fan_in;
			nb = op->cs.k;
		} else {
			continue;
		}
		double bound = 1.0 / sqrt((double)fan_in);

		for (size_t j = 0; j < nw; j++) {
			params[op->w_off + j] = (float)((2.0 * macc_rng_uniform(&rng) - 1.0) * bound);
		}
		for (size_t j = 0; j < nb; j++) {
			params[op->b_off + j] = (float)((2.0 * macc_rng_uniform(&rng) - 1.0) * bound);
		}
	}
}

/* Run the ops on B samples; returns the logits [B][nclasses] (inside the workspace). */
static const float *forward(struct macc_model *m, const float *params, const float *x, size_t B,
			    struct macc_rng *dropout_rng)
{
	const float *in = x;

	for (size_t i = 0; i < m->nops; i++) {
		struct op *op = &m->ops[i];

		op->in = in;
		switch (op->kind) {
		case OP_DENSE:
			nn_dense_forward(op->out, in, params + op->w_off, params + op->b_off, B,
					 op->in_dim, op->out_dim, op->act);
			break;
		case OP_CONV:
			nn_conv2d_forward(op->out, op->col, m->ctmp, in, params + op->w_off,
					  params + op->b_off, &op->cs, B, op->act);
			break;
		case OP_POOL:
			nn_maxpool2_forward(op->out, op->arg, in, B, op->h, op->w, op->c);
			break;
		case OP_FLATTEN:
			op->out = (float *)in; /* [B][C][H][W] is [B][C*H*W] */
			break;
		case OP_DROPOUT:
			nn_dropout_forward(op->out, op->mask, in, B * op->out_dim, op->p,
					   dropout_rng);
			break;
		}
		in = op->out;
	}
	return in;
}

float macc_model_train_batch(struct macc_model *m, const float *params, float *grads,
			     const float *x, const int32_t *y, size_t batch, float weight_decay,
			     struct macc_rng *dropout_rng)
{
	const float *logits;
	float *g = m->g0, *other = m->g1;
	float loss;

	assert(batch >= 1 && batch <= m->max_batch);
	/* the layers accumulate into grads: start from the decay term (or zero) */
	if (weight_decay != 0.0f) {
		for (size_t i = 0; i < m->nparams; i++) {
			grads[i] = weight_decay * params[i];
		}
	} else {
		memset(grads, 0, m->nparams * sizeof(*grads));
	}
	logits = forward(m, params, x, batch, dropout_rng);
	loss = nn_softmax_ce(g, logits, y, batch, m->nclasses, NULL);
	for (size_t i = m->nops; i-- > 0;) {
		struct op *op = &m->ops[i];
		float *din = op->need_din ? other : NULL;

		switch (op->kind) {
		case OP_DENSE:
			nn_dense_backward(din, grads + op->w_off, grads + op->b_off, g, op->out,
					  op->in, params + op->w_off, batch, op->in_dim,
					  op->out_dim, op->act);
			break;
		case OP_CONV:
			nn_conv2d_backward(din, m->dcol, m->ctmp, grads + op->w_off,
					   grads + op->b_off, g, op->out, op->col,
					   params + op->w_off, &op->cs, batch, op->act);
			break;
		case OP_POOL:
			if (din) {
				nn_maxpool2_backward(din, g, op->arg, batch, op->h, op->w, op->c);
			}
			break;
		case OP_FLATTEN:
			continue;
		case OP_DROPOUT:
			nn_dropout_backward(g, g, op->mask, batch * op->out_dim);
			continue;
		}
		other = g;
		g = din;
		if (!g) {
			break; /* nothing before this op has parameters */
		}
	}
	return loss;
}

int macc_model_evaluate(struct macc_model *m, const float *params, const float *x,
			const int32_t *y, size_t n, double *ret_loss, double *ret_acc)
{
	double loss = 0.0;
	size_t correct = 0;

	for (size_t i = 0; i < n; i += m->max_batch) {
		size_t b = n - i < m->max_batch ? n - i : m->max_batch;
		const float *logits = forward(m, params, x + i * m->input_dim, b, NULL);
		size_t c;

		loss += (double)nn_softmax_ce(NULL, logits, y + i, b, m->nclasses, &c) * (double)b;
		correct += c;
	}
	*ret_loss = n ? loss / (double)n : 0.0;
	*ret_acc = n ? (double)correct / (double)n : 0.0;
	return 0;
}

void macc_model_predict(struct macc_model *m, const float *params, const float *x, size_t n,
			float *out)
{
	for (size_t i = 0; i < n; i += m->max_batch) {
		size_t b = n - i < m->max_batch ? n - i : m->max_batch;
		const float *logits = forward(m, params, x + i * m->input_dim, b, NULL);

		memcpy(out + i * m->nclasses, logits, b * m->nclasses * sizeof(float));
	}
}

void macc_nn_set_threads(int n)
{
	openblas_set_num_threads(n < 1 ? 1 : n);
}
