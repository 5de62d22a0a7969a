/*
 * conn.c - the bytes of one peer connection (struct conn, agent.h): the send path (HELLO, BYE,
 * PING and this round's STATE, plain or sealed, behind a send queue bounded in bytes), the read
 * path (frames read straight into their payload, a shared bounce buffer for small ones), the
 * counting of what was refused, and the creation of a connection. What the frames mean (the
 * handshake, the tie-break, message dispatch) is session.c's; who is dialed and when, peer.c's.
 * The design of all three is written at the top of peer.c.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "session.h"

void shared_body_unref(struct shared_body *b)
{
	if (b != NULL && --b->refs == 0) {
		macc_state_body_finish(&b->body);
		free(b);
	}
}

void slot_free(struct slot *s)
{
	free(s->x);
	free(s->v);
	macc_buf_finish(&s->body);
	free(s->bx);
	free(s->bv);
	memset(s, 0, sizeof(*s));
}

const char *conn_name(const struct conn *c)
{
	return c->peer != NULL ? c->peer->name : c->addr;
}

void peer_reject(struct peer *p, int code, const char *what)
{
	if (code <= MACC_EMALFORMED && code > MACC_EMALFORMED - 32) {
		p->rejected[MACC_EMALFORMED - code]++;
	} else {
		p->rejected_errno++;
	}
	if (macc_ratelimit_ok(&p->rl, p->name)) {
		macc_warn(p->name, "rejected (%s): %s", macc_errname(code), what);
	}
}

/* The reason a rejection code stands for before the peer is identified. */
enum macc_ctl_connrej connrej_of(int code)
{
	switch (code) {
	case MACC_EUNKNOWNPEER:
		return MACC_CTL_CONNREJ_UNKNOWN_KEY;
	case MACC_EVERSION:
		return MACC_CTL_CONNREJ_VERSION;
	case MACC_EMALFORMED:
	case MACC_ETOOBIG:
	case MACC_ESTATE:
		return MACC_CTL_CONNREJ_MALFORMED;
	case MACC_ETIMEOUT:
		return MACC_CTL_CONNREJ_TIMEOUT;
	case MACC_EBADSIG:
		return MACC_CTL_CONNREJ_BAD_PROOF;
	case MACC_EREPLAY:
		return MACC_CTL_CONNREJ_REPLAY;
	case MACC_ERATELIMIT:
		return MACC_CTL_CONNREJ_RATE_LIMITED;
	default:
		return MACC_CTL_CONNREJ_OTHER;
	}
}

/* A refusal before the peer proved its key: counted on the agent by reason, never on the peer
 * whose key the connection claims (anyone can claim a key); logged through one rate limiter. */
void conn_refused_unproven(struct conn *c, enum macc_ctl_connrej why, const char *what)
{
	struct macc_agent *a = c->agent;

	a->conn_rejected[why]++;
	if (macc_ratelimit_ok(&a->rl_unbound, c->addr)) {
		macc_warn(c->addr, "connection refused before identification (%s): %s",
			  macc_ctl_connrej_name(why), what);
	}
}

/* A rejection: on the peer once it proved its key, or on a connection this agent dialed (that
 * peer's endpoint answered wrongly); otherwise before identification, by reason. */
void conn_reject(struct conn *c, int code, const char *what)
{
	if (c->peer != NULL && (c->session.proven || c->outbound)) {
		peer_reject(c->peer, code, what);
		return;
	}
	conn_refused_unproven(c, connrej_of(code), what);
}

enum macc_ctl_session peer_session_state(const struct peer *p)
{
	if (p->conn != NULL) {
		return MACC_CTL_SESSION_UP;
	}
	if (p->dead) {
		return MACC_CTL_SESSION_DEAD;
	}
	for (struct conn *c = p->agent->conns; c != NULL; c = c->next) {
		if (c->peer == p && c->state != CONN_CLOSED) {
			return c->state != CONN_CONNECTING ? MACC_CTL_SESSION_HANDSHAKE
							   : MACC_CTL_SESSION_CONNECTING;
		}
	}
	return p->resolving ? MACC_CTL_SESSION_CONNECTING : MACC_CTL_SESSION_DOWN;
}

/* ---- writing --------------------------------------------------------------------------- */

