/*
 * graph.c - communication graphs: the topology generators and the edge-list parser.
 *
 * A graph is a dense symmetric n x n byte adjacency matrix. Dense is right here: n is the number
 * of agents (tens to a few thousands), W is dense anyway for the spectral gap, and degree and
 * neighbour queries are then trivial loops in ascending agent index, which is the order the
 * mixing step sums in.
 *
 * Deterministic generators (ring, full, bipartite, star, torus) ignore the seed. The random ones
 * (regular:D, er:P) draw from macc_rng on MACC_STREAM_GRAPH and resample until the graph is
 * connected, a bounded number of times, so a spec that can (almost) never be connected fails with
 * MACC_EGRAPH instead of looping. Random D-regular graphs use pairing with greedy restarts
 * (Steger-Wormald style): pick two random free "stubs" on different, not yet adjacent vertices;
 * if no such pair remains, start over. For D > (n-1)/2 the complement (degree n-1-D, same parity)
 * is generated instead, which keeps the pairing far from its dead ends.
 *
 * Directed graphs (push-sum) use the same dense layout without the symmetry, and the
 * same edge-list parser: "a -> b" lines are one direction, "a b" both. The undirected parser
 * refuses arrows, so a directed topology file never silently becomes an undirected graph.
 *
 * Every function is pure: no globals, no logging; errors carry a message naming the spec.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macc/consensus.h"
#include "macc/rng.h"

enum {
	MAX_N = 16384,           /* adjacency is n*n bytes: 256 MiB at this bound */
	MAX_SAMPLES = 1000,      /* random graphs: samples before giving up on connectivity */
	MAX_FILE = 64 << 20,     /* edge-list file size limit */
	PAIR_TRIES = 64,         /* random stub-pair draws before an exhaustive check */
};

static int graph_alloc(struct macc_graph *g, uint32_t n)
{
	g->n = n;
	g->adj = calloc((size_t)n * n, 1);
	return g->adj == NULL ? -ENOMEM : 0;
}

static void add_edge(struct macc_graph *g, uint32_t a, uint32_t b)
{
	if (a != b) {
		g->adj[(size_t)a * g->n + b] = 1;
		g->adj[(size_t)b * g->n + a] = 1;
	}
}

void macc_graph_finish(struct macc_graph *g)
{
	if (g == NULL) {
		return;
	}
	free(g->adj);
	g->adj = NULL;
	g->n = 0;
}

/* Number of 1s in row j of an n x n adjacency matrix: a degree, or an out-degree. */
static uint32_t adj_row_sum(const uint8_t *adj, uint32_t n, uint32_t j)
{
	const uint8_t *row = adj + (size_t)j * n;
	uint32_t d = 0;

	for (uint32_t l = 0; l < n; l++) {
		d += row[l];
	}
	return d;
}

uint32_t macc_graph_degree(const struct macc_graph *g, uint32_t j)
{
	return adj_row_sum(g->adj, g->n, j);
}

bool macc_graph_connected(const struct macc_graph *g)
{
	uint32_t *queue;
	uint8_t *seen;
	uint32_t head = 0, tail = 0;
	bool ok;

	if (g->n <= 1) {
		return g->n == 1;
	}
	queue = malloc((size_t)g->n * sizeof(*queue));
	seen = calloc(g->n, 1);
	if (queue == NULL || seen == NULL) {
		free(queue);
		free(seen);
		return false;
	}
	seen[0] = 1;
	queue[tail++] = 0;
	while (head < tail) {
		uint32_t a = queue[head++];
		const uint8_t *row = g->adj + (size_t)a * g->n;

		for (uint32_t b = 0; b < g->n; b++) {
			if (row[b] && !seen[b]) {
				seen[b] = 1;
				queue[tail++] = b;
			}
		}
	}
	ok = tail == g->n;
	free(queue);
	free(seen);
	return ok;
}

/* Strict unsigned decimal: digits only, no sign or spaces, value <= max. Returns the end. */
static const char *parse_u32(const char *s, uint32_t max, uint32_t *ret)
{
	uint64_t v = 0;
	const char *p = s;

	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > max) {
			return NULL;
		}
		p++;
	}
	if (p == s) {
		return NULL;
	}
	*ret = (uint32_t)v;
	return p;
}

