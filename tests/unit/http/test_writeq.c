/* Unit tests for src/http/writeq.c.
 *
 * A socketpair stands for a connection: one end is a libuv pipe written
 * through the queue, the other a plain fd the test reads (or does not read,
 * to fill the socket buffers). The loop is turned by hand. */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/writeq.h"

struct fixture {
  uv_loop_t loop;
  uv_pipe_t pipe;
  int peer;
  struct writeq q;
  int calls, last_status;
};

static void on_written(struct writeq *q, int status) {
  struct fixture *f = q->data;
  f->calls++;
  f->last_status = status;
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  int small = 16384;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  uv_loop_init(&f->loop);
  uv_pipe_init(&f->loop, &f->pipe, 0);
  assert_int_equal(uv_pipe_open(&f->pipe, sv[0]), 0);
  f->peer = sv[1];
  writeq_init(&f->q, (uv_stream_t *)&f->pipe, on_written, f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  uv_close((uv_handle_t *)&f->pipe, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  writeq_release(&f->q);
  uv_loop_close(&f->loop);
  if (f->peer >= 0)
    close(f->peer);
  free(f);
  return 0;
}

/* Reads what the peer has into out (at most cap), turning the loop. */
static size_t drain(struct fixture *f, unsigned char *out, size_t cap, size_t want) {
  size_t got = 0;
  for (int i = 0; i < 100000 && got < want; i++) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    ssize_t n = read(f->peer, out + got, cap - got);
    if (n > 0)
      got += (size_t)n;
  }
  uv_run(&f->loop, UV_RUN_NOWAIT);
  return got;
}

static void test_small_write_goes_straight_out(void **state) {
  struct fixture *f = *state;
  uv_buf_t b[2] = {uv_buf_init((char *)"hello ", 6), uv_buf_init((char *)"world", 5)};
  assert_int_equal(writeq_write(&f->q, b, 2), 0);
  assert_int_equal(writeq_queued(&f->q), 0);
  assert_null(f->q.busy); /* nothing copied */
  unsigned char out[32];
  assert_int_equal(drain(f, out, sizeof out, 11), 11);
  assert_memory_equal(out, "hello world", 11);
  assert_int_equal(f->calls, 0);
}

static void test_full_socket_queues_in_order_and_drains(void **state) {
  struct fixture *f = *state;
  enum { PIECE = 8192, PIECES = 64 };
  static unsigned char sent[PIECE * PIECES], got[PIECE * PIECES];
  for (size_t i = 0; i < sizeof sent; i++)
    sent[i] = (unsigned char)(i * 131 + i / 977);
  int queued_once = 0;
  for (int i = 0; i < PIECES; i++) {
    uv_buf_t b = uv_buf_init((char *)sent + i * PIECE, PIECE);
    int r = writeq_write(&f->q, &b, 1);
    assert_true(r == 0 || r == 1);
    queued_once |= r == 1;
  }
  assert_true(queued_once); /* the peer reads nothing yet: the socket filled */
  assert_true(writeq_queued(&f->q) > 0);
  assert_int_equal(drain(f, got, sizeof got, sizeof got), sizeof got);
  assert_memory_equal(got, sent, sizeof sent);
  assert_int_equal(writeq_queued(&f->q), 0);
  assert_true(f->calls > 0);
  assert_int_equal(f->last_status, 0);
  writeq_release(&f->q);
  assert_null(f->q.busy);
  assert_null(f->q.next);
}

static void test_closed_peer_fails(void **state) {
  struct fixture *f = *state;
  close(f->peer);
  f->peer = -1;
  static char big[65536];
  uv_buf_t b = uv_buf_init(big, sizeof big);
  int r = 0;
  for (int i = 0; i < 100 && r >= 0; i++) {
    r = writeq_write(&f->q, &b, 1);
    uv_run(&f->loop, UV_RUN_NOWAIT);
  }
  assert_true(r < 0);
  assert_int_equal(writeq_write(&f->q, &b, 1), r); /* stays failed */
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* as the server does: a closed peer is an error, not a signal */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_small_write_goes_straight_out, setup, teardown),
      cmocka_unit_test_setup_teardown(test_full_socket_queues_in_order_and_drains, setup, teardown),
      cmocka_unit_test_setup_teardown(test_closed_peer_fails, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
