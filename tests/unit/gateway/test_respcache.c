/* Unit tests for src/gateway/respcache.c.
 *
 * The cache takes time as arguments (a wall clock for the policy, a
 * monotonic one for everything else), so every test states exact
 * milliseconds: the last one at which a response is fresh, the first at
 * which it is stale, the last at which stale-if-error may still use it, the
 * Age it is served with. Coalescing is driven by hand: a leader, waiters
 * with recording callbacks, then store / flight_done / tick, checking that
 * every waiter is answered exactly once and never from inside the call that
 * made it wait. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../support.h"

#include "core/error.h"
#include "gateway/respcache.h"

#define T0 1000000ull             /* monotonic clock, not at zero */
#define EPOCH 1700000000000ull    /* wall clock: Tue, 14 Nov 2023 22:13:20 GMT */
#define DATE_NOW "Tue, 14 Nov 2023 22:13:20 GMT"
#define DATE_MINUS_10 "Tue, 14 Nov 2023 22:13:10 GMT"
#define DATE_MINUS_40 "Tue, 14 Nov 2023 22:12:40 GMT"
#define DATE_PLUS_50 "Tue, 14 Nov 2023 22:14:10 GMT"

#define HDR(n, v) {n, v, sizeof(n) - 1, sizeof(v) - 1}
#define COUNT(a) ((unsigned)(sizeof(a) / sizeof((a)[0])))

static const char KEY[] = "GET\nexample.com\n/items?page=1";
#define KLEN (sizeof KEY - 1)

/* ---- helpers ------------------------------------------------------------ */

static struct respcache *make(size_t max_bytes, size_t max_entries, unsigned max_waiters,
                              uint32_t wait_ms, uint32_t flight_ms) {
  struct respcache_limits l;
  respcache_limits_default(&l);
  if (max_bytes)
    l.max_bytes = max_bytes;
  if (max_entries)
    l.max_entries = max_entries;
  l.max_waiters = max_waiters;
  if (wait_ms)
    l.wait_timeout_ms = wait_ms;
  if (flight_ms)
    l.flight_timeout_ms = flight_ms;
  struct respcache *c = respcache_new(&l);
  assert_non_null(c);
  return c;
}

static struct respcache *make_default(void) { return make(0, 0, 64, 0, 0); }

static struct respcache_policy policy_at(int status, const struct http_header *h, unsigned n,
                                         uint64_t delay_ms, const struct respcache_route *route) {
  struct respcache_policy p;
  int rc = respcache_policy_from_response(status, h, n, EPOCH, delay_ms, route, &p);
  assert_int_equal(rc, p.storable);
  return p;
}

static struct respcache_policy policy(int status, const struct http_header *h, unsigned n,
                                      const struct respcache_route *route) {
  return policy_at(status, h, n, 0, route);
}

static struct respcache_request request(const struct http_header *h, unsigned n) {
  struct respcache_request rq;
  respcache_request_init(&rq, "GET", h, n, 0);
  return rq;
}

/* Stores body under key for rq, with the policy of (status, h); returns
 * what respcache_store() returned. */
static int store_at(struct respcache *c, const char *key, const struct respcache_request *rq,
                    int status, const struct http_header *h, unsigned n, const char *body,
                    uint64_t now) {
  struct respcache_policy p = policy(status, h, n, NULL);
  return respcache_store(c, key, strlen(key), rq, &p, status, "Fine", 4, h, n, body, strlen(body),
                         now);
}

static enum respcache_result lookup(struct respcache *c, const char *key,
                                    const struct respcache_request *rq, uint64_t now,
                                    struct respcache_hit *hit) {
  return respcache_lookup_or_join(c, key, strlen(key), rq, now, NULL, NULL, hit);
}

static void assert_body(const struct respcache_hit *hit, const char *body) {
  assert_int_equal(hit->body_len, strlen(body));
  assert_memory_equal(hit->body, body, hit->body_len);
}

/* What a waiter's callback saw. */
struct rec {
  int calls;
  int order;
  enum respcache_result r;
  enum respcache_status status;
  int http_status;
  uint64_t age_s;
  char body[64];
  /* optional re-entry: on FETCH, look the key up again on this cache */
  struct respcache *reenter;
  const struct respcache_request *reenter_rq;
  enum respcache_result reenter_result;
};

static int call_order;

static void on_wait(enum respcache_result r, const struct respcache_hit *hit, void *arg) {
  struct rec *x = arg;
  x->calls++;
  x->order = ++call_order;
  x->r = r;
  if (r == RESPCACHE_HIT) {
    assert_non_null(hit);
    x->status = hit->status;
    x->http_status = hit->http_status;
    x->age_s = hit->age_s;
    assert_true(hit->body_len < sizeof x->body);
    memcpy(x->body, hit->body, hit->body_len);
    x->body[hit->body_len] = '\0';
  } else {
    assert_null(hit);
  }
  if (x->reenter && r == RESPCACHE_FETCH) {
    struct respcache_hit h2;
    x->reenter_result = respcache_lookup_or_join(x->reenter, KEY, KLEN, x->reenter_rq, T0 + 1,
                                                 on_wait, x, &h2);
  }
}

static enum respcache_result join(struct respcache *c, const struct respcache_request *rq,
                                  uint64_t now, struct rec *x) {
  struct respcache_hit hit;
  return respcache_lookup_or_join(c, KEY, KLEN, rq, now, on_wait, x, &hit);
}

static struct respcache_stats stats(const struct respcache *c) {
  struct respcache_stats s;
  respcache_stats_get(c, &s);
  return s;
}

/* ---- keys and requests -------------------------------------------------- */

static void test_key(void **state) {
  (void)state;
  char a[128], b[128];
  size_t n = respcache_key(a, sizeof a, "GET", "Example.COM", 11, "/items", 6, "page=1", 6);
  assert_int_equal(n, KLEN);
  assert_string_equal(a, KEY);
  /* HEAD shares GET's entry */
  assert_int_equal(respcache_key(b, sizeof b, "HEAD", "example.com", 11, "/items", 6, "page=1", 6),
                   n);
  assert_string_equal(a, b);
  /* no query: no '?' */
  n = respcache_key(a, sizeof a, "GET", "h", 1, "/p", 2, "", 0);
  assert_string_equal(a, "GET\nh\n/p");
  /* a different target is a different key */
  respcache_key(b, sizeof b, "GET", "h", 1, "/p", 2, "x", 1);
  assert_string_not_equal(a, b);
  /* http's default port is the same origin; another port is not */
  respcache_key(b, sizeof b, "GET", "H:80", 4, "/p", 2, "", 0);
  assert_string_equal(a, b);
  respcache_key(b, sizeof b, "GET", "h:8080", 6, "/p", 2, "", 0);
  assert_string_equal(b, "GET\nh:8080\n/p");
  /* not cacheable methods; too small a buffer (exactly fitting is fine) */
  assert_int_equal(respcache_key(a, sizeof a, "POST", "h", 1, "/p", 2, "", 0), 0);
  assert_int_equal(respcache_key(a, sizeof a, "get", "h", 1, "/p", 2, "", 0), 0);
  assert_int_equal(respcache_key(a, n, "GET", "h", 1, "/p", 2, "", 0), 0);
  assert_int_equal(respcache_key(a, n + 1, "GET", "h", 1, "/p", 2, "", 0), n);
  /* no Host (HTTP/1.0) */
  assert_int_equal(respcache_key(a, sizeof a, "GET", NULL, 0, "/p", 2, NULL, 0), 7);
  assert_string_equal(a, "GET\n\n/p");
}

static unsigned flags_of(const char *method, const struct http_header *h, unsigned n, int authn) {
  struct respcache_request rq;
  respcache_request_init(&rq, method, h, n, authn);
  return rq.flags;
}

static void test_request_flags(void **state) {
  (void)state;
  assert_int_equal(flags_of("GET", NULL, 0, 0), 0);
  assert_int_equal(flags_of("HEAD", NULL, 0, 0), RESPCACHE_REQ_NO_LEAD | RESPCACHE_REQ_NO_STORE);
  assert_int_equal(flags_of("POST", NULL, 0, 0), RESPCACHE_REQ_BYPASS | RESPCACHE_REQ_NO_STORE);
  assert_int_equal(flags_of("DELETE", NULL, 0, 0), RESPCACHE_REQ_BYPASS | RESPCACHE_REQ_NO_STORE);

  const struct http_header nc[] = {HDR("Cache-Control", "No-Cache")};
  assert_int_equal(flags_of("GET", nc, 1, 0), RESPCACHE_REQ_BYPASS); /* may still store */
  const struct http_header ns[] = {HDR("cache-control", "no-store")};
  assert_int_equal(flags_of("GET", ns, 1, 0), RESPCACHE_REQ_BYPASS | RESPCACHE_REQ_NO_STORE);
  const struct http_header ma0[] = {HDR("Cache-Control", "max-age=0")};
  assert_int_equal(flags_of("GET", ma0, 1, 0), RESPCACHE_REQ_BYPASS);
  const struct http_header ma30[] = {HDR("Cache-Control", "max-age=30")};
  struct respcache_request rq;
  respcache_request_init(&rq, "GET", ma30, 1, 0);
  assert_int_equal(rq.flags, RESPCACHE_REQ_MAX_AGE);
  assert_int_equal(rq.max_age_ms, 30000);

  const struct http_header pragma[] = {HDR("Pragma", "no-cache")};
  assert_int_equal(flags_of("GET", pragma, 1, 0), RESPCACHE_REQ_BYPASS);
  const struct http_header pragma_cc[] = {HDR("Pragma", "no-cache"),
                                          HDR("Cache-Control", "max-age=30")};
  assert_int_equal(flags_of("GET", pragma_cc, 2, 0), RESPCACHE_REQ_MAX_AGE);

  const struct http_header authz[] = {HDR("Authorization", "Bearer x")};
  assert_int_equal(flags_of("GET", authz, 1, 0), RESPCACHE_REQ_AUTH);
  assert_int_equal(flags_of("GET", NULL, 0, 1), RESPCACHE_REQ_AUTH);

  const struct http_header range[] = {HDR("Range", "bytes=0-9")};
  assert_int_equal(flags_of("GET", range, 1, 0), RESPCACHE_REQ_BYPASS | RESPCACHE_REQ_NO_STORE);
  const struct http_header im[] = {HDR("If-Match", "\"a\"")};
  assert_int_equal(flags_of("GET", im, 1, 0), RESPCACHE_REQ_BYPASS | RESPCACHE_REQ_NO_STORE);
  const struct http_header inm[] = {HDR("If-None-Match", "\"a\"")};
  assert_int_equal(flags_of("GET", inm, 1, 0), RESPCACHE_REQ_NO_LEAD);
  const struct http_header ims[] = {HDR("If-Modified-Since", DATE_NOW)};
  assert_int_equal(flags_of("GET", ims, 1, 0), RESPCACHE_REQ_NO_LEAD);
}

