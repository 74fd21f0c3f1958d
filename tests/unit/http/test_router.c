/* Unit tests for src/http/router.c.
 *
 * Routes are told apart by their data pointer (a label string), so every
 * assertion says which route answered. Paths are passed with an explicit
 * length and, where it matters, with bytes after that length, because the
 * server hands the router a path that is not NUL-terminated where the query
 * starts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/error.h"
#include "http/router.h"
#include "observe/metrics.h"

static void on_request(struct http_exchange *ex, void *data) {
  (void)ex;
  (void)data;
}

static void on_other(struct http_exchange *ex, void *data) {
  (void)ex;
  (void)data;
}

static void add(struct router *r, const char *method, const char *pattern, const char *label) {
  if (router_add(r, method, pattern, on_request, (void *)label) != 0)
    fail_msg("router_add(%s, %s) failed", method, pattern);
}

/* Leaves stale bytes on the stack where router_match() will keep its
 * temporaries, so a field it forgets to set does not read as zero. */
static void __attribute__((noinline)) dirty_stack(void) {
  volatile unsigned char junk[4096];
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = 0xA5;
}

/* Matches with a route_match full of junk, as on a reused stack. */
static int match(const struct router *r, const char *method, const char *path,
                 struct route_match *m) {
  memset(m, 0x5A, sizeof *m);
  dirty_stack();
  return router_match(r, method, strlen(method), path, strlen(path), m);
}

/* method + path must reach the route labelled `label`. */
static void expect_route(const struct router *r, const char *method, const char *path,
                         const char *label, struct route_match *m) {
  int rc = match(r, method, path, m);
  if (rc != 0)
    fail_msg("%s %s: rc %d, expected route %s", method, path, rc, label);
  if (m->data != (void *)label)
    fail_msg("%s %s: reached %s, expected %s", method, path, (const char *)m->data, label);
  assert_ptr_equal(m->handler, on_request);
}

static void expect_rc(const struct router *r, const char *method, const char *path, int want) {
  struct route_match m;
  int rc = match(r, method, path, &m);
  if (rc != want)
    fail_msg("%s %s: rc %d, expected %d", method, path, rc, want);
}

static void expect_param(const struct route_match *m, unsigned i, const char *name,
                         const char *raw) {
  assert_true(i < m->n_params);
  assert_string_equal(m->params[i].name, name);
  if (m->params[i].raw_len != strlen(raw) || memcmp(m->params[i].raw, raw, strlen(raw)) != 0)
    fail_msg("param %s: \"%.*s\", expected \"%s\"", name, (int)m->params[i].raw_len,
             m->params[i].raw, raw);
}

static void test_literal_routes(void **state) {
  struct router *r = router_new();
  struct route_match m;
  (void)state;
  add(r, "GET", "/health", "health");
  add(r, "GET", "/users", "users");
  add(r, "GET", "/users/list", "users-list");
  add(r, "POST", "/a/b/c/d", "deep");
  expect_route(r, "GET", "/health", "health", &m);
  assert_string_equal(m.pattern, "/health");
  assert_int_equal(m.n_params, 0);
  assert_int_equal(m.metrics_id, metrics_route_id("/health"));
  expect_route(r, "GET", "/users", "users", &m);
  expect_route(r, "GET", "/users/list", "users-list", &m);
  assert_string_equal(m.pattern, "/users/list");
  expect_route(r, "POST", "/a/b/c/d", "deep", &m);
  expect_rc(r, "GET", "/nope", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "/user", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "/userss", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "/users/list/x", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "/a/b/c", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "/HEALTH", STRATA_ENOT_FOUND); /* paths are case-sensitive */
  expect_rc(r, "GET", "health", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "*", STRATA_ENOT_FOUND);
  router_free(r);
}

