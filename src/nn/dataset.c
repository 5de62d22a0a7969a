/*
 * dataset.c - dataset specs, whole-file reading with in-memory gunzip, and standardisation.
 *
 * Loading is "read the whole file, inflate it in one go, parse the bytes": a file is one read()
 * loop into one buffer, a gzip file is one inflate() pass into a buffer sized from the gzip
 * trailer (ISIZE), and the parsers (idx.c, cifar.c, csv.c) turn bytes into floats in tight
 * loops without a function call per byte. That keeps Fashion-MNIST's 60000 images well under a
 * second and lets the fuzz harnesses drive the very same parsers from memory.
 *
 * Every size read from a file is checked before it is used to allocate: raw and inflated files
 * are capped at MACC_DATA_MAX_BYTES, and the inflate buffer never starts larger than the input
 * could possibly expand to (deflate's ratio is at most about 1032:1), so a lying trailer or a
 * gzip bomb costs at most the cap and then fails with MACC_EDATA.
 *
 * The spec parser maps names to files (see data.h); the loaders name the offending file in every
 * error, and a missing file is -ENOENT with its path.
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "macc/data.h"

#include "data_internal.h"

int macc_dataset_gunzip(const uint8_t *in, size_t len, const char *name, size_t max,
			uint8_t **ret_out, size_t *ret_len, struct macc_errmsg *err)
{
	z_stream zs;
	uint8_t *out = NULL;
	size_t cap, done = 0;
	int rc, zrc;

	if (len < 18 || in[0] != 0x1f || in[1] != 0x8b) {
		return macc_errf(err, MACC_EDATA, "%s: truncated or not gzip data (%zu bytes)", name,
				 len);
	}
	if (len > UINT32_MAX) {
		return macc_errf(err, MACC_EDATA, "%s: gzip input too large (%zu bytes)", name, len);
	}
	/* ISIZE (uncompressed size mod 2^32) is only a hint; never trust it beyond what the input
	 * can expand to. One spare byte lets inflate finish without another round. */
	cap = (size_t)in[len - 4] | (size_t)in[len - 3] << 8 | (size_t)in[len - 2] << 16 |
	      (size_t)in[len - 1] << 24;
	if (cap > len * 1040 + 1024) {
		cap = len * 1040 + 1024;
	}
	cap += 1;
	if (cap > max) {
		cap = max;
	}
	if (cap < 64) {
		cap = 64;
	}
	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 15 + 16) != Z_OK) {
		return macc_errf(err, -ENOMEM, "%s: cannot initialise zlib", name);
	}
	out = malloc(cap);
	if (out == NULL) {
		rc = macc_errf(err, -ENOMEM, "%s: out of memory inflating %zu bytes", name, cap);
		goto out;
	}
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	for (;;) {
		if (done == cap) {
			size_t ncap = cap * 2;
			uint8_t *p;

			if (cap >= max) {
				rc = macc_errf(err, MACC_EDATA,
					       "%s: inflated data larger than the %zu-byte limit",
					       name, max);
				goto out;
			}
			if (ncap > max) {
				ncap = max;
			}
			p = realloc(out, ncap);
			if (p == NULL) {
				rc = macc_errf(err, -ENOMEM, "%s: out of memory inflating", name);
				goto out;
			}
			out = p;
			cap = ncap;
		}
		size_t room = cap - done;

		if (room > UINT32_MAX) {
			room = UINT32_MAX;
		}
		zs.next_out = out + done;
		zs.avail_out = (uInt)room;
		zrc = inflate(&zs, Z_NO_FLUSH);
		done += room - zs.avail_out;
		if (zrc == Z_STREAM_END) {
			if (zs.avail_in == 0) {
				break;
			}
			/* Concatenated members are one file (gzip(1) semantics). */
			if (zs.avail_in >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
				if (inflateReset(&zs) != Z_OK) {
					rc = macc_errf(err, MACC_EDATA, "%s: corrupt gzip data", name);
					goto out;
				}
				continue;
			}
			rc = macc_errf(err, MACC_EDATA, "%s: %u bytes of trailing garbage after gzip data",
				       name, zs.avail_in);
			goto out;
		}
		if (zrc == Z_OK) {
			continue;
		}
		if (zrc == Z_BUF_ERROR && zs.avail_out == 0) {
			continue; /* needs more output room: grows at the top */
		}
		if (zrc == Z_BUF_ERROR) {
			rc = macc_errf(err, MACC_EDATA, "%s: truncated gzip stream", name);
			goto out;
		}
		if (zrc == Z_MEM_ERROR) {
			rc = macc_errf(err, -ENOMEM, "%s: out of memory inflating", name);
			goto out;
		}
		rc = macc_errf(err, MACC_EDATA, "%s: corrupt gzip data (%s)", name,
			       zs.msg != NULL ? zs.msg : "inflate failed");
		goto out;
	}
	*ret_out = out;
	*ret_len = done;
	out = NULL;
	rc = 0;
