/*
 * mixer.c - one agent's round of consensus (mixer.h): the one composition of the leaves of
 * algo.c, schedule.c, pushsum.c, compress.c and robust.c that macc-sim, macc-agentd and the unit
 * tests share.
 *
 * A step is one of five paths, chosen once by the configuration (macc_mixer_check_opts rules
 * out every other combination):
 *   plain     static graph: the row of W, missing neighbours folded into the own weight
 *             (macc_fold_missing), macc_consensus_step;
 *   robust    static graph: every arrival through macc_robust_prepare (screening, quarantine,
 *             the aggregation rule, folding), then the same macc_consensus_step;
 *   varying   a schedule: the partner only, at the Metropolis weights of the round's graph
 *             (macc_schedule_weights), folded when missing;
 *   push-sum  the in-neighbours' shares (the row), a missing share folded into the own one,
 *             macc_pushsum_step on the numerators, the weight advanced, x = z / w;
 *   choco     every neighbour's difference added to our copy of its public vectors when it
 *             follows that copy (or a full state replaces the copy), then macc_choco_step with
 *             the row (or the partner's schedule weight) for the neighbours whose copy is usable.
 * Local steps are the learner's (learner.h): they change x before the round's gradient and the
 * outgoing state, never the mixing.
 *
 * Why the daemon and the simulator get the same bits: each path casts each double weight to
 * float once, folds in neighbour order, and leaves the float arithmetic to the shared kernels.
 * A folded neighbour is dropped from the list handed to the kernel, which the kernels define to
 * give the same bits as a zero weight left in place.
 *
 * Memory: everything a step needs is allocated at init (and by macc_mixer_set_nnb /
 * macc_mixer_set_robust, which the daemon calls between rounds); a step allocates nothing.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macc/mixer.h"

/* ======================================================================================== */
/* Which options combine                                                                    */
/* ======================================================================================== */

/* Facts about a run (bits of a mask); NO_* are the absence of something another fact needs. */
enum feat {
	F_CENTRAL,
	F_SINGLE,
	F_NOGRAPH,
	F_PUSHSUM,
	F_NOPUSHFORM,
	F_SCHEDULE,
	F_LOCAL,
	F_COMPRESS,
	F_ROBUST,
	F_BYZ,
	F_DROP,
	F_EXPLICIT,
	F_GOSSIP,
	F_NOCOMPRESS,
	F_NFEATS,
};

/* The message for a refused pair is NAME(a) MID NAME(b) TAIL. Order: the first rule that
 * applies is reported. */
struct rule {
	uint8_t a, b;
	const char *mid, *tail;
};

static const char NO_MSG[] = " exchanges no messages: ";
static const char NOT_APPLY[] = " does not apply";
static const char NO_SUPPORT[] = " does not support ";
static const char MASS[] = " (a message must not lose mass)";

static const struct rule rules[] = {
	{F_CENTRAL, F_LOCAL, NO_MSG, NOT_APPLY},
	{F_CENTRAL, F_SCHEDULE, NO_MSG, NOT_APPLY},
	{F_CENTRAL, F_COMPRESS, NO_MSG, NOT_APPLY},
	{F_CENTRAL, F_ROBUST, NO_MSG, NOT_APPLY},
	{F_CENTRAL, F_BYZ, NO_MSG, NOT_APPLY},
	{F_SINGLE, F_LOCAL, " only takes local steps: ", " needs several agents"},
	{F_SINGLE, F_ROBUST, NO_MSG, NOT_APPLY},
	{F_SINGLE, F_BYZ, NO_MSG, NOT_APPLY},
	{F_SCHEDULE, F_NOGRAPH, " needs ", ""},
	{F_PUSHSUM, F_NOGRAPH, " needs ", ""},
	{F_PUSHSUM, F_NOPUSHFORM, ": ", " has no push-sum form (use dmsgd or sgp)"},
	{F_PUSHSUM, F_SCHEDULE, NO_SUPPORT, MASS},
	{F_PUSHSUM, F_COMPRESS, NO_SUPPORT, MASS},
	{F_PUSHSUM, F_DROP, NO_SUPPORT, MASS},
	{F_PUSHSUM, F_ROBUST, NO_SUPPORT, " (excluding or clipping a message would lose mass)"},
	{F_PUSHSUM, F_BYZ, NO_SUPPORT, " (excluding or clipping a message would lose mass)"},
	{F_COMPRESS, F_DROP, " with ",
	 ": a dropped compressed difference would leave a public copy stale for good"},
	{F_COMPRESS, F_ROBUST, NO_SUPPORT,
	 " (compressed messages are differences to public copies, not states)"},
	{F_COMPRESS, F_BYZ, NO_SUPPORT,
	 " (compressed messages are differences to public copies, not states)"},
	{F_SCHEDULE, F_ROBUST, " mixes with one partner a round: ", " needs the static graph"},
	{F_SCHEDULE, F_EXPLICIT, " uses the Metropolis weights of each round's graph: ", NOT_APPLY},
	{F_GOSSIP, F_NOCOMPRESS, " needs ", ""},
};

