/*
 * adversary.c - a hostile but authenticated peer, for the fault suite (tests/faults).
 *
 * It holds a key that the target daemon allow-lists, so it completes a VALID handshake (it
 * copies the model hash, parameter count, algorithm and round from the daemon's own HELLO), and
 * then misbehaves in three phases:
 *
 *   1. mixed (--rounds R daemon rounds): on every STATE the daemon sends it (round k), it
 *      answers with a STATE for too few parameters, a truncated frame, a STATE for a round far
 *      in the future, then either a harmless echo of the daemon's own (x, v) followed by a
 *      byte-exact replay of that frame (even k), or a correctly signed STATE holding NaN in x /
 *      +Inf in the momentum (odd k), and last a forged signature (body changed after signing;
 *      a sealed daemon does not check signatures on receipt, so there it is refused as a
 *      replay of round k).
 *   2. ping flood (--flood-ms): PING frames as fast as the socket takes them.
 *   3. slow loris (--loris-ms): a frame header announcing a large STATE, a few bytes of it, then
 *      silence with the socket open.
 *
 * Against an encrypting daemon (its HELLO has MACC_HELLO_F_SEAL) it completes a SEALED handshake
 * and seals every hostile frame, so the attacks still reach the message layer (a replay there is
 * the same plaintext sealed again). `--seal yes|no` forces our side's setting instead of
 * following the daemon's (a mismatch the daemon must refuse). `--garbage` ends with a frame of
 * random bytes on the sealed session, which must fail to open (bad_signature, session closed).
 *
 * With `--duplicate` it is an honest peer whose two sessions race (phase_duplicate).
 *
 * With `--poison LIST` it does none of that: it is a correctly signed poisoning neighbour (issue
 * 12). For every round-k STATE the daemon sends it, it answers with a valid, signed STATE of
 * round k whose x (and momentum) is the daemon's own state under the next attack of LIST
 * (comma-separated, used in turn): `signflip` (-z) or `scale:S` (S * z). Robust mixing must
 * exclude these by distance and quarantine the sender; it runs for --rounds rounds and prints
 * "sent poison N".
 *
 * Hostile neighbours add:
 *   --pre-id ATTACK  one connection the daemon must refuse before identifying the peer, counted
 *                    by reason (phase_preid: version, garbage, oversize, silent, state-first,
 *                    claim:KEY, refused-ack);
 *   --flood N        N silent connections at once (max_unauthenticated);
 *   --hello-round R, --far-state D with --echo R: a neighbour that lies about its round in its
 *                    HELLO or in one STATE, then echoes the daemon's states;
 *   --no-read MS     a neighbour that sends a valid STATE every MS but never reads
 *                    (--cycles sessions in a row);
 *   --poison fill:V  states whose every value is V (finite, absurd);
 *   --name, --algo, --bye TEXT: strings of its choice in its HELLO and BYE (log injection);
 *   --ctl-flood SOCKET: N control clients as another user (--as-uid), each watching.
 * It answers the daemon's PINGs, as a real peer does.
 *
 * It prints what it sent, one "sent REASON COUNT" line per reason the daemon should count it
 * under (macc_errname names), and "phase NAME start|end" lines that the test script follows, to
 * stdout (line-buffered). Every wait is bounded; it exits 0 when every phase ran, 1 on a
 * handshake or socket failure, 2 on a usage error.
 *
 * usage: adversary --key FILE --connect HOST:PORT [--rounds R] [--flood-ms MS] [--loris-ms MS]
 *                  [--seal auto|yes|no] [--garbage] [--poison signflip|scale:S|fill:V[,...]]
 *                  [--duplicate] [--hello-round R] [--name S] [--algo S] [--bye TEXT]
 *                  [--echo R [--far-state D] [--hold-ms MS]] [--no-read MS [--cycles N]]
 *                  [--pre-id ATTACK] [--flood N [--hold-ms MS]]
 *        adversary --ctl-flood SOCKET [--clients N] [--hold-ms MS] [--as-uid UID]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "macc/buf.h"
#include "macc/crypto.h"
#include "macc/ctl.h"
#include "macc/err.h"
#include "macc/log.h"
#include "macc/proto.h"

#define IO_TIMEOUT_MS 20000
#define FUTURE_ROUND (UINT64_C(1) << 50)

struct adv {
	int fd;
	struct macc_identity id;
	struct macc_session s;
	struct macc_frame_decoder dec;
	uint8_t nonce[MACC_NONCE_BYTES];
	struct macc_hello peer_hello;
	size_t n;      /* parameter count */
	bool mom;      /* the algorithm sends momentum */
	float *x, *v;  /* the daemon's last state */
	int seal_mode; /* -1: follow the daemon, 0: never, 1: always */
	bool sealed;   /* the session is sealed */
	unsigned long garbage;
	uint64_t last_sent_round;
	bool have_sent;
	int64_t hello_round; /* round claimed in our HELLO; -1: the daemon's own */
	const char *name;    /* our HELLO's name (--name), NULL: "adversary" */
	const char *algo;    /* our HELLO's algorithm (--algo), NULL: the daemon's */
	uint8_t rbuf[1 << 16]; /* bytes read from fd, not yet fed to dec */
	size_t roff, rlen;
	/* counts of what was sent, by the reason the daemon should count it under */
	unsigned long forged, wrong_n, truncated, future, replays, nonfinite, echoes, pings;
	unsigned long poison;
};

static int send_all(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;

	while (n > 0) {
		ssize_t w = send(fd, q, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno == EAGAIN) {
				struct pollfd pf = {.fd = fd, .events = POLLOUT};
				if (poll(&pf, 1, IO_TIMEOUT_MS) <= 0) {
					return -ETIMEDOUT;
				}
				continue;
			}
			return -errno;
		}
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read until one whole frame is ready or timeout_ms passes. Returns 1 (frame in *ret),
 * 0 (timeout) or a negative error. */
static int read_frame(struct adv *a, int timeout_ms, uint8_t **ret, size_t *ret_len)
{
	uint64_t end = macc_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		while (a->roff < a->rlen) {
			size_t used = 0;
			int rc = macc_frame_decoder_feed(&a->dec, a->rbuf + a->roff,
							 a->rlen - a->roff, &used);
			if (rc < 0) {
				return rc;
			}
			a->roff += used;
			if (rc == 1) {
				*ret = macc_frame_decoder_take(&a->dec, ret_len);
				return 1;
			}
		}
		uint64_t now = macc_now_ms();
		if (now >= end) {
			return 0;
		}
		struct pollfd pf = {.fd = a->fd, .events = POLLIN};
		int pr = poll(&pf, 1, (int)(end - now));
		if (pr == 0) {
			return 0;
		}
		if (pr < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		ssize_t r = recv(a->fd, a->rbuf, sizeof(a->rbuf), 0);
		if (r == 0) {
			return MACC_ECLOSED;
		}
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				continue;
			}
			return -errno;
		}
		a->roff = 0;
		a->rlen = (size_t)r;
	}
}

