/*
 * ctlproto.c - the control protocol codec shared by macc-agentd and macc-ctl (see macc/ctl.h).
 *
 * Design: every payload struct (status, progress, peer) is described once by a table of fields
 * (wire key, type, offset), and one generic encoder and one generic decoder walk the table, so
 * the two directions cannot drift apart and a new field is one table row. The wire keys are also
 * the keys macc-ctl prints in --json, which keeps them stable and documented in one place.
 *
 * Decoding is defensive: before msgpack-c sees a body, the bounded reader that the peer codec
 * uses too (mpread.c, macc_mp_skip) walks the raw bytes without allocating and refuses anything
 * whose declared lengths or element counts exceed the bytes that remain, or that nests deeper
 * than MAX_DEPTH. msgpack-c sizes its zone from declared counts, so
 * without this a 5-byte "array of 4 billion" header would make it try a huge allocation. Decoded
 * requests are checked in the order of ctl.h (shape, version, command, arguments). Unknown keys
 * are ignored at the top level and in reply payloads (forward compatibility) but refused in
 * request arguments, where a typo must not silently do something else.
 *
 * The Prometheus text formatter lives here too, so the exposition format exists in one place.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "macc/buf.h"
#include "macc/ctl.h"

#include "mpread.h"

#define MAX_DEPTH 16

/* --- tables --------------------------------------------------------------------------------- */

const struct macc_ctl_cmdinfo macc_ctl_commands[MACC_CTL_CMD_COUNT] = {
	{ MACC_CTL_CMD_STATUS, "status", false, MACC_CTL_DATA_STATUS,
	  "show the agent's state, round, loss, accuracy and peers up" },
	{ MACC_CTL_CMD_PEERS, "peers", false, MACC_CTL_DATA_PEERS,
	  "list the neighbours with session state, RTT, traffic and rejected messages" },
	{ MACC_CTL_CMD_START, "start", true, MACC_CTL_DATA_NONE, "start (or restart) training" },
	{ MACC_CTL_CMD_STOP, "stop", true, MACC_CTL_DATA_NONE,
	  "stop training after the current round" },
	{ MACC_CTL_CMD_PAUSE, "pause", true, MACC_CTL_DATA_NONE, "pause after the current round" },
	{ MACC_CTL_CMD_RESUME, "resume", true, MACC_CTL_DATA_NONE, "resume a paused run" },
	{ MACC_CTL_CMD_CHECKPOINT, "checkpoint", true, MACC_CTL_DATA_NONE,
	  "write a checkpoint now" },
	{ MACC_CTL_CMD_EVAL, "eval", true, MACC_CTL_DATA_NONE,
	  "evaluate on the test set now" },
	{ MACC_CTL_CMD_METRICS, "metrics", false, MACC_CTL_DATA_TEXT,
	  "print metrics in Prometheus text format" },
	{ MACC_CTL_CMD_WATCH, "watch", false, MACC_CTL_DATA_PROGRESS,
	  "follow training progress until the run ends" },
	{ MACC_CTL_CMD_RELOAD, "reload", true, MACC_CTL_DATA_NONE,
	  "re-read the config file (peers added, removed, re-weighted)" },
	{ MACC_CTL_CMD_LOG_LEVEL, "log-level", true, MACC_CTL_DATA_NONE,
	  "set the daemon's log level: error, warn, info or debug" },
	{ MACC_CTL_CMD_VERSION, "version", false, MACC_CTL_DATA_TEXT,
	  "show the daemon's version" },
	{ MACC_CTL_CMD_AUDIT, "audit", false, MACC_CTL_DATA_AUDIT,
	  "list the audit trail: signed states that robust mixing excluded" },
	{ MACC_CTL_CMD_MODEL, "model", false, MACC_CTL_DATA_MODEL,
	  "send the live model (spec, parameters, standardiser) in chunks" },
	{ MACC_CTL_CMD_PREDICT, "predict", false, MACC_CTL_DATA_PREDICT,
	  "score rows with the live model" },
};

const struct macc_ctl_cmdinfo *macc_ctl_cmd_find(const char *name)
{
	for (size_t i = 0; i < MACC_CTL_CMD_COUNT; i++) {
		if (strcmp(macc_ctl_commands[i].name, name) == 0) {
			return &macc_ctl_commands[i];
		}
	}
	return NULL;
}

static const char *const status_names[MACC_CTL_STATUS_COUNT] = {
	"ok",        "malformed", "version", "unknown-command", "bad-arguments",
	"permission-denied", "too-big", "bad-state", "config", "busy", "failed", "internal",
};

const char *macc_ctl_status_name(int status)
{
	if (status >= 0 && status < MACC_CTL_STATUS_COUNT) {
		return status_names[status];
	}
	return "unknown";
}

int macc_ctl_status_from_err(int code)
{
	switch (code) {
	case 0:
		return MACC_CTL_OK;
	case MACC_EMALFORMED:
		return MACC_CTL_EMALFORMED;
	case MACC_EVERSION:
		return MACC_CTL_EVERSION;
	case MACC_EUNKNOWNCMD:
		return MACC_CTL_EUNKNOWNCMD;
	case MACC_ESPEC:
		return MACC_CTL_EARGS;
	case MACC_EPERM:
		return MACC_CTL_EPERM;
	case MACC_ETOOBIG:
		return MACC_CTL_ETOOBIG;
	case MACC_ESTATE:
		return MACC_CTL_ESTATE;
	case MACC_ECONFIG:
		return MACC_CTL_ECONFIG;
	case -ENOMEM:
		return MACC_CTL_EINTERNAL;
	default:
		return MACC_CTL_EFAILED;
	}
}

static const char *const state_names[MACC_CTL_STATE_COUNT] = {
	"idle", "training", "paused", "done", "error",
};

const char *macc_ctl_state_name(enum macc_ctl_state s)
{
	if ((unsigned)s < MACC_CTL_STATE_COUNT) {
		return state_names[s];
	}
	return "unknown";
}

static const char *const session_names[MACC_CTL_SESSION_COUNT] = {
	"down", "connecting", "handshake", "up", "dead",
};

const char *macc_ctl_session_name(enum macc_ctl_session s)
{
	if ((unsigned)s < MACC_CTL_SESSION_COUNT) {
		return session_names[s];
	}
	return "unknown";
}

static const char *const connrej_names[MACC_CTL_CONNREJ_COUNT] = {
	"unknown_key", "version", "malformed", "timeout", "flood",
	"unproven_state", "bad_proof", "replay", "rate_limited", "other",
};

const char *macc_ctl_connrej_name(enum macc_ctl_connrej r)
{
	if ((unsigned)r < MACC_CTL_CONNREJ_COUNT) {
		return connrej_names[r];
	}
	return "unknown";
}

const double macc_ctl_round_buckets[MACC_CTL_ROUND_BUCKETS] = {
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};

/* --- field tables ------------------------------------------------------------------------- */

enum ftype { F_STR, F_U64, F_U32, F_I64, F_DBL, F_BOOL, F_STATE, F_SESSION };

struct field {
	const char *key;
	enum ftype type;
	size_t off;
	size_t size; /* F_STR: buffer size */
};

#define FS(st, k, f) { #f, F_STR, offsetof(struct st, f), sizeof(((struct st *)0)->f) }
#define FT(st, f, t) { #f, t, offsetof(struct st, f), 0 }

