/*
 * round.c - the round driver of one agent: its phases, who a round waits for, the round timer,
 * the round-jump rule, and the requests (start, stop, pause, resume, checkpoint, eval,
 * shutdown) that wait for a round boundary.
 *
 * A round k (macc-agentd(8), macc-algorithms(7)):
 *   1. x_k is known: the STATE body (k, x_k[, v_k], the mixer's outgoing state) was encoded once
 *      on the worker at the end of the previous step; the loop sends it to every neighbour with
 *      a per-neighbour signed prefix (conn.c) and at once queues the gradient job (the
 *      learner's round: local steps and the gradient), so compute overlaps communication. dsgd
 *      sends y_k = x_k - alpha g_k, and local steps change x, so then it encodes and sends
 *      after the gradient.
 *   2. The loop waits until every neighbour that can still send round k has done so: a neighbour
 *      is not waited for when it is dead (no traffic for dead_peer_timeout), when its session
 *      went down more than reconnect_grace_ms ago (it cannot deliver a state before it is back;
 *      peer_gone, peer.c) or when it is known to be past round k already; or until the round
 *      timeout.
 * Before round 0 of a run that standardises, round_start waits for the agreed transform
 * (standardize.c, std_ready): it posts EV_START_ROUND when the transform is known.
 *   3. The step job: what arrived (edge_inbound: the row of W, each neighbour's slot, in
 *      ascending public-key order, the agent index order) goes through macc_mixer_step, then
 *      evaluation / checkpoint when due and the next round's body (macc_mixer_outgoing).
 * The learner and the mixer are the modules macc-sim runs, called in the simulator's order, so
 * a fault-free ring of daemons matches `macc-sim` bit for bit.
 *
 * Phases (enum phase, agent.h): NONE (between rounds or not training) -> GRAD (gradient job) ->
 * WAIT (neighbours' states) -> STEP (step job) -> NONE; JOB is a job outside a round (encode at
 * start, resume or after a jump; checkpoint; eval; rollback). A phase before round 0 goes in
 * round_start, before the first encode. What arrives from the network never ends a wait
 * directly: the sessions (session.c) post EV_CHECK_ROUND (agent_post) and the loop runs
 * round_check afterwards.
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
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "macc/guard.h"

#include "agent.h"
#include "notify.h"

/* Whether the round's body is encoded after the gradient (dsgd sends y; local steps change x). */
static bool late_send(const struct macc_agent *a)
{
	return a->after_grad || a->edge.late_send;
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
		  agent_epoch(a, a->round), a->train_loss,
		  elapsed > 0 ? (double)a->samples_total / elapsed : 0.0, a->round_time_s * 1e3,
		  agent_peers_up(a), a->npeers);
}

