/* netns.c -- network namespaces of isolated functions: creation, sockets inside them. */
#include "runtime/netns.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int host_ns = -1;

int fl_netns_init(void)
{
	if (host_ns >= 0)
		return 0;
	host_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	return host_ns < 0 ? -errno : 0;
}

/* Back to the host's namespace; there is no safe way on if that fails. */
static void back_home(void)
{
	if (setns(host_ns, CLONE_NEWNET) < 0) {
		fl_error("netns", "cannot return to the host's network namespace: %s",
			 strerror(errno));
		abort();
	}
}

/* Sets the loopback interface of the current namespace up. */
static int lo_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;

	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		r = -errno;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (r == 0 && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		r = -errno;
	close(fd);
	return r;
}

int fl_netns_create(void)
{
	int fd = -1, r;

	if (host_ns < 0 && (r = fl_netns_init()) < 0)
		return r;
	/* unshare moves only the calling thread (a network namespace is per thread). */
	if (unshare(CLONE_NEWNET) < 0)
		return -errno;
	r = lo_up();
	if (r == 0) {
		fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			r = -errno;
	}
	back_home();
	return r < 0 ? r : fd;
}

int fl_netns_socket(int ns, int domain, int type, int protocol)
{
	int fd, r;

	type |= SOCK_NONBLOCK | SOCK_CLOEXEC;
	if (ns < 0) {
		fd = socket(domain, type, protocol);
		return fd < 0 ? -errno : fd;
	}
	if (host_ns < 0)
		return -EINVAL;
	if (setns(ns, CLONE_NEWNET) < 0)
		return -errno;
	fd = socket(domain, type, protocol);
	r = fd < 0 ? -errno : fd;
	back_home();
	return r;
}

int fl_netns_tcp_init(uv_loop_t *loop, uv_tcp_t *tcp, int ns)
{
	int fd, r;

	r = uv_tcp_init(loop, tcp);
	if (r < 0 || ns < 0)
		return r;
	fd = fl_netns_socket(ns, AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return fd;
	r = uv_tcp_open(tcp, fd);
	if (r < 0)
		close(fd);
	return r;
}

int fl_netns_enter(int ns)
{
	return setns(ns, CLONE_NEWNET) < 0 ? -errno : 0;
}
