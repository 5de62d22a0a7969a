/*
 * edge.c - the daemon's side of issue 11 (ALGORITHMS.md "Beyond a fixed undirected graph"):
 * time-varying schedules, push-sum on directed graphs, local steps and compressed exchange with
 * error feedback. The mathematics is the simulator's, through the same consensus functions
 * (macc_schedule_partner/_weights, macc_pushsum_row/_step/_weight/_debias, macc_sgd_step,
 * macc_choco_send/_step, macc_compress_decode_add), called in the simulator's order, so a
 * fault-free loopback fleet ends bit-identical to `macc-sim` with the same settings.
 *
 * Agent numbers: with [train] topology set, this agent is number INDEX of `shard = INDEX/COUNT`
 * in the graph that `macc-sim --agents COUNT --topology SPEC --seed SEED` builds, and its
 * configured peers, in ascending public-key order (the order every daemon sums in), are its
 * neighbours in ascending agent number (for a directed graph: in- and out-neighbours together).
 * edge_map_peers checks the count; examples/ring-4/gen.sh makes keys in that order.
 *
 * Schedules: the round's partner is a pure function of (seed, round, configured graph)
 * (macc_schedule_partner), computed by every daemon alone at the start of the round. Sessions
 * stay up to every configured neighbour; STATE goes to, and the wait is for, the partner only,
 * and the weights are the Metropolis row of the round's graph (1/2, 1/2; idle: 1). With
 * compression the differences still go to every configured neighbour (the simulator does the
 * same: every holder of a public copy must apply every difference), only the mixing weights are
 * restricted to the partner.
 *
 * Push-sum (algorithm sgp, or dmsgd on a directed "a -> b" topology file): x and v hold the
 * numerators z and u, edge.pw the weight, edge.xdb the de-biased x = z / w, where the gradient
 * is taken and which is evaluated, digested and checkpointed. STATE carries w (body field "w")
 * and goes to the out-neighbours; the step waits for the in-neighbours. A missing in-neighbour
 * (dead, round timeout) is folded: its share goes to the agent's own numerators and weight
 * alike, so x = z / w stays a convex combination, but mass is lost (documented in
 * macc-agentd(8)); a restart resumes from the de-biased x with w = 1.
 *
 * Local steps H: the gradient job first takes H - 1 macc_sgd_step()s on x and v, each on a fresh
 * mini-batch; the body is then encoded after the gradient (the simulator sends x after them).
 *
 * Compressed exchange (CHOCO): the body carries C(x - xhat) (and C(v - vhat) for dmsgd) as
 * compressor blobs (STATE enc = the compressor's tag); every receiver adds them to its copy of
 * the sender's public vectors at the round's step. Copies must see EVERY difference, in order.
 * Policy when they cannot (a lost message, a session that broke, a restarted neighbour):
 *   - receiver: a copy is "in sync" with the next round it expects (peer.hat_ok, hat_next). A
 *     difference for any other round, or one arriving while out of sync, is never added: the
 *     neighbour is folded out of that round (weight 0) and the session is closed with BYE
 *     MACC_ESTATE ("public copy out of sync"), so both sides reconnect at once. A round whose
 *     difference did not arrive leaves the copy out of sync.
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

/* What the step job does beyond the plain path: filled on the loop thread, run on the worker. */
struct edge_step {
	enum { ES_PLAIN, ES_PUSH, ES_CHOCO } kind;
	float self_w;                              /* ES_PLAIN: w_jj after folding */
	double self_p;                             /* ES_PUSH */
	double p_in[MACC_CONFIG_MAX_PEERS + 1];
	double w_in[MACC_CONFIG_MAX_PEERS + 1];
	const struct slot *apply[MACC_CONFIG_MAX_PEERS + 1]; /* ES_CHOCO: add to copy i */
	float cw[MACC_CONFIG_MAX_PEERS + 1];
	size_t nnb;
};

static struct edge_step es_job; /* one step job in flight at most (agent.c) */

