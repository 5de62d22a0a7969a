/*
 * standardize.c - the standardisation phase of macc-agentd: before round 0 the agents agree on
 * the feature transform (x - mean) * inv_std without sharing data (macc/agree.h,
 * macc-algorithms(7) STANDARDISATION), then every model object of the agent applies it.
 *
 * Where the transform comes from, in this order:
 *   1. the checkpoint the agent resumes from (version 2 carries it): no agreement, no STATS;
 *   2. the agreement: S average steps over the neighbours' [count, sum, sumsq] then D exact
 *      steps over their float32 estimates, one STATS per neighbour and step. A step ends when
 *      every due neighbour's vector of that step arrived, or the neighbour is dead, or refused
 *      for another S or D, or the step's time ran out (round_timeout_ms in the average phase,
 *      dead_peer_timeout_ms in the exact one); a missing vector is folded (average) or left out
 *      (exact). The row of weights is the training round's (edge_row), set before every step,
 *      so a fault-free fleet computes what macc-sim computes, bit for bit;
 *   3. a neighbour that finished: its STATS of step S + D carries the agreed transform, sent
 *      once on every session established after the agreement; an agent still agreeing adopts
 *      it at once (a late joiner).
 * Until the transform is known, the round driver's gate (round_start: std_ready) holds round 0
 * back; a STATE of round 0 that arrives meanwhile waits in its slot. The result is set on the
 * models on the loop with no worker job in flight (the gate runs only then).
 *
 * Neighbours that do not standardise (standardize = no, or an older daemon) are refused at the
 * handshake by the HELLO flag MACC_HELLO_F_STANDARDIZE (macc-protocol(7)), so they never stall
 * the agreement; a neighbour with another S or D is found by its first STATS (signed, so not
 * forged in transit), counted as `config` and no longer waited for.
 *
 * Neighbours are remembered by public key when the agreement begins (the agent index order), so
 * a reload that adds or removes peers meanwhile cannot shift them: a removed one is missing, a
 * new one is not part of this agreement (its weight stays with the agent).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "checkpoint.h"
#include "standardize.h"

#define STD_TICK_MS 100

static bool running(const struct std_phase *s)
{
	return s->ag_made && !macc_agree_done(&s->ag);
}

/* The agreement's neighbour i as a peer now, or NULL when a reload removed it. */
static struct peer *nb_peer(const struct macc_agent *a, size_t i)
{
	int k = macc_pubkey_find(a->allow, a->npeers, &a->std.keys[i]);

	return k >= 0 ? a->peers[k] : NULL;
}

/* The agreement's index of peer p, or -1. */
static int nb_index(const struct macc_agent *a, const struct macc_pubkey *key)
{
	for (size_t i = 0; i < a->std.nnb; i++) {
		if (memcmp(&a->std.keys[i], key, sizeof(*key)) == 0) {
			return (int)i;
		}
	}
	return -1;
}

static double *slot_of(const struct std_phase *s, size_t i, uint64_t step)
{
	return s->slot + (i * s->nslot + step % s->nslot) * s->len;
}

static bool have(const struct std_phase *s, size_t i, uint64_t step)
{
	return s->slot_step[i * s->nslot + step % s->nslot] == step;
}

/* ---- set-up, checkpoints ------------------------------------------------------------------- */

/* D: configured, else the diameter of the topology, else a path over the shard count. */
static int resolve_d(struct macc_agent *a, struct macc_errmsg *err)
{
	const struct macc_config *c = &a->cfg;
	const struct edge *e = &a->edge;
	int rc;

	if (c->standardize_diameter > 0) {
		a->std.D = c->standardize_diameter;
		return 0;
	}
	if (e->graph_made || e->dg_made) {
		rc = macc_agree_diameter(e->dg_made ? e->dg.adj : e->graph.adj, e->nagents,
					 &a->std.D);
		return rc < 0 ? macc_errf(err, rc, "%s: standardize: the diameter of topology '%s' "
					  "(%s)", c->file, c->topology, macc_strerror(rc)) : 0;
	}
	if (c->has_shard) {
		a->std.D = c->shard_count > 0 ? c->shard_count - 1 : 0;
		return 0;
	}
	return macc_errf(err, MACC_ECONFIG, "%s: standardize needs standardize_diameter (or "
			 "topology, or shard)", c->file);
}