static void test_path_length_is_respected(void **state) {
  struct router *r = router_new();
  struct route_match m;
  (void)state;
  add(r, "GET", "/users", "users");
  add(r, "GET", "/users/:id", "user");
  /* The query is still in the buffer, past path_len. */
  const char *target = "/users?limit=5";
  assert_int_equal(router_match(r, "GET", 3, target, 6, &m), 0);
  assert_ptr_equal(m.data, "users");
  const char *t2 = "/users/42?x=/y";
  assert_int_equal(router_match(r, "GET", 3, t2, 9, &m), 0);
  assert_ptr_equal(m.data, "user");
  expect_param(&m, 0, "id", "42");
  /* The method too is taken by length. */
  assert_int_equal(router_match(r, "GETX", 3, "/users", 6, &m), 0);
  router_free(r);
}

static void test_param_capture(void **state) {
  struct router *r = router_new();
  struct route_match m;
  (void)state;
  add(r, "GET", "/users/:id", "user");
  add(r, "GET", "/orgs/:org/users/:user", "org-user");
  add(r, "DELETE", "/:a/:b/:c/:d/:e/:f/:g/:h", "eight");
  expect_route(r, "GET", "/users/42", "user", &m);
  assert_int_equal(m.n_params, 1);
  expect_param(&m, 0, "id", "42");
  assert_string_equal(m.pattern, "/users/:id");
  /* Raw: still percent-encoded, nothing decoded or normalised. */
  expect_route(r, "GET", "/users/a%20b%2Fc", "user", &m);
  expect_param(&m, 0, "id", "a%20b%2Fc");
  expect_route(r, "GET", "/users/..", "user", &m);
  expect_param(&m, 0, "id", "..");
  expect_route(r, "GET", "/users/:id", "user", &m);
  expect_param(&m, 0, "id", ":id");
  expect_route(r, "GET", "/orgs/acme/users/bob", "org-user", &m);
  assert_int_equal(m.n_params, 2);
  expect_param(&m, 0, "org", "acme");
  expect_param(&m, 1, "user", "bob");
  expect_route(r, "DELETE", "/1/2/3/4/5/6/7/8", "eight", &m);
  assert_int_equal(m.n_params, 8);
  expect_param(&m, 0, "a", "1");
  expect_param(&m, 7, "h", "8");
  /* A parameter is one whole, non-empty segment. */
  expect_rc(r, "GET", "/users/", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "/users/42/", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "/users/42/x", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "/orgs//users/bob", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "/orgs/acme/users/", STRATA_ENOT_FOUND);
  /* A failed candidate's captures do not leak into the answer. */
  add(r, "GET", "/p/:x/literal", "p-literal");
  add(r, "GET", "/p/other", "p-other");
  expect_route(r, "GET", "/p/other", "p-other", &m);
  assert_int_equal(m.n_params, 0);
  router_free(r);
}

static void test_trailing_star(void **state) {
  struct router *r = router_new();
  struct route_match m;
  (void)state;
  add(r, "GET", "/static/*", "static");
  add(r, "GET", "/files/:bucket/*", "files");
  expect_route(r, "GET", "/static/app.js", "static", &m);
  assert_int_equal(m.n_params, 0);
  expect_route(r, "GET", "/static/a/b/c.css", "static", &m);
  assert_int_equal(m.n_params, 0);
  expect_route(r, "GET", "/static/", "static", &m);
  assert_int_equal(m.n_params, 0);
  expect_rc(r, "GET", "/staticx", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "/stati", STRATA_ENOT_FOUND);
  expect_route(r, "GET", "/files/b1/k/e/y", "files", &m);
  assert_int_equal(m.n_params, 1);
  expect_param(&m, 0, "bucket", "b1");
  expect_rc(r, "GET", "/files//k", STRATA_ENOT_FOUND);
  router_free(r);

  /* "/<star>" takes every path, the root included; earlier routes still win. */
  r = router_new();
  add(r, "GET", "/health", "health");
  add(r, "*", "/*", "catch-all");
  expect_route(r, "GET", "/health", "health", &m);
  expect_route(r, "GET", "/", "catch-all", &m);
  expect_route(r, "GET", "/anything/at/all", "catch-all", &m);
  expect_route(r, "POST", "/health", "catch-all", &m);
  assert_int_equal(m.n_params, 0);
  router_free(r);
}

