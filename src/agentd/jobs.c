/*
 * jobs.c - the worker jobs of one agent: one function per kind (step, evaluation, checkpoint,
 * encode, gradient, distance, rollback), run on a libuv worker thread, with their inputs and
 * outputs in the agent's struct agent_job (agent.h); and the loop-side intake of what a job
 * reports (job_absorb), before the round driver (round.c) decides what comes next.
 *
 * At most one job is in flight (job_queue refuses nothing but the loop never queues a second:
 * the round driver's phase says one runs). While it runs, the loop does not touch x, v, g, the
 * learner, the mixer or a->job; everything the job reports comes back in after_work on the loop
 * thread. Kinds asked for together run in a fixed order (work_cb): step, own-parameter check and
 * rollback, distance, evaluation, checkpoint, gradient, encode.
 *
 * Non-finite own parameters (a diverging learning rate; a poison that passed the value bound):
 * the worker checks x after every step and what it encodes or checkpoints otherwise, against
 * finiteness and state_value_max (the bound the neighbours hold our states to). A bad vector
 * is never sent (no body is encoded) and never checkpointed (the last good checkpoint stays).
 * The loop then queues a rollback job (round.c): x and v come back from the last good checkpoint
 * (or the seeded initial parameters when there is none), the round is kept (like a rejoin), the
 * agent is `degraded` (status, metrics), last_error says what happened and an error line is
 * logged; a fresh evaluation follows. It leaves `degraded` when a checkpoint taken after at least
 * one more round is written (so a good checkpoint after the incident exists).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macc/guard.h"

#include "agent.h"
#include "checkpoint.h"


/* Worker: put a state that robust mixing excluded into the audit trail. The signed text is
 * rebuilt from what the sender signed (keys, session nonces, round, BLAKE2b of the body bytes
 * we hold) and macc_audit_append verifies the signature and digest itself before it writes:
 * nothing here relies on the receive path having verified anything. */
static void audit_excluded(struct macc_agent *a, size_t i)
{
	const struct slot *sl = a->job.slot[i];
	struct macc_audit_entry e;
	uint8_t digest[MACC_DIGEST_BYTES];
	struct macc_errmsg err;
	int rc;

	if (!sl->has_sig || sl->body.len == 0) {
		a->job.audit_unsigned++;
		return;
	}
	memset(&e, 0, sizeof(e));
	e.key = a->job.key[i];
	if (macc_digest(sl->digest_alg, digest, sl->body.data, sl->body.len) != 0) {
		a->job.audit_errors++;
		return;
	}
	macc_state_signed_text_alg(sl->digest_alg, &a->job.key[i], &a->id.pub, sl->snonce, sl->rnonce,
				   a->job.round, digest, e.text);
	memcpy(e.sig, sl->sig, sizeof(e.sig));
	snprintf(e.reason, sizeof(e.reason), "%s",
		 macc_robust_reason_name(
			 (enum macc_robust_reason)macc_mixer_outcome(&a->mixer, i)->reason));
	snprintf(e.peer, sizeof(e.peer), "%s", a->job.name[i]);
	err.text[0] = '\0';
	rc = macc_audit_append(a->audit, &e, sl->body.data, sl->body.len, &err);
	if (rc < 0) {
		a->job.audit_errors++;
		a->job.audit_err = err;
	} else {
		a->job.audit_written++;
	}
}

/* Worker: the round's step (the mixer's), then the audit trail for what robust mixing
 * excluded. */
static void step_job(struct macc_agent *a, unsigned flags)
{
	macc_mixer_step(&a->mixer, &a->hp, a->x, a->v, a->g, a->job.in,
			(flags & JOB_DIST) ? MACC_MIXER_MEASURE : 0, &a->job.rep);
	a->job.dist = a->job.rep.dist;
	a->job.audit_written = a->job.audit_errors = a->job.audit_unsigned = 0;
	for (size_t i = 0; i < a->job.nnb && a->audit != NULL; i++) {
		uint8_t r = macc_mixer_outcome(&a->mixer, i)->reason;

		if (r == MACC_ROBUST_NONFINITE || r == MACC_ROBUST_DISTANCE) {
			audit_excluded(a, i);
		}
	}
}

