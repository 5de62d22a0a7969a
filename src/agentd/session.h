/*
 * session.h - what conn.c (a connection's bytes), session.c (one session's handshake, tie-break
 * and messages) and peer.c (the configured neighbours: dialing, listening, liveness) share;
 * internal to src/agentd. The design is written at the top of peer.c.
 */
#ifndef MACC_AGENTD_SESSION_H
#define MACC_AGENTD_SESSION_H

#include "agent.h"

#define HELLO_FRAME_MAX 4096
/* How long a retired duplicate session is still read for the STATE the peer sent on it before
 * it saw our BYE (it answers with its own BYE at once; this only bounds a peer that does not). */
#define DRAIN_TIMEOUT_MS 10000
/* How long a refused or closing connection may take to flush its BYE and close. */
#define SHUT_TIMEOUT_MS 5000

/* One write in flight on a connection. */
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


/* conn.c */
const char *conn_name(const struct conn *c);
struct conn *conn_new(struct macc_agent *a, struct peer *p, bool outbound);
void conn_start_reading(struct conn *c);
/* [agent] tcp_congestion on the connection's socket (no-op when unset); a refusal by the
 * kernel is logged once per algorithm, and the socket keeps the system's default. */
void conn_set_congestion(struct conn *c);
struct wreq *wreq_new(void);
int conn_send_sealed(struct conn *c, struct wreq *w);
int conn_send_buf(struct conn *c, struct wreq *w);
enum macc_ctl_connrej connrej_of(int code);
void conn_send_hello(struct conn *c);
void conn_send_bye(struct conn *c, int reason, const char *text);
void conn_reject(struct conn *c, int code, const char *what);
void conn_refused_unproven(struct conn *c, enum macc_ctl_connrej why, const char *what);
void conn_pq_drop(struct conn *c);
void conn_pq_flush(struct conn *c);

/* session.c */
void conn_close(struct conn *c, const char *why);
void conn_shutdown(struct conn *c);
void conn_refuse(struct conn *c, int reason, const char *text);
void conn_enter_hello(struct conn *c);
void conn_deadline(struct conn *c);
void session_frame(struct conn *c, const uint8_t *p, size_t len);
void session_shut_frame(struct conn *c, const uint8_t *f, size_t n);

/* peer.c */
void peer_schedule(struct peer *p);

#endif
