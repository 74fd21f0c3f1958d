/* Unit tests for src/gateway/balancer.c.
 *
 * The balancer takes time and randomness as arguments, so every test drives
 * a pool with a fake clock (plain uint64_t milliseconds) and a seeded
 * splitmix64 stream, and checks exact sequences where the algorithm is
 * deterministic (smooth WRR, ejection lengths) and bounds where it is
 * statistical (P2C, hash spread and remapping). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/error.h"
#include "gateway/balancer.h"

#define T0 1000000 /* a clock that is not at zero */

static uint64_t rng_state;

static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static const char *const addrs[] = {"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080",
                                    "10.0.0.4:8080", "10.0.0.5:8080", "10.0.0.6:8080"};

/* A pool of n hosts addrs[0..n) with the given weights (NULL = all 1). */
static void pool(struct lb_pool *p, enum lb_algorithm algo, int n, const unsigned *weights) {
  struct lb_host_config cfg[6];
  struct lb_settings s;
  assert_true(n <= 6);
  lb_settings_default(&s);
  s.algorithm = algo;
  for (int i = 0; i < n; i++) {
    cfg[i].address = addrs[i];
    cfg[i].weight = weights ? weights[i] : 1;
  }
  assert_int_equal(lb_pool_init(p, cfg, (size_t)n, &s), 0);
}

static int pick(struct lb_pool *p, uint64_t now) {
  return lb_pick(p, NULL, 0, now, rnd(), -1);
}

static int pick_key(struct lb_pool *p, const char *key, uint64_t now) {
  return lb_pick(p, key, strlen(key), now, rnd(), -1);
}

/* Fails host n times in a row at now; returns what the last report said. */
static int fail_n(struct lb_pool *p, int host, int n, uint64_t now) {
  int ejected = 0;
  for (int i = 0; i < n; i++)
    ejected = lb_report(p, host, 0, now);
  return ejected;
}

static void test_defaults(void **state) {
  struct lb_settings s;
  (void)state;
  lb_settings_default(&s);
  assert_int_equal(s.algorithm, LB_ROUND_ROBIN);
  assert_int_equal(s.panic_percent, 50);
  assert_int_equal(s.eject_consecutive, 5);
  assert_int_equal(s.base_ejection_ms, 10000);
  assert_int_equal(s.max_ejection_ms, 300000);
  assert_int_equal(s.max_ejection_percent, 50);
  assert_int_equal(s.hash_points, 160);
}

static void test_init_validates(void **state) {
  struct lb_pool p;
  struct lb_settings s;
  (void)state;
  static const char *const bad[] = {"", "host", ":80", "host:", "host:0", "host:65536",
                                    "host:8o", "host:123456", "ho st:80", "::1:80",
                                    "[::1:80"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct lb_host_config c = {bad[i], 1};
    if (lb_pool_init(&p, &c, 1, NULL) != STRATA_EVALIDATION)
      fail_msg("address \"%s\" accepted", bad[i]);
  }
  static const char *const good[] = {"a:1", "localhost:65535", "[::1]:8080", "10.1.2.3:80"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    struct lb_host_config c = {good[i], 1000};
    if (lb_pool_init(&p, &c, 1, NULL) != 0)
      fail_msg("address \"%s\" refused", good[i]);
    assert_string_equal(p.hosts[0].address, good[i]);
    assert_int_equal(p.hosts[0].healthy, 1);
    lb_pool_free(&p);
  }
  struct lb_host_config c[2] = {{"a:1", 0}, {"b:1", 1}};
  assert_int_equal(lb_pool_init(&p, c, 2, NULL), STRATA_EVALIDATION);
  c[0].weight = LB_WEIGHT_MAX + 1;
  assert_int_equal(lb_pool_init(&p, c, 2, NULL), STRATA_EVALIDATION);
  c[0].weight = 1;
  c[1].address = "a:1"; /* duplicate */
  assert_int_equal(lb_pool_init(&p, c, 2, NULL), STRATA_EVALIDATION);
  c[1].address = NULL;
  assert_int_equal(lb_pool_init(&p, c, 2, NULL), STRATA_EVALIDATION);
  c[1].address = "b:1";
  assert_int_equal(lb_pool_init(&p, c, 0, NULL), STRATA_EVALIDATION);
  assert_int_equal(lb_pool_init(&p, NULL, 2, NULL), STRATA_EVALIDATION);

  lb_settings_default(&s);
  s.panic_percent = 101;
  assert_int_equal(lb_pool_init(&p, c, 2, &s), STRATA_EVALIDATION);
  lb_settings_default(&s);
  s.max_ejection_ms = s.base_ejection_ms - 1;
  assert_int_equal(lb_pool_init(&p, c, 2, &s), STRATA_EVALIDATION);
  s.eject_consecutive = 0; /* ejection off: its lengths no longer matter */
  assert_int_equal(lb_pool_init(&p, c, 2, &s), 0);
  lb_pool_free(&p);
  lb_settings_default(&s);
  s.algorithm = (enum lb_algorithm)7;
  assert_int_equal(lb_pool_init(&p, c, 2, &s), STRATA_EVALIDATION);
  lb_settings_default(&s);
  s.hash_points = 0;
  assert_int_equal(lb_pool_init(&p, c, 2, &s), STRATA_EVALIDATION);

  /* Destructors take NULL, a failed init and a second free. */
  lb_pool_free(NULL);
  lb_pool_free(&p);
  assert_int_equal(lb_pool_init(&p, c, 2, NULL), 0);
  lb_pool_free(&p);
  lb_pool_free(&p);
  assert_int_equal(lb_pick(&p, NULL, 0, T0, 1, -1), -1); /* freed = empty */
}

