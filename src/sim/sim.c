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
 * Beyond a fixed undirected graph (ALGORITHMS.md, second part; every addition leaves the path
 * above untouched when off, so static / H = 1 / none give today's bits):
 *   - schedules (matching, exp-pairs): step 1 also computes round k's pairing serially
 *     (macc_schedule_round); an agent mixes only with its partner, at the Metropolis weights of
 *     the round's graph (macc_schedule_weights), folding a dropped message like any other.
 *   - push-sum (a directed file: topology, or --algorithm sgp): the x and v blocks hold the
 *     numerators z and u, pw_cur/pw_next the weights; each agent keeps its de-biased x = z / w
 *     in xdb, where its gradient is taken and which is what is evaluated, digested and dumped.
 *     Step 3 is macc_pushsum_step over the in-neighbours plus macc_pushsum_weight.
 *   - local steps H: step 2 first takes H - 1 macc_sgd_step()s on the agent's own x and v
 *     (numerators in push-sum form), each on a fresh mini-batch.
 *   - compression (CHOCO): step 2 ends with macc_choco_send of x (y for dsgd) and of v for
 *     dmsgd into the agent's blobs; after a barrier, step 3 adds every configured neighbour's
 *     blobs to the agent's public copies and runs macc_choco_step. With a time-varying schedule
 *     the blobs still go to every configured neighbour (only the mixing weights are restricted
 *     to the round's partner), which is what keeps every copy of a vector identical.
 *   - traffic: after each round, serially, the bytes every agent would have sent (wiresize.h).
 * A barrier separates steps 2 and 3 whenever step 3 reads something step 2 of another agent
 * writes: dsgd's y, local steps (x_cur changes), compressed blobs.
 *
 * Threads: a pool of T-1 workers plus the calling thread; agent j belongs to thread j mod T for
 * its whole life. Jobs are handed out with a barrier (start) and collected with another (end).
 * OpenBLAS runs at one thread in that mode, so every agent's floats are computed by the same code
 * in the same order whatever T is. A single agent runs without the pool and gives OpenBLAS the
 * threads instead.
 */
#include <errno.h>
#include <inttypes.h>
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
#include "wiresize.h"

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
	float *bt;      /* [batch][targets], regression only (else NULL) */
	/* neighbours, ascending */
	uint32_t nnb;
	uint32_t *nb_idx;
	double *nb_w;
	double self_w;
	bool *arrived;
	double *w_out;
	struct macc_neighbour *nb;
	/* compressed exchange (CHOCO): copies of own and neighbours' vectors, this round's blobs */
	struct macc_choco choco;
	bool choco_ready;
	uint8_t *blob_x, *blob_v;
	ssize_t len_x, len_v;
	float *cw; /* [nnb] this round's float weights for macc_choco_step */
	uint32_t nout; /* messages sent per round on a static graph (push-sum: out-degree) */
	int rc;        /* a failure inside a parallel phase, with its message */
	struct macc_errmsg err;
	/* traffic */
	uint64_t bytes_sent;
	/* robust mixing (issue 12): learned distances, quarantine per in-edge, counters */
	struct macc_robust rob;
	struct macc_quarantine *q;  /* [nnb] */
	struct macc_arrival *arr;   /* [nnb] */
	float *rbuf;                /* macc_robust_buf_floats */
	uint64_t rcount[MACC_ROBUST_NREASONS], rquar, rclip;
	/* a byzantine agent: what it sends this round instead of its x (y) and v */
	struct macc_rng attack_rng;
	float *px, *pv;
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

	/* issue 11 */
	uint32_t H;                 /* local steps per round */
	bool pushsum;               /* numerators in x/v blocks, weights in pw, de-biased in xdb */
	struct macc_digraph dg;
	bool dg_made;
	double *pwa, *pwb, *pw_cur, *pw_next;
	float *xdb;
	struct macc_schedule sched;
	bool sched_made, varying;   /* varying: a non-static schedule */
	uint32_t *partner, *sched_work;
	struct macc_compressor comp;
	bool compressed;
	float gamma;
	size_t blob_cap;
	bool barrier_mid;           /* barrier between gradient and mixing phases */
	uint64_t round_max_sum, comm_rounds;
	/* issue 12 */
	bool robust;                /* robust mixing instead of the plain mean path */
	struct macc_robust_cfg rcfg;
	uint32_t byz_k;             /* agents 0 .. byz_k-1 send poisoned states */
	struct macc_attack attack;
	char attack_spec[64];
	float *stale_x, *stale_v;   /* x^0 and v^0 = 0, what a stale attacker keeps sending */
	bool failed;
	struct macc_errmsg fail_err;
	uint64_t round, epoch_rounds, total_rounds;

	/* pool */
	unsigned nthreads;
	struct macc_model **eval_models; /* nthreads */
	double *eval_loss, *eval_acc;    /* nthreads, JOB_EVAL_AVG partial results */
	bool regression;                 /* loss:mse: the "acc" figures are RMSE */
	uint32_t ntargets;
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

/* Where agent j's gradient is taken: its x, the one shared x (centralized), or its de-biased
 * x = z / w (push-sum). */
static const float *grad_point(const struct sim *s, uint32_t j)
{
	if (s->centralized) {
		return s->x_cur;
	}
	return agent_x(s->pushsum ? s->xdb : s->x_cur, s, j);
}

/* The parameters that are evaluated, digested and dumped: x, or the de-biased x (push-sum). */
static const float *model_block(const struct sim *s)
{
	return s->pushsum ? s->xdb : s->x_cur;
}

static void batch_grad(struct sim *s, uint32_t j)
{
	struct agent *a = &s->agents[j];

	macc_batcher_next_t(&a->batcher, a->bx, a->by, a->bt);
	a->loss_sum += macc_model_train_batch_t(a->model, grad_point(s, j), a->g, a->bx, a->by,
						a->bt, s->o.batch, s->o.weight_decay,
						&a->dropout_rng);
}

/* CHOCO step 1: encode C(x - xhat) (y for dsgd) and, for dmsgd, C(v - vhat) into the agent's
 * blobs, applying them to its own public copies. */
static void agent_send(struct sim *s, uint32_t j)
{
	struct agent *a = &s->agents[j];
	const float *val = s->after_grad ? a->y : agent_x(s->x_cur, s, j);

	a->len_x = macc_choco_send(&s->comp, s->p, val, a->choco.xhat_self, a->blob_x, s->blob_cap,
				   &a->err);
	if (a->len_x < 0) {
		a->rc = (int)a->len_x;
		return;
	}
	if (s->sends_v) {
		a->len_v = macc_choco_send(&s->comp, s->p, agent_x(s->v_cur, s, j),
					   a->choco.vhat_self, a->blob_v, s->blob_cap, &a->err);
		if (a->len_v < 0) {
			a->rc = (int)a->len_v;
		}
	}
}

/* What agent l sends this round as x (y for dsgd) and as v: its own vectors, or for a
 * byzantine agent the poisoned copies agent_poison() made after its gradient phase. */
static const float *sent_x(const struct sim *s, uint32_t l)
{
	if (l < s->byz_k) {
		return s->agents[l].px;
	}
	return s->after_grad ? s->agents[l].y : agent_x(s->x_cur, s, l);
}

static const float *sent_v(const struct sim *s, uint32_t l)
{
	if (!s->sends_v) {
		return NULL;
	}
	return l < s->byz_k ? s->agents[l].pv : agent_x(s->v_cur, s, l);
}

/* A byzantine agent (j < K) forms the messages it sends: the attack applied to its honest x
 * (y for dsgd) and v. Its own x and v are untouched: it keeps training and mixing honestly. */
static void agent_poison(struct sim *s, uint32_t j)
{
	struct agent *a = &s->agents[j];
	const float *z = s->after_grad ? a->y : agent_x(s->x_cur, s, j);

	macc_attack_apply(&s->attack, s->p, z, s->stale_x, a->px, &a->attack_rng);
	if (s->sends_v) {
		macc_attack_apply(&s->attack, s->p, agent_x(s->v_cur, s, j), s->stale_v, a->pv,
				  &a->attack_rng);
	}
}

static void agent_grad(struct sim *s, uint32_t j)
{
	struct agent *a = &s->agents[j];

	/* H - 1 purely local heavy-ball steps on the agent's own x and v (numerators in push-sum
	 * form: the gradient at z / w, the step on z, then x = z / w again). */
	for (uint32_t h = 1; h < s->H; h++) {
		float *x = agent_x(s->x_cur, s, j);

		batch_grad(s, j);
		macc_sgd_step(s->p, x, agent_x(s->v_cur, s, j), a->g, s->hp.alpha, s->hp.beta,
			      s->hp.nesterov);
		if (s->pushsum) {
			macc_pushsum_debias(s->p, x, s->pw_cur[j], agent_x(s->xdb, s, j));
		}
	}
	batch_grad(s, j);
	if (s->after_grad) {
		(void)macc_algo_outgoing(s->algo, &s->hp, s->p, grad_point(s, j), a->g, a->y);
	}
	if (s->compressed) {
		agent_send(s, j);
	}
	if (j < s->byz_k) {
		agent_poison(s, j);
	}
}

/* Position of agent l among j's neighbours (l is one). */
static uint32_t nb_pos(const struct agent *a, uint32_t l)
{
	uint32_t i = 0;

	while (i + 1 < a->nnb && a->nb_idx[i] != l) {
		i++;
	}
	return i;
}

static void copy_to_next(struct sim *s, uint32_t j)
{
	memcpy(agent_x(s->x_next, s, j), agent_x(s->x_cur, s, j), s->p * sizeof(float));
	if (s->sends_v) {
		memcpy(agent_x(s->v_next, s, j), agent_x(s->v_cur, s, j), s->p * sizeof(float));
	}
}

/* A time-varying schedule, uncompressed: mix with this round's partner only (if any). */
static void agent_mix_varying(struct sim *s, uint32_t j)
{
	struct agent *a = &s->agents[j];
	uint32_t l = s->partner[j];
	double self_w = 1.0;
	size_t cnt = 0;

	if (l != MACC_NO_PARTNER) {
		uint32_t i = nb_pos(a, l);
		bool arrived = s->o.drop_prob > 0.0 ? a->arrived[i] : true;
		double sw, w, w_out;

		macc_schedule_weights(l, &sw, &w);
		(void)macc_fold_missing(sw, &w, &arrived, 1, &self_w, &w_out);
		if (arrived) {
			a->nb[0].w = (float)w_out;
			a->nb[0].x = sent_x(s, l);
			a->nb[0].v = sent_v(s, l);
			cnt = 1;
		}
	}
	copy_to_next(s, j);
	macc_consensus_step(s->algo, &s->hp, s->p, agent_x(s->x_next, s, j),
			    agent_x(s->v_next, s, j), a->g, (float)self_w, a->nb, cnt, a->scratch);
}

/* Compressed: receive every configured neighbour's blobs into the public copies (all of them,
 * whatever the schedule), then step with mixhat over this round's weights. */
static void agent_mix_choco(struct sim *s, uint32_t j)
{
	struct agent *a = &s->agents[j];
	int rc;

	if (a->rc < 0) {
		return;
	}
	for (uint32_t i = 0; i < a->nnb; i++) {
		const struct agent *b = &s->agents[a->nb_idx[i]];

		if (b->rc < 0) {
			return; /* the run stops after this round */
		}
		rc = macc_compress_decode_add(b->blob_x, (size_t)b->len_x, s->p,
					      macc_choco_peer_x(&a->choco, i), NULL, &a->err);
		if (rc == 0 && s->sends_v) {
			rc = macc_compress_decode_add(b->blob_v, (size_t)b->len_v, s->p,
						      macc_choco_peer_v(&a->choco, i), NULL,
						      &a->err);
		}
		if (rc < 0) {
			a->rc = rc;
			return;
		}
		a->cw[i] = (float)a->nb_w[i];
	}
	if (s->varying) {
		uint32_t l = s->partner[j];
		double sw, w;

		memset(a->cw, 0, a->nnb * sizeof(*a->cw));
		if (l != MACC_NO_PARTNER) {
			macc_schedule_weights(l, &sw, &w);
			a->cw[nb_pos(a, l)] = (float)w;
		}
	}
	copy_to_next(s, j);
	macc_choco_step(s->algo, &s->hp, s->gamma, s->p, agent_x(s->x_next, s, j),
			agent_x(s->v_next, s, j), a->g, &a->choco, a->cw, a->scratch);
}

/* Push-sum: z, u of round k+1 from the in-neighbours' numerators, the weight, then x = z / w. */
static void agent_push(struct sim *s, uint32_t j)
{
	struct agent *a = &s->agents[j];
	float *zn = agent_x(s->x_next, s, j);

	for (uint32_t i = 0; i < a->nnb; i++) {
		uint32_t l = a->nb_idx[i];

		a->nb[i].w = (float)a->nb_w[i];
		a->nb[i].x = agent_x(s->x_cur, s, l);
		a->nb[i].v = s->sends_v ? agent_x(s->v_cur, s, l) : NULL;
		a->w_out[i] = s->pw_cur[l];
	}
	copy_to_next(s, j);
	(void)macc_pushsum_step(s->algo, &s->hp, s->p, zn, agent_x(s->v_next, s, j), a->g,
				(float)a->self_w, a->nb, a->nnb, a->scratch);
	s->pw_next[j] = macc_pushsum_weight(a->self_w, s->pw_cur[j], a->nb_w, a->w_out, a->nnb);
	macc_pushsum_debias(s->p, zn, s->pw_next[j], agent_x(s->xdb, s, j));
}

/* Robust mixing (static graph, uncompressed): every configured neighbour's arrival (NULL when
 * dropped) goes through macc_robust_prepare, which screens, quarantines, folds and applies the
 * aggregation rule; then the unchanged consensus step. Counters per agent, summed in agent
 * order by sim_robust_counts, so they do not depend on the thread count. */
static void agent_mix_robust(struct sim *s, uint32_t j)
{
	struct agent *a = &s->agents[j];
	struct macc_robust_report rep;
	const float *own = s->after_grad ? a->y : agent_x(s->x_cur, s, j);
	float sw = 0.0f;
	int rc;

	for (uint32_t i = 0; i < a->nnb; i++) {
		uint32_t l = a->nb_idx[i];
		bool lost = s->o.drop_prob > 0.0 && !a->arrived[i];

		a->arr[i].w = a->nb_w[i];
		a->arr[i].x = lost ? NULL : sent_x(s, l);
		a->arr[i].v = lost ? NULL : sent_v(s, l);
	}
	rc = macc_robust_prepare(&s->rcfg, &a->rob, a->q, s->algo, s->round, s->p, own,
				 s->sends_v ? agent_x(s->v_cur, s, j) : NULL, a->self_w, a->arr,
				 a->nnb, a->rbuf, &sw, a->nb, NULL, &rep);
	if (rc < 0) {
		a->rc = rc;
		macc_errf(&a->err, rc, "robust mixing refused the agent's own state (%s)",
			  rc == MACC_ENONFINITE ? "not finite" : "bad configuration");
		return;
	}
	for (int r = 0; r < MACC_ROBUST_NREASONS; r++) {
		a->rcount[r] += rep.count[r];
	}
	a->rquar += rep.quarantined;
	a->rclip += rep.clipped;
	copy_to_next(s, j);
	macc_consensus_step(s->algo, &s->hp, s->p, agent_x(s->x_next, s, j),
			    agent_x(s->v_next, s, j), a->g, sw, a->nb, (size_t)rc, a->scratch);
}

static void agent_mix(struct sim *s, uint32_t j)
{
	struct agent *a = &s->agents[j];
	double self_w = a->self_w;
	size_t cnt = 0;
	float *xn = agent_x(s->x_next, s, j);
	float *vn = agent_x(s->v_next, s, j);

	if (s->pushsum) {
		agent_push(s, j);
		return;
	}
	if (s->compressed) {
		agent_mix_choco(s, j);
		return;
	}
	if (s->varying) {
		agent_mix_varying(s, j);
		return;
	}
	if (s->robust) {
		agent_mix_robust(s, j);
		return;
	}
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
		a->nb[cnt].x = sent_x(s, l);
		a->nb[cnt].v = sent_v(s, l);
		cnt++;
	}
	memcpy(xn, agent_x(s->x_cur, s, j), s->p * sizeof(float));
	if (s->sends_v) {
		memcpy(vn, agent_x(s->v_cur, s, j), s->p * sizeof(float));
	}
	macc_consensus_step(s->algo, &s->hp, s->p, xn, vn, a->g, (float)self_w, a->nb, cnt,
			    a->scratch);
}

/* Evaluate params on test samples [lo, hi) with model m; returns correct count and loss sum
 * (regression: the sum of the per-sample mean squared errors, and 0). */
static void eval_range(const struct sim *s, struct macc_model *m, const float *params, size_t lo,
		       size_t hi, double *ret_loss_sum, size_t *ret_correct)
{
	double loss = 0.0, acc = 0.0;

	*ret_loss_sum = 0.0;
	*ret_correct = 0;
	if (hi <= lo) {
		return;
	}
	(void)macc_model_evaluate_t(m, params, s->test.x + lo * s->dim,
				    s->test.y != NULL ? s->test.y + lo : NULL,
				    s->test.t != NULL ? s->test.t + lo * s->ntargets : NULL,
				    hi - lo, &loss, &acc);
	*ret_loss_sum = loss * (double)(hi - lo);
	*ret_correct = s->regression ? 0 : (size_t)llround(acc * (double)(hi - lo));
}

/* The figure of merit over the eval set from the sums: accuracy, or RMSE for regression. */
static double score(const struct sim *s, double loss_sum, size_t correct)
{
	if (s->regression) {
		return sqrt(loss_sum / (double)s->eval_n);
	}
	return (double)correct / (double)s->eval_n;
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
		if (s->barrier_mid && nt > 1) {
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

			eval_range(s, s->eval_models[t], model_block(s) + (size_t)j * s->p, 0,
				   s->eval_n, &loss, &correct);
			s->agents[j].acc = score(s, loss, correct);
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
			/* A time-varying schedule sends (and so can drop) only the partner's. */
			if (s->varying && a->nb_idx[i] != s->partner[j]) {
				continue;
			}
			a->arrived[i] = !(macc_rng_uniform(&s->drop_rng) < s->o.drop_prob);
			s->dropped += !a->arrived[i];
			s->messages++;
		}
	}
}