out:
	inflateEnd(&zs);
	free(out);
	return rc;
}

int macc_data_read_file(const char *path, uint8_t **ret_buf, size_t *ret_len,
			struct macc_errmsg *err)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t size, got = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		return macc_errf(err, rc, "%s: cannot open: %s", path, strerror(-rc));
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		macc_errf(err, rc, "%s: cannot stat: %s", path, strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = macc_errf(err, MACC_EDATA, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > MACC_DATA_MAX_BYTES) {
		rc = macc_errf(err, MACC_EDATA, "%s: file too large (%lld bytes, limit %zu)", path,
			       (long long)st.st_size, MACC_DATA_MAX_BYTES);
		goto out;
	}
	size = (size_t)st.st_size;
	buf = malloc(size > 0 ? size : 1);
	if (buf == NULL) {
		rc = macc_errf(err, -ENOMEM, "%s: out of memory reading %zu bytes", path, size);
		goto out;
	}
	while (got < size) {
		ssize_t r = read(fd, buf + got, size - got);

		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			rc = -errno;
			macc_errf(err, rc, "%s: read error: %s", path, strerror(-rc));
			goto out;
		}
		if (r == 0) {
			break; /* shrank while reading: parse what is there */
		}
		got += (size_t)r;
	}
	if (got >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
		uint8_t *raw;
		size_t rawlen;

		rc = macc_dataset_gunzip(buf, got, path, MACC_DATA_MAX_BYTES, &raw, &rawlen, err);
		if (rc < 0) {
			goto out;
		}
		free(buf);
		buf = raw;
		got = rawlen;
	}
	*ret_buf = buf;
	*ret_len = got;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

int macc_dataset_load_idx(const char *images_path, const char *labels_path,
			  struct macc_dataset *ret, struct macc_errmsg *err)
{
	uint8_t *img = NULL, *lbl = NULL;
	size_t img_len, lbl_len;
	int rc;

	rc = macc_data_read_file(images_path, &img, &img_len, err);
	if (rc < 0) {
		goto out;
	}
	if (labels_path != NULL) {
		rc = macc_data_read_file(labels_path, &lbl, &lbl_len, err);
		if (rc < 0) {
			goto out;
		}
	}
	rc = macc_dataset_parse_idx(img, img_len, images_path, lbl, lbl_len, labels_path, ret,
				    err);
out:
	free(img);
	free(lbl);
	return rc;
}

int macc_dataset_load_csv(const char *path, int label_col, struct macc_dataset *ret,
			  struct macc_errmsg *err)
{
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	rc = macc_data_read_file(path, &buf, &len, err);
	if (rc < 0) {
		return rc;
	}
	rc = macc_dataset_parse_csv((const char *)buf, len, path, label_col, ret, err);
	free(buf);
	return rc;
}

void macc_dataset_finish(struct macc_dataset *d)
{
	if (d == NULL) {
		return;
	}
	free(d->x);
	free(d->y);
	free(d->t);
	memset(d, 0, sizeof(*d));
}

/* ---- specs ---- */

static int file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* DIR/BASE.gz if it exists, else DIR/BASE (whose absence the loader reports). */
static int idx_path(char *out, size_t size, const char *dir, const char *base)
{
	int n = snprintf(out, size, "%s/%s.gz", dir, base);

	if (n < 0 || (size_t)n >= size) {
		return -ENAMETOOLONG;
	}
	if (!file_exists(out)) {
		snprintf(out, size, "%s/%s", dir, base);
	}
	return 0;
}

