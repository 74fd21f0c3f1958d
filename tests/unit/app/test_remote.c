/* Unit tests for src/app/remote.c: the request an internal call sends, what
 * an answer means to a client, and the callback contract (once, later,
 * never from inside remote_get) when nothing can be reached.
 *
 * The success paths, retries across instances, breakers and recovery run
 * against real processes in tests/integration/test_services.py; here a
 * loop, a closed port and a target hosted nowhere are enough. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/remote.h"
#include "core/error.h"
#include "gateway/identity.h"
#include "observe/log.h"
#include "observe/trace.h"

#define SECRET "0123456789abcdef0123456789abcdef-secret"

/* The value of header name in a request text, copied into out; NULL when absent. */
static const char *header(const char *req, const char *name, char *out, size_t cap) {
  size_t n = strlen(name);
  for (const char *p = strstr(req, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
    if (strncmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
      const char *v = p + 2 + n + 2, *end = strstr(v, "\r\n");
      snprintf(out, cap, "%.*s", (int)(end - v), v);
      return out;
    }
  }
  return NULL;
}

static void test_status_rc(void **state) {
  (void)state;
  assert_int_equal(remote_status_rc(200), 1);
  assert_int_equal(remote_status_rc(204), 1);
  assert_int_equal(remote_status_rc(404), 0);
  assert_int_equal(remote_status_rc(500), STRATA_EUNAVAILABLE);
  assert_int_equal(remote_status_rc(503), STRATA_EUNAVAILABLE);
  assert_int_equal(remote_status_rc(401), STRATA_EBAD_GATEWAY); /* secrets differ */
  assert_int_equal(remote_status_rc(400), STRATA_EBAD_GATEWAY);
  assert_int_equal(remote_status_rc(302), STRATA_EBAD_GATEWAY);
}

static void test_origin_without_request(void **state) {
  (void)state;
  struct remote_origin o;
  remote_origin_from(NULL, SECRET, 1000, &o);
  assert_true(request_id_valid(o.request_id, strlen(o.request_id)));
  assert_int_equal(o.trace.valid, 0);
  assert_int_equal(o.id.kind, AUTH_KIND_NONE);
  assert_true(o.deadline_ms == DEADLINE_NONE);
}

static void test_request_plain(void **state) {
  (void)state;
  struct remote_origin o;
  memset(&o, 0, sizeof o);
  strcpy(o.request_id, "req-1");
  assert_int_equal(trace_parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", 55,
                               &o.trace),
                   0);
  struct strbuf sb;
  strbuf_init(&sb, 0);
  assert_int_equal(remote_format_request(&sb, "/api/orders?userId=usr_1&limit=100",
                                         "127.0.0.1:8083", &o, UINT64_MAX, NULL, 0),
                   0);
  strbuf_putc(&sb, '\0');
  const char *req = sb.data;
  char v[128];
  assert_true(strncmp(req, "GET /api/orders?userId=usr_1&limit=100 HTTP/1.1\r\n", 48) == 0);
  assert_string_equal(header(req, "Host", v, sizeof v), "127.0.0.1:8083");
  assert_string_equal(header(req, "X-Request-Id", v, sizeof v), "req-1");
  /* the same trace, a new parent */
  assert_non_null(header(req, "traceparent", v, sizeof v));
  assert_true(strncmp(v, "00-0af7651916cd43dd8448eb211c80319c-", 36) == 0);
  assert_true(strstr(v, "b7ad6b7169203331") == NULL);
  assert_null(header(req, DEADLINE_HEADER, v, sizeof v)); /* no deadline: none sent */
  assert_null(header(req, IDENTITY_HEADER_SIGNATURE, v, sizeof v));
  assert_true(strcmp(req + strlen(req) - 4, "\r\n\r\n") == 0);
  strbuf_free(&sb);
}