static int dial(const char *hostport)
{
	char host[64];
	const char *colon = strrchr(hostport, ':');
	struct sockaddr_in sa;
	int fd, one = 1;

	if (colon == NULL || (size_t)(colon - hostport) >= sizeof(host)) {
		return -EINVAL;
	}
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		return -EINVAL;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* The valid handshake: both HELLOs, both proofs. */
static int handshake(struct adv *a)
{
	struct macc_buf out;
	struct macc_hello h;
	struct macc_msg m;
	struct macc_errmsg e;
	bool have_hello = false, proven = false;
	int rc;

	macc_buf_init(&out, 0);
	macc_random_bytes(a->nonce, sizeof(a->nonce));
	macc_session_init(&a->s, &a->id, a->nonce);
	while (!(have_hello && proven)) {
		uint8_t *f = NULL;
		size_t fl = 0;

		rc = read_frame(a, IO_TIMEOUT_MS, &f, &fl);
		if (rc <= 0) {
			fprintf(stderr, "adversary: handshake: %s\n",
				rc == 0 ? "timeout" : macc_strerror(rc));
			macc_buf_finish(&out);
			return rc == 0 ? MACC_ETIMEOUT : rc;
		}
		e.text[0] = '\0';
		rc = macc_session_open(&a->s, f, fl, &fl, &e);
		if (rc == 0) {
			rc = macc_msg_decode(f, fl, 0, &m, &e);
		}
		if (rc == 0 && m.type == MACC_MSG_HELLO && !have_hello) {
			a->peer_hello = m.u.hello;
			a->sealed = a->seal_mode < 0 ? (m.u.hello.flags & MACC_HELLO_F_SEAL) != 0
						     : a->seal_mode == 1;
			if (a->sealed && (rc = macc_session_enable_seal(&a->s, NULL, NULL)) < 0) {
				free(f);
				macc_buf_finish(&out);
				return rc;
			}
			/* Claim exactly the daemon's model and algorithm, and its round (unless
			 * --hello-round, --name or --algo say otherwise). */
			macc_hello_init(&h, &a->id, a->nonce, m.u.hello.model_hash, m.u.hello.nparams,
					a->algo != NULL ? a->algo : m.u.hello.algo,
					a->hello_round >= 0 ? (uint64_t)a->hello_round
							    : m.u.hello.round,
					2, a->name != NULL ? a->name : "adversary");
			/* Sealed or not as decided above: the attacks target the message layer. */
			macc_session_hello_prepare(&a->s, &h);
			rc = macc_hello_encode(&out, &h);
			/* Our HELLO goes out first, so the daemon judges it even when we refuse
			 * its HELLO ourselves (an encrypt mismatch, --seal). */
			if (rc == 0) {
				rc = send_all(a->fd, out.data, out.len);
				macc_buf_reset(&out);
			}
			if (rc == 0) {
				rc = macc_session_accept_hello(&a->s, &m.u.hello, &m.u.hello.key, 1,
							       &m.u.hello.key, m.u.hello.model_hash,
							       m.u.hello.nparams, m.u.hello.algo, &e);
				rc = rc < 0 ? rc : 0;
			}
			if (rc == 0) {
				rc = macc_session_ack_encode(&a->s, &out);
			}
			if (rc == 0) {
				rc = send_all(a->fd, out.data, out.len);
			}
			macc_buf_reset(&out);
			have_hello = true;
		} else if (rc == 0 && m.type == MACC_MSG_HELLO_ACK) {
			rc = macc_session_verify_ack(&a->s, &m.u.ack, &e);
			proven = rc == 0;
		} else if (rc == 0 && m.type == MACC_MSG_BYE) {
			fprintf(stderr, "adversary: daemon said bye: %s\n", m.u.bye.text);
			rc = MACC_ECLOSED;
		}
		free(f);
		if (rc == MACC_EENCRYPT) {
			/* Let the daemon read our HELLO and close first (bounded). */
			uint64_t end = macc_now_ms() + 5000;
			uint8_t junk[4096];
			struct pollfd pf = {.fd = a->fd, .events = POLLIN};

			while (macc_now_ms() < end) {
				if (poll(&pf, 1, 100) > 0 && recv(a->fd, junk, sizeof(junk), 0) <= 0) {
					break;
				}
			}
		}
		if (rc < 0) {
			fprintf(stderr, "adversary: handshake failed: %s %s\n", macc_strerror(rc),
				e.text);
			macc_buf_finish(&out);
			return rc;
		}
	}
	macc_buf_finish(&out);
	a->n = (size_t)a->peer_hello.nparams;
	a->mom = strcmp(a->peer_hello.algo, "dmsgd") == 0;
	macc_frame_decoder_set_max(&a->dec, macc_state_frame_max(a->n, true) + 1024);
	printf("handshake ok: daemon %s at round %llu, %zu parameters, algorithm %s, %s\n",
	       a->peer_hello.name, (unsigned long long)a->peer_hello.round, a->n,
	       a->peer_hello.algo, a->sealed ? "sealed" : "not sealed");
	return 0;
}

/* One STATE frame (prefix + body) for `round` with the given vectors, into `out`. */
static int state_frame(struct adv *a, uint64_t round, size_t n, const float *x, const float *v,
		       struct macc_buf *out)
{
	struct macc_state_body b;
	struct macc_state_prefix pre;
	struct macc_state_out so = {.round = round, .nparams = n, .x = x, .mom = v};
	int rc;

	memset(&b, 0, sizeof(b));
	macc_buf_init(&b.buf, 0);
	rc = macc_state_body_encode(&b, &so);
	if (rc == 0) {
		rc = macc_session_state_prefix(&a->s, &b, &pre);
	}
	if (rc == 0) {
		macc_buf_reset(out);
		rc = macc_buf_append(out, pre.bytes, pre.len);
	}
	if (rc == 0) {
		rc = macc_buf_append(out, b.buf.data, b.buf.len);
	}
	macc_state_body_finish(&b);
	return rc;
}

/* Seal the whole plaintext frame in f (a no-op on an unsealed session) and send it. */
static int send_frame(struct adv *a, struct macc_buf *f)
{
	int rc = macc_session_seal_frame(&a->s, f, 0);

	return rc < 0 ? rc : send_all(a->fd, f->data, f->len);
}

/* Answer one daemon round k with the attacks of phase 1. */
static int attack_round(struct adv *a, uint64_t k, struct macc_buf *f)
{
	const float *mom = a->mom ? a->v : NULL;
	int rc;

	/* Wrong size: a properly signed STATE for one parameter less. */
	if ((rc = state_frame(a, k, a->n - 1, a->x, mom, f)) < 0) {
		return rc;
	}
	if ((rc = send_frame(a, f)) < 0) {
		return rc;
	}
	a->wrong_n++;
	/* Truncated: the last 100 bytes cut off, frame length adjusted (bins overrun). */
	if ((rc = state_frame(a, k, a->n, a->x, mom, f)) < 0) {
		return rc;
	}
	f->len -= 100;
	macc_put_be32(f->data, (uint32_t)(f->len - MACC_FRAME_HDR));
	if ((rc = send_frame(a, f)) < 0) {
		return rc;
	}
	a->truncated++;
	/* From the future: correctly signed, round far beyond any run. */
	if ((rc = state_frame(a, FUTURE_ROUND + k, a->n, a->x, mom, f)) < 0) {
		return rc;
	}
	if ((rc = send_frame(a, f)) < 0) {
		return rc;
	}
	a->future++;
	if (a->have_sent && k <= a->last_sent_round) {
		/* this round was used already (the daemon repeated it) */
	} else if (k % 2 == 0) {
		/* Echo the daemon's own state (harmless), then replay that very frame. */
		if ((rc = state_frame(a, k, a->n, a->x, mom, f)) < 0) {
			return rc;
		}
		struct macc_buf copy;

		macc_buf_init(&copy, 0);
		rc = macc_buf_append(&copy, f->data, f->len);
		if (rc < 0 || (rc = send_frame(a, f)) < 0) {
			macc_buf_finish(&copy);
			return rc;
		}
		a->echoes++;
		/* Byte-exact on a plain session; sealed, the same plaintext sealed again (a
		 * byte-exact copy would not even open). */
		rc = send_frame(a, &copy);
		macc_buf_finish(&copy);
		if (rc < 0) {
			return rc;
		}
		a->replays++;
	} else {
		/* Correctly signed, non-finite values: NaN in x, +Inf in the momentum. */
		float keep_x = a->x[k % a->n], keep_v = a->mom ? a->v[(k * 7) % a->n] : 0.0f;
		a->x[k % a->n] = NAN;
		if (a->mom) {
			a->v[(k * 7) % a->n] = INFINITY;
		}
		rc = state_frame(a, k, a->n, a->x, mom, f);
		a->x[k % a->n] = keep_x;
		if (a->mom) {
			a->v[(k * 7) % a->n] = keep_v;
		}
		if (rc < 0 || (rc = send_frame(a, f)) < 0) {
			return rc;
		}
		a->nonfinite++;
	}
	a->last_sent_round = k;
	a->have_sent = true;
	/* Forged, last: the body is changed after it was signed, for round k, which the daemon
	 * has taken already. A plain daemon checks the signature first (bad_signature); a sealed
	 * one does not check it on receipt (the AEAD authenticated the frame as ours, proto.h),
	 * so the round rule refuses it (replay): either way nothing of it is used. */
	if ((rc = state_frame(a, k, a->n, a->x, mom, f)) < 0) {
		return rc;
	}
	f->data[f->len - 5] ^= 0x40;
	if ((rc = send_frame(a, f)) < 0) {
		return rc;
	}
	a->forged++;
	return 0;
}

/* Handle one frame from the daemon; returns the STATE round in *ret_round (or -1). */
static int on_frame(struct adv *a, uint8_t *f, size_t fl, int64_t *ret_round)
{
	struct macc_msg m;
	struct macc_errmsg e;
	int rc;

	*ret_round = -1;
	e.text[0] = '\0';
	rc = macc_session_open(&a->s, f, fl, &fl, &e);
	if (rc < 0) {
		fprintf(stderr, "adversary: daemon frame does not open: %s\n", e.text);
		return rc;
	}
	rc = macc_msg_decode(f, fl, 0, &m, &e);
	if (rc < 0) {
		return 0; /* not ours to judge */
	}
	if (m.type == MACC_MSG_BYE) {
		fprintf(stderr, "adversary: daemon said bye: %s\n", m.u.bye.text);
		return MACC_ECLOSED;
	}
	if (m.type == MACC_MSG_PING) {
		/* Keepalive, as a real peer answers it (so the session outlives a quiet phase). */
		struct macc_buf b;

		macc_buf_init(&b, 0);
		rc = macc_ping_encode(&b, MACC_MSG_PONG, &m.u.ping);
		if (rc == 0) {
			rc = send_frame(a, &b);
		}
		macc_buf_finish(&b);
		return rc < 0 ? rc : 0;
	}
	if (m.type == MACC_MSG_STATE && m.u.state.nparams == a->n &&
	    macc_session_accept_state(&a->s, &m.u.state, a->n, &e) == 0) {
		macc_f32le_load(a->x, m.u.state.x, a->n);
		if (a->mom && m.u.state.mom != NULL) {
			macc_f32le_load(a->v, m.u.state.mom, a->n);
		}
		*ret_round = (int64_t)m.u.state.round;
	}
	return 0;
}

/* Read the daemon's next frame (bounded) and take it in with on_frame. */
static int next_frame(struct adv *a, int64_t *ret_round)
{
	uint8_t *in = NULL;
	size_t fl = 0;
	int rc = read_frame(a, IO_TIMEOUT_MS, &in, &fl);

	*ret_round = -1;
	if (rc <= 0) {
		return rc == 0 ? MACC_ETIMEOUT : rc;
	}
	rc = on_frame(a, in, fl, ret_round);
	free(in);
	return rc;
}

static int phase_mixed(struct adv *a, unsigned rounds)
{
	struct macc_buf f;
	unsigned done = 0;
	uint64_t end = macc_now_ms() + 120000;
	int rc = 0;

	macc_buf_init(&f, 0);
	printf("phase mixed start\n");
	while (done < rounds && macc_now_ms() < end) {
		int64_t r;

		rc = next_frame(a, &r);
		if (rc < 0) {
			break;
		}
		if (r >= 0) {
			rc = attack_round(a, (uint64_t)r, &f);
			if (rc < 0) {
				break;
			}
			done++;
		}
	}
	macc_buf_finish(&f);
	printf("phase mixed end: %u rounds\n", done);
	if (rc < 0) {
		fprintf(stderr, "adversary: mixed phase: %s\n", macc_strerror(rc));
		return rc;
	}
	return done == rounds ? 0 : MACC_ETIMEOUT;
}

#define POISON_MAX 8

/* Parse "signflip" / "scale:S" / "fill:V" items separated by commas into factors (-1 for
 * signflip); fill:V (every value V, finite and absurd) is kept as a factor with
 * fill[i] set. */
static int parse_poison(const char *spec, double *f, bool *fill, int *ret_n)
{
	char buf[256], *save = NULL, *tok;
	int n = 0;

	if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf)) {
		return -1;
	}
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		char *end = NULL;

		if (n == POISON_MAX) {
			return -1;
		}
		fill[n] = false;
		if (strcmp(tok, "signflip") == 0) {
			f[n++] = -1.0;
		} else if (strncmp(tok, "scale:", 6) == 0 || strncmp(tok, "fill:", 5) == 0) {
			const char *num = tok[0] == 's' ? tok + 6 : tok + 5;

			fill[n] = tok[0] == 'f';
			f[n] = strtod(num, &end);
			if (end == num || *end != '\0' || !isfinite(f[n])) {
				return -1;
			}
			n++;
		} else {
			return -1;
		}
	}
	*ret_n = n;
	return n > 0 ? 0 : -1;
}

