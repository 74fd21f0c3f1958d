/* Unit tests for src/gateway/settings.c: a topology's gateway section
 * resolved into pools and routes, route matching (prefix at segment
 * boundaries, router patterns, methods, Host without its port, file order)
 * and the upstream path after strip_prefix / rewrite_prefix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "gateway/gateway.h"

static struct strata_config cfg;
static struct gw_settings s;

static int load(const char *yaml) {
  struct config_errors errs;
  config_defaults(&cfg);
  int rc = config_load_buffer(yaml, strlen(yaml), &cfg, &errs);
  for (int i = 0; i < errs.count && i < CONFIG_MAX_ERRORS; i++)
    fprintf(stderr, "config line %d: %s\n", errs.items[i].line, errs.items[i].message);
  assert_int_equal(rc, 0);
  char why[256] = "";
  rc = gw_settings_from_config(&cfg, &s, why, sizeof why);
  if (rc)
    fprintf(stderr, "settings: %s\n", why);
  return rc;
}

static int match(const char *host, const char *method, const char *path) {
  return gw_route_match(&s, host, host ? strlen(host) : 0, method, path, strlen(path));
}

static const char *rewrite(unsigned route, const char *path) {
  static char out[256];
  size_t n = gw_route_rewrite(&s.routes[route], path, strlen(path), out, sizeof out);
  return n ? out : "(none)";
}

static void test_pools_from_hosts_and_services(void **state) {
  (void)state;
  assert_int_equal(load("gateway:\n"
                        "  pools:\n"
                        "    legacy: {hosts: [127.0.0.1:9000, {address: 127.0.0.1:9001, weight: 3}],"
                        " balance: hash-header:X-User, max_idle: 8}\n"
                        "  routes:\n"
                        "    - {match: {prefix: /users}, pool: users}\n"
                        "    - {match: {prefix: /legacy}, pool: legacy}\n"
                        "    - {match: {prefix: /more}, pool: users}\n"
                        "services:\n"
                        "  users: {domains: [users], listen: 0.0.0.0:8081, instances: 3}\n"),
                   0);
  assert_int_equal(s.n_pools, 2);
  assert_string_equal(s.pools[0].name, "legacy");
  assert_int_equal(s.pools[0].first, 0);
  assert_int_equal(s.pools[0].n_hosts, 2);
  assert_int_equal(s.pools[0].balance, 2); /* hash */
  assert_string_equal(s.pools[0].hash_header, "X-User");
  assert_int_equal(s.pools[0].max_idle, 8);
  assert_int_equal(s.hosts[1].weight, 3);
  /* the implied pool of a service: its instances, on loopback */
  assert_string_equal(s.pools[1].name, "users");
  assert_int_equal(s.pools[1].first, 2);
  assert_int_equal(s.pools[1].n_hosts, 3);
  assert_string_equal(s.hosts[2].host, "127.0.0.1");
  assert_int_equal(s.hosts[4].port, 8083);
  assert_int_equal(s.hosts[4].pool, 1);
  assert_int_equal(s.n_routes, 3);
  assert_int_equal(s.routes[0].pool, 1);
  assert_int_equal(s.routes[1].pool, 0);
  assert_int_equal(s.routes[2].pool, 1); /* the same implied pool, not a second one */
  assert_int_equal(s.pools[1].health_interval_ms, 1000);
  assert_string_equal(s.pools[1].health_path, "/health/ready");
}

