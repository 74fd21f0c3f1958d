/* Active health checks: one thread, one loop, a timer per upstream host
 * sending GET /health/ready (the service's readiness: a database outage
 * makes it "degraded", still 200, so a shared dependency does not eject
 * every host at once). rise consecutive successes mark a host healthy, fall
 * consecutive failures unhealthy; the verdict is an atomic int the workers
 * read before each pick. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/internal.h"
#include "observe/log.h"

struct check {
  struct gateway *g;
  const struct gw_pool *pool; /* interval, timeout, rise, fall, path */
  unsigned index;
  uv_timer_t timer;
  struct upstream_host *host;
  struct arena arena;
  unsigned ok_run, fail_run;
  int busy;
  char request[512];
};

static struct check *checks;

static void on_check_done(int rc, struct upstream_response *r, void *arg) {
  struct check *c = arg;
  struct gateway *g = c->g;
  c->busy = 0;
  int ok = rc == UPSTREAM_OK && r->status >= 200 && r->status < 400;
  int was = __atomic_load_n(&g->healthy[c->index], __ATOMIC_RELAXED);
  if (ok) {
    c->fail_run = 0;
    if (++c->ok_run >= c->pool->health_rise && !was) {
      __atomic_store_n(&g->healthy[c->index], 1, __ATOMIC_RELAXED);
      log_event(LOG_WARN, "upstream_healthy", NULL, "%s passed %u checks in a row: back in the pool",
                upstream_host_name(c->host), c->ok_run);
    }
  } else {
    c->ok_run = 0;
    if (++c->fail_run >= c->pool->health_fall && was) {
      __atomic_store_n(&g->healthy[c->index], 0, __ATOMIC_RELAXED);
      if (rc == UPSTREAM_OK)
        log_event(LOG_WARN, "upstream_unhealthy", NULL, "%s failed %u checks in a row (status %d)",
                  upstream_host_name(c->host), c->fail_run, r->status);
      else
        log_event(LOG_WARN, "upstream_unhealthy", NULL, "%s failed %u checks in a row (%s)",
                  upstream_host_name(c->host), c->fail_run, upstream_result_name(rc));
    }
  }
  arena_reset(&c->arena);
}

static void on_tick(uv_timer_t *t) {
  struct check *c = t->data;
  if (c->busy)
    return;
  /* the request must outlive the call: it lives in the check */
  char *req = c->request;
  int n = snprintf(req, sizeof c->request,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: strata-health\r\n\r\n",
                   c->pool->health_path, upstream_host_name(c->host));
  if (n < 0 || (size_t)n >= sizeof c->request)
    return;
  if (upstream_request(c->host, req, (size_t)n, 0, c->pool->health_timeout_ms, 65536, &c->arena,
                       on_check_done, c, NULL) == 0)
    c->busy = 1;
}

static void on_stop(uv_async_t *a) {
  struct gateway *g = a->data;
  for (unsigned i = 0; i < g->s.n_hosts; i++) {
    if (checks[i].host)
      uv_close((uv_handle_t *)&checks[i].timer, NULL);
    upstream_host_free(checks[i].host);
  }
  uv_close((uv_handle_t *)a, NULL);
}

static void checker_main(void *arg) {
  struct gateway *g = arg;
  uv_run(&g->checker_loop, UV_RUN_DEFAULT);
  uv_loop_close(&g->checker_loop);
}

int gw_health_start(struct gateway *g) {
  checks = calloc(g->s.n_hosts, sizeof *checks);
  if (!checks || uv_loop_init(&g->checker_loop) != 0)
    return -1;
  for (unsigned i = 0; i < g->s.n_hosts; i++) {
    struct check *c = &checks[i];
    c->g = g;
    c->pool = &g->s.pools[g->s.hosts[i].pool];
    c->index = i;
    arena_init(&c->arena, 4096);
    if (!c->pool->health_interval_ms)
      continue; /* this pool is not checked */
    c->host = upstream_host_new(&g->checker_loop, g->s.hosts[i].host, g->s.hosts[i].port, 1,
                                c->pool->health_timeout_ms);
    uv_timer_init(&g->checker_loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, on_tick, 0, c->pool->health_interval_ms);
  }
  uv_async_init(&g->checker_loop, &g->checker_stop, on_stop);
  g->checker_stop.data = g;
  if (uv_thread_create(&g->checker, checker_main, g) != 0)
    return -1;
  g->checker_running = 1;
  return 0;
}

void gw_health_stop(struct gateway *g) {
  if (!g->checker_running)
    return;
  uv_async_send(&g->checker_stop);
  uv_thread_join(&g->checker);
  g->checker_running = 0;
  for (unsigned i = 0; i < g->s.n_hosts; i++)
    arena_free(&checks[i].arena);
  free(checks);
  checks = NULL;
}
