/* trigger_nats.c -- NATS trigger (cnats): a core subscription, optionally in a
 * queue group, whose messages become durable async requests, or are answered
 * synchronously through the gateway when they carry a reply subject; or a
 * JetStream durable pull consumer acknowledged after the request succeeded,
 * nak'ed with a delay after it died and terminated after max_deliver. */
#include "events/trigger_nats.h"

#include <curl/curl.h>
#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/sha256.h"
#include "core/util.h"

#define BACKOFF_MIN_MS	 100
#define BACKOFF_MAX_MS	 5000
#define FETCH_WAIT_MS	 250 /* bounds how long stopping waits for a fetch */
#define POLL_MS		 100
#define ENQUEUE_LOST_MS	 10000
#define ACK_WAIT_MS	 30000 /* the consumer's ack wait; kept alive while requests run */
#define JS_INFLIGHT	 64    /* JetStream messages handed over and not acked yet */
#define NAK_MAX_MS	 60000
#define REPLY_TIMEOUT_MS 30000
#define REPLY_MAX	 (1u << 20) /* NATS's default max_payload */
#define CLOSE_WAIT_S	 10	    /* for the client library to finish with a closed connection */
#define ID_LEN		 48

/* A JetStream message whose request runs. */
struct jmsg {
	natsMsg *m;
	char rid[ID_LEN];
	uint64_t delivered;
	uint64_t enq_ms, progress_ms;
};

struct fl_trigger_nats {
	fl_async *a;
	char *fn;
	json_t *spec;
	char *url, *subject, *queue, *stream, *durable;
	int64_t max_deliver;
	char gw_base[128];
	char idprefix[11];

	pthread_t thr;
	int has_thr;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int stop;	 /* under mu */
	int sub_done;	 /* under mu: no message callback runs any more */
	int closed;	 /* under mu: the connection's last callback has run */
	int leaked;	 /* a callback may still run: n is never freed */
	char state[256]; /* under mu */
	atomic_int stopf;

	/* Consumer thread only. */
	natsConnection *nc;
	natsSubscription *sub;
	jsCtx *js;
	struct jmsg *jm;
	size_t njm;

	atomic_uint_fast64_t received, enqueued, replied, acked, naked, termed;
};

static void set_state(fl_trigger_nats *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_state(fl_trigger_nats *n, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&n->mu);
	va_start(ap, fmt);
	vsnprintf(n->state, sizeof(n->state), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&n->mu);
}

static void nap(fl_trigger_nats *n, uint64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&n->mu);
	while (!n->stop && pthread_cond_timedwait(&n->cond, &n->mu, &ts) == 0)
		;
	pthread_mutex_unlock(&n->mu);
}

static const char *last_error(natsStatus s)
{
	const char *t = nats_GetLastError(NULL);
	return t && *t ? t : natsStatus_GetText(s);
}

/* The message's Content-Type header, if it has one. */
static const char *content_type(natsMsg *m)
{
	const char *v = NULL;

	if (natsMsgHeader_Get(m, "Content-Type", &v) != NATS_OK || v == NULL || strchr(v, '\r') ||
	    strchr(v, '\n'))
		return "application/octet-stream";
	return v;
}

static int enqueue(fl_trigger_nats *n, natsMsg *m, const char *rid)
{
	struct fl_async_item it;
	char hdrs[768], src[300];

	snprintf(hdrs, sizeof(hdrs),
		 "Content-Type: %s\r\nX-Flint-Trigger: nats\r\nX-Flint-Nats-Subject: %s\r\n",
		 content_type(m), natsMsg_GetSubject(m));
	snprintf(src, sizeof(src), "nats:%s", n->subject);
	memset(&it, 0, sizeof(it));
	it.fn = n->fn;
	it.method = "POST";
	it.target = "/";
	it.headers = hdrs;
	it.headers_len = strlen(hdrs);
	it.body = natsMsg_GetData(m) ? natsMsg_GetData(m) : "";
	it.body_len = (size_t)natsMsg_GetDataLength(m);
	it.request_id = rid;
	it.source = src;
	if (fl_async_enqueue(n->a, &it, NULL, NULL) < 0)
		return -ESHUTDOWN;
	atomic_fetch_add(&n->enqueued, 1);
	return 0;
}

