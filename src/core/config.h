/* Configuration of a strata process.
 *
 * One YAML file (parsed by libyaml) describes a process; command-line flags
 * override single keys after the file is loaded. config_defaults() fills every
 * field, config_load() overlays a file on top and collects every problem it
 * finds (not only the first) with its line, so `strata check` can explain all
 * of them at once. docs/config.md documents every key. */
#ifndef STRATA_CORE_CONFIG_H
#define STRATA_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "store/db.h" /* enum db_sync */

enum log_level {
  LOG_DEBUG = 0, /* internals, noisy */
  LOG_INFO,      /* access lines and lifecycle events */
  LOG_WARN,      /* something degraded but still serving */
  LOG_ERROR,     /* a request or dependency failed */
  LOG_OFF        /* nothing at all */
};

/* Limits that protect the HTTP server from its clients. Each has an exact
 * answer when exceeded (see docs/config.md). */
struct http_limits {
  uint32_t max_request_line;  /* bytes of method + target + version → 414 */
  uint32_t max_header_bytes;  /* bytes of the whole header section → 431 */
  uint32_t max_headers;       /* number of header fields → 431 */
  uint64_t max_body_bytes;    /* declared or streamed body bytes → 413 */
  uint32_t header_timeout_ms; /* headers must be complete within → 408 */
  uint32_t body_timeout_ms;   /* gap allowed between body reads → 408 */
  uint32_t idle_timeout_ms;   /* keep-alive connection without a request */
  uint32_t max_connections;   /* concurrent connections, whole process */
  uint32_t drain_timeout_ms;  /* graceful shutdown: wait for in-flight */
  uint32_t max_json_depth;    /* nesting of JSON request bodies → 400 */
  uint32_t busy_poll_us;      /* spin up to this long before sleeping; 0 = off */
};

#define BUSY_POLL_MAX_US 10000u /* http.busy_poll, --busy-poll: at most 10ms */

/* Embedded storage (SQLite) settings shared by every domain database. */
struct storage_settings {
  enum db_sync synchronous; /* full: fsync per commit; normal: at checkpoints */
};

/* The in-process cache in front of the domain databases. */
struct cache_settings {
  uint64_t max_entries;     /* entries per cache before LRU eviction */
  uint64_t max_bytes;       /* bytes of keys + values per cache */
  uint32_t ttl_ms;          /* lifetime of a cached value */
  uint32_t negative_ttl_ms; /* lifetime of a cached "not found"; 0 = not cached */
};

/* The embedded event bus (src/bus/bus.h, docs/events.md). */
struct bus_settings {
  uint32_t max_attempts;     /* deliveries of one event before it is dead-lettered */
  uint32_t backoff_base_ms;  /* first retry waits up to this long (full jitter) */
  uint32_t backoff_cap_ms;   /* no retry waits longer than this */
  uint32_t poll_interval_ms; /* how often the relay and deliveries look for work */
  uint32_t backlog_degraded; /* readiness is degraded above this backlog or lag */
  char dir[1024];            /* where events.db lives; "" = the data directory */
};

/* ---- topology: the gateway and the services (docs/config.md) ----------
 * Lists are fixed arrays so a config stays plain data that can be copied;
 * the caps are far above what one machine's topology needs. Numbers left
 * at 0 in a pool or route mean "the gateway's default". */
#define CFG_NAME_MAX 32
#define CFG_MAX_POOLS 16
#define CFG_MAX_POOL_HOSTS 16
#define CFG_MAX_ROUTES 32
#define CFG_MAX_SERVICES 16

struct host_config {
  int line;
  char host[64];
  uint16_t port;
  uint32_t weight; /* 0 = 1 */
};