/* nginx's documented sequence for weights 5,1,1 (ngx_http_upstream_round_robin.c). */
static void test_wrr_smooth_sequence(void **state) {
  static const unsigned w[] = {5, 1, 1};
  static const int want[] = {0, 0, 1, 0, 2, 0, 0};
  struct lb_pool p;
  int count[3] = {0};
  (void)state;
  pool(&p, LB_ROUND_ROBIN, 3, w);
  for (int round = 0; round < 1000; round++)
    for (int i = 0; i < 7; i++) {
      int h = pick(&p, T0);
      if (h != want[i])
        fail_msg("round %d pick %d: host %d, want %d", round, i, h, want[i]);
      count[h]++;
    }
  assert_int_equal(count[0], 5000);
  assert_int_equal(count[1], 1000);
  assert_int_equal(count[2], 1000);
  lb_pool_free(&p);
}

static void test_wrr_equal_weights_rotate(void **state) {
  struct lb_pool p;
  (void)state;
  pool(&p, LB_ROUND_ROBIN, 3, NULL);
  for (int i = 0; i < 30; i++)
    assert_int_equal(pick(&p, T0), i % 3);
  lb_pool_free(&p);
}

static void test_wrr_skips_unhealthy_and_ejected(void **state) {
  struct lb_pool p;
  int count[4] = {0};
  (void)state;
  pool(&p, LB_ROUND_ROBIN, 4, NULL);
  lb_set_healthy(&p, 1, 0);
  assert_int_equal(fail_n(&p, 3, 5, T0), 1);
  assert_false(lb_host_available(&p, 1, T0));
  assert_false(lb_host_available(&p, 3, T0));
  assert_int_equal(lb_pool_available(&p, T0), 2);
  assert_false(lb_pool_in_panic(&p, T0)); /* 2 of 4 = 50%: not below */
  for (int i = 0; i < 1000; i++)
    count[pick(&p, T0 + 1)]++;
  assert_int_equal(count[0], 500);
  assert_int_equal(count[1], 0);
  assert_int_equal(count[2], 500);
  assert_int_equal(count[3], 0);

  /* The ejection expires by itself; the health mark stays until cleared. */
  memset(count, 0, sizeof count);
  for (int i = 0; i < 900; i++)
    count[pick(&p, T0 + 10000)]++;
  assert_int_equal(count[0], 300);
  assert_int_equal(count[1], 0);
  assert_int_equal(count[2], 300);
  assert_int_equal(count[3], 300);
  lb_set_healthy(&p, 1, 1);
  memset(count, 0, sizeof count);
  for (int i = 0; i < 1000; i++)
    count[pick(&p, T0 + 10000)]++;
  for (int i = 0; i < 4; i++)
    assert_int_equal(count[i], 250);
  lb_pool_free(&p);
}

static void test_p2c_prefers_less_loaded(void **state) {
  struct lb_pool p;
  int count[3] = {0};
  (void)state;
  rng_state = 1;
  pool(&p, LB_LEAST_REQUEST, 3, NULL);
  for (int i = 0; i < 10; i++)
    lb_begin(&p, 2);
  for (int i = 0; i < 5; i++)
    lb_begin(&p, 1);
  /* The most loaded host loses every pair; the least loaded wins every pair
   * it is drawn in, which is 2 of the 3 pairs. */
  for (int i = 0; i < 3000; i++)
    count[pick(&p, T0)]++;
  assert_int_equal(count[2], 0);
  assert_in_range(count[0], 1800, 2200);
  assert_in_range(count[1], 800, 1200);

  /* Two hosts: always the lighter one, whatever rnd says. */
  lb_pool_free(&p);
  pool(&p, LB_LEAST_REQUEST, 2, NULL);
  lb_begin(&p, 0);
  for (int i = 0; i < 100; i++)
    assert_int_equal(pick(&p, T0), 1);
  lb_pool_free(&p);
}

