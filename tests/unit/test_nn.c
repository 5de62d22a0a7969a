/*
 * test_nn.c - layers, models, optimiser and schedules of the learning core.
 *
 * Two kinds of evidence for every layer:
 *   - the BLAS/im2col path against a naive-loop oracle written from the definition (in this
 *     file, accumulating in double), on small random shapes, with the worst difference printed;
 *   - a central finite-difference gradient check (eps 1e-3) of every input and parameter of the
 *     layer, through the scalar L = sum(out * R) for a fixed random R (so dL/dout = R).
 * Coordinates whose +-eps perturbation flips a ReLU or changes a max-pool arg-max (a kink, where
 * the derivative is not defined) are skipped, detected from a signature of the activation
 * pattern, and at most a few percent may be skipped.
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
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "macc/err.h"
#include "macc/nn.h"
#include "macc/rng.h"
#include "../../src/nn/layers.h"

#define EPS 1e-3f
#define GC_TOL 1e-2
/* Layer checks sum ~100 outputs into L, so float rounding of L is ~1e-6 and the numeric
 * gradient is good to ~1e-3 absolute: relative error over max(1, |a| + |n|). */
#define LAYER_GC ((struct gc_opts){.skip_frac = 0.25, .bad_frac = 0.0, .floor = 1.0, .eps = EPS})

static struct macc_rng trng;

static float *rand_vec(size_t n, float lo, float hi)
{
	float *v = malloc(n * sizeof(*v) + 1);

	assert_non_null(v);
	for (size_t i = 0; i < n; i++) {
		v[i] = lo + (hi - lo) * (float)macc_rng_uniform(&trng);
	}
	return v;
}

static float *zeros(size_t n)
{
	float *v = calloc(n + 1, sizeof(*v));

	assert_non_null(v);
	return v;
}

static double dot_d(const float *a, const float *b, size_t n)
{
	double s = 0.0;

	for (size_t i = 0; i < n; i++) {
		s += (double)a[i] * (double)b[i];
	}
	return s;
}

static uint64_t hash_mask(const float *v, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		h = (h ^ (uint64_t)(v[i] > 0.0f)) * 0x100000001b3ull;
	}
	return h;
}

/* Worst |a - b| relative to max(1, max |b|); fails with the worst index printed. */
static void assert_close(const char *what, const float *a, const float *ref, size_t n,
			 double tol)
{
	double worst = 0.0, scale = 1.0;
	float refmax = 0.0f;
	size_t wi = 0;

	/*
	 * max |ref| in float, the elements' own type (exact, so the same value as a double
	 * fmax(scale, fabs((double)ref[i])) loop): that loop, a double fmax reduction fed by a
	 * widened float, makes aarch64 GCC 12.2 at -O3 die in the vectorizer (internal compiler
	 * error in vect_transform_reduction); the arm64 cross build in CI compiles this at -O3.
	 */
	for (size_t i = 0; i < n; i++) {
		refmax = fmaxf(refmax, fabsf(ref[i]));
	}
	scale = fmax(scale, refmax);
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - (double)ref[i]);

		if (d > worst) {
			worst = d;
			wi = i;
		}
	}
	if (worst / scale > tol) {
		print_error("%s: worst diff %g at %zu (got %g, want %g, scale %g)\n", what, worst,
			    wi, n ? (double)a[wi] : 0.0, n ? (double)ref[wi] : 0.0, scale);
		fail();
	}
}

/* ---- finite-difference gradient check ---- */

typedef double (*loss_fn)(void *ctx, uint64_t *sig);

struct gc_tensor {
	const char *name;
	float *x;             /* perturbed in place */
	size_t n;
	const float *grad;    /* analytic */
};

/* Checks up to ~150 coordinates of each tensor; returns the worst relative error. */
struct gc_opts {
	double skip_frac; /* coordinates on a kink that may be skipped */
	double bad_frac;  /* 0: any coordinate over GC_TOL fails; else the fraction allowed */
	double floor;     /* relative error = |a - n| / max(floor, |a| + |n|) */
	float eps;        /* perturbation */
	double kink;      /* > 0: skip when |L(+eps) - 2 L(0) + L(-eps)| exceeds it (a kink inside) */
};

static double gradcheck(const char *what, loss_fn f, void *ctx, struct gc_tensor *t, size_t nt,
			struct gc_opts o)
{
	double worst = 0.0;
	size_t checked = 0, skipped = 0, bad = 0;
	uint64_t s0;

	double l0 = f(ctx, &s0);

	for (size_t k = 0; k < nt; k++) {
		size_t step = t[k].n / 150 + 1;

		for (size_t j = 0; j < t[k].n; j += step) {
			float save = t[k].x[j];
			uint64_t sp, sm;
			float xp = save + o.eps, xm = save - o.eps;

			t[k].x[j] = xp;
			double lp = f(ctx, &sp);

			t[k].x[j] = xm;
			double lm = f(ctx, &sm);

			t[k].x[j] = save;
			if (sp != s0 || sm != s0 || (o.kink > 0.0 && fabs(lp - 2 * l0 + lm) > o.kink)) {
				skipped++;
				continue;
			}
			double num = (lp - lm) / ((double)xp - (double)xm);
			double a = (double)t[k].grad[j];
			double rel = fabs(num - a) / fmax(o.floor, fabs(num) + fabs(a));

			checked++;
			if (rel > GC_TOL) {
				bad++;
				if (getenv("NN_GC_VERBOSE")) {
					printf("%s: %s[%zu]: analytic %g, numeric %g\n", what,
					       t[k].name, j, a, num);
				}
				if (o.bad_frac == 0.0) {
					print_error("%s: %s[%zu]: analytic %g, numeric %g (rel %g)\n",
						    what, t[k].name, j, a, num, rel);
					fail();
				}
				continue;
			}
			if (rel > worst) {
				worst = rel;
			}
		}
	}
	if ((double)bad > o.bad_frac * (double)checked) {
		print_error("%s: %zu of %zu coordinates off by more than %g\n", what, bad, checked,
			    GC_TOL);
		fail();
	}
	if (getenv("NN_GC_VERBOSE")) {
		printf("%s: checked %zu, skipped %zu, bad %zu, worst %g\n", what, checked, skipped,
		       bad, worst);
	}
	if ((double)skipped > o.skip_frac * (double)(checked + skipped)) {
		print_error("%s: %zu of %zu coordinates sit on a kink\n", what, skipped,
			    checked + skipped);
		fail();
	}
	assert_true(checked > 0);
	return worst;
}

/* ---- naive oracles (from the definitions, double accumulation) ---- */

static float act_naive(double z, enum nn_act act)
{
	if (act == NN_ACT_RELU) {
		return z > 0.0 ? (float)z : 0.0f;
	}
	if (act == NN_ACT_TANH) {
		return (float)tanh(z);
	}
	return (float)z;
}

static void naive_dense_forward(float *out, const float *in, const float *w, const float *b,
				size_t B, size_t ni, size_t no, enum nn_act act)
{
	for (size_t r = 0; r < B; r++) {
		for (size_t o = 0; o < no; o++) {
			double z = b[o];

			for (size_t i = 0; i < ni; i++) {
				z += (double)in[r * ni + i] * (double)w[o * ni + i];
			}
			out[r * no + o] = act_naive(z, act);
		}
	}
}

/* dz from dout and the saved output, then dw, db, din. */
static void naive_dense_backward(float *din, float *dw, float *db, const float *dout,
				 const float *out, const float *in, const float *w, size_t B,
				 size_t ni, size_t no, enum nn_act act)
{
	float *dz = zeros(B * no);

	for (size_t e = 0; e < B * no; e++) {
		double d = dout[e];

		if (act == NN_ACT_RELU) {
			d = out[e] > 0.0f ? d : 0.0;
		} else if (act == NN_ACT_TANH) {
			d *= 1.0 - (double)out[e] * (double)out[e];
		}
		dz[e] = (float)d;
	}
	for (size_t o = 0; o < no; o++) {
		double sb = 0.0;

		for (size_t r = 0; r < B; r++) {
			sb += dz[r * no + o];
		}
		db[o] = (float)sb;
		for (size_t i = 0; i < ni; i++) {
			double s = 0.0;

			for (size_t r = 0; r < B; r++) {
				s += (double)dz[r * no + o] * (double)in[r * ni + i];
			}
			dw[o * ni + i] = (float)s;
		}
	}
	for (size_t r = 0; din && r < B; r++) {
		for (size_t i = 0; i < ni; i++) {
			double s = 0.0;

			for (size_t o = 0; o < no; o++) {
				s += (double)dz[r * no + o] * (double)w[o * ni + i];
			}
			din[r * ni + i] = (float)s;
		}
	}
	free(dz);
}

/* Direct convolution, NCHW: out[b][k][oy][ox] = act(bias[k] + sum_c,ky,kx
 * w[k][c][ky][kx] in[b][c][oy + ky - pad][ox + kx - pad]). */
static void naive_conv_forward(float *out, const float *in, const float *w, const float *bias,
			       const struct nn_conv_shape *s, size_t B, enum nn_act act)
{
	for (size_t b = 0; b < B; b++) {
		for (size_t k = 0; k < s->k; k++) {
			for (size_t oy = 0; oy < s->oh; oy++) {
				for (size_t ox = 0; ox < s->ow; ox++) {
					double z = bias[k];

					for (size_t c = 0; c < s->c; c++) {
						for (size_t ky = 0; ky < s->kh; ky++) {
							for (size_t kx = 0; kx < s->kw; kx++) {
								long y = (long)(oy * s->stride + ky) -
									 (long)s->pad;
								long x = (long)(ox * s->stride + kx) -
									 (long)s->pad;

								if (y < 0 || x < 0 || y >= (long)s->h ||
								    x >= (long)s->w) {
									continue;
								}
								z += (double)w[((k * s->c + c) * s->kh +
									       ky) * s->kw + kx] *
								     (double)in[((b * s->c + c) *
									       s->h + (size_t)y) * s->w +
									      (size_t)x];
							}
						}
					}
					out[((b * s->k + k) * s->oh + oy) * s->ow + ox] =
						act_naive(z, act);
				}
			}
		}
	}
}

static void naive_conv_backward(float *din, float *dw, float *db, const float *dout,
				const float *out, const float *in, const float *w,
				const struct nn_conv_shape *s, size_t B, enum nn_act act)
{
	size_t nout = B * s->k * s->oh * s->ow;
	size_t nw = s->k * s->c * s->kh * s->kw;
	double *gw = calloc(nw, sizeof(double)), *gb = calloc(s->k, sizeof(double));
	double *gi = calloc(B * s->c * s->h * s->w, sizeof(double));

	assert_true(gw && gb && gi);
	for (size_t e = 0; e < nout; e++) {
		size_t ox = e % s->ow, oy = (e / s->ow) % s->oh, k = (e / (s->ow * s->oh)) % s->k;
		size_t b = e / (s->ow * s->oh * s->k);
		double d = dout[e];

		if (act == NN_ACT_RELU) {
			d = out[e] > 0.0f ? d : 0.0;
		} else if (act == NN_ACT_TANH) {
			d *= 1.0 - (double)out[e] * (double)out[e];
		}
		gb[k] += d;
		for (size_t c = 0; c < s->c; c++) {
			for (size_t ky = 0; ky < s->kh; ky++) {
				for (size_t kx = 0; kx < s->kw; kx++) {
					long y = (long)(oy * s->stride + ky) - (long)s->pad;
					long x = (long)(ox * s->stride + kx) - (long)s->pad;

					if (y < 0 || x < 0 || y >= (long)s->h || x >= (long)s->w) {
						continue;
					}
					size_t wi = ((k * s->c + c) * s->kh + ky) * s->kw + kx;
					size_t ii = ((b * s->c + c) * s->h + (size_t)y) * s->w +
						    (size_t)x;

					gw[wi] += d * (double)in[ii];
					gi[ii] += d * (double)w[wi];
				}
			}
		}
	}
	for (size_t i = 0; i < nw; i++) {
		dw[i] = (float)gw[i];
	}
	for (size_t i = 0; i < s->k; i++) {
		db[i] = (float)gb[i];
	}
	for (size_t i = 0; din && i < B * s->c * s->h * s->w; i++) {
		din[i] = (float)gi[i];
	}
	free(gw);
	free(gb);
	free(gi);
}