static int load_idx_dir(const char *dir, enum macc_split split, struct macc_dataset *ret,
			struct macc_errmsg *err)
{
	const char *pre = split == MACC_SPLIT_TRAIN ? "train" : "t10k";
	char base[64], ip[4096], lp[4096];

	snprintf(base, sizeof(base), "%s-images-idx3-ubyte", pre);
	if (idx_path(ip, sizeof(ip), dir, base) < 0) {
		return macc_errf(err, -ENAMETOOLONG, "%s: directory name too long", dir);
	}
	snprintf(base, sizeof(base), "%s-labels-idx1-ubyte", pre);
	if (idx_path(lp, sizeof(lp), dir, base) < 0) {
		return macc_errf(err, -ENAMETOOLONG, "%s: directory name too long", dir);
	}
	return macc_dataset_load_idx(ip, lp, ret, err);
}

/* "DIR/NAME" into out; false if it does not fit. */
static bool join_path(char *out, size_t size, const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);

	if (a + 1 + b + 1 > size) {
		return false;
	}
	memcpy(out, dir, a);
	out[a] = '/';
	memcpy(out + a + 1, name, b + 1);
	return true;
}

static int load_cifar_dir(const char *dir, enum macc_split split, struct macc_dataset *ret,
			  struct macc_errmsg *err)
{
	char paths[5][4096], probe[4096], sub[4096];
	const char *ptrs[5];
	const char *root = dir;
	size_t np = split == MACC_SPLIT_TRAIN ? 5 : 1;

	/* Accept the directory that holds the archive's cifar-10-batches-bin/ too. */
	if (!join_path(probe, sizeof(probe), dir, "data_batch_1.bin")) {
		return macc_errf(err, -ENAMETOOLONG, "%s: directory name too long", dir);
	}
	if (!file_exists(probe) && join_path(sub, sizeof(sub), dir, "cifar-10-batches-bin") &&
	    join_path(probe, sizeof(probe), sub, "data_batch_1.bin") && file_exists(probe)) {
		root = sub;
	}
	for (size_t i = 0; i < np; i++) {
		char name[32];

		if (split == MACC_SPLIT_TRAIN) {
			snprintf(name, sizeof(name), "data_batch_%zu.bin", i + 1);
		} else {
			snprintf(name, sizeof(name), "test_batch.bin");
		}
		if (!join_path(paths[i], sizeof(paths[i]), root, name)) {
			return macc_errf(err, -ENAMETOOLONG, "%s: directory name too long", dir);
		}
		ptrs[i] = paths[i];
	}
	return macc_dataset_load_cifar10(ptrs, np, ret, err);
}

/* Copy [s, e) into a fresh NUL-terminated string. */
static char *strndup_range(const char *s, const char *e)
{
	return strndup(s, (size_t)(e - s));
}

/* "A,B[;C,D]": the split's pair of IDX files. */
static int load_idx_pair(const char *list, enum macc_split split, struct macc_dataset *ret,
			 struct macc_errmsg *err)
{
	const char *semi = strchr(list, ';');
	const char *s = list, *e = semi != NULL ? semi : list + strlen(list);
	char *part = NULL, *comma;
	int rc;

	if (split == MACC_SPLIT_TEST && semi != NULL) {
		s = semi + 1;
		e = s + strlen(s);
	}
	part = strndup_range(s, e);
	if (part == NULL) {
		return -ENOMEM;
	}
	comma = strchr(part, ',');
	if (comma == NULL || comma == part || comma[1] == '\0' || strchr(comma + 1, ',') != NULL) {
		rc = macc_errf(err, MACC_ESPEC, "dataset spec 'idx:%s': expected IMAGES,LABELS", list);
		goto out;
	}
	*comma = '\0';
	rc = macc_dataset_load_idx(part, comma + 1, ret, err);
out:
	free(part);
	return rc;
}

/* The start of the CSV options: the first ',' followed by a lower-case word and '=' (file
 * names with such a comma cannot be used). */
static char *csv_options(char *spec)
{
	for (char *p = strchr(spec, ','); p != NULL; p = strchr(p + 1, ',')) {
		const char *q = p + 1;

		while (*q >= 'a' && *q <= 'z') {
			q++;
		}
		if (q > p + 1 && *q == '=') {
			return p;
		}
	}
	return NULL;
}

