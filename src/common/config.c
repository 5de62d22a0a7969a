/*
 * config.c - streaming INI parser and validator for macc-agentd's configuration.
 *
 * Design: a line-at-a-time state machine (wireguard-tools' config.c is the model). The parser
 * keeps the current section and, per section, a bit per key already seen, so a duplicate key is
 * caught on the line that repeats it. Each key has a row in a table: its name and a setter that
 * parses the value into the caller's fresh struct macc_config and, on a bad value, explains what
 * was expected. The table row's index is the key's bit. Errors are built in one place
 * (line_error) as "FILE:LINE: key 'KEY' = 'VALUE': reason", so every message names all four.
 *
 * Checks that need the whole file (required keys, duplicate peers, the agent's name among the
 * peers, explicit weight sums, timeouts ordering) run in macc_config_parser_finish() and name the
 * line of the entry at fault. Nothing outside the struct being filled is touched, so a reload that
 * fails leaves the running config alone.
 *
 * This file sits in src/common: the algorithm names are checked against a local table that
 * mirrors consensus.h's enum, model and data specs only syntactically. Which mixing options
 * combine is the mixer's rule (macc_mixer_check_opts), checked by the daemon's start-up check
 * (src/agentd/check.c, also --check-config) with the file and line of [train].
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "macc/config.h"
#include "macc/crypto.h"

enum section { SEC_NONE, SEC_AGENT, SEC_TRAIN, SEC_PEER };

static const char *const section_names[] = { "", "agent", "train", "peer" };

/* Context for setters: the value's text and where the message goes. */
struct setctx {
	struct macc_config_parser *p;
	struct macc_config *c;
	struct macc_config_peer *peer; /* current peer for [peer] keys */
	const char *val;
	char *why;                     /* reason buffer */
	size_t whylen;
};

typedef int (*setter_fn)(struct setctx *s);

struct keydef {
	const char *name;
	setter_fn set;
};

static int why(struct setctx *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int why(struct setctx *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->why, s->whylen, fmt, ap);
	va_end(ap);
	return MACC_ECONFIG;
}

/* --- value parsers ------------------------------------------------------------------------ */

static int parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *ret)
{
	char *end;
	unsigned long long x;

	if (!isdigit((unsigned char)v[0])) {
		return -EINVAL;
	}
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0') {
		return -EINVAL;
	}
	if (x < min || x > max) {
		return -ERANGE;
	}
	*ret = x;
	return 0;
}

static int parse_double(const char *v, double *ret)
{
	char *end;
	double x;

	if (v[0] == '\0' || isspace((unsigned char)v[0])) {
		return -EINVAL;
	}
	errno = 0;
	x = strtod(v, &end);
	if (*end != '\0' || !isfinite(x) || errno == ERANGE) {
		return -EINVAL;
	}
	*ret = x;
	return 0;
}

/* A send rate in bytes per second: an integer, or a decimal number followed by k, M or G
 * (powers of ten: 10M = 10^7 bytes/s); 0 = unlimited, else at least 1000 (1k), at most 10^12
 * (1000G). */
#define RATE_MAX 1e12
static int parse_rate(const char *v, uint64_t *ret)
{
	char *end;
	double x, mul = 1.0;

	if (!isdigit((unsigned char)v[0])) {
		return -EINVAL;
	}
	errno = 0;
	x = strtod(v, &end);
	if (errno != 0 || !isfinite(x)) {
		return -EINVAL;
	}
	if (*end == 'k') {
		mul = 1e3;
	} else if (*end == 'M') {
		mul = 1e6;
	} else if (*end == 'G') {
		mul = 1e9;
	}
	if (mul > 1.0) {
		end++;
	}
	if (*end != '\0' || (mul == 1.0 && strchr(v, '.') != NULL) ||
	    strpbrk(v, "eExXpP") != NULL) {
		return -EINVAL; /* bytes are whole; no exponents or hex */
	}
	x = round(x * mul);
	if (x != 0.0 && (x < 1000.0 || x > RATE_MAX)) {
		return -ERANGE;
	}
	*ret = (uint64_t)x;
	return 0;
}

static int set_rate(struct setctx *s, uint64_t *ret)
{
	int r = parse_rate(s->val, ret);

	if (r == -ERANGE) {
		why(s, "out of range, expected 0 (unlimited) or 1k to 1000G bytes per second");
		return MACC_ECONFIG;
	}
	if (r < 0) {
		why(s, "expected bytes per second: an integer, or a number with k, M or G (10^3, "
		    "10^6, 10^9)");
		return MACC_ECONFIG;
	}
	return 0;
}

/*
 * *ret is written only on 0. The failure code is returned here rather than through why(): a
 * varargs function is never inlined, so at -O3 GCC could not see that every failure returns
 * non-zero and warned that the callers' temporaries (set_u32, t_rounds) may be read
 * uninitialised.
 */
static int set_uint(struct setctx *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	int r = parse_u64(s->val, min, max, ret);

	if (r == -ERANGE) {
		why(s, "out of range, expected %llu to %llu", (unsigned long long)min,
		    (unsigned long long)max);
		return MACC_ECONFIG;
	}
	if (r < 0) {
		why(s, "expected a non-negative integer");
		return MACC_ECONFIG;
	}
	return 0;
}

static int set_u32(struct setctx *s, uint32_t min, uint32_t max, uint32_t *ret)
{
	uint64_t x = 0; /* written on success only; gcc -O3 cannot tell */
	int r = set_uint(s, min, max, &x);

	if (r == 0) {
		*ret = (uint32_t)x;
	}
	return r;
}

/* A double in [min, max] (min_open / max_open exclude the bound). */
static int set_real(struct setctx *s, double min, bool min_open, double max, bool max_open,
		    double *ret)
{
	double x;

	if (parse_double(s->val, &x) < 0) {
		return why(s, "expected a finite number");
	}
	if (x < min || (min_open && x == min) || x > max || (max_open && x == max)) {
		return why(s, "out of range, expected %s%g, %g%s", min_open ? "(" : "[", min, max,
			   max_open ? ")" : "]");
	}
	*ret = x;
	return 0;
}

static int set_string(struct setctx *s, char *dst, size_t size, bool allow_space)
{
	size_t n = strlen(s->val);

	if (n >= size) {
		return why(s, "too long (at most %zu characters)", size - 1);
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s->val[i];

		if (ch < 0x20 || ch == 0x7f || (!allow_space && ch == ' ')) {
			return why(s, "contains a %s character at offset %zu",
				   ch == ' ' ? "space" : "control", i);
		}
	}
	memcpy(dst, s->val, n + 1);
	return 0;
}

static bool valid_name(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n >= MACC_CONFIG_NAME_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-') {
			return false;
		}
	}
	return true;
}

static int set_name(struct setctx *s, char *dst)
{
	if (!valid_name(s->val)) {
		return why(s, "a name is 1 to %d characters of A-Z a-z 0-9 . _ -",
			   MACC_CONFIG_NAME_MAX - 1);
	}
	strcpy(dst, s->val);
	return 0;
}

static int parse_bool(const char *v, bool *ret)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

