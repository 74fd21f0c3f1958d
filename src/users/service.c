/* Users service; see service.h. */
#include "users/service.h"

#include <stdio.h>
#include <string.h>

#include "bus/bus.h"
#include "core/error.h"
#include "core/id.h"
#include "users/repo.h"
#include "users/users.h"

struct write_op {
  struct app_ctx *ctx;
  struct arena *a;
  char id[ID_MAX];
  const char *name, *email;
  const char *event;       /* user.created / user.updated / user.deleted */
  const char *json;        /* the user after the write (NULL after delete) */
  size_t len;
  users_done_cb cb;
  void *arg;
};

static void cache_key(char out[64], const char *id) { snprintf(out, 64, "user:%s", id); }

/* Inside the batch's transaction: the row and its event, or neither. */
static int apply_write(struct db *db, void *arg) {
  struct write_op *op = arg;
  long long now = db_now_ms();
  int rc;
  if (strcmp(op->event, "user.created") == 0)
    rc = users_repo_insert(db, op->id, op->name, op->email, now);
  else if (strcmp(op->event, "user.updated") == 0)
    rc = users_repo_update(db, op->id, op->name, op->email, now);
  else
    rc = users_repo_delete(db, op->id);
  if (rc < 0)
    return rc;
  if (rc == 0 && strcmp(op->event, "user.created") != 0)
    return STRATA_ENOT_FOUND;
  char payload[ID_MAX + 16];
  const char *event_payload = payload;
  if (strcmp(op->event, "user.deleted") == 0) {
    snprintf(payload, sizeof payload, "{\"id\":\"%s\"}", op->id);
  } else {
    if (users_repo_get_json(db, op->id, op->a, &op->json, &op->len) != 1)
      return STRATA_EINTERNAL;
    event_payload = op->json;
  }
  char event_id[40];
  return bus_outbox_append(db, op->event, op->id, event_payload, event_id);
}

static void on_written(int rc, void *arg) {
  struct write_op *op = arg;
  struct app *app = op->ctx->app;
  char key[64];
  cache_key(key, op->id);
  if (rc == 0) {
    if (op->json)
      cache_set(app->users_cache, key, op->json, op->len, app->cache_ttl_ms); /* write-through */
    else
      cache_set_negative(app->users_cache, key, app->negative_ttl_ms);
    app_events_committed(app);
  }
  op->cb(rc, op->json, op->len, op->arg);
}

static int submit(struct app_ctx *ctx, struct arena *a, const char *event, const char *id,
                  const char *name, const char *email, users_done_cb cb, void *arg) {
  struct write_op *op = arena_alloc(a, sizeof *op);
  if (!op)
    return STRATA_EINTERNAL;
  memset(op, 0, sizeof *op);
  op->ctx = ctx;
  op->a = a;
  op->event = event;
  op->name = name;
  op->email = email;
  op->cb = cb;
  op->arg = arg;
  if (id)
    snprintf(op->id, sizeof op->id, "%s", id);
  else
    id_new("usr", op->id);
  return db_batch_submit(app_batch(ctx, DOMAIN_USERS), apply_write, on_written, op);
}

int users_service_create(struct app_ctx *ctx, struct arena *a, const char *name,
                         const char *email, users_done_cb cb, void *arg) {
  return submit(ctx, a, "user.created", NULL, name, email, cb, arg);
}

int users_service_update(struct app_ctx *ctx, struct arena *a, const char *id, const char *name,
                         const char *email, users_done_cb cb, void *arg) {
  return submit(ctx, a, "user.updated", id, name, email, cb, arg);
}

int users_service_delete(struct app_ctx *ctx, struct arena *a, const char *id, users_done_cb cb,
                         void *arg) {
  return submit(ctx, a, "user.deleted", id, NULL, NULL, cb, arg);
}

struct load_ctx {
  struct db *db;
  const char *id;
};

static int load_user(void *arg, struct arena *a, const char **val, size_t *len) {
  struct load_ctx *l = arg;
  return users_repo_get_json(l->db, l->id, a, val, len);
}

