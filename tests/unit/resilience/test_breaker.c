/* Unit tests for src/resilience/breaker.c.
 *
 * Time is a number the tests move by hand, so every transition happens at a
 * known millisecond. Most tests use a small breaker (min 4 calls, 10 s
 * window, 5 s cool-down, 3 probes) and a hook that records every transition,
 * so each test can say exactly which changes happened, in which order and
 * why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/error.h"
#include "resilience/breaker.h"

#define T0 1000000ull /* an arbitrary start on the monotonic clock */

struct change {
  enum breaker_state from, to;
  const char *reason;
  uint64_t at;
  enum breaker_state seen; /* breaker_state() from inside the hook */
  struct breaker_stats stats;
};

struct recorder {
  struct change log[32];
  unsigned n;
};

static void on_transition(void *ctx, const struct breaker *b, enum breaker_state from,
                          enum breaker_state to, const char *reason, uint64_t now_ms) {
  struct recorder *r = ctx;
  assert_true(r->n < sizeof r->log / sizeof r->log[0]);
  struct change *c = &r->log[r->n++];
  c->from = from;
  c->to = to;
  c->reason = reason;
  c->at = now_ms;
  c->seen = breaker_state(b);
  breaker_stats(b, now_ms, &c->stats);
}

static void small(struct breaker *b, struct recorder *r) {
  struct breaker_config cfg = {.min_calls = 4, .window_s = 10, .open_ms = 5000,
                               .half_open_probes = 3};
  assert_int_equal(breaker_init(b, &cfg), 0);
  memset(r, 0, sizeof *r);
  breaker_set_transition_cb(b, on_transition, r);
}

static void expect_change(const struct recorder *r, unsigned i, enum breaker_state from,
                          enum breaker_state to, const char *reason) {
  assert_true(i < r->n);
  assert_int_equal(r->log[i].from, from);
  assert_int_equal(r->log[i].to, to);
  assert_string_equal(r->log[i].reason, reason);
  assert_int_equal(r->log[i].seen, to);
}

/* Admits and reports n calls at now, all with the same outcome. */
static void calls(struct breaker *b, uint64_t now, unsigned n, int success, uint32_t ms) {
  for (unsigned i = 0; i < n; i++) {
    assert_int_equal(breaker_allow(b, now), 1);
    breaker_report(b, now, success, ms);
  }
}

/* Opens a small breaker at T0 with 4 failures. */
static void trip(struct breaker *b, struct recorder *r) {
  small(b, r);
  calls(b, T0, 4, 0, 10);
  assert_int_equal(breaker_state(b), BREAKER_OPEN);
}

static void test_defaults_and_validation(void **state) {
  struct breaker b;
  struct breaker_config cfg;
  (void)state;
  assert_int_equal(breaker_init(&b, NULL), 0);
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
  assert_int_equal(b.cfg.failure_rate_pct, 50);
  assert_int_equal(b.cfg.slow_rate_pct, 100);
  assert_int_equal(b.cfg.min_calls, 20);
  assert_int_equal(b.cfg.window_s, 10);
  assert_int_equal(b.cfg.open_ms, 5000);
  assert_int_equal(b.cfg.half_open_probes, 3);

  memset(&cfg, 0, sizeof cfg); /* all zero: all defaults */
  assert_int_equal(breaker_init(&b, &cfg), 0);
  assert_int_equal(b.cfg.min_calls, 20);
  assert_int_equal(b.cfg.slow_call_ms, BREAKER_DEFAULT_SLOW_CALL_MS);

  breaker_config_default(&cfg);
  cfg.failure_rate_pct = 101;
  assert_int_equal(breaker_init(&b, &cfg), STRATA_EVALIDATION);
  breaker_config_default(&cfg);
  cfg.slow_rate_pct = 150;
  assert_int_equal(breaker_init(&b, &cfg), STRATA_EVALIDATION);
  breaker_config_default(&cfg);
  cfg.window_s = WINDOW_MAX_SECONDS + 1;
  assert_int_equal(breaker_init(&b, &cfg), STRATA_EVALIDATION);
  cfg.window_s = WINDOW_MAX_SECONDS;
  assert_int_equal(breaker_init(&b, &cfg), 0);

  assert_string_equal(breaker_state_name(BREAKER_CLOSED), "closed");
  assert_string_equal(breaker_state_name(BREAKER_OPEN), "open");
  assert_string_equal(breaker_state_name(BREAKER_HALF_OPEN), "half_open");
  assert_string_equal(breaker_state_name((enum breaker_state)42), "unknown");
}

