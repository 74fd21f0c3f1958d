/* Host selection for one upstream pool (see balancer.h for the algorithms
 * and the hash). This file also keeps each host's availability: the active
 * checker's verdict, passive outlier ejection and the panic threshold.
 *
 * NOTES ON THE DESIGN: availability and ejection
 *
 * A host's states, with the function performing each transition:
 *
 *   passive, lb_report() with the outcome of each try:
 *
 *                eject_consecutive failures in a row, and the
 *                ejected share stays within max_ejection_percent
 *     AVAILABLE ----------------------------------------------> EJECTED(t)
 *         ^                                                         |
 *         +------------ now >= t: the ejection expires (no call) ---+
 *
 *   active, lb_set_healthy() with the health checker's verdict:
 *
 *     AVAILABLE --lb_set_healthy(0)--> UNHEALTHY --lb_set_healthy(1)--> AVAILABLE
 *
 * UNHEALTHY and EJECTED(t) are independent marks (a host may carry both);
 * AVAILABLE means neither: healthy && now >= ejected_until_ms.
 *
 *   - lb_report() ejects: t = now + min(base_ejection_ms x level,
 *     max_ejection_ms), where level grows by one per ejection and drops by
 *     one for every base_ejection_ms the host served since its last return
 *     (Envoy's decay), so a flapping host stays out longer and longer while
 *     a host that fails once a day always gets the short ejection.
 *   - Nothing returns a host: an ejection simply expires, checked in every
 *     availability test against now_ms. Ejecting clears the failure run, so
 *     a returning host needs eject_consecutive new failures to go out again.
 *   - Failures reported while the host is ejected (answers to tries begun
 *     before, or panic traffic) neither count nor extend the ejection.
 *
 * Invariants:
 *   - At most max_ejection_percent of the hosts are ejected at once; a
 *     failure run that would break this leaves the host in (its count kept,
 *     so it goes out as soon as a slot frees). A one-host pool never ejects.
 *   - Panic (Envoy): when fewer than panic_percent of the hosts are
 *     available, lb_pick() ignores health and ejection and balances over all
 *     of them, so a pool never ejects itself to zero. lb_pick() returns -1
 *     only for an empty pool, or when panic is disabled (panic_percent 0)
 *     and no host is available.
 *   - Each worker owns its pool: ejection is decided on that worker's own
 *     traffic (as nginx's max_fails without a shared zone), while the
 *     health checker's verdict is given to every worker's pool. */
#include "gateway/balancer.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/hash.h"

#define GOLDEN_GAMMA 0x9E3779B97F4A7C15ULL

/* MurmurHash3's 64-bit finaliser: a bijection with full avalanche. */
static uint64_t fmix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

void lb_settings_default(struct lb_settings *s) {
  s->algorithm = LB_ROUND_ROBIN;
  s->panic_percent = 50;
  s->eject_consecutive = 5;
  s->base_ejection_ms = 10000;
  s->max_ejection_ms = 300000;
  s->max_ejection_percent = 50;
  s->hash_points = 160;
}

static int settings_valid(const struct lb_settings *s) {
  if (s->algorithm != LB_ROUND_ROBIN && s->algorithm != LB_LEAST_REQUEST &&
      s->algorithm != LB_HASH)
    return 0;
  if (s->panic_percent > 100 || s->max_ejection_percent > 100)
    return 0;
  if (s->hash_points < 1 || s->hash_points > LB_HASH_POINTS_MAX)
    return 0;
  if (s->eject_consecutive > 0 &&
      (s->base_ejection_ms == 0 || s->max_ejection_ms < s->base_ejection_ms))
    return 0;
  return 1;
}

/* "host:port" with a port in 1..65535, no spaces or control characters, and
 * an IPv6 host in brackets ("[::1]:8080"). */
static int address_valid(const char *a) {
  if (!a)
    return 0;
  size_t len = strnlen(a, LB_ADDRESS_MAX + 1);
  if (len == 0 || len > LB_ADDRESS_MAX)
    return 0;
  const char *colon = strrchr(a, ':');
  if (!colon || colon == a)
    return 0;
  const char *d = colon + 1;
  size_t digits = strlen(d);
  if (digits == 0 || digits > 5)
    return 0;
  unsigned port = 0;
  for (; *d; d++) {
    if (*d < '0' || *d > '9')
      return 0;
    port = port * 10 + (unsigned)(*d - '0');
  }
  if (port == 0 || port > 65535)
    return 0;
  for (const char *c = a; c < colon; c++)
    if ((unsigned char)*c <= ' ' || *c == 0x7f)
      return 0;
  if (memchr(a, ':', (size_t)(colon - a)) && !(a[0] == '[' && colon[-1] == ']'))
    return 0;
  return 1;
}

