/* listen.h -- listening sockets: address parsing and SO_REUSEPORT sockets. */
#ifndef FL_LISTEN_H
#define FL_LISTEN_H

#include <sys/socket.h>

/* Parses "HOST:PORT", ":PORT" (all addresses) or "PORT" into *ss (IPv4 or IPv6,
 * "[::1]:80" form for IPv6). Returns 0 or -EINVAL. */
int fl_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* Creates a non-blocking, close-on-exec TCP socket bound to addr and listening,
 * with SO_REUSEADDR, and SO_REUSEPORT when reuseport is set (so each gateway
 * thread can own a listener of its own on the same port). Returns the fd or
 * -errno; err gets a sentence such as "cannot listen on 127.0.0.1:8080: Address
 * already in use". */
int fl_listen_tcp(const char *addr, int reuseport, int backlog, char *err, size_t errlen);

/* Finds a free TCP port on 127.0.0.1 in [lo, hi], starting after *cursor and
 * wrapping; *cursor is advanced. Freedom is checked by binding. Returns the port
 * or -EADDRINUSE when none is free. */
int fl_pick_port(int lo, int hi, int *cursor);

#endif
