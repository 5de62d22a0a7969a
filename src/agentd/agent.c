/*
 * agent.c - one macc agent: startup, the round state machine, worker jobs, checkpoints, eval,
 * signals, reload and the control-socket callbacks.
 *
 * A round k (DESIGN.md section 4, ALGORITHMS.md):
 *   1. x_k is known: the STATE body (k, x_k[, v_k], the mixer's outgoing state) was encoded once
 *      on the worker at the end of the previous step; the loop sends it to every neighbour with
 *      a per-neighbour signed prefix (peer.c) and at once queues the gradient job (the
 *      learner's round: local steps and the gradient), so compute overlaps communication. dsgd
 *      sends y_k = x_k - alpha g_k, and local steps change x, so then it encodes and sends
 *      after the gradient.
 *   2. The loop waits until every neighbour that can still send round k has done so: a neighbour
 *      is not waited for when it is dead (no traffic for dead_peer_timeout), when its session
 *      went down more than reconnect_grace_ms ago (it cannot deliver a state before it is back;
 *      peer_gone) or when it is known to be past round k already; or until the round timeout.
 *   3. The step job: what arrived (edge_inbound: the row of W, each neighbour's slot, in
 *      ascending public-key order, the agent index order) goes through macc_mixer_step, then
 *      evaluation / checkpoint when due and the next round's body (macc_mixer_outgoing).
 * The learner and the mixer are the modules macc-sim runs, called in the simulator's order, so
 * a fault-free ring of daemons matches `macc-sim` bit for bit.
 *
 * Rejoin policy: a restarted agent resumes from its checkpoint (x, v, round, batcher, rng). Its
 * neighbours announce their round in HELLO (and every STATE names its round). When a round ends
 * with neighbours ahead, the round-jump rule of macc/guard.h decides (rejoin()): the agent
 * abandons that round's step (its gradient is discarded) and adopts the round that a quorum of
 * its live in-neighbours attests (the q-th largest, q a majority unless rejoin_quorum says
 * otherwise), keeping its own x and v; never into the last tenth of the run, at most once per
 * rejoin_interval_ms. One neighbour's word alone never moves the round (except for an agent
 * with a single neighbour); without a quorum the agent trains on and catches up by itself
 * (neighbours ahead of it are not waited for). States that arrive for a later round are
 * buffered (one slot per neighbour), so a fast neighbour never causes a drop. Neighbours need
 * no restart: they accept the new session and stop waiting for a peer that is behind them only
 * until it catches up.
 *
 * Non-finite own parameters (a diverging learning rate; a poison that passed the value bound):
 * the worker checks x after every step and what it encodes or checkpoints otherwise, against
 * finiteness and state_value_max (the bound the neighbours hold our states to). A bad vector
 * is never sent (no body is encoded) and never checkpointed (the last good checkpoint stays).
 * The loop then queues a rollback job: x and v come back from the last good checkpoint (or the
 * seeded initial parameters when there is none), the round is kept (like a rejoin), the agent
 * is `degraded` (status, metrics), last_error says what happened and an error line is logged;
 * a fresh evaluation follows. It leaves `degraded` when a checkpoint taken
 * after at least one more round is written (so a good checkpoint after the incident exists).
 *
 * Cost of a round beyond the simulator's arithmetic (mlp:784-256-128-10, dmsgd, 1.9 MB per
 * STATE, CPU per agent-round measured with perf on a 4-agent loopback ring of a CPU with AES
 * and SHA instructions, tests/bench/README.md): the gradient and step take ~2 ms, as in
 * macc-sim. Plain sessions add the digest of the own body (to sign it) and of each
 * neighbour's (to verify it): three SHA-256 passes, ~3.6 ms at ~1.6 GB/s (BLAKE2b-256, ~2.1 ms
 * each, where the CPU has no SHA instructions or the peer is older). Sealed sessions hash only
 * the own body (~1.2 ms: the AEAD authenticates what arrives, proto.h) but seal it once per
 * neighbour and open each neighbour's (four AES-256-GCM passes, ~1.9 ms; XChaCha20-Poly1305,
 * ~3.5 ms, where either end lacks AES instructions). Both then have loopback TCP (~1.7 ms in
 * the kernel), the copy into the receive slots and the finiteness check (~0.7 ms). Frames
 * are read straight into their payload (peer.c), the body buffer is reused from round to
 * round, big blocks stay on the heap (main.c: no page faults per frame), the gradient job is
 * queued before the sends are sealed, and the consensus distance and params digest are
 * computed only when they will be shown.
 *
 * Jobs: at most one worker job (uv_queue_work) is in flight; while it runs, the loop does not
 * touch x, v, g, the batcher or the model. Everything the job reports comes back in
 * after_work_cb on the loop thread.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "macc/guard.h"

#include "agent.h"
#include "check.h"
#include "checkpoint.h"
#include "notify.h"

#ifndef MACC_VERSION
#define MACC_VERSION "0.1.0"
#endif

enum {
	JOB_STEP = 1,
	JOB_EVAL = 2,
	JOB_CKPT = 4,
	JOB_ENCODE = 8,
	JOB_GRAD = 16,
	JOB_DIST = 32,
	JOB_ROLLBACK = 64,
};

/* The job in flight: inputs set by the loop before queueing, outputs read after. */
static struct job {
	unsigned flags;
	/* step: what arrived from peer[i] (edge_inbound) */
	struct macc_mixer_in in[MACC_CONFIG_MAX_PEERS];
	size_t nnb;
	uint64_t ckpt_round;
	/* outputs */
	struct macc_mixer_report rep;
	double dist;
	uint64_t digest;
	double eval_loss, eval_acc;
	int ckpt_rc;
	struct macc_errmsg ckpt_err;
	struct shared_body *body;
	struct shared_body *spare; /* a body no write holds any more, for the next encode */
	int body_rc;
	/* the audit trail of the states robust mixing excludes: inputs copied on the loop */
	uint64_t round;
	struct peer *peer[MACC_CONFIG_MAX_PEERS];
	const struct slot *slot[MACC_CONFIG_MAX_PEERS];
	struct macc_pubkey key[MACC_CONFIG_MAX_PEERS];
	char name[MACC_CONFIG_MAX_PEERS][MACC_CONFIG_NAME_MAX];
	uint64_t audit_written, audit_errors, audit_unsigned;
	struct macc_errmsg audit_err;
	struct macc_errmsg body_err;
	/* own parameters non-finite (issue 17): found after the step or before an encode or a
	 * checkpoint; the rollback job's outcome */
	bool own_bad;
	int rb_rc;
	uint64_t rb_round;
	char rb_used[1100];
	struct macc_errmsg rb_err;
} job;

static void start_round(struct macc_agent *a);
static void do_shutdown(struct macc_agent *a);
static void publish_model(struct macc_agent *a, bool request, bool idle);
static void check_round(struct macc_agent *a);
static int queue_job(struct macc_agent *a, unsigned flags, enum phase ph);

/* ---- helpers --------------------------------------------------------------------------- */

/* Whether the round's body is encoded after the gradient (dsgd sends y; local steps change x). */
static bool late_send(const struct macc_agent *a)
{
	return a->after_grad || a->edge.late_send;
}

static uint32_t shard_index(const struct macc_agent *a)
{
	return a->cfg.has_shard ? a->cfg.shard_index : 0;
}

static double epoch_of(const struct macc_agent *a, uint64_t round)
{
	return macc_learner_epoch(&a->learner, round);
}

static uint32_t peers_up(const struct macc_agent *a)
{
	uint32_t n = 0;

	for (size_t i = 0; i < a->npeers; i++) {
		n += a->peers[i]->conn != NULL;
	}
	return n;
}

/* Move receive slots forward to round r. */
static void advance_slots(struct macc_agent *a, uint64_t r)
{
	for (size_t i = 0; i < a->npeers; i++) {
		struct peer *p = a->peers[i];

		if (p->cur.full && p->cur.round < r) {
			p->cur.full = false;
		}
		if (p->next.full && p->next.round <= r) {
			if (p->next.round == r) {
				struct slot t = p->cur;
				p->cur = p->next;
				p->next = t;
			}
			p->next.full = false;
		}
		edge_advance_slots(p, r);
	}
}

/*
 * The progress line systemd shows in `systemctl status` (STATUS=, sd_notify(3)): state, round,
 * epoch, training loss, last test accuracy and peers up. Sent when the state changes, on the
 * final publish, and otherwise at most every STATUS_EVERY_MS (each one is a datagram to PID 1).
 */
#define STATUS_EVERY_MS 5000

static void notify_status(struct macc_agent *a, bool force)
{
	char acc[32], loss[32], msg[256];
	uint64_t now = macc_now_ms();

	if (!force && a->status_state == a->state && a->last_status_ms != 0 &&
	    now - a->last_status_ms < STATUS_EVERY_MS) {
		return;
	}
	if (a->have_eval && isfinite(a->test_acc)) {
		snprintf(acc, sizeof(acc), "%.2f%%", 100.0 * a->test_acc);
	} else {
		snprintf(acc, sizeof(acc), "-");
	}
	if (a->loss_n > 0 || a->train_loss > 0) { /* as in publish(): none yet after a restart */
		snprintf(loss, sizeof(loss), "%.4f", a->train_loss);
	} else {
		snprintf(loss, sizeof(loss), "-");
	}
	snprintf(msg, sizeof(msg),
		 "STATUS=%s round %llu/%llu epoch %.2f loss %s acc %s peers up %u/%zu",
		 macc_ctl_state_name(a->state), (unsigned long long)a->round,
		 (unsigned long long)a->total_rounds, epoch_of(a, a->round), loss, acc, peers_up(a),
		 a->npeers);
	macc_notify(msg);
	a->last_status_ms = now;
	a->status_state = a->state;
}

