/* `strata gateway`: the edge. Routes every request to an upstream pool,
 * balances it over the pool's hosts, checks their health actively and
 * passively, breaks circuits, retries where it is safe, and observes it all.
 *
 * Process-wide state (struct gateway) holds the configuration and what the
 * health checker learns; each worker thread has its own connection pools,
 * balancer state, breakers and retry budget (struct gw_worker), so the proxy
 * path takes no lock. */
#ifndef STRATA_GATEWAY_GATEWAY_H
#define STRATA_GATEWAY_GATEWAY_H

#include <stdint.h>

#include "core/config.h"
#include "gateway/auth.h"
#include "gateway/ratelimit.h"
#include "http/router.h"
#include "resilience/breaker.h"
#include "resilience/retry.h"
#include "http/server.h"

#define GW_MAX_HOSTS 64 /* all pools together */

/* One upstream host; pools own consecutive ranges of the host table. */
struct gw_host_config {
  char host[64];
  uint16_t port;
  uint32_t weight;
  unsigned pool;
};

struct gw_pool {
  char name[CFG_NAME_MAX];
  unsigned first, n_hosts;       /* hosts[first .. first + n_hosts) */
  int balance;                   /* enum lb_algorithm */
  char hash_header[128];         /* hash: the header whose value is the key ("" = client address) */
  char hash_param[64];           /* hash: the route pattern's :NAME whose value is the key */
  uint32_t connect_timeout_ms;
  unsigned max_idle;             /* keep-alive connections per host per worker */
  uint32_t health_interval_ms;   /* active checks of GET health_path; 0 = off */
  uint32_t health_timeout_ms;
  unsigned health_rise, health_fall;
  char health_path[128];
};

/* A route as the proxy uses it: the configured entry plus what follows
 * from it and the gateway's defaults. */
/* No request body is larger (gateway.max_request_body's range). */
#define GW_BODY_CEILING (1024ULL << 30)

struct gw_route {
  struct route_config rc;
  unsigned pool;
  char label[400];               /* metrics and admin: "GET /api/users" */
  struct retry_policy retry;
  struct breaker_config breaker;
  struct ratelimit_policy rate;  /* rate 0: the gateway's limit */
  uint64_t max_body;             /* request body bytes (413 past it) */
};

/* Everything the gateway runs with, resolved from a strata_config (pools
 * named by a service get that service's instances as hosts). Plain data. */
struct gw_settings {
  struct gw_host_config hosts[GW_MAX_HOSTS];
  unsigned n_hosts;
  struct gw_pool pools[CFG_MAX_POOLS];
  unsigned n_pools;
  struct gw_route routes[CFG_MAX_ROUTES];
  unsigned n_routes;
  uint32_t try_timeout_ms;       /* one attempt, connect to last response byte */
  uint32_t total_timeout_ms;     /* all attempts together; 504 past it */
  unsigned trusted_hops;         /* X-Forwarded-For / Forwarded entries to keep */
  size_t max_response_bytes;     /* an answer kept whole (retryable statuses, HEAD) */
  uint64_t max_request_body;     /* request body bytes, streamed (413 past it) */
  char identity_secret[512];     /* signs X-Strata-Identity-* upstream; "" = off */
  struct ratelimit_policy rate;  /* per client (identity, else address); rate 0 = off */
  char api_keys_file[1024];      /* "" = no API keys */
  char jwt_hs256_secret_file[1024], jwt_rs256_pem_file[1024], jwt_es256_pem_file[1024];
  char jwt_issuer[256], jwt_audience[256];
  char admin_host[64];           /* the admin listener; port 0 = none */
  uint16_t admin_port;
  char admin_token[256];         /* "" = the admin listener refuses everything */
};

/* Resolves cfg->gateway (and cfg->services for pools named by a service)
 * into s. Returns 0, or -1 with a reason in why. */
int gw_settings_from_config(const struct strata_config *cfg, struct gw_settings *s, char *why,
                            size_t why_len);

/* 1 when the path has a "." or ".." segment, also spelt with %2e, or
 * separated by %2f, %5c or a backslash: routes match the path as received,
 * and an upstream that normalises it would serve another route's path. */
int gw_path_has_dot_segment(const char *path, size_t len);

/* The route a request takes: the first whose host, methods and path match
 * (file order, as Envoy), or -1. */
int gw_route_match(const struct gw_settings *s, const char *host, size_t host_len,
                   const char *method, const char *path, size_t path_len);

/* The value of the route pattern's parameter name in path (its raw
 * segment): 1 with *val / *len set, 0 when the route has no such
 * parameter or the path does not match. */
int gw_route_param(const struct gw_route *r, const char *path, size_t path_len, const char *name,
                   const char **val, size_t *len);

/* The path sent upstream after the route's strip_prefix / rewrite_prefix:
 * writes it to out (cap bytes) and returns its length, or 0 when it does
 * not fit. */
size_t gw_route_rewrite(const struct gw_route *r, const char *path, size_t path_len, char *out,
                        size_t cap);

struct gateway;

/* Builds the gateway over cfg (listen, workers, limits) and s (pools,
 * routes, policies). Returns NULL and logs why. */
struct gateway *gateway_new(const struct strata_config *cfg, const struct gw_settings *s);

/* What `strata gateway --config` would refuse at start beyond the file's
 * own syntax: unknown pools and services, and the files it names (API
 * keys, JWT keys, the admin token) unreadable or invalid. 0, or -1 with
 * the reason in why. */
int gateway_check(const struct strata_config *cfg, char *why, size_t why_len);
void gateway_free(struct gateway *g);

/* The proxy route (every path) and the gateway's own /health and /metrics. */
int gateway_routes_register(struct gateway *g, struct router *r);
const struct http_worker_hooks *gateway_worker_hooks(struct gateway *g);

/* The admin listener's routes: GET /admin/status (JSON: pools, hosts,
 * health, breakers, routes, counters) behind a bearer token, and the
 * gateway's health and metrics. */
int gateway_admin_register(struct gateway *g, struct router *r);

/* Builds the configuration a reload (SIGHUP) switches to: the file and the
 * command line again, into s. Returns 0, or -1 with the reasons in why. */
typedef int (*gw_reload_cb)(void *ctx, struct gw_settings *s, char *why, size_t why_len);
void gateway_set_reloader(struct gateway *g, gw_reload_cb cb, void *ctx);

/* Starts / stops the active health checker thread. */
int gateway_start(struct gateway *g);
void gateway_stop(struct gateway *g);

#endif