/* Free a write request; a sealed STATE buffer goes back to its connection for the next round. */
static void wreq_free(struct wreq *w)
{
	shared_body_unref(w->body);
	if (w->spare && w->conn != NULL && w->conn->state != CONN_CLOSED &&
	    w->conn->sealspare.data == NULL) {
		w->conn->sealspare = w->buf;
	} else {
		macc_buf_finish(&w->buf);
	}
	free(w);
}

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;

	if (status < 0 && status != UV_ECANCELED && w->conn->state != CONN_CLOSED) {
		conn_close(w->conn, uv_strerror(status));
	}
	wreq_free(w);
}

/* Bound on a session's send queue: send_queue_max_bytes, or three STATE frames. */
static uint64_t send_queue_max(const struct macc_agent *a)
{
	return a->cfg.send_queue_max_bytes != 0 ? a->cfg.send_queue_max_bytes
						: 3 * (uint64_t)a->frame_max;
}

/* The peer does not read: drop its session (counted as `slow`) and stop waiting for it until it
 * is back (any traffic on a new session), so the round goes on with the others. */
static void conn_drop_slow(struct conn *c, size_t queued, size_t more)
{
	struct peer *p = c->peer;
	char why[160];

	snprintf(why, sizeof(why), "send queue at %zu bytes, %zu more would pass the bound of "
		 "%llu: the peer does not read; session dropped", queued, more,
		 (unsigned long long)send_queue_max(c->agent));
	peer_reject(p, MACC_ESLOW, why);
	if (p->conn == c) {
		p->dead = true;
	}
	conn_close(c, "peer does not read (send queue over its bound)");
}

/* ---- pacing (max_rate) -------------------------------------------------------------------
 * A connection to a peer whose bucket or the agent's has a rate queues its writes (in order:
 * sealed frames must reach the stream in the order they were sealed) and hands them to libuv in
 * slices of at most MACC_PACER_SLICE bytes, each once both buckets hold the tokens for it; the
 * agent's pace_timer wakes the queues when the first bucket will. Connections take turns, one
 * slice each, so one neighbour does not take the agent's whole rate. Queued bytes count towards
 * send_queue_max_bytes like libuv's own queue: a neighbour whose cap is too low for the states
 * it must carry is dropped as slow. */

/* One slice of a paced write. */
struct slice {
	uv_write_t req;
	struct wreq *w;
};

static bool conn_paced(const struct conn *c)
{
	return c->pq_head != NULL ||
	       (c->peer != NULL && (c->peer->pacer.rate != 0 || c->agent->pacer.rate != 0));
}

/* The first `n` bytes of w's remainder as libuv buffers (at most 2). */
static unsigned wreq_slice(const struct wreq *w, size_t n, uv_buf_t *out)
{
	size_t skip = w->off;
	unsigned k = 0;

	for (unsigned i = 0; i < w->pn && n > 0; i++) {
		size_t len = w->pb[i].len;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		len -= skip;
		if (len > n) {
			len = n;
		}
		out[k++] = uv_buf_init(w->pb[i].base + skip, (unsigned)len);
		n -= len;
		skip = 0;
	}
	return k;
}

static void on_slice_written(uv_write_t *req, int status)
{
	struct slice *s = (struct slice *)req;
	struct wreq *w = s->w;

	free(s);
	if (status < 0 && status != UV_ECANCELED && w->conn->state != CONN_CLOSED) {
		conn_close(w->conn, uv_strerror(status));
	}
	if (--w->inflight == 0 && !w->queued) {
		wreq_free(w);
	}
}

/* Drop what is still queued (the connection closes); slices in flight free theirs. */
void conn_pq_drop(struct conn *c)
{
	struct wreq *w = c->pq_head;

	c->pq_head = c->pq_tail = NULL;
	c->pq_bytes = 0;
	while (w != NULL) {
		struct wreq *next = w->pnext;

		w->queued = false;
		if (w->inflight == 0) {
			wreq_free(w);
		}
		w = next;
	}
}

/* Whether c has a slice to send: 1 ready now, 0 not (*wait_ns: until its buckets allow). */
static int conn_pq_ready(const struct conn *c, uint64_t now, uint64_t *wait_ns)
{
	uint64_t wp, wa;

	*wait_ns = 0;
	if (c->pq_head == NULL || c->state == CONN_CLOSED) {
		return 0;
	}
	wp = c->peer != NULL ? macc_pacer_wait_ns(&c->peer->pacer, now) : 0;
	wa = macc_pacer_wait_ns(&c->agent->pacer, now);
	*wait_ns = wp > wa ? wp : wa;
	return *wait_ns == 0;
}