/* More of the daemon's bytes are already here (buffered or readable now): a newer frame. */
static bool more_pending(const struct adv *a)
{
	struct pollfd pf = {.fd = a->fd, .events = POLLIN};

	return a->rlen > a->roff || poll(&pf, 1, 0) > 0;
}

/* Answer each daemon round with a correctly signed, poisoned state of that round. A quarantined
 * neighbour is not waited for, so the daemon may run rounds faster than this process answers
 * them on a loaded machine: it answers only the newest round it has read, as a neighbour that
 * keeps up would, instead of falling behind until the daemon drops it as slow. */
static int phase_poison(struct adv *a, unsigned rounds, const double *f, const bool *fill, int nf)
{
	struct macc_buf fr;
	unsigned done = 0;
	uint64_t end = macc_now_ms() + 120000;
	float *px = calloc(a->n, sizeof(float)), *pv = calloc(a->n, sizeof(float));
	int rc = 0;

	macc_buf_init(&fr, 0);
	if (px == NULL || pv == NULL) {
		rc = -ENOMEM;
	}
	printf("phase poison start\n");
	while (rc == 0 && done < rounds && macc_now_ms() < end) {
		int64_t r;
		float s;

		rc = next_frame(a, &r);
		if (rc < 0 || r < 0 || (a->have_sent && (uint64_t)r <= a->last_sent_round) ||
		    more_pending(a)) {
			continue;
		}
		s = (float)f[done % (unsigned)nf];
		for (size_t i = 0; i < a->n; i++) {
			px[i] = fill[done % (unsigned)nf] ? s : s * a->x[i];
			pv[i] = fill[done % (unsigned)nf] ? s : s * a->v[i];
		}
		rc = state_frame(a, (uint64_t)r, a->n, px, a->mom ? pv : NULL, &fr);
		if (rc == 0) {
			rc = send_frame(a, &fr);
		}
		if (rc == 0) {
			a->poison++;
			a->last_sent_round = (uint64_t)r;
			a->have_sent = true;
			done++;
		}
	}
	macc_buf_finish(&fr);
	free(px);
	free(pv);
	printf("phase poison end: %u rounds\n", done);
	if (rc < 0) {
		fprintf(stderr, "adversary: poison phase: %s\n", macc_strerror(rc));
		return rc;
	}
	return done == rounds ? 0 : MACC_ETIMEOUT;
}

