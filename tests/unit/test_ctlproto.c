/*
 * test_ctlproto.c - the control protocol codec: round trips of every request and reply payload,
 * the decoder's check order (malformed, version, command, arguments), framing limits, hostile
 * msgpack (huge declared counts, deep nesting, trailing bytes), and the Prometheus formatter.
 * Raw msgpack is written by hand here (tests do not link msgpack).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macc/buf.h"
#include "macc/ctl.h"

/* Tiny msgpack writer for hand-made inputs. */
struct mp {
	uint8_t b[1024];
	size_t n;
};

static void mp_byte(struct mp *m, uint8_t x)
{
	m->b[m->n++] = x;
}

static void mp_str(struct mp *m, const char *s)
{
	size_t l = strlen(s);

	assert_true(l < 32);
	mp_byte(m, (uint8_t)(0xa0 | l));
	memcpy(m->b + m->n, s, l);
	m->n += l;
}

static void mp_map(struct mp *m, unsigned n)
{
	mp_byte(m, (uint8_t)(0x80 | n));
}

static void mp_uint(struct mp *m, unsigned v)
{
	assert_true(v < 128);
	mp_byte(m, (uint8_t)v);
}

/* Encode a request and return its body (after the 4-byte header). */
static void encode_req(const struct macc_ctl_request *r, struct macc_buf *b)
{
	size_t len;

	macc_buf_init(b, 0);
	assert_int_equal(macc_ctl_request_encode(r, b), 0);
	assert_int_equal(macc_ctl_frame_next(b->data, b->len, MACC_CTL_MAX_REQUEST, &len), 1);
	assert_int_equal(len + 4, b->len);
}

static void test_request_roundtrip(void **state)
{
	(void)state;
	static const float rows[3] = { 1.0f, -2.5f, 3e8f };

	for (int c = 0; c < MACC_CTL_CMD_COUNT; c++) {
		struct macc_ctl_request r = { .v = MACC_CTL_PROTO_VERSION, .id = 1000 + (uint64_t)c,
					      .cmd = (enum macc_ctl_cmd)c,
					      .level = MACC_LOG_DEBUG, .offset = 7, .count = 9,
					      .generation = 11, .inputs = (const uint8_t *)rows,
					      .inputs_len = sizeof(rows) };
		struct macc_ctl_request d;
		struct macc_errmsg e;
		struct macc_buf b;

		memset(&d, 0, sizeof(d));
		encode_req(&r, &b);
		assert_int_equal(macc_ctl_request_decode(b.data + 4, b.len - 4, &d, &e), 0);
		assert_int_equal(d.v, 1);
		assert_int_equal(d.id, 1000 + (uint64_t)c);
		assert_int_equal(d.cmd, c);
		if (c == MACC_CTL_CMD_LOG_LEVEL) {
			assert_int_equal(d.level, MACC_LOG_DEBUG);
		}
		if (c == MACC_CTL_CMD_MODEL) {
			assert_int_equal(d.offset, 7);
			assert_int_equal(d.count, 9);
			assert_int_equal(d.generation, 11);
		}
		if (c == MACC_CTL_CMD_PREDICT) {
			assert_int_equal(d.inputs_len, sizeof(rows));
			assert_memory_equal(d.inputs, rows, sizeof(rows));
		}
		/* Every strict prefix of the body fails cleanly. */
		for (size_t k = 0; k < b.len - 4; k++) {
			assert_int_equal(macc_ctl_request_decode(b.data + 4, k, &d, &e),
					 MACC_EMALFORMED);
		}
		macc_buf_finish(&b);
	}
	/* An encoder refuses an out-of-range command. */
	struct macc_ctl_request bad = { .v = 1, .id = 1, .cmd = MACC_CTL_CMD_COUNT };
	struct macc_buf b;

	macc_buf_init(&b, 0);
	assert_int_equal(macc_ctl_request_encode(&bad, &b), MACC_EUNKNOWNCMD);
	assert_int_equal(b.len, 0);
	macc_buf_finish(&b);
}