/* NCHW 2x2 max-pool from the definition. */
static void naive_maxpool(float *out, const float *in, size_t B, size_t h, size_t w, size_t c)
{
	for (size_t pl = 0; pl < B * c; pl++) {
		for (size_t oy = 0; oy < h / 2; oy++) {
			for (size_t ox = 0; ox < w / 2; ox++) {
				float m = -INFINITY;

				for (size_t dy = 0; dy < 2; dy++) {
					for (size_t dx = 0; dx < 2; dx++) {
						float v = in[(pl * h + 2 * oy + dy) * w + 2 * ox + dx];

						m = v > m ? v : m;
					}
				}
				out[(pl * (h / 2) + oy) * (w / 2) + ox] = m;
			}
		}
	}
}

/* ---- dense ---- */

struct dense_ctx {
	size_t B, ni, no;
	enum nn_act act;
	float *in, *w, *b, *out, *R;
};

static double dense_loss(void *vctx, uint64_t *sig)
{
	struct dense_ctx *c = vctx;

	nn_dense_forward(c->out, c->in, c->w, c->b, c->B, c->ni, c->no, c->act);
	*sig = c->act == NN_ACT_RELU ? hash_mask(c->out, c->B * c->no) : 0;
	return dot_d(c->out, c->R, c->B * c->no);
}

static void check_dense(size_t B, size_t ni, size_t no, enum nn_act act)
{
	struct dense_ctx c = {B, ni, no, act, rand_vec(B * ni, -1, 1), rand_vec(no * ni, -1, 1),
			      rand_vec(no, -0.5f, 0.5f), zeros(B * no), rand_vec(B * no, -1, 1)};
	float *ref = zeros(B * no), *dout = zeros(B * no);
	float *din = zeros(B * ni), *dw = zeros(no * ni), *db = zeros(no);
	float *rdin = zeros(B * ni), *rdw = zeros(no * ni), *rdb = zeros(no);
	char what[64];
	uint64_t sig;

	snprintf(what, sizeof(what), "dense %zux%zux%zu act %d", B, ni, no, (int)act);
	/* BLAS path against the oracle */
	naive_dense_forward(ref, c.in, c.w, c.b, B, ni, no, act);
	dense_loss(&c, &sig);
	assert_close(what, c.out, ref, B * no, 1e-5);
	memcpy(dout, c.R, B * no * sizeof(float));
	nn_dense_backward(din, dw, db, dout, c.out, c.in, c.w, B, ni, no, act);
	naive_dense_backward(rdin, rdw, rdb, c.R, c.out, c.in, c.w, B, ni, no, act);
	assert_close(what, dw, rdw, no * ni, 1e-5);
	assert_close(what, db, rdb, no, 1e-5);
	assert_close(what, din, rdin, B * ni, 1e-5);
	/* skipping dX leaves dW and db alone; parameter gradients accumulate */
	float *dw2 = zeros(no * ni), *db2 = zeros(no);

	memcpy(dout, c.R, B * no * sizeof(float));
	nn_dense_backward(NULL, dw2, db2, dout, c.out, c.in, c.w, B, ni, no, act);
	assert_close(what, dw2, rdw, no * ni, 1e-5);
	assert_close(what, db2, rdb, no, 1e-5);
	memcpy(dout, c.R, B * no * sizeof(float));
	nn_dense_backward(NULL, dw2, db2, dout, c.out, c.in, c.w, B, ni, no, act);
	for (size_t i = 0; i < no * ni; i++) {
		rdw[i] *= 2.0f;
	}
	assert_close(what, dw2, rdw, no * ni, 1e-5);
	free(dw2), free(db2);
	/* finite differences */
	struct gc_tensor t[] = {{"w", c.w, no * ni, dw}, {"b", c.b, no, db},
				{"in", c.in, B * ni, din}};

	gradcheck(what, dense_loss, &c, t, 3, LAYER_GC);
	free(c.in), free(c.w), free(c.b), free(c.out), free(c.R), free(ref), free(dout);
	free(din), free(dw), free(db), free(rdin), free(rdw), free(rdb);
}

static void test_dense_matches_oracle_and_gradcheck(void **state)
{
	(void)state;
	check_dense(3, 5, 4, NN_ACT_NONE);
	check_dense(7, 13, 6, NN_ACT_RELU);
	check_dense(4, 9, 11, NN_ACT_TANH);
	check_dense(1, 1, 1, NN_ACT_NONE);
	check_dense(33, 70, 17, NN_ACT_RELU);
}

/* ---- elementwise activations ---- */

struct act_ctx {
	size_t n;
	int tanh;
	float *in, *out, *R;
};

static double act_loss(void *vctx, uint64_t *sig)
{
	struct act_ctx *c = vctx;

	if (c->tanh) {
		nn_tanh_forward(c->out, c->in, c->n);
		*sig = 0;
	} else {
		nn_relu_forward(c->out, c->in, c->n);
		*sig = hash_mask(c->out, c->n);
	}
	return dot_d(c->out, c->R, c->n);
}

static void test_relu_tanh_gradcheck(void **state)
{
	(void)state;
	for (int th = 0; th < 2; th++) {
		size_t n = 64;
		struct act_ctx c = {n, th, rand_vec(n, -2, 2), zeros(n), rand_vec(n, -1, 1)};
		float *din = zeros(n), *ref = zeros(n);
		uint64_t sig;

		act_loss(&c, &sig);
		for (size_t i = 0; i < n; i++) {
			ref[i] = act_naive(c.in[i], th ? NN_ACT_TANH : NN_ACT_NONE);
			if (!th) {
				ref[i] = c.in[i] > 0 ? c.in[i] : 0;
			}
		}
		assert_close(th ? "tanh" : "relu", c.out, ref, n, 1e-6);
		if (th) {
			nn_tanh_backward(din, c.R, c.out, n);
		} else {
			nn_relu_backward(din, c.R, c.out, n);
		}
		struct gc_tensor t[] = {{"in", c.in, n, din}};

		gradcheck(th ? "tanh" : "relu", act_loss, &c, t, 1, LAYER_GC);
		/* in place works (gradcheck left out at a perturbed point: recompute it) */
		act_loss(&c, &sig);
		memcpy(ref, c.R, n * sizeof(float));
		if (th) {
			nn_tanh_backward(ref, ref, c.out, n);
		} else {
			nn_relu_backward(ref, ref, c.out, n);
		}
		assert_memory_equal(ref, din, n * sizeof(float));
		free(c.in), free(c.out), free(c.R), free(din), free(ref);
	}
}

/* ---- convolution ---- */

struct conv_ctx {
	struct nn_conv_shape s;
	size_t B;
	enum nn_act act;
	float *in, *w, *b, *out, *col, *tmp, *R;
};

static double conv_loss(void *vctx, uint64_t *sig)
{
	struct conv_ctx *c = vctx;
	size_t n = c->B * c->s.oh * c->s.ow * c->s.k;

	nn_conv2d_forward(c->out, c->col, c->tmp, c->in, c->w, c->b, &c->s, c->B, c->act);
	*sig = c->act == NN_ACT_RELU ? hash_mask(c->out, n) : 0;
	return dot_d(c->out, c->R, n);
}

static void check_conv_s(size_t B, size_t ch, size_t h, size_t w, size_t k, size_t ks,
			 size_t pad, size_t stride, enum nn_act act)
{
	struct conv_ctx c = {.s = {.c = ch, .h = h, .w = w, .k = k, .kh = ks, .kw = ks,
				   .pad = pad, .stride = stride}, .B = B, .act = act};
	char what[96];
	uint64_t sig;

	assert_int_equal(nn_conv_shape_finish(&c.s), 0);
	size_t nin = B * ch * h * w, nw = k * ks * ks * ch, nout = B * c.s.oh * c.s.ow * k;

	c.in = rand_vec(nin, -1, 1);
	c.w = rand_vec(nw, -0.5f, 0.5f);
	c.b = rand_vec(k, -0.2f, 0.2f);
	c.out = zeros(nout);
	c.col = zeros(nn_conv_col_size(&c.s, B));
	c.tmp = zeros(nn_conv_tmp_size(&c.s, B));
	c.R = rand_vec(nout, -1, 1);
	float *ref = zeros(nout), *dz = zeros(nn_conv_tmp_size(&c.s, B));
	float *dcol = zeros(nn_conv_col_size(&c.s, B));
	float *din = zeros(nin), *dw = zeros(nw), *db = zeros(k);
	float *rdin = zeros(nin), *rdw = zeros(nw), *rdb = zeros(k);

	snprintf(what, sizeof(what), "conv B%zu c%zu %zux%zu k%zu %zux%zu pad %zu stride %zu act %d",
		 B, ch, h, w, k, ks, ks, pad, stride, (int)act);
	naive_conv_forward(ref, c.in, c.w, c.b, &c.s, B, act);
	conv_loss(&c, &sig);
	assert_close(what, c.out, ref, nout, 1e-5);
	nn_conv2d_backward(din, dcol, dz, dw, db, c.R, c.out, c.col, c.w, &c.s, B, act);
	naive_conv_backward(rdin, rdw, rdb, c.R, c.out, c.in, c.w, &c.s, B, act);
	assert_close(what, dw, rdw, nw, 1e-5);
	assert_close(what, db, rdb, k, 1e-5);
	assert_close(what, din, rdin, nin, 1e-5);
	struct gc_tensor t[] = {{"w", c.w, nw, dw}, {"b", c.b, k, db}, {"in", c.in, nin, din}};

	gradcheck(what, conv_loss, &c, t, 3, LAYER_GC);
	free(c.in), free(c.w), free(c.b), free(c.out), free(c.col), free(c.tmp), free(c.R);
	free(ref), free(dz), free(dcol), free(din), free(dw), free(db), free(rdin), free(rdw);
	free(rdb);
}

static void check_conv(size_t B, size_t ch, size_t h, size_t w, size_t k, size_t ks, size_t pad,
		       enum nn_act act)
{
	check_conv_s(B, ch, h, w, k, ks, pad, 1, act);
}

static void test_conv_matches_oracle_and_gradcheck(void **state)
{
	(void)state;
	check_conv(2, 1, 6, 5, 3, 3, 1, NN_ACT_NONE);
	check_conv(2, 3, 7, 6, 4, 3, 1, NN_ACT_RELU);  /* multi-channel */
	check_conv(3, 2, 6, 6, 2, 5, 2, NN_ACT_RELU);  /* padding as wide as the filter reach */
	check_conv(2, 4, 5, 7, 3, 2, 0, NN_ACT_TANH);
	check_conv(1, 1, 3, 3, 1, 3, 0, NN_ACT_NONE);  /* 1x1 output */
	check_conv(2, 1, 4, 4, 2, 3, 3, NN_ACT_NONE);  /* padding wider than the filter reach */
	check_conv(2, 6, 8, 8, 5, 5, 0, NN_ACT_RELU);  /* lenet conv2 in miniature */
}

