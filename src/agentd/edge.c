/*
 * edge.c - the daemon's side of the mixer (macc/mixer.h): the mixing options and the graph the
 * daemon knows, the agent numbers of its peers, and what goes into and comes out of a round's
 * step. The round itself is composed by the mixer and the learner, the modules macc-sim runs,
 * so a fault-free loopback fleet ends bit-identical to `macc-sim` with the same settings. This
 * file only translates: slots of received states into struct macc_mixer_in, the mixer's
 * outgoing state into a STATE body, and the step's report into counters, logs and resyncs.
 *
 * Agent numbers: with [train] topology set, this agent is number INDEX of `shard = INDEX/COUNT`
 * in the graph that `macc-sim --agents COUNT --topology SPEC --seed SEED` builds, and its
 * configured peers, in ascending public-key order (the order every daemon sums in), are its
 * neighbours in ascending agent number (for a directed graph: in- and out-neighbours together).
 * edge_map_peers checks the count; examples/ring-4/gen.sh makes keys in that order.
 *
 * Schedules: the round's partner is a pure function of (seed, round, configured graph)
 * (macc_schedule_partner), computed by every daemon alone at the start of the round and handed
 * to the mixer. Sessions stay up to every configured neighbour; the mixer says to whom STATE
 * goes and whose is waited for (macc_mixer_sends_to / _expects).
 *
 * Push-sum (algorithm sgp, or dmsgd on a directed "a -> b" topology file): x and v hold the
 * numerators z and u, the mixer the weight and the de-biased x = z / w, where the gradient is
 * taken and which is evaluated, digested and checkpointed. STATE carries w (body field "w") and
 * goes to the out-neighbours; the step waits for the in-neighbours. A missing in-neighbour (dead,
 * round timeout) is folded: its share goes to the agent's own numerators and weight alike, so
 * x = z / w stays a convex combination, but mass is lost (documented in macc-agentd(8)); a
 * restart resumes from the de-biased x with w = 1.
 *
 * Local steps H: the learner takes them in the gradient job; the body is then encoded after the
 * gradient (the simulator sends x after them).
 *
 * Compressed exchange (CHOCO): the body carries C(x - xhat) (and C(v - vhat) for dmsgd) as
 * compressor blobs (STATE enc = the compressor's tag); every receiver's mixer adds them to its
 * copy of the sender's public vectors at the round's step. Copies must see EVERY difference, in
 * order. Policy when they cannot (a lost message, a session that broke, a restarted neighbour):
 *   - receiver: the mixer keeps, per neighbour, whether its copy is in sync and which round's
 *     difference it expects next. A difference for any other round, or one arriving while out
 *     of sync, is never added: the neighbour is left out of that round and the session is
 *     closed with BYE MACC_ESTATE ("public copy out of sync"), so both sides reconnect at once.
 *     A round whose difference did not arrive leaves the copy out of sync.
 *   - sender: the first STATE on every new session is a full f32 resync state instead (enc 0:
 *     the sender's public copies xhat and vhat as of that round, exactly what every in-sync
 *     holder has), unless this agent started fresh at round 0 and has sent nothing to that
 *     neighbour yet (then the neighbour's copy is x^0, which a fresh agent holds too). A full
 *     state replaces the copy and puts it back in sync.
 * So a copy is either bit for bit the sender's public copy or not used at all: no silent
 * divergence. Public copies are not checkpointed: after a restart every copy is out of sync
 * until a resync state arrives, and the agent's own public copy restarts at its current x.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

/* ---- configuration ------------------------------------------------------------------------ */

