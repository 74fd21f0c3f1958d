/* Retries done safely: which requests may be retried, on which failures,
 * after how long, how many in total, and until when.
 *
 * Pure functions plus one small stateful object (struct retry_budget), with
 * time and randomness passed in so tests are deterministic. The gateway's
 * upstream loop combines them; per failed try it asks, in order:
 *
 *   retry_is_safe()        would repeating this request do harm?
 *   retry_should()         is this failure one the route retries on?
 *   attempts < max_attempts, deadline_remaining() > the backoff
 *   retry_budget_try()     are retries still a small share of traffic?
 *   retry_backoff_ms()     then wait this long (or Retry-After, capped)
 *
 * and sends each try with X-Strata-Deadline-Ms so the upstream can give up
 * when the gateway will.
 *
 * Backoff: exponential with full jitter, uniform in [0, min(cap, base *
 * 2^attempt)]. The seed's min(1000 * 2^n, 10000) without jitter makes every
 * client that failed together retry together, so each retry wave hits the
 * recovering upstream as hard as the outage did; full jitter spreads the
 * wave over the whole interval (AWS Architecture Blog, "Exponential Backoff
 * and Jitter").
 *
 * Budget: attempts per request bound the damage one request does, not the
 * damage all of them do: with 3 attempts an outage triples the load on the
 * upstream that is already down. The budget (Finagle's RetryBudget, Envoy's
 * retry_budget) caps retries at a share of requests instead. */
#ifndef STRATA_RESILIENCE_RETRY_H
#define STRATA_RESILIENCE_RETRY_H

#include <stddef.h>
#include <stdint.h>

#include "resilience/window.h"

/* Failures a route may retry on (struct retry_policy.retry_on). */
enum retry_on {
  RETRY_ON_CONNECT_FAILURE = 1u << 0, /* connect refused, unreachable, or timed out */
  RETRY_ON_RESET = 1u << 1,           /* connection reset or closed before a full response */
  RETRY_ON_TIMEOUT = 1u << 2,         /* the per-try timeout fired (the request was sent) */
  RETRY_ON_502 = 1u << 3,             /* upstream answered 502 Bad Gateway */
  RETRY_ON_503 = 1u << 4,             /* upstream answered 503 Service Unavailable */
  RETRY_ON_504 = 1u << 5              /* upstream answered 504 Gateway Timeout */
};
#define RETRY_ON_DEFAULT                                                                 \
  (RETRY_ON_CONNECT_FAILURE | RETRY_ON_RESET | RETRY_ON_TIMEOUT | RETRY_ON_502 |        \
   RETRY_ON_503 | RETRY_ON_504)

/* Why a try failed, as the gateway saw it. */
enum retry_cause {
  RETRY_CAUSE_CONNECT_FAILURE = 0, /* no connection was established */
  RETRY_CAUSE_RESET,               /* the connection broke mid-exchange */
  RETRY_CAUSE_TIMEOUT,             /* the per-try timeout fired */
  RETRY_CAUSE_STATUS               /* a complete response with a status worth a look */
};

#define RETRY_DEFAULT_MAX_ATTEMPTS 3
#define RETRY_DEFAULT_BASE_MS 25
#define RETRY_DEFAULT_CAP_MS 1000
#define RETRY_DEFAULT_PER_TRY_TIMEOUT_MS 0 /* none: only the total applies */
#define RETRY_DEFAULT_TOTAL_TIMEOUT_MS 15000

struct retry_policy {
  unsigned max_attempts;       /* total tries including the first (3); 1 = no retry */
  uint32_t base_ms;            /* backoff base (25) */
  uint32_t cap_ms;             /* backoff ceiling (1000) */
  uint32_t per_try_timeout_ms; /* limit on one try, 0 = none (0) */
  uint32_t total_timeout_ms;   /* limit on all tries and waits together, 0 = none (15000) */
  unsigned retry_on;           /* RETRY_ON_* bits (RETRY_ON_DEFAULT) */
};