/* ---- response policy ---------------------------------------------------- */

static void test_policy_max_age_and_s_maxage(void **state) {
  (void)state;
  const struct http_header ma[] = {HDR("Cache-Control", "max-age=60")};
  struct respcache_policy p = policy(200, ma, 1, NULL);
  assert_true(p.storable);
  assert_int_equal(p.from, RESPCACHE_FRESH_MAX_AGE);
  assert_int_equal(p.lifetime_ms, 60000);
  assert_int_equal(p.initial_age_ms, 0);
  assert_false(p.shared_ok);

  /* s-maxage wins for a shared cache, wherever it stands */
  const struct http_header s1[] = {HDR("Cache-Control", "max-age=60, s-maxage=10")};
  const struct http_header s2[] = {HDR("Cache-Control", "s-maxage=10"),
                                   HDR("Cache-Control", "max-age=60")};
  const struct http_header s3[] = {HDR("Cache-Control", "s-maxage=10"),
                                   HDR("Expires", DATE_PLUS_50), HDR("Date", DATE_NOW)};
  const struct http_header *ss[] = {s1, s2, s3};
  const unsigned ns[] = {1, 2, 3};
  for (int i = 0; i < 3; i++) {
    p = policy(200, ss[i], ns[i], NULL);
    assert_int_equal(p.from, RESPCACHE_FRESH_S_MAXAGE);
    assert_int_equal(p.lifetime_ms, 10000);
    assert_true(p.shared_ok); /* RFC 9111 3.5 */
  }
  /* max-age beats Expires */
  const struct http_header me[] = {HDR("Expires", DATE_PLUS_50), HDR("Cache-Control", "max-age=5")};
  p = policy(200, me, 2, NULL);
  assert_int_equal(p.from, RESPCACHE_FRESH_MAX_AGE);
  assert_int_equal(p.lifetime_ms, 5000);

  /* syntax: case, quotes, spaces, several lines, first occurrence wins */
  const struct http_header q[] = {HDR("cache-control", "public"),
                                  HDR("CACHE-CONTROL", " MAX-AGE=\"7\" , max-age=50")};
  p = policy(200, q, 2, NULL);
  assert_int_equal(p.lifetime_ms, 7000);
  assert_true(p.shared_ok);
  /* an unknown directive with a quoted comma does not split the list */
  const struct http_header ext[] = {HDR("Cache-Control", "ext=\"a, max-age=1\", max-age=9")};
  assert_int_equal(policy(200, ext, 1, NULL).lifetime_ms, 9000);
  /* overflow saturates at 2^31 s (RFC 9111 1.2.2) */
  const struct http_header big[] = {HDR("Cache-Control", "max-age=99999999999999999999999")};
  assert_int_equal(policy(200, big, 1, NULL).lifetime_ms, 2147483648ull * 1000);

  /* an invalid max-age means stale, and the route's ttl does not apply:
   * the upstream did say something */
  struct respcache_route route = {30000, 0};
  const struct http_header bad[] = {HDR("Cache-Control", "max-age=abc")};
  p = policy(200, bad, 1, &route);
  assert_false(p.storable);
  assert_int_equal(p.from, RESPCACHE_FRESH_MAX_AGE);
  assert_int_equal(p.lifetime_ms, 0);
  assert_string_equal(p.why, "expired");
  const struct http_header zero[] = {HDR("Cache-Control", "max-age=0")};
  p = policy(200, zero, 1, &route);
  assert_false(p.storable);
  assert_string_equal(p.why, "expired");
}

static void test_policy_expires_and_date(void **state) {
  (void)state;
  /* Expires - Date, not Expires - now: the upstream's clock is its own */
  const struct http_header ed[] = {HDR("Date", DATE_MINUS_10), HDR("Expires", DATE_PLUS_50)};
  struct respcache_policy p = policy(200, ed, 2, NULL);
  assert_true(p.storable);
  assert_int_equal(p.from, RESPCACHE_FRESH_EXPIRES);
  assert_int_equal(p.lifetime_ms, 60000);
  assert_int_equal(p.initial_age_ms, 10000); /* apparent age */

  /* Expires between Date and now: fresh for (Expires - Date), and already
   * older than that on arrival (usable for errors only) */
  struct respcache_route sie20 = {0, 20000};
  const struct http_header old[] = {HDR("Date", DATE_MINUS_40), HDR("Expires", DATE_MINUS_10)};
  p = policy(200, old, 2, &sie20);
  assert_true(p.storable);
  assert_int_equal(p.lifetime_ms, 30000);
  assert_int_equal(p.initial_age_ms, 40000);

  /* no Date: the time received stands in */
  const struct http_header e[] = {HDR("Expires", DATE_PLUS_50)};
  p = policy(200, e, 1, NULL);
  assert_int_equal(p.lifetime_ms, 50000);
  assert_int_equal(p.initial_age_ms, 0);

  /* the obsolete date forms (RFC 850, asctime) */
  const struct http_header rfc850[] = {HDR("Date", "Tuesday, 14-Nov-23 22:13:10 GMT"),
                                       HDR("Expires", DATE_PLUS_50)};
  p = policy(200, rfc850, 2, NULL);
  assert_int_equal(p.lifetime_ms, 60000);
  assert_int_equal(p.initial_age_ms, 10000);
  const struct http_header asc[] = {HDR("Date", "Tue Nov 14 22:13:10 2023"),
                                    HDR("Expires", "Tue Nov 14 22:14:10 2023")};
  p = policy(200, asc, 2, NULL);
  assert_int_equal(p.lifetime_ms, 60000);
  assert_int_equal(p.initial_age_ms, 10000);

  /* an invalid Date is ignored */
  const struct http_header bad_date[] = {HDR("Date", "yesterday"), HDR("Expires", DATE_PLUS_50)};
  p = policy(200, bad_date, 2, NULL);
  assert_int_equal(p.lifetime_ms, 50000);
  assert_int_equal(p.initial_age_ms, 0);

  /* Expires: 0, an invalid date or one in the past: already expired, and
   * the route's ttl does not revive it; its stale window still applies */
  struct respcache_route route = {30000, 0};
  const char *const past[] = {"0", "soon", DATE_MINUS_10};
  for (int i = 0; i < 3; i++) {
    struct http_header h[] = {HDR("Date", DATE_NOW), {"Expires", past[i], 7, strlen(past[i])}};
    p = policy(200, h, 2, &route);
    assert_false(p.storable);
    assert_int_equal(p.from, RESPCACHE_FRESH_EXPIRES);
    assert_int_equal(p.lifetime_ms, 0);
  }
  struct respcache_route sie_route = {30000, 20000};
  const struct http_header zero[] = {HDR("Expires", "0")};
  p = policy(200, zero, 1, &sie_route);
  assert_true(p.storable);
  assert_int_equal(p.lifetime_ms, 0);
  assert_int_equal(p.stale_if_error_ms, 20000);
}

static void test_policy_route_ttl_and_statuses(void **state) {
  (void)state;
  struct respcache_route route = {30000, 0};
  /* the upstream says nothing: the route's ttl */
  struct respcache_policy p = policy(200, NULL, 0, &route);
  assert_true(p.storable);
  assert_int_equal(p.from, RESPCACHE_FRESH_ROUTE);
  assert_int_equal(p.lifetime_ms, 30000);
  /* nothing from either: not stored */
  p = policy(200, NULL, 0, NULL);
  assert_false(p.storable);
  assert_string_equal(p.why, "no-freshness");
  /* heuristically cacheable statuses take the route's ttl */
  const int heuristic[] = {200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501};
  for (unsigned i = 0; i < COUNT(heuristic); i++) {
    p = policy(heuristic[i], NULL, 0, &route);
    assert_true(p.storable);
    assert_int_equal(p.lifetime_ms, 30000);
  }
  /* others only with explicit freshness */
  const struct http_header ma[] = {HDR("Cache-Control", "max-age=60")};
  const int explicit_only[] = {302, 307, 400, 403, 409, 451};
  for (unsigned i = 0; i < COUNT(explicit_only); i++) {
    p = policy(explicit_only[i], NULL, 0, &route);
    assert_false(p.storable);
    assert_string_equal(p.why, "no-explicit-freshness");
    assert_true(policy(explicit_only[i], ma, 1, &route).storable);
  }
  /* and some never */
  const int never[] = {100, 101, 206, 304, 500, 502, 503, 504, 599, 600};
  for (unsigned i = 0; i < COUNT(never); i++) {
    p = policy(never[i], ma, 1, &route);
    assert_false(p.storable);
    assert_string_equal(p.why, "status");
  }
}