static void test_first_added_wins(void **state) {
  struct router *r = router_new();
  struct route_match m;
  (void)state;
  add(r, "GET", "/users/:id", "by-id");
  add(r, "GET", "/users/me", "me");
  add(r, "GET", "/users/:name", "by-name");
  expect_route(r, "GET", "/users/me", "by-id", &m);
  expect_param(&m, 0, "id", "me");
  router_free(r);

  r = router_new();
  add(r, "GET", "/users/me", "me");
  add(r, "GET", "/users/:id", "by-id");
  expect_route(r, "GET", "/users/me", "me", &m);
  assert_int_equal(m.n_params, 0);
  expect_route(r, "GET", "/users/you", "by-id", &m);
  router_free(r);

  /* The same pattern twice: the first keeps it. */
  r = router_new();
  add(r, "GET", "/x", "first");
  add(r, "GET", "/x", "second");
  expect_route(r, "GET", "/x", "first", &m);
  /* A method-specific route after an any-method one never wins. */
  add(r, "*", "/y", "any");
  add(r, "PUT", "/y", "put");
  expect_route(r, "PUT", "/y", "any", &m);
  router_free(r);
}

static void test_any_method(void **state) {
  struct router *r = router_new();
  struct route_match m;
  (void)state;
  add(r, "*", "/any", "any");
  static const char *const methods[] = {"GET", "HEAD", "POST", "DELETE", "OPTIONS", "BREW"};
  for (unsigned i = 0; i < sizeof methods / sizeof methods[0]; i++)
    expect_route(r, methods[i], "/any", "any", &m);
  router_free(r);
}

static void test_streaming_routes(void **state) {
  struct router *r = router_new();
  struct route_match m;
  (void)state;
  add(r, "GET", "/health", "health");
  assert_false(router_streams(r));
  assert_int_equal(router_add_streaming(r, "*", "/*", on_request, (void *)"proxy", 12345), 0);
  assert_true(router_streams(r));
  expect_route(r, "GET", "/health", "health", &m);
  assert_false(m.streaming); /* a plain route, whatever junk was there */
  expect_route(r, "POST", "/upload", "proxy", &m);
  assert_true(m.streaming);
  assert_int_equal(m.max_body, 12345);
  expect_route(r, "HEAD", "/health", "health", &m); /* GET fallback keeps its kind */
  assert_false(m.streaming);
  router_free(r);
}

static void expect_405(const struct router *r, const char *method, const char *path,
                       const char *allow) {
  struct route_match m;
  int rc = match(r, method, path, &m);
  if (rc != STRATA_EMETHOD_NOT_ALLOWED)
    fail_msg("%s %s: rc %d, expected 405", method, path, rc);
  if (strcmp(m.allow, allow) != 0)
    fail_msg("%s %s: Allow \"%s\", expected \"%s\"", method, path, m.allow, allow);
}

static void test_404_vs_405(void **state) {
  struct router *r = router_new();
  (void)state;
  add(r, "GET", "/items", "list");
  add(r, "POST", "/items", "create");
  add(r, "PUT", "/items/:id", "replace");
  add(r, "DELETE", "/items/:id", "delete");
  add(r, "PATCH", "/items/special", "patch-special");
  add(r, "POST", "/only-post", "only-post");
  add(r, "GET", "/g", "g1");
  add(r, "GET", "/g", "g2");
  add(r, "HEAD", "/g", "g-head");
  expect_405(r, "DELETE", "/items", "GET, HEAD, POST");
  expect_405(r, "PUT", "/items", "GET, HEAD, POST");
  expect_405(r, "get", "/items", "GET, HEAD, POST"); /* methods are case-sensitive */
  expect_405(r, "GET", "/items/7", "PUT, DELETE");
  /* Routes with different patterns that all match the path count. */
  expect_405(r, "GET", "/items/special", "PUT, DELETE, PATCH");
  expect_405(r, "GET", "/only-post", "POST");
  expect_405(r, "HEAD", "/only-post", "POST");
  /* Each method once, whatever the number of routes. */
  expect_405(r, "POST", "/g", "GET, HEAD");
  /* No pattern matches the path: 404, whatever the method. */
  expect_rc(r, "GET", "/items/7/x", STRATA_ENOT_FOUND);
  expect_rc(r, "DELETE", "/nothing", STRATA_ENOT_FOUND);
  router_free(r);

  /* The order of the list follows the order routes were added. */
  r = router_new();
  add(r, "POST", "/o", "post");
  add(r, "GET", "/o", "get");
  add(r, "OPTIONS", "/o", "options");
  expect_405(r, "PUT", "/o", "POST, GET, HEAD, OPTIONS");
  router_free(r);
}

