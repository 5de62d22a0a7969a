/*
 * layers.c - forward/backward pairs of the layers (see layers.h for shapes and layout).
 *
 * The heavy lifting is cblas_sgemm on whole batches, row-major:
 *   dense forward    out[B][no]  = in[B][ni] . w[no][ni]^T        (NoTrans, Trans)
 *   dense dW         dw[no][ni]   = dz[B][no]^T . in[B][ni]       (Trans, NoTrans)
 *   dense dX         din[B][ni]  = dz[B][no] . w[no][ni]          (NoTrans, NoTrans)
 * A convolution is the same three products on its im2col matrix, whose rows are the receptive
 * fields of every output pixel of the whole batch (B*OH*OW rows of KH*KW*C floats), so one
 * sgemm covers the batch. With channels-last activations the KW*C floats of one filter row are
 * contiguous in the input, so im2col copies short runs instead of single floats.
 *
 * Everything else is one linear pass fused where it pays: bias + activation right after the
 * forward sgemm, the activation derivative in place right before the backward ones. Parameter
 * gradients accumulate (beta = 1), so the model clears the whole gradient block once per batch
 * (or fills it with weight_decay * params) instead of once per product.
 */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "layers.h"

static void bias_act(float *out, const float *b, size_t B, size_t no, enum nn_act act)
{
	switch (act) {
	case NN_ACT_RELU:
		for (size_t r = 0; r < B; r++) {
			float *o = out + r * no;

			for (size_t j = 0; j < no; j++) {
				float v = o[j] + b[j];

				o[j] = v > 0.0f ? v : 0.0f;
			}
		}
		break;
	case NN_ACT_TANH:
		for (size_t r = 0; r < B; r++) {
			float *o = out + r * no;

			for (size_t j = 0; j < no; j++) {
				o[j] = tanhf(o[j] + b[j]);
			}
		}
		break;
	case NN_ACT_NONE:
		for (size_t r = 0; r < B; r++) {
			float *o = out + r * no;

			for (size_t j = 0; j < no; j++) {
				o[j] += b[j];
			}
		}
		break;
	}
}

void nn_dense_forward(float *out, const float *in, const float *w, const float *b, size_t B,
		      size_t ni, size_t no, enum nn_act act)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)no, (int)ni, 1.0f, in,
		    (int)ni, w, (int)ni, 0.0f, out, (int)no);
	bias_act(out, b, B, no, act);
}

void nn_dense_backward(float *din, float *dw, float *db, float *dout, const float *out,
		       const float *in, const float *w, size_t B, size_t ni, size_t no,
		       enum nn_act act)
{
	if (act == NN_ACT_RELU) {
		nn_relu_backward(dout, dout, out, B * no);
	} else if (act == NN_ACT_TANH) {
		nn_tanh_backward(dout, dout, out, B * no);
	}
	/* beta = 1: the caller zeroed (or decayed) the block once, which is cheaper than
	 * OpenBLAS clearing C itself before every product */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)no, (int)ni, (int)B, 1.0f, dout,
		    (int)no, in, (int)ni, 1.0f, dw, (int)ni);
	for (size_t r = 0; r < B; r++) {
		const float *d = dout + r * no;

		for (size_t j = 0; j < no; j++) {
			db[j] += d[j];
		}
	}
	if (din) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)ni, (int)no,
			    1.0f, dout, (int)no, w, (int)ni, 0.0f, din, (int)ni);
	}
}

void nn_relu_forward(float *out, const float *in, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		out[i] = in[i] > 0.0f ? in[i] : 0.0f;
	}
}

void nn_relu_backward(float *din, const float *dout, const float *out, size_t n)
{
	/* unconditional load, then select: vectorises to compare + and, no branches */
	for (size_t i = 0; i < n; i++) {
		float d = dout[i];

		din[i] = out[i] > 0.0f ? d : 0.0f;
	}
}

void nn_tanh_forward(float *out, const float *in, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		out[i] = tanhf(in[i]);
	}
}

void nn_tanh_backward(float *din, const float *dout, const float *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		din[i] = dout[i] * (1.0f - out[i] * out[i]);
	}
}

int nn_conv_shape_finish(struct nn_conv_shape *s)
{
	if (s->c == 0 || s->k == 0 || s->kh == 0 || s->kw == 0 || s->h + 2 * s->pad < s->kh ||
	    s->w + 2 * s->pad < s->kw) {
		return -1;
	}
	s->oh = s->h + 2 * s->pad - s->kh + 1;
	s->ow = s->w + 2 * s->pad - s->kw + 1;
	return 0;
}