/* ---- request/reply ---- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	fl_buf *b = ud;
	size_t len = size * nmemb;

	if (b->len + len > REPLY_MAX)
		return 0; /* larger than a NATS message may be */
	return fl_buf_append(b, p, len) == 0 ? len : 0;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	fl_trigger_nats *n = ud;

	(void)dt, (void)dn, (void)ut, (void)un;
	return atomic_load(&n->stopf); /* non-zero aborts: flint stops or the trigger went */
}

/* Calls the function through the gateway and publishes its response body as
 * the reply, with X-Flint-Status-Code (or X-Flint-Error) as a NATS header.
 * Blocks this subscription's callback thread for at most REPLY_TIMEOUT_MS. */
static void request_reply(fl_trigger_nats *n, natsConnection *nc, natsMsg *m)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hl = NULL;
	char url[512], line[600], code_s[16];
	fl_buf body;
	natsMsg *out = NULL;
	long code = 0;
	CURLcode res = CURLE_FAILED_INIT;

	memset(&body, 0, sizeof(body));
	snprintf(url, sizeof(url), "%s/function/%s/", n->gw_base, n->fn);
	snprintf(line, sizeof(line), "Content-Type: %s", content_type(m));
	hl = curl_slist_append(hl, line);
	hl = curl_slist_append(hl, "X-Flint-Trigger: nats");
	snprintf(line, sizeof(line), "X-Flint-Nats-Subject: %s", natsMsg_GetSubject(m));
	hl = curl_slist_append(hl, line);
	hl = curl_slist_append(hl, "Expect:");
	if (h) {
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS,
				 natsMsg_GetData(m) ? natsMsg_GetData(m) : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)natsMsg_GetDataLength(m));
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)REPLY_TIMEOUT_MS);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, n);
		res = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	}
	if (atomic_load(&n->stopf))
		goto out; /* the requester times out; nothing half-done is sent */
	if (natsMsg_Create(&out, natsMsg_GetReply(m), NULL, res == CURLE_OK ? body.p : NULL,
			   res == CURLE_OK ? (int)body.len : 0) != NATS_OK)
		goto out;
	if (res == CURLE_OK) {
		snprintf(code_s, sizeof(code_s), "%ld", code);
		natsMsgHeader_Set(out, "X-Flint-Status-Code", code_s);
	} else {
		natsMsgHeader_Set(out, "X-Flint-Error",
				  res == CURLE_OPERATION_TIMEDOUT
				      ? "the function did not answer in time"
				      : curl_easy_strerror(res));
	}
	if (natsConnection_PublishMsg(nc, out) == NATS_OK)
		atomic_fetch_add(&n->replied, 1);
out:
	natsMsg_Destroy(out);
	fl_buf_free(&body);
	curl_slist_free_all(hl);
	if (h)
		curl_easy_cleanup(h);
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
	fl_trigger_nats *n = closure;
	const char *reply = natsMsg_GetReply(m);

	(void)sub;
	if (!atomic_load(&n->stopf)) {
		atomic_fetch_add(&n->received, 1);
		if (reply && *reply)
			request_reply(n, nc, m);
		else
			enqueue(n, m,
				NULL); /* core NATS is at most once up to here; durable after */
	}
	natsMsg_Destroy(m);
}

static void on_complete(void *closure)
{
	fl_trigger_nats *n = closure;

	pthread_mutex_lock(&n->mu);
	n->sub_done = 1;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->mu);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	fl_trigger_nats *n = closure;

	(void)nc;
	if (atomic_load(&n->stopf))
		return;
	fl_warn("triggers", "function %s: lost NATS at %s; reconnecting", n->fn, n->url);
	set_state(n, "reconnecting");
}

/* The closed callback is the last the library queues for a connection (after any
 * disconnected one, on the same thread): once it ran, nothing refers to n any more. */
static void on_closed(natsConnection *nc, void *closure)
{
	fl_trigger_nats *n = closure;

	(void)nc;
	pthread_mutex_lock(&n->mu);
	n->closed = 1;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->mu);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	fl_trigger_nats *n = closure;

	(void)nc;
	fl_info("triggers", "function %s: NATS at %s answers again", n->fn, n->url);
	set_state(n, "running");
}

/* ---- JetStream ---- */

