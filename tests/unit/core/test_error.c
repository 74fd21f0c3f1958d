/* Unit tests for src/core/error.c.
 *
 * The error table is the contract between every failure in strata and what
 * a client sees, so each row is checked against the X-macro it comes from,
 * and every value outside the table must still produce a sane 500. */
#include <ctype.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../support.h"

#include "core/error.h"

struct row {
  int err;
  const char *name;
  int status;
  const char *code;
  const char *message;
};

static const struct row table[] = {
#define X(name, status, code, msg) {STRATA_E##name, #name, status, code, msg},
    STRATA_ERRORS(X)
#undef X
};
enum { N_ROWS = sizeof table / sizeof table[0] };

static void test_every_entry_is_sane(void **state) {
  (void)state;
  assert_int_equal(N_ROWS, STRATA_ERROR_END_ - STRATA_ERROR_FIRST_ - 1);
  for (unsigned i = 0; i < N_ROWS; i++) {
    const struct row *r = &table[i];
    assert_true(r->err < 0);
    int status = strata_error_status(r->err);
    const char *code = strata_error_code(r->err), *msg = strata_error_message(r->err);
    if (status < 400 || status > 599)
      fail_msg("%s: status %d is not an error status", r->name, status);
    assert_int_equal(status, r->status);
    assert_non_null(code);
    assert_non_null(msg);
    assert_string_equal(code, r->code);
    assert_string_equal(msg, r->message);
    if (!code[0] || !msg[0])
      fail_msg("%s: empty code or message", r->name);
    /* Codes are stable machine-readable identifiers: lower snake case. */
    for (const char *c = code; *c; c++)
      if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '_'))
        fail_msg("%s: code \"%s\" is not snake_case", r->name, code);
    /* Messages go into JSON as they are and read as sentences. */
    for (const char *c = msg; *c; c++)
      if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
        fail_msg("%s: message needs escaping", r->name);
    assert_int_equal(msg[strlen(msg) - 1], '.');
  }
}

static void test_codes_and_values_unique(void **state) {
  (void)state;
  for (unsigned i = 0; i < N_ROWS; i++)
    for (unsigned j = i + 1; j < N_ROWS; j++) {
      assert_int_not_equal(table[i].err, table[j].err);
      if (strcmp(table[i].code, table[j].code) == 0)
        fail_msg("%s and %s share the code %s", table[i].name, table[j].name, table[i].code);
    }
}

static void test_well_known_entries(void **state) {
  (void)state;
  assert_int_equal(strata_error_status(STRATA_EBAD_REQUEST), 400);
  assert_string_equal(strata_error_code(STRATA_EBAD_REQUEST), "bad_request");
  assert_int_equal(strata_error_status(STRATA_ENOT_FOUND), 404);
  assert_string_equal(strata_error_code(STRATA_ENOT_FOUND), "not_found");
  assert_int_equal(strata_error_status(STRATA_EMETHOD_NOT_ALLOWED), 405);
  assert_int_equal(strata_error_status(STRATA_EPAYLOAD_TOO_LARGE), 413);
  assert_int_equal(strata_error_status(STRATA_EHEADERS_TOO_LARGE), 431);
  assert_int_equal(strata_error_status(STRATA_EINTERNAL), 500);
  assert_string_equal(strata_error_code(STRATA_EINTERNAL), "internal_error");
  assert_int_equal(strata_error_status(STRATA_EUNAVAILABLE), 503);
  assert_int_equal(strata_error_status(STRATA_EVERSION_NOT_SUPPORTED), 505);
}

static void expect_internal(int err) {
  if (strata_error_status(err) != 500)
    fail_msg("error %d: status %d, expected 500", err, strata_error_status(err));
  assert_string_equal(strata_error_code(err), "internal_error");
  assert_string_equal(strata_error_message(err), strata_error_message(STRATA_EINTERNAL));
}

static void test_unknown_errors_are_internal(void **state) {
  static const int unknown[] = {STRATA_OK,
                                1,
                                -1,
                                -2,
                                -22,
                                -999 - 1000,
                                STRATA_ERROR_FIRST_,
                                STRATA_ERROR_FIRST_ - 1,
                                STRATA_ERROR_END_,
                                STRATA_ERROR_END_ + 1,
                                1000,
                                INT_MIN,
                                INT_MIN + 1,
                                INT_MAX - 1001};
  (void)state;
  for (unsigned i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
    expect_internal(unknown[i]);
}

/* Run through in_child(): an undefined-behaviour abort in the sanitizer build
 * then fails this one test only. */
static int lookup_int_max(void *arg) {
  /* An unknown value like any other; must not overflow while mapping it. */
  (void)arg;
  volatile int err = INT_MAX;
  return strata_error_status(err) == 500 ? 0 : 1;
}

static void test_unknown_near_int_max(void **state) {
  (void)state;
  if (!in_child(lookup_int_max, NULL))
    fail_msg("strata_error_status(INT_MAX) did not return 500 cleanly");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_entry_is_sane),
      cmocka_unit_test(test_codes_and_values_unique),
      cmocka_unit_test(test_well_known_entries),
      cmocka_unit_test(test_unknown_errors_are_internal),
      cmocka_unit_test(test_unknown_near_int_max),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
