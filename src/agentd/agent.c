/*
 * agent.c - one macc agent: its lifecycle (start-up, run, shutdown, teardown), the handles it
 * owns (timers, signals, the deferred-event idle handle), the progress it publishes, and what
 * the other rooms of the daemon share. The rooms (agent.h lists them with what each owns): the
 * round driver (round.c), the worker jobs (jobs.c), reload (reload.c), the control operations
 * (ctlops.c), the peers and their sessions (peer.c), the daemon's side of the mixer (edge.c).
 *
 * Deferred events: a callback from the network (a state arrived, a session came up or went)
 * never calls back into the round driver under its caller's feet: it posts an event
 * (agent_post: a bit in a->pending and the idle handle started) and the loop handles it on its
 * next turn (on_defer). So conn_close never reaches a step, and a send that drops a slow
 * session never runs inside that session's read callback.
 *
 * Several agents can live in one process and one loop (the in-process tests: opts.loop): the
 * agent has no file-scope mutable state, and at teardown it closes only its own handles.
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

#include "agent.h"
#include "check.h"
#include "checkpoint.h"
#include "notify.h"

#ifndef MACC_VERSION
#define MACC_VERSION "0.1.0"
#endif

/* ---- helpers --------------------------------------------------------------------------- */


static uint32_t shard_index(const struct macc_agent *a)
{
	return a->cfg.has_shard ? a->cfg.shard_index : 0;
}

double agent_epoch(const struct macc_agent *a, uint64_t round)
{
	return macc_learner_epoch(&a->learner, round);
}

uint32_t agent_peers_up(const struct macc_agent *a)
{
	uint32_t n = 0;

	for (size_t i = 0; i < a->npeers; i++) {
		n += a->peers[i]->conn != NULL;
	}
	return n;
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
		 (unsigned long long)a->total_rounds, agent_epoch(a, a->round), loss, acc,
		 agent_peers_up(a), a->npeers);
	macc_notify(msg);
	a->last_status_ms = now;
	a->status_state = a->state;
}

void agent_publish(struct macc_agent *a, bool final)
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
	pr.epoch = agent_epoch(a, a->round);
	pr.epochs_planned = agent_epoch(a, a->total_rounds);
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

/* A new copy of the model for `model` and `predict` (publish.h) when publish.h's rule says so
 * and the worker is idle: at a round boundary (round.c, the step job just done) or before
 * answering one of those requests (ctlops.c: idle when no job is in flight and no round is
 * half-way). */
void agent_publish_model(struct macc_agent *a, bool request, bool idle)
{
	uint64_t now = macc_now_ms();

	if (pub_due(a->pub, a->round, request, now) && idle) {
		pub_take(a->pub, edge_model(a), a->round, macc_learner_model(&a->learner), now);
	}
}

/* ---- timers, signals and deferred events ----------------------------------------------- */

static void handles_close(struct macc_agent *a);

static void on_tick(uv_timer_t *t)
{
	struct macc_agent *a = t->data;

	peers_tick(a);
	if (a->state == MACC_CTL_STATE_TRAINING && macc_now_ms() - a->last_publish_ms > 2000) {
		agent_publish(a, false);
	}
}

/* The loop's turn after callbacks posted events: handle them (none can be lost: a bit posted
 * while they are handled starts the idle handle again). */
static void on_defer(uv_idle_t *h)
{
	struct macc_agent *a = h->data;
	unsigned ev = a->pending;

	a->pending = 0;
	uv_idle_stop(h);
	if (a->shutting_down) {
		return;
	}
	if (ev & EV_STD_CHECK) {
		std_on_peer_change(a); /* standardize.c: a dead neighbour ends an agreement step too */
	}
	if (ev & EV_CHECK_ROUND) {
		round_check(a);
	}
	if (ev & EV_START_ROUND) {
		round_start(a);
	}
}

void agent_post(struct macc_agent *a, unsigned ev)
{
	if (a->shutting_down || uv_is_closing((uv_handle_t *)&a->defer)) {
		return;
	}
	a->pending |= ev;
	uv_idle_start(&a->defer, on_defer);
}

static void on_close_noop(uv_handle_t *h)
{
	(void)h;
}

static void on_watchdog(uv_timer_t *t)
{
	(void)t;
	macc_notify("WATCHDOG=1");
}


void agent_shutdown(struct macc_agent *a)
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
	handles_close(a);
	macc_ctl_server_close(a->ctl, NULL, NULL);
	a->ctl = NULL;
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct macc_agent *a = s->data;

	if (signum == SIGHUP) {
		struct macc_errmsg e;
		if (agent_reload(a, &e) < 0) {
			macc_error(NULL, "reload refused: %s", e.text);
		}
		return;
	}
	round_request_shutdown(a, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- robust mixing and the audit trail --------------------------------------- */

void agent_log_robust(const struct macc_agent *a)
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
		  (unsigned long long)a->round, agent_epoch(a, a->round));
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

