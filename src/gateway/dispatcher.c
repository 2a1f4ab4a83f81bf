/* dispatcher.c -- which instance gets a request: the least loaded one with room. */
#include "gateway/dispatcher.h"

#include "core/util.h"
#include "gateway/gw.h"

/* Tries to count one more request on i without passing its cap. */
static int try_take(fl_inst *i)
{
	int cur = atomic_load_explicit(&i->inflight, memory_order_relaxed);

	for (;;) {
		if (i->concurrency && cur >= (int)i->concurrency)
			return 0;
		if (atomic_compare_exchange_weak_explicit(
			&i->inflight, &cur, cur + 1, memory_order_acq_rel, memory_order_relaxed))
			return 1;
	}
}

/* Is i marked overloaded right now? The clock is read only when it was. */
static int overloaded(fl_inst *i, uint64_t *now)
{
	uint64_t until = atomic_load_explicit(&i->overloaded_until_ms, memory_order_relaxed);

	if (until == 0)
		return 0;
	if (*now == 0)
		*now = fl_now_ms();
	return until > *now;
}

/* Order of preference: an elastic instance with room, least loaded first;
 * then a reserved one (a spill, counted); then an elastic instance that said
 * it is overloaded but still has room. */
fl_inst *fl_dispatch_pick(fl_route_fn *fn)
{
	uint64_t now = 0;
	int tries, pass;

	for (pass = 0; pass < 3; pass++) {
		/* A lost race against another thread just means looking again. */
		for (tries = 0; tries < 4; tries++) {
			fl_inst *best = NULL;
			int best_load = 0, k;
			for (k = 0; k < fn->ninst; k++) {
				fl_inst *i = fn->inst[k];
				int load;
				if (atomic_load_explicit(&i->gone, memory_order_relaxed))
					continue;
				if ((pass == 1) != (i->reserved != 0))
					continue;
				if (pass != 1 && (pass == 2) != overloaded(i, &now))
					continue;
				load = atomic_load_explicit(&i->inflight, memory_order_relaxed);
				if (i->concurrency && load >= (int)i->concurrency)
					continue;
				if (best == NULL || load < best_load) {
					best = i;
					best_load = load;
				}
			}
			if (best == NULL)
				break;
			if (try_take(best)) {
				atomic_fetch_add_explicit(&fn->stats->inflight, 1,
							  memory_order_relaxed);
				if (pass == 1)
					atomic_fetch_add_explicit(&fn->stats->spills, 1,
								  memory_order_relaxed);
				return best;
			}
		}
	}
	return NULL;
}

void fl_dispatch_overloaded(fl_route_fn *fn, fl_inst *inst)
{
	atomic_store_explicit(&inst->overloaded_until_ms, fl_now_ms() + FL_OVERLOAD_MS,
			      memory_order_relaxed);
	atomic_fetch_add_explicit(&fn->stats->overloads, 1, memory_order_relaxed);
}

int fl_dispatch_put(fl_route_fn *fn, fl_inst *inst)
{
	int before = atomic_fetch_sub_explicit(&inst->inflight, 1, memory_order_acq_rel);

	atomic_fetch_sub_explicit(&fn->stats->inflight, 1, memory_order_relaxed);
	return inst->concurrency && before >= (int)inst->concurrency &&
	       atomic_load_explicit(&fn->stats->queued, memory_order_relaxed) > 0;
}

void fl_dispatch_release(fl_route_fn *fn, fl_inst *inst)
{
	if (fl_dispatch_put(fn, inst))
		fl_gateway_kick();
}