static int point_cmp(const void *a, const void *b) {
  const struct lb_ring_point *x = a, *y = b;
  if (x->hash != y->hash)
    return x->hash < y->hash ? -1 : 1;
  /* A 64-bit tie between two hosts is astronomically unlikely; order it
   * anyway so qsort's result is deterministic. */
  return (x->host > y->host) - (x->host < y->host);
}

static int ring_build(struct lb_pool *p) {
  uint64_t total = 0, len = 0;
  for (int i = 0; i < p->n_hosts; i++)
    total += (uint64_t)p->settings.hash_points * p->hosts[i].weight;
  for (int i = 0; i < p->n_hosts; i++) {
    uint64_t k = (uint64_t)p->settings.hash_points * p->hosts[i].weight;
    if (total > LB_RING_MAX_POINTS)
      k = k * LB_RING_MAX_POINTS / total;
    len += k ? k : 1;
  }
  p->ring = malloc((size_t)len * sizeof *p->ring);
  if (!p->ring)
    return STRATA_EINTERNAL;
  size_t at = 0;
  for (int i = 0; i < p->n_hosts; i++) {
    const struct lb_host *h = &p->hosts[i];
    uint64_t k = (uint64_t)p->settings.hash_points * h->weight;
    if (total > LB_RING_MAX_POINTS)
      k = k * LB_RING_MAX_POINTS / total;
    if (k == 0)
      k = 1;
    uint64_t base = hash_fnv1a64(0, h->address, strlen(h->address));
    for (uint64_t j = 0; j < k; j++) {
      p->ring[at].hash = fmix64(base + (j + 1) * GOLDEN_GAMMA);
      p->ring[at].host = (uint32_t)i;
      at++;
    }
  }
  p->ring_len = at;
  qsort(p->ring, p->ring_len, sizeof *p->ring, point_cmp);
  return 0;
}

int lb_pool_init(struct lb_pool *p, const struct lb_host_config *hosts, size_t n,
                 const struct lb_settings *s) {
  int rc = STRATA_EVALIDATION;
  memset(p, 0, sizeof *p);
  if (s)
    p->settings = *s;
  else
    lb_settings_default(&p->settings);
  if (!settings_valid(&p->settings) || !hosts || n == 0 || n > LB_HOSTS_MAX)
    goto fail;
  for (size_t i = 0; i < n; i++) {
    if (!address_valid(hosts[i].address) || hosts[i].weight < 1 ||
        hosts[i].weight > LB_WEIGHT_MAX)
      goto fail;
    for (size_t j = 0; j < i; j++)
      if (strcmp(hosts[i].address, hosts[j].address) == 0)
        goto fail;
  }
  rc = STRATA_EINTERNAL;
  p->hosts = calloc(n, sizeof *p->hosts);
  p->scratch = calloc(n, sizeof *p->scratch);
  if (!p->hosts || !p->scratch)
    goto fail;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(hosts[i].address);
    struct lb_host *h = &p->hosts[i];
    h->address = malloc(len + 1);
    if (!h->address)
      goto fail;
    memcpy(h->address, hosts[i].address, len + 1);
    h->weight = hosts[i].weight;
    h->healthy = 1;
    p->n_hosts++;
  }
  if (p->settings.algorithm == LB_HASH && (rc = ring_build(p)) != 0)
    goto fail;
  return 0;
fail:
  lb_pool_free(p);
  return rc;
}

void lb_pool_free(struct lb_pool *p) {
  if (!p)
    return;
  if (p->hosts)
    for (int i = 0; i < p->n_hosts; i++)
      free(p->hosts[i].address);
  free(p->hosts);
  free(p->scratch);
  free(p->ring);
  p->hosts = NULL;
  p->scratch = NULL;
  p->ring = NULL;
  p->n_hosts = 0;
  p->ring_len = 0;
}

int lb_pool_find(const struct lb_pool *p, const char *address) {
  if (!address)
    return -1;
  for (int i = 0; i < p->n_hosts; i++)
    if (strcmp(p->hosts[i].address, address) == 0)
      return i;
  return -1;
}