/* --duplicate: not hostile, an honest peer whose two sessions race (the daemon's choice between
 * duplicate sessions). On session A it waits for the daemon's STATE of some round k; it opens
 * session B claiming round k+1 in its HELLO (a peer that had the daemon's round-k state and moved
 * on); the daemon keeps the newer session B and retires A with a BYE. Only after that BYE (and
 * 300 ms more) does it send its own STATE for round k on A (an echo of the daemon's), then its
 * BYE: a STATE the peer sent before it saw the daemon's BYE, delayed on the way. The daemon must read it from the retired session
 * and mix it, not drop it and fold the peer out of round k. Then it echoes the daemon's rounds
 * after k on B for `rounds` rounds. Prints "duplicate round K" and "sent retired-state 1". */
static int phase_duplicate(struct adv *a, const char *target, unsigned rounds)
{
	struct adv *b = calloc(1, sizeof(*b));
	struct macc_buf f;
	uint64_t end = macc_now_ms() + 120000;
	int64_t k = -1, r = -1;
	unsigned done = 0;
	int rc = 0;

	macc_buf_init(&f, 0);
	if (b == NULL) {
		return -ENOMEM;
	}
	b->fd = -1;
	printf("phase duplicate start\n");
	/* 1. The daemon's STATE for round k on A. */
	while (rc == 0 && k < 0 && macc_now_ms() < end) {
		rc = next_frame(a, &k);
	}
	/* 2. Session B, claiming round k+1: the daemon retires A. */
	if (rc == 0 && k >= 0) {
		printf("duplicate round %lld\n", (long long)k);
		b->id = a->id;
		b->seal_mode = a->seal_mode;
		b->hello_round = k + 1;
		macc_frame_decoder_init(&b->dec, MACC_FRAME_MAX_HANDSHAKE);
		b->fd = dial(target);
		rc = b->fd < 0 ? b->fd : handshake(b);
	}
	if (rc == 0) {
		b->x = calloc(b->n, sizeof(float));
		b->v = calloc(b->n, sizeof(float));
		rc = b->x == NULL || b->v == NULL ? -ENOMEM : 0;
	}
	/* 3. The daemon's BYE on A (its STATEs and PINGs there are skipped). */
	while (rc == 0 && macc_now_ms() < end) {
		int64_t ignored;

		rc = next_frame(a, &ignored);
		if (rc == MACC_ECLOSED) {
			rc = 0;
			break; /* the BYE: A is retired */
		}
	}
	/* 4. Our round-k STATE on the retired session, then our BYE. It was "in flight": 300 ms
	 * late, so a daemon that stops reading once its BYE is out has surely closed A by now. */
	if (rc == 0) {
		poll(NULL, 0, 300);
		rc = state_frame(a, (uint64_t)k, a->n, a->x, a->mom ? a->v : NULL, &f);
	}
	if (rc == 0 && (rc = send_frame(a, &f)) == 0) {
		printf("sent retired-state 1\n");
		macc_buf_reset(&f);
		rc = macc_bye_encode(&f, 0, "duplicate session");
	}
	if (rc == 0) {
		rc = send_frame(a, &f);
	}
	/* 5. Echo the daemon's rounds after k on B (the daemon re-sends round k there too). */
	while (rc == 0 && done < rounds && macc_now_ms() < end) {
		rc = next_frame(b, &r);
		if (rc < 0 || r <= k || (b->have_sent && (uint64_t)r <= b->last_sent_round)) {
			continue;
		}
		rc = state_frame(b, (uint64_t)r, b->n, b->x, b->mom ? b->v : NULL, &f);
		if (rc == 0) {
			rc = send_frame(b, &f);
		}
		if (rc == 0) {
			b->last_sent_round = (uint64_t)r;
			b->have_sent = true;
			b->echoes++;
			done++;
		}
	}
	printf("phase duplicate end: %u rounds on the new session\n", done);
	macc_buf_finish(&f);
	if (b->fd >= 0) {
		close(b->fd);
	}
	free(b->x);
	free(b->v);
	macc_frame_decoder_finish(&b->dec);
	macc_session_finish(&b->s);
	free(b);
	if (rc < 0) {
		fprintf(stderr, "adversary: duplicate phase: %s\n", macc_strerror(rc));
		return rc;
	}
	return done == rounds ? 0 : MACC_ETIMEOUT;
}

/* Drain whatever the daemon sent, without blocking. */
static void drain(struct adv *a)
{
	uint8_t junk[1 << 16];

	while (recv(a->fd, junk, sizeof(junk), MSG_DONTWAIT) > 0) {
	}
}

static int phase_flood(struct adv *a, unsigned ms)
{
	struct macc_buf b;
	uint64_t end = macc_now_ms() + ms;
	unsigned per = 0;
	int rc = 0;

	macc_buf_init(&b, 0);
	printf("phase flood start\n");
	while (macc_now_ms() < end) {
		/* ~64 KB of PINGs per write, each sealed on its own (so rebuilt every time). */
		macc_buf_reset(&b);
		per = 0;
		while (rc == 0 && b.len < (64u << 10)) {
			struct macc_ping p = {.seq = per + 1, .time_ns = macc_now_ns()};
			size_t start = b.len;

			rc = macc_ping_encode(&b, MACC_MSG_PING, &p);
			if (rc == 0) {
				rc = macc_session_seal_frame(&a->s, &b, start);
			}
			per++;
		}
		if (rc < 0) {
			break;
		}
		rc = send_all(a->fd, b.data, b.len);
		if (rc < 0) {
			break;
		}
		a->pings += per;
		drain(a);
	}
	macc_buf_finish(&b);
	printf("phase flood end: %lu pings\n", a->pings);
	return rc;
}

