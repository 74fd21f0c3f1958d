/* Unit tests for src/core/config.c and src/core/yaml_tree.c.
 *
 * Most tests write a YAML file with mkstemp(), load it through config_load()
 * (the path `strata check` and `strata serve` take) and compare every error
 * with its exact line and message: the messages are the user interface of
 * the config, so a change to their wording should show up here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/yaml_tree.h"

/* Writes text to a fresh temporary file, loads it over the defaults and
 * removes the file. Returns config_load()'s result. */
static int load_text(const char *text, struct strata_config *cfg, struct config_errors *errs) {
  char path[] = "/tmp/strata-config-XXXXXX";
  size_t len = strlen(text);
  int fd, rc;

  fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, len), (ssize_t)len);
  assert_int_equal(close(fd), 0);
  config_defaults(cfg);
  rc = config_load(path, cfg, errs);
  unlink(path);
  return rc;
}

static void expect_error(const struct config_errors *errs, int i, int line, const char *message) {
  assert_true(i < errs->count);
  assert_int_equal(errs->items[i].line, line);
  assert_string_equal(errs->items[i].message, message);
}

/* Loads text expecting exactly one error. */
static void expect_only_error(const char *text, int line, const char *message) {
  struct strata_config cfg;
  struct config_errors errs;

  assert_int_equal(load_text(text, &cfg, &errs), -1);
  if (errs.count != 1) {
    int i;
    for (i = 0; i < errs.count && i < CONFIG_MAX_ERRORS; i++)
      print_message("error %d: line %d: %s\n", i, errs.items[i].line, errs.items[i].message);
  }
  assert_int_equal(errs.count, 1);
  expect_error(&errs, 0, line, message);
}

static void assert_defaults(const struct strata_config *cfg) {
  assert_string_equal(cfg->listen_host, "127.0.0.1");
  assert_int_equal(cfg->listen_port, 8080);
  assert_int_equal(cfg->workers, 0);
  assert_string_equal(cfg->data_dir, "./var");
  assert_int_equal(cfg->log_level, LOG_INFO);
  assert_int_equal(cfg->http.max_request_line, 8192);
  assert_int_equal(cfg->http.max_header_bytes, 32768);
  assert_int_equal(cfg->http.max_headers, 100);
  assert_int_equal(cfg->http.max_body_bytes, 1048576);
  assert_int_equal(cfg->http.header_timeout_ms, 10000);
  assert_int_equal(cfg->http.body_timeout_ms, 30000);
  assert_int_equal(cfg->http.idle_timeout_ms, 60000);
  assert_int_equal(cfg->http.max_connections, 10000);
  assert_int_equal(cfg->http.drain_timeout_ms, 10000);
  assert_int_equal(cfg->http.max_json_depth, 32);
  assert_int_equal(cfg->http.busy_poll_us, 0);
  assert_int_equal(cfg->storage.synchronous, DB_SYNC_FULL);
  assert_int_equal(cfg->cache.max_entries, 100000);
  assert_int_equal(cfg->cache.max_bytes, 64 * 1048576);
  assert_int_equal(cfg->cache.ttl_ms, 60000);
  assert_int_equal(cfg->cache.negative_ttl_ms, 2000);
  assert_int_equal(cfg->bus.max_attempts, 8);
  assert_int_equal(cfg->bus.backoff_base_ms, 100);
  assert_int_equal(cfg->bus.backoff_cap_ms, 30000);
  assert_int_equal(cfg->bus.poll_interval_ms, 20);
  assert_int_equal(cfg->bus.backlog_degraded, 1000);
}

/* --- whole files -------------------------------------------------------- */

static void test_defaults(void **state) {
  struct strata_config cfg;

  (void)state;
  memset(&cfg, 0xa5, sizeof cfg);
  config_defaults(&cfg);
  assert_defaults(&cfg);
}

static void test_empty_inputs_keep_defaults(void **state) {
  static const char *const empty[] = {
    "", "\n\n", "# only a comment\n", "---\n", "~\n", "server:\nlog:\nhttp: ~\n",
    "server: {}\nhttp: {}\n",
  };
  struct strata_config cfg;
  struct config_errors errs;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof empty / sizeof empty[0]; i++) {
    assert_int_equal(load_text(empty[i], &cfg, &errs), 0);
    assert_int_equal(errs.count, 0);
    assert_defaults(&cfg);
  }
}

static void test_full_valid_file(void **state) {
  struct strata_config cfg;
  struct config_errors errs;

  (void)state;
  assert_int_equal(load_text("# every key, none at its default\n"
                             "server:\n"
                             "  listen: \"[::1]:9090\"\n"
                             "  workers: 4\n"
                             "  data: /srv/strata\n"
                             "log:\n"
                             "  level: debug\n"
                             "http:\n"
                             "  max_request_line: 4K\n"
                             "  max_header_bytes: 64k\n"
                             "  max_headers: 50\n"
                             "  max_body: 2m\n"
                             "  header_timeout: 500ms\n"
                             "  body_timeout: 1m\n"
                             "  idle_timeout: 1h\n"
                             "  max_connections: 20000\n"
                             "  drain_timeout: 0s\n"
                             "  max_json_depth: 64\n"
                             "  busy_poll: 250us\n",
                             &cfg, &errs),
                   0);
  assert_int_equal(errs.count, 0);
  assert_string_equal(cfg.listen_host, "::1");
  assert_int_equal(cfg.listen_port, 9090);
  assert_int_equal(cfg.workers, 4);
  assert_string_equal(cfg.data_dir, "/srv/strata");
  assert_int_equal(cfg.log_level, LOG_DEBUG);
  assert_int_equal(cfg.http.max_request_line, 4096);
  assert_int_equal(cfg.http.max_header_bytes, 65536);
  assert_int_equal(cfg.http.max_headers, 50);
  assert_int_equal(cfg.http.max_body_bytes, 2 * 1048576);
  assert_int_equal(cfg.http.header_timeout_ms, 500);
  assert_int_equal(cfg.http.body_timeout_ms, 60000);
  assert_int_equal(cfg.http.idle_timeout_ms, 3600000);
  assert_int_equal(cfg.http.max_connections, 20000);
  assert_int_equal(cfg.http.drain_timeout_ms, 0);
  assert_int_equal(cfg.http.max_json_depth, 64);
  assert_int_equal(cfg.http.busy_poll_us, 250);
}

