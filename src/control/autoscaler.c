/* autoscaler.c -- how many instances a function should have.
 *
 * desired = ceil(load averaged over a 6 s stable window / target). A 1 s panic
 * window scales up at once when the load reaches twice what the ready
 * instances are meant to carry, and nothing scales down while panicking (for a
 * stable window after the last panic). Scaling down waits for idle_timeout of
 * lower demand; scaling to min (zero) waits for idle_timeout without any work.
 * A hard concurrency cap also sets a floor: held requests need room now. */
#include "control/autoscaler.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static double window_avg(const struct fl_as_state *st, int n)
{
	double sum = 0;
	int i, k = n < st->count ? n : st->count;

	for (i = 0; i < k; i++)
		sum +=
		    st->samples[(st->next - 1 - i + FL_AS_STABLE_SAMPLES) % FL_AS_STABLE_SAMPLES];
	return k ? sum / k : 0;
}

static uint32_t clamp(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

uint32_t fl_autoscale(struct fl_as_state *st, const struct fl_as_input *in, char *why,
		      size_t whylen)
{
	double target = in->target ? in->target : 100;
	double stable, panic;
	uint32_t want, before = st->desired;

	st->samples[st->next] = in->load;
	st->next = (st->next + 1) % FL_AS_STABLE_SAMPLES;
	if (st->count < FL_AS_STABLE_SAMPLES)
		st->count++;
	if (in->load > 0 || in->requests != st->last_requests || st->last_active_ms == 0)
		st->last_active_ms = in->now_ms;
	st->last_requests = in->requests;

	if (in->load == 0 && in->now_ms - st->last_active_ms >= in->idle_timeout_ms &&
	    in->now_ms >= st->panic_until_ms) {
		/* No work at all for idle_timeout: whatever the window remembers is
		 * history, so it must not keep an instance alive (or bring one back). */
		memset(st->samples, 0, sizeof(st->samples));
		st->count = 0;
		st->next = 0;
	}
	stable = window_avg(st, FL_AS_STABLE_SAMPLES);
	panic = window_avg(st, FL_AS_PANIC_SAMPLES);
	want = (uint32_t)ceil(stable / target - 1e-9);
	if (in->load > 0 && want == 0)
		want = 1; /* work is waiting: never zero */
	if (in->concurrency && in->load > 0) {
		uint32_t need = (uint32_t)ceil(in->load / in->concurrency - 1e-9);
		if (need > want)
			want = need;
	}
	if (panic >= 2.0 * target * (in->ready ? in->ready : 1) && panic > 0) {
		uint32_t p = (uint32_t)ceil(panic / target - 1e-9);
		st->panic_until_ms = in->now_ms + FL_AS_STABLE_SAMPLES * 100;
		if (p > want)
			want = p;
	}
	if (in->overloaded && in->ready + 1 > want) {
		/* An instance said it is full: one more now, and no scaling down
		 * for a stable window. */
		want = in->ready + 1;
		st->panic_until_ms = in->now_ms + FL_AS_STABLE_SAMPLES * 100;
	}
	want = clamp(want, in->min, in->max);
	/* A lowered max (flint scale --max) takes effect now, not after idle_timeout. */
	if (st->desired > in->max)
		st->desired = in->max;

	if (want >= st->desired) {
		st->desired = want;
		st->hold_since_ms = in->now_ms;
	} else if (in->now_ms < st->panic_until_ms) {
		/* never scale down while panicking */
	} else if (in->load == 0 && in->now_ms - st->last_active_ms >= in->idle_timeout_ms) {
		st->desired = clamp(0, in->min, in->max);
		st->hold_since_ms = in->now_ms;
	} else if (in->now_ms - st->hold_since_ms >= in->idle_timeout_ms) {
		st->desired = want > 0 ? want : 1; /* zero only after idle, above */
		st->desired = clamp(st->desired, in->min, in->max);
		st->hold_since_ms = in->now_ms;
	}
	if (st->desired != before && why)
		snprintf(why, whylen,
			 "scale %u -> %u: load %.1f (avg %.1f over 6s, target %.0f%s%s)", before,
			 st->desired, in->load, stable, target,
			 in->now_ms < st->panic_until_ms ? ", panic" : "",
			 in->overloaded ? ", overloaded" : "");
	return st->desired;
}