static void test_request_check_order(void **state)
{
	struct macc_ctl_request d;
	struct macc_errmsg e;
	struct mp m;

	(void)state;
	/* Not a map. */
	memset(&m, 0, sizeof(m));
	mp_uint(&m, 5);
	assert_int_equal(macc_ctl_request_decode(m.b, m.n, &d, &e), MACC_EMALFORMED);
	assert_non_null(strstr(e.text, "not a msgpack map"));

	/* Version 2 with an unknown command: version is reported first, id echoed. */
	memset(&m, 0, sizeof(m));
	memset(&d, 0, sizeof(d));
	mp_map(&m, 3);
	mp_str(&m, "v");
	mp_uint(&m, 2);
	mp_str(&m, "id");
	mp_uint(&m, 77);
	mp_str(&m, "cmd");
	mp_str(&m, "frobnicate");
	assert_int_equal(macc_ctl_request_decode(m.b, m.n, &d, &e), MACC_EVERSION);
	assert_int_equal(d.id, 77);
	assert_int_equal(d.v, 2);
	assert_non_null(strstr(e.text, "version 2"));

	/* Version 1, unknown command. */
	m.b[3] = 1; /* the value of "v" */
	assert_int_equal(macc_ctl_request_decode(m.b, m.n, &d, &e), MACC_EUNKNOWNCMD);
	assert_non_null(strstr(e.text, "unknown command 'frobnicate'"));

	/* Missing v. */
	memset(&m, 0, sizeof(m));
	mp_map(&m, 2);
	mp_str(&m, "id");
	mp_uint(&m, 1);
	mp_str(&m, "cmd");
	mp_str(&m, "status");
	assert_int_equal(macc_ctl_request_decode(m.b, m.n, &d, &e), MACC_EMALFORMED);
	assert_non_null(strstr(e.text, "'v'"));

	/* v as a string. */
	memset(&m, 0, sizeof(m));
	mp_map(&m, 3);
	mp_str(&m, "v");
	mp_str(&m, "1");
	mp_str(&m, "id");
	mp_uint(&m, 1);
	mp_str(&m, "cmd");
	mp_str(&m, "status");
	assert_int_equal(macc_ctl_request_decode(m.b, m.n, &d, &e), MACC_EMALFORMED);

	/* Missing id. */
	memset(&m, 0, sizeof(m));
	mp_map(&m, 2);
	mp_str(&m, "v");
	mp_uint(&m, 1);
	mp_str(&m, "cmd");
	mp_str(&m, "status");
	assert_int_equal(macc_ctl_request_decode(m.b, m.n, &d, &e), MACC_EMALFORMED);
	assert_non_null(strstr(e.text, "'id'"));

	/* cmd not a string. */
	memset(&m, 0, sizeof(m));
	mp_map(&m, 3);
	mp_str(&m, "v");
	mp_uint(&m, 1);
	mp_str(&m, "id");
	mp_uint(&m, 1);
	mp_str(&m, "cmd");
	mp_uint(&m, 3);
	assert_int_equal(macc_ctl_request_decode(m.b, m.n, &d, &e), MACC_EMALFORMED);
	assert_non_null(strstr(e.text, "'cmd'"));

	/* No args at all is fine for status; extra top-level keys are ignored. */
	memset(&m, 0, sizeof(m));
	mp_map(&m, 4);
	mp_str(&m, "v");
	mp_uint(&m, 1);
	mp_str(&m, "id");
	mp_uint(&m, 9);
	mp_str(&m, "cmd");
	mp_str(&m, "status");
	mp_str(&m, "future");
	mp_uint(&m, 1);
	assert_int_equal(macc_ctl_request_decode(m.b, m.n, &d, &e), 0);
	assert_int_equal(d.cmd, MACC_CTL_CMD_STATUS);

	/* Args of the wrong type / unexpected args / bad level. */
	static const struct {
		const char *cmd;
		int kind; /* 0 args=5, 1 args={x:1}, 2 level=7, 3 level="loud", 4 no level,
			     5 level + extra */
		const char *expect;
	} cases[] = {
		{ "status", 0, "'args' is not a map" },
		{ "pause", 1, "pause takes no arguments" },
		{ "log-level", 2, "'level' must be" },
		{ "log-level", 3, "'level' must be" },
		{ "log-level", 4, "missing argument 'level'" },
		{ "log-level", 5, "unknown argument" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&m, 0, sizeof(m));
		mp_map(&m, 4);
		mp_str(&m, "v");
		mp_uint(&m, 1);
		mp_str(&m, "id");
		mp_uint(&m, 1);
		mp_str(&m, "cmd");
		mp_str(&m, cases[i].cmd);
		mp_str(&m, "args");
		switch (cases[i].kind) {
		case 0:
			mp_uint(&m, 5);
			break;
		case 1:
			mp_map(&m, 1);
			mp_str(&m, "x");
			mp_uint(&m, 1);
			break;
		case 2:
			mp_map(&m, 1);
			mp_str(&m, "level");
			mp_uint(&m, 7);
			break;
		case 3:
			mp_map(&m, 1);
			mp_str(&m, "level");
			mp_str(&m, "loud");
			break;
		case 4:
			mp_map(&m, 0);
			break;
		case 5:
			mp_map(&m, 2);
			mp_str(&m, "level");
			mp_str(&m, "warn");
			mp_str(&m, "x");
			mp_uint(&m, 1);
			break;
		}
		e.text[0] = '\0';
		assert_int_equal(macc_ctl_request_decode(m.b, m.n, &d, &e), MACC_ESPEC);
		if (strstr(e.text, cases[i].expect) == NULL) {
			fail_msg("case %zu: '%s' lacks '%s'", i, e.text, cases[i].expect);
		}
	}
}

static void test_hostile_msgpack(void **state)
{
	struct macc_ctl_request d;
	struct macc_errmsg e;
	uint8_t b[64];

	(void)state;
	/* map32 claiming 4 billion pairs: refused without allocating. */
	b[0] = 0xdf;
	b[1] = b[2] = b[3] = b[4] = 0xff;
	assert_int_equal(macc_ctl_request_decode(b, 5, &d, &e), MACC_EMALFORMED);
	/* array32 / str32 / bin32 / ext32 with huge lengths inside a map value. */
	static const uint8_t heads[] = { 0xdd, 0xdb, 0xc6, 0xc9 };
	for (size_t i = 0; i < sizeof(heads); i++) {
		b[0] = 0x81;
		b[1] = 0xa1;
		b[2] = 'v';
		b[3] = heads[i];
		b[4] = b[5] = b[6] = b[7] = 0xff;
		assert_int_equal(macc_ctl_request_decode(b, 8, &d, &e), MACC_EMALFORMED);
	}
	/* 40 nested arrays. */
	memset(b, 0x91, 40);
	b[40] = 0x01;
	assert_int_equal(macc_ctl_request_decode(b, 41, &d, &e), MACC_EMALFORMED);
	/* Reserved byte 0xc1. */
	b[0] = 0xc1;
	assert_int_equal(macc_ctl_request_decode(b, 1, &d, &e), MACC_EMALFORMED);
	/* Trailing bytes after a valid map. */
	b[0] = 0x80;
	b[1] = 0x80;
	assert_int_equal(macc_ctl_request_decode(b, 2, &d, &e), MACC_EMALFORMED);
	/* Empty body. */
	assert_int_equal(macc_ctl_request_decode(b, 0, &d, &e), MACC_EMALFORMED);
}

