/* Types shared by the gateway's own files (gateway.c, proxy.c, health.c). */
#ifndef STRATA_GATEWAY_INTERNAL_H
#define STRATA_GATEWAY_INTERNAL_H

#include <uv.h>

#include "core/strbuf.h"
#include "gateway/balancer.h"
#include "gateway/gateway.h"
#include "gateway/respcache.h"
#include "observe/histogram.h"
#include "gateway/upstream.h"
#include "resilience/breaker.h"
#include "resilience/retry.h"

/* Counters of one upstream host, per worker (summed for /metrics). */
struct gw_host_stats {
  uint64_t requests;       /* tries sent */
  uint64_t responses[5];   /* by status class */
  uint64_t failures;       /* tries that failed without a usable response */
  uint64_t retries;        /* tries that were retries */
  uint64_t breaker_rejected;
  uint64_t ejections;      /* passive outlier ejections */
};

/* Counters of one route, per worker. */
struct gw_route_stats {
  uint64_t requests;
  uint64_t rate_limited;
  uint64_t breaker_rejected; /* answered by the route's open breaker */
  uint64_t fallbacks;        /* answered by the configured fallback */
};

/* One configuration the gateway runs with: the resolved settings and what
 * is derived from them (credentials, rate limiters, metric ids, the health
 * checker's verdicts). Immutable once published, except the verdicts; a
 * reload (SIGHUP) publishes a new one, and each conf is freed when the
 * last worker state built on it is gone. */
struct gw_conf {
  struct gw_settings s;
  uint64_t generation;
  unsigned refs;                    /* the gateway's + one per worker state; atomic */
  int route_metrics[CFG_MAX_ROUTES]; /* metrics_route_id() of each route */
  int healthy[GW_MAX_HOSTS];        /* active checker's verdict, atomic */
  struct ratelimit *rl;             /* shared by the workers (sharded locks) */
  struct ratelimit *route_rl[CFG_MAX_ROUTES]; /* routes with their own limit */
  struct auth_keyring *keys;        /* NULL: no API keys */
  struct auth_jwt_config jwt;       /* algs 0: no JWT */
  unsigned char *jwt_secret;
  size_t jwt_secret_len;
  char *jwt_rs256_pem, *jwt_es256_pem;
  int credentials_accepted;         /* API keys or JWTs configured */
};

/* What one worker keeps for one conf: connection pools, balancers,
 * breakers and counters, indexed like the conf's hosts and routes. A proxy
 * call holds the state it started on, so a reload never pulls hosts or
 * routes from under a request in flight. */
struct gw_state {
  struct gw_conf *conf;
  struct upstream_host *hosts[GW_MAX_HOSTS];
  struct breaker breakers[GW_MAX_HOSTS];
  int seen_healthy[GW_MAX_HOSTS];      /* the checker's verdict at the last sync */
  struct gw_host_stats stats[GW_MAX_HOSTS];
  struct lb_pool pools[CFG_MAX_POOLS]; /* host i of pool p is conf->s.hosts[first + i] */
  struct breaker route_breakers[CFG_MAX_ROUTES];
  struct gw_route_stats route_stats[CFG_MAX_ROUTES];
  struct histogram *upstream_latency[GW_MAX_HOSTS]; /* per try; allocated on first use */
  unsigned in_flight;                  /* proxy calls holding it */
  struct gw_state *next_retired;
};

struct gw_worker {
  struct gateway *g;
  uv_loop_t *loop;
  unsigned index;
  struct gw_state *st;                 /* for new requests */
  struct gw_state *retired;            /* older states with calls in flight */
  struct retry_budget budget;
  struct strbuf request_buf;           /* upstream requests are built here */
  uint64_t budget_exhausted;
  struct respcache *cache;             /* GET answers of routes with `cache:` */
  uint64_t cache_entry_max;            /* the largest answer it stores: kept whole */
  uv_timer_t cache_timer;              /* releases waiters that waited too long */
};

struct gateway {
  struct strata_config cfg;
  struct respcache_epochs *cache_epochs; /* invalidations every worker's cache sees */
  struct gw_conf *conf;             /* current; swapped under workers_lock */
  struct gw_worker *workers[256];   /* registered by the hooks, for /metrics */
  unsigned n_workers;
  uv_mutex_t workers_lock;
  uv_thread_t checker;
  uv_loop_t checker_loop;
  uv_async_t checker_stop;
  uv_signal_t sighup;
  int checker_running;
  gw_reload_cb reload;
  void *reload_ctx;
  uint64_t reloads, reload_failures;
  uint64_t rate_limited;          /* 429s, for /metrics */
  uint64_t auth_failed;           /* 401s */
  uint64_t forbidden;             /* 403s: a scope the route needs is missing */
};

/* The host table index of host i of pool p. */
static inline int gw_host_index(const struct gw_conf *c, unsigned pool, int i) {
  return (int)c->s.pools[pool].first + i;
}

/* gateway.c: the conf now published (the caller holds no reference; use it
 * only while holding workers_lock or from a worker that refreshed). */
struct gw_conf *gw_current(struct gateway *g);
/* A conf built from s (credentials loaded, limiters made); NULL + why. */
struct gw_conf *gw_conf_new(const struct gw_settings *s, char *why, size_t why_len);
void gw_conf_release(struct gw_conf *c);
/* Publishes a new conf: workers switch at their next request, the health
 * checker at once. Takes over c's reference. */
void gw_publish(struct gateway *g, struct gw_conf *c);

/* proxy.c: (re)arms the worker's cache timer for respcache_tick()'s
 * deadline (UINT64_MAX: stops it). */
void gw_cache_arm(struct gw_worker *w, uint64_t deadline);

/* proxy.c / gateway.c: a proxy call ends: lets a retired state go. */
void gw_state_leave(struct gw_worker *w, struct gw_state *st);

/* proxy.c: forwards the exchange along route; id (NULL = anonymous) is
 * the verified identity the upstream receives in signed headers. */
void gw_proxy(struct http_exchange *ex, struct gw_state *st, unsigned route,
              const struct auth_identity *id);

/* protect.c: authentication, scopes and rate limiting in front of the
 * proxy. Returns 0 to go on (with *id filled, kind NONE when anonymous), or
 * non-zero after answering 400/401/403/429 itself. */
int gw_protect(struct gateway *g, struct gw_conf *c, struct http_exchange *ex, unsigned route,
               struct auth_identity *id);
int gw_protect_init(struct gw_conf *c, char *why, size_t why_len);
void gw_protect_free(struct gw_conf *c);

/* admin.c: the JSON document of GET /admin/status (pools, hosts, routes, breakers,
 * counters), appended to sb. */
void gw_admin_status_json(struct gateway *g, struct strbuf *sb);

/* health.c: the active checker thread (its loop also takes SIGHUP). */
int gw_health_start(struct gateway *g);
void gw_health_stop(struct gateway *g);
/* On the checker's loop: checks for the hosts of the current conf. */
void gw_health_rebuild(struct gateway *g);

#endif
