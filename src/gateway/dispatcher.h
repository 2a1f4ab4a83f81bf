/* dispatcher.h -- see gw.h: fl_dispatch_pick / fl_dispatch_release. This header
 * exists so unit tests can include the dispatcher alone. */
#ifndef FL_DISPATCHER_H
#define FL_DISPATCHER_H

#include "gateway/snapshot.h"

fl_inst *fl_dispatch_pick(fl_route_fn *fn);
/* Returns 1 if the release freed room an instance at its cap did not have
 * (callers then retry held requests), else 0. */
int fl_dispatch_put(fl_route_fn *fn, fl_inst *inst);

#endif
