/*
 * csv.c - numeric CSV: one sample per line, comma-separated features and one label column.
 *
 * Meant for real edge data (sensor logs, tabular exports), so the parser is strict and says
 * exactly where a file is wrong: every error names the file, the 1-based line and column, and
 * the offending cell. Rules:
 *   - lines end in \n or \r\n; blank lines (only spaces/tabs) are skipped anywhere;
 *   - the first non-blank line is a header row (column names) when header=yes, or with
 *     header=auto (the default) when its first cell is not a number; names are trimmed of
 *     blanks and of one pair of surrounding double quotes;
 *   - every row (header included) has the same number of columns, at least two;
 *   - the label column (classification; default the last) or the target columns (regression,
 *     one or several) are chosen by 0-based index (negative counts from the end) or by name
 *     from the header; every other column is a feature, in file order; label=none reads
 *     unlabelled rows (every column a feature, one column allowed), for scoring new data;
 *   - features and targets are finite floats (strtod syntax, surrounding blanks allowed), kept
 *     as written: no scaling (standardisation is the model's: nn.h);
 *   - labels are integers in [0, MACC_DATA_MAX_CLASSES); nclasses is the largest label + 1.
 * Quoting is not supported in data rows: a quoted cell is a non-numeric cell.
 *
 * Memory: the number of lines bounds the number of rows, so the float block is allocated once
 * from a count of newlines (at most about as many floats as the text has bytes) and trimmed.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macc/data.h"

#include "data_internal.h"

#define CELL_MAX 64

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Printable excerpt of a cell for messages. */
static void cell_text(const char *s, const char *e, char *out, size_t size)
{
	size_t n = 0;

	while (s < e && n + 4 < size) {
		unsigned char c = (unsigned char)*s++;

		out[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (s < e && n + 3 < size) {
		out[n++] = '.';
		out[n++] = '.';
		out[n++] = '.';
	}
	out[n] = '\0';
}

/* Parse a cell as a finite number; false if it is not one. */
static bool parse_number(const char *s, const char *e, double *ret)
{
	char buf[CELL_MAX];
	char *end;
	size_t n;

	while (s < e && is_blank(*s)) {
		s++;
	}
	while (e > s && is_blank(e[-1])) {
		e--;
	}
	n = (size_t)(e - s);
	if (n == 0 || n >= sizeof(buf)) {
		return false;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	double v = strtod(buf, &end);

	if (end != buf + n || !isfinite(v)) {
		return false;
	}
	*ret = v;
	return true;
}

enum role { ROLE_FEATURE, ROLE_LABEL, ROLE_TARGET };

/* One header cell [s, e) as a name: blanks and one pair of double quotes trimmed. */
static void header_name(const char **s, const char **e)
{
	while (*s < *e && is_blank(**s)) {
		(*s)++;
	}
	while (*e > *s && is_blank((*e)[-1])) {
		(*e)--;
	}
	if (*e - *s >= 2 && **s == '"' && (*e)[-1] == '"') {
		(*s)++;
		(*e)--;
	}
}

/* Column [s, e) of the spec (an index or a header name) into *ret. */
static int find_column(const char *s, const char *e, const char *hdr, const char *hdr_end,
		       size_t ncols, bool have_header, const char *name, const char *what,
		       size_t *ret, struct macc_errmsg *err)
{
	char buf[CELL_MAX], *end;
	size_t n = (size_t)(e - s);

	if (n == 0 || n >= sizeof(buf)) {
		return macc_errf(err, MACC_ESPEC, "%s: empty or overlong %s column name", name,
				 what);
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	long v = strtol(buf, &end, 10);

	if (*end == '\0' && errno == 0) {
		long c = v < 0 ? (long)ncols + v : v;

		if (c < 0 || (size_t)c >= ncols) {
			return macc_errf(err, MACC_EDATA, "%s: %s column %s out of range for %zu "
					 "columns", name, what, buf, ncols);
		}
		*ret = (size_t)c;
		return 0;
	}
	if (!have_header) {
		return macc_errf(err, MACC_EDATA, "%s: %s column '%s' is a name but the file has "
				 "no header row (add one, or give the column's index)", name, what,
				 buf);
	}
	const char *c = hdr;

	for (size_t col = 0; col < ncols; col++) {
		const char *ce = memchr(c, ',', (size_t)(hdr_end - c));
		const char *ns = c, *ne = ce ? ce : hdr_end;

		header_name(&ns, &ne);
		if ((size_t)(ne - ns) == n && memcmp(ns, buf, n) == 0) {
			*ret = col;
			return 0;
		}
		c = ce ? ce + 1 : hdr_end;
	}
	return macc_errf(err, MACC_EDATA, "%s: %s column '%s': no such name in the header row",
			 name, what, buf);
}

/* The role of every column from the options; nfeat and ntargets out. */
static int assign_roles(const struct macc_csv_opts *o, const char *hdr, const char *hdr_end,
			size_t ncols, bool have_header, const char *name, uint8_t *role,
			uint32_t *tcol, size_t *ret_nt, struct macc_errmsg *err)
{
	size_t nt = 0, c;
	int rc;

	memset(role, ROLE_FEATURE, ncols);
	if (o->targets == NULL && o->label != NULL && strcmp(o->label, "none") == 0) {
		*ret_nt = 0; /* unlabelled rows: every column is a feature */
		return 0;
	}
	if (o->targets == NULL) {
		const char *l = o->label != NULL ? o->label : "-1";

		rc = find_column(l, l + strlen(l), hdr, hdr_end, ncols, have_header, name,
				 "label", &c, err);
		if (rc < 0) {
			return rc;
		}
		role[c] = ROLE_LABEL;
		*ret_nt = 0;
		return 0;
	}
	for (const char *s = o->targets;;) {
		const char *e = strchr(s, ':');

		e = e != NULL ? e : s + strlen(s);
		rc = find_column(s, e, hdr, hdr_end, ncols, have_header, name, "target", &c,
				 err);
		if (rc < 0) {
			return rc;
		}
		if (role[c] != ROLE_FEATURE) {
			return macc_errf(err, MACC_ESPEC, "%s: target column %zu named twice", name,
					 c);
		}
		role[c] = ROLE_TARGET;
		tcol[c] = (uint32_t)nt++;
		if (*e == '\0') {
			break;
		}
		s = e + 1;
	}
	if (nt >= ncols) {
		return macc_errf(err, MACC_EDATA, "%s: every column is a target; no feature left",
				 name);
	}
	*ret_nt = nt;
	return 0;
}

/* Parser state over the whole text. */
struct csvp {
	const char *name;
	const struct macc_csv_opts *o;
	size_t ncols, nfeat, nt, max_rows, rows;
	uint8_t *role;
	uint32_t *tcol;
	int32_t maxlab;
	bool unlabelled; /* label=none */
	struct macc_dataset d;
	struct macc_errmsg *err;
};

/* First non-blank line [p, le): header or not, roles, allocation. Returns 1 if the line is a
 * header (consumed), 0 if it is data, or a negative code. */
static int first_line(struct csvp *c, const char *p, const char *le, size_t cols, size_t line)
{
	const char *c1 = memchr(p, ',', (size_t)(le - p));
	double v;
	bool header;
	int rc;

	c->ncols = cols;
	c->unlabelled = c->o->targets == NULL && c->o->label != NULL &&
			strcmp(c->o->label, "none") == 0;
	if (cols < 2 && !c->unlabelled) {
		return macc_errf(c->err, MACC_EDATA, "%s: line %zu: only 1 column; need features "
				 "and a label separated by ','", c->name, line);
	}
	if (c->o->header == MACC_CSV_HEADER_AUTO) {
		header = !parse_number(p, c1 != NULL ? c1 : le, &v);
	} else {
		header = c->o->header == MACC_CSV_HEADER_YES;
	}
	c->role = malloc(cols);
	c->tcol = calloc(cols, sizeof(uint32_t));
	if (c->role == NULL || c->tcol == NULL) {
		return macc_errf(c->err, -ENOMEM, "%s: out of memory", c->name);
	}
	rc = assign_roles(c->o, p, le, cols, header, c->name, c->role, c->tcol, &c->nt, c->err);
	if (rc < 0) {
		return rc;
	}
	c->nfeat = cols - (c->nt > 0 ? c->nt : c->unlabelled ? 0 : 1);
	if (!macc_data_size_ok(c->max_rows, c->nfeat) ||
	    !macc_data_size_ok(c->max_rows, c->nt > 0 ? c->nt : 1)) {
		return macc_errf(c->err, MACC_EDATA, "%s: too large: %zu lines of %zu features "
				 "exceed the %zu-byte limit", c->name, c->max_rows, c->nfeat,
				 MACC_DATA_MAX_BYTES);
	}
	c->d.x = malloc(c->max_rows * c->nfeat * sizeof(float));
	if (c->nt > 0) {
		c->d.t = malloc(c->max_rows * c->nt * sizeof(float));
	} else if (!c->unlabelled) {
		c->d.y = malloc(c->max_rows * sizeof(int32_t));
	}
	if (c->d.x == NULL || (c->d.y == NULL && c->d.t == NULL && !c->unlabelled)) {
		return macc_errf(c->err, -ENOMEM, "%s: out of memory for %zu rows", c->name,
				 c->max_rows);
	}
	return header ? 1 : 0;
}

/* One data row [p, le) of ncols cells. */
static int data_row(struct csvp *c, const char *p, const char *le, size_t line)
{
	float *xr = c->d.x + c->rows * c->nfeat;
	const char *cell = p;
	char shown[48];

	for (size_t col = 0; col < c->ncols; col++) {
		const char *ce = memchr(cell, ',', (size_t)(le - cell));
		double v;

		if (ce == NULL) {
			ce = le;
		}
		if (!parse_number(cell, ce, &v)) {
			cell_text(cell, ce, shown, sizeof(shown));
			return macc_errf(c->err, MACC_EDATA, "%s: line %zu, column %zu: non-numeric "
					 "cell '%s'", c->name, line, col + 1, shown);
		}
		if (c->role[col] == ROLE_LABEL) {
			if (v < 0.0 || v >= (double)MACC_DATA_MAX_CLASSES || v != floor(v)) {
				cell_text(cell, ce, shown, sizeof(shown));
				return macc_errf(c->err, MACC_EDATA, "%s: line %zu, column %zu: label "
						 "'%s' out of range (want an integer in [0, %u))",
						 c->name, line, col + 1, shown,
						 MACC_DATA_MAX_CLASSES);
			}
			c->d.y[c->rows] = (int32_t)v;
			if (c->d.y[c->rows] > c->maxlab) {
				c->maxlab = c->d.y[c->rows];
			}
		} else if (fabs(v) > FLT_MAX) {
			cell_text(cell, ce, shown, sizeof(shown));
			return macc_errf(c->err, MACC_EDATA, "%s: line %zu, column %zu: value '%s' "
					 "out of float range", c->name, line, col + 1, shown);
		} else if (c->role[col] == ROLE_TARGET) {
			c->d.t[c->rows * c->nt + c->tcol[col]] = (float)v;
		} else {
			*xr++ = (float)v;
		}
		cell = ce + 1;
	}
	c->rows++;
	return 0;
}

static void trim_blocks(struct csvp *c)
{
	float *sx = realloc(c->d.x, c->rows * c->nfeat * sizeof(float));

	/* A failed shrink keeps the larger block, which is still valid. */
	if (sx != NULL) {
		c->d.x = sx;
	}
	if (c->d.y != NULL) {
		int32_t *sy = realloc(c->d.y, c->rows * sizeof(int32_t));

		c->d.y = sy != NULL ? sy : c->d.y;
	}
	if (c->d.t != NULL) {
		float *st = realloc(c->d.t, c->rows * c->nt * sizeof(float));

		c->d.t = st != NULL ? st : c->d.t;
	}
}

int macc_dataset_parse_csv_opts(const char *text, size_t len, const char *name,
				const struct macc_csv_opts *o, struct macc_dataset *ret,
				struct macc_errmsg *err)
{
	static const struct macc_csv_opts defaults = {0};
	struct csvp c = {.name = name, .o = o != NULL ? o : &defaults, .max_rows = 1,
			 .maxlab = -1, .err = err};
	const char *p = text, *end = text + len;
	size_t line = 0;
	bool first = true;
	int rc;

	if (len == 0) {
		return macc_errf(err, MACC_EDATA, "%s: empty file", name);
	}
	for (const char *q = text; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++) {
		c.max_rows++;
	}
	for (; p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end, *next = nl != NULL ? nl + 1 : end, *q;
		size_t cols = 1;

		if (le > p && le[-1] == '\r') {
			le--;
		}
		for (q = p; q < le && is_blank(*q); q++) {
		}
		if (q == le) {
			p = next;
			continue;
		}
		for (q = p; (q = memchr(q, ',', (size_t)(le - q))) != NULL; q++) {
			cols++;
		}
		if (first) {
			first = false;
			rc = first_line(&c, p, le, cols, line + 1);
			if (rc < 0) {
				goto fail;
			}
			if (rc == 1) {
				p = next;
				continue;
			}
		} else if (cols != c.ncols) {
			rc = macc_errf(err, MACC_EDATA, "%s: line %zu: ragged row: %zu columns, "
				       "expected %zu", name, line + 1, cols, c.ncols);
			goto fail;
		}
		rc = data_row(&c, p, le, line + 1);
		if (rc < 0) {
			goto fail;
		}
		p = next;
	}
	if (c.rows == 0) {
		rc = macc_errf(err, MACC_EDATA, "%s: no data rows (only a header or blank lines)",
			       name);
		goto fail;
	}
	if (c.rows < c.max_rows) {
		trim_blocks(&c);
	}
	c.d.n = c.rows;
	c.d.dim = c.nfeat;
	c.d.channels = 1;
	c.d.height = 1;
	c.d.width = (uint32_t)c.nfeat;
	c.d.nclasses = c.nt > 0 ? 0 : (uint32_t)c.maxlab + 1;
	c.d.ntargets = (uint32_t)c.nt;
	*ret = c.d;
	free(c.role);
	free(c.tcol);
	return 0;
fail:
	free(c.role);
	free(c.tcol);
	macc_dataset_finish(&c.d);
	return rc;
}

int macc_dataset_parse_csv(const char *text, size_t len, const char *name, int label_col,
			   struct macc_dataset *ret, struct macc_errmsg *err)
{
	char col[16];
	struct macc_csv_opts o = {.label = col};

	snprintf(col, sizeof(col), "%d", label_col);
	return macc_dataset_parse_csv_opts(text, len, name, &o, ret, err);
}