/* Comma-separated CSV options (pointing into opts, which is modified) into o. */
static int parse_csv_options(char *opts, const char *list, struct macc_csv_opts *o,
			     struct macc_errmsg *err)
{
	while (opts != NULL && *opts != '\0') {
		char *comma = strchr(opts, ',');

		if (comma != NULL) {
			*comma = '\0';
		}
		if (strncmp(opts, "label=", 6) == 0 && opts[6] != '\0') {
			o->label = opts + 6;
		} else if (strncmp(opts, "target=", 7) == 0 && opts[7] != '\0') {
			o->targets = opts + 7;
		} else if (strcmp(opts, "header=auto") == 0) {
			o->header = MACC_CSV_HEADER_AUTO;
		} else if (strcmp(opts, "header=yes") == 0) {
			o->header = MACC_CSV_HEADER_YES;
		} else if (strcmp(opts, "header=no") == 0) {
			o->header = MACC_CSV_HEADER_NO;
		} else {
			return macc_errf(err, MACC_ESPEC, "dataset spec 'csv:%s': bad option '%s' "
					 "(known: label=COL, target=COL[:COL...], "
					 "header=auto|yes|no)", list, opts);
		}
		opts = comma != NULL ? comma + 1 : NULL;
	}
	if (o->label != NULL && o->targets != NULL) {
		return macc_errf(err, MACC_ESPEC, "dataset spec 'csv:%s': label= (classification) "
				 "and target= (regression) exclude each other", list);
	}
	return 0;
}

/* "TRAIN[;TEST][,OPTION...]" */
static int load_csv_spec(const char *list, enum macc_split split, struct macc_dataset *ret,
			 struct macc_errmsg *err)
{
	char *spec = strdup(list), *opts, *semi, *path;
	struct macc_csv_opts o = {0};
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	if (spec == NULL) {
		return -ENOMEM;
	}
	opts = csv_options(spec);
	if (opts != NULL) {
		*opts++ = '\0';
		rc = parse_csv_options(opts, list, &o, err);
		if (rc < 0) {
			goto out;
		}
	}
	path = spec;
	semi = strchr(spec, ';');
	if (semi != NULL) {
		*semi = '\0';
		if (split == MACC_SPLIT_TEST) {
			path = semi + 1;
		}
	}
	if (*path == '\0') {
		rc = macc_errf(err, MACC_ESPEC, "dataset spec 'csv:%s': empty file name", list);
		goto out;
	}
	rc = macc_data_read_file(path, &buf, &len, err);
	if (rc == 0) {
		rc = macc_dataset_parse_csv_opts((const char *)buf, len, path, &o, ret, err);
	}
out:
	free(buf);
	free(spec);
	return rc;
}

static int load_plain(const char *spec, enum macc_split split, struct macc_dataset *ret,
		      struct macc_errmsg *err)
{
	if (strcmp(spec, "fashion-mnist") == 0) {
		const char *dir = getenv("MACC_FASHION_MNIST_DIR");
		const char *base = getenv("MACC_DATA_DIR");
		char buf[4096];

		if (dir == NULL || *dir == '\0') {
			if (base != NULL && *base != '\0') {
				snprintf(buf, sizeof(buf), "%s/fashion-mnist", base);
				dir = buf;
			} else {
				dir = "/usr/share/datasets/fashion-mnist";
			}
		}
		return load_idx_dir(dir, split, ret, err);
	}
	if (strncmp(spec, "mnist:", 6) == 0) {
		return load_idx_dir(spec + 6, split, ret, err);
	}
	if (strncmp(spec, "idx:", 4) == 0) {
		struct stat sb;

		if (strchr(spec + 4, ',') != NULL) {
			return load_idx_pair(spec + 4, split, ret, err);
		}
		if (stat(spec + 4, &sb) == 0 && S_ISREG(sb.st_mode)) {
			return macc_dataset_load_idx(spec + 4, NULL, ret, err); /* images only */
		}
		return load_idx_dir(spec + 4, split, ret, err);
	}
	if (strncmp(spec, "cifar10:", 8) == 0) {
		return load_cifar_dir(spec + 8, split, ret, err);
	}
	if (strncmp(spec, "csv:", 4) == 0) {
		return load_csv_spec(spec + 4, split, ret, err);
	}
	return macc_errf(err, MACC_ESPEC,
			 "unknown dataset spec '%s' (expected fashion-mnist, mnist:DIR, idx:DIR, "
			 "idx:IMAGES,LABELS, cifar10:DIR or csv:TRAIN[;TEST][,OPTIONS])",
			 spec);
}