static void test_policy_refusals(void **state) {
  (void)state;
  struct respcache_route route = {30000, 60000};
  static const struct {
    const char *name, *value, *why;
  } cases[] = {
      {"Cache-Control", "no-store, max-age=60", "no-store"},
      {"Cache-Control", "max-age=60, private", "private"},
      {"Cache-Control", "private=\"X-User\", max-age=60", "private"},
      {"Cache-Control", "public, no-cache", "no-cache"},
      {"Cache-Control", "no-cache=\"Set-Cookie\", max-age=60", "no-cache"},
      {"Set-Cookie", "sid=1", "set-cookie"},
      {"set-cookie2", "sid=1", "set-cookie"},
      {"Vary", "*", "vary-star"},
      {"Vary", "Accept, *", "vary-star"},
      {"Vary", "a, b, c, d, e, f, g, h, i", "vary-too-long"},
  };
  for (unsigned i = 0; i < COUNT(cases); i++) {
    struct http_header h[] = {HDR("Cache-Control", "public, max-age=60"),
                              {cases[i].name, cases[i].value, strlen(cases[i].name),
                               strlen(cases[i].value)}};
    struct respcache_policy p = policy(200, h, 2, &route);
    assert_false(p.storable);
    assert_string_equal(p.why, cases[i].why);
  }
  /* eight Vary names are fine */
  const struct http_header eight[] = {HDR("Vary", "a, b, c, d, e, f, g, h")};
  assert_true(policy(200, eight, 1, &route).storable);
}

static void test_policy_stale_if_error(void **state) {
  (void)state;
  struct respcache_route route = {0, 5000};
  const struct http_header up[] = {HDR("Cache-Control", "max-age=10, stale-if-error=30")};
  struct respcache_policy p = policy(200, up, 1, &route);
  assert_int_equal(p.stale_if_error_ms, 30000); /* the upstream's wins */
  const struct http_header ma[] = {HDR("Cache-Control", "max-age=10")};
  assert_int_equal(policy(200, ma, 1, &route).stale_if_error_ms, 5000); /* route default */
  assert_int_equal(policy(200, ma, 1, NULL).stale_if_error_ms, 0);
  const struct http_header bad[] = {HDR("Cache-Control", "max-age=10, stale-if-error=x")};
  assert_int_equal(policy(200, bad, 1, &route).stale_if_error_ms, 5000); /* ignored */

  /* must-revalidate and proxy-revalidate forbid stale answers altogether */
  const struct http_header mr[] = {HDR("Cache-Control", "max-age=10, stale-if-error=30"),
                                   HDR("Cache-Control", "must-revalidate")};
  p = policy(200, mr, 2, &route);
  assert_int_equal(p.stale_if_error_ms, 0);
  assert_true(p.shared_ok);
  const struct http_header pr[] = {HDR("Cache-Control", "max-age=10, proxy-revalidate")};
  assert_int_equal(policy(200, pr, 1, &route).stale_if_error_ms, 0);
  /* s-maxage implies proxy-revalidate: no route default, but an explicit
   * stale-if-error from the same upstream stands */
  const struct http_header sm[] = {HDR("Cache-Control", "s-maxage=10")};
  assert_int_equal(policy(200, sm, 1, &route).stale_if_error_ms, 0);
  const struct http_header sms[] = {HDR("Cache-Control", "s-maxage=10, stale-if-error=20")};
  assert_int_equal(policy(200, sms, 1, &route).stale_if_error_ms, 20000);

  /* only a stale window: stored for errors, never fresh */
  p = policy(200, NULL, 0, &route);
  assert_true(p.storable);
  assert_int_equal(p.from, RESPCACHE_FRESH_NONE);
  assert_int_equal(p.lifetime_ms, 0);
  assert_int_equal(p.stale_if_error_ms, 5000);
}

static void test_policy_age_arithmetic(void **state) {
  (void)state;
  /* corrected_age_value = Age + response_delay beats the apparent age */
  const struct http_header a[] = {HDR("Date", DATE_MINUS_10), HDR("Age", "30"),
                                  HDR("Cache-Control", "max-age=100")};
  struct respcache_policy p = policy_at(200, a, 3, 2000, NULL);
  assert_int_equal(p.initial_age_ms, 32000);
  /* ...and the apparent age beats it when larger */
  const struct http_header b[] = {HDR("Date", DATE_MINUS_40), HDR("Age", "30"),
                                  HDR("Cache-Control", "max-age=100")};
  assert_int_equal(policy_at(200, b, 3, 2000, NULL).initial_age_ms, 40000);
  /* a Date ahead of us (skew) gives no negative age */
  const struct http_header c[] = {HDR("Date", DATE_PLUS_50), HDR("Cache-Control", "max-age=100")};
  assert_int_equal(policy_at(200, c, 2, 1500, NULL).initial_age_ms, 1500);
  /* Age: a list counts its first member; an invalid one is ignored */
  const struct http_header d[] = {HDR("Age", "5, 7"), HDR("Cache-Control", "max-age=100")};
  assert_int_equal(policy(200, d, 2, NULL).initial_age_ms, 5000);
  const struct http_header e[] = {HDR("Age", "-3"), HDR("Cache-Control", "max-age=100")};
  assert_int_equal(policy(200, e, 2, NULL).initial_age_ms, 0);

  /* already past every window on arrival: not stored */
  const struct http_header f9[] = {HDR("Age", "9"), HDR("Cache-Control", "max-age=10")};
  const struct http_header f10[] = {HDR("Age", "10"), HDR("Cache-Control", "max-age=10")};
  assert_true(policy(200, f9, 2, NULL).storable);
  struct respcache_policy p10 = policy(200, f10, 2, NULL);
  assert_false(p10.storable);
  assert_string_equal(p10.why, "expired");
  struct respcache_route route = {0, 5000};
  const struct http_header f14[] = {HDR("Age", "14"), HDR("Cache-Control", "max-age=10")};
  const struct http_header f15[] = {HDR("Age", "15"), HDR("Cache-Control", "max-age=10")};
  assert_true(policy(200, f14, 2, &route).storable);
  assert_false(policy(200, f15, 2, &route).storable);
}

/* ---- lookups ------------------------------------------------------------ */

static void test_fresh_hit_and_age(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_request rq = request(NULL, 0);
  struct respcache_hit hit;
  const struct http_header h[] = {HDR("Content-Type", "application/json"), HDR("Age", "5"),
                                  HDR("Cache-Control", "max-age=60")};
  assert_int_equal(lookup(c, KEY, &rq, T0, &hit), RESPCACHE_FETCH);
  assert_int_equal(hit.status, RESPCACHE_STATUS_MISS);
  assert_int_equal(store_at(c, KEY, &rq, 203, h, COUNT(h), "{\"a\":1}", T0), 1);

  assert_int_equal(lookup(c, KEY, &rq, T0 + 1999, &hit), RESPCACHE_HIT);
  assert_int_equal(hit.status, RESPCACHE_STATUS_HIT);
  assert_int_equal(hit.http_status, 203);
  assert_true(hit.reason_len == 4 && memcmp(hit.reason, "Fine", 4) == 0); /* kept as sent */
  assert_int_equal(hit.age_s, 6); /* 5 s received + 1.999 s resident, floored */
  assert_body(&hit, "{\"a\":1}");
  assert_int_equal(hit.n_headers, 2); /* Age is the cache's to send */

  /* fresh while current_age < lifetime: the last fresh ms, then stale */
  assert_int_equal(lookup(c, KEY, &rq, T0 + 54999, &hit), RESPCACHE_HIT);
  assert_int_equal(hit.age_s, 59);
  assert_int_equal(lookup(c, KEY, &rq, T0 + 55000, &hit), RESPCACHE_FETCH);
  assert_int_equal(hit.status, RESPCACHE_STATUS_EXPIRED);
  assert_null(hit.body);

  struct respcache_stats s = stats(c);
  assert_int_equal(s.hits, 2);
  assert_int_equal(s.misses, 2);
  assert_int_equal(s.stores, 1);
  /* no stale window: the expired lookup dropped it */
  assert_int_equal(s.entries, 0);
  assert_int_equal(s.expirations, 1);
  assert_int_equal(s.bytes, 0);
  respcache_free(c);
}

static void test_stale_if_error_window(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_request rq = request(NULL, 0);
  struct respcache_hit hit;
  const struct http_header h[] = {HDR("Cache-Control", "max-age=10, stale-if-error=20")};
  assert_int_equal(store_at(c, KEY, &rq, 200, h, 1, "old", T0), 1);

  assert_int_equal(lookup(c, KEY, &rq, T0 + 9999, &hit), RESPCACHE_HIT);
  assert_int_equal(lookup(c, KEY, &rq, T0 + 10000, &hit), RESPCACHE_FETCH);
  assert_int_equal(hit.status, RESPCACHE_STATUS_EXPIRED);
  /* the error path: a fresh response while there is one... */
  assert_int_equal(respcache_lookup_stale(c, KEY, KLEN, &rq, T0 + 9999, &hit), RESPCACHE_HIT);
  assert_int_equal(hit.status, RESPCACHE_STATUS_HIT);
  /* ...then the stale one, for stale-if-error seconds after it turned stale */
  assert_int_equal(respcache_lookup_stale(c, KEY, KLEN, &rq, T0 + 10000, &hit), RESPCACHE_HIT);
  assert_int_equal(hit.status, RESPCACHE_STATUS_STALE);
  assert_int_equal(hit.age_s, 10);
  assert_body(&hit, "old");
  assert_int_equal(respcache_lookup_stale(c, KEY, KLEN, &rq, T0 + 29999, &hit), RESPCACHE_HIT);
  assert_int_equal(hit.status, RESPCACHE_STATUS_STALE);
  assert_int_equal(hit.age_s, 29);
  assert_int_equal(stats(c).entries, 1);
  assert_int_equal(respcache_lookup_stale(c, KEY, KLEN, &rq, T0 + 30000, &hit), RESPCACHE_FETCH);
  struct respcache_stats s = stats(c);
  assert_int_equal(s.stale_served, 2);
  assert_int_equal(s.expirations, 1);
  assert_int_equal(s.entries, 0);

  /* must-revalidate: never served stale */
  const struct http_header mr[] = {HDR("Cache-Control", "max-age=10, stale-if-error=20, must-revalidate")};
  assert_int_equal(store_at(c, KEY, &rq, 200, mr, 1, "strict", T0), 1);
  assert_int_equal(respcache_lookup_stale(c, KEY, KLEN, &rq, T0 + 9999, &hit), RESPCACHE_HIT);
  assert_int_equal(respcache_lookup_stale(c, KEY, KLEN, &rq, T0 + 10000, &hit), RESPCACHE_FETCH);
  respcache_free(c);
}

