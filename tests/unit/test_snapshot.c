/* test_snapshot.c -- unit tests for the routing snapshot (src/gateway/snapshot.c) and the
 * instance picker (src/gateway/dispatcher.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>

#include "gateway/snapshot.c"
#include "gateway/dispatcher.c"

/* dispatcher.c wakes the gateway threads through gateway.c; here we only count. */
static atomic_int kicks;

void fl_gateway_kick(void)
{
	kicks++;
}

/* A function with n instances of the given cap, ports 9000.., owned by the caller
 * (free it with a snapshot, or with free_fn). */
static fl_route_fn *make_fn(const char *name, int n, uint32_t cap)
{
	fl_route_fn *fn = fl_route_fn_new(name);
	int k;

	fn->stats = fl_fnstats_new();
	fn->concurrency = cap;
	fn->ninst = n;
	fn->inst = n ? fl_xcalloc((size_t)n, sizeof(*fn->inst)) : NULL;
	for (k = 0; k < n; k++)
		fn->inst[k] = fl_inst_new((uint64_t)k + 1, 9000 + k, cap);
	return fn;
}

static void free_fn(fl_route_fn *fn)
{
	fl_route_fn_unref(fn);
}

static int inflight(const fl_inst *i)
{
	return atomic_load(&i->inflight);
}

static void test_find(void **state)
{
	fl_snapshot *s = fl_snapshot_new(7);
	fl_route_fn *f;
	const char *url = "hello/rest";

	fl_snapshot_add_fn(s, make_fn("hello-c", 0, 0));
	fl_snapshot_add_fn(s, make_fn("zeta", 0, 0));
	fl_snapshot_add_fn(s, make_fn("hello", 0, 0));
	fl_snapshot_add_fn(s, make_fn("api", 0, 0));
	fl_snapshot_seal(s);
	assert_int_equal(s->gen, 7);
	assert_int_equal(s->nfn, 4);
	assert_string_equal(s->fns[0]->name, "api");
	assert_string_equal(s->fns[1]->name, "hello");
	assert_string_equal(s->fns[2]->name, "hello-c");
	assert_string_equal(s->fns[3]->name, "zeta");

	f = fl_snapshot_find(s, "hello-c", 7);
	assert_non_null(f);
	assert_string_equal(f->name, "hello-c");
	/* Counted: the first 5 bytes of "hello-c" name "hello". */
	f = fl_snapshot_find(s, "hello-c", 5);
	assert_non_null(f);
	assert_string_equal(f->name, "hello");
	f = fl_snapshot_find(s, url, 5);
	assert_non_null(f);
	assert_string_equal(f->name, "hello");
	f = fl_snapshot_find(s, "api", 3);
	assert_non_null(f);
	assert_string_equal(f->name, "api");
	f = fl_snapshot_find(s, "zeta", 4);
	assert_non_null(f);
	assert_string_equal(f->name, "zeta");

	assert_null(fl_snapshot_find(s, "hell", 4));
	assert_null(fl_snapshot_find(s, "hello-", 6));
	assert_null(fl_snapshot_find(s, "hello-cc", 8));
	assert_null(fl_snapshot_find(s, "ap", 2));
	assert_null(fl_snapshot_find(s, "apis", 4));
	assert_null(fl_snapshot_find(s, "aaa", 3));
	assert_null(fl_snapshot_find(s, "zzz", 3));
	assert_null(fl_snapshot_find(s, "", 0));
	assert_null(fl_snapshot_find(NULL, "api", 3));
	fl_snapshot_unref(s);

	/* An empty snapshot finds nothing. */
	s = fl_snapshot_new(1);
	fl_snapshot_seal(s);
	assert_null(fl_snapshot_find(s, "api", 3));
	fl_snapshot_unref(s);
}

