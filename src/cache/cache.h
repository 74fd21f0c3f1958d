/* The cache seam: what business code calls to put a cache in front of a
 * source of truth (a repository read).
 *
 * struct cache is an interface: a vtable (struct cache_ops) plus the counters
 * every implementation shares. The first implementation is the in-process
 * LRU with TTL (cache_lru_new, src/cache/lru.c); a Redis one (shared between
 * instances, optionally two-tier) will sit behind the same calls, so a service
 * never knows which one it has. Values are opaque bytes; keys are C strings
 * the caller builds ("user:42").
 *
 * Three kinds of answers: a value (HIT), nothing (MISS), or "known to be
 * absent" (NEGATIVE) — a short-lived memory of a row that does not exist, so
 * a flood of requests for a missing id does not reach the database.
 * cache_get_or_load() is the cache-aside read with single flight: however
 * many threads miss on one key at once, the loader runs once.
 *
 * Every function may be called from any thread. A NULL struct cache * is a
 * valid, always-empty cache (get misses, set stores nothing, get_or_load
 * calls the loader every time), so "no cache" is configuration, not a branch
 * in business code. All live caches are exported on /metrics, labelled by
 * name (see cache.c). */
#ifndef STRATA_CACHE_CACHE_H
#define STRATA_CACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

struct cache;

enum cache_result {
  CACHE_MISS = 0, /* nothing known about the key (or it expired) */
  CACHE_HIT,      /* a value was found */
  CACHE_NEGATIVE  /* the key is remembered as absent (cache_set_negative) */
};

/* Counters of one cache since it was created. */
struct cache_stats {
  uint64_t hits;          /* lookups answered with a value */
  uint64_t misses;        /* lookups that found nothing (get_or_load: the caller loaded) */
  uint64_t negative_hits; /* lookups answered with "absent" */
  uint64_t loads;         /* loader calls made by cache_get_or_load */
  uint64_t evictions;     /* entries dropped to stay within the bounds */
  uint64_t expirations;   /* entries found expired and dropped */
  uint64_t oversize;      /* sets refused because the entry was too large */
  uint64_t entries;       /* entries held now (gauge) */
  uint64_t bytes;         /* bytes charged now: key + value + overhead (gauge) */
};

/* Creates an in-process LRU cache holding at most max_entries entries and
 * max_bytes bytes, where an entry is charged its key, its value and a fixed
 * per-entry overhead (the entry header). Least recently used entries are
 * evicted first; an entry whose key and value together exceed max_bytes / 8
 * is refused, so one value cannot flush the cache. name (copied) is the
 * `cache` label on /metrics and must be unique among live caches.
 * Returns NULL when a bound is 0, the name is empty or taken, or on OOM. */
struct cache *cache_lru_new(const char *name, size_t max_entries, size_t max_bytes);

/* Destroys c and removes it from /metrics. Accepts NULL. No other call on c
 * may be running or start afterwards (in particular no loader may be in
 * flight). */
void cache_free(struct cache *c);

/* Looks key up. On CACHE_HIT the value is copied into the caller's arena a:
 * *val points to len bytes followed by a NUL (not counted in *len), valid
 * until a is reset; no lock or reference is held after the call. On MISS and
 * NEGATIVE, *val is NULL and *len 0. An expired entry counts as a MISS and is
 * dropped. If a cannot hold the copy the answer is MISS. */
enum cache_result cache_get(struct cache *c, const char *key, struct arena *a, const char **val,
                            size_t *len);

/* Stores a copy of len bytes at val under key (copied), replacing any value
 * or negative entry, for ttl_ms milliseconds (0 = until evicted or deleted).
 * A load of key in flight at the time will not store its (older) result.
 * Returns 0, or -1 when the entry is too large (counted in stats.oversize) or
 * memory runs out; the cache is then left without any entry for key. */
int cache_set(struct cache *c, const char *key, const void *val, size_t len, uint32_t ttl_ms);

/* Remembers that key does not exist for ttl_ms milliseconds, which must be
 * > 0: an absence never expiring would hide a row created elsewhere forever
 * if its invalidation were missed. Replaces any value. Returns 0 or -1. */
int cache_set_negative(struct cache *c, const char *key, uint32_t ttl_ms);

/* Forgets key (value or negative entry). A load of key in flight will not
 * store its result, so a write that deletes after committing always wins
 * over a read that started before it. */
