/* The proxy: one client request -> tries on upstream hosts -> one answer.
 *
 * NOTES ON THE DESIGN
 *
 *   start -> pick host (balancer, skipping open breakers) -> try
 *   try --answer < 500, or not retryable----------------------> relay it
 *       --failure, retryable, budget and deadline allow------> backoff -> pick another host -> try
 *       --failure, no retry left--------------------------------> 502 / 503 / 504
 *
 * Retryable: a failure before anything was sent (connect failure, stale
 * keep-alive connection) always; a reset, a timeout or a 502/503/504 only
 * when the request is safe to repeat (idempotent method, or an
 * Idempotency-Key). Each retry needs the worker's retry budget, so retries
 * cannot multiply an outage; waits use exponential backoff with full jitter
 * and honour Retry-After; the overall deadline bounds everything (and is
 * passed upstream, so services can give up too).
 *
 * Header hygiene: hop-by-hop headers and those named in Connection never
 * cross; X-Forwarded-For/-Proto/-Host and Forwarded are rebuilt (a client's
 * own copies are kept only for the configured number of trusted hops);
 * identity headers are the gateway's alone; X-Request-Id and traceparent
 * are propagated.
 *
 * Bodies stream both ways with bounded memory.
 *
 *   Request body (the gateway's route is a streaming route, http.h): a
 *   declared body up to 64 KiB arrives whole and goes in the request
 *   buffer, as any request. A larger, chunked or 100-continue body is read
 *   here: its first REPLAY_MAX bytes are gathered first (the 100 Continue
 *   goes out only then, after authentication, rate limiting, the cache and
 *   the route's breaker). A body that ends within them is sent whole with a
 *   Content-Length and retried like any request. Otherwise the try starts
 *   with the head and the gathered bytes and the rest streams on (the
 *   client's Content-Length, else chunked); pump() writes what the try has
 *   not had and pauses the client while the upstream does not keep up. The
 *   gathered bytes are the retry buffer (Envoy's): a try that fails before
 *   the body outgrew them is retried from them; once bytes past them went
 *   out it is not.
 *
 *   Answer: relay_mode() is the one place that decides. RELAY_BUFFER keeps
 *   the whole answer (up to gateway.max_response) and relays it at once
 *   (relay(), which also stores it in the response cache): answers to HEAD,
 *   502/503/504 (and 500 on a caching route), which may be retried or
 *   replaced by a fallback, answers of a declared length up to 64 KiB, and
 *   cacheable answers up to the cache's entry size. RELAY_STREAM relays the
 *   head as soon as it arrives and each piece as it comes, pausing the
 *   upstream while the client lags (http_stream_write() returns 1 until
 *   on_drain). Once the client has part of the answer a failure can only
 *   cut its connection (http_abort): no terminating chunk, a short
 *   Content-Length.
 *
 *   The client failing (closed, reset, a bad or too large body, a body
 *   timeout) cancels the try in flight or the retry waiting (give_up).
 *
 * Every end of an exchange (relay, fail, a cached answer, the end or the
 * abort of a stream) calls gw_state_leave() once, after its final http_*
 * call: the call lived in the exchange's arena and is not used after. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/error.h"
#include "core/strbuf.h"
#include "gateway/identity.h"
#include "gateway/internal.h"
#include "gateway/respcache.h"
#include "observe/log.h"
#include "observe/trace.h"

#define REPLAY_MAX HTTP_STREAM_BUFFERED_MAX /* body bytes kept for another try */
#define BODY_BUF_CAP (4 * REPLAY_MAX)       /* gathered, plus what arrives while paused */

enum relay_mode {
  RELAY_BUFFER = 0, /* the whole answer is kept, then relayed at once (relay()) */
  RELAY_STREAM      /* relayed as it arrives */
};

/* How a request body travels upstream. */
enum body_framing {
  BODY_INLINE = 0, /* whole, in the request buffer, with its Content-Length */
  BODY_LENGTH,     /* streamed after the head, under the client's Content-Length */
  BODY_CHUNKED     /* streamed after the head, chunked */
};

struct proxy_call {
  struct http_exchange *ex;
  const struct auth_identity *id;
  struct gw_worker *w;
  struct gw_state *st;    /* the worker's state for the conf it started on */
  const struct gw_route *route;
  unsigned route_index;
  unsigned pool;
  const char *path;       /* as sent upstream (after strip/rewrite) */
  size_t path_len;
  int route_breaker;      /* the route's breaker let this request in: report to it */
  /* response cache (routes with `cache:`; GET and HEAD) */
  char *cache_key;        /* NULL: not cached */
  size_t cache_key_len;
  struct respcache_request crq;
  int cache_lead;         /* others wait on this fetch: flight_done() at the end */
  const char *cache_status; /* for the access line, once: MISS, EXPIRED, BYPASS, ... */
  char *request;
  size_t len;
  int head;
  int safe;
  int safe_method;        /* GET, HEAD, OPTIONS, TRACE: nothing to invalidate */
  uint64_t retry_after_ms; /* fail()'s 503: when a breaker lets calls through */
  struct upstream_response *last_answer; /* a retried 5xx: relayed if no try follows */
  long max_forwards;      /* OPTIONS/TRACE: the hops the client allows further; -1: no limit */
  unsigned attempt;
  int host;
  int last_host;
  uint64_t started, deadline;
  uint64_t try_started;
  uint64_t try_started_ns;
  uint64_t upstream_us; /* time spent waiting on upstreams, all tries */
  struct upstream_call *up; /* the try in flight, or NULL */
  uv_timer_t *backoff;      /* the retry waiting, or NULL */
  int relay;                /* enum relay_mode of the answer coming in */
  int streaming_out;        /* its head went to the client: no retry, no other answer */
  int head_in;              /* ... and came after head_ns */
  uint64_t head_ns;
  size_t headers_mark;      /* the client's headers before the answer's (for a retraction) */
  int up_paused;            /* the try's reading is paused for the client */
  int logged;               /* log_upstream() ran */
  /* a body read while the proxy runs (http_body_streaming()) */
  int body_stream;
  int framing;              /* enum body_framing */
  int gathering;            /* no try yet: the first REPLAY_MAX bytes come in */
  int body_done;            /* the client's body has ended */
  int replayable;           /* buf holds the body from its first byte */
  int up_ready;             /* the try took everything written: write more */
  int end_sent;             /* the try has the whole body */
  int client_paused;
  char *buf;                /* body bytes the try has not had (all of them while replayable) */
  size_t buf_len, buf_sent; /* bytes in buf / written to the current try */
  uint64_t body_read;       /* body bytes from the client */
  uint64_t bytes_up, bytes_down; /* body bytes streamed to the upstream / the client */
};

/* ---- headers ------------------------------------------------------------ */

