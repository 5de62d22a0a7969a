/*
 * test_control.c - the daemon's control server on a real uv loop with a fake agent (ops table).
 *
 * The loop runs on the test's main thread; clients are plain blocking sockets on other threads
 * (as macc-ctl is). A client thread signals the loop through uv_async when it is done, and the
 * loop then closes the server; every test ends with uv_loop_close(loop) == 0, so a leaked handle
 * or a client that was never freed fails the test. Covered: every command, permission refusal
 * (as an unprivileged uid in a forked child when running as root), garbage, oversized and half
 * frames, idle timeout, version mismatch, busy refusal, 50 concurrent clients, watch streams.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "macc/buf.h"
#include "macc/ctl.h"

#include "../../src/agentd/control.h"

/* --- fake agent ------------------------------------------------------------------------- */

struct fake {
	enum macc_ctl_state state;
	enum macc_log_level level;
	uint64_t round;
	int calls[MACC_CTL_CMD_COUNT];
};

static int f_status(void *ctx, struct macc_ctl_status *st)
{
	struct fake *f = ctx;

	f->calls[MACC_CTL_CMD_STATUS]++;
	st->state = f->state;
	strcpy(st->name, "fake");
	strcpy(st->model, "mlp:784-10");
	strcpy(st->algorithm, "dmsgd");
	st->round = f->round;
	st->train_loss = 0.5;
	st->peers_up = 1;
	st->peers_configured = 2;
	return 0;
}

static int f_peers(void *ctx, struct macc_ctl_peer **ret, size_t *n)
{
	struct fake *f = ctx;
	struct macc_ctl_peer *p = calloc(2, sizeof(*p));

	f->calls[MACC_CTL_CMD_PEERS]++;
	if (p == NULL) {
		return -ENOMEM;
	}
	strcpy(p[0].name, "west");
	p[0].session = MACC_CTL_SESSION_UP;
	p[0].rtt_seconds = 0.0002;
	strcpy(p[1].name, "east");
	p[1].rtt_seconds = NAN;
	macc_ctl_peer_add_reject(&p[1], MACC_EBADSIG, 4);
	*ret = p;
	*n = 2;
	return 0;
}

static int f_start(void *ctx, struct macc_errmsg *err)
{
	struct fake *f = ctx;

	f->calls[MACC_CTL_CMD_START]++;
	if (f->state == MACC_CTL_STATE_TRAINING) {
		return macc_errf(err, MACC_ESTATE, "already training");
	}
	f->state = MACC_CTL_STATE_TRAINING;
	return 0;
}

static int f_pause(void *ctx, struct macc_errmsg *err)
{
	struct fake *f = ctx;

	f->calls[MACC_CTL_CMD_PAUSE]++;
	if (f->state != MACC_CTL_STATE_TRAINING) {
		return macc_errf(err, MACC_ESTATE, "not training");
	}
	f->state = MACC_CTL_STATE_PAUSED;
	return 0;
}

#define SIMPLE(fn, cmd)                                                                          \
	static int fn(void *ctx, struct macc_errmsg *err)                                        \
	{                                                                                        \
		(void)err;                                                                       \
		((struct fake *)ctx)->calls[cmd]++;                                              \
		return 0;                                                                        \
	}
SIMPLE(f_stop, MACC_CTL_CMD_STOP)
SIMPLE(f_resume, MACC_CTL_CMD_RESUME)
SIMPLE(f_checkpoint, MACC_CTL_CMD_CHECKPOINT)

static int f_reload(void *ctx, struct macc_errmsg *err)
{
	((struct fake *)ctx)->calls[MACC_CTL_CMD_RELOAD]++;
	return macc_errf(err, MACC_ECONFIG, "x.conf:3: key 'lr' = 'fast': expected a number");
}

static int f_metrics(void *ctx, struct macc_ctl_metrics *m)
{
	((struct fake *)ctx)->calls[MACC_CTL_CMD_METRICS]++;
	m->rounds_total = 77;
	macc_ctl_metrics_observe_round(m, 0.3);
	return 0;
}

static int f_log_level(void *ctx, enum macc_log_level level, struct macc_errmsg *err)
{
	struct fake *f = ctx;

	(void)err;
	f->calls[MACC_CTL_CMD_LOG_LEVEL]++;
	f->level = level;
	return 0;
}

