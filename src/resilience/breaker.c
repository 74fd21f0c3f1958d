/* Circuit breaker state machine (see breaker.h for the design notes).
 *
 * The hot path is breaker_allow() while CLOSED (one load and a compare) and
 * breaker_report() while CLOSED (one window add and two multiplications), so
 * a breaker per upstream host costs the gateway a few dozen instructions per
 * request. State and counters are stored with relaxed atomics because
 * /metrics and the admin API read them from other threads. */
#include "resilience/breaker.h"

#include <stddef.h>
#include <string.h>

#include "core/error.h"

enum { WIN_CALLS = 0, WIN_FAILURES, WIN_SLOW };

static void count(uint64_t *c) { __atomic_store_n(c, *c + 1, __ATOMIC_RELAXED); }

/* Saturating a - b, for times that could come in out of order. */
static uint64_t since(uint64_t now, uint64_t then) { return now > then ? now - then : 0; }

static int slow_tripping(const struct breaker *b) { return b->cfg.slow_rate_pct < 100; }

void breaker_config_default(struct breaker_config *cfg) {
  cfg->failure_rate_pct = BREAKER_DEFAULT_FAILURE_RATE_PCT;
  cfg->slow_rate_pct = BREAKER_DEFAULT_SLOW_RATE_PCT;
  cfg->slow_call_ms = BREAKER_DEFAULT_SLOW_CALL_MS;
  cfg->min_calls = BREAKER_DEFAULT_MIN_CALLS;
  cfg->window_s = BREAKER_DEFAULT_WINDOW_S;
  cfg->open_ms = BREAKER_DEFAULT_OPEN_MS;
  cfg->half_open_probes = BREAKER_DEFAULT_HALF_OPEN_PROBES;
}

int breaker_init(struct breaker *b, const struct breaker_config *cfg) {
  struct breaker_config c, d;
  breaker_config_default(&d);
  if (cfg)
    c = *cfg;
  else
    c = d;
  if (!c.failure_rate_pct)
    c.failure_rate_pct = d.failure_rate_pct;
  if (!c.slow_rate_pct)
    c.slow_rate_pct = d.slow_rate_pct;
  if (!c.slow_call_ms)
    c.slow_call_ms = d.slow_call_ms;
  if (!c.min_calls)
    c.min_calls = d.min_calls;
  if (!c.window_s)
    c.window_s = d.window_s;
  if (!c.open_ms)
    c.open_ms = d.open_ms;
  if (!c.half_open_probes)
    c.half_open_probes = d.half_open_probes;
  if (c.failure_rate_pct > 100 || c.slow_rate_pct > 100 || c.window_s > WINDOW_MAX_SECONDS)
    return STRATA_EVALIDATION;

  memset(b, 0, sizeof *b);
  b->cfg = c;
  b->state = BREAKER_CLOSED;
  window_init(&b->win, c.window_s);
  return 0;
}

void breaker_set_transition_cb(struct breaker *b, breaker_transition_cb cb, void *ctx) {
  b->on_transition = cb;
  b->on_transition_ctx = ctx;
}

static void new_round(struct breaker *b, uint64_t now_ms) {
  b->round_at_ms = now_ms;
  b->probes_admitted = 0;
  b->probes_in_flight = 0;
  b->probes_ok = 0;
}

/* The one place state changes: sets up the new state, then calls the hook. */
static void move(struct breaker *b, uint64_t now_ms, enum breaker_state to, const char *reason) {
  enum breaker_state from = b->state;
  switch (to) {
  case BREAKER_OPEN:
    b->opened_at_ms = now_ms;
    count(&b->counters.opened_total);
    break;
  case BREAKER_HALF_OPEN:
    new_round(b, now_ms);
    break;
  case BREAKER_CLOSED:
    window_clear(&b->win);
    count(&b->counters.closed_total);
    break;
  }
  __atomic_store_n(&b->state, to, __ATOMIC_RELAXED);
  if (b->on_transition)
    b->on_transition(b->on_transition_ctx, b, from, to, reason, now_ms);
}

static int reject(struct breaker *b) {
  count(&b->counters.rejected_total);
  return 0;
}

static int admit_probe(struct breaker *b) {
  b->probes_admitted++;
  b->probes_in_flight++;
  return 1;
}