static void gen_ring(struct macc_graph *g)
{
	for (uint32_t j = 0; g->n > 1 && j < g->n; j++) {
		add_edge(g, j, (j + 1) % g->n);
	}
}

static void gen_full(struct macc_graph *g)
{
	for (uint32_t a = 0; a < g->n; a++) {
		for (uint32_t b = a + 1; b < g->n; b++) {
			add_edge(g, a, b);
		}
	}
}

static void gen_torus(struct macc_graph *g, uint32_t rows, uint32_t cols)
{
	for (uint32_t r = 0; r < rows; r++) {
		for (uint32_t c = 0; c < cols; c++) {
			uint32_t j = r * cols + c;

			add_edge(g, j, ((r + 1) % rows) * cols + c);
			add_edge(g, j, r * cols + (c + 1) % cols);
		}
	}
}

/* One attempt at a d-regular pairing into g (cleared first). Returns 0, 1 if stuck, or -ENOMEM. */
static int pair_regular(struct macc_graph *g, uint32_t d, struct macc_rng *r)
{
	size_t m = (size_t)g->n * d;
	uint32_t *pts = malloc((m ? m : 1) * sizeof(*pts));
	uint32_t n = g->n;

	if (pts == NULL) {
		return -ENOMEM;
	}
	memset(g->adj, 0, (size_t)n * n);
	for (size_t i = 0; i < m; i++) {
		pts[i] = (uint32_t)(i / d);
	}
	while (m > 0) {
		size_t i = 0, j = 0;
		bool found = false;

		for (int t = 0; t < PAIR_TRIES && !found; t++) {
			i = (size_t)macc_rng_below(r, m);
			j = (size_t)macc_rng_below(r, m);
			found = pts[i] != pts[j] && !g->adj[(size_t)pts[i] * n + pts[j]];
		}
		/* Exhaustive check from a random start: is any valid pair left at all? */
		for (size_t s = 0, off = (size_t)macc_rng_below(r, m); !found && s < m; s++) {
			i = (off + s) % m;
			for (j = i + 1; j < m && !found; j++) {
				found = pts[i] != pts[j] && !g->adj[(size_t)pts[i] * n + pts[j]];
			}
			j--;
		}
		if (!found) {
			free(pts);
			return 1;
		}
		add_edge(g, pts[i], pts[j]);
		/* Remove both stubs, the larger index first so the smaller stays valid. */
		size_t hi = i > j ? i : j, lo = i > j ? j : i;

		pts[hi] = pts[--m];
		pts[lo] = pts[--m];
	}
	free(pts);
	return 0;
}

static void complement(struct macc_graph *g)
{
	for (uint32_t a = 0; a < g->n; a++) {
		for (uint32_t b = 0; b < g->n; b++) {
			size_t k = (size_t)a * g->n + b;

			g->adj[k] = a != b && !g->adj[k];
		}
	}
}

static int gen_regular(struct macc_graph *g, uint32_t d, uint64_t seed, const char *spec,
		       struct macc_errmsg *err)
{
	uint32_t n = g->n;
	bool comp = d > (n - 1) / 2;
	uint32_t dd = comp ? n - 1 - d : d;
	struct macc_rng r;

	macc_rng_seed(&r, seed, MACC_STREAM_GRAPH);
	for (int s = 0; s < MAX_SAMPLES; s++) {
		int rc = pair_regular(g, dd, &r);

		if (rc < 0) {
			return rc;
		}
		if (rc > 0) {
			continue;
		}
		if (comp) {
			complement(g);
		}
		if (macc_graph_connected(g)) {
			return 0;
		}
	}
	return macc_errf(err, MACC_EGRAPH,
			 "topology '%s' on %u agents: no connected sample in %d attempts", spec, n,
			 MAX_SAMPLES);
}