void round_finish_run(struct macc_agent *a)
{
	a->state = MACC_CTL_STATE_DONE;
	a->phase = PH_NONE;
	macc_info(NULL, "traffic: state bytes sent %llu received %llu, resync states sent %llu "
		  "asked %llu", (unsigned long long)a->edge.bytes_out,
		  (unsigned long long)a->edge.bytes_in, (unsigned long long)a->edge.resyncs_sent,
		  (unsigned long long)a->edge.resyncs_asked);
	macc_info(NULL, "training done: round %llu epoch %.2f test %s %.4f test loss %.4f "
		  "digest=%016llx",
		  (unsigned long long)a->round, agent_epoch(a, a->round),
		  a->regression ? "rmse" : "accuracy", a->regression ? sqrt(a->test_loss)
		  : a->test_acc, a->test_loss, (unsigned long long)a->digest);
	agent_publish(a, true);
	if (a->opts.exit_when_done) {
		agent_shutdown(a);
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
	return job_queue(a, JOB_ROLLBACK, PH_JOB) == 0;
}

/* Loop, after a job (jobs.c took in what it reported): the step ends the round; then a
 * rollback, the requests that waited for the job (checkpoint before stop or shutdown, stop,
 * pause, checkpoint, eval) and the next round, in that order. */
static void after_step(struct macc_agent *a, unsigned flags)
{
	uint64_t now = macc_now_ms();
	uint64_t log_every = a->epoch_rounds / 5 ? a->epoch_rounds / 5 : 1;

	a->round++;
	a->round_time_s = (double)(now - a->round_started_ms) / 1000.0;
	a->train_ms += now - a->round_started_ms;
	a->metrics.rounds_total++;
	macc_ctl_metrics_observe_round(&a->metrics, a->round_time_s);
	inbox_advance(a, a->round);
	if (a->round % log_every == 0 || a->round == a->total_rounds) {
		a->train_loss = a->loss_n ? a->loss_acc / (double)a->loss_n : a->train_loss;
		a->loss_acc = 0.0;
		a->loss_n = 0;
		log_progress(a);
	}
	if (flags & JOB_EVAL) {
		macc_info(NULL, "eval at round %llu (epoch %.2f): test %s %.4f loss %.4f",
			  (unsigned long long)a->round, agent_epoch(a, a->round),
			  a->regression ? "rmse" : "accuracy", a->regression ?
			  sqrt(a->test_loss) : a->test_acc, a->test_loss);
	}
	if (now - a->last_publish_ms >= 500) {
		agent_publish(a, false);
	}
	agent_publish_model(a, false, true); /* the step job is done: the worker is idle */
}

/* Loop, between rounds: a request that waited for the job in flight. True when it was handled
 * (a job was queued or training stopped). */
static bool pending_request(struct macc_agent *a, unsigned flags)
{
	if ((a->shutdown_req || a->stop_req) && !(flags & JOB_CKPT) &&
	    a->state != MACC_CTL_STATE_DONE && a->state != MACC_CTL_STATE_ERROR) {
		/* The request came after this job was queued: checkpoint first. */
		a->job.ckpt_round = a->round;
		if (job_queue(a, JOB_CKPT, PH_JOB) == 0) {
			return true;
		}
	}
	if (a->shutdown_req) {
		agent_shutdown(a);
		return true;
	}
	if (a->state == MACC_CTL_STATE_TRAINING && a->round >= a->total_rounds) {
		round_finish_run(a);
		return true;
	}
	if (a->stop_req) {
		a->stop_req = false;
		a->state = MACC_CTL_STATE_IDLE;
		a->stopped_training = true;
		macc_info(NULL, "training stopped at round %llu", (unsigned long long)a->round);
		agent_publish(a, true);
		return true;
	}
	if (a->pause_req) {
		a->pause_req = false;
		a->state = MACC_CTL_STATE_PAUSED;
		macc_info(NULL, "paused at round %llu", (unsigned long long)a->round);
		agent_publish(a, false);
		return true;
	}
	if (a->ckpt_req || a->eval_req) {
		unsigned f = (a->ckpt_req ? JOB_CKPT : 0) | (a->eval_req ? JOB_EVAL : 0);

		a->ckpt_req = a->eval_req = false;
		a->job.ckpt_round = a->round;
		if (job_queue(a, f, PH_JOB) == 0) {
			return true;
		}
	}
	return false;
}

void round_after_job(struct macc_agent *a, unsigned flags, enum phase ph)
{
	if (flags & JOB_GRAD) {
		if (late_send(a) && a->body_round == a->round && a->body != NULL) {
			broadcast(a);
		}
		a->phase = PH_WAIT;
		round_check(a);
		return;
	}
	if (ph == PH_STEP) {
		after_step(a, flags);
	}
	a->phase = PH_NONE;
	if (start_rollback(a)) {
		return;
	}
	if (pending_request(a, flags)) {
		return;
	}
	if (a->state == MACC_CTL_STATE_TRAINING) {
		round_start(a);
	}
}


static void on_round_timeout(uv_timer_t *t)
{
	struct macc_agent *a = t->data;

	a->round_timed_out = true;
	round_check(a);
}

void round_start(struct macc_agent *a)
{
	if (a->state != MACC_CTL_STATE_TRAINING || a->phase != PH_NONE || a->shutting_down) {
		return;
	}
	if (!std_ready(a)) {
		return; /* standardize.c: the transform is not agreed yet (agent_on_standardized) */
	}
	if (a->round >= a->total_rounds) {
		round_finish_run(a);
		return;
	}
	edge_round_start(a);
	if (!late_send(a) && (a->body == NULL || a->body_round != a->round)) {
		/* The body for this round is made on the worker (start, resume, jump). */
		a->job.ckpt_round = a->round;
		job_queue(a, JOB_ENCODE, PH_JOB);
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
	a->job.ckpt_round = a->round;
	job_queue(a, JOB_GRAD | (late_send(a) ? JOB_ENCODE : 0), PH_GRAD);
	if (!late_send(a)) {
		broadcast(a);
	}
}

/* Whether round a->round still waits for p's state (round_check; the unit tests feed it fake
 * inbound states). */
bool round_waits_for(const struct macc_agent *a, const struct peer *p)
{
	if (edge_owes(a, p)) {
		return true; /* push-sum: our state has not reached this out-neighbour yet */
	}
	if (!edge_expects(a, p)) {
		return false; /* not this round's partner / not an in-neighbour (edge.c) */
	}
	if (inbox_arrived(a, p)) {
		return false;
	}
	if (peer_gone(p, macc_now_ms())) {
		return false; /* dead, or its session is down past the reconnect grace (peer.c) */
	}
	if (peer_draining(p)) {
		return true; /* the state may still be in a retired duplicate session (session.c) */
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
	inbox_advance(a, a->round);
	a->phase = PH_NONE;
	round_start(a);
	return true;
}

static bool due(uint64_t r, uint64_t every)
{
	return every > 0 && r % every == 0;
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
	job_set_step_inputs(a);
	a->job.ckpt_round = next;
	job_queue(a, step_flags(a, next), PH_STEP);
}

static void on_grace(uv_timer_t *t)
{
	round_check(t->data);
}

/* The wait goes on: if a neighbour it is for is down and in its reconnect grace, wake up when
 * the first grace ends (the round timer covers the others). */
static void arm_grace(struct macc_agent *a)
{
	uint64_t first = 0, now = macc_now_ms();

	for (size_t i = 0; i < a->npeers; i++) {
		uint64_t end = peer_grace_end(a->peers[i]);

		if (round_waits_for(a, a->peers[i]) && end != 0 && (first == 0 || end < first)) {
			first = end;
		}
	}
	if (first != 0) {
		uv_timer_start(&a->grace_timer, on_grace, first > now ? first - now : 0, 0);
	}
}

void round_check(struct macc_agent *a)
{
	if (a->phase != PH_WAIT) {
		return;
	}
	if (!a->round_timed_out && !a->shutdown_req) {
		for (size_t i = 0; i < a->npeers; i++) {
			if (round_waits_for(a, a->peers[i])) {
				arm_grace(a);
				return;
			}
		}
	} else if (a->round_timed_out) {
		for (size_t i = 0; i < a->npeers; i++) {
			if (round_waits_for(a, a->peers[i])) {
				macc_info(a->peers[i]->name,
					  "round %llu timed out waiting for its state",
					  (unsigned long long)a->round);
			}
		}
	}
	do_step(a);
}

void agent_on_state(struct peer *p, const struct macc_state *st, const struct macc_session *sess)
{
	struct macc_agent *a = p->agent;

	switch (inbox_accept(a, p, st, sess)) {
	case INBOX_LATE:
		macc_debug(p->name, "state for round %llu arrived after its round: ignored",
			   (unsigned long long)st->round);
		break;
	case INBOX_HAVE:
		return;
	case INBOX_STORED:
		break;
	}
	agent_post(a, EV_CHECK_ROUND);
}

void agent_on_peer_change(struct macc_agent *a)
{
	/* standardize.c: a dead neighbour ends an agreement step too */
	agent_post(a, EV_CHECK_ROUND | EV_STD_CHECK);
}

/* standardize.c, when the transform is known (from its timer or a STATS just read): round 0
 * starts on the loop's next turn. */
void agent_on_standardized(struct macc_agent *a)
{
	agent_post(a, EV_START_ROUND);
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
	agent_post(a, EV_CHECK_ROUND);
}

void round_request_shutdown(struct macc_agent *a, const char *why)
{
	if (a->shutdown_req || a->shutting_down) {
		return;
	}
	macc_info(NULL, "%s: finishing the round, checkpointing, leaving", why);
	macc_notify("STOPPING=1");
	a->shutdown_req = true;
	if (a->phase == PH_WAIT) {
		round_check(a); /* finish the round with the states that arrived */
		return;
	}
	if (a->phase != PH_NONE) {
		return; /* the job's completion continues */
	}
	if (a->state != MACC_CTL_STATE_DONE && a->state != MACC_CTL_STATE_ERROR) {
		a->job.ckpt_round = a->round;
		if (job_queue(a, JOB_CKPT, PH_JOB) == 0) {
			return;
		}
	}
	agent_shutdown(a);
}

static int req_start(struct macc_agent *a, struct macc_errmsg *err)
{
	if (a->state == MACC_CTL_STATE_TRAINING) {
		/* Documented as bad-state (ctl.h, macc-ctl(8)): scripts learn it was already
		 * running. */
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
	round_start(a);
	return 0;
}

static int req_stop(struct macc_agent *a, struct macc_errmsg *err)
{
	if (a->state != MACC_CTL_STATE_TRAINING && a->state != MACC_CTL_STATE_PAUSED) {
		return macc_errf(err, MACC_ESTATE, "not training");
	}
	if (a->phase == PH_NONE) {
		a->state = MACC_CTL_STATE_IDLE;
		a->stopped_training = true;
		a->job.ckpt_round = a->round;
		job_queue(a, JOB_CKPT, PH_JOB);
		return 0;
	}
	a->stop_req = true;
	return 0;
}

static int req_resume(struct macc_agent *a, struct macc_errmsg *err)
{
	if (a->state == MACC_CTL_STATE_TRAINING) {
		a->pause_req = false;
		return 0;
	}
	if (a->state != MACC_CTL_STATE_PAUSED) {
		return macc_errf(err, MACC_ESTATE, "not paused");
	}
	a->state = MACC_CTL_STATE_TRAINING;
	macc_info(NULL, "resumed at round %llu", (unsigned long long)a->round);
	round_start(a);
	return 0;
}

/* An operator's request (control socket): done now between rounds, else at the round's end
 * (round_after_job). */
int round_request(struct macc_agent *a, enum round_req r, struct macc_errmsg *err)
{
	switch (r) {
	case ROUND_REQ_START:
		return req_start(a, err);
	case ROUND_REQ_STOP:
		return req_stop(a, err);
	case ROUND_REQ_PAUSE:
		if (a->state != MACC_CTL_STATE_TRAINING) {
			return macc_errf(err, MACC_ESTATE, "not training");
		}
		a->pause_req = true;
		return 0;
	case ROUND_REQ_RESUME:
		return req_resume(a, err);
	case ROUND_REQ_CHECKPOINT:
		if (a->phase == PH_NONE) {
			a->job.ckpt_round = a->round;
			return job_queue(a, JOB_CKPT, PH_JOB);
		}
		a->ckpt_req = true;
		return 0;
	case ROUND_REQ_EVAL:
		if (a->phase == PH_NONE) {
			return job_queue(a, JOB_EVAL, PH_JOB);
		}
		a->eval_req = true;
		return 0;
	}
	return macc_errf(err, -EINVAL, "unknown request");
}
