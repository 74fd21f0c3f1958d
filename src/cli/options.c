/* Option values shared by more than one subcommand. */
#include "cli/cli.h"

#include "core/config.h"

int cli_parse_busy_poll(const char *value, uint32_t *out_us, char *why, size_t why_cap) {
  uint64_t us;
  char reason[128];
  int rc = config_parse_duration_us(value, &us, reason, sizeof reason);
  if (rc == -1) {
    snprintf(why, why_cap, "%s: %s", value, reason);
    return -1;
  }
  if (rc == -2 || us > BUSY_POLL_MAX_US) { /* as the config file says it */
    snprintf(why, why_cap, "%s: is out of range (0s .. %ums)", value, BUSY_POLL_MAX_US / 1000);
    return -1;
  }
  *out_us = (uint32_t)us;
  return 0;
}