static int name_is(const struct http_header *h, const char *name) {
  size_t n = strlen(name);
  return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

struct name {
  const char *text;
  size_t len;
};
#define NAME(s) {s, sizeof s - 1}

static int in_list(const struct http_header *h, const struct name *list) {
  for (; list->text; list++)
    if (h->name_len == list->len && strncasecmp(h->name, list->text, list->len) == 0)
      return 1;
  return 0;
}

/* "Name: value\r\n" */
static void put_field(struct strbuf *sb, const struct http_header *h) {
  strbuf_append(sb, h->name, h->name_len);
  strbuf_puts(sb, ": ");
  strbuf_append(sb, h->value, h->value_len);
  strbuf_puts(sb, "\r\n");
}

/* Hop-by-hop (RFC 9110 7.6.1) and what the proxy itself sets or recomputes. */
static int never_forwarded(const struct http_header *h, int request) {
  static const struct name hop[] = {NAME("connection"), NAME("keep-alive"),
                                    NAME("proxy-connection"), NAME("te"), NAME("trailer"),
                                    NAME("transfer-encoding"), NAME("upgrade"),
                                    NAME("content-length"), NAME("proxy-authorization"),
                                    NAME("proxy-authenticate"), {NULL, 0}};
  static const struct name ours_req[] = {NAME("x-forwarded-for"), NAME("x-forwarded-proto"),
                                         NAME("x-forwarded-host"), NAME("forwarded"),
                                         NAME("x-request-id"), NAME("traceparent"),
                                         NAME("expect"), NAME("x-client-id"),
                                         NAME("x-strata-deadline-ms"), {NULL, 0}};
  /* the upstream's Date is relayed (RFC 9110 6.6.1: the origin's time;
   * HAProxy and Envoy keep it too, nginx replaces it) */
  static const struct name ours_resp[] = {NAME("x-request-id"), {NULL, 0}};
  if (in_list(h, hop))
    return 1;
  if (!request)
    return in_list(h, ours_resp);
  if (in_list(h, ours_req) || identity_is_reserved_header(h->name, h->name_len))
    return 1;
  /* CGI-style upstreams (WSGI, Rack, PHP) read X_Client_Id as X-Client-Id:
   * a client must not spell its way past the list, nor send an unchecked
   * X_Api_Key beside the checked key (nginx drops every name with an
   * underscore by default; this drops the ones that alias, and names too
   * long to compare) */
  static const struct name credentials[] = {NAME("x-api-key"), {NULL, 0}};
  char dashed[256];
  if (!memchr(h->name, '_', h->name_len))
    return 0;
  if (h->name_len > sizeof dashed)
    return 1;
  for (size_t i = 0; i < h->name_len; i++)
    dashed[i] = h->name[i] == '_' ? '-' : h->name[i];
  struct http_header alias = {.name = dashed, .name_len = h->name_len};
  return in_list(&alias, hop) || in_list(&alias, ours_req) || in_list(&alias, credentials) ||
         identity_is_reserved_header(dashed, h->name_len);
}

/* The next token of a Connection value from *p (skipping the separators
 * before it); its length through *len, 0 at the end. */
static const char *connection_token(const char **p, const char *end, size_t *len) {
  while (*p < end && (**p == ' ' || **p == '\t' || **p == ','))
    (*p)++;
  const char *tok = *p;
  while (*p < end && **p != ',' && **p != ' ' && **p != '\t')
    (*p)++;
  *len = (size_t)(*p - tok);
  return tok;
}

/* 1 when a Connection header of hs names a header to drop: a token other
 * than keep-alive and close, which are hop-by-hop anyway. Most messages
 * have none or just "keep-alive", and then no header needs the per-header
 * token check below. */
static int has_connection(const struct http_header *hs, unsigned n) {
  for (unsigned i = 0; i < n; i++) {
    if (hs[i].name_len != 10 || strncasecmp(hs[i].name, "connection", 10) != 0)
      continue;
    const char *p = hs[i].value, *end = p + hs[i].value_len;
    size_t len;
    for (const char *tok; (tok = connection_token(&p, end, &len)), len;)
      if (!(len == 10 && strncasecmp(tok, "keep-alive", 10) == 0) &&
          !(len == 5 && strncasecmp(tok, "close", 5) == 0))
        return 1;
  }
  return 0;
}

/* 1 when h is named as a token of a Connection header in hs. */
static int listed_in_connection(const struct http_header *hs, unsigned n,
                                const struct http_header *h) {
  for (unsigned i = 0; i < n; i++) {
    if (!name_is(&hs[i], "connection"))
      continue;
    const char *p = hs[i].value, *end = p + hs[i].value_len;
    size_t len;
    for (const char *tok; (tok = connection_token(&p, end, &len)), len;)
      if (len == h->name_len && strncasecmp(tok, h->name, h->name_len) == 0)
        return 1;
  }
  return 0;
}

/* The client address without its port ("[::1]:5000" -> "::1"). */
static void client_ip(const char *remote, char *out, size_t cap) {
  const char *end = strrchr(remote, ':');
  size_t n = end ? (size_t)(end - remote) : strlen(remote);
  if (n >= 2 && remote[0] == '[') {
    remote++;
    n -= 2;
  }
  if (n >= cap)
    n = cap - 1;
  memcpy(out, remote, n);
  out[n] = '\0';
}

/* Appends the last `keep` comma-separated entries of every header called
 * name to sb (with ", " between), returning how many were written. */
static unsigned keep_trusted(struct strbuf *sb, const struct http_request *req, const char *name,
                             unsigned keep) {
  if (!keep)
    return 0;
  const char *items[64];
  size_t lens[64];
  unsigned n = 0;
  for (unsigned i = 0; i < req->n_headers; i++) {
    if (!name_is(&req->headers[i], name))
      continue;
    const char *p = req->headers[i].value, *end = p + req->headers[i].value_len;
    while (p < end && n < 64) {
      while (p < end && (*p == ' ' || *p == ','))
        p++;
      const char *s = p;
      while (p < end && *p != ',')
        p++;
      const char *e = p;
      while (e > s && e[-1] == ' ')
        e--;
      if (e > s) {
        items[n] = s;
        lens[n++] = (size_t)(e - s);
      }
    }
  }
  unsigned from = n > keep ? n - keep : 0, written = 0;
  for (unsigned i = from; i < n; i++, written++) {
    if (written)
      strbuf_puts(sb, ", ");
    strbuf_append(sb, items[i], lens[i]);
  }
  return written;
}

static void put_u64(struct strbuf *sb, uint64_t v) {
  char num[24];
  strbuf_append(sb, num, u64_to_dec(num, v));
}

/* The request for the upstream: head, then the body when framing is
 * BODY_INLINE (body, body_len), else the header announcing what follows. */
static int build_request(struct proxy_call *call, const char *body, size_t body_len,
                         enum body_framing framing) {
  struct http_request *req = http_request_of(call->ex);
  const struct gw_settings *s = &call->st->conf->s;
  struct strbuf sb = call->w->request_buf; /* reused: no malloc per request */
  strbuf_clear(&sb);
  strbuf_append(&sb, req->method, req->method_len);
  strbuf_putc(&sb, ' ');
  strbuf_append(&sb, call->path, call->path_len);
  if (req->query_len) {
    strbuf_putc(&sb, '?');
    strbuf_append(&sb, req->query, req->query_len);
  }
  strbuf_puts(&sb, " HTTP/1.1\r\n");
  const char *host = NULL;
  size_t host_len = 0;
  int conn = has_connection(req->headers, req->n_headers);
  for (unsigned i = 0; i < req->n_headers; i++) {
    const struct http_header *h = &req->headers[i];
    if (h->name_len == 4 && strncasecmp(h->name, "host", 4) == 0) {
      host = h->value;
      host_len = h->value_len;
    }
    if (never_forwarded(h, 1) || (conn && listed_in_connection(req->headers, req->n_headers, h)))
      continue;
    if (call->max_forwards >= 0 && name_is(h, "max-forwards"))
      continue; /* one hop spent: the decremented count follows */
    put_field(&sb, h);
  }
  if (!host) { /* HTTP/1.0 without Host: name the upstream */
    strbuf_puts(&sb, "Host: ");
    strbuf_puts(&sb, upstream_host_name(
                         call->st->hosts[gw_host_index(call->st->conf, call->pool, 0)]));
    strbuf_puts(&sb, "\r\n");
  }
  /* RFC 9110 7.6.3: a gateway names itself in Via on each request it
   * passes inbound; a client's Via lines went first, so ours ends the list. */
  strbuf_puts(&sb, req->version_minor == 0 ? "Via: 1.0 strata\r\n" : "Via: 1.1 strata\r\n");
  if (call->max_forwards > 0) {
    strbuf_puts(&sb, "Max-Forwards: ");
    put_u64(&sb, (uint64_t)call->max_forwards - 1);
    strbuf_puts(&sb, "\r\n");
  }
  char ip[64];
  client_ip(req->remote ? req->remote : "", ip, sizeof ip);
  strbuf_puts(&sb, "X-Forwarded-For: ");
  if (keep_trusted(&sb, req, "x-forwarded-for", s->trusted_hops))
    strbuf_puts(&sb, ", ");
  strbuf_puts(&sb, ip);
  strbuf_puts(&sb, "\r\nX-Forwarded-Proto: http\r\n");
  if (host) {
    strbuf_puts(&sb, "X-Forwarded-Host: ");
    strbuf_append(&sb, host, host_len);
    strbuf_puts(&sb, "\r\n");
  }
  strbuf_puts(&sb, "Forwarded: ");
  if (keep_trusted(&sb, req, "forwarded", s->trusted_hops))
    strbuf_puts(&sb, ", ");
  int v6 = strchr(ip, ':') != NULL;
  strbuf_puts(&sb, v6 ? "for=\"[" : "for=");
  strbuf_puts(&sb, ip);
  strbuf_puts(&sb, v6 ? "]\";proto=http" : ";proto=http");
  if (host) {
    strbuf_puts(&sb, ";host=\"");
    for (size_t i = 0; i < host_len; i++)
      if (host[i] != '"' && host[i] != '\\')
        strbuf_putc(&sb, host[i]);
    strbuf_putc(&sb, '"');
  }
  strbuf_puts(&sb, "\r\nX-Request-Id: ");
  strbuf_append(&sb, req->request_id, req->request_id_len);
  char tp[56];
  trace_child(&req->trace, tp);
  strbuf_puts(&sb, "\r\ntraceparent: ");
  strbuf_puts(&sb, tp);
  uint64_t budget = deadline_try_ms(&call->route->retry, call->deadline, uv_now(call->w->loop));
  if (budget != UINT64_MAX) {
    strbuf_puts(&sb, "\r\n" DEADLINE_HEADER ": ");
    put_u64(&sb, budget);
  }
  if (s->identity_secret[0]) {
    /* Services configured with the same secret refuse anything unsigned. */
    char lines[IDENTITY_HEADERS_MAX];
    const struct auth_identity *id = call->id && call->id->kind != AUTH_KIND_NONE ? call->id : NULL;
    size_t n = identity_headers(s->identity_secret, id, req->method, call->path, req->request_id,
                                (uint64_t)time(NULL), lines, sizeof lines);
    if (n >= 2) {
      strbuf_puts(&sb, "\r\n");
      strbuf_append(&sb, lines, n - 2); /* the block ends in CRLF; ours adds it below */
    }
  }
  if (call->id && call->id->kind != AUTH_KIND_NONE) {
    /* the authenticated client: the scope of its idempotency keys */
    strbuf_puts(&sb, "\r\nX-Client-Id: ");
    strbuf_puts(&sb, call->id->subject);
  }
  if (framing == BODY_CHUNKED) {
    strbuf_puts(&sb, "\r\nTransfer-Encoding: chunked");
  } else if (framing == BODY_LENGTH) {
    strbuf_puts(&sb, "\r\nContent-Length: ");
    put_u64(&sb, (uint64_t)http_body_length(call->ex));
  } else if (body_len || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0 ||
             strcmp(req->method, "PATCH") == 0) {
    strbuf_puts(&sb, "\r\nContent-Length: ");
    put_u64(&sb, body_len);
  }
  strbuf_puts(&sb, "\r\n\r\n");
  if (framing == BODY_INLINE)
    strbuf_append(&sb, body, body_len);
  call->w->request_buf = sb; /* keep the grown buffer for the next request */
  if (sb.failed)
    return -1;
  call->request = arena_strndup(http_arena(call->ex), sb.data, sb.len);
  call->len = sb.len;
  return call->request ? 0 : -1;
}

/* ---- answering ---------------------------------------------------------- */

static void log_upstream(struct proxy_call *call);

/* The route's breaker hears each request's final outcome once (a retried
 * request is one call, as the client sees it); slowness is the whole time. */
static void route_outcome(struct proxy_call *call, int ok) {
  if (!call->route_breaker)
    return;
  call->route_breaker = 0;
  uint64_t now = uv_now(call->w->loop);
  breaker_report(&call->st->route_breakers[call->route_index], now, ok,
                 (uint32_t)(now - call->started));
}

/* Body bytes that streamed, for the access line. */
static void log_streamed(struct proxy_call *call) {
  if (call->bytes_up)
    http_log_u64(call->ex, "bodyBytesUp", call->bytes_up);
  if (call->streaming_out)
    http_log_u64(call->ex, "bodyBytesDown", call->bytes_down);
}

/* The access line's cache status, written once (an answer from the cache
 * replaces the lookup's MISS with STALE or COALESCED). */
static void log_cache(struct proxy_call *call) {
  if (!call->cache_status)
    return;
  http_log_str(call->ex, "cache", call->cache_status);
  call->cache_status = NULL;
}

/* Answers from a stored response (headers copied; Age set), with a 304
 * when the client's validators match it. */
static void answer_cached(struct proxy_call *call, const struct respcache_hit *hit) {
  struct http_exchange *ex = call->ex;
  int not_modified = respcache_not_modified(&call->crq, hit, (uint64_t)time(NULL) * 1000);
  for (unsigned i = 0; i < hit->n_headers; i++)
    if (!not_modified || respcache_field_in_304(&hit->headers[i]))
      http_add_header_n(ex, hit->headers[i].name, hit->headers[i].name_len,
                        hit->headers[i].value, hit->headers[i].value_len);
  char age[24];
  snprintf(age, sizeof age, "%llu", (unsigned long long)hit->age_s);
  http_add_header(ex, "Age", age);
  call->cache_status = respcache_status_name(hit->status);
  log_cache(call);
  if (not_modified) {
    http_respond(ex, 304, NULL, NULL, 0);
    return;
  }
  if (call->head)
    http_set_head_length(ex, hit->body_len);
  http_set_reason(ex, hit->reason, hit->reason_len); /* as on the miss that stored it */
  http_respond(ex, hit->http_status, NULL, hit->body, hit->body_len);
}

/* The leader of a coalesced fetch is done: the waiters get their answer
 * (failed: the upstream failed as stale-if-error covers, so a waiter may
 * get the stale answer instead of a try of its own). */
static void cache_flight_done(struct proxy_call *call, int failed) {
  if (!call->cache_lead)
    return;
  call->cache_lead = 0;
  respcache_flight_done(call->w->cache, call->cache_key, call->cache_key_len, uv_now(call->w->loop),
                        failed);
}

/* Answers with a stored response in the upstream's stead: the route's
 * fallback, marked as such. */
static void answer_stale_hit(struct proxy_call *call, const struct respcache_hit *hit) {
  call->st->route_stats[call->route_index].fallbacks++;
  http_log_str(call->ex, "fallback", "stale");
  http_add_header(call->ex, "X-Strata-Fallback", "stale");
  answer_cached(call, hit);
}

/* The upstream failed (or every breaker is open): the last good response
 * within its stale-if-error window, when the route caches. Returns 1 when
 * it answered. */
static int answer_stale(struct proxy_call *call) {
  if (!call->cache_key)
    return 0;
  struct respcache_hit hit;
  if (respcache_lookup_stale(call->w->cache, call->cache_key, call->cache_key_len, &call->crq,
                             uv_now(call->w->loop), &hit) != RESPCACHE_HIT)
    return 0;
  answer_stale_hit(call, &hit);
  return 1;
}

/* The route's static fallback, when it has one: answers and returns 1. */
static int answer_static(struct proxy_call *call) {
  const struct route_config *rc = &call->route->rc;
  /* only a read may be answered in the upstream's stead: a canned 2xx to
   * a POST would tell the client a write happened that did not */
  if (!rc->fallback_status || !call->safe_method)
    return 0;
  call->st->route_stats[call->route_index].fallbacks++;
  http_log_str(call->ex, "fallback", "static");
  log_cache(call);
  log_streamed(call);
  http_add_header(call->ex, "X-Strata-Fallback", "static");
  http_add_header(call->ex, "Cache-Control", "no-store"); /* a stand-in, not the resource */
  http_respond(call->ex, (int)rc->fallback_status,
               rc->fallback_content_type[0] ? rc->fallback_content_type : "application/json",
               rc->fallback_body, strlen(rc->fallback_body));
  return 1;
}

/* The gateway could not get a good answer: a stale stored one, else the
 * route's static fallback. Returns 1 when one answered. */
static int answer_fallback(struct proxy_call *call) {
  return answer_stale(call) || answer_static(call);
}

/* Stored answers for the request's URI are dropped (after a successful
 * unsafe request to it). */
static void invalidate_target(struct proxy_call *call, const char *host, size_t host_len,
                              const char *path, size_t path_len, const char *query,
                              size_t query_len) {
  char key[RESPCACHE_KEY_MAX + 1];
  size_t n = respcache_key(key, sizeof key, "GET", host ? host : "", host_len, path, path_len,
                           query, query_len);
  if (n)
    respcache_invalidate(call->w->cache, key, n);
}

/* A URI an upstream's answer names: as a client path, and, when the route
 * rewrites its prefix and the path lies under the prefix the upstream sees,
 * as the client path that maps to it (upstream /api/items/1 on a route
 * /shop -> /api is the client's /shop/items/1). */
static void invalidate_named(struct proxy_call *call, const char *host, size_t host_len,
                             const char *path, size_t path_len, const char *query,
                             size_t query_len) {
  invalidate_target(call, host, host_len, path, path_len, query, query_len);
  const struct route_config *rc = &call->route->rc;
  if (!rc->prefix[0] || !(rc->strip_prefix || rc->rewrite_prefix[0]))
    return;
  size_t up_len = strlen(rc->rewrite_prefix), pre_len = strlen(rc->prefix);
  while (up_len && rc->rewrite_prefix[up_len - 1] == '/')
    up_len--;
  while (pre_len && rc->prefix[pre_len - 1] == '/')
    pre_len--;
  if (path_len < up_len || memcmp(path, rc->rewrite_prefix, up_len) != 0 ||
      (path_len > up_len && path[up_len] != '/'))
    return; /* not under the upstream's prefix: no client path maps to it */
  const char *rest = path + up_len;
  size_t rest_len = path_len - up_len;
  char client[RESPCACHE_KEY_MAX + 1];
  if (pre_len + rest_len + 1 > sizeof client)
    return;
  memcpy(client, rc->prefix, pre_len);
  memcpy(client + pre_len, rest, rest_len);
  if (rest_len > 1 || !pre_len) {
    size_t len = pre_len + rest_len;
    if (!len) /* route / -> /v2, upstream /v2: the client's / */
      client[len++] = '/';
    invalidate_target(call, host, host_len, client, len, query, query_len);
    return;
  }
  /* the upstream's bare prefix: both /shop and /shop/ map to it */
  invalidate_target(call, host, host_len, client, pre_len, query, query_len);
  client[pre_len] = '/';
  invalidate_target(call, host, host_len, client, pre_len + 1, query, query_len);
}

/* A successful unsafe request: its target URI, and those its answer's
 * Location and Content-Location name on the same host (RFC 9111 4.4: a
 * path, or an http URI of that host; a URI of another host could be one
 * an attacker names to evict). */
static void invalidate(struct proxy_call *call, const struct upstream_response *r) {
  struct http_request *req = http_request_of(call->ex);
  size_t host_len = 0;
  const char *host = http_header_get(req, "host", &host_len);
  invalidate_target(call, host, host_len, req->path, req->path_len, req->query, req->query_len);
  for (unsigned i = 0; r && i < r->n_headers; i++) {
    const struct http_header *h = &r->headers[i];
    if (!name_is(h, "location") && !name_is(h, "content-location"))
      continue;
    const char *v = h->value, *end = h->value + h->value_len;
    if (end - v > 7 && strncasecmp(v, "http://", 7) == 0) {
      const char *slash = memchr(v + 7, '/', (size_t)(end - v - 7));
      const char *auth_end = slash ? slash : end;
      if (!host || (size_t)(auth_end - v - 7) != host_len || strncasecmp(v + 7, host, host_len) != 0)
        continue;
      v = slash ? slash : end;
    }
    if (v == end || *v != '/' || (end - v > 1 && v[1] == '/'))
      continue; /* not a path of this host */
    const char *hash = memchr(v, '#', (size_t)(end - v));
    if (hash)
      end = hash;
    const char *q = memchr(v, '?', (size_t)(end - v));
    invalidate_named(call, host, host_len, v, (size_t)((q ? q : end) - v), q ? q + 1 : "",
                     q ? (size_t)(end - q - 1) : 0);
  }
}

/* A field of an upstream answer (interim or final) the client does not get:
 * hop-by-hop, ours, or named by the answer's Connection (RFC 9110 7.6.1).
 * conn: has_connection() of the answer. */
static int kept_from_client(const struct upstream_response *r, int conn,
                            const struct http_header *h) {
  return never_forwarded(h, 0) || (conn && listed_in_connection(r->headers, r->n_headers, h));
}

static void relay_headers(struct proxy_call *call, const struct upstream_response *r) {
  struct http_exchange *ex = call->ex;
  int conn = has_connection(r->headers, r->n_headers);
  for (unsigned i = 0; i < r->n_headers; i++) {
    const struct http_header *h = &r->headers[i];
    if (kept_from_client(r, conn, h))
      continue;
    http_add_header_n(ex, h->name, h->name_len, h->value, h->value_len);
  }
}

/* How the answer reaches the client: the one place that decides. */
static enum relay_mode relay_mode(const struct proxy_call *call,
                                  const struct upstream_response *r) {
  if (call->head || r->status == 204 || r->status == 304)
    return RELAY_BUFFER; /* no body (relay() announces a HEAD's GET length) */
  if ((r->status >= 502 && r->status <= 504) || (r->status == 500 && call->cache_key))
    return RELAY_BUFFER; /* may be retried, or replaced by a stale or static fallback */
  if (r->has_content_length && r->content_length <= REPLAY_MAX)
    return RELAY_BUFFER; /* small: relayed whole, so a cut body is still a 502 */
  if (call->cache_key && r->has_content_length && r->content_length <= call->w->cache_entry_max)
    return RELAY_BUFFER; /* the cache may store it (relay()) */
  return RELAY_STREAM;
}

/* Relays a whole (RELAY_BUFFER) answer, storing it when the route caches. */
static void relay(struct proxy_call *call, struct upstream_response *r) {
  struct http_exchange *ex = call->ex;
  log_upstream(call);
  route_outcome(call, r->status < 500);
  struct gw_worker *w = call->w;
  struct gw_state *st = call->st;
  uint64_t now = uv_now(w->loop);
  if (call->cache_key && !call->head) {
    struct respcache_route rr = {call->route->rc.cache_ttl_ms,
                                 call->route->rc.cache_stale_if_error_ms};
    struct respcache_policy pol;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t wall = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (respcache_policy_from_response(r->status, r->headers, r->n_headers, wall,
                                       now - call->try_started, &rr, &pol))
      respcache_store(w->cache, call->cache_key, call->cache_key_len, &call->crq, &pol, r->status,
                      r->reason, r->reason_len, r->headers, r->n_headers, r->body, r->body_len,
                      now);
    else if (r->status < 500 && r->status != 304 &&
             !(call->crq.flags & (RESPCACHE_REQ_AUTH | RESPCACHE_REQ_NO_STORE)))
      /* the origin's newer answer may not be kept (no-store, private, a
       * deleted resource's 404...): the stored one is outdated and must not
       * come back as a stale fallback either */
      respcache_invalidate(w->cache, call->cache_key, call->cache_key_len);
  } else if (r->status < 400 && !call->safe_method) {
    /* a successful unsafe request makes stored answers for its URI stale
     * (RFC 9111 4.4) */
    invalidate(call, r);
  }
  /* stale-if-error covers 500 and 502..504 (RFC 5861); the static fallback
   * answers for an unavailable upstream (502..504) */
  int unavailable = r->status >= 502 && r->status <= 504;
  cache_flight_done(call, unavailable || r->status == 500);
  if (!(((unavailable || r->status == 500) && answer_stale(call)) ||
        (unavailable && answer_static(call)))) {
    /* only now: a fallback answers with none of this answer's fields */
    relay_headers(call, r);
    if (call->head)
      http_set_head_length(ex, r->has_content_length ? r->content_length : HTTP_LENGTH_UNKNOWN);
    log_cache(call);
    log_streamed(call);
    http_set_reason(ex, r->reason, r->reason_len);
    http_respond(ex, r->status, NULL, r->body, r->body_len);
  }
  gw_state_leave(w, st); /* call lived in the exchange's arena: not used past here */
}

/* What the access line says about the upstream side of this request. */
static void log_upstream(struct proxy_call *call) {
  struct http_exchange *ex = call->ex;
  struct gw_state *st = call->st;
  if (call->logged)
    return;
  call->logged = 1;
  if (call->host >= 0) {
    http_log_str(ex, "upstream", upstream_host_name(st->hosts[call->host]));
    http_log_str(ex, "breaker", breaker_state_name(breaker_state(&st->breakers[call->host])));
  }
  http_log_u64(ex, "attempts", call->attempt + (call->host >= 0 ? 1u : 0u));
  http_log_u64(ex, "upstreamUs", call->upstream_us);
}

static void set_retry_after(struct proxy_call *call, uint64_t ms) {
  if (!ms)
    return;
  char secs[24];
  snprintf(secs, sizeof secs, "%llu", (unsigned long long)((ms + 999) / 1000));
  http_add_header(call->ex, "Retry-After", secs);
}

/* The gateway could not get an answer: the fallback, or err (with
 * Retry-After when call->retry_after_ms says when a breaker lets calls
 * through again: the fallback's answer is not that 503). */
static void fail(struct proxy_call *call, int err, const char *message) {
  log_upstream(call);
  route_outcome(call, 0);
  cache_flight_done(call, 1);
  struct gw_worker *w = call->w;
  struct gw_state *st = call->st;
  if (!answer_fallback(call)) {
    log_cache(call);
    log_streamed(call);
    set_retry_after(call, call->retry_after_ms);
    http_respond_error(call->ex, err, message, NULL);
  }
  gw_state_leave(w, st);
}

/* ---- the request body ------------------------------------------------------ */

/* Lets the client send more body only while the try keeps up. */
static void client_flow(struct proxy_call *call, int go) {
  if (!call->body_stream || call->body_done || call->gathering)
    return;
  if (go && call->client_paused) {
    call->client_paused = 0;
    http_body_resume(call->ex);
  } else if (!go && !call->client_paused) {
    call->client_paused = 1;
    http_body_pause(call->ex);
  }
}

/* Writes n body bytes to the try, framed. Returns upstream_stream_write()'s
 * result (0 sent, 1 queued, < 0 failed). */
static int send_body(struct proxy_call *call, const char *data, size_t n) {
  uv_buf_t b[3];
  unsigned k = 0;
  char line[24];
  if (call->framing == BODY_CHUNKED) {
    int m = snprintf(line, sizeof line, "%zx\r\n", n);
    b[k++] = uv_buf_init(line, (unsigned)m);
  }
  b[k++] = uv_buf_init((char *)data, (unsigned)n);
  if (call->framing == BODY_CHUNKED)
    b[k++] = uv_buf_init((char *)"\r\n", 2);
  call->bytes_up += n;
  return upstream_stream_write(call->up, b, k);
}

/* Moves the body on: writes what the try has not had, ends it once the
 * client's body has ended, and lets the client send more while the try
 * keeps up. Past REPLAY_MAX the body is not kept: what went out is dropped
 * (the upstream's write queue holds anything the socket did not take). */
static void pump(struct proxy_call *call) {
  if (call->up && call->up_ready) {
    if (call->buf_sent < call->buf_len) {
      int r = send_body(call, call->buf + call->buf_sent, call->buf_len - call->buf_sent);
      call->buf_sent = call->buf_len;
      if (r != 0)
        call->up_ready = 0;
    }
    if (call->body_read > REPLAY_MAX) {
      call->replayable = 0;
      call->buf_len = call->buf_sent = 0;
    }
    if (call->up_ready && call->body_done && !call->end_sent) {
      call->end_sent = 1;
      if (call->framing == BODY_CHUNKED) {
        uv_buf_t last = uv_buf_init((char *)"0\r\n\r\n", 5);
        upstream_stream_write(call->up, &last, 1);
      }
      upstream_stream_end(call->up);
    }
  }
  client_flow(call, call->up && call->up_ready);
}

/* ---- tries ---------------------------------------------------------------- */

static void try_next(struct proxy_call *call);

static void on_backoff_closed(uv_handle_t *h) { free(h); }

static void on_backoff(uv_timer_t *t) {
  struct proxy_call *call = t->data;
  call->backoff = NULL;
  uv_close((uv_handle_t *)t, on_backoff_closed);
  try_next(call);
}

static void retry_later(struct proxy_call *call, uint64_t delay_ms) {
  uv_timer_t *t = malloc(sizeof *t);
  if (!t) {
    fail(call, STRATA_EBAD_GATEWAY, "The upstream failed.");
    return;
  }
  uv_timer_init(call->w->loop, t);
  t->data = call;
  call->backoff = t;
  uv_timer_start(t, on_backoff, delay_ms, 0);
}

/* The try ended (rc, and the status when there was an answer): the
 * balancer, the host's breaker, its latency histogram and its counters hear
 * it. A streamed answer is judged by its status and its time to the head,
 * unless its body failed. */
static void try_ended(struct proxy_call *call, int rc, int status) {
  struct gw_worker *w = call->w;
  int host = call->host;
  uint64_t now = uv_now(w->loop);
  uint64_t took_ns = call->head_in ? call->head_ns : uv_hrtime() - call->try_started_ns;
  uint32_t took = (uint32_t)(took_ns / 1000000);
  if (!call->head_in)
    call->upstream_us += took_ns / 1000;
  if (!call->st->upstream_latency[host])
    __atomic_store_n(&call->st->upstream_latency[host], calloc(1, sizeof(struct histogram)),
                     __ATOMIC_RELEASE); /* read by /metrics on other threads */
  if (call->st->upstream_latency[host] && rc != UPSTREAM_ECANCELED)
    histogram_record(call->st->upstream_latency[host], took_ns);
  struct lb_pool *pool = &call->st->pools[call->pool];
  int local = host - (int)call->st->conf->s.pools[call->pool].first;
  lb_end(pool, local);
  int ok = rc == UPSTREAM_OK && status < 500;
  if (rc != UPSTREAM_ESTALE && rc != UPSTREAM_ECANCELED) {
    /* a stale pooled connection says nothing about the host's health */
    breaker_report(&call->st->breakers[host], now, ok, took);
    if (lb_report(pool, local, ok, now)) {
      call->st->stats[host].ejections++;
      log_event(LOG_WARN, "upstream_ejected", NULL, "%s failed %u times in a row: ejected",
                upstream_host_name(call->st->hosts[host]), pool->hosts[local].consecutive_failures);
    }
  }
  if (rc == UPSTREAM_OK)
    call->st->stats[host].responses[status / 100 - 1 < 5 ? status / 100 - 1 : 4]++;
  else if (rc != UPSTREAM_ECANCELED) /* the client gave up: not the host's doing */
    call->st->stats[host].failures++;
}

/* A try that ended before anything reached the client: retry, relay the
 * (buffered) answer, or fail. */
static void on_upstream(struct proxy_call *call, int rc, struct upstream_response *r) {
  struct gw_worker *w = call->w;
  int host = call->host;
  uint64_t now = uv_now(w->loop);
  try_ended(call, rc, rc == UPSTREAM_OK ? r->status : 0);

  /* A stale keep-alive connection is always worth another try (nothing was
   * processed); otherwise the policy decides what is retryable, and only
   * for a request that is safe to repeat or that never left — and whose
   * body can be sent again. */
  int nothing_sent = rc == UPSTREAM_ECONNECT || rc == UPSTREAM_ESTALE;
  const struct retry_policy *pol = &call->route->retry;
  int resendable = !call->body_stream || call->replayable;
  int retryable = resendable &&
                  (rc == UPSTREAM_ESTALE ||
                   (rc != UPSTREAM_ECANCELED && rc != UPSTREAM_EPROTO &&
                    (nothing_sent || call->safe) &&
                    retry_should(pol, upstream_retry_cause(rc), rc == UPSTREAM_OK ? r->status : 0)));
  if (retryable && call->attempt + 1 < pol->max_attempts && now < call->deadline &&
      (rc == UPSTREAM_ESTALE || retry_budget_try(&w->budget, now))) {
    /* Nothing reached the host (a stale connection, a refused connect):
     * go to the next one at once; backoff is for hosts that are busy. */
    uint64_t delay = nothing_sent ? 0
                                  : retry_backoff_ms(pol, call->attempt, trace_random64());
    if (rc == UPSTREAM_OK) {
      size_t len = 0;
      for (unsigned i = 0; i < r->n_headers; i++)
        if (name_is(&r->headers[i], "retry-after")) {
          len = r->headers[i].value_len;
          uint64_t ra = retry_after_parse(r->headers[i].value, len, (uint64_t)time(NULL) * 1000);
          if (ra > delay)
            delay = ra;
        }
    }
    if (now + delay < call->deadline) {
      call->attempt++;
      call->last_host = host;
      call->last_answer = rc == UPSTREAM_OK ? r : NULL; /* in the exchange's arena */
      call->st->stats[host].retries++;
      client_flow(call, 0); /* the body waits for the next try */
      retry_later(call, delay);
      return;
    }
  } else if (retryable && call->attempt + 1 < pol->max_attempts && now < call->deadline) {
    w->budget_exhausted++;
  }
  switch (rc) {
  case UPSTREAM_OK:
    relay(call, r);
    break;
  case UPSTREAM_ETIMEOUT:
    fail(call, STRATA_EGATEWAY_TIMEOUT, "The upstream did not answer in time.");
    break;
  case UPSTREAM_EPROTO:
    fail(call, STRATA_EBAD_GATEWAY, "The upstream sent a malformed response.");
    break;
  case UPSTREAM_ECONNECT:
    fail(call, STRATA_EUNAVAILABLE, "No upstream host could be reached.");
    break;
  default:
    fail(call, STRATA_EBAD_GATEWAY, "The upstream connection failed.");
  }
}

/* ---- upstream events of a try ------------------------------------------------ */

/* What an exchange that ends outside relay()/fail() reports before its
 * final answer: the route's breaker, the cache's waiters, and the access
 * line's upstream, cache and body members. */
static void report_end(struct proxy_call *call, int route_ok) {
  log_upstream(call);
  route_outcome(call, route_ok);
  cache_flight_done(call, !route_ok);
  log_cache(call);
  log_streamed(call);
}

/* RFC 9110 15.2: a proxy forwards 1xx answers it did not ask for itself.
 * 100 Continue is the gateway's own business (it answers Expect and sends
 * none upstream), so that one stays here. */
static void on_up_interim(const struct upstream_response *r, void *arg) {
  struct proxy_call *call = arg;
  if (r->status == 100 || call->streaming_out)
    return;
  struct strbuf sb;
  strbuf_init(&sb, 0);
  int conn = has_connection(r->headers, r->n_headers);
  for (unsigned i = 0; i < r->n_headers; i++) {
    const struct http_header *h = &r->headers[i];
    if (!kept_from_client(r, conn, h))
      put_field(&sb, h);
  }
  if (!sb.failed)
    http_send_interim(call->ex, r->status, sb.data ? sb.data : "", sb.len);
  strbuf_free(&sb);
}

static int on_up_head(struct upstream_response *r, void *arg) {
  struct proxy_call *call = arg;
  call->relay = relay_mode(call, r);
  if (call->relay == RELAY_BUFFER)
    return UPSTREAM_BODY_BUFFER;
  /* From here the answer is the client's: no retry, no fallback. */
  call->streaming_out = 1;
  call->head_in = 1;
  call->head_ns = uv_hrtime() - call->try_started_ns;
  call->upstream_us += call->head_ns / 1000;
  call->headers_mark = http_headers_mark(call->ex);
  relay_headers(call, r);
  http_set_reason(call->ex, r->reason, r->reason_len);
  http_stream_start(call->ex, r->status, NULL,
                    r->has_content_length ? (int64_t)r->content_length : -1);
  return UPSTREAM_BODY_STREAM;
}

static void on_up_data(const char *data, size_t len, void *arg) {
  struct proxy_call *call = arg;
  call->bytes_down += len;
  if (http_stream_write(call->ex, data, len) != 0 && !call->up_paused) {
    call->up_paused = 1; /* resumed by on_client_drain (or on_error follows) */
    upstream_stream_pause(call->up);
  }
}

static void on_up_drain(void *arg) {
  struct proxy_call *call = arg;
  call->up_ready = 1;
  pump(call);
}

static void on_up_end(struct upstream_response *r, void *arg) {
  struct proxy_call *call = arg;
  call->up = NULL;
  if (call->relay == RELAY_BUFFER) {
    on_upstream(call, UPSTREAM_OK, r);
    return;
  }
  struct gw_worker *w = call->w;
  struct gw_state *st = call->st;
  try_ended(call, UPSTREAM_OK, r->status);
  if (r->status < 400 && !call->safe_method)
    invalidate(call, r); /* as relay() does */
  report_end(call, r->status < 500);
  http_stream_end(call->ex);
  gw_state_leave(w, st);
}

static void on_up_error(int rc, void *arg) {
  struct proxy_call *call = arg;
  call->up = NULL;
  if (call->streaming_out && http_stream_retract(call->ex, call->headers_mark) == 0) {
    /* nothing had left yet (it failed in the read that brought the head):
     * as if the answer had never come */
    call->streaming_out = 0;
    call->bytes_down = 0;
  }
  if (!call->streaming_out) {
    on_upstream(call, rc, NULL);
    return;
  }
  /* The client has part of the answer: cut it short. */
  struct gw_worker *w = call->w;
  struct gw_state *st = call->st;
  try_ended(call, rc, 0);
  http_log_str(call->ex, "upstreamError", upstream_result_name(rc));
  report_end(call, 0);
  http_abort(call->ex, STRATA_EBAD_GATEWAY);
  gw_state_leave(w, st);
}

static const struct upstream_stream_cbs upstream_cbs = {
    .on_head = on_up_head,
    .on_interim = on_up_interim,
    .on_data = on_up_data,
    .on_drain = on_up_drain,
    .on_end = on_up_end,
    .on_error = on_up_error,
};

static void try_next(struct proxy_call *call) {
  struct gw_worker *w = call->w;
  uint64_t now = uv_now(w->loop);
  if (now >= call->deadline) {
    if (call->last_answer)
      relay(call, call->last_answer); /* the upstream's own last word */
    else
      fail(call, STRATA_EGATEWAY_TIMEOUT, "The upstream did not answer in time.");
    return;
  }
  /* Pick a host of the route's pool whose breaker lets the call through;
   * a retry prefers another host than the last. */
  int host = -1;
  uint64_t retry_after = 0;
  const struct gw_pool *pc = &call->st->conf->s.pools[call->pool];
  struct lb_pool *pool = &call->st->pools[call->pool];
  int first = (int)pc->first;
  int exclude = call->attempt && call->last_host >= 0 ? call->last_host - first : -1;
  const char *key = NULL;
  size_t key_len = 0;
  if (pc->balance == LB_HASH) {
    struct http_request *req = http_request_of(call->ex);
    if (pc->hash_header[0])
      key = http_header_get(req, pc->hash_header, &key_len);
    else if (pc->hash_param[0] &&
             !gw_route_param(call->route, req->path, req->path_len, pc->hash_param, &key, &key_len))
      key = NULL;
    if (!key) { /* by client address: the part before the port */
      key = req->remote ? req->remote : "";
      const char *colon = strrchr(key, ':');
      key_len = colon ? (size_t)(colon - key) : strlen(key);
    }
  }
  for (unsigned tries = 0; tries < pc->n_hosts + 1; tries++) {
    int h = lb_pick(pool, key, key_len, now, trace_random64(), exclude);
    if (h < 0)
      break;
    if (breaker_allow(&call->st->breakers[first + h], now)) {
      host = first + h;
      break;
    }
    call->st->stats[first + h].breaker_rejected++;
    uint64_t ra = breaker_retry_after_ms(&call->st->breakers[first + h], now);
    if (!retry_after || ra < retry_after)
      retry_after = ra;
    exclude = h;
  }
  if (host < 0) {
    if (call->last_answer) { /* as nginx: the last upstream answer, not ours */
      relay(call, call->last_answer);
      return;
    }
    call->retry_after_ms = retry_after;
    fail(call, STRATA_EUNAVAILABLE, "No upstream host is available.");
    return;
  }
  call->host = host;
  call->try_started = now;
  call->try_started_ns = uv_hrtime();
  call->relay = RELAY_BUFFER;
  call->head_in = 0;
  call->up_paused = 0;
  call->up_ready = 0;
  call->end_sent = 0;
  call->buf_sent = 0; /* a retry sends the kept body again */
  lb_begin(pool, host - first);
  call->st->stats[host].requests++;
  uint64_t left = deadline_try_ms(&call->route->retry, call->deadline, now);
  struct upstream_stream_req r = {
      .head = call->request,
      .len = call->len,
      .head_request = call->head,
      .body_follows = call->body_stream,
      .timeout_ms = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left,
      .idle_timeout_ms = call->route->retry.per_try_timeout_ms,
      .max_body = call->st->conf->s.max_response_bytes,
  };
  if (upstream_stream(call->st->hosts[host], &r, http_arena(call->ex), &upstream_cbs, call,
                      &call->up) != 0) {
    call->up = NULL;
    lb_end(pool, host - first);
    fail(call, STRATA_EINTERNAL, "The request could not be sent upstream.");
  }
}

/* The route's breaker, then the upstream: the part of a request after the
 * cache had nothing for it. */
/* ---- client events ------------------------------------------------------------ */

/* Ends the exchange early (the client failed, or the body cannot be
 * handled): the try in flight or the retry waiting is dropped first. */
static void give_up(struct proxy_call *call, int err) {
  struct gw_worker *w = call->w;
  struct gw_state *st = call->st;
  if (call->backoff) {
    uv_close((uv_handle_t *)call->backoff, on_backoff_closed);
    call->backoff = NULL;
  }
  if (call->up) {
    upstream_cancel(call->up);
    call->up = NULL;
    try_ended(call, UPSTREAM_ECANCELED, 0);
  }
  report_end(call, 1); /* not the upstream's doing */
  http_abort(call->ex, err);
  gw_state_leave(w, st);
}

/* Gathering is over: the total timeout counts from here, as it does from
 * the end of a body the server read whole. */
static void gathered(struct proxy_call *call) {
  call->gathering = 0;
  call->deadline = deadline_after(uv_now(call->w->loop), call->route->retry.total_timeout_ms);
}

/* The body outgrew what is gathered: the try starts with the head and
 * what came so far; the rest streams. */
static void start_streaming(struct proxy_call *call) {
  gathered(call);
  call->client_paused = 1;
  http_body_pause(call->ex); /* until the try is ready (on_up_drain) */
  call->framing = http_body_length(call->ex) >= 0 ? BODY_LENGTH : BODY_CHUNKED;
  if (build_request(call, NULL, 0, (enum body_framing)call->framing) != 0) {
    give_up(call, STRATA_EINTERNAL);
    return;
  }
  try_next(call);
}

static void on_client_body(struct http_exchange *ex, const char *data, size_t len, void *arg) {
  (void)ex;
  struct proxy_call *call = arg;
  call->body_read += len;
  if (call->up && call->up_ready && call->buf_len == 0 && !call->replayable) {
    /* streaming past the retry buffer: straight from the client's read */
    if (send_body(call, data, len) != 0) {
      call->up_ready = 0;
      client_flow(call, 0);
    }
    return;
  }
  if (len > BODY_BUF_CAP - call->buf_len) {
    give_up(call, STRATA_EINTERNAL); /* cannot happen: the client is paused in time */
    return;
  }
  memcpy(call->buf + call->buf_len, data, len);
  call->buf_len += len;
  if (call->gathering) {
    if (call->buf_len >= REPLAY_MAX)
      start_streaming(call);
    return;
  }
  pump(call);
}

static void on_client_body_end(struct http_exchange *ex, void *arg) {
  (void)ex;
  struct proxy_call *call = arg;
  call->body_done = 1;
  if (!call->gathering) {
    pump(call);
    return;
  }
  /* The whole body fits: an ordinary request, retried like any other. */
  gathered(call);
  call->body_stream = 0;
  if (build_request(call, call->buf, call->buf_len, BODY_INLINE) != 0) {
    give_up(call, STRATA_EINTERNAL);
    return;
  }
  try_next(call);
}

static void on_client_drain(struct http_exchange *ex, void *arg) {
  (void)ex;
  struct proxy_call *call = arg;
  if (call->up_paused && call->up) {
    call->up_paused = 0;
    upstream_stream_resume(call->up);
  }
}

static void on_client_error(struct http_exchange *ex, int err, void *arg) {
  (void)ex;
  give_up(arg, err);
}

static const struct http_stream_cbs client_cbs = {
    .on_body = on_client_body,
    .on_body_end = on_client_body_end,
    .on_drain = on_client_drain,
    .on_error = on_client_error,
};

static void start(struct proxy_call *call) {
  struct gw_worker *w = call->w;
  struct gw_state *st = call->st;
  struct http_exchange *ex = call->ex;
  if (http_stream_attach(ex, &client_cbs, call) != 0) {
    /* the client left while the request waited on the cache */
    cache_flight_done(call, 0);
    log_cache(call);
    http_abort(ex, STRATA_ECLIENT_CLOSED);
    gw_state_leave(w, st);
    return;
  }
  /* The route's own breaker first: while it is open the answer (fallback
   * or 503 + Retry-After) costs no upstream work. */
  struct breaker *rb = &st->route_breakers[call->route_index];
  uint64_t now = uv_now(w->loop);
  if (!breaker_allow(rb, now)) {
    st->route_stats[call->route_index].breaker_rejected++;
    http_log_str(ex, "breaker", breaker_state_name(breaker_state(rb)));
    cache_flight_done(call, 1);
    if (!answer_fallback(call)) {
      log_cache(call);
      set_retry_after(call, breaker_retry_after_ms(rb, now));
      http_respond_error(ex, STRATA_EUNAVAILABLE, "The route's circuit breaker is open.", NULL);
    }
    gw_state_leave(w, st);
    return;
  }
  call->route_breaker = 1;
  retry_budget_request(&w->budget, now);
  if (http_body_streaming(ex)) {
    /* Gather the first REPLAY_MAX bytes (100 Continue goes out now). */
    call->buf = arena_alloc(http_arena(ex), BODY_BUF_CAP);
    if (!call->buf) {
      give_up(call, STRATA_EINTERNAL);
      return;
    }
    call->body_stream = 1;
    call->gathering = 1;
    call->replayable = 1;
    http_body_start(ex);
    return;
  }
  struct http_request *req = http_request_of(ex);
  if (build_request(call, req->body, req->body_len, BODY_INLINE) != 0) {
    route_outcome(call, 1); /* not the upstream's fault */
    cache_flight_done(call, 0);
    http_respond_error(ex, STRATA_EINTERNAL, NULL, NULL);
    gw_state_leave(w, st);
    return;
  }
  try_next(call);
}

static void on_cache_timer(uv_timer_t *t) {
  struct gw_worker *w = t->data;
  gw_cache_arm(w, respcache_tick(w->cache, uv_now(w->loop)));
}

void gw_cache_arm(struct gw_worker *w, uint64_t deadline) {
  if (deadline == UINT64_MAX) {
    uv_timer_stop(&w->cache_timer);
    return;
  }
  uint64_t now = uv_now(w->loop);
  uv_timer_start(&w->cache_timer, on_cache_timer, deadline > now ? deadline - now : 0, 0);
}

/* A request that waited on another's fetch of the same response. */
static void on_cache_wait(enum respcache_result r, const struct respcache_hit *hit, void *arg) {
  struct proxy_call *call = arg;
  if (r == RESPCACHE_HIT) {
    struct gw_worker *w = call->w;
    struct gw_state *st = call->st;
    if (hit->status == RESPCACHE_STATUS_STALE)
      answer_stale_hit(call, hit); /* the fetch it waited on failed */
    else
      answer_cached(call, hit);
    gw_state_leave(w, st);
  } else if (r == RESPCACHE_FETCH) {
    call->cache_status = "MISS";
    start(call);
  } else { /* the worker is stopping */
    struct gw_worker *w = call->w;
    struct gw_state *st = call->st;
    http_respond_error(call->ex, STRATA_EUNAVAILABLE, "The gateway is stopping.", NULL);
    gw_state_leave(w, st);
  }
}

/* Looks the request up in the response cache when its route caches.
 * Returns 1 when it was answered or waits (on_cache_wait), 0 to go on. */
static int try_cache(struct proxy_call *call, struct http_request *req) {
  const struct route_config *rc = &call->route->rc;
  if (!rc->cache_ttl_ms && !rc->cache_stale_if_error_ms)
    return 0;
  size_t host_len = 0;
  const char *host = http_header_get(req, "host", &host_len);
  char *key = arena_alloc(http_arena(call->ex), RESPCACHE_KEY_MAX + 1);
  size_t n = key ? respcache_key(key, RESPCACHE_KEY_MAX + 1, req->method, host ? host : "",
                                 host_len, req->path, req->path_len, req->query, req->query_len)
                 : 0;
  if (!n)
    return 0; /* not GET or HEAD, or too long a key: not cached */
  call->cache_key = key;
  call->cache_key_len = n;
  respcache_request_init(&call->crq, req->method, req->headers, req->n_headers,
                         call->id && call->id->kind != AUTH_KIND_NONE);
  struct gw_worker *w = call->w;
  call->crq.epoch = respcache_fetch_epoch(w->cache); /* what it may store is from now on */
  struct respcache_hit hit;
  uint64_t now = uv_now(w->loop);
  /* only-if-cached: a stored answer or 504, never a fetch (nor a wait on one) */
  int only = (call->crq.flags & RESPCACHE_REQ_ONLY_IF_CACHED) != 0;
  enum respcache_result r =
      respcache_lookup_or_join(w->cache, key, n, &call->crq, now, only ? NULL : on_cache_wait, call, &hit);
  if (only && r != RESPCACHE_HIT) {
    call->cache_status = respcache_status_name(hit.status);
    log_cache(call);
    http_respond_error(call->ex, STRATA_EGATEWAY_TIMEOUT,
                       "Not in the cache, and the request said only-if-cached.", NULL);
    gw_state_leave(w, call->st);
    return 1;
  }
  switch (r) {
  case RESPCACHE_HIT:
    answer_cached(call, &hit);
    gw_state_leave(w, call->st);
    return 1;
  case RESPCACHE_WAIT:
    gw_cache_arm(w, respcache_tick(w->cache, now));
    return 1;
  case RESPCACHE_LEAD:
    call->cache_lead = 1;
    /* fall through */
  default:
    call->cache_status = respcache_status_name(hit.status);
    return 0;
  }
}

/* ---- Max-Forwards (RFC 9110 7.6.2) -------------------------------------- */

#define MAX_FORWARDS_CAP 255L /* the most this gateway passes on (after its decrement) */

/* The Max-Forwards of an OPTIONS or TRACE request (capped): -1 when there
 * is none or the method is another (the field means nothing there), -2
 * when its value is not a number. */
static long max_forwards(const struct http_request *req) {
  if (strcmp(req->method, "OPTIONS") != 0 && strcmp(req->method, "TRACE") != 0)
    return -1;
  size_t len = 0;
  const char *v = http_header_get(req, "max-forwards", &len);
  if (!v)
    return -1;
  if (!len)
    return -2;
  long n = 0;
  for (size_t i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9')
      return -2;
    if (n <= MAX_FORWARDS_CAP + 1)
      n = n * 10 + (v[i] - '0');
  }
  /* RFC 9110 7.6.2: the lesser of the value less one and our maximum */
  return n > MAX_FORWARDS_CAP + 1 ? MAX_FORWARDS_CAP + 1 : n;
}

/* Fields a TRACE echo leaves out: credentials (RFC 9110 9.3.8). */
static int secret_field(const struct http_header *h) {
  static const struct name secret[] = {NAME("authorization"), NAME("proxy-authorization"),
                                       NAME("cookie"), NAME("x-api-key"), {NULL, 0}};
  return in_list(h, secret) || identity_is_reserved_header(h->name, h->name_len);
}

/* Allow for an OPTIONS the gateway answers: the methods some route takes
 * for this host and path (RFC 9110 9.3.7 says the answer SHOULD list them). */
static void add_allow(struct http_exchange *ex, const struct gw_settings *s,
                      const struct http_request *req) {
  static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
                                        "TRACE"};
  size_t host_len = 0;
  const char *host = http_header_get(req, "host", &host_len);
  char allow[64] = "";
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (gw_route_match(s, host, host_len, methods[i], req->path, req->path_len) >= 0) {
      if (allow[0])
        strcat(allow, ", ");
      strcat(allow, methods[i]);
    }
  http_add_header(ex, "Allow", allow);
}