/* Names in both dialects; NULL: formatted with the run's values (feat_name). */
static const char *const names[F_NFEATS][2] = {
	[F_CENTRAL] = {"centralized", "centralized"},
	[F_SINGLE] = {"a single agent", "a single agent"},
	[F_NOGRAPH] = {"--topology", "key 'topology' (the whole configured graph, agents numbered "
				     "like macc-sim)"},
	[F_PUSHSUM] = {"the push-sum form (--algorithm sgp, or a directed --topology)",
		       "push-sum (algorithm = sgp, or a directed topology)"},
	[F_NOPUSHFORM] = {NULL, NULL},
	[F_SCHEDULE] = {NULL, NULL},
	[F_LOCAL] = {"--local-steps", "local_steps > 1"},
	[F_COMPRESS] = {"--compress", "compress"},
	[F_ROBUST] = {"--aggregation other than mean (or --screen-factor)",
		      "aggregation other than mean (or screen_factor)"},
	[F_BYZ] = {"--byzantine", "byzantine agents"},
	[F_DROP] = {"--drop-prob", "message drops"},
	[F_EXPLICIT] = {"--weights explicit", "weights = explicit"},
	[F_GOSSIP] = {"--gossip-step", "gossip_step"},
	[F_NOCOMPRESS] = {"--compress", "compress other than none"},
};

static void feat_name(enum feat f, const struct macc_mix_opts *o, enum macc_mix_dialect d,
		      char *buf, size_t cap)
{
	const bool cli = d == MACC_MIX_CLI;

	if (f == F_NOPUSHFORM) {
		snprintf(buf, cap, cli ? "--algorithm %s" : "algorithm = %s",
			 macc_algo_name(o->algo));
	} else if (f == F_SCHEDULE) {
		snprintf(buf, cap, cli ? "--schedule %s" : "schedule = %s",
			 macc_schedule_name(o->schedule));
	} else {
		snprintf(buf, cap, "%s", names[f][cli ? 0 : 1]);
	}
}

static unsigned bit(enum feat f, bool on)
{
	return on ? 1u << f : 0u;
}

static unsigned features(const struct macc_mix_opts *o)
{
	unsigned f = bit(F_SINGLE, o->single) | bit(F_LOCAL, o->local_steps > 1) |
		     bit(F_ROBUST, o->robust) | bit(F_BYZ, o->byzantine);

	if (o->single) {
		return f; /* graph, schedule, compression, drops do not apply to one agent */
	}
	f |= bit(F_CENTRAL, o->algo == MACC_ALGO_CENTRALIZED) | bit(F_NOGRAPH, o->no_graph) |
	     bit(F_PUSHSUM, o->pushsum) |
	     bit(F_NOPUSHFORM, o->algo != MACC_ALGO_DMSGD && o->algo != MACC_ALGO_CDMSGD) |
	     bit(F_SCHEDULE, o->schedule != MACC_SCHEDULE_STATIC) |
	     bit(F_COMPRESS, o->compress != MACC_COMPRESS_NONE) | bit(F_DROP, o->drops) |
	     bit(F_EXPLICIT, o->explicit_weights) | bit(F_GOSSIP, o->gossip_step) |
	     bit(F_NOCOMPRESS, o->compress == MACC_COMPRESS_NONE);
	return f;
}

int macc_mixer_check_opts(const struct macc_mix_opts *o, enum macc_mix_dialect d,
			  struct macc_errmsg *err)
{
	unsigned f = features(o);

	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		const struct rule *r = &rules[i];
		char a[160], b[160];

		if (!(f & (1u << r->a)) || !(f & (1u << r->b))) {
			continue;
		}
		feat_name((enum feat)r->a, o, d, a, sizeof(a));
		feat_name((enum feat)r->b, o, d, b, sizeof(b));
		return macc_errf(err, MACC_ECONFIG, "%s%s%s%s", a, r->mid, b, r->tail);
	}
	return 0;
}