static void test_p2c_follows_outstanding_and_weight(void **state) {
  static const unsigned w[] = {4, 1};
  struct lb_pool p;
  int count[2] = {0};
  (void)state;
  rng_state = 2;
  /* Weight counts on an idle pool: (0+1)/4 < (0+1)/1. */
  pool(&p, LB_LEAST_REQUEST, 2, w);
  assert_int_equal(pick(&p, T0), 0);
  /* 3 in flight on the 4-weight host is still lighter than 1 on the other. */
  for (int i = 0; i < 3; i++)
    lb_begin(&p, 0);
  lb_begin(&p, 1);
  assert_int_equal(pick(&p, T0), 0);
  lb_begin(&p, 0); /* 5/4 vs 2/1 */
  assert_int_equal(pick(&p, T0), 0);
  for (int i = 0; i < 4; i++)
    lb_begin(&p, 0); /* 9/4 vs 2/1 */
  assert_int_equal(pick(&p, T0), 1);
  lb_pool_free(&p);

  /* A closed loop: each pick starts a request, the oldest ends; the load
   * splits about 4:1 with the weights. */
  pool(&p, LB_LEAST_REQUEST, 2, w);
  int ring[10], at = 0;
  for (int i = 0; i < 10; i++) {
    ring[i] = pick(&p, T0);
    lb_begin(&p, ring[i]);
  }
  for (int i = 0; i < 5000; i++) {
    lb_end(&p, ring[at]);
    ring[at] = pick(&p, T0);
    lb_begin(&p, ring[at]);
    count[ring[at]]++;
    at = (at + 1) % 10;
  }
  assert_in_range(count[0], 3600, 4600);
  lb_pool_free(&p);
}

static void test_p2c_skips_unavailable(void **state) {
  struct lb_pool p;
  (void)state;
  rng_state = 3;
  pool(&p, LB_LEAST_REQUEST, 3, NULL);
  lb_set_healthy(&p, 0, 0);
  for (int i = 0; i < 20; i++)
    lb_begin(&p, 1);
  for (int i = 0; i < 200; i++)
    assert_int_equal(pick(&p, T0), 2); /* 0 is idle but out */
  lb_pool_free(&p);
}

static void test_begin_end_counts(void **state) {
  struct lb_pool p;
  (void)state;
  pool(&p, LB_LEAST_REQUEST, 2, NULL);
  lb_begin(&p, 0);
  lb_begin(&p, 0);
  lb_begin(&p, 1);
  assert_int_equal(p.hosts[0].outstanding, 2);
  assert_int_equal(p.hosts[1].outstanding, 1);
  lb_end(&p, 0);
  assert_int_equal(p.hosts[0].outstanding, 1);
  lb_end(&p, 1);
  lb_end(&p, 1); /* an extra end does not wrap around */
  assert_int_equal(p.hosts[1].outstanding, 0);
  lb_begin(&p, 2); /* out of range: ignored */
  lb_end(&p, -1);
  lb_set_healthy(&p, 5, 0);
  assert_int_equal(lb_report(&p, 9, 0, T0), 0);
  assert_int_equal(p.hosts[0].outstanding, 1);
  lb_pool_free(&p);
}

#define NKEYS 10000

/* The entry of addrs[] equal to a pool's host address: outlives the pool. */
static const char *stable(const char *address) {
  for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++)
    if (strcmp(addrs[i], address) == 0)
      return addrs[i];
  fail_msg("unknown address %s", address);
  return NULL;
}

/* Host address each of the NKEYS keys "user-<i>" maps to. */
static void map_keys(struct lb_pool *p, const char **out) {
  char key[32];
  for (int i = 0; i < NKEYS; i++) {
    snprintf(key, sizeof key, "user-%d", i);
    int h = pick_key(p, key, T0);
    assert_true(h >= 0 && h < p->n_hosts);
    out[i] = stable(p->hosts[h].address);
  }
}

static int count_moved(const char **a, const char **b) {
  int moved = 0;
  for (int i = 0; i < NKEYS; i++)
    moved += strcmp(a[i], b[i]) != 0;
  return moved;
}