/* Many names added in a scrambled order are all found, and near misses are not. */
static void test_find_many(void **state)
{
	fl_snapshot *s = fl_snapshot_new(1);
	char name[32];
	int i;

	for (i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "fn-%d", (i * 337) % 500);
		fl_snapshot_add_fn(s, make_fn(name, 0, 0));
	}
	fl_snapshot_seal(s);
	for (i = 1; i < s->nfn; i++)
		assert_true(strcmp(s->fns[i - 1]->name, s->fns[i]->name) < 0);
	for (i = 0; i < 500; i++) {
		fl_route_fn *f;
		int n = snprintf(name, sizeof(name), "fn-%d", i);
		f = fl_snapshot_find(s, name, (size_t)n);
		if (f == NULL || strcmp(f->name, name) != 0)
			fail_msg("%s not found", name);
		snprintf(name, sizeof(name), "fn-%dx", i);
		if (fl_snapshot_find(s, name, strlen(name)) != NULL)
			fail_msg("%s found", name);
	}
	fl_snapshot_unref(s);
}

/* A function unchanged between generations is the same object in both: it lives until the
 * last snapshot holding it goes, and its instances with it. */
static void test_shared_route_fn(void **state)
{
	fl_snapshot *a = fl_snapshot_new(1), *b = fl_snapshot_new(2);
	fl_route_fn *same = make_fn("same", 1, 0), *old = make_fn("other", 0, 0);
	fl_inst *inst = same->inst[0];

	(void)state;
	fl_snapshot_add_fn(a, old);
	fl_snapshot_add_fn(a, same);
	fl_snapshot_seal(a);
	fl_route_fn_ref(same);
	fl_snapshot_add_fn(b, same);
	fl_snapshot_add_fn(b, make_fn("other", 0, 0));
	fl_snapshot_seal(b);
	assert_ptr_equal(fl_snapshot_find(a, "same", 4), fl_snapshot_find(b, "same", 4));
	assert_ptr_not_equal(fl_snapshot_find(a, "other", 5), fl_snapshot_find(b, "other", 5));
	assert_int_equal(atomic_load(&same->refs), 2);
	fl_inst_ref(inst);
	fl_snapshot_unref(a);
	/* Still in b, whole, with its instance. */
	assert_int_equal(atomic_load(&same->refs), 1);
	assert_ptr_equal(fl_snapshot_find(b, "same", 4)->inst[0], inst);
	assert_int_equal(atomic_load(&inst->refs), 2);
	fl_snapshot_unref(b);
	assert_int_equal(atomic_load(&inst->refs), 1);
	fl_inst_unref(inst);
}

/* Functions are sorted when sealed, unless the builder says it added them in order; the
 * array grows past what was reserved. */
static void test_seal_order(void **state)
{
	fl_snapshot *s = fl_snapshot_new(1), *t = fl_snapshot_new(2);
	char name[16];

	(void)state;
	fl_snapshot_add_fn(s, make_fn("b", 0, 0));
	fl_snapshot_add_fn(s, make_fn("c", 0, 0));
	fl_snapshot_add_fn(s, make_fn("a", 0, 0));
	fl_snapshot_seal(s);
	assert_string_equal(s->fns[0]->name, "a");
	assert_string_equal(s->fns[2]->name, "c");
	assert_non_null(fl_snapshot_find(s, "b", 1));
	fl_snapshot_unref(s);
	t->sorted = 1;
	fl_snapshot_reserve(t, 2);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "f%03d", i);
		fl_snapshot_add_fn(t, make_fn(name, 0, 0));
	}
	fl_snapshot_seal(t);
	assert_int_equal(t->nfn, 40);
	assert_non_null(fl_snapshot_find(t, "f039", 4));
	assert_non_null(fl_snapshot_find(t, "f000", 4));
	fl_snapshot_unref(t);
}

