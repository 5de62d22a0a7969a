/*
 * sim.c - N agents in one process, synchronous rounds (see sim.h for the contract).
 *
 * The simulator is a transport: it owns the data, the graph, the agents' parameter blocks and a
 * pool of threads, and moves every agent's outgoing state to its neighbours. What happens inside
 * an agent is not written here: each agent has a learner (learner.h: model, batcher, local steps,
 * epoch and learning-rate rules) and a mixer (mixer.h: what it sends and how it mixes what it
 * received), the very modules macc-agentd runs, so a fault-free fleet of daemons and this
 * simulator compute the same bits.
 *
 * Memory: the parameters of all agents are one [N][P] block, twice (x_cur is round k, x_next is
 * round k+1 being written), and so is the momentum when the algorithm sends it (dmsgd); otherwise
 * each agent updates its own momentum in place. In push-sum form the blocks hold the numerators
 * and each mixer the de-biased x. Evaluation uses one model object per worker thread with a
 * larger batch.
 *
 * A round (k -> k+1):
 *   1. serial: the learning rate of round k (macc_learner_lr); round k's pairing under a
 *      schedule (macc_schedule_round) handed to every mixer (macc_mixer_begin); message drops
 *      for round k drawn from one rng (seed, MACC_STREAM_DROP) in the order receiver j
 *      ascending, then its neighbours ascending, for the messages due (so drops do not depend
 *      on the thread count);
 *   2. parallel over agents: macc_learner_round (local steps and the gradient), then
 *      macc_mixer_outgoing (x, dsgd's y, v, push-sum weight, compressed differences); a
 *      byzantine agent then replaces what it sends by the attack;
 *   3. a barrier: every agent's outgoing state is ready;
 *   4. parallel over agents: each neighbour's outgoing state (or nothing, when dropped) into a
 *      struct macc_mixer_in, x_j^k (and v_j^k) copied to the next buffers, macc_mixer_step;
 *   5. serial: swap the buffers; count the traffic. centralized instead averages the gradients
 *      in agent order (sum, then divide by N) and takes macc_centralized_step() on the one
 *      shared model (no mixer).
 *
 * Standardisation (sim.h, struct sim_std): before round 0, serially, every agent's statistics
 * of its shard go through the agreement of agree.h (the module macc-agentd runs), one step of
 * every agent at a time, messages first; each agent's model gets its result.
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

#include "macc/agree.h"
#include "macc/consensus.h"
#include "macc/data.h"
#include "macc/learner.h"
#include "macc/mixer.h"
#include "macc/nn.h"
#include "macc/rng.h"
#include "sim.h"
#include "wiresize.h"

/* Samples per evaluation call (workspace of the per-thread evaluation models). */
#define EVAL_CHUNK 256

/* One configured neighbour of an agent (in- and out-neighbours with push-sum). */
struct nbr {
	uint32_t idx;  /* its agent number */
	bool in, out;  /* it sends to the agent / the agent to it */
	bool arrived;  /* its state reaches the agent this round (drops) */
};

struct agent {
	struct macc_learner learner;
	struct macc_mixer mixer;
	float *g; /* gradient, P */
	uint32_t nnb;
	struct nbr *nb;           /* [nnb] ascending */
	struct macc_mixer_in *in; /* [nnb] */
	struct macc_mixer_out out; /* what it sends this round */
	int rc;                   /* a failure inside a parallel phase, with its message */
	struct macc_errmsg err;
	uint64_t bytes_sent;
	uint64_t rcount[MACC_ROBUST_NREASONS], rquar, rclip;
	/* a byzantine agent: what it sends this round instead of its x (y) and v */
	struct macc_rng attack_rng;
	float *px, *pv;
	double acc; /* evaluation */
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
	bool centralized, sends_v;
	struct macc_hparams hp;

	struct macc_dataset train, test;
	size_t eval_n;
	struct macc_partition part;
	struct macc_graph graph;
	bool graph_made;
	double *W; /* [n][n]: W, or P for push-sum */
	bool have_gap;
	double gap;

	float *xa, *xb, *va, *vb;
	float *x_cur, *x_next, *v_cur, *v_next;
	float *xbar;
	float *gbar;
	const float **models; /* [n] model_of each agent, for the means */
	struct agent *agents;

	struct macc_rng drop_rng;
	uint64_t dropped, messages; /* simulated drops / directed messages so far */