int std_setup(struct macc_agent *a, struct macc_errmsg *err)
{
	struct std_phase *s = &a->std;
	const struct macc_config *c = &a->cfg;
	size_t need;
	int rc;

	s->on = c->standardize == MACC_CONFIG_STD_YES ||
		(c->standardize == MACC_CONFIG_STD_AUTO && macc_agree_default_on(c->data));
	s->source = s->on ? STD_PENDING : STD_OFF;
	if (!s->on) {
		return 0;
	}
	s->dim = macc_model_input_dim(a->eval_model);
	s->len = macc_feature_stats_len(s->dim);
	s->S = c->standardize_rounds;
	if (c->npeers == 0) {
		s->S = s->D = 0; /* alone: the exact transform of its own data */
	} else {
		rc = resolve_d(a, err);
		if (rc < 0) {
			return rc;
		}
	}
	s->mean = calloc(2 * s->dim, sizeof(float));
	if (s->mean == NULL) {
		return macc_errf(err, -ENOMEM, "out of memory for the standardisation");
	}
	s->inv = s->mean + s->dim;
	macc_ratelimit_init(&s->rl, 10000, 5);
	/* A STATS frame carries 8 (1 + 2d) value bytes: the frame limit must let it in. */
	need = 8 * s->len + 1024;
	a->frame_max = need > a->frame_max ? need : a->frame_max;
	return 0;
}

void std_ckpt_prepare(struct macc_agent *a, struct macc_ckpt *c)
{
	if (a->std.on) {
		c->std_dim = a->std.dim;
		c->std_mean = a->std.mean;
		c->std_inv = a->std.inv;
	}
}

/* The transform on every model object of the agent (loop, no job in flight). */
static int apply(struct macc_agent *a)
{
	struct std_phase *s = &a->std;
	int rc;

	rc = macc_model_set_standardizer(macc_learner_model(&a->learner), s->mean, s->inv);
	if (rc == 0) {
		rc = macc_model_set_standardizer(a->eval_model, s->mean, s->inv);
	}
	s->pending_apply = false;
	return rc;
}

int std_ckpt_loaded(struct macc_agent *a, const struct macc_ckpt *c, struct macc_errmsg *err)
{
	struct std_phase *s = &a->std;
	int rc;

	if (c->has_std != s->on && (c->has_std || c->round > 0)) {
		/* The config hash covers standardize, so only a checkpoint written by hand (or
		 * before the agreement ended, at round 0: then it agrees again) gets here. */
		return macc_errf(err, MACC_EMODEL, "checkpoint at round %llu %s a feature "
				 "standardiser but this configuration %s", (unsigned long long)c->round,
				 c->has_std ? "has" : "has no", s->on ? "standardises" : "does not");
	}
	if (!c->has_std) {
		return 0;
	}
	s->source = STD_CHECKPOINT;
	s->digest = macc_params_digest(s->mean, 2 * s->dim);
	rc = apply(a);
	if (rc < 0) {
		return macc_errf(err, rc, "checkpoint: its feature standardiser does not apply");
	}
	macc_info(NULL, "standardisation from the checkpoint (no agreement), transform digest "
		  "%016llx", (unsigned long long)s->digest);
	return 0;
}

void std_ckpt_fill(const struct macc_agent *a, struct macc_ckpt *c)
{
	const float *m, *i;

	c->has_std = macc_model_standardizer(macc_learner_model(&a->learner), &m, &i);
	if (c->has_std) {
		c->std_dim = a->std.dim;
		c->std_mean = (float *)m; /* save only reads them */
		c->std_inv = (float *)i;
	}
}

/* ---- sending --------------------------------------------------------------------------------- */

static bool sends_to(const struct macc_agent *a, const struct peer *p)
{
	return !a->edge.pushsum || p->out_nb;
}

/* The current vector (or, once done, the agreed transform) to neighbour i, once per session. */
static void send_one(struct macc_agent *a, size_t i)
{
	struct std_phase *s = &a->std;
	struct peer *p = nb_peer(a, i);
	uint64_t t = macc_agree_step_no(&s->ag);
	struct macc_stats_out so = {.step = t, .avg_steps = s->S, .exact_steps = s->D};

	if (p == NULL || p->conn == NULL || p->conn->state != CONN_UP || !sends_to(a, p) ||
	    (s->sent_on[i] == p->conn && s->sent_step[i] == t + 1)) {
		return;
	}
	so.n = macc_agree_outgoing(&s->ag, &so.values);
	if (peer_send_stats(p, &so) == 0) {
		s->stats_sent_total++;
	}
	s->sent_on[i] = p->conn;
	s->sent_step[i] = t + 1;
}