static void test_refcounts(void **state)
{
	fl_snapshot *a, *b, *got;
	fl_route_fn *fa, *fb;
	fl_inst *shared;
	fl_fnstats *stats;

	assert_null(fl_snapshot_acquire());

	/* Generation 1: one function with one instance. */
	a = fl_snapshot_new(1);
	fa = make_fn("api", 1, 0);
	fl_snapshot_add_fn(a, fa);
	fl_snapshot_seal(a);
	shared = fa->inst[0];
	stats = fa->stats;

	fl_snapshot_publish(a); /* takes our reference */
	got = fl_snapshot_acquire();
	assert_ptr_equal(got, a);
	assert_int_equal(atomic_load(&a->refs), 2);

	/* Generation 2 keeps the same instance and counters alive by reference. */
	b = fl_snapshot_new(2);
	fb = fl_route_fn_new("api");
	fb->stats = stats;
	fl_fnstats_ref(stats);
	fb->ninst = 1;
	fb->inst = fl_xcalloc(1, sizeof(*fb->inst));
	fb->inst[0] = shared;
	fl_inst_ref(shared);
	fl_snapshot_add_fn(b, fb);
	fl_snapshot_seal(b);
	assert_int_equal(atomic_load(&shared->refs), 2);
	assert_int_equal(atomic_load(&stats->refs), 2);

	fl_snapshot_publish(b);
	/* The old snapshot lives on for its user, the current one is the new one. */
	assert_int_equal(atomic_load(&a->refs), 1);
	assert_ptr_equal(fl_snapshot_find(got, "api", 3), fa);
	fl_snapshot_unref(got); /* frees a */
	assert_int_equal(atomic_load(&shared->refs), 1);
	assert_int_equal(atomic_load(&stats->refs), 1);
	assert_int_equal(shared->port, 9000);
	assert_int_equal(ntohs(shared->addr.sin_port), 9000);
	assert_int_equal(ntohl(shared->addr.sin_addr.s_addr), INADDR_LOOPBACK);

	got = fl_snapshot_acquire();
	assert_ptr_equal(got, b);
	assert_int_equal(got->gen, 2);
	assert_int_equal(atomic_load(&b->refs), 2);
	fl_snapshot_unref(got);
	assert_int_equal(atomic_load(&b->refs), 1);

	/* Publishing nothing drops the last reference: the sanitizer build checks
	 * that everything was freed. */
	fl_snapshot_publish(NULL);
	assert_null(fl_snapshot_acquire());

	/* NULL is accepted by every unref. */
	fl_snapshot_unref(NULL);
	fl_inst_unref(NULL);
	fl_fnstats_unref(NULL);
}

static void test_hist(void **state)
{
	fl_hist h;
	uint64_t total = 0, sum = 0;
	int i;

	memset(&h, 0, sizeof(h));
	fl_hist_observe(&h, 0);
	assert_int_equal(atomic_load(&h.count[0]), 1);
	/* Each bound belongs to its own bucket ("le"), one microsecond more to the next. */
	for (i = 0; i < FL_HIST_BUCKETS; i++) {
		uint64_t us = (uint64_t)llround(fl_hist_bounds[i] * 1e6);
		memset(&h, 0, sizeof(h));
		fl_hist_observe(&h, us);
		if (atomic_load(&h.count[i]) != 1)
			fail_msg("%llu us not in bucket %d (le %g)", (unsigned long long)us, i,
				 fl_hist_bounds[i]);
		fl_hist_observe(&h, us + 1);
		if (atomic_load(&h.count[i + 1]) != 1)
			fail_msg("%llu us not in bucket %d", (unsigned long long)us + 1, i + 1);
		assert_int_equal(atomic_load(&h.sum_us), 2 * us + 1);
	}
	/* Far past the last bound: +Inf. */
	memset(&h, 0, sizeof(h));
	fl_hist_observe(&h, 3600ull * 1000000);
	assert_int_equal(atomic_load(&h.count[FL_HIST_BUCKETS]), 1);

	memset(&h, 0, sizeof(h));
	fl_hist_observe(&h, 700);   /* 0.7 ms -> le 0.001 */
	fl_hist_observe(&h, 30000); /* 30 ms -> le 0.05 */
	fl_hist_observe(&h, 30000);
	fl_hist_observe(&h, 2000000); /* 2 s -> le 2.5 */
	assert_int_equal(atomic_load(&h.count[1]), 1);
	assert_int_equal(atomic_load(&h.count[6]), 2);
	assert_int_equal(atomic_load(&h.count[11]), 1);
	for (i = 0; i <= FL_HIST_BUCKETS; i++)
		total += atomic_load(&h.count[i]);
	sum = atomic_load(&h.sum_us);
	assert_int_equal(total, 4);
	assert_int_equal(sum, 700 + 30000 + 30000 + 2000000);

	/* The bounds are increasing, as Prometheus requires. */
	for (i = 1; i < FL_HIST_BUCKETS; i++)
		assert_true(fl_hist_bounds[i] > fl_hist_bounds[i - 1]);
}