static int phase_loris(struct adv *a, unsigned ms)
{
	uint8_t half[4 + 64];
	uint64_t end = macc_now_ms() + ms;

	/* A frame announcing a whole STATE, of which only 64 bytes ever come. */
	macc_put_be32(half, (uint32_t)(macc_state_frame_max(a->n, a->mom) - 16));
	memset(half + 4, 0x82, sizeof(half) - 4);
	drain(a);
	if (send_all(a->fd, half, sizeof(half)) < 0) {
		return MACC_ECLOSED;
	}
	printf("phase loris start\n");
	while (macc_now_ms() < end) {
		drain(a);
		usleep(50000);
	}
	printf("phase loris end\n");
	return 0;
}

/* A frame of random bytes on the sealed session: it cannot open, the daemon must close. */
static int phase_garbage(struct adv *a)
{
	uint8_t fr[4 + 200];
	uint64_t end = macc_now_ms() + 10000;

	macc_put_be32(fr, (uint32_t)(sizeof(fr) - 4));
	macc_random_bytes(fr + 4, sizeof(fr) - 4);
	printf("phase garbage start\n");
	if (send_all(a->fd, fr, sizeof(fr)) < 0) {
		return MACC_ECLOSED;
	}
	a->garbage++;
	/* Wait for the daemon to close the connection. */
	while (macc_now_ms() < end) {
		uint8_t junk[1 << 16];
		struct pollfd pf = {.fd = a->fd, .events = POLLIN};

		if (poll(&pf, 1, 100) > 0 && recv(a->fd, junk, sizeof(junk), 0) <= 0) {
			printf("phase garbage end: closed by the daemon\n");
			return 0;
		}
	}
	fprintf(stderr, "adversary: the daemon kept the session after a garbage sealed frame\n");
	return MACC_ETIMEOUT;
}

/* ---- attacks on the handshake, the round, the send queue and the control socket ---- */

/* Wait (bounded) until the daemon closes the connection; true when it did. Whatever arrives is
 * read and thrown away. */
static bool wait_closed(int fd, unsigned ms)
{
	uint64_t end = macc_now_ms() + ms;
	uint8_t junk[1 << 16];

	while (macc_now_ms() < end) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};

		if (poll(&pf, 1, 100) > 0) {
			ssize_t r = recv(fd, junk, sizeof(junk), 0);

			if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
				return true;
			}
		}
	}
	return false;
}

/* Read the daemon's HELLO (the first frame on every connection) into *ret. */
static int read_hello(struct adv *a, struct macc_hello *ret)
{
	uint8_t *f = NULL;
	size_t fl = 0;
	struct macc_msg m;
	int rc = read_frame(a, IO_TIMEOUT_MS, &f, &fl);

	if (rc <= 0) {
		return rc == 0 ? MACC_ETIMEOUT : rc;
	}
	rc = macc_msg_decode(f, fl, 0, &m, NULL);
	free(f);
	if (rc == 0 && m.type != MACC_MSG_HELLO) {
		rc = MACC_EMALFORMED;
	}
	if (rc == 0) {
		*ret = m.u.hello;
	}
	return rc;
}

/* Our HELLO for the daemon's `dh`, as a frame appended to out; `round` is the round it claims. */
static int hello_for(struct adv *a, const struct macc_hello *dh, uint64_t round,
		     struct macc_buf *out)
{
	struct macc_hello h;

	macc_hello_init(&h, &a->id, a->nonce, dh->model_hash, dh->nparams,
			a->algo != NULL ? a->algo : dh->algo, round, 2,
			a->name != NULL ? a->name : "adversary");
	macc_session_hello_prepare(&a->s, &h);
	return macc_hello_encode(out, &h);
}

/* Replace the first occurrence of `from` (n bytes) in buf by `to`. */
static bool patch(struct macc_buf *b, const uint8_t *from, const uint8_t *to, size_t n)
{
	for (size_t i = 0; i + n <= b->len; i++) {
		if (memcmp(b->data + i, from, n) == 0) {
			memcpy(b->data + i, to, n);
			return true;
		}
	}
	return false;
}

/*
 * One connection that the daemon must refuse before the peer is identified (--pre-id ATTACK).
 * The daemon must count it under the reason printed as "expect REASON", close the connection
 * and stay up; exit 0 when it closed the connection in time, 1 otherwise.
 *   version      a HELLO of protocol version 99                        version
 *   garbage      a frame of random bytes instead of a HELLO            malformed
 *   oversize     a frame header announcing 1 MiB before the handshake  malformed
 *   silent       nothing at all, until the handshake deadline          timeout
 *   state-first  a valid HELLO, then a STATE before our proof          unproven_state
 *   claim:KEY    a HELLO naming another peer's KEY (base64), whose proof we cannot make,
 *                then our own proof with that key written in           bad_proof
 *   refused-ack  a HELLO announcing a round past any run, and in the same write a correctly
 *                signed HELLO_ACK (the daemon refuses the HELLO and must not adopt the
 *                session the ACK completes: the hostile-peer crash)         replay
 */
/* pre-id "version": our HELLO with protocol version 99. */
static int preid_version(struct adv *a, const struct macc_hello *dh, struct macc_buf *out)
{
	static const uint8_t v2[4] = {0xa3, 'v', 'e', 'r'};
	int rc = hello_for(a, dh, dh->round, out);

	/* "ver" is followed by its value, the fixint 2: make it 99. */
	for (size_t i = 0; rc == 0 && i + 5 <= out->len; i++) {
		if (memcmp(out->data + i, v2, 4) == 0 && out->data[i + 4] == 2) {
			out->data[i + 4] = 99;
			return 0;
		}
	}
	return rc < 0 ? rc : -EINVAL;
}

/* pre-id "garbage" (a frame of random bytes) or "oversize" (a header announcing 1 MiB). */
static int preid_garbage(bool oversize, struct macc_buf *out)
{
	uint8_t fr[4 + 100] = {0};

	if (oversize) {
		macc_put_be32(fr, 1u << 20);
		return macc_buf_append(out, fr, 4 + 16);
	}
	macc_put_be32(fr, 100);
	macc_random_bytes(fr + 4, 100);
	fr[4] = 0xc1; /* never valid msgpack */
	return macc_buf_append(out, fr, sizeof(fr));
}

/* pre-id "state-first" (a valid HELLO, then a STATE) or "refused-ack" (a HELLO past any run,
 * then a correctly signed HELLO_ACK), each in one buffer. */
static int preid_hello_then(struct adv *a, const struct macc_hello *dh, bool refused,
			    struct macc_buf *out)
{
	struct macc_buf st;
	float *z;
	int rc = hello_for(a, dh, refused ? UINT64_C(1) << 62 : dh->round, out);

	if (rc == 0) {
		rc = macc_session_accept_hello(&a->s, dh, &dh->key, 1, &dh->key, dh->model_hash,
					       dh->nparams, dh->algo, NULL);
		rc = rc < 0 ? rc : 0;
	}
	if (rc < 0 || refused) {
		return rc < 0 ? rc : macc_session_ack_encode(&a->s, out);
	}
	z = calloc(dh->nparams, sizeof(float));
	macc_buf_init(&st, 0);
	rc = z == NULL ? -ENOMEM
		       : state_frame(a, dh->round, dh->nparams, z,
				     strcmp(dh->algo, "dmsgd") == 0 ? z : NULL, &st);
	if (rc == 0) {
		rc = macc_buf_append(out, st.data, st.len);
	}
	macc_buf_finish(&st);
	free(z);
	return rc;
}

