/* Remote domain calls over HTTP with the resilience layer; see remote.h. */
#include "app/remote.h"

#include "app/trust.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/error.h"
#include "gateway/balancer.h"
#include "gateway/identity.h"
#include "gateway/upstream.h"
#include "observe/log.h"
#include "observe/trace.h"

void remote_settings_default(struct remote_settings *s) {
  memset(s, 0, sizeof *s);
  s->connect_timeout_ms = 500;
  s->max_idle = 16;
  s->max_response_bytes = 8u << 20;
  retry_policy_default(&s->retry);
  s->retry.max_attempts = 3;
  s->retry.base_ms = 25;
  s->retry.cap_ms = 250;
  s->retry.per_try_timeout_ms = 1000;
  s->retry.total_timeout_ms = 3000;
  breaker_config_default(&s->breaker);
  s->breaker.failure_rate_pct = 50;
  s->breaker.min_calls = 5;
  s->breaker.window_s = 10;
  s->breaker.open_ms = 1000;
  s->breaker.half_open_probes = 1;
}

/* ---- what travels with a call ------------------------------------------- */

/* The caller's identity, as the trust filter verified it on the way in
 * (NULL without an identity secret, or for an internal caller without an
 * exchange): anonymous. Verified once there, not again here. */
static void origin_identity(struct http_exchange *ex, const char *secret,
                            struct auth_identity *id) {
  const struct auth_identity *verified = ex && secret && secret[0] ? trust_identity(ex) : NULL;
  if (verified)
    *id = *verified;
  else
    memset(id, 0, sizeof *id);
}

void remote_origin_from(struct http_exchange *ex, const char *secret, uint64_t now_ms,
                        struct remote_origin *o) {
  memset(o, 0, sizeof *o);
  o->deadline_ms = DEADLINE_NONE;
  origin_identity(ex, secret, &o->id);
  const struct http_request *req = ex ? http_request_of(ex) : NULL;
  if (req && req->request_id_len && req->request_id_len < sizeof o->request_id) {
    memcpy(o->request_id, req->request_id, req->request_id_len);
    o->request_id[req->request_id_len] = '\0';
  } else {
    snprintf(o->request_id, sizeof o->request_id, "int-%016llx",
             (unsigned long long)trace_random64());
  }
  if (!req)
    return;
  o->trace = req->trace;
  size_t len = 0;
  const char *v = http_header_get(req, DEADLINE_HEADER, &len);
  uint64_t left;
  if (v && deadline_parse(v, len, &left) == 0)
    o->deadline_ms = deadline_after(now_ms, left ? left : 1); /* 0 left: already late */
}

int remote_format_request(struct strbuf *sb, const char *path, const char *host,
                          const struct remote_origin *o, uint64_t deadline_left_ms,
                          const char *secret, uint64_t now_s) {
  strbuf_puts(sb, "GET ");
  strbuf_puts(sb, path);
  strbuf_puts(sb, " HTTP/1.1\r\nHost: ");
  strbuf_puts(sb, host);
  strbuf_puts(sb, "\r\nAccept: application/json\r\nX-Request-Id: ");
  strbuf_puts(sb, o->request_id);
  char tp[56];
  trace_child(&o->trace, tp);
  strbuf_puts(sb, "\r\ntraceparent: ");
  strbuf_puts(sb, tp);
  strbuf_puts(sb, "\r\n");
  if (deadline_left_ms != UINT64_MAX) {
    char num[DEADLINE_VALUE_MAX];
    deadline_format(num, sizeof num, deadline_left_ms);
    strbuf_puts(sb, DEADLINE_HEADER ": ");
    strbuf_puts(sb, num);
    strbuf_puts(sb, "\r\n");
  }
  if (secret && secret[0]) {
    /* Signed over the path without its query, as the receiver checks it. */
    char bare[IDENTITY_PATH_MAX + 1], lines[IDENTITY_HEADERS_MAX];
    size_t n = strcspn(path, "?");
    if (n > IDENTITY_PATH_MAX)
      return -1;
    memcpy(bare, path, n);
    bare[n] = '\0';
    const struct auth_identity *id = o->id.kind != AUTH_KIND_NONE ? &o->id : NULL;
    size_t len = identity_headers(secret, id, "GET", bare, o->request_id, now_s, lines,
                                  sizeof lines);
    if (len == 0)
      return -1;
    strbuf_append(sb, lines, len);
  }
  strbuf_puts(sb, "\r\n");
  return sb->failed ? -1 : 0;
}

