/* Remote domain calls over HTTP with the resilience layer; see remote.h. */
#include "app/remote.h"

#include "app/trust.h"

#include <pthread.h>
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
#include "observe/metrics.h"
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

/* ---- counters for /metrics ------------------------------------------------ */

/* One set for the process: the remotes of every worker know the same
 * targets in the same order (app.c plans them once), so they add into the
 * same slots with relaxed atomics, and one collector reads them. */
struct instance_stats {
  uint64_t tries, failures, retries;
  uint64_t breakers_open; /* gauge: workers whose breaker for it is not closed */
};

static struct {
  pthread_mutex_t lock; /* names and the collector's registration */
  int collector_added;
  unsigned n_targets;
  char service[REMOTE_MAX_TARGETS][CFG_NAME_MAX];
  char instance[REMOTE_MAX_TARGETS][REMOTE_MAX_INSTANCES][80];
  unsigned n_instances[REMOTE_MAX_TARGETS];
  uint64_t calls[REMOTE_MAX_TARGETS], unavailable[REMOTE_MAX_TARGETS];
  struct instance_stats inst[REMOTE_MAX_TARGETS][REMOTE_MAX_INSTANCES];
} stats = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void count(uint64_t *c) { __atomic_fetch_add(c, 1, __ATOMIC_RELAXED); }
static uint64_t read_count(const uint64_t *c) { return __atomic_load_n(c, __ATOMIC_RELAXED); }

static void collect(struct strbuf *sb, void *ctx) {
  (void)ctx;
  pthread_mutex_lock(&stats.lock);
  metrics_family(sb, "strata_remote_calls_total", "counter",
         "Internal calls to a domain another service hosts, by that service.");
  for (unsigned i = 0; i < stats.n_targets; i++)
    strbuf_printf(sb, "strata_remote_calls_total{service=\"%s\"} %llu\n", stats.service[i],
                  (unsigned long long)read_count(&stats.calls[i]));
  metrics_family(sb, "strata_remote_unavailable_total", "counter",
         "Internal calls that ended unavailable (tries, budget or deadline spent, or every breaker open).");
  for (unsigned i = 0; i < stats.n_targets; i++)
    strbuf_printf(sb, "strata_remote_unavailable_total{service=\"%s\"} %llu\n", stats.service[i],
                  (unsigned long long)read_count(&stats.unavailable[i]));
  static const struct {
    const char *name, *type, *help;
    size_t off;
  } fams[] = {
      {"strata_remote_requests_total", "counter", "Tries sent to an instance.",
       offsetof(struct instance_stats, tries)},
      {"strata_remote_failures_total", "counter",
       "Tries that ended without a usable answer (5xx, reset, timeout, connect failure).",
       offsetof(struct instance_stats, failures)},
      {"strata_remote_retries_total", "counter", "Tries that were retries.",
       offsetof(struct instance_stats, retries)},
      {"strata_remote_breaker_open", "gauge",
       "Workers whose circuit breaker for the instance is not closed (0 = closed everywhere).",
       offsetof(struct instance_stats, breakers_open)},
  };
  for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
    metrics_family(sb, fams[f].name, fams[f].type, fams[f].help);
    for (unsigned i = 0; i < stats.n_targets; i++)
      for (unsigned k = 0; k < stats.n_instances[i]; k++)
        strbuf_printf(sb, "%s{service=\"%s\",instance=\"%s\"} %llu\n", fams[f].name,
                      stats.service[i], stats.instance[i][k],
                      (unsigned long long)read_count(
                          (const uint64_t *)((const char *)&stats.inst[i][k] + fams[f].off)));
  }
  pthread_mutex_unlock(&stats.lock);
}

/* Names the slots of target i after its instances (the same for every
 * worker) and adds the collector once. */
static void stats_register(unsigned i, const char *service, struct upstream_host *const *hosts,
                           unsigned n) {
  pthread_mutex_lock(&stats.lock);
  snprintf(stats.service[i], sizeof stats.service[i], "%s", service);
  for (unsigned k = 0; k < n; k++)
    snprintf(stats.instance[i][k], sizeof stats.instance[i][k], "%s", upstream_host_name(hosts[k]));
  stats.n_instances[i] = n;
  if (i + 1 > stats.n_targets)
    stats.n_targets = i + 1;
  if (!stats.collector_added && metrics_add_collector(collect, NULL) == 0)
    stats.collector_added = 1;
  pthread_mutex_unlock(&stats.lock);
}

/* ---- per-loop state ------------------------------------------------------ */

/* What a breaker's transitions report to: its instance's name and slot. */
struct breaker_ctx {
  const char *name;
  struct instance_stats *st;
};

struct rtarget {
  struct topology_target t;
  struct upstream_host *hosts[REMOTE_MAX_INSTANCES];
  struct breaker breakers[REMOTE_MAX_INSTANCES];
  struct breaker_ctx bctx[REMOTE_MAX_INSTANCES];
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
  struct breaker_ctx *bc = ctx;
  if (from == BREAKER_CLOSED && to != BREAKER_CLOSED)
    __atomic_fetch_add(&bc->st->breakers_open, 1, __ATOMIC_RELAXED);
  else if (from != BREAKER_CLOSED && to == BREAKER_CLOSED)
    __atomic_fetch_sub(&bc->st->breakers_open, 1, __ATOMIC_RELAXED);
  log_event(to == BREAKER_OPEN ? LOG_WARN : LOG_INFO, "remote_breaker", NULL, "%s: %s -> %s (%s)",
            bc->name, breaker_state_name(from), breaker_state_name(to), reason);
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
      t->bctx[k] = (struct breaker_ctx){upstream_host_name(t->hosts[k]), &stats.inst[i][k]};
      breaker_set_transition_cb(&t->breakers[k], on_breaker_change, &t->bctx[k]);
      hc[k].address = upstream_host_name(t->hosts[k]);
      hc[k].weight = 1;
    }
    if (lb_pool_init(&t->pool, hc, t->n, &lb) != 0)
      goto fail;
    stats_register(i, t->t.service, t->hosts, t->n);
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
  if (rc == STRATA_EUNAVAILABLE && c->target >= 0)
    count(&stats.unavailable[c->target]);
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
    if (!ok)
      count(&stats.inst[c->target][c->host].failures);
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
  count(&stats.inst[c->target][host].tries);
  if (c->tries)
    count(&stats.inst[c->target][host].retries);
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
  if (c->target >= 0)
    count(&stats.calls[c->target]);
  retry_budget_request(&r->budget, now);
  try_next(c);
  return 0;
}
