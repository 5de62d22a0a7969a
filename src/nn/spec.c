/*
 * spec.c - model specs: the layer-stack grammar, the aliases of earlier releases, model files,
 * and the canonical spelling that the model hash is computed from.
 *
 * A spec is parsed into a struct nn_stack: the input shape, the layers with their input and
 * output shapes and parameter offsets, and the loss. Shapes are tracked while parsing, so
 * every error names the layer (its position and its text) and what did not fit ("dense:10
 * needs a flat input, got 16x5x5: add flatten before it").
 *
 * The aliases (logreg:, mlp:, cnn:lenet5, cnn:cifar, with ",dropout=P") are textual macros:
 * the alias is expanded to a layer-stack string which goes through the same parser, so an alias
 * and its expansion build the same stack, the same parameter layout and the same numbers. An
 * alias keeps the canonical name it always had (the hash peers compare in the handshake must
 * not change under a fleet), and a stack written out in full that equals an alias's expansion
 * gets the alias's name, so the canonical spelling follows from the stack alone. The check is
 * by construction: the candidate alias is expanded and its canonical stack compared.
 *
 * Numbers are printed in their shortest form and rates through "%g" (six significant digits);
 * the parser rounds rates through the same format, so a spec and its canonical spelling build
 * the same model (fuzz_modelspec checks that canonicalisation is idempotent).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_internal.h"

/* How canonical specs write rates; the parser rounds rates through it too. */
#define RATE_FMT "%g"
#define MAX_DENSE 32 /* dense layers in an mlp: alias */

static bool is_sep(char c)
{
	return c == ',' || isspace((unsigned char)c);
}

/* Parse a decimal in [lo, hi] from [s, e). */
static int parse_uint(const char *s, const char *e, size_t lo, size_t hi, size_t *ret)
{
	size_t v = 0;

	if (s == e) {
		return -1;
	}
	for (const char *p = s; p < e; p++) {
		if (*p < '0' || *p > '9') {
			return -1;
		}
		v = v * 10 + (size_t)(*p - '0');
		if (v > hi) {
			return -1;
		}
	}
	if (v < lo) {
		return -1;
	}
	*ret = v;
	return 0;
}

/* A rate from [s, e), rounded through RATE_FMT, in [lo, hi) (or [lo, hi] when closed). */
static int parse_rate(const char *s, const char *e, double lo, double hi, bool closed,
		      float *ret)
{
	char buf[40], canon[40], *end;
	double v;
	float f;

	if (s == e || (size_t)(e - s) >= sizeof(buf)) {
		return -1;
	}
	memcpy(buf, s, (size_t)(e - s));
	buf[e - s] = '\0';
	errno = 0;
	v = strtod(buf, &end);
	if (errno || *end || end == buf || !(v >= lo && (closed ? v <= hi : v < hi))) {
		return -1;
	}
	snprintf(canon, sizeof(canon), RATE_FMT, v);
	f = strtof(canon, NULL);
	if (!((double)f >= lo && (closed ? (double)f <= hi : (double)f < hi))) {
		return -2; /* rounds onto the excluded end */
	}
	*ret = f;
	return 0;
}

/* "K" or "KHxKW" from [s, e). */
static int parse_kernel(const char *s, const char *e, uint32_t *kh, uint32_t *kw)
{
	const char *x = memchr(s, 'x', (size_t)(e - s));
	size_t a, b;

	if (!x) {
		if (parse_uint(s, e, 1, 4096, &a) < 0) {
			return -1;
		}
		*kh = *kw = (uint32_t)a;
		return 0;
	}
	if (parse_uint(s, x, 1, 4096, &a) < 0 || parse_uint(x + 1, e, 1, 4096, &b) < 0) {
		return -1;
	}
	*kh = (uint32_t)a;
	*kw = (uint32_t)b;
	return 0;
}

