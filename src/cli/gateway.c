/* `strata gateway`: the edge process. This is the no-config form of
 * `caddy reverse-proxy`: every request goes to one pool made of the
 * --upstream hosts, with the default policies on (active and passive health
 * checks, circuit breakers, retries with a budget, timeouts, metrics). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "app/trust.h"
#include "cli/cli.h"
#include "core/config.h"
#include "gateway/gateway.h"
#include "http/router.h"
#include "http/server.h"
#include "observe/log.h"
#include "observe/metrics.h"

/* "100/s", "6000/m", "10/h", optionally ":BURST" ("100/s:200"). */
static int parse_rate(const char *v, struct ratelimit_policy *out) {
  char unit = 0;
  unsigned long rate = 0, burst = 0;
  int used = 0;
  if (sscanf(v, "%lu/%c%n", &rate, &unit, &used) != 2 || rate == 0 || rate > 1000000000UL)
    return -1;
  if (v[used] == ':' && (sscanf(v + used + 1, "%lu", &burst) != 1 || burst == 0))
    return -1;
  else if (v[used] && v[used] != ':')
    return -1;
  out->rate = (uint32_t)rate;
  out->period_ms = unit == 's' ? 1000 : unit == 'm' ? 60000 : unit == 'h' ? 3600000 : 0;
  out->burst = (uint32_t)burst;
  return out->period_ms ? ratelimit_policy_check(out) : -1;
}

static int copy_arg(char *dst, size_t cap, const char *v) {
  if (strlen(v) >= cap)
    return -1;
  strcpy(dst, v);
  return 0;
}

static int parse_ms(const char *v, uint32_t *out) {
  uint64_t ms;
  char why[128];
  if (config_parse_duration_ms(v, &ms, why, sizeof why) != 0 || ms > UINT32_MAX)
    return -1;
  *out = (uint32_t)ms;
  return 0;
}

