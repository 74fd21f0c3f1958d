/* Orders service: the order rules (totals computed here, status moves only
 * pending -> paid | cancelled), through the cache for reads and the
 * group-commit batch + outbox for writes. */
#ifndef STRATA_ORDERS_SERVICE_H
#define STRATA_ORDERS_SERVICE_H

#include <jansson.h>

#include "app/app.h"
#include "cache/cache.h"
#include "orders/orders.h"
#include "orders/repo.h"

/* rc 0 with the order's JSON (in the arena), or a STRATA_E*. */
typedef void (*orders_done_cb)(int rc, const char *json, size_t len, void *arg);

/* items and strings must live in a until cb has run. */
int orders_service_create(struct app_ctx *ctx, struct arena *a, const char *user_id,
                          const char *email, const struct order_item *items, size_t n_items,
                          orders_done_cb cb, void *arg);
/* For a caller confined to the user me (NULL = any order; app/ownership.h).
 * STRATA_ENOT_FOUND (also for an order of another user), or
 * STRATA_ECONFLICT when the order is not pending. */
int orders_service_cancel(struct app_ctx *ctx, struct arena *a, const char *id, const char *me,
                          orders_done_cb cb, void *arg);
/* Synchronous read through the cache for a caller confined to me (NULL =
 * any order): 1 found (json in a), 0 absent or an order of another user,
 * < 0 error; *how says whether the cache answered. */
int orders_service_get(struct app_ctx *ctx, struct arena *a, const char *id, const char *me,
                       const char **json, size_t *len, enum cache_result *how);
/* What other domains see of an order (orders_client_get): 1 found (*v in
 * a), 0 absent or a malformed id, < 0 STRATA_E*. */
int orders_service_get_view(struct app_ctx *ctx, struct arena *a, const char *id,
                            struct order_view *v);
int orders_service_list(struct app_ctx *ctx, const char *user_id, const char *status,
                        const char *after, int limit, json_t **items);

#endif