static void test_min_volume(void **state) {
  struct breaker b;
  struct recorder r;
  (void)state;
  assert_int_equal(breaker_init(&b, NULL), 0); /* min_calls 20 */
  memset(&r, 0, sizeof r);
  breaker_set_transition_cb(&b, on_transition, &r);
  calls(&b, T0, 19, 0, 5); /* 100% failures, but too few calls to judge */
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
  assert_int_equal(r.n, 0);
  calls(&b, T0, 1, 0, 5);
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
  assert_int_equal(r.n, 1);
  expect_change(&r, 0, BREAKER_CLOSED, BREAKER_OPEN, BREAKER_REASON_FAILURE_RATE);
  /* The hook sees the window that tripped it. */
  assert_int_equal(r.log[0].stats.calls, 20);
  assert_int_equal(r.log[0].stats.failures, 20);
  assert_int_equal(r.log[0].stats.counters.opened_total, 1);
}

static void test_failure_rate_threshold(void **state) {
  struct breaker b;
  struct recorder r;
  (void)state;
  assert_int_equal(breaker_init(&b, NULL), 0);
  memset(&r, 0, sizeof r);
  breaker_set_transition_cb(&b, on_transition, &r);
  /* 9 failures in 20 calls: 45% < 50%. */
  calls(&b, T0, 11, 1, 5);
  calls(&b, T0, 9, 0, 5);
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
  /* One more failure: 10 of 21 = 47.6%, still under. */
  calls(&b, T0, 1, 0, 5);
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
  /* 11 of 22 = 50%: the threshold is reached, ">=" trips. */
  calls(&b, T0, 1, 0, 5);
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
  expect_change(&r, 0, BREAKER_CLOSED, BREAKER_OPEN, BREAKER_REASON_FAILURE_RATE);

  /* A threshold of 100% needs every call to fail. */
  struct breaker_config cfg = {.failure_rate_pct = 100, .min_calls = 4};
  assert_int_equal(breaker_init(&b, &cfg), 0);
  calls(&b, T0, 1, 1, 5);
  calls(&b, T0, 10, 0, 5);
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
}

static void test_slow_calls_trip(void **state) {
  struct breaker b;
  struct recorder r;
  (void)state;
  /* Off by default (slow_rate_pct 100): all calls slow, none trip it. */
  assert_int_equal(breaker_init(&b, NULL), 0);
  calls(&b, T0, 100, 1, 60000);
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);

  struct breaker_config cfg = {.slow_rate_pct = 50, .slow_call_ms = 200, .min_calls = 10};
  assert_int_equal(breaker_init(&b, &cfg), 0);
  memset(&r, 0, sizeof r);
  breaker_set_transition_cb(&b, on_transition, &r);
  calls(&b, T0, 5, 1, 199); /* just under: fast */
  calls(&b, T0, 4, 1, 200); /* exactly the duration: slow */
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED); /* 9 calls < min */
  calls(&b, T0, 1, 1, 5000); /* 5 slow of 10 = 50% */
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
  expect_change(&r, 0, BREAKER_CLOSED, BREAKER_OPEN, BREAKER_REASON_SLOW_CALL_RATE);
  assert_int_equal(r.log[0].stats.slow, 5);
  assert_int_equal(r.log[0].stats.failures, 0);

  /* A failure rate and a slow rate both over: the failure rate is named. */
  assert_int_equal(breaker_init(&b, &cfg), 0);
  memset(&r, 0, sizeof r);
  breaker_set_transition_cb(&b, on_transition, &r);
  calls(&b, T0, 10, 0, 5000);
  expect_change(&r, 0, BREAKER_CLOSED, BREAKER_OPEN, BREAKER_REASON_FAILURE_RATE);
}

