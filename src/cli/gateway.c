/* `strata gateway`: the edge process. With --config FILE its routes, pools
 * and policies come from the file's gateway section (pools may name a
 * service of the file's topology). Without, it is the no-config form of
 * `caddy reverse-proxy`: every request goes to one pool made of the
 * --upstream hosts, with the default policies on (active and passive health
 * checks, circuit breakers, retries with a budget, timeouts, metrics).
 * Flags override the file either way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
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

static void no_config_route(struct strata_config *cfg) {
  struct gateway_config *g = &cfg->gateway;
  g->n_pools = 1;
  snprintf(g->pools[0].name, sizeof g->pools[0].name, "default");
  g->n_routes = 1;
  struct route_config *r = &g->routes[0];
  memset(r, 0, sizeof *r);
  snprintf(r->prefix, sizeof r->prefix, "/");
  snprintf(r->pool, sizeof r->pool, "default");
}

/* What a gateway runs with, from the file (--config) and the flags: the
 * whole of it, so a reload (SIGHUP) builds it again the same way. Returns
 * 0, or 2 with the problems in why (one a line). */
static int build(int argc, char **argv, struct strata_config *out, struct gw_settings *settings,
                 char *why_out, size_t why_cap) {
  static struct strata_config cfg; /* large; built on one thread at a time */
  config_defaults(&cfg);
  why_out[0] = '\0';
  const char *config_path = NULL;
  for (int i = 0; i + 1 < argc; i++)
    if (strcmp(argv[i], "--config") == 0)
      config_path = argv[i + 1];
  if (config_path) {
    struct config_errors errs;
    if (config_load(config_path, &cfg, &errs) != 0) {
      int n = errs.count < CONFIG_MAX_ERRORS ? errs.count : CONFIG_MAX_ERRORS;
      size_t used = 0;
      for (int e = 0; e < n && used < why_cap; e++)
        used += (size_t)snprintf(why_out + used, why_cap - used, "%s%s:%d: %s", e ? "\n" : "",
                                 config_path, errs.items[e].line, errs.items[e].message);
      return 2;
    }
    if (!cfg.gateway.n_routes) {
      snprintf(why_out, why_cap, "strata gateway: %s has no gateway.routes", config_path);
      return 2;
    }
  } else {
    no_config_route(&cfg);
  }
  struct gateway_config *gc = &cfg.gateway;
  struct pool_config *pool = &gc->pools[0];
  uint32_t workers = gc->workers;
  int workers_set = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    char why[160];
    if (!v) {
      snprintf(why_out, why_cap, "strata gateway: '%s' needs a value (see strata --help)", a);
      return 2;
    }
    i++;
    int pool_flag = strcmp(a, "--upstream") == 0 || strcmp(a, "--balance") == 0 ||
                    strcmp(a, "--health-interval") == 0 || strcmp(a, "--health-path") == 0;
    if (pool_flag && config_path) {
      snprintf(why_out, why_cap, "strata gateway: %s is for the no-config form; with --config, pools come "
                      "from the file", a);
      return 2;
    }
    if (strcmp(a, "--config") == 0) {
      /* read above */
    } else if (strcmp(a, "--listen") == 0 || strcmp(a, "--admin") == 0) {
      int admin = strcmp(a, "--admin") == 0;
      if (config_parse_listen(v, admin ? gc->admin_host : gc->listen_host,
                              sizeof gc->listen_host, admin ? &gc->admin_port : &gc->listen_port,
                              why, sizeof why) != 0) {
        snprintf(why_out, why_cap, "strata gateway: %s %s: %s", a, v, why);
        return 2;
      }
    } else if (strcmp(a, "--data") == 0) {
      if (copy_arg(cfg.data_dir, sizeof cfg.data_dir, v) != 0) {
        snprintf(why_out, why_cap, "strata gateway: --data: value too long");
        return 2;
      }
    } else if (strcmp(a, "--upstream") == 0) {
      if (pool->n_hosts == CFG_MAX_POOL_HOSTS) {
        snprintf(why_out, why_cap, "strata gateway: at most %d upstreams", CFG_MAX_POOL_HOSTS);
        return 2;
      }
      struct host_config *h = &pool->hosts[pool->n_hosts];
      if (config_parse_listen(v, h->host, sizeof h->host, &h->port, why, sizeof why) != 0) {
        snprintf(why_out, why_cap, "strata gateway: --upstream %s: %s", v, why);
        return 2;
      }
      h->weight = 1;
      pool->n_hosts++;
    } else if (strcmp(a, "--workers") == 0) {
      char *end;
      unsigned long n = strtoul(v, &end, 10);
      if (*end || !*v || n > 256) {
        snprintf(why_out, why_cap, "strata gateway: --workers needs a number from 0 to 256");
        return 2;
      }
      workers = (uint32_t)n;
      workers_set = 1;
    } else if (strcmp(a, "--log-level") == 0) {
      if (config_parse_log_level(v, &cfg.log_level) != 0) {
        snprintf(why_out, why_cap, "strata gateway: --log-level must be debug, info, warn, error or off");
        return 2;
      }
    } else if (strcmp(a, "--busy-poll") == 0) {
      if (cli_parse_busy_poll(v, &cfg.http.busy_poll_us, why, sizeof why) != 0) {
        snprintf(why_out, why_cap, "strata gateway: --busy-poll %s", why);
        return 2;
      }
    } else if (strcmp(a, "--health-interval") == 0) {
      if (parse_ms(v, &pool->health_interval_ms) != 0) {
        snprintf(why_out, why_cap, "strata gateway: --health-interval needs a duration such as 1s");
        return 2;
      }
      pool->health_disabled = pool->health_interval_ms == 0;
    } else if (strcmp(a, "--health-path") == 0) {
      /* upstreams that are not strata services have no /health/ready */
      if (!config_request_path_ok(v) ||
          copy_arg(pool->health_path, sizeof pool->health_path, v) != 0) {
        snprintf(why_out, why_cap, "strata gateway: --health-path needs a path such as /healthz");
        return 2;
      }
    } else if (strcmp(a, "--try-timeout") == 0) {
      if (parse_ms(v, &gc->try_timeout_ms) != 0) {
        snprintf(why_out, why_cap, "strata gateway: --try-timeout needs a duration such as 2s");
        return 2;
      }
    } else if (strcmp(a, "--timeout") == 0) {
      if (parse_ms(v, &gc->total_timeout_ms) != 0) {
        snprintf(why_out, why_cap, "strata gateway: --timeout needs a duration such as 15s");
        return 2;
      }
    } else if (strcmp(a, "--rate-limit") == 0) {
      struct ratelimit_policy rp;
      if (parse_rate(v, &rp) != 0) {
        snprintf(why_out, why_cap, "strata gateway: --rate-limit wants RATE/s|m|h[:BURST], e.g. 100/s:200");
        return 2;
      }
      gc->rate = rp.rate;
      gc->rate_period_ms = rp.period_ms;
      gc->burst = rp.burst;
    } else if (strcmp(a, "--identity-secret-file") == 0 || strcmp(a, "--api-keys") == 0 ||
               strcmp(a, "--jwt-hs256-secret-file") == 0 ||
               strcmp(a, "--jwt-rs256-public-key") == 0 || strcmp(a, "--jwt-es256-public-key") == 0 ||
               strcmp(a, "--jwt-issuer") == 0 || strcmp(a, "--jwt-audience") == 0 ||
               strcmp(a, "--admin-token-file") == 0 || strcmp(a, "--balance") == 0) {
      char *dst = strcmp(a, "--identity-secret-file") == 0    ? gc->identity_secret_file
                  : strcmp(a, "--api-keys") == 0              ? gc->api_keys_file
                  : strcmp(a, "--jwt-hs256-secret-file") == 0 ? gc->jwt_hs256_secret_file
                  : strcmp(a, "--jwt-rs256-public-key") == 0  ? gc->jwt_rs256_public_key
                  : strcmp(a, "--jwt-es256-public-key") == 0  ? gc->jwt_es256_public_key
                  : strcmp(a, "--jwt-issuer") == 0            ? gc->jwt_issuer
                  : strcmp(a, "--jwt-audience") == 0          ? gc->jwt_audience
                  : strcmp(a, "--balance") == 0               ? pool->balance
                                                              : gc->admin_token_file;
      size_t cap = strcmp(a, "--jwt-issuer") == 0 || strcmp(a, "--jwt-audience") == 0 ? 256
                   : strcmp(a, "--balance") == 0                                       ? 160
                                                                                       : 1024;
      if (copy_arg(dst, cap, v) != 0) {
        snprintf(why_out, why_cap, "strata gateway: %s: value too long", a);
        return 2;
      }
    } else if (strcmp(a, "--max-request-body") == 0) {
      uint64_t n;
      if (config_parse_size(v, &n, why, sizeof why) != 0) {
        snprintf(why_out, why_cap, "strata gateway: --max-request-body needs a size such as 1g");
        return 2;
      }
      gc->max_request_body = n;
    } else if (strcmp(a, "--trusted-hops") == 0) {
      char *end;
      unsigned long n = strtoul(v, &end, 10);
      if (*end || !*v || n > 64) {
        snprintf(why_out, why_cap, "strata gateway: --trusted-hops needs a number from 0 to 64");
        return 2;
      }
      gc->trusted_hops = (unsigned)n;
    } else {
      snprintf(why_out, why_cap, "strata gateway: unknown option '%s' (see strata --help)", a);
      return 2;
    }
  }
  if (!config_path && pool->n_hosts == 0) {
    snprintf(why_out, why_cap, "strata gateway: give at least one --upstream HOST:PORT (or --config FILE)");
    return 2;
  }
  /* The process listens where the gateway section says. */
  snprintf(cfg.listen_host, sizeof cfg.listen_host, "%s", gc->listen_host);
  cfg.listen_port = gc->listen_port;
  if (workers_set || gc->workers)
    cfg.workers = workers;
  char why[300];
  if (gw_settings_from_config(&cfg, settings, why, sizeof why) != 0) {
    snprintf(why_out, why_cap, "strata gateway: %s", why);
    return 2;
  }
  *out = cfg;
  return 0;
}