/* Upstream pool: hosts listed, or the instances of a service. */
struct pool_config {
  int line;
  char name[CFG_NAME_MAX];
  char service[CFG_NAME_MAX];
  struct host_config hosts[CFG_MAX_POOL_HOSTS];
  uint32_t n_hosts;
  char balance[160]; /* round-robin | least-request | hash-client | hash-header:NAME |
                        hash-param:NAME (a :NAME of the route's match.path) */
  uint32_t connect_timeout_ms;
  uint32_t max_idle; /* keep-alive connections per host per worker */
  uint32_t health_interval_ms, health_timeout_ms, health_rise, health_fall;
  char health_path[128];
  int health_disabled; /* no active checks (passive ejection still works) */
};

struct breaker_settings {
  uint32_t error_threshold_pct; /* failures in the window that open it */
  uint32_t volume_threshold;    /* calls in the window before it may open */
  uint32_t reset_timeout_ms;    /* open -> half-open */
  uint32_t slow_call_ms;        /* a call slower than this counts as slow */
  uint32_t slow_threshold_pct;  /* slow calls in the window that open it */
  uint32_t window_ms;
  uint32_t half_open_probes;
};

struct route_config {
  int line;
  char prefix[128];  /* match.prefix: the path is it or continues after a '/' */
  char path[128];    /* match.path: a router pattern (/api/users/:id, /files/ *) */
  char methods[128]; /* match.methods: "GET,HEAD"; "" = any */
  char host[128];    /* match.host: the Host without its port; "" = any */
  char pool[CFG_NAME_MAX];
  char rewrite_prefix[128]; /* replaces the matched prefix ("" with strip) */
  int strip_prefix;
  uint32_t timeout_ms, try_timeout_ms;
  uint32_t retry_attempts, retry_base_ms, retry_cap_ms;
  char retry_on[128]; /* "connect-failure,reset,timeout,502,503,504" */
  uint32_t rate, burst; /* requests per second per client; 0 = gateway's */
  int auth_anonymous;  /* credentials optional here (verified when sent) */
  char scopes[256];     /* "orders:write,admin": any one of them suffices */
  uint32_t cache_ttl_ms, cache_stale_if_error_ms; /* ttl 0 = not cached */
  struct breaker_settings breaker;
  uint32_t fallback_status;     /* 0 = no static fallback */
  char fallback_body[512];
  char fallback_content_type[64];
  int fallback_stale;           /* serve the last good cached answer */
  uint64_t max_request_body;    /* 0 = gateway.max_request_body */
};

struct gateway_config {
  char listen_host[64];
  uint16_t listen_port;
  char admin_host[64];
  uint16_t admin_port;
  char admin_token_file[1024];
  uint32_t workers;
  uint32_t trusted_hops;
  char identity_secret_file[1024];
  char api_keys_file[1024];
  char jwt_hs256_secret_file[1024], jwt_rs256_public_key[1024], jwt_es256_public_key[1024];
  char jwt_issuer[256], jwt_audience[256];
  uint32_t rate, burst;
  uint32_t rate_period_ms; /* the rate is per this long (1s; the CLI takes /m, /h) */
  uint32_t connect_timeout_ms, try_timeout_ms, total_timeout_ms;
  uint32_t retry_attempts, backoff_base_ms, backoff_cap_ms;
  uint64_t max_response_bytes; /* an upstream answer the gateway keeps whole */
  uint64_t max_request_body;   /* a request body streamed through the gateway; 0 = http.max_body */
  struct pool_config pools[CFG_MAX_POOLS];
  uint32_t n_pools;
  struct route_config routes[CFG_MAX_ROUTES];
  uint32_t n_routes;
};

/* A service of the topology: some domains, run as `instances` processes
 * listening on consecutive ports from listen_port. */
struct service_config {
  int line;
  char name[CFG_NAME_MAX];
  char domains[128]; /* "users,orders,payments,notifications" */
  uint32_t instances;
  char listen_host[64];
  uint16_t listen_port;
  char data_dir[1024]; /* relative: under server.data (or `strata up --data`) */
  uint32_t workers;
};

