/* Unit tests for src/observe/trace.c: X-Request-Id validation and W3C
 * traceparent parsing (https://www.w3.org/TR/trace-context/#traceparent-header).
 *
 * A traceparent that is kept continues someone else's trace, so the tests
 * are strict about what is refused: anything the spec says to ignore must
 * come back as -1 with out->valid cleared, never half-filled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "observe/trace.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define PID "00f067aa0ba902b7"
#define VALID "00-" TID "-" PID "-01"

static int valid_id(const char *s) { return request_id_valid(s, strlen(s)); }

static void test_request_id_valid(void **state) {
  char buf[200];
  (void)state;
  assert_true(valid_id("a"));
  assert_true(valid_id("0"));
  assert_true(valid_id("-"));
  assert_true(valid_id("req-123_abc.DEF"));
  assert_true(valid_id("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"));
  assert_true(valid_id("9f86d081-884c-4d63-a1c7-2c1c7a0f1e33"));
  /* Length: 1..128. */
  memset(buf, 'x', sizeof buf);
  assert_true(request_id_valid(buf, 128));
  assert_false(request_id_valid(buf, 129));
  assert_false(request_id_valid(buf, 200));
  assert_false(request_id_valid(buf, 0));
  assert_false(request_id_valid("", 0));
  /* Only the given length counts. */
  assert_true(request_id_valid("abc def", 3));
  /* Characters outside the set. */
  static const char *const bad[] = {"a b",  " a",   "a ",     "a\tb", "a\nb", "a/b",  "a:b",
                                    "a+b",  "a=b",  "a,b",    "a;b",  "a\"b", "a'b",  "a\\b",
                                    "a%20", "{a}",  "caf\xc3\xa9", "\xe2\x80\x8b", "a\x7f", "~"};
  for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (valid_id(bad[i]))
      fail_msg("request id \"%s\" accepted", bad[i]);
  /* An embedded NUL inside the length. */
  assert_false(request_id_valid("ab\0cd", 5));
  /* A bad byte at the very end of a maximal id. */
  buf[127] = ' ';
  assert_false(request_id_valid(buf, 128));
}

static int parse(const char *s, struct trace_context *tc) {
  memset(tc, 0x5A, sizeof *tc); /* junk, to see that valid is cleared */
  return trace_parse(s, strlen(s), tc);
}

static void expect_rejected(const char *s) {
  struct trace_context tc;
  if (parse(s, &tc) != -1)
    fail_msg("traceparent \"%s\" accepted", s);
  assert_int_equal(tc.valid, 0);
}

static void expect_accepted(const char *s, const char *tid, const char *pid, unsigned flags) {
  struct trace_context tc;
  if (parse(s, &tc) != 0)
    fail_msg("traceparent \"%s\" rejected", s);
  assert_int_equal(tc.valid, 1);
  assert_string_equal(tc.trace_id, tid);
  assert_string_equal(tc.parent_id, pid);
  assert_int_equal(tc.flags, flags);
}

static void test_parse_valid(void **state) {
  (void)state;
  expect_accepted(VALID, TID, PID, 1);
  expect_accepted("00-" TID "-" PID "-00", TID, PID, 0);
  expect_accepted("00-" TID "-" PID "-ff", TID, PID, 0xff);
  expect_accepted("00-" TID "-" PID "-a9", TID, PID, 0xa9);
  expect_accepted("00-00000000000000000000000000000001-0000000000000001-01",
                  "00000000000000000000000000000001", "0000000000000001", 1);
  /* Only the given length is read. */
  struct trace_context tc;
  const char *with_tail = VALID "garbage";
  assert_int_equal(trace_parse(with_tail, 55, &tc), 0);
  assert_int_equal(tc.valid, 1);
}

static void test_parse_uppercase_rejected(void **state) {
  (void)state;
  expect_rejected("00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01");
  expect_rejected("00-4bf92f3577b34da6a3ce929d0e0e473A-" PID "-01");
  expect_rejected("00-" TID "-00F067AA0BA902B7-01");
  expect_rejected("00-" TID "-00f067aa0ba902bF-01");
  expect_rejected("00-" TID "-" PID "-0A");
  expect_rejected("0A-" TID "-" PID "-01");
}

static void test_parse_zero_ids_rejected(void **state) {
  (void)state;
  expect_rejected("00-00000000000000000000000000000000-" PID "-01");
  expect_rejected("00-" TID "-0000000000000000-01");
  expect_rejected("00-00000000000000000000000000000000-0000000000000000-01");
}

static void test_parse_version_ff_rejected(void **state) {
  (void)state;
  expect_rejected("ff-" TID "-" PID "-01");
  expect_rejected("ff-" TID "-" PID "-01-extra");
  expect_rejected("fF-" TID "-" PID "-01");
}

