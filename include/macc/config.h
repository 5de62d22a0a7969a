/*
 * config.h - the agent's INI configuration: parsing, validation and reload diffs.
 *
 * File format (man/macc.conf.5): `[section]` headers, `key = value` lines, comments are lines whose
 * first non-blank character is `#` or `;`, or the rest of a line from a `#` preceded by whitespace
 * (`;` is not an inline comment: dataset specs use it). Blank lines are ignored, values trimmed.
 * Sections: one `[agent]`, one `[train]`, and one `[peer]` per neighbour, repeated.
 * Keys are lower case.
 *
 * The parser is streaming (wireguard-tools style): macc_config_parser_init(), then one
 * macc_config_parser_line() per line, then macc_config_parser_finish(), which applies the
 * cross-key checks (peer duplicates, shard index < count, explicit weights sum, ...). Every error
 * is MACC_ECONFIG with a message "FILE:LINE: key 'KEY' = 'VALUE': what is wrong" (checks that span
 * several lines name the line of the offending entry). The parser fills a fresh struct owned by the
 * caller, so reload is: load into a new struct, and only if that succeeds, compute
 * macc_config_diff(old, new), apply it, macc_config_finish(old) and keep the new one (BIRD style).
 *
 * Layering: config.c lives in src/common and depends on nothing above it. The model spec and the
 * dataset spec are syntax-checked only (non-empty, printable); the daemon builds them at start and
 * reports their errors itself. Algorithm, partition, lr schedule, weights and log level are checked
 * fully here.
 *
 * Defaults (a key that is absent keeps its default):
 *   [agent]  name = (required)          listen = 0.0.0.0:7640      key_file = /etc/macc/agent.key
 *            state_dir = /var/lib/macc   control_socket = /run/macc/agentd.sock
 *            log_level = info
 *            encrypt = yes (seal every peer session; both ends must agree; no: plaintext)
 *            rekey_bytes = 1073741824, rekey_frames = 1048576 (sealed sessions: move to the
 *            next key after this many bytes or frames sent, whichever first; 0 = never by it)
 *            audit = no (log correctly signed STATEs that robust mixing excluded, macc/audit.h)
 *            audit_max_bytes = 1048576 (per log file, >= 4096), audit_files = 4 (1 .. 100)
 *            audit_evidence = no (also keep the bodies; needs audit = yes)
 *            audit_evidence_max_bytes = 268435456 (bound on the stored bodies)
 *            standalone = no (yes: the agent has no [peer] on purpose and trains alone; without
 *            it a config with no [peer] is refused by the daemon's check, see src/agentd/check.c)
 *            Limits on hostile peers and control clients (macc-agentd(8), THREAT MODEL):
 *            handshake_timeout_ms = 10000, max_unauthenticated = 32 (connections not yet
 *            proven), ping_rate = 20 (PINGs answered per second and connection),
 *            send_queue_max_bytes = 0 (automatic: three STATE frames; else >= 65536),
 *            control_max_clients = 64, control_reserved_clients = 4 (of those, kept for root
 *            and the daemon's user; < control_max_clients), control_idle_timeout_ms = 30000.
 *            max_rate = 0 (bytes/s sent to all peers together, 0 unlimited; k, M, G are powers
 *            of ten; also per [peer]; applies on reload)
 *            tcp_congestion = (unset: the system's default; else a name of the kernel's
 *            tcp_available_congestion_control, e.g. cubic, reno, bbr, set on every peer
 *            connection; applies to connections made after a reload)
 *            The control_* keys need a restart; the others apply on reload.
 *   [train]  model = mlp:784-256-128-10  data = fashion-mnist       shard = (unset: whole dataset)
 *            partition = iid            algorithm = dmsgd           lr = 0.01
 *            lr_schedule = const        momentum = 0.9              omega = 1
 *            nesterov = false           weight_decay = 0            batch = 64
 *            epochs = 1 (unless rounds is set; setting both is an error)
 *            seed = 1                   threads = 1 (0 = OpenBLAS default)
 *            round_timeout_ms = 5000    dead_peer_timeout_ms = 30000
 *            reconnect_grace_ms = 500 (a neighbour whose session was up and went down is
 *            waited for this long, then not until it is back; 0 .. 3600000)
 *            checkpoint_every = 100 (rounds, 0 = only on SIGTERM)
 *            eval_every = 0 (rounds between test evaluations, 0 = at the end of each epoch)
 *            weights = metropolis (or uniform, or explicit: every peer then needs `weight`)
 *            aggregation = mean (or clip:TAU, clip:auto, trimmed:B with 2B+1 <= peers)
 *            screen_factor = (unset: 0 for mean, i.e. no distance screening, else 10)
 *            Reload applies new aggregation / screen_factor; the audit keys need a restart.
 *            algorithm = sgp (push-sum; needs topology)
 *            schedule = static (or matching, exp-pairs: need topology)
 *            topology = (unset; the whole graph as for macc-sim --topology, with shard =
 *            INDEX/COUNT giving this agent's number and the number of agents; the configured
 *            peers, sorted by public key, are its neighbours in ascending agent number)
 *            local_steps = 1            compress = none (bf16, int8, topk:F)
 *            gossip_step = (unset: the compressor's default)
 *            blas_kernel = auto (or an OpenBLAS kernel name: Haswell, Zen, SkylakeX, ...)
 *            rejoin_quorum = 0 (neighbours that must attest a round before a jump there; 0 = a
 *            majority), rejoin_interval_ms = 10000 (at least this long between jumps),
 *            state_value_max = 1e6 (bound on received values' magnitude; 0 = finite only)
 *            standardize = auto (yes: agree on a feature standardisation before training,
 *            macc/agree.h; no; auto: yes for csv: data), standardize_rounds = 50 (S, 0 ..
 *            10000), standardize_diameter = (unset: from topology or shard COUNT; D, 1 .. 4096)
 *   [peer]   name, endpoint, public_key are required; weight only with weights = explicit
 *            (the agent's own weight is then 1 - sum of peer weights, which must be >= 0)
 *
 * Value syntax: booleans true/false/yes/no/on/off/1/0; integers decimal; durations in ms as
 * integers; endpoints `host:port`, `1.2.3.4:port` or `[v6addr]:port`; public keys base64 of 32
 * bytes (44 characters); shard `INDEX/COUNT` with INDEX < COUNT.
 */
