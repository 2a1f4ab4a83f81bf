/* test_autoscaler.c -- unit tests for the scaling decision (src/control/autoscaler.c),
 * driven by simulated 100 ms ticks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "control/autoscaler.c"

#define TICK_MS 100
#define T0	1000000 /* a monotonic clock is never near zero */

/* One simulated function: the autoscaler's state and the input of the next tick. */
struct sim {
	struct fl_as_state st;
	struct fl_as_input in;
	char why[160];
	int changes; /* ticks on which why was written */
};

static void sim_init(struct sim *s, uint32_t min, uint32_t max, uint32_t target,
		     uint64_t idle_timeout_ms)
{
	memset(s, 0, sizeof(*s));
	s->in.min = min;
	s->in.max = max;
	s->in.target = target;
	s->in.idle_timeout_ms = idle_timeout_ms;
	s->in.now_ms = T0;
}

/* Runs one tick with the given load and ready instances; checks that why is
 * written exactly when the decision changes. */
static uint32_t tick(struct sim *s, double load, uint32_t ready)
{
	uint32_t before = s->st.desired, got;

	s->in.load = load;
	s->in.ready = ready;
	s->why[0] = '\0';
	got = fl_autoscale(&s->st, &s->in, s->why, sizeof(s->why));
	assert_int_equal(got, s->st.desired);
	if (got != before) {
		if (s->why[0] == '\0')
			fail_msg("at +%llu ms: %u -> %u without a reason",
				 (unsigned long long)(s->in.now_ms - T0), before, got);
		s->changes++;
	} else if (s->why[0] != '\0') {
		fail_msg("at +%llu ms: reason \"%s\" but no change from %u",
			 (unsigned long long)(s->in.now_ms - T0), s->why, got);
	}
	s->in.now_ms += TICK_MS;
	return got;
}

/* Runs n ticks of constant load where the ready instances follow the decision
 * at once (ready = the previous decision); returns the last decision. */
static uint32_t run(struct sim *s, int n, double load)
{
	uint32_t d = s->st.desired;
	int i;

	for (i = 0; i < n; i++)
		d = tick(s, load, s->st.desired);
	return d;
}

static void test_cold_start(void **state)
{
	struct sim s;

	sim_init(&s, 0, 10, 100, 30000);
	/* Idle and never used: stays at zero, says nothing. */
	assert_int_equal(run(&s, 20, 0), 0);
	assert_int_equal(s.changes, 0);
	/* One held request, nothing ready: one instance at once. */
	assert_int_equal(tick(&s, 1, 0), 1);
	assert_non_null(strstr(s.why, "scale 0 -> 1"));
	/* A fraction of a request's worth of load (average) is still one instance. */
	assert_int_equal(run(&s, 100, 1), 1);
	assert_int_equal(s.changes, 1);
}

static void test_steady_load(void **state)
{
	struct sim s;
	int i;

	/* 250 in flight against a target of 100: three instances, from the first
	 * tick (the window averages what it has seen so far), and no wobble. */
	sim_init(&s, 0, 10, 100, 30000);
	assert_int_equal(tick(&s, 250, 0), 3);
	for (i = 0; i < 3 * FL_AS_STABLE_SAMPLES; i++)
		assert_int_equal(tick(&s, 250, 3), 3);
	assert_int_equal(s.changes, 1);

	/* A window full of idle samples fills up with load 250 gradually: the
	 * stable average decides (three ready instances keep panic out of it). */
	sim_init(&s, 1, 10, 100, 30000);
	assert_int_equal(run(&s, FL_AS_STABLE_SAMPLES, 0), 1);
	for (i = 1; i <= FL_AS_STABLE_SAMPLES; i++) {
		/* average after i ticks: 250 * i / 60, so 2 from i = 25 and 3 from i = 49 */
		uint32_t want = i < 25 ? 1 : i < 49 ? 2 : 3;
		uint32_t got = tick(&s, 250, 3);
		if (got != want)
			fail_msg("after %d ticks at load 250: %u instances, want %u", i, got, want);
	}
	assert_int_equal(run(&s, 100, 250), 3);
	assert_int_equal(s.changes, 3); /* 0 -> 1 (min), 1 -> 2, 2 -> 3 */
	/* Exactly on the target is enough: 300 needs 3, not 4. */
	assert_int_equal(run(&s, 2 * FL_AS_STABLE_SAMPLES, 300), 3);
}