	uint32_t H;                 /* local steps per round */
	bool pushsum;               /* numerators in the x/v blocks (each mixer de-biases) */
	struct macc_digraph dg;
	bool dg_made;
	struct macc_schedule sched;
	bool varying;               /* a non-static schedule */
	uint32_t *partner, *sched_work;
	struct macc_compressor comp;
	bool compressed;
	float gamma;
	uint64_t round_max_sum, comm_rounds;
	bool robust;                /* robust mixing instead of the plain mean path */
	struct macc_robust_cfg rcfg;
	uint32_t byz_k;             /* agents 0 .. byz_k-1 send poisoned states */
	struct macc_attack attack;
	char attack_spec[64];
	float *stale_x, *stale_v;   /* x^0 and v^0 = 0, what a stale attacker keeps sending */
	bool failed;
	struct macc_errmsg fail_err;
	uint64_t round;
	struct sim_std std;         /* feature standardisation (std.source points to std_source) */
	char std_source[400];

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

/* The parameters agent j's model is: x, the one shared x (single, centralized), or the
 * de-biased x its mixer keeps (push-sum). */
static const float *model_of(const struct sim *s, uint32_t j)
{
	if (s->single || s->centralized) {
		return s->x_cur;
	}
	return macc_mixer_model(&s->agents[j].mixer, agent_x(s->x_cur, s, j));
}

/* A byzantine agent (j < K) sends the attack applied to its honest message; its own x and v are
 * untouched: it keeps training and mixing honestly. */
static void agent_poison(struct sim *s, uint32_t j)
{
	struct agent *a = &s->agents[j];

	macc_attack_apply(&s->attack, s->p, a->out.x, s->stale_x, a->px, &a->attack_rng);
	a->out.x = a->px;
	if (a->out.v != NULL) {
		macc_attack_apply(&s->attack, s->p, a->out.v, s->stale_v, a->pv, &a->attack_rng);
		a->out.v = a->pv;
	}
}

/* Step 2: the learner's round and the agent's outgoing state. */
static void agent_grad(struct sim *s, uint32_t j)
{
	struct agent *a = &s->agents[j];
	float *x = agent_x(s->x_cur, s, j), *v = agent_x(s->v_cur, s, j);
	struct macc_learner_point pt = {s->x_cur, NULL, NULL};
	int rc;

	if (s->centralized) {
		(void)macc_learner_round(&a->learner, s->hp.alpha, s->x_cur, s->v_cur, a->g, &pt);
		return;
	}
	pt = (struct macc_learner_point){macc_mixer_model(&a->mixer, x), macc_mixer_moved,
					 &a->mixer};
	(void)macc_learner_round(&a->learner, s->hp.alpha, x, v, a->g, &pt);
	rc = macc_mixer_outgoing(&a->mixer, &s->hp, x, v, a->g, &a->out, &a->err);
	if (rc < 0) {
		a->rc = rc;
		return;
	}
	if (j < s->byz_k) {
		agent_poison(s, j);
	}
}

/* What agent j's neighbour i delivered this round (nothing when dropped or when it failed). */
static void gather(const struct sim *s, struct agent *a, uint32_t i)
{
	const struct agent *b = &s->agents[a->nb[i].idx];
	const struct macc_mixer_out *o = &b->out;

	a->in[i] = (struct macc_mixer_in){
		.arrived = a->nb[i].arrived && b->rc == 0,
		.x = o->x,
		.v = o->v,
		.weight = o->weight,
		.x_blob = o->x_blob,
		.v_blob = o->v_blob,
		.x_len = o->x_len,
		.v_len = o->v_len,
	};
}

/* Step 4: the mixer's step on x_j^k copied into the next buffers. */
static void agent_mix(struct sim *s, uint32_t j)
{
	struct agent *a = &s->agents[j];
	float *xn = agent_x(s->x_next, s, j), *vn = agent_x(s->v_next, s, j);
	struct macc_mixer_report rep;

	if (a->rc < 0) {
		return;
	}
	for (uint32_t i = 0; i < a->nnb; i++) {
		gather(s, a, i);
	}
	memcpy(xn, agent_x(s->x_cur, s, j), s->p * sizeof(float));
	if (s->sends_v) {
		memcpy(vn, agent_x(s->v_cur, s, j), s->p * sizeof(float));
	}
	macc_mixer_step(&a->mixer, &s->hp, xn, vn, a->g, a->in, 0, &rep);
	for (int r = 0; r < MACC_ROBUST_NREASONS; r++) {
		a->rcount[r] += rep.count[r];
	}
	a->rquar += rep.quarantined;
	a->rclip += rep.clipped;
	if (rep.rc < 0) {
		a->rc = rep.rc;
		macc_errf(&a->err, rep.rc, "robust mixing refused the agent's own state (%s)",
			  rep.rc == MACC_ENONFINITE ? "not finite" : "bad configuration");
	}
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

/* Evaluating agent j's model (j = 0 for the average model) when the agents do not all hold the
 * same transform: that agent's own (an agreed one is set on every evaluation model once). */
static void eval_transform(const struct sim *s, struct macc_model *m, uint32_t j)
{
	const float *mean, *inv;

	if (!s->std.on || s->std.agreed) {
		return;
	}
	if (macc_model_standardizer(macc_learner_model(&s->agents[j].learner), &mean, &inv)) {
		(void)macc_model_set_standardizer(m, mean, inv);
	}
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
		if (nt > 1) {
			barrier_wait(&s->bar); /* every outgoing state is ready */
		}
		for (uint32_t j = t; j < s->n; j += nt) {
			agent_mix(s, j);
		}
		break;
	case JOB_EVAL_AGENTS:
		for (uint32_t j = t; j < s->n; j += nt) {
			double loss;
			size_t correct;

			eval_transform(s, s->eval_models[t], j);
			eval_range(s, s->eval_models[t], model_of(s, j), 0, s->eval_n, &loss,
				   &correct);
			s->agents[j].acc = score(s, loss, correct);
		}
		break;
	case JOB_EVAL_AVG: {
		size_t lo = s->eval_n * t / nt, hi = s->eval_n * (t + 1) / nt;

		eval_transform(s, s->eval_models[t], 0);
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

/* Step 1: the round's partners and drops (serial, so they do not depend on the threads). */
static void round_start(struct sim *s)
{
	if (s->varying) {
		(void)macc_schedule_round(&s->sched, s->round, s->partner, s->sched_work);
	}
	for (uint32_t j = 0; j < s->n; j++) {
		struct agent *a = &s->agents[j];

		macc_mixer_begin(&a->mixer, s->round, s->varying ? s->partner[j] : MACC_NO_PARTNER);
		for (uint32_t i = 0; i < a->nnb && s->o.drop_prob > 0.0; i++) {
			if (!macc_mixer_expects(&a->mixer, a->nb[i].idx, a->nb[i].in)) {
				continue;
			}
			a->nb[i].arrived = !(macc_rng_uniform(&s->drop_rng) < s->o.drop_prob);
			s->dropped += !a->nb[i].arrived;
			s->messages++;
		}
	}
}

static void single_round(struct sim *s)
{
	struct agent *a = &s->agents[0];
	struct macc_learner_point pt = {s->x_cur, NULL, NULL};

	(void)macc_learner_round(&a->learner, s->hp.alpha, s->x_cur, s->v_cur, a->g, &pt);
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
	uint32_t m = 0;

	for (uint32_t i = 0; i < a->nnb; i++) {
		m += macc_mixer_sends_to(&a->mixer, a->nb[i].idx, a->nb[i].out);
	}
	return m;
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

static void swap_blocks(struct sim *s)
{
	float *t = s->x_cur;

	s->x_cur = s->x_next;
	s->x_next = t;
	if (s->sends_v) {
		t = s->v_cur;
		s->v_cur = s->v_next;
		s->v_next = t;
	}
}

double sim_train(struct sim *s, uint64_t rounds)
{
	double total = 0.0;
	uint64_t batches = 0;

	for (uint64_t r = 0; r < rounds; r++) {
		s->hp.alpha = macc_learner_lr(&s->agents[0].learner, s->round);
		if (s->single) {
			single_round(s);
			s->round++;
			continue;
		}
		if (!s->centralized) {
			round_start(s);
		}
		dispatch(s, JOB_ROUND);
		if (check_failed(s)) {
			break;
		}
		if (s->centralized) {
			centralized_update(s);
		} else {
			swap_blocks(s);
		}
		count_traffic(s);
		s->round++;
	}
	for (uint32_t j = 0; j < s->n; j++) {
		double sum;
		uint64_t cnt;

		macc_learner_take_loss(&s->agents[j].learner, &sum, &cnt);
		total += sum;
		batches += cnt;
	}
	if (batches == 0 || s->failed) {
		return s->failed ? NAN : 0.0;
	}
	return total / (double)batches;
}

/* The mean in double, agent order, of the models of agents lo .. n-1, into xbar; with ret_dist
 * also the consensus distance to that exact mean. */
static void mean_model(struct sim *s, uint32_t lo, double *ret_dist)
{
	const float **xs = s->models;
	uint32_t cnt = s->n - lo;
	double dist = 0.0;

	for (uint32_t j = 0; j < s->n; j++) {
		xs[j] = model_of(s, j);
	}
	for (size_t i = 0; i < s->p; i++) {
		double sum = 0.0, m;

		for (uint32_t j = lo; j < s->n; j++) {
			sum += (double)xs[j][i];
		}
		m = sum / (double)cnt;
		s->xbar[i] = (float)m;
		for (uint32_t j = lo; j < s->n && ret_dist != NULL; j++) {
			double d = (double)xs[j][i] - m;

			dist += d * d;
		}
	}
	if (ret_dist != NULL) {
		*ret_dist = dist / (double)cnt;
	}
}

/* The average model on the test set (JOB_EVAL_AVG), as an accuracy. */
static double eval_xbar(struct sim *s)
{
	size_t correct = 0;
	double loss = 0.0;

	dispatch(s, JOB_EVAL_AVG);
	for (unsigned t = 0; t < s->nthreads; t++) {
		correct += s->eval_cnt[t];
		loss += s->eval_loss[t];
	}
	return score(s, loss, correct);
}

/* After the per-agent evaluation: the worst honest agent, and the average of the honest agents'
 * models (j >= K) evaluated like the average model. */
static void eval_honest(struct sim *s, struct sim_eval *ret)
{
	ret->honest = true;
	ret->acc_honest_min = INFINITY;
	for (uint32_t j = s->byz_k; j < s->n; j++) {
		ret->acc_honest_min = fmin(ret->acc_honest_min, s->agents[j].acc);
	}
	mean_model(s, s->byz_k, NULL);
	ret->acc_honest = eval_xbar(s);
}

static void eval_agents(struct sim *s, struct sim_eval *ret)
{
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

void sim_evaluate(struct sim *s, bool per_agent, struct sim_eval *ret)
{
	size_t correct = 0;
	bool shared = s->single || s->centralized;

	memset(ret, 0, sizeof(*ret));
	if (shared) {
		memcpy(s->xbar, s->x_cur, s->p * sizeof(float));
	} else {
		mean_model(s, 0, &ret->consensus);
	}
	if (s->single) {
		double loss;

		eval_range(s, s->eval_models[0], s->xbar, 0, s->eval_n, &loss, &correct);
		ret->acc_avg = score(s, loss, correct);
	} else {
		ret->acc_avg = eval_xbar(s);
	}
	if (!per_agent) {
		return;
	}
	ret->per_agent = true;
	if (shared) {
		ret->acc_mean = ret->acc_min = ret->acc_max = ret->acc_avg;
		return;
	}
	eval_agents(s, ret);
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

/* Whether agent l's messages reach agent j (in) and j's reach l (out). */
static void links(const struct sim *s, uint32_t j, uint32_t l, bool *ret_in, bool *ret_out)
{
	if (s->pushsum) {
		*ret_in = s->dg.adj[(size_t)l * s->n + j] != 0;
		*ret_out = s->dg.adj[(size_t)j * s->n + l] != 0;
		return;
	}
	*ret_in = *ret_out = s->graph.adj[(size_t)j * s->n + l] != 0;
}

/* A directed edge list ("a -> b") makes the run push-sum. */
static int setup_directed(struct sim *s, struct macc_errmsg *err)
{
	if (macc_digraph_create(s->o.topology, s->n, s->o.seed, &s->dg, err) < 0) {
		return MACC_ESPEC;
	}
	s->dg_made = true;
	s->pushsum = true;
	return setup_pushsum(s, err);
}

static int setup_weights(struct sim *s, enum macc_weights_kind kind, struct macc_errmsg *err)
{
	struct macc_errmsg tmp;
	int rc;

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

static int setup_graph(struct sim *s, struct macc_errmsg *err)
{
	enum macc_weights_kind kind;
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
		return setup_directed(s, err); /* perhaps a directed edge list */
	}
	if (rc < 0) {
		return rc;
	}
	s->graph_made = true;
	return setup_weights(s, kind, err);
}

/* Agent j's learner: model, shard, batcher, rngs, the epoch and learning-rate rules. */
static int setup_learner(struct sim *s, uint32_t j, struct macc_errmsg *err)
{
	struct macc_learner_opts lo = {
		.model = s->o.model,
		.batch = s->o.batch,
		.train = &s->train,
		.part = s->single ? NULL : &s->part,
		.agent = j,
		.seed = s->o.seed,
		.weight_decay = s->o.weight_decay,
		.beta = s->o.momentum,
		.nesterov = s->o.nesterov,
		.local_steps = s->H,
		.lr_schedule = s->o.lr_schedule,
		.lr = s->o.lr,
		.epochs = s->o.epochs,
		.rounds = s->o.rounds,
		.epoch_rounds = s->o.epoch_rounds,
	};
	struct agent *a = &s->agents[j];
	int rc;

	rc = macc_learner_init(&a->learner, &lo, err);
	if (rc < 0) {
		return rc;
	}
	a->g = xcalloc(s->p, sizeof(float), &rc);
	return rc;
}

/* Agent j's configured neighbours, ascending, with their edges. */
static int setup_neighbours(struct sim *s, uint32_t j)
{
	struct agent *a = &s->agents[j];
	bool in, out;
	int rc = 0;

	for (uint32_t l = 0; l < s->n; l++) {
		links(s, j, l, &in, &out);
		a->nnb += in || out;
	}
	a->nb = xcalloc(a->nnb, sizeof(*a->nb), &rc);
	a->in = xcalloc(a->nnb, sizeof(*a->in), &rc);
	if (rc < 0) {
		return rc;
	}
	for (uint32_t l = 0, i = 0; l < s->n; l++) {
		links(s, j, l, &in, &out);
		if (in || out) {
			a->nb[i++] = (struct nbr){l, in, out, true};
		}
	}
	return 0;
}

/* Agent j's mixer, from the shared x^0, with its row of W (P) and its neighbours' edges. */
static int setup_mixer(struct sim *s, uint32_t j, struct macc_errmsg *err)
{
	struct agent *a = &s->agents[j];
	struct macc_mixer_cfg mc = {
		.algo = s->algo,
		.pushsum = s->pushsum,
		.schedule = s->varying ? s->sched.kind : MACC_SCHEDULE_STATIC,
		.comp = s->comp,
		.gamma = s->gamma,
		.robust = s->robust,
		.rcfg = s->rcfg,
		.n = s->p,
		.nnb = a->nnb,
	};
	double *w;
	int rc;

	rc = macc_mixer_init(&a->mixer, &mc, agent_x(s->x_cur, s, j), 0, true, err);
	if (rc < 0 && rc == MACC_ECONFIG) {
		char why[sizeof(err->text)];

		/* a copy: formatting err->text into itself is undefined (and printed garbage) */
		snprintf(why, sizeof(why), "%s", err->text);
		return macc_errf(err, rc, "agent %u: %.400s", j, why);
	}
	if (rc < 0) {
		return rc;
	}
	w = calloc(a->nnb ? a->nnb : 1, sizeof(double));
	if (w == NULL) {
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < a->nnb; i++) {
		w[i] = s->W[(size_t)j * s->n + a->nb[i].idx];
		macc_mixer_set_link(&a->mixer, i, a->nb[i].idx, a->nb[i].in, a->nb[i].out);
	}
	macc_mixer_set_row(&a->mixer, s->W[(size_t)j * s->n + j], w);
	free(w);
	return 0;
}

static int setup_agents(struct sim *s, struct macc_errmsg *err)
{
	int rc = 0;

	s->agents = xcalloc(s->n, sizeof(*s->agents), &rc);
	s->models = xcalloc(s->n, sizeof(*s->models), &rc);
	for (uint32_t j = 0; j < s->n && rc == 0; j++) {
		rc = setup_learner(s, j, err);
		if (rc == 0 && (s->graph_made || s->dg_made)) {
			rc = setup_neighbours(s, j);
		}
	}
	if (rc < 0) {
		return rc;
	}
	/* Identical initial parameters on every agent, zero momentum (calloc). */
	macc_model_init_params(macc_learner_model(&s->agents[0].learner), s->x_cur, s->o.seed);
	if (s->single || s->centralized) {
		return 0;
	}
	for (uint32_t j = 1; j < s->n; j++) {
		memcpy(agent_x(s->x_cur, s, j), s->x_cur, s->p * sizeof(float));
	}
	for (uint32_t j = 0; j < s->n && rc == 0; j++) {
		rc = setup_mixer(s, j, err);
	}
	return rc;
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

/* Parse --schedule, --local-steps, --compress, --gossip-step, --aggregation, --screen-factor and
 * --byzantine (before the graph is known; the combinations are checked once it is). */
static int setup_opts(struct sim *s, struct macc_errmsg *err)
{
	const struct sim_opts *o = &s->o;
	enum macc_schedule_kind kind = MACC_SCHEDULE_STATIC;
	int rc;

	s->H = o->local_steps ? o->local_steps : 1;
	if (o->schedule != NULL && macc_schedule_parse(o->schedule, &kind) < 0) {
		return macc_errf(err, MACC_ESPEC, "unknown schedule '%s' (static, matching, "
				 "exp-pairs)", o->schedule);
	}
	s->sched.kind = kind;
	rc = macc_compress_parse(o->compress != NULL ? o->compress : "none", &s->comp, err);
	if (rc == 0) {
		rc = macc_mixer_robust_cfg(o->aggregation, o->screen_factor >= 0.0,
					   o->screen_factor, &s->rcfg, &s->robust, err);
	}
	if (rc == 0 && o->byzantine != NULL) {
		rc = macc_byzantine_parse(o->byzantine, &s->byz_k, &s->attack, err);
	}
	if (rc < 0) {
		return rc;
	}
	if (macc_attack_format(&s->attack, s->attack_spec, sizeof(s->attack_spec)) < 0) {
		snprintf(s->attack_spec, sizeof(s->attack_spec), "?");
	}
	if (!s->single) {
		s->varying = kind != MACC_SCHEDULE_STATIC;
		s->compressed = s->comp.kind != MACC_COMPRESS_NONE;
	}
	if (s->compressed) {
		s->gamma = o->gossip_step > 0.0f ? o->gossip_step
						 : macc_compress_default_gamma(&s->comp);
	}
	return 0;
}

/* Combinations (mixer.h's one table, once the graph said whether the run is push-sum), then
 * what only the simulator has: K byzantine agents below N, the schedule's state. */
static int check_combos(struct sim *s, struct macc_errmsg *err)
{
	const struct sim_opts *o = &s->o;
	struct macc_mix_opts mo = {
		.algo = s->algo,
		.pushsum = s->pushsum,
		.single = s->single,
		.schedule = s->sched.kind,
		.local_steps = s->H,
		.compress = s->comp.kind,
		.gossip_step = o->gossip_step > 0.0f,
		.robust = s->robust,
		.byzantine = o->byzantine != NULL,
		.drops = o->drop_prob > 0.0,
	};
	int rc = macc_mixer_check_opts(&mo, MACC_MIX_CLI, err);

	if (rc < 0) {
		return rc;
	}
	if (s->byz_k >= s->n && o->byzantine != NULL) {
		return macc_errf(err, MACC_ECONFIG, "--byzantine %s: K must be below the number of "
				 "agents (%u), at least one agent must be honest", o->byzantine,
				 s->n);
	}
	if (!s->varying) {
		return 0;
	}
	rc = macc_schedule_init(&s->sched, s->sched.kind, &s->graph, o->seed, err);
	if (rc < 0) {
		return rc;
	}
	s->partner = calloc(s->n, sizeof(*s->partner));
	s->sched_work = calloc(s->n, sizeof(*s->sched_work));
	return s->partner == NULL || s->sched_work == NULL ? -ENOMEM : 0;
}

/* The attackers' message buffers and the stale vectors (x^0 and v^0 = 0). */
static int setup_byzantine(struct sim *s)
{
	int rc = 0;

	if (s->byz_k == 0) {
		return 0;
	}
	s->stale_x = xcalloc(s->p, sizeof(float), &rc);
	s->stale_v = xcalloc(s->p, sizeof(float), &rc);
	if (rc < 0) {
		return rc;
	}
	memcpy(s->stale_x, s->x_cur, s->p * sizeof(float)); /* x^0, the same everywhere */
	for (uint32_t j = 0; j < s->byz_k; j++) {
		struct agent *a = &s->agents[j];

		a->px = xcalloc(s->p, sizeof(float), &rc);
		a->pv = s->sends_v ? xcalloc(s->p, sizeof(float), &rc) : NULL;
		macc_rng_seed(&a->attack_rng, s->o.seed, MACC_STREAM_ATTACK + j);
	}
	return rc;
}

/* The model first: a bad spec is a usage error, reported before loading any data. */
static int probe_model(struct sim *s, uint32_t *ret_nclasses, struct macc_errmsg *err)
{
	struct macc_model *m = NULL;
	int rc = macc_model_create(s->o.model, s->o.batch, &m, err);

	if (rc < 0) {
		return rc;
	}
	s->p = macc_model_nparams(m);
	s->dim = macc_model_input_dim(m);
	*ret_nclasses = macc_model_nclasses(m);
	s->regression = macc_model_loss(m) == MACC_LOSS_MSE;
	s->ntargets = s->regression ? *ret_nclasses : 0;
	macc_model_destroy(m);
	return 0;
}

/* Training and test sets, checked against the model; the partition among agents. */
static int setup_data(struct sim *s, uint32_t nclasses, struct macc_errmsg *err)
{
	const struct sim_opts *o = &s->o;
	int rc;

	rc = macc_dataset_load(o->data, MACC_SPLIT_TRAIN, &s->train, err);
	if (rc == 0) {
		rc = macc_dataset_load(o->data, MACC_SPLIT_TEST, &s->test, err);
	}
	if (rc < 0) {
		return rc;
	}
	{
		/* inputs, image shape, outputs against classes or targets, both splits */
		struct macc_model *m = NULL;

		(void)nclasses;
		rc = macc_model_create(o->model, 1, &m, err);
		if (rc == 0) {
			rc = macc_model_check_data(m, o->model, &s->train, &s->test, o->data, err);
		}
		macc_model_destroy(m);
		if (rc < 0) {
			return rc;
		}
	}
	s->eval_n = s->test.n;
	if (o->eval_samples > 0 && o->eval_samples < s->eval_n) {
		s->eval_n = o->eval_samples;
	}
	if (s->eval_n == 0) {
		return macc_errf(err, MACC_EDATA, "data '%s' has an empty test set", o->data);
	}
	if (s->single) {
		return 0;
	}
	return macc_partition_make(s->train.y, s->train.n, s->train.nclasses, s->n, o->partition,
				   o->seed, &s->part, err);
}

/* The [N][P] blocks: x twice (except one shared model), v twice when it travels. */
static int setup_blocks(struct sim *s)
{
	size_t np = (size_t)s->n * s->p;
	int rc = 0;

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
	s->x_cur = s->xa;
	s->x_next = s->xb;
	s->v_cur = s->va;
	s->v_next = s->sends_v ? s->vb : s->va;
	return rc;
}

/* Algorithm, threads, options, hyper-parameters. */
static int setup_run(struct sim *s, const struct sim_opts *o, struct macc_errmsg *err)
{
	int rc;

	s->o = *o;
	s->n = o->agents;
	s->single = s->n == 1;
	s->nthreads = 1;
	if (!s->single) {
		s->nthreads = o->threads < s->n ? o->threads : s->n;
		s->nthreads = s->nthreads ? s->nthreads : 1;
		macc_nn_set_threads(1);
	} else {
		macc_nn_set_threads((int)(o->threads ? o->threads : 1));
	}
	if (macc_algo_parse(o->algorithm, &s->algo) < 0) {
		/* Only "sgp" parses here: the push-sum form of cdmsgd. */
		if (macc_pushsum_algo_parse(o->algorithm, &s->algo) < 0) {
			return macc_errf(err, MACC_ESPEC, "unknown algorithm '%s' (dmsgd, cdmsgd, "
					 "cdsgd, dsgd, centralized, sgp)", o->algorithm);
		}
		s->pushsum = !s->single;
	}
	rc = setup_opts(s, err);
	if (rc < 0) {
		return rc;
	}
	s->centralized = !s->single && s->algo == MACC_ALGO_CENTRALIZED;
	s->sends_v = !s->single && !s->centralized && macc_algo_sends_momentum(s->algo);
	s->hp.alpha = o->lr;
	s->hp.beta = o->momentum;
	s->hp.omega = o->omega;
	s->hp.nesterov = o->nesterov;
	macc_rng_seed(&s->drop_rng, o->seed, MACC_STREAM_DROP);
	if (o->drop_prob > 0.0 && (s->single || s->centralized)) {
		fprintf(stderr, "macc-sim: warning: --drop-prob has no effect on %s (no messages)\n",
			s->single ? "a single agent" : "centralized");
	}
	return 0;
}

/* ---- standardisation ------------------------------------------------------------------------ */

/* Statistics of agent j's shard of the training split (the whole split for a shared model). */
static void shard_stats(const struct sim *s, uint32_t j, double *st)
{
	uint32_t lo, hi;

	if (s->single || s->centralized) {
		macc_feature_stats_compute(&s->train, NULL, 0, st);
		return;
	}
	lo = s->part.offsets[j];
	hi = s->part.offsets[j + 1];
	macc_feature_stats_compute(&s->train, s->part.indices + lo, hi - lo, st);
}

/* Agent j's agreement: its statistics (into st), its neighbours' weights (w, nnb entries). */
static int agree_init(struct sim *s, struct macc_agree *ag, uint32_t j, double *st, double *w,
		      struct macc_errmsg *err)
{
	const struct agent *a = &s->agents[j];
	struct macc_agree_cfg c = {
		.dim = s->dim,
		.avg_steps = s->std.avg_rounds,
		.exact_steps = s->std.exact_rounds,
		.nnb = a->nnb,
	};
	struct macc_errmsg why = {{0}};
	int rc;

	shard_stats(s, j, st);
	rc = macc_agree_init(ag, &c, st, &why);
	if (rc < 0) {
		return macc_errf(err, rc, "agent %u: %.400s", j, why.text);
	}
	for (uint32_t i = 0; i < a->nnb; i++) {
		w[i] = s->W[(size_t)j * s->n + a->nb[i].idx];
	}
	macc_agree_set_row(ag, s->W[(size_t)j * s->n + j], w);
	return 0;
}

/* Buffers of the agreement phase. */
struct agree_run {
	struct macc_agree *ag;  /* [n] */
	const double **out;     /* [n] */
	size_t *nout;           /* [n] */
	struct macc_agree_in *in; /* [n]: at most n - 1 neighbours */
	struct macc_rng rng;
};

/* One step of every agent: every message first, then every step. In the average phase each
 * vector a neighbour sends is lost with --drop-prob (draws: receiver ascending, then its
 * neighbours ascending); the exact phase loses none. */
static void agree_round(struct sim *s, struct agree_run *r)
{
	bool avg = macc_agree_step_no(&r->ag[0]) < s->std.avg_rounds;

	for (uint32_t j = 0; j < s->n; j++) {
		r->nout[j] = macc_agree_outgoing(&r->ag[j], &r->out[j]);
	}
	for (uint32_t j = 0; j < s->n; j++) {
		const struct agent *a = &s->agents[j];

		for (uint32_t i = 0; i < a->nnb; i++) {
			uint32_t l = a->nb[i].idx;

			r->in[i] = (struct macc_agree_in){a->nb[i].in, r->out[l], r->nout[l]};
			if (avg && a->nb[i].in && s->o.drop_prob > 0.0 &&
			    macc_rng_uniform(&r->rng) < s->o.drop_prob) {
				r->in[i].arrived = false;
				s->std.dropped++;
			}
		}
		macc_agree_step(&r->ag[j], r->in, NULL);
	}
}

/* The agreement of all agents into means/invs [n][dim]. */
static int run_agreement(struct sim *s, float *means, float *invs, struct macc_errmsg *err)
{
	struct agree_run r = {0};
	const size_t len = macc_feature_stats_len(s->dim);
	double *st = NULL, *w = NULL;
	int rc = 0;

	r.ag = xcalloc(s->n, sizeof(*r.ag), &rc);
	r.out = xcalloc(s->n, sizeof(*r.out), &rc);
	r.nout = xcalloc(s->n, sizeof(*r.nout), &rc);
	r.in = xcalloc(s->n, sizeof(*r.in), &rc);
	st = xcalloc(len, sizeof(double), &rc);
	w = xcalloc(s->n, sizeof(double), &rc);
	macc_rng_seed(&r.rng, s->o.seed, MACC_STREAM_STATS_DROP);
	for (uint32_t j = 0; j < s->n && rc == 0; j++) {
		rc = agree_init(s, &r.ag[j], j, st, w, err);
	}
	while (rc == 0 && !macc_agree_done(&r.ag[0])) {
		agree_round(s, &r);
	}
	for (uint32_t j = 0; j < s->n && rc == 0; j++) {
		uint64_t c[MACC_AGREE_NREASONS];

		(void)macc_agree_result(&r.ag[j], means + (size_t)j * s->dim,
					invs + (size_t)j * s->dim);
		macc_agree_counts(&r.ag[j], c);
		for (int k = MACC_AGREE_MALFORMED; k < MACC_AGREE_NREASONS; k++) {
			s->std.refused += c[k];
		}
	}
	for (uint32_t j = 0; r.ag != NULL && j < s->n; j++) {
		macc_agree_finish(&r.ag[j]);
	}
	free(r.ag);
	free(r.out);
	free(r.nout);
	free(r.in);
	free(st);
	free(w);
	return rc;
}

/* Distance of the nm transforms to the exact one of the whole training split. */
static void std_measure(struct sim *s, const float *means, const float *invs, uint32_t nm,
			const double *exact)
{
	const size_t d = s->dim;
	float *em = malloc(2 * d * sizeof(float));

	if (em == NULL) {
		s->std.err_mean = s->std.err_scale = NAN;
		return;
	}
	macc_standardizer_from_stats(exact, d, em, em + d);
	for (uint32_t j = 0; j < nm; j++) {
		for (size_t k = 0; k < d; k++) {
			double m = means[(size_t)j * d + k], v = invs[(size_t)j * d + k];
			double dm = fabs(m - em[k]) * em[d + k], ds = fabs(v / em[d + k] - 1.0);

			/* Compared with if, not fmax(): a max-reduction of a fabs() of widened floats
			 * makes aarch64 GCC 12.2 at -O3 die in the vectorizer (as in test_nn.c). */
			if (dm > s->std.err_mean) {
				s->std.err_mean = dm;
			}
			if (ds > s->std.err_scale) {
				s->std.err_scale = ds;
			}
		}
	}
	free(em);
}

/* Every agent's learner model gets its transform (the one of agent 0 for a shared model); the
 * evaluation models get agent 0's. */
static int std_apply(struct sim *s, const float *means, const float *invs, uint32_t nm)
{
	const size_t d = s->dim;
	int rc = 0;

	s->std.agreed = true;
	for (uint32_t j = 0; j < s->n && rc == 0; j++) {
		size_t o = (size_t)(nm == 1 ? 0 : j) * d;

		rc = macc_model_set_standardizer(macc_learner_model(&s->agents[j].learner),
						 means + o, invs + o);
		if (memcmp(means + o, means, d * sizeof(float)) != 0 ||
		    memcmp(invs + o, invs, d * sizeof(float)) != 0) {
			s->std.agreed = false;
		}
	}
	for (unsigned t = 0; t < s->nthreads && rc == 0; t++) {
		rc = macc_model_set_standardizer(s->eval_models[t], means, invs);
	}
	if (rc == 0) {
		float *mi = malloc(2 * d * sizeof(float));

		if (mi == NULL) {
			return -ENOMEM;
		}
		memcpy(mi, means, d * sizeof(float));
		memcpy(mi + d, invs, d * sizeof(float));
		s->std.digest = macc_params_digest(mi, 2 * d);
		free(mi);
	}
	return rc;
}

/* What the transform came from, for output. */
static void std_describe(struct sim *s)
{
	if (s->std.exact) {
		snprintf(s->std_source, sizeof(s->std_source), "exact, from the %s (%zu rows)%s",
			 s->train.origin_text, s->train.n,
			 s->centralized ? ", shared by every agent (centralized)" : "");
		return;
	}
	snprintf(s->std_source, sizeof(s->std_source), "%s by %u agents, each from its shard of "
		 "the %s (%zu rows in all; only sums travel): %u average + %u exact rounds",
		 s->std.agreed ? "agreed" : "estimated", s->n, s->train.origin_text, s->train.n,
		 s->std.avg_rounds, s->std.exact_rounds);
}

/* Feature standardisation before round 0 (sim.h). */
static int setup_standardize(struct sim *s, struct macc_errmsg *err)
{
	const uint32_t nm = (s->single || s->centralized) ? 1 : s->n;
	const uint8_t *adj = s->pushsum ? s->dg.adj : s->graph.adj;
	double *exact = NULL;
	float *means = NULL, *invs = NULL;
	double gap = 0.0;
	int rc = 0;

	s->std.source = s->std_source;
	s->std.on = s->o.standardize < 0 ? macc_agree_default_on(s->o.data) : s->o.standardize > 0;
	if (!s->std.on) {
		return 0;
	}
	s->std.exact = nm == 1;
	s->std.eps = NAN;
	exact = xcalloc(macc_feature_stats_len(s->dim), sizeof(double), &rc);
	means = xcalloc((size_t)nm * s->dim, sizeof(float), &rc);
	invs = xcalloc((size_t)nm * s->dim, sizeof(float), &rc);
	if (rc < 0) {
		goto out;
	}
	macc_feature_stats_compute(&s->train, NULL, 0, exact);
	if (s->std.exact) {
		macc_standardizer_from_stats(exact, s->dim, means, invs);
	} else {
		s->std.avg_rounds = s->o.standardize_rounds;
		rc = macc_agree_diameter(adj, s->n, &s->std.exact_rounds);
		if (rc == 0) {
			rc = run_agreement(s, means, invs, err);
		}
		if (rc == 0 && !s->pushsum && sim_spectral_gap(s, &gap)) {
			s->std.eps = (double)s->n * pow(1.0 - gap, (double)s->std.avg_rounds);
		}
	}
	if (rc == 0) {
		std_measure(s, means, invs, nm, exact);
		rc = std_apply(s, means, invs, nm);
	}
	std_describe(s);
out:
	free(exact);
	free(means);
	free(invs);
	return rc;
}

int sim_create(const struct sim_opts *o, struct sim **ret, struct macc_errmsg *err)
{
	struct sim *s;
	uint32_t nclasses = 0;
	int rc;

	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		return -ENOMEM;
	}
	rc = setup_run(s, o, err);
	if (rc == 0) {
		rc = probe_model(s, &nclasses, err);
	}
	if (rc == 0 && !s->single) {
		rc = setup_graph(s, err);
	}
	if (rc == 0) {
		rc = check_combos(s, err);
	}
	if (rc == 0) {
		rc = setup_data(s, nclasses, err);
	}
	if (rc == 0) {
		rc = setup_blocks(s);
	}
	if (rc == 0) {
		rc = setup_agents(s, err);
	}
	if (rc == 0) {
		rc = setup_byzantine(s);
	}
	if (rc == 0) {
		rc = setup_pool(s, err);
	}
	if (rc == 0) {
		rc = setup_standardize(s, err);
	}
	if (rc < 0) {
		if (rc == -ENOMEM) {
			macc_errf(err, rc, "out of memory");
		}
		sim_destroy(s);
		return rc;
	}
	*ret = s;
	return 0;
}

static void agent_finish(struct agent *a)
{
	free(a->g);
	free(a->nb);
	free(a->in);
	free(a->px);
	free(a->pv);
	macc_learner_finish(&a->learner); /* zeroed ok, as every finish here */
	macc_mixer_finish(&a->mixer);
}

/* Ends the worker threads (they wait at the start barrier) and frees the pool. */
static void stop_pool(struct sim *s)
{
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
	for (unsigned t = 0; s->eval_models != NULL && t < s->nthreads; t++) {
		macc_model_destroy(s->eval_models[t]);
	}
	free(s->eval_models);
	free(s->eval_loss);
	free(s->eval_cnt);
	free(s->workers);
}

void sim_destroy(struct sim *s)
{
	if (s == NULL) {
		return;
	}
	stop_pool(s);
	for (uint32_t j = 0; s->agents != NULL && j < s->n; j++) {
		agent_finish(&s->agents[j]);
	}
	free(s->agents);
	free(s->models);
	free(s->stale_x);
	free(s->stale_v);
	free(s->partner);
	free(s->sched_work);
	free(s->xa);
	free(s->xb);
	free(s->va);
	free(s->vb);
	free(s->xbar);
	free(s->gbar);
	free(s->W);
	/* every finish takes zeroed storage: what was never made */
	macc_schedule_finish(&s->sched);
	macc_digraph_finish(&s->dg);
	macc_graph_finish(&s->graph);
	macc_partition_finish(&s->part);
	macc_dataset_finish(&s->train);
	macc_dataset_finish(&s->test);
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
	return macc_learner_epoch_rounds(&s->agents[0].learner);
}

uint64_t sim_total_rounds(const struct sim *s)
{
	return macc_learner_total_rounds(&s->agents[0].learner);
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

bool sim_standardize(const struct sim *s, struct sim_std *ret)
{
	*ret = s->std;
	return s->std.on;
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
	return (uint64_t)s->n * macc_learner_samples_per_round(&s->agents[0].learner);
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

/* All agents' models, agent after agent, as one block: x_cur itself, or gathered from the
 * mixers (push-sum); *ret_tmp is what to free. */
static const float *model_block(const struct sim *s, float **ret_tmp)
{
	uint32_t nm = sim_nmodels(s);
	float *b;

	*ret_tmp = NULL;
	if (!s->pushsum) {
		return s->x_cur;
	}
	b = malloc((size_t)nm * s->p * sizeof(float));
	if (b == NULL) {
		return NULL;
	}
	for (uint32_t j = 0; j < nm; j++) {
		memcpy(b + (size_t)j * s->p, model_of(s, j), s->p * sizeof(float));
	}
	*ret_tmp = b;
	return b;
}

uint64_t sim_digest(const struct sim *s)
{
	float *tmp;
	const float *b = model_block(s, &tmp);
	uint64_t d = b != NULL ? macc_params_digest(b, (size_t)sim_nmodels(s) * s->p) : 0;

	free(tmp);
	return d;
}

uint64_t sim_agent_digest(const struct sim *s, uint32_t j)
{
	if (j >= sim_nmodels(s)) {
		j = 0;
	}
	return macc_params_digest(model_of(s, j), s->p);
}

int sim_dump_params(const struct sim *s, const char *path, struct macc_errmsg *err)
{
	FILE *f = fopen(path, "wb");
	bool ok = true;

	if (f == NULL) {
		return macc_errf(err, -errno, "%s: cannot create: %s", path, strerror(errno));
	}
	for (uint32_t j = 0; j < sim_nmodels(s) && ok; j++) {
		ok = fwrite(model_of(s, j), sizeof(float), s->p, f) == s->p;
	}
	if (!ok) {
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
	uint32_t n = sim_nmodels(s);

	if (j >= 0 || n == 1) {
		memcpy(out, model_of(s, j >= 0 && (uint64_t)j < n ? (uint32_t)j : 0),
		       s->p * sizeof(float));
		return;
	}
	/* mean_model()'s mean: in double, agent order */
	for (size_t i = 0; i < s->p; i++) {
		double sum = 0.0;

		for (uint32_t a = 0; a < n; a++) {
			sum += (double)model_of(s, a)[i];
		}
		out[i] = (float)(sum / (double)n);
	}
}
