/* Growable output buffer; see strbuf.h. */
#include "core/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void strbuf_init(struct strbuf *sb, size_t max) {
  sb->data = NULL;
  sb->len = sb->cap = 0;
  sb->max = max;
  sb->failed = 0;
}

void strbuf_free(struct strbuf *sb) {
  free(sb->data);
  sb->data = NULL;
  sb->len = sb->cap = 0;
}

int strbuf_reserve(struct strbuf *sb, size_t n) {
  if (sb->failed)
    return -1;
  if (sb->cap - sb->len > n)
    return 0;
  size_t need = sb->len + n + 1;
  if (need < sb->len || (sb->max && need > sb->max + 1)) {
    sb->failed = 1;
    return -1;
  }
  size_t cap = sb->cap ? sb->cap : 256;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (sb->max && cap > sb->max + 1)
    cap = sb->max + 1;
  char *p = realloc(sb->data, cap);
  if (!p) {
    sb->failed = 1;
    return -1;
  }
  sb->data = p;
  sb->cap = cap;
  return 0;
}

void strbuf_append_slow(struct strbuf *sb, const void *p, size_t n) {
  if (strbuf_reserve(sb, n) < 0)
    return;
  memcpy(sb->data + sb->len, p, n);
  sb->len += n;
  sb->data[sb->len] = '\0';
}

void strbuf_printf(struct strbuf *sb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) {
    sb->failed = 1;
    return;
  }
  if ((size_t)n < sizeof small) {
    strbuf_append(sb, small, (size_t)n);
    return;
  }
  if (strbuf_reserve(sb, (size_t)n) < 0)
    return;
  va_start(ap, fmt);
  vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  sb->len += (size_t)n;
}

size_t u64_to_dec(char *out, uint64_t v) {
  char tmp[21];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  out[n] = '\0';
  return n;
}

void strbuf_put_u64(struct strbuf *sb, uint64_t v) {
  char tmp[21];
  strbuf_append(sb, tmp, u64_to_dec(tmp, v));
}

void strbuf_put_i64(struct strbuf *sb, int64_t v) {
  if (v < 0) {
    strbuf_putc(sb, '-');
    strbuf_put_u64(sb, (uint64_t)0 - (uint64_t)v);
  } else {
    strbuf_put_u64(sb, (uint64_t)v);
  }
}

size_t utf8_sequence_len(const unsigned char *s, size_t avail) {
  unsigned char c = s[0];
  if (c < 0x80)
    return 1;
  if (c < 0xC2 || c > 0xF4)
    return 0; /* continuation byte, overlong 2-byte lead, or beyond U+10FFFF */
  size_t n = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  if (avail < n)
    return 0;
  for (size_t i = 1; i < n; i++)
    if ((s[i] & 0xC0) != 0x80)
      return 0;
  if (n == 3) {
    if (c == 0xE0 && s[1] < 0xA0)
      return 0; /* overlong */
    if (c == 0xED && s[1] >= 0xA0)
      return 0; /* UTF-16 surrogate */
  } else if (n == 4) {
    if (c == 0xF0 && s[1] < 0x90)
      return 0; /* overlong */
    if (c == 0xF4 && s[1] >= 0x90)
      return 0; /* beyond U+10FFFF */
  }
  return n;
}

void strbuf_put_json_string(struct strbuf *sb, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s, *end = p + n;
  /* Reserve the exact escaped size, so a capped buffer fails only when the
   * text really does not fit. */
  size_t need = 0;
  for (const unsigned char *q = p; q < end;) {
    if (*q >= 0x20 && *q < 0x7F && *q != '"' && *q != '\\') {
      need++;
      q++;
    } else if (*q < 0x80) {
      need += (*q == '"' || *q == '\\' || *q == '\n' || *q == '\r' || *q == '\t') ? 2 : 6;
      q++;
    } else {
      size_t len = utf8_sequence_len(q, (size_t)(end - q));
      need += len ? len : 3;
      q += len ? len : 1;
    }
  }
  if (strbuf_reserve(sb, need) < 0)
    return;
  char *o = sb->data + sb->len;
  while (p < end) {
    unsigned char c = *p;
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      *o++ = (char)c;
      p++;
    } else if (c < 0x80) {
      *o++ = '\\';
      switch (c) {
      case '"': *o++ = '"'; break;
      case '\\': *o++ = '\\'; break;
      case '\n': *o++ = 'n'; break;
      case '\r': *o++ = 'r'; break;
      case '\t': *o++ = 't'; break;
      default:
        *o++ = 'u'; *o++ = '0'; *o++ = '0';
        *o++ = hex[c >> 4]; *o++ = hex[c & 15];
      }
      p++;
    } else {
      size_t len = utf8_sequence_len(p, (size_t)(end - p));
      if (len) {
        memcpy(o, p, len);
        o += len;
        p += len;
      } else {
        memcpy(o, "\xEF\xBF\xBD", 3);
        o += 3;
        p++;
      }
    }
  }
  sb->len = (size_t)(o - sb->data);
  sb->data[sb->len] = '\0';
}
