/* metrics.c -- the Prometheus text exposition of the gateway's /metrics. */
#include "obs/metrics.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static uint64_t ld(const atomic_uint_fast64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

/* One histogram of fn; lbl is more labels after the function's (",phase=\"spawn\"") or "". */
static void hist_lbl(fl_buf *o, const char *metric, const char *fn, const char *lbl,
		     const struct fl_hist_sum *h)
{
	uint64_t cum = 0;
	int i;

	for (i = 0; i < FL_HIST_BUCKETS; i++) {
		cum += h->count[i];
		fl_buf_printf(o, "%s_bucket{function=\"%s\"%s,le=\"%g\"} %llu\n", metric, fn, lbl,
			      fl_hist_bounds[i], (unsigned long long)cum);
	}
	cum += h->count[FL_HIST_BUCKETS];
	fl_buf_printf(o, "%s_bucket{function=\"%s\"%s,le=\"+Inf\"} %llu\n", metric, fn, lbl,
		      (unsigned long long)cum);
	fl_buf_printf(o, "%s_sum{function=\"%s\"%s} %.6f\n", metric, fn, lbl,
		      (double)h->sum_us / 1e6);
	fl_buf_printf(o, "%s_count{function=\"%s\"%s} %llu\n", metric, fn, lbl,
		      (unsigned long long)cum);
}

static void hist(fl_buf *o, const char *metric, const char *fn, const struct fl_hist_sum *h)
{
	hist_lbl(o, metric, fn, "", h);
}

/* Set once before the gateway threads start, read by them afterwards. */
static void (*extra_cb)(void *ctx, void *out);
static void *extra_ctx;

void fl_metrics_set_extra(void (*cb)(void *ctx, void *out), void *ctx)
{
	extra_cb = cb;
	extra_ctx = ctx;
}

/* A label value: backslash, quote and newline escaped (method names come
 * from clients). */
static void label(fl_buf *o, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fl_buf_append(o, "\\", 1);
		if (*v == '\n')
			fl_buf_puts(o, "\\n");
		else
			fl_buf_append(o, v, 1);
	}
}

static void methods(fl_buf *o, const fl_route_fn *fn)
{
	static const char *const outcome[3] = {"reply", "exception", "error"};
	int k, code, thrift = fn->proto == FL_PROTO_THRIFT;

	for (k = 0; k < FL_METHOD_SLOTS; k++) {
		const char *name = atomic_load(&fn->stats->methods[k].name);
		if (name == NULL)
			continue;
		for (code = 0; code < (thrift ? 3 : 17); code++) {
			uint64_t n = ld(&fn->stats->methods[k].count[code]);
			if (n == 0)
				continue;
			fl_buf_printf(o, "flint_method_calls_total{function=\"%s\",method=\"",
				      fn->name);
			label(o, name);
			if (thrift)
				fl_buf_printf(o, "\",outcome=\"%s\"} %llu\n", outcome[code],
					      (unsigned long long)n);
			else
				fl_buf_printf(o, "\",grpc_status=\"%d\"} %llu\n", code,
					      (unsigned long long)n);
		}
	}
}

/* The shared cold-start histogram, read like the sharded ones. */
static void hist_shared(fl_buf *o, const char *metric, const char *fn, const char *lbl,
			const fl_hist *h)
{
	struct fl_hist_sum sum;

	memset(&sum, 0, sizeof(sum));
	fl_hist_read(h, &sum);
	hist_lbl(o, metric, fn, lbl, &sum);
}