static void single_round(struct sim *s)
{
	struct agent *a = &s->agents[0];
	float loss;

	macc_batcher_next_t(&a->batcher, a->bx, a->by, a->bt);
	loss = macc_model_train_batch_t(a->model, s->x_cur, a->g, a->bx, a->by, a->bt,
					s->o.batch, s->o.weight_decay, &a->dropout_rng);
	a->loss_sum += loss;
	macc_sgd_step(s->p, s->x_cur, s->v_cur, a->g, s->hp.alpha, s->hp.beta, s->hp.nesterov);
}

/* After a round: a failure in a parallel phase stops the run (first agent's message). */
static bool check_failed(struct sim *s)
{
	if (s->failed) {
		return true;
	}
	for (uint32_t j = 0; j < s->n; j++) {
		const struct agent *a = &s->agents[j];

		if (a->rc < 0) {
			s->failed = true;
			macc_errf(&s->fail_err, a->rc, "round %" PRIu64 ", agent %u: %s (diverged? "
				  "try a smaller --lr or --gossip-step)", s->round, j, a->err.text);
			return true;
		}
	}
	return false;
}

/* Messages agent j sends in a round, all of the same size. */
static uint32_t messages_sent(const struct sim *s, uint32_t j)
{
	const struct agent *a = &s->agents[j];

	if (s->pushsum) {
		return a->nout;
	}
	if (s->varying && !s->compressed) {
		return s->partner[j] != MACC_NO_PARTNER ? 1 : 0;
	}
	return a->nnb;
}