/* A full `model` chunk (MACC_CTL_MODEL_CHUNK floats, 4 MiB) whatever was asked: the largest
 * reply a client can ask for with a small request. */
static int f_model(void *ctx, const struct macc_ctl_request *req, struct macc_ctl_model *ret,
		   struct macc_errmsg *err)
{
	struct fake *f = ctx;

	(void)req;
	__atomic_add_fetch(&f->calls[MACC_CTL_CMD_MODEL], 1, __ATOMIC_RELAXED);
	ret->data = calloc(MACC_CTL_MODEL_CHUNK, sizeof(float));
	if (ret->data == NULL) {
		return macc_errf(err, -ENOMEM, "out of memory");
	}
	ret->data_len = MACC_CTL_MODEL_CHUNK * sizeof(float);
	ret->spec = "mlp:784-10";
	strcpy(ret->task, "classification");
	ret->generation = 1;
	ret->total = MACC_CTL_MODEL_CHUNK;
	return 0;
}

/* eval is left NULL: "not supported". */
static const struct macc_ctl_ops fake_ops = {
	.model = f_model,
	.status = f_status,
	.peers = f_peers,
	.start = f_start,
	.stop = f_stop,
	.pause = f_pause,
	.resume = f_resume,
	.checkpoint = f_checkpoint,
	.eval = NULL,
	.metrics = f_metrics,
	.reload = f_reload,
	.log_level = f_log_level,
};

/* --- harness ---------------------------------------------------------------------------- */

struct harness {
	uv_loop_t loop;
	struct macc_ctl_server *srv;
	struct fake f;
	struct macc_ctl_server_opts opts;
	char path[108];
	uv_async_t done_async;    /* client thread -> loop: finished */
	uv_async_t publish_async; /* client thread -> loop: publish progress events */
	uv_timer_t guard;         /* fails the test if it hangs */
	void *(*client)(void *);
	int failures;             /* counted by client threads */
	char failure[256];
	pthread_mutex_t mu;
	unsigned max_clients_seen;
	bool server_closed;
};

static void check(struct harness *h, bool ok, const char *what)
{
	if (!ok) {
		pthread_mutex_lock(&h->mu);
		if (h->failures++ == 0) {
			snprintf(h->failure, sizeof(h->failure), "%s", what);
		}
		pthread_mutex_unlock(&h->mu);
	}
}

#define CHECK(h, cond) check(h, (cond), #cond)

static void on_handle_closed(uv_handle_t *hd)
{
	(void)hd;
}

static void on_server_closed(void *arg)
{
	struct harness *h = arg;

	h->server_closed = true;
}

static void shutdown_all(struct harness *h)
{
	macc_ctl_server_close(h->srv, on_server_closed, h);
	uv_close((uv_handle_t *)&h->done_async, on_handle_closed);
	uv_close((uv_handle_t *)&h->publish_async, on_handle_closed);
	uv_close((uv_handle_t *)&h->guard, on_handle_closed);
}

static void on_done(uv_async_t *a)
{
	shutdown_all(a->data);
}

static void on_guard(uv_timer_t *t)
{
	struct harness *h = t->data;

	if (macc_ctl_server_nclients(h->srv) > h->max_clients_seen) {
		h->max_clients_seen = macc_ctl_server_nclients(h->srv);
	}
}

static void on_publish(uv_async_t *a)
{
	struct harness *h = a->data;
	struct macc_ctl_progress p;

	for (int i = 1; i <= 3; i++) {
		macc_ctl_progress_init(&p);
		p.state = MACC_CTL_STATE_TRAINING;
		p.round = (uint64_t)i * 10;
		p.rounds_planned = 40;
		p.epoch = i * 0.25;
		p.train_loss = 1.0 / i;
		macc_ctl_server_publish(h->srv, &p);
	}
	macc_ctl_progress_init(&p);
	p.state = MACC_CTL_STATE_DONE;
	p.round = 40;
	p.rounds_planned = 40;
	p.test_accuracy_ratio = 0.85;
	p.final = true;
	macc_ctl_server_publish(h->srv, &p);
	h->f.state = MACC_CTL_STATE_DONE;
}