/* Worker: are this agent's own parameters finite and within state_value_max, the bound its
 * neighbours hold its states to (what they would refuse is not sent, not checkpointed, and
 * rolled back like NaN)? x alone is read: every update adds the new momentum into x
 * (x = mix(x) + v, the push-sum and CHOCO forms alike, macc-algorithms(7)), so a bad v shows in x
 * within the same step, and one pass over x (memory speed, ~0.2 ms for 0.5 M parameters) is
 * all a round pays. */
static bool own_finite(const struct macc_agent *a)
{
	return macc_guard_values(a->x, a->nparams, (float)a->cfg.state_value_max, NULL) == 0;
}

/* Worker: are the vectors about to travel (x, dsgd's y; v for dmsgd) finite and within the
 * bound? */
static bool out_finite(const struct macc_agent *a, const struct macc_state_out *so)
{
	const float bound = (float)a->cfg.state_value_max;

	return macc_guard_values(so->x, so->nparams, bound, NULL) == 0 &&
	       (so->mom == NULL || macc_guard_values(so->mom, so->nparams, bound, NULL) == 0);
}

/* Worker: the checkpoint, unless the parameters are not finite (the last good one is kept). */
static void ckpt_job(struct macc_agent *a)
{
	struct macc_ckpt c;

	a->job.ckpt_err.text[0] = '\0';
	if (a->job.own_bad || !own_finite(a)) {
		a->job.own_bad = true;
		a->job.ckpt_rc = macc_errf(&a->job.ckpt_err, MACC_ENONFINITE, "parameters are not finite "
					"or beyond state_value_max at round %llu: not written, the "
					"last good checkpoint is kept",
					(unsigned long long)a->job.ckpt_round);
		return;
	}
	memset(&c, 0, sizeof(c));
	c.config_hash = a->config_hash;
	c.model_hash = a->model_hash;
	c.round = a->job.ckpt_round;
	c.epoch = a->job.ckpt_round / a->epoch_rounds;
	macc_learner_get_state(&a->learner, &c.batcher, &c.rng);
	c.nparams = a->nparams;
	c.params = (float *)edge_model(a); /* push-sum: the de-biased x (the mixer's) */
	c.momentum = a->v;
	std_ckpt_fill(a, &c); /* standardize.c: the transform makes it a version 2 file */
	a->job.ckpt_rc = macc_ckpt_save(a->cfg.state_dir, &c, &a->job.ckpt_err);
}

/* Worker: this round's outgoing state (the mixer's) as a STATE body; none when the own
 * parameters are not sane (a rollback follows). */
static void encode_job(struct macc_agent *a)
{
	struct macc_state_out so = {
		.round = a->job.ckpt_round,
		.nparams = a->nparams,
		.digest_alg = macc_digest_preferred(), /* as the sessions sign (peer.c) */
	};

	/* Reuse last round's spare body (its buffer keeps its allocation): no per-round
	 * allocation and no page faults on a fresh multi-megabyte buffer. */
	a->job.body = a->job.spare;
	a->job.spare = NULL;
	if (a->job.body == NULL) {
		a->job.body = calloc(1, sizeof(*a->job.body));
		if (a->job.body != NULL) {
			macc_buf_init(&a->job.body->body.buf, 0);
		}
	}
	if (a->job.body == NULL) {
		a->job.body_rc = -ENOMEM;
		return;
	}
	a->job.body->refs = 1;
	/* Never send a bad state. What a step job encodes was checked after the step (own_job),
	 * before the mixer forms the outgoing state (compressed exchange applies it to the own
	 * public copies); otherwise (start, resume, jump, and after the gradient: dsgd's
	 * y = x - alpha g, local steps) what travels is checked once the mixer formed it. */
	a->job.body_rc = a->job.own_bad ? MACC_ENONFINITE : edge_encode(a, &so, &a->job.body_err);
	if (a->job.body_rc == 0 && !(a->job.flags & JOB_STEP) && !out_finite(a, &so)) {
		a->job.own_bad = true;
		a->job.body_rc = MACC_ENONFINITE;
	}
	if (a->job.own_bad) {
		a->job.body_rc = macc_errf(&a->job.body_err, MACC_ENONFINITE, "own parameters are not "
					"sane");
	}
	if (a->job.body_rc == 0) {
		a->job.body_rc = macc_state_body_encode(&a->job.body->body, &so);
	}
}

