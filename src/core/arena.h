/* Per-request memory arena.
 *
 * A bump allocator over a chain of blocks: allocations are never freed one by
 * one; arena_reset() releases everything at once when a request ends (nginx
 * pools, h2o req->pool). The first block is kept across resets so a
 * keep-alive connection serves request after request without malloc. */
#ifndef STRATA_CORE_ARENA_H
#define STRATA_CORE_ARENA_H

#include <stddef.h>

struct arena_block;

struct arena {
  struct arena_block *head;  /* current block, newest first */
  size_t first_size;         /* size of the block kept across resets */
  size_t total;              /* bytes handed out since the last reset */
};

/* Prepares an empty arena; no memory is taken until the first allocation. */
void arena_init(struct arena *a, size_t first_size);

/* Returns n bytes aligned for any type, or NULL when out of memory.
 * Valid until the next arena_reset() or arena_free(). */
void *arena_alloc(struct arena *a, size_t n);

/* Copies len bytes of s into the arena and NUL-terminates the copy. */
char *arena_strndup(struct arena *a, const char *s, size_t len);

/* Grows the most recent allocation p (of old_n bytes) to new_n bytes, in place
 * when it is the last thing allocated, otherwise by copying. */
void *arena_grow(struct arena *a, void *p, size_t old_n, size_t new_n);

/* Forgets every allocation; keeps the first block for reuse. */
void arena_reset(struct arena *a);

/* Releases all memory. Accepts a zeroed or already freed arena. */
void arena_free(struct arena *a);

#endif
