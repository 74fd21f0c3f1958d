/* The gateway's HTTP response cache (a shared cache in RFC 9111's terms).
 *
 * Stores complete upstream responses to GET requests of the routes configured
 * for caching, answers later requests from them while they are fresh,
 * coalesces concurrent misses on one key into a single upstream fetch, and
 * keeps stale responses for a while so an upstream failure or an open
 * breaker can be answered with the last good response (stale-if-error,
 * RFC 5861).
 *
 * One instance per worker thread, like the worker's connection pools and
 * breakers: no lock on the proxy path, and coalescing needs no cross-thread
 * wake-up (a waiter and its leader run on the same loop). The price is that
 * each worker fills its own copy (N workers: up to N upstream fetches per key
 * and N copies in memory), so max_bytes is per worker; the gateway divides
 * the configured total by the number of workers. A shared instance would
 * need a mutex on every lookup and a uv_async hop to wake waiters on other
 * loops, for a hit ratio only slightly better once each worker is warm.
 *
 * Time comes from the caller in two clocks, so tests need no sleeping:
 *   - respcache_policy_from_response() takes the wall clock (ms since 1970),
 *     because Date and Expires are wall-clock dates;
 *   - every other call takes now_ms on the worker's monotonic clock
 *     (uv_now()), used for resident time, waiter and fetch timeouts.
 *
 * Rules (RFC 9111 for a shared cache; docs/gateway.md "Response caching"):
 *   - Stored: final responses to GET with status 200 203 204 300 301 308 404
 *     405 410 414 501, given explicit freshness (s-maxage, max-age, Expires)
 *     or the route's ttl; any other status except 206, 304 and 5xx only with
 *     explicit freshness. Never stored: Cache-Control no-store, private,
 *     no-cache (no revalidation here), Set-Cookie, Vary: *.
 *   - Freshness lifetime: s-maxage, else max-age, else Expires - Date, else
 *     the route's ttl. The upstream wins whenever it says anything: a route
 *     ttl never extends max-age=0 or a past Expires. Invalid values count as
 *     already expired. Age: RFC 9111 4.2.3 (apparent age, Age received plus
 *     response delay, resident time).
 *   - Stale-if-error window: the upstream's stale-if-error=N, else the
 *     route's stale_if_error; zero with must-revalidate or proxy-revalidate,
 *     and s-maxage (which implies proxy-revalidate) drops the route default.
 *   - Vary: each stored response keeps the request values of the fields its
 *     Vary names; a request is answered only by a response whose values it
 *     matches (an absent field matches only absence). Up to
 *     RESPCACHE_MAX_VARIANTS responses per key, newest preferred.
 *   - Requests: Cache-Control no-cache, max-age=0 or Pragma: no-cache bypass
 *     the lookup (the response may still be stored), no-store bypasses both;
 *     max-age=N limits the age served; Range and If-Match /
 *     If-Unmodified-Since / If-Range requests are forwarded and not stored.
 *     HEAD and If-None-Match / If-Modified-Since requests may be answered
 *     (a full response is a valid answer) and may wait on a fetch, but do
 *     not lead one: their own response (no body, or a 304) is not storable.
 *   - Authorization (or any credential the gateway verified): answered from
 *     and stored into the cache only when the response says public, s-maxage
 *     or must-revalidate (RFC 9111 3.5); such requests never lead or join a
 *     coalesced fetch, whose response may well be private.
 *   - Stored headers lose the hop-by-hop ones, those named in Connection,
 *     Age, Date and X-Request-Id (the server and the cache set their own).
 *
 * Coalescing (one fetch per key per worker at a time):
 *
 *   lookup_or_join: fresh -------------------------------> RESPCACHE_HIT
 *                   miss, no fetch in flight -------------> RESPCACHE_LEAD
 *                   miss, fetch in flight, room to wait --> RESPCACHE_WAIT
 *                   otherwise ----------------------------> RESPCACHE_FETCH
 *
 *   LEAD: the caller fetches, stores what is storable (respcache_store), then
 *         calls respcache_flight_done() exactly once, success or failure.
 *   WAIT: cb fires once, later, from respcache_flight_done() (HIT if a fresh
 *         response now matches the waiter, or after a failed fetch a stale
 *         one it may have, else FETCH), respcache_tick()
 *         (FETCH: waited wait_timeout_ms, or the leader never reported in
 *         flight_timeout_ms) or respcache_free() (CANCELED). A waiter is
 *         never dropped, and never answered from a response it does not
 *         match (Vary, Authorization).
 *
 * Memory: everything a stored response needs (headers, Vary values, body) is
 * one allocation charged in full against max_bytes, plus its key; the least
 * recently used responses are evicted to stay within max_bytes and
 * max_entries. A response larger than max_entry_bytes is not stored. */