static void harness_init(struct harness *h)
{
	memset(h, 0, sizeof(*h));
	assert_int_equal(uv_loop_init(&h->loop), 0);
	pthread_mutex_init(&h->mu, NULL);
	snprintf(h->path, sizeof(h->path), "/tmp/macc-test-ctl-%ld.sock", (long)getpid());
	macc_ctl_server_opts_init(&h->opts);
	h->opts.path = h->path;
	h->opts.group = "";
	h->opts.mode = 0666;
	h->opts.version = "test-1.0";
	h->f.state = MACC_CTL_STATE_IDLE;
	h->f.level = MACC_LOG_INFO;
}

static void *client_main(void *arg)
{
	struct harness *h = arg;

	h->client(h);
	uv_async_send(&h->done_async);
	return NULL;
}

/* Run the loop with a server until the client thread is done; asserts a clean loop close. */
static void harness_run(struct harness *h, void *(*client)(void *))
{
	struct macc_errmsg err;
	pthread_t th;
	struct stat st;

	err.text[0] = '\0';
	if (macc_ctl_server_create(&h->loop, &h->opts, &fake_ops, &h->f, &h->srv, &err) != 0) {
		fail_msg("server create: %s", err.text);
	}
	assert_int_equal(stat(h->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, h->opts.mode);
	uv_async_init(&h->loop, &h->done_async, on_done);
	uv_async_init(&h->loop, &h->publish_async, on_publish);
	uv_timer_init(&h->loop, &h->guard);
	h->done_async.data = h;
	h->publish_async.data = h;
	h->guard.data = h;
	uv_timer_start(&h->guard, on_guard, 2, 2);
	h->client = client;
	assert_int_equal(pthread_create(&th, NULL, client_main, h), 0);
	uv_run(&h->loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);
	assert_true(h->server_closed);
	assert_int_equal(uv_loop_close(&h->loop), 0);
	assert_int_not_equal(access(h->path, F_OK), 0); /* socket unlinked */
	pthread_mutex_destroy(&h->mu);
	if (h->failures > 0) {
		fail_msg("%d client check(s) failed, first: %s", h->failures, h->failure);
	}
}

/* --- blocking client helpers ----------------------------------------------------------- */

static int conn(const char *path)
{
	struct sockaddr_un sa;
	struct timeval tv = { 5, 0 };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd < 0) {
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		if (w <= 0) {
			return false;
		}
		b += w;
		n -= (size_t)w;
	}
	return true;
}

static bool read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;

	while (n > 0) {
		ssize_t r = recv(fd, b, n, 0);

		if (r <= 0) {
			return false;
		}
		b += r;
		n -= (size_t)r;
	}
	return true;
}

static bool send_req(int fd, enum macc_ctl_cmd cmd, uint64_t id, enum macc_log_level level)
{
	struct macc_ctl_request r = { .v = MACC_CTL_PROTO_VERSION, .id = id, .cmd = cmd,
				      .level = level };
	struct macc_buf b;
	bool ok;

	macc_buf_init(&b, 0);
	ok = macc_ctl_request_encode(&r, &b) == 0 && write_all(fd, b.data, b.len);
	macc_buf_finish(&b);
	return ok;
}

/* Read one reply; returns false on EOF, timeout or a decode error. */
static bool recv_reply(int fd, enum macc_ctl_cmd cmd, struct macc_ctl_reply *rep)
{
	uint8_t hdr[4];
	uint8_t *body;
	uint32_t len;
	struct macc_errmsg e;
	bool ok;

	if (!read_all(fd, hdr, 4)) {
		return false;
	}
	len = macc_get_be32(hdr);
	if (len == 0 || len > MACC_CTL_MAX_REPLY) {
		return false;
	}
	body = malloc(len);
	if (body == NULL) {
		return false;
	}
	ok = read_all(fd, body, len) && macc_ctl_reply_decode(body, len, cmd, rep, &e) == 0;
	free(body);
	return ok;
}

static bool is_closed(int fd)
{
	char c;

	return recv(fd, &c, 1, 0) == 0;
}

