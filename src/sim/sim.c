/*
 * sim.c - N agents in one process, synchronous rounds (see sim.h for the contract).
 *
 * Memory: the parameters of all agents are one [N][P] block, twice (x_cur is round k, x_next is
 * round k+1 being written), and so is the momentum when the algorithm sends it (dmsgd); otherwise
 * each agent updates its own momentum in place. Every agent also owns its model object (the
 * forward/backward workspace), batcher, gradient, dsgd half-step, consensus scratch and neighbour
 * table. Evaluation uses one model object per worker thread with a larger batch.
 *
 * A round (k -> k+1), as ALGORITHMS.md defines it:
 *   1. serial: the learning rate for round k from the schedule; message drops for round k drawn
 *      from one rng (seed, MACC_STREAM_DROP) in the order receiver j ascending, then its
 *      neighbours ascending (so drops do not depend on the thread count);
 *   2. parallel over agents: next mini-batch, gradient g_j at x_j^k, and for dsgd the half-step
 *      y_j = macc_algo_outgoing(); dsgd then waits at a barrier for everyone's y;
 *   3. parallel over agents: copy x_j^k (and v_j^k) to the next buffers and apply
 *      macc_consensus_step() with the neighbours' round-k values (x, or y for dsgd, and v for
 *      dmsgd), self first then neighbours ascending, each weight cast once from the double W
 *      after macc_fold_missing() removed the dropped neighbours -- exactly what the daemon does;
 *   4. serial: swap the buffers. centralized instead averages the gradients in agent order
 *      (sum, then divide by N) and takes macc_centralized_step() on the one shared model.
 *
 * Threads: a pool of T-1 workers plus the calling thread; agent j belongs to thread j mod T for
 * its whole life. Jobs are handed out with a barrier (start) and collected with another (end).
 * OpenBLAS runs at one thread in that mode, so every agent's floats are computed by the same code
 * in the same order whatever T is. A single agent runs without the pool and gives OpenBLAS the
 * threads instead.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macc/consensus.h"
#include "macc/data.h"
#include "macc/nn.h"
#include "macc/rng.h"
#include "sim.h"

/* Samples per evaluation call (workspace of the per-thread evaluation models). */
#define EVAL_CHUNK 256

struct agent {
	struct macc_model *model;
	struct macc_batcher batcher;
	bool batcher_ready;
	struct macc_rng dropout_rng;
	float *g;       /* gradient, P */
	float *y;       /* dsgd half-step, P (else NULL) */
	float *scratch; /* 2P for macc_consensus_step */
	float *bx;      /* [batch][dim] */
	int32_t *by;    /* [batch] */
	/* neighbours, ascending */
	uint32_t nnb;
	uint32_t *nb_idx;
	double *nb_w;
	double self_w;
	bool *arrived;
	double *w_out;
	struct macc_neighbour *nb;
	/* per-round results */
	double loss_sum;
	/* evaluation */
	double acc;
};

/* A reusable barrier whose party count can be lowered (thread start-up failure). */
struct barrier {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned parties, waiting;
	unsigned long generation;
};

enum job { JOB_ROUND, JOB_EVAL_AGENTS, JOB_EVAL_AVG };

struct worker {
	struct sim *sim;
	unsigned index;
	pthread_t th;
};

struct sim {
	struct sim_opts o;
	uint32_t n;   /* agents */
	size_t p;     /* parameters */
	size_t dim;   /* floats per sample */
	bool single;  /* n == 1: plain local training */
	enum macc_algo algo;
	bool centralized, sends_v, after_grad;
	struct macc_hparams hp;
	struct macc_lr_schedule lr;

	struct macc_dataset train, test;
	bool train_loaded, test_loaded;
	size_t eval_n;
	struct macc_partition part;
	bool part_made;
	struct macc_graph graph;
	bool graph_made;
	double *W;
	bool have_gap;
	double gap;