static void send_all(struct macc_agent *a)
{
	for (size_t i = 0; i < a->std.nnb; i++) {
		send_one(a, i);
	}
}

/* ---- the steps ------------------------------------------------------------------------------ */

static void finish(struct macc_agent *a, enum std_source src)
{
	struct std_phase *s = &a->std;
	uint64_t c[MACC_AGREE_NREASONS], refused = 0;

	(void)macc_agree_result(&s->ag, s->mean, s->inv);
	macc_agree_counts(&s->ag, c);
	for (int k = MACC_AGREE_MALFORMED; k < MACC_AGREE_NREASONS; k++) {
		refused += c[k];
	}
	s->source = src;
	s->digest = macc_params_digest(s->mean, 2 * s->dim);
	s->pending_apply = true;
	if (s->timer_init) {
		uv_timer_stop(&s->timer);
	}
	if (src == STD_ADOPTED) {
		macc_info(NULL, "standardisation adopted from %s (it agreed before this agent "
			  "joined), transform digest %016llx", s->from,
			  (unsigned long long)s->digest);
	} else {
		macc_info(NULL, "standardisation agreed after %u + %u steps (%llu refused), "
			  "transform digest %016llx", s->S, s->D, (unsigned long long)refused,
			  (unsigned long long)s->digest);
	}
	agent_on_standardized(a);
}

/* Is neighbour i's vector of step t still worth waiting for? */
static bool waiting(const struct macc_agent *a, size_t i, uint64_t t)
{
	const struct std_phase *s = &a->std;
	const struct peer *p = nb_peer(a, i);

	if (p == NULL || p->dead || s->skip[i] || have(s, i, t)) {
		return false;
	}
	if (s->hello_off[i] && p->conn == NULL) {
		return false; /* refused at the handshake for standardize, not up since */
	}
	return !a->edge.pushsum || p->in_nb; /* push-sum: in-neighbours only */
}

static bool step_due(const struct macc_agent *a)
{
	const struct std_phase *s = &a->std;
	uint64_t t = macc_agree_step_no(&s->ag);
	uint64_t limit = t < s->S ? a->cfg.round_timeout_ms : a->cfg.dead_peer_timeout_ms;

	if (macc_now_ms() - s->step_ms >= limit) {
		return true;
	}
	for (size_t i = 0; i < s->nnb; i++) {
		if (waiting(a, i, t)) {
			return false;
		}
	}
	return true;
}

/* The training round's row (edge.c), mapped onto the agreement's neighbours. */
static void set_row(struct macc_agent *a)
{
	struct std_phase *s = &a->std;
	double self_w, row[MACC_CONFIG_MAX_PEERS + 1], w[MACC_CONFIG_MAX_PEERS + 1];

	edge_row(a, &self_w, row);
	for (size_t k = 0; k < a->npeers; k++) {
		if (nb_index(a, &a->peers[k]->key) < 0) {
			self_w += row[k]; /* joined by a reload: not part of this agreement */
		}
	}
	for (size_t i = 0; i < s->nnb; i++) {
		int k = macc_pubkey_find(a->allow, a->npeers, &s->keys[i]);

		w[i] = k >= 0 ? row[k] : 0.0;
	}
	macc_agree_set_row(&s->ag, self_w, w);
}

static int reason_code(enum macc_agree_reason r)
{
	switch (r) {
	case MACC_AGREE_NONFINITE:
		return MACC_ENONFINITE;
	case MACC_AGREE_RANGE:
	case MACC_AGREE_FAR:
		return MACC_ERANGE;
	default:
		return MACC_EMALFORMED;
	}
}

