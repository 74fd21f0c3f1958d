/* HTTP-date (RFC 9110 5.6.7): the three forms a recipient must accept, by
 * hand rather than strptime, because the rules are not libc's: the names
 * are case-sensitive, a two-digit RFC 850 year is read against the current
 * year (not POSIX's fixed 69 pivot) and nothing may follow the date. Used
 * by Retry-After (resilience) and the response cache (Date, Expires). */
#include "core/httpdate.h"

#include <string.h>

/* A cursor over the field value. */
struct cur {
  const char *p, *end;
};

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int eat(struct cur *c, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
    return 0;
  c->p += n;
  return 1;
}

/* Exactly n digits. */
static int digits(struct cur *c, unsigned n, int *out) {
  int v = 0;
  if ((size_t)(c->end - c->p) < n)
    return 0;
  for (unsigned i = 0; i < n; i++) {
    if (!is_digit(c->p[i]))
      return 0;
    v = v * 10 + (c->p[i] - '0');
  }
  c->p += n;
  *out = v;
  return 1;
}

/* One of names[0..n), case-sensitive as RFC 9110 spells them; returns its
 * index or -1. */
static int name(struct cur *c, const char *const *names, int n) {
  for (int i = 0; i < n; i++)
    if (eat(c, names[i]))
      return i;
  return -1;
}

static const char *const day_short[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const day_long[] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                       "Friday", "Saturday", "Sunday"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* A day name from names (7 of them) followed by sep; on a mismatch the
 * cursor is left where it was. */
static int day_then(struct cur *c, const char *const *names, const char *sep) {
  struct cur save = *c;
  if (name(c, names, 7) >= 0 && eat(c, sep))
    return 1;
  *c = save;
  return 0;
}

/* "HH:MM:SS" (second 60 allowed: a leap second). */
static int time_of_day(struct cur *c, int *h, int *m, int *s) {
  return digits(c, 2, h) && eat(c, ":") && digits(c, 2, m) && eat(c, ":") && digits(c, 2, s) &&
         *h <= 23 && *m <= 59 && *s <= 60;
}

static int leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in_month(int64_t y, int m /* 1..12 */) {
  static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : d[m - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* The year of a day count (the inverse above, year only). */
static int64_t year_of_days(int64_t z) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  return yoe + era * 400 + (mp >= 10);
}

int http_date_parse(const char *value, size_t len, uint64_t now_epoch_ms, int64_t *out_ms) {
  struct cur cur = {value, value + len}, *c = &cur;
  int day, mon, h, mi, s, yy;
  int64_t year;

  if (day_then(c, day_short, ", ")) {
    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    if (!digits(c, 2, &day) || !eat(c, " ") || (mon = name(c, months, 12)) < 0 || !eat(c, " ") ||
        !digits(c, 4, &yy) || !eat(c, " ") || !time_of_day(c, &h, &mi, &s) || !eat(c, " GMT"))
      return 0;
    year = yy;
  } else if (day_then(c, day_long, ", ")) {
    /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT. A two-digit year more than
     * 50 years ahead is the most recent past year ending so (RFC 9110). */
    if (!digits(c, 2, &day) || !eat(c, "-") || (mon = name(c, months, 12)) < 0 || !eat(c, "-") ||
        !digits(c, 2, &yy) || !eat(c, " ") || !time_of_day(c, &h, &mi, &s) || !eat(c, " GMT"))
      return 0;
    int64_t now_year = year_of_days((int64_t)(now_epoch_ms / 86400000));
    year = now_year - now_year % 100 + yy;
    if (year > now_year + 50)
      year -= 100;
  } else if (day_then(c, day_short, " ")) {
    /* asctime: Sun Nov  6 08:49:37 1994 */
    if ((mon = name(c, months, 12)) < 0 || !eat(c, " "))
      return 0;
    if (eat(c, " ")) {
      if (!digits(c, 1, &day))
        return 0;
    } else if (!digits(c, 2, &day)) {
      return 0;
    }
    if (!eat(c, " ") || !time_of_day(c, &h, &mi, &s) || !eat(c, " ") || !digits(c, 4, &yy))
      return 0;
    year = yy;
  } else {
    return 0;
  }
  if (c->p != c->end || day < 1 || day > days_in_month(year, mon + 1))
    return 0;
  int64_t secs = days_from_civil(year, mon + 1, day) * 86400 + h * 3600 + mi * 60 + s;
  *out_ms = secs * 1000;
  return 1;
}