	float *xa, *xb, *va, *vb;
	float *x_cur, *x_next, *v_cur, *v_next;
	float *xbar;
	float *gbar;
	struct agent *agents;

	struct macc_rng drop_rng;
	uint64_t dropped, messages; /* simulated drops / directed messages so far */
	uint64_t round, epoch_rounds, total_rounds;

	/* pool */
	unsigned nthreads;
	struct macc_model **eval_models; /* nthreads */
	double *eval_loss, *eval_acc;    /* nthreads, JOB_EVAL_AVG partial results */
	size_t *eval_cnt;
	struct worker *workers;          /* nthreads (index 0 = caller, no thread) */
	unsigned started;                /* worker threads running */
	struct barrier bar;
	bool bar_ready;
	enum job job;
	bool stop;
};

static void barrier_init(struct barrier *b, unsigned parties)
{
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->parties = parties;
	b->waiting = 0;
	b->generation = 0;
}

static void barrier_finish(struct barrier *b)
{
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
}

static void barrier_release_locked(struct barrier *b)
{
	b->waiting = 0;
	b->generation++;
	pthread_cond_broadcast(&b->cv);
}

static void barrier_wait(struct barrier *b)
{
	pthread_mutex_lock(&b->mu);
	unsigned long gen = b->generation;

	if (++b->waiting >= b->parties) {
		barrier_release_locked(b);
	} else {
		while (gen == b->generation) {
			pthread_cond_wait(&b->cv, &b->mu);
		}
	}
	pthread_mutex_unlock(&b->mu);
}

/* Lower the party count (used when not every worker could be started). */
static void barrier_set_parties(struct barrier *b, unsigned parties)
{
	pthread_mutex_lock(&b->mu);
	b->parties = parties;
	if (b->waiting > 0 && b->waiting >= b->parties) {
		barrier_release_locked(b);
	}
	pthread_mutex_unlock(&b->mu);
}

static inline float *agent_x(float *block, const struct sim *s, uint32_t j)
{
	return block + (size_t)j * s->p;
}

/* ---- one round ------------------------------------------------------------------------------ */

static void agent_grad(struct sim *s, uint32_t j)
{
	struct agent *a = &s->agents[j];
	const float *x = s->centralized ? s->x_cur : agent_x(s->x_cur, s, j);
	float loss;

	macc_batcher_next(&a->batcher, a->bx, a->by);
	loss = macc_model_train_batch(a->model, x, a->g, a->bx, a->by, s->o.batch,
				      s->o.weight_decay, &a->dropout_rng);
	a->loss_sum += loss;
	if (s->after_grad) {
		(void)macc_algo_outgoing(s->algo, &s->hp, s->p, x, a->g, a->y);
	}
}

static void agent_mix(struct sim *s, uint32_t j)
{
	struct agent *a = &s->agents[j];
	double self_w = a->self_w;
	size_t cnt = 0;
	float *xn = agent_x(s->x_next, s, j);
	float *vn = agent_x(s->v_next, s, j);

	if (s->o.drop_prob > 0.0) {
		(void)macc_fold_missing(a->self_w, a->nb_w, a->arrived, a->nnb, &self_w, a->w_out);
	} else {
		memcpy(a->w_out, a->nb_w, a->nnb * sizeof(*a->w_out));
	}
	for (uint32_t i = 0; i < a->nnb; i++) {
		uint32_t l = a->nb_idx[i];

		if (s->o.drop_prob > 0.0 && !a->arrived[i]) {
			continue;
		}
		a->nb[cnt].w = (float)a->w_out[i];
		a->nb[cnt].x = s->after_grad ? s->agents[l].y : agent_x(s->x_cur, s, l);
		a->nb[cnt].v = s->sends_v ? agent_x(s->v_cur, s, l) : NULL;
		cnt++;
	}
	memcpy(xn, agent_x(s->x_cur, s, j), s->p * sizeof(float));
	if (s->sends_v) {
		memcpy(vn, agent_x(s->v_cur, s, j), s->p * sizeof(float));
	}
	macc_consensus_step(s->algo, &s->hp, s->p, xn, vn, a->g, (float)self_w, a->nb, cnt,
			    a->scratch);
}

