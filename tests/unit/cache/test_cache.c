/* Unit tests for the cache seam (src/cache/cache.c) and its in-process LRU
 * implementation (src/cache/lru.c).
 *
 * Single-threaded tests cover the map itself: hit, miss, overwrite, delete,
 * TTL and negative entries (real short TTLs and nanosleep, since the cache
 * reads CLOCK_MONOTONIC), LRU order under both bounds, the oversize rule and
 * the counters. Threaded tests cover single flight: a stampede on one cold
 * key makes one load, a failed load is retried by a waiter, and a write
 * during a load keeps the load's older value out of the cache. A bounded
 * stress mixes every call on many keys from many threads for the sanitizer
 * and helgrind runs. The last test reads the metrics exposition back.
 *
 * The assertions about counts hold whatever the scheduling: a thread that
 * arrives after a load finished finds the stored value instead of waiting,
 * which changes nothing the tests count. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../support.h"

#include "cache/cache.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/strbuf.h"
#include "observe/metrics.h"

static void sleep_ms(unsigned ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

static struct cache_stats stats_of(struct cache *c) {
  struct cache_stats s;
  cache_stats_get(c, &s);
  return s;
}

/* Asserts that key holds exactly the string want. */
static void assert_hit(struct cache *c, const char *key, const char *want) {
  struct arena a;
  const char *v;
  size_t n;
  arena_init(&a, 0);
  enum cache_result r = cache_get(c, key, &a, &v, &n);
  if (r != CACHE_HIT)
    fail_msg("%s: expected a hit, got %d", key, (int)r);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(v, want, n);
  assert_int_equal(v[n], '\0');
  arena_free(&a);
}

static enum cache_result probe(struct cache *c, const char *key) {
  struct arena a;
  const char *v;
  size_t n;
  arena_init(&a, 0);
  enum cache_result r = cache_get(c, key, &a, &v, &n);
  if (r != CACHE_HIT) {
    assert_null(v);
    assert_int_equal(n, 0);
  }
  arena_free(&a);
  return r;
}

/* ---- a fake source of truth -------------------------------------------- */

struct source {
  const char *value;   /* what a successful load returns; NULL = not found */
  size_t len;          /* of value; 0 means strlen */
  unsigned sleep_ms;   /* each load takes this long */
  int fail_first;      /* the first load returns -5 */
  int calls;           /* loads made (atomic) */
  /* gate: when gated, a load announces itself and waits to be opened */
  int gated;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int started, open;
};

static void source_init(struct source *s, const char *value) {
  memset(s, 0, sizeof *s);
  s->value = value;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
}

static void source_destroy(struct source *s) {
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
}

static int calls_of(struct source *s) { return __atomic_load_n(&s->calls, __ATOMIC_SEQ_CST); }

static int on_load(void *ctx, struct arena *a, const char **val, size_t *len) {
  struct source *s = ctx;
  int call = __atomic_fetch_add(&s->calls, 1, __ATOMIC_SEQ_CST);
  if (s->gated) {
    pthread_mutex_lock(&s->mu);
    s->started = 1;
    pthread_cond_broadcast(&s->cv);
    while (!s->open)
      pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
  }
  if (s->sleep_ms)
    sleep_ms(s->sleep_ms);
  if (s->fail_first && call == 0)
    return -5;
  if (!s->value)
    return 0;
  size_t n = s->len ? s->len : strlen(s->value);
  char *p = arena_alloc(a, n);
  if (!p)
    return -1;
  memcpy(p, s->value, n);
  *val = p;
  *len = n;
  return 1;
}

static void gate_wait_started(struct source *s) {
  pthread_mutex_lock(&s->mu);
  while (!s->started)
    pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
}