/* "N" or "CxHxW" for input:. */
static int parse_input(const char *s, const char *e, struct macc_shape *ret)
{
	const char *x1 = memchr(s, 'x', (size_t)(e - s));
	size_t c, h, w;

	if (!x1) {
		if (parse_uint(s, e, 1, NN_MAX_WIDTH, &c) < 0) {
			return -1;
		}
		*ret = (struct macc_shape){.c = (uint32_t)c, .h = 1, .w = 1, .flat = true};
		return 0;
	}
	const char *x2 = memchr(x1 + 1, 'x', (size_t)(e - x1 - 1));

	if (!x2 || parse_uint(s, x1, 1, NN_MAX_WIDTH, &c) < 0 ||
	    parse_uint(x1 + 1, x2, 1, NN_MAX_WIDTH, &h) < 0 ||
	    parse_uint(x2 + 1, e, 1, NN_MAX_WIDTH, &w) < 0 || c * h > NN_MAX_WIDTH ||
	    c * h * w > NN_MAX_WIDTH) {
		return -1;
	}
	*ret = (struct macc_shape){.c = (uint32_t)c, .h = (uint32_t)h, .w = (uint32_t)w};
	return 0;
}

static size_t shape_size(const struct macc_shape *s)
{
	return (size_t)s->c * s->h * s->w;
}

static void shape_text(const struct macc_shape *s, char *buf, size_t size)
{
	if (s->flat) {
		snprintf(buf, size, "%u features", s->c);
	} else {
		snprintf(buf, size, "%ux%ux%u", s->c, s->h, s->w);
	}
}

/* Parser state: the stack being built and where the current layer's text is. */
struct pstate {
	struct nn_stack *st;
	struct macc_shape cur;
	const char *tok;
	size_t toklen;
	size_t index; /* 1-based layer number, for messages */
	bool have_loss;
	struct macc_errmsg *err;
};

static int bad(struct pstate *p, const char *fmt, const char *detail)
{
	return macc_errf(p->err, MACC_ESPEC, "model spec: layer %zu '%.*s': %s%s", p->index,
			 (int)(p->toklen > 60 ? 60 : p->toklen), p->tok, fmt, detail ? detail : "");
}

static int need_image(struct pstate *p)
{
	char sh[48];

	if (!p->cur.flat) {
		return 0;
	}
	shape_text(&p->cur, sh, sizeof(sh));
	return macc_errf(p->err, MACC_ESPEC, "model spec: layer %zu '%.*s' needs an image input "
			 "(CxHxW), got %s (write the input as input:CxHxW)", p->index,
			 (int)p->toklen, p->tok, sh);
}

static int add_params(struct pstate *p, struct macc_layer *l, size_t wn, size_t bn)
{
	struct nn_stack *st = p->st;

	if (wn > NN_MAX_PARAMS || st->nparams + wn + bn > NN_MAX_PARAMS) {
		char n[64];

		snprintf(n, sizeof(n), "%zu", (size_t)NN_MAX_PARAMS);
		return bad(p, "more parameters than the supported ", n);
	}
	l->w_off = st->nparams;
	l->w_count = wn;
	l->b_off = st->nparams + wn;
	l->b_count = bn;
	st->nparams += wn + bn;
	return 0;
}

/* Split "name:a:b" at colons: args[i] = [start, end). Returns the count of args. */
static size_t split_args(const char *s, const char *e, const char **as, const char **ae,
			 size_t max)
{
	size_t n = 0;

	while (s < e && n < max) {
		const char *c = memchr(s, ':', (size_t)(e - s));

		as[n] = s;
		ae[n] = c ? c : e;
		n++;
		if (!c) {
			return n;
		}
		s = c + 1;
		if (s == e) { /* trailing colon: an empty argument */
			as[n] = ae[n] = e;
			return n + 1;
		}
	}
	return s < e ? max + 1 : n;
}

/* "key=N" from [s, e) */
static int parse_opt(const char *s, const char *e, const char *key, size_t lo, size_t hi,
		     size_t *ret)
{
	size_t kl = strlen(key);

	if ((size_t)(e - s) <= kl + 1 || memcmp(s, key, kl) != 0 || s[kl] != '=') {
		return -1;
	}
	return parse_uint(s + kl + 1, e, lo, hi, ret);
}