/* The client has a say on the error path too (RFC 9111 4.2.4, RFC 5861 4). */
static void test_stale_if_error_heeds_the_client(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_request rq = request(NULL, 0);
  struct respcache_hit hit;
  const struct http_header h[] = {HDR("Cache-Control", "max-age=10, stale-if-error=60")};
  assert_int_equal(store_at(c, KEY, &rq, 200, h, 1, "old", T0), 1);
  uint64_t now = T0 + 25000; /* 15 s stale */
  assert_int_equal(respcache_lookup_stale(c, KEY, KLEN, &rq, now, &hit), RESPCACHE_HIT);
  static const char *const refuse[] = {"no-cache", "no-store", "max-age=0", "max-age=20",
                                       "stale-if-error=10", "max-age=0, stale-if-error=100"};
  for (size_t i = 0; i < sizeof refuse / sizeof refuse[0]; i++) {
    const struct http_header cc[] = {{"Cache-Control", refuse[i], 13, strlen(refuse[i])}};
    struct respcache_request r = request(cc, 1);
    if (respcache_lookup_stale(c, KEY, KLEN, &r, now, &hit) != RESPCACHE_FETCH)
      fail_msg("stale answer despite Cache-Control: %s", refuse[i]);
  }
  const struct http_header pragma[] = {HDR("Pragma", "no-cache")};
  struct respcache_request rp = request(pragma, 1);
  assert_int_equal(respcache_lookup_stale(c, KEY, KLEN, &rp, now, &hit), RESPCACHE_FETCH);
  static const char *const allow[] = {"max-age=30", "stale-if-error=15", "stale-if-error=100"};
  for (size_t i = 0; i < sizeof allow / sizeof allow[0]; i++) {
    const struct http_header cc[] = {{"Cache-Control", allow[i], 13, strlen(allow[i])}};
    struct respcache_request r = request(cc, 1);
    if (respcache_lookup_stale(c, KEY, KLEN, &r, now, &hit) != RESPCACHE_HIT)
      fail_msg("no stale answer with Cache-Control: %s", allow[i]);
  }
  respcache_free(c);
}

/* RFC 9111 4.3.2: the client's validators against the stored response. */
static void test_conditional_requests(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_request rq = request(NULL, 0);
  struct respcache_hit hit;
  const struct http_header h[] = {HDR("Cache-Control", "max-age=60"), HDR("ETag", "W/\"v1\""),
                                  HDR("Last-Modified", DATE_MINUS_40), HDR("Content-Type", "a/b")};
  assert_int_equal(store_at(c, KEY, &rq, 200, h, COUNT(h), "body", T0), 1);
  assert_int_equal(lookup(c, KEY, &rq, T0, &hit), RESPCACHE_HIT);
  static const char *const match[] = {"\"v1\"", "W/\"v1\"", "\"x\", \"v1\"", "*", " \"a\" ,W/\"v1\" "};
  static const char *const differ[] = {"\"v2\"", "\"V1\"", "v1", "\"v1", ""};
  for (size_t i = 0; i < COUNT(match); i++) {
    const struct http_header inm[] = {{"If-None-Match", match[i], 13, strlen(match[i])}};
    struct respcache_request r = request(inm, 1);
    if (!respcache_not_modified(&r, &hit, T0))
      fail_msg("If-None-Match: %s did not match", match[i]);
  }
  for (size_t i = 0; i < COUNT(differ); i++) {
    const struct http_header inm[] = {{"If-None-Match", differ[i], 13, strlen(differ[i])}};
    struct respcache_request r = request(inm, 1);
    if (respcache_not_modified(&r, &hit, T0))
      fail_msg("If-None-Match: %s matched", differ[i]);
  }
  const struct http_header later[] = {HDR("If-Modified-Since", DATE_MINUS_10)};
  const struct http_header earlier[] = {HDR("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")};
  struct respcache_request r_later = request(later, 1), r_earlier = request(earlier, 1);
  assert_true(respcache_not_modified(&r_later, &hit, T0));
  assert_false(respcache_not_modified(&r_earlier, &hit, T0));
  /* If-None-Match wins over If-Modified-Since */
  const struct http_header both[] = {HDR("If-None-Match", "\"v2\""), HDR("If-Modified-Since", DATE_MINUS_10)};
  struct respcache_request r_both = request(both, 2);
  assert_false(respcache_not_modified(&r_both, &hit, T0));
  assert_false(respcache_not_modified(&rq, &hit, T0));
  /* what a 304 carries */
  const struct http_header ct = HDR("Content-Type", "a/b"), et = HDR("ETag", "\"v1\"");
  assert_false(respcache_field_in_304(&ct));
  assert_true(respcache_field_in_304(&et));
  respcache_free(c);
}

static void test_stored_headers_filtered(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_request rq = request(NULL, 0);
  struct respcache_hit hit;
  const struct http_header h[] = {
      HDR("Content-Type", "text/plain"), HDR("Connection", "close, X-Hop"),
      HDR("X-Custom", "1"),              HDR("Keep-Alive", "timeout=5"),
      HDR("Transfer-Encoding", "chunked"), HDR("Content-Length", "2"),
      HDR("Age", "1"),                   HDR("Date", DATE_NOW),
      HDR("X-Request-Id", "abc"),        HDR("X-Hop", "1"),
      HDR("Trailer", "X"),               HDR("Upgrade", "h2c"),
      HDR("Proxy-Authenticate", "Basic"), HDR("ETag", "\"v1\""),
      HDR("Cache-Control", "max-age=60")};
  assert_int_equal(store_at(c, KEY, &rq, 200, h, COUNT(h), "ok", T0), 1);
  assert_int_equal(lookup(c, KEY, &rq, T0, &hit), RESPCACHE_HIT);
  const char *const want[][2] = {{"Content-Type", "text/plain"},
                                 {"X-Custom", "1"},
                                 {"Date", DATE_NOW},
                                 {"ETag", "\"v1\""},
                                 {"Cache-Control", "max-age=60"}};
  assert_int_equal(hit.n_headers, COUNT(want));
  for (unsigned i = 0; i < COUNT(want); i++) {
    assert_int_equal(hit.headers[i].name_len, strlen(want[i][0]));
    assert_memory_equal(hit.headers[i].name, want[i][0], hit.headers[i].name_len);
    assert_int_equal(hit.headers[i].value_len, strlen(want[i][1]));
    assert_memory_equal(hit.headers[i].value, want[i][1], hit.headers[i].value_len);
  }
  respcache_free(c);
}

static void test_vary(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_hit hit;
  const struct http_header resp[] = {HDR("Cache-Control", "max-age=60"),
                                     HDR("Vary", "Accept-Encoding")};
  const struct http_header gz[] = {HDR("Accept-Encoding", "gzip")};
  const struct http_header gz_upper[] = {HDR("ACCEPT-ENCODING", "gzip")};
  const struct http_header br[] = {HDR("accept-encoding", "br")};
  const struct http_header empty[] = {HDR("Accept-Encoding", "")};
  struct respcache_request rq_gz = request(gz, 1), rq_gz_upper = request(gz_upper, 1);
  struct respcache_request rq_br = request(br, 1), rq_none = request(NULL, 0);
  struct respcache_request rq_empty = request(empty, 1);

  assert_int_equal(store_at(c, KEY, &rq_gz, 200, resp, 2, "gzip-body", T0), 1);
  assert_int_equal(lookup(c, KEY, &rq_gz_upper, T0, &hit), RESPCACHE_HIT);
  assert_body(&hit, "gzip-body");
  assert_int_equal(lookup(c, KEY, &rq_br, T0, &hit), RESPCACHE_FETCH);
  assert_int_equal(hit.status, RESPCACHE_STATUS_MISS);
  assert_int_equal(lookup(c, KEY, &rq_none, T0, &hit), RESPCACHE_FETCH);

  /* a second variant beside the first; absent and empty are different */
  assert_int_equal(store_at(c, KEY, &rq_br, 200, resp, 2, "br-body", T0), 1);
  assert_int_equal(store_at(c, KEY, &rq_none, 200, resp, 2, "plain-body", T0), 1);
  assert_int_equal(stats(c).entries, 3);
  assert_int_equal(lookup(c, KEY, &rq_gz, T0, &hit), RESPCACHE_HIT);
  assert_body(&hit, "gzip-body");
  assert_int_equal(lookup(c, KEY, &rq_br, T0, &hit), RESPCACHE_HIT);
  assert_body(&hit, "br-body");
  assert_int_equal(lookup(c, KEY, &rq_none, T0, &hit), RESPCACHE_HIT);
  assert_body(&hit, "plain-body");
  assert_int_equal(lookup(c, KEY, &rq_empty, T0, &hit), RESPCACHE_FETCH);

  /* storing for a request replaces what it would have been answered with */
  assert_int_equal(store_at(c, KEY, &rq_gz, 200, resp, 2, "gzip-2", T0 + 1), 1);
  assert_int_equal(stats(c).entries, 3);
  assert_int_equal(lookup(c, KEY, &rq_gz, T0 + 1, &hit), RESPCACHE_HIT);
  assert_body(&hit, "gzip-2");

  /* a response without Vary matches everyone and, being the newest, answers
   * everyone; it replaced only the variant gzip's request matched */
  const struct http_header plain[] = {HDR("Cache-Control", "max-age=60")};
  assert_int_equal(store_at(c, KEY, &rq_gz, 200, plain, 1, "one-for-all", T0 + 2), 1);
  assert_int_equal(stats(c).entries, 3);
  assert_int_equal(lookup(c, KEY, &rq_br, T0 + 2, &hit), RESPCACHE_HIT);
  assert_body(&hit, "one-for-all");
  assert_int_equal(lookup(c, KEY, &rq_empty, T0 + 2, &hit), RESPCACHE_HIT);
  respcache_free(c);
}