struct strata_config {
  char listen_host[64]; /* IPv4/IPv6 literal or "localhost" */
  uint16_t listen_port;
  uint32_t workers;     /* event-loop threads; 0 = number of CPUs */
  char data_dir[1024];  /* where embedded engines keep their files */
  enum log_level log_level;
  struct http_limits http;
  struct storage_settings storage;
  struct cache_settings cache;
  struct bus_settings bus;
  struct gateway_config gateway;
  struct service_config services[CFG_MAX_SERVICES];
  uint32_t n_services;
};

/* The pool a route or a name refers to: a pool, else NULL. */
const struct pool_config *config_find_pool(const struct strata_config *cfg, const char *name);
const struct service_config *config_find_service(const struct strata_config *cfg,
                                                 const char *name);
/* 1 when the comma-separated list contains word (case-sensitive). */
int config_list_has(const char *list, const char *word);

/* One problem found in a config file: 1-based line (0 when not tied to a
 * line) and a human sentence naming the key. */
struct config_error {
  int line;
  char message[256];
};

#define CONFIG_MAX_ERRORS 64

struct config_errors {
  int count;                    /* may exceed CONFIG_MAX_ERRORS; the rest dropped */
  struct config_error items[CONFIG_MAX_ERRORS];
};

/* Fills cfg with the documented defaults. Never fails. */
void config_defaults(struct strata_config *cfg);

/* Reads the YAML file at path and overlays it on cfg (which should hold the
 * defaults). Unknown keys, wrong types, out-of-range values and YAML syntax
 * errors are all reported in errs. Returns 0 when errs->count == 0, otherwise
 * a negative value and leaves cfg untouched (the file is bound onto a copy).
 * errs is reset first and its items are sorted by line; line 0 means the file
 * as a whole (cannot be opened, too large). Files larger than
 * CONFIG_MAX_FILE_BYTES are refused. */
int config_load(const char *path, struct strata_config *cfg,
                struct config_errors *errs);

#define CONFIG_MAX_FILE_BYTES (1024 * 1024)

/* The same as config_load() for YAML already in memory: data[0 .. len),
 * which need not be NUL-terminated. config_load() reads the file and calls
 * this; the fuzz target calls it directly. Messages never name the file:
 * callers print them as FILE:LINE: message. */
int config_load_buffer(const char *data, size_t len, struct strata_config *cfg,
                       struct config_errors *errs);

/* Parsers shared by the file loader and the command line. Each returns 0 and
 * stores the value, or -1 and writes a reason into why (why_len bytes).
 * The reason is a phrase that reads after the quoted input, e.g.
 * `"80" has no port (expected HOST:PORT)`; outputs are untouched on error. */
int config_parse_listen(const char *text, char *host, size_t host_len,
                        uint16_t *port, char *why, size_t why_len);
int config_parse_log_level(const char *text, enum log_level *out);
const char *config_log_level_name(enum log_level level);
/* storage.synchronous: "full" or "normal" (any case). */
int config_parse_synchronous(const char *text, enum db_sync *out);
const char *config_synchronous_name(enum db_sync sync);

/* 1 when path can go into a request line as is: starts with '/', no
 * spaces, control characters or non-ASCII bytes (a health check path). */
int config_request_path_ok(const char *path);

/* Number parsers behind the size, duration and count keys. They only check
 * the form and 64-bit overflow; ranges are the caller's. Each returns 0 and
 * stores the value, -1 when the text is malformed, or -2 when it is well
 * formed but does not fit in 64 bits; why is written on both errors.
 *   size:     digits with an optional k, m or g (x1024, any case): 8k, 1m
 *   duration: digits with a required unit ms, s, m or h; stored in ms
 *   duration_us: digits with a required unit us, ms or s; stored in us
 *   count:    digits only
 * No sign, spaces, hex, exponents or fractions are accepted. */
int config_parse_size(const char *text, uint64_t *out, char *why,
                      size_t why_len);
int config_parse_duration_ms(const char *text, uint64_t *out_ms, char *why,
                             size_t why_len);
int config_parse_duration_us(const char *text, uint64_t *out_us, char *why,
                             size_t why_len);
int config_parse_count(const char *text, uint64_t *out, char *why,
                       size_t why_len);

#endif
