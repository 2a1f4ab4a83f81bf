/* snapshot.c -- the immutable routing snapshot and the shared objects it refers to. */
#include "gateway/snapshot.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"

const double fl_hist_bounds[FL_HIST_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
						0.1,	0.25,  0.5,    1,     2.5,  5,	   10};

const uint16_t fl_shard_codes[FL_SHARD_CODES] = {
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301,
    302, 303, 304, 305, 306, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408,
    409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423, 424, 425, 426,
    428, 429, 431, 451, 499, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511};

/* fl_shard_codes' inverse: slot + 1 by code, 0 for codes without a slot. */
static const uint8_t code_slot[600] = {
    [100] = 1,	[101] = 2,  [102] = 3,	[103] = 4,  [200] = 5,	[201] = 6,  [202] = 7,	[203] = 8,
    [204] = 9,	[205] = 10, [206] = 11, [207] = 12, [208] = 13, [226] = 14, [300] = 15, [301] = 16,
    [302] = 17, [303] = 18, [304] = 19, [305] = 20, [306] = 21, [307] = 22, [308] = 23, [400] = 24,
    [401] = 25, [402] = 26, [403] = 27, [404] = 28, [405] = 29, [406] = 30, [407] = 31, [408] = 32,
    [409] = 33, [410] = 34, [411] = 35, [412] = 36, [413] = 37, [414] = 38, [415] = 39, [416] = 40,
    [417] = 41, [418] = 42, [421] = 43, [422] = 44, [423] = 45, [424] = 46, [425] = 47, [426] = 48,
    [428] = 49, [429] = 50, [431] = 51, [451] = 52, [499] = 53, [500] = 54, [501] = 55, [502] = 56,
    [503] = 57, [504] = 58, [505] = 59, [506] = 60, [507] = 61, [508] = 62, [510] = 63, [511] = 64};

static int hist_bucket(uint64_t us)
{
	double s = (double)us / 1e6;
	int i;

	for (i = 0; i < FL_HIST_BUCKETS; i++)
		if (s <= fl_hist_bounds[i])
			break;
	return i;
}

