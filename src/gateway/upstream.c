/* Upstream client and keep-alive pools; see upstream.h.
 *
 * NOTES ON THE DESIGN
 *
 *   new conn: CONNECTING --connected--> SENDING --head written--> WAITING
 *   idle conn (reused) ----------------^                            |
 *                          response complete, keep-alive, request   |
 *                          written whole                            |
 *   IDLE <----------------------------------------------------------+
 *     | EOF or stray bytes while idle: closed
 *   any error, timeout, cancel, no keep-alive: CLOSED
 *
 * - A call owns at most one connection; finish() detaches it and either
 *   parks it in the host's idle list or closes it. Only finish() calls the
 *   terminal callback, and only from libuv callbacks (or, for a buffered
 *   call, upstream_cancel()). A connection is parked only when its request
 *   went out whole: an answer that came before the end of a streamed body
 *   leaves the connection unusable.
 * - A streaming call writes body pieces through the connection's writeq
 *   (copies only what the socket does not take) after the head, in order;
 *   on_drain says when to write more. Response pieces go to on_data from
 *   inside llhttp's on_body, straight from the read buffer; pausing stops
 *   the socket reads (the rest of the current read is still delivered).
 * - Idle connections keep reading: an upstream that closes one is noticed
 *   at once instead of on the next request.
 * - Timeouts: one timer per connection. It covers connect (connect
 *   timeout), then the per-try timeout until the response head, except
 *   that while a streamed request body waits on the caller (nothing queued
 *   for the upstream) it is off, while body bytes wait for the upstream to
 *   read them it runs and restarts on progress, and upstream_stream_end()
 *   restarts it for the wait for the head. Once the head is in, the idle
 *   timeout runs between pieces (off while the caller paused reading). A
 *   synchronous failure (connect, write) is reported through the same
 *   timer at 0 ms (fail_now), so no callback runs inside the call that
 *   caused it. */
#include "gateway/upstream.h"

#include <llhttp.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/busypoll.h"
#include "http/chunkline.h"
#include "http/trysend.h"
#include "http/writeq.h"

enum uconn_state {
  UC_CONNECTING = 0, /* TCP connect in progress */
  UC_SENDING,        /* request being written */
  UC_WAITING,        /* reading the response */
  UC_IDLE,           /* parked, keep-alive */
  UC_CLOSED          /* uv_close called */
};

struct upstream_conn {
  uv_tcp_t tcp; /* first: handle pointer == conn pointer */
  uv_timer_t timer;
  uv_connect_t connect_req;
  uv_write_t write_req;
  struct writeq wq; /* streamed request body pieces */
  struct upstream_host *host;
  struct upstream_conn *next_idle;
  struct upstream_call *call;
  llhttp_t parser;
  enum uconn_state state;
  int reused;
  int got_bytes;
  int fail_now; /* the timer reports a synchronous failure */
  int in_head;  /* still reading a header section: bare LFs are refused */
  int reading;  /* uv_read_start'ed: reads stay on between calls (an idle
                 * connection's close is noticed), and every start or stop
                 * costs epoll_ctl calls */
  const char *read_start; /* the buffer llhttp is running over */
  int at_chunk_line;      /* llhttp paused before a chunk-size line */
  struct chunkline_buf chunk_line; /* one split across reads */
  char prev, prev2; /* the last two bytes before this read, for that check */
  int closing_handles;
};

struct upstream_call {
  struct upstream_host *host;
  struct upstream_conn *conn;
  char *request;
  size_t len;
  int head;
  uint32_t timeout_ms;
  size_t max_body;
  struct arena *a;
  upstream_done_cb cb;
  void *arg;
  struct upstream_response resp;
  unsigned headers_cap;
  char *field, *value;
  size_t field_len, value_len;
  int value_spans;   /* on_header_value calls for the current value */
  int chunked_seen;  /* a Transfer-Encoding named chunked */
  int interim_close; /* an interim answer said Connection: close */
  size_t head_bytes; /* of the header section being read */
  size_t body_cap;
  int complete;
  uint64_t started; /* uv_now() at upstream_request() */
  const struct upstream_stream_cbs *scb; /* NULL: a buffered call (cb) */
  int body_follows;  /* the caller writes a body after the head */
  int req_done;      /* ... and has said it is complete */
  int mode;          /* enum upstream_body_mode of the response */
  int head_seen;     /* on_head ran */
  int paused;        /* the caller stopped reading */
  uint32_t idle_timeout_ms;
};