/* Whether the spec names its own test file(s): csv and idx pairs need ';TEST'. */
static bool has_test_file(const char *spec)
{
	if (strncmp(spec, "csv:", 4) == 0) {
		return strchr(spec, ';') != NULL;
	}
	if (strncmp(spec, "idx:", 4) == 0 && strchr(spec, ',') != NULL) {
		return strchr(spec, ';') != NULL;
	}
	return true; /* fashion-mnist, mnist:DIR, idx:DIR, cifar10:DIR have test files */
}

/* Keep rows sel[0..k) of d (ascending), in place. */
static void keep_rows(struct macc_dataset *d, const uint32_t *sel, size_t k)
{
	for (size_t i = 0; i < k; i++) {
		size_t s = sel[i];

		memmove(d->x + i * d->dim, d->x + s * d->dim, d->dim * sizeof(float));
		if (d->y != NULL) {
			d->y[i] = d->y[s];
		}
		if (d->t != NULL) {
			memmove(d->t + i * d->ntargets, d->t + s * d->ntargets,
				d->ntargets * sizeof(float));
		}
	}
	d->n = k;
}

/* The validation split of a loaded training file: round(frac n) rows drawn by a seeded
 * shuffle (the test split) or the others (the train split), each in file order. */
static int split_validation(struct macc_dataset *d, double frac, uint64_t seed,
			    enum macc_split split, const char *spec, struct macc_errmsg *err)
{
	size_t nval = (size_t)llround(frac * (double)d->n), k = 0;
	uint32_t *perm;
	uint8_t *is_val;
	struct macc_rng r;

	if (nval == 0 || nval >= d->n) {
		return macc_errf(err, MACC_ESPEC, "dataset spec '%s': val=%g of %zu rows leaves "
				 "an empty %s split", spec, frac, d->n,
				 nval == 0 ? "validation" : "training");
	}
	perm = malloc(d->n * sizeof(uint32_t));
	is_val = calloc(d->n, 1);
	if (perm == NULL || is_val == NULL) {
		free(perm);
		free(is_val);
		return macc_errf(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < d->n; i++) {
		perm[i] = (uint32_t)i;
	}
	/* "val" as the stream: a generator that no other use of the seed shares */
	macc_rng_seed(&r, seed, 0x76616cu);
	macc_rng_shuffle_u32(&r, perm, d->n);
	for (size_t i = 0; i < nval; i++) {
		is_val[perm[i]] = 1;
	}
	for (size_t i = 0; i < d->n; i++) {
		if ((is_val[i] != 0) == (split == MACC_SPLIT_TEST)) {
			perm[k++] = (uint32_t)i;
		}
	}
	keep_rows(d, perm, k);
	free(perm);
	free(is_val);
	return 0;
}

/* Cut ",val=F[:SEED]" out of spec (in place); 1 if found, 0 if not, or an error. */
static int take_val(char *spec, const char *orig, double *ret_frac, uint64_t *ret_seed,
		    struct macc_errmsg *err)
{
	char *v = strstr(spec, ",val="), *e, *end;
	unsigned long long seed = 0;
	double f;

