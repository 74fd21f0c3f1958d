/* The gateway's response cache: policy (what may be stored, for how long),
 * storage (a hash table of keys, each with up to RESPCACHE_MAX_VARIANTS
 * stored responses, all on one LRU list) and coalescing (one fetch per key
 * in flight, with its waiters). Rules and contracts: respcache.h.
 *
 * NOTES ON THE DESIGN
 *
 * Keys and variants. A key (method, host, target) names an object; the
 * object holds the stored responses of that key, newest first, each with the
 * request values of the fields its own Vary names. A lookup takes the newest
 * variant the request matches; a store replaces the variants the storing
 * request matched (they are the ones it would have been answered with) and
 * drops the oldest past RESPCACHE_MAX_VARIANTS. There is no "Vary marker"
 * to keep consistent: a variant describes itself.
 *
 * Ages. A stored response keeps corrected_initial_age (computed when it was
 * received, from the wall clock) and the monotonic time it was stored, so
 *
 *   current_age = initial_age + (now - stored_at)
 *   FRESH  current_age <  lifetime
 *   STALE  lifetime <= current_age < lifetime + stale_if_error
 *   DEAD   otherwise: dropped by the lookup that finds it
 *
 * Flights. A flight is the fetch of one key by its leader; waiters join it
 * in arrival order, on a per-flight list and on the instance's list of all
 * waiters. Every waiter has the same timeout, so that list is also in
 * deadline order and respcache_tick() only looks at its head (likewise the
 * list of flights for flight_timeout_ms).
 *
 *   (no flight) --lookup_or_join, miss--------------> IN FLIGHT     (caller: LEAD)
 *   IN FLIGHT   --lookup_or_join, miss, room-------> + one waiter  (caller: WAIT)
 *   IN FLIGHT   --respcache_flight_done------------> (no flight)   waiters: HIT or FETCH
 *   IN FLIGHT   --respcache_tick, flight_timeout---> (no flight)   waiters: FETCH
 *   IN FLIGHT   --respcache_invalidate-------------> IN FLIGHT, its store refused
 *   waiter      --respcache_tick, wait_timeout-----> leaves it     FETCH
 *   waiter      --respcache_free-------------------> leaves it     CANCELED
 *
 * Callbacks run after the flight (or waiter) has left every list, so a
 * callback may call back into the instance, even start a new flight on the
 * same key. */
#include "gateway/respcache.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/error.h"
#include "core/hash.h"
#include "core/httpdate.h"
#include "observe/trace.h"

#define FLIGHT_BUCKETS 256
#define MAX_BUCKETS ((size_t)1 << 20)
#define DELTA_SECONDS_MAX 2147483648ull /* RFC 9111 1.2.2: the cap on overflow */

/* ---- intrusive circular lists ----------------------------------------- */

struct link {
  struct link *prev, *next;
};

#define CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static void list_init(struct link *head) { head->prev = head->next = head; }
static int list_empty(const struct link *head) { return head->next == head; }

static void list_insert_after(struct link *at, struct link *n) {
  n->prev = at;
  n->next = at->next;
  at->next->prev = n;
  at->next = n;
}

static void list_push_back(struct link *head, struct link *n) { list_insert_after(head->prev, n); }

static void list_remove(struct link *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = n;
}

/* ---- types ------------------------------------------------------------- */

struct vary_field {
  const char *name; /* lowercased */
  const char *value;
  size_t name_len, value_len;
  int present; /* 0: the request had no such field */
};

/* One stored response; one allocation: this struct, then headers[], then
 * vary[], then the bytes they point to, then the body. */
struct entry {
  struct link lru;     /* c->lru: next is more recently used */
  struct entry *vnext; /* next older variant of obj */
  struct object *obj;
  size_t charge; /* the allocation's size */
  uint64_t stored_at, initial_age, lifetime, stale_if_error;
  uint64_t epoch; /* the shared sequence when its fetch began */
  int shared_ok;
  int status;
  const char *reason; /* the upstream's reason phrase */
  size_t reason_len;
  struct http_header *headers;
  unsigned n_headers;
  unsigned n_vary;
  struct vary_field *vary;
  const char *body;
  size_t body_len;
};

struct object {
  struct object *hnext;
  uint64_t hash;
  struct entry *variants; /* newest first */
  unsigned n_variants;
  size_t key_len;
  char key[];
};

struct flight;

struct waiter {
  struct link all;       /* c->waiters, in deadline order */
  struct link in_flight; /* flight->waiters, in arrival order */
  struct flight *flight;
  uint64_t deadline;
  const struct respcache_request *rq;
  respcache_wait_cb cb;
  void *arg;
};

struct flight {
  struct flight *hnext;
  struct link fifo; /* c->flights, in deadline order */
  struct link waiters;
  unsigned n_waiters;
  int invalidated;
  uint64_t epoch; /* the shared sequence when it began */
  uint64_t hash, deadline;
  size_t key_len;
  char key[];
};

struct respcache {
  struct respcache_limits lim;
  uint64_t seed;
  struct object **buckets;
  size_t nbuckets;
  struct flight *fbuckets[FLIGHT_BUCKETS];
  struct link lru; /* next: least recently used */
  struct link flights;
  struct link waiters;
  size_t entries, bytes;
  struct respcache_stats st;
};

/* ---- small parsers ----------------------------------------------------- */

static int field_is(const struct http_header *h, const char *lname) {
  size_t n = strlen(lname);
  return h->name_len == n && strncasecmp(h->name, lname, n) == 0;
}

static int ows(char ch) { return ch == ' ' || ch == '\t'; }

/* Next element of the comma-separated list in [*p, end), without its
 * surrounding whitespace (commas inside a quoted string do not split).
 * Returns 0 when there is none left. */
static int list_next(const char **p, const char *end, const char **item, size_t *len) {
  const char *s = *p;
  while (s < end && (ows(*s) || *s == ','))
    s++;
  if (s >= end) {
    *p = s;
    return 0;
  }
  const char *b = s;
  int quoted = 0;
  for (; s < end && (quoted || *s != ','); s++) {
    if (*s == '"')
      quoted = !quoted;
    else if (*s == '\\' && quoted && s + 1 < end)
      s++;
  }
  const char *e = s;
  while (e > b && ows(e[-1]))
    e--;
  *item = b;
  *len = (size_t)(e - b);
  *p = s;
  return 1;
}

