/* Unit tests for src/observe/health.c.
 *
 * The registry is process-wide, so every test starts from health_reset().
 * Checks are small fakes that return the status and detail they are told to
 * and count their calls; every document is parsed back with jansson, since
 * a load balancer reads it as JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "observe/health.h"

struct fake_check {
  enum health_status status;
  const char *detail; /* copied into the check's buffer; NULL leaves it empty */
  int calls;
};

static enum health_status on_check(void *ctx, char *detail, size_t detail_len) {
  struct fake_check *f = ctx;
  f->calls++;
  if (f->detail)
    snprintf(detail, detail_len, "%s", f->detail);
  return f->status;
}

static int reset(void **state) {
  (void)state;
  health_reset();
  return 0;
}

/* Writes the readiness document, checks the returned status against the one
 * in the JSON and returns the parsed document (caller decrefs). */
static json_t *ready(enum health_status *overall) {
  struct strbuf sb;
  json_error_t err;
  strbuf_init(&sb, 0);
  *overall = health_write_ready(&sb);
  assert_false(sb.failed);
  json_t *doc = json_loadb(sb.data, sb.len, 0, &err);
  if (!doc)
    fail_msg("readiness is not JSON (%s): %s", err.text, sb.data);
  strbuf_free(&sb);
  assert_true(json_is_object(doc));
  assert_string_equal(json_string_value(json_object_get(doc, "status")),
                      health_status_name(*overall));
  assert_true(json_is_object(json_object_get(doc, "checks")));
  return doc;
}

static const char *check_field(json_t *doc, const char *name, const char *field) {
  json_t *c = json_object_get(json_object_get(doc, "checks"), name);
  if (!c)
    fail_msg("check \"%s\" missing", name);
  json_t *v = json_object_get(c, field);
  return v ? json_string_value(v) : NULL;
}

static void test_status_names(void **state) {
  (void)state;
  assert_string_equal(health_status_name(HEALTH_UP), "up");
  assert_string_equal(health_status_name(HEALTH_DEGRADED), "degraded");
  assert_string_equal(health_status_name(HEALTH_DOWN), "down");
}

static void test_no_checks_is_up(void **state) {
  struct strbuf sb;
  (void)state;
  strbuf_init(&sb, 0);
  assert_int_equal(health_write_ready(&sb), HEALTH_UP);
  assert_string_equal(sb.data, "{\"status\":\"up\",\"checks\":{}}");
  strbuf_free(&sb);
  enum health_status s;
  json_t *doc = ready(&s);
  assert_int_equal(json_object_size(json_object_get(doc, "checks")), 0);
  json_decref(doc);
}

static void test_one_check_exact_output(void **state) {
  struct fake_check db = {HEALTH_UP, NULL, 0}, cache = {HEALTH_DEGRADED, "hit rate 12%", 0};
  struct strbuf sb;
  (void)state;
  assert_int_equal(health_register("db", on_check, &db), 0);
  strbuf_init(&sb, 0);
  strbuf_puts(&sb, "prefix:"); /* appends, keeping what is there */
  assert_int_equal(health_write_ready(&sb), HEALTH_UP);
  assert_string_equal(sb.data, "prefix:{\"status\":\"up\",\"checks\":{\"db\":{\"status\":\"up\"}}}");
  assert_int_equal(db.calls, 1);
  assert_int_equal(health_register("cache", on_check, &cache), 0);
  strbuf_clear(&sb);
  assert_int_equal(health_write_ready(&sb), HEALTH_DEGRADED);
  assert_string_equal(sb.data, "{\"status\":\"degraded\",\"checks\":{\"db\":{\"status\":\"up\"},"
                               "\"cache\":{\"status\":\"degraded\",\"detail\":\"hit rate 12%\"}}}");
  assert_int_equal(db.calls, 2);
  assert_int_equal(cache.calls, 1);
  strbuf_free(&sb);
}

static void test_degraded_wins_over_up(void **state) {
  struct fake_check a = {HEALTH_UP, NULL, 0}, b = {HEALTH_DEGRADED, "slow", 0},
                    c = {HEALTH_UP, "fine", 0};
  enum health_status s;
  (void)state;
  health_register("a", on_check, &a);
  health_register("b", on_check, &b);
  health_register("c", on_check, &c);
  json_t *doc = ready(&s);
  assert_int_equal(s, HEALTH_DEGRADED);
  assert_string_equal(check_field(doc, "a", "status"), "up");
  assert_null(check_field(doc, "a", "detail")); /* empty detail: no field */
  assert_string_equal(check_field(doc, "b", "status"), "degraded");
  assert_string_equal(check_field(doc, "b", "detail"), "slow");
  assert_string_equal(check_field(doc, "c", "detail"), "fine");
  json_decref(doc);
}

