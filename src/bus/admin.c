/* Operator commands on events.db (`strata events dead|replay|stats`).
 *
 * They run in their own process, with their own connection, next to live
 * buses: reads see a consistent WAL snapshot, and replay is one short write
 * transaction, so nothing here needs the bus to be stopped. A replayed dead
 * letter goes to the redeliver table, which the subscription's lease holder
 * serves before new log entries (deliver.c). */
#include "bus/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

static const char sql_dead_list[] =
    "SELECT id, subscription, seq, event_id, type, key, payload, created_at, attempts, error,"
    " failed_at FROM dead_letters WHERE (?1 IS NULL OR subscription = ?1) ORDER BY id";
static const char sql_replay_copy[] =
    "INSERT INTO redeliver (subscription, seq, event_id, type, key, payload, created_at,"
    " replayed_at) SELECT subscription, seq, event_id, type, key, payload, created_at, ?3"
    " FROM dead_letters WHERE (?1 IS NULL OR subscription = ?1) AND (?2 = 0 OR id = ?2)"
    " ORDER BY id";
static const char sql_replay_remove[] =
    "DELETE FROM dead_letters WHERE (?1 IS NULL OR subscription = ?1) AND (?2 = 0 OR id = ?2)";
static const char sql_stats[] =
    "SELECT s.name, s.\"offset\", s.delivered, s.redelivered, s.lease_owner, s.lease_until,"
    " (SELECT count(*) FROM dead_letters d WHERE d.subscription = s.name),"
    " (SELECT count(*) FROM retries r WHERE r.subscription = s.name),"
    " (SELECT count(*) FROM redeliver x WHERE x.subscription = s.name)"
    " FROM subscriptions s ORDER BY s.name";
static const char sql_last_seq[] = "SELECT coalesce(max(seq), 0) FROM log";

int bus_admin_open(const char *data_dir, struct db **out, char *why, size_t why_len) {
  char path[1100];

  *out = NULL;
  snprintf(path, sizeof path, "%s/events.db", data_dir);
  if (access(path, F_OK) != 0) {
    snprintf(why, why_len, "%s does not exist (is --data the directory strata serve uses?)",
             path);
    return -1;
  }
  /* No migrations: an events.db written by a newer strata stays untouched;
   * one without our tables fails on the first query with SQLite's reason. */
  return db_open(path, NULL, 0, DB_SYNC_FULL, out, why, why_len);
}

int bus_dead_letters_list(struct db *db, const char *subscription,
                          int (*cb)(const struct bus_dead_letter *dl, void *ctx), void *ctx) {
  sqlite3_stmt *st = db_stmt(db, sql_dead_list);
  int n = 0, rc;

  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, subscription);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    struct bus_dead_letter dl = {
        .id = sqlite3_column_int64(st, 0),
        .subscription = db_col_text(st, 1),
        .seq = sqlite3_column_int64(st, 2),
        .event_id = db_col_text(st, 3),
        .type = db_col_text(st, 4),
        .key = db_col_text(st, 5),
        .payload = db_col_text(st, 6),
        .created_at = sqlite3_column_int64(st, 7),
        .attempts = sqlite3_column_int(st, 8),
        .error = db_col_text(st, 9),
        .failed_at = sqlite3_column_int64(st, 10),
    };
    n++;
    if (cb(&dl, ctx) != 0) {
      rc = SQLITE_DONE;
      break;
    }
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? n : STRATA_EINTERNAL;
}

long long bus_dead_letters_replay(struct db *db, const char *subscription, long long id) {
  sqlite3_stmt *st;
  long long moved = 0;
  int rc;

  if (id < 0)
    return STRATA_EINTERNAL;
  if (db_begin(db) != SQLITE_OK)
    return STRATA_EINTERNAL;
  if (!(st = db_stmt(db, sql_replay_copy)))
    goto fail;
  db_bind_text(st, 1, subscription);
  db_bind_int(st, 2, id);
  db_bind_int(st, 3, db_now_ms());
  rc = sqlite3_step(st);
  moved = sqlite3_changes(db_handle(db));
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    goto fail;
  if (!(st = db_stmt(db, sql_replay_remove)))
    goto fail;
  db_bind_text(st, 1, subscription);
  db_bind_int(st, 2, id);
  rc = sqlite3_step(st);
  long long removed = sqlite3_changes(db_handle(db));
  sqlite3_reset(st);
  if (rc != SQLITE_DONE || removed != moved)
    goto fail;
  if (db_commit(db) != SQLITE_OK)
    goto fail;
  return moved;
fail:
  db_rollback(db);
  return STRATA_EINTERNAL;
}

int bus_stats_read(struct db *db, long long *log_last_seq, struct bus_subscription_stats **out) {
  struct bus_subscription_stats *v = NULL;
  size_t n = 0, cap = 0;
  sqlite3_stmt *st;
  int rc;

  *out = NULL;
  *log_last_seq = 0;
  /* One read transaction, so the last seq and the offsets agree. */
  if (db_exec(db, "BEGIN") != SQLITE_OK)
    return STRATA_EINTERNAL;
  if (!(st = db_stmt(db, sql_last_seq)))
    goto fail;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    *log_last_seq = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  if (rc != SQLITE_ROW)
    goto fail;
  if (!(st = db_stmt(db, sql_stats)))
    goto fail;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      size_t c = cap ? cap * 2 : 8;
      struct bus_subscription_stats *g = realloc(v, c * sizeof *g);
      if (!g) {
        rc = SQLITE_NOMEM;
        break;
      }
      v = g;
      cap = c;
    }
    struct bus_subscription_stats *s = &v[n++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", db_col_text(st, 0));
    s->offset = sqlite3_column_int64(st, 1);
    s->lag = *log_last_seq > s->offset ? *log_last_seq - s->offset : 0;
    s->delivered = sqlite3_column_int64(st, 2);
    s->redelivered = sqlite3_column_int64(st, 3);
    snprintf(s->lease_owner, sizeof s->lease_owner, "%s", db_col_text(st, 4));
    s->lease_until = sqlite3_column_int64(st, 5);
    s->dead_letters = sqlite3_column_int64(st, 6);
    s->retrying = sqlite3_column_int64(st, 7);
    s->replays_pending = sqlite3_column_int64(st, 8);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    goto fail;
  db_exec(db, "COMMIT");
  *out = v;
  return (int)n;
fail:
  db_rollback(db);
  free(v);
  return STRATA_EINTERNAL;
}