int macc_endpoint_parse(const char *s, struct macc_endpoint *ret, struct macc_errmsg *err)
{
	struct macc_endpoint e;
	const char *colon;
	size_t hlen;
	uint64_t port;

	memset(&e, 0, sizeof(e));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL) {
			return macc_errf(err, MACC_ECONFIG, "missing ']' after the IPv6 address");
		}
		hlen = (size_t)(close - s - 1);
		if (hlen == 0 || hlen >= sizeof(e.host)) {
			return macc_errf(err, MACC_ECONFIG, "bad IPv6 address length");
		}
		for (size_t i = 1; i <= hlen; i++) {
			unsigned char ch = (unsigned char)s[i];

			if (!isxdigit(ch) && ch != ':' && ch != '.' && ch != '%' && !isalnum(ch)) {
				return macc_errf(err, MACC_ECONFIG,
						 "bad character '%c' in the IPv6 address", ch);
			}
		}
		if (memchr(s + 1, ':', hlen) == NULL) {
			return macc_errf(err, MACC_ECONFIG, "not an IPv6 address inside [ ]");
		}
		memcpy(e.host, s + 1, hlen);
		e.v6 = true;
		if (close[1] != ':') {
			return macc_errf(err, MACC_ECONFIG, "expected ':PORT' after ']'");
		}
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			return macc_errf(err, MACC_ECONFIG, "expected HOST:PORT");
		}
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen) != NULL) {
			return macc_errf(err, MACC_ECONFIG,
					 "IPv6 addresses need brackets: [ADDR]:PORT");
		}
		if (hlen == 0 || hlen >= sizeof(e.host)) {
			return macc_errf(err, MACC_ECONFIG, "host is empty or too long");
		}
		for (size_t i = 0; i < hlen; i++) {
			unsigned char ch = (unsigned char)s[i];

			if (!isalnum(ch) && ch != '.' && ch != '-' && ch != '_') {
				return macc_errf(err, MACC_ECONFIG,
						 "bad character '%c' in the host",
						 isprint(ch) ? ch : '?');
			}
		}
		memcpy(e.host, s, hlen);
	}
	if (parse_u64(colon + 1, 1, 65535, &port) < 0) {
		return macc_errf(err, MACC_ECONFIG, "port must be 1 to 65535");
	}
	e.port = (uint16_t)port;
	*ret = e;
	return 0;
}

char *macc_endpoint_format(const struct macc_endpoint *e, char *buf, size_t size)
{
	snprintf(buf, size, e->v6 ? "[%s]:%u" : "%s:%u", e->host, (unsigned)e->port);
	return buf;
}

static int set_endpoint(struct setctx *s, struct macc_endpoint *dst)
{
	struct macc_errmsg e;

	if (macc_endpoint_parse(s->val, dst, &e) < 0) {
		return why(s, "%s", e.text);
	}
	return 0;
}

/* --- [agent] -------------------------------------------------------------------------------- */

static int a_name(struct setctx *s)
{
	return set_name(s, s->c->name);
}

static int a_listen(struct setctx *s)
{
	return set_endpoint(s, &s->c->listen);
}

static int a_key_file(struct setctx *s)
{
	return set_string(s, s->c->key_file, sizeof(s->c->key_file), true);
}

static int a_state_dir(struct setctx *s)
{
	return set_string(s, s->c->state_dir, sizeof(s->c->state_dir), true);
}

static int a_control_socket(struct setctx *s)
{
	return set_string(s, s->c->control_socket, sizeof(s->c->control_socket), true);
}

static int a_log_level(struct setctx *s)
{
	if (macc_log_level_parse(s->val, &s->c->log_level) < 0) {
		return why(s, "expected error, warn, info or debug");
	}
	return 0;
}

static int a_encrypt(struct setctx *s)
{
	if (parse_bool(s->val, &s->c->encrypt) < 0) {
		return why(s, "expected yes or no");
	}
	return 0;
}

static int a_rekey_bytes(struct setctx *s)
{
	return set_uint(s, 0, UINT64_MAX, &s->c->rekey_bytes);
}

static int a_rekey_frames(struct setctx *s)
{
	return set_uint(s, 0, UINT64_MAX, &s->c->rekey_frames);
}

static int a_audit(struct setctx *s)
{
	if (parse_bool(s->val, &s->c->audit) < 0) {
		return why(s, "expected yes or no");
	}
	return 0;
}

static int a_audit_max_bytes(struct setctx *s)
{
	return set_uint(s, 4096, UINT64_C(1) << 40, &s->c->audit_max_bytes);
}

static int a_audit_files(struct setctx *s)
{
	return set_u32(s, 1, 100, &s->c->audit_files);
}

static int a_audit_evidence(struct setctx *s)
{
	if (parse_bool(s->val, &s->c->audit_evidence) < 0) {
		return why(s, "expected yes or no");
	}
	return 0;
}

static int a_audit_evidence_max_bytes(struct setctx *s)
{
	return set_uint(s, 0, UINT64_C(1) << 44, &s->c->audit_evidence_max_bytes);
}

static int a_standalone(struct setctx *s)
{
	if (parse_bool(s->val, &s->c->standalone) < 0) {
		return why(s, "expected yes or no");
	}
	return 0;
}

/* Limits on hostile peers and control clients (man/macc.conf.5). */
static int a_handshake_timeout(struct setctx *s)
{
	return set_u32(s, 100, 600000, &s->c->handshake_timeout_ms);
}

static int a_max_unauthenticated(struct setctx *s)
{
	return set_u32(s, 1, 65536, &s->c->max_unauthenticated);
}

static int a_ping_rate(struct setctx *s)
{
	return set_u32(s, 1, 100000, &s->c->ping_rate);
}

static int a_send_queue_max_bytes(struct setctx *s)
{
	uint64_t v;
	int r = set_uint(s, 0, UINT64_C(1) << 40, &v);

	if (r == 0 && v != 0 && v < 65536) {
		return why(s, "expected 0 (automatic) or at least 65536");
	}
	if (r == 0) {
		s->c->send_queue_max_bytes = v;
	}
	return r;
}

static int a_max_rate(struct setctx *s)
{
	return set_rate(s, &s->c->max_rate);
}

/* A congestion control algorithm's name as the kernel spells them (letters, digits, '_', '-');
 * whether this kernel has it is the daemon's start-up check (src/agentd/check.c). */
static int a_tcp_congestion(struct setctx *s)
{
	size_t n = strlen(s->val);

	if (n >= sizeof(s->c->tcp_congestion)) {
		return why(s, "too long (at most %zu characters)", sizeof(s->c->tcp_congestion) - 1);
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s->val[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
		      ch == '-')) {
			return why(s, "expected the name of a TCP congestion control algorithm "
				   "(lower-case letters, digits, '_', '-'), e.g. cubic");
		}
	}
	memcpy(s->c->tcp_congestion, s->val, n + 1);
	return 0;
}

static int a_control_max_clients(struct setctx *s)
{
	return set_u32(s, 2, 65536, &s->c->control_max_clients);
}

static int a_control_reserved_clients(struct setctx *s)
{
	return set_u32(s, 0, 65535, &s->c->control_reserved_clients);
}

