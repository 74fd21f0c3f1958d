/* Types shared by the HTTP server's own files (server.c, conn.c,
 * response.c). Nothing outside src/http includes this. */
#ifndef STRATA_HTTP_INTERNAL_H
#define STRATA_HTTP_INTERNAL_H

#include <llhttp.h>
#include <uv.h>

#include "core/arena.h"
#include "core/config.h"
#include "core/strbuf.h"
#include "http/chunkline.h"
#include "http/http.h"
#include "http/router.h"
#include "http/server.h"
#include "http/writeq.h"
#include "observe/metrics.h"

struct conn;
struct worker;

/* Intrusive list of connections waiting on the same kind of timeout. Each
 * list has one fixed timeout, so appending at the tail keeps it ordered by
 * deadline and the sweep only looks at the head. */
struct conn_list {
  struct conn *head, *tail;
  uint32_t timeout_ms;
};

enum conn_state {
  CS_IDLE = 0,  /* between requests: waiting for a first byte */
  CS_HEAD,      /* reading the request line and headers */
  CS_BODY,      /* reading the body */
  CS_STREAM,    /* the handler has the request; its body is still arriving */
  CS_HANDLING,  /* the handler has the request, read whole; its answer is not done */
  CS_WRITING,   /* the response is queued in a uv_write */
  CS_LINGER,    /* response sent, write side shut: discarding input until EOF */
  CS_CLOSED     /* uv_close called */
};

struct http_exchange {
  struct http_request req;
  struct conn *conn;
  struct arena *arena;
  struct strbuf_view {
    char *data;
    size_t len, cap;
  } extra_headers;         /* handler-added response header lines */
  struct strbuf_view log_fields; /* handler-added access-log members, JSON */
  struct route_match route;
  uint64_t start_ns;       /* first byte of the request (uv_hrtime) */
  uint64_t bytes_in;
  int responded;
  int dispatched;           /* the route's handler has the exchange */
  int in_flight;           /* counted in the in-flight gauge */
  int status;
  size_t bytes_out;
  int head;                /* HEAD: send headers only */
  int head_length_set;     /* HEAD: Content-Length of the GET answer is known */
  uint64_t head_length;
  int date_set;            /* a handler-added Date: the server adds none */
  const char *reason;      /* the status line's reason phrase, NULL: ours */
  size_t reason_len;
  int expect_continue;
  int host_count;
  int te_seen;             /* a Transfer-Encoding header arrived */
  int te_unsupported;      /* ... naming a coding other than chunked */
  int keep_alive;          /* llhttp's verdict at headers-complete */
  int metrics_route;
  enum metrics_method mmethod;
  const void *filter_data; /* what the server's filter left for the handler */
  /* streaming routes and streamed answers (http.h, "Streaming") */
  int matched;             /* the route was looked up at headers-complete ... */
  int route_rc;            /* ... with this result */
  uint64_t body_limit;     /* body bytes allowed: http.max_body or the route's */
  uint64_t body_seen;      /* body bytes parsed */
  int64_t content_length;  /* declared, or -1 (chunked) */
  int stream_body;         /* dispatched at headers-complete; body read by http_body_start */
  int body_started;
  int body_paused;
  int body_complete;       /* the whole request has been parsed */
  int handler_done;        /* the handler made its final call */
  int error_fired;         /* on_error ran */
  int drain_wanted;        /* http_stream_write() returned 1 */
  int stream_resp;         /* http_stream_start() was called */
  int resp_chunked;
  int resp_discard;        /* HEAD or a bodiless status: pieces are not sent */
  int64_t resp_left;       /* declared length still owed, or -1 */
  const char *corked;      /* the answer's head, not written yet (in the arena) */
  size_t corked_len;
  const struct http_stream_cbs *cbs;
  void *cbs_arg;
  char request_id_buf[40]; /* a generated id */
};

struct conn {
  uv_tcp_t tcp;            /* first, so a uv handle pointer is a conn pointer */
  struct worker *w;
  const struct router *router; /* of the listener that accepted it */
  llhttp_t parser;
  enum conn_state state;
  struct conn *prev, *next;  /* in one conn_list, or none */
  struct conn_list *list;
  uint64_t deadline;         /* uv_now() ms at which the list's timeout fires */
  struct arena arena;
  struct http_exchange ex;
  int error;                 /* a STRATA_E* found by a parser callback */
  const char *error_message; /* its client-facing message, or NULL */
  uint32_t head_bytes;       /* request line + headers so far */
  uint32_t line_bytes;       /* request line so far */
  unsigned n_headers;
  unsigned headers_cap;
  char *field;               /* header name being received */
  size_t field_len;
  char *value;               /* header value being received */
  size_t value_len;
  int value_spans;           /* on_header_value calls for this value */
  int value_cut_at_end;      /* the last one ended where the input did */
  const char *feed_start, *feed_end; /* bytes llhttp is running over */
  int tail_lf_ws;            /* the last read ended in LF then only SP/HTAB */
  char *body;
  size_t body_len, body_cap;
  char *url;
  size_t url_len;
  struct chunkline_buf chunk_line; /* a chunk-size line split across reads */
  char *pending;             /* bytes read but not parsed yet (pipelining) */
  size_t pending_len;
  char *wbuf;                /* the unsent rest of a response */
  uv_write_t write_req;
  uv_shutdown_t shutdown_req;
  size_t linger_bytes;
  unsigned close_after : 1;  /* close once the current response is out */
  unsigned peer_eof : 1;     /* the client closed its side */
  unsigned reading : 1;      /* uv_read_start is active */
  unsigned refused : 1;      /* over max_connections: answered 503 */
  unsigned zombie : 1;       /* closed while a handler held the exchange; freed by its final call */
  unsigned kicked : 1;       /* in the worker's kick list */
  unsigned pause : 2;        /* why a parser callback paused llhttp (enum in conn.c) */
  unsigned at_chunk_line : 1; /* the body parser stopped before a chunk-size line */
  struct writeq wq;          /* streamed answers and 100 Continue */
  struct conn *kick_next;
  char remote[64];
};

