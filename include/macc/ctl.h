/*
 * ctl.h - the control protocol between macc-ctl and macc-agentd: commands, statuses, payloads
 * and the one codec both programs link (src/proto/ctlproto.c; msgpack stays inside it).
 *
 * Transport: a Unix stream socket. Every message is a frame: u32 big-endian body length, then a
 * msgpack map. Requests are {"v": 1, "id": uint, "cmd": str, "args": map} ("args" may be omitted
 * when empty); replies are {"v": 1, "id": uint, "status": uint, "error": str?, "data": map?}.
 * A reply echoes the request id. `watch` gets many replies with the same id, one per progress
 * event, the last with data.final = true when the run ended (done, stopped or failed); a daemon
 * that shuts down in the middle of a run closes the stream without a final event, so a client
 * tells "the run is over" from "the daemon went away". Every other command gets one reply.
 *
 * Names (the payload's field names are the wire keys and macc-ctl's JSON keys, see
 * macc-ctl(8) NAMES): snake_case; a quantity with a unit ends in its SI base unit (`_seconds`,
 * `_bytes`), a rate in `_per_second`, a fraction in [0, 1] in `_ratio`; a counter that only
 * grows while the daemon runs ends in `_total`, and nothing else does; one meaning has one name,
 * the same as the metric's without `macc_` / `macc_peer_` (peers' rtt_seconds is
 * macc_peer_rtt_seconds).
 *
 * The daemon checks, in this order (chrony cmdmon style): frame size (> MACC_CTL_MAX_REQUEST:
 * ETOOBIG reply, then close), msgpack well-formed map with v/id/cmd (MALFORMED), version
 * (VERSION, the connection stays open), known command (UNKNOWNCMD), argument types (ARGS),
 * permission for mutating commands (PERM). Only then does it run the command.
 *
 * Reply statuses are stable numbers (documented in man/macc-ctl.8; never renumber, only add):
 *    0 ok          the command was done (or, for start/stop/eval/checkpoint, accepted)
 *    1 malformed   the frame is not a msgpack map with v, id and cmd of the right types
 *    2 version     unsupported protocol version (the reply carries the daemon's version in v)
 *    3 unknown-command
 *    4 bad-arguments   an argument is missing, unknown, or has the wrong type or value
 *    5 permission-denied  a mutating command from a caller that is not root, the daemon's
 *                  user, or a member of the socket's group
 *    6 too-big     the request frame is larger than MACC_CTL_MAX_REQUEST
 *    7 bad-state   not possible in the current state (pause while idle, start while training)
 *    8 config      reload: the new configuration is invalid (error says file, line, key)
 *    9 busy        too many control clients; try again
 *   10 failed      the agent tried and failed (error says why: checkpoint write, ...)
 *   11 internal    a bug or resource failure in the daemon (out of memory, ...)
 */
#ifndef MACC_CTL_H
#define MACC_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macc/buf.h"
#include "macc/err.h"
#include "macc/log.h"

#define MACC_CTL_PROTO_VERSION 1
#define MACC_CTL_DEFAULT_SOCKET "/run/macc/agentd.sock"
/* Request frame body limit (daemon side): room for a `predict` batch of 64 CIFAR-sized rows
 * (64 x 3072 floats = 768 KiB). A connection buffers at most about twice this. */
#define MACC_CTL_MAX_REQUEST (1024u * 1024u)
#define MACC_CTL_MAX_REPLY (16u * 1024u * 1024u) /* reply frame body limit (client side) */
#define MACC_CTL_FRAME_HEADER 4

enum macc_ctl_status_code {
	MACC_CTL_OK = 0,
	MACC_CTL_EMALFORMED = 1,
	MACC_CTL_EVERSION = 2,
	MACC_CTL_EUNKNOWNCMD = 3,
	MACC_CTL_EARGS = 4,
	MACC_CTL_EPERM = 5,
	MACC_CTL_ETOOBIG = 6,
	MACC_CTL_ESTATE = 7,
	MACC_CTL_ECONFIG = 8,
	MACC_CTL_EBUSY = 9,
	MACC_CTL_EFAILED = 10,
	MACC_CTL_EINTERNAL = 11,
	MACC_CTL_STATUS_COUNT
};

/* "ok", "malformed", "version", "unknown-command", ... ("unknown" for other numbers). */
const char *macc_ctl_status_name(int status);