static void test_hash_same_key_same_host(void **state) {
  struct lb_pool p;
  (void)state;
  pool(&p, LB_HASH, 3, NULL);
  int first = pick_key(&p, "alice", T0);
  for (int i = 0; i < 100; i++)
    assert_int_equal(pick_key(&p, "alice", T0 + (uint64_t)i), first);
  /* Bytes, not strings: an embedded NUL is part of the key. */
  int with_nul = lb_pick(&p, "a\0b", 3, T0, 0, -1);
  for (int i = 0; i < 10; i++)
    assert_int_equal(lb_pick(&p, "a\0b", 3, T0, rnd(), -1), with_nul);
  /* No key: a random host, all of them reachable. */
  int seen[3] = {0};
  for (int i = 0; i < 300; i++)
    seen[lb_pick(&p, NULL, 0, T0, rnd(), -1)]++;
  for (int i = 0; i < 3; i++)
    assert_true(seen[i] > 50);
  lb_pool_free(&p);
}

static void test_hash_spread(void **state) {
  static const char *map[NKEYS];
  struct lb_pool p;
  int count[3] = {0};
  (void)state;
  pool(&p, LB_HASH, 3, NULL);
  assert_int_equal(p.ring_len, 3 * 160);
  map_keys(&p, map);
  for (int i = 0; i < NKEYS; i++)
    count[lb_pool_find(&p, map[i])]++;
  for (int i = 0; i < 3; i++) {
    print_message("host %d: %d keys\n", i, count[i]);
    assert_in_range(count[i], 2833, 3833); /* 3333 +- 15% */
  }
  lb_pool_free(&p);
}

static void test_hash_weights(void **state) {
  static const unsigned w[] = {3, 1};
  static const char *map[NKEYS];
  struct lb_pool p;
  int count[2] = {0};
  (void)state;
  pool(&p, LB_HASH, 2, w);
  assert_int_equal(p.ring_len, 4 * 160);
  map_keys(&p, map);
  for (int i = 0; i < NKEYS; i++)
    count[lb_pool_find(&p, map[i])]++;
  assert_in_range(count[0], 6750, 8250); /* 7500 +- 10% */
  lb_pool_free(&p);
}

static void test_hash_minimal_remap(void **state) {
  static const char *three[NKEYS], *four[NKEYS], *less[NKEYS];
  struct lb_pool p3, p4, p4less;
  struct lb_host_config cfg[3] = {{addrs[0], 1}, {addrs[1], 1}, {addrs[3], 1}};
  struct lb_settings s;
  (void)state;
  pool(&p3, LB_HASH, 3, NULL);
  pool(&p4, LB_HASH, 4, NULL);
  map_keys(&p3, three);
  map_keys(&p4, four);

  /* A 4th host takes about a quarter of the keys, all from the others. */
  int moved = count_moved(three, four);
  print_message("adding a 4th host moved %d of %d keys\n", moved, NKEYS);
  assert_in_range(moved, NKEYS * 15 / 100, NKEYS * 35 / 100);
  for (int i = 0; i < NKEYS; i++)
    if (strcmp(three[i], four[i]) != 0)
      assert_string_equal(four[i], addrs[3]);

  /* Removing host 2 of the four moves its keys and no other. */
  lb_settings_default(&s);
  s.algorithm = LB_HASH;
  assert_int_equal(lb_pool_init(&p4less, cfg, 3, &s), 0);
  map_keys(&p4less, less);
  moved = 0;
  for (int i = 0; i < NKEYS; i++) {
    if (strcmp(four[i], addrs[2]) == 0) {
      assert_string_not_equal(less[i], addrs[2]);
      moved++;
    } else {
      assert_string_equal(less[i], four[i]);
    }
  }
  assert_int_equal(moved, count_moved(four, less));
  lb_pool_free(&p3);
  lb_pool_free(&p4);
  lb_pool_free(&p4less);
}

/* The ring depends on addresses and weights, not on config order, so two
 * gateways (or two workers) with differently ordered configs agree. */
static void test_hash_ignores_config_order(void **state) {
  static const char *fwd[NKEYS], *rev[NKEYS];
  struct lb_host_config cfg[3] = {{addrs[2], 1}, {addrs[1], 1}, {addrs[0], 1}};
  struct lb_settings s;
  struct lb_pool a, b;
  (void)state;
  pool(&a, LB_HASH, 3, NULL);
  lb_settings_default(&s);
  s.algorithm = LB_HASH;
  assert_int_equal(lb_pool_init(&b, cfg, 3, &s), 0);
  map_keys(&a, fwd);
  map_keys(&b, rev);
  assert_int_equal(count_moved(fwd, rev), 0);
  lb_pool_free(&a);
  lb_pool_free(&b);
}