static int layer_conv(struct pstate *p, struct macc_layer *l, const char **as, const char **ae,
		      size_t na)
{
	size_t f, stride = 1, pad = 0;

	if (need_image(p) < 0) {
		return MACC_ESPEC;
	}
	if (na < 3 || parse_uint(as[1], ae[1], 1, NN_MAX_WIDTH, &f) < 0 ||
	    parse_kernel(as[2], ae[2], &l->kh, &l->kw) < 0) {
		return bad(p, "want conv:FILTERS:K[:stride=S][:pad=P] (K may be KHxKW)", NULL);
	}
	for (size_t i = 3; i < na; i++) {
		if (parse_opt(as[i], ae[i], "stride", 1, 4096, &stride) < 0 &&
		    parse_opt(as[i], ae[i], "pad", 0, 4096, &pad) < 0) {
			return bad(p, "options are stride=S (>= 1) and pad=P (>= 0)", NULL);
		}
	}
	l->stride = (uint32_t)stride;
	l->pad = (uint32_t)pad;
	if (p->cur.h + 2 * pad < l->kh || p->cur.w + 2 * pad < l->kw) {
		char sh[48];

		shape_text(&p->cur, sh, sizeof(sh));
		return bad(p, "the filter is larger than the padded input ", sh);
	}
	l->out = (struct macc_shape){.c = (uint32_t)f,
				     .h = (uint32_t)((p->cur.h + 2 * pad - l->kh) / stride + 1),
				     .w = (uint32_t)((p->cur.w + 2 * pad - l->kw) / stride + 1)};
	if (shape_size(&l->out) > NN_MAX_WIDTH) {
		return bad(p, "output too large", NULL);
	}
	return add_params(p, l, f * p->cur.c * l->kh * l->kw, f);
}

static int layer_pool(struct pstate *p, struct macc_layer *l, const char **as, const char **ae,
		      size_t na)
{
	size_t k, stride;

	if (need_image(p) < 0) {
		return MACC_ESPEC;
	}
	if (na < 2 || na > 3 || parse_uint(as[1], ae[1], 1, 4096, &k) < 0) {
		return bad(p, "want maxpool:K or avgpool:K, optionally :stride=S", NULL);
	}
	stride = k;
	if (na == 3 && parse_opt(as[2], ae[2], "stride", 1, 4096, &stride) < 0) {
		return bad(p, "the option is stride=S (>= 1)", NULL);
	}
	if (p->cur.h < k || p->cur.w < k) {
		char sh[48];

		shape_text(&p->cur, sh, sizeof(sh));
		return bad(p, "window larger than the input ", sh);
	}
	l->kh = l->kw = (uint32_t)k;
	l->stride = (uint32_t)stride;
	l->out = (struct macc_shape){.c = p->cur.c, .h = (uint32_t)((p->cur.h - k) / stride + 1),
				     .w = (uint32_t)((p->cur.w - k) / stride + 1)};
	return 0;
}

static int layer_dense(struct pstate *p, struct macc_layer *l, const char **as, const char **ae,
		       size_t na)
{
	size_t n;

	if (!p->cur.flat) {
		char sh[48];

		shape_text(&p->cur, sh, sizeof(sh));
		return macc_errf(p->err, MACC_ESPEC, "model spec: layer %zu '%.*s' needs a flat "
				 "input, got %s: add flatten before it", p->index,
				 (int)p->toklen, p->tok, sh);
	}
	if (na != 2 || parse_uint(as[1], ae[1], 1, NN_MAX_WIDTH, &n) < 0) {
		return bad(p, "want dense:N with N in 1..16777216", NULL);
	}
	l->out = (struct macc_shape){.c = (uint32_t)n, .h = 1, .w = 1, .flat = true};
	return add_params(p, l, n * p->cur.c, n);
}

