/* probe.h -- one readiness check of an instance on 127.0.0.1:PORT: a TCP
 * connect, an HTTP GET answered 2xx, or the standard gRPC health service
 * (grpc.health.v1.Health/Check) answering SERVING. Control thread only. */
#ifndef FL_PROBE_H
#define FL_PROBE_H

#include <uv.h>

#include "control/spec.h"

typedef struct fl_probe fl_probe;

/* Receives the outcome once: ok is 1 when the instance is ready. */
typedef void (*fl_probe_cb)(void *ctx, int ok);

/* Starts one check. netns is the instance's network namespace (runtime/netns.h), -1 for
 * the host's. path is the HTTP path (FL_HEALTH_HTTP; copied). timeout_ms > 0
 * makes a check without a verdict by then fail (0: no deadline; a refused or reset
 * connection fails at once either way). On success returns 0 and *out, and cb will be
 * called exactly once unless the probe is cancelled first. Returns -errno if it could
 * not start (cb is not called). */
int fl_probe_start(uv_loop_t *loop, int netns, int port, enum fl_health_type type, const char *path,
		   uint64_t timeout_ms, fl_probe_cb cb, void *ctx, fl_probe **out);

/* Abandons a check under way: cb is not called; p is freed by the probe. */
void fl_probe_cancel(fl_probe *p);

/* A socket for fl_probe_listening() in the network namespace netns (-1: the host's):
 * NETLINK_SOCK_DIAG, non-blocking, close-on-exec. Returns it or -errno. */
int fl_probe_diag_open(int netns);

/* Is a TCP socket listening on 127.0.0.1:port (or on the wildcard address) in diag's
 * namespace? Asks the kernel (sock_diag), without connecting: no connection reaches the
 * instance, and it takes a few microseconds where a loopback connect takes tens.
 * Synchronous. Returns 1 yes, 0 no, -errno when the kernel could not say. */
int fl_probe_listening(int diag, int port);

#endif