/* Field by field: the struct has padding a memcmp would read. */
static int http_limits_equal(const struct http_limits *a, const struct http_limits *b) {
  return a->max_request_line == b->max_request_line && a->max_header_bytes == b->max_header_bytes &&
         a->max_headers == b->max_headers && a->max_body_bytes == b->max_body_bytes &&
         a->header_timeout_ms == b->header_timeout_ms && a->body_timeout_ms == b->body_timeout_ms &&
         a->idle_timeout_ms == b->idle_timeout_ms && a->max_connections == b->max_connections &&
         a->drain_timeout_ms == b->drain_timeout_ms && a->max_json_depth == b->max_json_depth &&
         a->busy_poll_us == b->busy_poll_us;
}

struct reloader {
  int argc;
  char **argv;
  struct strata_config running;
};

static int reload(void *ctx, struct gw_settings *s, char *why, size_t why_len) {
  struct reloader *r = ctx;
  static struct strata_config cfg;
  if (build(r->argc, r->argv, &cfg, s, why, why_len) != 0)
    return -1;
  /* Listeners, threads and the HTTP server's settings are the process's:
   * they change with a restart. */
  if (strcmp(cfg.listen_host, r->running.listen_host) != 0 ||
      cfg.listen_port != r->running.listen_port || cfg.workers != r->running.workers ||
      s->admin_port != r->running.gateway.admin_port ||
      !http_limits_equal(&cfg.http, &r->running.http))
    log_event(LOG_WARN, "reload_partial", NULL,
              "SIGHUP: listen addresses, workers and the http section (limits, timeouts, "
              "busy_poll) change only with a restart; the rest is reloaded");
  return 0;
}

