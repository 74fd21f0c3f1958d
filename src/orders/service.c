/* Orders service, its in-process client and its event handlers; see
 * service.h and orders.h. */
#include "orders/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/ownership.h"
#include "bus/bus.h"
#include "cache/cache.h"
#include "core/error.h"
#include "core/id.h"
#include "observe/log.h"
#include "orders/orders.h"

static void cache_key(char out[64], const char *id) { snprintf(out, 64, "order:%s", id); }

struct write_op {
  struct app_ctx *ctx;
  struct arena *a;
  char id[ID_MAX];
  const char *user_id, *email;
  const char *me; /* cancel: the caller is confined to this user's orders */
  const struct order_item *items;
  size_t n_items;
  const char *json;
  size_t len;
  int cancel;
  orders_done_cb cb;
  void *arg;
};

/* order.created carries the order and the buyer's address (event-carried
 * state: notifications needs it and must not call users for it). */
static int append_event(struct db *db, struct write_op *op, const char *type) {
  json_t *payload = json_loadb(op->json, op->len, 0, NULL);
  if (!payload)
    return STRATA_EINTERNAL;
  json_object_set_new(payload, "userEmail", json_string(op->email ? op->email : ""));
  char *text = json_dumps(payload, JSON_COMPACT);
  json_decref(payload);
  if (!text)
    return STRATA_EINTERNAL;
  char event_id[40];
  int rc = bus_outbox_append(db, type, op->id, text, event_id);
  free(text);
  return rc;
}

static int apply_create(struct db *db, void *arg) {
  struct write_op *op = arg;
  long long total = 0;
  for (size_t i = 0; i < op->n_items; i++)
    total += op->items[i].quantity * op->items[i].unit_price_cents;
  int rc = orders_repo_insert(db, op->id, op->user_id, op->email, op->items, op->n_items, total,
                              db_now_ms());
  if (rc < 0 || orders_repo_get_json(db, op->id, op->a, &op->json, &op->len) != 1)
    return rc < 0 ? rc : STRATA_EINTERNAL;
  return append_event(db, op, "order.created");
}

static int apply_cancel(struct db *db, void *arg) {
  struct write_op *op = arg;
  if (op->me) {
    const char *u, *e, *s;
    long long t;
    int found = orders_repo_get_fields(db, op->id, op->a, &u, &e, &s, &t);
    if (found < 0)
      return found;
    if (found == 0 || !ownership_allows(op->me, u))
      return STRATA_ENOT_FOUND; /* another user's order is not there for this caller */
  }
  int rc = orders_repo_transition(db, op->id, "pending", "cancelled", db_now_ms());
  if (rc < 0)
    return rc;
  if (rc == 0) {
    const char *u, *e, *s;
    long long t;
    return orders_repo_get_fields(db, op->id, op->a, &u, &e, &s, &t) == 1 ? STRATA_ECONFLICT
                                                                           : STRATA_ENOT_FOUND;
  }
  const char *u, *s;
  long long t;
  if (orders_repo_get_fields(db, op->id, op->a, &u, &op->email, &s, &t) != 1 ||
      orders_repo_get_json(db, op->id, op->a, &op->json, &op->len) != 1)
    return STRATA_EINTERNAL;
  return append_event(db, op, "order.cancelled");
}

static void on_written(int rc, void *arg) {
  struct write_op *op = arg;
  struct app *app = op->ctx->app;
  if (rc == 0) {
    char key[64];
    cache_key(key, op->id);
    cache_set(app->orders_cache, key, op->json, op->len, app->cache_ttl_ms);
    app_events_committed(app);
  }
  op->cb(rc, op->json, op->len, op->arg);
}

static struct write_op *new_op(struct app_ctx *ctx, struct arena *a, orders_done_cb cb, void *arg) {
  struct write_op *op = arena_alloc(a, sizeof *op);
  if (op) {
    memset(op, 0, sizeof *op);
    op->ctx = ctx;
    op->a = a;
    op->cb = cb;
    op->arg = arg;
  }
  return op;
}

