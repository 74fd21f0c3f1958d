/* Unit tests for src/gateway/ratelimit.c.
 *
 * GCRA is exact by construction (time in units of 1/rate ms), so these tests
 * state exact numbers: which millisecond a request is admitted at, what
 * remaining/reset/retry-after say, how many requests a hammering client gets
 * over a long run. They also hold the table to its memory bound, and check
 * that the eviction rule keeps the keys that matter. */
#include <pthread.h>
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
#include "gateway/ratelimit.h"

static struct ratelimit *make(uint32_t rate, uint32_t period_ms, uint32_t burst, size_t max_keys) {
  struct ratelimit_policy p = {rate, period_ms, burst};
  struct ratelimit *rl = ratelimit_new(&p, max_keys);
  assert_non_null(rl);
  return rl;
}

static int check(struct ratelimit *rl, const char *key, uint64_t now, struct ratelimit_result *r) {
  int rc = ratelimit_check(rl, key, strlen(key), now, r);
  assert_true(rc == 0 || rc == 1);
  assert_int_equal(rc, r->allowed);
  return rc;
}

/* ---- GCRA arithmetic --------------------------------------------------- */

static void test_burst_then_steady(void **state) {
  (void)state;
  struct ratelimit *rl = make(10, 1000, 10, 1000); /* T = 100 ms */
  struct ratelimit_result r;
  const uint64_t t0 = 1700000000000ull;
  for (unsigned i = 0; i < 10; i++) {
    assert_int_equal(check(rl, "k", t0, &r), 1);
    assert_int_equal(r.limit, 10);
    assert_int_equal(r.remaining, 9 - i);
    assert_int_equal(r.reset_ms, 100 * (i + 1));
    assert_int_equal(r.retry_after_ms, 0);
  }
  assert_int_equal(check(rl, "k", t0, &r), 0);
  assert_int_equal(r.remaining, 0);
  assert_int_equal(r.retry_after_ms, 100);
  assert_int_equal(r.reset_ms, 1000);
  /* A limited request costs nothing: the answer only moves with time. */
  assert_int_equal(check(rl, "k", t0 + 99, &r), 0);
  assert_int_equal(r.retry_after_ms, 1);
  assert_int_equal(r.reset_ms, 901);
  assert_int_equal(check(rl, "k", t0 + 100, &r), 1);
  assert_int_equal(r.remaining, 0);
  assert_int_equal(r.reset_ms, 1000);
  assert_int_equal(check(rl, "k", t0 + 100, &r), 0);
  assert_int_equal(r.retry_after_ms, 100);
  /* Steady state: exactly one per 100 ms. */
  for (uint64_t t = t0 + 200; t <= t0 + 5000; t += 100) {
    assert_int_equal(check(rl, "k", t - 1, &r), 0);
    assert_int_equal(r.retry_after_ms, 1);
    assert_int_equal(check(rl, "k", t, &r), 1);
    assert_int_equal(check(rl, "k", t, &r), 0);
  }
  ratelimit_free(rl);
}

static void test_hammering_gets_exactly_the_rate(void **state) {
  (void)state;
  /* 3 per second has a non-integral interval (333.33 ms): no drift allowed.
   * Burst 2, so a request arriving a fraction of a ms late loses nothing. */
  struct ratelimit *rl = make(3, 1000, 2, 16);
  struct ratelimit_result r;
  unsigned allowed = 0;
  uint64_t first[6], n = 0;
  for (uint64_t t = 0; t < 300000; t++) {
    while (check(rl, "client", t, &r)) {
      if (n < 6)
        first[n++] = t;
      allowed++;
    }
  }
  assert_int_equal(allowed, 2 + 899); /* the burst, then ceil(1000 k / 3) for k < 900 */
  const uint64_t want[6] = {0, 0, 334, 667, 1000, 1334};
  for (int i = 0; i < 6; i++)
    assert_int_equal(first[i], want[i]);
  ratelimit_free(rl);

  /* Burst 10 then 10/s from a full bucket, every ms for 10 s: 10 + 100. */
  rl = make(10, 1000, 10, 16);
  allowed = 0;
  for (uint64_t t = 0; t <= 10000; t++)
    while (check(rl, "c", t, &r))
      allowed++;
  assert_int_equal(allowed, 110);
  ratelimit_free(rl);
}

