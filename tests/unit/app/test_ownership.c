/* Unit tests for the pure rules of src/app/ownership.c: who may reach a
 * record, and how a list's user filter is narrowed. ownership_confine()
 * needs a served exchange and is covered end to end by
 * tests/integration/test_ownership.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../support.h"

#include "app/ownership.h"

static void test_allows(void **state) {
  (void)state;
  /* not confined: everything, even records without a known owner */
  assert_true(ownership_allows(NULL, "usr_a"));
  assert_true(ownership_allows(NULL, NULL));
  /* confined: exactly the own records */
  assert_true(ownership_allows("usr_a", "usr_a"));
  assert_false(ownership_allows("usr_a", "usr_b"));
  assert_false(ownership_allows("usr_a", NULL));
  assert_false(ownership_allows("usr_a", ""));
  assert_false(ownership_allows("usr_a", "usr_a "));
  assert_false(ownership_allows("usr_a", "USR_A"));
  assert_false(ownership_allows("usr_ab", "usr_a"));
}

static void test_narrow(void **state) {
  (void)state;
  const char *f = "untouched";
  /* not confined: the filter asked for, "" meaning none */
  assert_true(ownership_narrow(NULL, NULL, &f));
  assert_null(f);
  assert_true(ownership_narrow(NULL, "", &f));
  assert_null(f);
  assert_true(ownership_narrow(NULL, "usr_b", &f));
  assert_string_equal(f, "usr_b");
  /* confined: always the caller; another user's filter matches nothing */
  assert_true(ownership_narrow("usr_a", NULL, &f));
  assert_string_equal(f, "usr_a");
  assert_true(ownership_narrow("usr_a", "", &f));
  assert_string_equal(f, "usr_a");
  assert_true(ownership_narrow("usr_a", "usr_a", &f));
  assert_string_equal(f, "usr_a");
  assert_false(ownership_narrow("usr_a", "usr_b", &f));
  assert_string_equal(f, "usr_a"); /* never left pointing at another user */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_allows),
      cmocka_unit_test(test_narrow),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
