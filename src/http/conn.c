/* One client connection: reading, parsing (llhttp), dispatching, timeouts.
 *
 * NOTES ON THE DESIGN
 *
 *                 first byte              headers complete
 *   accept -> IDLE ---------> HEAD --------------------------> BODY
 *              ^                 | headers complete,             | message complete
 *              |                 | body to stream                v
 *              |                 +------> STREAM --message-----> HANDLING
 *              |                           complete                 |
 *              |  response written, keep-alive                      v
 *              +---------------------- WRITING <--------------------+
 *                                        | Connection: close / error, or
 *                                        | answered before the body was read
 *                                        v
 *                                      LINGER --EOF or 2 s--> CLOSED
 *
 * - feed() runs llhttp over received bytes. on_message_complete pauses the
 *   parser, so exactly one request is with its handler at a time and
 *   pipelined responses go out in request order. Bytes after the paused
 *   request are copied to c->pending and parsed once the response is out.
 * - While HANDLING or WRITING the connection does not read (backpressure).
 * - Streaming routes (router_add_streaming): on_headers_complete looks the
 *   route up; a request whose body is chunked, expected (100-continue) or
 *   over HTTP_STREAM_BUFFERED_MAX pauses the parser there and goes to its
 *   handler in STREAM. The body is parsed only while the handler wants it
 *   (http_body_start/pause/resume); what was read ahead waits in
 *   c->pending and is fed from conn_kicks() at the end of the loop turn, so
 *   on_body never fires inside the handler's own call. A body error (bad
 *   chunk, too large, timeout) or a lost client reaches the handler as
 *   on_error; it ends the exchange with http_abort().
 * - The handler's final call (http_respond, http_stream_end, http_abort)
 *   sets ex.handler_done. A connection closed before that becomes a zombie:
 *   its memory lives until the final call frees it.
 * - Timeouts: each state that waits on the client sits in one of the
 *   worker's conn_lists (idle, head, body, linger); conn_sweep() closes or
 *   answers 408 for the ones past their deadline. A connection that never
 *   sent a byte is closed silently when its header timeout passes (as nginx
 *   does), one that sent part of a request gets 408.
 * - A response that must close the connection is followed by a lingering
 *   close: shut the write side, keep reading and discarding for up to 2 s or
 *   1 MiB, so the client reads the error before any RST (nginx's
 *   lingering_close).
 * - Framing errors from llhttp, and the stricter rules checked here (Host,
 *   obs-fold, limits), answer with an error status and close. */
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "http/busypoll.h"
#include "http/internal.h"
#include "http/trysend.h"
#include "observe/log.h"
#include "observe/trace.h"

#define LINGER_MAX_BYTES (1u << 20)
#define ROUTE_BAD_TARGET 1 /* look_up_route(): the request-target is malformed */

/* Why a parser callback paused llhttp (c->pause). */
enum pause_reason {
  PAUSE_MESSAGE = 0, /* a request is complete */
  PAUSE_HEADERS,     /* the headers are: the handler gets it, its body streams */
  PAUSE_STOP,        /* the handler ended the exchange from on_body */
  PAUSE_CHUNK        /* a chunk-size line is next: feed() reduces it */
};

static llhttp_settings_t parser_settings;
static uv_once_t settings_once = UV_ONCE_INIT;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void feed(struct conn *c, const char *data, size_t len);
static int look_up_route(struct conn *c);

/* ---- timeout lists ------------------------------------------------------ */

void conn_list_remove(struct conn *c) {
  struct conn_list *l = c->list;
  if (!l)
    return;
  if (c->prev)
    c->prev->next = c->next;
  else
    l->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    l->tail = c->prev;
  c->prev = c->next = NULL;
  c->list = NULL;
}

void conn_list_append(struct conn_list *l, struct conn *c, uint64_t now) {
  conn_list_remove(c);
  c->deadline = now + l->timeout_ms;
  c->list = l;
  c->prev = l->tail;
  c->next = NULL;
  if (l->tail)
    l->tail->next = c;
  else
    l->head = c;
  l->tail = c;
}

/* ---- lifecycle ---------------------------------------------------------- */

void conn_free(struct conn *c) {
  if (c->ex.in_flight)
    metrics_in_flight_add(c->w->shard, -1);
  writeq_release(&c->wq);
  arena_free(&c->arena);
  chunkline_buf_free(&c->chunk_line);
  free(c->pending);
  free(c->wbuf);
  free(c);
}

static void on_closed(uv_handle_t *h) {
  struct conn *c = (struct conn *)h;
  struct worker *w = c->w;
  __atomic_sub_fetch(&metrics_server.connections_open, 1, __ATOMIC_RELAXED);
  w->n_conns--;
  /* A handler still holds the exchange: the connection's memory lives on
   * until its final call (which frees it); a streaming handler hears of
   * the loss now. Nothing may touch c after response_fire_error(). */
  if (c->ex.dispatched && !c->ex.handler_done) {
    c->zombie = 1;
    response_fire_error(c, STRATA_ECLIENT_CLOSED);
  } else {
    conn_free(c);
  }
  worker_maybe_finish(w);
}

static void kick_remove(struct conn *c) {
  if (!c->kicked)
    return;
  for (struct conn **p = &c->w->kick; *p; p = &(*p)->kick_next)
    if (*p == c) {
      *p = c->kick_next;
      break;
    }
  c->kicked = 0;
}