static int a_control_idle_timeout(struct setctx *s)
{
	return set_u32(s, 100, 86400000, &s->c->control_idle_timeout_ms);
}

static const struct keydef agent_keys[] = {
	{ "name", a_name },
	{ "listen", a_listen },
	{ "key_file", a_key_file },
	{ "state_dir", a_state_dir },
	{ "control_socket", a_control_socket },
	{ "log_level", a_log_level },
	{ "encrypt", a_encrypt },
	{ "rekey_bytes", a_rekey_bytes },
	{ "rekey_frames", a_rekey_frames },
	{ "audit", a_audit },
	{ "audit_max_bytes", a_audit_max_bytes },
	{ "audit_files", a_audit_files },
	{ "audit_evidence", a_audit_evidence },
	{ "audit_evidence_max_bytes", a_audit_evidence_max_bytes },
	{ "standalone", a_standalone },
	{ "handshake_timeout_ms", a_handshake_timeout },
	{ "max_unauthenticated", a_max_unauthenticated },
	{ "ping_rate", a_ping_rate },
	{ "send_queue_max_bytes", a_send_queue_max_bytes },
	{ "max_rate", a_max_rate },
	{ "tcp_congestion", a_tcp_congestion },
	{ "control_max_clients", a_control_max_clients },
	{ "control_reserved_clients", a_control_reserved_clients },
	{ "control_idle_timeout_ms", a_control_idle_timeout },
};

/* --- [train] -------------------------------------------------------------------------------- */

static int t_model(struct setctx *s)
{
	return set_string(s, s->c->model, sizeof(s->c->model), false);
}

static int t_data(struct setctx *s)
{
	return set_string(s, s->c->data, sizeof(s->c->data), true);
}

static int t_shard(struct setctx *s)
{
	char a[32], b[32];
	const char *slash = strchr(s->val, '/');
	uint64_t idx, cnt;
	size_t la;

	if (slash == NULL) {
		return why(s, "expected INDEX/COUNT");
	}
	la = (size_t)(slash - s->val);
	if (la == 0 || la >= sizeof(a) || strlen(slash + 1) >= sizeof(b)) {
		return why(s, "expected INDEX/COUNT");
	}
	memcpy(a, s->val, la);
	a[la] = '\0';
	strcpy(b, slash + 1);
	if (parse_u64(a, 0, UINT32_MAX, &idx) < 0 || parse_u64(b, 1, 1u << 20, &cnt) < 0) {
		return why(s, "expected INDEX/COUNT with COUNT 1 to %u", 1u << 20);
	}
	if (idx >= cnt) {
		return why(s, "shard index %llu must be less than the count %llu",
			   (unsigned long long)idx, (unsigned long long)cnt);
	}
	s->c->has_shard = true;
	s->c->shard_index = (uint32_t)idx;
	s->c->shard_count = (uint32_t)cnt;
	return 0;
}

static int t_partition(struct setctx *s)
{
	const char *v = s->val;
	uint64_t k;
	double a;

	if (strcmp(v, "iid") == 0) {
		/* fine */
	} else if (strncmp(v, "label-shards:", 13) == 0) {
		if (parse_u64(v + 13, 1, 100000, &k) < 0) {
			return why(s, "label-shards:K needs an integer K >= 1");
		}
	} else if (strncmp(v, "dirichlet:", 10) == 0) {
		if (parse_double(v + 10, &a) < 0 || !(a > 0)) {
			return why(s, "dirichlet:ALPHA needs a number ALPHA > 0");
		}
	} else {
		return why(s, "expected iid, label-shards:K or dirichlet:ALPHA");
	}
	return set_string(s, s->c->partition, sizeof(s->c->partition), false);
}

static const struct {
	const char *name;
	enum macc_algo algo;
} algo_names[] = {
	{ "dmsgd", MACC_ALGO_DMSGD },
	{ "cdmsgd", MACC_ALGO_CDMSGD },
	{ "cdsgd", MACC_ALGO_CDSGD },
	{ "dsgd", MACC_ALGO_DSGD },
};

static int t_algorithm(struct setctx *s)
{
	for (size_t i = 0; i < sizeof(algo_names) / sizeof(algo_names[0]); i++) {
		if (strcmp(s->val, algo_names[i].name) == 0) {
			s->c->algorithm = algo_names[i].algo;
			s->c->sgp = false;
			return 0;
		}
	}
	if (strcmp(s->val, "sgp") == 0) {
		/* Stochastic gradient push: cdmsgd in push-sum form (consensus.h). */
		s->c->algorithm = MACC_ALGO_CDMSGD;
		s->c->sgp = true;
		return 0;
	}
	if (strcmp(s->val, "centralized") == 0) {
		return why(s, "centralized runs only in macc-sim");
	}
	return why(s, "expected dmsgd, cdmsgd, cdsgd, dsgd or sgp");
}

static int t_lr(struct setctx *s)
{
	return set_real(s, 0, true, 1000, false, &s->c->lr);
}

static int t_lr_schedule(struct setctx *s)
{
	const char *v = s->val;

	if (strcmp(v, "const") != 0 && strcmp(v, "cosine") != 0) {
		const char *rest, *colon;
		char every[32];
		uint64_t e;
		double g;

		if (strncmp(v, "step:", 5) != 0) {
			return why(s, "expected const, cosine or step:EVERY:GAMMA");
		}
		rest = v + 5;
		colon = strchr(rest, ':');
		if (colon == NULL || (size_t)(colon - rest) >= sizeof(every) || colon == rest) {
			return why(s, "expected step:EVERY:GAMMA");
		}
		memcpy(every, rest, (size_t)(colon - rest));
		every[colon - rest] = '\0';
		if (parse_u64(every, 1, 1000000, &e) < 0) {
			return why(s, "step:EVERY:GAMMA needs EVERY (epochs) >= 1");
		}
		if (parse_double(colon + 1, &g) < 0 || !(g > 0) || g > 1) {
			return why(s, "step:EVERY:GAMMA needs GAMMA in (0, 1]");
		}
	}
	return set_string(s, s->c->lr_schedule, sizeof(s->c->lr_schedule), false);
}

static int t_momentum(struct setctx *s)
{
	return set_real(s, 0, false, 1, true, &s->c->momentum);
}

static int t_omega(struct setctx *s)
{
	return set_real(s, 0, false, 1, false, &s->c->omega);
}

static int t_nesterov(struct setctx *s)
{
	if (parse_bool(s->val, &s->c->nesterov) < 0) {
		return why(s, "expected true or false");
	}
	return 0;
}

static int t_weight_decay(struct setctx *s)
{
	return set_real(s, 0, false, 1, false, &s->c->weight_decay);
}

static int t_batch(struct setctx *s)
{
	return set_u32(s, 1, 65536, &s->c->batch);
}

/* Bits of epochs / rounds in seen_train (their index in train_keys). */
#define TK_EPOCHS 11
#define TK_ROUNDS 12

static int t_epochs(struct setctx *s)
{
	if (s->p->seen_train & (UINT64_C(1) << TK_ROUNDS)) {
		return why(s, "epochs and rounds cannot both be set");
	}
	s->c->rounds = 0;
	return set_u32(s, 1, 1000000, &s->c->epochs);
}

