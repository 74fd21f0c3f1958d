/* Unit tests for src/gateway/identity.c.
 *
 * The signature is checked against an HMAC computed here independently
 * (OpenSSL's one-shot HMAC over the canonical string written out by hand),
 * so the format in identity.h is pinned, not just self-consistent. Then
 * every field is tampered with, the skew window is probed at its edges, and
 * the service-side check runs on a request built from the gateway's own
 * header lines. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../support.h"

#include "core/error.h"
#include "gateway/identity.h"
#include "http/http.h"

#define NOW 1700000000ull

static const char secret[] = "gateway-to-service-secret-0123456789";

static void expected_sig(const char *key, const char *canonical, char out[IDENTITY_SIGNATURE_SIZE]) {
  unsigned char mac[32];
  unsigned int n = 0;
  assert_non_null(HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)canonical,
                       strlen(canonical), mac, &n));
  assert_int_equal(n, 32);
  strcpy(out, "v1=");
  for (int i = 0; i < 32; i++)
    snprintf(out + 3 + 2 * i, 3, "%02x", mac[i]);
}

static int verify(const char *subject, const char *scopes, const char *method, const char *path,
                  const char *rid, const char *ts, const char *sig, uint64_t now) {
  return identity_verify(secret, subject, scopes, method, path, rid, ts, sig, now,
                         IDENTITY_DEFAULT_SKEW_S);
}

static void test_sign_matches_canonical_hmac(void **state) {
  (void)state;
  char sig[IDENTITY_SIGNATURE_SIZE], want[IDENTITY_SIGNATURE_SIZE];
  assert_int_equal(identity_sign(secret, "user-42", "orders:read users:read", "GET",
                                 "/api/orders/7", "req-1", NOW, sig), 0);
  expected_sig(secret,
               "v1\nuser-42\norders:read users:read\nGET\n/api/orders/7\nreq-1\n1700000000", want);
  assert_string_equal(sig, want);
  assert_int_equal(strlen(sig), IDENTITY_SIGNATURE_SIZE - 1);
  /* Anonymous: empty subject and scopes are part of the string as such. */
  assert_int_equal(identity_sign(secret, "", "", "POST", "/api/users", "r", 0, sig), 0);
  expected_sig(secret, "v1\n\n\nPOST\n/api/users\nr\n0", want);
  assert_string_equal(sig, want);
}

