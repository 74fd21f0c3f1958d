/* The help text of the strata binary. */
#include <stdio.h>

#include "cli/cli.h"

void cli_usage(FILE *out) {
  fprintf(out,
          "strata %s: a scalable API platform\n"
          "\n"
          "usage:\n"
          "  strata serve [--config FILE] [--listen HOST:PORT] [--workers N] [--data DIR]\n"
          "               [--log-level debug|info|warn|error|off]\n"
          "               [--identity-secret-file FILE] [--service NAME [--instance I]]\n"
          "      run a service process (health, metrics and the configured domains); with an\n"
          "      identity secret it refuses API requests not signed by the gateway (401).\n"
          "      --service NAME runs instance I (default 0) of services.NAME of the --config\n"
          "      file: its domains only, on its port + I, data under server.data (or --data);\n"
          "      the other domains are called over HTTP. Without it: all four domains\n"
          "  strata gateway --listen HOST:PORT --upstream HOST:PORT [--upstream HOST:PORT ...]\n"
          "               [--workers N] [--log-level LEVEL] [--timeout 15s] [--try-timeout 10s]\n"
          "               [--health-interval 1s] [--trusted-hops N] [--identity-secret-file FILE]\n"
          "               [--rate-limit RATE/s[:BURST]] [--api-keys FILE]\n"
          "               [--balance round-robin|least-request|hash-client|hash-header:NAME]\n"
          "               [--jwt-hs256-secret-file F] [--jwt-rs256-public-key F]\n"
          "               [--jwt-es256-public-key F] [--jwt-issuer S] [--jwt-audience S]\n"
          "               [--max-request-body SIZE]\n"
          "      the edge: proxy to the upstreams with health checks, circuit breakers,\n"
          "      retries with a budget, timeouts and metrics\n"
          "  strata gateway --config FILE [--listen HOST:PORT] [--admin HOST:PORT]\n"
          "               [--admin-token-file FILE] [--workers N] [--log-level LEVEL] ...\n"
          "      routes, pools and per-route policies from the file's gateway section;\n"
          "      the admin listener (GET /admin/status, bearer token); SIGHUP reloads\n"
          "  strata check FILE\n"
          "      validate a config file and print every error with its line\n"
          "  strata events dead   [--data DIR | --config FILE] [--subscription NAME]\n"
          "  strata events replay [--data DIR | --config FILE] (--all | --id N) [--subscription NAME]\n"
          "  strata events stats  [--data DIR | --config FILE]\n"
          "      the embedded event bus: list dead letters (JSON lines), deliver them again,\n"
          "      show each subscription's offset, lag and counts (docs/events.md)\n"
          "  strata --help | --version\n"
          "\n"
          "Defaults: listen 127.0.0.1:8080, workers = number of CPUs, data ./var.\n"
          "Config keys: docs/config.md.\n",
          STRATA_VERSION);
}
