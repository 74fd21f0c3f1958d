/* The strata subcommands. Each takes the arguments after its own name and
 * returns the process exit status. */
#ifndef STRATA_CLI_CLI_H
#define STRATA_CLI_CLI_H

#include <stdio.h>

#define STRATA_VERSION "0.1.0"

int cli_serve(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_gateway(int argc, char **argv);
int cli_events(int argc, char **argv);
int cli_up(int argc, char **argv);
int cli_status(int argc, char **argv);
void cli_usage(FILE *out);

#endif
