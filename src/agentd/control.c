/*
 * control.c - the daemon's control socket server (protocol: macc/ctl.h, API: control.h).
 *
 * Design: one listening uv_pipe_t and a list of clients, each with its pipe, an idle timer and an
 * input buffer. Bytes are read into one server-wide scratch buffer (the loop is single-threaded)
 * and appended to the client's buffer; complete frames are then decoded and answered in order.
 * The server never owns agent state: it calls the agent through struct macc_ctl_ops.
 * Requests are run by control_cmd.c (ctl_run_command()); the state both share is in
 * control_int.h.
 *
 * Costs a client can impose, and their bounds:
 *   - memory: a frame header announcing more than MACC_CTL_MAX_REQUEST bytes gets a `too-big`
 *     reply and the connection is closed before anything is buffered; the buffer holds at most
 *     one partial frame plus one read;
 *   - time: at most FRAMES_PER_TURN requests per client per loop turn. A client with more
 *     buffered frames stops being read and is resumed from an idle handle on the next turn, so
 *     one chatty client cannot starve the others (or the agent's own I/O);
 *   - replies it does not read: when a client's unsent replies exceed WRITE_QUEUE_MAX it stops
 *     being read, and the requests it already sent wait, until they drain to half of it; so its
 *     unsent replies stay below WRITE_QUEUE_MAX plus one reply (a `model` chunk, 4 MiB, is the
 *     largest); `watch` events to such a client are skipped (never the final one);
 *   - silence: a client that completes no request within idle_timeout_ms is closed (watchers
 *     are exempt until their stream ends); partial frames do not reset the timer;
 *   - numbers: beyond max_clients a new connection gets a `busy` reply and is closed; a caller
 *     that is neither root nor the daemon's user gets it already beyond max_clients -
 *     reserved_clients, so however many connections other users hold (idle ones until the
 *     idle timeout, watchers for as long as they like), root and the daemon's user still find
 *     reserved_clients free slots.
 *
 * Lifetimes (libuv rules): a client is unlinked from the list when its close starts and freed
 * after the close callbacks of both its handles. Write requests own their bytes and free them
 * in the write callback, which libuv also calls (with UV_ECANCELED) for writes pending at close.
 * The server itself is freed after the listener, the idle handle and every client are closed.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "macc/buf.h"
#include "macc/ctl.h"
#include "macc/log.h"

#include "control.h"
#include "control_int.h"

#ifndef MACC_VERSION
#define MACC_VERSION "0.1.0"
#endif

#define FRAMES_PER_TURN 8
#define WRITE_QUEUE_MAX (1u << 20)
#define MAX_GROUPS 256
#define LOG_PREFIX "control"

struct write_req {
	uv_write_t req;
	struct client *c;
	uint8_t *data;
};

static void process(struct client *c);
static void client_close(struct client *c);
static void on_idle(uv_idle_t *h);

/* --- small helpers --------------------------------------------------------------------------- */

void macc_ctl_server_opts_init(struct macc_ctl_server_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->path = NULL;
	o->mode = 0660;
	o->group = "macc";
	o->owner_uid = geteuid();
	o->max_clients = 64;
	o->reserved_clients = 4;
	o->idle_timeout_ms = 30000;
	o->version = NULL;
}

bool macc_ctl_caller_allowed(uid_t uid, const gid_t *groups, size_t ngroups, uid_t owner_uid,
			     gid_t sock_gid)
{
	if (uid == 0 || uid == owner_uid) {
		return true;
	}
	for (size_t i = 0; i < ngroups; i++) {
		if (groups[i] == sock_gid) {
			return true;
		}
	}
	return false;
}

unsigned macc_ctl_server_nclients(const struct macc_ctl_server *s)
{
	return s != NULL ? s->nclients : 0;
}

unsigned macc_ctl_server_nwatchers(const struct macc_ctl_server *s)
{
	return s != NULL ? s->nwatchers : 0;
}

/*
 * The caller's groups: the primary gid from SO_PEERCRED plus the supplementary groups of the
 * calling process from /proc/PID/status (only trusted when its Uid line matches the
 * credentials). Returns the count written to groups[].
 */
static size_t caller_groups(const struct client *c, gid_t *groups, size_t max)
{
	char path[64], line[4096];
	size_t n = 0;
	FILE *f;
	bool uid_ok = false;

	groups[n++] = c->gid;
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)c->pid);
	f = fopen(path, "re");
	if (f == NULL) {
		return n;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "Uid:", 4) == 0) {
			unsigned long real, eff;

			uid_ok = sscanf(line + 4, "%lu %lu", &real, &eff) == 2 &&
				 (uid_t)eff == c->uid;
		} else if (strncmp(line, "Groups:", 7) == 0 && uid_ok) {
			char *p = line + 7, *end;

			for (;;) {
				unsigned long g = strtoul(p, &end, 10);

				if (end == p || n >= max) {
					break;
				}
				groups[n++] = (gid_t)g;
				p = end;
			}
		}
	}
	fclose(f);
	return n;
}

