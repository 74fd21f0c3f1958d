/* Serialising responses, and the request accessors handlers use.
 *
 * A response is built in the worker's scratch buffer and handed to
 * stream_try_send(); only when the socket cannot take all of it is the rest
 * copied to the connection and written asynchronously. The access log line
 * and the metrics are recorded here, once per response.
 *
 * A streamed answer (http_stream_*) keeps its head in the exchange's arena
 * ("corked") until the first piece, so a small answer still leaves in one
 * writev; the pieces go through the connection's write queue (writeq.h),
 * which copies only what the socket does not take and tells the handler
 * to wait (on_drain) when it had to. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/error.h"
#include "http/internal.h"
#include "http/trysend.h"
#include "observe/log.h"

/* The IANA HTTP status code registry's names; none for a code it lacks
 * (the reason phrase may be empty, RFC 9112 4). */
static const char *reason_phrase(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 102: return "Processing";
  case 103: return "Early Hints";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 203: return "Non-Authoritative Information";
  case 204: return "No Content";
  case 205: return "Reset Content";
  case 206: return "Partial Content";
  case 207: return "Multi-Status";
  case 208: return "Already Reported";
  case 226: return "IM Used";
  case 300: return "Multiple Choices";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 305: return "Use Proxy";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 402: return "Payment Required";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 407: return "Proxy Authentication Required";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 416: return "Range Not Satisfiable";
  case 417: return "Expectation Failed";
  case 421: return "Misdirected Request";
  case 422: return "Unprocessable Content";
  case 423: return "Locked";
  case 424: return "Failed Dependency";
  case 425: return "Too Early";
  case 426: return "Upgrade Required";
  case 428: return "Precondition Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 451: return "Unavailable For Legal Reasons";
  case 499: return "Client Closed Request";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  case 506: return "Variant Also Negotiates";
  case 507: return "Insufficient Storage";
  case 508: return "Loop Detected";
  case 511: return "Network Authentication Required";
  default: return "";
  }
}

void worker_update_date(struct worker *w) {
  time_t now = time(NULL);
  if (now == w->date_sec)
    return;
  struct tm tm;
  gmtime_r(&now, &tm);
  w->date_len = strftime(w->date_line, sizeof w->date_line, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
  w->date_sec = now;
}

/* ---- accessors ---------------------------------------------------------- */

struct http_request *http_request_of(struct http_exchange *ex) { return &ex->req; }
void *http_worker_data(struct http_exchange *ex) { return ex->conn->w->data; }
void http_set_head_length(struct http_exchange *ex, uint64_t n) {
  ex->head_length = n;
  ex->head_length_set = 1;
}
void http_set_reason(struct http_exchange *ex, const char *reason, size_t len) {
  ex->reason = reason;
  ex->reason_len = len;
}
uv_loop_t *http_loop(struct http_exchange *ex) { return &ex->conn->w->loop; }
struct arena *http_arena(struct http_exchange *ex) { return ex->arena; }
void http_set_filter_data(struct http_exchange *ex, const void *data) { ex->filter_data = data; }
const void *http_filter_data(struct http_exchange *ex) { return ex->filter_data; }
const struct http_limits *http_limits_of(struct http_exchange *ex) {
  return &ex->conn->w->server->cfg.http;
}

const char *http_header_get(const struct http_request *req, const char *name, size_t *len) {
  size_t n = strlen(name);
  for (unsigned i = 0; i < req->n_headers; i++) {
    const struct http_header *h = &req->headers[i];
    if (h->name_len == n && strncasecmp(h->name, name, n) == 0) {
      if (len)
        *len = h->value_len;
      return h->value;
    }
  }
  return NULL;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

/* Percent-decodes s into the arena; NULL on bad escapes or a decoded NUL. */
static const char *decode(struct arena *a, const char *s, size_t n, int plus_is_space) {
  char *out = arena_alloc(a, n + 1), *o = out;
  if (!out)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%') {
      if (i + 2 >= n)
        return NULL;
      int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
        return NULL;
      *o++ = (char)(hi << 4 | lo);
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      *o++ = ' ';
    } else {
      *o++ = s[i];
    }
  }
  *o = '\0';
  return out;
}

