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
 * It prints what it sent, one "sent REASON COUNT" line per reason the daemon should count it
 * under (macc_errname names), and "phase NAME start|end" lines that the test script follows, to
 * stdout (line-buffered). Every wait is bounded; it exits 0 when every phase ran, 1 on a
 * handshake or socket failure, 2 on a usage error.
 *
 * usage: adversary --key FILE --connect HOST:PORT [--rounds R] [--flood-ms MS] [--loris-ms MS]
 *                  [--seal auto|yes|no] [--garbage] [--poison signflip|scale:S[,...]]
 *                  [--duplicate]
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
#include <sys/socket.h>
#include <unistd.h>

#include "macc/buf.h"
#include "macc/crypto.h"
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
			/* Claim exactly the daemon's model and algorithm, and its round. */
			macc_hello_init(&h, &a->id, a->nonce, m.u.hello.model_hash, m.u.hello.nparams,
					m.u.hello.algo,
					a->hello_round >= 0 ? (uint64_t)a->hello_round
							    : m.u.hello.round,
					2, "adversary");
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

/* Parse "signflip" / "scale:S" items separated by commas into factors (-1 for signflip). */
static int parse_poison(const char *spec, double *f, int *ret_n)
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
		if (strcmp(tok, "signflip") == 0) {
			f[n++] = -1.0;
		} else if (strncmp(tok, "scale:", 6) == 0) {
			f[n] = strtod(tok + 6, &end);
			if (end == tok + 6 || *end != '\0' || !isfinite(f[n])) {
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

/* Answer each daemon round with a correctly signed, poisoned state of that round. */
static int phase_poison(struct adv *a, unsigned rounds, const double *f, int nf)
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
		if (rc < 0 || r < 0 || (a->have_sent && (uint64_t)r <= a->last_sent_round)) {
			continue;
		}
		s = (float)f[done % (unsigned)nf];
		for (size_t i = 0; i < a->n; i++) {
			px[i] = s * a->x[i];
			pv[i] = s * a->v[i];
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

static void usage(FILE *f)
{
	fprintf(f, "usage: adversary --key FILE --connect HOST:PORT [--rounds R] [--flood-ms MS] "
		   "[--loris-ms MS] [--seal auto|yes|no] [--garbage] "
		   "[--poison signflip|scale:S[,...]] [--duplicate]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},   {"connect", required_argument, NULL, 'c'},
		{"rounds", required_argument, NULL, 'r'}, {"flood-ms", required_argument, NULL, 'f'},
		{"loris-ms", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
		{"seal", required_argument, NULL, 's'},   {"garbage", no_argument, NULL, 'g'},
		{"poison", required_argument, NULL, 'p'}, {"duplicate", no_argument, NULL, 'd'},
		{NULL, 0, NULL, 0},
	};
	const char *key = NULL, *target = NULL;
	unsigned rounds = 20, flood_ms = 3000, loris_ms = 0;
	struct adv a;
	struct macc_errmsg e;
	int c, rc, status = 1;
	bool garbage = false, duplicate = false;
	double poison[POISON_MAX];
	int npoison = 0;

	memset(&a, 0, sizeof(a));
	a.fd = -1;
	a.seal_mode = -1;
	a.hello_round = -1;
	while ((c = getopt_long(argc, argv, "k:c:r:f:l:hs:gp:d", opts, NULL)) != -1) {
		switch (c) {
		case 'd': duplicate = true; break;
		case 'k': key = optarg; break;
		case 'c': target = optarg; break;
		case 'r': rounds = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'f': flood_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'l': loris_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'g': garbage = true; break;
		case 'p':
			if (parse_poison(optarg, poison, &npoison) < 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 's':
			if (strcmp(optarg, "yes") == 0 || strcmp(optarg, "no") == 0) {
				a.seal_mode = strcmp(optarg, "yes") == 0;
			} else if (strcmp(optarg, "auto") != 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (key == NULL || target == NULL) {
		usage(stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (macc_identity_load(&a.id, key, &e) < 0) {
		fprintf(stderr, "adversary: %s\n", e.text);
		return 1;
	}
	macc_frame_decoder_init(&a.dec, MACC_FRAME_MAX_HANDSHAKE);
	a.fd = dial(target);
	if (a.fd < 0) {
		fprintf(stderr, "adversary: cannot connect to %s: %s\n", target, strerror(-a.fd));
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
	if (duplicate) {
		rc = phase_duplicate(&a, target, rounds);
		status = rc == 0 ? 0 : 1;
		goto out;
	}
	if (npoison > 0) {
		rc = phase_poison(&a, rounds, poison, npoison);
		printf("sent poison %lu\n", a.poison);
		status = rc == 0 ? 0 : 1;
		goto out;
	}
	rc = phase_mixed(&a, rounds);
	if (rc == 0 && flood_ms > 0) {
		rc = phase_flood(&a, flood_ms);
	}
	if (rc == 0 && loris_ms > 0) {
		rc = phase_loris(&a, loris_ms);
	}
	if (rc == 0 && garbage) {
		rc = phase_garbage(&a);
	}
	/* Forged states count as bad_signature on a plain session, as replay on a sealed one
	 * (attack_round). */
	printf("sent bad_signature %lu\nsent model_mismatch %lu\nsent malformed %lu\n"
	       "sent future %lu\nsent replay %lu\nsent nonfinite %lu\nsent echo %lu\n"
	       "sent ping %lu\nsent garbage %lu\nsent forged %lu\n",
	       a.sealed ? 0 : a.forged, a.wrong_n, a.truncated, a.future,
	       a.replays + (a.sealed ? a.forged : 0), a.nonfinite, a.echoes, a.pings, a.garbage,
	       a.forged);
	status = rc == 0 ? 0 : 1;
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