int remote_status_rc(int status) {
  if (status >= 200 && status < 300)
    return 1;
  if (status == 404)
    return 0;
  return status >= 500 ? STRATA_EUNAVAILABLE : STRATA_EBAD_GATEWAY;
}

/* ---- per-loop state ------------------------------------------------------ */

struct rtarget {
  struct topology_target t;
  struct upstream_host *hosts[REMOTE_MAX_INSTANCES];
  struct breaker breakers[REMOTE_MAX_INSTANCES];
  unsigned n;
  struct lb_pool pool;
};

struct remote {
  uv_loop_t *loop;
  struct remote_settings s;
  const char *secret;
  struct rtarget targets[REMOTE_MAX_TARGETS];
  unsigned n_targets;
  struct retry_budget budget;
  unsigned in_flight; /* remote_get() calls whose callback has not run */
  int closing;        /* remote_free() was called */
};

struct remote_call {
  uv_timer_t timer; /* backoff, and failures reported from the loop */
  struct remote *r;
  int target;
  int host, last_host; /* instance of this try / of the last failed one */
  unsigned attempt;
  unsigned tries; /* requests actually sent */
  uint64_t deadline, try_started;
  char *path;
  struct strbuf request; /* this try's bytes: valid until its callback */
  struct remote_origin origin;
  struct arena *a;
  int fail_rc; /* what the timer reports when it fires for a failure */
  remote_done_cb cb;
  void *arg;
};

static void on_breaker_change(void *ctx, const struct breaker *b, enum breaker_state from,
                              enum breaker_state to, const char *reason, uint64_t now_ms) {
  (void)b;
  (void)now_ms;
  log_event(to == BREAKER_OPEN ? LOG_WARN : LOG_INFO, "remote_breaker", NULL, "%s: %s -> %s (%s)",
            (const char *)ctx, breaker_state_name(from), breaker_state_name(to), reason);
}

struct remote *remote_new(uv_loop_t *loop, const struct remote_settings *s,
                          const struct topology_target *targets, unsigned n, const char *secret) {
  struct remote *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->loop = loop;
  r->s = *s;
  r->secret = secret && secret[0] ? secret : NULL;
  retry_budget_init(&r->budget, NULL);
  struct lb_settings lb;
  lb_settings_default(&lb);
  lb.eject_consecutive = 0; /* the breakers take a failing instance out */
  for (unsigned i = 0; i < n && i < REMOTE_MAX_TARGETS; i++, r->n_targets++) {
    struct rtarget *t = &r->targets[i];
    t->t = targets[i];
    t->n = t->t.instances < REMOTE_MAX_INSTANCES ? t->t.instances : REMOTE_MAX_INSTANCES;
    struct lb_host_config hc[REMOTE_MAX_INSTANCES];
    for (unsigned k = 0; k < t->n; k++) {
      t->hosts[k] = upstream_host_new(loop, t->t.host, (uint16_t)(t->t.port + k), s->max_idle,
                                      s->connect_timeout_ms);
      if (!t->hosts[k])
        goto fail;
      breaker_init(&t->breakers[k], &s->breaker);
      breaker_set_transition_cb(&t->breakers[k], on_breaker_change,
                                (void *)upstream_host_name(t->hosts[k]));
      hc[k].address = upstream_host_name(t->hosts[k]);
      hc[k].weight = 1;
    }
    if (lb_pool_init(&t->pool, hc, t->n, &lb) != 0)
      goto fail;
  }
  return r;
fail:
  r->n_targets++; /* the half-built target is freed too */
  remote_free(r);
  return NULL;
}

static void destroy(struct remote *r) {
  for (unsigned i = 0; i < r->n_targets; i++)
    lb_pool_free(&r->targets[i].pool);
  free(r);
}