void conn_close(struct conn *c) {
  if (c->state == CS_CLOSED)
    return;
  c->state = CS_CLOSED;
  conn_list_remove(c);
  kick_remove(c);
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void start_reading(struct conn *c) {
  if (!c->reading && c->state != CS_CLOSED) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
      c->reading = 1;
  }
}

static void stop_reading(struct conn *c) {
  if (c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
  }
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct conn *c = req->data;
  if (status < 0 || c->peer_eof)
    conn_close(c);
}

/* Half-closes and discards input until the client closes (lingering close). */
static void linger_close(struct conn *c) {
  struct worker *w = c->w;
  if (c->state == CS_CLOSED)
    return;
  c->state = CS_LINGER;
  c->shutdown_req.data = c;
  if (c->peer_eof || uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    conn_close(c);
    return;
  }
  free(c->pending);
  c->pending = NULL;
  c->pending_len = 0;
  conn_list_append(&w->linger, c, uv_now(&w->loop));
  start_reading(c);
}

/* 1 when received bytes may be parsed now. */
static int parsing(const struct conn *c) {
  return c->state == CS_IDLE || c->state == CS_HEAD || c->state == CS_BODY ||
         (c->state == CS_STREAM && c->ex.body_started);
}

/* Parses the bytes read ahead (c->pending), then reads the socket again if
 * parsing goes on. feed() keeps its own copy of whatever it cannot parse
 * yet, so it gets the buffer, which is freed after. */
static void feed_pending(struct conn *c) {
  char *p = c->pending;
  size_t n = c->pending_len;
  c->pending = NULL;
  c->pending_len = 0;
  feed(c, p, n);
  free(p);
  if (parsing(c) && !c->ex.body_paused)
    start_reading(c);
}

static void exchange_reset(struct conn *c) {
  struct http_exchange *ex = &c->ex;
  writeq_release(&c->wq); /* a streamed answer's buffers: not kept while idle */
  c->pause = 0;
  c->at_chunk_line = 0;
  chunkline_buf_free(&c->chunk_line); /* rarely used: not kept while idle */
  arena_reset(&c->arena);
  memset(ex, 0, offsetof(struct http_exchange, request_id_buf));
  ex->conn = c;
  ex->arena = &c->arena;
  ex->req.remote = c->remote;
  ex->req.query = "";
  ex->req.body = "";
  c->error = 0;
  c->error_message = NULL;
  c->head_bytes = c->line_bytes = 0;
  c->n_headers = c->headers_cap = 0;
  c->field = c->value = c->body = c->url = NULL;
  c->field_len = c->value_len = c->body_len = c->body_cap = c->url_len = 0;
}

void conn_after_response(struct conn *c) {
  struct worker *w = c->w;
  if (c->state == CS_CLOSED)
    return;
  exchange_reset(c);
  if (c->close_after || w->stopping) {
    linger_close(c);
    return;
  }
  c->state = CS_IDLE;
  if (c->pending_len) {
    feed_pending(c); /* the next pipelined request is already here */
    return;
  }
  if (c->peer_eof) {
    conn_close(c);
    return;
  }
  if (w->draining) {
    conn_close(c);
    return;
  }
  conn_list_append(&w->idle, c, uv_now(&w->loop));
  start_reading(c);
}

static void format_remote(struct conn *c) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  c->remote[0] = '\0';
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
    return;
  char ip[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    uv_ip4_name(a, ip, sizeof ip);
    port = ntohs(a->sin_port);
    snprintf(c->remote, sizeof c->remote, "%s:%d", ip, port);
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    uv_ip6_name(a, ip, sizeof ip);
    port = ntohs(a->sin6_port);
    snprintf(c->remote, sizeof c->remote, "[%s]:%d", ip, port);
  }
}

static void init_settings(void);

/* Sets up a connection whose handle is already connected; shared by
 * accept and conn_open_fd. */
static void conn_start(struct worker *w, struct conn *c, uint64_t open) {
  uv_tcp_nodelay(&c->tcp, 1);
  format_remote(c);
  llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
  c->parser.data = c;
  arena_init(&c->arena, 4096);
  exchange_reset(c);
  c->state = CS_IDLE;
  if (open > w->server->cfg.http.max_connections) {
    /* Refuse cleanly: a 503 the client can read, then close. */
    __atomic_add_fetch(&metrics_server.connections_refused, 1, __ATOMIC_RELAXED);
    c->refused = 1;
    response_send_raw_error(c, STRATA_EUNAVAILABLE, "Too many connections; try again later.");
    return;
  }
  /* A fresh connection gets the header timeout for its first request. */
  conn_list_append(&w->head, c, uv_now(&w->loop));
  start_reading(c);
}

static struct conn *conn_new(struct worker *w, uint64_t *open) {
  uv_once(&settings_once, init_settings);
  struct conn *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  if (uv_tcp_init(&w->loop, &c->tcp) != 0) {
    free(c);
    return NULL;
  }
  c->w = w;
  c->router = w->server->router;
  c->tcp.data = c; /* marks the handle as a connection (server.c) */
  writeq_init(&c->wq, (uv_stream_t *)&c->tcp, response_on_written, c);
  w->n_conns++;
  __atomic_add_fetch(&metrics_server.connections_total, 1, __ATOMIC_RELAXED);
  *open = __atomic_add_fetch(&metrics_server.connections_open, 1, __ATOMIC_RELAXED);
  return c;
}