static int gen_er(struct macc_graph *g, double p, uint64_t seed, const char *spec,
		  struct macc_errmsg *err)
{
	struct macc_rng r;
	/* Bound the work, not just the count: a hopeless P on many agents fails in seconds. */
	double pairs = 0.5 * (double)g->n * (double)(g->n - 1);
	int samples = pairs > 0 ? (int)fmin(MAX_SAMPLES, fmax(20.0, 2e8 / pairs)) : 1;

	macc_rng_seed(&r, seed, MACC_STREAM_GRAPH);
	for (int s = 0; s < samples; s++) {
		memset(g->adj, 0, (size_t)g->n * g->n);
		for (uint32_t a = 0; a < g->n; a++) {
			for (uint32_t b = a + 1; b < g->n; b++) {
				if (macc_rng_uniform(&r) < p) {
					add_edge(g, a, b);
				}
			}
		}
		if (macc_graph_connected(g)) {
			return 0;
		}
	}
	return macc_errf(err, MACC_EGRAPH,
			 "topology '%s' on %u agents: not connected in %d samples (raise P)", spec,
			 g->n, samples);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Reads one agent number from [*p, end); advances *p. 0, or 1 if none, or 2 if malformed. */
static int read_agent(const char **p, const char *end, uint32_t n, uint32_t *ret, bool *range)
{
	const char *s = *p;
	uint64_t v = 0;

	while (s < end && is_blank(*s)) {
		s++;
	}
	if (s == end) {
		*p = s;
		return 1;
	}
	if (*s < '0' || *s > '9') {
		*p = s;
		return 2;
	}
	*range = false;
	while (s < end && *s >= '0' && *s <= '9') {
		if (v < (uint64_t)n) {
			v = v * 10 + (uint64_t)(*s - '0');
		}
		s++;
	}
	if (s < end && !is_blank(*s)) {
		*p = s;
		return 2;
	}
	*range = v >= n;
	*ret = (uint32_t)v;
	*p = s;
	return 0;
}

/*
 * The edge-list text parser shared by the undirected and the directed graph. Lines are "a b"
 * (both directions) or, when `directed`, "a -> b" (a sends to b); the undirected parser refuses
 * the arrow with a message saying so. Edges go into adj ([n][n], zeroed by the caller).
 */
static int parse_edges(const char *text, size_t len, uint32_t n, const char *name, bool directed,
		       uint8_t *adj, struct macc_errmsg *err)
{
	const char *p = text, *end = text + len;
	size_t line = 0;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *stop = eol ? eol : end;
		const char *hash = memchr(p, '#', (size_t)(stop - p));
		const char *q = p;
		uint32_t ab[2];
		bool range = false, arrow = false;

		line++;
		if (hash != NULL) {
			stop = hash;
		}
		for (int k = 0; k < 2; k++) {
			int r;

			if (k == 1) {
				const char *t = q;

				while (t < stop && is_blank(*t)) {
					t++;
				}
				if (stop - t >= 2 && t[0] == '-' && t[1] == '>') {
					if (!directed) {
						return macc_errf(
							err, MACC_ESPEC,
							"%s:%zu: directed edge 'a -> b' in an "
							"undirected topology (write 'a b', or use "
							"a push-sum algorithm)", name, line);
					}
					arrow = true;
					q = t + 2;
				}
			}
			r = read_agent(&q, stop, n, &ab[k], &range);
			if (r == 1 && k == 0) {
				goto next; /* blank or comment-only line */
			}
			if (r != 0) {
				return macc_errf(err, MACC_ESPEC, directed ?
						 "%s:%zu: expected 'a -> b' or 'a b'" :
						 "%s:%zu: expected two agent numbers 'a b'",
						 name, line);
			}
			if (range) {
				return macc_errf(err, MACC_ESPEC, "%s:%zu: agent number out "
						 "of range (agents are 0..%u)", name, line, n - 1);
			}
		}
		while (q < stop && is_blank(*q)) {
			q++;
		}
		if (q != stop) {
			return macc_errf(err, MACC_ESPEC, "%s:%zu: trailing text after the edge",
					 name, line);
		}
		if (ab[0] == ab[1]) {
			return macc_errf(err, MACC_ESPEC, "%s:%zu: self loop %u-%u", name, line,
					 ab[0], ab[1]);
		}
		adj[(size_t)ab[0] * n + ab[1]] = 1;
		if (!arrow) {
			adj[(size_t)ab[1] * n + ab[0]] = 1;
		}
next:
		p = eol ? eol + 1 : end;
	}
	return 0;
}