static void test_pick_least_loaded(void **state)
{
	fl_route_fn *fn = make_fn("api", 3, 0);
	fl_inst *p;

	atomic_store(&fn->inst[0]->inflight, 2);
	atomic_store(&fn->inst[1]->inflight, 0);
	atomic_store(&fn->inst[2]->inflight, 1);
	p = fl_dispatch_pick(fn);
	assert_ptr_equal(p, fn->inst[1]);
	assert_int_equal(inflight(fn->inst[1]), 1);
	assert_int_equal(atomic_load(&fn->stats->inflight), 1);

	/* Now 2,1,1: the first of the least loaded. */
	p = fl_dispatch_pick(fn);
	assert_ptr_equal(p, fn->inst[1]);
	p = fl_dispatch_pick(fn);
	assert_ptr_equal(p, fn->inst[2]);
	/* 2,2,2 -> first again; no cap, so picks never run out. */
	p = fl_dispatch_pick(fn);
	assert_ptr_equal(p, fn->inst[0]);
	for (int i = 0; i < 100; i++)
		assert_non_null(fl_dispatch_pick(fn));
	assert_int_equal(atomic_load(&fn->stats->inflight), 104);
	/* Spread evenly: 3 + 2 + 2 + 100 = 107 over 3. */
	assert_true(inflight(fn->inst[0]) >= 35 && inflight(fn->inst[0]) <= 36);
	assert_true(inflight(fn->inst[1]) >= 35 && inflight(fn->inst[1]) <= 36);
	assert_true(inflight(fn->inst[2]) >= 35 && inflight(fn->inst[2]) <= 36);
	free_fn(fn);

	/* No instances at all: nothing to pick. */
	fn = make_fn("none", 0, 0);
	assert_null(fl_dispatch_pick(fn));
	assert_int_equal(atomic_load(&fn->stats->inflight), 0);
	free_fn(fn);
}

static void test_pick_cap(void **state)
{
	fl_route_fn *fn = make_fn("api", 2, 2);
	fl_inst *got[4];
	int i;

	for (i = 0; i < 4; i++) {
		got[i] = fl_dispatch_pick(fn);
		assert_non_null(got[i]);
	}
	/* Least loaded first, so the two instances alternate. */
	assert_ptr_equal(got[0], fn->inst[0]);
	assert_ptr_equal(got[1], fn->inst[1]);
	assert_ptr_equal(got[2], fn->inst[0]);
	assert_ptr_equal(got[3], fn->inst[1]);
	assert_null(fl_dispatch_pick(fn));
	assert_int_equal(inflight(fn->inst[0]), 2);
	assert_int_equal(inflight(fn->inst[1]), 2);
	assert_int_equal(atomic_load(&fn->stats->inflight), 4);

	/* Freeing room with nobody held: no need to retry anything. */
	assert_int_equal(fl_dispatch_put(fn, fn->inst[1]), 0);
	assert_int_equal(inflight(fn->inst[1]), 1);
	assert_ptr_equal(fl_dispatch_pick(fn), fn->inst[1]);
	assert_null(fl_dispatch_pick(fn));

	/* With requests held, only a release at the cap says "retry". */
	atomic_store(&fn->stats->queued, 1);
	assert_int_equal(fl_dispatch_put(fn, fn->inst[0]), 1); /* 2 -> 1: room appeared */
	assert_int_equal(fl_dispatch_put(fn, fn->inst[0]), 0); /* 1 -> 0: there was room */
	assert_int_equal(inflight(fn->inst[0]), 0);

	/* fl_dispatch_release kicks the gateways exactly when put says so. */
	kicks = 0;
	fl_dispatch_release(fn, fn->inst[1]); /* 2 -> 1 with one held */
	assert_int_equal(kicks, 1);
	fl_dispatch_release(fn, fn->inst[1]); /* 1 -> 0 */
	assert_int_equal(kicks, 1);
	atomic_store(&fn->stats->queued, 0);
	assert_ptr_equal(fl_dispatch_pick(fn), fn->inst[0]);
	assert_ptr_equal(fl_dispatch_pick(fn), fn->inst[1]);
	assert_ptr_equal(fl_dispatch_pick(fn), fn->inst[0]);
	fl_dispatch_release(fn, fn->inst[0]); /* at the cap, but nobody held */
	assert_int_equal(kicks, 1);
	fl_dispatch_release(fn, fn->inst[0]);
	fl_dispatch_release(fn, fn->inst[1]);
	assert_int_equal(atomic_load(&fn->stats->inflight), 0);
	free_fn(fn);

	/* An instance without a cap never asks for a retry: nothing waits on it. */
	fn = make_fn("nocap", 1, 0);
	atomic_store(&fn->stats->queued, 3);
	assert_non_null(fl_dispatch_pick(fn));
	assert_int_equal(fl_dispatch_put(fn, fn->inst[0]), 0);
	free_fn(fn);
}

