/* The bus runtime: events.db, the bus thread and its loop, the relay.
 *
 * One thread per struct bus runs a libuv loop with one timer and two
 * asyncs. Every wake-up (the poll timer, bus_notify(), a retry falling due)
 * runs pump(): relay every registered outbox into the log, then give each
 * subscription and tail its turn, then publish the numbers /metrics and
 * /health/ready read. All SQLite work happens here, so no HTTP worker ever
 * waits on the bus.
 *
 * NOTES ON THE DESIGN: the relay
 *
 *   domain db: outbox rows 1..n (committed)       events.db: log
 *      | relay_outbox(): SELECT seq <= 256 rows
 *      v
 *   BEGIN; INSERT OR IGNORE INTO log ... x n; COMMIT        (step 1)
 *      v
 *   DELETE FROM outbox WHERE seq <= n   (domain db)         (step 2)
 *
 * Invariants:
 *  - an outbox row is deleted only after a transaction holding its event_id
 *    in the log committed, so a crash anywhere loses nothing: a crash
 *    between step 1 and step 2 leaves rows that the next relay (of this or
 *    any process) moves again, and log.event_id UNIQUE turns the second
 *    insert into a no-op — no duplicate in the log either;
 *  - two relays racing on one outbox (two processes on one data dir) are
 *    safe for the same reason, and the log keeps each outbox's order: a row
 *    is only read once every row before it is in the log or in the same
 *    batch (rows leave the outbox in seq order, after their log commit);
 *  - SQLite has one writer per database, so outbox seqs become visible in
 *    commit order: the relay can never skip a row that commits later with a
 *    smaller seq (PostgreSQL will need more care here). */
#include "bus/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "observe/log.h"
#include "observe/trace.h"

/* "offset" is quoted everywhere: it is an SQL keyword. */
static const char events_schema_v1[] =
    "CREATE TABLE log ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  event_id TEXT NOT NULL UNIQUE,"
    "  type TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  appended_at INTEGER NOT NULL);"
    "CREATE TABLE subscriptions ("
    "  name TEXT PRIMARY KEY,"
    "  \"offset\" INTEGER NOT NULL DEFAULT 0,"
    "  lease_owner TEXT NOT NULL DEFAULT '',"
    "  lease_until INTEGER NOT NULL DEFAULT 0,"
    "  delivered INTEGER NOT NULL DEFAULT 0,"
    "  redelivered INTEGER NOT NULL DEFAULT 0);"
    /* seq: the log seq, or minus the redeliver id for a replayed dead letter */
    "CREATE TABLE retries ("
    "  subscription TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL,"
    "  next_at INTEGER NOT NULL,"
    "  last_error TEXT NOT NULL DEFAULT '',"
    "  PRIMARY KEY (subscription, seq)) WITHOUT ROWID;"
    "CREATE TABLE dead_letters ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  subscription TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  event_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL,"
    "  error TEXT NOT NULL,"
    "  failed_at INTEGER NOT NULL);"
    "CREATE INDEX dead_letters_subscription ON dead_letters (subscription, id);"
    "CREATE TABLE redeliver ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  subscription TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  event_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  replayed_at INTEGER NOT NULL);"
    "CREATE INDEX redeliver_subscription ON redeliver (subscription, id);";

static const struct db_migration events_migrations[] = {
    {1, events_schema_v1},
};

static const char sql_outbox_read[] =
    "SELECT seq, event_id, type, key, payload, created_at FROM outbox ORDER BY seq LIMIT 256";
static const char sql_outbox_delete[] = "DELETE FROM outbox WHERE seq <= ?1";
static const char sql_log_append[] =
    "INSERT OR IGNORE INTO log (event_id, type, key, payload, created_at, appended_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char sql_log_head[] =
    "SELECT coalesce((SELECT max(seq) FROM log), 0), EXISTS (SELECT 1 FROM redeliver)";
static const char sql_sub_create[] =
    "INSERT OR IGNORE INTO subscriptions (name, \"offset\")"
    " VALUES (?1, coalesce((SELECT max(seq) FROM log), 0))";

/* --- small shared helpers -------------------------------------------------- */

struct bus_row *bus_row_read(sqlite3_stmt *st, int first) {
  const char *s[4];
  size_t n[4], total = sizeof(struct bus_row);
  for (int i = 0; i < 4; i++) {
    s[i] = db_col_text(st, first + 1 + i);
    n[i] = strlen(s[i]) + 1;
    total += n[i];
  }
  struct bus_row *r = malloc(total);
  if (!r)
    return NULL;
  char *p = (char *)(r + 1);
  const char **dst[4] = {&r->event_id, &r->type, &r->key, &r->payload};
  for (int i = 0; i < 4; i++) {
    memcpy(p, s[i], n[i]);
    *dst[i] = p;
    p += n[i];
  }
  r->seq = sqlite3_column_int64(st, first);
  r->created_at = sqlite3_column_int64(st, first + 5);
  r->id = 0;
  return r;
}

