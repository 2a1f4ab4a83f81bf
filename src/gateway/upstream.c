/* upstream.c -- HTTP/1.1 connections to instances, kept alive in per-thread
 * pools (one idle list per instance per thread, so no lock is ever taken). */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "gateway/gw.h"
#include "runtime/netns.h"

enum up_state { UP_CONNECTING, UP_BUSY, UP_IDLE, UP_CLOSING };

struct gw_up {
	void (*drain)(uv_stream_t *); /* first: fl_gw__write's drain hook */
	uv_tcp_t tcp;
	uv_connect_t creq;
	fl_gw *gw;
	fl_inst *inst; /* one reference held */
	void *owner;
	const struct gw_up_ops *ops;
	enum up_state state;
	int reused;
	int reading;
	fl_list link;	   /* gw->ups */
	fl_list idle_link; /* inst->idle[gw->idx] while idle */
};

static void up_closed(uv_handle_t *h)
{
	gw_up *u = h->data;

	fl_inst_unref(u->inst);
	free(u);
}

static void up_close(gw_up *u)
{
	if (u->state == UP_CLOSING)
		return;
	if (u->state == UP_IDLE)
		fl_list_remove(&u->idle_link);
	u->state = UP_CLOSING;
	u->owner = NULL;
	fl_list_remove(&u->link);
	uv_close((uv_handle_t *)&u->tcp, up_closed);
}

static void up_drain(uv_stream_t *s)
{
	gw_up *u = s->data;

	if (u->state == UP_BUSY && u->owner && u->ops->on_drain)
		u->ops->on_drain(u->owner);
}

static void up_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	gw_up *u = s->data;
	fl_gw *gw = u->gw;

	if (n > 0 && u->state == UP_BUSY && u->owner) {
		u->ops->on_data(u->owner, buf->base, (size_t)n);
	} else if (n < 0 && u->state == UP_BUSY && u->owner) {
		void *c = u->owner;
		const struct gw_up_ops *ops = u->ops;
		/* The owner decides: it releases (closes) us from on_eof. */
		ops->on_eof(c, (int)n);
	} else if (n != 0 && u->state == UP_IDLE) {
		/* An idle connection that speaks or closes is of no further use. */
		up_close(u);
	}
	if (buf->base == gw->rbuf)
		gw->rbuf_busy = 0;
	else
		free(buf->base);
}

static void up_connected(uv_connect_t *req, int status)
{
	gw_up *u = req->data;

	if (u->state == UP_CLOSING)
		return;
	if (status < 0) {
		void *c = u->owner;
		if (c)
			u->ops->on_eof(c, status);
		else
			up_close(u);
		return;
	}
	u->state = UP_BUSY;
	uv_tcp_nodelay(&u->tcp, 1);
	u->reading = 1;
	uv_read_start((uv_stream_t *)&u->tcp, fl_gw__alloc, up_read);
	if (u->owner)
		u->ops->on_ready(u->owner);
}

gw_up *fl_up_get(fl_gw *gw, fl_inst *inst, void *owner, const struct gw_up_ops *ops, int fresh)
{
	fl_list *idle = &inst->idle[gw->idx];
	gw_up *u;
	int r;

	if (!fresh && !fl_list_empty(idle)) {
		u = fl_container_of(idle->next, gw_up, idle_link);
		fl_list_remove(&u->idle_link);
		u->state = UP_BUSY;
		u->owner = owner;
		u->ops = ops;
		u->reused = 1;
		return u;
	}
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return NULL;
	u->drain = up_drain;
	u->gw = gw;
	u->inst = inst;
	fl_inst_ref(inst);
	u->owner = owner;
	u->ops = ops;
	u->state = UP_CONNECTING;
	fl_list_init(&u->idle_link);
	fl_list_insert_tail(&gw->ups, &u->link);
	r = fl_netns_tcp_init(&gw->loop, &u->tcp, inst->netns);
	u->tcp.data = u;
	u->creq.data = u;
	if (r == 0)
		r = uv_tcp_connect(&u->creq, &u->tcp, (const struct sockaddr *)&inst->addr,
				   up_connected);
	if (r < 0) {
		fl_list_remove(&u->link);
		u->state = UP_CLOSING;
		uv_close((uv_handle_t *)&u->tcp, up_closed);
		return NULL;
	}
	return u;
}

int fl_up_ready(const gw_up *u)
{
	return u->state == UP_BUSY;
}

int fl_up_reused(const gw_up *u)
{
	return u->reused;
}

uv_stream_t *fl_up_stream(gw_up *u)
{
	return (uv_stream_t *)&u->tcp;
}

void fl_up_read_start(gw_up *u)
{
	if (!u->reading && u->state == UP_BUSY) {
		u->reading = 1;
		uv_read_start((uv_stream_t *)&u->tcp, fl_gw__alloc, up_read);
	}
}

void fl_up_read_stop(gw_up *u)
{
	if (u->reading) {
		u->reading = 0;
		uv_read_stop((uv_stream_t *)&u->tcp);
	}
}

void fl_up_release(gw_up *u, int keep)
{
	fl_gw *gw = u->gw;

	if (u->state == UP_CLOSING)
		return;
	if (u->state == UP_CONNECTING) {
		/* up_connected will see UP_CLOSING; uv_close cancels the connect. */
		keep = 0;
	}
	if (!keep || gw->draining || atomic_load(&u->inst->gone) || u->tcp.write_queue_size != 0) {
		up_close(u);
		return;
	}
	u->state = UP_IDLE;
	u->owner = NULL;
	u->ops = NULL;
	/* Keep reading while idle so a close by the instance is noticed at once. */
	if (!u->reading) {
		u->reading = 1;
		uv_read_start((uv_stream_t *)&u->tcp, fl_gw__alloc, up_read);
	}
	fl_list_insert_tail(&u->inst->idle[gw->idx], &u->idle_link);
}

void fl_up_sweep(fl_gw *gw, int all)
{
	fl_list *l, *next;

	for (l = gw->ups.next; l != &gw->ups; l = next) {
		gw_up *u = fl_container_of(l, gw_up, link);
		next = l->next;
		if (u->state == UP_IDLE && (all || atomic_load(&u->inst->gone)))
			up_close(u);
		else if (all && u->state != UP_CLOSING && u->owner == NULL)
			up_close(u);
	}
}