/* Worker: x and v back from the last good checkpoint (or the seeded initial parameters when
 * there is none or it does not load); the round, batcher and rng stay where they are. */
static void rollback_job(struct macc_agent *a)
{
	size_t n = a->nparams;
	struct macc_ckpt c;
	struct macc_errmsg warn;

	memset(&c, 0, sizeof(c));
	c.config_hash = a->config_hash;
	c.model_hash = a->model_hash;
	c.nparams = n;
	c.params = a->x;
	c.momentum = a->v;
	a->job.rb_err.text[0] = '\0';
	a->job.rb_rc = macc_ckpt_load(a->cfg.state_dir, &c, a->job.rb_used, sizeof(a->job.rb_used), &warn,
				   &a->job.rb_err);
	if (a->job.rb_rc == 0 && !own_finite(a)) {
		a->job.rb_rc = macc_errf(&a->job.rb_err, MACC_ENONFINITE, "%s holds non-finite values "
				      "or values beyond state_value_max",
				      a->job.rb_used);
	}
	if (a->job.rb_rc == 0) {
		a->job.rb_round = c.round;
	} else {
		macc_model_init_params(macc_learner_model(&a->learner), a->x, a->cfg.seed);
		memset(a->v, 0, n * sizeof(float));
		a->job.rb_round = 0;
	}
	/* Push-sum: the checkpoint holds the de-biased x; the numerators restart there with
	 * weight 1, as a restarted agent does. */
	macc_mixer_restart(&a->mixer, a->x);
}

/* Worker, after the step: a step that left the own vectors non-finite or out of range (or whose
 * own state robust mixing refused, the mixer's report) drops the evaluation (and the encode and
 * checkpoint see a->job.own_bad); a rollback job restores them. */
static void own_job(struct macc_agent *a)
{
	if (a->job.flags & JOB_STEP) {
		a->job.own_bad = a->job.rep.rc < 0 || !own_finite(a);
	}
	if (a->job.own_bad) {
		a->job.flags &= ~(unsigned)JOB_EVAL;
	}
	if (a->job.flags & JOB_ROLLBACK) {
		rollback_job(a);
	}
}

static void work_cb(uv_work_t *w)
{
	struct macc_agent *a = w->data;

	if (a->job.flags & JOB_STEP) {
		step_job(a, a->job.flags);
	}
	own_job(a);
	if (a->job.flags & JOB_DIST) {
		/* The digest shown in status and logged at the end: with the distance, not every
		 * round (it reads every parameter). */
		a->job.digest = macc_params_digest(edge_model(a), a->nparams);
	}
	if (a->job.flags & JOB_EVAL) {
		macc_model_evaluate_t(a->eval_model, edge_model(a), a->test.x, a->test.y,
				      a->test.t, a->test.n, &a->job.eval_loss, &a->job.eval_acc);
		if (a->regression) {
			a->job.eval_acc = NAN; /* the metric was the RMSE: sqrt(eval_loss) */
		}
	}
	if (a->job.flags & JOB_CKPT) {
		ckpt_job(a);
	}
	if (a->job.flags & JOB_GRAD) {
		struct macc_learner_point pt = {edge_model(a), macc_mixer_moved, &a->mixer};

		(void)macc_learner_round(&a->learner, a->hp.alpha, a->x, a->v, a->g, &pt);
	}
	if (a->job.flags & JOB_ENCODE) {
		encode_job(a);
	}
}


