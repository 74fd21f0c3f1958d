/* Gateway setup: settings, per-worker state, routes, metrics, readiness;
 * see gateway.h. */
#include "gateway/gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "gateway/internal.h"
#include "observe/health.h"
#include "observe/log.h"
#include "observe/metrics.h"
#include "observe/routes.h"

void gw_settings_defaults(struct gw_settings *s) {
  memset(s, 0, sizeof *s);
  s->connect_timeout_ms = 1000;
  s->try_timeout_ms = 10000;
  s->total_timeout_ms = 15000;
  s->max_attempts = 3;
  s->backoff_base_ms = 25;
  s->backoff_cap_ms = 250;
  s->health_interval_ms = 1000;
  s->health_timeout_ms = 500;
  s->health_rise = 2;
  s->health_fall = 2;
  s->trusted_hops = 0;
  s->max_idle_per_host = 64;
  s->max_response_bytes = 64u << 20;
}

static struct gateway *the_gateway; /* for the metrics collector and readiness */

static enum health_status check_pools(void *ctx, char *detail, size_t len) {
  struct gateway *g = ctx;
  unsigned up = 0;
  for (unsigned i = 0; i < g->s.n_hosts; i++)
    up += __atomic_load_n(&g->healthy[i], __ATOMIC_RELAXED) != 0;
  snprintf(detail, len, "%u of %u upstream hosts healthy", up, g->s.n_hosts);
  return up == 0 ? HEALTH_DOWN : up < g->s.n_hosts ? HEALTH_DEGRADED : HEALTH_UP;
}

static void collect(struct strbuf *sb, void *ctx) {
  struct gateway *g = ctx;
  static const char *const classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  uv_mutex_lock(&g->workers_lock);
  strbuf_puts(sb, "# HELP strata_gateway_upstream_requests_total Tries sent to an upstream host.\n"
                  "# TYPE strata_gateway_upstream_requests_total counter\n");
  for (unsigned h = 0; h < g->s.n_hosts; h++) {
    uint64_t n = 0;
    for (unsigned w = 0; w < g->n_workers; w++)
      n += __atomic_load_n(&g->workers[w]->stats[h].requests, __ATOMIC_RELAXED);
    strbuf_printf(sb, "strata_gateway_upstream_requests_total{upstream=\"%s:%u\"} %llu\n",
                  g->s.hosts[h].host, g->s.hosts[h].port, (unsigned long long)n);
  }
  strbuf_puts(sb, "# HELP strata_gateway_upstream_responses_total Upstream answers by status class.\n"
                  "# TYPE strata_gateway_upstream_responses_total counter\n");
  for (unsigned h = 0; h < g->s.n_hosts; h++)
    for (int c = 0; c < 5; c++) {
      uint64_t n = 0;
      for (unsigned w = 0; w < g->n_workers; w++)
        n += __atomic_load_n(&g->workers[w]->stats[h].responses[c], __ATOMIC_RELAXED);
      if (n)
        strbuf_printf(sb,
                      "strata_gateway_upstream_responses_total{upstream=\"%s:%u\",status=\"%s\"} %llu\n",
                      g->s.hosts[h].host, g->s.hosts[h].port, classes[c], (unsigned long long)n);
    }
  const struct {
    const char *name, *help;
    size_t off;
  } fams[] = {
      {"strata_gateway_upstream_failures_total", "Tries that ended without a usable answer.",
       offsetof(struct gw_host_stats, failures)},
      {"strata_gateway_upstream_retries_total", "Tries that were retries.",
       offsetof(struct gw_host_stats, retries)},
      {"strata_gateway_breaker_rejected_total", "Requests an open circuit breaker turned away.",
       offsetof(struct gw_host_stats, breaker_rejected)},
  };
  for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
    strbuf_printf(sb, "# HELP %s %s\n# TYPE %s counter\n", fams[f].name, fams[f].help, fams[f].name);
    for (unsigned h = 0; h < g->s.n_hosts; h++) {
      uint64_t n = 0;
      for (unsigned w = 0; w < g->n_workers; w++)
        n += __atomic_load_n((uint64_t *)((char *)&g->workers[w]->stats[h] + fams[f].off),
                             __ATOMIC_RELAXED);
      strbuf_printf(sb, "%s{upstream=\"%s:%u\"} %llu\n", fams[f].name, g->s.hosts[h].host,
                    g->s.hosts[h].port, (unsigned long long)n);
    }
  }
  strbuf_puts(sb, "# HELP strata_gateway_breaker_open Workers whose breaker for the host is not "
                  "closed (0 = closed everywhere).\n# TYPE strata_gateway_breaker_open gauge\n");
  for (unsigned h = 0; h < g->s.n_hosts; h++) {
    unsigned open = 0;
    for (unsigned w = 0; w < g->n_workers; w++)
      open += breaker_state(&g->workers[w]->breakers[h]) != BREAKER_CLOSED;
    strbuf_printf(sb, "strata_gateway_breaker_open{upstream=\"%s:%u\"} %u\n", g->s.hosts[h].host,
                  g->s.hosts[h].port, open);
  }
  strbuf_puts(sb, "# HELP strata_gateway_upstream_healthy Active health check verdict.\n"
                  "# TYPE strata_gateway_upstream_healthy gauge\n");
  for (unsigned h = 0; h < g->s.n_hosts; h++)
    strbuf_printf(sb, "strata_gateway_upstream_healthy{upstream=\"%s:%u\"} %d\n", g->s.hosts[h].host,
                  g->s.hosts[h].port, __atomic_load_n(&g->healthy[h], __ATOMIC_RELAXED));
  uint64_t exhausted = 0;
  for (unsigned w = 0; w < g->n_workers; w++)
    exhausted += __atomic_load_n(&g->workers[w]->budget_exhausted, __ATOMIC_RELAXED);
  strbuf_printf(sb, "# HELP strata_gateway_rate_limited_total Requests answered 429.\n"
                    "# TYPE strata_gateway_rate_limited_total counter\n"
                    "strata_gateway_rate_limited_total %llu\n"
                    "# HELP strata_gateway_auth_failed_total Requests answered 400/401 by authentication.\n"
                    "# TYPE strata_gateway_auth_failed_total counter\n"
                    "strata_gateway_auth_failed_total %llu\n",
                (unsigned long long)__atomic_load_n(&g->rate_limited, __ATOMIC_RELAXED),
                (unsigned long long)__atomic_load_n(&g->auth_failed, __ATOMIC_RELAXED));
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