static bool client_allowed(const struct client *c)
{
	gid_t groups[MAX_GROUPS];
	size_t n;

	if (!c->have_cred) {
		return false;
	}
	if (c->uid == 0 || c->uid == c->srv->owner_uid) {
		return true;
	}
	n = caller_groups(c, groups, MAX_GROUPS);
	return macc_ctl_caller_allowed(c->uid, groups, n, c->srv->owner_uid, c->srv->sock_gid);
}

/* --- server teardown ------------------------------------------------------------------------- */

static void server_maybe_free(struct macc_ctl_server *s)
{
	void (*done)(void *arg);
	void *arg;

	if (!s->closing || s->open_handles > 0 || s->nalloc > 0) {
		return;
	}
	done = s->done;
	arg = s->done_arg;
	free(s->path);
	free(s->group);
	free(s->version);
	free(s);
	if (done != NULL) {
		done(arg);
	}
}

static void on_server_handle_closed(uv_handle_t *h)
{
	struct macc_ctl_server *s = h->data;

	s->open_handles--;
	server_maybe_free(s);
}

void macc_ctl_server_close(struct macc_ctl_server *s, void (*done)(void *arg), void *arg)
{
	if (s == NULL || s->closing) {
		return;
	}
	s->closing = true;
	s->done = done;
	s->done_arg = arg;
	while (s->clients != NULL) {
		client_close(s->clients);
	}
	uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
	uv_close((uv_handle_t *)&s->idle, on_server_handle_closed);
	if (s->path != NULL) {
		unlink(s->path);
	}
	server_maybe_free(s);
}

/* --- client lifetime --------------------------------------------------------------------- */

static void on_client_handle_closed(uv_handle_t *h)
{
	struct client *c = h->data;
	struct macc_ctl_server *s = c->srv;

	if (--c->open_handles > 0) {
		return;
	}
	macc_buf_finish(&c->in);
	free(c);
	s->nalloc--;
	server_maybe_free(s);
}

static void client_close(struct client *c)
{
	struct macc_ctl_server *s = c->srv;

	if (c->closing) {
		return;
	}
	c->closing = true;
	if (c->prev != NULL) {
		c->prev->next = c->next;
	} else {
		s->clients = c->next;
	}
	if (c->next != NULL) {
		c->next->prev = c->prev;
	}
	s->nclients--;
	if (c->watching) {
		c->watching = false;
		s->nwatchers--;
	}
	uv_close((uv_handle_t *)&c->pipe, on_client_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_client_handle_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct client *c = h->data;

	(void)suggested;
	buf->base = c->srv->rbuf;
	buf->len = sizeof(c->srv->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void process(struct client *c);

/* Read when nothing holds us back; otherwise make sure libuv is not reading. */
static void update_reading(struct client *c)
{
	bool want = !c->closing && !c->pending && !c->throttled && !c->close_after_write;

	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0) {
			c->reading = true;
		}
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = false;
	}
}

static void on_idle_timeout(uv_timer_t *t)
{
	struct client *c = t->data;

	if (c->watching) {
		return;
	}
	macc_debug(LOG_PREFIX, "closing a control client idle for %u ms",
		   c->srv->idle_timeout_ms);
	client_close(c);
}

void ctl_restart_timer(struct client *c)
{
	if (c->closing) {
		return;
	}
	if (c->watching) {
		uv_timer_stop(&c->timer);
	} else {
		uv_timer_start(&c->timer, on_idle_timeout, c->srv->idle_timeout_ms, 0);
	}
}

/* --- replies ------------------------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct client *c = w->c;

	free(w->data);
	free(w);
	if (c->closing) {
		return;
	}
	if (status < 0) {
		client_close(c);
		return;
	}
	if (c->close_after_write && uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) == 0) {
		client_close(c);
		return;
	}
	if (c->throttled &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) < WRITE_QUEUE_MAX / 2) {
		c->throttled = false;
		process(c); /* the requests it sent before it was throttled, then reading again */
	}
}