#ifndef STRATA_GATEWAY_RESPCACHE_H
#define STRATA_GATEWAY_RESPCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "http/http.h"

#define RESPCACHE_KEY_MAX 8192       /* longest key accepted (respcache_key's cap) */
#define RESPCACHE_MAX_VARIANTS 8     /* stored responses per key (Vary) */
#define RESPCACHE_MAX_VARY 8         /* field names in one response's Vary */
#define RESPCACHE_VARY_VALUE_MAX 1024 /* a request field value Vary compares */

struct respcache;

/* Bounds of one instance. Get the defaults from respcache_limits_default(). */
/* Invalidations shared by the caches of one process (one per worker):
 * each invalidation takes the next number of a shared sequence and writes it
 * into the key's slot (of a fixed table; keys may share one); a cache then
 * serves an entry only when no invalidation of its slot came after the
 * entry's fetch began. A key sharing a slot costs an extra miss, never a
 * stale answer. Thread-safe (atomics, no locks). */
struct respcache_epochs;
struct respcache_epochs *respcache_epochs_new(void);
void respcache_epochs_free(struct respcache_epochs *e);

struct respcache_limits {
  struct respcache_epochs *shared; /* the other workers' invalidations; NULL: none */
  size_t max_bytes;           /* all stored responses and keys (default 64 MiB) */
  size_t max_entries;         /* stored responses (default 10000) */
  size_t max_entry_bytes;     /* one response; 0 = max_bytes / 8 (default 0) */
  unsigned max_waiters;       /* requests waiting on one fetch; 0 = no coalescing (64) */
  uint32_t wait_timeout_ms;   /* a waiter then fetches itself (default 5000) */
  uint32_t flight_timeout_ms; /* a fetch never reported done is forgotten (60000) */
};

/* What a route configures (`cache: {ttl, stale_if_error}`). */
struct respcache_route {
  uint32_t ttl_ms;            /* freshness when the upstream states none; 0 = none */
  uint32_t stale_if_error_ms; /* stale window when the upstream states none */
};

/* Where a response's freshness lifetime came from. */
enum respcache_freshness {
  RESPCACHE_FRESH_NONE = 0, /* nothing: lifetime 0 */
  RESPCACHE_FRESH_S_MAXAGE, /* Cache-Control: s-maxage */
  RESPCACHE_FRESH_MAX_AGE,  /* Cache-Control: max-age */
  RESPCACHE_FRESH_EXPIRES,  /* Expires - Date */
  RESPCACHE_FRESH_ROUTE     /* the route's ttl */
};

/* What respcache_policy_from_response() decided about one response. */
struct respcache_policy {
  int storable;                   /* 1: respcache_store() may store it */
  const char *why;                /* storable 0: a short reason ("no-store", ...) */
  enum respcache_freshness from;  /* which rule set lifetime_ms */
  uint64_t lifetime_ms;           /* freshness lifetime */
  uint64_t initial_age_ms;        /* corrected_initial_age (RFC 9111 4.2.3) */
  uint64_t stale_if_error_ms;     /* usable this long after it turns stale, on error */
  int shared_ok;                  /* public, s-maxage or must-revalidate: may
                                     answer requests with credentials (3.5) */
};