static void test_target_default(void **state)
{
	struct sim s;

	/* target 0 means the default of 100. */
	sim_init(&s, 0, 10, 0, 30000);
	assert_int_equal(tick(&s, 150, 0), 2);
	assert_non_null(strstr(s.why, "target 100"));
}

static void test_concurrency_floor(void **state)
{
	struct sim s;

	/* A hard cap of 4 per instance with 64 requests waiting needs 16 now,
	 * whatever the average says. */
	sim_init(&s, 0, 100, 100, 30000);
	s.in.concurrency = 4;
	assert_int_equal(run(&s, 10, 1), 1);
	assert_int_equal(tick(&s, 64, 1), 16);
	assert_non_null(strstr(s.why, "1 -> 16"));
	assert_int_equal(tick(&s, 65, 16), 17);
	/* The floor is still clamped by max, and a lowered max applies at once. */
	s.in.max = 10;
	assert_int_equal(tick(&s, 65, 17), 10);
	assert_non_null(strstr(s.why, "17 -> 10"));
	assert_int_equal(run(&s, 10, 65), 10);
}

static void test_max_clamp(void **state)
{
	struct sim s;

	sim_init(&s, 0, 5, 100, 30000);
	assert_int_equal(tick(&s, 10000, 0), 5);
	assert_int_equal(run(&s, 200, 10000), 5);
	assert_int_equal(s.changes, 1);
	s.in.concurrency = 1;
	assert_int_equal(run(&s, 10, 10000), 5);
}

static void test_min_floor(void **state)
{
	struct sim s;

	/* No load at all: min instances, and the first tick says so. */
	sim_init(&s, 2, 10, 100, 1000);
	assert_int_equal(tick(&s, 0, 0), 2);
	assert_non_null(strstr(s.why, "0 -> 2"));
	assert_int_equal(run(&s, 600, 0), 2);
	assert_int_equal(s.changes, 1);
	/* Load comes and goes: back to min, never below it. */
	assert_int_equal(run(&s, 100, 500), 5);
	assert_int_equal(run(&s, 600, 0), 2);
}

static void test_panic(void **state)
{
	struct sim s;
	uint64_t last_panic_ms, t;
	int i;

	sim_init(&s, 0, 20, 100, 1000);
	/* Steady 150 on 2 instances. */
	assert_int_equal(run(&s, FL_AS_STABLE_SAMPLES, 150), 2);

	/* A burst to 1000 while 2 are ready. The panic window (1 s) reaches twice
	 * their capacity (400) on the third tick: (7 * 150 + 3 * 1000) / 10 = 405,
	 * while the stable average (192.5) alone would still say 2. */
	assert_int_equal(tick(&s, 1000, 2), 2);
	assert_int_equal(tick(&s, 1000, 2), 2);
	last_panic_ms = s.in.now_ms;
	assert_int_equal(tick(&s, 1000, 2), 5);
	assert_non_null(strstr(s.why, "2 -> 5"));
	assert_non_null(strstr(s.why, "panic"));

	/* Back to 150 with 5 ready: no more panic (threshold now 1000), the
	 * stable average wants 2, but nothing scales down for 6 s. */
	for (t = s.in.now_ms; t < last_panic_ms + FL_AS_STABLE_SAMPLES * TICK_MS; t += TICK_MS)
		if (tick(&s, 150, 5) != 5)
			fail_msg("scaled down %llu ms after the panic",
				 (unsigned long long)(t - last_panic_ms));
	/* Then the lower demand has lasted longer than idle_timeout: down to 2. */
	assert_int_equal(tick(&s, 150, 5), 2);
	assert_null(strstr(s.why, "panic"));
	assert_int_equal(run(&s, 100, 150), 2);

	/* Panicking from a small steady load: a burst big enough to fill the
	 * panic window at once scales within the same tick. */
	sim_init(&s, 0, 50, 100, 1000);
	assert_int_equal(run(&s, FL_AS_STABLE_SAMPLES, 50), 1);
	for (i = 0; i < FL_AS_PANIC_SAMPLES; i++)
		if (tick(&s, 5000, 1) > 1)
			break;
	/* (9 * 50 + 5000) / 10 = 545 >= 2 * 100 * 1 on the first burst tick. */
	assert_int_equal(i, 0);
	assert_int_equal(s.st.desired, 6);
}

/* idle_timeout is longer than the 6 s window here, so it alone decides; with a
 * shorter one, zero waits until the window holds no load either. */
