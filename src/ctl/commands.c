/*
 * commands.c - one function per macc-ctl subcommand.
 *
 * Each function builds its request, calls the daemon through client.c, and prints the reply
 * either as a human table (default) or as one JSON document (--json). The JSON keys are the
 * protocol's wire keys (macc/ctl.h field names), so they are stable:
 *   status   {"state","name","model","algorithm","version","round","rounds_total","epoch",
 *             "epochs_total","train_loss","test_loss","test_accuracy","samples_per_s",
 *             "round_time_s","consensus_distance","peers_up","peers_configured","uptime_s",
 *             "bytes_sent","bytes_received","digest","last_error","degraded","rollbacks",
 *             "connections_rejected":{REASON:COUNT}}  (unknown numbers are null)
 *   peers    {"peers":[{"name","endpoint","key","session","last_round","rtt_ms","weight",
 *             "bytes_in","bytes_out","rejected":{REASON:COUNT},"sealed",
 *             "excluded":{"nonfinite","distance","quarantined"},"clipped","quarantined",
 *             "quarantine_until","quarantines"}]}
 *   audit    {"enabled","file","total","written","errors","entries":[{"seq","time_ms","round",
 *             "reason","peer","key","digest","body_len","evidence"}]}
 *   verify-audit {"file","ok","entries","evidence_checked","evidence_missing","error"}
 *   watch    one {"state","round","rounds_total","epoch","epochs_total","train_loss",
 *             "test_accuracy","samples_per_s","round_time_s","eta_s","final"} per line
 *   metrics  {"metrics": TEXT}    version {"macc_ctl","daemon","protocol"}
 *   others   {"ok":true,"command":NAME}; errors {"ok":false,"command","status","status_name",
 *             "error"} (plus the sentence on stderr)
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "macc/audit.h"
#include "macc/crypto.h"
#include "macc/ctl.h"
#include "macc/log.h"

#include "cli.h"

#ifndef MACC_VERSION
#define MACC_VERSION "0.1.0"
#endif

#define CALL_TIMEOUT_MS 15000

/* --- formatting helpers ------------------------------------------------------------------- */

static const char *fmt_num(char *buf, size_t n, const char *fmt, double v)
{
	if (!isfinite(v)) {
		snprintf(buf, n, "-");
	} else {
		snprintf(buf, n, fmt, v);
	}
	return buf;
}

static const char *fmt_pct(char *buf, size_t n, double v)
{
	if (!isfinite(v)) {
		return "-";
	}
	snprintf(buf, n, "%.2f%%", 100.0 * v);
	return buf;
}

