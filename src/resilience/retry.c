/* Retry policy, backoff with full jitter, retry budget, Retry-After and
 * deadline propagation (see retry.h for how the gateway combines them).
 *
 * Everything here is arithmetic on values passed in: no clock reads, no
 * allocation, no locks. Budget counters are stored with relaxed atomics
 * because /metrics reads them from other threads. */
#include "resilience/retry.h"

#include <string.h>

#include "core/error.h"
#include "core/httpdate.h"

/* ---- policy and backoff ------------------------------------------------ */

void retry_policy_default(struct retry_policy *p) {
  p->max_attempts = RETRY_DEFAULT_MAX_ATTEMPTS;
  p->base_ms = RETRY_DEFAULT_BASE_MS;
  p->cap_ms = RETRY_DEFAULT_CAP_MS;
  p->per_try_timeout_ms = RETRY_DEFAULT_PER_TRY_TIMEOUT_MS;
  p->total_timeout_ms = RETRY_DEFAULT_TOTAL_TIMEOUT_MS;
  p->retry_on = RETRY_ON_DEFAULT;
}

#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ull

/* The splitmix64 output function: a bijection that spreads every input bit
 * over every output bit. */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t retry_rand(uint64_t *state) {
  *state += GOLDEN_GAMMA;
  return mix64(*state);
}

uint64_t retry_backoff_ms(const struct retry_policy *p, unsigned attempt, uint64_t rnd) {
  uint64_t ceil;
  if (!p->base_ms)
    return 0;
  /* base < 2^32, so base << attempt fits in 64 bits for attempt < 32, and
   * from 32 on it exceeds any 32-bit cap. */
  if (attempt >= 32)
    ceil = p->cap_ms;
  else {
    ceil = (uint64_t)p->base_ms << attempt;
    if (ceil > p->cap_ms)
      ceil = p->cap_ms;
  }
  /* Uniform in [0, ceil]: the top 32 random bits scaled by ceil + 1 (at most
   * 2^32, so the product fits) — no division, and no modulo bias worth the
   * name at these sizes. */
  uint64_t hi = mix64(rnd + GOLDEN_GAMMA) >> 32;
  return (hi * (ceil + 1)) >> 32;
}

/* ---- safety and causes -------------------------------------------------- */

