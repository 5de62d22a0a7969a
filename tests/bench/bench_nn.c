/*
 * bench_nn.c - training throughput of the learning core, and a single-agent training driver.
 *
 * Without arguments: for mlp:784-256-128-10, cnn:lenet5 and cnn:cifar at batch 16, 64 and 256,
 * times the whole training step (gather the batch, forward, loss, backward, momentum SGD step)
 * for a fixed wall time and prints samples/s. It trains on Fashion-MNIST when the loader finds
 * it, on synthetic data otherwise, and cnn:cifar always on synthetic 3x32x32 data (the speed is
 * the same: nothing depends on the values).
 *
 * With --train MODEL: trains one agent on Fashion-MNIST exactly like the PyTorch reference
 * (/work/shared/reference/torch_train.py: same batch, lr, momentum, PyTorch-style init, partial
 * last batch dropped) and prints one key=value line per epoch and a final summary line with
 * test_acc= and samples_per_s=, so tests/bench/bench_train.sh can put it beside the reference.
 *
 * With --sgemm N: the sgemm limit, GFLOP/s of N x N x N sgemm at --threads T (default 1) for
 * --seconds S, as the single line "sgemm n=N threads=T gflops=G gflops_per_cpu_s=C blas=KERNEL"
 * (per second of wall time, and per CPU second times T like samples_per_cpu_s; bench_train.sh
 * divides the MLP's FLOP per second by it).
 *
 * Like the programs, it first chooses the OpenBLAS kernel (macc_nn_blas_select: automatic, or
 * MACC_BLAS_KERNEL), so it measures what macc-sim and macc-agentd run; every mode prints the
 * kernel (blas=) and the choice on stderr.
 *
 *   bench_nn [--threads T] [--seconds S] [--model M] [--batch B]   (--model, --batch: only
 *            those rows of the table; B one of 16, 64, 256)
 *   bench_nn --train MODEL [--epochs E] [--batch B] [--lr LR] [--momentum M] [--seed S]
 *            [--threads T] [--data SPEC]
 *   bench_nn --sgemm N [--threads T] [--seconds S]
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "macc/data.h"
#include "macc/err.h"
#include "macc/nn.h"
#include "macc/rng.h"

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

/* CPU time of the whole process: on a shared, busy machine it measures the work done, where
 * wall time also measures the neighbours. */
