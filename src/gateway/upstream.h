/* HTTP/1.1 client to upstream hosts, with keep-alive connection pools.
 *
 * One pool per upstream host per worker thread (nginx's upstream keepalive,
 * per worker): no locks, no connection shared between loops. A call sends
 * one complete request (head + body, already serialised by the proxy) and
 * delivers one complete, validated response. Responses are parsed with
 * llhttp in strict mode, as strictly as the server parses requests: any
 * framing error (CL with TE, bad chunk sizes, ...) ends the call with
 * UPSTREAM_EPROTO and the connection is closed, never reused.
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

/* Abandons a call: its callback fires with UPSTREAM_ECANCELED (later, on the
 * loop) and its connection is closed. */
void upstream_cancel(struct upstream_call *call);

const char *upstream_result_name(int rc);

/* How the retry policy (retry.h) sees a call's result: a connect failure,
 * a timeout, a complete response (UPSTREAM_OK: look at its status), or a
 * broken connection (everything else). */
enum retry_cause upstream_retry_cause(int rc);

#endif