static const char *fmt_dur(char *buf, size_t n, double s)
{
	if (!isfinite(s) || s < 0) {
		return "-";
	}
	if (s < 1) {
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

static const char *fmt_bytes(char *buf, size_t n, uint64_t b)
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

/* A daemon-supplied string made safe for a terminal (it may quote a peer or another client):
 * macc_escape(), the daemon's own log escaping. Returns one of 8 rotating buffers, so a printf
 * may use up to 8 of them. */
static const char *safe(const char *s)
{
	static char bufs[8][512];
	static unsigned next;

	return macc_escape(bufs[next++ % 8], sizeof(bufs[0]), s);
}

static void request(struct cli *c, struct macc_ctl_request *r, enum macc_ctl_cmd cmd)
{
	memset(r, 0, sizeof(*r));
	r->v = MACC_CTL_PROTO_VERSION;
	r->id = c->next_id++;
	r->cmd = cmd;
}

/* --- status ------------------------------------------------------------------------------- */

static void status_json(const struct macc_ctl_status *s)
{
	struct json j;

	json_init(&j, stdout);
	json_obj(&j, NULL);
	json_str(&j, "state", macc_ctl_state_name(s->state));
	json_str(&j, "name", s->name);
	json_str(&j, "model", s->model);
	json_str(&j, "algorithm", s->algorithm);
	json_str(&j, "version", s->version);
	json_u64(&j, "round", s->round);
	json_u64(&j, "rounds_total", s->rounds_total);
	json_num(&j, "epoch", s->epoch);
	json_num(&j, "epochs_total", s->epochs_total);
	json_num(&j, "train_loss", s->train_loss);
	json_num(&j, "test_loss", s->test_loss);
	json_num(&j, "test_accuracy", s->test_accuracy);
	json_num(&j, "samples_per_s", s->samples_per_s);
	json_num(&j, "round_time_s", s->round_time_s);
	json_num(&j, "consensus_distance", s->consensus_distance);
	json_u64(&j, "peers_up", s->peers_up);
	json_u64(&j, "peers_configured", s->peers_configured);
	json_u64(&j, "uptime_s", s->uptime_s);
	json_u64(&j, "bytes_sent", s->bytes_sent);
	json_u64(&j, "bytes_received", s->bytes_received);
	json_str(&j, "digest", s->digest);
	json_str(&j, "last_error", s->last_error);
	json_bool(&j, "degraded", s->degraded);
	json_u64(&j, "rollbacks", s->rollbacks);
	json_obj(&j, "connections_rejected");
	for (unsigned i = 0; i < MACC_CTL_CONNREJ_COUNT; i++) {
		json_u64(&j, macc_ctl_connrej_name((enum macc_ctl_connrej)i),
			 s->connections_rejected[i]);
	}
	json_end_obj(&j);
	json_end_obj(&j);
	json_done(&j);
}

/* "unknown_key=3 flood=1" for the nonzero connection rejections, or "-". */
static const char *connrej_line(const struct macc_ctl_status *s, char *buf, size_t n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < MACC_CTL_CONNREJ_COUNT && off < n; i++) {
		int w;

		if (s->connections_rejected[i] == 0) {
			continue;
		}
		w = snprintf(buf + off, n - off, "%s%s=%llu", off ? " " : "",
			     macc_ctl_connrej_name((enum macc_ctl_connrej)i),
			     (unsigned long long)s->connections_rejected[i]);
		off += w > 0 ? (size_t)w : 0;
	}
	return buf[0] != '\0' ? buf : "-";
}

static void status_human(const struct macc_ctl_status *s)
{
	char a[64], b[64], rej[400];

	printf("agent:       %s (%s, %s)\n", s->name[0] ? safe(s->name) : "-",
	       s->algorithm[0] ? safe(s->algorithm) : "-", s->model[0] ? safe(s->model) : "-");
	if (s->degraded) {
		printf("state:       %s, degraded (rolled back %llu time%s: see last error)\n",
		       macc_ctl_state_name(s->state), (unsigned long long)s->rollbacks,
		       s->rollbacks == 1 ? "" : "s");
	} else {
		printf("state:       %s\n", macc_ctl_state_name(s->state));
	}
	if (s->rounds_total > 0) {
		printf("round:       %llu / %llu\n", (unsigned long long)s->round,
		       (unsigned long long)s->rounds_total);
	} else {
		printf("round:       %llu\n", (unsigned long long)s->round);
	}
	if (s->epochs_total > 0) {
		printf("epoch:       %s / %g\n", fmt_num(a, sizeof(a), "%.2f", s->epoch),
		       s->epochs_total);
	} else {
		printf("epoch:       %s\n", fmt_num(a, sizeof(a), "%.2f", s->epoch));
	}
	printf("train loss:  %s\n", fmt_num(a, sizeof(a), "%.4f", s->train_loss));
	printf("test:        accuracy %s, loss %s\n", fmt_pct(a, sizeof(a), s->test_accuracy),
	       fmt_num(b, sizeof(b), "%.4f", s->test_loss));
	printf("throughput:  %s samples/s\n", fmt_num(a, sizeof(a), "%.0f", s->samples_per_s));
	printf("round time:  %s\n", fmt_dur(a, sizeof(a), s->round_time_s));
	printf("consensus:   %s (mean squared distance to neighbours)\n",
	       fmt_num(a, sizeof(a), "%.3g", s->consensus_distance));
	printf("peers:       %u / %u up\n", s->peers_up, s->peers_configured);
	printf("refused:     %s (connections, before identification)\n",
	       connrej_line(s, rej, sizeof(rej)));
	printf("uptime:      %s\n", fmt_dur(a, sizeof(a), (double)s->uptime_s));
	printf("state bytes: %llu sent, %llu received\n", (unsigned long long)s->bytes_sent,
	       (unsigned long long)s->bytes_received);
	if (s->digest[0] != '\0') {
		printf("digest:      %s\n", safe(s->digest));
	}
	if (s->last_error[0] != '\0') {
		printf("last error:  %s\n", safe(s->last_error));
	}
}

int cmd_status(struct cli *c)
{
	struct macc_ctl_request req;
	struct macc_ctl_reply rep;
	int r;

	request(c, &req, MACC_CTL_CMD_STATUS);
	r = cli_call(c, &req, &rep, CALL_TIMEOUT_MS);
	if (r != CLI_OK) {
		return r;
	}
	if (rep.status != MACC_CTL_OK) {
		return cli_daemon_error(c, "status", &rep);
	}
	if (c->json) {
		status_json(&rep.st);
	} else {
		status_human(&rep.st);
	}
	macc_ctl_reply_finish(&rep);
	return CLI_OK;
}

/* --- peers -------------------------------------------------------------------------------- */

static void peers_json(const struct macc_ctl_reply *rep)
{
	struct json j;

	json_init(&j, stdout);
	json_obj(&j, NULL);
	json_arr(&j, "peers");
	for (size_t i = 0; i < rep->npeers; i++) {
		const struct macc_ctl_peer *p = &rep->peers[i];

		json_obj(&j, NULL);
		json_str(&j, "name", p->name);
		json_str(&j, "endpoint", p->endpoint);
		json_str(&j, "key", p->key);
		json_str(&j, "session", macc_ctl_session_name(p->session));
		json_i64(&j, "last_round", p->last_round);
		json_num(&j, "rtt_ms", p->rtt_ms);
		json_num(&j, "weight", p->weight);
		json_u64(&j, "bytes_in", p->bytes_in);
		json_u64(&j, "bytes_out", p->bytes_out);
		json_obj(&j, "rejected");
		for (size_t k = 0; k < p->nrejected; k++) {
			json_u64(&j, p->rejected[k].reason, p->rejected[k].count);
		}
		json_end_obj(&j);
		json_bool(&j, "sealed", p->sealed);
		json_obj(&j, "excluded");
		json_u64(&j, "nonfinite", p->excluded_nonfinite);
		json_u64(&j, "distance", p->excluded_distance);
		json_u64(&j, "quarantined", p->excluded_quarantined);
		json_end_obj(&j);
		json_u64(&j, "clipped", p->clipped);
		json_bool(&j, "quarantined", p->quarantined);
		json_u64(&j, "quarantine_until", p->quarantine_until);
		json_u64(&j, "quarantines", p->quarantines);
		json_end_obj(&j);
	}
	json_end_arr(&j);
	json_end_obj(&j);
	json_done(&j);
}

static void peers_human(const struct macc_ctl_reply *rep)
{
	if (rep->npeers == 0) {
		printf("no peers configured\n");
		return;
	}
	printf("%-16s %-24s %-10s %-10s %-6s %10s %10s %10s %10s %-22s %-16s  %s\n", "NAME",
	       "ENDPOINT", "KEY", "SESSION", "SEALED", "LAST ROUND", "RTT", "IN", "OUT",
	       "EXCLUDED", "QUARANTINE", "REJECTED");
	for (size_t i = 0; i < rep->npeers; i++) {
		const struct macc_ctl_peer *p = &rep->peers[i];
		char key[16], lr[24], rtt[32], in[32], out[32], rej[512], exc[96], qua[48];
		size_t off = 0;

		snprintf(key, sizeof(key), "%.8s%s", p->key, strlen(p->key) > 8 ? "..." : "");
		if (p->last_round >= 0) {
			snprintf(lr, sizeof(lr), "%lld", (long long)p->last_round);
		} else {
			snprintf(lr, sizeof(lr), "-");
		}
		fmt_num(rtt, sizeof(rtt), "%.2f ms", p->rtt_ms);
		rej[0] = '\0';
		for (size_t k = 0; k < p->nrejected && off < sizeof(rej) - 1; k++) {
			int w = snprintf(rej + off, sizeof(rej) - off, "%s%s=%llu", k ? " " : "",
					 safe(p->rejected[k].reason),
					 (unsigned long long)p->rejected[k].count);

			off += w > 0 ? (size_t)w : 0;
		}
		if (p->excluded_nonfinite + p->excluded_distance + p->excluded_quarantined > 0) {
			snprintf(exc, sizeof(exc), "nf=%llu dist=%llu q=%llu",
				 (unsigned long long)p->excluded_nonfinite,
				 (unsigned long long)p->excluded_distance,
				 (unsigned long long)p->excluded_quarantined);
		} else {
			snprintf(exc, sizeof(exc), "-");
		}
		if (p->quarantined) {
			snprintf(qua, sizeof(qua), "until %llu", (unsigned long long)p->quarantine_until);
		} else if (p->quarantines > 0) {
			snprintf(qua, sizeof(qua), "no (%llu past)", (unsigned long long)p->quarantines);
		} else {
			snprintf(qua, sizeof(qua), "no");
		}
		printf("%-16s %-24s %-10s %-10s %-6s %10s %10s %10s %10s %-22s %-16s  %s\n",
		       safe(p->name), safe(p->endpoint), safe(key), macc_ctl_session_name(p->session),
		       p->session == MACC_CTL_SESSION_UP ? (p->sealed ? "yes" : "no") : "-", lr, rtt,
		       fmt_bytes(in, sizeof(in), p->bytes_in),
		       fmt_bytes(out, sizeof(out), p->bytes_out), exc, qua, rej[0] ? rej : "-");
	}
}

int cmd_peers(struct cli *c)
{
	struct macc_ctl_request req;
	struct macc_ctl_reply rep;
	int r;

	request(c, &req, MACC_CTL_CMD_PEERS);
	r = cli_call(c, &req, &rep, CALL_TIMEOUT_MS);
	if (r != CLI_OK) {
		return r;
	}
	if (rep.status != MACC_CTL_OK) {
		return cli_daemon_error(c, "peers", &rep);
	}
	if (c->json) {
		peers_json(&rep);
	} else {
		peers_human(&rep);
	}
	macc_ctl_reply_finish(&rep);
	return CLI_OK;
}

/* --- audit -------------------------------------------------------------------------------- */

static void audit_json(const struct macc_ctl_audit *au)
{
	struct json j;

	json_init(&j, stdout);
	json_obj(&j, NULL);
	json_bool(&j, "enabled", au->enabled);
	json_str(&j, "file", au->file);
	json_u64(&j, "total", au->total);
	json_u64(&j, "written", au->written);
	json_u64(&j, "errors", au->errors);
	json_arr(&j, "entries");
	for (size_t i = 0; i < au->nentries; i++) {
		const struct macc_ctl_audit_entry *e = &au->entries[i];

		json_obj(&j, NULL);
		json_u64(&j, "seq", e->seq);
		json_u64(&j, "time_ms", e->time_ms);
		json_u64(&j, "round", e->round);
		json_str(&j, "reason", e->reason);
		json_str(&j, "peer", e->peer);
		json_str(&j, "key", e->key);
		json_str(&j, "digest", e->digest);
		json_u64(&j, "body_len", e->body_len);
		json_str(&j, "evidence", e->evidence);
		json_end_obj(&j);
	}
	json_end_arr(&j);
	json_end_obj(&j);
	json_done(&j);
}

static void audit_human(const struct macc_ctl_audit *au)
{
	printf("audit trail: %s, %s\n", au->enabled ? "on" : "off", safe(au->file));
	printf("entries: %llu in the kept files, %llu written by this daemon, %llu write errors\n",
	       (unsigned long long)au->total, (unsigned long long)au->written,
	       (unsigned long long)au->errors);
	if (au->nentries == 0) {
		return;
	}
	printf("%8s  %-20s %10s %-10s %-16s %-12s %10s  %s\n", "SEQ", "TIME (UTC)", "ROUND",
	       "REASON", "PEER", "KEY", "BODY", "EVIDENCE");
	for (size_t i = 0; i < au->nentries; i++) {
		const struct macc_ctl_audit_entry *e = &au->entries[i];
		time_t t = (time_t)(e->time_ms / 1000);
		struct tm tm;
		char when[32], key[16], body[32];

		if (gmtime_r(&t, &tm) == NULL ||
		    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm) == 0) {
			snprintf(when, sizeof(when), "?");
		}
		snprintf(key, sizeof(key), "%.8s...", e->key);
		printf("%8llu  %-20s %10llu %-10s %-16s %-12s %10s  %s\n",
		       (unsigned long long)e->seq, when, (unsigned long long)e->round,
		       safe(e->reason), safe(e->peer), safe(key),
		       fmt_bytes(body, sizeof(body), e->body_len),
		       e->evidence[0] ? safe(e->evidence) : "-");
	}
}

