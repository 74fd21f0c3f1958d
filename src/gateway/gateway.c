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
  uv_mutex_lock(&g->workers_lock);
  const struct gw_conf *c = g->conf;
  for (unsigned p = 0; p < c->s.n_pools; p++) {
    unsigned pool_up = 0;
    for (unsigned i = 0; i < c->s.pools[p].n_hosts; i++)
      pool_up += __atomic_load_n(&c->healthy[gw_host_index(c, p, (int)i)], __ATOMIC_RELAXED) != 0;
    if (!pool_up) {
      empty++;
      empty_name = c->s.pools[p].name;
    }
    up += pool_up;
  }
  if (empty)
    snprintf(detail, len, "pool %s has no healthy host (%u of %u pools empty)", empty_name, empty,
             c->s.n_pools);
  else
    snprintf(detail, len, "%u of %u upstream hosts healthy", up, c->s.n_hosts);
  enum health_status st = empty ? HEALTH_DOWN : up < c->s.n_hosts ? HEALTH_DEGRADED : HEALTH_UP;
  uv_mutex_unlock(&g->workers_lock);
  return st;
}

/* Sums a uint64_t counter at byte offset off of every worker's host or
 * route stats, over the workers already on conf c (a worker still on an
 * older conf after a reload joins at its next request). */
static uint64_t sum_stat(struct gateway *g, const struct gw_conf *c, int route, unsigned index,
                         size_t off) {
  uint64_t n = 0;
  for (unsigned w = 0; w < g->n_workers; w++) {
    const struct gw_state *st = g->workers[w]->st;
    if (st->conf != c)
      continue;
    const char *base = route ? (const char *)&st->route_stats[index] : (const char *)&st->stats[index];
    n += __atomic_load_n((const uint64_t *)(base + off), __ATOMIC_RELAXED);
  }
  return n;
}

/* pool="...",upstream="host:port" (no braces) */
static void host_label_pairs(struct strbuf *sb, const struct gw_conf *c, unsigned h) {
  strbuf_puts(sb, "pool=\"");
  metrics_label_value(sb, c->s.pools[c->s.hosts[h].pool].name);
  strbuf_puts(sb, "\",upstream=\"");
  metrics_label_value(sb, c->s.hosts[h].host);
  strbuf_printf(sb, ":%u\"", c->s.hosts[h].port);
}

static void host_labels(struct strbuf *sb, const struct gw_conf *c, unsigned h) {
  strbuf_putc(sb, '{');
  host_label_pairs(sb, c, h);
}

static void route_sample(struct strbuf *sb, const char *family, const struct gw_conf *c, unsigned r) {
  strbuf_puts(sb, family);
  strbuf_puts(sb, "{route=\"");
  metrics_label_value(sb, c->s.routes[r].label);
  strbuf_puts(sb, "\"} ");
}

/* Host h's try latency summed over the workers into sum; 0 when empty. */
static int host_latency(const struct gateway *g, const struct gw_conf *c, unsigned h,
                        struct histogram *sum) {
  memset(sum, 0, sizeof *sum);
  for (unsigned w = 0; w < g->n_workers; w++) {
    const struct gw_state *st = g->workers[w]->st;
    const struct histogram *one =
        st->conf == c ? __atomic_load_n(&st->upstream_latency[h], __ATOMIC_ACQUIRE) : NULL;
    if (one)
      histogram_merge(sum, one);
  }
  return sum->count != 0;
}

