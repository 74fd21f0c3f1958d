#ifndef STRATA_CORE_HTTPDATE_H
#define STRATA_CORE_HTTPDATE_H

#include <stddef.h>
#include <stdint.h>

/* Parses value[0..len) as an HTTP-date in any of its three forms
 * (IMF-fixdate, RFC 850, asctime), the whole of it; now_epoch_ms places a
 * two-digit RFC 850 year (one more than 50 years ahead is the past century).
 * Writes ms since 1970 (may be negative) to *out_ms and returns 1, or
 * returns 0 when it is not a date. */
int http_date_parse(const char *value, size_t len, uint64_t now_epoch_ms, int64_t *out_ms);

#endif