static void test_open_rejects_with_retry_after(void **state) {
  struct breaker b;
  struct recorder r;
  struct breaker_counters c;
  (void)state;
  trip(&b, &r);
  assert_int_equal(breaker_retry_after_ms(&b, T0), 5000);
  assert_int_equal(breaker_allow(&b, T0 + 1), 0);
  assert_int_equal(breaker_retry_after_ms(&b, T0 + 1), 4999);
  assert_int_equal(breaker_allow(&b, T0 + 4999), 0);
  assert_int_equal(breaker_retry_after_ms(&b, T0 + 4999), 1);
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
  breaker_counters(&b, &c);
  assert_int_equal(c.rejected_total, 2);
  assert_int_equal(c.opened_total, 1);
  assert_int_equal(c.closed_total, 0);
  assert_int_equal(breaker_retry_after_ms(&b, T0 + 6000), 0); /* wait over */

  struct breaker fresh;
  assert_int_equal(breaker_init(&fresh, NULL), 0);
  assert_int_equal(breaker_retry_after_ms(&fresh, T0), 0); /* closed */
}

static void test_cool_down_to_half_open(void **state) {
  struct breaker b;
  struct recorder r;
  (void)state;
  trip(&b, &r);
  /* Time alone changes nothing: the next allow() does. */
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
  assert_int_equal(breaker_allow(&b, T0 + 5000), 1);
  assert_int_equal(breaker_state(&b), BREAKER_HALF_OPEN);
  assert_int_equal(r.n, 2);
  expect_change(&r, 1, BREAKER_OPEN, BREAKER_HALF_OPEN, BREAKER_REASON_COOL_DOWN);
  assert_int_equal(r.log[1].at, T0 + 5000);
}

static void test_probe_limit(void **state) {
  struct breaker b;
  struct recorder r;
  struct breaker_counters c;
  (void)state;
  trip(&b, &r);
  uint64_t t = T0 + 5000;
  assert_int_equal(breaker_allow(&b, t), 1);
  assert_int_equal(breaker_allow(&b, t), 1);
  assert_int_equal(breaker_allow(&b, t), 1);
  assert_int_equal(breaker_allow(&b, t), 0); /* 3 probes in flight: no more */
  assert_int_equal(breaker_allow(&b, t + 100), 0);
  breaker_counters(&b, &c);
  assert_int_equal(c.rejected_total, 2);
  /* Retry-After while half-open: when the round's permits would be renewed. */
  assert_int_equal(breaker_retry_after_ms(&b, t + 100), 4900);
  /* A round has 3 permits in all: one success frees no new permit. */
  breaker_report(&b, t + 200, 1, 10);
  assert_int_equal(breaker_state(&b), BREAKER_HALF_OPEN);
  assert_int_equal(breaker_allow(&b, t + 200), 0);
}

static void test_probes_succeed_close(void **state) {
  struct breaker b;
  struct recorder r;
  struct breaker_counters c;
  struct breaker_stats st;
  (void)state;
  trip(&b, &r);
  uint64_t t = T0 + 5000;
  for (int i = 0; i < 3; i++)
    assert_int_equal(breaker_allow(&b, t), 1);
  breaker_report(&b, t + 10, 1, 10);
  breaker_report(&b, t + 20, 1, 10);
  assert_int_equal(breaker_state(&b), BREAKER_HALF_OPEN); /* all must succeed */
  breaker_report(&b, t + 30, 1, 10);
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
  assert_int_equal(r.n, 3);
  expect_change(&r, 2, BREAKER_HALF_OPEN, BREAKER_CLOSED, BREAKER_REASON_PROBES_SUCCEEDED);
  breaker_counters(&b, &c);
  assert_int_equal(c.closed_total, 1);
  /* Closed with a clean window: the failures that tripped it (still inside
   * the 10 s window) are forgotten, so three new ones do not reopen it. */
  breaker_stats(&b, t + 30, &st);
  assert_int_equal(st.state, BREAKER_CLOSED);
  assert_int_equal(st.calls, 0);
  calls(&b, t + 40, 3, 0, 10);
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
  calls(&b, t + 40, 1, 0, 10); /* the fourth does: min_calls again */
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
}

