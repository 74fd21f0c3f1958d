/* In-process LRU cache with TTL: the embedded implementation of the cache
 * seam (cache.h), used when no shared cache is configured.
 *
 * One mutex per cache guards everything below: a chained hash table (FNV-1a,
 * seeded per cache, doubling while the load factor passes 1, up to the size
 * max_entries needs), an intrusive doubly linked LRU list (most recent at
 * mru, eviction from lru), and the table of loads in flight. Critical
 * sections are a lookup and a memcpy; if profiles ever show the lock, the
 * next step is N such tables chosen by hash bits.
 *
 * An entry is one allocation: header, key, NUL, value. It is charged
 * sizeof(struct entry) + key + 1 + value bytes against max_bytes. Expiry is
 * checked on read (CLOCK_MONOTONIC, ms): an expired entry is dropped when
 * found, and otherwise ages out of the LRU list like any cold entry.
 *
 * NOTES ON SINGLE FLIGHT
 *
 *   get_or_load(k):
 *     lock
 *   again:
 *     fresh entry for k? ----yes----------------> copy out: HIT / NEGATIVE
 *     flight for k?      ----yes--> wait on its cond until done
 *                                     outcome FOUND / ABSENT -> HIT / NEGATIVE
 *                                     outcome RETRY ---------> goto again
 *     create flight (gen 0), unlock, load(), lock        [this thread: MISS]
 *     finish: unlink flight; if gen == 0 store the result;
 *             publish outcome for waiters; broadcast; drop own reference
 *
 *   - Flights live in their own small table (flights[]), not in the entry
 *     table: a key being loaded has no entry, so nothing about loading can be
 *     evicted, and entries stay plain values.
 *   - flight->gen is the key's generation while it loads: every cache_set,
 *     cache_set_negative and cache_delete of k bumps it (invalidate_flight).
 *     The loader stores only if gen is still 0, the generation it started
 *     at, so a value read before a write can never be stored after it. The
 *     loader's own caller still gets what it read: its read overlapped the
 *     write.
 *   - Waiters share the result only when it is fresh (gen == 0) and not an
 *     error; otherwise the outcome is RETRY and each waiter starts over: it
 *     finds the newer entry the write stored, or no entry and no flight, and
 *     the first to take the lock becomes the next loader. A found value is
 *     handed to waiters through a copy the flight owns, so they get it even
 *     when the cache refused to store it (too large) or evicted it at once.
 *   - At most one flight per key exists: it is created and unlinked under
 *     the lock, and a thread looks for it under the same lock hold in which
 *     it saw no entry.
 *   - A flight is freed by whoever drops its last reference (the loader
 *     holds one, each waiter one), always under the lock.
 *   - Waiters block their thread (pthread_cond_wait): correct because loads
 *     are short synchronous reads; a loader that hangs stalls its waiters. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>

#include "cache/cache.h"
#include "core/error.h"
#include "core/hash.h"

#define MIN_BUCKETS 16
#define FLIGHT_BUCKETS 64 /* flights in progress are few: at most one per thread */

struct entry {
  struct entry *hnext;       /* hash chain */
  struct entry *prev, *next; /* LRU list: prev is more recent */
  uint64_t hash;
  uint64_t expires_ms;       /* monotonic deadline; 0 = none */
  size_t charge;             /* bytes counted against max_bytes */
  size_t klen, vlen;
  int negative;              /* remembered absence: no value */
  char data[];               /* key, NUL, value */
};

enum flight_outcome {
  FLIGHT_RETRY = 0, /* failed, stale or unshareable: waiters start over */
  FLIGHT_FOUND,     /* val/vlen hold the loaded value */
  FLIGHT_ABSENT     /* the key does not exist */
};

struct flight {
  struct flight *next;      /* chain in flights[] while the load runs */
  uint64_t hash;
  uint64_t gen;             /* writes of the key seen since the load began */
  unsigned refs;            /* the loader + each waiter */
  int done;                 /* outcome is final */
  enum flight_outcome outcome;
  char *val;                /* FOUND: a copy owned by the flight */
  size_t vlen;
  pthread_cond_t cond;      /* broadcast when done */
  size_t klen;
  char key[];
};

struct lru {
  struct cache base; /* first: the seam's pointer is ours */
  pthread_mutex_t lock;
  struct entry **buckets;
  size_t nbuckets;   /* power of two */
  size_t max_buckets;
  size_t count, bytes;
  size_t max_entries, max_bytes, max_entry; /* max_entry: key + value, max_bytes / 8 */
  struct entry *mru, *lru;
  uint64_t seed;
  struct flight *flights[FLIGHT_BUCKETS];
};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t deadline(uint32_t ttl_ms) { return ttl_ms ? now_ms() + ttl_ms : 0; }