static void test_retry_after_is_exact_and_rounded_up(void **state) {
  (void)state;
  struct ratelimit *rl = make(3, 1000, 1, 16);
  struct ratelimit_result r;
  assert_int_equal(check(rl, "k", 0, &r), 1);
  assert_int_equal(r.reset_ms, 334);
  assert_int_equal(check(rl, "k", 0, &r), 0);
  assert_int_equal(r.retry_after_ms, 334);
  assert_int_equal(check(rl, "k", 333, &r), 0);
  assert_int_equal(r.retry_after_ms, 1);
  /* Waiting what we were told always works. */
  assert_int_equal(check(rl, "k", 333 + r.retry_after_ms, &r), 1);
  ratelimit_free(rl);
}

static void test_burst_differs_from_rate(void **state) {
  (void)state;
  struct ratelimit *rl = make(2, 1000, 5, 16); /* T = 500 ms, 5 at once */
  struct ratelimit_result r;
  for (unsigned i = 0; i < 5; i++) {
    assert_int_equal(check(rl, "k", 10000, &r), 1);
    assert_int_equal(r.limit, 5);
    assert_int_equal(r.remaining, 4 - i);
  }
  assert_int_equal(check(rl, "k", 10000, &r), 0);
  assert_int_equal(r.retry_after_ms, 500);
  assert_int_equal(r.reset_ms, 2500);
  /* After 1.2 s, two intervals have passed: two more, then limited. */
  assert_int_equal(check(rl, "k", 11200, &r), 1);
  assert_int_equal(r.remaining, 1);
  assert_int_equal(check(rl, "k", 11200, &r), 1);
  assert_int_equal(r.remaining, 0);
  assert_int_equal(check(rl, "k", 11200, &r), 0);
  assert_int_equal(r.retry_after_ms, 300);
  ratelimit_free(rl);
}

static void test_reset_and_refill(void **state) {
  (void)state;
  struct ratelimit *rl = make(4, 2000, 0, 16); /* burst 0 = rate */
  struct ratelimit_result r;
  for (int i = 0; i < 4; i++)
    check(rl, "k", 0, &r);
  assert_int_equal(r.remaining, 0);
  assert_int_equal(r.reset_ms, 2000);
  assert_int_equal(check(rl, "k", 1000, &r), 1); /* two tokens back */
  assert_int_equal(r.remaining, 1);
  assert_int_equal(r.reset_ms, 1500);
  /* reset_ms later the bucket is full: a fresh key's answer. */
  assert_int_equal(check(rl, "k", 1000 + r.reset_ms, &r), 1);
  assert_int_equal(r.remaining, 3);
  assert_int_equal(r.reset_ms, 500);
  /* Long idle does not bank more than the burst. */
  for (int i = 0; i < 4; i++)
    assert_int_equal(check(rl, "k", 1000000, &r), 1);
  assert_int_equal(check(rl, "k", 1000000, &r), 0);
  ratelimit_free(rl);
}

static void test_clock_going_back_is_harmless(void **state) {
  (void)state;
  struct ratelimit *rl = make(1, 1000, 1, 16);
  struct ratelimit_result r;
  assert_int_equal(check(rl, "k", 5000, &r), 1);
  assert_int_equal(check(rl, "k", 4000, &r), 0);
  assert_int_equal(check(rl, "k", 5999, &r), 0);
  assert_int_equal(check(rl, "k", 6000, &r), 1);
  ratelimit_free(rl);
}

/* ---- keys ---------------------------------------------------------------- */

static void test_many_keys_are_independent(void **state) {
  (void)state;
  struct ratelimit *rl = make(5, 1000, 3, 10000);
  struct ratelimit_result r;
  char key[32];
  for (int i = 0; i < 2000; i++) {
    snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
    for (int j = 0; j < 3; j++)
      assert_int_equal(check(rl, key, 100, &r), 1);
  }
  for (int i = 0; i < 2000; i++) {
    snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
    assert_int_equal(check(rl, key, 100, &r), 0);
  }
  assert_int_equal(ratelimit_size(rl), 2000);
  ratelimit_free(rl);
}