static void publish(struct macc_agent *a, bool final)
{
	struct macc_ctl_progress pr;
	double elapsed = (double)a->train_ms / 1000.0;

	notify_status(a, final);
	if (a->ctl == NULL) {
		return;
	}
	macc_ctl_progress_init(&pr);
	pr.state = a->state;
	pr.round = a->round;
	pr.rounds_planned = a->total_rounds;
	pr.epoch = epoch_of(a, a->round);
	pr.epochs_planned = epoch_of(a, a->total_rounds);
	pr.train_loss = a->train_loss;
	pr.test_accuracy_ratio = a->have_eval ? a->test_acc : NAN;
	pr.samples_per_second = elapsed > 0 ? (double)a->samples_total / elapsed : 0.0;
	pr.round_seconds = a->round_time_s;
	/* No estimate while paused: it would run down while nothing happens. */
	pr.eta_seconds = a->round > 0 && a->total_rounds > a->round &&
				 a->state == MACC_CTL_STATE_TRAINING
			 ? elapsed / (double)a->round * (double)(a->total_rounds - a->round)
			 : NAN;
	pr.final = final;
	macc_ctl_server_publish(a->ctl, &pr);
	a->last_publish_ms = macc_now_ms();
}

/* ---- the worker ------------------------------------------------------------------------ */

/* Worker: put a state that robust mixing excluded into the audit trail. The signed text is
 * rebuilt from what the sender signed (keys, session nonces, round, BLAKE2b of the body bytes
 * we hold) and macc_audit_append verifies the signature and digest itself before it writes:
 * nothing here relies on the receive path having verified anything. */
static void audit_excluded(struct macc_agent *a, size_t i)
{
	const struct slot *sl = job.slot[i];
	struct macc_audit_entry e;
	uint8_t digest[MACC_DIGEST_BYTES];
	struct macc_errmsg err;
	int rc;

	if (!sl->has_sig || sl->body.len == 0) {
		job.audit_unsigned++;
		return;
	}
	memset(&e, 0, sizeof(e));
	e.key = job.key[i];
	if (macc_digest(sl->digest_alg, digest, sl->body.data, sl->body.len) != 0) {
		job.audit_errors++;
		return;
	}
	macc_state_signed_text_alg(sl->digest_alg, &job.key[i], &a->id.pub, sl->snonce, sl->rnonce,
				   job.round, digest, e.text);
	memcpy(e.sig, sl->sig, sizeof(e.sig));
	snprintf(e.reason, sizeof(e.reason), "%s",
		 macc_robust_reason_name(
			 (enum macc_robust_reason)macc_mixer_outcome(&a->mixer, i)->reason));
	snprintf(e.peer, sizeof(e.peer), "%s", job.name[i]);
	err.text[0] = '\0';
	rc = macc_audit_append(a->audit, &e, sl->body.data, sl->body.len, &err);
	if (rc < 0) {
		job.audit_errors++;
		job.audit_err = err;
	} else {
		job.audit_written++;
	}
}

/* Worker: the round's step (the mixer's), then the audit trail for what robust mixing
 * excluded. */
static void step_job(struct macc_agent *a, unsigned flags)
{
	macc_mixer_step(&a->mixer, &a->hp, a->x, a->v, a->g, job.in,
			(flags & JOB_DIST) ? MACC_MIXER_MEASURE : 0, &job.rep);
	job.dist = job.rep.dist;
	job.audit_written = job.audit_errors = job.audit_unsigned = 0;
	for (size_t i = 0; i < job.nnb && a->audit != NULL; i++) {
		uint8_t r = macc_mixer_outcome(&a->mixer, i)->reason;

		if (r == MACC_ROBUST_NONFINITE || r == MACC_ROBUST_DISTANCE) {
			audit_excluded(a, i);
		}
	}
}

/* Worker: are this agent's own parameters finite and within state_value_max, the bound its
 * neighbours hold its states to (what they would refuse is not sent, not checkpointed, and
 * rolled back like NaN)? x alone is read: every update adds the new momentum into x
 * (x = mix(x) + v, the push-sum and CHOCO forms alike, ALGORITHMS.md), so a bad v shows in x
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

	job.ckpt_err.text[0] = '\0';
	if (job.own_bad || !own_finite(a)) {
		job.own_bad = true;
		job.ckpt_rc = macc_errf(&job.ckpt_err, MACC_ENONFINITE, "parameters are not finite "
					"or beyond state_value_max at round %llu: not written, the "
					"last good checkpoint is kept",
					(unsigned long long)job.ckpt_round);
		return;
	}
	memset(&c, 0, sizeof(c));
	c.config_hash = a->config_hash;
	c.model_hash = a->model_hash;
	c.round = job.ckpt_round;
	c.epoch = job.ckpt_round / a->epoch_rounds;
	macc_learner_get_state(&a->learner, &c.batcher, &c.rng);
	c.nparams = a->nparams;
	c.params = (float *)edge_model(a); /* push-sum: the de-biased x (the mixer's) */
	c.momentum = a->v;
	std_ckpt_fill(a, &c); /* standardize.c: the transform makes it a version 2 file */
	job.ckpt_rc = macc_ckpt_save(a->cfg.state_dir, &c, &job.ckpt_err);
}

/* Worker: this round's outgoing state (the mixer's) as a STATE body; none when the own
 * parameters are not sane (a rollback follows). */
