/* What a request handler sees: the request, and the calls that answer it.
 *
 * The server parses a request completely (headers and a body within the
 * configured limits) before calling the handler of the matching route. The
 * handler answers with exactly one http_respond*() call, either before it
 * returns or later from the same worker's loop (an asynchronous handler, e.g.
 * one waiting for a database or an upstream). Responses on one connection
 * leave in request order: the next pipelined request is not parsed until the
 * current one is answered.
 *
 * Everything reachable from struct http_request lives in the exchange's arena
 * and is released when the response has been written.
 *
 * Handlers of streaming routes (router_add_streaming()) may instead read
 * the body piece by piece and answer piece by piece: see "Streaming" at the
 * end of this file. */
#ifndef STRATA_HTTP_HTTP_H
#define STRATA_HTTP_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "observe/trace.h"

#define HTTP_MAX_PARAMS 8

/* A streaming route gets declared bodies up to this size whole, in
 * req->body (without Expect: 100-continue); larger, chunked or expected
 * ones are read with http_body_start(). */
#define HTTP_STREAM_BUFFERED_MAX (64u * 1024u)

struct http_header {
  const char *name; /* as received; compare case-insensitively */
  const char *value; /* leading and trailing whitespace removed */
  size_t name_len;
  size_t value_len;
};

struct http_param {
  const char *name; /* from the route pattern, NUL-terminated */
  const char *raw;  /* the matched path segment, still percent-encoded */
  size_t raw_len;
};

struct http_request {
  const char *method; /* "GET", ... NUL-terminated */
  size_t method_len;
  const char *target; /* the request-target as sent */
  size_t target_len;
  const char *path;   /* target without query, NUL-terminated (absolute-form reduced to its path) */
  size_t path_len;
  const char *query;  /* after '?', without it; "" when none */
  size_t query_len;
  int version_minor;  /* HTTP/1.<version_minor> */
  struct http_header *headers;
  unsigned n_headers;
  const char *body;   /* NUL-terminated copy; "" when none */
  size_t body_len;
  struct http_param params[HTTP_MAX_PARAMS];
  unsigned n_params;
  const char *request_id; /* the client's valid X-Request-Id, or a generated one */
  size_t request_id_len;
  struct trace_context trace; /* W3C traceparent received (trace.valid) or none */
  const char *remote;         /* client address, "ip:port" */
};

struct http_exchange;
typedef void (*http_handler_cb)(struct http_exchange *ex, void *data);

/* What the server's worker hook (server.h) attached to the worker thread
 * running this exchange: per-thread state such as database connections. */
void *http_worker_data(struct http_exchange *ex);
/* The loop of that worker, for asynchronous handlers. */
struct uv_loop_s *http_loop(struct http_exchange *ex);

/* The request of an exchange; valid until the response is written. */
struct http_request *http_request_of(struct http_exchange *ex);
/* The exchange's arena: request-scoped memory for the handler's own use. */
struct arena *http_arena(struct http_exchange *ex);

/* One pointer the server's filter (server.h) may leave on an exchange for
 * its handler: what it verified about the caller, say, allocated in the
 * exchange's arena. NULL until the filter sets it; every request starts
 * without one. The filter owns its meaning: one filter per server, so one
 * reader (app/trust.h for `strata serve`). */
void http_set_filter_data(struct http_exchange *ex, const void *data);
const void *http_filter_data(struct http_exchange *ex);

/* Header lookup (case-insensitive); NULL when absent. With duplicates, the
 * first. *len receives the value length when len is not NULL. */
const char *http_header_get(const struct http_request *req, const char *name, size_t *len);

/* Route parameter by name, percent-decoded into the arena; NULL when the
 * route has no such parameter or its encoding is invalid (%zz, %00). */
const char *http_param_get(struct http_exchange *ex, const char *name);

/* Query parameter by name (first occurrence), decoded ('+' is a space) into
 * the arena; NULL when absent or badly encoded. */
const char *http_query_get(struct http_exchange *ex, const char *name);

/* Adds a response header for the coming response. name and value are copied;
 * CR, LF and NUL are refused (returns -1) so a handler cannot split headers.
 * A Date added here replaces the server's own. */