/* pre-id "claim:KEY": a HELLO naming KEY (we cannot sign for it), then a proof signed with our
 * own key with KEY written in. */
static int preid_claim(struct adv *a, const struct macc_hello *dh, const char *b64,
		       struct macc_buf *out)
{
	struct macc_pubkey claimed, own = a->id.pub;
	struct macc_hello h;
	size_t at;
	int rc = macc_pubkey_from_b64(&claimed, b64, NULL);

	if (rc == 0) {
		macc_hello_init(&h, &a->id, a->nonce, dh->model_hash, dh->nparams, dh->algo,
				dh->round, 2, a->name != NULL ? a->name : "adversary");
		h.key = claimed;
		macc_session_hello_prepare(&a->s, &h);
		rc = macc_hello_encode(out, &h);
	}
	if (rc == 0) {
		rc = macc_session_accept_hello(&a->s, dh, &dh->key, 1, &dh->key, dh->model_hash,
					       dh->nparams, dh->algo, NULL);
		rc = rc < 0 ? rc : 0;
	}
	at = out->len;
	if (rc == 0) {
		rc = macc_session_ack_encode(&a->s, out);
	}
	if (rc == 0) {
		struct macc_buf ack = {.data = out->data + at, .len = out->len - at};

		rc = patch(&ack, own.bytes, claimed.bytes, MACC_PUBKEY_BYTES) ? 0 : -EINVAL;
	}
	return rc;
}

/*
 * One connection that the daemon must refuse before the peer is identified (--pre-id ATTACK).
 * The daemon must count it under the reason printed as "expect REASON", close the connection
 * and stay up; exit 0 when it closed the connection in time, 1 otherwise.
 *   version      a HELLO of protocol version 99                        version
 *   garbage      a frame of random bytes instead of a HELLO            malformed
 *   oversize     a frame header announcing 1 MiB before the handshake  malformed
 *   silent       nothing at all, until the handshake deadline          timeout
 *   state-first  a valid HELLO, then a STATE before our proof          unproven_state
 *   claim:KEY    a HELLO naming another peer's KEY (base64), whose proof we cannot make,
 *                then our own proof with that key written in           bad_proof
 *   refused-ack  a HELLO announcing a round past any run, and in the same write a correctly
 *                signed HELLO_ACK (the daemon refuses the HELLO and must not adopt the
 *                session the ACK completes: the hostile-peer crash)         replay
 */
static int phase_preid(struct adv *a, const char *attack)
{
	struct macc_hello dh;
	struct macc_buf out;
	const char *expect = NULL;
	int rc;

	macc_buf_init(&out, 0);
	macc_random_bytes(a->nonce, sizeof(a->nonce));
	macc_session_init(&a->s, &a->id, a->nonce);
	rc = read_hello(a, &dh);
	if (rc == 0 && (dh.flags & MACC_HELLO_F_SEAL) != 0) {
		rc = macc_session_enable_seal(&a->s, NULL, NULL);
	}
	if (rc < 0) {
		fprintf(stderr, "adversary: no HELLO from the daemon: %s\n", macc_strerror(rc));
		macc_buf_finish(&out);
		return rc;
	}
	if (strcmp(attack, "version") == 0) {
		rc = preid_version(a, &dh, &out);
		expect = "version";
	} else if (strcmp(attack, "garbage") == 0 || strcmp(attack, "oversize") == 0) {
		rc = preid_garbage(attack[0] == 'o', &out);
		expect = "malformed";
	} else if (strcmp(attack, "silent") == 0) {
		expect = "timeout";
	} else if (strcmp(attack, "state-first") == 0 || strcmp(attack, "refused-ack") == 0) {
		rc = preid_hello_then(a, &dh, attack[0] == 'r', &out);
		expect = attack[0] == 'r' ? "replay" : "unproven_state";
	} else if (strncmp(attack, "claim:", 6) == 0) {
		rc = preid_claim(a, &dh, attack + 6, &out);
		expect = "bad_proof";
	} else {
		rc = -EINVAL;
	}
	if (rc == 0 && out.len > 0) {
		/* One write: the daemon reads it at once. */
		rc = send_all(a->fd, out.data, out.len);
	}
	macc_buf_finish(&out);
	if (rc < 0) {
		fprintf(stderr, "adversary: pre-id attack '%s': %s\n", attack, macc_strerror(rc));
		return rc;
	}
	printf("sent pre-id %s\nexpect %s\n", attack, expect);
	if (!wait_closed(a->fd, 30000)) {
		fprintf(stderr, "adversary: the daemon kept the connection after '%s'\n", attack);
		return MACC_ETIMEOUT;
	}
	printf("closed by the daemon\n");
	return 0;
}

/* --flood N: N connections that never send a byte, held for hold_ms; prints how many the daemon
 * closed before that (it refuses those beyond max_unauthenticated at once). */
static int phase_conn_flood(const char *target, unsigned n, unsigned hold_ms)
{
	int *fds = calloc(n, sizeof(int));
	unsigned opened = 0, closed = 0;
	uint64_t end;

	if (fds == NULL) {
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		fds[i] = dial(target);
		opened += fds[i] >= 0;
	}
	printf("flood open %u\n", opened);
	end = macc_now_ms() + hold_ms;
	while (macc_now_ms() < end) {
		poll(NULL, 0, 50);
	}
	for (unsigned i = 0; i < n; i++) {
		uint8_t junk[4096];
		ssize_t r;

		if (fds[i] < 0) {
			continue;
		}
		/* Closed by the daemon: EOF (or a reset) after its HELLO. */
		while ((r = recv(fds[i], junk, sizeof(junk), MSG_DONTWAIT)) > 0) {
		}
		closed += r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
		close(fds[i]);
	}
	free(fds);
	printf("flood closed-early %u\n", closed);
	return opened > 0 ? 0 : MACC_ECLOSED;
}

/*
 * --no-read PERIOD_MS: a peer that sends but never reads. Per cycle (--cycles): a valid
 * handshake, the daemon's first STATE read (its round r and x), then never another byte read:
 * every PERIOD_MS a valid STATE of the next round (an echo of x), for at most `rounds` rounds or
 * until the daemon drops the session (a send fails); then the next cycle reconnects. The daemon
 * must drop it (reason slow) with its memory bounded, and train on with the others. Prints
 * "cycle K dropped|kept after N states" and "sent slow_cycles C".
 */
