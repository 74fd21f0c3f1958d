/* Bump allocator behind struct arena; see arena.h. */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct arena_block {
  struct arena_block *next;
  size_t size; /* usable bytes in data[] */
  size_t used;
  _Alignas(max_align_t) unsigned char data[];
};

#define ALIGN (sizeof(max_align_t))

void arena_init(struct arena *a, size_t first_size) {
  a->head = NULL;
  a->first_size = first_size ? first_size : 4096;
  a->total = 0;
}

static struct arena_block *block_new(size_t size) {
  if (size > SIZE_MAX - sizeof(struct arena_block))
    return NULL;
  struct arena_block *b = malloc(sizeof *b + size);
  if (!b)
    return NULL;
  b->next = NULL;
  b->size = size;
  b->used = 0;
  return b;
}

void *arena_alloc(struct arena *a, size_t n) {
  if (n == 0)
    n = 1;
  size_t need = (n + ALIGN - 1) & ~(ALIGN - 1);
  if (need < n)
    return NULL; /* overflow */
  struct arena_block *b = a->head;
  if (!b || b->size - b->used < need) {
    size_t size = a->head ? a->head->size * 2 : a->first_size;
    if (size < need)
      size = need;
    struct arena_block *nb = block_new(size);
    if (!nb)
      return NULL;
    nb->next = b;
    a->head = b = nb;
  }
  void *p = b->data + b->used;
  b->used += need;
  a->total += need;
  return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t len) {
  char *p = arena_alloc(a, len + 1);
  if (!p)
    return NULL;
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}

void *arena_grow(struct arena *a, void *p, size_t old_n, size_t new_n) {
  struct arena_block *b = a->head;
  if (new_n <= old_n)
    return p;
  if (p && b) {
    size_t old_need = (old_n + ALIGN - 1) & ~(ALIGN - 1);
    size_t new_need = (new_n + ALIGN - 1) & ~(ALIGN - 1);
    unsigned char *up = p;
    if (up + old_need == b->data + b->used && new_need - old_need <= b->size - b->used) {
      b->used += new_need - old_need;
      a->total += new_need - old_need;
      return p;
    }
  }
  void *q = arena_alloc(a, new_n);
  if (q && p && old_n)
    memcpy(q, p, old_n);
  return q;
}

void arena_reset(struct arena *a) {
  struct arena_block *b = a->head;
  if (!b)
    return;
  /* Keep the oldest block (the first one allocated), free the rest; but not
   * an oversized one, or one big request would pin its memory for the life
   * of a keep-alive connection. */
  while (b->next) {
    struct arena_block *next = b->next;
    free(b);
    b = next;
  }
  a->total = 0;
  if (b->size > a->first_size) {
    free(b);
    a->head = NULL;
    return;
  }
  b->used = 0;
  a->head = b;
}

void arena_free(struct arena *a) {
  struct arena_block *b = a->head;
  while (b) {
    struct arena_block *next = b->next;
    free(b);
    b = next;
  }
  a->head = NULL;
  a->total = 0;
}