static void test_frame_next(void **state)
{
	uint8_t b[16] = { 0, 0, 0, 3, 'a', 'b', 'c', 'x' };
	size_t len = 0;

	(void)state;
	assert_int_equal(macc_ctl_frame_next(b, 0, 100, &len), 0);
	assert_int_equal(macc_ctl_frame_next(b, 3, 100, &len), 0);
	assert_int_equal(macc_ctl_frame_next(b, 6, 100, &len), 0);
	assert_int_equal(macc_ctl_frame_next(b, 7, 100, &len), 1);
	assert_int_equal(len, 3);
	assert_int_equal(macc_ctl_frame_next(b, 8, 100, &len), 1);
	assert_int_equal(macc_ctl_frame_next(b, 4, 2, &len), MACC_ETOOBIG);
	b[0] = 0xff;
	assert_int_equal(macc_ctl_frame_next(b, 4, MACC_CTL_MAX_REQUEST, &len), MACC_ETOOBIG);
	memset(b, 0, 4);
	assert_int_equal(macc_ctl_frame_next(b, 4, 100, &len), MACC_EMALFORMED);
}

static void roundtrip_reply(const struct macc_ctl_reply *r, enum macc_ctl_cmd cmd,
			    struct macc_ctl_reply *d)
{
	struct macc_buf b;
	struct macc_errmsg e;
	size_t len;

	macc_buf_init(&b, 0);
	assert_int_equal(macc_ctl_reply_encode(r, &b), 0);
	assert_int_equal(macc_ctl_frame_next(b.data, b.len, MACC_CTL_MAX_REPLY, &len), 1);
	assert_int_equal(len + 4, b.len);
	e.text[0] = '\0';
	if (macc_ctl_reply_decode(b.data + 4, len, cmd, d, &e) != 0) {
		fail_msg("reply decode: %s", e.text);
	}
	/* Truncations never decode. */
	for (size_t k = 0; k < len; k += 1 + k / 8) {
		struct macc_ctl_reply t;

		assert_int_not_equal(macc_ctl_reply_decode(b.data + 4, k, cmd, &t, &e), 0);
	}
	macc_buf_finish(&b);
}

static void test_reply_status(void **state)
{
	struct macc_ctl_reply r, d;

	(void)state;
	macc_ctl_reply_init(&r);
	r.id = UINT64_MAX;
	r.kind = MACC_CTL_DATA_STATUS;
	r.st.state = MACC_CTL_STATE_PAUSED;
	strcpy(r.st.name, "alpha");
	strcpy(r.st.model, "mlp:784-256-128-10");
	strcpy(r.st.algorithm, "dmsgd");
	strcpy(r.st.version, "0.1.0");
	r.st.round = 123456789012ULL;
	r.st.rounds_planned = 1 << 20;
	r.st.epoch = 1.75;
	r.st.epochs_planned = 2;
	r.st.train_loss = 0.3125;
	/* test_loss stays NaN */
	r.st.test_accuracy_ratio = 0.8431;
	r.st.samples_per_second = 41234.5;
	r.st.round_seconds = 0.0123;
	r.st.consensus_distance = 1e-7;
	r.st.peers_up = 2;
	r.st.peers_configured = 3;
	r.st.uptime_seconds = 99;
	strcpy(r.st.digest, "abcdef0123");
	strcpy(r.st.last_error, "peer \"c\" said \\ goodbye\n");
	roundtrip_reply(&r, MACC_CTL_CMD_STATUS, &d);
	assert_int_equal(d.v, 1);
	assert_true(d.id == UINT64_MAX);
	assert_int_equal(d.status, 0);
	assert_string_equal(d.error, "");
	assert_int_equal(d.kind, MACC_CTL_DATA_STATUS);
	assert_int_equal(d.st.state, MACC_CTL_STATE_PAUSED);
	assert_string_equal(d.st.name, "alpha");
	assert_string_equal(d.st.model, r.st.model);
	assert_string_equal(d.st.algorithm, "dmsgd");
	assert_string_equal(d.st.version, "0.1.0");
	assert_true(d.st.round == r.st.round);
	assert_true(d.st.rounds_planned == r.st.rounds_planned);
	assert_true(d.st.epoch == 1.75);
	assert_true(d.st.epochs_planned == 2);
	assert_true(d.st.train_loss == 0.3125);
	assert_true(isnan(d.st.test_loss));
	assert_true(d.st.test_accuracy_ratio == 0.8431);
	assert_true(d.st.samples_per_second == 41234.5);
	assert_true(d.st.round_seconds == 0.0123);
	assert_true(d.st.consensus_distance == 1e-7);
	assert_int_equal(d.st.peers_up, 2);
	assert_int_equal(d.st.peers_configured, 3);
	assert_int_equal(d.st.uptime_seconds, 99);
	assert_string_equal(d.st.digest, "abcdef0123");
	assert_string_equal(d.st.last_error, r.st.last_error);
	macc_ctl_reply_finish(&d);
}

static void test_reply_error(void **state)
{
	struct macc_ctl_reply r, d;

	(void)state;
	macc_ctl_reply_init(&r);
	r.id = 5;
	r.status = MACC_CTL_EPERM;
	strcpy(r.error, "pause needs root, the daemon's user or group macc");
	roundtrip_reply(&r, MACC_CTL_CMD_PAUSE, &d);
	assert_int_equal(d.status, MACC_CTL_EPERM);
	assert_string_equal(d.error, r.error);
	assert_int_equal(d.kind, MACC_CTL_DATA_NONE);
	assert_int_equal(d.id, 5);
	/* An error reply to a data command carries no data. */
	r.status = MACC_CTL_ESTATE;
	roundtrip_reply(&r, MACC_CTL_CMD_STATUS, &d);
	assert_int_equal(d.kind, MACC_CTL_DATA_NONE);
	assert_int_equal(d.status, MACC_CTL_ESTATE);
	/* Version replies decode as EVERSION on the client side too. */
	r.v = 9;
	struct macc_buf b;
	struct macc_errmsg e;

	macc_buf_init(&b, 0);
	assert_int_equal(macc_ctl_reply_encode(&r, &b), 0);
	assert_int_equal(macc_ctl_reply_decode(b.data + 4, b.len - 4, MACC_CTL_CMD_PAUSE, &d, &e),
			 MACC_EVERSION);
	macc_buf_finish(&b);
}