static int phase_no_read(struct adv *a, const char *target, unsigned period_ms, unsigned cycles,
			 unsigned rounds)
{
	struct macc_buf f;
	unsigned dropped = 0;
	int rc = 0;

	macc_buf_init(&f, 0);
	for (unsigned cy = 0; cy < cycles && rc == 0; cy++) {
		int64_t r = -1;
		unsigned sent = 0;
		bool gone = false;
		uint64_t end = macc_now_ms() + 120000;

		if (cy > 0) {
			/* A fresh connection and session (the daemon dropped or kept the last). */
			close(a->fd);
			macc_session_finish(&a->s);
			macc_frame_decoder_finish(&a->dec);
			macc_frame_decoder_init(&a->dec, MACC_FRAME_MAX_HANDSHAKE);
			a->roff = a->rlen = 0;
			a->have_sent = false;
			poll(NULL, 0, 300);
			a->fd = dial(target);
			rc = a->fd < 0 ? a->fd : handshake(a);
		}
		while (rc == 0 && r < 0 && macc_now_ms() < end) {
			rc = next_frame(a, &r);
		}
		while (rc == 0 && r >= 0 && sent < rounds && !gone) {
			rc = state_frame(a, (uint64_t)r + sent, a->n, a->x, a->mom ? a->v : NULL,
					 &f);
			if (rc == 0 && send_frame(a, &f) < 0) {
				gone = true;
			}
			sent++;
			poll(NULL, 0, (int)period_ms);
		}
		dropped += gone;
		printf("cycle %u %s after %u states\n", cy + 1, gone ? "dropped" : "kept", sent);
	}
	macc_buf_finish(&f);
	printf("sent slow_cycles %u\nsent slow_dropped %u\n", cycles, dropped);
	return rc;
}

/*
 * --ctl-flood SOCKET: --clients N control connections as another user (--as-uid UID; the
 * socket's group is kept as a supplementary group so the 0660 socket lets it in), each of which
 * sends a `watch` request (watchers are exempt from the idle timeout) and holds on for
 * --hold-ms. Prints "ctl connected N busy B" once all are in, then holds. The daemon must keep
 * control_reserved_clients slots for root and its own user whatever these do.
 */
static int phase_ctl_flood(const char *path, unsigned n, unsigned hold_ms, long as_uid)
{
	struct sockaddr_un sa;
	struct stat stt;
	int *fds = calloc(n, sizeof(int));
	unsigned ok = 0, busy = 0;
	uint64_t end;

	if (fds == NULL || strlen(path) >= sizeof(sa.sun_path) || stat(path, &stt) < 0) {
		free(fds);
		return -EINVAL;
	}
	if (as_uid >= 0) {
		gid_t g = stt.st_gid;

		if (setgroups(1, &g) < 0 || setgid((gid_t)as_uid) < 0 ||
		    setuid((uid_t)as_uid) < 0) {
			fprintf(stderr, "adversary: cannot become uid %ld: %s\n", as_uid,
				strerror(errno));
			free(fds);
			return -errno;
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	for (unsigned i = 0; i < n; i++) {
		struct macc_ctl_request req = {.v = MACC_CTL_PROTO_VERSION, .id = i + 1,
					       .cmd = MACC_CTL_CMD_WATCH};
		struct macc_buf b;
		uint8_t reply[4096];
		ssize_t got;

		fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			fprintf(stderr, "adversary: control connect: %s\n", strerror(errno));
			continue;
		}
		macc_buf_init(&b, 0);
		if (macc_ctl_request_encode(&req, &b) == 0) {
			(void)send_all(fds[i], b.data, b.len);
		}
		macc_buf_finish(&b);
		/* The first reply says whether we are in (a progress event) or busy. */
		{
			struct pollfd pf = {.fd = fds[i], .events = POLLIN};
			got = poll(&pf, 1, 5000) > 0 ? recv(fds[i], reply, sizeof(reply), 0) : -1;
		}
		if (got > 4) {
			struct macc_ctl_reply rep;
			size_t blen = 0;

			if (macc_ctl_frame_next(reply, (size_t)got, sizeof(reply), &blen) == 1 &&
			    macc_ctl_reply_decode(reply + 4, blen, MACC_CTL_CMD_WATCH, &rep,
						  NULL) == 0) {
				busy += rep.status == MACC_CTL_EBUSY;
				ok += rep.status == MACC_CTL_OK;
				macc_ctl_reply_finish(&rep);
			}
		}
	}
	printf("ctl connected %u busy %u\n", ok, busy);
	end = macc_now_ms() + hold_ms;
	while (macc_now_ms() < end) {
		poll(NULL, 0, 100);
	}
	for (unsigned i = 0; i < n; i++) {
		if (fds[i] >= 0) {
			close(fds[i]);
		}
	}
	free(fds);
	return 0;
}

/* --bye TEXT: after the mixed phase, a BYE with a nonzero reason and the given text. */
static int send_bye(struct adv *a, const char *text)
{
	struct macc_buf b;
	int rc;

	macc_buf_init(&b, 0);
	rc = macc_bye_encode(&b, MACC_EMODEL, text);
	if (rc == 0) {
		rc = send_frame(a, &b);
	}
	macc_buf_finish(&b);
	if (rc == 0) {
		printf("sent bye 1\n");
		(void)wait_closed(a->fd, 5000);
	}
	return rc;
}

/* --echo R [--far-state D] [--hello-round H]: a neighbour that echoes the daemon's state of each
 * round it receives, for R rounds or hold_ms, whichever first; with --far-state it first sends
 * one valid STATE for the daemon's first round + D. A neighbour that claims a far round (in its
 * HELLO or a STATE) is not sent to by a daemon that does not follow it, so the phase simply
 * ends when hold_ms is over; exit 0 either way (the test judges the daemon). */
static int phase_echo(struct adv *a, unsigned rounds, uint64_t far, unsigned hold_ms)
{
	struct macc_buf f;
	unsigned done = 0;
	uint64_t end = macc_now_ms() + hold_ms;
	int rc = 0;

	macc_buf_init(&f, 0);
	printf("phase echo start\n");
	while (rc == 0 && done < rounds && macc_now_ms() < end) {
		uint8_t *in = NULL;
		size_t fl = 0;
		int64_t r = -1;

		rc = read_frame(a, 200, &in, &fl);
		if (rc == 1) {
			rc = on_frame(a, in, fl, &r);
			free(in);
		}
		if (rc < 0 || r < 0 || (a->have_sent && (uint64_t)r <= a->last_sent_round)) {
			continue;
		}
		if (far > 0 && !a->have_sent) {
			uint64_t fr = (uint64_t)r + far;

			rc = state_frame(a, fr, a->n, a->x, a->mom ? a->v : NULL, &f);
			if (rc == 0 && (rc = send_frame(a, &f)) == 0) {
				printf("sent far-state %llu\n", (unsigned long long)fr);
			}
		}
		if (rc == 0) {
			rc = state_frame(a, (uint64_t)r, a->n, a->x, a->mom ? a->v : NULL, &f);
		}
		if (rc == 0) {
			rc = send_frame(a, &f);
		}
		a->last_sent_round = (uint64_t)r;
		a->have_sent = true;
		a->echoes++;
		done++;
	}
	macc_buf_finish(&f);
	printf("phase echo end: %u rounds echoed\n", done);
	if (rc == MACC_ECLOSED) {
		printf("closed by the daemon\n");
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "adversary: echo phase: %s\n", macc_strerror(rc));
	}
	return rc < 0 ? rc : 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: adversary --key FILE --connect HOST:PORT [--rounds R] [--flood-ms MS] "
		   "[--loris-ms MS] [--seal auto|yes|no] [--garbage] "
		   "[--poison signflip|scale:S|fill:V[,...]] [--duplicate]\n"
		   "       [--hello-round R] [--name S] [--algo S] [--bye TEXT] "
		   "[--echo R [--far-state D] [--hold-ms MS]]\n"
		   "       [--no-read PERIOD_MS [--cycles N]] [--pre-id ATTACK] "
		   "[--flood N [--hold-ms MS]]\n"
		   "       adversary --ctl-flood SOCKET [--clients N] [--hold-ms MS] "
		   "[--as-uid UID]\n");
}

