/* Unit tests for src/http/chunkline.c, and for the reason it exists: the
 * lines it reduces are ones Debian's llhttp refuses as sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <llhttp.h>

#include "http/chunkline.h"

static long reduce(const char *line, char *out, size_t *out_len) {
  return chunkline_reduce(line, strlen(line), out, out_len);
}

static void expect_reduced(const char *line, const char *want, long used) {
  char out[CHUNKLINE_OUT_MAX];
  size_t n = 0;
  assert_int_equal(reduce(line, out, &n), used);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(out, want, n);
}

static void test_valid_lines_reduce_to_the_size(void **state) {
  (void)state;
  expect_reduced("5\r\nhello", "5\r\n", 3);
  expect_reduced("0005\r\n", "0005\r\n", 6);
  expect_reduced("1aF\r\n", "1aF\r\n", 5);
  expect_reduced("5;a=1;b=2\r\nhello", "5\r\n", 11);
  expect_reduced("5 ;a=1\r\n", "5\r\n", 8);
  expect_reduced("5\t; a = 1 ;\tb\r\n", "5\r\n", 15);
  expect_reduced("5;a=\"q; \\\"x\\\"\";b\r\n", "5\r\n", 18);
  expect_reduced("0;last=yes;more\r\n\r\n", "0\r\n", 17);
  expect_reduced("5;name\r\n", "5\r\n", 8);
  expect_reduced("5;a=\"\xe9t\xe9\"\r\n", "5\r\n", 11); /* obs-text */
}

static void test_incomplete_lines_wait(void **state) {
  (void)state;
  char out[CHUNKLINE_OUT_MAX];
  size_t n;
  assert_int_equal(reduce("", out, &n), 0);
  assert_int_equal(reduce("5", out, &n), 0);
  assert_int_equal(reduce("5;a=1;b=2\r", out, &n), 0);
  /* a line longer than CHUNKLINE_MAX is not waited for */
  static char big[CHUNKLINE_MAX + 8];
  memset(big, 'a', sizeof big);
  big[0] = '5';
  big[1] = ';';
  assert_int_equal(chunkline_reduce(big, sizeof big, out, &n), -1);
  assert_int_equal(chunkline_reduce(big, CHUNKLINE_MAX - 1, out, &n), 0);
}

static void test_malformed_lines_are_refused(void **state) {
  (void)state;
  static const char *const bad[] = {
      "\r\n",             /* no size */
      "zz\r\n",           /* not hex */
      " 5\r\n",           /* space before the size */
      "5\n",              /* bare LF */
      "5;\r\n",           /* no extension name */
      "5;=1\r\n",         /* ditto */
      "5;a=\r\n",         /* no value */
      "5;a=\"open\r\n",   /* unterminated quoted string */
      "5;a=b c\r\n",      /* two tokens */
      "5;a@b\r\n",        /* not a token */
      "5;a=\"x\x01\"\r\n", /* a control character */
      "5;a=1\r\r\n",      /* CR in the line */
      "5 \r\n",           /* whitespace not followed by ; */
      "5\t\r\n",
      "5;a=1 \r\n",
      "5;a \r\n",
      "5x\r\n",           /* garbage after the size */
      "-5\r\n",
      "0x5\r\n",
      "123456789012345678901234567890123\r\n", /* 33 digits */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char out[CHUNKLINE_OUT_MAX];
    size_t n;
    if (reduce(bad[i], out, &n) != -1)
      fail_msg("reduced: %s", bad[i]);
  }
}

/* A line fed a byte at a time, then in two pieces with the chunk data
 * after it: the same reduced line, and the data left where it starts. */
static void test_split_lines_are_kept_until_whole(void **state) {
  (void)state;
  const char *msg = "5;a=1;b=2\r\nhello";
  struct chunkline_buf b = {0};
  char out[CHUNKLINE_OUT_MAX];
  size_t out_len = 0;
  size_t line = strlen("5;a=1;b=2\r\n");
  for (size_t i = 0; i < line; i++) {
    const char *p = msg + i;
    size_t n = 1;
    int r = chunkline_take(&b, &p, &n, out, &out_len);
    assert_int_equal(r, i + 1 < line ? 0 : 1);
    assert_int_equal(n, 0);
  }
  assert_int_equal(out_len, 3);
  assert_memory_equal(out, "5\r\n", 3);
  assert_int_equal(b.len, 0);
  const char *p = msg;
  size_t n = 4;
  assert_int_equal(chunkline_take(&b, &p, &n, out, &out_len), 0);
  n = strlen(msg) - 4;
  assert_int_equal(chunkline_take(&b, &p, &n, out, &out_len), 1);
  assert_string_equal(p, "hello");
  assert_int_equal(n, 5);
  /* a malformed line found only once whole empties the buffer */
  p = "5;a=";
  n = 4;
  assert_int_equal(chunkline_take(&b, &p, &n, out, &out_len), 0);
  p = "\r\nhello";
  n = 7;
  assert_int_equal(chunkline_take(&b, &p, &n, out, &out_len), -1);
  assert_int_equal(b.len, 0);
  chunkline_buf_free(&b);
}

/* What the module is for: llhttp (Debian 12: 8.1, strict) refuses these
 * valid lines as sent and takes them reduced. */
static int completed;

static int on_complete(llhttp_t *p) {
  (void)p;
  completed++;
  return 0;
}

static int parse(const char *body, size_t len) {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_message_complete = on_complete;
  llhttp_t p;
  llhttp_init(&p, HTTP_RESPONSE, &s);
  const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  completed = 0;
  llhttp_errno_t e = llhttp_execute(&p, head, strlen(head));
  if (e == HPE_OK)
    e = llhttp_execute(&p, body, len);
  return e == HPE_OK && completed == 1 ? 0 : -1;
}

static void test_llhttp_takes_the_reduced_lines(void **state) {
  (void)state;
  static const char *const lines[] = {"5;a=1;b=2\r\n", "5 ;a=1\r\n"};
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
    char body[128];
    snprintf(body, sizeof body, "%shello\r\n0\r\n\r\n", lines[i]);
    if (parse(body, strlen(body)) == 0)
      fail_msg("llhttp took %s as sent: the workaround may go", lines[i]);
    char out[CHUNKLINE_OUT_MAX];
    size_t n;
    long used = chunkline_reduce(body, strlen(body), out, &n);
    assert_true(used > 0);
    char fixed[128];
    memcpy(fixed, out, n);
    strcpy(fixed + n, body + used);
    assert_int_equal(parse(fixed, strlen(fixed)), 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_lines_reduce_to_the_size),
      cmocka_unit_test(test_incomplete_lines_wait),
      cmocka_unit_test(test_malformed_lines_are_refused),
      cmocka_unit_test(test_split_lines_are_kept_until_whole),
      cmocka_unit_test(test_llhttp_takes_the_reduced_lines),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