static int t_rounds(struct setctx *s)
{
	uint64_t r = 0; /* written on success only; gcc -O3 cannot tell */
	int rc;

	if (s->p->seen_train & (UINT64_C(1) << TK_EPOCHS)) {
		return why(s, "epochs and rounds cannot both be set");
	}
	rc = set_uint(s, 1, UINT64_C(1) << 48, &r);
	if (rc == 0) {
		s->c->rounds = r;
		s->c->epochs = 0;
	}
	return rc;
}

static int t_seed(struct setctx *s)
{
	return set_uint(s, 0, UINT64_MAX, &s->c->seed);
}

static int t_threads(struct setctx *s)
{
	return set_u32(s, 0, 1024, &s->c->threads);
}

static int t_round_timeout(struct setctx *s)
{
	return set_u32(s, 1, 3600000, &s->c->round_timeout_ms);
}

static int t_dead_peer_timeout(struct setctx *s)
{
	return set_u32(s, 1, 86400000, &s->c->dead_peer_timeout_ms);
}

static int t_reconnect_grace(struct setctx *s)
{
	return set_u32(s, 0, 3600000, &s->c->reconnect_grace_ms);
}

static int t_checkpoint_every(struct setctx *s)
{
	return set_u32(s, 0, UINT32_MAX, &s->c->checkpoint_every);
}

static int t_eval_every(struct setctx *s)
{
	return set_u32(s, 0, UINT32_MAX, &s->c->eval_every);
}

static const char *const weights_names[] = { "metropolis", "uniform", "explicit" };

static int t_weights(struct setctx *s)
{
	for (int i = 0; i < 3; i++) {
		if (strcmp(s->val, weights_names[i]) == 0) {
			s->c->weights = (enum macc_config_weights)i;
			return 0;
		}
	}
	return why(s, "expected metropolis, uniform or explicit");
}

/* aggregation: the grammar of consensus.h's macc_agg_parse, checked here because this file
 * depends on nothing above src/common; the daemon parses the accepted text with macc_agg_parse
 * itself (one implementation of the rule). */
static int t_aggregation(struct setctx *s)
{
	const char *v = s->val;

	if (strcmp(v, "mean") == 0 || strcmp(v, "clip:auto") == 0) {
		return set_string(s, s->c->aggregation, sizeof(s->c->aggregation), false);
	}
	if (strncmp(v, "clip:", 5) == 0) {
		double tau;

		if (parse_double(v + 5, &tau) < 0 || !(tau > 0)) {
			return why(s, "clip:TAU needs a finite TAU > 0 (or clip:auto)");
		}
		return set_string(s, s->c->aggregation, sizeof(s->c->aggregation), false);
	}
	if (strncmp(v, "trimmed:", 8) == 0) {
		uint64_t b;

		if (parse_u64(v + 8, 1, 64, &b) < 0) {
			return why(s, "trimmed:B needs an integer B from 1 to 64");
		}
		s->c->trim_b = (uint32_t)b;
		return set_string(s, s->c->aggregation, sizeof(s->c->aggregation), false);
	}
	return why(s, "expected mean, clip:TAU, clip:auto or trimmed:B");
}

static int t_screen_factor(struct setctx *s)
{
	int r = set_real(s, 0, false, 1e6, false, &s->c->screen_factor);

	if (r == 0) {
		s->c->has_screen_factor = true;
	}
	return r;
}

/* --- [train] keys (time-varying schedules, push-sum, local steps, compression) --- */

static const char *const schedule_names[] = { "static", "matching", "exp-pairs" };

static int t_schedule(struct setctx *s)
{
	for (int i = 0; i < 3; i++) {
		if (strcmp(s->val, schedule_names[i]) == 0) {
			s->c->schedule = (enum macc_schedule_kind)i;
			return 0;
		}
	}
	return why(s, "expected static, matching or exp-pairs");
}

static int t_topology(struct setctx *s)
{
	if (s->val[0] == '\0') {
		return why(s, "expected a topology spec (ring, torus:RxC, file:PATH, ...)");
	}
	return set_string(s, s->c->topology, sizeof(s->c->topology), true);
}

static int t_local_steps(struct setctx *s)
{
	return set_u32(s, 1, 10000, &s->c->local_steps);
}

static int t_compress(struct setctx *s)
{
	const char *v = s->val;
	double f;

	if (strcmp(v, "none") != 0 && strcmp(v, "bf16") != 0 && strcmp(v, "int8") != 0) {
		if (strncmp(v, "topk:", 5) != 0) {
			return why(s, "expected none, bf16, int8 or topk:F");
		}
		if (parse_double(v + 5, &f) < 0 || !(f > 0) || f > 1) {
			return why(s, "topk:F needs a fraction F in (0, 1]");
		}
	}
	return set_string(s, s->c->compress, sizeof(s->c->compress), false);
}

static int t_gossip_step(struct setctx *s)
{
	return set_real(s, 0, true, 1, false, &s->c->gossip_step);
}

/* OpenBLAS 0.3.21's x86-64 kernel names that OPENBLAS_CORETYPE accepts; a local mirror of
 * src/nn/blas.c's table (this file depends on nothing above it). Case does not matter. */
static const char *const blas_kernel_names[] = {
	"auto", "Prescott", "Atom", "Core2", "Penryn", "Dunnington", "Nehalem", "Opteron",
	"Opteron_SSE3", "Barcelona", "Nano", "Bobcat", "Sandybridge", "Bulldozer", "Piledriver",
	"Steamroller", "Excavator", "Haswell", "Zen", "SkylakeX",
};

static int t_blas_kernel(struct setctx *s)
{
	for (size_t i = 0; i < sizeof(blas_kernel_names) / sizeof(blas_kernel_names[0]); i++) {
		if (strcasecmp(s->val, blas_kernel_names[i]) == 0) {
			snprintf(s->c->blas_kernel, sizeof(s->c->blas_kernel), "%s",
				 blas_kernel_names[i]);
			return 0;
		}
	}
	return why(s, "expected auto or an OpenBLAS kernel name (Prescott, Nehalem, Sandybridge, "
		   "Haswell, Zen, SkylakeX, ...)");
}

/* The round-jump rule and the received-value bound (macc/guard.h). */
static int t_rejoin_quorum(struct setctx *s)
{
	return set_u32(s, 0, MACC_CONFIG_MAX_PEERS, &s->c->rejoin_quorum);
}

static int t_rejoin_interval(struct setctx *s)
{
	return set_u32(s, 0, 86400000, &s->c->rejoin_interval_ms);
}

static int t_state_value_max(struct setctx *s)
{
	/* 0 = finiteness only; otherwise a magnitude a float can hold. */
	return set_real(s, 0, false, 3e38, false, &s->c->state_value_max);
}

/* --- [train] feature standardisation (macc/agree.h: the daemon runs the agreement) --------- */

static const char *const standardize_names[] = { "auto", "yes", "no" };