int macc_mixer_robust_cfg(const char *aggregation, bool has_factor, double factor,
			  struct macc_robust_cfg *ret, bool *ret_on, struct macc_errmsg *err)
{
	struct macc_robust_cfg c;
	int rc;

	macc_robust_cfg_default(&c);
	c.agg.kind = MACC_AGG_MEAN;
	if (aggregation != NULL) {
		rc = macc_agg_parse(aggregation, &c.agg, err);
		if (rc < 0) {
			return rc;
		}
	}
	if (has_factor) {
		c.factor = factor;
	} else if (c.agg.kind == MACC_AGG_MEAN) {
		c.factor = 0.0;
	}
	rc = macc_robust_cfg_validate(&c, err);
	if (rc < 0) {
		return rc;
	}
	*ret = c;
	*ret_on = c.agg.kind != MACC_AGG_MEAN || c.factor > 0.0;
	return 0;
}

/* ======================================================================================== */
/* Set-up                                                                                   */
/* ======================================================================================== */

/* The configuration's own consistency, in the options' terms, plus robust mixing's limits. */
static int check_cfg(const struct macc_mixer_cfg *c, struct macc_errmsg *err)
{
	struct macc_mix_opts o = {
		.algo = c->algo,
		.pushsum = c->pushsum,
		.schedule = c->schedule,
		.compress = c->comp.kind,
		.robust = c->robust,
	};
	int rc;

	if (c->algo == MACC_ALGO_CENTRALIZED || c->n == 0) {
		return macc_errf(err, -EINVAL, "the mixer takes a decentralized algorithm and "
				 "parameters");
	}
	rc = macc_mixer_check_opts(&o, MACC_MIX_CONF, err);
	if (rc < 0 || !c->robust) {
		return rc;
	}
	if (c->nnb > MACC_ROBUST_MAX_NB) {
		return macc_errf(err, MACC_ECONFIG, "robust mixing takes at most %d neighbours, this "
				 "agent has %zu", MACC_ROBUST_MAX_NB, c->nnb);
	}
	rc = macc_robust_cfg_validate(&c->rcfg, err);
	if (rc == 0) {
		rc = macc_agg_check_degree(&c->rcfg.agg, (uint32_t)c->nnb, err);
	}
	return rc;
}

/* The per-neighbour arrays, [cap] each, in one table so growing them is one loop. */
struct arrays {
	struct macc_mixer_link *nb;
	double *w, *wout, *w_in;
	bool *ok;
	struct macc_quarantine *q;
	uint8_t *reasons;
	struct macc_arrival *arr;
	struct macc_neighbour *list;
	float *cw;
};

static void arrays_of(const struct macc_mixer *m, struct arrays *a)
{
	*a = (struct arrays){m->nb, m->w, m->wout, m->w_in, m->ok, m->q, m->reasons, m->arr,
			     m->list, m->cw};
}

static void arrays_free(struct arrays *a)
{
	free(a->nb);
	free(a->w);
	free(a->wout);
	free(a->w_in);
	free(a->ok);
	free(a->q);
	free(a->reasons);
	free(a->arr);
	free(a->list);
	free(a->cw);
}

/* New arrays of cap entries holding the first `keep` entries of m's (zero beyond). */
static int arrays_alloc(const struct macc_mixer *m, size_t cap, size_t keep, struct arrays *a)
{
	size_t c = cap ? cap : 1;

	a->nb = calloc(c, sizeof(*a->nb));
	a->w = calloc(c, sizeof(*a->w));
	a->wout = calloc(c, sizeof(*a->wout));
	a->w_in = calloc(c, sizeof(*a->w_in));
	a->ok = calloc(c, sizeof(*a->ok));
	a->q = calloc(c, sizeof(*a->q));
	a->reasons = calloc(c, sizeof(*a->reasons));
	a->arr = calloc(c, sizeof(*a->arr));
	a->list = calloc(c, sizeof(*a->list));
	a->cw = calloc(c, sizeof(*a->cw));
	if (!a->nb || !a->w || !a->wout || !a->w_in || !a->ok || !a->q || !a->reasons || !a->arr ||
	    !a->list || !a->cw) {
		arrays_free(a);
		return -ENOMEM;
	}
	if (keep > 0) {
		memcpy(a->nb, m->nb, keep * sizeof(*a->nb));
		memcpy(a->w, m->w, keep * sizeof(*a->w));
		memcpy(a->q, m->q, keep * sizeof(*a->q));
	}
	return 0;
}