/* delta-seconds (RFC 9111 1.2.2), quotes tolerated. *ok = 0 when invalid. */
static uint64_t delta_seconds(const char *v, size_t len, int *ok) {
  if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
    v++;
    len -= 2;
  }
  uint64_t n = 0;
  *ok = len > 0;
  for (size_t i = 0; i < len && *ok; i++) {
    if (v[i] < '0' || v[i] > '9')
      *ok = 0;
    else if ((n = n * 10 + (uint64_t)(v[i] - '0')) > DELTA_SECONDS_MAX)
      n = DELTA_SECONDS_MAX * 10; /* stays above the cap whatever follows */
  }
  if (!*ok)
    return 0;
  return n > DELTA_SECONDS_MAX ? DELTA_SECONDS_MAX : n;
}

/* The first field called lname, or NULL. */
static const struct http_header *find_field(const struct http_header *h, unsigned n,
                                            const char *lname) {
  for (unsigned i = 0; i < n; i++)
    if (field_is(&h[i], lname))
      return &h[i];
  return NULL;
}

/* ---- Cache-Control ----------------------------------------------------- */

enum {
  CC_NO_STORE = 1 << 0,
  CC_NO_CACHE = 1 << 1,
  CC_PRIVATE = 1 << 2,
  CC_PUBLIC = 1 << 3,
  CC_MUST_REVALIDATE = 1 << 4,
  CC_PROXY_REVALIDATE = 1 << 5,
  CC_MAX_AGE = 1 << 6,
  CC_S_MAXAGE = 1 << 7,
  CC_STALE_IF_ERROR = 1 << 8,
  CC_ONLY_IF_CACHED = 1 << 9
};

enum { ARG_NONE = -1, ARG_MAX_AGE, ARG_S_MAXAGE, ARG_STALE_IF_ERROR, ARG_COUNT };

struct cc {
  unsigned flags;
  uint64_t arg[ARG_COUNT]; /* seconds */
  unsigned lines;          /* Cache-Control fields seen */
};

/* Directives in every Cache-Control field of h. An argument's first
 * occurrence counts (RFC 9111 4.2.1); an invalid max-age or s-maxage counts
 * as 0 (stale), an invalid stale-if-error as absent. Unknown directives and
 * the field names of qualified no-cache / private are ignored (the
 * directive itself is not). */
static void cc_parse(const struct http_header *h, unsigned n, struct cc *cc) {
  static const struct {
    const char *name;
    unsigned flag;
    int arg;
  } known[] = {
      {"no-store", CC_NO_STORE, ARG_NONE},
      {"no-cache", CC_NO_CACHE, ARG_NONE},
      {"private", CC_PRIVATE, ARG_NONE},
      {"public", CC_PUBLIC, ARG_NONE},
      {"must-revalidate", CC_MUST_REVALIDATE, ARG_NONE},
      {"proxy-revalidate", CC_PROXY_REVALIDATE, ARG_NONE},
      {"max-age", CC_MAX_AGE, ARG_MAX_AGE},
      {"s-maxage", CC_S_MAXAGE, ARG_S_MAXAGE},
      {"stale-if-error", CC_STALE_IF_ERROR, ARG_STALE_IF_ERROR},
      {"only-if-cached", CC_ONLY_IF_CACHED, ARG_NONE},
  };
  memset(cc, 0, sizeof *cc);
  for (unsigned i = 0; i < n; i++) {
    if (!field_is(&h[i], "cache-control"))
      continue;
    cc->lines++;
    const char *p = h[i].value, *end = p + h[i].value_len, *item;
    size_t len;
    while (list_next(&p, end, &item, &len)) {
      const char *eq = memchr(item, '=', len);
      size_t nlen = eq ? (size_t)(eq - item) : len;
      while (nlen && ows(item[nlen - 1]))
        nlen--;
      const char *val = eq ? eq + 1 : item + len;
      size_t vlen = (size_t)(item + len - val);
      while (vlen && ows(*val)) {
        val++;
        vlen--;
      }
      for (unsigned k = 0; k < sizeof known / sizeof known[0]; k++) {
        if (strlen(known[k].name) != nlen || strncasecmp(item, known[k].name, nlen) != 0)
          continue;
        if (known[k].arg == ARG_NONE) {
          cc->flags |= known[k].flag;
        } else if (!(cc->flags & known[k].flag)) {
          int ok;
          uint64_t v = delta_seconds(val, vlen, &ok);
          if (ok || known[k].flag != CC_STALE_IF_ERROR) {
            cc->flags |= known[k].flag;
            cc->arg[known[k].arg] = v;
          }
        }
        break;
      }
    }
  }
}

/* 1 when some element of the lists in every field called lname is token. */
static int list_has(const struct http_header *h, unsigned n, const char *lname, const char *token,
                    size_t token_len) {
  for (unsigned i = 0; i < n; i++) {
    if (!field_is(&h[i], lname))
      continue;
    const char *p = h[i].value, *end = p + h[i].value_len, *item;
    size_t len;
    while (list_next(&p, end, &item, &len))
      if (len == token_len && strncasecmp(item, token, len) == 0)
        return 1;
  }
  return 0;
}

/* ---- keys, requests, policy -------------------------------------------- */

size_t respcache_key(char *out, size_t cap, const char *method, const char *host,
                     size_t host_len, const char *path, size_t path_len, const char *query,
                     size_t query_len) {
  if (!out || !method || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0))
    return 0;
  if (!host)
    host_len = 0;
  if (!path)
    path_len = 0;
  if (!query)
    query_len = 0;
  /* http's default port names the same origin (RFC 9110 4.2.3) */
  if (host_len > 3 && memcmp(host + host_len - 3, ":80", 3) == 0)
    host_len -= 3;
  /* LF cannot occur in a field value or a request-target: the parts cannot
   * run into each other. */
  size_t need = 4 + host_len + 1 + path_len + (query_len ? 1 + query_len : 0);
  if (need + 1 > cap || need > RESPCACHE_KEY_MAX)
    return 0;
  char *p = out;
  memcpy(p, "GET\n", 4);
  p += 4;
  for (size_t i = 0; i < host_len; i++)
    *p++ = (host[i] >= 'A' && host[i] <= 'Z') ? (char)(host[i] - 'A' + 'a') : host[i];
  *p++ = '\n';
  memcpy(p, path, path_len);
  p += path_len;
  if (query_len) {
    *p++ = '?';
    memcpy(p, query, query_len);
    p += query_len;
  }
  *p = '\0';
  return need;
}