int cmd_audit(struct cli *c)
{
	struct macc_ctl_request req;
	struct macc_ctl_reply rep;
	int r;

	request(c, &req, MACC_CTL_CMD_AUDIT);
	if (c->argc == 1) {
		char *end = NULL;
		unsigned long l = strtoul(c->argv[0], &end, 10);

		if (end == c->argv[0] || *end != '\0' || l < 1 || l > MACC_CTL_AUDIT_MAX) {
			cli_err("audit: COUNT must be a number from 1 to %d, not '%s'.",
				MACC_CTL_AUDIT_MAX, c->argv[0]);
			return CLI_EUSAGE;
		}
		req.limit = (uint32_t)l;
	}
	r = cli_call(c, &req, &rep, CALL_TIMEOUT_MS);
	if (r != CLI_OK) {
		return r;
	}
	if (rep.status != MACC_CTL_OK) {
		return cli_daemon_error(c, "audit", &rep);
	}
	if (c->json) {
		audit_json(&rep.audit);
	} else {
		audit_human(&rep.audit);
	}
	macc_ctl_reply_finish(&rep);
	return CLI_OK;
}

/* Offline: no daemon. The evidence directory is the log's sibling audit-evidence/. Exit 0 when
 * every entry verifies, 1 naming the first bad entry otherwise (2: usage). */