static void arrays_install(struct macc_mixer *m, const struct arrays *a, size_t cap)
{
	m->nb = a->nb;
	m->w = a->w;
	m->wout = a->wout;
	m->w_in = a->w_in;
	m->ok = a->ok;
	m->q = a->q;
	m->reasons = a->reasons;
	m->arr = a->arr;
	m->list = a->list;
	m->cw = a->cw;
	m->cap = cap;
}

/* A neighbour that starts now: every edge, agent number i, its copy as the caller says. */
static void link_fresh(struct macc_mixer *m, size_t i, bool in_sync)
{
	memset(&m->nb[i], 0, sizeof(m->nb[i]));
	m->nb[i].idx = (uint32_t)i;
	m->nb[i].in = m->nb[i].out = true;
	m->nb[i].hat_ok = in_sync;
	m->nb[i].hat_next = m->round;
	m->nb[i].last.reason = MACC_ROBUST_MISSING;
	m->w[i] = 0.0;
	memset(&m->q[i], 0, sizeof(m->q[i]));
}

/* The vectors: dsgd's half-step, push-sum's de-biased x, CHOCO's copies and blobs. */
static int alloc_vectors(struct macc_mixer *m, const float *x0)
{
	size_t n = m->cfg.n;

	if (m->after_grad) {
		m->y = calloc(n, sizeof(float));
		if (m->y == NULL) {
			return -ENOMEM;
		}
	}
	if (m->cfg.pushsum) {
		m->xdb = malloc(n * sizeof(float));
		if (m->xdb == NULL) {
			return -ENOMEM;
		}
		memcpy(m->xdb, x0, n * sizeof(float));
	}
	if (!m->compressed) {
		return 0;
	}
	m->blob_cap = macc_compress_size(&m->cfg.comp, n);
	m->blob_x = malloc(m->blob_cap);
	m->blob_v = m->sends_v ? malloc(m->blob_cap) : NULL;
	m->scratch = malloc(2 * n * sizeof(float));
	if (m->blob_x == NULL || (m->sends_v && m->blob_v == NULL) || m->scratch == NULL ||
	    macc_choco_init(&m->choco, n, m->cfg.nnb, m->sends_v, x0) < 0) {
		return -ENOMEM;
	}
	m->choco_made = true;
	return 0;
}

/* Room in rbuf for robust mixing with nnb neighbours. */
static int reserve_rbuf(struct macc_mixer *m, const struct macc_agg *agg, size_t nnb)
{
	size_t need = macc_robust_buf_floats(agg, m->cfg.n, nnb, m->sends_v);
	float *b;

	if (need <= m->rbuf_floats) {
		return 0;
	}
	b = realloc(m->rbuf, need * sizeof(float));
	if (b == NULL) {
		return -ENOMEM;
	}
	m->rbuf = b;
	m->rbuf_floats = need;
	return 0;
}

int macc_mixer_init(struct macc_mixer *m, const struct macc_mixer_cfg *c, const float *x0,
		    uint64_t round0, bool fresh, struct macc_errmsg *err)
{
	struct arrays a;
	int rc;

	memset(m, 0, sizeof(*m));
	rc = check_cfg(c, err);
	if (rc < 0) {
		return rc;
	}
	m->cfg = *c;
	m->sends_v = macc_algo_sends_momentum(c->algo);
	m->after_grad = macc_algo_sends_after_grad(c->algo);
	m->compressed = c->comp.kind != MACC_COMPRESS_NONE;
	m->varying = c->schedule != MACC_SCHEDULE_STATIC;
	m->partner = MACC_NO_PARTNER;
	m->pw = 1.0;
	m->round = round0;
	if (m->compressed && !(m->cfg.gamma > 0.0f)) {
		m->cfg.gamma = macc_compress_default_gamma(&c->comp);
	}
	rc = arrays_alloc(m, c->nnb, 0, &a);
	if (rc == 0) {
		arrays_install(m, &a, c->nnb);
		m->nnb = c->nnb;
		rc = alloc_vectors(m, x0);
	}
	if (rc == 0 && c->robust) {
		rc = reserve_rbuf(m, &c->rcfg.agg, c->nnb);
	}
	if (rc < 0) {
		macc_mixer_finish(m);
		return macc_errf(err, rc, "out of memory for the mixing state (%zu parameters, %zu "
				 "neighbours)", c->n, c->nnb);
	}
	for (size_t i = 0; i < m->nnb; i++) {
		link_fresh(m, i, fresh);
	}
	return 0;
}

