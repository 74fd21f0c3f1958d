/* The application: the domains this process hosts, their databases,
 * caches and the bus, wired onto the HTTP server; and the remote clients
 * of the domains it does not host.
 *
 * Which domains run here is configuration (topology.h): all four in the
 * monolith, some of them in a service of a topology (`strata serve
 * --service NAME`). A hosted domain gets its database (migrated), its
 * cache, its outbox, its bus consumers and its routes; a domain hosted
 * elsewhere gets none of these, and its client calls go over HTTP
 * (remote.h). One table in app.c says what each domain brings.
 *
 * struct app is process-wide (created once by `strata serve`); struct
 * app_ctx is per thread — every HTTP worker and the bus thread has one — and
 * holds that thread's database connections and group-commit batches, so no
 * SQLite connection is ever shared between threads. Domains get their
 * context from http_worker_data() in handlers and from the bus handler's ctx
 * in consumers. */
#ifndef STRATA_APP_APP_H
#define STRATA_APP_APP_H

#include <uv.h>

#include "app/remote.h"
#include "core/config.h"
#include "http/router.h"
#include "http/server.h"
#include "store/batch.h"
#include "store/db.h"

struct cache;
struct bus;

enum app_domain {
  DOMAIN_USERS = 0, /* users.db */
  DOMAIN_ORDERS,    /* orders.db */
  DOMAIN_PAYMENTS,  /* payments.db */
  DOMAIN_NOTIFICATIONS, /* notifications.db */
  DOMAIN_COUNT
};

struct app {
  struct strata_config cfg;
  unsigned hosted; /* bit d: domain d runs in this process */
  char db_path[DOMAIN_COUNT][1100];
  enum db_sync sync;
  struct cache *users_cache;
  struct cache *orders_cache;
  uint32_t cache_ttl_ms, negative_ttl_ms;
  struct bus *bus;
  /* Remote domains: the services hosting them, and for each domain the
   * index of its service in remote_targets (-1: hosted here, or nowhere). */
  struct remote_settings remote;
  struct topology_target remote_targets[REMOTE_MAX_TARGETS];
  unsigned n_remote_targets;
  int remote_target_of[DOMAIN_COUNT];
  const char *identity_secret; /* NULL: internal calls are not signed */
};

typedef void (*app_defer_cb)(void *arg);

struct app_deferred;

struct app_ctx {
  struct app *app;
  uv_loop_t *loop;
  struct db *db[DOMAIN_COUNT];
  struct db_batch *batch[DOMAIN_COUNT];
  uv_check_t defer_check;
  uv_idle_t defer_idle;
  struct app_deferred *deferred;
  size_t n_deferred, cap_deferred;
  int open_handles; /* while closing */
  struct remote *remote; /* HTTP workers of a process with remote domains */
};

/* Creates the data directory and the hosted domains' databases (migrated),
 * caches and bus wiring. service NULL hosts every domain (the monolith);
 * otherwise the domains of cfg->services[service] (cfg already placed by
 * topology_place()). events.db lives in cfg->bus.dir, or the data
 * directory when that is "". Returns NULL and logs why. */
struct app *app_new(const struct strata_config *cfg, const char *service);

/* Internal calls are signed with secret (NUL-terminated; must outlive the
 * app), as the gateway signs its requests: set it when the services
 * require a signed identity (--identity-secret-file). Before app_start. */
void app_set_identity_secret(struct app *app, const char *secret);

/* 1 when domain d runs in this process. */
static inline int app_hosts(const struct app *app, enum app_domain d) {
  return (int)((app->hosted >> d) & 1u);
}
void app_free(struct app *app);

/* Adds the hosted domains' routes (and /openapi.json) to r; another
 * domain's paths get the router's 404. */
int app_routes_register(struct app *app, struct router *r);

/* Hooks for http_server_set_worker_hooks(): a context per worker. */
const struct http_worker_hooks *app_worker_hooks(struct app *app);

/* Starts / stops the bus thread (relay, consumers, cache invalidation). */
int app_start(struct app *app);
void app_stop(struct app *app);

/* Per-thread context on loop (an HTTP worker): connections and batches.
 * NULL when a database cannot be opened. */
struct app_ctx *app_ctx_new(struct app *app, uv_loop_t *loop);
/* Closes handles; the loop must run once more to finish. */
void app_ctx_free(struct app_ctx *ctx);
/* A context for a bus consumer: connections only (it writes in its own
 * transactions, on the bus thread). Release with app_ctx_release (the
 * signature of a bus cleanup callback). */
struct app_ctx *app_ctx_for_bus(struct app *app);
void app_ctx_release(void *ctx);

/* This thread's connection / batch for a domain's database. */
static inline struct db *app_db(struct app_ctx *ctx, enum app_domain d) { return ctx->db[d]; }
static inline struct db_batch *app_batch(struct app_ctx *ctx, enum app_domain d) {
  return ctx->batch[d];
}

/* Runs fn(arg) on ctx's loop after the current callback returns, so an
 * in-process client call completes the way a remote one would: never from
 * inside the call that started it. */
int app_defer(struct app_ctx *ctx, app_defer_cb fn, void *arg);

/* A domain client's remote half: GET path_query on the service hosting d
 * (which is not hosted here; remote.h). origin, the request the call is made
 * for, may be NULL. cb fires once, later, on ctx's loop; HTTP workers only. */
void app_remote_get(struct app_ctx *ctx, enum app_domain d, struct http_exchange *origin,
                    const char *path_query, struct arena *a, remote_done_cb cb, void *arg);

/* Tells the bus an outbox row was committed (the relay moves it now). */
void app_events_committed(struct app *app);

#endif