int orders_service_create(struct app_ctx *ctx, struct arena *a, const char *user_id,
                          const char *email, const struct order_item *items, size_t n_items,
                          orders_done_cb cb, void *arg) {
  struct write_op *op = new_op(ctx, a, cb, arg);
  if (!op)
    return STRATA_EINTERNAL;
  id_new("ord", op->id);
  op->user_id = user_id;
  op->email = email;
  op->items = items;
  op->n_items = n_items;
  return db_batch_submit(app_batch(ctx, DOMAIN_ORDERS), apply_create, on_written, op);
}

int orders_service_cancel(struct app_ctx *ctx, struct arena *a, const char *id, const char *me,
                          orders_done_cb cb, void *arg) {
  struct write_op *op = new_op(ctx, a, cb, arg);
  if (!op)
    return STRATA_EINTERNAL;
  snprintf(op->id, sizeof op->id, "%s", id);
  op->me = me;
  op->cancel = 1;
  return db_batch_submit(app_batch(ctx, DOMAIN_ORDERS), apply_cancel, on_written, op);
}

struct load_ctx {
  struct db *db;
  const char *id;
};

static int load_order(void *arg, struct arena *a, const char **val, size_t *len) {
  struct load_ctx *l = arg;
  return orders_repo_get_json(l->db, l->id, a, val, len);
}

/* 1 when a caller confined to me may see the order whose public JSON this
 * is (the cached form: no other copy of the owner is at hand). */
static int visible_to(const char *me, const char *json, size_t len) {
  if (!me)
    return 1;
  json_t *v = json_loadb(json, len, 0, NULL);
  int ok = ownership_allows(me, json_string_value(json_object_get(v, "userId")));
  json_decref(v);
  return ok;
}

int orders_service_get(struct app_ctx *ctx, struct arena *a, const char *id, const char *me,
                       const char **json, size_t *len, enum cache_result *how) {
  struct app *app = ctx->app;
  char key[64];
  cache_key(key, id);
  struct load_ctx l = {app_db(ctx, DOMAIN_ORDERS), id};
  int rc = cache_get_or_load(app->orders_cache, key, a, load_order, &l, app->cache_ttl_ms,
                             app->negative_ttl_ms, json, len, how);
  return rc == 1 && !visible_to(me, *json, *len) ? 0 : rc;
}

int orders_service_list(struct app_ctx *ctx, const char *user_id, const char *status,
                        const char *after, int limit, json_t **items) {
  *items = json_array();
  int n = *items ? orders_repo_list(app_db(ctx, DOMAIN_ORDERS), user_id, status, after, limit,
                                    *items)
                 : STRATA_EINTERNAL;
  if (n < 0) {
    json_decref(*items);
    *items = NULL;
    return n;
  }
  return 0;
}

int orders_service_get_view(struct app_ctx *ctx, struct arena *a, const char *id,
                            struct order_view *v) {
  memset(v, 0, sizeof *v);
  if (!id_valid("ord", id))
    return 0;
  v->id = arena_strndup(a, id, strlen(id));
  if (!v->id)
    return STRATA_EINTERNAL;
  return orders_repo_get_fields(app_db(ctx, DOMAIN_ORDERS), id, a, &v->user_id, &v->user_email,
                                &v->status, &v->total_cents);
}

/* ---- client ------------------------------------------------------------- */

struct client_call {
  struct app_ctx *ctx;
  struct arena *a;
  char id[ID_MAX];
  orders_get_cb get_cb;
  orders_list_cb list_cb;
  void *arg;
};

static void run_get(void *arg) {
  struct client_call *c = arg;
  struct order_view v;
  int rc = orders_service_get_view(c->ctx, c->a, c->id, &v);
  c->get_cb(rc, rc == 1 ? &v : NULL, c->arg);
}