static void test_partial_file_overlays_defaults(void **state) {
  struct strata_config cfg;
  struct config_errors errs;

  (void)state;
  assert_int_equal(load_text("http:\n  max_body: 0\n", &cfg, &errs), 0);
  assert_int_equal(cfg.http.max_body_bytes, 0);
  cfg.http.max_body_bytes = 1048576;
  assert_defaults(&cfg);
}

/* config/strata.yaml documents the defaults, so loading it changes nothing. */
static void test_example_file_is_the_defaults(void **state) {
  struct strata_config cfg;
  struct config_errors errs;
  FILE *f = fopen("config/strata.yaml", "r");

  (void)state;
  if (!f)
    skip(); /* run from the repository root to include this check */
  fclose(f);
  config_defaults(&cfg);
  assert_int_equal(config_load("config/strata.yaml", &cfg, &errs), 0);
  assert_defaults(&cfg);
}

static void test_config_untouched_on_error(void **state) {
  struct strata_config cfg, before;
  struct config_errors errs;
  char path[] = "/tmp/strata-config-XXXXXX";
  static const char text[] = "server:\n  workers: 3\n  listen: nowhere\n";
  int fd = mkstemp(path);

  (void)state;
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
  close(fd);
  config_defaults(&cfg);
  before = cfg;
  assert_int_equal(config_load(path, &cfg, &errs), -1);
  unlink(path);
  assert_memory_equal(&cfg, &before, sizeof cfg);
}

static void test_missing_file(void **state) {
  struct strata_config cfg;
  struct config_errors errs;

  (void)state;
  config_defaults(&cfg);
  assert_int_equal(config_load("/nonexistent/strata.yaml", &cfg, &errs), -1);
  assert_int_equal(errs.count, 1);
  expect_error(&errs, 0, 0, "cannot open the file: No such file or directory");
}

static void test_buffer_too_large(void **state) {
  struct strata_config cfg;
  struct config_errors errs;
  size_t len = CONFIG_MAX_FILE_BYTES + 1;
  char *big = malloc(len);

  (void)state;
  assert_non_null(big);
  memset(big, '#', len);
  config_defaults(&cfg);
  assert_int_equal(config_load_buffer(big, len, &cfg, &errs), -1);
  assert_int_equal(errs.count, 1);
  expect_error(&errs, 0, 0,
               "the file is larger than 1048576 bytes (1m), the limit for a configuration");
  /* Exactly at the limit is fine: a file of comments. */
  big[len - 2] = '\n';
  assert_int_equal(config_load_buffer(big, len - 1, &cfg, &errs), 0);
  free(big);
}

static void test_buffer_not_nul_terminated(void **state) {
  struct strata_config cfg;
  struct config_errors errs;
  static const char text[] = "server:\n  workers: 12GARBAGE";

  (void)state;
  config_defaults(&cfg);
  assert_int_equal(config_load_buffer(text, strlen("server:\n  workers: 12"), &cfg, &errs),
                   0);
  assert_int_equal(cfg.workers, 12);
}

/* storage, cache and bus: every key set, then each one's errors. */
static void test_storage_cache_bus_sections(void **state) {
  struct strata_config cfg;
  struct config_errors errs;

  (void)state;
  assert_int_equal(load_text("storage:\n"
                             "  synchronous: NORMAL\n"
                             "cache:\n"
                             "  max_entries: 5000\n"
                             "  max_bytes: 8m\n"
                             "  ttl: 250ms\n"
                             "  negative_ttl: 0s\n"
                             "bus:\n"
                             "  max_attempts: 3\n"
                             "  backoff_base: 5ms\n"
                             "  backoff_cap: 2s\n"
                             "  poll_interval: 1ms\n"
                             "  backlog_degraded: 50\n",
                             &cfg, &errs),
                   0);
  assert_int_equal(errs.count, 0);
  assert_int_equal(cfg.storage.synchronous, DB_SYNC_NORMAL);
  assert_int_equal(cfg.cache.max_entries, 5000);
  assert_int_equal(cfg.cache.max_bytes, 8 * 1048576);
  assert_int_equal(cfg.cache.ttl_ms, 250);
  assert_int_equal(cfg.cache.negative_ttl_ms, 0);
  assert_int_equal(cfg.bus.max_attempts, 3);
  assert_int_equal(cfg.bus.backoff_base_ms, 5);
  assert_int_equal(cfg.bus.backoff_cap_ms, 2000);
  assert_int_equal(cfg.bus.poll_interval_ms, 1);
  assert_int_equal(cfg.bus.backlog_degraded, 50);
  /* Untouched sections keep their defaults. */
  assert_int_equal(cfg.http.max_body_bytes, 1048576);
  assert_int_equal(load_text("storage:\n  synchronous: full\n", &cfg, &errs), 0);
  assert_defaults(&cfg);

  expect_only_error("storage:\n  synchronous: off\n", 2,
                    "storage.synchronous: \"off\" is not a synchronous mode (use full or normal)");
  expect_only_error("http:\n  busy_poll: 11ms\n", 2,
                    "http.busy_poll: \"11ms\" is out of range (0s .. 10ms)");
  expect_only_error("http:\n  busy_poll: 100\n", 2,
                    "http.busy_poll: \"100\" has no unit (add us, ms or s, e.g. 100us)");
  expect_only_error("bus:\n  max_attempts: 0\n", 2,
                    "bus.max_attempts: \"0\" is out of range (1 .. 100)");
  expect_only_error("bus:\n  max_attempts: 101\n", 2,
                    "bus.max_attempts: \"101\" is out of range (1 .. 100)");
  expect_only_error("bus:\n  poll_interval: 0ms\n", 2,
                    "bus.poll_interval: \"0ms\" is out of range (1ms .. 10s)");
  expect_only_error("bus:\n  poll_interval: 11s\n", 2,
                    "bus.poll_interval: \"11s\" is out of range (1ms .. 10s)");
  expect_only_error("bus:\n  backoff_base: 100\n", 2,
                    "bus.backoff_base: \"100\" has no unit (add ms, s, m or h, e.g. 10s)");
  expect_only_error("bus:\n  backoff_cap: 2h\n", 2,
                    "bus.backoff_cap: \"2h\" is out of range (1ms .. 1h)");
  expect_only_error("bus:\n  backlog_degraded: 0\n", 2,
                    "bus.backlog_degraded: \"0\" is out of range (1 .. 1000000000)");
  expect_only_error("cache:\n  max_entries: 1k\n", 2,
                    "cache.max_entries: \"1k\" is not a plain number (use digits only, e.g. 100)");
  expect_only_error("cache:\n  max_bytes: 1k\n", 2,
                    "cache.max_bytes: \"1k\" is out of range (64k .. 64g)");
  expect_only_error("cache:\n  ttl: 0s\n", 2, "cache.ttl: \"0s\" is out of range (1ms .. 24h)");
  expect_only_error("cache:\n  negative_ttl: 2h\n", 2,
                    "cache.negative_ttl: \"2h\" is out of range (0s .. 1h)");
  expect_only_error("bus:\n  max_attempt: 3\n", 2,
                    "unknown key bus.max_attempt; did you mean bus.max_attempts?");
  expect_only_error("server:\n  ttl: 1s\n", 2, "unknown key server.ttl; did you mean cache.ttl?");
  expect_only_error("bus: 3\n", 1, "bus must be a mapping of keys, not a value");
}