static void rid_for(fl_trigger_nats *n, uint64_t seq, uint64_t delivery, char *out)
{
	snprintf(out, ID_LEN, "nats-%s-%llu-%llu", n->idprefix, (unsigned long long)seq,
		 (unsigned long long)delivery);
}

/* The status of request rid: "succeeded", "queued"... or NULL (not stored). */
static int status_of(fl_trigger_nats *n, const char *rid, char *st, size_t stlen)
{
	json_t *row = NULL;
	int rc = fl_async_get(n->a, rid, &row);

	if (rc == 0)
		snprintf(st, stlen, "%s", json_string_value(json_object_get(row, "status")));
	json_decref(row);
	return rc;
}

static void js_take(fl_trigger_nats *n, natsMsg *m)
{
	jsMsgMetaData *md = NULL;
	struct jmsg j;
	char st[32];

	atomic_fetch_add(&n->received, 1);
	if (natsMsg_GetMetaData(&md, m) != NATS_OK) {
		natsMsg_Term(m, NULL); /* not a JetStream delivery: nothing to acknowledge */
		natsMsg_Destroy(m);
		return;
	}
	memset(&j, 0, sizeof(j));
	j.m = m;
	j.delivered = md->NumDelivered;
	/* A redelivery (after a nak, or after flint stopped while it ran) first looks
	 * for the request of an earlier delivery: done means ack, running means wait
	 * for it; only a failed one makes a new request. */
	for (uint64_t k = 1; k < j.delivered && k <= 1000; k++) {
		rid_for(n, md->Sequence.Stream, k, j.rid);
		if (status_of(n, j.rid, st, sizeof(st)) < 0)
			continue;
		if (strcmp(st, "succeeded") == 0) {
			natsMsg_Ack(m, NULL);
			atomic_fetch_add(&n->acked, 1);
			natsMsg_Destroy(m);
			jsMsgMetaData_Destroy(md);
			return;
		}
		if (strcmp(st, "queued") == 0 || strcmp(st, "running") == 0)
			goto track;
	}
	rid_for(n, md->Sequence.Stream, j.delivered, j.rid);
	if (enqueue(n, m, j.rid) < 0) {
		natsMsg_Destroy(m); /* shutting down: redelivered later */
		jsMsgMetaData_Destroy(md);
		return;
	}
track:
	jsMsgMetaData_Destroy(md);
	j.enq_ms = j.progress_ms = fl_now_ms();
	n->jm = realloc(n->jm, (n->njm + 1) * sizeof(*n->jm));
	if (n->jm == NULL) {
		fl_error("triggers", "out of memory");
		abort();
	}
	n->jm[n->njm++] = j;
}

static void js_poll(fl_trigger_nats *n)
{
	uint64_t now = fl_now_ms();
	size_t i = 0;
	char st[32];

	while (i < n->njm) {
		struct jmsg *j = &n->jm[i];
		int rc = status_of(n, j->rid, st, sizeof(st));

		if (rc == -ENOENT && now - j->enq_ms > ENQUEUE_LOST_MS) {
			enqueue(n, j->m, j->rid);
			j->enq_ms = now;
		}
		if (rc == 0 && strcmp(st, "succeeded") == 0) {
			natsMsg_Ack(j->m, NULL);
			atomic_fetch_add(&n->acked, 1);
		} else if (rc == 0 &&
			   (strcmp(st, "failed") == 0 ||
			    (strcmp(st, "dead") == 0 && (int64_t)j->delivered >= n->max_deliver))) {
			/* failed (a 4xx) will not get better; dead after max_deliver deliveries
			 * stays in flint's dead letter (flint requests --dead). */
			natsMsg_Term(j->m, NULL);
			atomic_fetch_add(&n->termed, 1);
			fl_warn("triggers",
				"function %s: NATS message %s of stream %s given up (request %s "
				"%s after %llu deliveries)",
				n->fn, j->rid, n->stream, j->rid, st,
				(unsigned long long)j->delivered);
		} else if (rc == 0 && strcmp(st, "dead") == 0) {
			uint64_t delay = 1000;
			for (uint64_t k = 1; k < j->delivered && delay < NAK_MAX_MS; k++)
				delay *= 2;
			natsMsg_NakWithDelay(
			    j->m, (int64_t)(delay < NAK_MAX_MS ? delay : NAK_MAX_MS), NULL);
			atomic_fetch_add(&n->naked, 1);
		} else {
			if (now - j->progress_ms > ACK_WAIT_MS / 3) {
				/* Still running (retries can take long): not redelivered yet. */
				natsMsg_InProgress(j->m, NULL);
				j->progress_ms = now;
			}
			i++;
			continue;
		}
		natsMsg_Destroy(j->m);
		*j = n->jm[--n->njm];
	}
}

