/* Chunk-size lines reduced to "HEX CRLF": see chunkline.h. */
#include "http/chunkline.h"

#include <stdlib.h>
#include <string.h>

static int is_hex(unsigned char ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* tchar (RFC 9110 5.6.2) */
static int is_tchar(unsigned char ch) {
  if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
    return 1;
  return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end) {
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  return p;
}

static const unsigned char *skip_token(const unsigned char *p, const unsigned char *end) {
  while (p < end && is_tchar(*p))
    p++;
  return p;
}

/* quoted-string from the opening DQUOTE; NULL when it is not one. */
static const unsigned char *skip_quoted(const unsigned char *p, const unsigned char *end) {
  p++;
  while (p < end) {
    unsigned char ch = *p;
    if (ch == '"')
      return p + 1;
    if (ch == '\\') {
      if (p + 1 >= end)
        return NULL;
      unsigned char q = p[1];
      if (q != '\t' && (q < 0x20 || q == 0x7f)) /* HTAB / SP / VCHAR / obs-text */
        return NULL;
      p += 2;
      continue;
    }
    if (ch != '\t' && (ch < 0x20 || ch == 0x7f)) /* qdtext */
      return NULL;
    p++;
  }
  return NULL;
}

/* Whether [p, end) is a valid chunk-ext: whitespace only before ";" and
 * around "=", none at the end of the line. */
static int valid_extensions(const unsigned char *p, const unsigned char *end) {
  for (;;) {
    const unsigned char *q = skip_ws(p, end);
    if (q == end)
      return q == p;
    if (*q != ';')
      return 0;
    p = skip_ws(q + 1, end);
    const unsigned char *name = p;
    p = skip_token(p, end);
    if (p == name)
      return 0;
    q = skip_ws(p, end);
    if (q < end && *q == '=') {
      p = skip_ws(q + 1, end);
      if (p < end && *p == '"') {
        p = skip_quoted(p, end);
        if (!p)
          return 0;
      } else {
        const unsigned char *val = p;
        p = skip_token(p, end);
        if (p == val)
          return 0;
      }
    }
  }
}

long chunkline_reduce(const char *data, size_t len, char *out, size_t *out_len) {
  const unsigned char *b = (const unsigned char *)data;
  size_t scan = len < CHUNKLINE_MAX ? len : CHUNKLINE_MAX;
  const unsigned char *lf = memchr(b, '\n', scan);
  if (!lf)
    return len < CHUNKLINE_MAX ? 0 : -1;
  if (lf == b || lf[-1] != '\r')
    return -1; /* a bare LF: llhttp refuses it */
  const unsigned char *end = lf - 1; /* the CR */
  const unsigned char *p = b;
  while (p < end && is_hex(*p))
    p++;
  size_t digits = (size_t)(p - b);
  if (digits == 0 || digits > CHUNKLINE_OUT_MAX - 4 || !valid_extensions(p, end))
    return -1;
  memcpy(out, b, digits);
  memcpy(out + digits, "\r\n", 2);
  *out_len = digits + 2;
  return (long)(lf + 1 - b);
}

int chunkline_take(struct chunkline_buf *b, const char **data, size_t *len, char *out,
                   size_t *out_len) {
  if (!*len)
    return 0; /* nothing yet (a read that ended at a chunk's end) */
  if (!b->len) {
    long used = chunkline_reduce(*data, *len, out, out_len);
    if (used > 0) {
      *data += used;
      *len -= (size_t)used;
      return 1;
    }
    if (used < 0)
      return -1;
    if (!b->data && !(b->data = malloc(CHUNKLINE_MAX)))
      return -1;
  }
  /* the line so far, and as much of these bytes as may still belong to it */
  size_t had = b->len, take = CHUNKLINE_MAX - had;
  if (take > *len)
    take = *len;
  memcpy(b->data + had, *data, take);
  long used = chunkline_reduce(b->data, had + take, out, out_len);
  if (used == 0) {
    b->len = had + take;
    *data += take;
    *len -= take;
    return 0;
  }
  b->len = 0;
  if (used < 0)
    return -1;
  *data += (size_t)used - had;
  *len -= (size_t)used - had;
  return 1;
}

void chunkline_buf_free(struct chunkline_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = 0;
}