void respcache_request_init(struct respcache_request *rq, const char *method,
                            const struct http_header *headers, unsigned n_headers,
                            int authenticated) {
  memset(rq, 0, sizeof *rq);
  rq->headers = headers;
  rq->n_headers = headers ? n_headers : 0;
  n_headers = rq->n_headers;
  if (!method || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0))
    rq->flags |= RESPCACHE_REQ_BYPASS | RESPCACHE_REQ_NO_STORE;
  else if (strcmp(method, "HEAD") == 0)
    rq->flags |= RESPCACHE_REQ_NO_LEAD | RESPCACHE_REQ_NO_STORE; /* no body to store */

  struct cc cc;
  cc_parse(headers, n_headers, &cc);
  if (cc.flags & CC_NO_STORE)
    rq->flags |= RESPCACHE_REQ_BYPASS | RESPCACHE_REQ_NO_STORE;
  if (cc.flags & CC_NO_CACHE)
    rq->flags |= RESPCACHE_REQ_BYPASS;
  if (cc.flags & CC_MAX_AGE) {
    if (cc.arg[ARG_MAX_AGE] == 0) {
      rq->flags |= RESPCACHE_REQ_BYPASS;
    } else {
      rq->flags |= RESPCACHE_REQ_MAX_AGE;
      rq->max_age_ms = cc.arg[ARG_MAX_AGE] * 1000;
    }
  }
  if (cc.flags & CC_ONLY_IF_CACHED)
    rq->flags |= RESPCACHE_REQ_ONLY_IF_CACHED;
  if (cc.flags & CC_STALE_IF_ERROR) {
    rq->flags |= RESPCACHE_REQ_STALE_LIMIT;
    rq->stale_limit_ms = cc.arg[ARG_STALE_IF_ERROR] * 1000;
  }
  /* HTTP/1.0's Pragma: no-cache, when Cache-Control does not say otherwise. */
  if (!cc.lines && list_has(headers, n_headers, "pragma", "no-cache", 8))
    rq->flags |= RESPCACHE_REQ_BYPASS;

  for (unsigned i = 0; i < n_headers; i++) {
    const struct http_header *h = &headers[i];
    if (field_is(h, "authorization"))
      rq->flags |= RESPCACHE_REQ_AUTH;
    else if (field_is(h, "range") || field_is(h, "if-match") ||
             field_is(h, "if-unmodified-since") || field_is(h, "if-range"))
      rq->flags |= RESPCACHE_REQ_BYPASS | RESPCACHE_REQ_NO_STORE;
    else if (field_is(h, "if-none-match") || field_is(h, "if-modified-since")) {
      rq->flags |= RESPCACHE_REQ_NO_LEAD; /* its response may be a 304 */
      rq->conditional = 1;
    }
  }
  if (authenticated)
    rq->flags |= RESPCACHE_REQ_AUTH;
}

/* 2: storable with the route's ttl too (heuristically cacheable, RFC 9110
 * 15.1, minus 206: no ranges here); 1: with explicit freshness only; 0: never
 * (interim, partial, 304 - an update, not a response - and server errors). */
static int status_kind(int status) {
  static const int heuristic[] = {200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501};
  for (unsigned i = 0; i < sizeof heuristic / sizeof heuristic[0]; i++)
    if (status == heuristic[i])
      return 2;
  if (status < 200 || status > 599 || status == 206 || status == 304 || status >= 500)
    return 0;
  return 1;
}

/* Names in the response's Vary fields, into names/lens (cap RESPCACHE_MAX_VARY).
 * Returns how many, -1 for "*", -2 when there are too many. */
static int vary_names(const struct http_header *h, unsigned n, const char **names, size_t *lens) {
  int count = 0;
  for (unsigned i = 0; i < n; i++) {
    if (!field_is(&h[i], "vary"))
      continue;
    const char *p = h[i].value, *end = p + h[i].value_len, *item;
    size_t len;
    while (list_next(&p, end, &item, &len)) {
      if (len == 1 && item[0] == '*')
        return -1;
      if (count == RESPCACHE_MAX_VARY)
        return -2;
      names[count] = item;
      lens[count++] = len;
    }
  }
  return count;
}

static int refuse(struct respcache_policy *out, const char *why) {
  out->storable = 0;
  out->why = why;
  return 0;
}

