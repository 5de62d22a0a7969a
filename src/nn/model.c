/*
 * model.c - models over one flat parameter block: a layer stack (spec.c) compiled into ops.
 *
 * The stack is what the user wrote and what an exporter enumerates (macc_model_layer); the ops
 * are what runs. Compiling fuses a ReLU or tanh that directly follows a dense or convolution
 * layer into that layer's bias pass (one pass over the output instead of two), runs a 2x2
 * stride-2 max-pool on the dedicated kernel, and lets flatten alias its input ([B][C][H][W] is
 * [B][C*H*W]). The named models (cnn:lenet5, mlp:..., see spec.c) are stacks like any other,
 * so they compile to exactly the ops, parameter layout and floating-point operations they
 * always had (test_nn.c checks digests recorded before the layer stack existed).
 *
 * The parameter block is laid out like llm.c's: each dense or convolution layer owns a weight
 * tensor then a bias tensor, in layer order, and the named views ("conv1.w", "dense2.b", ...)
 * record where. The model never owns parameters, gradients or momentum.
 *
 * All activations, im2col matrices, pool arg-max indices, dropout masks and the standardised
 * input are allocated once, at create, for max_batch samples: a training step allocates
 * nothing. Backward ping-pongs between two gradient buffers sized for the widest activation;
 * elementwise layers (activations, dropout) run their backward in place; the first
 * parameterised op skips its input gradient.
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
#include "model_internal.h"

/* OpenBLAS's cblas.h declares it; a generic cblas.h (same library underneath) may not. */
#ifndef OPENBLAS_VERSION
void openblas_set_num_threads(int num_threads);
#endif

#define MAX_VIEWS (2 * NN_MAX_LAYERS)

enum op_kind { OP_DENSE, OP_CONV, OP_POOL2, OP_MAXPOOL, OP_AVGPOOL, OP_FLATTEN, OP_ACT,
	       OP_DROPOUT };

struct op {
	enum op_kind kind;
	enum nn_act act;            /* dense, conv: fused activation */
	enum macc_layer_kind akind; /* OP_ACT: which activation */
	size_t in_dim, out_dim;     /* floats per sample */
	size_t w_off, b_off;        /* parameter offsets (dense, conv) */
	struct nn_conv_shape cs;    /* conv */
	struct nn_pool_shape ps;    /* pools */
	float p;                    /* dropout rate, leaky slope */
	bool need_din;              /* an earlier op has parameters */
	/* workspace, sized for max_batch */
	float *out;                 /* [max_batch][out_dim] (flatten: aliases its input) */
	const float *in;            /* input of the last forward pass (borrowed) */
	float *col;                 /* conv: im2col matrix */
	uint32_t *arg;              /* max-pools: arg-max offsets */
	float *mask;                /* dropout: factors */
};

struct macc_model {
	char spec[NN_MAX_CANON];
	uint64_t hash;
	size_t nparams, input_dim, max_batch;
	uint32_t nclasses;
	struct nn_stack stack;
	size_t nops;
	struct op ops[NN_MAX_LAYERS];
	size_t nviews;
	struct macc_param_view views[MAX_VIEWS];
	char view_names[MAX_VIEWS][24];
	float *g0, *g1;         /* [max_batch][widest] gradient ping-pong */
	float *dcol;            /* widest im2col of a conv that needs its input gradient */
	float *ctmp;            /* widest conv output in [K][B*OH*OW] order (forward and backward) */
	float *std_mean, *std_inv; /* [input_dim] standardiser, or NULL */
	float *xs;              /* [max_batch][input_dim] standardised input */
};

static void add_view(struct macc_model *m, const char *prefix, size_t idx, const char *suffix,
		     size_t offset, size_t count)
{
	size_t v = m->nviews++;

	snprintf(m->view_names[v], sizeof(m->view_names[v]), "%s%zu.%s", prefix, idx, suffix);
	m->views[v].name = m->view_names[v];
	m->views[v].offset = offset;
	m->views[v].count = count;
}