/* The facts of config c that decide which options combine (mixer.h's one table). */
static int check_opts(const struct macc_agent *a, const struct macc_config *c, bool robust,
		      struct macc_errmsg *err)
{
	struct macc_mix_opts o = {
		.algo = c->algorithm,
		.pushsum = a->edge.pushsum,
		.no_graph = c->topology[0] == '\0',
		.schedule = c->schedule,
		.local_steps = c->local_steps,
		.compress = a->edge.comp.kind,
		.gossip_step = c->gossip_step > 0,
		.robust = robust,
		.explicit_weights = c->weights == MACC_CONFIG_WEIGHTS_EXPLICIT,
	};
	struct macc_errmsg e;
	int rc = macc_mixer_check_opts(&o, MACC_MIX_CONF, &e);

	return rc < 0 ? macc_errf(err, rc, "%s: %s", c->file, e.text) : 0;
}

/* The configured rule of robust mixing (macc-sim's rule, macc_mixer_robust_cfg). */
static int robust_of(const struct macc_config *c, struct macc_robust_cfg *ret, bool *ret_on,
		     struct macc_errmsg *err)
{
	struct macc_errmsg e;
	int rc = macc_mixer_robust_cfg(c->aggregation, c->has_screen_factor, c->screen_factor, ret,
				       ret_on, &e);

	return rc < 0 ? macc_errf(err, MACC_ECONFIG, "%s: aggregation = %s: %s", c->file,
				  c->aggregation, e.text) : 0;
}

/* The whole graph (topology set): undirected, or a directed edge list (push-sum). */
static int load_topology(struct macc_agent *a, struct macc_errmsg *err)
{
	struct edge *e = &a->edge;
	const struct macc_config *c = &a->cfg;
	struct macc_errmsg tmp;
	int rc;

	e->self_idx = c->shard_index;
	e->nagents = c->shard_count;
	if (e->pushsum) {
		rc = macc_digraph_create(c->topology, e->nagents, c->seed, &e->dg, err);
		e->dg_made = rc == 0;
		return rc;
	}
	rc = macc_graph_create(c->topology, e->nagents, c->seed, &e->graph, &tmp);
	if (rc == MACC_ESPEC && strncmp(c->topology, "file:", 5) == 0 &&
	    macc_digraph_create(c->topology, e->nagents, c->seed, &e->dg, err) == 0) {
		e->dg_made = true;
		e->pushsum = true; /* a directed edge list: the push-sum form */
		return 0;
	}
	if (rc < 0) {
		return macc_errf(err, rc, "topology: %s", tmp.text);
	}
	e->graph_made = true;
	return 0;
}

int edge_config(struct macc_agent *a, struct macc_errmsg *err)
{
	struct edge *e = &a->edge;
	const struct macc_config *c = &a->cfg;
	int rc;

	e->H = c->local_steps ? c->local_steps : 1;
	rc = macc_compress_parse(c->compress, &e->comp, err);
	if (rc < 0) {
		return rc;
	}
	e->compressed = e->comp.kind != MACC_COMPRESS_NONE;
	e->gamma = c->gossip_step > 0 ? (float)c->gossip_step
				      : macc_compress_default_gamma(&e->comp);
	e->varying = c->schedule != MACC_SCHEDULE_STATIC;
	e->pushsum = c->sgp;
	if (c->topology[0] != '\0') {
		rc = load_topology(a, err);
	}
	if (rc == 0) {
		rc = robust_of(c, &a->rcfg, &a->robust, err);
	}
	if (rc == 0) {
		rc = check_opts(a, c, a->robust, err);
	}
	if (rc == 0 && e->varying) {
		rc = macc_schedule_init(&e->sched, c->schedule, &e->graph, c->seed, err);
	}
	if (rc < 0) {
		return rc;
	}
	e->late_send = a->after_grad || e->H > 1;
	if (e->compressed) {
		size_t f;

		e->blob_cap = macc_compress_size(&e->comp, a->nparams);
		f = 512 + (a->sends_v ? 2 : 1) * e->blob_cap + 1024;
		a->frame_max = f > a->frame_max ? f : a->frame_max;
	}
	return 0;
}

/* A reload's new config against what runs: its robust rule, and whether that combines with the
 * running modes (which cannot change without a restart). */