/* Layers without arguments, and those with one rate. */
static int layer_simple(struct pstate *p, struct macc_layer *l, const char *name, size_t nl,
			const char **as, const char **ae, size_t na)
{
	static const struct {
		const char *name;
		enum macc_layer_kind kind;
	} plain[] = {{"flatten", MACC_LAYER_FLATTEN}, {"relu", MACC_LAYER_RELU},
		     {"tanh", MACC_LAYER_TANH}, {"sigmoid", MACC_LAYER_SIGMOID},
		     {"gelu", MACC_LAYER_GELU}};

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		if (strlen(plain[i].name) == nl && memcmp(plain[i].name, name, nl) == 0) {
			if (na != 1) {
				return bad(p, "takes no argument", NULL);
			}
			l->kind = plain[i].kind;
			if (l->kind == MACC_LAYER_FLATTEN) {
				l->out = (struct macc_shape){.c = (uint32_t)shape_size(&p->cur),
							     .h = 1, .w = 1, .flat = true};
			}
			return 0;
		}
	}
	if (nl == 9 && memcmp(name, "leakyrelu", 9) == 0) {
		l->kind = MACC_LAYER_LEAKY_RELU;
		l->alpha = 0.01f;
		if (na > 2 || (na == 2 && parse_rate(as[1], ae[1], 0.0, 1.0, true, &l->alpha) < 0)) {
			return bad(p, "want leakyrelu or leakyrelu:A with the slope A in [0, 1]",
				   NULL);
		}
		return 0;
	}
	if (nl == 7 && memcmp(name, "dropout", 7) == 0) {
		int r = na == 2 ? parse_rate(as[1], ae[1], 0.0, 1.0, false, &l->alpha) : -1;

		l->kind = MACC_LAYER_DROPOUT;
		if (r == -2) {
			return bad(p, "the rate rounds to 1 (six significant digits); it must be "
				   "below 1", NULL);
		}
		if (r < 0) {
			return bad(p, "want dropout:P with the rate P in [0, 1)", NULL);
		}
		return 0;
	}
	return bad(p, "unknown layer (known: input, dense, conv, maxpool, avgpool, flatten, "
		   "relu, leakyrelu, tanh, sigmoid, gelu, dropout, loss)", NULL);
}

static int parse_layer(struct pstate *p)
{
	const char *s = p->tok, *e = p->tok + p->toklen;
	const char *as[8], *ae[8];
	size_t na = split_args(s, e, as, ae, 7);
	size_t nl = (size_t)(ae[0] - as[0]);
	struct nn_stack *st = p->st;
	struct macc_layer l;
	int r;

	if (na > 7) {
		return bad(p, "too many ':' arguments", NULL);
	}
	if (p->have_loss) {
		return bad(p, "nothing may follow the loss", NULL);
	}
	if (nl == 4 && memcmp(s, "loss", 4) == 0) {
		if (na == 2 && ae[1] - as[1] == 2 && memcmp(as[1], "ce", 2) == 0) {
			st->loss = MACC_LOSS_SOFTMAX_CE;
		} else if (na == 2 && ae[1] - as[1] == 3 && memcmp(as[1], "mse", 3) == 0) {
			st->loss = MACC_LOSS_MSE;
		} else {
			return bad(p, "want loss:ce (classification) or loss:mse (regression)", NULL);
		}
		p->have_loss = true;
		return 0;
	}
	if (st->nlayers == NN_MAX_LAYERS) {
		return bad(p, "too many layers", NULL);
	}
	memset(&l, 0, sizeof(l));
	l.in = l.out = p->cur;
	if (nl == 5 && memcmp(s, "input", 5) == 0) {
		return bad(p, "input may only come first", NULL);
	} else if (nl == 5 && memcmp(s, "dense", 5) == 0) {
		l.kind = MACC_LAYER_DENSE;
		r = layer_dense(p, &l, as, ae, na);
	} else if (nl == 4 && memcmp(s, "conv", 4) == 0) {
		l.kind = MACC_LAYER_CONV;
		r = layer_conv(p, &l, as, ae, na);
	} else if (nl == 7 && (memcmp(s, "maxpool", 7) == 0 || memcmp(s, "avgpool", 7) == 0)) {
		l.kind = s[0] == 'm' ? MACC_LAYER_MAXPOOL : MACC_LAYER_AVGPOOL;
		r = layer_pool(p, &l, as, ae, na);
	} else {
		r = layer_simple(p, &l, s, nl, as, ae, na);
	}
	if (r < 0) {
		return r;
	}
	st->layers[st->nlayers++] = l;
	p->cur = l.out;
	return 0;
}

/* The end of the stack: the output must be flat and suit the loss. */
static int finish_stack(struct pstate *p, bool strict)
{
	struct nn_stack *st = p->st;
	char sh[48];

	shape_text(&p->cur, sh, sizeof(sh));
	if (st->nlayers == 0 || st->nparams == 0) {
		return macc_errf(p->err, MACC_ESPEC, "model spec: no layer with parameters (add "
				 "dense:N or conv:F:K)");
	}
	if (!p->cur.flat) {
		return macc_errf(p->err, MACC_ESPEC, "model spec: the last layer gives %s; the "
				 "output must be flat: add flatten and a dense layer", sh);
	}
	if (strict && st->loss == MACC_LOSS_SOFTMAX_CE && p->cur.c < 2) {
		return macc_errf(p->err, MACC_ESPEC, "model spec: softmax cross-entropy needs at "
				 "least 2 outputs, the stack gives %u (for one real-valued target "
				 "end with loss:mse)", p->cur.c);
	}
	return 0;
}

