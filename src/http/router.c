/* Router; see router.h. Patterns are split into segments once, at
 * router_add(); matching walks the path and each candidate's segments in
 * step, without copying or decoding anything. */
#include "http/router.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "observe/metrics.h"

enum segment_kind {
  SEG_LITERAL = 0, /* must equal the path segment byte for byte */
  SEG_PARAM,       /* any non-empty segment, captured under a name */
  SEG_REST         /* the remainder of the path, possibly empty */
};

struct segment {
  enum segment_kind kind;
  const char *text; /* literal text or parameter name (NUL-terminated) */
  size_t len;
};

struct route {
  char method[16];
  char *pattern;    /* as given */
  char *storage;    /* segment texts */
  struct segment *segs;
  unsigned n_segs;
  http_handler_cb handler;
  void *data;
  int metrics_id;
  int streaming;
  uint64_t max_body;
};

struct router {
  struct route *routes;
  unsigned n, cap;
  unsigned n_streaming;
};

struct router *router_new(void) { return calloc(1, sizeof(struct router)); }

void router_free(struct router *r) {
  if (!r)
    return;
  for (unsigned i = 0; i < r->n; i++) {
    free(r->routes[i].pattern);
    free(r->routes[i].storage);
    free(r->routes[i].segs);
  }
  free(r->routes);
  free(r);
}

static int add(struct router *r, const char *method, const char *pattern, http_handler_cb handler,
               void *data, int streaming, uint64_t max_body) {
  size_t plen = strlen(pattern);
  if (plen == 0 || pattern[0] != '/' || strlen(method) >= sizeof r->routes[0].method)
    return -1;
  if (r->n == r->cap) {
    unsigned cap = r->cap ? r->cap * 2 : 16;
    struct route *nr = realloc(r->routes, cap * sizeof *nr);
    if (!nr)
      return -1;
    r->routes = nr;
    r->cap = cap;
  }
  struct route rt = {0};
  strcpy(rt.method, method);
  rt.handler = handler;
  rt.data = data;
  rt.streaming = streaming;
  rt.max_body = max_body;
  r->n_streaming += streaming != 0;
  rt.pattern = strdup(pattern);
  rt.storage = strdup(pattern);
  unsigned max_segs = 1;
  for (size_t i = 0; i < plen; i++)
    max_segs += pattern[i] == '/';
  rt.segs = calloc(max_segs, sizeof *rt.segs);
  if (!rt.pattern || !rt.storage || !rt.segs)
    goto fail;
  /* "/a/:b/<star>" -> [a][:b][rest]; "/" -> no segments; a trailing "/" gives an
   * empty literal so "/a/" and "/a" stay different routes. */
  unsigned n_params = 0;
  char *p = rt.storage + 1;
  if (plen > 1) {
    for (;;) {
      char *slash = strchr(p, '/');
      if (slash)
        *slash = '\0';
      struct segment *s = &rt.segs[rt.n_segs++];
      if (p[0] == ':') {
        if (!p[1] || ++n_params > HTTP_MAX_PARAMS)
          goto fail;
        s->kind = SEG_PARAM;
        s->text = p + 1;
      } else if (p[0] == '*' && !p[1]) {
        if (slash)
          goto fail; /* '*' only at the end */
        s->kind = SEG_REST;
        s->text = p;
      } else {
        s->kind = SEG_LITERAL;
        s->text = p;
      }
      s->len = strlen(s->text);
      if (!slash)
        break;
      p = slash + 1;
    }
  }
  rt.metrics_id = metrics_route_id(pattern);
  r->routes[r->n++] = rt;
  return 0;
fail:
  free(rt.pattern);
  free(rt.storage);
  free(rt.segs);
  r->n_streaming -= streaming != 0;
  return -1;
}

int router_add(struct router *r, const char *method, const char *pattern, http_handler_cb handler,
               void *data) {
  return add(r, method, pattern, handler, data, 0, 0);
}

int router_add_streaming(struct router *r, const char *method, const char *pattern,
                         http_handler_cb handler, void *data, uint64_t max_body) {
  return add(r, method, pattern, handler, data, 1, max_body);
}

int router_streams(const struct router *r) { return r->n_streaming != 0; }