/* Encode and queue one reply; on failure the client is closed. */
static void send_reply(struct client *c, const struct macc_ctl_reply *rep)
{
	struct macc_buf b;
	struct write_req *w;
	uv_buf_t ub;
	size_t len;
	int r;

	if (c->closing) {
		return;
	}
	macc_buf_init(&b, MACC_CTL_MAX_REPLY + MACC_CTL_FRAME_HEADER);
	r = macc_ctl_reply_encode(rep, &b);
	if (r < 0) {
		struct macc_ctl_reply e;

		macc_ctl_reply_init(&e);
		e.id = rep->id;
		e.status = MACC_CTL_EINTERNAL;
		snprintf(e.error, sizeof(e.error), "the reply could not be encoded: %s",
			 macc_strerror(r));
		macc_buf_reset(&b);
		r = macc_ctl_reply_encode(&e, &b);
	}
	w = calloc(1, sizeof(*w));
	if (r < 0 || w == NULL) {
		free(w);
		macc_buf_finish(&b);
		client_close(c);
		return;
	}
	w->c = c;
	w->data = macc_buf_steal(&b, &len);
	ub = uv_buf_init((char *)w->data, (unsigned)len);
	r = uv_write(&w->req, (uv_stream_t *)&c->pipe, &ub, 1, on_write);
	if (r < 0) {
		free(w->data);
		free(w);
		client_close(c);
		return;
	}
	if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > WRITE_QUEUE_MAX) {
		c->throttled = true;
		update_reading(c);
	}
}

static void send_error(struct client *c, uint64_t id, int status, const char *msg)
{
	struct macc_ctl_reply rep;

	macc_ctl_reply_init(&rep);
	rep.id = id;
	rep.status = status;
	snprintf(rep.error, sizeof(rep.error), "%s", msg);
	send_reply(c, &rep);
}

static void watch_stop(struct client *c)
{
	if (c->watching) {
		c->watching = false;
		c->srv->nwatchers--;
		ctl_restart_timer(c);
	}
}

static void handle_request(struct client *c, const uint8_t *body, size_t n)
{
	struct macc_ctl_server *s = c->srv;
	struct macc_ctl_request req;
	struct macc_ctl_reply rep;
	struct macc_errmsg err;
	void *free1 = NULL, *free2 = NULL;
	int r;

	memset(&req, 0, sizeof(req));
	err.text[0] = '\0';
	r = macc_ctl_request_decode(body, n, &req, &err);
	macc_ctl_reply_init(&rep);
	rep.id = req.id;
	if (r < 0) {
		if (macc_ratelimit_ok(&s->rl, LOG_PREFIX)) {
			macc_info(LOG_PREFIX, "refused a request from uid %ld: %s", (long)c->uid,
				  err.text);
		}
		rep.status = macc_ctl_status_from_err(r);
		snprintf(rep.error, sizeof(rep.error), "%.250s", err.text);
		send_reply(c, &rep);
		return;
	}
	if (macc_ctl_commands[req.cmd].mutating && !client_allowed(c)) {
		if (macc_ratelimit_ok(&s->rl, LOG_PREFIX)) {
			macc_info(LOG_PREFIX, "refused '%s' from uid %ld: not permitted",
				  macc_ctl_commands[req.cmd].name, (long)c->uid);
		}
		rep.status = MACC_CTL_EPERM;
		snprintf(rep.error, sizeof(rep.error),
			 "'%s' changes the agent and needs root, the daemon's user or "
			 "membership in the socket's group",
			 macc_ctl_commands[req.cmd].name);
		send_reply(c, &rep);
		return;
	}
	ctl_run_command(c, &req, &rep, &free1, &free2);
	send_reply(c, &rep);
	free(free1);
	free(free2);
}

/* Handle up to FRAMES_PER_TURN complete frames; leaves the rest for the next turn. */
static void process(struct client *c)
{
	struct macc_ctl_server *s = c->srv;
	int budget = FRAMES_PER_TURN;

	c->pending = false;
	/* A throttled client's buffered requests wait too: otherwise small pipelined requests for
	 * large replies (`model`: 4 MiB each) would queue replies without bound. */
	while (!c->closing && !c->close_after_write && !c->throttled) {
		size_t blen = 0;
		int r = macc_ctl_frame_next(c->in.data, c->in.len, MACC_CTL_MAX_REQUEST, &blen);

		if (r == 0) {
			break;
		}
		if (budget-- == 0) {
			c->pending = true;
			if (!s->idle_active && !s->closing) {
				uv_idle_start(&s->idle, on_idle);
				s->idle_active = true;
			}
			break;
		}
		if (r == MACC_ETOOBIG) {
			char msg[128];

			snprintf(msg, sizeof(msg),
				 "request frame of %u bytes is over the limit of %u",
				 macc_get_be32(c->in.data), MACC_CTL_MAX_REQUEST);
			send_error(c, 0, MACC_CTL_ETOOBIG, msg);
			c->close_after_write = true;
			macc_buf_reset(&c->in);
			break;
		}
		if (r == MACC_EMALFORMED) {
			send_error(c, 0, MACC_CTL_EMALFORMED, "empty request frame");
			macc_buf_consume(&c->in, MACC_CTL_FRAME_HEADER);
			continue;
		}
		handle_request(c, c->in.data + MACC_CTL_FRAME_HEADER, blen);
		if (c->closing) {
			return;
		}
		macc_buf_consume(&c->in, MACC_CTL_FRAME_HEADER + blen);
		ctl_restart_timer(c);
	}
	update_reading(c);
}

