/* netns.h -- network namespaces for functions deployed with `network: isolated`.
 *
 * Such a function's instances share one network namespace of their own, made once per
 * function, holding nothing but a loopback interface: they listen on 127.0.0.1 inside it
 * and cannot reach the host (flint's admin API, other functions, anything else). flint
 * reaches them by creating its sockets inside that namespace (a socket belongs for life to
 * the namespace it was created in) and connecting from the host side as usual. A namespace
 * is referred to by a descriptor and ends when its last descriptor and process are gone,
 * so nothing is left behind by a crash.
 */
#ifndef FL_NETNS_H
#define FL_NETNS_H

#include <uv.h>

/* Remembers the calling thread's network namespace as the host's (the one sockets return
 * to). Call once at start-up, before any thread exists. Returns 0 or -errno. */
int fl_netns_init(void);

/* Makes a new network namespace with its loopback interface up and returns a descriptor
 * for it (close-on-exec), or -errno. The calling thread is back in the host's namespace
 * when this returns (it aborts the process if it cannot get back: a thread stuck in a
 * function's namespace would send the wrong traffic there). Needs CAP_SYS_ADMIN. */
int fl_netns_create(void);

/* A non-blocking, close-on-exec socket(domain, type, protocol) created inside the
 * namespace ns; ns < 0 means the host's. Returns the descriptor or -errno. Safe from any
 * thread; the calling thread is back in the host's namespace when this returns. */
int fl_netns_socket(int ns, int domain, int type, int protocol);

/* uv_tcp_init of tcp on loop, with its socket made inside the namespace ns when ns >= 0
 * (for a uv_tcp_connect next). tcp is initialized even on failure: close it with uv_close
 * either way. Returns 0 or -errno. */
int fl_netns_tcp_init(uv_loop_t *loop, uv_tcp_t *tcp, int ns);

/* Joins the namespace ns for good (in a child about to exec). Returns 0 or -errno. */
int fl_netns_enter(int ns);

#endif
