/* The strata subcommands. Each takes the arguments after its own name and
 * returns the process exit status. */
#ifndef STRATA_CLI_CLI_H
#define STRATA_CLI_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define STRATA_VERSION "0.1.0"

int cli_serve(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_gateway(int argc, char **argv);
int cli_events(int argc, char **argv);
int cli_up(int argc, char **argv);
int cli_status(int argc, char **argv);
void cli_usage(FILE *out);

/* --busy-poll DURATION (serve and gateway) into microseconds; on error why
 * says what is wrong with the value. */
int cli_parse_busy_poll(const char *value, uint32_t *out_us, char *why, size_t why_cap);

#endif