static void test_hash_skips_unavailable(void **state) {
  static const char *before[NKEYS], *after[NKEYS];
  struct lb_pool p;
  (void)state;
  pool(&p, LB_HASH, 4, NULL);
  map_keys(&p, before);
  lb_set_healthy(&p, 1, 0);
  map_keys(&p, after);
  /* Only the unhealthy host's keys move, each to a live host. */
  for (int i = 0; i < NKEYS; i++) {
    if (strcmp(before[i], addrs[1]) == 0)
      assert_string_not_equal(after[i], addrs[1]);
    else
      assert_string_equal(after[i], before[i]);
  }
  /* Back in: every key returns to where it was. */
  lb_set_healthy(&p, 1, 1);
  map_keys(&p, after);
  assert_int_equal(count_moved(before, after), 0);
  lb_pool_free(&p);
}

static void test_exclude_index(void **state) {
  static const enum lb_algorithm algos[] = {LB_ROUND_ROBIN, LB_LEAST_REQUEST, LB_HASH};
  struct lb_pool p;
  (void)state;
  rng_state = 4;
  for (size_t a = 0; a < 3; a++) {
    pool(&p, algos[a], 3, NULL);
    for (int i = 0; i < 300; i++) {
      int ex = i % 3;
      char key[16];
      snprintf(key, sizeof key, "k%d", i);
      int h = lb_pick(&p, key, strlen(key), T0, rnd(), ex);
      assert_true(h >= 0 && h < 3);
      assert_int_not_equal(h, ex);
    }
    /* A hashed retry goes to the next host on the ring, the same one each
     * time, so retries of one key stay together. */
    if (algos[a] == LB_HASH) {
      int first = pick_key(&p, "bob", T0);
      int second = lb_pick(&p, "bob", 3, T0, 0, first);
      assert_int_not_equal(second, first);
      assert_int_equal(lb_pick(&p, "bob", 3, T0, 99, first), second);
    }
    /* Only one available host: the retry may still go there. */
    struct lb_settings s = p.settings;
    lb_pool_free(&p);
    struct lb_host_config cfg[2] = {{addrs[0], 1}, {addrs[1], 1}};
    assert_int_equal(lb_pool_init(&p, cfg, 2, &s), 0);
    lb_set_healthy(&p, 0, 0); /* 1 of 2 available: 50%, no panic */
    assert_false(lb_pool_in_panic(&p, T0));
    for (int i = 0; i < 20; i++) {
      assert_int_equal(lb_pick(&p, "x", 1, T0, rnd(), 1), 1);
      assert_int_equal(lb_pick(&p, "x", 1, T0, rnd(), 0), 1);
    }
    /* Out-of-range exclusions are ignored. */
    assert_int_equal(lb_pick(&p, "x", 1, T0, rnd(), 7), 1);
    lb_pool_free(&p);
  }
}

static void test_panic_threshold(void **state) {
  struct lb_pool p;
  int count[4] = {0};
  (void)state;
  pool(&p, LB_ROUND_ROBIN, 4, NULL);
  lb_set_healthy(&p, 0, 0);
  lb_set_healthy(&p, 1, 0);
  assert_false(lb_pool_in_panic(&p, T0)); /* 2 of 4: exactly 50% */
  for (int i = 0; i < 100; i++)
    count[pick(&p, T0)]++;
  assert_int_equal(count[0] + count[1], 0);

  /* 1 of 4 available: below 50%, balance over every host. */
  lb_set_healthy(&p, 2, 0);
  assert_true(lb_pool_in_panic(&p, T0));
  memset(count, 0, sizeof count);
  for (int i = 0; i < 400; i++)
    count[pick(&p, T0)]++;
  for (int i = 0; i < 4; i++)
    assert_int_equal(count[i], 100);

  /* None available: still answers. */
  lb_set_healthy(&p, 3, 0);
  assert_int_equal(lb_pool_available(&p, T0), 0);
  assert_true(lb_pool_in_panic(&p, T0));
  assert_true(pick(&p, T0) >= 0);
  lb_pool_free(&p);

  /* panic_percent 0: no panic mode, an empty pool answers -1. */
  struct lb_settings s;
  struct lb_host_config cfg[2] = {{addrs[0], 1}, {addrs[1], 1}};
  lb_settings_default(&s);
  s.panic_percent = 0;
  s.algorithm = LB_HASH;
  assert_int_equal(lb_pool_init(&p, cfg, 2, &s), 0);
  lb_set_healthy(&p, 0, 0);
  assert_int_equal(pick_key(&p, "k", T0), 1);
  lb_set_healthy(&p, 1, 0);
  assert_false(lb_pool_in_panic(&p, T0));
  assert_int_equal(pick_key(&p, "k", T0), -1);
  assert_int_equal(pick(&p, T0), -1);
  lb_pool_free(&p);

  /* panic_percent 100: any host out means panic. */
  s.panic_percent = 100;
  s.algorithm = LB_LEAST_REQUEST;
  assert_int_equal(lb_pool_init(&p, cfg, 2, &s), 0);
  assert_false(lb_pool_in_panic(&p, T0));
  lb_set_healthy(&p, 0, 0);
  assert_true(lb_pool_in_panic(&p, T0));
  lb_pool_free(&p);
}