/* ---- max-pool, flatten, dropout ---- */

struct pool_ctx {
	size_t B, h, w, c;
	float *in, *out, *R;
	uint32_t *arg;
};

static double pool_loss(void *vctx, uint64_t *sig)
{
	struct pool_ctx *c = vctx;
	size_t n = c->B * (c->h / 2) * (c->w / 2) * c->c;
	uint64_t h = 0xcbf29ce484222325ull;

	nn_maxpool2_forward(c->out, c->arg, c->in, c->B, c->h, c->w, c->c);
	for (size_t i = 0; i < n; i++) {
		h = (h ^ c->arg[i]) * 0x100000001b3ull;
	}
	*sig = h;
	return dot_d(c->out, c->R, n);
}

static void test_maxpool_matches_oracle_and_gradcheck(void **state)
{
	static const size_t shapes[][4] = {{2, 4, 4, 3}, {3, 5, 7, 2}, {1, 2, 2, 1}};

	(void)state;
	for (size_t si = 0; si < 3; si++) {
		size_t B = shapes[si][0], h = shapes[si][1], w = shapes[si][2], ch = shapes[si][3];
		size_t nin = B * h * w * ch, nout = B * (h / 2) * (w / 2) * ch;
		struct pool_ctx c = {B, h, w, ch, rand_vec(nin, -1, 1), zeros(nout),
				     rand_vec(nout, -1, 1), calloc(nout, sizeof(uint32_t))};
		float *ref = zeros(nout), *din = zeros(nin);
		uint64_t sig;

		pool_loss(&c, &sig);
		naive_maxpool(ref, c.in, B, h, w, ch);
		assert_memory_equal(c.out, ref, nout * sizeof(float));
		nn_maxpool2_backward(din, c.R, c.arg, B, h, w, ch);
		/* every output gradient lands on exactly one input; odd borders get nothing */
		double sum_in = 0.0, sum_out = 0.0;

		for (size_t i = 0; i < nin; i++) {
			sum_in += din[i];
		}
		for (size_t i = 0; i < nout; i++) {
			sum_out += c.R[i];
		}
		assert_true(fabs(sum_in - sum_out) < 1e-4);
		struct gc_tensor t[] = {{"in", c.in, nin, din}};

		gradcheck("maxpool", pool_loss, &c, t, 1, LAYER_GC);
		free(c.in), free(c.out), free(c.R), free(c.arg), free(ref), free(din);
	}
}

struct flat_ctx {
	size_t B, n;
	float *in, *out, *R;
};

static double flat_loss(void *vctx, uint64_t *sig)
{
	struct flat_ctx *c = vctx;

	nn_flatten_forward(c->out, c->in, c->B, c->n);
	*sig = 0;
	return dot_d(c->out, c->R, c->B * c->n);
}

static void test_flatten_gradcheck(void **state)
{
	struct flat_ctx c = {3, 10, rand_vec(30, -1, 1), zeros(30), rand_vec(30, -1, 1)};
	float *din = zeros(30);
	uint64_t sig;

	(void)state;
	flat_loss(&c, &sig);
	assert_memory_equal(c.out, c.in, 30 * sizeof(float));
	nn_flatten_backward(din, c.R, 3, 10);
	struct gc_tensor t[] = {{"in", c.in, 30, din}};

	gradcheck("flatten", flat_loss, &c, t, 1, LAYER_GC);
	free(c.in), free(c.out), free(c.R), free(din);
}

struct drop_ctx {
	size_t n;
	float p;
	struct macc_rng rng0;
	float *in, *out, *mask, *R;
};

static double drop_loss(void *vctx, uint64_t *sig)
{
	struct drop_ctx *c = vctx;
	struct macc_rng r = c->rng0; /* the same mask every evaluation */

	nn_dropout_forward(c->out, c->mask, c->in, c->n, c->p, &r);
	*sig = 0;
	return dot_d(c->out, c->R, c->n);
}

static void test_dropout_mask_and_gradcheck(void **state)
{
	size_t n = 4000;
	struct drop_ctx c = {n, 0.25f, {{0}}, rand_vec(n, -1, 1), zeros(n), zeros(n),
			     rand_vec(n, -1, 1)};
	float *din = zeros(n);
	uint64_t sig;
	size_t kept = 0;

	(void)state;
	macc_rng_seed(&c.rng0, 5, MACC_STREAM_DROPOUT);
	drop_loss(&c, &sig);
	for (size_t i = 0; i < n; i++) {
		assert_true(c.mask[i] == 0.0f || c.mask[i] == 1.0f / 0.75f);
		kept += c.mask[i] != 0.0f;
		assert_true(c.out[i] == c.in[i] * c.mask[i]);
	}
	/* 3000 expected, sd ~27 */
	assert_in_range(kept, 2850, 3150);
	nn_dropout_backward(din, c.R, c.mask, n);
	struct gc_tensor t[] = {{"in", c.in, n, din}};

	gradcheck("dropout", drop_loss, &c, t, 1, LAYER_GC);
	/* p = 0 or no rng: identity */
	nn_dropout_forward(c.out, c.mask, c.in, n, 0.5f, NULL);
	assert_memory_equal(c.out, c.in, n * sizeof(float));
	free(c.in), free(c.out), free(c.mask), free(c.R), free(din);
}

/* ---- softmax cross-entropy ---- */

struct ce_ctx {
	size_t B, C;
	float *z;
	int32_t *y;
};

static double ce_loss(void *vctx, uint64_t *sig)
{
	struct ce_ctx *c = vctx;

	*sig = 0;
	return nn_softmax_ce(NULL, c->z, c->y, c->B, c->C, NULL);
}

static void test_softmax_ce_value_and_gradcheck(void **state)
{
	size_t B = 5, C = 7;
	struct ce_ctx c = {B, C, rand_vec(B * C, -3, 3), calloc(B, sizeof(int32_t))};
	float *dz = zeros(B * C);
	double want = 0.0;
	size_t correct, want_correct = 0;

	(void)state;
	for (size_t r = 0; r < B; r++) {
		c.y[r] = (int32_t)macc_rng_below(&trng, C);
		double s = 0.0;
		size_t am = 0;

		for (size_t j = 0; j < C; j++) {
			s += exp((double)c.z[r * C + j]);
			am = c.z[r * C + j] > c.z[r * C + am] ? j : am;
		}
		want += log(s) - (double)c.z[r * C + (size_t)c.y[r]];
		want_correct += am == (size_t)c.y[r];
	}
	want /= (double)B;
	float got = nn_softmax_ce(dz, c.z, c.y, B, C, &correct);

	assert_true(fabs((double)got - want) < 1e-5);
	assert_int_equal(correct, want_correct);
	/* each gradient row sums to zero */
	for (size_t r = 0; r < B; r++) {
		double s = 0.0;

		for (size_t j = 0; j < C; j++) {
			s += dz[r * C + j];
		}
		assert_true(fabs(s) < 1e-6);
	}
	struct gc_tensor t[] = {{"logits", c.z, B * C, dz}};

	gradcheck("softmax-ce", ce_loss, &c, t, 1,
		  (struct gc_opts){.skip_frac = 0.0, .bad_frac = 0.0, .floor = 0.05, .eps = EPS});
	/* huge logits stay finite */
	c.z[0] = 1e30f;
	assert_true(isfinite(nn_softmax_ce(dz, c.z, c.y, B, C, NULL)));
	free(c.z), free(c.y), free(dz);
}

/* ---- models ---- */

static struct macc_model *model(const char *spec, size_t max_batch)
{
	struct macc_model *m = NULL;
	struct macc_errmsg err = {{0}};
	int r = macc_model_create(spec, max_batch, &m, &err);

	if (r != 0) {
		print_error("%s: %s\n", spec, err.text);
	}
	assert_int_equal(r, 0);
	return m;
}

static void test_spec_errors(void **state)
{
	static const char *const bad[] = {
		"", "mlp", "mlp:", "mlp:784", "mlp:784-", "mlp:-10", "mlp:784--10", "mlp:784-0-10",
		"mlp:784-x-10", "mlp:784-10:sigmoid", "mlp:784-10:", "mlp:+784-10",
		"mlp:99999999999-10", "logreg:784-256-10", "logreg:784-10:tanh", "cnn:lenet6",
		"cnn:", "rnn:4-4", "mlp:4-4,dropout=1", "mlp:4-4,dropout=-0.1",
		/* below 1 as a double, 1 in the canonical spec and as a float (fuzz_modelspec) */
		"mlp:4-2-2-1-2-1,dropout=.9999999999992", "mlp:4-4,dropout=0.9999996",
		"mlp:4-4,dropout=abc", "mlp:4-4,dropout=", "mlp:4-4,foo=1", "mlp:4-4,",
		"mlp:1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1",
		"MLP:4-4", " mlp:4-4", "mlp:16777216-16777216-16777216",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct macc_model *m = (struct macc_model *)&trng;
		struct macc_errmsg err = {{0}};
		int r = macc_model_create(bad[i], 8, &m, &err);

		if (r != MACC_ESPEC) {
			print_error("spec '%s' gave %d\n", bad[i], r);
		}
		assert_int_equal(r, MACC_ESPEC);
		assert_true(strlen(err.text) > 10);
		assert_non_null(strstr(err.text, "spec"));
		assert_ptr_equal(m, (struct macc_model *)&trng); /* untouched on failure */
	}
	/* the message names the offending part */
	struct macc_errmsg err = {{0}};
	struct macc_model *m;

	assert_int_equal(macc_model_create("mlp:784-x9-10", 8, &m, &err), MACC_ESPEC);
	assert_non_null(strstr(err.text, "'x9'"));
	assert_int_equal(macc_model_create("mlp:4-4:sigmoid", 8, &m, &err), MACC_ESPEC);
	assert_non_null(strstr(err.text, "sigmoid"));
	assert_int_equal(macc_model_create(NULL, 8, &m, &err), MACC_ESPEC);
	assert_int_equal(macc_model_create("mlp:4-4", 0, &m, &err), -EINVAL);
	char longspec[600];

	memset(longspec, '1', sizeof(longspec) - 1);
	longspec[sizeof(longspec) - 1] = '\0';
	memcpy(longspec, "mlp:", 4);
	assert_int_equal(macc_model_create(longspec, 8, &m, &err), MACC_ESPEC);
}