/* Creates (or updates) the durable consumer and binds a pull subscription to
 * it: a consumer flint did not create through the subscription is not
 * deleted when the subscription goes, so it survives restarts. */
static natsStatus js_setup(fl_trigger_nats *n)
{
	jsConsumerConfig cc;
	jsSubOptions so;
	jsErrCode jerr = 0;
	jsStreamInfo *si = NULL;
	natsStatus s;
	char key[600], hex[65];

	if (n->js == NULL && (s = natsConnection_JetStream(&n->js, n->nc, NULL)) != NATS_OK)
		return s;
	if ((s = js_GetStreamInfo(&si, n->js, n->stream, NULL, &jerr)) != NATS_OK)
		return s;
	/* Request ids carry stream sequences, which start again at 1 in a stream
	 * deleted and created again: its creation time keeps them apart. */
	snprintf(key, sizeof(key), "%s %s %s %s %lld", n->fn, n->url, n->stream, n->durable,
		 (long long)si->Created);
	jsStreamInfo_Destroy(si);
	fl_sha256_hex(key, strlen(key), hex);
	snprintf(n->idprefix, sizeof(n->idprefix), "%.10s", hex);
	jsConsumerConfig_Init(&cc);
	cc.Durable = n->durable;
	cc.AckPolicy = js_AckExplicit;
	cc.AckWait = (int64_t)ACK_WAIT_MS * 1000000; /* nanoseconds */
	cc.MaxDeliver = n->max_deliver;
	cc.FilterSubject = n->subject;
	s = js_AddConsumer(NULL, n->js, n->stream, &cc, NULL, &jerr);
	if (s != NATS_OK)
		s = js_UpdateConsumer(NULL, n->js, n->stream, &cc, NULL, &jerr);
	if (s != NATS_OK)
		return s;
	jsSubOptions_Init(&so);
	so.Stream = n->stream;
	so.Consumer = n->durable;
	return js_PullSubscribe(&n->sub, n->js, n->subject, n->durable, NULL, &so, &jerr);
}

static void js_loop(fl_trigger_nats *n)
{
	uint64_t last_poll = 0;

	while (!atomic_load(&n->stopf)) {
		natsMsgList list = {0};
		natsStatus s;

		if (n->njm && fl_now_ms() - last_poll >= POLL_MS) {
			last_poll = fl_now_ms();
			js_poll(n);
		}
		if (n->njm >= JS_INFLIGHT) {
			nap(n, POLL_MS);
			continue;
		}
		s = natsSubscription_Fetch(&list, n->sub, (int)(JS_INFLIGHT - n->njm),
					   n->njm ? POLL_MS : FETCH_WAIT_MS, NULL);
		if (s == NATS_OK) {
			for (int i = 0; i < list.Count; i++) {
				js_take(n, list.Msgs[i]);
				list.Msgs[i] = NULL;
			}
		} else if (s != NATS_TIMEOUT) {
			nap(n, FETCH_WAIT_MS); /* disconnected: cnats reconnects */
		}
		natsMsgList_Destroy(&list);
	}
}

/* ---- the thread ---- */

static natsStatus connect_nats(fl_trigger_nats *n)
{
	natsOptions *o = NULL;
	natsStatus s;

	if ((s = natsOptions_Create(&o)) != NATS_OK)
		return s;
	if ((s = natsOptions_SetURL(o, n->url)) == NATS_OK &&
	    (s = natsOptions_SetName(o, "flint")) == NATS_OK &&
	    (s = natsOptions_SetTimeout(o, 2000)) == NATS_OK &&
	    (s = natsOptions_SetMaxReconnect(o, -1)) == NATS_OK &&
	    (s = natsOptions_SetReconnectWait(o, 1000)) == NATS_OK &&
	    (s = natsOptions_SetDisconnectedCB(o, on_disconnected, n)) == NATS_OK &&
	    (s = natsOptions_SetReconnectedCB(o, on_reconnected, n)) == NATS_OK &&
	    (s = natsOptions_SetClosedCB(o, on_closed, n)) == NATS_OK)
		s = natsConnection_Connect(&n->nc, o);
	natsOptions_Destroy(o);
	return s;
}

