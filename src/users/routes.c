/* Users routes: HTTP in, HTTP out. Validation of the request happens here;
 * everything else is the service's. Behind the gateway a user reaches only
 * their own record (app/ownership.h): another id is answered as an unknown
 * one, the list holds the caller alone; signup (POST) is open to anyone.
 *
 *   POST   /api/users            {"name","email"} -> 201 + Location
 *   GET    /api/users            ?limit=&after=   -> {"items":[...],"next":...}
 *   GET    /api/users/:id                         -> 200 (X-Cache: HIT|MISS) | 404
 *   PATCH  /api/users/:id        {"name"?,"email"?}
 *   DELETE /api/users/:id                         -> 204
 *   GET    /api/users/:id/orders                  -> {"user":{...},"orders":[...]} */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/ownership.h"
#include "app/paging.h"
#include "core/error.h"
#include "core/id.h"
#include "http/json_body.h"
#include "orders/orders.h"
#include "users/service.h"
#include "users/users.h"

static const char *const writable[] = {"name", "email", NULL};
static const char *const server_owned[] = {"id", "createdAt", "updatedAt", NULL};

/* A plausible address: one '@', something on both sides, a dot in the
 * domain, no spaces or control bytes. Deliverability is not our business. */
static int email_ok(const char *e) {
  const char *at = strchr(e, '@');
  if (!at || at == e || strchr(at + 1, '@') || !strchr(at + 1, '.') || at[1] == '.' ||
      e[strlen(e) - 1] == '.')
    return 0;
  for (const unsigned char *p = (const unsigned char *)e; *p; p++)
    if (*p <= ' ' || *p == 0x7f)
      return 0;
  return 1;
}

/* Reads and checks name/email; required on create, optional on update. */
static int read_fields(struct http_exchange *ex, json_t *body, int required, const char **name,
                       const char **email) {
  if (json_fields_check(ex, body, writable, server_owned) ||
      json_field_string(ex, body, "name", required, 1, 200, name) ||
      json_field_string(ex, body, "email", required, 3, 254, email))
    return -1;
  if (*email && !email_ok(*email)) {
    http_respond_error(ex, STRATA_EVALIDATION, "email is not a valid address.", "email");
    return -1;
  }
  return 0;
}

static void respond_user(struct http_exchange *ex, int status, const char *json, size_t len,
                         const char *cache) {
  if (cache)
    http_add_header(ex, "X-Cache", cache);
  http_respond_json(ex, status, json, len);
}

static void on_created(int rc, const char *json, size_t len, void *arg) {
  struct http_exchange *ex = arg;
  if (rc == STRATA_ECONFLICT) {
    http_respond_error(ex, rc, "A user with this email already exists.", "email");
    return;
  }
  if (rc < 0) {
    http_respond_error(ex, rc, NULL, NULL);
    return;
  }
  json_t *v = json_loadb(json, len, 0, NULL);
  char location[128];
  snprintf(location, sizeof location, "/api/users/%s", json_string_value(json_object_get(v, "id")));
  json_decref(v);
  http_add_header(ex, "Location", location);
  respond_user(ex, 201, json, len, NULL);
}

static void create_user(struct http_exchange *ex, void *data) {
  (void)data;
  json_t *body = http_json_body(ex);
  if (!body)
    return;
  const char *name = NULL, *email = NULL;
  if (read_fields(ex, body, 1, &name, &email) == 0) {
    struct arena *a = http_arena(ex);
    name = arena_strndup(a, name, strlen(name));
    email = arena_strndup(a, email, strlen(email));
    int rc = users_service_create(http_worker_data(ex), a, name, email, on_created, ex);
    if (rc < 0)
      http_respond_error(ex, rc, NULL, NULL);
  }
  json_decref(body);
}

/* The path's user id, or NULL when it is malformed or names a user the
 * caller (confined to me) may not see: both are answered as unknown, and
 * neither reaches the cache (so no X-Cache either). */
static const char *path_id(struct http_exchange *ex, const char *me) {
  const char *id = http_param_get(ex, "id");
  return id && id_valid("usr", id) && ownership_allows(me, id) ? id : NULL;
}

static void get_user(struct http_exchange *ex, void *data) {
  (void)data;
  const char *me;
  if (ownership_confine(ex, &me) != 0)
    return;
  const char *id = path_id(ex, me), *json = NULL;
  size_t len = 0;
  enum cache_result how = CACHE_MISS;
  int rc = id ? users_service_get(http_worker_data(ex), http_arena(ex), id, &json, &len, &how) : 0;
  if (rc < 0) {
    http_respond_error(ex, rc, NULL, NULL);
  } else if (rc == 0) {
    /* a malformed or hidden id never reached the cache; and a confined
     * caller's 404 never tells how the cache fared (as for orders) */
    if (id && !me)
      http_add_header(ex, "X-Cache", how == CACHE_MISS ? "MISS" : "HIT");
    http_respond_error(ex, STRATA_ENOT_FOUND, "No user with this id.", NULL);
  } else {
    respond_user(ex, 200, json, len, how == CACHE_MISS ? "MISS" : "HIT");
  }
}