static void test_parse_bad_shape_rejected(void **state) {
  (void)state;
  expect_rejected("");
  expect_rejected("00");
  expect_rejected(VALID "-");                                   /* version 00 is exactly 55 */
  expect_rejected(VALID "-extra");
  expect_rejected(VALID " ");
  expect_rejected("00-" TID "-" PID "-1");                      /* 54 chars */
  expect_rejected("00-" TID "-" PID "-001");                    /* flags too long */
  expect_rejected("00-4bf92f3577b34da6a3ce929d0e0e473-" PID "-01");   /* trace id 31 */
  expect_rejected("00-4bf92f3577b34da6a3ce929d0e0e47366-" PID "-01"); /* trace id 33 */
  expect_rejected("00-" TID "-00f067aa0ba902b-01");                   /* parent id 15 */
  expect_rejected("00-" TID "-00f067aa0ba902b77-01");                 /* parent id 17 */
  expect_rejected("00_" TID "-" PID "-01");
  expect_rejected("00-" TID "_" PID "-01");
  expect_rejected("00-" TID "-" PID "_01");
  expect_rejected("00--" TID PID "-01");
  expect_rejected("0-0" TID "-" PID "-01");
  expect_rejected("00-" TID "-" PID "-0g");
  expect_rejected("zz-" TID "-" PID "-01");
  expect_rejected("00-4bf92f3577b34da6a3ce929d0e0e473g-" PID "-01");
  expect_rejected("00-4bf92f3577b34da6-3ce929d0e0e4736-" PID "-01");
  expect_rejected(" 00-" TID "-" PID "-01");
  /* A NUL inside the value. */
  struct trace_context tc;
  assert_int_equal(trace_parse("00-" TID "-" PID "-0\0", 55, &tc), -1);
  /* A valid struct is cleared by a failed parse. */
  assert_int_equal(parse(VALID, &tc), 0);
  assert_int_equal(trace_parse("garbage", 7, &tc), -1);
  assert_int_equal(tc.valid, 0);
}

static void test_parse_future_version(void **state) {
  (void)state;
  /* A later version may add fields after a '-': parse what we know. */
  expect_accepted("01-" TID "-" PID "-01-extra", TID, PID, 1);
  expect_accepted("01-" TID "-" PID "-01", TID, PID, 1);
  expect_accepted("cc-" TID "-" PID "-00-what-ever", TID, PID, 0);
  expect_accepted("fe-" TID "-" PID "-01-", TID, PID, 1);
  /* ...but what follows the flags must start with '-'. */
  expect_rejected("01-" TID "-" PID "-01x");
  expect_rejected("01-" TID "-" PID "-011");
  /* And the known fields still follow the rules. */
  expect_rejected("01-00000000000000000000000000000000-" PID "-01-extra");
  expect_rejected("01-" TID "-" PID "-0G-extra");
}

/* A traceparent written by trace_child: 55 chars, parseable. */
static void parse_child(const char out[56], struct trace_context *tc) {
  assert_int_equal(strlen(out), 55);
  assert_memory_equal(out, "00-", 3);
  if (trace_parse(out, 55, tc) != 0)
    fail_msg("trace_child wrote an invalid traceparent: %s", out);
}

static void test_child_keeps_trace_id(void **state) {
  struct trace_context parent, c1, c2;
  char out1[56], out2[56];
  (void)state;
  assert_int_equal(parse("00-" TID "-" PID "-01", &parent), 0);
  trace_child(&parent, out1);
  trace_child(&parent, out2);
  parse_child(out1, &c1);
  parse_child(out2, &c2);
  assert_string_equal(c1.trace_id, TID);
  assert_string_equal(c2.trace_id, TID);
  assert_string_not_equal(c1.parent_id, PID);
  assert_string_not_equal(c2.parent_id, PID);
  assert_string_not_equal(c1.parent_id, c2.parent_id); /* a new span each call */
  assert_int_equal(c1.flags, 1);                       /* sampled flag carried */
  assert_int_equal(parse("00-" TID "-" PID "-00", &parent), 0);
  trace_child(&parent, out1);
  parse_child(out1, &c1);
  assert_int_equal(c1.flags, 0);
  /* A future-version parent gets a version-00 child. */
  assert_int_equal(parse("01-" TID "-" PID "-01-extra", &parent), 0);
  trace_child(&parent, out1);
  parse_child(out1, &c1);
  assert_string_equal(c1.trace_id, TID);
}

static void test_child_of_invalid_parent(void **state) {
  struct trace_context parent, c1, c2;
  char out1[56], out2[56];
  (void)state;
  assert_int_equal(parse("00-00000000000000000000000000000000-" PID "-01", &parent), -1);
  trace_child(&parent, out1);
  parse_child(out1, &c1);
  assert_string_not_equal(c1.trace_id, TID);
  trace_child(NULL, out2);
  parse_child(out2, &c2);
  assert_string_not_equal(c1.trace_id, c2.trace_id); /* a fresh trace each time */
  assert_string_not_equal(c1.parent_id, c2.parent_id);
  assert_int_equal(c1.flags, 0);
  /* Many fresh ones: always valid (never an all-zero id), lower-case hex. */
  for (int i = 0; i < 10000; i++) {
    trace_child(NULL, out1);
    parse_child(out1, &c1);
  }
}

static void test_random64_varies(void **state) {
  uint64_t seen_or = 0, seen_and = UINT64_MAX, prev = trace_random64();
  int repeats = 0;
  (void)state;
  for (int i = 0; i < 1000; i++) {
    uint64_t v = trace_random64();
    repeats += v == prev;
    seen_or |= v;
    seen_and &= v;
    prev = v;
  }
  assert_int_equal(repeats, 0);
  assert_true(seen_or == UINT64_MAX); /* every bit is sometimes 1 */
  assert_true(seen_and == 0);         /* and sometimes 0 */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_request_id_valid),
      cmocka_unit_test(test_parse_valid),
      cmocka_unit_test(test_parse_uppercase_rejected),
      cmocka_unit_test(test_parse_zero_ids_rejected),
      cmocka_unit_test(test_parse_version_ff_rejected),
      cmocka_unit_test(test_parse_bad_shape_rejected),
      cmocka_unit_test(test_parse_future_version),
      cmocka_unit_test(test_child_keeps_trace_id),
      cmocka_unit_test(test_child_of_invalid_parent),
      cmocka_unit_test(test_random64_varies),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