int cmd_verify_audit(struct cli *c)
{
	const char *path = c->argv[0];
	const char *slash = strrchr(path, '/');
	char evdir[4200];
	struct macc_audit_verify v;
	struct macc_errmsg err;
	struct stat sb;
	int rc;

	if (macc_crypto_init() < 0) {
		cli_err("cannot initialise libsodium.");
		return CLI_EDAEMON;
	}
	if (slash == NULL) {
		snprintf(evdir, sizeof(evdir), MACC_AUDIT_EVIDENCE_DIR);
	} else {
		snprintf(evdir, sizeof(evdir), "%.*s/" MACC_AUDIT_EVIDENCE_DIR,
			 (int)(slash - path) > 4000 ? 4000 : (int)(slash - path), path);
	}
	err.text[0] = '\0';
	rc = macc_audit_verify_file(path, stat(evdir, &sb) == 0 ? evdir : NULL, &v, &err);
	if (c->json) {
		struct json j;

		json_init(&j, stdout);
		json_obj(&j, NULL);
		json_str(&j, "file", path);
		json_bool(&j, "ok", rc == 0);
		json_u64(&j, "entries", v.entries);
		json_u64(&j, "evidence_checked", v.evidence_checked);
		json_u64(&j, "evidence_missing", v.evidence_missing);
		if (rc < 0) {
			json_str(&j, "error", err.text);
		} else {
			json_null(&j, "error");
		}
		json_end_obj(&j);
		json_done(&j);
	}
	if (rc < 0) {
		cli_err("%s: %s", path, err.text);
		return CLI_EDAEMON;
	}
	if (!c->json) {
		printf("%s: %llu entries verified (signatures by the stored keys), %llu bodies "
		       "checked against their digests, %llu bodies no longer kept\n", path,
		       (unsigned long long)v.entries, (unsigned long long)v.evidence_checked,
		       (unsigned long long)v.evidence_missing);
	}
	return CLI_OK;
}

