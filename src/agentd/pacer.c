/*
 * pacer.c - token bucket (see pacer.h). A slice goes when the bucket is not in debt; taking it
 * may put the bucket into debt of at most one slice, which accrual repays before the next one.
 * Over any interval the bytes let through are at most burst + rate * interval + one slice.
 */
#include "pacer.h"

static void refill(struct macc_pacer *p, uint64_t now_ns)
{
	if (now_ns > p->last_ns) {
		p->tokens += (double)p->rate * (double)(now_ns - p->last_ns) / 1e9;
		if (p->tokens > p->burst) {
			p->tokens = p->burst;
		}
	}
	p->last_ns = now_ns;
}

void macc_pacer_init(struct macc_pacer *p, uint64_t now_ns)
{
	p->rate = 0;
	p->burst = 0.0;
	p->tokens = 0.0;
	p->last_ns = now_ns;
	p->sent = 0;
}

void macc_pacer_set_rate(struct macc_pacer *p, uint64_t rate, uint64_t now_ns)
{
	double burst = (double)rate * 0.05;

	refill(p, now_ns);
	if (burst < 2.0 * (double)MACC_PACER_SLICE) {
		burst = 2.0 * (double)MACC_PACER_SLICE;
	}
	if (p->rate == 0) {
		p->tokens = burst; /* from unlimited: start with a full bucket */
	}
	p->rate = rate;
	p->burst = burst;
	if (p->tokens > burst) {
		p->tokens = burst;
	}
}

uint64_t macc_pacer_wait_ns(struct macc_pacer *p, uint64_t now_ns)
{
	if (p->rate == 0) {
		return 0;
	}
	refill(p, now_ns);
	if (p->tokens >= 0.0) {
		return 0;
	}
	/* Round up so the bucket is out of debt when the timer fires. */
	return (uint64_t)(-p->tokens * 1e9 / (double)p->rate) + 1;
}

void macc_pacer_take(struct macc_pacer *p, size_t bytes, uint64_t now_ns)
{
	p->sent += bytes;
	if (p->rate == 0) {
		return;
	}
	refill(p, now_ns);
	p->tokens -= (double)bytes;
}
