/* Unit tests for src/http/json_body.c.
 *
 * json_body_decode() and json_body_depth() are tested directly; the
 * handler-facing helpers (415, 400 naming the field, unknown fields) are
 * driven through a real connection: a socketpair adopted by conn_open_fd()
 * on an unstarted worker, whose loop the test turns by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/error.h"
#include "http/internal.h"
#include "http/json_body.h"
#include "observe/log.h"

/* ---- decoding ----------------------------------------------------------- */

static int decode(const char *text, unsigned depth, char *why) {
  json_t *v = NULL;
  int rc = json_body_decode(text, strlen(text), depth, &v, why, 256);
  json_decref(v);
  return rc;
}

static void test_decode_ok(void **state) {
  (void)state;
  char why[256];
  assert_int_equal(decode("{\"a\":1,\"b\":[1,2,{\"c\":\"\\u00e9\"}]}", 8, why), 0);
  assert_int_equal(decode("  {}  ", 1, why), 0);
}

static void test_decode_errors(void **state) {
  (void)state;
  char why[256];
  assert_int_equal(decode("", 8, why), STRATA_EINVALID_JSON);
  assert_int_equal(decode("{\"a\":", 8, why), STRATA_EINVALID_JSON);
  assert_non_null(strstr(why, "line 1"));
  assert_int_equal(decode("{\"a\":1,\"a\":2}", 8, why), STRATA_EINVALID_JSON); /* duplicate key */
  assert_int_equal(decode("{\"a\":\"\\u0000\"}", 8, why), STRATA_EINVALID_JSON); /* NUL in string */
  assert_int_equal(decode("[1,2]", 8, why), STRATA_EVALIDATION);               /* not an object */
  assert_int_equal(decode("\"x\"", 8, why), STRATA_EVALIDATION);
  assert_int_equal(decode("{\"a\":1} trailing", 8, why), STRATA_EINVALID_JSON);
  assert_int_equal(decode("{\"n\":123456789012345678901234567890}", 8, why), STRATA_EINVALID_JSON);
}