/* Loop: the audit trail's counters after a step; failures are logged (rate-limited). */
static void audit_after(struct macc_agent *a)
{
	a->metrics.audit_entries_total += a->job.audit_written;
	a->metrics.audit_errors_total += a->job.audit_errors;
	if (a->job.audit_errors > 0) {
		/* Like a failed checkpoint: logged, kept as last_error, counted; training goes on
		 * and the next exclusion tries again. */
		snprintf(a->last_error, sizeof(a->last_error), "audit: %.240s", a->job.audit_err.text);
		if (macc_ratelimit_ok(&a->rl_audit, "audit")) {
			macc_error(NULL, "audit trail entry not written: %s", a->job.audit_err.text);
		}
	}
	if (a->job.audit_unsigned > 0) {
		macc_debug(NULL, "round %llu: %llu excluded states without their signed text",
			   (unsigned long long)a->job.round, (unsigned long long)a->job.audit_unsigned);
	}
}

/* Loop: a checkpoint was written; one taken after the last rollback ends `degraded`. */
static void leave_degraded(struct macc_agent *a)
{
	if (a->degraded && a->job.ckpt_round > a->degraded_round) {
		a->degraded = false;
		macc_info(NULL, "no longer degraded: the checkpoint of round %llu holds finite "
			  "parameters", (unsigned long long)a->job.ckpt_round);
	}
}

/* Loop, after a job: a job that found the own vectors non-finite asks for a rollback (after
 * this round: start_rollback); the rollback job's outcome makes the agent degraded until a
 * checkpoint taken after this round. */
static void rollback_after(struct macc_agent *a, unsigned flags)
{
	char from[160];

	if (a->job.own_bad) {
		a->rollback_req = true;
	}
	if (!(flags & JOB_ROLLBACK)) {
		return;
	}
	a->rollbacks++;
	a->degraded = true;
	a->degraded_round = a->round;
	a->eval_req = true; /* show what the restored parameters are worth */
	a->loss_acc = 0.0;  /* the losses of the rounds that overflowed are not the model's */
	a->loss_n = 0;
	if (a->job.rb_rc == 0) {
		snprintf(from, sizeof(from), "the checkpoint of round %llu",
			 (unsigned long long)a->job.rb_round);
	} else {
		snprintf(from, sizeof(from), "the initial parameters (no usable checkpoint: "
			 "%.100s)", a->job.rb_err.text[0] ? a->job.rb_err.text
							: macc_strerror(a->job.rb_rc));
	}
	snprintf(a->last_error, sizeof(a->last_error), "round %llu: own parameters became "
		 "non-finite or absurd; not sent, rolled back to %.120s (rollback %llu); degraded",
		 (unsigned long long)a->round, from, (unsigned long long)a->rollbacks);
	if (macc_ratelimit_ok(&a->rl_rollback, "rollback")) {
		macc_error(NULL, "%s", a->last_error);
	}
	/* The body of this round (if any) predates the rollback: encode it again. */
	if (a->body != NULL && a->body_round == a->round) {
		shared_body_unref(a->body);
		a->body = NULL;
	}
}


/* Loop: a checkpoint job's outcome. Policy for a failed checkpoint (disk full, unwritable state
 * directory): the previous checkpoint stays intact (macc_ckpt_save writes a temporary file and
 * renames it only once it is complete), the error is logged and kept as last_error for
 * `macc-ctl status`, and training goes on; the next due checkpoint tries again
 * (tests/faults/test_disk_full.sh). */
static void ckpt_done(struct macc_agent *a)
{
	struct agent_job *j = &a->job;

	if (j->ckpt_rc < 0) {
		snprintf(a->last_error, sizeof(a->last_error), "checkpoint: %.240s",
			 j->ckpt_err.text);
		macc_error(NULL, "checkpoint failed: %s", j->ckpt_err.text);
	} else {
		a->metrics.checkpoints_total++;
		macc_debug(NULL, "checkpoint written at round %llu",
			   (unsigned long long)j->ckpt_round);
		leave_degraded(a);
	}
}

/* Loop: an encode job's body becomes the round's outgoing state (the previous one is kept as
 * the spare when no write holds it). */