int respcache_policy_from_response(int status, const struct http_header *headers,
                                   unsigned n_headers, uint64_t response_epoch_ms,
                                   uint64_t response_delay_ms, const struct respcache_route *route,
                                   struct respcache_policy *out) {
  memset(out, 0, sizeof *out);
  if (!headers)
    n_headers = 0;
  int kind = status_kind(status);
  if (!kind)
    return refuse(out, "status");
  struct cc cc;
  cc_parse(headers, n_headers, &cc);
  if (cc.flags & CC_NO_STORE)
    return refuse(out, "no-store");
  if (cc.flags & CC_PRIVATE)
    return refuse(out, "private");
  if (cc.flags & CC_NO_CACHE)
    return refuse(out, "no-cache");
  if (find_field(headers, n_headers, "set-cookie") || find_field(headers, n_headers, "set-cookie2"))
    return refuse(out, "set-cookie");
  const char *names[RESPCACHE_MAX_VARY];
  size_t lens[RESPCACHE_MAX_VARY];
  int nv = vary_names(headers, n_headers, names, lens);
  if (nv == -1)
    return refuse(out, "vary-star");
  if (nv < 0)
    return refuse(out, "vary-too-long");

  /* Date, else the time received (RFC 9111 4.2.1, 4.2.3). */
  int64_t now = response_epoch_ms > INT64_MAX ? INT64_MAX : (int64_t)response_epoch_ms;
  int64_t date = now;
  const struct http_header *f = find_field(headers, n_headers, "date");
  if (f && !http_date_parse(f->value, f->value_len, response_epoch_ms, &date))
    date = now;

  if (cc.flags & CC_S_MAXAGE) {
    out->from = RESPCACHE_FRESH_S_MAXAGE;
    out->lifetime_ms = cc.arg[ARG_S_MAXAGE] * 1000;
  } else if (cc.flags & CC_MAX_AGE) {
    out->from = RESPCACHE_FRESH_MAX_AGE;
    out->lifetime_ms = cc.arg[ARG_MAX_AGE] * 1000;
  } else if ((f = find_field(headers, n_headers, "expires"))) {
    int64_t expires;
    out->from = RESPCACHE_FRESH_EXPIRES;
    /* an invalid date, "0" above all, is a time in the past (5.3) */
    if (http_date_parse(f->value, f->value_len, response_epoch_ms, &expires) && expires > date)
      out->lifetime_ms = (uint64_t)(expires - date);
  } else if (route && route->ttl_ms && kind == 2) {
    out->from = RESPCACHE_FRESH_ROUTE;
    out->lifetime_ms = route->ttl_ms;
  }
  if (kind == 1 && out->from == RESPCACHE_FRESH_NONE) /* the route's ttl needs kind 2 */
    return refuse(out, "no-explicit-freshness");

  if (cc.flags & (CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE))
    out->stale_if_error_ms = 0;
  else if (cc.flags & CC_STALE_IF_ERROR)
    out->stale_if_error_ms = cc.arg[ARG_STALE_IF_ERROR] * 1000;
  else if (!(cc.flags & CC_S_MAXAGE) && route)
    out->stale_if_error_ms = route->stale_if_error_ms;

  /* corrected_initial_age = max(apparent_age, Age + response_delay) */
  uint64_t apparent = now > date ? (uint64_t)(now - date) : 0;
  uint64_t age_value = 0;
  if ((f = find_field(headers, n_headers, "age"))) {
    const char *p = f->value, *end = p + f->value_len, *item;
    size_t len;
    int ok = 0;
    if (list_next(&p, end, &item, &len)) /* a list: its first member (5.1) */
      age_value = delta_seconds(item, len, &ok);
    if (!ok)
      age_value = 0; /* invalid: ignored */
  }
  uint64_t corrected = age_value * 1000 + response_delay_ms;
  out->initial_age_ms = apparent > corrected ? apparent : corrected;
  out->shared_ok = (cc.flags & (CC_PUBLIC | CC_S_MAXAGE | CC_MUST_REVALIDATE)) != 0;

  if (out->lifetime_ms == 0 && out->stale_if_error_ms == 0)
    return refuse(out, out->from == RESPCACHE_FRESH_NONE ? "no-freshness" : "expired");
  if (out->initial_age_ms >= out->lifetime_ms + out->stale_if_error_ms)
    return refuse(out, "expired");
  out->storable = 1;
  return 1;
}

/* ---- the table --------------------------------------------------------- */

/* Seeded per table (see core/hash.h), folded for the bucket mask. */
static uint64_t hash_key(uint64_t seed, const char *key, size_t len) {
  return hash_fold(hash_fnv1a64(seed, key, len));
}

static int key_ok(const char *key, size_t len) {
  return key && len > 0 && len <= RESPCACHE_KEY_MAX;
}

/* ---- invalidations shared between workers ------------------------------ */

#define EPOCH_SLOTS 16384u

struct respcache_epochs {
  uint64_t seq;
  uint64_t slot[EPOCH_SLOTS];
};

struct respcache_epochs *respcache_epochs_new(void) { return calloc(1, sizeof(struct respcache_epochs)); }
void respcache_epochs_free(struct respcache_epochs *e) { free(e); }

static uint64_t *epoch_slot(struct respcache_epochs *e, const char *key, size_t len) {
  /* seed 0: every worker's cache must pick the same slot */
  return &e->slot[hash_fold(hash_fnv1a64(0, key, len)) % EPOCH_SLOTS];
}

/* The sequence now: a fetch beginning now is older than any invalidation
 * numbered above it. 0 without sharing. */
static uint64_t epoch_now(const struct respcache *c) {
  return c->lim.shared ? __atomic_load_n(&c->lim.shared->seq, __ATOMIC_ACQUIRE) : 0;
}

/* The number of key's slot's latest invalidation (0: none, or no sharing). */
static uint64_t epoch_of(const struct respcache *c, const char *key, size_t len) {
  return c->lim.shared ? __atomic_load_n(epoch_slot(c->lim.shared, key, len), __ATOMIC_ACQUIRE)
                       : 0;
}

uint64_t respcache_fetch_epoch(const struct respcache *c) { return c ? epoch_now(c) : 0; }

static void epoch_invalidate(struct respcache *c, const char *key, size_t len) {
  if (!c->lim.shared)
    return;
  uint64_t n = __atomic_add_fetch(&c->lim.shared->seq, 1, __ATOMIC_ACQ_REL);
  uint64_t *slot = epoch_slot(c->lim.shared, key, len);
  uint64_t cur = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  while (cur < n && !__atomic_compare_exchange_n(slot, &cur, n, 1, __ATOMIC_ACQ_REL,
                                                 __ATOMIC_ACQUIRE))
    ; /* a later number may win a race: keep the larger */
}

static struct object *find_object(struct respcache *c, const char *key, size_t len,
                                  uint64_t hash) {
  for (struct object *o = c->buckets[hash & (c->nbuckets - 1)]; o; o = o->hnext)
    if (o->hash == hash && o->key_len == len && memcmp(o->key, key, len) == 0)
      return o;
  return NULL;
}

static struct flight *find_flight(struct respcache *c, const char *key, size_t len,
                                  uint64_t hash) {
  for (struct flight *f = c->fbuckets[hash % FLIGHT_BUCKETS]; f; f = f->hnext)
    if (f->hash == hash && f->key_len == len && memcmp(f->key, key, len) == 0)
      return f;
  return NULL;
}

static size_t object_charge(size_t key_len) { return sizeof(struct object) + key_len; }

/* Frees e, and its object when e was the last variant. */
static void drop_entry(struct respcache *c, struct entry *e) {
  struct object *o = e->obj;
  for (struct entry **pp = &o->variants; *pp; pp = &(*pp)->vnext)
    if (*pp == e) {
      *pp = e->vnext;
      break;
    }
  o->n_variants--;
  list_remove(&e->lru);
  c->entries--;
  c->bytes -= e->charge;
  free(e);
  if (o->n_variants)
    return;
  for (struct object **pp = &c->buckets[o->hash & (c->nbuckets - 1)]; *pp; pp = &(*pp)->hnext)
    if (*pp == o) {
      *pp = o->hnext;
      break;
    }
  c->bytes -= object_charge(o->key_len);
  free(o);
}