int edge_config(struct macc_agent *a, struct macc_errmsg *err)
{
	struct edge *e = &a->edge;
	const struct macc_config *c = &a->cfg;
	int rc;

	e->H = c->local_steps ? c->local_steps : 1;
	e->partner = MACC_NO_PARTNER;
	e->pw = 1.0;
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
		e->self_idx = c->shard_index;
		e->nagents = c->shard_count;
		if (!e->pushsum) {
			struct macc_errmsg tmp;

			rc = macc_graph_create(c->topology, e->nagents, c->seed, &e->graph, &tmp);
			if (rc == MACC_ESPEC && strncmp(c->topology, "file:", 5) == 0 &&
			    macc_digraph_create(c->topology, e->nagents, c->seed, &e->dg, err) == 0) {
				/* A directed edge list: dmsgd runs in its push-sum form. */
				e->dg_made = true;
				e->pushsum = true;
				if (a->algo != MACC_ALGO_DMSGD) {
					return macc_errf(err, MACC_ECONFIG, "topology '%s' is directed: "
							 "algorithm %s has no push-sum form (use "
							 "dmsgd or sgp)", c->topology,
							 macc_algo_name(a->algo));
				}
			} else if (rc < 0) {
				return macc_errf(err, rc, "topology: %s", tmp.text);
			} else {
				e->graph_made = true;
			}
		} else {
			rc = macc_digraph_create(c->topology, e->nagents, c->seed, &e->dg, err);
			if (rc < 0) {
				return rc;
			}
			e->dg_made = true;
		}
	}
	if (e->pushsum && (e->varying || e->compressed)) {
		return macc_errf(err, MACC_ECONFIG, "push-sum (directed topology) with %s: not "
				 "supported (a message must not lose mass)",
				 e->varying ? "a schedule" : "compress");
	}
	if (e->varying) {
		rc = macc_schedule_init(&e->sched, c->schedule, &e->graph, c->seed, err);
		if (rc < 0) {
			return rc;
		}
		e->sched_made = true;
	}
	e->late_send = a->after_grad || e->H > 1;
	e->on = e->pushsum || e->varying || e->compressed || e->H > 1;
	if (e->compressed) {
		size_t f;

		e->blob_cap = macc_compress_size(&e->comp, a->nparams);
		f = 512 + (a->sends_v ? 2 : 1) * e->blob_cap + 1024;
		a->frame_max = f > a->frame_max ? f : a->frame_max;
	}
	return 0;
}

int edge_setup(struct macc_agent *a, bool fresh, struct macc_errmsg *err)
{
	struct edge *e = &a->edge;
	size_t n = a->nparams;

	e->fresh = fresh;
	if (e->pushsum) {
		e->xdb = malloc(n * sizeof(float));
		if (e->xdb == NULL) {
			return macc_errf(err, -ENOMEM, "out of memory");
		}
		memcpy(e->xdb, a->x, n * sizeof(float));
		e->pw = 1.0;
	}
	if (e->compressed) {
		e->snap_x = calloc(n, sizeof(float));
		e->snap_v = calloc(n, sizeof(float));
		e->blob_x = malloc(e->blob_cap);
		e->blob_v = malloc(e->blob_cap);
		if (e->snap_x == NULL || e->snap_v == NULL || e->blob_x == NULL ||
		    e->blob_v == NULL ||
		    macc_choco_init(&e->choco, n, a->cfg.npeers, a->sends_v, a->x) < 0) {
			return macc_errf(err, -ENOMEM, "out of memory for public copies");
		}
		e->choco_made = true;
		macc_info(NULL, "compressed exchange: %s, gossip step %g, %zu bytes per vector",
			  a->cfg.compress, (double)e->gamma, e->blob_cap);
	}
	return 0;
}

