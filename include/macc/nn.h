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

#include "macc/data.h"
#include "macc/err.h"
#include "macc/rng.h"

struct macc_model;

/*
 * Build a model from its spec. A spec is a LAYER STACK, the layers in order separated by
 * commas (whitespace also separates, so a model file may put one layer per line):
 *   input:N | input:CxHxW            first: N features, or a C-channel HxW image
 *   dense:N                          fully connected, N outputs (needs a flat input)
 *   conv:F:K[:stride=S][:pad=P]      2-D convolution, F filters of KxK (K may be KHxKW)
 *   maxpool:K[:stride=S]             max over KxK windows (stride defaults to K)
 *   avgpool:K[:stride=S]             mean over KxK windows
 *   flatten                          CxHxW -> C*H*W features
 *   relu | leakyrelu[:A] | tanh | sigmoid | gelu     activations (leaky slope A, 0.01)
 *   dropout:P                        inverted dropout, rate P in [0, 1)
 *   loss:ce | loss:mse               last, optional: softmax cross-entropy over the outputs
 *                                    (classification, the default) or mean squared error
 *                                    (regression, one output per target)
 * e.g. "input:1x28x28,conv:6:5:pad=2,relu,maxpool:2,flatten,dense:10". "@PATH" reads the
 * stack from a file ('#' starts a comment). The names of earlier releases are aliases that
 * expand to a stack (and keep their canonical names, hashes and parameters):
 *   logreg:IN-OUT                    input:IN,dense:OUT
 *   mlp:IN-H1-...-OUT[:tanh]         dense layers, ReLU (default) or tanh between them
 *   cnn:lenet5                       1x28x28 input: conv5x5x6 (pad 2)-relu-pool2-conv5x5x16-relu-
 *                                    pool2-flatten-120-relu-84-relu-10 (the PyTorch reference's)
 *   cnn:cifar                        3x32x32 input, small CNN for CIFAR-10 (layout in model.c:
 *                                    3 x [conv3x3 pad 1 (16/32/64)-relu-pool2]-1024-128-relu-10)
 * and accept the option ",dropout=P" (dropout after each hidden dense layer's activation).
 * `max_batch` sizes the workspace; batches up to that size may be passed later.
 * Errors: MACC_ESPEC with a message naming the layer and what was wrong; -ENOMEM; a model
 * file that cannot be read: -errno.
 */
int macc_model_create(const char *spec, size_t max_batch, struct macc_model **ret_model,
		      struct macc_errmsg *err);
void macc_model_destroy(struct macc_model *m); /* NULL ok */

size_t macc_model_nparams(const struct macc_model *m);
size_t macc_model_input_dim(const struct macc_model *m);  /* floats per sample, C*H*W */
uint32_t macc_model_nclasses(const struct macc_model *m); /* outputs */
size_t macc_model_max_batch(const struct macc_model *m);
/* Canonical spec: the alias name when the stack is one (cnn:lenet5, mlp:784-256-128-10, ...),
 * else the normalised stack ("input:8,dense:16,relu,dense:3,loss:ce"): every number in its
 * shortest form, defaults left out except the loss. Two specs that build the same stack have
 * the same canonical spec (one historical exception: "mlp:IN-OUT", without a hidden layer,
 * keeps its own name; the stack spells it "logreg:IN-OUT"). Borrowed until destroy. */
const char *macc_model_spec(const struct macc_model *m);
/* Stable 64-bit hash of (canonical spec, nparams), the same on every machine and build: FNV-1a
 * over the bytes of "<canonical spec>/<nparams>". Peers compare it in the handshake. */
uint64_t macc_model_hash(const struct macc_model *m);

/* The layer stack, for exporters and printers. Every layer maps to standard ONNX operators:
 * DENSE Gemm (transB = 1), CONV Conv, MAXPOOL MaxPool, AVGPOOL AveragePool, FLATTEN Flatten,
 * RELU Relu, LEAKY_RELU LeakyRelu, TANH Tanh, SIGMOID Sigmoid, GELU Erf-based Gelu, DROPOUT
 * the identity at inference; the loss is Softmax (classification) or nothing (regression). */
