/*
 * watch.c - `macc-ctl watch`: follow a run until it ends.
 *
 * The daemon streams progress events on one request id; the last one has final = true and says
 * how the run ended: `done` (exit 0), stopped by `macc-ctl stop`, so `idle` (exit 0), or `error`
 * (exit 1). A stream that ends any other way means the run did NOT end: the connection broke
 * (the daemon crashed or was killed) or the daemon shut down in the middle of the run (SIGTERM,
 * a restart). That is exit 3, "cannot talk to the daemon", with --json a last line holding the
 * error document, so a script never mistakes a crash or a restart for a finished run. (A daemon
 * of this version closes the stream without a final event when it shuts down mid-run; an older
 * one sent a final event in state training or paused, which is read the same way.)
 *
 * Output: with --json one event object per line: state, round, rounds_planned, epoch,
 * epochs_planned, train_loss, test_accuracy_ratio, samples_per_second, round_seconds,
 * eta_seconds, final. Piped, one plain line per event. On a terminal, one line redrawn in place
 * that fits the terminal's width (it drops the epoch, then accuracy, then loss, then shrinks and
 * drops the bar rather than wrap), says "paused" and shows no ETA while the run is paused; on
 * Ctrl-C (or SIGTERM) the line is ended before the process dies, so the shell prompt does not
 * land on the bar.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "macc/ctl.h"

#include "cli.h"

#define CALL_TIMEOUT_MS 15000
#define BAR_WIDTH 30
#define BAR_MIN 10

/* Whether the bar's line is open on the terminal. The only file-scope state of macc-ctl: a
 * signal handler has no other way to learn it. */
static volatile sig_atomic_t bar_open;

static void on_signal(int sig)
{
	if (bar_open) {
		ssize_t w = write(STDOUT_FILENO, "\n", 1);

		(void)w;
	}
	signal(sig, SIG_DFL);
	raise(sig); /* delivered when the handler returns: die of it, as without the handler */
}

static void catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct watch_state {
	bool have_first;
	double t0;
	uint64_t round0;
	uint64_t last_round;
	bool any;
};

/* Fraction done in [0, 1], or -1 when the run length is unknown. */
static double fraction(const struct macc_ctl_progress *p)
{
	if (p->rounds_planned > 0) {
		return p->round >= p->rounds_planned ? 1.0
						    : (double)p->round / (double)p->rounds_planned;
	}
	if (p->epochs_planned > 0 && isfinite(p->epoch)) {
		return p->epoch >= p->epochs_planned ? 1.0 : p->epoch / p->epochs_planned;
	}
	return -1;
}

/* The daemon's estimate, else one from the rounds seen here; NaN unless training. */
static double eta(struct watch_state *w, const struct macc_ctl_progress *p)
{
	double t = now_s();

	if (p->state != MACC_CTL_STATE_TRAINING) {
		w->have_first = false; /* the rate restarts after a pause */
		return p->final && p->state == MACC_CTL_STATE_DONE ? 0.0 : NAN;
	}
	if (isfinite(p->eta_seconds)) {
		return p->eta_seconds;
	}
	if (p->rounds_planned > 0 && p->round >= p->rounds_planned) {
		return 0.0; /* the last round is done; the final event follows */
	}
	if (!w->have_first) {
		w->have_first = true;
		w->t0 = t;
		w->round0 = p->round;
		return NAN;
	}
	if (p->rounds_planned > p->round && p->round > w->round0 && t > w->t0) {
		double rate = (double)(p->round - w->round0) / (t - w->t0);

		return (double)(p->rounds_planned - p->round) / rate;
	}
	return NAN;
}

static void print_json(const struct macc_ctl_progress *p, double e)
{
	struct json j;

	json_init(&j, stdout);
	json_obj(&j, NULL);
	json_str(&j, "state", macc_ctl_state_name(p->state));
	json_u64(&j, "round", p->round);
	json_u64(&j, "rounds_planned", p->rounds_planned);
	json_num(&j, "epoch", p->epoch);
	json_num(&j, "epochs_planned", p->epochs_planned);
	json_num(&j, "train_loss", p->train_loss);
	json_num(&j, "test_accuracy_ratio", p->test_accuracy_ratio);
	json_num(&j, "samples_per_second", p->samples_per_second);
	json_num(&j, "round_seconds", p->round_seconds);
	json_num(&j, "eta_seconds", e);
	json_bool(&j, "final", p->final);
	json_end_obj(&j);
	json_done(&j);
}

/* The texts of one event, as the plain line and the bar show them. */
struct texts {
	char loss[32], acc[32], sps[32], eta[32], epoch[48], rounds[48], pct[16];
};

static void texts_of(struct texts *t, const struct macc_ctl_progress *p, double f, double e)
{
	cli_fmt_num(t->loss, sizeof(t->loss), "%.4f", p->train_loss);
	cli_fmt_pct(t->acc, sizeof(t->acc), p->test_accuracy_ratio);
	cli_fmt_num(t->sps, sizeof(t->sps), "%.0f", p->samples_per_second);
	if (p->final && p->state == MACC_CTL_STATE_DONE) {
		snprintf(t->eta, sizeof(t->eta), "0 s");
	} else {
		cli_fmt_dur(t->eta, sizeof(t->eta), e);
	}
	t->pct[0] = '\0';
	if (f >= 0) {
		snprintf(t->pct, sizeof(t->pct), "%.0f%%", f * 100);
	}
	if (p->epochs_planned > 0) {
		snprintf(t->epoch, sizeof(t->epoch), "%.2f/%.2f", p->epoch, p->epochs_planned);
	} else {
		cli_fmt_num(t->epoch, sizeof(t->epoch), "%.2f", p->epoch);
	}
	if (p->rounds_planned > 0) {
		snprintf(t->rounds, sizeof(t->rounds), "%llu/%llu", (unsigned long long)p->round,
			 (unsigned long long)p->rounds_planned);
	} else {
		snprintf(t->rounds, sizeof(t->rounds), "%llu", (unsigned long long)p->round);
	}
}

