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
#include <stdint.h>

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
  int streaming;         /* added with router_add_streaming() */
  uint64_t max_body;     /* ... and its cap on request body bytes */
};

struct router *router_new(void);
void router_free(struct router *r);

/* Adds a route. method is an upper-case method name or "*" for any. The
 * pattern is copied. Returns 0, or -1 when the pattern is malformed
 * (not starting with '/', empty parameter name, '*' not last, too many
 * parameters) or memory runs out. */
int router_add(struct router *r, const char *method, const char *pattern, http_handler_cb handler,
               void *data);

/* The same for a handler that reads request bodies as they arrive (http.h,
 * "Streaming"): a request with a chunked body, an `Expect: 100-continue`
 * or a declared body over HTTP_STREAM_BUFFERED_MAX reaches the handler as
 * soon as its headers are complete; smaller declared bodies still arrive
 * whole in req->body. max_body caps the body's bytes on this route instead
 * of http.max_body (413, from a declared length before anything is read). */
int router_add_streaming(struct router *r, const char *method, const char *pattern,
                         http_handler_cb handler, void *data, uint64_t max_body);

/* 1 when some route was added with router_add_streaming(). */
int router_streams(const struct router *r);

/* Finds the route for method + path (path without query, not decoded).
 * Returns 0 and fills m; STRATA_ENOT_FOUND when no pattern matches the path;
 * STRATA_EMETHOD_NOT_ALLOWED when patterns match but none for this method
 * (m->allow lists the ones that do). */
int router_match(const struct router *r, const char *method, size_t method_len, const char *path,
                 size_t path_len, struct route_match *m);

#endif
