/* probe.c -- one readiness check of an instance: TCP, HTTP or gRPC health. */
#include "control/probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "runtime/netns.h"

struct fl_probe {
	uv_tcp_t tcp;
	uv_timer_t timer; /* the deadline, when one was given */
	int handles;	  /* open handles; p is freed when the last one is closed */
	uv_connect_t creq;
	enum fl_health_type type;
	char *path;
	int port;
	fl_probe_cb cb;
	void *ctx;
	int done, cancelled;
	fl_buf in;
};

static void closed(uv_handle_t *h)
{
	fl_probe *p = h->data;

	if (--p->handles > 0)
		return;
	fl_buf_free(&p->in);
	free(p->path);
	free(p);
}

static void finish(fl_probe *p, int ok)
{
	if (p->done)
		return;
	p->done = 1;
	if (!p->cancelled)
		p->cb(p->ctx, ok);
	if (p->handles == 2)
		uv_close((uv_handle_t *)&p->timer, closed);
	uv_close((uv_handle_t *)&p->tcp, closed);
}

/* No verdict in time: an instance that accepts but never answers is not healthy. */
static void on_deadline(uv_timer_t *t)
{
	finish(t->data, 0);
}

void fl_probe_cancel(fl_probe *p)
{
	p->cancelled = 1;
	finish(p, 0);
}

/* The gRPC answer we wait for: a DATA frame on stream 1 carrying the message
 * HealthCheckResponse{status: SERVING}: 5-byte gRPC prefix, then 08 01. Other
 * frames (SETTINGS, WINDOW_UPDATE, HEADERS) are skipped; HPACK is never
 * decoded. A RST_STREAM or GOAWAY means not ready (yet). */
static int grpc_verdict(const fl_buf *b)
{
	size_t off = 24 * 0; /* the server sends no preface of its own */

	while (off + 9 <= b->len) {
		const unsigned char *f = (const unsigned char *)b->p + off;
		size_t len = ((size_t)f[0] << 16) | ((size_t)f[1] << 8) | f[2];
		unsigned type = f[3];
		uint32_t sid = (((uint32_t)f[5] & 0x7f) << 24) | ((uint32_t)f[6] << 16) |
			       ((uint32_t)f[7] << 8) | f[8];
		if (off + 9 + len > b->len)
			return -1; /* incomplete */
		if (type == NGHTTP2_DATA && sid == 1) {
			const unsigned char *d = f + 9;
			return len == 7 && d[0] == 0 && d[4] == 2 && d[5] == 0x08 && d[6] == 0x01;
		}
		if (type == NGHTTP2_RST_STREAM || type == NGHTTP2_GOAWAY)
			return 0;
		if (type == NGHTTP2_HEADERS && sid == 1 && (f[4] & NGHTTP2_FLAG_END_STREAM))
			return 0; /* trailers-only: an error status, e.g. UNIMPLEMENTED */
		off += 9 + len;
	}
	return -1;
}

static void on_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
	fl_probe *p = h->data;

	(void)s;
	if (fl_buf_reserve(&p->in, 4096) < 0) {
		b->base = NULL;
		b->len = 0;
		return;
	}
	b->base = p->in.p + p->in.len;
	b->len = p->in.cap - p->in.len - 1;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	fl_probe *p = s->data;
	int v;

	(void)b;
	if (n < 0) {
		finish(p, 0);
		return;
	}
	p->in.len += (size_t)n;
	if (p->type == FL_HEALTH_HTTP) {
		/* "HTTP/1.x 2xx" is all we need. */
		if (p->in.len >= 12)
			finish(p, memcmp(p->in.p, "HTTP/1.", 7) == 0 && p->in.p[9] == '2');
		return;
	}
	v = grpc_verdict(&p->in);
	if (v >= 0)
		finish(p, v);
	else if (p->in.len > 65536)
		finish(p, 0);
}

/* Frames for one Health/Check call: preface, empty SETTINGS, HEADERS, and a
 * DATA frame with an empty HealthCheckRequest (service "" = the whole server). */