/* Evaluate params on test samples [lo, hi) with model m; returns correct count and loss sum. */
static void eval_range(const struct sim *s, struct macc_model *m, const float *params, size_t lo,
		       size_t hi, double *ret_loss_sum, size_t *ret_correct)
{
	double loss = 0.0, acc = 0.0;

	*ret_loss_sum = 0.0;
	*ret_correct = 0;
	if (hi <= lo) {
		return;
	}
	(void)macc_model_evaluate(m, params, s->test.x + lo * s->dim, s->test.y + lo, hi - lo,
				  &loss, &acc);
	*ret_loss_sum = loss * (double)(hi - lo);
	*ret_correct = (size_t)llround(acc * (double)(hi - lo));
}

static void run_job(struct sim *s, unsigned t)
{
	unsigned nt = s->nthreads;

	switch (s->job) {
	case JOB_ROUND:
		for (uint32_t j = t; j < s->n; j += nt) {
			agent_grad(s, j);
		}
		if (s->centralized) {
			break;
		}
		if (s->after_grad && nt > 1) {
			barrier_wait(&s->bar);
		}
		for (uint32_t j = t; j < s->n; j += nt) {
			agent_mix(s, j);
		}
		break;
	case JOB_EVAL_AGENTS:
		for (uint32_t j = t; j < s->n; j += nt) {
			double loss;
			size_t correct;

			eval_range(s, s->eval_models[t], agent_x(s->x_cur, s, j), 0, s->eval_n, &loss,
				   &correct);
			s->agents[j].acc = (double)correct / (double)s->eval_n;
		}
		break;
	case JOB_EVAL_AVG: {
		size_t lo = s->eval_n * t / nt, hi = s->eval_n * (t + 1) / nt;

		eval_range(s, s->eval_models[t], s->xbar, lo, hi, &s->eval_loss[t], &s->eval_cnt[t]);
		break;
	}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct sim *s = w->sim;

	for (;;) {
		barrier_wait(&s->bar);
		if (s->stop) {
			break;
		}
		run_job(s, w->index);
		barrier_wait(&s->bar);
	}
	return NULL;
}

static void dispatch(struct sim *s, enum job job)
{
	s->job = job;
	if (s->nthreads == 1) {
		run_job(s, 0);
		return;
	}
	barrier_wait(&s->bar);
	run_job(s, 0);
	barrier_wait(&s->bar);
}

static void centralized_update(struct sim *s)
{
	float *gb = s->gbar;
	float fn = (float)s->n;

	memcpy(gb, s->agents[0].g, s->p * sizeof(float));
	for (uint32_t j = 1; j < s->n; j++) {
		const float *g = s->agents[j].g;

		for (size_t i = 0; i < s->p; i++) {
			gb[i] += g[i];
		}
	}
	for (size_t i = 0; i < s->p; i++) {
		gb[i] /= fn;
	}
	macc_centralized_step(&s->hp, s->p, s->x_cur, s->v_cur, gb);
}

static void draw_drops(struct sim *s)
{
	for (uint32_t j = 0; j < s->n; j++) {
		struct agent *a = &s->agents[j];

		for (uint32_t i = 0; i < a->nnb; i++) {
			a->arrived[i] = !(macc_rng_uniform(&s->drop_rng) < s->o.drop_prob);
			s->dropped += !a->arrived[i];
		}
		s->messages += a->nnb;
	}
}

static void single_round(struct sim *s)
{
	struct agent *a = &s->agents[0];
	float loss;

	macc_batcher_next(&a->batcher, a->bx, a->by);
	loss = macc_model_train_batch(a->model, s->x_cur, a->g, a->bx, a->by, s->o.batch,
				      s->o.weight_decay, &a->dropout_rng);
	a->loss_sum += loss;
	macc_sgd_step(s->p, s->x_cur, s->v_cur, a->g, s->hp.alpha, s->hp.beta, s->hp.nesterov);
}

double sim_train(struct sim *s, uint64_t rounds)
{
	double total = 0.0;

	for (uint32_t j = 0; j < s->n; j++) {
		s->agents[j].loss_sum = 0.0;
	}
	for (uint64_t r = 0; r < rounds; r++) {
		double ep = (double)s->round / (double)s->epoch_rounds;
		double total_ep = (double)s->total_rounds / (double)s->epoch_rounds;

		s->hp.alpha = macc_lr_at(&s->lr, ep, total_ep);
		if (s->single) {
			single_round(s);
			s->round++;
			continue;
		}
		if (s->o.drop_prob > 0.0 && !s->centralized) {
			draw_drops(s);
		}
		dispatch(s, JOB_ROUND);
		if (s->centralized) {
			centralized_update(s);
		} else {
			float *t = s->x_cur;

			s->x_cur = s->x_next;
			s->x_next = t;
			if (s->sends_v) {
				t = s->v_cur;
				s->v_cur = s->v_next;
				s->v_next = t;
			}
		}
		s->round++;
	}
	for (uint32_t j = 0; j < s->n; j++) {
		total += s->agents[j].loss_sum;
	}
	if (rounds == 0) {
		return 0.0;
	}
	return total / ((double)rounds * (double)s->n);
}

void sim_evaluate(struct sim *s, bool per_agent, struct sim_eval *ret)
{
	size_t correct = 0;
	bool shared = s->single || s->centralized;

	memset(ret, 0, sizeof(*ret));
	if (shared) {
		memcpy(s->xbar, s->x_cur, s->p * sizeof(float));
	} else {
		double dist = 0.0;

		/* Mean in double, agent order; the distance is taken to the exact (double) mean. */
		for (size_t i = 0; i < s->p; i++) {
			double sum = 0.0, m;

			for (uint32_t j = 0; j < s->n; j++) {
				sum += (double)s->x_cur[(size_t)j * s->p + i];
			}
			m = sum / (double)s->n;
			s->xbar[i] = (float)m;
			for (uint32_t j = 0; j < s->n; j++) {
				double d = (double)s->x_cur[(size_t)j * s->p + i] - m;

				dist += d * d;
			}
		}
		ret->consensus = dist / (double)s->n;
	}
	if (s->single) {
		double loss;

		eval_range(s, s->eval_models[0], s->xbar, 0, s->eval_n, &loss, &correct);
	} else {
		dispatch(s, JOB_EVAL_AVG);
		for (unsigned t = 0; t < s->nthreads; t++) {
			correct += s->eval_cnt[t];
		}
	}
	ret->acc_avg = (double)correct / (double)s->eval_n;
	if (!per_agent) {
		return;
	}
	ret->per_agent = true;
	if (shared) {
		ret->acc_mean = ret->acc_min = ret->acc_max = ret->acc_avg;
		return;
	}
	dispatch(s, JOB_EVAL_AGENTS);
	ret->acc_min = 1.0;
	ret->acc_max = 0.0;
	for (uint32_t j = 0; j < s->n; j++) {
		double acc = s->agents[j].acc;

		ret->acc_mean += acc;
		ret->acc_min = fmin(ret->acc_min, acc);
		ret->acc_max = fmax(ret->acc_max, acc);
	}
	ret->acc_mean /= (double)s->n;
}

/* ---- set-up --------------------------------------------------------------------------------- */

static void *xcalloc(size_t n, size_t size, int *rc)
{
	void *p;

	if (*rc < 0) {
		return NULL;
	}
	p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL) {
		*rc = -ENOMEM;
	}
	return p;
}