static void test_round_trip_and_tampering(void **state) {
  (void)state;
  char sig[IDENTITY_SIGNATURE_SIZE];
  assert_int_equal(identity_sign(secret, "user-42", "orders:read", "GET", "/api/orders/7",
                                 "req-1", NOW, sig), 0);
  assert_int_equal(verify("user-42", "orders:read", "GET", "/api/orders/7", "req-1",
                          "1700000000", sig, NOW), 0);
  /* Each field changed on its own. */
  assert_int_equal(verify("user-43", "orders:read", "GET", "/api/orders/7", "req-1",
                          "1700000000", sig, NOW), STRATA_EUNAUTHORIZED);
  assert_int_equal(verify("user-42", "orders:read orders:write", "GET", "/api/orders/7", "req-1",
                          "1700000000", sig, NOW), STRATA_EUNAUTHORIZED);
  assert_int_equal(verify("user-42", "", "GET", "/api/orders/7", "req-1", "1700000000", sig, NOW),
                   STRATA_EUNAUTHORIZED);
  assert_int_equal(verify("user-42", "orders:read", "DELETE", "/api/orders/7", "req-1",
                          "1700000000", sig, NOW), STRATA_EUNAUTHORIZED);
  assert_int_equal(verify("user-42", "orders:read", "GET", "/api/orders/8", "req-1",
                          "1700000000", sig, NOW), STRATA_EUNAUTHORIZED);
  assert_int_equal(verify("user-42", "orders:read", "GET", "/api/orders/7", "req-2",
                          "1700000000", sig, NOW), STRATA_EUNAUTHORIZED);
  assert_int_equal(verify("user-42", "orders:read", "GET", "/api/orders/7", "req-1",
                          "1700000001", sig, NOW), STRATA_EUNAUTHORIZED);
  /* Moving a byte between adjacent fields changes the string too. */
  assert_int_equal(verify("user-4", "2orders:read", "GET", "/api/orders/7", "req-1",
                          "1700000000", sig, NOW), STRATA_EUNAUTHORIZED);
  /* The signature itself. */
  char bad[IDENTITY_SIGNATURE_SIZE];
  for (size_t i = 3; i < IDENTITY_SIGNATURE_SIZE - 1; i += 9) {
    memcpy(bad, sig, sizeof bad);
    bad[i] = bad[i] == '0' ? '1' : '0';
    assert_int_equal(verify("user-42", "orders:read", "GET", "/api/orders/7", "req-1",
                            "1700000000", bad, NOW), STRATA_EUNAUTHORIZED);
  }
  memcpy(bad, sig, sizeof bad);
  bad[1] = '2'; /* v2= */
  assert_int_equal(verify("user-42", "orders:read", "GET", "/api/orders/7", "req-1", "1700000000",
                          bad, NOW), STRATA_EUNAUTHORIZED);
  char upper[IDENTITY_SIGNATURE_SIZE];
  memcpy(upper, sig, sizeof upper);
  for (char *p = upper + 3; *p; p++)
    if (*p >= 'a' && *p <= 'f')
      *p = (char)(*p - 32);
  if (strcmp(upper, sig) != 0)
    assert_int_equal(verify("user-42", "orders:read", "GET", "/api/orders/7", "req-1",
                            "1700000000", upper, NOW), STRATA_EUNAUTHORIZED);
  static const char *const malformed[] = {"", "v1=", "v1=abc", "deadbeef", NULL};
  for (size_t i = 0; malformed[i]; i++)
    assert_int_equal(verify("user-42", "orders:read", "GET", "/api/orders/7", "req-1",
                            "1700000000", malformed[i], NOW), STRATA_EUNAUTHORIZED);
  char longer[IDENTITY_SIGNATURE_SIZE + 2];
  snprintf(longer, sizeof longer, "%s0", sig);
  assert_int_equal(verify("user-42", "orders:read", "GET", "/api/orders/7", "req-1", "1700000000",
                          longer, NOW), STRATA_EUNAUTHORIZED);
  /* Another secret. */
  assert_int_equal(identity_verify("another-secret-of-thirty-two-bytes!!", "user-42",
                                   "orders:read", "GET", "/api/orders/7", "req-1", "1700000000",
                                   sig, NOW, 60), STRATA_EUNAUTHORIZED);
  /* Missing values. */
  assert_int_equal(verify(NULL, "orders:read", "GET", "/api/orders/7", "req-1", "1700000000", sig,
                          NOW), STRATA_EUNAUTHORIZED);
  assert_int_equal(verify("user-42", "orders:read", "GET", "/api/orders/7", "req-1", NULL, sig,
                          NOW), STRATA_EUNAUTHORIZED);
  assert_int_equal(verify("user-42", "orders:read", "GET", "/api/orders/7", "req-1", "1700000000",
                          NULL, NOW), STRATA_EUNAUTHORIZED);
}

static void test_skew_window(void **state) {
  (void)state;
  char sig[IDENTITY_SIGNATURE_SIZE];
  assert_int_equal(identity_sign(secret, "u", "", "GET", "/", "r", NOW, sig), 0);
  assert_int_equal(verify("u", "", "GET", "/", "r", "1700000000", sig, NOW + 60), 0);
  assert_int_equal(verify("u", "", "GET", "/", "r", "1700000000", sig, NOW - 60), 0);
  assert_int_equal(verify("u", "", "GET", "/", "r", "1700000000", sig, NOW + 61),
                   STRATA_EUNAUTHORIZED);
  assert_int_equal(verify("u", "", "GET", "/", "r", "1700000000", sig, NOW - 61),
                   STRATA_EUNAUTHORIZED);
  assert_int_equal(identity_verify(secret, "u", "", "GET", "/", "r", "1700000000", sig, NOW + 5,
                                   5), 0);
  assert_int_equal(identity_verify(secret, "u", "", "GET", "/", "r", "1700000000", sig, NOW + 6,
                                   5), STRATA_EUNAUTHORIZED);
  assert_int_equal(identity_verify(secret, "u", "", "GET", "/", "r", "1700000000", sig, NOW, 0),
                   0);
  /* Only the canonical decimal form of the time is accepted. */
  static const char *const times[] = {"01700000000", "+1700000000", "1700000000 ", "1.7e9",
                                      "", "-1", "99999999999999999999999", NULL};
  for (size_t i = 0; times[i]; i++)
    assert_int_equal(verify("u", "", "GET", "/", "r", times[i], sig, NOW), STRATA_EUNAUTHORIZED);
  /* Extremes do not overflow. */
  assert_int_equal(identity_sign(secret, "u", "", "GET", "/", "r", UINT64_MAX, sig), 0);
  assert_int_equal(identity_verify(secret, "u", "", "GET", "/", "r", "18446744073709551615", sig,
                                   0, 60), STRATA_EUNAUTHORIZED);
  assert_int_equal(identity_verify(secret, "u", "", "GET", "/", "r", "18446744073709551615", sig,
                                   UINT64_MAX, 60), 0);
}