static void test_pick_skips_gone(void **state)
{
	fl_route_fn *fn = make_fn("api", 3, 1);

	atomic_store(&fn->inst[0]->gone, 1);
	assert_ptr_equal(fl_dispatch_pick(fn), fn->inst[1]);
	assert_ptr_equal(fl_dispatch_pick(fn), fn->inst[2]);
	/* The gone one has room but must get nothing. */
	assert_null(fl_dispatch_pick(fn));
	assert_int_equal(inflight(fn->inst[0]), 0);

	/* A request already on an instance that went away still ends normally. */
	atomic_store(&fn->inst[2]->gone, 1);
	assert_int_equal(fl_dispatch_put(fn, fn->inst[2]), 0);
	assert_int_equal(inflight(fn->inst[2]), 0);
	assert_null(fl_dispatch_pick(fn));
	assert_int_equal(fl_dispatch_put(fn, fn->inst[1]), 0);
	assert_ptr_equal(fl_dispatch_pick(fn), fn->inst[1]);
	assert_int_equal(fl_dispatch_put(fn, fn->inst[1]), 0);

	/* All gone: nothing. */
	atomic_store(&fn->inst[1]->gone, 1);
	assert_null(fl_dispatch_pick(fn));
	assert_int_equal(atomic_load(&fn->stats->inflight), 0);
	free_fn(fn);
}

/* The concurrency stress test: threads each hold up to two requests at a time
 * on instances with cap 3, so demand (8) exceeds room (6) and the cap is
 * contested on every pick. */
#define STRESS_THREADS 4
#define STRESS_ITERS   100000
#define STRESS_CAP     3

struct stress {
	fl_route_fn *fn;
	atomic_int over; /* times any thread saw inflight above the cap */
	atomic_long picks, misses;
	pthread_barrier_t start; /* so the threads really overlap */
};

static void check_cap(struct stress *st, fl_inst *i)
{
	if (atomic_load(&i->inflight) > STRESS_CAP)
		atomic_fetch_add(&st->over, 1);
}

static void *stress_thread(void *arg)
{
	struct stress *st = arg;
	long picks = 0, misses = 0;
	int n;

	pthread_barrier_wait(&st->start);
	for (n = 0; n < STRESS_ITERS; n++) {
		fl_inst *a = fl_dispatch_pick(st->fn);
		fl_inst *b = fl_dispatch_pick(st->fn);
		if (a) {
			picks++;
			check_cap(st, a);
		} else {
			misses++;
		}
		if ((n & 63) == 0)
			sched_yield(); /* sometimes give up the CPU while holding room */
		if (b) {
			picks++;
			check_cap(st, b);
			fl_dispatch_release(st->fn, b);
		} else {
			misses++;
		}
		if (a)
			fl_dispatch_release(st->fn, a);
	}
	atomic_fetch_add(&st->picks, picks);
	atomic_fetch_add(&st->misses, misses);
	return NULL;
}

