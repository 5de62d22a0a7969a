/*
 * onnx.c - ONNX export and import of macc models (the layout is in macc/onnx.h).
 *
 * Writing: one graph builder turns the model's layer stack (macc_model_layer) into protobuf-c
 * message structs: a node per operator, an initializer per parameter tensor. Every struct,
 * array and name the builder makes comes from one arena that is freed as a whole, and tensor
 * data is never copied: raw_data points into the caller's parameter block (and the
 * standardiser), so exporting a model costs its packed size once, or nothing extra when it is
 * streamed to a file.
 *
 * Reading: protobuf-c unpacks the file (it checks every length against the bytes it has, so a
 * hostile file cannot make it read out of bounds or allocate much more than its own size). The
 * reader then trusts nothing it has not compared with what the writer would make: the metadata
 * names a spec, the model is rebuilt from it, the builder runs again for that model and every
 * node, graph input and output must pack to the same bytes as the file's, every initializer
 * must have the expected name, type and shape, and the parameters must hash to the recorded
 * digest. So a model that macc reads back computes what ONNX Runtime computes from the same
 * file, or the file is refused with the reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <protobuf-c/protobuf-c.h>

#include "macc/nn.h"
#include "macc/onnx.h"
#include "onnx.pb-c.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ONNX raw_data is little-endian");

#ifndef MACC_VERSION
#define MACC_VERSION "0.1.0"
#endif

#define IR_VERSION 7
#define OPSET 13
#define FLOAT_T ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define NODES_PER_LAYER 5 /* GELU */

static const float k_half = 0.5f, k_rsqrt2 = (float)M_SQRT1_2, k_one = 1.0f;

/* --- arena -------------------------------------------------------------------------------- */

struct arena {
	void **p;
	size_t n, cap;
};

static void *anew(struct arena *a, size_t size)
{
	void *q;

	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 256;
		void **np = realloc(a->p, cap * sizeof(*np));

		if (!np) {
			return NULL;
		}
		a->p = np;
		a->cap = cap;
	}
	q = calloc(1, size ? size : 1);
	if (q) {
		a->p[a->n++] = q;
	}
	return q;
}

static char *astr(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *astr(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(s = anew(a, (size_t)n + 1))) {
		return NULL;
	}
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

static void arena_free(struct arena *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->p[i]);
	}
	free(a->p);
	memset(a, 0, sizeof(*a));
}

/* --- graph builder ---------------------------------------------------------------------- */

struct gb {
	struct arena *ar;
	const struct macc_model *m;
	Onnx__NodeProto **node;
	size_t nnode, node_cap;
	Onnx__TensorProto **init;
	size_t ninit, init_cap;
	const char *cur; /* the tensor the next node reads */
	bool gelu_consts;
};

static Onnx__AttributeProto *attr(struct gb *g, const char *name)
{
	Onnx__AttributeProto *a = anew(g->ar, sizeof(*a));

	if (a) {
		onnx__attribute_proto__init(a);
		a->name = (char *)name;
		a->has_type = true;
	}
	return a;
}

static Onnx__AttributeProto *attr_int(struct gb *g, const char *name, int64_t v)
{
	Onnx__AttributeProto *a = attr(g, name);

	if (a) {
		a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
		a->has_i = true;
		a->i = v;
	}
	return a;
}

static Onnx__AttributeProto *attr_float(struct gb *g, const char *name, float v)
{
	Onnx__AttributeProto *a = attr(g, name);

	if (a) {
		a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
		a->has_f = true;
		a->f = v;
	}
	return a;
}

/* An INTS attribute of two equal pairs' worth: n values, a then b alternating by half. */
static Onnx__AttributeProto *attr_ints(struct gb *g, const char *name, size_t n, int64_t a0,
				       int64_t a1)
{
	Onnx__AttributeProto *a = attr(g, name);
	int64_t *v = anew(g->ar, n * sizeof(int64_t));

	if (!a || !v) {
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		v[i] = (i % 2 == 0) ? a0 : a1;
	}
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
	a->n_ints = n;
	a->ints = v;
	return a;
}

/*
 * Append node `op` reading in[0..nin) and writing a new tensor named `out`, with attributes
 * at[0..nat) (any NULL means an allocation failed). The node's output becomes g->cur.
 * Returns 0 or -ENOMEM.
 */
static int add_node(struct gb *g, const char *op, const char *out, const char *const *in,
		    size_t nin, Onnx__AttributeProto *const *at, size_t nat)
{
	Onnx__NodeProto *n = anew(g->ar, sizeof(*n));
	char **ins = anew(g->ar, nin * sizeof(char *));
	char **outs = anew(g->ar, sizeof(char *));
	Onnx__AttributeProto **ats = anew(g->ar, nat * sizeof(*ats));

	if (!n || !ins || !outs || !ats || !out || g->nnode == g->node_cap) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < nin; i++) {
		if (!in[i]) {
			return -ENOMEM;
		}
		ins[i] = (char *)in[i];
	}
	for (size_t i = 0; i < nat; i++) {
		if (!at[i]) {
			return -ENOMEM;
		}
		ats[i] = at[i];
	}
	onnx__node_proto__init(n);
	n->op_type = (char *)op;
	n->name = astr(g->ar, "%s_%zu", op, g->nnode);
	n->n_input = nin;
	n->input = ins;
	outs[0] = (char *)out;
	n->n_output = 1;
	n->output = outs;
	n->n_attribute = nat;
	n->attribute = ats;
	if (!n->name) {
		return -ENOMEM;
	}
	g->node[g->nnode++] = n;
	g->cur = out;
	return 0;
}

