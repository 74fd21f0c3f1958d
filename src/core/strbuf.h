/* A growable byte buffer for output (responses, log lines, metrics pages).
 *
 * Appends never fail silently: when memory runs out or the buffer would pass
 * its cap, the buffer is marked failed (sb->failed) and further appends are
 * ignored, so a caller checks once at the end (curl's dynbuf "toobig"). */
#ifndef STRATA_CORE_STRBUF_H
#define STRATA_CORE_STRBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct strbuf {
  char *data;
  size_t len;
  size_t cap;
  size_t max;  /* hard cap in bytes; 0 = no cap */
  int failed;  /* an append did not fit */
};

void strbuf_init(struct strbuf *sb, size_t max);
void strbuf_free(struct strbuf *sb);
/* Empties the buffer and clears failed; keeps the memory. */
static inline void strbuf_clear(struct strbuf *sb) { sb->len = 0; sb->failed = 0; }
/* Makes room for n more bytes; returns 0 or -1 (and marks failed). */
int strbuf_reserve(struct strbuf *sb, size_t n);
void strbuf_append_slow(struct strbuf *sb, const void *p, size_t n);
/* Inline for the common case (room left): these sit on every hot path. */
static inline void strbuf_append(struct strbuf *sb, const void *p, size_t n) {
  if (__builtin_expect(!sb->failed && sb->cap - sb->len > n, 1)) {
    memcpy(sb->data + sb->len, p, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
  } else {
    strbuf_append_slow(sb, p, n);
  }
}
static inline void strbuf_puts(struct strbuf *sb, const char *s) { strbuf_append(sb, s, strlen(s)); }
static inline void strbuf_putc(struct strbuf *sb, char c) { strbuf_append(sb, &c, 1); }
void strbuf_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_put_u64(struct strbuf *sb, uint64_t v);
void strbuf_put_i64(struct strbuf *sb, int64_t v);
/* Appends s as the inside of a JSON string: quotes, backslashes and control
 * bytes escaped, invalid UTF-8 replaced by U+FFFD, so the result always
 * parses. */
void strbuf_put_json_string(struct strbuf *sb, const char *s, size_t n);

/* Writes the decimal form of v into out (at least 21 bytes); returns length. */
size_t u64_to_dec(char *out, uint64_t v);

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 when the
 * bytes at s are not valid UTF-8 (overlongs and surrogates included). */
size_t utf8_sequence_len(const unsigned char *s, size_t avail);

#endif