int lb_pool_update(struct lb_pool *p, const struct lb_host_config *hosts, size_t n,
                   const struct lb_settings *s) {
  struct lb_pool np;
  int rc = lb_pool_init(&np, hosts, n, s ? s : &p->settings);
  if (rc != 0)
    return rc;
  for (int i = 0; i < np.n_hosts; i++) {
    int j = lb_pool_find(p, np.hosts[i].address);
    if (j < 0)
      continue;
    struct lb_host *to = &np.hosts[i];
    const struct lb_host *from = &p->hosts[j];
    to->outstanding = from->outstanding;
    to->healthy = from->healthy;
    to->ejected_until_ms = from->ejected_until_ms;
    to->consecutive_failures = from->consecutive_failures;
    to->ejections = from->ejections;
    to->ejection_level = from->ejection_level;
    /* rr_current restarts at 0: the weights it summed may have changed. */
  }
  np.generation = p->generation + 1;
  lb_pool_free(p);
  *p = np;
  return 0;
}

static int available(const struct lb_host *h, uint64_t now_ms) {
  return h->healthy && now_ms >= h->ejected_until_ms;
}

int lb_host_available(const struct lb_pool *p, int host, uint64_t now_ms) {
  if (host < 0 || host >= p->n_hosts)
    return 0;
  return available(&p->hosts[host], now_ms);
}

int lb_pool_available(const struct lb_pool *p, uint64_t now_ms) {
  int n = 0;
  for (int i = 0; i < p->n_hosts; i++)
    n += available(&p->hosts[i], now_ms);
  return n;
}

static int panic_for(const struct lb_pool *p, int n_available) {
  return p->n_hosts > 0 &&
         (uint64_t)n_available * 100 < (uint64_t)p->settings.panic_percent * (unsigned)p->n_hosts;
}

int lb_pool_in_panic(const struct lb_pool *p, uint64_t now_ms) {
  return panic_for(p, lb_pool_available(p, now_ms));
}

/* Smooth weighted round robin over the candidates (nginx's
 * ngx_http_upstream_get_peer without effective_weight). The first of equal
 * maxima wins, which gives nginx's documented sequences. */
static int pick_round_robin(struct lb_pool *p, const int *cand, int k) {
  int64_t total = 0;
  struct lb_host *best = NULL;
  int best_i = -1;
  for (int c = 0; c < k; c++) {
    struct lb_host *h = &p->hosts[cand[c]];
    h->rr_current += h->weight;
    total += h->weight;
    if (!best || h->rr_current > best->rr_current) {
      best = h;
      best_i = cand[c];
    }
  }
  best->rr_current -= total;
  return best_i;
}

/* Power of two choices: two distinct candidates from rnd; the lower
 * (outstanding + 1) / weight wins, compared by cross-multiplying. */
static int pick_least_request(const struct lb_pool *p, const int *cand, int k, uint64_t rnd) {
  if (k == 1)
    return cand[0];
  uint64_t i = rnd % (uint64_t)k;
  uint64_t j = (rnd / (uint64_t)k) % (uint64_t)(k - 1);
  if (j >= i)
    j++;
  const struct lb_host *a = &p->hosts[cand[i]], *b = &p->hosts[cand[j]];
  uint64_t la = ((uint64_t)a->outstanding + 1) * b->weight;
  uint64_t lb = ((uint64_t)b->outstanding + 1) * a->weight;
  return la <= lb ? cand[i] : cand[j];
}

struct pick_ctx {
  const struct lb_pool *p;
  uint64_t now_ms;
  int panic; /* balance over every host */
  int skip;  /* excluded host, or -1 */
};

static int candidate(const struct pick_ctx *c, int i) {
  return i != c->skip && (c->panic || available(&c->p->hosts[i], c->now_ms));
}

/* First ring point at or after the key's hash (wrapping), then clockwise
 * to the first point whose host is a candidate. */
static int pick_hash(const struct pick_ctx *c, uint64_t h) {
  const struct lb_pool *p = c->p;
  size_t lo = 0, hi = p->ring_len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (p->ring[mid].hash < h)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (size_t step = 0; step < p->ring_len; step++) {
    size_t at = lo + step;
    if (at >= p->ring_len)
      at -= p->ring_len;
    if (candidate(c, (int)p->ring[at].host))
      return (int)p->ring[at].host;
  }
  return -1; /* not reached: every host has at least one point */
}