/* A one-input node without attributes. */
static int add_unary(struct gb *g, const char *op, const char *out)
{
	const char *in[1] = {g->cur};

	return add_node(g, op, out, in, 1, NULL, 0);
}

/* An initializer `name` of float32 data [dims], borrowed (NULL when only the shape matters). */
static int add_init(struct gb *g, const char *name, const int64_t *dims, size_t ndims,
		    const float *data, size_t count)
{
	Onnx__TensorProto *t = anew(g->ar, sizeof(*t));
	int64_t *d = anew(g->ar, ndims * sizeof(int64_t));

	if (!t || !d || !name || g->ninit == g->init_cap) {
		return -ENOMEM;
	}
	onnx__tensor_proto__init(t);
	memcpy(d, dims, ndims * sizeof(int64_t));
	t->name = (char *)name;
	t->n_dims = ndims;
	t->dims = d;
	t->has_data_type = true;
	t->data_type = FLOAT_T;
	t->has_raw_data = true;
	t->raw_data.len = count * sizeof(float);
	t->raw_data.data = (uint8_t *)data;
	g->init[g->ninit++] = t;
	return 0;
}

/* The name of the parameter view at `offset` ("dense1.w", ...). */
static const char *view_name(const struct macc_model *m, size_t offset, size_t count)
{
	for (size_t v = 0; v < macc_model_nviews(m); v++) {
		const struct macc_param_view *pv = macc_model_view(m, v);

		if (pv->offset == offset && pv->count == count) {
			return pv->name;
		}
	}
	return NULL;
}

/* Dense or conv: the weight and bias initializers, then Gemm or Conv. */
static int emit_params_layer(struct gb *g, const struct macc_layer *l, size_t i,
			     const float *params)
{
	const char *wn = view_name(g->m, l->w_off, l->w_count);
	const char *bn = view_name(g->m, l->b_off, l->b_count);
	const char *in[3] = {g->cur, wn, bn};
	int64_t wd[4] = {l->out.c, l->in.c, l->kh, l->kw}, bd[1] = {l->out.c};
	bool dense = l->kind == MACC_LAYER_DENSE;
	int rc;

	if (!wn || !bn) {
		return -EINVAL; /* the model's views always cover its layers */
	}
	rc = add_init(g, wn, wd, dense ? 2 : 4, params ? params + l->w_off : NULL, l->w_count);
	if (rc == 0) {
		rc = add_init(g, bn, bd, 1, params ? params + l->b_off : NULL, l->b_count);
	}
	if (rc < 0) {
		return rc;
	}
	if (dense) {
		Onnx__AttributeProto *at[1] = {attr_int(g, "transB", 1)};

		return add_node(g, "Gemm", astr(g->ar, "l%zu_dense", i), in, 3, at, 1);
	}
	Onnx__AttributeProto *at[3] = {
		attr_ints(g, "kernel_shape", 2, l->kh, l->kw),
		attr_ints(g, "strides", 2, l->stride, l->stride),
		attr_ints(g, "pads", 4, l->pad, l->pad),
	};

	return add_node(g, "Conv", astr(g->ar, "l%zu_conv", i), in, 3, at, 3);
}

/* GELU as in layers.c: (0.5 x) (1 + erf(x * (1/sqrt 2))), the same products in the same order. */
static int emit_gelu(struct gb *g, size_t i)
{
	static const int64_t scalar[1];
	const char *x = g->cur, *in[2];
	const char *half, *scaled, *erf, *sum;
	int rc = 0;

	if (!g->gelu_consts) {
		g->gelu_consts = true;
		rc = add_init(g, "macc.half", scalar, 0, &k_half, 1);
		rc = rc ? rc : add_init(g, "macc.rsqrt2", scalar, 0, &k_rsqrt2, 1);
		rc = rc ? rc : add_init(g, "macc.one", scalar, 0, &k_one, 1);
	}
	half = astr(g->ar, "l%zu_gelu_half", i);
	scaled = astr(g->ar, "l%zu_gelu_scaled", i);
	erf = astr(g->ar, "l%zu_gelu_erf", i);
	sum = astr(g->ar, "l%zu_gelu_sum", i);
	in[0] = x;
	in[1] = "macc.half";
	rc = rc ? rc : add_node(g, "Mul", half, in, 2, NULL, 0);
	in[1] = "macc.rsqrt2";
	rc = rc ? rc : add_node(g, "Mul", scaled, in, 2, NULL, 0);
	rc = rc ? rc : add_unary(g, "Erf", erf);
	in[0] = erf;
	in[1] = "macc.one";
	rc = rc ? rc : add_node(g, "Add", sum, in, 2, NULL, 0);
	in[0] = half;
	in[1] = sum;
	return rc ? rc : add_node(g, "Mul", astr(g->ar, "l%zu_gelu", i), in, 2, NULL, 0);
}