/* Ejection through passive reports, with every host failing at once: the
 * pool does not eject itself below half, and panic covers the rest. */
static void test_ejection_cannot_empty_pool(void **state) {
  struct lb_pool p;
  (void)state;
  pool(&p, LB_ROUND_ROBIN, 4, NULL);
  for (int h = 0; h < 4; h++)
    fail_n(&p, h, 10, T0);
  assert_int_equal(lb_pool_available(&p, T0), 2);
  assert_false(lb_pool_in_panic(&p, T0));
  lb_pool_free(&p);
}

static void test_ejection_after_consecutive_failures(void **state) {
  struct lb_pool p;
  (void)state;
  pool(&p, LB_ROUND_ROBIN, 3, NULL);
  /* Four failures and a success: the run starts over. */
  assert_int_equal(fail_n(&p, 0, 4, T0), 0);
  assert_int_equal(p.hosts[0].consecutive_failures, 4);
  assert_int_equal(lb_report(&p, 0, 1, T0), 0);
  assert_int_equal(p.hosts[0].consecutive_failures, 0);
  assert_int_equal(fail_n(&p, 0, 4, T0), 0);
  assert_true(lb_host_available(&p, 0, T0));
  /* The fifth in a row ejects for base_ejection_ms. */
  assert_int_equal(lb_report(&p, 0, 0, T0), 1);
  assert_int_equal(p.hosts[0].ejections, 1);
  assert_int_equal(p.hosts[0].ejected_until_ms, T0 + 10000);
  assert_false(lb_host_available(&p, 0, T0));
  assert_false(lb_host_available(&p, 0, T0 + 9999));
  /* Late failures while out neither count nor extend the ejection. */
  assert_int_equal(fail_n(&p, 0, 20, T0 + 5000), 0);
  assert_int_equal(p.hosts[0].ejected_until_ms, T0 + 10000);
  /* Back automatically, with a fresh run. */
  assert_true(lb_host_available(&p, 0, T0 + 10000));
  assert_int_equal(p.hosts[0].consecutive_failures, 0);
  assert_int_equal(fail_n(&p, 0, 4, T0 + 10000), 0);
  assert_true(lb_host_available(&p, 0, T0 + 10000));
  lb_pool_free(&p);

  /* eject_consecutive 0 turns passive detection off. */
  struct lb_settings s;
  struct lb_host_config cfg[2] = {{addrs[0], 1}, {addrs[1], 1}};
  lb_settings_default(&s);
  s.eject_consecutive = 0;
  assert_int_equal(lb_pool_init(&p, cfg, 2, &s), 0);
  assert_int_equal(fail_n(&p, 0, 100, T0), 0);
  assert_true(lb_host_available(&p, 0, T0));
  lb_pool_free(&p);
}

