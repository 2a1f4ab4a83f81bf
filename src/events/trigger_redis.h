/* trigger_redis.h -- a Redis Streams trigger: a consumer group whose entries
 * become durable async requests, acknowledged only once they succeeded. */
#ifndef FL_TRIGGER_REDIS_H
#define FL_TRIGGER_REDIS_H

#include <jansson.h>

#include "core/buf.h"
#include "events/async.h"

typedef struct fl_trigger_redis fl_trigger_redis;

/* Starts consuming for function fn as spec (a validated `redis: {...}` object,
 * defaults written out; a reference is taken) says, on a thread of its own.
 * Connecting happens on that thread: an unreachable Redis is retried with
 * back-off, never an error here. Returns the consumer (never NULL). */
fl_trigger_redis *fl_trigger_redis_start(fl_async *a, const char *fn, json_t *spec);

/* Stops the consumer, waits for its thread (a blocking read is interrupted)
 * and frees it. Entries read but not yet acknowledged stay pending in Redis
 * and are taken up again by the next consumer of the group. */
void fl_trigger_redis_stop(fl_trigger_redis *r);

/* Thread-safe: sets "state", "fired" (entries received) and the other
 * counters of r on the listing object j. */
void fl_trigger_redis_info(fl_trigger_redis *r, json_t *j);

/* Thread-safe: appends r's Prometheus samples (no HELP/TYPE lines; see
 * fl_trigger_redis_metrics_head) to out. */
void fl_trigger_redis_metrics(fl_trigger_redis *r, fl_buf *out);
/* Appends the HELP/TYPE lines of the samples above. */
void fl_trigger_redis_metrics_head(fl_buf *out);

#endif