static void test_binary_and_long_keys(void **state) {
  (void)state;
  struct ratelimit *rl = make(1, 1000, 1, 64);
  struct ratelimit_result r;
  char a[300], b[300];
  memset(a, 'x', sizeof a);
  memcpy(b, a, sizeof b);
  b[299] = 'y'; /* long keys differing only at the end */
  assert_int_equal(ratelimit_check(rl, a, sizeof a, 0, &r), 1);
  assert_int_equal(ratelimit_check(rl, b, sizeof b, 0, &r), 1);
  assert_int_equal(ratelimit_check(rl, a, sizeof a, 0, &r), 0);
  assert_int_equal(ratelimit_check(rl, b, sizeof b, 0, &r), 0);
  /* A prefix of a key is another key; so is a 47/48-byte boundary pair. */
  assert_int_equal(ratelimit_check(rl, a, 47, 0, &r), 1);
  assert_int_equal(ratelimit_check(rl, a, 48, 0, &r), 1);
  assert_int_equal(ratelimit_check(rl, a, 47, 0, &r), 0);
  assert_int_equal(ratelimit_check(rl, a, 48, 0, &r), 0);
  /* Keys with NUL bytes. */
  assert_int_equal(ratelimit_check(rl, "a\0b", 3, 0, &r), 1);
  assert_int_equal(ratelimit_check(rl, "a\0c", 3, 0, &r), 1);
  assert_int_equal(ratelimit_check(rl, "a\0b", 3, 0, &r), 0);
  ratelimit_free(rl);
}

static void test_eviction_bound(void **state) {
  (void)state;
  char key[32];
  struct ratelimit_result r;
  const size_t bounds[] = {1, 7, 64, 4096};
  for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
    struct ratelimit *rl = make(1, 60000, 1, bounds[b]);
    for (int i = 0; i < 50000; i++) {
      snprintf(key, sizeof key, "k%d", i);
      /* Every new key is admitted even at a full table (fail open). */
      assert_int_equal(check(rl, key, 1000 + (uint64_t)i / 100, &r), 1);
      assert_true(ratelimit_size(rl) <= bounds[b]);
    }
    assert_true(ratelimit_size(rl) >= bounds[b] / 2);
    ratelimit_free(rl);
  }
}

static void test_eviction_keeps_the_keys_that_matter(void **state) {
  (void)state;
  struct ratelimit *rl = make(1, 1000, 5, 64); /* one shard of 64 */
  struct ratelimit_result r;
  char key[32];
  for (int i = 0; i < 63; i++) {
    snprintf(key, sizeof key, "old%d", i);
    check(rl, key, 0, &r); /* bucket full again at 1000 */
  }
  /* The abuser has drained its bucket: 5 s of debt. */
  for (int i = 0; i < 5; i++)
    assert_int_equal(check(rl, "abuser", 5000, &r), 1);
  assert_int_equal(check(rl, "abuser", 5000, &r), 0);
  /* A flood of new keys: expired entries go first, then those whose bucket
   * is nearest to full; the abuser's debt is never forgotten. */
  for (int i = 0; i < 500; i++) {
    snprintf(key, sizeof key, "new%d", i);
    assert_int_equal(check(rl, key, 5000, &r), 1);
    assert_true(ratelimit_size(rl) <= 64);
  }
  assert_int_equal(check(rl, "abuser", 5000, &r), 0);
  assert_int_equal(r.retry_after_ms, 1000);
  assert_int_equal(check(rl, "abuser", 5999, &r), 0);
  assert_int_equal(check(rl, "abuser", 6000, &r), 1);
  ratelimit_free(rl);
}

/* ---- policies ---------------------------------------------------------- */