enum macc_layer_kind {
	MACC_LAYER_DENSE,
	MACC_LAYER_CONV,
	MACC_LAYER_MAXPOOL,
	MACC_LAYER_AVGPOOL,
	MACC_LAYER_FLATTEN,
	MACC_LAYER_RELU,
	MACC_LAYER_LEAKY_RELU,
	MACC_LAYER_TANH,
	MACC_LAYER_SIGMOID,
	MACC_LAYER_GELU,
	MACC_LAYER_DROPOUT,
};
enum macc_loss { MACC_LOSS_SOFTMAX_CE, MACC_LOSS_MSE };

/* Shape of one sample: a vector of c features (flat; h = w = 1) or a c x h x w image, stored
 * channels first ([C][H][W], like ONNX and PyTorch). */
struct macc_shape {
	uint32_t c, h, w;
	bool flat;
};

struct macc_layer {
	enum macc_layer_kind kind;
	struct macc_shape in, out;
	uint32_t kh, kw, stride, pad; /* CONV (filters = out.c), MAXPOOL, AVGPOOL (pad 0) */
	float alpha;                  /* LEAKY_RELU negative slope, DROPOUT rate */
	/* DENSE: w [out.c][in.c] (ONNX Gemm B with transB = 1), b [out.c];
	 * CONV: w [out.c][in.c][kh][kw] (ONNX Conv W), b [out.c]. Offsets in floats into the
	 * parameter block; counts 0 for layers without parameters. */
	size_t w_off, w_count, b_off, b_count;
};

size_t macc_model_nlayers(const struct macc_model *m);
/* Layer i (NULL past the end). Borrowed until destroy. */
const struct macc_layer *macc_model_layer(const struct macc_model *m, size_t i);
enum macc_loss macc_model_loss(const struct macc_model *m);
struct macc_shape macc_model_input_shape(const struct macc_model *m);

/*
 * Whether data fits the model: the sample size (and the image shape, when both have one), and
 * the targets: a classification model needs class labels and exactly as many outputs as the
 * training data has classes (test labels must be below that); a regression model needs as
 * many outputs as the data has targets. `test` may be NULL. `model_name` and `data_name`
 * (the specs as the user wrote them) are only used in the message, which names both sides.
 * Returns 0 or MACC_EMODEL.
 */
int macc_model_check_data(const struct macc_model *m, const char *model_name,
			  const struct macc_dataset *train, const struct macc_dataset *test,
			  const char *data_name, struct macc_errmsg *err);

/*
 * Feature standardisation is part of the model: with a standardiser set, every forward pass
 * (train, evaluate, predict) first maps each input feature k to (x[k] - mean[k]) * inv_std[k],
 * so data is passed as read from its file, and an exported model carries the transform.
 * Both arrays have input_dim entries and are copied; NULL, NULL removes the transform.
 * Non-finite values: -EINVAL. (macc_standardizer_from_stats() in data.h computes them.)
 */
int macc_model_set_standardizer(struct macc_model *m, const float *mean, const float *inv_std);
/* The transform, or false (and nothing written) when none is set. Borrowed until the next set
 * or destroy. */
bool macc_model_standardizer(const struct macc_model *m, const float **ret_mean,
			     const float **ret_inv_std);

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

/* The same for either loss: y [batch] labels for softmax cross-entropy (t unused, may be
 * NULL), t [batch][noutputs] targets for mean squared error (y unused, may be NULL). */
float macc_model_train_batch_t(struct macc_model *m, const float *params, float *grads,
			       const float *x, const int32_t *y, const float *t, size_t batch,
			       float weight_decay, struct macc_rng *dropout_rng);

/* Mean loss and accuracy over n samples (processed in chunks of max_batch, dropout off).
 * Classification models only (a regression model reports accuracy 0). Returns 0. */
int macc_model_evaluate(struct macc_model *m, const float *params, const float *x,
			const int32_t *y, size_t n, double *ret_loss, double *ret_acc);
/* Either loss: y or t as in train_batch_t. ret_metric is the accuracy (classification) or the
 * RMSE, sqrt of the mean squared error over every target (regression; ret_loss is then that
 * mean squared error). Returns 0. */
int macc_model_evaluate_t(struct macc_model *m, const float *params, const float *x,
			  const int32_t *y, const float *t, size_t n, double *ret_loss,
			  double *ret_metric);