static int emit_pool(struct gb *g, const struct macc_layer *l, size_t i)
{
	bool avg = l->kind == MACC_LAYER_AVGPOOL;
	Onnx__AttributeProto *at[2] = {
		attr_ints(g, "kernel_shape", 2, l->kh, l->kw),
		attr_ints(g, "strides", 2, l->stride, l->stride),
	};
	const char *in[1] = {g->cur};

	return add_node(g, avg ? "AveragePool" : "MaxPool",
			astr(g->ar, avg ? "l%zu_avgpool" : "l%zu_maxpool", i), in, 1, at, 2);
}

/* Layer i (1-based in names) of the stack. */
static int emit_layer(struct gb *g, const struct macc_layer *l, size_t i, const float *params)
{
	const char *in[1] = {g->cur};

	switch (l->kind) {
	case MACC_LAYER_DENSE:
	case MACC_LAYER_CONV:
		return emit_params_layer(g, l, i, params);
	case MACC_LAYER_MAXPOOL:
	case MACC_LAYER_AVGPOOL:
		return emit_pool(g, l, i);
	case MACC_LAYER_FLATTEN: {
		Onnx__AttributeProto *at[1] = {attr_int(g, "axis", 1)};

		return add_node(g, "Flatten", astr(g->ar, "l%zu_flatten", i), in, 1, at, 1);
	}
	case MACC_LAYER_RELU:
		return add_unary(g, "Relu", astr(g->ar, "l%zu_relu", i));
	case MACC_LAYER_LEAKY_RELU: {
		Onnx__AttributeProto *at[1] = {attr_float(g, "alpha", l->alpha)};

		return add_node(g, "LeakyRelu", astr(g->ar, "l%zu_leakyrelu", i), in, 1, at, 1);
	}
	case MACC_LAYER_TANH:
		return add_unary(g, "Tanh", astr(g->ar, "l%zu_tanh", i));
	case MACC_LAYER_SIGMOID:
		return add_unary(g, "Sigmoid", astr(g->ar, "l%zu_sigmoid", i));
	case MACC_LAYER_GELU:
		return emit_gelu(g, i);
	case MACC_LAYER_DROPOUT:
		return 0; /* the identity at inference */
	}
	return -EINVAL;
}

