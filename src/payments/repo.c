/* Payments repository; see repo.h. */
#include "payments/repo.h"

#include <string.h>

#include "bus/bus.h"
#include "core/error.h"
#include "core/process.h"
#include "payments/payments.h"

static const char schema_v1[] =
    "CREATE TABLE payments ("
    "  id TEXT PRIMARY KEY,"
    "  order_id TEXT NOT NULL,"
    "  amount_cents INTEGER NOT NULL,"
    "  status TEXT NOT NULL,"
    "  client_id TEXT NOT NULL,"
    "  idempotency_key TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    /* the last line of defence against a double charge */
    "CREATE UNIQUE INDEX payments_one_success ON payments(order_id) WHERE status = 'succeeded';"
    "CREATE TABLE idempotency_keys ("
    "  client_id TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  request TEXT NOT NULL,"
    "  status INTEGER NOT NULL," /* 0 while in flight */
    "  response TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (client_id, key));";

/* v3: who holds an in-flight key (core/process.h), so a crash's
 * reservation is taken over as soon as its process is gone. */
static const char schema_v3[] = "ALTER TABLE idempotency_keys ADD COLUMN owner TEXT;";

size_t payments_schema(const struct db_migration **out) {
  static struct db_migration steps[3];
  steps[0] = (struct db_migration){1, schema_v1};
  steps[1] = (struct db_migration){2, BUS_OUTBOX_SQL};
  steps[2] = (struct db_migration){3, schema_v3};
  *out = steps;
  return sizeof steps / sizeof steps[0];
}

static const char sql_key_get[] =
    "SELECT request, status, response, created_at, owner FROM idempotency_keys"
    " WHERE client_id = ?1 AND key = ?2";
static const char sql_key_insert[] =
    "INSERT INTO idempotency_keys (client_id, key, request, status, created_at, owner)"
    " VALUES (?1, ?2, ?3, 0, ?4, ?5)";
static const char sql_key_retake[] =
    "UPDATE idempotency_keys SET created_at = ?3, owner = ?4"
    " WHERE client_id = ?1 AND key = ?2 AND status = 0";
static const char sql_key_finish[] =
    "UPDATE idempotency_keys SET status = ?3, response = ?4 WHERE client_id = ?1 AND key = ?2";
static const char sql_key_release[] =
    "DELETE FROM idempotency_keys WHERE client_id = ?1 AND key = ?2 AND status = 0";
static const char sql_insert[] =
    "INSERT INTO payments (id, order_id, amount_cents, status, client_id, idempotency_key,"
    " created_at) VALUES (?1, ?2, ?3, 'succeeded', ?4, ?5, ?6)";
static const char sql_get[] =
    "SELECT json_object('id', id, 'orderId', order_id, 'amountCents', amount_cents,"
    " 'status', status,"
    " 'createdAt', strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch'))"
    " FROM payments WHERE id = ?1";

int payments_repo_reserve(struct db *db, const char *client, const char *key, const char *request,
                          long long now_ms, long long stale_ms, struct arena *a,
                          enum idem_state *state, int *status, const char **response) {
  sqlite3_stmt *st = db_stmt(db, sql_key_get);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, client);
  db_bind_text(st, 2, key);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    int same = strcmp(db_col_text(st, 0), request) == 0;
    *status = sqlite3_column_int(st, 1);
    const char *resp = db_col_text(st, 2);
    long long created = sqlite3_column_int64(st, 3);
    /* the process that reserved it: when it is gone (a crash), its
     * reservation is taken over at once rather than after stale_ms */
    int owner_alive = process_id_alive(db_col_text(st, 4));
    *response = arena_strndup(a, resp, strlen(resp));
    sqlite3_reset(st);
    if (!same) {
      *state = IDEM_MISMATCH;
    } else if (*status > 0) {
      *state = IDEM_DONE;
    } else if (owner_alive != 0 && now_ms - created < stale_ms) {
      *state = IDEM_IN_FLIGHT;
    } else {
      st = db_stmt(db, sql_key_retake);
      db_bind_text(st, 1, client);
      db_bind_text(st, 2, key);
      db_bind_int(st, 3, now_ms);
      db_bind_text(st, 4, process_self_id());
      if (!st || sqlite3_step(st) != SQLITE_DONE)
        return STRATA_EINTERNAL;
      *state = IDEM_RESERVED;
    }
    return 0;
  }
  if (rc != SQLITE_DONE)
    return STRATA_EINTERNAL;
  st = db_stmt(db, sql_key_insert);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, client);
  db_bind_text(st, 2, key);
  db_bind_text(st, 3, request);
  db_bind_int(st, 4, now_ms);
  db_bind_text(st, 5, process_self_id());
  if (sqlite3_step(st) != SQLITE_DONE)
    return STRATA_EINTERNAL;
  *state = IDEM_RESERVED;
  return 0;
}

int payments_repo_finish(struct db *db, const char *client, const char *key, int status,
                         const char *response) {
  sqlite3_stmt *st = db_stmt(db, sql_key_finish);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, client);
  db_bind_text(st, 2, key);
  db_bind_int(st, 3, status);
  db_bind_text(st, 4, response);
  return sqlite3_step(st) == SQLITE_DONE ? 0 : STRATA_EINTERNAL;
}

int payments_repo_release(struct db *db, const char *client, const char *key) {
  sqlite3_stmt *st = db_stmt(db, sql_key_release);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, client);
  db_bind_text(st, 2, key);
  return sqlite3_step(st) == SQLITE_DONE ? 0 : STRATA_EINTERNAL;
}

int payments_repo_insert(struct db *db, const char *id, const char *order_id, long long amount,
                         const char *client, const char *key, long long now_ms) {
  sqlite3_stmt *st = db_stmt(db, sql_insert);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, id);
  db_bind_text(st, 2, order_id);
  db_bind_int(st, 3, amount);
  db_bind_text(st, 4, client);
  db_bind_text(st, 5, key);
  db_bind_int(st, 6, now_ms);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE)
    return 0;
  return rc == SQLITE_CONSTRAINT ? STRATA_ECONFLICT : STRATA_EINTERNAL;
}

int payments_repo_get_json(struct db *db, const char *id, struct arena *a, const char **json,
                           size_t *len) {
  return db_get_text(db, sql_get, id, a, json, len);
}
