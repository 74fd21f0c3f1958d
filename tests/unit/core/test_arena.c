/* Unit tests for src/core/arena.c.
 *
 * The arena hands out memory that the server writes request data into, so
 * every test writes a distinct pattern over each allocation it gets and reads
 * all of them back afterwards: an overlap or a block that is too short shows
 * up as a wrong byte here, and as an ASan report in the sanitizer build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* test_impossible_sizes_fail expects NULL from malloc for sizes no machine
 * has, which ASan turns into an abort unless told otherwise. */
#define TEST_ALLOCATOR_MAY_RETURN_NULL
#include "../support.h"

#include "core/arena.h"

#define ALIGNMENT (_Alignof(max_align_t))

/* a.total counts whole slots: each allocation of n bytes adds at least n
 * (at least 1 for n == 0) and less than n + one padding unit. */
#define PAD (sizeof(max_align_t))
#define assert_total(a, requested, count) \
  assert_in_range((a)->total, (requested), (requested) + (count) * PAD)

static void fill(void *p, size_t n, unsigned seed) {
  unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    c[i] = (unsigned char)(seed * 31u + i);
}

static int check(const void *p, size_t n, unsigned seed) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    if (c[i] != (unsigned char)(seed * 31u + i))
      return 0;
  return 1;
}

static void test_init_takes_no_memory(void **state) {
  struct arena a;
  (void)state;
  arena_init(&a, 0);
  assert_null(a.head);
  assert_int_equal(a.first_size, 4096); /* 0 asks for the default */
  assert_int_equal(a.total, 0);
  arena_init(&a, 100);
  assert_int_equal(a.first_size, 100);
  arena_free(&a);
}

static void test_alloc_alignment(void **state) {
  static const size_t sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 100, 255, 1000, 4095};
  enum { N = sizeof sizes / sizeof sizes[0] };
  struct arena a;
  void *p[N];
  size_t total = 0, count = 0;
  (void)state;
  arena_init(&a, 256); /* small, so the sequence spans several blocks */
  for (int round = 0; round < 3; round++) {
    for (unsigned i = 0; i < N; i++) {
      p[i] = arena_alloc(&a, sizes[i]);
      assert_non_null(p[i]);
      assert_int_equal((uintptr_t)p[i] % ALIGNMENT, 0);
      fill(p[i], sizes[i], i + 1);
      total += sizes[i];
      count++;
    }
    for (unsigned i = 0; i < N; i++)
      assert_true(check(p[i], sizes[i], i + 1));
  }
  assert_total(&a, total, count);
  /* Types that need the strictest alignment can live there. */
  long double *ld = arena_alloc(&a, sizeof *ld);
  *ld = 1.5L;
  assert_true(*ld == 1.5L);
  arena_free(&a);
}

static void test_zero_size_alloc(void **state) {
  struct arena a;
  (void)state;
  arena_init(&a, 64);
  char *p = arena_alloc(&a, 0), *q = arena_alloc(&a, 0);
  assert_non_null(p);
  assert_non_null(q);
  assert_ptr_not_equal(p, q); /* each call gets its own slot */
  *p = 'x';
  *q = 'y';
  assert_int_equal(*p, 'x');
  assert_total(&a, 2, 2);
  arena_free(&a);
}

static void test_growth_across_blocks(void **state) {
  enum { N = 500 };
  struct arena a;
  unsigned char *p[N];
  size_t total = 0;
  (void)state;
  arena_init(&a, 64);
  for (unsigned i = 0; i < N; i++) {
    size_t n = 1 + i % 97;
    p[i] = arena_alloc(&a, n);
    assert_non_null(p[i]);
    fill(p[i], n, i);
    total += n;
  }
  for (unsigned i = 0; i < N; i++)
    assert_true(check(p[i], 1 + i % 97, i));
  assert_total(&a, total, N);
  /* No two allocations overlap. */
  for (unsigned i = 0; i < N; i++)
    for (unsigned j = i + 1; j < N; j++) {
      size_t ni = 1 + i % 97, nj = 1 + j % 97;
      assert_true(p[i] + ni <= p[j] || p[j] + nj <= p[i]);
    }
  arena_free(&a);
  assert_null(a.head);
  assert_int_equal(a.total, 0);
}

static void test_strndup(void **state) {
  struct arena a;
  (void)state;
  arena_init(&a, 32);
  char *s = arena_strndup(&a, "hello world", 5);
  assert_string_equal(s, "hello");
  char *e = arena_strndup(&a, "", 0);
  assert_string_equal(e, "");
  /* Embedded bytes are copied as they are; the copy is terminated after len. */
  char *b = arena_strndup(&a, "a\0b", 3);
  assert_memory_equal(b, "a\0b\0", 4);
  char big[300];
  memset(big, 'z', sizeof big);
  char *l = arena_strndup(&a, big, sizeof big);
  assert_memory_equal(l, big, sizeof big);
  assert_int_equal(l[sizeof big], '\0');
  assert_string_equal(s, "hello");
  arena_free(&a);
}

