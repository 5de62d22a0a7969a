/*
 * peer.c - connections to the configured neighbours: dialing, accepting, the handshake, the
 * one-session-per-peer tie-break, message dispatch, keepalive and liveness.
 *
 * Connections. Every peer is dialed (uv_getaddrinfo, then uv_tcp_connect) and every inbound
 * connection is accepted; both directions send our HELLO as soon as TCP is up. An inbound
 * connection is bound to a peer when its HELLO passes the allow-list (macc_session_accept_hello);
 * an outbound one must also present exactly the key configured for that endpoint. After the
 * peer's HELLO_ACK verifies, the connection is "proven" and is adopted as the peer's session.
 * Failed or lost connections are redialed after a capped exponential backoff with jitter
 * (backoff.c), and not while a session is up.
 *
 * Tie-break. When both sides dial at once there are two proven connections for one pair. Both
 * sides keep the connection initiated by the smaller public key (memcmp order), the same choice
 * on both ends; between two connections of the same direction the newer wins (the older belongs
 * to a previous incarnation of the peer). The loser gets a BYE and is closed; every adoption
 * re-sends this round's state, so nothing sent on a loser is missed.
 *
 * Limits (macc-agentd(8) THREAT MODEL; the config keys in brackets). Before a connection is
 * proven its frame limit is small (a HELLO is ~300 bytes), so a garbage-spewing client can make
 * us allocate at most that; it must be proven within a deadline [handshake_timeout_ms], and at
 * most [max_unauthenticated] inbound connections may be unproven at once (a HELLO that merely
 * claims a known key does not count as proof). Proven sessions accept frames up to the STATE
 * size of our model. PINGs are answered up to [ping_rate] per second and connection. Every
 * session's send queue (bytes libuv holds because the kernel would not take them) is bounded
 * [send_queue_max_bytes, default three STATE frames]: a write that would pass it drops the
 * session (counted as `slow`) and marks the peer dead, so the rounds do not wait for it until it
 * is back; it reconnects like any lost session. At most one retired duplicate session per peer
 * is kept. Every rejected message is counted and logged through a rate limiter; none of them
 * reaches training state. Rejections on an inbound connection before its peer proved its key are
 * counted on the agent by reason (enum macc_ctl_connrej), never on the peer whose key an
 * unproven HELLO claims, with one exception: a HELLO naming a configured key with another model
 * or encryption setting is counted on that peer (what its operator has to fix). On a connection
 * this agent dialed, they are counted on the peer it dialed (its endpoint answered wrongly).
 *
 * Refused and closing connections. A connection we refuse (a bad HELLO or proof) or close on
 * purpose gets its BYE, then a shutdown that flushes it; from that moment nothing it sends is
 * processed (conn.shut): frames already buffered or arriving in the same read are dropped, so
 * a HELLO_ACK sent right behind a refused HELLO can never adopt a session. A shut connection
 * that does not close within SHUT_TIMEOUT_MS is closed.
 *
 * Liveness. Any byte from a peer refreshes its last_rx; the 250 ms tick sends PING on sessions
 * idle for KEEPALIVE_MS and declares a peer dead after dead_peer_timeout without traffic (the
 * round logic stops waiting for it). PONG gives the RTT. A peer whose adopted session went down
 * (after one was up) cannot deliver a state before it reconnects: the rounds wait for it
 * reconnect_grace_ms after the loss and then not until a session is adopted again (peer_gone).
 *
 * Sealing (config encrypt = yes, issue 12). Every frame received goes through
 * macc_session_open before it is decoded (a pass-through until the peer's HELLO_ACK verified);
 * one that does not open closes the connection. Small frames (PING, PONG, BYE) are sealed right
 * after they are encoded and written at once, so they are sealed in stream order. A STATE on a
 * sealed session is the shared body encrypted with a per-neighbour prefix into one buffer per
 * connection (reused from round to round: the write keeps it until its callback); unsealed
 * sessions keep sending prefix + shared body without a copy. A STATE received on a sealed
 * session is not hashed and its signature not checked (macc_session_accept_state: the AEAD
 * authenticated it as the peer's); its slot keeps the signature and nonces (struct
 * macc_state_proof) for whoever needs to prove it later.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macc/guard.h"

#include "agent.h"

#define HELLO_FRAME_MAX 4096
/* How long a retired duplicate session is still read for the STATE the peer sent on it before
 * it saw our BYE (it answers with its own BYE at once; this only bounds a peer that does not). */
#define DRAIN_TIMEOUT_MS 10000
/* How long a refused or closing connection may take to flush its BYE and close. */
#define SHUT_TIMEOUT_MS 5000
#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS 5000

struct wreq {
	uv_write_t req;
	struct conn *conn;
	struct shared_body *body; /* STATE: shared, refcounted */
	struct macc_state_prefix prefix;
	struct macc_buf buf;      /* everything else, and a sealed STATE */
	bool spare;               /* buf is the connection's sealspare: give it back */
	/* Paced (max_rate): the buffers, handed to libuv in slices from `off` on; freed once
	 * it is off the connection's queue (`queued` false) and no slice is in flight. */
	uv_buf_t pb[2];
	unsigned pn;
	size_t total, off;
	unsigned inflight;
	bool queued;
	struct wreq *pnext;
};

/* One slice of a paced write. */
struct slice {
	uv_write_t req;
	struct wreq *w;
};

static void conn_close(struct conn *c, const char *why);
static void conn_shutdown(struct conn *c);
static void peer_schedule(struct peer *p);

/* ---- small helpers --------------------------------------------------------------------- */

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

static const char *conn_name(const struct conn *c)
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
static enum macc_ctl_connrej connrej_of(int code)
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
static void conn_refused_unproven(struct conn *c, enum macc_ctl_connrej why, const char *what)
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
static void conn_reject(struct conn *c, int code, const char *what)
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
		if (c->peer == p && !c->closing) {
			return c->connected ? MACC_CTL_SESSION_HANDSHAKE : MACC_CTL_SESSION_CONNECTING;
		}
	}
	return p->resolving ? MACC_CTL_SESSION_CONNECTING : MACC_CTL_SESSION_DOWN;
}

/* ---- writing --------------------------------------------------------------------------- */