static int grpc_request(fl_probe *p, fl_buf *o)
{
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	static const unsigned char settings[9] = {0, 0, 0, NGHTTP2_SETTINGS, 0, 0, 0, 0, 0};
	static const unsigned char data[14] = {
	    0, 0, 5, NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, 0, 0, 0, 1, 0, 0, 0, 0, 0};
	char authority[32];
	nghttp2_nv nva[6];
	nghttp2_hd_deflater *d = NULL;
	uint8_t block[512];
	ssize_t n;
	unsigned char hdr[9];

#define NV(a, b) {(uint8_t *)(a), (uint8_t *)(b), strlen(a), strlen(b), NGHTTP2_NV_FLAG_NONE}
	snprintf(authority, sizeof(authority), "127.0.0.1:%d", p->port);
	nghttp2_nv tmp[6] = {NV(":method", "POST"),
			     NV(":scheme", "http"),
			     NV(":path", "/grpc.health.v1.Health/Check"),
			     NV(":authority", authority),
			     NV("content-type", "application/grpc"),
			     NV("te", "trailers")};
#undef NV
	memcpy(nva, tmp, sizeof(nva));
	if (nghttp2_hd_deflate_new(&d, 4096) != 0)
		return -1;
	n = nghttp2_hd_deflate_hd(d, block, sizeof(block), nva, 6);
	nghttp2_hd_deflate_del(d);
	if (n < 0)
		return -1;
	hdr[0] = 0;
	hdr[1] = (unsigned char)(n >> 8);
	hdr[2] = (unsigned char)n;
	hdr[3] = NGHTTP2_HEADERS;
	hdr[4] = NGHTTP2_FLAG_END_HEADERS;
	hdr[5] = hdr[6] = hdr[7] = 0;
	hdr[8] = 1;
	fl_buf_append(o, preface, sizeof(preface) - 1);
	fl_buf_append(o, settings, sizeof(settings));
	fl_buf_append(o, hdr, sizeof(hdr));
	fl_buf_append(o, block, (size_t)n);
	return fl_buf_append(o, data, sizeof(data));
}

static void on_connect(uv_connect_t *req, int status)
{
	fl_probe *p = req->data;
	fl_buf o = FL_BUF_INIT;
	uv_buf_t b;

	if (p->done)
		return;
	if (status < 0 || p->type == FL_HEALTH_TCP) {
		finish(p, status == 0);
		return;
	}
	if (p->type == FL_HEALTH_HTTP)
		fl_buf_printf(
		    &o, "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nUser-Agent: flint-health\r\n\r\n",
		    p->path, p->port);
	else if (grpc_request(p, &o) < 0) {
		fl_buf_free(&o);
		finish(p, 0);
		return;
	}
	/* A few hundred bytes on a fresh loopback socket: taken whole. */
	b = uv_buf_init(o.p, (unsigned)o.len);
	if (uv_try_write((uv_stream_t *)&p->tcp, &b, 1) != (int)o.len) {
		fl_buf_free(&o);
		finish(p, 0);
		return;
	}
	fl_buf_free(&o);
	uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
}

int fl_probe_start(uv_loop_t *loop, int netns, int port, enum fl_health_type type, const char *path,
		   uint64_t timeout_ms, fl_probe_cb cb, void *ctx, fl_probe **out)
{
	fl_probe *p = calloc(1, sizeof(*p));
	struct sockaddr_in a;
	int r;

	if (p == NULL)
		return -ENOMEM;
	p->type = type;
	p->port = port;
	p->cb = cb;
	p->ctx = ctx;
	p->path = path ? strdup(path) : NULL;
	r = fl_netns_tcp_init(loop, &p->tcp, netns);
	p->tcp.data = p;
	p->handles = 1;
	p->creq.data = p;
	uv_ip4_addr("127.0.0.1", port, &a);
	if (r == 0)
		r = uv_tcp_connect(&p->creq, &p->tcp, (const struct sockaddr *)&a, on_connect);
	if (r < 0) {
		p->cancelled = 1;
		p->done = 1;
		uv_close((uv_handle_t *)&p->tcp, closed);
		return r;
	}
	if (timeout_ms) {
		uv_timer_init(loop, &p->timer);
		p->timer.data = p;
		p->handles = 2;
		uv_timer_start(&p->timer, on_deadline, timeout_ms, 0);
	}
	*out = p;
	return 0;
}

int fl_probe_diag_open(int netns)
{
	return fl_netns_socket(netns, AF_NETLINK, SOCK_DGRAM, NETLINK_SOCK_DIAG);
}

int fl_probe_listening(int diag, int port)
{
	static uint32_t seq;
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} req;
	union {
		char b[1024];
		struct nlmsghdr align;
	} ans;

	/* An exact lookup (no NLM_F_DUMP) of 127.0.0.1:port against nothing: the kernel looks
	 * it up as a connection's local end, which only a listener (on that address or the
	 * wildcard) matches. The answer is queued before send returns. */
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.nh.nlmsg_seq = ++seq;
	req.r.sdiag_family = AF_INET;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = 1u << TCP_LISTEN;
	req.r.id.idiag_sport = htons((uint16_t)port);
	req.r.id.idiag_src[0] = htonl(INADDR_LOOPBACK);
	req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (send(diag, &req, sizeof(req), MSG_DONTWAIT) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recv(diag, ans.b, sizeof(ans.b), MSG_DONTWAIT);
		const struct nlmsghdr *h = &ans.align;
		if (n < 0)
			return -errno;
		if ((size_t)n < sizeof(*h) || h->nlmsg_len > (size_t)n)
			return -EPROTO;
		if (h->nlmsg_seq != seq)
			continue; /* the late answer to an earlier question */
		if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
			int err = ((const struct nlmsgerr *)NLMSG_DATA(h))->error;
			return err == -ENOENT ? 0 : err < 0 ? err : -EPROTO;
		}
		if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
		    h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
			return ((const struct inet_diag_msg *)NLMSG_DATA(h))->idiag_state ==
			       TCP_LISTEN;
		return -EPROTO;
	}
}