const char *http_param_get(struct http_exchange *ex, const char *name) {
  for (unsigned i = 0; i < ex->req.n_params; i++)
    if (strcmp(ex->req.params[i].name, name) == 0)
      return decode(ex->arena, ex->req.params[i].raw, ex->req.params[i].raw_len, 0);
  return NULL;
}

const char *http_query_get(struct http_exchange *ex, const char *name) {
  const char *q = ex->req.query, *end = q + ex->req.query_len;
  size_t nlen = strlen(name);
  while (q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    const char *pair_end = amp ? amp : end;
    const char *eq = memchr(q, '=', (size_t)(pair_end - q));
    const char *key_end = eq ? eq : pair_end;
    if ((size_t)(key_end - q) == nlen && memcmp(q, name, nlen) == 0) {
      const char *v = eq ? eq + 1 : pair_end;
      return decode(ex->arena, v, (size_t)(pair_end - v), 1);
    }
    q = pair_end + 1;
  }
  return NULL;
}

int http_add_header_n(struct http_exchange *ex, const char *name, size_t nl, const char *value,
                      size_t vl) {
  if (nl == 0 || memchr(name, '\r', nl) || memchr(name, '\n', nl) || memchr(name, ':', nl) ||
      memchr(value, '\r', vl) || memchr(value, '\n', vl))
    return -1;
  struct strbuf_view *h = &ex->extra_headers;
  size_t need = h->len + nl + vl + 4;
  if (need > h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 256;
    while (cap < need)
      cap *= 2;
    char *p = arena_grow(ex->arena, h->data, h->cap, cap);
    if (!p)
      return -1;
    h->data = p;
    h->cap = cap;
  }
  if (nl == 4 && strncasecmp(name, "date", 4) == 0)
    ex->date_set = 1; /* a proxy relays its origin's (RFC 9110 6.6.1) */
  memcpy(h->data + h->len, name, nl);
  h->len += nl;
  memcpy(h->data + h->len, ": ", 2);
  h->len += 2;
  memcpy(h->data + h->len, value, vl);
  h->len += vl;
  memcpy(h->data + h->len, "\r\n", 2);
  h->len += 2;
  return 0;
}

/* Appends raw bytes to an arena-backed view. */
static int view_append(struct http_exchange *ex, struct strbuf_view *v, const char *p, size_t n) {
  if (v->len + n > v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 128;
    while (cap < v->len + n)
      cap *= 2;
    char *d = arena_grow(ex->arena, v->data, v->cap, cap);
    if (!d)
      return -1;
    v->data = d;
    v->cap = cap;
  }
  memcpy(v->data + v->len, p, n);
  v->len += n;
  return 0;
}

void http_set_route(struct http_exchange *ex, const char *label, int metrics_id) {
  ex->route.pattern = label;
  ex->metrics_route = metrics_id;
}

/* Access-log members are only worth building when access lines are
 * written (level info): a proxy adds several to every request. */
int http_log_str(struct http_exchange *ex, const char *key, const char *value) {
  if (!log_enabled(LOG_INFO))
    return 0;
  struct strbuf sb;
  strbuf_init(&sb, 4096);
  log_put_str(&sb, key, value, strlen(value));
  int rc = sb.failed ? -1 : view_append(ex, &ex->log_fields, sb.data, sb.len);
  strbuf_free(&sb);
  return rc;
}

int http_log_u64(struct http_exchange *ex, const char *key, uint64_t value) {
  if (!log_enabled(LOG_INFO))
    return 0;
  char buf[96];
  size_t k = strlen(key);
  if (k + 28 > sizeof buf)
    return -1;
  buf[0] = ',';
  buf[1] = '"';
  memcpy(buf + 2, key, k);
  buf[k + 2] = '"';
  buf[k + 3] = ':';
  size_t n = k + 4 + u64_to_dec(buf + k + 4, value);
  return view_append(ex, &ex->log_fields, buf, n);
}