static void test_parse_synchronous(void **state) {
  enum db_sync sync = DB_SYNC_NORMAL;

  (void)state;
  assert_int_equal(config_parse_synchronous("Full", &sync), 0);
  assert_int_equal(sync, DB_SYNC_FULL);
  assert_int_equal(config_parse_synchronous("normal", &sync), 0);
  assert_int_equal(sync, DB_SYNC_NORMAL);
  assert_int_equal(config_parse_synchronous("off", &sync), -1);
  assert_int_equal(config_parse_synchronous("", &sync), -1);
  assert_int_equal(config_parse_synchronous(NULL, &sync), -1);
  assert_int_equal(sync, DB_SYNC_NORMAL);
  assert_string_equal(config_synchronous_name(DB_SYNC_FULL), "full");
  assert_string_equal(config_synchronous_name(DB_SYNC_NORMAL), "normal");
}

/* --- each kind of error, with its line ----------------------------------- */

static void test_syntax_error_line(void **state) {
  (void)state;
  expect_only_error("server:\n"
                    "  workers: 2\n"
                    "  listen: \"127.0.0.1:80\n"
                    "log:\n",
                    5,
                    "YAML syntax error: found unexpected end of stream "
                    "(while scanning a quoted scalar at line 3)");
  expect_only_error("server:\n"
                    "  workers: 2\n"
                    " data: x\n",
                    3,
                    "YAML syntax error: did not find expected key "
                    "(while parsing a block mapping at line 1)");
  expect_only_error("a: b: c\n", 1,
                    "YAML syntax error: mapping values are not allowed in this context");
  expect_only_error("log:\n  level: \"\xff\"\n", 2, "YAML syntax error: invalid leading UTF-8 octet");
}

static void test_unquoted_ipv6_hint(void **state) {
  (void)state;
  expect_only_error("server:\n  listen: [::1]:8080\n", 2,
                    "YAML syntax error: did not find expected node content (while parsing a "
                    "flow node at line 2); put an IPv6 listen address in quotes: "
                    "listen: \"[::1]:8080\"");
}

static void test_unknown_keys(void **state) {
  (void)state;
  expect_only_error("server:\n  lisen: 127.0.0.1:80\n", 2,
                    "unknown key server.lisen; did you mean server.listen?");
  expect_only_error("http:\n  max_bdy: 1k\n", 2,
                    "unknown key http.max_bdy; did you mean http.max_body?");
  expect_only_error("\nsrever:\n  workers: 1\n", 2, "unknown key srever; did you mean server?");
  expect_only_error("server:\n  level: warn\n", 2,
                    "unknown key server.level; did you mean log.level?");
  expect_only_error("max_body: 1k\n", 1, "unknown key max_body; did you mean http.max_body?");
  expect_only_error("server:\n  port: 80\n", 2,
                    "unknown key server.port (expected one of listen, workers, data)");
  expect_only_error("gatewy: {}\n", 1, "unknown key gatewy; did you mean gateway?");
  expect_only_error("routing: {}\n", 1,
                    "unknown key routing (expected a section: server, log, http, storage, cache, "
                    "bus, gateway, services)");
  expect_only_error("log:\n  \"\\x01\": 1\n", 2,
                    "unknown key log.\\x01 (expected one of level)");
}

static void test_duplicate_keys(void **state) {
  (void)state;
  expect_only_error("server:\n"
                    "  listen: 127.0.0.1:80\n"
                    "  workers: 2\n"
                    "  listen: 127.0.0.1:81\n",
                    4, "duplicate key server.listen (first at line 2)");
  expect_only_error("log: {level: info}\nlog:\n  level: debug\n", 2,
                    "duplicate key log (first at line 1)");
}

static void test_wrong_node_kinds(void **state) {
  (void)state;
  expect_only_error("http:\n  max_body:\n    - 1k\n", 2,
                    "http.max_body must be a single value, not a list");
  expect_only_error("server:\n  listen: {host: x}\n", 2,
                    "server.listen must be a single value, not a mapping");
  expect_only_error("server: 8080\n", 1, "server must be a mapping of keys, not a value");
  expect_only_error("log:\n  - level\n", 1, "log must be a mapping of keys, not a list");
  expect_only_error("- server\n", 1,
                    "the file must be a mapping of sections (server, log, http, storage, cache, "
                    "bus, gateway, services), not a list");
  expect_only_error("just text\n", 1,
                    "the file must be a mapping of sections (server, log, http, storage, cache, "
                    "bus, gateway, services), not a value");
  expect_only_error("server:\n  [a]: 1\n", 2, "server: keys must be single values, not a list");
}