static void collect(struct strbuf *sb, void *ctx) {
  struct gateway *g = ctx;
  static const char *const classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  uv_mutex_lock(&g->workers_lock);
  const struct gw_conf *c = g->conf;
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
    metrics_family(sb, host_fams[f].name, "counter", host_fams[f].help);
    for (unsigned h = 0; h < c->s.n_hosts; h++) {
      strbuf_puts(sb, host_fams[f].name);
      host_labels(sb, c, h);
      strbuf_printf(sb, "} %llu\n", (unsigned long long)sum_stat(g, c, 0, h, host_fams[f].off));
    }
  }
  metrics_family(sb, "strata_gateway_upstream_responses_total", "counter",
         "Upstream answers by status class.");
  for (unsigned h = 0; h < c->s.n_hosts; h++)
    for (int k = 0; k < 5; k++) {
      uint64_t n = sum_stat(g, c, 0, h, offsetof(struct gw_host_stats, responses) + (size_t)k * 8);
      if (!n)
        continue;
      strbuf_puts(sb, "strata_gateway_upstream_responses_total");
      host_labels(sb, c, h);
      strbuf_printf(sb, ",status=\"%s\"} %llu\n", classes[k], (unsigned long long)n);
    }
  metrics_family(sb, "strata_gateway_breaker_open", "gauge",
         "Workers whose breaker for the host is not closed (0 = closed everywhere).");
  for (unsigned h = 0; h < c->s.n_hosts; h++) {
    unsigned open = 0;
    for (unsigned w = 0; w < g->n_workers; w++)
      if (g->workers[w]->st->conf == c)
        open += breaker_state(&g->workers[w]->st->breakers[h]) != BREAKER_CLOSED;
    strbuf_puts(sb, "strata_gateway_breaker_open");
    host_labels(sb, c, h);
    strbuf_printf(sb, "} %u\n", open);
  }
  metrics_family(sb, "strata_gateway_upstream_healthy", "gauge", "Active health check verdict.");
  for (unsigned h = 0; h < c->s.n_hosts; h++) {
    strbuf_puts(sb, "strata_gateway_upstream_healthy");
    host_labels(sb, c, h);
    strbuf_printf(sb, "} %d\n", __atomic_load_n(&c->healthy[h], __ATOMIC_RELAXED));
  }
  metrics_family(sb, "strata_gateway_upstream_duration_seconds", "histogram",
         "Time of one try on an upstream host, from sending to the last response byte.");
  static struct histogram_edges edges; /* shared by every host, for good */
  struct histogram *sum = malloc(sizeof *sum);
  for (unsigned h = 0; sum && h < c->s.n_hosts; h++)
    if (host_latency(g, c, h, sum))
      histogram_edges_add(&edges, sum);
  for (unsigned h = 0; sum && h < c->s.n_hosts; h++) {
    if (!host_latency(g, c, h, sum))
      continue;
    struct strbuf labels;
    strbuf_init(&labels, 0);
    host_label_pairs(&labels, c, h);
    histogram_write_prometheus(sb, "strata_gateway_upstream_duration_seconds",
                               labels.data && !labels.failed ? labels.data : "", sum, &edges);
    strbuf_free(&labels);
  }
  free(sum);
  metrics_family(sb, "strata_gateway_upstream_connections", "gauge",
         "Upstream connections, in use (active) or parked for reuse (idle).");
  for (unsigned h = 0; h < c->s.n_hosts; h++) {
    unsigned active = 0, idle = 0;
    for (unsigned w = 0; w < g->n_workers; w++) {
      if (g->workers[w]->st->conf != c)
        continue;
      active += upstream_host_active(g->workers[w]->st->hosts[h]);
      idle += upstream_host_idle(g->workers[w]->st->hosts[h]);
    }
    strbuf_puts(sb, "strata_gateway_upstream_connections");
    host_labels(sb, c, h);
    strbuf_printf(sb, ",state=\"active\"} %u\n", active);
    strbuf_puts(sb, "strata_gateway_upstream_connections");
    host_labels(sb, c, h);
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
    metrics_family(sb, route_fams[f].name, "counter", route_fams[f].help);
    for (unsigned r = 0; r < c->s.n_routes; r++) {
      route_sample(sb, route_fams[f].name, c, r);
      strbuf_printf(sb, "%llu\n", (unsigned long long)sum_stat(g, c, 1, r, route_fams[f].off));
    }
  }
  metrics_family(sb, "strata_gateway_route_breaker_open", "gauge",
         "Workers whose breaker for the route is not closed (0 = closed everywhere).");
  for (unsigned r = 0; r < c->s.n_routes; r++) {
    unsigned open = 0;
    for (unsigned w = 0; w < g->n_workers; w++)
      if (g->workers[w]->st->conf == c)
        open += breaker_state(&g->workers[w]->st->route_breakers[r]) != BREAKER_CLOSED;
    route_sample(sb, "strata_gateway_route_breaker_open", c, r);
    strbuf_printf(sb, "%u\n", open);
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
  struct respcache_stats cs = {0};
  for (unsigned w = 0; w < g->n_workers; w++) {
    struct respcache_stats one;
    respcache_stats_get(g->workers[w]->cache, &one);
    cs.hits += one.hits;
    cs.misses += one.misses;
    cs.bypasses += one.bypasses;
    cs.stale_served += one.stale_served;
    cs.coalesced += one.coalesced;
    cs.stores += one.stores;
    cs.evictions += one.evictions;
    cs.entries += one.entries;
    cs.bytes += one.bytes;
  }
  metrics_family(sb, "strata_gateway_cache_lookups_total", "counter",
         "Response cache lookups by result (coalesced: answered by another request's fetch; "
         "stale: served after an upstream failure).");
  strbuf_printf(sb,
                "strata_gateway_cache_lookups_total{result=\"hit\"} %llu\n"
                "strata_gateway_cache_lookups_total{result=\"miss\"} %llu\n"
                "strata_gateway_cache_lookups_total{result=\"bypass\"} %llu\n"
                "strata_gateway_cache_lookups_total{result=\"coalesced\"} %llu\n"
                "strata_gateway_cache_lookups_total{result=\"stale\"} %llu\n",
                (unsigned long long)cs.hits, (unsigned long long)cs.misses,
                (unsigned long long)cs.bypasses, (unsigned long long)cs.coalesced,
                (unsigned long long)cs.stale_served);
  metrics_family(sb, "strata_gateway_cache_stores_total", "counter", "Responses stored.");
  strbuf_printf(sb, "strata_gateway_cache_stores_total %llu\n", (unsigned long long)cs.stores);
  metrics_family(sb, "strata_gateway_cache_evictions_total", "counter", "Responses evicted (LRU).");
  strbuf_printf(sb, "strata_gateway_cache_evictions_total %llu\n",
                (unsigned long long)cs.evictions);
  metrics_family(sb, "strata_gateway_cache_entries", "gauge", "Responses held.");
  strbuf_printf(sb, "strata_gateway_cache_entries %llu\n", (unsigned long long)cs.entries);
  metrics_family(sb, "strata_gateway_cache_bytes", "gauge", "Bytes the held responses take.");
  strbuf_printf(sb, "strata_gateway_cache_bytes %llu\n", (unsigned long long)cs.bytes);
  strbuf_printf(sb, "# HELP strata_gateway_config_reloads_total Configurations loaded on SIGHUP.\n"
                    "# TYPE strata_gateway_config_reloads_total counter\n"
                    "strata_gateway_config_reloads_total{result=\"ok\"} %llu\n"
                    "strata_gateway_config_reloads_total{result=\"refused\"} %llu\n",
                (unsigned long long)__atomic_load_n(&g->reloads, __ATOMIC_RELAXED),
                (unsigned long long)__atomic_load_n(&g->reload_failures, __ATOMIC_RELAXED));
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

/* ---- configurations ---------------------------------------------------- */

struct gw_conf *gw_conf_new(const struct gw_settings *s, char *why, size_t why_len) {
  if (s->n_hosts == 0 || s->n_routes == 0) {
    snprintf(why, why_len, "no upstream host or no route");
    return NULL;
  }
  struct gw_conf *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(why, why_len, "out of memory");
    return NULL;
  }
  c->s = *s;
  c->refs = 1;
  for (unsigned i = 0; i < s->n_hosts; i++)
    c->healthy[i] = 1; /* until the checker says otherwise */
  for (unsigned r = 0; r < s->n_routes; r++)
    c->route_metrics[r] = metrics_route_id(s->routes[r].label);
  if (gw_protect_init(c, why, why_len) != 0) {
    gw_protect_free(c);
    free(c);
    return NULL;
  }
  return c;
}

