#ifndef STRATA_CORE_HASH_H
#define STRATA_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a, 64 bits, over len bytes from the offset basis xor seed. A seed
 * picked at random per table keeps a set of colliding keys from being
 * prepared in advance; seed 0 gives plain FNV-1a (the balancer's ring,
 * which every worker and instance must compute alike). Inline: it sits on
 * the cache's and the balancer's per-request paths. */
static inline uint64_t hash_fnv1a64(uint64_t seed, const void *data, size_t len) {
  const unsigned char *p = data;
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

/* For a bucket index taken from the low bits: the high bits folded in. */
static inline uint64_t hash_fold(uint64_t h) { return h ^ (h >> 32); }

#endif
