/* Lookup into the error table of error.h. */
#include "core/error.h"

struct error_row {
  int status;
  const char *code;
  const char *message;
};

static const struct error_row rows[] = {
#define X(name, status, code, msg) {status, code, msg},
    STRATA_ERRORS(X)
#undef X
};

static const struct error_row *row_of(int err) {
  if (err <= STRATA_ERROR_FIRST_ || err >= STRATA_ERROR_END_)
    err = STRATA_EINTERNAL;
  return &rows[err - STRATA_ERROR_FIRST_ - 1];
}

int strata_error_status(int err) { return row_of(err)->status; }
const char *strata_error_code(int err) { return row_of(err)->code; }
const char *strata_error_message(int err) { return row_of(err)->message; }
