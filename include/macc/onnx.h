/*
 * onnx.h - a trained macc model out to ONNX, and back in (src/export, the only place that links
 * protobuf-c; the C code for Debian's onnx.proto is generated at build time).
 *
 * Export writes one self-contained ONNX model (IR version 7, default-domain opset 13, which every
 * ONNX Runtime since 1.6 runs): the graph computes what macc_model_predict() computes, with
 * standard operators only, and carries every parameter as an initializer.
 *
 *   input "input"   float [N, F] (flat models) or [N, C, H, W] (image models), N dynamic; raw
 *                   features, as read from the data file
 *   standardiser    Sub(input, macc.mean) then Mul(., macc.inv_std), when the model has one
 *   dense           Gemm(A, W [out][in], b [out]), transB = 1
 *   conv            Conv(X, W [F][C][KH][KW], b [F]), kernel_shape, strides, pads
 *   maxpool/avgpool MaxPool / AveragePool, kernel_shape, strides (no padding)
 *   flatten         Flatten, axis 1
 *   relu, leakyrelu[:A], tanh, sigmoid   Relu, LeakyRelu (alpha), Tanh, Sigmoid
 *   gelu            x * 0.5 * (1 + Erf(x / sqrt 2)): Mul, Mul, Erf, Add, Mul (opset 13 has no
 *                   Gelu; Debian's onnx 1.12 checks opsets up to 17)
 *   dropout         nothing (the identity at inference)
 *   outputs         classification (loss:ce): "probabilities" = Softmax(axis 1) of "logits",
 *                   both [N, K]; regression (loss:mse): "values" [N, T]
 *
 * Initializers are named like the model's parameter views ("dense1.w", "conv2.b", ...), plus
 * "macc.mean" and "macc.inv_std" (shaped like one sample) for the standardiser and the GELU
 * constants "macc.half", "macc.rsqrt2", "macc.one". Floats are stored as raw_data, IEEE-754
 * little-endian. The model's metadata_props say what it is:
 *   macc.format         "1" (this layout)
 *   macc.spec           the canonical model spec (macc_model_spec)
 *   macc.nparams        parameters, decimal
 *   macc.params_digest  macc_params_digest() of the parameter block, 16 hex digits
 *   macc.round          rounds completed when the parameters were taken, decimal
 *   macc.agent          who trained them: an agent's name, or what macc-sim exported
 *   macc.task           "classification" or "regression"
 *   macc.standardized   "yes" or "no"
 * and producer_name is "macc". The reader takes back only files with these: it rebuilds the
 * model from macc.spec, checks that the graph is exactly the one the writer makes for that
 * model (nodes, inputs, outputs), copies the initializers into a parameter block and checks
 * them against macc.params_digest. A file from another producer, or one edited after export,
 * is refused with a message that says so.
 */
#ifndef MACC_ONNX_H
#define MACC_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "macc/err.h"
#include "macc/nn.h"

#define MACC_ONNX_FORMAT 1
/* Largest file read or written: protobuf's 2 GiB message limit. */
#define MACC_ONNX_MAX_BYTES ((size_t)INT32_MAX)

/* What an export says about where its parameters come from. */
struct macc_onnx_info {
	const char *agent; /* "agent3", "macc-sim average of 4 agents", ...; NULL: "" */
	uint64_t round;    /* rounds completed when the parameters were taken */
};

/*
 * Encode model `m` (its layer stack and standardiser, if any) with parameter block `params`
 * (macc_model_nparams floats, borrowed) into a malloc'ed buffer. Errors: MACC_ETOOBIG (over
 * MACC_ONNX_MAX_BYTES), MACC_ENONFINITE (a parameter or standardiser value is NaN or infinite:
 * the model diverged), -ENOMEM.
 */
int macc_onnx_encode(const struct macc_model *m, const float *params,
		     const struct macc_onnx_info *info, uint8_t **ret_buf, size_t *ret_len,
		     struct macc_errmsg *err);

/*
 * The same, written to `path`: a temporary file in the same directory, fsync'ed and renamed
 * over `path` (readers never see half a file). "-" writes to standard output. Errors as for
 * encode, or -errno naming the file and the failing step.
 */
int macc_onnx_save(const char *path, const struct macc_model *m, const float *params,
		   const struct macc_onnx_info *info, struct macc_errmsg *err);

/* A model read back from an ONNX file macc wrote. */
struct macc_onnx_model {
	struct macc_model *model; /* owned; its standardiser set when the file has one */
	float *params;            /* owned, macc_model_nparams(model) floats */
	uint64_t digest;          /* macc.params_digest (checked against params) */
	uint64_t round;           /* macc.round */
	char agent[256];          /* macc.agent (cut to fit) */
};

/*
 * Read an ONNX buffer that macc_onnx_encode made (`name` is only used in messages). The model
 * is created with room for `max_batch` samples per forward pass. On failure *ret is untouched.
 * Errors: MACC_EMALFORMED (not a protobuf ModelProto), MACC_EMODEL (not written by macc, or its
 * graph or initializers are not what macc writes for its spec), MACC_EVERSION (a macc.format
 * this build does not read), MACC_ECORRUPT (parameters that do not match macc.params_digest),
 * MACC_ESPEC (a spec this build cannot build), -ENOMEM.
 */
int macc_onnx_decode(const uint8_t *buf, size_t len, const char *name, size_t max_batch,
		     struct macc_onnx_model *ret, struct macc_errmsg *err);
/* The same from a file (at most MACC_ONNX_MAX_BYTES); also -errno naming the file. */
int macc_onnx_load(const char *path, size_t max_batch, struct macc_onnx_model *ret,
		   struct macc_errmsg *err);
void macc_onnx_model_finish(struct macc_onnx_model *m); /* zeroed ok */

#endif