static void on_changed(int rc, const char *json, size_t len, void *arg) {
  struct http_exchange *ex = arg;
  if (rc == STRATA_ECONFLICT)
    http_respond_error(ex, rc, "A user with this email already exists.", "email");
  else if (rc == STRATA_ENOT_FOUND)
    http_respond_error(ex, rc, "No user with this id.", NULL);
  else if (rc < 0)
    http_respond_error(ex, rc, NULL, NULL);
  else if (json)
    respond_user(ex, 200, json, len, NULL);
  else
    http_respond(ex, 204, NULL, NULL, 0);
}

static void patch_user(struct http_exchange *ex, void *data) {
  (void)data;
  const char *me;
  if (ownership_confine(ex, &me) != 0)
    return;
  const char *id = path_id(ex, me);
  if (!id) {
    http_respond_error(ex, STRATA_ENOT_FOUND, "No user with this id.", NULL);
    return;
  }
  json_t *body = http_json_body(ex);
  if (!body)
    return;
  const char *name = NULL, *email = NULL;
  if (read_fields(ex, body, 0, &name, &email) == 0) {
    if (!name && !email) {
      http_respond_error(ex, STRATA_EVALIDATION, "Give at least one of name, email.", NULL);
    } else {
      struct arena *a = http_arena(ex);
      name = name ? arena_strndup(a, name, strlen(name)) : NULL;
      email = email ? arena_strndup(a, email, strlen(email)) : NULL;
      int rc = users_service_update(http_worker_data(ex), a, id, name, email, on_changed, ex);
      if (rc < 0)
        http_respond_error(ex, rc, NULL, NULL);
    }
  }
  json_decref(body);
}

static void delete_user(struct http_exchange *ex, void *data) {
  (void)data;
  const char *me;
  if (ownership_confine(ex, &me) != 0)
    return;
  const char *id = path_id(ex, me);
  if (!id) {
    http_respond_error(ex, STRATA_ENOT_FOUND, "No user with this id.", NULL);
    return;
  }
  int rc = users_service_delete(http_worker_data(ex), http_arena(ex), id, on_changed, ex);
  if (rc < 0)
    http_respond_error(ex, rc, NULL, NULL);
}

static void list_users(struct http_exchange *ex, void *data) {
  (void)data;
  const char *me;
  struct page page;
  if (ownership_confine(ex, &me) != 0 || paging_read(ex, "usr", &page) != 0)
    return;
  json_t *items;
  int rc = users_service_list(http_worker_data(ex), me, page.after, page.limit + 1, &items);
  if (rc < 0) {
    http_respond_error(ex, rc, NULL, NULL);
    return;
  }
  paging_respond(ex, &page, items);
}

/* ---- composition: the user and their orders ---------------------------- */

struct composed {
  struct http_exchange *ex;
  const char *user_json;
  size_t user_len;
};

static void on_orders(int rc, const char *orders_json, size_t len, void *arg) {
  struct composed *c = arg;
  json_t *out = json_object();
  json_object_set_new(out, "user", json_loadb(c->user_json, c->user_len, 0, NULL));
  if (rc < 0) {
    /* orders unavailable (in another process: down, its breaker open, out
     * of time): still answer with the user, marked partial */
    json_object_set_new(out, "orders", json_null());
    json_object_set_new(out, "partial", json_true());
  } else {
    json_object_set_new(out, "orders", json_loadb(orders_json, len, 0, NULL));
  }
  http_respond_json_value(c->ex, 200, out);
  json_decref(out);
}

static void get_user_orders(struct http_exchange *ex, void *data) {
  (void)data;
  const char *me;
  if (ownership_confine(ex, &me) != 0)
    return;
  const char *id = path_id(ex, me);
  struct arena *a = http_arena(ex);
  struct composed *c = arena_alloc(a, sizeof *c);
  int rc = id && c ? users_service_get(http_worker_data(ex), a, id, &c->user_json, &c->user_len,
                                        NULL)
                   : 0;
  if (rc < 0) {
    http_respond_error(ex, rc, NULL, NULL);
    return;
  }
  if (rc == 0) {
    http_respond_error(ex, STRATA_ENOT_FOUND, "No user with this id.", NULL);
    return;
  }
  c->ex = ex;
  orders_client_list_for_user(http_worker_data(ex), ex, id, a, on_orders, c);
}

int users_routes_register(struct app *app, struct router *r) {
  (void)app;
  if (router_add(r, "POST", "/api/users", create_user, NULL) ||
      router_add(r, "GET", "/api/users", list_users, NULL) ||
      router_add(r, "GET", "/api/users/:id", get_user, NULL) ||
      router_add(r, "PATCH", "/api/users/:id", patch_user, NULL) ||
      router_add(r, "DELETE", "/api/users/:id", delete_user, NULL) ||
      router_add(r, "GET", "/api/users/:id/orders", get_user_orders, NULL))
    return -1;
  return 0;
}