static int setup_graph(struct sim *s, struct macc_errmsg *err)
{
	enum macc_weights_kind kind;
	struct macc_errmsg tmp;
	int rc;

	if (macc_weights_parse(s->o.weights, &kind) < 0) {
		return macc_errf(err, MACC_ESPEC, "unknown weights '%s' (metropolis, uniform)",
				 s->o.weights);
	}
	rc = macc_graph_create(s->o.topology, s->n, s->o.seed, &s->graph, err);
	if (rc < 0) {
		return rc;
	}
	s->graph_made = true;
	s->W = calloc((size_t)s->n * s->n, sizeof(double));
	if (s->W == NULL) {
		return -ENOMEM;
	}
	rc = macc_weights_build(&s->graph, kind, s->W);
	if (rc < 0) {
		return macc_errf(err, rc, "cannot build %s weights on topology '%s'", s->o.weights,
				 s->o.topology);
	}
	rc = macc_weights_validate(&s->graph, s->W, false, err);
	if (rc < 0) {
		return rc;
	}
	if (macc_weights_validate(&s->graph, s->W, true, &tmp) < 0) {
		fprintf(stderr, "macc-sim: warning: %s weights on '%s' are not doubly stochastic; "
			"agents converge to a weighted average (%s)\n", s->o.weights, s->o.topology,
			tmp.text);
	}
	if (macc_spectral_gap(s->W, s->n, &s->gap) == 0) {
		s->have_gap = true;
	}
	return 0;
}