int gateway_check(const struct strata_config *cfg, char *why, size_t why_len) {
  struct gw_settings *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(why, why_len, "out of memory");
    return -1;
  }
  int rc = gw_settings_from_config(cfg, s, why, why_len);
  struct gw_conf *c = rc == 0 ? gw_conf_new(s, why, why_len) : NULL;
  if (rc == 0 && !c)
    rc = -1;
  gw_conf_release(c);
  free(s);
  return rc;
}

void gw_conf_release(struct gw_conf *c) {
  if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    gw_protect_free(c);
    free(c);
  }
}

struct gw_conf *gw_current(struct gateway *g) {
  return __atomic_load_n(&g->conf, __ATOMIC_ACQUIRE);
}

static int same_limit(const struct ratelimit_policy *a, const struct ratelimit_policy *b) {
  return a->rate == b->rate && a->period_ms == b->period_ms && a->burst == b->burst;
}

/* A reload keeps the buckets of a limit that did not change (the gateway's,
 * and a route's by its label): a client does not get a fresh burst because
 * an operator reloaded. */
static void adopt_limiters(struct gw_conf *c, const struct gw_conf *old) {
  if (c->rl && old->rl && same_limit(&c->s.rate, &old->s.rate)) {
    ratelimit_free(c->rl);
    c->rl = ratelimit_ref(old->rl);
  }
  for (unsigned r = 0; r < c->s.n_routes; r++)
    for (unsigned q = 0; c->route_rl[r] && q < old->s.n_routes; q++)
      if (old->route_rl[q] && strcmp(c->s.routes[r].label, old->s.routes[q].label) == 0) {
        if (same_limit(&c->s.routes[r].rate, &old->s.routes[q].rate)) {
          ratelimit_free(c->route_rl[r]);
          c->route_rl[r] = ratelimit_ref(old->route_rl[q]);
        }
        break;
      }
}