int users_service_get(struct app_ctx *ctx, struct arena *a, const char *id, const char **json,
                      size_t *len, enum cache_result *how) {
  struct app *app = ctx->app;
  char key[64];
  cache_key(key, id);
  struct load_ctx l = {app_db(ctx, DOMAIN_USERS), id};
  return cache_get_or_load(app->users_cache, key, a, load_user, &l, app->cache_ttl_ms,
                           app->negative_ttl_ms, json, len, how);
}

int users_service_list(struct app_ctx *ctx, const char *only, const char *after, int limit,
                       json_t **items) {
  *items = json_array();
  if (!*items)
    return STRATA_EINTERNAL;
  int n = users_repo_list(app_db(ctx, DOMAIN_USERS), only, after, limit, *items);
  if (n < 0) {
    json_decref(*items);
    *items = NULL;
    return n;
  }
  return 0;
}

/* ---- client ------------------------------------------------------------- */

struct client_call {
  struct app_ctx *ctx;
  struct arena *a;
  char id[ID_MAX];
  users_get_cb cb;
  void *arg;
};

/* The user's public JSON (what GET /api/users/:id answers) -> a view in a. */
static int decode_user(const char *json, size_t len, struct arena *a, struct user_view *u) {
  json_t *v = json_loadb(json, len, 0, NULL);
  const char *const names[] = {"id", "name", "email"};
  const char **fields[] = {&u->id, &u->name, &u->email};
  int rc = v ? 1 : STRATA_EBAD_GATEWAY;
  for (int i = 0; i < 3 && rc == 1; i++) {
    json_t *f = json_object_get(v, names[i]);
    *fields[i] = json_is_string(f)
                     ? arena_strndup(a, json_string_value(f), json_string_length(f))
                     : NULL;
    if (!*fields[i])
      rc = json_is_string(f) ? STRATA_EINTERNAL : STRATA_EBAD_GATEWAY;
  }
  json_decref(v);
  return rc;
}

static void answer(struct client_call *call, int rc, const char *json, size_t len) {
  struct user_view u = {0};
  if (rc == 1)
    rc = decode_user(json, len, call->a, &u);
  call->cb(rc, rc == 1 ? &u : NULL, call->arg);
}

static void run_client_get(void *arg) {
  struct client_call *call = arg;
  const char *json = NULL;
  size_t len = 0;
  int rc = id_valid("usr", call->id)
               ? users_service_get(call->ctx, call->a, call->id, &json, &len, NULL)
               : 0;
  answer(call, rc, json, len);
}

static void on_remote_user(int rc, int status, const char *body, size_t len, void *arg) {
  answer(arg, rc < 0 ? rc : remote_status_rc(status), body, len);
}

void users_client_get(struct app_ctx *ctx, struct http_exchange *origin, const char *id,
                      struct arena *a, users_get_cb cb, void *arg) {
  struct client_call *call = arena_alloc(a, sizeof *call);
  if (!call) {
    cb(STRATA_EINTERNAL, NULL, arg);
    return;
  }
  call->ctx = ctx;
  call->a = a;
  snprintf(call->id, sizeof call->id, "%s", id);
  call->cb = cb;
  call->arg = arg;
  if (!app_hosts(ctx->app, DOMAIN_USERS) && id_valid("usr", call->id)) {
    char path[ID_MAX + 16];
    snprintf(path, sizeof path, "/api/users/%s", call->id);
    app_remote_get(ctx, DOMAIN_USERS, origin, path, a, on_remote_user, call);
  } else if (app_defer(ctx, run_client_get, call) != 0) {
    /* still never from inside this call: report through the loop */
    cb(STRATA_EINTERNAL, NULL, arg);
  }
}

/* ---- events ------------------------------------------------------------- */

/* Any instance's change to a user drops this instance's cached copy: the
 * next read loads the row again. */
static int on_user_changed(const struct bus_event *ev, void *arg) {
  struct app *app = arg;
  char key[64];
  cache_key(key, ev->key);
  cache_delete(app->users_cache, key);
  return 0;
}

int users_events_register(struct app *app) {
  static const char *const types[] = {"user.updated", "user.deleted", NULL};
  return bus_tail(app->bus, types, on_user_changed, app) == 0 ? 0 : -1;
}