/* What a request allows (respcache_request_init). */
enum respcache_req_flags {
  RESPCACHE_REQ_BYPASS = 1 << 0,   /* do not answer from the cache */
  RESPCACHE_REQ_NO_STORE = 1 << 1, /* do not store its response */
  RESPCACHE_REQ_NO_LEAD = 1 << 2,  /* may wait on a fetch, not lead one */
  RESPCACHE_REQ_AUTH = 1 << 3,     /* carries credentials: shared_ok responses only */
  RESPCACHE_REQ_MAX_AGE = 1 << 4,  /* max_age_ms is set (client's max-age) */
  RESPCACHE_REQ_STALE_LIMIT = 1 << 5, /* stale_limit_ms is set (client's stale-if-error) */
  RESPCACHE_REQ_ONLY_IF_CACHED = 1 << 6 /* a stored answer or 504 (RFC 9111 5.2.1.7) */
};

/* A client request as the cache sees it. headers are borrowed: they must
 * stay valid until the calls given this request return and, when it waits,
 * until its callback has fired (the exchange's arena does). */
struct respcache_request {
  const struct http_header *headers;
  unsigned n_headers;
  unsigned flags;      /* enum respcache_req_flags */
  uint64_t max_age_ms; /* RESPCACHE_REQ_MAX_AGE: oldest response acceptable */
  uint64_t stale_limit_ms; /* RESPCACHE_REQ_STALE_LIMIT: most staleness acceptable on error */
  uint64_t epoch;      /* respcache_fetch_epoch() before its lookup (0 from init) */
  int conditional;     /* If-None-Match or If-Modified-Since: respcache_not_modified() looks */
};

/* The number a fetch beginning now carries (set rq->epoch to it before the
 * lookup): its response is stored only if no invalidation of its key came
 * after it, here or in a cache sharing limits.shared. 0 without sharing. */
uint64_t respcache_fetch_epoch(const struct respcache *c);

/* The access log's cache status of a request. */
enum respcache_status {
  RESPCACHE_STATUS_MISS = 0,  /* not in the cache: fetched */
  RESPCACHE_STATUS_HIT,       /* answered with a fresh stored response */
  RESPCACHE_STATUS_EXPIRED,   /* stored but stale (or older than the client's max-age): fetched */
  RESPCACHE_STATUS_STALE,     /* answered with a stale response: the upstream failed */
  RESPCACHE_STATUS_BYPASS,    /* the request may not be answered from the cache */
  RESPCACHE_STATUS_COALESCED  /* answered with the response another request fetched */
};

/* A stored response to answer with. Everything points into the cache: valid
 * until the next call on the instance (copy it out at once: http_respond()
 * and http_add_header_n() copy). */
struct respcache_hit {
  enum respcache_status status; /* for the access log; set on every lookup */
  int http_status;
  const char *reason; /* the upstream's reason phrase, as it sent it */
  size_t reason_len;
  const struct http_header *headers; /* filtered, in the upstream's order */
  unsigned n_headers;
  const char *body;
  size_t body_len;
  uint64_t age_s; /* send as Age */
};

/* Outcome of a lookup, and of a wait. */
enum respcache_result {
  RESPCACHE_FETCH = 0, /* fetch from the upstream; nobody waits on this fetch */
  RESPCACHE_HIT,       /* answer from *hit */
  RESPCACHE_LEAD,      /* fetch; others may wait: respcache_flight_done() after */
  RESPCACHE_WAIT,      /* joined a fetch in flight: the callback fires later */
  RESPCACHE_CANCELED   /* (callback only) the cache is being freed */
};