static void test_missing_values(void **state) {
  (void)state;
  /* libyaml places an empty value on the next token's line; the error must
   * point at the key. */
  expect_only_error("server:\n  data:\n  workers: 1\n", 2, "server.data has no value");
  expect_only_error("log:\n  level: ~\n", 2, "log.level has no value");
  expect_only_error("server:\n  data: \"\"\n", 2, "server.data must not be empty");
}

static void test_value_errors(void **state) {
  (void)state;
  expect_only_error("\n\n\n\n\n\nhttp:\n  max_body: 12q\n", 8,
                    "http.max_body: \"12q\" is not a size (use a number with an optional k, m "
                    "or g suffix)");
  expect_only_error("http:\n  header_timeout: 10\n", 2,
                    "http.header_timeout: \"10\" has no unit (add ms, s, m or h, e.g. 10s)");
  expect_only_error("http:\n  body_timeout: 1.5s\n", 2,
                    "http.body_timeout: \"1.5s\" is not a duration (use a whole number with a "
                    "unit ms, s, m or h, e.g. 10s)");
  expect_only_error("server:\n  workers: -1\n", 2,
                    "server.workers: \"-1\" is not a plain number (use digits only, e.g. 100)");
  expect_only_error("log:\n  level: loud\n", 2,
                    "log.level: \"loud\" is not a log level (use debug, info, warn, error or "
                    "off)");
  expect_only_error("server:\n  listen: 127.0.0.1:0\n", 2,
                    "server.listen: \"127.0.0.1:0\" has a port outside 1 .. 65535");
  expect_only_error("server:\n  listen: \"a\\0b\"\n", 2, "server.listen contains a NUL byte");
}

static void test_range_errors(void **state) {
  (void)state;
  expect_only_error("http:\n  max_body: 2g\n", 2,
                    "http.max_body: \"2g\" is out of range (0 .. 1g)");
  expect_only_error("http:\n  max_body: 99999999999999999999g\n", 2,
                    "http.max_body: \"99999999999999999999g\" is out of range (0 .. 1g)");
  expect_only_error("http:\n  max_request_line: 255\n", 2,
                    "http.max_request_line: \"255\" is out of range (256 .. 1m)");
  expect_only_error("http:\n  max_header_bytes: 1025k\n", 2,
                    "http.max_header_bytes: \"1025k\" is out of range (1k .. 1m)");
  expect_only_error("http:\n  header_timeout: 99ms\n", 2,
                    "http.header_timeout: \"99ms\" is out of range (100ms .. 1h)");
  expect_only_error("http:\n  drain_timeout: 61m\n", 2,
                    "http.drain_timeout: \"61m\" is out of range (0s .. 1h)");
  expect_only_error("http:\n  max_headers: 0\n", 2,
                    "http.max_headers: \"0\" is out of range (1 .. 10000)");
  expect_only_error("http:\n  max_connections: 1000001\n", 2,
                    "http.max_connections: \"1000001\" is out of range (1 .. 1000000)");
  expect_only_error("http:\n  max_json_depth: 1001\n", 2,
                    "http.max_json_depth: \"1001\" is out of range (1 .. 1000)");
  expect_only_error("server:\n  workers: 257\n", 2,
                    "server.workers: \"257\" is out of range (0 .. 256)");
}

static void test_string_limits(void **state) {
  char text[1200];
  struct strata_config cfg;
  struct config_errors errs;

  (void)state;
  /* 1023 bytes fit data_dir[1024]; 1024 do not. */
  snprintf(text, sizeof text, "server:\n  data: %01023d\n", 0);
  assert_int_equal(load_text(text, &cfg, &errs), 0);
  assert_int_equal(strlen(cfg.data_dir), 1023);
  snprintf(text, sizeof text, "server:\n  data: %01024d\n", 0);
  expect_only_error(text, 2, "server.data is longer than 1023 bytes");
}

static void test_multiple_errors_together(void **state) {
  struct strata_config cfg;
  struct config_errors errs;

  (void)state;
  assert_int_equal(load_text("server:\n"                     /* 1 */
                             "  listen: localhost\n"         /* 2 */
                             "  workers: many\n"             /* 3 */
                             "  data: ./var\n"               /* 4 */
                             "log:\n"                        /* 5 */
                             "  level: info\n"               /* 6 */
                             "  level: debug\n"              /* 7 */
                             "http:\n"                       /* 8 */
                             "  max_body: 1.5m\n"            /* 9 */
                             "  header_timeout: 10\n"        /* 10 */
                             "  max_headers: 0x10\n"         /* 11 */
                             "  idle_timout: 5s\n",          /* 12 */
                             &cfg, &errs),
                   -1);
  assert_int_equal(errs.count, 7);
  expect_error(&errs, 0, 2,
               "server.listen: \"localhost\" has no port (expected HOST:PORT)");
  expect_error(&errs, 1, 3,
               "server.workers: \"many\" is not a plain number (use digits only, e.g. 100)");
  expect_error(&errs, 2, 7, "duplicate key log.level (first at line 6)");
  expect_error(&errs, 3, 9,
               "http.max_body: \"1.5m\" is not a size (use a number with an optional k, m or g "
               "suffix)");
  expect_error(&errs, 4, 10, "http.header_timeout: \"10\" has no unit (add ms, s, m or h, e.g. 10s)");
  expect_error(&errs, 5, 11,
               "http.max_headers: \"0x10\" is not a plain number (use digits only, e.g. 100)");
  expect_error(&errs, 6, 12, "unknown key http.idle_timout; did you mean http.idle_timeout?");
}

static void test_more_errors_than_slots(void **state) {
  char text[8192];
  size_t used = 0;
  struct strata_config cfg;
  struct config_errors errs;
  int i;

  (void)state;
  used += (size_t)snprintf(text + used, sizeof text - used, "http:\n");
  for (i = 0; i < 100; i++)
    used += (size_t)snprintf(text + used, sizeof text - used, "  bogus%d: 1\n", i);
  assert_int_equal(load_text(text, &cfg, &errs), -1);
  assert_int_equal(errs.count, 100);
  assert_int_equal(errs.items[0].line, 2);
  assert_int_equal(errs.items[CONFIG_MAX_ERRORS - 1].line, CONFIG_MAX_ERRORS + 1);
}