int breaker_allow(struct breaker *b, uint64_t now_ms) {
  switch (b->state) {
  case BREAKER_CLOSED:
    return 1;
  case BREAKER_OPEN:
    if (since(now_ms, b->opened_at_ms) < b->cfg.open_ms)
      return reject(b);
    move(b, now_ms, BREAKER_HALF_OPEN, BREAKER_REASON_COOL_DOWN);
    return admit_probe(b);
  case BREAKER_HALF_OPEN:
    if (b->probes_admitted < b->cfg.half_open_probes)
      return admit_probe(b);
    /* All permits out. A round this old lost some of its probes (never
     * reported); without a fresh round nothing would ever be admitted. */
    if (b->probes_in_flight && since(now_ms, b->round_at_ms) >= b->cfg.open_ms) {
      new_round(b, now_ms);
      return admit_probe(b);
    }
    return reject(b);
  }
  return reject(b);
}

static void report_closed(struct breaker *b, uint64_t now_ms, int success, int slow) {
  struct window *w = &b->win;
  window_add(w, now_ms, WIN_CALLS, 1);
  if (!success)
    window_add(w, now_ms, WIN_FAILURES, 1);
  if (slow)
    window_add(w, now_ms, WIN_SLOW, 1);

  uint64_t calls = w->total[WIN_CALLS];
  if (calls < b->cfg.min_calls)
    return;
  if ((uint64_t)w->total[WIN_FAILURES] * 100 >= (uint64_t)b->cfg.failure_rate_pct * calls)
    move(b, now_ms, BREAKER_OPEN, BREAKER_REASON_FAILURE_RATE);
  else if (slow_tripping(b) &&
           (uint64_t)w->total[WIN_SLOW] * 100 >= (uint64_t)b->cfg.slow_rate_pct * calls)
    move(b, now_ms, BREAKER_OPEN, BREAKER_REASON_SLOW_CALL_RATE);
}

static void report_half_open(struct breaker *b, uint64_t now_ms, int success, int slow) {
  if (!b->probes_in_flight) /* not a probe of this round: a late report */
    return;
  b->probes_in_flight--;
  if (!success) {
    move(b, now_ms, BREAKER_OPEN, BREAKER_REASON_PROBE_FAILED);
  } else if (slow && slow_tripping(b)) {
    move(b, now_ms, BREAKER_OPEN, BREAKER_REASON_PROBE_SLOW);
  } else if (++b->probes_ok >= b->cfg.half_open_probes) {
    move(b, now_ms, BREAKER_CLOSED, BREAKER_REASON_PROBES_SUCCEEDED);
  }
}

void breaker_report(struct breaker *b, uint64_t now_ms, int success, uint32_t duration_ms) {
  int slow = duration_ms >= b->cfg.slow_call_ms;
  switch (b->state) {
  case BREAKER_CLOSED:
    report_closed(b, now_ms, success, slow);
    break;
  case BREAKER_HALF_OPEN:
    report_half_open(b, now_ms, success, slow);
    break;
  case BREAKER_OPEN: /* a call from before the trip, or a probe of a failed round */
    break;
  }
}

enum breaker_state breaker_state(const struct breaker *b) {
  return __atomic_load_n(&b->state, __ATOMIC_RELAXED);
}

const char *breaker_state_name(enum breaker_state s) {
  switch (s) {
  case BREAKER_CLOSED:
    return "closed";
  case BREAKER_OPEN:
    return "open";
  case BREAKER_HALF_OPEN:
    return "half_open";
  }
  return "unknown";
}

uint64_t breaker_retry_after_ms(const struct breaker *b, uint64_t now_ms) {
  switch (b->state) {
  case BREAKER_CLOSED:
    return 0;
  case BREAKER_OPEN:
    return since(b->opened_at_ms + b->cfg.open_ms, now_ms);
  case BREAKER_HALF_OPEN:
    return since(b->round_at_ms + b->cfg.open_ms, now_ms);
  }
  return 0;
}

void breaker_counters(const struct breaker *b, struct breaker_counters *out) {
  out->opened_total = __atomic_load_n(&b->counters.opened_total, __ATOMIC_RELAXED);
  out->closed_total = __atomic_load_n(&b->counters.closed_total, __ATOMIC_RELAXED);
  out->rejected_total = __atomic_load_n(&b->counters.rejected_total, __ATOMIC_RELAXED);
}

void breaker_stats(const struct breaker *b, uint64_t now_ms, struct breaker_stats *out) {
  out->state = b->state;
  out->calls = window_sum(&b->win, now_ms, WIN_CALLS);
  out->failures = window_sum(&b->win, now_ms, WIN_FAILURES);
  out->slow = window_sum(&b->win, now_ms, WIN_SLOW);
  breaker_counters(b, &out->counters);
}