static void touch(struct respcache *c, struct entry *e) {
  list_remove(&e->lru);
  list_push_back(&c->lru, &e->lru);
}

/* ---- matching ----------------------------------------------------------- */

/* The request's value of field lname: its lines joined with ", ", written
 * to out (RESPCACHE_VARY_VALUE_MAX bytes) unless out is NULL. Returns the
 * length, -1 when absent, -2 when too long. */
static long request_field(const struct respcache_request *rq, const char *lname, size_t nlen,
                          char *out) {
  long len = -1;
  for (unsigned i = 0; i < rq->n_headers; i++) {
    const struct http_header *h = &rq->headers[i];
    if (h->name_len != nlen || strncasecmp(h->name, lname, nlen) != 0)
      continue;
    size_t at = len < 0 ? 0 : (size_t)len + 2;
    if (at + h->value_len > RESPCACHE_VARY_VALUE_MAX)
      return -2;
    if (out) {
      if (len >= 0)
        memcpy(out + len, ", ", 2);
      memcpy(out + at, h->value, h->value_len);
    }
    len = (long)(at + h->value_len);
  }
  return len;
}

static int vary_matches(const struct entry *e, const struct respcache_request *rq) {
  char buf[RESPCACHE_VARY_VALUE_MAX];
  for (unsigned i = 0; i < e->n_vary; i++) {
    const struct vary_field *v = &e->vary[i];
    long n = request_field(rq, v->name, v->name_len, buf);
    if (n == -2 || (n == -1) != !v->present)
      return 0;
    if (n >= 0 && ((size_t)n != v->value_len || memcmp(buf, v->value, (size_t)n) != 0))
      return 0;
  }
  return 1;
}

enum state { DEAD, STALE, FRESH };

static enum state entry_state(const struct entry *e, uint64_t now, uint64_t *age) {
  *age = e->initial_age + (now > e->stored_at ? now - e->stored_at : 0);
  if (*age < e->lifetime)
    return FRESH;
  return *age < e->lifetime + e->stale_if_error ? STALE : DEAD;
}

/* 1 when rq may be answered with e as far as Vary and credentials go. */
static int usable_for(const struct entry *e, const struct respcache_request *rq) {
  return vary_matches(e, rq) && (e->shared_ok || !(rq->flags & RESPCACHE_REQ_AUTH));
}

/* The newest variant of key that rq may be answered with (FRESH or STALE),
 * dropping the DEAD ones met on the way; NULL when there is none. *expired
 * (when not NULL) tells whether one of those dead ones was usable for rq. */
static struct entry *select_entry(struct respcache *c, const char *key, size_t len,
                                  const struct respcache_request *rq, uint64_t now,
                                  int *expired) {
  struct object *o = find_object(c, key, len, hash_key(c->seed, key, len));
  if (!o)
    return NULL;
  uint64_t invalidated = epoch_of(c, key, len);
  struct entry *e = o->variants, *next;
  for (; e; e = next) {
    next = e->vnext; /* NULL when dropping e frees o */
    if (e->epoch < invalidated) { /* another worker invalidated the key since */
      drop_entry(c, e);
      c->st.invalidations++;
      continue;
    }
    uint64_t age;
    int usable = usable_for(e, rq);
    if (entry_state(e, now, &age) == DEAD) {
      if (usable && expired)
        *expired = 1;
      drop_entry(c, e);
      c->st.expirations++;
      continue;
    }
    if (usable)
      return e;
  }
  return NULL;
}

/* 1 when e is fresh enough for rq (the client's max-age included). */
static int fresh_for(const struct entry *e, const struct respcache_request *rq, uint64_t now,
                     uint64_t *age) {
  return entry_state(e, now, age) == FRESH &&
         (!(rq->flags & RESPCACHE_REQ_MAX_AGE) || *age <= rq->max_age_ms);
}

static void fill_hit(struct respcache_hit *hit, const struct entry *e, uint64_t age,
                     enum respcache_status status) {
  hit->status = status;
  hit->http_status = e->status;
  hit->reason = e->reason;
  hit->reason_len = e->reason_len;
  hit->headers = e->headers;
  hit->n_headers = e->n_headers;
  hit->body = e->body;
  hit->body_len = e->body_len;
  hit->age_s = age / 1000;
}

/* Takes w off its flight and the list of waiters, frees it, then tells its
 * owner r (FETCH or CANCELED). */
static void release_waiter(struct waiter *w, enum respcache_result r) {
  list_remove(&w->all);
  list_remove(&w->in_flight);
  w->flight->n_waiters--;
  respcache_wait_cb cb = w->cb;
  void *arg = w->arg;
  free(w);
  cb(r, NULL, arg);
}

/* ---- lifecycle ---------------------------------------------------------- */

void respcache_limits_default(struct respcache_limits *l) {
  memset(l, 0, sizeof *l);
  l->max_bytes = (size_t)64 << 20;
  l->max_entries = 10000;
  l->max_entry_bytes = 0;
  l->max_waiters = 64;
  l->wait_timeout_ms = 5000;
  l->flight_timeout_ms = 60000;
}

struct respcache *respcache_new(const struct respcache_limits *l) {
  struct respcache_limits lim;
  if (l)
    lim = *l;
  else
    respcache_limits_default(&lim);
  if (!lim.max_bytes || !lim.max_entries)
    return NULL;
  if (!lim.max_entry_bytes)
    lim.max_entry_bytes = lim.max_bytes / 8;
  if (lim.max_entry_bytes > lim.max_bytes)
    lim.max_entry_bytes = lim.max_bytes;
  struct respcache *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->lim = lim;
  c->seed = trace_random64();
  c->nbuckets = 16;
  while (c->nbuckets < lim.max_entries && c->nbuckets < MAX_BUCKETS)
    c->nbuckets <<= 1;
  c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
  if (!c->buckets) {
    free(c);
    return NULL;
  }
  list_init(&c->lru);
  list_init(&c->flights);
  list_init(&c->waiters);
  return c;
}

void respcache_free(struct respcache *c) {
  if (!c)
    return;
  while (!list_empty(&c->waiters))
    release_waiter(CONTAINER(c->waiters.next, struct waiter, all), RESPCACHE_CANCELED);
  while (!list_empty(&c->flights)) {
    struct flight *f = CONTAINER(c->flights.next, struct flight, fifo);
    list_remove(&f->fifo);
    free(f);
  }
  while (!list_empty(&c->lru))
    drop_entry(c, CONTAINER(c->lru.next, struct entry, lru));
  free(c->buckets);
  free(c);
}

