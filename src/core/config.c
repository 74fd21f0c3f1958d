/* Loads strata's configuration file (schema in docs/config.md).
 *
 * Two steps, kept apart so new sections only add tables:
 *   1. ytree_parse() reads the YAML into a tree of mappings, sequences and
 *      scalars with their lines (syntax errors, duplicate keys);
 *   2. bind_map() walks a mapping against a key table (struct key_spec) and
 *      stores each value into a struct at the offset the table gives. A
 *      section is a key whose value is a mapping bound with its own table, so
 *      a future list of routes is a new kind that calls bind_map() per item.
 * Every problem is collected (never only the first) and the binding works on
 * a copy, so a caller's config changes only when the whole file is valid. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* inet_pton, strcasecmp under plain -std=c11 */
#endif

#include "core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/yaml_tree.h"

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define SEC 1000ULL
#define MIN (60ULL * SEC)
#define HOUR (60ULL * MIN)

enum value_kind {
  VAL_SECTION = 1, /* a mapping bound with its own key table */
  VAL_SIZE,        /* bytes: 512, 8k, 1m, 1g */
  VAL_DURATION,    /* milliseconds, written with a unit: 250ms, 10s */
  VAL_DURATION_US, /* microseconds, written with a unit: 100us, 1ms */
  VAL_COUNT,       /* a plain whole number */
  VAL_STRING,      /* text that must fit a fixed char array */
  VAL_LISTEN,      /* HOST:PORT into a char array and a uint16_t */
  VAL_LOG_LEVEL,   /* enum log_level by name */
  VAL_SYNC,        /* enum db_sync by name: full, normal */
  VAL_BOOL,        /* int 0/1 from true/false/yes/no/on/off */
  VAL_WORDS,       /* a word or a list of words, stored joined by commas */
  VAL_LIST,        /* a sequence of mappings into an array of structs */
  VAL_NAMED        /* a mapping of name -> mapping into an array of structs */
};

/* One key of a mapping. Offsets are relative to the struct the mapping is
 * bound onto, so a table describes a struct, not a place in the file. */
struct key_spec {
  const char *name; /* NULL ends a table */
  enum value_kind kind;
  size_t off;                  /* the field, or the section's struct */
  size_t size;                 /* sizeof the field */
  size_t port_off;             /* VAL_LISTEN: the uint16_t port field */
  uint64_t min, max;           /* numbers: inclusive range (bytes, ms) */
  const struct key_spec *keys; /* VAL_SECTION, VAL_LIST, VAL_NAMED: the item's table */
  /* VAL_LIST, VAL_NAMED: items are structs of item_size bytes, at most
   * max_items, counted in the uint32_t at count_off; every item struct starts
   * with `int line`. VAL_NAMED stores each name in the char[CFG_NAME_MAX]
   * at name_off; a VAL_LIST item written as a scalar binds as scalar_key. */
  size_t item_size, max_items, count_off, name_off;
  const char *scalar_key;
};

#define FIELD_OF(type, member) \
  .off = offsetof(type, member), .size = sizeof(((type *)0)->member)
#define NUMBER(type, key, kind_, member, lo, hi) \
  { .name = key, .kind = kind_, FIELD_OF(type, member), .min = lo, .max = hi }
#define END_OF_TABLE { .name = NULL }

static const struct key_spec server_keys[] = {
  { .name = "listen", .kind = VAL_LISTEN, FIELD_OF(struct strata_config, listen_host),
    .port_off = offsetof(struct strata_config, listen_port) },
  NUMBER(struct strata_config, "workers", VAL_COUNT, workers, 0, 256),
  { .name = "data", .kind = VAL_STRING, FIELD_OF(struct strata_config, data_dir) },
  END_OF_TABLE,
};

static const struct key_spec log_keys[] = {
  { .name = "level", .kind = VAL_LOG_LEVEL, FIELD_OF(struct strata_config, log_level) },
  END_OF_TABLE,
};

static const struct key_spec http_keys[] = {
  NUMBER(struct http_limits, "max_request_line", VAL_SIZE, max_request_line, 256, MIB),
  NUMBER(struct http_limits, "max_header_bytes", VAL_SIZE, max_header_bytes, KIB, MIB),
  NUMBER(struct http_limits, "max_headers", VAL_COUNT, max_headers, 1, 10000),
  NUMBER(struct http_limits, "max_body", VAL_SIZE, max_body_bytes, 0, GIB),
  NUMBER(struct http_limits, "header_timeout", VAL_DURATION, header_timeout_ms, 100, HOUR),
  NUMBER(struct http_limits, "body_timeout", VAL_DURATION, body_timeout_ms, 100, HOUR),
  NUMBER(struct http_limits, "idle_timeout", VAL_DURATION, idle_timeout_ms, 100, HOUR),
  NUMBER(struct http_limits, "max_connections", VAL_COUNT, max_connections, 1, 1000000),
  NUMBER(struct http_limits, "drain_timeout", VAL_DURATION, drain_timeout_ms, 0, HOUR),
  NUMBER(struct http_limits, "max_json_depth", VAL_COUNT, max_json_depth, 1, 1000),
  NUMBER(struct http_limits, "busy_poll", VAL_DURATION_US, busy_poll_us, 0, BUSY_POLL_MAX_US),
  END_OF_TABLE,
};

static const struct key_spec storage_keys[] = {
  { .name = "synchronous", .kind = VAL_SYNC, FIELD_OF(struct storage_settings, synchronous) },
  END_OF_TABLE,
};

static const struct key_spec cache_keys[] = {
  NUMBER(struct cache_settings, "max_entries", VAL_COUNT, max_entries, 1, 100000000),
  NUMBER(struct cache_settings, "max_bytes", VAL_SIZE, max_bytes, 64 * KIB, 64 * GIB),
  NUMBER(struct cache_settings, "ttl", VAL_DURATION, ttl_ms, 1, 24 * HOUR),
  NUMBER(struct cache_settings, "negative_ttl", VAL_DURATION, negative_ttl_ms, 0, HOUR),
  END_OF_TABLE,
};

static const struct key_spec bus_keys[] = {
  NUMBER(struct bus_settings, "max_attempts", VAL_COUNT, max_attempts, 1, 100),
  NUMBER(struct bus_settings, "backoff_base", VAL_DURATION, backoff_base_ms, 1, 10 * MIN),
  NUMBER(struct bus_settings, "backoff_cap", VAL_DURATION, backoff_cap_ms, 1, HOUR),
  NUMBER(struct bus_settings, "poll_interval", VAL_DURATION, poll_interval_ms, 1, 10 * SEC),
  NUMBER(struct bus_settings, "backlog_degraded", VAL_COUNT, backlog_degraded, 1, 1000000000),
  { .name = "dir", .kind = VAL_STRING, FIELD_OF(struct bus_settings, dir) },
  END_OF_TABLE,
};

/* --- the topology: gateway pools and routes, services --------------------- */

static const struct key_spec host_keys[] = {
  { .name = "address", .kind = VAL_LISTEN, FIELD_OF(struct host_config, host),
    .port_off = offsetof(struct host_config, port) },
  NUMBER(struct host_config, "weight", VAL_COUNT, weight, 1, 1000),
  END_OF_TABLE,
};

