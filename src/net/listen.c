/* listen.c -- listening sockets: address parsing, SO_REUSEPORT listeners, free ports. */
#include "net/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Parses a decimal port of 1-5 digits into *port. Returns 0 or -EINVAL. */
static int parse_port(const char *s, int *port)
{
	int v = 0;
	size_t i;

	if (*s == '\0' || strlen(s) > 5)
		return -EINVAL;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*port = v;
	return 0;
}

static void set_any(struct sockaddr_storage *ss, socklen_t *len, int port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_ANY);
	sin->sin_port = htons((uint16_t)port);
	*len = sizeof(*sin);
}

/* Resolves a host name (e.g. "localhost") with the resolver; numeric forms were
 * tried before. The first answer wins, as for most servers given a name. */
static int resolve(const char *host, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints, *res = NULL;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
	if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
		return -EINVAL;
	if (res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		return -EINVAL;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int fl_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *colon, *portstr;
	size_t hlen;
	int port;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	if (parse_port(s, &port) == 0) {
		set_any(ss, len, port);
		return 0;
	}
	if (s[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		const char *end = strchr(s, ']');

		if (end == NULL || end[1] != ':' || parse_port(end + 2, &port) < 0)
			return -EINVAL;
		hlen = (size_t)(end - s - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		memset(ss, 0, sizeof(*ss));
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -EINVAL;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	colon = strrchr(s, ':');
	if (colon == NULL)
		return -EINVAL;
	portstr = colon + 1;
	if (parse_port(portstr, &port) < 0)
		return -EINVAL;
	hlen = (size_t)(colon - s);
	if (hlen == 0 || (hlen == 1 && s[0] == '*')) {
		set_any(ss, len, port);
		return 0;
	}
	/* A bare IPv6 address must be bracketed, or its last group reads as a port. */
	if (hlen >= sizeof(host) || memchr(s, ':', hlen) != NULL)
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	{
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		memset(ss, 0, sizeof(*ss));
		if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			sin->sin_port = htons((uint16_t)port);
			*len = sizeof(*sin);
			return 0;
		}
	}
	return resolve(host, portstr, ss, len);
}

int fl_listen_tcp(const char *addr, int reuseport, int backlog, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = -1, one = 1, rc;

	if (fl_parse_addr(addr, &ss, &len) < 0) {
		snprintf(err, errlen,
			 "invalid listen address \"%s\": expected HOST:PORT, :PORT, PORT or "
			 "[IPV6]:PORT",
			 addr ? addr : "");
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create a socket for %s: %s", addr, strerror(-rc));
		goto fail;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)) {
		rc = -errno;
		snprintf(err, errlen, "cannot set socket options for %s: %s", addr, strerror(-rc));
		goto fail;
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(-rc));
		goto fail;
	}
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Tells whether 127.0.0.1:port can be bound right now. No SO_REUSEADDR: a port
 * with connections in TIME_WAIT would refuse a program that does not set it,
 * so such a port does not count as free. */
static int port_free(int port)
{
	struct sockaddr_in sin;
	int fd, ok;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	close(fd);
	return ok;
}

int fl_pick_port(int lo, int hi, int *cursor)
{
	int n, start, i, port;

	if (lo < 1 || hi > 65535 || lo > hi)
		return -EADDRINUSE;
	n = hi - lo + 1;
	start = (*cursor < lo || *cursor > hi) ? 0 : *cursor - lo + 1;
	for (i = 0; i < n; i++) {
		port = lo + (start + i) % n;
		if (port_free(port)) {
			*cursor = port;
			return port;
		}
	}
	return -EADDRINUSE;
}