static void test_scale_to_zero(void **state)
{
	struct sim s;
	uint64_t idle_from;
	int i;

	sim_init(&s, 0, 10, 100, 10000);
	assert_int_equal(run(&s, 30, 3), 1);

	/* Load stops; the last active tick was just before. */
	idle_from = s.in.now_ms - TICK_MS;
	while (s.in.now_ms - idle_from < 10000)
		if (tick(&s, 0, 1) != 1)
			fail_msg("went to zero %llu ms after the last load, before idle_timeout",
				 (unsigned long long)(s.in.now_ms - TICK_MS - idle_from));
	assert_int_equal(tick(&s, 0, 1), 0);
	assert_non_null(strstr(s.why, "1 -> 0"));
	assert_int_equal(run(&s, 100, 0), 0);

	/* Finished requests between ticks count as work even when no tick saw
	 * load: short requests must not let a busy function go to zero. */
	sim_init(&s, 0, 10, 100, 10000);
	assert_int_equal(run(&s, 5, 1), 1);
	for (i = 0; i < 200; i++) {
		s.in.requests += 3;
		if (tick(&s, 0, 1) != 1)
			fail_msg("went to zero on tick %d while requests kept finishing", i);
	}
	/* Once they stop, idle_timeout later it goes. */
	for (i = 0; i < 99; i++)
		assert_int_equal(tick(&s, 0, 1), 1);
	assert_int_equal(tick(&s, 0, 1), 0);

	/* A single request after a long quiet spell resets the idle clock. */
	sim_init(&s, 0, 10, 100, 10000);
	assert_int_equal(run(&s, 5, 1), 1);
	assert_int_equal(run(&s, 80, 0), 1);
	assert_int_equal(tick(&s, 1, 1), 1);
	assert_int_equal(run(&s, 99, 0), 1);
	assert_int_equal(tick(&s, 0, 1), 0);
	/* And a new request from zero starts one at once. */
	assert_int_equal(tick(&s, 1, 0), 1);

	/* With an idle_timeout shorter than the 6 s window, zero comes after
	 * idle_timeout (10 ticks), not when the window has emptied, and the
	 * forgotten window does not bring an instance back on the next tick. */
	sim_init(&s, 0, 10, 100, 1000);
	assert_int_equal(run(&s, 5, 1), 1);
	assert_int_equal(run(&s, 9, 0), 1);
	assert_int_equal(tick(&s, 0, 1), 0);
	assert_int_equal(run(&s, 20, 0), 0);
}

static void test_partial_scale_down(void **state)
{
	struct sim s;
	uint64_t drop_ms;
	uint32_t d = 0, prev = 3;
	int i;

	sim_init(&s, 0, 10, 100, 10000);
	assert_int_equal(run(&s, FL_AS_STABLE_SAMPLES, 250), 3);

	/* Demand drops to 50 (one instance's worth), but never to zero. */
	drop_ms = s.in.now_ms;
	for (i = 0; i < 600; i++) {
		d = tick(&s, 50, s.st.desired);
		if (d == 0)
			fail_msg("scaled to zero with load 50");
		if (d > prev)
			fail_msg("scaled up from %u to %u while demand fell", prev, d);
		if (d < 3 && s.in.now_ms - TICK_MS - drop_ms < 10000)
			fail_msg("scaled down %llu ms after demand fell, before idle_timeout",
				 (unsigned long long)(s.in.now_ms - TICK_MS - drop_ms));
		prev = d;
	}
	assert_int_equal(d, 1);
	assert_true(s.changes >= 2);
}

static void test_why_buffer(void **state)
{
	struct fl_as_state st;
	struct fl_as_input in;
	char small[8];

	memset(&st, 0, sizeof(st));
	memset(&in, 0, sizeof(in));
	in.max = 10;
	in.target = 100;
	in.load = 1;
	in.now_ms = T0;
	/* why may be NULL, and a short buffer is truncated, not overrun. */
	assert_int_equal(fl_autoscale(&st, &in, NULL, 0), 1);
	in.load = 500;
	in.now_ms += TICK_MS;
	memset(small, 'x', sizeof(small));
	assert_int_equal(fl_autoscale(&st, &in, small, 6), 3);
	assert_string_equal(small, "scale");
	assert_int_equal(small[6], 'x');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cold_start),
	    cmocka_unit_test(test_steady_load),
	    cmocka_unit_test(test_target_default),
	    cmocka_unit_test(test_concurrency_floor),
	    cmocka_unit_test(test_max_clamp),
	    cmocka_unit_test(test_min_floor),
	    cmocka_unit_test(test_panic),
	    cmocka_unit_test(test_scale_to_zero),
	    cmocka_unit_test(test_partial_scale_down),
	    cmocka_unit_test(test_why_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