static void test_pick_threads(void **state)
{
	struct stress st;
	pthread_t th[STRESS_THREADS];
	int t;

	memset(&st, 0, sizeof(st));
	assert_int_equal(pthread_barrier_init(&st.start, NULL, STRESS_THREADS), 0);
	st.fn = make_fn("api", 2, STRESS_CAP);
	for (t = 0; t < STRESS_THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, stress_thread, &st), 0);
	for (t = 0; t < STRESS_THREADS; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);

	if (atomic_load(&st.over) != 0)
		fail_msg("in-flight went above the cap %d times", atomic_load(&st.over));
	assert_int_equal(atomic_load(&st.picks) + atomic_load(&st.misses),
			 2L * STRESS_THREADS * STRESS_ITERS);
	assert_true(atomic_load(&st.picks) > 0);
	assert_int_equal(inflight(st.fn->inst[0]), 0);
	assert_int_equal(inflight(st.fn->inst[1]), 0);
	assert_int_equal(atomic_load(&st.fn->stats->inflight), 0);
	free_fn(st.fn);

	/* One instance, cap 3, four threads: the cap is now always under contention. */
	pthread_barrier_destroy(&st.start);
	memset(&st, 0, sizeof(st));
	assert_int_equal(pthread_barrier_init(&st.start, NULL, STRESS_THREADS), 0);
	st.fn = make_fn("one", 1, STRESS_CAP);
	for (t = 0; t < STRESS_THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, stress_thread, &st), 0);
	for (t = 0; t < STRESS_THREADS; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);
	if (atomic_load(&st.over) != 0)
		fail_msg("in-flight went above the cap %d times", atomic_load(&st.over));
	assert_int_equal(inflight(st.fn->inst[0]), 0);
	assert_int_equal(atomic_load(&st.fn->stats->inflight), 0);
	free_fn(st.fn);
	pthread_barrier_destroy(&st.start);
}

/* Every registered code has its own slot, and the inverse table agrees. */
static void test_shard_codes(void **state)
{
	int k, n = 0;

	for (k = 0; k < FL_SHARD_CODES; k++) {
		assert_true(fl_shard_codes[k] >= 100 && fl_shard_codes[k] <= 599);
		if (k > 0)
			assert_true(fl_shard_codes[k] > fl_shard_codes[k - 1]);
		if (code_slot[fl_shard_codes[k]] != k + 1)
			fail_msg("code %d: slot %d, not %d", fl_shard_codes[k],
				 code_slot[fl_shard_codes[k]], k + 1);
	}
	for (k = 0; k < 600; k++)
		n += code_slot[k] != 0;
	assert_int_equal(n, FL_SHARD_CODES);
	assert_int_not_equal(code_slot[200], 0);
	assert_int_not_equal(code_slot[429], 0);
	assert_int_equal(code_slot[299], 0);
}

/* Counts land in the counting thread's shard; readers see their sum. */
static void test_shards_sum(void **state)
{
	fl_fnstats *s = fl_fnstats_new();
	fl_fnshard *a, *b;
	fl_fncounts c;
	int t;

	/* A cache line each: no two threads' counters share one. */
	assert_int_equal(sizeof(fl_fnshard) % 64, 0);
	assert_int_equal((uintptr_t)s % 64, 0);
	/* 1,000 functions served by 2 threads stay within a few MiB. */
	assert_true(sizeof(fl_fnshard) <= 1024);
	for (t = 0; t < FL_MAX_THREADS; t++)
		assert_null(atomic_load(&s->shards[t]));
	fl_fnstats_read(s, &c);
	assert_int_equal(c.status[2], 0);
	assert_int_equal(c.latency.count[0], 0);

	a = fl_fnstats_shard(s, 0);
	b = fl_fnstats_shard(s, 5);
	assert_ptr_equal(fl_fnstats_shard(s, 0), a); /* made once */
	assert_ptr_not_equal(a, b);
	assert_int_equal((uintptr_t)a % 64, 0);
	assert_int_equal((uintptr_t)b % 64, 0);
	for (t = 0; t < FL_MAX_THREADS; t++)
		if (t != 0 && t != 5)
			assert_null(atomic_load(&s->shards[t])); /* unused threads cost nothing */

	fl_fnstats_status(s, a, 200);
	fl_fnstats_status(s, a, 200);
	fl_fnstats_status(s, a, 404);
	fl_fnstats_status(s, a, 299); /* no slot: the shared table */
	fl_fnstats_status(s, a, 0);
	fl_fnstats_status(s, a, 999); /* not a status: no response */
	fl_fnstats_status(s, b, 200);
	fl_fnstats_status(s, b, 503);
	fl_fnstats_status(s, b, 299);
	fl_hist_observe_own(&a->latency, 700);	 /* le 0.001 */
	fl_hist_observe_own(&b->latency, 30000); /* le 0.05 */
	fl_hist_observe_own(&b->stream, 30000);
	fl_ctr_add_own(&a->grpc[14], 1);
	fl_ctr_add_own(&b->grpc[14], 2);
	fl_ctr_add_own(&b->thrift[1], 1);

	fl_fnstats_read(s, &c);
	assert_int_equal(c.status[0], 2);
	assert_int_equal(c.status[2], 5);
	assert_int_equal(c.status[4], 1);
	assert_int_equal(c.status[5], 1);
	assert_int_equal(c.codes[200], 3);
	assert_int_equal(c.codes[299], 2);
	assert_int_equal(c.codes[404], 1);
	assert_int_equal(c.codes[503], 1);
	assert_int_equal(c.codes[0], 0);
	assert_int_equal(atomic_load(&s->codes_rare[299]), 2);
	assert_int_equal(atomic_load(&s->codes_rare[200]), 0);
	assert_int_equal(c.latency.count[1], 1);
	assert_int_equal(c.latency.count[6], 1);
	assert_int_equal(c.latency.sum_us, 30700);
	assert_int_equal(c.stream.count[6], 1);
	assert_int_equal(c.stream.count[1], 0);
	assert_int_equal(c.grpc[14], 3);
	assert_int_equal(c.thrift[1], 1);
	assert_int_equal(c.thrift[0], 0);
	fl_fnstats_unref(s); /* frees the shards: the sanitizer build checks it */
}

