/* The operational endpoints every strata process serves:
 *   GET /health/live   200 {"status":"up"} while the process runs
 *   GET /health/ready  the readiness registry (observe/health.h); 503 when down
 *   GET /metrics       Prometheus text exposition (observe/metrics.h) */
#ifndef STRATA_OBSERVE_ROUTES_H
#define STRATA_OBSERVE_ROUTES_H

#include "http/router.h"

/* Adds the routes above to r. Returns 0 or -1. */
int observe_routes_register(struct router *r);

#endif