/* What every agent put on the wire this round (wiresize.h), and the busiest uplink. */
static void count_traffic(struct sim *s)
{
	size_t vec = s->p * sizeof(float), body, frame;
	unsigned enc = 0;
	uint64_t max = 0;

	if (s->single || s->centralized) {
		return;
	}
	if (s->compressed) {
		vec = macc_compress_size(&s->comp, s->p);
		enc = (unsigned)s->comp.kind;
	}
	body = sim_wire_state_body(s->round, s->p, enc, vec, s->sends_v, vec, s->pushsum);
	frame = sim_wire_state_frame(body);
	for (uint32_t j = 0; j < s->n; j++) {
		uint64_t b = (uint64_t)messages_sent(s, j) * frame;

		s->agents[j].bytes_sent += b;
		max = b > max ? b : max;
	}
	s->round_max_sum += max;
	s->comm_rounds += max > 0;
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
		if (s->varying) {
			(void)macc_schedule_round(&s->sched, s->round, s->partner, s->sched_work);
		}
		if (s->o.drop_prob > 0.0 && !s->centralized) {
			draw_drops(s);
		}
		dispatch(s, JOB_ROUND);
		if (check_failed(s)) {
			break;
		}
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
			if (s->pushsum) {
				double *w = s->pw_cur;

				s->pw_cur = s->pw_next;
				s->pw_next = w;
			}
		}
		count_traffic(s);
		s->round++;
	}
	for (uint32_t j = 0; j < s->n; j++) {
		total += s->agents[j].loss_sum;
	}
	if (rounds == 0 || s->failed) {
		return s->failed ? NAN : 0.0;
	}
	return total / ((double)rounds * (double)s->n * (double)s->H);
}