/* Map a macc error code to a reply status: MACC_EMALFORMED -> malformed, MACC_EVERSION ->
 * version, MACC_EUNKNOWNCMD -> unknown-command, MACC_ESPEC -> bad-arguments, MACC_EPERM ->
 * permission-denied, MACC_ETOOBIG -> too-big, MACC_ESTATE -> bad-state, MACC_ECONFIG -> config,
 * -ENOMEM -> internal, anything else -> failed. 0 -> ok. */
int macc_ctl_status_from_err(int code);

/* Commands. The order is the table order; never renumber (used as array indices only). */
enum macc_ctl_cmd {
	MACC_CTL_CMD_STATUS,
	MACC_CTL_CMD_PEERS,
	MACC_CTL_CMD_START,
	MACC_CTL_CMD_STOP,
	MACC_CTL_CMD_PAUSE,
	MACC_CTL_CMD_RESUME,
	MACC_CTL_CMD_CHECKPOINT,
	MACC_CTL_CMD_EVAL,
	MACC_CTL_CMD_METRICS,
	MACC_CTL_CMD_WATCH,
	MACC_CTL_CMD_RELOAD,
	MACC_CTL_CMD_LOG_LEVEL,
	MACC_CTL_CMD_VERSION,
	MACC_CTL_CMD_AUDIT,
	MACC_CTL_CMD_MODEL,
	MACC_CTL_CMD_PREDICT,
	MACC_CTL_CMD_COUNT
};

/* What a reply's data holds, by command: status -> STATUS, peers -> PEERS, watch -> PROGRESS,
 * metrics and version -> TEXT, audit -> AUDIT, model -> MODEL, predict -> PREDICT, the rest ->
 * NONE. */
enum macc_ctl_data_kind {
	MACC_CTL_DATA_NONE,
	MACC_CTL_DATA_STATUS,
	MACC_CTL_DATA_PEERS,
	MACC_CTL_DATA_PROGRESS,
	MACC_CTL_DATA_TEXT,
	MACC_CTL_DATA_AUDIT,
	MACC_CTL_DATA_MODEL,
	MACC_CTL_DATA_PREDICT,
};

struct macc_ctl_cmdinfo {
	enum macc_ctl_cmd cmd;
	const char *name;  /* wire and CLI name: "status", "log-level", ... */
	bool mutating;     /* needs root / daemon uid / socket group */
	enum macc_ctl_data_kind data;
	const char *help;  /* one line for `macc-ctl help` */
};

/* The command table, indexed by enum macc_ctl_cmd. */
extern const struct macc_ctl_cmdinfo macc_ctl_commands[MACC_CTL_CMD_COUNT];

/* Look a command up by wire name; NULL if unknown. */
const struct macc_ctl_cmdinfo *macc_ctl_cmd_find(const char *name);

enum macc_ctl_state {
	MACC_CTL_STATE_IDLE,
	MACC_CTL_STATE_TRAINING,
	MACC_CTL_STATE_PAUSED,
	MACC_CTL_STATE_DONE,
	MACC_CTL_STATE_ERROR,
	MACC_CTL_STATE_COUNT
};
/* "idle", "training", "paused", "done", "error". */
const char *macc_ctl_state_name(enum macc_ctl_state s);

enum macc_ctl_session {
	MACC_CTL_SESSION_DOWN,       /* no connection (backing off) */
	MACC_CTL_SESSION_CONNECTING, /* TCP connect in progress */
	MACC_CTL_SESSION_HANDSHAKE,  /* connected, HELLO not yet verified */
	MACC_CTL_SESSION_UP,         /* authenticated session */
	MACC_CTL_SESSION_DEAD,       /* no traffic for the dead-peer timeout: not waited for */
	MACC_CTL_SESSION_COUNT
};
/* "down", "connecting", "handshake", "up", "dead". */
const char *macc_ctl_session_name(enum macc_ctl_session s);

/*
 * Why a connection was refused before its peer was identified (before the peer's proof of key
 * possession verified): counted per agent, never on the peer whose key a HELLO claims, since
 * an unproven claim is not that peer's word. Stable names (status "connections_rejected_total",
 * metrics macc_connections_rejected_total{reason=...}); only add, never renumber.
 */
