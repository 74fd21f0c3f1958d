/* `strata serve`: one service process. Loads the config, applies the
 * command-line overrides, places the process in the topology (--service:
 * which domains, port, data directory; topology.h), registers the routes
 * and runs the HTTP server until a shutdown signal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "app/app.h"
#include "app/topology.h"
#include "app/trust.h"
#include "cli/cli.h"
#include "core/config.h"
#include "http/router.h"
#include "http/server.h"
#include "observe/log.h"
#include "observe/metrics.h"
#include "observe/routes.h"

static int parse_uint(const char *s, unsigned max, unsigned *out) {
  char *end;
  if (!s || !*s || *s == '-' || *s == '+')
    return -1;
  unsigned long v = strtoul(s, &end, 10);
  if (*end || v > max)
    return -1;
  *out = (unsigned)v;
  return 0;
}

static int print_config_errors(const char *path, const struct config_errors *errs) {
  int shown = errs->count < CONFIG_MAX_ERRORS ? errs->count : CONFIG_MAX_ERRORS;
  for (int i = 0; i < shown; i++) {
    if (errs->items[i].line > 0)
      fprintf(stderr, "%s:%d: %s\n", path, errs->items[i].line, errs->items[i].message);
    else
      fprintf(stderr, "%s: %s\n", path, errs->items[i].message);
  }
  if (errs->count > shown)
    fprintf(stderr, "%s: ... and %d more\n", path, errs->count - shown);
  return 1;
}

int cli_serve(int argc, char **argv) {
  struct strata_config cfg;
  config_defaults(&cfg);
  static char identity_secret[512]; /* outlives the server: the filter reads it */
  identity_secret[0] = '\0';
  const char *config_path = NULL, *service = NULL;
  unsigned instance = 0;
  int listen_given = 0, workers_given = 0;
  char listen_host[sizeof cfg.listen_host];
  uint16_t listen_port = 0;
  unsigned workers = 0;
  /* The file first, flags over it: find --config before the rest. */
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
      config_path = argv[i + 1];
  if (config_path) {
    struct config_errors errs = {0};
    if (config_load(config_path, &cfg, &errs) != 0)
      return print_config_errors(config_path, &errs);
  }
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    char why[160];
    unsigned u;
    if (strcmp(a, "--config") == 0) {
      i++;
    } else if (strcmp(a, "--listen") == 0 && v) {
      if (config_parse_listen(v, listen_host, sizeof listen_host, &listen_port, why,
                              sizeof why) != 0) {
        fprintf(stderr, "strata serve: --listen %s: %s\n", v, why);
        return 2;
      }
      listen_given = 1;
      i++;
    } else if (strcmp(a, "--workers") == 0 && v) {
      if (parse_uint(v, 256, &u) != 0) {
        fprintf(stderr, "strata serve: --workers needs a number from 0 to 256 (0 = CPUs)\n");
        return 2;
      }
      workers = u;
      workers_given = 1;
      i++;
    } else if (strcmp(a, "--busy-poll") == 0 && v) {
      if (cli_parse_busy_poll(v, &cfg.http.busy_poll_us, why, sizeof why) != 0) {
        fprintf(stderr, "strata serve: --busy-poll %s\n", why);
        return 2;
      }
      i++;
    } else if (strcmp(a, "--service") == 0 && v) {
      service = v;
      i++;
    } else if (strcmp(a, "--instance") == 0 && v) {
      if (parse_uint(v, 63, &instance) != 0) {
        fprintf(stderr, "strata serve: --instance needs a number from 0 to 63\n");
        return 2;
      }
      i++;
    } else if (strcmp(a, "--data") == 0 && v) {
      if (strlen(v) >= sizeof cfg.data_dir) {
        fprintf(stderr, "strata serve: --data: path too long\n");
        return 2;
      }
      strcpy(cfg.data_dir, v);
      i++;
    } else if (strcmp(a, "--log-level") == 0 && v) {
      if (config_parse_log_level(v, &cfg.log_level) != 0) {
        fprintf(stderr, "strata serve: --log-level must be debug, info, warn, error or off\n");
        return 2;
      }
      i++;
    } else if (strcmp(a, "--identity-secret-file") == 0 && v) {
      if (trust_read_secret(v, identity_secret, sizeof identity_secret, why, sizeof why) != 0) {
        fprintf(stderr, "strata serve: --identity-secret-file: %s\n", why);
        return 2;
      }
      i++;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      cli_usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "strata serve: unknown or incomplete option '%s' (see strata --help)\n", a);
      return 2;
    }
  }
  if (instance && !service) {
    fprintf(stderr, "strata serve: --instance needs --service\n");
    return 2;
  }
  if (service && !config_path) {
    fprintf(stderr, "strata serve: --service needs --config (the file describing services.%s)\n",
            service);
    return 2;
  }
  char why[256];
  if (topology_place(&cfg, service, instance, why, sizeof why) != 0) {
    fprintf(stderr, "strata serve: %s: %s\n", config_path, why);
    return 2;
  }
  /* Flags win over the service's own listen and workers. */
  if (listen_given) {
    memcpy(cfg.listen_host, listen_host, sizeof listen_host);
    cfg.listen_port = listen_port;
  }
  if (workers_given)
    cfg.workers = workers;
  log_set_level(cfg.log_level);
  /* Every connection is a descriptor: take the hard limit, as nginx's
   * worker_rlimit_nofile would, so max_connections is not capped at 1024. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  int rc = 1;
  struct http_server *server = NULL;
  struct app *app = NULL;
  struct router *router = router_new();
  if (!router || observe_routes_register(router) != 0)
    goto done;
  app = app_new(&cfg, service);
  if (!app || app_routes_register(app, router) != 0)
    goto done;
  app_set_identity_secret(app, identity_secret);
  server = http_server_new(&cfg, router);
  if (!server)
    goto done;
  http_server_set_worker_hooks(server, app_worker_hooks(app));
  if (identity_secret[0])
    http_server_set_filter(server, trust_filter, identity_secret);
  if (app_start(app) != 0)
    goto done;
  rc = http_server_run(server) == 0 ? 0 : 1;
  /* Workers have drained and committed: the relay gets a last chance to
   * move their events before the bus stops (what it leaves stays in the
   * outboxes for the next start). */
  app_stop(app);
done:
  http_server_free(server);
  app_free(app);
  router_free(router);
  metrics_shutdown();
  return rc;
}