struct opts {
	const char *key, *target, *bye, *pre_id, *ctl_sock;
	unsigned rounds, flood_ms, loris_ms, echo, hold_ms, no_read, cycles, conn_flood, clients;
	uint64_t far;
	long as_uid;
	bool garbage, duplicate, echo_mode;
	double poison[POISON_MAX];
	bool fill[POISON_MAX];
	int npoison;
};

/* Parse the command line into *o and the adversary's settings; 0, or 2 (usage), or 1 (help). */
static int parse_args(int argc, char **argv, struct opts *o, struct adv *a)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},   {"connect", required_argument, NULL, 'c'},
		{"rounds", required_argument, NULL, 'r'}, {"flood-ms", required_argument, NULL, 'f'},
		{"loris-ms", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
		{"seal", required_argument, NULL, 's'},   {"garbage", no_argument, NULL, 'g'},
		{"poison", required_argument, NULL, 'p'}, {"duplicate", no_argument, NULL, 'd'},
		{"hello-round", required_argument, NULL, 'H'},
		{"name", required_argument, NULL, 'N'},
		{"algo", required_argument, NULL, 'A'},
		{"bye", required_argument, NULL, 'B'},
		{"echo", required_argument, NULL, 'E'},
		{"far-state", required_argument, NULL, 'F'},
		{"hold-ms", required_argument, NULL, 'T'},
		{"no-read", required_argument, NULL, 'R'},
		{"cycles", required_argument, NULL, 'C'},
		{"pre-id", required_argument, NULL, 'P'},
		{"flood", required_argument, NULL, 'L'},
		{"ctl-flood", required_argument, NULL, 'X'},
		{"clients", required_argument, NULL, 'n'},
		{"as-uid", required_argument, NULL, 'U'},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "k:c:r:f:l:hs:gp:d", opts, NULL)) != -1) {
		switch (c) {
		case 'd': o->duplicate = true; break;
		case 'k': o->key = optarg; break;
		case 'c': o->target = optarg; break;
		case 'r': o->rounds = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'f': o->flood_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'l': o->loris_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'g': o->garbage = true; break;
		case 'H': a->hello_round = (int64_t)strtoll(optarg, NULL, 10); break;
		case 'N': a->name = optarg; break;
		case 'A': a->algo = optarg; break;
		case 'B': o->bye = optarg; break;
		case 'E': o->echo = (unsigned)strtoul(optarg, NULL, 10); o->echo_mode = true; break;
		case 'F': o->far = strtoull(optarg, NULL, 10); break;
		case 'T': o->hold_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'R': o->no_read = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'C': o->cycles = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'P': o->pre_id = optarg; break;
		case 'L': o->conn_flood = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'X': o->ctl_sock = optarg; break;
		case 'n': o->clients = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'U': o->as_uid = strtol(optarg, NULL, 10); break;
		case 'p':
			if (parse_poison(optarg, o->poison, o->fill, &o->npoison) < 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 's':
			if (strcmp(optarg, "yes") == 0 || strcmp(optarg, "no") == 0) {
				a->seal_mode = strcmp(optarg, "yes") == 0;
			} else if (strcmp(optarg, "auto") != 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (o->ctl_sock == NULL && (o->key == NULL || o->target == NULL)) {
		usage(stderr);
		return 2;
	}
	return 0;
}

/* After the handshake: the phase the options ask for. */
static int run_phases(struct adv *a, const struct opts *o)
{
	int rc;

	if (o->duplicate) {
		return phase_duplicate(a, o->target, o->rounds);
	}
	if (o->npoison > 0) {
		rc = phase_poison(a, o->rounds, o->poison, o->fill, o->npoison);
		printf("sent poison %lu\n", a->poison);
		return rc;
	}
	if (o->echo_mode) {
		rc = phase_echo(a, o->echo, o->far, o->hold_ms);
		return rc == 0 && o->bye != NULL ? send_bye(a, o->bye) : rc;
	}
	if (o->no_read > 0) {
		return phase_no_read(a, o->target, o->no_read, o->cycles, o->rounds);
	}
	rc = phase_mixed(a, o->rounds);
	if (rc == 0 && o->flood_ms > 0) {
		rc = phase_flood(a, o->flood_ms);
	}
	if (rc == 0 && o->loris_ms > 0) {
		rc = phase_loris(a, o->loris_ms);
	}
	if (rc == 0 && o->garbage) {
		rc = phase_garbage(a);
	}
	/* Forged states count as bad_signature on a plain session, as replay on a sealed one
	 * (attack_round). */
	printf("sent bad_signature %lu\nsent model_mismatch %lu\nsent malformed %lu\n"
	       "sent future %lu\nsent replay %lu\nsent nonfinite %lu\nsent echo %lu\n"
	       "sent ping %lu\nsent garbage %lu\nsent forged %lu\n",
	       a->sealed ? 0 : a->forged, a->wrong_n, a->truncated, a->future,
	       a->replays + (a->sealed ? a->forged : 0), a->nonfinite, a->echoes, a->pings,
	       a->garbage, a->forged);
	if (rc == 0 && o->bye != NULL) {
		rc = send_bye(a, o->bye);
	}
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o = {.rounds = 20, .flood_ms = 3000, .hold_ms = 10000, .cycles = 1,
			 .clients = 64, .as_uid = -1};
	struct adv a;
	struct macc_errmsg e;
	int rc, status = 1;

	memset(&a, 0, sizeof(a));
	a.fd = -1;
	a.seal_mode = -1;
	a.hello_round = -1;
	rc = parse_args(argc, argv, &o, &a);
	if (rc != 0) {
		return rc == 1 ? 0 : rc;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (o.ctl_sock != NULL) {
		return phase_ctl_flood(o.ctl_sock, o.clients, o.hold_ms, o.as_uid) == 0 ? 0 : 1;
	}
	if (o.conn_flood > 0) {
		return phase_conn_flood(o.target, o.conn_flood, o.hold_ms) == 0 ? 0 : 1;
	}
	if (macc_identity_load(&a.id, o.key, &e) < 0) {
		fprintf(stderr, "adversary: %s\n", e.text);
		return 1;
	}
	macc_frame_decoder_init(&a.dec, MACC_FRAME_MAX_HANDSHAKE);
	a.fd = dial(o.target);
	if (a.fd < 0) {
		fprintf(stderr, "adversary: cannot connect to %s: %s\n", o.target, strerror(-a.fd));
		goto out;
	}
	if (o.pre_id != NULL) {
		status = phase_preid(&a, o.pre_id) == 0 ? 0 : 1;
		goto out;
	}
	if (handshake(&a) < 0) {
		goto out;
	}
	a.x = calloc(a.n, sizeof(float));
	a.v = calloc(a.n, sizeof(float));
	if (a.x == NULL || a.v == NULL || a.n < 2) {
		fprintf(stderr, "adversary: no memory or model too small\n");
		goto out;
	}
	status = run_phases(&a, &o) == 0 ? 0 : 1;
out:
	if (a.fd >= 0) {
		close(a.fd);
	}
	free(a.x);
	free(a.v);
	macc_frame_decoder_finish(&a.dec);
	macc_session_finish(&a.s);
	macc_identity_finish(&a.id);
	return status;
}