static int setup_agents(struct sim *s, struct macc_errmsg *err)
{
	int rc = 0;
	uint64_t min_batches = UINT64_MAX;

	s->agents = xcalloc(s->n, sizeof(*s->agents), &rc);
	if (rc < 0) {
		return rc;
	}
	for (uint32_t j = 0; j < s->n; j++) {
		struct agent *a = &s->agents[j];
		const uint32_t *shard = NULL;
		size_t shard_n = s->train.n;

		rc = macc_model_create(s->o.model, s->o.batch, &a->model, err);
		if (rc < 0) {
			return rc;
		}
		if (!s->single) {
			shard = s->part.indices + s->part.offsets[j];
			shard_n = s->part.offsets[j + 1] - s->part.offsets[j];
		}
		if (shard_n < s->o.batch) {
			return macc_errf(err, MACC_ECONFIG,
					 "agent %u's shard has %zu samples, fewer than one batch "
					 "of %u (partition '%s')", j, shard_n, s->o.batch,
					 s->o.partition);
		}
		rc = macc_batcher_init(&a->batcher, &s->train, shard, shard_n, s->o.batch,
				       s->o.seed, MACC_STREAM_BATCH + j);
		if (rc < 0) {
			return macc_errf(err, rc, "agent %u: cannot set up the batcher", j);
		}
		a->batcher_ready = true;
		if (macc_batcher_batches_per_epoch(&a->batcher) < min_batches) {
			min_batches = macc_batcher_batches_per_epoch(&a->batcher);
		}
		macc_rng_seed(&a->dropout_rng, s->o.seed, MACC_STREAM_DROPOUT + j);
		a->g = xcalloc(s->p, sizeof(float), &rc);
		a->scratch = xcalloc(2 * s->p, sizeof(float), &rc);
		a->bx = xcalloc((size_t)s->o.batch * s->dim, sizeof(float), &rc);
		a->by = xcalloc(s->o.batch, sizeof(int32_t), &rc);
		if (s->after_grad) {
			a->y = xcalloc(s->p, sizeof(float), &rc);
		}
		if (s->graph_made) {
			for (uint32_t l = 0; l < s->n; l++) {
				if (s->graph.adj[(size_t)j * s->n + l]) {
					a->nnb++;
				}
			}
			a->nb_idx = xcalloc(a->nnb, sizeof(*a->nb_idx), &rc);
			a->nb_w = xcalloc(a->nnb, sizeof(*a->nb_w), &rc);
			a->arrived = xcalloc(a->nnb, sizeof(*a->arrived), &rc);
			a->w_out = xcalloc(a->nnb, sizeof(*a->w_out), &rc);
			a->nb = xcalloc(a->nnb, sizeof(*a->nb), &rc);
			if (rc < 0) {
				return rc;
			}
			a->self_w = s->W[(size_t)j * s->n + j];
			for (uint32_t l = 0, i = 0; l < s->n; l++) {
				if (s->graph.adj[(size_t)j * s->n + l]) {
					a->nb_idx[i] = l;
					a->nb_w[i] = s->W[(size_t)j * s->n + l];
					a->arrived[i] = true;
					i++;
				}
			}
		}
		if (rc < 0) {
			return rc;
		}
	}
	s->epoch_rounds = s->o.epoch_rounds ? s->o.epoch_rounds : min_batches;
	return 0;
}

