/* The generic half of the cache seam (see cache.h): dispatch through the
 * vtable, the counters every implementation shares, and the registry of live
 * caches that one metrics collector walks to export them all.
 *
 * The collector is added to metrics on the first cache_init() and stays for
 * the life of the process; it writes every family even when no cache is
 * live, so a dashboard sees the families from the start. The registry lock
 * is held while the collector reads a cache's counters, so cache_free(),
 * which unregisters under the same lock, never frees a cache being read. */
#include "cache/cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "observe/metrics.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache *live_head; /* doubly linked through live_prev/live_next */
static int collector_added;

/* ---- metrics ------------------------------------------------------------ */

struct family {
  const char *name;
  const char *type;
  const char *help;
  size_t offset; /* of the field in struct cache_stats */
};

static const struct family families[] = {
  {"strata_cache_hits_total", "counter", "Cache lookups answered with a value.",
   offsetof(struct cache_stats, hits)},
  {"strata_cache_misses_total", "counter",
   "Cache lookups that found nothing (for a read-through, the caller loaded).",
   offsetof(struct cache_stats, misses)},
  {"strata_cache_negative_hits_total", "counter",
   "Cache lookups answered with a remembered absence.",
   offsetof(struct cache_stats, negative_hits)},
  {"strata_cache_loads_total", "counter",
   "Reads of the source of truth made to fill the cache (one per single-flight group).",
   offsetof(struct cache_stats, loads)},
  {"strata_cache_evictions_total", "counter",
   "Entries evicted to stay within the entry and byte bounds.",
   offsetof(struct cache_stats, evictions)},
  {"strata_cache_expirations_total", "counter", "Entries found expired and dropped.",
   offsetof(struct cache_stats, expirations)},
  {"strata_cache_oversize_total", "counter",
   "Stores refused because the entry exceeded one eighth of the byte bound.",
   offsetof(struct cache_stats, oversize)},
  {"strata_cache_entries", "gauge", "Entries held.", offsetof(struct cache_stats, entries)},
  {"strata_cache_bytes", "gauge", "Bytes charged for the entries held (key, value, overhead).",
   offsetof(struct cache_stats, bytes)},
};

/* Cache names are chosen by code, but escape them as the format asks. */
static void put_label_value(struct strbuf *sb, const char *v) {
  for (; *v; v++) {
    if (*v == '\n') {
      strbuf_puts(sb, "\\n");
      continue;
    }
    if (*v == '\\' || *v == '"')
      strbuf_putc(sb, '\\');
    strbuf_putc(sb, *v);
  }
}

static void on_collect(struct strbuf *sb, void *ctx) {
  (void)ctx;
  pthread_mutex_lock(&registry_lock);
  for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
    metrics_family(sb, families[f].name, families[f].type, families[f].help);
    for (struct cache *c = live_head; c; c = c->live_next) {
      uint64_t *field = (uint64_t *)((char *)&c->stats + families[f].offset);
      strbuf_printf(sb, "%s{cache=\"", families[f].name);
      put_label_value(sb, c->name);
      strbuf_puts(sb, "\"} ");
      strbuf_put_u64(sb, __atomic_load_n(field, __ATOMIC_RELAXED));
      strbuf_putc(sb, '\n');
    }
  }
  pthread_mutex_unlock(&registry_lock);
}

/* ---- registry ----------------------------------------------------------- */

int cache_init(struct cache *c, const struct cache_ops *ops, const char *name) {
  memset(c, 0, sizeof *c);
  if (!ops || !name || !*name)
    return -1;
  char *copy = strdup(name);
  if (!copy)
    return -1;
  pthread_mutex_lock(&registry_lock);
  for (struct cache *o = live_head; o; o = o->live_next)
    if (strcmp(o->name, name) == 0)
      goto fail;
  /* A failed add (collector table full) is retried by the next cache. */
  if (!collector_added && metrics_add_collector(on_collect, NULL) == 0)
    collector_added = 1;
  c->ops = ops;
  c->name = copy;
  c->live_next = live_head;
  if (live_head)
    live_head->live_prev = c;
  live_head = c;
  pthread_mutex_unlock(&registry_lock);
  return 0;

fail:
  pthread_mutex_unlock(&registry_lock);
  free(copy);
  return -1;
}