static bool fusable(const struct nn_stack *st, size_t i, enum nn_act *ret)
{
	if (i + 1 >= st->nlayers) {
		return false;
	}
	if (st->layers[i + 1].kind == MACC_LAYER_RELU) {
		*ret = NN_ACT_RELU;
		return true;
	}
	if (st->layers[i + 1].kind == MACC_LAYER_TANH) {
		*ret = NN_ACT_TANH;
		return true;
	}
	return false;
}

/* One op from layer i (and i + 1 when fused); returns the number of layers consumed. */
static size_t compile_layer(struct macc_model *m, size_t i, size_t *ndense, size_t *nconv)
{
	const struct macc_layer *l = &m->stack.layers[i];
	struct op *op = &m->ops[m->nops++];
	size_t used = 1;

	memset(op, 0, sizeof(*op));
	op->in_dim = (size_t)l->in.c * l->in.h * l->in.w;
	op->out_dim = (size_t)l->out.c * l->out.h * l->out.w;
	op->w_off = l->w_off;
	op->b_off = l->b_off;
	op->p = l->alpha;
	switch (l->kind) {
	case MACC_LAYER_DENSE:
	case MACC_LAYER_CONV:
		op->kind = l->kind == MACC_LAYER_DENSE ? OP_DENSE : OP_CONV;
		op->act = NN_ACT_NONE;
		if (fusable(&m->stack, i, &op->act)) {
			used = 2;
		}
		if (op->kind == OP_DENSE) {
			++*ndense;
			add_view(m, "dense", *ndense, "w", l->w_off, l->w_count);
			add_view(m, "dense", *ndense, "b", l->b_off, l->b_count);
		} else {
			++*nconv;
			add_view(m, "conv", *nconv, "w", l->w_off, l->w_count);
			add_view(m, "conv", *nconv, "b", l->b_off, l->b_count);
			op->cs = (struct nn_conv_shape){.c = l->in.c, .h = l->in.h, .w = l->in.w,
							.k = l->out.c, .kh = l->kh, .kw = l->kw,
							.pad = l->pad, .stride = l->stride};
			(void)nn_conv_shape_finish(&op->cs); /* spec.c checked the fit */
		}
		break;
	case MACC_LAYER_MAXPOOL:
	case MACC_LAYER_AVGPOOL:
		op->ps = (struct nn_pool_shape){.c = l->in.c, .h = l->in.h, .w = l->in.w,
						.kh = l->kh, .kw = l->kw, .stride = l->stride};
		(void)nn_pool_shape_finish(&op->ps);
		op->kind = l->kind == MACC_LAYER_AVGPOOL ? OP_AVGPOOL
			   : l->kh == 2 && l->kw == 2 && l->stride == 2 ? OP_POOL2 : OP_MAXPOOL;
		break;
	case MACC_LAYER_FLATTEN:
		op->kind = OP_FLATTEN;
		break;
	case MACC_LAYER_DROPOUT:
		op->kind = OP_DROPOUT;
		break;
	default:
		op->kind = OP_ACT;
		op->akind = l->kind;
		break;
	}
	return used;
}

static void compile(struct macc_model *m)
{
	size_t ndense = 0, nconv = 0;

	for (size_t i = 0; i < m->stack.nlayers;) {
		i += compile_layer(m, i, &ndense, &nconv);
	}
}