static const struct field status_fields[] = {
	FT(macc_ctl_status, state, F_STATE),
	FS(macc_ctl_status, k, name),
	FS(macc_ctl_status, k, model),
	FS(macc_ctl_status, k, algorithm),
	FS(macc_ctl_status, k, version),
	FS(macc_ctl_status, k, arch),
	FS(macc_ctl_status, k, blas),
	FT(macc_ctl_status, round, F_U64),
	FT(macc_ctl_status, rounds_planned, F_U64),
	FT(macc_ctl_status, epoch, F_DBL),
	FT(macc_ctl_status, epochs_planned, F_DBL),
	FT(macc_ctl_status, train_loss, F_DBL),
	FT(macc_ctl_status, test_loss, F_DBL),
	FT(macc_ctl_status, test_accuracy_ratio, F_DBL),
	FT(macc_ctl_status, samples_per_second, F_DBL),
	FT(macc_ctl_status, round_seconds, F_DBL),
	FT(macc_ctl_status, consensus_distance, F_DBL),
	FT(macc_ctl_status, peers_up, F_U32),
	FT(macc_ctl_status, peers_configured, F_U32),
	FT(macc_ctl_status, uptime_seconds, F_U64),
	FT(macc_ctl_status, process_start_time_seconds, F_DBL),
	FT(macc_ctl_status, state_bytes_sent_total, F_U64),
	FT(macc_ctl_status, state_bytes_received_total, F_U64),
	FS(macc_ctl_status, k, digest),
	FS(macc_ctl_status, k, last_error),
	FT(macc_ctl_status, degraded, F_BOOL),
	FT(macc_ctl_status, rollbacks_total, F_U64),
	FS(macc_ctl_status, k, standardize),
	FS(macc_ctl_status, k, standardize_digest),
	FT(macc_ctl_status, standardize_refused_total, F_U64),
	FT(macc_ctl_status, max_rate_bytes_per_second, F_DBL),
	FT(macc_ctl_status, send_rate_bytes_per_second, F_DBL),
	/* "connections_rejected_total" (a map by reason) is handled separately. */
};

static const struct field progress_fields[] = {
	FT(macc_ctl_progress, state, F_STATE),
	FT(macc_ctl_progress, round, F_U64),
	FT(macc_ctl_progress, rounds_planned, F_U64),
	FT(macc_ctl_progress, epoch, F_DBL),
	FT(macc_ctl_progress, epochs_planned, F_DBL),
	FT(macc_ctl_progress, train_loss, F_DBL),
	FT(macc_ctl_progress, test_accuracy_ratio, F_DBL),
	FT(macc_ctl_progress, samples_per_second, F_DBL),
	FT(macc_ctl_progress, round_seconds, F_DBL),
	FT(macc_ctl_progress, eta_seconds, F_DBL),
	FT(macc_ctl_progress, final, F_BOOL),
};

/* The peer's "messages_rejected_total" map is handled separately. */
static const struct field peer_fields[] = {
	FS(macc_ctl_peer, k, name),
	FS(macc_ctl_peer, k, endpoint),
	FS(macc_ctl_peer, k, key),
	FT(macc_ctl_peer, session, F_SESSION),
	FT(macc_ctl_peer, last_round, F_I64),
	FT(macc_ctl_peer, rtt_seconds, F_DBL),
	FT(macc_ctl_peer, weight, F_DBL),
	FT(macc_ctl_peer, bytes_received_total, F_U64),
	FT(macc_ctl_peer, bytes_sent_total, F_U64),
	FT(macc_ctl_peer, sealed, F_BOOL),
	FS(macc_ctl_peer, k, arch),
	FS(macc_ctl_peer, k, blas),
	FT(macc_ctl_peer, states_excluded_nonfinite_total, F_U64),
	FT(macc_ctl_peer, states_excluded_distance_total, F_U64),
	FT(macc_ctl_peer, states_excluded_quarantined_total, F_U64),
	FT(macc_ctl_peer, states_clipped_total, F_U64),
	FT(macc_ctl_peer, quarantine_active, F_BOOL),
	FT(macc_ctl_peer, quarantine_until, F_U64),
	FT(macc_ctl_peer, quarantines_total, F_U64),
	FT(macc_ctl_peer, max_rate_bytes_per_second, F_DBL),
	FT(macc_ctl_peer, send_rate_bytes_per_second, F_DBL),
};

/* The audit reply's header ("entries" is handled separately) and one entry. */
static const struct field audit_fields[] = {
	FT(macc_ctl_audit, enabled, F_BOOL),
	FS(macc_ctl_audit, k, file),
	FT(macc_ctl_audit, entries_kept, F_U64),
	FT(macc_ctl_audit, entries_total, F_U64),
	FT(macc_ctl_audit, errors_total, F_U64),
};

static const struct field audit_entry_fields[] = {
	FT(macc_ctl_audit_entry, seq, F_U64),
	FT(macc_ctl_audit_entry, time_seconds, F_DBL),
	FT(macc_ctl_audit_entry, round, F_U64),
	FS(macc_ctl_audit_entry, k, reason),
	FS(macc_ctl_audit_entry, k, peer),
	FS(macc_ctl_audit_entry, k, key),
	FS(macc_ctl_audit_entry, k, digest),
	FT(macc_ctl_audit_entry, body_bytes, F_U64),
	FS(macc_ctl_audit_entry, k, evidence),
};

/* model and predict replies ("spec", "data" and "values" are handled separately). */
static const struct field model_fields[] = {
	FS(macc_ctl_model, k, name),
	FS(macc_ctl_model, k, task),
	FT(macc_ctl_model, round, F_U64),
	FT(macc_ctl_model, generation, F_U64),
	FS(macc_ctl_model, k, digest),
	FT(macc_ctl_model, nparams, F_U64),
	FT(macc_ctl_model, input_c, F_U32),
	FT(macc_ctl_model, input_h, F_U32),
	FT(macc_ctl_model, input_w, F_U32),
	FT(macc_ctl_model, input_flat, F_BOOL),
	FT(macc_ctl_model, outputs, F_U32),
	FT(macc_ctl_model, standardized, F_BOOL),
	FT(macc_ctl_model, total, F_U64),
	FT(macc_ctl_model, offset, F_U64),
};

static const struct field predict_fields[] = {
	FT(macc_ctl_predict, round, F_U64),
	FT(macc_ctl_predict, generation, F_U64),
	FS(macc_ctl_predict, k, digest),
	FS(macc_ctl_predict, k, task),
	FT(macc_ctl_predict, rows, F_U32),
	FT(macc_ctl_predict, outputs, F_U32),
};

#define NF(t) (sizeof(t) / sizeof((t)[0]))

/* --- init / finish ------------------------------------------------------------------------ */

void macc_ctl_status_init(struct macc_ctl_status *s)
{
	memset(s, 0, sizeof(*s));
	s->epoch = 0;
	s->train_loss = NAN;
	s->test_loss = NAN;
	s->test_accuracy_ratio = NAN;
	s->samples_per_second = NAN;
	s->round_seconds = NAN;
	s->consensus_distance = NAN;
	s->process_start_time_seconds = NAN;
	s->max_rate_bytes_per_second = NAN;
	s->send_rate_bytes_per_second = NAN;
}

void macc_ctl_progress_init(struct macc_ctl_progress *p)
{
	memset(p, 0, sizeof(*p));
	p->train_loss = NAN;
	p->test_accuracy_ratio = NAN;
	p->samples_per_second = NAN;
	p->round_seconds = NAN;
	p->eta_seconds = NAN;
}

void macc_ctl_reply_init(struct macc_ctl_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->v = MACC_CTL_PROTO_VERSION;
	macc_ctl_status_init(&r->st);
	macc_ctl_progress_init(&r->progress);
}

void macc_ctl_reply_finish(struct macc_ctl_reply *r)
{
	if (r == NULL) {
		return;
	}
	free(r->peers);
	free(r->text);
	free(r->audit.entries);
	r->audit.entries = NULL;
	r->audit.nentries = 0;
	free(r->model.spec);
	free(r->model.data);
	free(r->predict.values);
	r->model.spec = NULL;
	r->model.data = NULL;
	r->model.data_len = 0;
	r->predict.values = NULL;
	r->predict.values_len = 0;
	r->peers = NULL;
	r->npeers = 0;
	r->text = NULL;
	r->text_len = 0;
}

void macc_ctl_peer_add_reject(struct macc_ctl_peer *p, int code, uint64_t count)
{
	const char *name = macc_errname(code);

	for (size_t i = 0; i < p->nrejected; i++) {
		if (strcmp(p->rejected[i].reason, name) == 0) {
			p->rejected[i].count += count;
			return;
		}
	}
	if (p->nrejected < MACC_CTL_MAX_REASONS) {
		struct macc_ctl_reject *rr = &p->rejected[p->nrejected];

		snprintf(rr->reason, sizeof(rr->reason), "%s", name);
		rr->count = count;
		p->nrejected++;
	}
}