static int setup_pool(struct sim *s, struct macc_errmsg *err)
{
	int rc = 0;

	s->eval_models = xcalloc(s->nthreads, sizeof(*s->eval_models), &rc);
	s->eval_loss = xcalloc(s->nthreads, sizeof(double), &rc);
	s->eval_cnt = xcalloc(s->nthreads, sizeof(size_t), &rc);
	s->workers = xcalloc(s->nthreads, sizeof(*s->workers), &rc);
	if (rc < 0) {
		return rc;
	}
	for (unsigned t = 0; t < s->nthreads; t++) {
		rc = macc_model_create(s->o.model, EVAL_CHUNK, &s->eval_models[t], err);
		if (rc < 0) {
			return rc;
		}
	}
	if (s->nthreads == 1) {
		return 0;
	}
	barrier_init(&s->bar, s->nthreads);
	s->bar_ready = true;
	for (unsigned t = 1; t < s->nthreads; t++) {
		s->workers[t].sim = s;
		s->workers[t].index = t;
		rc = pthread_create(&s->workers[t].th, NULL, worker_main, &s->workers[t]);
		if (rc != 0) {
			/* Let the ones already running through the next barrier to see stop. */
			barrier_set_parties(&s->bar, t);
			return macc_errf(err, -rc, "cannot start worker thread %u: %s", t,
					 strerror(rc));
		}
		s->started = t;
	}
	return 0;
}

