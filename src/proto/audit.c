/*
 * audit.c - the audit trail of excluded STATE messages (see macc/audit.h for the file format).
 *
 * Design. One line per entry, written with a single write(2) on an O_APPEND descriptor, so a
 * crash leaves at worst one partial last line (which the verifier reports as truncation and the
 * lister skips). The writer keeps the current file's size to rotate before a line would pass
 * max_bytes, and the evidence directory's file list (name order = seq order) to prune the oldest
 * bodies before a new one would pass evidence_max_bytes. Nothing is assumed about the caller:
 * macc_audit_append verifies the signature and the body's digest itself, with
 * macc_state_signed_verify, before anything reaches the disk.
 *
 * Evidence files are written to NAME.tmp, fsync'ed and renamed, so a body is either whole or
 * absent; its entry's line follows, so an entry never names a body that was not complete.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "macc/audit.h"

#define MAGIC "macc-audit/1"
#define CHECK_BYTES 16
#define EVIDENCE_SUFFIX ".body"
#define PATHBUF 1400 /* a file in the state or evidence directory */

struct evfile {
	uint64_t seq;
	uint64_t size;
};

struct macc_audit {
	char dir[1024];
	char path[1060];   /* dir/audit.log */
	char evdir[1060];  /* dir/audit-evidence */
	struct macc_audit_opts o;
	int fd;            /* -1 until the first append */
	uint64_t size;     /* of the current file */
	uint64_t next_seq;
	struct evfile *ev; /* stored bodies, ascending seq */
	size_t nev, capev;
	uint64_t evbytes;
	struct macc_audit_stats st;
};

/* ---- small helpers ---- */

static void hex_put(char *dst, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		dst[2 * i] = digits[p[i] >> 4];
		dst[2 * i + 1] = digits[p[i] & 15];
	}
	dst[2 * n] = '\0';
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	return -1;
}