static natsStatus subscribe_core(fl_trigger_nats *n)
{
	natsStatus s;

	if (n->queue)
		s = natsConnection_QueueSubscribe(&n->sub, n->nc, n->subject, n->queue, on_msg, n);
	else
		s = natsConnection_Subscribe(&n->sub, n->nc, n->subject, on_msg, n);
	if (s == NATS_OK)
		s = natsSubscription_SetOnCompleteCB(n->sub, on_complete, n);
	if (s == NATS_OK)
		s = natsConnection_Flush(n->nc); /* the server knows the subscription now */
	return s;
}

static void *run(void *arg)
{
	fl_trigger_nats *n = arg;
	uint64_t backoff = BACKOFF_MIN_MS;
	int said = 0;
	natsStatus s;

	while (!atomic_load(&n->stopf)) {
		const char *what = "connect";
		if (n->nc == NULL)
			s = connect_nats(n);
		else
			s = NATS_OK;
		if (s == NATS_OK) {
			what = n->stream ? "set up the JetStream consumer" : "subscribe";
			s = n->stream ? js_setup(n) : subscribe_core(n);
		}
		if (s == NATS_OK)
			break;
		if (!said)
			fl_warn("triggers",
				"function %s: cannot %s on NATS at %s (%s); retrying until it "
				"works",
				n->fn, what, n->url, last_error(s));
		said = 1;
		set_state(n, "error: cannot %s: %s", what, last_error(s));
		if (n->sub) {
			natsSubscription_Destroy(n->sub);
			n->sub = NULL;
		}
		nap(n, backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	if (!atomic_load(&n->stopf)) {
		if (said)
			fl_info("triggers", "function %s: NATS trigger on %s runs now", n->fn,
				n->subject);
		set_state(n, "running");
		if (n->stream) {
			js_loop(n);
		} else {
			pthread_mutex_lock(&n->mu);
			while (!n->stop)
				pthread_cond_wait(&n->cond, &n->mu);
			pthread_mutex_unlock(&n->mu);
		}
	}
	if (n->sub && !n->stream) {
		/* Wait until no callback runs: they use n. */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += REPLY_TIMEOUT_MS / 1000 + 2; /* a call under way aborts at once */
		natsSubscription_Unsubscribe(n->sub);
		pthread_mutex_lock(&n->mu);
		while (!n->sub_done && pthread_cond_timedwait(&n->cond, &n->mu, &ts) == 0)
			;
		pthread_mutex_unlock(&n->mu);
	}
	for (size_t i = 0; i < n->njm; i++)
		natsMsg_Destroy(n->jm[i].m); /* not acked: the server redelivers them */
	n->njm = 0;
	natsSubscription_Destroy(n->sub);
	jsCtx_Destroy(n->js);
	if (n->nc) {
		/* Close, then wait for the closed callback: a disconnected callback
		 * queued by the close runs before it, and both use n. */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += CLOSE_WAIT_S;
		natsConnection_Close(n->nc);
		pthread_mutex_lock(&n->mu);
		while (!n->closed && pthread_cond_timedwait(&n->cond, &n->mu, &ts) == 0)
			;
		n->leaked = !n->closed;
		pthread_mutex_unlock(&n->mu);
		if (n->leaked)
			fl_warn("triggers",
				"function %s: the NATS client did not report its connection "
				"closed in %d s; keeping the trigger's memory",
				n->fn, CLOSE_WAIT_S);
	}
	natsConnection_Destroy(n->nc);
	n->sub = NULL;
	n->js = NULL;
	n->nc = NULL;
	return NULL;
}

/* ---- public ---- */

fl_trigger_nats *fl_trigger_nats_start(fl_async *a, const char *fn, json_t *spec,
				       const char *gw_base)
{
	fl_trigger_nats *n = fl_xcalloc(1, sizeof(*n));
	json_t *js = json_object_get(spec, "jetstream"), *q = json_object_get(spec, "queue");
	pthread_condattr_t attr;
	char key[600], hex[65];

	n->a = a;
	n->fn = fl_xstrdup(fn);
	n->spec = json_incref(spec);
	n->url = fl_xstrdup(json_string_value(json_object_get(spec, "url")));
	n->subject = fl_xstrdup(json_string_value(json_object_get(spec, "subject")));
	if (json_is_string(q))
		n->queue = fl_xstrdup(json_string_value(q));
	if (json_is_object(js)) {
		n->stream = fl_xstrdup(json_string_value(json_object_get(js, "stream")));
		n->durable = fl_xstrdup(json_string_value(json_object_get(js, "durable")));
	}
	n->max_deliver = json_integer_value(json_object_get(spec, "max_deliver"));
	if (n->max_deliver <= 0)
		n->max_deliver = 5;
	snprintf(n->gw_base, sizeof(n->gw_base), "%s", gw_base);
	snprintf(key, sizeof(key), "%s %s %s %s", fn, n->url, n->stream ? n->stream : "",
		 n->durable ? n->durable : "");
	fl_sha256_hex(key, strlen(key), hex);
	snprintf(n->idprefix, sizeof(n->idprefix), "%.10s", hex);
	snprintf(n->state, sizeof(n->state), "connecting");
	pthread_mutex_init(&n->mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&n->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&n->thr, NULL, run, n) != 0) {
		snprintf(n->state, sizeof(n->state), "error: cannot start a thread");
		fl_error("triggers", "function %s: NATS trigger: cannot start a thread", fn);
		return n;
	}
	n->has_thr = 1;
	fl_info("triggers", "function %s: consuming NATS %s%s%s at %s", fn,
		n->stream ? "JetStream consumer " : "subject ", n->stream ? n->durable : n->subject,
		n->queue ? " in queue group " : "", n->url);
	return n;
}

void fl_trigger_nats_stop(fl_trigger_nats *n)
{
	if (n == NULL)
		return;
	atomic_store(&n->stopf, 1);
	pthread_mutex_lock(&n->mu);
	n->stop = 1;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->mu);
	if (n->has_thr)
		pthread_join(n->thr, NULL);
	if (n->leaked)
		return; /* a library callback may still come: better a leak than a use after free */
	free(n->jm);
	pthread_cond_destroy(&n->cond);
	pthread_mutex_destroy(&n->mu);
	free(n->url);
	free(n->subject);
	free(n->queue);
	free(n->stream);
	free(n->durable);
	free(n->fn);
	json_decref(n->spec);
	free(n);
}