void conn_accept(struct worker *w, uv_tcp_t *listener, const struct router *router) {
  uint64_t open;
  busypoll_note();
  struct conn *c = conn_new(w, &open);
  if (!c)
    return;
  c->router = router;
  if (uv_accept((uv_stream_t *)listener, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  conn_start(w, c, open);
}

int conn_open_fd(struct worker *w, int fd) {
  uint64_t open;
  struct conn *c = conn_new(w, &open);
  if (!c)
    return -1;
  if (uv_tcp_open(&c->tcp, fd) != 0) {
    conn_close(c);
    return -1;
  }
  conn_start(w, c, open);
  return 0;
}

/* ---- reading ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct conn *c = (struct conn *)h;
  /* One buffer per worker: every read is parsed (and anything left over
   * copied out) before the loop reads from another connection. */
  buf->base = c->w->read_buf;
  buf->len = sizeof c->w->read_buf;
}

static void keep_pending(struct conn *c, const char *data, size_t len) {
  char *p = malloc(c->pending_len + len);
  if (!p) {
    conn_close(c);
    return;
  }
  if (c->pending_len)
    memcpy(p, c->pending, c->pending_len);
  memcpy(p + c->pending_len, data, len);
  free(c->pending);
  c->pending = p;
  c->pending_len += len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = (struct conn *)s;
  busypoll_note();
  if (nread == 0)
    return;
  if (nread < 0) {
    if (nread != UV_EOF || c->state == CS_LINGER || c->state == CS_IDLE) {
      conn_close(c);
      return;
    }
    c->peer_eof = 1;
    stop_reading(c);
    if (c->state == CS_HEAD || c->state == CS_BODY || c->state == CS_STREAM) {
      /* The client gave up mid-request; nobody is left to read an answer. */
      conn_close(c);
    }
    return;
  }
  if (c->state == CS_LINGER) {
    c->linger_bytes += (size_t)nread;
    if (c->linger_bytes > LINGER_MAX_BYTES)
      conn_close(c);
    return;
  }
  if (c->state == CS_HANDLING || c->state == CS_WRITING) {
    keep_pending(c, buf->base, (size_t)nread);
    stop_reading(c);
    return;
  }
  feed(c, buf->base, (size_t)nread);
}

/* ---- parsing ------------------------------------------------------------ */

static int fail(struct conn *c, int err, const char *message) {
  if (!c->error) {
    c->error = err;
    c->error_message = message;
  }
  return -1;
}

#define CONN(p) ((struct conn *)(p)->data)

static int on_message_begin(llhttp_t *p) {
  struct conn *c = CONN(p);
  struct worker *w = c->w;
  c->state = CS_HEAD;
  c->ex.start_ns = uv_hrtime();
  c->ex.in_flight = 1;
  metrics_in_flight_add(w->shard, 1);
  if (c->list != &w->head)
    conn_list_append(&w->head, c, uv_now(&w->loop));
  return 0;
}

static int append(struct conn *c, char **buf, size_t *len, const char *at, size_t n) {
  char *grown = arena_grow(&c->arena, *buf, *len + (*buf ? 1 : 0), *len + n + 1);
  if (!grown)
    return fail(c, STRATA_EINTERNAL, "Out of memory.");
  memcpy(grown + *len, at, n);
  *len += n;
  grown[*len] = '\0';
  *buf = grown;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  struct conn *c = CONN(p);
  c->line_bytes += (uint32_t)n;
  if (c->line_bytes > c->w->server->cfg.http.max_request_line)
    return fail(c, STRATA_EURI_TOO_LONG, NULL);
  return append(c, &c->url, &c->url_len, at, n);
}

static int count_head(struct conn *c, size_t n) {
  c->head_bytes += (uint32_t)n;
  if (c->head_bytes > c->w->server->cfg.http.max_header_bytes)
    return fail(c, STRATA_EHEADERS_TOO_LARGE, NULL);
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  struct conn *c = CONN(p);
  if (count_head(c, n))
    return -1;
  return append(c, &c->field, &c->field_len, at, n);
}

static int on_header_field_complete(llhttp_t *p) {
  struct conn *c = CONN(p);
  if (++c->n_headers > c->w->server->cfg.http.max_headers)
    return fail(c, STRATA_EHEADERS_TOO_LARGE, "Too many header fields.");
  return count_head(c, 4); /* ": " and CRLF */
}

/* True when the whitespace just before a value's first byte follows an LF:
 * the value began on a continuation line ("Host:\r\n x"), which llhttp
 * delivers as an ordinary first span. */
static int folded_before(const struct conn *c, const char *at) {
  const char *q = at;
  while (q > c->feed_start && (q[-1] == ' ' || q[-1] == '\t'))
    q--;
  if (q > c->feed_start)
    return q[-1] == '\n';
  return c->tail_lf_ws;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  struct conn *c = CONN(p);
  if (n == 0)
    return 0;
  if (c->value_spans == 0 && folded_before(c, at))
    return fail(c, STRATA_EBAD_REQUEST, "Obsolete line folding in a header value.");
  /* llhttp (8.x) accepts obs-fold, RFC 9112 §5.2 says reject it. A folded
   * value reaches us as a second span of the same value; a value merely cut
   * by the end of a read continues exactly at the start of the next one. */
  if (c->value_spans++ && (!c->value_cut_at_end || at != c->feed_start))
    return fail(c, STRATA_EBAD_REQUEST, "Obsolete line folding in a header value.");
  c->value_cut_at_end = at + n == c->feed_end;
  if (count_head(c, n))
    return -1;
  return append(c, &c->value, &c->value_len, at, n);
}

static int is_name(const struct http_header *h, const char *name, size_t len) {
  return h->name_len == len && strncasecmp(h->name, name, len) == 0;
}

/* llhttp refuses a Transfer-Encoding whose last coding is not chunked (400).
 * We decode no other coding, so "gzip, chunked" gets 501 as RFC 9112 §6.1
 * asks. */
static int check_transfer_encoding(struct conn *c, const char *v, size_t n) {
  c->ex.te_seen = 1;
  const char *end = v + n;
  while (v < end) {
    const char *comma = memchr(v, ',', (size_t)(end - v));
    const char *item_end = comma ? comma : end;
    const char *a = v, *b = item_end;
    while (a < b && (*a == ' ' || *a == '\t'))
      a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
      b--;
    if (!(b - a == 7 && strncasecmp(a, "chunked", 7) == 0))
      c->ex.te_unsupported = 1;
    v = item_end + 1;
  }
  return 0;
}

/* A Host value (RFC 9112 3.2, RFC 3986 3.2.2): empty, or a host name of
 * letters, digits and "-._~" or a bracketed IPv6 literal, then an optional
 * ":port". Stricter than RFC 3986's reg-name (no sub-delims, no
 * percent-encoding): a Host is copied into X-Forwarded-Host, Forwarded and
 * logs, where a comma, quote or space would forge list entries. */
static int host_valid(const char *v, size_t n) {
  size_t i = 0;
  if (n == 0)
    return 1;
  if (v[0] == '[') {
    while (++i < n && v[i] != ']')
      if (!isxdigit((unsigned char)v[i]) && v[i] != ':' && v[i] != '.')
        return 0;
    if (i++ >= n || i == 2)
      return 0;
  } else {
    for (; i < n && v[i] != ':'; i++)
      if (!isalnum((unsigned char)v[i]) && v[i] != '-' && v[i] != '.' && v[i] != '_' &&
          v[i] != '~')
        return 0;
    if (i == 0)
      return 0;
  }
  if (i == n)
    return 1;
  if (v[i++] != ':' || n - i > 5)
    return 0;
  for (; i < n; i++)
    if (!isdigit((unsigned char)v[i]))
      return 0;
  return 1;
}

static int on_header_value_complete(llhttp_t *p) {
  struct conn *c = CONN(p);
  struct http_exchange *ex = &c->ex;
  struct http_request *req = &ex->req;
  const char *v = c->value ? c->value : "";
  size_t vlen = c->value_len;
  c->value_spans = 0;
  if (c->field_len == 0)
    return fail(c, STRATA_EBAD_REQUEST, "Empty header name.");
  if (c->state == CS_BODY || c->state == CS_STREAM) {
    /* A trailer field of a chunked body: never merged into the header
     * section (RFC 9110 6.5.1), where it would dodge every check made on
     * headers (a second Host, credentials). Its bytes counted above. */
    c->field = c->value = NULL;
    c->field_len = c->value_len = 0;
    return 0;
  }
  /* llhttp hands over a folded line (obs-fold) with its CR LF inside the
   * value, and lets a bare CR or a NUL through in some states: RFC 9112
   * says reject, and we do. */
  for (size_t i = 0; i < vlen; i++) {
    unsigned char ch = (unsigned char)v[i];
    if (ch == '\r' || ch == '\n' || ch == '\0')
      return fail(c, STRATA_EBAD_REQUEST, "Invalid character or line folding in a header value.");
  }
  while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
    vlen--;
  while (vlen && (*v == ' ' || *v == '\t')) {
    v++;
    vlen--;
  }
  if (req->n_headers == c->headers_cap) {
    unsigned cap = c->headers_cap ? c->headers_cap * 2 : 16;
    struct http_header *h = arena_grow(&c->arena, req->headers,
                                       c->headers_cap * sizeof *h, cap * sizeof *h);
    if (!h)
      return fail(c, STRATA_EINTERNAL, "Out of memory.");
    req->headers = h;
    c->headers_cap = cap;
  }
  struct http_header *h = &req->headers[req->n_headers++];
  h->name = c->field ? c->field : "";
  h->name_len = c->field_len;
  h->value = v;
  h->value_len = vlen;
  c->field = c->value = NULL;
  c->field_len = c->value_len = 0;

  switch (h->name_len) {
  case 4:
    if (is_name(h, "host", 4)) {
      ex->host_count++;
      if (!host_valid(v, vlen))
        return fail(c, STRATA_EBAD_REQUEST, "Invalid Host header.");
    }
    break;
  case 6:
    if (is_name(h, "expect", 6)) {
      if (vlen == 12 && strncasecmp(v, "100-continue", 12) == 0)
        ex->expect_continue = 1;
      else
        return fail(c, STRATA_EEXPECTATION_FAILED, NULL);
    }
    break;
  case 11:
    if (is_name(h, "traceparent", 11))
      trace_parse(v, vlen, &req->trace);
    break;
  case 17:
    if (is_name(h, "transfer-encoding", 17))
      return check_transfer_encoding(c, v, vlen);
    break;
  case 12:
    if (is_name(h, "x-request-id", 12) && !req->request_id && request_id_valid(v, vlen)) {
      req->request_id = v;
      req->request_id_len = vlen;
    }
    break;
  }
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  struct conn *c = CONN(p);
  struct worker *w = c->w;
  struct http_exchange *ex = &c->ex;
  const struct http_limits *lim = &w->server->cfg.http;
  ex->req.version_minor = p->http_minor;
  if (p->http_major != 1 || p->http_minor > 1)
    return fail(c, STRATA_EVERSION_NOT_SUPPORTED, NULL);
  if (p->http_minor == 1 && ex->host_count == 0)
    return fail(c, STRATA_EBAD_REQUEST, "Missing Host header.");
  if (ex->host_count > 1)
    return fail(c, STRATA_EBAD_REQUEST, "More than one Host header.");
  if (ex->te_seen && p->http_minor == 0)
    return fail(c, STRATA_EBAD_REQUEST, "Transfer-Encoding is not allowed in HTTP/1.0.");
  if (ex->te_seen && !(p->flags & F_CHUNKED))
    return fail(c, STRATA_EBAD_REQUEST, "The last transfer coding must be chunked.");
  if (ex->te_unsupported)
    return fail(c, STRATA_ENOT_IMPLEMENTED, "Only the chunked transfer coding is supported.");
  ex->keep_alive = llhttp_should_keep_alive(p);
  ex->head = p->method == HTTP_HEAD;
  /* a CONNECT's message ends at its head whatever it says (llhttp reads
   * no body: what follows would be tunnel bytes) */
  int chunked = (p->flags & F_CHUNKED) != 0 && p->method != HTTP_CONNECT;
  int has_body = chunked || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
  ex->content_length = chunked ? -1 : (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : 0;
  ex->body_limit = lim->max_body_bytes;
  int stream = 0;
  if (has_body && router_streams(c->router) && look_up_route(c) == 0 && ex->route.streaming) {
    ex->body_limit = ex->route.max_body;
    stream = chunked || ex->expect_continue || p->content_length > HTTP_STREAM_BUFFERED_MAX;
  }
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > ex->body_limit)
    return fail(c, STRATA_EPAYLOAD_TOO_LARGE, NULL);
  if (!ex->req.request_id) {
    char *id = ex->request_id_buf;
    size_t n = strlen(w->reqid_prefix);
    memcpy(id, w->reqid_prefix, n);
    static const char hexv[] = "0123456789abcdef";
    uint64_t k = ++w->reqid_counter;
    char tmp[16];
    size_t m = 0;
    do {
      tmp[m++] = hexv[k & 15];
      k >>= 4;
    } while (k);
    while (m)
      id[n++] = tmp[--m];
    id[n] = '\0';
    ex->req.request_id = id;
    ex->req.request_id_len = n;
  }
  if (stream) {
    /* The handler gets the request now; 100 Continue waits for it to
     * read the body (http_body_start). */
    ex->stream_body = 1;
    c->pause = PAUSE_HEADERS;
    c->at_chunk_line = chunked;
    return HPE_PAUSED;
  }
  if (ex->expect_continue && has_body && p->http_minor == 1) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
    stream_try_send((uv_stream_t *)&c->tcp, &b, 1);
  }
  c->state = CS_BODY;
  if (has_body)
    conn_list_append(&w->body, c, uv_now(&w->loop));
  if (chunked) {
    c->at_chunk_line = 1;
    c->pause = PAUSE_CHUNK;
    return HPE_PAUSED;
  }
  return 0;
}