/* Outputs for n samples into out[n][nclasses]: logits (classification; softmax gives the
 * probabilities) or predicted values (regression). Raw inputs: the standardiser, if any,
 * is applied. */
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
 * This is also what macc-algorithms(7) calls a purely local step.
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

/*
 * BLAS kernel selection (blas.c). Debian's OpenBLAS picks its kernel set from CPUID when the
 * library loads, and falls back to a generic one (Prescott: SSE3, ~4x slower sgemm) on CPU
 * models newer than itself. At program start, before anything else, each macc program calls
 * macc_nn_blas_select(): it reads the CPU's instruction sets (CPUID, and XGETBV for the register
 * state the OS saves), decides which kernel to run with (macc_blas_decide, a pure function) and,
 * when that differs from the running one, re-executes the program (/proc/self/exe, same argv)
 * with OPENBLAS_CORETYPE set; the new image checks the kernel with an sgemm self-test in a child
 * process and goes back to the kernel it came from if the test fails. Nothing changes where
 * OpenBLAS's own pick already uses everything the CPU has. Only x86-64 is decided; elsewhere the
 * running kernel is kept and reported.
 */
#define MACC_BLAS_NAME_MAX 24

/* Raw x86 CPUID words the decision reads; zero where a leaf does not exist. Tests pass made-up
 * ones. */
struct macc_cpuid {
	char vendor[13];                           /* leaf 0: "GenuineIntel", "AuthenticAMD", ... */
	uint32_t leaf1_eax, leaf1_ecx, leaf1_edx;  /* leaf 1: signature and feature bits */
	uint32_t leaf7_ebx, leaf7_ecx, leaf7_edx;  /* leaf 7 sub-leaf 0 */
	uint32_t leaf7s1_eax;                      /* leaf 7 sub-leaf 1 (AVX512_BF16) */
	uint32_t ext1_ecx;                         /* leaf 0x80000001 (SSE4A, PREFETCHW, FMA4) */
	uint64_t xcr0;                             /* XGETBV(0), 0 when the OS has no OSXSAVE */
};

/* This CPU's words. 0, or -ENOTSUP on a machine that is not x86. */
int macc_cpuid_read(struct macc_cpuid *ret);

/* "AuthenticAMD family 25 model 1: sse3 ssse3 sse4.1 sse4.2 avx avx2 fma" (the instruction
 * sets that matter for a kernel; avx* only when the OS saves their registers). */
void macc_cpuid_describe(const struct macc_cpuid *c, char *buf, size_t len);

enum macc_blas_reason {
	MACC_BLAS_KEEP,      /* the running kernel suits this CPU: nothing changed */
	MACC_BLAS_UPGRADE,   /* OpenBLAS fell back below what the CPU runs: its best kernel */
	MACC_BLAS_EXPLICIT,  /* the kernel asked for (command line, environment or config) */
	MACC_BLAS_REFUSED,   /* the kernel asked for, or set in OPENBLAS_CORETYPE, needs
			      * instructions this CPU lacks: the automatic choice instead */
	MACC_BLAS_FALLBACK,  /* the chosen kernel failed its self-test: the previous one */
	MACC_BLAS_UNCHANGED, /* no decision possible (not x86, one-target OpenBLAS, valgrind,
			      * exec failed): the running kernel, the note says why */
};
const char *macc_blas_reason_name(enum macc_blas_reason r); /* "kept", "upgraded", ... */

struct macc_blas_choice {
	char kernel[MACC_BLAS_NAME_MAX]; /* OpenBLAS's spelling, e.g. "SkylakeX" */
	enum macc_blas_reason reason;
};

/*
 * Which kernel to run with, from the CPU's words, the kernel OpenBLAS is running (its core name)
 * and what was asked for: NULL, "" or "auto" for the automatic choice, else a kernel name of
 * OpenBLAS 0.3.21's x86-64 list (any case). Automatic: keep the running kernel unless it needs
 * instructions the CPU lacks or it is of an older instruction-set level (SSE < AVX < AVX2+FMA
 * < AVX-512) than the CPU runs; then the CPU's best kernel (SkylakeX, Zen on AMD/Hygon or
 * Haswell, Sandybridge, Prescott). A kernel is never chosen whose instructions the CPU lacks.
 * Pure. Errors: MACC_ECONFIG for an unknown name (err lists the known ones).
 */
