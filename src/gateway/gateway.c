/* Gateway setup: settings, per-worker state, routes, metrics, readiness;
 * see gateway.h. */
#include "gateway/gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/strbuf.h"
#include "gateway/internal.h"
#include "observe/health.h"
#include "observe/log.h"
#include "observe/metrics.h"
#include "observe/routes.h"

static struct gateway *the_gateway; /* for the metrics collector and readiness */

/* Readiness: down when some pool has no healthy host (its routes can only
 * fail), degraded when any host is out, up otherwise. */
static enum health_status check_pools(void *ctx, char *detail, size_t len) {
  struct gateway *g = ctx;
  unsigned up = 0, empty = 0;
  const char *empty_name = NULL;
  for (unsigned p = 0; p < g->s.n_pools; p++) {
    unsigned pool_up = 0;
    for (unsigned i = 0; i < g->s.pools[p].n_hosts; i++)
      pool_up += __atomic_load_n(&g->healthy[gw_host_index(g, p, (int)i)], __ATOMIC_RELAXED) != 0;
    if (!pool_up) {
      empty++;
      empty_name = g->s.pools[p].name;
    }
    up += pool_up;
  }
  if (empty)
    snprintf(detail, len, "pool %s has no healthy host (%u of %u pools empty)", empty_name, empty,
             g->s.n_pools);
  else
    snprintf(detail, len, "%u of %u upstream hosts healthy", up, g->s.n_hosts);
  return empty ? HEALTH_DOWN : up < g->s.n_hosts ? HEALTH_DEGRADED : HEALTH_UP;
}

/* Sums a uint64_t counter at byte offset off of every worker's host or
 * route stats. */
static uint64_t sum_stat(struct gateway *g, int route, unsigned index, size_t off) {
  uint64_t n = 0;
  for (unsigned w = 0; w < g->n_workers; w++) {
    const char *base = route ? (const char *)&g->workers[w]->route_stats[index]
                             : (const char *)&g->workers[w]->stats[index];
    n += __atomic_load_n((const uint64_t *)(base + off), __ATOMIC_RELAXED);
  }
  return n;
}

static void host_labels(struct strbuf *sb, const struct gateway *g, unsigned h) {
  strbuf_printf(sb, "{pool=\"%s\",upstream=\"%s:%u\"", g->s.pools[g->s.hosts[h].pool].name,
                g->s.hosts[h].host, g->s.hosts[h].port);
}