/* /internal/orders/:id's JSON -> the view, strings in a. */
static int decode_view(const char *json, size_t len, struct arena *a, struct order_view *v) {
  memset(v, 0, sizeof *v);
  json_t *o = json_loadb(json, len, 0, NULL);
  const char *const names[] = {"id", "userId", "userEmail", "status"};
  const char **fields[] = {&v->id, &v->user_id, &v->user_email, &v->status};
  json_t *total = json_object_get(o, "totalCents");
  int rc = json_is_integer(total) ? 1 : STRATA_EBAD_GATEWAY;
  for (int i = 0; i < 4 && rc == 1; i++) {
    json_t *f = json_object_get(o, names[i]);
    if (!json_is_string(f))
      rc = STRATA_EBAD_GATEWAY;
    else if (!(*fields[i] = arena_strndup(a, json_string_value(f), json_string_length(f))))
      rc = STRATA_EINTERNAL;
  }
  if (rc == 1)
    v->total_cents = json_integer_value(total);
  json_decref(o);
  return rc;
}

static void on_remote_get(int rc, int status, const char *body, size_t len, void *arg) {
  struct client_call *c = arg;
  struct order_view v;
  if (rc == 0 && (rc = remote_status_rc(status)) == 1)
    rc = decode_view(body, len, c->a, &v);
  c->get_cb(rc, rc == 1 ? &v : NULL, c->arg);
}

static void list_answer(struct client_call *c, json_t *items) {
  char *text = json_dumps(items, JSON_COMPACT);
  const char *copy = text ? arena_strndup(c->a, text, strlen(text)) : NULL;
  free(text);
  if (copy)
    c->list_cb(0, copy, strlen(copy), c->arg);
  else
    c->list_cb(STRATA_EINTERNAL, NULL, 0, c->arg);
}

static void run_list(void *arg) {
  struct client_call *c = arg;
  if (!app_hosts(c->ctx->app, DOMAIN_ORDERS)) { /* not a user id: nobody's orders */
    c->list_cb(0, "[]", 2, c->arg);
    return;
  }
  json_t *items;
  int rc = orders_service_list(c->ctx, c->id, NULL, NULL, 100, &items);
  if (rc < 0) {
    c->list_cb(rc, NULL, 0, c->arg);
    return;
  }
  list_answer(c, items);
  json_decref(items);
}

/* The first page of GET /api/orders?userId=: its items are the list. */
static void on_remote_list(int rc, int status, const char *body, size_t len, void *arg) {
  struct client_call *c = arg;
  if (rc == 0 && status != 200)
    rc = status >= 500 ? STRATA_EUNAVAILABLE : STRATA_EBAD_GATEWAY;
  json_t *page = rc == 0 ? json_loadb(body, len, 0, NULL) : NULL;
  json_t *items = json_object_get(page, "items");
  if (rc == 0 && !json_is_array(items))
    rc = STRATA_EBAD_GATEWAY;
  if (rc < 0)
    c->list_cb(rc, NULL, 0, c->arg);
  else
    list_answer(c, items);
  json_decref(page);
}

static struct client_call *call_new(struct app_ctx *ctx, struct arena *a, const char *id) {
  struct client_call *c = arena_alloc(a, sizeof *c);
  if (c) {
    memset(c, 0, sizeof *c);
    c->ctx = ctx;
    c->a = a;
    snprintf(c->id, sizeof c->id, "%s", id);
  }
  return c;
}

void orders_client_get(struct app_ctx *ctx, struct http_exchange *origin, const char *id,
                       struct arena *a, orders_get_cb cb, void *arg) {
  struct client_call *c = call_new(ctx, a, id);
  if (!c) {
    cb(STRATA_EINTERNAL, NULL, arg);
    return;
  }
  c->get_cb = cb;
  c->arg = arg;
  if (!app_hosts(ctx->app, DOMAIN_ORDERS) && id_valid("ord", c->id)) {
    char path[ID_MAX + 24];
    snprintf(path, sizeof path, "/internal/orders/%s", c->id);
    app_remote_get(ctx, DOMAIN_ORDERS, origin, path, a, on_remote_get, c);
  } else if (app_defer(ctx, run_get, c) != 0) {
    cb(STRATA_EINTERNAL, NULL, arg);
  }
}