void macc_ctl_metrics_observe_round(struct macc_ctl_metrics *m, double seconds)
{
	for (size_t i = 0; i < MACC_CTL_ROUND_BUCKETS; i++) {
		if (seconds <= macc_ctl_round_buckets[i]) {
			m->round_seconds_bucket[i]++;
			break;
		}
	}
	m->round_seconds_count++;
	m->round_seconds_sum += seconds;
}

/* --- framing ---------------------------------------------------------------------------- */

int macc_ctl_frame_next(const uint8_t *p, size_t n, size_t max_body, size_t *ret_body_len)
{
	uint32_t len;

	if (n < MACC_CTL_FRAME_HEADER) {
		return 0;
	}
	len = macc_get_be32(p);
	if (len > max_body) {
		return MACC_ETOOBIG;
	}
	if (len == 0) {
		return MACC_EMALFORMED;
	}
	if (n - MACC_CTL_FRAME_HEADER < len) {
		return 0;
	}
	*ret_body_len = len;
	return 1;
}

/* --- encoding ------------------------------------------------------------------------------ */

struct wctx {
	struct macc_buf *b;
	int err;
};

static int write_cb(void *data, const char *buf, size_t len)
{
	struct wctx *w = data;
	int r;

	if (w->err != 0) {
		return -1;
	}
	r = macc_buf_append(w->b, buf, len);
	if (r < 0) {
		w->err = r;
		return -1;
	}
	return 0;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void pack_fields(msgpack_packer *pk, const void *obj, const struct field *f, size_t nf,
			size_t extra)
{
	const char *base = obj;

	msgpack_pack_map(pk, nf + extra);
	for (size_t i = 0; i < nf; i++) {
		const void *p = base + f[i].off;

		pack_str(pk, f[i].key);
		switch (f[i].type) {
		case F_STR:
			pack_str(pk, p);
			break;
		case F_U64:
			msgpack_pack_uint64(pk, *(const uint64_t *)p);
			break;
		case F_U32:
			msgpack_pack_uint32(pk, *(const uint32_t *)p);
			break;
		case F_I64:
			msgpack_pack_int64(pk, *(const int64_t *)p);
			break;
		case F_DBL:
			msgpack_pack_double(pk, *(const double *)p);
			break;
		case F_BOOL:
			if (*(const bool *)p) {
				msgpack_pack_true(pk);
			} else {
				msgpack_pack_false(pk);
			}
			break;
		case F_STATE:
			pack_str(pk, macc_ctl_state_name(*(const enum macc_ctl_state *)p));
			break;
		case F_SESSION:
			pack_str(pk, macc_ctl_session_name(*(const enum macc_ctl_session *)p));
			break;
		}
	}
}

/* The status, with its "connections_rejected_total" map: every reason, 0 included. */
static void pack_status(msgpack_packer *pk, const struct macc_ctl_status *st)
{
	pack_fields(pk, st, status_fields, NF(status_fields), 1);
	pack_str(pk, "connections_rejected_total");
	msgpack_pack_map(pk, MACC_CTL_CONNREJ_COUNT);
	for (unsigned i = 0; i < MACC_CTL_CONNREJ_COUNT; i++) {
		pack_str(pk, connrej_names[i]);
		msgpack_pack_uint64(pk, st->connections_rejected_total[i]);
	}
}

static void pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, n > 0 ? p : "", n);
}

static void pack_peer(msgpack_packer *pk, const struct macc_ctl_peer *p)
{
	size_t nr = p->nrejected < MACC_CTL_MAX_REASONS ? p->nrejected : MACC_CTL_MAX_REASONS;

	pack_fields(pk, p, peer_fields, NF(peer_fields), 1);
	pack_str(pk, "messages_rejected_total");
	msgpack_pack_map(pk, nr);
	for (size_t i = 0; i < nr; i++) {
		pack_str(pk, p->rejected[i].reason);
		msgpack_pack_uint64(pk, p->rejected[i].count);
	}
}

/* Start a frame: reserve the 4-byte header. Returns the header's offset. */
static size_t frame_begin(struct macc_buf *out, int *r)
{
	static const uint8_t zero[4];
	size_t at = out->len;

	*r = macc_buf_append(out, zero, sizeof(zero));
	return at;
}

static int frame_end(struct macc_buf *out, size_t at, const struct wctx *w)
{
	size_t body;

	if (w->err != 0) {
		out->len = at;
		return w->err;
	}
	body = out->len - at - MACC_CTL_FRAME_HEADER;
	if (body > UINT32_MAX) {
		out->len = at;
		return MACC_ETOOBIG;
	}
	macc_put_be32(out->data + at, (uint32_t)body);
	return 0;
}

int macc_ctl_request_encode(const struct macc_ctl_request *r, struct macc_buf *out)
{
	struct wctx w = { out, 0 };
	msgpack_packer pk;
	size_t at;
	int rc;

	if ((unsigned)r->cmd >= MACC_CTL_CMD_COUNT) {
		return MACC_EUNKNOWNCMD;
	}
	at = frame_begin(out, &rc);
	if (rc < 0) {
		return rc;
	}
	msgpack_packer_init(&pk, &w, write_cb);
	msgpack_pack_map(&pk, 4);
	pack_str(&pk, "v");
	msgpack_pack_uint32(&pk, r->v);
	pack_str(&pk, "id");
	msgpack_pack_uint64(&pk, r->id);
	pack_str(&pk, "cmd");
	pack_str(&pk, macc_ctl_commands[r->cmd].name);
	pack_str(&pk, "args");
	if (r->cmd == MACC_CTL_CMD_LOG_LEVEL) {
		msgpack_pack_map(&pk, 1);
		pack_str(&pk, "level");
		pack_str(&pk, macc_log_level_name(r->level));
	} else if (r->cmd == MACC_CTL_CMD_AUDIT && r->limit > 0) {
		msgpack_pack_map(&pk, 1);
		pack_str(&pk, "limit");
		msgpack_pack_uint32(&pk, r->limit);
	} else if (r->cmd == MACC_CTL_CMD_MODEL) {
		msgpack_pack_map(&pk, 3);
		pack_str(&pk, "offset");
		msgpack_pack_uint64(&pk, r->offset);
		pack_str(&pk, "count");
		msgpack_pack_uint64(&pk, r->count);
		pack_str(&pk, "generation");
		msgpack_pack_uint64(&pk, r->generation);
	} else if (r->cmd == MACC_CTL_CMD_PREDICT) {
		msgpack_pack_map(&pk, 1);
		pack_str(&pk, "inputs");
		pack_bin(&pk, r->inputs, r->inputs_len);
	} else {
		msgpack_pack_map(&pk, 0);
	}
	return frame_end(out, at, &w);
}

