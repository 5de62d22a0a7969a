/*
 * checkpoint.c - atomic, checksummed checkpoints (see checkpoint.h for the layout).
 *
 * Save builds the whole file image in memory (header, two float blocks, CRC-32) and writes it
 * with one loop of write(2) into `checkpoint.tmp`, fsyncs it, keeps the current checkpoint as
 * `checkpoint.prev` (hard link + rename, so `checkpoint.bin` exists at every instant), renames
 * the temporary over `checkpoint.bin` and fsyncs the directory so the rename itself is durable.
 * A crash at any point leaves either the old or the new checkpoint intact.
 *
 * Load reads a whole file, checks magic, version, header length, exact size and CRC before
 * trusting any field, and only then copies the vectors into the caller's buffers. Floats are
 * stored in the host's byte order, which macc requires to be little-endian (checked at build).
 * Version 2 (a model with a feature standardiser) appends one section after the momentum; its
 * size is part of the exact-size check, read (bounded) before the checksum is computed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "checkpoint.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "macc checkpoints assume little-endian");

#define CKPT_MAGIC "MACCCKP1"
#define CKPT_VERSION 1u     /* no standardiser */
#define CKPT_VERSION_STD 2u /* with the standardiser section */
#define CKPT_HEADER_LEN (8 + 4 + 4 + 6 * 8 + 6 * 8 + 4 * 8)
#define CKPT_MAX_PARAMS (UINT64_C(1) << 30)
#define CKPT_MAX_STD_DIM ((uint64_t)MACC_DATA_MAX_DIM)
/* The largest file: both vectors of the most parameters, the largest standardiser, the CRC. */
#define CKPT_MAX_SIZE (CKPT_HEADER_LEN + 8 * CKPT_MAX_PARAMS + 8 + 8 * CKPT_MAX_STD_DIM + 4)