static void gate_open(struct source *s) {
  pthread_mutex_lock(&s->mu);
  s->open = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* One cache_get_or_load call on its own thread, its answer kept. */
struct caller {
  pthread_t tid;
  struct cache *c;
  const char *key;
  struct source *src;
  uint32_t negative_ttl_ms;
  pthread_barrier_t *start; /* may be NULL */
  int rc;
  enum cache_result how;
  char got[64];
};

static void *caller_main(void *arg) {
  struct caller *k = arg;
  struct arena a;
  const char *v = NULL;
  size_t n = 0;
  arena_init(&a, 0);
  if (k->start)
    pthread_barrier_wait(k->start);
  k->rc = cache_get_or_load(k->c, k->key, &a, on_load, k->src, 0, k->negative_ttl_ms, &v, &n,
                            &k->how);
  if (k->rc == 1)
    snprintf(k->got, sizeof k->got, "%.*s", (int)n, v);
  arena_free(&a);
  return NULL;
}

static void caller_start(struct caller *k, struct cache *c, const char *key, struct source *src,
                         uint32_t negative_ttl_ms, pthread_barrier_t *start) {
  memset(k, 0, sizeof *k);
  k->c = c;
  k->negative_ttl_ms = negative_ttl_ms;
  k->key = key;
  k->src = src;
  k->start = start;
  assert_int_equal(pthread_create(&k->tid, NULL, caller_main, k), 0);
}

/* ---- the map ----------------------------------------------------------- */

static void test_new_rejects_bad_arguments(void **state) {
  (void)state;
  assert_null(cache_lru_new("t", 0, 1024));
  assert_null(cache_lru_new("t", 10, 0));
  assert_null(cache_lru_new("", 10, 1024));
  assert_null(cache_lru_new(NULL, 10, 1024));
  struct cache *c = cache_lru_new("t", 10, 1024);
  assert_non_null(c);
  assert_null(cache_lru_new("t", 10, 1024)); /* the name is the metrics label */
  cache_free(c);
  c = cache_lru_new("t", 10, 1024); /* free released the name */
  assert_non_null(c);
  cache_free(c);
  cache_free(NULL);
}

static void test_null_cache_is_empty(void **state) {
  struct source src;
  struct arena a;
  const char *v;
  size_t n;
  enum cache_result how;
  (void)state;
  source_init(&src, "row");
  arena_init(&a, 0);
  assert_int_equal(cache_get(NULL, "k", &a, &v, &n), CACHE_MISS);
  assert_int_equal(cache_set(NULL, "k", "v", 1, 0), -1);
  assert_int_equal(cache_set_negative(NULL, "k", 10), -1);
  cache_delete(NULL, "k");
  for (int i = 0; i < 2; i++) {
    assert_int_equal(cache_get_or_load(NULL, "k", &a, on_load, &src, 0, 0, &v, &n, &how), 1);
    assert_int_equal(how, CACHE_MISS);
    assert_memory_equal(v, "row", 3);
  }
  assert_int_equal(calls_of(&src), 2);
  assert_int_equal(cache_get_or_load(NULL, "k", &a, on_load, &src, 0, 0, &v, &n, NULL), 1);
  struct cache_stats s = stats_of(NULL);
  assert_int_equal(s.hits + s.misses + s.entries, 0);
  arena_free(&a);
  source_destroy(&src);
}

static void test_set_get_delete(void **state) {
  (void)state;
  struct cache *c = cache_lru_new("t", 100, 64 * 1024);
  assert_int_equal(probe(c, "user:1"), CACHE_MISS);
  assert_int_equal(cache_set(c, "user:1", "alice", 5, 0), 0);
  assert_hit(c, "user:1", "alice");
  assert_int_equal(cache_set(c, "user:1", "alice2", 6, 0), 0); /* overwrite */
  assert_hit(c, "user:1", "alice2");
  assert_int_equal(cache_set(c, "user:2", "", 0, 0), 0);       /* empty value is a value */
  assert_hit(c, "user:2", "");
  assert_int_equal(cache_set(c, "", "empty key", 9, 0), 0);
  assert_hit(c, "", "empty key");
  assert_int_equal(stats_of(c).entries, 3);

  /* Values are bytes: an embedded NUL survives, and a NUL follows the copy. */
  struct arena a;
  const char *v;
  size_t n;
  arena_init(&a, 0);
  assert_int_equal(cache_set(c, "bin", "a\0b", 3, 0), 0);
  assert_int_equal(cache_get(c, "bin", &a, &v, &n), CACHE_HIT);
  assert_int_equal(n, 3);
  assert_memory_equal(v, "a\0b", 4);
  arena_free(&a);

  cache_delete(c, "user:1");
  assert_int_equal(probe(c, "user:1"), CACHE_MISS);
  cache_delete(c, "user:1"); /* deleting nothing is fine */
  cache_delete(c, "never");
  assert_hit(c, "user:2", "");
  /* Keys that share a prefix or differ only in length are different keys. */
  assert_int_equal(probe(c, "user:"), CACHE_MISS);
  assert_int_equal(probe(c, "user:22"), CACHE_MISS);
  assert_int_equal(stats_of(c).entries, 3);
  cache_free(c);
}

static void test_many_keys_grow_the_table(void **state) {
  (void)state;
  struct cache *c = cache_lru_new("t", 5000, 8 * 1024 * 1024);
  char key[32], val[32];
  for (int i = 0; i < 5000; i++) {
    snprintf(key, sizeof key, "k%d", i);
    snprintf(val, sizeof val, "v%d", i * 7);
    assert_int_equal(cache_set(c, key, val, strlen(val), 0), 0);
  }
  for (int i = 0; i < 5000; i++) {
    snprintf(key, sizeof key, "k%d", i);
    snprintf(val, sizeof val, "v%d", i * 7);
    assert_hit(c, key, val);
  }
  struct cache_stats s = stats_of(c);
  assert_int_equal(s.entries, 5000);
  assert_int_equal(s.evictions, 0);
  cache_free(c);
}

static void test_ttl_expiry(void **state) {
  (void)state;
  struct cache *c = cache_lru_new("t", 100, 64 * 1024);
  assert_int_equal(cache_set(c, "short", "x", 1, 50), 0);
  assert_int_equal(cache_set(c, "forever", "y", 1, 0), 0);
  assert_int_equal(cache_set(c, "long", "z", 1, 60000), 0);
  assert_hit(c, "short", "x");
  sleep_ms(120);
  assert_int_equal(probe(c, "short"), CACHE_MISS);
  assert_hit(c, "forever", "y");
  assert_hit(c, "long", "z");
  struct cache_stats s = stats_of(c);
  assert_int_equal(s.expirations, 1);
  assert_int_equal(s.entries, 2); /* the expired entry was dropped on read */
  /* A set gives a fresh TTL. */
  assert_int_equal(cache_set(c, "short", "x2", 2, 60000), 0);
  assert_hit(c, "short", "x2");
  cache_free(c);
}

static void test_negative_entries(void **state) {
  (void)state;
  struct cache *c = cache_lru_new("t", 100, 64 * 1024);
  assert_int_equal(cache_set_negative(c, "user:9", 0), -1); /* an absence must expire */
  assert_int_equal(probe(c, "user:9"), CACHE_MISS);

  assert_int_equal(cache_set_negative(c, "user:9", 60000), 0);
  assert_int_equal(probe(c, "user:9"), CACHE_NEGATIVE);
  assert_int_equal(cache_set(c, "user:9", "now exists", 10, 0), 0); /* a set clears it */
  assert_hit(c, "user:9", "now exists");
  assert_int_equal(cache_set_negative(c, "user:9", 60000), 0);      /* and replaces a value */
  assert_int_equal(probe(c, "user:9"), CACHE_NEGATIVE);
  cache_delete(c, "user:9");
  assert_int_equal(probe(c, "user:9"), CACHE_MISS);

  assert_int_equal(cache_set_negative(c, "user:10", 50), 0);
  assert_int_equal(probe(c, "user:10"), CACHE_NEGATIVE);
  sleep_ms(120);
  assert_int_equal(probe(c, "user:10"), CACHE_MISS);

  /* get_or_load answers from a negative entry without loading. */
  struct source src;
  struct arena a;
  const char *v;
  size_t n;
  enum cache_result how;
  source_init(&src, "row");
  arena_init(&a, 0);
  assert_int_equal(cache_set_negative(c, "user:11", 60000), 0);
  assert_int_equal(cache_get_or_load(c, "user:11", &a, on_load, &src, 0, 1000, &v, &n, &how), 0);
  assert_int_equal(how, CACHE_NEGATIVE);
  assert_null(v);
  assert_int_equal(calls_of(&src), 0);
  arena_free(&a);
  source_destroy(&src);

  struct cache_stats s = stats_of(c);
  assert_int_equal(s.negative_hits, 4);
  cache_free(c);
}

static void test_lru_eviction_by_entries(void **state) {
  (void)state;
  struct cache *c = cache_lru_new("t", 3, 64 * 1024);
  assert_int_equal(cache_set(c, "a", "1", 1, 0), 0);
  assert_int_equal(cache_set(c, "b", "2", 1, 0), 0);
  assert_int_equal(cache_set(c, "c", "3", 1, 0), 0);
  assert_hit(c, "a", "1"); /* a is now the most recent; b the coldest */
  assert_int_equal(cache_set(c, "d", "4", 1, 0), 0);
  assert_int_equal(probe(c, "b"), CACHE_MISS);
  assert_hit(c, "c", "3");
  assert_int_equal(cache_set(c, "e", "5", 1, 0), 0); /* c, d, a from hot to cold: a goes */
  assert_int_equal(probe(c, "a"), CACHE_MISS);
  assert_hit(c, "c", "3");
  assert_hit(c, "d", "4");
  assert_hit(c, "e", "5");
  /* Overwriting an entry does not evict anything. */
  assert_int_equal(cache_set(c, "d", "44", 2, 0), 0);
  struct cache_stats s = stats_of(c);
  assert_int_equal(s.entries, 3);
  assert_int_equal(s.evictions, 2);
  cache_free(c);
}

static void test_lru_eviction_by_bytes(void **state) {
  (void)state;
  enum { MAX = 64 * 1024, VAL = 4096 };
  struct cache *c = cache_lru_new("t", 1000, MAX);
  char *val = malloc(VAL + 1);
  char key[16];
  memset(val, 'x', VAL);
  val[VAL] = '\0';
  for (int i = 0; i < 40; i++) {
    snprintf(key, sizeof key, "k%d", i);
    val[0] = (char)('A' + i % 26);
    assert_int_equal(cache_set(c, key, val, VAL, 0), 0);
    if (i > 0)
      assert_int_equal(probe(c, "k0"), CACHE_HIT); /* keep k0 hot */
    struct cache_stats s = stats_of(c);
    assert_true(s.bytes <= MAX);
    assert_true(s.bytes >= s.entries * (VAL + 2));
  }
  struct cache_stats s = stats_of(c);
  /* 16 values alone fill max_bytes, so with any overhead (under 256 bytes an
   * entry) exactly 15 entries fit. */
  assert_in_range(s.entries, MAX / (VAL + 256), MAX / VAL - 1);
  assert_int_equal(s.evictions, 40 - s.entries);
  assert_int_equal(probe(c, "k0"), CACHE_HIT);  /* hot survives */
  assert_int_equal(probe(c, "k1"), CACHE_MISS); /* coldest went first */
  assert_int_equal(probe(c, "k39"), CACHE_HIT);
  /* Exactly the most recent entries (besides k0) remain. */
  for (int i = 1; i < 40; i++) {
    snprintf(key, sizeof key, "k%d", i);
    assert_int_equal(probe(c, key), i >= 40 - (int)(s.entries - 1) ? CACHE_HIT : CACHE_MISS);
  }
  free(val);
  cache_free(c);
}

static void test_oversize_refused(void **state) {
  (void)state;
  enum { MAX = 8000, LIMIT = MAX / 8 };
  struct cache *c = cache_lru_new("t", 100, MAX);
  char big[LIMIT + 1];
  memset(big, 'b', sizeof big);
  assert_int_equal(cache_set(c, "k", "old", 3, 0), 0);
  /* key + value over max_bytes / 8: refused, and the old value is gone too,
   * since the caller meant to replace it. */
  assert_int_equal(cache_set(c, "k", big, LIMIT, 0), -1);
  assert_int_equal(probe(c, "k"), CACHE_MISS);
  assert_int_equal(cache_set(c, "k", big, LIMIT - 1, 0), 0); /* exactly at the limit */
  assert_int_equal(probe(c, "k"), CACHE_HIT);
  char longkey[LIMIT + 2];
  memset(longkey, 'k', sizeof longkey - 1);
  longkey[sizeof longkey - 1] = '\0';
  assert_int_equal(cache_set(c, longkey, "v", 1, 0), -1);
  assert_int_equal(cache_set_negative(c, longkey, 100), -1);
  struct cache_stats s = stats_of(c);
  assert_int_equal(s.oversize, 3);
  assert_int_equal(s.entries, 1);
  assert_int_equal(s.evictions, 0);
  cache_free(c);
}

static void test_stats(void **state) {
  (void)state;
  struct cache *c = cache_lru_new("t", 100, 64 * 1024);
  struct source src;
  struct arena a;
  const char *v;
  size_t n;
  enum cache_result how;
  source_init(&src, "loaded");
  arena_init(&a, 0);
  cache_set(c, "a", "1", 1, 0);
  cache_set_negative(c, "n", 60000);
  probe(c, "a");
  probe(c, "a");
  probe(c, "b");
  probe(c, "n");
  assert_int_equal(cache_get_or_load(c, "l", &a, on_load, &src, 0, 0, &v, &n, &how), 1);
  assert_int_equal(how, CACHE_MISS);
  assert_int_equal(n, 6);
  assert_memory_equal(v, "loaded", 6);
  assert_int_equal(cache_get_or_load(c, "l", &a, on_load, &src, 0, 0, &v, &n, &how), 1);
  assert_int_equal(how, CACHE_HIT);
  assert_memory_equal(v, "loaded", 7);
  struct cache_stats s = stats_of(c);
  assert_int_equal(s.hits, 3);
  assert_int_equal(s.misses, 2);
  assert_int_equal(s.negative_hits, 1);
  assert_int_equal(s.loads, 1);
  assert_int_equal(s.entries, 3);
  assert_true(s.bytes > 3 + 6 + 3);
  cache_delete(c, "a");
  cache_delete(c, "n");
  cache_delete(c, "l");
  s = stats_of(c);
  assert_int_equal(s.entries, 0);
  assert_int_equal(s.bytes, 0);
  arena_free(&a);
  source_destroy(&src);
  cache_free(c);
}

/* ---- single flight ----------------------------------------------------- */

enum { STAMPEDE = 16 };

static void test_single_flight_one_load(void **state) {
  (void)state;
  struct cache *c = cache_lru_new("t", 100, 64 * 1024);
  struct source src;
  struct caller k[STAMPEDE];
  pthread_barrier_t start;
  source_init(&src, "the row");
  src.sleep_ms = 50;
  pthread_barrier_init(&start, NULL, STAMPEDE);
  for (int i = 0; i < STAMPEDE; i++)
    caller_start(&k[i], c, "user:1", &src, 0, &start);
  int misses = 0;
  for (int i = 0; i < STAMPEDE; i++) {
    pthread_join(k[i].tid, NULL);
    assert_int_equal(k[i].rc, 1);
    assert_string_equal(k[i].got, "the row");
    misses += k[i].how == CACHE_MISS;
  }
  assert_int_equal(calls_of(&src), 1);
  assert_int_equal(misses, 1);
  struct cache_stats s = stats_of(c);
  assert_int_equal(s.loads, 1);
  assert_int_equal(s.misses, 1);
  assert_int_equal(s.hits, STAMPEDE - 1);
  assert_hit(c, "user:1", "the row");
  pthread_barrier_destroy(&start);
  source_destroy(&src);
  cache_free(c);
}

/* A not-found result is shared with the waiters too, and remembered when a
 * negative TTL is given. */
static void test_single_flight_not_found(void **state) {
  (void)state;
  for (int remember = 0; remember < 2; remember++) {
    struct cache *c = cache_lru_new("t", 100, 64 * 1024);
    struct source src;
    struct caller k[8];
    pthread_barrier_t start;
    source_init(&src, NULL);
    src.sleep_ms = 50;
    pthread_barrier_init(&start, NULL, 8);
    for (int i = 0; i < 8; i++)
      caller_start(&k[i], c, "user:404", &src, remember ? 60000 : 0, &start);
    for (int i = 0; i < 8; i++) {
      pthread_join(k[i].tid, NULL);
      assert_int_equal(k[i].rc, 0);
    }
    /* Without a negative TTL, a thread arriving after the load would load
     * again; the load is long enough that they all arrive during it. */
    if (remember)
      assert_int_equal(calls_of(&src), 1);
    else
      assert_in_range(calls_of(&src), 1, 8);
    assert_int_equal(probe(c, "user:404"), remember ? CACHE_NEGATIVE : CACHE_MISS);
    pthread_barrier_destroy(&start);
    source_destroy(&src);
    cache_free(c);
  }
}

static void test_loader_failure_then_next_caller_loads(void **state) {
  (void)state;
  struct cache *c = cache_lru_new("t", 100, 64 * 1024);
  struct source src;
  struct arena a;
  const char *v;
  size_t n;
  enum cache_result how;
  source_init(&src, "row");
  src.fail_first = 1;
  arena_init(&a, 0);
  assert_int_equal(cache_get_or_load(c, "k", &a, on_load, &src, 0, 1000, &v, &n, &how), -5);
  assert_int_equal(how, CACHE_MISS);
  assert_null(v);
  assert_int_equal(probe(c, "k"), CACHE_MISS); /* errors are not cached, not even as absent */
  assert_int_equal(cache_get_or_load(c, "k", &a, on_load, &src, 0, 1000, &v, &n, &how), 1);
  assert_int_equal(how, CACHE_MISS);
  assert_int_equal(calls_of(&src), 2);
  assert_hit(c, "k", "row");
  arena_free(&a);
  source_destroy(&src);
  cache_free(c);
}

/* The first load fails while others wait: one waiter becomes the next loader,
 * the rest share its result. */
static void test_loader_failure_waiters_retry(void **state) {
  (void)state;
  struct cache *c = cache_lru_new("t", 100, 64 * 1024);
  struct source src;
  struct caller k[8];
  pthread_barrier_t start;
  source_init(&src, "second try");
  src.sleep_ms = 50;
  src.fail_first = 1;
  pthread_barrier_init(&start, NULL, 8);
  for (int i = 0; i < 8; i++)
    caller_start(&k[i], c, "k", &src, 0, &start);
  int errors = 0, ok = 0;
  for (int i = 0; i < 8; i++) {
    pthread_join(k[i].tid, NULL);
    if (k[i].rc == -5)
      errors++;
    if (k[i].rc == 1 && strcmp(k[i].got, "second try") == 0)
      ok++;
  }
  assert_int_equal(errors, 1);
  assert_int_equal(ok, 7);
  assert_int_equal(calls_of(&src), 2);
  assert_int_equal(stats_of(c).loads, 2);
  pthread_barrier_destroy(&start);
  source_destroy(&src);
  cache_free(c);
}

/* A value too large to cache still reaches every waiter from the one load. */
static void test_single_flight_oversize_value_shared(void **state) {
  (void)state;
  struct cache *c = cache_lru_new("t", 100, 64); /* entries over 8 bytes are refused */
  struct source src;
  struct caller k[8];
  pthread_barrier_t start;
  source_init(&src, "a value longer than eight bytes");
  src.sleep_ms = 50;
  pthread_barrier_init(&start, NULL, 8);
  for (int i = 0; i < 8; i++)
    caller_start(&k[i], c, "k", &src, 0, &start);
  for (int i = 0; i < 8; i++) {
    pthread_join(k[i].tid, NULL);
    assert_int_equal(k[i].rc, 1);
    assert_string_equal(k[i].got, "a value longer than eight bytes");
  }
  /* Late arrivals (none with a 50 ms load) would load again: not cached. */
  assert_in_range(calls_of(&src), 1, 8);
  struct cache_stats s = stats_of(c);
  assert_int_equal(s.entries, 0);
  assert_int_equal(s.oversize, (uint64_t)calls_of(&src));
  pthread_barrier_destroy(&start);
  source_destroy(&src);
  cache_free(c);
}

/* delete while a load runs: the loader's caller gets what it read, but the
 * cache does not keep it. */
static void test_delete_during_load_wins(void **state) {
  (void)state;
  struct cache *c = cache_lru_new("t", 100, 64 * 1024);
  struct source src;
  struct caller k;
  source_init(&src, "stale");
  src.gated = 1;
  caller_start(&k, c, "user:1", &src, 0, NULL);
  gate_wait_started(&src);
  cache_delete(c, "user:1"); /* e.g. an update committed after the read */
  gate_open(&src);
  pthread_join(k.tid, NULL);
  assert_int_equal(k.rc, 1);
  assert_string_equal(k.got, "stale");
  assert_int_equal(k.how, CACHE_MISS);
  assert_int_equal(probe(c, "user:1"), CACHE_MISS);
  assert_int_equal(stats_of(c).entries, 0);
  source_destroy(&src);
  cache_free(c);
}

/* set while a load runs: the newer value stays. Same for a negative entry. */
static void test_set_during_load_wins(void **state) {
  (void)state;
  for (int negative = 0; negative < 2; negative++) {
    struct cache *c = cache_lru_new("t", 100, 64 * 1024);
    struct source src;
    struct caller k;
    source_init(&src, "stale");
    src.gated = 1;
    caller_start(&k, c, "user:1", &src, 0, NULL);
    gate_wait_started(&src);
    if (negative)
      assert_int_equal(cache_set_negative(c, "user:1", 60000), 0);
    else
      assert_int_equal(cache_set(c, "user:1", "fresh", 5, 0), 0);
    gate_open(&src);
    pthread_join(k.tid, NULL);
    assert_int_equal(k.rc, 1);
    if (negative)
      assert_int_equal(probe(c, "user:1"), CACHE_NEGATIVE);
    else
      assert_hit(c, "user:1", "fresh");
    source_destroy(&src);
    cache_free(c);
  }
}

/* A caller that joins a load after a delete must not be handed the load's
 * stale value: it loads again (or would find a newer entry). */
static void test_waiter_after_delete_reloads(void **state) {
  (void)state;
  struct cache *c = cache_lru_new("t", 100, 64 * 1024);
  struct source old_src, new_src;
  struct caller a, b;
  source_init(&old_src, "stale");
  old_src.gated = 1;
  source_init(&new_src, "fresh");
  caller_start(&a, c, "user:1", &old_src, 0, NULL);
  gate_wait_started(&old_src);
  cache_delete(c, "user:1");
  caller_start(&b, c, "user:1", &new_src, 0, NULL); /* waits on a's flight... */
  sleep_ms(50);                                    /* ...most likely by now */
  gate_open(&old_src);
  pthread_join(a.tid, NULL);
  pthread_join(b.tid, NULL);
  assert_string_equal(a.got, "stale");
  assert_int_equal(b.rc, 1);
  assert_string_equal(b.got, "fresh");
  assert_int_equal(b.how, CACHE_MISS);
  assert_int_equal(calls_of(&new_src), 1);
  assert_hit(c, "user:1", "fresh");
  source_destroy(&old_src);
  source_destroy(&new_src);
  cache_free(c);
}

/* ---- stress ------------------------------------------------------------ */

enum { STRESS_THREADS = 8, STRESS_OPS = 3000, STRESS_KEYS = 200 };

struct stress {
  pthread_t tid;
  struct cache *c;
  unsigned seed;
  int bad; /* answers that were not the key's value */
};

/* Every key only ever holds one value, derived from its name, so any hit can
 * be checked. */
static size_t value_of(unsigned key, char *out, size_t cap) {
  return (size_t)snprintf(out, cap, "value-of-%u-%0*u", key, (int)(key % 50), key);
}

static int on_stress_load(void *ctx, struct arena *a, const char **val, size_t *len) {
  unsigned key = *(unsigned *)ctx;
  char buf[128];
  size_t n = value_of(key, buf, sizeof buf);
  if (key % 17 == 0)
    return 0;       /* some keys do not exist */
  if (key % 23 == 0)
    return -1;      /* and some fail */
  if (key % 4 == 0)
    sched_yield();  /* let other threads pile up on this load */
  *val = arena_strndup(a, buf, n);
  *len = n;
  return *val ? 1 : -1;
}

static void *stress_main(void *arg) {
  struct stress *t = arg;
  struct arena a;
  arena_init(&a, 0);
  for (int i = 0; i < STRESS_OPS; i++) {
    unsigned key = (unsigned)rand_r(&t->seed) % STRESS_KEYS;
    unsigned op = (unsigned)rand_r(&t->seed) % 10;
    char name[32], want[128];
    const char *v = NULL;
    size_t n = 0, wn = value_of(key, want, sizeof want);
    enum cache_result how;
    snprintf(name, sizeof name, "key:%u", key);
    if (op < 4) {
      int rc = cache_get_or_load(t->c, name, &a, on_stress_load, &key, (uint32_t)(key % 3) * 5,
                                 20, &v, &n, &how);
      if (rc == 1 && (n != wn || memcmp(v, want, n) != 0))
        t->bad++;
    } else if (op < 7) {
      if (cache_get(t->c, name, &a, &v, &n) == CACHE_HIT && (n != wn || memcmp(v, want, n) != 0))
        t->bad++;
    } else if (op < 8) {
      cache_set(t->c, name, want, wn, (uint32_t)(key % 4) * 3);
    } else if (op < 9) {
      cache_delete(t->c, name);
    } else {
      cache_set_negative(t->c, name, 10);
    }
    if (i % 64 == 0)
      arena_reset(&a);
  }
  arena_free(&a);
  return NULL;
}

static void test_stress_many_keys_many_threads(void **state) {
  (void)state;
  enum { MAX_ENTRIES = 64, MAX_BYTES = 16 * 1024 };
  struct cache *c = cache_lru_new("t", MAX_ENTRIES, MAX_BYTES);
  struct stress t[STRESS_THREADS];
  for (int i = 0; i < STRESS_THREADS; i++) {
    t[i].c = c;
    t[i].seed = 1234u + (unsigned)i;
    t[i].bad = 0;
    assert_int_equal(pthread_create(&t[i].tid, NULL, stress_main, &t[i]), 0);
  }
  for (int i = 0; i < STRESS_THREADS; i++) {
    pthread_join(t[i].tid, NULL);
    assert_int_equal(t[i].bad, 0);
  }
  struct cache_stats s = stats_of(c);
  assert_true(s.entries <= MAX_ENTRIES);
  assert_true(s.bytes <= MAX_BYTES);
  assert_true(s.evictions > 0);
  assert_true(s.loads > 0);
  assert_true(s.hits > 0);
  /* The gauges agree with the map after the storm: emptying it zeroes them. */
  for (unsigned k = 0; k < STRESS_KEYS; k++) {
    char name[32];
    snprintf(name, sizeof name, "key:%u", k);
    cache_delete(c, name);
  }
  s = stats_of(c);
  assert_int_equal(s.entries, 0);
  assert_int_equal(s.bytes, 0);
  cache_free(c);
}

/* ---- metrics ----------------------------------------------------------- */

static void test_metrics_families(void **state) {
  (void)state;
  struct cache *users = cache_lru_new("users", 100, 64 * 1024);
  struct cache *orders = cache_lru_new("or\"ders", 100, 64 * 1024);
  cache_set(users, "u:1", "a", 1, 0);
  probe(users, "u:1");
  probe(users, "u:1");
  probe(users, "u:2");
  struct source src;
  struct arena a;
  const char *v;
  size_t n;
  source_init(&src, "o");
  arena_init(&a, 0);
  cache_get_or_load(orders, "o:1", &a, on_load, &src, 0, 0, &v, &n, NULL);

  struct strbuf sb;
  strbuf_init(&sb, 0);
  metrics_write_prometheus(&sb);
  strbuf_putc(&sb, '\0');
  assert_false(sb.failed);
  static const char *const families[][2] = {
    {"strata_cache_hits_total", "counter"},      {"strata_cache_misses_total", "counter"},
    {"strata_cache_negative_hits_total", "counter"}, {"strata_cache_loads_total", "counter"},
    {"strata_cache_evictions_total", "counter"}, {"strata_cache_entries", "gauge"},
    {"strata_cache_bytes", "gauge"},
  };
  char line[128];
  for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
    snprintf(line, sizeof line, "# HELP %s ", families[i][0]);
    if (!strstr(sb.data, line))
      fail_msg("no HELP for %s", families[i][0]);
    snprintf(line, sizeof line, "# TYPE %s %s\n", families[i][0], families[i][1]);
    if (!strstr(sb.data, line))
      fail_msg("no TYPE for %s", families[i][0]);
    /* each family appears once, even with two caches */
    assert_null(strstr(strstr(sb.data, line) + 1, line));
  }
  assert_non_null(strstr(sb.data, "\nstrata_cache_hits_total{cache=\"users\"} 2\n"));
  assert_non_null(strstr(sb.data, "\nstrata_cache_misses_total{cache=\"users\"} 1\n"));
  assert_non_null(strstr(sb.data, "\nstrata_cache_entries{cache=\"users\"} 1\n"));
  assert_non_null(strstr(sb.data, "\nstrata_cache_loads_total{cache=\"or\\\"ders\"} 1\n"));
  assert_non_null(strstr(sb.data, "\nstrata_cache_misses_total{cache=\"or\\\"ders\"} 1\n"));

  /* A freed cache leaves the exposition; the families stay. */
  cache_free(orders);
  strbuf_clear(&sb);
  metrics_write_prometheus(&sb);
  strbuf_putc(&sb, '\0');
  assert_null(strstr(sb.data, "ders"));
  assert_non_null(strstr(sb.data, "strata_cache_hits_total{cache=\"users\"} 2\n"));
  cache_free(users);
  strbuf_clear(&sb);
  metrics_write_prometheus(&sb);
  strbuf_putc(&sb, '\0');
  assert_null(strstr(sb.data, "{cache="));
  assert_non_null(strstr(sb.data, "# TYPE strata_cache_hits_total counter\n"));
  strbuf_free(&sb);
  arena_free(&a);
  source_destroy(&src);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_new_rejects_bad_arguments),
    cmocka_unit_test(test_null_cache_is_empty),
    cmocka_unit_test(test_set_get_delete),
    cmocka_unit_test(test_many_keys_grow_the_table),
    cmocka_unit_test(test_ttl_expiry),
    cmocka_unit_test(test_negative_entries),
    cmocka_unit_test(test_lru_eviction_by_entries),
    cmocka_unit_test(test_lru_eviction_by_bytes),
    cmocka_unit_test(test_oversize_refused),
    cmocka_unit_test(test_stats),
    cmocka_unit_test(test_single_flight_one_load),
    cmocka_unit_test(test_single_flight_not_found),
    cmocka_unit_test(test_loader_failure_then_next_caller_loads),
    cmocka_unit_test(test_loader_failure_waiters_retry),
    cmocka_unit_test(test_single_flight_oversize_value_shared),
    cmocka_unit_test(test_delete_during_load_wins),
    cmocka_unit_test(test_set_during_load_wins),
    cmocka_unit_test(test_waiter_after_delete_reloads),
    cmocka_unit_test(test_stress_many_keys_many_threads),
    cmocka_unit_test(test_metrics_families),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