struct upstream_host {
  uv_loop_t *loop;
  char name[300];
  struct sockaddr_storage addr;
  socklen_t addr_len;
  int addr_ok;
  struct upstream_conn *idle;
  unsigned n_idle, max_idle, n_active;
  uint32_t connect_timeout_ms;
  int freeing;
  unsigned open_conns;
};

static llhttp_settings_t settings;
static uv_once_t settings_once = UV_ONCE_INIT;

const char *upstream_result_name(int rc) {
  switch (rc) {
  case UPSTREAM_OK: return "ok";
  case UPSTREAM_ECONNECT: return "connect_failure";
  case UPSTREAM_ESTALE: return "stale_connection";
  case UPSTREAM_ERESET: return "reset";
  case UPSTREAM_ETIMEOUT: return "timeout";
  case UPSTREAM_EPROTO: return "bad_response";
  default: return "canceled";
  }
}

enum retry_cause upstream_retry_cause(int rc) {
  switch (rc) {
  case UPSTREAM_ECONNECT: return RETRY_CAUSE_CONNECT_FAILURE;
  case UPSTREAM_ETIMEOUT: return RETRY_CAUSE_TIMEOUT;
  case UPSTREAM_OK: return RETRY_CAUSE_STATUS;
  default: return RETRY_CAUSE_RESET;
  }
}

/* ---- connection lifecycle ------------------------------------------------ */

static void on_conn_handle_closed(uv_handle_t *h) {
  struct upstream_conn *c = h->type == UV_TCP ? (struct upstream_conn *)h : h->data;
  if (--c->closing_handles > 0)
    return;
  struct upstream_host *host = c->host;
  writeq_release(&c->wq);
  chunkline_buf_free(&c->chunk_line);
  free(c);
  host->open_conns--;
  if (host->freeing && host->open_conns == 0)
    free(host);
}

static void idle_remove(struct upstream_conn *c) {
  struct upstream_host *h = c->host;
  for (struct upstream_conn **p = &h->idle; *p; p = &(*p)->next_idle)
    if (*p == c) {
      *p = c->next_idle;
      h->n_idle--;
      return;
    }
}

static void conn_close(struct upstream_conn *c) {
  if (c->state == UC_CLOSED)
    return;
  if (c->state == UC_IDLE)
    idle_remove(c);
  c->state = UC_CLOSED;
  c->closing_handles = 2;
  uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
/* Every read is parsed (and what is kept copied to the call's arena) before
 * the loop reads again, so one buffer per thread serves all connections. */
static _Thread_local char read_buf[65536];

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  buf->base = read_buf;
  buf->len = sizeof read_buf;
}

static void on_timer(uv_timer_t *t);

static int read_on(struct upstream_conn *c) {
  if (c->reading)
    return 0;
  int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  c->reading = rc == 0;
  return rc;
}

static void read_off(struct upstream_conn *c) {
  if (c->reading)
    uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = 0;
}

/* The connection's timer, unless a synchronous failure is being reported
 * through it (fail_now), which nothing may delay. */