static void test_reply_peers(void **state)
{
	struct macc_ctl_reply r, d;
	struct macc_ctl_peer p[3];

	(void)state;
	memset(p, 0, sizeof(p));
	for (int i = 0; i < 3; i++) {
		snprintf(p[i].name, sizeof(p[i].name), "peer-%d", i);
		snprintf(p[i].endpoint, sizeof(p[i].endpoint), "[::1]:%d", 7000 + i);
		strcpy(p[i].key, "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=");
		p[i].session = (enum macc_ctl_session)i;
		p[i].last_round = i - 1;
		p[i].rtt_seconds = i == 0 ? NAN : 0.00025 * i;
		p[i].weight = 1.0 / 3;
		p[i].bytes_received_total = 1ULL << (40 + i);
		p[i].bytes_sent_total = 17;
		p[i].sealed = i != 1;
		p[i].states_excluded_nonfinite_total = 3 + (uint64_t)i;
		p[i].states_excluded_distance_total = 1ULL << (33 + i);
		p[i].states_excluded_quarantined_total = 5;
		p[i].states_clipped_total = 100 + (uint64_t)i;
		p[i].quarantine_active = i == 2;
		p[i].quarantine_until = i == 2 ? 77 : 0;
		p[i].quarantines_total = (uint64_t)i;
	}
	macc_ctl_peer_add_reject(&p[1], MACC_EBADSIG, 3);
	macc_ctl_peer_add_reject(&p[1], MACC_EREPLAY, 1);
	macc_ctl_peer_add_reject(&p[1], MACC_EBADSIG, 2);
	assert_int_equal(p[1].nrejected, 2);
	assert_int_equal(p[1].rejected[0].count, 5);
	for (int k = 0; k < MACC_CTL_MAX_REASONS + 5; k++) {
		macc_ctl_peer_add_reject(&p[2], -1000 - k, 1);
	}
	/* 19 named codes plus whatever name the rest get, never more than the cap. */
	assert_true(p[2].nrejected >= 19 && p[2].nrejected <= MACC_CTL_MAX_REASONS);

	macc_ctl_reply_init(&r);
	r.kind = MACC_CTL_DATA_PEERS;
	r.peers = p;
	r.npeers = 3;
	roundtrip_reply(&r, MACC_CTL_CMD_PEERS, &d);
	assert_int_equal(d.npeers, 3);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(d.peers[i].name, p[i].name);
		assert_string_equal(d.peers[i].endpoint, p[i].endpoint);
		assert_string_equal(d.peers[i].key, p[i].key);
		assert_int_equal(d.peers[i].session, p[i].session);
		assert_int_equal(d.peers[i].last_round, i - 1);
		if (i == 0) {
			assert_true(isnan(d.peers[i].rtt_seconds));
		} else {
			assert_true(d.peers[i].rtt_seconds == p[i].rtt_seconds);
		}
		assert_true(d.peers[i].weight == p[i].weight);
		assert_true(d.peers[i].bytes_received_total == p[i].bytes_received_total);
		assert_int_equal(d.peers[i].bytes_sent_total, 17);
		assert_int_equal(d.peers[i].sealed, p[i].sealed);
		assert_int_equal(d.peers[i].states_excluded_nonfinite_total, p[i].states_excluded_nonfinite_total);
		assert_true(d.peers[i].states_excluded_distance_total == p[i].states_excluded_distance_total);
		assert_int_equal(d.peers[i].states_excluded_quarantined_total, 5);
		assert_int_equal(d.peers[i].states_clipped_total, p[i].states_clipped_total);
		assert_int_equal(d.peers[i].quarantine_active, p[i].quarantine_active);
		assert_int_equal(d.peers[i].quarantine_until, p[i].quarantine_until);
		assert_int_equal(d.peers[i].quarantines_total, p[i].quarantines_total);
		assert_int_equal(d.peers[i].nrejected, p[i].nrejected);
		for (size_t k = 0; k < p[i].nrejected; k++) {
			assert_string_equal(d.peers[i].rejected[k].reason, p[i].rejected[k].reason);
			assert_int_equal(d.peers[i].rejected[k].count, p[i].rejected[k].count);
		}
	}
	assert_string_equal(d.peers[1].rejected[0].reason, macc_errname(MACC_EBADSIG));
	macc_ctl_reply_finish(&d);
	assert_null(d.peers);
	macc_ctl_reply_finish(&d);

	/* No peers. */
	r.peers = NULL;
	r.npeers = 0;
	roundtrip_reply(&r, MACC_CTL_CMD_PEERS, &d);
	assert_int_equal(d.npeers, 0);
	macc_ctl_reply_finish(&d);
}

