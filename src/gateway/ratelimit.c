/* GCRA rate limiter: a bounded, sharded table of key -> TAT. See ratelimit.h
 * for the algorithm, the units and the eviction rule.
 *
 * Each shard is a chained hash table over a fixed array of entries: bucket
 * heads and chain links are entry indexes + 1 (0 ends a chain), free entries
 * are linked through the same `next` field. Keys of up to KEY_INLINE bytes
 * are stored as they are; longer ones as a 128-bit keyed SipHash digest
 * (two independent secret keys), which a client cannot steer into a
 * collision without the keys. */
#include "gateway/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/error.h"

#define KEY_INLINE 47
#define KEY_DIGEST 0xff /* entry.klen of a key stored as its digest */
#define EVICT_SCAN 16   /* entries the clock hand looks at per eviction */
#define MAX_SHARDS 16
#define MIN_PER_SHARD 64
#define MAX_NOW_MS (UINT64_C(1) << 43)

struct entry {
  uint64_t tat;  /* theoretical arrival time, in ms * rate */
  uint32_t rate; /* the rate tat is expressed in */
  uint32_t next; /* next entry in the chain (or free list), index + 1 */
  uint32_t hash;
  uint8_t klen; /* 0: free; 1..KEY_INLINE: inline; KEY_DIGEST: digest */
  char key[KEY_INLINE];
};

struct shard {
  pthread_mutex_t lock;
  struct entry *e;
  uint32_t *bucket; /* chain heads, index + 1 */
  uint32_t cap;     /* entries */
  uint32_t used;
  uint32_t fresh;   /* entries [fresh, cap) have never been used */
  uint32_t free;    /* free list head, index + 1 */
  uint32_t bmask;
  uint32_t hand;    /* eviction clock hand */
};

struct ratelimit {
  unsigned refs;                  /* owners (atomic) */
  struct ratelimit_policy policy; /* burst resolved (never 0) */
  uint64_t sip[3][2];             /* [0] table hash, [1..2] long-key digest */
  unsigned nshards;
  struct shard shard[MAX_SHARDS];
};

/* ---- SipHash-2-4 ------------------------------------------------------ */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
  do {                                                                                             \
    v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                      \
    v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                         \
    v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                         \
    v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                      \
  } while (0)

static uint64_t siphash(const uint64_t k[2], const unsigned char *p, size_t len) {
  uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ k[0];
  uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ k[1];
  uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ k[0];
  uint64_t v3 = UINT64_C(0x7465646279746573) ^ k[1];
  uint64_t b = (uint64_t)len << 56;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t m = 0;
    for (int j = 7; j >= 0; j--)
      m = (m << 8) | p[i + (size_t)j];
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
  }
  for (size_t j = 0; i + j < len; j++)
    b |= (uint64_t)p[i + j] << (8 * j);
  v3 ^= b;
  SIPROUND;
  SIPROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

