/* Protection in front of the proxy: who is calling (API key or JWT
 * bearer), and how often (GCRA per identity, else per client address).
 *
 *   credentials? --none, auth required----------------> 401 + WWW-Authenticate
 *                --present, wrong/expired---------------> 401 (invalid_token)
 *                --malformed----------------------------> 400
 *                --valid: identity (key id or sub) ------+
 *   anonymous allowed (no keys, no JWT) -----------------+--> rate limit --over--> 429
 *                                                                       --ok----> proxy
 *
 * Every answer that passes carries RateLimit-Policy / RateLimit headers
 * (draft-ietf-httpapi-ratelimit-headers-11); a 429 adds Retry-After. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/error.h"
#include "gateway/internal.h"
#include "observe/log.h"

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *buf = malloc(65537);
  size_t n = buf ? fread(buf, 1, 65536, f) : 0;
  fclose(f);
  if (!buf)
    return NULL;
  buf[n] = '\0';
  if (len)
    *len = n;
  return buf;
}

/* API key file: one key a line, "<id> <sha256 hex> [scope,scope...]";
 * blank lines and lines starting with # are skipped. Keys are stored hashed
 * only (hash one with `printf %s KEY | sha256sum`). */
static int load_keys(struct gw_conf *g, const char *path, char *why, size_t why_len) {
  char *text = read_file(path, NULL);
  if (!text) {
    snprintf(why, why_len, "cannot read %s: %s", path, strerror(errno));
    return -1;
  }
  g->keys = auth_keyring_new();
  int rc = g->keys ? 0 : -1, line_no = 0;
  char *lines_save = NULL;
  for (char *line = strtok_r(text, "\n", &lines_save); line && rc == 0;
       line = strtok_r(NULL, "\n", &lines_save)) {
    line_no++;
    while (*line == ' ' || *line == '\t')
      line++;
    if (!*line || *line == '#')
      continue;
    char id[256] = "", hash[128] = "", scopes_text[1024] = "";
    if (sscanf(line, "%255s %127s %1023s", id, hash, scopes_text) < 2) {
      snprintf(why, why_len, "%s:%d: expected \"<id> <sha256 hex> [scopes]\"", path, line_no);
      rc = -1;
      break;
    }
    const char *scopes[64];
    int n = 0;
    char *save = NULL;
    for (char *sc = strtok_r(scopes_text, ",", &save); sc && n < 63; sc = strtok_r(NULL, ",", &save))
      scopes[n++] = sc;
    scopes[n] = NULL;
    char reason[160];
    if (auth_keyring_add(g->keys, id, hash, scopes, NULL, reason, sizeof reason) != 0) {
      snprintf(why, why_len, "%s:%d: %s", path, line_no, reason);
      rc = -1;
    }
  }
  free(text);
  return rc;
}

