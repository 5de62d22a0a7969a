/*
 * control_cmd.c - the control server's command dispatch (the connection side is control.c; the
 * state both share is in control_int.h).
 *
 * Design: one request in, one reply out. ctl_run_command() maps a decoded and permitted request
 * onto the agent's callbacks (struct macc_ctl_ops) and fills the reply: data on success, a
 * status and an error naming the command on failure, `not supported by this daemon` when the
 * agent leaves the callback NULL. It never writes to the socket and never closes a client:
 * control.c encodes and sends the reply, then frees what the command allocated for it
 * (*ret_free1 and *ret_free2: peers, metrics text, model or predict buffers). `watch` only
 * marks the client as a watcher; the events themselves are pushed by macc_ctl_server_publish().
 */
#include <stdlib.h>
#include <string.h>

#include "macc/buf.h"
#include "macc/ctl.h"

#include "control_int.h"

static void progress_from_status(const struct macc_ctl_status *st, struct macc_ctl_progress *p)
{
	macc_ctl_progress_init(p);
	p->state = st->state;
	p->round = st->round;
	p->rounds_planned = st->rounds_planned;
	p->epoch = st->epoch;
	p->epochs_planned = st->epochs_planned;
	p->train_loss = st->train_loss;
	p->test_accuracy_ratio = st->test_accuracy_ratio;
	p->samples_per_second = st->samples_per_second;
	p->round_seconds = st->round_seconds;
	p->final = st->state == MACC_CTL_STATE_DONE || st->state == MACC_CTL_STATE_ERROR;
}

/* --- dispatch ---------------------------------------------------------------------------- */

typedef int (*simple_op)(void *ctx, struct macc_errmsg *err);

static simple_op simple_op_for(const struct macc_ctl_ops *ops, enum macc_ctl_cmd cmd)
{
	switch (cmd) {
	case MACC_CTL_CMD_START:
		return ops->start;
	case MACC_CTL_CMD_STOP:
		return ops->stop;
	case MACC_CTL_CMD_PAUSE:
		return ops->pause;
	case MACC_CTL_CMD_RESUME:
		return ops->resume;
	case MACC_CTL_CMD_CHECKPOINT:
		return ops->checkpoint;
	case MACC_CTL_CMD_EVAL:
		return ops->eval;
	case MACC_CTL_CMD_RELOAD:
		return ops->reload;
	default:
		return NULL;
	}
}

/* model and predict: the agent fills the reply's data; its buffer is freed after the send.
 * Returns 1 when the agent does not support the command. */
static int run_model_command(struct macc_ctl_server *s, const struct macc_ctl_request *req,
			     struct macc_ctl_reply *rep, void **ret_free, struct macc_errmsg *err)
{
	int r;

	if (req->cmd == MACC_CTL_CMD_MODEL) {
		if (s->ops->model == NULL) {
			return 1;
		}
		memset(&rep->model, 0, sizeof(rep->model));
		r = s->ops->model(s->ctx, req, &rep->model, err);
		*ret_free = rep->model.data;
		rep->kind = MACC_CTL_DATA_MODEL;
		return r;
	}
	if (s->ops->predict == NULL) {
		return 1;
	}
	memset(&rep->predict, 0, sizeof(rep->predict));
	r = s->ops->predict(s->ctx, req, &rep->predict, err);
	*ret_free = rep->predict.values;
	rep->kind = MACC_CTL_DATA_PREDICT;
	return r;
}

/* Run a command; fills rep (status, error, data). Peers/text allocated here are freed by the
 * caller through *ret_free. */
void ctl_run_command(struct client *c, const struct macc_ctl_request *req,
		     struct macc_ctl_reply *rep, void **ret_free1, void **ret_free2)
{
	struct macc_ctl_server *s = c->srv;
	const struct macc_ctl_ops *ops = s->ops;
	struct macc_errmsg err;
	const char *name = macc_ctl_commands[req->cmd].name;
	int r = 0;

