/* dispatcher.h -- see gw.h: fl_dispatch_pick / fl_dispatch_release. This header
 * exists so unit tests can include the dispatcher alone. */
#ifndef FL_DISPATCHER_H
#define FL_DISPATCHER_H

#include "gateway/snapshot.h"

/* How long an instance that signalled overload gets no new requests. */
#define FL_OVERLOAD_MS 1000

/* Picks an instance with room and counts one request on it (see the order in
 * dispatcher.c); NULL if none has room. */
fl_inst *fl_dispatch_pick(fl_route_fn *fn);
/* inst answered 429/503, RESOURCE_EXHAUSTED/UNAVAILABLE or X-Flint-Overloaded:
 * steer new requests away from it for FL_OVERLOAD_MS and count it. */
void fl_dispatch_overloaded(fl_route_fn *fn, fl_inst *inst);
/* Returns 1 if the release freed room an instance at its cap did not have
 * (callers then retry held requests), else 0. */
int fl_dispatch_put(fl_route_fn *fn, fl_inst *inst);

#endif