/* The slice went to libuv: charge it to both buckets and the counters; w leaves the queue when
 * it is all out. */
static void slice_sent(struct conn *c, struct wreq *w, size_t n, uint64_t now)
{
	struct macc_agent *a = c->agent;

	w->inflight++;
	w->off += n;
	c->pq_bytes -= n;
	c->pace_seq = ++a->pace_seq;
	if (c->peer != NULL) {
		macc_pacer_take(&c->peer->pacer, n, now);
		c->peer->bytes_out += n;
	}
	macc_pacer_take(&a->pacer, n, now);
	a->metrics.bytes_sent_total += n;
	c->last_tx_ms = macc_now_ms();
	if (w->off == w->total) {
		c->pq_head = w->pnext;
		if (c->pq_head == NULL) {
			c->pq_tail = NULL;
		}
		w->queued = false;
	}
}

/* Hand the next slice of c's queue to libuv (the caller asked conn_pq_ready, or the session is
 * being shut and its BYE must go: the debt is then repaid before anyone's next slice). Returns
 * 1 when one went, 0 when the queue is empty, -1 when c closed. */
static int conn_pq_next(struct conn *c)
{
	struct wreq *w = c->pq_head;
	struct slice *s;
	uv_buf_t b[2];
	size_t n;
	int rc;

	if (c->state == CONN_CLOSED) {
		return -1;
	}
	if (w == NULL) {
		return 0;
	}
	n = w->total - w->off < MACC_PACER_SLICE ? w->total - w->off : MACC_PACER_SLICE;
	s = malloc(sizeof(*s));
	if (s == NULL) {
		conn_close(c, "out of memory");
		return -1;
	}
	s->w = w;
	rc = uv_write(&s->req, (uv_stream_t *)&c->tcp, b, wreq_slice(w, n, b), on_slice_written);
	if (rc < 0) {
		free(s);
		conn_close(c, uv_strerror(rc));
		return -1;
	}
	slice_sent(c, w, n, uv_hrtime());
	return 1;
}

/* Release what the buckets allow, a slice at a time, each to the ready connection served
 * longest ago (so neighbours sharing the agent's cap take turns), and arm the timer for the
 * rest. */
static void pace_all(struct macc_agent *a)
{
	for (;;) {
		uint64_t now = uv_hrtime(), wait = 0;
		struct conn *best = NULL;

		for (struct conn *c = a->conns; c != NULL; c = c->next) {
			uint64_t w;

			if (conn_pq_ready(c, now, &w)) {
				if (best == NULL || c->pace_seq < best->pace_seq) {
					best = c;
				}
			} else if (w > 0 && (wait == 0 || w < wait)) {
				wait = w;
			}
		}
		if (best != NULL) {
			conn_pq_next(best);
			continue;
		}
		if (wait > 0 && !a->shutting_down) {
			/* libuv timers count milliseconds: round up, so the bucket is ready then */
			uv_timer_start(&a->pace_timer, peers_pace, (wait + 999999) / 1000000, 0);
		}
		return;
	}
}

void peers_pace(uv_timer_t *t)
{
	pace_all(t->data);
}

/* Everything queued goes now (the session is being shut down), charged to the buckets. */
void conn_pq_flush(struct conn *c)
{
	while (conn_pq_next(c) > 0) {
		/* one slice per turn */
	}
}

/* The buckets follow the configuration (start, reload: live sessions included). */
static void set_rate(const char *who, struct macc_pacer *pc, uint64_t rate, uint64_t now)
{
	if (pc->rate != rate) {
		macc_info(who, "max_rate %llu bytes/s%s", (unsigned long long)rate,
			  rate == 0 ? " (unlimited)" : "");
		macc_pacer_set_rate(pc, rate, now);
	}
}

void peers_set_rates(struct macc_agent *a)
{
	uint64_t now = uv_hrtime();

	set_rate(NULL, &a->pacer, a->cfg.max_rate, now);
	for (size_t i = 0; i < a->npeers; i++) {
		set_rate(a->peers[i]->name, &a->peers[i]->pacer, a->peers[i]->max_rate, now);
	}
	pace_all(a);
}

