/*
 * commands.c - one function per macc-ctl subcommand (watch is in watch.c).
 *
 * Each function builds its request, calls the daemon through client.c, and prints the reply
 * either as a human table (default) or as one JSON document (--json). The JSON keys are the
 * protocol's wire keys (macc/ctl.h field names), so they are stable, and they follow one naming
 * rule (macc-ctl(8) NAMES): SI base units at the end of the name (_seconds, _bytes), _ratio for
 * fractions, _per_second for rates, _total only for counters, and the metric's name for the same
 * quantity. Unknown numbers are null.
 *   status   {"state","name","model","algorithm","version","arch","blas",
 *             "round","rounds_planned","epoch",
 *             "epochs_planned","train_loss","test_loss","test_accuracy_ratio",
 *             "samples_per_second","round_seconds","consensus_distance","peers_up",
 *             "peers_configured","uptime_seconds","process_start_time_seconds",
 *             "state_bytes_sent_total","state_bytes_received_total","digest","last_error",
 *             "degraded","rollbacks_total","connections_rejected_total":{REASON:N},
 *             "standardize","standardize_digest","standardize_refused_total"}
 *   peers    {"peers":[{"name","endpoint","key","session","arch","blas","last_round",
 *             "rtt_seconds","weight",
 *             "bytes_received_total","bytes_sent_total","messages_rejected_total":{REASON:N},
 *             "sealed","states_excluded_total":{"nonfinite","distance","quarantined"},
 *             "states_clipped_total","quarantine_active","quarantine_until",
 *             "quarantines_total"}]}
 *   audit    {"enabled","file","entries_kept","entries_total","errors_total","entries":[{"seq",
 *             "time_seconds","round","reason","peer","key","digest","body_bytes","evidence"}]}
 *   verify-audit {"file","ok","entries_verified","evidence_checked","evidence_missing","error"}
 *   watch    watch.c
 *   metrics  {"metrics": TEXT}    version {"macc_ctl","daemon","protocol"}
 *   others   {"ok":true,"command":NAME}; errors {"ok":false,"command","exit_code","status",
 *             "status_name","error"} (plus the sentence on stderr)
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

void cli_request(struct cli *c, struct macc_ctl_request *r, enum macc_ctl_cmd cmd)
{
	memset(r, 0, sizeof(*r));
	r->v = MACC_CTL_PROTO_VERSION;
	r->id = c->next_id++;
	r->cmd = cmd;
}

/* Call and check the status: CLI_OK with *rep to print, or the exit code (reported). */
static int call(struct cli *c, enum macc_ctl_cmd cmd, struct macc_ctl_request *req,
		struct macc_ctl_reply *rep)
{
	int r = cli_call(c, req, rep, CALL_TIMEOUT_MS);

	if (r != CLI_OK) {
		return r;
	}
	if (rep->status != MACC_CTL_OK) {
		r = cli_daemon_error(c, macc_ctl_commands[cmd].name, rep);
		macc_ctl_reply_finish(rep);
		return r;
	}
	return CLI_OK;
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
	json_str(&j, "arch", s->arch);
	json_str(&j, "blas", s->blas);
	json_u64(&j, "round", s->round);
	json_u64(&j, "rounds_planned", s->rounds_planned);
	json_num(&j, "epoch", s->epoch);
	json_num(&j, "epochs_planned", s->epochs_planned);
	json_num(&j, "train_loss", s->train_loss);
	json_num(&j, "test_loss", s->test_loss);
	json_num(&j, "test_accuracy_ratio", s->test_accuracy_ratio);
	json_num(&j, "samples_per_second", s->samples_per_second);
	json_num(&j, "round_seconds", s->round_seconds);
	json_num(&j, "consensus_distance", s->consensus_distance);
	json_u64(&j, "peers_up", s->peers_up);
	json_u64(&j, "peers_configured", s->peers_configured);
	json_u64(&j, "uptime_seconds", s->uptime_seconds);
	json_num(&j, "process_start_time_seconds", s->process_start_time_seconds);
	json_u64(&j, "state_bytes_sent_total", s->state_bytes_sent_total);
	json_u64(&j, "state_bytes_received_total", s->state_bytes_received_total);
	json_str(&j, "digest", s->digest);
	json_str(&j, "last_error", s->last_error);
	json_bool(&j, "degraded", s->degraded);
	json_u64(&j, "rollbacks_total", s->rollbacks_total);
	json_num(&j, "max_rate_bytes_per_second", s->max_rate_bytes_per_second);
	json_num(&j, "send_rate_bytes_per_second", s->send_rate_bytes_per_second);
	json_obj(&j, "connections_rejected_total");
	for (unsigned i = 0; i < MACC_CTL_CONNREJ_COUNT; i++) {
		json_u64(&j, macc_ctl_connrej_name((enum macc_ctl_connrej)i),
			 s->connections_rejected_total[i]);
	}
	json_end_obj(&j);
	json_str(&j, "standardize", s->standardize);
	json_str(&j, "standardize_digest", s->standardize_digest);
	json_u64(&j, "standardize_refused_total", s->standardize_refused_total);
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

