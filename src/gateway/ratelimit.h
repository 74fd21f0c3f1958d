/* Rate limits at the edge: GCRA per key (API key id, user, client address).
 *
 * The generic cell rate algorithm is a token bucket kept as one number per
 * key, its theoretical arrival time (TAT): the instant at which the key's
 * bucket would be full again. With emission interval T = period / rate and a
 * bucket of `burst` requests (tolerance tau = burst * T), a request at `now`
 *
 *   tat = max(TAT, now);  allowed iff tat + T - now <= tau;  then TAT = tat + T
 *
 * A limited request leaves TAT alone. A key whose TAT has passed is the same
 * as a key never seen, so such entries may be dropped at any time.
 *
 * Time is kept exactly: TAT is stored in units of 1/rate ms (ms * rate), in
 * which T is exactly period_ms, so "7 requests per second" has no rounding
 * drift. Results are rounded up to whole milliseconds (and header seconds are
 * rounded up again) so a client that waits what it is told is admitted.
 *
 * Memory is bounded: an instance holds at most max_keys entries. When a new
 * key arrives at a full table, a clock hand sweeps a few entries, frees every
 * expired one and, if none had expired, evicts the one whose bucket is
 * closest to full (smallest TAT - now): forgetting it costs that key at most
 * what little it had used. Under a flood of distinct keys this fails open
 * for the evicted keys, never closed for the rest.
 *
 * Threads: one instance per route (or per route and limit) shared by all
 * workers, so a limit holds whichever worker a connection lands on. The
 * table is split into shards by key hash, each behind its own mutex, held for
 * one lookup and a few arithmetic operations. Keys are hashed with SipHash
 * under a random per-instance key so clients cannot aim at one chain. */
#ifndef STRATA_GATEWAY_RATELIMIT_H
#define STRATA_GATEWAY_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_MAX_RATE 1000000u        /* requests per period, and burst */
#define RATELIMIT_MAX_PERIOD_MS 86400000u  /* one day */
#define RATELIMIT_HEADERS_MAX 192          /* ratelimit_headers() never needs more */

/* One limit: `rate` requests per `period_ms`, at most `burst` at once. */
struct ratelimit_policy {
  uint32_t rate;      /* 1..RATELIMIT_MAX_RATE */
  uint32_t period_ms; /* 1..RATELIMIT_MAX_PERIOD_MS */
  uint32_t burst;     /* 1..RATELIMIT_MAX_RATE; 0 means "= rate" */
};

/* What one check decided and what the client is told about it. */
struct ratelimit_result {
  int allowed;             /* 1 allowed, 0 limited (same as the return value) */
  uint32_t limit;          /* bucket size: the effective burst */
  uint32_t remaining;      /* requests that would still be allowed right now */
  uint64_t reset_ms;       /* until the bucket is full again (0: it is) */
  uint64_t retry_after_ms; /* limited: until this request would pass; else 0 */
  uint32_t rate;           /* the policy applied (a key's own may differ */
  uint32_t period_ms;      /*   from the instance's default) */
};

struct ratelimit;

/* 0 when p is within the limits above, else STRATA_EVALIDATION. */
int ratelimit_policy_check(const struct ratelimit_policy *p);

/* An instance with default policy p (copied) holding at most max_keys keys
 * (>= 1). NULL when p is invalid or memory runs out. */
struct ratelimit *ratelimit_new(const struct ratelimit_policy *p, size_t max_keys);
/* Accepts NULL. */
void ratelimit_free(struct ratelimit *rl);
/* One more owner of rl (a reloaded configuration keeping the buckets of an
 * unchanged limit); each owner calls ratelimit_free(), the last frees it. */
struct ratelimit *ratelimit_ref(struct ratelimit *rl);

/* Counts one request of key[0..len) (any bytes; len >= 1) at now_ms (any
 * monotonic or wall clock in ms below 2^43, the same one on every call)
 * against the instance's default policy. Returns 1 allowed, 0 limited, or a
 * negative STRATA_E* (bad arguments); fills *out on 0 and 1. Thread-safe. */
int ratelimit_check(struct ratelimit *rl, const char *key, size_t len, uint64_t now_ms,
                    struct ratelimit_result *out);
/* The same with policy p instead of the default (NULL = the default): a key's
 * own limit, e.g. an API key's. A key whose policy changes keeps the time it
 * owes, rescaled to the new rate. */
int ratelimit_check_policy(struct ratelimit *rl, const struct ratelimit_policy *p,
                           const char *key, size_t len, uint64_t now_ms,
                           struct ratelimit_result *out);

/* Entries held now (expired ones included until swept); <= max_keys. */
size_t ratelimit_size(struct ratelimit *rl);

/* Writes the response header lines for result r, each ending in CRLF, per
 * draft-ietf-httpapi-ratelimit-headers-11 (May 2026; Structured Fields,
 * RFC 8941: one policy named "default"):
 *
 *   RateLimit-Policy: "default";q=<quota>;w=<period s>[;strata-burst=<burst>]
 *   RateLimit: "default";r=<requests left now>;t=<s until the bucket is full,
 *              or when refused: the Retry-After seconds>
 *   Retry-After: <s>                     (only when limited; RFC 9110 10.2.3)
 *
 * Seconds are rounded up. A period that is not whole seconds is advertised
 * over the next whole number of seconds with the quota scaled down to it
 * (5 per 500 ms -> q=10;w=1). The burst (how many may come at once) is a
 * vendor parameter, which the draft lets clients ignore, present only when
 * it differs from the quota. rl may be NULL: r carries the policy that was
 * applied. Returns the length written (out is NUL-terminated), or 0 when
 * cap is too small (RATELIMIT_HEADERS_MAX always suffices). */
size_t ratelimit_headers(const struct ratelimit *rl, const struct ratelimit_result *r, char *out,
                         size_t cap);

#endif
