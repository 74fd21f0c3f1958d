/* Application wiring; see app.h. */
#include "app/app.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/topology.h"
#include "bus/bus.h"
#include "cache/cache.h"
#include "core/error.h"
#include "notifications/notifications.h"
#include "observe/log.h"
#include "orders/orders.h"
#include "payments/payments.h"
#include "users/users.h"

/* What each domain brings to a process that hosts it. Index: enum
 * app_domain (the same order as topology_domain_name()). */
static const struct domain_spec {
  const char *db_file;
  size_t (*schema)(const struct db_migration **);
  int (*routes)(struct app *, struct router *);
  int (*events)(struct app *); /* bus consumers and cache tails; NULL: none */
  int outbox;                  /* it produces events */
  size_t cache;                /* offsetof its cache in struct app; 0: none */
} domains[DOMAIN_COUNT] = {
    [DOMAIN_USERS] = {"users.db", users_schema, users_routes_register, users_events_register, 1,
                      offsetof(struct app, users_cache)},
    [DOMAIN_ORDERS] = {"orders.db", orders_schema, orders_routes_register,
                       orders_events_register, 1, offsetof(struct app, orders_cache)},
    [DOMAIN_PAYMENTS] = {"payments.db", payments_schema, payments_routes_register, NULL, 1, 0},
    [DOMAIN_NOTIFICATIONS] = {"notifications.db", notifications_schema,
                              notifications_routes_register, notifications_events_register, 0,
                              0},
};

static struct cache **cache_of(struct app *app, enum app_domain d) {
  return domains[d].cache ? (struct cache **)((char *)app + domains[d].cache) : NULL;
}

struct app_deferred {
  app_defer_cb fn;
  void *arg;
};

static int mkdir_p(const char *path) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
      return -1;
    *p = '/';
  }
  return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int open_db(struct app *app, enum app_domain d, struct db **out) {
  const struct db_migration *steps;
  size_t n = domains[d].schema(&steps);
  char why[512];
  if (db_open(app->db_path[d], steps, n, app->sync, out, why, sizeof why) != 0) {
    log_event(LOG_ERROR, "db_open_failed", NULL, "%s", why);
    return -1;
  }
  return 0;
}

/* Finds the services hosting the domains that do not run here. */
static void plan_remote(struct app *app) {
  remote_settings_default(&app->remote);
  for (int d = 0; d < DOMAIN_COUNT; d++) {
    app->remote_target_of[d] = -1;
    struct topology_target t;
    if (app_hosts(app, (enum app_domain)d) || topology_target_of(&app->cfg, d, &t) < 0)
      continue;
    unsigned i = 0;
    while (i < app->n_remote_targets && strcmp(app->remote_targets[i].service, t.service) != 0)
      i++;
    if (i == app->n_remote_targets && i < REMOTE_MAX_TARGETS)
      app->remote_targets[app->n_remote_targets++] = t;
    app->remote_target_of[d] = i < app->n_remote_targets ? (int)i : -1;
  }
  for (int d = 0; d < DOMAIN_COUNT; d++)
    if (app_hosts(app, (enum app_domain)d))
      log_event(LOG_INFO, "domain", NULL, "%s: hosted here", topology_domain_name(d));
    else if (app->remote_target_of[d] >= 0)
      log_event(LOG_INFO, "domain", NULL, "%s: remote, services.%s",
                topology_domain_name(d), app->remote_targets[app->remote_target_of[d]].service);
    else
      log_event(LOG_WARN, "domain", NULL, "%s: hosted by no service; its calls fail (503)",
                topology_domain_name(d));
}