int macc_graph_parse_edgelist(const char *text, size_t len, uint32_t n, const char *name,
			      struct macc_graph *ret, struct macc_errmsg *err)
{
	struct macc_graph g = {0};
	int rc;

	if (n == 0 || n > MAX_N) {
		return macc_errf(err, MACC_ESPEC, "%s: number of agents %u outside 1..%d", name, n,
				 MAX_N);
	}
	rc = graph_alloc(&g, n);
	if (rc < 0) {
		return rc;
	}
	rc = parse_edges(text, len, n, name, false, g.adj, err);
	if (rc < 0) {
		goto out;
	}
	if (!macc_graph_connected(&g)) {
		rc = macc_errf(err, MACC_EGRAPH, "%s: graph on %u agents is not connected", name,
			       n);
		goto out;
	}
	*ret = g;
	return 0;
out:
	macc_graph_finish(&g);
	return rc;
}

/* Reads a whole edge-list file (bounded size) into *ret_buf (owned by the caller). */
static int read_text_file(const char *path, const char *spec, char **ret_buf, size_t *ret_len,
			  struct macc_errmsg *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int rc = 0;

	if (f == NULL) {
		rc = -errno;
		return macc_errf(err, rc, "topology '%s': cannot open %s: %s", spec, path,
				 strerror(-rc));
	}
	for (;;) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 4096;

			if (cap >= MAX_FILE) {
				rc = macc_errf(err, MACC_ESPEC, "topology '%s': %s is larger than %d bytes",
					       spec, path, MAX_FILE);
				goto out;
			}
			char *nb = realloc(buf, ncap);

			if (nb == NULL) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		size_t got = fread(buf + len, 1, cap - len, f);

		len += got;
		if (got == 0) {
			break;
		}
	}
	if (ferror(f)) {
		rc = macc_errf(err, -EIO, "topology '%s': read error on %s", spec, path);
		goto out;
	}
	*ret_buf = buf;
	*ret_len = len;
	buf = NULL;
out:
	free(buf);
	fclose(f);
	return rc;
}

static int read_edge_file(const char *path, uint32_t n, const char *spec, struct macc_graph *ret,
			  struct macc_errmsg *err)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = read_text_file(path, spec, &buf, &len, err);

	if (rc < 0) {
		return rc;
	}
	rc = macc_graph_parse_edgelist(buf, len, n, path, ret, err);
	free(buf);
	return rc;
}

static void gen_star(struct macc_graph *g, uint32_t n)
{
	for (uint32_t j = 1; j < n; j++) {
		add_edge(g, 0, j);
	}
}

static int gen_bipartite(struct macc_graph *g, uint32_t n, const char *spec,
			 struct macc_errmsg *err)
{
	if (n % 2 != 0) {
		return macc_errf(err, MACC_ESPEC, "topology '%s' needs an even number of agents, "
				 "got %u", spec, n);
	}
	for (uint32_t a = 0; a < n / 2; a++) {
		for (uint32_t b = n / 2; b < n; b++) {
			add_edge(g, a, b);
		}
	}
	return 0;
}

/* torus:RxC, arg = "RxC" */
static int gen_torus_spec(struct macc_graph *g, uint32_t n, const char *spec, const char *arg,
			  struct macc_errmsg *err)
{
	uint32_t rows, cols;
	const char *p = parse_u32(arg, MAX_N, &rows);

	if (p == NULL || (*p != 'x' && *p != 'X') ||
	    (p = parse_u32(p + 1, MAX_N, &cols)) == NULL || *p != '\0' || rows == 0 ||
	    cols == 0) {
		return macc_errf(err, MACC_ESPEC, "topology '%s': expected torus:RxC with "
				 "positive integers R and C", spec);
	}
	if ((uint64_t)rows * cols != n) {
		return macc_errf(err, MACC_ESPEC, "topology '%s': %ux%u = %llu agents, but there "
				 "are %u", spec, rows, cols,
				 (unsigned long long)rows * cols, n);
	}
	gen_torus(g, rows, cols);
	return 0;
}