/* Exactly 2n lower-case hex digits into n bytes. */
static int hex_get(const char *s, size_t len, uint8_t *out, size_t n)
{
	if (len != 2 * n) {
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		int hi = hex_val(s[2 * i]), lo = hex_val(s[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			return -1;
		}
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static bool name_ok(const char *s, bool allow_empty)
{
	if (*s == '\0') {
		return allow_empty;
	}
	for (; *s != '\0'; s++) {
		char c = *s;

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-')) {
			return false;
		}
	}
	return true;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void evidence_name(uint64_t seq, char out[32])
{
	snprintf(out, 32, "%020llu" EVIDENCE_SUFFIX, (unsigned long long)seq);
}

/* ---- format and parse ---- */

int macc_audit_format(const struct macc_audit_entry *e, char *buf, size_t cap)
{
	char kb[MACC_KEY_B64_SIZE];
	char text[2 * MACC_STATE_SIGNED_BYTES + 1], sig[2 * MACC_SIG_BYTES + 1];
	char chk[2 * CHECK_BYTES + 1];
	uint8_t sum[CHECK_BYTES];
	int n, m;

	if (!name_ok(e->reason, false) || !name_ok(e->peer, false) ||
	    !name_ok(e->evidence, true)) {
		return MACC_EMALFORMED;
	}
	macc_pubkey_to_b64(&e->key, kb);
	hex_put(text, e->text, sizeof(e->text));
	hex_put(sig, e->sig, sizeof(e->sig));
	n = snprintf(buf, cap,
		     MAGIC " seq=%llu time_ms=%llu round=%llu reason=%s peer=%s key=%s signed=%s "
		     "sig=%s body_len=%llu evidence=%s",
		     (unsigned long long)e->seq, (unsigned long long)e->time_ms,
		     (unsigned long long)e->round, e->reason, e->peer, kb, text, sig,
		     (unsigned long long)e->body_len, e->evidence[0] ? e->evidence : "-");
	if (n < 0 || (size_t)n >= cap) {
		return -ENOSPC;
	}
	macc_blake2b(sum, sizeof(sum), buf, (size_t)n);
	hex_put(chk, sum, sizeof(sum));
	m = snprintf(buf + n, cap - (size_t)n, " check=%s\n", chk);
	if (m < 0 || (size_t)m >= cap - (size_t)n) {
		return -ENOSPC;
	}
	return n + m;
}

/* The next "key=value" field at *pos: value in [*ret_v, *ret_v + *ret_vlen). */
static bool field(const char *line, size_t len, size_t *pos, const char *key, const char **ret_v,
		  size_t *ret_vlen)
{
	size_t k = strlen(key), p = *pos, e;

	if (p >= len || len - p < k + 1 || memcmp(line + p, key, k) != 0 || line[p + k] != '=') {
		return false;
	}
	p += k + 1;
	e = p;
	while (e < len && line[e] != ' ') {
		e++;
	}
	*ret_v = line + p;
	*ret_vlen = e - p;
	*pos = e < len ? e + 1 : e;
	return true;
}

static bool get_u64(const char *v, size_t n, uint64_t *ret)
{
	uint64_t x = 0;

	if (n == 0 || n > 20 || (n > 1 && v[0] == '0')) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9' || x > (UINT64_MAX - (uint64_t)(v[i] - '0')) / 10) {
			return false;
		}
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	*ret = x;
	return true;
}

static bool get_name(const char *v, size_t n, char *dst, size_t cap)
{
	if (n == 0 || n >= cap) {
		return false;
	}
	memcpy(dst, v, n);
	dst[n] = '\0';
	return name_ok(dst, false);
}

int macc_audit_parse(const char *line, size_t len, struct macc_audit_entry *ret,
		     struct macc_errmsg *err)
{
	struct macc_audit_entry e;
	const char *v;
	size_t n, pos = sizeof(MAGIC), body_end;
	char kb[MACC_KEY_B64_SIZE];
	uint8_t sum[CHECK_BYTES], chk[CHECK_BYTES];

	if (len > 0 && line[len - 1] == '\n') {
		len--;
	}
	memset(&e, 0, sizeof(e));
	if (len < sizeof(MAGIC) || memcmp(line, MAGIC " ", sizeof(MAGIC)) != 0) {
		return macc_errf(err, MACC_EMALFORMED, "does not start with '" MAGIC " '");
	}
	if (memchr(line, '\0', len) != NULL) {
		return macc_errf(err, MACC_EMALFORMED, "holds a NUL byte");
	}
	if (!field(line, len, &pos, "seq", &v, &n) || !get_u64(v, n, &e.seq)) {
		return macc_errf(err, MACC_EMALFORMED, "bad or missing 'seq'");
	}
	if (!field(line, len, &pos, "time_ms", &v, &n) || !get_u64(v, n, &e.time_ms)) {
		return macc_errf(err, MACC_EMALFORMED, "bad or missing 'time_ms'");
	}
	if (!field(line, len, &pos, "round", &v, &n) || !get_u64(v, n, &e.round)) {
		return macc_errf(err, MACC_EMALFORMED, "bad or missing 'round'");
	}
	if (!field(line, len, &pos, "reason", &v, &n) ||
	    !get_name(v, n, e.reason, sizeof(e.reason))) {
		return macc_errf(err, MACC_EMALFORMED, "bad or missing 'reason'");
	}
	if (!field(line, len, &pos, "peer", &v, &n) || !get_name(v, n, e.peer, sizeof(e.peer))) {
		return macc_errf(err, MACC_EMALFORMED, "bad or missing 'peer'");
	}
	if (!field(line, len, &pos, "key", &v, &n) || n != MACC_KEY_B64_LEN) {
		return macc_errf(err, MACC_EMALFORMED, "bad or missing 'key'");
	}
	memcpy(kb, v, n);
	kb[n] = '\0';
	if (macc_pubkey_from_b64(&e.key, kb, NULL) < 0) {
		return macc_errf(err, MACC_EMALFORMED, "'key' is not a base64 public key");
	}
	if (!field(line, len, &pos, "signed", &v, &n) || hex_get(v, n, e.text, sizeof(e.text))) {
		return macc_errf(err, MACC_EMALFORMED, "bad or missing 'signed' (%d hex digits)",
				 2 * MACC_STATE_SIGNED_BYTES);
	}
	if (!field(line, len, &pos, "sig", &v, &n) || hex_get(v, n, e.sig, sizeof(e.sig))) {
		return macc_errf(err, MACC_EMALFORMED, "bad or missing 'sig' (%d hex digits)",
				 2 * MACC_SIG_BYTES);
	}
	if (!field(line, len, &pos, "body_len", &v, &n) || !get_u64(v, n, &e.body_len)) {
		return macc_errf(err, MACC_EMALFORMED, "bad or missing 'body_len'");
	}
	if (!field(line, len, &pos, "evidence", &v, &n) ||
	    (!(n == 1 && v[0] == '-') && !get_name(v, n, e.evidence, sizeof(e.evidence)))) {
		return macc_errf(err, MACC_EMALFORMED, "bad or missing 'evidence'");
	}
	body_end = pos - 1;
	if (!field(line, len, &pos, "check", &v, &n) || hex_get(v, n, chk, sizeof(chk)) ||
	    pos != len) {
		return macc_errf(err, MACC_EMALFORMED, "bad or missing 'check', or trailing bytes");
	}
	macc_blake2b(sum, sizeof(sum), line, body_end);
	if (!macc_ct_equal(sum, chk, sizeof(sum))) {
		return macc_errf(err, MACC_EMALFORMED, "check value does not match the line "
				 "(the entry was altered or damaged)");
	}
	*ret = e;
	return 0;
}

/* ---- the writer ---- */

static int ev_push(struct macc_audit *l, uint64_t seq, uint64_t size)
{
	if (l->nev == l->capev) {
		size_t nc = l->capev ? 2 * l->capev : 64;
		struct evfile *p = realloc(l->ev, nc * sizeof(*p));

		if (p == NULL) {
			return -ENOMEM;
		}
		l->ev = p;
		l->capev = nc;
	}
	l->ev[l->nev].seq = seq;
	l->ev[l->nev].size = size;
	l->nev++;
	l->evbytes += size;
	return 0;
}

static int ev_cmp(const void *a, const void *b)
{
	const struct evfile *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* What is in the evidence directory now (leftover .tmp files are removed). */
static int ev_scan(struct macc_audit *l)
{
	DIR *d = opendir(l->evdir);
	struct dirent *de;
	int rc = 0;

	if (d == NULL) {
		return -errno;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		char p[PATHBUF];
		struct stat sb;
		size_t n = strlen(de->d_name);
		uint64_t seq;

		if (n != 20 + strlen(EVIDENCE_SUFFIX) ||
		    strcmp(de->d_name + 20, EVIDENCE_SUFFIX) != 0) {
			if (n > 4 && strcmp(de->d_name + n - 4, ".tmp") == 0) {
				snprintf(p, sizeof(p), "%s/%s", l->evdir, de->d_name);
				(void)unlink(p);
			}
			continue;
		}
		seq = strtoull(de->d_name, NULL, 10);
		snprintf(p, sizeof(p), "%s/%s", l->evdir, de->d_name);
		if (stat(p, &sb) == 0) {
			rc = ev_push(l, seq, (uint64_t)sb.st_size);
		}
	}
	closedir(d);
	if (rc == 0 && l->nev > 1) {
		qsort(l->ev, l->nev, sizeof(*l->ev), ev_cmp);
	}
	return rc;
}

/* Largest seq in one log file (0 when none or unreadable). */
static uint64_t last_seq_in(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[MACC_AUDIT_LINE_MAX + 2];
	uint64_t best = 0;

	if (f == NULL) {
		return 0;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		struct macc_audit_entry e;

		if (macc_audit_parse(line, strlen(line), &e, NULL) == 0 && e.seq > best) {
			best = e.seq;
		}
	}
	fclose(f);
	return best;
}

int macc_audit_open(const struct macc_audit_opts *o, struct macc_audit **ret,
		    struct macc_errmsg *err)
{
	struct macc_audit *l;
	uint64_t seq;
	int rc;

	if (o->dir == NULL || strlen(o->dir) >= sizeof(l->dir) || o->files < 1 ||
	    o->max_bytes < MACC_AUDIT_LINE_MAX) {
		return macc_errf(err, -EINVAL, "audit: bad options (directory, files >= 1, "
				 "max_bytes >= %d)", MACC_AUDIT_LINE_MAX);
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		return macc_errf(err, -ENOMEM, "audit: out of memory");
	}
	snprintf(l->dir, sizeof(l->dir), "%s", o->dir);
	snprintf(l->path, sizeof(l->path), "%s/" MACC_AUDIT_FILE, l->dir);
	snprintf(l->evdir, sizeof(l->evdir), "%s/" MACC_AUDIT_EVIDENCE_DIR, l->dir);
	l->o = *o;
	l->o.dir = l->dir;
	l->fd = -1;
	seq = last_seq_in(l->path);
	for (uint32_t i = 1; i < o->files && seq == 0; i++) {
		char p[PATHBUF];

		snprintf(p, sizeof(p), "%s.%u", l->path, i);
		seq = last_seq_in(p);
	}
	l->next_seq = seq + 1;
	if (o->evidence) {
		if (mkdir(l->evdir, 0700) < 0 && errno != EEXIST) {
			rc = -errno;
			macc_errf(err, rc, "audit evidence directory %s: %s", l->evdir, strerror(-rc));
			free(l);
			return rc;
		}
		rc = ev_scan(l);
		if (rc < 0) {
			macc_errf(err, rc, "audit evidence directory %s: %s", l->evdir,
				  strerror(-rc));
			macc_audit_close(l);
			return rc;
		}
	}
	*ret = l;
	return 0;
}

void macc_audit_close(struct macc_audit *l)
{
	if (l == NULL) {
		return;
	}
	if (l->fd >= 0) {
		close(l->fd);
	}
	free(l->ev);
	free(l);
}

void macc_audit_get_stats(const struct macc_audit *l, struct macc_audit_stats *ret)
{
	*ret = l->st;
}

static int open_current(struct macc_audit *l, struct macc_errmsg *err)
{
	struct stat sb;
	int rc;

	l->fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (l->fd < 0 || fstat(l->fd, &sb) < 0) {
		rc = -errno;
		if (l->fd >= 0) {
			close(l->fd);
			l->fd = -1;
		}
		return macc_errf(err, rc, "audit log %s: %s", l->path, strerror(-rc));
	}
	l->size = (uint64_t)sb.st_size;
	return 0;
}

/* audit.log -> .1 -> .2 ...; the oldest beyond `files` is deleted. */
static int rotate(struct macc_audit *l, struct macc_errmsg *err)
{
	char from[PATHBUF], to[PATHBUF];

	close(l->fd);
	l->fd = -1;
	if (l->o.files == 1) {
		if (unlink(l->path) < 0 && errno != ENOENT) {
			int rc = -errno;
			return macc_errf(err, rc, "audit log %s: %s", l->path, strerror(-rc));
		}
	} else {
		snprintf(to, sizeof(to), "%s.%u", l->path, l->o.files - 1);
		(void)unlink(to);
		for (uint32_t i = l->o.files - 1; i > 1; i--) {
			snprintf(from, sizeof(from), "%s.%u", l->path, i - 1);
			snprintf(to, sizeof(to), "%s.%u", l->path, i);
			(void)rename(from, to);
		}
		snprintf(to, sizeof(to), "%s.1", l->path);
		if (rename(l->path, to) < 0) {
			int rc = -errno;
			return macc_errf(err, rc, "audit log rotation %s: %s", l->path, strerror(-rc));
		}
	}
	l->st.rotations++;
	return open_current(l, err);
}

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;

	while (n > 0) {
		ssize_t w = write(fd, q, n);

		if (w < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Store a body as evidence, within the bound. 1 stored, 0 skipped (too big), -errno. */
static int store_evidence(struct macc_audit *l, uint64_t seq, const uint8_t *body, size_t len,
			  char name[32])
{
	char tmp[PATHBUF + 8], dst[PATHBUF];
	int fd, rc;

	if ((uint64_t)len > l->o.evidence_max_bytes) {
		return 0;
	}
	while (l->nev > 0 && l->evbytes + len > l->o.evidence_max_bytes) {
		char old[32];

		evidence_name(l->ev[0].seq, old);
		snprintf(dst, sizeof(dst), "%s/%s", l->evdir, old);
		(void)unlink(dst);
		l->evbytes -= l->ev[0].size;
		memmove(l->ev, l->ev + 1, (l->nev - 1) * sizeof(*l->ev));
		l->nev--;
		l->st.pruned++;
	}
	evidence_name(seq, name);
	snprintf(dst, sizeof(dst), "%s/%s", l->evdir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		return -errno;
	}
	rc = write_all(fd, body, len);
	if (rc == 0 && fsync(fd) < 0) {
		rc = -errno;
	}
	close(fd);
	if (rc == 0 && rename(tmp, dst) < 0) {
		rc = -errno;
	}
	if (rc < 0) {
		(void)unlink(tmp);
		return rc;
	}
	rc = ev_push(l, seq, len);
	return rc < 0 ? rc : 1;
}

int macc_audit_append(struct macc_audit *l, struct macc_audit_entry *e, const uint8_t *body,
		      size_t body_len, struct macc_errmsg *err)
{
	char line[MACC_AUDIT_LINE_MAX];
	uint64_t round;
	int n, rc;

	if (body == NULL) {
		return macc_errf(err, MACC_EMALFORMED, "audit: no body to check the digest with");
	}
	/* The one check this log relies on, made here and now (not by whoever received it). */
	rc = macc_state_signed_verify(&e->key, e->text, sizeof(e->text), e->sig, body, body_len,
				      &round, err);
	if (rc < 0) {
		return rc;
	}
	e->seq = l->next_seq;
	e->round = round;
	e->body_len = body_len;
	e->evidence[0] = '\0';
	if (e->time_ms == 0) {
		e->time_ms = wall_ms();
	}
	if (l->o.evidence) {
		rc = store_evidence(l, e->seq, body, body_len, e->evidence);
		if (rc <= 0) {
			e->evidence[0] = '\0';
			l->st.evidence_skipped++;
		} else {
			l->st.evidence_files++;
		}
		if (rc < 0) {
			macc_errf(err, rc, "audit evidence in %s: %s", l->evdir, strerror(-rc));
			return rc;
		}
	}
	n = macc_audit_format(e, line, sizeof(line));
	if (n < 0) {
		return macc_errf(err, n, "audit: entry does not fit the format (peer name '%s')",
				 e->peer);
	}
	if (l->fd < 0 && (rc = open_current(l, err)) < 0) {
		return rc;
	}
	if (l->size > 0 && l->size + (uint64_t)n > l->o.max_bytes && (rc = rotate(l, err)) < 0) {
		return rc;
	}
	rc = write_all(l->fd, line, (size_t)n);
	if (rc == 0 && fdatasync(l->fd) < 0) {
		rc = -errno;
	}
	if (rc < 0) {
		/* Keep the file whole lines: cut back what part of the line made it. */
		if (ftruncate(l->fd, (off_t)l->size) < 0) {
			close(l->fd);
			l->fd = -1; /* reopened (and its size re-read) next time */
		}
		return macc_errf(err, rc, "audit log %s: %s", l->path, strerror(-rc));
	}
	l->size += (uint64_t)n;
	l->next_seq++;
	l->st.entries++;
	return 0;
}

/* ---- reading ---- */

/* Call fn for every line of a file (the last one possibly without newline: `whole` false). */
static int each_line(const char *path, int (*fn)(void *arg, const char *line, size_t len,
						  bool whole, uint64_t lineno),
		     void *arg)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	uint64_t lineno = 0;
	int rc = 0;

	if (f == NULL) {
		return -errno;
	}
	while (rc == 0 && (n = getline(&buf, &cap, f)) > 0) {
		lineno++;
		rc = fn(arg, buf, (size_t)n, buf[n - 1] == '\n', lineno);
	}
	if (rc == 0 && ferror(f)) {
		rc = -EIO;
	}
	free(buf);
	fclose(f);
	return rc;
}

struct list_ctx {
	struct macc_audit_entry *ring; /* last `limit` entries */
	size_t limit, count;
	uint64_t total, bad;
};

static int list_line(void *arg, const char *line, size_t len, bool whole, uint64_t lineno)
{
	struct list_ctx *c = arg;
	struct macc_audit_entry e;

	(void)lineno;
	if (!whole || len > MACC_AUDIT_LINE_MAX || macc_audit_parse(line, len, &e, NULL) < 0) {
		c->bad++;
		return 0;
	}
	c->total++;
	if (c->limit > 0) {
		c->ring[c->count % c->limit] = e;
		c->count++;
	}
	return 0;
}

int macc_audit_list(const char *dir, uint32_t files, size_t limit, struct macc_audit_entry **ret,
		    size_t *ret_n, uint64_t *ret_total, uint64_t *ret_bad, struct macc_errmsg *err)
{
	struct list_ctx c;
	struct macc_audit_entry *out = NULL;
	size_t n;

	memset(&c, 0, sizeof(c));
	c.limit = limit;
	if (limit > 0 && (c.ring = calloc(limit, sizeof(*c.ring))) == NULL) {
		return macc_errf(err, -ENOMEM, "audit: out of memory");
	}
	for (uint32_t i = files > 0 ? files : 1; i-- > 0;) {
		char p[PATHBUF];
		int rc;

		if (i == 0) {
			snprintf(p, sizeof(p), "%s/" MACC_AUDIT_FILE, dir);
		} else {
			snprintf(p, sizeof(p), "%s/" MACC_AUDIT_FILE ".%u", dir, i);
		}
		rc = each_line(p, list_line, &c);
		if (rc < 0 && rc != -ENOENT) {
			free(c.ring);
			return macc_errf(err, rc, "audit log %s: %s", p, strerror(-rc));
		}
	}
	n = c.count < limit ? c.count : limit;
	if (n > 0) {
		out = malloc(n * sizeof(*out));
		if (out == NULL) {
			free(c.ring);
			return macc_errf(err, -ENOMEM, "audit: out of memory");
		}
		for (size_t i = 0; i < n; i++) {
			out[i] = c.ring[(c.count - n + i) % limit];
		}
	}
	free(c.ring);
	*ret = out;
	*ret_n = n;
	*ret_total = c.total;
	*ret_bad = c.bad;
	return 0;
}

struct verify_ctx {
	const char *evdir;
	struct macc_audit_verify v;
	uint64_t last_seq;
	bool failed; /* verify_line wrote the error */
	struct macc_errmsg *err;
};

/* Read a whole evidence file; -ENOENT when it is gone. */
static int read_file(const char *path, uint8_t **ret, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int rc = 0;

	if (f == NULL) {
		return -errno;
	}
	for (;;) {
		size_t got;

		if (len == cap) {
			size_t nc = cap ? 2 * cap : 65536;
			uint8_t *p = realloc(buf, nc);

			if (p == NULL) {
				rc = -ENOMEM;
				break;
			}
			buf = p;
			cap = nc;
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0) {
			rc = ferror(f) ? -EIO : 0;
			break;
		}
	}
	fclose(f);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

static int verify_line(void *arg, const char *line, size_t len, bool whole, uint64_t lineno)
{
	struct verify_ctx *c = arg;
	struct macc_audit_entry e;
	struct macc_errmsg why;
	uint64_t idx = c->v.entries + 1, round;
	uint8_t *body = NULL;
	size_t blen = 0;
	bool had_body;
	int rc;

	c->failed = true; /* until this entry passes: every return below set c->err */
	why.text[0] = '\0';
	if (!whole) {
		return macc_errf(c->err, MACC_EMALFORMED, "entry %llu (line %llu): truncated: the "
				 "file ends inside it", (unsigned long long)idx,
				 (unsigned long long)lineno);
	}
	if (len > MACC_AUDIT_LINE_MAX) {
		return macc_errf(c->err, MACC_EMALFORMED, "entry %llu (line %llu): line too long",
				 (unsigned long long)idx, (unsigned long long)lineno);
	}
	rc = macc_audit_parse(line, len, &e, &why);
	if (rc < 0) {
		return macc_errf(c->err, rc, "entry %llu (line %llu): %s", (unsigned long long)idx,
				 (unsigned long long)lineno, why.text);
	}
	if (e.seq <= c->last_seq) {
		return macc_errf(c->err, MACC_EMALFORMED, "entry %llu (line %llu, seq %llu): seq "
				 "does not increase", (unsigned long long)idx,
				 (unsigned long long)lineno, (unsigned long long)e.seq);
	}
	if (c->evdir != NULL && e.evidence[0] != '\0') {
		char p[PATHBUF];

		snprintf(p, sizeof(p), "%s/%s", c->evdir, e.evidence);
		rc = read_file(p, &body, &blen);
		if (rc == -ENOENT) {
			c->v.evidence_missing++;
		} else if (rc < 0) {
			return macc_errf(c->err, rc, "entry %llu (line %llu, seq %llu): evidence %s: "
					 "%s", (unsigned long long)idx, (unsigned long long)lineno,
					 (unsigned long long)e.seq, p, strerror(-rc));
		} else if ((uint64_t)blen != e.body_len) {
			free(body);
			return macc_errf(c->err, MACC_EBADSIG, "entry %llu (line %llu, seq %llu): "
					 "evidence %s has %zu bytes, the entry says %llu",
					 (unsigned long long)idx, (unsigned long long)lineno,
					 (unsigned long long)e.seq, p, blen,
					 (unsigned long long)e.body_len);
		}
	}
	rc = macc_state_signed_verify(&e.key, e.text, sizeof(e.text), e.sig, body,
				      body != NULL ? blen : 0, &round, &why);
	had_body = body != NULL;
	free(body);
	if (rc == 0 && round != e.round) {
		rc = macc_errf(&why, MACC_EMALFORMED, "round %llu, the signed text says %llu",
			       (unsigned long long)e.round, (unsigned long long)round);
	}
	if (rc < 0) {
		return macc_errf(c->err, rc, "entry %llu (line %llu, seq %llu, peer %s): %s",
				 (unsigned long long)idx, (unsigned long long)lineno,
				 (unsigned long long)e.seq, e.peer, why.text);
	}
	c->v.evidence_checked += had_body;
	c->last_seq = e.seq;
	c->v.entries++;
	c->failed = false;
	return 0;
}

int macc_audit_verify_file(const char *path, const char *evidence_dir,
			   struct macc_audit_verify *ret, struct macc_errmsg *err)
{
	struct verify_ctx c;
	int rc;

	memset(&c, 0, sizeof(c));
	c.evdir = evidence_dir;
	c.err = err;
	rc = each_line(path, verify_line, &c);
	if (rc < 0 && !c.failed) {
		macc_errf(err, rc, "%s: %s", path, macc_strerror(rc));
	}
	if (ret != NULL) {
		*ret = c.v;
	}
	return rc;
}