static const struct key_spec pool_health_keys[] = {
  NUMBER(struct pool_config, "interval", VAL_DURATION, health_interval_ms, 10, HOUR),
  NUMBER(struct pool_config, "timeout", VAL_DURATION, health_timeout_ms, 10, MIN),
  NUMBER(struct pool_config, "rise", VAL_COUNT, health_rise, 1, 100),
  NUMBER(struct pool_config, "fall", VAL_COUNT, health_fall, 1, 100),
  { .name = "path", .kind = VAL_STRING, FIELD_OF(struct pool_config, health_path) },
  { .name = "disabled", .kind = VAL_BOOL, FIELD_OF(struct pool_config, health_disabled) },
  END_OF_TABLE,
};

static const struct key_spec pool_keys[] = {
  { .name = "hosts", .kind = VAL_LIST, .off = offsetof(struct pool_config, hosts),
    .keys = host_keys, .item_size = sizeof(struct host_config), .max_items = CFG_MAX_POOL_HOSTS,
    .count_off = offsetof(struct pool_config, n_hosts), .scalar_key = "address" },
  { .name = "service", .kind = VAL_STRING, FIELD_OF(struct pool_config, service) },
  { .name = "balance", .kind = VAL_STRING, FIELD_OF(struct pool_config, balance) },
  NUMBER(struct pool_config, "connect_timeout", VAL_DURATION, connect_timeout_ms, 1, MIN),
  NUMBER(struct pool_config, "max_idle", VAL_COUNT, max_idle, 1, 10000),
  { .name = "health", .kind = VAL_SECTION, .off = 0, .keys = pool_health_keys },
  END_OF_TABLE,
};

static const struct key_spec route_match_keys[] = {
  { .name = "prefix", .kind = VAL_STRING, FIELD_OF(struct route_config, prefix) },
  { .name = "path", .kind = VAL_STRING, FIELD_OF(struct route_config, path) },
  { .name = "methods", .kind = VAL_WORDS, FIELD_OF(struct route_config, methods) },
  { .name = "host", .kind = VAL_STRING, FIELD_OF(struct route_config, host) },
  END_OF_TABLE,
};

static const struct key_spec route_retry_keys[] = {
  NUMBER(struct route_config, "attempts", VAL_COUNT, retry_attempts, 1, 10),
  NUMBER(struct route_config, "backoff_base", VAL_DURATION, retry_base_ms, 1, MIN),
  NUMBER(struct route_config, "backoff_cap", VAL_DURATION, retry_cap_ms, 1, MIN),
  { .name = "on", .kind = VAL_WORDS, FIELD_OF(struct route_config, retry_on) },
  END_OF_TABLE,
};

static const struct key_spec route_rate_keys[] = {
  NUMBER(struct route_config, "rate", VAL_COUNT, rate, 1, 10000000),
  NUMBER(struct route_config, "burst", VAL_COUNT, burst, 1, 10000000),
  END_OF_TABLE,
};

static const struct key_spec route_auth_keys[] = {
  { .name = "anonymous", .kind = VAL_BOOL, FIELD_OF(struct route_config, auth_anonymous) },
  { .name = "scopes", .kind = VAL_WORDS, FIELD_OF(struct route_config, scopes) },
  END_OF_TABLE,
};

static const struct key_spec route_cache_keys[] = {
  NUMBER(struct route_config, "ttl", VAL_DURATION, cache_ttl_ms, 1, 24 * HOUR),
  NUMBER(struct route_config, "stale_if_error", VAL_DURATION, cache_stale_if_error_ms, 1,
         24 * HOUR),
  END_OF_TABLE,
};

static const struct key_spec breaker_keys[] = {
  NUMBER(struct breaker_settings, "error_threshold", VAL_COUNT, error_threshold_pct, 1, 100),
  NUMBER(struct breaker_settings, "volume_threshold", VAL_COUNT, volume_threshold, 1, 100000),
  NUMBER(struct breaker_settings, "reset_timeout", VAL_DURATION, reset_timeout_ms, 1, HOUR),
  NUMBER(struct breaker_settings, "slow_call", VAL_DURATION, slow_call_ms, 1, HOUR),
  NUMBER(struct breaker_settings, "slow_threshold", VAL_COUNT, slow_threshold_pct, 1, 100),
  NUMBER(struct breaker_settings, "window", VAL_DURATION, window_ms, 100, HOUR),
  NUMBER(struct breaker_settings, "half_open_probes", VAL_COUNT, half_open_probes, 1, 1000),
  END_OF_TABLE,
};

static const struct key_spec route_fallback_keys[] = {
  NUMBER(struct route_config, "status", VAL_COUNT, fallback_status, 200, 599),
  { .name = "body", .kind = VAL_STRING, FIELD_OF(struct route_config, fallback_body) },
  { .name = "content_type", .kind = VAL_STRING,
    FIELD_OF(struct route_config, fallback_content_type) },
  { .name = "stale", .kind = VAL_BOOL, FIELD_OF(struct route_config, fallback_stale) },
  END_OF_TABLE,
};

static const struct key_spec route_keys[] = {
  { .name = "match", .kind = VAL_SECTION, .off = 0, .keys = route_match_keys },
  { .name = "pool", .kind = VAL_STRING, FIELD_OF(struct route_config, pool) },
  { .name = "strip_prefix", .kind = VAL_BOOL, FIELD_OF(struct route_config, strip_prefix) },
  { .name = "rewrite_prefix", .kind = VAL_STRING, FIELD_OF(struct route_config, rewrite_prefix) },
  NUMBER(struct route_config, "timeout", VAL_DURATION, timeout_ms, 1, HOUR),
  NUMBER(struct route_config, "try_timeout", VAL_DURATION, try_timeout_ms, 1, HOUR),
  NUMBER(struct route_config, "max_request_body", VAL_SIZE, max_request_body, 1, 1024 * GIB),
  { .name = "retries", .kind = VAL_SECTION, .off = 0, .keys = route_retry_keys },
  { .name = "rate_limit", .kind = VAL_SECTION, .off = 0, .keys = route_rate_keys },
  { .name = "auth", .kind = VAL_SECTION, .off = 0, .keys = route_auth_keys },
  { .name = "cache", .kind = VAL_SECTION, .off = 0, .keys = route_cache_keys },
  { .name = "breaker", .kind = VAL_SECTION, .off = offsetof(struct route_config, breaker),
    .keys = breaker_keys },
  { .name = "fallback", .kind = VAL_SECTION, .off = 0, .keys = route_fallback_keys },
  END_OF_TABLE,
};

static const struct key_spec gateway_admin_keys[] = {
  { .name = "listen", .kind = VAL_LISTEN, FIELD_OF(struct gateway_config, admin_host),
    .port_off = offsetof(struct gateway_config, admin_port) },
  { .name = "token_file", .kind = VAL_STRING, FIELD_OF(struct gateway_config, admin_token_file) },
  END_OF_TABLE,
};

