/* The HTTP/1.1 server: N worker threads, each with its own libuv loop and
 * its own SO_REUSEPORT listener on the same address, so the kernel spreads
 * connections across workers and no lock sits on the request path.
 *
 * Lifecycle: http_server_new() binds every listener (so bind errors surface
 * before anything runs); http_server_run() starts the workers and blocks
 * until SIGTERM or SIGINT, then drains: listeners close, idle connections
 * close, in-flight requests finish (their responses say Connection: close)
 * for up to http.drain_timeout, the rest are cut; returns 0. A second
 * signal cuts at once. */
#ifndef STRATA_HTTP_SERVER_H
#define STRATA_HTTP_SERVER_H

#include "core/config.h"
#include "http/router.h"

struct http_server;

/* Creates the server and binds its listeners. cfg is copied; router must
 * outlive the server. Returns NULL and logs why on failure. */
struct http_server *http_server_new(const struct strata_config *cfg, const struct router *router);

/* Serves until a shutdown signal has been handled; returns 0, or a negative
 * value when the workers could not start. */
int http_server_run(struct http_server *s);

/* 1 while the server is draining (readiness reports down). */
int http_server_draining(const struct http_server *s);

void http_server_free(struct http_server *s);

#endif