/* ---- lookups ------------------------------------------------------------ */

enum respcache_result respcache_lookup_or_join(struct respcache *c, const char *key,
                                               size_t key_len, const struct respcache_request *rq,
                                               uint64_t now_ms, respcache_wait_cb cb, void *arg,
                                               struct respcache_hit *hit) {
  memset(hit, 0, sizeof *hit);
  hit->status = RESPCACHE_STATUS_BYPASS;
  if (!c || !rq || !key_ok(key, key_len))
    return RESPCACHE_FETCH;
  if (rq->flags & RESPCACHE_REQ_BYPASS) {
    c->st.bypasses++;
    return RESPCACHE_FETCH;
  }
  int expired = 0;
  struct entry *e = select_entry(c, key, key_len, rq, now_ms, &expired);
  hit->status = expired ? RESPCACHE_STATUS_EXPIRED : RESPCACHE_STATUS_MISS;
  if (e) {
    uint64_t age;
    if (fresh_for(e, rq, now_ms, &age)) {
      fill_hit(hit, e, age, RESPCACHE_STATUS_HIT);
      touch(c, e);
      c->st.hits++;
      return RESPCACHE_HIT;
    }
    hit->status = RESPCACHE_STATUS_EXPIRED;
  }
  c->st.misses++;
  /* A request with credentials would wait for a response it most likely
   * may not be given. */
  if (!cb || !c->lim.max_waiters || (rq->flags & RESPCACHE_REQ_AUTH))
    return RESPCACHE_FETCH;
  uint64_t hash = hash_key(c->seed, key, key_len);
  struct flight *f = find_flight(c, key, key_len, hash);
  if (f) {
    struct waiter *w = f->n_waiters < c->lim.max_waiters ? malloc(sizeof *w) : NULL;
    if (!w) {
      c->st.released++;
      return RESPCACHE_FETCH;
    }
    w->flight = f;
    w->deadline = now_ms + c->lim.wait_timeout_ms;
    w->rq = rq;
    w->cb = cb;
    w->arg = arg;
    list_push_back(&c->waiters, &w->all);
    list_push_back(&f->waiters, &w->in_flight);
    f->n_waiters++;
    return RESPCACHE_WAIT;
  }
  if (rq->flags & RESPCACHE_REQ_NO_LEAD)
    return RESPCACHE_FETCH;
  f = malloc(sizeof *f + key_len);
  if (!f)
    return RESPCACHE_FETCH;
  memset(f, 0, sizeof *f);
  f->hash = hash;
  f->epoch = rq->epoch;
  f->deadline = now_ms + c->lim.flight_timeout_ms;
  f->key_len = key_len;
  memcpy(f->key, key, key_len);
  list_init(&f->waiters);
  list_push_back(&c->flights, &f->fifo);
  f->hnext = c->fbuckets[hash % FLIGHT_BUCKETS];
  c->fbuckets[hash % FLIGHT_BUCKETS] = f;
  return RESPCACHE_LEAD;
}

/* What rq may be answered with after a failed fetch: e (from select_entry)
 * while fresh (fresh_status) or, within its stale-if-error window, stale -
 * as the client allows (see respcache_lookup_stale). */
static enum respcache_result answer_on_error(struct respcache *c, struct entry *e,
                                             const struct respcache_request *rq, uint64_t now,
                                             struct respcache_hit *hit,
                                             enum respcache_status fresh_status) {
  if (!e || (rq->flags & RESPCACHE_REQ_BYPASS))
    return RESPCACHE_FETCH;
  uint64_t age;
  enum state st = entry_state(e, now, &age);
  if ((rq->flags & RESPCACHE_REQ_MAX_AGE) && age > rq->max_age_ms)
    return RESPCACHE_FETCH;
  if (st == STALE && (rq->flags & RESPCACHE_REQ_STALE_LIMIT) &&
      age - e->lifetime > rq->stale_limit_ms)
    return RESPCACHE_FETCH;
  if (st == FRESH) {
    fill_hit(hit, e, age, fresh_status);
    c->st.hits++;
  } else {
    fill_hit(hit, e, age, RESPCACHE_STATUS_STALE);
    c->st.stale_served++;
  }
  touch(c, e);
  return RESPCACHE_HIT;
}

enum respcache_result respcache_lookup_stale(struct respcache *c, const char *key, size_t key_len,
                                             const struct respcache_request *rq, uint64_t now_ms,
                                             struct respcache_hit *hit) {
  if (!c || !rq || !hit || !key_ok(key, key_len) || (rq->flags & RESPCACHE_REQ_BYPASS))
    return RESPCACHE_FETCH;
  return answer_on_error(c, select_entry(c, key, key_len, rq, now_ms, NULL), rq, now_ms, hit,
                         RESPCACHE_STATUS_HIT);
}

/* ---- conditional requests ------------------------------------------------ */

/* The opaque-tag of an entity-tag, without W/ (weak comparison). */
static int opaque_tag(const char *v, size_t len, const char **tag, size_t *tag_len) {
  if (len >= 2 && v[0] == 'W' && v[1] == '/') {
    v += 2;
    len -= 2;
  }
  if (len < 2 || v[0] != '"' || v[len - 1] != '"' || memchr(v + 1, '"', len - 2))
    return 0;
  *tag = v;
  *tag_len = len;
  return 1;
}

static int etag_listed(const struct respcache_request *rq, const struct http_header *etag) {
  const char *have = NULL;
  size_t have_len = 0;
  int known = etag && opaque_tag(etag->value, etag->value_len, &have, &have_len);
  for (unsigned i = 0; i < rq->n_headers; i++) {
    const struct http_header *h = &rq->headers[i];
    if (!field_is(h, "if-none-match"))
      continue;
    const char *p = h->value, *end = h->value + h->value_len, *item, *tag;
    size_t len, tag_len;
    while (list_next(&p, end, &item, &len)) {
      if (len == 1 && item[0] == '*')
        return 1;
      if (known && opaque_tag(item, len, &tag, &tag_len) && tag_len == have_len &&
          memcmp(tag, have, tag_len) == 0)
        return 1;
    }
  }
  return 0;
}