static void encode_job(struct macc_agent *a)
{
	struct macc_state_out so = {
		.round = job.ckpt_round,
		.nparams = a->nparams,
		.digest_alg = macc_digest_preferred(), /* as the sessions sign (peer.c) */
	};

	/* Reuse last round's spare body (its buffer keeps its allocation): no per-round
	 * allocation and no page faults on a fresh multi-megabyte buffer. */
	job.body = job.spare;
	job.spare = NULL;
	if (job.body == NULL) {
		job.body = calloc(1, sizeof(*job.body));
		if (job.body != NULL) {
			macc_buf_init(&job.body->body.buf, 0);
		}
	}
	if (job.body == NULL) {
		job.body_rc = -ENOMEM;
		return;
	}
	job.body->refs = 1;
	/* Never send a bad state. What a step job encodes was checked after the step (own_job),
	 * before the mixer forms the outgoing state (compressed exchange applies it to the own
	 * public copies); otherwise (start, resume, jump, and after the gradient: dsgd's
	 * y = x - alpha g, local steps) what travels is checked once the mixer formed it. */
	job.body_rc = job.own_bad ? MACC_ENONFINITE : edge_encode(a, &so, &job.body_err);
	if (job.body_rc == 0 && !(job.flags & JOB_STEP) && !out_finite(a, &so)) {
		job.own_bad = true;
		job.body_rc = MACC_ENONFINITE;
	}
	if (job.own_bad) {
		job.body_rc = macc_errf(&job.body_err, MACC_ENONFINITE, "own parameters are not "
					"sane");
	}
	if (job.body_rc == 0) {
		job.body_rc = macc_state_body_encode(&job.body->body, &so);
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
	job.rb_err.text[0] = '\0';
	job.rb_rc = macc_ckpt_load(a->cfg.state_dir, &c, job.rb_used, sizeof(job.rb_used), &warn,
				   &job.rb_err);
	if (job.rb_rc == 0 && !own_finite(a)) {
		job.rb_rc = macc_errf(&job.rb_err, MACC_ENONFINITE, "%s holds non-finite values "
				      "or values beyond state_value_max",
				      job.rb_used);
	}
	if (job.rb_rc == 0) {
		job.rb_round = c.round;
	} else {
		macc_model_init_params(macc_learner_model(&a->learner), a->x, a->cfg.seed);
		memset(a->v, 0, n * sizeof(float));
		job.rb_round = 0;
	}
	/* Push-sum: the checkpoint holds the de-biased x; the numerators restart there with
	 * weight 1, as a restarted agent does. */
	macc_mixer_restart(&a->mixer, a->x);
}

/* Worker, after the step: a step that left the own vectors non-finite or out of range (or whose
 * own state robust mixing refused, the mixer's report) drops the evaluation (and the encode and
 * checkpoint see job.own_bad); a rollback job restores them. */
static void own_job(struct macc_agent *a)
{
	if (job.flags & JOB_STEP) {
		job.own_bad = job.rep.rc < 0 || !own_finite(a);
	}
	if (job.own_bad) {
		job.flags &= ~(unsigned)JOB_EVAL;
	}
	if (job.flags & JOB_ROLLBACK) {
		rollback_job(a);
	}
}

static void work_cb(uv_work_t *w)
{
	struct macc_agent *a = w->data;

	if (job.flags & JOB_STEP) {
		step_job(a, job.flags);
	}
	own_job(a);
	if (job.flags & JOB_DIST) {
		/* The digest shown in status and logged at the end: with the distance, not every
		 * round (it reads every parameter). */
		job.digest = macc_params_digest(edge_model(a), a->nparams);
	}
	if (job.flags & JOB_EVAL) {
		macc_model_evaluate_t(a->eval_model, edge_model(a), a->test.x, a->test.y,
				      a->test.t, a->test.n, &job.eval_loss, &job.eval_acc);
		if (a->regression) {
			job.eval_acc = NAN; /* the metric was the RMSE: sqrt(eval_loss) */
		}
	}
	if (job.flags & JOB_CKPT) {
		ckpt_job(a);
	}
	if (job.flags & JOB_GRAD) {
		struct macc_learner_point pt = {edge_model(a), macc_mixer_moved, &a->mixer};

		(void)macc_learner_round(&a->learner, a->hp.alpha, a->x, a->v, a->g, &pt);
	}
	if (job.flags & JOB_ENCODE) {
		encode_job(a);
	}
}

static void set_lr(struct macc_agent *a)
{
	a->hp.alpha = macc_learner_lr(&a->learner, a->round);
}

static void broadcast(struct macc_agent *a)
{
	for (size_t i = 0; i < a->npeers; i++) {
		struct peer *p = a->peers[i];
		if (p->known_round_valid && p->known_round > a->round) {
			continue; /* it is past this round: it would drop the state */
		}
		if (!edge_sends_to(a, p)) {
			continue; /* not this round's partner / not an out-neighbour (edge.c) */
		}
		peer_send_body(p);
	}
}

static void log_progress(struct macc_agent *a)
{
	double elapsed = (double)a->train_ms / 1000.0;

	macc_info(NULL, "round %llu/%llu epoch %.2f loss %.4f samples/s %.0f round %.1f ms "
		  "peers up %u/%zu",
		  (unsigned long long)a->round, (unsigned long long)a->total_rounds,
		  epoch_of(a, a->round), a->train_loss,
		  elapsed > 0 ? (double)a->samples_total / elapsed : 0.0, a->round_time_s * 1e3,
		  peers_up(a), a->npeers);
}

static void finish_run(struct macc_agent *a)
{
	a->state = MACC_CTL_STATE_DONE;
	a->phase = PH_NONE;
	macc_info(NULL, "traffic: state bytes sent %llu received %llu, resync states sent %llu "
		  "asked %llu", (unsigned long long)a->edge.bytes_out,
		  (unsigned long long)a->edge.bytes_in, (unsigned long long)a->edge.resyncs_sent,
		  (unsigned long long)a->edge.resyncs_asked);
	macc_info(NULL, "training done: round %llu epoch %.2f test %s %.4f test loss %.4f "
		  "digest=%016llx",
		  (unsigned long long)a->round, epoch_of(a, a->round),
		  a->regression ? "rmse" : "accuracy", a->regression ? sqrt(a->test_loss)
		  : a->test_acc, a->test_loss, (unsigned long long)a->digest);
	publish(a, true);
	if (a->opts.exit_when_done) {
		do_shutdown(a);
	}
}

/* Loop: the audit trail's counters after a step; failures are logged (rate-limited). */
static void audit_after(struct macc_agent *a)
{
	a->metrics.audit_entries_total += job.audit_written;
	a->metrics.audit_errors_total += job.audit_errors;
	if (job.audit_errors > 0) {
		/* Like a failed checkpoint: logged, kept as last_error, counted; training goes on
		 * and the next exclusion tries again. */
		snprintf(a->last_error, sizeof(a->last_error), "audit: %.240s", job.audit_err.text);
		if (macc_ratelimit_ok(&a->rl_audit, "audit")) {
			macc_error(NULL, "audit trail entry not written: %s", job.audit_err.text);
		}
	}
	if (job.audit_unsigned > 0) {
		macc_debug(NULL, "round %llu: %llu excluded states without their signed text",
			   (unsigned long long)job.round, (unsigned long long)job.audit_unsigned);
	}
}

/* Loop: a checkpoint was written; one taken after the last rollback ends `degraded`. */
static void leave_degraded(struct macc_agent *a)
{
	if (a->degraded && job.ckpt_round > a->degraded_round) {
		a->degraded = false;
		macc_info(NULL, "no longer degraded: the checkpoint of round %llu holds finite "
			  "parameters", (unsigned long long)job.ckpt_round);
	}
}

/* Loop, between rounds: own parameters went non-finite in the last job, so restore them before
 * anything else runs. True when the rollback job was queued. */
static bool start_rollback(struct macc_agent *a)
{
	if (!a->rollback_req || a->state == MACC_CTL_STATE_ERROR) {
		return false;
	}
	a->rollback_req = false;
	return queue_job(a, JOB_ROLLBACK, PH_JOB) == 0;
}

/* Loop, after a job: a job that found the own vectors non-finite asks for a rollback (after
 * this round: start_rollback); the rollback job's outcome makes the agent degraded until a
 * checkpoint taken after this round. */
static void rollback_after(struct macc_agent *a, unsigned flags)
{
	char from[160];

	if (job.own_bad) {
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
	if (job.rb_rc == 0) {
		snprintf(from, sizeof(from), "the checkpoint of round %llu",
			 (unsigned long long)job.rb_round);
	} else {
		snprintf(from, sizeof(from), "the initial parameters (no usable checkpoint: "
			 "%.100s)", job.rb_err.text[0] ? job.rb_err.text
							: macc_strerror(job.rb_rc));
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

static void after_work(uv_work_t *w, int status)
{
	struct macc_agent *a = w->data;
	unsigned flags = job.flags;
	enum phase ph = a->phase;

	(void)status;
	macc_debug(NULL, "job %#x done in phase %d at round %llu", flags, (int)ph,
		   (unsigned long long)a->round);
	job.flags = 0;
	if (flags & JOB_CKPT) {
		/* Policy for a failed checkpoint (disk full, unwritable state directory): the
		 * previous checkpoint stays intact (macc_ckpt_save writes a temporary file and
		 * renames it only once it is complete), the error is logged and kept as last_error
		 * for `macc-ctl status`, and training goes on; the next due checkpoint tries
		 * again (tests/faults/test_disk_full.sh). */
		if (job.ckpt_rc < 0) {
			snprintf(a->last_error, sizeof(a->last_error), "checkpoint: %.240s",
				 job.ckpt_err.text);
			macc_error(NULL, "checkpoint failed: %s", job.ckpt_err.text);
		} else {
			a->metrics.checkpoints_total++;
			macc_debug(NULL, "checkpoint written at round %llu",
				   (unsigned long long)job.ckpt_round);
			leave_degraded(a);
		}
	}
	rollback_after(a, flags);
	if (flags & JOB_ENCODE) {
		if (job.body_rc < 0) {
			if (!job.own_bad) {
				macc_error(NULL, "cannot encode the round state: %s",
					   job.body_err.text[0] ? job.body_err.text
								: macc_strerror(job.body_rc));
			}
			shared_body_unref(job.body);
			if (a->edge.compressed && a->state == MACC_CTL_STATE_TRAINING &&
			    !job.own_bad) {
				/* The compressor refuses non-finite values: the model diverged. */
				snprintf(a->last_error, sizeof(a->last_error), "compress: %.230s",
					 job.body_err.text);
				a->state = MACC_CTL_STATE_ERROR;
			}
			job.body_err.text[0] = '\0';
		} else {
			if (a->body != NULL && a->body->refs == 1 && job.spare == NULL) {
				job.spare = a->body; /* no write in flight holds it: reuse it */
			} else {
				shared_body_unref(a->body);
			}
			a->body = job.body;
			a->body_round = job.ckpt_round;
		}
		job.body = NULL;
	}
	if (flags & JOB_STEP) {
		edge_after_step(a, job.peer, job.nnb, &job.rep);
		audit_after(a);
	}
	if (flags & JOB_EVAL) {
		a->test_loss = job.eval_loss;
		a->test_acc = job.eval_acc;
		a->have_eval = true;
	}
	if (flags & JOB_GRAD) {
		double sum;
		uint64_t batches;

		macc_learner_take_loss(&a->learner, &sum, &batches);
		a->loss_acc += sum;
		a->loss_n += batches;
		a->samples_total += macc_learner_samples_per_round(&a->learner);
		a->metrics.samples_total += macc_learner_samples_per_round(&a->learner);
		if (late_send(a) && a->body_round == a->round && a->body != NULL) {
			broadcast(a);
		}
		a->phase = PH_WAIT;
		check_round(a);
		return;
	}
	if (ph == PH_STEP) {
		uint64_t now = macc_now_ms();
		uint64_t log_every = a->epoch_rounds / 5 ? a->epoch_rounds / 5 : 1;

		a->round++;
		a->round_time_s = (double)(now - a->round_started_ms) / 1000.0;
		a->train_ms += now - a->round_started_ms;
		if (flags & JOB_DIST) {
			a->consensus_distance = job.dist;
			a->digest = job.digest;
			a->last_dist_ms = now;
		}
		a->metrics.rounds_total++;
		macc_ctl_metrics_observe_round(&a->metrics, a->round_time_s);
		advance_slots(a, a->round);
		if (a->round % log_every == 0 || a->round == a->total_rounds) {
			a->train_loss = a->loss_n ? a->loss_acc / (double)a->loss_n : a->train_loss;
			a->loss_acc = 0.0;
			a->loss_n = 0;
			log_progress(a);
		}
		if (flags & JOB_EVAL) {
			macc_info(NULL, "eval at round %llu (epoch %.2f): test %s %.4f loss %.4f",
				  (unsigned long long)a->round, epoch_of(a, a->round),
				  a->regression ? "rmse" : "accuracy", a->regression ?
				  sqrt(a->test_loss) : a->test_acc, a->test_loss);
		}
		if (now - a->last_publish_ms >= 500) {
			publish(a, false);
		}
		publish_model(a, false, true); /* the step job is done: the worker is idle */
	}
	a->phase = PH_NONE;
	if (start_rollback(a)) {
		return;
	}
	if ((a->shutdown_req || a->stop_req) && !(flags & JOB_CKPT) &&
	    a->state != MACC_CTL_STATE_DONE && a->state != MACC_CTL_STATE_ERROR) {
		/* The request came after this job was queued: checkpoint first. */
		job.ckpt_round = a->round;
		if (queue_job(a, JOB_CKPT, PH_JOB) == 0) {
			return;
		}
	}
	if (a->shutdown_req) {
		do_shutdown(a);
		return;
	}
	if (a->state == MACC_CTL_STATE_TRAINING && a->round >= a->total_rounds) {
		finish_run(a);
		return;
	}
	if (a->stop_req) {
		a->stop_req = false;
		a->state = MACC_CTL_STATE_IDLE;
		a->stopped_training = true;
		macc_info(NULL, "training stopped at round %llu", (unsigned long long)a->round);
		publish(a, true);
		return;
	}
	if (a->pause_req) {
		a->pause_req = false;
		a->state = MACC_CTL_STATE_PAUSED;
		macc_info(NULL, "paused at round %llu", (unsigned long long)a->round);
		publish(a, false);
		return;
	}
	if (a->ckpt_req || a->eval_req) {
		unsigned f = (a->ckpt_req ? JOB_CKPT : 0) | (a->eval_req ? JOB_EVAL : 0);
		a->ckpt_req = a->eval_req = false;
		job.ckpt_round = a->round;
		if (queue_job(a, f, PH_JOB) == 0) {
			return;
		}
	}
	if (a->state == MACC_CTL_STATE_TRAINING) {
		start_round(a);
	}
}

static int queue_job(struct macc_agent *a, unsigned flags, enum phase ph)
{
	int rc;

	job.flags = flags;
	job.own_bad = false;
	a->phase = ph;
	a->work.data = a;
	rc = uv_queue_work(&a->loop, &a->work, work_cb, after_work);
	if (rc < 0) {
		job.flags = 0;
		a->phase = PH_NONE;
		macc_error(NULL, "cannot queue work: %s", uv_strerror(rc));
	}
	return rc;
}

/* ---- rounds ---------------------------------------------------------------------------- */

static void on_round_timeout(uv_timer_t *t)
{
	struct macc_agent *a = t->data;

	a->round_timed_out = true;
	check_round(a);
}

static void start_round(struct macc_agent *a)
{
	if (a->state != MACC_CTL_STATE_TRAINING || a->phase != PH_NONE || a->shutting_down) {
		return;
	}
	if (!std_ready(a)) {
		return; /* standardize.c: the transform is not agreed yet (agent_on_standardized) */
	}
	if (a->round >= a->total_rounds) {
		finish_run(a);
		return;
	}
	edge_round_start(a);
	if (!late_send(a) && (a->body == NULL || a->body_round != a->round)) {
		/* The body for this round is made on the worker (start, resume, jump). */
		job.ckpt_round = a->round;
		queue_job(a, JOB_ENCODE, PH_JOB);
		return;
	}
	set_lr(a);
	macc_debug(NULL, "round %llu starts", (unsigned long long)a->round);
	a->round_started_ms = macc_now_ms();
	a->round_timed_out = false;
	uv_timer_start(&a->round_timer, on_round_timeout, a->cfg.round_timeout_ms, 0);
	/* The gradient job first, then the sends: sealing a STATE for every neighbour takes the
	 * loop a few milliseconds, and the worker computes meanwhile (it reads x, the sends read
	 * the body: nothing shared). */
	job.ckpt_round = a->round;
	queue_job(a, JOB_GRAD | (late_send(a) ? JOB_ENCODE : 0), PH_GRAD);
	if (!late_send(a)) {
		broadcast(a);
	}
}

static bool waiting_for(const struct macc_agent *a, const struct peer *p)
{
	if (edge_owes(a, p)) {
		return true; /* push-sum: our state has not reached this out-neighbour yet */
	}
	if (!edge_expects(a, p)) {
		return false; /* not this round's partner / not an in-neighbour (edge.c) */
	}
	if (p->cur.full && p->cur.round == a->round) {
		return false;
	}
	if (peer_gone(p, macc_now_ms())) {
		return false; /* dead, or its session is down past the reconnect grace (peer.c) */
	}
	if (peer_draining(p)) {
		return true; /* the state may still be in a retired duplicate session (peer.c) */
	}
	if (p->known_round_valid && p->known_round > a->round) {
		return false;
	}
	if (a->robust && macc_quarantine_active(&p->q, a->round)) {
		return false; /* its state would not even be looked at */
	}
	return true;
}

/* The round-jump rule (macc/guard.h) at the end of a round's wait: jump to the round that a
 * quorum of the live in-neighbours attests. Returns true when it jumped (the round was
 * abandoned and starts over there). */
static bool rejoin(struct macc_agent *a)
{
	uint64_t att[MACC_CONFIG_MAX_PEERS + 1], to = 0;
	struct macc_rejoin r = {
		.quorum = a->cfg.rejoin_quorum,
		.lag = edge_lag(a),
		.interval_ms = a->cfg.rejoin_interval_ms,
	};
	struct macc_rejoin_in in = {
		.round = a->round,
		.total_rounds = a->total_rounds,
		.attested = att,
		.now_ms = macc_now_ms(),
		.last_jump_ms = a->last_jump_ms,
		.jumped = a->jumped,
	};
	enum macc_rejoin_verdict v;

	for (size_t i = 0; i < a->npeers; i++) {
		const struct peer *p = a->peers[i];

		if (!p->in_nb) {
			continue; /* push-sum: only in-neighbours are waited for */
		}
		in.nneighbours++;
		if (!p->dead && p->known_round_valid) {
			att[in.nattested++] = p->known_round;
		}
	}
	v = macc_rejoin_decide(&r, &in, &to);
	if (v == MACC_REJOIN_STAY) {
		return false;
	}
	if (v != MACC_REJOIN_JUMP) {
		a->metrics.round_jumps_refused_total++;
		if (macc_ratelimit_ok(&a->rl_jump, "rejoin")) {
			macc_info(NULL, "neighbours claim rounds beyond %llu, no jump (%s): "
				  "quorum %u of %u neighbours, jump limit round %llu",
				  (unsigned long long)(a->round + 1 + r.lag),
				  macc_rejoin_verdict_name(v),
				  macc_rejoin_quorum(&r, in.nneighbours), in.nneighbours,
				  (unsigned long long)macc_rejoin_limit(a->total_rounds));
		}
		return false;
	}
	macc_info(NULL, "a quorum of neighbours (%u of %u) is at round %llu or beyond: leaving "
		  "round %llu and rejoining there with this agent's parameters",
		  macc_rejoin_quorum(&r, in.nneighbours), in.nneighbours, (unsigned long long)to,
		  (unsigned long long)a->round);
	a->round = to;
	a->jumped = true;
	a->last_jump_ms = in.now_ms;
	a->metrics.round_jumps_total++;
	advance_slots(a, a->round);
	a->phase = PH_NONE;
	start_round(a);
	return true;
}

static bool due(uint64_t r, uint64_t every)
{
	return every > 0 && r % every == 0;
}

/* Loop: the audit trail's view of the step's peers (who, which slot, which key). */
static void job_peers(struct macc_agent *a)
{
	job.round = a->round;
	for (size_t i = 0; i < job.nnb; i++) {
		struct peer *p = a->peers[i];

		job.peer[i] = p;
		job.slot[i] = &p->cur;
		if (a->audit != NULL) {
			job.key[i] = p->key;
			snprintf(job.name[i], sizeof(job.name[i]), "%s", p->name);
		}
	}
}

/* Whether round `next`'s step also evaluates / checkpoints (each asked for once). */
static unsigned due_flags(struct macc_agent *a, uint64_t next)
{
	unsigned flags = 0;

	if (due(next, a->cfg.eval_every) ||
	    (a->cfg.eval_every == 0 && due(next, a->epoch_rounds)) || next == a->total_rounds ||
	    a->eval_req) {
		flags |= JOB_EVAL;
		a->eval_req = false;
	}
	if (due(next, a->cfg.checkpoint_every) || next == a->total_rounds || a->ckpt_req ||
	    a->shutdown_req || a->stop_req) {
		flags |= JOB_CKPT;
		a->ckpt_req = false;
	}
	return flags;
}

/* The work that goes with round `next`'s step: evaluation, checkpoint, next body, distance. */
static unsigned step_flags(struct macc_agent *a, uint64_t next)
{
	unsigned flags = JOB_STEP | due_flags(a, next);
	bool last = next >= a->total_rounds || a->shutdown_req || a->stop_req;

	if (!late_send(a) && !last) {
		flags |= JOB_ENCODE;
	}
	if ((flags & (JOB_EVAL | JOB_CKPT)) || a->pause_req || next >= a->total_rounds ||
	    macc_now_ms() - a->last_dist_ms >= 1000 ||
	    next % (a->epoch_rounds / 5 ? a->epoch_rounds / 5 : 1) == 0) {
		flags |= JOB_DIST;
	}
	return flags;
}

static void do_step(struct macc_agent *a)
{
	uint64_t next = a->round + 1;

	uv_timer_stop(&a->round_timer);
	uv_timer_stop(&a->grace_timer);
	if (!a->shutdown_req && rejoin(a)) {
		return;
	}
	job.nnb = edge_inbound(a, job.in);
	job_peers(a);
	job.ckpt_round = next;
	queue_job(a, step_flags(a, next), PH_STEP);
}

static void on_grace(uv_timer_t *t)
{
	check_round(t->data);
}

/* The wait goes on: if every neighbour it is for is down and in its reconnect grace, wake up
 * when the first grace ends (the round timer covers the others). */
static void arm_grace(struct macc_agent *a)
{
	uint64_t first = 0, now = macc_now_ms();

	for (size_t i = 0; i < a->npeers; i++) {
		uint64_t end = peer_grace_end(a->peers[i]);

		if (waiting_for(a, a->peers[i]) && end != 0 && (first == 0 || end < first)) {
			first = end;
		}
	}
	if (first != 0) {
		uv_timer_start(&a->grace_timer, on_grace, first > now ? first - now : 0, 0);
	}
}

static void check_round(struct macc_agent *a)
{
	if (a->phase != PH_WAIT) {
		return;
	}
	if (!a->round_timed_out && !a->shutdown_req) {
		for (size_t i = 0; i < a->npeers; i++) {
			if (waiting_for(a, a->peers[i])) {
				arm_grace(a);
				return;
			}
		}
	} else if (a->round_timed_out) {
		for (size_t i = 0; i < a->npeers; i++) {
			if (waiting_for(a, a->peers[i])) {
				macc_info(a->peers[i]->name, "round %llu timed out waiting for its state",
					  (unsigned long long)a->round);
			}
		}
	}
	do_step(a);
}

void agent_on_state(struct peer *p, const struct macc_state *st, const struct macc_session *sess)
{
	struct macc_agent *a = p->agent;
	uint64_t round = st->round;
	struct slot *s;

	p->last_round = (int64_t)round;
	if (!p->known_round_valid || round > p->known_round) {
		p->known_round = round;
		p->known_round_valid = true;
	}
	if (round < a->round || (round == a->round && a->phase == PH_STEP)) {
		macc_debug(p->name, "state for round %llu arrived after its round: ignored",
			   (unsigned long long)round);
		check_round(a);
		return;
	}
	s = round == a->round ? &p->cur : edge_future_slot(p, round);
	if (s->full && s->round == round &&
	    !(a->edge.compressed && st->enc == MACC_ENC_F32 && s->enc != MACC_ENC_F32)) {
		return; /* already have it (re-sent on a new session; a resync state replaces) */
	}
	edge_store_state(a, s, st);
	s->round = round;
	s->full = true;
	/* What it signed, for the audit trail (the text is rebuilt from these if the state is
	 * excluded); the body bytes only when they will be written. */
	memcpy(s->sig, st->sig, sizeof(s->sig));
	memcpy(s->snonce, sess->peer_nonce, sizeof(s->snonce));
	memcpy(s->rnonce, sess->self_nonce, sizeof(s->rnonce));
	s->digest_alg = sess->rx_digest;
	s->has_sig = true;
	macc_buf_reset(&s->body);
	if (a->audit != NULL && macc_buf_append(&s->body, st->body, st->body_len) < 0) {
		s->has_sig = false;
	}
	check_round(a);
}

void agent_on_peer_change(struct macc_agent *a)
{
	std_on_peer_change(a); /* standardize.c: a dead neighbour ends an agreement step too */
	check_round(a);
}

void agent_on_standardized(struct macc_agent *a)
{
	start_round(a);
}

void agent_on_session_up(struct peer *p)
{
	struct macc_agent *a = p->agent;

	std_on_session_up(p); /* standardize.c: the agreement's vector (or result) on it */

	if (a->edge.compressed) {
		/* Compressed exchange: a full resync state first on a new session, unless both
		 * copies can still be x^0 (edge.c). */
		p->tx_full = p->tx_any || !a->edge.fresh || a->round > 0;
	}
	if (a->state == MACC_CTL_STATE_TRAINING && a->body != NULL && a->body_round == a->round &&
	    (a->phase == PH_GRAD || a->phase == PH_WAIT) && edge_sends_to(a, p) &&
	    !(p->known_round_valid && p->known_round > a->round)) {
		peer_send_body(p);
	}
	check_round(a);
}

/* ---- timers and signals ---------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
	struct macc_agent *a = t->data;

	peers_tick(a);
	/* Belt and braces for the round timer: the tick also ends an overdue wait. */
	if (a->phase == PH_WAIT && !a->round_timed_out &&
	    macc_now_ms() - a->round_started_ms >= a->cfg.round_timeout_ms) {
		macc_debug(NULL, "round %llu overdue: ending its wait from the tick",
			   (unsigned long long)a->round);
		a->round_timed_out = true;
		check_round(a);
	}
	if (a->state == MACC_CTL_STATE_TRAINING && macc_now_ms() - a->last_publish_ms > 2000) {
		publish(a, false);
	}
}

static void on_watchdog(uv_timer_t *t)
{
	(void)t;
	macc_notify("WATCHDOG=1");
}

static void on_close_noop(uv_handle_t *h)
{
	(void)h;
}

static void do_shutdown(struct macc_agent *a)
{
	if (a->shutting_down) {
		return;
	}
	if (a->phase != PH_NONE) {
		a->shutdown_req = true; /* after the job in flight */
		return;
	}
	a->shutting_down = true;
	macc_info(NULL, "shutting down at round %llu", (unsigned long long)a->round);
	/* No final progress event here: the run did not end, the daemon did. Watchers see their
	 * stream close without one and tell it from a finished run (ctl.h). */
	peers_say_bye(a, 0, "agent shutting down");
	peer_close_listener(a);
	for (size_t i = 0; i < a->npeers; i++) {
		peer_remove(a->peers[i]);
	}
	for (size_t i = 0; i < a->ngraveyard; i++) {
		peer_remove(a->graveyard[i]);
	}
	uv_close((uv_handle_t *)&a->round_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->grace_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->pace_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->tick_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->watchdog_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->sig_term, on_close_noop);
	uv_close((uv_handle_t *)&a->sig_int, on_close_noop);
	uv_close((uv_handle_t *)&a->sig_hup, on_close_noop);
	std_shutdown(a); /* standardize.c: its timer */
	macc_ctl_server_close(a->ctl, NULL, NULL);
	a->ctl = NULL;
}

static void request_shutdown(struct macc_agent *a, const char *why)
{
	if (a->shutdown_req || a->shutting_down) {
		return;
	}
	macc_info(NULL, "%s: finishing the round, checkpointing, leaving", why);
	macc_notify("STOPPING=1");
	a->shutdown_req = true;
	if (a->phase == PH_WAIT) {
		check_round(a); /* finish the round with the states that arrived */
		return;
	}
	if (a->phase != PH_NONE) {
		return; /* the job's completion continues */
	}
	if (a->state != MACC_CTL_STATE_DONE && a->state != MACC_CTL_STATE_ERROR) {
		job.ckpt_round = a->round;
		if (queue_job(a, JOB_CKPT, PH_JOB) == 0) {
			return;
		}
	}
	do_shutdown(a);
}

static int do_reload(struct macc_agent *a, struct macc_errmsg *err);

static void on_signal(uv_signal_t *s, int signum)
{
	struct macc_agent *a = s->data;

	if (signum == SIGHUP) {
		struct macc_errmsg e;
		if (do_reload(a, &e) < 0) {
			macc_error(NULL, "reload refused: %s", e.text);
		}
		return;
	}
	request_shutdown(a, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- robust mixing and the audit trail (issue 12) --------------------------------------- */

static void log_robust(const struct macc_agent *a)
{
	char agg[64];

	if (macc_agg_format(&a->rcfg.agg, agg, sizeof(agg)) < 0) {
		snprintf(agg, sizeof(agg), "?");
	}
	macc_info(NULL, "mixing: aggregation %s, distance screening %s (factor %g)%s", agg,
		  a->rcfg.factor > 0.0 ? "on" : "off", a->rcfg.factor,
		  a->robust ? "" : ": the plain path, non-finite states dropped on receipt");
}

static int audit_setup(struct macc_agent *a, struct macc_errmsg *err)
{
	struct macc_audit_opts o = {
		.dir = a->cfg.state_dir,
		.max_bytes = a->cfg.audit_max_bytes,
		.files = a->cfg.audit_files,
		.evidence = a->cfg.audit_evidence,
		.evidence_max_bytes = a->cfg.audit_evidence_max_bytes,
	};
	int rc;

	macc_ratelimit_init(&a->rl_audit, 10000, 3);
	if (!a->cfg.audit) {
		return 0;
	}
	rc = macc_audit_open(&o, &a->audit, err);
	if (rc < 0) {
		return rc;
	}
	macc_info(NULL, "audit trail: %s/" MACC_AUDIT_FILE " (%llu bytes x %u files)%s",
		  a->cfg.state_dir, (unsigned long long)a->cfg.audit_max_bytes, a->cfg.audit_files,
		  a->cfg.audit_evidence ? ", with the excluded bodies" : "");
	if (!a->robust) {
		macc_warn(NULL, "audit = yes but robust mixing is off (aggregation = mean, no "
			  "screen_factor): nothing will be excluded, so nothing audited");
	}
	return 0;
}

/* ---- reload ---------------------------------------------------------------------------- */

static int do_reload(struct macc_agent *a, struct macc_errmsg *err)
{
	struct macc_config nc;
	struct macc_config_diff d;
	struct peer **np = NULL;
	struct macc_pubkey *nallow = NULL;
	struct macc_robust_cfg nrcfg;
	bool nrobust = false;
	size_t nn = 0;
	int rc;

	macc_notify_reloading();
	macc_info(NULL, "reloading %s", a->opts.config_path);
	rc = macc_config_load(a->opts.config_path, &nc, err);
	if (rc < 0) {
		macc_notify("READY=1");
		return rc;
	}
	if (a->opts.socket_path != NULL) { /* -s holds over the file, as at start-up */
		snprintf(nc.control_socket, sizeof(nc.control_socket), "%s", a->opts.socket_path);
	}
	rc = macc_config_check_own_key(&nc, &a->id.pub, err);
	if (rc == 0) {
		rc = agentd_check_peers(&nc, err); /* no [peer] left: as at start-up */
	}
	if (rc < 0) {
		macc_config_finish(&nc);
		macc_notify("READY=1");
		return rc;
	}
	rc = macc_config_diff(&a->cfg, &nc, &d);
	if (rc < 0) {
		macc_config_finish(&nc);
		macc_notify("READY=1");
		return macc_errf(err, rc, "out of memory");
	}
	if (d.restart_key[0] != '\0') {
		rc = macc_errf(err, MACC_ECONFIG, "%s: key '%s' changed, which needs a restart; "
			       "keeping the running configuration", nc.file, d.restart_key);
		goto out;
	}
	rc = edge_check_reload(a, &nc, &nrcfg, &nrobust, err);
	if (rc < 0) {
		goto out;
	}
	for (size_t i = 0; i < d.nchanges && (a->edge.compressed || a->cfg.topology[0] != '\0');
	     i++) {
		if (d.changes[i].kind & (MACC_PEER_ADDED | MACC_PEER_REMOVED)) {
			/* Agent numbers and public copies are laid out per configured peer. */
			rc = macc_errf(err, MACC_ECONFIG, "%s: peers added or removed with topology "
				       "or compress set, which needs a restart; keeping the running "
				       "configuration", nc.file);
			goto out;
		}
	}
	np = calloc(nc.npeers + 1, sizeof(*np));
	nallow = calloc(nc.npeers + 1, sizeof(*nallow));
	if (np == NULL || nallow == NULL) {
		rc = macc_errf(err, -ENOMEM, "out of memory");
		goto out;
	}
	/* Keep existing peers (by key), update them, create the new ones. */
	for (size_t i = 0; i < nc.npeers; i++) {
		const struct macc_config_peer *cp = &nc.peers[i];
		struct peer *p = NULL;

		for (size_t j = 0; j < a->npeers; j++) {
			if (macc_pubkey_equal(&a->peers[j]->key, &cp->public_key)) {
				p = a->peers[j];
			}
		}
		if (p == NULL) {
			p = peer_create(a, cp);
			if (p == NULL) {
				rc = macc_errf(err, -ENOMEM, "out of memory for peer %s", cp->name);
				for (size_t k = 0; k < nn; k++) {
					/* undo: nothing started yet for new peers */
				}
				goto out;
			}
			macc_info(p->name, "peer added (%s)", cp->public_key_b64);
			p->agent = a;
			np[nn++] = p;
			p->removed = false;
			continue;
		}
		bool moved = strcmp(p->endpoint.host, cp->endpoint.host) != 0 ||
			     p->endpoint.port != cp->endpoint.port;
		if (p->cfg_weight != cp->weight || p->has_weight != cp->has_weight) {
			macc_info(p->name, "weight changed");
		}
		snprintf(p->name, sizeof(p->name), "%s", cp->name);
		p->endpoint = cp->endpoint;
		p->cfg_weight = cp->weight;
		p->has_weight = cp->has_weight;
		p->max_rate = cp->max_rate; /* applied by peers_set_rates below */
		if (moved) {
			macc_info(p->name, "endpoint changed: reconnecting");
			peer_reconnect(p);
		}
		np[nn++] = p;
	}
	for (size_t j = 0; j < a->npeers; j++) {
		bool kept = false;
		for (size_t i = 0; i < nn; i++) {
			kept |= np[i] == a->peers[j];
		}
		if (!kept) {
			struct peer **g = realloc(a->graveyard, (a->ngraveyard + 1) * sizeof(*g));
			if (g != NULL) {
				a->graveyard = g;
				a->graveyard[a->ngraveyard++] = a->peers[j];
			}
			macc_info(a->peers[j]->name, "peer removed");
			peer_remove(a->peers[j]);
		}
	}
	free(a->peers);
	free(a->allow);
	a->peers = np;
	a->allow = nallow;
	a->npeers = nn;
	np = NULL;
	nallow = NULL;
	peers_sort(a);
	for (size_t i = 0; i < a->npeers; i++) {
		if (a->peers[i]->conn == NULL) {
			peer_start(a->peers[i]);
		}
	}
	if (d.log_level_changed && !a->opts.have_log_level) {
		macc_log_set_level(nc.log_level);
	}
	/* Swap: the running config is the new one (peers were copied into struct peer). */
	{
		char sock[MACC_CONFIG_SOCKET_MAX];
		snprintf(sock, sizeof(sock), "%s", a->cfg.control_socket);
		macc_config_finish(&a->cfg);
		a->cfg = nc;
		snprintf(a->cfg.control_socket, sizeof(a->cfg.control_socket), "%s", sock);
		memset(&nc, 0, sizeof(nc));
	}
	peers_set_rates(a); /* live sessions too: the next slice goes at the new rate */
	if (memcmp(&nrcfg, &a->rcfg, sizeof(nrcfg)) != 0 || nrobust != a->robust) {
		/* From the next step on (the mixer takes it then, edge_inbound); learned distances
		 * and quarantines are kept. */
		a->rcfg = nrcfg;
		a->robust = nrobust;
		a->edge.robust_dirty = true;
		log_robust(a);
	}
	macc_info(NULL, "reloaded: %zu peers (%zu changes)", a->npeers, d.nchanges);
	rc = 0;
out:
	free(np);
	free(nallow);
	macc_config_diff_finish(&d);
	macc_config_finish(&nc);
	macc_notify("READY=1");
	check_round(a);
	return rc;
}

/* ---- control callbacks ----------------------------------------------------------------- */

/* A new copy of the model for `model` and `predict` when publish.h's rule says so and the
 * worker is idle: at a round boundary (after_work, the step job just done) or before answering
 * one of those requests (idle when no job is in flight and no round is half-way). */
static void publish_model(struct macc_agent *a, bool request, bool idle)
{
	uint64_t now = macc_now_ms();

	if (pub_due(a->pub, a->round, request, now) && idle) {
		pub_take(a->pub, edge_model(a), a->round, macc_learner_model(&a->learner), now);
	}
}

static int ctl_model(void *ctx, const struct macc_ctl_request *req, struct macc_ctl_model *ret,
		     struct macc_errmsg *err)
{
	struct macc_agent *a = ctx;

	publish_model(a, true, a->phase == PH_NONE);
	return pub_model(a->pub, req, macc_now_ms(), ret, err);
}

static int ctl_predict(void *ctx, const struct macc_ctl_request *req,
		       struct macc_ctl_predict *ret, struct macc_errmsg *err)
{
	struct macc_agent *a = ctx;

	publish_model(a, true, a->phase == PH_NONE);
	return pub_predict(a->pub, req, ret, err);
}

static int ctl_status(void *ctx, struct macc_ctl_status *st)
{
	struct macc_agent *a = ctx;
	double elapsed = (double)a->train_ms / 1000.0;

	st->state = a->state;
	snprintf(st->name, sizeof(st->name), "%s", a->cfg.name);
	snprintf(st->model, sizeof(st->model), "%.127s", a->cfg.model);
	snprintf(st->algorithm, sizeof(st->algorithm), "%s", macc_algo_name(a->algo));
	snprintf(st->version, sizeof(st->version), "%s", MACC_VERSION);
	snprintf(st->arch, sizeof(st->arch), "%s", a->arch);
	snprintf(st->blas, sizeof(st->blas), "%s", a->blas);
	st->round = a->round;
	st->rounds_planned = a->total_rounds;
	st->epoch = epoch_of(a, a->round);
	st->epochs_planned = epoch_of(a, a->total_rounds);
	st->train_loss = a->train_loss;
	st->test_loss = a->have_eval ? a->test_loss : NAN;
	st->test_accuracy_ratio = a->have_eval ? a->test_acc : NAN;
	st->samples_per_second = elapsed > 0 ? (double)a->samples_total / elapsed : 0.0;
	st->round_seconds = a->round_time_s;
	st->consensus_distance = a->consensus_distance;
	st->peers_up = peers_up(a);
	st->peers_configured = (uint32_t)a->npeers;
	st->uptime_seconds = (macc_now_ms() - a->start_ms) / 1000;
	st->process_start_time_seconds = a->start_wall_s;
	st->state_bytes_sent_total = a->edge.bytes_out;
	st->state_bytes_received_total = a->edge.bytes_in;
	snprintf(st->digest, sizeof(st->digest), "%016llx", (unsigned long long)a->digest);
	snprintf(st->last_error, sizeof(st->last_error), "%s", a->last_error);
	st->degraded = a->degraded;
	st->rollbacks_total = a->rollbacks;
	st->max_rate_bytes_per_second = a->cfg.max_rate != 0 ? (double)a->cfg.max_rate : NAN;
	st->send_rate_bytes_per_second = a->send_rate;
	memcpy(st->connections_rejected_total, a->conn_rejected,
	       sizeof(st->connections_rejected_total));
	std_status(a, st); /* standardize.c */
	return 0;
}

/* The reasons a message from a neighbour can be rejected for (peer_reject's codes), listed in
 * `peers` and `metrics` at 0 from the start, so that a rate over them exists before the first
 * rejection. A new reason in peer.c belongs here too. */
static const int known_rejects[] = {
	MACC_EMALFORMED,   MACC_EBADSIG,  MACC_EREPLAY,    MACC_EVERSION, MACC_ETOOBIG,
	MACC_EUNKNOWNPEER, MACC_EMODEL,   MACC_ETIMEOUT,   MACC_ENONFINITE, MACC_ERATELIMIT,
	MACC_EENCRYPT,     MACC_ERANGE,   MACC_ESLOW,      MACC_ECONFIG, -EIO,
};

static int ctl_peers(void *ctx, struct macc_ctl_peer **ret, size_t *ret_n)
{
	struct macc_agent *a = ctx;
	struct macc_ctl_peer *ps = calloc(a->npeers + 1, sizeof(*ps));

	if (ps == NULL) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < a->npeers; i++) {
		struct peer *p = a->peers[i];
		struct macc_ctl_peer *q = &ps[i];
		double self_w = 1.0, w[MACC_CONFIG_MAX_PEERS + 1];
		uint32_t deg[MACC_CONFIG_MAX_PEERS + 1];

		snprintf(q->name, sizeof(q->name), "%s", p->name);
		macc_endpoint_format(&p->endpoint, q->endpoint, sizeof(q->endpoint));
		macc_pubkey_to_b64(&p->key, q->key);
		q->session = peer_session_state(p);
		q->last_round = p->last_round;
		/* A round trip is only known for a session that is up now. */
		q->rtt_seconds = p->rtt_ms < 0 || q->session != MACC_CTL_SESSION_UP
					 ? NAN
					 : p->rtt_ms / 1000.0;
		if (a->cfg.weights == MACC_CONFIG_WEIGHTS_EXPLICIT) {
			q->weight = p->cfg_weight;
		} else {
			for (size_t j = 0; j < a->npeers; j++) {
				deg[j] = a->peers[j]->degree_known ? a->peers[j]->degree
								   : (uint32_t)a->npeers;
			}
			macc_weights_row(a->cfg.weights == MACC_CONFIG_WEIGHTS_UNIFORM
						 ? MACC_WEIGHTS_UNIFORM
						 : MACC_WEIGHTS_METROPOLIS,
					 (uint32_t)a->npeers, deg, a->npeers, &self_w, w);
			q->weight = w[i];
		}
		q->bytes_received_total = p->bytes_in;
		q->bytes_sent_total = p->bytes_out;
		q->max_rate_bytes_per_second = p->max_rate != 0 ? (double)p->max_rate : NAN;
		q->send_rate_bytes_per_second = p->send_rate;
		for (size_t k = 0; k < sizeof(known_rejects) / sizeof(known_rejects[0]); k++) {
			macc_ctl_peer_add_reject(q, known_rejects[k], 0);
		}
		for (int k = 0; k < 32; k++) {
			if (p->rejected[k] > 0) {
				macc_ctl_peer_add_reject(q, MACC_EMALFORMED - k, p->rejected[k]);
			}
		}
		if (p->rejected_errno > 0) {
			macc_ctl_peer_add_reject(q, -EIO, p->rejected_errno);
		}
		q->sealed = p->conn != NULL && p->conn->session.seal;
		snprintf(q->arch, sizeof(q->arch), "%s", p->arch);
		snprintf(q->blas, sizeof(q->blas), "%s", p->blas);
		q->states_excluded_nonfinite_total = p->excluded[MACC_ROBUST_NONFINITE];
		q->states_excluded_distance_total = p->excluded[MACC_ROBUST_DISTANCE];
		q->states_excluded_quarantined_total = p->excluded[MACC_ROBUST_QUARANTINED];
		q->states_clipped_total = p->clipped;
		q->quarantine_active = a->robust && macc_quarantine_active(&p->q, a->round);
		q->quarantine_until = p->q.until;
		q->quarantines_total = p->q.times;
	}
	*ret = ps;
	*ret_n = a->npeers;
	return 0;
}

static int ctl_start(void *ctx, struct macc_errmsg *err)
{
	struct macc_agent *a = ctx;

	if (a->state == MACC_CTL_STATE_TRAINING) {
		/* Documented as bad-state (ctl.h, macc-ctl(8)): scripts learn it was already running. */
		return macc_errf(err, MACC_ESTATE, "already training (round %llu)",
				 (unsigned long long)a->round);
	}
	if (a->state == MACC_CTL_STATE_DONE) {
		return macc_errf(err, MACC_ESTATE, "the run is done (round %llu of %llu)",
				 (unsigned long long)a->round, (unsigned long long)a->total_rounds);
	}
	if (a->phase != PH_NONE) {
		return macc_errf(err, MACC_ESTATE, "busy, try again");
	}
	a->state = MACC_CTL_STATE_TRAINING;
	a->stop_req = a->pause_req = false;
	macc_info(NULL, "training started at round %llu", (unsigned long long)a->round);
	start_round(a);
	return 0;
}

static int ctl_stop(void *ctx, struct macc_errmsg *err)
{
	struct macc_agent *a = ctx;

	if (a->state != MACC_CTL_STATE_TRAINING && a->state != MACC_CTL_STATE_PAUSED) {
		return macc_errf(err, MACC_ESTATE, "not training");
	}
	if (a->phase == PH_NONE) {
		a->state = MACC_CTL_STATE_IDLE;
		a->stopped_training = true;
		job.ckpt_round = a->round;
		queue_job(a, JOB_CKPT, PH_JOB);
		return 0;
	}
	a->stop_req = true;
	return 0;
}

static int ctl_pause(void *ctx, struct macc_errmsg *err)
{
	struct macc_agent *a = ctx;

	if (a->state != MACC_CTL_STATE_TRAINING) {
		return macc_errf(err, MACC_ESTATE, "not training");
	}
	a->pause_req = true;
	return 0;
}

static int ctl_resume(void *ctx, struct macc_errmsg *err)
{
	struct macc_agent *a = ctx;

	if (a->state == MACC_CTL_STATE_TRAINING) {
		a->pause_req = false;
		return 0;
	}
	if (a->state != MACC_CTL_STATE_PAUSED) {
		return macc_errf(err, MACC_ESTATE, "not paused");
	}
	a->state = MACC_CTL_STATE_TRAINING;
	macc_info(NULL, "resumed at round %llu", (unsigned long long)a->round);
	start_round(a);
	return 0;
}

static int ctl_checkpoint(void *ctx, struct macc_errmsg *err)
{
	struct macc_agent *a = ctx;

	(void)err;
	if (a->phase == PH_NONE) {
		job.ckpt_round = a->round;
		return queue_job(a, JOB_CKPT, PH_JOB);
	}
	a->ckpt_req = true;
	return 0;
}

static int ctl_eval(void *ctx, struct macc_errmsg *err)
{
	struct macc_agent *a = ctx;

	(void)err;
	if (a->phase == PH_NONE) {
		return queue_job(a, JOB_EVAL, PH_JOB);
	}
	a->eval_req = true;
	return 0;
}

static int ctl_metrics(void *ctx, struct macc_ctl_metrics *m)
{
	struct macc_agent *a = ctx;

	*m = a->metrics;
	return 0;
}

static int ctl_audit(void *ctx, uint32_t limit, struct macc_ctl_audit *ret,
		     struct macc_errmsg *err)
{
	struct macc_agent *a = ctx;
	struct macc_audit_entry *list = NULL;
	size_t n = 0;
	uint64_t total = 0, bad = 0;
	int rc;

	ret->enabled = a->cfg.audit;
	snprintf(ret->file, sizeof(ret->file), "%.1000s/" MACC_AUDIT_FILE, a->cfg.state_dir);
	ret->entries_total = a->metrics.audit_entries_total;
	ret->errors_total = a->metrics.audit_errors_total;
	rc = macc_audit_list(a->cfg.state_dir, a->cfg.audit_files, limit, &list, &n, &total, &bad,
			     err);
	if (rc < 0) {
		return rc;
	}
	ret->entries_kept = total;
	if (n > 0) {
		ret->entries = calloc(n, sizeof(*ret->entries));
		if (ret->entries == NULL) {
			free(list);
			return macc_errf(err, -ENOMEM, "out of memory");
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct macc_ctl_audit_entry *e = &ret->entries[i];
		static const char hex[] = "0123456789abcdef";

		e->seq = list[i].seq;
		e->time_seconds = (double)list[i].time_ms / 1000.0;
		e->round = list[i].round;
		snprintf(e->reason, sizeof(e->reason), "%s", list[i].reason);
		snprintf(e->peer, sizeof(e->peer), "%s", list[i].peer);
		macc_pubkey_to_b64(&list[i].key, e->key);
		for (int k = 0; k < MACC_DIGEST_BYTES; k++) {
			uint8_t b = list[i].text[MACC_STATE_SIGNED_DIGEST + k];

			e->digest[2 * k] = hex[b >> 4];
			e->digest[2 * k + 1] = hex[b & 15];
		}
		e->body_bytes = list[i].body_len;
		snprintf(e->evidence, sizeof(e->evidence), "%s", list[i].evidence);
	}
	ret->nentries = n;
	free(list);
	return 0;
}

static int ctl_reload(void *ctx, struct macc_errmsg *err)
{
	return do_reload(ctx, err);
}

static int ctl_log_level(void *ctx, enum macc_log_level level, struct macc_errmsg *err)
{
	(void)ctx;
	(void)err;
	macc_log_set_level(level);
	macc_info(NULL, "log level set to %s", macc_log_level_name(level));
	return 0;
}

static const struct macc_ctl_ops ctl_ops = {
	.status = ctl_status,
	.peers = ctl_peers,
	.start = ctl_start,
	.stop = ctl_stop,
	.pause = ctl_pause,
	.resume = ctl_resume,
	.checkpoint = ctl_checkpoint,
	.eval = ctl_eval,
	.metrics = ctl_metrics,
	.reload = ctl_reload,
	.log_level = ctl_log_level,
	.audit = ctl_audit,
	.model = ctl_model,
	.predict = ctl_predict,
};

/* ---- setup ----------------------------------------------------------------------------- */

/* The data, checked against the model, and this agent's shard of it: the partition of
 * shard = INDEX/COUNT, or the whole training set. */
static int load_data(struct macc_agent *a, struct macc_errmsg *err)
{
	const struct macc_config *c = &a->cfg;
	int rc;

	if (a->train.x == NULL) { /* (normally loaded by the start-up check: agent_init) */
		macc_info(NULL, "loading data '%s'", c->data);
		rc = macc_dataset_load(c->data, MACC_SPLIT_TRAIN, &a->train, err);
		if (rc < 0) {
			return rc;
		}
		rc = macc_dataset_load(c->data, MACC_SPLIT_TEST, &a->test, err);
		if (rc < 0) {
			return rc;
		}
	}
	rc = macc_model_check_data(a->eval_model, c->model, &a->train, &a->test, c->data, err);
	if (rc < 0) {
		return rc;
	}
	a->regression = macc_model_loss(a->eval_model) == MACC_LOSS_MSE;
	macc_info(NULL, "test figures (%s) on %s", a->regression ? "rmse" : "accuracy",
		  a->test.origin_text);
	if (!c->has_shard || c->shard_count <= 1) {
		return 0;
	}
	rc = macc_partition_make(a->train.y, a->train.n, a->train.nclasses, c->shard_count,
				 c->partition, c->seed, &a->part, err);
	a->part_made = rc == 0;
	return rc;
}

/* The learner: model, shard, batcher, rngs, local steps, epochs and learning rates (the rules
 * macc-sim uses), then the parameter blocks from the shared seed. */
static int setup_learner(struct macc_agent *a, struct macc_errmsg *err)
{
	const struct macc_config *c = &a->cfg;
	struct macc_learner_opts lo = {
		.model = c->model,
		.batch = c->batch,
		.train = &a->train,
		.part = a->part_made ? &a->part : NULL,
		.agent = shard_index(a),
		.seed = c->seed,
		.weight_decay = (float)c->weight_decay,
		.beta = (float)c->momentum,
		.nesterov = c->nesterov,
		.local_steps = c->local_steps,
		.lr_schedule = c->lr_schedule,
		.lr = (float)c->lr,
		.epochs = c->epochs,
		.rounds = c->rounds,
	};
	size_t np = a->nparams;
	int rc;

	rc = macc_learner_init(&a->learner, &lo, err);
	if (rc < 0) {
		return rc;
	}
	a->epoch_rounds = macc_learner_epoch_rounds(&a->learner);
	a->total_rounds = macc_learner_total_rounds(&a->learner);
	a->x = calloc(np, sizeof(float));
	a->v = calloc(np, sizeof(float));
	a->g = calloc(np, sizeof(float));
	if (!a->x || !a->v || !a->g) {
		return macc_errf(err, -ENOMEM, "out of memory for %zu parameters", np);
	}
	macc_model_init_params(macc_learner_model(&a->learner), a->x, c->seed);
	a->digest = macc_params_digest(a->x, np);
	macc_info(NULL, "model %s: %zu parameters; shard %u/%u: %zu samples; %llu rounds per "
		  "epoch (%u local steps a round), %llu rounds",
		  macc_model_spec(a->eval_model), np, shard_index(a),
		  c->has_shard ? c->shard_count : 1, macc_learner_shard_n(&a->learner),
		  (unsigned long long)a->epoch_rounds, a->edge.H,
		  (unsigned long long)a->total_rounds);
	return 0;
}

static int setup_learning(struct macc_agent *a, struct macc_errmsg *err)
{
	struct macc_config *c = &a->cfg;
	int rc;

	a->algo = c->algorithm;
	a->sends_v = macc_algo_sends_momentum(a->algo);
	a->after_grad = macc_algo_sends_after_grad(a->algo);
	if (c->threads > 0) {
		macc_nn_set_threads((int)c->threads);
	}
	a->hp.alpha = (float)c->lr;
	a->hp.beta = (float)c->momentum;
	a->hp.omega = (float)c->omega;
	a->hp.nesterov = c->nesterov;
	/* The model first (a bad spec fails before any data is read); the learner builds its own
	 * from the same spec. */
	rc = macc_model_create(c->model, 256, &a->eval_model, err);
	if (rc < 0) {
		return rc;
	}
	a->nparams = macc_model_nparams(a->eval_model);
	a->model_hash = macc_model_hash(a->eval_model);
	a->config_hash = agentd_config_hash(c);
	a->frame_max = macc_state_frame_max(a->nparams, a->sends_v) + 1024;
	rc = edge_config(a, err);
	if (rc == 0) {
		rc = load_data(a, err);
	}
	if (rc == 0) {
		rc = setup_learner(a, err);
	}
	return rc;
}

static int load_checkpoint(struct macc_agent *a, struct macc_errmsg *err)
{
	struct macc_ckpt c;
	struct macc_errmsg warn, e;
	char used[1100];
	int rc;

	memset(&c, 0, sizeof(c));
	c.config_hash = a->config_hash;
	c.model_hash = a->model_hash;
	c.nparams = a->nparams;
	c.params = a->x;
	c.momentum = a->v;
	std_ckpt_prepare(a, &c); /* standardize.c: room for the file's transform */
	rc = macc_ckpt_load(a->cfg.state_dir, &c, used, sizeof(used), &warn, &e);
	if (rc == -ENOENT) {
		macc_info(NULL, "no checkpoint in %s: starting at round 0", a->cfg.state_dir);
		return 0;
	}
	if (rc < 0) {
		return macc_errf(err, rc, "%s", e.text);
	}
	if (warn.text[0] != '\0') {
		macc_warn(NULL, "checkpoint unusable: %s; using the previous good one", warn.text);
	}
	rc = macc_learner_set_state(&a->learner, &c.batcher, &c.rng);
	if (rc < 0) {
		return macc_errf(err, rc, "%s: batcher state does not fit this shard", used);
	}
	rc = std_ckpt_loaded(a, &c, err); /* standardize.c: its transform, no agreement */
	if (rc < 0) {
		return rc;
	}
	a->round = c.round;
	a->digest = macc_params_digest(a->x, a->nparams);
	macc_info(NULL, "resumed from %s at round %llu (epoch %.2f)", used,
		  (unsigned long long)a->round, epoch_of(a, a->round));
	return 0;
}

/* The check that --check-config runs (check.c), before anything is built: every problem is
 * logged, one line each; the data it loaded is kept. */
static int startup_check(struct macc_agent *a, const struct agent_opts *o,
			 struct macc_errmsg *err)
{
	struct agentd_check_opts co = { .keep_data = true, .socket_option = o->socket_path != NULL };
	struct agentd_check chk;
	int n;

	macc_info(NULL, "checking %s and loading data '%s'", a->cfg.file, a->cfg.data);
	n = agentd_check_config(&a->cfg, &co, &chk);
	for (size_t i = 0; i < chk.nproblems; i++) {
		if (chk.problems[i].warning) {
			macc_warn(NULL, "%s", chk.problems[i].text);
		} else {
			macc_error(NULL, "%s", chk.problems[i].text);
		}
	}
	if (n == 0 && chk.have_data) {
		a->train = chk.train;
		a->test = chk.test;
		chk.have_data = false;
	}
	agentd_check_finish(&chk);
	if (n < 0) {
		return macc_errf(err, n, "out of memory checking the configuration");
	}
	if (n > 0) {
		return macc_errf(err, MACC_ECONFIG, "%s: %d configuration error%s (listed above)",
				 a->cfg.file, n, n == 1 ? "" : "s");
	}
	return 0;
}

int agent_init(struct macc_agent *a, const struct agent_opts *o, struct macc_errmsg *err)
{
	struct macc_ctl_server_opts so;
	int rc;

	memset(a, 0, sizeof(*a));
	a->opts = *o;
	a->start_ms = macc_now_ms();
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		a->start_wall_s = (double)ts.tv_sec + (double)(ts.tv_nsec / 1000000) / 1000.0;
	}
	a->train_loss = NAN; /* unknown until the first rounds are averaged */
	a->test_acc = NAN;
	a->test_loss = NAN;
	a->consensus_distance = NAN;
	macc_ratelimit_init(&a->rl_unbound, 10000, 5);
	macc_ratelimit_init(&a->rl_jump, 10000, 1);
	macc_ratelimit_init(&a->rl_rollback, 10000, 3);
	{
		uint64_t seed;
		macc_random_bytes(&seed, sizeof(seed));
		macc_rng_seed(&a->jitter, seed, 0);
	}
	rc = uv_loop_init(&a->loop);
	if (rc < 0) {
		return macc_errf(err, rc, "cannot create the event loop: %s", uv_strerror(rc));
	}
	rc = macc_config_load(o->config_path, &a->cfg, err);
	if (rc < 0) {
		return rc;
	}
	if (o->socket_path != NULL) {
		snprintf(a->cfg.control_socket, sizeof(a->cfg.control_socket), "%s", o->socket_path);
	}
	macc_log_set_level(o->have_log_level ? o->log_level : a->cfg.log_level);
	rc = startup_check(a, o, err);
	if (rc < 0) {
		return rc;
	}
	rc = macc_identity_load(&a->id, a->cfg.key_file, err);
	if (rc < 0) {
		return rc;
	}
	macc_pubkey_to_b64(&a->id.pub, a->keyb64);
	{
		/* The platform sent in HELLO and shown by status: results are bit-identical only
		 * between agents with the same architecture and BLAS kernel. */
		struct utsname u;

		snprintf(a->arch, sizeof(a->arch), "%.31s", uname(&u) == 0 ? u.machine : "unknown");
		snprintf(a->blas, sizeof(a->blas), "%s", macc_nn_blas_kernel());
	}
	rc = macc_config_check_own_key(&a->cfg, &a->id.pub, err);
	if (rc < 0) {
		return rc;
	}
	macc_info(NULL, "agent %s, public key %s, %zu peers", a->cfg.name, a->keyb64,
		  a->cfg.npeers);
	rc = setup_learning(a, err);
	if (rc == 0) {
		rc = std_setup(a, err); /* standardize.c: on, S and D */
	}
	if (rc < 0) {
		return rc;
	}
	if (mkdir(a->cfg.state_dir, 0700) < 0 && errno != EEXIST) {
		return macc_errf(err, -errno, "state directory %s: %s", a->cfg.state_dir,
				 strerror(errno));
	}
	rc = load_checkpoint(a, err);
	if (rc < 0) {
		return rc;
	}
	log_robust(a);
	rc = audit_setup(a, err);
	if (rc < 0) {
		return rc;
	}
	rc = edge_setup(a, a->round == 0, err);
	if (rc < 0) {
		return rc;
	}
	rc = pub_create(macc_learner_model(&a->learner), a->cfg.name, &a->pub, err);
	if (rc < 0) {
		return rc;
	}
	pub_take(a->pub, edge_model(a), a->round, macc_learner_model(&a->learner),
		 macc_now_ms());
	rc = peers_setup(a, err);
	if (rc < 0) {
		return rc;
	}
	rc = edge_map_peers(a, err);
	if (rc < 0) {
		return rc;
	}
	rc = peer_listen(a, err);
	if (rc < 0) {
		return rc;
	}
	macc_ctl_server_opts_init(&so);
	so.path = a->cfg.control_socket;
	so.version = MACC_VERSION;
	so.max_clients = a->cfg.control_max_clients;
	so.reserved_clients = a->cfg.control_reserved_clients;
	so.idle_timeout_ms = a->cfg.control_idle_timeout_ms;
	rc = macc_ctl_server_create(&a->loop, &so, &ctl_ops, a, &a->ctl, err);
	if (rc < 0) {
		return rc;
	}
	uv_timer_init(&a->loop, &a->round_timer);
	a->round_timer.data = a;
	uv_timer_init(&a->loop, &a->grace_timer);
	a->grace_timer.data = a;
	uv_timer_init(&a->loop, &a->pace_timer);
	a->pace_timer.data = a;
	macc_pacer_init(&a->pacer, uv_hrtime());
	peers_set_rates(a);
	uv_timer_init(&a->loop, &a->tick_timer);
	a->tick_timer.data = a;
	uv_timer_start(&a->tick_timer, on_tick, 250, 250);
	uv_timer_init(&a->loop, &a->watchdog_timer);
	a->watchdog_timer.data = a;
	{
		uint64_t wd = macc_notify_watchdog_interval_ms();
		if (wd > 0) {
			uv_timer_start(&a->watchdog_timer, on_watchdog, wd, wd);
		}
	}
	uv_signal_init(&a->loop, &a->sig_term);
	uv_signal_init(&a->loop, &a->sig_int);
	uv_signal_init(&a->loop, &a->sig_hup);
	a->sig_term.data = a->sig_int.data = a->sig_hup.data = a;
	uv_signal_start(&a->sig_term, on_signal, SIGTERM);
	uv_signal_start(&a->sig_int, on_signal, SIGINT);
	uv_signal_start(&a->sig_hup, on_signal, SIGHUP);
	return 0;
}

int agent_run(struct macc_agent *a)
{
	if (a->round >= a->total_rounds) {
		/*
		 * Restarted after its run finished: the checkpoint holds the final model but not
		 * its evaluation. Evaluate it (the same computation as the last round's eval, on the
		 * same parameters, so the same accuracy) before saying READY, so that status, the
		 * log and STATUS= show what the run ended with rather than nan / "-".
		 */
		macc_model_evaluate(a->eval_model, edge_model(a), a->test.x, a->test.y, a->test.n,
				    &a->test_loss, &a->test_acc);
		a->have_eval = true;
	}
	for (size_t i = 0; i < a->npeers; i++) {
		peer_start(a->peers[i]);
	}
	macc_notify("READY=1");
	if (a->round >= a->total_rounds) {
		a->state = MACC_CTL_STATE_TRAINING;
		finish_run(a);
	} else {
		a->state = MACC_CTL_STATE_TRAINING;
		macc_info(NULL, "training from round %llu", (unsigned long long)a->round);
		start_round(a);
	}
	uv_run(&a->loop, UV_RUN_DEFAULT);
	return a->exit_code;
}

static void free_peer(struct peer *p)
{
	slot_free(&p->cur);
	slot_free(&p->next);
	edge_peer_finish(p);
	free(p);
}

static void walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h)) {
		uv_close(h, on_close_noop);
	}
}

void agent_finish(struct macc_agent *a)
{
	if (!a->shutting_down) {
		/* Startup failed part way: close what exists, connections first (they own memory). */
		a->shutting_down = true;
		peers_say_bye(a, 0, "agent stopping");
		for (size_t i = 0; i < a->npeers; i++) {
			peer_remove(a->peers[i]);
		}
		macc_ctl_server_close(a->ctl, NULL, NULL);
		a->ctl = NULL;
		uv_walk(&a->loop, walk_close, NULL);
	}
	uv_run(&a->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&a->loop) != 0) {
		macc_debug(NULL, "event loop still had handles at exit");
	}
	for (size_t i = 0; i < a->npeers; i++) {
		free_peer(a->peers[i]);
	}
	for (size_t i = 0; i < a->ngraveyard; i++) {
		free_peer(a->graveyard[i]);
	}
	free(a->peers);
	free(a->allow);
	free(a->graveyard);
	shared_body_unref(a->body);
	shared_body_unref(job.spare);
	job.spare = NULL;
	macc_learner_finish(&a->learner);
	macc_partition_finish(&a->part);
	macc_dataset_finish(&a->train);
	macc_dataset_finish(&a->test);
	macc_model_destroy(a->eval_model);
	pub_destroy(a->pub);
	free(a->x);
	free(a->v);
	free(a->g);
	macc_audit_close(a->audit);
	edge_finish(a);
	std_finish(a); /* standardize.c */
	macc_identity_finish(&a->id);
	macc_config_finish(&a->cfg);
}
