/* Log-linear latency histogram (HdrHistogram-style buckets).
 *
 * Values are nanoseconds. Below 16 ns each bucket is 1 ns wide; above, each
 * power of two is split into 16 equal buckets, so a bucket is at most 1/16
 * (6.25%) of its lower bound wide. Any quantile read from the buckets with
 * Prometheus' linear interpolation therefore lands within 6.25% of the true
 * value — the foundation asks for 10%. Recording is a count-leading-zeros and
 * two increments. One histogram is written by one thread (a worker's shard);
 * readers on other threads use relaxed atomic loads and sum the shards. */
#ifndef STRATA_OBSERVE_HISTOGRAM_H
#define STRATA_OBSERVE_HISTOGRAM_H

#include <stdint.h>

#include "core/strbuf.h"

#define HIST_SUB_BITS 4
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 45 /* 2^45 ns ≈ 9.8 h: larger values land in the last bucket */
#define HIST_BUCKETS ((HIST_MAX_EXP - HIST_SUB_BITS + 2) * HIST_SUB)

struct histogram {
  uint64_t count;
  uint64_t sum_ns;
  uint64_t buckets[HIST_BUCKETS];
};

/* Bucket index of a value in nanoseconds. */
static inline unsigned histogram_bucket(uint64_t ns) {
  if (ns < HIST_SUB)
    return (unsigned)ns;
  unsigned e = 63u - (unsigned)__builtin_clzll(ns);
  if (e > HIST_MAX_EXP)
    return HIST_BUCKETS - 1;
  unsigned sub = (unsigned)(ns >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1);
  return (e - HIST_SUB_BITS + 1) * HIST_SUB + sub;
}

/* Records one observation of ns nanoseconds. Single writer. */
static inline void histogram_record(struct histogram *h, uint64_t ns) {
  unsigned b = histogram_bucket(ns);
  __atomic_store_n(&h->buckets[b], h->buckets[b] + 1, __ATOMIC_RELAXED);
  __atomic_store_n(&h->count, h->count + 1, __ATOMIC_RELAXED);
  __atomic_store_n(&h->sum_ns, h->sum_ns + ns, __ATOMIC_RELAXED);
}

/* Lower and upper bounds (ns) of bucket b: it holds values v with
 * lower <= v < upper. */
uint64_t histogram_bucket_lower(unsigned b);
uint64_t histogram_bucket_upper(unsigned b);

/* Adds src into dst (both may be read concurrently with their writer). */
void histogram_merge(struct histogram *dst, const struct histogram *src);

/* The q-quantile (0 < q < 1) in nanoseconds, estimated the way Prometheus'
 * histogram_quantile() does: linear interpolation inside the bucket. */
double histogram_quantile(const struct histogram *h, double q);

/* The `le` edges the series of one metric share. Prometheus sums bucket
 * series by `le` (histogram_quantile over routes or hosts), which needs
 * every series to give the same edges, and rate() needs an edge, once
 * written, to stay. So each metric keeps one set that only grows: the two
 * edges of every bucket any of its series has ever had an observation in.
 * Bit j stands for the edge histogram_bucket_upper(j). Static storage, one
 * per metric name; updated with atomics (concurrent scrapes). */
struct histogram_edges {
  uint8_t bits[(HIST_BUCKETS + 7) / 8];
};

/* Adds the edges h needs to e. */
void histogram_edges_add(struct histogram_edges *e, const struct histogram *h);

/* Appends the Prometheus `_bucket`, `_sum` and `_count` lines of h for the
 * metric `name` with the extra labels `labels` (e.g. `route="/x"`, may be
 * empty): one `_bucket` line per edge of e (which must hold h's, see
 * histogram_edges_add), then `+Inf`. Both edges of every non-empty bucket
 * are written, so interpolation between the written edges is exactly the
 * interpolation inside the real bucket. Values in seconds. */
void histogram_write_prometheus(struct strbuf *sb, const char *name, const char *labels,
                                const struct histogram *h, const struct histogram_edges *e);

#endif