		if (s->connections_rejected_total[i] == 0) {
			continue;
		}
		w = snprintf(buf + off, n - off, "%s%s=%llu", off ? " " : "",
			     macc_ctl_connrej_name((enum macc_ctl_connrej)i),
			     (unsigned long long)s->connections_rejected_total[i]);
		off += w > 0 ? (size_t)w : 0;
	}
	return buf[0] != '\0' ? buf : "-";
}

static void status_human(const struct macc_ctl_status *s)
{
	char a[64], b[64], n1[128], n2[128], n3[160], rej[400];

	printf("agent:       %s (%s, %s)\n", s->name[0] ? cli_safe(n1, sizeof(n1), s->name) : "-",
	       s->algorithm[0] ? cli_safe(n2, sizeof(n2), s->algorithm) : "-",
	       s->model[0] ? cli_safe(n3, sizeof(n3), s->model) : "-");
	if (s->degraded) {
		printf("state:       %s, degraded (rolled back %llu time%s: see last error)\n",
		       macc_ctl_state_name(s->state), (unsigned long long)s->rollbacks_total,
		       s->rollbacks_total == 1 ? "" : "s");
	} else {
		printf("state:       %s\n", macc_ctl_state_name(s->state));
	}
	if (s->arch[0] != '\0' || s->blas[0] != '\0') {
		printf("platform:    %s, BLAS kernel %s\n",
		       s->arch[0] ? cli_safe(n1, sizeof(n1), s->arch) : "-",
		       s->blas[0] ? cli_safe(n2, sizeof(n2), s->blas) : "-");
	}
	if (s->rounds_planned > 0) {
		printf("round:       %llu / %llu\n", (unsigned long long)s->round,
		       (unsigned long long)s->rounds_planned);
	} else {
		printf("round:       %llu\n", (unsigned long long)s->round);
	}
	if (s->epochs_planned > 0) {
		printf("epoch:       %s / %g\n", cli_fmt_num(a, sizeof(a), "%.2f", s->epoch),
		       s->epochs_planned);
	} else {
		printf("epoch:       %s\n", cli_fmt_num(a, sizeof(a), "%.2f", s->epoch));
	}
	printf("train loss:  %s\n", cli_fmt_num(a, sizeof(a), "%.4f", s->train_loss));
	printf("test:        accuracy %s, loss %s\n",
	       cli_fmt_pct(a, sizeof(a), s->test_accuracy_ratio),
	       cli_fmt_num(b, sizeof(b), "%.4f", s->test_loss));
	printf("throughput:  %s samples/s\n",
	       cli_fmt_num(a, sizeof(a), "%.0f", s->samples_per_second));
	printf("round time:  %s\n", cli_fmt_dur(a, sizeof(a), s->round_seconds));
	printf("consensus:   %s (mean squared distance to neighbours)\n",
	       cli_fmt_num(a, sizeof(a), "%.3g", s->consensus_distance));
	if (s->standardize[0] != '\0') {
		printf("standardize: %s", cli_safe(n1, sizeof(n1), s->standardize));
		if (s->standardize_digest[0] != '\0') {
			printf(", transform digest %s", cli_safe(n2, sizeof(n2), s->standardize_digest));
		}
		if (s->standardize_refused_total > 0) {
			printf(", %llu refused", (unsigned long long)s->standardize_refused_total);
		}
		printf("\n");
	}
	printf("peers:       %u / %u up\n", s->peers_up, s->peers_configured);
	printf("refused:     %s (connections, before identification)\n",
	       connrej_line(s, rej, sizeof(rej)));
	printf("uptime:      %s\n", cli_fmt_dur(a, sizeof(a), (double)s->uptime_seconds));
	printf("state bytes: %s sent, %s received\n",
	       cli_fmt_bytes(a, sizeof(a), s->state_bytes_sent_total),
	       cli_fmt_bytes(b, sizeof(b), s->state_bytes_received_total));
	if (s->digest[0] != '\0') {
		printf("digest:      %s\n", cli_safe(n1, sizeof(n1), s->digest));
	}
	if (s->last_error[0] != '\0') {
		char e[300];

		printf("last error:  %s\n", cli_safe(e, sizeof(e), s->last_error));
	}
}