static void do_step(struct macc_agent *a)
{
	struct std_phase *s = &a->std;
	struct macc_agree_in in[MACC_CONFIG_MAX_PEERS + 1];
	uint64_t t = macc_agree_step_no(&s->ag);
	size_t n = macc_agree_nvalues(&s->ag.cfg, t);

	set_row(a);
	for (size_t i = 0; i < s->nnb; i++) {
		in[i] = (struct macc_agree_in){have(s, i, t), slot_of(s, i, t), n};
	}
	macc_agree_step(&s->ag, in, NULL);
	for (size_t i = 0; i < s->nnb; i++) {
		enum macc_agree_reason r = macc_agree_outcome(&s->ag, i);
		struct peer *p = nb_peer(a, i);
		char why[160];

		s->slot_step[i * s->nslot + t % s->nslot] = UINT64_MAX;
		if (r == MACC_AGREE_OK || r == MACC_AGREE_MISSING || p == NULL) {
			continue;
		}
		s->refused_total++;
		snprintf(why, sizeof(why), "STATS of step %llu refused by the screening (%s): left "
			 "out of the standardisation", (unsigned long long)t,
			 macc_agree_reason_name(r));
		peer_reject(p, reason_code(r), why);
	}
	s->step_ms = macc_now_ms();
	macc_debug(NULL, "standardisation step %llu of %u done", (unsigned long long)t + 1,
		   s->S + s->D);
}

/* Take every step that can end now (bounded by S + D). */
static void check(struct macc_agent *a)
{
	struct std_phase *s = &a->std;

	while (running(s) && step_due(a)) {
		do_step(a);
		if (macc_agree_done(&s->ag)) {
			finish(a, STD_AGREED);
			return;
		}
		send_all(a);
	}
}

static void on_timer(uv_timer_t *t)
{
	check(t->data);
}

static int alloc_run(struct std_phase *s, size_t nnb, bool pushsum)
{
	s->nnb = nnb;
	s->nslot = pushsum ? (s->D < 62 ? s->D : 62) + 2 : 2;
	s->keys = calloc(nnb + 1, sizeof(*s->keys));
	s->slot = calloc((nnb + 1) * s->nslot * s->len, sizeof(double));
	s->slot_step = malloc((nnb + 1) * s->nslot * sizeof(uint64_t));
	s->sent_on = calloc(nnb + 1, sizeof(*s->sent_on));
	s->sent_step = calloc(nnb + 1, sizeof(uint64_t));
	s->skip = calloc(nnb + 1, sizeof(bool));
	s->hello_off = calloc(nnb + 1, sizeof(bool));
	if (!s->keys || !s->slot || !s->slot_step || !s->sent_on || !s->sent_step || !s->skip ||
	    !s->hello_off) {
		return -ENOMEM;
	}
	memset(s->slot_step, 0xff, (nnb + 1) * s->nslot * sizeof(uint64_t));
	return 0;
}

/* The agreement begins: the statistics of the learner's own rows. */
static int begin(struct macc_agent *a, struct macc_errmsg *err)
{
	struct std_phase *s = &a->std;
	struct macc_agree_cfg ac = {.dim = s->dim, .avg_steps = s->S, .exact_steps = s->D,
				    .nnb = a->npeers};
	const uint32_t *idx = NULL;
	size_t n = 0;
	double *st = malloc(s->len * sizeof(double));
	int rc = st == NULL ? -ENOMEM : alloc_run(s, a->npeers, a->edge.pushsum);

	s->begun = true;
	if (rc < 0) {
		free(st);
		return macc_errf(err, rc, "out of memory for the standardisation");
	}
	if (a->part_made) {
		uint32_t k = a->cfg.shard_index;

		idx = a->part.indices + a->part.offsets[k];
		n = a->part.offsets[k + 1] - a->part.offsets[k];
	}
	macc_feature_stats_compute(&a->train, idx, n, st);
	rc = macc_agree_init(&s->ag, &ac, st, err);
	free(st);
	if (rc < 0) {
		return rc;
	}
	s->ag_made = true;
	for (size_t i = 0; i < a->npeers; i++) {
		s->keys[i] = a->peers[i]->key;
	}
	s->step_ms = macc_now_ms();
	macc_info(NULL, "standardisation: agreeing on %zu features with %zu neighbours (%u average "
		  "+ %u exact steps)", s->dim, s->nnb, s->S, s->D);
	if (macc_agree_done(&s->ag)) {
		finish(a, STD_AGREED);
		return 0;
	}
	uv_timer_init(a->loop, &s->timer);
	s->timer.data = a;
	s->timer_init = true;
	uv_timer_start(&s->timer, on_timer, STD_TICK_MS, STD_TICK_MS);
	send_all(a);
	check(a);
	return 0;
}

