/* Unit tests for src/http/busypoll.c: the window's growth and decay, and
 * the driver running real libuv loops: to their end, and with events from
 * another thread sizing the window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

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
  /* Timers are not events: they never size the window. */
  assert_true(run_ticks(10000, 1, 10) == 0);
}

/* Bytes written to a socketpair by another thread, read by the loop as
 * events (the read callback counts them as the server's do). */
struct feed {
  uv_pipe_t pipe;
  int peer;
  struct busypoll *bp;
  int got, want;
  uint64_t widest; /* the largest window seen while reading */
  struct { int count, gap_us; } phases[2];
};

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  static char space[64];
  (void)h;
  (void)size;
  *buf = uv_buf_init(space, sizeof space);
}

static void on_feed(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct feed *f = (struct feed *)s;
  (void)buf;
  busypoll_note();
  if (f->bp->window_ns > f->widest)
    f->widest = f->bp->window_ns;
  if (n > 0)
    f->got += (int)n;
  if (n < 0 || f->got >= f->want)
    uv_close((uv_handle_t *)s, NULL);
}

/* Ends by closing its end: a failed write shows as bytes missing. */
static void writer(void *arg) {
  struct feed *f = arg;
  for (int p = 0; p < 2; p++)
    for (int i = 0; i < f->phases[p].count; i++) {
      usleep((useconds_t)f->phases[p].gap_us);
      if (write(f->peer, "x", 1) != 1)
        goto done;
    }
done:
  close(f->peer);
}

static void test_events_size_the_window(void **state) {
  int sv[2];
  uv_loop_t loop;
  uv_thread_t thread;
  struct busypoll bp;
  struct feed f = { .bp = &bp, .phases = { { 40, 1000 }, { 14, 25000 } } };
  (void)state;
  f.want = f.phases[0].count + f.phases[1].count;
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  f.peer = sv[1];
  assert_int_equal(uv_loop_init(&loop), 0);
  uv_pipe_init(&loop, &f.pipe, 0);
  assert_int_equal(uv_pipe_open(&f.pipe, sv[0]), 0);
  uv_read_start((uv_stream_t *)&f.pipe, on_alloc, on_feed);
  busypoll_init(&bp, 10000);
  assert_int_equal(uv_thread_create(&thread, writer, &f), 0);
  busypoll_run(&bp, &loop);
  uv_thread_join(&thread);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(f.got, f.want);
  /* Bytes about 1ms apart, under the 10ms limit: the spin grew... */
  assert_true(f.widest >= 2 * BUSYPOLL_GROW_START_NS);
  /* ...and 25ms apart, over it, it decayed to nothing. */
  assert_true(bp.window_ns == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_adapt_grows_and_decays),
    cmocka_unit_test(test_adapt_small_limit),
    cmocka_unit_test(test_run_ends_with_the_loop),
    cmocka_unit_test(test_events_size_the_window),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