/* A chunk's data is in: the next chunk-size line follows, unless that was
 * the last chunk (its trailer section is behind it now). */
static int on_chunk_complete(llhttp_t *p) {
  if (p->flags & F_TRAILING)
    return 0;
  CONN(p)->at_chunk_line = 1;
  CONN(p)->pause = PAUSE_CHUNK;
  return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  struct conn *c = CONN(p);
  struct worker *w = c->w;
  struct http_exchange *ex = &c->ex;
  if (ex->body_seen + n > ex->body_limit)
    return fail(c, STRATA_EPAYLOAD_TOO_LARGE, NULL);
  ex->body_seen += n;
  if (ex->stream_body) {
    conn_deadline(c, 1);
    if (!ex->handler_done && ex->cbs && ex->cbs->on_body)
      ex->cbs->on_body(ex, at, n, ex->cbs_arg);
    if (c->state != CS_STREAM) {
      /* the handler answered meanwhile: nothing more is parsed (and ex
       * may already belong to the next request: only c is looked at) */
      c->pause = PAUSE_STOP;
      return HPE_PAUSED;
    }
    return 0;
  }
  if (c->body_len + n + 1 > c->body_cap) {
    size_t cap = c->body_cap ? c->body_cap * 2 : 1024;
    while (cap < c->body_len + n + 1)
      cap *= 2;
    char *b = arena_grow(&c->arena, c->body, c->body_cap, cap);
    if (!b)
      return fail(c, STRATA_EINTERNAL, "Out of memory.");
    c->body = b;
    c->body_cap = cap;
  }
  memcpy(c->body + c->body_len, at, n);
  c->body_len += n;
  c->body[c->body_len] = '\0';
  /* progress on the body resets its timeout */
  conn_list_append(&w->body, c, uv_now(&w->loop));
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  CONN(p)->pause = PAUSE_MESSAGE;
  return HPE_PAUSED; /* one request at a time; see the notes above */
}