static const struct key_spec gateway_jwt_keys[] = {
  { .name = "hs256_secret_file", .kind = VAL_STRING,
    FIELD_OF(struct gateway_config, jwt_hs256_secret_file) },
  { .name = "rs256_public_key", .kind = VAL_STRING,
    FIELD_OF(struct gateway_config, jwt_rs256_public_key) },
  { .name = "es256_public_key", .kind = VAL_STRING,
    FIELD_OF(struct gateway_config, jwt_es256_public_key) },
  { .name = "issuer", .kind = VAL_STRING, FIELD_OF(struct gateway_config, jwt_issuer) },
  { .name = "audience", .kind = VAL_STRING, FIELD_OF(struct gateway_config, jwt_audience) },
  END_OF_TABLE,
};

static const struct key_spec gateway_rate_keys[] = {
  NUMBER(struct gateway_config, "rate", VAL_COUNT, rate, 1, 10000000),
  NUMBER(struct gateway_config, "burst", VAL_COUNT, burst, 1, 10000000),
  END_OF_TABLE,
};

static const struct key_spec gateway_keys[] = {
  { .name = "listen", .kind = VAL_LISTEN, FIELD_OF(struct gateway_config, listen_host),
    .port_off = offsetof(struct gateway_config, listen_port) },
  NUMBER(struct gateway_config, "workers", VAL_COUNT, workers, 0, 256),
  { .name = "admin", .kind = VAL_SECTION, .off = 0, .keys = gateway_admin_keys },
  NUMBER(struct gateway_config, "trusted_hops", VAL_COUNT, trusted_hops, 0, 64),
  { .name = "identity_secret_file", .kind = VAL_STRING,
    FIELD_OF(struct gateway_config, identity_secret_file) },
  { .name = "api_keys_file", .kind = VAL_STRING, FIELD_OF(struct gateway_config, api_keys_file) },
  { .name = "jwt", .kind = VAL_SECTION, .off = 0, .keys = gateway_jwt_keys },
  { .name = "rate_limit", .kind = VAL_SECTION, .off = 0, .keys = gateway_rate_keys },
  NUMBER(struct gateway_config, "connect_timeout", VAL_DURATION, connect_timeout_ms, 1, MIN),
  NUMBER(struct gateway_config, "try_timeout", VAL_DURATION, try_timeout_ms, 1, HOUR),
  NUMBER(struct gateway_config, "timeout", VAL_DURATION, total_timeout_ms, 1, HOUR),
  NUMBER(struct gateway_config, "retry_attempts", VAL_COUNT, retry_attempts, 1, 10),
  NUMBER(struct gateway_config, "backoff_base", VAL_DURATION, backoff_base_ms, 1, MIN),
  NUMBER(struct gateway_config, "backoff_cap", VAL_DURATION, backoff_cap_ms, 1, MIN),
  NUMBER(struct gateway_config, "max_response", VAL_SIZE, max_response_bytes, KIB, 4 * GIB),
  NUMBER(struct gateway_config, "max_request_body", VAL_SIZE, max_request_body, 0, 1024 * GIB),
  { .name = "pools", .kind = VAL_NAMED, .off = offsetof(struct gateway_config, pools),
    .keys = pool_keys, .item_size = sizeof(struct pool_config), .max_items = CFG_MAX_POOLS,
    .count_off = offsetof(struct gateway_config, n_pools),
    .name_off = offsetof(struct pool_config, name) },
  { .name = "routes", .kind = VAL_LIST, .off = offsetof(struct gateway_config, routes),
    .keys = route_keys, .item_size = sizeof(struct route_config), .max_items = CFG_MAX_ROUTES,
    .count_off = offsetof(struct gateway_config, n_routes) },
  END_OF_TABLE,
};

static const struct key_spec service_keys[] = {
  { .name = "domains", .kind = VAL_WORDS, FIELD_OF(struct service_config, domains) },
  NUMBER(struct service_config, "instances", VAL_COUNT, instances, 1, 64),
  { .name = "listen", .kind = VAL_LISTEN, FIELD_OF(struct service_config, listen_host),
    .port_off = offsetof(struct service_config, listen_port) },
  { .name = "data", .kind = VAL_STRING, FIELD_OF(struct service_config, data_dir) },
  NUMBER(struct service_config, "workers", VAL_COUNT, workers, 0, 256),
  END_OF_TABLE,
};

static const struct key_spec root_keys[] = {
  { .name = "server", .kind = VAL_SECTION, .off = 0, .keys = server_keys },
  { .name = "log", .kind = VAL_SECTION, .off = 0, .keys = log_keys },
  { .name = "http", .kind = VAL_SECTION, .off = offsetof(struct strata_config, http),
    .keys = http_keys },
  { .name = "storage", .kind = VAL_SECTION, .off = offsetof(struct strata_config, storage),
    .keys = storage_keys },
  { .name = "cache", .kind = VAL_SECTION, .off = offsetof(struct strata_config, cache),
    .keys = cache_keys },
  { .name = "bus", .kind = VAL_SECTION, .off = offsetof(struct strata_config, bus),
    .keys = bus_keys },
  { .name = "gateway", .kind = VAL_SECTION, .off = offsetof(struct strata_config, gateway),
    .keys = gateway_keys },
  { .name = "services", .kind = VAL_NAMED, .off = offsetof(struct strata_config, services),
    .keys = service_keys, .item_size = sizeof(struct service_config),
    .max_items = CFG_MAX_SERVICES, .count_off = offsetof(struct strata_config, n_services),
    .name_off = offsetof(struct service_config, name) },
  END_OF_TABLE,
};

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

PRINTF_LIKE(3, 4)
static void add_error(struct config_errors *errs, int line, const char *fmt, ...) {
  va_list ap;

  /* count keeps growing past the array so callers can say "and N more". */
  if (errs->count >= 0 && errs->count < CONFIG_MAX_ERRORS) {
    struct config_error *e = &errs->items[errs->count];
    e->line = line;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
  }
  if (errs->count < INT_MAX)
    errs->count++;
}

PRINTF_LIKE(3, 4)
static void set_why(char *why, size_t why_len, const char *fmt, ...) {
  va_list ap;

  if (!why || why_len == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(why, why_len, fmt, ap);
  va_end(ap);
}

/* Tree errors come first and binding errors after; readers want them in
 * file order. Insertion sort: stable, and there are at most 64. */
static void sort_errors(struct config_errors *errs) {
  int n = errs->count < CONFIG_MAX_ERRORS ? errs->count : CONFIG_MAX_ERRORS;
  int i, j;

  for (i = 1; i < n; i++) {
    struct config_error e = errs->items[i];
    for (j = i; j > 0 && errs->items[j - 1].line > e.line; j--)
      errs->items[j] = errs->items[j - 1];
    errs->items[j] = e;
  }
}

/* --- value parsers ------------------------------------------------------ */

/* Reads decimal digits at *p and advances it. Returns 0, -1 when there is no
 * digit, or -2 when the digits overflow 64 bits (all are still consumed, so
 * the caller can tell "too large" from "malformed" by what follows). */
static int read_digits(const char **p, uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;
  int overflow = 0;

  if (!s || *s < '0' || *s > '9')
    return -1;
  for (; *s >= '0' && *s <= '9'; s++) {
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10)
      overflow = 1;
    else
      v = v * 10 + d;
  }
  *p = s;
  *out = v;
  return overflow ? -2 : 0;
}