enum macc_ctl_connrej {
	MACC_CTL_CONNREJ_UNKNOWN_KEY,    /* "unknown_key": HELLO key not in the allow-list */
	MACC_CTL_CONNREJ_VERSION,        /* "version": protocol version not supported */
	MACC_CTL_CONNREJ_MALFORMED,      /* "malformed": undecodable, oversized or out of order */
	MACC_CTL_CONNREJ_TIMEOUT,        /* "timeout": not proven within handshake_timeout_ms */
	MACC_CTL_CONNREJ_FLOOD,          /* "flood": over max_unauthenticated connections */
	MACC_CTL_CONNREJ_UNPROVEN_STATE, /* "unproven_state": a STATE before the proof */
	MACC_CTL_CONNREJ_BAD_PROOF,      /* "bad_proof": HELLO_ACK signature does not verify */
	MACC_CTL_CONNREJ_REPLAY,         /* "replay": our own nonce, or a round past the run */
	MACC_CTL_CONNREJ_RATE_LIMITED,   /* "rate_limited": PINGs over ping_rate before proof */
	MACC_CTL_CONNREJ_OTHER,          /* "other": anything else (a bad ephemeral key, ...) */
	MACC_CTL_CONNREJ_COUNT
};
/* The names above ("unknown" for other numbers). */
const char *macc_ctl_connrej_name(enum macc_ctl_connrej r);

/* Request. Arguments are plain fields; only the ones of `cmd` are encoded. */
struct macc_ctl_request {
	uint32_t v;      /* protocol version, MACC_CTL_PROTO_VERSION when encoding */
	uint64_t id;     /* chosen by the client, echoed in replies */
	enum macc_ctl_cmd cmd;
	enum macc_log_level level; /* log-level: {"level": "debug"} */
	uint32_t limit;            /* audit: {"limit": N}, 1 .. MACC_CTL_AUDIT_MAX; 0 = default */
	/* model: {"offset": N, "count": N, "generation": G}, each optional (0, CHUNK, 0) */
	uint64_t offset;     /* first float of the model stream wanted */
	uint64_t count;      /* floats wanted; 0: the description only (at most CHUNK are sent) */
	uint64_t generation; /* the snapshot earlier chunks came from; 0: the current one */
	/* predict: {"inputs": bin}, rows of the model's input_dim float32 values, little-endian,
	 * row after row. Borrowed: when encoding from the caller, when decoding from the body
	 * (valid while the body is; not aligned for float access: copy it). */
	const uint8_t *inputs;
	size_t inputs_len;   /* bytes */
};

/*
 * The model and predict commands read a published copy of the agent's parameters (a snapshot,
 * retaken at a round boundary, so never half-way through a step). `model` sends the snapshot
 * as one stream of float32 values, in chunks of at most MACC_CTL_MODEL_CHUNK: the parameter
 * block, then (standardized only) the standardiser's mean and inv_std, input_dim each. A
 * client that needs several chunks names the generation of the first in the next requests;
 * the daemon keeps that snapshot while chunks keep coming (at most 10 s apart) and answers
 * `bad-state` once it has moved on, and the client starts again.
 */
#define MACC_CTL_MODEL_CHUNK (1u << 20)   /* floats per `model` reply (4 MiB) */
#define MACC_CTL_PREDICT_MAX_ROWS 1024u  /* rows per `predict` request */
/* Rows per forward pass when scoring, in the daemon and in macc-ctl's offline predictions
 * alike: BLAS may round a row differently in another position of another batch size (or with
 * another thread count), and with the same passes, requests of a multiple of it and one BLAS
 * thread both give bit-identical outputs. */
#define MACC_CTL_PREDICT_BATCH 64u

struct macc_ctl_model {
	char name[64];       /* the agent's name */
	char *spec;          /* canonical model spec (macc_model_spec); owned after decode */
	char task[16];       /* "classification" or "regression" */
	uint64_t round;      /* rounds completed when the snapshot was taken */
	uint64_t generation; /* changes whenever the snapshot is retaken (never 0) */
	char digest[24];     /* macc_params_digest of the snapshot's parameters, 16 hex digits */
	uint64_t nparams;
	uint32_t input_c, input_h, input_w; /* one sample: input_c features when input_flat */
	bool input_flat;
	uint32_t outputs;    /* classes or regression targets */
	bool standardized;   /* the stream ends with the standardiser */
	uint64_t total;      /* floats in the stream */
	uint64_t offset;     /* of this chunk */
	uint8_t *data;       /* the chunk, float32 little-endian; owned after decode */
	size_t data_len;     /* bytes */
};

struct macc_ctl_predict {
	uint64_t round;      /* of the snapshot that answered */
	uint64_t generation;
	char digest[24];
	char task[16];       /* classification: values are logits (softmax gives probabilities);
			      * regression: the predicted values */
	uint32_t rows;
	uint32_t outputs;    /* values per row */
	uint8_t *values;     /* rows x outputs float32 little-endian; owned after decode */
	size_t values_len;   /* bytes */
};

