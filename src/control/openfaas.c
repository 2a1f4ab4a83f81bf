/* openfaas.c -- the OpenFaaS-compatible API on the gateway port (/system/...). */
#include <string.h>

#include "control/ctl.h"
#include "gateway/gateway.h"

void ctl_openfaas(fl_ctl *ctl, const struct ctl_sysreq *r)
{
	static const char body[] = "{\"error\": \"the OpenFaaS-compatible API is being built\"}\n";

	(void)ctl;
	fl_gateway_offload_done(r->thread, r->cookie, 501, "application/json", body,
				sizeof(body) - 1, NULL);
}