static int t_standardize(struct setctx *s)
{
	for (int i = 0; i < 3; i++) {
		if (strcmp(s->val, standardize_names[i]) == 0) {
			s->c->standardize = (enum macc_config_standardize)i;
			return 0;
		}
	}
	return why(s, "expected auto, yes or no");
}

static int t_standardize_rounds(struct setctx *s)
{
	return set_u32(s, 0, 10000, &s->c->standardize_rounds);
}

static int t_standardize_diameter(struct setctx *s)
{
	return set_u32(s, 1, 4096, &s->c->standardize_diameter);
}

static const struct keydef train_keys[] = {
	{ "model", t_model },                /* 0 */
	{ "data", t_data },                  /* 1 */
	{ "shard", t_shard },                /* 2 */
	{ "partition", t_partition },        /* 3 */
	{ "algorithm", t_algorithm },        /* 4 */
	{ "lr", t_lr },                      /* 5 */
	{ "lr_schedule", t_lr_schedule },    /* 6 */
	{ "momentum", t_momentum },          /* 7 */
	{ "omega", t_omega },                /* 8 */
	{ "nesterov", t_nesterov },          /* 9 */
	{ "weight_decay", t_weight_decay },  /* 10 */
	{ "epochs", t_epochs },              /* 11 = TK_EPOCHS */
	{ "rounds", t_rounds },              /* 12 = TK_ROUNDS */
	{ "batch", t_batch },
	{ "seed", t_seed },
	{ "threads", t_threads },
	{ "round_timeout_ms", t_round_timeout },
	{ "dead_peer_timeout_ms", t_dead_peer_timeout },
	{ "reconnect_grace_ms", t_reconnect_grace },
	{ "checkpoint_every", t_checkpoint_every },
	{ "eval_every", t_eval_every },
	{ "weights", t_weights },
	{ "aggregation", t_aggregation },
	{ "screen_factor", t_screen_factor },
	{ "schedule", t_schedule },
	{ "topology", t_topology },
	{ "local_steps", t_local_steps },
	{ "compress", t_compress },
	{ "gossip_step", t_gossip_step },
	{ "blas_kernel", t_blas_kernel },
	{ "rejoin_quorum", t_rejoin_quorum },
	{ "rejoin_interval_ms", t_rejoin_interval },
	{ "state_value_max", t_state_value_max },
	{ "standardize", t_standardize },
	{ "standardize_rounds", t_standardize_rounds },
	{ "standardize_diameter", t_standardize_diameter },
};

/* --- [peer] --------------------------------------------------------------------------------- */

static int p_name(struct setctx *s)
{
	return set_name(s, s->peer->name);
}

static int p_endpoint(struct setctx *s)
{
	return set_endpoint(s, &s->peer->endpoint);
}

static int p_public_key(struct setctx *s)
{
	struct macc_errmsg e;

	if (strlen(s->val) != MACC_KEY_B64_LEN) {
		return why(s, "a public key is %d characters of base64, this is %zu",
			   MACC_KEY_B64_LEN, strlen(s->val));
	}
	if (macc_pubkey_from_b64(&s->peer->public_key, s->val, &e) < 0) {
		return why(s, "not a base64 public key of 32 bytes");
	}
	strcpy(s->peer->public_key_b64, s->val);
	return 0;
}

static int p_weight(struct setctx *s)
{
	int r = set_real(s, 0, true, 1, false, &s->peer->weight);

	if (r == 0) {
		s->peer->has_weight = true;
	}
	return r;
}

static int p_max_rate(struct setctx *s)
{
	return set_rate(s, &s->peer->max_rate);
}

static const struct keydef peer_keys[] = {
	{ "name", p_name },
	{ "endpoint", p_endpoint },
	{ "public_key", p_public_key },
	{ "weight", p_weight },
	{ "max_rate", p_max_rate },
};

#define NKEYS(t) (sizeof(t) / sizeof((t)[0]))

/* --- parser --------------------------------------------------------------------------------- */

void macc_config_defaults(struct macc_config *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->file, "<config>");
	strcpy(c->listen.host, "0.0.0.0");
	c->listen.port = MACC_CONFIG_DEFAULT_PORT;
	strcpy(c->key_file, "/etc/macc/agent.key");
	strcpy(c->state_dir, "/var/lib/macc");
	strcpy(c->control_socket, MACC_CONFIG_DEFAULT_SOCKET);
	c->log_level = MACC_LOG_INFO;
	strcpy(c->model, "mlp:784-256-128-10");
	strcpy(c->data, "fashion-mnist");
	c->shard_count = 1;
	strcpy(c->partition, "iid");
	c->algorithm = MACC_ALGO_DMSGD;
	c->lr = 0.01;
	strcpy(c->lr_schedule, "const");
	c->momentum = 0.9;
	c->omega = 1.0;
	c->batch = 64;
	c->epochs = 1;
	c->seed = 1;
	c->threads = 1;
	c->round_timeout_ms = 5000;
	c->dead_peer_timeout_ms = 30000;
	c->reconnect_grace_ms = 500;
	c->checkpoint_every = 100;
	c->eval_every = 0;
	c->weights = MACC_CONFIG_WEIGHTS_METROPOLIS;
	c->schedule = MACC_SCHEDULE_STATIC;
	c->local_steps = 1;
	snprintf(c->compress, sizeof(c->compress), "none");
	snprintf(c->blas_kernel, sizeof(c->blas_kernel), "auto");
	c->standardize = MACC_CONFIG_STD_AUTO;
	c->standardize_rounds = 50;
	c->encrypt = true;
	c->rekey_bytes = (uint64_t)1 << 30;  /* MACC_SEAL_REKEY_BYTES_DEFAULT */
	c->rekey_frames = (uint64_t)1 << 20; /* MACC_SEAL_REKEY_FRAMES_DEFAULT */
	strcpy(c->aggregation, "mean");
	c->audit_max_bytes = (uint64_t)1 << 20;
	c->audit_files = 4;
	c->audit_evidence_max_bytes = (uint64_t)256 << 20;
	c->handshake_timeout_ms = 10000;
	c->max_unauthenticated = 32;
	c->ping_rate = 20;
	c->send_queue_max_bytes = 0;
	c->control_max_clients = 64;
	c->control_reserved_clients = 4;
	c->control_idle_timeout_ms = 30000;
	c->rejoin_quorum = 0;
	c->rejoin_interval_ms = 10000;
	c->state_value_max = 1e6; /* MACC_GUARD_VALUE_MAX_DEFAULT */
}

void macc_config_finish(struct macc_config *c)
{
	if (c == NULL) {
		return;
	}
	free(c->peers);
	memset(c, 0, sizeof(*c));
}

const char *macc_config_weights_name(enum macc_config_weights w)
{
	if ((unsigned)w < 3) {
		return weights_names[w];
	}
	return "?";
}

void macc_config_parser_init(struct macc_config_parser *p, struct macc_config *cfg,
			     const char *file)
{
	memset(p, 0, sizeof(*p));
	macc_config_defaults(cfg);
	p->cfg = cfg;
	snprintf(p->file, sizeof(p->file), "%s", file != NULL ? file : "<config>");
	snprintf(cfg->file, sizeof(cfg->file), "%s", p->file);
	p->section = SEC_NONE;
}