/* audit: the limit argument (default, bounds, strictness) and the reply's entries. */
static void test_audit(void **state)
{
	struct macc_ctl_request r = { .v = MACC_CTL_PROTO_VERSION, .id = 9,
				      .cmd = MACC_CTL_CMD_AUDIT };
	struct macc_ctl_request d;
	struct macc_ctl_reply rep, back;
	struct macc_ctl_audit_entry ent[3];
	struct macc_errmsg e;
	struct macc_buf b;
	struct mp m;

	(void)state;
	/* no argument: limit 0 (the daemon's default) */
	memset(&d, 0, sizeof(d));
	encode_req(&r, &b);
	assert_int_equal(macc_ctl_request_decode(b.data + 4, b.len - 4, &d, &e), 0);
	assert_int_equal(d.cmd, MACC_CTL_CMD_AUDIT);
	assert_int_equal(d.limit, 0);
	macc_buf_finish(&b);
	r.limit = 7;
	encode_req(&r, &b);
	assert_int_equal(macc_ctl_request_decode(b.data + 4, b.len - 4, &d, &e), 0);
	assert_int_equal(d.limit, 7);
	for (size_t k = 0; k < b.len - 4; k++) {
		assert_int_equal(macc_ctl_request_decode(b.data + 4, k, &d, &e), MACC_EMALFORMED);
	}
	macc_buf_finish(&b);
	/* out of range, mistyped, unknown argument */
	for (int t = 0; t < 4; t++) {
		memset(&m, 0, sizeof(m));
		mp_map(&m, 4);
		mp_str(&m, "v");
		mp_uint(&m, 1);
		mp_str(&m, "id");
		mp_uint(&m, 3);
		mp_str(&m, "cmd");
		mp_str(&m, "audit");
		mp_str(&m, "args");
		mp_map(&m, 1);
		mp_str(&m, t == 3 ? "limits" : "limit");
		if (t == 0) {
			mp_uint(&m, 0);
		} else if (t == 1) {
			mp_byte(&m, 0xcd); /* uint 16: MACC_CTL_AUDIT_MAX + 1 */
			mp_byte(&m, (MACC_CTL_AUDIT_MAX + 1) >> 8);
			mp_byte(&m, (MACC_CTL_AUDIT_MAX + 1) & 0xff);
		} else {
			mp_str(&m, "5");
		}
		assert_int_equal(macc_ctl_request_decode(m.b, m.n, &d, &e), MACC_ESPEC);
		assert_non_null(strstr(e.text, "audit"));
	}
	/* the reply */
	memset(ent, 0, sizeof(ent));
	for (int i = 0; i < 3; i++) {
		ent[i].seq = 10 + (uint64_t)i;
		ent[i].time_seconds = 1700000000.0 + 0.001 * i;
		ent[i].round = 40 + (uint64_t)i;
		snprintf(ent[i].reason, sizeof(ent[i].reason), i ? "distance" : "nonfinite");
		snprintf(ent[i].peer, sizeof(ent[i].peer), "mallory");
		strcpy(ent[i].key, "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=");
		memset(ent[i].digest, 'a' + i, 64);
		ent[i].body_bytes = 1900000;
		if (i == 1) {
			snprintf(ent[i].evidence, sizeof(ent[i].evidence), "00000000000000000011.body");
		}
	}
	macc_ctl_reply_init(&rep);
	rep.kind = MACC_CTL_DATA_AUDIT;
	rep.audit.enabled = true;
	snprintf(rep.audit.file, sizeof(rep.audit.file), "/var/lib/macc/audit.log");
	rep.audit.entries_kept = 123;
	rep.audit.entries_total = 3;
	rep.audit.errors_total = 1;
	rep.audit.entries = ent;
	rep.audit.nentries = 3;
	roundtrip_reply(&rep, MACC_CTL_CMD_AUDIT, &back);
	assert_true(back.audit.enabled);
	assert_string_equal(back.audit.file, "/var/lib/macc/audit.log");
	assert_int_equal(back.audit.entries_kept, 123);
	assert_int_equal(back.audit.entries_total, 3);
	assert_int_equal(back.audit.errors_total, 1);
	assert_int_equal(back.audit.nentries, 3);
	assert_memory_equal(back.audit.entries, ent, sizeof(ent));
	macc_ctl_reply_finish(&back);
	assert_null(back.audit.entries);
	rep.audit.entries = NULL;
	rep.audit.nentries = 0;
	rep.audit.enabled = false;
	roundtrip_reply(&rep, MACC_CTL_CMD_AUDIT, &back);
	assert_false(back.audit.enabled);
	assert_int_equal(back.audit.nentries, 0);
	macc_ctl_reply_finish(&back);
	/* a reply whose entries are not an array */
	memset(&m, 0, sizeof(m));
	mp_map(&m, 4);
	mp_str(&m, "v");
	mp_uint(&m, 1);
	mp_str(&m, "id");
	mp_uint(&m, 3);
	mp_str(&m, "status");
	mp_uint(&m, 0);
	mp_str(&m, "data");
	mp_map(&m, 1);
	mp_str(&m, "entries");
	mp_uint(&m, 4);
	assert_int_equal(macc_ctl_reply_decode(m.b, m.n, MACC_CTL_CMD_AUDIT, &back, &e),
			 MACC_EMALFORMED);
}

