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
 * are propagated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/error.h"
#include "core/strbuf.h"
#include "gateway/identity.h"
#include "gateway/internal.h"
#include "observe/log.h"
#include "observe/trace.h"

struct proxy_call {
  struct http_exchange *ex;
  const struct auth_identity *id;
  struct gw_worker *w;
  char *request;
  size_t len;
  int head;
  int safe;
  unsigned attempt;
  int host;
  int last_host;
  uint64_t started, deadline;
  uint64_t try_started;
  uint64_t try_started_ns;
  uint64_t upstream_us; /* time spent waiting on upstreams, all tries */
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
  static const struct name ours_resp[] = {NAME("date"), NAME("x-request-id"), {NULL, 0}};
  if (in_list(h, hop))
    return 1;
  if (request)
    return in_list(h, ours_req) || identity_is_reserved_header(h->name, h->name_len);
  return in_list(h, ours_resp);
}

/* 1 when some header of hs is called Connection (most messages have none,
 * and then no header needs the token check below). */
static int has_connection(const struct http_header *hs, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    if (hs[i].name_len == 10 && strncasecmp(hs[i].name, "connection", 10) == 0)
      return 1;
  return 0;
}

/* 1 when h is named as a token of a Connection header in hs. */
static int listed_in_connection(const struct http_header *hs, unsigned n,
                                const struct http_header *h) {
  for (unsigned i = 0; i < n; i++) {
    if (!name_is(&hs[i], "connection"))
      continue;
    const char *p = hs[i].value, *end = p + hs[i].value_len;
    while (p < end) {
      while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
        p++;
      const char *tok = p;
      while (p < end && *p != ',' && *p != ' ' && *p != '\t')
        p++;
      if ((size_t)(p - tok) == h->name_len && strncasecmp(tok, h->name, h->name_len) == 0)
        return 1;
    }
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

static int build_request(struct proxy_call *call) {
  struct http_request *req = http_request_of(call->ex);
  const struct gw_settings *s = &call->w->g->s;
  struct strbuf sb = call->w->request_buf; /* reused: no malloc per request */
  strbuf_clear(&sb);
  strbuf_append(&sb, req->method, req->method_len);
  strbuf_putc(&sb, ' ');
  strbuf_append(&sb, req->path, req->path_len);
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
    strbuf_append(&sb, h->name, h->name_len);
    strbuf_puts(&sb, ": ");
    strbuf_append(&sb, h->value, h->value_len);
    strbuf_puts(&sb, "\r\n");
  }
  if (!host) { /* HTTP/1.0 without Host: name the upstream */
    strbuf_puts(&sb, "Host: ");
    strbuf_puts(&sb, upstream_host_name(call->w->hosts[0]));
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
  uint64_t budget = deadline_try_ms(&call->w->g->retry, call->deadline, uv_now(call->w->loop));
  if (budget != UINT64_MAX) {
    strbuf_puts(&sb, "\r\n" DEADLINE_HEADER ": ");
    put_u64(&sb, budget);
  }
  if (s->identity_secret[0]) {
    /* Services configured with the same secret refuse anything unsigned. */
    char lines[IDENTITY_HEADERS_MAX];
    const struct auth_identity *id = call->id && call->id->kind != AUTH_KIND_NONE ? call->id : NULL;
    size_t n = identity_headers(s->identity_secret, id, req->method, req->path, req->request_id,
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
  if (req->body_len || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0 ||
      strcmp(req->method, "PATCH") == 0) {
    strbuf_puts(&sb, "\r\nContent-Length: ");
    put_u64(&sb, req->body_len);
  }
  strbuf_puts(&sb, "\r\n\r\n");
  strbuf_append(&sb, req->body, req->body_len);
  call->w->request_buf = sb; /* keep the grown buffer for the next request */
  if (sb.failed)
    return -1;
  call->request = arena_strndup(http_arena(call->ex), sb.data, sb.len);
  call->len = sb.len;
  return call->request ? 0 : -1;
}

/* ---- answering ---------------------------------------------------------- */

static void log_upstream(struct proxy_call *call);

static void relay(struct proxy_call *call, struct upstream_response *r) {
  struct http_exchange *ex = call->ex;
  int conn = has_connection(r->headers, r->n_headers);
  for (unsigned i = 0; i < r->n_headers; i++) {
    const struct http_header *h = &r->headers[i];
    if (never_forwarded(h, 0) || (conn && listed_in_connection(r->headers, r->n_headers, h)))
      continue;
    http_add_header_n(ex, h->name, h->name_len, h->value, h->value_len);
  }
  if (call->head && r->has_content_length)
    http_set_head_length(ex, r->content_length);
  log_upstream(call);
  http_respond(ex, r->status, NULL, r->body, r->body_len);
}

/* What the access line says about the upstream side of this request. */
static void log_upstream(struct proxy_call *call) {
  struct http_exchange *ex = call->ex;
  struct gw_worker *w = call->w;
  if (call->host >= 0) {
    http_log_str(ex, "upstream", upstream_host_name(w->hosts[call->host]));
    http_log_str(ex, "breaker", breaker_state_name(breaker_state(&w->breakers[call->host])));
  }
  http_log_u64(ex, "attempts", call->attempt + (call->host >= 0 ? 1u : 0u));
  http_log_u64(ex, "upstreamUs", call->upstream_us);
}

static void fail(struct proxy_call *call, int err, const char *message) {
  log_upstream(call);
  http_respond_error(call->ex, err, message, NULL);
}

/* ---- tries ---------------------------------------------------------------- */

static void try_next(struct proxy_call *call);

static void on_backoff_closed(uv_handle_t *h) { free(h); }

static void on_backoff(uv_timer_t *t) {
  struct proxy_call *call = t->data;
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
  uv_timer_start(t, on_backoff, delay_ms, 0);
}

static void on_upstream(int rc, struct upstream_response *r, void *arg) {
  struct proxy_call *call = arg;
  struct gw_worker *w = call->w;
  int host = call->host;
  uint64_t now = uv_now(w->loop);
  uint32_t took = (uint32_t)(now - call->try_started);
  call->upstream_us += (uv_hrtime() - call->try_started_ns) / 1000;
  lb_end(&w->pool, host);
  int ok = rc == UPSTREAM_OK && r->status < 500;
  if (rc != UPSTREAM_ESTALE && rc != UPSTREAM_ECANCELED) {
    /* a stale pooled connection says nothing about the host's health */
    breaker_report(&w->breakers[host], now, ok, took);
    lb_report(&w->pool, host, ok, now);
  }
  if (rc == UPSTREAM_OK)
    w->stats[host].responses[r->status / 100 - 1 < 5 ? r->status / 100 - 1 : 4]++;
  else
    w->stats[host].failures++;

  /* A stale keep-alive connection is always worth another try (nothing was
   * processed); otherwise the policy decides what is retryable, and only
   * for a request that is safe to repeat or that never left. */
  int nothing_sent = rc == UPSTREAM_ECONNECT || rc == UPSTREAM_ESTALE;
  const struct retry_policy *pol = &w->g->retry;
  int retryable = rc == UPSTREAM_ESTALE ||
                  (rc != UPSTREAM_ECANCELED && rc != UPSTREAM_EPROTO &&
                   (nothing_sent || call->safe) &&
                   retry_should(pol, upstream_retry_cause(rc), rc == UPSTREAM_OK ? r->status : 0));
  if (retryable && call->attempt + 1 < w->g->retry.max_attempts && now < call->deadline &&
      (rc == UPSTREAM_ESTALE || retry_budget_try(&w->budget, now))) {
    /* Nothing reached the host (a stale connection, a refused connect):
     * go to the next one at once; backoff is for hosts that are busy. */
    uint64_t delay = nothing_sent ? 0
                                  : retry_backoff_ms(&w->g->retry, call->attempt, trace_random64());
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
      w->stats[host].retries++;
      retry_later(call, delay);
      return;
    }
  } else if (retryable && call->attempt + 1 < w->g->retry.max_attempts && now < call->deadline) {
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

static void try_next(struct proxy_call *call) {
  struct gw_worker *w = call->w;
  uint64_t now = uv_now(w->loop);
  if (now >= call->deadline) {
    fail(call, STRATA_EGATEWAY_TIMEOUT, "The upstream did not answer in time.");
    return;
  }
  /* Pick a host whose breaker lets the call through; a retry prefers
   * another host than the last. */
  int host = -1;
  uint64_t retry_after = 0;
  int exclude = call->attempt ? call->last_host : -1;
  const char *key = NULL;
  size_t key_len = 0;
  if (w->g->lb.algorithm == LB_HASH) {
    struct http_request *req = http_request_of(call->ex);
    if (w->g->s.hash_header[0])
      key = http_header_get(req, w->g->s.hash_header, &key_len);
    if (!key) { /* by client address: the part before the port */
      key = req->remote ? req->remote : "";
      const char *colon = strrchr(key, ':');
      key_len = colon ? (size_t)(colon - key) : strlen(key);
    }
  }
  for (unsigned tries = 0; tries < w->g->s.n_hosts + 1; tries++) {
    int h = lb_pick(&w->pool, key, key_len, now, trace_random64(), exclude);
    if (h < 0)
      break;
    if (breaker_allow(&w->breakers[h], now)) {
      host = h;
      break;
    }
    w->stats[h].breaker_rejected++;
    uint64_t ra = breaker_retry_after_ms(&w->breakers[h], now);
    if (!retry_after || ra < retry_after)
      retry_after = ra;
    exclude = h;
  }
  if (host < 0) {
    char secs[24];
    snprintf(secs, sizeof secs, "%llu", (unsigned long long)((retry_after + 999) / 1000));
    if (retry_after)
      http_add_header(call->ex, "Retry-After", secs);
    fail(call, STRATA_EUNAVAILABLE, "No upstream host is available.");
    return;
  }
  call->host = host;
  call->try_started = now;
  call->try_started_ns = uv_hrtime();
  lb_begin(&w->pool, host);
  w->stats[host].requests++;
  uint64_t left = deadline_try_ms(&w->g->retry, call->deadline, now);
  uint32_t timeout = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
  if (upstream_request(w->hosts[host], call->request, call->len, call->head, timeout,
                       w->g->s.max_response_bytes, http_arena(call->ex), on_upstream, call,
                       NULL) != 0) {
    lb_end(&w->pool, host);
    fail(call, STRATA_EINTERNAL, "The request could not be sent upstream.");
  }
}

void gw_proxy(struct http_exchange *ex, const struct auth_identity *id) {
  struct gw_worker *w = http_worker_data(ex);
  struct http_request *req = http_request_of(ex);
  struct proxy_call *call = arena_alloc(http_arena(ex), sizeof *call);
  if (!call || !w) {
    http_respond_error(ex, STRATA_EINTERNAL, NULL, NULL);
    return;
  }
  memset(call, 0, sizeof *call);
  call->ex = ex;
  call->w = w;
  call->id = id;
  call->head = strcmp(req->method, "HEAD") == 0;
  call->safe = retry_is_safe(req->method, http_header_get(req, "idempotency-key", NULL) != NULL, 0);
  call->started = uv_now(w->loop);
  call->deadline = deadline_after(call->started, w->g->retry.total_timeout_ms);
  call->last_host = -1;
  call->host = -1;
  retry_budget_request(&w->budget, call->started);
  if (build_request(call) != 0) {
    http_respond_error(ex, STRATA_EINTERNAL, NULL, NULL);
    return;
  }
  try_next(call);
}