/* Seeded per table (see core/hash.h), folded for the bucket mask. */
static uint64_t hash_key(uint64_t seed, const char *key, size_t len) {
  return hash_fold(hash_fnv1a64(seed, key, len));
}

static struct lru *lru_of(struct cache *c) { return (struct lru *)c; }

static void publish(struct lru *l) {
  cache_stat_set(&l->base.stats.entries, l->count);
  cache_stat_set(&l->base.stats.bytes, l->bytes);
}

/* ---- entries (all under l->lock) ---------------------------------------- */

static struct entry *find(struct lru *l, const char *key, size_t klen, uint64_t hash) {
  for (struct entry *e = l->buckets[hash & (l->nbuckets - 1)]; e; e = e->hnext)
    if (e->hash == hash && e->klen == klen && memcmp(e->data, key, klen) == 0)
      return e;
  return NULL;
}

static void list_unlink(struct lru *l, struct entry *e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    l->mru = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    l->lru = e->prev;
  e->prev = e->next = NULL;
}

static void list_push(struct lru *l, struct entry *e) {
  e->prev = NULL;
  e->next = l->mru;
  if (l->mru)
    l->mru->prev = e;
  else
    l->lru = e;
  l->mru = e;
}

static void touch(struct lru *l, struct entry *e) {
  if (l->mru == e)
    return;
  list_unlink(l, e);
  list_push(l, e);
}

static void drop(struct lru *l, struct entry *e) {
  struct entry **pp = &l->buckets[e->hash & (l->nbuckets - 1)];
  while (*pp != e)
    pp = &(*pp)->hnext;
  *pp = e->hnext;
  list_unlink(l, e);
  l->count--;
  l->bytes -= e->charge;
  free(e);
}

/* find() that treats an expired entry as absent and drops it. */
static struct entry *lookup(struct lru *l, const char *key, size_t klen, uint64_t hash) {
  struct entry *e = find(l, key, klen, hash);
  if (e && e->expires_ms && now_ms() >= e->expires_ms) {
    drop(l, e);
    cache_stat_add(&l->base.stats.expirations, 1);
    publish(l);
    return NULL;
  }
  return e;
}

/* Doubles the table while the load factor passes 1; on OOM the chains just
 * grow longer. */
static void maybe_grow(struct lru *l) {
  if (l->count <= l->nbuckets || l->nbuckets >= l->max_buckets)
    return;
  size_t n = l->nbuckets * 2;
  struct entry **b = calloc(n, sizeof *b);
  if (!b)
    return;
  for (size_t i = 0; i < l->nbuckets; i++) {
    struct entry *e = l->buckets[i];
    while (e) {
      struct entry *next = e->hnext;
      e->hnext = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
      e = next;
    }
  }
  free(l->buckets);
  l->buckets = b;
  l->nbuckets = n;
}

/* Replaces whatever k holds with a value (negative == 0) or an absence, then
 * evicts from the cold end until both bounds hold again. The new entry is at
 * most max_bytes / 8, so it is never the one evicted. Returns 0 or -1; on -1
 * k holds nothing. */
static int store(struct lru *l, const char *key, size_t klen, uint64_t hash, const void *val,
                 size_t vlen, int negative, uint32_t ttl_ms) {
  struct entry *old = find(l, key, klen, hash);
  if (old)
    drop(l, old);
  int rc = -1;
  if (klen > l->max_entry || vlen > l->max_entry - klen) {
    cache_stat_add(&l->base.stats.oversize, 1);
    goto done;
  }
  struct entry *e = malloc(sizeof *e + klen + 1 + vlen);
  if (!e)
    goto done;
  e->hash = hash;
  e->expires_ms = deadline(ttl_ms);
  e->charge = sizeof *e + klen + 1 + vlen;
  e->klen = klen;
  e->vlen = vlen;
  e->negative = negative;
  memcpy(e->data, key, klen);
  e->data[klen] = '\0';
  if (vlen)
    memcpy(e->data + klen + 1, val, vlen);

  size_t slot = hash & (l->nbuckets - 1);
  e->hnext = l->buckets[slot];
  l->buckets[slot] = e;
  list_push(l, e);
  l->count++;
  l->bytes += e->charge;
  while ((l->count > l->max_entries || l->bytes > l->max_bytes) && l->lru != e) {
    drop(l, l->lru);
    cache_stat_add(&l->base.stats.evictions, 1);
  }
  maybe_grow(l);
  rc = 0;
done:
  publish(l);
  return rc;
}

/* Copies n bytes into a, NUL-terminated. Returns 0 or -1. */
static int copy_out(struct arena *a, const char *src, size_t n, const char **val, size_t *len) {
  char *p = arena_strndup(a, src, n);
  if (!p)
    return -1;
  *val = p;
  *len = n;
  return 0;
}