int gw_protect_init(struct gw_conf *g, char *why, size_t why_len) {
  const struct gw_settings *s = &g->s;
  if (s->api_keys_file[0] && load_keys(g, s->api_keys_file, why, why_len) != 0)
    return -1;
  auth_jwt_config_init(&g->jwt);
  g->jwt.algs = 0;
  if (s->jwt_hs256_secret_file[0]) {
    g->jwt_secret = (unsigned char *)read_file(s->jwt_hs256_secret_file, &g->jwt_secret_len);
    while (g->jwt_secret && g->jwt_secret_len &&
           (g->jwt_secret[g->jwt_secret_len - 1] == '\n' || g->jwt_secret[g->jwt_secret_len - 1] == '\r'))
      g->jwt_secret_len--;
    if (!g->jwt_secret) {
      snprintf(why, why_len, "cannot read %s: %s", s->jwt_hs256_secret_file, strerror(errno));
      return -1;
    }
    g->jwt.algs |= AUTH_JWT_HS256;
    g->jwt.hs256_secret = g->jwt_secret;
    g->jwt.hs256_secret_len = g->jwt_secret_len;
  }
  if (s->jwt_rs256_pem_file[0]) {
    if (!(g->jwt_rs256_pem = read_file(s->jwt_rs256_pem_file, NULL))) {
      snprintf(why, why_len, "cannot read %s: %s", s->jwt_rs256_pem_file, strerror(errno));
      return -1;
    }
    g->jwt.algs |= AUTH_JWT_RS256;
    g->jwt.rs256_public_pem = g->jwt_rs256_pem;
  }
  if (s->jwt_es256_pem_file[0]) {
    if (!(g->jwt_es256_pem = read_file(s->jwt_es256_pem_file, NULL))) {
      snprintf(why, why_len, "cannot read %s: %s", s->jwt_es256_pem_file, strerror(errno));
      return -1;
    }
    g->jwt.algs |= AUTH_JWT_ES256;
    g->jwt.es256_public_pem = g->jwt_es256_pem;
  }
  g->jwt.issuer = s->jwt_issuer[0] ? s->jwt_issuer : NULL;
  g->jwt.audience = s->jwt_audience[0] ? s->jwt_audience : NULL;
  if (g->jwt.algs && auth_jwt_config_check(&g->jwt, why, why_len) != 0)
    return -1;
  g->credentials_accepted = g->keys != NULL || g->jwt.algs != 0;
  if (s->rate.rate) {
    if (ratelimit_policy_check(&s->rate) != 0 || !(g->rl = ratelimit_new(&s->rate, 100000))) {
      snprintf(why, why_len, "invalid rate limit");
      return -1;
    }
  }
  for (unsigned r = 0; r < s->n_routes; r++) {
    const struct gw_route *route = &s->routes[r];
    if (route->rc.scopes[0] && !g->credentials_accepted) {
      snprintf(why, why_len, "route %s needs scopes, but no API keys or JWT are configured",
               route->label);
      return -1;
    }
    if (route->rate.rate &&
        (ratelimit_policy_check(&route->rate) != 0 ||
         !(g->route_rl[r] = ratelimit_new(&route->rate, 100000)))) {
      snprintf(why, why_len, "route %s: invalid rate limit", route->label);
      return -1;
    }
  }
  return 0;
}

void gw_protect_free(struct gw_conf *g) {
  auth_keyring_free(g->keys);
  ratelimit_free(g->rl);
  for (unsigned r = 0; r < CFG_MAX_ROUTES; r++)
    ratelimit_free(g->route_rl[r]);
  free(g->jwt_secret);
  free(g->jwt_rs256_pem);
  free(g->jwt_es256_pem);
}

/* Adds each "Name: value\r\n" line of block as a response header. */
static void add_header_lines(struct http_exchange *ex, char *block) {
  for (char *line = block; *line;) {
    char *end = strstr(line, "\r\n");
    if (!end)
      break;
    *end = '\0';
    char *colon = strchr(line, ':');
    if (colon) {
      *colon = '\0';
      http_add_header(ex, line, colon + 2);
    }
    line = end + 2;
  }
}

/* WWW-Authenticate: a challenge for every scheme accepted, the error on
 * the one the rejected credentials used (an unknown API key is no Bearer
 * token's error, RFC 6750 3.1), on all of them when that is unknown. */
static void add_challenge(struct gw_conf *g, struct http_exchange *ex, enum auth_challenge c,
                          unsigned used, const char *description, const char *scope) {
  unsigned schemes = (g->keys ? AUTH_SCHEME_API_KEY : 0) | (g->jwt.algs ? AUTH_SCHEME_BEARER : 0);
  if (used && !(used & schemes))
    c = AUTH_CHALLENGE_MISSING; /* a scheme not offered: no challenge's error */
  unsigned with_error = used & schemes ? used & schemes : schemes;
  char value[768], rest[128];
  size_t n = auth_www_authenticate(with_error, c, "strata", description, scope, value, 512);
  if (!n)
    return;
  if ((schemes & ~with_error) &&
      auth_www_authenticate(schemes & ~with_error, AUTH_CHALLENGE_MISSING, "strata", NULL, NULL,
                            rest, sizeof rest))
    snprintf(value + n, sizeof value - n, ", %s", rest);
  http_add_header(ex, "WWW-Authenticate", value);
}