static void test_fields_refused(void **state) {
  (void)state;
  char sig[IDENTITY_SIGNATURE_SIZE];
  char longsub[AUTH_SUBJECT_MAX + 2];
  memset(longsub, 's', sizeof longsub - 1);
  longsub[sizeof longsub - 1] = '\0';
  static const struct {
    const char *subject, *scopes, *method, *path, *rid;
  } bad[] = {
      {"a\nb", "", "GET", "/", "r"},      {"a b", "", "GET", "/", "r"},
      {"u", "a\nb", "GET", "/", "r"},     {"u", " a", "GET", "/", "r"},
      {"u", "a ", "GET", "/", "r"},       {"u", "a  b", "GET", "/", "r"},
      {"u", "a\"b", "GET", "/", "r"},     {"u", "", "", "/", "r"},
      {"u", "", "GE T", "/", "r"},        {"u", "", "GET\n", "/", "r"},
      {"u", "", "GET", "", "r"},          {"u", "", "GET", "/a\nb", "r"},
      {"u", "", "GET", "/a b", "r"},      {"u", "", "GET", "/", ""},
      {"u", "", "GET", "/", "r\n1"},      {"u", "", "GET", "/", "r 1"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(identity_sign(secret, bad[i].subject, bad[i].scopes, bad[i].method,
                                   bad[i].path, bad[i].rid, NOW, sig), STRATA_EVALIDATION);
    assert_string_equal(sig, "");
    assert_int_equal(verify(bad[i].subject, bad[i].scopes, bad[i].method, bad[i].path, bad[i].rid,
                            "1700000000", "v1=00", NOW), STRATA_EUNAUTHORIZED);
  }
  assert_int_equal(identity_sign(secret, longsub, "", "GET", "/", "r", NOW, sig),
                   STRATA_EVALIDATION);
  longsub[AUTH_SUBJECT_MAX] = '\0';
  assert_int_equal(identity_sign(secret, longsub, "", "GET", "/", "r", NOW, sig), 0);
  /* A short or missing secret is a configuration error. */
  assert_int_equal(identity_sign("short", "u", "", "GET", "/", "r", NOW, sig), STRATA_EINTERNAL);
  assert_int_equal(identity_sign(NULL, "u", "", "GET", "/", "r", NOW, sig), STRATA_EINTERNAL);
  assert_int_equal(identity_verify("short", "u", "", "GET", "/", "r", "1", "v1=", NOW, 60),
                   STRATA_EINTERNAL);
}

static void test_headers_and_reserved_names(void **state) {
  (void)state;
  struct auth_identity id = {.kind = AUTH_KIND_JWT, .subject = "user-42", .scopes = "a b"};
  char out[IDENTITY_HEADERS_MAX], sig[IDENTITY_SIGNATURE_SIZE], want[512];
  size_t n = identity_headers(secret, &id, "PUT", "/api/users/42", "rid-9", NOW, out, sizeof out);
  assert_int_equal(identity_sign(secret, "user-42", "a b", "PUT", "/api/users/42", "rid-9", NOW,
                                 sig), 0);
  snprintf(want, sizeof want,
           "X-Strata-Identity: user-42\r\nX-Strata-Scopes: a b\r\n"
           "X-Strata-Identity-Time: 1700000000\r\nX-Strata-Identity-Signature: %s\r\n", sig);
  assert_string_equal(out, want);
  assert_int_equal(n, strlen(want));
  assert_int_equal(identity_headers(secret, &id, "PUT", "/api/users/42", "rid-9", NOW, out, n), 0);
  assert_string_equal(out, "");
  assert_int_equal(identity_headers(secret, &id, "PUT", "/x y", "rid-9", NOW, out, sizeof out), 0);
  n = identity_headers(secret, NULL, "GET", "/", "r", NOW, out, sizeof out);
  assert_true(n > 0);
  assert_non_null(strstr(out, "X-Strata-Identity: \r\nX-Strata-Scopes: \r\n"));
  /* The longest identity fits IDENTITY_HEADERS_MAX. */
  memset(id.subject, 's', AUTH_SUBJECT_MAX);
  id.subject[AUTH_SUBJECT_MAX] = '\0';
  memset(id.scopes, 'c', AUTH_SCOPES_MAX);
  id.scopes[AUTH_SCOPES_MAX] = '\0';
  char rid[IDENTITY_REQUEST_ID_MAX + 1];
  memset(rid, 'r', IDENTITY_REQUEST_ID_MAX);
  rid[IDENTITY_REQUEST_ID_MAX] = '\0';
  assert_true(identity_headers(secret, &id, "OPTIONS", "/", rid, UINT64_MAX, out, sizeof out) > 0);

  static const char *const reserved[] = {"X-Strata-Identity", "x-strata-identity",
                                         "X-STRATA-SCOPES", "x-strata-identity-signature",
                                         "X-Strata-Identity-Time", "X-Strata-Identity-Whatever",
                                         NULL};
  for (size_t i = 0; reserved[i]; i++)
    assert_true(identity_is_reserved_header(reserved[i], strlen(reserved[i])));
  static const char *const free_names[] = {"X-Strata-Identit", "X-Strata-Scope", "X-Strata-Scopes2",
                                           "X-Request-Id", "Authorization", "", NULL};
  for (size_t i = 0; free_names[i]; i++)
    assert_false(identity_is_reserved_header(free_names[i], strlen(free_names[i])));
  /* The length given is what counts. */
  assert_false(identity_is_reserved_header("X-Strata-Identity", 10));
}

/* ---- service side ------------------------------------------------------ */

struct fake_request {
  struct http_request req;
  struct http_header headers[8];
  char block[2048];
};

/* A request as the server would hand it to a service: the header lines the
 * gateway produced, split into name and value. */
static void fake_from_lines(struct fake_request *f, const char *method, const char *path,
                            const char *rid, const char *lines) {
  memset(f, 0, sizeof *f);
  snprintf(f->block, sizeof f->block, "%s", lines);
  char *p = f->block;
  while (*p && f->req.n_headers < 8) {
    char *eol = strstr(p, "\r\n");
    assert_non_null(eol);
    char *colon = memchr(p, ':', (size_t)(eol - p));
    assert_non_null(colon);
    struct http_header *h = &f->headers[f->req.n_headers++];
    h->name = p;
    h->name_len = (size_t)(colon - p);
    const char *v = colon + 1;
    while (v < eol && *v == ' ')
      v++;
    h->value = v;
    h->value_len = (size_t)(eol - v);
    p = eol + 2;
  }
  f->req.method = method;
  f->req.method_len = strlen(method);
  f->req.path = path;
  f->req.path_len = strlen(path);
  f->req.request_id = rid;
  f->req.request_id_len = strlen(rid);
  f->req.headers = f->headers;
}

static void test_from_request(void **state) {
  (void)state;
  struct auth_identity id = {.kind = AUTH_KIND_API_KEY, .subject = "alpha", .scopes = "orders:read"};
  char lines[IDENTITY_HEADERS_MAX];
  assert_true(identity_headers(secret, &id, "GET", "/api/orders", "req-7", NOW, lines, sizeof lines) > 0);
  struct fake_request f;
  struct auth_identity out;

  fake_from_lines(&f, "GET", "/api/orders", "req-7", lines);
  assert_int_equal(identity_from_request(secret, &f.req, NOW + 3, 60, &out), 0);
  assert_int_equal(out.kind, AUTH_KIND_GATEWAY);
  assert_string_equal(out.subject, "alpha");
  assert_string_equal(out.scopes, "orders:read");
  assert_true(auth_has_scope(&out, "orders:read"));

  /* The same headers on another request, or too late. */
  fake_from_lines(&f, "GET", "/api/orders/9", "req-7", lines);
  assert_int_equal(identity_from_request(secret, &f.req, NOW, 60, &out), STRATA_EUNAUTHORIZED);
  assert_int_equal(out.kind, AUTH_KIND_NONE);
  fake_from_lines(&f, "POST", "/api/orders", "req-7", lines);
  assert_int_equal(identity_from_request(secret, &f.req, NOW, 60, &out), STRATA_EUNAUTHORIZED);
  fake_from_lines(&f, "GET", "/api/orders", "req-8", lines);
  assert_int_equal(identity_from_request(secret, &f.req, NOW, 60, &out), STRATA_EUNAUTHORIZED);
  fake_from_lines(&f, "GET", "/api/orders", "req-7", lines);
  assert_int_equal(identity_from_request(secret, &f.req, NOW + 61, 60, &out), STRATA_EUNAUTHORIZED);

  /* A header missing, or sent twice (a client copy the gateway would have
   * dropped), is refused. */
  for (unsigned skip = 0; skip < 4; skip++) {
    fake_from_lines(&f, "GET", "/api/orders", "req-7", lines);
    f.headers[skip] = f.headers[3];
    f.req.n_headers = 3;
    assert_int_equal(identity_from_request(secret, &f.req, NOW, 60, &out), STRATA_EUNAUTHORIZED);
  }
  char doubled[IDENTITY_HEADERS_MAX + 64];
  snprintf(doubled, sizeof doubled, "x-strata-identity: admin\r\n%s", lines);
  fake_from_lines(&f, "GET", "/api/orders", "req-7", doubled);
  assert_int_equal(identity_from_request(secret, &f.req, NOW, 60, &out), STRATA_EUNAUTHORIZED);
  /* A client forging the subject without the secret. */
  char forged[IDENTITY_HEADERS_MAX];
  snprintf(forged, sizeof forged, "%s", lines);
  memcpy(strstr(forged, "alpha"), "admin", 5);
  fake_from_lines(&f, "GET", "/api/orders", "req-7", forged);
  assert_int_equal(identity_from_request(secret, &f.req, NOW, 60, &out), STRATA_EUNAUTHORIZED);
  /* No identity headers at all. */
  fake_from_lines(&f, "GET", "/api/orders", "req-7", "Accept: */*\r\n");
  assert_int_equal(identity_from_request(secret, &f.req, NOW, 60, &out), STRATA_EUNAUTHORIZED);

  /* A signed anonymous request: it came through the gateway, nobody is
   * logged in. */
  assert_true(identity_headers(secret, NULL, "GET", "/api/orders", "req-7", NOW, lines, sizeof lines) > 0);
  fake_from_lines(&f, "GET", "/api/orders", "req-7", lines);
  assert_int_equal(identity_from_request(secret, &f.req, NOW, 60, &out), 0);
  assert_int_equal(out.kind, AUTH_KIND_NONE);
  assert_string_equal(out.subject, "");
}

/* Each thread keeps a context keyed with its last secret: switching secrets
 * (a config reload) and running many threads must not mix them up. */
struct signer {
  const char *secret;
  int bad;
};

static void *sign_many(void *arg) {
  struct signer *s = arg;
  char sig[IDENTITY_SIGNATURE_SIZE], want[IDENTITY_SIGNATURE_SIZE];
  const char *other = "a-different-secret-also-32-bytes-long";
  for (int i = 0; i < 300; i++) {
    const char *key = i % 3 == 2 ? other : s->secret;
    char canonical[128], rid[16];
    snprintf(rid, sizeof rid, "r%d", i);
    snprintf(canonical, sizeof canonical, "v1\nu\n\nGET\n/\n%s\n%d", rid, i);
    if (identity_sign(key, "u", "", "GET", "/", rid, (uint64_t)i, sig) != 0)
      s->bad++;
    unsigned char mac[32];
    unsigned int n = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)canonical, strlen(canonical),
         mac, &n);
    strcpy(want, "v1=");
    for (int j = 0; j < 32; j++)
      snprintf(want + 3 + 2 * j, 3, "%02x", mac[j]);
    if (strcmp(sig, want) != 0)
      s->bad++;
  }
  return NULL;
}

static void test_secrets_switch_and_threads(void **state) {
  (void)state;
  static const char *const secrets[] = {
      "thread-secret-number-one-0123456789",
      "thread-secret-number-two-0123456789",
      "thread-secret-number-one-0123456789x",
      "thread-secret-number-one-012345678",
  };
  struct signer s[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    s[i] = (struct signer){secrets[i], 0};
    assert_int_equal(pthread_create(&th[i], NULL, sign_many, &s[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(s[i].bad, 0);
  }
  struct signer here = {secret, 0};
  sign_many(&here);
  assert_int_equal(here.bad, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sign_matches_canonical_hmac),
      cmocka_unit_test(test_round_trip_and_tampering),
      cmocka_unit_test(test_skew_window),
      cmocka_unit_test(test_fields_refused),
      cmocka_unit_test(test_headers_and_reserved_names),
      cmocka_unit_test(test_from_request),
      cmocka_unit_test(test_secrets_switch_and_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