static void test_reply_progress_and_text(void **state)
{
	struct macc_ctl_reply r, d;
	char text[] = "line one\nline two\n";

	(void)state;
	macc_ctl_reply_init(&r);
	r.kind = MACC_CTL_DATA_PROGRESS;
	r.progress.state = MACC_CTL_STATE_DONE;
	r.progress.round = 1875;
	r.progress.rounds_planned = 1875;
	r.progress.epoch = 2;
	r.progress.epochs_planned = 2;
	r.progress.train_loss = 0.25;
	r.progress.samples_per_second = 1000;
	r.progress.round_seconds = 0.5;
	r.progress.eta_seconds = 0;
	r.progress.final = true;
	roundtrip_reply(&r, MACC_CTL_CMD_WATCH, &d);
	assert_int_equal(d.kind, MACC_CTL_DATA_PROGRESS);
	assert_int_equal(d.progress.state, MACC_CTL_STATE_DONE);
	assert_int_equal(d.progress.round, 1875);
	assert_int_equal(d.progress.rounds_planned, 1875);
	assert_true(d.progress.epoch == 2 && d.progress.epochs_planned == 2);
	assert_true(d.progress.train_loss == 0.25);
	assert_true(isnan(d.progress.test_accuracy_ratio));
	assert_true(d.progress.eta_seconds == 0);
	assert_true(d.progress.final);
	macc_ctl_reply_finish(&d);

	macc_ctl_reply_init(&r);
	r.kind = MACC_CTL_DATA_TEXT;
	r.text = text;
	r.text_len = strlen(text);
	roundtrip_reply(&r, MACC_CTL_CMD_METRICS, &d);
	assert_int_equal(d.kind, MACC_CTL_DATA_TEXT);
	assert_int_equal(d.text_len, strlen(text));
	assert_string_equal(d.text, text);
	macc_ctl_reply_finish(&d);
}

static void test_reply_bad_data(void **state)
{
	struct macc_ctl_reply d;
	struct macc_errmsg e;
	struct mp m;

	(void)state;
	/* status data with a mistyped field. */
	memset(&m, 0, sizeof(m));
	mp_map(&m, 4);
	mp_str(&m, "v");
	mp_uint(&m, 1);
	mp_str(&m, "id");
	mp_uint(&m, 1);
	mp_str(&m, "status");
	mp_uint(&m, 0);
	mp_str(&m, "data");
	mp_map(&m, 1);
	mp_str(&m, "round");
	mp_str(&m, "many");
	assert_int_equal(macc_ctl_reply_decode(m.b, m.n, MACC_CTL_CMD_STATUS, &d, &e),
			 MACC_EMALFORMED);
	assert_non_null(strstr(e.text, "'round'"));
	/* unknown state name */
	memset(&m, 0, sizeof(m));
	mp_map(&m, 4);
	mp_str(&m, "v");
	mp_uint(&m, 1);
	mp_str(&m, "id");
	mp_uint(&m, 1);
	mp_str(&m, "status");
	mp_uint(&m, 0);
	mp_str(&m, "data");
	mp_map(&m, 1);
	mp_str(&m, "state");
	mp_str(&m, "dancing");
	assert_int_equal(macc_ctl_reply_decode(m.b, m.n, MACC_CTL_CMD_STATUS, &d, &e),
			 MACC_EMALFORMED);
	/* peers without the array */
	memset(&m, 0, sizeof(m));
	mp_map(&m, 4);
	mp_str(&m, "v");
	mp_uint(&m, 1);
	mp_str(&m, "id");
	mp_uint(&m, 1);
	mp_str(&m, "status");
	mp_uint(&m, 0);
	mp_str(&m, "data");
	mp_map(&m, 0);
	assert_int_equal(macc_ctl_reply_decode(m.b, m.n, MACC_CTL_CMD_PEERS, &d, &e),
			 MACC_EMALFORMED);
	assert_int_equal(macc_ctl_reply_decode(m.b, m.n, MACC_CTL_CMD_METRICS, &d, &e),
			 MACC_EMALFORMED);
	/* ... but fine for a command without data (unknown keys ignored). */
	assert_int_equal(macc_ctl_reply_decode(m.b, m.n, MACC_CTL_CMD_STOP, &d, &e), 0);
	assert_int_equal(macc_ctl_reply_decode(m.b, m.n, MACC_CTL_CMD_COUNT, &d, &e),
			 MACC_EUNKNOWNCMD);
}

/* model and predict: replies round trip with their float blocks; bad arguments are refused
 * with the argument named; a reply whose data is not whole float32 values is malformed. */
