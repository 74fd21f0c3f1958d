/* Write queue; see writeq.h. */
#include "http/writeq.h"

#include <stdlib.h>
#include <string.h>

#include "http/trysend.h"

void writeq_init(struct writeq *q, uv_stream_t *stream, writeq_cb cb, void *data) {
  memset(q, 0, sizeof *q);
  q->stream = stream;
  q->cb = cb;
  q->data = data;
  q->req.data = q;
}

/* Appends n bytes at p to one of the buffers, growing it. */
static int put(char **buf, size_t *len, size_t *cap, const char *p, size_t n) {
  if (*len + n > *cap) {
    size_t c = *cap ? *cap : 16384;
    while (c < *len + n)
      c *= 2;
    char *g = realloc(*buf, c);
    if (!g)
      return -1;
    *buf = g;
    *cap = c;
  }
  memcpy(*buf + *len, p, n);
  *len += n;
  return 0;
}

static void on_written(uv_write_t *req, int status);

static int start(struct writeq *q) {
  uv_buf_t b = uv_buf_init(q->busy, (unsigned)q->busy_len);
  int rc = uv_write(&q->req, q->stream, &b, 1, on_written);
  if (rc == 0)
    q->writing = 1;
  return rc;
}

static void on_written(uv_write_t *req, int status) {
  struct writeq *q = req->data;
  q->writing = 0;
  q->busy_len = 0;
  if (status == 0 && q->next_len) {
    char *b = q->busy;
    size_t cap = q->busy_cap;
    q->busy = q->next;
    q->busy_cap = q->next_cap;
    q->busy_len = q->next_len;
    q->next = b;
    q->next_cap = cap;
    q->next_len = 0;
    status = start(q);
    if (status != 0)
      q->busy_len = 0;
  }
  if (status < 0) {
    if (!q->error)
      q->error = status;
    q->next_len = 0;
  }
  q->cb(q, status);
}

int writeq_write(struct writeq *q, const uv_buf_t *bufs, unsigned n) {
  if (q->error)
    return q->error;
  unsigned i = 0;
  size_t skip = 0; /* bytes of bufs[i] already on the socket */
  if (!q->writing) {
    int w = stream_try_send(q->stream, bufs, n);
    if (w < 0 && w != UV_EAGAIN)
      return q->error = w;
    size_t done = w > 0 ? (size_t)w : 0;
    while (i < n && done >= bufs[i].len) {
      done -= bufs[i].len;
      i++;
    }
    if (i == n)
      return 0;
    skip = done;
  }
  char **buf = q->writing ? &q->next : &q->busy;
  size_t *len = q->writing ? &q->next_len : &q->busy_len;
  size_t *cap = q->writing ? &q->next_cap : &q->busy_cap;
  for (; i < n; i++, skip = 0)
    if (put(buf, len, cap, bufs[i].base + skip, bufs[i].len - skip) != 0)
      return q->error = UV_ENOMEM;
  if (!q->writing) {
    int rc = start(q);
    if (rc != 0) {
      q->busy_len = 0;
      return q->error = rc;
    }
  }
  return 1;
}

void writeq_release(struct writeq *q) {
  if (q->writing || (!q->busy && !q->next))
    return;
  free(q->busy);
  free(q->next);
  q->busy = q->next = NULL;
  q->busy_len = q->busy_cap = q->next_len = q->next_cap = 0;
}
