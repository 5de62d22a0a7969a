/*
 * session.c - one peer session: closing (BYE, flush, close; a refused connection is read only
 * for its BYE), the handshake (HELLO, HELLO_ACK, the allow-list and the proof), the
 * one-session-per-peer tie-break (adopt, retire, drain), and the dispatch of the messages of a
 * proven session (STATE screened and handed to the round driver, PING/PONG and its rate limit,
 * BYE). The design is written at the top of peer.c; the bytes are conn.c's.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macc/guard.h"

#include "agent.h"
#include "session.h"

/* ---- closing --------------------------------------------------------------------------- */

/* ---- states (enum conn_state, agent.h) ------------------------------------------------- */

static void enter(struct conn *c, enum conn_state s, uint64_t deadline_ms)
{
	c->state = s;
	c->deadline_ms = deadline_ms;
}

/* TCP is up (dialed or accepted): read, and say HELLO; the handshake deadline still runs from
 * the connection's start. */
void conn_enter_hello(struct conn *c)
{
	enter(c, CONN_HELLO, c->deadline_ms);
	conn_start_reading(c);
	conn_send_hello(c);
}

/* The peer's HELLO passed and our HELLO_ACK is on its way: its proof is awaited. */
static void enter_await_ack(struct conn *c)
{
	enter(c, CONN_AWAIT_ACK, c->deadline_ms);
}

/* Adopted: no deadline (keepalive and liveness are the peer's, peers_tick). */
static void enter_up(struct conn *c)
{
	enter(c, CONN_UP, 0);
}

/* Lost the duplicate-session choice: read until the peer's BYE, EOF or the drain deadline. */
static void enter_retired(struct conn *c)
{
	enter(c, CONN_RETIRED, macc_now_ms() + DRAIN_TIMEOUT_MS);
}

/* Refused or closing: nothing it sends is processed any more (but a BYE); the flush deadline. */
static void enter_closing(struct conn *c)
{
	enter(c, CONN_CLOSING, macc_now_ms() + SHUT_TIMEOUT_MS);
}

static void enter_closed(struct conn *c)
{
	enter(c, CONN_CLOSED, 0);
}

/* The state's deadline passed (peers_tick). */
void conn_deadline(struct conn *c)
{
	switch (c->state) {
	case CONN_CONNECTING:
	case CONN_HELLO:
	case CONN_AWAIT_ACK:
		conn_reject(c, MACC_ETIMEOUT, "no handshake within the deadline "
			    "(handshake_timeout_ms)");
		conn_close(c, "handshake timeout");
		return;
	case CONN_RETIRED:
		conn_close(c, "retired duplicate session: no BYE from the peer");
		return;
	case CONN_CLOSING:
		conn_close(c, "refused connection did not close in time");
		return;
	case CONN_UP:
	case CONN_CLOSED:
		return;
	}
}

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
		if (c != except && c->peer == p && c->state != CONN_CLOSED &&
		    c->session.proven && c->state != CONN_RETIRED) {
			return c;
		}
	}
	return NULL;
}

static void adopt(struct peer *p, struct conn *c);