static void test_known_models(void **state)
{
	static const struct {
		const char *spec, *canon;
		size_t nparams, in;
		uint32_t classes;
	} cases[] = {
		{"mlp:784-256-128-10", "mlp:784-256-128-10", 235146, 784, 10},
		{"mlp:0784-256-128-10:relu", "mlp:784-256-128-10", 235146, 784, 10},
		{"mlp:784-256-10:tanh", "mlp:784-256-10:tanh", 784 * 256 + 256 + 2570, 784, 10},
		{"logreg:784-10", "logreg:784-10", 7850, 784, 10},
		{"cnn:lenet5", "cnn:lenet5", 61706, 784, 10},
		{"cnn:cifar", "cnn:cifar", 156074, 3072, 10},
		{"mlp:4-8-3,dropout=0.50", "mlp:4-8-3,dropout=0.5", 67, 4, 3},
		{"mlp:4-8-3,dropout=0.99999949", "mlp:4-8-3,dropout=0.999999", 67, 4, 3},
		{"mlp:4-8-3,dropout=0.123456789", "mlp:4-8-3,dropout=0.123457", 67, 4, 3},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct macc_model *m = model(cases[i].spec, 4);

		assert_string_equal(macc_model_spec(m), cases[i].canon);
		assert_int_equal(macc_model_nparams(m), cases[i].nparams);
		assert_int_equal(macc_model_input_dim(m), cases[i].in);
		assert_int_equal(macc_model_nclasses(m), cases[i].classes);
		assert_int_equal(macc_model_max_batch(m), 4);
		/* views tile the block in order, without gaps */
		size_t off = 0;

		for (size_t v = 0; v < macc_model_nviews(m); v++) {
			const struct macc_param_view *pv = macc_model_view(m, v);

			assert_int_equal(pv->offset, off);
			assert_true(pv->count > 0);
			off += pv->count;
		}
		assert_int_equal(off, cases[i].nparams);
		assert_null(macc_model_view(m, macc_model_nviews(m)));
		macc_model_destroy(m);
	}
	struct macc_model *m = model("cnn:lenet5", 1);

	assert_int_equal(macc_model_nviews(m), 10);
	assert_string_equal(macc_model_view(m, 0)->name, "conv1.w");
	assert_int_equal(macc_model_view(m, 0)->count, 150);
	assert_string_equal(macc_model_view(m, 5)->name, "dense1.b");
	assert_int_equal(macc_model_view(m, 4)->count, 400 * 120);
	macc_model_destroy(m);
	macc_model_destroy(NULL);
}

static uint64_t fnv1a_ref(const char *s)
{
	uint64_t h = 14695981039346656037ull;

	while (*s) {
		h = (h ^ (uint8_t)*s++) * 1099511628211ull;
	}
	return h;
}

static void test_hash_stable(void **state)
{
	struct macc_model *a = model("mlp:784-256-128-10", 8);
	struct macc_model *b = model("mlp:784-256-128-10:relu", 64);
	struct macc_model *c = model("mlp:784-256-128-10:tanh", 8);
	struct macc_model *d = model("cnn:lenet5", 8);

	(void)state;
	/* Fixed values: they travel in the peer handshake, so they must never change. */
	assert_true(macc_model_hash(a) == fnv1a_ref("mlp:784-256-128-10/235146"));
	assert_true(macc_model_hash(a) == 0xaac0c7e983ab17bbull);
	assert_true(macc_model_hash(d) == fnv1a_ref("cnn:lenet5/61706"));
	assert_true(macc_model_hash(a) == macc_model_hash(b));
	assert_true(macc_model_hash(a) != macc_model_hash(c));
	assert_true(macc_model_hash(a) != macc_model_hash(d));
	macc_model_destroy(a);
	macc_model_destroy(b);
	macc_model_destroy(c);
	macc_model_destroy(d);
}

static void test_init_pytorch_bounds_and_reproducible(void **state)
{
	struct macc_model *m = model("cnn:lenet5", 2);
	size_t n = macc_model_nparams(m);
	float *p = zeros(n), *q = zeros(n), *r = zeros(n);
	/* fan_in per view pair: conv1 25, conv2 150, dense 400, 120, 84 */
	static const double fan[] = {25, 25, 150, 150, 400, 400, 120, 120, 84, 84};

	(void)state;
	macc_model_init_params(m, p, 7);
	macc_model_init_params(m, q, 7);
	macc_model_init_params(m, r, 8);
	assert_memory_equal(p, q, n * sizeof(float));
	assert_memory_not_equal(p, r, n * sizeof(float));
	for (size_t v = 0; v < macc_model_nviews(m); v++) {
		const struct macc_param_view *pv = macc_model_view(m, v);
		double bound = 1.0 / sqrt(fan[v]), s = 0.0, s2 = 0.0;
		float mx = 0.0f; /* in float: see assert_close() on aarch64 GCC 12.2 */

		for (size_t j = 0; j < pv->count; j++) {
			double x = p[pv->offset + j];

			s += x;
			s2 += x * x;
			mx = fmaxf(mx, fabsf(p[pv->offset + j]));
		}
		assert_true(mx <= bound);
		if (pv->count >= 1000) {
			/* U(-b, b): mean 0, variance b^2 / 3, max close to b */
			double mean = s / (double)pv->count, var = s2 / (double)pv->count;

			assert_true(fabs(mean) < 0.05 * bound);
			assert_true(fabs(var / (bound * bound / 3.0) - 1.0) < 0.1);
			assert_true(mx > 0.99 * bound);
		}
	}
	free(p), free(q), free(r);
	macc_model_destroy(m);
}

struct model_ctx {
	struct macc_model *m;
	float *params, *x, *t;
	int32_t *y;
	size_t B;
	float wd;
};

/* Mean loss plus the weight-decay term whose gradient is wd * params. The cross-entropy is
 * taken in double from the predicted logits: the float loss of nn_softmax_ce is quantised to
 * ~2e-7, too coarse for differences of a 2.3 loss over 2e-3. */
static double model_loss(void *vctx, uint64_t *sig)
{
	struct model_ctx *c = vctx;
	size_t n = macc_model_nparams(c->m), C = macc_model_nclasses(c->m);
	float *z = zeros(c->B * C);
	double loss = 0.0;

	macc_model_predict(c->m, c->params, c->x, c->B, z);
	for (size_t r = 0; r < c->B; r++) {
		double s = 0.0;

		for (size_t j = 0; j < C; j++) {
			s += exp((double)z[r * C + j]);
		}
		loss += log(s) - (double)z[r * C + (size_t)c->y[r]];
	}
	free(z);
	*sig = 0;
	return loss / (double)c->B + 0.5 * (double)c->wd * dot_d(c->params, c->params, n);
}

/*
 * Whole-model gradient against finite differences of macc_model_evaluate's loss, every view.
 * The model's ReLUs and pools are not visible here, so for ReLU models a small fraction of
 * coordinates may land on a kink (bad_frac); the tanh MLP is smooth and must match everywhere.
 */
static void check_model_grad(const char *spec, size_t B, float wd, struct gc_opts o)
{
	struct model_ctx c = {.m = model(spec, B), .B = B, .wd = wd};
	size_t n = macc_model_nparams(c.m), in = macc_model_input_dim(c.m);
	size_t nv = macc_model_nviews(c.m);
	float *g = zeros(n), *g0 = zeros(n);
	struct gc_tensor *t = calloc(nv, sizeof(*t));
	double loss, acc;

	assert_non_null(t);
	c.params = zeros(n);
	macc_model_init_params(c.m, c.params, 3);
	c.x = rand_vec(B * in, 0, 1);
	c.y = calloc(B, sizeof(int32_t));
	for (size_t i = 0; i < B; i++) {
		c.y[i] = (int32_t)macc_rng_below(&trng, macc_model_nclasses(c.m));
	}
	float l = macc_model_train_batch(c.m, c.params, g, c.x, c.y, B, wd, NULL);

	macc_model_evaluate(c.m, c.params, c.x, c.y, B, &loss, &acc);
	assert_true(fabs((double)l - loss) < 1e-5);
	/* weight decay adds exactly wd * params */
	macc_model_train_batch(c.m, c.params, g0, c.x, c.y, B, 0.0f, NULL);
	for (size_t i = 0; i < n; i++) {
		assert_true(fabs((double)g[i] - (double)g0[i] - (double)wd * c.params[i]) < 1e-6);
	}
	for (size_t v = 0; v < nv; v++) {
		const struct macc_param_view *pv = macc_model_view(c.m, v);

		t[v] = (struct gc_tensor){pv->name, c.params + pv->offset, pv->count,
					  g + pv->offset};
	}
	gradcheck(spec, model_loss, &c, t, nv, o);
	free(g), free(g0), free(t), free(c.params), free(c.x), free(c.y);
	macc_model_destroy(c.m);
}

static void test_model_gradients(void **state)
{
	(void)state;
	/* smooth models: every coordinate */
	const struct gc_opts smooth = {.floor = 0.02, .eps = EPS};
	/* ReLU/max-pool models: the loss is ~2.3 in float, so L(+-eps) carry ~2e-7 rounding
	 * and a smooth second difference stays below ~1e-6; above 4e-6 a kink lies within
	 * +-eps and the coordinate is skipped. */
	const struct gc_opts kinked = {.skip_frac = 0.25, .bad_frac = 0.02, .floor = 0.02,
				       .eps = EPS, .kink = 1e-7};

	check_model_grad("mlp:12-9-7-4:tanh", 5, 0.01f, smooth);
	check_model_grad("logreg:6-3", 4, 0.1f, smooth);
	check_model_grad("mlp:10-8-6-3", 6, 0.0f, kinked);
	check_model_grad("cnn:lenet5", 2, 0.001f, kinked);
	check_model_grad("cnn:cifar", 2, 0.0f, kinked);
}

/* Batches smaller than max_batch, chunked evaluation and predict agree with one big batch. */
static void test_evaluate_predict_chunks(void **state)
{
	struct macc_model *small = model("cnn:lenet5", 3), *big = model("cnn:lenet5", 10);
	size_t n = 10, in = 784, np = macc_model_nparams(small);
	float *p = zeros(np), *x = rand_vec(n * in, 0, 1), *o1 = zeros(n * 10), *o2 = zeros(n * 10);
	int32_t y[10];
	double l1, a1, l2, a2;

	(void)state;
	for (size_t i = 0; i < n; i++) {
		y[i] = (int32_t)(i % 10);
	}
	macc_model_init_params(small, p, 11);
	macc_model_predict(small, p, x, n, o1);
	macc_model_predict(big, p, x, n, o2);
	assert_close("predict chunks", o1, o2, n * 10, 1e-5);
	macc_model_evaluate(small, p, x, y, n, &l1, &a1);
	macc_model_evaluate(big, p, x, y, n, &l2, &a2);
	assert_true(fabs(l1 - l2) < 1e-5);
	assert_true(a1 == a2);
	size_t correct = 0;

	for (size_t i = 0; i < n; i++) {
		size_t am = 0;

		for (size_t j = 1; j < 10; j++) {
			am = o1[i * 10 + j] > o1[i * 10 + am] ? j : am;
		}
		correct += am == (size_t)y[i];
	}
	assert_true(fabs(a1 - (double)correct / (double)n) < 1e-12);
	free(p), free(x), free(o1), free(o2);
	macc_model_destroy(small);
	macc_model_destroy(big);
}

