/* gateway.c -- gateway threads: loops, listeners, wake-ups, snapshot hand-over. */
#include "gateway/gateway.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "gateway/gw.h"
#include "net/listen.h"

static fl_gw *gws;
static int ngw;
static struct fl_gw_opts opts;

static void refresh_snapshot(fl_gw *gw);

gw_snapref *fl_gw__snap_use(fl_gw *gw)
{
	/* A request that starts now sees every function deployed before it was sent, even
	 * if this thread's wake-up for the new snapshot has not run yet (a deploy answers
	 * once the snapshot is published). */
	if (gw->cur->snap->gen != fl_snapshot_current_gen())
		refresh_snapshot(gw);
	gw->cur->users++;
	return gw->cur;
}

static void snapref_free(gw_snapref *r)
{
	fl_list_remove(&r->link);
	fl_snapshot_unref(r->snap);
	free(r);
}

void fl_gw__snap_done(fl_gw *gw, gw_snapref *r)
{
	if (--r->users == 0 && r != gw->cur)
		snapref_free(r);
}

void fl_gw__need(fl_gw *gw, const fl_route_fn *fn, int again)
{
	if (again && fn->n_starting > 0)
		return;
	gw->opts->need(gw->opts->ctx, fn->name, strlen(fn->name));
}

int fl_gw__snap_move(fl_gw *gw, gw_snapref **sref, fl_route_fn **fn, const char *name, size_t len,
		     int *queued)
{
	gw_snapref *old = *sref;
	fl_route_fn *nfn;

	if (old == gw->cur)
		return 0;
	*sref = fl_gw__snap_use(gw);
	nfn = fl_snapshot_find((*sref)->snap, name, len);
	/* The old function's counters may be other ones (the function was
	 * removed and added again): the request waits on the new one now. */
	if (*queued && (nfn == NULL || nfn->stats != (*fn)->stats)) {
		atomic_fetch_sub(&(*fn)->stats->queued, 1);
		if (nfn)
			atomic_fetch_add(&nfn->stats->queued, 1);
		else
			*queued = 0;
	}
	*fn = nfn;
	if (old)
		fl_gw__snap_done(gw, old);
	return nfn ? 0 : -ENOENT;
}

/* Takes the newest snapshot if it changed; old ones live on while requests use them. */
static void refresh_snapshot(fl_gw *gw)
{
	fl_snapshot *s = fl_snapshot_acquire();
	gw_snapref *r;

	if (s == NULL)
		return;
	if (gw->cur && gw->cur->snap == s) {
		fl_snapshot_unref(s);
		return;
	}
	r = fl_xcalloc(1, sizeof(*r));
	r->snap = s;
	fl_list_init(&r->link);
	if (gw->cur) {
		gw_snapref *old = gw->cur;
		gw->cur = r;
		if (old->users == 0)
			snapref_free(old);
	} else {
		gw->cur = r;
	}
	fl_list_insert_tail(&gw->old_snaps, &r->link);
}

void fl_gw__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	fl_gw *gw = h->loop->data;

	(void)suggested;
	/* One read buffer per thread: a read is fully handled before the next one,
	 * and whatever must outlive it is copied. Idle connections hold nothing. */
	if (gw->rbuf_busy) {
		buf->base = malloc(GW_READ_BUF);
		buf->len = buf->base ? GW_READ_BUF : 0;
		return;
	}
	gw->rbuf_busy = 1;
	buf->base = gw->rbuf;
	buf->len = GW_READ_BUF;
}

struct gw_wreq {
	uv_write_t req;
	char data[];
};

static void write_done(uv_write_t *req, int status)
{
	uv_stream_t *s = req->handle;

	free(req);
	(void)status; /* errors surface on the read side, which closes the connection */
	if (s->data && s->write_queue_size < GW_WQ_HIGH / 2) {
		/* The owner (client or upstream) registered a drain hook in its type. */
		void (*drain)(uv_stream_t *) = *(void (**)(uv_stream_t *))s->data;
		if (drain)
			drain(s);
	}
}

int fl_gw__write(uv_stream_t *s, const uv_buf_t *bufs, unsigned n)
{
	size_t total = 0, off = 0;
	struct gw_wreq *w;
	unsigned i;
	uv_buf_t b;
	int r = 0;

	for (i = 0; i < n; i++)
		total += bufs[i].len;
	if (total == 0)
		return 0;
	if (s->write_queue_size == 0) {
		r = uv_try_write(s, bufs, n);
		if (r < 0 && r != UV_EAGAIN)
			return r;
		if (r > 0 && (size_t)r == total)
			return 0;
		if (r < 0)
			r = 0;
	}
	w = malloc(sizeof(*w) + total - (size_t)r);
	if (w == NULL)
		return UV_ENOMEM;
	/* Copy what uv_try_write did not take. */
	for (i = 0; i < n; i++) {
		size_t skip = 0, len = bufs[i].len;
		if ((size_t)r >= len) {
			r -= (int)len;
			continue;
		}
		skip = (size_t)r;
		r = 0;
		memcpy(w->data + off, bufs[i].base + skip, len - skip);
		off += len - skip;
	}
	b = uv_buf_init(w->data, (unsigned)off);
	r = uv_write(&w->req, s, &b, 1, write_done);
	if (r < 0)
		free(w);
	return r;
}