static void test_405_allow_list_bounded(void **state) {
  struct router *r = router_new();
  struct route_match m;
  char name[16];
  (void)state;
  /* Far more methods than m.allow can hold: the list is cut, never
   * overflowed, and holds whole names only. */
  for (int i = 0; i < 30; i++) {
    snprintf(name, sizeof name, "METHOD%09d", i);
    assert_int_equal(router_add(r, name, "/busy", on_other, NULL), 0);
  }
  assert_int_equal(match(r, "GET", "/busy", &m), STRATA_EMETHOD_NOT_ALLOWED);
  size_t len = strnlen(m.allow, sizeof m.allow);
  assert_true(len < sizeof m.allow);
  assert_true(len > 0);
  assert_memory_equal(m.allow, "METHOD000000000, METHOD000000001", 32);
  assert_int_equal(m.allow[len - 1] >= '0' && m.allow[len - 1] <= '9', 1);
  router_free(r);
}

static void test_head_falls_back_to_get(void **state) {
  struct router *r = router_new();
  struct route_match m;
  (void)state;
  add(r, "GET", "/page", "page-get");
  add(r, "GET", "/u/:id", "u-get");
  add(r, "GET", "/v", "v-get");
  add(r, "HEAD", "/v", "v-head");
  add(r, "POST", "/w", "w-post");
  expect_route(r, "HEAD", "/page", "page-get", &m);
  assert_string_equal(m.pattern, "/page");
  assert_int_equal(m.metrics_id, metrics_route_id("/page"));
  assert_int_equal(m.n_params, 0);
  expect_route(r, "HEAD", "/u/7", "u-get", &m);
  assert_int_equal(m.n_params, 1);
  expect_param(&m, 0, "id", "7");
  /* An explicit HEAD route wins over the GET one, even added later. */
  expect_route(r, "HEAD", "/v", "v-head", &m);
  expect_route(r, "GET", "/v", "v-get", &m);
  /* No GET to fall back to. */
  expect_405(r, "HEAD", "/w", "POST");
  expect_rc(r, "HEAD", "/none", STRATA_ENOT_FOUND);
  /* Only HEAD falls back: no other method borrows GET routes. */
  expect_405(r, "OPTIONS", "/page", "GET, HEAD");
  router_free(r);

  /* Among GET routes, the first added wins for HEAD too. */
  r = router_new();
  add(r, "GET", "/users/:id", "by-id");
  add(r, "GET", "/users/me", "me");
  expect_route(r, "HEAD", "/users/me", "by-id", &m);
  expect_param(&m, 0, "id", "me");
  router_free(r);
}

static void test_trailing_slash_distinct(void **state) {
  struct router *r = router_new();
  struct route_match m;
  (void)state;
  add(r, "GET", "/a", "no-slash");
  add(r, "GET", "/a/", "slash");
  expect_route(r, "GET", "/a", "no-slash", &m);
  expect_route(r, "GET", "/a/", "slash", &m);
  expect_rc(r, "GET", "/a//", STRATA_ENOT_FOUND);
  router_free(r);

  r = router_new();
  add(r, "GET", "/a", "no-slash");
  expect_rc(r, "GET", "/a/", STRATA_ENOT_FOUND);
  router_free(r);

  r = router_new();
  add(r, "GET", "/a/", "slash");
  expect_rc(r, "GET", "/a", STRATA_ENOT_FOUND);
  router_free(r);

  r = router_new();
  add(r, "GET", "/users/:id/", "user-slash");
  expect_route(r, "GET", "/users/1/", "user-slash", &m);
  expect_param(&m, 0, "id", "1");
  expect_rc(r, "GET", "/users/1", STRATA_ENOT_FOUND);
  router_free(r);
}