/* Max-Forwards: 0 — the gateway is the final recipient: TRACE gets its
 * request back as message/http, OPTIONS an empty 200 with Allow. */
static void answer_last_hop(struct http_exchange *ex, const struct gw_settings *s,
                            const struct http_request *req) {
  if (strcmp(req->method, "OPTIONS") == 0) {
    add_allow(ex, s, req);
    http_respond(ex, 200, NULL, NULL, 0);
    return;
  }
  struct strbuf sb;
  strbuf_init(&sb, 0); /* the head was bounded when it was read */
  strbuf_append(&sb, req->method, req->method_len);
  strbuf_putc(&sb, ' ');
  strbuf_append(&sb, req->target, req->target_len);
  strbuf_puts(&sb, req->version_minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  for (unsigned i = 0; i < req->n_headers; i++) {
    const struct http_header *h = &req->headers[i];
    if (secret_field(h))
      continue;
    put_field(&sb, h);
  }
  strbuf_puts(&sb, "\r\n");
  if (sb.failed)
    http_respond_error(ex, STRATA_EINTERNAL, NULL, NULL);
  else
    http_respond(ex, 200, "message/http", sb.data, sb.len);
  strbuf_free(&sb);
}

void gw_proxy(struct http_exchange *ex, struct gw_state *st, unsigned route,
              const struct auth_identity *id) {
  struct gw_worker *w = http_worker_data(ex);
  struct http_request *req = http_request_of(ex);
  struct proxy_call *call = arena_alloc(http_arena(ex), sizeof *call);
  if (!call || !w) {
    http_respond_error(ex, STRATA_EINTERNAL, NULL, NULL);
    return;
  }
  memset(call, 0, sizeof *call);
  call->max_forwards = max_forwards(req);
  if (call->max_forwards == -2) {
    http_respond_error(ex, STRATA_EBAD_REQUEST, "Max-Forwards must be a non-negative integer.",
                       NULL);
    return;
  }
  if (call->max_forwards == 0) {
    answer_last_hop(ex, &st->conf->s, req);
    return;
  }
  call->ex = ex;
  call->w = w;
  call->st = st;
  call->id = id;
  call->route = &st->conf->s.routes[route];
  call->route_index = route;
  call->pool = call->route->pool;
  call->head = strcmp(req->method, "HEAD") == 0;
  call->safe_method = call->head || strcmp(req->method, "GET") == 0 ||
                      strcmp(req->method, "OPTIONS") == 0 || strcmp(req->method, "TRACE") == 0;
  call->safe = retry_is_safe(req->method, http_header_get(req, "idempotency-key", NULL) != NULL, 0);
  call->started = uv_now(w->loop);
  call->deadline = deadline_after(call->started, call->route->retry.total_timeout_ms);
  call->last_host = -1;
  call->host = -1;
  const struct route_config *rc = &call->route->rc;
  if (!rc->strip_prefix && !rc->rewrite_prefix[0]) { /* most routes: the path as received */
    call->path = req->path;
    call->path_len = req->path_len;
  } else {
    size_t cap = req->path_len + sizeof rc->rewrite_prefix + 2;
    char *path = arena_alloc(http_arena(ex), cap);
    call->path_len = path ? gw_route_rewrite(call->route, req->path, req->path_len, path, cap) : 0;
    call->path = path;
  }
  if (!call->path_len) {
    http_respond_error(ex, STRATA_EINTERNAL, NULL, NULL);
    return;
  }
  st->in_flight++; /* until the answer: gw_state_leave() */
  if (try_cache(call, req))
    return;
  start(call);
}