static int challenge(struct gateway *gw, struct gw_conf *g, struct http_exchange *ex,
                     enum auth_challenge c, unsigned used, const char *description) {
  add_challenge(g, ex, c, used, description, NULL);
  __atomic_add_fetch(&gw->auth_failed, 1, __ATOMIC_RELAXED);
  int status = auth_challenge_status(c);
  http_respond_error(ex, status == 400 ? STRATA_EBAD_REQUEST : STRATA_EUNAUTHORIZED,
                     description, NULL);
  return -1;
}

/* How a request failed authentication: the challenge to answer with. */
struct auth_failure {
  enum auth_challenge challenge;
  const char *description;
  unsigned scheme; /* of the rejected credentials; 0: not known */
};

/* The request's Authorization and X-Api-Key values (NULL when absent), in
 * one pass; -1 when either comes more than once. */
static int credential_fields(const struct http_request *req, const char **authz, size_t *alen,
                             const char **xkey, size_t *klen) {
  *authz = *xkey = NULL;
  for (unsigned i = 0; i < req->n_headers; i++) {
    const struct http_header *h = &req->headers[i];
    const char **v = h->name_len == 13 && strncasecmp(h->name, "authorization", 13) == 0 ? authz
                     : h->name_len == 9 && strncasecmp(h->name, "x-api-key", 9) == 0 ? xkey
                                                                                        : NULL;
    if (!v)
      continue;
    if (*v)
      return -1;
    *v = h->value;
    *(v == authz ? alen : klen) = h->value_len;
  }
  return 0;
}

/* Verifies the request's credentials into *id: 0, with an anonymous id when
 * there are none and the route allows that, else -1 and *f says why. */
static int authenticate(struct gw_conf *g, struct http_exchange *ex, int anonymous_ok,
                        struct auth_identity *id, struct auth_failure *f, char *why,
                        size_t why_cap) {
  size_t alen = 0, klen = 0;
  const char *authz, *xkey;
  struct auth_credentials cred;
  /* a second Authorization or X-Api-Key is not a list (RFC 9110 5.3): the
   * upstream could read the copy that was not checked */
  *f = (struct auth_failure){AUTH_CHALLENGE_INVALID_REQUEST, "Credentials sent more than once.", 0};
  if (credential_fields(http_request_of(ex), &authz, &alen, &xkey, &klen) != 0)
    return -1;
  int rc = auth_credentials_parse(authz, alen, xkey, klen, &cred);
  f->description = "Malformed credentials.";
  if (rc == STRATA_EBAD_REQUEST)
    return -1;
  if ((rc != 0 || cred.scheme == AUTH_SCHEME_NONE) && anonymous_ok)
    return 0;
  if (rc != 0 || cred.scheme == AUTH_SCHEME_NONE) {
    *f = (struct auth_failure){AUTH_CHALLENGE_MISSING, "Credentials are required.", 0};
    return -1;
  }
  *f = (struct auth_failure){AUTH_CHALLENGE_INVALID_TOKEN, "Unknown API key.",
                             (unsigned)cred.scheme};
  if (cred.scheme == AUTH_SCHEME_API_KEY)
    return !g->keys || auth_api_key(g->keys, cred.value, cred.len, id) != 0 ? -1 : 0;
  f->description = g->jwt.algs ? why : "Bearer tokens are not accepted.";
  return !g->jwt.algs ||
                 auth_jwt(&g->jwt, cred.value, cred.len, (uint64_t)time(NULL), id, why, why_cap) != 0
             ? -1
             : 0;
}

/* 403 unless id holds one of the route's scopes ("a,b": any one will do). */
static int check_scopes(struct gateway *gw, struct gw_conf *g, struct http_exchange *ex,
                        const char *scopes, const struct auth_identity *id) {
  char scope[128], listed[300] = "";
  size_t used = 0;
  for (const char *p = scopes; *p;) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    snprintf(scope, sizeof scope, "%.*s", (int)n, p);
    if (auth_has_scope(id, scope))
      return 0;
    used += (size_t)snprintf(listed + used, used < sizeof listed ? sizeof listed - used : 0, "%s%s",
                             used ? " " : "", scope);
    if (used >= sizeof listed)
      used = sizeof listed - 1;
    p = end ? end + 1 : p + n;
  }
  add_challenge(g, ex, AUTH_CHALLENGE_INSUFFICIENT_SCOPE,
                id->kind == AUTH_KIND_API_KEY ? AUTH_SCHEME_API_KEY : AUTH_SCHEME_BEARER,
                "A scope this route needs is missing.", listed);
  __atomic_add_fetch(&gw->forbidden, 1, __ATOMIC_RELAXED);
  http_respond_error(ex, STRATA_EFORBIDDEN, "A scope this route needs is missing.", NULL);
  return -1;
}