static void put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static uint32_t crc_of(const uint8_t *p, size_t n)
{
	uLong crc = crc32(0L, Z_NULL, 0);

	/* zlib's length is uInt: feed large blocks in pieces. */
	while (n > 0) {
		uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
		crc = crc32(crc, p, chunk);
		p += chunk;
		n -= chunk;
	}
	return (uint32_t)crc;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The standardiser section of a version 2 file: u64 dim, f32 mean[dim], f32 inv_std[dim]. */
static size_t std_section_len(const struct macc_ckpt *c)
{
	return c->has_std ? 8 + 2 * c->std_dim * sizeof(float) : 0;
}

/* The file image of c (total bytes, CRC included) into img. */
static void build_image(uint8_t *img, size_t total, const struct macc_ckpt *c)
{
	size_t vec = c->nparams * sizeof(float), sd = c->std_dim * sizeof(float);
	uint8_t *p = img;

	memcpy(p, CKPT_MAGIC, 8);
	put_u32(p + 8, c->has_std ? CKPT_VERSION_STD : CKPT_VERSION);
	put_u32(p + 12, CKPT_HEADER_LEN);
	p += 16;
	put_u64(p, c->config_hash);
	put_u64(p + 8, c->model_hash);
	put_u64(p + 16, (uint64_t)c->nparams);
	put_u64(p + 24, c->round);
	put_u64(p + 32, c->epoch);
	put_u64(p + 40, c->has_std ? c->flags | MACC_CKPT_F_STANDARDIZER
				   : c->flags & ~(uint64_t)MACC_CKPT_F_STANDARDIZER);
	p += 48;
	for (int i = 0; i < 4; i++) {
		put_u64(p + 8 * i, c->batcher.epoch_rng.s[i]);
	}
	put_u64(p + 32, c->batcher.epoch);
	put_u64(p + 40, c->batcher.pos);
	p += 48;
	for (int i = 0; i < 4; i++) {
		put_u64(p + 8 * i, c->rng.s[i]);
	}
	p += 32;
	if (vec > 0) {
		memcpy(p, c->params, vec);
		memcpy(p + vec, c->momentum, vec);
	}
	p += 2 * vec;
	if (c->has_std) {
		put_u64(p, (uint64_t)c->std_dim);
		memcpy(p + 8, c->std_mean, sd);
		memcpy(p + 8 + sd, c->std_inv, sd);
		p += 8 + 2 * sd;
	}
	put_u32(p, crc_of(img, total - 4));
}

int macc_ckpt_save(const char *dir, const struct macc_ckpt *c, struct macc_errmsg *err)
{
	char tmp[PATH_MAX], cur[PATH_MAX], prev[PATH_MAX], prevtmp[PATH_MAX];
	size_t vec = c->nparams * sizeof(float);
	size_t total = CKPT_HEADER_LEN + 2 * vec + std_section_len(c) + 4;
	uint8_t *img = NULL;
	int fd = -1, dfd = -1, rc = 0;

	if (c->has_std && (c->std_dim == 0 || c->std_dim > CKPT_MAX_STD_DIM ||
			   c->std_mean == NULL || c->std_inv == NULL)) {
		return macc_errf(err, -EINVAL, "checkpoint: a standardiser of %zu features",
				 c->std_dim);
	}

	if (snprintf(tmp, sizeof(tmp), "%s/checkpoint.tmp", dir) >= (int)sizeof(tmp) ||
	    snprintf(cur, sizeof(cur), "%s/" MACC_CKPT_NAME, dir) >= (int)sizeof(cur) ||
	    snprintf(prev, sizeof(prev), "%s/" MACC_CKPT_PREV, dir) >= (int)sizeof(prev) ||
	    snprintf(prevtmp, sizeof(prevtmp), "%s/checkpoint.prev.tmp", dir) >=
		    (int)sizeof(prevtmp)) {
		return macc_errf(err, -ENAMETOOLONG, "checkpoint directory name too long: %s", dir);
	}
	img = malloc(total);
	if (img == NULL) {
		return macc_errf(err, -ENOMEM, "no memory for a %zu-byte checkpoint", total);
	}
	build_image(img, total, c);

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = macc_errf(err, -errno, "%s: cannot create: %s", tmp, strerror(errno));
		goto out;
	}
	rc = write_all(fd, img, total);
	if (rc < 0) {
		macc_errf(err, rc, "%s: write failed: %s", tmp, strerror(-rc));
		goto out;
	}
	if (fsync(fd) < 0) {
		rc = macc_errf(err, -errno, "%s: fsync failed: %s", tmp, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	/* Keep the current good checkpoint as .prev without a moment where .bin is missing. */
	unlink(prevtmp);
	if (link(cur, prevtmp) == 0) {
		if (rename(prevtmp, prev) < 0) {
			rc = macc_errf(err, -errno, "%s: rename failed: %s", prev, strerror(errno));
			goto out;
		}
	} else if (errno != ENOENT) {
		rc = macc_errf(err, -errno, "%s: cannot keep as %s: %s", cur, prevtmp,
			       strerror(errno));
		goto out;
	}
	if (rename(tmp, cur) < 0) {
		rc = macc_errf(err, -errno, "%s: rename to %s failed: %s", tmp, cur, strerror(errno));
		goto out;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		rc = macc_errf(err, -errno, "%s: directory fsync failed: %s", dir, strerror(errno));
		goto out;
	}
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	if (dfd >= 0) {
		close(dfd);
	}
	free(img);
	return rc;
}

static int read_whole(const char *path, uint8_t **ret, size_t *ret_len, struct macc_errmsg *err)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return macc_errf(err, -errno, "%s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		rc = macc_errf(err, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (st.st_size < CKPT_HEADER_LEN + 4 || (uint64_t)st.st_size > CKPT_MAX_SIZE) {
		rc = macc_errf(err, MACC_ECORRUPT, "%s: truncated or implausible size %lld bytes",
			       path, (long long)st.st_size);
		goto out;
	}
	buf = malloc((size_t)st.st_size);
	if (buf == NULL) {
		rc = macc_errf(err, -ENOMEM, "%s: no memory", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			rc = macc_errf(err, -errno, "%s: read failed: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0) {
			rc = macc_errf(err, MACC_ECORRUPT, "%s: file shrank while reading", path);
			goto out;
		}
		got += (size_t)r;
	}
	*ret = buf;
	*ret_len = got;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

/* Magic, version and header length. */
static int check_head(const char *path, const uint8_t *img, uint32_t *ret_version,
		      struct macc_errmsg *err)
{
	uint32_t v = get_u32(img + 8);

	if (memcmp(img, CKPT_MAGIC, 8) != 0) {
		return macc_errf(err, MACC_ECORRUPT, "%s: not a macc checkpoint (bad magic)", path);
	}
	if (v != CKPT_VERSION && v != CKPT_VERSION_STD) {
		return macc_errf(err, MACC_EVERSION, "%s: checkpoint version %u, expected %u or %u",
				 path, v, CKPT_VERSION, CKPT_VERSION_STD);
	}
	if (get_u32(img + 12) != CKPT_HEADER_LEN) {
		return macc_errf(err, MACC_ECORRUPT, "%s: bad header length %u", path,
				 get_u32(img + 12));
	}
	*ret_version = v;
	return 0;
}

/* The exact size the header announces (version 2: with the standardiser section, whose size
 * is read, bounded, from the file), then the CRC. Sets *ret_np and *ret_dim. */
static int check_size(const char *path, const uint8_t *img, size_t len, uint32_t version,
		      uint64_t *ret_np, uint64_t *ret_dim, struct macc_errmsg *err)
{
	uint64_t np = get_u64(img + 32), dim = 0, want;

	if (np > CKPT_MAX_PARAMS) {
		return macc_errf(err, MACC_ECORRUPT, "%s: implausible %llu parameters", path,
				 (unsigned long long)np);
	}
	want = CKPT_HEADER_LEN + 8 * np + 4;
	if (version == CKPT_VERSION_STD) {
		if (len < want + 8) {
			return macc_errf(err, MACC_ECORRUPT, "%s: truncated: %zu bytes for %llu "
					 "parameters and a standardiser", path, len,
					 (unsigned long long)np);
		}
		dim = get_u64(img + CKPT_HEADER_LEN + 8 * np);
		if (dim == 0 || dim > CKPT_MAX_STD_DIM ||
		    !(get_u64(img + 56) & MACC_CKPT_F_STANDARDIZER)) {
			return macc_errf(err, MACC_ECORRUPT, "%s: bad standardiser section (%llu "
					 "features)", path, (unsigned long long)dim);
		}
		want += 8 + 8 * dim;
	}
	if (len != want) {
		return macc_errf(err, MACC_ECORRUPT, "%s: truncated: %zu bytes for %llu parameters "
				 "(expected %llu)", path, len, (unsigned long long)np,
				 (unsigned long long)want);
	}
	uint32_t stored = get_u32(img + len - 4), have = crc_of(img, len - 4);

	if (stored != have) {
		return macc_errf(err, MACC_ECORRUPT, "%s: checksum mismatch (stored %08x, computed "
				 "%08x)", path, stored, have);
	}
	*ret_np = np;
	*ret_dim = dim;
	return 0;
}

/* The header fields of a checked image into c. */
static void parse_fields(const uint8_t *img, struct macc_ckpt *c)
{
	const uint8_t *p = img + 16;

	c->config_hash = get_u64(p);
	c->model_hash = get_u64(p + 8);
	c->nparams = (size_t)get_u64(p + 16);
	c->round = get_u64(p + 24);
	c->epoch = get_u64(p + 32);
	c->flags = get_u64(p + 40);
	p += 48;
	for (int i = 0; i < 4; i++) {
		c->batcher.epoch_rng.s[i] = get_u64(p + 8 * i);
	}
	c->batcher.epoch = get_u64(p + 32);
	c->batcher.pos = get_u64(p + 40);
	p += 48;
	for (int i = 0; i < 4; i++) {
		c->rng.s[i] = get_u64(p + 8 * i);
	}
}

/* The vectors the caller asked for, from a checked image (nothing written on error). */
static int copy_vectors(const char *path, const uint8_t *img, const struct macc_ckpt *c,
			const struct macc_ckpt *want, struct macc_errmsg *err)
{
	const uint8_t *p = img + CKPT_HEADER_LEN;
	size_t vec = c->nparams * sizeof(float), sd = c->std_dim * sizeof(float);
	bool vecs = want->params != NULL && want->momentum != NULL;
	bool std = c->has_std && want->std_mean != NULL && want->std_inv != NULL;

	if (vecs && want->nparams != c->nparams) {
		return macc_errf(err, MACC_EMODEL, "%s: checkpoint has %zu parameters, the model "
				 "has %zu", path, c->nparams, want->nparams);
	}
	if (std && want->std_dim != c->std_dim) {
		return macc_errf(err, MACC_EMODEL, "%s: checkpoint standardises %zu features, the "
				 "model takes %zu", path, c->std_dim, want->std_dim);
	}
	if (vecs) {
		memcpy(want->params, p, vec);
		memcpy(want->momentum, p + vec, vec);
	}
	if (std) {
		memcpy(want->std_mean, p + 2 * vec + 8, sd);
		memcpy(want->std_inv, p + 2 * vec + 8 + sd, sd);
	}
	return 0;
}

int macc_ckpt_read_file(const char *path, struct macc_ckpt *ret, struct macc_errmsg *err)
{
	uint8_t *img = NULL;
	size_t len = 0;
	struct macc_ckpt c;
	uint32_t version = 0;
	uint64_t np = 0, dim = 0;
	int rc;

	rc = read_whole(path, &img, &len, err);
	if (rc < 0) {
		return rc;
	}
	rc = check_head(path, img, &version, err);
	if (rc == 0) {
		rc = check_size(path, img, len, version, &np, &dim, err);
	}
	if (rc < 0) {
		goto out;
	}
	memset(&c, 0, sizeof(c));
	parse_fields(img, &c);
	c.has_std = version == CKPT_VERSION_STD;
	c.std_dim = c.has_std ? (size_t)dim : ret->std_dim; /* the caller's size stays */
	rc = copy_vectors(path, img, &c, ret, err);
	if (rc < 0) {
		goto out;
	}
	c.params = ret->params;
	c.momentum = ret->momentum;
	c.std_mean = ret->std_mean;
	c.std_inv = ret->std_inv;
	*ret = c;
out:
	free(img);
	return rc;
}

int macc_ckpt_load(const char *dir, struct macc_ckpt *c, char *ret_used, size_t used_size,
		   struct macc_errmsg *warn, struct macc_errmsg *err)
{
	const char *names[2] = {MACC_CKPT_NAME, MACC_CKPT_PREV};
	struct macc_errmsg first;
	bool any = false;
	int first_rc = -ENOENT;

	if (warn != NULL) {
		warn->text[0] = '\0';
	}
	first.text[0] = '\0';
	for (int i = 0; i < 2; i++) {
		char path[PATH_MAX];
		struct macc_errmsg e;
		struct macc_ckpt probe;
		int rc;

		if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= (int)sizeof(path)) {
			return macc_errf(err, -ENAMETOOLONG, "checkpoint directory name too long");
		}
		/* Validate fully (checksum) before touching the caller's buffers. */
		memset(&probe, 0, sizeof(probe));
		rc = macc_ckpt_read_file(path, &probe, &e);
		if (rc == -ENOENT) {
			continue;
		}
		any = true;
		if (rc < 0) {
			if (first.text[0] == '\0') {
				first = e;
				first_rc = rc;
			}
			continue;
		}
		if (probe.model_hash != c->model_hash || probe.nparams != c->nparams) {
			return macc_errf(err, MACC_EMODEL,
					 "%s: checkpoint belongs to another model (hash %016llx, "
					 "%zu parameters; this config: %016llx, %zu); move it aside "
					 "to start afresh",
					 path, (unsigned long long)probe.model_hash, probe.nparams,
					 (unsigned long long)c->model_hash, c->nparams);
		}
		if (probe.config_hash != c->config_hash) {
			return macc_errf(err, MACC_EMODEL,
					 "%s: checkpoint belongs to another training setup (dataset, "
					 "shard, seed or batch changed); move it aside to start afresh",
					 path);
		}
		if (probe.has_std && c->std_mean != NULL && probe.std_dim != c->std_dim) {
			return macc_errf(err, MACC_EMODEL, "%s: checkpoint standardises %zu "
					 "features, the model takes %zu; move it aside to start "
					 "afresh", path, probe.std_dim, c->std_dim);
		}
		probe.params = c->params;
		probe.momentum = c->momentum;
		probe.std_dim = c->std_dim;
		probe.std_mean = c->std_mean;
		probe.std_inv = c->std_inv;
		rc = macc_ckpt_read_file(path, &probe, &e);
		if (rc < 0) {
			/* Changed under us between the two reads: treat as corrupt. */
			if (first.text[0] == '\0') {
				first = e;
				first_rc = rc;
			}
			continue;
		}
		*c = probe;
		if (warn != NULL && first.text[0] != '\0') {
			*warn = first;
		}
		if (ret_used != NULL) {
			snprintf(ret_used, used_size, "%s", path);
		}
		return 0;
	}
	if (!any) {
		return macc_errf(err, -ENOENT, "no checkpoint in %s", dir);
	}
	if (err != NULL) {
		*err = first;
	}
	return first_rc < 0 ? first_rc : MACC_ECORRUPT;
}