int http_add_header(struct http_exchange *ex, const char *name, const char *value) {
  return http_add_header_n(ex, name, strlen(name), value, strlen(value));
}

/* ---- writing ------------------------------------------------------------ */

static void on_write_done(uv_write_t *req, int status) {
  struct conn *c = req->data;
  free(c->wbuf);
  c->wbuf = NULL;
  if (status < 0 || c->state == CS_CLOSED) {
    conn_close(c);
    return;
  }
  conn_after_response(c);
}

static void write_out(struct conn *c, const char *data, size_t len) {
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  int n = stream_try_send((uv_stream_t *)&c->tcp, &b, 1);
  if (n == (int)len) {
    conn_after_response(c);
    return;
  }
  if (n < 0 && n != UV_EAGAIN) {
    conn_close(c);
    return;
  }
  if (n < 0)
    n = 0;
  size_t rest = len - (size_t)n;
  c->wbuf = malloc(rest);
  if (!c->wbuf) {
    conn_close(c);
    return;
  }
  memcpy(c->wbuf, data + n, rest);
  c->state = CS_WRITING;
  c->write_req.data = c;
  b = uv_buf_init(c->wbuf, (unsigned)rest);
  if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done) != 0) {
    free(c->wbuf);
    c->wbuf = NULL;
    conn_close(c);
    return;
  }
  conn_list_append(&c->w->body, c, uv_now(&c->w->loop));
}

/* reason: NULL for the phrase of our table. */
static void put_status_line(struct strbuf *sb, int status, const char *reason, size_t reason_len) {
  char line[64] = "HTTP/1.1 ";
  line[9] = (char)('0' + status / 100);
  line[10] = (char)('0' + status / 10 % 10);
  line[11] = (char)('0' + status % 10);
  line[12] = ' ';
  if (reason) {
    strbuf_append(sb, line, 13);
    strbuf_append(sb, reason, reason_len);
    strbuf_append(sb, "\r\n", 2);
    return;
  }
  const char *r = reason_phrase(status);
  size_t rl = strlen(r);
  memcpy(line + 13, r, rl);
  memcpy(line + 13 + rl, "\r\n", 2);
  strbuf_append(sb, line, 15 + rl);
}

/* ,"durationMs":<ms with ns precision>, without printf on the hot path. */
static void put_duration_ms(struct strbuf *sb, uint64_t ns) {
  char num[48];
  size_t n = u64_to_dec(num, ns / 1000000u);
  uint64_t frac = ns % 1000000u;
  num[n++] = '.';
  for (int i = 5; i >= 0; i--) {
    num[n + (size_t)i] = (char)('0' + frac % 10);
    frac /= 10;
  }
  n += 6;
  strbuf_append(sb, ",\"durationMs\":", 14);
  strbuf_append(sb, num, n);
}

static void access_log(struct conn *c, uint64_t dur_ns) {
  struct worker *w = c->w;
  struct http_exchange *ex = &c->ex;
  struct http_request *req = &ex->req;
  struct strbuf *sb = &w->log;
  log_line_begin(sb, LOG_INFO);
  strbuf_puts(sb, ",\"event\":\"request\"");
  if (req->request_id)
    log_put_str(sb, "requestId", req->request_id, req->request_id_len);
  if (req->trace.valid)
    log_put_str(sb, "traceId", req->trace.trace_id, 32);
  const char *method = req->method;
  if (!method && c->parser.method < 64 && ex->start_ns && c->url)
    method = llhttp_method_name((llhttp_method_t)c->parser.method);
  log_put_str(sb, "method", method ? method : "-", method ? strlen(method) : 1);
  if (req->path)
    log_put_str(sb, "path", req->path, req->path_len);
  else if (c->url)
    log_put_str(sb, "path", c->url, c->url_len > 1024 ? 1024 : c->url_len);
  else
    log_put_str(sb, "path", "-", 1);
  const char *route = ex->route.pattern && ex->metrics_route ? ex->route.pattern : "none";
  log_put_str(sb, "route", route, strlen(route));
  log_put_u64(sb, "status", (uint64_t)ex->status);
  put_duration_ms(sb, dur_ns);
  log_put_u64(sb, "bytesIn", ex->bytes_in);
  log_put_u64(sb, "bytesOut", ex->bytes_out);
  log_put_str(sb, "remote", c->remote, strlen(c->remote));
  if (ex->log_fields.len)
    strbuf_append(sb, ex->log_fields.data, ex->log_fields.len);
  log_line_end(sb);
  if (sb->len > 32768)
    log_flush(sb);
}