static void test_vary_combines_lines_and_caps_variants(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_hit hit;
  const struct http_header resp[] = {HDR("Cache-Control", "max-age=60"), HDR("Vary", "X-A"),
                                     HDR("vary", "X-B")};
  const struct http_header two_lines[] = {HDR("X-A", "1"), HDR("X-B", "b"), HDR("X-A", "2")};
  const struct http_header one_line[] = {HDR("X-B", "b"), HDR("X-A", "1, 2")};
  const struct http_header other_b[] = {HDR("X-A", "1, 2"), HDR("X-B", "c")};
  struct respcache_request r1 = request(two_lines, 3), r2 = request(one_line, 2);
  struct respcache_request r3 = request(other_b, 2);
  assert_int_equal(store_at(c, KEY, &r1, 200, resp, 3, "x", T0), 1);
  assert_int_equal(lookup(c, KEY, &r2, T0, &hit), RESPCACHE_HIT);
  assert_int_equal(lookup(c, KEY, &r3, T0, &hit), RESPCACHE_FETCH);

  /* at most RESPCACHE_MAX_VARIANTS per key: the oldest goes */
  respcache_invalidate(c, KEY, KLEN);
  const struct http_header vresp[] = {HDR("Cache-Control", "max-age=60"), HDR("Vary", "X-V")};
  char vals[RESPCACHE_MAX_VARIANTS + 1][4];
  struct http_header hs[RESPCACHE_MAX_VARIANTS + 1];
  struct respcache_request rqs[RESPCACHE_MAX_VARIANTS + 1];
  for (int i = 0; i <= RESPCACHE_MAX_VARIANTS; i++) {
    snprintf(vals[i], sizeof vals[i], "%d", i);
    hs[i] = (struct http_header){"X-V", vals[i], 3, strlen(vals[i])};
    rqs[i] = request(&hs[i], 1);
    assert_int_equal(store_at(c, KEY, &rqs[i], 200, vresp, 2, vals[i], T0), 1);
  }
  struct respcache_stats s = stats(c);
  assert_int_equal(s.entries, RESPCACHE_MAX_VARIANTS);
  assert_int_equal(s.evictions, 1);
  assert_int_equal(lookup(c, KEY, &rqs[0], T0, &hit), RESPCACHE_FETCH);
  for (int i = 1; i <= RESPCACHE_MAX_VARIANTS; i++) {
    assert_int_equal(lookup(c, KEY, &rqs[i], T0, &hit), RESPCACHE_HIT);
    assert_body(&hit, vals[i]);
  }
  respcache_free(c);
}

static void test_authorization(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_hit hit;
  struct rec x = {0};
  const struct http_header authz[] = {HDR("Authorization", "Bearer t")};
  struct respcache_request anon = request(NULL, 0), auth = request(authz, 1);
  struct respcache_request authn;
  respcache_request_init(&authn, "GET", NULL, 0, 1); /* X-Api-Key, checked by the gateway */
  const struct http_header plain[] = {HDR("Cache-Control", "max-age=60")};
  const struct http_header pub[] = {HDR("Cache-Control", "public, max-age=60")};

  /* a plain response is stored for an anonymous request, but not served to
   * one with credentials */
  assert_int_equal(store_at(c, KEY, &anon, 200, plain, 1, "anon", T0), 1);
  assert_int_equal(lookup(c, KEY, &auth, T0, &hit), RESPCACHE_FETCH);
  assert_int_equal(lookup(c, KEY, &authn, T0, &hit), RESPCACHE_FETCH);
  assert_int_equal(respcache_lookup_stale(c, KEY, KLEN, &auth, T0, &hit), RESPCACHE_FETCH);
  /* nor stored from one */
  respcache_invalidate(c, KEY, KLEN);
  assert_int_equal(store_at(c, KEY, &auth, 200, plain, 1, "mine", T0), 0);
  assert_int_equal(stats(c).entries, 0);
  /* public (or s-maxage, must-revalidate) allows both */
  assert_int_equal(store_at(c, KEY, &auth, 200, pub, 1, "shared", T0), 1);
  assert_int_equal(lookup(c, KEY, &auth, T0, &hit), RESPCACHE_HIT);
  assert_int_equal(lookup(c, KEY, &anon, T0, &hit), RESPCACHE_HIT);
  respcache_invalidate(c, KEY, KLEN);
  /* a request with credentials neither leads nor joins a fetch */
  assert_int_equal(join(c, &auth, T0, &x), RESPCACHE_FETCH);
  assert_int_equal(join(c, &anon, T0, &x), RESPCACHE_LEAD);
  assert_int_equal(join(c, &authn, T0, &x), RESPCACHE_FETCH);
  respcache_flight_done(c, KEY, KLEN, T0, 0);
  assert_int_equal(x.calls, 0);
  respcache_free(c);
}

static void test_client_max_age_and_bypass(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_hit hit;
  const struct http_header h[] = {HDR("Cache-Control", "max-age=60")};
  struct respcache_request rq = request(NULL, 0);
  assert_int_equal(store_at(c, KEY, &rq, 200, h, 1, "v", T0), 1);
  const struct http_header m5[] = {HDR("Cache-Control", "max-age=5")};
  const struct http_header m10[] = {HDR("Cache-Control", "max-age=10")};
  struct respcache_request r5 = request(m5, 1), r10 = request(m10, 1);
  assert_int_equal(lookup(c, KEY, &r5, T0 + 10000, &hit), RESPCACHE_FETCH);
  assert_int_equal(hit.status, RESPCACHE_STATUS_EXPIRED);
  assert_int_equal(lookup(c, KEY, &r10, T0 + 10000, &hit), RESPCACHE_HIT);
  assert_int_equal(lookup(c, KEY, &r10, T0 + 10001, &hit), RESPCACHE_FETCH);

  /* no-cache: not answered from the cache, but its response is stored */
  const struct http_header nc[] = {HDR("Cache-Control", "no-cache")};
  struct respcache_request rnc = request(nc, 1);
  struct rec x = {0};
  assert_int_equal(join(c, &rnc, T0, &x), RESPCACHE_FETCH);
  struct respcache_hit h2;
  assert_int_equal(respcache_lookup_or_join(c, KEY, KLEN, &rnc, T0, on_wait, &x, &h2),
                   RESPCACHE_FETCH);
  assert_int_equal(h2.status, RESPCACHE_STATUS_BYPASS);
  assert_int_equal(store_at(c, KEY, &rnc, 200, h, 1, "new", T0 + 100), 1);
  assert_int_equal(lookup(c, KEY, &rq, T0 + 100, &hit), RESPCACHE_HIT);
  assert_body(&hit, "new");
  /* no-store: neither */
  const struct http_header ns[] = {HDR("Cache-Control", "no-store")};
  struct respcache_request rns = request(ns, 1);
  assert_int_equal(lookup(c, KEY, &rns, T0, &hit), RESPCACHE_FETCH);
  assert_int_equal(hit.status, RESPCACHE_STATUS_BYPASS);
  assert_int_equal(store_at(c, KEY, &rns, 200, h, 1, "nope", T0 + 200), 0);
  /* a HEAD response has no body to store */
  struct respcache_request head;
  respcache_request_init(&head, "HEAD", NULL, 0, 0);
  assert_int_equal(store_at(c, KEY, &head, 200, h, 1, "", T0 + 200), 0);
  assert_int_equal(lookup(c, KEY, &head, T0 + 200, &hit), RESPCACHE_HIT);
  assert_body(&hit, "new");
  assert_int_equal(stats(c).bypasses, 3);
  assert_int_equal(x.calls, 0);
  respcache_free(c);
}

/* ---- memory bounds ------------------------------------------------------ */

static void test_lru_eviction_by_count(void **state) {
  (void)state;
  struct respcache *c = make(0, 3, 64, 0, 0);
  struct respcache_request rq = request(NULL, 0);
  struct respcache_hit hit;
  const struct http_header h[] = {HDR("Cache-Control", "max-age=60")};
  const char *keys[] = {"GET\nh\n/a", "GET\nh\n/b", "GET\nh\n/c", "GET\nh\n/d", "GET\nh\n/e"};
  for (int i = 0; i < 3; i++)
    assert_int_equal(store_at(c, keys[i], &rq, 200, h, 1, keys[i], T0), 1);
  /* use /a: /b is now the least recently used */
  assert_int_equal(lookup(c, keys[0], &rq, T0, &hit), RESPCACHE_HIT);
  assert_int_equal(store_at(c, keys[3], &rq, 200, h, 1, keys[3], T0), 1);
  assert_int_equal(lookup(c, keys[1], &rq, T0, &hit), RESPCACHE_FETCH);
  /* a stale answer counts as a use too; a miss does not */
  assert_int_equal(respcache_lookup_stale(c, keys[2], strlen(keys[2]), &rq, T0, &hit),
                   RESPCACHE_HIT);
  assert_int_equal(store_at(c, keys[4], &rq, 200, h, 1, keys[4], T0), 1);
  assert_int_equal(lookup(c, keys[0], &rq, T0, &hit), RESPCACHE_FETCH);
  for (int i = 2; i < 5; i++) {
    assert_int_equal(lookup(c, keys[i], &rq, T0, &hit), RESPCACHE_HIT);
    assert_body(&hit, keys[i]);
  }
  struct respcache_stats s = stats(c);
  assert_int_equal(s.evictions, 2);
  assert_int_equal(s.entries, 3);
  respcache_free(c);
}

