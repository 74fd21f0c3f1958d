/* Unit tests for src/resilience/retry.c.
 *
 * Backoff is checked over many random inputs (and the extremes 0 and
 * UINT64_MAX) for its bounds and rough uniformity; the budget against a
 * simulated 1 kHz request stream to an upstream that always fails, checking
 * the bound retry.h promises over every window; Retry-After and the
 * deadline header against their RFC forms and junk. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/error.h"
#include "resilience/retry.h"

static struct retry_policy policy(void) {
  struct retry_policy p;
  retry_policy_default(&p);
  return p;
}

static uint64_t ceil_of(const struct retry_policy *p, unsigned attempt) {
  uint64_t c = attempt >= 32 ? p->cap_ms : (uint64_t)p->base_ms << attempt;
  return c < p->cap_ms ? c : p->cap_ms;
}

/* ---- backoff ---- */

static void test_defaults(void **state) {
  struct retry_policy p = policy();
  (void)state;
  assert_int_equal(p.max_attempts, 3);
  assert_int_equal(p.base_ms, 25);
  assert_int_equal(p.cap_ms, 1000);
  assert_int_equal(p.per_try_timeout_ms, 0);
  assert_int_equal(p.total_timeout_ms, 15000);
  assert_int_equal(p.retry_on, RETRY_ON_DEFAULT);
}

static void test_backoff_jitter_bounds(void **state) {
  struct retry_policy p = policy();
  uint64_t rng = 42;
  (void)state;
  for (unsigned a = 0; a < 12; a++) {
    uint64_t ceil = ceil_of(&p, a), lo = UINT64_MAX, hi = 0, sum = 0;
    const unsigned n = 200000;
    assert_true(retry_backoff_ms(&p, a, 0) <= ceil);
    assert_true(retry_backoff_ms(&p, a, UINT64_MAX) <= ceil);
    for (unsigned i = 0; i < n; i++) {
      /* Half the draws from a good generator, half from a bare counter: the
       * mixing makes both spread. */
      uint64_t d = retry_backoff_ms(&p, a, i & 1 ? retry_rand(&rng) : i);
      assert_true(d <= ceil);
      lo = d < lo ? d : lo;
      hi = d > hi ? d : hi;
      sum += d;
    }
    /* Full jitter: the whole range is used, ends included, mean ~ ceil/2. */
    assert_int_equal(lo, 0);
    assert_int_equal(hi, ceil);
    double mean = (double)sum / n, want = (double)ceil / 2;
    assert_true(mean > want * 0.97 && mean < want * 1.03);
  }
}

static void test_backoff_uniform_buckets(void **state) {
  struct retry_policy p = {.base_ms = 100, .cap_ms = 100};
  unsigned hist[10] = {0};
  (void)state;
  for (uint64_t i = 0; i < 101000; i++) { /* a counter as the random source */
    uint64_t d = retry_backoff_ms(&p, 0, i);
    assert_true(d <= 100);
    hist[d < 100 ? d / 10 : 9]++;
  }
  /* 0..9, 10..19, ..., 90..100: ~10,000 each (the last holds 11 values). */
  for (int b = 0; b < 9; b++)
    assert_true(hist[b] > 9500 && hist[b] < 10500);
  assert_true(hist[9] > 10500 && hist[9] < 11500);
}

