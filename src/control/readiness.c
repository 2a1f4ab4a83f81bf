/* readiness.c -- readiness and liveness checks of instances, and their schedule. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "control/ctl.h"
#include "control/probe.h"
#include "core/log.h"
#include "core/util.h"

static void probe_schedule(ctl_inst *in);
static void probe_tick(uv_poll_t *h, int status, int events);

/* The outcome of a liveness check of a ready instance: enough failures in a row and it
 * is stopped, and the autoscaler starts another in its place. */
static void live_done(void *ctx, int ok)
{
	ctl_inst *in = ctx;
	ctl_fn *fn = in->fn;
	fl_ctl *ctl = ctl_of((uv_handle_t *)&in->timer);

	in->probe = NULL;
	if (in->exited || in->state != I_READY)
		return;
	in->probe_delay_ms = ok ? 0 : in->probe_delay_ms + 1;
	if (in->probe_delay_ms < fn->spec->liveness_failures) {
		uv_timer_start(&in->timer, ctl_live_now, fn->spec->liveness_interval_ms, 0);
		return;
	}
	ctl_event(fn, "instance i-%llu: liveness check failed %llu times; replacing it",
		  (unsigned long long)in->id, (unsigned long long)in->probe_delay_ms);
	fl_logstore_note(ctl->logs, fn->name,
			 "instance i-%llu: liveness check failed %llu times; replacing it",
			 (unsigned long long)in->id, (unsigned long long)in->probe_delay_ms);
	ctl_inst_stop(ctl, in);
	if (!fn->deleted && !ctl->stopping)
		ctl_scale(ctl, fn);
}

void ctl_live_now(uv_timer_t *t)
{
	ctl_inst *in = t->data;
	fl_ctl *ctl = ctl_of((uv_handle_t *)t);
	const fl_spec *sp = in->fn->spec;

	if (in->state != I_READY || in->exited || in->probe)
		return;
	if (fl_probe_start(ctl->loop, in->netns, in->port, sp->health_type, sp->health_path,
			   sp->liveness_timeout_ms, live_done, in, &in->probe) < 0)
		live_done(in, 0);
}

/* Retries the readiness check: at once, then every PROBE_TICK_US (or more, with many
 * starts under way) for the first PROBE_TICK_MS (a native server is ready well within a
 * millisecond of its exec: a millisecond timer would be most of a warm start), then every
 * millisecond (the timers' resolution) until PROBE_FAST_MS, where a cold start usually
 * ends, then backing off to 50 ms for slow starters. Each check first asks the kernel
 * whether the port is listening (sock_diag, ~5 us, no connection: a TCP health check is
 * then passed); only once it is, or when the kernel cannot say, does it connect, in the
 * fast window at most every PROBE_CONNECT_TICKS ticks: a loopback connect costs 30-45 us
 * here. */
#define PROBE_TICK_US	    50
#define PROBE_TICK_MAX_US   2000
#define PROBE_TICK_PER_INST 20 /* us of period per instance in the fast window */
#define PROBE_CONNECT_TICKS 4
#define PROBE_TICK_MS	    10
#define PROBE_FAST_MS	    30

static void probe_done(void *ctx, int ok)
{
	ctl_inst *in = ctx;

	in->probe = NULL;
	if (in->exited || in->state != I_STARTING)
		return;
	if (ok)
		ctl_inst_ready(ctl_of((uv_handle_t *)&in->timer), in);
	else
		probe_schedule(in);
}

/* The sock_diag socket for in's namespace, or -1 when the kernel cannot tell (or
 * --readiness connect said not to ask: ctl->diag -2). */
static int probe_diag(fl_ctl *ctl, ctl_inst *in)
{
	int r;

	if (in->diag_off || ctl->diag == -2)
		return -1;
	if (in->netns < 0) {
		if (ctl->diag == -1) {
			r = fl_probe_diag_open(-1);
			if (r < 0)
				fl_warn(
				    "serve",
				    "no sock_diag (%s): readiness is checked by connecting only",
				    strerror(-r));
			ctl->diag = r >= 0 ? r : -2;
		}
		if (ctl->diag >= 0)
			return ctl->diag;
	} else if (in->diag >= 0) {
		return in->diag;
	} else if ((r = fl_probe_diag_open(in->netns)) >= 0) {
		return in->diag = r;
	}
	in->diag_off = 1;
	return -1;
}