/* Allocate one op's buffers for B samples. */
static int alloc_op(struct op *op, size_t B)
{
	size_t col = op->kind == OP_CONV ? nn_conv_col_size(&op->cs, 1) : 0;

	if (op->kind == OP_FLATTEN) {
		return 0; /* aliases its input */
	}
	op->out = malloc(B * op->out_dim * sizeof(float));
	if (!op->out) {
		return -ENOMEM;
	}
	if (op->kind == OP_CONV && !(op->col = malloc(B * col * sizeof(float)))) {
		return -ENOMEM;
	}
	if ((op->kind == OP_POOL2 || op->kind == OP_MAXPOOL) &&
	    !(op->arg = malloc(B * op->out_dim * sizeof(uint32_t)))) {
		return -ENOMEM;
	}
	if (op->kind == OP_DROPOUT && !(op->mask = malloc(B * op->out_dim * sizeof(float)))) {
		return -ENOMEM;
	}
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
		if (alloc_op(op, B) < 0) {
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
	char *buf = NULL;
	int r;

	if (max_batch == 0) {
		return macc_errf(err, -EINVAL, "max_batch must be at least 1");
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		return macc_errf(err, -ENOMEM, "out of memory for a model");
	}
	m->max_batch = max_batch;
	r = nn_spec_resolve(spec, &m->stack, m->spec, err);
	if (r < 0) {
		goto out;
	}
	m->nparams = m->stack.nparams;
	m->input_dim = (size_t)m->stack.input.c * m->stack.input.h * m->stack.input.w;
	m->nclasses = m->stack.layers[m->stack.nlayers - 1].out.c;
	compile(m);
	r = alloc_workspace(m, err);
	if (r == -ENOMEM) {
		macc_errf(err, r, "model %s: out of memory for the workspace of %zu samples",
			  m->spec, max_batch);
	}
	if (r < 0) {
		goto out;
	}
	buf = malloc(strlen(m->spec) + 32);
	if (!buf) {
		r = macc_errf(err, -ENOMEM, "out of memory for a model");
		goto out;
	}
	sprintf(buf, "%s/%zu", m->spec, m->nparams);
	m->hash = fnv1a(buf);
	free(buf);
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
	free(m->std_mean);
	free(m->std_inv);
	free(m->xs);
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

size_t macc_model_nlayers(const struct macc_model *m)
{
	return m->stack.nlayers;
}

const struct macc_layer *macc_model_layer(const struct macc_model *m, size_t i)
{
	return i < m->stack.nlayers ? &m->stack.layers[i] : NULL;
}

enum macc_loss macc_model_loss(const struct macc_model *m)
{
	return m->stack.loss;
}

struct macc_shape macc_model_input_shape(const struct macc_model *m)
{
	return m->stack.input;
}

/* One split against the model; exact: the class count must match (the training split). */
static int check_split(const struct macc_model *m, const char *model_name,
		       const struct macc_dataset *d, bool exact, const char *data_name,
		       struct macc_errmsg *err)
{
	const struct macc_shape *in = &m->stack.input;
	const bool image = d->height > 1 || d->channels > 1;
	const char *split = exact ? "" : " (test split)";

	if (d->dim != m->input_dim) {
		return macc_errf(err, MACC_EMODEL, "model '%s' takes %zu inputs per sample but "
				 "data '%s'%s has %zu", model_name, m->input_dim, data_name, split,
				 d->dim);
	}
	if (!in->flat && image && (in->c != d->channels || in->h != d->height ||
				   in->w != d->width)) {
		return macc_errf(err, MACC_EMODEL, "model '%s' takes %ux%ux%u images but data "
				 "'%s'%s has %ux%ux%u", model_name, in->c, in->h, in->w, data_name,
				 split, d->channels, d->height, d->width);
	}
	if (d->ntargets == 0 && d->y == NULL) {
		return macc_errf(err, MACC_EMODEL, "data '%s'%s has no labels (label=none: rows to "
				 "score, not to train model '%s' on)", data_name, split, model_name);
	}
	if (m->stack.loss == MACC_LOSS_MSE) {
		if (d->ntargets == 0) {
			return macc_errf(err, MACC_EMODEL, "model '%s' is a regression model "
					 "(loss:mse, %u outputs) but data '%s' has class labels "
					 "(name the target columns with target=...)", model_name,
					 m->nclasses, data_name);
		}
		if (d->ntargets != m->nclasses) {
			return macc_errf(err, MACC_EMODEL, "model '%s' has %u outputs but data '%s'%s "
					 "has %u regression targets", model_name, m->nclasses,
					 data_name, split, d->ntargets);
		}
		return 0;
	}
	if (d->ntargets > 0 || d->y == NULL) {
		return macc_errf(err, MACC_EMODEL, "model '%s' is a classifier (softmax "
				 "cross-entropy) but data '%s' has %u regression targets (end the "
				 "model with loss:mse)", model_name, data_name, d->ntargets);
	}
	if (exact ? d->nclasses != m->nclasses : d->nclasses > m->nclasses) {
		return macc_errf(err, MACC_EMODEL, "model '%s' has %u outputs but data '%s'%s has "
				 "%u classes (labels 0..%u)", model_name, m->nclasses, data_name,
				 split, d->nclasses, d->nclasses ? d->nclasses - 1 : 0);
	}
	return 0;
}

int macc_model_check_data(const struct macc_model *m, const char *model_name,
			  const struct macc_dataset *train, const struct macc_dataset *test,
			  const char *data_name, struct macc_errmsg *err)
{
	int rc = check_split(m, model_name, train, true, data_name, err);

	if (rc == 0 && test != NULL) {
		rc = check_split(m, model_name, test, false, data_name, err);
	}
	return rc;
}

int macc_model_set_standardizer(struct macc_model *m, const float *mean, const float *inv_std)
{
	const size_t n = m->input_dim;
	float *a, *b;

	if (!mean || !inv_std) {
		free(m->std_mean);
		free(m->std_inv);
		m->std_mean = m->std_inv = NULL;
		return 0;
	}
	for (size_t k = 0; k < n; k++) {
		if (!isfinite(mean[k]) || !isfinite(inv_std[k])) {
			return -EINVAL;
		}
	}
	if (!m->xs && !(m->xs = malloc(m->max_batch * n * sizeof(float)))) {
		return -ENOMEM;
	}
	a = malloc(n * sizeof(float));
	b = malloc(n * sizeof(float));
	if (!a || !b) {
		free(a);
		free(b);
		return -ENOMEM;
	}
	memcpy(a, mean, n * sizeof(float));
	memcpy(b, inv_std, n * sizeof(float));
	free(m->std_mean);
	free(m->std_inv);
	m->std_mean = a;
	m->std_inv = b;
	return 0;
}

bool macc_model_standardizer(const struct macc_model *m, const float **ret_mean,
			     const float **ret_inv_std)
{
	if (!m->std_mean) {
		return false;
	}
	*ret_mean = m->std_mean;
	*ret_inv_std = m->std_inv;
	return true;
}

void macc_model_init_params(const struct macc_model *m, float *params, uint64_t seed)
{
	struct macc_rng rng;

	macc_rng_seed(&rng, seed, MACC_STREAM_INIT);
	for (size_t i = 0; i < m->stack.nlayers; i++) {
		const struct macc_layer *l = &m->stack.layers[i];
		size_t fan_in;

		if (l->kind == MACC_LAYER_DENSE) {
			fan_in = l->in.c;
		} else if (l->kind == MACC_LAYER_CONV) {
			fan_in = (size_t)l->kh * l->kw * l->in.c;
		} else {
			continue;
		}
		double bound = 1.0 / sqrt((double)fan_in);

		for (size_t j = 0; j < l->w_count; j++) {
			params[l->w_off + j] = (float)((2.0 * macc_rng_uniform(&rng) - 1.0) * bound);
		}
		for (size_t j = 0; j < l->b_count; j++) {
			params[l->b_off + j] = (float)((2.0 * macc_rng_uniform(&rng) - 1.0) * bound);
		}
	}
}

static void act_forward(const struct op *op, float *out, const float *in, size_t n)
{
	switch (op->akind) {
	case MACC_LAYER_RELU:
		nn_relu_forward(out, in, n);
		break;
	case MACC_LAYER_TANH:
		nn_tanh_forward(out, in, n);
		break;
	case MACC_LAYER_LEAKY_RELU:
		nn_leaky_relu_forward(out, in, n, op->p);
		break;
	case MACC_LAYER_SIGMOID:
		nn_sigmoid_forward(out, in, n);
		break;
	default:
		nn_gelu_forward(out, in, n);
		break;
	}
}

static void act_backward(const struct op *op, float *g, size_t n)
{
	switch (op->akind) {
	case MACC_LAYER_RELU:
		nn_relu_backward(g, g, op->out, n);
		break;
	case MACC_LAYER_TANH:
		nn_tanh_backward(g, g, op->out, n);
		break;
	case MACC_LAYER_LEAKY_RELU:
		nn_leaky_relu_backward(g, g, op->out, n, op->p);
		break;
	case MACC_LAYER_SIGMOID:
		nn_sigmoid_backward(g, g, op->out, n);
		break;
	default:
		nn_gelu_backward(g, g, op->in, n);
		break;
	}
}

/* x, standardised into the workspace when the model has a standardiser. */
static const float *standardize(struct macc_model *m, const float *x, size_t B)
{
	const size_t n = m->input_dim;

	if (!m->std_mean) {
		return x;
	}
	for (size_t r = 0; r < B; r++) {
		const float *p = x + r * n;
		float *q = m->xs + r * n;

		for (size_t k = 0; k < n; k++) {
			q[k] = (p[k] - m->std_mean[k]) * m->std_inv[k];
		}
	}
	return m->xs;
}

static void forward_op(struct macc_model *m, struct op *op, const float *params, const float *in,
		       size_t B, struct macc_rng *dropout_rng)
{
	op->in = in;
	switch (op->kind) {
	case OP_DENSE:
		nn_dense_forward(op->out, in, params + op->w_off, params + op->b_off, B, op->in_dim,
				 op->out_dim, op->act);
		break;
	case OP_CONV:
		nn_conv2d_forward(op->out, op->col, m->ctmp, in, params + op->w_off,
				  params + op->b_off, &op->cs, B, op->act);
		break;
	case OP_POOL2:
		nn_maxpool2_forward(op->out, op->arg, in, B, op->ps.h, op->ps.w, op->ps.c);
		break;
	case OP_MAXPOOL:
		nn_maxpool_forward(op->out, op->arg, in, &op->ps, B);
		break;
	case OP_AVGPOOL:
		nn_avgpool_forward(op->out, in, &op->ps, B);
		break;
	case OP_FLATTEN:
		op->out = (float *)in; /* [B][C][H][W] is [B][C*H*W] */
		break;
	case OP_ACT:
		act_forward(op, op->out, in, B * op->out_dim);
		break;
	case OP_DROPOUT:
		nn_dropout_forward(op->out, op->mask, in, B * op->out_dim, op->p, dropout_rng);
		break;
	}
}

/* Run the ops on B samples; returns the outputs [B][nclasses] (inside the workspace). */
static const float *forward(struct macc_model *m, const float *params, const float *x, size_t B,
			    struct macc_rng *dropout_rng)
{
	const float *in = standardize(m, x, B);

	for (size_t i = 0; i < m->nops; i++) {
		forward_op(m, &m->ops[i], params, in, B, dropout_rng);
		in = m->ops[i].out;
	}
	return in;
}

/* Backward through op; g holds dL/d(out). Returns false for an in-place op (g keeps the
 * gradient), true when din received the gradient w.r.t. the op's input. */
static bool backward_op(struct macc_model *m, struct op *op, const float *params, float *grads,
			float *g, float *din, size_t B)
{
	switch (op->kind) {
	case OP_DENSE:
		nn_dense_backward(din, grads + op->w_off, grads + op->b_off, g, op->out, op->in,
				  params + op->w_off, B, op->in_dim, op->out_dim, op->act);
		return true;
	case OP_CONV:
		nn_conv2d_backward(din, m->dcol, m->ctmp, grads + op->w_off, grads + op->b_off, g,
				   op->out, op->col, params + op->w_off, &op->cs, B, op->act);
		return true;
	case OP_POOL2:
		if (din) {
			nn_maxpool2_backward(din, g, op->arg, B, op->ps.h, op->ps.w, op->ps.c);
		}
		return true;
	case OP_MAXPOOL:
		if (din) {
			nn_maxpool_backward(din, g, op->arg, &op->ps, B);
		}
		return true;
	case OP_AVGPOOL:
		if (din) {
			nn_avgpool_backward(din, g, &op->ps, B);
		}
		return true;
	case OP_FLATTEN:
		return false;
	case OP_ACT:
		act_backward(op, g, B * op->out_dim);
		return false;
	case OP_DROPOUT:
		nn_dropout_backward(g, g, op->mask, B * op->out_dim);
		return false;
	}
	return false;
}

float macc_model_train_batch_t(struct macc_model *m, const float *params, float *grads,
			       const float *x, const int32_t *y, const float *t, size_t batch,
			       float weight_decay, struct macc_rng *dropout_rng)
{
	const float *out;
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
	out = forward(m, params, x, batch, dropout_rng);
	if (m->stack.loss == MACC_LOSS_MSE) {
		loss = nn_mse(g, out, t, batch, m->nclasses, NULL);
	} else {
		loss = nn_softmax_ce(g, out, y, batch, m->nclasses, NULL);
	}
	for (size_t i = m->nops; i-- > 0;) {
		struct op *op = &m->ops[i];
		float *din = op->need_din ? other : NULL;

		if (!backward_op(m, op, params, grads, g, din, batch)) {
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

float macc_model_train_batch(struct macc_model *m, const float *params, float *grads,
			     const float *x, const int32_t *y, size_t batch, float weight_decay,
			     struct macc_rng *dropout_rng)
{
	return macc_model_train_batch_t(m, params, grads, x, y, NULL, batch, weight_decay,
					dropout_rng);
}

int macc_model_evaluate_t(struct macc_model *m, const float *params, const float *x,
			  const int32_t *y, const float *t, size_t n, double *ret_loss,
			  double *ret_metric)
{
	const bool mse = m->stack.loss == MACC_LOSS_MSE;
	const size_t T = m->nclasses;
	double loss = 0.0, sse = 0.0;
	size_t correct = 0;

	for (size_t i = 0; i < n; i += m->max_batch) {
		size_t b = n - i < m->max_batch ? n - i : m->max_batch;
		const float *out = forward(m, params, x + i * m->input_dim, b, NULL);
		size_t c = 0;
		double s = 0.0;

		if (mse) {
			(void)nn_mse(NULL, out, t + i * T, b, T, &s);
			sse += s;
		} else if (y) {
			loss += (double)nn_softmax_ce(NULL, out, y + i, b, T, &c) * (double)b;
			correct += c;
		}
	}
	if (mse) {
		*ret_loss = n ? sse / (double)(n * T) : 0.0;
		*ret_metric = sqrt(*ret_loss);
		return 0;
	}
	*ret_loss = n ? loss / (double)n : 0.0;
	*ret_metric = n ? (double)correct / (double)n : 0.0;
	return 0;
}

int macc_model_evaluate(struct macc_model *m, const float *params, const float *x,
			const int32_t *y, size_t n, double *ret_loss, double *ret_acc)
{
	if (m->stack.loss == MACC_LOSS_MSE) {
		*ret_loss = 0.0;
		*ret_acc = 0.0;
		return 0;
	}
	return macc_model_evaluate_t(m, params, x, y, NULL, n, ret_loss, ret_acc);
}

void macc_model_predict(struct macc_model *m, const float *params, const float *x, size_t n,
			float *out)
{
	for (size_t i = 0; i < n; i += m->max_batch) {
		size_t b = n - i < m->max_batch ? n - i : m->max_batch;
		const float *o = forward(m, params, x + i * m->input_dim, b, NULL);

		memcpy(out + i * m->nclasses, o, b * m->nclasses * sizeof(float));
	}
}

void macc_nn_set_threads(int n)
{
	openblas_set_num_threads(n < 1 ? 1 : n);
}