static void test_backoff_cap_and_growth(void **state) {
  struct retry_policy p = policy();
  (void)state;
  /* 25, 50, 100, ..., 800, then the 1000 cap from attempt 6 (1600) on. */
  assert_int_equal(ceil_of(&p, 0), 25);
  assert_int_equal(ceil_of(&p, 5), 800);
  assert_int_equal(ceil_of(&p, 6), 1000);
  uint64_t max6 = 0;
  for (uint64_t i = 0; i < 50000; i++) {
    uint64_t d = retry_backoff_ms(&p, 6, i);
    assert_true(d <= 1000);
    max6 = d > max6 ? d : max6;
  }
  assert_int_equal(max6, 1000);
  /* The seed's shape, for comparison: with jitter no two clients that
   * failed together are likely to come back together. */
  unsigned same = 0;
  uint64_t r1 = 1, r2 = 2;
  for (int i = 0; i < 1000; i++)
    same += retry_backoff_ms(&p, 3, retry_rand(&r1)) == retry_backoff_ms(&p, 3, retry_rand(&r2));
  assert_true(same < 30); /* 1 in 201 by chance */

  /* A cap below the base: the cap wins. */
  struct retry_policy low = {.base_ms = 500, .cap_ms = 100};
  for (uint64_t i = 0; i < 1000; i++)
    assert_true(retry_backoff_ms(&low, 0, i) <= 100);
  /* No base: no wait, at any attempt. */
  struct retry_policy none = {.base_ms = 0, .cap_ms = 1000};
  assert_int_equal(retry_backoff_ms(&none, 0, UINT64_MAX), 0);
  assert_int_equal(retry_backoff_ms(&none, 100, UINT64_MAX), 0);
}

static void test_backoff_overflow(void **state) {
  struct retry_policy p = policy();
  struct retry_policy big = {.base_ms = UINT32_MAX, .cap_ms = UINT32_MAX};
  static const unsigned attempts[] = {30, 31, 32, 33, 63, 64, 65, 100, 1000, UINT_MAX};
  (void)state;
  for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
    unsigned a = attempts[i];
    assert_true(retry_backoff_ms(&p, a, 0) <= 1000);
    assert_true(retry_backoff_ms(&p, a, UINT64_MAX) <= 1000);
    assert_true(retry_backoff_ms(&big, a, UINT64_MAX) <= UINT32_MAX);
    uint64_t hi = 0, rng = a;
    for (int k = 0; k < 20000; k++) {
      uint64_t d = retry_backoff_ms(&p, a, retry_rand(&rng));
      assert_true(d <= 1000);
      hi = d > hi ? d : hi;
    }
    assert_true(hi > 990); /* still the full capped range, not 0 or garbage */
  }
  /* The largest possible ceiling, 2^32 - 1, is reachable. */
  uint64_t hi = 0, rng = 7;
  for (int k = 0; k < 100000; k++) {
    uint64_t d = retry_backoff_ms(&big, 0, retry_rand(&rng));
    hi = d > hi ? d : hi;
  }
  assert_true(hi > UINT32_MAX - UINT32_MAX / 1000);
}

/* ---- safety and causes ---- */

