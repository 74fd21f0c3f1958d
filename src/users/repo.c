/* Users repository; see repo.h. */
#include "users/repo.h"

#include <string.h>

#include "bus/bus.h"
#include "core/error.h"
#include "users/users.h"

static const char schema_v1[] =
    "CREATE TABLE users ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  email TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX users_email ON users(email COLLATE NOCASE);";

size_t users_schema(const struct db_migration **out) {
  /* The outbox's DDL belongs to the bus; it is a variable, so the table of
   * steps is filled when first asked for (once, from app_new, before any
   * thread starts). */
  static struct db_migration steps[2];
  steps[0] = (struct db_migration){1, schema_v1};
  steps[1] = (struct db_migration){2, BUS_OUTBOX_SQL};
  *out = steps;
  return 2;
}

static const char sql_insert[] =
    "INSERT INTO users (id, name, email, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)";
static const char sql_get[] =
    "SELECT json_object('id', id, 'name', name, 'email', email,"
    " 'createdAt', strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch'),"
    " 'updatedAt', strftime('%Y-%m-%dT%H:%M:%fZ', updated_at / 1000.0, 'unixepoch'))"
    " FROM users WHERE id = ?1";
static const char sql_update[] =
    "UPDATE users SET name = coalesce(?2, name), email = coalesce(?3, email), updated_at = ?4"
    " WHERE id = ?1";
static const char sql_delete[] = "DELETE FROM users WHERE id = ?1";
static const char sql_list[] =
    "SELECT json_object('id', id, 'name', name, 'email', email,"
    " 'createdAt', strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch'),"
    " 'updatedAt', strftime('%Y-%m-%dT%H:%M:%fZ', updated_at / 1000.0, 'unixepoch'))"
    " FROM users WHERE (?3 IS NULL OR id = ?3) AND id > ?1 ORDER BY id LIMIT ?2";

static int step_write(struct db *db, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE)
    return sqlite3_changes(db_handle(db));
  if (rc == SQLITE_CONSTRAINT)
    return STRATA_ECONFLICT;
  return STRATA_EINTERNAL;
}

int users_repo_insert(struct db *db, const char *id, const char *name, const char *email,
                      long long now_ms) {
  sqlite3_stmt *st = db_stmt(db, sql_insert);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, id);
  db_bind_text(st, 2, name);
  db_bind_text(st, 3, email);
  db_bind_int(st, 4, now_ms);
  int rc = step_write(db, st);
  return rc < 0 ? rc : 0;
}

int users_repo_get_json(struct db *db, const char *id, struct arena *a, const char **json,
                        size_t *len) {
  return db_get_text(db, sql_get, id, a, json, len);
}

int users_repo_update(struct db *db, const char *id, const char *name, const char *email,
                      long long now_ms) {
  sqlite3_stmt *st = db_stmt(db, sql_update);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, id);
  db_bind_text(st, 2, name);
  db_bind_text(st, 3, email);
  db_bind_int(st, 4, now_ms);
  return step_write(db, st);
}

int users_repo_delete(struct db *db, const char *id) {
  sqlite3_stmt *st = db_stmt(db, sql_delete);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, id);
  return step_write(db, st);
}

int users_repo_list(struct db *db, const char *only, const char *after, int limit, json_t *items) {
  sqlite3_stmt *st = db_stmt(db, sql_list);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, after ? after : "");
  db_bind_int(st, 2, limit);
  db_bind_text(st, 3, only);
  return db_collect_json(st, items);
}