/* Spends one unit of the request's budget: the identity's when there is
 * one, else the client address's. 0, or -1 after answering 429. */
static int rate_limit(struct gateway *gw, struct gw_conf *g, struct http_exchange *ex,
                      unsigned route, struct ratelimit *rl, const struct auth_identity *id) {
  /* API key ids and JWT subjects are separate names (a token issued for
   * sub "ops" must not spend the "ops" key's budget) */
  char key[300];
  if (id->kind != AUTH_KIND_NONE) {
    snprintf(key, sizeof key, "%s:%s", id->kind == AUTH_KIND_API_KEY ? "key" : "sub", id->subject);
  } else {
    const char *remote = http_request_of(ex)->remote ? http_request_of(ex)->remote : "";
    const char *colon = strrchr(remote, ':');
    snprintf(key, sizeof key, "ip:%.*s", (int)(colon ? colon - remote : (long)strlen(remote)), remote);
  }
  struct ratelimit_result r;
  int allowed = id->has_limit
                    ? ratelimit_check_policy(rl, &id->limit, key, strlen(key), uv_now(http_loop(ex)), &r)
                    : ratelimit_check(rl, key, strlen(key), uv_now(http_loop(ex)), &r);
  char lines[RATELIMIT_HEADERS_MAX];
  if (allowed >= 0 && ratelimit_headers(rl, &r, lines, sizeof lines))
    add_header_lines(ex, lines);
  if (allowed == 0) {
    __atomic_add_fetch(&gw->rate_limited, 1, __ATOMIC_RELAXED);
    struct gw_worker *w = http_worker_data(ex);
    if (w && w->st->conf == g)
      w->st->route_stats[route].rate_limited++;
    http_respond_error(ex, STRATA_ETOO_MANY_REQUESTS, "Rate limit exceeded; see Retry-After.", NULL);
    return -1;
  }
  return 0;
}

int gw_protect(struct gateway *gw, struct gw_conf *g, struct http_exchange *ex, unsigned route,
               struct auth_identity *id) {
  const struct gw_route *rt = &g->s.routes[route];
  struct ratelimit *rl = g->route_rl[route] ? g->route_rl[route] : g->rl;
  /* anonymous until verified; the rest of *id (kilobytes of scope text)
   * is only ever read after authentication filled it */
  id->kind = AUTH_KIND_NONE;
  id->subject[0] = id->scopes[0] = '\0';
  id->expires_s = 0;
  id->has_limit = 0;
  struct auth_failure f;
  char why[160];
  /* a route with scopes needs credentials even when anonymous: without
   * them it is 401 (they would do), not 403 (RFC 6750 3.1) */
  int anonymous_ok = rt->rc.auth_anonymous && !rt->rc.scopes[0];
  if (g->credentials_accepted &&
      authenticate(g, ex, anonymous_ok, id, &f, why, sizeof why) != 0) {
    /* a failed attempt spends its address's budget, as nginx's limit_req
     * runs before access checks: one address cannot guess keys unbounded */
    id->kind = AUTH_KIND_NONE;
    id->has_limit = 0;
    if (rl && rate_limit(gw, g, ex, route, rl, id) != 0)
      return -1;
    return challenge(gw, g, ex, f.challenge, f.scheme, f.description);
  }
  if (rt->rc.scopes[0] && check_scopes(gw, g, ex, rt->rc.scopes, id) != 0)
    return -1;
  return rl ? rate_limit(gw, g, ex, route, rl, id) : 0;
}