#ifndef MACC_CONFIG_H
#define MACC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macc/consensus.h"
#include "macc/crypto.h"
#include "macc/err.h"
#include "macc/log.h"

#define MACC_CONFIG_DEFAULT_PATH "/etc/macc/agentd.conf"
#define MACC_CONFIG_DEFAULT_SOCKET "/run/macc/agentd.sock"
#define MACC_CONFIG_DEFAULT_PORT 7640

#define MACC_CONFIG_NAME_MAX 64    /* names: [A-Za-z0-9._-], 1..63 characters */
#define MACC_CONFIG_TCP_CC_MAX 16 /* the kernel's TCP_CA_NAME_MAX */
#define MACC_CONFIG_HOST_MAX 256   /* host names / addresses, without brackets */
#define MACC_CONFIG_PATH_MAX 1024  /* file and directory paths */
#define MACC_CONFIG_SPEC_MAX 1024  /* model / data specs */
#define MACC_CONFIG_SOCKET_MAX 108 /* sizeof(sun_path): control socket path < 108 bytes */
#define MACC_CONFIG_MAX_PEERS 256
#define MACC_CONFIG_LINE_MAX 4096  /* longer lines are an error */
#define MACC_CONFIG_KEYS_MAX 64    /* keys per section table (one bit each in the parser) */


/* host:port. `host` never has brackets; `v6` says it was given as [addr]. */
struct macc_endpoint {
	char host[MACC_CONFIG_HOST_MAX];
	uint16_t port;
	bool v6;
};