static double cpu_now(void)
{
	return clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

/* n random samples of c x h x w floats in [0, 1) and 10 classes. */
static int synth(struct macc_dataset *d, size_t n, uint32_t c, uint32_t h, uint32_t w)
{
	struct macc_rng rng;

	memset(d, 0, sizeof(*d));
	d->n = n;
	d->channels = c;
	d->height = h;
	d->width = w;
	d->dim = (size_t)c * h * w;
	d->nclasses = 10;
	d->x = malloc(d->n * d->dim * sizeof(float));
	d->y = malloc(d->n * sizeof(int32_t));
	if (!d->x || !d->y) {
		return -ENOMEM;
	}
	macc_rng_seed(&rng, 1, 0);
	for (size_t i = 0; i < d->n * d->dim; i++) {
		d->x[i] = (float)macc_rng_uniform(&rng);
	}
	for (size_t i = 0; i < d->n; i++) {
		d->y[i] = (int32_t)macc_rng_below(&rng, 10);
	}
	return 0;
}

/* Fashion-MNIST, or n random samples of 784 floats and 10 classes when it is not installed. */
static int load(const char *spec, enum macc_split split, size_t n_fallback,
		struct macc_dataset *d, bool *synthetic)
{
	struct macc_errmsg err = {{0}};
	int r = macc_dataset_load(spec, split, d, &err);

	*synthetic = false;
	if (r == 0) {
		return 0;
	}
	if (strcmp(spec, "synthetic") != 0) {
		fprintf(stderr, "bench_nn: %s: %s\n", spec, err.text);
	}
	*synthetic = true;
	return synth(d, n_fallback, 1, 28, 28);
}

struct trainer {
	struct macc_model *m;
	struct macc_batcher b;
	float *params, *grads, *mom, *x;
	int32_t *y;
	size_t np, batch;
};

static int trainer_init(struct trainer *t, const char *spec, const struct macc_dataset *d,
			size_t batch, uint64_t seed)
{
	struct macc_errmsg err = {{0}};
	int r;

	memset(t, 0, sizeof(*t));
	r = macc_model_create(spec, batch, &t->m, &err);
	if (r < 0) {
		fprintf(stderr, "bench_nn: %s\n", err.text);
		return r;
	}
	if (macc_model_input_dim(t->m) != d->dim) {
		fprintf(stderr, "bench_nn: model %s wants %zu inputs, data has %zu\n", spec,
			macc_model_input_dim(t->m), d->dim);
		return MACC_EMODEL;
	}
	t->np = macc_model_nparams(t->m);
	t->batch = batch;
	t->params = calloc(t->np, sizeof(float));
	t->grads = calloc(t->np, sizeof(float));
	t->mom = calloc(t->np, sizeof(float));
	t->x = malloc(batch * d->dim * sizeof(float));
	t->y = malloc(batch * sizeof(int32_t));
	if (!t->params || !t->grads || !t->mom || !t->x || !t->y) {
		return -ENOMEM;
	}
	macc_model_init_params(t->m, t->params, seed);
	return macc_batcher_init(&t->b, d, NULL, d->n, batch, seed, MACC_STREAM_BATCH);
}

static void trainer_finish(struct trainer *t)
{
	macc_batcher_finish(&t->b);
	macc_model_destroy(t->m);
	free(t->params);
	free(t->grads);
	free(t->mom);
	free(t->x);
	free(t->y);
}

static float trainer_step(struct trainer *t, float lr, float momentum)
{
	float loss;

	macc_batcher_next(&t->b, t->x, t->y);
	loss = macc_model_train_batch(t->m, t->params, t->grads, t->x, t->y, t->batch, 0.0f, NULL);
	macc_sgd_step(t->np, t->params, t->mom, t->grads, lr, momentum, false);
	return loss;
}

static int bench(const char *only, size_t only_batch, int threads, double seconds)
{
	static const char *const models[] = {"mlp:784-256-128-10", "cnn:lenet5", "cnn:cifar"};
	static const size_t batches[] = {16, 64, 256};
	struct macc_dataset d, cifar;
	bool synthetic;
	int r = load("fashion-mnist", MACC_SPLIT_TRAIN, 8192, &d, &synthetic);

	if (r < 0 || synth(&cifar, 4096, 3, 32, 32) < 0) {
		return 1;
	}
	macc_nn_set_threads(threads);
	printf("data=%s threads=%d blas=%s\n", synthetic ? "synthetic" : "fashion-mnist", threads,
	       macc_nn_blas_kernel());
	for (size_t mi = 0; mi < 3; mi++) {
		for (size_t bi = 0; bi < 3; bi++) {
			struct trainer t;
			size_t steps = 0;

			if ((only && strcmp(only, models[mi]) != 0) ||
			    (only_batch > 0 && only_batch != batches[bi])) {
				continue;
			}
			if (trainer_init(&t, models[mi], mi == 2 ? &cifar : &d, batches[bi], 1) < 0) {
				trainer_finish(&t);
				macc_dataset_finish(&d);
				macc_dataset_finish(&cifar);
				return 1;
			}
			for (int w = 0; w < 3; w++) {
				trainer_step(&t, 0.01f, 0.9f); /* warm-up */
			}
			double t0 = now(), c0 = cpu_now(), el;

			do {
				for (int k = 0; k < 8; k++, steps++) {
					trainer_step(&t, 0.01f, 0.9f);
				}
				el = now() - t0;
			} while (el < seconds);
			double cpu = cpu_now() - c0;

			printf("model=%s batch=%zu threads=%d steps=%zu samples_per_s=%.0f "
			       "samples_per_cpu_s=%.0f\n", models[mi], batches[bi], threads, steps,
			       (double)(steps * batches[bi]) / el,
			       (double)(steps * batches[bi]) * threads / cpu);
			fflush(stdout);
			trainer_finish(&t);
		}
	}
	macc_dataset_finish(&d);
	macc_dataset_finish(&cifar);
	return 0;
}

static int train(const char *spec, const char *data, int epochs, size_t batch, float lr,
		 float momentum, uint64_t seed, int threads)
{
	struct macc_dataset tr, te;
	struct trainer t;
	bool syn1, syn2;
	double train_s = 0.0, loss_sum = 0.0, acc = 0.0, tloss;
	size_t seen = 0, nb = 0;
	int rc = 1;

	if (load(data, MACC_SPLIT_TRAIN, 8192, &tr, &syn1) < 0) {
		return 1;
	}
	if (load(data, MACC_SPLIT_TEST, 2048, &te, &syn2) < 0) {
		macc_dataset_finish(&tr);
		return 1;
	}
	macc_nn_set_threads(threads);
	if (trainer_init(&t, spec, &tr, batch, seed) < 0) {
		goto out;
	}
	size_t per_epoch = macc_batcher_batches_per_epoch(&t.b);
	/* evaluation reuses the trainer's model: its workspace holds `batch` samples */
	for (int ep = 1; ep <= epochs; ep++) {
		double t0 = now();

		loss_sum = 0.0;
		for (nb = 0; nb < per_epoch; nb++) {
			loss_sum += trainer_step(&t, lr, momentum);
		}
		seen += per_epoch * batch;
		train_s += now() - t0;
		macc_model_evaluate(t.m, t.params, te.x, te.y, te.n, &tloss, &acc);
		printf("epoch=%d train_loss=%.4f test_loss=%.4f test_acc=%.4f elapsed_s=%.2f\n", ep,
		       loss_sum / (double)nb, tloss, acc, train_s);
		fflush(stdout);
	}
	printf("impl=macc-nn model=%s threads=%d batch=%zu data=%s test_acc=%.4f train_loss=%.4f "
	       "samples_per_s=%.0f blas=%s\n", macc_model_spec(t.m), threads, batch,
	       syn1 ? "synthetic" : data, acc, nb ? loss_sum / (double)nb : 0.0,
	       train_s > 0 ? (double)seen / train_s : 0.0, macc_nn_blas_kernel());
	rc = 0;
out:
	trainer_finish(&t);
	macc_dataset_finish(&tr);
	macc_dataset_finish(&te);
	return rc;
}

/* The sgemm limit: one line, see the top of this file. */
static int sgemm_limit(int n, int threads, double seconds)
{
	double wall = 0.0, cpu = 0.0;

	macc_nn_set_threads(threads);
	if (macc_nn_blas_sgemm_gflops(n, seconds, &wall, &cpu) < 0) {
		fprintf(stderr, "bench_nn: sgemm %d: out of memory\n", n);
		return 1;
	}
	printf("sgemm n=%d threads=%d gflops=%.2f gflops_per_cpu_s=%.2f blas=%s\n", n, threads,
	       wall, cpu * threads, macc_nn_blas_kernel());
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_nn [--threads T] [--seconds S] [--model M] [--batch B]\n"
				"       bench_nn --train MODEL [--epochs E] [--batch B] [--lr LR] "
		"[--momentum M] [--seed S] [--threads T] [--data SPEC]\n"
		"       bench_nn --sgemm N [--threads T] [--seconds S]\n");
}

