/* Writing a stream of pieces to a libuv stream with bounded memory.
 *
 * writeq_write() hands the bytes to the socket at once (stream_try_send,
 * no copy); only what the socket does not take is copied, into one of two
 * buffers the queue owns: `busy` is being written by uv_write, `next`
 * gathers whatever comes meanwhile and goes out when busy is done. The
 * caller learns that bytes had to be queued (return 1) and hears its
 * callback after each queued write, so it can stop producing until the
 * queue is empty again (backpressure, as Node's write() / 'drain').
 *
 * Memory: the two buffers, each as large as the most queued at once,
 * reused across writes until writeq_release(). A producer that stops when
 * told to (1) keeps them at about one piece each. Used by the server for
 * streamed responses and by the upstream client for streamed request
 * bodies. */
#ifndef STRATA_HTTP_WRITEQ_H
#define STRATA_HTTP_WRITEQ_H

#include <stddef.h>
#include <uv.h>

struct writeq;

/* After each queued write ends: status 0, or a negative libuv error (the
 * queue is then dead: later writes return that error). Runs from the
 * loop, never inside writeq_write(). On uv_close() of the stream pending
 * writes end with UV_ECANCELED before the close callback. */
typedef void (*writeq_cb)(struct writeq *q, int status);

struct writeq {
  uv_stream_t *stream;
  uv_write_t req;
  writeq_cb cb;
  void *data;          /* the owner's */
  char *busy, *next;   /* being written / waiting for busy */
  size_t busy_len, busy_cap, next_len, next_cap;
  int writing;         /* req is in flight */
  int error;           /* the first write error, or 0 */
};

void writeq_init(struct writeq *q, uv_stream_t *stream, writeq_cb cb, void *data);

/* Writes the n buffers in order after anything queued before. Returns 0
 * when the socket took every byte, 1 when some are queued (cb follows;
 * writeq_queued() says how many), or a negative libuv error (nothing is
 * queued; the caller closes the stream). */
int writeq_write(struct writeq *q, const uv_buf_t *bufs, unsigned n);

static inline size_t writeq_queued(const struct writeq *q) { return q->busy_len + q->next_len; }

/* Frees the buffers when no write is in flight (else keeps them: call it
 * again from cb or after the stream closed). Safe on a zeroed queue. */
void writeq_release(struct writeq *q);

#endif