/* ---- flights (all under l->lock) ---------------------------------------- */

static struct flight *flight_find(struct lru *l, const char *key, size_t klen, uint64_t hash) {
  for (struct flight *f = l->flights[hash % FLIGHT_BUCKETS]; f; f = f->next)
    if (f->hash == hash && f->klen == klen && memcmp(f->key, key, klen) == 0)
      return f;
  return NULL;
}

static void invalidate_flight(struct lru *l, const char *key, size_t klen, uint64_t hash) {
  struct flight *f = flight_find(l, key, klen, hash);
  if (f)
    f->gen++;
}

static struct flight *flight_start(struct lru *l, const char *key, size_t klen, uint64_t hash) {
  struct flight *f = calloc(1, sizeof *f + klen + 1);
  if (!f)
    return NULL;
  if (pthread_cond_init(&f->cond, NULL) != 0) {
    free(f);
    return NULL;
  }
  f->hash = hash;
  f->refs = 1;
  f->klen = klen;
  memcpy(f->key, key, klen);
  f->next = l->flights[hash % FLIGHT_BUCKETS];
  l->flights[hash % FLIGHT_BUCKETS] = f;
  return f;
}

static void flight_unlink(struct lru *l, struct flight *f) {
  struct flight **pp = &l->flights[f->hash % FLIGHT_BUCKETS];
  while (*pp != f)
    pp = &(*pp)->next;
  *pp = f->next;
}

static void flight_release(struct flight *f) {
  if (--f->refs)
    return;
  pthread_cond_destroy(&f->cond);
  free(f->val);
  free(f);
}

/* ---- operations ---------------------------------------------------------- */

static enum cache_result lru_get(struct cache *c, const char *key, size_t klen, struct arena *a,
                                 const char **val, size_t *len) {
  struct lru *l = lru_of(c);
  uint64_t hash = hash_key(l->seed, key, klen);
  enum cache_result r = CACHE_MISS;
  pthread_mutex_lock(&l->lock);
  struct entry *e = lookup(l, key, klen, hash);
  if (e && e->negative)
    r = CACHE_NEGATIVE;
  else if (e && copy_out(a, e->data + klen + 1, e->vlen, val, len) == 0)
    r = CACHE_HIT;
  if (r != CACHE_MISS)
    touch(l, e);
  pthread_mutex_unlock(&l->lock);
  return r;
}

static int lru_set(struct cache *c, const char *key, size_t klen, const void *val, size_t len,
                   uint32_t ttl_ms) {
  struct lru *l = lru_of(c);
  uint64_t hash = hash_key(l->seed, key, klen);
  pthread_mutex_lock(&l->lock);
  invalidate_flight(l, key, klen, hash);
  int rc = store(l, key, klen, hash, val, len, 0, ttl_ms);
  pthread_mutex_unlock(&l->lock);
  return rc;
}

static int lru_set_negative(struct cache *c, const char *key, size_t klen, uint32_t ttl_ms) {
  struct lru *l = lru_of(c);
  uint64_t hash = hash_key(l->seed, key, klen);
  pthread_mutex_lock(&l->lock);
  invalidate_flight(l, key, klen, hash);
  int rc = store(l, key, klen, hash, NULL, 0, 1, ttl_ms);
  pthread_mutex_unlock(&l->lock);
  return rc;
}

static void lru_del(struct cache *c, const char *key, size_t klen) {
  struct lru *l = lru_of(c);
  uint64_t hash = hash_key(l->seed, key, klen);
  pthread_mutex_lock(&l->lock);
  invalidate_flight(l, key, klen, hash);
  struct entry *e = find(l, key, klen, hash);
  if (e) {
    drop(l, e);
    publish(l);
  }
  pthread_mutex_unlock(&l->lock);
}

/* Runs the load for flight f with the lock released, then stores and
 * publishes its result (see NOTES ON SINGLE FLIGHT). Called and returns
 * with l->lock held. */
