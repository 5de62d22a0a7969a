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
 * processed (state CLOSING, agent.h): frames already buffered or arriving in the same read are
 * dropped, so a HELLO_ACK sent right behind a refused HELLO can never adopt a session. A shut
 * connection that does not close within SHUT_TIMEOUT_MS is closed.
 *
 * States. A connection is in exactly one state of enum conn_state (agent.h: connecting, hello,
 * awaiting the ACK, up, retired, closing, closed); session.c has one enter_<state>() each, which
 * arms the state's deadline (handshake, drain, flush), and conn_deadline() says what a passed
 * deadline does. The tick (peers_tick) only compares deadlines and sends keepalive PINGs.
 *
 * Liveness. Any byte from a peer refreshes its last_rx; the 250 ms tick sends PING on sessions
 * idle for KEEPALIVE_MS and declares a peer dead after dead_peer_timeout without traffic (the
 * round logic stops waiting for it). PONG gives the RTT. A peer whose adopted session went down
 * (after one was up) cannot deliver a state before it reconnects: the rounds wait for it
 * reconnect_grace_ms after the loss and then not until a session is adopted again (peer_gone).
 *
 * Rates (config max_rate, [agent] and per peer). The send path paces writes through token
 * buckets (conn.c, pacer.h); the tick measures the bytes handed to the sessions per second
 * (status and peers show it).
 *
 * Sealing (config encrypt = yes). Every frame received goes through
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

#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS 5000
#include "session.h"

/* ---- dialing --------------------------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	struct peer *p = c->peer;

	if (c->state == CONN_CLOSED) {
		return;
	}
	if (status < 0) {
		if (macc_ratelimit_ok(&p->rl_dial, p->name)) {
			macc_debug(p->name, "connect to %s failed: %s", c->addr, uv_strerror(status));
		}
		conn_close(c, uv_strerror(status));
		return;
	}
	conn_enter_hello(c);
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
		if (c->peer == p && c->state != CONN_CLOSED) {
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
	rc = uv_getaddrinfo(a->loop, &p->gai, on_resolved, p->endpoint.host, port, &hints);
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

void peer_schedule(struct peer *p)
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

/* A configured neighbour in memory only (no handle yet: freed with peer_free). */
struct peer *peer_new(struct macc_agent *a, const struct macc_config_peer *cp)
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
	macc_pacer_init(&p->pacer, uv_hrtime()); /* its rate: peers_set_rates (conn.c) */
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
	return p;
}

/* Its handles (cannot fail): from now on it is freed only after peer_remove closed them. */
void peer_attach(struct peer *p)
{
	uv_timer_init(p->agent->loop, &p->reconnect_timer);
	p->reconnect_timer.data = p;
	p->timer_init = true;
	p->open_handles = 1;
}

struct peer *peer_create(struct macc_agent *a, const struct macc_config_peer *cp)
{
	struct peer *p = peer_new(a, cp);

	if (p != NULL) {
		peer_attach(p);
	}
	return p;
}

void peer_free(struct peer *p)
{
	slot_free(&p->cur);
	slot_free(&p->next);
	edge_peer_finish(p);
	free(p);
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
		if (c->peer == p && c->state != CONN_CLOSED) {
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
	conn_enter_hello(c);
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
	uv_tcp_init(a->loop, &a->listener);
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

/* ---- the tick -------------------------------------------------------------------------- */

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
		if (c->peer == p && (c->state == CONN_RETIRED || c->state == CONN_HELLO ||
				     c->state == CONN_AWAIT_ACK || c->state == CONN_UP)) {
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

void peers_tick(struct macc_agent *a)
{
	uint64_t now = macc_now_ms();
	uint64_t keepalive = a->cfg.dead_peer_timeout_ms / 4;
	bool changed = false;

	measure_rates(a, now); /* max_rate: status and peers show the measured send rate */
	if (keepalive > 2000) {
		keepalive = 2000;
	}
	for (struct conn *c = a->conns, *n; c != NULL; c = n) {
		n = c->next;
		if (c->state == CONN_CLOSED) {
			continue;
		}
		if (c->deadline_ms != 0 && now > c->deadline_ms) {
			conn_deadline(c); /* handshake, drain or flush: the state's own (session.c) */
			continue;
		}
		/* Ping every keepalive period even on a busy link: it keeps idle sessions alive and
		 * gives `macc-ctl peers` a round-trip time while training (STATE traffic alone never
		 * leaves the link quiet long enough for a keepalive). */
		if (c->state == CONN_UP && (now - c->last_tx_ms >= keepalive ||
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