static int fail(struct macc_config_parser *p, struct macc_errmsg *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* "FILE:LINE: " + message. */
static int fail(struct macc_config_parser *p, struct macc_errmsg *err, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->failed = MACC_ECONFIG;
	if (p->line > 0) {
		return macc_errf(err, MACC_ECONFIG, "%s:%u: %s", p->file, p->line, msg);
	}
	return macc_errf(err, MACC_ECONFIG, "%s: %s", p->file, msg);
}

/* Copy a printable rendering of s (at most 60 chars) for error messages. */
static void quote(char *dst, size_t size, const char *s)
{
	size_t j = 0;

	for (size_t i = 0; s[i] != '\0' && j + 4 < size; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (i >= 60) {
			dst[j++] = '.';
			dst[j++] = '.';
			dst[j++] = '.';
			break;
		}
		dst[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	dst[j] = '\0';
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t') {
		s++;
	}
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t')) {
		*--e = '\0';
	}
	return s;
}

/* Cut an inline comment: '#' preceded by whitespace. */
static void cut_comment(char *s)
{
	for (char *q = s; *q != '\0'; q++) {
		if (*q == '#' && q > s && (q[-1] == ' ' || q[-1] == '\t')) {
			*q = '\0';
			return;
		}
	}
}

static int start_section(struct macc_config_parser *p, char *name, struct macc_errmsg *err)
{
	struct macc_config *c = p->cfg;
	char q[80];

	if (strcmp(name, "agent") == 0) {
		if (p->agent_line != 0) {
			return fail(p, err, "section [agent] repeated (first at line %u)",
				    p->agent_line);
		}
		p->agent_line = p->line;
		p->section = SEC_AGENT;
	} else if (strcmp(name, "train") == 0) {
		if (p->train_line != 0) {
			return fail(p, err, "section [train] repeated (first at line %u)",
				    p->train_line);
		}
		p->train_line = p->line;
		p->section = SEC_TRAIN;
	} else if (strcmp(name, "peer") == 0) {
		if (c->npeers >= MACC_CONFIG_MAX_PEERS) {
			return fail(p, err, "too many [peer] sections (at most %d)",
				    MACC_CONFIG_MAX_PEERS);
		}
		if (c->npeers == p->peers_cap) {
			size_t ncap = p->peers_cap ? p->peers_cap * 2 : 8;
			struct macc_config_peer *np = realloc(c->peers, ncap * sizeof(*np));

			if (np == NULL) {
				p->failed = -ENOMEM;
				return macc_errf(err, -ENOMEM, "%s:%u: out of memory", p->file,
						 p->line);
			}
			c->peers = np;
			p->peers_cap = ncap;
		}
		memset(&c->peers[c->npeers], 0, sizeof(c->peers[0]));
		c->peers[c->npeers].line = p->line;
		c->npeers++;
		p->seen_peer = 0;
		p->section = SEC_PEER;
	} else {
		quote(q, sizeof(q), name);
		return fail(p, err, "unknown section [%s] (expected agent, train or peer)", q);
	}
	return 0;
}

int macc_config_parser_line(struct macc_config_parser *p, const char *line,
			    struct macc_errmsg *err)
{
	char buf[MACC_CONFIG_LINE_MAX + 1];
	char reason[256];
	char qk[80], qv[80];
	size_t n;
	char *s, *eq, *key, *val;
	const struct keydef *table;
	size_t ntable;
	uint64_t *seen;
	struct setctx sc;

	if (p->failed != 0) {
		return p->failed;
	}
	p->line++;
	n = strlen(line);
	if (n > 0 && line[n - 1] == '\n') {
		n--;
	}
	if (n > 0 && line[n - 1] == '\r') {
		n--;
	}
	if (n > MACC_CONFIG_LINE_MAX) {
		return fail(p, err, "line too long (more than %d characters)",
			    MACC_CONFIG_LINE_MAX);
	}
	memcpy(buf, line, n);
	buf[n] = '\0';
	s = trim(buf);
	if (*s == '\0' || *s == '#' || *s == ';') {
		return 0;
	}
	if (*s == '[') {
		char *close;

		cut_comment(s);
		s = trim(s);
		close = strchr(s, ']');
		if (close == NULL || close[1] != '\0') {
			quote(qk, sizeof(qk), s);
			return fail(p, err, "bad section header '%s' (expected [name])", qk);
		}
		*close = '\0';
		return start_section(p, trim(s + 1), err);
	}
	eq = strchr(s, '=');
	if (eq == NULL) {
		quote(qk, sizeof(qk), s);
		return fail(p, err, "expected 'key = value', got '%s'", qk);
	}
	*eq = '\0';
	key = trim(s);
	val = eq + 1;
	cut_comment(val);
	val = trim(val);
	quote(qk, sizeof(qk), key);
	quote(qv, sizeof(qv), val);
	if (*key == '\0') {
		return fail(p, err, "missing key before '=' (value '%s')", qv);
	}
	switch (p->section) {
	case SEC_AGENT:
		table = agent_keys;
		ntable = NKEYS(agent_keys);
		seen = &p->seen_agent;
		break;
	case SEC_TRAIN:
		table = train_keys;
		ntable = NKEYS(train_keys);
		seen = &p->seen_train;
		break;
	case SEC_PEER:
		table = peer_keys;
		ntable = NKEYS(peer_keys);
		seen = &p->seen_peer;
		break;
	default:
		return fail(p, err, "key '%s' = '%s' outside a section ([agent], [train], [peer])",
			    qk, qv);
	}
	for (size_t i = 0; i < ntable; i++) {
		int r;

		if (strcmp(table[i].name, key) != 0) {
			continue;
		}
		if (*seen & (UINT64_C(1) << i)) {
			return fail(p, err, "key '%s' = '%s': duplicate key in this [%s] section",
				    qk, qv, section_names[p->section]);
		}
		if (*val == '\0') {
			return fail(p, err, "key '%s': empty value", qk);
		}
		memset(&sc, 0, sizeof(sc));
		sc.p = p;
		sc.c = p->cfg;
		sc.peer = p->section == SEC_PEER ? &p->cfg->peers[p->cfg->npeers - 1] : NULL;
		sc.val = val;
		sc.why = reason;
		sc.whylen = sizeof(reason);
		reason[0] = '\0';
		r = table[i].set(&sc);
		if (r < 0) {
			return fail(p, err, "key '%s' = '%s': %s", qk, qv, reason);
		}
		*seen |= UINT64_C(1) << i;
		if (p->section != SEC_PEER && i < MACC_CONFIG_KEYS_MAX) {
			p->cfg->key_lines[p->section == SEC_TRAIN][i] = p->line;
		}
		return 0;
	}
	return fail(p, err, "key '%s' = '%s': unknown key in [%s]", qk, qv,
		    section_names[p->section]);
}

static int at_line(struct macc_config_parser *p, unsigned line, struct macc_errmsg *err,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int at_line(struct macc_config_parser *p, unsigned line, struct macc_errmsg *err,
		   const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->line = line;
	return fail(p, err, "%s", msg);
}

/* The layout a topology needs. Which mixing options combine is not decided here: that is the
 * mixer's one table (macc_mixer_check_opts), which the daemon's start-up check (and
 * --check-config), reload and macc-sim call; this file stays a parser. */
static int validate_edge(struct macc_config_parser *p, struct macc_errmsg *err)
{
	struct macc_config *c = p->cfg;

	if (c->topology[0] != '\0' && (!c->has_shard || c->shard_count < 2)) {
		return at_line(p, p->train_line, err, "[train]: topology '%s' needs key 'shard' = "
			       "INDEX/COUNT with COUNT >= 2 (this agent's number and the number "
			       "of agents)", c->topology);
	}
	return 0;
}

static int validate(struct macc_config_parser *p, struct macc_errmsg *err)
{
	struct macc_config *c = p->cfg;
	double sum = 0;

	if (p->agent_line == 0) {
		return at_line(p, 0, err, "missing section [agent]");
	}
	if (c->name[0] == '\0') {
		return at_line(p, p->agent_line, err, "[agent]: missing key 'name'");
	}
	if (c->dead_peer_timeout_ms < c->round_timeout_ms) {
		return at_line(p, p->train_line, err,
			       "[train]: dead_peer_timeout_ms (%u) must be at least "
			       "round_timeout_ms (%u)",
			       c->dead_peer_timeout_ms, c->round_timeout_ms);
	}
	if (c->control_reserved_clients >= c->control_max_clients) {
		return at_line(p, p->agent_line, err,
			       "[agent]: control_reserved_clients (%u) must be less than "
			       "control_max_clients (%u)",
			       c->control_reserved_clients, c->control_max_clients);
	}
	if (validate_edge(p, err) < 0) {
		return p->failed;
	}
	for (size_t i = 0; i < c->npeers; i++) {
		const struct macc_config_peer *a = &c->peers[i];
		char ep[300];

		if (a->name[0] == '\0') {
			return at_line(p, a->line, err, "[peer]: missing key 'name'");
		}
		if (a->endpoint.port == 0) {
			return at_line(p, a->line, err, "[peer] '%s': missing key 'endpoint'",
				       a->name);
		}
		if (a->public_key_b64[0] == '\0') {
			return at_line(p, a->line, err, "[peer] '%s': missing key 'public_key'",
				       a->name);
		}
		if (strcmp(a->name, c->name) == 0) {
			return at_line(p, a->line, err,
				       "[peer] '%s': a peer cannot have the agent's own name",
				       a->name);
		}
		if (c->weights == MACC_CONFIG_WEIGHTS_EXPLICIT && !a->has_weight) {
			return at_line(p, a->line, err,
				       "[peer] '%s': missing key 'weight' (weights = explicit)",
				       a->name);
		}
		if (c->weights != MACC_CONFIG_WEIGHTS_EXPLICIT && a->has_weight) {
			return at_line(p, a->line, err,
				       "[peer] '%s': key 'weight' needs weights = explicit in "
				       "[train] (weights = %s)",
				       a->name, macc_config_weights_name(c->weights));
		}
		sum += a->weight;
		for (size_t j = 0; j < i; j++) {
			const struct macc_config_peer *b = &c->peers[j];

			if (strcmp(a->name, b->name) == 0) {
				return at_line(p, a->line, err,
					       "[peer] '%s': duplicate peer name "
					       "(first at line %u)",
					       a->name, b->line);
			}
			if (macc_pubkey_equal(&a->public_key, &b->public_key)) {
				return at_line(p, a->line, err,
					       "[peer] '%s': same public_key as peer '%s' "
					       "(line %u)",
					       a->name, b->name, b->line);
			}
			if (strcmp(a->endpoint.host, b->endpoint.host) == 0 &&
			    a->endpoint.port == b->endpoint.port) {
				return at_line(p, a->line, err,
					       "[peer] '%s': same endpoint %s as peer '%s' "
					       "(line %u)",
					       a->name, macc_endpoint_format(&a->endpoint, ep,
									     sizeof(ep)),
					       b->name, b->line);
			}
		}
	}
	if (c->trim_b > 0 && c->npeers < 2 * (size_t)c->trim_b + 1) {
		return at_line(p, p->train_line, err,
			       "[train] aggregation = %s needs at least %u peers (2B+1), this "
			       "agent has %zu", c->aggregation, 2 * c->trim_b + 1, c->npeers);
	}
	if (c->audit_evidence && !c->audit) {
		return at_line(p, p->agent_line, err,
			       "[agent] audit_evidence = yes needs audit = yes");
	}
	if (c->weights == MACC_CONFIG_WEIGHTS_EXPLICIT && sum > 1.0 + 1e-9) {
		return at_line(p, p->train_line, err,
			       "[train] weights = explicit: the peers' weights sum to %g, "
			       "more than 1 "
			       "(the agent's own weight is 1 - sum)",
			       sum);
	}
	return 0;
}

unsigned macc_config_key_line(const struct macc_config *c, const char *section, const char *key)
{
	bool train = strcmp(section, "train") == 0;
	const struct keydef *table = train ? train_keys : agent_keys;
	size_t n = train ? NKEYS(train_keys) : NKEYS(agent_keys);

	if (!train && strcmp(section, "agent") != 0) {
		return 0;
	}
	if (key == NULL) {
		return train ? c->train_line : c->agent_line;
	}
	for (size_t i = 0; i < n && i < MACC_CONFIG_KEYS_MAX; i++) {
		if (strcmp(table[i].name, key) == 0) {
			return c->key_lines[train][i];
		}
	}
	return 0;
}

int macc_config_parser_finish(struct macc_config_parser *p, struct macc_errmsg *err)
{
	int r = p->failed;

	if (r == 0) {
		r = validate(p, err);
	}
	if (r < 0) {
		macc_config_finish(p->cfg);
		return r;
	}
	p->cfg->agent_line = p->agent_line;
	p->cfg->train_line = p->train_line;
	/* Trim the peer array to size is not needed; the struct owns it either way. */
	return 0;
}

int macc_config_parse_string(const char *text, size_t len, const char *name,
			     struct macc_config *ret, struct macc_errmsg *err)
{
	struct macc_config_parser p;
	char line[MACC_CONFIG_LINE_MAX + 3];
	size_t pos = 0;
	int r = 0;

	macc_config_parser_init(&p, ret, name);
	while (pos < len && r == 0) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - text) : len;
		size_t ll = end - pos;

		if (memchr(text + pos, '\0', ll) != NULL) {
			p.line++;
			r = fail(&p, err, "NUL byte in line");
			break;
		}
		if (ll > MACC_CONFIG_LINE_MAX + 1) {
			ll = MACC_CONFIG_LINE_MAX + 1; /* still too long: reported by _line */
		}
		memcpy(line, text + pos, ll);
		line[ll] = '\0';
		r = macc_config_parser_line(&p, line, err);
		pos = end + 1;
	}
	return macc_config_parser_finish(&p, err);
}