void fl_hist_observe(fl_hist *h, uint64_t us)
{
	atomic_fetch_add_explicit(&h->count[hist_bucket(us)], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

void fl_hist_observe_own(fl_hist *h, uint64_t us)
{
	fl_ctr_add_own(&h->count[hist_bucket(us)], 1);
	fl_ctr_add_own(&h->sum_us, us);
}

void fl_hist_read(const fl_hist *h, struct fl_hist_sum *out)
{
	int i;

	for (i = 0; i <= FL_HIST_BUCKETS; i++)
		out->count[i] += atomic_load_explicit(&h->count[i], memory_order_relaxed);
	out->sum_us += atomic_load_explicit(&h->sum_us, memory_order_relaxed);
}

/* A zeroed block aligned to a cache line (the types ask for it). */
static void *xcalloc_line(size_t n)
{
	void *p = NULL;

	if (posix_memalign(&p, 64, n) != 0) {
		fprintf(stderr, "flint: out of memory allocating %zu bytes\n", n);
		abort();
	}
	return memset(p, 0, n);
}

fl_fnstats *fl_fnstats_new(void)
{
	fl_fnstats *s = xcalloc_line(sizeof(*s));

	atomic_init(&s->refs, 1);
	return s;
}

fl_fnshard *fl_fnstats__shard_new(fl_fnstats *s, int thread)
{
	fl_fnshard *sh = xcalloc_line(sizeof(*sh));

	/* Only this thread writes its slot; release: readers see the zeroes. */
	atomic_store_explicit(&s->shards[thread], sh, memory_order_release);
	return sh;
}

void fl_fnstats_status(fl_fnstats *s, fl_fnshard *sh, int status)
{
	if (status < 100 || status > 599)
		status = 0;
	fl_ctr_add_own(&sh->status[status / 100], 1);
	if (status == 0)
		return;
	if (code_slot[status])
		fl_ctr_add_own(&sh->codes[code_slot[status] - 1], 1);
	else
		atomic_fetch_add_explicit(&s->codes_rare[status], 1, memory_order_relaxed);
}

static uint64_t ld(const atomic_uint_fast64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

void fl_fnstats_read(const fl_fnstats *s, fl_fncounts *out)
{
	int t, k;

	memset(out, 0, sizeof(*out));
	for (k = 100; k < 600; k++)
		out->codes[k] = ld(&s->codes_rare[k]);
	for (t = 0; t < FL_MAX_THREADS; t++) {
		const fl_fnshard *sh = atomic_load_explicit(&s->shards[t], memory_order_acquire);
		if (sh == NULL)
			continue;
		for (k = 0; k < 6; k++)
			out->status[k] += ld(&sh->status[k]);
		for (k = 0; k < FL_SHARD_CODES; k++)
			out->codes[fl_shard_codes[k]] += ld(&sh->codes[k]);
		fl_hist_read(&sh->latency, &out->latency);
		fl_hist_read(&sh->stream, &out->stream);
		for (k = 0; k < 17; k++)
			out->grpc[k] += ld(&sh->grpc[k]);
		for (k = 0; k < 3; k++)
			out->thrift[k] += ld(&sh->thrift[k]);
	}
}

void fl_fnstats_method(fl_fnstats *s, const char *method, size_t len, int code)
{
	uint32_t h = 2166136261u;
	size_t i;
	int k;

	if (code < 0 || code > 16 || len == 0)
		return;
	if (len > 200)
		len = 200;
	for (i = 0; i < len; i++)
		h = (h ^ (uint8_t)method[i]) * 16777619u;
	for (k = 0; k < FL_METHOD_SLOTS; k++) {
		struct fl_method_stat *m = &s->methods[(h + (uint32_t)k) % FL_METHOD_SLOTS];
		char *n = atomic_load_explicit(&m->name, memory_order_acquire);
		if (n == NULL) {
			char *mine = strndup(method, len);
			if (mine == NULL)
				break;
			if (atomic_compare_exchange_strong(&m->name, &n, mine)) {
				n = mine;
			} else {
				free(mine); /* another thread claimed it; n is its name */
			}
		}
		if (strncmp(n, method, len) == 0 && n[len] == '\0') {
			atomic_fetch_add_explicit(&m->count[code], 1, memory_order_relaxed);
			return;
		}
	}
	atomic_fetch_add_explicit(&s->methods_other, 1, memory_order_relaxed);
}

void fl_fnstats_ref(fl_fnstats *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void fl_fnstats_unref(fl_fnstats *s)
{
	int k;

	if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
		for (k = 0; k < FL_METHOD_SLOTS; k++)
			free(atomic_load(&s->methods[k].name));
		for (k = 0; k < FL_MAX_THREADS; k++)
			free(atomic_load(&s->shards[k]));
		free(s);
	}
}

fl_inst *fl_inst_new(uint64_t id, int port, uint32_t concurrency)
{
	fl_inst *i = fl_xcalloc(1, sizeof(*i));
	int t;

	atomic_init(&i->refs, 1);
	i->id = id;
	i->port = port;
	i->concurrency = concurrency;
	i->netns = -1;
	i->addr.sin_family = AF_INET;
	i->addr.sin_port = htons((uint16_t)port);
	i->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (t = 0; t < FL_MAX_THREADS; t++) {
		fl_list_init(&i->idle[t]);
		fl_list_init(&i->h2[t]);
	}
	return i;
}

void fl_inst_ref(fl_inst *i)
{
	atomic_fetch_add_explicit(&i->refs, 1, memory_order_relaxed);
}

void fl_inst_unref(fl_inst *i)
{
	if (i && atomic_fetch_sub_explicit(&i->refs, 1, memory_order_acq_rel) == 1) {
		if (i->netns >= 0)
			close(i->netns);
		free(i);
	}
}

fl_snapshot *fl_snapshot_new(uint64_t gen)
{
	fl_snapshot *s = fl_xcalloc(1, sizeof(*s));

	atomic_init(&s->refs, 1);
	s->gen = gen;
	return s;
}

fl_route_fn *fl_route_fn_new(const char *name)
{
	fl_route_fn *fn = fl_xcalloc(1, sizeof(*fn));

	atomic_init(&fn->refs, 1);
	fn->name = fl_xstrdup(name);
	return fn;
}

void fl_route_fn_ref(fl_route_fn *fn)
{
	atomic_fetch_add_explicit(&fn->refs, 1, memory_order_relaxed);
}

void fl_snapshot_reserve(fl_snapshot *s, int n)
{
	fl_route_fn **v;

	if (n <= s->cap)
		return;
	v = realloc(s->fns, sizeof(*v) * (size_t)n);
	if (v == NULL)
		abort();
	s->fns = v;
	s->cap = n;
}

void fl_snapshot_add_fn(fl_snapshot *s, fl_route_fn *fn)
{
	if (s->nfn == s->cap)
		fl_snapshot_reserve(s, s->cap ? s->cap * 2 : 16);
	s->fns[s->nfn++] = fn;
}

static int cmp_fn(const void *a, const void *b)
{
	return strcmp((*(fl_route_fn *const *)a)->name, (*(fl_route_fn *const *)b)->name);
}

static int cmp_svc(const void *a, const void *b)
{
	return strcmp(((const struct fl_svc *)a)->name, ((const struct fl_svc *)b)->name);
}

void fl_snapshot_seal(fl_snapshot *s)
{
	int i, j, n = 0;

	if (!s->sorted && s->nfn > 1)
		qsort(s->fns, (size_t)s->nfn, sizeof(*s->fns), cmp_fn);
	for (i = 0; i < s->nfn; i++)
		n += s->fns[i]->nservices;
	if (n == 0)
		return;
	s->svcs = fl_xcalloc((size_t)n, sizeof(*s->svcs));
	for (i = 0; i < s->nfn; i++)
		for (j = 0; j < s->fns[i]->nservices; j++) {
			s->svcs[s->nsvc].name = s->fns[i]->services[j];
			s->svcs[s->nsvc++].fn = s->fns[i];
		}
	qsort(s->svcs, (size_t)s->nsvc, sizeof(*s->svcs), cmp_svc);
}

fl_route_fn *fl_snapshot_pick_version(const fl_snapshot *s, fl_route_fn *fn, const char *pin,
				      size_t pinlen, uint64_t rnd)
{
	uint64_t v = 0;
	size_t i;
	int k;

	if (pin) {
		/* "4" or "v4" */
		if (pinlen > 0 && (pin[0] == 'v' || pin[0] == 'V'))
			pin++, pinlen--;
		if (pinlen == 0 || pinlen > 18)
			return NULL;
		for (i = 0; i < pinlen; i++) {
			if (pin[i] < '0' || pin[i] > '9')
				return NULL;
			v = v * 10 + (uint64_t)(pin[i] - '0');
		}
		if (fn->nsplit == 0)
			return v == fn->version ? fn : NULL;
		for (k = 0; k < fn->nsplit; k++)
			if (fn->split[k].version == v)
				return fl_snapshot_find(s, fn->split[k].target,
							strlen(fn->split[k].target));
		return NULL;
	}
	if (fn->nsplit == 0 || fn->split_total == 0)
		return fn;
	rnd %= fn->split_total;
	for (k = 0; k < fn->nsplit; k++)
		if (rnd < fn->split[k].weight)
			return fl_snapshot_find(s, fn->split[k].target,
						strlen(fn->split[k].target));
	return fn;
}

fl_route_fn *fl_snapshot_find_service(const fl_snapshot *s, const char *name, size_t len)
{
	int lo = 0, hi = s ? s->nsvc - 1 : -1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		const char *n = s->svcs[mid].name;
		int c = strncmp(n, name, len);
		if (c == 0 && n[len] != '\0')
			c = 1;
		if (c == 0)
			return s->svcs[mid].fn;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

fl_route_fn *fl_snapshot_find(const fl_snapshot *s, const char *name, size_t len)
{
	int lo = 0, hi = s ? s->nfn - 1 : -1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		const char *n = s->fns[mid]->name;
		int c = strncmp(n, name, len);
		if (c == 0 && n[len] != '\0')
			c = 1;
		if (c == 0)
			return s->fns[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

void fl_route_fn_unref(fl_route_fn *fn)
{
	int i;

	if (fn == NULL || atomic_fetch_sub_explicit(&fn->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (i = 0; i < fn->ninst; i++)
		fl_inst_unref(fn->inst[i]);
	free(fn->inst);
	for (i = 0; i < fn->nservices; i++)
		free(fn->services[i]);
	free(fn->services);
	for (i = 0; i < fn->nsplit; i++)
		free(fn->split[i].target);
	free(fn->split);
	fl_fnstats_unref(fn->stats);
	free(fn->reason);
	free(fn->name);
	free(fn);
}

void fl_snapshot_ref(fl_snapshot *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void fl_snapshot_unref(fl_snapshot *s)
{
	int i;

	if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (i = 0; i < s->nfn; i++)
		fl_route_fn_unref(s->fns[i]);
	free(s->fns);
	free(s->svcs);
	free(s);
}

static pthread_mutex_t current_mu = PTHREAD_MUTEX_INITIALIZER;
static fl_snapshot *current;
static atomic_uint_fast64_t current_gen;

void fl_snapshot_publish(fl_snapshot *s)
{
	fl_snapshot *old;

	pthread_mutex_lock(&current_mu);
	old = current;
	current = s;
	atomic_store_explicit(&current_gen, s ? s->gen : 0, memory_order_release);
	pthread_mutex_unlock(&current_mu);
	fl_snapshot_unref(old);
}

uint64_t fl_snapshot_current_gen(void)
{
	return atomic_load_explicit(&current_gen, memory_order_acquire);
}

fl_snapshot *fl_snapshot_acquire(void)
{
	fl_snapshot *s;

	pthread_mutex_lock(&current_mu);
	s = current;
	if (s)
		fl_snapshot_ref(s);
	pthread_mutex_unlock(&current_mu);
	return s;
}