/* [train] standardize (macc/agree.h; AUTO: macc_agree_default_on of the data spec). */
enum macc_config_standardize {
	MACC_CONFIG_STD_AUTO = 0,
	MACC_CONFIG_STD_YES = 1,
	MACC_CONFIG_STD_NO = 2,
};

enum macc_config_weights {
	MACC_CONFIG_WEIGHTS_METROPOLIS = 0,
	MACC_CONFIG_WEIGHTS_UNIFORM = 1,
	MACC_CONFIG_WEIGHTS_EXPLICIT = 2,
};

struct macc_config_peer {
	char name[MACC_CONFIG_NAME_MAX];
	struct macc_endpoint endpoint;
	struct macc_pubkey public_key;
	char public_key_b64[MACC_KEY_B64_SIZE]; /* as written (trimmed) */
	double weight;   /* only meaningful when has_weight */
	bool has_weight;
	uint64_t max_rate; /* bytes/s sent to this peer; 0 = unlimited */
	unsigned line;   /* line of the [peer] header, for error messages */
};

struct macc_config {
	char file[MACC_CONFIG_PATH_MAX]; /* where it was read from ("<string>" for parse_string) */

	/* [agent] */
	char name[MACC_CONFIG_NAME_MAX];
	struct macc_endpoint listen;
	char key_file[MACC_CONFIG_PATH_MAX];
	char state_dir[MACC_CONFIG_PATH_MAX];
	char control_socket[MACC_CONFIG_SOCKET_MAX];
	enum macc_log_level log_level;
	bool encrypt;          /* seal peer sessions */
	uint64_t rekey_bytes;  /* sealed tx: next key after this many payload bytes (0: never) */
	uint64_t rekey_frames; /* ... or this many frames (0: never) */
	bool audit;                        /* audit trail of excluded STATEs */
	uint64_t audit_max_bytes;          /* per log file */
	uint32_t audit_files;              /* log files kept, audit.log included */
	bool audit_evidence;               /* keep the excluded bodies too */
	uint64_t audit_evidence_max_bytes; /* bound on the kept bodies */
	bool standalone;                   /* no [peer] on purpose */
	/* limits on hostile peers and control clients */
	uint32_t handshake_timeout_ms;     /* a connection must be proven within this */
	uint32_t max_unauthenticated;      /* inbound connections not yet proven */
	uint32_t ping_rate;                /* PINGs answered per second per connection */
	uint64_t send_queue_max_bytes;     /* per peer; 0 = three STATE frames */
	uint64_t max_rate;                 /* bytes/s sent to all peers together; 0 = unlimited */
	char tcp_congestion[MACC_CONFIG_TCP_CC_MAX]; /* "" = the system's default */
	uint32_t control_max_clients;
	uint32_t control_reserved_clients; /* of those, kept for root and the daemon's user */
	uint32_t control_idle_timeout_ms;

