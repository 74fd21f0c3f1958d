/* Active health checks and configuration reloads: one thread, one loop.
 *
 * A timer per upstream host sends GET <pool's health path> (by default the
 * service's /health/ready: a database outage makes it "degraded", still
 * 200, so a shared dependency does not eject every host at once). rise
 * consecutive successes mark a host healthy, fall consecutive failures
 * unhealthy; the verdict is an atomic int in the conf that the workers read
 * before each pick.
 *
 * The same loop takes SIGHUP: the reloader builds the configuration again
 * (file + command line); a configuration with errors is refused with them
 * in the log and the running one stays; a good one is published (workers
 * switch at their next request, calls in flight finish on the old one) and
 * the checks are rebuilt for its hosts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/internal.h"
#include "observe/log.h"

struct teardown;

struct check {
  struct gateway *g;
  struct teardown *dying;     /* set when the check is being torn down */
  struct gw_conf *conf;       /* referenced while the check exists */
  const struct gw_pool *pool; /* interval, timeout, rise, fall, path */
  unsigned index;
  uv_timer_t timer;
  struct upstream_host *host;
  struct arena arena;
  unsigned ok_run, fail_run;
  int busy;
  char request[512];
};

struct checks {
  struct check *items;
  unsigned n;
};

static struct checks current;

static void teardown_release(struct teardown *t);

static void on_check_done(int rc, struct upstream_response *r, void *arg) {
  struct check *c = arg;
  c->busy = 0;
  if (c->dying) { /* the check is being torn down (rc is ECANCELED) */
    teardown_release(c->dying);
    return;
  }
  int ok = rc == UPSTREAM_OK && r->status >= 200 && r->status < 400;
  int *healthy = &c->conf->healthy[c->index];
  int was = __atomic_load_n(healthy, __ATOMIC_RELAXED);
  if (ok) {
    c->fail_run = 0;
    if (++c->ok_run >= c->pool->health_rise && !was) {
      __atomic_store_n(healthy, 1, __ATOMIC_RELAXED);
      log_event(LOG_WARN, "upstream_healthy", NULL, "%s passed %u checks in a row: back in the pool",
                upstream_host_name(c->host), c->ok_run);
    }
  } else {
    c->ok_run = 0;
    if (++c->fail_run >= c->pool->health_fall && was) {
      __atomic_store_n(healthy, 0, __ATOMIC_RELAXED);
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

/* A set of checks being torn down: freed once every timer has closed and
 * every check in flight has been called back (with ECANCELED), in
 * whatever order the loop runs those. */
struct teardown {
  struct check *items;
  unsigned n, open;
};

static void teardown_release(struct teardown *t) {
  if (--t->open)
    return;
  for (unsigned i = 0; i < t->n; i++) {
    arena_free(&t->items[i].arena);
    gw_conf_release(t->items[i].conf);
  }
  free(t->items);
  free(t);
}

static void on_timer_closed(uv_handle_t *h) { teardown_release(h->data); }

static void checks_close(struct checks *cs) {
  struct teardown *t = calloc(1, sizeof *t);
  if (!t)
    return; /* leaks the old checks rather than freeing them under a timer */
  t->items = cs->items;
  t->n = cs->n;
  t->open = 1; /* ours, released below */
  for (unsigned i = 0; i < cs->n; i++) {
    struct check *c = &cs->items[i];
    c->dying = t;
    if (c->busy)
      t->open++; /* its callback comes with ECANCELED */
    upstream_host_free(c->host);
    c->host = NULL;
    if (c->timer.type == UV_TIMER) {
      t->open++;
      c->timer.data = t;
      uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    }
  }
  teardown_release(t);
  cs->items = NULL;
  cs->n = 0;
}

static int checks_open(struct gateway *g, struct checks *cs) {
  uv_mutex_lock(&g->workers_lock);
  struct gw_conf *conf = g->conf;
  __atomic_add_fetch(&conf->refs, 1, __ATOMIC_ACQ_REL);
  uv_mutex_unlock(&g->workers_lock);
  cs->n = conf->s.n_hosts;
  cs->items = calloc(cs->n, sizeof *cs->items);
  if (!cs->items) {
    gw_conf_release(conf);
    cs->n = 0;
    return -1;
  }
  for (unsigned i = 0; i < cs->n; i++) {
    struct check *c = &cs->items[i];
    c->g = g;
    c->conf = conf;
    if (i)
      __atomic_add_fetch(&conf->refs, 1, __ATOMIC_ACQ_REL); /* one per check */
    c->pool = &conf->s.pools[conf->s.hosts[i].pool];
    c->index = i;
    arena_init(&c->arena, 4096);
    if (!c->pool->health_interval_ms)
      continue; /* this pool is not checked */
    c->host = upstream_host_new(&g->checker_loop, conf->s.hosts[i].host, conf->s.hosts[i].port, 1,
                                c->pool->health_timeout_ms);
    uv_timer_init(&g->checker_loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, on_tick, 0, c->pool->health_interval_ms);
  }
  return 0;
}

void gw_health_rebuild(struct gateway *g) {
  checks_close(&current);
  checks_open(g, &current);
}

static void on_sighup(uv_signal_t *h, int signum) {
  (void)signum;
  struct gateway *g = h->data;
  if (!g->reload) {
    log_event(LOG_WARN, "reload_refused", NULL, "SIGHUP: this gateway has nothing to reload");
    return;
  }
  static struct gw_settings s; /* large; only this thread reloads */
  char why[1024] = "";
  struct gw_conf *c = NULL;
  if (g->reload(g->reload_ctx, &s, why, sizeof why) == 0)
    c = gw_conf_new(&s, why, sizeof why);
  if (!c) {
    __atomic_add_fetch(&g->reload_failures, 1, __ATOMIC_RELAXED);
    log_event(LOG_ERROR, "reload_refused", NULL,
              "SIGHUP: the new configuration is refused; the running one stays: %s", why);
    return;
  }
  gw_publish(g, c);
  gw_health_rebuild(g);
  __atomic_add_fetch(&g->reloads, 1, __ATOMIC_RELAXED);
  log_event(LOG_INFO, "reloaded", NULL, "SIGHUP: configuration %llu loaded: %u routes, %u pools, "
            "%u hosts", (unsigned long long)c->generation, c->s.n_routes, c->s.n_pools,
            c->s.n_hosts);
}

static void on_stop(uv_async_t *a) {
  struct gateway *g = a->data;
  checks_close(&current);
  uv_close((uv_handle_t *)&g->sighup, NULL);
  uv_close((uv_handle_t *)a, NULL);
}

static void checker_main(void *arg) {
  struct gateway *g = arg;
  uv_run(&g->checker_loop, UV_RUN_DEFAULT);
  uv_loop_close(&g->checker_loop);
}

int gw_health_start(struct gateway *g) {
  if (uv_loop_init(&g->checker_loop) != 0 || checks_open(g, &current) != 0)
    return -1;
  uv_signal_init(&g->checker_loop, &g->sighup);
  g->sighup.data = g;
  uv_signal_start(&g->sighup, on_sighup, SIGHUP);
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
}