/* Fills p with the defaults above. */
void retry_policy_default(struct retry_policy *p);

/* Delay before retry number attempt (0 for the first retry, 1 for the
 * second, ...): uniform in [0, min(cap_ms, base_ms * 2^attempt)], both ends
 * included. rnd is 64 random bits from the caller (retry_rand()); it is
 * mixed first, so a weak source (a counter, rand()) still spreads well.
 * Never overflows: any attempt >= 32 gives the cap. */
uint64_t retry_backoff_ms(const struct retry_policy *p, unsigned attempt, uint64_t rnd);

/* splitmix64: advances *state and returns 64 random bits. One state per
 * thread; seed it with anything (time, thread id). Not for cryptography. */
uint64_t retry_rand(uint64_t *state);

/* May this request be sent again? 1 when method (case-sensitive, as HTTP
 * methods are; NULL counts as unsafe) is idempotent by RFC 9110 (GET, HEAD,
 * OPTIONS, TRACE, PUT, DELETE), when the request carries an Idempotency-Key,
 * or when nothing_sent says the connection failed before any byte of the
 * request was written (the upstream cannot have acted on it). Else 0. */
int retry_is_safe(const char *method, int has_idempotency_key, int nothing_sent);

/* Does p retry on this failure? status is read only for RETRY_CAUSE_STATUS,
 * where 502, 503 and 504 map to their bits and every other status gives 0.
 * Returns 1 or 0. Safety, attempts, budget and deadline are the caller's
 * other questions (see the top of this file). */
int retry_should(const struct retry_policy *p, enum retry_cause cause, int status);

/* Retry budget
 * ------------
 * Over a rolling window of window_s one-second buckets the budget admits
 *
 *     retries <= ratio * requests + min_per_s * window_s
 *
 * where requests are client requests (first tries only: retries do not earn
 * budget, else the ratio would compound to ratio / (1 - ratio)). So under a
 * sustained total failure, with the client sending R requests per second,
 * any window of W seconds carries at most R*W first tries plus
 * ratio*R*W + min*W retries: the upstream sees at most (1 + ratio) * R + min
 * requests per second averaged over the window. The min_per_s reserve keeps
 * retries possible at low traffic (one request a minute may still retry
 * once); it is a reserve for the whole window, so at start-up up to
 * min_per_s * window_s retries may come in the first second. Each worker
 * keeps its own budget, so across N workers the reserve is N times
 * min_per_s: give each worker min_per_s / N when that matters. */

#define RETRY_BUDGET_DEFAULT_RATIO 0.2
#define RETRY_BUDGET_DEFAULT_MIN_PER_S 10
#define RETRY_BUDGET_DEFAULT_WINDOW_S 10

struct retry_budget_config {
  double ratio;       /* retries allowed per request, 0..1000 (0.2); a negative value = 0 */
  uint32_t min_per_s; /* retries per second always allowed (10) */
  unsigned window_s;  /* 1..WINDOW_MAX_SECONDS (10) */
};

/* Monotonic counters; read them from any thread with retry_budget_counters(). */
struct retry_budget_counters {
  uint64_t requests_total;         /* retry_budget_request() calls */
  uint64_t retries_total;          /* retries admitted */
  uint64_t budget_exhausted_total; /* retries refused */
};

/* Embeddable, one per thread. Fields are private. */
struct retry_budget {
  uint64_t ratio_ppm;   /* ratio in parts per million */
  uint64_t reserve;     /* min_per_s * window_s */
  struct window win;    /* counters: requests, retries */
  struct retry_budget_counters counters;
};

/* Fills cfg with the defaults above. */
void retry_budget_config_default(struct retry_budget_config *cfg);

/* Initialises b empty. cfg may be NULL (defaults). A window_s of 0 takes
 * the default; ratio is clamped to 0..1000. Returns 0, or STRATA_EVALIDATION
 * when window_s is above WINDOW_MAX_SECONDS (b left untouched). */
