/* The HTTP/1.1 server: N worker threads, each with its own libuv loop and
 * its own SO_REUSEPORT listener on the same address, so the kernel spreads
 * connections across workers and no lock sits on the request path.
 *
 * Lifecycle: http_server_new() binds every listener (so bind errors surface
 * before anything runs) and holds SIGTERM/SIGINT back on the calling thread
 * until http_server_run() has its handlers (one sent meanwhile then drains
 * the server instead of killing it); http_server_run() starts the workers and blocks
 * until SIGTERM or SIGINT, then drains: listeners close, idle connections
 * close, in-flight requests finish (their responses say Connection: close)
 * for up to http.drain_timeout, the rest are cut; returns 0. A second
 * signal cuts at once. */
#ifndef STRATA_HTTP_SERVER_H
#define STRATA_HTTP_SERVER_H

#include "core/config.h"
#include "http/router.h"

struct http_server;
struct uv_loop_s;

/* Per-worker setup for the application: start runs on each worker thread
 * before it serves (its *data becomes http_worker_data() there; non-zero
 * fails the start), stop runs on the same thread after its loop ended and
 * may close handles of its own (the loop is run once more afterwards). */
struct http_worker_hooks {
  int (*start)(unsigned index, struct uv_loop_s *loop, void **data, void *ctx);
  void (*stop)(unsigned index, struct uv_loop_s *loop, void *data, void *ctx);
  void *ctx;
};

/* A check every routed request passes before its handler: returns 0 to
 * let it through, or answers the exchange itself (an error) and returns
 * non-zero. Runs on the worker thread. */
typedef int (*http_filter_cb)(struct http_exchange *ex, void *ctx);
void http_server_set_filter(struct http_server *s, http_filter_cb filter, void *ctx);

/* Sets the hooks; call before http_server_run(). */
void http_server_set_worker_hooks(struct http_server *s, const struct http_worker_hooks *hooks);

/* Creates the server and binds its listeners. cfg is copied; router must
 * outlive the server. Returns NULL and logs why on failure. */
struct http_server *http_server_new(const struct strata_config *cfg, const struct router *router);

/* A second listener, served by worker 0 with its own router (the gateway's
 * admin listener). Bound now; returns 0, or -1 after logging why. */
int http_server_add_listener(struct http_server *s, const char *host, uint16_t port,
                             const struct router *router);

/* Serves until a shutdown signal has been handled; returns 0, or a negative
 * value when the workers could not start. */
int http_server_run(struct http_server *s);

/* 1 while the server is draining (readiness reports down). */
int http_server_draining(const struct http_server *s);

void http_server_free(struct http_server *s);

#endif