int retry_is_safe(const char *method, int has_idempotency_key, int nothing_sent) {
  static const char *const idempotent[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
  if (nothing_sent || has_idempotency_key)
    return 1;
  if (!method)
    return 0;
  for (size_t i = 0; i < sizeof idempotent / sizeof idempotent[0]; i++)
    if (!strcmp(method, idempotent[i]))
      return 1;
  return 0;
}

int retry_should(const struct retry_policy *p, enum retry_cause cause, int status) {
  unsigned bit = 0;
  switch (cause) {
  case RETRY_CAUSE_CONNECT_FAILURE:
    bit = RETRY_ON_CONNECT_FAILURE;
    break;
  case RETRY_CAUSE_RESET:
    bit = RETRY_ON_RESET;
    break;
  case RETRY_CAUSE_TIMEOUT:
    bit = RETRY_ON_TIMEOUT;
    break;
  case RETRY_CAUSE_STATUS:
    bit = status == 502 ? RETRY_ON_502 : status == 503 ? RETRY_ON_503 : status == 504 ? RETRY_ON_504 : 0;
    break;
  }
  return (p->retry_on & bit) != 0;
}

/* ---- budget ------------------------------------------------------------- */

enum { WIN_REQUESTS = 0, WIN_RETRIES };

#define PPM 1000000ull

static void count(uint64_t *c) { __atomic_store_n(c, *c + 1, __ATOMIC_RELAXED); }

void retry_budget_config_default(struct retry_budget_config *cfg) {
  cfg->ratio = RETRY_BUDGET_DEFAULT_RATIO;
  cfg->min_per_s = RETRY_BUDGET_DEFAULT_MIN_PER_S;
  cfg->window_s = RETRY_BUDGET_DEFAULT_WINDOW_S;
}

int retry_budget_init(struct retry_budget *b, const struct retry_budget_config *cfg) {
  struct retry_budget_config c;
  if (cfg)
    c = *cfg;
  else
    retry_budget_config_default(&c);
  if (!c.window_s)
    c.window_s = RETRY_BUDGET_DEFAULT_WINDOW_S;
  if (c.window_s > WINDOW_MAX_SECONDS)
    return STRATA_EVALIDATION;
  if (!(c.ratio > 0)) /* negative or NaN */
    c.ratio = 0;
  if (c.ratio > 1000)
    c.ratio = 1000;

  memset(b, 0, sizeof *b);
  b->ratio_ppm = (uint64_t)(c.ratio * (double)PPM + 0.5);
  b->reserve = (uint64_t)c.min_per_s * c.window_s;
  window_init(&b->win, c.window_s);
  return 0;
}

void retry_budget_request(struct retry_budget *b, uint64_t now_ms) {
  window_add(&b->win, now_ms, WIN_REQUESTS, 1);
  count(&b->counters.requests_total);
}

int retry_budget_try(struct retry_budget *b, uint64_t now_ms) {
  window_advance(&b->win, now_ms);
  /* retries + 1 <= ratio * requests + reserve, in parts per million:
   * requests < 2^32 and ratio_ppm <= 10^9 keep every term below 2^63. */
  uint64_t want = ((uint64_t)b->win.total[WIN_RETRIES] + 1) * PPM;
  uint64_t have = b->ratio_ppm * b->win.total[WIN_REQUESTS] + b->reserve * PPM;
  if (want > have) {
    count(&b->counters.budget_exhausted_total);
    return 0;
  }
  window_add(&b->win, now_ms, WIN_RETRIES, 1);
  count(&b->counters.retries_total);
  return 1;
}

void retry_budget_counters(const struct retry_budget *b, struct retry_budget_counters *out) {
  out->requests_total = __atomic_load_n(&b->counters.requests_total, __ATOMIC_RELAXED);
  out->retries_total = __atomic_load_n(&b->counters.retries_total, __ATOMIC_RELAXED);
  out->budget_exhausted_total =
      __atomic_load_n(&b->counters.budget_exhausted_total, __ATOMIC_RELAXED);
}

/* ---- Retry-After ---------------------------------------------------------- */

static int is_ows(char c) { return c == ' ' || c == '\t'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

uint64_t retry_after_parse(const char *value, size_t len, uint64_t now_epoch_ms) {
  if (!value)
    return 0;
  const char *p = value, *end = value + len;
  while (p < end && is_ows(*p))
    p++;
  while (end > p && is_ows(end[-1]))
    end--;
  if (p == end)
    return 0;

  if (is_digit(*p)) { /* delta-seconds */
    const uint64_t max_s = UINT64_MAX / 1000;
    uint64_t secs = 0;
    int over = 0;
    for (const char *q = p; q < end; q++) {
      if (!is_digit(*q))
        return 0;
      uint64_t d = (uint64_t)(*q - '0');
      if (over || secs > (max_s - d) / 10)
        over = 1; /* keep checking the syntax */
      else
        secs = secs * 10 + d;
    }
    return over ? UINT64_MAX : secs * 1000;
  }

  int64_t at;
  if (!http_date_parse(p, (size_t)(end - p), now_epoch_ms, &at) || at <= 0 || (uint64_t)at <= now_epoch_ms)
    return 0;
  return (uint64_t)at - now_epoch_ms;
}

/* ---- deadlines ------------------------------------------------------------ */

uint64_t deadline_after(uint64_t now_ms, uint64_t timeout_ms) {
  if (!timeout_ms || timeout_ms >= DEADLINE_NONE - now_ms)
    return DEADLINE_NONE;
  return now_ms + timeout_ms;
}

uint64_t deadline_remaining(uint64_t deadline_ms, uint64_t now_ms) {
  if (deadline_ms == DEADLINE_NONE)
    return UINT64_MAX;
  return deadline_ms > now_ms ? deadline_ms - now_ms : 0;
}

uint64_t deadline_try_ms(const struct retry_policy *p, uint64_t deadline_ms, uint64_t now_ms) {
  uint64_t left = deadline_remaining(deadline_ms, now_ms);
  if (p->per_try_timeout_ms && p->per_try_timeout_ms < left)
    return p->per_try_timeout_ms;
  return left;
}

size_t deadline_format(char *out, size_t cap, uint64_t remaining_ms) {
  char tmp[DEADLINE_VALUE_MAX];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + remaining_ms % 10);
    remaining_ms /= 10;
  } while (remaining_ms);
  if (!out || cap < n + 1)
    return 0;
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  out[n] = '\0';
  return n;
}

#define DEADLINE_MAX_DIGITS 18

int deadline_parse(const char *value, size_t len, uint64_t *remaining_ms) {
  uint64_t v = 0;
  if (!value)
    return STRATA_EBAD_REQUEST;
  const char *p = value, *end = value + len;
  while (p < end && is_ows(*p))
    p++;
  while (end > p && is_ows(end[-1]))
    end--;
  if (p == end || end - p > DEADLINE_MAX_DIGITS)
    return STRATA_EBAD_REQUEST;
  for (; p < end; p++) {
    if (!is_digit(*p))
      return STRATA_EBAD_REQUEST;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  *remaining_ms = v;
  return 0;
}