void macc_mixer_finish(struct macc_mixer *m)
{
	struct arrays a;

	if (m == NULL) {
		return;
	}
	arrays_of(m, &a);
	arrays_free(&a);
	if (m->choco_made) {
		macc_choco_finish(&m->choco);
	}
	free(m->y);
	free(m->scratch);
	free(m->blob_x);
	free(m->blob_v);
	free(m->xdb);
	free(m->rbuf);
	memset(m, 0, sizeof(*m));
}

void macc_mixer_set_link(struct macc_mixer *m, size_t i, uint32_t idx, bool in, bool out)
{
	if (i < m->nnb) {
		m->nb[i].idx = idx;
		m->nb[i].in = in;
		m->nb[i].out = out;
	}
}

void macc_mixer_set_row(struct macc_mixer *m, double self_w, const double *w)
{
	m->self_w = self_w;
	if (m->nnb > 0) {
		memcpy(m->w, w, m->nnb * sizeof(*w));
	}
}

/* Whether the neighbour set is fixed by the mode (public copies, a graph's agent numbers). */
static bool fixed_neighbours(const struct macc_mixer *m)
{
	return m->compressed || m->cfg.pushsum || m->varying;
}

int macc_mixer_set_nnb(struct macc_mixer *m, size_t nnb)
{
	struct arrays a, old;
	int rc;

	if (nnb == m->nnb) {
		return 0;
	}
	if (fixed_neighbours(m)) {
		return MACC_ESTATE;
	}
	if (m->cfg.robust) {
		rc = reserve_rbuf(m, &m->cfg.rcfg.agg, nnb);
		if (rc < 0) {
			return rc;
		}
	}
	if (nnb > m->cap) {
		rc = arrays_alloc(m, nnb, m->nnb, &a);
		if (rc < 0) {
			return rc;
		}
		arrays_of(m, &old);
		arrays_free(&old);
		arrays_install(m, &a, nnb);
	}
	for (size_t i = m->nnb; i < nnb; i++) {
		link_fresh(m, i, true);
	}
	m->nnb = nnb;
	return 0;
}

int macc_mixer_set_robust(struct macc_mixer *m, bool on, const struct macc_robust_cfg *rcfg)
{
	int rc;

	if (!on) {
		m->cfg.robust = false;
		return 0;
	}
	if (fixed_neighbours(m) || macc_robust_cfg_validate(rcfg, NULL) < 0 ||
	    macc_agg_check_degree(&rcfg->agg, (uint32_t)m->nnb, NULL) < 0) {
		return MACC_ESTATE;
	}
	rc = reserve_rbuf(m, &rcfg->agg, m->nnb);
	if (rc < 0) {
		return rc;
	}
	m->cfg.rcfg = *rcfg;
	m->cfg.robust = true;
	return 0;
}

size_t macc_mixer_nnb(const struct macc_mixer *m)
{
	return m->nnb;
}

struct macc_quarantine *macc_mixer_quarantine(struct macc_mixer *m, size_t i)
{
	return i < m->nnb ? &m->q[i] : NULL;
}

const struct macc_mixer_outcome *macc_mixer_outcome(const struct macc_mixer *m, size_t i)
{
	return i < m->nnb ? &m->nb[i].last : NULL;
}

/* ======================================================================================== */
/* A round                                                                                  */
/* ======================================================================================== */

void macc_mixer_begin(struct macc_mixer *m, uint64_t round, uint32_t partner)
{
	m->round = round;
	m->partner = m->varying ? partner : MACC_NO_PARTNER;
}

/* Who talks to whom this round (the same rule both ways, see mixer.h). */
static bool talks(const struct macc_mixer *m, uint32_t idx, bool edge)
{
	if (m->cfg.pushsum) {
		return edge;
	}
	if (m->varying && !m->compressed) {
		return idx == m->partner;
	}
	return true;
}

bool macc_mixer_sends_to(const struct macc_mixer *m, uint32_t idx, bool out_edge)
{
	return talks(m, idx, out_edge);
}

bool macc_mixer_expects(const struct macc_mixer *m, uint32_t idx, bool in_edge)
{
	return talks(m, idx, in_edge);
}

const float *macc_mixer_model(const struct macc_mixer *m, const float *x)
{
	return m->cfg.pushsum ? m->xdb : x;
}

double macc_mixer_pushsum_weight(const struct macc_mixer *m)
{
	return m->pw;
}

void macc_mixer_moved(void *mixer, const float *x)
{
	struct macc_mixer *m = mixer;

	if (m->cfg.pushsum) {
		macc_pushsum_debias(m->cfg.n, x, m->pw, m->xdb);
	}
}