static int run_load(struct lru *l, struct flight *f, const char *key, size_t klen, uint64_t hash,
                    struct arena *a, cache_load_cb load, void *ctx, uint32_t ttl_ms,
                    uint32_t negative_ttl_ms, const char **val, size_t *len) {
  const char *v = NULL;
  size_t n = 0;
  cache_stat_add(&l->base.stats.loads, 1);
  pthread_mutex_unlock(&l->lock);
  int rc = load(ctx, a, &v, &n);
  pthread_mutex_lock(&l->lock);

  if (rc > 0) {
    rc = 1;
    if (!v) {
      v = "";
      n = 0;
    }
  }
  flight_unlink(l, f);
  int fresh = f->gen == 0;
  if (fresh && rc == 1)
    store(l, key, klen, hash, v, n, 0, ttl_ms); /* refused when too large: waiters still share */
  else if (fresh && rc == 0 && negative_ttl_ms)
    store(l, key, klen, hash, NULL, 0, 1, negative_ttl_ms);

  if (f->refs > 1) {
    f->outcome = FLIGHT_RETRY;
    if (fresh && rc == 0) {
      f->outcome = FLIGHT_ABSENT;
    } else if (fresh && rc == 1) {
      f->val = malloc(n ? n : 1);
      if (f->val) {
        memcpy(f->val, v, n);
        f->vlen = n;
        f->outcome = FLIGHT_FOUND;
      }
    }
  }
  f->done = 1;
  pthread_cond_broadcast(&f->cond);
  flight_release(f);

  if (rc == 1) {
    *val = v;
    *len = n;
  }
  return rc;
}

static int lru_get_or_load(struct cache *c, const char *key, size_t klen, struct arena *a,
                           cache_load_cb load, void *ctx, uint32_t ttl_ms,
                           uint32_t negative_ttl_ms, const char **val, size_t *len,
                           enum cache_result *how) {
  struct lru *l = lru_of(c);
  uint64_t hash = hash_key(l->seed, key, klen);
  int rc = 0;
  pthread_mutex_lock(&l->lock);
again:;
  struct entry *e = lookup(l, key, klen, hash);
  if (e) {
    touch(l, e);
    *how = e->negative ? CACHE_NEGATIVE : CACHE_HIT;
    rc = e->negative ? 0
         : copy_out(a, e->data + klen + 1, e->vlen, val, len) == 0 ? 1
                                                                   : STRATA_EINTERNAL;
    goto out;
  }
  struct flight *f = flight_find(l, key, klen, hash);
  if (f) {
    f->refs++;
    while (!f->done)
      pthread_cond_wait(&f->cond, &l->lock);
    enum flight_outcome o = f->outcome;
    if (o == FLIGHT_FOUND)
      rc = copy_out(a, f->val, f->vlen, val, len) == 0 ? 1 : STRATA_EINTERNAL;
    flight_release(f);
    if (o == FLIGHT_RETRY)
      goto again;
    *how = o == FLIGHT_FOUND ? CACHE_HIT : CACHE_NEGATIVE;
    if (o == FLIGHT_ABSENT)
      rc = 0;
    goto out;
  }
  *how = CACHE_MISS;
  f = flight_start(l, key, klen, hash);
  if (!f) {
    rc = STRATA_EINTERNAL;
    goto out;
  }
  rc = run_load(l, f, key, klen, hash, a, load, ctx, ttl_ms, negative_ttl_ms, val, len);
out:
  pthread_mutex_unlock(&l->lock);
  return rc;
}

static void lru_destroy(struct cache *c) {
  struct lru *l = lru_of(c);
  if (l->buckets) {
    for (size_t i = 0; i < l->nbuckets; i++) {
      struct entry *e = l->buckets[i];
      while (e) {
        struct entry *next = e->hnext;
        free(e);
        e = next;
      }
    }
    free(l->buckets);
  }
  pthread_mutex_destroy(&l->lock);
  free(l);
}

static const struct cache_ops lru_ops = {
  .kind = "lru",
  .get = lru_get,
  .set = lru_set,
  .set_negative = lru_set_negative,
  .del = lru_del,
  .get_or_load = lru_get_or_load,
  .destroy = lru_destroy,
};

struct cache *cache_lru_new(const char *name, size_t max_entries, size_t max_bytes) {
  if (max_entries == 0 || max_bytes == 0)
    return NULL;
  struct lru *l = calloc(1, sizeof *l);
  if (!l)
    return NULL;
  if (pthread_mutex_init(&l->lock, NULL) != 0) {
    free(l);
    return NULL;
  }
  l->max_entries = max_entries;
  l->max_bytes = max_bytes;
  l->max_entry = max_bytes / 8;
  l->max_buckets = MIN_BUCKETS;
  while (l->max_buckets < max_entries && l->max_buckets <= SIZE_MAX / 4)
    l->max_buckets *= 2;
  l->nbuckets = MIN_BUCKETS;
  l->buckets = calloc(l->nbuckets, sizeof *l->buckets);
  if (!l->buckets)
    goto fail;
  if (getrandom(&l->seed, sizeof l->seed, GRND_NONBLOCK) != (ssize_t)sizeof l->seed)
    l->seed = now_ms() ^ (uint64_t)(uintptr_t)l;
  if (cache_init(&l->base, &lru_ops, name) != 0)
    goto fail;
  return &l->base;

fail:
  lru_destroy(&l->base);
  return NULL;
}