/* regular:D, arg = "D" */
static int gen_regular_spec(struct macc_graph *g, uint32_t n, uint64_t seed, const char *spec,
			    const char *arg, struct macc_errmsg *err)
{
	uint32_t d;
	const char *p = parse_u32(arg, MAX_N, &d);

	if (p == NULL || *p != '\0') {
		return macc_errf(err, MACC_ESPEC, "topology '%s': expected regular:D with an "
				 "integer degree D", spec);
	}
	if (d >= n || ((uint64_t)n * d) % 2 != 0) {
		return macc_errf(err, MACC_ESPEC, "topology '%s' on %u agents: need D < n and "
				 "n*D even", spec, n);
	}
	if (n > 2 && d < 2) {
		return macc_errf(err, MACC_EGRAPH, "topology '%s' on %u agents is never "
				 "connected (need D >= 2)", spec, n);
	}
	return gen_regular(g, d, seed, spec, err);
}

/* er:P, arg = "P" */
static int gen_er_spec(struct macc_graph *g, uint64_t seed, const char *spec, const char *arg,
		       struct macc_errmsg *err)
{
	char *e = NULL;
	double p = arg[0] != '\0' && arg[0] != ' ' ? strtod(arg, &e) : NAN;

	if (e == NULL || *e != '\0' || !(p > 0.0 && p <= 1.0)) {
		return macc_errf(err, MACC_ESPEC, "topology '%s': expected er:P with edge "
				 "probability 0 < P <= 1", spec);
	}
	return gen_er(g, p, seed, spec, err);
}

/* The edges of a generated topology (every spec but file:) into g, allocated for n */
static int generate(struct macc_graph *g, uint32_t n, const char *spec, uint64_t seed,
		    struct macc_errmsg *err)
{
	const char *arg = strchr(spec, ':');

	arg = arg ? arg + 1 : NULL;
	if (strcmp(spec, "ring") == 0) {
		gen_ring(g);
	} else if (strcmp(spec, "full") == 0) {
		gen_full(g);
	} else if (strcmp(spec, "star") == 0) {
		gen_star(g, n);
	} else if (strcmp(spec, "bipartite") == 0) {
		return gen_bipartite(g, n, spec, err);
	} else if (strncmp(spec, "torus:", 6) == 0) {
		return gen_torus_spec(g, n, spec, arg, err);
	} else if (strncmp(spec, "regular:", 8) == 0) {
		return gen_regular_spec(g, n, seed, spec, arg, err);
	} else if (strncmp(spec, "er:", 3) == 0) {
		return gen_er_spec(g, seed, spec, arg, err);
	} else {
		return macc_errf(err, MACC_ESPEC, "unknown topology '%s' (ring, full, bipartite, "
				 "star, torus:RxC, regular:D, er:P, file:PATH)", spec);
	}
	return 0;
}

int macc_graph_create(const char *spec, uint32_t n, uint64_t seed, struct macc_graph *ret,
		      struct macc_errmsg *err)
{
	struct macc_graph g = {0};
	int rc;

	if (spec == NULL) {
		return macc_errf(err, MACC_ESPEC, "topology: no spec given");
	}
	if (n == 0 || n > MAX_N) {
		return macc_errf(err, MACC_ESPEC, "topology '%s': number of agents %u outside 1..%d",
				 spec, n, MAX_N);
	}
	if (strncmp(spec, "file:", 5) == 0) {
		if (spec[5] == '\0') {
			return macc_errf(err, MACC_ESPEC, "topology '%s': missing path", spec);
		}
		return read_edge_file(spec + 5, n, spec, ret, err);
	}
	rc = graph_alloc(&g, n);
	if (rc < 0) {
		return rc;
	}
	rc = generate(&g, n, spec, seed, err);
	if (rc < 0) {
		goto out;
	}
	if (!macc_graph_connected(&g)) {
		rc = macc_errf(err, MACC_EGRAPH, "topology '%s' on %u agents is not connected", spec,
			       n);
		goto out;
	}
	*ret = g;
	return 0;
out:
	macc_graph_finish(&g);
	return rc;
}