static void test_ejection_growth_and_cap(void **state) {
  struct lb_pool p;
  uint64_t now = T0;
  (void)state;
  pool(&p, LB_ROUND_ROBIN, 2, NULL);
  /* Failing again as soon as it is back: 10 s, 20 s, ... up to 300 s. */
  for (uint64_t k = 1; k <= 40; k++) {
    assert_int_equal(fail_n(&p, 0, 5, now), 1);
    uint64_t want = k * 10000 < 300000 ? k * 10000 : 300000;
    if (p.hosts[0].ejected_until_ms - now != want)
      fail_msg("ejection %d lasted %llu ms, want %llu", (int)k,
               (unsigned long long)(p.hosts[0].ejected_until_ms - now),
               (unsigned long long)want);
    now = p.hosts[0].ejected_until_ms;
  }
  assert_int_equal(p.hosts[0].ejections, 40);
  assert_int_equal(p.hosts[0].ejection_level, 30);

  /* Good service wears the level down, one per base_ejection_ms: after
   * 100 s back, 10 levels are forgiven and the next ejection is 210 s. */
  now += 100000;
  assert_int_equal(fail_n(&p, 0, 5, now), 1);
  assert_int_equal(p.hosts[0].ejected_until_ms - now, 210000);
  /* A day later it is a first offence again. */
  now = p.hosts[0].ejected_until_ms + 86400000;
  assert_int_equal(fail_n(&p, 0, 5, now), 1);
  assert_int_equal(p.hosts[0].ejected_until_ms - now, 10000);
  lb_pool_free(&p);

  /* A cap that is not a multiple of the base is reached, not passed. */
  struct lb_settings s;
  struct lb_host_config cfg[2] = {{addrs[0], 1}, {addrs[1], 1}};
  lb_settings_default(&s);
  s.base_ejection_ms = 1000;
  s.max_ejection_ms = 2500;
  assert_int_equal(lb_pool_init(&p, cfg, 2, &s), 0);
  now = T0;
  static const uint64_t want[] = {1000, 2000, 2500, 2500};
  for (int k = 0; k < 4; k++) {
    assert_int_equal(fail_n(&p, 1, 5, now), 1);
    assert_int_equal(p.hosts[1].ejected_until_ms - now, want[k]);
    now = p.hosts[1].ejected_until_ms;
  }
  lb_pool_free(&p);
}

static void test_max_ejection_percent(void **state) {
  struct lb_pool p;
  (void)state;
  pool(&p, LB_ROUND_ROBIN, 5, NULL);
  /* 50% of 5 hosts: two may be out at once. */
  assert_int_equal(fail_n(&p, 0, 5, T0), 1);
  assert_int_equal(fail_n(&p, 1, 5, T0 + 1000), 1);
  assert_int_equal(fail_n(&p, 2, 5, T0 + 2000), 0);
  assert_int_equal(fail_n(&p, 3, 7, T0 + 2000), 0);
  assert_true(lb_host_available(&p, 2, T0 + 2000));
  assert_int_equal(lb_pool_available(&p, T0 + 2000), 3);
  /* Host 0 returns; host 2's run is still counting, so one more failure
   * takes the freed slot. */
  assert_true(lb_host_available(&p, 0, T0 + 10000));
  assert_int_equal(lb_report(&p, 2, 0, T0 + 10000), 1);
  assert_int_equal(lb_report(&p, 3, 0, T0 + 10000), 0);
  assert_int_equal(lb_pool_available(&p, T0 + 10000), 3);
  lb_pool_free(&p);

  /* A one-host pool never ejects its host. */
  pool(&p, LB_ROUND_ROBIN, 1, NULL);
  assert_int_equal(fail_n(&p, 0, 50, T0), 0);
  assert_int_equal(pick(&p, T0), 0);
  lb_pool_free(&p);

  /* Two hosts at 50%: one out, not both. */
  pool(&p, LB_ROUND_ROBIN, 2, NULL);
  assert_int_equal(fail_n(&p, 0, 5, T0), 1);
  assert_int_equal(fail_n(&p, 1, 5, T0), 0);
  for (int i = 0; i < 10; i++)
    assert_int_equal(pick(&p, T0), 1);
  lb_pool_free(&p);
}

static void test_set_healthy_clears_run(void **state) {
  struct lb_pool p;
  (void)state;
  pool(&p, LB_ROUND_ROBIN, 3, NULL);
  fail_n(&p, 0, 4, T0);
  lb_set_healthy(&p, 0, 0);
  assert_int_equal(p.hosts[0].consecutive_failures, 4);
  lb_set_healthy(&p, 0, 1);
  assert_int_equal(p.hosts[0].consecutive_failures, 0);
  assert_int_equal(lb_report(&p, 0, 0, T0), 0);
  lb_pool_free(&p);
}