int config_parse_size(const char *text, uint64_t *out, char *why, size_t why_len) {
  const char *p = text;
  unsigned shift = 0;
  uint64_t v = 0;
  int rc = read_digits(&p, &v);

  if (rc == -1)
    goto malformed;
  switch (*p) {
  case 'k': case 'K': shift = 10; p++; break;
  case 'm': case 'M': shift = 20; p++; break;
  case 'g': case 'G': shift = 30; p++; break;
  default: break;
  }
  if (*p != '\0')
    goto malformed;
  if (rc == -2 || v > (UINT64_MAX >> shift)) {
    set_why(why, why_len, "is too large");
    return -2;
  }
  *out = v << shift;
  return 0;

malformed:
  set_why(why, why_len, "is not a size (use a number with an optional k, m or g suffix)");
  return -1;
}

struct duration_unit {
  const char *unit;
  uint64_t scale;
};

/* Digits and one of the units; hint names them for the error. */
static int parse_duration(const char *text, const struct duration_unit *units, size_t n_units,
                          const char *hint, uint64_t *out, char *why, size_t why_len) {
  const char *p = text;
  uint64_t v = 0;
  size_t i;
  int rc = read_digits(&p, &v);

  if (rc == -1)
    goto malformed;
  if (*p == '\0') {
    /* A bare 30 could mean seconds or milliseconds; make the author say. */
    set_why(why, why_len, "has no unit (add %s)", hint);
    return -1;
  }
  for (i = 0; i < n_units; i++) {
    if (strcmp(p, units[i].unit) != 0)
      continue;
    if (rc == -2 || v > UINT64_MAX / units[i].scale) {
      set_why(why, why_len, "is too large");
      return -2;
    }
    *out = v * units[i].scale;
    return 0;
  }

malformed:
  set_why(why, why_len, "is not a duration (use a whole number with a unit %s)", hint);
  return -1;
}

int config_parse_duration_ms(const char *text, uint64_t *out_ms, char *why,
                             size_t why_len) {
  static const struct duration_unit units[] = {
    { "ms", 1 }, { "s", SEC }, { "m", MIN }, { "h", HOUR },
  };
  return parse_duration(text, units, sizeof units / sizeof units[0], "ms, s, m or h, e.g. 10s",
                        out_ms, why, why_len);
}

int config_parse_duration_us(const char *text, uint64_t *out_us, char *why,
                             size_t why_len) {
  static const struct duration_unit units[] = {
    { "us", 1 }, { "ms", SEC }, { "s", SEC * SEC },
  };
  return parse_duration(text, units, sizeof units / sizeof units[0], "us, ms or s, e.g. 100us",
                        out_us, why, why_len);
}

int config_parse_count(const char *text, uint64_t *out, char *why, size_t why_len) {
  const char *p = text;
  uint64_t v = 0;
  int rc = read_digits(&p, &v);

  if (rc == -1 || *p != '\0') {
    set_why(why, why_len, "is not a plain number (use digits only, e.g. 100)");
    return -1;
  }
  if (rc == -2) {
    set_why(why, why_len, "is too large");
    return -2;
  }
  *out = v;
  return 0;
}

int config_parse_listen(const char *text, char *host, size_t host_len,
                        uint16_t *port, char *why, size_t why_len) {
  char addr[64];
  const char *host_start, *host_end, *port_text;
  unsigned char bin[16];
  size_t n;
  uint64_t p = 0;
  int ipv6 = 0;

  if (!text || !*text) {
    set_why(why, why_len, "is empty (expected HOST:PORT)");
    return -1;
  }
  if (text[0] == '[') {
    ipv6 = 1;
    host_start = text + 1;
    host_end = strchr(host_start, ']');
    if (!host_end) {
      set_why(why, why_len, "has no closing ] (expected [IPv6]:PORT)");
      return -1;
    }
    if (host_end[1] != ':') {
      set_why(why, why_len, "has no port (expected [IPv6]:PORT)");
      return -1;
    }
    port_text = host_end + 2;
  } else {
    host_start = text;
    host_end = strrchr(text, ':');
    if (!host_end) {
      set_why(why, why_len, "has no port (expected HOST:PORT)");
      return -1;
    }
    if (memchr(host_start, ':', (size_t)(host_end - host_start))) {
      set_why(why, why_len, "has an IPv6 address without brackets (write it as [::1]:8080)");
      return -1;
    }
    port_text = host_end + 1;
  }

  n = (size_t)(host_end - host_start);
  if (n >= sizeof addr) {
    set_why(why, why_len, "has a host that is not an IP address or localhost");
    return -1;
  }
  memcpy(addr, host_start, n);
  addr[n] = '\0';
  if (!ipv6 && n == 0) {
    /* ":8080" listens on every IPv4 interface. */
    snprintf(addr, sizeof addr, "0.0.0.0");
    n = strlen(addr);
  } else if (ipv6 && inet_pton(AF_INET6, addr, bin) != 1) {
    set_why(why, why_len, "has an invalid IPv6 address between [ and ]");
    return -1;
  } else if (!ipv6 && inet_pton(AF_INET, addr, bin) != 1 && strcasecmp(addr, "localhost") != 0) {
    set_why(why, why_len, "has a host that is not an IP address or localhost");
    return -1;
  }

  if (*port_text == '\0') {
    set_why(why, why_len, "has no port (expected HOST:PORT)");
    return -1;
  }
  if (config_parse_count(port_text, &p, NULL, 0) == -1) {
    set_why(why, why_len, "has a port that is not a number");
    return -1;
  }
  if (p < 1 || p > 65535) { /* an overflowing port leaves p at 0 */
    set_why(why, why_len, "has a port outside 1 .. 65535");
    return -1;
  }
  if (n + 1 > host_len) {
    set_why(why, why_len, "has a host longer than %zu bytes", host_len ? host_len - 1 : 0);
    return -1;
  }
  memcpy(host, addr, n + 1);
  *port = (uint16_t)p;
  return 0;
}

static const char *const level_names[] = {
  [LOG_DEBUG] = "debug", [LOG_INFO] = "info", [LOG_WARN] = "warn",
  [LOG_ERROR] = "error", [LOG_OFF] = "off",
};

int config_parse_log_level(const char *text, enum log_level *out) {
  int i;

  if (!text)
    return -1;
  for (i = LOG_DEBUG; i <= LOG_OFF; i++) {
    if (strcasecmp(text, level_names[i]) == 0) {
      *out = (enum log_level)i;
      return 0;
    }
  }
  return -1;
}

const char *config_log_level_name(enum log_level level) {
  if ((int)level < LOG_DEBUG || (int)level > LOG_OFF)
    return "unknown";
  return level_names[level];
}

static const char *const sync_names[] = {
  [DB_SYNC_FULL] = "full", [DB_SYNC_NORMAL] = "normal",
};

int config_parse_synchronous(const char *text, enum db_sync *out) {
  int i;

  if (!text)
    return -1;
  for (i = DB_SYNC_FULL; i <= DB_SYNC_NORMAL; i++) {
    if (strcasecmp(text, sync_names[i]) == 0) {
      *out = (enum db_sync)i;
      return 0;
    }
  }
  return -1;
}

const char *config_synchronous_name(enum db_sync sync) {
  if ((int)sync < DB_SYNC_FULL || (int)sync > DB_SYNC_NORMAL)
    return "unknown";
  return sync_names[sync];
}