int macc_ctl_reply_encode(const struct macc_ctl_reply *r, struct macc_buf *out)
{
	struct wctx w = { out, 0 };
	msgpack_packer pk;
	bool has_error = r->error[0] != '\0';
	bool has_data = r->kind != MACC_CTL_DATA_NONE;
	size_t at;
	int rc;

	at = frame_begin(out, &rc);
	if (rc < 0) {
		return rc;
	}
	msgpack_packer_init(&pk, &w, write_cb);
	msgpack_pack_map(&pk, 3 + (has_error ? 1 : 0) + (has_data ? 1 : 0));
	pack_str(&pk, "v");
	msgpack_pack_uint32(&pk, r->v);
	pack_str(&pk, "id");
	msgpack_pack_uint64(&pk, r->id);
	pack_str(&pk, "status");
	msgpack_pack_uint32(&pk, (uint32_t)r->status);
	if (has_error) {
		pack_str(&pk, "error");
		pack_str(&pk, r->error);
	}
	if (has_data) {
		pack_str(&pk, "data");
		switch (r->kind) {
		case MACC_CTL_DATA_STATUS:
			pack_status(&pk, &r->st);
			break;
		case MACC_CTL_DATA_PROGRESS:
			pack_fields(&pk, &r->progress, progress_fields, NF(progress_fields), 0);
			break;
		case MACC_CTL_DATA_PEERS:
			msgpack_pack_map(&pk, 1);
			pack_str(&pk, "peers");
			msgpack_pack_array(&pk, r->npeers);
			for (size_t i = 0; i < r->npeers; i++) {
				pack_peer(&pk, &r->peers[i]);
			}
			break;
		case MACC_CTL_DATA_AUDIT:
			pack_fields(&pk, &r->audit, audit_fields, NF(audit_fields), 1);
			pack_str(&pk, "entries");
			msgpack_pack_array(&pk, r->audit.nentries);
			for (size_t i = 0; i < r->audit.nentries; i++) {
				pack_fields(&pk, &r->audit.entries[i], audit_entry_fields,
					    NF(audit_entry_fields), 0);
			}
			break;
		case MACC_CTL_DATA_MODEL:
			pack_fields(&pk, &r->model, model_fields, NF(model_fields), 2);
			pack_str(&pk, "spec");
			pack_str(&pk, r->model.spec != NULL ? r->model.spec : "");
			pack_str(&pk, "data");
			pack_bin(&pk, r->model.data, r->model.data_len);
			break;
		case MACC_CTL_DATA_PREDICT:
			pack_fields(&pk, &r->predict, predict_fields, NF(predict_fields), 1);
			pack_str(&pk, "values");
			pack_bin(&pk, r->predict.values, r->predict.values_len);
			break;
		case MACC_CTL_DATA_TEXT:
			msgpack_pack_map(&pk, 1);
			pack_str(&pk, "text");
			msgpack_pack_str(&pk, r->text != NULL ? r->text_len : 0);
			msgpack_pack_str_body(&pk, r->text != NULL ? r->text : "",
					      r->text != NULL ? r->text_len : 0);
			break;
		case MACC_CTL_DATA_NONE:
			break;
		}
	}
	return frame_end(out, at, &w);
}

/* --- decoding -------------------------------------------------------------------------------- */

static bool key_is(const msgpack_object *k, const char *s)
{
	size_t n = strlen(s);

	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
	       memcmp(k->via.str.ptr, s, n) == 0;
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		if (key_is(&m->via.map.ptr[i].key, key)) {
			return &m->via.map.ptr[i].val;
		}
	}
	return NULL;
}

static bool get_u64(const msgpack_object *o, uint64_t *ret)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		return false;
	}
	*ret = o->via.u64;
	return true;
}

static bool get_dbl(const msgpack_object *o, double *ret)
{
	switch (o->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		*ret = o->via.f64;
		return true;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		*ret = (double)o->via.u64;
		return true;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		*ret = (double)o->via.i64;
		return true;
	default:
		return false;
	}
}

/* Copy a msgpack str into dst[size]: false if not a str, too long, or has a NUL. */
static bool get_str(const msgpack_object *o, char *dst, size_t size)
{
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= size ||
	    memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL) {
		return false;
	}
	memcpy(dst, o->via.str.ptr, o->via.str.size);
	dst[o->via.str.size] = '\0';
	return true;
}

static bool get_enum(const msgpack_object *o, const char *const *names, unsigned count,
		     unsigned *ret)
{
	for (unsigned i = 0; i < count; i++) {
		if (key_is(o, names[i])) {
			*ret = i;
			return true;
		}
	}
	return false;
}

/* Decode the known fields of a payload map into obj; unknown keys are ignored. */
static int unpack_fields(const msgpack_object *m, void *obj, const struct field *f, size_t nf,
			 const char *what, struct macc_errmsg *err)
{
	char *base = obj;

	if (m->type != MSGPACK_OBJECT_MAP) {
		return macc_errf(err, MACC_EMALFORMED, "%s: not a map", what);
	}
	for (size_t i = 0; i < nf; i++) {
		const msgpack_object *v = map_get(m, f[i].key);
		void *p = base + f[i].off;
		uint64_t u;
		unsigned e;
		bool ok = true;

		if (v == NULL) {
			continue; /* absent: keep the initialised default */
		}
		switch (f[i].type) {
		case F_STR:
			ok = get_str(v, p, f[i].size);
			break;
		case F_U64:
			ok = get_u64(v, p);
			break;
		case F_U32:
			ok = get_u64(v, &u) && u <= UINT32_MAX;
			if (ok) {
				*(uint32_t *)p = (uint32_t)u;
			}
			break;
		case F_I64:
			if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
				*(int64_t *)p = v->via.i64;
			} else {
				ok = get_u64(v, &u) && u <= INT64_MAX;
				if (ok) {
					*(int64_t *)p = (int64_t)u;
				}
			}
			break;
		case F_DBL:
			ok = get_dbl(v, p);
			break;
		case F_BOOL:
			ok = v->type == MSGPACK_OBJECT_BOOLEAN;
			if (ok) {
				*(bool *)p = v->via.boolean;
			}
			break;
		case F_STATE:
			ok = get_enum(v, state_names, MACC_CTL_STATE_COUNT, &e);
			if (ok) {
				*(enum macc_ctl_state *)p = (enum macc_ctl_state)e;
			}
			break;
		case F_SESSION:
			ok = get_enum(v, session_names, MACC_CTL_SESSION_COUNT, &e);
			if (ok) {
				*(enum macc_ctl_session *)p = (enum macc_ctl_session)e;
			}
			break;
		}
		if (!ok) {
			return macc_errf(err, MACC_EMALFORMED,
					 "%s: field '%s' has a bad type or value", what, f[i].key);
		}
	}
	return 0;
}

/* The status and its "connections_rejected_total" map (absent from older daemons: zeros;
 * reasons this side does not know are skipped). */
static int unpack_status(const msgpack_object *m, struct macc_ctl_status *st,
			 struct macc_errmsg *err)
{
	const msgpack_object *cr;
	int r = unpack_fields(m, st, status_fields, NF(status_fields), "status", err);

	if (r < 0 || (cr = map_get(m, "connections_rejected_total")) == NULL) {
		return r;
	}
	if (cr->type != MSGPACK_OBJECT_MAP) {
		return macc_errf(err, MACC_EMALFORMED,
				 "status: 'connections_rejected_total' is not a map");
	}
	for (uint32_t i = 0; i < cr->via.map.size; i++) {
		const msgpack_object_kv *kv = &cr->via.map.ptr[i];
		unsigned k;
		uint64_t v;

		if (!get_u64(&kv->val, &v)) {
			return macc_errf(err, MACC_EMALFORMED,
					 "status: bad 'connections_rejected_total' count");
		}
		if (get_enum(&kv->key, connrej_names, MACC_CTL_CONNREJ_COUNT, &k)) {
			st->connections_rejected_total[k] = v;
		}
	}
	return 0;
}

static int unpack_peer(const msgpack_object *m, struct macc_ctl_peer *p, struct macc_errmsg *err)
{
	const msgpack_object *rej;
	int r;

	memset(p, 0, sizeof(*p));
	p->last_round = -1;
	p->rtt_seconds = NAN;
	p->weight = NAN;
	p->max_rate_bytes_per_second = NAN;
	p->send_rate_bytes_per_second = NAN;
	r = unpack_fields(m, p, peer_fields, NF(peer_fields), "peer", err);
	if (r < 0) {
		return r;
	}
	rej = map_get(m, "messages_rejected_total");
	if (rej == NULL) {
		return 0;
	}
	if (rej->type != MSGPACK_OBJECT_MAP || rej->via.map.size > MACC_CTL_MAX_REASONS) {
		return macc_errf(err, MACC_EMALFORMED, "peer '%s': bad 'messages_rejected_total' map",
				 p->name);
	}
	for (uint32_t i = 0; i < rej->via.map.size; i++) {
		struct macc_ctl_reject *rr = &p->rejected[i];

		if (!get_str(&rej->via.map.ptr[i].key, rr->reason, sizeof(rr->reason)) ||
		    !get_u64(&rej->via.map.ptr[i].val, &rr->count)) {
			return macc_errf(err, MACC_EMALFORMED, "peer '%s': bad "
					 "'messages_rejected_total' entry", p->name);
		}
	}
	p->nrejected = rej->via.map.size;
	return 0;
}

