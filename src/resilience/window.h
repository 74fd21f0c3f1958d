/* A rolling time window of counters in one-second buckets, shared by the
 * circuit breaker (calls, failures, slow calls) and the retry budget
 * (requests, retries).
 *
 * The window covers the current second and the len - 1 seconds before it, so
 * a count made at time t stops counting between len - 1 and len seconds
 * later. Running totals are kept, so reading the window costs nothing and
 * moving it costs one step per elapsed second (at most len). Time comes in
 * as milliseconds from any clock that does not go back; if it does go back,
 * counts land in the newest bucket rather than rewriting the past.
 *
 * Plain memory, no allocation, no locks: one thread owns a window. Counts are
 * 32-bit, enough for 70 million events per second over 60 seconds. */
#ifndef STRATA_RESILIENCE_WINDOW_H
#define STRATA_RESILIENCE_WINDOW_H

#include <stdint.h>

#define WINDOW_MAX_SECONDS 60 /* longest window a caller may ask for */
#define WINDOW_COUNTERS 3     /* counters per bucket; callers name their own */

struct window {
  uint64_t head_s;                                        /* second of the newest bucket */
  unsigned len;                                           /* buckets (seconds) covered */
  uint32_t total[WINDOW_COUNTERS];                        /* sums over all buckets */
  uint32_t bucket[WINDOW_MAX_SECONDS][WINDOW_COUNTERS];   /* indexed by second % len */
};

/* Empties w and sets its length to seconds, clamped to 1..WINDOW_MAX_SECONDS. */
void window_init(struct window *w, unsigned seconds);

/* Forgets every count; the length stays. */
void window_clear(struct window *w);

/* Moves the window to now_ms, dropping the buckets that fell out of it. */
void window_advance(struct window *w, uint64_t now_ms);

/* Moves the window to now_ms and adds n to counter c (< WINDOW_COUNTERS) of
 * the current second. */
void window_add(struct window *w, uint64_t now_ms, unsigned c, uint32_t n);

/* Counter c summed over the window as it would be at now_ms, without moving
 * it (for readers holding a const window). */
uint32_t window_sum(const struct window *w, uint64_t now_ms, unsigned c);

#endif
