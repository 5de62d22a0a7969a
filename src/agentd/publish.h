/*
 * publish.h - the published model of an agent: what the control commands `model` and
 * `predict` read (internal to macc-agentd; the protocol is in macc/ctl.h).
 *
 * The worker thread owns the live parameters x while a job is in flight, so the control
 * socket (on the loop thread) never reads x: it reads a copy, taken by the loop at a round
 * boundary, when no job is in flight. The agent asks pub_due() at every round boundary and
 * before it answers a request, and calls pub_take() when it says so. The rule:
 *   - a request that finds the worker idle gets the current parameters (a copy is taken
 *     when the round moved on since the last one);
 *   - while requests come (one in the last PUB_ASKED_MS), a copy is taken at every round
 *     boundary, so answers lag the live model by at most one round;
 *   - otherwise a copy is taken at a round boundary at most every PUB_IDLE_MS, so that the
 *     first request after a quiet spell is never far behind and an idle fleet pays one
 *     memcpy of its parameters per second at most;
 *   - a chunked `model` transfer holds the copy it started from (no new copy while its chunks
 *     keep coming, each within PUB_PIN_MS of the last).
 * Each copy has a generation number (1, 2, ...) and its round; replies carry both.
 *
 * The standardiser (nn.h) is copied with the parameters, so predictions and exports always
 * use the transform of the same moment. Predictions run on a model object of our own
 * (its workspace is separate from the worker's).
 */
#ifndef MACC_AGENTD_PUBLISH_H
#define MACC_AGENTD_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>

#include "macc/ctl.h"
#include "macc/err.h"
#include "macc/nn.h"

#define PUB_ASKED_MS 10000
#define PUB_IDLE_MS 1000
#define PUB_PIN_MS 10000

struct macc_pub;

/* For model `m` (spec, sizes; borrowed until destroy). -ENOMEM, or the model's create errors. */
int pub_create(const struct macc_model *m, const char *agent_name, struct macc_pub **ret,
	       struct macc_errmsg *err);
void pub_destroy(struct macc_pub *p); /* NULL ok */

/* Whether a copy of the model at `round` should be taken now, by the rule above: asked at a
 * round boundary (request false) or before answering a request (request true; recorded as
 * one). The caller takes it only when the worker is idle. */
bool pub_due(struct macc_pub *p, uint64_t round, bool request, uint64_t now_ms);

/* Copy x (nparams floats) and the standardiser of the agent's model `m`, as of `round`. */
void pub_take(struct macc_pub *p, const float *x, uint64_t round, const struct macc_model *m,
	      uint64_t now_ms);

/* The `model` and `predict` commands on the current copy (control.h for the contracts). */
int pub_model(struct macc_pub *p, const struct macc_ctl_request *req, uint64_t now_ms,
	      struct macc_ctl_model *ret, struct macc_errmsg *err);
int pub_predict(struct macc_pub *p, const struct macc_ctl_request *req,
		struct macc_ctl_predict *ret, struct macc_errmsg *err);

#endif
