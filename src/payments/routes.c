/* Payments routes.
 *
 *   POST /api/payments  Idempotency-Key: <1..255 visible ASCII>  {"orderId","amountCents"}
 *                       scope of keys: the X-Client-Id header (set by the gateway for an
 *                       authenticated client), else "anonymous"
 *   GET  /api/payments/:id
 *
 * Behind the gateway a user pays and sees only payments of their own orders
 * (app/ownership.h): another user's order is "no such order" (422), a
 * payment of one is "no such payment" (404). A payment belongs to whoever
 * owns its order, which the orders client tells. */
#include <stdlib.h>
#include <string.h>

#include "app/ownership.h"
#include "core/error.h"
#include "core/id.h"
#include "http/json_body.h"
#include "orders/orders.h"
#include "payments/payments.h"
#include "payments/service.h"

static const char *const writable[] = {"orderId", "amountCents", NULL};
static const char *const server_owned[] = {"id", "status", "createdAt", NULL};

static int key_ok(const char *k, size_t n) {
  if (n < 1 || n > 255)
    return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)k[i] < 0x21 || (unsigned char)k[i] > 0x7e)
      return 0;
  return 1;
}

static void on_answer(int status, const char *body, size_t len, int replayed, void *arg) {
  struct http_exchange *ex = arg;
  if (replayed)
    http_add_header(ex, "Idempotent-Replayed", "true");
  if (status == 201) {
    json_t *v = json_loadb(body, len, 0, NULL);
    const char *id = json_string_value(json_object_get(v, "id"));
    if (id) {
      char location[128];
      snprintf(location, sizeof location, "/api/payments/%s", id);
      http_add_header(ex, "Location", location);
    }
    json_decref(v);
  }
  http_respond_json(ex, status, body, len);
}

static void create_payment(struct http_exchange *ex, void *data) {
  (void)data;
  const char *me;
  if (ownership_confine(ex, &me) != 0)
    return;
  struct http_request *req = http_request_of(ex);
  struct arena *a = http_arena(ex);
  size_t klen = 0;
  const char *key = http_header_get(req, "idempotency-key", &klen);
  if (!key) {
    http_respond_error(ex, STRATA_EBAD_REQUEST, "The Idempotency-Key header is required.",
                       "Idempotency-Key");
    return;
  }
  if (!key_ok(key, klen)) {
    http_respond_error(ex, STRATA_EBAD_REQUEST,
                       "Idempotency-Key must be 1 to 255 visible ASCII characters.",
                       "Idempotency-Key");
    return;
  }
  json_t *body = http_json_body(ex);
  if (!body)
    return;
  const char *order_id = NULL;
  json_int_t amount = 0;
  if (json_fields_check(ex, body, writable, server_owned) == 0 &&
      json_field_string(ex, body, "orderId", 1, 1, 64, &order_id) == 0 &&
      json_field_int(ex, body, "amountCents", 1, 1, 100000000000000LL, &amount) == 0) {
    struct payment_request r = {0};
    r.me = me;
    size_t clen = 0;
    const char *client = http_header_get(req, "x-client-id", &clen);
    /* the gateway sets it to the verified identity (any subject a key id or
     * a JWT `sub` can be: visible ASCII) */
    r.client = client && key_ok(client, clen) ? arena_strndup(a, client, clen) : "anonymous";
    r.key = arena_strndup(a, key, klen);
    char *canonical = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    r.canonical = canonical ? arena_strndup(a, canonical, strlen(canonical)) : NULL;
    free(canonical);
    r.order_id = arena_strndup(a, order_id, strlen(order_id));
    r.amount_cents = amount;
    r.request_id = req->request_id;
    r.origin = ex;
    int rc = r.canonical ? payments_service_pay(http_worker_data(ex), a, &r, on_answer, ex)
                         : STRATA_EINTERNAL;
    if (rc < 0)
      http_respond_error(ex, rc, NULL, NULL);
  }
  json_decref(body);
}

/* A payment found for a confined caller, waiting for its order's owner. */
struct owned_read {
  struct http_exchange *ex;
  const char *me, *json;
  size_t len;
};

static void answer_read(struct http_exchange *ex, int rc, const char *json, size_t len) {
  if (rc < 0)
    http_respond_error(ex, rc, NULL, NULL);
  else if (rc == 0)
    http_respond_error(ex, STRATA_ENOT_FOUND, "No payment with this id.", NULL);
  else
    http_respond_json(ex, 200, json, len);
}

static void on_payment_order(int rc, const struct order_view *o, void *arg) {
  struct owned_read *r = arg;
  if (rc < 0)
    http_respond_error(r->ex, STRATA_EUNAVAILABLE, "The orders service could not be reached.",
                       NULL);
  else
    answer_read(r->ex, rc == 1 && ownership_allows(r->me, o->user_id), r->json, r->len);
}

static void get_payment(struct http_exchange *ex, void *data) {
  (void)data;
  const char *me;
  if (ownership_confine(ex, &me) != 0)
    return;
  struct arena *a = http_arena(ex);
  const char *id = http_param_get(ex, "id"), *json = NULL;
  size_t len = 0;
  int rc = id && id_valid("pay", id)
               ? payments_service_get(http_worker_data(ex), a, id, &json, &len)
               : 0;
  if (rc != 1 || !me) {
    answer_read(ex, rc, json, len);
    return;
  }
  struct owned_read *r = arena_alloc(a, sizeof *r);
  json_t *v = json_loadb(json, len, 0, NULL);
  const char *order_id = json_string_value(json_object_get(v, "orderId"));
  order_id = order_id ? arena_strndup(a, order_id, strlen(order_id)) : NULL;
  json_decref(v);
  if (!r || !order_id) {
    http_respond_error(ex, STRATA_EINTERNAL, NULL, NULL);
    return;
  }
  *r = (struct owned_read){ex, me, json, len};
  orders_client_get(http_worker_data(ex), ex, order_id, a, on_payment_order, r);
}

int payments_routes_register(struct app *app, struct router *r) {
  (void)app;
  if (router_add(r, "POST", "/api/payments", create_payment, NULL) ||
      router_add(r, "GET", "/api/payments/:id", get_payment, NULL))
    return -1;
  return 0;
}