static void test_is_safe(void **state) {
  static const char *const safe[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"};
  static const char *const unsafe[] = {"POST", "PATCH", "CONNECT", "get", "Get", "", "GETX",
                                       "GE", "PURGE"};
  (void)state;
  for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
    assert_int_equal(retry_is_safe(safe[i], 0, 0), 1);
  for (size_t i = 0; i < sizeof unsafe / sizeof unsafe[0]; i++) {
    assert_int_equal(retry_is_safe(unsafe[i], 0, 0), 0);
    assert_int_equal(retry_is_safe(unsafe[i], 1, 0), 1); /* Idempotency-Key */
    assert_int_equal(retry_is_safe(unsafe[i], 0, 1), 1); /* nothing sent */
  }
  assert_int_equal(retry_is_safe(NULL, 0, 0), 0);
  assert_int_equal(retry_is_safe(NULL, 0, 1), 1);
  assert_int_equal(retry_is_safe(NULL, 1, 0), 1);
}

static void test_should_mapping(void **state) {
  struct retry_policy p = policy();
  (void)state;
  assert_int_equal(retry_should(&p, RETRY_CAUSE_CONNECT_FAILURE, 0), 1);
  assert_int_equal(retry_should(&p, RETRY_CAUSE_RESET, 0), 1);
  assert_int_equal(retry_should(&p, RETRY_CAUSE_TIMEOUT, 0), 1);
  assert_int_equal(retry_should(&p, RETRY_CAUSE_STATUS, 502), 1);
  assert_int_equal(retry_should(&p, RETRY_CAUSE_STATUS, 503), 1);
  assert_int_equal(retry_should(&p, RETRY_CAUSE_STATUS, 504), 1);
  static const int no[] = {0, 200, 204, 400, 404, 429, 500, 501, 505, 599, -1};
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
    assert_int_equal(retry_should(&p, RETRY_CAUSE_STATUS, no[i]), 0);
  /* status matters only for RETRY_CAUSE_STATUS */
  assert_int_equal(retry_should(&p, RETRY_CAUSE_RESET, 200), 1);

  /* Each bit alone enables exactly its cause. */
  struct {
    unsigned bit;
    enum retry_cause cause;
    int status;
  } m[] = {{RETRY_ON_CONNECT_FAILURE, RETRY_CAUSE_CONNECT_FAILURE, 0},
           {RETRY_ON_RESET, RETRY_CAUSE_RESET, 0},
           {RETRY_ON_TIMEOUT, RETRY_CAUSE_TIMEOUT, 0},
           {RETRY_ON_502, RETRY_CAUSE_STATUS, 502},
           {RETRY_ON_503, RETRY_CAUSE_STATUS, 503},
           {RETRY_ON_504, RETRY_CAUSE_STATUS, 504}};
  size_t n = sizeof m / sizeof m[0];
  for (size_t i = 0; i < n; i++) {
    p.retry_on = m[i].bit;
    for (size_t j = 0; j < n; j++)
      assert_int_equal(retry_should(&p, m[j].cause, m[j].status), i == j);
  }
  p.retry_on = 0;
  for (size_t j = 0; j < n; j++)
    assert_int_equal(retry_should(&p, m[j].cause, m[j].status), 0);
}

/* ---- budget ---- */

#define SIM_SECONDS 30

/* A client sends one request every millisecond for SIM_SECONDS to an
 * upstream that always fails; each request tries up to max_attempts times
 * while the budget allows. Counts per second what reached the upstream. */
static void simulate(struct retry_budget *b, unsigned max_attempts, uint64_t start,
                     uint64_t client[SIM_SECONDS], uint64_t upstream[SIM_SECONDS]) {
  for (uint64_t ms = 0; ms < SIM_SECONDS * 1000; ms++) {
    uint64_t now = start + ms, s = ms / 1000;
    retry_budget_request(b, now);
    client[s]++;
    upstream[s]++; /* the first try: fails */
    for (unsigned a = 1; a < max_attempts; a++) {
      if (!retry_budget_try(b, now))
        break;
      upstream[s]++; /* the retry: fails too */
    }
  }
}

static void test_budget_sustained_failure(void **state) {
  struct retry_budget b;
  struct retry_budget_counters c;
  uint64_t client[SIM_SECONDS] = {0}, upstream[SIM_SECONDS] = {0};
  const unsigned W = 10, min = 10; /* the defaults; ratio 0.2 */
  (void)state;
  assert_int_equal(retry_budget_init(&b, NULL), 0);
  simulate(&b, 3, 5000000, client, upstream);

  /* Over every window of W seconds (the budget's own, aligned to its
   * buckets): upstream <= (1 + 0.2) * client + min * W, i.e.
   * 5 * (upstream - client) <= client + 5 * min * W. */
  for (unsigned end = 0; end < SIM_SECONDS; end++) {
    uint64_t cl = 0, up = 0;
    for (unsigned s = end + 1 >= W ? end + 1 - W : 0; s <= end; s++) {
      cl += client[s];
      up += upstream[s];
    }
    assert_true(5 * (up - cl) <= cl + 5 * (uint64_t)min * W);
  }
  /* Over the whole run, as a rate: <= 1.2 * 1000/s + 10/s. */
  uint64_t cl = 0, up = 0;
  for (unsigned s = 0; s < SIM_SECONDS; s++) {
    cl += client[s];
    up += upstream[s];
  }
  assert_int_equal(cl, SIM_SECONDS * 1000);
  assert_true(up * 10 <= cl * 12 + 10 * (uint64_t)min * SIM_SECONDS);
  /* And the budget is used, not just refused: close to the bound. */
  assert_true(up - cl >= (cl / 5) * 95 / 100);
  /* Without a budget the upstream would have seen 3x; the refusals were
   * counted. */
  retry_budget_counters(&b, &c);
  assert_int_equal(c.requests_total, cl);
  assert_int_equal(c.retries_total, up - cl);
  assert_true(c.budget_exhausted_total > 0);
  /* In steady state (after the first window) no single second exceeds the
   * average bound by more than the reserve. */
  for (unsigned s = W; s < SIM_SECONDS; s++)
    assert_true(upstream[s] <= 1200 + (uint64_t)min * W);
}

static void test_budget_minimum(void **state) {
  struct retry_budget b;
  struct retry_budget_config cfg = {.ratio = 0, .min_per_s = 10, .window_s = 10};
  struct retry_budget_counters c;
  (void)state;
  assert_int_equal(retry_budget_init(&b, &cfg), 0);
  /* No traffic at all: the reserve alone, min_per_s * window_s = 100. */
  for (int i = 0; i < 100; i++)
    assert_int_equal(retry_budget_try(&b, 1000), 1);
  assert_int_equal(retry_budget_try(&b, 1000), 0);
  assert_int_equal(retry_budget_try(&b, 10999), 0); /* still the same window */
  assert_int_equal(retry_budget_try(&b, 11000), 1); /* second 1 has left it */
  retry_budget_counters(&b, &c);
  assert_int_equal(c.retries_total, 101);
  assert_int_equal(c.budget_exhausted_total, 2);

  /* Low traffic: one request a minute may still retry. */
  struct retry_budget d;
  assert_int_equal(retry_budget_init(&d, NULL), 0);
  for (uint64_t t = 0; t < 3600000; t += 60000) {
    retry_budget_request(&d, t);
    assert_int_equal(retry_budget_try(&d, t + 25), 1);
    assert_int_equal(retry_budget_try(&d, t + 75), 1);
  }
}

static void test_budget_ratio(void **state) {
  struct retry_budget b;
  struct retry_budget_config cfg = {.ratio = 0.2, .min_per_s = 0, .window_s = 10};
  (void)state;
  assert_int_equal(retry_budget_init(&b, &cfg), 0);
  assert_int_equal(retry_budget_try(&b, 0), 0); /* nothing earned yet */
  for (int i = 0; i < 100; i++)
    retry_budget_request(&b, 0);
  for (int i = 0; i < 20; i++)
    assert_int_equal(retry_budget_try(&b, 0), 1);
  assert_int_equal(retry_budget_try(&b, 0), 0);
  for (int i = 0; i < 5; i++)
    retry_budget_request(&b, 500);
  assert_int_equal(retry_budget_try(&b, 500), 1); /* 105 * 0.2 = 21 */
  assert_int_equal(retry_budget_try(&b, 500), 0);
  /* Ten seconds later everything has left the window. */
  assert_int_equal(retry_budget_try(&b, 10000), 0);
  retry_budget_request(&b, 10000);
  assert_int_equal(retry_budget_try(&b, 10000), 0); /* 0.2 of one request */
  for (int i = 0; i < 4; i++)
    retry_budget_request(&b, 10000);
  assert_int_equal(retry_budget_try(&b, 10000), 1);

  /* Config edges: negative and NaN ratios mean 0, a long window is refused. */
  cfg.ratio = -1;
  assert_int_equal(retry_budget_init(&b, &cfg), 0);
  retry_budget_request(&b, 0);
  assert_int_equal(retry_budget_try(&b, 0), 0);
  cfg.ratio = 0.0 / 0.0;
  assert_int_equal(retry_budget_init(&b, &cfg), 0);
  retry_budget_request(&b, 0);
  assert_int_equal(retry_budget_try(&b, 0), 0);
  cfg.ratio = 0.2;
  cfg.window_s = WINDOW_MAX_SECONDS + 1;
  assert_int_equal(retry_budget_init(&b, &cfg), STRATA_EVALIDATION);
}

/* ---- Retry-After ---- */

/* Sun, 06 Nov 1994 08:49:37 GMT */
#define RFC_EXAMPLE_S 784111777ull

static uint64_t ra(const char *v, uint64_t now_ms) { return retry_after_parse(v, strlen(v), now_ms); }

static void test_retry_after_delta(void **state) {
  (void)state;
  assert_int_equal(ra("120", 0), 120000);
  assert_int_equal(ra("1", 123456), 1000);
  assert_int_equal(ra("0", 0), 0);
  assert_int_equal(ra("007", 0), 7000);
  assert_int_equal(ra(" \t5 ", 0), 5000);
  assert_int_equal(ra("18446744073709551615", 0), UINT64_MAX); /* saturates */
  assert_int_equal(ra("99999999999999999999999999", 0), UINT64_MAX);
  assert_int_equal(ra("18446744073709552", 0), UINT64_MAX); /* * 1000 overflows */
  assert_int_equal(ra("18446744073709551", 0), 18446744073709551000ull);
  /* Junk */
  static const char *const junk[] = {"", " ", "-1", "+1", "1.5", "1e3", "12a", "a12", "1 2",
                                     "0x10", "５", "\x01", "Sun, 06 Nov 1994",
                                     "99999999999999999999999999x"};
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
    assert_int_equal(ra(junk[i], 0), 0);
  assert_int_equal(retry_after_parse(NULL, 0, 0), 0);
  /* Only len bytes are read: "12" out of "123". */
  assert_int_equal(retry_after_parse("123", 2, 0), 12000);
}

static void test_retry_after_dates(void **state) {
  uint64_t now = RFC_EXAMPLE_S * 1000 - 30000; /* 30 s before the example */
  (void)state;
  assert_int_equal(ra("Sun, 06 Nov 1994 08:49:37 GMT", now), 30000);
  assert_int_equal(ra("Sunday, 06-Nov-94 08:49:37 GMT", now), 30000);
  assert_int_equal(ra("Sun Nov  6 08:49:37 1994", now), 30000);
  assert_int_equal(ra("  Sun, 06 Nov 1994 08:49:37 GMT\t", now), 30000);
  /* Sub-second now: the wait is exact to the millisecond. */
  assert_int_equal(ra("Sun, 06 Nov 1994 08:49:37 GMT", now + 250), 29750);
  /* Past or present: no wait. */
  assert_int_equal(ra("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE_S * 1000), 0);
  assert_int_equal(ra("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE_S * 1000 + 1), 0);
  assert_int_equal(ra("Thu, 01 Jan 1970 00:00:00 GMT", 0), 0);
  assert_int_equal(ra("Mon, 01 Jan 1900 00:00:00 GMT", 0), 0);
  /* Further dates, computed independently (date -u -d ... +%s). */
  assert_int_equal(ra("Thu, 01 Jan 1970 00:00:01 GMT", 0), 1000);
  assert_int_equal(ra("Tue, 29 Feb 2028 12:00:00 GMT", 0), 1835438400000ull);
  assert_int_equal(ra("Fri, 31 Dec 9999 23:59:59 GMT", 0), 253402300799000ull);
  assert_int_equal(ra("Wed, 31 Dec 2025 23:59:60 GMT", 0), 1767225600000ull); /* leap second */
  assert_int_equal(ra("Wed Jan 14 10:30:00 2026", 0), 1768386600000ull);
  /* RFC 850 two-digit years: within 50 years ahead, else the past century. */
  uint64_t in2026 = 1768386600000ull;
  assert_int_equal(ra("Monday, 01-Jan-46 00:00:00 GMT", in2026), 2398377600000ull - in2026);
  assert_int_equal(ra("Wednesday, 01-Jan-76 00:00:00 GMT", in2026), 3345062400000ull - in2026);
  assert_int_equal(ra("Saturday, 01-Jan-77 00:00:00 GMT", in2026), 0); /* 1977, not 2077 */
  assert_int_equal(ra("Friday, 01-Jan-99 00:00:00 GMT", in2026), 0);   /* 1999 */
  /* Not dates */
  static const char *const bad[] = {
      "Sun, 06 Nov 1994 08:49:37 UTC",  "Sun, 06 Nov 1994 08:49:37 gmt",
      "sun, 06 Nov 1994 08:49:37 GMT",  "Sun, 06 nov 1994 08:49:37 GMT",
      "Sun, 6 Nov 1994 08:49:37 GMT",   "Sun, 06 Nov 94 08:49:37 GMT",
      "Sun, 06 Nov 1994 8:49:37 GMT",   "Sun, 06 Nov 1994 24:00:00 GMT",
      "Sun, 06 Nov 1994 08:60:00 GMT",  "Sun, 06 Nov 1994 08:49:61 GMT",
      "Sun, 30 Feb 2028 08:49:37 GMT",  "Sun, 29 Feb 2100 08:49:37 GMT",
      "Sun, 00 Nov 2094 08:49:37 GMT",  "Sun, 31 Nov 2094 08:49:37 GMT",
      "Sun, 06 Nov 2094 08:49:37 GMT x", "Sun, 06 Nov 2094 08:49:37",
      "Sun,06 Nov 2094 08:49:37 GMT",   "Xyz, 06 Nov 2094 08:49:37 GMT",
      "Sunday, 06 Nov 2094 08:49:37 GMT", "Sun, 06-Nov-94 08:49:37 GMT",
      "Sunday, 06-Nov-1994 08:49:37 GMT", "Sun Nov 6 08:49:37 2094",
      "Sun Nov  6 08:49:37 94",          "Sun Nov 06 08:49:37 2094 GMT",
      "Sun, 06 Nov 2094 08:49:37 GMT\r\nX: y"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (ra(bad[i], 0) != 0)
      fail_msg("accepted \"%s\"", bad[i]);
  /* The asctime form with a two-digit day. */
  assert_int_equal(ra("Tue Nov 16 08:49:37 2094", 0), 3940735777000ull);
  /* Truncated anywhere: never a date, never a read past len. */
  const char *full = "Sun, 06 Nov 2094 08:49:37 GMT";
  for (size_t n = 0; n < strlen(full); n++)
    assert_int_equal(retry_after_parse(full, n, 0), 0);
}

/* ---- deadlines ---- */

static void test_deadline_header_round_trip(void **state) {
  static const uint64_t values[] = {0, 1, 9, 10, 1500, 30000, 999999999999999999ull};
  char buf[DEADLINE_VALUE_MAX];
  uint64_t got;
  (void)state;
  assert_string_equal(DEADLINE_HEADER, "X-Strata-Deadline-Ms");
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    size_t n = deadline_format(buf, sizeof buf, values[i]);
    assert_true(n > 0);
    assert_int_equal(strlen(buf), n);
    got = 12345;
    assert_int_equal(deadline_parse(buf, n, &got), 0);
    assert_int_equal(got, values[i]);
  }
  assert_int_equal(deadline_format(buf, sizeof buf, 1500), 4);
  assert_string_equal(buf, "1500");
  assert_int_equal(deadline_format(buf, sizeof buf, UINT64_MAX), 20);
  assert_string_equal(buf, "18446744073709551615");
  assert_int_equal(deadline_format(buf, 4, 1500), 0); /* no room for the NUL */
  assert_int_equal(deadline_format(buf, 5, 1500), 4);
  assert_int_equal(deadline_format(NULL, 0, 1), 0);

  assert_int_equal(deadline_parse(" 250\t", 5, &got), 0);
  assert_int_equal(got, 250);
  assert_int_equal(deadline_parse("2500", 2, &got), 0); /* only len bytes */
  assert_int_equal(got, 25);
  static const char *const junk[] = {"", " ", "-1", "+5", "1e3", "12 34", "1.5", "abc", "0x10",
                                     "1000000000000000000" /* 19 digits */,
                                     "18446744073709551616", "5ms"};
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
    got = 777;
    assert_int_equal(deadline_parse(junk[i], strlen(junk[i]), &got), STRATA_EBAD_REQUEST);
    assert_int_equal(got, 777); /* untouched */
  }
  assert_int_equal(deadline_parse(NULL, 0, &got), STRATA_EBAD_REQUEST);
}

static void test_deadline_arithmetic(void **state) {
  struct retry_policy p = policy();
  (void)state;
  assert_int_equal(deadline_after(1000, 500), 1500);
  assert_int_equal(deadline_after(1000, 0), DEADLINE_NONE);
  assert_int_equal(deadline_after(UINT64_MAX - 10, 100), DEADLINE_NONE); /* saturates */
  assert_int_equal(deadline_remaining(1500, 1000), 500);
  assert_int_equal(deadline_remaining(1500, 1500), 0);
  assert_int_equal(deadline_remaining(1500, 9000), 0);
  assert_int_equal(deadline_remaining(DEADLINE_NONE, 9000), UINT64_MAX);

  /* No per-try timeout: a try may use all that is left. */
  assert_int_equal(deadline_try_ms(&p, 16000, 1000), 15000);
  assert_int_equal(deadline_try_ms(&p, DEADLINE_NONE, 1000), UINT64_MAX);
  p.per_try_timeout_ms = 2000;
  assert_int_equal(deadline_try_ms(&p, 16000, 1000), 2000);
  assert_int_equal(deadline_try_ms(&p, 16000, 15000), 1000); /* the deadline is nearer */
  assert_int_equal(deadline_try_ms(&p, 16000, 16000), 0);    /* passed: do not send */
  assert_int_equal(deadline_try_ms(&p, DEADLINE_NONE, 1000), 2000);

  /* A service receiving the header gives up when the gateway does. */
  char buf[DEADLINE_VALUE_MAX];
  uint64_t gw_deadline = deadline_after(50000, p.total_timeout_ms), left;
  size_t n = deadline_format(buf, sizeof buf, deadline_try_ms(&p, gw_deadline, 63500));
  assert_int_equal(deadline_parse(buf, n, &left), 0);
  assert_int_equal(left, 1500); /* 65000 - 63500, shorter than the 2000 per try */
  uint64_t svc_deadline = deadline_after(777, left);
  assert_int_equal(deadline_remaining(svc_deadline, 777 + 1499), 1);
  assert_int_equal(deadline_remaining(svc_deadline, 777 + 1500), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_backoff_jitter_bounds),
      cmocka_unit_test(test_backoff_uniform_buckets),
      cmocka_unit_test(test_backoff_cap_and_growth),
      cmocka_unit_test(test_backoff_overflow),
      cmocka_unit_test(test_is_safe),
      cmocka_unit_test(test_should_mapping),
      cmocka_unit_test(test_budget_sustained_failure),
      cmocka_unit_test(test_budget_minimum),
      cmocka_unit_test(test_budget_ratio),
      cmocka_unit_test(test_retry_after_delta),
      cmocka_unit_test(test_retry_after_dates),
      cmocka_unit_test(test_deadline_header_round_trip),
      cmocka_unit_test(test_deadline_arithmetic),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
