/*
 * layers.c - forward/backward pairs of the layers (see layers.h for shapes and layout).
 *
 * The heavy lifting is cblas_sgemm on whole batches, row-major:
 *   dense forward    out[B][no]   = in[B][ni] . w[no][ni]^T     (NoTrans, Trans)
 *   dense dW         dw[no][ni]  += dz[B][no]^T . in[B][ni]     (Trans, NoTrans)
 *   dense dX         din[B][ni]   = dz[B][no] . w[no][ni]       (NoTrans, NoTrans)
 * A convolution is the same three products on the transposed im2col matrix of the whole batch
 * (layers.h explains why transposed), so one sgemm covers the batch:
 *   conv forward     tmp[K][N]  = w[K][KK] . colT[KK][N]       (NoTrans, NoTrans), N = B*OH*OW
 *   conv dW          dw[K][KK] += dz[K][N] . colT[KK][N]^T     (NoTrans, Trans)
 *   conv dX          dcolT[KK][N] = w[K][KK]^T . dz[K][N]      (Trans, NoTrans), then col2im
 *
 * Everything else is one linear pass fused where it pays: bias + activation right after the
 * forward sgemm, the activation derivative in place right before the backward ones. Parameter
 * gradients accumulate (beta = 1), so the model clears the whole gradient block once per batch
 * (or fills it with weight_decay * params) instead of once per product.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include <cblas.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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
	if (s->stride == 0) {
		s->stride = 1;
	}
	if (s->c == 0 || s->k == 0 || s->kh == 0 || s->kw == 0 || s->h + 2 * s->pad < s->kh ||
	    s->w + 2 * s->pad < s->kw) {
		return -1;
	}
	s->oh = (s->h + 2 * s->pad - s->kh) / s->stride + 1;
	s->ow = (s->w + 2 * s->pad - s->kw) / s->stride + 1;
	return 0;
}

size_t nn_conv_col_size(const struct nn_conv_shape *s, size_t B)
{
	return B * s->oh * s->ow * s->kh * s->kw * s->c;
}

size_t nn_conv_tmp_size(const struct nn_conv_shape *s, size_t B)
{
	return s->k * B * s->oh * s->ow;
}

/*
 * Walk the transposed im2col matrix: row (ci, ky, kx), and within it, per sample and output
 * row, the OW entries that read input row iy = oy + ky - pad at columns ox + kx - pad. The part
 * of that run inside the image is a contiguous input slice; the rest is zero padding. With
 * din != NULL the walk runs backwards (col2im): the run is added into the input gradient.
 */
static void im2col_t(float *colT, const float *in, float *din, const float *dcolT,
		     const struct nn_conv_shape *s, size_t B)
{
	const size_t N = B * s->oh * s->ow, ow = s->ow;

	for (size_t ci = 0; ci < s->c; ci++) {
		for (size_t ky = 0; ky < s->kh; ky++) {
			for (size_t kx = 0; kx < s->kw; kx++) {
				size_t r = (ci * s->kh + ky) * s->kw + kx;
				/* output columns [lo, hi) read inside the image */
				size_t lo = s->pad > kx ? s->pad - kx : 0;
				size_t hi = s->w + s->pad > kx ? s->w + s->pad - kx : 0;

				hi = hi < ow ? hi : ow;
				lo = lo < hi ? lo : hi;
				for (size_t b = 0; b < B; b++) {
					size_t plane = (b * s->c + ci) * s->h * s->w;

					for (size_t oy = 0; oy < s->oh; oy++) {
						size_t off = r * N + (b * s->oh + oy) * ow;
						size_t iy = oy + ky; /* + pad, to stay unsigned */

						if (iy < s->pad || iy >= s->h + s->pad) {
							if (colT) {
								memset(colT + off, 0, ow * sizeof(float));
							}
							continue;
						}
						size_t src = plane + (iy - s->pad) * s->w + lo + kx -
							     s->pad;

						if (colT) {
							float *d = colT + off;
							const float *p = in + src;

							for (size_t x = 0; x < lo; x++) {
								d[x] = 0.0f;
							}
							for (size_t x = lo; x < hi; x++) {
								d[x] = p[x - lo];
							}
							for (size_t x = hi; x < ow; x++) {
								d[x] = 0.0f;
							}
						} else {
							const float *d = dcolT + off;
							float *p = din + src;

							for (size_t x = lo; x < hi; x++) {
								p[x - lo] += d[x];
							}
						}
					}
				}
			}
		}
	}
}

