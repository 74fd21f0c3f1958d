/* Orders routes.
 *
 *   POST /api/orders             {"userId","items":[{"sku","quantity","unitPriceCents"}]}
 *                                -> 201 pending, totalCents computed; unknown user -> 422
 *   GET  /api/orders             ?userId=&status=&limit=&after=
 *   GET  /api/orders/:id         -> 200 (X-Cache) | 404
 *   POST /api/orders/:id/cancel  -> 200 cancelled | 409 when not pending
 *
 * Behind the gateway a user reaches only their own orders (app/ownership.h):
 * another user's order is answered as an unknown one (404), a list filtered
 * on another user is empty, and an order for another user is refused (403).
 *
 * Also the wire form of orders_client_get() for services in other processes
 * (not part of the public API, not in openapi.json):
 *   GET  /internal/orders/:id    -> {"id","userId","userEmail","status","totalCents"} | 404 */
#include <stdio.h>
#include <string.h>

#include "app/ownership.h"
#include "app/paging.h"
#include "core/error.h"
#include "core/id.h"
#include "http/json_body.h"
#include "orders/orders.h"
#include "orders/service.h"
#include "users/users.h"

#define MAX_ITEMS 100

static const char *const writable[] = {"userId", "items", NULL};
static const char *const server_owned[] = {"id", "status", "totalCents", "createdAt", "updatedAt",
                                           NULL};
static const char *const item_fields[] = {"sku", "quantity", "unitPriceCents", NULL};

struct create_req {
  struct http_exchange *ex;
  const char *user_id;
  struct order_item *items;
  size_t n_items;
};

static int item_error(struct http_exchange *ex, size_t i, const char *field, const char *what) {
  char name[64], msg[160];
  snprintf(name, sizeof name, "items[%zu]%s%s", i, field ? "." : "", field ? field : "");
  snprintf(msg, sizeof msg, "%s %s.", name, what);
  http_respond_error(ex, STRATA_EVALIDATION, msg, name);
  return -1;
}

/* Validates the items array into req (strings copied to the arena). */
static int read_items(struct http_exchange *ex, json_t *items, struct create_req *req) {
  if (!items) {
    http_respond_error(ex, STRATA_EVALIDATION, "items is required.", "items");
    return -1;
  }
  if (!json_is_array(items) || json_array_size(items) == 0 || json_array_size(items) > MAX_ITEMS) {
    http_respond_error(ex, STRATA_EVALIDATION, "items must be an array of 1 to 100 items.", "items");
    return -1;
  }
  struct arena *a = http_arena(ex);
  req->n_items = json_array_size(items);
  req->items = arena_alloc(a, req->n_items * sizeof *req->items);
  if (!req->items) {
    http_respond_error(ex, STRATA_EINTERNAL, NULL, NULL);
    return -1;
  }
  for (size_t i = 0; i < req->n_items; i++) {
    json_t *it = json_array_get(items, i), *v;
    const char *key;
    if (!json_is_object(it))
      return item_error(ex, i, NULL, "must be an object");
    json_object_foreach(it, key, v) {
      int known = 0;
      for (int k = 0; item_fields[k]; k++)
        known |= strcmp(item_fields[k], key) == 0;
      if (!known)
        return item_error(ex, i, key, "is not a field of an item");
    }
    json_t *sku = json_object_get(it, "sku"), *q = json_object_get(it, "quantity"),
           *p = json_object_get(it, "unitPriceCents");
    if (!json_is_string(sku) || json_string_length(sku) < 1 || json_string_length(sku) > 64)
      return item_error(ex, i, "sku", "must be a string of 1 to 64 characters");
    if (!json_is_integer(q) || json_integer_value(q) < 1 || json_integer_value(q) > 10000)
      return item_error(ex, i, "quantity", "must be an integer from 1 to 10000");
    if (!json_is_integer(p) || json_integer_value(p) < 0 || json_integer_value(p) > 100000000)
      return item_error(ex, i, "unitPriceCents", "must be an integer from 0 to 100000000");
    req->items[i].sku = arena_strndup(a, json_string_value(sku), json_string_length(sku));
    req->items[i].quantity = json_integer_value(q);
    req->items[i].unit_price_cents = json_integer_value(p);
  }
  return 0;
}

static void respond_order(struct http_exchange *ex, int status, const char *json, size_t len) {
  json_t *v = json_loadb(json, len, 0, NULL);
  if (status == 201) {
    char location[128];
    snprintf(location, sizeof location, "/api/orders/%s", json_string_value(json_object_get(v, "id")));
    http_add_header(ex, "Location", location);
  }
  json_decref(v);
  http_respond_json(ex, status, json, len);
}

static void on_created(int rc, const char *json, size_t len, void *arg) {
  struct create_req *req = arg;
  if (rc < 0)
    http_respond_error(req->ex, rc, NULL, NULL);
  else
    respond_order(req->ex, 201, json, len);
}

static void on_user(int rc, const struct user_view *u, void *arg) {
  struct create_req *req = arg;
  struct http_exchange *ex = req->ex;
  if (rc < 0) {
    http_respond_error(ex, rc, "The users service could not be reached.", NULL);
    return;
  }
  if (rc == 0) {
    http_respond_error(ex, STRATA_EUNPROCESSABLE, "userId does not name an existing user.", "userId");
    return;
  }
  const char *email = arena_strndup(http_arena(ex), u->email, strlen(u->email));
  rc = orders_service_create(http_worker_data(ex), http_arena(ex), req->user_id, email,
                             req->items, req->n_items, on_created, req);
  if (rc < 0)
    http_respond_error(ex, rc, NULL, NULL);
}

