/*
 * csv.c - numeric CSV: one sample per line, comma-separated features and one label column.
 *
 * Meant for real edge data (sensor logs, tabular exports), so the parser is strict and says
 * exactly where a file is wrong: every error names the file, the 1-based line and column, and
 * the offending cell. Rules:
 *   - lines end in \n or \r\n; blank lines (only spaces/tabs) are skipped anywhere;
 *   - the first non-blank line is a header, and skipped, when its first cell is not a number;
 *   - every row (header included) has the same number of columns, at least two;
 *   - features are finite floats (strtof syntax, surrounding blanks allowed), kept as written:
 *     no scaling (use macc_dataset_feature_stats/standardize_features);
 *   - the label column (label_col, negative counts from the end) holds integers in
 *     [0, MACC_DATA_MAX_CLASSES); nclasses is the largest label + 1.
 * Quoting is not supported: a quoted cell is a non-numeric cell.
 *
 * Memory: the number of lines bounds the number of rows, so the float block is allocated once
 * from a count of newlines (at most about as many floats as the text has bytes) and trimmed.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
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

int macc_dataset_parse_csv(const char *text, size_t len, const char *name, int label_col,
			   struct macc_dataset *ret, struct macc_errmsg *err)
{
	struct macc_dataset d;
	const char *p = text, *end = text + len;
	size_t max_rows = 1, line = 0, ncols = 0, lc = 0, rows = 0, nfeat = 0;
	int32_t maxlab = -1;
	bool first = true;
	char shown[48];
	int rc;

	memset(&d, 0, sizeof(d));
	if (len == 0) {
		return macc_errf(err, MACC_EDATA, "%s: empty file", name);
	}
	for (const char *q = text; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++) {
		max_rows++;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end;
		const char *next = nl != NULL ? nl + 1 : end;
		const char *q;
		size_t cols = 1;

		line++;
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
			double v;
			const char *c1 = memchr(p, ',', (size_t)(le - p));

			first = false;
			ncols = cols;
			if (ncols < 2) {
				rc = macc_errf(err, MACC_EDATA,
					       "%s: line %zu: only 1 column; need features and a label "
					       "separated by ','",
					       name, line);
				goto fail;
			}
			long l = label_col < 0 ? (long)ncols + label_col : label_col;

			if (l < 0 || (size_t)l >= ncols) {
				rc = macc_errf(err, MACC_EDATA,
					       "%s: label column %d out of range for %zu columns", name,
					       label_col, ncols);
				goto fail;
			}
			lc = (size_t)l;
			nfeat = ncols - 1;
			if (!macc_data_size_ok(max_rows, nfeat)) {
				rc = macc_errf(err, MACC_EDATA,
					       "%s: too large: %zu lines of %zu features exceed the "
					       "%zu-byte limit",
					       name, max_rows, nfeat, MACC_DATA_MAX_BYTES);
				goto fail;
			}
			d.x = malloc(max_rows * nfeat * sizeof(float));
			d.y = malloc(max_rows * sizeof(int32_t));
			if (d.x == NULL || d.y == NULL) {
				rc = macc_errf(err, -ENOMEM, "%s: out of memory for %zu rows", name,
					       max_rows);
				goto fail;
			}
			if (!parse_number(p, c1 != NULL ? c1 : le, &v)) {
				p = next; /* header */
				continue;
			}
		} else if (cols != ncols) {
			rc = macc_errf(err, MACC_EDATA,
				       "%s: line %zu: ragged row: %zu columns, expected %zu", name,
				       line, cols, ncols);
			goto fail;
		}

		float *xr = d.x + rows * nfeat;
		const char *c = p;

		for (size_t col = 0; col < ncols; col++) {
			const char *ce = memchr(c, ',', (size_t)(le - c));
			double v;

			if (ce == NULL) {
				ce = le;
			}
			if (!parse_number(c, ce, &v)) {
				cell_text(c, ce, shown, sizeof(shown));
				rc = macc_errf(err, MACC_EDATA,
					       "%s: line %zu, column %zu: non-numeric cell '%s'", name,
					       line, col + 1, shown);
				goto fail;
			}
			if (col == lc) {
				if (v < 0.0 || v >= (double)MACC_DATA_MAX_CLASSES || v != floor(v)) {
					cell_text(c, ce, shown, sizeof(shown));
					rc = macc_errf(err, MACC_EDATA,
						       "%s: line %zu, column %zu: label '%s' out of "
						       "range (want an integer in [0, %u))",
						       name, line, col + 1, shown,
						       MACC_DATA_MAX_CLASSES);
					goto fail;
				}
				d.y[rows] = (int32_t)v;
				if (d.y[rows] > maxlab) {
					maxlab = d.y[rows];
				}
			} else {
				if (fabs(v) > FLT_MAX) {
					cell_text(c, ce, shown, sizeof(shown));
					rc = macc_errf(err, MACC_EDATA,
						       "%s: line %zu, column %zu: value '%s' out of "
						       "float range",
						       name, line, col + 1, shown);
					goto fail;
				}
				*xr++ = (float)v;
			}
			c = ce + 1;
		}
		rows++;
		p = next;
	}
	if (rows == 0) {
		rc = macc_errf(err, MACC_EDATA, "%s: no data rows (only a header or blank lines)",
			       name);
		goto fail;
	}
	if (rows < max_rows) {
		float *sx = realloc(d.x, rows * nfeat * sizeof(float));
		int32_t *sy = realloc(d.y, rows * sizeof(int32_t));

		/* A failed shrink keeps the larger block, which is still valid. */
		if (sx != NULL) {
			d.x = sx;
		}
		if (sy != NULL) {
			d.y = sy;
		}
	}
	d.n = rows;
	d.dim = nfeat;
	d.channels = 1;
	d.height = 1;
	d.width = (uint32_t)nfeat;
	d.nclasses = (uint32_t)maxlab + 1;
	*ret = d;
	return 0;
fail:
	macc_dataset_finish(&d);
	return rc;
}