/*
 * The same walk for stride > 1: output column ox reads input column ox * stride + kx - pad,
 * so a run is a strided gather (scatter for col2im) instead of a contiguous copy.
 */
static void im2col_strided(float *colT, const float *in, float *din, const float *dcolT,
			   const struct nn_conv_shape *s, size_t B)
{
	const size_t N = B * s->oh * s->ow, ow = s->ow, st = s->stride;

	for (size_t ci = 0; ci < s->c; ci++) {
		for (size_t ky = 0; ky < s->kh; ky++) {
			for (size_t kx = 0; kx < s->kw; kx++) {
				size_t r = (ci * s->kh + ky) * s->kw + kx;

				for (size_t b = 0; b < B; b++) {
					size_t plane = (b * s->c + ci) * s->h * s->w;

					for (size_t oy = 0; oy < s->oh; oy++) {
						size_t off = r * N + (b * s->oh + oy) * ow;
						size_t iy = oy * st + ky; /* + pad */
						bool row_in = iy >= s->pad && iy < s->h + s->pad;

						for (size_t ox = 0; ox < ow; ox++) {
							size_t ix = ox * st + kx; /* + pad */
							bool inside = row_in && ix >= s->pad &&
								      ix < s->w + s->pad;
							size_t src = inside ? plane + (iy - s->pad) *
								     s->w + ix - s->pad : 0;

							if (colT) {
								colT[off + ox] = inside ? in[src] : 0.0f;
							} else if (inside) {
								din[src] += dcolT[off + ox];
							}
						}
					}
				}
			}
		}
	}
}

void nn_conv2d_forward(float *out, float *colT, float *tmp, const float *in, const float *w,
		       const float *b, const struct nn_conv_shape *s, size_t B, enum nn_act act)
{
	const size_t P = s->oh * s->ow, N = B * P, kk = s->c * s->kh * s->kw;

	if (s->stride > 1) {
		im2col_strided(colT, in, NULL, NULL, s, B);
	} else {
		im2col_t(colT, in, NULL, NULL, s, B);
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s->k, (int)N, (int)kk, 1.0f, w,
		    (int)kk, colT, (int)N, 0.0f, tmp, (int)N);
	/* [K][B][P] -> [B][K][P] with bias and activation */
	for (size_t n = 0; n < B; n++) {
		for (size_t k = 0; k < s->k; k++) {
			const float *t = tmp + k * N + n * P;
			float *o = out + (n * s->k + k) * P;
			const float bk = b[k];

			if (act == NN_ACT_RELU) {
				for (size_t p = 0; p < P; p++) {
					float v = t[p] + bk;

					o[p] = v > 0.0f ? v : 0.0f;
				}
			} else if (act == NN_ACT_TANH) {
				for (size_t p = 0; p < P; p++) {
					o[p] = tanhf(t[p] + bk);
				}
			} else {
				for (size_t p = 0; p < P; p++) {
					o[p] = t[p] + bk;
				}
			}
		}
	}
}

/*
 * db[k] += sum of row k (P floats, rows `stride` apart), for k < K. Each sum runs over p in
 * order, as a plain loop would, but four rows advance together: four independent dependency
 * chains instead of one, so the adds overlap in the pipeline and every result is bit for bit
 * the serial one (a vectorised reduction would reassociate and change the bits).
 */