	if (v == NULL) {
		return 0;
	}
	e = v + 5;
	errno = 0;
	f = strtod(e, &end);
	if (end == e || errno != 0 || !(f > 0.0 && f < 1.0)) {
		return macc_errf(err, MACC_ESPEC, "dataset spec '%s': val=F needs a fraction in "
				 "(0, 1)", orig);
	}
	if (*end == ':') {
		e = end + 1;
		if (*e < '0' || *e > '9') {
			return macc_errf(err, MACC_ESPEC, "dataset spec '%s': val=F:SEED needs an "
					 "integer seed", orig);
		}
		errno = 0;
		seed = strtoull(e, &end, 10);
		if (errno != 0) {
			return macc_errf(err, MACC_ESPEC, "dataset spec '%s': seed out of range",
					 orig);
		}
	}
	if (*end != '\0' && *end != ',') {
		return macc_errf(err, MACC_ESPEC, "dataset spec '%s': bad val= option", orig);
	}
	memmove(v, end, strlen(end) + 1);
	*ret_frac = f;
	*ret_seed = seed;
	return 1;
}

/* Where the split's rows come from, for d->origin and d->origin_text. */
static void describe(struct macc_dataset *d, const char *spec, enum macc_split split,
		     bool val, double frac, uint64_t seed, size_t total)
{
	if (val) {
		d->origin = split == MACC_SPLIT_TEST ? MACC_ORIGIN_VALIDATION : MACC_ORIGIN_FILE;
		snprintf(d->origin_text, sizeof(d->origin_text), "%s: %zu of %zu rows of %s "
			 "(val=%g, seed %llu)", split == MACC_SPLIT_TEST ? "validation split"
			 : "training rows", d->n, total, spec, frac, (unsigned long long)seed);
	} else if (split == MACC_SPLIT_TEST && !has_test_file(spec)) {
		d->origin = MACC_ORIGIN_TRAIN;
		snprintf(d->origin_text, sizeof(d->origin_text), "the training data of %s (no "
			 "test file and no val= given)", spec);
	} else {
		d->origin = MACC_ORIGIN_FILE;
		snprintf(d->origin_text, sizeof(d->origin_text), "%s set of %s",
			 split == MACC_SPLIT_TRAIN ? "training" : "test", spec);
	}
}

int macc_dataset_load(const char *spec, enum macc_split split, struct macc_dataset *ret,
		      struct macc_errmsg *err)
{
	struct macc_dataset d;
	double frac = 0.0;
	uint64_t seed = 0;
	size_t total;
	char *plain;
	int rc, val;