/*
 * Agent status (`status`). Doubles that are not known yet are NaN (JSON null); strings that are
 * not known are "".
 */
struct macc_ctl_status {
	enum macc_ctl_state state;
	char name[64];
	char model[128];
	char algorithm[32];
	char version[32];          /* macc version of the daemon */
	char arch[32];             /* machine (uname): "x86_64", "aarch64"; "" unknown */
	char blas[32];             /* BLAS kernel: "Haswell", "ARMV8"; "" unknown */
	uint64_t round;            /* completed rounds */
	uint64_t rounds_planned;   /* rounds in the run, 0 = unknown */
	double epoch;              /* fractional epochs completed */
	double epochs_planned;     /* 0 = unknown */
	double train_loss;         /* recent mean mini-batch loss, NaN before the first round */
	double test_loss;          /* last evaluation */
	double test_accuracy_ratio; /* last evaluation, in [0, 1] */
	double samples_per_second;
	double round_seconds;      /* last round's wall time */
	double consensus_distance; /* mean ||x - x_l||^2 over the neighbours' last states */
	uint32_t peers_up;
	uint32_t peers_configured;
	uint64_t uptime_seconds;
	double process_start_time_seconds; /* wall clock at start, seconds since the epoch */
	uint64_t state_bytes_sent_total;     /* STATE frames sent, in the clear (macc-sim's
					      * bytes_per_agent) */
	uint64_t state_bytes_received_total; /* STATE frames accepted, in the clear */
	char digest[72];           /* hex digest of the parameters, "" if not computed */
	char last_error[256];
	/* hostile-peer defences */
	bool degraded;             /* own parameters went non-finite and were rolled back; until
				    * the next checkpoint after that (macc-agentd(8)) */
	uint64_t rollbacks_total;  /* such rollbacks since the daemon started */
	uint64_t connections_rejected_total[MACC_CTL_CONNREJ_COUNT]; /* by enum macc_ctl_connrej */
	/* feature standardisation (macc-agentd(8) STANDARDISATION): "off", "agreeing (step T of
	 * N)", "agreed (S + D steps)", "from checkpoint", "adopted from PEER"; "" from a daemon
	 * that predates it */
	char standardize[96];
	char standardize_digest[24];         /* the transform's digest, "" until known */
	uint64_t standardize_refused_total;  /* neighbours' STATS refused (screening, S or D) */
	double max_rate_bytes_per_second;  /* [agent] max_rate; NaN = unlimited */
	double send_rate_bytes_per_second; /* bytes handed to all sessions, last ~second */
};

#define MACC_CTL_MAX_REASONS 24

/* A rejected-message counter: reason is macc_errname() of the rejection code. */
struct macc_ctl_reject {
	char reason[24];
	uint64_t count;
};

struct macc_ctl_peer {
	char name[64];
	char endpoint[280];      /* "host:port" */
	char key[48];            /* base64 public key (full; the CLI shortens it) */
	enum macc_ctl_session session;
	int64_t last_round;      /* last round whose state arrived, -1 = none */
	double rtt_seconds;      /* NaN = not measured, or no session up */
	double weight;           /* configured mixing weight */
	uint64_t bytes_received_total;
	uint64_t bytes_sent_total;
	/* messages_rejected_total: by reason (macc_errname), every known reason even at 0 */
	struct macc_ctl_reject rejected[MACC_CTL_MAX_REASONS];
	size_t nrejected;
	/* robust mixing */
	bool sealed;                   /* the session is encrypted (false while none is up) */
	char arch[32];                  /* the peer's platform from its HELLO; "" unknown */
	char blas[32];
	uint64_t states_excluded_nonfinite_total;   /* robust mixing excluded: NaN or infinity */
	uint64_t states_excluded_distance_total;    /* ... too far from the agent's own state */
	uint64_t states_excluded_quarantined_total; /* ... not inspected: peer quarantined */
	uint64_t states_clipped_total;  /* states mixed after clipping */
	bool quarantine_active;         /* in quarantine now */
	uint64_t quarantine_until;      /* quarantined while round < this (0 = never was) */
	uint64_t quarantines_total;     /* quarantines started */
	double max_rate_bytes_per_second;  /* [peer] max_rate; NaN = unlimited */
	double send_rate_bytes_per_second; /* bytes handed to its sessions, last ~second */
};