static void test_per_key_policy(void **state) {
  (void)state;
  struct ratelimit *rl = make(1, 1000, 1, 64);
  struct ratelimit_policy gold = {100, 1000, 20};
  struct ratelimit_result r;
  for (int i = 0; i < 20; i++)
    assert_int_equal(ratelimit_check_policy(rl, &gold, "gold", 4, 0, &r), 1);
  assert_int_equal(r.limit, 20);
  assert_int_equal(r.rate, 100);
  assert_int_equal(ratelimit_check_policy(rl, &gold, "gold", 4, 0, &r), 0);
  assert_int_equal(r.retry_after_ms, 10);
  /* NULL = the default policy. */
  assert_int_equal(ratelimit_check_policy(rl, NULL, "free", 4, 0, &r), 1);
  assert_int_equal(ratelimit_check_policy(rl, NULL, "free", 4, 0, &r), 0);
  assert_int_equal(r.limit, 1);
  /* A key moved to another policy keeps the time it owes: gold owes
   * 200 ms; under 1/s with burst 1 that still blocks it until 200 ms. */
  assert_int_equal(check(rl, "gold", 0, &r), 0);
  assert_int_equal(r.retry_after_ms, 200);
  assert_int_equal(check(rl, "gold", 199, &r), 0);
  assert_int_equal(check(rl, "gold", 200, &r), 1);
  /* Invalid policies are refused, not applied. */
  struct ratelimit_policy bad = {0, 1000, 1};
  assert_true(ratelimit_check_policy(rl, &bad, "x", 1, 0, &r) < 0);
  ratelimit_free(rl);
}

static void test_invalid_arguments(void **state) {
  (void)state;
  struct ratelimit_policy p = {10, 1000, 0};
  struct ratelimit_result r;
  assert_int_equal(ratelimit_policy_check(&p), 0);
  const struct ratelimit_policy bad[] = {
      {0, 1000, 0},
      {10, 0, 0},
      {RATELIMIT_MAX_RATE + 1, 1000, 0},
      {10, RATELIMIT_MAX_PERIOD_MS + 1, 0},
      {10, 1000, RATELIMIT_MAX_RATE + 1},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(ratelimit_policy_check(&bad[i]), STRATA_EVALIDATION);
    assert_null(ratelimit_new(&bad[i], 10));
  }
  assert_int_equal(ratelimit_policy_check(NULL), STRATA_EVALIDATION);
  assert_null(ratelimit_new(&p, 0));
  struct ratelimit *rl = ratelimit_new(&p, 10);
  assert_non_null(rl);
  assert_true(ratelimit_check(rl, "k", 0, 0, &r) < 0);
  assert_true(ratelimit_check(rl, NULL, 1, 0, &r) < 0);
  assert_true(ratelimit_check(rl, "k", 1, UINT64_MAX, &r) < 0);
  /* The extremes of the allowed ranges do not overflow. */
  struct ratelimit_policy big = {RATELIMIT_MAX_RATE, RATELIMIT_MAX_PERIOD_MS, RATELIMIT_MAX_RATE};
  uint64_t now = (UINT64_C(1) << 43) - 1;
  assert_int_equal(ratelimit_check_policy(rl, &big, "k", 1, now, &r), 1);
  assert_int_equal(r.remaining, RATELIMIT_MAX_RATE - 1);
  assert_int_equal(r.reset_ms, 87); /* 86.4 ms, rounded up */
  ratelimit_free(rl);
  ratelimit_free(NULL);
}

/* ---- threads ----------------------------------------------------------- */

struct hammer {
  struct ratelimit *rl;
  unsigned allowed;
};

static void *hammer_run(void *arg) {
  struct hammer *h = arg;
  struct ratelimit_result r;
  for (int i = 0; i < 20000; i++) {
    if (ratelimit_check(h->rl, "shared", 6, 1000 + (uint64_t)i / 1000, &r) == 1)
      h->allowed++;
  }
  return NULL;
}

static void test_shared_between_threads(void **state) {
  (void)state;
  /* 8 threads, one key, time 1000..1019 ms: burst 50 plus 19 ms at 1/ms. */
  struct ratelimit *rl = make(1000, 1000, 50, 4096);
  struct hammer h[8];
  pthread_t th[8];
  for (int i = 0; i < 8; i++) {
    h[i] = (struct hammer){rl, 0};
    assert_int_equal(pthread_create(&th[i], NULL, hammer_run, &h[i]), 0);
  }
  unsigned total = 0;
  for (int i = 0; i < 8; i++) {
    pthread_join(th[i], NULL);
    total += h[i].allowed;
  }
  /* Threads do not move in lock step over time, but whatever the
   * interleaving the key can never get more than burst + elapsed ms. */
  assert_true(total <= 50 + 19);
  assert_true(total >= 50);
  ratelimit_free(rl);
}

/* ---- headers ----------------------------------------------------------- */

