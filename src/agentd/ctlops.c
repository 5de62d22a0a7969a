/*
 * ctlops.c - the control-socket operations of one agent (struct macc_ctl_ops, ctl.h): what
 * status, peers, metrics and audit show, and the requests passed on to the round driver
 * (round_request) and to reload. The protocol itself (framing, clients, limits) is control.c's.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

#ifndef MACC_VERSION
#define MACC_VERSION "0.1.0"
#endif

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
	st->epoch = agent_epoch(a, a->round);
	st->epochs_planned = agent_epoch(a, a->total_rounds);
	st->train_loss = a->train_loss;
	st->test_loss = a->have_eval ? a->test_loss : NAN;
	st->test_accuracy_ratio = a->have_eval ? a->test_acc : NAN;
	st->samples_per_second = elapsed > 0 ? (double)a->samples_total / elapsed : 0.0;
	st->round_seconds = a->round_time_s;
	st->consensus_distance = a->consensus_distance;
	st->peers_up = agent_peers_up(a);
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
 * rejection. A new reason in conn.c or session.c belongs here
 * too. */
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
	return round_request(ctx, ROUND_REQ_START, err);
}

static int ctl_stop(void *ctx, struct macc_errmsg *err)
{
	return round_request(ctx, ROUND_REQ_STOP, err);
}

static int ctl_pause(void *ctx, struct macc_errmsg *err)
{
	return round_request(ctx, ROUND_REQ_PAUSE, err);
}

static int ctl_resume(void *ctx, struct macc_errmsg *err)
{
	return round_request(ctx, ROUND_REQ_RESUME, err);
}

static int ctl_checkpoint(void *ctx, struct macc_errmsg *err)
{
	return round_request(ctx, ROUND_REQ_CHECKPOINT, err);
}

static int ctl_eval(void *ctx, struct macc_errmsg *err)
{
	return round_request(ctx, ROUND_REQ_EVAL, err);
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

/* `model` and `predict` read the published snapshot (publish.h), retaken first when it is due
 * and the worker is idle (agent_publish_model). */
static int ctl_model(void *ctx, const struct macc_ctl_request *req, struct macc_ctl_model *ret,
		     struct macc_errmsg *err)
{
	struct macc_agent *a = ctx;

	agent_publish_model(a, true, a->phase == PH_NONE);
	return pub_model(a->pub, req, macc_now_ms(), ret, err);
}

static int ctl_predict(void *ctx, const struct macc_ctl_request *req,
		       struct macc_ctl_predict *ret, struct macc_errmsg *err)
{
	struct macc_agent *a = ctx;

	agent_publish_model(a, true, a->phase == PH_NONE);
	return pub_predict(a->pub, req, ret, err);
}

static int ctl_reload(void *ctx, struct macc_errmsg *err)
{
	return agent_reload(ctx, err);
}

static int ctl_log_level(void *ctx, enum macc_log_level level, struct macc_errmsg *err)
{
	(void)ctx;
	(void)err;
	macc_log_set_level(level);
	macc_info(NULL, "log level set to %s", macc_log_level_name(level));
	return 0;
}

/* Additive: a new operation is one more callback and one more line here. */
const struct macc_ctl_ops agent_ctl_ops = {
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
