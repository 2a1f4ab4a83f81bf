/* metrics.h -- the Prometheus text exposition of the gateway's /metrics. */
#ifndef FL_METRICS_H
#define FL_METRICS_H

#include "core/buf.h"
#include "gateway/snapshot.h"

/* Appends the metrics of every function in s to out (text format 0.0.4).
 * Returns 0 or -ENOMEM. */
int fl_metrics_render(fl_buf *out, const fl_snapshot *s);

#endif