size_t nn_conv_col_size(const struct nn_conv_shape *s, size_t B)
{
	return B * s->oh * s->ow * s->kh * s->kw * s->c;
}

/*
 * Walk every (output pixel, filter row ky) pair of the im2col matrix. For channels-last input
 * the KW*C floats of one filter row are one contiguous input run, clipped at the borders; the
 * clipped parts are zero padding. `scatter` selects col2im (accumulate into the input gradient)
 * instead of im2col.
 */
static void im2col_hwc(float *col, const float *in, float *din, const float *dcol,
		       const struct nn_conv_shape *s, size_t B)
{
	const size_t kk = s->kh * s->kw * s->c;
	const size_t run = s->kw * s->c;
	const long pad = (long)s->pad, H = (long)s->h, W = (long)s->w;

	for (size_t b = 0; b < B; b++) {
		for (size_t oy = 0; oy < s->oh; oy++) {
			for (size_t ox = 0; ox < s->ow; ox++) {
				size_t row = (b * s->oh + oy) * s->ow + ox;
				long x0 = (long)ox - pad;
				/* kx range [k0, k1) that falls inside the image */
				long k0 = x0 < 0 ? -x0 : 0;
				long k1 = W - x0 < (long)s->kw ? W - x0 : (long)s->kw;

				for (size_t ky = 0; ky < s->kh; ky++) {
					long iy = (long)oy + (long)ky - pad;
					size_t coff = row * kk + ky * run;

					if (iy < 0 || iy >= H || k1 <= k0) {
						if (col) {
							memset(col + coff, 0, run * sizeof(float));
						}
						continue;
					}
					size_t ioff = (((size_t)b * s->h + (size_t)iy) * s->w +
						       (size_t)(x0 + k0)) * s->c;
					size_t a = (size_t)k0 * s->c, e = (size_t)k1 * s->c;

					if (col) {
						float *c = col + coff;

						for (size_t i = 0; i < a; i++) {
							c[i] = 0.0f;
						}
						for (size_t i = a; i < e; i++) {
							c[i] = in[ioff + i - a];
						}
						for (size_t i = e; i < run; i++) {
							c[i] = 0.0f;
						}
					} else {
						const float *c = dcol + coff;

						for (size_t i = a; i < e; i++) {
							din[ioff + i - a] += c[i];
						}
					}
				}
			}
		}
	}
}

/* The same for channels-first input ([B][C][H][W]): one float at a time (only the first layer
 * of a multi-channel model uses it). */
static void im2col_chw(float *col, const float *in, float *din, const float *dcol,
		       const struct nn_conv_shape *s, size_t B)
{
	const size_t kk = s->kh * s->kw * s->c;
	const long pad = (long)s->pad, H = (long)s->h, W = (long)s->w;

	for (size_t b = 0; b < B; b++) {
		for (size_t oy = 0; oy < s->oh; oy++) {
			for (size_t ox = 0; ox < s->ow; ox++) {
				size_t row = (b * s->oh + oy) * s->ow + ox;
				size_t e = row * kk;

				for (size_t ky = 0; ky < s->kh; ky++) {
					long iy = (long)oy + (long)ky - pad;

					for (size_t kx = 0; kx < s->kw; kx++) {
						long ix = (long)ox + (long)kx - pad;
						int inside = iy >= 0 && iy < H && ix >= 0 && ix < W;

						for (size_t ci = 0; ci < s->c; ci++, e++) {
							size_t ii = 0;

							if (inside) {
								ii = ((b * s->c + ci) * s->h +
								      (size_t)iy) * s->w + (size_t)ix;
							}
							if (col) {
								col[e] = inside ? in[ii] : 0.0f;
							} else if (inside) {
								din[ii] += dcol[e];
							}
						}
					}
				}
			}
		}
	}
}

void nn_conv2d_forward(float *out, float *col, const float *in, const float *w, const float *b,
		       const struct nn_conv_shape *s, size_t B, enum nn_act act)
{
	if (s->in_chw && s->c > 1) {
		im2col_chw(col, in, NULL, NULL, s, B);
	} else {
		im2col_hwc(col, in, NULL, NULL, s, B);
	}
	nn_dense_forward(out, col, w, b, B * s->oh * s->ow, s->kh * s->kw * s->c, s->k, act);
}