/* Unpack a body into *obj (zone-backed, freed by msgpack_unpacked_destroy). */
static int unpack_body(const uint8_t *body, size_t n, msgpack_unpacked *u,
		       struct macc_errmsg *err)
{
	struct macc_mp_rd r = {body, n, 0};
	size_t off = 0;
	msgpack_unpack_return ur;

	/* The shared bounded reader first (mpread.c): every declared length and count must fit
	 * in the bytes that remain, nesting at most MAX_DEPTH, before msgpack-c sizes its zone. */
	if (macc_mp_skip(&r, 0, MAX_DEPTH) != 0 || r.off != n) {
		return macc_errf(err, MACC_EMALFORMED, "not a single well-formed msgpack object");
	}
	msgpack_unpacked_init(u);
	ur = msgpack_unpack_next(u, (const char *)body, n, &off);
	if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
		msgpack_unpacked_destroy(u);
		return macc_errf(err, -ENOMEM, "out of memory decoding a message");
	}
	if (ur != MSGPACK_UNPACK_SUCCESS || off != n) {
		msgpack_unpacked_destroy(u);
		return macc_errf(err, MACC_EMALFORMED, "not a single well-formed msgpack object");
	}
	if (u->data.type != MSGPACK_OBJECT_MAP) {
		msgpack_unpacked_destroy(u);
		return macc_errf(err, MACC_EMALFORMED, "message is not a msgpack map");
	}
	return 0;
}

/* Read v and id; writes them to ret_v / ret_id as soon as they are known. */
static int read_v_id(const msgpack_object *m, uint32_t *ret_v, uint64_t *ret_id,
		     struct macc_errmsg *err)
{
	const msgpack_object *v = map_get(m, "v"), *id = map_get(m, "id");
	uint64_t vv, iv;

	if (id != NULL && get_u64(id, &iv)) {
		*ret_id = iv;
	}
	if (v == NULL || !get_u64(v, &vv) || vv > UINT32_MAX) {
		return macc_errf(err, MACC_EMALFORMED, "missing or non-integer 'v' (version)");
	}
	*ret_v = (uint32_t)vv;
	if (vv != MACC_CTL_PROTO_VERSION) {
		return macc_errf(err, MACC_EVERSION,
				 "protocol version %llu not supported (this side speaks %d)",
				 (unsigned long long)vv, MACC_CTL_PROTO_VERSION);
	}
	if (id == NULL || !get_u64(id, &iv)) {
		return macc_errf(err, MACC_EMALFORMED, "missing or non-integer 'id'");
	}
	return 0;
}

/* model: {"offset", "count", "generation"}, each an optional unsigned integer. */
static int decode_model_args(const msgpack_object *args, struct macc_ctl_request *ret,
			     struct macc_errmsg *err)
{
	static const char *const keys[] = {"offset", "count", "generation"};
	uint64_t v[3] = {0, MACC_CTL_MODEL_CHUNK, 0};

	for (uint32_t i = 0; args != NULL && i < args->via.map.size; i++) {
		const msgpack_object_kv *kv = &args->via.map.ptr[i];
		size_t k = 0;

		while (k < 3 && !key_is(&kv->key, keys[k])) {
			k++;
		}
		if (k == 3) {
			return macc_errf(err, MACC_ESPEC, "model: unknown argument (it takes offset, "
					 "count and generation)");
		}
		if (!get_u64(&kv->val, &v[k])) {
			return macc_errf(err, MACC_ESPEC, "model: '%s' must be an unsigned integer",
					 keys[k]);
		}
	}
	ret->offset = v[0];
	ret->count = v[1];
	ret->generation = v[2];
	return 0;
}

/* predict: {"inputs": bin of whole float32 values}; the rows are counted by the agent, which
 * knows the model's input size. */
static int decode_predict_args(const msgpack_object *args, struct macc_ctl_request *ret,
			       struct macc_errmsg *err)
{
	const msgpack_object *in = args != NULL ? map_get(args, "inputs") : NULL;

	if (in == NULL || args->via.map.size != 1) {
		return macc_errf(err, MACC_ESPEC, "predict: it takes exactly one argument, 'inputs'");
	}
	if (in->type != MSGPACK_OBJECT_BIN || in->via.bin.size == 0 ||
	    in->via.bin.size % sizeof(float) != 0) {
		return macc_errf(err, MACC_ESPEC, "predict: 'inputs' must be a non-empty bin of "
				 "float32 values (a multiple of 4 bytes)");
	}
	ret->inputs = (const uint8_t *)in->via.bin.ptr;
	ret->inputs_len = in->via.bin.size;
	return 0;
}

int macc_ctl_request_decode(const uint8_t *body, size_t n, struct macc_ctl_request *ret,
			    struct macc_errmsg *err)
{
	msgpack_unpacked u;
	const msgpack_object *m, *cmd, *args;
	const struct macc_ctl_cmdinfo *ci;
	char name[32];
	int r;

	r = unpack_body(body, n, &u, err);
	if (r < 0) {
		return r;
	}
	m = &u.data;
	r = read_v_id(m, &ret->v, &ret->id, err);
	if (r < 0) {
		goto out;
	}
	cmd = map_get(m, "cmd");
	if (cmd == NULL || cmd->type != MSGPACK_OBJECT_STR) {
		r = macc_errf(err, MACC_EMALFORMED, "missing or non-string 'cmd'");
		goto out;
	}
	if (!get_str(cmd, name, sizeof(name)) || (ci = macc_ctl_cmd_find(name)) == NULL) {
		char q[40];
		size_t k = 0;

		for (uint32_t i = 0; i < cmd->via.str.size && k < 32; i++) {
			char ch = cmd->via.str.ptr[i];

			q[k++] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
		}
		q[k] = '\0';
		r = macc_errf(err, MACC_EUNKNOWNCMD, "unknown command '%s'", q);
		goto out;
	}
	args = map_get(m, "args");
	if (args != NULL && args->type != MSGPACK_OBJECT_MAP) {
		r = macc_errf(err, MACC_ESPEC, "%s: 'args' is not a map", ci->name);
		goto out;
	}
	if (ci->cmd == MACC_CTL_CMD_LOG_LEVEL) {
		const msgpack_object *lv = args != NULL ? map_get(args, "level") : NULL;
		char ln[16];
		enum macc_log_level level;

		if (lv == NULL) {
			r = macc_errf(err, MACC_ESPEC, "log-level: missing argument 'level'");
			goto out;
		}
		if (!get_str(lv, ln, sizeof(ln)) || macc_log_level_parse(ln, &level) < 0) {
			r = macc_errf(err, MACC_ESPEC,
				      "log-level: 'level' must be error, warn, info or debug");
			goto out;
		}
		if (args->via.map.size != 1) {
			r = macc_errf(err, MACC_ESPEC, "log-level: unknown argument");
			goto out;
		}
		ret->level = level;
	} else if (ci->cmd == MACC_CTL_CMD_AUDIT && args != NULL && args->via.map.size != 0) {
		const msgpack_object *lim = map_get(args, "limit");
		uint64_t l;

		if (lim == NULL || args->via.map.size != 1) {
			r = macc_errf(err, MACC_ESPEC, "audit: unknown argument (it takes 'limit')");
			goto out;
		}
		if (!get_u64(lim, &l) || l < 1 || l > MACC_CTL_AUDIT_MAX) {
			r = macc_errf(err, MACC_ESPEC, "audit: 'limit' must be an integer from 1 to %d",
				      MACC_CTL_AUDIT_MAX);
			goto out;
		}
		ret->limit = (uint32_t)l;
	} else if (ci->cmd == MACC_CTL_CMD_MODEL) {
		r = decode_model_args(args, ret, err);
		if (r < 0) {
			goto out;
		}
	} else if (ci->cmd == MACC_CTL_CMD_PREDICT) {
		r = decode_predict_args(args, ret, err);
		if (r < 0) {
			goto out;
		}
	} else if (args != NULL && args->via.map.size != 0) {
		r = macc_errf(err, MACC_ESPEC, "%s takes no arguments", ci->name);
		goto out;
	}
	ret->cmd = ci->cmd;
	r = 0;
out:
	msgpack_unpacked_destroy(&u);
	return r;
}