/* Add `count` to the peer's counter for macc_errname(code) (creating it; silently ignores more
 * than MACC_CTL_MAX_REASONS distinct reasons). Helper for the daemon's peers callback. */
void macc_ctl_peer_add_reject(struct macc_ctl_peer *p, int code, uint64_t count);

/* One progress event for `watch` (also the data of its final reply, final = true). */
struct macc_ctl_progress {
	enum macc_ctl_state state;
	uint64_t round;
	uint64_t rounds_planned;    /* 0 = unknown */
	double epoch;
	double epochs_planned;      /* 0 = unknown */
	double train_loss;          /* NaN unknown */
	double test_accuracy_ratio; /* NaN unknown */
	double samples_per_second;
	double round_seconds;
	double eta_seconds;         /* NaN unknown (and while paused) */
	bool final;                 /* the run ended (done, stopped or error): the stream ends */
};

/* Histogram buckets of macc_round_seconds (upper bounds, seconds; +Inf is implicit). */
#define MACC_CTL_ROUND_BUCKETS 12
extern const double macc_ctl_round_buckets[MACC_CTL_ROUND_BUCKETS];

/* Counters for `metrics` that are not in status or peers. */
struct macc_ctl_metrics {
	uint64_t rounds_total;
	uint64_t samples_total;
	uint64_t bytes_sent_total;
	uint64_t bytes_received_total;
	uint64_t messages_sent_total;
	uint64_t messages_received_total;
	uint64_t neighbours_missed_total; /* neighbour states that missed their round */
	uint64_t checkpoints_total;
	/* robust mixing and the audit trail */
	uint64_t excluded_nonfinite_total;
	uint64_t excluded_distance_total;
	uint64_t excluded_quarantined_total;
	uint64_t clipped_total;
	uint64_t quarantines_total;
	uint64_t audit_entries_total;
	uint64_t audit_errors_total;
	/* hostile-peer defences (degraded, rollbacks_total and connections_rejected_total come from the
	 * status) */
	uint64_t round_jumps_total;       /* rejoin jumps taken */
	uint64_t round_jumps_refused_total; /* neighbours ahead without a quorum, or too soon */
	uint64_t round_seconds_bucket[MACC_CTL_ROUND_BUCKETS]; /* per bucket, not cumulative */
	uint64_t round_seconds_count;  /* includes rounds above the last bucket */
	double round_seconds_sum;
};

/* Record one round's duration in the histogram (and count/sum). */
void macc_ctl_metrics_observe_round(struct macc_ctl_metrics *m, double seconds);

/*
 * Prometheus text exposition (format 0.0.4) of an agent: appended to out. Metric names (the
 * naming rule is ctl.h's, at the top): macc_up, macc_info{...}, macc_state{state=...},
 * macc_rounds_total, macc_epoch, macc_train_loss, macc_test_loss, macc_test_accuracy_ratio,
 * macc_samples_per_second, macc_samples_total, macc_consensus_distance, macc_peers_up,
 * macc_peers_configured, macc_uptime_seconds, process_start_time_seconds,
 * macc_peer_up{peer=...}, macc_peer_last_round{peer=...}, macc_peer_rtt_seconds{peer=...} (for
 * sessions that are up), macc_peer_bytes_received_total{peer=...},
 * macc_peer_bytes_sent_total{peer=...}, macc_messages_rejected_total{peer=...,reason=...}
 * (every reason the peer has, which the daemon fills with every known reason at 0),
 * macc_bytes_sent_total, macc_bytes_received_total, macc_state_bytes_sent_total,
 * macc_state_bytes_received_total, macc_messages_sent_total, macc_messages_received_total,
 * macc_neighbours_missed_total, macc_checkpoints_total, macc_round_seconds (histogram), and for
 * robust mixing and the audit trail macc_states_excluded_total{reason=...},
 * macc_states_clipped_total, macc_quarantines_total, macc_peer_quarantine_active{peer=...},
 * macc_peer_states_excluded_total{peer=...,reason=...}, macc_audit_entries_total,
 * macc_audit_errors_total, and for hostile peers macc_connections_rejected_total{reason=...}
 * (every reason, 0 included), macc_degraded, macc_rollbacks_total, macc_round_jumps_total,
 * macc_round_jumps_refused_total. Unknown (NaN) gauges are omitted. Label values are escaped.
 * Returns 0, -ENOMEM or MACC_ETOOBIG (buffer limit).
 */
