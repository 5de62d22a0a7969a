/*
 * format.c - how macc-ctl writes values for people: numbers with "-" for unknown, durations,
 * byte counts in IEC units, daemon strings made safe for a terminal, and tables whose columns
 * are as wide as their widest cell and that fit the terminal.
 *
 * Units follow the naming rule of the JSON keys (macc-ctl(8) NAMES): JSON carries SI base units
 * (seconds, bytes, ratios); tables show the same quantities scaled for reading (ms, MiB, %), and
 * the same quantity is always shown the same way in every command.
 *
 * A table on a terminal narrower than its lines drops whole columns, least important first (each
 * column has a rank; 0 = never dropped), and says which in a last line, rather than wrapping
 * every row; piped output always has every column.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macc/log.h"

#include "cli.h"

const char *cli_fmt_num(char *buf, size_t n, const char *fmt, double v)
{
	if (!isfinite(v)) {
		snprintf(buf, n, "-");
	} else {
		snprintf(buf, n, fmt, v);
	}
	return buf;
}

const char *cli_fmt_pct(char *buf, size_t n, double ratio)
{
	if (!isfinite(ratio)) {
		snprintf(buf, n, "-");
	} else {
		snprintf(buf, n, "%.2f%%", 100.0 * ratio);
	}
	return buf;
}

const char *cli_fmt_dur(char *buf, size_t n, double s)
{
	if (!isfinite(s) || s < 0) {
		snprintf(buf, n, "-");
	} else if (s < 1) {
		snprintf(buf, n, "%.1f ms", s * 1000);
	} else if (s < 120) {
		snprintf(buf, n, "%.1f s", s);
	} else if (s < 7200) {
		snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
	} else {
		snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
	}
	return buf;
}

const char *cli_fmt_bytes(char *buf, size_t n, uint64_t b)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0) {
		snprintf(buf, n, "%llu B", (unsigned long long)b);
	} else {
		snprintf(buf, n, "%.1f %s", v, units[u]);
	}
	return buf;
}

const char *cli_safe(char *buf, size_t n, const char *s)
{
	return macc_escape(buf, n, s);
}

/* --- tables ----------------------------------------------------------------------------------- */

int cli_table_init(struct cli_table *t, const struct cli_column *cols, int ncols, size_t nrows)
{
	memset(t, 0, sizeof(*t));
	t->cols = cols;
	t->ncols = ncols;
	t->nrows = nrows;
	t->cells = calloc((nrows ? nrows : 1) * (size_t)ncols, sizeof(*t->cells));
	return t->cells != NULL ? 0 : -1;
}

void cli_table_set(struct cli_table *t, size_t row, int col, const char *text)
{
	snprintf(t->cells[row * (size_t)t->ncols + (size_t)col].text,
		 sizeof(t->cells[0].text), "%s", text);
}

void cli_table_finish(struct cli_table *t)
{
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

static int line_width(const int *w, const bool *shown, int ncols)
{
	int total = 0, k = 0;

	for (int i = 0; i < ncols; i++) {
		if (shown[i]) {
			total += w[i] + (k++ > 0 ? 2 : 0);
		}
	}
	return total;
}

/* Hide the lowest-ranked columns until a line fits `limit` (0: no limit). */
static void fit(const struct cli_table *t, const int *w, bool *shown, int limit)
{
	while (limit > 0 && line_width(w, shown, t->ncols) > limit) {
		int drop = -1;

		for (int i = 0; i < t->ncols; i++) {
			if (shown[i] && t->cols[i].rank > 0 &&
			    (drop < 0 || t->cols[i].rank < t->cols[drop].rank)) {
				drop = i;
			}
		}
		if (drop < 0) {
			return;
		}
		shown[drop] = false;
	}
}

static void print_row(const struct cli_table *t, const int *w, const bool *shown,
		      const char *const *text)
{
	int last = -1, k = 0;

	for (int i = 0; i < t->ncols; i++) {
		last = shown[i] ? i : last;
	}
	for (int i = 0; i < t->ncols; i++) {
		if (!shown[i]) {
			continue;
		}
		if (k++ > 0) {
			fputs("  ", stdout);
		}
		if (t->cols[i].right) {
			printf("%*s", w[i], text[i]);
		} else if (i == last) {
			fputs(text[i], stdout);
		} else {
			printf("%-*s", w[i], text[i]);
		}
	}
	putchar('\n');
}

void cli_table_print(const struct cli_table *t, int limit)
{
	int w[CLI_TABLE_MAXCOLS];
	bool shown[CLI_TABLE_MAXCOLS];
	const char *text[CLI_TABLE_MAXCOLS];
	char hidden[256];
	size_t off = 0;

	for (int i = 0; i < t->ncols; i++) {
		w[i] = (int)strlen(t->cols[i].head);
		shown[i] = true;
		for (size_t r = 0; r < t->nrows; r++) {
			int n = (int)strlen(t->cells[r * (size_t)t->ncols + (size_t)i].text);

			w[i] = n > w[i] ? n : w[i];
		}
		text[i] = t->cols[i].head;
	}
	fit(t, w, shown, limit);
	print_row(t, w, shown, text);
	for (size_t r = 0; r < t->nrows; r++) {
		for (int i = 0; i < t->ncols; i++) {
			text[i] = t->cells[r * (size_t)t->ncols + (size_t)i].text;
		}
		print_row(t, w, shown, text);
	}
	/* The names of the hidden columns, wrapped to the width too. */
	hidden[0] = '\0';
	for (int i = 0, col = 0; i < t->ncols && off < sizeof(hidden) - 1; i++) {
		int n;

		if (shown[i]) {
			continue;
		}
		if (off == 0) {
			n = snprintf(hidden, sizeof(hidden), "(not shown in %d columns: %s", limit,
				     t->cols[i].head);
			col = n;
		} else if (col + 2 + (int)strlen(t->cols[i].head) + 1 > limit) {
			n = snprintf(hidden + off, sizeof(hidden) - off, ",\n %s", t->cols[i].head);
			col = n - 2;
		} else {
			n = snprintf(hidden + off, sizeof(hidden) - off, ", %s", t->cols[i].head);
			col += n;
		}
		off += n > 0 ? (size_t)n : 0;
	}
	if (hidden[0] != '\0') {
		printf("%s)\n", hidden);
	}
}