static void test_route_policies_inherit_defaults(void **state) {
  (void)state;
  assert_int_equal(load("gateway:\n"
                        "  timeout: 9s\n"
                        "  retry_attempts: 4\n"
                        "  pools: {p: {hosts: [127.0.0.1:1]}}\n"
                        "  routes:\n"
                        "    - {match: {prefix: /a}, pool: p}\n"
                        "    - match: {prefix: /b}\n"
                        "      pool: p\n"
                        "      timeout: 2s\n"
                        "      try_timeout: 500ms\n"
                        "      retries: {attempts: 1, on: [connect-failure, 503]}\n"
                        "      breaker: {error_threshold: 30, volume_threshold: 7, slow_call: 1s}\n"
                        "      rate_limit: {rate: 5, burst: 10}\n"),
                   0);
  const struct gw_route *a = &s.routes[0], *b = &s.routes[1];
  assert_int_equal(a->retry.total_timeout_ms, 9000);
  assert_int_equal(a->retry.max_attempts, 4);
  assert_int_equal(a->rate.rate, 0);
  assert_int_equal(b->retry.total_timeout_ms, 2000);
  assert_int_equal(b->retry.per_try_timeout_ms, 500);
  assert_int_equal(b->retry.max_attempts, 1);
  assert_int_equal(b->retry.retry_on, RETRY_ON_CONNECT_FAILURE | RETRY_ON_503);
  assert_int_equal(b->breaker.failure_rate_pct, 30);
  assert_int_equal(b->breaker.min_calls, 7);
  assert_int_equal(b->breaker.slow_call_ms, 1000);
  assert_int_equal(b->breaker.slow_rate_pct, 50);
  assert_int_equal(b->rate.rate, 5);
  assert_int_equal(b->rate.burst, 10);
  assert_int_equal(b->rate.period_ms, 1000);
  assert_string_equal(a->label, "/a/*");
}

static void test_matching(void **state) {
  (void)state;
  assert_int_equal(load("gateway:\n"
                        "  pools: {p: {hosts: [127.0.0.1:1]}}\n"
                        "  routes:\n"
                        "    - {match: {prefix: /api/users, methods: [GET]}, pool: p}\n"
                        "    - {match: {prefix: /api/users}, pool: p}\n"
                        "    - {match: {path: /items/:id}, pool: p}\n"
                        "    - {match: {path: /files/*}, pool: p}\n"
                        "    - {match: {prefix: /, host: api.example}, pool: p}\n"
                        "    - {match: {prefix: /dir/}, pool: p}\n"),
                   0);
  assert_int_equal(match(NULL, "GET", "/api/users"), 0);
  assert_int_equal(match(NULL, "HEAD", "/api/users/1"), 0); /* HEAD rides on GET */
  assert_int_equal(match(NULL, "POST", "/api/users"), 1);  /* file order, methods */
  assert_int_equal(match(NULL, "GET", "/api/usersX"), -1); /* whole segments only */
  assert_int_equal(match(NULL, "GET", "/items/7"), 2);
  assert_int_equal(match(NULL, "GET", "/items/"), -1);
  assert_int_equal(match(NULL, "GET", "/items/7/x"), -1);
  assert_int_equal(match(NULL, "GET", "/files/a/b/c"), 3);
  assert_int_equal(match(NULL, "GET", "/files/"), 3);
  assert_int_equal(match("api.example", "GET", "/x"), 4);
  assert_int_equal(match("API.Example:8443", "GET", "/x"), 4);
  assert_int_equal(match("other.example", "GET", "/x"), -1);
  assert_int_equal(match(NULL, "GET", "/x"), -1);
  assert_int_equal(match(NULL, "GET", "/dir/x"), 5);
  assert_int_equal(match(NULL, "GET", "/dirx"), -1);
}

static void test_rewrite(void **state) {
  (void)state;
  assert_int_equal(load("gateway:\n"
                        "  pools: {p: {hosts: [127.0.0.1:1]}}\n"
                        "  routes:\n"
                        "    - {match: {prefix: /old}, pool: p, strip_prefix: true}\n"
                        "    - {match: {prefix: /v1}, pool: p, rewrite_prefix: /api/v2}\n"
                        "    - {match: {prefix: /v3/}, pool: p, rewrite_prefix: /new}\n"
                        "    - {match: {prefix: /same}, pool: p}\n"
                        "    - {match: {prefix: /t}, pool: p, rewrite_prefix: /x/}\n"),
                   0);
  assert_string_equal(rewrite(0, "/old/a/b"), "/a/b");
  assert_string_equal(rewrite(0, "/old"), "/");
  assert_string_equal(rewrite(1, "/v1/orders"), "/api/v2/orders");
  assert_string_equal(rewrite(1, "/v1"), "/api/v2");
  assert_string_equal(rewrite(2, "/v3/a"), "/new/a");
  assert_string_equal(rewrite(3, "/same/x"), "/same/x");
  assert_string_equal(rewrite(4, "/t/y"), "/x/y");
  assert_string_equal(rewrite(4, "/t"), "/x/");
  char small[4];
  assert_int_equal(gw_route_rewrite(&s.routes[1], "/v1/orders", 10, small, sizeof small), 0);
}