	if (spec == NULL || ret == NULL) {
		return macc_errf(err, -EINVAL, "dataset: no spec");
	}
	plain = strdup(spec);
	if (plain == NULL) {
		return macc_errf(err, -ENOMEM, "dataset: out of memory");
	}
	val = take_val(plain, spec, &frac, &seed, err);
	if (val < 0) {
		rc = val;
		goto out;
	}
	/* a csv or idx pair with its own test file has no use for val=; the named sets split
	 * their training files */
	if (val && (strncmp(plain, "csv:", 4) == 0 || strncmp(plain, "idx:", 4) == 0) &&
	    has_test_file(plain)) {
		rc = macc_errf(err, MACC_ESPEC, "dataset spec '%s': val= and a test file exclude "
			       "each other", spec);
		goto out;
	}
	memset(&d, 0, sizeof(d));
	rc = load_plain(plain, val ? MACC_SPLIT_TRAIN : split, &d, err);
	if (rc < 0) {
		goto out;
	}
	total = d.n;
	if (val) {
		rc = split_validation(&d, frac, seed, split, spec, err);
		if (rc < 0) {
			macc_dataset_finish(&d);
			goto out;
		}
	}
	describe(&d, plain, split, val, frac, seed, total);
	*ret = d;
out:
	free(plain);
	return rc;
}

/* ---- standardisation ---- */

static float safe_std(float s)
{
	return s > 0.0f && isfinite(s) ? s : 1.0f;
}

void macc_dataset_channel_stats(const struct macc_dataset *d, float *ret_mean, float *ret_std)
{
	size_t plane = d->channels > 0 ? d->dim / d->channels : d->dim;

	for (uint32_t c = 0; c < d->channels; c++) {
		double sum = 0.0, sq = 0.0;
		size_t cnt = d->n * plane;

		for (size_t i = 0; i < d->n; i++) {
			const float *p = d->x + i * d->dim + c * plane;

			for (size_t k = 0; k < plane; k++) {
				sum += p[k];
				sq += (double)p[k] * p[k];
			}
		}
		double m = cnt > 0 ? sum / (double)cnt : 0.0;
		double v = cnt > 0 ? sq / (double)cnt - m * m : 0.0;

		ret_mean[c] = (float)m;
		ret_std[c] = (float)sqrt(v > 0.0 ? v : 0.0);
	}
}

void macc_dataset_standardize(struct macc_dataset *d, const float *mean, const float *std)
{
	size_t plane = d->channels > 0 ? d->dim / d->channels : d->dim;

	for (uint32_t c = 0; c < d->channels; c++) {
		float m = mean[c], inv = 1.0f / safe_std(std[c]);

		for (size_t i = 0; i < d->n; i++) {
			float *p = d->x + i * d->dim + c * plane;

			for (size_t k = 0; k < plane; k++) {
				p[k] = (p[k] - m) * inv;
			}
		}
	}
}

void macc_dataset_feature_stats(const struct macc_dataset *d, float *ret_mean, float *ret_std)
{
	double *sum = calloc(d->dim > 0 ? d->dim * 2 : 1, sizeof(double));

	if (sum == NULL) {
		/* Degrade to the identity transform rather than fail a void function. */
		for (size_t k = 0; k < d->dim; k++) {
			ret_mean[k] = 0.0f;
			ret_std[k] = 1.0f;
		}
		return;
	}
	double *sq = sum + d->dim;

	for (size_t i = 0; i < d->n; i++) {
		const float *p = d->x + i * d->dim;

		for (size_t k = 0; k < d->dim; k++) {
			sum[k] += p[k];
			sq[k] += (double)p[k] * p[k];
		}
	}
	for (size_t k = 0; k < d->dim; k++) {
		double m = d->n > 0 ? sum[k] / (double)d->n : 0.0;
		double v = d->n > 0 ? sq[k] / (double)d->n - m * m : 0.0;

		ret_mean[k] = (float)m;
		ret_std[k] = (float)sqrt(v > 0.0 ? v : 0.0);
	}
	free(sum);
}

void macc_dataset_standardize_features(struct macc_dataset *d, const float *mean,
				       const float *std)
{
	float *inv = malloc(d->dim > 0 ? d->dim * sizeof(float) : 1);

	if (inv == NULL) {
		for (size_t i = 0; i < d->n; i++) {
			for (size_t k = 0; k < d->dim; k++) {
				d->x[i * d->dim + k] =
					(d->x[i * d->dim + k] - mean[k]) / safe_std(std[k]);
			}
		}
		return;
	}
	for (size_t k = 0; k < d->dim; k++) {
		inv[k] = 1.0f / safe_std(std[k]);
	}
	for (size_t i = 0; i < d->n; i++) {
		float *p = d->x + i * d->dim;

		for (size_t k = 0; k < d->dim; k++) {
			p[k] = (p[k] - mean[k]) * inv[k];
		}
	}
	free(inv);
}

void macc_feature_stats_compute(const struct macc_dataset *d, const uint32_t *idx, size_t n,
				double *stats)
{
	const size_t dim = d->dim;
	double *sum = stats + 1, *sq = stats + 1 + dim;

	if (idx == NULL) {
		n = d->n;
	}
	memset(stats, 0, macc_feature_stats_len(dim) * sizeof(double));
	stats[0] = (double)n;
	for (size_t i = 0; i < n; i++) {
		const float *p = d->x + (size_t)(idx != NULL ? idx[i] : i) * dim;

		for (size_t k = 0; k < dim; k++) {
			double v = p[k];

			sum[k] += v;
			sq[k] += v * v;
		}
	}
}

void macc_standardizer_from_stats(const double *stats, size_t dim, float *ret_mean,
				  float *ret_inv_std)
{
	const double cnt = stats[0];

	for (size_t k = 0; k < dim; k++) {
		double m = 0.0, var = 0.0;

		if (cnt > 0.0 && isfinite(cnt)) {
			m = stats[1 + k] / cnt;
			var = stats[1 + dim + k] / cnt - m * m;
		}
		if (!isfinite(m) || !isfinite(var) || fabs(m) > FLT_MAX) {
			m = 0.0;
			var = 0.0;
		}
		ret_mean[k] = (float)m;
		ret_inv_std[k] = var > 1e-12 * fmax(1.0, m * m) ? (float)(1.0 / sqrt(var)) : 1.0f;
	}
}

void macc_dataset_apply_standardizer(struct macc_dataset *d, const float *mean,
				     const float *inv_std)
{
	for (size_t i = 0; i < d->n; i++) {
		float *p = d->x + i * d->dim;

		for (size_t k = 0; k < d->dim; k++) {
			p[k] = (p[k] - mean[k]) * inv_std[k];
		}
	}
}