static bool roundtrip(int fd, enum macc_ctl_cmd cmd, uint64_t id, struct macc_ctl_reply *rep)
{
	return send_req(fd, cmd, id, MACC_LOG_DEBUG) && recv_reply(fd, cmd, rep) && rep->id == id;
}

/* --- tests -------------------------------------------------------------------------------- */

static void *client_commands(void *arg)
{
	struct harness *h = arg;
	struct macc_ctl_reply r;
	int fd = conn(h->path);

	CHECK(h, fd >= 0);
	CHECK(h, roundtrip(fd, MACC_CTL_CMD_STATUS, 1, &r));
	CHECK(h, r.status == MACC_CTL_OK && r.kind == MACC_CTL_DATA_STATUS);
	CHECK(h, strcmp(r.st.name, "fake") == 0 && r.st.state == MACC_CTL_STATE_IDLE);
	CHECK(h, r.st.peers_configured == 2 && isnan(r.st.test_accuracy_ratio));

	CHECK(h, roundtrip(fd, MACC_CTL_CMD_PEERS, 2, &r));
	CHECK(h, r.status == MACC_CTL_OK && r.npeers == 2);
	CHECK(h, r.npeers == 2 && strcmp(r.peers[1].name, "east") == 0 &&
			 r.peers[1].nrejected == 1 && r.peers[1].rejected[0].count == 4);
	macc_ctl_reply_finish(&r);

	CHECK(h, roundtrip(fd, MACC_CTL_CMD_PAUSE, 3, &r));
	CHECK(h, r.status == MACC_CTL_ESTATE && strstr(r.error, "pause: not training") != NULL);
	CHECK(h, roundtrip(fd, MACC_CTL_CMD_START, 4, &r));
	CHECK(h, r.status == MACC_CTL_OK && r.error[0] == '\0');
	CHECK(h, roundtrip(fd, MACC_CTL_CMD_START, 5, &r));
	CHECK(h, r.status == MACC_CTL_ESTATE && strstr(r.error, "already training") != NULL);
	CHECK(h, roundtrip(fd, MACC_CTL_CMD_PAUSE, 6, &r));
	CHECK(h, r.status == MACC_CTL_OK);
	CHECK(h, roundtrip(fd, MACC_CTL_CMD_RESUME, 7, &r));
	CHECK(h, r.status == MACC_CTL_OK);
	CHECK(h, roundtrip(fd, MACC_CTL_CMD_STOP, 8, &r));
	CHECK(h, r.status == MACC_CTL_OK);
	CHECK(h, roundtrip(fd, MACC_CTL_CMD_CHECKPOINT, 9, &r));
	CHECK(h, r.status == MACC_CTL_OK);
	CHECK(h, roundtrip(fd, MACC_CTL_CMD_EVAL, 10, &r));
	CHECK(h, r.status == MACC_CTL_EFAILED && strstr(r.error, "not supported") != NULL);
	CHECK(h, roundtrip(fd, MACC_CTL_CMD_RELOAD, 11, &r));
	CHECK(h, r.status == MACC_CTL_ECONFIG && strstr(r.error, "x.conf:3: key 'lr'") != NULL);
	CHECK(h, roundtrip(fd, MACC_CTL_CMD_LOG_LEVEL, 12, &r));
	CHECK(h, r.status == MACC_CTL_OK);
	CHECK(h, roundtrip(fd, MACC_CTL_CMD_VERSION, 13, &r));
	CHECK(h, r.status == MACC_CTL_OK && r.text != NULL && strcmp(r.text, "test-1.0") == 0);
	macc_ctl_reply_finish(&r);
	CHECK(h, roundtrip(fd, MACC_CTL_CMD_METRICS, 14, &r));
	CHECK(h, r.status == MACC_CTL_OK && r.text != NULL);
	CHECK(h, r.text != NULL && strstr(r.text, "macc_rounds_total 77\n") != NULL);
	CHECK(h, r.text != NULL && strstr(r.text, "macc_peer_up{peer=\"west\"} 1\n") != NULL);
	CHECK(h, r.text != NULL && strstr(r.text, "reason=\"bad_signature\"} 4\n") != NULL);
	CHECK(h, r.text != NULL && strstr(r.text, "macc_round_seconds_bucket{le=\"0.5\"} 1\n"));
	macc_ctl_reply_finish(&r);

	/* Pipelined requests are answered in order. */
	for (uint64_t i = 100; i < 140; i++) {
		CHECK(h, send_req(fd, MACC_CTL_CMD_STATUS, i, 0));
	}
	for (uint64_t i = 100; i < 140; i++) {
		CHECK(h, recv_reply(fd, MACC_CTL_CMD_STATUS, &r) && r.id == i);
	}
	close(fd);
	return NULL;
}