int retry_budget_init(struct retry_budget *b, const struct retry_budget_config *cfg);

/* Counts one client request (call once per request, not per try). */
void retry_budget_request(struct retry_budget *b, uint64_t now_ms);

/* Asks for one retry: returns 1 and counts it when the window's retries are
 * still within the budget, else 0 (counted in budget_exhausted_total). */
int retry_budget_try(struct retry_budget *b, uint64_t now_ms);

/* Copies the counters. Safe from any thread. */
void retry_budget_counters(const struct retry_budget *b, struct retry_budget_counters *out);

/* Retry-After
 * -----------
 * Milliseconds to wait according to a Retry-After field value (RFC 9110
 * 10.2.3): delta-seconds ("120"), or an HTTP-date, in IMF-fixdate ("Sun, 06
 * Nov 1994 08:49:37 GMT") or the two obsolete forms every recipient must
 * accept (RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT" and asctime "Sun Nov  6
 * 08:49:37 1994"), compared with now_epoch_ms (wall clock, ms since 1970).
 * Surrounding spaces and tabs are allowed. Returns 0 for "0", for a date
 * not in the future, and for anything invalid; huge values saturate at
 * UINT64_MAX: the caller caps the wait (the backoff cap, the deadline).
 * value need not be NUL-terminated. */
uint64_t retry_after_parse(const char *value, size_t len, uint64_t now_epoch_ms);

/* Deadlines
 * ---------
 * A deadline is an absolute time in ms on the caller's monotonic clock;
 * DEADLINE_NONE means there is none. Between processes it travels as the
 * time remaining, in whole milliseconds, in the request header
 * DEADLINE_HEADER ("X-Strata-Deadline-Ms: 1500"): remaining rather than
 * absolute because the two hosts' clocks differ (gRPC's grpc-timeout does the
 * same). The receiver sets its own deadline to now + value; transit time is
 * not subtracted, which errs towards working a little too long. */

#define DEADLINE_HEADER "X-Strata-Deadline-Ms"
#define DEADLINE_NONE UINT64_MAX
#define DEADLINE_VALUE_MAX 21 /* bytes for any formatted value, with the NUL */

/* now_ms + timeout_ms, saturating; a timeout_ms of 0 means none and gives
 * DEADLINE_NONE (as 0 means "no limit" in struct retry_policy). */
uint64_t deadline_after(uint64_t now_ms, uint64_t timeout_ms);

/* Milliseconds left until deadline_ms: 0 once it has passed, UINT64_MAX for
 * DEADLINE_NONE. */
uint64_t deadline_remaining(uint64_t deadline_ms, uint64_t now_ms);

/* Timeout for the next try: the remaining time, shortened to the policy's
 * per-try timeout when it has one. UINT64_MAX when neither limits it; 0 when
 * the deadline has passed (do not send). This is also the value to
 * propagate in DEADLINE_HEADER: the gateway stops waiting then. */
uint64_t deadline_try_ms(const struct retry_policy *p, uint64_t deadline_ms, uint64_t now_ms);

/* Writes remaining_ms as the header value (decimal, NUL-terminated) into
 * out, which holds cap bytes (DEADLINE_VALUE_MAX is always enough). Returns
 * the length without the NUL, or 0 when cap is too small. */
size_t deadline_format(char *out, size_t cap, uint64_t remaining_ms);

/* Reads a header value: 1 to 18 ASCII digits, optionally surrounded by spaces
 * or tabs (18 digits keep any value far from overflow; a deadline of 30
 * million years is no deadline). Stores the milliseconds in *remaining_ms
 * and returns 0, or returns STRATA_EBAD_REQUEST and leaves it alone. value
 * need not be NUL-terminated. */
int deadline_parse(const char *value, size_t len, uint64_t *remaining_ms);

#endif