int macc_mixer_outgoing(struct macc_mixer *m, const struct macc_hparams *hp, const float *x,
			const float *v, const float *g, struct macc_mixer_out *ret,
			struct macc_errmsg *err)
{
	struct macc_mixer_out o;
	ssize_t len;

	memset(&o, 0, sizeof(o));
	o.x = macc_algo_outgoing(m->cfg.algo, hp, m->cfg.n, x, g, m->y);
	o.v = m->sends_v ? v : NULL;
	o.has_weight = m->cfg.pushsum;
	o.weight = m->pw;
	o.enc = m->cfg.comp.kind;
	if (m->compressed) {
		len = macc_choco_send(&m->cfg.comp, m->cfg.n, o.x, m->choco.xhat_self, m->blob_x,
				      m->blob_cap, err);
		if (len < 0) {
			return (int)len;
		}
		o.x_blob = m->blob_x;
		o.x_len = (size_t)len;
	}
	if (m->compressed && m->sends_v) {
		len = macc_choco_send(&m->cfg.comp, m->cfg.n, v, m->choco.vhat_self, m->blob_v,
				      m->blob_cap, err);
		if (len < 0) {
			return (int)len;
		}
		o.v_blob = m->blob_v;
		o.v_len = (size_t)len;
	}
	*ret = o;
	return 0;
}

const float *macc_mixer_public_x(const struct macc_mixer *m)
{
	return m->choco_made ? m->choco.xhat_self : NULL;
}

const float *macc_mixer_public_v(const struct macc_mixer *m)
{
	return m->choco_made ? m->choco.vhat_self : NULL;
}

/* ---- the step's paths ---- */

/* Mean over the neighbours taken in of ||x - z_l||^2 (status only): float differences summed
 * per block of 256 into a double. src(i) is what was mixed for neighbour i. */
static double dist_to(size_t n, const float *x, const float *z)
{
	double s = 0.0;

	for (size_t k0 = 0; k0 < n; k0 += 256) {
		size_t k1 = k0 + 256 < n ? k0 + 256 : n;
		float part = 0.0f;

		for (size_t k = k0; k < k1; k++) {
			float d = x[k] - z[k];

			part += d * d;
		}
		s += part;
	}
	return s;
}

static void measure(const struct macc_mixer *m, const float *x, const struct macc_mixer_in *in,
		    unsigned flags, struct macc_mixer_report *rep)
{
	double sum = 0.0;
	size_t cnt = 0;

	if (!(flags & MACC_MIXER_MEASURE)) {
		return;
	}
	for (size_t i = 0; i < m->nnb; i++) {
		const float *z = m->compressed ? macc_choco_peer_x(&m->choco, i) : in[i].x;

		if (m->nb[i].last.reason != MACC_ROBUST_OK || z == NULL) {
			continue;
		}
		sum += dist_to(m->cfg.n, x, z);
		cnt++;
	}
	rep->dist = cnt > 0 ? sum / (double)cnt : NAN;
}

static const float *v_of(const struct macc_mixer *m, const struct macc_mixer_in *in)
{
	return m->sends_v ? in->v : NULL;
}

/* Static graph: the row, missing neighbours folded, the consensus step. */
static void step_plain(struct macc_mixer *m, const struct macc_hparams *hp, float *x, float *v,
		       const float *g, const struct macc_mixer_in *in, unsigned flags,
		       struct macc_mixer_report *rep)
{
	double sw;
	size_t cnt = 0;

	for (size_t i = 0; i < m->nnb; i++) {
		m->ok[i] = in[i].arrived;
	}
	(void)macc_fold_missing(m->self_w, m->w, m->ok, m->nnb, &sw, m->wout);
	for (size_t i = 0; i < m->nnb; i++) {
		if (!m->ok[i]) {
			continue;
		}
		m->list[cnt++] = (struct macc_neighbour){(float)m->wout[i], in[i].x, v_of(m, &in[i])};
		m->nb[i].last.reason = MACC_ROBUST_OK;
	}
	measure(m, x, in, flags, rep);
	macc_consensus_step(m->cfg.algo, hp, m->cfg.n, x, v, g, (float)sw, m->list, cnt, NULL);
}

/* The robust outcome of neighbour i after macc_robust_prepare. */
static void robust_outcome(struct macc_mixer *m, size_t i)
{
	struct macc_mixer_outcome *o = &m->nb[i].last;
	const struct macc_arrival *a = &m->arr[i];
	const struct macc_neighbour *l = &m->list[i];

	o->reason = m->reasons[i];
	o->quarantined = m->q[i].times > m->nb[i].qtimes;
	o->clipped = m->cfg.rcfg.agg.kind != MACC_AGG_TRIMMED && o->reason == MACC_ROBUST_OK &&
		     (l->x != a->x || (m->sends_v && l->v != a->v));
}