void config_defaults(struct strata_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
  cfg->listen_port = 8080;
  cfg->workers = 0;
  snprintf(cfg->data_dir, sizeof cfg->data_dir, "./var");
  cfg->log_level = LOG_INFO;
  cfg->http.max_request_line = 8 * KIB;
  cfg->http.max_header_bytes = 32 * KIB;
  cfg->http.max_headers = 100;
  cfg->http.max_body_bytes = MIB;
  cfg->http.header_timeout_ms = 10 * SEC;
  cfg->http.body_timeout_ms = 30 * SEC;
  cfg->http.idle_timeout_ms = 60 * SEC;
  cfg->http.max_connections = 10000;
  cfg->http.drain_timeout_ms = 10 * SEC;
  cfg->http.max_json_depth = 32;
  cfg->storage.synchronous = DB_SYNC_FULL;
  cfg->cache.max_entries = 100000;
  cfg->cache.max_bytes = 64 * MIB;
  cfg->cache.ttl_ms = 60 * SEC;
  cfg->cache.negative_ttl_ms = 2 * SEC;
  cfg->bus.max_attempts = 8;
  cfg->bus.backoff_base_ms = 100;
  cfg->bus.backoff_cap_ms = 30 * SEC;
  cfg->bus.poll_interval_ms = 20;
  cfg->bus.backlog_degraded = 1000;
  struct gateway_config *g = &cfg->gateway;
  snprintf(g->listen_host, sizeof g->listen_host, "127.0.0.1");
  g->listen_port = 8080;
  snprintf(g->admin_host, sizeof g->admin_host, "127.0.0.1");
  g->admin_port = 9901;
  g->connect_timeout_ms = 1 * SEC;
  g->try_timeout_ms = 10 * SEC;
  g->total_timeout_ms = 15 * SEC;
  g->retry_attempts = 3;
  g->backoff_base_ms = 25;
  g->backoff_cap_ms = 250;
  g->max_response_bytes = 64 * MIB;
  g->max_request_body = 1 * GIB; /* streamed: memory stays bounded whatever the size */
  g->rate_period_ms = 1 * SEC;
}


int config_request_path_ok(const char *path) {
  if (path[0] != '/')
    return 0;
  for (const unsigned char *q = (const unsigned char *)path; *q; q++)
    if (*q <= 0x20 || *q >= 0x7f) /* it goes into a request line as is */
      return 0;
  return 1;
}

/* --- binding ------------------------------------------------------------ */

struct binder {
  struct config_errors *errs;
  const struct key_spec *root; /* for "did you mean log.level?" across sections */
};

/* Writes v into an unsigned field of size bytes; the tables' ranges make
 * sure it fits. */
static void store_uint(char *field, size_t size, uint64_t v) {
  switch (size) {
  case sizeof(uint8_t): { uint8_t x = (uint8_t)v; memcpy(field, &x, sizeof x); break; }
  case sizeof(uint16_t): { uint16_t x = (uint16_t)v; memcpy(field, &x, sizeof x); break; }
  case sizeof(uint32_t): { uint32_t x = (uint32_t)v; memcpy(field, &x, sizeof x); break; }
  default: memcpy(field, &v, sizeof v); break;
  }
}

struct unit {
  uint64_t size;
  const char *suffix;
};

static const struct unit size_units[] = { { GIB, "g" }, { MIB, "m" }, { KIB, "k" }, { 1, "" } };
static const struct unit duration_units[] = {
  { HOUR, "h" }, { MIN, "m" }, { SEC, "s" }, { 1, "ms" },
};
static const struct unit duration_us_units[] = { { SEC * SEC, "s" }, { SEC, "ms" }, { 1, "us" } };

/* Writes v the way the file would say it: 1m rather than 1048576. */
static void format_value(enum value_kind kind, uint64_t v, char *buf, size_t size) {
  const struct unit *u;

  if (kind != VAL_SIZE && kind != VAL_DURATION && kind != VAL_DURATION_US) {
    snprintf(buf, size, "%" PRIu64, v);
    return;
  }
  if (v == 0) {
    snprintf(buf, size, kind == VAL_SIZE ? "0" : "0s");
    return;
  }
  u = kind == VAL_SIZE ? size_units : kind == VAL_DURATION ? duration_units : duration_us_units;
  for (; v % u->size != 0; u++)
    ;
  snprintf(buf, size, "%" PRIu64 "%s", v / u->size, u->suffix);
}