int edge_check_reload(const struct macc_agent *a, const struct macc_config *nc,
		      struct macc_robust_cfg *ret_rcfg, bool *ret_robust, struct macc_errmsg *err)
{
	struct macc_robust_cfg rcfg;
	bool robust;
	int rc = robust_of(nc, &rcfg, &robust, err);

	if (rc == 0) {
		rc = check_opts(a, nc, robust, err);
	}
	if (rc == 0 && robust) {
		struct macc_errmsg e;

		rc = macc_agg_check_degree(&rcfg.agg, (uint32_t)nc->npeers, &e);
		if (rc < 0) {
			return macc_errf(err, rc, "%s: %s", nc->file, e.text);
		}
	}
	if (rc < 0) {
		return rc;
	}
	*ret_rcfg = rcfg;
	*ret_robust = robust;
	return 0;
}

/* The mixer, from x (the checkpoint's or x^0) at the current round. */
int edge_setup(struct macc_agent *a, bool fresh, struct macc_errmsg *err)
{
	struct edge *e = &a->edge;
	size_t n = a->nparams;
	struct macc_mixer_cfg mc = {
		.algo = a->algo,
		.pushsum = e->pushsum,
		.schedule = a->cfg.schedule,
		.comp = e->comp,
		.gamma = e->gamma,
		.robust = a->robust,
		.rcfg = a->rcfg,
		.n = n,
		.nnb = a->cfg.npeers,
	};
	struct macc_errmsg me;
	int rc;

	e->fresh = fresh;
	rc = macc_mixer_init(&a->mixer, &mc, a->x, a->round, fresh, &me);
	if (rc < 0) {
		return macc_errf(err, rc, "%s: %s", a->cfg.file, me.text);
	}
	if (e->compressed) {
		e->snap_x = calloc(n, sizeof(float));
		e->snap_v = calloc(n, sizeof(float));
		if (e->snap_x == NULL || e->snap_v == NULL) {
			return macc_errf(err, -ENOMEM, "out of memory for public copies");
		}
		macc_info(NULL, "compressed exchange: %s, gossip step %g, %zu bytes per vector",
			  a->cfg.compress, (double)e->gamma, e->blob_cap);
	}
	return 0;
}

/* Agent numbers of the configured neighbours (see the top of this file), told to the mixer. */
int edge_map_peers(struct macc_agent *a, struct macc_errmsg *err)
{
	struct edge *e = &a->edge;
	uint32_t n = e->nagents, j = e->self_idx;
	size_t k = 0;

	for (size_t i = 0; i < a->npeers; i++) {
		a->peers[i]->in_nb = a->peers[i]->out_nb = true;
	}
	if (!e->graph_made && !e->dg_made) {
		return 0;
	}
	for (uint32_t l = 0; l < n; l++) {
		bool out, in;

		if (e->dg_made) {
			out = e->dg.adj[(size_t)j * n + l] != 0;
			in = e->dg.adj[(size_t)l * n + j] != 0;
		} else {
			out = in = e->graph.adj[(size_t)j * n + l] != 0;
		}
		if (!out && !in) {
			continue;
		}
		if (k < a->npeers) {
			struct peer *p = a->peers[k];

			p->idx = l;
			p->out_nb = out;
			p->in_nb = in;
			p->outdeg = e->dg_made ? macc_digraph_outdeg(&e->dg, l) : 0;
			macc_mixer_set_link(&a->mixer, k, l, in, out);
		}
		k++;
	}
	if (k != a->npeers) {
		return macc_errf(err, MACC_ECONFIG, "topology '%s' gives agent %u (shard %u/%u) %zu "
				 "neighbours, the config has %zu [peer] sections", a->cfg.topology,
				 j, j, n, k, a->npeers);
	}
	for (size_t i = 0; i < a->npeers; i++) {
		macc_debug(a->peers[i]->name, "agent %u in topology '%s'%s%s", a->peers[i]->idx,
			   a->cfg.topology, a->peers[i]->in_nb ? ", sends to us" : "",
			   a->peers[i]->out_nb ? ", we send to it" : "");
	}
	return 0;
}

