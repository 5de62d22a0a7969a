/*
 * client.c - macc-ctl's connection to the daemon: a blocking Unix stream socket, one request at
 * a time, replies read with a timeout (poll) so a wedged daemon cannot hang a script. Every
 * failure is reported here as one sentence, so subcommands only map the return code.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "macc/buf.h"
#include "macc/ctl.h"

#include "cli.h"

void cli_err(struct cli *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "macc-ctl: %s\n", msg);
	if (c != NULL && c->errmsg[0] == '\0') {
		snprintf(c->errmsg, sizeof(c->errmsg), "%s", msg);
	}
}

void cli_json_error(struct cli *c, int exit_code, int status, const char *msg)
{
	struct json j;

	json_init(&j, stdout);
	json_obj(&j, NULL);
	json_bool(&j, "ok", false);
	if (c->command != NULL) {
		json_str(&j, "command", c->command);
	} else {
		json_null(&j, "command");
	}
	json_i64(&j, "exit_code", exit_code);
	if (status >= 0) {
		json_i64(&j, "status", status);
		json_str(&j, "status_name", macc_ctl_status_name(status));
	} else {
		json_null(&j, "status");
		json_null(&j, "status_name");
	}
	json_str(&j, "error", msg);
	json_end_obj(&j);
	json_done(&j);
	c->error_printed = true;
}

int cli_term_width(void)
{
	struct winsize ws;
	const char *env;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
		return ws.ws_col;
	}
	env = getenv("COLUMNS");
	if (env != NULL) {
		long n = strtol(env, NULL, 10);

		if (n > 0 && n < 10000) {
			return (int)n;
		}
	}
	return 80;
}

int cli_connect(struct cli *c)
{
	struct sockaddr_un sa;
	int fd;

	if (c->fd >= 0) {
		return CLI_OK;
	}
	if (strlen(c->socket_path) >= sizeof(sa.sun_path)) {
		cli_err(c, "the socket path %s is too long.", c->socket_path);
		return CLI_ECONNECT;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		cli_err(c, "cannot create a socket: %s.", strerror(errno));
		return CLI_ECONNECT;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, c->socket_path, strlen(c->socket_path));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		if (e == ENOENT || e == ECONNREFUSED) {
			cli_err(c, "cannot connect to %s: %s (is macc-agentd running?).",
				c->socket_path, strerror(e));
		} else if (e == EACCES) {
			cli_err(c, "cannot connect to %s: %s (are you in the macc group?).",
				c->socket_path, strerror(e));
		} else {
			cli_err(c, "cannot connect to %s: %s.", c->socket_path, strerror(e));
		}
		return CLI_ECONNECT;
	}
	c->fd = fd;
	return CLI_OK;
}

void cli_disconnect(struct cli *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read exactly n bytes; 0, -ETIMEDOUT, -ECONNRESET (EOF) or -errno. */
static int read_all(int fd, uint8_t *p, size_t n, int timeout_ms)
{
	while (n > 0) {
		ssize_t r;

		if (timeout_ms > 0) {
			struct pollfd pfd = { fd, POLLIN, 0 };
			int pr = poll(&pfd, 1, timeout_ms);

			if (pr < 0 && errno == EINTR) {
				continue;
			}
			if (pr == 0) {
				return -ETIMEDOUT;
			}
			if (pr < 0) {
				return -errno;
			}
		}
		r = recv(fd, p, n, 0);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r == 0) {
			return -ECONNRESET;
		}
		if (r < 0) {
			return -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int recv_reply(struct cli *c, enum macc_ctl_cmd cmd, struct macc_ctl_reply *ret,
		      int timeout_ms)
{
	uint8_t hdr[MACC_CTL_FRAME_HEADER];
	uint8_t *body;
	size_t len;
	struct macc_errmsg err;
	int r;

	r = read_all(c->fd, hdr, sizeof(hdr), timeout_ms);
	if (r == 0) {
		r = macc_ctl_frame_next(hdr, sizeof(hdr), MACC_CTL_MAX_REPLY, &len);
		if (r == 0) {
			len = macc_get_be32(hdr); /* header complete; body follows */
		} else if (r < 0) {
			cli_err(c, "the daemon sent a bad frame (%s).", macc_strerror(r));
			return CLI_ECONNECT;
		}
	}
	if (r < 0) {
		if (r == -ETIMEDOUT) {
			cli_err(c, "the daemon did not answer within %d ms.", timeout_ms);
		} else if (r == -ECONNRESET) {
			cli_err(c, "the daemon closed the connection.");
		} else {
			cli_err(c, "reading from %s failed: %s.", c->socket_path, strerror(-r));
		}
		return CLI_ECONNECT;
	}
	body = malloc(len);
	if (body == NULL) {
		cli_err(c, "out of memory.");
		return CLI_ECONNECT;
	}
	r = read_all(c->fd, body, len, timeout_ms);
	if (r < 0) {
		free(body);
		cli_err(c, "the daemon's reply was cut short (%s).", strerror(-r));
		return CLI_ECONNECT;
	}
	err.text[0] = '\0';
	r = macc_ctl_reply_decode(body, len, cmd, ret, &err);
	free(body);
	if (r == MACC_EVERSION) {
		cli_err(c, "the daemon speaks another control protocol version (%s).", err.text);
		return CLI_ECONNECT;
	}
	if (r < 0) {
		cli_err(c, "the daemon's reply does not decode: %s.", err.text);
		return CLI_ECONNECT;
	}
	return CLI_OK;
}

int cli_call(struct cli *c, const struct macc_ctl_request *req, struct macc_ctl_reply *ret,
	     int timeout_ms)
{
	struct macc_buf b;
	int r;

	r = cli_connect(c);
	if (r != CLI_OK) {
		return r;
	}
	macc_buf_init(&b, MACC_CTL_MAX_REQUEST);
	r = macc_ctl_request_encode(req, &b);
	if (r == 0) {
		r = write_all(c->fd, b.data, b.len);
		if (r < 0) {
			cli_err(c, "sending to %s failed: %s.", c->socket_path, strerror(-r));
		}
	} else {
		cli_err(c, "cannot encode the request: %s.", macc_strerror(r));
	}
	macc_buf_finish(&b);
	if (r < 0) {
		return CLI_ECONNECT;
	}
	for (;;) {
		r = recv_reply(c, req->cmd, ret, timeout_ms);
		if (r != CLI_OK) {
			return r;
		}
		if (ret->id == req->id || ret->id == 0) {
			return CLI_OK; /* id 0: a connection-level error (busy, too big) */
		}
		macc_ctl_reply_finish(ret); /* a stale event: skip */
	}
}

int cli_next(struct cli *c, enum macc_ctl_cmd cmd, uint64_t id, struct macc_ctl_reply *ret)
{
	for (;;) {
		int r = recv_reply(c, cmd, ret, 0);

		if (r != CLI_OK || ret->id == id || ret->id == 0) {
			return r;
		}
		macc_ctl_reply_finish(ret);
	}
}

int cli_daemon_error(struct cli *c, const char *cmd, const struct macc_ctl_reply *rep)
{
	const char *msg = rep->error[0] != '\0' ? rep->error : macc_ctl_status_name(rep->status);
	size_t n = strlen(msg);
	char esc[1100];

	if (c->json) {
		cli_json_error(c, CLI_EDAEMON, rep->status, msg);
	}
	/* The daemon's sentence may quote what a peer or a client sent: escaped. */
	cli_err(c, "%s failed (%s): %s%s", cmd, macc_ctl_status_name(rep->status),
		macc_escape(esc, sizeof(esc), msg), n > 0 && msg[n - 1] == '.' ? "" : ".");
	return CLI_EDAEMON;
}