static void test_commands(void **state)
{
	struct harness h;

	(void)state;
	harness_init(&h);
	harness_run(&h, client_commands);
	assert_int_equal(h.f.calls[MACC_CTL_CMD_START], 2);
	assert_int_equal(h.f.calls[MACC_CTL_CMD_PAUSE], 2);
	assert_int_equal(h.f.calls[MACC_CTL_CMD_RESUME], 1);
	assert_int_equal(h.f.calls[MACC_CTL_CMD_STOP], 1);
	assert_int_equal(h.f.calls[MACC_CTL_CMD_CHECKPOINT], 1);
	assert_int_equal(h.f.calls[MACC_CTL_CMD_RELOAD], 1);
	assert_int_equal(h.f.calls[MACC_CTL_CMD_METRICS], 1);
	assert_int_equal(h.f.calls[MACC_CTL_CMD_LOG_LEVEL], 1);
	assert_int_equal(h.f.level, MACC_LOG_DEBUG);
	assert_int_equal(h.f.state, MACC_CTL_STATE_PAUSED);
}

static void *client_garbage(void *arg)
{
	struct harness *h = arg;
	struct macc_ctl_reply r;
	uint8_t junk[300];
	int fd;

	/* Huge announced length: too-big reply, then the server closes. */
	fd = conn(h->path);
	CHECK(h, fd >= 0);
	memset(junk, 0xee, sizeof(junk));
	CHECK(h, write_all(fd, junk, sizeof(junk)));
	CHECK(h, recv_reply(fd, MACC_CTL_CMD_STATUS, &r) && r.status == MACC_CTL_ETOOBIG);
	CHECK(h, is_closed(fd));
	close(fd);

	/* Small frame of garbage: malformed, connection stays usable. */
	fd = conn(h->path);
	CHECK(h, fd >= 0);
	junk[0] = 0;
	junk[1] = 0;
	junk[2] = 0;
	junk[3] = 10;
	CHECK(h, write_all(fd, junk, 14));
	CHECK(h, recv_reply(fd, MACC_CTL_CMD_STATUS, &r) && r.status == MACC_CTL_EMALFORMED);
	/* Empty frame: malformed too. */
	memset(junk, 0, 4);
	CHECK(h, write_all(fd, junk, 4));
	CHECK(h, recv_reply(fd, MACC_CTL_CMD_STATUS, &r) && r.status == MACC_CTL_EMALFORMED);
	CHECK(h, roundtrip(fd, MACC_CTL_CMD_STATUS, 5, &r) && r.status == MACC_CTL_OK);

	/* Version mismatch: {v: 2, id: 9, cmd: "status"} gets `version`, id echoed, and the
	 * connection stays open. */
	static const uint8_t v2[] = { 0, 0, 0, 19, 0x83, 0xa1, 'v', 2, 0xa2, 'i', 'd', 9, 0xa3,
				      'c', 'm', 'd', 0xa6, 's', 't', 'a', 't', 'u', 's' };
	CHECK(h, write_all(fd, v2, sizeof(v2)));
	CHECK(h, recv_reply(fd, MACC_CTL_CMD_STATUS, &r));
	CHECK(h, r.status == MACC_CTL_EVERSION && r.id == 9 && r.v == MACC_CTL_PROTO_VERSION);
	CHECK(h, strstr(r.error, "version 2") != NULL);
	/* Unknown command. */
	uint8_t unk[sizeof(v2)];
	memcpy(unk, v2, sizeof(v2));
	unk[7] = 1;
	memcpy(unk + 17, "statux", 6);
	CHECK(h, write_all(fd, unk, sizeof(unk)));
	CHECK(h, recv_reply(fd, MACC_CTL_CMD_STATUS, &r));
	CHECK(h, r.status == MACC_CTL_EUNKNOWNCMD && strstr(r.error, "'statux'") != NULL);
	CHECK(h, roundtrip(fd, MACC_CTL_CMD_STATUS, 6, &r) && r.status == MACC_CTL_OK);
	close(fd);

	/* Half frames, then disconnect: nothing for the server to keep. */
	for (int i = 0; i < 20; i++) {
		fd = conn(h->path);
		CHECK(h, fd >= 0);
		CHECK(h, write_all(fd, v2, (size_t)(1 + i % 20)));
		close(fd);
	}
	/* A client that stalls mid-frame is closed by the idle timeout (200 ms here). */
	fd = conn(h->path);
	CHECK(h, fd >= 0);
	CHECK(h, write_all(fd, v2, 10));
	CHECK(h, is_closed(fd));
	close(fd);
	/* The server is still fine. */
	fd = conn(h->path);
	CHECK(h, roundtrip(fd, MACC_CTL_CMD_STATUS, 7, &r) && r.status == MACC_CTL_OK);
	close(fd);
	return NULL;
}

