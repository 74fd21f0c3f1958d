/* From the configuration file (or the no-config flags, which fill the same
 * struct) to what the gateway runs with: pools flattened into one host
 * table, routes with their policies resolved against the defaults, secrets
 * read. See gateway.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/trust.h"
#include "gateway/balancer.h"
#include "gateway/gateway.h"

#define HEALTH_INTERVAL_MS 1000
#define HEALTH_TIMEOUT_MS 500
#define HEALTH_RISE 2
#define HEALTH_FALL 2
/* idle keep-alive connections kept per host per worker: enough for every
 * request a worker can have in flight at once on a busy host, so a burst
 * does not end in closing connections it needs again a moment later (as
 * HAProxy, which keeps them all; nginx keepalive defaults to 32) */
#define MAX_IDLE 1024

static int parse_balance(const char *text, struct gw_pool *p) {
  p->hash_header[0] = p->hash_param[0] = '\0';
  if (!text[0] || strcmp(text, "round-robin") == 0)
    p->balance = LB_ROUND_ROBIN;
  else if (strcmp(text, "least-request") == 0)
    p->balance = LB_LEAST_REQUEST;
  else if (strcmp(text, "hash-client") == 0)
    p->balance = LB_HASH;
  else if (strncmp(text, "hash-header:", 12) == 0 && text[12] &&
           strlen(text + 12) < sizeof p->hash_header) {
    p->balance = LB_HASH;
    strcpy(p->hash_header, text + 12);
  } else if (strncmp(text, "hash-param:", 11) == 0 && text[11] &&
             strlen(text + 11) < sizeof p->hash_param) {
    p->balance = LB_HASH;
    strcpy(p->hash_param, text + 11);
  } else
    return -1;
  return 0;
}

static int add_host(struct gw_settings *s, const char *host, uint32_t port, uint32_t weight,
                    char *why, size_t why_len) {
  if (s->n_hosts == GW_MAX_HOSTS) {
    snprintf(why, why_len, "more than %d upstream hosts in all pools", GW_MAX_HOSTS);
    return -1;
  }
  if (port == 0 || port > 65535) {
    snprintf(why, why_len, "upstream %s has no valid port", host);
    return -1;
  }
  struct gw_host_config *h = &s->hosts[s->n_hosts++];
  /* a service listening on every address is reached on loopback */
  snprintf(h->host, sizeof h->host, "%s",
           strcmp(host, "0.0.0.0") == 0 ? "127.0.0.1" : strcmp(host, "::") == 0 ? "::1" : host);
  h->port = (uint16_t)port;
  h->weight = weight ? weight : 1;
  h->pool = s->n_pools;
  return 0;
}

/* A pool from the file, or the implied pool of a service a route names. */
static int add_pool(struct gw_settings *s, const struct strata_config *cfg,
                    const struct pool_config *pc, const struct service_config *svc, char *why,
                    size_t why_len) {
  if (s->n_pools == CFG_MAX_POOLS) {
    snprintf(why, why_len, "more than %d pools", CFG_MAX_POOLS);
    return -1;
  }
  struct gw_pool *p = &s->pools[s->n_pools];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", pc ? pc->name : svc->name);
  if (pc && parse_balance(pc->balance, p) != 0) {
    snprintf(why, why_len, "pool %s: unknown balance \"%s\"", p->name, pc->balance);
    return -1;
  }
  p->connect_timeout_ms = pc && pc->connect_timeout_ms ? pc->connect_timeout_ms
                                                       : cfg->gateway.connect_timeout_ms;
  p->max_idle = pc && pc->max_idle ? pc->max_idle : MAX_IDLE;
  p->health_interval_ms = pc && pc->health_disabled   ? 0
                          : pc && pc->health_interval_ms ? pc->health_interval_ms
                                                         : HEALTH_INTERVAL_MS;
  p->health_timeout_ms = pc && pc->health_timeout_ms ? pc->health_timeout_ms : HEALTH_TIMEOUT_MS;
  p->health_rise = pc && pc->health_rise ? pc->health_rise : HEALTH_RISE;
  p->health_fall = pc && pc->health_fall ? pc->health_fall : HEALTH_FALL;
  snprintf(p->health_path, sizeof p->health_path, "%s",
           pc && pc->health_path[0] ? pc->health_path : "/health/ready");
  p->first = s->n_hosts;
  if (pc && pc->service[0])
    svc = config_find_service(cfg, pc->service);
  if (svc) {
    for (uint32_t i = 0; i < svc->instances; i++)
      if (add_host(s, svc->listen_host, svc->listen_port + i, 1, why, why_len) != 0)
        return -1;
  } else {
    for (uint32_t i = 0; i < pc->n_hosts; i++)
      if (add_host(s, pc->hosts[i].host, pc->hosts[i].port, pc->hosts[i].weight, why, why_len) != 0)
        return -1;
  }
  p->n_hosts = s->n_hosts - p->first;
  if (!p->n_hosts) {
    snprintf(why, why_len, "pool %s has no hosts", p->name);
    return -1;
  }
  s->n_pools++;
  return 0;
}