/* --- commands without data ---------------------------------------------------------------- */

static int simple(struct cli *c, enum macc_ctl_cmd cmd, enum macc_log_level level,
		  const char *done_msg)
{
	struct macc_ctl_request req;
	struct macc_ctl_reply rep;
	const char *name = macc_ctl_commands[cmd].name;
	int r;

	request(c, &req, cmd);
	req.level = level;
	r = cli_call(c, &req, &rep, CALL_TIMEOUT_MS);
	if (r != CLI_OK) {
		return r;
	}
	if (rep.status != MACC_CTL_OK) {
		return cli_daemon_error(c, name, &rep);
	}
	if (c->json) {
		struct json j;

		json_init(&j, stdout);
		json_obj(&j, NULL);
		json_bool(&j, "ok", true);
		json_str(&j, "command", name);
		json_end_obj(&j);
		json_done(&j);
	} else {
		printf("%s\n", done_msg);
	}
	macc_ctl_reply_finish(&rep);
	return CLI_OK;
}

int cmd_start(struct cli *c)
{
	return simple(c, MACC_CTL_CMD_START, 0, "training started");
}

int cmd_stop(struct cli *c)
{
	return simple(c, MACC_CTL_CMD_STOP, 0, "training stops after the current round");
}

int cmd_pause(struct cli *c)
{
	return simple(c, MACC_CTL_CMD_PAUSE, 0, "training pauses after the current round");
}