/* Next turn: continue the clients that ran out of budget. */
static void on_idle(uv_idle_t *h)
{
	struct macc_ctl_server *s = h->data;
	bool any = false;

	for (struct client *c = s->clients, *next; c != NULL; c = next) {
		next = c->next;
		if (c->pending) {
			process(c);
		}
	}
	for (struct client *c = s->clients; c != NULL; c = c->next) {
		any = any || c->pending;
	}
	if (!any && s->idle_active) {
		uv_idle_stop(&s->idle);
		s->idle_active = false;
	}
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct client *c = st->data;

	if (nread < 0) {
		/* EOF or error: whatever was half-sent is dropped. */
		client_close(c);
		return;
	}
	if (nread == 0 || c->closing) {
		return;
	}
	if (macc_buf_append(&c->in, buf->base, (size_t)nread) < 0) {
		client_close(c);
		return;
	}
	process(c);
}

/* How many clients may be connected when `c` arrives: all slots for root and the daemon's
 * user, all but the reserved ones for everybody else. */
static uint32_t client_cap(const struct macc_ctl_server *s, const struct client *c)
{
	if (c->have_cred && (c->uid == 0 || c->uid == s->owner_uid)) {
		return s->max_clients;
	}
	return s->max_clients - s->reserved_clients;
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct macc_ctl_server *s = listener->data;
	struct client *c;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	uv_os_fd_t fd;

	if (status < 0) {
		if (macc_ratelimit_ok(&s->rl, LOG_PREFIX)) {
			macc_warn(LOG_PREFIX, "accept failed: %s", uv_strerror(status));
		}
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return; /* the connection stays in the backlog; libuv retries */
	}
	c->srv = s;
	macc_buf_init(&c->in, 2 * (MACC_CTL_MAX_REQUEST + MACC_CTL_FRAME_HEADER) +
				      sizeof(s->rbuf));
	uv_pipe_init(s->loop, &c->pipe, 0);
	uv_timer_init(s->loop, &c->timer);
	c->pipe.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	s->nalloc++;
	/* Link first so that client_close() can unlink on every path. */
	c->next = s->clients;
	if (s->clients != NULL) {
		s->clients->prev = c;
	}
	s->clients = c;
	s->nclients++;
	if (uv_accept(listener, (uv_stream_t *)&c->pipe) < 0) {
		client_close(c);
		return;
	}
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
		c->uid = cred.uid;
		c->gid = cred.gid;
		c->pid = cred.pid;
		c->have_cred = true;
	}
	if (s->nclients > client_cap(s, c)) {
		if (macc_ratelimit_ok(&s->rl, LOG_PREFIX)) {
			macc_info(LOG_PREFIX, "refused a client of uid %ld: %u clients connected "
				  "(at most %u, %u of them kept for root and uid %ld)",
				  (long)c->uid, s->nclients - 1, s->max_clients,
				  s->reserved_clients, (long)s->owner_uid);
		}
		send_error(c, 0, MACC_CTL_EBUSY, "too many control clients, try again later");
		c->close_after_write = true;
		return;
	}
	ctl_restart_timer(c);
	update_reading(c);
}

void macc_ctl_server_publish(struct macc_ctl_server *s, const struct macc_ctl_progress *p)
{
	if (s == NULL || s->closing) {
		return;
	}
	for (struct client *c = s->clients, *next; c != NULL; c = next) {
		struct macc_ctl_reply rep;

		next = c->next;
		if (!c->watching || c->closing) {
			continue;
		}
		if (!p->final &&
		    uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > WRITE_QUEUE_MAX / 2) {
			continue; /* a slow watcher misses intermediate events */
		}
		macc_ctl_reply_init(&rep);
		rep.id = c->watch_id;
		rep.kind = MACC_CTL_DATA_PROGRESS;
		rep.progress = *p;
		if (p->final) {
			watch_stop(c);
		}
		send_reply(c, &rep);
	}
}