/* A paced connection's write joins its queue (in order behind what waits there). */
static void conn_pq_add(struct conn *c, struct wreq *w, const uv_buf_t *bufs, unsigned n,
			size_t total)
{
	memcpy(w->pb, bufs, n * sizeof(*bufs));
	w->pn = n;
	w->total = total;
	w->queued = true;
	if (c->pq_tail != NULL) {
		c->pq_tail->pnext = w;
	} else {
		c->pq_head = w;
	}
	c->pq_tail = w;
	c->pq_bytes += total;
	c->agent->metrics.messages_sent_total++;
	pace_all(c->agent);
}

static int conn_write(struct conn *c, struct wreq *w, uv_buf_t *bufs, unsigned n, size_t total)
{
	size_t queued;
	int rc;

	w->conn = c;
	if (c->state == CONN_RETIRED || c->state == CONN_CLOSED) {
		/* Its write side is shut down (a PONG to a retired session): nothing more goes out. */
		wreq_free(w);
		return -EPIPE;
	}
	queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + c->pq_bytes;
	if (c->peer != NULL && c->session.proven && queued + total > send_queue_max(c->agent)) {
		wreq_free(w);
		conn_drop_slow(c, queued, total);
		return MACC_ESLOW;
	}
	if (conn_paced(c) && n <= 2) {
		conn_pq_add(c, w, bufs, n, total);
		return 0;
	}
	rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, n, on_written);
	if (rc < 0) {
		conn_close(c, uv_strerror(rc));
		wreq_free(w);
		return rc;
	}
	c->last_tx_ms = macc_now_ms();
	if (c->peer != NULL) {
		c->peer->bytes_out += total;
	}
	c->agent->metrics.bytes_sent_total += total;
	c->agent->metrics.messages_sent_total++;
	return 0;
}

/* Send what `fill` appends to a fresh buffer. */
int conn_send_buf(struct conn *c, struct wreq *w)
{
	uv_buf_t b = uv_buf_init((char *)w->buf.data, (unsigned)w->buf.len);

	return conn_write(c, w, &b, 1, w->buf.len);
}

/* Seal the small frame in w->buf (a no-op until our HELLO_ACK is out) and send it at once, so
 * frames are sealed in the order they reach the stream. */
int conn_send_sealed(struct conn *c, struct wreq *w)
{
	int rc = macc_session_seal_frame(&c->session, &w->buf, 0);

	if (rc < 0) {
		macc_buf_finish(&w->buf);
		free(w);
		conn_close(c, "cannot seal a frame");
		return rc;
	}
	return conn_send_buf(c, w);
}

struct wreq *wreq_new(void)
{
	struct wreq *w = calloc(1, sizeof(*w));

	if (w != NULL) {
		macc_buf_init(&w->buf, 0);
	}
	return w;
}

void conn_send_hello(struct conn *c)
{
	struct macc_agent *a = c->agent;
	struct macc_hello h;
	struct wreq *w = wreq_new();

	if (w == NULL) {
		conn_close(c, "out of memory");
		return;
	}
	macc_hello_init(&h, &a->id, c->nonce, a->model_hash, a->nparams, macc_algo_name(a->algo),
			a->round, (uint32_t)a->npeers, a->cfg.name);
	macc_session_hello_prepare(&c->session, &h);
	snprintf(h.arch, sizeof(h.arch), "%s", a->arch);
	snprintf(h.blas, sizeof(h.blas), "%s", a->blas);
	if (macc_hello_encode(&w->buf, &h) < 0) {
		macc_buf_finish(&w->buf);
		free(w);
		conn_close(c, "cannot encode HELLO");
		return;
	}
	conn_send_buf(c, w);
}

/* standardize.c: one STATS on p's adopted session, sealed like a PING. */
int peer_send_stats(struct peer *p, const struct macc_stats_out *so)
{
	struct conn *c = p->conn;
	struct wreq *w;
	int rc;

	if (c == NULL || c->state != CONN_UP) {
		return MACC_ESTATE;
	}
	w = wreq_new();
	if (w == NULL) {
		return -ENOMEM;
	}
	rc = macc_session_stats_encode(&c->session, so, &w->buf);
	if (rc < 0) {
		macc_buf_finish(&w->buf);
		free(w);
		return rc;
	}
	return conn_send_sealed(c, w);
}