int cmd_status(struct cli *c)
{
	struct macc_ctl_request req;
	struct macc_ctl_reply rep;
	int r;

	cli_request(c, &req, MACC_CTL_CMD_STATUS);
	r = call(c, MACC_CTL_CMD_STATUS, &req, &rep);
	if (r != CLI_OK) {
		return r;
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
		json_num(&j, "rtt_seconds", p->rtt_seconds);
		json_num(&j, "weight", p->weight);
		json_u64(&j, "bytes_received_total", p->bytes_received_total);
		json_u64(&j, "bytes_sent_total", p->bytes_sent_total);
		json_obj(&j, "messages_rejected_total");
		for (size_t k = 0; k < p->nrejected; k++) {
			json_u64(&j, p->rejected[k].reason, p->rejected[k].count);
		}
		json_end_obj(&j);
		json_bool(&j, "sealed", p->sealed);
		json_str(&j, "arch", p->arch);
		json_str(&j, "blas", p->blas);
		json_obj(&j, "states_excluded_total");
		json_u64(&j, "nonfinite", p->states_excluded_nonfinite_total);
		json_u64(&j, "distance", p->states_excluded_distance_total);
		json_u64(&j, "quarantined", p->states_excluded_quarantined_total);
		json_end_obj(&j);
		json_u64(&j, "states_clipped_total", p->states_clipped_total);
		json_bool(&j, "quarantine_active", p->quarantine_active);
		json_u64(&j, "quarantine_until", p->quarantine_until);
		json_u64(&j, "quarantines_total", p->quarantines_total);
		json_num(&j, "max_rate_bytes_per_second", p->max_rate_bytes_per_second);
		json_num(&j, "send_rate_bytes_per_second", p->send_rate_bytes_per_second);
		json_end_obj(&j);
	}
	json_end_arr(&j);
	json_end_obj(&j);
	json_done(&j);
}

enum {
	PC_NAME, PC_ENDPOINT, PC_KEY, PC_SESSION, PC_SEALED, PC_PLATFORM, PC_ROUND, PC_RTT,
	PC_RECEIVED, PC_SENT, PC_RATE, PC_EXCLUDED, PC_QUARANTINE, PC_REJECTED, PC_COUNT
};

/* Columns, and the order in which a narrow terminal drops them (lowest rank first). */
static const struct cli_column peer_cols[PC_COUNT] = {
	[PC_NAME] = { "NAME", false, 0 },
	[PC_ENDPOINT] = { "ENDPOINT", false, 5 },
	[PC_KEY] = { "KEY", false, 1 },
	[PC_SESSION] = { "SESSION", false, 0 },
	[PC_SEALED] = { "SEALED", false, 4 },
	[PC_PLATFORM] = { "PLATFORM", false, 1 },
	[PC_ROUND] = { "LAST ROUND", true, 0 },
	[PC_RTT] = { "RTT", true, 0 },
	[PC_RECEIVED] = { "RECEIVED", true, 7 },
	[PC_SENT] = { "SENT", true, 6 },
	[PC_RATE] = { "RATE", true, 5 },
	[PC_EXCLUDED] = { "EXCLUDED", false, 2 },
	[PC_QUARANTINE] = { "QUARANTINE", false, 3 },
	[PC_REJECTED] = { "REJECTED", false, 8 },
};

