/*
 * cli.h - macc-ctl's internal interfaces: options, the daemon connection, output helpers and
 * the subcommand functions (one per subcommand, in commands.c).
 *
 * macc-ctl talks to macc-agentd over a plain blocking Unix socket (no libuv), with the codec of
 * macc/ctl.h. Exit codes: CLI_OK 0, CLI_EDAEMON 1 (the daemon reported an error), CLI_EUSAGE 2,
 * CLI_ECONNECT 3 (cannot connect or the connection failed). Errors go to stderr as one sentence
 * starting with "macc-ctl: ". With --json every run also prints one JSON document on stdout,
 * failures included: cli_err() keeps the first sentence in the struct cli, and main() prints it
 * as an error document (cli_json_error) unless the command already printed one.
 */
#ifndef MACC_CTL_CLI_H
#define MACC_CTL_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "macc/ctl.h"

enum { CLI_OK = 0, CLI_EDAEMON = 1, CLI_EUSAGE = 2, CLI_ECONNECT = 3 };

struct cli {
	const char *socket_path;
	const char *command; /* the subcommand's name, NULL before it is known */
	bool json;
	bool tty;     /* stdout is a terminal */
	bool error_printed; /* a JSON error document is out (main() adds none) */
	char errmsg[1024];  /* the first error sentence, for the JSON error document */
	int argc;     /* subcommand arguments (after the subcommand name) */
	char **argv;
	int fd;       /* -1 until connected */
	uint64_t next_id;
};

/* Print "macc-ctl: <message>\n" to stderr and keep the first message in c->errmsg. */
void cli_err(struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The JSON error document: {"ok": false, "command", "exit_code", "status", "status_name",
 * "error"}; status and status_name are null when the daemon did not answer (status < 0).
 * Sets c->error_printed.
 */
void cli_json_error(struct cli *c, int exit_code, int status, const char *msg);

/* Connect to the socket; on failure prints the reason and returns CLI_ECONNECT. */
int cli_connect(struct cli *c);
void cli_disconnect(struct cli *c);

/*
 * Send one request and wait for its reply (timeout_ms 0 = wait forever). Returns CLI_OK with
 * *ret filled (the reply's status may be an error), or CLI_ECONNECT after printing why.
 */
int cli_call(struct cli *c, const struct macc_ctl_request *req, struct macc_ctl_reply *ret,
	     int timeout_ms);
/* Read the next reply of a stream (watch). */
int cli_next(struct cli *c, enum macc_ctl_cmd cmd, uint64_t id, struct macc_ctl_reply *ret);

/* Report a reply with an error status: stderr sentence, JSON error document with --json.
 * Returns CLI_EDAEMON. */
int cli_daemon_error(struct cli *c, const char *cmd, const struct macc_ctl_reply *rep);

/* Columns of the terminal on stdout (TIOCGWINSZ, else $COLUMNS, else 80). */
int cli_term_width(void);

/* JSON writer: one document on a FILE, strings escaped, NaN/Inf as null. */
struct json {
	FILE *f;
	int depth;
	bool first[32];
};
void json_init(struct json *j, FILE *f);
void json_obj(struct json *j, const char *key);   /* begin an object (key NULL in arrays/root) */
void json_end_obj(struct json *j);
void json_arr(struct json *j, const char *key);
void json_end_arr(struct json *j);
void json_str(struct json *j, const char *key, const char *v);
void json_strn(struct json *j, const char *key, const char *v, size_t n);
void json_num(struct json *j, const char *key, double v);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_i64(struct json *j, const char *key, int64_t v);
void json_bool(struct json *j, const char *key, bool v);
void json_null(struct json *j, const char *key);
void json_done(struct json *j); /* newline */

/* Formatting for people (format.c): "-" for unknown (non-finite) values. */
const char *cli_fmt_num(char *buf, size_t n, const char *fmt, double v);
const char *cli_fmt_pct(char *buf, size_t n, double ratio);  /* 0.8431 -> "84.31%" */
const char *cli_fmt_dur(char *buf, size_t n, double seconds); /* "134.0 ms", "15.3 s", "2m05s" */
const char *cli_fmt_bytes(char *buf, size_t n, uint64_t bytes); /* "188.4 MiB" */
/* A daemon-supplied string made safe for a terminal (it may quote a peer or another client):
 * macc_escape(), the daemon's own log escaping (\x0a, \x1b, ...). */
const char *cli_safe(char *buf, size_t n, const char *s);

/* A table: columns as wide as their widest cell, two spaces apart, the last column not padded.
 * `rank` orders the columns to drop on a narrow terminal (lowest first; 0: always shown). */
#define CLI_TABLE_MAXCOLS 16
struct cli_column {
	const char *head;
	bool right; /* right-aligned (numbers) */
	int rank;
};
struct cli_cell {
	char text[160];
};
struct cli_table {
	const struct cli_column *cols;
	int ncols;
	size_t nrows;
	struct cli_cell *cells; /* [nrows][ncols], owned */
};
int cli_table_init(struct cli_table *t, const struct cli_column *cols, int ncols, size_t nrows);
void cli_table_set(struct cli_table *t, size_t row, int col, const char *text);
/* Print; limit > 0: drop low-ranked columns until a line fits in `limit` columns, and say so. */
void cli_table_print(const struct cli_table *t, int limit);
void cli_table_finish(struct cli_table *t);

/* A request of command `cmd` with the next id. */
void cli_request(struct cli *c, struct macc_ctl_request *r, enum macc_ctl_cmd cmd);

/* Subcommands. Each returns an exit code. */
int cmd_status(struct cli *c);
int cmd_peers(struct cli *c);
int cmd_start(struct cli *c);
int cmd_stop(struct cli *c);
int cmd_pause(struct cli *c);
int cmd_resume(struct cli *c);
int cmd_checkpoint(struct cli *c);
int cmd_eval(struct cli *c);
int cmd_reload(struct cli *c);
int cmd_metrics(struct cli *c);
int cmd_watch(struct cli *c);
int cmd_log_level(struct cli *c);
int cmd_version(struct cli *c);
int cmd_audit(struct cli *c);
int cmd_verify_audit(struct cli *c);
int cmd_export(struct cli *c);  /* model.c */
int cmd_predict(struct cli *c); /* model.c */
int cmd_genkey(struct cli *c);
int cmd_pubkey(struct cli *c);
int cmd_help(struct cli *c);

#endif