/* Two Gaussian-free, linearly separable clusters with a margin; a tiny model must fit them. */
static void learn_separable(const char *spec, size_t dim, double want_acc)
{
	const size_t n = 256, B = 32;
	struct macc_model *m = model(spec, B);
	size_t np = macc_model_nparams(m);
	float *x = zeros(n * dim), *p = zeros(np), *v = zeros(np), *g = zeros(np);
	int32_t *y = calloc(n, sizeof(int32_t));
	double loss0, loss, acc;

	assert_non_null(y);
	for (size_t i = 0; i < n; i++) {
		y[i] = (int32_t)(i % 2);
		for (size_t d = 0; d < dim; d++) {
			x[i * dim + d] = (float)macc_rng_uniform(&trng) * 0.5f;
		}
		/* class 1 is bright in the first half of the features, class 0 in the second */
		for (size_t d = y[i] ? 0 : dim / 2; d < (y[i] ? dim / 2 : dim); d++) {
			x[i * dim + d] += 0.5f;
		}
	}
	macc_model_init_params(m, p, 1);
	macc_model_evaluate(m, p, x, y, n, &loss0, &acc);
	for (int step = 0; step < 150; step++) {
		size_t off = (size_t)(step % (int)(n / B)) * B;

		macc_model_train_batch(m, p, g, x + off * dim, y + off, B, 1e-4f, NULL);
		macc_sgd_step(np, p, v, g, 0.05f, 0.9f, false);
	}
	macc_model_evaluate(m, p, x, y, n, &loss, &acc);
	if (acc < want_acc || !(loss < 0.5 * loss0)) {
		print_error("%s: accuracy %g, loss %g -> %g\n", spec, acc, loss0, loss);
		fail();
	}
	free(x), free(p), free(v), free(g), free(y);
	macc_model_destroy(m);
}

static void test_tiny_models_learn(void **state)
{
	(void)state;
	learn_separable("logreg:8-2", 8, 1.0);
	learn_separable("mlp:8-16-2", 8, 1.0);
	learn_separable("mlp:8-16-2:tanh", 8, 1.0);
	learn_separable("mlp:8-16-16-2,dropout=0.2", 8, 1.0);
	learn_separable("cnn:lenet5", 784, 1.0);
}

static void test_dropout_model(void **state)
{
	struct macc_model *m = model("mlp:6-32-3,dropout=0.5", 4);
	size_t np = macc_model_nparams(m);
	float *p = zeros(np), *g1 = zeros(np), *g2 = zeros(np), *g3 = zeros(np);
	float *x = rand_vec(4 * 6, 0, 1);
	int32_t y[4] = {0, 1, 2, 0};
	struct macc_rng r1, r2;

	(void)state;
	macc_model_init_params(m, p, 2);
	macc_rng_seed(&r1, 9, MACC_STREAM_DROPOUT);
	r2 = r1;
	macc_model_train_batch(m, p, g1, x, y, 4, 0.0f, &r1);
	macc_model_train_batch(m, p, g2, x, y, 4, 0.0f, &r2);
	assert_memory_equal(g1, g2, np * sizeof(float)); /* same rng, same mask */
	macc_model_train_batch(m, p, g2, x, y, 4, 0.0f, &r2);
	assert_memory_not_equal(g1, g2, np * sizeof(float));
	/* without an rng dropout is off: equals the model without dropout */
	struct macc_model *plain = model("mlp:6-32-3", 4);

	assert_int_equal(macc_model_nparams(plain), np);
	macc_model_train_batch(m, p, g1, x, y, 4, 0.0f, NULL);
	macc_model_train_batch(plain, p, g3, x, y, 4, 0.0f, NULL);
	assert_memory_equal(g1, g3, np * sizeof(float));
	assert_true(macc_model_hash(m) != macc_model_hash(plain));
	free(p), free(g1), free(g2), free(g3), free(x);
	macc_model_destroy(m);
	macc_model_destroy(plain);
}

/* ---- strided convolution, general pools, new activations, MSE ---- */

static void test_conv_stride_matches_oracle_and_gradcheck(void **state)
{
	(void)state;
	check_conv_s(2, 2, 7, 7, 3, 3, 1, 2, NN_ACT_RELU);
	check_conv_s(1, 1, 8, 6, 2, 2, 0, 2, NN_ACT_NONE);
	check_conv_s(2, 3, 9, 9, 4, 3, 2, 3, NN_ACT_TANH);
}

/* NCHW pooling from the definition: max (or mean) over each window. */
static void naive_pool(float *out, const float *in, const struct nn_pool_shape *s, size_t B,
		       bool avg)
{
	for (size_t pl = 0; pl < B * s->c; pl++) {
		for (size_t oy = 0; oy < s->oh; oy++) {
			for (size_t ox = 0; ox < s->ow; ox++) {
				double m = -INFINITY, sum = 0.0;

				for (size_t ky = 0; ky < s->kh; ky++) {
					for (size_t kx = 0; kx < s->kw; kx++) {
						double v = in[(pl * s->h + oy * s->stride + ky) *
							      s->w + ox * s->stride + kx];

						m = v > m ? v : m;
						sum += v;
					}
				}
				out[(pl * s->oh + oy) * s->ow + ox] =
					(float)(avg ? sum / (double)(s->kh * s->kw) : m);
			}
		}
	}
}

struct gpool_ctx {
	struct nn_pool_shape s;
	size_t B;
	bool avg;
	float *in, *out, *R;
	uint32_t *arg;
};

static double gpool_loss(void *vctx, uint64_t *sig)
{
	struct gpool_ctx *c = vctx;
	size_t n = c->B * c->s.c * c->s.oh * c->s.ow;
	uint64_t h = 0xcbf29ce484222325ull;

	if (c->avg) {
		nn_avgpool_forward(c->out, c->in, &c->s, c->B);
	} else {
		nn_maxpool_forward(c->out, c->arg, c->in, &c->s, c->B);
		for (size_t i = 0; i < n; i++) {
			h = (h ^ c->arg[i]) * 0x100000001b3ull;
		}
	}
	*sig = h;
	return dot_d(c->out, c->R, n);
}

static void check_pool(size_t B, size_t ch, size_t h, size_t w, size_t k, size_t stride,
		       bool avg)
{
	struct gpool_ctx c = {.s = {.c = ch, .h = h, .w = w, .kh = k, .kw = k, .stride = stride},
			      .B = B, .avg = avg};
	char what[64];

	assert_int_equal(nn_pool_shape_finish(&c.s), 0);
	size_t nin = B * ch * h * w, nout = B * ch * c.s.oh * c.s.ow;

	c.in = rand_vec(nin, -1, 1);
	c.out = zeros(nout);
	c.R = rand_vec(nout, -1, 1);
	c.arg = calloc(nout, sizeof(uint32_t));
	float *ref = zeros(nout), *din = zeros(nin);
	uint64_t sig;

	snprintf(what, sizeof(what), "%s B%zu c%zu %zux%zu k%zu s%zu", avg ? "avgpool" : "maxpool",
		 B, ch, h, w, k, stride);
	gpool_loss(&c, &sig);
	naive_pool(ref, c.in, &c.s, B, avg);
	assert_close(what, c.out, ref, nout, 1e-6);
	if (avg) {
		nn_avgpool_backward(din, c.R, &c.s, B);
	} else {
		nn_maxpool_backward(din, c.R, c.arg, &c.s, B);
	}
	struct gc_tensor t[] = {{"in", c.in, nin, din}};

	gradcheck(what, gpool_loss, &c, t, 1, LAYER_GC);
	free(c.in), free(c.out), free(c.R), free(c.arg), free(ref), free(din);
}

static void test_pools_match_oracle_and_gradcheck(void **state)
{
	(void)state;
	check_pool(2, 3, 7, 7, 3, 2, false); /* overlapping windows */
	check_pool(2, 2, 6, 5, 2, 2, false); /* the 2x2 case on the general kernel */
	check_pool(1, 2, 9, 9, 3, 3, false);
	check_pool(2, 3, 7, 7, 3, 2, true);
	check_pool(2, 2, 6, 5, 2, 2, true);
	check_pool(1, 1, 4, 4, 4, 1, true); /* global average */
	/* the 2x2 stride-2 kernel and the general one agree exactly */
	struct nn_pool_shape s = {.c = 3, .h = 6, .w = 7, .kh = 2, .kw = 2, .stride = 2};
	float *in = rand_vec(2 * 3 * 6 * 7, -1, 1), *a = zeros(2 * 3 * 3 * 3);
	float *b = zeros(2 * 3 * 3 * 3);
	uint32_t aa[54], ab[54];

	assert_int_equal(nn_pool_shape_finish(&s), 0);
	nn_maxpool2_forward(a, aa, in, 2, 6, 7, 3);
	nn_maxpool_forward(b, ab, in, &s, 2);
	assert_memory_equal(a, b, 54 * sizeof(float));
	assert_memory_equal(aa, ab, sizeof(aa));
	free(in), free(a), free(b);
	/* wide rows (the vector path of the 2x2 kernel, then its scalar tail), with ties
	 * everywhere (ReLU outputs: many zeros; the first maximum must win) and NaN */
	s = (struct nn_pool_shape){.c = 2, .h = 4, .w = 23, .kh = 2, .kw = 2, .stride = 2};
	assert_int_equal(nn_pool_shape_finish(&s), 0);
	size_t nin = 3 * 2 * 4 * 23, nout = 3 * 2 * 2 * 11;

	in = rand_vec(nin, -1, 1);
	for (size_t i = 0; i < nin; i++) {
		in[i] = i % 3 == 0 ? 0.0f : in[i] > 0.0f ? in[i] : 0.0f;
	}
	in[5] = NAN;
	in[100] = INFINITY;
	a = zeros(nout);
	b = zeros(nout);
	uint32_t *xa = calloc(nout, sizeof(uint32_t)), *xb = calloc(nout, sizeof(uint32_t));

	nn_maxpool2_forward(a, xa, in, 3, 4, 23, 2);
	nn_maxpool_forward(b, xb, in, &s, 3);
	assert_memory_equal(a, b, nout * sizeof(float));
	assert_memory_equal(xa, xb, nout * sizeof(uint32_t));
	free(in), free(a), free(b), free(xa), free(xb);
}

enum act_id { ACT_LEAKY, ACT_SIGMOID, ACT_GELU };

struct act2_ctx {
	size_t n;
	enum act_id id;
	float alpha;
	float *in, *out, *R;
};

static double act2_loss(void *vctx, uint64_t *sig)
{
	struct act2_ctx *c = vctx;

	*sig = 0;
	if (c->id == ACT_LEAKY) {
		nn_leaky_relu_forward(c->out, c->in, c->n, c->alpha);
		*sig = hash_mask(c->out, c->n);
	} else if (c->id == ACT_SIGMOID) {
		nn_sigmoid_forward(c->out, c->in, c->n);
	} else {
		nn_gelu_forward(c->out, c->in, c->n);
	}
	return dot_d(c->out, c->R, c->n);
}

static void test_more_activations_gradcheck(void **state)
{
	static const char *const names[] = {"leakyrelu", "sigmoid", "gelu"};

	(void)state;
	for (int id = ACT_LEAKY; id <= ACT_GELU; id++) {
		size_t n = 64;
		struct act2_ctx c = {n, (enum act_id)id, 0.1f, rand_vec(n, -3, 3), zeros(n),
				     rand_vec(n, -1, 1)};
		float *din = zeros(n), *ref = zeros(n), *inplace = zeros(n);
		uint64_t sig;

		act2_loss(&c, &sig);
		for (size_t i = 0; i < n; i++) {
			double x = c.in[i];

			ref[i] = (float)(id == ACT_LEAKY ? (x > 0 ? x : 0.1 * x)
					 : id == ACT_SIGMOID ? 1.0 / (1.0 + exp(-x))
					 : 0.5 * x * (1.0 + erf(x / sqrt(2.0))));
		}
		assert_close(names[id], c.out, ref, n, 1e-6);
		memcpy(inplace, c.R, n * sizeof(float));
		if (id == ACT_LEAKY) {
			nn_leaky_relu_backward(din, c.R, c.out, n, c.alpha);
			nn_leaky_relu_backward(inplace, inplace, c.out, n, c.alpha);
		} else if (id == ACT_SIGMOID) {
			nn_sigmoid_backward(din, c.R, c.out, n);
			nn_sigmoid_backward(inplace, inplace, c.out, n);
		} else {
			nn_gelu_backward(din, c.R, c.in, n);
			nn_gelu_backward(inplace, inplace, c.in, n);
		}
		assert_memory_equal(din, inplace, n * sizeof(float));
		struct gc_tensor t[] = {{"in", c.in, n, din}};

		gradcheck(names[id], act2_loss, &c, t, 1, LAYER_GC);
		free(c.in), free(c.out), free(c.R), free(din), free(ref), free(inplace);
	}
}

