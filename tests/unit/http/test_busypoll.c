/* Unit tests for src/http/busypoll.c: the window's growth and decay, and
 * the driver running a real libuv loop to its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http/busypoll.h"

static void test_adapt_grows_and_decays(void **state) {
  struct busypoll bp;
  (void)state;
  busypoll_init(&bp, 100);
  assert_true(bp.limit_ns == 100000 && bp.window_ns == 0);
  busypoll_adapt(&bp, 30000); /* a 30us wait: a spin would have caught it */
  assert_true(bp.window_ns == BUSYPOLL_GROW_START_NS);
  busypoll_adapt(&bp, 30000);
  assert_true(bp.window_ns == 20000);
  busypoll_adapt(&bp, 100000); /* at the limit still counts */
  assert_true(bp.window_ns == 40000);
  busypoll_adapt(&bp, 60000);
  busypoll_adapt(&bp, 60000);
  assert_true(bp.window_ns == 100000); /* capped */
  busypoll_adapt(&bp, 100001);         /* longer than the limit: halve */
  assert_true(bp.window_ns == 50000);
  busypoll_adapt(&bp, 5000000);
  busypoll_adapt(&bp, 5000000);
  assert_true(bp.window_ns == 12500);
  busypoll_adapt(&bp, 5000000); /* under the start value: stop spinning */
  assert_true(bp.window_ns == 0);
  busypoll_adapt(&bp, 5000000);
  assert_true(bp.window_ns == 0);
}

static void test_adapt_small_limit(void **state) {
  struct busypoll bp;
  (void)state;
  busypoll_init(&bp, 5); /* below the start value: the limit caps it */
  busypoll_adapt(&bp, 1000);
  assert_true(bp.window_ns == 5000);
  busypoll_adapt(&bp, 6000);
  assert_true(bp.window_ns == 0);
}

struct ticker {
  uv_timer_t timer;
  int left;
};

static void on_tick(uv_timer_t *t) {
  struct ticker *k = (struct ticker *)t;
  if (--k->left == 0)
    uv_close((uv_handle_t *)t, NULL);
}

/* A timer ticking every interval_ms, ticks times, under the driver: the run
 * must end when the timer is closed; returns the window it ended with. */
static uint64_t run_ticks(uint32_t limit_us, uint64_t interval_ms, int ticks) {
  uv_loop_t loop;
  struct ticker k = { .left = ticks };
  struct busypoll bp;
  assert_int_equal(uv_loop_init(&loop), 0);
  uv_timer_init(&loop, &k.timer);
  uv_timer_start(&k.timer, on_tick, interval_ms, interval_ms);
  busypoll_init(&bp, limit_us);
  busypoll_run(&bp, &loop);
  assert_int_equal(k.left, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  return bp.window_ns;
}

static void test_run_ends_with_the_loop(void **state) {
  (void)state;
  assert_true(run_ticks(0, 1, 3) == 0); /* off: plain uv_run */
  /* Waits of about 2ms against a 100us limit: never worth a spin. */
  assert_true(run_ticks(100, 2, 10) == 0);
  /* Waits of about 1ms against a 10ms limit: the window grows. */
  assert_true(run_ticks(10000, 1, 10) > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_adapt_grows_and_decays),
    cmocka_unit_test(test_adapt_small_limit),
    cmocka_unit_test(test_run_ends_with_the_loop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