void cache_delete(struct cache *c, const char *key);

/* Reads the source of truth for one key. Returns 1 when found, with *val and
 * *len describing a value allocated in a (or any memory that outlives the
 * call until a is reset); 0 when the key does not exist; < 0 on error. Runs
 * on the calling thread, with no cache lock held. It may use the cache for
 * other keys but must not call cache_get_or_load() (a loader waiting for a
 * loader can deadlock). */
typedef int (*cache_load_cb)(void *ctx, struct arena *a, const char **val, size_t *len);

/* Cache-aside read with single flight. Answers from the cache when it can;
 * otherwise calls load(ctx, a, ...) and caches what it returns: a value for
 * ttl_ms (0 = no expiry), an absence for negative_ttl_ms (0 = do not remember
 * absences). Errors are returned and not cached.
 *
 * Returns 1 (found: *val and *len as for cache_get, in a), 0 (absent: *val NULL)
 * or the loader's negative error. *how (may be NULL) tells where the answer
 * came from: CACHE_HIT or CACHE_NEGATIVE when it was already known — stored,
 * or loaded by another thread this call waited for — CACHE_MISS when this
 * call ran the loader.
 *
 * Concurrent calls for one key from different threads make one load: the
 * first caller loads, the others BLOCK their thread until it finishes and
 * then take its result. This suits loads that are short (a SQLite or
 * replica read with its own timeout); a loader that hangs holds its waiters
 * as long. If the load fails, each waiter retries and one of them becomes
 * the next loader. Returns STRATA_EINTERNAL (core/error.h) when memory runs
 * out, in a or in the cache. */
int cache_get_or_load(struct cache *c, const char *key, struct arena *a, cache_load_cb load,
                      void *ctx, uint32_t ttl_ms, uint32_t negative_ttl_ms, const char **val,
                      size_t *len, enum cache_result *how);

/* Copies c's counters into *out (zeros for NULL). Each counter is read
 * atomically, the set as a whole is not a snapshot. */
void cache_stats_get(struct cache *c, struct cache_stats *out);

/* ---- For implementations of the seam ----------------------------------
 *
 * An implementation embeds struct cache as its first member, fills it with
 * cache_init() and provides the operations below. The generic layer
 * (cache.c) handles NULL caches and NULL keys and counts hits, misses and
 * negative hits from what the operations return; an implementation counts
 * what only it sees (loads, evictions, expirations, oversize, entries, bytes)
 * with cache_stat_add() / cache_stat_set(). Every operation must be
 * thread-safe. key_len is strlen(key). */
struct cache_ops {
  const char *kind; /* "lru", "redis", ... */
  enum cache_result (*get)(struct cache *c, const char *key, size_t key_len, struct arena *a,
                           const char **val, size_t *len);
  int (*set)(struct cache *c, const char *key, size_t key_len, const void *val, size_t len,
             uint32_t ttl_ms);
  int (*set_negative)(struct cache *c, const char *key, size_t key_len, uint32_t ttl_ms);
  void (*del)(struct cache *c, const char *key, size_t key_len);
  /* Same contract as cache_get_or_load(); *how is never NULL here. */
  int (*get_or_load)(struct cache *c, const char *key, size_t key_len, struct arena *a,
                     cache_load_cb load, void *ctx, uint32_t ttl_ms, uint32_t negative_ttl_ms,
                     const char **val, size_t *len, enum cache_result *how);
  /* Frees the implementation's object (c included); called by cache_free()
   * after c has left the metrics registry. */
  void (*destroy)(struct cache *c);
};

struct cache {
  const struct cache_ops *ops;
  char *name;                    /* metrics label, owned */
  struct cache_stats stats;      /* each field written and read with relaxed atomics */
  struct cache *live_prev, *live_next; /* registry of live caches (cache.c) */
};

/* Fills the common part of c and registers it for /metrics (adding the
 * cache collector to metrics on first use). Returns 0, or -1 when the name
 * is empty or already used by a live cache, or on OOM; c is then unchanged
 * apart from being zeroed, and the implementation frees it itself. */
int cache_init(struct cache *c, const struct cache_ops *ops, const char *name);

static inline void cache_stat_add(uint64_t *counter, uint64_t n) {
  __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}
static inline void cache_stat_set(uint64_t *gauge, uint64_t v) {
  __atomic_store_n(gauge, v, __ATOMIC_RELAXED);
}

#endif