int edge_peer_init(struct macc_agent *a, struct peer *p)
{
	struct edge *e = &a->edge;

	p->in_nb = p->out_nb = true;
	if (e->pushsum && e->nagents > 2) {
		/* An in-neighbour waits for its own in-neighbours only: around a directed cycle
		 * it can be up to N - 1 rounds ahead of us, so keep N - 1 future rounds. */
		p->nlater = e->nagents - 2;
		p->later = calloc(p->nlater, sizeof(*p->later));
		if (p->later == NULL) {
			return -ENOMEM;
		}
		for (size_t i = 0; i < p->nlater; i++) {
			p->later[i].x = malloc(a->nparams * sizeof(float));
			p->later[i].v = a->sends_v ? malloc(a->nparams * sizeof(float)) : NULL;
			if (p->later[i].x == NULL || (a->sends_v && p->later[i].v == NULL)) {
				return -ENOMEM;
			}
		}
	}
	if (!e->compressed) {
		return 0;
	}
	p->cur.bx = malloc(e->blob_cap);
	p->cur.bv = malloc(e->blob_cap);
	p->next.bx = malloc(e->blob_cap);
	p->next.bv = malloc(e->blob_cap);
	if (p->cur.bx == NULL || p->cur.bv == NULL || p->next.bx == NULL || p->next.bv == NULL) {
		return -ENOMEM;
	}
	return 0;
}

void edge_peer_finish(struct peer *p)
{
	for (size_t i = 0; i < p->nlater && p->later != NULL; i++) {
		slot_free(&p->later[i]);
	}
	free(p->later);
	p->later = NULL;
	p->nlater = 0;
}

void edge_finish(struct macc_agent *a)
{
	struct edge *e = &a->edge;

	/* each takes zeroed storage (what was never made) */
	macc_schedule_finish(&e->sched);
	macc_graph_finish(&e->graph);
	macc_digraph_finish(&e->dg);
	macc_mixer_finish(&a->mixer);
	shared_body_unref(e->full);
	free(e->snap_x);
	free(e->snap_v);
	memset(e, 0, sizeof(*e));
}

/* ---- receive slots -------------------------------------------------------------------------- */

/* Where a state for a future round goes: the next slot, or with push-sum a free later one (the
 * same round again replaces itself). Full everywhere: the next slot is overwritten, as without
 * edge modes, and the lost state is folded like a late one. */
struct slot *edge_future_slot(struct peer *p, uint64_t round)
{
	if (!p->next.full || p->next.round == round || p->nlater == 0) {
		return &p->next;
	}
	for (size_t i = 0; i < p->nlater; i++) {
		if (p->later[i].full && p->later[i].round == round) {
			return &p->later[i];
		}
	}
	for (size_t i = 0; i < p->nlater; i++) {
		if (!p->later[i].full) {
			return &p->later[i];
		}
	}
	macc_warn(p->name, "state for round %llu: more future rounds than kept, one dropped",
		  (unsigned long long)round);
	return &p->next;
}

/* After agent.c moved cur/next to round r: bring a later slot holding r (or the next round)
 * forward, drop the past ones. */
void edge_advance_slots(struct peer *p, uint64_t r)
{
	for (size_t i = 0; i < p->nlater; i++) {
		struct slot *s = &p->later[i];
		struct slot t;

		if (s->full && s->round < r) {
			s->full = false;
		}
		if (s->full && s->round == r && !(p->cur.full && p->cur.round == r)) {
			t = p->cur;
			p->cur = *s;
			*s = t;
			s->full = false;
		}
	}
	if (!p->next.full) {
		struct slot *best = NULL;

		for (size_t i = 0; i < p->nlater; i++) {
			struct slot *s = &p->later[i];

			if (s->full && s->round > r && (best == NULL || s->round < best->round)) {
				best = s;
			}
		}
		if (best != NULL) {
			struct slot t = p->next;

			p->next = *best;
			*best = t;
		}
	}
}