struct mse_ctx {
	size_t B, T;
	float *p, *t;
};

static double mse_loss(void *vctx, uint64_t *sig)
{
	struct mse_ctx *c = vctx;
	double sse;

	*sig = 0;
	(void)nn_mse(NULL, c->p, c->t, c->B, c->T, &sse);
	return sse / (double)(c->B * c->T);
}

static void test_mse_value_and_gradcheck(void **state)
{
	size_t B = 5, T = 3;
	struct mse_ctx c = {B, T, rand_vec(B * T, -2, 2), rand_vec(B * T, -2, 2)};
	float *d = zeros(B * T);
	double want = 0.0, sse;

	(void)state;
	for (size_t i = 0; i < B * T; i++) {
		want += ((double)c.p[i] - c.t[i]) * ((double)c.p[i] - c.t[i]);
	}
	float got = nn_mse(d, c.p, c.t, B, T, &sse);

	assert_true(fabs(sse - want) < 1e-6 * want);
	assert_true(fabs((double)got - want / (double)(B * T)) < 1e-6);
	struct gc_tensor t[] = {{"pred", c.p, B * T, d}};

	gradcheck("mse", mse_loss, &c, t, 1,
		  (struct gc_opts){.skip_frac = 0.0, .bad_frac = 0.0, .floor = 0.05, .eps = EPS});
	free(c.p), free(c.t), free(d);
}

/* ---- layer-stack specs ---- */

/*
 * The named models of earlier releases against values recorded with main's build at
 * d7f3450, before models became layer stacks (seed 42 init, 3 steps of train_batch +
 * momentum SGD on fixed random data, batch 8, weight decay 1e-4, dropout rng (3, DROPOUT)).
 * Init digests and hashes hold on every machine; parameter digests after training hold for a
 * given BLAS kernel (OPENBLAS_CORETYPE), so they are checked for the kernels they were
 * recorded with (natively: not under valgrind, whose FMA rounding differs); the losses and
 * the parameters' L1 norm are checked on any kernel within float rounding.
 */
static const struct alias_ref {
	const char *spec;
	uint64_t hash, init, zen, prescott, sandybridge;
	float loss[3];
	double l1;
} alias_refs[] = {
	{"logreg:784-10", 0xfe67d924839ae02full, 0xc8cfd44540743de5ull, 0x9f853fdcf63424c8ull,
	 0xedd8d816077a82f4ull, 0x2bd539cde36b4f82ull, {2.3877244f, 1.82901752f, 1.20942223f},
	 148.2745206613763},
	{"mlp:784-10", 0x5dbcaa4926ff6f8eull, 0xc8cfd44540743de5ull, 0x9f853fdcf63424c8ull,
	 0xedd8d816077a82f4ull, 0x2bd539cde36b4f82ull, {2.3877244f, 1.82901752f, 1.20942223f},
	 148.2745206613763},
	{"mlp:784-256-128-10", 0xaac0c7e983ab17bbull, 0x0705e25a7a0da125ull,
	 0x4367ac9fdbb2c20eull, 0x5439c527cb75b650ull, 0xdea2e82ac5b5d7c8ull,
	 {2.28313541f, 2.25175619f, 2.20683932f}, 4683.0502116511161},
	{"mlp:12-9-7-4:tanh", 0x6c239090b1c4e52eull, 0xa606df086ea166c4ull,
	 0xd1cf7846a4149b55ull, 0x9abfa925cab66f12ull, 0x6729e0337be09833ull,
	 {1.39302087f, 1.39180005f, 1.38952994f}, 32.86131726615713},
	{"mlp:20-30-5,dropout=0.3", 0x0e51920d511df0b6ull, 0x7fd64611fbf5ed21ull,
	 0xf1a7f60a6cad804bull, 0xf35911c48e181de7ull, 0xeb1cf3e346175fbfull,
	 {1.59457719f, 1.52284336f, 1.55580771f}, 81.563213578658178},
	{"cnn:lenet5", 0x0bac560f6767db5eull, 0xcf2455e9a329aebeull, 0xe6ac17d787111753ull,
	 0xcbabab5c64171220ull, 0xd4b7f2ccff693789ull, {2.31921911f, 2.31683493f, 2.31251884f},
	 1834.0729291781204},
	{"cnn:cifar", 0x7399c693872af185ull, 0xb6862775b48c2f92ull, 0xa5c270772f00664bull,
	 0xa6ce8e2ffca5c460ull, 0xb4983ac69ddef97full, {2.30946589f, 2.30650401f, 2.30125403f},
	 2892.0014303114422},
};

char *openblas_get_corename(void);

/* The run the reference values were recorded with; returns the final parameter digest. */
static uint64_t alias_run(const char *spec, uint64_t *ret_init, float loss[3], double *ret_l1)
{
	struct macc_model *m = model(spec, 8);
	size_t np = macc_model_nparams(m), in = macc_model_input_dim(m);
	uint32_t C = macc_model_nclasses(m);
	float *p = zeros(np), *v = zeros(np), *g = zeros(np), *x = zeros(8 * in);
	int32_t y[8];
	struct macc_rng r, dr;
	double l1 = 0.0;
	uint64_t d;

	macc_rng_seed(&r, 7, 0);
	for (size_t i = 0; i < 8 * in; i++) {
		x[i] = (float)macc_rng_uniform(&r);
	}
	for (int i = 0; i < 8; i++) {
		y[i] = (int32_t)((uint32_t)(i * 3) % C);
	}
	macc_model_init_params(m, p, 42);
	*ret_init = macc_params_digest(p, np);
	macc_rng_seed(&dr, 3, MACC_STREAM_DROPOUT);
	for (int k = 0; k < 3; k++) {
		loss[k] = macc_model_train_batch(m, p, g, x, y, 8, 1e-4f, &dr);
		macc_sgd_step(np, p, v, g, 0.05f, 0.9f, false);
	}
	for (size_t i = 0; i < np; i++) {
		l1 += fabs((double)p[i]);
	}
	*ret_l1 = l1;
	d = macc_params_digest(p, np);
	free(p), free(v), free(g), free(x);
	macc_model_destroy(m);
	return d;
}

static void test_aliases_match_recorded_runs(void **state)
{
	const char *core = openblas_get_corename();
	const char *preload = getenv("LD_PRELOAD");
	/* valgrind reports another CPU and does not round FMA bit for bit like the CPU */
	bool emulated = preload != NULL && strstr(preload, "vgpreload") != NULL;
	bool exact = false;

	(void)state;
	for (size_t i = 0; i < sizeof(alias_refs) / sizeof(alias_refs[0]); i++) {
		const struct alias_ref *a = &alias_refs[i];
		struct macc_model *m = model(a->spec, 8);
		uint64_t init, want = 0;
		float loss[3];
		double l1;

		assert_string_equal(macc_model_spec(m), a->spec);
		assert_true(macc_model_hash(m) == a->hash);
		macc_model_destroy(m);
		uint64_t d = alias_run(a->spec, &init, loss, &l1);

		assert_true(init == a->init);
		for (int k = 0; k < 3; k++) {
			if (fabsf(loss[k] - a->loss[k]) > 1e-5f * a->loss[k]) {
				print_error("%s: loss %d: %.9g, recorded %.9g\n", a->spec, k,
					    (double)loss[k], (double)a->loss[k]);
				fail();
			}
		}
		assert_true(fabs(l1 - a->l1) < 1e-5 * a->l1);
		if (strcasecmp(core, "Zen") == 0 || strcasecmp(core, "Haswell") == 0) {
			want = a->zen;
		} else if (strcasecmp(core, "Prescott") == 0) {
			want = a->prescott;
		} else if (strcasecmp(core, "Sandybridge") == 0) {
			want = a->sandybridge;
		}
		if (want != 0 && !emulated) {
			exact = true;
			if (d != want) {
				print_error("%s: digest %016llx, recorded %016llx (kernel %s)\n",
					    a->spec, (unsigned long long)d,
					    (unsigned long long)want, core);
				fail();
			}
		}
	}
	if (!exact) {
		printf("# BLAS kernel %s%s: no recorded digests, losses and norms checked only\n",
		       core, emulated ? " under valgrind" : "");
	}
}