/* Static graph, robust: screening, quarantine, aggregation rule and folding first. */
static void step_robust(struct macc_mixer *m, const struct macc_hparams *hp, float *x, float *v,
			const float *g, const struct macc_mixer_in *in, unsigned flags,
			struct macc_mixer_report *rep)
{
	const float *own = m->after_grad ? m->y : x;
	float sw = 1.0f;
	int rc;

	for (size_t i = 0; i < m->nnb; i++) {
		m->arr[i].w = m->w[i];
		m->arr[i].x = in[i].arrived ? in[i].x : NULL;
		m->arr[i].v = in[i].arrived ? v_of(m, &in[i]) : NULL;
		m->nb[i].qtimes = m->q[i].times;
	}
	rc = macc_robust_prepare(&m->cfg.rcfg, &m->rob, m->q, m->cfg.algo, m->round, m->cfg.n,
				 own, m->sends_v ? v : NULL, m->self_w, m->arr, m->nnb, m->rbuf,
				 &sw, m->list, m->reasons, NULL);
	if (rc < 0) {
		/* Its own state is not finite (or a bug): mix with nobody, keep going. */
		rep->rc = rc;
		sw = 1.0f;
		rc = 0;
	} else {
		for (size_t i = 0; i < m->nnb; i++) {
			robust_outcome(m, i);
		}
	}
	measure(m, x, in, flags, rep);
	macc_consensus_step(m->cfg.algo, hp, m->cfg.n, x, v, g, sw, m->list, (size_t)rc, NULL);
}

/* Position of the neighbour with agent number idx, or nnb. */
static size_t find(const struct macc_mixer *m, uint32_t idx)
{
	size_t i = 0;

	while (i < m->nnb && m->nb[i].idx != idx) {
		i++;
	}
	return i;
}

/* A schedule, uncompressed: the partner only, at the round graph's weights, folded if missing. */
static void step_varying(struct macc_mixer *m, const struct macc_hparams *hp, float *x, float *v,
			 const float *g, const struct macc_mixer_in *in, unsigned flags,
			 struct macc_mixer_report *rep)
{
	size_t i = find(m, m->partner), cnt = 0;
	double self_w = 1.0;

	if (m->partner != MACC_NO_PARTNER && i < m->nnb) {
		bool ok = in[i].arrived;
		double sw, w, w_out;

		macc_schedule_weights(m->partner, &sw, &w);
		(void)macc_fold_missing(sw, &w, &ok, 1, &self_w, &w_out);
		if (ok) {
			m->list[0] = (struct macc_neighbour){(float)w_out, in[i].x, v_of(m, &in[i])};
			m->nb[i].last.reason = MACC_ROBUST_OK;
			cnt = 1;
		}
	}
	measure(m, x, in, flags, rep);
	macc_consensus_step(m->cfg.algo, hp, m->cfg.n, x, v, g, (float)self_w, m->list, cnt, NULL);
}

/* Push-sum: the in-neighbours' shares (a missing one folded into the own share), the step on
 * the numerators, the weight, then x = z / w. */
static void step_push(struct macc_mixer *m, const struct macc_hparams *hp, float *x, float *v,
		      const float *g, const struct macc_mixer_in *in, unsigned flags,
		      struct macc_mixer_report *rep)
{
	double self_p = m->self_w;
	size_t nin = 0;

	for (size_t i = 0; i < m->nnb; i++) {
		if (!m->nb[i].in) {
			continue;
		}
		if (!in[i].arrived) {
			self_p += m->w[i];
			continue;
		}
		m->wout[nin] = m->w[i];
		m->w_in[nin] = in[i].weight;
		m->list[nin++] = (struct macc_neighbour){(float)m->w[i], in[i].x, v_of(m, &in[i])};
		m->nb[i].last.reason = MACC_ROBUST_OK;
	}
	measure(m, x, in, flags, rep);
	(void)macc_pushsum_step(m->cfg.algo, hp, m->cfg.n, x, v, g, (float)self_p, m->list, nin,
				NULL);
	m->pw = macc_pushsum_weight(self_p, m->pw, m->wout, m->w_in, nin);
	macc_pushsum_debias(m->cfg.n, x, m->pw, m->xdb);
}