/* How far a neighbour may legitimately be ahead before agent.c's rejoin logic jumps: idle
 * rounds of a schedule and directed cycles let neighbours run ahead without any fault. */
uint64_t edge_lag(const struct macc_agent *a)
{
	const struct edge *e = &a->edge;

	return e->pushsum || e->varying ? e->nagents : 0;
}

/* ---- a round ---------------------------------------------------------------------------- */

/* Where gradients are taken and what is evaluated, digested and checkpointed. */
const float *edge_model(const struct macc_agent *a)
{
	return macc_mixer_model(&a->mixer, a->x);
}

bool edge_sends_to(const struct macc_agent *a, const struct peer *p)
{
	return macc_mixer_sends_to(&a->mixer, p->idx, p->out_nb);
}

bool edge_expects(const struct macc_agent *a, const struct peer *p)
{
	return macc_mixer_expects(&a->mixer, p->idx, p->in_nb);
}

/* Push-sum: an out-neighbour does not wait for us, yet a state that never reaches it loses
 * mass; so the round does not end before its state was handed to every live out-neighbour that
 * is not past it (a session that comes up late gets it from agent_on_session_up). */
bool edge_owes(const struct macc_agent *a, const struct peer *p)
{
	return a->edge.pushsum && p->out_nb && p->tx_round < (int64_t)a->round &&
	       !peer_gone(p, macc_now_ms()) && !(p->known_round_valid && p->known_round > a->round);
}

void edge_round_start(struct macc_agent *a)
{
	struct edge *e = &a->edge;
	uint32_t partner = MACC_NO_PARTNER;

	if (e->varying) {
		partner = macc_schedule_partner(&e->sched, a->round, e->self_idx);
		macc_debug(NULL, "round %llu: partner %d", (unsigned long long)a->round,
			   partner == MACC_NO_PARTNER ? -1 : (int)partner);
	}
	macc_mixer_begin(&a->mixer, a->round, partner);
}

/* Worker: the round's outgoing state (the mixer's) into so; with compression the public copies
 * as of this round are kept for resync states. */
int edge_encode(struct macc_agent *a, struct macc_state_out *so, struct macc_errmsg *err)
{
	struct edge *e = &a->edge;
	struct macc_mixer_out o;
	size_t n = a->nparams;
	int rc;

	rc = macc_mixer_outgoing(&a->mixer, &a->hp, a->x, a->v, a->g, &o, err);
	if (rc < 0) {
		return rc;
	}
	so->x = o.x;
	so->mom = o.v;
	so->has_weight = o.has_weight;
	so->weight = o.weight;
	if (!e->compressed) {
		return 0;
	}
	so->enc = (uint32_t)o.enc;
	so->x_blob = o.x_blob;
	so->x_len = o.x_len;
	so->mom_blob = o.v_blob;
	so->mom_len = o.v_len;
	memcpy(e->snap_x, macc_mixer_public_x(&a->mixer), n * sizeof(float));
	if (a->sends_v) {
		memcpy(e->snap_v, macc_mixer_public_v(&a->mixer), n * sizeof(float));
	}
	return 0;
}

/* Loop thread: the body to send p this round (the shared one, or a full resync state made from
 * the public copies as of body_round; see the top of this file). NULL if it cannot be made. */
struct shared_body *edge_body_for(struct macc_agent *a, struct peer *p)
{
	struct edge *e = &a->edge;
	struct macc_state_out so;
	int rc;

