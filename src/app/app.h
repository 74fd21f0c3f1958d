/* The application: the four domains, their databases, caches and the bus,
 * wired onto the HTTP server.
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
  char db_path[DOMAIN_COUNT][1100];
  enum db_sync sync;
  struct cache *users_cache;
  struct cache *orders_cache;
  uint32_t cache_ttl_ms, negative_ttl_ms;
  struct bus *bus;
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
};

/* Creates the data directory and databases (migrated), the caches and the
 * bus. Returns NULL and prints why on stderr. */
struct app *app_new(const struct strata_config *cfg);
void app_free(struct app *app);

/* Adds every domain's routes (and /openapi.json) to r. */
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

/* Tells the bus an outbox row was committed (the relay moves it now). */
void app_events_committed(struct app *app);

#endif