static int decode_peers(const msgpack_object *data, struct macc_ctl_reply *rep,
			struct macc_errmsg *err)
{
	const msgpack_object *arr = map_get(data, "peers");
	int r = 0;

	if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY) {
		return macc_errf(err, MACC_EMALFORMED, "peers: missing 'peers' array");
	}
	if (arr->via.array.size > 0) {
		rep->peers = calloc(arr->via.array.size, sizeof(*rep->peers));
		if (rep->peers == NULL) {
			return macc_errf(err, -ENOMEM, "out of memory");
		}
	}
	for (uint32_t i = 0; i < arr->via.array.size && r == 0; i++) {
		r = unpack_peer(&arr->via.array.ptr[i], &rep->peers[i], err);
		rep->npeers = i + 1;
	}
	return r;
}

static int decode_audit(const msgpack_object *data, struct macc_ctl_reply *rep,
			struct macc_errmsg *err)
{
	const msgpack_object *arr = map_get(data, "entries");
	int r;

	r = unpack_fields(data, &rep->audit, audit_fields, NF(audit_fields), "audit", err);
	if (r < 0) {
		return r;
	}
	if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY ||
	    arr->via.array.size > MACC_CTL_AUDIT_MAX) {
		return macc_errf(err, MACC_EMALFORMED, "audit: missing or oversized 'entries' array");
	}
	if (arr->via.array.size > 0) {
		rep->audit.entries = calloc(arr->via.array.size, sizeof(*rep->audit.entries));
		if (rep->audit.entries == NULL) {
			return macc_errf(err, -ENOMEM, "out of memory");
		}
	}
	for (uint32_t i = 0; i < arr->via.array.size && r == 0; i++) {
		r = unpack_fields(&arr->via.array.ptr[i], &rep->audit.entries[i], audit_entry_fields,
				  NF(audit_entry_fields), "audit entry", err);
		rep->audit.nentries = i + 1;
	}
	return r;
}

static int decode_text(const msgpack_object *data, struct macc_ctl_reply *rep,
		       struct macc_errmsg *err)
{
	const msgpack_object *t = map_get(data, "text");

	if (t == NULL || t->type != MSGPACK_OBJECT_STR) {
		return macc_errf(err, MACC_EMALFORMED, "missing 'text' string");
	}
	rep->text = malloc((size_t)t->via.str.size + 1);
	if (rep->text == NULL) {
		return macc_errf(err, -ENOMEM, "out of memory");
	}
	memcpy(rep->text, t->via.str.ptr, t->via.str.size);
	rep->text[t->via.str.size] = '\0';
	rep->text_len = t->via.str.size;
	return 0;
}

/* A bin (float32 values: a multiple of 4 bytes) into a fresh buffer. */
static int copy_bin(const msgpack_object *o, uint8_t **ret, size_t *ret_len, const char *what,
		    const char *key, struct macc_errmsg *err)
{
	uint8_t *p;

	if (o == NULL || o->type != MSGPACK_OBJECT_BIN || o->via.bin.size % sizeof(float) != 0) {
		return macc_errf(err, MACC_EMALFORMED, "%s: missing or bad '%s' (a bin of float32)",
				 what, key);
	}
	p = malloc(o->via.bin.size > 0 ? o->via.bin.size : 1);
	if (p == NULL) {
		return macc_errf(err, -ENOMEM, "out of memory");
	}
	memcpy(p, o->via.bin.ptr, o->via.bin.size);
	*ret = p;
	*ret_len = o->via.bin.size;
	return 0;
}

/* The model reply's spec (a string of any length) and data chunk. */
static int unpack_model_extra(const msgpack_object *data, struct macc_ctl_model *m,
			      struct macc_errmsg *err)
{
	const msgpack_object *spec = map_get(data, "spec");

	if (spec == NULL || spec->type != MSGPACK_OBJECT_STR ||
	    memchr(spec->via.str.ptr, '\0', spec->via.str.size) != NULL) {
		return macc_errf(err, MACC_EMALFORMED, "model: missing or bad 'spec'");
	}
	m->spec = malloc((size_t)spec->via.str.size + 1);
	if (m->spec == NULL) {
		return macc_errf(err, -ENOMEM, "out of memory");
	}
	memcpy(m->spec, spec->via.str.ptr, spec->via.str.size);
	m->spec[spec->via.str.size] = '\0';
	return copy_bin(map_get(data, "data"), &m->data, &m->data_len, "model", "data", err);
}

static int decode_model(const msgpack_object *data, struct macc_ctl_reply *rep,
			struct macc_errmsg *err)
{
	int r = unpack_fields(data, &rep->model, model_fields, NF(model_fields), "model", err);

	if (r < 0) {
		return r;
	}
	return unpack_model_extra(data, &rep->model, err);
}

static int decode_predict(const msgpack_object *data, struct macc_ctl_reply *rep,
			  struct macc_errmsg *err)
{
	int r = unpack_fields(data, &rep->predict, predict_fields, NF(predict_fields), "predict",
			      err);

	if (r < 0) {
		return r;
	}
	return copy_bin(map_get(data, "values"), &rep->predict.values, &rep->predict.values_len,
			"predict", "values", err);
}

/* A reply's data map, by the kind the command's table row says (rep->kind). */
static int decode_data(const msgpack_object *data, struct macc_ctl_reply *rep,
		       struct macc_errmsg *err)
{
	switch (rep->kind) {
	case MACC_CTL_DATA_STATUS:
		return unpack_status(data, &rep->st, err);
	case MACC_CTL_DATA_PROGRESS:
		return unpack_fields(data, &rep->progress, progress_fields, NF(progress_fields),
				     "progress", err);
	case MACC_CTL_DATA_PEERS:
		return decode_peers(data, rep, err);
	case MACC_CTL_DATA_AUDIT:
		return decode_audit(data, rep, err);
	case MACC_CTL_DATA_MODEL:
		return decode_model(data, rep, err);
	case MACC_CTL_DATA_PREDICT:
		return decode_predict(data, rep, err);
	case MACC_CTL_DATA_TEXT:
		return decode_text(data, rep, err);
	case MACC_CTL_DATA_NONE:
	default:
		return 0;
	}
}

int macc_ctl_reply_decode(const uint8_t *body, size_t n, enum macc_ctl_cmd cmd,
			  struct macc_ctl_reply *ret, struct macc_errmsg *err)
{
	msgpack_unpacked u;
	const msgpack_object *m, *st, *er, *data;
	struct macc_ctl_reply rep;
	uint64_t sv;
	int r;

	if ((unsigned)cmd >= MACC_CTL_CMD_COUNT) {
		return macc_errf(err, MACC_EUNKNOWNCMD, "unknown command");
	}
	macc_ctl_reply_init(&rep);
	r = unpack_body(body, n, &u, err);
	if (r < 0) {
		return r;
	}
	m = &u.data;
	r = read_v_id(m, &rep.v, &rep.id, err);
	if (r < 0) {
		goto out;
	}
	st = map_get(m, "status");
	if (st == NULL || !get_u64(st, &sv) || sv > INT32_MAX) {
		r = macc_errf(err, MACC_EMALFORMED, "missing or non-integer 'status'");
		goto out;
	}
	rep.status = (int)sv;
	er = map_get(m, "error");
	if (er != NULL) {
		if (er->type != MSGPACK_OBJECT_STR) {
			r = macc_errf(err, MACC_EMALFORMED, "'error' is not a string");
			goto out;
		}
		/* Long messages are cut, not refused; NULs end them. */
		size_t k = er->via.str.size < sizeof(rep.error) - 1 ? er->via.str.size
								    : sizeof(rep.error) - 1;
		memcpy(rep.error, er->via.str.ptr, k);
		rep.error[k] = '\0';
	}
	data = map_get(m, "data");
	if (data == NULL) {
		r = 0;
		goto out;
	}
	if (data->type != MSGPACK_OBJECT_MAP) {
		r = macc_errf(err, MACC_EMALFORMED, "'data' is not a map");
		goto out;
	}
	rep.kind = macc_ctl_commands[cmd].data;
	r = decode_data(data, &rep, err);
out:
	msgpack_unpacked_destroy(&u);
	if (r < 0) {
		macc_ctl_reply_finish(&rep);
		return r;
	}
	*ret = rep;
	return 0;
}