static void found(struct route_match *m, const struct route *rt) {
  m->handler = rt->handler;
  m->data = rt->data;
  m->pattern = rt->pattern;
  m->metrics_id = rt->metrics_id;
  m->streaming = rt->streaming;
  m->max_body = rt->max_body;
}

/* Matches path against rt, filling params. Returns 1 on a match. */
static int match_route(const struct route *rt, const char *path, size_t path_len,
                       struct route_match *m) {
  const char *p = path + 1, *end = path + path_len;
  unsigned n_params = 0;
  if (path_len == 0 || path[0] != '/')
    return 0;
  m->n_params = 0;
  if (rt->n_segs == 0)
    return path_len == 1;
  for (unsigned i = 0; i < rt->n_segs; i++) {
    const struct segment *s = &rt->segs[i];
    if (s->kind == SEG_REST) {
      m->n_params = n_params;
      return 1;
    }
    if (p > end)
      return 0; /* path ran out of segments */
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *seg_end = slash ? slash : end;
    size_t len = (size_t)(seg_end - p);
    if (s->kind == SEG_LITERAL) {
      if (len != s->len || memcmp(p, s->text, len) != 0)
        return 0;
    } else {
      if (len == 0)
        return 0;
      m->params[n_params].name = s->text;
      m->params[n_params].raw = p;
      m->params[n_params].raw_len = len;
      n_params++;
    }
    p = seg_end + 1; /* one past end when this was the last segment */
  }
  if (p <= end)
    return 0; /* the path has more segments than the pattern */
  m->n_params = n_params;
  return 1;
}

static int method_is(const struct route *rt, const char *method, size_t len) {
  return (rt->method[0] == '*' && rt->method[1] == '\0') ||
         (strlen(rt->method) == len && memcmp(rt->method, method, len) == 0);
}

static void allow_add(char *allow, size_t cap, const char *method) {
  size_t mlen = strlen(method), alen = strlen(allow);
  /* skip duplicates: look for the method as a whole item */
  for (const char *p = allow; (p = strstr(p, method)); p += mlen)
    if ((p == allow || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
      return;
  if (alen + mlen + 3 >= cap)
    return;
  if (alen)
    strcat(allow, ", ");
  strcat(allow, method);
}

int router_match(const struct router *r, const char *method, size_t method_len, const char *path,
                 size_t path_len, struct route_match *m) {
  int path_seen = 0;
  int is_head = method_len == 4 && memcmp(method, "HEAD", 4) == 0;
  const struct route *get_fallback = NULL;
  m->allow[0] = '\0';
  for (unsigned i = 0; i < r->n; i++) {
    const struct route *rt = &r->routes[i];
    struct route_match tmp;
    if (!match_route(rt, path, path_len, &tmp))
      continue;
    path_seen = 1;
    /* HEAD served by an earlier GET route wins over a later wildcard one:
     * the first route added for the path decides. */
    if (get_fallback && rt->method[0] == '*')
      break;
    if (method_is(rt, method, method_len) ||
        (is_head && !get_fallback && strcmp(rt->method, "GET") == 0)) {
      if (!method_is(rt, method, method_len)) {
        get_fallback = rt; /* remember; an explicit HEAD route later wins */
        memcpy(m->params, tmp.params, sizeof tmp.params);
        m->n_params = tmp.n_params;
        continue;
      }
      found(m, rt);
      memcpy(m->params, tmp.params, sizeof tmp.params);
      m->n_params = tmp.n_params;
      return 0;
    }
  }
  if (get_fallback) {
    found(m, get_fallback);
    return 0;
  }
  if (!path_seen)
    return STRATA_ENOT_FOUND;
  for (unsigned i = 0; i < r->n; i++) {
    struct route_match tmp;
    if (!match_route(&r->routes[i], path, path_len, &tmp))
      continue;
    if (strcmp(r->routes[i].method, "GET") == 0) {
      allow_add(m->allow, sizeof m->allow, "GET");
      allow_add(m->allow, sizeof m->allow, "HEAD");
    } else {
      allow_add(m->allow, sizeof m->allow, r->routes[i].method);
    }
  }
  return STRATA_EMETHOD_NOT_ALLOWED;
}
