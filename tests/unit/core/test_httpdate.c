/* Unit tests for src/core/httpdate.c: the three HTTP-date forms of RFC
 * 9110 5.6.7, the two-digit year rule, and what is not a date. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/httpdate.h"

#define RFC_EXAMPLE_MS 784111777000ll /* Sun, 06 Nov 1994 08:49:37 GMT */
#define NOV_2026_MS 1795824000000ull  /* 2026-11-28 */

static int parse(const char *v, uint64_t now, int64_t *out) {
  return http_date_parse(v, strlen(v), now, out);
}

static void test_three_forms_same_instant(void **state) {
  (void)state;
  static const char *const forms[] = {"Sun, 06 Nov 1994 08:49:37 GMT",
                                      "Sunday, 06-Nov-94 08:49:37 GMT",
                                      "Sun Nov  6 08:49:37 1994"};
  for (size_t i = 0; i < 3; i++) {
    int64_t t = 0;
    assert_int_equal(parse(forms[i], NOV_2026_MS, &t), 1);
    assert_int_equal(t, RFC_EXAMPLE_MS);
  }
}

static void test_rfc850_year_against_now(void **state) {
  (void)state;
  int64_t t;
  /* 2026: "76" is 2076 (50 years ahead, allowed), "77" is 1977 */
  assert_int_equal(parse("Wednesday, 01-Jan-76 00:00:00 GMT", NOV_2026_MS, &t), 1);
  assert_int_equal(t, 3345062400000ll);
  assert_int_equal(parse("Saturday, 01-Jan-77 00:00:00 GMT", NOV_2026_MS, &t), 1);
  assert_int_equal(t, 220924800000ll);
}

static void test_calendar_edges(void **state) {
  (void)state;
  int64_t t;
  assert_int_equal(parse("Thu, 01 Jan 1970 00:00:00 GMT", 0, &t), 1);
  assert_int_equal(t, 0);
  assert_int_equal(parse("Wed, 31 Dec 1969 23:59:59 GMT", 0, &t), 1);
  assert_int_equal(t, -1000);
  assert_int_equal(parse("Tue, 29 Feb 2000 12:00:00 GMT", 0, &t), 1); /* leap (400) */
  assert_int_equal(t, 951825600000ll);
  assert_int_equal(parse("Tue, 30 Jun 2015 23:59:60 GMT", 0, &t), 1); /* leap second */
}

static void test_not_dates(void **state) {
  (void)state;
  static const char *const junk[] = {
      "", "0", "-1", "yesterday", "Sun, 06 Nov 1994 08:49:37",  /* no GMT */
      "Sun, 06 Nov 1994 08:49:37 UTC", "sun, 06 nov 1994 08:49:37 GMT", /* case-sensitive */
      " Sun, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT ", /* callers trim */
      "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 94 08:49:37 GMT",
      "Sun, 31 Nov 1994 08:49:37 GMT", "Mon, 29 Feb 1900 00:00:00 GMT", /* no such day */
      "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 08:60:00 GMT",
      "Sun, 06 Foo 1994 08:49:37 GMT", "Sunday, 06-Nov-1994 08:49:37 GMT",
      "Sun Nov 6 08:49:37 1994", "Sun Nov  6 08:49:37 94"};
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
    int64_t t = 42;
    assert_int_equal(parse(junk[i], NOV_2026_MS, &t), 0);
  }
  int64_t t;
  /* the length bounds the parse: a valid prefix of a longer buffer */
  const char *buf = "Sun, 06 Nov 1994 08:49:37 GMTxyz";
  assert_int_equal(http_date_parse(buf, 29, 0, &t), 1);
  assert_int_equal(http_date_parse(buf, 28, 0, &t), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_three_forms_same_instant),
      cmocka_unit_test(test_rfc850_year_against_now),
      cmocka_unit_test(test_calendar_edges),
      cmocka_unit_test(test_not_dates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