static void init_settings(void) {
  llhttp_settings_init(&parser_settings);
  parser_settings.on_message_begin = on_message_begin;
  parser_settings.on_url = on_url;
  parser_settings.on_header_field = on_header_field;
  parser_settings.on_header_field_complete = on_header_field_complete;
  parser_settings.on_header_value = on_header_value;
  parser_settings.on_header_value_complete = on_header_value_complete;
  parser_settings.on_headers_complete = on_headers_complete;
  parser_settings.on_body = on_body;
  parser_settings.on_chunk_complete = on_chunk_complete;
  parser_settings.on_message_complete = on_message_complete;
}

/* ---- dispatch ----------------------------------------------------------- */

/* Splits the request-target into path and query. Origin-form ("/p?q") is the
 * norm; absolute-form ("http://host/p?q") is accepted as RFC 9112 §3.2.2
 * asks of servers; "*" only with OPTIONS. */
static int split_target(struct conn *c) {
  struct http_request *req = &c->ex.req;
  const char *t = c->url ? c->url : "";
  size_t n = c->url_len;
  req->target = t;
  req->target_len = n;
  const char *path = t;
  if (n > 0 && t[0] != '/') {
    if (n == 1 && t[0] == '*' && c->parser.method == HTTP_OPTIONS) {
      req->path = "*";
      req->path_len = 1;
      return 0;
    }
    const char *scheme_end = NULL;
    if (n > 7 && strncasecmp(t, "http://", 7) == 0)
      scheme_end = t + 7;
    else if (n > 8 && strncasecmp(t, "https://", 8) == 0)
      scheme_end = t + 8;
    if (!scheme_end)
      return -1;
    /* The authority, not a Host header, names the host (RFC 9112 3.2.2):
     * it replaces the Host value everything after this reads. */
    size_t an = strcspn(scheme_end, "/?");
    if (an > n - (size_t)(scheme_end - t))
      an = n - (size_t)(scheme_end - t);
    if (an == 0 || !host_valid(scheme_end, an))
      return -1;
    for (unsigned i = 0; i < req->n_headers; i++)
      if (is_name(&req->headers[i], "host", 4)) {
        req->headers[i].value = scheme_end;
        req->headers[i].value_len = an;
      }
    const char *after = scheme_end + an; /* '/', '?' or the end */
    path = after < t + n && *after == '/' ? after : NULL;
    if (!path) {
      req->path = "/";
      req->path_len = 1;
      const char *q = after < t + n && *after == '?' ? after : NULL;
      if (q) {
        req->query = q + 1;
        req->query_len = n - (size_t)(q + 1 - t);
      }
      return 0;
    }
  }
  if (n == 0)
    return -1;
  size_t rest = n - (size_t)(path - t);
  const char *q = memchr(path, '?', rest);
  size_t plen = q ? (size_t)(q - path) : rest;
  if (q) {
    req->query = q + 1;
    req->query_len = rest - plen - 1;
    char *pc = arena_strndup(&c->arena, path, plen);
    if (!pc)
      return -1;
    req->path = pc;
  } else {
    req->path = path; /* already NUL-terminated at the end of url */
  }
  req->path_len = plen;
  return 0;
}

