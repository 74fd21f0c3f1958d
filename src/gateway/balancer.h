/* Host selection for one upstream pool: which host gets the next request.
 *
 * Pure logic, no sockets and no clock: time comes in as now_ms and
 * randomness as a caller-provided 64-bit rnd, so every decision can be
 * replayed in a test. Each worker thread owns its own pool (no locks); the
 * proxy calls lb_pick() before a try, lb_begin()/lb_end() around it and
 * lb_report() with its outcome, and the active health checker feeds
 * lb_set_healthy(). Three algorithms:
 *
 *   LB_ROUND_ROBIN    smooth weighted round robin, nginx's algorithm: every
 *                     pick adds each host's weight to its `current`, takes
 *                     the largest and subtracts the total from it. Weights
 *                     5,1,1 give a,a,b,a,c,a,a - spread out, not bunched.
 *   LB_LEAST_REQUEST  power of two choices: two distinct hosts drawn from
 *                     rnd, the one with the lower (outstanding + 1) / weight
 *                     wins (the +1 makes weights count on an idle pool).
 *   LB_HASH           consistent hashing of a key the caller extracts (a
 *                     header value, a path parameter, the client address)
 *                     on a ring of hash_points x weight points per host;
 *                     a host joining or leaving moves only ~1/N of keys.
 *
 * Hashing (stable: changing it remaps every key, and every gateway worker
 * and instance must agree): FNV-1a 64 over the bytes, then MurmurHash3's
 * fmix64 finaliser, because FNV-1a alone spreads keys that differ only in
 * their last bytes ("user-41", "user-42") poorly. Point i of a host is
 * fmix64(FNV-1a64(address) + (i + 1) * 0x9E3779B97F4A7C15) (splitmix64's
 * sequence), so a host's points depend only on its address and weight -
 * never on the other hosts or the config order - and a heavier weight only
 * adds points. The ring is capped at LB_RING_MAX_POINTS; past that every
 * host's share is scaled down and remapping on change is no longer minimal.
 *
 * Availability, panic and passive outlier ejection: see the design notes in
 * balancer.c. Host indices are positions in the config array given to
 * lb_pool_init()/lb_pool_update(). */
#ifndef STRATA_GATEWAY_BALANCER_H
#define STRATA_GATEWAY_BALANCER_H

#include <stddef.h>
#include <stdint.h>

#define LB_WEIGHT_MAX 1000          /* weights are 1..LB_WEIGHT_MAX */
#define LB_ADDRESS_MAX 255          /* longest "host:port" accepted */
#define LB_HOSTS_MAX 4096           /* hosts in one pool */
#define LB_HASH_POINTS_MAX 1000     /* hash_points per unit of weight */
#define LB_RING_MAX_POINTS (1u << 18) /* ring size cap (16 bytes a point) */

enum lb_algorithm {
  LB_ROUND_ROBIN = 0,   /* smooth weighted round robin (nginx) */
  LB_LEAST_REQUEST = 1, /* power of two choices on (outstanding + 1) / weight */
  LB_HASH = 2,          /* consistent hashing of a caller-extracted key */
};

/* How a pool picks and when it ejects. Get the defaults from
 * lb_settings_default() and change what you need: zero is a meaningful value
 * for several fields (panic_percent 0 disables panic mode). */
struct lb_settings {
  enum lb_algorithm algorithm;   /* default LB_ROUND_ROBIN */
  unsigned panic_percent;        /* 0..100; below this share of available
                                    hosts, ignore health (default 50; 0 = never) */
  unsigned eject_consecutive;    /* failures in a row that eject (default 5;
                                    0 = no passive outlier detection) */
  uint64_t base_ejection_ms;     /* first ejection's length (default 10000) */
  uint64_t max_ejection_ms;      /* longest ejection (default 300000) */
  unsigned max_ejection_percent; /* 0..100; most hosts ejected at once (default 50) */
  unsigned hash_points;          /* ring points per unit of weight (default 160) */
};

/* One upstream host as configured. */
struct lb_host_config {
  const char *address; /* "host:port" or "[v6]:port"; copied by the pool */
  unsigned weight;     /* 1..LB_WEIGHT_MAX */
};

/* One upstream host and the state the pool keeps about it. Read freely (for
 * metrics and the admin listener); change only through the functions below. */