void gw_publish(struct gateway *g, struct gw_conf *c) {
  uv_mutex_lock(&g->workers_lock);
  struct gw_conf *old = g->conf;
  c->generation = old ? old->generation + 1 : 1;
  if (old)
    adopt_limiters(c, old);
  __atomic_store_n(&g->conf, c, __ATOMIC_RELEASE);
  uv_mutex_unlock(&g->workers_lock);
  gw_conf_release(old);
}

struct gateway *gateway_new(const struct strata_config *cfg, const struct gw_settings *s) {
  char why[256];
  struct gw_conf *c = gw_conf_new(s, why, sizeof why);
  if (!c) {
    log_event(LOG_ERROR, "gateway_failed", NULL, "%s", why);
    return NULL;
  }
  struct gateway *g = calloc(1, sizeof *g);
  if (!g) {
    gw_conf_release(c);
    return NULL;
  }
  g->cfg = *cfg;
  g->cache_epochs = respcache_epochs_new();
  if (!g->cache_epochs) {
    gw_conf_release(c);
    free(g);
    return NULL;
  }
  uv_mutex_init(&g->workers_lock);
  gw_publish(g, c);
  the_gateway = g;
  health_register("upstreams", check_pools, g);
  metrics_add_collector(collect, g);
  return g;
}

void gateway_free(struct gateway *g) {
  if (!g)
    return;
  gw_conf_release(g->conf);
  respcache_epochs_free(g->cache_epochs);
  uv_mutex_destroy(&g->workers_lock);
  if (the_gateway == g)
    the_gateway = NULL;
  free(g);
}

void gateway_set_reloader(struct gateway *g, gw_reload_cb cb, void *ctx) {
  g->reload = cb;
  g->reload_ctx = ctx;
}

