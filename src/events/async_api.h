/* async_api.h -- the admin API's routes for async requests and triggers
 * (docs/api.md): /v1/requests[/ID[/retry]], /v1/triggers. */
#ifndef FL_ASYNC_API_H
#define FL_ASYNC_API_H

#include "events/async.h"
#include "net/httpd.h"

/* Answers one request under /v1/requests or /v1/triggers (already
 * authorized), on the control thread. Retrying waits for one group commit. */
void fl_async_admin(fl_async *a, fl_httpd_req *req, fl_httpd_resp *resp);

#endif
