/* spec.h -- a function's spec: validated from JSON, with defaults filled in.
 *
 * The admin API accepts exactly one format, JSON; the CLI turns flint.yaml into
 * it. Every error names the field that is wrong, e.g.
 * "scale.max: must be an integer between 1 and 10000". Fields are documented
 * in docs/spec.md. */
#ifndef FL_SPEC_H
#define FL_SPEC_H

#include <jansson.h>
#include <stdint.h>

/* Readiness: TCP connect, HTTP GET path answered 2xx, or the standard gRPC
 * health service (grpc.health.v1.Health/Check) answering SERVING. */
enum fl_health_type { FL_HEALTH_TCP, FL_HEALTH_HTTP, FL_HEALTH_GRPC };

typedef struct fl_spec {
	char *name;  /* a DNS label, see fl_valid_name() */
	char **argv; /* NULL-terminated; a string command becomes {"/bin/sh","-c",s}; NULL (argc 0)
			only with image: the image's Entrypoint and Cmd run */
	int argc;
	char *protocol;	 /* "http" (later: "grpc", "http2", "thrift", "tcp") */
	char **services; /* grpc: NULL-terminated service names ("pkg.Service"), or NULL */
	int nservices;
	uint32_t thrift_port; /* thrift: a dedicated port for clients that send no header, or 0 */
	char **env;	      /* NULL-terminated "K=V" strings, in spec order */
	int nenv;
	char *workdir; /* absolute directory to run in when no code is attached; may be NULL */
	char *code;    /* "sha256:<64 hex>" of an uploaded tar.gz, or NULL */
	char *build;   /* shell command run once per code digest before the first start, or NULL */
	uint32_t min, max; /* instances; 0 <= min <= max, 1 <= max <= 10000 (defaults 0, 10) */
	uint32_t
	    concurrency;   /* hard cap of in-flight requests per instance, 0 = none (default 0) */
	uint32_t target;   /* in-flight per instance the autoscaler aims for (default:
			      concurrency if set, else 100) */
	uint32_t reserved; /* instances always kept warm, used only when no elastic one has
			      room; on top of min..max (default 0) */
	uint64_t idle_timeout_ms; /* default 60 s, at least 1 s */
	uint64_t timeout_ms;	  /* whole-request limit, default 60 s */
	uint64_t max_body;	  /* request body limit in bytes, default 64 MiB, 0 = none */
	uint64_t memory;	  /* limits.memory: bytes per instance, 0 = no limit (default) */
	uint32_t cpu_millis;	  /* limits.cpu: thousandths of a CPU per instance, 0 = no limit */
	uint32_t pids;		  /* limits.pids: processes+threads per instance, 0 = no limit */
	int sandbox;		  /* run instances sandboxed (default 1) */
	int net_isolated;	  /* network: "isolated": the instances share a network namespace of
				     the function's own, reachable only through flint (default
				     "host": the host's network) */
	enum fl_health_type health_type; /* default tcp */
	char *health_path;		 /* FL_HEALTH_HTTP: path starting with '/' */
	uint64_t startup_timeout_ms;	 /* ready within this or the start failed; default 30 s */
	/* health.liveness: the same check repeated on ready instances every interval;
	 * after failures consecutive failures the instance is replaced. A check not
	 * answered within timeout failed. interval 0 = no liveness checks (default). */
	uint64_t liveness_interval_ms, liveness_timeout_ms;
	uint32_t liveness_failures;
	uint32_t queue_max;	   /* requests held while no instance has room; default 1000 */
	uint64_t queue_timeout_ms; /* how long one may be held; default 30 s */
	/* async: settings of async calls (see struct fl_async_conf for the defaults) */
	uint32_t async_retries, async_concurrency;
	uint64_t async_backoff_min_ms, async_backoff_max_ms, async_max_age_ms;
	uint64_t async_timeout_ms; /* 0: limits.timeout */
	json_t *triggers;	   /* validated array of {cron|redis|nats}, or NULL */
	char **secrets; /* NULL-terminated names of secrets mounted under /run/secrets, or NULL */
	int nsecrets;
	json_t *labels, *annotations; /* free metadata: objects of strings, or NULL when empty */
	/* A root file system of the function's own (sandboxed only; at most one of the two):
	 * rootfs, an absolute directory; or image, an absolute OCI image layout directory
	 * optionally followed by ":TAG" (see control/image.h). NULL when not set. */
	char *rootfs;
	char *image;
} fl_spec;

#define FL_SPEC_MAX_SECRETS 64

/* Validates j and builds a spec. On success returns 0 and *out (free with
 * fl_spec_free). On error returns -EINVAL and writes one sentence naming the
 * field into err (always NUL-terminated). Unknown top-level fields are errors
 * (a typo must not pass silently). j is not modified or retained. */
int fl_spec_parse(const json_t *j, fl_spec **out, char *err, size_t errlen);

/* The normalized JSON form of a spec, with every default written out; durations
 * as strings ("60s"), sizes as integers. fl_spec_parse() of it yields an equal
 * spec. The caller owns the returned reference. */
json_t *fl_spec_to_json(const fl_spec *s);

/* Frees everything the spec holds and the spec itself. NULL is fine. */
void fl_spec_free(fl_spec *s);

#endif