static void test_probe_failure_reopens(void **state) {
  struct breaker b;
  struct recorder r;
  struct breaker_counters c;
  (void)state;
  trip(&b, &r);
  uint64_t t = T0 + 5000;
  for (int i = 0; i < 3; i++)
    assert_int_equal(breaker_allow(&b, t), 1);
  breaker_report(&b, t + 10, 1, 10);
  breaker_report(&b, t + 20, 0, 10); /* one failure is enough */
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
  expect_change(&r, 2, BREAKER_HALF_OPEN, BREAKER_OPEN, BREAKER_REASON_PROBE_FAILED);
  breaker_counters(&b, &c);
  assert_int_equal(c.opened_total, 2);
  /* A new cool-down, counted from the reopening. */
  assert_int_equal(breaker_retry_after_ms(&b, t + 20), 5000);
  assert_int_equal(breaker_allow(&b, t + 5019), 0);
  /* The last probe of the failed round ends in success: it must not close
   * the breaker, nor move the cool-down. */
  breaker_report(&b, t + 30, 1, 10);
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
  assert_int_equal(breaker_retry_after_ms(&b, t + 30), 4990);
  assert_int_equal(breaker_allow(&b, t + 5020), 1);
  assert_int_equal(breaker_state(&b), BREAKER_HALF_OPEN);
  assert_int_equal(r.n, 4);
}

static void test_slow_probe_reopens(void **state) {
  struct breaker b;
  struct recorder r;
  (void)state;
  struct breaker_config cfg = {.slow_rate_pct = 50, .slow_call_ms = 100, .min_calls = 4,
                               .open_ms = 1000, .half_open_probes = 1};
  assert_int_equal(breaker_init(&b, &cfg), 0);
  memset(&r, 0, sizeof r);
  breaker_set_transition_cb(&b, on_transition, &r);
  calls(&b, T0, 4, 1, 150);
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
  assert_int_equal(breaker_allow(&b, T0 + 1000), 1);
  breaker_report(&b, T0 + 1150, 1, 150); /* succeeded, but slowly */
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
  expect_change(&r, 2, BREAKER_HALF_OPEN, BREAKER_OPEN, BREAKER_REASON_PROBE_SLOW);
  assert_int_equal(breaker_allow(&b, T0 + 2150), 1);
  breaker_report(&b, T0 + 2160, 1, 10);
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);

  /* Slow-call tripping off: a slow probe that succeeds is a success. */
  struct breaker_config off = {.min_calls = 4, .slow_call_ms = 100, .half_open_probes = 1};
  assert_int_equal(breaker_init(&b, &off), 0);
  calls(&b, T0, 4, 0, 10);
  assert_int_equal(breaker_allow(&b, T0 + 5000), 1);
  breaker_report(&b, T0 + 9000, 1, 4000);
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
}