static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb) {
  size_t row[33], i, j;

  if (na > 32 || nb > 32)
    return SIZE_MAX;
  for (j = 0; j <= nb; j++)
    row[j] = j;
  for (i = 1; i <= na; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (j = 1; j <= nb; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best)
        best = up + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[nb];
}

static void join_path(char *out, size_t size, const char *path, const char *key) {
  snprintf(out, size, "%s%s%s", path, path[0] ? "." : "", key);
}

static void report_unknown(struct binder *b, const struct key_spec *keys,
                           const char *path, const struct ynode *key) {
  const struct key_spec *k, *best = NULL, *s;
  size_t d, best_d = SIZE_MAX, used = 0;
  char shown[64], full[320], hint[320], list[200];

  ytree_printable(key->text, key->len, shown, sizeof shown);
  join_path(full, sizeof full, path, shown);
  for (k = keys; k->name; k++) {
    d = edit_distance(key->text, key->len, k->name, strlen(k->name));
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  /* Close enough to be a typo: at most two edits, and fewer than half the
   * name, so "log" is not offered for "foo". */
  if (best && best_d <= 2 && best_d * 2 < strlen(best->name)) {
    join_path(hint, sizeof hint, path, best->name);
    add_error(b->errs, key->line, "unknown key %s; did you mean %s?", full, hint);
    return;
  }
  /* The right key in the wrong section, e.g. server.level. */
  for (s = b->root; s->name; s++) {
    if (s->kind != VAL_SECTION || s->keys == keys)
      continue;
    for (k = s->keys; k->name; k++) {
      if (strlen(k->name) == key->len && memcmp(k->name, key->text, key->len) == 0) {
        add_error(b->errs, key->line, "unknown key %s; did you mean %s.%s?", full, s->name,
                  k->name);
        return;
      }
    }
  }
  list[0] = '\0';
  for (k = keys; k->name && used < sizeof list; k++)
    used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k == keys ? "" : ", ",
                             k->name);
  add_error(b->errs, key->line, "unknown key %s (expected %s%s)", full,
            keys == b->root ? "a section: " : "one of ", list);
}

static void bind_map(struct binder *b, const struct ynode *map, const char *path,
                     const struct key_spec *keys, char *base);
static void bind_words(struct binder *b, const struct key_spec *k, const struct ynode *const *words,
                       size_t n, const char *path, char *base);

static void bind_scalar(struct binder *b, const struct key_spec *k, const struct ynode *key,
                        const struct ynode *value, const char *path, char *base) {
  char shown[64], why[160], lo[32], hi[32];
  const char *text = value->text;
  uint64_t v = 0;
  int rc;

  if (value->kind != YNODE_SCALAR) {
    add_error(b->errs, key->line, "%s must be a single value, not %s", path,
              ytree_kind_name(value->kind));
    return;
  }
  if (ytree_is_null(value)) {
    add_error(b->errs, key->line, "%s has no value", path);
    return;
  }
  if (memchr(text, '\0', value->len)) {
    add_error(b->errs, value->line, "%s contains a NUL byte", path);
    return;
  }
  ytree_printable(text, value->len, shown, sizeof shown);

  switch (k->kind) {
  case VAL_SIZE:
  case VAL_DURATION:
  case VAL_DURATION_US:
  case VAL_COUNT:
    if (k->kind == VAL_SIZE)
      rc = config_parse_size(text, &v, why, sizeof why);
    else if (k->kind == VAL_DURATION)
      rc = config_parse_duration_ms(text, &v, why, sizeof why);
    else if (k->kind == VAL_DURATION_US)
      rc = config_parse_duration_us(text, &v, why, sizeof why);
    else
      rc = config_parse_count(text, &v, why, sizeof why);
    if (rc == -1) {
      add_error(b->errs, value->line, "%s: \"%s\" %s", path, shown, why);
      return;
    }
    if (rc == -2 || v < k->min || v > k->max) {
      format_value(k->kind, k->min, lo, sizeof lo);
      format_value(k->kind, k->max, hi, sizeof hi);
      add_error(b->errs, value->line, "%s: \"%s\" is out of range (%s .. %s)", path, shown, lo,
                hi);
      return;
    }
    store_uint(base + k->off, k->size, v);
    return;

  case VAL_STRING:
    if (value->len == 0) {
      add_error(b->errs, value->line, "%s must not be empty", path);
      return;
    }
    if (value->len >= k->size) {
      add_error(b->errs, value->line, "%s is longer than %zu bytes", path, k->size - 1);
      return;
    }
    memcpy(base + k->off, text, value->len + 1);
    return;

  case VAL_LISTEN: {
    uint16_t port;
    if (config_parse_listen(text, base + k->off, k->size, &port, why, sizeof why) < 0) {
      add_error(b->errs, value->line, "%s: \"%s\" %s", path, shown, why);
      return;
    }
    memcpy(base + k->port_off, &port, sizeof port);
    return;
  }

  case VAL_LOG_LEVEL: {
    enum log_level level;
    if (config_parse_log_level(text, &level) < 0) {
      add_error(b->errs, value->line,
                "%s: \"%s\" is not a log level (use debug, info, warn, error or off)", path,
                shown);
      return;
    }
    memcpy(base + k->off, &level, sizeof level);
    return;
  }

  case VAL_SYNC: {
    enum db_sync sync;
    if (config_parse_synchronous(text, &sync) < 0) {
      add_error(b->errs, value->line,
                "%s: \"%s\" is not a synchronous mode (use full or normal)", path, shown);
      return;
    }
    memcpy(base + k->off, &sync, sizeof sync);
    return;
  }

  case VAL_BOOL: {
    static const char *const yes[] = { "true", "yes", "on" }, *const no[] = { "false", "no", "off" };
    int b_value = -1;
    for (size_t i = 0; i < 3; i++) {
      if (strcasecmp(text, yes[i]) == 0)
        b_value = 1;
      if (strcasecmp(text, no[i]) == 0)
        b_value = 0;
    }
    if (b_value < 0) {
      add_error(b->errs, value->line, "%s: \"%s\" is not true or false", path, shown);
      return;
    }
    memcpy(base + k->off, &b_value, sizeof b_value);
    return;
  }

  case VAL_WORDS:
    bind_words(b, k, &value, 1, path, base);
    return;

  case VAL_SECTION:
  case VAL_LIST:
  case VAL_NAMED:
    break;
  }
}

/* VAL_WORDS: n scalar words, each a token without commas or spaces, joined
 * with commas into the char array at k->off. */
static void bind_words(struct binder *b, const struct key_spec *k, const struct ynode *const *words,
                       size_t n, const char *path, char *base) {
  char joined[1024], shown[64];
  size_t used = 0;

  joined[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    const struct ynode *w = words[i];
    if (w->kind != YNODE_SCALAR || w->len == 0) {
      add_error(b->errs, w->line, "%s: each item must be a word", path);
      return;
    }
    for (size_t j = 0; j < w->len; j++) {
      unsigned char c = (unsigned char)w->text[j];
      if (c <= ' ' || c == ',' || c >= 0x7f) {
        ytree_printable(w->text, w->len, shown, sizeof shown);
        add_error(b->errs, w->line, "%s: \"%s\" is not a single word", path, shown);
        return;
      }
    }
    if (used + w->len + 2 > sizeof joined || used + w->len + 1 >= k->size) {
      add_error(b->errs, w->line, "%s: the list is longer than %zu bytes", path, k->size - 1);
      return;
    }
    if (used)
      joined[used++] = ',';
    memcpy(joined + used, w->text, w->len);
    used += w->len;
    joined[used] = '\0';
  }
  memcpy(base + k->off, joined, used + 1);
}

/* VAL_LIST / VAL_NAMED: binds item i (node value, written at line) into the
 * array; a new list replaces what the defaults had. */
static char *list_item(struct binder *b, const struct key_spec *k, char *base, size_t i, int line,
                       const char *path) {
  if (i >= k->max_items) {
    add_error(b->errs, line, "%s: at most %zu items", path, k->max_items);
    return NULL;
  }
  char *item = base + k->off + i * k->item_size;
  memset(item, 0, k->item_size);
  memcpy(item, &line, sizeof line);
  uint32_t count = (uint32_t)(i + 1);
  memcpy(base + k->count_off, &count, sizeof count);
  return item;
}

static void bind_list(struct binder *b, const struct key_spec *k, const struct ynode *key,
                      const struct ynode *value, const char *path, char *base) {
  char sub[300], shown[64];
  uint32_t zero = 0;

  memcpy(base + k->count_off, &zero, sizeof zero);
  if (ytree_is_null(value))
    return;
  if (k->kind == VAL_LIST) {
    if (value->kind != YNODE_SEQUENCE) {
      add_error(b->errs, key->line, "%s must be a list, not %s", path,
                ytree_kind_name(value->kind));
      return;
    }
    for (size_t i = 0; i < value->count; i++) {
      const struct ynode *it = value->items[i];
      snprintf(sub, sizeof sub, "%.200s[%zu]", path, i);
      char *item = list_item(b, k, base, i, it->line, path);
      if (!item)
        return;
      if (it->kind == YNODE_SCALAR && k->scalar_key) {
        const struct key_spec *sk;
        for (sk = k->keys; sk->name && strcmp(sk->name, k->scalar_key) != 0; sk++)
          ;
        bind_scalar(b, sk, it, it, sub, item);
      } else if (it->kind != YNODE_MAPPING) {
        add_error(b->errs, it->line, "%s must be a mapping of keys, not %s", sub,
                  ytree_kind_name(it->kind));
      } else {
        bind_map(b, it, sub, k->keys, item);
      }
    }
    return;
  }
  if (value->kind != YNODE_MAPPING) {
    add_error(b->errs, key->line, "%s must be a mapping of names, not %s", path,
              ytree_kind_name(value->kind));
    return;
  }
  for (size_t i = 0; i < value->count; i++) {
    const struct ynode *name = value->pairs[i].key, *it = value->pairs[i].value;
    ytree_printable(name->text, name->len, shown, sizeof shown);
    snprintf(sub, sizeof sub, "%.200s.%.63s", path, shown);
    char *item = list_item(b, k, base, i, name->line, path);
    if (!item)
      return;
    int ok = name->len > 0 && name->len < CFG_NAME_MAX;
    for (size_t j = 0; ok && j < name->len; j++) {
      char c = name->text[j];
      ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
    }
    if (!ok)
      add_error(b->errs, name->line,
                "%s: a name is 1 to %d letters, digits, - or _", sub, CFG_NAME_MAX - 1);
    else
      memcpy(item + k->name_off, name->text, name->len);
    if (ytree_is_null(it))
      continue;
    if (it->kind != YNODE_MAPPING)
      add_error(b->errs, name->line, "%s must be a mapping of keys, not %s", sub,
                ytree_kind_name(it->kind));
    else
      bind_map(b, it, sub, k->keys, item);
  }
}

/* Binds every pair of map (a YNODE_MAPPING at path) onto base using keys. */
static void bind_map(struct binder *b, const struct ynode *map, const char *path,
                     const struct key_spec *keys, char *base) {
  char sub[256];
  size_t i;

  for (i = 0; i < map->count; i++) {
    const struct ynode *key = map->pairs[i].key, *value = map->pairs[i].value;
    const struct key_spec *k;

    for (k = keys; k->name; k++)
      if (strlen(k->name) == key->len && memcmp(k->name, key->text, key->len) == 0)
        break;
    if (!k->name) {
      report_unknown(b, keys, path, key);
      continue;
    }
    join_path(sub, sizeof sub, path, k->name);
    if (k->kind == VAL_LIST || k->kind == VAL_NAMED) {
      bind_list(b, k, key, value, sub, base);
    } else if (k->kind == VAL_WORDS && value->kind == YNODE_SEQUENCE) {
      bind_words(b, k, (const struct ynode *const *)value->items, value->count, sub, base);
    } else if (k->kind != VAL_SECTION) {
      bind_scalar(b, k, key, value, sub, base);
    } else if (ytree_is_null(value)) {
      /* "server:" with every key commented out keeps the defaults. */
    } else if (value->kind != YNODE_MAPPING) {
      add_error(b->errs, key->line, "%s must be a mapping of keys, not %s", sub,
                ytree_kind_name(value->kind));
    } else {
      bind_map(b, value, sub, k->keys, base + k->off);
    }
  }
}

static void on_tree_error(void *ctx, int line, const char *message) {
  add_error(ctx, line, "%s", message);
}

/* "listen: [::1]:8080" is the one syntax error the schema itself invites:
 * unquoted, [ opens a YAML list. When a syntax error sits on such a line,
 * say so instead of leaving only libyaml's "did not find expected node". */
static void hint_unquoted_ipv6(struct config_errors *errs, const char *data, size_t len) {
  struct config_error *e;
  const char *p = data, *end = data + len, *eol;
  int line = 1;
  size_t used;

  if (errs->count < 1 || errs->count > CONFIG_MAX_ERRORS)
    return;
  e = &errs->items[errs->count - 1];
  for (; p < end && line < e->line; p++)
    if (*p == '\n')
      line++;
  if (line != e->line || e->line < 1)
    return;
  eol = memchr(p, '\n', (size_t)(end - p));
  if (!eol)
    eol = end;
  while (p < eol && (*p == ' ' || *p == '\t'))
    p++;
  if ((size_t)(eol - p) < 8 || memcmp(p, "listen:", 7) != 0)
    return;
  for (p += 7; p < eol && (*p == ' ' || *p == '\t'); p++)
    ;
  if (p == eol || *p != '[')
    return;
  used = strlen(e->message);
  snprintf(e->message + used, sizeof e->message - used,
           "; put an IPv6 listen address in quotes: listen: \"[::1]:8080\"");
}

/* --- the topology's cross-references -------------------------------------- */

const struct pool_config *config_find_pool(const struct strata_config *cfg, const char *name) {
  for (uint32_t i = 0; i < cfg->gateway.n_pools; i++)
    if (strcmp(cfg->gateway.pools[i].name, name) == 0)
      return &cfg->gateway.pools[i];
  return NULL;
}

const struct service_config *config_find_service(const struct strata_config *cfg,
                                                 const char *name) {
  for (uint32_t i = 0; i < cfg->n_services; i++)
    if (strcmp(cfg->services[i].name, name) == 0)
      return &cfg->services[i];
  return NULL;
}

int config_list_has(const char *list, const char *word) {
  size_t n = strlen(word);
  for (const char *p = list; p && *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && memcmp(p, word, n) == 0)
      return 1;
    p = end ? end + 1 : NULL;
  }
  return 0;
}