/*
 * The agent's own handles, initialised before anything can fail (so teardown closes a known set)
 * and started once start-up succeeded. Every timer of the daemon, and why it exists:
 *   round_timer      (agent, round.c)  armed when a round's wait starts, stopped at its step:
 *                    ends a wait for neighbours after round_timeout_ms.
 *   grace_timer      (agent, round.c)  armed when every neighbour a wait is for is down and in
 *                    its reconnect grace: wakes the wait when the first grace ends.
 *   pace_timer       (agent, conn.c)   max_rate: releases paced writes when the buckets allow.
 *   std.timer        (standardize.c)   100 ms while the standardisation agreement runs (its
 *                    step timeouts).
 *   tick_timer       (agent, 250 ms)   peer.c peers_tick: PING on idle sessions (keepalive,
 *                    RTT), a peer without traffic for dead_peer_timeout_ms declared dead, the
 *                    handshake deadline (handshake_timeout_ms), the drain deadline of a retired
 *                    duplicate session, the close deadline of a refused one; and the progress
 *                    published every 2 s while training.
 *   watchdog_timer   (agent)           WATCHDOG=1 to systemd at half its WatchdogSec.
 *   reconnect_timer  (peer, peer.c)    the next dial after a failed or lost session (backoff).
 *   client timers    (control.c)       a control client's idle timeout.
 * The idle handle `defer` runs the posted events (agent_post); it is active only while some
 * are pending.
 */
static int handles_init(struct macc_agent *a, const struct agent_opts *o)
{
	int rc = 0;

	a->loop = o->loop != NULL ? o->loop : &a->own_loop;
	if (o->loop == NULL) {
		rc = uv_loop_init(&a->own_loop);
		if (rc < 0) {
			return rc;
		}
	}
	uv_timer_init(a->loop, &a->round_timer);
	uv_timer_init(a->loop, &a->grace_timer);
	uv_timer_init(a->loop, &a->pace_timer);
	uv_timer_init(a->loop, &a->tick_timer);
	uv_timer_init(a->loop, &a->watchdog_timer);
	uv_idle_init(a->loop, &a->defer);
	a->round_timer.data = a->tick_timer.data = a->watchdog_timer.data = a;
	a->grace_timer.data = a->pace_timer.data = a;
	macc_pacer_init(&a->pacer, uv_hrtime());
	a->defer.data = a;
	if (!o->no_signals) {
		uv_signal_init(a->loop, &a->sig_term);
		uv_signal_init(a->loop, &a->sig_int);
		uv_signal_init(a->loop, &a->sig_hup);
		a->sig_term.data = a->sig_int.data = a->sig_hup.data = a;
	}
	a->handles_made = true;
	return 0;
}

static void handles_start(struct macc_agent *a)
{
	uint64_t wd = macc_notify_watchdog_interval_ms();

	uv_timer_start(&a->tick_timer, on_tick, 250, 250);
	if (wd > 0) {
		uv_timer_start(&a->watchdog_timer, on_watchdog, wd, wd);
	}
	if (!a->opts.no_signals) {
		uv_signal_start(&a->sig_term, on_signal, SIGTERM);
		uv_signal_start(&a->sig_int, on_signal, SIGINT);
		uv_signal_start(&a->sig_hup, on_signal, SIGHUP);
	}
}

static void close_handle(void *h)
{
	if (!uv_is_closing(h)) {
		uv_close(h, on_close_noop);
	}
}

/* Close the agent's own handles (not its peers' and connections': peer.c). */
static void handles_close(struct macc_agent *a)
{
	if (!a->handles_made) {
		return;
	}
	close_handle(&a->round_timer);
	close_handle(&a->grace_timer);
	close_handle(&a->pace_timer);
	std_shutdown(a); /* standardize.c: its timer */
	close_handle(&a->tick_timer);
	close_handle(&a->watchdog_timer);
	close_handle(&a->defer);
	if (!a->opts.no_signals) {
		close_handle(&a->sig_term);
		close_handle(&a->sig_int);
		close_handle(&a->sig_hup);
	}
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
	rc = handles_init(a, o);
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
	agent_log_robust(a);
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
	rc = macc_ctl_server_create(a->loop, &so, &agent_ctl_ops, a, &a->ctl, err);
	if (rc < 0) {
		return rc;
	}
	peers_set_rates(a); /* max_rate (conn.c) */
	handles_start(a);
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
		round_finish_run(a);
	} else {
		a->state = MACC_CTL_STATE_TRAINING;
		macc_info(NULL, "training from round %llu", (unsigned long long)a->round);
		round_start(a);
	}
	if (a->loop == &a->own_loop) {
		uv_run(a->loop, UV_RUN_DEFAULT);
	}
	return a->exit_code;
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
		peer_close_listener(a);
		macc_ctl_server_close(a->ctl, NULL, NULL);
		a->ctl = NULL;
		handles_close(a);
		if (a->loop == &a->own_loop) {
			uv_walk(a->loop, walk_close, NULL);
		}
	}
	if (a->loop == NULL) {
		goto release; /* nothing was made */
	}
	/* On a shared loop (the in-process tests) this runs the other agents too, until every
	 * handle of the loop is closed: they are shut down together, then the loop is closed by
	 * its owner. */
	uv_run(a->loop, UV_RUN_DEFAULT);
	if (a->loop == &a->own_loop && uv_loop_close(a->loop) != 0) {
		macc_debug(NULL, "event loop still had handles at exit");
	}
release:
	for (size_t i = 0; i < a->npeers; i++) {
		peer_free(a->peers[i]);
	}
	for (size_t i = 0; i < a->ngraveyard; i++) {
		peer_free(a->graveyard[i]);
	}
	free(a->peers);
	free(a->allow);
	free(a->graveyard);
	shared_body_unref(a->body);
	jobs_finish(a);
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
