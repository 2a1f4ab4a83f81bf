/* metrics.h -- the Prometheus text exposition of the gateway's /metrics. */
#ifndef FL_METRICS_H
#define FL_METRICS_H

#include "core/buf.h"
#include "gateway/snapshot.h"

/* Appends the metrics of every function in s to out (text format 0.0.4).
 * Returns 0 or -ENOMEM. */
int fl_metrics_render(fl_buf *out, const fl_snapshot *s);

/* Another part of flint appends its own metrics to every render: cb(ctx, out)
 * with out a fl_buf *, called on gateway threads. Set it before the gateway
 * starts. */
void fl_metrics_set_extra(void (*cb)(void *ctx, void *out), void *ctx);

#endif