static void test_garbage(void **state)
{
	struct harness h;

	(void)state;
	harness_init(&h);
	h.opts.idle_timeout_ms = 200;
	harness_run(&h, client_garbage);
}

#define NCONC 50

struct conc {
	struct harness *h;
	int idx;
	int fd;
};

static void *client_one(void *arg)
{
	struct conc *c = arg;
	struct macc_ctl_reply r;

	/* Interleave: each of 50 connections pipelines 20 requests. */
	for (int i = 0; i < 20; i++) {
		CHECK(c->h, send_req(c->fd, MACC_CTL_CMD_STATUS, (uint64_t)(c->idx * 1000 + i), 0));
	}
	for (int i = 0; i < 20; i++) {
		CHECK(c->h, recv_reply(c->fd, MACC_CTL_CMD_STATUS, &r) &&
				    r.id == (uint64_t)(c->idx * 1000 + i) && r.status == 0);
	}
	return NULL;
}

static void *client_concurrent(void *arg)
{
	struct harness *h = arg;
	struct conc cs[NCONC];
	pthread_t th[NCONC];

	/* All connected before any request, so 50 are served at the same time. */
	for (int i = 0; i < NCONC; i++) {
		cs[i].h = h;
		cs[i].idx = i;
		cs[i].fd = conn(h->path);
		CHECK(h, cs[i].fd >= 0);
	}
	for (int i = 0; i < NCONC; i++) {
		CHECK(h, pthread_create(&th[i], NULL, client_one, &cs[i]) == 0);
	}
	for (int i = 0; i < NCONC; i++) {
		pthread_join(th[i], NULL);
	}
	for (int i = 0; i < NCONC; i++) {
		close(cs[i].fd);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	struct harness h;

	(void)state;
	harness_init(&h);
	harness_run(&h, client_concurrent);
	assert_int_equal(h.f.calls[MACC_CTL_CMD_STATUS], NCONC * 20);
	assert_true(h.max_clients_seen >= NCONC / 2);
}

static void *client_busy(void *arg)
{
	struct harness *h = arg;
	struct macc_ctl_reply r;
	int a = conn(h->path), b = conn(h->path), c;

	CHECK(h, roundtrip(a, MACC_CTL_CMD_STATUS, 1, &r) && r.status == 0);
	CHECK(h, roundtrip(b, MACC_CTL_CMD_STATUS, 2, &r) && r.status == 0);
	c = conn(h->path);
	CHECK(h, recv_reply(c, MACC_CTL_CMD_STATUS, &r) && r.status == MACC_CTL_EBUSY);
	CHECK(h, is_closed(c));
	close(c);
	close(b);
	/* Once a slot frees up, a new client is served. */
	for (int tries = 0; tries < 100; tries++) {
		c = conn(h->path);
		if (roundtrip(c, MACC_CTL_CMD_STATUS, 3, &r) && r.status == 0) {
			close(c);
			break;
		}
		close(c);
		usleep(10000);
		CHECK(h, tries < 99);
	}
	close(a);
	return NULL;
}

/* A client that pipelines small requests for large replies and reads none: once its unsent
 * replies pass the limit (1 MiB), its requests already buffered wait too, so at most a couple of
 * 4 MiB replies are queued for it (not all 40, 160 MiB); when it reads, every one is answered,
 * in order. */
static void *client_model_flood(void *arg)
{
	struct harness *h = arg;
	struct macc_ctl_reply r;
	int fd = conn(h->path), calls;

	CHECK(h, fd >= 0);
	for (uint64_t i = 1; i <= 40; i++) {
		CHECK(h, send_req(fd, MACC_CTL_CMD_MODEL, i, 0));
	}
	usleep(300000);
	calls = __atomic_load_n(&h->f.calls[MACC_CTL_CMD_MODEL], __ATOMIC_RELAXED);
	CHECK(h, calls >= 1 && calls <= 2);
	for (uint64_t i = 1; i <= 40; i++) {
		bool got = recv_reply(fd, MACC_CTL_CMD_MODEL, &r);

		CHECK(h, got && r.id == i && r.status == MACC_CTL_OK &&
			 r.model.data_len == MACC_CTL_MODEL_CHUNK * sizeof(float));
		if (got) {
			macc_ctl_reply_finish(&r);
		}
	}
	close(fd);
	return NULL;
}

static void test_model_flood(void **state)
{
	struct harness h;

	(void)state;
	harness_init(&h);
	harness_run(&h, client_model_flood);
	assert_int_equal(h.f.calls[MACC_CTL_CMD_MODEL], 40);
}

static void test_busy(void **state)
{
	struct harness h;

	(void)state;
	harness_init(&h);
	h.opts.max_clients = 2;
	harness_run(&h, client_busy);
}

static void *client_watch(void *arg)
{
	struct harness *h = arg;
	struct macc_ctl_reply r;
	int w = conn(h->path), other = conn(h->path);
	int events = 0;
	uint64_t last_round = 0;

	CHECK(h, roundtrip(other, MACC_CTL_CMD_STATUS, 1, &r));
	CHECK(h, send_req(w, MACC_CTL_CMD_WATCH, 42, 0));
	/* The first event comes at once, from status. */
	CHECK(h, recv_reply(w, MACC_CTL_CMD_WATCH, &r) && r.id == 42 && !r.progress.final &&
			 r.kind == MACC_CTL_DATA_PROGRESS);
	uv_async_send(&h->publish_async);
	for (;;) {
		if (!recv_reply(w, MACC_CTL_CMD_WATCH, &r)) {
			CHECK(h, !"watch stream ended without a final event");
			break;
		}
		CHECK(h, r.id == 42 && r.kind == MACC_CTL_DATA_PROGRESS);
		events++;
		if (r.progress.final) {
			CHECK(h, r.progress.state == MACC_CTL_STATE_DONE);
			CHECK(h, r.progress.test_accuracy_ratio == 0.85);
			break;
		}
		CHECK(h, r.progress.round == last_round + 10);
		last_round = r.progress.round;
	}
	CHECK(h, events == 4);
	/* The watcher is an ordinary client again; the other one got no events. */
	CHECK(h, roundtrip(w, MACC_CTL_CMD_STATUS, 43, &r) && r.status == 0);
	CHECK(h, roundtrip(other, MACC_CTL_CMD_STATUS, 2, &r) && r.id == 2);
	close(w);
	close(other);

	/* When the run has already ended, watch answers with one final event. */
	w = conn(h->path); /* on_publish left the fake agent in state done */
	CHECK(h, roundtrip(w, MACC_CTL_CMD_WATCH, 50, &r) && r.progress.final);
	CHECK(h, roundtrip(w, MACC_CTL_CMD_STATUS, 51, &r));
	close(w);
	return NULL;
}

static void test_watch(void **state)
{
	struct harness h;

	(void)state;
	harness_init(&h);
	h.opts.idle_timeout_ms = 100; /* watchers are exempt */
	harness_run(&h, client_watch);
}

/* Runs as uid/gid 65534 in a forked child: read-only allowed, mutating refused. */
static int unprivileged_child(const char *path)
{
	struct macc_ctl_reply r;
	int fd;

	if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0) {
		return 10;
	}
	fd = conn(path);
	if (fd < 0) {
		return 11;
	}
	if (!roundtrip(fd, MACC_CTL_CMD_STATUS, 1, &r) || r.status != MACC_CTL_OK) {
		return 12;
	}
	if (!roundtrip(fd, MACC_CTL_CMD_PAUSE, 2, &r) || r.status != MACC_CTL_EPERM ||
	    strstr(r.error, "'pause'") == NULL) {
		return 13;
	}
	if (!roundtrip(fd, MACC_CTL_CMD_LOG_LEVEL, 3, &r) || r.status != MACC_CTL_EPERM) {
		return 14;
	}
	if (!roundtrip(fd, MACC_CTL_CMD_PEERS, 4, &r) || r.status != MACC_CTL_OK) {
		return 15;
	}
	macc_ctl_reply_finish(&r);
	close(fd);
	return 0;
}