static void test_invalid_utf8_rejected(void **state) {
  (void)state;
  char why[256];
  const char *bad[] = {"{\"a\":\"\xff\"}", "{\"a\":\"\xc3\x28\"}", "{\"a\":\"\xed\xa0\x80\"}",
                       "{\"a\":\"\xc0\xaf\"}", "{\"\x80\":1}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(decode(bad[i], 8, why), STRATA_EINVALID_JSON);
  assert_int_equal(decode("{\"a\":\"\xe2\x82\xac \xf0\x9f\x98\x80\"}", 8, why), 0);
}

static void test_depth(void **state) {
  (void)state;
  char why[256];
  assert_int_equal(json_body_depth("{\"a\":[{\"b\":[]}]}", 16, 100), 4);
  /* brackets inside strings do not count, escaped quotes do not end them */
  const char *s = "{\"a\":\"[[[[\\\"{{{{\"}";
  assert_int_equal(json_body_depth(s, strlen(s), 100), 1);
  assert_int_equal(decode("{\"a\":{\"b\":{\"c\":1}}}", 3, why), 0);
  assert_int_equal(decode("{\"a\":{\"b\":{\"c\":{}}}}", 3, why), STRATA_EINVALID_JSON);
  assert_non_null(strstr(why, "deeper than 3"));
  /* a deep bomb stops counting early and is refused, not parsed */
  char bomb[20001];
  memset(bomb, '[', 20000);
  bomb[20000] = '\0';
  assert_int_equal(decode(bomb, 32, why), STRATA_EINVALID_JSON);
}

/* ---- through a connection ----------------------------------------------- */

static struct http_server *server;
static struct router *router;

static void on_create(struct http_exchange *ex, void *data) {
  (void)data;
  json_t *body = http_json_body(ex);
  if (!body)
    return;
  static const char *const allowed[] = {"name", "email", "age", NULL};
  const char *name = NULL, *email = NULL;
  json_int_t age = -1;
  if (json_fields_only(ex, body, allowed) == 0 &&
      json_field_string(ex, body, "name", 1, 1, 10, &name) == 0 &&
      json_field_string(ex, body, "email", 0, 3, 100, &email) == 0 &&
      json_field_int(ex, body, "age", 0, 0, 150, &age) == 0) {
    json_t *out = json_pack("{s:s,s:s?,s:I}", "name", name, "email", email, "age", age);
    http_respond_json_value(ex, 201, out);
    json_decref(out);
  }
  json_decref(body);
}

static int setup(void **state) {
  (void)state;
  struct strata_config cfg;
  config_defaults(&cfg);
  cfg.http.max_json_depth = 4;
  router = router_new();
  router_add(router, "POST", "/people", on_create, NULL);
  server = http_server_new_unbound(&cfg, router);
  assert_non_null(server);
  assert_int_equal(worker_init(server, 0), 0);
  log_set_level(LOG_OFF);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  struct worker *w = &server->workers[0];
  uv_close((uv_handle_t *)&w->wakeup, NULL);
  uv_close((uv_handle_t *)&w->sweep, NULL);
  uv_close((uv_handle_t *)&w->flush, NULL);
  uv_close((uv_handle_t *)&w->listener, NULL);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  uv_loop_close(&w->loop);
  strbuf_free(&w->out);
  strbuf_free(&w->log);
  strbuf_free(&w->err_body);
  http_server_free(server);
  router_free(router);
  metrics_shutdown();
  return 0;
}

/* Sends one request with a JSON body and returns the whole response. */
static char *exchange(const char *content_type, const char *body, char *out, size_t cap) {
  struct worker *w = &server->workers[0];
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  assert_int_equal(conn_open_fd(w, sv[0]), 0);
  char req[4096];
  int n = snprintf(req, sizeof req,
                   "POST /people HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s%s%s"
                   "Content-Length: %zu\r\n\r\n%s",
                   content_type ? "Content-Type: " : "", content_type ? content_type : "",
                   content_type ? "\r\n" : "", strlen(body), body);
  assert_int_equal(write(sv[1], req, (size_t)n), n);
  shutdown(sv[1], SHUT_WR);
  size_t len = 0;
  for (int i = 0; i < 1000 && w->n_conns > 0; i++) {
    uv_run(&w->loop, UV_RUN_NOWAIT);
    ssize_t r;
    while ((r = read(sv[1], out + len, cap - 1 - len)) > 0)
      len += (size_t)r;
  }
  out[len] = '\0';
  close(sv[1]);
  assert_int_equal(w->n_conns, 0);
  return out;
}

static void expect(const char *ct, const char *body, const char *status, const char *needle) {
  char resp[8192];
  exchange(ct, body, resp, sizeof resp);
  if (strncmp(resp, status, strlen(status)) != 0 || (needle && !strstr(resp, needle)))
    fail_msg("body %s\nwanted %s ... %s\ngot: %s", body, status, needle ? needle : "", resp);
}

static void test_valid_body(void **state) {
  (void)state;
  expect("application/json", "{\"name\":\"Ada\",\"age\":36}", "HTTP/1.1 201",
         "{\"name\":\"Ada\",\"email\":null,\"age\":36}");
  expect("application/json; charset=utf-8", "{\"name\":\"Ada\"}", "HTTP/1.1 201", NULL);
  expect("application/merge-patch+json", "{\"name\":\"Ada\"}", "HTTP/1.1 201", NULL);
}

static void test_media_type(void **state) {
  (void)state;
  expect(NULL, "{\"name\":\"Ada\"}", "HTTP/1.1 415", "\"code\":\"unsupported_media_type\"");
  expect("text/plain", "{\"name\":\"Ada\"}", "HTTP/1.1 415", NULL);
  expect("application/jsonx", "{\"name\":\"Ada\"}", "HTTP/1.1 415", NULL);
}

static void test_field_errors_name_the_field(void **state) {
  (void)state;
  expect("application/json", "{}", "HTTP/1.1 400", "\"field\":\"name\"");
  expect("application/json", "{\"name\":5}", "HTTP/1.1 400", "\"field\":\"name\"");
  expect("application/json", "{\"name\":\"\"}", "HTTP/1.1 400", "\"field\":\"name\"");
  expect("application/json", "{\"name\":\"abcdefghijk\"}", "HTTP/1.1 400", "\"field\":\"name\"");
  expect("application/json", "{\"name\":\"a\",\"age\":\"3\"}", "HTTP/1.1 400", "\"field\":\"age\"");
  expect("application/json", "{\"name\":\"a\",\"age\":151}", "HTTP/1.1 400", "\"field\":\"age\"");
  expect("application/json", "{\"name\":\"a\",\"age\":1.5}", "HTTP/1.1 400", "\"field\":\"age\"");
  expect("application/json", "{\"name\":\"a\",\"email\":null}", "HTTP/1.1 400", "\"field\":\"email\"");
  expect("application/json", "{\"name\":\"a\",\"id\":\"x\"}", "HTTP/1.1 400", "\"field\":\"id\"");
  expect("application/json", "{\"name\":\"a\",\"id\":\"x\"}", "HTTP/1.1 400",
         "\"code\":\"validation_failed\"");
}

static void test_body_errors(void **state) {
  (void)state;
  expect("application/json", "{\"name\":", "HTTP/1.1 400", "\"code\":\"invalid_json\"");
  expect("application/json", "{\"name\":\"\xff\"}", "HTTP/1.1 400", "\"code\":\"invalid_json\"");
  expect("application/json", "{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}", "HTTP/1.1 400", "deeper than 4");
  expect("application/json", "[]", "HTTP/1.1 400", "\"code\":\"validation_failed\"");
  expect("application/json", "", "HTTP/1.1 400", "\"code\":\"invalid_json\"");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decode_ok),
      cmocka_unit_test(test_decode_errors),
      cmocka_unit_test(test_invalid_utf8_rejected),
      cmocka_unit_test(test_depth),
      cmocka_unit_test(test_valid_body),
      cmocka_unit_test(test_media_type),
      cmocka_unit_test(test_field_errors_name_the_field),
      cmocka_unit_test(test_body_errors),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
