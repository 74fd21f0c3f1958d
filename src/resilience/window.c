/* Rolling window of one-second buckets (see window.h). Bucket i holds the
 * second s with s % len == i; head_s is the newest second held, so the
 * buckets of seconds head_s - len + 1 .. head_s are live and moving forward
 * by k seconds zeroes the k buckets those new seconds reuse. */
#include "resilience/window.h"

#include <string.h>

void window_init(struct window *w, unsigned seconds) {
  memset(w, 0, sizeof *w);
  if (seconds < 1)
    seconds = 1;
  if (seconds > WINDOW_MAX_SECONDS)
    seconds = WINDOW_MAX_SECONDS;
  w->len = seconds;
}

void window_clear(struct window *w) {
  memset(w->total, 0, sizeof w->total);
  memset(w->bucket, 0, sizeof w->bucket);
}

void window_advance(struct window *w, uint64_t now_ms) {
  uint64_t s = now_ms / 1000;
  if (s <= w->head_s) /* same second, or the clock went back */
    return;
  if (s - w->head_s >= w->len) {
    window_clear(w);
  } else {
    for (uint64_t x = w->head_s + 1; x <= s; x++) {
      uint32_t *b = w->bucket[x % w->len];
      for (unsigned c = 0; c < WINDOW_COUNTERS; c++) {
        w->total[c] -= b[c];
        b[c] = 0;
      }
    }
  }
  w->head_s = s;
}

void window_add(struct window *w, uint64_t now_ms, unsigned c, uint32_t n) {
  window_advance(w, now_ms);
  w->bucket[w->head_s % w->len][c] += n;
  w->total[c] += n;
}

uint32_t window_sum(const struct window *w, uint64_t now_ms, unsigned c) {
  uint64_t s = now_ms / 1000;
  if (s <= w->head_s)
    return w->total[c];
  if (s - w->head_s >= w->len)
    return 0;
  /* Buckets of seconds head_s - len + 1 .. s - len have fallen out. */
  uint32_t sum = w->total[c];
  for (uint64_t x = w->head_s + 1; x <= s; x++)
    sum -= w->bucket[x % w->len][c];
  return sum;
}