void remote_free(struct remote *r) {
  if (!r)
    return;
  r->closing = 1;
  for (unsigned i = 0; i < r->n_targets; i++)
    for (unsigned k = 0; k < r->targets[i].n; k++) {
      upstream_host_free(r->targets[i].hosts[k]); /* calls in flight still end */
      r->targets[i].hosts[k] = NULL;
    }
  if (r->in_flight == 0)
    destroy(r);
}

/* ---- one call -------------------------------------------------------------- */

static void on_call_closed(uv_handle_t *h) {
  struct remote_call *c = h->data;
  strbuf_free(&c->request);
  free(c);
}

/* The only place the callback runs; always from a libuv callback. */
static void finish(struct remote_call *c, int rc, int status, const char *body, size_t len) {
  struct remote *r = c->r;
  remote_done_cb cb = c->cb;
  void *arg = c->arg;
  if (rc < 0 && log_enabled(LOG_WARN)) {
    char fields[REMOTE_REQUEST_ID_MAX + 16];
    snprintf(fields, sizeof fields, "\"requestId\":\"%s\"", c->origin.request_id);
    const char *last = c->host >= 0 && r->targets[c->target].hosts[c->host]
                           ? upstream_host_name(r->targets[c->target].hosts[c->host])
                           : "none: every breaker open";
    log_event(LOG_WARN, "remote_failed", fields, "GET %s on services.%s failed (%s) after %u %s; "
              "last instance tried: %s", c->path,
              c->target >= 0 ? r->targets[c->target].t.service : "(none hosts it)",
              strata_error_code(rc), c->tries, c->tries == 1 ? "try" : "tries", last);
  }
  uv_close((uv_handle_t *)&c->timer, on_call_closed);
  r->in_flight--;
  cb(rc, status, body, len, arg);
  if (r->closing && r->in_flight == 0)
    destroy(r);
}

static void on_fail_timer(uv_timer_t *t) {
  struct remote_call *c = t->data;
  finish(c, c->fail_rc, 0, NULL, 0);
}

/* Ends the call with rc on the next loop iteration (never synchronously). */
static void fail_later(struct remote_call *c, int rc) {
  c->fail_rc = rc;
  uv_timer_start(&c->timer, on_fail_timer, 0, 0);
}

static void try_next(struct remote_call *c);

static void on_backoff(uv_timer_t *t) { try_next(t->data); }

/* Delay before the next try, or UINT64_MAX when there is none. */
static uint64_t next_try_delay(struct remote_call *c, int rc, const struct upstream_response *resp,
                               uint64_t now) {
  struct remote *r = c->r;
  const struct retry_policy *p = &r->s.retry;
  int nothing_sent = rc == UPSTREAM_ECONNECT || rc == UPSTREAM_ESTALE;
  int retryable = rc == UPSTREAM_ESTALE ||
                  (rc != UPSTREAM_ECANCELED && rc != UPSTREAM_EPROTO &&
                   retry_should(p, upstream_retry_cause(rc), rc == UPSTREAM_OK ? resp->status : 0));
  if (r->closing || !retryable || c->attempt + 1 >= p->max_attempts || now >= c->deadline)
    return UINT64_MAX;
  if (rc != UPSTREAM_ESTALE && !retry_budget_try(&r->budget, now))
    return UINT64_MAX;
  /* Nothing reached the instance: go to the next one at once. */
  uint64_t delay = nothing_sent ? 0 : retry_backoff_ms(p, c->attempt, trace_random64());
  if (rc == UPSTREAM_OK)
    for (unsigned i = 0; i < resp->n_headers; i++)
      if (resp->headers[i].name_len == 11 &&
          strncasecmp(resp->headers[i].name, "retry-after", 11) == 0) {
        uint64_t ra = retry_after_parse(resp->headers[i].value, resp->headers[i].value_len,
                                        (uint64_t)time(NULL) * 1000);
        if (ra > delay)
          delay = ra;
      }
  return now + delay < c->deadline ? delay : UINT64_MAX;
}