/* Parse a layer stack from text[0, len): "input:..." then layers, separated by ',' or
 * whitespace. strict: the checks that aliases never needed (CE with 1 output). */
static int stack_parse(const char *text, size_t len, bool strict, struct nn_stack *st,
		       struct macc_errmsg *err)
{
	struct pstate p = {.st = st, .err = err};
	const char *s = text, *end = text + len;
	int r;

	memset(st, 0, sizeof(*st));
	for (;;) {
		while (s < end && is_sep(*s)) {
			s++;
		}
		if (s == end) {
			break;
		}
		const char *e = s;

		while (e < end && !is_sep(*e)) {
			e++;
		}
		p.tok = s;
		p.toklen = (size_t)(e - s);
		p.index++;
		if (p.index == 1) {
			if (p.toklen < 7 || memcmp(s, "input:", 6) != 0 ||
			    parse_input(s + 6, e, &st->input) < 0) {
				return macc_errf(err, MACC_ESPEC, "model spec: want input:N or "
						 "input:CxHxW first, got '%.*s'",
						 (int)(p.toklen > 60 ? 60 : p.toklen), s);
			}
			p.cur = st->input;
		} else if ((r = parse_layer(&p)) < 0) {
			return r;
		}
		s = e;
	}
	if (p.index == 0) {
		return macc_errf(err, MACC_ESPEC, "model spec: empty");
	}
	return finish_stack(&p, strict);
}

/* ---- printing ---- */

struct out {
	char *buf;
	size_t size, len;
	bool overflow;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->overflow) {
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->size - o->len) {
		o->overflow = true;
		return;
	}
	o->len += (size_t)n;
}

static void put_kernel(struct out *o, uint32_t kh, uint32_t kw)
{
	if (kh == kw) {
		put(o, ":%u", kh);
	} else {
		put(o, ":%ux%u", kh, kw);
	}
}

static void put_layer(struct out *o, const struct macc_layer *l)
{
	static const char *const names[] = {
		[MACC_LAYER_FLATTEN] = "flatten", [MACC_LAYER_RELU] = "relu",
		[MACC_LAYER_TANH] = "tanh", [MACC_LAYER_SIGMOID] = "sigmoid",
		[MACC_LAYER_GELU] = "gelu"};

	switch (l->kind) {
	case MACC_LAYER_DENSE:
		put(o, ",dense:%u", l->out.c);
		break;
	case MACC_LAYER_CONV:
		put(o, ",conv:%u", l->out.c);
		put_kernel(o, l->kh, l->kw);
		if (l->stride != 1) {
			put(o, ":stride=%u", l->stride);
		}
		if (l->pad != 0) {
			put(o, ":pad=%u", l->pad);
		}
		break;
	case MACC_LAYER_MAXPOOL:
	case MACC_LAYER_AVGPOOL:
		put(o, ",%s:%u", l->kind == MACC_LAYER_MAXPOOL ? "maxpool" : "avgpool", l->kh);
		if (l->stride != l->kh) {
			put(o, ":stride=%u", l->stride);
		}
		break;
	case MACC_LAYER_LEAKY_RELU:
		put(o, ",leakyrelu:" RATE_FMT, (double)l->alpha);
		break;
	case MACC_LAYER_DROPOUT:
		put(o, ",dropout:" RATE_FMT, (double)l->alpha);
		break;
	default:
		put(o, ",%s", names[l->kind]);
		break;
	}
}

static int stack_format(const struct nn_stack *st, char *buf, size_t size)
{
	struct out o = {.buf = buf, .size = size};

	if (st->input.flat) {
		put(&o, "input:%u", st->input.c);
	} else {
		put(&o, "input:%ux%ux%u", st->input.c, st->input.h, st->input.w);
	}
	for (size_t i = 0; i < st->nlayers; i++) {
		put_layer(&o, &st->layers[i]);
	}
	put(&o, ",loss:%s", st->loss == MACC_LOSS_MSE ? "mse" : "ce");
	return o.overflow ? -1 : 0;
}

