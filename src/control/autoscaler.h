/* autoscaler.h -- how many instances a function should have: a pure decision
 * from load samples, so it can be tested without processes. */
#ifndef FL_AUTOSCALER_H
#define FL_AUTOSCALER_H

#include <stddef.h>
#include <stdint.h>

#define FL_AS_STABLE_SAMPLES 60 /* 6 s of 100 ms ticks */
#define FL_AS_PANIC_SAMPLES  10 /* 1 s */

/* What the autoscaler remembers about one function between ticks. */
struct fl_as_state {
	double samples[FL_AS_STABLE_SAMPLES]; /* load (in flight + held) per tick */
	int next, count;
	uint32_t desired;	 /* the decision in force */
	uint64_t hold_since_ms;	 /* when demand last reached `desired` */
	uint64_t last_active_ms; /* last tick that saw any load or a finished request */
	uint64_t panic_until_ms;
	uint64_t last_requests; /* finished-request counter at the previous tick */
};

struct fl_as_input {
	uint32_t min, max, target, concurrency;
	uint64_t idle_timeout_ms;
	double load;	     /* in flight + held, now */
	uint64_t requests;   /* finished-request counter (to see activity between ticks) */
	uint32_t ready;	     /* instances ready (not draining) */
	uint32_t overloaded; /* of those, how many said they are overloaded just now */
	uint64_t now_ms;
};

/* Records one tick and returns the number of instances wanted (within
 * min..max), writing a short reason into why when the number changes. */
uint32_t fl_autoscale(struct fl_as_state *st, const struct fl_as_input *in, char *why,
		      size_t whylen);

#endif