void orders_client_list_for_user(struct app_ctx *ctx, struct http_exchange *origin,
                                 const char *user_id, struct arena *a, orders_list_cb cb,
                                 void *arg) {
  struct client_call *c = call_new(ctx, a, user_id);
  if (!c) {
    cb(STRATA_EINTERNAL, NULL, 0, arg);
    return;
  }
  c->list_cb = cb;
  c->arg = arg;
  if (!app_hosts(ctx->app, DOMAIN_ORDERS) && id_valid("usr", c->id)) {
    char path[ID_MAX + 40];
    snprintf(path, sizeof path, "/api/orders?userId=%s&limit=100", c->id);
    app_remote_get(ctx, DOMAIN_ORDERS, origin, path, a, on_remote_list, c);
  } else if (app_defer(ctx, run_list, c) != 0) {
    cb(STRATA_EINTERNAL, NULL, 0, arg);
  }
}

/* ---- events ------------------------------------------------------------- */

/* payment.succeeded -> the order is paid. Runs on the bus thread with its
 * own connection; the inbox row and the status change commit together, so
 * a redelivered event changes nothing. */
static int on_payment_succeeded(const struct bus_event *ev, void *arg) {
  struct app_ctx *ctx = arg;
  struct db *db = app_db(ctx, DOMAIN_ORDERS);
  json_t *p = json_loads(ev->payload, 0, NULL);
  const char *order_id = p ? json_string_value(json_object_get(p, "orderId")) : NULL;
  if (!order_id) {
    json_decref(p);
    return STRATA_EVALIDATION; /* retried, then dead-lettered: a malformed event */
  }
  int rc = db_begin(db) == SQLITE_OK ? 0 : STRATA_EUNAVAILABLE;
  if (rc == 0) {
    int fresh = bus_inbox_mark(db, "orders-payments", ev->event_id);
    if (fresh < 0) {
      rc = fresh;
    } else if (fresh == 1) {
      int moved = orders_repo_transition(db, order_id, "pending", "paid", db_now_ms());
      if (moved < 0) {
        rc = moved;
      } else if (moved == 0) {
        log_event(LOG_WARN, "order_not_payable", NULL,
                  "payment for order %s arrived but the order is not pending", order_id);
      } else {
        struct arena a;
        arena_init(&a, 1024);
        struct write_op op = {.ctx = ctx, .a = &a};
        snprintf(op.id, sizeof op.id, "%s", order_id);
        const char *u, *s;
        long long t;
        rc = orders_repo_get_fields(db, order_id, &a, &u, &op.email, &s, &t) == 1 &&
                     orders_repo_get_json(db, order_id, &a, &op.json, &op.len) == 1
                 ? append_event(db, &op, "order.paid")
                 : STRATA_EINTERNAL;
        arena_free(&a);
      }
    }
  }
  if (rc == 0 && db_commit(db) != SQLITE_OK)
    rc = STRATA_EUNAVAILABLE;
  if (rc != 0)
    db_rollback(db);
  if (rc == 0) {
    char key[64];
    cache_key(key, order_id);
    cache_delete(ctx->app->orders_cache, key);
    app_events_committed(ctx->app);
  }
  json_decref(p);
  return rc;
}

/* Any instance's order change drops this instance's cached copy. */
static int on_order_changed(const struct bus_event *ev, void *arg) {
  struct app *app = arg;
  char key[64];
  cache_key(key, ev->key);
  cache_delete(app->orders_cache, key);
  return 0;
}

int orders_events_register(struct app *app) {
  static const char *const paid[] = {"payment.succeeded", NULL};
  static const char *const changed[] = {"order.cancelled", "order.paid", NULL};
  if (bus_subscribe(app->bus, "orders-payments", paid, on_payment_succeeded, app_ctx_release,
                    app_ctx_for_bus(app)) != 0 ||
      bus_tail(app->bus, changed, on_order_changed, app) != 0)
    return -1;
  return 0;
}