/* Fires once per waiting request: RESPCACHE_HIT with hit (status COALESCED,
 * valid during the call only), RESPCACHE_FETCH with hit NULL (fetch alone: do
 * not call respcache_lookup_or_join() again) or RESPCACHE_CANCELED with hit
 * NULL (answer with an error; do not call into the cache). It may call any
 * other respcache function on the instance, except respcache_free(). */
typedef void (*respcache_wait_cb)(enum respcache_result r, const struct respcache_hit *hit,
                                  void *arg);

/* Counters of one instance since it was created. */
struct respcache_stats {
  uint64_t hits;          /* answered fresh by a lookup */
  uint64_t misses;        /* lookups with nothing fresh (expired included) */
  uint64_t bypasses;      /* lookups the request did not allow */
  uint64_t stale_served;  /* stale responses handed out by respcache_lookup_stale() */
  uint64_t coalesced;     /* waiters answered from the leader's response */
  uint64_t released;     /* waiters sent to fetch themselves (flight failed,
                             response not storable, Vary mismatch, waiters full) */
  uint64_t wait_timeouts; /* waiters released by respcache_tick() */
  uint64_t stores;        /* responses stored */
  uint64_t too_large;     /* responses refused for max_entry_bytes */
  uint64_t evictions;     /* responses evicted to stay within the bounds */
  uint64_t expirations;   /* responses dropped past their stale window */
  uint64_t invalidations; /* responses dropped by respcache_invalidate() */
  uint64_t entries;       /* responses held now (gauge) */
  uint64_t bytes;         /* bytes charged now (gauge) */
};

void respcache_limits_default(struct respcache_limits *l);

/* A new, empty cache bounded by l (copied; NULL = defaults). Returns NULL
 * when max_bytes or max_entries is 0, or on OOM. */
struct respcache *respcache_new(const struct respcache_limits *l);

/* Frees c and everything stored. Waiters still waiting get
 * RESPCACHE_CANCELED first, each exactly once. Accepts NULL. */
void respcache_free(struct respcache *c);

/* Writes the key of a request into out: "GET\n<host, lowercased, without
 * a default :80>\n<path>"
 * plus "?<query>" when query_len > 0. HEAD shares GET's key. Returns its
 * length (out is NUL-terminated), or 0 when the method is neither GET nor
 * HEAD or out (cap bytes) is too small: such requests are not cached. */
size_t respcache_key(char *out, size_t cap, const char *method, const char *host,
                     size_t host_len, const char *path, size_t path_len, const char *query,
                     size_t query_len);

/* Fills rq from the request's method (NUL-terminated), headers (borrowed)
 * and whether the gateway authenticated it (API key, JWT: any credential,
 * not only Authorization). */
void respcache_request_init(struct respcache_request *rq, const char *method,
                            const struct http_header *headers, unsigned n_headers,
                            int authenticated);

/* Decides whether a response to GET may be stored, and for how long (the
 * rules above). response_epoch_ms: wall-clock time the response was received;
 * response_delay_ms: time from sending the request to receiving the response
 * (monotonic). route may be NULL (no defaults). Fills *out; returns
 * out->storable. */
int respcache_policy_from_response(int status, const struct http_header *headers,
                                   unsigned n_headers, uint64_t response_epoch_ms,
                                   uint64_t response_delay_ms, const struct respcache_route *route,
                                   struct respcache_policy *out);

/* The normal lookup. Always sets hit->status; fills the rest on
 * RESPCACHE_HIT (and counts a hit). With cb NULL it never returns LEAD or
 * WAIT. On RESPCACHE_WAIT, cb(arg) fires later (never from inside this call)
 * and rq must stay valid until then. */
enum respcache_result respcache_lookup_or_join(struct respcache *c, const char *key,
                                               size_t key_len, const struct respcache_request *rq,
                                               uint64_t now_ms, respcache_wait_cb cb, void *arg,
                                               struct respcache_hit *hit);