static int find_pool(const struct gw_settings *s, const char *name) {
  for (unsigned i = 0; i < s->n_pools; i++)
    if (strcmp(s->pools[i].name, name) == 0)
      return (int)i;
  return -1;
}

static unsigned retry_on_bits(const char *list) {
  static const struct {
    const char *word;
    unsigned bit;
  } causes[] = {{"connect-failure", RETRY_ON_CONNECT_FAILURE}, {"reset", RETRY_ON_RESET},
                {"timeout", RETRY_ON_TIMEOUT},  {"502", RETRY_ON_502},
                {"503", RETRY_ON_503},          {"504", RETRY_ON_504}};
  unsigned bits = 0;
  for (size_t i = 0; i < sizeof causes / sizeof causes[0]; i++)
    if (config_list_has(list, causes[i].word))
      bits |= causes[i].bit;
  return bits;
}

static void route_policies(struct gw_route *r, const struct gateway_config *g) {
  const struct route_config *rc = &r->rc;
  retry_policy_default(&r->retry);
  r->retry.max_attempts = rc->retry_attempts ? rc->retry_attempts : g->retry_attempts;
  r->retry.base_ms = rc->retry_base_ms ? rc->retry_base_ms : g->backoff_base_ms;
  r->retry.cap_ms = rc->retry_cap_ms ? rc->retry_cap_ms : g->backoff_cap_ms;
  r->retry.per_try_timeout_ms = rc->try_timeout_ms ? rc->try_timeout_ms : g->try_timeout_ms;
  r->retry.total_timeout_ms = rc->timeout_ms ? rc->timeout_ms : g->total_timeout_ms;
  if (rc->retry_on[0])
    r->retry.retry_on = retry_on_bits(rc->retry_on);
  const struct breaker_settings *b = &rc->breaker;
  breaker_config_default(&r->breaker);
  if (b->error_threshold_pct)
    r->breaker.failure_rate_pct = b->error_threshold_pct;
  if (b->volume_threshold)
    r->breaker.min_calls = b->volume_threshold;
  if (b->reset_timeout_ms)
    r->breaker.open_ms = b->reset_timeout_ms;
  if (b->slow_call_ms) {
    r->breaker.slow_call_ms = b->slow_call_ms;
    if (!b->slow_threshold_pct)
      r->breaker.slow_rate_pct = 50; /* a slow-call duration alone means: trip on slowness */
  }
  if (b->slow_threshold_pct)
    r->breaker.slow_rate_pct = b->slow_threshold_pct;
  if (b->window_ms)
    r->breaker.window_s = (b->window_ms + 999) / 1000 > 60 ? 60 : (b->window_ms + 999) / 1000;
  if (b->half_open_probes)
    r->breaker.half_open_probes = b->half_open_probes;
  if (rc->rate) {
    r->rate.rate = rc->rate;
    r->rate.period_ms = 1000;
    r->rate.burst = rc->burst;
  }
  snprintf(r->label, sizeof r->label, "%s%s%s%s%s", rc->methods[0] ? rc->methods : "",
           rc->methods[0] ? " " : "", rc->host[0] ? rc->host : "", rc->prefix[0] ? rc->prefix : rc->path,
           rc->prefix[0] ? (rc->prefix[strlen(rc->prefix) - 1] == '/' ? "*" : "/*") : "");
}