int cmd_resume(struct cli *c)
{
	return simple(c, MACC_CTL_CMD_RESUME, 0, "training resumed");
}

int cmd_checkpoint(struct cli *c)
{
	return simple(c, MACC_CTL_CMD_CHECKPOINT, 0, "checkpoint requested");
}

int cmd_eval(struct cli *c)
{
	return simple(c, MACC_CTL_CMD_EVAL, 0,
		      "evaluation requested; see 'macc-ctl status' for the result");
}

int cmd_reload(struct cli *c)
{
	return simple(c, MACC_CTL_CMD_RELOAD, 0, "configuration reloaded");
}

int cmd_log_level(struct cli *c)
{
	enum macc_log_level level;
	char msg[64];

	if (macc_log_level_parse(c->argv[0], &level) < 0) {
		cli_err("log level '%s' is not one of error, warn, info, debug.", c->argv[0]);
		return CLI_EUSAGE;
	}
	snprintf(msg, sizeof(msg), "log level set to %s", macc_log_level_name(level));
	return simple(c, MACC_CTL_CMD_LOG_LEVEL, level, msg);
}

/* --- text replies ------------------------------------------------------------------------- */

int cmd_metrics(struct cli *c)
{
	struct macc_ctl_request req;
	struct macc_ctl_reply rep;
	int r;

	request(c, &req, MACC_CTL_CMD_METRICS);
	r = cli_call(c, &req, &rep, CALL_TIMEOUT_MS);
	if (r != CLI_OK) {
		return r;
	}
	if (rep.status != MACC_CTL_OK || rep.text == NULL) {
		return cli_daemon_error(c, "metrics", &rep);
	}
	if (c->json) {
		struct json j;

		json_init(&j, stdout);
		json_obj(&j, NULL);
		json_strn(&j, "metrics", rep.text, rep.text_len);
		json_end_obj(&j);
		json_done(&j);
	} else {
		fwrite(rep.text, 1, rep.text_len, stdout);
	}
	macc_ctl_reply_finish(&rep);
	return CLI_OK;
}