/* Free a write request; a sealed STATE buffer goes back to its connection for the next round. */
static void wreq_free(struct wreq *w)
{
	shared_body_unref(w->body);
	if (w->spare && w->conn != NULL && !w->conn->closing && w->conn->sealspare.data == NULL) {
		w->conn->sealspare = w->buf;
	} else {
		macc_buf_finish(&w->buf);
	}
	free(w);
}

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;

	if (status < 0 && status != UV_ECANCELED && !w->conn->closing) {
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
	if (status < 0 && status != UV_ECANCELED && !w->conn->closing) {
		conn_close(w->conn, uv_strerror(status));
	}
	if (--w->inflight == 0 && !w->queued) {
		wreq_free(w);
	}
}

/* Drop what is still queued (the connection closes); slices in flight free theirs. */
static void conn_pq_drop(struct conn *c)
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
static int conn_pq_ready(struct conn *c, uint64_t now, uint64_t *wait_ns)
{
	uint64_t wp, wa;

	*wait_ns = 0;
	if (c->pq_head == NULL || c->closing) {
		return 0;
	}
	wp = c->peer != NULL ? macc_pacer_wait_ns(&c->peer->pacer, now) : 0;
	wa = macc_pacer_wait_ns(&c->agent->pacer, now);
	*wait_ns = wp > wa ? wp : wa;
	return *wait_ns == 0;
}

/* Hand the next slice of c's queue to libuv and charge it to both buckets (the caller asked
 * conn_pq_ready, or the session is being shut and its BYE must go: the debt is then repaid
 * before anyone's next slice). Returns 1 when one went, 0 when the queue is empty, -1 when c
 * closed. */