void ctl_probe_now(uv_timer_t *t)
{
	ctl_inst *in = t->data;
	fl_ctl *ctl = ctl_of((uv_handle_t *)t);
	uint64_t left, since = fl_now_ns() - in->spawn_ns;
	int d;

	if (in->state != I_STARTING || in->exited || in->probe)
		return;
	if (since > in->fn->spec->startup_timeout_ms * 1000000ull) {
		char why[200];
		snprintf(why, sizeof(why), "instance i-%llu did not become ready within %llu ms",
			 (unsigned long long)in->id,
			 (unsigned long long)in->fn->spec->startup_timeout_ms);
		ctl_start_failed(ctl, in, why);
		ctl_inst_stop(ctl, in);
		return;
	}
	if ((d = probe_diag(ctl, in)) >= 0) {
		int r = fl_probe_listening(d, in->port);
		if (r == 0) {
			probe_schedule(in);
			return;
		}
		if (r == 1 && in->fn->spec->health_type == FL_HEALTH_TCP) {
			ctl_inst_ready(ctl, in);
			return;
		}
		if (r < 0) {
			fl_warn("serve", "instance i-%llu: sock_diag cannot tell (%s); connecting",
				(unsigned long long)in->id, strerror(-r));
			in->diag_off = 1;
		}
	}
	/* Listening (an HTTP or gRPC check answers the rest), or no way to ask the kernel. */
	in->fast_skip = PROBE_CONNECT_TICKS - 1;
	/* A check that hangs (an instance that accepts but does not answer yet) must not
	 * outlast the start deadline, which only this function enforces. */
	left = in->fn->spec->startup_timeout_ms - since / 1000000;
	if (fl_probe_start(ctl->loop, in->netns, in->port, in->fn->spec->health_type,
			   in->fn->spec->health_path, left ? left : 1, probe_done, in,
			   &in->probe) < 0)
		probe_schedule(in);
}

void ctl_probe_fast_remove(ctl_inst *in)
{
	if (in->fast) {
		fl_list_remove(&in->fast_link);
		in->fast = 0;
	}
	if (in->diag >= 0) {
		close(in->diag);
		in->diag = -1;
	}
}

/* Runs the fast checks every period_us (0: stops them). */
static void probe_arm(fl_ctl *ctl, unsigned period_us)
{
	struct itimerspec it = {{0, period_us * 1000L}, {0, period_us * 1000L}};

	if (ctl->probe_armed == period_us)
		return;
	if (ctl->probe_armed == 0)
		uv_poll_start(&ctl->probe_poll, UV_READABLE, probe_tick);
	ctl->probe_armed = period_us;
	timerfd_settime(ctl->probe_tfd, 0, &it, NULL);
	if (period_us == 0)
		uv_poll_stop(&ctl->probe_poll);
}

/* The period for n instances in the fast window: each check costs a few microseconds. */
static unsigned probe_period(unsigned n)
{
	unsigned us = n * PROBE_TICK_PER_INST;

	return us < PROBE_TICK_US ? PROBE_TICK_US : us > PROBE_TICK_MAX_US ? PROBE_TICK_MAX_US : us;
}

static void probe_tick(uv_poll_t *h, int status, int events)
{
	fl_ctl *ctl = h->data;
	fl_list todo;
	unsigned n = 0;
	uint64_t ticks;

	if (read(ctl->probe_tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		fl_warn("serve", "reading the readiness timer: %s", strerror(errno));
	/* Probes that fail now come back to probe_fast: take this round's first. */
	fl_list_init(&todo);
	while (!fl_list_empty(&ctl->probe_fast)) {
		fl_list *l = ctl->probe_fast.next;
		fl_list_remove(l);
		fl_list_insert_tail(&todo, l);
	}
	while (!fl_list_empty(&todo)) {
		ctl_inst *in = fl_container_of(todo.next, ctl_inst, fast_link);
		fl_list_remove(&in->fast_link);
		if (in->fast_skip) {
			in->fast_skip--;
			fl_list_insert_tail(&ctl->probe_fast, &in->fast_link);
			continue;
		}
		in->fast = 0;
		ctl_probe_now(&in->timer);
	}
	for (fl_list *l = ctl->probe_fast.next; l != &ctl->probe_fast; l = l->next)
		n++;
	probe_arm(ctl, n ? probe_period(n) : 0);
}

void ctl_probe_init(fl_ctl *ctl)
{
	fl_list_init(&ctl->probe_fast);
	ctl->diag = -1;
	ctl->probe_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (ctl->probe_tfd < 0) {
		fl_warn("serve", "no timerfd (%s): readiness is checked every millisecond",
			strerror(errno));
		return;
	}
	uv_poll_init(ctl->loop, &ctl->probe_poll, ctl->probe_tfd);
	ctl->probe_poll.data = ctl;
}

static void probe_schedule(ctl_inst *in)
{
	fl_ctl *ctl = ctl_of((uv_handle_t *)&in->timer);
	uint64_t d = in->probe_delay_ms, since = fl_now_ns() - in->spawn_ns;

	if (ctl->probe_tfd >= 0 && since < PROBE_TICK_MS * 1000000ull) {
		if (!in->fast) {
			fl_list_insert_tail(&ctl->probe_fast, &in->fast_link);
			in->fast = 1;
		}
		if (!ctl->probe_armed)
			probe_arm(ctl, PROBE_TICK_US);
		return;
	}
	if (since < PROBE_FAST_MS * 1000000ull)
		in->probe_delay_ms = 1;
	else
		in->probe_delay_ms = d == 0 ? 1 : (d * 2 > 50 ? 50 : d * 2);
	uv_timer_start(&in->timer, ctl_probe_now, d, 0);
}