/* ---- aliases ---- */

/* "dropout=P" options after the alias. */
static int alias_options(const char *opts, float *ret_dropout, struct macc_errmsg *err)
{
	while (opts) {
		const char *comma = strchr(opts, ',');
		size_t len = comma ? (size_t)(comma - opts) : strlen(opts);

		if (len == 0) {
			return macc_errf(err, MACC_ESPEC, "model spec: empty option after ','");
		}
		if (len > 8 && strncmp(opts, "dropout=", 8) == 0) {
			int r = parse_rate(opts + 8, opts + len, 0.0, 1.0, false, ret_dropout);

			if (r == -2) {
				return macc_errf(err, MACC_ESPEC, "model spec: dropout '%.*s' rounds "
						 "to 1 (six significant digits); it must be below 1",
						 (int)(len - 8), opts + 8);
			}
			if (r < 0) {
				return macc_errf(err, MACC_ESPEC, "model spec: dropout '%.*s' must be "
						 "a number in [0, 1)", (int)(len - 8), opts + 8);
			}
		} else {
			return macc_errf(err, MACC_ESPEC, "model spec: unknown option '%.*s' "
					 "(known: dropout=P)", (int)len, opts);
		}
		opts = comma ? comma + 1 : NULL;
	}
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
		if (parse_uint(s, e, 1, NN_MAX_WIDTH, &sizes[n]) < 0) {
			return macc_errf(err, MACC_ESPEC, "model spec: %s: bad size '%.*s' (want an "
					 "integer in 1..%u)", what, (int)(e - s), s, NN_MAX_WIDTH);
		}
		n++;
		if (!dash) {
			break;
		}
		s = dash + 1;
	}
	return (int)n;
}

static void put_dropout(struct out *o, float p)
{
	if (p > 0.0f) {
		put(o, ",dropout:" RATE_FMT, (double)p);
	}
}

/* logreg:/mlp: into a stack text and the canonical name. */
static int expand_mlp(const char *spec, const char *base, float dropout, struct out *x,
		      struct out *canon, struct macc_errmsg *err)
{
	bool logreg = base[0] == 'l';
	const char *s = base + (logreg ? 7 : 4);
	const char *colon = strchr(s, ':');
	const char *end = colon ? colon : s + strlen(s);
	const char *act = "relu";
	size_t sizes[MAX_DENSE + 1];
	int n;

	if (colon && !logreg && (strcmp(colon + 1, "tanh") == 0 ||
				 strcmp(colon + 1, "relu") == 0)) {
		act = colon + 1;
	} else if (colon) {
		return macc_errf(err, MACC_ESPEC, "model spec '%s': unknown activation '%s' "
				 "(known: relu, tanh%s)", spec, colon + 1,
				 logreg ? "; logreg has none" : "");
	}
	n = parse_sizes(s, end, sizes, MAX_DENSE + 1, logreg ? "logreg" : "mlp", err);
	if (n < 0) {
		return n;
	}
	if (n < 2 || (logreg && n != 2)) {
		return macc_errf(err, MACC_ESPEC, "model spec '%s': want %s", spec,
				 logreg ? "logreg:IN-OUT" : "mlp:IN-H1-...-OUT (at least IN-OUT)");
	}
	put(x, "input:%zu", sizes[0]);
	put(canon, "%s:%zu", logreg ? "logreg" : "mlp", sizes[0]);
	for (int i = 1; i < n; i++) {
		put(x, ",dense:%zu", sizes[i]);
		if (i < n - 1) {
			put(x, ",%s", act);
			put_dropout(x, dropout);
		}
		put(canon, "-%zu", sizes[i]);
	}
	if (strcmp(act, "tanh") == 0) {
		put(canon, ":tanh");
	}
	return 0;
}