struct lb_host {
  char *address;                 /* "host:port", owned by the pool */
  unsigned weight;               /* 1..LB_WEIGHT_MAX */
  uint32_t outstanding;          /* requests in flight: lb_begin() - lb_end() */
  int healthy;                   /* active health check verdict; starts at 1 */
  uint64_t ejected_until_ms;     /* passive ejection: out while now < this */
  uint32_t consecutive_failures; /* lb_report() failures since the last success */
  uint32_t ejections;            /* times ejected since the pool was built */
  uint32_t ejection_level;       /* multiplier of the next ejection's length */
  int64_t rr_current;            /* smooth WRR's current weight */
};

/* One point of the consistent-hash ring. */
struct lb_ring_point {
  uint64_t hash;
  uint32_t host;
};

/* One upstream pool, owned by one worker thread. */
struct lb_pool {
  struct lb_host *hosts;      /* n_hosts hosts, in config order */
  int n_hosts;
  struct lb_settings settings;
  struct lb_ring_point *ring; /* sorted by hash; LB_HASH only, else NULL */
  size_t ring_len;
  int *scratch;               /* n_hosts candidate indices for a pick */
  uint64_t generation;        /* bumped by each lb_pool_update() */
};

/* Fills *s with the defaults listed in struct lb_settings. */
void lb_settings_default(struct lb_settings *s);

/* Builds a pool of n hosts (0 < n <= LB_HOSTS_MAX) with settings s (NULL =
 * defaults), every host healthy and not ejected. Addresses are copied; hosts
 * must have distinct addresses and weights in 1..LB_WEIGHT_MAX. Returns 0,
 * STRATA_EVALIDATION for a bad host list or settings, or STRATA_EINTERNAL
 * when out of memory; on error *p is left empty (lb_pool_free() is safe). */
int lb_pool_init(struct lb_pool *p, const struct lb_host_config *hosts, size_t n,
                 const struct lb_settings *s);

/* Replaces the host list, e.g. on config reload, keeping the state (health,
 * ejection, failures, outstanding) of every host whose address stays; new
 * hosts start healthy. s NULL keeps the current settings. Indices follow
 * the new array, so a caller holding an index from before the update (an
 * in-flight request) must translate it with lb_pool_find() on the address.
 * Returns as lb_pool_init(); on error the pool is unchanged. */
int lb_pool_update(struct lb_pool *p, const struct lb_host_config *hosts, size_t n,
                   const struct lb_settings *s);

/* Releases the pool's memory. Accepts NULL, a zeroed pool or a freed one. */
void lb_pool_free(struct lb_pool *p);

/* Picks the host for the next try and returns its index, or -1 when the pool
 * has no host to offer (empty, or every host unavailable with panic mode
 * disabled). key/key_len is the hash key for LB_HASH (ignored otherwise); a
 * NULL key means "no key" and picks a random host from rnd. rnd is a fresh
 * random number from the caller (used by LB_LEAST_REQUEST and a NULL key).
 * exclude_index (-1 for none) is avoided when any other candidate exists, so
 * a retry lands on a different host; when it is the only candidate it is
 * returned. Does not call lb_begin(). */
int lb_pick(struct lb_pool *p, const void *key, size_t key_len, uint64_t now_ms,
            uint64_t rnd, int exclude_index);

/* Passive outlier detection: records the outcome of a try on host (out of
 * range is ignored). A success clears the failure run; the eject_consecutive
 * th failure in a row ejects the host unless that would put more than
 * max_ejection_percent of the pool out. Returns 1 when this report ejected
 * the host (for the "host ejected" log line and metric), else 0. */
int lb_report(struct lb_pool *p, int host, int success, uint64_t now_ms);

/* The active health checker's verdict on host (nonzero = healthy). Coming
 * back healthy clears the host's failure run and ends a passive ejection
 * (the ejection level is kept). Out of range is ignored. */
void lb_set_healthy(struct lb_pool *p, int host, int healthy);

/* A try on host starts / ends: maintain its outstanding count (which
 * LB_LEAST_REQUEST reads). Each lb_begin() gets exactly one lb_end(). */
void lb_begin(struct lb_pool *p, int host);
void lb_end(struct lb_pool *p, int host);

/* 1 when host is healthy and not ejected at now_ms, else 0. */
int lb_host_available(const struct lb_pool *p, int host, uint64_t now_ms);

/* Number of available hosts at now_ms (readiness: all = up, some = degraded,
 * none = down). */
int lb_pool_available(const struct lb_pool *p, uint64_t now_ms);

/* 1 when the pool is in panic mode at now_ms: fewer than panic_percent of its
 * hosts are available, so lb_pick() balances over all of them. */
int lb_pool_in_panic(const struct lb_pool *p, uint64_t now_ms);

/* Index of the host with this address, or -1. */
int lb_pool_find(const struct lb_pool *p, const char *address);

#endif
