/* thrift.c -- the gateway's Thrift codec: framed, THeader and TTHeader calls
 * routed by the header or the multiplexed name without decoding bodies, one
 * call at a time per client connection (so pipelined calls are answered in
 * order), one outstanding call per pooled upstream connection; and plain
 * byte splicing for header-less clients on a function's dedicated port. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "gateway/dispatcher.h"
#include "gateway/gw.h"
#include "proto/thrift_wire.h"

#define TH_MAX_FRAME (16u << 20) /* when the function sets no limits.max_body */

typedef struct fl_thrift fl_thrift;

/* One call: a whole request frame, then a whole reply frame. */
typedef struct tcall {
	gw_waiter wait;
	fl_thrift *t;
	uint8_t *frame;
	size_t len;
	struct fl_tw_msg m; /* points into frame */
	char method[128];
	gw_snapref *sref;
	fl_route_fn *fn;
	fl_inst *inst;
	gw_up *up;
	fl_buf reply;
	int waiting, queued, held, cold, redispatched, written;
	int unwrap; /* TTHeader call sent to the instance as a framed message (see up_ready_) */
	uv_timer_t timer;
	uint64_t t_start, deadline_ms;
} tcall;

struct fl_thrift {
	fl_gw *gw;
	gw_conn *conn;
	uv_stream_t *tcp;
	const char *peer;
	char fixed[64];	 /* the dedicated port's function, or "" */
	char sticky[64]; /* the function of this connection's last routed call */
	fl_buf in;
	tcall *cur;
	int closing, framed, freeing;
	/* Splicing (a header-less client on a dedicated port). */
	int splice;
	gw_waiter swait;
	int swaiting, sheld;
	gw_snapref *ssref;
	fl_route_fn *sfn;
	fl_inst *sinst;
	gw_up *sup;
	int sready;
};

static void process(fl_thrift *t);
static void call_dispatch(tcall *k);
static void splice_dispatch(fl_thrift *t);

/* Marks the connection for closing; settle() closes it once the current
 * callback is done with t (closing frees t through the codec's free). */
static void close_conn(fl_thrift *t, const char *why)
{
	if (t->closing)
		return;
	t->closing = 1;
	if (why)
		fl_info("thrift", "closing the connection from %s: %s", t->peer, why);
}

/* The end of every callback that is not th_on_read (which returns -1 instead). */
static void settle(fl_thrift *t)
{
	if (t->closing && !t->freeing) {
		t->freeing = 1;
		fl_http1_close(t->conn);
	}
}

/* ---- calls ---- */

static void call_unhold(tcall *k)
{
	if (k->waiting) {
		fl_list_remove(&k->wait.link);
		k->waiting = 0;
	}
	if (k->queued) {
		atomic_fetch_sub(&k->fn->stats->queued, 1);
		k->queued = 0;
	}
}

/* outcome: 0 reply, 1 exception, 2 transport error (flint answered). */
static void call_account(tcall *k, int outcome)
{
	fl_fnstats *s;
	fl_fnshard *sh;

	if (k->fn == NULL)
		return;
	s = k->fn->stats;
	sh = fl_fnstats_shard(s, k->t->gw->idx);
	atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
	fl_ctr_add_own(&sh->thrift[outcome], 1);
	fl_fnstats_method(s, k->method, strlen(k->method), outcome);
	fl_hist_observe_own(&sh->latency, (fl_now_ns() - k->t_start) / 1000);
}

static void call_timer_closed(uv_handle_t *h)
{
	tcall *k = h->data;

	fl_buf_free(&k->reply);
	free(k->frame);
	free(k);
}

/* Ends the call (its answer, if any, has been written) and takes the next. */
static void call_end(tcall *k, int keep_up)
{
	fl_thrift *t = k->t;

	call_unhold(k);
	if (k->up) {
		fl_up_release(k->up, keep_up);
		k->up = NULL;
	}
	if (k->inst) {
		fl_dispatch_release(k->fn, k->inst);
		k->inst = NULL;
	}
	if (k->sref) {
		atomic_fetch_sub(&t->gw->active, 1);
		fl_gw__snap_done(t->gw, k->sref);
		k->sref = NULL;
	}
	uv_timer_stop(&k->timer);
	uv_close((uv_handle_t *)&k->timer, call_timer_closed);
	if (t->cur == k)
		t->cur = NULL;
	if (!t->closing)
		process(t);
}

