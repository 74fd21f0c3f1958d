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
          "               [--identity-secret-file FILE]\n"
          "      run a service process (health, metrics and the configured domains); with an\n"
          "      identity secret it refuses API requests not signed by the gateway (401)\n"
          "  strata gateway --listen HOST:PORT --upstream HOST:PORT [--upstream HOST:PORT ...]\n"
          "               [--workers N] [--log-level LEVEL] [--timeout 15s] [--try-timeout 10s]\n"
          "               [--health-interval 1s] [--trusted-hops N] [--identity-secret-file FILE]\n"
          "               [--rate-limit RATE/s[:BURST]] [--api-keys FILE]\n"
          "               [--balance round-robin|least-request|hash-client|hash-header:NAME]\n"
          "               [--jwt-hs256-secret-file F] [--jwt-rs256-public-key F]\n"
          "               [--jwt-es256-public-key F] [--jwt-issuer S] [--jwt-audience S]\n"
          "      the edge: proxy to the upstreams with health checks, circuit breakers,\n"
          "      retries with a budget, timeouts and metrics\n"
          "  strata up [--config FILE] [--data DIR] [--listen HOST:PORT] [--admin HOST:PORT]\n"
          "            [--timeout 60s]\n"
          "      run a whole topology on this machine (default config/monolith.yaml): the\n"
          "      services, then the gateway, each ready before the next; restarts a process\n"
          "      that dies (with backoff); Ctrl-C or SIGTERM stops the gateway first, then the\n"
          "      services. --data puts every data directory and the logs under DIR\n"
          "  strata status [--config FILE] [--data DIR] [--admin URL] [--json]\n"
          "      the processes of a running `strata up`, their health, and the gateway's\n"
          "      pools, hosts and breakers from its admin listener\n"
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
