/* handler.c -- the function {{NAME}}: flint calls handle() for every request.
 *
 * Fill resp with fl_resp_write/fl_resp_printf/fl_resp_header and set resp->status
 * (200 by default); return 0. Return fl_fail(resp, "why") for a 500 answer whose
 * reason is written to `flint logs {{NAME}}`. Requests arrive on several threads at
 * once: keep shared state behind a lock. */
#include "flint.h"

int handle(const struct fl_req *req, struct fl_resp *resp)
{
	char who[128];

	/* {"name": "you"} in the body greets you instead. */
	if (fl_json_string(req->body, req->body_len, "name", who, sizeof(who)) < 0)
		snprintf(who, sizeof(who), "%s", "world");
	fl_resp_header(resp, "Content-Type", "text/plain; charset=utf-8");
	fl_resp_printf(resp, "hello from {{NAME}} to %s\n", who);
	return 0;
}