static void test_grow_in_place(void **state) {
  struct arena a;
  (void)state;
  arena_init(&a, 1024);
  char *p = arena_alloc(&a, 10);
  fill(p, 10, 7);
  size_t before = a.total;
  char *q = arena_grow(&a, p, 10, 100);
  assert_ptr_equal(q, p); /* last allocation, room left: no copy */
  assert_true(check(q, 10, 7));
  assert_in_range(a.total, before + 90, before + 90 + PAD);
  fill(q, 100, 8);
  /* The next allocation starts after the grown region. */
  char *r = arena_alloc(&a, 16);
  assert_true(r >= q + 100);
  fill(r, 16, 9);
  assert_true(check(q, 100, 8));
  /* Growing within the same slot changes nothing. */
  char *s = arena_alloc(&a, 1);
  assert_ptr_equal(arena_grow(&a, s, 1, ALIGNMENT), s);
  arena_free(&a);
}

static void test_grow_by_copy(void **state) {
  struct arena a;
  (void)state;
  arena_init(&a, 1024);
  char *p1 = arena_alloc(&a, 24), *p2 = arena_alloc(&a, 24);
  fill(p1, 24, 1);
  fill(p2, 24, 2);
  /* p1 is not the last allocation: it must be copied, p2 untouched. */
  char *q = arena_grow(&a, p1, 24, 200);
  assert_non_null(q);
  assert_ptr_not_equal(q, p1);
  assert_true(check(q, 24, 1));
  assert_true(check(p2, 24, 2));
  fill(q, 200, 3);
  assert_true(check(p2, 24, 2));
  assert_true(check(p1, 24, 1)); /* the old copy stays readable until reset */
  arena_free(&a);
}

static void test_grow_past_block_end(void **state) {
  struct arena a;
  (void)state;
  arena_init(&a, 128);
  char *p = arena_alloc(&a, 100);
  fill(p, 100, 4);
  /* Last allocation, but the block has no room for 1000: copied to a new
   * block with the old bytes. */
  char *q = arena_grow(&a, p, 100, 1000);
  assert_non_null(q);
  assert_ptr_not_equal(q, p);
  assert_true(check(q, 100, 4));
  fill(q, 1000, 5);
  /* Growing again in the new block is in place. */
  char *r = arena_grow(&a, q, 1000, 1500);
  assert_non_null(r);
  assert_true(check(r, 1000, 5));
  fill(r, 1500, 6);
  assert_true(check(r, 1500, 6));
  arena_free(&a);
}

static void test_grow_edge_cases(void **state) {
  struct arena a;
  (void)state;
  arena_init(&a, 64);
  char *p = arena_alloc(&a, 40);
  fill(p, 40, 1);
  /* Shrinking or keeping the size returns p as it is. */
  assert_ptr_equal(arena_grow(&a, p, 40, 10), p);
  assert_ptr_equal(arena_grow(&a, p, 40, 40), p);
  assert_true(check(p, 40, 1));
  /* Growing NULL is a fresh allocation. */
  char *n = arena_grow(&a, NULL, 0, 50);
  assert_non_null(n);
  assert_int_equal((uintptr_t)n % ALIGNMENT, 0);
  fill(n, 50, 2);
  assert_true(check(p, 40, 1));
  /* On an arena that has nothing yet. */
  struct arena b;
  arena_init(&b, 64);
  char *m = arena_grow(&b, NULL, 0, 10);
  assert_non_null(m);
  fill(m, 10, 3);
  /* A buffer grown step by step, the way a body is accumulated. */
  size_t len = 0;
  char *buf = NULL;
  for (unsigned i = 0; i < 200; i++) {
    buf = arena_grow(&b, buf, len, len + 7);
    assert_non_null(buf);
    memcpy(buf + len, "abcdefg", 7);
    len += 7;
    arena_alloc(&b, i % 3 ? 0 : 5); /* sometimes not the last allocation */
  }
  for (size_t i = 0; i < len; i++)
    assert_int_equal(buf[i], "abcdefg"[i % 7]);
  arena_free(&b);
  arena_free(&a);
}