/* How a client finds the end of an answer's body. */
enum framing {
  FRAME_LENGTH = 0, /* Content-Length */
  FRAME_CHUNKED,    /* Transfer-Encoding: chunked */
  FRAME_NONE        /* no body (bodiless status, HEAD of unknown length) or close-delimited */
};

static int bodyless_status(int status) { return status < 200 || status == 204 || status == 304; }

/* The status line and header section of c's answer, into sb. */
static void put_head(struct conn *c, struct strbuf *sb, int status, const char *content_type,
                     enum framing framing, uint64_t len) {
  struct worker *w = c->w;
  struct http_exchange *ex = &c->ex;
  put_status_line(sb, status, ex->reason, ex->reason_len);
  if (!ex->date_set)
    strbuf_append(sb, w->date_line, w->date_len);
  if (content_type && !bodyless_status(status)) {
    strbuf_append(sb, "Content-Type: ", 14);
    strbuf_puts(sb, content_type);
    strbuf_append(sb, "\r\n", 2);
  }
  if (framing == FRAME_LENGTH) {
    char num[24];
    size_t nl = u64_to_dec(num, len);
    strbuf_append(sb, "Content-Length: ", 16);
    strbuf_append(sb, num, nl);
    strbuf_append(sb, "\r\n", 2);
  } else if (framing == FRAME_CHUNKED) {
    strbuf_append(sb, "Transfer-Encoding: chunked\r\n", 28);
  }
  if (ex->req.request_id) {
    strbuf_append(sb, "X-Request-Id: ", 14);
    strbuf_append(sb, ex->req.request_id, ex->req.request_id_len);
    strbuf_append(sb, "\r\n", 2);
  }
  if (c->close_after)
    strbuf_append(sb, "Connection: close\r\n", 19);
  else if (ex->req.version_minor == 0)
    strbuf_append(sb, "Connection: keep-alive\r\n", 24);
  if (ex->extra_headers.len)
    strbuf_append(sb, ex->extra_headers.data, ex->extra_headers.len);
  strbuf_append(sb, "\r\n", 2);
}

void response_account(struct conn *c) {
  struct worker *w = c->w;
  struct http_exchange *ex = &c->ex;
  if (!ex->status)
    ex->status = 499; /* no answer went out: the client left first (nginx's code) */
  uint64_t dur = ex->start_ns ? uv_hrtime() - ex->start_ns : 0;
  if (ex->in_flight) {
    metrics_in_flight_add(w->shard, -1);
    ex->in_flight = 0;
  }
  metrics_observe_request(w->shard, ex->metrics_route, ex->mmethod, ex->status, dur);
  if (log_enabled(LOG_INFO))
    access_log(c, dur);
}