int gateway_start(struct gateway *g) { return gw_health_start(g); }
void gateway_stop(struct gateway *g) {
  if (g) /* gateway_new() may have failed */
    gw_health_stop(g);
}

/* ---- worker state ------------------------------------------------------- */

static void host_breaker_init(struct gw_state *st, unsigned h) {
  /* host breakers use the defaults; routes tune their own */
  struct breaker_config bc;
  breaker_config_default(&bc);
  breaker_init(&st->breakers[h], &bc);
  breaker_set_transition_cb(&st->breakers[h], on_breaker_change,
                            (void *)upstream_host_name(st->hosts[h]));
}

static void route_breaker_init(struct gw_state *st, unsigned r) {
  breaker_init(&st->route_breakers[r], &st->conf->s.routes[r].breaker);
  breaker_set_transition_cb(&st->route_breakers[r], on_route_breaker_change,
                            (void *)&st->conf->s.routes[r]);
}

static void state_free(struct gw_state *st) {
  if (!st)
    return;
  for (unsigned i = 0; i < st->conf->s.n_hosts; i++)
    upstream_host_free(st->hosts[i]);
  for (unsigned p = 0; p < st->conf->s.n_pools; p++)
    lb_pool_free(&st->pools[p]);
  for (unsigned i = 0; i < GW_MAX_HOSTS; i++)
    free(st->upstream_latency[i]);
  gw_conf_release(st->conf);
  free(st);
}

/* A worker's pools, balancers and breakers for conf c (which it references). */
static struct gw_state *state_new(uv_loop_t *loop, struct gw_conf *c) {
  struct gw_state *st = calloc(1, sizeof *st);
  if (!st)
    return NULL;
  __atomic_add_fetch(&c->refs, 1, __ATOMIC_ACQ_REL);
  st->conf = c;
  const struct gw_settings *s = &c->s;
  for (unsigned i = 0; i < s->n_hosts; i++) {
    const struct gw_host_config *hc = &s->hosts[i];
    const struct gw_pool *p = &s->pools[hc->pool];
    st->hosts[i] = upstream_host_new(loop, hc->host, hc->port, p->max_idle, p->connect_timeout_ms);
    host_breaker_init(st, i);
    st->seen_healthy[i] = 1;
  }
  for (unsigned p = 0; p < s->n_pools; p++) {
    const struct gw_pool *pool = &s->pools[p];
    struct lb_host_config hc[GW_MAX_HOSTS];
    char names[GW_MAX_HOSTS][80];
    for (unsigned i = 0; i < pool->n_hosts; i++) {
      const struct gw_host_config *h = &s->hosts[pool->first + i];
      snprintf(names[i], sizeof names[i], "%s:%u", h->host, h->port);
      hc[i].address = names[i];
      hc[i].weight = h->weight ? h->weight : 1;
    }
    struct lb_settings lb;
    lb_settings_default(&lb);
    lb.algorithm = (enum lb_algorithm)pool->balance;
    if (lb_pool_init(&st->pools[p], hc, pool->n_hosts, &lb) != 0) {
      state_free(st);
      return NULL;
    }
  }
  for (unsigned r = 0; r < s->n_routes; r++)
    route_breaker_init(st, r);
  return st;
}

void gw_state_leave(struct gw_worker *w, struct gw_state *st) {
  if (--st->in_flight || st == w->st)
    return;
  /* the last call of a retired state: let it go */
  for (struct gw_state **p = &w->retired; *p; p = &(*p)->next_retired)
    if (*p == st) {
      *p = st->next_retired;
      state_free(st);
      return;
    }
}

/* The state of breaker b taken over from old, keeping b's own settings and
 * transition callback (they belong to the new conf); not when the window
 * changed size (its buckets would not fit). Probes the old one let through
 * report to it: a half-open round that lost them restarts by itself. */