/* CHOCO: take neighbour i's round state into our copy of its public vectors if it can be
 * taken (a full state, or the difference that follows the copy); returns whether the copy is
 * usable this round. A copy is either bit for bit the sender's public copy or not used. */
static bool take_in(struct macc_mixer *m, size_t i, const struct macc_mixer_in *in)
{
	struct macc_mixer_link *l = &m->nb[i];
	float *hx = macc_choco_peer_x(&m->choco, i);
	float *hv = m->sends_v ? macc_choco_peer_v(&m->choco, i) : NULL;
	size_t n = m->cfg.n;
	bool follows = l->hat_ok && l->hat_next == m->round;
	int rc = 0;

	if (!in->arrived) {
		l->last.sync_lost = follows;
		l->hat_ok = l->hat_ok && !follows;
		return false;
	}
	if (in->full) {
		memcpy(hx, in->x, n * sizeof(float));
		if (hv != NULL) {
			memcpy(hv, in->v, n * sizeof(float));
		}
		l->last.resynced = true;
	} else if (follows) {
		rc = macc_compress_decode_add(in->x_blob, in->x_len, n, hx, NULL, NULL);
		if (rc == 0 && hv != NULL) {
			rc = macc_compress_decode_add(in->v_blob, in->v_len, n, hv, NULL, NULL);
		}
	}
	if ((!in->full && !follows) || rc < 0) {
		l->hat_ok = false;
		l->last.out_of_sync = true;
		return false;
	}
	l->hat_ok = true;
	l->hat_next = m->round + 1;
	return true;
}

/* Compressed: every neighbour's difference into our copies, then mixhat over the usable ones,
 * at the row's weights or, with a schedule, the partner's. */
static void step_choco(struct macc_mixer *m, const struct macc_hparams *hp, float *x, float *v,
		       const float *g, const struct macc_mixer_in *in, unsigned flags,
		       struct macc_mixer_report *rep)
{
	double sw = 0.0, pw = 0.0;

	if (m->varying && m->partner != MACC_NO_PARTNER) {
		macc_schedule_weights(m->partner, &sw, &pw);
	}
	for (size_t i = 0; i < m->nnb; i++) {
		double w = m->w[i];

		if (!take_in(m, i, &in[i])) {
			m->cw[i] = 0.0f;
			continue;
		}
		m->nb[i].last.reason = MACC_ROBUST_OK;
		if (m->varying) {
			w = m->nb[i].idx == m->partner ? pw : 0.0;
		}
		m->cw[i] = (float)w;
	}
	measure(m, x, in, flags, rep);
	macc_choco_step(m->cfg.algo, hp, m->cfg.gamma, m->cfg.n, x, v, g, &m->choco, m->cw,
			m->scratch);
}

static void tally(const struct macc_mixer *m, struct macc_mixer_report *rep)
{
	for (size_t i = 0; i < m->nnb; i++) {
		const struct macc_mixer_outcome *o = &m->nb[i].last;

		rep->count[o->reason]++;
		rep->missed += o->expected && o->reason == MACC_ROBUST_MISSING;
		rep->clipped += o->clipped;
		rep->quarantined += o->quarantined;
		rep->resynced += o->resynced;
		rep->sync_lost += o->sync_lost;
		rep->out_of_sync += o->out_of_sync;
	}
}

void macc_mixer_step(struct macc_mixer *m, const struct macc_hparams *hp, float *x, float *v,
		     const float *g, const struct macc_mixer_in *in, unsigned flags,
		     struct macc_mixer_report *ret)
{
	struct macc_mixer_report rep;

	memset(&rep, 0, sizeof(rep));
	rep.dist = NAN;
	for (size_t i = 0; i < m->nnb; i++) {
		const struct macc_mixer_link *l = &m->nb[i];

		m->nb[i].last = (struct macc_mixer_outcome){
			.reason = MACC_ROBUST_MISSING,
			.expected = macc_mixer_expects(m, l->idx, l->in),
		};
	}
	if (m->compressed) {
		step_choco(m, hp, x, v, g, in, flags, &rep);
	} else if (m->cfg.pushsum) {
		step_push(m, hp, x, v, g, in, flags, &rep);
	} else if (m->varying) {
		step_varying(m, hp, x, v, g, in, flags, &rep);
	} else if (m->cfg.robust) {
		step_robust(m, hp, x, v, g, in, flags, &rep);
	} else {
		step_plain(m, hp, x, v, g, in, flags, &rep);
	}
	tally(m, &rep);
	*ret = rep;
}