	err.text[0] = '\0';
	switch (req->cmd) {
	case MACC_CTL_CMD_STATUS:
		if (ops->status == NULL) {
			goto unsupported;
		}
		r = ops->status(s->ctx, &rep->st);
		rep->kind = MACC_CTL_DATA_STATUS;
		break;
	case MACC_CTL_CMD_PEERS: {
		struct macc_ctl_peer *peers = NULL;
		size_t n = 0;

		if (ops->peers == NULL) {
			goto unsupported;
		}
		r = ops->peers(s->ctx, &peers, &n);
		if (r == 0) {
			rep->peers = peers;
			rep->npeers = n;
			*ret_free1 = peers;
			rep->kind = MACC_CTL_DATA_PEERS;
		} else {
			free(peers);
		}
		break;
	}
	case MACC_CTL_CMD_METRICS: {
		struct macc_ctl_status st;
		struct macc_ctl_metrics m;
		struct macc_ctl_peer *peers = NULL;
		size_t n = 0;
		struct macc_buf b;

		if (ops->status == NULL || ops->metrics == NULL) {
			goto unsupported;
		}
		macc_ctl_status_init(&st);
		memset(&m, 0, sizeof(m));
		r = ops->status(s->ctx, &st);
		if (r == 0) {
			r = ops->metrics(s->ctx, &m);
		}
		if (r == 0 && ops->peers != NULL) {
			r = ops->peers(s->ctx, &peers, &n);
		}
		if (r == 0) {
			macc_buf_init(&b, MACC_CTL_MAX_REPLY / 2);
			r = macc_ctl_metrics_format(&st, peers, n, &m, &b);
			if (r == 0) {
				r = macc_buf_append(&b, "", 1);
			}
			if (r == 0) {
				size_t len;

				rep->text = (char *)macc_buf_steal(&b, &len);
				rep->text_len = len - 1;
				*ret_free1 = rep->text;
				rep->kind = MACC_CTL_DATA_TEXT;
			}
			macc_buf_finish(&b);
		}
		free(peers);
		break;
	}
	case MACC_CTL_CMD_VERSION:
		rep->text = s->version;
		rep->text_len = strlen(s->version);
		rep->kind = MACC_CTL_DATA_TEXT;
		break;
	case MACC_CTL_CMD_AUDIT:
		if (ops->audit == NULL) {
			goto unsupported;
		}
		memset(&rep->audit, 0, sizeof(rep->audit));
		r = ops->audit(s->ctx, req->limit > 0 ? req->limit : MACC_CTL_AUDIT_DEFAULT,
			       &rep->audit, &err);
		if (r == 0) {
			*ret_free1 = rep->audit.entries;
			rep->kind = MACC_CTL_DATA_AUDIT;
		} else {
			free(rep->audit.entries);
			rep->audit.entries = NULL;
			rep->audit.nentries = 0;
		}
		break;
	case MACC_CTL_CMD_MODEL:
	case MACC_CTL_CMD_PREDICT:
		r = run_model_command(s, req, rep, ret_free1, &err);
		if (r == 1) {
			goto unsupported;
		}
		break;
	case MACC_CTL_CMD_LOG_LEVEL:
		if (ops->log_level == NULL) {
			goto unsupported;
		}
		r = ops->log_level(s->ctx, req->level, &err);
		break;
	case MACC_CTL_CMD_WATCH: {
		struct macc_ctl_status st;

		macc_ctl_status_init(&st);
		if (ops->status != NULL) {
			r = ops->status(s->ctx, &st);
		}
		if (r == 0) {
			progress_from_status(&st, &rep->progress);
			rep->kind = MACC_CTL_DATA_PROGRESS;
			if (!rep->progress.final && !c->watching) {
				c->watching = true;
				s->nwatchers++;
				ctl_restart_timer(c);
			}
			c->watch_id = req->id;
		}
		break;
	}
	default: {
		simple_op op = simple_op_for(ops, req->cmd);

		if (op == NULL) {
			goto unsupported;
		}
		r = op(s->ctx, &err);
		break;
	}
	}
	(void)ret_free2;
	if (r < 0) {
		rep->kind = MACC_CTL_DATA_NONE;
		rep->status = macc_ctl_status_from_err(r);
		snprintf(rep->error, sizeof(rep->error), "%s: %.230s", name,
			 err.text[0] != '\0' ? err.text : macc_strerror(r));
	}
	return;
unsupported:
	rep->status = MACC_CTL_EFAILED;
	snprintf(rep->error, sizeof(rep->error), "%s: not supported by this daemon", name);
}
