/* strata: one binary, several roles. main() only picks the subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    cli_usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    cli_usage(stdout);
    return 0;
  }
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    printf("strata %s\n", STRATA_VERSION);
    return 0;
  }
  if (strcmp(cmd, "serve") == 0)
    return cli_serve(argc - 2, argv + 2);
  if (strcmp(cmd, "gateway") == 0)
    return cli_gateway(argc - 2, argv + 2);
  if (strcmp(cmd, "check") == 0)
    return cli_check(argc - 2, argv + 2);
  if (strcmp(cmd, "up") == 0)
    return cli_up(argc - 2, argv + 2);
  if (strcmp(cmd, "status") == 0)
    return cli_status(argc - 2, argv + 2);
  if (strcmp(cmd, "events") == 0)
    return cli_events(argc - 2, argv + 2);
  fprintf(stderr, "strata: unknown command '%s' (see strata --help)\n", cmd);
  return 2;
}