static void test_yaml_features_refused(void **state) {
  (void)state;
  expect_only_error("server:\n  workers: &n 2\nhttp:\n  max_headers: *n\n", 4,
                    "aliases (*n) are not supported; write the value out instead");
  expect_only_error("server: {}\n---\nlog: {}\n", 2,
                    "only one YAML document is allowed; a second one starts here");
}

static void test_nesting_limit(void **state) {
  char text[300];
  int i;

  (void)state;
  for (i = 0; i < 100; i++)
    text[i] = '[';
  text[i] = '\0';
  expect_only_error(text, 1, "values are nested more than 64 levels deep");
}

/* --- value parsers ------------------------------------------------------ */

static void test_parse_size(void **state) {
  static const struct { const char *text; uint64_t want; } good[] = {
    { "0", 0 }, { "512", 512 }, { "8k", 8192 }, { "8K", 8192 }, { "1m", 1048576 },
    { "1G", 1073741824 }, { "007", 7 }, { "17179869183g", 17179869183ULL << 30 },
    { "18446744073709551615", UINT64_MAX },
  };
  static const char *const bad[] = {
    "", "-1", "+1", "0x10", "1.5m", "1e3", " 1k", "1k ", "1kb", "1 k", "k", "1kk", "12q",
  };
  static const char *const huge[] = {
    "18446744073709551616", "99999999999999999999g", "17179869184g", "18014398509481984k",
  };
  char why[128];
  uint64_t v;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof good / sizeof good[0]; i++) {
    assert_int_equal(config_parse_size(good[i].text, &v, why, sizeof why), 0);
    assert_true(v == good[i].want);
  }
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    v = 42;
    assert_int_equal(config_parse_size(bad[i], &v, why, sizeof why), -1);
    assert_string_equal(why, "is not a size (use a number with an optional k, m or g suffix)");
    assert_int_equal(v, 42);
  }
  for (i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    assert_int_equal(config_parse_size(huge[i], &v, why, sizeof why), -2);
    assert_string_equal(why, "is too large");
  }
  assert_int_equal(config_parse_size(NULL, &v, NULL, 0), -1);
}

typedef int (*duration_parser)(const char *, uint64_t *, char *, size_t);
struct duration_case {
  const char *text;
  uint64_t want;
};

/* Each good text parses to its value; each bad one is refused with
 * malformed; a bare number gets no_unit; too_large overflows. */
static void check_duration_parser(duration_parser parse, const struct duration_case *good,
                                  size_t n_good, const char *const *bad, size_t n_bad,
                                  const char *malformed, const char *no_unit,
                                  const char *too_large) {
  char why[128];
  uint64_t v;
  size_t i;

  for (i = 0; i < n_good; i++) {
    assert_int_equal(parse(good[i].text, &v, why, sizeof why), 0);
    assert_true(v == good[i].want);
  }
  for (i = 0; i < n_bad; i++) {
    assert_int_equal(parse(bad[i], &v, why, sizeof why), -1);
    assert_string_equal(why, malformed);
  }
  assert_int_equal(parse("10", &v, why, sizeof why), -1);
  assert_string_equal(why, no_unit);
  assert_int_equal(parse(too_large, &v, why, sizeof why), -2);
  assert_string_equal(why, "is too large");
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void test_parse_duration(void **state) {
  static const struct duration_case good[] = {
    { "0ms", 0 }, { "0s", 0 }, { "100ms", 100 }, { "10s", 10000 }, { "2m", 120000 },
    { "1h", 3600000 },
  };
  static const char *const bad[] = {
    "", "s", "-1s", "1.5s", "10S", "10sec", "1 s", "10 ms", "0x10s", "1d", "10s ", "5us",
  };
  char why[128];
  uint64_t v;

  (void)state;
  check_duration_parser(config_parse_duration_ms, good, COUNT(good), bad, COUNT(bad),
                        "is not a duration (use a whole number with a unit ms, s, m or h, "
                        "e.g. 10s)",
                        "has no unit (add ms, s, m or h, e.g. 10s)", "99999999999999999999s");
  assert_int_equal(config_parse_duration_ms("5124095576030432h", &v, why, sizeof why), -2);
}

static void test_parse_duration_us(void **state) {
  static const struct duration_case good[] = {
    { "0us", 0 }, { "0s", 0 }, { "100us", 100 }, { "2ms", 2000 }, { "3s", 3000000 },
  };
  static const char *const bad[] = { "", "us", "1.5ms", "10US", "10 us", "1m", "1h", "5\xc2\xb5s" };

  (void)state;
  check_duration_parser(config_parse_duration_us, good, COUNT(good), bad, COUNT(bad),
                        "is not a duration (use a whole number with a unit us, ms or s, "
                        "e.g. 100us)",
                        "has no unit (add us, ms or s, e.g. 100us)", "18446744073709552s");
}

static void test_parse_count(void **state) {
  char why[128];
  uint64_t v;

  (void)state;
  assert_int_equal(config_parse_count("0", &v, why, sizeof why), 0);
  assert_true(v == 0);
  assert_int_equal(config_parse_count("100", &v, why, sizeof why), 0);
  assert_true(v == 100);
  assert_int_equal(config_parse_count("1k", &v, why, sizeof why), -1);
  assert_int_equal(config_parse_count("-1", &v, why, sizeof why), -1);
  assert_int_equal(config_parse_count("1.0", &v, why, sizeof why), -1);
  assert_int_equal(config_parse_count("", &v, why, sizeof why), -1);
  assert_string_equal(why, "is not a plain number (use digits only, e.g. 100)");
  assert_int_equal(config_parse_count("99999999999999999999", &v, why, sizeof why), -2);
}

static void test_parse_listen(void **state) {
  static const struct { const char *text, *host; uint16_t port; } good[] = {
    { "127.0.0.1:8080", "127.0.0.1", 8080 }, { "0.0.0.0:1", "0.0.0.0", 1 },
    { "[::1]:80", "::1", 80 }, { "[::]:65535", "::", 65535 },
    { ":8080", "0.0.0.0", 8080 }, { "localhost:3000", "localhost", 3000 },
    { "[2001:db8::1]:443", "2001:db8::1", 443 },
  };
  static const struct { const char *text, *why; } bad[] = {
    { "", "is empty (expected HOST:PORT)" },
    { "8080", "has no port (expected HOST:PORT)" },
    { "127.0.0.1", "has no port (expected HOST:PORT)" },
    { "127.0.0.1:", "has no port (expected HOST:PORT)" },
    { "127.0.0.1:0", "has a port outside 1 .. 65535" },
    { "127.0.0.1:65536", "has a port outside 1 .. 65535" },
    { ":99999999999999999999", "has a port outside 1 .. 65535" },
    { "127.0.0.1:-1", "has a port that is not a number" },
    { "127.0.0.1:+80", "has a port that is not a number" },
    { "127.0.0.1:80x", "has a port that is not a number" },
    { "127.0.0.1:http", "has a port that is not a number" },
    { "::1:80", "has an IPv6 address without brackets (write it as [::1]:8080)" },
    { "[::1]", "has no port (expected [IPv6]:PORT)" },
    { "[::1]80", "has no port (expected [IPv6]:PORT)" },
    { "[::1:80", "has no closing ] (expected [IPv6]:PORT)" },
    { "[]:80", "has an invalid IPv6 address between [ and ]" },
    { "[127.0.0.1]:80", "has an invalid IPv6 address between [ and ]" },
    { "[fe80::1%eth0]:80", "has an invalid IPv6 address between [ and ]" },
    { "example.com:80", "has a host that is not an IP address or localhost" },
    { "256.0.0.1:80", "has a host that is not an IP address or localhost" },
    { "127.1:80", "has a host that is not an IP address or localhost" },
    { " 127.0.0.1:80", "has a host that is not an IP address or localhost" },
  };
  char host[64], why[128];
  uint16_t port;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof good / sizeof good[0]; i++) {
    assert_int_equal(config_parse_listen(good[i].text, host, sizeof host, &port, why, sizeof why),
                     0);
    assert_string_equal(host, good[i].host);
    assert_int_equal(port, good[i].port);
  }
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    strcpy(host, "unchanged");
    port = 7;
    assert_int_equal(config_parse_listen(bad[i].text, host, sizeof host, &port, why, sizeof why),
                     -1);
    assert_string_equal(why, bad[i].why);
    assert_string_equal(host, "unchanged");
    assert_int_equal(port, 7);
  }
  /* The host must fit the caller's buffer. */
  assert_int_equal(config_parse_listen("127.0.0.1:80", host, 9, &port, why, sizeof why), -1);
  assert_string_equal(why, "has a host longer than 8 bytes");
  assert_int_equal(config_parse_listen("127.0.0.1:80", host, 10, &port, NULL, 0), 0);
}