int gw_settings_from_config(const struct strata_config *cfg, struct gw_settings *s, char *why,
                            size_t why_len) {
  const struct gateway_config *g = &cfg->gateway;
  memset(s, 0, sizeof *s);
  /* Pools in file order, then the implied pools of services routes name. */
  for (uint32_t i = 0; i < g->n_pools; i++)
    if (add_pool(s, cfg, &g->pools[i], NULL, why, why_len) != 0)
      return -1;
  for (uint32_t i = 0; i < g->n_routes; i++) {
    const struct route_config *rc = &g->routes[i];
    if (find_pool(s, rc->pool) >= 0)
      continue;
    const struct service_config *svc = config_find_service(cfg, rc->pool);
    if (!svc) {
      snprintf(why, why_len, "route %u: no pool or service named \"%s\"", i, rc->pool);
      return -1;
    }
    if (add_pool(s, cfg, NULL, svc, why, why_len) != 0)
      return -1;
  }
  if (!g->n_routes) {
    snprintf(why, why_len, "the gateway has no routes");
    return -1;
  }
  s->max_request_body = g->max_request_body ? g->max_request_body : cfg->http.max_body_bytes;
  for (uint32_t i = 0; i < g->n_routes; i++) {
    struct gw_route *r = &s->routes[s->n_routes++];
    r->rc = g->routes[i];
    r->pool = (unsigned)find_pool(s, r->rc.pool);
    route_policies(r, g);
    r->max_body = r->rc.max_request_body ? r->rc.max_request_body : s->max_request_body;
  }
  s->try_timeout_ms = g->try_timeout_ms;
  s->total_timeout_ms = g->total_timeout_ms;
  s->trusted_hops = g->trusted_hops;
  s->max_response_bytes = (size_t)g->max_response_bytes;
  if (g->identity_secret_file[0] &&
      trust_read_secret(g->identity_secret_file, s->identity_secret, sizeof s->identity_secret,
                        why, why_len) != 0)
    return -1;
  if (g->rate) {
    s->rate.rate = g->rate;
    s->rate.period_ms = g->rate_period_ms ? g->rate_period_ms : 1000;
    s->rate.burst = g->burst;
  }
  snprintf(s->api_keys_file, sizeof s->api_keys_file, "%s", g->api_keys_file);
  snprintf(s->jwt_hs256_secret_file, sizeof s->jwt_hs256_secret_file, "%s", g->jwt_hs256_secret_file);
  snprintf(s->jwt_rs256_pem_file, sizeof s->jwt_rs256_pem_file, "%s", g->jwt_rs256_public_key);
  snprintf(s->jwt_es256_pem_file, sizeof s->jwt_es256_pem_file, "%s", g->jwt_es256_public_key);
  snprintf(s->jwt_issuer, sizeof s->jwt_issuer, "%s", g->jwt_issuer);
  snprintf(s->jwt_audience, sizeof s->jwt_audience, "%s", g->jwt_audience);
  snprintf(s->admin_host, sizeof s->admin_host, "%s", g->admin_host);
  s->admin_port = g->admin_port;
  if (g->admin_token_file[0] && g->admin_port &&
      trust_read_secret(g->admin_token_file, s->admin_token, sizeof s->admin_token, why,
                        why_len) != 0)
    return -1;
  return 0;
}

/* ---- matching ------------------------------------------------------------ */

/* A router pattern against a path: literal segments, ":name" for one
 * non-empty segment, a trailing "*" for the rest. */
static int pattern_matches(const char *pat, const char *path, size_t len) {
  const char *p = path, *end = path + len;
  while (*pat) {
    if (*pat == '*' && pat[1] == '\0')
      return 1;
    if (*pat == ':') {
      while (*pat && *pat != '/')
        pat++;
      const char *seg = p;
      while (p < end && *p != '/')
        p++;
      if (p == seg)
        return 0;
      continue;
    }
    if (p == end || *p != *pat)
      return 0;
    p++;
    pat++;
  }
  return p == end;
}

int gw_route_param(const struct gw_route *r, const char *path, size_t path_len, const char *name,
                   const char **val, size_t *len) {
  const char *pat = r->rc.path, *p = path, *end = path + path_len;
  size_t n = strlen(name);
  if (!pat[0] || !pattern_matches(pat, path, path_len))
    return 0;
  /* walk pattern and path segment by segment */
  while (*pat && p <= end) {
    if (*pat == '/') {
      pat++;
      p++;
      continue;
    }
    const char *pe = strchr(pat, '/');
    size_t plen = pe ? (size_t)(pe - pat) : strlen(pat);
    const char *se = memchr(p, '/', (size_t)(end - p));
    size_t slen = se ? (size_t)(se - p) : (size_t)(end - p);
    if (pat[0] == ':' && plen - 1 == n && memcmp(pat + 1, name, n) == 0) {
      *val = p;
      *len = slen;
      return 1;
    }
    if (pat[0] == '*')
      return 0;
    pat += plen;
    p += slen;
  }
  return 0;
}

