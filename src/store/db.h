/* One SQLite database connection, used by one thread.
 *
 * Each domain keeps its own database file in the data directory (the seed's
 * "each service its own database"); every thread that touches it (each HTTP
 * worker, the bus thread) opens its own connection. db_open() sets the
 * durability and concurrency pragmas and applies the domain's versioned
 * migrations, so every process sharing the data directory agrees on the
 * schema. Statements are prepared once per connection and cached by their
 * SQL text's address: SQL is always a string literal of the repository,
 * never built from request data.
 *
 * Durability: WAL with synchronous=FULL by default — a transaction is on
 * disk (WAL fsynced) before its COMMIT returns, so an acknowledged write
 * survives kill -9 and power loss. Group commit (store/batch.h) pays that
 * fsync once per batch instead of once per write. */
#ifndef STRATA_STORE_DB_H
#define STRATA_STORE_DB_H

#include <sqlite3.h>
#include <stddef.h>

enum db_sync {
  DB_SYNC_FULL = 0, /* fsync the WAL at every commit (default) */
  DB_SYNC_NORMAL    /* fsync at checkpoints only: survives kill -9, not power loss */
};

/* A schema step: applied once, in order, when PRAGMA user_version < version. */
struct db_migration {
  int version;
  const char *sql; /* one or more statements */
};

struct db;

/* Opens (creating if needed) the database at path and migrates it. Returns 0
 * and *out, or -1 with a reason in why. */
int db_open(const char *path, const struct db_migration *migrations, size_t n_migrations,
            enum db_sync sync, struct db **out, char *why, size_t why_len);
void db_close(struct db *db); /* NULL ok */

sqlite3 *db_handle(struct db *db);
const char *db_path(const struct db *db);

/* The prepared statement for sql (a string literal: cached by address),
 * reset and with its bindings cleared. NULL on error (see db_errmsg). */
sqlite3_stmt *db_stmt(struct db *db, const char *sql);

/* Runs sql without results (BEGIN, COMMIT, ...). Returns the SQLite code. */
int db_exec(struct db *db, const char *sql);

/* Transactions. BEGIN IMMEDIATE takes the write lock up front (waiting up to
 * the busy timeout), so a transaction never fails half-way on a lock. */
int db_begin(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);
const char *db_errmsg(struct db *db);

/* Bind helpers: text (NULL binds NULL), 64-bit integers. Return SQLite codes. */
int db_bind_text(sqlite3_stmt *st, int i, const char *s);
int db_bind_int(sqlite3_stmt *st, int i, long long v);
/* Column text as a C string ("" for NULL). Valid until the next step/reset. */
const char *db_col_text(sqlite3_stmt *st, int i);

/* Runs sql (a literal with one text parameter ?1 = key) and copies the
 * first column of the first row into a. Returns 1 (found), 0 (no row) or
 * STRATA_EINTERNAL. The repositories' "get one as JSON". */
struct arena;
int db_get_text(struct db *db, const char *sql, const char *key, struct arena *a,
                const char **out, size_t *len);

/* Steps st (bound by the caller) to the end, parsing the first column of
 * each row as JSON and appending it to the jansson array items. Returns the
 * number of rows or STRATA_EINTERNAL. */
struct json_t;
int db_collect_json(sqlite3_stmt *st, struct json_t *items);

/* Milliseconds since the epoch, and the same time as RFC 3339 UTC with
 * milliseconds into out (at least 25 bytes). */
long long db_now_ms(void);
void db_format_time(long long ms, char out[32]);

#endif