void conn_send_bye(struct conn *c, int reason, const char *text)
{
	struct wreq *w;

	if (c->state == CONN_CLOSED || c->state == CONN_CONNECTING) {
		return;
	}
	w = wreq_new();
	if (w == NULL) {
		return;
	}
	if (macc_bye_encode(&w->buf, reason, text) < 0) {
		macc_buf_finish(&w->buf);
		free(w);
		return;
	}
	conn_send_sealed(c, w);
}

/* Send this round's shared STATE body to the peer's session (prefix per neighbour, body shared),
 * or with compressed exchange the full resync state the peer needs (edge.c). */
void peer_send_body(struct peer *p)
{
	struct macc_agent *a = p->agent;
	struct conn *c = p->conn;
	struct shared_body *body;
	struct wreq *w;
	uv_buf_t bufs[2];
	size_t clear;

	if (c == NULL || c->state == CONN_CLOSED || a->body == NULL) {
		return;
	}
	body = edge_body_for(a, p);
	if (body == NULL) {
		return;
	}
	w = wreq_new();
	if (w == NULL) {
		return;
	}
	if (macc_session_tx_sealed(&c->session)) {
		int rc;

		/* One buffer per connection, reused: the previous round's is back by now
		 * unless its write is still queued (then this round gets a fresh one). */
		if (c->sealspare.data != NULL) {
			w->buf = c->sealspare;
			memset(&c->sealspare, 0, sizeof(c->sealspare));
			macc_buf_reset(&w->buf);
		}
		w->spare = true;
		w->conn = c;
		rc = macc_session_seal_state(&c->session, &body->body, &w->buf);
		if (rc < 0) {
			wreq_free(w);
			conn_close(c, "cannot seal STATE");
			return;
		}
		bufs[0] = uv_buf_init((char *)w->buf.data, (unsigned)w->buf.len);
		clear = w->buf.len - MACC_SEAL_OVERHEAD;
		if (conn_write(c, w, bufs, 1, w->buf.len) < 0) {
			return;
		}
	} else {
		if (macc_session_state_prefix(&c->session, &body->body, &w->prefix) < 0) {
			macc_buf_finish(&w->buf);
			free(w);
			return;
		}
		w->body = body;
		body->refs++;
		bufs[0] = uv_buf_init((char *)w->prefix.bytes, (unsigned)w->prefix.len);
		bufs[1] = uv_buf_init((char *)body->body.buf.data, (unsigned)body->body.buf.len);
		clear = w->prefix.len + body->body.buf.len;
		if (conn_write(c, w, bufs, 2, clear) < 0) {
			return;
		}
	}
	/* STATE traffic as macc-sim's bytes_per_agent models it: frames in the clear. */
	p->state_bytes_out += clear;
	a->edge.bytes_out += clear;
	p->tx_any = true;
	p->tx_round = (int64_t)body->body.round;
	if (body != a->body) {
		p->tx_full = false;
		a->edge.resyncs_sent++;
		macc_info(p->name, "sent a full resync state for round %llu",
			  (unsigned long long)body->body.round);
	}
}

/* Compressed exchange: our copy of p's public vectors missed a difference. Close the session
 * (BYE MACC_ESTATE); both sides reconnect and p's first STATE on the new session is a full
 * resync state (edge.c). */
void peer_resync(struct peer *p, const char *why)
{
	p->resync_asked = true;
	p->agent->edge.resyncs_asked++;
	if (p->conn != NULL) {
		conn_send_bye(p->conn, MACC_ESTATE, why);
		conn_shutdown(p->conn);
	}
}


/* ---- reading --------------------------------------------------------------------------- */

/* The rest of the frame being received, when reading straight into it is possible: a payload
 * is allocated (its header accepted) and not complete. The decoder's fields are public caller
 * storage (proto.h); this is the only place that fills a payload other than
 * macc_frame_decoder_feed, and it keeps the same invariants (have <= need, ready at have ==
 * need). */