static void test_model_predict(void **state)
{
	static const float params[5] = { 0.5f, -1.0f, 2.0f, 1e-30f, -7.25f };
	struct macc_ctl_reply r, d;
	struct macc_ctl_request q;
	struct macc_errmsg e;
	struct mp m;
	char spec[] = "input:4,dense:3,relu,dense:2,loss:mse";

	(void)state;
	macc_ctl_reply_init(&r);
	r.kind = MACC_CTL_DATA_MODEL;
	snprintf(r.model.name, sizeof(r.model.name), "agent1");
	r.model.spec = spec;
	snprintf(r.model.task, sizeof(r.model.task), "regression");
	r.model.round = 42;
	r.model.generation = 3;
	snprintf(r.model.digest, sizeof(r.model.digest), "0123456789abcdef");
	r.model.nparams = 23;
	r.model.input_c = 4;
	r.model.input_h = r.model.input_w = 1;
	r.model.input_flat = true;
	r.model.outputs = 2;
	r.model.standardized = true;
	r.model.total = 31;
	r.model.offset = 10;
	r.model.data = (uint8_t *)params;
	r.model.data_len = sizeof(params);
	roundtrip_reply(&r, MACC_CTL_CMD_MODEL, &d);
	assert_int_equal(d.kind, MACC_CTL_DATA_MODEL);
	assert_string_equal(d.model.name, "agent1");
	assert_string_equal(d.model.spec, spec);
	assert_string_equal(d.model.task, "regression");
	assert_string_equal(d.model.digest, "0123456789abcdef");
	assert_int_equal(d.model.round, 42);
	assert_int_equal(d.model.generation, 3);
	assert_int_equal(d.model.nparams, 23);
	assert_int_equal(d.model.input_c, 4);
	assert_true(d.model.input_flat && d.model.standardized);
	assert_int_equal(d.model.outputs, 2);
	assert_int_equal(d.model.total, 31);
	assert_int_equal(d.model.offset, 10);
	assert_int_equal(d.model.data_len, sizeof(params));
	assert_memory_equal(d.model.data, params, sizeof(params));
	macc_ctl_reply_finish(&d);
	assert_null(d.model.spec);

	macc_ctl_reply_init(&r);
	r.kind = MACC_CTL_DATA_PREDICT;
	r.predict.round = 9;
	r.predict.generation = 4;
	snprintf(r.predict.task, sizeof(r.predict.task), "classification");
	r.predict.rows = 1;
	r.predict.outputs = 5;
	r.predict.values = (uint8_t *)params;
	r.predict.values_len = sizeof(params);
	roundtrip_reply(&r, MACC_CTL_CMD_PREDICT, &d);
	assert_int_equal(d.kind, MACC_CTL_DATA_PREDICT);
	assert_int_equal(d.predict.rows, 1);
	assert_int_equal(d.predict.outputs, 5);
	assert_int_equal(d.predict.round, 9);
	assert_string_equal(d.predict.task, "classification");
	assert_memory_equal(d.predict.values, params, sizeof(params));
	macc_ctl_reply_finish(&d);

	/* predict: inputs missing, not a bin, not whole floats; model: an unknown argument */
	static const struct {
		const char *cmd, *key;
		uint8_t val[4];
		size_t vlen;
		const char *want;
	} bad[] = {
		{ "predict", "rows", { 0x01 }, 1, "exactly one argument, 'inputs'" },
		{ "predict", "inputs", { 0xa1, 'x' }, 2, "non-empty bin of float32" },
		{ "predict", "inputs", { 0xc4, 0x01, 0x00 }, 3, "a multiple of 4 bytes" },
		{ "model", "limit", { 0x01 }, 1, "offset, count and generation" },
		{ "model", "offset", { 0xff }, 1, "'offset' must be an unsigned integer" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&m, 0, sizeof(m));
		mp_map(&m, 4);
		mp_str(&m, "v");
		mp_uint(&m, 1);
		mp_str(&m, "id");
		mp_uint(&m, 5);
		mp_str(&m, "cmd");
		mp_str(&m, bad[i].cmd);
		mp_str(&m, "args");
		mp_map(&m, 1);
		mp_str(&m, bad[i].key);
		memcpy(m.b + m.n, bad[i].val, bad[i].vlen);
		m.n += bad[i].vlen;
		memset(&q, 0, sizeof(q));
		assert_int_equal(macc_ctl_request_decode(m.b, m.n, &q, &e), MACC_ESPEC);
		if (strstr(e.text, bad[i].want) == NULL) {
			fail_msg("%s: want '%s' in '%s'", bad[i].cmd, bad[i].want, e.text);
		}
	}
	/* a predict reply whose values are 3 bytes */
	memset(&m, 0, sizeof(m));
	mp_map(&m, 4);
	mp_str(&m, "v");
	mp_uint(&m, 1);
	mp_str(&m, "id");
	mp_uint(&m, 1);
	mp_str(&m, "status");
	mp_uint(&m, 0);
	mp_str(&m, "data");
	mp_map(&m, 1);
	mp_str(&m, "values");
	mp_byte(&m, 0xc4);
	mp_byte(&m, 3);
	mp_byte(&m, 1);
	mp_byte(&m, 2);
	mp_byte(&m, 3);
	assert_int_equal(macc_ctl_reply_decode(m.b, m.n, MACC_CTL_CMD_PREDICT, &d, &e),
			 MACC_EMALFORMED);
	assert_non_null(strstr(e.text, "'values'"));
}

static void test_tables(void **state)
{
	(void)state;
	for (int c = 0; c < MACC_CTL_CMD_COUNT; c++) {
		const struct macc_ctl_cmdinfo *ci = macc_ctl_cmd_find(macc_ctl_commands[c].name);

		assert_non_null(ci);
		assert_int_equal(ci->cmd, c);
		assert_non_null(ci->help);
	}
	assert_null(macc_ctl_cmd_find("nope"));
	assert_false(macc_ctl_cmd_find("status")->mutating);
	assert_false(macc_ctl_cmd_find("peers")->mutating);
	assert_false(macc_ctl_cmd_find("watch")->mutating);
	assert_false(macc_ctl_cmd_find("metrics")->mutating);
	assert_false(macc_ctl_cmd_find("version")->mutating);
	assert_true(macc_ctl_cmd_find("start")->mutating);
	assert_true(macc_ctl_cmd_find("stop")->mutating);
	assert_true(macc_ctl_cmd_find("reload")->mutating);
	assert_true(macc_ctl_cmd_find("log-level")->mutating);
	assert_true(macc_ctl_cmd_find("checkpoint")->mutating);
	assert_string_equal(macc_ctl_status_name(MACC_CTL_EVERSION), "version");
	assert_string_equal(macc_ctl_status_name(MACC_CTL_EPERM), "permission-denied");
	assert_string_equal(macc_ctl_status_name(99), "unknown");
	assert_string_equal(macc_ctl_status_name(-1), "unknown");
	assert_int_equal(macc_ctl_status_from_err(0), MACC_CTL_OK);
	assert_int_equal(macc_ctl_status_from_err(MACC_EVERSION), MACC_CTL_EVERSION);
	assert_int_equal(macc_ctl_status_from_err(MACC_ESPEC), MACC_CTL_EARGS);
	assert_int_equal(macc_ctl_status_from_err(MACC_EPERM), MACC_CTL_EPERM);
	assert_int_equal(macc_ctl_status_from_err(MACC_ECONFIG), MACC_CTL_ECONFIG);
	assert_int_equal(macc_ctl_status_from_err(MACC_ESTATE), MACC_CTL_ESTATE);
	assert_int_equal(macc_ctl_status_from_err(-ENOMEM), MACC_CTL_EINTERNAL);
	assert_int_equal(macc_ctl_status_from_err(-EIO), MACC_CTL_EFAILED);
	assert_string_equal(macc_ctl_state_name(MACC_CTL_STATE_TRAINING), "training");
	assert_string_equal(macc_ctl_session_name(MACC_CTL_SESSION_UP), "up");
	assert_string_equal(macc_ctl_state_name((enum macc_ctl_state)42), "unknown");
}