/* The route of the request, looked up once: at headers-complete when the
 * router has streaming routes and a body comes, else at dispatch. Returns
 * router_match()'s result or ROUTE_BAD_TARGET. */
static int look_up_route(struct conn *c) {
  struct http_exchange *ex = &c->ex;
  struct http_request *req = &ex->req;
  if (ex->matched)
    return ex->route_rc;
  ex->matched = 1;
  req->method = llhttp_method_name((llhttp_method_t)c->parser.method);
  req->method_len = strlen(req->method);
  if (split_target(c) != 0)
    return ex->route_rc = ROUTE_BAD_TARGET;
  return ex->route_rc = router_match(c->router, req->method, req->method_len, req->path,
                                     req->path_len, &ex->route);
}

static void dispatch(struct conn *c) {
  struct worker *w = c->w;
  struct http_exchange *ex = &c->ex;
  struct http_request *req = &ex->req;
  conn_list_remove(c);
  c->state = ex->stream_body ? CS_STREAM : CS_HANDLING;
  if (c->parser.method == HTTP_CONNECT)
    c->close_after = 1; /* what follows would be tunnel bytes, never a request */
  int rc = look_up_route(c);
  ex->mmethod = metrics_method_of(req->method, req->method_len);
  if (c->body) {
    req->body = c->body;
    req->body_len = c->body_len;
  }
  if (rc == ROUTE_BAD_TARGET) {
    http_respond_error(ex, STRATA_EBAD_REQUEST, "Malformed request target.", NULL);
    return;
  }
  if (req->path_len == 1 && req->path[0] == '*') {
    /* OPTIONS * asks about the server itself (RFC 9110 9.3.7), no resource:
     * answered here, by the server and the gateway alike, never routed. */
    http_add_header(ex, "Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    http_respond(ex, 200, NULL, NULL, 0);
    return;
  }
  if (rc == STRATA_EMETHOD_NOT_ALLOWED) {
    http_add_header(ex, "Allow", ex->route.allow);
    http_respond_error(ex, rc, NULL, NULL);
    return;
  }
  if (rc != 0) {
    http_respond_error(ex, rc, NULL, NULL);
    return;
  }
  ex->metrics_route = ex->route.metrics_id;
  memcpy(req->params, ex->route.params, sizeof req->params);
  req->n_params = ex->route.n_params;
  ex->dispatched = 1;
  struct http_server *srv = w->server;
  if (srv->filter && srv->filter(ex, srv->filter_ctx) != 0)
    return;
  ex->route.handler(ex, ex->route.data);
}

/* Maps a parser failure to the status the client gets. */
static int parse_error_status(struct conn *c, llhttp_errno_t e, const char **message) {
  if (c->error) {
    *message = c->error_message;
    return c->error;
  }
  *message = llhttp_get_error_reason(&c->parser);
  switch (e) {
  case HPE_PAUSED_H2_UPGRADE:
    /* the HTTP/2 connection preface (RFC 9113 3.4): 400, as nginx answers
     * it on an HTTP/1.1 listener, with words rather than llhttp's */
    *message = "HTTP/2 is not spoken here: send HTTP/1.1.";
    return STRATA_EBAD_REQUEST;
  case HPE_INVALID_VERSION:
    /* llhttp also says this for "Expected CRLF after version": then the
     * version read is fine and it is the request line that is malformed. */
    if (c->parser.http_major == 1 && c->parser.http_minor <= 1)
      return STRATA_EBAD_REQUEST;
    return STRATA_EVERSION_NOT_SUPPORTED;
  default:
    return STRATA_EBAD_REQUEST;
  }
}

/* The streamed body is complete: the handler hears on_body_end. */
static void body_end(struct conn *c) {
  struct http_exchange *ex = &c->ex;
  ex->body_complete = 1;
  if (c->state != CS_STREAM)
    return;
  c->state = CS_HANDLING;
  conn_deadline(c, 0);
  if (!ex->handler_done && ex->cbs && ex->cbs->on_body_end)
    ex->cbs->on_body_end(ex, ex->cbs_arg);
}

/* The streamed body failed (err): nothing more is read, the connection
 * closes after the answer, and the handler hears on_error. */
static void body_failed(struct conn *c, int err) {
  c->close_after = 1;
  stop_reading(c);
  c->state = CS_HANDLING;
  conn_list_remove(c);
  conn_deadline(c, 1);
  response_fire_error(c, err);
}

static void feed(struct conn *c, const char *data, size_t len) {
  while (len > 0) {
    if (c->state == CS_LINGER || c->state == CS_CLOSED)
      return; /* an answer ended the exchange meanwhile: the rest is discarded */
    if (!parsing(c)) {
      keep_pending(c, data, len);
      stop_reading(c);
      return;
    }
    llhttp_errno_t e;
    if (c->at_chunk_line) {
      /* through chunkline.h: llhttp 8.1 refuses valid extensions */
      char out[CHUNKLINE_OUT_MAX];
      size_t out_len = 0, before = len;
      int r = chunkline_take(&c->chunk_line, &data, &len, out, &out_len);
      c->ex.bytes_in += before - len;
      if (r == 0)
        return; /* the line goes on in the next read */
      if (r > 0) {
        c->at_chunk_line = 0;
        c->feed_start = out;
        c->feed_end = out + out_len;
        e = llhttp_execute(&c->parser, out, out_len);
        if (e == HPE_OK)
          continue;
        fail(c, STRATA_EBAD_REQUEST, "Malformed chunked body."); /* a size line ends nothing */
      } else {
        e = HPE_INVALID_CHUNK_SIZE;
        fail(c, STRATA_EBAD_REQUEST, "Malformed chunk-size line.");
      }
      goto failed;
    }
    c->feed_start = data;
    c->feed_end = data + len;
    e = llhttp_execute(&c->parser, data, len);
    if (e == HPE_OK) {
      c->ex.bytes_in += len;
      const char *q = data + len;
      while (q > data && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
      if (q > data)
        c->tail_lf_ws = q[-1] == '\n';
      return;
    }
    if (e == HPE_PAUSED_UPGRADE && c->state == CS_IDLE) {
      /* The request asked to switch protocols and has been answered. We
       * never switch (RFC 9110 §7.8 lets a server ignore Upgrade), so the
       * bytes that follow are the next HTTP/1.1 request. */
      size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
      data += used;
      len -= used;
      llhttp_resume_after_upgrade(&c->parser);
      continue;
    }
    if (e == HPE_PAUSED) {
      size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
      c->ex.bytes_in += used;
      data += used;
      len -= used;
      llhttp_resume(&c->parser);
      unsigned why = c->pause;
      c->pause = PAUSE_MESSAGE;
      if (why == PAUSE_CHUNK)
        continue;
      if (why == PAUSE_HEADERS || (why == PAUSE_MESSAGE && !c->ex.stream_body))
        dispatch(c); /* may answer at once and come back to CS_IDLE */
      else if (why == PAUSE_MESSAGE)
        body_end(c);
      continue;
    }
  failed:;
    const char *message;
    int err = parse_error_status(c, e, &message);
    c->ex.bytes_in += len;
    if (c->state == CS_STREAM) {
      body_failed(c, err);
      return;
    }
    conn_list_remove(c);
    c->state = CS_HANDLING;
    c->close_after = 1;
    if (!c->ex.start_ns)
      c->ex.start_ns = uv_hrtime();
    http_respond_error(&c->ex, err, message, NULL);
    return;
  }
}

/* ---- timeouts ----------------------------------------------------------- */

static void expire(struct conn_list *l, uint64_t now, void (*action)(struct conn *)) {
  while (l->head && l->head->deadline <= now)
    action(l->head);
}

static void on_head_timeout(struct conn *c) {
  if (c->state == CS_IDLE) {
    conn_close(c); /* never sent a byte */
    return;
  }
  conn_list_remove(c);
  c->state = CS_HANDLING;
  c->close_after = 1;
  http_respond_error(&c->ex, STRATA_EREQUEST_TIMEOUT, NULL, NULL);
}

static void on_body_timeout(struct conn *c) {
  if (c->state == CS_WRITING || writeq_queued(&c->wq)) {
    conn_close(c); /* the client stopped reading our response */
    return;
  }
  if (c->state == CS_STREAM) {
    body_failed(c, STRATA_EREQUEST_TIMEOUT);
    return;
  }
  on_head_timeout(c);
}

void conn_sweep(struct worker *w, uint64_t now) {
  expire(&w->idle, now, conn_close);
  expire(&w->head, now, on_head_timeout);
  expire(&w->body, now, on_body_timeout);
  expire(&w->linger, now, conn_close);
}

/* ---- streaming request bodies (http.h, "Streaming") --------------------- */

void conn_deadline(struct conn *c, int progress) {
  struct worker *w = c->w;
  if (c->state == CS_CLOSED || c->state == CS_LINGER)
    return;
  int waiting = writeq_queued(&c->wq) > 0 || c->wbuf ||
                (c->state == CS_STREAM && c->ex.body_started && !c->ex.body_paused);
  if (!waiting) {
    if (c->list == &w->body)
      conn_list_remove(c);
  } else if (progress || c->list != &w->body) {
    conn_list_append(&w->body, c, uv_now(&w->loop));
  }
}

void conn_kick(struct conn *c) {
  if (c->kicked || c->state == CS_CLOSED)
    return;
  c->kicked = 1;
  c->kick_next = c->w->kick;
  c->w->kick = c;
}

void conn_kicks(struct worker *w) {
  while (w->kick) {
    struct conn *c = w->kick;
    w->kick = c->kick_next;
    c->kicked = 0;
    response_uncork(c);
    if (c->state == CS_STREAM && c->ex.body_started && c->pending_len)
      feed_pending(c);
  }
}

/* Reads on: bytes read ahead first (from the kick, not from inside the
 * handler's call), then the socket. */
static void resume_reading(struct conn *c) {
  if (c->pending_len)
    conn_kick(c);
  else
    start_reading(c);
  conn_deadline(c, 1);
}

int http_stream_attach(struct http_exchange *ex, const struct http_stream_cbs *cbs, void *arg) {
  ex->cbs = cbs;
  ex->cbs_arg = arg;
  return ex->conn->zombie ? -1 : 0;
}

int http_body_streaming(const struct http_exchange *ex) { return ex->stream_body; }
int64_t http_body_length(const struct http_exchange *ex) { return ex->content_length; }

int http_body_limit(struct http_exchange *ex, uint64_t max_bytes) {
  if (max_bytes < ex->body_limit)
    ex->body_limit = max_bytes;
  if ((ex->content_length > 0 && (uint64_t)ex->content_length > ex->body_limit) ||
      ex->body_seen > ex->body_limit)
    return STRATA_EPAYLOAD_TOO_LARGE;
  return 0;
}

int http_body_start(struct http_exchange *ex) {
  struct conn *c = ex->conn;
  if (!ex->stream_body || ex->body_started || ex->handler_done || c->state != CS_STREAM)
    return -1;
  ex->body_started = 1;
  if (ex->expect_continue && ex->req.version_minor == 1 && !ex->responded) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
    if (writeq_write(&c->wq, &b, 1) < 0) {
      conn_close(c); /* on_error follows */
      return 0;
    }
  }
  resume_reading(c);
  return 0;
}

void conn_end_body(struct conn *c) {
  if (c->state != CS_STREAM)
    return;
  c->close_after = 1; /* what is left of the body is never read */
  c->state = CS_HANDLING;
  stop_reading(c);
  conn_list_remove(c);
}

void http_body_pause(struct http_exchange *ex) {
  struct conn *c = ex->conn;
  if (c->state != CS_STREAM || !ex->body_started || ex->body_paused)
    return;
  ex->body_paused = 1;
  stop_reading(c);
  conn_deadline(c, 0);
}

void http_body_resume(struct http_exchange *ex) {
  struct conn *c = ex->conn;
  if (c->state != CS_STREAM || !ex->body_paused)
    return;
  ex->body_paused = 0;
  resume_reading(c);
}