void fl_trigger_nats_info(fl_trigger_nats *n, json_t *j)
{
	pthread_mutex_lock(&n->mu);
	json_object_set_new(j, "state", json_string(n->state));
	pthread_mutex_unlock(&n->mu);
	json_object_set_new(j, "fired", json_integer((json_int_t)atomic_load(&n->received)));
	json_object_set_new(j, "enqueued", json_integer((json_int_t)atomic_load(&n->enqueued)));
	json_object_set_new(j, "replied", json_integer((json_int_t)atomic_load(&n->replied)));
	if (n->stream) {
		json_object_set_new(j, "acked", json_integer((json_int_t)atomic_load(&n->acked)));
		json_object_set_new(j, "naked", json_integer((json_int_t)atomic_load(&n->naked)));
		json_object_set_new(j, "termed", json_integer((json_int_t)atomic_load(&n->termed)));
	}
}

void fl_trigger_nats_metrics_head(fl_buf *out)
{
	fl_buf_puts(out, "# HELP flint_trigger_nats_messages_total NATS messages a trigger "
			 "received, enqueued, answered (request/reply), acked, nak'ed or "
			 "terminated (JetStream).\n"
			 "# TYPE flint_trigger_nats_messages_total counter\n");
}

void fl_trigger_nats_metrics(fl_trigger_nats *n, fl_buf *out)
{
	static const char *const names[] = {"received", "enqueued", "replied",
					    "acked",	"naked",    "termed"};
	atomic_uint_fast64_t *vals[] = {&n->received, &n->enqueued, &n->replied,
					&n->acked,    &n->naked,    &n->termed};

	for (size_t i = 0; i < 6; i++)
		fl_buf_printf(out,
			      "flint_trigger_nats_messages_total{function=\"%s\",subject=\"%s\","
			      "outcome=\"%s\"} %llu\n",
			      n->fn, n->subject, names[i],
			      (unsigned long long)atomic_load(vals[i]));
}
