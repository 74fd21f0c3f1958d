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
#include "http/server.h"

#define GW_MAX_HOSTS 64

struct gw_host_config {
  char host[256];
  uint16_t port;
  uint32_t weight;
};

struct gw_settings {
  struct gw_host_config hosts[GW_MAX_HOSTS];
  unsigned n_hosts;
  uint32_t connect_timeout_ms;   /* TCP connect to an upstream */
  uint32_t try_timeout_ms;       /* one attempt, connect to last response byte */
  uint32_t total_timeout_ms;     /* all attempts together; 504 past it */
  unsigned max_attempts;         /* tries per request, retries included */
  uint32_t backoff_base_ms, backoff_cap_ms;
  uint32_t health_interval_ms;   /* active checks of GET /health/ready */
  uint32_t health_timeout_ms;
  unsigned health_rise, health_fall;
  unsigned trusted_hops;         /* X-Forwarded-For / Forwarded entries to keep */
  unsigned max_idle_per_host;    /* keep-alive connections per host per worker */
  size_t max_response_bytes;
  char identity_secret[512];     /* signs X-Strata-Identity-* upstream; "" = off */
  struct ratelimit_policy rate;  /* per client (identity, else address); rate 0 = off */
  char api_keys_file[1024];      /* "" = no API keys */
  char jwt_hs256_secret_file[1024], jwt_rs256_pem_file[1024], jwt_es256_pem_file[1024];
  char jwt_issuer[256], jwt_audience[256];
  int balance;                   /* enum lb_algorithm: 0 round robin, 1 least request, 2 hash */
  char hash_header[128];         /* hash: the header whose value is the key ("" = client address) */
};

void gw_settings_defaults(struct gw_settings *s);

struct gateway;

/* Builds the gateway over cfg (listen, workers, limits) and s (pools,
 * policies). Returns NULL and logs why. */
struct gateway *gateway_new(const struct strata_config *cfg, const struct gw_settings *s);
void gateway_free(struct gateway *g);

/* The proxy route (every path) and the gateway's own /health and /metrics. */
int gateway_routes_register(struct gateway *g, struct router *r);
const struct http_worker_hooks *gateway_worker_hooks(struct gateway *g);

/* Starts / stops the active health checker thread. */
int gateway_start(struct gateway *g);
void gateway_stop(struct gateway *g);

#endif