static void test_lru_eviction_by_bytes(void **state) {
  (void)state;
  struct respcache_request rq = request(NULL, 0);
  struct respcache_hit hit;
  const struct http_header h[] = {HDR("Cache-Control", "max-age=60")};
  char body[1001];
  memset(body, 'x', 1000);
  body[1000] = '\0';
  const char *keys[] = {"GET\nh\n/1", "GET\nh\n/2", "GET\nh\n/3", "GET\nh\n/4"};

  /* measure what one entry costs (same key length for all) */
  struct respcache *c = make_default();
  assert_int_equal(store_at(c, keys[0], &rq, 200, h, 1, body, T0), 1);
  size_t one = stats(c).bytes;
  assert_true(one > 1000 && one < 1400);
  respcache_free(c);

  struct respcache_limits l;
  respcache_limits_default(&l);
  l.max_bytes = 3 * one + one / 2;
  l.max_entry_bytes = l.max_bytes;
  c = respcache_new(&l);
  assert_non_null(c);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(store_at(c, keys[i], &rq, 200, h, 1, body, T0), 1);
    assert_true(stats(c).bytes <= l.max_bytes);
  }
  assert_int_equal(stats(c).entries, 3);
  assert_int_equal(stats(c).bytes, 3 * one);
  assert_int_equal(lookup(c, keys[0], &rq, T0, &hit), RESPCACHE_FETCH);
  assert_int_equal(lookup(c, keys[3], &rq, T0, &hit), RESPCACHE_HIT);
  respcache_free(c);

  /* one response larger than max_entry_bytes is refused, not stored by
   * flushing everything else */
  l.max_entry_bytes = one - 1;
  c = respcache_new(&l);
  assert_int_equal(store_at(c, keys[0], &rq, 200, h, 1, "small", T0), 1);
  assert_int_equal(store_at(c, keys[1], &rq, 200, h, 1, body, T0), 0);
  struct respcache_stats s = stats(c);
  assert_int_equal(s.too_large, 1);
  assert_int_equal(s.entries, 1);
  respcache_free(c);

  /* the default max_entry_bytes is an eighth of max_bytes */
  l.max_bytes = 8 * one - 8;
  l.max_entry_bytes = 0;
  c = respcache_new(&l);
  assert_int_equal(store_at(c, keys[0], &rq, 200, h, 1, body, T0), 0);
  respcache_free(c);
}

static void test_invalidate(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_hit hit;
  const struct http_header resp[] = {HDR("Cache-Control", "max-age=60"), HDR("Vary", "X-V")};
  const struct http_header a[] = {HDR("X-V", "a")}, b[] = {HDR("X-V", "b")};
  struct respcache_request ra = request(a, 1), rb = request(b, 1);
  assert_int_equal(store_at(c, KEY, &ra, 200, resp, 2, "a", T0), 1);
  assert_int_equal(store_at(c, KEY, &rb, 200, resp, 2, "b", T0), 1);
  assert_int_equal(respcache_invalidate(c, KEY, KLEN), 2);
  assert_int_equal(lookup(c, KEY, &ra, T0, &hit), RESPCACHE_FETCH);
  assert_int_equal(lookup(c, KEY, &rb, T0, &hit), RESPCACHE_FETCH);
  struct respcache_stats s = stats(c);
  assert_int_equal(s.invalidations, 2);
  assert_int_equal(s.entries, 0);
  assert_int_equal(s.bytes, 0); /* the key went too */
  assert_int_equal(respcache_invalidate(c, KEY, KLEN), 0);
  respcache_free(c);
}

/* ---- coalescing --------------------------------------------------------- */

static void test_coalesce_answers_waiters_in_order(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_request rq[4];
  struct rec x[4];
  memset(x, 0, sizeof x);
  for (int i = 0; i < 4; i++)
    rq[i] = request(NULL, 0);
  call_order = 0;
  assert_int_equal(join(c, &rq[0], T0, &x[0]), RESPCACHE_LEAD);
  for (int i = 1; i < 4; i++)
    assert_int_equal(join(c, &rq[i], T0 + (uint64_t)i, &x[i]), RESPCACHE_WAIT);
  const struct http_header h[] = {HDR("Cache-Control", "max-age=60")};
  assert_int_equal(store_at(c, KEY, &rq[0], 200, h, 1, "fetched", T0 + 500), 1);
  for (int i = 0; i < 4; i++) /* storing wakes nobody */
    assert_int_equal(x[i].calls, 0);
  respcache_flight_done(c, KEY, KLEN, T0 + 2500, 0);
  assert_int_equal(x[0].calls, 0);
  for (int i = 1; i < 4; i++) {
    assert_int_equal(x[i].calls, 1);
    assert_int_equal(x[i].order, i);
    assert_int_equal(x[i].r, RESPCACHE_HIT);
    assert_int_equal(x[i].status, RESPCACHE_STATUS_COALESCED);
    assert_int_equal(x[i].http_status, 200);
    assert_int_equal(x[i].age_s, 2);
    assert_string_equal(x[i].body, "fetched");
  }
  respcache_flight_done(c, KEY, KLEN, T0 + 2500, 0); /* a second report: nothing */
  assert_int_equal(respcache_tick(c, T0 + 100000), UINT64_MAX);
  for (int i = 1; i < 4; i++)
    assert_int_equal(x[i].calls, 1);
  struct respcache_stats s = stats(c);
  assert_int_equal(s.coalesced, 3);
  assert_int_equal(s.misses, 4);
  assert_int_equal(s.released, 0);
  /* the next request simply hits */
  struct rec y = {0};
  assert_int_equal(join(c, &rq[0], T0 + 3000, &y), RESPCACHE_HIT);
  respcache_free(c);
}

static void test_coalesce_failure_releases_waiters(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_request rq = request(NULL, 0);
  struct rec lead = {0}, w1 = {0}, w2 = {0};
  assert_int_equal(join(c, &rq, T0, &lead), RESPCACHE_LEAD);
  assert_int_equal(join(c, &rq, T0, &w1), RESPCACHE_WAIT);
  assert_int_equal(join(c, &rq, T0, &w2), RESPCACHE_WAIT);
  respcache_flight_done(c, KEY, KLEN, T0 + 10, 0); /* the upstream failed: nothing stored */
  assert_int_equal(w1.calls, 1);
  assert_int_equal(w1.r, RESPCACHE_FETCH);
  assert_int_equal(w2.calls, 1);
  assert_int_equal(w2.r, RESPCACHE_FETCH);
  assert_int_equal(stats(c).released, 2);

  /* a response that may not be stored releases them the same way */
  struct rec w3 = {0};
  assert_int_equal(join(c, &rq, T0 + 20, &lead), RESPCACHE_LEAD);
  assert_int_equal(join(c, &rq, T0 + 20, &w3), RESPCACHE_WAIT);
  const struct http_header ns[] = {HDR("Cache-Control", "no-store")};
  assert_int_equal(store_at(c, KEY, &rq, 200, ns, 1, "secret", T0 + 30), 0);
  respcache_flight_done(c, KEY, KLEN, T0 + 30, 0);
  assert_int_equal(w3.calls, 1);
  assert_int_equal(w3.r, RESPCACHE_FETCH);
  assert_int_equal(lead.calls, 0);
  respcache_free(c);
}

static void test_coalesce_stale_entry_is_not_an_answer(void **state) {
  (void)state;
  /* An expired entry with a stale window stays for errors, but a failed
   * fetch must not hand it to the waiters as if it were fresh. */
  struct respcache *c = make_default();
  struct respcache_request rq = request(NULL, 0);
  struct rec lead = {0}, w = {0};
  const struct http_header h[] = {HDR("Cache-Control", "max-age=1, stale-if-error=60")};
  assert_int_equal(store_at(c, KEY, &rq, 200, h, 1, "old", T0), 1);
  struct respcache_hit hit;
  assert_int_equal(respcache_lookup_or_join(c, KEY, KLEN, &rq, T0 + 2000, on_wait, &lead, &hit),
                   RESPCACHE_LEAD);
  assert_int_equal(hit.status, RESPCACHE_STATUS_EXPIRED);
  assert_int_equal(join(c, &rq, T0 + 2000, &w), RESPCACHE_WAIT);
  respcache_flight_done(c, KEY, KLEN, T0 + 2100, 0);
  assert_int_equal(w.r, RESPCACHE_FETCH);
  /* each then falls back to the stale copy on its own error */
  assert_int_equal(respcache_lookup_stale(c, KEY, KLEN, &rq, T0 + 2200, &hit), RESPCACHE_HIT);
  assert_int_equal(hit.status, RESPCACHE_STATUS_STALE);

  /* a fetch that failed as stale-if-error covers: the waiters get the
   * stale copy at once instead of each trying the failing upstream - but
   * not one whose client takes nothing that old */
  struct rec lead2 = {0}, w2 = {0}, w_nc = {0};
  const struct http_header young[] = {HDR("Cache-Control", "max-age=2")};
  struct respcache_request rq_nc = request(young, 1);
  assert_int_equal(join(c, &rq, T0 + 3000, &lead2), RESPCACHE_LEAD);
  assert_int_equal(join(c, &rq, T0 + 3000, &w2), RESPCACHE_WAIT);
  assert_int_equal(join(c, &rq_nc, T0 + 3000, &w_nc), RESPCACHE_WAIT);
  respcache_flight_done(c, KEY, KLEN, T0 + 3100, 1);
  assert_int_equal(w2.r, RESPCACHE_HIT);
  assert_int_equal(w2.status, RESPCACHE_STATUS_STALE);
  assert_string_equal(w2.body, "old");
  assert_int_equal(w_nc.r, RESPCACHE_FETCH);
  respcache_free(c);
}

