/* SQLite connection helper; see db.h. */
#include "store/db.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "core/error.h"

struct cached_stmt {
  const char *sql;
  sqlite3_stmt *st;
};

struct db {
  sqlite3 *conn;
  char path[1024];
  struct cached_stmt *stmts;
  int n_stmts, cap_stmts;
};

int db_open(const char *path, const struct db_migration *migrations, size_t n_migrations,
            enum db_sync sync, struct db **out, char *why, size_t why_len) {
  *out = NULL;
  struct db *db = calloc(1, sizeof *db);
  if (!db) {
    snprintf(why, why_len, "out of memory");
    return -1;
  }
  snprintf(db->path, sizeof db->path, "%s", path);
  int rc = sqlite3_open_v2(path, &db->conn,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    snprintf(why, why_len, "%s: %s", path, db->conn ? sqlite3_errmsg(db->conn) : sqlite3_errstr(rc));
    goto fail;
  }
  sqlite3_busy_timeout(db->conn, 10000);
  char pragmas[256];
  snprintf(pragmas, sizeof pragmas,
           "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;",
           sync == DB_SYNC_NORMAL ? "NORMAL" : "FULL");
  char *err = NULL;
  /* Turning a new database to WAL needs an exclusive lock, and SQLite
   * answers SQLITE_BUSY at once, without the busy handler, when another
   * process is doing the same (waiting could deadlock). Instances that
   * start together on a fresh data directory (strata up) retry here. */
  for (int tries = 0;
       (rc = sqlite3_exec(db->conn, pragmas, NULL, NULL, &err)) == SQLITE_BUSY && tries < 1000;
       tries++) {
    sqlite3_free(err);
    err = NULL;
    sqlite3_sleep(10);
  }
  if (rc != SQLITE_OK) {
    snprintf(why, why_len, "%s: %s", path, err ? err : "pragma failed");
    sqlite3_free(err);
    goto fail;
  }
  /* Migrations under the write lock: several processes may start at once. */
  if (db_begin(db) != SQLITE_OK) {
    snprintf(why, why_len, "%s: %s", path, sqlite3_errmsg(db->conn));
    goto fail;
  }
  sqlite3_stmt *st = NULL;
  int version = 0;
  if (sqlite3_prepare_v2(db->conn, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  for (size_t i = 0; i < n_migrations; i++) {
    if (migrations[i].version <= version)
      continue;
    if (sqlite3_exec(db->conn, migrations[i].sql, NULL, NULL, &err) != SQLITE_OK) {
      snprintf(why, why_len, "%s: migration %d: %s", path, migrations[i].version,
               err ? err : "failed");
      sqlite3_free(err);
      db_rollback(db);
      goto fail;
    }
    char set[64];
    snprintf(set, sizeof set, "PRAGMA user_version=%d", migrations[i].version);
    sqlite3_exec(db->conn, set, NULL, NULL, NULL);
    version = migrations[i].version;
  }
  if (db_commit(db) != SQLITE_OK) {
    snprintf(why, why_len, "%s: %s", path, sqlite3_errmsg(db->conn));
    goto fail;
  }
  *out = db;
  return 0;
fail:
  db_close(db);
  return -1;
}

void db_close(struct db *db) {
  if (!db)
    return;
  for (int i = 0; i < db->n_stmts; i++)
    sqlite3_finalize(db->stmts[i].st);
  free(db->stmts);
  sqlite3_close(db->conn);
  free(db);
}

sqlite3 *db_handle(struct db *db) { return db->conn; }
const char *db_path(const struct db *db) { return db->path; }
const char *db_errmsg(struct db *db) { return sqlite3_errmsg(db->conn); }

sqlite3_stmt *db_stmt(struct db *db, const char *sql) {
  for (int i = 0; i < db->n_stmts; i++)
    if (db->stmts[i].sql == sql) {
      sqlite3_stmt *st = db->stmts[i].st;
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
      return st;
    }
  if (db->n_stmts == db->cap_stmts) {
    int cap = db->cap_stmts ? db->cap_stmts * 2 : 16;
    struct cached_stmt *n = realloc(db->stmts, (size_t)cap * sizeof *n);
    if (!n)
      return NULL;
    db->stmts = n;
    db->cap_stmts = cap;
  }
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v3(db->conn, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
    return NULL;
  db->stmts[db->n_stmts].sql = sql;
  db->stmts[db->n_stmts].st = st;
  db->n_stmts++;
  return st;
}

int db_exec(struct db *db, const char *sql) { return sqlite3_exec(db->conn, sql, NULL, NULL, NULL); }
int db_begin(struct db *db) { return db_exec(db, "BEGIN IMMEDIATE"); }
int db_commit(struct db *db) { return db_exec(db, "COMMIT"); }
void db_rollback(struct db *db) {
  if (!sqlite3_get_autocommit(db->conn))
    db_exec(db, "ROLLBACK");
}

int db_bind_text(sqlite3_stmt *st, int i, const char *s) {
  return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}
int db_bind_int(sqlite3_stmt *st, int i, long long v) { return sqlite3_bind_int64(st, i, v); }
const char *db_col_text(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? (const char *)t : "";
}

long long db_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void db_format_time(long long ms, char out[32]) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

int db_get_text(struct db *db, const char *sql, const char *key, struct arena *a,
                const char **out, size_t *len) {
  sqlite3_stmt *st = db_stmt(db, sql);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, key);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE)
    return 0;
  if (rc != SQLITE_ROW)
    return STRATA_EINTERNAL;
  const char *t = db_col_text(st, 0);
  *len = strlen(t);
  *out = arena_strndup(a, t, *len);
  sqlite3_reset(st);
  return *out ? 1 : STRATA_EINTERNAL;
}

int db_collect_json(sqlite3_stmt *st, struct json_t *items) {
  int n = 0, rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    json_t *v = json_loads(db_col_text(st, 0), 0, NULL);
    if (!v || json_array_append_new(items, v) != 0) {
      sqlite3_reset(st);
      return STRATA_EINTERNAL;
    }
    n++;
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? n : STRATA_EINTERNAL;
}