static void test_late_reports_ignored(void **state) {
  struct breaker b;
  struct recorder r;
  struct breaker_counters c;
  (void)state;
  small(&b, &r);
  /* Ten calls admitted while CLOSED; four fail and trip the breaker. */
  for (int i = 0; i < 10; i++)
    assert_int_equal(breaker_allow(&b, T0), 1);
  for (int i = 0; i < 4; i++)
    breaker_report(&b, T0 + 100, 0, 100);
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
  /* The other six end while OPEN: successes do not close it, failures do
   * not reopen or extend it. */
  for (int i = 0; i < 3; i++)
    breaker_report(&b, T0 + 200, 1, 200);
  for (int i = 0; i < 3; i++)
    breaker_report(&b, T0 + 300, 0, 300);
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
  assert_int_equal(breaker_retry_after_ms(&b, T0 + 300), 4800);
  breaker_counters(&b, &c);
  assert_int_equal(c.opened_total, 1);
  assert_int_equal(r.n, 1);

  /* Half-open with no probe in flight: a stray report is not a probe. */
  assert_int_equal(breaker_allow(&b, T0 + 5100), 1);
  breaker_report(&b, T0 + 5110, 1, 10); /* the probe */
  breaker_report(&b, T0 + 5120, 0, 10); /* nobody's: no probe in flight */
  breaker_report(&b, T0 + 5130, 1, 10);
  assert_int_equal(breaker_state(&b), BREAKER_HALF_OPEN);
  assert_int_equal(r.n, 2);
  /* The round goes on with its two remaining permits. */
  assert_int_equal(breaker_allow(&b, T0 + 5140), 1);
  assert_int_equal(breaker_allow(&b, T0 + 5140), 1);
  assert_int_equal(breaker_allow(&b, T0 + 5140), 0);
  breaker_report(&b, T0 + 5150, 1, 10);
  breaker_report(&b, T0 + 5150, 1, 10);
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
}

static void test_lost_probes_renew_round(void **state) {
  struct breaker b;
  struct recorder r;
  (void)state;
  trip(&b, &r);
  uint64_t t = T0 + 5000;
  for (int i = 0; i < 3; i++)
    assert_int_equal(breaker_allow(&b, t), 1);
  /* The probes never report (their requests were abandoned). */
  assert_int_equal(breaker_allow(&b, t + 4999), 0);
  assert_int_equal(breaker_allow(&b, t + 5000), 1); /* a fresh round */
  assert_int_equal(breaker_state(&b), BREAKER_HALF_OPEN);
  assert_int_equal(r.n, 2); /* not a state change: no hook */
  assert_int_equal(breaker_allow(&b, t + 5000), 1);
  assert_int_equal(breaker_allow(&b, t + 5000), 1);
  assert_int_equal(breaker_allow(&b, t + 5000), 0);
  for (int i = 0; i < 3; i++)
    breaker_report(&b, t + 5010, 1, 10);
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
}

static void test_window_slides(void **state) {
  struct breaker b;
  struct breaker_stats st;
  struct breaker_config cfg = {.min_calls = 20, .window_s = 10};
  (void)state;
  /* 15 failures at second 0, 5 more at 9.999 s: all 20 in the window. */
  assert_int_equal(breaker_init(&b, &cfg), 0);
  calls(&b, 0, 15, 0, 5);
  calls(&b, 9999, 4, 0, 5);
  breaker_stats(&b, 9999, &st);
  assert_int_equal(st.calls, 19);
  calls(&b, 9999, 1, 0, 5);
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);

  /* The same 5 at 10.0 s: second 0 has left the window, 5 < min. */
  assert_int_equal(breaker_init(&b, &cfg), 0);
  calls(&b, 500, 15, 0, 5);
  breaker_stats(&b, 10000, &st); /* read-only view moves with time */
  assert_int_equal(st.calls, 0);
  breaker_stats(&b, 9999, &st);
  assert_int_equal(st.calls, 15);
  calls(&b, 10000, 5, 0, 5);
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
  breaker_stats(&b, 10000, &st);
  assert_int_equal(st.calls, 5);
  assert_int_equal(st.failures, 5);

  /* A steady trickle of failures, one every 600 ms, never reaches 20 calls
   * in 10 s; the old ones keep falling out. */
  assert_int_equal(breaker_init(&b, &cfg), 0);
  for (uint64_t t = 0; t < 600000; t += 600)
    calls(&b, T0 + t, 1, 0, 5);
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);

  /* A long quiet spell empties everything at once. */
  assert_int_equal(breaker_init(&b, &cfg), 0);
  calls(&b, T0, 19, 0, 5);
  calls(&b, T0 + 3600000, 19, 0, 5);
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);

  /* Successes dilute: 19 failures and 21 successes in the window. */
  assert_int_equal(breaker_init(&b, &cfg), 0);
  calls(&b, T0, 21, 1, 5);
  calls(&b, T0 + 1000, 19, 0, 5);
  assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
  /* Ten seconds on, the successes' second has left the window: the 19
   * failures plus one new one are 20 calls, all failed. */
  calls(&b, T0 + 10000, 1, 0, 5);
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
  breaker_stats(&b, T0 + 10000, &st); /* the window is kept while OPEN */
  assert_int_equal(st.calls, 20);
  assert_int_equal(st.failures, 20);
}