static size_t prefix_match(const char *prefix, const char *path, size_t len) {
  size_t n = strlen(prefix);
  if (len < n || memcmp(path, prefix, n) != 0)
    return 0;
  /* "/api/users" takes /api/users and /api/users/..., not /api/usersX */
  if (len > n && prefix[n - 1] != '/' && path[n] != '/' && path[n] != '?')
    return 0;
  return n;
}

/* The byte at p as an upstream that decodes before it normalises would see
 * it: %2e is '.', %2f and %5c (and '\\') are '/', %3b is ';'. Sets *step to
 * the bytes it took. */
static char decoded(const char *p, const char *end, size_t *step) {
  *step = 1;
  if (*p == '\\')
    return '/';
  if (*p != '%' || end - p < 3)
    return *p;
  *step = 3;
  if (p[1] == '2' && (p[2] == 'e' || p[2] == 'E'))
    return '.';
  if (p[1] == '3' && (p[2] == 'b' || p[2] == 'B'))
    return ';';
  if ((p[1] == '2' && (p[2] == 'f' || p[2] == 'F')) || (p[1] == '5' && (p[2] == 'c' || p[2] == 'C')))
    return '/';
  *step = 1;
  return *p;
}

int gw_path_has_dot_segment(const char *path, size_t len) {
  const char *p = path, *end = path + len;
  while (p < end) {
    /* one segment: from after a '/' to the next */
    unsigned dots = 0, other = 0, params = 0;
    size_t step;
    char ch;
    while (p < end && (ch = decoded(p, end, &step)) != '/') {
      if (ch == ';')
        params = 1; /* "..;x": Tomcat and Spring read the name before ';' */
      else if (params)
        ;
      else if (ch == '.')
        dots++;
      else
        other = 1;
      p += step;
    }
    if (!other && (dots == 1 || dots == 2))
      return 1;
    if (p < end)
      p += step;
  }
  return 0;
}

int gw_route_match(const struct gw_settings *s, const char *host, size_t host_len,
                   const char *method, const char *path, size_t path_len) {
  /* Host without its port (and without the brackets' port of "[::1]:80") */
  size_t hl = host_len;
  if (host) {
    const char *colon = NULL;
    for (size_t i = 0; i < host_len; i++)
      if (host[i] == ':')
        colon = host + i;
    if (colon && (host[0] != '[' || colon[-1] == ']'))
      hl = (size_t)(colon - host);
  }
  for (unsigned i = 0; i < s->n_routes; i++) {
    const struct route_config *rc = &s->routes[i].rc;
    if (rc->host[0] && (!host || strlen(rc->host) != hl || strncasecmp(rc->host, host, hl) != 0))
      continue;
    if (rc->methods[0] && !config_list_has(rc->methods, method) &&
        !(strcmp(method, "HEAD") == 0 && config_list_has(rc->methods, "GET")))
      continue;
    if (rc->prefix[0] ? prefix_match(rc->prefix, path, path_len) != 0
                      : pattern_matches(rc->path, path, path_len))
      return (int)i;
  }
  return -1;
}

size_t gw_route_rewrite(const struct gw_route *r, const char *path, size_t path_len, char *out,
                        size_t cap) {
  const struct route_config *rc = &r->rc;
  const char *rest = path;
  size_t rest_len = path_len;
  const char *repl = "";
  if (rc->prefix[0] && (rc->strip_prefix || rc->rewrite_prefix[0])) {
    size_t n = strlen(rc->prefix);
    rest = path + n;
    rest_len = path_len - n;
    repl = rc->rewrite_prefix;
  }
  size_t repl_len = strlen(repl);
  int slash;
  if (!rest_len) { /* the prefix itself: the replacement as written, or "/" */
    slash = repl_len == 0;
  } else {         /* "/v2/" + "/x", "/v2" + "x" -> "/v2/x" */
    while (repl_len && repl[repl_len - 1] == '/')
      repl_len--;
    slash = rest[0] != '/';
  }
  size_t len = repl_len + (size_t)slash + rest_len;
  if (len + 1 > cap)
    return 0;
  memcpy(out, repl, repl_len);
  if (slash)
    out[repl_len] = '/';
  memcpy(out + repl_len + (size_t)slash, rest, rest_len);
  out[len] = '\0';
  return len;
}