void conn_close(struct conn *c, const char *why)
{
	struct peer *p = c->peer;

	if (c->state == CONN_CLOSED) {
		return;
	}
	enter_closed(c);
	conn_pq_drop(c); /* max_rate: what still waits for tokens goes nowhere now (conn.c) */
	if (p != NULL && p->conn == c) {
		p->conn = NULL;
		p->down_ms = macc_now_ms(); /* its reconnect grace starts (peer_gone) */
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
	if (c->state == CONN_RETIRED && status == 0) {
		return; /* our BYE is out: go on reading until the peer's BYE, EOF or the deadline */
	}
	conn_close(c, "shut down");
}

/* Flush pending writes (BYE), then close. */
void conn_shutdown(struct conn *c)
{
	uv_shutdown_t *req;
	bool connected = c->state != CONN_CONNECTING;

	if (c->state == CONN_CLOSED) {
		return;
	}
	if (c->state != CONN_RETIRED && c->state != CONN_CLOSING) {
		enter_closing(c);
	}
	if (!connected || (req = malloc(sizeof(*req))) == NULL) {
		conn_close(c, "shut down");
		return;
	}
	conn_pq_flush(c); /* max_rate: the shutdown follows what libuv holds, not our queue */
	if (c->state == CONN_CLOSED) {
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
void conn_refuse(struct conn *c, int reason, const char *text)
{
	conn_send_bye(c, reason, text);
	conn_shutdown(c);
}

void peers_say_bye(struct macc_agent *a, int reason, const char *text)
{
	for (struct conn *c = a->conns; c != NULL; c = c->next) {
		if (c->state == CONN_RETIRED) {
			conn_close(c, "shutting down"); /* its BYE is out already */
		} else if (c->state != CONN_CLOSED && c->state != CONN_CONNECTING) {
			conn_send_bye(c, reason, text);
			conn_shutdown(c);
		} else if (c->state != CONN_CLOSED) {
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
 * other session then says it is past the round, and round.c stops waiting). So the retired
 * session is still read, with the proven peer's frame limit, until the peer's own BYE, EOF or
 * DRAIN_TIMEOUT_MS; peer_draining() keeps round.c waiting meanwhile. Nothing more is written. */
static void conn_retire(struct conn *c)
{
	macc_frame_decoder_set_max(&c->dec, c->agent->frame_max);
	conn_send_bye(c, 0, "duplicate session");
	enter_retired(c);
	conn_shutdown(c);
}

/* At most one retired session per peer: a peer that keeps opening sessions cannot make us read
 * (and buffer frames from) a growing number of them. The newest, `keep`, stays, so the round
 * keeps waiting for it (peer_draining) while the older ones close. Called with p->conn set, so
 * closing them adopts nothing. */
static void close_older_retired(struct peer *p, const struct conn *keep)
{
	for (struct conn *o = p->agent->conns; o != NULL; o = o->next) {
		if (o != keep && o->peer == p && o->state == CONN_RETIRED) {
			conn_close(o, "retired duplicate session superseded by a newer one");
		}
	}
}

bool peer_draining(const struct peer *p)
{
	for (const struct conn *c = p->agent->conns; c != NULL; c = c->next) {
		if (c->peer == p && c->state == CONN_RETIRED) {
			return true;
		}
	}
	return false;
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
	enter_up(c);
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
	p->was_up = true; /* from now on a lost session starts a reconnect grace (peer_gone) */
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
	conn_set_congestion(c);
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
 * with another model, encryption or standardize setting is counted on that peer: the HELLO
 * names it and the mismatch is what its operator has to fix. Everything else is a refusal
 * before identification (conn_reject). */
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
	if (c->state == CONN_HELLO) {
		enter_await_ack(c);
	}
	agent_on_peer_change(a);
}

/* The standardisation agreement's message (standardize.c); like STATE, only once proven. */
static void handle_stats(struct conn *c, const struct macc_stats *st)
{
	if (!c->session.proven || c->peer == NULL) {
		conn_refused_unproven(c, MACC_CTL_CONNREJ_UNPROVEN_STATE,
				      "STATS before the peer proved its key");
		conn_refuse(c, MACC_ESTATE, "STATS before the handshake");
		return;
	}
	std_on_stats(c, st);
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
void session_shut_frame(struct conn *c, const uint8_t *f, size_t n)
{
	struct macc_msg m;
	struct macc_errmsg e;

	if (macc_msg_decode(f, n, c->dec.max, &m, &e) == 0 && m.type == MACC_MSG_BYE) {
		log_bye(c, &m.u.bye);
		conn_close(c, "peer said bye");
	}
}

void session_frame(struct conn *c, const uint8_t *p, size_t len)
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
		if (c->state == CONN_RETIRED) {
			macc_debug(c->peer->name, "STATE for round %llu read from a retired duplicate "
				   "session", (unsigned long long)st->round);
		}
		c->peer->state_bytes_in += MACC_FRAME_HDR + len;
		a->edge.bytes_in += MACC_FRAME_HDR + len;
		agent_on_state(c->peer, st, &c->session);
		return;
	}
	case MACC_MSG_STATS:
		handle_stats(c, &m.u.stats);
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