int macc_config_load(const char *path, struct macc_config *ret, struct macc_errmsg *err)
{
	FILE *f;
	char *text = NULL;
	size_t len = 0, cap = 0;
	int r;

	f = fopen(path, "re");
	if (f == NULL) {
		r = -errno;
		memset(ret, 0, sizeof(*ret));
		return macc_errf(err, r, "%s: %s", path, strerror(-r));
	}
	for (;;) {
		size_t got;

		if (cap - len < 4096) {
			char *nt;

			if (cap > 64u * 1024 * 1024) {
				fclose(f);
				free(text);
				memset(ret, 0, sizeof(*ret));
				return macc_errf(err, MACC_ECONFIG, "%s: file larger than 64 MiB",
						 path);
			}
			cap = cap ? cap * 2 : 16384;
			nt = realloc(text, cap);
			if (nt == NULL) {
				fclose(f);
				free(text);
				memset(ret, 0, sizeof(*ret));
				return macc_errf(err, -ENOMEM, "%s: out of memory", path);
			}
			text = nt;
		}
		got = fread(text + len, 1, cap - len, f);
		len += got;
		if (got == 0) {
			break;
		}
	}
	if (ferror(f)) {
		r = -EIO;
		fclose(f);
		free(text);
		memset(ret, 0, sizeof(*ret));
		return macc_errf(err, r, "%s: read error", path);
	}
	fclose(f);
	r = macc_config_parse_string(text, len, path, ret, err);
	free(text);
	return r;
}