static void *client_perm(void *arg)
{
	struct harness *h = arg;
	pid_t pid;
	int st = 0;

	pid = fork();
	if (pid == 0) {
		_exit(unprivileged_child(h->path));
	}
	CHECK(h, pid > 0);
	CHECK(h, waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char msg[64];

		snprintf(msg, sizeof(msg), "unprivileged child failed with %d", WEXITSTATUS(st));
		check(h, false, msg);
	}
	return NULL;
}

static void test_permission(void **state)
{
	struct harness h;
	gid_t g[2] = { 5, 7 };

	(void)state;
	/* The rule itself. */
	assert_true(macc_ctl_caller_allowed(0, NULL, 0, 100, 50));
	assert_true(macc_ctl_caller_allowed(100, NULL, 0, 100, 50));
	assert_false(macc_ctl_caller_allowed(101, g, 2, 100, 50));
	assert_true(macc_ctl_caller_allowed(101, g, 2, 100, 7));
	if (geteuid() != 0) {
		/* Dropping to another uid needs root; the rule is covered above. */
		return;
	}
	harness_init(&h);
	harness_run(&h, client_perm);
	assert_int_equal(h.f.calls[MACC_CTL_CMD_PAUSE], 0);
	assert_int_equal(h.f.calls[MACC_CTL_CMD_LOG_LEVEL], 0);
	assert_int_equal(h.f.calls[MACC_CTL_CMD_STATUS], 1);
}