	if (!e->compressed || !p->tx_full || a->body == NULL) {
		return a->body;
	}
	if (e->full != NULL && e->full_round == a->body_round) {
		return e->full;
	}
	if (e->full == NULL || e->full->refs > 1) {
		shared_body_unref(e->full);
		e->full = calloc(1, sizeof(*e->full));
		if (e->full == NULL) {
			return NULL;
		}
		e->full->refs = 1;
		macc_buf_init(&e->full->body.buf, 0);
	}
	memset(&so, 0, sizeof(so));
	so.round = a->body_round;
	so.nparams = a->nparams;
	so.x = e->snap_x;
	so.mom = a->sends_v ? e->snap_v : NULL;
	so.digest_alg = macc_digest_preferred(); /* as the sessions sign (peer.c) */
	rc = macc_state_body_encode(&e->full->body, &so);
	if (rc < 0) {
		macc_error(p->name, "cannot encode a resync state: %s", macc_strerror(rc));
		return NULL;
	}
	e->full_round = a->body_round;
	return e->full;
}

int edge_check_state(const struct macc_agent *a, const struct macc_state *st,
		     struct macc_errmsg *err)
{
	const struct edge *e = &a->edge;
	int rc;

	if (st->has_weight != e->pushsum) {
		return macc_errf(err, MACC_EMALFORMED, "STATE %s a push-sum weight, this agent "
				 "%s push-sum", st->has_weight ? "carries" : "lacks",
				 e->pushsum ? "runs" : "does not run");
	}
	if (st->has_weight && !(isfinite(st->weight) && st->weight > 0)) {
		return macc_errf(err, MACC_ENONFINITE, "STATE push-sum weight %g is not a finite "
				 "positive number", st->weight);
	}
	if (st->enc == MACC_ENC_F32) {
		return 0;
	}
	if (!e->compressed || st->enc != (uint32_t)e->comp.kind) {
		return macc_errf(err, MACC_EMALFORMED, "STATE vector encoding %u, this agent runs "
				 "compress = %s", st->enc, a->cfg.compress);
	}
	rc = macc_compress_check(st->x, st->x_len, a->nparams, err);
	if (rc == 0 && st->mom != NULL) {
		rc = macc_compress_check(st->mom, st->mom_len, a->nparams, err);
	}
	return rc;
}

void edge_store_state(struct macc_agent *a, struct slot *s, const struct macc_state *st)
{
	s->enc = st->enc;
	s->weight = st->weight;
	if (st->enc == MACC_ENC_F32) {
		macc_f32le_load(s->x, st->x, a->nparams);
		if (a->sends_v && st->mom != NULL) {
			macc_f32le_load(s->v, st->mom, a->nparams);
		}
		return;
	}
	memcpy(s->bx, st->x, st->x_len);
	s->lx = st->x_len;
	if (st->mom != NULL) {
		memcpy(s->bv, st->mom, st->mom_len);
		s->lv = st->mom_len;
	}
}

/* Push-sum: the row of P from our out-degree and the in-neighbours' (0 for out-only peers). */
static void push_row(const struct macc_agent *a, double *ret_self, double *w)
{
	double share[MACC_CONFIG_MAX_PEERS + 1];
	uint32_t outdeg[MACC_CONFIG_MAX_PEERS + 1];
	size_t nin = 0;

	for (size_t i = 0; i < a->npeers; i++) {
		if (a->peers[i]->in_nb) {
			outdeg[nin++] = a->peers[i]->outdeg;
		}
	}
	macc_pushsum_row(macc_digraph_outdeg(&a->edge.dg, a->edge.self_idx), outdeg, nin, ret_self,
			 share);
	for (size_t i = 0, k = 0; i < a->npeers; i++) {
		w[i] = a->peers[i]->in_nb ? share[k++] : 0.0;
	}
}

/* The row of W from the configured weights, or from the peers' degrees (the simulator's
 * macc_weights_row; a degree not learned yet counts as ours), or of P (push-sum): self weight
 * and w[i] for peer i. The standardisation agreement uses it too (standardize.c). */