/* Bytes per second in decimal units, as max_rate is written ("1.95 MB/s"). */
static const char *fmt_rate(char *buf, size_t n, double v)
{
	if (isnan(v)) {
		snprintf(buf, n, "-");
	} else if (v >= 1e9) {
		snprintf(buf, n, "%.2f GB/s", v / 1e9);
	} else if (v >= 1e6) {
		snprintf(buf, n, "%.2f MB/s", v / 1e6);
	} else if (v >= 1e3) {
		snprintf(buf, n, "%.1f kB/s", v / 1e3);
	} else {
		snprintf(buf, n, "%.0f B/s", v);
	}
	return buf;
}

/* The send rate, and the cap when there is one: "1.95 MB/s of 2.00 MB/s". */
static const char *rate_cell(char *buf, size_t n, const struct macc_ctl_peer *p)
{
	char r[32], m[32];

	fmt_rate(r, sizeof(r), p->send_rate_bytes_per_second);
	if (isnan(p->max_rate_bytes_per_second)) {
		snprintf(buf, n, "%s", r);
	} else {
		snprintf(buf, n, "%s of %s", r, fmt_rate(m, sizeof(m), p->max_rate_bytes_per_second));
	}
	return buf;
}

static void peer_row(struct cli_table *t, size_t row, const struct macc_ctl_peer *p)
{
	char b[160], s[160];
	size_t off = 0;

	cli_table_set(t, row, PC_NAME, cli_safe(s, sizeof(s), p->name));
	cli_table_set(t, row, PC_ENDPOINT, cli_safe(s, sizeof(s), p->endpoint));
	snprintf(b, sizeof(b), "%.8s%s", p->key, strlen(p->key) > 8 ? "..." : "");
	cli_table_set(t, row, PC_KEY, cli_safe(s, sizeof(s), b));
	cli_table_set(t, row, PC_SESSION, macc_ctl_session_name(p->session));
	cli_table_set(t, row, PC_SEALED,
		      p->session == MACC_CTL_SESSION_UP ? (p->sealed ? "yes" : "no") : "-");
	/* architecture/BLAS kernel from the peer's HELLO ("-" from an older daemon) */
	if (p->arch[0] != '\0' || p->blas[0] != '\0') {
		snprintf(b, sizeof(b), "%s/%s", p->arch[0] ? p->arch : "-", p->blas[0] ? p->blas : "-");
	} else {
		snprintf(b, sizeof(b), "-");
	}
	cli_table_set(t, row, PC_PLATFORM, cli_safe(s, sizeof(s), b));
	snprintf(b, sizeof(b), "%lld", (long long)p->last_round);
	cli_table_set(t, row, PC_ROUND, p->last_round >= 0 ? b : "-");
	cli_table_set(t, row, PC_RTT, cli_fmt_dur(b, sizeof(b), p->rtt_seconds));
	cli_table_set(t, row, PC_RECEIVED, cli_fmt_bytes(b, sizeof(b), p->bytes_received_total));
	cli_table_set(t, row, PC_SENT, cli_fmt_bytes(b, sizeof(b), p->bytes_sent_total));
	cli_table_set(t, row, PC_RATE, rate_cell(b, sizeof(b), p));
	if (p->states_excluded_nonfinite_total + p->states_excluded_distance_total +
		    p->states_excluded_quarantined_total > 0) {
		snprintf(b, sizeof(b), "nonfinite=%llu distance=%llu quarantined=%llu",
			 (unsigned long long)p->states_excluded_nonfinite_total,
			 (unsigned long long)p->states_excluded_distance_total,
			 (unsigned long long)p->states_excluded_quarantined_total);
	} else {
		snprintf(b, sizeof(b), "-");
	}
	cli_table_set(t, row, PC_EXCLUDED, b);
	if (p->quarantine_active) {
		snprintf(b, sizeof(b), "until %llu", (unsigned long long)p->quarantine_until);
	} else if (p->quarantines_total > 0) {
		snprintf(b, sizeof(b), "no (%llu past)", (unsigned long long)p->quarantines_total);
	} else {
		snprintf(b, sizeof(b), "no");
	}
	cli_table_set(t, row, PC_QUARANTINE, b);
	/* Only the reasons that happened (the JSON lists every known one, at 0). */
	b[0] = '\0';
	for (size_t k = 0; k < p->nrejected && off < sizeof(b) - 1; k++) {
		int w;

		if (p->rejected[k].count == 0) {
			continue;
		}
		w = snprintf(b + off, sizeof(b) - off, "%s%s=%llu", off ? " " : "",
			     cli_safe(s, sizeof(s), p->rejected[k].reason),
			     (unsigned long long)p->rejected[k].count);
		off += w > 0 ? (size_t)w : 0;
	}
	cli_table_set(t, row, PC_REJECTED, b[0] ? b : "-");
}