/* --- Prometheus text ------------------------------------------------------------------------ */

static int bprintf(struct macc_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int bprintf(struct macc_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	int r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		return -EINVAL;
	}
	r = macc_buf_reserve(b, (size_t)n + 1);
	if (r < 0) {
		return r;
	}
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

/* Label value escaping per the exposition format: \\, \", \n. */
static void esc_label(char *dst, size_t size, const char *s)
{
	size_t j = 0;

	for (size_t i = 0; s[i] != '\0' && j + 3 < size; i++) {
		if (s[i] == '\\' || s[i] == '"') {
			dst[j++] = '\\';
			dst[j++] = s[i];
		} else if (s[i] == '\n') {
			dst[j++] = '\\';
			dst[j++] = 'n';
		} else {
			dst[j++] = s[i];
		}
	}
	dst[j] = '\0';
}

static int head(struct macc_buf *b, const char *name, const char *type, const char *help)
{
	return bprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A gauge without labels; NaN gauges are omitted entirely. */
static int gauge(struct macc_buf *b, const char *name, const char *help, double v)
{
	int r;

	if (isnan(v)) {
		return 0;
	}
	r = head(b, name, "gauge", help);
	return r < 0 ? r : bprintf(b, "%s %.9g\n", name, v);
}

static int counter(struct macc_buf *b, const char *name, const char *help, uint64_t v)
{
	int r = head(b, name, "counter", help);

	return r < 0 ? r : bprintf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* The hostile-peer metrics: connections refused before identification, by reason (every reason,
 * 0 included, so a rate can be taken from the first scrape), degraded state, rollbacks and
 * round jumps. */
static int format_hostile(const struct macc_ctl_status *st, const struct macc_ctl_metrics *m,
			  struct macc_buf *out)
{
	int r = head(out, "macc_connections_rejected_total", "counter",
		     "Connections refused before the peer was identified, by reason.");

	for (unsigned i = 0; r == 0 && i < MACC_CTL_CONNREJ_COUNT; i++) {
		r = bprintf(out, "macc_connections_rejected_total{reason=\"%s\"} %llu\n",
			    connrej_names[i],
			    (unsigned long long)st->connections_rejected_total[i]);
	}
	if (r == 0) {
		r = gauge(out, "macc_degraded", "1 after the agent's own parameters went "
			  "non-finite or out of range and were rolled back, until the next "
			  "checkpoint.",
			  st->degraded);
	}
	if (r == 0) {
		r = counter(out, "macc_rollbacks_total", "Rollbacks of non-finite or out-of-range "
			    "own parameters to the last good checkpoint.", st->rollbacks_total);
	}
	if (r == 0) {
		r = gauge(out, "macc_standardized", "1 once the feature standardisation is known "
			  "(agreed, from the checkpoint or adopted), 0 while agreeing or off.",
			  st->standardize_digest[0] != '\0');
	}
	if (r == 0) {
		r = counter(out, "macc_standardize_refused_total", "Neighbours' STATS refused by "
			    "the standardisation (screening, another S or D).",
			    st->standardize_refused_total);
	}
	if (r == 0) {
		r = counter(out, "macc_round_jumps_total", "Jumps to the round a quorum of "
			    "neighbours attests (rejoin).", m->round_jumps_total);
	}
	if (r == 0) {
		r = counter(out, "macc_round_jumps_refused_total", "Rounds ended with neighbours "
			    "ahead but no jump (no quorum, too soon, or at the jump limit).",
			    m->round_jumps_refused_total);
	}
	return r;
}

/* Per peer: the send-rate cap (only for capped peers) and the measured send rate. */
static int peer_rates(struct macc_buf *out, const struct macc_ctl_peer *peers, size_t npeers)
{
	char n1[200];
	bool any = false;
	int r = 0;

	for (size_t i = 0; i < npeers; i++) {
		any |= !isnan(peers[i].max_rate_bytes_per_second);
	}
	if (any) {
		r = head(out, "macc_peer_max_rate_bytes_per_second", "gauge",
			 "Send-rate cap for the peer (max_rate; no sample: unlimited).");
	}
	for (size_t i = 0; i < npeers && r >= 0; i++) {
		if (!isnan(peers[i].max_rate_bytes_per_second)) {
			esc_label(n1, sizeof(n1), peers[i].name);
			r = bprintf(out, "macc_peer_max_rate_bytes_per_second{peer=\"%s\"} %.9g\n",
				    n1, peers[i].max_rate_bytes_per_second);
		}
	}
	if (r >= 0) {
		r = head(out, "macc_peer_send_rate_bytes_per_second", "gauge",
			 "Bytes per second sent to the peer, over the last second or so.");
	}
	for (size_t i = 0; i < npeers && r >= 0; i++) {
		if (!isnan(peers[i].send_rate_bytes_per_second)) {
			esc_label(n1, sizeof(n1), peers[i].name);
			r = bprintf(out, "macc_peer_send_rate_bytes_per_second{peer=\"%s\"} %.9g\n",
				    n1, peers[i].send_rate_bytes_per_second);
		}
	}
	return r < 0 ? r : 0;
}

int macc_ctl_metrics_format(const struct macc_ctl_status *st, const struct macc_ctl_peer *peers,
			    size_t npeers, const struct macc_ctl_metrics *m, struct macc_buf *out)
{
	char n1[200], n2[400], n3[100], n4[100];
	uint64_t cum = 0;
	int r = 0;

#define TRY(x)                                                                                   \
	do {                                                                                     \
		r = (x);                                                                         \
		if (r < 0) {                                                                     \
			return r;                                                                \
		}                                                                                \
	} while (0)
	TRY(gauge(out, "macc_up", "1 while the agent answers.", 1));
	esc_label(n1, sizeof(n1), st->name);
	esc_label(n2, sizeof(n2), st->model);
	esc_label(n3, sizeof(n3), st->algorithm);
	esc_label(n4, sizeof(n4), st->version);
	TRY(head(out, "macc_info", "gauge", "Agent identity (always 1)."));
	TRY(bprintf(out, "macc_info{name=\"%s\",model=\"%s\",algorithm=\"%s\",version=\"%s\"} 1\n",
		    n1, n2, n3, n4));
	TRY(head(out, "macc_state", "gauge", "1 for the agent's current state."));
	for (unsigned i = 0; i < MACC_CTL_STATE_COUNT; i++) {
		TRY(bprintf(out, "macc_state{state=\"%s\"} %d\n", state_names[i],
			    st->state == (enum macc_ctl_state)i));
	}
	TRY(counter(out, "macc_rounds_total", "Rounds completed.", m->rounds_total));
	TRY(gauge(out, "macc_epoch", "Fractional epochs completed.", st->epoch));
	TRY(gauge(out, "macc_train_loss", "Recent mean mini-batch training loss.", st->train_loss));
	TRY(gauge(out, "macc_test_loss", "Test loss at the last evaluation.", st->test_loss));
	TRY(gauge(out, "macc_test_accuracy_ratio",
		  "Test accuracy at the last evaluation, a fraction from 0 to 1.",
		  st->test_accuracy_ratio));
	TRY(gauge(out, "macc_samples_per_second", "Training throughput.",
		  st->samples_per_second));
	TRY(counter(out, "macc_samples_total", "Training samples processed.", m->samples_total));
	TRY(gauge(out, "macc_consensus_distance",
		  "Mean squared distance to the neighbours' last parameters.",
		  st->consensus_distance));
	TRY(gauge(out, "macc_peers_up", "Neighbours with an authenticated session.",
		  st->peers_up));
	TRY(gauge(out, "macc_peers_configured", "Configured neighbours.", st->peers_configured));
	TRY(gauge(out, "macc_uptime_seconds", "Seconds since the daemon started.",
		  (double)st->uptime_seconds));
	if (!isnan(st->process_start_time_seconds)) { /* (all digits: %.9g would round it) */
		TRY(head(out, "process_start_time_seconds", "gauge",
			 "Start time of the daemon since the Unix epoch in seconds."));
		TRY(bprintf(out, "process_start_time_seconds %.3f\n",
			    st->process_start_time_seconds));
	}
	if (npeers > 0) {
		TRY(head(out, "macc_peer_up", "gauge", "1 if the session with the peer is up."));
		for (size_t i = 0; i < npeers; i++) {
			esc_label(n1, sizeof(n1), peers[i].name);
			TRY(bprintf(out, "macc_peer_up{peer=\"%s\"} %d\n", n1,
				    peers[i].session == MACC_CTL_SESSION_UP));
		}
		TRY(head(out, "macc_peer_last_round", "gauge",
			 "Last round whose state arrived from the peer (-1 none)."));
		for (size_t i = 0; i < npeers; i++) {
			esc_label(n1, sizeof(n1), peers[i].name);
			TRY(bprintf(out, "macc_peer_last_round{peer=\"%s\"} %lld\n", n1,
				    (long long)peers[i].last_round));
		}
		TRY(head(out, "macc_peer_rtt_seconds", "gauge",
			 "Round-trip time to the peer (only while its session is up)."));
		for (size_t i = 0; i < npeers; i++) {
			if (!isnan(peers[i].rtt_seconds)) {
				esc_label(n1, sizeof(n1), peers[i].name);
				TRY(bprintf(out, "macc_peer_rtt_seconds{peer=\"%s\"} %.9g\n", n1,
					    peers[i].rtt_seconds));
			}
		}
		TRY(head(out, "macc_peer_bytes_received_total", "counter",
			 "Bytes received from the peer."));
		for (size_t i = 0; i < npeers; i++) {
			esc_label(n1, sizeof(n1), peers[i].name);
			TRY(bprintf(out, "macc_peer_bytes_received_total{peer=\"%s\"} %llu\n", n1,
				    (unsigned long long)peers[i].bytes_received_total));
		}
		TRY(head(out, "macc_peer_bytes_sent_total", "counter", "Bytes sent to the peer."));
		for (size_t i = 0; i < npeers; i++) {
			esc_label(n1, sizeof(n1), peers[i].name);
			TRY(bprintf(out, "macc_peer_bytes_sent_total{peer=\"%s\"} %llu\n", n1,
				    (unsigned long long)peers[i].bytes_sent_total));
		}
		TRY(peer_rates(out, peers, npeers));
	}
	TRY(head(out, "macc_messages_rejected_total", "counter",
		 "Messages from peers dropped, by reason."));
	for (size_t i = 0; i < npeers; i++) {
		size_t nr = peers[i].nrejected < MACC_CTL_MAX_REASONS ? peers[i].nrejected
								      : MACC_CTL_MAX_REASONS;

		esc_label(n1, sizeof(n1), peers[i].name);
		for (size_t k = 0; k < nr; k++) {
			esc_label(n3, sizeof(n3), peers[i].rejected[k].reason);
			TRY(bprintf(out, "macc_messages_rejected_total{peer=\"%s\","
				    "reason=\"%s\"} %llu\n",
				    n1, n3, (unsigned long long)peers[i].rejected[k].count));
		}
	}
	TRY(counter(out, "macc_bytes_sent_total", "Bytes sent to all peers.", m->bytes_sent_total));
	TRY(gauge(out, "macc_max_rate_bytes_per_second",
		  "Send-rate cap for all peers together (max_rate; no sample: unlimited).",
		  st->max_rate_bytes_per_second));
	TRY(gauge(out, "macc_send_rate_bytes_per_second",
		  "Bytes per second sent to all peers, over the last second or so.",
		  st->send_rate_bytes_per_second));
	TRY(counter(out, "macc_bytes_received_total", "Bytes received from all peers.",
		    m->bytes_received_total));
	TRY(counter(out, "macc_state_bytes_sent_total",
		    "Bytes of STATE messages sent, counted in the clear (no seal tag).",
		    st->state_bytes_sent_total));
	TRY(counter(out, "macc_state_bytes_received_total",
		    "Bytes of STATE messages accepted, counted in the clear (no seal tag).",
		    st->state_bytes_received_total));
	TRY(counter(out, "macc_messages_sent_total", "Messages sent to peers.",
		    m->messages_sent_total));
	TRY(counter(out, "macc_messages_received_total", "Messages accepted from peers.",
		    m->messages_received_total));
	TRY(counter(out, "macc_neighbours_missed_total",
		    "Neighbour states that missed their round (weight folded into self).",
		    m->neighbours_missed_total));
	TRY(counter(out, "macc_checkpoints_total", "Checkpoints written.", m->checkpoints_total));
	TRY(head(out, "macc_states_excluded_total", "counter",
		 "Neighbour states robust mixing left out of a round, by reason."));
	TRY(bprintf(out, "macc_states_excluded_total{reason=\"nonfinite\"} %llu\n"
		    "macc_states_excluded_total{reason=\"distance\"} %llu\n"
		    "macc_states_excluded_total{reason=\"quarantined\"} %llu\n",
		    (unsigned long long)m->excluded_nonfinite_total,
		    (unsigned long long)m->excluded_distance_total,
		    (unsigned long long)m->excluded_quarantined_total));
	TRY(counter(out, "macc_states_clipped_total", "Neighbour states mixed after clipping.",
		    m->clipped_total));
	TRY(counter(out, "macc_quarantines_total", "Quarantines of neighbours started.",
		    m->quarantines_total));
	if (npeers > 0) {
		TRY(head(out, "macc_peer_quarantine_active", "gauge",
			 "1 if the peer is in quarantine (its states are not mixed)."));
		for (size_t i = 0; i < npeers; i++) {
			esc_label(n1, sizeof(n1), peers[i].name);
			TRY(bprintf(out, "macc_peer_quarantine_active{peer=\"%s\"} %d\n", n1,
				    peers[i].quarantine_active));
		}
		TRY(head(out, "macc_peer_states_excluded_total", "counter",
			 "States of the peer robust mixing left out, by reason."));
		for (size_t i = 0; i < npeers; i++) {
			esc_label(n1, sizeof(n1), peers[i].name);
			TRY(bprintf(out, "macc_peer_states_excluded_total{peer=\"%s\","
				    "reason=\"nonfinite\"} %llu\n"
				    "macc_peer_states_excluded_total{peer=\"%s\","
				    "reason=\"distance\"} %llu\n"
				    "macc_peer_states_excluded_total{peer=\"%s\","
				    "reason=\"quarantined\"} %llu\n",
				    n1, (unsigned long long)peers[i].states_excluded_nonfinite_total, n1,
				    (unsigned long long)peers[i].states_excluded_distance_total, n1,
				    (unsigned long long)peers[i].states_excluded_quarantined_total));
		}
	}
	TRY(counter(out, "macc_audit_entries_total", "Audit trail entries written.",
		    m->audit_entries_total));
	TRY(counter(out, "macc_audit_errors_total",
		    "Audit trail entries that could not be written (disk errors).",
		    m->audit_errors_total));
	TRY(head(out, "macc_round_seconds", "histogram", "Wall time of a round."));
	for (size_t i = 0; i < MACC_CTL_ROUND_BUCKETS; i++) {
		cum += m->round_seconds_bucket[i];
		TRY(bprintf(out, "macc_round_seconds_bucket{le=\"%g\"} %llu\n",
			    macc_ctl_round_buckets[i], (unsigned long long)cum));
	}
	TRY(bprintf(out, "macc_round_seconds_bucket{le=\"+Inf\"} %llu\n",
		    (unsigned long long)m->round_seconds_count));
	TRY(bprintf(out, "macc_round_seconds_sum %.9g\n", m->round_seconds_sum));
	TRY(bprintf(out, "macc_round_seconds_count %llu\n",
		    (unsigned long long)m->round_seconds_count));
	TRY(format_hostile(st, m, out));
#undef TRY
	return 0;
}