static int valid_balance(const char *text) {
  static const char *const names[] = { "round-robin", "least-request", "hash-client" };
  if (!text[0])
    return 1;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(text, names[i]) == 0)
      return 1;
  return (strncmp(text, "hash-header:", 12) == 0 && text[12] != '\0') ||
         (strncmp(text, "hash-param:", 11) == 0 && text[11] != '\0');
}

/* Each comma-separated word of list passes ok(); reports the first that
 * does not. */
static int check_words(struct binder *b, int line, const char *path, const char *list,
                       int (*ok)(const char *word), const char *expected) {
  char word[128];
  for (const char *p = list; p && *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    snprintf(word, sizeof word, "%.*s", (int)len, p);
    if (!ok(word)) {
      add_error(b->errs, line, "%s: \"%s\" is not %s", path, word, expected);
      return -1;
    }
    p = end ? end + 1 : NULL;
  }
  return 0;
}

static int is_method(const char *w) {
  for (; *w; w++)
    if (*w < 'A' || *w > 'Z')
      return 0;
  return 1;
}

static int is_retry_cause(const char *w) {
  if (strcmp(w, "connect-failure") == 0 || strcmp(w, "reset") == 0 || strcmp(w, "timeout") == 0)
    return 1;
  return strcmp(w, "502") == 0 || strcmp(w, "503") == 0 || strcmp(w, "504") == 0;
}

static int is_domain(const char *w) {
  return strcmp(w, "users") == 0 || strcmp(w, "orders") == 0 || strcmp(w, "payments") == 0 ||
         strcmp(w, "notifications") == 0;
}

static int is_loopback(const char *host) {
  return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
}

static void validate_pools(struct binder *b, const struct strata_config *cfg) {
  for (uint32_t i = 0; i < cfg->gateway.n_pools; i++) {
    const struct pool_config *p = &cfg->gateway.pools[i];
    if (!p->n_hosts && !p->service[0])
      add_error(b->errs, p->line, "gateway.pools.%s needs hosts or a service", p->name);
    if (p->n_hosts && p->service[0])
      add_error(b->errs, p->line, "gateway.pools.%s has both hosts and a service; use one",
                p->name);
    if (p->service[0] && !config_find_service(cfg, p->service))
      add_error(b->errs, p->line, "gateway.pools.%s: no service named \"%s\"", p->name,
                p->service);
    if (!valid_balance(p->balance))
      add_error(b->errs, p->line,
                "gateway.pools.%s.balance: \"%s\" is not round-robin, least-request, "
                "hash-client, hash-header:NAME or hash-param:NAME", p->name, p->balance);
    if (p->health_path[0] && !config_request_path_ok(p->health_path))
      add_error(b->errs, p->line,
                "gateway.pools.%s.health.path must start with / and hold no spaces or control "
                "characters", p->name);
  }
}