int main(int argc, char **argv)
{
	const char *model = NULL, *only = NULL, *data = "fashion-mnist";
	int epochs = 1, threads = 1;
	size_t batch = 64;
	bool batch_set = false;
	float lr = 0.05f, momentum = 0.9f;
	uint64_t seed = 1;
	double seconds = 1.5;
	int sgemm = 0;
	struct macc_blas_report blas;
	struct macc_errmsg err = {{0}};
	char line[512];

	if (macc_nn_blas_select(NULL, NULL, argv, &blas, &err) < 0) {
		fprintf(stderr, "bench_nn: BLAS kernel: %s\n", err.text);
		return 2;
	}
	macc_nn_blas_describe(&blas, line, sizeof(line));
	fprintf(stderr, "bench_nn: BLAS kernel %s\n", line);

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v) {
			usage();
			return 2;
		}
		i++;
		if (strcmp(a, "--train") == 0) {
			model = v;
		} else if (strcmp(a, "--model") == 0) {
			only = v;
		} else if (strcmp(a, "--data") == 0) {
			data = v;
		} else if (strcmp(a, "--epochs") == 0) {
			epochs = atoi(v);
		} else if (strcmp(a, "--batch") == 0) {
			batch = (size_t)strtoul(v, NULL, 10);
			batch_set = true;
		} else if (strcmp(a, "--lr") == 0) {
			lr = strtof(v, NULL);
		} else if (strcmp(a, "--momentum") == 0) {
			momentum = strtof(v, NULL);
		} else if (strcmp(a, "--seed") == 0) {
			seed = strtoull(v, NULL, 10);
		} else if (strcmp(a, "--threads") == 0) {
			threads = atoi(v);
		} else if (strcmp(a, "--seconds") == 0) {
			seconds = strtod(v, NULL);
		} else if (strcmp(a, "--sgemm") == 0) {
			sgemm = atoi(v);
		} else {
			usage();
			return 2;
		}
	}
	if (epochs < 1 || batch < 1 || threads < 1 || !(seconds > 0)) {
		usage();
		return 2;
	}
	if (sgemm > 0) {
		return sgemm_limit(sgemm, threads, seconds);
	}
	if (model) {
		return train(model, data, epochs, batch, lr, momentum, seed, threads);
	}
	return bench(only, batch_set ? batch : 0, threads, seconds);
}
