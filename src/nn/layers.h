/*
 * layers.h - internal: the layers of the learning core as forward/backward pairs.
 *
 * Every layer works on a whole mini-batch of B samples at once, row-major, one sample per row,
 * so the dense and convolution layers are one or two cblas_sgemm calls per batch and nothing
 * loops over samples in the hot path. Shapes are given in a comment on every pointer.
 *
 * Image activations are channels-first ([B][C][H][W], "NCHW"), as IDX and CIFAR-10 files and
 * PyTorch store them, so flatten is free and gives PyTorch's feature order, and filters have
 * PyTorch's [K][C][KH][KW] layout. A convolution builds the TRANSPOSED im2col matrix of the
 * whole batch, colT[C*KH*KW][B*OH*OW]: each of its rows is, per sample and output row, a
 * contiguous slice of one input row, so im2col copies runs of OW floats (not KW floats), even
 * for one input channel. Then one sgemm gives out[K][B*OH*OW] and the bias + activation pass
 * also permutes it to [B][K][OH*OW]; the backward pass permutes the gradient back while
 * applying the activation derivative and summing the bias gradient.
 *
 * Dense and convolution layers fuse their bias and activation into one pass over the output;
 * their backward first turns the gradient w.r.t. the activation into the gradient w.r.t. the
 * pre-activation, in place, using the saved output (ReLU: out > 0; tanh: 1 - out^2).
 * Standalone ReLU/tanh pairs exist for models and tests that want them separately.
 *
 * Gradients of parameters are ACCUMULATED: dw and db receive += (the model clears or decays the
 * whole gradient block once per batch). Gradients of inputs are overwritten, and skipped when
 * din is NULL (the model's first layer: nobody needs dL/dx).
 */
#ifndef MACC_NN_LAYERS_H
#define MACC_NN_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "macc/rng.h"

enum nn_act { NN_ACT_NONE, NN_ACT_RELU, NN_ACT_TANH };

/* out = act(in * w^T + b). */
void nn_dense_forward(float *out,     /* [B][no] */
		      const float *in, /* [B][ni] */
		      const float *w,  /* [no][ni] (PyTorch's Linear layout) */
		      const float *b,  /* [no] */
		      size_t B, size_t ni, size_t no, enum nn_act act);

/* dout (gradient w.r.t. the activated output) is overwritten with the gradient w.r.t. the
 * pre-activation; then dw += dz^T in, db += column sums of dz, din = dz w (skipped if NULL). */
void nn_dense_backward(float *din,       /* [B][ni] or NULL */
		       float *dw,        /* [no][ni], accumulated */
		       float *db,        /* [no], accumulated */
		       float *dout,      /* [B][no], in: dL/dout; out: dL/dz */
		       const float *out, /* [B][no] forward output (after activation) */
		       const float *in,  /* [B][ni] forward input */
		       const float *w,   /* [no][ni] */
		       size_t B, size_t ni, size_t no, enum nn_act act);

/* Elementwise activations; backward may run in place (din == dout). */
void nn_relu_forward(float *out /* [n] */, const float *in /* [n] */, size_t n);
void nn_relu_backward(float *din /* [n] */, const float *dout /* [n] */,
		      const float *out /* [n] forward output */, size_t n);
void nn_tanh_forward(float *out /* [n] */, const float *in /* [n] */, size_t n);
void nn_tanh_backward(float *din /* [n] */, const float *dout /* [n] */,
		      const float *out /* [n] forward output */, size_t n);

/* Convolution geometry: zero padding `pad` on every side, `stride` in both directions (0 is
 * taken as 1). */
struct nn_conv_shape {
	size_t c, h, w;    /* input channels, height, width */
	size_t k, kh, kw;  /* filters, filter height, width */
	size_t pad;
	size_t stride;
	size_t oh, ow;     /* output height, width: (h + 2 pad - kh) / stride + 1, and so on */
};

/* Fill oh/ow (and stride 0 -> 1) from the rest; returns -1 if the filter does not fit. */
int nn_conv_shape_finish(struct nn_conv_shape *s);
/* Floats of the im2col matrix for B samples: C*KH*KW * B*OH*OW. */
size_t nn_conv_col_size(const struct nn_conv_shape *s, size_t B);
/* Floats of the scratch matrix for B samples: K * B*OH*OW. */
size_t nn_conv_tmp_size(const struct nn_conv_shape *s, size_t B);

/* colT = im2col(in); tmp = w colT; out = act(permute(tmp) + b). Keep colT for backward. */
void nn_conv2d_forward(float *out,      /* [B][K][OH][OW] */
		       float *colT,     /* [C*KH*KW][B*OH*OW] workspace, written */
		       float *tmp,      /* [K][B*OH*OW] scratch */
		       const float *in, /* [B][C][H][W] */
		       const float *w,  /* [K][C][KH][KW] */
		       const float *b,  /* [K] */
		       const struct nn_conv_shape *s, size_t B, enum nn_act act);

/* dz = permute(act'(dout)); db += row sums of dz; dw += dz colT^T; din = col2im(w^T dz). */
void nn_conv2d_backward(float *din,        /* [B][C][H][W], or NULL */
			float *dcolT,      /* [C*KH*KW][B*OH*OW] scratch (unused if din NULL) */
			float *dz,         /* [K][B*OH*OW] scratch */
			float *dw,         /* [K][C][KH][KW], accumulated */
			float *db,         /* [K], accumulated */
			const float *dout, /* [B][K][OH][OW] */
			const float *out,  /* [B][K][OH][OW] forward output */
			const float *colT, /* [C*KH*KW][B*OH*OW] from the forward pass */
			const float *w,    /* [K][C][KH][KW] */
			const struct nn_conv_shape *s, size_t B, enum nn_act act);