void http_respond(struct http_exchange *ex, int status, const char *content_type,
                  const void *body, size_t len) {
  struct conn *c = ex->conn;
  struct worker *w = c->w;
  if (c->zombie) {
    conn_free(c); /* the client left while the handler worked */
    return;
  }
  if (c->state == CS_CLOSED) {
    ex->handler_done = 1; /* on_closed frees it */
    return;
  }
  if (ex->responded)
    return;
  ex->responded = 1;
  ex->handler_done = 1;
  ex->status = status;
  conn_end_body(c);
  if (!ex->keep_alive || w->draining || c->peer_eof)
    c->close_after = 1;

  struct strbuf *sb = &w->out;
  strbuf_clear(sb);
  int bodyless = bodyless_status(status);
  /* a HEAD whose GET length nobody knows (a proxied chunked answer) gets
   * no Content-Length rather than a wrong one (RFC 9110 8.6) */
  int unknown = ex->head && ex->head_length_set && ex->head_length == HTTP_LENGTH_UNKNOWN;
  put_head(c, sb, status, content_type, bodyless || unknown ? FRAME_NONE : FRAME_LENGTH,
           ex->head && ex->head_length_set ? ex->head_length : len);
  if (!ex->head && !bodyless && len)
    strbuf_append(sb, body, len);
  if (sb->failed) {
    conn_close(c);
    return;
  }
  ex->bytes_out = sb->len;
  response_account(c);
  write_out(c, sb->data, sb->len);
}

/* ---- streamed answers (http.h, "Streaming") ----------------------------- */

/* Writes the corked head, if any, then b[1 .. n) (b[0] is the head's
 * slot). Returns writeq_write()'s result; a failure closes the connection. */
static int stream_out(struct conn *c, uv_buf_t *b, unsigned n) {
  struct http_exchange *ex = &c->ex;
  unsigned first = 1;
  if (ex->corked) {
    b[0] = uv_buf_init((char *)ex->corked, (unsigned)ex->corked_len);
    ex->corked = NULL;
    first = 0;
  }
  if (first == n)
    return 0;
  for (unsigned i = first; i < n; i++)
    ex->bytes_out += b[i].len;
  int r = writeq_write(&c->wq, b + first, n - first);
  if (r < 0) {
    conn_close(c); /* on_error follows */
    return -1;
  }
  if (r == 1)
    conn_deadline(c, 1);
  return r;
}

void response_uncork(struct conn *c) {
  uv_buf_t b[1];
  if (c->ex.corked && c->state != CS_CLOSED)
    stream_out(c, b, 1);
}

void response_fire_error(struct conn *c, int err) {
  struct http_exchange *ex = &c->ex;
  if (ex->error_fired || ex->handler_done || !ex->cbs || !ex->cbs->on_error)
    return;
  ex->error_fired = 1;
  ex->cbs->on_error(ex, err, ex->cbs_arg);
}

void response_on_written(struct writeq *q, int status) {
  struct conn *c = q->data;
  struct http_exchange *ex = &c->ex;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->state == CS_CLOSED)
    return;
  conn_deadline(c, 1);
  if (writeq_queued(q))
    return;
  if (c->state == CS_WRITING && ex->handler_done && !c->wbuf) {
    conn_after_response(c);
    return;
  }
  if (ex->drain_wanted && !ex->handler_done) {
    ex->drain_wanted = 0;
    if (ex->cbs && ex->cbs->on_drain)
      ex->cbs->on_drain(ex, ex->cbs_arg);
  }
}

int http_send_interim(struct http_exchange *ex, int status, const char *fields, size_t len) {
  struct conn *c = ex->conn;
  /* An HTTP/1.0 client must not get one (RFC 9110 15.2); after the final
   * head it would be taken for a body; with bytes still queued it could
   * overtake them. Then it is left out: it only informs. */
  if (status < 100 || status > 199 || status == 101 || ex->req.version_minor == 0 ||
      c->zombie || c->state == CS_CLOSED || ex->responded || writeq_queued(&c->wq))
    return -1;
  struct strbuf *sb = &c->w->out;
  strbuf_clear(sb);
  put_status_line(sb, status, NULL, 0);
  strbuf_append(sb, fields, len);
  strbuf_puts(sb, "\r\n");
  if (sb->failed)
    return -1;
  uv_buf_t b = uv_buf_init(sb->data, (unsigned)sb->len);
  if (writeq_write(&c->wq, &b, 1) < 0) {
    conn_close(c);
    return -1;
  }
  return 0;
}