int lb_pick(struct lb_pool *p, const void *key, size_t key_len, uint64_t now_ms,
            uint64_t rnd, int exclude_index) {
  if (!p || p->n_hosts == 0)
    return -1;
  int n_avail = lb_pool_available(p, now_ms);
  struct pick_ctx c = {p, now_ms, panic_for(p, n_avail), -1};
  if (n_avail == 0 && !c.panic)
    return -1;
  int n_cand = c.panic ? p->n_hosts : n_avail;
  if (exclude_index >= 0 && exclude_index < p->n_hosts && n_cand > 1)
    c.skip = exclude_index; /* a non-candidate skipped changes nothing */

  if (p->settings.algorithm == LB_HASH)
    return pick_hash(&c, key ? fmix64(hash_fnv1a64(0, key, key_len)) : fmix64(rnd));
  int k = 0;
  for (int i = 0; i < p->n_hosts; i++)
    if (candidate(&c, i))
      p->scratch[k++] = i;
  if (p->settings.algorithm == LB_LEAST_REQUEST)
    return pick_least_request(p, p->scratch, k, rnd);
  return pick_round_robin(p, p->scratch, k);
}

/* May one more host go out without passing max_ejection_percent? */
static int ejection_allowed(const struct lb_pool *p, uint64_t now_ms) {
  uint64_t ejected = 0;
  for (int i = 0; i < p->n_hosts; i++)
    ejected += now_ms < p->hosts[i].ejected_until_ms;
  return (ejected + 1) * 100 <= (uint64_t)p->settings.max_ejection_percent * (unsigned)p->n_hosts;
}

int lb_report(struct lb_pool *p, int host, int success, uint64_t now_ms) {
  if (host < 0 || host >= p->n_hosts)
    return 0;
  struct lb_host *h = &p->hosts[host];
  const struct lb_settings *s = &p->settings;
  if (success) {
    h->consecutive_failures = 0;
    return 0;
  }
  if (now_ms < h->ejected_until_ms)
    return 0;
  if (h->consecutive_failures < UINT32_MAX)
    h->consecutive_failures++;
  if (s->eject_consecutive == 0 || h->consecutive_failures < s->eject_consecutive ||
      !ejection_allowed(p, now_ms))
    return 0;

  /* Forgive one level per base_ejection_ms served since the last return. */
  if (h->ejection_level > 0) {
    uint64_t forgiven = (now_ms - h->ejected_until_ms) / s->base_ejection_ms;
    h->ejection_level = forgiven >= h->ejection_level ? 0 : h->ejection_level - (uint32_t)forgiven;
  }
  /* Grow until the length reaches max_ejection_ms, then stay there. */
  uint64_t cap_level = s->max_ejection_ms / s->base_ejection_ms +
                       (s->max_ejection_ms % s->base_ejection_ms != 0);
  if (h->ejection_level < cap_level && h->ejection_level < UINT32_MAX)
    h->ejection_level++;
  uint64_t len = h->ejection_level >= cap_level ? s->max_ejection_ms
                                                : s->base_ejection_ms * h->ejection_level;
  h->ejected_until_ms = now_ms > UINT64_MAX - len ? UINT64_MAX : now_ms + len;
  h->consecutive_failures = 0;
  if (h->ejections < UINT32_MAX)
    h->ejections++;
  return 1;
}

void lb_set_healthy(struct lb_pool *p, int host, int healthy) {
  if (host < 0 || host >= p->n_hosts)
    return;
  struct lb_host *h = &p->hosts[host];
  if (healthy && !h->healthy) {
    /* The active checks saw the host come back: that is better evidence
     * than the failures that ejected it, so the ejection ends now (its
     * level stays, and a flapping host still gets longer ejections). As
     * Envoy's successful_active_health_check_uneject_host. */
    h->consecutive_failures = 0;
    h->ejected_until_ms = 0;
  }
  h->healthy = healthy != 0;
}

void lb_begin(struct lb_pool *p, int host) {
  if (host >= 0 && host < p->n_hosts && p->hosts[host].outstanding < UINT32_MAX)
    p->hosts[host].outstanding++;
}

void lb_end(struct lb_pool *p, int host) {
  if (host >= 0 && host < p->n_hosts && p->hosts[host].outstanding > 0)
    p->hosts[host].outstanding--;
}