struct app *app_new(const struct strata_config *cfg, const char *service) {
  struct app *app = calloc(1, sizeof *app);
  if (!app)
    return NULL;
  app->cfg = *cfg;
  app->hosted = topology_hosted(cfg, service);
  app->sync = cfg->storage.synchronous;
  app->cache_ttl_ms = cfg->cache.ttl_ms;
  app->negative_ttl_ms = cfg->cache.negative_ttl_ms;
  const char *bus_dir = cfg->bus.dir[0] ? cfg->bus.dir : cfg->data_dir;
  for (int i = 0; i < 2; i++) {
    const char *dir = i ? bus_dir : cfg->data_dir;
    if (mkdir_p(dir) != 0) {
      log_event(LOG_ERROR, "data_dir_failed", NULL, "cannot create %s: %s", dir,
                strerror(errno));
      goto fail;
    }
  }
  for (int d = 0; d < DOMAIN_COUNT; d++) {
    if (!app_hosts(app, (enum app_domain)d))
      continue;
    snprintf(app->db_path[d], sizeof app->db_path[d], "%s/%s", cfg->data_dir,
             domains[d].db_file);
    struct db *db;
    if (open_db(app, (enum app_domain)d, &db) != 0) /* migrate once, up front */
      goto fail;
    db_close(db);
    struct cache **slot = cache_of(app, (enum app_domain)d);
    if (slot && !(*slot = cache_lru_new(topology_domain_name(d), cfg->cache.max_entries,
                                        cfg->cache.max_bytes)))
      goto fail;
  }
  plan_remote(app);
  struct bus_config bc;
  bus_config_from(cfg, &bc);
  char why[512];
  app->bus = bus_new(bus_dir, &bc, why, sizeof why);
  if (!app->bus) {
    log_event(LOG_ERROR, "bus_failed", NULL, "%s", why);
    goto fail;
  }
  for (int d = 0; d < DOMAIN_COUNT; d++) {
    if (!app_hosts(app, (enum app_domain)d))
      continue;
    if (domains[d].outbox && bus_add_outbox(app->bus, app->db_path[d]) != 0)
      goto fail;
    if (domains[d].events && domains[d].events(app) != 0) {
      log_event(LOG_ERROR, "bus_failed", NULL, "could not register the %s event consumers",
                topology_domain_name(d));
      goto fail;
    }
  }
  return app;
fail:
  app_free(app);
  return NULL;
}

void app_set_identity_secret(struct app *app, const char *secret) {
  app->identity_secret = secret && secret[0] ? secret : NULL;
}

void app_free(struct app *app) {
  if (!app)
    return;
  bus_free(app->bus);
  cache_free(app->users_cache);
  cache_free(app->orders_cache);
  free(app);
}

int app_start(struct app *app) { return bus_start(app->bus) == 0 ? 0 : -1; }
void app_stop(struct app *app) { bus_stop(app->bus); }
void app_events_committed(struct app *app) { bus_notify(app->bus); }

/* ---- per-thread contexts ------------------------------------------------ */

static void run_deferred(struct app_ctx *ctx) {
  while (ctx->n_deferred) {
    /* Take the queue: a deferred call may defer again (next round). */
    struct app_deferred *q = ctx->deferred;
    size_t n = ctx->n_deferred;
    ctx->deferred = NULL;
    ctx->n_deferred = ctx->cap_deferred = 0;
    for (size_t i = 0; i < n; i++)
      q[i].fn(q[i].arg);
    free(q);
  }
  uv_idle_stop(&ctx->defer_idle);
}

static void on_defer_check(uv_check_t *h) { run_deferred(h->data); }
static void on_defer_idle(uv_idle_t *h) { (void)h; }

int app_defer(struct app_ctx *ctx, app_defer_cb fn, void *arg) {
  if (!ctx->loop)
    return STRATA_EINTERNAL;
  if (ctx->n_deferred == ctx->cap_deferred) {
    size_t cap = ctx->cap_deferred ? ctx->cap_deferred * 2 : 16;
    struct app_deferred *q = realloc(ctx->deferred, cap * sizeof *q);
    if (!q)
      return STRATA_EINTERNAL;
    ctx->deferred = q;
    ctx->cap_deferred = cap;
  }
  ctx->deferred[ctx->n_deferred++] = (struct app_deferred){fn, arg};
  uv_idle_start(&ctx->defer_idle, on_defer_idle); /* poll must not block */
  return 0;
}

static struct app_ctx *ctx_open(struct app *app, uv_loop_t *loop) {
  struct app_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx)
    return NULL;
  ctx->app = app;
  ctx->loop = loop;
  for (int d = 0; d < DOMAIN_COUNT; d++)
    if (app_hosts(app, (enum app_domain)d) && open_db(app, (enum app_domain)d, &ctx->db[d]) != 0)
      goto fail;
  return ctx;
fail:
  for (int d = 0; d < DOMAIN_COUNT; d++)
    db_close(ctx->db[d]);
  free(ctx);
  return NULL;
}