static bool direct_room(const struct macc_frame_decoder *d, uint8_t **ret_p, size_t *ret_n)
{
	if (d->error != 0 || d->ready || d->payload == NULL || d->hdr_have < MACC_FRAME_HDR ||
	    d->have >= d->need) {
		return false;
	}
	*ret_p = d->payload + d->have;
	*ret_n = d->need - d->have;
	return true;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;
	char *rbuf = c->agent->rbuf; /* consumed in on_read before any other read */
	uint8_t *p;
	size_t n;

	(void)suggested;
	/* A STATE is megabytes: read its bulk straight into the frame's payload (one copy, from
	 * the kernel), not through a bounce buffer. Small frames and headers use the bounce buffer
	 * (so one read can carry several of them). */
	if (direct_room(&c->dec, &p, &n) && n >= sizeof(c->agent->rbuf)) {
		*buf = uv_buf_init((char *)p, n > UINT32_MAX ? UINT32_MAX : (unsigned)n);
		return;
	}
	*buf = uv_buf_init(rbuf, sizeof(c->agent->rbuf));
}

static void conn_take_frame(struct conn *c)
{
	size_t n = 0;
	uint8_t *f = macc_frame_decoder_take(&c->dec, &n);

	if (f != NULL && c->state != CONN_CLOSED) {
		struct macc_errmsg e;
		size_t plen = 0;
		int rc;

		e.text[0] = '\0';
		rc = macc_session_open(&c->session, f, n, &plen, &e);
		if (rc < 0 && c->state == CONN_CLOSING) {
			conn_close(c, "sealed frame does not open"); /* refused already: not counted */
		} else if (rc < 0) {
			conn_reject(c, rc, e.text[0] ? e.text : "sealed frame does not open");
			conn_close(c, "sealed frame does not open");
		} else if (c->state == CONN_CLOSING) {
			session_shut_frame(c, f, plen); /* refused or closing: only its BYE is read */
		} else {
			session_frame(c, f, plen);
		}
	}
	free(f);
}

/* Before the proof a frame over the small handshake limit is refused from its header alone. The
 * bytes behind the header (when this read holds them) tell a STATE of the wire encoder apart, for
 * the count only: a map whose first keys are "ver" (any version) and "type" = STATE. */
static bool looks_like_state(const uint8_t *p, size_t n)
{
	static const uint8_t ver[] = {0xa3, 'v', 'e', 'r'};
	static const uint8_t type[] = {0xa4, 't', 'y', 'p', 'e', MACC_MSG_STATE};

	return n >= 12 && (p[0] & 0xf0) == 0x80 && memcmp(p + 1, ver, sizeof(ver)) == 0 &&
	       memcmp(p + 6, type, sizeof(type)) == 0;
}

/* Bytes read straight into the payload of the frame being received (on_alloc): account for
 * them, and hand the frame over when complete. False when they went to the bounce buffer. */
static bool direct_read(struct conn *c, const uint8_t *p, size_t len)
{
	uint8_t *room;
	size_t n;

	if (!direct_room(&c->dec, &room, &n) || p != room) {
		return false;
	}
	c->dec.have += len;
	if (c->dec.have == c->dec.need) {
		c->dec.ready = true;
		conn_take_frame(c);
	}
	return true;
}

/* Bytes of a refused or closing connection: framed (within the same frame limit, until
 * SHUT_TIMEOUT_MS closes it) only so that a BYE among them is seen (shut_frame). */