static void test_root(void **state) {
  struct router *r = router_new();
  struct route_match m;
  (void)state;
  add(r, "GET", "/", "root");
  expect_route(r, "GET", "/", "root", &m);
  assert_int_equal(m.n_params, 0);
  assert_string_equal(m.pattern, "/");
  expect_route(r, "HEAD", "/", "root", &m);
  expect_rc(r, "GET", "/x", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "//", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "", STRATA_ENOT_FOUND);
  expect_405(r, "POST", "/", "GET, HEAD");
  router_free(r);
}

static void test_malformed_patterns_rejected(void **state) {
  static const char *const bad[] = {
      "",          "users",        "*",          ":id",        "/users/:",   "/:",
      "/:/x",      "/a/*/b",       "/*/x",       "/a/*/",      "/*/",
      "/:a/:b/:c/:d/:e/:f/:g/:h/:i", /* nine parameters */
  };
  struct router *r = router_new();
  struct route_match m;
  (void)state;
  for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (router_add(r, "GET", bad[i], on_request, NULL) != -1)
      fail_msg("pattern \"%s\" accepted", bad[i]);
  /* A method name must fit. */
  assert_int_equal(router_add(r, "ABCDEFGHIJKLMNOP", "/m", on_request, NULL), -1);
  assert_int_equal(router_add(r, "ABCDEFGHIJKLMNO", "/m", on_request, (void *)"m"), 0);
  /* Nothing half-added: only /m exists. */
  expect_rc(r, "GET", "/users", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "/a/x/b", STRATA_ENOT_FOUND);
  expect_rc(r, "GET", "/1/2/3/4/5/6/7/8/9", STRATA_ENOT_FOUND);
  expect_route(r, "ABCDEFGHIJKLMNO", "/m", "m", &m);
  /* Patterns that look odd but are well-formed literals. */
  assert_int_equal(router_add(r, "GET", "/a*", on_request, (void *)"a-star"), 0);
  assert_int_equal(router_add(r, "GET", "/x:y", on_request, (void *)"x-colon"), 0);
  assert_int_equal(router_add(r, "GET", "/*x", on_request, (void *)"star-x"), 0);
  expect_route(r, "GET", "/a*", "a-star", &m);
  expect_rc(r, "GET", "/ab", STRATA_ENOT_FOUND);
  expect_route(r, "GET", "/x:y", "x-colon", &m);
  expect_route(r, "GET", "/*x", "star-x", &m);
  router_free(r);
}

static void test_many_routes(void **state) {
  struct router *r = router_new();
  struct route_match m;
  static char labels[100][16];
  char pattern[32], path[32];
  (void)state;
  /* More than the initial table, so it grows while routes are added. */
  for (int i = 0; i < 100; i++) {
    snprintf(labels[i], sizeof labels[i], "r%d", i);
    snprintf(pattern, sizeof pattern, "/r%d/:id", i);
    add(r, i % 2 ? "POST" : "GET", pattern, labels[i]);
  }
  for (int i = 0; i < 100; i++) {
    snprintf(path, sizeof path, "/r%d/v%d", i, i);
    expect_route(r, i % 2 ? "POST" : "GET", path, labels[i], &m);
    snprintf(pattern, sizeof pattern, "/r%d/:id", i);
    assert_string_equal(m.pattern, pattern);
    snprintf(path, sizeof path, "v%d", i);
    expect_param(&m, 0, "id", path);
  }
  router_free(r);
  router_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_literal_routes),
      cmocka_unit_test(test_path_length_is_respected),
      cmocka_unit_test(test_param_capture),
      cmocka_unit_test(test_trailing_star),
      cmocka_unit_test(test_first_added_wins),
      cmocka_unit_test(test_any_method),
      cmocka_unit_test(test_streaming_routes),
      cmocka_unit_test(test_404_vs_405),
      cmocka_unit_test(test_405_allow_list_bounded),
      cmocka_unit_test(test_head_falls_back_to_get),
      cmocka_unit_test(test_trailing_slash_distinct),
      cmocka_unit_test(test_root),
      cmocka_unit_test(test_malformed_patterns_rejected),
      cmocka_unit_test(test_many_routes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