int macc_blas_decide(const struct macc_cpuid *cpu, const char *running, const char *want,
		     struct macc_blas_choice *ret, struct macc_errmsg *err);

/* What macc_nn_blas_select() did, for the log, --version and the program's output. */
struct macc_blas_report {
	char kernel[MACC_BLAS_NAME_MAX];    /* the kernel this process runs with */
	char detected[MACC_BLAS_NAME_MAX];  /* OpenBLAS's own pick ("" when OPENBLAS_CORETYPE
					     * was set by the user, so it is not known) */
	char requested[MACC_BLAS_NAME_MAX]; /* "auto" or the kernel asked for */
	const char *source;                 /* where the request came from: "default", "command
					     * line", "MACC_BLAS_KERNEL", "config" or
					     * "OPENBLAS_CORETYPE" (static string) */
	enum macc_blas_reason reason;
	char cpu[160];                      /* macc_cpuid_describe(), or "not x86" */
	char note[200];                     /* self-test result, why nothing was done, ... */
};

/*
 * Choose the kernel for this process (see above). Call it first in main(), before threads, files
 * or sockets: it may replace the process image (execv keeps the pid, fds and environment). The
 * request is taken from `cli` (a command-line option), else the environment variable
 * MACC_BLAS_KERNEL, else `config` (the [train] blas_kernel key), else automatic; each may be
 * NULL. `argv` is main()'s (NULL: never re-execute). The environment is left as the program
 * found it once the choice is made. Returns 0 with *ret filled; MACC_ECONFIG for an unknown
 * kernel name (err names it and where it came from); MACC_ECORRUPT when a kernel failed its
 * self-test and the process could not be re-executed with the previous one.
 * For tests, MACC_BLAS_SELFTEST_FAULT=KERNEL makes the self-test fail when run with KERNEL.
 */
int macc_nn_blas_select(const char *cli, const char *config, char *const argv[],
			struct macc_blas_report *ret, struct macc_errmsg *err);

/* One line: "Zen (kept; OpenBLAS 0.3.21 chose Zen; AuthenticAMD family 25 ...)". */
void macc_nn_blas_describe(const struct macc_blas_report *r, char *buf, size_t len);

/* The kernel OpenBLAS is running with (its core name, e.g. "Zen"); for status, metrics and the
 * HELLO platform field. Never NULL; static storage. */
const char *macc_nn_blas_kernel(void);

/* OpenBLAS's build string, e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ... Zen MAX_THREADS=64".
 * Static storage. */
const char *macc_nn_blas_config(void);

/*
 * sgemm self-test: row-major products C = alpha op(A) op(B) + beta C over several shapes (the
 * small-matrix and the blocked paths, all four transpose cases) against a naive loop that sums
 * in double. Passes when every element is within 1e-4 of sum_k |alpha a b| + |beta c| relative
 * error (float rounding is ~k * 6e-8; a wrong or missing term is ~1/k). Returns 0, MACC_ECORRUPT
 * when a result disagrees (or is not finite), -ENOMEM; *ret_worst is the worst relative error.
 * macc_blas_selftest_with() tests any sgemm (the unit test feeds it broken ones).
 */
typedef void (*macc_sgemm_fn)(void *ctx, bool ta, bool tb, int m, int n, int k, float alpha,
			      const float *a, int lda, const float *b, int ldb, float beta, float *c,
			      int ldc);
int macc_blas_selftest_with(macc_sgemm_fn f, void *ctx, double *ret_worst);
int macc_nn_blas_selftest(double *ret_worst); /* with OpenBLAS's cblas_sgemm */

/* The sgemm limit for benchmarks: GFLOP/s (2 n^3 per product) of n x n x n row-major sgemm at
 * the current thread count, timed over at least `seconds` of wall time after one warm-up
 * product, per second of wall time and per second of the process's CPU time (steadier on a
 * shared machine; with one thread the same on an idle one). Returns 0, -ENOMEM or -EINVAL. */
int macc_nn_blas_sgemm_gflops(int n, double seconds, double *ret_wall, double *ret_cpu);

#endif