int sim_create(const struct sim_opts *o, struct sim **ret, struct macc_errmsg *err)
{
	struct sim *s;
	uint32_t nclasses = 0;
	int rc = 0;

	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		return -ENOMEM;
	}
	s->o = *o;
	s->n = o->agents;
	s->single = s->n == 1;
	s->nthreads = 1;
	if (!s->single) {
		s->nthreads = o->threads < s->n ? o->threads : s->n;
		if (s->nthreads == 0) {
			s->nthreads = 1;
		}
		macc_nn_set_threads(1);
	} else {
		macc_nn_set_threads((int)(o->threads ? o->threads : 1));
	}

	if (macc_algo_parse(o->algorithm, &s->algo) < 0) {
		rc = macc_errf(err, MACC_ESPEC, "unknown algorithm '%s' (dmsgd, cdmsgd, cdsgd, "
			       "dsgd, centralized)", o->algorithm);
		goto out;
	}
	s->centralized = !s->single && s->algo == MACC_ALGO_CENTRALIZED;
	s->sends_v = !s->single && !s->centralized && macc_algo_sends_momentum(s->algo);
	s->after_grad = !s->single && !s->centralized && macc_algo_sends_after_grad(s->algo);
	rc = macc_lr_parse(o->lr_schedule, o->lr, &s->lr, err);
	if (rc < 0) {
		goto out;
	}
	s->hp.alpha = o->lr;
	s->hp.beta = o->momentum;
	s->hp.omega = o->omega;
	s->hp.nesterov = o->nesterov;
	macc_rng_seed(&s->drop_rng, o->seed, MACC_STREAM_DROP);
	if (o->drop_prob > 0.0 && (s->single || s->centralized)) {
		fprintf(stderr, "macc-sim: warning: --drop-prob has no effect on %s (no messages)\n",
			s->single ? "a single agent" : "centralized");
	}

	/* The model first: a bad spec is a usage error, reported before loading any data. */
	{
		struct macc_model *m = NULL;

		rc = macc_model_create(o->model, o->batch, &m, err);
		if (rc < 0) {
			goto out;
		}
		s->p = macc_model_nparams(m);
		s->dim = macc_model_input_dim(m);
		nclasses = macc_model_nclasses(m);
		macc_model_destroy(m);
	}
	if (!s->single) {
		rc = setup_graph(s, err);
		if (rc < 0) {
			goto out;
		}
	}

	rc = macc_dataset_load(o->data, MACC_SPLIT_TRAIN, &s->train, err);
	if (rc < 0) {
		goto out;
	}
	s->train_loaded = true;
	rc = macc_dataset_load(o->data, MACC_SPLIT_TEST, &s->test, err);
	if (rc < 0) {
		goto out;
	}
	s->test_loaded = true;
	if (s->train.dim != s->dim || s->test.dim != s->dim) {
		rc = macc_errf(err, MACC_EMODEL, "model '%s' takes %zu inputs per sample but data "
			       "'%s' has %zu", o->model, s->dim, o->data, s->train.dim);
		goto out;
	}
	if (s->train.nclasses > nclasses || s->test.nclasses > nclasses) {
		rc = macc_errf(err, MACC_EMODEL, "model '%s' has %u outputs but data '%s' has %u "
			       "classes", o->model, nclasses, o->data,
			       s->train.nclasses > s->test.nclasses ? s->train.nclasses
								    : s->test.nclasses);
		goto out;
	}
	s->eval_n = s->test.n;
	if (o->eval_samples > 0 && o->eval_samples < s->eval_n) {
		s->eval_n = o->eval_samples;
	}
	if (s->eval_n == 0) {
		rc = macc_errf(err, MACC_EDATA, "data '%s' has an empty test set", o->data);
		goto out;
	}
	if (!s->single) {
		rc = macc_partition_make(s->train.y, s->train.n, s->train.nclasses, s->n,
					 o->partition, o->seed, &s->part, err);
		if (rc < 0) {
			goto out;
		}
		s->part_made = true;
	}

	{
		size_t np = (size_t)s->n * s->p;

		s->xa = xcalloc(np, sizeof(float), &rc);
		s->va = xcalloc(np, sizeof(float), &rc);
		if (!s->single && !s->centralized) {
			s->xb = xcalloc(np, sizeof(float), &rc);
		}
		if (s->sends_v) {
			s->vb = xcalloc(np, sizeof(float), &rc);
		}
		s->xbar = xcalloc(s->p, sizeof(float), &rc);
		if (s->centralized) {
			s->gbar = xcalloc(s->p, sizeof(float), &rc);
		}
		if (rc < 0) {
			goto out;
		}
	}
	s->x_cur = s->xa;
	s->x_next = s->xb;
	s->v_cur = s->va;
	s->v_next = s->sends_v ? s->vb : s->va;

	rc = setup_agents(s, err);
	if (rc < 0) {
		goto out;
	}
	/* Identical initial parameters on every agent, zero momentum (calloc). */
	macc_model_init_params(s->agents[0].model, s->x_cur, o->seed);
	if (!s->single && !s->centralized) {
		for (uint32_t j = 1; j < s->n; j++) {
			memcpy(agent_x(s->x_cur, s, j), s->x_cur, s->p * sizeof(float));
		}
	}
	s->total_rounds = o->rounds ? o->rounds : (uint64_t)o->epochs * s->epoch_rounds;

	rc = setup_pool(s, err);
	if (rc < 0) {
		goto out;
	}
	*ret = s;
	return 0;
out:
	if (rc == -ENOMEM) {
		macc_errf(err, rc, "out of memory");
	}
	sim_destroy(s);
	return rc;
}