static int peers_human(const struct cli *c, const struct macc_ctl_reply *rep)
{
	struct cli_table t;

	if (rep->npeers == 0) {
		printf("no peers configured\n");
		return CLI_OK;
	}
	if (cli_table_init(&t, peer_cols, PC_COUNT, rep->npeers) < 0) {
		return CLI_EDAEMON;
	}
	for (size_t i = 0; i < rep->npeers; i++) {
		peer_row(&t, i, &rep->peers[i]);
	}
	cli_table_print(&t, c->tty ? cli_term_width() : 0);
	cli_table_finish(&t);
	return CLI_OK;
}

int cmd_peers(struct cli *c)
{
	struct macc_ctl_request req;
	struct macc_ctl_reply rep;
	int r;

	cli_request(c, &req, MACC_CTL_CMD_PEERS);
	r = call(c, MACC_CTL_CMD_PEERS, &req, &rep);
	if (r != CLI_OK) {
		return r;
	}
	if (c->json) {
		peers_json(&rep);
	} else if (peers_human(c, &rep) != CLI_OK) {
		cli_err(c, "out of memory.");
		r = CLI_EDAEMON;
	}
	macc_ctl_reply_finish(&rep);
	return r;
}

/* --- audit -------------------------------------------------------------------------------- */

static void audit_json(const struct macc_ctl_audit *au)
{
	struct json j;

	json_init(&j, stdout);
	json_obj(&j, NULL);
	json_bool(&j, "enabled", au->enabled);
	json_str(&j, "file", au->file);
	json_u64(&j, "entries_kept", au->entries_kept);
	json_u64(&j, "entries_total", au->entries_total);
	json_u64(&j, "errors_total", au->errors_total);
	json_arr(&j, "entries");
	for (size_t i = 0; i < au->nentries; i++) {
		const struct macc_ctl_audit_entry *e = &au->entries[i];

		json_obj(&j, NULL);
		json_u64(&j, "seq", e->seq);
		json_num(&j, "time_seconds", e->time_seconds);
		json_u64(&j, "round", e->round);
		json_str(&j, "reason", e->reason);
		json_str(&j, "peer", e->peer);
		json_str(&j, "key", e->key);
		json_str(&j, "digest", e->digest);
		json_u64(&j, "body_bytes", e->body_bytes);
		json_str(&j, "evidence", e->evidence);
		json_end_obj(&j);
	}
	json_end_arr(&j);
	json_end_obj(&j);
	json_done(&j);
}

static const struct cli_column audit_cols[] = {
	{ "SEQ", true, 0 },   { "TIME (UTC)", false, 0 }, { "ROUND", true, 0 },
	{ "REASON", false, 0 }, { "PEER", false, 0 },     { "KEY", false, 1 },
	{ "BODY", true, 2 },  { "EVIDENCE", false, 3 },
};