static void arm(struct upstream_conn *c, uint32_t ms) {
  if (!c->fail_now)
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void disarm(struct upstream_conn *c) {
  if (!c->fail_now)
    uv_timer_stop(&c->timer);
}

/* Ends the call: detaches and parks or closes the connection, then the
 * terminal callback. */
static void finish(struct upstream_call *call, int rc) {
  struct upstream_conn *c = call->conn;
  struct upstream_host *h = call->host;
  call->conn = NULL;
  h->n_active--;
  if (c) {
    c->call = NULL;
    uv_timer_stop(&c->timer);
    int reusable = rc == UPSTREAM_OK && llhttp_should_keep_alive(&c->parser) &&
                   !call->interim_close && !h->freeing &&
                   h->n_idle < h->max_idle && c->state == UC_WAITING &&
                   (!call->body_follows || call->req_done) && !writeq_queued(&c->wq);
    if (reusable) {
      writeq_release(&c->wq);
      llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
      c->at_chunk_line = 0;
      chunkline_buf_free(&c->chunk_line); /* rarely used: not kept while parked */
      c->state = UC_IDLE;
      c->next_idle = h->idle;
      h->idle = c;
      h->n_idle++;
      read_on(c); /* parked: on_read closes it if the upstream does */
      /* A parked connection must not keep the worker's loop alive: a
       * draining worker ends when its clients are gone. */
      uv_unref((uv_handle_t *)&c->tcp);
      uv_unref((uv_handle_t *)&c->timer);
    } else {
      conn_close(c);
    }
  }
  if (!call->scb)
    call->cb(rc, rc == UPSTREAM_OK ? &call->resp : NULL, call->arg);
  else if (rc == UPSTREAM_OK)
    call->scb->on_end(&call->resp, call->arg);
  else
    call->scb->on_error(rc, call->arg);
}

/* ---- response parsing ----------------------------------------------------- */

#define CALL(p) (((struct upstream_conn *)(p)->data)->call)

static int grow_append(struct arena *a, char **buf, size_t *len, const char *at, size_t n) {
  char *g = arena_grow(a, *buf, *len + (*buf ? 1 : 0), *len + n + 1);
  if (!g)
    return -1;
  memcpy(g + *len, at, n);
  *len += n;
  g[*len] = '\0';
  *buf = g;
  return 0;
}

/* A header section larger than this is a 502, as a request's is a 431. */
#define UPSTREAM_MAX_HEAD (64 * 1024)

static int count_head(struct upstream_call *call, size_t n) {
  call->head_bytes += n;
  return call->head_bytes > UPSTREAM_MAX_HEAD ? -1 : 0;
}

/* A span of a field name or of the reason phrase, both gathered in
 * call->field (the phrase is taken out of it before the first field). */
static int on_field_span(llhttp_t *p, const char *at, size_t n) {
  struct upstream_call *call = CALL(p);
  return call && count_head(call, n) == 0 &&
                 grow_append(call->a, &call->field, &call->field_len, at, n) == 0
             ? 0
             : -1;
}

static int on_status_complete(llhttp_t *p) {
  struct upstream_call *call = CALL(p);
  if (!call)
    return -1;
  /* RFC 9112 4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ) */
  for (size_t i = 0; i < call->field_len; i++) {
    unsigned char ch = (unsigned char)call->field[i];
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
      return -1;
  }
  call->resp.reason = call->field ? call->field : "";
  call->resp.reason_len = call->field_len;
  call->field = NULL;
  call->field_len = 0;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  struct upstream_call *call = CALL(p);
  struct upstream_conn *c = p->data;
  if (!call || n == 0)
    return call ? 0 : -1;
  /* obs-fold, refused as in requests (RFC 9112 5.2): llhttp hands a folded
   * line over as another span of the value, or, after an empty value, as a
   * first span that begins right after "LF SP". */
  if (call->value_spans++ && at != c->read_start)
    return -1;
  if (count_head(call, n) != 0)
    return -1;
  if (call->value_spans == 1) {
    const char *q = at;
    while (q > c->read_start && (q[-1] == ' ' || q[-1] == '\t'))
      q--;
    if (q > c->read_start && q[-1] == '\n')
      return -1;
  }
  return grow_append(call->a, &call->value, &call->value_len, at, n) == 0 ? 0 : -1;
}

static int on_header_value_complete(llhttp_t *p) {
  struct upstream_call *call = CALL(p);
  if (!call)
    return -1;
  struct upstream_response *r = &call->resp;
  const char *v = call->value ? call->value : "";
  size_t vlen = call->value_len;
  call->value_spans = 0;
  if (call->field_len == 17 && strncasecmp(call->field, "transfer-encoding", 17) == 0) {
    /* Only "chunked", once (RFC 9112 6.1): the gateway decodes no other
     * coding, and relaying gzip bytes re-chunked without it would hand the
     * client a body it cannot read. */
    const char *a = v, *b = v + vlen;
    while (a < b && (*a == ' ' || *a == '\t'))
      a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
      b--;
    if (b - a != 7 || strncasecmp(a, "chunked", 7) != 0 || call->chunked_seen++)
      return -1;
  }
  if (memchr(v, '\r', vlen) || memchr(v, '\n', vlen) || memchr(v, '\0', vlen))
    return -1; /* folded or broken header line */
  if (call->field_len == 0 || r->n_headers >= 200)
    return -1;
  while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
    vlen--;
  if (r->n_headers == call->headers_cap) {
    unsigned cap = call->headers_cap ? call->headers_cap * 2 : 16;
    struct http_header *hs = arena_grow(call->a, r->headers, call->headers_cap * sizeof *hs,
                                        cap * sizeof *hs);
    if (!hs)
      return -1;
    r->headers = hs;
    call->headers_cap = cap;
  }
  struct http_header *h = &r->headers[r->n_headers++];
  h->name = call->field;
  h->name_len = call->field_len;
  h->value = v;
  h->value_len = vlen;
  call->field = call->value = NULL;
  call->field_len = call->value_len = 0;
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  struct upstream_call *call = CALL(p);
  if (!call || p->http_major != 1)
    return -1; /* an HTTP/1.1 client talks to HTTP/1.x servers only */
  struct upstream_conn *c = p->data;
  c->in_head = 0;
  /* RFC 9110 15: three digits from 100 to 599; 101 only answers an
   * Upgrade, and the gateway sends none (hop-by-hop). */
  if (p->status_code < 100 || p->status_code > 599 || p->status_code == 101)
    return -1;
  call->resp.status = p->status_code;
  if (p->flags & F_CONTENT_LENGTH) {
    call->resp.has_content_length = 1;
    call->resp.content_length = p->content_length;
  }
  if (call->scb && p->status_code >= 200 && !call->head_seen) {
    call->head_seen = 1;
    call->mode = call->scb->on_head(&call->resp, call->arg);
    if (call->mode == UPSTREAM_BODY_STREAM)
      arm(c, call->idle_timeout_ms);
    else if (!uv_is_active((uv_handle_t *)&c->timer))
      arm(c, call->timeout_ms); /* a whole answer: the try's timeout again */
  }
  /* An interim answer ends at its empty line, whatever its fields say
   * (RFC 9112 6.3, rule 1). Its Connection: close must not end the parse
   * before the final answer; the connection is closed after that one. */
  if (p->status_code < 200) {
    /* what it says of the connection is honoured once the final answer is
     * in; llhttp must read on to that (an HTTP/1.0 one without keep-alive
     * would end the parse too) */
    call->interim_close |= !llhttp_should_keep_alive(p);
    p->flags = (uint16_t)((p->flags & ~(unsigned)F_CONNECTION_CLOSE) | F_CONNECTION_KEEP_ALIVE);
    return 1;
  }
  /* The answer to a HEAD, and a 204 or 304, has headers only, whatever
   * they announce (RFC 9112 6.3: a 304 may carry its GET's length). */
  if (call->head || p->status_code == 204 || p->status_code == 304)
    return 1;
  if (call->mode == UPSTREAM_BODY_BUFFER && call->resp.has_content_length &&
      p->content_length > call->max_body)
    return -1;
  if (p->flags & F_CHUNKED) {
    c->at_chunk_line = 1; /* feed() reduces the first chunk-size line */
    return HPE_PAUSED;
  }
  return 0;
}

/* A chunk's data is in: the next chunk-size line follows (unless that was
 * the last chunk, whose trailer section is behind it now). */
static int on_chunk_complete(llhttp_t *p) {
  if (p->flags & F_TRAILING)
    return 0;
  ((struct upstream_conn *)p->data)->at_chunk_line = 1;
  return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  struct upstream_call *call = CALL(p);
  if (call && call->mode == UPSTREAM_BODY_STREAM) {
    call->scb->on_data(at, n, call->arg);
    if (!call->paused)
      arm(p->data, call->idle_timeout_ms);
    return 0;
  }
  if (!call || call->resp.body_len + n > call->max_body)
    return -1;
  struct upstream_response *r = &call->resp;
  if (r->body_len + n + 1 > call->body_cap) {
    size_t cap = call->body_cap ? call->body_cap * 2 : 4096;
    while (cap < r->body_len + n + 1)
      cap *= 2;
    char *b = arena_grow(call->a, (char *)r->body, call->body_cap, cap);
    if (!b)
      return -1;
    r->body = b;
    call->body_cap = cap;
  }
  memcpy((char *)r->body + r->body_len, at, n);
  r->body_len += n;
  ((char *)r->body)[r->body_len] = '\0';
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  struct upstream_call *call = CALL(p);
  if (!call)
    return -1;
  int status = p->status_code;
  if (status >= 100 && status < 200 && status != 101) {
    /* an interim answer (100 Continue, 103): the real one follows */
    if (call->scb && call->scb->on_interim)
      call->scb->on_interim(&call->resp, call->arg);
    memset(&call->resp, 0, sizeof call->resp);
    call->headers_cap = 0;
    call->body_cap = 0;
    call->chunked_seen = 0;
    call->head_bytes = 0;
    ((struct upstream_conn *)p->data)->in_head = 1;
    return 0;
  }
  call->complete = 1;
  return HPE_PAUSED;
}

static void init_settings(void) {
  llhttp_settings_init(&settings);
  settings.on_status = on_field_span;
  settings.on_status_complete = on_status_complete;
  settings.on_header_field = on_field_span;
  settings.on_header_value = on_header_value;
  settings.on_header_value_complete = on_header_value_complete;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_chunk_complete = on_chunk_complete;
  settings.on_message_complete = on_message_complete;
}

enum feed_result { FEED_MORE, FEED_COMPLETE, FEED_TRAILING, FEED_ERROR, FEED_GONE };

static llhttp_errno_t run(struct upstream_conn *c, const char *data, size_t len) {
  c->read_start = data;
  return llhttp_execute(&c->parser, data, len);
}

/* Takes the chunk-size line at *data through chunkline_take() into llhttp;
 * *data moves past what was used. Returns llhttp's result, HPE_OK also when
 * the line waits for the next read (*data == end then), HPE_USER for a
 * malformed line. */
static llhttp_errno_t feed_chunk_line(struct upstream_conn *c, const char **data,
                                      const char *end) {
  char out[CHUNKLINE_OUT_MAX];
  size_t out_len = 0, left = (size_t)(end - *data);
  int r = chunkline_take(&c->chunk_line, data, &left, out, &out_len);
  if (r <= 0)
    return r == 0 ? HPE_OK : HPE_USER;
  c->at_chunk_line = 0;
  return run(c, out, out_len);
}

/* Runs llhttp over a read, every chunk-size line through feed_chunk_line().
 * FEED_COMPLETE / FEED_TRAILING: the response is in (with bytes after it);
 * FEED_MORE: all taken, read on; FEED_GONE: a callback ended the call. */
static enum feed_result feed(struct upstream_conn *c, struct upstream_call *call,
                             const char *data, size_t len) {
  const char *end = data + len;
  for (;;) {
    llhttp_errno_t e = HPE_OK;
    if (c->at_chunk_line)
      e = feed_chunk_line(c, &data, end);
    if (e == HPE_OK && !c->at_chunk_line) {
      if (data == end)
        return FEED_MORE;
      e = run(c, data, (size_t)(end - data));
    }
    if (c->call != call)
      return FEED_GONE;
    if (e == HPE_OK) {
      if (!c->at_chunk_line || data == end)
        return FEED_MORE;
      continue; /* the line waits in c->chunk_line; nothing is left */
    }
    if (e != HPE_PAUSED)
      return FEED_ERROR;
    if (call->complete)
      return llhttp_get_error_pos(&c->parser) < end && c->read_start == data ? FEED_TRAILING
                                                                             : FEED_COMPLETE;
    /* paused before a chunk-size line */
    const char *pos = llhttp_get_error_pos(&c->parser);
    llhttp_resume(&c->parser);
    if (c->read_start == data)
      data = pos;
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct upstream_conn *c = (struct upstream_conn *)s;
  struct upstream_call *call = c->call;
  busypoll_note();
  if (!call) { /* parked */
    if (nread != 0)
      conn_close(c); /* closed by the upstream, or bytes nobody asked for */
    return;
  }
  if (nread > 0) {
    c->got_bytes = 1;
    if (c->in_head) {
      /* A header section ends its lines with CRLF; a bare LF is refused as
       * it is in requests. The section ends at the empty line. */
      /* Look only at line ends: every LF must follow a CR; an LF whose line
       * was empty (the byte before its CR is an LF) ends the section. */
      const char *b = buf->base, *end = b + nread, *p = b;
      while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        if (!lf)
          break;
        char before = lf - b >= 1 ? lf[-1] : c->prev;
        char two_before = lf - b >= 2 ? lf[-2] : lf - b == 1 ? c->prev : c->prev2;
        if (before != '\r')
          goto bare_lf;
        if (two_before == '\n') {
          c->in_head = 0; /* the body may hold anything */
          break;
        }
        p = lf + 1;
      }
      if (nread >= 2) {
        c->prev2 = end[-2];
        c->prev = end[-1];
      } else {
        c->prev2 = c->prev;
        c->prev = end[-1];
      }
      if (0) {
      bare_lf:
        conn_close(c);
        finish(call, UPSTREAM_EPROTO);
        return;
      }
    }
    switch (feed(c, call, buf->base, (size_t)nread)) {
    case FEED_MORE:
    case FEED_GONE: /* cancelled from a callback */
      return;
    case FEED_TRAILING:
      conn_close(c); /* bytes after the response: the connection is not to be trusted */
      /* fall through */
    case FEED_COMPLETE:
      finish(call, UPSTREAM_OK);
      return;
    case FEED_ERROR:
      conn_close(c);
      finish(call, UPSTREAM_EPROTO);
      return;
    }
    return;
  }
  if (nread == 0)
    return;
  /* EOF or error */
  llhttp_errno_t fin;
  if (nread == UV_EOF && c->got_bytes &&
      ((fin = llhttp_finish(&c->parser)) == HPE_OK || fin == HPE_PAUSED) && call->complete) {
    conn_close(c); /* a body delimited by close */
    finish(call, UPSTREAM_OK);
    return;
  }
  int rc = !c->got_bytes && c->reused ? UPSTREAM_ESTALE
           : c->got_bytes && nread == UV_EOF ? UPSTREAM_EPROTO /* truncated response */
                                             : UPSTREAM_ERESET;
  conn_close(c);
  finish(call, rc);
}

/* ---- sending ---------------------------------------------------------- */

static void on_written(uv_write_t *req, int status) {
  struct upstream_conn *c = req->data;
  struct upstream_call *call = c->call;
  if (!call || c->state == UC_CLOSED)
    return;
  if (status < 0) {
    int rc = c->reused ? UPSTREAM_ESTALE : UPSTREAM_ERESET;
    conn_close(c);
    finish(call, rc);
    return;
  }
  c->state = UC_WAITING;
  if (call->scb && call->body_follows && !call->req_done) {
    if (!call->head_seen)
      disarm(c); /* the body is the caller's to bring now */
    call->scb->on_drain(call->arg);
  }
}

/* A queued piece of a streamed request body went out (or failed). */
static void on_body_written(struct writeq *q, int status) {
  struct upstream_conn *c = q->data;
  struct upstream_call *call = c->call;
  if (c->state == UC_CLOSED || !call)
    return;
  if (status < 0) {
    int rc = !c->got_bytes && c->reused ? UPSTREAM_ESTALE : UPSTREAM_ERESET;
    conn_close(c);
    finish(call, rc);
    return;
  }
  int more = writeq_queued(q) > 0;
  if (call->head_seen) {
    if (call->mode == UPSTREAM_BODY_STREAM && !call->paused)
      arm(c, call->idle_timeout_ms);
  } else if (more || call->req_done) {
    arm(c, call->timeout_ms); /* progress: the upstream reads */
  } else {
    disarm(c);
  }
  if (!more && !call->req_done)
    call->scb->on_drain(call->arg);
}

static void send_request(struct upstream_conn *c) {
  struct upstream_call *call = c->call;
  c->state = UC_SENDING;
  c->wq.error = 0;
  c->got_bytes = 0;
  c->in_head = 1;
  c->prev = c->prev2 = '\0';
  c->write_req.data = c;
  uv_buf_t b = uv_buf_init(call->request, (unsigned)call->len);
  int failed = read_on(c) != 0;
  if (!failed && !(call->scb && call->body_follows && !call->req_done)) {
    /* A whole request usually fits the socket at once: written here, it
     * costs no write request and no POLLOUT round (epoll_ctl calls). */
    int n = stream_try_send((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)b.len) {
      c->state = UC_WAITING;
      return;
    }
    if (n > 0) {
      b.base += n;
      b.len -= (unsigned)n;
    } else if (n != UV_EAGAIN) {
      failed = 1;
    }
  }
  if (failed || uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
    c->fail_now = c->reused ? UPSTREAM_ESTALE : UPSTREAM_ERESET; /* the caller reports it */
}

static void on_timer(uv_timer_t *t) {
  struct upstream_conn *c = t->data;
  struct upstream_call *call = c->call;
  if (!call)
    return;
  int rc = c->fail_now ? c->fail_now : c->state == UC_CONNECTING ? UPSTREAM_ECONNECT : UPSTREAM_ETIMEOUT;
  conn_close(c);
  finish(call, rc);
}

static void on_connected(uv_connect_t *req, int status) {
  struct upstream_conn *c = req->data;
  struct upstream_call *call = c->call;
  if (c->state == UC_CLOSED || !call)
    return;
  if (status < 0) {
    conn_close(c);
    finish(call, UPSTREAM_ECONNECT);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  send_request(c);
  if (c->fail_now) {
    uv_timer_start(&c->timer, on_timer, 0, 0);
    return;
  }
  /* Connected under the connect timeout: the rest of the per-try timeout
   * (counted from the start of the call) now applies. */
  uint64_t elapsed = uv_now(c->host->loop) - call->started;
  uv_timer_start(&c->timer, on_timer, elapsed < call->timeout_ms ? call->timeout_ms - elapsed : 0, 0);
}

static struct upstream_conn *conn_new(struct upstream_host *h) {
  struct upstream_conn *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->host = h;
  uv_tcp_init(h->loop, &c->tcp);
  uv_timer_init(h->loop, &c->timer);
  /* tcp.data stays NULL: a handle whose data is itself is a client
   * connection to the server's forced shutdown (server.c), which must not
   * take this one for it. */
  c->timer.data = c;
  writeq_init(&c->wq, (uv_stream_t *)&c->tcp, on_body_written, c);
  llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
  c->parser.data = c;
  h->open_conns++;
  return c;
}

/* A new call on h for request (len bytes), in a; the rest is the caller's
 * to fill before start(). */
static struct upstream_call *call_new(struct upstream_host *h, const char *request, size_t len,
                                      int head_request, uint32_t timeout_ms, size_t max_body,
                                      struct arena *a, void *arg) {
  uv_once(&settings_once, init_settings);
  if (h->freeing)
    return NULL;
  struct upstream_call *call = arena_alloc(a, sizeof *call);
  if (!call)
    return NULL;
  memset(call, 0, sizeof *call);
  call->host = h;
  call->request = (char *)request;
  call->len = len;
  call->head = head_request;
  call->timeout_ms = timeout_ms;
  call->max_body = max_body;
  call->a = a;
  call->arg = arg;
  call->started = uv_now(h->loop);
  return call;
}

/* Takes an idle connection or opens one, and sends the head. */
static int start(struct upstream_host *h, struct upstream_call *call, uint32_t timeout_ms,
                 struct upstream_call **out) {
  struct upstream_conn *c = h->idle;
  if (c) {
    h->idle = c->next_idle;
    h->n_idle--;
    c->reused = 1;
    uv_ref((uv_handle_t *)&c->tcp);
    uv_ref((uv_handle_t *)&c->timer);
  } else {
    c = conn_new(h);
    if (!c)
      return -1;
  }
  c->call = call;
  c->fail_now = 0;
  call->conn = c;
  h->n_active++;
  if (out)
    *out = call;
  c->parser.data = c;
  uv_timer_start(&c->timer, on_timer, timeout_ms, 0);
  if (c->reused) {
    send_request(c);
    if (c->fail_now)
      uv_timer_start(&c->timer, on_timer, 0, 0);
    return 0;
  }
  c->state = UC_CONNECTING;
  c->connect_req.data = c;
  if (!h->addr_ok ||
      uv_tcp_connect(&c->connect_req, &c->tcp, (struct sockaddr *)&h->addr, on_connected) != 0) {
    c->fail_now = UPSTREAM_ECONNECT;
    uv_timer_start(&c->timer, on_timer, 0, 0);
    return 0;
  }
  if (h->connect_timeout_ms && h->connect_timeout_ms < timeout_ms)
    uv_timer_start(&c->timer, on_timer, h->connect_timeout_ms, 0); /* re-armed in on_connected */
  return 0;
}

int upstream_request(struct upstream_host *h, const char *request, size_t len, int head_request,
                     uint32_t timeout_ms, size_t max_body, struct arena *a, upstream_done_cb cb,
                     void *arg, struct upstream_call **out) {
  struct upstream_call *call =
      call_new(h, request, len, head_request, timeout_ms, max_body, a, arg);
  if (!call)
    return -1;
  call->cb = cb;
  return start(h, call, timeout_ms, out);
}

int upstream_stream(struct upstream_host *h, const struct upstream_stream_req *r, struct arena *a,
                    const struct upstream_stream_cbs *cbs, void *arg, struct upstream_call **out) {
  struct upstream_call *call =
      call_new(h, r->head, r->len, r->head_request, r->timeout_ms, r->max_body, a, arg);
  if (!call)
    return -1;
  call->scb = cbs;
  call->body_follows = r->body_follows;
  call->idle_timeout_ms = r->idle_timeout_ms ? r->idle_timeout_ms : r->timeout_ms;
  return start(h, call, r->timeout_ms, out);
}

int upstream_stream_write(struct upstream_call *call, const uv_buf_t *bufs, unsigned n) {
  struct upstream_conn *c = call->conn;
  if (!c || c->state != UC_WAITING || c->fail_now || call->req_done)
    return UV_EINVAL;
  int r = writeq_write(&c->wq, bufs, n);
  if (r < 0) {
    c->fail_now = !c->got_bytes && c->reused ? UPSTREAM_ESTALE : UPSTREAM_ERESET;
    uv_timer_start(&c->timer, on_timer, 0, 0);
    return r;
  }
  if (r == 1 && !call->head_seen)
    arm(c, call->timeout_ms); /* now waiting on the upstream */
  return r;
}

void upstream_stream_end(struct upstream_call *call) {
  struct upstream_conn *c = call->conn;
  if (!c || call->req_done)
    return;
  call->req_done = 1;
  if (!call->head_seen)
    arm(c, call->timeout_ms);
}

void upstream_stream_pause(struct upstream_call *call) {
  struct upstream_conn *c = call->conn;
  if (!c || call->paused)
    return;
  call->paused = 1;
  read_off(c);
  if (call->head_seen && call->mode == UPSTREAM_BODY_STREAM && !writeq_queued(&c->wq))
    disarm(c);
}

void upstream_stream_resume(struct upstream_call *call) {
  struct upstream_conn *c = call->conn;
  if (!c || !call->paused)
    return;
  call->paused = 0;
  if (c->state != UC_CLOSED)
    read_on(c);
  if (call->head_seen && call->mode == UPSTREAM_BODY_STREAM)
    arm(c, call->idle_timeout_ms);
}

void upstream_cancel(struct upstream_call *call) {
  if (!call || !call->conn)
    return;
  struct upstream_conn *c = call->conn;
  conn_close(c);
  if (call->scb) { /* streaming: no callback after this */
    c->call = NULL;
    call->conn = NULL;
    call->host->n_active--;
    return;
  }
  finish(call, UPSTREAM_ECANCELED);
}

/* ---- hosts ---------------------------------------------------------------- */

struct upstream_host *upstream_host_new(uv_loop_t *loop, const char *host, uint16_t port,
                                        unsigned max_idle, uint32_t connect_timeout_ms) {
  uv_once(&settings_once, init_settings);
  struct upstream_host *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->loop = loop;
  h->max_idle = max_idle;
  h->connect_timeout_ms = connect_timeout_ms;
  snprintf(h->name, sizeof h->name, "%s:%u", host, (unsigned)port);
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  char portstr[8];
  snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
  if (getaddrinfo(host, portstr, &hints, &res) == 0 && res) {
    memcpy(&h->addr, res->ai_addr, res->ai_addrlen);
    h->addr_len = res->ai_addrlen;
    h->addr_ok = 1;
  }
  if (res)
    freeaddrinfo(res);
  return h;
}

void upstream_host_free(struct upstream_host *h) {
  if (!h)
    return;
  h->freeing = 1;
  while (h->idle)
    conn_close(h->idle);
  if (h->open_conns == 0)
    free(h);
}

const char *upstream_host_name(const struct upstream_host *h) { return h->name; }
unsigned upstream_host_idle(const struct upstream_host *h) { return h->n_idle; }
unsigned upstream_host_active(const struct upstream_host *h) { return h->n_active; }