static void test_headers_allowed(void **state) {
  (void)state;
  struct ratelimit *rl = make(100, 60000, 0, 16);
  struct ratelimit_result r;
  char out[RATELIMIT_HEADERS_MAX];
  for (int i = 0; i < 3; i++)
    check(rl, "k", 0, &r);
  size_t n = ratelimit_headers(rl, &r, out, sizeof out);
  assert_string_equal(out, "RateLimit-Policy: \"default\";q=100;w=60\r\n"
                           "RateLimit: \"default\";r=97;t=2\r\n");
  assert_int_equal(n, strlen(out));
  ratelimit_free(rl);
}

static void test_headers_limited(void **state) {
  (void)state;
  struct ratelimit *rl = make(2, 1000, 5, 16);
  struct ratelimit_result r;
  char out[RATELIMIT_HEADERS_MAX];
  for (int i = 0; i < 6; i++)
    check(rl, "k", 0, &r);
  assert_int_equal(r.allowed, 0);
  ratelimit_headers(NULL, &r, out, sizeof out);
  assert_string_equal(out, "RateLimit-Policy: \"default\";q=2;w=1;strata-burst=5\r\n"
                           "RateLimit: \"default\";r=0;t=1\r\n"
                           "Retry-After: 1\r\n");
  /* Retry-After rounds up: 1 ms to wait is still "1". */
  check(rl, "k", 499, &r);
  assert_int_equal(r.retry_after_ms, 1);
  ratelimit_headers(NULL, &r, out, sizeof out);
  assert_non_null(strstr(out, "Retry-After: 1\r\n"));
  ratelimit_free(rl);

  rl = make(1, 90000, 1, 16);
  check(rl, "k", 0, &r);
  check(rl, "k", 0, &r);
  ratelimit_headers(NULL, &r, out, sizeof out);
  assert_string_equal(out, "RateLimit-Policy: \"default\";q=1;w=90\r\n"
                           "RateLimit: \"default\";r=0;t=90\r\n"
                           "Retry-After: 90\r\n");
  ratelimit_free(rl);
}

static void test_headers_sub_second_period_and_cap(void **state) {
  (void)state;
  struct ratelimit *rl = make(5, 500, 5, 16);
  struct ratelimit_result r;
  char out[RATELIMIT_HEADERS_MAX];
  check(rl, "k", 0, &r);
  ratelimit_headers(rl, &r, out, sizeof out);
  assert_string_equal(out, "RateLimit-Policy: \"default\";q=10;w=1;strata-burst=5\r\n"
                           "RateLimit: \"default\";r=4;t=1\r\n");
  size_t need = strlen(out);
  char small[128];
  assert_int_equal(ratelimit_headers(rl, &r, small, need), 0);
  assert_string_equal(small, "");
  assert_int_equal(ratelimit_headers(rl, &r, small, 0), 0);
  char exact[128];
  assert_int_equal(ratelimit_headers(rl, &r, exact, need + 1), need);
  /* The largest numbers fit RATELIMIT_HEADERS_MAX. */
  struct ratelimit_result big = {0, UINT32_MAX, UINT32_MAX, UINT64_MAX, UINT64_MAX,
                                 RATELIMIT_MAX_RATE, 1};
  assert_true(ratelimit_headers(NULL, &big, out, sizeof out) > 0);
  ratelimit_free(rl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_burst_then_steady),
      cmocka_unit_test(test_hammering_gets_exactly_the_rate),
      cmocka_unit_test(test_retry_after_is_exact_and_rounded_up),
      cmocka_unit_test(test_burst_differs_from_rate),
      cmocka_unit_test(test_reset_and_refill),
      cmocka_unit_test(test_clock_going_back_is_harmless),
      cmocka_unit_test(test_many_keys_are_independent),
      cmocka_unit_test(test_binary_and_long_keys),
      cmocka_unit_test(test_eviction_bound),
      cmocka_unit_test(test_eviction_keeps_the_keys_that_matter),
      cmocka_unit_test(test_per_key_policy),
      cmocka_unit_test(test_invalid_arguments),
      cmocka_unit_test(test_shared_between_threads),
      cmocka_unit_test(test_headers_allowed),
      cmocka_unit_test(test_headers_limited),
      cmocka_unit_test(test_headers_sub_second_period_and_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