struct gateway *gateway_new(const struct strata_config *cfg, const struct gw_settings *s) {
  if (s->n_hosts == 0) {
    log_event(LOG_ERROR, "gateway_failed", NULL, "no upstream host given");
    return NULL;
  }
  struct gateway *g = calloc(1, sizeof *g);
  if (!g)
    return NULL;
  g->cfg = *cfg;
  g->s = *s;
  retry_policy_default(&g->retry);
  g->retry.max_attempts = s->max_attempts;
  g->retry.base_ms = s->backoff_base_ms;
  g->retry.cap_ms = s->backoff_cap_ms;
  g->retry.per_try_timeout_ms = s->try_timeout_ms;
  g->retry.total_timeout_ms = s->total_timeout_ms;
  breaker_config_default(&g->breaker);
  lb_settings_default(&g->lb);
  g->lb.algorithm = (enum lb_algorithm)s->balance;
  for (unsigned i = 0; i < s->n_hosts; i++)
    g->healthy[i] = 1; /* until the checker says otherwise */
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

static int on_worker_start(unsigned index, uv_loop_t *loop, void **data, void *arg) {
  struct gateway *g = arg;
  struct gw_worker *w = calloc(1, sizeof *w);
  if (!w)
    return -1;
  w->g = g;
  w->loop = loop;
  w->index = index;
  struct lb_host_config hc[GW_MAX_HOSTS];
  char names[GW_MAX_HOSTS][300];
  for (unsigned i = 0; i < g->s.n_hosts; i++) {
    snprintf(names[i], sizeof names[i], "%s:%u", g->s.hosts[i].host, g->s.hosts[i].port);
    hc[i].address = names[i];
    hc[i].weight = g->s.hosts[i].weight ? g->s.hosts[i].weight : 1;
    w->hosts[i] = upstream_host_new(loop, g->s.hosts[i].host, g->s.hosts[i].port,
                                    g->s.max_idle_per_host, g->s.connect_timeout_ms);
    breaker_init(&w->breakers[i], &g->breaker);
    breaker_set_transition_cb(&w->breakers[i], on_breaker_change,
                              (void *)upstream_host_name(w->hosts[i]));
    w->seen_healthy[i] = 1;
  }
  if (lb_pool_init(&w->pool, hc, g->s.n_hosts, &g->lb) != 0) {
    free(w);
    return -1;
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
  lb_pool_free(&w->pool);
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
  for (unsigned i = 0; i < w->g->s.n_hosts; i++) {
    int healthy = __atomic_load_n(&w->g->healthy[i], __ATOMIC_RELAXED);
    if (healthy && !w->seen_healthy[i] && breaker_state(&w->breakers[i]) != BREAKER_CLOSED) {
      breaker_init(&w->breakers[i], &w->g->breaker);
      breaker_set_transition_cb(&w->breakers[i], on_breaker_change,
                                (void *)upstream_host_name(w->hosts[i]));
      log_event(LOG_INFO, "breaker", NULL, "%s: closed (the health checks pass again)",
                upstream_host_name(w->hosts[i]));
    }
    w->seen_healthy[i] = healthy;
    lb_set_healthy(&w->pool, (int)i, healthy);
  }
}

static void proxy_route(struct http_exchange *ex, void *data) {
  (void)data;
  struct gw_worker *w = http_worker_data(ex);
  if (!w) {
    http_respond_error(ex, -1, NULL, NULL);
    return;
  }
  sync_health(w);
  struct auth_identity *id = arena_alloc(http_arena(ex), sizeof *id);
  if (!id) {
    http_respond_error(ex, -1, NULL, NULL);
    return;
  }
  if (gw_protect(w->g, ex, id) != 0)
    return;
  gw_proxy(ex, id);
}

int gateway_routes_register(struct gateway *g, struct router *r) {
  (void)g;
  if (observe_routes_register(r) != 0 || router_add(r, "*", "/*", proxy_route, NULL) != 0)
    return -1;
  return 0;
}