int cli_gateway(int argc, char **argv) {
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      cli_usage(stdout);
      return 0;
    }
  static struct strata_config cfg;
  static struct gw_settings s; /* large: not on the stack */
  char errors[4096];
  if (build(argc, argv, &cfg, &s, errors, sizeof errors) != 0) {
    fprintf(stderr, "%s\n", errors);
    return 2;
  }
  log_set_level(cfg.log_level);
  static struct reloader reloader;
  reloader.argc = argc;
  reloader.argv = argv;
  reloader.running = cfg;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  int rc = 1;
  /* The listeners accept from http_server_new() on, before the reload
   * handler exists (gateway_start): a SIGHUP in between would kill the
   * process. Held back until then, it reloads. */
  sigset_t hup;
  sigemptyset(&hup);
  sigaddset(&hup, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &hup, NULL);
  struct http_server *server = NULL;
  struct router *router = router_new();
  struct router *admin = NULL;
  struct gateway *g = gateway_new(&cfg, &s);
  if (!router || !g || gateway_routes_register(g, router) != 0)
    goto done;
  server = http_server_new(&cfg, router);
  if (!server)
    goto done;
  if (s.admin_port && !s.admin_token[0]) {
    log_event(LOG_INFO, "admin_off", NULL,
              "no admin listener: it needs a token (gateway.admin.token_file or "
              "--admin-token-file)");
  } else if (s.admin_port) {
    admin = router_new();
    if (!admin || gateway_admin_register(g, admin) != 0 ||
        http_server_add_listener(server, s.admin_host, s.admin_port, admin) != 0)
      goto done;
  }
  http_server_set_worker_hooks(server, gateway_worker_hooks(g));
  gateway_set_reloader(g, reload, &reloader);
  if (gateway_start(g) != 0)
    goto done;
  pthread_sigmask(SIG_UNBLOCK, &hup, NULL); /* SIGTERM stays held: see http_server_new */
  rc = http_server_run(server) == 0 ? 0 : 1;
done:
  gateway_stop(g);
  http_server_free(server);
  router_free(router);
  router_free(admin);
  metrics_shutdown();
  gateway_free(g);
  return rc;
}