/* ---- Directed graphs (push-sum) ---- */

void macc_digraph_finish(struct macc_digraph *g)
{
	if (g == NULL) {
		return;
	}
	free(g->adj);
	g->adj = NULL;
	g->n = 0;
}

uint32_t macc_digraph_outdeg(const struct macc_digraph *g, uint32_t j)
{
	return adj_row_sum(g->adj, g->n, j);
}

uint32_t macc_digraph_indeg(const struct macc_digraph *g, uint32_t j)
{
	uint32_t d = 0;

	for (uint32_t l = 0; l < g->n; l++) {
		d += g->adj[(size_t)l * g->n + j];
	}
	return d;
}

/* Breadth-first search from agent 0 along the edges (reverse: against them); true if all seen. */
static bool reaches_all(const struct macc_digraph *g, bool reverse, uint32_t *queue, uint8_t *seen)
{
	uint32_t n = g->n, head = 0, tail = 0;

	memset(seen, 0, n);
	seen[0] = 1;
	queue[tail++] = 0;
	while (head < tail) {
		uint32_t a = queue[head++];

		for (uint32_t b = 0; b < n; b++) {
			uint8_t e = reverse ? g->adj[(size_t)b * n + a] : g->adj[(size_t)a * n + b];

			if (e && !seen[b]) {
				seen[b] = 1;
				queue[tail++] = b;
			}
		}
	}
	return tail == n;
}

bool macc_digraph_strongly_connected(const struct macc_digraph *g)
{
	uint32_t *queue;
	uint8_t *seen;
	bool ok;

	if (g->n <= 1) {
		return g->n == 1;
	}
	queue = malloc((size_t)g->n * sizeof(*queue));
	seen = malloc(g->n);
	ok = queue != NULL && seen != NULL && reaches_all(g, false, queue, seen) &&
	     reaches_all(g, true, queue, seen);
	free(queue);
	free(seen);
	return ok;
}

int macc_digraph_parse_edgelist(const char *text, size_t len, uint32_t n, const char *name,
				struct macc_digraph *ret, struct macc_errmsg *err)
{
	struct macc_digraph g = {0};
	int rc;

	if (n == 0 || n > MAX_N) {
		return macc_errf(err, MACC_ESPEC, "%s: number of agents %u outside 1..%d", name, n,
				 MAX_N);
	}
	g.n = n;
	g.adj = calloc((size_t)n * n, 1);
	if (g.adj == NULL) {
		return -ENOMEM;
	}
	rc = parse_edges(text, len, n, name, true, g.adj, err);
	if (rc < 0) {
		goto out;
	}
	if (!macc_digraph_strongly_connected(&g)) {
		rc = macc_errf(err, MACC_EGRAPH, "%s: directed graph on %u agents is not strongly "
			       "connected", name, n);
		goto out;
	}
	*ret = g;
	return 0;
out:
	macc_digraph_finish(&g);
	return rc;
}

int macc_digraph_create(const char *spec, uint32_t n, uint64_t seed, struct macc_digraph *ret,
			struct macc_errmsg *err)
{
	struct macc_graph u = {0};
	int rc;

	if (spec != NULL && strncmp(spec, "file:", 5) == 0 && spec[5] != '\0') {
		char *buf = NULL;
		size_t len = 0;

		if (n == 0 || n > MAX_N) {
			return macc_errf(err, MACC_ESPEC, "topology '%s': number of agents %u "
					 "outside 1..%d", spec, n, MAX_N);
		}
		rc = read_text_file(spec + 5, spec, &buf, &len, err);
		if (rc < 0) {
			return rc;
		}
		rc = macc_digraph_parse_edgelist(buf, len, n, spec + 5, ret, err);
		free(buf);
		return rc;
	}
	rc = macc_graph_create(spec, n, seed, &u, err);
	if (rc < 0) {
		return rc;
	}
	/* Same layout: the symmetric adjacency is a digraph with both directions of each edge. */
	ret->n = u.n;
	ret->adj = u.adj;
	return 0;
}