/* Remove a stale socket file; refuse when a server answers on it or it is not a socket. */
static int clear_stale(const char *path, struct macc_errmsg *err)
{
	struct stat stt;
	struct sockaddr_un sa;
	int fd, r;

	if (lstat(path, &stt) < 0) {
		if (errno == ENOENT) {
			return 0;
		}
		return macc_errf(err, -errno, "%s: %s", path, strerror(errno));
	}
	if (!S_ISSOCK(stt.st_mode)) {
		return macc_errf(err, -EEXIST, "%s: exists and is not a socket", path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return macc_errf(err, -errno, "socket: %s", strerror(errno));
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (r == 0) {
		return macc_errf(err, -EADDRINUSE, "%s: another daemon is listening on it", path);
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		return macc_errf(err, -errno, "%s: cannot remove the stale socket: %s", path,
				 strerror(errno));
	}
	return 0;
}

int macc_ctl_server_create(uv_loop_t *loop, const struct macc_ctl_server_opts *opts,
			   const struct macc_ctl_ops *ops, void *ctx,
			   struct macc_ctl_server **ret_server, struct macc_errmsg *err)
{
	struct macc_ctl_server_opts o;
	struct macc_ctl_server *s;
	const char *path;
	int r;

	if (opts != NULL) {
		o = *opts;
	} else {
		macc_ctl_server_opts_init(&o);
	}
	path = o.path != NULL ? o.path : MACC_CTL_DEFAULT_SOCKET;
	if (strlen(path) == 0 || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		return macc_errf(err, -ENAMETOOLONG, "%s: control socket path empty or too long",
				 path);
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		return macc_errf(err, -ENOMEM, "out of memory");
	}
	s->loop = loop;
	s->ops = ops;
	s->ctx = ctx;
	s->owner_uid = o.owner_uid;
	s->max_clients = o.max_clients != 0 ? o.max_clients : 64;
	s->reserved_clients = o.reserved_clients < s->max_clients ? o.reserved_clients
								  : s->max_clients - 1;
	s->idle_timeout_ms = o.idle_timeout_ms != 0 ? o.idle_timeout_ms : 30000;
	s->path = strdup(path);
	s->group = strdup(o.group != NULL ? o.group : "macc");
	s->version = strdup(o.version != NULL ? o.version : MACC_VERSION);
	macc_ratelimit_init(&s->rl, 10000, 10);
	if (s->path == NULL || s->group == NULL || s->version == NULL) {
		r = macc_errf(err, -ENOMEM, "out of memory");
		goto fail_free;
	}
	s->sock_gid = getegid();
	if (s->group[0] != '\0') {
		struct group gr, *res = NULL;
		char buf[4096];

		if (getgrnam_r(s->group, &gr, buf, sizeof(buf), &res) == 0 && res != NULL) {
			s->sock_gid = res->gr_gid;
		}
	}
	r = clear_stale(path, err);
	if (r < 0) {
		goto fail_free;
	}
	uv_pipe_init(loop, &s->listener, 0);
	uv_idle_init(loop, &s->idle);
	s->listener.data = s;
	s->idle.data = s;
	s->open_handles = 2;
	r = uv_pipe_bind(&s->listener, path);
	if (r < 0) {
		macc_errf(err, r, "%s: cannot bind the control socket: %s", path, uv_strerror(r));
		goto fail_close;
	}
	/* Permissions before listen(): nobody can connect in between. */
	if (chmod(path, o.mode != 0 ? o.mode : 0660) < 0) {
		r = macc_errf(err, -errno, "%s: chmod: %s", path, strerror(errno));
		goto fail_close;
	}
	if (s->sock_gid != getegid() && chown(path, (uid_t)-1, s->sock_gid) < 0) {
		r = macc_errf(err, -errno, "%s: chown to group %s: %s", path, s->group,
			      strerror(errno));
		goto fail_close;
	}
	r = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
	if (r < 0) {
		macc_errf(err, r, "%s: listen: %s", path, uv_strerror(r));
		goto fail_close;
	}
	*ret_server = s;
	return 0;

fail_close:
	/* The handles are closed; the struct is freed by the last close callback. */
	unlink(path);
	free(s->path);
	s->path = NULL;
	s->closing = true;
	uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
	uv_close((uv_handle_t *)&s->idle, on_server_handle_closed);
	return r;
fail_free:
	free(s->path);
	free(s->group);
	free(s->version);
	free(s);
	return r;
}