static void test_coalesce_vary_mismatch_releases(void **state) {
  (void)state;
  struct respcache *c = make_default();
  const struct http_header gz[] = {HDR("Accept-Encoding", "gzip")};
  const struct http_header br[] = {HDR("Accept-Encoding", "br")};
  struct respcache_request lead_rq = request(gz, 1), same = request(gz, 1), other = request(br, 1);
  struct rec lead = {0}, w_same = {0}, w_other = {0};
  assert_int_equal(join(c, &lead_rq, T0, &lead), RESPCACHE_LEAD);
  assert_int_equal(join(c, &other, T0, &w_other), RESPCACHE_WAIT);
  assert_int_equal(join(c, &same, T0, &w_same), RESPCACHE_WAIT);
  const struct http_header resp[] = {HDR("Cache-Control", "max-age=60"),
                                     HDR("Vary", "Accept-Encoding")};
  assert_int_equal(store_at(c, KEY, &lead_rq, 200, resp, 2, "gz", T0 + 5), 1);
  respcache_flight_done(c, KEY, KLEN, T0 + 5, 0);
  assert_int_equal(w_same.r, RESPCACHE_HIT);
  assert_string_equal(w_same.body, "gz");
  assert_int_equal(w_other.calls, 1);
  assert_int_equal(w_other.r, RESPCACHE_FETCH);
  struct respcache_stats s = stats(c);
  assert_int_equal(s.coalesced, 1);
  assert_int_equal(s.released, 1);
  respcache_free(c);
}

static void test_coalesce_bounded_waiters(void **state) {
  (void)state;
  struct respcache *c = make(0, 0, 2, 0, 0);
  struct respcache_request rq = request(NULL, 0);
  struct rec x[4];
  memset(x, 0, sizeof x);
  assert_int_equal(join(c, &rq, T0, &x[0]), RESPCACHE_LEAD);
  assert_int_equal(join(c, &rq, T0, &x[1]), RESPCACHE_WAIT);
  assert_int_equal(join(c, &rq, T0, &x[2]), RESPCACHE_WAIT);
  assert_int_equal(join(c, &rq, T0, &x[3]), RESPCACHE_FETCH); /* full: fetch alone */
  assert_int_equal(stats(c).released, 1);
  respcache_flight_done(c, KEY, KLEN, T0, 0);
  assert_int_equal(x[1].calls + x[2].calls, 2);
  assert_int_equal(x[3].calls, 0);
  respcache_free(c);

  /* max_waiters 0: no coalescing at all */
  c = make(0, 0, 0, 0, 0);
  assert_int_equal(join(c, &rq, T0, &x[0]), RESPCACHE_FETCH);
  assert_int_equal(join(c, &rq, T0, &x[1]), RESPCACHE_FETCH);
  respcache_free(c);
}

static void test_coalesce_waiter_timeout(void **state) {
  (void)state;
  struct respcache *c = make(0, 0, 64, 100, 60000);
  struct respcache_request rq = request(NULL, 0);
  struct rec lead = {0}, w1 = {0}, w2 = {0};
  assert_int_equal(respcache_tick(c, T0), UINT64_MAX);
  assert_int_equal(join(c, &rq, T0, &lead), RESPCACHE_LEAD);
  assert_int_equal(join(c, &rq, T0, &w1), RESPCACHE_WAIT);
  assert_int_equal(join(c, &rq, T0 + 50, &w2), RESPCACHE_WAIT);
  assert_int_equal(respcache_tick(c, T0 + 99), T0 + 100);
  assert_int_equal(w1.calls, 0);
  assert_int_equal(respcache_tick(c, T0 + 100), T0 + 150);
  assert_int_equal(w1.calls, 1);
  assert_int_equal(w1.r, RESPCACHE_FETCH);
  assert_int_equal(w2.calls, 0);
  assert_int_equal(stats(c).wait_timeouts, 1);
  /* the leader comes back: the one still waiting is answered, once */
  const struct http_header h[] = {HDR("Cache-Control", "max-age=60")};
  assert_int_equal(store_at(c, KEY, &rq, 200, h, 1, "late", T0 + 120), 1);
  respcache_flight_done(c, KEY, KLEN, T0 + 120, 0);
  assert_int_equal(w1.calls, 1);
  assert_int_equal(w2.calls, 1);
  assert_int_equal(w2.r, RESPCACHE_HIT);
  assert_int_equal(respcache_tick(c, T0 + 1000), UINT64_MAX);
  respcache_free(c);

  /* a waiter that timed out frees its place */
  c = make(0, 0, 1, 100, 60000);
  struct rec x[3];
  memset(x, 0, sizeof x);
  assert_int_equal(join(c, &rq, T0, &lead), RESPCACHE_LEAD);
  assert_int_equal(join(c, &rq, T0, &x[0]), RESPCACHE_WAIT);
  assert_int_equal(join(c, &rq, T0, &x[1]), RESPCACHE_FETCH);
  respcache_tick(c, T0 + 100);
  assert_int_equal(x[0].r, RESPCACHE_FETCH);
  assert_int_equal(join(c, &rq, T0 + 100, &x[2]), RESPCACHE_WAIT);
  respcache_flight_done(c, KEY, KLEN, T0 + 101, 0);
  assert_int_equal(x[2].calls, 1);
  respcache_free(c);
}

static void test_coalesce_leader_never_reports(void **state) {
  (void)state;
  struct respcache *c = make(0, 0, 64, 5000, 1000);
  struct respcache_request rq = request(NULL, 0);
  struct rec lead = {0}, w = {0}, lead2 = {0};
  assert_int_equal(join(c, &rq, T0, &lead), RESPCACHE_LEAD);
  assert_int_equal(join(c, &rq, T0 + 10, &w), RESPCACHE_WAIT);
  assert_int_equal(respcache_tick(c, T0 + 999), T0 + 1000);
  assert_int_equal(respcache_tick(c, T0 + 1000), UINT64_MAX);
  assert_int_equal(w.calls, 1);
  assert_int_equal(w.r, RESPCACHE_FETCH);
  /* the key is free again; a late report of the old leader harms nobody */
  assert_int_equal(join(c, &rq, T0 + 1001, &lead2), RESPCACHE_LEAD);
  respcache_flight_done(c, KEY, KLEN, T0 + 1002, 0);
  assert_int_equal(join(c, &rq, T0 + 1003, &lead2), RESPCACHE_LEAD);
  respcache_free(c);
}

static void test_head_and_conditional_requests(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_request get = request(NULL, 0), head;
  respcache_request_init(&head, "HEAD", NULL, 0, 0);
  const struct http_header inm_h[] = {HDR("If-None-Match", "\"v1\"")};
  struct respcache_request inm = request(inm_h, 1);
  struct rec a = {0}, b = {0}, lead = {0};
  /* neither leads a fetch: their responses cannot be stored */
  assert_int_equal(join(c, &head, T0, &a), RESPCACHE_FETCH);
  assert_int_equal(join(c, &inm, T0, &a), RESPCACHE_FETCH);
  /* both may wait on a GET and be answered with its response */
  assert_int_equal(join(c, &get, T0, &lead), RESPCACHE_LEAD);
  assert_int_equal(join(c, &head, T0, &a), RESPCACHE_WAIT);
  assert_int_equal(join(c, &inm, T0, &b), RESPCACHE_WAIT);
  const struct http_header h[] = {HDR("Cache-Control", "max-age=60"), HDR("ETag", "\"v1\"")};
  assert_int_equal(store_at(c, KEY, &get, 200, h, 2, "body", T0), 1);
  respcache_flight_done(c, KEY, KLEN, T0, 0);
  assert_int_equal(a.r, RESPCACHE_HIT);
  assert_string_equal(a.body, "body"); /* the server sends no body for HEAD */
  assert_int_equal(b.r, RESPCACHE_HIT);
  respcache_free(c);
}

static void test_invalidate_during_flight(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_request rq = request(NULL, 0);
  struct rec lead = {0}, w = {0};
  struct respcache_hit hit;
  assert_int_equal(join(c, &rq, T0, &lead), RESPCACHE_LEAD);
  assert_int_equal(join(c, &rq, T0, &w), RESPCACHE_WAIT);
  assert_int_equal(respcache_invalidate(c, KEY, KLEN), 0); /* a PUT succeeded meanwhile */
  const struct http_header h[] = {HDR("Cache-Control", "max-age=60")};
  assert_int_equal(store_at(c, KEY, &rq, 200, h, 1, "pre-put", T0 + 5), 0);
  respcache_flight_done(c, KEY, KLEN, T0 + 5, 0);
  assert_int_equal(w.r, RESPCACHE_FETCH);
  assert_int_equal(lookup(c, KEY, &rq, T0 + 6, &hit), RESPCACHE_FETCH);
  /* the next fetch stores again */
  assert_int_equal(store_at(c, KEY, &rq, 200, h, 1, "post-put", T0 + 7), 1);
  respcache_free(c);
}

/* Two workers' caches sharing invalidations: a PUT through one stops the
 * other serving the key, and a fetch the other began before it stores
 * nothing; fetches begun after it store and serve again. */
