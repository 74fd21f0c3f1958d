/* Unit tests for src/observe/histogram.c. Values are nanoseconds.
 *
 * The foundation asks for latency quantiles within 10% of the truth. The
 * histogram promises 6.25% (a bucket is at most 1/16 of its lower bound
 * wide), so the tests hold it to 6.5%: for several latency distributions,
 * 100k samples from a fixed-seed generator are recorded, the exact quantiles
 * are taken from the sorted samples, and both histogram_quantile() and a
 * Prometheus-style histogram_quantile() over the parsed text exposition must
 * land within 6.5% of them. The exposition is sparse (empty buckets left
 * out), so the second check is what shows that nothing is lost on the way
 * to Prometheus. */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/strbuf.h"
#include "observe/histogram.h"

#define N_SAMPLES 100000
#define MAX_REL_ERROR 0.065
#define TOP_EXCLUSIVE ((uint64_t)1 << (HIST_MAX_EXP + 1)) /* first value past the last bucket */

/* Runs fn() in a child process; returns 1 when it exited with status 0.
 * cmocka's signal handlers are dropped first so that a crash ends the child
 * instead of resuming the test run inside it. */
static int in_child(int (*fn)(void)) {
  static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS, SIGABRT};
  int st = 0;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
      signal(sigs[i], SIG_DFL);
    _exit(fn() == 0 ? 0 : 1);
  }
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (WIFSIGNALED(st))
    print_message("child killed by signal %d\n", WTERMSIG(st));
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* ---- deterministic random numbers ------------------------------------ */

static uint64_t rng_state;