static void test_log_levels(void **state) {
  enum log_level level = LOG_OFF;

  (void)state;
  assert_int_equal(config_parse_log_level("debug", &level), 0);
  assert_int_equal(level, LOG_DEBUG);
  assert_int_equal(config_parse_log_level("WARN", &level), 0);
  assert_int_equal(level, LOG_WARN);
  assert_int_equal(config_parse_log_level("off", &level), 0);
  assert_int_equal(level, LOG_OFF);
  assert_int_equal(config_parse_log_level("warning", &level), -1);
  assert_int_equal(config_parse_log_level("", &level), -1);
  assert_int_equal(config_parse_log_level(NULL, &level), -1);
  assert_int_equal(level, LOG_OFF);
  assert_string_equal(config_log_level_name(LOG_DEBUG), "debug");
  assert_string_equal(config_log_level_name(LOG_INFO), "info");
  assert_string_equal(config_log_level_name(LOG_WARN), "warn");
  assert_string_equal(config_log_level_name(LOG_ERROR), "error");
  assert_string_equal(config_log_level_name(LOG_OFF), "off");
  assert_string_equal(config_log_level_name((enum log_level)99), "unknown");
}

/* --- the tree on its own ------------------------------------------------ */

struct collected {
  int count;
  int line[8];
  char message[8][320];
};

static void on_error(void *ctx, int line, const char *message) {
  struct collected *c = ctx;

  if (c->count < 8) {
    c->line[c->count] = line;
    snprintf(c->message[c->count], sizeof c->message[0], "%s", message);
  }
  c->count++;
}

static void test_tree_shape_and_lines(void **state) {
  static const char text[] = "routes:\n"           /* 1 */
                             "  - path: /a\n"      /* 2 */
                             "    upstream: x\n"   /* 3 */
                             "  - path: '~'\n"     /* 4 */
                             "    path: /dup\n"    /* 5 */
                             "empty:\n"            /* 6 */
                             "flow: [1, {k: v}]\n"; /* 7 */
  struct collected c = { 0 };
  struct ynode *root = NULL;
  const struct ynode *routes, *r1, *flow;

  (void)state;
  assert_int_equal(ytree_parse(text, sizeof text - 1, &root, on_error, &c), YTREE_EINVALID);
  assert_int_equal(c.count, 1);
  assert_int_equal(c.line[0], 5);
  assert_string_equal(c.message[0], "duplicate key routes[1].path (first at line 4)");
  assert_non_null(root);
  assert_int_equal(root->kind, YNODE_MAPPING);
  assert_int_equal(root->count, 3);

  routes = ytree_get(root, "routes");
  assert_non_null(routes);
  assert_int_equal(routes->kind, YNODE_SEQUENCE);
  assert_int_equal(routes->count, 2);
  assert_int_equal(routes->items[0]->line, 2);
  assert_string_equal(ytree_get(routes->items[0], "upstream")->text, "x");
  assert_int_equal(ytree_get(routes->items[0], "upstream")->line, 3);
  r1 = routes->items[1];
  assert_int_equal(r1->count, 1); /* the duplicate was left out */
  assert_string_equal(ytree_get(r1, "path")->text, "~");
  assert_false(ytree_is_null(ytree_get(r1, "path"))); /* quoted, so text */

  assert_true(ytree_is_null(ytree_get(root, "empty")));
  assert_int_equal(ytree_get(root, "empty")->line, 6);
  assert_null(ytree_get(root, "missing"));
  assert_null(ytree_get(routes, "path")); /* not a mapping */
  assert_true(ytree_is_null(NULL));

  flow = ytree_get(root, "flow");
  assert_int_equal(flow->kind, YNODE_SEQUENCE);
  assert_int_equal(flow->count, 2);
  assert_string_equal(ytree_get(flow->items[1], "k")->text, "v");
  assert_int_equal(flow->items[1]->line, 7);
  ytree_free(root);
  ytree_free(NULL);
}