struct app_ctx *app_ctx_new(struct app *app, uv_loop_t *loop) {
  struct app_ctx *ctx = ctx_open(app, loop);
  if (!ctx)
    return NULL;
  uv_check_init(loop, &ctx->defer_check);
  uv_idle_init(loop, &ctx->defer_idle);
  ctx->defer_check.data = ctx->defer_idle.data = ctx;
  uv_check_start(&ctx->defer_check, on_defer_check);
  uv_unref((uv_handle_t *)&ctx->defer_check);
  for (int d = 0; d < DOMAIN_COUNT; d++)
    if (ctx->db[d] && !(ctx->batch[d] = db_batch_new(loop, ctx->db[d])))
      goto fail;
  if (app->n_remote_targets &&
      !(ctx->remote = remote_new(loop, &app->remote, app->remote_targets, app->n_remote_targets,
                                 app->identity_secret)))
    goto fail;
  return ctx;
fail:
  app_ctx_free(ctx); /* its handles close when the loop runs */
  return NULL;
}

/* Both handles must be closed before ctx goes: libuv finishes closes in
 * an order of its own. */
static void on_ctx_handle_closed(uv_handle_t *h) {
  struct app_ctx *ctx = h->data;
  if (--ctx->open_handles > 0)
    return;
  for (int d = 0; d < DOMAIN_COUNT; d++)
    db_close(ctx->db[d]);
  free(ctx->deferred);
  free(ctx);
}

void app_ctx_free(struct app_ctx *ctx) {
  if (!ctx)
    return;
  run_deferred(ctx);
  /* Batches answer what they still hold (503) before the connections go. */
  for (int d = 0; d < DOMAIN_COUNT; d++)
    db_batch_free(ctx->batch[d]);
  remote_free(ctx->remote);
  ctx->open_handles = 2;
  uv_close((uv_handle_t *)&ctx->defer_check, on_ctx_handle_closed);
  uv_close((uv_handle_t *)&ctx->defer_idle, on_ctx_handle_closed);
}

struct app_ctx *app_ctx_for_bus(struct app *app) { return ctx_open(app, NULL); }

void app_ctx_release(void *arg) {
  struct app_ctx *ctx = arg;
  if (!ctx)
    return;
  for (int d = 0; d < DOMAIN_COUNT; d++)
    db_close(ctx->db[d]);
  free(ctx);
}

/* ---- server hooks and routes ------------------------------------------- */

static int on_worker_start(unsigned index, uv_loop_t *loop, void **data, void *arg) {
  (void)index;
  struct app_ctx *ctx = app_ctx_new(arg, loop);
  *data = ctx;
  return ctx ? 0 : -1;
}

static void on_worker_stop(unsigned index, uv_loop_t *loop, void *data, void *arg) {
  (void)index;
  (void)loop;
  (void)arg;
  app_ctx_free(data);
}

const struct http_worker_hooks *app_worker_hooks(struct app *app) {
  static struct http_worker_hooks hooks;
  hooks.start = on_worker_start;
  hooks.stop = on_worker_stop;
  hooks.ctx = app;
  return &hooks;
}

extern const char app_openapi_json[];
extern const size_t app_openapi_json_len;

static void get_openapi(struct http_exchange *ex, void *data) {
  (void)data;
  http_respond_json(ex, 200, app_openapi_json, app_openapi_json_len);
}

int app_routes_register(struct app *app, struct router *r) {
  for (int d = 0; d < DOMAIN_COUNT; d++)
    if (app_hosts(app, (enum app_domain)d) && domains[d].routes(app, r) != 0)
      return -1;
  return router_add(r, "GET", "/openapi.json", get_openapi, NULL) ? -1 : 0;
}

/* ---- remote domains ------------------------------------------------------ */

struct remote_fail {
  remote_done_cb cb;
  void *arg;
  int rc;
};

static void run_remote_fail(void *arg) {
  struct remote_fail *f = arg;
  f->cb(f->rc, 0, NULL, 0, f->arg);
}

void app_remote_get(struct app_ctx *ctx, enum app_domain d, struct http_exchange *origin,
                    const char *path_query, struct arena *a, remote_done_cb cb, void *arg) {
  int rc = remote_get(ctx->remote, ctx->app->remote_target_of[d], origin, path_query, a, cb, arg);
  if (rc == 0)
    return;
  /* It could not start (no remote on this thread, out of memory): still
   * report through the loop, never from inside this call. */
  struct remote_fail *f = arena_alloc(a, sizeof *f);
  if (f) {
    *f = (struct remote_fail){cb, arg, rc};
    if (app_defer(ctx, run_remote_fail, f) == 0)
      return;
  }
  cb(STRATA_EINTERNAL, 0, NULL, 0, arg);
}