int http_add_header(struct http_exchange *ex, const char *name, const char *value);
/* The same with lengths (no NUL needed). */
int http_add_header_n(struct http_exchange *ex, const char *name, size_t name_len,
                      const char *value, size_t value_len);

/* Names the route this request took for the access line and the request
 * metrics, when a handler routes further itself (the gateway's routes).
 * label must outlive the exchange; metrics_id from metrics_route_id(). */
void http_set_route(struct http_exchange *ex, const char *label, int metrics_id);

/* Adds a member to this exchange's access-log line (key: a plain ASCII
 * name of the handler's choice; values escaped). Returns 0 or -1. */
int http_log_str(struct http_exchange *ex, const char *key, const char *value);
int http_log_u64(struct http_exchange *ex, const char *key, uint64_t value);

/* Answers the request. body (len bytes) is copied. Content-Length, Date,
 * Connection and X-Request-Id are set by the server; for HEAD the body is
 * counted but not sent. content_type may be NULL when len is 0. */
void http_respond(struct http_exchange *ex, int status, const char *content_type,
                  const void *body, size_t len);

/* Answers with a JSON body: {"error":{"code":..,"message":..,"requestId":..}}
 * built from the error table (core/error.h). message NULL = the table's
 * default; field, when not NULL, adds "field":<name> (the offending field of
 * a request body). */
void http_respond_error(struct http_exchange *ex, int err, const char *message, const char *field);

/* The JSON error body http_respond_error() sends, appended to sb, for code
 * that must keep the exact bytes (idempotent replays). */
struct strbuf;
void http_error_json(struct strbuf *sb, int err, const char *message, const char *field,
                     const char *request_id, size_t request_id_len);

/* Answers 200..599 with application/json content. */
static inline void http_respond_json(struct http_exchange *ex, int status, const char *json,
                                     size_t len) {
  http_respond(ex, status, "application/json", json, len);
}

/* For a HEAD request: the Content-Length the answer announces (the length
 * the GET body would have), when the handler knows it without a body — a
 * proxy relaying an upstream's HEAD answer. HTTP_LENGTH_UNKNOWN: announce
 * none (the upstream's answer had no Content-Length). */
#define HTTP_LENGTH_UNKNOWN UINT64_MAX
void http_set_head_length(struct http_exchange *ex, uint64_t n);

/* The reason phrase of the status line about to be sent, instead of the
 * server's own — a proxy relaying its upstream's (RFC 9112 4: only
 * HTAB, SP, VCHAR and obs-text; the caller checks). reason must live until
 * the response head is out (the exchange's arena does); len 0 sends none. */
void http_set_reason(struct http_exchange *ex, const char *reason, size_t len);

/* Settings of the server the exchange arrived on (limits, for body checks). */
const struct http_limits *http_limits_of(struct http_exchange *ex);

/* ---- Streaming ------------------------------------------------------------
 *
 * For handlers of routes added with router_add_streaming(), and for any
 * handler that answers with a body it does not hold whole.
 *
 * Request body: when http_body_streaming() says so, the handler got the
 * request at headers-complete and the body is still on the socket. It
 * calls http_body_start() when it wants it (an `Expect: 100-continue` is
 * answered then, so a request refused before never has its body sent);
 * on_body then delivers pieces and on_body_end the end. http_body_pause()
 * stops reading the socket (pieces already read, at most one read of 64
 * KiB, are still delivered), http_body_resume() reads again. The body
 * timeout (http.body_timeout) applies while the handler reads.
 *
 * Response: http_stream_start() fixes the status and headers (handler
 * headers from http_add_header()), with a Content-Length when the length
 * is known, else chunked (close-delimited for an HTTP/1.0 client); HEAD
 * and bodiless statuses send no body whatever is written. The head leaves
 * with the first piece, or at the end of the loop turn. http_stream_write()
 * sends a piece; when it returns 1 the bytes are queued and the handler
 * should wait for on_drain before writing more. http_stream_end() finishes
 * (the terminating chunk); http_abort() gives up: an error answer when no
 * status was sent yet, otherwise the connection is closed so the client
 * sees a truncated response, never a complete one.
 *
 * An answer that completes before the request body was read whole closes
 * the connection after it (lingering close). on_error tells the handler
 * that the exchange cannot complete on the client's side: the client
 * closed or reset the connection (STRATA_ECLIENT_CLOSED), stopped reading
 * the response, or its body failed (STRATA_EBAD_REQUEST for bad chunked
 * framing, STRATA_EPAYLOAD_TOO_LARGE past the route's cap,
 * STRATA_EREQUEST_TIMEOUT). The handler then releases what it holds and
 * calls http_abort(ex, err); nothing fires after on_error.
 *
 * Every callback fires from the worker's loop, never from inside the
 * http_* call that caused it. The handler's final call is exactly one of
 * http_respond*(), http_stream_end() or http_abort(); the exchange (and
 * its arena) may be gone when that call returns. */