int http_stream_start(struct http_exchange *ex, int status, const char *content_type,
                      int64_t length) {
  struct conn *c = ex->conn;
  struct worker *w = c->w;
  if (c->zombie || c->state == CS_CLOSED || ex->responded || ex->handler_done)
    return -1;
  ex->responded = 1;
  ex->status = status;
  ex->stream_resp = 1;
  ex->resp_left = -1;
  if (!ex->keep_alive || w->draining || c->peer_eof)
    c->close_after = 1;
  enum framing framing = FRAME_NONE;
  uint64_t len = 0;
  if (bodyless_status(status)) {
    ex->resp_discard = 1;
  } else if (ex->head) {
    ex->resp_discard = 1;
    if (ex->head_length_set && ex->head_length == HTTP_LENGTH_UNKNOWN) {
      /* no framing: the GET's length is unknown */
    } else if (ex->head_length_set || length >= 0) {
      framing = FRAME_LENGTH;
      len = ex->head_length_set ? ex->head_length : (uint64_t)length;
    }
  } else if (length >= 0) {
    framing = FRAME_LENGTH;
    len = (uint64_t)length;
    ex->resp_left = length;
  } else if (ex->req.version_minor >= 1) {
    framing = FRAME_CHUNKED;
    ex->resp_chunked = 1;
  } else {
    c->close_after = 1; /* HTTP/1.0: the body ends where the connection does */
  }
  struct strbuf *sb = &w->out;
  strbuf_clear(sb);
  put_head(c, sb, status, content_type, framing, len);
  char *head = sb->failed ? NULL : arena_alloc(ex->arena, sb->len);
  if (!head) {
    conn_close(c);
    return -1;
  }
  memcpy(head, sb->data, sb->len);
  ex->corked = head;
  ex->corked_len = sb->len;
  conn_kick(c); /* the head leaves at the end of this loop turn at the latest */
  return 0;
}

int http_stream_write(struct http_exchange *ex, const void *data, size_t len) {
  struct conn *c = ex->conn;
  if (!ex->stream_resp || ex->handler_done || c->state == CS_CLOSED || c->zombie)
    return -1;
  if (ex->resp_left >= 0 && (uint64_t)len > (uint64_t)ex->resp_left)
    len = (size_t)ex->resp_left;
  if (ex->resp_discard || len == 0)
    return 0;
  if (ex->resp_left >= 0)
    ex->resp_left -= (int64_t)len;
  uv_buf_t b[4];
  unsigned n = 1;
  char size_line[24];
  if (ex->resp_chunked) {
    static const char hexd[] = "0123456789abcdef";
    char tmp[16];
    size_t m = 0, k = 0;
    for (size_t v = len; v; v >>= 4)
      tmp[m++] = hexd[v & 15];
    while (m)
      size_line[k++] = tmp[--m];
    size_line[k++] = '\r';
    size_line[k++] = '\n';
    b[n++] = uv_buf_init(size_line, (unsigned)k);
  }
  b[n++] = uv_buf_init((char *)data, (unsigned)len);
  if (ex->resp_chunked)
    b[n++] = uv_buf_init((char *)"\r\n", 2);
  int r = stream_out(c, b, n);
  if (r == 1)
    ex->drain_wanted = 1;
  return r;
}

size_t http_headers_mark(const struct http_exchange *ex) { return ex->extra_headers.len; }

int http_stream_retract(struct http_exchange *ex, size_t mark) {
  if (!ex->stream_resp || !ex->corked || ex->bytes_out || ex->handler_done ||
      mark > ex->extra_headers.len)
    return -1;
  ex->responded = 0;
  ex->stream_resp = 0;
  ex->status = 0;
  ex->reason = NULL;
  ex->date_set = 0; /* a relayed Date came after the mark */
  ex->corked = NULL;
  ex->resp_chunked = ex->resp_discard = 0;
  ex->resp_left = -1;
  ex->extra_headers.len = mark;
  return 0;
}