static void validate_routes(struct binder *b, const struct strata_config *cfg) {
  char path[64];
  for (uint32_t i = 0; i < cfg->gateway.n_routes; i++) {
    const struct route_config *r = &cfg->gateway.routes[i];
    snprintf(path, sizeof path, "gateway.routes[%u]", i);
    if (!r->prefix[0] && !r->path[0])
      add_error(b->errs, r->line, "%s needs match.prefix or match.path", path);
    if (r->prefix[0] && r->path[0])
      add_error(b->errs, r->line, "%s has both match.prefix and match.path; use one", path);
    if ((r->prefix[0] && r->prefix[0] != '/') || (r->path[0] && r->path[0] != '/'))
      add_error(b->errs, r->line, "%s: a match path must start with /", path);
    if (!r->pool[0])
      add_error(b->errs, r->line, "%s needs a pool", path);
    else if (!config_find_pool(cfg, r->pool) && !config_find_service(cfg, r->pool))
      add_error(b->errs, r->line, "%s: no pool or service named \"%s\"", path, r->pool);
    if ((r->strip_prefix || r->rewrite_prefix[0]) && !r->prefix[0])
      add_error(b->errs, r->line, "%s: strip_prefix and rewrite_prefix need match.prefix", path);
    if (r->strip_prefix && r->rewrite_prefix[0])
      add_error(b->errs, r->line, "%s has both strip_prefix and rewrite_prefix; use one", path);
    if (r->rewrite_prefix[0] && r->rewrite_prefix[0] != '/')
      add_error(b->errs, r->line, "%s.rewrite_prefix must start with /", path);
    check_words(b, r->line, path, r->methods, is_method, "an HTTP method in capitals");
    check_words(b, r->line, path, r->retry_on, is_retry_cause,
                "connect-failure, reset, timeout, 502, 503 or 504");
    if (r->fallback_body[0] && !r->fallback_status)
      add_error(b->errs, r->line, "%s.fallback.body needs a fallback.status", path);
    if (r->fallback_stale && !r->cache_ttl_ms)
      add_error(b->errs, r->line, "%s.fallback.stale needs cache.ttl (the stale copy)", path);
  }
}

/* Services: known domains, each hosted once, ports that do not collide, and
 * all on one host — the embedded engines (SQLite files, the embedded bus's
 * events.db) are shared through the file system, so they cannot span hosts. */
static void validate_services(struct binder *b, struct strata_config *cfg) {
  const char *host_of_first = NULL;
  for (uint32_t i = 0; i < cfg->n_services; i++) {
    struct service_config *s = &cfg->services[i];
    char path[64];
    snprintf(path, sizeof path, "services.%s", s->name);
    if (!s->instances)
      s->instances = 1;
    if (!s->listen_port)
      add_error(b->errs, s->line, "%s needs listen (HOST:PORT of its first instance)", path);
    else if ((uint32_t)s->listen_port + s->instances - 1 > 65535)
      add_error(b->errs, s->line, "%s: %u instances from port %u run past 65535", path,
                s->instances, s->listen_port);
    if (!s->domains[0])
      add_error(b->errs, s->line, "%s needs domains (users, orders, payments, notifications)",
                path);
    check_words(b, s->line, path, s->domains, is_domain,
                "a domain (users, orders, payments, notifications)");
    for (uint32_t j = 0; j < i; j++) {
      const struct service_config *o = &cfg->services[j];
      static const char *const domains[] = { "users", "orders", "payments", "notifications" };
      for (size_t d = 0; d < 4; d++)
        if (config_list_has(s->domains, domains[d]) && config_list_has(o->domains, domains[d]))
          add_error(b->errs, s->line, "%s: domain %s is already hosted by services.%s", path,
                    domains[d], o->name);
      if (s->listen_port && o->listen_port && strcmp(s->listen_host, o->listen_host) == 0 &&
          s->listen_port < o->listen_port + o->instances &&
          o->listen_port < s->listen_port + s->instances)
        add_error(b->errs, s->line, "%s: ports overlap those of services.%s", path, o->name);
    }
    if (!host_of_first)
      host_of_first = s->listen_host;
    else if (strcmp(host_of_first, s->listen_host) != 0 &&
             !(is_loopback(host_of_first) && is_loopback(s->listen_host)))
      add_error(b->errs, s->line,
                "%s listens on %s, another service on %s: the embedded engines (SQLite, the "
                "embedded bus) are files on one host and cannot be shared between hosts",
                path, s->listen_host, host_of_first);
  }
}

static void validate_topology(struct binder *b, struct strata_config *cfg) {
  validate_services(b, cfg);
  validate_pools(b, cfg);
  validate_routes(b, cfg);
}

int config_load_buffer(const char *data, size_t len, struct strata_config *cfg,
                       struct config_errors *errs) {
  struct binder b = { .errs = errs, .root = root_keys };
  struct strata_config work = *cfg;
  struct ynode *root = NULL;

  errs->count = 0;
  if (len > CONFIG_MAX_FILE_BYTES) {
    add_error(errs, 0, "the file is larger than %d bytes (1m), the limit for a configuration",
              CONFIG_MAX_FILE_BYTES);
    goto out;
  }
  /* Only a complete tree is bound: after a syntax error the tree would be
   * partial and binding it would only add confusing follow-on errors. */
  if (!data) {
    data = "";
    len = 0;
  }
  if (ytree_parse(data, len, &root, on_tree_error, errs) == YTREE_EFATAL) {
    hint_unquoted_ipv6(errs, data, len);
    goto out;
  }
  if (ytree_is_null(root))
    goto out;
  if (root->kind != YNODE_MAPPING) {
    add_error(errs, root->line, "the file must be a mapping of sections (server, log, "
                                "http, storage, cache, bus, gateway, services), not %s", ytree_kind_name(root->kind));
    goto out;
  }
  bind_map(&b, root, "", root_keys, (char *)&work);
  if (errs->count == 0)
    validate_topology(&b, &work);

out:
  ytree_free(root);
  sort_errors(errs);
  if (errs->count != 0)
    return -1;
  *cfg = work;
  return 0;
}

int config_load(const char *path, struct strata_config *cfg, struct config_errors *errs) {
  FILE *f = NULL;
  char *buf = NULL;
  size_t len;
  int rc = -1;

  errs->count = 0;
  f = fopen(path, "rb");
  if (!f) {
    add_error(errs, 0, "cannot open the file: %s", strerror(errno));
    goto fail;
  }
  /* One byte more than allowed, to tell "exactly the limit" from "over". */
  buf = malloc(CONFIG_MAX_FILE_BYTES + 1);
  if (!buf) {
    add_error(errs, 0, "out of memory reading the file");
    goto fail;
  }
  len = fread(buf, 1, CONFIG_MAX_FILE_BYTES + 1, f);
  if (ferror(f)) {
    add_error(errs, 0, "cannot read the file: %s", strerror(errno));
    goto fail;
  }
  rc = config_load_buffer(buf, len, cfg, errs);

fail:
  free(buf);
  if (f)
    fclose(f);
  return rc;
}