/* Agent numbers of the configured neighbours (see the top of this file). */
int edge_map_peers(struct macc_agent *a, struct macc_errmsg *err)
{
	struct edge *e = &a->edge;
	uint32_t n = e->nagents, j = e->self_idx;
	size_t k = 0;

	for (size_t i = 0; i < a->npeers; i++) {
		struct peer *p = a->peers[i];

		p->in_nb = p->out_nb = true;
		p->hat_ok = e->fresh;
		p->hat_next = a->round;
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

void edge_finish(struct macc_agent *a)
{
	struct edge *e = &a->edge;

	if (e->sched_made) {
		macc_schedule_finish(&e->sched);
	}
	if (e->graph_made) {
		macc_graph_finish(&e->graph);
	}
	if (e->dg_made) {
		macc_digraph_finish(&e->dg);
	}
	if (e->choco_made) {
		macc_choco_finish(&e->choco);
	}
	shared_body_unref(e->full);
	free(e->snap_x);
	free(e->snap_v);
	free(e->blob_x);
	free(e->blob_v);
	free(e->xdb);
	memset(e, 0, sizeof(*e));
}

/* Where gradients are taken and what is evaluated, digested and checkpointed. */
const float *edge_model(const struct macc_agent *a)
{
	return a->edge.pushsum ? a->edge.xdb : a->x;
}

bool edge_sends_to(const struct macc_agent *a, const struct peer *p)
{
	const struct edge *e = &a->edge;

	if (e->pushsum) {
		return p->out_nb;
	}
	if (e->varying && !e->compressed) {
		return p->idx == e->partner;
	}
	return true;
}

bool edge_expects(const struct macc_agent *a, const struct peer *p)
{
	const struct edge *e = &a->edge;

	if (e->pushsum) {
		return p->in_nb;
	}
	if (e->varying && !e->compressed) {
		return p->idx == e->partner;
	}
	return true;
}

/* Push-sum: an out-neighbour does not wait for us, yet a state that never reaches it loses
 * mass; so the round does not end before its state was handed to every live out-neighbour that
 * is not past it (a session that comes up late gets it from agent_on_session_up). */
bool edge_owes(const struct macc_agent *a, const struct peer *p)
{
	return a->edge.pushsum && p->out_nb && p->tx_round < (int64_t)a->round && !p->dead &&
	       !(p->known_round_valid && p->known_round > a->round);
}

void edge_round_start(struct macc_agent *a)
{
	struct edge *e = &a->edge;

	if (e->varying) {
		e->partner = macc_schedule_partner(&e->sched, a->round, e->self_idx);
		macc_debug(NULL, "round %llu: partner %d", (unsigned long long)a->round,
			   e->partner == MACC_NO_PARTNER ? -1 : (int)e->partner);
	}
}

/* Worker: the H - 1 local steps before the round's gradient; returns their summed loss. */
float edge_local_steps(struct macc_agent *a)
{
	struct edge *e = &a->edge;
	float loss = 0.0f;

	for (uint32_t h = 1; h < e->H; h++) {
		macc_batcher_next(&a->batcher, a->bx, a->by);
		loss += macc_model_train_batch(a->model, edge_model(a), a->g, a->bx, a->by,
					       a->cfg.batch, (float)a->cfg.weight_decay,
					       &a->dropout_rng);
		macc_sgd_step(a->nparams, a->x, a->v, a->g, a->hp.alpha, a->hp.beta,
			      a->hp.nesterov);
		if (e->pushsum) {
			macc_pushsum_debias(a->nparams, a->x, e->pw, e->xdb);
		}
	}
	return loss;
}

/* Worker: complete the round's outgoing state (push-sum weight, compressed differences). */
int edge_encode(struct macc_agent *a, struct macc_state_out *so, struct macc_errmsg *err)
{
	struct edge *e = &a->edge;
	size_t n = a->nparams;
	ssize_t lx, lv = 0;

	if (e->pushsum) {
		so->has_weight = true;
		so->weight = e->pw;
	}
	if (!e->compressed) {
		return 0;
	}
	lx = macc_choco_send(&e->comp, n, so->x, e->choco.xhat_self, e->blob_x, e->blob_cap, err);
	if (lx < 0) {
		return (int)lx;
	}
	if (a->sends_v) {
		lv = macc_choco_send(&e->comp, n, a->v, e->choco.vhat_self, e->blob_v, e->blob_cap,
				     err);
		if (lv < 0) {
			return (int)lv;
		}
	}
	so->enc = (uint32_t)e->comp.kind;
	so->x_blob = e->blob_x;
	so->x_len = (size_t)lx;
	so->mom_blob = a->sends_v ? e->blob_v : NULL;
	so->mom_len = (size_t)lv;
	memcpy(e->snap_x, e->choco.xhat_self, n * sizeof(float));
	if (a->sends_v) {
		memcpy(e->snap_v, e->choco.vhat_self, n * sizeof(float));
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

static bool arrived(const struct macc_agent *a, const struct peer *p)
{
	return p->cur.full && p->cur.round == a->round;
}

/* The row of W on the configured graph, as agent.c's plain path computes it. */
static void static_row(const struct macc_agent *a, double *ret_self_w, double *w)
{
	uint32_t deg[MACC_CONFIG_MAX_PEERS + 1];
	size_t n = a->npeers;

	if (a->cfg.weights == MACC_CONFIG_WEIGHTS_EXPLICIT) {
		double s = 0.0;
		for (size_t i = 0; i < n; i++) {
			w[i] = a->peers[i]->cfg_weight;
			s += w[i];
		}
		*ret_self_w = 1.0 - s;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		deg[i] = a->peers[i]->degree_known ? a->peers[i]->degree : (uint32_t)n;
	}
	macc_weights_row(a->cfg.weights == MACC_CONFIG_WEIGHTS_UNIFORM ? MACC_WEIGHTS_UNIFORM
								      : MACC_WEIGHTS_METROPOLIS,
			 (uint32_t)n, deg, n, ret_self_w, w);
}

/* Compressed: which copies take which state this round, and the weights (loop thread). */
static void prepare_choco(struct macc_agent *a, struct edge_step *es, struct macc_neighbour *nb)
{
	struct edge *e = &a->edge;
	double self_w, w[MACC_CONFIG_MAX_PEERS + 1];

	static_row(a, &self_w, w);
	for (size_t i = 0; i < a->npeers; i++) {
		struct peer *p = a->peers[i];
		bool ok = false;

		es->apply[i] = NULL;
		if (arrived(a, p) && p->cur.enc == MACC_ENC_F32) {
			ok = true;
			p->hat_ok = true;
			p->resync_asked = false;
		} else if (arrived(a, p) && p->hat_ok && p->hat_next == a->round) {
			ok = true;
		} else if (arrived(a, p)) {
			macc_warn(p->name, "compressed state for round %llu does not follow the public "
				  "copy (%s, expected round %llu): folded, asking for a resync",
				  (unsigned long long)a->round, p->hat_ok ? "in sync" : "out of sync",
				  (unsigned long long)p->hat_next);
			p->hat_ok = false;
			if (!p->resync_asked) {
				peer_resync(p, "compressed public copy out of sync: resynchronising");
			}
		} else if (p->hat_ok && p->hat_next == a->round) {
			macc_info(p->name, "no state for round %llu: its public copy is out of sync "
				  "until a resync state", (unsigned long long)a->round);
			p->hat_ok = false;
		}
		if (ok) {
			es->apply[i] = &p->cur;
			p->hat_next = a->round + 1;
		}
		if (!ok) {
			es->cw[i] = 0.0f;
		} else if (e->varying) {
			double sw, pw;

			macc_schedule_weights(e->partner, &sw, &pw);
			es->cw[i] = p->idx == e->partner ? (float)pw : 0.0f;
		} else {
			es->cw[i] = (float)w[i];
		}
		if (!ok && (!e->varying || p->idx == e->partner)) {
			a->metrics.neighbours_missed_total++;
		}
		nb[i].w = es->cw[i];
		nb[i].x = macc_choco_peer_x(&e->choco, i);
		nb[i].v = NULL;
	}
	es->nnb = a->npeers;
}

/* Push-sum: the in-neighbours' shares, folding a missing one into the agent's own share. */
static void prepare_push(struct macc_agent *a, struct edge_step *es, struct macc_neighbour *nb)
{
	struct edge *e = &a->edge;
	uint32_t outdeg[MACC_CONFIG_MAX_PEERS + 1];
	struct peer *in[MACC_CONFIG_MAX_PEERS + 1];
	size_t nin = 0;

	for (size_t i = 0; i < a->npeers; i++) {
		if (a->peers[i]->in_nb) {
			in[nin] = a->peers[i];
			outdeg[nin] = a->peers[i]->outdeg;
			nin++;
		}
	}
	macc_pushsum_row(macc_digraph_outdeg(&e->dg, e->self_idx), outdeg, nin, &es->self_p,
			 es->p_in);
	for (size_t k = 0; k < nin; k++) {
		struct peer *p = in[k];

		if (!arrived(a, p)) {
			macc_info(p->name, "no state for round %llu: its push-sum share is folded "
				  "(mass is not conserved this round)", (unsigned long long)a->round);
			a->metrics.neighbours_missed_total++;
			es->self_p += es->p_in[k];
			es->p_in[k] = 0.0;
			es->w_in[k] = 0.0;
			nb[k] = (struct macc_neighbour){ 0.0f, NULL, NULL };
			continue;
		}
		es->w_in[k] = p->cur.weight;
		nb[k].w = (float)es->p_in[k];
		nb[k].x = p->cur.x;
		nb[k].v = a->sends_v ? p->cur.v : NULL;
	}
	es->nnb = nin;
}

/* Schedule, uncompressed: mix with the round's partner only (the simulator's
 * agent_mix_varying). */
static void prepare_varying(struct macc_agent *a, struct edge_step *es, struct macc_neighbour *nb)
{
	struct edge *e = &a->edge;
	double self_w = 1.0;

	es->nnb = 0;
	for (size_t i = 0; i < a->npeers; i++) {
		struct peer *p = a->peers[i];
		bool ok = arrived(a, p);
		double sw, w, w_out;

		if (e->partner == MACC_NO_PARTNER || p->idx != e->partner) {
			continue;
		}
		macc_schedule_weights(e->partner, &sw, &w);
		(void)macc_fold_missing(sw, &w, &ok, 1, &self_w, &w_out);
		if (!ok) {
			a->metrics.neighbours_missed_total++;
			break;
		}
		nb[0].w = (float)w_out;
		nb[0].x = p->cur.x;
		nb[0].v = a->sends_v ? p->cur.v : NULL;
		es->nnb = 1;
	}
	es->self_w = (float)self_w;
}

struct edge_step *edge_prepare_step(struct macc_agent *a, struct macc_neighbour *nb,
				    size_t *ret_nnb)
{
	struct edge *e = &a->edge;
	struct edge_step *es = &es_job;

	if (!e->pushsum && !e->varying && !e->compressed) {
		return NULL; /* local steps alone: the plain step */
	}
	if (e->compressed) {
		es->kind = ES_CHOCO;
		prepare_choco(a, es, nb);
	} else if (e->pushsum) {
		es->kind = ES_PUSH;
		prepare_push(a, es, nb);
	} else {
		es->kind = ES_PLAIN;
		prepare_varying(a, es, nb);
	}
	*ret_nnb = es->nnb;
	return es;
}

/* Worker: the round's step for the edge modes (nb as prepared). */
void edge_step_work(struct macc_agent *a, struct edge_step *es, const struct macc_neighbour *nb)
{
	struct edge *e = &a->edge;
	size_t n = a->nparams;

	switch (es->kind) {
	case ES_PLAIN:
		macc_consensus_step(a->algo, &a->hp, n, a->x, a->v, a->g, es->self_w, nb, es->nnb,
				    a->scratch);
		break;
	case ES_PUSH:
		(void)macc_pushsum_step(a->algo, &a->hp, n, a->x, a->v, a->g, (float)es->self_p, nb,
					es->nnb, a->scratch);
		e->pw = macc_pushsum_weight(es->self_p, e->pw, es->p_in, es->w_in, es->nnb);
		macc_pushsum_debias(n, a->x, e->pw, e->xdb);
		break;
	case ES_CHOCO:
		for (size_t i = 0; i < es->nnb; i++) {
			const struct slot *s = es->apply[i];
			float *hx = macc_choco_peer_x(&e->choco, i);
			float *hv = a->sends_v ? macc_choco_peer_v(&e->choco, i) : NULL;

			if (s == NULL) {
				continue;
			}
			if (s->enc == MACC_ENC_F32) {
				memcpy(hx, s->x, n * sizeof(float));
				if (hv != NULL) {
					memcpy(hv, s->v, n * sizeof(float));
				}
				continue;
			}
			/* Checked on arrival (edge_check_state): cannot fail here. */
			(void)macc_compress_decode_add(s->bx, s->lx, n, hx, NULL, NULL);
			if (hv != NULL) {
				(void)macc_compress_decode_add(s->bv, s->lv, n, hv, NULL, NULL);
			}
		}
		macc_choco_step(a->algo, &a->hp, e->gamma, n, a->x, a->v, a->g, &e->choco, es->cw,
				a->scratch);
		break;
	}
}