bool std_ready(struct macc_agent *a)
{
	struct std_phase *s = &a->std;
	struct macc_errmsg e;
	int rc;

	if (!s->on || (s->source != STD_PENDING && !s->pending_apply)) {
		return true;
	}
	if (!s->begun) {
		rc = begin(a, &e);
		if (rc < 0) {
			snprintf(a->last_error, sizeof(a->last_error), "standardisation: %.200s", e.text);
			macc_error(NULL, "%s: not training", a->last_error);
			a->state = MACC_CTL_STATE_IDLE;
			return false;
		}
	}
	if (!s->pending_apply) {
		return false;
	}
	rc = apply(a);
	if (rc < 0) {
		snprintf(a->last_error, sizeof(a->last_error), "standardisation: the transform "
			 "does not apply (%s)", macc_strerror(rc));
		macc_error(NULL, "%s: not training", a->last_error);
		a->state = MACC_CTL_STATE_IDLE;
		return false;
	}
	return true;
}

/* ---- events ------------------------------------------------------------------------------- */

void std_on_session_up(struct peer *p)
{
	struct macc_agent *a = p->agent;
	struct std_phase *s = &a->std;
	int i = s->ag_made ? nb_index(a, &p->key) : -1;

	if (i < 0) {
		return;
	}
	s->hello_off[i] = false;
	s->sent_on[i] = NULL; /* a new session gets the current vector (or the result) again */
	send_one(a, (size_t)i);
	agent_post(a, EV_STD_CHECK);
}

void std_on_peer_change(struct macc_agent *a)
{
	check(a);
}

/* A neighbour's agreed transform (step S + D): adopted when this agent is still agreeing. */
static void adopt(struct macc_agent *a, struct peer *p, const struct macc_stats *st)
{
	struct std_phase *s = &a->std;
	struct macc_errmsg e;
	double *v;
	int rc;

	if (st->n != 2 * s->dim) {
		peer_reject(p, MACC_EMALFORMED, "STATS of the agreed transform with another size");
		return;
	}
	v = malloc(st->n * sizeof(double));
	if (v == NULL) {
		return;
	}
	macc_f64le_load(v, st->values, st->n);
	rc = macc_agree_adopt(&s->ag, v, st->n, &e);
	free(v);
	if (rc < 0) {
		s->refused_total++;
		peer_reject(p, rc, e.text);
		return;
	}
	snprintf(s->from, sizeof(s->from), "%s", p->name);
	finish(a, STD_ADOPTED);
}

/* A vector of step t .. t + nslot - 1 into its slot; older ones are dropped (a step that ended
 * without it). */
static void store(struct macc_agent *a, struct peer *p, size_t i, const struct macc_stats *st)
{
	struct std_phase *s = &a->std;
	uint64_t t = macc_agree_step_no(&s->ag);

	if (st->step < t || st->step >= t + s->nslot) {
		macc_debug(p->name, "STATS of step %llu at step %llu: dropped",
			   (unsigned long long)st->step, (unsigned long long)t);
		return;
	}
	if (st->n != macc_agree_nvalues(&s->ag.cfg, st->step)) {
		s->refused_total++;
		peer_reject(p, MACC_EMALFORMED, "STATS with another number of values than its "
			    "step carries");
		return;
	}
	macc_f64le_load(slot_of(s, i, st->step), st->values, st->n);
	s->slot_step[i * s->nslot + st->step % s->nslot] = st->step;
	agent_post(a, EV_STD_CHECK); /* from a session's read: the step ends on the next turn */
}