static void family(struct strbuf *sb, const char *name, const char *type, const char *help) {
  strbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void collect(struct strbuf *sb, void *ctx) {
  struct gateway *g = ctx;
  static const char *const classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  uv_mutex_lock(&g->workers_lock);
  const struct {
    const char *name, *help;
    size_t off;
  } host_fams[] = {
      {"strata_gateway_upstream_requests_total", "Tries sent to an upstream host.",
       offsetof(struct gw_host_stats, requests)},
      {"strata_gateway_upstream_failures_total", "Tries that ended without a usable answer.",
       offsetof(struct gw_host_stats, failures)},
      {"strata_gateway_upstream_retries_total", "Tries that were retries.",
       offsetof(struct gw_host_stats, retries)},
      {"strata_gateway_breaker_rejected_total", "Tries an open host circuit breaker turned away.",
       offsetof(struct gw_host_stats, breaker_rejected)},
      {"strata_gateway_upstream_ejections_total", "Passive outlier ejections of the host.",
       offsetof(struct gw_host_stats, ejections)},
  };
  for (size_t f = 0; f < sizeof host_fams / sizeof host_fams[0]; f++) {
    family(sb, host_fams[f].name, "counter", host_fams[f].help);
    for (unsigned h = 0; h < g->s.n_hosts; h++) {
      strbuf_puts(sb, host_fams[f].name);
      host_labels(sb, g, h);
      strbuf_printf(sb, "} %llu\n", (unsigned long long)sum_stat(g, 0, h, host_fams[f].off));
    }
  }
  family(sb, "strata_gateway_upstream_responses_total", "counter",
         "Upstream answers by status class.");
  for (unsigned h = 0; h < g->s.n_hosts; h++)
    for (int c = 0; c < 5; c++) {
      uint64_t n = sum_stat(g, 0, h, offsetof(struct gw_host_stats, responses) + (size_t)c * 8);
      if (!n)
        continue;
      strbuf_puts(sb, "strata_gateway_upstream_responses_total");
      host_labels(sb, g, h);
      strbuf_printf(sb, ",status=\"%s\"} %llu\n", classes[c], (unsigned long long)n);
    }
  family(sb, "strata_gateway_breaker_open", "gauge",
         "Workers whose breaker for the host is not closed (0 = closed everywhere).");
  for (unsigned h = 0; h < g->s.n_hosts; h++) {
    unsigned open = 0;
    for (unsigned w = 0; w < g->n_workers; w++)
      open += breaker_state(&g->workers[w]->breakers[h]) != BREAKER_CLOSED;
    strbuf_puts(sb, "strata_gateway_breaker_open");
    host_labels(sb, g, h);
    strbuf_printf(sb, "} %u\n", open);
  }
  family(sb, "strata_gateway_upstream_healthy", "gauge", "Active health check verdict.");
  for (unsigned h = 0; h < g->s.n_hosts; h++) {
    strbuf_puts(sb, "strata_gateway_upstream_healthy");
    host_labels(sb, g, h);
    strbuf_printf(sb, "} %d\n", __atomic_load_n(&g->healthy[h], __ATOMIC_RELAXED));
  }
  family(sb, "strata_gateway_upstream_connections", "gauge",
         "Upstream connections, in use (active) or parked for reuse (idle).");
  for (unsigned h = 0; h < g->s.n_hosts; h++) {
    unsigned active = 0, idle = 0;
    for (unsigned w = 0; w < g->n_workers; w++) {
      active += upstream_host_active(g->workers[w]->hosts[h]);
      idle += upstream_host_idle(g->workers[w]->hosts[h]);
    }
    strbuf_puts(sb, "strata_gateway_upstream_connections");
    host_labels(sb, g, h);
    strbuf_printf(sb, ",state=\"active\"} %u\n", active);
    strbuf_puts(sb, "strata_gateway_upstream_connections");
    host_labels(sb, g, h);
    strbuf_printf(sb, ",state=\"idle\"} %u\n", idle);
  }
  const struct {
    const char *name, *help;
    size_t off;
  } route_fams[] = {
      {"strata_gateway_route_rate_limited_total", "Requests of the route answered 429.",
       offsetof(struct gw_route_stats, rate_limited)},
      {"strata_gateway_route_breaker_rejected_total",
       "Requests the route's open circuit breaker turned away.",
       offsetof(struct gw_route_stats, breaker_rejected)},
      {"strata_gateway_route_fallbacks_total", "Requests answered by the route's fallback.",
       offsetof(struct gw_route_stats, fallbacks)},
  };
  for (size_t f = 0; f < sizeof route_fams / sizeof route_fams[0]; f++) {
    family(sb, route_fams[f].name, "counter", route_fams[f].help);
    for (unsigned r = 0; r < g->s.n_routes; r++)
      strbuf_printf(sb, "%s{route=\"%s\"} %llu\n", route_fams[f].name, g->s.routes[r].label,
                    (unsigned long long)sum_stat(g, 1, r, route_fams[f].off));
  }
  family(sb, "strata_gateway_route_breaker_open", "gauge",
         "Workers whose breaker for the route is not closed (0 = closed everywhere).");
  for (unsigned r = 0; r < g->s.n_routes; r++) {
    unsigned open = 0;
    for (unsigned w = 0; w < g->n_workers; w++)
      open += breaker_state(&g->workers[w]->route_breakers[r]) != BREAKER_CLOSED;
    strbuf_printf(sb, "strata_gateway_route_breaker_open{route=\"%s\"} %u\n", g->s.routes[r].label,
                  open);
  }
  uint64_t exhausted = 0;
  for (unsigned w = 0; w < g->n_workers; w++)
    exhausted += __atomic_load_n(&g->workers[w]->budget_exhausted, __ATOMIC_RELAXED);
  strbuf_printf(sb, "# HELP strata_gateway_rate_limited_total Requests answered 429.\n"
                    "# TYPE strata_gateway_rate_limited_total counter\n"
                    "strata_gateway_rate_limited_total %llu\n"
                    "# HELP strata_gateway_auth_failed_total Requests answered 400/401 by authentication.\n"
                    "# TYPE strata_gateway_auth_failed_total counter\n"
                    "strata_gateway_auth_failed_total %llu\n"
                    "# HELP strata_gateway_forbidden_total Requests answered 403: a scope the route "
                    "needs is missing.\n# TYPE strata_gateway_forbidden_total counter\n"
                    "strata_gateway_forbidden_total %llu\n",
                (unsigned long long)__atomic_load_n(&g->rate_limited, __ATOMIC_RELAXED),
                (unsigned long long)__atomic_load_n(&g->auth_failed, __ATOMIC_RELAXED),
                (unsigned long long)__atomic_load_n(&g->forbidden, __ATOMIC_RELAXED));
  strbuf_printf(sb, "# HELP strata_gateway_retry_budget_exhausted_total Retries refused by the "
                    "retry budget.\n# TYPE strata_gateway_retry_budget_exhausted_total counter\n"
                    "strata_gateway_retry_budget_exhausted_total %llu\n",
                (unsigned long long)exhausted);
  uv_mutex_unlock(&g->workers_lock);
}

static void on_breaker_change(void *ctx, const struct breaker *b, enum breaker_state from,
                              enum breaker_state to, const char *reason, uint64_t now_ms) {
  (void)b;
  (void)now_ms;
  const char *host = ctx;
  log_event(to == BREAKER_OPEN ? LOG_WARN : LOG_INFO, "breaker", NULL, "%s: %s -> %s (%s)", host,
            breaker_state_name(from), breaker_state_name(to), reason);
}

static void on_route_breaker_change(void *ctx, const struct breaker *b, enum breaker_state from,
                                    enum breaker_state to, const char *reason, uint64_t now_ms) {
  (void)b;
  (void)now_ms;
  const struct gw_route *r = ctx;
  log_event(to == BREAKER_OPEN ? LOG_WARN : LOG_INFO, "breaker", NULL, "route %s: %s -> %s (%s)",
            r->label, breaker_state_name(from), breaker_state_name(to), reason);
}

struct gateway *gateway_new(const struct strata_config *cfg, const struct gw_settings *s) {
  if (s->n_hosts == 0 || s->n_routes == 0) {
    log_event(LOG_ERROR, "gateway_failed", NULL, "no upstream host or no route");
    return NULL;
  }
  struct gateway *g = calloc(1, sizeof *g);
  if (!g)
    return NULL;
  g->cfg = *cfg;
  g->s = *s;
  for (unsigned i = 0; i < s->n_hosts; i++)
    g->healthy[i] = 1; /* until the checker says otherwise */
  for (unsigned r = 0; r < s->n_routes; r++)
    g->route_metrics[r] = metrics_route_id(s->routes[r].label);
  uv_mutex_init(&g->workers_lock);
  char why[256];
  if (gw_protect_init(g, why, sizeof why) != 0) {
    log_event(LOG_ERROR, "gateway_failed", NULL, "%s", why);
    gw_protect_free(g);
    uv_mutex_destroy(&g->workers_lock);
    free(g);
    return NULL;
  }
  the_gateway = g;
  health_register("upstreams", check_pools, g);
  metrics_add_collector(collect, g);
  return g;
}

void gateway_free(struct gateway *g) {
  if (!g)
    return;
  gw_protect_free(g);
  uv_mutex_destroy(&g->workers_lock);
  if (the_gateway == g)
    the_gateway = NULL;
  free(g);
}

int gateway_start(struct gateway *g) { return gw_health_start(g); }
void gateway_stop(struct gateway *g) { gw_health_stop(g); }

/* ---- workers ------------------------------------------------------------- */

static void host_breaker_init(struct gw_worker *w, unsigned h) {
  /* host breakers use the defaults; routes tune their own */
  struct breaker_config bc;
  breaker_config_default(&bc);
  breaker_init(&w->breakers[h], &bc);
  breaker_set_transition_cb(&w->breakers[h], on_breaker_change,
                            (void *)upstream_host_name(w->hosts[h]));
}

static int on_worker_start(unsigned index, uv_loop_t *loop, void **data, void *arg) {
  struct gateway *g = arg;
  struct gw_worker *w = calloc(1, sizeof *w);
  if (!w)
    return -1;
  w->g = g;
  w->loop = loop;
  w->index = index;
  for (unsigned i = 0; i < g->s.n_hosts; i++) {
    const struct gw_host_config *hc = &g->s.hosts[i];
    const struct gw_pool *p = &g->s.pools[hc->pool];
    w->hosts[i] = upstream_host_new(loop, hc->host, hc->port, p->max_idle, p->connect_timeout_ms);
    host_breaker_init(w, i);
    w->seen_healthy[i] = 1;
  }
  for (unsigned p = 0; p < g->s.n_pools; p++) {
    const struct gw_pool *pool = &g->s.pools[p];
    struct lb_host_config hc[GW_MAX_HOSTS];
    char names[GW_MAX_HOSTS][80];
    for (unsigned i = 0; i < pool->n_hosts; i++) {
      const struct gw_host_config *h = &g->s.hosts[pool->first + i];
      snprintf(names[i], sizeof names[i], "%s:%u", h->host, h->port);
      hc[i].address = names[i];
      hc[i].weight = h->weight ? h->weight : 1;
    }
    struct lb_settings lb;
    lb_settings_default(&lb);
    lb.algorithm = (enum lb_algorithm)pool->balance;
    if (lb_pool_init(&w->pools[p], hc, pool->n_hosts, &lb) != 0) {
      for (unsigned q = 0; q < p; q++)
        lb_pool_free(&w->pools[q]);
      for (unsigned i = 0; i < g->s.n_hosts; i++)
        upstream_host_free(w->hosts[i]);
      free(w);
      return -1;
    }
  }
  for (unsigned r = 0; r < g->s.n_routes; r++) {
    breaker_init(&w->route_breakers[r], &g->s.routes[r].breaker);
    breaker_set_transition_cb(&w->route_breakers[r], on_route_breaker_change,
                              (void *)&g->s.routes[r]);
  }
  /* Every worker keeps its own budget: share the floor of retries per
   * second among them, so the process as a whole keeps to it. */
  struct retry_budget_config bc;
  retry_budget_config_default(&bc);
  unsigned n = g->cfg.workers ? g->cfg.workers : (unsigned)uv_available_parallelism();
  bc.min_per_s = bc.min_per_s / (n ? n : 1) ? bc.min_per_s / (n ? n : 1) : 1;
  retry_budget_init(&w->budget, &bc);
  uv_mutex_lock(&g->workers_lock);
  if (g->n_workers < sizeof g->workers / sizeof g->workers[0])
    g->workers[g->n_workers++] = w;
  uv_mutex_unlock(&g->workers_lock);
  *data = w;
  return 0;
}

static void on_worker_stop(unsigned index, uv_loop_t *loop, void *data, void *arg) {
  (void)index;
  (void)loop;
  struct gateway *g = arg;
  struct gw_worker *w = data;
  uv_mutex_lock(&g->workers_lock);
  for (unsigned i = 0; i < g->n_workers; i++)
    if (g->workers[i] == w) {
      g->workers[i] = g->workers[--g->n_workers];
      break;
    }
  uv_mutex_unlock(&g->workers_lock);
  for (unsigned i = 0; i < g->s.n_hosts; i++)
    upstream_host_free(w->hosts[i]);
  for (unsigned p = 0; p < g->s.n_pools; p++)
    lb_pool_free(&w->pools[p]);
  strbuf_free(&w->request_buf);
  free(w);
}

const struct http_worker_hooks *gateway_worker_hooks(struct gateway *g) {
  static struct http_worker_hooks hooks;
  hooks.start = on_worker_start;
  hooks.stop = on_worker_stop;
  hooks.ctx = g;
  return &hooks;
}

/* The checker's verdicts reach this worker's balancer before each pick. A
 * host the checker sees come back also gets its breaker closed: the checks
 * are the better evidence, and traffic should return within two check
 * intervals, not after the breaker's own cool-down. */
static void sync_health(struct gw_worker *w) {
  struct gateway *g = w->g;
  for (unsigned i = 0; i < g->s.n_hosts; i++) {
    int healthy = __atomic_load_n(&g->healthy[i], __ATOMIC_RELAXED);
    if (healthy == w->seen_healthy[i])
      continue;
    if (healthy && breaker_state(&w->breakers[i]) != BREAKER_CLOSED) {
      host_breaker_init(w, i);
      log_event(LOG_INFO, "breaker", NULL, "%s: closed (the health checks pass again)",
                upstream_host_name(w->hosts[i]));
    }
    w->seen_healthy[i] = healthy;
    unsigned p = g->s.hosts[i].pool;
    lb_set_healthy(&w->pools[p], (int)(i - g->s.pools[p].first), healthy);
    /* The same evidence closes the breakers of the routes to this pool. */
    for (unsigned r = 0; healthy && r < g->s.n_routes; r++) {
      if (g->s.routes[r].pool != p || breaker_state(&w->route_breakers[r]) == BREAKER_CLOSED)
        continue;
      breaker_init(&w->route_breakers[r], &g->s.routes[r].breaker);
      breaker_set_transition_cb(&w->route_breakers[r], on_route_breaker_change,
                                (void *)&g->s.routes[r]);
      log_event(LOG_INFO, "breaker", NULL, "route %s: closed (a host of pool %s passes its "
                "health checks again)", g->s.routes[r].label, g->s.pools[p].name);
    }
  }
}

static void proxy_route(struct http_exchange *ex, void *data) {
  (void)data;
  struct gw_worker *w = http_worker_data(ex);
  if (!w) {
    http_respond_error(ex, -1, NULL, NULL);
    return;
  }
  struct gateway *g = w->g;
  struct http_request *req = http_request_of(ex);
  size_t host_len = 0;
  const char *host = http_header_get(req, "host", &host_len);
  int route = gw_route_match(&g->s, host, host_len, req->method, req->path, req->path_len);
  if (route < 0) {
    http_respond_error(ex, STRATA_ENOT_FOUND, "No route matches this request.", NULL);
    return;
  }
  http_set_route(ex, g->s.routes[route].label, g->route_metrics[route]);
  w->route_stats[route].requests++;
  sync_health(w);
  struct auth_identity *id = arena_alloc(http_arena(ex), sizeof *id);
  if (!id) {
    http_respond_error(ex, -1, NULL, NULL);
    return;
  }
  if (gw_protect(g, ex, (unsigned)route, id) != 0)
    return;
  gw_proxy(ex, (unsigned)route, id);
}

int gateway_routes_register(struct gateway *g, struct router *r) {
  /* The proxy streams bodies both ways: its route gets requests at
   * headers-complete, with gateway.max_request_body as the body cap. */
  if (observe_routes_register(r) != 0 ||
      router_add_streaming(r, "*", "/*", proxy_route, NULL, g->s.max_request_body) != 0)
    return -1;
  return 0;
}