static void test_route_param(void **state) {
  (void)state;
  assert_int_equal(load("gateway:\n"
                        "  pools: {p: {hosts: [127.0.0.1:1], balance: hash-param:id}}\n"
                        "  routes:\n"
                        "    - {match: {path: /users/:id/orders/:oid}, pool: p}\n"
                        "    - {match: {prefix: /x}, pool: p}\n"),
                   0);
  assert_string_equal(s.pools[0].hash_param, "id");
  const char *v = NULL;
  size_t n = 0;
  const char *path = "/users/usr_42/orders/ord_7";
  assert_int_equal(gw_route_param(&s.routes[0], path, strlen(path), "id", &v, &n), 1);
  assert_int_equal(n, 6);
  assert_memory_equal(v, "usr_42", 6);
  assert_int_equal(gw_route_param(&s.routes[0], path, strlen(path), "oid", &v, &n), 1);
  assert_memory_equal(v, "ord_7", 5);
  assert_int_equal(gw_route_param(&s.routes[0], path, strlen(path), "i", &v, &n), 0);
  assert_int_equal(gw_route_param(&s.routes[0], "/users/x", 8, "id", &v, &n), 0);
  assert_int_equal(gw_route_param(&s.routes[1], "/x/1", 4, "id", &v, &n), 0); /* a prefix route */
}

static void test_unresolvable(void **state) {
  (void)state;
  /* a service with no port would have been refused by config_load; a
   * gateway section without routes is refused here */
  config_defaults(&cfg);
  char why[256];
  assert_int_equal(gw_settings_from_config(&cfg, &s, why, sizeof why), -1);
  assert_string_equal(why, "the gateway has no routes");
}

static int dots(const char *path) { return gw_path_has_dot_segment(path, strlen(path)); }

static void test_dot_segments(void **state) {
  (void)state;
  static const char *const refused[] = {"/.", "/..", "/a/.", "/a/..", "/./a", "/../a", "/a/./b",
                                        "/a/../b", "/%2e", "/%2E%2e/x", "/.%2e/x", "/a/..%2fb",
                                        "/a/..%2Fb", "/a%2f..%2fb", "/a/..%5cb", "/a\\..\\b",
                                        "/a/%2e%5c", "/public/..;/admin", "/..;", "/a/.;x/b",
                                        "/a/%2e%2e%3bx/b", "/a/..%3B/b"};
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
    if (!dots(refused[i]))
      fail_msg("%s passed", refused[i]);
  static const char *const fine[] = {"/", "", "/a", "/a/b/", "//a", "/...", "/a/.../b", "/..a",
                                     "/a..", "/.well-known/x", "/v1.2/x", "/%2e%2ex", "/%2", "/%",
                                     "/a%2fb", "/%2e%2e%2e", "/a;b/c", "/a/...;x", "/;/x"};
  for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++)
    if (dots(fine[i]))
      fail_msg("%s refused", fine[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pools_from_hosts_and_services),
      cmocka_unit_test(test_route_policies_inherit_defaults),
      cmocka_unit_test(test_matching),
      cmocka_unit_test(test_dot_segments),
      cmocka_unit_test(test_rewrite),
      cmocka_unit_test(test_route_param),
      cmocka_unit_test(test_unresolvable),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