/* Tensor [N, dims...] of float32, N dynamic. */
static Onnx__ValueInfoProto *value_info(struct gb *g, const char *name, const uint32_t *dims,
					size_t ndims)
{
	Onnx__ValueInfoProto *vi = anew(g->ar, sizeof(*vi));
	Onnx__TypeProto *tp = anew(g->ar, sizeof(*tp));
	Onnx__TypeProto__Tensor *tt = anew(g->ar, sizeof(*tt));
	Onnx__TensorShapeProto *sh = anew(g->ar, sizeof(*sh));
	Onnx__TensorShapeProto__Dimension **d = anew(g->ar, (ndims + 1) * sizeof(*d));

	if (!vi || !tp || !tt || !sh || !d) {
		return NULL;
	}
	for (size_t i = 0; i <= ndims; i++) {
		if (!(d[i] = anew(g->ar, sizeof(**d)))) {
			return NULL;
		}
		onnx__tensor_shape_proto__dimension__init(d[i]);
		if (i == 0) {
			d[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
			d[i]->dim_param = "N";
		} else {
			d[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
			d[i]->dim_value = dims[i - 1];
		}
	}
	onnx__tensor_shape_proto__init(sh);
	sh->n_dim = ndims + 1;
	sh->dim = d;
	onnx__type_proto__tensor__init(tt);
	tt->has_elem_type = true;
	tt->elem_type = FLOAT_T;
	tt->shape = sh;
	onnx__type_proto__init(tp);
	tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	tp->tensor_type = tt;
	onnx__value_info_proto__init(vi);
	vi->name = (char *)name;
	vi->type = tp;
	return vi;
}

/* The standardiser nodes: input -> Sub(mean) -> Mul(inv_std). */
static int emit_standardizer(struct gb *g, const float *mean, const float *inv_std)
{
	struct macc_shape s = macc_model_input_shape(g->m);
	size_t dim = macc_model_input_dim(g->m);
	int64_t d[3] = {s.c, s.h, s.w};
	size_t nd = s.flat ? 1 : 3;
	const char *in[2] = {g->cur, "macc.mean"};
	int rc;

	rc = add_init(g, "macc.mean", d, nd, mean, dim);
	rc = rc ? rc : add_init(g, "macc.inv_std", d, nd, inv_std, dim);
	rc = rc ? rc : add_node(g, "Sub", "centered", in, 2, NULL, 0);
	in[0] = "centered";
	in[1] = "macc.inv_std";
	return rc ? rc : add_node(g, "Mul", "standardized", in, 2, NULL, 0);
}

/* The outputs: the last tensor renamed "logits" (+ Softmax "probabilities") or "values". */
static int emit_outputs(struct gb *g, size_t first_layer_node, Onnx__ValueInfoProto ***ret_out,
			size_t *ret_n)
{
	bool cls = macc_model_loss(g->m) == MACC_LOSS_SOFTMAX_CE;
	const char *last = cls ? "logits" : "values";
	uint32_t k = macc_model_nclasses(g->m);
	Onnx__ValueInfoProto **out = anew(g->ar, 2 * sizeof(*out));
	int rc;

	if (!out) {
		return -ENOMEM;
	}
	if (g->nnode > first_layer_node) {
		g->node[g->nnode - 1]->output[0] = (char *)last;
		g->cur = last;
	} else if ((rc = add_unary(g, "Identity", last)) < 0) {
		return rc;
	}
	if (cls) {
		const char *in[1] = {"logits"};
		Onnx__AttributeProto *at[1] = {attr_int(g, "axis", 1)};

		rc = add_node(g, "Softmax", "probabilities", in, 1, at, 1);
		if (rc < 0) {
			return rc;
		}
		out[0] = value_info(g, "probabilities", &k, 1);
		out[1] = value_info(g, "logits", &k, 1);
		*ret_n = 2;
	} else {
		out[0] = value_info(g, "values", &k, 1);
		*ret_n = 1;
	}
	if (!out[0] || (cls && !out[1])) {
		return -ENOMEM;
	}
	*ret_out = out;
	return 0;
}

/*
 * The graph of model m: nodes, initializers (data borrowed from params and the standardiser;
 * params NULL: shapes only), input and outputs. `std` says whether a standardiser is part of it.
 */
static int build_graph(struct gb *g, Onnx__GraphProto *gp, const float *params, bool std,
		       const float *mean, const float *inv_std)
{
	const struct macc_model *m = g->m;
	struct macc_shape s = macc_model_input_shape(m);
	uint32_t in_dims[3] = {s.c, s.h, s.w};
	size_t nl = macc_model_nlayers(m), first;
	Onnx__ValueInfoProto **in = anew(g->ar, sizeof(*in));
	int rc = 0;

	g->node_cap = NODES_PER_LAYER * nl + 8;
	g->init_cap = 2 * nl + 8;
	g->node = anew(g->ar, g->node_cap * sizeof(*g->node));
	g->init = anew(g->ar, g->init_cap * sizeof(*g->init));
	if (!g->node || !g->init || !in) {
		return -ENOMEM;
	}
	g->cur = "input";
	if (std) {
		rc = emit_standardizer(g, mean, inv_std);
	}
	first = g->nnode;
	for (size_t i = 0; i < nl && rc == 0; i++) {
		rc = emit_layer(g, macc_model_layer(m, i), i + 1, params);
	}
	onnx__graph_proto__init(gp);
	rc = rc ? rc : emit_outputs(g, first, &gp->output, &gp->n_output);
	if (rc < 0) {
		return rc;
	}
	in[0] = value_info(g, "input", in_dims, s.flat ? 1 : 3);
	if (!in[0]) {
		return -ENOMEM;
	}
	gp->name = "macc";
	gp->n_node = g->nnode;
	gp->node = g->node;
	gp->n_initializer = g->ninit;
	gp->initializer = g->init;
	gp->n_input = 1;
	gp->input = in;
	return 0;
}

/* --- writing ------------------------------------------------------------------------------ */

static int add_meta(struct arena *a, Onnx__StringStringEntryProto **props, size_t *n,
		    const char *key, const char *value)
{
	Onnx__StringStringEntryProto *e = anew(a, sizeof(*e));

	if (!e || !value) {
		return -ENOMEM;
	}
	onnx__string_string_entry_proto__init(e);
	e->key = (char *)key;
	e->value = (char *)value;
	props[(*n)++] = e;
	return 0;
}

static int check_finite(const float *v, size_t n, const char *what, struct macc_errmsg *err)
{
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(v[i])) {
			return macc_errf(err, MACC_ENONFINITE, "cannot export: %s %zu of %zu is not "
					 "finite (%g): the model diverged", what, i, n, (double)v[i]);
		}
	}
	return 0;
}

/* The macc.* metadata_props (macc/onnx.h) into props[8]. */
static int add_all_meta(struct arena *a, Onnx__StringStringEntryProto **props, size_t *n,
			const struct macc_model *m, const float *params,
			const struct macc_onnx_info *info, bool std)
{
	size_t np = macc_model_nparams(m);
	const char *keys[8] = {"macc.format", "macc.spec", "macc.nparams", "macc.params_digest",
			       "macc.round", "macc.agent", "macc.task", "macc.standardized"};
	const char *vals[8] = {
		astr(a, "%d", MACC_ONNX_FORMAT),
		astr(a, "%s", macc_model_spec(m)),
		astr(a, "%zu", np),
		astr(a, "%016" PRIx64, macc_params_digest(params, np)),
		astr(a, "%" PRIu64, info ? info->round : 0),
		astr(a, "%s", info && info->agent ? info->agent : ""),
		macc_model_loss(m) == MACC_LOSS_SOFTMAX_CE ? "classification" : "regression",
		std ? "yes" : "no",
	};

	for (size_t i = 0; i < 8; i++) {
		if (add_meta(a, props, n, keys[i], vals[i]) < 0) {
			return -ENOMEM;
		}
	}
	return 0;
}