static void test_request_signed_with_deadline(void **state) {
  (void)state;
  struct remote_origin o;
  memset(&o, 0, sizeof o);
  strcpy(o.request_id, "abc.DEF_9-z");
  o.id.kind = AUTH_KIND_GATEWAY;
  strcpy(o.id.subject, "alice");
  strcpy(o.id.scopes, "orders:read orders:write");
  struct strbuf sb;
  strbuf_init(&sb, 0);
  assert_int_equal(remote_format_request(&sb, "/api/orders?userId=usr_1", "h:1", &o, 750, SECRET,
                                         1700000000),
                   0);
  strbuf_putc(&sb, '\0');
  const char *req = sb.data;
  char dl[32], sub[64], scopes[64], ts[32], sig[IDENTITY_SIGNATURE_SIZE];
  assert_string_equal(header(req, DEADLINE_HEADER, dl, sizeof dl), "750");
  assert_non_null(header(req, IDENTITY_HEADER_SUBJECT, sub, sizeof sub));
  assert_non_null(header(req, IDENTITY_HEADER_SCOPES, scopes, sizeof scopes));
  assert_non_null(header(req, IDENTITY_HEADER_TIME, ts, sizeof ts));
  assert_non_null(header(req, IDENTITY_HEADER_SIGNATURE, sig, sizeof sig));
  assert_string_equal(sub, "alice");
  assert_string_equal(scopes, "orders:read orders:write");
  /* the receiver verifies over the path without its query */
  assert_int_equal(identity_verify(SECRET, sub, scopes, "GET", "/api/orders", "abc.DEF_9-z", ts,
                                   sig, 1700000000, 60),
                   0);
  assert_int_equal(identity_verify(SECRET, sub, scopes, "GET", "/api/orders/x", "abc.DEF_9-z", ts,
                                   sig, 1700000000, 60),
                   STRATA_EUNAUTHORIZED);
  strbuf_free(&sb);

  /* anonymous callers are signed as anonymous, not dropped */
  memset(&o.id, 0, sizeof o.id);
  strbuf_init(&sb, 0);
  assert_int_equal(remote_format_request(&sb, "/internal/orders/ord_1", "h:1", &o, 0, SECRET,
                                         1700000000),
                   0);
  strbuf_putc(&sb, '\0');
  assert_string_equal(header(sb.data, IDENTITY_HEADER_SUBJECT, sub, sizeof sub), "");
  assert_string_equal(header(sb.data, DEADLINE_HEADER, dl, sizeof dl), "0");
  assert_non_null(header(sb.data, IDENTITY_HEADER_TIME, ts, sizeof ts));
  assert_non_null(header(sb.data, IDENTITY_HEADER_SIGNATURE, sig, sizeof sig));
  assert_int_equal(identity_verify(SECRET, "", "", "GET", "/internal/orders/ord_1", "abc.DEF_9-z",
                                   ts, sig, 1700000000, 60),
                   0);
  strbuf_free(&sb);
}

/* ---- the callback contract, on a real loop ------------------------------ */

struct outcome {
  int calls;
  int rc;
  int status;
};

static void on_done(int rc, int status, const char *body, size_t len, void *arg) {
  (void)body;
  (void)len;
  struct outcome *o = arg;
  o->calls++;
  o->rc = rc;
  o->status = status;
}

/* A loopback port nothing listens on (bound, then closed). */
static uint16_t closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static void test_unreachable_fails_later_and_opens_the_breaker(void **state) {
  (void)state;
  log_set_level(LOG_OFF);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct remote_settings s;
  remote_settings_default(&s);
  struct topology_target t = {.service = "orders", .host = "127.0.0.1", .port = closed_port(),
                              .instances = 1};
  struct remote *r = remote_new(&loop, &s, &t, 1, NULL);
  assert_non_null(r);
  struct arena a;
  arena_init(&a, 1024);

  struct outcome first = {0};
  assert_int_equal(remote_get(r, 0, NULL, "/api/orders", &a, on_done, &first), 0);
  assert_int_equal(first.calls, 0); /* never from inside the call */
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(first.calls, 1);
  assert_int_equal(first.rc, STRATA_EUNAVAILABLE);
  assert_int_equal(first.status, 0);

  /* Each failed call was three refused connects; the breaker has seen
   * enough: now calls are refused without a connect, still later. */
  for (int i = 0; i < 2; i++) {
    struct outcome o = {0};
    assert_int_equal(remote_get(r, 0, NULL, "/api/orders", &a, on_done, &o), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.rc, STRATA_EUNAVAILABLE);
  }
  struct outcome fast = {0};
  assert_int_equal(remote_get(r, 0, NULL, "/api/orders", &a, on_done, &fast), 0);
  assert_int_equal(fast.calls, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(fast.calls, 1);
  assert_int_equal(fast.rc, STRATA_EUNAVAILABLE);

  /* a domain hosted nowhere */
  struct outcome none = {0};
  assert_int_equal(remote_get(r, -1, NULL, "/api/users/usr_1", &a, on_done, &none), 0);
  assert_int_equal(none.calls, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(none.calls, 1);
  assert_int_equal(none.rc, STRATA_EUNAVAILABLE);

  /* freed with a call in flight: the call still ends, once, later */
  struct outcome orphan = {0};
  assert_int_equal(remote_get(r, 0, NULL, "/api/orders", &a, on_done, &orphan), 0);
  remote_free(r);
  assert_int_equal(orphan.calls, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(orphan.calls, 1);
  assert_int_equal(orphan.rc, STRATA_EUNAVAILABLE);
  assert_int_equal(uv_loop_close(&loop), 0);
  arena_free(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_status_rc),
      cmocka_unit_test(test_origin_without_request),
      cmocka_unit_test(test_request_plain),
      cmocka_unit_test(test_request_signed_with_deadline),
      cmocka_unit_test(test_unreachable_fails_later_and_opens_the_breaker),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
