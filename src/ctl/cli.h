/*
 * cli.h - macc-ctl's internal interfaces: options, the daemon connection, output helpers and
 * the subcommand functions (one per subcommand, in commands.c).
 *
 * macc-ctl talks to macc-agentd over a plain blocking Unix socket (no libuv), with the codec of
 * macc/ctl.h. Exit codes: CLI_OK 0, CLI_EDAEMON 1 (the daemon reported an error), CLI_EUSAGE 2,
 * CLI_ECONNECT 3 (cannot connect or the connection failed). Errors go to stderr as one sentence
 * starting with "macc-ctl: ".
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
	bool json;
	bool tty;     /* stdout is a terminal */
	int argc;     /* subcommand arguments (after the subcommand name) */
	char **argv;
	int fd;       /* -1 until connected */
	uint64_t next_id;
};

/* Print "macc-ctl: <message>\n" to stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

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
