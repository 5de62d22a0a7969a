/*
 * bench_predict.c - latency of `predict` over a daemon's control socket, one row and a batch
 * of 64, against the same forward pass in-process (the floor: what the daemon computes).
 *
 *   bench_predict SOCKET [ITERATIONS]
 *
 * The model and its parameters come from the daemon (`model`), so the in-process figure uses
 * exactly the daemon's parameters. Each request is one round trip on a connection kept open,
 * as a local application would use it: encode, write, the daemon's decode / copy / forward
 * pass / encode on its loop thread, read, decode. Inputs are uniform in [0, 1), a new batch per
 * request. Prints the median, 90th and 99th percentiles and the mean in microseconds, and the
 * median's ratio to the in-process median (how much the socket and the codec add).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "macc/buf.h"
#include "macc/ctl.h"
#include "macc/log.h"
#include "macc/nn.h"
#include "macc/rng.h"

static void die(const char *what)
{
	fprintf(stderr, "bench_predict: %s\n", what);
	exit(1);
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path)) {
		die("socket");
	}
	memcpy(sa.sun_path, path, strlen(path));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror(path);
		exit(1);
	}
	return fd;
}

static void io(int fd, void *p, size_t n, bool out)
{
	uint8_t *b = p;

	while (n > 0) {
		ssize_t k = out ? write(fd, b, n) : read(fd, b, n);

		if (k < 0 && errno == EINTR) {
			continue;
		}
		if (k <= 0) {
			die(out ? "write failed" : "the daemon closed the connection");
		}
		b += k;
		n -= (size_t)k;
	}
}

/* One request, one reply (decoded into *rep; its status must be ok). */
static void call(int fd, const struct macc_ctl_request *req, struct macc_ctl_reply *rep)
{
	static uint8_t *body;
	static size_t cap;
	struct macc_buf b;
	struct macc_errmsg err = {{0}};
	uint8_t hdr[4];
	size_t len;

	macc_buf_init(&b, MACC_CTL_MAX_REQUEST + 4);
	if (macc_ctl_request_encode(req, &b) < 0) {
		die("encode");
	}
	io(fd, b.data, b.len, true);
	macc_buf_finish(&b);
	io(fd, hdr, 4, false);
	len = macc_get_be32(hdr);
	if (len > MACC_CTL_MAX_REPLY) {
		die("reply too big");
	}
	if (len > cap) {
		body = realloc(body, len);
		cap = len;
	}
	io(fd, body, len, false);
	if (macc_ctl_reply_decode(body, len, req->cmd, rep, &err) < 0) {
		die(err.text);
	}
	if (rep->status != MACC_CTL_OK) {
		fprintf(stderr, "bench_predict: %s: %s\n", macc_ctl_status_name(rep->status),
			rep->error);
		exit(1);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct stats {
	double p50, p90, p99, mean;
};

static struct stats summarize(uint64_t *ns, int n)
{
	struct stats s = {0};
	double sum = 0;

	qsort(ns, (size_t)n, sizeof(*ns), cmp_u64);
	for (int i = 0; i < n; i++) {
		sum += (double)ns[i];
	}
	s.p50 = (double)ns[n / 2] / 1e3;
	s.p90 = (double)ns[n * 9 / 10] / 1e3;
	s.p99 = (double)ns[n * 99 / 100] / 1e3;
	s.mean = sum / n / 1e3;
	return s;
}

/* The daemon's model and parameters, through `model`. */
static struct macc_model *fetch_model(int fd, float **ret_params)
{
	struct macc_ctl_request req = {.v = MACC_CTL_PROTO_VERSION, .id = 1,
				       .cmd = MACC_CTL_CMD_MODEL, .count = MACC_CTL_MODEL_CHUNK};
	struct macc_ctl_reply rep;
	struct macc_errmsg err = {{0}};
	struct macc_model *m;

	call(fd, &req, &rep);
	if (rep.model.total > MACC_CTL_MODEL_CHUNK || rep.model.standardized) {
		die("bench with a model of one chunk and no standardiser");
	}
	if (macc_model_create(rep.model.spec, MACC_CTL_PREDICT_BATCH, &m, &err) < 0) {
		die(err.text);
	}
	*ret_params = malloc(rep.model.data_len);
	memcpy(*ret_params, rep.model.data, rep.model.data_len);
	printf("model %s (%s, round %llu), %zu inputs\n", rep.model.spec, rep.model.name,
	       (unsigned long long)rep.model.round, macc_model_input_dim(m));
	macc_ctl_reply_finish(&rep);
	return m;
}

static void bench_rows(int fd, struct macc_model *m, const float *params, size_t rows,
		       int iters, struct macc_rng *rng)
{
	size_t dim = macc_model_input_dim(m);
	float *x = malloc(rows * dim * sizeof(float));
	float *out = malloc(rows * macc_model_nclasses(m) * sizeof(float));
	uint64_t *ns = malloc((size_t)iters * sizeof(uint64_t));
	struct stats sock, local;

	for (int i = 0; i < iters; i++) {
		struct macc_ctl_request req = {.v = MACC_CTL_PROTO_VERSION, .id = 100 + (uint64_t)i,
					       .cmd = MACC_CTL_CMD_PREDICT,
					       .inputs = (const uint8_t *)x,
					       .inputs_len = rows * dim * sizeof(float)};
		struct macc_ctl_reply rep;
		uint64_t t0;

		for (size_t k = 0; k < rows * dim; k++) {
			x[k] = (float)macc_rng_uniform(rng);
		}
		t0 = macc_now_ns();
		call(fd, &req, &rep);
		ns[i] = macc_now_ns() - t0;
		if (rep.predict.rows != rows) {
			die("wrong row count in the reply");
		}
		macc_ctl_reply_finish(&rep);
	}
	sock = summarize(ns, iters);
	for (int i = 0; i < iters; i++) {
		uint64_t t0 = macc_now_ns();

		macc_model_predict(m, params, x, rows, out);
		ns[i] = macc_now_ns() - t0;
	}
	local = summarize(ns, iters);
	printf("predict %4zu row%s: socket p50 %8.1f us  p90 %8.1f  p99 %8.1f  mean %8.1f | "
	       "in-process p50 %8.1f us | ratio %.1fx\n", rows, rows == 1 ? " " : "s", sock.p50,
	       sock.p90, sock.p99, sock.mean, local.p50, sock.p50 / local.p50);
	free(x);
	free(out);
	free(ns);
}

int main(int argc, char **argv)
{
	int iters = argc > 2 ? atoi(argv[2]) : 500;
	struct macc_rng rng;
	struct macc_model *m;
	float *params;
	int fd;

	if (argc < 2 || iters < 10) {
		die("usage: bench_predict SOCKET [ITERATIONS >= 10]");
	}
	macc_nn_set_threads(1);
	macc_rng_seed(&rng, 1, 2);
	fd = connect_to(argv[1]);
	m = fetch_model(fd, &params);
	bench_rows(fd, m, params, 1, iters, &rng);
	bench_rows(fd, m, params, 64, iters, &rng);
	close(fd);
	macc_model_destroy(m);
	free(params);
	return 0;
}