static void test_invalidations_shared_between_caches(void **state) {
  (void)state;
  struct respcache_epochs *ep = respcache_epochs_new();
  assert_non_null(ep);
  struct respcache_limits l;
  respcache_limits_default(&l);
  l.shared = ep;
  struct respcache *a = respcache_new(&l), *b = respcache_new(&l);
  struct respcache_request rq = request(NULL, 0);
  struct respcache_hit hit;
  const struct http_header h[] = {HDR("Cache-Control", "max-age=60")};
  static const char OTHER[] = "GET\nexample.test\n/other", SLOW[] = "GET\nexample.test\n/slow";
  assert_int_equal(store_at(a, KEY, &rq, 200, h, 1, "a1", T0), 1);
  assert_int_equal(store_at(b, KEY, &rq, 200, h, 1, "b1", T0), 1);
  assert_int_equal(store_at(b, OTHER, &rq, 200, h, 1, "o1", T0), 1);
  struct rec lead = {0};
  assert_int_equal(respcache_lookup_or_join(b, SLOW, sizeof SLOW - 1, &rq, T0, on_wait, &lead, &hit),
                   RESPCACHE_LEAD);
  assert_int_equal(respcache_invalidate(a, KEY, KLEN), 1);
  assert_int_equal(respcache_invalidate(a, SLOW, sizeof SLOW - 1), 0);
  assert_int_equal(lookup(a, KEY, &rq, T0 + 1, &hit), RESPCACHE_FETCH);
  assert_int_equal(lookup(b, KEY, &rq, T0 + 1, &hit), RESPCACHE_FETCH); /* b heard of it */
  assert_int_equal(lookup(b, OTHER, &rq, T0 + 1, &hit), RESPCACHE_HIT); /* other keys stay */
  assert_int_equal(stats(b).invalidations, 1);
  /* b's fetch began before the PUT: what it got may predate it */
  assert_int_equal(store_at(b, SLOW, &rq, 200, h, 1, "old", T0 + 2), 0);
  respcache_flight_done(b, SLOW, sizeof SLOW - 1, T0 + 2, 0);
  /* a fetch with no flight (credentials, no-cache, a conditional request)
   * that began before the PUT stores nothing either */
  assert_int_equal(store_at(b, KEY, &rq, 200, h, 1, "b-old", T0 + 2), 0);
  /* fetched after it: kept and served */
  struct respcache_request later = request(NULL, 0);
  later.epoch = respcache_fetch_epoch(b);
  assert_int_equal(store_at(b, KEY, &later, 200, h, 1, "b2", T0 + 3), 1);
  assert_int_equal(lookup(b, KEY, &later, T0 + 4, &hit), RESPCACHE_HIT);
  assert_memory_equal(hit.body, "b2", 2);
  respcache_free(a);
  respcache_free(b);
  respcache_epochs_free(ep);
}

static void test_callbacks_may_reenter(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_request rq = request(NULL, 0);
  struct rec lead = {0}, a = {0}, b = {0};
  a.reenter = c; /* on FETCH, a looks the key up again: it becomes the new leader */
  a.reenter_rq = &rq;
  assert_int_equal(join(c, &rq, T0, &lead), RESPCACHE_LEAD);
  assert_int_equal(join(c, &rq, T0, &a), RESPCACHE_WAIT);
  assert_int_equal(join(c, &rq, T0, &b), RESPCACHE_WAIT);
  respcache_flight_done(c, KEY, KLEN, T0 + 1, 0);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.reenter_result, RESPCACHE_LEAD);
  assert_int_equal(b.calls, 1); /* b belonged to the old flight: released, not moved */
  assert_int_equal(b.r, RESPCACHE_FETCH);
  /* the new flight works as any other */
  struct rec d = {0};
  assert_int_equal(join(c, &rq, T0 + 2, &d), RESPCACHE_WAIT);
  const struct http_header h[] = {HDR("Cache-Control", "max-age=60")};
  assert_int_equal(store_at(c, KEY, &rq, 200, h, 1, "v2", T0 + 3), 1);
  respcache_flight_done(c, KEY, KLEN, T0 + 3, 0);
  assert_int_equal(d.r, RESPCACHE_HIT);
  assert_string_equal(d.body, "v2");
  assert_int_equal(a.calls, 1);
  respcache_free(c);
}

static void test_free_cancels_waiters(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_request rq = request(NULL, 0);
  struct rec lead = {0}, a = {0}, b = {0};
  const struct http_header h[] = {HDR("Cache-Control", "max-age=60")};
  assert_int_equal(store_at(c, "GET\nh\n/other", &rq, 200, h, 1, "x", T0), 1);
  assert_int_equal(join(c, &rq, T0, &lead), RESPCACHE_LEAD);
  assert_int_equal(join(c, &rq, T0, &a), RESPCACHE_WAIT);
  assert_int_equal(join(c, &rq, T0, &b), RESPCACHE_WAIT);
  respcache_free(c);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.r, RESPCACHE_CANCELED);
  assert_int_equal(b.calls, 1);
  assert_int_equal(b.r, RESPCACHE_CANCELED);
  assert_int_equal(lead.calls, 0);
}

static void test_no_callback_no_coalescing(void **state) {
  (void)state;
  struct respcache *c = make_default();
  struct respcache_request rq = request(NULL, 0);
  struct respcache_hit hit;
  assert_int_equal(lookup(c, KEY, &rq, T0, &hit), RESPCACHE_FETCH);
  assert_int_equal(lookup(c, KEY, &rq, T0, &hit), RESPCACHE_FETCH);
  assert_int_equal(respcache_tick(c, T0), UINT64_MAX);
  respcache_free(c);
}

static void test_arguments_and_names(void **state) {
  (void)state;
  respcache_free(NULL);
  struct respcache_limits l;
  respcache_limits_default(&l);
  l.max_bytes = 0;
  assert_null(respcache_new(&l));
  respcache_limits_default(&l);
  l.max_entries = 0;
  assert_null(respcache_new(&l));
  struct respcache *c = respcache_new(NULL);
  assert_non_null(c);
  struct respcache_request rq = request(NULL, 0);
  struct respcache_policy p = policy(200, NULL, 0, &(struct respcache_route){1000, 0});
  assert_int_equal(respcache_store(c, KEY, 0, &rq, &p, 200, NULL, 0, NULL, 0, "", 0, T0),
                   STRATA_EVALIDATION);
  assert_int_equal(respcache_store(c, KEY, KLEN, &rq, &p, 200, NULL, 0, NULL, 0, NULL, 3, T0),
                   STRATA_EVALIDATION);
  assert_int_equal(respcache_store(c, KEY, RESPCACHE_KEY_MAX + 1, &rq, &p, 200, NULL, 0, NULL, 0,
                                   "", 0, T0),
                   STRATA_EVALIDATION);
  struct respcache_hit hit;
  assert_int_equal(respcache_lookup_or_join(c, KEY, 0, &rq, T0, NULL, NULL, &hit),
                   RESPCACHE_FETCH);
  assert_int_equal(hit.status, RESPCACHE_STATUS_BYPASS);
  assert_int_equal(respcache_store(c, KEY, KLEN, &rq, &p, 200, NULL, 3, NULL, 0, NULL, 0, T0),
                   STRATA_EVALIDATION); /* a reason length without the reason */
  assert_int_equal(respcache_store(c, KEY, KLEN, &rq, &p, 204, NULL, 0, NULL, 0, NULL, 0, T0), 1);
  assert_int_equal(lookup(c, KEY, &rq, T0, &hit), RESPCACHE_HIT);
  assert_int_equal(hit.http_status, 204);
  assert_int_equal(hit.reason_len, 0);
  assert_int_equal(hit.body_len, 0);
  respcache_free(c);

  assert_string_equal(respcache_status_name(RESPCACHE_STATUS_HIT), "HIT");
  assert_string_equal(respcache_status_name(RESPCACHE_STATUS_MISS), "MISS");
  assert_string_equal(respcache_status_name(RESPCACHE_STATUS_EXPIRED), "EXPIRED");
  assert_string_equal(respcache_status_name(RESPCACHE_STATUS_STALE), "STALE");
  assert_string_equal(respcache_status_name(RESPCACHE_STATUS_BYPASS), "BYPASS");
  assert_string_equal(respcache_status_name(RESPCACHE_STATUS_COALESCED), "COALESCED");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_key),
      cmocka_unit_test(test_request_flags),
      cmocka_unit_test(test_policy_max_age_and_s_maxage),
      cmocka_unit_test(test_policy_expires_and_date),
      cmocka_unit_test(test_policy_route_ttl_and_statuses),
      cmocka_unit_test(test_policy_refusals),
      cmocka_unit_test(test_policy_stale_if_error),
      cmocka_unit_test(test_policy_age_arithmetic),
      cmocka_unit_test(test_fresh_hit_and_age),
      cmocka_unit_test(test_stale_if_error_window),
      cmocka_unit_test(test_stale_if_error_heeds_the_client),
      cmocka_unit_test(test_conditional_requests),
      cmocka_unit_test(test_stored_headers_filtered),
      cmocka_unit_test(test_vary),
      cmocka_unit_test(test_vary_combines_lines_and_caps_variants),
      cmocka_unit_test(test_authorization),
      cmocka_unit_test(test_client_max_age_and_bypass),
      cmocka_unit_test(test_lru_eviction_by_count),
      cmocka_unit_test(test_lru_eviction_by_bytes),
      cmocka_unit_test(test_invalidate),
      cmocka_unit_test(test_coalesce_answers_waiters_in_order),
      cmocka_unit_test(test_coalesce_failure_releases_waiters),
      cmocka_unit_test(test_coalesce_stale_entry_is_not_an_answer),
      cmocka_unit_test(test_coalesce_vary_mismatch_releases),
      cmocka_unit_test(test_coalesce_bounded_waiters),
      cmocka_unit_test(test_coalesce_waiter_timeout),
      cmocka_unit_test(test_coalesce_leader_never_reports),
      cmocka_unit_test(test_head_and_conditional_requests),
      cmocka_unit_test(test_invalidate_during_flight),
      cmocka_unit_test(test_invalidations_shared_between_caches),
      cmocka_unit_test(test_callbacks_may_reenter),
      cmocka_unit_test(test_free_cancels_waiters),
      cmocka_unit_test(test_no_callback_no_coalescing),
      cmocka_unit_test(test_arguments_and_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