/* A stack written out in full is the alias: same canonical name, hash and numbers. */
static void test_stack_equals_alias(void **state)
{
	static const char *const pairs[][2] = {
		{"input:1x28x28,conv:6:5:pad=2,relu,maxpool:2,conv:16:5x5,relu,maxpool:2:stride=2,"
		 "flatten,dense:120,relu,dense:84,relu,dense:10", "cnn:lenet5"},
		{"input:1x28x28 conv:6:5:pad=2 relu maxpool:2 conv:16:5 relu maxpool:2 flatten "
		 "dense:120 relu dropout:0.25 dense:84 relu dropout:0.25 dense:10 loss:ce",
		 "cnn:lenet5,dropout=0.25"},
		{"input:3x32x32,conv:16:3:pad=1,relu,maxpool:2,conv:32:3:pad=1,relu,maxpool:2,"
		 "conv:64:3:pad=1,relu,maxpool:2,flatten,dense:128,relu,dense:10", "cnn:cifar"},
		{"input:784,dense:256,relu,dense:128,relu,dense:10,loss:ce", "mlp:784-256-128-10"},
		{"input:12,dense:9,tanh,dense:7,tanh,dense:4", "mlp:12-9-7-4:tanh"},
		{"input:20,dense:30,relu,dropout:0.3,dense:5", "mlp:20-30-5,dropout=0.3"},
		{"input:784,dense:10", "logreg:784-10"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		struct macc_model *a = model(pairs[i][0], 4), *b = model(pairs[i][1], 4);
		size_t np = macc_model_nparams(a);
		float *pa = zeros(np), *pb = zeros(np);

		assert_string_equal(macc_model_spec(a), macc_model_spec(b));
		assert_true(macc_model_hash(a) == macc_model_hash(b));
		assert_int_equal(np, macc_model_nparams(b));
		assert_int_equal(macc_model_nviews(a), macc_model_nviews(b));
		for (size_t v = 0; v < macc_model_nviews(a); v++) {
			assert_string_equal(macc_model_view(a, v)->name, macc_model_view(b, v)->name);
		}
		macc_model_init_params(a, pa, 5);
		macc_model_init_params(b, pb, 5);
		assert_memory_equal(pa, pb, np * sizeof(float));
		free(pa), free(pb);
		macc_model_destroy(a);
		macc_model_destroy(b);
	}
}

static void test_stack_specs(void **state)
{
	static const struct {
		const char *spec, *canon;
		size_t nparams, in, out, nlayers;
	} cases[] = {
		{"input:8,dense:16,gelu,dense:16,leakyrelu,dense:3",
		 "input:8,dense:16,gelu,dense:16,leakyrelu:0.01,dense:3,loss:ce",
		 8 * 16 + 16 + 16 * 16 + 16 + 16 * 3 + 3, 8, 3, 5},
		{"input:8\tdense:4  sigmoid,,dense:2,loss:mse",
		 "input:8,dense:4,sigmoid,dense:2,loss:mse", 8 * 4 + 4 + 4 * 2 + 2, 8, 2, 3},
		{"input:3x32x32,conv:8:3:stride=2:pad=1,relu,avgpool:2,conv:8:3x1,tanh,"
		 "maxpool:3:stride=2,flatten,dense:10",
		 "input:3x32x32,conv:8:3:stride=2:pad=1,relu,avgpool:2,conv:8:3x1,tanh,"
		 "maxpool:3:stride=2,flatten,dense:10,loss:ce",
		 8 * 27 + 8 + 8 * 8 * 3 + 8 + 8 * 2 * 3 * 10 + 10, 3072, 10, 8},
		{"input:1x4x4,flatten,dense:1,loss:mse", "input:1x4x4,flatten,dense:1,loss:mse", 17,
		 16, 1, 2},
		{"input:6,dense:2,dropout:0.50,leakyrelu:0.2",
		 "input:6,dense:2,dropout:0.5,leakyrelu:0.2,loss:ce", 14, 6, 2, 3},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct macc_model *m = model(cases[i].spec, 4), *again;

		assert_string_equal(macc_model_spec(m), cases[i].canon);
		assert_int_equal(macc_model_nparams(m), cases[i].nparams);
		assert_int_equal(macc_model_input_dim(m), cases[i].in);
		assert_int_equal(macc_model_nclasses(m), cases[i].out);
		assert_int_equal(macc_model_nlayers(m), cases[i].nlayers);
		again = model(macc_model_spec(m), 4);
		assert_true(macc_model_hash(again) == macc_model_hash(m));
		macc_model_destroy(again);
		macc_model_destroy(m);
	}
	/* the layer list: shapes and parameter offsets an exporter needs */
	struct macc_model *m = model("input:3x8x8,conv:4:3:stride=2:pad=1,relu,maxpool:2,"
				     "flatten,dense:5,loss:mse", 2);
	const struct macc_layer *l = macc_model_layer(m, 0);

	assert_int_equal(macc_model_loss(m), MACC_LOSS_MSE);
	assert_false(macc_model_input_shape(m).flat);
	assert_int_equal(l->kind, MACC_LAYER_CONV);
	assert_true(l->in.c == 3 && l->in.h == 8 && l->out.c == 4 && l->out.h == 4 &&
		    l->out.w == 4 && l->stride == 2 && l->pad == 1 && l->kh == 3);
	assert_true(l->w_off == 0 && l->w_count == 4 * 3 * 9 && l->b_off == 108 &&
		    l->b_count == 4);
	assert_int_equal(macc_model_layer(m, 1)->kind, MACC_LAYER_RELU);
	l = macc_model_layer(m, 2);
	assert_true(l->kind == MACC_LAYER_MAXPOOL && l->out.h == 2 && l->stride == 2);
	l = macc_model_layer(m, 3);
	assert_true(l->kind == MACC_LAYER_FLATTEN && l->out.flat && l->out.c == 16);
	l = macc_model_layer(m, 4);
	assert_true(l->kind == MACC_LAYER_DENSE && l->w_off == 112 && l->w_count == 80 &&
		    l->b_off == 192 && l->b_count == 5);
	assert_null(macc_model_layer(m, 5));
	macc_model_destroy(m);
}

static void test_stack_spec_errors(void **state)
{
	static const struct {
		const char *spec, *want;
	} bad[] = {
		{"input:784", "no layer with parameters"},
		{"input:1x28x28,dense:10", "needs a flat input, got 1x28x28: add flatten"},
		{"input:784,conv:6:5", "needs an image input"},
		{"input:1x4x4,conv:2:5", "larger than the padded input"},
		{"input:1x4x4,maxpool:5", "window larger than the input"},
		{"input:8,dense:4,softmax", "unknown layer"},
		{"input:8,dense:0", "dense:N"},
		{"input:8,dense:2,loss:ce,relu", "nothing may follow the loss"},
		{"input:8,dense:2,loss:hinge", "loss:ce"},
		{"input:8,dense:1", "at least 2 outputs"},
		{"input:1x4x4,conv:2:3", "output must be flat"},
		{"input:8,dense:2,dropout:1", "dropout:P"},
		{"input:8,dense:2,dropout:0.9999996", "rounds to 1"},
		{"input:8,dense:2,leakyrelu:2", "slope"},
		{"input:8,relu:3,dense:2", "takes no argument"},
		{"input:8,input:8,dense:2", "input may only come first"},
		{"dense:8", "unknown model"},
		{"input:0,dense:2", "input:N"},
		{"input:2x2,dense:2", "input:N"},
		{"input:8,conv:1:1:stride=0", "needs an image"},
		{"input:1x8x8,conv:1:1:stride=0", "stride=S"},
		{"input:1x8x8,conv:1:1:bogus=1", "stride=S"},
		{"input:16777216,dense:16777216,dense:2", "parameters"},
		{"@/nonexistent/macc-model.txt", "cannot open"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct macc_model *m = (struct macc_model *)&trng;
		struct macc_errmsg err = {{0}};
		int r = macc_model_create(bad[i].spec, 4, &m, &err);

		if (r >= 0 || strstr(err.text, bad[i].want) == NULL) {
			print_error("spec '%s': %d '%s', want '%s'\n", bad[i].spec, r, err.text,
				    bad[i].want);
			fail();
		}
		assert_ptr_equal(m, (struct macc_model *)&trng);
	}
}

static void test_model_file(void **state)
{
	char path[] = "/tmp/macc-test-model-XXXXXX";
	int fd = mkstemp(path);
	static const char text[] = "# a custom CNN, one layer per line\n"
				   "input:1x28x28\n"
				   "conv:6:5:pad=2   # 6 filters\n"
				   "relu, maxpool:2\n\n"
				   "conv:16:5\nrelu\nmaxpool:2\nflatten\n"
				   "dense:120\nrelu\ndense:84\nrelu\ndense:10\n";
	char spec[64];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	snprintf(spec, sizeof(spec), "@%s", path);
	struct macc_model *m = model(spec, 2);

	assert_string_equal(macc_model_spec(m), "cnn:lenet5");
	macc_model_destroy(m);
	unlink(path);
}

/* Regression through the whole model: gradients by finite differences and a fit. */
static double mse_model_loss(void *vctx, uint64_t *sig)
{
	struct model_ctx *c = vctx;
	size_t T = macc_model_nclasses(c->m);
	float *z = zeros(c->B * T);
	double sse = 0.0;

	macc_model_predict(c->m, c->params, c->x, c->B, z);
	for (size_t i = 0; i < c->B * T; i++) {
		sse += ((double)z[i] - c->t[i]) * ((double)z[i] - c->t[i]);
	}
	free(z);
	*sig = 0;
	return sse / (double)(c->B * T);
}

static void test_regression_model(void **state)
{
	const char *spec = "input:5,dense:8,gelu,dense:6,sigmoid,dense:4,tanh,dense:2,loss:mse";
	struct model_ctx c = {.m = model(spec, 6), .B = 6};
	size_t n = macc_model_nparams(c.m), nv = macc_model_nviews(c.m);
	float *g = zeros(n);
	struct gc_tensor *t = calloc(nv, sizeof(*t));
	double loss, rmse;

	(void)state;
	c.params = zeros(n);
	macc_model_init_params(c.m, c.params, 3);
	c.x = rand_vec(6 * 5, -1, 1);
	c.t = rand_vec(6 * 2, -1, 1);
	float l = macc_model_train_batch_t(c.m, c.params, g, c.x, NULL, c.t, 6, 0.0f, NULL);

	macc_model_evaluate_t(c.m, c.params, c.x, NULL, c.t, 6, &loss, &rmse);
	assert_true(fabs((double)l - loss) < 1e-6);
	assert_true(fabs(rmse - sqrt(loss)) < 1e-12);
	for (size_t v = 0; v < nv; v++) {
		const struct macc_param_view *pv = macc_model_view(c.m, v);

		t[v] = (struct gc_tensor){pv->name, c.params + pv->offset, pv->count,
					  g + pv->offset};
	}
	gradcheck(spec, mse_model_loss, &c, t, nv,
		  (struct gc_opts){.floor = 0.02, .eps = EPS});
	free(g), free(t), free(c.params), free(c.x), free(c.t);
	macc_model_destroy(c.m);
}

/* A custom CNN with every new layer kind, gradient-checked as a whole. */
static void test_custom_stack_gradients(void **state)
{
	const struct gc_opts kinked = {.skip_frac = 0.25, .bad_frac = 0.02, .floor = 0.02,
				       .eps = EPS, .kink = 1e-7};

	(void)state;
	check_model_grad("input:2x13x13,conv:3:3:stride=2:pad=1,leakyrelu:0.1,avgpool:2,"
			 "conv:4:2x1,gelu,maxpool:2:stride=1,flatten,dense:6,sigmoid,dense:3", 3,
			 0.001f, kinked);
	check_model_grad("input:7,dense:6,gelu,dense:5,sigmoid,dense:4", 4, 0.0f,
			 (struct gc_opts){.floor = 0.02, .eps = EPS});
	/* ReLU and tanh that do not follow a dense or conv layer run as layers of their own */
	check_model_grad("input:2x6x6,conv:3:3,maxpool:2,relu,flatten,tanh,dense:3", 3, 0.0f,
			 kinked);
	check_model_grad("input:5,tanh,dense:4,dropout:0.3,tanh,dense:3", 4, 0.0f,
			 (struct gc_opts){.floor = 0.02, .eps = EPS});
}

static void test_standardizer_in_model(void **state)
{
	struct macc_model *m = model("input:3,dense:4,relu,dense:2", 4);
	struct macc_model *plain = model("input:3,dense:4,relu,dense:2", 4);
	size_t np = macc_model_nparams(m);
	float *p = zeros(np), *x = rand_vec(4 * 3, -5, 5), *xs = zeros(4 * 3);
	float *o1 = zeros(4 * 2), *o2 = zeros(4 * 2);
	const float mean[3] = {1.0f, -2.0f, 0.5f}, inv[3] = {0.5f, 2.0f, 1.0f};
	const float *gm, *gi;
	const float bad[3] = {NAN, 0, 0};

	(void)state;
	macc_model_init_params(m, p, 1);
	assert_false(macc_model_standardizer(m, &gm, &gi));
	assert_int_equal(macc_model_set_standardizer(m, mean, inv), 0);
	assert_true(macc_model_standardizer(m, &gm, &gi));
	assert_memory_equal(gm, mean, sizeof(mean));
	assert_int_equal(macc_model_set_standardizer(m, bad, inv), -EINVAL);
	for (size_t i = 0; i < 12; i++) {
		xs[i] = (x[i] - mean[i % 3]) * inv[i % 3];
	}
	/* predicting raw x with the transform == predicting transformed x without it */
	macc_model_predict(m, p, x, 4, o1);
	macc_model_predict(plain, p, xs, 4, o2);
	assert_memory_equal(o1, o2, 8 * sizeof(float));
	assert_int_equal(macc_model_set_standardizer(m, NULL, NULL), 0);
	assert_false(macc_model_standardizer(m, &gm, &gi));
	free(p), free(x), free(xs), free(o1), free(o2);
	macc_model_destroy(m);
	macc_model_destroy(plain);
}

static void test_check_data(void **state)
{
	struct macc_model *cls = model("input:4,dense:3", 2);
	struct macc_model *reg = model("input:4,dense:2,loss:mse", 2);
	struct macc_model *img = model("input:1x2x2,flatten,dense:3", 2);
	int32_t lab = 0;
	struct macc_dataset d = {.n = 1, .dim = 4, .channels = 1, .height = 1, .width = 4,
				 .nclasses = 3, .y = &lab};
	struct macc_dataset te = d;
	struct macc_errmsg err = {{0}};

	(void)state;
	assert_int_equal(macc_model_check_data(cls, "M", &d, NULL, "D", &err), 0);
	assert_int_equal(macc_model_check_data(img, "M", &d, NULL, "D", &err), 0); /* flat data */
	te.nclasses = 2; /* a test split may lack the top class, not have more */
	assert_int_equal(macc_model_check_data(cls, "M", &d, &te, "D", &err), 0);
	te.nclasses = 4;
	assert_int_equal(macc_model_check_data(cls, "M", &d, &te, "D", &err), MACC_EMODEL);
	assert_non_null(strstr(err.text, "data 'D' (test split) has 4 classes"));
	d.nclasses = 5;
	assert_int_equal(macc_model_check_data(cls, "M", &d, NULL, "D", &err), MACC_EMODEL);
	assert_non_null(strstr(err.text, "model 'M' has 3 outputs but data 'D' has 5 classes"));
	assert_int_equal(macc_model_check_data(reg, "M", &d, NULL, "D", &err), MACC_EMODEL);
	assert_non_null(strstr(err.text, "regression model"));
	d.ntargets = 3;
	d.y = NULL;
	assert_int_equal(macc_model_check_data(reg, "M", &d, NULL, "D", &err), MACC_EMODEL);
	assert_non_null(strstr(err.text, "2 outputs but data 'D' has 3 regression targets"));
	assert_int_equal(macc_model_check_data(cls, "M", &d, NULL, "D", &err), MACC_EMODEL);
	assert_non_null(strstr(err.text, "classifier"));
	d.ntargets = 2;
	assert_int_equal(macc_model_check_data(reg, "M", &d, NULL, "D", &err), 0);
	d.dim = 5;
	assert_int_equal(macc_model_check_data(reg, "M", &d, NULL, "D", &err), MACC_EMODEL);
	assert_non_null(strstr(err.text, "takes 4 inputs per sample but data 'D' has 5"));
	d = (struct macc_dataset){.n = 1, .dim = 4, .channels = 4, .height = 1, .width = 1,
				  .nclasses = 3, .y = &lab};
	assert_int_equal(macc_model_check_data(img, "M", &d, NULL, "D", &err), MACC_EMODEL);
	assert_non_null(strstr(err.text, "takes 1x2x2 images but data 'D' has 4x1x1"));
	macc_model_destroy(cls);
	macc_model_destroy(reg);
	macc_model_destroy(img);
}

/* ---- optimiser and schedules ---- */

static void test_sgd_step_exact(void **state)
{
	/* dyadic values: every product and sum below is exact in float */
	float x[3] = {1.0f, -2.0f, 0.5f}, v[3] = {0.25f, 0.5f, -1.0f};
	const float g[3] = {2.0f, -4.0f, 0.0f};
	float xn[3], vn[3];

	(void)state;
	memcpy(xn, x, sizeof(x));
	memcpy(vn, v, sizeof(v));
	macc_sgd_step(3, x, v, g, 0.125f, 0.5f, false);
	/* v = 0.5 v - 0.125 g; x += v */
	assert_true(v[0] == 0.125f - 0.25f && v[1] == 0.25f + 0.5f && v[2] == -0.5f);
	assert_true(x[0] == 1.0f - 0.125f && x[1] == -2.0f + 0.75f && x[2] == 0.0f);
	macc_sgd_step(3, xn, vn, g, 0.125f, 0.5f, true);
	/* nesterov: same v; x += 0.5 v_new - 0.125 g */
	assert_true(vn[0] == -0.125f && vn[1] == 0.75f && vn[2] == -0.5f);
	assert_true(xn[0] == 1.0f + (-0.0625f - 0.25f));
	assert_true(xn[1] == -2.0f + (0.375f + 0.5f));
	assert_true(xn[2] == 0.5f - 0.25f);
	/* random values: the element formulas, in float */
	size_t n = 1000;
	float *a = rand_vec(n, -1, 1), *b = rand_vec(n, -1, 1), *c = rand_vec(n, -1, 1);
	float *a0 = zeros(n), *b0 = zeros(n);

	memcpy(a0, a, n * sizeof(float));
	memcpy(b0, b, n * sizeof(float));
	macc_sgd_step(n, a, b, c, 0.03f, 0.9f, false);
	for (size_t i = 0; i < n; i++) {
		float vv = 0.9f * b0[i] - 0.03f * c[i];

		assert_true(b[i] == vv);
		assert_true(a[i] == a0[i] + vv);
	}
	/* beta = 0 is plain SGD */
	memcpy(a, a0, n * sizeof(float));
	macc_sgd_step(n, a, b, c, 0.5f, 0.0f, false);
	for (size_t i = 0; i < n; i++) {
		assert_true(a[i] == a0[i] - 0.5f * c[i]);
	}
	free(a), free(b), free(c), free(a0), free(b0);
}

static void test_lr_schedules(void **state)
{
	struct macc_lr_schedule s;
	struct macc_errmsg err = {{0}};

	(void)state;
	assert_int_equal(macc_lr_parse("const", 0.1f, &s, &err), 0);
	assert_int_equal(s.kind, MACC_LR_CONST);
	assert_true(macc_lr_at(&s, 0, 10) == 0.1f && macc_lr_at(&s, 9.5, 10) == 0.1f);

	assert_int_equal(macc_lr_parse("step:2:0.5", 0.8f, &s, &err), 0);
	assert_int_equal(s.kind, MACC_LR_STEP);
	assert_int_equal(s.step_every, 2);
	assert_true(s.step_gamma == 0.5f);
	assert_true(macc_lr_at(&s, 0, 10) == 0.8f);
	assert_true(macc_lr_at(&s, 1.99, 10) == 0.8f);
	assert_true(macc_lr_at(&s, 2.0, 10) == 0.4f);
	assert_true(macc_lr_at(&s, 5.5, 10) == 0.2f);

	assert_int_equal(macc_lr_parse("cosine", 1.0f, &s, &err), 0);
	assert_int_equal(s.kind, MACC_LR_COSINE);
	assert_true(macc_lr_at(&s, 0, 4) == 1.0f);
	assert_true(fabsf(macc_lr_at(&s, 2, 4) - 0.5f) < 1e-6f);
	assert_true(fabsf(macc_lr_at(&s, 1, 4) - (float)(0.5 * (1 + cos(M_PI / 4)))) < 1e-6f);
	assert_true(fabsf(macc_lr_at(&s, 4, 4)) < 1e-6f);
	assert_true(fabsf(macc_lr_at(&s, 7, 4)) < 1e-6f); /* clamped past the end */

	static const char *const bad[] = {"", "constant", "step", "step:", "step:2", "step:2:",
					  "step:0:0.5", "step:-1:0.5", "step:2:0", "step:2:1.5",
					  "step:2:0.5x", "step:x:0.5", "cosine:1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct macc_lr_schedule keep = {.kind = MACC_LR_STEP, .base = 9.0f};

		err.text[0] = '\0';
		if (macc_lr_parse(bad[i], 0.1f, &keep, &err) != MACC_ESPEC) {
			print_error("lr spec '%s' accepted\n", bad[i]);
			fail();
		}
		assert_true(strlen(err.text) > 10);
		assert_true(keep.base == 9.0f);
	}
	assert_int_equal(macc_lr_parse("const", 0.0f, &s, &err), MACC_ESPEC);
	assert_int_equal(macc_lr_parse("const", -1.0f, &s, &err), MACC_ESPEC);
	assert_int_equal(macc_lr_parse(NULL, 1.0f, &s, &err), MACC_ESPEC);
}

static void test_set_threads(void **state)
{
	struct macc_model *m = model("mlp:20-30-5", 16);
	size_t np = macc_model_nparams(m);
	float *p = zeros(np), *g1 = zeros(np), *g2 = zeros(np), *x = rand_vec(16 * 20, 0, 1);
	int32_t y[16] = {0};

	(void)state;
	macc_model_init_params(m, p, 4);
	macc_nn_set_threads(1);
	macc_model_train_batch(m, p, g1, x, y, 16, 0.0f, NULL);
	macc_nn_set_threads(2);
	macc_model_train_batch(m, p, g2, x, y, 16, 0.0f, NULL);
	macc_nn_set_threads(1);
	assert_close("threads", g2, g1, np, 1e-5);
	free(p), free(g1), free(g2), free(x);
	macc_model_destroy(m);
}

static int setup(void **state)
{
	(void)state;
	macc_rng_seed(&trng, 12345, 0);
	return 0;
}

int main(void)
{
	/* MACC_TEST_SKIP, a cmocka pattern ('*', '?'), skips the tests it matches: the valgrind
	 * test setup (tests/meson.build) skips test_model_gradients, whose finite differences over
	 * whole CNNs take hours there; the layers' own gradient checks still run. */
	const char *skip = getenv("MACC_TEST_SKIP");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dense_matches_oracle_and_gradcheck),
		cmocka_unit_test(test_relu_tanh_gradcheck),
		cmocka_unit_test(test_conv_matches_oracle_and_gradcheck),
		cmocka_unit_test(test_maxpool_matches_oracle_and_gradcheck),
		cmocka_unit_test(test_flatten_gradcheck),
		cmocka_unit_test(test_dropout_mask_and_gradcheck),
		cmocka_unit_test(test_softmax_ce_value_and_gradcheck),
		cmocka_unit_test(test_conv_stride_matches_oracle_and_gradcheck),
		cmocka_unit_test(test_pools_match_oracle_and_gradcheck),
		cmocka_unit_test(test_more_activations_gradcheck),
		cmocka_unit_test(test_mse_value_and_gradcheck),
		cmocka_unit_test(test_aliases_match_recorded_runs),
		cmocka_unit_test(test_stack_equals_alias),
		cmocka_unit_test(test_stack_specs),
		cmocka_unit_test(test_stack_spec_errors),
		cmocka_unit_test(test_model_file),
		cmocka_unit_test(test_regression_model),
		cmocka_unit_test(test_custom_stack_gradients),
		cmocka_unit_test(test_standardizer_in_model),
		cmocka_unit_test(test_check_data),
		cmocka_unit_test(test_spec_errors),
		cmocka_unit_test(test_known_models),
		cmocka_unit_test(test_hash_stable),
		cmocka_unit_test(test_init_pytorch_bounds_and_reproducible),
		cmocka_unit_test(test_model_gradients),
		cmocka_unit_test(test_evaluate_predict_chunks),
		cmocka_unit_test(test_tiny_models_learn),
		cmocka_unit_test(test_dropout_model),
		cmocka_unit_test(test_sgd_step_exact),
		cmocka_unit_test(test_lr_schedules),
		cmocka_unit_test(test_set_threads),
	};

	if (skip != NULL && skip[0] != '\0') {
		cmocka_set_skip_filter(skip);
	}
	return cmocka_run_group_tests_name("nn", tests, setup, NULL);
}