	/* [train] */
	char model[MACC_CONFIG_SPEC_MAX];
	char data[MACC_CONFIG_SPEC_MAX];
	bool has_shard;          /* false: the agent uses the whole dataset (local files) */
	uint32_t shard_index;    /* < shard_count */
	uint32_t shard_count;
	char partition[64];      /* "iid", "label-shards:K", "dirichlet:ALPHA" */
	enum macc_algo algorithm; /* never MACC_ALGO_CENTRALIZED (simulator only) */
	double lr;               /* > 0 */
	char lr_schedule[64];    /* "const", "step:EVERY:GAMMA", "cosine" (nn.h macc_lr_parse) */
	double momentum;         /* [0, 1) */
	double omega;            /* [0, 1] */
	bool nesterov;
	double weight_decay;     /* >= 0 */
	uint32_t batch;          /* 1 .. 65536 */
	uint32_t epochs;         /* 0 when rounds is set */
	uint64_t rounds;         /* 0 when epochs is set */
	uint64_t seed;
	uint32_t threads;        /* 0 = OpenBLAS default, else 1 .. 1024 */
	uint32_t round_timeout_ms;     /* 1 .. 3600000 */
	uint32_t dead_peer_timeout_ms; /* >= round_timeout_ms */
	uint32_t reconnect_grace_ms;   /* 0 .. 3600000 */
	uint32_t checkpoint_every;     /* rounds, 0 = only on SIGTERM */
	uint32_t eval_every;           /* rounds, 0 = every epoch end */
	enum macc_config_weights weights;
	char aggregation[48];    /* "mean", "clip:TAU", "clip:auto", "trimmed:B" (macc_agg_parse) */
	uint32_t trim_b;         /* B of trimmed:B, else 0 */
	double screen_factor;    /* distance bound factor, when has_screen_factor */
	bool has_screen_factor;
	/* beyond a fixed undirected graph (macc-algorithms(7)) */
	bool sgp;                 /* algorithm = sgp: cdmsgd in push-sum form (algorithm = cdmsgd) */
	enum macc_schedule_kind schedule;
	char topology[MACC_CONFIG_SPEC_MAX]; /* whole graph spec; "" = only the configured peers */
	uint32_t local_steps;     /* H >= 1 */
	char compress[32];        /* "none", "bf16", "int8", "topk:F" */
	double gossip_step;       /* CHOCO gamma in (0, 1]; 0 = the compressor's default */
	/* OpenBLAS kernel, "auto" or a name of OpenBLAS's x86-64 list (macc/nn.h,
	 * macc_nn_blas_select); read by macc-agentd's main() before the agent starts */
	char blas_kernel[24];
	/* round jumps and received values (macc/guard.h) */
	uint32_t rejoin_quorum;      /* attestations for a round jump; 0 = a majority */
	uint32_t rejoin_interval_ms; /* at least this long between two jumps */
	double state_value_max;      /* bound on received |values|; 0 = finiteness only */
	/* feature standardisation agreed before training (macc/agree.h) */
	enum macc_config_standardize standardize;
	uint32_t standardize_rounds;   /* S: average-consensus steps */
	uint32_t standardize_diameter; /* D: exact steps; 0 = derive (topology, shard COUNT) */

	/* [peer] sections, in file order; owned. */
	struct macc_config_peer *peers;
	size_t npeers;

	/* Where things were written, for messages that name the line (0 = not in the file): the
	 * [agent] and [train] headers, and per key of those sections (macc_config_key_line). */
	unsigned agent_line, train_line;
	unsigned key_lines[2][MACC_CONFIG_KEYS_MAX];
};

/* Fill with the defaults above (no peers, empty name). Never fails. */
void macc_config_defaults(struct macc_config *c);

/* Free what c owns (the peer array) and zero it. NULL and zeroed storage are fine. */
void macc_config_finish(struct macc_config *c);

/* Streaming parser state. Treat as opaque; lives on the caller's stack. */
struct macc_config_parser {
	struct macc_config *cfg; /* borrowed until finish */
	char file[MACC_CONFIG_PATH_MAX];
	unsigned line;
	int section;              /* internal: none / agent / train / peer */
	uint64_t seen_agent;      /* bit per key, for duplicate detection */
	uint64_t seen_train;
	uint64_t seen_peer;
	unsigned agent_line, train_line; /* line of the section header, 0 = not seen */
	size_t peers_cap;
	int failed;               /* first error code: later calls return it */
};

/*
 * Start parsing into `cfg`, which is set to the defaults. `file` names the input in error
 * messages. After init, the caller must call macc_config_parser_finish() (even after an error)
 * or macc_config_finish(cfg) to release the peers.
 */
void macc_config_parser_init(struct macc_config_parser *p, struct macc_config *cfg,
			     const char *file);

/* Feed one line (without or with its trailing "\n" / "\r\n"; must not contain other NULs).
 * Returns 0 or MACC_ECONFIG with err naming file, line, key and value. After an error further
 * lines are ignored and the same code is returned. */