/*
 * The bar's line at a level of detail: 0 everything, 1 without the epoch, 2 also without the
 * accuracy, 3 also without the loss, 4 with a short bar, 5 without the bar.
 */
static void compose(char *line, size_t n, const struct macc_ctl_progress *p, const struct texts *t,
		    double f, int level)
{
	char bar[BAR_WIDTH + 3], state[24];
	int bw = level >= 5 ? 0 : level == 4 ? BAR_MIN : BAR_WIDTH;
	int filled = f >= 0 ? (int)(f * bw + 0.5) : 0;

	bar[0] = '\0';
	if (bw > 0) {
		bar[0] = '[';
		for (int i = 0; i < bw; i++) {
			bar[1 + i] = i < filled ? '#' : (f >= 0 ? '.' : ' ');
		}
		bar[1 + bw] = ']';
		bar[2 + bw] = '\0';
	}
	state[0] = '\0';
	if (p->state != MACC_CTL_STATE_TRAINING) {
		snprintf(state, sizeof(state), "%s  ", macc_ctl_state_name(p->state));
	}
	snprintf(line, n, "%s%s%s  %sround %s%s%s%s%s%s%s  ETA %s", bar, bw > 0 ? " " : "", t->pct,
		 state, t->rounds, level < 1 ? "  epoch " : "", level < 1 ? t->epoch : "",
		 level < 3 ? "  loss " : "", level < 3 ? t->loss : "", level < 2 ? "  acc " : "",
		 level < 2 ? t->acc : "", t->eta);
}

static void print_bar(const struct macc_ctl_progress *p, const struct texts *t, double f)
{
	char line[512];
	int width = cli_term_width() - 1; /* the last column would wrap on some terminals */

	for (int level = 0; level <= 5; level++) {
		compose(line, sizeof(line), p, t, f, level);
		if ((int)strlen(line) <= width) {
			break;
		}
	}
	if (width > 0 && (int)strlen(line) > width) {
		line[width] = '\0';
	}
	printf("\r\033[K%s", line);
	bar_open = 1;
	if (p->final) {
		printf("\n");
		bar_open = 0;
	}
	fflush(stdout);
}

static void watch_print(const struct cli *c, struct watch_state *w,
			const struct macc_ctl_progress *p)
{
	struct texts t;
	double f = fraction(p), e = eta(w, p);

	if (c->json) {
		print_json(p, e);
		return;
	}
	texts_of(&t, p, f, e);
	if (c->tty) {
		print_bar(p, &t, f);
	} else {
		printf("%s round %s epoch %s loss %s acc %s samples/s %s eta %s\n",
		       macc_ctl_state_name(p->state), t.rounds, t.epoch, t.loss, t.acc, t.sps, t.eta);
		fflush(stdout);
	}
}

static void end_line(void)
{
	if (bar_open) {
		printf("\n");
		fflush(stdout);
		bar_open = 0;
	}
}

/* A final event: how did the run end? */
static int ended(struct cli *c, const struct macc_ctl_progress *p)
{
	switch (p->state) {
	case MACC_CTL_STATE_DONE:
	case MACC_CTL_STATE_IDLE:
		return CLI_OK;
	case MACC_CTL_STATE_ERROR:
		cli_err(c, "the run ended with an error; see 'macc-ctl status'.");
		return CLI_EDAEMON;
	default:
		cli_err(c, "watch: the daemon stopped serving at round %llu, before the run ended "
			"(it is shutting down or restarting).", (unsigned long long)p->round);
		return CLI_ECONNECT;
	}
}

int cmd_watch(struct cli *c)
{
	struct macc_ctl_request req;
	struct macc_ctl_reply rep;
	struct watch_state w;
	int r;

	memset(&w, 0, sizeof(w));
	if (c->tty && !c->json) {
		catch_signals();
	}
	cli_request(c, &req, MACC_CTL_CMD_WATCH);
	r = cli_call(c, &req, &rep, CALL_TIMEOUT_MS);
	for (;;) {
		struct macc_ctl_progress p;

		if (r != CLI_OK) {
			end_line();
			if (w.any) {
				/* the cause was said; the JSON error document says what it means */
				c->errmsg[0] = '\0';
				cli_err(c, "watch: lost the daemon at round %llu, before the run "
					"ended.", (unsigned long long)w.last_round);
			}
			return r;
		}
		if (rep.status != MACC_CTL_OK) {
			end_line();
			r = cli_daemon_error(c, "watch", &rep);
			macc_ctl_reply_finish(&rep);
			return r;
		}
		p = rep.progress;
		macc_ctl_reply_finish(&rep);
		watch_print(c, &w, &p);
		w.any = true;
		w.last_round = p.round;
		if (p.final) {
			end_line();
			return ended(c, &p);
		}
		r = cli_next(c, MACC_CTL_CMD_WATCH, req.id, &rep);
	}
}
