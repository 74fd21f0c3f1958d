/* Circuit breaker for one upstream host or one route.
 *
 * The gateway asks breaker_allow() before each upstream call and tells
 * breaker_report() how the call went; when the upstream fails (or slows down)
 * too often, the breaker opens and the gateway answers at once with its
 * fallback or a 503 + Retry-After instead of queueing behind a dead host.
 * Pure logic: no clock, no sockets, no threads. Time comes in as now_ms from
 * a clock that does not go back (uv_now(), CLOCK_MONOTONIC), so tests drive
 * it by hand.
 *
 * Design notes
 * ------------
 *
 *   CLOSED --failure rate >= threshold, or slow rate >= threshold,---> OPEN
 *     ^      over the window with calls >= min_calls (report)           |
 *     |                                                                 | cool-down (open_ms)
 *     |                                                                 | elapsed (allow)
 *     |                                                                 v
 *     +------all <probes> probes of the round succeed (report)---- HALF_OPEN
 *                                                                       |
 *            OPEN <------------- a probe fails or is slow (report) -----+
 *
 *   transition            function          reason string passed to the hook
 *   CLOSED -> OPEN        breaker_report()  BREAKER_REASON_FAILURE_RATE / _SLOW_CALL_RATE
 *   OPEN -> HALF_OPEN     breaker_allow()   BREAKER_REASON_COOL_DOWN
 *   HALF_OPEN -> OPEN     breaker_report()  BREAKER_REASON_PROBE_FAILED / _PROBE_SLOW
 *   HALF_OPEN -> CLOSED   breaker_report()  BREAKER_REASON_PROBES_SUCCEEDED
 *
 * The rolling window is time-based: window_s buckets of one second (see
 * resilience/window.h), so it holds the calls that ended during the last
 * window_s - 1 to window_s seconds. A count-based window would let one quiet
 * hour's twenty old failures open the breaker on the first new one; a time
 * window forgets them. Rates are compared with ">=" (failures * 100 >=
 * failure_rate_pct * calls), and only once the window holds min_calls calls.
 * A call is slow when its duration is >= slow_call_ms; slow calls count
 * towards the slow-call rate whatever their outcome, and a failed slow call
 * counts as a failure too.
 *
 * Half-open works in rounds of half_open_probes probes: allow() admits that
 * many calls, no more (so at most that many are in flight), and the round
 * closes the breaker once every one of them has reported success. The first
 * failed probe reopens it for another cool-down. When slow-call tripping is
 * on (slow_rate_pct < 100), a successful but slow probe also reopens it: the
 * upstream would otherwise close into the slowness that opened it. A round
 * whose probes never all report (the caller lost a call) would leave the
 * breaker half-open with no permits for ever; so when a round has used all
 * its permits and is older than open_ms, allow() starts a new one. That
 * refreshes the permits but is not a state change, and calls no hook.
 *
 * Invariants
 *   - Only breaker_report() changes state, except OPEN -> HALF_OPEN, which
 *     happens in breaker_allow() when the cool-down has elapsed (time alone
 *     moves nothing: an idle breaker stays OPEN until someone asks).
 *   - While OPEN, allow() admits nothing; while HALF_OPEN, at most
 *     half_open_probes calls are admitted per round.
 *   - Reports that arrive while OPEN change nothing: calls admitted while
 *     CLOSED that end after the trip, and probes of a round that already
 *     reopened the breaker, cannot close it or extend the cool-down.
 *   - Reports that arrive while HALF_OPEN with no probe in flight are
 *     ignored. The breaker does not tag calls, so a call from an earlier
 *     state that ends while probes are in flight counts as one of them
 *     (only possible when calls outlive open_ms); a late failure then
 *     reopens (the safe side), a late success stands in for a probe.
 *   - The window is emptied on every entry into CLOSED, so a recovered
 *     upstream starts from a clean record; it is ignored while not CLOSED.
 *   - The hook runs after the state has changed, exactly once per change.
 *
 * Threads: a breaker belongs to one thread (the gateway keeps one per
 * upstream per worker). Only breaker_state() and breaker_counters() may be
 * called from other threads (for /metrics and the admin API): the owner
 * writes state and counters with relaxed atomic stores, so readers see a
 * recent, untorn value. */
#ifndef STRATA_RESILIENCE_BREAKER_H
#define STRATA_RESILIENCE_BREAKER_H

#include <stdint.h>

#include "resilience/window.h"

enum breaker_state {
  BREAKER_CLOSED = 0, /* calls flow; outcomes are counted in the window */
  BREAKER_OPEN,       /* calls are refused until the cool-down ends */
  BREAKER_HALF_OPEN   /* a bounded round of probes decides */
};

/* Reasons passed to the transition hook: stable strings, fit for a log
 * field or a metric label. */
#define BREAKER_REASON_FAILURE_RATE "failure_rate"       /* CLOSED -> OPEN */
#define BREAKER_REASON_SLOW_CALL_RATE "slow_call_rate"   /* CLOSED -> OPEN */
#define BREAKER_REASON_COOL_DOWN "cool_down_elapsed"     /* OPEN -> HALF_OPEN */
#define BREAKER_REASON_PROBE_FAILED "probe_failed"       /* HALF_OPEN -> OPEN */
#define BREAKER_REASON_PROBE_SLOW "probe_slow"           /* HALF_OPEN -> OPEN */
#define BREAKER_REASON_PROBES_SUCCEEDED "probes_succeeded" /* HALF_OPEN -> CLOSED */

