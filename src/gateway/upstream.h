/* HTTP/1.1 client to upstream hosts, with keep-alive connection pools.
 *
 * One pool per upstream host per worker thread (nginx's upstream keepalive,
 * per worker): no locks, no connection shared between loops. Two kinds of
 * call share the pools and the parser:
 *
 *   upstream_request()  sends one complete request (head + body, already
 *                       serialised) and delivers one complete, validated
 *                       response (body buffered in the caller's arena);
 *   upstream_stream()   sends the head, then body pieces with
 *                       backpressure, and delivers the response head, then
 *                       body pieces as they arrive (pause/resume reading),
 *                       or the whole body when the caller asks for it.
 *
 * Responses are parsed with llhttp in strict mode, as strictly as the
 * server parses requests: any framing error (CL with TE, bad chunk sizes,
 * ...), even mid-body, ends the call with UPSTREAM_EPROTO and the
 * connection is closed, never reused; so is a body cut short.
 *
 * Result codes tell the retry logic what happened:
 *   UPSTREAM_ECONNECT  could not connect (nothing sent: always safe to retry)
 *   UPSTREAM_ESTALE    a reused keep-alive connection closed before any
 *                      response byte (the upstream timed it out: safe too)
 *   UPSTREAM_ERESET    reset or closed after the request was sent
 *   UPSTREAM_ETIMEOUT  no complete response within the per-try timeout
 *   UPSTREAM_EPROTO    the response broke HTTP/1.1 framing, or was too big */
#ifndef STRATA_GATEWAY_UPSTREAM_H
#define STRATA_GATEWAY_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/arena.h"
#include "http/http.h"
#include "resilience/retry.h"

enum upstream_result {
  UPSTREAM_OK = 0,
  UPSTREAM_ECONNECT = -1,
  UPSTREAM_ESTALE = -2,
  UPSTREAM_ERESET = -3,
  UPSTREAM_ETIMEOUT = -4,
  UPSTREAM_EPROTO = -5,
  UPSTREAM_ECANCELED = -6
};

struct upstream_response {
  int status;
  const char *reason;          /* the status line's reason phrase, in the caller's arena */
  size_t reason_len;
  struct http_header *headers; /* in the caller's arena */
  unsigned n_headers;
  const char *body;            /* in the caller's arena */
  size_t body_len;
  uint64_t content_length;     /* as declared (HEAD responses have no body) */
  int has_content_length;
};

struct upstream_host;
struct upstream_call;

/* rc is UPSTREAM_OK or a negative upstream_result; resp is valid (and only
 * then non-NULL) on OK. Fires exactly once, never from inside
 * upstream_request(). */
typedef void (*upstream_done_cb)(int rc, struct upstream_response *resp, void *arg);

/* A host of this worker: address resolved once. max_idle bounds the
 * keep-alive connections kept open to it. */
struct upstream_host *upstream_host_new(uv_loop_t *loop, const char *host, uint16_t port,
                                        unsigned max_idle, uint32_t connect_timeout_ms);
/* Closes idle connections; calls in flight end with UPSTREAM_ECANCELED. The
 * loop must run once more to finish. */
void upstream_host_free(struct upstream_host *h);
const char *upstream_host_name(const struct upstream_host *h); /* "host:port" */
unsigned upstream_host_idle(const struct upstream_host *h);
unsigned upstream_host_active(const struct upstream_host *h);

/* Sends request (len bytes, which must stay valid until cb has run: it is
 * not copied) to h, waits up to timeout_ms for the
 * whole response. head_request: the request was HEAD (no body follows the
 * response headers). max_body caps the response body (UPSTREAM_EPROTO past
 * it). Response data is allocated in a. *out, when not NULL, receives a
 * handle for upstream_cancel(). Returns 0, or < 0 when the call could not
 * even be queued (then cb is not called). */
int upstream_request(struct upstream_host *h, const char *request, size_t len, int head_request,
                     uint32_t timeout_ms, size_t max_body, struct arena *a, upstream_done_cb cb,
                     void *arg, struct upstream_call **out);

/* ---- streaming calls ---------------------------------------------------- */

/* What on_head returns: how the body of this response is delivered. */
enum upstream_body_mode {
  UPSTREAM_BODY_BUFFER = 0, /* whole, in resp at on_end (up to max_body, else EPROTO) */
  UPSTREAM_BODY_STREAM      /* piece by piece through on_data */
};

struct upstream_stream_cbs {
  /* The final response head; resp's
   * headers live in the caller's arena. Returns an upstream_body_mode. */
  int (*on_head)(struct upstream_response *resp, void *arg);
  /* An interim answer (1xx but 101) before the final one: its status and
   * headers, valid during the call only. NULL: they are skipped. */
  void (*on_interim)(const struct upstream_response *resp, void *arg);
  /* A piece of the body (STREAM mode); valid during the call only. Pieces
   * of a read already under way still come after upstream_stream_pause(). */
  void (*on_data)(const char *data, size_t len, void *arg);
  /* Every request byte written so far is on the socket: write more. Fires
   * first when the head is written (only when body_follows). */
  void (*on_drain)(void *arg);
  /* Terminal, exactly one of the two, once, from the loop (never inside an
   * upstream_* call): the complete response (BUFFER mode: with its body),
   * or a failure (rc < 0, as above; after on_head too: a framing error,
   * a reset, an idle timeout or a truncated body mid-stream). */
  void (*on_end)(struct upstream_response *resp, void *arg);
  void (*on_error)(int rc, void *arg);
};

struct upstream_stream_req {
  const char *head;     /* request line and headers (and the whole body when */
  size_t len;           /* none follows); valid until the call ends */
  int head_request;     /* the request is HEAD */
  int body_follows;     /* a body is written with upstream_stream_write() */
  uint32_t timeout_ms;  /* until the response head; see "Timeouts" in upstream.c */
  uint32_t idle_timeout_ms; /* between pieces once the head is in */
  size_t max_body;      /* cap of a BUFFER-mode body */
};

/* Starts a streaming call on h (data in a, callbacks with arg; cbs must
 * outlive the call). *out receives the call. Returns 0, or < 0 when it
 * could not be queued (no callback then). */
int upstream_stream(struct upstream_host *h, const struct upstream_stream_req *r, struct arena *a,
                    const struct upstream_stream_cbs *cbs, void *arg, struct upstream_call **out);
/* Writes a piece of the request body, after the first on_drain. Returns 0
 * (on the socket), 1 (queued: wait for on_drain) or < 0 (the connection
 * failed: on_error follows). */
int upstream_stream_write(struct upstream_call *call, const uv_buf_t *bufs, unsigned n);
/* The request body is complete (the caller wrote any terminating chunk):
 * the per-try timeout now runs until the response head. */
void upstream_stream_end(struct upstream_call *call);
/* Stops / restarts reading the response (backpressure from the client). */
void upstream_stream_pause(struct upstream_call *call);
void upstream_stream_resume(struct upstream_call *call);

/* Abandons a call and closes its connection. A buffered call's callback
 * fires with UPSTREAM_ECANCELED; a streaming call's never fire again. */
void upstream_cancel(struct upstream_call *call);

const char *upstream_result_name(int rc);

/* How the retry policy (retry.h) sees a call's result: a connect failure,
 * a timeout, a complete response (UPSTREAM_OK: look at its status), or a
 * broken connection (everything else). */
enum retry_cause upstream_retry_cause(int rc);

#endif