void edge_row(const struct macc_agent *a, double *ret_self, double *w)
{
	double self_w = 1.0, sum = 0.0;
	uint32_t deg[MACC_CONFIG_MAX_PEERS + 1];
	size_t n = a->npeers;

	if (a->edge.pushsum) {
		push_row(a, &self_w, w);
	} else if (a->cfg.weights == MACC_CONFIG_WEIGHTS_EXPLICIT) {
		for (size_t i = 0; i < n; i++) {
			w[i] = a->peers[i]->cfg_weight;
			sum += w[i];
		}
		self_w = 1.0 - sum;
	} else {
		for (size_t i = 0; i < n; i++) {
			deg[i] = a->peers[i]->degree_known ? a->peers[i]->degree : (uint32_t)n;
		}
		macc_weights_row(a->cfg.weights == MACC_CONFIG_WEIGHTS_UNIFORM ? MACC_WEIGHTS_UNIFORM
									      : MACC_WEIGHTS_METROPOLIS,
				 (uint32_t)n, deg, n, &self_w, w);
	}
	*ret_self = self_w;
}

static void set_row(struct macc_agent *a)
{
	double self_w, w[MACC_CONFIG_MAX_PEERS + 1];

	edge_row(a, &self_w, w);
	macc_mixer_set_row(&a->mixer, self_w, w);
}

/* At a round boundary (no job in flight): the mixer takes a reload's peer count and robust
 * rule. False when it cannot hold the peers this round (out of memory: nobody is mixed). */
static bool mixer_fit(struct macc_agent *a)
{
	struct macc_mixer *m = &a->mixer;
	int rc = macc_mixer_set_nnb(m, a->npeers);

	if (rc < 0) {
		snprintf(a->last_error, sizeof(a->last_error), "round %llu: cannot make room for "
			 "%zu peers (%s): no neighbour mixed", (unsigned long long)a->round,
			 a->npeers, macc_strerror(rc));
		macc_error(NULL, "%s", a->last_error);
		return false;
	}
	if (a->edge.robust_dirty) {
		a->edge.robust_dirty = false;
		rc = macc_mixer_set_robust(m, a->robust, &a->rcfg);
		if (rc < 0) {
			macc_error(NULL, "cannot switch robust mixing (%s): the previous rule stays",
				   macc_strerror(rc));
			a->robust = m->cfg.robust;
			a->rcfg = m->cfg.rcfg;
		}
	}
	return true;
}

/* A due state that is not there, said once per peer and round (rate-limited at info). */
static void log_missing(struct macc_agent *a, struct peer *p)
{
	unsigned long long r = (unsigned long long)a->round;

	if (p->dead) {
		return;
	}
	if (a->edge.pushsum) {
		macc_info(p->name, "no state for round %llu: its push-sum share is folded (mass is not "
			  "conserved this round)", r);
	} else if (p->known_round_valid && p->known_round > a->round &&
		   !(a->robust && macc_quarantine_active(&p->q, a->round)) &&
		   macc_ratelimit_ok(&p->rl_lost, p->name)) {
		/* It moved on, so it sent this round's state: it was lost on the way (a closed
		 * session). Never expected in a fault-free run. */
		macc_info(p->name, "state for round %llu never arrived and the peer is at round %llu: "
			  "folded", r, (unsigned long long)p->known_round);
	} else {
		macc_debug(p->name, "state for round %llu missing: folded", r);
	}
}

/* Loop thread, before the step job: the round's row, what arrived from each peer (in[i] for
 * peer i) and the robust state they carry. Returns the number of entries. */
size_t edge_inbound(struct macc_agent *a, struct macc_mixer_in *in)
{
	struct macc_mixer *m = &a->mixer;
	bool fits = mixer_fit(a);
	size_t n = macc_mixer_nnb(m);

	if (fits) {
		set_row(a);
	}
	for (size_t i = 0; i < n; i++) {
		struct peer *p = a->peers[i];
		const struct slot *s = &p->cur;

		in[i] = (struct macc_mixer_in){
			.arrived = fits && inbox_arrived(a, p),
			.x = s->x,
			.v = s->v,
			.weight = s->weight,
			.full = s->enc == MACC_ENC_F32,
			.x_blob = s->bx,
			.v_blob = s->bv,
			.x_len = s->lx,
			.v_len = s->lv,
		};
		*macc_mixer_quarantine(m, i) = p->q;
		if (!in[i].arrived && edge_expects(a, p)) {
			log_missing(a, p);
		}
	}
	return n;
}