static void test_tree_fatal_and_empty(void **state) {
  struct collected c = { 0 };
  struct ynode *root = (struct ynode *)&c;

  (void)state;
  assert_int_equal(ytree_parse("a: [1,\n", 7, &root, on_error, &c), YTREE_EFATAL);
  assert_null(root);
  assert_int_equal(c.count, 1);
  c.count = 0;
  assert_int_equal(ytree_parse("# nothing\n", 10, &root, on_error, &c), YTREE_OK);
  assert_null(root);
  assert_int_equal(c.count, 0);
  /* Problems inside a left-out value are still found, and nothing leaks. */
  assert_int_equal(ytree_parse("a: 1\na: {b: 1, b: 2}\n", 21, &root, NULL, NULL),
                   YTREE_EINVALID);
  assert_int_equal(root->count, 1);
  ytree_free(root);
  assert_int_equal(ytree_parse("a: 1\na: {b: 1, b: 2}\n", 21, &root, on_error, &c),
                   YTREE_EINVALID);
  assert_int_equal(c.count, 2);
  assert_string_equal(c.message[0], "duplicate key a (first at line 1)");
  assert_string_equal(c.message[1], "duplicate key a.b (first at line 2)");
  ytree_free(root);
}

static void test_tree_printable(void **state) {
  char buf[12];

  (void)state;
  assert_string_equal(ytree_printable("ab\"c", 4, buf, sizeof buf), "ab\\\"c");
  assert_string_equal(ytree_printable("\x01\xff", 2, buf, sizeof buf), "\\x01\\xff");
  assert_string_equal(ytree_printable("abcdefghijk", 11, buf, sizeof buf), "abcdefghijk");
  assert_string_equal(ytree_printable("abcdefghijkl", 12, buf, sizeof buf), "abcdefgh...");
  assert_string_equal(ytree_printable("abc", 3, buf, 3), "");
}

/* --- the topology: gateway pools and routes, services ---------------------- */

static void test_topology_binds(void **state) {
  (void)state;
  struct strata_config cfg;
  struct config_errors errs;
  int rc = load_text("gateway:\n"
                     "  listen: 127.0.0.1:18080\n"
                     "  admin: {listen: 127.0.0.1:19901, token_file: /tmp/tok}\n"
                     "  pools:\n"
                     "    legacy:\n"
                     "      hosts: [127.0.0.1:9000, {address: \"[::1]:9001\", weight: 3}]\n"
                     "      balance: hash-header:X-User\n"
                     "      health: {interval: 500ms, rise: 3, path: /ready}\n"
                     "  routes:\n"
                     "    - match: {prefix: /api/users, methods: [GET, HEAD], host: a.example}\n"
                     "      pool: users\n"
                     "      cache: {ttl: 5s, stale_if_error: 1m}\n"
                     "      fallback: {status: 200, body: '{\"items\":[]}', stale: yes}\n"
                     "      breaker: {error_threshold: 40, reset_timeout: 2s}\n"
                     "    - match: {path: /legacy/:id}\n"
                     "      pool: legacy\n"
                     "      retries: {attempts: 2, on: [connect-failure, 503]}\n"
                     "      auth: {anonymous: true, scopes: admin}\n"
                     "      rate_limit: {rate: 5, burst: 10}\n"
                     "services:\n"
                     "  users: {domains: [users], listen: 127.0.0.1:8081, instances: 2}\n"
                     "  rest: {domains: [orders, payments], listen: 127.0.0.1:8083}\n",
                     &cfg, &errs);
  assert_int_equal(rc, 0);
  const struct gateway_config *g = &cfg.gateway;
  assert_int_equal(g->listen_port, 18080);
  assert_int_equal(g->admin_port, 19901);
  assert_string_equal(g->admin_token_file, "/tmp/tok");
  assert_int_equal(g->n_pools, 1);
  assert_string_equal(g->pools[0].name, "legacy");
  assert_int_equal(g->pools[0].line, 5);
  assert_int_equal(g->pools[0].n_hosts, 2);
  assert_int_equal(g->pools[0].hosts[0].port, 9000);
  assert_string_equal(g->pools[0].hosts[1].host, "::1");
  assert_int_equal(g->pools[0].hosts[1].weight, 3);
  assert_string_equal(g->pools[0].balance, "hash-header:X-User");
  assert_int_equal(g->pools[0].health_interval_ms, 500);
  assert_int_equal(g->pools[0].health_rise, 3);
  assert_int_equal(g->n_routes, 2);
  const struct route_config *r = &g->routes[0];
  assert_int_equal(r->line, 10);
  assert_string_equal(r->prefix, "/api/users");
  assert_string_equal(r->methods, "GET,HEAD");
  assert_string_equal(r->host, "a.example");
  assert_int_equal(r->cache_ttl_ms, 5000);
  assert_int_equal(r->cache_stale_if_error_ms, 60000);
  assert_int_equal(r->fallback_status, 200);
  assert_string_equal(r->fallback_body, "{\"items\":[]}");
  assert_int_equal(r->fallback_stale, 1);
  assert_int_equal(r->breaker.error_threshold_pct, 40);
  assert_int_equal(r->breaker.reset_timeout_ms, 2000);
  r = &g->routes[1];
  assert_string_equal(r->path, "/legacy/:id");
  assert_string_equal(r->retry_on, "connect-failure,503");
  assert_int_equal(r->retry_attempts, 2);
  assert_int_equal(r->auth_anonymous, 1);
  assert_string_equal(r->scopes, "admin");
  assert_int_equal(r->rate, 5);
  assert_int_equal(cfg.n_services, 2);
  assert_string_equal(cfg.services[0].name, "users");
  assert_int_equal(cfg.services[0].instances, 2);
  assert_int_equal(cfg.services[1].instances, 1); /* the default */
  assert_string_equal(cfg.services[1].domains, "orders,payments");
  assert_true(config_list_has(cfg.services[1].domains, "payments"));
  assert_false(config_list_has(cfg.services[1].domains, "pay"));
  assert_non_null(config_find_service(&cfg, "rest"));
  assert_null(config_find_pool(&cfg, "users"));
}