static int expand_alias(const char *spec, char *text, char *canon_buf, struct macc_errmsg *err)
{
	struct out x = {.buf = text, .size = NN_MAX_CANON};
	struct out canon = {.buf = canon_buf, .size = NN_MAX_CANON};
	const char *comma = strchr(spec, ',');
	size_t blen = comma ? (size_t)(comma - spec) : strlen(spec);
	char base[NN_MAX_SPEC + 1];
	float dropout = 0.0f;
	int r;

	memcpy(base, spec, blen);
	base[blen] = '\0';
	r = alias_options(comma ? comma + 1 : NULL, &dropout, err);
	if (r < 0) {
		return r;
	}
	if (strncmp(base, "logreg:", 7) == 0 || strncmp(base, "mlp:", 4) == 0) {
		r = expand_mlp(spec, base, dropout, &x, &canon, err);
		if (r < 0) {
			return r;
		}
	} else if (strcmp(base, "cnn:lenet5") == 0) {
		put(&x, "input:1x28x28,conv:6:5:pad=2,relu,maxpool:2,conv:16:5,relu,maxpool:2,"
		    "flatten,dense:120,relu");
		put_dropout(&x, dropout);
		put(&x, ",dense:84,relu");
		put_dropout(&x, dropout);
		put(&x, ",dense:10");
		put(&canon, "cnn:lenet5");
	} else if (strcmp(base, "cnn:cifar") == 0) {
		put(&x, "input:3x32x32,conv:16:3:pad=1,relu,maxpool:2,conv:32:3:pad=1,relu,"
		    "maxpool:2,conv:64:3:pad=1,relu,maxpool:2,flatten,dense:128,relu");
		put_dropout(&x, dropout);
		put(&x, ",dense:10");
		put(&canon, "cnn:cifar");
	} else {
		return macc_errf(err, MACC_ESPEC, "model spec '%s': unknown model (a layer stack "
				 "starts with input:N or input:CxHxW; the named models are "
				 "logreg:IN-OUT, mlp:IN-...-OUT[:tanh], cnn:lenet5, cnn:cifar)", spec);
	}
	if (dropout > 0.0f) {
		put(&canon, ",dropout=" RATE_FMT, (double)dropout);
	}
	return x.overflow || canon.overflow ? macc_errf(err, MACC_ESPEC, "model spec too long")
					    : 0;
}

/* The alias whose expansion is this stack, into canon; false if none. */
static bool find_alias(const struct nn_stack *st, const char *stack_canon, char *canon)
{
	struct out c = {.buf = canon, .size = NN_MAX_CANON};
	struct nn_stack *tmp = malloc(sizeof(*tmp));
	char *text = malloc(NN_MAX_CANON), *tcanon = malloc(NN_MAX_CANON);
	size_t ndense = 0;
	float dropout = 0.0f;
	bool tanh_act = false, found = false;

	if (!tmp || !text || !tcanon) {
		goto out;
	}
	if (st->input.flat) {
		put(&c, "%s:%u", "mlp", st->input.c);
	}
	for (size_t i = 0; i < st->nlayers; i++) {
		const struct macc_layer *l = &st->layers[i];

		if (l->kind == MACC_LAYER_DENSE && st->input.flat) {
			put(&c, "-%u", l->out.c);
			ndense++;
		}
		tanh_act |= l->kind == MACC_LAYER_TANH;
		if (l->kind == MACC_LAYER_DROPOUT && dropout == 0.0f) {
			dropout = l->alpha;
		}
	}
	if (ndense == 1) {
		/* "mlp:..." -> "logreg:..." */
		if (!c.overflow && c.len + 3 < c.size) {
			memmove(canon + 6, canon + 3, strlen(canon + 3) + 1);
			memcpy(canon, "logreg", 6);
			c.len += 3;
		}
	} else if (tanh_act) {
		put(&c, ":tanh");
	}
	char dtext[40] = "";

	if (dropout > 0.0f) {
		snprintf(dtext, sizeof(dtext), ",dropout=" RATE_FMT, (double)dropout);
	}
	put(&c, "%s", ndense == 1 ? "" : dtext);
	const char *cands[] = {st->input.flat && !c.overflow ? canon : NULL, "cnn:lenet5",
			       "cnn:cifar"};

	for (size_t k = 0; k < 3 && !found; k++) {
		char cand[NN_MAX_SPEC + 48];
		struct macc_errmsg e;

		if (!cands[k]) {
			continue;
		}
		snprintf(cand, sizeof(cand), "%s%s", cands[k], k == 0 ? "" : dtext);
		if (strlen(cand) > NN_MAX_SPEC || expand_alias(cand, text, tcanon, &e) < 0 ||
		    stack_parse(text, strlen(text), false, tmp, &e) < 0 ||
		    stack_format(tmp, text, NN_MAX_CANON) < 0 || strcmp(text, stack_canon) != 0) {
			continue;
		}
		strcpy(canon, tcanon);
		found = true;
	}
out:
	free(tmp);
	free(text);
	free(tcanon);
	return found;
}