static void test_down_wins_over_degraded(void **state) {
  struct fake_check a = {HEALTH_DEGRADED, NULL, 0}, b = {HEALTH_DOWN, "no connection", 0},
                    c = {HEALTH_UP, NULL, 0};
  enum health_status s;
  (void)state;
  health_register("degraded-first", on_check, &a);
  health_register("down", on_check, &b);
  health_register("up-last", on_check, &c);
  json_t *doc = ready(&s);
  assert_int_equal(s, HEALTH_DOWN);
  assert_string_equal(check_field(doc, "down", "status"), "down");
  assert_string_equal(check_field(doc, "degraded-first", "status"), "degraded");
  json_decref(doc);
  /* Order does not matter: down first, degraded after. */
  health_reset();
  health_register("down", on_check, &b);
  health_register("degraded", on_check, &a);
  doc = ready(&s);
  assert_int_equal(s, HEALTH_DOWN);
  json_decref(doc);
  /* Status follows the checks as they change. */
  b.status = HEALTH_UP;
  doc = ready(&s);
  assert_int_equal(s, HEALTH_DEGRADED);
  json_decref(doc);
  a.status = HEALTH_UP;
  doc = ready(&s);
  assert_int_equal(s, HEALTH_UP);
  json_decref(doc);
}

static void test_detail_and_name_escaped(void **state) {
  struct fake_check a = {HEALTH_DOWN, "said \"no\" at C:\\db\n\ttab\x01\x1f end", 0};
  struct fake_check b = {HEALTH_DEGRADED, "bad bytes \xff\xc0\x80 and \xed\xa0\x80, good \xc3\xa9", 0};
  struct fake_check c = {HEALTH_UP, "}]},\"status\":\"up\"", 0};
  enum health_status s;
  (void)state;
  health_register("quote\"and\\slash", on_check, &a);
  health_register("utf8", on_check, &b);
  health_register("inject", on_check, &c);
  json_t *doc = ready(&s);
  assert_int_equal(s, HEALTH_DOWN);
  assert_string_equal(check_field(doc, "quote\"and\\slash", "detail"),
                      "said \"no\" at C:\\db\n\ttab\x01\x1f end");
  assert_string_equal(check_field(doc, "utf8", "detail"),
                      "bad bytes \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd and "
                      "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd, good \xc3\xa9");
  assert_string_equal(check_field(doc, "inject", "detail"), "}]},\"status\":\"up\"");
  assert_int_equal(json_object_size(json_object_get(doc, "checks")), 3);
  json_decref(doc);
}

static void test_long_detail_and_name(void **state) {
  char longest[300], name[100];
  struct fake_check a = {HEALTH_DEGRADED, longest, 0};
  enum health_status s;
  (void)state;
  memset(longest, '"', sizeof longest - 1); /* worst case for escaping */
  longest[sizeof longest - 1] = '\0';
  memset(name, 'n', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  assert_int_equal(health_register(name, on_check, &a), 0);
  json_t *doc = ready(&s);
  json_t *checks = json_object_get(doc, "checks");
  assert_int_equal(json_object_size(checks), 1);
  /* The name is cut to what the registry holds, the detail to its buffer. */
  const char *key = json_object_iter_key(json_object_iter(checks));
  assert_true(strlen(key) > 0 && strlen(key) < sizeof name - 1);
  assert_memory_equal(key, name, strlen(key));
  const char *detail = json_string_value(json_object_get(json_object_get(checks, key), "detail"));
  assert_non_null(detail);
  assert_true(strlen(detail) > 0 && strlen(detail) < 256);
  json_decref(doc);
}

static void test_reset_forgets_checks(void **state) {
  struct fake_check a = {HEALTH_DOWN, "x", 0};
  enum health_status s;
  (void)state;
  health_register("a", on_check, &a);
  json_t *doc = ready(&s);
  assert_int_equal(s, HEALTH_DOWN);
  json_decref(doc);
  health_reset();
  struct strbuf sb;
  strbuf_init(&sb, 0);
  assert_int_equal(health_write_ready(&sb), HEALTH_UP);
  assert_string_equal(sb.data, "{\"status\":\"up\",\"checks\":{}}");
  strbuf_free(&sb);
  assert_int_equal(a.calls, 1); /* not asked after the reset */
  health_reset();               /* twice is harmless */
  /* Registering again after a reset works. */
  health_register("b", on_check, &a);
  doc = ready(&s);
  assert_int_equal(s, HEALTH_DOWN);
  assert_string_equal(check_field(doc, "b", "status"), "down");
  assert_int_equal(json_object_size(json_object_get(doc, "checks")), 1);
  json_decref(doc);
}

static void test_registry_full(void **state) {
  struct fake_check up = {HEALTH_UP, NULL, 0};
  char name[16];
  int n = 0;
  enum health_status s;
  (void)state;
  for (;;) {
    snprintf(name, sizeof name, "check%d", n);
    if (health_register(name, on_check, &up) != 0)
      break;
    n++;
    assert_true(n <= 1000);
  }
  assert_true(n >= 16);
  assert_int_equal(health_register("more", on_check, &up), -1);
  json_t *doc = ready(&s);
  assert_int_equal(s, HEALTH_UP);
  assert_int_equal(json_object_size(json_object_get(doc, "checks")), (size_t)n);
  assert_int_equal(up.calls, n);
  json_decref(doc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_status_names, reset),
      cmocka_unit_test_setup(test_no_checks_is_up, reset),
      cmocka_unit_test_setup(test_one_check_exact_output, reset),
      cmocka_unit_test_setup(test_degraded_wins_over_up, reset),
      cmocka_unit_test_setup(test_down_wins_over_degraded, reset),
      cmocka_unit_test_setup(test_detail_and_name_escaped, reset),
      cmocka_unit_test_setup(test_long_detail_and_name, reset),
      cmocka_unit_test_setup(test_reset_forgets_checks, reset),
      cmocka_unit_test_setup(test_registry_full, reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