/* Loop thread: robust mixing's outcome for one peer: its quarantine state back, counters, and
 * a warning for an exclusion or a quarantine. */
static void robust_peer(struct macc_agent *a, struct peer *p, size_t i)
{
	const struct macc_mixer_outcome *o = macc_mixer_outcome(&a->mixer, i);
	unsigned long long r = (unsigned long long)a->round;

	p->q = *macc_mixer_quarantine(&a->mixer, i);
	p->excluded[o->reason]++;
	p->clipped += o->clipped;
	if ((o->reason == MACC_ROBUST_NONFINITE || o->reason == MACC_ROBUST_DISTANCE) &&
	    macc_ratelimit_ok(&p->rl, p->name)) {
		macc_warn(p->name, "state for round %llu excluded from the mix: %s%s", r,
			  macc_robust_reason_name((enum macc_robust_reason)o->reason),
			  o->quarantined ? "" : " (weight folded into our own)");
	}
	if (o->quarantined) {
		macc_warn(p->name, "quarantined until round %llu (%u rounds; quarantine %llu of this "
			  "peer)", (unsigned long long)p->q.until, p->q.backoff,
			  (unsigned long long)p->q.times);
	}
}

/* Loop thread: compressed exchange's outcome for one peer (see the top of this file). */
static void choco_peer(struct macc_agent *a, struct peer *p, size_t i)
{
	const struct macc_mixer_outcome *o = macc_mixer_outcome(&a->mixer, i);
	unsigned long long r = (unsigned long long)a->round;

	if (o->resynced) {
		p->resync_asked = false;
	}
	if (o->sync_lost) {
		macc_info(p->name, "no state for round %llu: its public copy is out of sync until a "
			  "resync state", r);
	}
	if (!o->out_of_sync) {
		return;
	}
	macc_warn(p->name, "compressed state for round %llu does not follow the public copy: "
		  "folded, asking for a resync", r);
	if (!p->resync_asked) {
		peer_resync(p, "compressed public copy out of sync: resynchronising");
	}
}

/* Loop thread, after the step job: what the mixer did, into the peers' counters, the metrics
 * and the log. peers[0..n) are the peers of the step's in[] (a reload may have removed some
 * since: they live on in the graveyard until their handles closed). */
void edge_after_step(struct macc_agent *a, struct peer *const *peers, size_t n,
		     const struct macc_mixer_report *rep)
{
	bool robust = a->mixer.cfg.robust;

	a->metrics.neighbours_missed_total += rep->missed;
	if (rep->rc < 0) {
		snprintf(a->last_error, sizeof(a->last_error), "round %llu: own state not finite, "
			 "no neighbour mixed", (unsigned long long)a->round);
		macc_error(NULL, "%s", a->last_error);
	}
	for (size_t i = 0; i < n; i++) {
		if (robust && rep->rc == 0) {
			robust_peer(a, peers[i], i);
		}
		if (a->edge.compressed) {
			choco_peer(a, peers[i], i);
		}
	}
	if (!robust) {
		return;
	}
	a->metrics.excluded_nonfinite_total += rep->count[MACC_ROBUST_NONFINITE];
	a->metrics.excluded_distance_total += rep->count[MACC_ROBUST_DISTANCE];
	a->metrics.excluded_quarantined_total += rep->count[MACC_ROBUST_QUARANTINED];
	a->metrics.clipped_total += rep->clipped;
	a->metrics.quarantines_total += rep->quarantined;
}