static void on_connection(uv_stream_t *server, int status)
{
	fl_gw *gw = server->loop->data;

	if (status < 0) {
		fl_warn("gateway", "accept failed: %s", uv_strerror(status));
		return;
	}
	fl_http1_accept(gw, server, NULL);
}

/* A listener of a function's dedicated port (thrift.port) on this thread. */
struct gw_dedicated {
	struct gw_dedicated *next;
	fl_gw *gw;
	uv_tcp_t tcp;
	int port, mark;
	char fn[64];
};

static void dedicated_closed(uv_handle_t *h)
{
	free(h->data);
}

static void on_dedicated(uv_stream_t *server, int status)
{
	struct gw_dedicated *d = server->data;

	if (status < 0) {
		fl_warn("gateway", "accept on port %d failed: %s", d->port, uv_strerror(status));
		return;
	}
	fl_http1_accept(d->gw, server, d->fn);
}

/* Opens and closes this thread's dedicated-port listeners to match the
 * snapshot: each thread has its own SO_REUSEPORT socket, as for the gateway port. */
static void reconcile_dedicated(fl_gw *gw, int close_all)
{
	const fl_snapshot *s = gw->cur ? gw->cur->snap : NULL;
	struct gw_dedicated *d, **pp;
	char addr[300], err[300];
	const char *colon = strrchr(opts.listen, ':');
	int i;

	for (d = gw->dedicated; d; d = d->next)
		d->mark = 0;
	for (i = 0; !close_all && s && i < s->nfn; i++) {
		const fl_route_fn *fn = s->fns[i];
		int fd;
		if (fn->thrift_port == 0)
			continue;
		for (d = gw->dedicated; d; d = d->next)
			if (d->port == fn->thrift_port && strcmp(d->fn, fn->name) == 0)
				break;
		if (d) {
			d->mark = 1;
			continue;
		}
		snprintf(addr, sizeof(addr), "%.*s:%d", colon ? (int)(colon - opts.listen) : 0,
			 opts.listen, fn->thrift_port);
		fd = fl_listen_tcp(addr, 1, 1024, err, sizeof(err));
		if (fd < 0) {
			if (gw->idx == 0)
				fl_error("gateway", "function %s: %s", fn->name, err);
			continue;
		}
		d = fl_xcalloc(1, sizeof(*d));
		d->gw = gw;
		d->port = fn->thrift_port;
		d->mark = 1;
		snprintf(d->fn, sizeof(d->fn), "%s", fn->name);
		uv_tcp_init(&gw->loop, &d->tcp);
		d->tcp.data = d;
		if (uv_tcp_open(&d->tcp, fd) < 0 ||
		    uv_listen((uv_stream_t *)&d->tcp, 1024, on_dedicated) < 0) {
			uv_close((uv_handle_t *)&d->tcp, dedicated_closed);
			continue;
		}
		d->next = gw->dedicated;
		gw->dedicated = d;
		if (gw->idx == 0)
			fl_info("gateway", "function %s: listening on %s", fn->name, addr);
	}
	for (pp = &gw->dedicated; (d = *pp) != NULL;) {
		if (d->mark) {
			pp = &d->next;
			continue;
		}
		*pp = d->next;
		uv_close((uv_handle_t *)&d->tcp, dedicated_closed);
	}
}

static void close_listener(fl_gw *gw)
{
	if (gw->listening) {
		gw->listening = 0;
		uv_close((uv_handle_t *)&gw->listener, NULL);
	}
}

static void on_wake(uv_async_t *a)
{
	fl_gw *gw = a->data;
	int p = atomic_exchange(&gw->pending, 0);
	fl_list *l, *next;

	if (p & GW_WAKE_SNAP) {
		refresh_snapshot(gw);
		if (!gw->draining)
			reconcile_dedicated(gw, 0);
		fl_up_sweep(gw, 0);
		fl_h2up_sweep(gw, 0);
	}
	if (p & (GW_WAKE_SNAP | GW_WAKE_KICK)) {
		/* Retry held requests in arrival order; a retry may remove itself. */
		for (l = gw->waiters.next; l != &gw->waiters; l = next) {
			gw_waiter *w = fl_container_of(l, gw_waiter, link);
			next = l->next;
			w->retry(w);
		}
		fl_h2_flush_all(gw);
	}
	if (p & GW_WAKE_OFFLOAD) {
		struct gw_offload_done *d, *dn;
		pthread_mutex_lock(&gw->off_mu);
		d = gw->off_head;
		gw->off_head = gw->off_tail = NULL;
		pthread_mutex_unlock(&gw->off_mu);
		for (; d; d = dn) {
			dn = d->next;
			fl_http1_offload_answer(d->cookie, d->status, d->ctype, d->body, d->len,
						d->headers);
			free(d->ctype);
			free(d->headers);
			free(d);
		}
	}
	if (p & (GW_WAKE_DRAIN | GW_WAKE_STOP)) {
		int force = (p & GW_WAKE_STOP) != 0;
		gw->draining = 1;
		close_listener(gw);
		reconcile_dedicated(gw, 1);
		for (l = gw->conns.next; l != &gw->conns; l = next) {
			next = l->next;
			fl_http1_drain(fl_http1_from_link(l), force);
		}
		fl_h2_flush_all(gw);
		if (force) {
			fl_up_sweep(gw, 1);
			fl_h2up_sweep(gw, 1);
			uv_close((uv_handle_t *)&gw->wake, NULL);
		}
	}
}

