/* publish.c -- the routing snapshot the control thread builds from its
 * functions and instances and publishes to the gateway threads. */
#include <stdio.h>
#include <string.h>

#include "control/ctl.h"
#include "core/util.h"
#include "gateway/gateway.h"

void ctl_publish_now(fl_ctl *ctl)
{
	fl_snapshot *s = fl_snapshot_new(++ctl->snap_gen);
	fl_list *l, *k;

	uv_timer_stop(&ctl->publish_timer);
	ctl->snap_dirty = 0;
	for (l = ctl->fns.next; l != &ctl->fns; l = l->next) {
		ctl_fn *fn = fl_container_of(l, ctl_fn, link);
		fl_route_fn *r;
		int n = 0;
		if (fn->deleted)
			continue;
		r = fl_route_fn_new(fn->name);
		r->version = fn->version;
		r->stats = fn->stats;
		fl_fnstats_ref(fn->stats);
		if (fn->state == F_FAILED || (fn->state == F_BACKOFF && fn->failures >= 2)) {
			r->state = FL_FN_FAILING;
			r->reason = fl_xstrdup(fn->reason);
		}
		r->concurrency = fn->spec->concurrency;
		r->proto = strcmp(fn->spec->protocol, "grpc") == 0     ? FL_PROTO_GRPC
			   : strcmp(fn->spec->protocol, "http2") == 0  ? FL_PROTO_HTTP2
			   : strcmp(fn->spec->protocol, "thrift") == 0 ? FL_PROTO_THRIFT
								       : FL_PROTO_HTTP;
		r->thrift_port = (int)fn->spec->thrift_port;
		if (fn->nsplit) {
			uint32_t cum = 0;
			int q;
			r->split = fl_xcalloc((size_t)fn->nsplit, sizeof(*r->split));
			for (q = 0; q < fn->nsplit; q++) {
				char t[96];
				if (fn->split[q].version == fn->version)
					snprintf(t, sizeof(t), "%s", fn->name);
				else
					snprintf(t, sizeof(t), "%s@v%llu", fn->name,
						 (unsigned long long)fn->split[q].version);
				cum += fn->split[q].weight;
				r->split[q].target = fl_xstrdup(t);
				r->split[q].version = fn->split[q].version;
				r->split[q].weight = cum;
			}
			r->nsplit = fn->nsplit;
			r->split_total = cum;
		}
		if (fn->spec->nservices) {
			int k2;
			r->services = fl_xcalloc((size_t)fn->spec->nservices, sizeof(char *));
			for (k2 = 0; k2 < fn->spec->nservices; k2++)
				r->services[k2] = fl_xstrdup(fn->spec->services[k2]);
			r->nservices = fn->spec->nservices;
		}
		r->timeout_ms = fn->spec->timeout_ms;
		r->max_body = fn->spec->max_body;
		r->queue_max = fn->spec->queue_max;
		r->queue_timeout_ms = fn->spec->queue_timeout_ms;
		for (k = fn->insts.next; k != &fn->insts; k = k->next)
			n++;
		r->inst = fl_xcalloc((size_t)n + 1, sizeof(fl_inst *));
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
				fl_inst_ref(in->pub);
				r->inst[r->ninst++] = in->pub;
			}
		}
		fl_snapshot_add_fn(s, r);
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