static void test_metrics_format(void **state)
{
	struct macc_ctl_status st;
	struct macc_ctl_metrics m;
	struct macc_ctl_peer p[2];
	struct macc_buf b;
	char *t;

	(void)state;
	macc_ctl_status_init(&st);
	strcpy(st.name, "a\"b");
	strcpy(st.model, "mlp:784-10");
	st.state = MACC_CTL_STATE_TRAINING;
	st.train_loss = 0.5;
	st.peers_up = 1;
	st.peers_configured = 2;
	st.process_start_time_seconds = 1796291058.103;
	st.state_bytes_sent_total = 12345;
	memset(&m, 0, sizeof(m));
	m.rounds_total = 42;
	m.bytes_sent_total = 1000;
	macc_ctl_metrics_observe_round(&m, 0.003);
	macc_ctl_metrics_observe_round(&m, 0.2);
	macc_ctl_metrics_observe_round(&m, 0.2);
	macc_ctl_metrics_observe_round(&m, 1000);
	memset(p, 0, sizeof(p));
	strcpy(p[0].name, "west");
	p[0].session = MACC_CTL_SESSION_UP;
	p[0].rtt_seconds = 0.0015;
	strcpy(p[1].name, "e\\ast\n");
	p[1].rtt_seconds = NAN;
	p[1].last_round = -1;
	macc_ctl_peer_add_reject(&p[1], MACC_EBADSIG, 7);

	macc_buf_init(&b, 0);
	assert_int_equal(macc_ctl_metrics_format(&st, p, 2, &m, &b), 0);
	assert_int_equal(macc_buf_append(&b, "", 1), 0);
	t = (char *)b.data;
	assert_non_null(strstr(t, "# TYPE macc_rounds_total counter\nmacc_rounds_total 42\n"));
	assert_non_null(strstr(t, "macc_train_loss 0.5\n"));
	assert_null(strstr(t, "macc_test_accuracy")); /* NaN: omitted */
	/* every digit of a start time (%.9g would print 1.79629106e+09) */
	assert_non_null(strstr(t, "# TYPE process_start_time_seconds gauge\n"
				  "process_start_time_seconds 1796291058.103\n"));
	assert_non_null(strstr(t, "# TYPE macc_state_bytes_sent_total counter\n"
				  "macc_state_bytes_sent_total 12345\n"));
	assert_non_null(strstr(t, "macc_peer_quarantine_active{peer=\"west\"} 0\n"));
	assert_non_null(strstr(t, "macc_info{name=\"a\\\"b\",model=\"mlp:784-10\""));
	assert_non_null(strstr(t, "macc_state{state=\"training\"} 1\n"));
	assert_non_null(strstr(t, "macc_state{state=\"idle\"} 0\n"));
	assert_non_null(strstr(t, "macc_peer_up{peer=\"west\"} 1\n"));
	assert_non_null(strstr(t, "macc_peer_up{peer=\"e\\\\ast\\n\"} 0\n"));
	assert_non_null(strstr(t, "macc_peer_rtt_seconds{peer=\"west\"} 0.0015\n"));
	assert_null(strstr(t, "macc_peer_rtt_seconds{peer=\"e"));
	assert_non_null(strstr(t, "macc_peer_last_round{peer=\"e\\\\ast\\n\"} -1\n"));
	assert_non_null(strstr(t, "macc_messages_rejected_total{peer=\"e\\\\ast\\n\","
				  "reason=\"bad_signature\"} 7\n"));
	assert_non_null(strstr(t, "macc_bytes_sent_total 1000\n"));
	assert_non_null(strstr(t, "# TYPE macc_round_seconds histogram\n"));
	assert_non_null(strstr(t, "macc_round_seconds_bucket{le=\"0.01\"} 1\n"));
	assert_non_null(strstr(t, "macc_round_seconds_bucket{le=\"0.25\"} 3\n"));
	assert_non_null(strstr(t, "macc_round_seconds_bucket{le=\"60\"} 3\n"));
	assert_non_null(strstr(t, "macc_round_seconds_bucket{le=\"+Inf\"} 4\n"));
	assert_non_null(strstr(t, "macc_round_seconds_count 4\n"));
	assert_non_null(strstr(t, "macc_round_seconds_sum 1000.403\n"));
	/* Every line is a comment or "name[{labels}] value". */
	for (char *line = t; *line != '\0';) {
		char *nl = strchr(line, '\n');

		assert_non_null(nl);
		assert_true(line[0] == '#' || (line[0] >= 'a' && line[0] <= 'z'));
		line = nl + 1;
	}
	macc_buf_finish(&b);

	/* A capped buffer fails cleanly. */
	macc_buf_init(&b, 100);
	assert_int_equal(macc_ctl_metrics_format(&st, p, 2, &m, &b), MACC_ETOOBIG);
	macc_buf_finish(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_roundtrip),
		cmocka_unit_test(test_request_check_order),
		cmocka_unit_test(test_hostile_msgpack),
		cmocka_unit_test(test_frame_next),
		cmocka_unit_test(test_reply_status),
		cmocka_unit_test(test_reply_error),
		cmocka_unit_test(test_reply_peers),
		cmocka_unit_test(test_audit),
		cmocka_unit_test(test_reply_progress_and_text),
		cmocka_unit_test(test_reply_bad_data),
		cmocka_unit_test(test_model_predict),
		cmocka_unit_test(test_tables),
		cmocka_unit_test(test_metrics_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