static void thread_main(void *arg)
{
	fl_gw *gw = arg;
	sigset_t all;

	/* Signals belong to the control thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	reconcile_dedicated(gw, 0);
	uv_run(&gw->loop, UV_RUN_DEFAULT);
	/* Let close callbacks of handles closed in the last iteration run. */
	uv_run(&gw->loop, UV_RUN_NOWAIT);
	fl_http1_thread_end();
}

static void wake_all(int bits)
{
	int i;

	for (i = 0; i < ngw; i++) {
		atomic_fetch_or(&gws[i].pending, bits);
		uv_async_send(&gws[i].wake);
	}
}

void fl_gateway_offload_done(int thread, void *cookie, int status, const char *ctype,
			     const char *body, size_t len, const char *headers)
{
	struct gw_offload_done *d;
	fl_gw *gw;

	if (thread < 0 || thread >= ngw)
		return;
	gw = &gws[thread];
	d = fl_xmalloc(sizeof(*d) + len + 1);
	d->next = NULL;
	d->cookie = cookie;
	d->status = status;
	d->ctype = fl_xstrdup(ctype ? ctype : "application/json");
	d->headers = headers ? fl_xstrdup(headers) : NULL;
	d->len = len;
	if (len)
		memcpy(d->body, body, len);
	d->body[len] = '\0';
	pthread_mutex_lock(&gw->off_mu);
	if (gw->off_tail)
		gw->off_tail->next = d;
	else
		gw->off_head = d;
	gw->off_tail = d;
	pthread_mutex_unlock(&gw->off_mu);
	atomic_fetch_or(&gw->pending, GW_WAKE_OFFLOAD);
	uv_async_send(&gw->wake);
}

void fl_gateway_notify(void)
{
	wake_all(GW_WAKE_SNAP);
}

void fl_gateway_kick(void)
{
	wake_all(GW_WAKE_KICK);
}

void fl_gateway_drain(void)
{
	wake_all(GW_WAKE_DRAIN);
}

long fl_gateway_active(void)
{
	long n = 0;
	int i;

	for (i = 0; i < ngw; i++)
		n += atomic_load(&gws[i].active);
	return n;
}

void fl_gateway_stop(void)
{
	int i;

	wake_all(GW_WAKE_STOP);
	for (i = 0; i < ngw; i++)
		uv_thread_join(&gws[i].thread);
}

int fl_gateway_start(const struct fl_gw_opts *o, char *err, size_t errlen)
{
	int i, r;

	opts = *o;
	if (opts.threads < 1 || opts.threads > FL_MAX_THREADS) {
		snprintf(err, errlen, "--threads must be between 1 and %d", FL_MAX_THREADS);
		return -EINVAL;
	}
	ngw = opts.threads;
	gws = fl_xcalloc((size_t)ngw, sizeof(*gws));
	for (i = 0; i < ngw; i++) {
		fl_gw *gw = &gws[i];
		gw->idx = i;
		gw->opts = &opts;
		gw->listen_fd = fl_listen_tcp(opts.listen, 1, 4096, err, errlen);
		if (gw->listen_fd < 0)
			return gw->listen_fd;
		fl_list_init(&gw->old_snaps);
		fl_list_init(&gw->waiters);
		fl_list_init(&gw->conns);
		fl_list_init(&gw->ups);
		fl_list_init(&gw->h2ups);
		fl_list_init(&gw->h2dirty);
		pthread_mutex_init(&gw->off_mu, NULL);
		gw->rbuf = fl_xmalloc(GW_READ_BUF);
		uv_loop_init(&gw->loop);
		gw->loop.data = gw;
		uv_async_init(&gw->loop, &gw->wake, on_wake);
		gw->wake.data = gw;
		uv_tcp_init(&gw->loop, &gw->listener);
		r = uv_tcp_open(&gw->listener, gw->listen_fd);
		if (r == 0)
			r = uv_listen((uv_stream_t *)&gw->listener, 4096, on_connection);
		if (r < 0) {
			snprintf(err, errlen, "cannot listen on %s: %s", opts.listen,
				 uv_strerror(r));
			return r;
		}
		gw->listening = 1;
		refresh_snapshot(gw);
	}
	for (i = 0; i < ngw; i++) {
		r = uv_thread_create(&gws[i].thread, thread_main, &gws[i]);
		if (r < 0) {
			snprintf(err, errlen, "cannot start gateway thread: %s", uv_strerror(r));
			return r;
		}
	}
	return 0;
}