void std_on_stats(struct conn *c, const struct macc_stats *st)
{
	struct macc_agent *a = c->agent;
	struct std_phase *s = &a->std;
	struct peer *p = c->peer;
	struct macc_errmsg e;
	char why[200];
	int i, rc;

	e.text[0] = '\0';
	rc = macc_session_accept_stats(&c->session, st, &e);
	if (rc < 0) {
		peer_reject(p, rc, e.text[0] ? e.text : macc_strerror(rc));
		return;
	}
	s->stats_received_total++;
	if (!s->on || st->avg_steps != s->S || st->exact_steps != s->D) {
		if (s->on) {
			snprintf(why, sizeof(why), "peer standardises with S=%u, D=%u; this agent "
				 "with S=%u, D=%u (standardize_rounds, standardize_diameter): not "
				 "waited for", st->avg_steps, st->exact_steps, s->S, s->D);
		} else {
			snprintf(why, sizeof(why), "STATS, but this agent does not standardise");
		}
		s->refused_total++;
		peer_reject(p, MACC_ECONFIG, why);
		i = s->ag_made ? nb_index(a, &p->key) : -1;
		if (i >= 0) {
			s->skip[i] = true;
			agent_post(a, EV_STD_CHECK);
		}
		return;
	}
	i = nb_index(a, &p->key);
	if (!running(s) || i < 0) {
		return; /* from a checkpoint, or done: its vector is not needed */
	}
	if (st->step == (uint64_t)s->S + s->D) {
		adopt(a, p, st);
	} else {
		store(a, p, (size_t)i, st);
	}
}

/* ---- HELLO ------------------------------------------------------------------------------- */

uint32_t std_hello_flags(const struct macc_agent *a)
{
	return a->std.on ? MACC_HELLO_F_STANDARDIZE : 0;
}

int std_check_hello(struct macc_agent *a, const struct macc_hello *h, struct macc_errmsg *err)
{
	bool peer_on = (h->flags & MACC_HELLO_F_STANDARDIZE) != 0;
	int i;

	if (peer_on == a->std.on) {
		return 0;
	}
	/* Not waited for while it has no session (the HELLO is not proven yet: a forged one can
	 * only make the agent fold a neighbour that is not up anyway). */
	i = a->std.ag_made ? nb_index(a, &h->key) : -1;
	if (i >= 0) {
		a->std.hello_off[i] = true;
		agent_post(a, EV_STD_CHECK);
	}
	return macc_errf(err, MACC_ECONFIG, "peer '%s' %s its features and agent '%s' %s: every "
			 "agent of a fleet must have the same standardize", h->name,
			 peer_on ? "standardises" : "does not standardise (standardize = no, or an "
			 "older macc-agentd)", a->cfg.name, a->std.on ? "does" : "does not");
}

/* ---- status ------------------------------------------------------------------------------- */

void std_status(const struct macc_agent *a, struct macc_ctl_status *st)
{
	const struct std_phase *s = &a->std;

	switch (s->source) {
	case STD_OFF:
		snprintf(st->standardize, sizeof(st->standardize), "off");
		break;
	case STD_PENDING:
		snprintf(st->standardize, sizeof(st->standardize), "agreeing (step %llu of %u)",
			 (unsigned long long)(s->ag_made ? macc_agree_step_no(&s->ag) : 0),
			 s->S + s->D);
		break;
	case STD_AGREED:
		snprintf(st->standardize, sizeof(st->standardize), "agreed (%u + %u steps)", s->S,
			 s->D);
		break;
	case STD_CHECKPOINT:
		snprintf(st->standardize, sizeof(st->standardize), "from checkpoint");
		break;
	case STD_ADOPTED:
		snprintf(st->standardize, sizeof(st->standardize), "adopted from %.60s", s->from);
		break;
	}
	if (s->source != STD_OFF && s->source != STD_PENDING) {
		snprintf(st->standardize_digest, sizeof(st->standardize_digest), "%016llx",
			 (unsigned long long)s->digest);
	}
	st->standardize_refused_total = s->refused_total;
}

static void on_timer_closed(uv_handle_t *h)
{
	(void)h;
}

void std_shutdown(struct macc_agent *a)
{
	if (a->std.timer_init && !uv_is_closing((uv_handle_t *)&a->std.timer)) {
		uv_close((uv_handle_t *)&a->std.timer, on_timer_closed);
	}
}

void std_finish(struct macc_agent *a)
{
	struct std_phase *s = &a->std;

	if (s->ag_made) {
		macc_agree_finish(&s->ag);
		s->ag_made = false;
	}
	free(s->mean);
	free(s->keys);
	free(s->slot);
	free(s->slot_step);
	free(s->sent_on);
	free(s->sent_step);
	free(s->skip);
	free(s->hello_off);
	s->hello_off = NULL;
	s->mean = s->inv = NULL;
	s->keys = NULL;
	s->slot = NULL;
	s->slot_step = s->sent_step = NULL;
	s->sent_on = NULL;
	s->skip = NULL;
}