static void sum_rows(float *db, const float *z, size_t stride, size_t P, size_t K)
{
	size_t k = 0;

	for (; k + 4 <= K; k += 4) {
		const float *z0 = z + k * stride, *z1 = z0 + stride, *z2 = z1 + stride;
		const float *z3 = z2 + stride;
		float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;

		for (size_t p = 0; p < P; p++) {
			s0 += z0[p];
			s1 += z1[p];
			s2 += z2[p];
			s3 += z3[p];
		}
		db[k] += s0;
		db[k + 1] += s1;
		db[k + 2] += s2;
		db[k + 3] += s3;
	}
	for (; k < K; k++) {
		const float *zk = z + k * stride;
		float sum = 0.0f;

		for (size_t p = 0; p < P; p++) {
			sum += zk[p];
		}
		db[k] += sum;
	}
}

void nn_conv2d_backward(float *din, float *dcolT, float *dz, float *dw, float *db,
			const float *dout, const float *out, const float *colT, const float *w,
			const struct nn_conv_shape *s, size_t B, enum nn_act act)
{
	const size_t P = s->oh * s->ow, N = B * P, kk = s->c * s->kh * s->kw;

	/* [B][K][P] -> [K][B][P] through the activation derivative, summing db */
	for (size_t n = 0; n < B; n++) {
		for (size_t k = 0; k < s->k; k++) {
			const float *d = dout + (n * s->k + k) * P, *o = out + (n * s->k + k) * P;
			float *z = dz + k * N + n * P;

			if (act == NN_ACT_RELU) {
				nn_relu_backward(z, d, o, P);
			} else if (act == NN_ACT_TANH) {
				nn_tanh_backward(z, d, o, P);
			} else {
				memcpy(z, d, P * sizeof(float));
			}
		}
		sum_rows(db, dz + n * P, N, P, s->k);
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)s->k, (int)kk, (int)N, 1.0f, dz,
		    (int)N, colT, (int)N, 1.0f, dw, (int)kk);
	if (!din) {
		return;
	}
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kk, (int)N, (int)s->k, 1.0f, w,
		    (int)kk, dz, (int)N, 0.0f, dcolT, (int)N);
	memset(din, 0, B * s->c * s->h * s->w * sizeof(*din));
	if (s->stride > 1) {
		im2col_strided(NULL, NULL, din, dcolT, s, B);
	} else {
		im2col_t(NULL, NULL, din, dcolT, s, B);
	}
}

#if defined(__SSE2__)
/* Select a where mask is set, else b (SSE2 has no blend). */
static inline __m128 sel_ps(__m128 mask, __m128 a, __m128 b)
{
	return _mm_or_ps(_mm_and_ps(mask, a), _mm_andnot_ps(mask, b));
}

static inline __m128i sel_epi32(__m128 mask, __m128i a, __m128i b)
{
	__m128i m = _mm_castps_si128(mask);

	return _mm_or_si128(_mm_and_si128(m, a), _mm_andnot_si128(m, b));
}

/* Four outputs of one output row at once: the even and odd inputs of both rows are split out
 * of two loads each, then the same three strict comparisons as the scalar code, in the same
 * order, so values, arg-max offsets and tie-breaking (the first wins) are identical. Returns
 * the number of outputs done (a multiple of 4). */
static size_t pool2_row_sse(float *out, uint32_t *arg, const float *in, size_t r0, size_t r1,
			    size_t ow)
{
	const __m128i lane = _mm_set_epi32(6, 4, 2, 0), one = _mm_set1_epi32(1);
	const __m128i down = _mm_set1_epi32((int)(r1 - r0));
	size_t ox = 0;

	for (; ox + 4 <= ow; ox += 4) {
		const float *p0 = in + r0 + 2 * ox, *p1 = in + r1 + 2 * ox;
		__m128 a0 = _mm_loadu_ps(p0), b0 = _mm_loadu_ps(p0 + 4);
		__m128 a1 = _mm_loadu_ps(p1), b1 = _mm_loadu_ps(p1 + 4);
		__m128 v0 = _mm_shuffle_ps(a0, b0, _MM_SHUFFLE(2, 0, 2, 0));
		__m128 v1 = _mm_shuffle_ps(a0, b0, _MM_SHUFFLE(3, 1, 3, 1));
		__m128 v2 = _mm_shuffle_ps(a1, b1, _MM_SHUFFLE(2, 0, 2, 0));
		__m128 v3 = _mm_shuffle_ps(a1, b1, _MM_SHUFFLE(3, 1, 3, 1));
		__m128i i0 = _mm_add_epi32(_mm_set1_epi32((int)(r0 + 2 * ox)), lane);
		__m128i best = i0;
		__m128 m = v0, c;

		c = _mm_cmpgt_ps(v1, m);
		best = sel_epi32(c, _mm_add_epi32(i0, one), best);
		m = sel_ps(c, v1, m);
		c = _mm_cmpgt_ps(v2, m);
		best = sel_epi32(c, _mm_add_epi32(i0, down), best);
		m = sel_ps(c, v2, m);
		c = _mm_cmpgt_ps(v3, m);
		best = sel_epi32(c, _mm_add_epi32(_mm_add_epi32(i0, down), one), best);
		m = sel_ps(c, v3, m);
		_mm_storeu_ps(out + ox, m);
		_mm_storeu_si128((__m128i *)(void *)(arg + ox), best);
	}
	return ox;
}
#endif

