/* Orders repository; see repo.h. */
#include "orders/repo.h"

#include <string.h>

#include "bus/bus.h"
#include "core/error.h"
#include "orders/orders.h"

static const char schema_v1[] =
    "CREATE TABLE orders ("
    "  id TEXT PRIMARY KEY,"
    "  user_id TEXT NOT NULL,"
    "  user_email TEXT NOT NULL,"
    "  status TEXT NOT NULL CHECK (status IN ('pending','paid','cancelled')),"
    "  total_cents INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX orders_by_user ON orders(user_id, id);"
    "CREATE INDEX orders_by_status ON orders(status, id);"
    "CREATE TABLE order_items ("
    "  order_id TEXT NOT NULL REFERENCES orders(id),"
    "  line INTEGER NOT NULL,"
    "  sku TEXT NOT NULL,"
    "  quantity INTEGER NOT NULL,"
    "  unit_price_cents INTEGER NOT NULL,"
    "  PRIMARY KEY (order_id, line));";

size_t orders_schema(const struct db_migration **out) {
  static struct db_migration steps[3];
  steps[0] = (struct db_migration){1, schema_v1};
  steps[1] = (struct db_migration){2, BUS_OUTBOX_SQL};
  steps[2] = (struct db_migration){3, BUS_INBOX_SQL};
  *out = steps;
  return 3;
}

#define ORDER_JSON                                                                            \
  "json_object('id', o.id, 'userId', o.user_id, 'status', o.status,"                          \
  " 'items', json((SELECT json_group_array(json_object('sku', i.sku, 'quantity', i.quantity," \
  " 'unitPriceCents', i.unit_price_cents)) FROM (SELECT * FROM order_items"                   \
  " WHERE order_id = o.id ORDER BY line) AS i)),"                                             \
  " 'totalCents', o.total_cents,"                                                             \
  " 'createdAt', strftime('%Y-%m-%dT%H:%M:%fZ', o.created_at / 1000.0, 'unixepoch'),"         \
  " 'updatedAt', strftime('%Y-%m-%dT%H:%M:%fZ', o.updated_at / 1000.0, 'unixepoch'))"

static const char sql_insert[] =
    "INSERT INTO orders (id, user_id, user_email, status, total_cents, created_at, updated_at)"
    " VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?5)";
static const char sql_insert_item[] =
    "INSERT INTO order_items (order_id, line, sku, quantity, unit_price_cents)"
    " VALUES (?1, ?2, ?3, ?4, ?5)";
static const char sql_get[] = "SELECT " ORDER_JSON " FROM orders o WHERE o.id = ?1";
static const char sql_fields[] =
    "SELECT user_id, user_email, status, total_cents FROM orders WHERE id = ?1";
static const char sql_transition[] =
    "UPDATE orders SET status = ?3, updated_at = ?4 WHERE id = ?1 AND status = ?2";
static const char sql_list[] =
    "SELECT " ORDER_JSON " FROM orders o WHERE (?1 IS NULL OR o.user_id = ?1)"
    " AND (?2 IS NULL OR o.status = ?2) AND o.id > ?3 ORDER BY o.id LIMIT ?4";

int orders_repo_insert(struct db *db, const char *id, const char *user_id, const char *email,
                       const struct order_item *items, size_t n_items, long long total_cents,
                       long long now_ms) {
  sqlite3_stmt *st = db_stmt(db, sql_insert);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, id);
  db_bind_text(st, 2, user_id);
  db_bind_text(st, 3, email);
  db_bind_int(st, 4, total_cents);
  db_bind_int(st, 5, now_ms);
  if (sqlite3_step(st) != SQLITE_DONE)
    return STRATA_EINTERNAL;
  for (size_t i = 0; i < n_items; i++) {
    st = db_stmt(db, sql_insert_item);
    if (!st)
      return STRATA_EINTERNAL;
    db_bind_text(st, 1, id);
    db_bind_int(st, 2, (long long)i);
    db_bind_text(st, 3, items[i].sku);
    db_bind_int(st, 4, items[i].quantity);
    db_bind_int(st, 5, items[i].unit_price_cents);
    if (sqlite3_step(st) != SQLITE_DONE)
      return STRATA_EINTERNAL;
  }
  return 0;
}

int orders_repo_get_json(struct db *db, const char *id, struct arena *a, const char **json,
                         size_t *len) {
  return db_get_text(db, sql_get, id, a, json, len);
}

int orders_repo_get_fields(struct db *db, const char *id, struct arena *a, const char **user_id,
                           const char **email, const char **status, long long *total_cents) {
  sqlite3_stmt *st = db_stmt(db, sql_fields);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, id);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE)
    return 0;
  if (rc != SQLITE_ROW)
    return STRATA_EINTERNAL;
  const char *u = db_col_text(st, 0), *e = db_col_text(st, 1), *s = db_col_text(st, 2);
  *user_id = arena_strndup(a, u, strlen(u));
  *email = arena_strndup(a, e, strlen(e));
  *status = arena_strndup(a, s, strlen(s));
  *total_cents = sqlite3_column_int64(st, 3);
  sqlite3_reset(st);
  return *user_id && *email && *status ? 1 : STRATA_EINTERNAL;
}

int orders_repo_transition(struct db *db, const char *id, const char *from, const char *to,
                           long long now_ms) {
  sqlite3_stmt *st = db_stmt(db, sql_transition);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, id);
  db_bind_text(st, 2, from);
  db_bind_text(st, 3, to);
  db_bind_int(st, 4, now_ms);
  if (sqlite3_step(st) != SQLITE_DONE)
    return STRATA_EINTERNAL;
  return sqlite3_changes(db_handle(db));
}

int orders_repo_list(struct db *db, const char *user_id, const char *status, const char *after,
                     int limit, json_t *items) {
  sqlite3_stmt *st = db_stmt(db, sql_list);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, user_id);
  db_bind_text(st, 2, status);
  db_bind_text(st, 3, after ? after : "");
  db_bind_int(st, 4, limit);
  return db_collect_json(st, items);
}