int macc_ctl_metrics_format(const struct macc_ctl_status *st, const struct macc_ctl_peer *peers,
			    size_t npeers, const struct macc_ctl_metrics *m, struct macc_buf *out);

/* One audit trail entry as `audit` lists it (the file holds more: macc/audit.h). */
#define MACC_CTL_AUDIT_MAX 1000
#define MACC_CTL_AUDIT_DEFAULT 50
struct macc_ctl_audit_entry {
	uint64_t seq;
	double time_seconds; /* wall clock, seconds since the epoch (millisecond precision) */
	uint64_t round;
	char reason[16];    /* "nonfinite", "distance" */
	char peer[64];
	char key[48];       /* base64 public key of the sender */
	char digest[72];    /* hex BLAKE2b-256 of the body, from the signed text */
	uint64_t body_bytes;
	char evidence[32];  /* evidence file name, "" = body not kept */
};

/* The `audit` reply: the newest entries, oldest first. */
struct macc_ctl_audit {
	bool enabled;           /* audit = yes */
	char file[1100];        /* the current log file */
	uint64_t entries_kept;  /* entries in all kept files */
	uint64_t entries_total; /* entries this daemon wrote since it started */
	uint64_t errors_total;  /* failed writes since it started */
	struct macc_ctl_audit_entry *entries;
	size_t nentries;
};

/* A reply. After decoding, peers and text are owned by the reply (macc_ctl_reply_finish); when
 * encoding, they are borrowed. */
struct macc_ctl_reply {
	uint32_t v;
	uint64_t id;
	int status;                 /* MACC_CTL_OK or an error status */
	char error[256];            /* one sentence when status != 0 ("" = none) */
	enum macc_ctl_data_kind kind;
	struct macc_ctl_status st;          /* kind STATUS */
	struct macc_ctl_peer *peers;        /* kind PEERS */
	size_t npeers;
	struct macc_ctl_progress progress;  /* kind PROGRESS */
	char *text;                         /* kind TEXT, NUL-terminated */
	size_t text_len;
	struct macc_ctl_audit audit;        /* kind AUDIT (entries owned like peers) */
	struct macc_ctl_model model;        /* kind MODEL (spec and data owned like peers) */
	struct macc_ctl_predict predict;    /* kind PREDICT (values owned like peers) */
};

/* Zero a reply and set v, NaNs in status/progress (unknowns). */
void macc_ctl_reply_init(struct macc_ctl_reply *r);
void macc_ctl_reply_finish(struct macc_ctl_reply *r); /* frees decoded peers/text; zeroed ok */

/* Initialise a status / progress with unknown (NaN) values. */
void macc_ctl_status_init(struct macc_ctl_status *s);
void macc_ctl_progress_init(struct macc_ctl_progress *p);

/*
 * Framing. macc_ctl_frame_next() looks at buffered bytes: returns 1 and the body's offset/length
 * when a whole frame is present, 0 when more bytes are needed, MACC_ETOOBIG when the announced
 * body is larger than max_body (decided from the header alone, before anything is buffered), or
 * MACC_EMALFORMED for an empty body.
 */
int macc_ctl_frame_next(const uint8_t *p, size_t n, size_t max_body, size_t *ret_body_len);

/* Append a whole frame (header + msgpack body) to out. 0, -ENOMEM or MACC_ETOOBIG. */
int macc_ctl_request_encode(const struct macc_ctl_request *r, struct macc_buf *out);
int macc_ctl_reply_encode(const struct macc_ctl_reply *r, struct macc_buf *out);

/*
 * Decode a request body (without the 4-byte header). Returns 0 or, in check order,
 * MACC_EMALFORMED (not a map; v, id or cmd missing or mistyped), MACC_EVERSION,
 * MACC_EUNKNOWNCMD, MACC_ESPEC (arguments missing, unknown or mistyped); err says which. Unlike
 * most decoders, ret->v and ret->id are written even on failure whenever they could be read, so
 * the error reply can echo the id.
 */
int macc_ctl_request_decode(const uint8_t *body, size_t n, struct macc_ctl_request *ret,
			    struct macc_errmsg *err);

/*
 * Decode a reply body to a request of command `cmd` (which says what data to expect). Returns 0
 * (the reply's own status may still be an error) or MACC_EMALFORMED / MACC_EVERSION; on success
 * *ret owns its peers and text.
 */
int macc_ctl_reply_decode(const uint8_t *body, size_t n, enum macc_ctl_cmd cmd,
			  struct macc_ctl_reply *ret, struct macc_errmsg *err);

#endif