static int conn_pq_next(struct conn *c)
{
	struct macc_agent *a = c->agent;
	struct wreq *w = c->pq_head;
	uint64_t now = uv_hrtime();
	struct slice *s;
	uv_buf_t b[2];
	size_t n;
	int rc;

	if (w == NULL || c->closing) {
		return c->closing ? -1 : 0;
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
static void conn_pq_flush(struct conn *c)
{
	while (conn_pq_next(c) > 0) {
		/* one slice per turn */
	}
}

static int conn_write(struct conn *c, struct wreq *w, uv_buf_t *bufs, unsigned n, size_t total)
{
	size_t queued;
	int rc;

	w->conn = c;
	if (c->retired || c->closing) {
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
static int conn_send_buf(struct conn *c, struct wreq *w)
{
	uv_buf_t b = uv_buf_init((char *)w->buf.data, (unsigned)w->buf.len);

	return conn_write(c, w, &b, 1, w->buf.len);
}

/* Seal the small frame in w->buf (a no-op until our HELLO_ACK is out) and send it at once, so
 * frames are sealed in the order they reach the stream. */
static int conn_send_sealed(struct conn *c, struct wreq *w)
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

static struct wreq *wreq_new(void)
{
	struct wreq *w = calloc(1, sizeof(*w));

	if (w != NULL) {
		macc_buf_init(&w->buf, 0);
	}
	return w;
}

static void conn_send_hello(struct conn *c)
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
	c->hello_sent = true;
	conn_send_buf(c, w);
}

/* standardize.c: one STATS on p's adopted session, sealed like a PING. */
int peer_send_stats(struct peer *p, const struct macc_stats_out *so)
{
	struct conn *c = p->conn;
	struct wreq *w;
	int rc;

	if (c == NULL || !c->adopted || c->closing) {
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

static void conn_send_bye(struct conn *c, int reason, const char *text)
{
	struct wreq *w;

	if (c->closing || !c->connected) {
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

	if (c == NULL || c->closing || a->body == NULL) {
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

/* ---- closing --------------------------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct macc_agent *a = c->agent;

	for (struct conn **pp = &a->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	if (c->unproven && a->nconns_unproven > 0) {
		a->nconns_unproven--;
	}
	if (c->peer != NULL && c->peer->open_handles > 0) {
		c->peer->open_handles--;
	}
	macc_frame_decoder_finish(&c->dec);
	macc_session_finish(&c->session);
	macc_buf_finish(&c->sealspare);
	free(c);
}

static struct conn *peer_other_proven(struct peer *p, struct conn *except)
{
	for (struct conn *c = p->agent->conns; c != NULL; c = c->next) {
		if (c != except && c->peer == p && !c->closing && c->session.proven &&
		    !c->retired) {
			return c;
		}
	}
	return NULL;
}

static void adopt(struct peer *p, struct conn *c);

static void conn_close(struct conn *c, const char *why)
{
	struct peer *p = c->peer;

	if (c->closing) {
		return;
	}
	c->closing = true;
	conn_pq_drop(c);
	if (p != NULL && p->conn == c) {
		p->conn = NULL;
		p->down_ms = macc_now_ms();
		c->adopted = false;
		if (!p->agent->shutting_down) {
			macc_info(p->name, "session down: %s", why);
		}
	} else if (why != NULL) {
		macc_debug(conn_name(c), "connection closed: %s", why);
	}
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
	if (p != NULL && !p->removed && !p->agent->shutting_down) {
		struct conn *o = p->conn == NULL ? peer_other_proven(p, c) : NULL;
		if (o != NULL) {
			adopt(p, o);
		} else if (p->conn == NULL) {
			peer_schedule(p);
		}
		agent_on_peer_change(p->agent);
	}
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;

	free(req);
	if (c->retired && status == 0) {
		return; /* our BYE is out: go on reading until the peer's BYE, EOF or the deadline */
	}
	conn_close(c, "shut down");
}

/* Flush pending writes (BYE), then close. */
static void conn_shutdown(struct conn *c)
{
	uv_shutdown_t *req;

	if (c->closing) {
		return;
	}
	if (!c->retired && !c->shut) {
		c->shut = true; /* nothing it sends is processed any more */
		c->shut_ms = macc_now_ms();
	}
	if (!c->connected || (req = malloc(sizeof(*req))) == NULL) {
		conn_close(c, "shut down");
		return;
	}
	conn_pq_flush(c); /* the shutdown follows what libuv holds, not our queue */
	if (c->closing) {
		free(req);
		return;
	}
	req->data = c;
	if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
		free(req);
		conn_close(c, "shut down");
	}
}

/* Refuse a connection: BYE with the reason, then flush and close; nothing it sends after this is
 * processed (conn_shutdown marks it shut). */
static void conn_refuse(struct conn *c, int reason, const char *text)
{
	conn_send_bye(c, reason, text);
	conn_shutdown(c);
}

void peers_say_bye(struct macc_agent *a, int reason, const char *text)
{
	for (struct conn *c = a->conns; c != NULL; c = c->next) {
		if (c->retired && !c->closing) {
			conn_close(c, "shutting down"); /* its BYE is out already */
		} else if (!c->closing && c->connected) {
			conn_send_bye(c, reason, text);
			conn_shutdown(c);
		} else if (!c->closing) {
			conn_close(c, "shutting down");
		}
	}
}

/* ---- sessions -------------------------------------------------------------------------- */

static const struct macc_pubkey *initiator(const struct conn *c)
{
	return c->outbound ? &c->agent->id.pub : &c->peer->key;
}

/* Is `a_conn` preferred over `b_conn` (both proven, same peer)? */
static bool preferred(const struct conn *x, const struct conn *y)
{
	if (x->outbound == y->outbound) {
		return x->opened_ms >= y->opened_ms; /* the newer one */
	}
	return memcmp(initiator(x)->bytes, initiator(y)->bytes, MACC_PUBKEY_BYTES) < 0;
}

/* Retire the session that lost the duplicate-session choice (both sides make the same one).
 * The peer may have sent this round's STATE on it before it saw our BYE, and may move on to the
 * next round once it has ours: a STATE dropped here would be missing for good (its HELLO on the
 * other session then says it is past the round, and agent.c stops waiting). So the retired
 * session is still read, with the proven peer's frame limit, until the peer's own BYE, EOF or
 * DRAIN_TIMEOUT_MS; peer_draining() keeps agent.c waiting meanwhile. Nothing more is written. */
static void conn_retire(struct conn *c)
{
	c->adopted = false;
	macc_frame_decoder_set_max(&c->dec, c->agent->frame_max);
	conn_send_bye(c, 0, "duplicate session");
	c->retired = true;
	c->retired_ms = macc_now_ms();
	conn_shutdown(c);
}

/* At most one retired session per peer: a peer that keeps opening sessions cannot make us read
 * (and buffer frames from) a growing number of them. The newest, `keep`, stays, so the round
 * keeps waiting for it (peer_draining) while the older ones close. Called with p->conn set, so
 * closing them adopts nothing. */
static void close_older_retired(struct peer *p, const struct conn *keep)
{
	for (struct conn *o = p->agent->conns; o != NULL; o = o->next) {
		if (o != keep && o->peer == p && o->retired && !o->closing) {
			conn_close(o, "retired duplicate session superseded by a newer one");
		}
	}
}

bool peer_draining(const struct peer *p)
{
	for (const struct conn *c = p->agent->conns; c != NULL; c = c->next) {
		if (c->peer == p && c->retired && !c->closing) {
			return true;
		}
	}
	return false;
}

/* When the rounds stop waiting for a neighbour whose session went down (reconnect_grace_ms
 * after it did), or 0 when that rule does not apply: it has a session, never had one (at
 * start-up the round timeout applies, as the fleet comes up), a retired duplicate session is
 * still being read (the state may be in it), or a connection with it is up and in its
 * handshake (it is coming back: the other end of a duplicate-session race closed the session
 * we had kept, or a restarted agent is reconnecting). A killed agent's sessions close at once
 * (the kernel answers for it) and redials are refused until it restarts, so its neighbours wait
 * for it for the grace only, not for the round timeout every round until dead_peer_timeout_ms. */
uint64_t peer_grace_end(const struct peer *p)
{
	if (p->conn != NULL || !p->was_up) {
		return 0;
	}
	for (const struct conn *c = p->agent->conns; c != NULL; c = c->next) {
		if (c->peer == p && !c->closing && (c->retired || (c->connected && !c->shut))) {
			return 0;
		}
	}
	return p->down_ms + p->agent->cfg.reconnect_grace_ms;
}

/* Whether the rounds no longer wait for (or send to, push-sum) this neighbour: dead, or down
 * past its reconnect grace. Waited for again as soon as a session is adopted. */
bool peer_gone(const struct peer *p, uint64_t now)
{
	uint64_t end;

	if (p->dead) {
		return true;
	}
	end = peer_grace_end(p);
	return end != 0 && now >= end;
}

static void adopt(struct peer *p, struct conn *c)
{
	struct conn *old = p->conn;

	if (old != NULL && old != c) {
		if (!preferred(c, old)) {
			conn_retire(c);
			close_older_retired(p, c);
			return;
		}
		p->conn = NULL;
		conn_retire(old);
	}
	p->conn = c;
	c->adopted = true;
	if (old != NULL && old != c) {
		close_older_retired(p, old);
	}
	/* Only a proven session tells us the peer's degree, round and liveness. */
	p->degree = c->session.peer_degree;
	p->degree_known = true;
	memcpy(p->arch, c->arch, sizeof(p->arch));
	memcpy(p->blas, c->blas, sizeof(p->blas));
	p->known_round = c->session.peer_hello_round;
	p->known_round_valid = true;
	if (p->dead) {
		macc_info(p->name, "peer is back");
	}
	p->dead = false;
	p->was_up = true;
	p->last_rx_ms = macc_now_ms();
	macc_backoff_reset(&p->backoff);
	macc_frame_decoder_finish(&c->dec);
	macc_frame_decoder_init(&c->dec, p->agent->frame_max);
	{
		/* Room for a whole round's STATE in flight each way, so a send completes without
		 * waiting for the peer's loop to read (the kernel doubles these values). */
		int sz = p->agent->frame_max > (size_t)INT_MAX / 2 ? INT_MAX / 2
								    : (int)p->agent->frame_max;
		int rsz = sz;
		(void)uv_send_buffer_size((uv_handle_t *)&c->tcp, &sz);
		(void)uv_recv_buffer_size((uv_handle_t *)&c->tcp, &rsz);
	}
	macc_info(p->name, "session up (%s, %s, %s), peer at round %llu, degree %u, %s%s"
		  "digests sent/received %s/%s",
		  c->outbound ? "outbound" : "inbound", c->addr,
		  macc_session_rx_sealed(&c->session) ? "sealed" : "not sealed",
		  (unsigned long long)c->session.peer_hello_round, c->session.peer_degree,
		  macc_session_rx_sealed(&c->session) ? macc_aead_name(c->session.aead) : "",
		  macc_session_rx_sealed(&c->session) ? ", " : "",
		  macc_digest_name(c->session.tx_digest), macc_digest_name(c->session.rx_digest));
	agent_on_session_up(p);
}

static struct peer *peer_by_index(struct macc_agent *a, int idx)
{
	return idx >= 0 && (size_t)idx < a->npeers ? a->peers[idx] : NULL;
}

/* A HELLO we refuse: `text` is logged and counted, `bye` goes to the peer. A configured key
 * with another model, encryption or standardize setting is counted on that peer: the HELLO names it and the
 * mismatch is what its operator has to fix. Everything else is a refusal before identification
 * (conn_reject). */
static void hello_refused(struct conn *c, const struct macc_hello *h, int code, const char *text,
			  const char *bye)
{
	struct macc_agent *a = c->agent;
	struct peer *kp = peer_by_index(a, macc_pubkey_find(a->allow, a->npeers, &h->key));

	if (kp != NULL && (code == MACC_EMODEL || code == MACC_EENCRYPT || code == MACC_ECONFIG)) {
		peer_reject(kp, code, text);
	} else {
		conn_reject(c, code, text);
	}
	conn_refuse(c, code, bye);
}

/* The peer's proof verified: the connection stops counting as unproven. */
static void conn_proven(struct conn *c)
{
	if (c->unproven) {
		c->unproven = false;
		if (c->agent->nconns_unproven > 0) {
			c->agent->nconns_unproven--;
		}
	}
}

/* A HELLO_ACK. A failed proof is refused before identification (bad_proof), never counted on
 * the key the HELLO claimed. */
static void handle_ack(struct conn *c, const struct macc_hello_ack *ack)
{
	struct macc_errmsg e;
	int rc;

	e.text[0] = '\0';
	rc = macc_session_verify_ack(&c->session, ack, &e);
	if (rc == 0 && c->peer == NULL) {
		rc = macc_errf(&e, MACC_ESTATE, "HELLO_ACK on a connection bound to no peer");
	}
	if (rc < 0) {
		if (c->session.proven || c->outbound) {
			conn_reject(c, rc, e.text); /* a second ACK, or the endpoint we dialed */
		} else {
			enum macc_ctl_connrej why = rc == MACC_EUNKNOWNPEER
							    ? MACC_CTL_CONNREJ_BAD_PROOF
							    : connrej_of(rc);

			conn_refused_unproven(c, why, e.text[0] ? e.text : "bad HELLO_ACK");
		}
		conn_refuse(c, rc, "handshake proof rejected");
		return;
	}
	conn_proven(c);
	adopt(c->peer, c);
}

static void handle_hello(struct conn *c, const struct macc_hello *h)
{
	struct macc_agent *a = c->agent;
	struct macc_errmsg e;
	struct wreq *w;
	int idx;

	e.text[0] = '\0';
	idx = macc_session_accept_hello(&c->session, h, a->allow, a->npeers,
					c->outbound ? &c->peer->key : NULL, a->model_hash,
					a->nparams, macc_algo_name(a->algo), &e);
	if (idx >= 0 && h->round > a->total_rounds) {
		/* Same freshness rule as for STATE: a HELLO round past the end of this run would
		 * make the rejoin logic jump to the end. The session is dropped below. */
		idx = macc_errf(&e, MACC_EREPLAY, "HELLO announces round %llu, beyond this run's "
				"last round %llu", (unsigned long long)h->round,
				(unsigned long long)a->total_rounds);
	}
	if (idx >= 0 && std_check_hello(a, h, &e) < 0) {
		idx = MACC_ECONFIG; /* standardize.c: the fleet disagrees on standardize */
	}
	if (idx == MACC_EMODEL) {
		/* HELLO carries only the model's hash: say our spec here, and in the BYE, so that
		 * each side's log names both models (the peer's arrives in its BYE). */
		macc_errf(&e, MACC_EMODEL, "peer '%s' runs another model or algorithm (model hash "
			  "%016llx, %llu parameters, '%s'); this agent runs %.200s (hash %016llx, %zu "
			  "parameters, '%s'); the peer's BYE names its model", h->name,
			  (unsigned long long)h->model_hash, (unsigned long long)h->nparams, h->algo,
			  a->cfg.model, (unsigned long long)a->model_hash, a->nparams,
			  macc_algo_name(a->algo));
	}
	if (idx < 0) {
		char bye[sizeof(e.text)];

		if (idx == MACC_EMODEL) {
			snprintf(bye, sizeof(bye), "model mismatch: agent '%s' runs %.300s (%zu "
				 "parameters, algorithm '%s')", a->cfg.name, a->cfg.model, a->nparams,
				 macc_algo_name(a->algo));
		} else {
			snprintf(bye, sizeof(bye), "%s", e.text);
		}
		hello_refused(c, h, idx, e.text, bye);
		return;
	}
	memcpy(c->arch, h->arch, sizeof(c->arch)); /* shown once the session is adopted */
	memcpy(c->blas, h->blas, sizeof(c->blas));
	if (c->peer == NULL) {
		/* Bound to the peer whose key it names, not proven yet (still counted unproven). */
		c->peer = peer_by_index(a, idx);
		c->peer->open_handles++;
	}
	if (!c->hello_sent) {
		conn_send_hello(c);
	}
	w = wreq_new();
	if (w == NULL || macc_session_ack_encode(&c->session, &w->buf) < 0) {
		if (w != NULL) {
			macc_buf_finish(&w->buf);
			free(w);
		}
		conn_close(c, "cannot encode HELLO_ACK");
		return;
	}
	conn_send_buf(c, w);
	agent_on_peer_change(a);
}

/* Screen a STATE's f32 vectors (macc/guard.h) before anything of it is stored: NaN or infinity
 * (nonfinite), or a finite value beyond state_value_max (out_of_range: all 1e30 passes a
 * finiteness check and still overflows the mix or the next forward pass). Out of range is
 * refused under every aggregation. Non-finite is refused too unless robust mixing is on: then
 * the robust step screens it instead (excluded as "nonfinite", counted towards quarantine and
 * written to the audit trail). Runs over every received value at memory speed. */
static int screen_state(const struct macc_agent *a, const struct macc_state *st,
			struct macc_errmsg *e)
{
	const float bound = (float)a->cfg.state_value_max;
	const uint8_t *vec[2] = {st->x, st->mom};
	static const char *const name[2] = {"x", "momentum"};
	int rc[2] = {0, 0};
	size_t at[2] = {0, 0};

	for (int k = 0; k < 2; k++) {
		if (vec[k] != NULL) {
			rc[k] = macc_guard_values_le(vec[k], a->nparams, bound, &at[k]);
		}
	}
	for (int k = 0; k < 2; k++) {
		if (rc[k] == MACC_ERANGE) {
			float v;

			macc_f32le_load(&v, vec[k] + 4 * at[k], 1);
			return macc_errf(e, MACC_ERANGE, "STATE for round %llu: %s[%zu] = %g is "
					 "beyond state_value_max = %g",
					 (unsigned long long)st->round, name[k], at[k], (double)v,
					 (double)bound);
		}
	}
	for (int k = 0; k < 2; k++) {
		if (rc[k] == MACC_ENONFINITE && !a->robust) {
			return macc_errf(e, MACC_ENONFINITE, "STATE for round %llu holds NaN or "
					 "infinity (%s[%zu])", (unsigned long long)st->round,
					 name[k], at[k]);
		}
	}
	return 0;
}

/* A BYE: its text is the peer's (escaped by macc_log); one warning per connection at most, and
 * through a rate limiter, since anyone may connect and say bye. */
static void log_bye(struct conn *c, const struct macc_bye *b)
{
	struct macc_agent *a = c->agent;

	if (b->reason != 0 &&
	    macc_ratelimit_ok(c->peer != NULL && c->session.proven ? &c->peer->rl : &a->rl_unbound,
			      conn_name(c))) {
		macc_warn(conn_name(c), "peer closed the session: %s (%s)", b->text,
			  macc_errname(b->reason));
	} else if (b->reason == 0) {
		macc_debug(conn_name(c), "peer said bye: %s", b->text);
	}
}

/* A frame of a refused or closing connection (conn.shut): nothing of it is processed, but a BYE
 * is logged, and closes the connection at once. Both ends of a mismatched pair refuse each
 * other's HELLO at the same time, and the peer's BYE is where its side of the mismatch (its
 * model) reaches this log. */
static void shut_frame(struct conn *c, const uint8_t *f, size_t n)
{
	struct macc_msg m;
	struct macc_errmsg e;

	if (macc_msg_decode(f, n, c->dec.max, &m, &e) == 0 && m.type == MACC_MSG_BYE) {
		log_bye(c, &m.u.bye);
		conn_close(c, "peer said bye");
	}
}

static void handle_frame(struct conn *c, const uint8_t *p, size_t len)
{
	struct macc_agent *a = c->agent;
	struct macc_msg m;
	struct macc_errmsg e;
	int rc;

	e.text[0] = '\0';
	rc = macc_msg_decode(p, len, c->dec.max, &m, &e);
	if (rc < 0) {
		conn_reject(c, rc, e.text[0] ? e.text : macc_strerror(rc));
		if (!c->session.proven) {
			conn_refuse(c, rc, "undecodable message before the handshake");
		}
		return;
	}
	a->metrics.messages_received_total++;
	switch (m.type) {
	case MACC_MSG_HELLO:
		if (c->session.have_hello) {
			conn_reject(c, MACC_EREPLAY, "second HELLO on one session");
			return;
		}
		handle_hello(c, &m.u.hello);
		return;
	case MACC_MSG_HELLO_ACK:
		handle_ack(c, &m.u.ack);
		return;
	case MACC_MSG_STATE: {
		const struct macc_state *st = &m.u.state;

		if (!c->session.proven) {
			conn_refused_unproven(c, MACC_CTL_CONNREJ_UNPROVEN_STATE,
					      "STATE before the peer proved its key");
			conn_refuse(c, MACC_ESTATE, "STATE before the handshake");
			return;
		}
		/* A round past the end of this run cannot come from a peer of this run: taken
		 * as freshness failure before the session records it (it would otherwise make
		 * the rejoin logic jump to the end of the run and finish). */
		if (st->round > a->total_rounds) {
			rc = macc_errf(&e, MACC_EREPLAY, "STATE for round %llu, beyond this run's "
				       "last round %llu", (unsigned long long)st->round,
				       (unsigned long long)a->total_rounds);
		} else {
			rc = macc_session_accept_state(&c->session, st, a->nparams, &e);
		}
		if (rc == 0 && (st->mom != NULL) != a->sends_v) {
			rc = macc_errf(&e, MACC_EMALFORMED, "STATE %s momentum, %s expects %s",
				       st->mom ? "carries" : "lacks", macc_algo_name(a->algo),
				       a->sends_v ? "it" : "none");
		}
		if (rc == 0) {
			rc = edge_check_state(a, st, &e);
		}
		/* Policy for absurd values in a correctly signed STATE (screen_state): the whole
		 * message is dropped and counted (nonfinite, out_of_range); nothing of it enters
		 * the model (the peer is folded out of this round like a late one). Compressed
		 * blobs are checked by edge_check_state above. */
		if (rc == 0 && st->enc == MACC_ENC_F32) {
			rc = screen_state(a, st, &e);
		}
		if (rc < 0) {
			conn_reject(c, rc, e.text[0] ? e.text : macc_strerror(rc));
			return;
		}
		if (c->retired) {
			macc_debug(c->peer->name, "STATE for round %llu read from a retired duplicate "
				   "session", (unsigned long long)st->round);
		}
		c->peer->state_bytes_in += MACC_FRAME_HDR + len;
		a->edge.bytes_in += MACC_FRAME_HDR + len;
		agent_on_state(c->peer, st, &c->session);
		return;
	}
	case MACC_MSG_STATS:
		/* The standardisation agreement (standardize.c); like STATE, only once proven. */
		if (!c->session.proven || c->peer == NULL) {
			conn_refused_unproven(c, MACC_CTL_CONNREJ_UNPROVEN_STATE,
					      "STATS before the peer proved its key");
			conn_refuse(c, MACC_ESTATE, "STATS before the handshake");
			return;
		}
		std_on_stats(c, &m.u.stats);
		return;
	case MACC_MSG_PING: {
		uint64_t now = macc_now_ms();
		struct wreq *w;

		/* A PING flood must not make us queue PONGs without bound: answer at most
		 * ping_rate per second per connection, drop and count the rest. */
		if (now - c->ping_window_ms >= 1000) {
			c->ping_window_ms = now;
			c->pings_in_window = 0;
		}
		if (++c->pings_in_window > a->cfg.ping_rate) {
			char why[80];

			snprintf(why, sizeof(why), "PING flood: more than %u per second, not "
				 "answered", a->cfg.ping_rate);
			conn_reject(c, MACC_ERATELIMIT, why);
			return;
		}
		w = wreq_new();
		if (w == NULL) {
			return;
		}
		if (macc_ping_encode(&w->buf, MACC_MSG_PONG, &m.u.ping) < 0) {
			macc_buf_finish(&w->buf);
			free(w);
			return;
		}
		conn_send_sealed(c, w);
		return;
	}
	case MACC_MSG_PONG:
		if (c->peer != NULL && m.u.ping.seq == c->ping_seq) {
			uint64_t now = macc_now_ns();
			if (now >= m.u.ping.time_ns) {
				c->peer->rtt_ms = (double)(now - m.u.ping.time_ns) / 1e6;
			}
		}
		return;
	case MACC_MSG_BYE:
		log_bye(c, &m.u.bye);
		conn_close(c, "peer said bye");
		return;
	default:
		conn_reject(c, MACC_EMALFORMED, "unexpected message type");
		return;
	}
}

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
	static _Thread_local char rbuf[1 << 16];
	struct conn *c = h->data;
	uint8_t *p;
	size_t n;

	(void)suggested;
	/* A STATE is megabytes: read its bulk straight into the frame's payload (one copy, from
	 * the kernel), not through a bounce buffer. Small frames and headers use the bounce buffer
	 * (so one read can carry several of them). */
	if (direct_room(&c->dec, &p, &n) && n >= sizeof(rbuf)) {
		*buf = uv_buf_init((char *)p, n > UINT32_MAX ? UINT32_MAX : (unsigned)n);
		return;
	}
	*buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void conn_take_frame(struct conn *c)
{
	size_t n = 0;
	uint8_t *f = macc_frame_decoder_take(&c->dec, &n);

	if (f != NULL && !c->closing) {
		struct macc_errmsg e;
		size_t plen = 0;
		int rc;

		e.text[0] = '\0';
		rc = macc_session_open(&c->session, f, n, &plen, &e);
		if (rc < 0 && c->shut) {
			conn_close(c, "sealed frame does not open"); /* refused already: not counted */
		} else if (rc < 0) {
			conn_reject(c, rc, e.text[0] ? e.text : "sealed frame does not open");
			conn_close(c, "sealed frame does not open");
		} else if (c->shut) {
			shut_frame(c, f, plen); /* refused or closing: only its BYE is read */
		} else {
			handle_frame(c, f, plen);
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

/* Bytes of a refused or closing connection: framed (within the same frame limit, until
 * SHUT_TIMEOUT_MS closes it) only so that a BYE among them is seen (shut_frame). */
static void shut_read(struct conn *c, const uint8_t *p, size_t len)
{
	uint8_t *room;
	size_t n;

	if (direct_room(&c->dec, &room, &n) && p == room) {
		c->dec.have += len;
		if (c->dec.have == c->dec.need) {
			c->dec.ready = true;
			conn_take_frame(c);
		}
		return;
	}
	while (len > 0 && !c->closing) {
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
	if (c->closing) {
		return;
	}
	len = (size_t)nread;
	if (c->shut) {
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
	{
		uint8_t *room;
		size_t n;
		if (direct_room(&c->dec, &room, &n) && p == room) {
			/* Read straight into the payload (on_alloc): account for it, and hand the
			 * frame over when complete. */
			c->dec.have += len;
			if (c->dec.have == c->dec.need) {
				c->dec.ready = true;
				conn_take_frame(c);
			}
			return;
		}
	}
	while (len > 0 && !c->closing) {
		size_t used = 0;
		int rc;

		if (c->shut) {
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

static struct conn *conn_new(struct macc_agent *a, struct peer *p, bool outbound)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		return NULL;
	}
	c->agent = a;
	c->peer = p;
	c->outbound = outbound;
	c->opened_ms = macc_now_ms();
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
	uv_tcp_init(&a->loop, &c->tcp);
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

/* ---- dialing --------------------------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	struct peer *p = c->peer;

	if (c->closing) {
		return;
	}
	if (status < 0) {
		if (macc_ratelimit_ok(&p->rl_dial, p->name)) {
			macc_debug(p->name, "connect to %s failed: %s", c->addr, uv_strerror(status));
		}
		conn_close(c, uv_strerror(status));
		return;
	}
	c->connected = true;
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	conn_send_hello(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct peer *p = req->data;
	struct macc_agent *a = p->agent;
	struct conn *c;
	int rc;

	p->resolving = false;
	p->open_handles--;
	if (p->removed || a->shutting_down) {
		uv_freeaddrinfo(res);
		return;
	}
	if (status < 0 || res == NULL) {
		if (macc_ratelimit_ok(&p->rl_dial, p->name)) {
			macc_warn(p->name, "cannot resolve %s: %s", p->endpoint.host,
				  uv_strerror(status));
		}
		uv_freeaddrinfo(res);
		peer_schedule(p);
		return;
	}
	c = conn_new(a, p, true);
	if (c == NULL) {
		uv_freeaddrinfo(res);
		peer_schedule(p);
		return;
	}
	macc_endpoint_format(&p->endpoint, c->addr, sizeof(c->addr));
	c->creq.data = c;
	rc = uv_tcp_connect(&c->creq, &c->tcp, res->ai_addr, on_connect);
	uv_freeaddrinfo(res);
	if (rc < 0) {
		conn_close(c, uv_strerror(rc));
	}
}

static bool peer_has_conn(const struct peer *p)
{
	for (struct conn *c = p->agent->conns; c != NULL; c = c->next) {
		if (c->peer == p && !c->closing) {
			return true;
		}
	}
	return false;
}

static void peer_dial(struct peer *p)
{
	struct macc_agent *a = p->agent;
	struct addrinfo hints;
	char port[8];
	int rc;

	if (p->removed || a->shutting_down || p->conn != NULL || p->resolving ||
	    peer_has_conn(p)) {
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", p->endpoint.port);
	p->gai.data = p;
	rc = uv_getaddrinfo(&a->loop, &p->gai, on_resolved, p->endpoint.host, port, &hints);
	if (rc < 0) {
		peer_schedule(p);
		return;
	}
	p->resolving = true;
	p->open_handles++;
}

static void on_reconnect_timer(uv_timer_t *t)
{
	peer_dial(t->data);
}

static void peer_schedule(struct peer *p)
{
	if (p->removed || p->agent->shutting_down || p->conn != NULL || p->resolving ||
	    uv_is_active((uv_handle_t *)&p->reconnect_timer)) {
		return;
	}
	uv_timer_start(&p->reconnect_timer, on_reconnect_timer,
		       macc_backoff_next(&p->backoff, &p->agent->jitter), 0);
}

void peer_reconnect(struct peer *p)
{
	if (p->conn != NULL) {
		conn_send_bye(p->conn, 0, "endpoint changed");
		conn_shutdown(p->conn);
	}
	macc_backoff_reset(&p->backoff);
	uv_timer_stop(&p->reconnect_timer);
	peer_schedule(p);
}

/* ---- peers ----------------------------------------------------------------------------- */

struct peer *peer_create(struct macc_agent *a, const struct macc_config_peer *cp)
{
	struct peer *p = calloc(1, sizeof(*p));
	size_t np = a->nparams;

	if (p == NULL) {
		return NULL;
	}
	p->agent = a;
	snprintf(p->name, sizeof(p->name), "%s", cp->name);
	p->endpoint = cp->endpoint;
	p->key = cp->public_key;
	p->cfg_weight = cp->weight;
	p->has_weight = cp->has_weight;
	p->last_round = -1;
	p->tx_round = -1;
	p->rtt_ms = -1.0;
	p->last_rx_ms = macc_now_ms();
	p->max_rate = cp->max_rate;
	macc_pacer_init(&p->pacer, uv_hrtime()); /* its rate: peers_set_rates */
	macc_backoff_init(&p->backoff, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
	macc_ratelimit_init(&p->rl, 10000, 5);
	macc_ratelimit_init(&p->rl_lost, 10000, 3);
	macc_ratelimit_init(&p->rl_dial, 10000, 3);
	p->cur.x = malloc(np * sizeof(float));
	p->next.x = malloc(np * sizeof(float));
	if (a->sends_v) {
		p->cur.v = malloc(np * sizeof(float));
		p->next.v = malloc(np * sizeof(float));
	}
	if (p->cur.x == NULL || p->next.x == NULL ||
	    (a->sends_v && (p->cur.v == NULL || p->next.v == NULL)) || edge_peer_init(a, p) < 0) {
		slot_free(&p->cur);
		edge_peer_finish(p);
		slot_free(&p->next);
		free(p);
		return NULL;
	}
	uv_timer_init(&a->loop, &p->reconnect_timer);
	p->reconnect_timer.data = p;
	p->timer_init = true;
	p->open_handles = 1;
	return p;
}

void peer_start(struct peer *p)
{
	/* Dial right away (both sides dial; the tie-break keeps one session). */
	peer_dial(p);
}

static void on_peer_timer_closed(uv_handle_t *h)
{
	struct peer *p = h->data;

	p->open_handles--;
}

void peer_remove(struct peer *p)
{
	struct macc_agent *a = p->agent;

	p->removed = true;
	for (struct conn *c = a->conns; c != NULL; c = c->next) {
		if (c->peer == p && !c->closing) {
			conn_send_bye(c, 0, "removed from the configuration");
			conn_shutdown(c);
		}
	}
	p->conn = NULL;
	if (p->timer_init) {
		p->timer_init = false;
		uv_close((uv_handle_t *)&p->reconnect_timer, on_peer_timer_closed);
	}
}

static int cmp_peer(const void *x, const void *y)
{
	const struct peer *a = *(struct peer *const *)x, *b = *(struct peer *const *)y;

	return memcmp(a->key.bytes, b->key.bytes, MACC_PUBKEY_BYTES);
}

void peers_sort(struct macc_agent *a)
{
	qsort(a->peers, a->npeers, sizeof(*a->peers), cmp_peer);
	for (size_t i = 0; i < a->npeers; i++) {
		a->allow[i] = a->peers[i]->key;
	}
}

int peers_setup(struct macc_agent *a, struct macc_errmsg *err)
{
	a->peers = calloc(a->cfg.npeers + 1, sizeof(*a->peers));
	a->allow = calloc(a->cfg.npeers + 1, sizeof(*a->allow));
	if (a->peers == NULL || a->allow == NULL) {
		return macc_errf(err, -ENOMEM, "out of memory for peers");
	}
	for (size_t i = 0; i < a->cfg.npeers; i++) {
		a->peers[i] = peer_create(a, &a->cfg.peers[i]);
		if (a->peers[i] == NULL) {
			return macc_errf(err, -ENOMEM, "out of memory for peer buffers");
		}
		a->npeers++;
	}
	peers_sort(a);
	return 0;
}

/* ---- listening ------------------------------------------------------------------------- */

static void on_incoming(uv_stream_t *server, int status)
{
	struct macc_agent *a = server->data;
	struct conn *c;
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (status < 0) {
		macc_warn(NULL, "accept failed: %s", uv_strerror(status));
		return;
	}
	c = conn_new(a, NULL, false);
	if (c == NULL) {
		return;
	}
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		conn_close(c, "accept failed");
		return;
	}
	snprintf(c->addr, sizeof(c->addr), "in:?");
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		char host[64];
		if (ss.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
			snprintf(c->addr, sizeof(c->addr), "in:[%s]:%u", host,
				 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
		} else {
			uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
			snprintf(c->addr, sizeof(c->addr), "in:%s:%u", host,
				 ntohs(((struct sockaddr_in *)&ss)->sin_port));
		}
	}
	if (a->shutting_down) {
		conn_close(c, "shutting down");
		return;
	}
	if (a->nconns_unproven > a->cfg.max_unauthenticated) {
		char why[96];

		snprintf(why, sizeof(why), "more than %u connections whose peer has not proven its "
			 "key (max_unauthenticated)", a->cfg.max_unauthenticated);
		conn_refused_unproven(c, MACC_CTL_CONNREJ_FLOOD, why);
		conn_close(c, "too many unauthenticated connections");
		return;
	}
	c->connected = true;
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	conn_send_hello(c);
}

int peer_listen(struct macc_agent *a, struct macc_errmsg *err)
{
	struct sockaddr_storage ss;
	char ep[300];
	int rc;

	macc_endpoint_format(&a->cfg.listen, ep, sizeof(ep));
	if (a->cfg.listen.v6 || strchr(a->cfg.listen.host, ':') != NULL) {
		rc = uv_ip6_addr(a->cfg.listen.host, a->cfg.listen.port, (struct sockaddr_in6 *)&ss);
	} else {
		rc = uv_ip4_addr(a->cfg.listen.host, a->cfg.listen.port, (struct sockaddr_in *)&ss);
	}
	if (rc < 0) {
		return macc_errf(err, MACC_ECONFIG, "listen address %s: %s (a numeric address is "
				 "required)", ep, uv_strerror(rc));
	}
	uv_tcp_init(&a->loop, &a->listener);
	a->listener.data = a;
	a->listening = true;
	rc = uv_tcp_bind(&a->listener, (struct sockaddr *)&ss, 0);
	if (rc == 0) {
		rc = uv_listen((uv_stream_t *)&a->listener, 64, on_incoming);
	}
	if (rc < 0) {
		return macc_errf(err, rc, "cannot listen on %s: %s", ep, uv_strerror(rc));
	}
	macc_info(NULL, "listening on %s", ep);
	return 0;
}

void peer_close_listener(struct macc_agent *a)
{
	if (a->listening) {
		a->listening = false;
		uv_close((uv_handle_t *)&a->listener, NULL);
	}
}

/* ---- rates ----------------------------------------------------------------------------- */

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

/* Bytes handed to the sessions per second, over windows of at least a second. */
static void measure_rate(uint64_t now, uint64_t bytes, double *rate, uint64_t *win_ms,
			 uint64_t *win_bytes)
{
	if (*win_ms == 0) {
		*win_ms = now;
		*win_bytes = bytes;
	} else if (now - *win_ms >= 1000) {
		*rate = (double)(bytes - *win_bytes) * 1000.0 / (double)(now - *win_ms);
		*win_ms = now;
		*win_bytes = bytes;
	}
}

static void measure_rates(struct macc_agent *a, uint64_t now)
{
	measure_rate(now, a->metrics.bytes_sent_total, &a->send_rate, &a->rate_win_ms,
		     &a->rate_win_bytes);
	for (size_t i = 0; i < a->npeers; i++) {
		struct peer *p = a->peers[i];

		measure_rate(now, p->bytes_out, &p->send_rate, &p->rate_win_ms, &p->rate_win_bytes);
	}
}

/* ---- the tick -------------------------------------------------------------------------- */

void peers_tick(struct macc_agent *a)
{
	uint64_t now = macc_now_ms();
	uint64_t keepalive = a->cfg.dead_peer_timeout_ms / 4;
	bool changed = false;

	measure_rates(a, now);

	if (keepalive > 2000) {
		keepalive = 2000;
	}
	for (struct conn *c = a->conns, *n; c != NULL; c = n) {
		n = c->next;
		if (c->closing) {
			continue;
		}
		if (c->shut) {
			if (now - c->shut_ms > SHUT_TIMEOUT_MS) {
				conn_close(c, "refused connection did not close in time");
			}
			continue;
		}
		if (!c->session.proven && now - c->opened_ms > a->cfg.handshake_timeout_ms) {
			conn_reject(c, MACC_ETIMEOUT, "no handshake within the deadline "
				    "(handshake_timeout_ms)");
			conn_close(c, "handshake timeout");
			continue;
		}
		if (c->retired && now - c->retired_ms > DRAIN_TIMEOUT_MS) {
			conn_close(c, "retired duplicate session: no BYE from the peer");
			continue;
		}
		/* Ping every keepalive period even on a busy link: it keeps idle sessions alive and
		 * gives `macc-ctl peers` a round-trip time while training (STATE traffic alone never
		 * leaves the link quiet long enough for a keepalive). */
		if (c->adopted && (now - c->last_tx_ms >= keepalive ||
				   now - c->last_ping_ms >= keepalive)) {
			c->last_ping_ms = now;
			struct macc_ping pg = {.seq = ++c->ping_seq, .time_ns = macc_now_ns()};
			struct wreq *w = wreq_new();
			if (w != NULL && macc_ping_encode(&w->buf, MACC_MSG_PING, &pg) == 0) {
				conn_send_sealed(c, w);
			} else if (w != NULL) {
				macc_buf_finish(&w->buf);
				free(w);
			}
		}
	}
	for (size_t i = 0; i < a->npeers; i++) {
		struct peer *p = a->peers[i];
		if (!p->dead && now - p->last_rx_ms > a->cfg.dead_peer_timeout_ms) {
			p->dead = true;
			changed = true;
			if (p->conn != NULL && (p->conn->dec.hdr_have > 0 || p->conn->dec.have > 0)) {
				/* Slow loris: a frame begun and never finished. */
				peer_reject(p, MACC_ETIMEOUT, "frame left unfinished until the "
					    "dead-peer timeout");
			}
			macc_warn(p->name, "no traffic for %u ms: declared dead, not waited for",
				  a->cfg.dead_peer_timeout_ms);
			if (p->conn != NULL) {
				conn_close(p->conn, "dead");
			}
		}
	}
	if (changed) {
		agent_on_peer_change(a);
	}
}