#define SHARD_THREADS 4
#define SHARD_ITERS   200000

struct shard_run {
	fl_fnstats *s;
	int idx;
	pthread_barrier_t *start;
	atomic_int *done;
};

static void *shard_writer(void *arg)
{
	struct shard_run *r = arg;
	int n;

	pthread_barrier_wait(r->start);
	for (n = 0; n < SHARD_ITERS; n++) {
		fl_fnshard *sh = fl_fnstats_shard(r->s, r->idx);
		fl_fnstats_status(r->s, sh, n % 2 ? 200 : 502);
		fl_hist_observe_own(&sh->latency, 1);
	}
	atomic_fetch_add(r->done, 1);
	return NULL;
}

/* Threads counting at once into their own shards lose nothing, and a reader
 * running meanwhile never sees a total go down. */
static void test_shards_threads(void **state)
{
	fl_fnstats *s = fl_fnstats_new();
	struct shard_run run[SHARD_THREADS];
	pthread_t th[SHARD_THREADS];
	pthread_barrier_t start;
	atomic_int done = 0;
	uint64_t last = 0;
	fl_fncounts *c = fl_xmalloc(sizeof(*c));
	int t;

	assert_int_equal(pthread_barrier_init(&start, NULL, SHARD_THREADS + 1), 0);
	for (t = 0; t < SHARD_THREADS; t++) {
		run[t] = (struct shard_run){s, t * 3, &start, &done};
		assert_int_equal(pthread_create(&th[t], NULL, shard_writer, &run[t]), 0);
	}
	pthread_barrier_wait(&start);
	while (atomic_load(&done) < SHARD_THREADS) {
		fl_fnstats_read(s, c);
		if (c->latency.count[0] < last)
			fail_msg("the total went down from %llu to %llu", (unsigned long long)last,
				 (unsigned long long)c->latency.count[0]);
		last = c->latency.count[0];
	}
	for (t = 0; t < SHARD_THREADS; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);
	fl_fnstats_read(s, c);
	assert_int_equal(c->codes[200], SHARD_THREADS * SHARD_ITERS / 2);
	assert_int_equal(c->codes[502], SHARD_THREADS * SHARD_ITERS / 2);
	assert_int_equal(c->status[2] + c->status[5], SHARD_THREADS * SHARD_ITERS);
	assert_int_equal(c->latency.count[0], SHARD_THREADS * SHARD_ITERS);
	assert_int_equal(c->latency.sum_us, SHARD_THREADS * SHARD_ITERS);
	pthread_barrier_destroy(&start);
	free(c);
	fl_fnstats_unref(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_find_many),
	    cmocka_unit_test(test_refcounts),
	    cmocka_unit_test(test_hist),
	    cmocka_unit_test(test_shared_route_fn),
	    cmocka_unit_test(test_seal_order),
	    cmocka_unit_test(test_shard_codes),
	    cmocka_unit_test(test_shards_sum),
	    cmocka_unit_test(test_shards_threads),
	    cmocka_unit_test(test_pick_least_loaded),
	    cmocka_unit_test(test_pick_cap),
	    cmocka_unit_test(test_pick_skips_gone),
	    cmocka_unit_test(test_pick_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