/* ---- model files ---- */

/* Read PATH into a NUL-terminated buffer with '#' comments blanked out. */
static int read_model_file(const char *path, char **ret, struct macc_errmsg *err)
{
	struct stat sb;
	char *buf = NULL;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0) {
		rc = -errno;
		return macc_errf(err, rc, "model file %s: cannot open: %s", path, strerror(-rc));
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > NN_MAX_SPEC_FILE) {
		rc = macc_errf(err, MACC_ESPEC, "model file %s: not a regular file of at most %d "
			       "bytes", path, NN_MAX_SPEC_FILE);
		goto out;
	}
	buf = malloc((size_t)sb.st_size + 1);
	if (!buf) {
		rc = macc_errf(err, -ENOMEM, "model file %s: out of memory", path);
		goto out;
	}
	while (got < (size_t)sb.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			rc = n < 0 ? -errno : MACC_ESPEC;
			macc_errf(err, rc, "model file %s: read error", path);
			goto out;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	for (char *p = buf; *p; p++) {
		if (*p == '#') {
			for (; *p && *p != '\n'; p++) {
				*p = ' ';
			}
			if (!*p) {
				break;
			}
		} else if (*p == '\0' || (unsigned char)*p < 0x09) {
			*p = ' ';
		}
	}
	if (strlen(buf) != got) {
		rc = macc_errf(err, MACC_ESPEC, "model file %s: contains a NUL byte", path);
		goto out;
	}
	*ret = buf;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

static int resolve_text(const char *text, size_t len, struct nn_stack *st, char *canon,
			struct macc_errmsg *err)
{
	const char *s = text;
	char *x = NULL;
	int rc;

	if (len >= 6 && memcmp(s, "input:", 6) == 0) {
		rc = stack_parse(s, len, true, st, err);
		if (rc < 0) {
			return rc;
		}
		if (stack_format(st, canon, NN_MAX_CANON) < 0) {
			return macc_errf(err, MACC_ESPEC, "model spec: canonical form too long");
		}
		char *stack_canon = strdup(canon);

		if (!stack_canon) {
			return -ENOMEM;
		}
		if (!find_alias(st, stack_canon, canon)) {
			strcpy(canon, stack_canon);
		}
		free(stack_canon);
		return 0;
	}
	/* an alias: one word */
	if (len > NN_MAX_SPEC || memchr(s, '\0', len) || len != strcspn(s, " \t\r\n")) {
		return macc_errf(err, MACC_ESPEC, "model spec '%.*s': unknown model", (int)(len > 60
				 ? 60 : len), s);
	}
	char one[NN_MAX_SPEC + 1];

	memcpy(one, s, len);
	one[len] = '\0';
	x = malloc(NN_MAX_CANON);
	if (!x) {
		return -ENOMEM;
	}
	rc = expand_alias(one, x, canon, err);
	if (rc == 0) {
		rc = stack_parse(x, strlen(x), false, st, err);
	}
	free(x);
	return rc;
}

int nn_spec_resolve(const char *spec, struct nn_stack *st, char *canon,
		    struct macc_errmsg *err)
{
	char *file = NULL;
	int rc;

	/* A layer stack written inline may be as long as a canonical spec, so that every
	 * canonical spec builds its model again (exporters record it; macc/onnx.h). */
	size_t max = spec && strncmp(spec, "input:", 6) == 0 ? NN_MAX_CANON - 1 : NN_MAX_SPEC;

	if (!spec || strlen(spec) > max) {
		return macc_errf(err, MACC_ESPEC, "model spec missing or longer than %zu bytes",
				 max);
	}
	if (spec[0] != '@') {
		return resolve_text(spec, strlen(spec), st, canon, err);
	}
	rc = read_model_file(spec + 1, &file, err);
	if (rc < 0) {
		return rc;
	}
	/* a model file may hold an alias too, between blank lines and comments */
	const char *s = file;
	size_t len = strlen(file);

	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1])) {
		len--;
	}
	rc = resolve_text(s, len, st, canon, err);
	free(file);
	return rc;
}
