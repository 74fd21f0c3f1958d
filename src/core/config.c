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
  VAL_COUNT,       /* a plain whole number */
  VAL_STRING,      /* text that must fit a fixed char array */
  VAL_LISTEN,      /* HOST:PORT into a char array and a uint16_t */
  VAL_LOG_LEVEL,   /* enum log_level by name */
  VAL_SYNC         /* enum db_sync by name: full, normal */
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
  const struct key_spec *keys; /* VAL_SECTION: the section's table */
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

int config_parse_duration_ms(const char *text, uint64_t *out_ms, char *why,
                             size_t why_len) {
  static const struct { const char *unit; uint64_t ms; } units[] = {
    { "ms", 1 }, { "s", SEC }, { "m", MIN }, { "h", HOUR },
  };
  const char *p = text;
  uint64_t v = 0;
  size_t i;
  int rc = read_digits(&p, &v);

  if (rc == -1)
    goto malformed;
  if (*p == '\0') {
    /* A bare 30 could mean seconds or milliseconds; make the author say. */
    set_why(why, why_len, "has no unit (add ms, s, m or h, e.g. 10s)");
    return -1;
  }
  for (i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(p, units[i].unit) != 0)
      continue;
    if (rc == -2 || v > UINT64_MAX / units[i].ms) {
      set_why(why, why_len, "is too large");
      return -2;
    }
    *out_ms = v * units[i].ms;
    return 0;
  }

malformed:
  set_why(why, why_len,
          "is not a duration (use a whole number with a unit ms, s, m or h, e.g. 10s)");
  return -1;
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

/* Writes v the way the file would say it: 1m rather than 1048576. */
static void format_value(enum value_kind kind, uint64_t v, char *buf, size_t size) {
  const struct unit *u;

  if (kind != VAL_SIZE && kind != VAL_DURATION) {
    snprintf(buf, size, "%" PRIu64, v);
    return;
  }
  if (v == 0) {
    snprintf(buf, size, kind == VAL_SIZE ? "0" : "0s");
    return;
  }
  for (u = kind == VAL_SIZE ? size_units : duration_units; v % u->size != 0; u++)
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
  case VAL_COUNT:
    if (k->kind == VAL_SIZE)
      rc = config_parse_size(text, &v, why, sizeof why);
    else if (k->kind == VAL_DURATION)
      rc = config_parse_duration_ms(text, &v, why, sizeof why);
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

  case VAL_SECTION:
    break;
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
    if (k->kind != VAL_SECTION) {
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
                                "http, storage, cache, bus), not %s", ytree_kind_name(root->kind));
    goto out;
  }
  bind_map(&b, root, "", root_keys, (char *)&work);

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
