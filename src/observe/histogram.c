/* Log-linear histogram; see histogram.h. */
#include "observe/histogram.h"

uint64_t histogram_bucket_lower(unsigned b) {
  if (b < HIST_SUB)
    return b;
  unsigned e = b / HIST_SUB + HIST_SUB_BITS - 1;
  uint64_t sub = b % HIST_SUB;
  return (HIST_SUB + sub) << (e - HIST_SUB_BITS);
}

uint64_t histogram_bucket_upper(unsigned b) {
  if (b < HIST_SUB)
    return b + 1;
  unsigned e = b / HIST_SUB + HIST_SUB_BITS - 1;
  uint64_t sub = b % HIST_SUB;
  return (HIST_SUB + sub + 1) << (e - HIST_SUB_BITS);
}

void histogram_merge(struct histogram *dst, const struct histogram *src) {
  dst->count += __atomic_load_n(&src->count, __ATOMIC_RELAXED);
  dst->sum_ns += __atomic_load_n(&src->sum_ns, __ATOMIC_RELAXED);
  for (unsigned i = 0; i < HIST_BUCKETS; i++)
    dst->buckets[i] += __atomic_load_n(&src->buckets[i], __ATOMIC_RELAXED);
}

double histogram_quantile(const struct histogram *h, double q) {
  uint64_t total = 0;
  for (unsigned i = 0; i < HIST_BUCKETS; i++)
    total += h->buckets[i];
  if (total == 0)
    return 0;
  double rank = q * (double)total;
  uint64_t seen = 0;
  for (unsigned i = 0; i < HIST_BUCKETS; i++) {
    if (!h->buckets[i])
      continue;
    if ((double)(seen + h->buckets[i]) >= rank) {
      double lo = (double)histogram_bucket_lower(i), hi = (double)histogram_bucket_upper(i);
      return lo + (hi - lo) * (rank - (double)seen) / (double)h->buckets[i];
    }
    seen += h->buckets[i];
  }
  return (double)histogram_bucket_upper(HIST_BUCKETS - 1);
}

/* Seconds from nanoseconds, exact (integer arithmetic), no trailing zeros. */
static void put_seconds(struct strbuf *sb, uint64_t ns) {
  strbuf_printf(sb, "%llu.%09llu", (unsigned long long)(ns / 1000000000u),
                (unsigned long long)(ns % 1000000000u));
  if (sb->failed)
    return;
  /* trim trailing zeros but keep one digit after the point */
  while (sb->len > 2 && sb->data[sb->len - 1] == '0' && sb->data[sb->len - 2] != '.')
    sb->len--;
  sb->data[sb->len] = '\0';
}

static void bucket_line(struct strbuf *sb, const char *name, const char *labels,
                        uint64_t le_ns, uint64_t cumulative) {
  strbuf_puts(sb, name);
  strbuf_puts(sb, "_bucket{");
  if (*labels) {
    strbuf_puts(sb, labels);
    strbuf_putc(sb, ',');
  }
  strbuf_puts(sb, "le=\"");
  put_seconds(sb, le_ns);
  strbuf_puts(sb, "\"} ");
  strbuf_put_u64(sb, cumulative);
  strbuf_putc(sb, '\n');
}

void histogram_edges_add(struct histogram_edges *e, const struct histogram *h) {
  for (unsigned i = 0; i < HIST_BUCKETS; i++) {
    if (!h->buckets[i])
      continue;
    /* the bucket's upper edge, and its lower one (the previous bucket's
     * upper; bucket 0 starts at 0, which needs no line) */
    __atomic_or_fetch(&e->bits[i / 8], (uint8_t)(1u << (i % 8)), __ATOMIC_RELAXED);
    if (i > 0)
      __atomic_or_fetch(&e->bits[(i - 1) / 8], (uint8_t)(1u << ((i - 1) % 8)), __ATOMIC_RELAXED);
  }
}

void histogram_write_prometheus(struct strbuf *sb, const char *name, const char *labels,
                                const struct histogram *h, const struct histogram_edges *e) {
  uint64_t cumulative = 0;
  for (unsigned i = 0; i < HIST_BUCKETS; i++) {
    cumulative += h->buckets[i];
    if (__atomic_load_n(&e->bits[i / 8], __ATOMIC_RELAXED) & (1u << (i % 8)))
      bucket_line(sb, name, labels, histogram_bucket_upper(i), cumulative);
  }
  strbuf_puts(sb, name);
  strbuf_puts(sb, "_bucket{");
  if (*labels) {
    strbuf_puts(sb, labels);
    strbuf_putc(sb, ',');
  }
  strbuf_printf(sb, "le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
  strbuf_puts(sb, name);
  strbuf_puts(sb, "_sum");
  if (*labels)
    strbuf_printf(sb, "{%s}", labels);
  strbuf_printf(sb, " %.9f\n", (double)h->sum_ns / 1e9);
  strbuf_puts(sb, name);
  strbuf_puts(sb, "_count");
  if (*labels)
    strbuf_printf(sb, "{%s}", labels);
  strbuf_printf(sb, " %llu\n", (unsigned long long)cumulative);
}