void nn_maxpool2_forward(float *out, uint32_t *arg, const float *in, size_t B, size_t h,
			 size_t w, size_t c)
{
	const size_t oh = h / 2, ow = w / 2;
	size_t o = 0;

	for (size_t pl = 0; pl < B * c; pl++) {
		const size_t base = pl * h * w;

		for (size_t oy = 0; oy < oh; oy++) {
			const size_t r0 = base + 2 * oy * w, r1 = r0 + w;
			size_t ox = 0;

#if defined(__SSE2__)
			/* offsets are below 2^31: the model checks B * C * H * W (alloc_workspace) */
			ox = pool2_row_sse(out + o, arg + o, in, r0, r1, ow);
			o += ox;
#endif
			for (; ox < ow; ox++, o++) {
				/* selects, not branches: which input wins is data-dependent and
				 * mispredicts half the time; ties keep the first, like PyTorch */
				size_t i0 = r0 + 2 * ox, i1 = i0 + 1, i2 = r1 + 2 * ox, i3 = i2 + 1;
				size_t best = i0;
				float m = in[i0], v;

				v = in[i1];
				best = v > m ? i1 : best;
				m = v > m ? v : m;
				v = in[i2];
				best = v > m ? i2 : best;
				m = v > m ? v : m;
				v = in[i3];
				best = v > m ? i3 : best;
				m = v > m ? v : m;
				out[o] = m;
				arg[o] = (uint32_t)best;
			}
		}
	}
}

void nn_maxpool2_backward(float *din, const float *dout, const uint32_t *arg, size_t B, size_t h,
			  size_t w, size_t c)
{
	const size_t n = B * c * (h / 2) * (w / 2);

	memset(din, 0, B * c * h * w * sizeof(*din));
	for (size_t i = 0; i < n; i++) {
		din[arg[i]] += dout[i];
	}
}

int nn_pool_shape_finish(struct nn_pool_shape *s)
{
	if (s->c == 0 || s->kh == 0 || s->kw == 0 || s->stride == 0 || s->h < s->kh ||
	    s->w < s->kw) {
		return -1;
	}
	s->oh = (s->h - s->kh) / s->stride + 1;
	s->ow = (s->w - s->kw) / s->stride + 1;
	return 0;
}

void nn_maxpool_forward(float *out, uint32_t *arg, const float *in, const struct nn_pool_shape *s,
			size_t B)
{
	size_t o = 0;

	for (size_t pl = 0; pl < B * s->c; pl++) {
		const size_t base = pl * s->h * s->w;

		for (size_t oy = 0; oy < s->oh; oy++) {
			for (size_t ox = 0; ox < s->ow; ox++, o++) {
				size_t first = base + oy * s->stride * s->w + ox * s->stride;
				size_t best = first;
				float m = in[first];

				for (size_t ky = 0; ky < s->kh; ky++) {
					const size_t row = first + ky * s->w;

					for (size_t kx = 0; kx < s->kw; kx++) {
						float v = in[row + kx];

						best = v > m ? row + kx : best;
						m = v > m ? v : m;
					}
				}
				out[o] = m;
				arg[o] = (uint32_t)best;
			}
		}
	}
}