/* The whole ModelProto in *mp, its parts in arena a. */
static int build_model(struct arena *a, Onnx__ModelProto *mp, const struct macc_model *m,
		       const float *params, const struct macc_onnx_info *info,
		       struct macc_errmsg *err)
{
	struct gb g = {.ar = a, .m = m};
	const float *mean = NULL, *inv_std = NULL;
	bool std = macc_model_standardizer(m, &mean, &inv_std);
	bool cls = macc_model_loss(m) == MACC_LOSS_SOFTMAX_CE;
	size_t np = macc_model_nparams(m), nprops = 0;
	Onnx__GraphProto *gp = anew(a, sizeof(*gp));
	Onnx__OperatorSetIdProto *ops = anew(a, sizeof(*ops));
	Onnx__OperatorSetIdProto **opsv = anew(a, sizeof(*opsv));
	Onnx__StringStringEntryProto **props = anew(a, 8 * sizeof(*props));
	int rc;

	rc = check_finite(params, np, "parameter", err);
	if (rc == 0 && std) {
		rc = check_finite(mean, macc_model_input_dim(m), "standardiser mean", err);
		rc = rc ? rc : check_finite(inv_std, macc_model_input_dim(m),
					    "standardiser inverse deviation", err);
	}
	if (rc < 0) {
		return rc;
	}
	if (!gp || !ops || !opsv || !props || build_graph(&g, gp, params, std, mean, inv_std) < 0) {
		return macc_errf(err, -ENOMEM, "out of memory building the ONNX graph");
	}
	if (add_all_meta(a, props, &nprops, m, params, info, std) < 0) {
		return macc_errf(err, -ENOMEM, "out of memory building the ONNX metadata");
	}
	onnx__operator_set_id_proto__init(ops);
	ops->domain = "";
	ops->has_version = true;
	ops->version = OPSET;
	opsv[0] = ops;
	onnx__model_proto__init(mp);
	mp->has_ir_version = true;
	mp->ir_version = IR_VERSION;
	mp->n_opset_import = 1;
	mp->opset_import = opsv;
	mp->producer_name = "macc";
	mp->producer_version = MACC_VERSION;
	mp->doc_string = cls ? "macc model: input 'input' takes raw features; 'probabilities' = "
			       "softmax of 'logits'"
			     : "macc model: input 'input' takes raw features; 'values' are the "
			       "regression outputs";
	mp->graph = gp;
	mp->n_metadata_props = nprops;
	mp->metadata_props = props;
	return 0;
}

int macc_onnx_encode(const struct macc_model *m, const float *params,
		     const struct macc_onnx_info *info, uint8_t **ret_buf, size_t *ret_len,
		     struct macc_errmsg *err)
{
	struct arena a = {0};
	Onnx__ModelProto mp;
	uint8_t *buf;
	size_t len;
	int rc;

	rc = build_model(&a, &mp, m, params, info, err);
	if (rc < 0) {
		goto out;
	}
	len = onnx__model_proto__get_packed_size(&mp);
	if (len > MACC_ONNX_MAX_BYTES) {
		rc = macc_errf(err, MACC_ETOOBIG, "model %s: %zu bytes of ONNX, over protobuf's "
			       "2 GiB limit", macc_model_spec(m), len);
		goto out;
	}
	buf = malloc(len ? len : 1);
	if (!buf) {
		rc = macc_errf(err, -ENOMEM, "out of memory for %zu bytes of ONNX", len);
		goto out;
	}
	onnx__model_proto__pack(&mp, buf);
	*ret_buf = buf;
	*ret_len = len;
out:
	arena_free(&a);
	return rc;
}

/* A protobuf-c output buffer that writes through to a stdio stream. */
struct file_sink {
	ProtobufCBuffer base;
	FILE *f;
	int err;
};

static void sink_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
	struct file_sink *s = (struct file_sink *)b;

	if (s->err == 0 && len > 0 && fwrite(data, 1, len, s->f) != len) {
		s->err = errno ? errno : EIO;
	}
}

/* Stream the model into f; flush. Returns 0 or -errno. */
static int write_stream(const Onnx__ModelProto *mp, FILE *f)
{
	struct file_sink s = {.base = {.append = sink_append}, .f = f};

	errno = 0;
	protobuf_c_message_pack_to_buffer(&mp->base, &s.base);
	if (s.err == 0 && fflush(f) != 0) {
		s.err = errno ? errno : EIO;
	}
	return -s.err;
}

/* Write into PATH.tmp.PID beside path (mode 0666 less the umask), fsync, rename over path,
 * fsync the directory. */
