/* Method + path routing with named parameters.
 *
 * Patterns are absolute paths whose segments are literals, `:name`
 * parameters (one whole segment) or a final `*` (the rest of the path, used
 * by prefix routes: a pattern `/static/` + `*` matches `/static`, `/static/`
 * and anything below, as a gateway prefix should). Routes are added before
 * the server starts and are then read-only, so every worker thread matches
 * without locks. Among routes that match a path, the first added wins. HEAD
 * falls back to GET routes. */
#ifndef STRATA_HTTP_ROUTER_H
#define STRATA_HTTP_ROUTER_H

#include <stddef.h>

#include "http/http.h"

struct router;

struct route_match {
  http_handler_cb handler;
  void *data;
  const char *pattern;   /* the route's pattern, for logs and metrics labels */
  int metrics_id;        /* the route's id in observe/metrics.h */
  struct http_param params[HTTP_MAX_PARAMS];
  unsigned n_params;
  char allow[96];        /* on 405: the methods the path allows, "GET, HEAD, POST" */
};

struct router *router_new(void);
void router_free(struct router *r);

/* Adds a route. method is an upper-case method name or "*" for any. The
 * pattern is copied. Returns 0, or -1 when the pattern is malformed
 * (not starting with '/', empty parameter name, '*' not last, too many
 * parameters) or memory runs out. */
int router_add(struct router *r, const char *method, const char *pattern, http_handler_cb handler,
               void *data);

/* Finds the route for method + path (path without query, not decoded).
 * Returns 0 and fills m; STRATA_ENOT_FOUND when no pattern matches the path;
 * STRATA_EMETHOD_NOT_ALLOWED when patterns match but none for this method
 * (m->allow lists the ones that do). */
int router_match(const struct router *r, const char *method, size_t method_len, const char *path,
                 size_t path_len, struct route_match *m);

#endif