int macc_config_check_own_key(const struct macc_config *c, const struct macc_pubkey *own,
			      struct macc_errmsg *err)
{
	for (size_t i = 0; i < c->npeers; i++) {
		if (macc_pubkey_equal(&c->peers[i].public_key, own)) {
			return macc_errf(err, MACC_ECONFIG,
					 "%s:%u: [peer] '%s': public_key is the agent's own key",
					 c->file, c->peers[i].line, c->peers[i].name);
		}
	}
	return 0;
}

long macc_config_find_peer(const struct macc_config *c, const struct macc_pubkey *key)
{
	for (size_t i = 0; i < c->npeers; i++) {
		if (macc_pubkey_equal(&c->peers[i].public_key, key)) {
			return (long)i;
		}
	}
	return -1;
}

/* --- reload diff ---------------------------------------------------------------------------- */

static bool endpoint_eq(const struct macc_endpoint *a, const struct macc_endpoint *b)
{
	return strcmp(a->host, b->host) == 0 && a->port == b->port && a->v6 == b->v6;
}

static const char *restart_key(const struct macc_config *a, const struct macc_config *b)
{
#define DIFF_STR(f)                                                                              \
	if (strcmp(a->f, b->f) != 0) {                                                           \
		return #f;                                                                       \
	}
#define DIFF_VAL(f)                                                                              \
	if (a->f != b->f) {                                                                      \
		return #f;                                                                       \
	}
	DIFF_STR(name);
	if (!endpoint_eq(&a->listen, &b->listen)) {
		return "listen";
	}
	DIFF_STR(key_file);
	DIFF_STR(state_dir);
	DIFF_STR(control_socket);
	DIFF_VAL(encrypt);
	DIFF_VAL(rekey_bytes);
	DIFF_VAL(rekey_frames);
	DIFF_VAL(audit);
	DIFF_VAL(audit_max_bytes);
	DIFF_VAL(audit_files);
	DIFF_VAL(audit_evidence);
	DIFF_VAL(audit_evidence_max_bytes);
	DIFF_VAL(standalone);
	DIFF_VAL(control_max_clients);
	DIFF_VAL(control_reserved_clients);
	DIFF_VAL(control_idle_timeout_ms);
	DIFF_STR(model);
	DIFF_STR(data);
	if (a->has_shard != b->has_shard || a->shard_index != b->shard_index ||
	    a->shard_count != b->shard_count) {
		return "shard";
	}
	DIFF_STR(partition);
	DIFF_VAL(algorithm);
	DIFF_VAL(lr);
	DIFF_STR(lr_schedule);
	DIFF_VAL(momentum);
	DIFF_VAL(omega);
	DIFF_VAL(nesterov);
	DIFF_VAL(weight_decay);
	DIFF_VAL(batch);
	DIFF_VAL(epochs);
	DIFF_VAL(rounds);
	DIFF_VAL(seed);
	DIFF_VAL(threads);
	DIFF_VAL(sgp);
	DIFF_VAL(schedule);
	DIFF_STR(topology);
	DIFF_VAL(local_steps);
	DIFF_STR(compress);
	DIFF_VAL(gossip_step);
	DIFF_STR(blas_kernel);
	DIFF_VAL(standardize);
	DIFF_VAL(standardize_rounds);
	DIFF_VAL(standardize_diameter);
#undef DIFF_STR
#undef DIFF_VAL
	return NULL;
}

int macc_config_diff(const struct macc_config *old, const struct macc_config *new_cfg,
		     struct macc_config_diff *ret)
{
	struct macc_config_diff d;
	const char *rk;
	size_t cap = old->npeers + new_cfg->npeers;

	memset(&d, 0, sizeof(d));
	if (cap > 0) {
		d.changes = calloc(cap, sizeof(*d.changes));
		if (d.changes == NULL) {
			return -ENOMEM;
		}
	}
	rk = restart_key(old, new_cfg);
	if (rk != NULL) {
		snprintf(d.restart_key, sizeof(d.restart_key), "%s", rk);
	}
	d.weights_changed = old->weights != new_cfg->weights;
	d.log_level_changed = old->log_level != new_cfg->log_level;
	d.timeouts_changed = old->round_timeout_ms != new_cfg->round_timeout_ms ||
			     old->dead_peer_timeout_ms != new_cfg->dead_peer_timeout_ms ||
			     old->reconnect_grace_ms != new_cfg->reconnect_grace_ms ||
			     old->checkpoint_every != new_cfg->checkpoint_every ||
			     old->eval_every != new_cfg->eval_every;
	for (size_t i = 0; i < old->npeers; i++) {
		long j = macc_config_find_peer(new_cfg, &old->peers[i].public_key);
		struct macc_peer_change ch = { 0, (long)i, j };

		if (j < 0) {
			ch.kind = MACC_PEER_REMOVED;
		} else {
			const struct macc_config_peer *a = &old->peers[i], *b = &new_cfg->peers[j];

			if (a->has_weight != b->has_weight || a->weight != b->weight) {
				ch.kind |= MACC_PEER_REWEIGHTED;
			}
			if (strcmp(a->name, b->name) != 0 ||
			    !endpoint_eq(&a->endpoint, &b->endpoint)) {
				ch.kind |= MACC_PEER_CHANGED;
			}
		}
		if (ch.kind != 0) {
			d.changes[d.nchanges++] = ch;
		}
	}
	for (size_t j = 0; j < new_cfg->npeers; j++) {
		if (macc_config_find_peer(old, &new_cfg->peers[j].public_key) < 0) {
			struct macc_peer_change ch = { MACC_PEER_ADDED, -1, (long)j };

			d.changes[d.nchanges++] = ch;
		}
	}
	*ret = d;
	return 0;
}

void macc_config_diff_finish(struct macc_config_diff *d)
{
	if (d == NULL) {
		return;
	}
	free(d->changes);
	memset(d, 0, sizeof(*d));
}