static int write_atomic(const char *path, const Onnx__ModelProto *mp, struct macc_errmsg *err)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	FILE *f;
	int fd, dfd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		return macc_errf(err, -ENAMETOOLONG, "%s: file name too long", path);
	}
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) + 1 : 1, slash ? path : ".");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0) {
		return macc_errf(err, -errno, "%s: cannot create: %s", tmp, strerror(errno));
	}
	f = fdopen(fd, "wb");
	if (!f) {
		rc = macc_errf(err, -errno, "%s: %s", tmp, strerror(errno));
		close(fd);
		goto fail;
	}
	rc = write_stream(mp, f);
	if (rc == 0 && fsync(fd) < 0) {
		rc = -errno;
	}
	if (fclose(f) != 0 && rc == 0) {
		rc = -errno;
	}
	if (rc < 0) {
		macc_errf(err, rc, "%s: write failed: %s", tmp, strerror(-rc));
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		rc = macc_errf(err, -errno, "%s: cannot rename to %s: %s", tmp, path,
			       strerror(errno));
		goto fail;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd); /* best effort: the file itself is complete */
		close(dfd);
	}
	return 0;
fail:
	unlink(tmp);
	return rc;
}

int macc_onnx_save(const char *path, const struct macc_model *m, const float *params,
		   const struct macc_onnx_info *info, struct macc_errmsg *err)
{
	struct arena a = {0};
	Onnx__ModelProto mp;
	size_t len;
	int rc;

	rc = build_model(&a, &mp, m, params, info, err);
	if (rc < 0) {
		goto out;
	}
	len = onnx__model_proto__get_packed_size(&mp);
	if (len > MACC_ONNX_MAX_BYTES) {
		rc = macc_errf(err, MACC_ETOOBIG, "model %s: %zu bytes of ONNX, over protobuf's "
			       "2 GiB limit", macc_model_spec(m), len);
		goto out;
	}
	if (strcmp(path, "-") == 0) {
		rc = write_stream(&mp, stdout);
		if (rc < 0) {
			macc_errf(err, rc, "standard output: write failed: %s", strerror(-rc));
		}
	} else {
		rc = write_atomic(path, &mp, err);
	}
out:
	arena_free(&a);
	return rc;
}

/* --- reading ------------------------------------------------------------------------------ */

static const char *meta(const Onnx__ModelProto *mp, const char *key)
{
	for (size_t i = 0; i < mp->n_metadata_props; i++) {
		const Onnx__StringStringEntryProto *e = mp->metadata_props[i];

		if (e->key && e->value && strcmp(e->key, key) == 0) {
			return e->value;
		}
	}
	return NULL;
}

/* Whole-string unsigned decimal (hex when base 16, exactly 16 digits). */
static bool parse_u64(const char *s, int base, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ' || (base == 16 && strlen(s) != 16)) {
		return false;
	}
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || *end) {
		return false;
	}
	*ret = v;
	return true;
}

/* Whether two messages pack to the same bytes. */
static int same_message(const ProtobufCMessage *a, const ProtobufCMessage *b, bool *ret)
{
	size_t la = protobuf_c_message_get_packed_size(a);
	size_t lb = protobuf_c_message_get_packed_size(b);
	uint8_t *pa, *pb;

	*ret = false;
	if (la != lb) {
		return 0;
	}
	pa = malloc(la ? la : 1);
	pb = malloc(lb ? lb : 1);
	if (!pa || !pb) {
		free(pa);
		free(pb);
		return -ENOMEM;
	}
	protobuf_c_message_pack(a, pa);
	protobuf_c_message_pack(b, pb);
	*ret = memcmp(pa, pb, la) == 0;
	free(pa);
	free(pb);
	return 0;
}

static const Onnx__TensorProto *find_init(const Onnx__GraphProto *gp, const char *name)
{
	for (size_t i = 0; i < gp->n_initializer; i++) {
		if (gp->initializer[i]->name && strcmp(gp->initializer[i]->name, name) == 0) {
			return gp->initializer[i];
		}
	}
	return NULL;
}

/* The file's graph against the one the writer makes for the same model: nodes, inputs and
 * outputs must pack identically. */
static int check_graph(const Onnx__GraphProto *got, const Onnx__GraphProto *want,
		       const char *name, const char *spec, struct macc_errmsg *err)
{
	bool same;
	int rc;

	if (got->n_node != want->n_node || got->n_input != want->n_input ||
	    got->n_output != want->n_output || got->n_initializer != want->n_initializer) {
		return macc_errf(err, MACC_EMODEL, "%s: its graph (%zu nodes, %zu initializers) is "
				 "not the one macc writes for model '%.80s' (%zu nodes, %zu "
				 "initializers): changed after export?", name, got->n_node,
				 got->n_initializer, spec, want->n_node, want->n_initializer);
	}
	for (size_t i = 0; i < want->n_node; i++) {
		rc = same_message(&got->node[i]->base, &want->node[i]->base, &same);
		if (rc < 0) {
			return macc_errf(err, rc, "out of memory comparing graphs");
		}
		if (!same) {
			return macc_errf(err, MACC_EMODEL, "%s: node %zu (%.40s) is not what macc writes "
					 "for model '%.80s' (%s): changed after export?", name, i,
					 got->node[i]->op_type ? got->node[i]->op_type : "?", spec,
					 want->node[i]->op_type);
		}
	}
	for (size_t i = 0; i < want->n_input + want->n_output; i++) {
		const Onnx__ValueInfoProto *a = i < want->n_input ? got->input[i]
								 : got->output[i - want->n_input];
		const Onnx__ValueInfoProto *b = i < want->n_input ? want->input[i]
								 : want->output[i - want->n_input];

		rc = same_message(&a->base, &b->base, &same);
		if (rc < 0) {
			return macc_errf(err, rc, "out of memory comparing graphs");
		}
		if (!same) {
			return macc_errf(err, MACC_EMODEL, "%s: graph %s '%s' is not what macc writes "
					 "for model '%.80s'", name, i < want->n_input ? "input"
					 : "output", b->name, spec);
		}
	}
	return 0;
}