static void test_update_keeps_state(void **state) {
  static const char *before[NKEYS];
  struct lb_pool p;
  struct lb_host_config cfg[3] = {{addrs[3], 1}, {addrs[1], 1}, {addrs[0], 1}};
  (void)state;
  pool(&p, LB_HASH, 3, NULL);
  map_keys(&p, before);
  lb_set_healthy(&p, 2, 0);
  assert_int_equal(fail_n(&p, 1, 5, T0), 1);
  fail_n(&p, 0, 3, T0);
  lb_begin(&p, 0);
  uint64_t until = p.hosts[1].ejected_until_ms;

  /* addrs[2] leaves, addrs[3] joins, the rest swap places. */
  assert_int_equal(lb_pool_update(&p, cfg, 3, NULL), 0);
  assert_int_equal(p.generation, 1);
  assert_int_equal(p.settings.algorithm, LB_HASH);
  int h0 = lb_pool_find(&p, addrs[0]), h1 = lb_pool_find(&p, addrs[1]);
  int h3 = lb_pool_find(&p, addrs[3]);
  assert_int_equal(h0, 2);
  assert_int_equal(h1, 1);
  assert_int_equal(lb_pool_find(&p, addrs[2]), -1);
  assert_int_equal(p.hosts[h1].ejected_until_ms, until);
  assert_int_equal(p.hosts[h1].ejections, 1);
  assert_int_equal(p.hosts[h0].consecutive_failures, 3);
  assert_int_equal(p.hosts[h0].outstanding, 1);
  assert_int_equal(p.hosts[h3].healthy, 1);
  assert_int_equal(p.hosts[h3].outstanding, 0);

  /* Once host 1 is back, keys of the hosts that stayed have not moved
   * unless the new host took them. */
  for (int i = 0; i < NKEYS; i++) {
    char key[32];
    snprintf(key, sizeof key, "user-%d", i);
    int h = lb_pick(&p, key, strlen(key), until, 0, -1);
    if (strcmp(before[i], addrs[2]) != 0 && strcmp(p.hosts[h].address, addrs[3]) != 0)
      assert_string_equal(p.hosts[h].address, before[i]);
  }

  /* A bad update leaves the pool as it was. */
  struct lb_host_config bad = {"nope", 1};
  assert_int_equal(lb_pool_update(&p, &bad, 1, NULL), STRATA_EVALIDATION);
  assert_int_equal(p.n_hosts, 3);
  assert_int_equal(p.generation, 1);
  /* New settings may come with the update. */
  struct lb_settings s = p.settings;
  s.algorithm = LB_ROUND_ROBIN;
  assert_int_equal(lb_pool_update(&p, cfg, 3, &s), 0);
  assert_null(p.ring);
  assert_int_equal(p.hosts[1].ejections, 1);
  lb_pool_free(&p);
}

/* Heavy weights are capped at LB_RING_MAX_POINTS and still spread by weight. */
static void test_hash_ring_cap(void **state) {
  static const unsigned w[] = {1000, 1000, 500, 1000, 1000, 1};
  struct lb_pool p;
  int count[6] = {0};
  char key[32];
  (void)state;
  pool(&p, LB_HASH, 6, w);
  assert_true(p.ring_len <= LB_RING_MAX_POINTS + 6);
  assert_true(p.ring_len > LB_RING_MAX_POINTS - 6);
  for (int i = 0; i < NKEYS; i++) {
    snprintf(key, sizeof key, "k-%d", i);
    count[pick_key(&p, key, T0)]++;
  }
  for (int i = 0; i < 6; i++)
    print_message("weight %u: %d keys\n", w[i], count[i]);
  assert_in_range(count[2], 800, 1400); /* 1111 expected */
  assert_in_range(count[5], 0, 30);
  lb_pool_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_init_validates),
      cmocka_unit_test(test_wrr_smooth_sequence),
      cmocka_unit_test(test_wrr_equal_weights_rotate),
      cmocka_unit_test(test_wrr_skips_unhealthy_and_ejected),
      cmocka_unit_test(test_p2c_prefers_less_loaded),
      cmocka_unit_test(test_p2c_follows_outstanding_and_weight),
      cmocka_unit_test(test_p2c_skips_unavailable),
      cmocka_unit_test(test_begin_end_counts),
      cmocka_unit_test(test_hash_same_key_same_host),
      cmocka_unit_test(test_hash_spread),
      cmocka_unit_test(test_hash_weights),
      cmocka_unit_test(test_hash_minimal_remap),
      cmocka_unit_test(test_hash_ignores_config_order),
      cmocka_unit_test(test_hash_skips_unavailable),
      cmocka_unit_test(test_exclude_index),
      cmocka_unit_test(test_panic_threshold),
      cmocka_unit_test(test_ejection_cannot_empty_pool),
      cmocka_unit_test(test_ejection_after_consecutive_failures),
      cmocka_unit_test(test_ejection_growth_and_cap),
      cmocka_unit_test(test_max_ejection_percent),
      cmocka_unit_test(test_set_healthy_clears_run),
      cmocka_unit_test(test_update_keeps_state),
      cmocka_unit_test(test_hash_ring_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