static void on_upstream(int rc, struct upstream_response *resp, void *arg) {
  struct remote_call *c = arg;
  struct rtarget *t = &c->r->targets[c->target];
  uint64_t now = uv_now(c->r->loop);
  lb_end(&t->pool, c->host);
  int ok = rc == UPSTREAM_OK && resp->status < 500;
  if (rc != UPSTREAM_ESTALE && rc != UPSTREAM_ECANCELED) {
    /* a stale pooled connection says nothing about the instance */
    breaker_report(&t->breakers[c->host], now, ok, (uint32_t)(now - c->try_started));
    lb_report(&t->pool, c->host, ok, now);
  }
  if (ok) {
    finish(c, 0, resp->status, resp->body, resp->body_len);
    return;
  }
  uint64_t delay = next_try_delay(c, rc, resp, now);
  if (delay != UINT64_MAX) {
    c->attempt++;
    c->last_host = c->host;
    uv_timer_start(&c->timer, on_backoff, delay, 0);
    return;
  }
  finish(c, STRATA_EUNAVAILABLE, 0, NULL, 0);
}

static void try_next(struct remote_call *c) {
  struct remote *r = c->r;
  uint64_t now = uv_now(r->loop);
  if (c->target < 0 || r->closing || now >= c->deadline) {
    fail_later(c, STRATA_EUNAVAILABLE);
    return;
  }
  struct rtarget *t = &r->targets[c->target];
  /* Round robin over the instances whose breaker lets a call through; a
   * retry prefers another instance than the one that just failed. */
  int host = -1, exclude = c->attempt ? c->last_host : -1;
  for (unsigned tries = 0; tries < t->n + 1 && host < 0; tries++) {
    int h = lb_pick(&t->pool, NULL, 0, now, trace_random64(), exclude);
    if (h < 0)
      break;
    if (breaker_allow(&t->breakers[h], now))
      host = h;
    else
      exclude = h;
  }
  if (host < 0) { /* every breaker open: fail in microseconds, not a timeout */
    fail_later(c, STRATA_EUNAVAILABLE);
    return;
  }
  c->host = host;
  c->try_started = now;
  uint64_t left = deadline_try_ms(&r->s.retry, c->deadline, now);
  strbuf_clear(&c->request);
  if (remote_format_request(&c->request, c->path, upstream_host_name(t->hosts[host]), &c->origin,
                            left, r->secret, (uint64_t)time(NULL)) != 0) {
    breaker_report(&t->breakers[host], now, 1, 0); /* not the instance's fault */
    fail_later(c, STRATA_EINTERNAL);
    return;
  }
  lb_begin(&t->pool, host);
  uint32_t timeout = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
  if (upstream_request(t->hosts[host], c->request.data, c->request.len, 0, timeout,
                       r->s.max_response_bytes, c->a, on_upstream, c, NULL) != 0) {
    lb_end(&t->pool, host);
    breaker_report(&t->breakers[host], now, 1, 0);
    fail_later(c, STRATA_EINTERNAL);
    return;
  }
  c->tries++;
}

int remote_get(struct remote *r, int target, struct http_exchange *origin, const char *path_query,
               struct arena *a, remote_done_cb cb, void *arg) {
  if (!r || r->closing)
    return STRATA_EUNAVAILABLE;
  size_t plen = strlen(path_query);
  struct remote_call *c = calloc(1, sizeof *c + plen + 1);
  if (!c)
    return STRATA_EINTERNAL;
  c->path = (char *)(c + 1);
  memcpy(c->path, path_query, plen + 1);
  c->r = r;
  c->target = target >= 0 && (unsigned)target < r->n_targets ? target : -1;
  c->host = c->last_host = -1;
  c->a = a;
  c->cb = cb;
  c->arg = arg;
  strbuf_init(&c->request, 0);
  uv_timer_init(r->loop, &c->timer);
  c->timer.data = c;
  uint64_t now = uv_now(r->loop);
  remote_origin_from(origin, r->secret, now, &c->origin);
  c->deadline = deadline_after(now, r->s.retry.total_timeout_ms);
  if (c->origin.deadline_ms < c->deadline)
    c->deadline = c->origin.deadline_ms; /* the caller's caller gives up sooner */
  r->in_flight++;
  retry_budget_request(&r->budget, now);
  try_next(c);
  return 0;
}