/* 2x2 max-pool, stride 2, over each of the B*C planes (odd trailing rows/columns are dropped,
 * as PyTorch does). arg records the offset of each maximum in `in`, for the backward pass. */
void nn_maxpool2_forward(float *out,      /* [B][C][H/2][W/2] */
			 uint32_t *arg,   /* [B][C][H/2][W/2] */
			 const float *in, /* [B][C][H][W] */
			 size_t B, size_t h, size_t w, size_t c);
void nn_maxpool2_backward(float *din,          /* [B][C][H][W], overwritten */
			  const float *dout,   /* [B][C][H/2][W/2] */
			  const uint32_t *arg, /* [B][C][H/2][W/2] */
			  size_t B, size_t h, size_t w, size_t c);

/* General pooling over KHxKW windows moved by `stride`, no padding; trailing rows/columns
 * that no window covers are dropped (PyTorch's floor mode). oh = (h - kh) / stride + 1. */
struct nn_pool_shape {
	size_t c, h, w;   /* input */
	size_t kh, kw, stride;
	size_t oh, ow;
};
/* Fill oh/ow; -1 if the window does not fit or stride is 0. */
int nn_pool_shape_finish(struct nn_pool_shape *s);
/* Max over each window; arg records the offset of each maximum in `in` (ties keep the
 * first in row-major window order), for the backward pass. */
void nn_maxpool_forward(float *out,      /* [B][C][OH][OW] */
			uint32_t *arg,   /* [B][C][OH][OW] */
			const float *in, /* [B][C][H][W] */
			const struct nn_pool_shape *s, size_t B);
/* din is overwritten: zero, then dout added at each arg (overlapping windows add up). */
void nn_maxpool_backward(float *din,          /* [B][C][H][W] */
			 const float *dout,   /* [B][C][OH][OW] */
			 const uint32_t *arg, /* [B][C][OH][OW] */
			 const struct nn_pool_shape *s, size_t B);
/* Mean over each window. */
void nn_avgpool_forward(float *out /* [B][C][OH][OW] */, const float *in /* [B][C][H][W] */,
			const struct nn_pool_shape *s, size_t B);
/* din is overwritten: each window's input gets dout / (kh kw). */
void nn_avgpool_backward(float *din /* [B][C][H][W] */, const float *dout /* [B][C][OH][OW] */,
			 const struct nn_pool_shape *s, size_t B);

/* Standalone elementwise activations beside ReLU and tanh (backward may run in place):
 *   leaky ReLU  out = in > 0 ? in : alpha in (alpha >= 0; the sign of out gives the branch)
 *   sigmoid     out = 1 / (1 + exp(-in)); d = out (1 - out)
 *   GELU        out = in Phi(in) = in (1 + erf(in / sqrt 2)) / 2, the exact form (ONNX's Gelu
 *               written with Erf); d = Phi(in) + in phi(in): it needs the forward INPUT. */
void nn_leaky_relu_forward(float *out, const float *in, size_t n, float alpha);
void nn_leaky_relu_backward(float *din, const float *dout, const float *out, size_t n,
			    float alpha);
void nn_sigmoid_forward(float *out, const float *in, size_t n);
void nn_sigmoid_backward(float *din, const float *dout, const float *out, size_t n);
void nn_gelu_forward(float *out, const float *in, size_t n);
void nn_gelu_backward(float *din, const float *dout, const float *in /* forward input */,
		      size_t n);

/* Mean squared error over the batch and the T targets of each sample (PyTorch's MSELoss,
 * reduction "mean"): L = sum (pred - t)^2 / (B T). If dpred is not NULL it receives
 * 2 (pred - t) / (B T). Returns L; if ret_sse is not NULL it receives the sum of squared
 * errors in double (for RMSE over several chunks). */
float nn_mse(float *dpred,        /* [B][T] or NULL */
	     const float *pred,   /* [B][T] */
	     const float *t,      /* [B][T] */
	     size_t B, size_t T, double *ret_sse);

/* Flatten [B][C][H][W] to [B][C*H*W]: the identity on the bytes, so the model aliases the
 * buffers; these copy, for callers that do not. */
void nn_flatten_forward(float *out /* [B][n] */, const float *in /* [B][...] */, size_t B,
			size_t n);
void nn_flatten_backward(float *din /* [B][...] */, const float *dout /* [B][n] */, size_t B,
			 size_t n);

/* Inverted dropout: each element kept with probability 1 - p and scaled by 1 / (1 - p);
 * mask holds the factor (0 or 1 / (1 - p)). p = 0 or rng NULL: identity (mask all 1). */
void nn_dropout_forward(float *out /* [n] */, float *mask /* [n] */, const float *in /* [n] */,
			size_t n, float p, struct macc_rng *rng);
void nn_dropout_backward(float *din /* [n] */, const float *dout /* [n] */,
			 const float *mask /* [n] */, size_t n);

/* Mean softmax cross-entropy over the batch. If dlogits is not NULL it receives the gradient of
 * the mean loss: (softmax - onehot(y)) / B. If ret_correct is not NULL it receives the number of
 * rows whose arg-max equals the label. */
float nn_softmax_ce(float *dlogits,       /* [B][C] or NULL */
		    const float *logits,  /* [B][C] */
		    const int32_t *y,     /* [B], each in [0, C) */
		    size_t B, size_t C, size_t *ret_correct);

#endif