#define BREAKER_DEFAULT_FAILURE_RATE_PCT 50
#define BREAKER_DEFAULT_SLOW_RATE_PCT 100 /* 100 = slow calls never trip it */
#define BREAKER_DEFAULT_SLOW_CALL_MS 1000
#define BREAKER_DEFAULT_MIN_CALLS 20
#define BREAKER_DEFAULT_WINDOW_S 10
#define BREAKER_DEFAULT_OPEN_MS 5000
#define BREAKER_DEFAULT_HALF_OPEN_PROBES 3

/* The knobs. A field left 0 takes its default (none of them has a useful
 * zero). */
struct breaker_config {
  unsigned failure_rate_pct; /* 1..100: open when failures are >= this % of calls (50) */
  unsigned slow_rate_pct;    /* 1..100: open when slow calls are >= this % of calls;
                                100 turns slow-call tripping off (100) */
  uint32_t slow_call_ms;     /* a call lasting >= this is slow (1000) */
  unsigned min_calls;        /* calls the window must hold before it may trip (20) */
  unsigned window_s;         /* window length in 1 s buckets, 1..WINDOW_MAX_SECONDS (10) */
  uint32_t open_ms;          /* cool-down, a.k.a. reset timeout, before probing (5000) */
  unsigned half_open_probes; /* probes per half-open round = max in flight (3) */
};

/* Monotonic counters; read them from any thread with breaker_counters(). */
struct breaker_counters {
  uint64_t opened_total;   /* entries into OPEN (from CLOSED or HALF_OPEN) */
  uint64_t closed_total;   /* recoveries: HALF_OPEN -> CLOSED */
  uint64_t rejected_total; /* breaker_allow() calls answered 0 */
};

struct breaker;

/* Called on every state change, on the owner's thread, from inside
 * breaker_allow() or breaker_report(), after the state has changed
 * (breaker_state(b) == to). reason is one of BREAKER_REASON_* (static).
 * The hook may read b (breaker_stats() shows the window that tripped it)
 * but must not call breaker_allow() or breaker_report() on it. */
typedef void (*breaker_transition_cb)(void *ctx, const struct breaker *b,
                                      enum breaker_state from, enum breaker_state to,
                                      const char *reason, uint64_t now_ms);

/* The whole breaker, embeddable without allocation. Fields are private:
 * use the functions below. */
struct breaker {
  struct breaker_config cfg;     /* with defaults filled in */
  enum breaker_state state;
  uint64_t opened_at_ms;         /* last entry into OPEN */
  uint64_t round_at_ms;          /* start of the current half-open round */
  unsigned probes_admitted;      /* this round */
  unsigned probes_in_flight;     /* admitted this round, not yet reported */
  unsigned probes_ok;            /* successes reported this round */
  struct window win;             /* counters: calls, failures, slow */
  struct breaker_counters counters;
  breaker_transition_cb on_transition;
  void *on_transition_ctx;
};

/* Window figures and counters of one breaker, for logs and the admin API. */
struct breaker_stats {
  enum breaker_state state;
  uint32_t calls;    /* calls in the window (only meaningful while CLOSED) */
  uint32_t failures; /* of which failed */
  uint32_t slow;     /* of which slow */
  struct breaker_counters counters;
};

/* Fills cfg with the defaults above. */
void breaker_config_default(struct breaker_config *cfg);

/* Initialises b CLOSED with an empty window and no hook. cfg may be NULL
 * (all defaults); it is copied. Returns 0, or STRATA_EVALIDATION when a
 * percentage is above 100 or window_s above WINDOW_MAX_SECONDS (b is then
 * left untouched). */
int breaker_init(struct breaker *b, const struct breaker_config *cfg);

/* Sets (or, with cb NULL, removes) the transition hook. */
void breaker_set_transition_cb(struct breaker *b, breaker_transition_cb cb, void *ctx);

/* May a call go to the upstream now? Returns 1 when it may: always while
 * CLOSED; while HALF_OPEN when the round has a permit left, which the call
 * takes (it is a probe and must be reported). Returns 0 while OPEN and when
 * the round's permits are taken, and counts a rejection: the caller answers
 * with its fallback or 503 with Retry-After from breaker_retry_after_ms().
 * Moves OPEN -> HALF_OPEN (and admits the first probe) once open_ms have
 * passed since the breaker opened.
 * Every call admitted must be reported exactly once. */
int breaker_allow(struct breaker *b, uint64_t now_ms);

/* Reports the outcome of a call admitted by breaker_allow(): success is 0
 * for a failure (connect error, reset, timeout, a 5xx the caller counts),
 * non-zero otherwise; duration_ms is how long it took. The only function
 * that changes state apart from the cool-down in breaker_allow(); see the
 * design notes for what each state does with a report. */
void breaker_report(struct breaker *b, uint64_t now_ms, int success, uint32_t duration_ms);

/* Current state. Safe from any thread. */
enum breaker_state breaker_state(const struct breaker *b);

/* "closed", "open" or "half_open"; "unknown" for anything else. */
const char *breaker_state_name(enum breaker_state s);

/* After breaker_allow() answered 0: milliseconds until a call may be
 * admitted again, for the Retry-After header (round up to whole seconds).
 * While OPEN, the rest of the cool-down; while HALF_OPEN, the time until the
 * round's permits are renewed at the latest (it usually decides sooner);
 * 0 while CLOSED or when the wait is already over. */
uint64_t breaker_retry_after_ms(const struct breaker *b, uint64_t now_ms);

/* Copies the counters. Safe from any thread. */
void breaker_counters(const struct breaker *b, struct breaker_counters *out);

/* State, window figures as of now_ms and counters. Owner's thread only
 * (the hook runs there). */
void breaker_stats(const struct breaker *b, uint64_t now_ms, struct breaker_stats *out);

#endif
