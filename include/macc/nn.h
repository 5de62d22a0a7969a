/*
 * nn.h - the learning core: models described by spec strings, forward/backward over one flat
 * parameter block, the local optimiser and learning-rate schedules.
 *
 * A struct macc_model holds the architecture and the per-batch workspace (activations,
 * im2col buffers). It holds no parameters: parameters, gradients and momentum are flat float
 * blocks of macc_model_nparams() floats owned by the caller, so that mixing, signing, sending and
 * checkpointing them is one vector operation or one write. Named views (offset, count) describe
 * which slice of the block belongs to which layer tensor.
 *
 * A model object is used by one thread at a time (its workspace is mutable). Several agents in
 * one process use one model object each. All dense math goes through OpenBLAS; results are
 * deterministic for a given seed and thread count (and the simulator keeps BLAS at one thread
 * per agent so they do not depend on --threads at all).
 */
#ifndef MACC_NN_H
#define MACC_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macc/err.h"
#include "macc/rng.h"

struct macc_model;

/*
 * Build a model from its spec:
 *   logreg:IN-OUT                    multinomial logistic regression
 *   mlp:IN-H1-...-OUT[:tanh]         dense layers, ReLU (default) or tanh between them
 *   cnn:lenet5                       1x28x28 input: conv5x5x6 (pad 2)-relu-pool2-conv5x5x16-relu-
 *                                    pool2-flatten-120-relu-84-relu-10 (the PyTorch reference's)
 *   cnn:cifar                        3x32x32 input, small CNN for CIFAR-10 (layout in model.c:
 *                                    3 x [conv3x3 pad 1 (16/32/64)-relu-pool2]-1024-128-relu-10)
 * Options may follow after ',': `dropout=P` (off by default) inserts inverted dropout after each
 * hidden dense layer's activation. `max_batch` sizes the workspace; batches up to that size
 * may be passed later.
 * Errors: MACC_ESPEC with a message naming what was wrong; -ENOMEM.
 */
int macc_model_create(const char *spec, size_t max_batch, struct macc_model **ret_model,
		      struct macc_errmsg *err);
void macc_model_destroy(struct macc_model *m); /* NULL ok */

size_t macc_model_nparams(const struct macc_model *m);
size_t macc_model_input_dim(const struct macc_model *m);  /* floats per sample, C*H*W */
uint32_t macc_model_nclasses(const struct macc_model *m); /* outputs */
size_t macc_model_max_batch(const struct macc_model *m);
/* Canonical spec (normalised spelling). Borrowed until destroy. */
const char *macc_model_spec(const struct macc_model *m);
/* Stable 64-bit hash of (canonical spec, nparams), the same on every machine and build: FNV-1a
 * over the bytes of "<canonical spec>/<nparams>". Peers compare it in the handshake. */
uint64_t macc_model_hash(const struct macc_model *m);

/* Named slices of the flat parameter block: "dense1.w", "dense1.b", "conv1.w", ... */
struct macc_param_view {
	const char *name;
	size_t offset; /* in floats */
	size_t count;
};
size_t macc_model_nviews(const struct macc_model *m);
const struct macc_param_view *macc_model_view(const struct macc_model *m, size_t i);

/* Initialise `params` (nparams floats) like PyTorch's default for Linear and Conv2d
 * (kaiming-uniform with a = sqrt(5)): every weight and every bias of a layer is drawn from
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = inputs (dense) or C*KH*KW (conv), view after
 * view in block order, from macc_rng seeded with (seed, MACC_STREAM_INIT). Identical on every
 * agent for the same seed. */
void macc_model_init_params(const struct macc_model *m, float *params, uint64_t seed);

/*
 * One mini-batch: forward, softmax cross-entropy, backward. Overwrites `grads` (nparams floats)
 * with the gradient of the mean loss over the batch plus weight_decay * params, and returns the
 * mean loss (without the decay term). x: [batch][input_dim]; y: [batch] labels in
 * [0, nclasses). `dropout_rng` may be NULL when the model has no dropout. 1 <= batch <= max_batch.
 */
float macc_model_train_batch(struct macc_model *m, const float *params, float *grads,
			     const float *x, const int32_t *y, size_t batch, float weight_decay,
			     struct macc_rng *dropout_rng);

/* Mean loss and accuracy over n samples (processed in chunks of max_batch, dropout off).
 * Returns 0. */
int macc_model_evaluate(struct macc_model *m, const float *params, const float *x,
			const int32_t *y, size_t n, double *ret_loss, double *ret_acc);

/* Logits for n samples into out[n][nclasses]. */
void macc_model_predict(struct macc_model *m, const float *params, const float *x, size_t n,
			float *out);

/* A 64-bit digest of a float block's bytes (its IEEE-754 bit patterns read as little-endian
 * 64-bit words, tail bytes zero-padded, then finalised; defined in digest.c). Not
 * cryptographic: the simulator and the daemon print it so runs can be compared bit for bit. */
uint64_t macc_params_digest(const float *x, size_t n);

/* OpenBLAS thread count for this process (openblas_set_num_threads). */
void macc_nn_set_threads(int n);

/*
 * Local optimiser: heavy-ball momentum SGD on flat blocks (weight decay is already in g):
 *   v <- beta * v - alpha * g;  x <- x + v            (nesterov: x <- x + beta * v - alpha * g)
 * This is also what ALGORITHMS.md calls a purely local step.
 */
void macc_sgd_step(size_t n, float *x, float *v, const float *g, float alpha, float beta,
		   bool nesterov);

/* Learning-rate schedules: "const", "step:EVERY:GAMMA" (multiply by GAMMA every EVERY epochs),
 * "cosine" (to 0 over the run). */
enum macc_lr_kind { MACC_LR_CONST, MACC_LR_STEP, MACC_LR_COSINE };
struct macc_lr_schedule {
	enum macc_lr_kind kind;
	float base;
	uint32_t step_every; /* epochs */
	float step_gamma;
};
int macc_lr_parse(const char *spec, float base, struct macc_lr_schedule *ret,
		  struct macc_errmsg *err);
/* Learning rate at `epoch` (0-based, fractional epochs allowed) of a run of `total_epochs`. */
float macc_lr_at(const struct macc_lr_schedule *s, double epoch, double total_epochs);

/* The BLAS kernel OpenBLAS chose for this process ("Haswell", "ARMV8", ...; never NULL). */
const char *macc_nn_blas_kernel(void);

#endif