void cache_free(struct cache *c) {
  if (!c)
    return;
  pthread_mutex_lock(&registry_lock);
  if (c->live_prev)
    c->live_prev->live_next = c->live_next;
  else if (live_head == c)
    live_head = c->live_next;
  if (c->live_next)
    c->live_next->live_prev = c->live_prev;
  pthread_mutex_unlock(&registry_lock);
  char *name = c->name;
  c->ops->destroy(c);
  free(name);
}

/* ---- dispatch ----------------------------------------------------------- */

static void count(struct cache *c, enum cache_result r) {
  switch (r) {
  case CACHE_HIT: cache_stat_add(&c->stats.hits, 1); break;
  case CACHE_NEGATIVE: cache_stat_add(&c->stats.negative_hits, 1); break;
  default: cache_stat_add(&c->stats.misses, 1); break;
  }
}

enum cache_result cache_get(struct cache *c, const char *key, struct arena *a, const char **val,
                            size_t *len) {
  *val = NULL;
  *len = 0;
  if (!c || !key)
    return CACHE_MISS;
  enum cache_result r = c->ops->get(c, key, strlen(key), a, val, len);
  count(c, r);
  return r;
}

int cache_set(struct cache *c, const char *key, const void *val, size_t len, uint32_t ttl_ms) {
  if (!c || !key || (!val && len))
    return -1;
  return c->ops->set(c, key, strlen(key), val, len, ttl_ms);
}

int cache_set_negative(struct cache *c, const char *key, uint32_t ttl_ms) {
  if (!c || !key || ttl_ms == 0)
    return -1;
  return c->ops->set_negative(c, key, strlen(key), ttl_ms);
}

void cache_delete(struct cache *c, const char *key) {
  if (c && key)
    c->ops->del(c, key, strlen(key));
}

int cache_get_or_load(struct cache *c, const char *key, struct arena *a, cache_load_cb load,
                      void *ctx, uint32_t ttl_ms, uint32_t negative_ttl_ms, const char **val,
                      size_t *len, enum cache_result *how) {
  enum cache_result how_local;
  if (!how)
    how = &how_local;
  *val = NULL;
  *len = 0;
  *how = CACHE_MISS;
  if (!c || !key) {
    int rc = load(ctx, a, val, len);
    if (rc != 1) {
      *val = NULL;
      *len = 0;
    }
    return rc;
  }
  int rc = c->ops->get_or_load(c, key, strlen(key), a, load, ctx, ttl_ms, negative_ttl_ms, val,
                               len, how);
  count(c, *how);
  return rc;
}

void cache_stats_get(struct cache *c, struct cache_stats *out) {
  memset(out, 0, sizeof *out);
  if (!c)
    return;
  out->hits = __atomic_load_n(&c->stats.hits, __ATOMIC_RELAXED);
  out->misses = __atomic_load_n(&c->stats.misses, __ATOMIC_RELAXED);
  out->negative_hits = __atomic_load_n(&c->stats.negative_hits, __ATOMIC_RELAXED);
  out->loads = __atomic_load_n(&c->stats.loads, __ATOMIC_RELAXED);
  out->evictions = __atomic_load_n(&c->stats.evictions, __ATOMIC_RELAXED);
  out->expirations = __atomic_load_n(&c->stats.expirations, __ATOMIC_RELAXED);
  out->oversize = __atomic_load_n(&c->stats.oversize, __ATOMIC_RELAXED);
  out->entries = __atomic_load_n(&c->stats.entries, __ATOMIC_RELAXED);
  out->bytes = __atomic_load_n(&c->stats.bytes, __ATOMIC_RELAXED);
}