static void create_order(struct http_exchange *ex, void *data) {
  (void)data;
  const char *me;
  if (ownership_confine(ex, &me) != 0)
    return;
  json_t *body = http_json_body(ex);
  if (!body)
    return;
  struct create_req *req = arena_alloc(http_arena(ex), sizeof *req);
  const char *user_id = NULL;
  if (!req) {
    http_respond_error(ex, STRATA_EINTERNAL, NULL, NULL);
  } else if (json_fields_check(ex, body, writable, server_owned) == 0 &&
             json_field_string(ex, body, "userId", 1, 1, 64, &user_id) == 0 &&
             read_items(ex, json_object_get(body, "items"), req) == 0) {
    if (!ownership_allows(me, user_id)) {
      /* decided before the user is looked up: says nothing about whether
       * that user exists */
      http_respond_error(ex, STRATA_EFORBIDDEN, "You can only place orders for yourself.",
                         "userId");
      json_decref(body);
      return;
    }
    req->ex = ex;
    req->user_id = arena_strndup(http_arena(ex), user_id, strlen(user_id));
    users_client_get(http_worker_data(ex), ex, req->user_id, http_arena(ex), on_user, req);
  }
  json_decref(body);
}

static const char *path_id(struct http_exchange *ex) {
  const char *id = http_param_get(ex, "id");
  return id && id_valid("ord", id) ? id : NULL;
}

static void get_order(struct http_exchange *ex, void *data) {
  (void)data;
  const char *me;
  if (ownership_confine(ex, &me) != 0)
    return;
  const char *id = path_id(ex), *json = NULL;
  size_t len = 0;
  enum cache_result how = CACHE_MISS;
  int rc = id ? orders_service_get(http_worker_data(ex), http_arena(ex), id, me, &json, &len, &how)
              : 0;
  /* A confined caller's 404 never says how the cache fared: HIT or MISS
   * would tell another user's order from an unknown id. */
  if (id && (rc == 1 || !me))
    http_add_header(ex, "X-Cache", how == CACHE_MISS ? "MISS" : "HIT");
  if (rc < 0)
    http_respond_error(ex, rc, NULL, NULL);
  else if (rc == 0)
    http_respond_error(ex, STRATA_ENOT_FOUND, "No order with this id.", NULL);
  else
    http_respond_json(ex, 200, json, len);
}

static void get_order_view(struct http_exchange *ex, void *data) {
  (void)data;
  const char *id = http_param_get(ex, "id");
  struct order_view v;
  int rc = id ? orders_service_get_view(http_worker_data(ex), http_arena(ex), id, &v) : 0;
  if (rc < 0) {
    http_respond_error(ex, rc, NULL, NULL);
  } else if (rc == 0) {
    http_respond_error(ex, STRATA_ENOT_FOUND, "No order with this id.", NULL);
  } else {
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I}", "id", v.id, "userId", v.user_id, "userEmail",
                          v.user_email, "status", v.status, "totalCents",
                          (json_int_t)v.total_cents);
    if (o)
      http_respond_json_value(ex, 200, o);
    else
      http_respond_error(ex, STRATA_EINTERNAL, NULL, NULL);
    json_decref(o);
  }
}

static void on_cancelled(int rc, const char *json, size_t len, void *arg) {
  struct http_exchange *ex = arg;
  if (rc == STRATA_ECONFLICT)
    http_respond_error(ex, rc, "Only a pending order can be cancelled.", NULL);
  else if (rc == STRATA_ENOT_FOUND)
    http_respond_error(ex, rc, "No order with this id.", NULL);
  else if (rc < 0)
    http_respond_error(ex, rc, NULL, NULL);
  else
    respond_order(ex, 200, json, len);
}

static void cancel_order(struct http_exchange *ex, void *data) {
  (void)data;
  const char *me;
  if (ownership_confine(ex, &me) != 0)
    return;
  const char *id = path_id(ex);
  if (!id) {
    http_respond_error(ex, STRATA_ENOT_FOUND, "No order with this id.", NULL);
    return;
  }
  int rc = orders_service_cancel(http_worker_data(ex), http_arena(ex), id, me, on_cancelled, ex);
  if (rc < 0)
    http_respond_error(ex, rc, NULL, NULL);
}

static void list_orders(struct http_exchange *ex, void *data) {
  (void)data;
  const char *me;
  struct page page;
  if (ownership_confine(ex, &me) != 0 || paging_read(ex, "ord", &page) != 0)
    return;
  const char *user_id = http_query_get(ex, "userId");
  const char *status = http_query_get(ex, "status");
  if (status && strcmp(status, "pending") && strcmp(status, "paid") && strcmp(status, "cancelled")) {
    http_respond_error(ex, STRATA_EVALIDATION, "status must be pending, paid or cancelled.", "status");
    return;
  }
  if (!ownership_narrow(me, user_id, &user_id)) {
    paging_respond(ex, &page, json_array()); /* another user's orders: none for this caller */
    return;
  }
  json_t *items;
  int rc = orders_service_list(http_worker_data(ex), user_id, status, page.after, page.limit + 1,
                               &items);
  if (rc < 0) {
    http_respond_error(ex, rc, NULL, NULL);
    return;
  }
  paging_respond(ex, &page, items);
}

int orders_routes_register(struct app *app, struct router *r) {
  (void)app;
  if (router_add(r, "POST", "/api/orders", create_order, NULL) ||
      router_add(r, "GET", "/api/orders", list_orders, NULL) ||
      router_add(r, "GET", "/api/orders/:id", get_order, NULL) ||
      router_add(r, "POST", "/api/orders/:id/cancel", cancel_order, NULL) ||
      router_add(r, "GET", "/internal/orders/:id", get_order_view, NULL))
    return -1;
  return 0;
}
