/* Option values shared by more than one subcommand. */
#include "cli/cli.h"

#include "core/config.h"

int cli_parse_busy_poll(const char *value, uint32_t *out_us, char *why, size_t why_cap) {
  uint64_t us;
  char reason[128];
  if (config_parse_duration_us(value, &us, reason, sizeof reason) != 0) {
    snprintf(why, why_cap, "%s: %s", value, reason);
    return -1;
  }
  if (us > BUSY_POLL_MAX_US) {
    snprintf(why, why_cap, "%s: is out of range (0s .. 10ms)", value);
    return -1;
  }
  *out_us = (uint32_t)us;
  return 0;
}