static void audit_row(struct cli_table *t, size_t row, const struct macc_ctl_audit_entry *e)
{
	time_t secs = (time_t)e->time_seconds;
	struct tm tm;
	char b[160], s[160];

	snprintf(b, sizeof(b), "%llu", (unsigned long long)e->seq);
	cli_table_set(t, row, 0, b);
	if (gmtime_r(&secs, &tm) == NULL || strftime(b, sizeof(b), "%Y-%m-%d %H:%M:%S", &tm) == 0) {
		snprintf(b, sizeof(b), "?");
	}
	cli_table_set(t, row, 1, b);
	snprintf(b, sizeof(b), "%llu", (unsigned long long)e->round);
	cli_table_set(t, row, 2, b);
	cli_table_set(t, row, 3, cli_safe(s, sizeof(s), e->reason));
	cli_table_set(t, row, 4, cli_safe(s, sizeof(s), e->peer));
	snprintf(b, sizeof(b), "%.8s...", e->key);
	cli_table_set(t, row, 5, cli_safe(s, sizeof(s), b));
	cli_table_set(t, row, 6, cli_fmt_bytes(b, sizeof(b), e->body_bytes));
	cli_table_set(t, row, 7, e->evidence[0] ? cli_safe(s, sizeof(s), e->evidence) : "-");
}

static int audit_human(const struct cli *c, const struct macc_ctl_audit *au)
{
	struct cli_table t;
	char f[1100];

	printf("audit trail: %s, %s\n", au->enabled ? "on" : "off",
	       cli_safe(f, sizeof(f), au->file));
	printf("entries: %llu in the kept files, %llu written by this daemon, %llu write errors\n",
	       (unsigned long long)au->entries_kept, (unsigned long long)au->entries_total,
	       (unsigned long long)au->errors_total);
	if (au->nentries == 0) {
		return CLI_OK;
	}
	if (cli_table_init(&t, audit_cols, (int)(sizeof(audit_cols) / sizeof(audit_cols[0])),
			   au->nentries) < 0) {
		return CLI_EDAEMON;
	}
	for (size_t i = 0; i < au->nentries; i++) {
		audit_row(&t, i, &au->entries[i]);
	}
	cli_table_print(&t, c->tty ? cli_term_width() : 0);
	cli_table_finish(&t);
	return CLI_OK;
}

int cmd_audit(struct cli *c)
{
	struct macc_ctl_request req;
	struct macc_ctl_reply rep;
	int r;

	cli_request(c, &req, MACC_CTL_CMD_AUDIT);
	if (c->argc == 1) {
		char *end = NULL;
		unsigned long l = strtoul(c->argv[0], &end, 10);

		if (end == c->argv[0] || *end != '\0' || l < 1 || l > MACC_CTL_AUDIT_MAX) {
			cli_err(c, "audit: COUNT must be a number from 1 to %d, not '%s'.",
				MACC_CTL_AUDIT_MAX, c->argv[0]);
			return CLI_EUSAGE;
		}
		req.limit = (uint32_t)l;
	}
	r = call(c, MACC_CTL_CMD_AUDIT, &req, &rep);
	if (r != CLI_OK) {
		return r;
	}
	if (c->json) {
		audit_json(&rep.audit);
	} else if (audit_human(c, &rep.audit) != CLI_OK) {
		cli_err(c, "out of memory.");
		r = CLI_EDAEMON;
	}
	macc_ctl_reply_finish(&rep);
	return r;
}

static void verify_json(struct cli *c, const char *path, int rc, const struct macc_audit_verify *v,
			const char *error)
{
	struct json j;

	json_init(&j, stdout);
	json_obj(&j, NULL);
	json_str(&j, "file", path);
	json_bool(&j, "ok", rc == 0);
	json_u64(&j, "entries_verified", v->entries);
	json_u64(&j, "evidence_checked", v->evidence_checked);
	json_u64(&j, "evidence_missing", v->evidence_missing);
	if (rc < 0) {
		json_str(&j, "error", error);
	} else {
		json_null(&j, "error");
	}
	json_end_obj(&j);
	json_done(&j);
	c->error_printed = true; /* this document says ok: false itself */
}