static void test_reset_keeps_memory_usable(void **state) {
  struct arena a;
  (void)state;
  arena_init(&a, 256);
  void *first = arena_alloc(&a, 8);
  assert_non_null(first);
  for (int round = 0; round < 5; round++) {
    unsigned char *p[100];
    for (unsigned i = 0; i < 100; i++) {
      p[i] = arena_alloc(&a, 50 + i);
      assert_non_null(p[i]);
      fill(p[i], 50 + i, i + (unsigned)round);
    }
    for (unsigned i = 0; i < 100; i++)
      assert_true(check(p[i], 50 + i, i + (unsigned)round));
    arena_reset(&a);
    assert_int_equal(a.total, 0);
    assert_non_null(a.head); /* the first block is kept */
    /* The kept block is the first one: its memory comes back first. */
    void *again = arena_alloc(&a, 8);
    assert_ptr_equal(again, first);
    memset(again, 0xAB, 8);
  }
  arena_reset(&a);
  arena_reset(&a); /* twice in a row is harmless */
  assert_non_null(arena_alloc(&a, 300)); /* more than the kept block holds */
  arena_free(&a);
  assert_null(a.head);
  /* Usable again after free, like a fresh arena. */
  char *s = arena_strndup(&a, "again", 5);
  assert_string_equal(s, "again");
  arena_free(&a);
}

static void test_free_zeroed_and_twice(void **state) {
  struct arena a;
  (void)state;
  memset(&a, 0, sizeof a);
  arena_free(&a);
  arena_reset(&a);
  arena_free(&a);
  assert_null(a.head);
  arena_init(&a, 0);
  arena_reset(&a); /* nothing allocated yet */
  arena_free(&a);
  arena_free(&a);
  assert_null(a.head);
  assert_int_equal(a.total, 0);
}

static void test_big_allocations(void **state) {
  struct arena a;
  (void)state;
  arena_init(&a, 64);
  size_t big = (size_t)1 << 20;
  unsigned char *p = arena_alloc(&a, big);
  assert_non_null(p);
  assert_int_equal((uintptr_t)p % ALIGNMENT, 0);
  memset(p, 0x5A, big);
  unsigned char *q = arena_alloc(&a, 10 * big + 3);
  assert_non_null(q);
  memset(q, 0xA5, 10 * big + 3);
  char *small = arena_alloc(&a, 16);
  assert_non_null(small);
  memset(small, 1, 16);
  assert_int_equal(p[0], 0x5A);
  assert_int_equal(p[big - 1], 0x5A);
  assert_int_equal(q[10 * big + 2], 0xA5);
  assert_total(&a, big + 10 * big + 3 + 16, 3);
  arena_reset(&a);
  /* After reset, allocations keep working whatever block was kept. */
  char *r = arena_alloc(&a, 2 * big);
  assert_non_null(r);
  memset(r, 0, 2 * big);
  arena_free(&a);
}

static int alloc_impossible(void *arg) {
  struct arena a;
  size_t n = *(size_t *)arg;
  arena_init(&a, 64);
  void *p = arena_alloc(&a, n);
  /* No real allocation can be that large: the call must fail cleanly. */
  if (p) {
    fprintf(stderr, "arena_alloc(%zu) returned %p instead of NULL\n", n, p);
    return 1;
  }
  /* And the arena is still usable. */
  char *s = arena_strndup(&a, "ok", 2);
  int ok = s && strcmp(s, "ok") == 0;
  arena_free(&a);
  return ok ? 0 : 1;
}

static void test_impossible_sizes_fail(void **state) {
  /* SIZE_MAX - 8 overflows the rounding to a slot; SIZE_MAX - 40 rounds
   * without overflowing, but adding the block header to it does; SIZE_MAX / 2
   * overflows nothing and malloc refuses it. */
  static const size_t sizes[] = {SIZE_MAX,      SIZE_MAX - 1,   SIZE_MAX - 8,  SIZE_MAX - 15,
                                 SIZE_MAX - 40, SIZE_MAX - 100, SIZE_MAX - 4096, SIZE_MAX / 2};
  char bad[512] = "";
  (void)state;
  for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    if (!in_child(alloc_impossible, &n))
      snprintf(bad + strlen(bad), sizeof bad - strlen(bad), " SIZE_MAX-%zu", SIZE_MAX - n);
  }
  if (bad[0])
    fail_msg("arena_alloc() did not return NULL cleanly for:%s", bad);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init_takes_no_memory),
      cmocka_unit_test(test_alloc_alignment),
      cmocka_unit_test(test_zero_size_alloc),
      cmocka_unit_test(test_growth_across_blocks),
      cmocka_unit_test(test_strndup),
      cmocka_unit_test(test_grow_in_place),
      cmocka_unit_test(test_grow_by_copy),
      cmocka_unit_test(test_grow_past_block_end),
      cmocka_unit_test(test_grow_edge_cases),
      cmocka_unit_test(test_reset_keeps_memory_usable),
      cmocka_unit_test(test_free_zeroed_and_twice),
      cmocka_unit_test(test_big_allocations),
      cmocka_unit_test(test_impossible_sizes_fail),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
