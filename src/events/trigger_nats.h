/* trigger_nats.h -- a NATS trigger: core subjects (with queue groups and
 * request/reply) or a JetStream durable consumer, feeding durable async
 * requests. */
#ifndef FL_TRIGGER_NATS_H
#define FL_TRIGGER_NATS_H

#include <jansson.h>

#include "core/buf.h"
#include "events/async.h"

typedef struct fl_trigger_nats fl_trigger_nats;

/* Starts consuming for function fn as spec (a validated `nats: {...}` object,
 * defaults written out; a reference is taken) says, on a thread of its own;
 * gw_base ("http://127.0.0.1:8080") is where request/reply calls the function.
 * An unreachable server or a missing stream is retried, never an error here.
 * Returns the consumer (never NULL). */
fl_trigger_nats *fl_trigger_nats_start(fl_async *a, const char *fn, json_t *spec,
				       const char *gw_base);

/* Stops the consumer: no new messages are taken, a request/reply call under
 * way is abandoned, its thread is joined, everything is freed. JetStream
 * messages not acknowledged yet are redelivered by the server later. */
void fl_trigger_nats_stop(fl_trigger_nats *n);

/* Thread-safe: sets "state", "fired" (messages received) and the other
 * counters of n on the listing object j. */
void fl_trigger_nats_info(fl_trigger_nats *n, json_t *j);

/* Thread-safe: appends n's Prometheus samples to out; the _head variant the
 * HELP/TYPE lines, once for all NATS triggers. */
void fl_trigger_nats_metrics(fl_trigger_nats *n, fl_buf *out);
void fl_trigger_nats_metrics_head(fl_buf *out);

#endif