static void encode_done(struct macc_agent *a)
{
	struct agent_job *j = &a->job;

	if (j->body_rc < 0) {
		if (!j->own_bad) {
			macc_error(NULL, "cannot encode the round state: %s",
				   j->body_err.text[0] ? j->body_err.text
						       : macc_strerror(j->body_rc));
		}
		shared_body_unref(j->body);
		if (a->edge.compressed && a->state == MACC_CTL_STATE_TRAINING && !j->own_bad) {
			/* The compressor refuses non-finite values: the model diverged. */
			snprintf(a->last_error, sizeof(a->last_error), "compress: %.230s",
				 j->body_err.text);
			a->state = MACC_CTL_STATE_ERROR;
		}
		j->body_err.text[0] = '\0';
	} else {
		if (a->body != NULL && a->body->refs == 1 && j->spare == NULL) {
			j->spare = a->body; /* no write in flight holds it: reuse it */
		} else {
			shared_body_unref(a->body);
		}
		a->body = j->body;
		a->body_round = j->ckpt_round;
	}
	j->body = NULL;
}

/* Loop: the gradient job's losses and samples. */
static void grad_done(struct macc_agent *a)
{
	double sum;
	uint64_t batches;

	macc_learner_take_loss(&a->learner, &sum, &batches);
	a->loss_acc += sum;
	a->loss_n += batches;
	a->samples_total += macc_learner_samples_per_round(&a->learner);
	a->metrics.samples_total += macc_learner_samples_per_round(&a->learner);
}

/* Loop: what a job reported, into the agent; then the round driver goes on (round.c). */
static void after_work(uv_work_t *w, int status)
{
	struct macc_agent *a = w->data;
	struct agent_job *j = &a->job;
	unsigned flags = j->flags;
	enum phase ph = a->phase;

	(void)status;
	macc_debug(NULL, "job %#x done in phase %d at round %llu", flags, (int)ph,
		   (unsigned long long)a->round);
	j->flags = 0;
	if (flags & JOB_CKPT) {
		ckpt_done(a);
	}
	rollback_after(a, flags);
	if (flags & JOB_ENCODE) {
		encode_done(a);
	}
	if (flags & JOB_STEP) {
		edge_after_step(a, j->peer, j->nnb, &j->rep);
		audit_after(a);
	}
	if (flags & JOB_EVAL) {
		a->test_loss = j->eval_loss;
		a->test_acc = j->eval_acc;
		a->have_eval = true;
	}
	if (flags & JOB_GRAD) {
		grad_done(a);
	}
	if (flags & JOB_DIST) {
		a->consensus_distance = j->dist;
		a->digest = j->digest;
		a->last_dist_ms = macc_now_ms();
	}
	round_after_job(a, flags, ph);
}

int job_queue(struct macc_agent *a, unsigned flags, enum phase ph)
{
	int rc;

	a->job.flags = flags;
	a->job.own_bad = false;
	a->phase = ph;
	a->work.data = a;
	rc = uv_queue_work(a->loop, &a->work, work_cb, after_work);
	if (rc < 0) {
		a->job.flags = 0;
		a->phase = PH_NONE;
		macc_error(NULL, "cannot queue work: %s", uv_strerror(rc));
	}
	return rc;
}

/* Loop, before a step job: what arrived from each peer (edge_inbound) and, for the audit trail,
 * who sent it, from which slot, under which key. */
void job_set_step_inputs(struct macc_agent *a)
{
	struct agent_job *j = &a->job;

	j->nnb = edge_inbound(a, j->in);
	j->round = a->round;
	for (size_t i = 0; i < j->nnb; i++) {
		struct peer *p = a->peers[i];

		j->peer[i] = p;
		j->slot[i] = &p->cur;
		if (a->audit != NULL) {
			j->key[i] = p->key;
			snprintf(j->name[i], sizeof(j->name[i]), "%s", p->name);
		}
	}
}

void jobs_finish(struct macc_agent *a)
{
	shared_body_unref(a->job.spare);
	a->job.spare = NULL;
}