int cmd_version(struct cli *c)
{
	struct macc_ctl_request req;
	struct macc_ctl_reply rep;
	int r;

	if (!c->json) {
		printf("macc-ctl %s (control protocol %d)\n", MACC_VERSION,
		       MACC_CTL_PROTO_VERSION);
		fflush(stdout);
	}
	request(c, &req, MACC_CTL_CMD_VERSION);
	r = cli_call(c, &req, &rep, CALL_TIMEOUT_MS);
	if (r == CLI_OK && (rep.status != MACC_CTL_OK || rep.text == NULL)) {
		return cli_daemon_error(c, "version", &rep);
	}
	if (c->json) {
		struct json j;

		json_init(&j, stdout);
		json_obj(&j, NULL);
		json_str(&j, "macc_ctl", MACC_VERSION);
		if (r == CLI_OK) {
			json_str(&j, "daemon", rep.text);
		} else {
			json_null(&j, "daemon");
		}
		json_i64(&j, "protocol", MACC_CTL_PROTO_VERSION);
		json_end_obj(&j);
		json_done(&j);
	} else if (r == CLI_OK) {
		printf("macc-agentd %s\n", safe(rep.text));
	}
	if (r == CLI_OK) {
		macc_ctl_reply_finish(&rep);
	}
	return r;
}

/* --- watch -------------------------------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct watch_state {
	bool have_first;
	double t0;
	uint64_t round0;
	bool drew_bar;
};

/* Fraction done in [0, 1], or -1 when the run length is unknown. */
static double fraction(const struct macc_ctl_progress *p)
{
	if (p->rounds_total > 0) {
		return p->round >= p->rounds_total ? 1.0 : (double)p->round / p->rounds_total;
	}
	if (p->epochs_total > 0 && isfinite(p->epoch)) {
		return p->epoch >= p->epochs_total ? 1.0 : p->epoch / p->epochs_total;
	}
	return -1;
}

static double eta(struct watch_state *w, const struct macc_ctl_progress *p)
{
	double t = now_s();

	if (isfinite(p->eta_s)) {
		return p->eta_s;
	}
	if (!w->have_first) {
		w->have_first = true;
		w->t0 = t;
		w->round0 = p->round;
		return NAN;
	}
	if (p->rounds_total > 0 && p->round > w->round0 && t > w->t0) {
		double rate = (double)(p->round - w->round0) / (t - w->t0);

		return (double)(p->rounds_total - (p->round < p->rounds_total ? p->round
									     : p->rounds_total)) /
		       rate;
	}
	return NAN;
}

static void watch_print(struct cli *c, struct watch_state *w, const struct macc_ctl_progress *p)
{
	char lossb[32], accb[32], spsb[32], etb[32], ep[32], rounds[48], pct[16];
	const char *loss, *acc, *sps, *et;
	double f = fraction(p), e = eta(w, p);

	if (c->json) {
		struct json j;

		json_init(&j, stdout);
		json_obj(&j, NULL);
		json_str(&j, "state", macc_ctl_state_name(p->state));
		json_u64(&j, "round", p->round);
		json_u64(&j, "rounds_total", p->rounds_total);
		json_num(&j, "epoch", p->epoch);
		json_num(&j, "epochs_total", p->epochs_total);
		json_num(&j, "train_loss", p->train_loss);
		json_num(&j, "test_accuracy", p->test_accuracy);
		json_num(&j, "samples_per_s", p->samples_per_s);
		json_num(&j, "round_time_s", p->round_time_s);
		json_num(&j, "eta_s", e);
		json_bool(&j, "final", p->final);
		json_end_obj(&j);
		json_done(&j);
		return;
	}
	loss = fmt_num(lossb, sizeof(lossb), "%.4f", p->train_loss);
	acc = fmt_pct(accb, sizeof(accb), p->test_accuracy);
	sps = fmt_num(spsb, sizeof(spsb), "%.0f", p->samples_per_s);
	et = p->final ? "0 s" : fmt_dur(etb, sizeof(etb), e);
	pct[0] = '\0';
	if (f >= 0) {
		snprintf(pct, sizeof(pct), "%.0f%%", f * 100);
	}
	if (p->epochs_total > 0) {
		snprintf(ep, sizeof(ep), "%.2f/%.2f", p->epoch, p->epochs_total);
	} else {
		fmt_num(ep, sizeof(ep), "%.2f", p->epoch);
	}
	if (p->rounds_total > 0) {
		snprintf(rounds, sizeof(rounds), "%llu/%llu", (unsigned long long)p->round,
			 (unsigned long long)p->rounds_total);
	} else {
		snprintf(rounds, sizeof(rounds), "%llu", (unsigned long long)p->round);
	}
	if (c->tty) {
		char bar[31];
		int filled = f >= 0 ? (int)(f * 30 + 0.5) : 0;

		for (int i = 0; i < 30; i++) {
			bar[i] = i < filled ? '#' : (f >= 0 ? '.' : ' ');
		}
		bar[30] = '\0';
		printf("\r\033[K[%s] %4s  round %s  epoch %s  loss %s  acc %s  ETA %s", bar, pct,
		       rounds, ep, loss, acc, et);
		w->drew_bar = true;
		if (p->final) {
			printf("\n");
		}
		fflush(stdout);
	} else {
		printf("%s round %s epoch %s loss %s acc %s samples/s %s eta %s\n",
		       macc_ctl_state_name(p->state), rounds, ep, loss, acc, sps, et);
		fflush(stdout);
	}
}