/* The lookup after the upstream failed, or with every breaker open: a fresh
 * response (status HIT), else a stale one within its stale-if-error window
 * (status STALE, counted in stale_served). Honours Vary and credentials as
 * above, and the client: nothing for one that asked for no stored answer
 * (no-cache, no-store, max-age=0, Pragma: no-cache), nothing older than
 * its max-age, nothing staler than its stale-if-error (RFC 9111 4.2.4,
 * RFC 5861 4). Returns RESPCACHE_HIT with *hit filled, or RESPCACHE_FETCH
 * when there is nothing (hit->status untouched). */
enum respcache_result respcache_lookup_stale(struct respcache *c, const char *key, size_t key_len,
                                             const struct respcache_request *rq, uint64_t now_ms,
                                             struct respcache_hit *hit);

/* Stores a copy of a GET response (status, headers, body) under key for the
 * request rq, as policy p (from respcache_policy_from_response()) allows,
 * replacing the stored responses that rq would have been answered with.
 * Nothing is kept of the arguments. Does not wake waiters: that is
 * respcache_flight_done(). Returns 1 stored, 0 not stored (p, rq, size, or
 * the key was invalidated while its fetch was in flight), or
 * STRATA_EVALIDATION (bad arguments) / STRATA_EINTERNAL (OOM). */
int respcache_store(struct respcache *c, const char *key, size_t key_len,
                    const struct respcache_request *rq, const struct respcache_policy *p,
                    int status, const char *reason, size_t reason_len,
                    const struct http_header *headers, unsigned n_headers,
                    const void *body, size_t body_len, uint64_t now_ms);

/* Whether the client's own validators match the stored response hit, so
 * that it is answered 304 from the cache (RFC 9111 4.3.2, RFC 9110 13.1):
 * If-None-Match against the stored ETag (weak comparison, "*" matches),
 * else If-Modified-Since against its Last-Modified (or Date). Only for a
 * stored 200 or 203. now_epoch_ms places two-digit years of old dates. */
int respcache_not_modified(const struct respcache_request *rq, const struct respcache_hit *hit,
                           uint64_t now_epoch_ms);

/* Whether a stored field goes on a 304 made from it (RFC 9110 15.4.5:
 * Cache-Control, Content-Location, Date, ETag, Expires, Vary). */
int respcache_field_in_304(const struct http_header *h);

/* The leader of key's fetch is done (stored, not storable or failed): each
 * waiter is answered from a fresh response it matches (RESPCACHE_HIT) or
 * sent to fetch (RESPCACHE_FETCH), in the order they joined. When the fetch
 * failed (an error the stale-if-error window covers), a waiter with nothing
 * fresh gets what respcache_lookup_stale() would give it (a HIT with status
 * STALE) rather than a fetch of its own into the same failure: a burst on a
 * failing key costs the upstream one try, not one per waiter. No-op when no
 * fetch of key is in flight. */
void respcache_flight_done(struct respcache *c, const char *key, size_t key_len, uint64_t now_ms,
                           int failed);

/* Drops every stored response of key (after a successful unsafe request to
 * its URI, RFC 9111 4.4: build the key with method "GET"); a fetch of key
 * in flight will not store its result. With limits.shared, the caches
 * sharing it stop serving key's responses too. Returns the responses
 * dropped here. */
unsigned respcache_invalidate(struct respcache *c, const char *key, size_t key_len);

/* Releases the waiters that waited wait_timeout_ms and the fetches not
 * reported in flight_timeout_ms (their waiters fetch themselves). Returns the
 * time of the next such deadline, or UINT64_MAX when no waiter or fetch is
 * pending: arm the worker's timer for it after every RESPCACHE_WAIT and
 * every tick. */
uint64_t respcache_tick(struct respcache *c, uint64_t now_ms);

void respcache_stats_get(const struct respcache *c, struct respcache_stats *out);

/* "HIT", "MISS", "EXPIRED", "STALE", "BYPASS", "COALESCED". */
const char *respcache_status_name(enum respcache_status s);

#endif
