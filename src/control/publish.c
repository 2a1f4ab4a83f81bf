/* publish.c -- the routing snapshot the control thread builds from its
 * functions and instances and publishes to the gateway threads.
 *
 * Each function keeps the route it was last published with (ctl_fn.route). A new
 * snapshot shares that route when nothing it holds has changed, and builds a new one
 * only for the functions that did: a start, a stop or a deploy costs the function it
 * concerns, not every function deployed (with 2,000 functions a full rebuild took
 * milliseconds, twice per cold start). The functions are kept sorted by name
 * (ctl->fns), so the snapshot needs no sort either. */
#include <stdio.h>
#include <string.h>

#include "control/ctl.h"
#include "core/util.h"
#include "gateway/gateway.h"

static enum fl_proto route_proto(const fl_spec *sp)
{
	return strcmp(sp->protocol, "grpc") == 0     ? FL_PROTO_GRPC
	       : strcmp(sp->protocol, "http2") == 0  ? FL_PROTO_HTTP2
	       : strcmp(sp->protocol, "thrift") == 0 ? FL_PROTO_THRIFT
						     : FL_PROTO_HTTP;
}

static int route_failing(const ctl_fn *fn)
{
	return fn->state == F_FAILED || (fn->state == F_BACKOFF && fn->failures >= 2);
}

/* The traffic split entry q of fn as the route holds it: its target's name. */
static void split_target(const ctl_fn *fn, int q, char *t, size_t n)
{
	if (fn->split[q].version == fn->version)
		snprintf(t, n, "%s", fn->name);
	else
		snprintf(t, n, "%s@v%llu", fn->name, (unsigned long long)fn->split[q].version);
}

/* Counts fn's instances by state into r and, with inst, lists the ready ones (taking a
 * reference to each). */
static void route_insts(const ctl_fn *fn, fl_route_fn *r, fl_inst **inst)
{
	fl_list *k;

	r->n_starting = r->n_ready = r->n_draining = r->n_reserved = r->ninst = 0;
	for (k = fn->insts.next; k != &fn->insts; k = k->next) {
		ctl_inst *in = fl_container_of(k, ctl_inst, link);
		if (in->job)
			continue;
		r->n_reserved += in->reserved && in->state == I_READY;
		switch (in->state) {
		case I_STARTING:
			r->n_starting++;
			break;
		case I_READY:
			r->n_ready++;
			break;
		default:
			r->n_draining++;
			break;
		}
		if (in->state == I_READY && in->pub) {
			if (inst) {
				fl_inst_ref(in->pub);
				inst[r->ninst] = in->pub;
			}
			r->ninst++;
		}
	}
}

static fl_route_fn *route_build(const ctl_fn *fn)
{
	const fl_spec *sp = fn->spec;
	fl_route_fn *r = fl_route_fn_new(fn->name);
	fl_list *k;
	int n = 0;

	r->version = fn->version;
	r->stats = fn->stats;
	fl_fnstats_ref(fn->stats);
	if (route_failing(fn)) {
		r->state = FL_FN_FAILING;
		r->reason = fl_xstrdup(fn->reason);
	}
	r->concurrency = sp->concurrency;
	r->proto = route_proto(sp);
	r->thrift_port = (int)sp->thrift_port;
	if (fn->nsplit) {
		uint32_t cum = 0;
		r->split = fl_xcalloc((size_t)fn->nsplit, sizeof(*r->split));
		for (int q = 0; q < fn->nsplit; q++) {
			char t[96];
			split_target(fn, q, t, sizeof(t));
			cum += fn->split[q].weight;
			r->split[q].target = fl_xstrdup(t);
			r->split[q].version = fn->split[q].version;
			r->split[q].weight = cum;
		}
		r->nsplit = fn->nsplit;
		r->split_total = cum;
	}
	if (sp->nservices) {
		r->services = fl_xcalloc((size_t)sp->nservices, sizeof(char *));
		for (int q = 0; q < sp->nservices; q++)
			r->services[q] = fl_xstrdup(sp->services[q]);
		r->nservices = sp->nservices;
	}
	r->timeout_ms = sp->timeout_ms;
	r->max_body = sp->max_body;
	r->queue_max = sp->queue_max;
	r->queue_timeout_ms = sp->queue_timeout_ms;
	for (k = fn->insts.next; k != &fn->insts; k = k->next)
		n++;
	r->inst = fl_xcalloc((size_t)n + 1, sizeof(fl_inst *));
	route_insts(fn, r, r->inst);
	return r;
}

/* Whether r, built earlier for fn, still says all route_build would say now. What comes
 * from the spec is not compared: the route is dropped whenever the spec is replaced
 * (specs are never changed in place). */
static int route_current(const ctl_fn *fn, const fl_route_fn *r)
{
	fl_route_fn now;
	fl_list *k;
	int i = 0;

	if (r->version != fn->version || r->stats != fn->stats ||
	    (r->state == FL_FN_FAILING) != route_failing(fn) ||
	    (route_failing(fn) && strcmp(r->reason, fn->reason) != 0) || r->nsplit != fn->nsplit)
		return 0;
	for (int q = 0; q < fn->nsplit; q++) {
		uint32_t cum = q ? r->split[q - 1].weight : 0;
		char t[96];
		split_target(fn, q, t, sizeof(t));
		if (r->split[q].version != fn->split[q].version ||
		    r->split[q].weight != cum + fn->split[q].weight ||
		    strcmp(r->split[q].target, t))
			return 0;
	}
	route_insts(fn, &now, NULL);
	if (now.n_starting != r->n_starting || now.n_ready != r->n_ready ||
	    now.n_draining != r->n_draining || now.n_reserved != r->n_reserved ||
	    now.ninst != r->ninst)
		return 0;
	for (k = fn->insts.next; k != &fn->insts; k = k->next) {
		ctl_inst *in = fl_container_of(k, ctl_inst, link);
		if (!in->job && in->state == I_READY && in->pub && r->inst[i++] != in->pub)
			return 0;
	}
	return 1;
}

void ctl_route_drop(ctl_fn *fn)
{
	fl_route_fn_unref(fn->route);
	fn->route = NULL;
}

void ctl_publish_now(fl_ctl *ctl)
{
	fl_snapshot *s = fl_snapshot_new(++ctl->snap_gen);
	fl_list *l;

	uv_timer_stop(&ctl->publish_timer);
	ctl->snap_dirty = 0;
	s->sorted = 1; /* ctl->fns is in name order */
	fl_snapshot_reserve(s, ctl->nfns);
	for (l = ctl->fns.next; l != &ctl->fns; l = l->next) {
		ctl_fn *fn = fl_container_of(l, ctl_fn, link);
		if (fn->deleted) {
			ctl_route_drop(fn);
			continue;
		}
		if (fn->route == NULL || !route_current(fn, fn->route)) {
			ctl_route_drop(fn);
			fn->route = route_build(fn);
		}
		fl_route_fn_ref(fn->route);
		fl_snapshot_add_fn(s, fn->route);
	}
	fl_snapshot_seal(s);
	fl_snapshot_publish(s);
	fl_gateway_notify();
}

static void on_publish_timer(uv_timer_t *t)
{
	ctl_publish_now(t->data);
}

void ctl_publish_later(fl_ctl *ctl)
{
	if (ctl->snap_dirty)
		return;
	ctl->snap_dirty = 1;
	uv_timer_start(&ctl->publish_timer, on_publish_timer, 0, 0);
}