static void random_keys(void *buf, size_t n) {
  uint64_t *k = buf;
  size_t want = n * sizeof *k;
  if (getrandom(k, want, GRND_NONBLOCK) == (ssize_t)want)
    return;
  /* No entropy yet (early boot): keys only protect chain lengths, so a
   * clock- and address-derived fallback is acceptable. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)k;
  for (size_t i = 0; i < n; i++) {
    x += UINT64_C(0x9e3779b97f4a7c15);
    uint64_t z = x;
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    k[i] = z ^ (z >> 31);
  }
}

/* ---- policy ------------------------------------------------------------ */

int ratelimit_policy_check(const struct ratelimit_policy *p) {
  if (!p || p->rate < 1 || p->rate > RATELIMIT_MAX_RATE || p->period_ms < 1 ||
      p->period_ms > RATELIMIT_MAX_PERIOD_MS || p->burst > RATELIMIT_MAX_RATE)
    return STRATA_EVALIDATION;
  return 0;
}

static uint32_t burst_of(const struct ratelimit_policy *p) { return p->burst ? p->burst : p->rate; }

/* ---- table ------------------------------------------------------------- */

static int shard_init(struct shard *s, uint32_t cap) {
  uint32_t nb = 1;
  while (nb < cap)
    nb <<= 1;
  s->e = calloc(cap, sizeof *s->e);
  s->bucket = calloc(nb, sizeof *s->bucket);
  if (!s->e || !s->bucket)
    return -1;
  s->cap = cap;
  s->bmask = nb - 1;
  return pthread_mutex_init(&s->lock, NULL) == 0 ? 0 : -1;
}

struct ratelimit *ratelimit_new(const struct ratelimit_policy *p, size_t max_keys) {
  if (ratelimit_policy_check(p) != 0 || max_keys < 1 || max_keys > UINT32_MAX / 2)
    return NULL;
  struct ratelimit *rl = calloc(1, sizeof *rl);
  if (!rl)
    return NULL;
  rl->refs = 1;
  rl->policy = *p;
  rl->policy.burst = burst_of(p);
  random_keys(rl->sip, sizeof rl->sip / sizeof rl->sip[0][0]);
  unsigned n = MAX_SHARDS;
  while (n > 1 && max_keys / n < MIN_PER_SHARD)
    n /= 2;
  for (unsigned i = 0; i < n; i++) {
    /* The shards count so far, so that a failure frees only what exists. */
    rl->nshards = i + 1;
    if (shard_init(&rl->shard[i], (uint32_t)(max_keys / n)) != 0) {
      free(rl->shard[i].e);
      free(rl->shard[i].bucket);
      rl->nshards = i;
      ratelimit_free(rl);
      return NULL;
    }
  }
  return rl;
}

struct ratelimit *ratelimit_ref(struct ratelimit *rl) {
  __atomic_add_fetch(&rl->refs, 1, __ATOMIC_RELAXED);
  return rl;
}

void ratelimit_free(struct ratelimit *rl) {
  if (!rl || __atomic_sub_fetch(&rl->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return;
  for (unsigned i = 0; i < rl->nshards; i++) {
    pthread_mutex_destroy(&rl->shard[i].lock);
    free(rl->shard[i].e);
    free(rl->shard[i].bucket);
  }
  free(rl);
}

size_t ratelimit_size(struct ratelimit *rl) {
  size_t n = 0;
  for (unsigned i = 0; i < rl->nshards; i++) {
    pthread_mutex_lock(&rl->shard[i].lock);
    n += rl->shard[i].used;
    pthread_mutex_unlock(&rl->shard[i].lock);
  }
  return n;
}

static struct entry *find(struct shard *s, uint32_t hash, const char *k, uint8_t klen) {
  size_t cmp = klen == KEY_DIGEST ? 16 : klen;
  for (uint32_t i = s->bucket[hash & s->bmask]; i; i = s->e[i - 1].next) {
    struct entry *e = &s->e[i - 1];
    if (e->hash == hash && e->klen == klen && memcmp(e->key, k, cmp) == 0)
      return e;
  }
  return NULL;
}

static void unlink_entry(struct shard *s, uint32_t idx) {
  struct entry *e = &s->e[idx];
  uint32_t *link = &s->bucket[e->hash & s->bmask];
  while (*link != idx + 1)
    link = &s->e[*link - 1].next;
  *link = e->next;
  e->klen = 0;
  e->next = s->free;
  s->free = idx + 1;
  s->used--;
}

/* Time until e's bucket is full, in ms (fractional); <= 0 when it is. */
static double delay_ms(const struct entry *e, uint64_t now_ms) {
  return ((double)e->tat - (double)now_ms * e->rate) / e->rate;
}

/* Called with the shard full: frees at least one entry (see ratelimit.h). */
static void evict(struct shard *s, uint64_t now_ms) {
  uint32_t victim = UINT32_MAX, freed = 0;
  double best = 0;
  for (uint32_t n = 0; n < EVICT_SCAN && n < s->cap; n++) {
    uint32_t idx = s->hand;
    s->hand = s->hand + 1 == s->cap ? 0 : s->hand + 1;
    if (s->e[idx].klen == 0)
      continue;
    double d = delay_ms(&s->e[idx], now_ms);
    if (d <= 0) {
      unlink_entry(s, idx);
      freed++;
    } else if (victim == UINT32_MAX || d < best) {
      victim = idx;
      best = d;
    }
  }
  if (!freed && victim != UINT32_MAX)
    unlink_entry(s, victim);
}

static struct entry *insert(struct shard *s, uint32_t hash, const char *k, uint8_t klen,
                            uint64_t now_ms) {
  if (s->used == s->cap)
    evict(s, now_ms);
  uint32_t idx;
  if (s->free) {
    idx = s->free - 1;
    s->free = s->e[idx].next;
  } else if (s->fresh < s->cap) {
    idx = s->fresh++;
  } else {
    return NULL; /* cannot happen: evict() freed one */
  }
  struct entry *e = &s->e[idx];
  e->hash = hash;
  e->klen = klen;
  memcpy(e->key, k, klen == KEY_DIGEST ? 16 : klen);
  uint32_t *head = &s->bucket[hash & s->bmask];
  e->next = *head;
  *head = idx + 1;
  s->used++;
  return e;
}

/* ---- GCRA -------------------------------------------------------------- */

static uint64_t ceil_div(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

/* One GCRA step. tat: the key's TAT in units of ms * p->rate, or 0 for a new
 * key. Returns 1/0 and the TAT to store in *next (unchanged when limited).
 * TAT is capped at now + tau for the computation: it can be further ahead
 * only after the key's policy tightened (or the clock went back), and a key
 * should then owe what the new policy allows at most. */
static int gcra(const struct ratelimit_policy *p, uint64_t tat, uint64_t now_ms, uint64_t *next,
                struct ratelimit_result *out) {
  const uint64_t rate = p->rate, t = p->period_ms, burst = burst_of(p);
  const uint64_t tau = burst * t, now = now_ms * rate, stored = tat;
  if (tat < now)
    tat = now;
  if (tat > now + tau) /* only after the policy tightened */
    tat = now + tau;
  out->limit = (uint32_t)burst;
  out->rate = p->rate;
  out->period_ms = p->period_ms;
  if (tat + t - now > tau) {
    out->allowed = 0;
    out->remaining = 0;
    out->reset_ms = ceil_div(tat - now, rate);
    out->retry_after_ms = ceil_div(tat + t - tau - now, rate);
    *next = stored;
    return 0;
  }
  tat += t;
  out->allowed = 1;
  out->remaining = (uint32_t)((now + tau - tat) / t);
  out->reset_ms = ceil_div(tat - now, rate);
  out->retry_after_ms = 0;
  *next = tat;
  return 1;
}

int ratelimit_check_policy(struct ratelimit *rl, const struct ratelimit_policy *p,
                           const char *key, size_t len, uint64_t now_ms,
                           struct ratelimit_result *out) {
  if (!p)
    p = &rl->policy;
  else if (ratelimit_policy_check(p) != 0)
    return STRATA_EINTERNAL;
  if (!key || len == 0 || now_ms >= MAX_NOW_MS || !out)
    return STRATA_EINTERNAL;

  const unsigned char *kp = (const unsigned char *)key;
  uint64_t h = siphash(rl->sip[0], kp, len);
  uint64_t digest[2];
  const char *k = key;
  uint8_t klen = (uint8_t)len;
  if (len > KEY_INLINE) {
    digest[0] = siphash(rl->sip[1], kp, len);
    digest[1] = siphash(rl->sip[2], kp, len);
    k = (const char *)digest;
    klen = KEY_DIGEST;
  }
  struct shard *s = &rl->shard[(h >> 56) % rl->nshards];
  uint32_t hash = (uint32_t)h;

  pthread_mutex_lock(&s->lock);
  struct entry *e = find(s, hash, k, klen);
  uint64_t tat = 0, next;
  if (e && e->rate == p->rate) {
    tat = e->tat;
  } else if (e) {
    /* The key's policy changed: carry over the time it still owes. */
    double d = delay_ms(e, now_ms);
    if (d > 0)
      tat = now_ms * p->rate + (uint64_t)ceil(d * p->rate);
  }
  int ok = gcra(p, tat, now_ms, &next, out);
  if (ok && !e)
    e = insert(s, hash, k, klen, now_ms);
  if (e) {
    e->tat = next;
    e->rate = p->rate;
  }
  pthread_mutex_unlock(&s->lock);
  return ok;
}

int ratelimit_check(struct ratelimit *rl, const char *key, size_t len, uint64_t now_ms,
                    struct ratelimit_result *out) {
  return ratelimit_check_policy(rl, NULL, key, len, now_ms, out);
}

/* ---- headers ----------------------------------------------------------- */

size_t ratelimit_headers(const struct ratelimit *rl, const struct ratelimit_result *r, char *out,
                         size_t cap) {
  (void)rl; /* r records the policy applied, which may be a key's own */
  if (!r || !out || cap == 0)
    return 0;
  uint64_t period = r->period_ms ? r->period_ms : 1;
  uint64_t w = ceil_div(period, 1000);
  uint64_t quota = (uint64_t)r->rate * w * 1000 / period;
  int n = snprintf(out, cap, "RateLimit-Policy: \"default\";q=%llu;w=%llu",
                   (unsigned long long)quota, (unsigned long long)w);
  if (n >= 0 && (size_t)n < cap && r->limit != quota)
    n += snprintf(out + n, cap - (size_t)n, ";strata-burst=%lu", (unsigned long)r->limit);
  /* refused: t names the moment Retry-After does (the draft's SHOULD) */
  uint64_t retry_s = ceil_div(r->retry_after_ms ? r->retry_after_ms : 1, 1000);
  uint64_t t = r->allowed ? ceil_div(r->reset_ms, 1000) : retry_s;
  if (n >= 0 && (size_t)n < cap)
    n += snprintf(out + n, cap - (size_t)n, "\r\nRateLimit: \"default\";r=%lu;t=%llu\r\n",
                  (unsigned long)r->remaining, (unsigned long long)t);
  if (n >= 0 && (size_t)n < cap && !r->allowed)
    n += snprintf(out + n, cap - (size_t)n, "Retry-After: %llu\r\n", (unsigned long long)retry_s);
  if (n < 0 || (size_t)n >= cap) {
    out[0] = '\0';
    return 0;
  }
  return (size_t)n;
}
