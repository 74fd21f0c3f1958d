/* Readiness checks: a registry that dependencies add themselves to.
 *
 * /health/live answers 200 while the process runs. /health/ready asks every
 * registered check and reports {"status":"up|degraded|down","checks":{...}}:
 * down when any check is down (HTTP 503), degraded when any is degraded
 * (still 200, so a load balancer keeps the instance while it limps), up
 * otherwise. A gateway reading this does not eject every instance at once
 * just because a shared database slowed down. */
#ifndef STRATA_OBSERVE_HEALTH_H
#define STRATA_OBSERVE_HEALTH_H

#include <stddef.h>

#include "core/strbuf.h"

enum health_status {
  HEALTH_UP = 0,   /* serving normally */
  HEALTH_DEGRADED, /* serving, with a problem worth a look */
  HEALTH_DOWN      /* cannot serve */
};

/* A check fills detail (a short sentence, may stay empty) and returns its
 * status. Called on any worker thread, so it must be thread-safe and quick:
 * read state other code keeps up to date rather than probing here. */
typedef enum health_status (*health_check_cb)(void *ctx, char *detail, size_t detail_len);

/* Adds a named check (name copied). Returns 0, or -1 when the table is full. */
int health_register(const char *name, health_check_cb cb, void *ctx);
void health_reset(void);

/* Appends the readiness JSON to sb and returns the overall status. */
enum health_status health_write_ready(struct strbuf *sb);
const char *health_status_name(enum health_status s);

#endif
