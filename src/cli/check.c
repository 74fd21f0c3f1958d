/* `strata check FILE`: validates a config file and explains every error. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "gateway/gateway.h"

int cli_check(int argc, char **argv) {
  if (argc != 1 || argv[0][0] == '-') {
    fprintf(stderr, "usage: strata check FILE\n");
    return 2;
  }
  struct strata_config cfg;
  struct config_errors errs = {0};
  config_defaults(&cfg);
  if (config_load(argv[0], &cfg, &errs) == 0) {
    /* a gateway section also names files and pools the gateway resolves
     * at start: check those as it would */
    char why[512];
    if ((cfg.gateway.n_routes || cfg.gateway.n_pools) && gateway_check(&cfg, why, sizeof why) != 0) {
      printf("%s: gateway: %s\n", argv[0], why);
      return 1;
    }
    printf("%s: ok\n", argv[0]);
    return 0;
  }
  int shown = errs.count < CONFIG_MAX_ERRORS ? errs.count : CONFIG_MAX_ERRORS;
  for (int i = 0; i < shown; i++) {
    if (errs.items[i].line > 0)
      printf("%s:%d: %s\n", argv[0], errs.items[i].line, errs.items[i].message);
    else
      printf("%s: %s\n", argv[0], errs.items[i].message);
  }
  if (errs.count > shown)
    printf("%s: ... and %d more errors\n", argv[0], errs.count - shown);
  return 1;
}