/* Initializer `want` of the file: same name, float32, same shape, raw data of the right size
 * (copied into dst when dst is not NULL, else compared with want's data). */
static int read_tensor(const Onnx__GraphProto *gp, const Onnx__TensorProto *want, float *dst,
		       const char *name, struct macc_errmsg *err)
{
	const Onnx__TensorProto *t = find_init(gp, want->name);

	if (!t) {
		return macc_errf(err, MACC_EMODEL, "%s: no initializer '%s'", name, want->name);
	}
	if (!t->has_data_type || t->data_type != FLOAT_T || t->n_dims != want->n_dims ||
	    (t->n_dims && memcmp(t->dims, want->dims, t->n_dims * sizeof(int64_t))) ||
	    !t->has_raw_data || t->raw_data.len != want->raw_data.len ||
	    (t->has_data_location && t->data_location != ONNX__TENSOR_PROTO__DATA_LOCATION__DEFAULT)) {
		return macc_errf(err, MACC_EMODEL, "%s: initializer '%s' does not have the type, "
				 "shape or size macc writes (float32 raw data of %zu bytes)", name,
				 want->name, want->raw_data.len);
	}
	if (dst) {
		memcpy(dst, t->raw_data.data, t->raw_data.len);
	} else if (memcmp(t->raw_data.data, want->raw_data.data, t->raw_data.len) != 0) {
		return macc_errf(err, MACC_EMODEL, "%s: constant '%s' is not the value macc writes",
				 name, want->name);
	}
	return 0;
}

/* Every initializer of the expected graph from the file: parameters into params, the
 * standardiser into mean / inv_std, constants compared. */
static int read_inits(const Onnx__GraphProto *gp, const Onnx__GraphProto *want,
		      const struct macc_model *m, float *params, float *mean, float *inv_std,
		      const char *name, struct macc_errmsg *err)
{
	for (size_t i = 0; i < want->n_initializer; i++) {
		const Onnx__TensorProto *w = want->initializer[i];
		float *dst = NULL;
		int rc;

		if (strcmp(w->name, "macc.mean") == 0) {
			dst = mean;
		} else if (strcmp(w->name, "macc.inv_std") == 0) {
			dst = inv_std;
		} else if (strncmp(w->name, "macc.", 5) != 0) {
			for (size_t v = 0; v < macc_model_nviews(m); v++) {
				const struct macc_param_view *pv = macc_model_view(m, v);

				if (strcmp(pv->name, w->name) == 0) {
					dst = params + pv->offset;
				}
			}
		}
		if (!dst && !w->raw_data.data) {
			return macc_errf(err, MACC_EMODEL, "%s: initializer '%s' is not a parameter "
					 "of the model", name, w->name);
		}
		rc = read_tensor(gp, w, dst, name, err);
		if (rc < 0) {
			return rc;
		}
	}
	return 0;
}

/* Metadata into ret fields; the spec and whether a standardiser is recorded. */
static int read_meta(const Onnx__ModelProto *mp, const char *name, const char **ret_spec,
		     bool *ret_std, uint64_t *ret_np, struct macc_onnx_model *r,
		     struct macc_errmsg *err)
{
	const char *fmt = meta(mp, "macc.format"), *std = meta(mp, "macc.standardized");
	const char *agent = meta(mp, "macc.agent");

	if (!mp->producer_name || strcmp(mp->producer_name, "macc") != 0 || !fmt) {
		return macc_errf(err, MACC_EMODEL, "%s: not written by macc (producer '%.40s'%s): "
				 "macc reads back only the ONNX files it exports", name,
				 mp->producer_name ? mp->producer_name : "",
				 fmt ? "" : ", no macc.format metadata");
	}
	if (strcmp(fmt, "1") != 0) {
		return macc_errf(err, MACC_EVERSION, "%s: macc ONNX format '%.20s', this macc "
				 "reads format %d", name, fmt, MACC_ONNX_FORMAT);
	}
	*ret_spec = meta(mp, "macc.spec");
	if (!*ret_spec || !std || (strcmp(std, "yes") && strcmp(std, "no")) || !agent ||
	    !parse_u64(meta(mp, "macc.nparams"), 10, ret_np) ||
	    !parse_u64(meta(mp, "macc.round"), 10, &r->round) ||
	    !parse_u64(meta(mp, "macc.params_digest"), 16, &r->digest)) {
		return macc_errf(err, MACC_EMODEL, "%s: macc metadata missing or malformed (want "
				 "macc.spec, macc.nparams, macc.round, macc.params_digest, "
				 "macc.agent, macc.standardized)", name);
	}
	*ret_std = strcmp(std, "yes") == 0;
	snprintf(r->agent, sizeof(r->agent), "%s", agent);
	return 0;
}