/* Offline: no daemon. The evidence directory is the log's sibling audit-evidence/. Exit 0 when
 * every entry verifies, 1 naming the first bad entry otherwise (2: usage). */
int cmd_verify_audit(struct cli *c)
{
	const char *path = c->argv[0];
	const char *slash = strrchr(path, '/');
	char evdir[4200], msg[1200];
	struct macc_audit_verify v;
	struct macc_errmsg err;
	struct stat sb;
	int rc;

	memset(&v, 0, sizeof(v));
	if (macc_crypto_init() < 0) {
		cli_err(c, "cannot initialise libsodium.");
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
	/* The verifier's messages usually start with the file already: name it once. */
	if (strncmp(err.text, path, strlen(path)) == 0) {
		snprintf(msg, sizeof(msg), "%s", err.text);
	} else {
		snprintf(msg, sizeof(msg), "%s: %s", path, err.text);
	}
	if (c->json) {
		verify_json(c, path, rc, &v, msg);
	}
	if (rc < 0) {
		cli_err(c, "%s", msg);
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
	int r;

	cli_request(c, &req, cmd);
	req.level = level;
	r = call(c, cmd, &req, &rep);
	if (r != CLI_OK) {
		return r;
	}
	if (c->json) {
		struct json j;

		json_init(&j, stdout);
		json_obj(&j, NULL);
		json_bool(&j, "ok", true);
		json_str(&j, "command", macc_ctl_commands[cmd].name);
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
		cli_err(c, "log level '%s' is not one of error, warn, info, debug.", c->argv[0]);
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

	cli_request(c, &req, MACC_CTL_CMD_METRICS);
	r = call(c, MACC_CTL_CMD_METRICS, &req, &rep);
	if (r != CLI_OK) {
		return r;
	}
	if (rep.text == NULL) {
		macc_ctl_reply_finish(&rep);
		cli_err(c, "the daemon's metrics reply has no text.");
		return CLI_ECONNECT;
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
	char v[64];
	int r;

	cli_request(c, &req, MACC_CTL_CMD_VERSION);
	r = call(c, MACC_CTL_CMD_VERSION, &req, &rep);
	if (r == CLI_OK && rep.text == NULL) {
		macc_ctl_reply_finish(&rep);
		cli_err(c, "the daemon's version reply has no text.");
		return CLI_ECONNECT;
	}
	if (r != CLI_OK) {
		if (!c->json) {
			/* our own version is known even when the daemon's is not */
			printf("macc-ctl %s (control protocol %d)\n", MACC_VERSION,
			       MACC_CTL_PROTO_VERSION);
		}
		return r;
	}
	if (c->json) {
		struct json j;

		json_init(&j, stdout);
		json_obj(&j, NULL);
		json_str(&j, "macc_ctl", MACC_VERSION);
		json_str(&j, "daemon", rep.text);
		json_i64(&j, "protocol", MACC_CTL_PROTO_VERSION);
		json_end_obj(&j);
		json_done(&j);
	} else {
		printf("macc-ctl %s (control protocol %d)\nmacc-agentd %s\n", MACC_VERSION,
		       MACC_CTL_PROTO_VERSION, cli_safe(v, sizeof(v), rep.text));
	}
	macc_ctl_reply_finish(&rep);
	return CLI_OK;
}

/* --- keys --------------------------------------------------------------------------------- */

int cmd_genkey(struct cli *c)
{
	char key[MACC_KEY_B64_SIZE];

	if (macc_key_generate_b64(key) < 0) {
		cli_err(c, "cannot generate a key (libsodium failed to initialise).");
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
		cli_err(c, "stdin does not hold a base64 secret key.");
		return CLI_EUSAGE;
	}
	r = macc_key_pubkey_from_secret_b64(in, pub, &err);
	macc_memzero(in, sizeof(in));
	if (r < 0) {
		cli_err(c, "stdin does not hold a base64 secret key of 32 bytes.");
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