void bus_events_failed(struct bus *b, const char *what) {
  char msg[sizeof b->events_error];
  snprintf(msg, sizeof msg, "events.db: %s: %s", what, db_errmsg(b->events));
  if (!b->events_failed && strcmp(msg, b->events_error) != 0)
    log_event(LOG_ERROR, "bus_events_db_failed", NULL, "%s", msg);
  b->events_failed = 1;
  snprintf(b->events_error, sizeof b->events_error, "%s", msg);
}

/* A pattern is an exact type, "prefix.*" or "*". */
static int pattern_valid(const char *p) {
  size_t n = strlen(p);
  if (n == 0 || n > BUS_TYPE_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    if ((unsigned char)p[i] <= ' ')
      return 0;
    if (p[i] == '*' && !(i == n - 1 && (n == 1 || p[i - 1] == '.')))
      return 0;
  }
  return 1;
}

int bus_types_copy(const char *const types[], char ***out) {
  *out = NULL;
  if (!types)
    return 0;
  size_t n = 0;
  while (types[n])
    if (!pattern_valid(types[n++]))
      return STRATA_EVALIDATION;
  char **copy = calloc(n + 1, sizeof *copy);
  if (!copy)
    return STRATA_EINTERNAL;
  for (size_t i = 0; i < n; i++)
    if (!(copy[i] = strdup(types[i]))) {
      bus_types_free(copy);
      return STRATA_EINTERNAL;
    }
  *out = copy;
  return 0;
}

void bus_types_free(char **types) {
  if (!types)
    return;
  for (char **t = types; *t; t++)
    free(*t);
  free(types);
}

int bus_type_matches(char *const *types, const char *type) {
  if (!types)
    return 1;
  for (; *types; types++) {
    const char *p = *types;
    size_t n = strlen(p);
    if (p[n - 1] == '*') {
      if (strncmp(type, p, n - 1) == 0) /* "*" (n-1 = 0) matches all */
        return 1;
    } else if (strcmp(type, p) == 0) {
      return 1;
    }
  }
  return 0;
}