static uint64_t rng_next(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double rng_uniform(void) { /* (0, 1) */
  return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(void) { /* Box-Muller */
  double u = rng_uniform(), v = rng_uniform();
  return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* Sample generators: one latency in nanoseconds each. */
static uint64_t gen_uniform(void) { /* 100 µs .. 10 ms */
  return (uint64_t)(100e3 + rng_uniform() * (10e6 - 100e3));
}

static uint64_t gen_lognormal(void) { /* median 2 ms */
  return (uint64_t)(2e6 * exp(0.6 * rng_normal()));
}

static uint64_t gen_bimodal(void) { /* 70% around 200 µs, 30% around 50 ms */
  double centre = rng_uniform() < 0.7 ? 200e3 : 50e6;
  return (uint64_t)(centre * exp(0.15 * rng_normal()));
}

static uint64_t gen_exponential(void) { /* mean 1 ms, from 20 µs */
  return (uint64_t)(20e3 - 1e6 * log(rng_uniform()));
}

static uint64_t gen_pareto(void) { /* heavy tail from 500 µs, alpha 1.5 */
  return (uint64_t)(500e3 / pow(rng_uniform(), 1.0 / 1.5));
}

static const struct distribution {
  const char *name;
  uint64_t (*gen)(void);
} distributions[] = {
    {"uniform 100us-10ms", gen_uniform},
    {"log-normal ~2ms", gen_lognormal},
    {"bimodal 200us/50ms", gen_bimodal},
    {"exponential 1ms", gen_exponential},
    {"pareto 500us a=1.5", gen_pareto},
};

static const double quantiles[] = {0.5, 0.9, 0.95, 0.99, 0.999};

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Exact q-quantile in ns: the ceil(q*n)-th smallest sample (nearest rank),
 * the sample whose bucket histogram_quantile() interpolates in. */
static double exact_quantile(const uint64_t *sorted_ns, size_t n, double q) {
  size_t k = (size_t)ceil(q * (double)n);
  if (k < 1)
    k = 1;
  return (double)sorted_ns[k - 1];
}

/* Fills h (zeroed first) with N_SAMPLES from d and returns the sorted
 * samples (caller frees). */
static uint64_t *record_distribution(const struct distribution *d, struct histogram *h) {
  uint64_t *ns = malloc(N_SAMPLES * sizeof *ns);
  assert_non_null(ns);
  memset(h, 0, sizeof *h);
  rng_state = 0x5eed0000 + (uint64_t)(d - distributions);
  for (size_t i = 0; i < N_SAMPLES; i++) {
    ns[i] = d->gen();
    histogram_record(h, ns[i]);
  }
  qsort(ns, N_SAMPLES, sizeof *ns, cmp_u64);
  return ns;
}

/* ---- bucket layout ----------------------------------------------------- */

static void test_bucket_bounds_contiguous(void **state) {
  (void)state;
  assert_int_equal(histogram_bucket_lower(0), 0);
  for (unsigned b = 0; b < HIST_BUCKETS; b++) {
    uint64_t lo = histogram_bucket_lower(b), hi = histogram_bucket_upper(b);
    if (lo >= hi)
      fail_msg("bucket %u: [%llu, %llu) is empty", b, (unsigned long long)lo,
               (unsigned long long)hi);
    if (b + 1 < HIST_BUCKETS && hi != histogram_bucket_lower(b + 1))
      fail_msg("bucket %u ends at %llu but bucket %u starts at %llu", b, (unsigned long long)hi,
               b + 1, (unsigned long long)histogram_bucket_lower(b + 1));
    /* The accuracy promise: no bucket wider than 1/16 of its lower bound
     * once past the 1 ns buckets. */
    if (lo >= HIST_SUB && (hi - lo) * HIST_SUB > lo)
      fail_msg("bucket %u: [%llu, %llu) is wider than 1/16 of its start", b,
               (unsigned long long)lo, (unsigned long long)hi);
    if (lo < HIST_SUB)
      assert_int_equal(hi - lo, 1);
  }
  assert_int_equal(histogram_bucket_upper(HIST_BUCKETS - 1), TOP_EXCLUSIVE);
}

static void expect_in_bucket(uint64_t v) {
  unsigned b = histogram_bucket(v);
  if (b >= HIST_BUCKETS)
    fail_msg("value %llu: bucket %u out of range", (unsigned long long)v, b);
  uint64_t lo = histogram_bucket_lower(b), hi = histogram_bucket_upper(b);
  if (v < lo || v >= hi)
    fail_msg("value %llu landed in bucket %u = [%llu, %llu)", (unsigned long long)v, b,
             (unsigned long long)lo, (unsigned long long)hi);
}

static void test_every_value_in_its_bucket(void **state) {
  (void)state;
  for (uint64_t v = 0; v < 300000; v++)
    expect_in_bucket(v);
  for (unsigned e = 1; e <= HIST_MAX_EXP; e++) {
    uint64_t p = (uint64_t)1 << e;
    expect_in_bucket(p - 1);
    expect_in_bucket(p);
    expect_in_bucket(p + 1);
    expect_in_bucket(p + p / 2);
  }
  expect_in_bucket(TOP_EXCLUSIVE - 1);
  /* Both edges of every bucket. */
  for (unsigned b = 0; b < HIST_BUCKETS; b++) {
    assert_int_equal(histogram_bucket(histogram_bucket_lower(b)), b);
    assert_int_equal(histogram_bucket(histogram_bucket_upper(b) - 1), b);
  }
  /* Random values spread over every power of two. */
  rng_state = 42;
  for (int i = 0; i < 1000000; i++) {
    unsigned bits = (unsigned)(rng_next() % (HIST_MAX_EXP + 1)) + 1;
    expect_in_bucket(rng_next() >> (64 - bits));
  }
}

static void test_values_past_the_last_bucket(void **state) {
  (void)state;
  assert_int_equal(histogram_bucket(TOP_EXCLUSIVE), HIST_BUCKETS - 1);
  assert_int_equal(histogram_bucket(TOP_EXCLUSIVE * 5), HIST_BUCKETS - 1);
  assert_int_equal(histogram_bucket(UINT64_MAX), HIST_BUCKETS - 1);
  struct histogram h;
  memset(&h, 0, sizeof h);
  histogram_record(&h, UINT64_MAX);
  assert_int_equal(h.buckets[HIST_BUCKETS - 1], 1);
  assert_int_equal(h.count, 1);
}

/* ---- recording, merging, quantiles ------------------------------------ */

static void test_record_and_merge(void **state) {
  struct histogram a, b;
  (void)state;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  histogram_record(&a, 0);
  histogram_record(&a, 5);       /* 1 ns buckets below 16 */
  histogram_record(&a, 1500000); /* [1441792, 1507328) = 22..23 << 16 */
  histogram_record(&b, 1500999); /* the same bucket */
  histogram_record(&b, 2000000000);
  assert_int_equal(a.count, 3);
  assert_int_equal(a.sum_ns, 5 + 1500000);
  assert_int_equal(a.buckets[0], 1);
  assert_int_equal(a.buckets[5], 1);
  assert_int_equal(histogram_bucket(1500000), histogram_bucket(1500999));
  assert_int_equal(a.buckets[histogram_bucket(1500000)], 1);
  histogram_merge(&a, &b);
  assert_int_equal(a.count, 5);
  assert_int_equal(a.sum_ns, 5 + 1500000 + 1500999 + 2000000000ull);
  assert_int_equal(a.buckets[histogram_bucket(1500000)], 2);
  assert_int_equal(a.buckets[histogram_bucket(2000000000)], 1);
  uint64_t total = 0;
  for (unsigned i = 0; i < HIST_BUCKETS; i++)
    total += a.buckets[i];
  assert_int_equal(total, a.count);
  /* b is only read. */
  assert_int_equal(b.count, 2);
}

static void test_quantile_simple_cases(void **state) {
  struct histogram h;
  (void)state;
  memset(&h, 0, sizeof h);
  assert_true(histogram_quantile(&h, 0.5) == 0.0); /* empty */
  /* One value: every quantile is inside its bucket. */
  histogram_record(&h, 5000000); /* 5 ms */
  unsigned b = histogram_bucket(5000000);
  for (unsigned i = 0; i < sizeof quantiles / sizeof quantiles[0]; i++) {
    double v = histogram_quantile(&h, quantiles[i]);
    assert_true(v >= (double)histogram_bucket_lower(b));
    assert_true(v <= (double)histogram_bucket_upper(b));
  }
  /* Quantiles never decrease with q. */
  memset(&h, 0, sizeof h);
  rng_state = 7;
  for (int i = 0; i < 10000; i++)
    histogram_record(&h, gen_lognormal());
  double prev = 0;
  for (double q = 0.01; q < 1.0; q += 0.01) {
    double v = histogram_quantile(&h, q);
    assert_true(v >= prev);
    prev = v;
  }
  /* 1 ns buckets below 16 ns: exact to the nanosecond. */
  memset(&h, 0, sizeof h);
  for (uint64_t ns = 0; ns < 10; ns++)
    histogram_record(&h, ns);
  double p50 = histogram_quantile(&h, 0.5);
  assert_true(p50 >= 4.0 && p50 <= 5.0);
}

static void test_quantile_accuracy(void **state) {
  struct histogram h;
  int failed = 0;
  (void)state;
  for (unsigned d = 0; d < sizeof distributions / sizeof distributions[0]; d++) {
    uint64_t *ns = record_distribution(&distributions[d], &h);
    assert_int_equal(h.count, N_SAMPLES);
    for (unsigned i = 0; i < sizeof quantiles / sizeof quantiles[0]; i++) {
      double q = quantiles[i];
      double exact = exact_quantile(ns, N_SAMPLES, q);
      double est = histogram_quantile(&h, q);
      double err = fabs(est - exact) / exact;
      print_message("  %-20s p%-5g exact %10.1f us  histogram %10.1f us  error %5.2f%%\n",
                    distributions[d].name, q * 100, exact / 1e3, est / 1e3, err * 100);
      if (err > MAX_REL_ERROR) {
        print_message("    ^ more than %.1f%% off\n", MAX_REL_ERROR * 100);
        failed = 1;
      }
    }
    free(ns);
  }
  assert_false(failed);
}

/* ---- Prometheus exposition -------------------------------------------- */

struct bucket_line {
  double le_s; /* INFINITY for +Inf */
  uint64_t count;
};

struct exposition {
  struct bucket_line lines[2 * HIST_BUCKETS + 1];
  unsigned n;
  double sum;
  uint64_t count;
  int has_sum, has_count;
};

/* Parses the text written for `name` with `labels`, failing the test on any
 * line that is not one of the expected three kinds. */
static void parse_exposition(const char *text, const char *name, const char *labels,
                             struct exposition *e) {
  char prefix[256], sum_prefix[256], count_prefix[256];
  memset(e, 0, sizeof *e);
  snprintf(prefix, sizeof prefix, "%s_bucket{%s%sle=\"", name, labels, *labels ? "," : "");
  if (*labels) {
    snprintf(sum_prefix, sizeof sum_prefix, "%s_sum{%s} ", name, labels);
    snprintf(count_prefix, sizeof count_prefix, "%s_count{%s} ", name, labels);
  } else {
    snprintf(sum_prefix, sizeof sum_prefix, "%s_sum ", name);
    snprintf(count_prefix, sizeof count_prefix, "%s_count ", name);
  }
  for (const char *line = text; *line;) {
    const char *nl = strchr(line, '\n');
    assert_non_null(nl); /* every line ends with a newline */
    char *end = NULL;
    if (strncmp(line, prefix, strlen(prefix)) == 0) {
      const char *v = line + strlen(prefix);
      struct bucket_line *b = &e->lines[e->n++];
      assert_true(e->n <= sizeof e->lines / sizeof e->lines[0]);
      if (strncmp(v, "+Inf\"", 5) == 0) {
        b->le_s = INFINITY;
        end = (char *)v + 4;
      } else {
        b->le_s = strtod(v, &end);
        assert_true(end > v);
      }
      assert_memory_equal(end, "\"} ", 3);
      b->count = strtoull(end + 3, &end, 10);
    } else if (strncmp(line, sum_prefix, strlen(sum_prefix)) == 0) {
      e->sum = strtod(line + strlen(sum_prefix), &end);
      e->has_sum = 1;
    } else if (strncmp(line, count_prefix, strlen(count_prefix)) == 0) {
      e->count = strtoull(line + strlen(count_prefix), &end, 10);
      e->has_count = 1;
    } else {
      fail_msg("unexpected line: %.*s", (int)(nl - line), line);
    }
    if (end != nl)
      fail_msg("trailing bytes on line: %.*s", (int)(nl - line), line);
    line = nl + 1;
  }
}

/* Checks the shape Prometheus requires: increasing le, cumulative counts
 * that never decrease, +Inf last and equal to the count. */
static void check_exposition(const struct exposition *e, const struct histogram *h) {
  assert_true(e->n >= 1);
  assert_true(e->has_sum && e->has_count);
  for (unsigned i = 1; i < e->n; i++) {
    if (!(e->lines[i].le_s > e->lines[i - 1].le_s))
      fail_msg("le not increasing at line %u: %g after %g", i, e->lines[i].le_s,
               e->lines[i - 1].le_s);
    if (e->lines[i].count < e->lines[i - 1].count)
      fail_msg("count decreasing at le=%g", e->lines[i].le_s);
  }
  assert_true(isinf(e->lines[e->n - 1].le_s));
  assert_int_equal(e->lines[e->n - 1].count, h->count);
  assert_int_equal(e->count, h->count);
  double sum_s = (double)h->sum_ns / 1e9;
  assert_true(fabs(e->sum - sum_s) <= 1e-9 * (sum_s > 1 ? sum_s : 1));
  /* Bucket edges are whole nanoseconds, written exactly. */
  for (unsigned i = 0; i + 1 < e->n; i++) {
    double ns = e->lines[i].le_s * 1e9;
    assert_true(fabs(ns - round(ns)) < 1e-6 * (ns > 1 ? ns : 1));
  }
}

/* Prometheus' histogram_quantile() (promql/quantile.go, bucketQuantile) over
 * parsed (le, cumulative count) pairs. Returns ns. */
static double prom_quantile(const struct exposition *e, double q) {
  const struct bucket_line *b = e->lines;
  unsigned n = e->n;
  if (n < 2)
    return NAN;
  double observations = (double)b[n - 1].count;
  if (observations == 0)
    return NAN;
  double rank = q * observations;
  unsigned i = 0;
  while (i < n - 1 && (double)b[i].count < rank)
    i++;
  if (i == n - 1)
    return b[n - 2].le_s * 1e9;
  if (i == 0 && b[0].le_s <= 0)
    return b[0].le_s * 1e9;
  double start = 0, end = b[i].le_s, count = (double)b[i].count;
  if (i > 0) {
    start = b[i - 1].le_s;
    count -= (double)b[i - 1].count;
    rank -= (double)b[i - 1].count;
  }
  return (start + (end - start) * (rank / count)) * 1e9;
}

/* The exposition of h alone: its own edges. */
static void write_alone(struct strbuf *sb, const char *name, const char *labels,
                        const struct histogram *h) {
  struct histogram_edges edges;
  memset(&edges, 0, sizeof edges);
  histogram_edges_add(&edges, h);
  histogram_write_prometheus(sb, name, labels, h, &edges);
}

static void test_prometheus_round_trip(void **state) {
  struct histogram h;
  struct strbuf sb;
  static struct exposition e;
  int failed = 0;
  (void)state;
  strbuf_init(&sb, 0);
  for (unsigned d = 0; d < sizeof distributions / sizeof distributions[0]; d++) {
    uint64_t *ns = record_distribution(&distributions[d], &h);
    strbuf_clear(&sb);
    write_alone(&sb, "strata_test_seconds", "route=\"/users/:id\",method=\"GET\"", &h);
    assert_false(sb.failed);
    parse_exposition(sb.data, "strata_test_seconds", "route=\"/users/:id\",method=\"GET\"", &e);
    check_exposition(&e, &h);
    /* Sparse: far fewer lines than buckets, yet the edges of every
     * non-empty bucket are there. */
    assert_true(e.n < HIST_BUCKETS);
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
      if (!h.buckets[b])
        continue;
      int lo_found = histogram_bucket_lower(b) == 0, hi_found = 0;
      for (unsigned i = 0; i < e.n; i++) {
        uint64_t edge = (uint64_t)llround(e.lines[i].le_s * 1e9);
        lo_found |= edge == histogram_bucket_lower(b);
        hi_found |= edge == histogram_bucket_upper(b);
      }
      if (!lo_found || !hi_found)
        fail_msg("%s: bucket %u's edges missing from the exposition", distributions[d].name, b);
    }
    for (unsigned i = 0; i < sizeof quantiles / sizeof quantiles[0]; i++) {
      double q = quantiles[i];
      double exact = exact_quantile(ns, N_SAMPLES, q);
      double prom = prom_quantile(&e, q);
      double own = histogram_quantile(&h, q);
      double err = fabs(prom - exact) / exact;
      if (err > MAX_REL_ERROR) {
        print_message("  %-20s p%-5g exact %10.1f us  prometheus %10.1f us  error %5.2f%%"
                      " (more than %.1f%%)\n",
                      distributions[d].name, q * 100, exact / 1e3, prom / 1e3, err * 100,
                      MAX_REL_ERROR * 100);
        failed = 1;
      }
      /* The same interpolation over the same edges: the same answer. */
      if (fabs(prom - own) > 1e-6 * own)
        fail_msg("%s p%g: Prometheus %f vs histogram_quantile %f", distributions[d].name, q * 100,
                 prom, own);
    }
    free(ns);
  }
  strbuf_free(&sb);
  assert_false(failed);
}

static void test_prometheus_small_cases(void **state) {
  struct histogram h;
  struct strbuf sb;
  static struct exposition e;
  (void)state;
  strbuf_init(&sb, 0);
  /* Empty: only +Inf, sum and count. */
  memset(&h, 0, sizeof h);
  write_alone(&sb, "x_seconds", "", &h);
  assert_string_equal(sb.data, "x_seconds_bucket{le=\"+Inf\"} 0\n"
                               "x_seconds_sum 0.000000000\n"
                               "x_seconds_count 0\n");
  /* One value of 1.5 ms, in the [1441792, 1507328) ns bucket (22..23 << 16):
   * a line for each edge, in seconds, trailing zeros trimmed. */
  histogram_record(&h, 1500000);
  strbuf_clear(&sb);
  write_alone(&sb, "x_seconds", "", &h);
  assert_string_equal(sb.data, "x_seconds_bucket{le=\"0.001441792\"} 0\n"
                               "x_seconds_bucket{le=\"0.001507328\"} 1\n"
                               "x_seconds_bucket{le=\"+Inf\"} 1\n"
                               "x_seconds_sum 0.001500000\n"
                               "x_seconds_count 1\n");
  parse_exposition(sb.data, "x_seconds", "", &e);
  check_exposition(&e, &h);
  /* Adjacent non-empty buckets share one edge line; the first bucket has
   * no lower edge line (it starts at 0). */
  memset(&h, 0, sizeof h);
  histogram_record(&h, 0);             /* [0, 1) */
  histogram_record(&h, 1);             /* [1, 2), adjacent */
  histogram_record(&h, 3000);          /* [2944, 3072) = 23..24 << 7 */
  histogram_record(&h, 3000000000ull); /* 3 s: [2952790016, 3087007744) = 22..23 << 27 */
  strbuf_clear(&sb);
  write_alone(&sb, "y", "a=\"b\"", &h);
  assert_string_equal(sb.data, "y_bucket{a=\"b\",le=\"0.000000001\"} 1\n"
                               "y_bucket{a=\"b\",le=\"0.000000002\"} 2\n"
                               "y_bucket{a=\"b\",le=\"0.000002944\"} 2\n"
                               "y_bucket{a=\"b\",le=\"0.000003072\"} 3\n"
                               "y_bucket{a=\"b\",le=\"2.952790016\"} 3\n"
                               "y_bucket{a=\"b\",le=\"3.087007744\"} 4\n"
                               "y_bucket{a=\"b\",le=\"+Inf\"} 4\n"
                               "y_sum{a=\"b\"} 3.000003001\n"
                               "y_count{a=\"b\"} 4\n");
  parse_exposition(sb.data, "y", "a=\"b\"", &e);
  check_exposition(&e, &h);
  strbuf_free(&sb);
}

/* Two series of one metric (two routes) share their edges: the same `le`
 * values in both, so a sum by le is cumulative; an edge once written stays
 * after its series' observations moved elsewhere. */
static void test_prometheus_series_share_edges(void **state) {
  (void)state;
  static struct histogram a, b;
  struct histogram_edges edges;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  memset(&edges, 0, sizeof edges);
  histogram_record(&a, 3000);    /* 3 us */
  histogram_record(&b, 1500000); /* 1.5 ms */
  histogram_edges_add(&edges, &a);
  histogram_edges_add(&edges, &b);
  struct strbuf sa, sbb;
  strbuf_init(&sa, 0);
  strbuf_init(&sbb, 0);
  histogram_write_prometheus(&sa, "x", "r=\"a\"", &a, &edges);
  histogram_write_prometheus(&sbb, "x", "r=\"b\"", &b, &edges);
  assert_string_equal(sa.data, "x_bucket{r=\"a\",le=\"0.000002944\"} 0\n"
                               "x_bucket{r=\"a\",le=\"0.000003072\"} 1\n"
                               "x_bucket{r=\"a\",le=\"0.001441792\"} 1\n"
                               "x_bucket{r=\"a\",le=\"0.001507328\"} 1\n"
                               "x_bucket{r=\"a\",le=\"+Inf\"} 1\n"
                               "x_sum{r=\"a\"} 0.000003000\n"
                               "x_count{r=\"a\"} 1\n");
  assert_string_equal(sbb.data, "x_bucket{r=\"b\",le=\"0.000002944\"} 0\n"
                                "x_bucket{r=\"b\",le=\"0.000003072\"} 0\n"
                                "x_bucket{r=\"b\",le=\"0.001441792\"} 0\n"
                                "x_bucket{r=\"b\",le=\"0.001507328\"} 1\n"
                                "x_bucket{r=\"b\",le=\"+Inf\"} 1\n"
                                "x_sum{r=\"b\"} 0.001500000\n"
                                "x_count{r=\"b\"} 1\n");
  /* a fresh series with nothing near 3 us still writes those edges */
  memset(&a, 0, sizeof a);
  histogram_record(&a, 1500000);
  histogram_edges_add(&edges, &a);
  strbuf_clear(&sa);
  histogram_write_prometheus(&sa, "x", "", &a, &edges);
  assert_non_null(strstr(sa.data, "x_bucket{le=\"0.000003072\"} 0\n"));
  strbuf_free(&sa);
  strbuf_free(&sbb);
}

/* Writing into a capped buffer that is too small must mark it failed, not
 * crash. */
static int write_into_tiny_buffer(void) {
  struct histogram h;
  struct strbuf sb;
  memset(&h, 0, sizeof h);
  histogram_record(&h, 1500000);
  strbuf_init(&sb, 8);
  write_alone(&sb, "strata_request_duration_seconds", "", &h);
  int ok = sb.failed;
  strbuf_free(&sb);
  return ok ? 0 : 1;
}

static void test_prometheus_capped_buffer(void **state) {
  (void)state;
  if (!in_child(write_into_tiny_buffer))
    fail_msg("histogram_write_prometheus into a capped strbuf did not end with sb.failed");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bucket_bounds_contiguous),
      cmocka_unit_test(test_every_value_in_its_bucket),
      cmocka_unit_test(test_values_past_the_last_bucket),
      cmocka_unit_test(test_record_and_merge),
      cmocka_unit_test(test_quantile_simple_cases),
      cmocka_unit_test(test_quantile_accuracy),
      cmocka_unit_test(test_prometheus_round_trip),
      cmocka_unit_test(test_prometheus_small_cases),
      cmocka_unit_test(test_prometheus_series_share_edges),
      cmocka_unit_test(test_prometheus_capped_buffer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