/* The handler's final call on a connection that is closed already: the
 * exchange is accounted and a zombie freed. Returns 1 then. */
static int final_on_gone(struct conn *c) {
  if (!c->zombie && c->state != CS_CLOSED)
    return 0;
  c->ex.handler_done = 1;
  response_account(c);
  if (c->zombie)
    conn_free(c);
  return 1;
}

void http_abort(struct http_exchange *ex, int err) {
  struct conn *c = ex->conn;
  if (ex->handler_done)
    return;
  if (!ex->responded && !c->zombie && c->state != CS_CLOSED) {
    c->close_after = 1;
    http_respond_error(ex, err, NULL, NULL);
    return;
  }
  http_log_str(ex, "aborted", strata_error_code(err));
  if (final_on_gone(c))
    return;
  /* Part of an answer went out: only a cut connection tells the client
   * it is incomplete (no terminating chunk, a short Content-Length). */
  ex->handler_done = 1;
  response_account(c);
  conn_close(c);
}

void http_stream_end(struct http_exchange *ex) {
  struct conn *c = ex->conn;
  if (ex->handler_done)
    return;
  if (!ex->stream_resp || ex->resp_left > 0) {
    http_abort(ex, STRATA_EINTERNAL);
    return;
  }
  if (final_on_gone(c))
    return;
  ex->handler_done = 1;
  conn_end_body(c);
  uv_buf_t b[2];
  unsigned n = 1;
  if (ex->resp_chunked)
    b[n++] = uv_buf_init((char *)"0\r\n\r\n", 5);
  int r = stream_out(c, b, n);
  response_account(c);
  if (r < 0)
    return; /* closed: on_closed frees it */
  if (writeq_queued(&c->wq)) {
    c->state = CS_WRITING; /* response_on_written() finishes */
    conn_deadline(c, 1);
    return;
  }
  conn_after_response(c);
}

void http_error_json(struct strbuf *sb, int err, const char *message, const char *field,
                     const char *request_id, size_t request_id_len) {
  strbuf_puts(sb, "{\"error\":{\"code\":\"");
  strbuf_puts(sb, strata_error_code(err));
  strbuf_puts(sb, "\",\"message\":\"");
  const char *m = message ? message : strata_error_message(err);
  strbuf_put_json_string(sb, m, strlen(m));
  strbuf_putc(sb, '"');
  if (field) {
    strbuf_puts(sb, ",\"field\":\"");
    strbuf_put_json_string(sb, field, strlen(field));
    strbuf_putc(sb, '"');
  }
  if (request_id) {
    strbuf_puts(sb, ",\"requestId\":\"");
    strbuf_append(sb, request_id, request_id_len);
    strbuf_putc(sb, '"');
  }
  strbuf_puts(sb, "}}");
}

void http_respond_error(struct http_exchange *ex, int err, const char *message, const char *field) {
  struct worker *w = ex->conn->w;
  if (!ex->req.request_id) {
    /* An error before the headers were read: make an id now. */
    snprintf(ex->request_id_buf, sizeof ex->request_id_buf, "%s%llx", w->reqid_prefix,
             (unsigned long long)++w->reqid_counter);
    ex->req.request_id = ex->request_id_buf;
    ex->req.request_id_len = strlen(ex->request_id_buf);
  }
  struct strbuf *body = &w->err_body;
  strbuf_clear(body);
  http_error_json(body, err, message, field, ex->req.request_id, ex->req.request_id_len);
  if (body->failed) {
    conn_close(ex->conn);
    return;
  }
  http_respond(ex, strata_error_status(err), "application/json", body->data, body->len);
}

void response_send_raw_error(struct conn *c, int err, const char *message) {
  c->state = CS_HANDLING;
  c->close_after = 1;
  c->ex.start_ns = uv_hrtime();
  http_respond_error(&c->ex, err, message, NULL);
}