static void test_topology_errors(void **state) {
  (void)state;
  expect_only_error("gateway:\n  pools:\n    p: {hosts: [127.0.0.1:1], balance: random}\n", 3,
                    "gateway.pools.p.balance: \"random\" is not round-robin, least-request, "
                    "hash-client, hash-header:NAME or hash-param:NAME");
  expect_only_error("gateway:\n  pools:\n    p: {}\n", 3, "gateway.pools.p needs hosts or a service");
  expect_only_error("gateway:\n  pools:\n    p: {hosts: [127.0.0.1:1], health: {path: \"/a b\"}}\n", 3,
                    "gateway.pools.p.health.path must start with / and hold no spaces or control "
                    "characters");
  expect_only_error("gateway:\n  pools:\n    p: {hosts: [127.0.0.1:1], health: {path: healthz}}\n", 3,
                    "gateway.pools.p.health.path must start with / and hold no spaces or control "
                    "characters");
  expect_only_error("gateway:\n  pools:\n    p: {service: nope}\n", 3,
                    "gateway.pools.p: no service named \"nope\"");
  expect_only_error("gateway:\n  pools:\n    \"a b\": {hosts: [127.0.0.1:1]}\n", 3,
                    "gateway.pools.a b: a name is 1 to 31 letters, digits, - or _");
  expect_only_error("gateway:\n  pools: {x: {hosts: [127.0.0.1:1]}}\n  routes:\n    - pool: x\n", 4,
                    "gateway.routes[0] needs match.prefix or match.path");
  expect_only_error("gateway:\n  routes:\n    - {match: {prefix: /a}, pool: x}\n", 3,
                    "gateway.routes[0]: no pool or service named \"x\"");
  expect_only_error("gateway:\n  pools: {p: {hosts: [127.0.0.1:1]}}\n  routes:\n"
                    "    - {match: {prefix: /a, methods: [get]}, pool: p}\n", 4,
                    "gateway.routes[0]: \"get\" is not an HTTP method in capitals");
  expect_only_error("gateway:\n  pools: {p: {hosts: [127.0.0.1:1]}}\n  routes:\n"
                    "    - {match: {path: /a}, pool: p, strip_prefix: true}\n", 4,
                    "gateway.routes[0]: strip_prefix and rewrite_prefix need match.prefix");
  expect_only_error("gateway:\n  pools: {p: {hosts: [127.0.0.1:1]}}\n  routes:\n"
                    "    - {match: {prefix: /a}, pool: p, retries: {on: [404]}}\n", 4,
                    "gateway.routes[0]: \"404\" is not connect-failure, reset, timeout, 502, 503 "
                    "or 504");
  expect_only_error("gateway:\n  routes: {a: 1}\n", 2, "gateway.routes must be a list, not a mapping");
  expect_only_error("gateway:\n  pools: {p: {hosts: [127.0.0.1:1], strip: 1}}\n", 2,
                    "unknown key gateway.pools.p.strip (expected one of hosts, service, balance, "
                    "connect_timeout, max_idle, health)");
  expect_only_error("services:\n  a: {domains: [billing], listen: 127.0.0.1:9000}\n", 2,
                    "services.a: \"billing\" is not a domain (users, orders, payments, "
                    "notifications)");
  expect_only_error("services:\n  a: {domains: [users], listen: 127.0.0.1:9000}\n"
                    "  b: {domains: [users], listen: 127.0.0.1:9001}\n", 3,
                    "services.b: domain users is already hosted by services.a");
  expect_only_error("services:\n  a: {domains: [users], listen: 127.0.0.1:9000, instances: 2}\n"
                    "  b: {domains: [orders], listen: 127.0.0.1:9001}\n", 3,
                    "services.b: ports overlap those of services.a");
  expect_only_error("services:\n  a: {domains: [users], listen: 127.0.0.1:9000}\n"
                    "  b: {domains: [orders], listen: 10.1.2.3:9001}\n", 3,
                    "services.b listens on 10.1.2.3, another service on 127.0.0.1: the embedded "
                    "engines (SQLite, the embedded bus) are files on one host and cannot be shared "
                    "between hosts");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_defaults),
    cmocka_unit_test(test_empty_inputs_keep_defaults),
    cmocka_unit_test(test_full_valid_file),
    cmocka_unit_test(test_partial_file_overlays_defaults),
    cmocka_unit_test(test_example_file_is_the_defaults),
    cmocka_unit_test(test_config_untouched_on_error),
    cmocka_unit_test(test_missing_file),
    cmocka_unit_test(test_buffer_too_large),
    cmocka_unit_test(test_buffer_not_nul_terminated),
    cmocka_unit_test(test_syntax_error_line),
    cmocka_unit_test(test_unquoted_ipv6_hint),
    cmocka_unit_test(test_unknown_keys),
    cmocka_unit_test(test_duplicate_keys),
    cmocka_unit_test(test_wrong_node_kinds),
    cmocka_unit_test(test_missing_values),
      cmocka_unit_test(test_topology_binds),
      cmocka_unit_test(test_topology_errors),
    cmocka_unit_test(test_value_errors),
    cmocka_unit_test(test_storage_cache_bus_sections),
    cmocka_unit_test(test_parse_synchronous),
    cmocka_unit_test(test_range_errors),
    cmocka_unit_test(test_string_limits),
    cmocka_unit_test(test_multiple_errors_together),
    cmocka_unit_test(test_more_errors_than_slots),
    cmocka_unit_test(test_yaml_features_refused),
    cmocka_unit_test(test_nesting_limit),
    cmocka_unit_test(test_parse_size),
    cmocka_unit_test(test_parse_duration),
    cmocka_unit_test(test_parse_duration_us),
    cmocka_unit_test(test_parse_count),
    cmocka_unit_test(test_parse_listen),
    cmocka_unit_test(test_log_levels),
    cmocka_unit_test(test_tree_shape_and_lines),
    cmocka_unit_test(test_tree_fatal_and_empty),
    cmocka_unit_test(test_tree_printable),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
