/* Orders repository: the SQL of orders.db. Writes run inside the caller's
 * transaction. */
#ifndef STRATA_ORDERS_REPO_H
#define STRATA_ORDERS_REPO_H

#include <jansson.h>

#include "core/arena.h"
#include "store/db.h"

struct order_item {
  const char *sku;
  long long quantity;
  long long unit_price_cents;
};

int orders_repo_insert(struct db *db, const char *id, const char *user_id, const char *email,
                       const struct order_item *items, size_t n_items, long long total_cents,
                       long long now_ms);
/* 1 + the order's public JSON in a, 0 absent, < 0 error. */
int orders_repo_get_json(struct db *db, const char *id, struct arena *a, const char **json,
                         size_t *len);
/* Fields the other domains need, in a. 1 / 0 / < 0. */
int orders_repo_get_fields(struct db *db, const char *id, struct arena *a, const char **user_id,
                           const char **email, const char **status, long long *total_cents);
/* Moves from one status to another: 1 moved, 0 not in status `from` (or
 * absent; see orders_repo_get_fields), < 0 error. */
int orders_repo_transition(struct db *db, const char *id, const char *from, const char *to,
                           long long now_ms);
/* Filters may be NULL. Appends up to limit orders with id > after. */
int orders_repo_list(struct db *db, const char *user_id, const char *status, const char *after,
                     int limit, json_t *items);

#endif