int respcache_not_modified(const struct respcache_request *rq, const struct respcache_hit *hit,
                           uint64_t now_epoch_ms) {
  if (!rq || !hit || !rq->conditional ||
      (hit->http_status != 200 && hit->http_status != 203))
    return 0;
  if (find_field(rq->headers, rq->n_headers, "if-none-match"))
    return etag_listed(rq, find_field(hit->headers, hit->n_headers, "etag"));
  const struct http_header *ims = find_field(rq->headers, rq->n_headers, "if-modified-since");
  const struct http_header *lm = find_field(hit->headers, hit->n_headers, "last-modified");
  if (!lm)
    lm = find_field(hit->headers, hit->n_headers, "date");
  int64_t since, modified;
  return ims && lm && http_date_parse(ims->value, ims->value_len, now_epoch_ms, &since) &&
         http_date_parse(lm->value, lm->value_len, now_epoch_ms, &modified) && modified <= since;
}

int respcache_field_in_304(const struct http_header *h) {
  static const char *const kept[] = {"cache-control", "content-location", "date",
                                     "etag",          "expires",          "vary"};
  for (unsigned i = 0; i < sizeof kept / sizeof kept[0]; i++)
    if (field_is(h, kept[i]))
      return 1;
  return 0;
}

/* ---- storing ------------------------------------------------------------ */

/* Not stored: hop-by-hop fields and those the server or the cache sets.
 * Date stays: a stored answer is served with its origin's Date and its Age
 * (with the server's Date, a downstream cache would count the age twice
 * against an Expires, RFC 9111 4.2). */
static int header_dropped(const struct http_header *hs, unsigned n, const struct http_header *h) {
  static const char *const never[] = {
      "connection", "keep-alive",  "proxy-connection", "te",          "trailer",
      "transfer-encoding",         "upgrade",          "content-length",
      "proxy-authenticate",        "proxy-authorization", "age",
      "x-request-id", "set-cookie", "set-cookie2"};
  for (unsigned i = 0; i < sizeof never / sizeof never[0]; i++)
    if (field_is(h, never[i]))
      return 1;
  return list_has(hs, n, "connection", h->name, h->name_len);
}

static char *put(char **p, const char *s, size_t len) {
  char *at = *p;
  memcpy(at, s, len);
  *p += len;
  return at;
}