struct http_stream_cbs {
  /* A piece of the request body; data is valid during the call only. */
  void (*on_body)(struct http_exchange *ex, const char *data, size_t len, void *arg);
  /* The request body is complete (after the last on_body). */
  void (*on_body_end)(struct http_exchange *ex, void *arg);
  /* What http_stream_write() had to queue has been written. */
  void (*on_drain)(struct http_exchange *ex, void *arg);
  /* The client side failed; err as above. */
  void (*on_error)(struct http_exchange *ex, int err, void *arg);
};

/* Sets the callbacks (cbs must outlive the exchange; any member may be
 * NULL) and their argument. Returns 0, or -1 when the client has already
 * gone (before they were attached: no on_error will come); the handler
 * then ends the exchange at once (http_abort). */
int http_stream_attach(struct http_exchange *ex, const struct http_stream_cbs *cbs, void *arg);

/* 1 when the request body is still to be read with http_body_start(). */
int http_body_streaming(const struct http_exchange *ex);
/* The declared Content-Length, or -1 for a chunked body. */
int64_t http_body_length(const struct http_exchange *ex);
/* Lowers this request's body cap (the route's, from router_add_streaming,
 * stays the ceiling) for a handler whose limit depends on what it matched.
 * Returns STRATA_EPAYLOAD_TOO_LARGE when the declared length or the bytes
 * already read are over it (the handler answers 413), else 0; a chunked
 * body that grows past it later fails as any over-long body does. */
int http_body_limit(struct http_exchange *ex, uint64_t max_bytes);
/* Starts reading the body (callbacks attached first). Returns 0, or -1
 * when there is no body to stream or it was started already. */
int http_body_start(struct http_exchange *ex);
void http_body_pause(struct http_exchange *ex);
void http_body_resume(struct http_exchange *ex);

/* Sends an interim answer (1xx but 101: 103 Early Hints, 102...) before
 * the final one: its status line, then fields ("Name: value\r\n" lines,
 * copied). Left out (-1) for an HTTP/1.0 client, once the answer has
 * started, or while earlier bytes still wait for the socket. */
int http_send_interim(struct http_exchange *ex, int status, const char *fields, size_t len);

/* Starts the answer: length >= 0 is the Content-Length, -1 unknown.
 * content_type may be NULL (or given with http_add_header()). Returns 0,
 * or -1 when the client is gone or an answer was started already. */
int http_stream_start(struct http_exchange *ex, int status, const char *content_type,
                      int64_t length);
/* Sends len bytes of the body (copied when the socket cannot take them
 * now). Returns 0 (sent), 1 (queued: wait for on_drain) or -1 (the client
 * is gone: on_error follows). Bytes past a declared length are dropped. */
int http_stream_write(struct http_exchange *ex, const void *data, size_t len);
/* Takes back an answer begun with http_stream_start() of which nothing has
 * left yet (its head is still corked, no piece written): the exchange is
 * again without an answer, and the headers added after mark (from
 * http_headers_mark()) are dropped. Returns 0, or -1 when bytes went out. */
int http_stream_retract(struct http_exchange *ex, size_t mark);
/* Where the handler-added response headers end now, for http_stream_retract(). */
size_t http_headers_mark(const struct http_exchange *ex);
/* Finishes the answer (fewer bytes than declared: as http_abort()). */
void http_stream_end(struct http_exchange *ex);
/* Ends the exchange after a failure: answers err (a JSON error, then the
 * connection closes) when no answer was started, else cuts the connection. */
void http_abort(struct http_exchange *ex, int err);

#endif