static void test_create_errors(void **state)
{
	uv_loop_t loop;
	struct macc_ctl_server_opts o;
	struct macc_ctl_server *s = NULL, *s2 = NULL;
	struct macc_errmsg err;
	char path[108];
	FILE *f;

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	macc_ctl_server_opts_init(&o);
	o.group = "";
	/* Too long a path. */
	o.path = "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock";
	assert_int_equal(macc_ctl_server_create(&loop, &o, &fake_ops, NULL, &s, &err),
			 -ENAMETOOLONG);
	/* A regular file in the way is not removed. */
	snprintf(path, sizeof(path), "/tmp/macc-test-ctl-file-%ld", (long)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	o.path = path;
	assert_int_equal(macc_ctl_server_create(&loop, &o, &fake_ops, NULL, &s, &err), -EEXIST);
	assert_non_null(strstr(err.text, "not a socket"));
	unlink(path);
	/* A live server is not replaced; a stale socket file is. */
	assert_int_equal(macc_ctl_server_create(&loop, &o, &fake_ops, NULL, &s, &err), 0);
	assert_int_equal(macc_ctl_server_create(&loop, &o, &fake_ops, NULL, &s2, &err),
			 -EADDRINUSE);
	assert_non_null(strstr(err.text, "another daemon"));
	macc_ctl_server_close(s, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	{
		/* leave a stale socket behind */
		struct sockaddr_un sa;
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);

		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		strcpy(sa.sun_path, path);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(fd);
	}
	assert_int_equal(macc_ctl_server_create(&loop, &o, &fake_ops, NULL, &s, &err), 0);
	macc_ctl_server_close(s, NULL, NULL);
	macc_ctl_server_close(NULL, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_busy),
		cmocka_unit_test(test_model_flood),
		cmocka_unit_test(test_watch),
		cmocka_unit_test(test_permission),
		cmocka_unit_test(test_create_errors),
	};

	macc_log_set_level(MACC_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