int macc_config_parser_line(struct macc_config_parser *p, const char *line,
			    struct macc_errmsg *err);

/* End of input: cross-key validation. Returns 0 (cfg is complete and valid) or MACC_ECONFIG; on
 * failure cfg is released (macc_config_finish) so the caller only has to discard it. */
int macc_config_parser_finish(struct macc_config_parser *p, struct macc_errmsg *err);

/* Parse a whole file. On success *ret (caller storage, overwritten) holds the config; on failure
 * *ret is zeroed and err explains (file errors are -errno: "FILE: No such file or directory"). */
int macc_config_load(const char *path, struct macc_config *ret, struct macc_errmsg *err);

/* Parse a config held in memory (tests, fuzzing). `name` is used as the file name in errors. */
int macc_config_parse_string(const char *text, size_t len, const char *name,
			     struct macc_config *ret, struct macc_errmsg *err);

/*
 * Cross-check with the agent's identity once its key is loaded: no peer may have the agent's own
 * public key. Returns 0 or MACC_ECONFIG naming the peer and its line.
 */
int macc_config_check_own_key(const struct macc_config *c, const struct macc_pubkey *own,
			      struct macc_errmsg *err);

/* The line that set `key` in section "agent" or "train" (key NULL: the section header's line);
 * 0 when the key kept its default (or the section is unknown). */
unsigned macc_config_key_line(const struct macc_config *c, const char *section, const char *key);

/* Find a peer by public key; returns its index or -1. */
long macc_config_find_peer(const struct macc_config *c, const struct macc_pubkey *key);

/* "metropolis" / "uniform" / "explicit". */
const char *macc_config_weights_name(enum macc_config_weights w);

/* Format an endpoint as "host:port" or "[v6]:port" into buf; returns buf. */
char *macc_endpoint_format(const struct macc_endpoint *e, char *buf, size_t size);

/* Parse "host:port" / "[v6]:port"; returns 0 or MACC_ECONFIG (err says why, without file/line). */
int macc_endpoint_parse(const char *s, struct macc_endpoint *ret, struct macc_errmsg *err);

/*
 * Reload diff. Peers are matched by public key (their identity): a key only in `new` is ADDED, a
 * key only in `old` is REMOVED, a key in both whose weight changed is REWEIGHTED, and whose name
 * or endpoint changed is CHANGED (the daemon reconnects it). A peer can be both REWEIGHTED and
 * CHANGED: it then appears once with both flags.
 */
enum macc_peer_change_kind {
	MACC_PEER_ADDED = 1,
	MACC_PEER_REMOVED = 2,
	MACC_PEER_REWEIGHTED = 4,
	MACC_PEER_CHANGED = 8,
};

struct macc_peer_change {
	unsigned kind;    /* bit set of macc_peer_change_kind */
	long old_index;   /* index in old->peers, -1 for ADDED */
	long new_index;   /* index in new->peers, -1 for REMOVED */
};

struct macc_config_diff {
	struct macc_peer_change *changes; /* owned */
	size_t nchanges;
	bool weights_changed;   /* the weights mode changed: every row is recomputed */
	bool log_level_changed;
	/* Keys that cannot change without a restart (name, listen, key_file, state_dir,
	 * control_socket, every [train] key except the timeouts and checkpoint/eval intervals):
	 * the name of the first such key that differs, or "" when none. The daemon refuses the
	 * reload (keeping the old config) and says so. */
	char restart_key[32];
	bool timeouts_changed;  /* round_timeout_ms, dead_peer_timeout_ms, checkpoint/eval_every */
};

/* Compute the diff; returns 0 or -ENOMEM. */
int macc_config_diff(const struct macc_config *old, const struct macc_config *new_cfg,
		     struct macc_config_diff *ret);
void macc_config_diff_finish(struct macc_config_diff *d); /* zeroed ok */

#endif