int cli_gateway(int argc, char **argv) {
  struct strata_config cfg;
  struct gw_settings s;
  config_defaults(&cfg);
  gw_settings_defaults(&s);
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    char why[160];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      cli_usage(stdout);
      return 0;
    }
    if (!v) {
      fprintf(stderr, "strata gateway: '%s' needs a value (see strata --help)\n", a);
      return 2;
    }
    i++;
    if (strcmp(a, "--listen") == 0) {
      if (config_parse_listen(v, cfg.listen_host, sizeof cfg.listen_host, &cfg.listen_port, why,
                              sizeof why) != 0) {
        fprintf(stderr, "strata gateway: --listen %s: %s\n", v, why);
        return 2;
      }
    } else if (strcmp(a, "--upstream") == 0) {
      if (s.n_hosts == GW_MAX_HOSTS) {
        fprintf(stderr, "strata gateway: at most %d upstreams\n", GW_MAX_HOSTS);
        return 2;
      }
      struct gw_host_config *h = &s.hosts[s.n_hosts];
      if (config_parse_listen(v, h->host, sizeof h->host, &h->port, why, sizeof why) != 0) {
        fprintf(stderr, "strata gateway: --upstream %s: %s\n", v, why);
        return 2;
      }
      if (strcmp(h->host, "0.0.0.0") == 0)
        strcpy(h->host, "127.0.0.1");
      h->weight = 1;
      s.n_hosts++;
    } else if (strcmp(a, "--workers") == 0) {
      char *end;
      unsigned long n = strtoul(v, &end, 10);
      if (*end || !*v || n > 256) {
        fprintf(stderr, "strata gateway: --workers needs a number from 0 to 256\n");
        return 2;
      }
      cfg.workers = (uint32_t)n;
    } else if (strcmp(a, "--log-level") == 0) {
      if (config_parse_log_level(v, &cfg.log_level) != 0) {
        fprintf(stderr, "strata gateway: --log-level must be debug, info, warn, error or off\n");
        return 2;
      }
    } else if (strcmp(a, "--health-interval") == 0) {
      if (parse_ms(v, &s.health_interval_ms) != 0) {
        fprintf(stderr, "strata gateway: --health-interval needs a duration such as 1s\n");
        return 2;
      }
    } else if (strcmp(a, "--try-timeout") == 0) {
      if (parse_ms(v, &s.try_timeout_ms) != 0) {
        fprintf(stderr, "strata gateway: --try-timeout needs a duration such as 2s\n");
        return 2;
      }
    } else if (strcmp(a, "--timeout") == 0) {
      if (parse_ms(v, &s.total_timeout_ms) != 0) {
        fprintf(stderr, "strata gateway: --timeout needs a duration such as 15s\n");
        return 2;
      }
    } else if (strcmp(a, "--identity-secret-file") == 0) {
      if (trust_read_secret(v, s.identity_secret, sizeof s.identity_secret, why, sizeof why) != 0) {
        fprintf(stderr, "strata gateway: --identity-secret-file: %s\n", why);
        return 2;
      }
    } else if (strcmp(a, "--rate-limit") == 0) {
      if (parse_rate(v, &s.rate) != 0) {
        fprintf(stderr, "strata gateway: --rate-limit wants RATE/s|m|h[:BURST], e.g. 100/s:200\n");
        return 2;
      }
    } else if (strcmp(a, "--api-keys") == 0 || strcmp(a, "--jwt-hs256-secret-file") == 0 ||
               strcmp(a, "--jwt-rs256-public-key") == 0 || strcmp(a, "--jwt-es256-public-key") == 0 ||
               strcmp(a, "--jwt-issuer") == 0 || strcmp(a, "--jwt-audience") == 0) {
      char *dst = strcmp(a, "--api-keys") == 0               ? s.api_keys_file
                  : strcmp(a, "--jwt-hs256-secret-file") == 0 ? s.jwt_hs256_secret_file
                  : strcmp(a, "--jwt-rs256-public-key") == 0  ? s.jwt_rs256_pem_file
                  : strcmp(a, "--jwt-es256-public-key") == 0  ? s.jwt_es256_pem_file
                  : strcmp(a, "--jwt-issuer") == 0            ? s.jwt_issuer
                                                              : s.jwt_audience;
      size_t cap = strcmp(a, "--jwt-issuer") == 0 || strcmp(a, "--jwt-audience") == 0 ? 256 : 1024;
      if (copy_arg(dst, cap, v) != 0) {
        fprintf(stderr, "strata gateway: %s: value too long\n", a);
        return 2;
      }
    } else if (strcmp(a, "--balance") == 0) {
      if (strcmp(v, "round-robin") == 0) {
        s.balance = 0;
      } else if (strcmp(v, "least-request") == 0) {
        s.balance = 1;
      } else if (strcmp(v, "hash-client") == 0) {
        s.balance = 2;
        s.hash_header[0] = '\0';
      } else if (strncmp(v, "hash-header:", 12) == 0 && v[12] && strlen(v + 12) < sizeof s.hash_header) {
        s.balance = 2;
        strcpy(s.hash_header, v + 12);
      } else {
        fprintf(stderr, "strata gateway: --balance is round-robin, least-request, hash-client or "
                        "hash-header:NAME\n");
        return 2;
      }
    } else if (strcmp(a, "--trusted-hops") == 0) {
      s.trusted_hops = (unsigned)atoi(v);
    } else {
      fprintf(stderr, "strata gateway: unknown option '%s' (see strata --help)\n", a);
      return 2;
    }
  }
  if (s.n_hosts == 0) {
    fprintf(stderr, "strata gateway: give at least one --upstream HOST:PORT\n");
    return 2;
  }
  log_set_level(cfg.log_level);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  int rc = 1;
  struct http_server *server = NULL;
  struct router *router = router_new();
  struct gateway *g = gateway_new(&cfg, &s);
  if (!router || !g || gateway_routes_register(g, router) != 0)
    goto done;
  server = http_server_new(&cfg, router);
  if (!server)
    goto done;
  http_server_set_worker_hooks(server, gateway_worker_hooks(g));
  if (gateway_start(g) != 0)
    goto done;
  rc = http_server_run(server) == 0 ? 0 : 1;
done:
  gateway_stop(g);
  http_server_free(server);
  router_free(router);
  metrics_shutdown();
  gateway_free(g);
  return rc;
}