static void shut_read(struct conn *c, const uint8_t *p, size_t len)
{
	if (direct_read(c, p, len)) {
		return;
	}
	while (len > 0 && c->state != CONN_CLOSED) {
		size_t used = 0;
		int rc = macc_frame_decoder_feed(&c->dec, p, len, &used);

		if (rc < 0) {
			conn_close(c, "bad frame after the connection was refused");
			return;
		}
		p += used;
		len -= used;
		if (rc == 1) {
			conn_take_frame(c);
		}
	}
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	const uint8_t *p = (const uint8_t *)buf->base;
	size_t len;

	if (nread < 0) {
		conn_close(c, nread == UV_EOF ? "connection closed by peer" : uv_strerror((int)nread));
		return;
	}
	if (c->state == CONN_CLOSED) {
		return;
	}
	len = (size_t)nread;
	if (c->state == CONN_CLOSING) {
		shut_read(c, p, len); /* refused or closing: not even accounted as traffic */
		return;
	}
	if (c->peer != NULL) {
		c->peer->bytes_in += len;
	}
	if (c->peer != NULL && c->session.proven) {
		c->peer->last_rx_ms = macc_now_ms();
		if (c->peer->dead) {
			c->peer->dead = false;
			macc_info(c->peer->name, "peer is back");
			agent_on_peer_change(c->agent);
		}
	}
	c->agent->metrics.bytes_received_total += len;
	if (direct_read(c, p, len)) {
		return;
	}
	while (len > 0 && c->state != CONN_CLOSED) {
		size_t used = 0;
		int rc;

		if (c->state == CONN_CLOSING) {
			shut_read(c, p, len); /* refused by a frame of this read: only a BYE is read */
			return;
		}
		rc = macc_frame_decoder_feed(&c->dec, p, len, &used);
		if (rc < 0) {
			char why[96];
			snprintf(why, sizeof(why), "bad frame (limit %zu bytes): %s", c->dec.max,
				 macc_strerror(rc));
			if (rc == MACC_ETOOBIG && !c->session.proven &&
			    looks_like_state(p + used, len - used)) {
				conn_refused_unproven(c, MACC_CTL_CONNREJ_UNPROVEN_STATE,
						      "STATE before the peer proved its key");
			} else {
				conn_reject(c, rc, why);
			}
			conn_close(c, why);
			return;
		}
		p += used;
		len -= used;
		if (rc == 1) {
			conn_take_frame(c);
		}
	}
}

struct conn *conn_new(struct macc_agent *a, struct peer *p, bool outbound)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		return NULL;
	}
	c->agent = a;
	c->peer = p;
	c->outbound = outbound;
	c->opened_ms = macc_now_ms();
	c->state = CONN_CONNECTING;
	c->deadline_ms = c->opened_ms + a->cfg.handshake_timeout_ms;
	macc_random_bytes(c->nonce, sizeof(c->nonce));
	macc_session_init(&c->session, &a->id, c->nonce);
	/* SHA-256 STATE digests where this CPU has SHA instructions (the bodies agent.c and edge.c
	 * encode use the same choice), BLAKE2b-256 toward peers that cannot check them. */
	(void)macc_session_set_digest(&c->session, macc_digest_preferred());
	/* standardize.c: whether this agent standardises, announced in HELLO (under the proof) */
	c->session.self_flags |= std_hello_flags(a);
	if (a->cfg.encrypt) {
		struct macc_seal_limits lim = {a->cfg.rekey_bytes, a->cfg.rekey_frames};

		if (macc_session_enable_seal(&c->session, &lim, NULL) < 0) {
			macc_warn(NULL, "cannot make an ephemeral key for a sealed session");
			macc_session_finish(&c->session);
			free(c);
			return NULL;
		}
	}
	macc_frame_decoder_init(&c->dec, HELLO_FRAME_MAX);
	uv_tcp_init(a->loop, &c->tcp);
	c->tcp.data = c;
	uv_tcp_nodelay(&c->tcp, 1);
	c->next = a->conns;
	a->conns = c;
	if (p != NULL) {
		p->open_handles++;
	} else {
		c->unproven = true;
		a->nconns_unproven++;
	}
	return c;
}

void conn_set_congestion(struct conn *c)
{
	struct macc_agent *a = c->agent;
	const char *cc = a->cfg.tcp_congestion;
	uv_os_fd_t fd;
	int err;

	if (cc[0] == '\0' || uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0) {
		return;
	}
#ifdef TCP_CONGESTION
	if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, (socklen_t)strlen(cc)) == 0) {
		return;
	}
	err = errno;
#else
	err = ENOTSUP;
#endif
	if (strcmp(a->tcp_congestion_warned, cc) != 0) {
		snprintf(a->tcp_congestion_warned, sizeof(a->tcp_congestion_warned), "%s", cc);
		macc_warn(conn_name(c), "tcp_congestion = %s refused by the kernel (%s%s); this and "
			  "every such connection keep the system's default", cc, strerror(err),
			  err == EPERM ? ": not in net.ipv4.tcp_allowed_congestion_control and no "
			  "CAP_NET_ADMIN" : err == ENOENT ? ": no such algorithm in this kernel" : "");
	}
}

void conn_start_reading(struct conn *c)
{
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}