static int name_valid(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > BUS_NAME_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

/* --- construction ----------------------------------------------------------- */

struct bus *bus_new(const char *data_dir, const struct bus_config *cfg, char *why,
                    size_t why_len) {
  struct bus *b = calloc(1, sizeof *b);
  if (!b) {
    snprintf(why, why_len, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&b->notify_lock, NULL);
  pthread_mutex_init(&b->stats_lock, NULL);
  if (cfg)
    b->cfg = *cfg;
  else
    bus_config_defaults(&b->cfg);
  if (b->cfg.max_attempts < 1)
    b->cfg.max_attempts = 1;
  if (b->cfg.poll_interval_ms < 1)
    b->cfg.poll_interval_ms = 1;
  if (b->cfg.lease_ms < 100)
    b->cfg.lease_ms = 100;
  if (!data_dir || !*data_dir || strlen(data_dir) >= sizeof b->data_dir) {
    snprintf(why, why_len, "data directory missing or too long");
    goto fail;
  }
  snprintf(b->data_dir, sizeof b->data_dir, "%s", data_dir);
  snprintf(b->events_path, sizeof b->events_path, "%s/events.db", data_dir);
  if (mkdir(data_dir, 0755) != 0 && errno != EEXIST) {
    snprintf(why, why_len, "%s: %s", data_dir, strerror(errno));
    goto fail;
  }
  if (db_open(b->events_path, events_migrations,
              sizeof events_migrations / sizeof events_migrations[0], b->cfg.sync, &b->events,
              why, why_len) != 0)
    goto fail;

  char host[64] = "localhost";
  uint64_t r = 0;
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
    r = trace_random64();
  snprintf(b->owner, sizeof b->owner, "%.60s:%ld:%08llx", host, (long)getpid(),
           (unsigned long long)(r & 0xffffffffULL));
  return b;
fail:
  bus_free(b);
  return NULL;
}

int bus_add_outbox(struct bus *b, const char *db_path) {
  char why[256];
  struct db *db = NULL;

  if (b->started)
    return STRATA_ECONFLICT;
  /* No migrations: the domain owns its schema. The outbox table may appear
   * later; until then the relay finds nothing to move. */
  if (db_open(db_path, NULL, 0, b->cfg.sync, &db, why, sizeof why) != 0) {
    log_event(LOG_ERROR, "bus_outbox_open_failed", NULL, "%s", why);
    return STRATA_EINTERNAL;
  }
  struct bus_outbox *n = realloc(b->outboxes, (b->n_outboxes + 1) * sizeof *n);
  if (!n) {
    db_close(db);
    return STRATA_EINTERNAL;
  }
  b->outboxes = n;
  memset(&n[b->n_outboxes], 0, sizeof *n);
  n[b->n_outboxes++].db = db;
  return 0;
}

static void sub_free(struct bus_sub *s) {
  if (!s)
    return;
  bus_types_free(s->types);
  free(s);
}

int bus_subscribe(struct bus *b, const char *subscription, const char *const types[],
                  bus_handler_cb handler, void (*cleanup)(void *ctx), void *ctx) {
  if (b->started)
    return STRATA_ECONFLICT;
  if (!name_valid(subscription) || !handler)
    return STRATA_EVALIDATION;
  for (size_t i = 0; i < b->n_subs; i++)
    if (strcmp(b->subs[i]->name, subscription) == 0)
      return STRATA_ECONFLICT;
  struct bus_sub *s = calloc(1, sizeof *s);
  if (!s)
    return STRATA_EINTERNAL;
  int rc = bus_types_copy(types, &s->types);
  if (rc < 0)
    goto fail;
  rc = STRATA_EINTERNAL;
  struct bus_sub **n = realloc(b->subs, (b->n_subs + 1) * sizeof *n);
  if (!n)
    goto fail;
  b->subs = n;
  snprintf(s->name, sizeof s->name, "%s", subscription);
  s->handler = handler;
  s->cleanup = cleanup;
  s->ctx = ctx;
  b->subs[b->n_subs++] = s;
  return 0;
fail:
  sub_free(s);
  return rc;
}

int bus_tail(struct bus *b, const char *const types[], bus_handler_cb handler, void *ctx) {
  if (b->started)
    return STRATA_ECONFLICT;
  if (!handler)
    return STRATA_EVALIDATION;
  struct bus_tail *t = calloc(1, sizeof *t);
  if (!t)
    return STRATA_EINTERNAL;
  int rc = bus_types_copy(types, &t->types);
  if (rc < 0)
    goto fail;
  rc = STRATA_EINTERNAL;
  struct bus_tail **n = realloc(b->tails, (b->n_tails + 1) * sizeof *n);
  if (!n)
    goto fail;
  b->tails = n;
  t->handler = handler;
  t->ctx = ctx;
  b->tails[b->n_tails++] = t;
  return 0;
fail:
  bus_types_free(t->types);
  free(t);
  return rc;
}

/* --- the relay ---------------------------------------------------------------- */

/* Moves up to one batch of ox's outbox into the log. Returns 1 when a full
 * batch moved (more may wait), 0 when the outbox is drained or failed. */
static int relay_outbox(struct bus *b, struct bus_outbox *ox) {
  struct bus_row *rows[BUS_BATCH];
  int n = 0, more = 0, rc;
  const char *failed = NULL;

  sqlite3_stmt *st = db_stmt(ox->db, sql_outbox_read);
  if (!st) {
    /* Most likely the domain has not created its outbox yet. */
    ox->backlog = 0;
    return 0;
  }
  while (n < BUS_BATCH && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (!(rows[n] = bus_row_read(st, 0)))
      break;
    n++;
  }
  sqlite3_reset(st);
  if (n == 0)
    return 0;

  /* Step 1: into the log, one transaction. */
  if (db_begin(b->events) != SQLITE_OK) {
    bus_events_failed(b, "relay begin");
    goto out;
  }
  long long now = db_now_ms();
  for (int i = 0; i < n; i++) {
    sqlite3_stmt *ins = db_stmt(b->events, sql_log_append);
    if (!ins) {
      failed = "relay prepare";
      break;
    }
    db_bind_text(ins, 1, rows[i]->event_id);
    db_bind_text(ins, 2, rows[i]->type);
    db_bind_text(ins, 3, rows[i]->key);
    db_bind_text(ins, 4, rows[i]->payload);
    db_bind_int(ins, 5, rows[i]->created_at);
    db_bind_int(ins, 6, now);
    rc = sqlite3_step(ins);
    sqlite3_reset(ins);
    if (rc != SQLITE_DONE) {
      failed = "relay insert";
      break;
    }
  }
  if (!failed && db_commit(b->events) != SQLITE_OK)
    failed = "relay commit";
  if (failed) {
    bus_events_failed(b, failed);
    db_rollback(b->events);
    goto out;
  }

  /* Step 2: only now may the outbox forget them. */
  sqlite3_stmt *del = db_stmt(ox->db, sql_outbox_delete);
  rc = SQLITE_ERROR;
  if (del) {
    db_bind_int(del, 1, rows[n - 1]->seq);
    rc = sqlite3_step(del);
    sqlite3_reset(del);
  }
  if (rc != SQLITE_DONE) {
    /* Harmless for correctness (the rows are moved again and ignored), but
     * the outbox would grow: say so once. */
    if (!ox->failing)
      log_event(LOG_WARN, "bus_outbox_delete_failed", NULL, "%s: %s", db_path(ox->db),
                db_errmsg(ox->db));
    ox->failing = 1;
    goto out;
  }
  ox->failing = 0;
  more = n == BUS_BATCH;
out:
  for (int i = 0; i < n; i++)
    free(rows[i]);
  return more;
}

/* --- the loop -------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

/* One round of work; see the file comment. Re-arms the timer: at once when
 * work is left, else at the next poll or retry, whichever comes first. */
static void pump(struct bus *b) {
  long long now = db_now_ms();
  long long wake_at = now + b->cfg.poll_interval_ms;
  int more = 0, replays = 0;

  b->events_failed = 0;
  for (size_t i = 0; i < b->n_outboxes; i++)
    more |= relay_outbox(b, &b->outboxes[i]);

  sqlite3_stmt *st = db_stmt(b->events, sql_log_head);
  if (st && sqlite3_step(st) == SQLITE_ROW) {
    b->last_seq = sqlite3_column_int64(st, 0);
    replays = sqlite3_column_int(st, 1);
    sqlite3_reset(st);
    for (size_t i = 0; i < b->n_subs; i++)
      more |= bus_sub_pump(b, b->subs[i], b->last_seq, replays, &wake_at);
    for (size_t i = 0; i < b->n_tails; i++)
      more |= bus_tail_pump(b, b->tails[i], b->last_seq);
  } else {
    if (st)
      sqlite3_reset(st);
    bus_events_failed(b, "read log head");
  }
  if (!b->events_failed)
    b->events_error[0] = '\0';

  now = db_now_ms();
  bus_stats_refresh(b, now, 0);
  if (__atomic_load_n(&b->stopping, __ATOMIC_RELAXED))
    return;
  long long delay = more ? 0 : wake_at - now;
  if (delay < 0)
    delay = 0;
  if (delay > b->cfg.poll_interval_ms)
    delay = b->cfg.poll_interval_ms;
  uv_update_time(&b->loop); /* the pump took time: count from now */
  uv_timer_start(&b->timer, on_timer, (uint64_t)delay, 0);
}

static void on_timer(uv_timer_t *t) { pump(t->data); }
static void on_notify(uv_async_t *a) { pump(a->data); }

static void on_stop(uv_async_t *a) {
  struct bus *b = a->data;
  uv_timer_stop(&b->timer);
  for (size_t i = 0; i < b->n_subs; i++)
    bus_sub_release(b, b->subs[i]);
  /* Cleanups before our own handles close, on this thread, so a consumer
   * can close the handles it opened on this loop; uv_run() then finishes
   * every close. */
  for (size_t i = 0; i < b->n_subs; i++)
    if (b->subs[i]->cleanup)
      b->subs[i]->cleanup(b->subs[i]->ctx);
  b->cleaned = 1;
  uv_close((uv_handle_t *)&b->timer, NULL);
  uv_close((uv_handle_t *)&b->notify_async, NULL);
  uv_close((uv_handle_t *)&b->stop_async, NULL);
}

static void on_walk_close(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* Runs the loop to completion and closes it, closing whatever handles a
 * consumer left open so the loop can be freed. */
static void loop_finish(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  if (uv_loop_close(loop) == UV_EBUSY) {
    uv_walk(loop, on_walk_close, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
  }
}

static void bus_thread_main(void *arg) {
  struct bus *b = arg;
  loop_finish(&b->loop);
}

int bus_start(struct bus *b) {
  int handles = 0;

  if (b->started)
    return STRATA_ECONFLICT;
  /* Subscription rows first: a new name starts at the log's current end. */
  for (size_t i = 0; i < b->n_subs; i++) {
    sqlite3_stmt *st = db_stmt(b->events, sql_sub_create);
    int rc = SQLITE_ERROR;
    if (st) {
      db_bind_text(st, 1, b->subs[i]->name);
      rc = sqlite3_step(st);
      sqlite3_reset(st);
    }
    if (rc != SQLITE_DONE) {
      log_event(LOG_ERROR, "bus_start_failed", NULL, "%s: %s", b->events_path,
                db_errmsg(b->events));
      return STRATA_EINTERNAL;
    }
  }
  sqlite3_stmt *st = db_stmt(b->events, sql_log_head);
  if (!st || sqlite3_step(st) != SQLITE_ROW) {
    if (st)
      sqlite3_reset(st);
    log_event(LOG_ERROR, "bus_start_failed", NULL, "%s: %s", b->events_path,
              db_errmsg(b->events));
    return STRATA_EINTERNAL;
  }
  b->last_seq = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  for (size_t i = 0; i < b->n_tails; i++)
    b->tails[i]->offset = b->last_seq;

  if (uv_loop_init(&b->loop) != 0)
    return STRATA_EINTERNAL;
  if (uv_timer_init(&b->loop, &b->timer) != 0)
    goto fail;
  handles = 1;
  if (uv_async_init(&b->loop, &b->notify_async, on_notify) != 0)
    goto fail;
  handles = 2;
  if (uv_async_init(&b->loop, &b->stop_async, on_stop) != 0)
    goto fail;
  handles = 3;
  b->timer.data = b->notify_async.data = b->stop_async.data = b;
  uv_timer_start(&b->timer, on_timer, 0, 0);

  bus_stats_refresh(b, db_now_ms(), 1);
  pthread_mutex_lock(&b->stats_lock);
  b->pub_running = 1;
  pthread_mutex_unlock(&b->stats_lock);
  pthread_mutex_lock(&b->notify_lock);
  b->running = 1;
  pthread_mutex_unlock(&b->notify_lock);
  b->started = 1;
  if (uv_thread_create(&b->thread, bus_thread_main, b) != 0) {
    b->started = 0;
    pthread_mutex_lock(&b->notify_lock);
    b->running = 0;
    pthread_mutex_unlock(&b->notify_lock);
    goto fail;
  }
  bus_observer_add(b);
  log_event(LOG_INFO, "bus_started", NULL,
            "bus on %s: %zu outboxes, %zu subscriptions, %zu tails, lease owner %s",
            b->events_path, b->n_outboxes, b->n_subs, b->n_tails, b->owner);
  return 0;

fail:
  if (handles >= 1)
    uv_close((uv_handle_t *)&b->timer, NULL);
  if (handles >= 2)
    uv_close((uv_handle_t *)&b->notify_async, NULL);
  if (handles >= 3)
    uv_close((uv_handle_t *)&b->stop_async, NULL);
  loop_finish(&b->loop);
  pthread_mutex_lock(&b->stats_lock);
  b->pub_running = 0;
  pthread_mutex_unlock(&b->stats_lock);
  return STRATA_EINTERNAL;
}

void bus_notify(struct bus *b) {
  if (!b)
    return;
  pthread_mutex_lock(&b->notify_lock);
  if (b->running)
    uv_async_send(&b->notify_async);
  pthread_mutex_unlock(&b->notify_lock);
}

uv_loop_t *bus_loop(struct bus *b) { return b && b->started && !b->stopped ? &b->loop : NULL; }

void bus_stop(struct bus *b) {
  if (!b || !b->started || b->stopped)
    return;
  __atomic_store_n(&b->stopping, 1, __ATOMIC_RELAXED);
  pthread_mutex_lock(&b->notify_lock);
  b->running = 0;
  pthread_mutex_unlock(&b->notify_lock);
  uv_async_send(&b->stop_async);
  uv_thread_join(&b->thread);
  b->stopped = 1;
  pthread_mutex_lock(&b->stats_lock);
  b->pub_running = 0;
  pthread_mutex_unlock(&b->stats_lock);
  log_event(LOG_INFO, "bus_stopped", NULL, "bus on %s stopped", b->events_path);
}

void bus_free(struct bus *b) {
  if (!b)
    return;
  bus_stop(b);
  bus_observer_remove(b);
  if (!b->cleaned)
    for (size_t i = 0; i < b->n_subs; i++)
      if (b->subs[i]->cleanup)
        b->subs[i]->cleanup(b->subs[i]->ctx);
  for (size_t i = 0; i < b->n_subs; i++)
    sub_free(b->subs[i]);
  free(b->subs);
  for (size_t i = 0; i < b->n_tails; i++) {
    bus_types_free(b->tails[i]->types);
    free(b->tails[i]);
  }
  free(b->tails);
  for (size_t i = 0; i < b->n_outboxes; i++)
    db_close(b->outboxes[i].db);
  free(b->outboxes);
  db_close(b->events);
  pthread_mutex_destroy(&b->notify_lock);
  pthread_mutex_destroy(&b->stats_lock);
  free(b);
}