int respcache_store(struct respcache *c, const char *key, size_t key_len,
                    const struct respcache_request *rq, const struct respcache_policy *p,
                    int status, const char *reason, size_t reason_len,
                    const struct http_header *headers, unsigned n_headers,
                    const void *body, size_t body_len, uint64_t now_ms) {
  if (!c || !rq || !p || !key_ok(key, key_len) || (n_headers && !headers) || (body_len && !body) ||
      (reason_len && !reason))
    return STRATA_EVALIDATION;
  if (!p->storable || (rq->flags & RESPCACHE_REQ_NO_STORE) ||
      ((rq->flags & RESPCACHE_REQ_AUTH) && !p->shared_ok))
    return 0;
  uint64_t hash = hash_key(c->seed, key, key_len);
  struct flight *f = find_flight(c, key, key_len, hash);
  /* a response fetched before an invalidation here or in another worker
   * may show what the unsafe request changed: not kept. Its fetch began
   * at rq->epoch (or earlier: the flight it may have joined) */
  uint64_t epoch = f && f->epoch < rq->epoch ? f->epoch : rq->epoch;
  if ((f && f->invalidated) || epoch < epoch_of(c, key, key_len))
    return 0;

  const char *vnames[RESPCACHE_MAX_VARY];
  size_t vlens[RESPCACHE_MAX_VARY];
  long vvals[RESPCACHE_MAX_VARY];
  int nv = vary_names(headers, n_headers, vnames, vlens);
  if (nv < 0)
    return 0;
  size_t size =
      sizeof(struct entry) + (size_t)nv * sizeof(struct vary_field) + reason_len + body_len;
  for (int i = 0; i < nv; i++) {
    if ((vvals[i] = request_field(rq, vnames[i], vlens[i], NULL)) == -2)
      return 0;
    size += vlens[i] + (vvals[i] > 0 ? (size_t)vvals[i] : 0);
  }
  unsigned kept = 0;
  for (unsigned i = 0; i < n_headers; i++)
    if (!header_dropped(headers, n_headers, &headers[i])) {
      kept++;
      size += sizeof(struct http_header) + headers[i].name_len + headers[i].value_len;
    }
  if (size + object_charge(key_len) > c->lim.max_entry_bytes) {
    c->st.too_large++;
    return 0;
  }

  struct entry *e = malloc(size);
  if (!e)
    return STRATA_EINTERNAL;
  memset(e, 0, sizeof *e);
  e->charge = size;
  e->stored_at = now_ms;
  e->epoch = epoch;
  e->initial_age = p->initial_age_ms;
  e->lifetime = p->lifetime_ms;
  e->stale_if_error = p->stale_if_error_ms;
  e->shared_ok = p->shared_ok;
  e->status = status;
  e->headers = (struct http_header *)(void *)(e + 1);
  e->vary = (struct vary_field *)(void *)(e->headers + kept);
  e->n_vary = (unsigned)nv;
  char *w = (char *)(e->vary + nv);
  for (unsigned i = 0; i < n_headers; i++) {
    const struct http_header *h = &headers[i];
    if (header_dropped(headers, n_headers, h))
      continue;
    struct http_header *to = &e->headers[e->n_headers++];
    to->name_len = h->name_len;
    to->value_len = h->value_len;
    to->name = put(&w, h->name, h->name_len);
    to->value = put(&w, h->value, h->value_len);
  }
  for (int i = 0; i < nv; i++) {
    struct vary_field *v = &e->vary[i];
    v->name = w;
    v->name_len = vlens[i];
    for (size_t k = 0; k < vlens[i]; k++) {
      char ch = vnames[i][k];
      *w++ = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    v->present = vvals[i] >= 0;
    v->value = w;
    v->value_len = v->present ? (size_t)vvals[i] : 0;
    if (v->present)
      w += request_field(rq, v->name, v->name_len, w);
  }
  e->reason_len = reason_len;
  e->reason = reason_len ? put(&w, reason, reason_len) : "";
  e->body = w;
  e->body_len = body_len;
  if (body_len)
    memcpy(w, body, body_len);

  struct object *o = find_object(c, key, key_len, hash);
  if (!o) {
    o = malloc(sizeof *o + key_len);
    if (!o) {
      free(e);
      return STRATA_EINTERNAL;
    }
    memset(o, 0, sizeof *o);
    o->hash = hash;
    o->key_len = key_len;
    memcpy(o->key, key, key_len);
    o->hnext = c->buckets[hash & (c->nbuckets - 1)];
    c->buckets[hash & (c->nbuckets - 1)] = o;
    c->bytes += object_charge(key_len);
  }
  e->obj = o;
  e->vnext = o->variants;
  o->variants = e;
  o->n_variants++;
  list_push_back(&c->lru, &e->lru);
  c->entries++;
  c->bytes += e->charge;
  c->st.stores++;

  /* Replace what rq would have been answered with; keep the newest few. */
  unsigned n = 1;
  for (struct entry *old = e->vnext, *next; old; old = next) {
    next = old->vnext;
    int replaced = vary_matches(old, rq);
    if (replaced || n == RESPCACHE_MAX_VARIANTS) {
      c->st.evictions += !replaced;
      drop_entry(c, old);
    } else {
      n++;
    }
  }
  while (c->bytes > c->lim.max_bytes || c->entries > c->lim.max_entries) {
    struct entry *lru = CONTAINER(c->lru.next, struct entry, lru);
    if (lru == e)
      break;
    drop_entry(c, lru);
    c->st.evictions++;
  }
  return 1;
}

unsigned respcache_invalidate(struct respcache *c, const char *key, size_t key_len) {
  if (!c || !key_ok(key, key_len))
    return 0;
  epoch_invalidate(c, key, key_len);
  uint64_t hash = hash_key(c->seed, key, key_len);
  struct flight *f = find_flight(c, key, key_len, hash);
  if (f)
    f->invalidated = 1;
  struct object *o = find_object(c, key, key_len, hash);
  unsigned n = o ? o->n_variants : 0;
  for (unsigned i = 0; i < n; i++)
    drop_entry(c, o->variants); /* the last one frees o */
  c->st.invalidations += n;
  return n;
}

/* ---- flights ------------------------------------------------------------ */


/* How finish_flight answers the waiters. */
enum flight_end { END_FETCH, END_FRESH, END_FAILED };

/* Ends flight f: takes it and its waiters off every list, then answers each
 * waiter in arrival order - from a fresh response it matches (END_FRESH),
 * also from a stale one after a failure (END_FAILED), else FETCH (counted
 * in *released). An invalidated flight stored nothing, so only a response
 * stored after the invalidation can serve. */
static void finish_flight(struct respcache *c, struct flight *f, uint64_t now, enum flight_end end,
                          uint64_t *released) {
  for (struct flight **pp = &c->fbuckets[f->hash % FLIGHT_BUCKETS]; *pp; pp = &(*pp)->hnext)
    if (*pp == f) {
      *pp = f->hnext;
      break;
    }
  list_remove(&f->fifo);
  for (struct link *l = f->waiters.next; l != &f->waiters; l = l->next)
    list_remove(&CONTAINER(l, struct waiter, in_flight)->all);
  while (!list_empty(&f->waiters)) {
    struct waiter *w = CONTAINER(f->waiters.next, struct waiter, in_flight);
    list_remove(&w->in_flight);
    struct respcache_hit hit;
    struct entry *e = end != END_FETCH ? select_entry(c, f->key, f->key_len, w->rq, now, NULL) : NULL;
    uint64_t age;
    enum respcache_result r = RESPCACHE_FETCH;
    if (e && fresh_for(e, w->rq, now, &age)) {
      fill_hit(&hit, e, age, RESPCACHE_STATUS_COALESCED);
      touch(c, e);
      c->st.coalesced++;
      r = RESPCACHE_HIT;
    } else if (end == END_FAILED &&
               answer_on_error(c, e, w->rq, now, &hit, RESPCACHE_STATUS_COALESCED) == RESPCACHE_HIT) {
      r = RESPCACHE_HIT;
    } else {
      (*released)++;
    }
    respcache_wait_cb cb = w->cb;
    void *arg = w->arg;
    free(w);
    cb(r, r == RESPCACHE_HIT ? &hit : NULL, arg);
  }
  free(f);
}

void respcache_flight_done(struct respcache *c, const char *key, size_t key_len, uint64_t now_ms,
                           int failed) {
  if (!c || !key_ok(key, key_len))
    return;
  struct flight *f = find_flight(c, key, key_len, hash_key(c->seed, key, key_len));
  if (f)
    finish_flight(c, f, now_ms, failed ? END_FAILED : END_FRESH, &c->st.released);
}

uint64_t respcache_tick(struct respcache *c, uint64_t now_ms) {
  if (!c)
    return UINT64_MAX;
  while (!list_empty(&c->waiters)) {
    struct waiter *w = CONTAINER(c->waiters.next, struct waiter, all);
    if (w->deadline > now_ms)
      break;
    c->st.wait_timeouts++;
    release_waiter(w, RESPCACHE_FETCH);
  }
  while (!list_empty(&c->flights)) {
    struct flight *f = CONTAINER(c->flights.next, struct flight, fifo);
    if (f->deadline > now_ms)
      break;
    finish_flight(c, f, now_ms, END_FETCH, &c->st.wait_timeouts);
  }
  uint64_t next = UINT64_MAX;
  if (!list_empty(&c->waiters))
    next = CONTAINER(c->waiters.next, struct waiter, all)->deadline;
  if (!list_empty(&c->flights)) {
    uint64_t fd = CONTAINER(c->flights.next, struct flight, fifo)->deadline;
    next = fd < next ? fd : next;
  }
  return next;
}

void respcache_stats_get(const struct respcache *c, struct respcache_stats *out) {
  memset(out, 0, sizeof *out);
  if (!c)
    return;
  *out = c->st;
  out->entries = c->entries;
  out->bytes = c->bytes;
}

const char *respcache_status_name(enum respcache_status s) {
  switch (s) {
  case RESPCACHE_STATUS_MISS: return "MISS";
  case RESPCACHE_STATUS_HIT: return "HIT";
  case RESPCACHE_STATUS_EXPIRED: return "EXPIRED";
  case RESPCACHE_STATUS_STALE: return "STALE";
  case RESPCACHE_STATUS_BYPASS: return "BYPASS";
  case RESPCACHE_STATUS_COALESCED: return "COALESCED";
  }
  return "MISS";
}