void nn_conv2d_backward(float *din, float *dcol, float *dw, float *db, float *dout,
			const float *out, const float *col, const float *w,
			const struct nn_conv_shape *s, size_t B, enum nn_act act)
{
	nn_dense_backward(din ? dcol : NULL, dw, db, dout, out, col, w, B * s->oh * s->ow,
			  s->kh * s->kw * s->c, s->k, act);
	if (!din) {
		return;
	}
	memset(din, 0, B * s->c * s->h * s->w * sizeof(*din));
	if (s->in_chw && s->c > 1) {
		im2col_chw(NULL, NULL, din, dcol, s, B);
	} else {
		im2col_hwc(NULL, NULL, din, dcol, s, B);
	}
}

void nn_maxpool2_forward(float *out, uint32_t *arg, const float *in, size_t B, size_t h,
			 size_t w, size_t c)
{
	const size_t oh = h / 2, ow = w / 2;
	size_t o = 0;

	for (size_t b = 0; b < B; b++) {
		for (size_t oy = 0; oy < oh; oy++) {
			for (size_t ox = 0; ox < ow; ox++) {
				size_t i00 = ((b * h + 2 * oy) * w + 2 * ox) * c;
				size_t i01 = i00 + c, i10 = i00 + w * c, i11 = i10 + c;

				for (size_t ci = 0; ci < c; ci++, o++) {
					size_t best = i00 + ci;
					float m = in[best];

					if (in[i01 + ci] > m) {
						best = i01 + ci;
						m = in[best];
					}
					if (in[i10 + ci] > m) {
						best = i10 + ci;
						m = in[best];
					}
					if (in[i11 + ci] > m) {
						best = i11 + ci;
						m = in[best];
					}
					out[o] = m;
					arg[o] = (uint32_t)best;
				}
			}
		}
	}
}

void nn_maxpool2_backward(float *din, const float *dout, const uint32_t *arg, size_t B, size_t h,
			  size_t w, size_t c)
{
	const size_t n = B * (h / 2) * (w / 2) * c;

	memset(din, 0, B * h * w * c * sizeof(*din));
	for (size_t i = 0; i < n; i++) {
		din[arg[i]] += dout[i];
	}
}

void nn_flatten_forward(float *out, const float *in, size_t B, size_t n)
{
	if (out != in) {
		memmove(out, in, B * n * sizeof(*out));
	}
}

void nn_flatten_backward(float *din, const float *dout, size_t B, size_t n)
{
	if (din != dout) {
		memmove(din, dout, B * n * sizeof(*din));
	}
}

void nn_dropout_forward(float *out, float *mask, const float *in, size_t n, float p,
			struct macc_rng *rng)
{
	if (p <= 0.0f || !rng) {
		for (size_t i = 0; i < n; i++) {
			mask[i] = 1.0f;
			out[i] = in[i];
		}
		return;
	}
	const float scale = 1.0f / (1.0f - p);
	/* 24 random bits per element: keep iff u >= p, u uniform on [0, 1). */
	const uint64_t thresh = (uint64_t)((double)p * 16777216.0);

	for (size_t i = 0; i < n; i++) {
		uint64_t u = macc_rng_next(rng) >> 40;

		mask[i] = u >= thresh ? scale : 0.0f;
		out[i] = in[i] * mask[i];
	}
}

void nn_dropout_backward(float *din, const float *dout, const float *mask, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		din[i] = dout[i] * mask[i];
	}
}

float nn_softmax_ce(float *dlogits, const float *logits, const int32_t *y, size_t B, size_t C,
		    size_t *ret_correct)
{
	double loss = 0.0;
	size_t correct = 0;
	const float inv_b = 1.0f / (float)B;

	for (size_t r = 0; r < B; r++) {
		const float *z = logits + r * C;
		size_t am = 0;
		float m = z[0];

		for (size_t j = 1; j < C; j++) {
			if (z[j] > m) {
				m = z[j];
				am = j;
			}
		}
		float sum = 0.0f;

		for (size_t j = 0; j < C; j++) {
			sum += expf(z[j] - m);
		}
		size_t t = (size_t)y[r];

		loss += (double)logf(sum) - (double)(z[t] - m);
		correct += am == t;
		if (dlogits) {
			float *d = dlogits + r * C;
			float k = inv_b / sum;

			for (size_t j = 0; j < C; j++) {
				d[j] = expf(z[j] - m) * k;
			}
			d[t] -= inv_b;
		}
	}
	if (ret_correct) {
		*ret_correct = correct;
	}
	return (float)(loss / (double)B);
}
