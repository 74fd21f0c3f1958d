/* The orders domain: what users buy, and where each order stands
 * (pending -> paid | cancelled).
 *
 * Other domains reach orders through this client or its events
 * (order.created, order.cancelled, order.paid). Orders itself reacts to
 * payment.succeeded (durable subscription "orders-payments"). */
#ifndef STRATA_ORDERS_ORDERS_H
#define STRATA_ORDERS_ORDERS_H

#include "app/app.h"
#include "core/arena.h"

struct order_view {
  const char *id;
  const char *user_id;
  const char *user_email;
  const char *status; /* "pending", "paid", "cancelled" */
  long long total_cents;
};

/* rc 1 found / 0 absent / < 0 STRATA_E*; views live in the caller's arena. */
typedef void (*orders_get_cb)(int rc, const struct order_view *o, void *arg);
/* rc 0 with a JSON array of the user's orders (oldest first), or < 0. */
typedef void (*orders_list_cb)(int rc, const char *json, size_t len, void *arg);

/* In process when orders runs here; otherwise over HTTP to the orders
 * service (app_remote_get): GET /internal/orders/:id (the view, with the
 * buyer's address the public answer leaves out) and GET
 * /api/orders?userId=&limit=100. Remotely, rc is STRATA_EUNAVAILABLE when
 * orders cannot be reached (down, every breaker open, timed out).
 * origin is the request the call is made for (its id, trace, deadline and
 * identity go along; NULL: none) and must outlive cb. Both fire once,
 * later, on ctx's loop. */
void orders_client_get(struct app_ctx *ctx, struct http_exchange *origin, const char *id,
                       struct arena *a, orders_get_cb cb, void *arg);
void orders_client_list_for_user(struct app_ctx *ctx, struct http_exchange *origin,
                                 const char *user_id, struct arena *a, orders_list_cb cb,
                                 void *arg);

/* Wiring (app.c). */
size_t orders_schema(const struct db_migration **out);
int orders_routes_register(struct app *app, struct router *r);
int orders_events_register(struct app *app);

#endif