/* Rebuild the model of mp (already unpacked) into r. */
static int decode_model(const Onnx__ModelProto *mp, const char *name, size_t max_batch,
			struct macc_onnx_model *r, struct macc_errmsg *err)
{
	struct arena a = {0};
	struct gb g = {.ar = &a};
	Onnx__GraphProto want;
	float *mean = NULL, *inv_std = NULL;
	const char *spec = NULL;
	uint64_t np = 0;
	bool std = false;
	int rc;

	rc = read_meta(mp, name, &spec, &std, &np, r, err);
	if (rc < 0) {
		return rc;
	}
	rc = macc_model_create(spec, max_batch, &r->model, err);
	if (rc < 0) {
		char inner[sizeof(err->text)];

		snprintf(inner, sizeof(inner), "%s", err->text);
		return macc_errf(err, rc, "%s: cannot build its model: %.400s", name, inner);
	}
	g.m = r->model;
	if (np != macc_model_nparams(r->model) || !mp->graph) {
		rc = macc_errf(err, MACC_EMODEL, "%s: macc.nparams %" PRIu64 " but model '%.80s' has "
			       "%zu parameters", name, np, spec, macc_model_nparams(r->model));
		goto out;
	}
	size_t dim = macc_model_input_dim(r->model);

	r->params = malloc((np ? np : 1) * sizeof(float));
	mean = std ? malloc(dim * sizeof(float)) : NULL;
	inv_std = std ? malloc(dim * sizeof(float)) : NULL;
	if (!r->params || (std && (!mean || !inv_std)) ||
	    build_graph(&g, &want, NULL, std, NULL, NULL) < 0) {
		rc = macc_errf(err, -ENOMEM, "%s: out of memory", name);
		goto out;
	}
	/* the constants' data, for the comparison */
	for (size_t i = 0; i < want.n_initializer; i++) {
		Onnx__TensorProto *t = want.initializer[i];

		t->raw_data.data = strcmp(t->name, "macc.half") == 0     ? (uint8_t *)&k_half
				   : strcmp(t->name, "macc.rsqrt2") == 0 ? (uint8_t *)&k_rsqrt2
				   : strcmp(t->name, "macc.one") == 0    ? (uint8_t *)&k_one
									 : NULL;
	}
	rc = check_graph(mp->graph, &want, name, spec, err);
	rc = rc ? rc : read_inits(mp->graph, &want, r->model, r->params, mean, inv_std, name, err);
	if (rc < 0) {
		goto out;
	}
	if (macc_params_digest(r->params, np) != r->digest) {
		rc = macc_errf(err, MACC_ECORRUPT, "%s: the parameters do not match the digest macc "
			       "recorded (macc.params_digest %016" PRIx64 ", computed %016" PRIx64
			       "): the file was changed or damaged", name, r->digest,
			       macc_params_digest(r->params, np));
		goto out;
	}
	if (std && macc_model_set_standardizer(r->model, mean, inv_std) < 0) {
		rc = macc_errf(err, MACC_EMODEL, "%s: its standardiser is not finite", name);
	}
out:
	free(mean);
	free(inv_std);
	arena_free(&a);
	return rc;
}

int macc_onnx_decode(const uint8_t *buf, size_t len, const char *name, size_t max_batch,
		     struct macc_onnx_model *ret, struct macc_errmsg *err)
{
	struct macc_onnx_model r;
	Onnx__ModelProto *mp;
	int rc;

	memset(&r, 0, sizeof(r));
	if (len > MACC_ONNX_MAX_BYTES) {
		return macc_errf(err, MACC_ETOOBIG, "%s: %zu bytes, over the 2 GiB ONNX limit", name,
				 len);
	}
	mp = onnx__model_proto__unpack(NULL, len, buf);
	if (!mp) {
		return macc_errf(err, MACC_EMALFORMED, "%s: not an ONNX model (the bytes do not "
				 "parse as an ONNX ModelProto)", name);
	}
	rc = decode_model(mp, name, max_batch, &r, err);
	onnx__model_proto__free_unpacked(mp, NULL);
	if (rc < 0) {
		macc_onnx_model_finish(&r);
		return rc;
	}
	*ret = r;
	return 0;
}

int macc_onnx_load(const char *path, size_t max_batch, struct macc_onnx_model *ret,
		   struct macc_errmsg *err)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0) {
		return macc_errf(err, -errno, "%s: cannot open: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MACC_ONNX_MAX_BYTES) {
		rc = macc_errf(err, MACC_ETOOBIG, "%s: not a regular file of at most 2 GiB", path);
		goto out;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		rc = macc_errf(err, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			rc = macc_errf(err, n < 0 ? -errno : MACC_EMALFORMED, "%s: read failed", path);
			goto out;
		}
		got += (size_t)n;
	}
	rc = macc_onnx_decode(buf, got, path, max_batch, ret, err);
out:
	free(buf);
	close(fd);
	return rc;
}

void macc_onnx_model_finish(struct macc_onnx_model *m)
{
	if (!m) {
		return;
	}
	macc_model_destroy(m->model);
	free(m->params);
	memset(m, 0, sizeof(*m));
}