/* Answers the call with a TApplicationException in the client's framing. */
static void call_fail(tcall *k, int type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void call_fail(tcall *k, int type, const char *fmt, ...)
{
	fl_thrift *t = k->t;
	fl_buf out = FL_BUF_INIT;
	char msg[300];
	va_list ap;
	uv_buf_t b;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (k->m.type != 4 && fl_tw_exception(&k->m, type, msg, &out) == 0) {
		b = uv_buf_init(out.p, (unsigned)out.len);
		if (fl_gw__write(t->tcp, &b, 1) < 0)
			t->closing = 1;
	}
	fl_buf_free(&out);
	call_account(k, 2);
	call_end(k, 0);
}

static void up_ready_(tcall *k);

static void up_ready(void *o)
{
	tcall *k = o;
	fl_thrift *t = k->t;

	up_ready_(k);
	settle(t);
}

/* Where the message starts in a THeader/TTHeader frame (after the header and,
 * when the payload is TTHeader-framed, its own length). */
static size_t payload_offset(const tcall *k)
{
	size_t off = 14 + 4 * (size_t)(((unsigned)k->frame[12] << 8) | k->frame[13]);

	return off + (k->m.payload_framed ? 4 : 0);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void up_ready_(tcall *k)
{
	uv_buf_t b[2];
	uint8_t len[4];
	unsigned nb = 1;

	b[0] = uv_buf_init((char *)k->frame, (unsigned)k->len);
	if (k->unwrap) {
		/* Kitex TTHeader is understood by Kitex servers only; every Thrift server
		 * (Kitex's included) reads framed messages. So the instance gets the bare
		 * message, framed; the routing facts of the header were used here, and
		 * the deadline it carried is enforced here. up_data wraps the reply. */
		size_t off = payload_offset(k);
		put_be32(len, (uint32_t)(k->len - off));
		b[0] = uv_buf_init((char *)len, 4);
		b[1] = uv_buf_init((char *)k->frame + off, (unsigned)(k->len - off));
		nb = 2;
	}
	if (fl_gw__write(fl_up_stream(k->up), b, nb) < 0) {
		call_fail(k, 6, "cannot write the call to instance i-%llu",
			  (unsigned long long)k->inst->id);
		return;
	}
	k->written = 1;
	if (k->m.type == 4) { /* oneway: no reply comes */
		call_account(k, 0);
		call_end(k, 1);
	}
}

static void up_data(void *o, const char *p, size_t n)
{
	tcall *k = o;
	fl_thrift *t = k->t;
	long size;
	uv_buf_t b;
	struct fl_tw_msg rm;
	const char *why;
	int outcome = 0;

	if (fl_buf_append(&k->reply, p, n) < 0) {
		call_fail(k, 6, "out of memory");
		settle(t);
		return;
	}
	size = fl_tw_frame_size((const uint8_t *)k->reply.p, k->reply.len,
				k->fn->max_body ? k->fn->max_body : TH_MAX_FRAME);
	if (size < 0) {
		call_fail(k, 6, "instance i-%llu sent an invalid reply frame",
			  (unsigned long long)k->inst->id);
		settle(t);
		return;
	}
	if (size == 0)
		return; /* more to come */
	/* The reply goes back byte for byte; it is read only to count outcomes. */
	if (fl_tw_parse((const uint8_t *)k->reply.p, (size_t)size, &rm, &why) == 0 && rm.type == 3)
		outcome = 1;
	/* The instance is free before its reply reaches the client, whose next
	 * call must find the room there. */
	call_account(k, outcome);
	fl_dispatch_release(k->fn, k->inst);
	k->inst = NULL;
	if (k->unwrap) {
		/* A framed reply to an unwrapped TTHeader call: the client gets it back in
		 * TTHeader with its own flags, seqid, protocol and payload form. */
		uint8_t h[22];
		size_t hn = 18, mlen = (size_t)size - 4;
		put_be32(h, (uint32_t)(14 + mlen + (k->m.payload_framed ? 4 : 0)));
		h[4] = 0x10;
		h[5] = 0x00;
		h[6] = (uint8_t)(k->m.hflags >> 8);
		h[7] = (uint8_t)k->m.hflags;
		put_be32(h + 8, k->m.hseqid);
		h[12] = 0;
		h[13] = 1; /* one word: protocol id, no transforms, two bytes of padding */
		h[14] = (uint8_t)k->m.proto;
		h[15] = h[16] = h[17] = 0;
		if (k->m.payload_framed) {
			put_be32(h + 18, (uint32_t)mlen);
			hn = 22;
		}
		uv_buf_t wb[2] = {uv_buf_init((char *)h, (unsigned)hn),
				  uv_buf_init(k->reply.p + 4, (unsigned)mlen)};
		if (fl_gw__write(t->tcp, wb, 2) < 0)
			t->closing = 1;
	} else {
		b = uv_buf_init(k->reply.p, (unsigned)size);
		if (fl_gw__write(t->tcp, &b, 1) < 0)
			t->closing = 1;
	}
	call_end(k, (size_t)size == k->reply.len);
	settle(t);
}

static void up_eof_(tcall *k, int err);

static void up_eof(void *o, int err)
{
	tcall *k = o;
	fl_thrift *t = k->t;

	up_eof_(k, err);
	settle(t);
}

static void up_eof_(tcall *k, int err)
{
	if (!k->written && k->redispatched < 3) {
		/* Nothing reached the instance: it is gone; try another. */
		fl_up_release(k->up, 0);
		k->up = NULL;
		atomic_store(&k->inst->gone, 1);
		atomic_store(&k->inst->failed, 1);
		fl_dispatch_release(k->fn, k->inst);
		k->inst = NULL;
		k->redispatched++;
		call_dispatch(k);
		return;
	}
	/* An instance that cuts a call is dying (or broken): no new call goes to it
	 * while the control thread replaces it. */
	atomic_store(&k->inst->gone, 1);
	atomic_store(&k->inst->failed, 1);
	/* Documented choice: a call cut by the instance gets an INTERNAL_ERROR
	 * exception (the client learns it failed and why), not a dropped connection. */
	call_fail(k, 6, "instance i-%llu of %s %s during the call (%s)",
		  (unsigned long long)k->inst->id, k->fn->name,
		  err == UV_EOF ? "closed the connection" : "failed", uv_strerror(err));
}

static void up_drain(void *o)
{
	(void)o;
}

static const struct gw_up_ops call_ops = {up_ready, up_data, up_eof, up_drain};

static void call_timeout(uv_timer_t *tm)
{
	tcall *k = tm->data;
	fl_thrift *t = k->t;

	if (k->waiting)
		call_fail(k, 6, "no instance of %s became ready in time", k->fn->name);
	else
		call_fail(k, 6, "timeout: %s did not answer within %llu ms", k->fn->name,
			  (unsigned long long)k->deadline_ms);
	settle(t);
}

static void call_retry(gw_waiter *w)
{
	tcall *k = fl_container_of(w, tcall, wait);
	fl_thrift *t = k->t;

	if (k->waiting)
		call_dispatch(k);
	settle(t);
}

static void call_dispatch(tcall *k)
{
	fl_gw *gw = k->t->gw;
	fl_route_fn *fn;
	fl_inst *inst;

	if (fl_gw__snap_move(gw, &k->sref, &k->fn, k->fn->name, strlen(k->fn->name), &k->queued) <
	    0) {
		call_unhold(k);
		call_fail(k, 1, "the function serving this call was removed");
		return;
	}
	fn = k->fn;
	if (fn->state == FL_FN_FAILING) {
		call_fail(k, 6, "function %s is not available: %s", fn->name,
			  fn->reason ? fn->reason : "its instances fail to start");
		return;
	}
	inst = fl_dispatch_pick(fn);
	if (inst == NULL) {
		int again = k->held;
		if (!k->held) {
			if (atomic_fetch_add(&fn->stats->queued, 1) >= (long)fn->queue_max) {
				atomic_fetch_sub(&fn->stats->queued, 1);
				call_fail(k, 6, "function %s is at capacity (queue.max %u)",
					  fn->name, fn->queue_max);
				return;
			}
			atomic_fetch_add(&fn->stats->held, 1);
			k->queued = k->held = 1;
		}
		if (!k->waiting) {
			k->waiting = 1;
			fl_list_insert_tail(&gw->waiters, &k->wait.link);
		}
		fl_gw__need(gw, fn, again);
		return;
	}
	call_unhold(k);
	k->inst = inst;
	k->written = 0;
	fl_buf_reset(&k->reply);
	k->up = fl_up_get(gw, inst, k, &call_ops, 0);
	if (k->up == NULL)
		call_fail(k, 6, "cannot connect to instance i-%llu", (unsigned long long)inst->id);
	else if (fl_up_ready(k->up))
		up_ready_(k);
}

/* The function for a call: ToService, then isn, then the multiplexed name's
 * service, then the dedicated port; each first as a declared Thrift service,
 * then as a function name. */
static fl_route_fn *route(fl_thrift *t, const struct fl_tw_msg *m, const fl_snapshot *s,
			  char *tried, size_t tlen)
{
	const char *cand[4];
	size_t cl[4];
	int n = 0, i;

	(void)t;
	if (m->to_service_len)
		cand[n] = m->to_service, cl[n++] = m->to_service_len;
	if (m->isn_len)
		cand[n] = m->isn, cl[n++] = m->isn_len;
	if ((cl[n] = fl_tw_mux_service(m)) > 0)
		cand[n++] = m->method;
	if (t->fixed[0])
		cand[n] = t->fixed, cl[n++] = strlen(t->fixed);
	else if (t->sticky[0])
		/* Clients send THeader info with the first call only (Python's does):
		 * later calls on the connection go where the first one went. */
		cand[n] = t->sticky, cl[n++] = strlen(t->sticky);
	tried[0] = '\0';
	for (i = 0; i < n; i++) {
		fl_route_fn *fn = fl_snapshot_find_service(s, cand[i], cl[i]);
		if (fn && fn->proto == FL_PROTO_THRIFT)
			return fn;
		fn = fl_snapshot_find(s, cand[i], cl[i]);
		if (fn && fn->proto == FL_PROTO_THRIFT)
			return fn;
		if (tried[0] == '\0')
			snprintf(tried, tlen, "%.*s", (int)cl[i], cand[i]);
	}
	return NULL;
}

static void call_start(fl_thrift *t, uint8_t *frame, size_t len)
{
	tcall *k = calloc(1, sizeof(*k));
	const char *why;
	char tried[128];
	uint64_t deadline;

	if (k == NULL) {
		free(frame);
		close_conn(t, "out of memory");
		return;
	}
	k->t = t;
	k->frame = frame;
	k->len = len;
	k->wait.retry = call_retry;
	fl_list_init(&k->wait.link);
	uv_timer_init(&t->gw->loop, &k->timer);
	k->timer.data = k;
	k->t_start = fl_now_ns();
	t->cur = k;
	if (fl_tw_parse(frame, len, &k->m, &why) < 0) {
		t->cur = NULL;
		uv_close((uv_handle_t *)&k->timer, call_timer_closed);
		close_conn(t, why);
		return;
	}
	snprintf(k->method, sizeof(k->method), "%.*s", (int)k->m.method_len, k->m.method);
	k->unwrap = k->m.framing == FL_TW_TTHEADER && k->m.proto != FL_TW_PROTOBUF;
	k->sref = fl_gw__snap_use(t->gw);
	atomic_fetch_add(&t->gw->active, 1);
	k->fn = route(t, &k->m, k->sref->snap, tried, sizeof(tried));
	if (k->fn == NULL) {
		call_fail(k, 1, "unknown service %s: no function declares it",
			  tried[0] ? tried : "(the call names no service)");
		return;
	}
	snprintf(t->sticky, sizeof(t->sticky), "%s", k->fn->name);
	deadline = k->fn->timeout_ms;
	if (k->m.timeout_ms && k->m.timeout_ms < deadline)
		deadline = k->m.timeout_ms;
	k->deadline_ms = deadline;
	uv_timer_start(&k->timer, call_timeout, deadline, 0);
	call_dispatch(k);
}

/* Takes the next whole frame, if no call is under way. */
static void process(fl_thrift *t)
{
	long size;
	uint8_t *frame;

	if (t->cur || t->closing || t->splice)
		return;
	size = fl_tw_frame_size((const uint8_t *)t->in.p, t->in.len, TH_MAX_FRAME);
	if (size < 0) {
		char why[96];
		snprintf(why, sizeof(why), "frame length %u is invalid or over %u bytes",
			 t->in.len >= 4
			     ? ((unsigned)(uint8_t)t->in.p[0] << 24) |
				   ((unsigned)(uint8_t)t->in.p[1] << 16) |
				   ((unsigned)(uint8_t)t->in.p[2] << 8) | (uint8_t)t->in.p[3]
			     : 0,
			 TH_MAX_FRAME);
		close_conn(t, why);
		return;
	}
	if (size == 0)
		return;
	frame = malloc((size_t)size);
	if (frame == NULL) {
		close_conn(t, "out of memory");
		return;
	}
	memcpy(frame, t->in.p, (size_t)size);
	fl_buf_consume(&t->in, (size_t)size);
	call_start(t, frame, (size_t)size);
}

/* ---- splicing: header-less clients on a dedicated port ---- */

static void splice_up_ready_(fl_thrift *t);

static void splice_up_ready(void *o)
{
	splice_up_ready_(o);
	settle(o);
}

static void splice_up_ready_(fl_thrift *t)
{
	uv_buf_t b;

	t->sready = 1;
	if (t->in.len) {
		b = uv_buf_init(t->in.p, (unsigned)t->in.len);
		if (fl_gw__write(fl_up_stream(t->sup), &b, 1) < 0) {
			close_conn(t, "cannot write to the instance");
			return;
		}
		fl_buf_reset(&t->in);
	}
}

static void splice_up_data(void *o, const char *p, size_t n)
{
	fl_thrift *t = o;
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);

	if (fl_gw__write(t->tcp, &b, 1) < 0) {
		close_conn(t, NULL);
		settle(t);
		return;
	}
	if (t->tcp->write_queue_size > GW_WQ_HIGH)
		fl_up_read_stop(t->sup);
}

static void splice_up_eof(void *o, int err)
{
	fl_thrift *t = o;

	(void)err;
	close_conn(t, NULL);
	settle(t);
}

static void splice_up_drain(void *o)
{
	(void)o;
}

static const struct gw_up_ops splice_ops = {splice_up_ready, splice_up_data, splice_up_eof,
					    splice_up_drain};

static void splice_retry(gw_waiter *w)
{
	fl_thrift *t = fl_container_of(w, fl_thrift, swait);

	if (t->swaiting)
		splice_dispatch(t);
	settle(t);
}

static void splice_unhold(fl_thrift *t)
{
	if (t->swaiting) {
		fl_list_remove(&t->swait.link);
		t->swaiting = 0;
	}
	if (t->sheld && t->sfn) {
		atomic_fetch_sub(&t->sfn->stats->queued, 1);
		t->sheld = 0;
	}
}

static void splice_dispatch(fl_thrift *t)
{
	fl_gw *gw = t->gw;
	fl_route_fn *fn;

	if (t->ssref != gw->cur) {
		gw_snapref *old = t->ssref;
		t->ssref = fl_gw__snap_use(gw);
		fn = fl_snapshot_find(t->ssref->snap, t->fixed, strlen(t->fixed));
		if (old) {
			if (t->sheld && t->sfn) {
				atomic_fetch_sub(&t->sfn->stats->queued, 1);
				t->sheld = 0;
			}
			fl_gw__snap_done(gw, old);
		} else {
			atomic_fetch_add(&gw->active, 1);
		}
		t->sfn = fn;
		if (fn == NULL) {
			splice_unhold(t);
			close_conn(t, "the port's function was removed");
			return;
		}
	}
	fn = t->sfn;
	t->sinst = fl_dispatch_pick(fn);
	if (t->sinst == NULL) {
		int again = t->sheld;
		if (!t->sheld) {
			atomic_fetch_add(&fn->stats->queued, 1);
			t->sheld = 1;
		}
		if (!t->swaiting) {
			t->swaiting = 1;
			fl_list_insert_tail(&gw->waiters, &t->swait.link);
		}
		fl_gw__need(gw, fn, again);
		return;
	}
	splice_unhold(t);
	t->sup = fl_up_get(gw, t->sinst, t, &splice_ops, 0);
	if (t->sup == NULL)
		close_conn(t, "cannot connect to the instance");
	else if (fl_up_ready(t->sup))
		splice_up_ready_(t);
}

/* ---- the codec ---- */

static int th_sniff(const char *p, size_t n)
{
	int f = fl_tw_sniff((const uint8_t *)p, n);

	return f > 0;
}

static void *th_start(fl_gw *gw, gw_conn *c, uv_stream_t *tcp, const char *peer,
		      const char *fixed_fn)
{
	fl_thrift *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->gw = gw;
	t->conn = c;
	t->tcp = tcp;
	t->peer = peer;
	t->swait.retry = splice_retry;
	fl_list_init(&t->swait.link);
	if (fixed_fn)
		snprintf(t->fixed, sizeof(t->fixed), "%s", fixed_fn);
	return t;
}

static int th_on_read(void *s, const char *p, size_t n)
{
	fl_thrift *t = s;

	if (t->closing)
		return -1;
	if (t->in.len == 0 && !t->splice && !t->framed && t->cur == NULL) {
		int f = fl_tw_sniff((const uint8_t *)p, n);
		if (f == FL_TW_UNFRAMED_BINARY || f == FL_TW_UNFRAMED_COMPACT) {
			if (t->fixed[0] == '\0') {
				fl_info(
				    "thrift",
				    "closing the connection from %s: an unframed (buffered) Thrift "
				    "client carries no service name; use the function's dedicated "
				    "port (thrift.port)",
				    t->peer);
				return -1;
			}
			t->splice = 1;
		} else {
			t->framed = 1;
		}
	}
	if (t->splice) {
		if (t->sready) {
			uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
			return fl_gw__write(fl_up_stream(t->sup), &b, 1) < 0 ? -1 : 0;
		}
		if (fl_buf_append(&t->in, p, n) < 0 || t->in.len > TH_MAX_FRAME)
			return -1;
		if (t->ssref == NULL && !t->swaiting)
			splice_dispatch(t);
		return t->closing ? -1 : 0;
	}
	if (fl_buf_append(&t->in, p, n) < 0)
		return -1;
	/* Pipelined calls wait in the buffer; a client that piles up more than a
	 * few frames' worth without reading answers is cut off. */
	if (t->in.len > 4 * (size_t)TH_MAX_FRAME)
		return -1;
	process(t);
	return t->closing ? -1 : 0;
}

static void th_on_drain(void *s)
{
	fl_thrift *t = s;

	if (t->splice && t->sup)
		fl_up_read_start(t->sup);
}

static int th_drain(void *s)
{
	fl_thrift *t = s;

	return t->cur == NULL && !t->splice;
}

static void th_free(void *s)
{
	fl_thrift *t = s;

	t->closing = 1;
	t->freeing = 1;
	if (t->cur) {
		tcall *k = t->cur;
		t->cur = NULL;
		call_unhold(k);
		if (k->up) {
			fl_up_release(k->up, 0);
			k->up = NULL;
		}
		if (k->inst) {
			fl_dispatch_release(k->fn, k->inst);
			k->inst = NULL;
		}
		if (k->sref) {
			atomic_fetch_sub(&t->gw->active, 1);
			fl_gw__snap_done(t->gw, k->sref);
		}
		uv_timer_stop(&k->timer);
		uv_close((uv_handle_t *)&k->timer, call_timer_closed);
	}
	splice_unhold(t);
	if (t->sup)
		fl_up_release(t->sup, 0);
	if (t->sinst)
		fl_dispatch_release(t->sfn, t->sinst);
	if (t->ssref) {
		atomic_fetch_sub(&t->gw->active, 1);
		fl_gw__snap_done(t->gw, t->ssref);
	}
	fl_buf_free(&t->in);
	free(t);
}

const struct fl_codec fl_codec_thrift = {
    .name = "thrift",
    .sniff = th_sniff,
    .start = th_start,
    .on_read = th_on_read,
    .on_drain = th_on_drain,
    .drain = th_drain,
    .free = th_free,
    .flush = NULL,
};