struct worker {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_async_t wakeup;
  uv_timer_t sweep;
  uv_prepare_t flush;
  uv_thread_t thread;
  struct http_server *server;
  unsigned index;
  struct metrics_shard *shard;
  struct strbuf out;         /* response scratch, reused */
  struct strbuf log;         /* access lines of this loop turn */
  struct strbuf err_body;    /* JSON error bodies, reused */
  struct conn_list idle, head, body, linger;
  struct conn *kick;         /* connections with work for the end of this loop turn */
  char date_line[64];        /* "Date: Fri, 27 Nov 2026 23:59:01 GMT\r\n" */
  size_t date_len;
  time_t date_sec;
  uint64_t reqid_counter;
  char reqid_prefix[16];
  unsigned n_conns;
  int listening;
  int draining;
  int stopping;              /* handles closing; no more wake-ups */
  int finished;              /* the loop has ended (under wake_lock) */
  int listen_fd;
  /* worker 0 only: a second listener with its own router (the gateway's
   * admin listener); fd -1 when there is none */
  uv_tcp_t extra_listener;
  int extra_listen_fd;
  int extra_listening;
  void *data;                /* from hooks.start: http_worker_data() */
  char read_buf[65536];
};

struct http_server {
  struct strata_config cfg;
  const struct router *router;
  struct worker *workers;
  unsigned n_workers;
  uv_loop_t main_loop;
  uv_signal_t sigterm, sigint;
  int holding_stop_signals; /* SIGTERM/SIGINT blocked from listen until run */
  uv_timer_t drain_timer;
  int draining; /* read by readiness checks on any thread */
  int force;
  struct http_worker_hooks hooks;
  http_filter_cb filter;
  void *filter_ctx;
  const struct router *extra_router;
};

/* conn.c */
/* Accepts one connection from listener; its requests go to router. */
void conn_accept(struct worker *w, uv_tcp_t *listener, const struct router *router);
/* Serves fd (a connected stream socket, owned from now on) on w as if it had
 * been accepted: the seam the fuzz target and tests drive connections by. */
int conn_open_fd(struct worker *w, int fd);
void conn_close(struct conn *c);
void conn_free(struct conn *c);
void conn_sweep(struct worker *w, uint64_t now);
void conn_list_remove(struct conn *c);
void conn_list_append(struct conn_list *l, struct conn *c, uint64_t now);
void conn_after_response(struct conn *c);
/* Keeps c on the worker's body list (its deadline for the client) while
 * it waits on the client: a streaming handler reads the body, or a
 * streamed answer waits in the write queue. progress restarts it. */
void conn_deadline(struct conn *c, int progress);
/* The handler's final answer while the request body still streams in: the
 * rest of the body is not read and the connection closes after the answer. */
void conn_end_body(struct conn *c);
/* Queues c for conn_kicks() (once). */
void conn_kick(struct conn *c);
/* Runs the queued kicks: body bytes read ahead are parsed for a handler
 * that (re)started reading, a corked answer head is written. Called by the
 * worker's prepare handle, once per loop turn. */
void conn_kicks(struct worker *w);

/* server.c: a server without listeners and one worker set up on the calling
 * thread's side (not started), for the fuzz target and unit tests. */
struct http_server *http_server_new_unbound(const struct strata_config *cfg,
                                            const struct router *router);
int worker_init(struct http_server *s, unsigned i);

/* server.c: closes the worker's own handles once draining left no connection */
void worker_maybe_finish(struct worker *w);

/* response.c */
void response_send_raw_error(struct conn *c, int err, const char *message);
/* The writeq callback of a connection. */
void response_on_written(struct writeq *q, int status);
/* Writes the corked head of a streamed answer, if any. */
void response_uncork(struct conn *c);
/* Fires the handler's on_error once (the handler still holds the exchange). */
void response_fire_error(struct conn *c, int err);
/* The access line and request metrics of c's exchange, once. */
void response_account(struct conn *c);
void worker_update_date(struct worker *w);

#endif