int fl_metrics_render(fl_buf *o, const fl_snapshot *s)
{
	/* Summed from the gateway threads' shards once per function and family;
	 * kept off the stack, which gateway threads keep small. */
	fl_fncounts *c = malloc(sizeof(*c));
	int i, code;
	size_t before = o->len;

	if (c == NULL)
		return -ENOMEM;

	fl_buf_puts(o,
		    "# HELP flint_requests_total Requests answered, by function and status code.\n"
		    "# TYPE flint_requests_total counter\n");
	for (i = 0; s && i < s->nfn; i++) {
		const fl_route_fn *fn = s->fns[i];
		fl_fnstats_read(fn->stats, c);
		for (code = 100; code < 600; code++) {
			uint64_t n = c->codes[code];
			if (n)
				fl_buf_printf(
				    o, "flint_requests_total{function=\"%s\",code=\"%d\"} %llu\n",
				    fn->name, code, (unsigned long long)n);
		}
	}
	fl_buf_puts(o, "# HELP flint_request_duration_seconds Time from request head to the end of "
		       "the response.\n"
		       "# TYPE flint_request_duration_seconds histogram\n");
	for (i = 0; s && i < s->nfn; i++) {
		fl_fnstats_read(s->fns[i]->stats, c);
		hist(o, "flint_request_duration_seconds", s->fns[i]->name, &c->latency);
	}
	fl_buf_puts(o, "# HELP flint_grpc_requests_total gRPC calls answered, by function and "
		       "grpc-status.\n"
		       "# TYPE flint_grpc_requests_total counter\n");
	for (i = 0; s && i < s->nfn; i++) {
		const fl_route_fn *fn = s->fns[i];
		fl_fnstats_read(fn->stats, c);
		for (code = 0; code < 17; code++) {
			uint64_t n = c->grpc[code];
			if (n)
				fl_buf_printf(o,
					      "flint_grpc_requests_total{function=\"%s\","
					      "grpc_status=\"%d\"} %llu\n",
					      fn->name, code, (unsigned long long)n);
		}
	}
	fl_buf_puts(o, "# HELP flint_thrift_calls_total Thrift calls answered, by function and "
		       "outcome: the instance's reply or exception, or flint's error.\n"
		       "# TYPE flint_thrift_calls_total counter\n");
	for (i = 0; s && i < s->nfn; i++) {
		static const char *const outcome[3] = {"reply", "exception", "error"};
		const fl_route_fn *fn = s->fns[i];
		fl_fnstats_read(fn->stats, c);
		for (code = 0; code < 3; code++) {
			uint64_t n = c->thrift[code];
			if (n)
				fl_buf_printf(o,
					      "flint_thrift_calls_total{function=\"%s\","
					      "outcome=\"%s\"} %llu\n",
					      fn->name, outcome[code], (unsigned long long)n);
		}
	}
	fl_buf_puts(o, "# HELP flint_method_calls_total RPC calls by function, method and result: "
		       "grpc_status for gRPC, outcome for Thrift.\n"
		       "# TYPE flint_method_calls_total counter\n");
	for (i = 0; s && i < s->nfn; i++)
		methods(o, s->fns[i]);
	fl_buf_puts(o, "# HELP flint_stream_duration_seconds Time from an HTTP/2 stream's request "
		       "head to its end.\n"
		       "# TYPE flint_stream_duration_seconds histogram\n");
	for (i = 0; s && i < s->nfn; i++) {
		fl_fnstats_read(s->fns[i]->stats, c);
		hist(o, "flint_stream_duration_seconds", s->fns[i]->name, &c->stream);
	}
	fl_buf_puts(o, "# HELP flint_cold_starts_total Instances started.\n"
		       "# TYPE flint_cold_starts_total counter\n");
	for (i = 0; s && i < s->nfn; i++)
		fl_buf_printf(o, "flint_cold_starts_total{function=\"%s\"} %llu\n", s->fns[i]->name,
			      (unsigned long long)ld(&s->fns[i]->stats->cold_starts));
	fl_buf_puts(
	    o,
	    "# HELP flint_cold_start_seconds Time from spawning an instance to its being ready.\n"
	    "# TYPE flint_cold_start_seconds histogram\n");
	for (i = 0; s && i < s->nfn; i++)
		hist_shared(o, "flint_cold_start_seconds", s->fns[i]->name, "",
			    &s->fns[i]->stats->cold);
	fl_buf_puts(o, "# HELP flint_cold_start_phase_seconds The phases of a cold start: queue "
		       "(waiting in the spawner for a set-up slot), spawn (sandbox set-up to the "
		       "command's exec), ready (exec to the readiness check passing).\n"
		       "# TYPE flint_cold_start_phase_seconds histogram\n");
	for (i = 0; s && i < s->nfn; i++) {
		const fl_fnstats *st = s->fns[i]->stats;
		hist_shared(o, "flint_cold_start_phase_seconds", s->fns[i]->name,
			    ",phase=\"queue\"", &st->cold_queue);
		hist_shared(o, "flint_cold_start_phase_seconds", s->fns[i]->name,
			    ",phase=\"spawn\"", &st->cold_spawn);
		hist_shared(o, "flint_cold_start_phase_seconds", s->fns[i]->name,
			    ",phase=\"ready\"", &st->cold_ready);
	}
	fl_buf_puts(o, "# HELP flint_warm_starts_total Instances started in a sandbox built "
		       "ahead of need (kind: sandbox, or zygote for a pre-imported Python).\n"
		       "# TYPE flint_warm_starts_total counter\n");
	for (i = 0; s && i < s->nfn; i++) {
		const fl_fnstats *st = s->fns[i]->stats;
		if (ld(&st->warm_starts))
			fl_buf_printf(o,
				      "flint_warm_starts_total{function=\"%s\",kind=\"sandbox\"} "
				      "%llu\n",
				      s->fns[i]->name, (unsigned long long)ld(&st->warm_starts));
		if (ld(&st->zygote_starts))
			fl_buf_printf(o,
				      "flint_warm_starts_total{function=\"%s\",kind=\"zygote\"} "
				      "%llu\n",
				      s->fns[i]->name, (unsigned long long)ld(&st->zygote_starts));
	}
	fl_buf_puts(
	    o, "# HELP flint_requests_held_total Requests that waited for an instance with room.\n"
	       "# TYPE flint_requests_held_total counter\n");
	for (i = 0; s && i < s->nfn; i++)
		fl_buf_printf(o, "flint_requests_held_total{function=\"%s\"} %llu\n",
			      s->fns[i]->name, (unsigned long long)ld(&s->fns[i]->stats->held));
	fl_buf_puts(o, "# HELP flint_instances Instances by state.\n"
		       "# TYPE flint_instances gauge\n");
	for (i = 0; s && i < s->nfn; i++) {
		const fl_route_fn *fn = s->fns[i];
		fl_buf_printf(o,
			      "flint_instances{function=\"%s\",state=\"starting\"} %d\n"
			      "flint_instances{function=\"%s\",state=\"ready\"} %d\n"
			      "flint_instances{function=\"%s\",state=\"draining\"} %d\n",
			      fn->name, fn->n_starting, fn->name, fn->n_ready, fn->name,
			      fn->n_draining);
	}
	fl_buf_puts(
	    o, "# HELP flint_queue_depth Requests held now, waiting for an instance with room.\n"
	       "# TYPE flint_queue_depth gauge\n");
	for (i = 0; s && i < s->nfn; i++)
		fl_buf_printf(o, "flint_queue_depth{function=\"%s\"} %ld\n", s->fns[i]->name,
			      atomic_load(&s->fns[i]->stats->queued));
	fl_buf_puts(
	    o, "# HELP flint_reserved_instances Ready instances kept in reserve (scale.reserved).\n"
	       "# TYPE flint_reserved_instances gauge\n");
	for (i = 0; s && i < s->nfn; i++)
		fl_buf_printf(o, "flint_reserved_instances{function=\"%s\"} %d\n", s->fns[i]->name,
			      s->fns[i]->n_reserved);
	fl_buf_puts(o, "# HELP flint_reserved_spills_total Requests sent to a reserved instance "
		       "because no elastic one had room.\n"
		       "# TYPE flint_reserved_spills_total counter\n");
	for (i = 0; s && i < s->nfn; i++)
		fl_buf_printf(o, "flint_reserved_spills_total{function=\"%s\"} %llu\n",
			      s->fns[i]->name, (unsigned long long)ld(&s->fns[i]->stats->spills));
	fl_buf_puts(o, "# HELP flint_overload_signals_total Answers by which an instance said it "
		       "was overloaded (429, 503, RESOURCE_EXHAUSTED, UNAVAILABLE, "
		       "X-Flint-Overloaded).\n"
		       "# TYPE flint_overload_signals_total counter\n");
	for (i = 0; s && i < s->nfn; i++)
		fl_buf_printf(o, "flint_overload_signals_total{function=\"%s\"} %llu\n",
			      s->fns[i]->name,
			      (unsigned long long)ld(&s->fns[i]->stats->overloads));
	fl_buf_puts(o, "# HELP flint_inflight Requests at instances now.\n"
		       "# TYPE flint_inflight gauge\n");
	for (i = 0; s && i < s->nfn; i++)
		fl_buf_printf(o, "flint_inflight{function=\"%s\"} %ld\n", s->fns[i]->name,
			      atomic_load(&s->fns[i]->stats->inflight));
	free(c);
	if (extra_cb)
		extra_cb(extra_ctx, o);
	if (o->cap == 0 || o->len < before)
		return -ENOMEM;
	return 0;
}