static void breaker_take_over(struct breaker *b, const struct breaker *old) {
  if (b->cfg.window_s != old->cfg.window_s)
    return;
  struct breaker keep = *b;
  *b = *old;
  b->cfg = keep.cfg;
  b->on_transition = keep.on_transition;
  b->on_transition_ctx = keep.on_transition_ctx;
}

/* What a reload keeps: for a host still in a pool of the same name, and a
 * route with the same label, its breaker (an open breaker stays open: a
 * reload during an outage sends no burst to the dead host) and counters
 * (metrics stay monotonic). Rate limits: adopt_limiters(). Passive
 * ejections start afresh, as with nginx and HAProxy reloads. */
static void carry_over(struct gw_state *st, const struct gw_state *old) {
  const struct gw_settings *s = &st->conf->s, *o = &old->conf->s;
  for (unsigned i = 0; i < s->n_hosts; i++)
    for (unsigned j = 0; j < o->n_hosts; j++) {
      const struct gw_host_config *a = &s->hosts[i], *b = &o->hosts[j];
      if (a->port != b->port || strcmp(a->host, b->host) != 0 ||
          strcmp(s->pools[a->pool].name, o->pools[b->pool].name) != 0)
        continue;
      breaker_take_over(&st->breakers[i], &old->breakers[j]);
      st->stats[i] = old->stats[j];
      break;
    }
  for (unsigned r = 0; r < s->n_routes; r++)
    for (unsigned q = 0; q < o->n_routes; q++)
      if (strcmp(s->routes[r].label, o->routes[q].label) == 0) {
        breaker_take_over(&st->route_breakers[r], &old->route_breakers[q]);
        st->route_stats[r] = old->route_stats[q];
        break;
      }
}

/* Before each request: a worker still on an older conf builds its state for
 * the current one; the old state stays until its last call has answered. */
static void refresh(struct gw_worker *w) {
  if (__builtin_expect(gw_current(w->g) == w->st->conf, 1))
    return;
  uv_mutex_lock(&w->g->workers_lock); /* a reference first: a second reload may follow */
  struct gw_conf *c = w->g->conf;
  __atomic_add_fetch(&c->refs, 1, __ATOMIC_ACQ_REL);
  uv_mutex_unlock(&w->g->workers_lock);
  struct gw_state *st = state_new(w->loop, c);
  gw_conf_release(c);
  if (!st)
    return; /* keep serving with the old configuration */
  carry_over(st, w->st);
  uv_mutex_lock(&w->g->workers_lock);
  struct gw_state *old = w->st;
  w->st = st;
  uv_mutex_unlock(&w->g->workers_lock);
  if (old->in_flight) {
    old->next_retired = w->retired;
    w->retired = old;
  } else {
    state_free(old);
  }
}