void nn_maxpool_backward(float *din, const float *dout, const uint32_t *arg,
			 const struct nn_pool_shape *s, size_t B)
{
	const size_t n = B * s->c * s->oh * s->ow;

	memset(din, 0, B * s->c * s->h * s->w * sizeof(*din));
	for (size_t i = 0; i < n; i++) {
		din[arg[i]] += dout[i];
	}
}

void nn_avgpool_forward(float *out, const float *in, const struct nn_pool_shape *s, size_t B)
{
	const float inv = 1.0f / (float)(s->kh * s->kw);
	size_t o = 0;

	for (size_t pl = 0; pl < B * s->c; pl++) {
		const float *p = in + pl * s->h * s->w;

		for (size_t oy = 0; oy < s->oh; oy++) {
			for (size_t ox = 0; ox < s->ow; ox++, o++) {
				const float *q = p + oy * s->stride * s->w + ox * s->stride;
				float sum = 0.0f;

				for (size_t ky = 0; ky < s->kh; ky++) {
					for (size_t kx = 0; kx < s->kw; kx++) {
						sum += q[ky * s->w + kx];
					}
				}
				out[o] = sum * inv;
			}
		}
	}
}

void nn_avgpool_backward(float *din, const float *dout, const struct nn_pool_shape *s, size_t B)
{
	const float inv = 1.0f / (float)(s->kh * s->kw);
	size_t o = 0;

	memset(din, 0, B * s->c * s->h * s->w * sizeof(*din));
	for (size_t pl = 0; pl < B * s->c; pl++) {
		float *p = din + pl * s->h * s->w;

		for (size_t oy = 0; oy < s->oh; oy++) {
			for (size_t ox = 0; ox < s->ow; ox++, o++) {
				float *q = p + oy * s->stride * s->w + ox * s->stride;
				const float d = dout[o] * inv;

				for (size_t ky = 0; ky < s->kh; ky++) {
					for (size_t kx = 0; kx < s->kw; kx++) {
						q[ky * s->w + kx] += d;
					}
				}
			}
		}
	}
}

void nn_leaky_relu_forward(float *out, const float *in, size_t n, float alpha)
{
	for (size_t i = 0; i < n; i++) {
		float v = in[i];

		out[i] = v > 0.0f ? v : alpha * v;
	}
}

void nn_leaky_relu_backward(float *din, const float *dout, const float *out, size_t n,
			    float alpha)
{
	for (size_t i = 0; i < n; i++) {
		float d = dout[i];

		din[i] = out[i] > 0.0f ? d : alpha * d;
	}
}

void nn_sigmoid_forward(float *out, const float *in, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		out[i] = 1.0f / (1.0f + expf(-in[i]));
	}
}

void nn_sigmoid_backward(float *din, const float *dout, const float *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		din[i] = dout[i] * out[i] * (1.0f - out[i]);
	}
}

void nn_gelu_forward(float *out, const float *in, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float x = in[i];

		out[i] = 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
	}
}

void nn_gelu_backward(float *din, const float *dout, const float *in, size_t n)
{
	/* 1 / sqrt(2 pi) */
	const float k = 0.3989422804014327f;

	for (size_t i = 0; i < n; i++) {
		float x = in[i];
		float cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));

		din[i] = dout[i] * (cdf + x * k * expf(-0.5f * x * x));
	}
}

float nn_mse(float *dpred, const float *pred, const float *t, size_t B, size_t T, double *ret_sse)
{
	const size_t n = B * T;
	const float scale = 2.0f / (float)n;
	double sse = 0.0;

	for (size_t i = 0; i < n; i++) {
		float e = pred[i] - t[i];

		sse += (double)e * (double)e;
		if (dpred) {
			dpred[i] = scale * e;
		}
	}
	if (ret_sse) {
		*ret_sse = sse;
	}
	return (float)(sse / (double)n);
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