static void test_hook_sequence_and_removal(void **state) {
  struct breaker b;
  struct recorder r;
  (void)state;
  trip(&b, &r);
  uint64_t t = T0 + 5000;
  assert_int_equal(breaker_allow(&b, t), 1);
  breaker_report(&b, t, 0, 10);              /* reopen */
  assert_int_equal(breaker_allow(&b, t + 5000), 1);
  assert_int_equal(breaker_allow(&b, t + 5000), 1);
  assert_int_equal(breaker_allow(&b, t + 5000), 1);
  for (int i = 0; i < 3; i++)
    breaker_report(&b, t + 5001, 1, 10);     /* close */
  assert_int_equal(r.n, 5);
  expect_change(&r, 0, BREAKER_CLOSED, BREAKER_OPEN, BREAKER_REASON_FAILURE_RATE);
  expect_change(&r, 1, BREAKER_OPEN, BREAKER_HALF_OPEN, BREAKER_REASON_COOL_DOWN);
  expect_change(&r, 2, BREAKER_HALF_OPEN, BREAKER_OPEN, BREAKER_REASON_PROBE_FAILED);
  expect_change(&r, 3, BREAKER_OPEN, BREAKER_HALF_OPEN, BREAKER_REASON_COOL_DOWN);
  expect_change(&r, 4, BREAKER_HALF_OPEN, BREAKER_CLOSED, BREAKER_REASON_PROBES_SUCCEEDED);
  assert_int_equal(r.log[0].at, T0);
  assert_int_equal(r.log[2].at, t);
  assert_int_equal(r.log[4].at, t + 5001);

  breaker_set_transition_cb(&b, NULL, NULL);
  calls(&b, t + 6000, 4, 0, 10);
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
  assert_int_equal(r.n, 5);
}

static void test_clock_going_back(void **state) {
  struct breaker b;
  struct recorder r;
  (void)state;
  trip(&b, &r);
  /* An earlier now never underflows into a huge elapsed time. */
  assert_int_equal(breaker_allow(&b, T0 - 1000), 0);
  assert_int_equal(breaker_retry_after_ms(&b, T0 - 1000), 6000);
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
  small(&b, &r);
  calls(&b, T0 + 5000, 2, 0, 10);
  calls(&b, T0, 2, 0, 10); /* counted in the newest second */
  assert_int_equal(breaker_state(&b), BREAKER_OPEN);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_and_validation),
      cmocka_unit_test(test_min_volume),
      cmocka_unit_test(test_failure_rate_threshold),
      cmocka_unit_test(test_slow_calls_trip),
      cmocka_unit_test(test_open_rejects_with_retry_after),
      cmocka_unit_test(test_cool_down_to_half_open),
      cmocka_unit_test(test_probe_limit),
      cmocka_unit_test(test_probes_succeed_close),
      cmocka_unit_test(test_probe_failure_reopens),
      cmocka_unit_test(test_slow_probe_reopens),
      cmocka_unit_test(test_late_reports_ignored),
      cmocka_unit_test(test_lost_probes_renew_round),
      cmocka_unit_test(test_window_slides),
      cmocka_unit_test(test_hook_sequence_and_removal),
      cmocka_unit_test(test_clock_going_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