/* After the per-agent evaluation: the worst honest agent, and the average of the honest agents'
 * models (j >= K; mean in double, agent order) evaluated like the average model. */
static void eval_honest(struct sim *s, struct sim_eval *ret)
{
	const float *xs = model_block(s);
	uint32_t h = s->n - s->byz_k;
	size_t correct = 0;
	double loss = 0.0;

	ret->honest = true;
	ret->acc_honest_min = INFINITY;
	for (uint32_t j = s->byz_k; j < s->n; j++) {
		ret->acc_honest_min = fmin(ret->acc_honest_min, s->agents[j].acc);
	}
	for (size_t i = 0; i < s->p; i++) {
		double sum = 0.0;

		for (uint32_t j = s->byz_k; j < s->n; j++) {
			sum += (double)xs[(size_t)j * s->p + i];
		}
		s->xbar[i] = (float)(sum / (double)h);
	}
	dispatch(s, JOB_EVAL_AVG);
	for (unsigned t = 0; t < s->nthreads; t++) {
		correct += s->eval_cnt[t];
		loss += s->eval_loss[t];
	}
	ret->acc_honest = score(s, loss, correct);
}

void sim_evaluate(struct sim *s, bool per_agent, struct sim_eval *ret)
{
	size_t correct = 0;
	double loss = 0.0;
	bool shared = s->single || s->centralized;

	memset(ret, 0, sizeof(*ret));
	if (shared) {
		memcpy(s->xbar, s->x_cur, s->p * sizeof(float));
	} else {
		const float *xs = model_block(s);
		double dist = 0.0;

		/* Mean in double, agent order; the distance is taken to the exact (double) mean. */
		for (size_t i = 0; i < s->p; i++) {
			double sum = 0.0, m;

			for (uint32_t j = 0; j < s->n; j++) {
				sum += (double)xs[(size_t)j * s->p + i];
			}
			m = sum / (double)s->n;
			s->xbar[i] = (float)m;
			for (uint32_t j = 0; j < s->n; j++) {
				double d = (double)xs[(size_t)j * s->p + i] - m;

				dist += d * d;
			}
		}
		ret->consensus = dist / (double)s->n;
	}
	if (s->single) {
		eval_range(s, s->eval_models[0], s->xbar, 0, s->eval_n, &loss, &correct);
	} else {
		dispatch(s, JOB_EVAL_AVG);
		for (unsigned t = 0; t < s->nthreads; t++) {
			correct += s->eval_cnt[t];
			loss += s->eval_loss[t];
		}
	}
	ret->acc_avg = score(s, loss, correct);
	if (!per_agent) {
		return;
	}
	ret->per_agent = true;
	if (shared) {
		ret->acc_mean = ret->acc_min = ret->acc_max = ret->acc_avg;
		return;
	}
	dispatch(s, JOB_EVAL_AGENTS);
	ret->acc_min = INFINITY;
	ret->acc_max = -INFINITY;
	for (uint32_t j = 0; j < s->n; j++) {
		double acc = s->agents[j].acc;

		ret->acc_mean += acc;
		ret->acc_min = fmin(ret->acc_min, acc);
		ret->acc_max = fmax(ret->acc_max, acc);
	}
	ret->acc_mean /= (double)s->n;
	if (s->byz_k > 0) {
		eval_honest(s, ret);
	}
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

/* Push-sum on a directed graph (already parsed into s->dg, or any spec for sgp): W holds the
 * column-stochastic P, row j = what j receives. --weights does not apply. */
static int setup_pushsum(struct sim *s, struct macc_errmsg *err)
{
	int rc;

	if (!s->dg_made) {
		rc = macc_digraph_create(s->o.topology, s->n, s->o.seed, &s->dg, err);
		if (rc < 0) {
			return rc;
		}
		s->dg_made = true;
	}
	s->W = calloc((size_t)s->n * s->n, sizeof(double));
	if (s->W == NULL) {
		return -ENOMEM;
	}
	rc = macc_pushsum_matrix(&s->dg, s->W);
	if (rc < 0) {
		return macc_errf(err, rc, "cannot build the push-sum matrix of '%s'",
				 s->o.topology);
	}
	return 0;
}

/* Whether agent l's messages reach agent j (l is j's neighbour, or in-neighbour for push-sum). */
static bool linked(const struct sim *s, uint32_t j, uint32_t l)
{
	if (s->pushsum) {
		return s->dg.adj[(size_t)l * s->n + j] != 0;
	}
	return s->graph.adj[(size_t)j * s->n + l] != 0;
}

static int setup_graph(struct sim *s, struct macc_errmsg *err)
{
	enum macc_weights_kind kind;
	struct macc_errmsg tmp;
	int rc;

	if (s->pushsum) {
		return setup_pushsum(s, err);
	}

	if (macc_weights_parse(s->o.weights, &kind) < 0) {
		return macc_errf(err, MACC_ESPEC, "unknown weights '%s' (metropolis, uniform)",
				 s->o.weights);
	}
	rc = macc_graph_create(s->o.topology, s->n, s->o.seed, &s->graph, err);
	if (rc == MACC_ESPEC && strncmp(s->o.topology, "file:", 5) == 0) {
		/* Perhaps a directed edge list ("a -> b"): then the push-sum form runs. */
		enum macc_algo base;

		if (macc_digraph_create(s->o.topology, s->n, s->o.seed, &s->dg, err) < 0) {
			return MACC_ESPEC;
		}
		s->dg_made = true;
		if (macc_pushsum_algo_parse(s->o.algorithm, &base) < 0) {
			return macc_errf(err, MACC_ESPEC,
					 "topology '%s' is directed: algorithm '%s' has no "
					 "push-sum form (use dmsgd or sgp)", s->o.topology,
					 s->o.algorithm);
		}
		s->pushsum = true;
		return setup_pushsum(s, err);
	}
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
		if (s->regression) {
			a->bt = xcalloc((size_t)s->o.batch * s->ntargets, sizeof(float), &rc);
		}
		if (s->after_grad) {
			a->y = xcalloc(s->p, sizeof(float), &rc);
		}
		if (s->graph_made || s->dg_made) {
			for (uint32_t l = 0; l < s->n; l++) {
				if (linked(s, j, l)) {
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
			a->nout = s->pushsum ? macc_digraph_outdeg(&s->dg, j) : a->nnb;
			if (s->compressed) {
				a->blob_x = xcalloc(s->blob_cap, 1, &rc);
				a->blob_v = s->sends_v ? xcalloc(s->blob_cap, 1, &rc) : NULL;
				a->cw = xcalloc(a->nnb, sizeof(*a->cw), &rc);
				if (rc < 0) {
					return rc;
				}
			}
			for (uint32_t l = 0, i = 0; l < s->n; l++) {
				if (linked(s, j, l)) {
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
	/* With local steps a round takes H batches: an epoch stays one pass over the shards. */
	if (s->o.epoch_rounds == 0 && min_batches / s->H == 0) {
		return macc_errf(err, MACC_ECONFIG, "--local-steps %u is more than the %" PRIu64
				 " batches of the smallest shard", s->H, min_batches);
	}
	s->epoch_rounds = s->o.epoch_rounds ? s->o.epoch_rounds : min_batches / s->H;
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

/* Parse --schedule, --local-steps, --compress, --gossip-step (before the graph is known). */
static int setup_edge_opts(struct sim *s, struct macc_errmsg *err)
{
	const struct sim_opts *o = &s->o;
	enum macc_schedule_kind kind = MACC_SCHEDULE_STATIC;
	int rc;

	s->H = o->local_steps ? o->local_steps : 1;
	if (o->schedule != NULL && macc_schedule_parse(o->schedule, &kind) < 0) {
		return macc_errf(err, MACC_ESPEC, "unknown schedule '%s' (static, matching, "
				 "exp-pairs)", o->schedule);
	}
	rc = macc_compress_parse(o->compress != NULL ? o->compress : "none", &s->comp, err);
	if (rc < 0) {
		return rc;
	}
	if (s->single) {
		if (s->H > 1) {
			return macc_errf(err, MACC_ECONFIG, "--local-steps needs several "
					 "agents (one agent only takes local steps)");
		}
		return 0; /* like --topology, schedule and compression do not apply */
	}
	s->varying = kind != MACC_SCHEDULE_STATIC;
	s->sched.kind = kind;
	s->compressed = s->comp.kind != MACC_COMPRESS_NONE;
	if (s->compressed) {
		s->gamma = o->gossip_step > 0.0f ? o->gossip_step
						 : macc_compress_default_gamma(&s->comp);
	}
	return 0;
}

/* Combinations that have no defined meaning are usage errors, said plainly. */
static int check_edge_combos(struct sim *s, struct macc_errmsg *err)
{
	const char *what = NULL;
	int rc;

	if (s->centralized && (s->H > 1 || s->varying || s->compressed)) {
		return macc_errf(err, MACC_ECONFIG, "centralized exchanges no messages: "
				 "--local-steps, --schedule and --compress do not apply");
	}
	if (s->pushsum) {
		if (s->varying) {
			what = "--schedule";
		} else if (s->compressed) {
			what = "--compress";
		} else if (s->o.drop_prob > 0.0) {
			what = "--drop-prob (push-sum must not lose mass)";
		}
		if (what != NULL) {
			return macc_errf(err, MACC_ECONFIG, "the push-sum form (%s on '%s') "
					 "does not support %s", sim_algo_name(s), s->o.topology,
					 what);
		}
	}
	if (s->compressed && s->o.drop_prob > 0.0) {
		return macc_errf(err, MACC_ECONFIG, "--compress with --drop-prob: a dropped "
				 "compressed difference would leave a public copy stale for good");
	}
	s->barrier_mid = s->after_grad || s->H > 1 || s->compressed;
	if (s->compressed) {
		s->blob_cap = macc_compress_size(&s->comp, s->p);
	}
	if (!s->varying) {
		return 0;
	}
	rc = macc_schedule_init(&s->sched, s->sched.kind, &s->graph, s->o.seed, err);
	if (rc < 0) {
		return rc;
	}
	s->sched_made = true;
	s->partner = calloc(s->n, sizeof(*s->partner));
	s->sched_work = calloc(s->n, sizeof(*s->sched_work));
	if (s->partner == NULL || s->sched_work == NULL) {
		return -ENOMEM;
	}
	return 0;
}

/* Parse --aggregation, --screen-factor, --byzantine (graph known, data not loaded yet) and
 * refuse what has no meaning: no messages (one agent, centralized), push-sum (mass must be
 * conserved exactly: folding or clipping a message breaks the de-biasing), compression (the
 * public copies are differences, not states), a time-varying schedule with robust mixing (one
 * partner a round: nothing to compare or trim against), K >= N. */
static int setup_robust_opts(struct sim *s, struct macc_errmsg *err)
{
	const struct sim_opts *o = &s->o;
	struct macc_agg agg = {.kind = MACC_AGG_MEAN};
	bool any;
	int rc;

	if (o->aggregation != NULL) {
		rc = macc_agg_parse(o->aggregation, &agg, err);
		if (rc < 0) {
			return rc;
		}
	}
	if (o->byzantine != NULL) {
		rc = macc_byzantine_parse(o->byzantine, &s->byz_k, &s->attack, err);
		if (rc < 0) {
			return rc;
		}
	}
	rc = macc_attack_format(&s->attack, s->attack_spec, sizeof(s->attack_spec));
	if (rc < 0) {
		snprintf(s->attack_spec, sizeof(s->attack_spec), "?");
	}
	macc_robust_cfg_default(&s->rcfg);
	s->rcfg.agg = agg;
	if (o->screen_factor >= 0.0) {
		s->rcfg.factor = o->screen_factor;
	} else if (agg.kind == MACC_AGG_MEAN) {
		s->rcfg.factor = 0.0;
	}
	s->robust = agg.kind != MACC_AGG_MEAN || s->rcfg.factor > 0.0;
	any = s->robust || o->byzantine != NULL;
	if (!any) {
		return 0;
	}
	if (s->single || s->centralized) {
		return macc_errf(err, MACC_ECONFIG, "%s exchanges no messages: --aggregation, "
				 "--screen-factor and --byzantine do not apply",
				 s->single ? "a single agent" : "centralized");
	}
	if (s->pushsum || s->compressed) {
		return macc_errf(err, MACC_ECONFIG, "%s does not support --aggregation, "
				 "--screen-factor or --byzantine (%s)",
				 s->pushsum ? "the push-sum form" : "--compress",
				 s->pushsum ? "excluding or clipping a message would lose mass"
					    : "compressed messages are differences to public copies, "
					      "not states");
	}
	if (s->robust && s->varying) {
		return macc_errf(err, MACC_ECONFIG, "--schedule %s mixes with one partner a round: "
				 "--aggregation other than mean and --screen-factor need the static "
				 "graph", o->schedule);
	}
	if (s->byz_k >= s->n) {
		return macc_errf(err, MACC_ECONFIG, "--byzantine %s: K must be below the number of "
				 "agents (%u), at least one agent must be honest", o->byzantine,
				 s->n);
	}
	rc = macc_robust_cfg_validate(&s->rcfg, err);
	if (rc < 0) {
		return rc;
	}
	if (s->robust) {
		for (uint32_t j = 0; j < s->n; j++) {
			uint32_t deg = 0;

			for (uint32_t l = 0; l < s->n; l++) {
				deg += linked(s, j, l);
			}
			if (deg > MACC_ROBUST_MAX_NB) {
				return macc_errf(err, MACC_ECONFIG, "agent %u has %u neighbours; robust "
						 "mixing takes at most %d", j, deg,
						 MACC_ROBUST_MAX_NB);
			}
			rc = macc_agg_check_degree(&agg, deg, err);
			if (rc < 0) {
				return rc;
			}
		}
	}
	if (s->byz_k > 0) {
		s->barrier_mid = true; /* the poisoned copies are written in the gradient phase */
	}
	return 0;
}

/* Robust mixing buffers per agent, the attackers' message buffers and the stale vectors. */
static int setup_robust_state(struct sim *s)
{
	int rc = 0;

	if (s->byz_k > 0) {
		s->stale_x = xcalloc(s->p, sizeof(float), &rc);
		s->stale_v = xcalloc(s->p, sizeof(float), &rc);
		if (rc < 0) {
			return rc;
		}
		memcpy(s->stale_x, s->x_cur, s->p * sizeof(float)); /* x^0, the same everywhere */
	}
	for (uint32_t j = 0; j < s->n; j++) {
		struct agent *a = &s->agents[j];

		if (s->robust) {
			a->q = xcalloc(a->nnb, sizeof(*a->q), &rc);
			a->arr = xcalloc(a->nnb, sizeof(*a->arr), &rc);
			a->rbuf = xcalloc(macc_robust_buf_floats(&s->rcfg.agg, s->p, a->nnb,
								 s->sends_v), sizeof(float), &rc);
		}
		if (j < s->byz_k) {
			a->px = xcalloc(s->p, sizeof(float), &rc);
			a->pv = s->sends_v ? xcalloc(s->p, sizeof(float), &rc) : NULL;
			macc_rng_seed(&a->attack_rng, s->o.seed, MACC_STREAM_ATTACK + j);
		}
		if (rc < 0) {
			return rc;
		}
	}
	return 0;
}

/* State that starts from x^0: push-sum weights and de-biased copies, CHOCO public copies. */
static int setup_edge_state(struct sim *s)
{
	size_t np = (size_t)s->n * s->p;
	int rc = 0;

	if (s->pushsum) {
		s->pwa = xcalloc(s->n, sizeof(double), &rc);
		s->pwb = xcalloc(s->n, sizeof(double), &rc);
		s->xdb = xcalloc(np, sizeof(float), &rc);
		if (rc < 0) {
			return rc;
		}
		for (uint32_t j = 0; j < s->n; j++) {
			s->pwa[j] = 1.0;
		}
		memcpy(s->xdb, s->x_cur, np * sizeof(float));
		s->pw_cur = s->pwa;
		s->pw_next = s->pwb;
	}
	if (s->compressed) {
		for (uint32_t j = 0; j < s->n; j++) {
			struct agent *a = &s->agents[j];

			rc = macc_choco_init(&a->choco, s->p, a->nnb, s->sends_v,
					     agent_x(s->x_cur, s, j));
			if (rc < 0) {
				return rc;
			}
			a->choco_ready = true;
		}
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
		/* Only "sgp" parses here: the push-sum form of cdmsgd. */
		if (macc_pushsum_algo_parse(o->algorithm, &s->algo) < 0) {
			rc = macc_errf(err, MACC_ESPEC, "unknown algorithm '%s' (dmsgd, cdmsgd, "
				       "cdsgd, dsgd, centralized, sgp)", o->algorithm);
			goto out;
		}
		s->pushsum = !s->single;
	}
	rc = setup_edge_opts(s, err);
	if (rc < 0) {
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
		s->regression = macc_model_loss(m) == MACC_LOSS_MSE;
		s->ntargets = s->regression ? nclasses : 0;
		macc_model_destroy(m);
	}
	if (!s->single) {
		rc = setup_graph(s, err);
		if (rc < 0) {
			goto out;
		}
		rc = check_edge_combos(s, err);
		if (rc < 0) {
			goto out;
		}
	}
	rc = setup_robust_opts(s, err);
	if (rc < 0) {
		goto out;
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
	{
		/* inputs, image shape, outputs against classes or targets, both splits */
		struct macc_model *m = NULL;

		rc = macc_model_create(o->model, 1, &m, err);
		if (rc == 0) {
			rc = macc_model_check_data(m, o->model, &s->train, &s->test, o->data, err);
		}
		macc_model_destroy(m);
		if (rc < 0) {
			goto out;
		}
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
	rc = setup_edge_state(s);
	if (rc < 0) {
		goto out;
	}
	rc = setup_robust_state(s);
	if (rc < 0) {
		goto out;
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
			free(a->bt);
			free(a->nb_idx);
			free(a->nb_w);
			free(a->arrived);
			free(a->w_out);
			free(a->nb);
			free(a->blob_x);
			free(a->blob_v);
			free(a->cw);
			free(a->q);
			free(a->arr);
			free(a->rbuf);
			free(a->px);
			free(a->pv);
			if (a->choco_ready) {
				macc_choco_finish(&a->choco);
			}
		}
	}
	free(s->stale_x);
	free(s->stale_v);
	free(s->pwa);
	free(s->pwb);
	free(s->xdb);
	free(s->partner);
	free(s->sched_work);
	if (s->sched_made) {
		macc_schedule_finish(&s->sched);
	}
	if (s->dg_made) {
		macc_digraph_finish(&s->dg);
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

bool sim_regression(const struct sim *s)
{
	return s->regression;
}

const char *sim_test_origin(const struct sim *s)
{
	return s->test.origin_text;
}

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
	if (s->single) {
		return "sgd";
	}
	if (s->pushsum && s->algo == MACC_ALGO_CDMSGD) {
		return "sgp";
	}
	return macc_algo_name(s->algo);
}

bool sim_failed(const struct sim *s, struct macc_errmsg *err)
{
	if (s->failed && err != NULL) {
		*err = s->fail_err;
	}
	return s->failed;
}

void sim_traffic(const struct sim *s, double *ret_bytes_per_agent, uint64_t *ret_round_max_sum,
		 uint64_t *ret_comm_rounds)
{
	uint64_t total = 0;

	for (uint32_t j = 0; j < s->n; j++) {
		total += s->agents[j].bytes_sent;
	}
	*ret_bytes_per_agent = (double)total / (double)s->n;
	*ret_round_max_sum = s->round_max_sum;
	*ret_comm_rounds = s->comm_rounds;
}

bool sim_pushsum(const struct sim *s)
{
	return s->pushsum;
}

const char *sim_schedule_name(const struct sim *s)
{
	return macc_schedule_name(s->varying ? s->sched.kind : MACC_SCHEDULE_STATIC);
}

float sim_gossip_step(const struct sim *s)
{
	return s->compressed ? s->gamma : 0.0f;
}

bool sim_robust(const struct sim *s, double *ret_factor)
{
	*ret_factor = s->rcfg.factor;
	return s->robust;
}

uint32_t sim_byzantine(const struct sim *s, const char **ret_attack)
{
	*ret_attack = s->byz_k > 0 ? s->attack_spec : "none";
	return s->byz_k;
}

void sim_robust_counts(const struct sim *s, uint64_t *count, uint64_t *ret_quarantines,
		       uint64_t *ret_clipped)
{
	*ret_quarantines = 0;
	*ret_clipped = 0;
	for (int r = 0; r < MACC_ROBUST_NREASONS; r++) {
		count[r] = 0;
	}
	for (uint32_t j = 0; j < s->n; j++) {
		const struct agent *a = &s->agents[j];

		for (int r = 0; r < MACC_ROBUST_NREASONS; r++) {
			count[r] += a->rcount[r];
		}
		*ret_quarantines += a->rquar;
		*ret_clipped += a->rclip;
	}
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
	return macc_params_digest(model_block(s), (size_t)sim_nmodels(s) * s->p);
}

uint64_t sim_agent_digest(const struct sim *s, uint32_t j)
{
	if (j >= sim_nmodels(s)) {
		j = 0;
	}
	return macc_params_digest(model_block(s) + (size_t)j * s->p, s->p);
}

int sim_dump_params(const struct sim *s, const char *path, struct macc_errmsg *err)
{
	size_t count = (size_t)sim_nmodels(s) * s->p;
	FILE *f = fopen(path, "wb");

	if (f == NULL) {
		return macc_errf(err, -errno, "%s: cannot create: %s", path, strerror(errno));
	}
	if (fwrite(model_block(s), sizeof(float), count, f) != count) {
		int e = errno ? errno : EIO;

		fclose(f);
		return macc_errf(err, -e, "%s: write failed: %s", path, strerror(e));
	}
	if (fclose(f) != 0) {
		return macc_errf(err, -errno, "%s: write failed: %s", path, strerror(errno));
	}
	return 0;
}

const struct macc_model *sim_model(const struct sim *s)
{
	return s->eval_models[0];
}

void sim_params(const struct sim *s, int64_t j, float *out)
{
	const float *xs = model_block(s);
	uint32_t n = sim_nmodels(s);

	if (j >= 0 || n == 1) {
		memcpy(out, xs + (size_t)(j >= 0 && (uint64_t)j < n ? j : 0) * s->p,
		       s->p * sizeof(float));
		return;
	}
	for (size_t i = 0; i < s->p; i++) {
		double sum = 0.0;

		for (uint32_t a = 0; a < n; a++) {
			sum += (double)xs[(size_t)a * s->p + i];
		}
		out[i] = (float)(sum / (double)n);
	}
}