int cmd_watch(struct cli *c)
{
	struct macc_ctl_request req;
	struct macc_ctl_reply rep;
	struct watch_state w;
	int r;

	memset(&w, 0, sizeof(w));
	request(c, &req, MACC_CTL_CMD_WATCH);
	r = cli_call(c, &req, &rep, CALL_TIMEOUT_MS);
	for (;;) {
		bool final;
		enum macc_ctl_state st;

		if (r != CLI_OK) {
			if (w.drew_bar) {
				printf("\n");
			}
			return r;
		}
		if (rep.status != MACC_CTL_OK) {
			if (w.drew_bar) {
				printf("\n");
			}
			return cli_daemon_error(c, "watch", &rep);
		}
		watch_print(c, &w, &rep.progress);
		final = rep.progress.final;
		st = rep.progress.state;
		macc_ctl_reply_finish(&rep);
		if (final) {
			if (st == MACC_CTL_STATE_ERROR) {
				cli_err("the run ended with an error; see 'macc-ctl status'.");
				return CLI_EDAEMON;
			}
			return CLI_OK;
		}
		r = cli_next(c, MACC_CTL_CMD_WATCH, req.id, &rep);
	}
}

/* --- keys --------------------------------------------------------------------------------- */

int cmd_genkey(struct cli *c)
{
	char key[MACC_KEY_B64_SIZE];

	if (macc_key_generate_b64(key) < 0) {
		cli_err("cannot generate a key (libsodium failed to initialise).");
		return CLI_EDAEMON;
	}
	if (c->json) {
		struct json j;

		json_init(&j, stdout);
		json_obj(&j, NULL);
		json_str(&j, "secret_key", key);
		json_end_obj(&j);
		json_done(&j);
	} else {
		printf("%s\n", key);
	}
	fflush(stdout);
	macc_memzero(key, sizeof(key));
	return CLI_OK;
}

int cmd_pubkey(struct cli *c)
{
	char in[1024];
	char pub[MACC_KEY_B64_SIZE];
	struct macc_errmsg err;
	size_t n;
	int r;

	n = fread(in, 1, sizeof(in) - 1, stdin);
	in[n] = '\0';
	if (n == sizeof(in) - 1 || memchr(in, '\0', n) != NULL) {
		macc_memzero(in, sizeof(in));
		cli_err("stdin does not hold a base64 secret key.");
		return CLI_EUSAGE;
	}
	r = macc_key_pubkey_from_secret_b64(in, pub, &err);
	macc_memzero(in, sizeof(in));
	if (r < 0) {
		cli_err("stdin does not hold a base64 secret key of 32 bytes.");
		return CLI_EUSAGE;
	}
	if (c->json) {
		struct json j;

		json_init(&j, stdout);
		json_obj(&j, NULL);
		json_str(&j, "public_key", pub);
		json_end_obj(&j);
		json_done(&j);
	} else {
		printf("%s\n", pub);
	}
	return CLI_OK;
}