static int on_worker_start(unsigned index, uv_loop_t *loop, void **data, void *arg) {
  struct gateway *g = arg;
  struct gw_worker *w = calloc(1, sizeof *w);
  if (!w)
    return -1;
  w->g = g;
  w->loop = loop;
  w->index = index;
  uv_mutex_lock(&g->workers_lock);
  w->st = state_new(loop, g->conf);
  uv_mutex_unlock(&g->workers_lock);
  if (!w->st) {
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
  /* one response cache per worker (no lock on the proxy path): the
   * configured total is shared among them */
  struct respcache_limits cl;
  respcache_limits_default(&cl);
  cl.shared = g->cache_epochs; /* an unsafe request through one worker reaches them all */
  cl.max_bytes /= n ? n : 1;
  cl.max_entries = cl.max_entries / (n ? n : 1) ? cl.max_entries / (n ? n : 1) : 1;
  w->cache = respcache_new(&cl);
  w->cache_entry_max = cl.max_entry_bytes ? cl.max_entry_bytes : cl.max_bytes / 8;
  if (!w->cache) {
    state_free(w->st);
    free(w);
    return -1;
  }
  uv_timer_init(loop, &w->cache_timer);
  w->cache_timer.data = w;
  uv_mutex_lock(&g->workers_lock);
  if (g->n_workers < sizeof g->workers / sizeof g->workers[0])
    g->workers[g->n_workers++] = w;
  uv_mutex_unlock(&g->workers_lock);
  *data = w;
  return 0;
}

static void on_cache_timer_closed(uv_handle_t *h) { free(h->data); }

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
  respcache_free(w->cache); /* waiters left (a forced stop) are answered first */
  w->cache = NULL;
  state_free(w->st);
  while (w->retired) {
    struct gw_state *next = w->retired->next_retired;
    state_free(w->retired);
    w->retired = next;
  }
  strbuf_free(&w->request_buf);
  /* the loop runs once more after this hook: the timer closes then, and
   * the worker is freed with it */
  uv_close((uv_handle_t *)&w->cache_timer, on_cache_timer_closed);
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
static void sync_health(struct gw_state *st) {
  const struct gw_conf *c = st->conf;
  for (unsigned i = 0; i < c->s.n_hosts; i++) {
    int healthy = __atomic_load_n(&c->healthy[i], __ATOMIC_RELAXED);
    if (healthy == st->seen_healthy[i])
      continue;
    if (healthy && breaker_state(&st->breakers[i]) != BREAKER_CLOSED) {
      host_breaker_init(st, i);
      log_event(LOG_INFO, "breaker", NULL, "%s: closed (the health checks pass again)",
                upstream_host_name(st->hosts[i]));
    }
    st->seen_healthy[i] = healthy;
    unsigned p = c->s.hosts[i].pool;
    lb_set_healthy(&st->pools[p], (int)(i - c->s.pools[p].first), healthy);
    /* The same evidence closes the breakers of the routes to this pool. */
    for (unsigned r = 0; healthy && r < c->s.n_routes; r++) {
      if (c->s.routes[r].pool != p || breaker_state(&st->route_breakers[r]) == BREAKER_CLOSED)
        continue;
      route_breaker_init(st, r);
      log_event(LOG_INFO, "breaker", NULL, "route %s: closed (a host of pool %s passes its "
                "health checks again)", c->s.routes[r].label, c->s.pools[p].name);
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
  refresh(w);
  struct gw_state *st = w->st;
  struct gw_conf *c = st->conf;
  struct http_request *req = http_request_of(ex);
  size_t host_len = 0;
  const char *host = http_header_get(req, "host", &host_len);
  if (gw_path_has_dot_segment(req->path, req->path_len)) {
    http_respond_error(ex, STRATA_EBAD_REQUEST,
                       "The path has a dot segment (. or ..), which the gateway does not route.",
                       NULL);
    return;
  }
  int route = gw_route_match(&c->s, host, host_len, req->method, req->path, req->path_len);
  if (route < 0) {
    http_respond_error(ex, STRATA_ENOT_FOUND, "No route matches this request.", NULL);
    return;
  }
  http_set_route(ex, c->s.routes[route].label, c->route_metrics[route]);
  st->route_stats[route].requests++;
  sync_health(st);
  struct auth_identity *id = arena_alloc(http_arena(ex), sizeof *id);
  if (!id) {
    http_respond_error(ex, -1, NULL, NULL);
    return;
  }
  if (gw_protect(w->g, c, ex, (unsigned)route, id) != 0)
    return;
  if (http_body_limit(ex, c->s.routes[route].max_body) != 0) {
    http_respond_error(ex, STRATA_EPAYLOAD_TOO_LARGE, NULL, NULL);
    return;
  }
  gw_proxy(ex, st, (unsigned)route, id);
}

int gateway_routes_register(struct gateway *g, struct router *r) {
  /* The proxy streams bodies both ways: its route gets requests at
   * headers-complete. Its cap here is only a ceiling: proxy_route lowers
   * it to the matched route's max_request_body from the running conf, so
   * a reload changes it. */
  (void)g;
  if (observe_routes_register(r) != 0 ||
      router_add_streaming(r, "*", "/*", proxy_route, NULL, GW_BODY_CEILING) != 0)
    return -1;
  return 0;
}
