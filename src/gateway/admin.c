/* The admin listener: a separate address (127.0.0.1:9901 by default),
 * served by worker 0 of the gateway, for `strata status` and the dashboard.
 *
 *   GET /admin/status   Authorization: Bearer <token>   -> JSON
 *
 * The JSON is a snapshot summed over the workers (each keeps its own pools,
 * breakers and counters; a host is "ejected" or its breaker "open" when it
 * is so in any worker). The token is compared in constant time; without a
 * configured token the listener is not opened at all (cli/gateway.c). The
 * gateway's /health and /metrics are served here too, so a probe need not
 * share the public listener. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "gateway/internal.h"
#include "observe/routes.h"

static json_t *host_json(struct gateway *g, const struct gw_conf *conf, unsigned h, uint64_t now) {
  unsigned pool = conf->s.hosts[h].pool;
  int local = (int)(h - conf->s.pools[pool].first);
  unsigned active = 0, idle = 0, outstanding = 0, ejections = 0;
  int ejected = 0;
  enum breaker_state worst = BREAKER_CLOSED;
  uint64_t requests = 0, failures = 0, retries = 0, responses[5] = {0};
  for (unsigned w = 0; w < g->n_workers; w++) {
    struct gw_state *wk = g->workers[w]->st;
    if (wk->conf != conf)
      continue;
    active += upstream_host_active(wk->hosts[h]);
    idle += upstream_host_idle(wk->hosts[h]);
    const struct lb_host *lh = &wk->pools[pool].hosts[local];
    outstanding += lh->outstanding;
    ejections += lh->ejections;
    ejected |= lh->ejected_until_ms > now;
    enum breaker_state st = breaker_state(&wk->breakers[h]);
    if (st == BREAKER_OPEN || (st == BREAKER_HALF_OPEN && worst == BREAKER_CLOSED))
      worst = st;
    requests += wk->stats[h].requests;
    failures += wk->stats[h].failures;
    retries += wk->stats[h].retries;
    for (int c = 0; c < 5; c++)
      responses[c] += wk->stats[h].responses[c];
  }
  char address[96];
  snprintf(address, sizeof address, "%s:%u", conf->s.hosts[h].host, conf->s.hosts[h].port);
  json_t *o = json_pack("{s:s, s:i, s:b, s:b, s:s, s:i, s:i, s:i, s:I, s:I, s:I, s:i}",
                        "address", address, "weight", (int)conf->s.hosts[h].weight, "healthy",
                        __atomic_load_n(&conf->healthy[h], __ATOMIC_RELAXED) != 0, "ejected",
                        ejected, "breaker", breaker_state_name(worst), "active", (int)active,
                        "idle", (int)idle, "outstanding", (int)outstanding, "requests",
                        (json_int_t)requests, "failures", (json_int_t)failures, "retries",
                        (json_int_t)retries, "ejections", (int)ejections);
  json_t *by_class = json_object();
  static const char *const classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int c = 0; c < 5; c++)
    json_object_set_new(by_class, classes[c], json_integer((json_int_t)responses[c]));
  json_object_set_new(o, "responses", by_class);
  return o;
}

static json_t *route_json(struct gateway *g, const struct gw_conf *conf, unsigned r) {
  const struct gw_route *rt = &conf->s.routes[r];
  enum breaker_state worst = BREAKER_CLOSED;
  uint64_t requests = 0, limited = 0, rejected = 0, fallbacks = 0;
  for (unsigned w = 0; w < g->n_workers; w++) {
    struct gw_state *wk = g->workers[w]->st;
    if (wk->conf != conf)
      continue;
    enum breaker_state st = breaker_state(&wk->route_breakers[r]);
    if (st == BREAKER_OPEN || (st == BREAKER_HALF_OPEN && worst == BREAKER_CLOSED))
      worst = st;
    requests += wk->route_stats[r].requests;
    limited += wk->route_stats[r].rate_limited;
    rejected += wk->route_stats[r].breaker_rejected;
    fallbacks += wk->route_stats[r].fallbacks;
  }
  return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "match", rt->label, "pool",
                   conf->s.pools[rt->pool].name, "breaker", breaker_state_name(worst), "requests",
                   (json_int_t)requests, "rateLimited", (json_int_t)limited, "breakerRejected",
                   (json_int_t)rejected, "fallbacks", (json_int_t)fallbacks);
}

void gw_admin_status_json(struct gateway *g, struct strbuf *sb) {
  json_t *pools = json_array(), *routes = json_array();
  uv_mutex_lock(&g->workers_lock);
  const struct gw_conf *conf = g->conf;
  uint64_t now = g->n_workers ? uv_now(g->workers[0]->loop) : 0;
  for (unsigned p = 0; p < conf->s.n_pools; p++) {
    const struct gw_pool *pool = &conf->s.pools[p];
    json_t *hosts = json_array();
    unsigned healthy = 0;
    for (unsigned i = 0; i < pool->n_hosts; i++) {
      json_array_append_new(hosts, host_json(g, conf, pool->first + i, now));
      healthy += __atomic_load_n(&conf->healthy[pool->first + i], __ATOMIC_RELAXED) != 0;
    }
    json_array_append_new(pools, json_pack("{s:s, s:s, s:i, s:o}", "name", pool->name, "status",
                                           healthy == 0               ? "down"
                                           : healthy < pool->n_hosts ? "degraded"
                                                                      : "up",
                                           "healthyHosts", (int)healthy, "hosts", hosts));
  }
  for (unsigned r = 0; r < conf->s.n_routes; r++)
    json_array_append_new(routes, route_json(g, conf, r));
  unsigned workers = g->n_workers;
  uint64_t generation = conf->generation;
  uv_mutex_unlock(&g->workers_lock);
  json_t *doc = json_pack("{s:o, s:o, s:i, s:I, s:I, s:I, s:I}", "pools", pools, "routes", routes,
                          "workers", (int)workers, "configGeneration", (json_int_t)generation,
                          "rateLimited",
                          (json_int_t)__atomic_load_n(&g->rate_limited, __ATOMIC_RELAXED),
                          "authFailed", (json_int_t)__atomic_load_n(&g->auth_failed, __ATOMIC_RELAXED),
                          "forbidden", (json_int_t)__atomic_load_n(&g->forbidden, __ATOMIC_RELAXED));
  char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  if (text)
    strbuf_puts(sb, text);
  free(text);
  json_decref(doc);
}

static int authorized(struct gateway *g, struct http_exchange *ex) {
  size_t len = 0;
  const char *v = http_header_get(http_request_of(ex), "authorization", &len);
  /* the token of the running configuration (a reload may change it) */
  char token[sizeof g->conf->s.admin_token];
  uv_mutex_lock(&g->workers_lock);
  memcpy(token, g->conf->s.admin_token, sizeof token);
  uv_mutex_unlock(&g->workers_lock);
  size_t want = strlen(token);
  /* "Bearer", in any case, then one or more spaces (RFC 9110 11.1), then
   * the token's bytes as the file holds them (any characters: not only
   * token68, so that a token that worked before still does) */
  int bearer = v && len > 6 && strncasecmp(v, "bearer", 6) == 0;
  size_t sp = 6;
  while (bearer && sp < len && v[sp] == ' ')
    sp++;
  if (!bearer || !want || sp == 6 || len - sp != want || CRYPTO_memcmp(v + sp, token, want) != 0) {
    /* a token that was sent and is wrong says so (RFC 6750 3.1) */
    http_add_header(ex, "WWW-Authenticate",
                    bearer ? "Bearer realm=\"strata-admin\", error=\"invalid_token\""
                           : "Bearer realm=\"strata-admin\"");
    http_respond_error(ex, STRATA_EUNAUTHORIZED, "The admin token is missing or wrong.", NULL);
    return 0;
  }
  return 1;
}

static void admin_status(struct http_exchange *ex, void *data) {
  struct gateway *g = data;
  if (!authorized(g, ex))
    return;
  /* every method reaches here so that the token is asked for first: the
   * path's methods are no one's business without it */
  const char *method = http_request_of(ex)->method;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    http_add_header(ex, "Allow", "GET, HEAD");
    http_respond_error(ex, STRATA_EMETHOD_NOT_ALLOWED, NULL, NULL);
    return;
  }
  struct strbuf sb;
  strbuf_init(&sb, 4096);
  gw_admin_status_json(g, &sb);
  if (sb.failed || !sb.len)
    http_respond_error(ex, STRATA_EINTERNAL, NULL, NULL);
  else
    http_respond(ex, 200, "application/json", sb.data, sb.len);
  strbuf_free(&sb);
}

int gateway_admin_register(struct gateway *g, struct router *r) {
  if (observe_routes_register(r) != 0 || router_add(r, "*", "/admin/status", admin_status, g) != 0)
    return -1;
  return 0;
}