void sim_destroy(struct sim *s)
{
	if (s == NULL) {
		return;
	}
	if (s->bar_ready) {
		s->stop = true;
		if (s->started > 0) {
			barrier_set_parties(&s->bar, s->started + 1);
			barrier_wait(&s->bar);
			for (unsigned t = 1; t <= s->started; t++) {
				pthread_join(s->workers[t].th, NULL);
			}
		}
		barrier_finish(&s->bar);
	}
	if (s->eval_models != NULL) {
		for (unsigned t = 0; t < s->nthreads; t++) {
			macc_model_destroy(s->eval_models[t]);
		}
	}
	free(s->eval_models);
	free(s->eval_loss);
	free(s->eval_cnt);
	free(s->workers);
	if (s->agents != NULL) {
		for (uint32_t j = 0; j < s->n; j++) {
			struct agent *a = &s->agents[j];

			macc_model_destroy(a->model);
			if (a->batcher_ready) {
				macc_batcher_finish(&a->batcher);
			}
			free(a->g);
			free(a->y);
			free(a->scratch);
			free(a->bx);
			free(a->by);
			free(a->nb_idx);
			free(a->nb_w);
			free(a->arrived);
			free(a->w_out);
			free(a->nb);
		}
	}
	free(s->agents);
	free(s->xa);
	free(s->xb);
	free(s->va);
	free(s->vb);
	free(s->xbar);
	free(s->gbar);
	free(s->W);
	if (s->graph_made) {
		macc_graph_finish(&s->graph);
	}
	if (s->part_made) {
		macc_partition_finish(&s->part);
	}
	if (s->train_loaded) {
		macc_dataset_finish(&s->train);
	}
	if (s->test_loaded) {
		macc_dataset_finish(&s->test);
	}
	free(s);
}

/* ---- accessors ------------------------------------------------------------------------------ */

uint64_t sim_epoch_rounds(const struct sim *s)
{
	return s->epoch_rounds;
}

uint64_t sim_total_rounds(const struct sim *s)
{
	return s->total_rounds;
}

uint64_t sim_round(const struct sim *s)
{
	return s->round;
}

size_t sim_nparams(const struct sim *s)
{
	return s->p;
}

const char *sim_algo_name(const struct sim *s)
{
	return s->single ? "sgd" : macc_algo_name(s->algo);
}

bool sim_single(const struct sim *s)
{
	return s->single;
}

bool sim_spectral_gap(const struct sim *s, double *ret_gap)
{
	if (!s->have_gap) {
		return false;
	}
	*ret_gap = s->gap;
	return true;
}

uint64_t sim_samples_per_round(const struct sim *s)
{
	return (uint64_t)s->n * s->o.batch;
}

void sim_drop_counts(const struct sim *s, uint64_t *ret_dropped, uint64_t *ret_messages)
{
	*ret_dropped = s->dropped;
	*ret_messages = s->messages;
}

uint32_t sim_nmodels(const struct sim *s)
{
	return (s->single || s->centralized) ? 1 : s->n;
}

uint64_t sim_digest(const struct sim *s)
{
	return macc_params_digest(s->x_cur, (size_t)sim_nmodels(s) * s->p);
}

uint64_t sim_agent_digest(const struct sim *s, uint32_t j)
{
	if (j >= sim_nmodels(s)) {
		j = 0;
	}
	return macc_params_digest(s->x_cur + (size_t)j * s->p, s->p);
}

int sim_dump_params(const struct sim *s, const char *path, struct macc_errmsg *err)
{
	size_t count = (size_t)sim_nmodels(s) * s->p;
	FILE *f = fopen(path, "wb");

	if (f == NULL) {
		return macc_errf(err, -errno, "%s: cannot create: %s", path, strerror(errno));
	}
	if (fwrite(s->x_cur, sizeof(float), count, f) != count) {
		int e = errno ? errno : EIO;

		fclose(f);
		return macc_errf(err, -e, "%s: write failed: %s", path, strerror(e));
	}
	if (fclose(f) != 0) {
		return macc_errf(err, -errno, "%s: write failed: %s", path, strerror(errno));
	}
	return 0;
}
