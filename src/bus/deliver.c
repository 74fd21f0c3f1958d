/* Deliveries: durable subscriptions (offset, lease, retries, dead letters)
 * and best-effort tails, run by the bus thread's pump (bus.c).
 *
 * NOTES ON THE DESIGN: one subscription's delivery state machine
 *
 *   bus_sub_pump(): lease_hold() succeeds; the head is the oldest replayed
 *   dead letter, else the first log entry after the offset (entries of
 *   other types only move the offset)
 *        |
 *        v
 *   DELIVER  attempt_head(): handler(ev), attempt = retries.attempts + 1
 *        |-- returns 0 ------------------------------> ACKED
 *        |     offset = seq, or the replay row deleted; retries row deleted
 *        |     [commit_progress(), batched: one commit per <= 256 events]
 *        |-- returns < 0, attempt < max_attempts -----> RETRY WAIT
 *        |     retries row: attempts, next_at = now + U(0, min(cap,
 *        |     base * 2^(attempt-1))), last_error  [commit_progress()]
 *        |     the subscription delivers nothing else until next_at
 *        |     (order), then DELIVER again (attempt_head())
 *        '-- returns < 0, attempt == max_attempts ----> DEAD LETTER
 *              dead_letters row; offset = seq, or the replay row deleted
 *              [commit_progress()]; the next event is the new head
 *
 *   `strata events replay` (bus_dead_letters_replay) copies dead letters
 *   into redeliver; bus_sub_pump() serves those before the log.
 *
 * Invariants:
 *  - the offset moves only in commit_progress(), after every event up to
 *    it was acked, dead-lettered or is of another type (at-least-once: a
 *    crash before the commit delivers those events again);
 *  - commit_progress() is a compare-and-set on (lease_owner, offset): a
 *    process that lost its lease mid-batch (a handler slower than the lease)
 *    writes nothing, and the new holder delivers from the stored offset;
 *  - at most one retries row per subscription, for its head event;
 *  - a lease is taken only when free or expired (lease_hold()), renewed by
 *    every commit, and released at bus_stop() (bus_sub_release()).
 *
 * Tails keep their offset in memory, start at the log's end at bus_start()
 * and deliver every matching entry once per process, ignoring the result. */
#include "bus/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "observe/log.h"
#include "observe/trace.h"

static const char sql_log_read[] =
    "SELECT seq, event_id, type, key, payload, created_at FROM log"
    " WHERE seq > ?1 ORDER BY seq LIMIT 256";
static const char sql_replay_head[] =
    "SELECT id, seq, event_id, type, key, payload, created_at FROM redeliver"
    " WHERE subscription = ?1 ORDER BY id LIMIT 1";
static const char sql_offset_read[] = "SELECT \"offset\" FROM subscriptions WHERE name = ?1";
static const char sql_lease_peek[] =
    "SELECT lease_owner, lease_until FROM subscriptions WHERE name = ?1";
static const char sql_lease_take[] =
    "UPDATE subscriptions SET lease_owner = ?1, lease_until = ?2"
    " WHERE name = ?3 AND (lease_owner = ?1 OR lease_until < ?4)";
static const char sql_lease_release[] =
    "UPDATE subscriptions SET lease_until = 0 WHERE name = ?1 AND lease_owner = ?2";
static const char sql_retry_read[] =
    "SELECT attempts, next_at FROM retries WHERE subscription = ?1 AND seq = ?2";
static const char sql_progress[] =
    "UPDATE subscriptions SET \"offset\" = ?1, delivered = delivered + ?2,"
    " redelivered = redelivered + ?3, lease_until = ?4"
    " WHERE name = ?5 AND lease_owner = ?6 AND \"offset\" = ?7";
static const char sql_retry_clear[] = "DELETE FROM retries WHERE subscription = ?1 AND seq = ?2";
static const char sql_retry_set[] =
    "INSERT INTO retries (subscription, seq, attempts, next_at, last_error)"
    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (subscription, seq) DO UPDATE SET"
    " attempts = excluded.attempts, next_at = excluded.next_at, last_error = excluded.last_error";
static const char sql_dead_insert[] =
    "INSERT INTO dead_letters (subscription, seq, event_id, type, key, payload, created_at,"
    " attempts, error, failed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
static const char sql_replay_delete[] = "DELETE FROM redeliver WHERE id = ?1";

/* What a handler sees, plus room for its error text (bus_event_set_error). */
struct delivery {
  struct bus_event ev;
  char error[256];
};

void bus_event_set_error(const struct bus_event *ev, const char *fmt, ...) {
  struct delivery *d = (struct delivery *)((char *)(uintptr_t)ev - offsetof(struct delivery, ev));
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->error, sizeof d->error, fmt, ap);
  va_end(ap);
}

static void delivery_init(struct delivery *d, const struct bus_row *row, const char *sub,
                          int attempt) {
  d->ev.seq = row->seq;
  d->ev.event_id = row->event_id;
  d->ev.type = row->type;
  d->ev.key = row->key;
  d->ev.payload = row->payload;
  d->ev.created_at = row->created_at;
  d->ev.attempt = attempt;
  d->ev.subscription = sub;
  d->error[0] = '\0';
}

/* Everything one commit_progress() writes. */
struct progress {
  long long from_offset, to_offset;
  long long delivered, redelivered;
  long long clear_retry; /* retries key to delete, 0 = none */
  long long retry_key;   /* retries key to set, 0 = none */
  int retry_attempts;
  long long retry_next_at;
  const struct bus_row *dead; /* event to dead-letter, NULL = none */
  int dead_attempts;
  long long replay_done; /* redeliver id to delete, 0 = none */
  char error[256];
};

static int progress_empty(const struct progress *p) {
  return p->to_offset == p->from_offset && !p->clear_retry && !p->retry_key && !p->dead &&
         !p->replay_done;
}

static void lower(long long *wake_at, long long t) {
  if (t < *wake_at)
    *wake_at = t;
}

/* --- lease ------------------------------------------------------------------- */

static int lease_take(struct bus *b, struct bus_sub *s, long long now) {
  sqlite3_stmt *st = db_stmt(b->events, sql_lease_take);
  if (!st) {
    bus_events_failed(b, "lease prepare");
    return 0;
  }
  db_bind_text(st, 1, b->owner);
  db_bind_int(st, 2, now + b->cfg.lease_ms);
  db_bind_text(st, 3, s->name);
  db_bind_int(st, 4, now);
  int rc = sqlite3_step(st);
  int changed = sqlite3_changes(db_handle(b->events));
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    bus_events_failed(b, "lease update");
    return 0;
  }
  return changed == 1;
}

/* 1 when this process holds s's lease with at least half of it left,
 * taking or renewing it if it can. */
static int lease_hold(struct bus *b, struct bus_sub *s, long long now) {
  if (s->held && s->lease_until - now > (long long)b->cfg.lease_ms / 2)
    return 1;
  if (!s->held) {
    /* A read first: while another process holds the lease, waiting
     * processes should not take the write lock on every poll. */
    sqlite3_stmt *st = db_stmt(b->events, sql_lease_peek);
    if (!st) {
      bus_events_failed(b, "lease prepare");
      return 0;
    }
    db_bind_text(st, 1, s->name);
    int busy = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
      busy = strcmp(db_col_text(st, 0), b->owner) != 0 && sqlite3_column_int64(st, 1) >= now;
    sqlite3_reset(st);
    if (busy)
      return 0;
  }
  int was_held = s->held;
  s->held = lease_take(b, s, now);
  if (s->held) {
    s->lease_until = now + b->cfg.lease_ms;
    if (!was_held)
      log_event(LOG_INFO, "bus_lease_acquired", NULL, "subscription %s delivered by %s",
                s->name, b->owner);
  } else if (was_held) {
    log_event(LOG_WARN, "bus_lease_lost", NULL,
              "subscription %s: lease taken over by another process", s->name);
  }
  return s->held;
}

void bus_sub_release(struct bus *b, struct bus_sub *s) {
  if (!s->held)
    return;
  sqlite3_stmt *st = db_stmt(b->events, sql_lease_release);
  if (st) {
    db_bind_text(st, 1, s->name);
    db_bind_text(st, 2, b->owner);
    sqlite3_step(st);
    sqlite3_reset(st);
  }
  s->held = 0;
}

/* --- reads --------------------------------------------------------------------- */

static int offset_read(struct bus *b, struct bus_sub *s, long long *offset) {
  sqlite3_stmt *st = db_stmt(b->events, sql_offset_read);
  int rc = SQLITE_ERROR;
  if (st) {
    db_bind_text(st, 1, s->name);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
      *offset = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
  }
  if (rc != SQLITE_ROW) {
    bus_events_failed(b, "read offset");
    return -1;
  }
  return 0;
}

/* Loads up to BUS_BATCH log rows after offset into rows; returns the count
 * or -1. */
static int log_read(struct bus *b, long long offset, struct bus_row **rows) {
  sqlite3_stmt *st = db_stmt(b->events, sql_log_read);
  int n = 0, rc = SQLITE_ERROR;
  if (!st)
    goto fail;
  db_bind_int(st, 1, offset);
  while (n < BUS_BATCH && (rc = sqlite3_step(st)) == SQLITE_ROW)
    if (!(rows[n++] = bus_row_read(st, 0))) {
      n--;
      rc = SQLITE_NOMEM;
      break;
    }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    goto fail;
  return n;
fail:
  for (int i = 0; i < n; i++)
    free(rows[i]);
  bus_events_failed(b, "read log");
  return -1;
}

/* Attempts and due time of key's retries row; attempts 0 when none. */
static int retry_read(struct bus *b, struct bus_sub *s, long long key, int *attempts,
                      long long *next_at) {
  sqlite3_stmt *st = db_stmt(b->events, sql_retry_read);
  *attempts = 0;
  *next_at = 0;
  if (!st) {
    bus_events_failed(b, "read retries");
    return -1;
  }
  db_bind_text(st, 1, s->name);
  db_bind_int(st, 2, key);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *attempts = sqlite3_column_int(st, 0);
    *next_at = sqlite3_column_int64(st, 1);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    bus_events_failed(b, "read retries");
    return -1;
  }
  return 0;
}

/* --- the transitions ------------------------------------------------------------ */

enum outcome {
  OUT_ACK = 0, /* handler returned 0 */
  OUT_RETRY,   /* failed, retry scheduled */
  OUT_DEAD,    /* failed for the last time */
  OUT_WAIT,    /* a retry is not due yet: nothing delivered */
  OUT_ERROR    /* events.db failed: nothing delivered */
};

static void log_dead_letter(const struct bus_sub *s, const struct bus_row *row, int attempts,
                            const char *error) {
  struct strbuf f;
  strbuf_init(&f, 4096);
  strbuf_puts(&f, "\"subscription\":\"");
  strbuf_put_json_string(&f, s->name, strlen(s->name));
  strbuf_puts(&f, "\",\"event_id\":\"");
  strbuf_put_json_string(&f, row->event_id, strlen(row->event_id));
  strbuf_puts(&f, "\",\"type\":\"");
  strbuf_put_json_string(&f, row->type, strlen(row->type));
  strbuf_printf(&f, "\",\"attempts\":%d", attempts);
  strbuf_putc(&f, '\0');
  log_event(LOG_WARN, "bus_dead_letter", f.failed ? NULL : f.data,
            "event dead-lettered after %d attempts: %s", attempts, error);
  strbuf_free(&f);
}

/* DELIVER: hands the head event (retries key `key`) to the handler unless
 * its retry is not due, and records the outcome in p. */
static enum outcome attempt_head(struct bus *b, struct bus_sub *s, const struct bus_row *row,
                                 long long key, struct progress *p, long long *wake_at) {
  struct delivery d;
  int attempts;
  long long next_at;

  if (retry_read(b, s, key, &attempts, &next_at) < 0)
    return OUT_ERROR;
  if (attempts > 0 && next_at > db_now_ms()) {
    s->wait_until = next_at;
    lower(wake_at, next_at);
    return OUT_WAIT;
  }
  delivery_init(&d, row, s->name, attempts + 1);
  if (attempts > 0 || row->id) {
    __atomic_fetch_add(&s->redelivered, 1, __ATOMIC_RELAXED);
    p->redelivered++;
  }
  int rc = s->handler(&d.ev, s->ctx);
  if (attempts > 0)
    p->clear_retry = key;
  if (rc == 0) {
    __atomic_fetch_add(&s->delivered, 1, __ATOMIC_RELAXED);
    p->delivered++;
    return OUT_ACK;
  }
  if (d.error[0])
    snprintf(p->error, sizeof p->error, "%s", d.error);
  else
    snprintf(p->error, sizeof p->error, "%s: %s", strata_error_code(rc),
             strata_error_message(rc));
  uint32_t failures = (uint32_t)attempts + 1;
  if (failures >= b->cfg.max_attempts) {
    p->dead = row;
    p->dead_attempts = (int)failures;
    log_dead_letter(s, row, (int)failures, p->error);
    return OUT_DEAD;
  }
  uint64_t delay = bus_backoff_delay_ms(b->cfg.backoff_base_ms, b->cfg.backoff_cap_ms, failures,
                                        trace_random64());
  p->clear_retry = 0;
  p->retry_key = key;
  p->retry_attempts = (int)failures;
  p->retry_next_at = db_now_ms() + (long long)delay;
  s->wait_until = p->retry_next_at;
  lower(wake_at, p->retry_next_at);
  return OUT_RETRY;
}

/* Writes p in one events.db transaction, guarded by the lease and the
 * offset read at the start (compare-and-set). Returns 0, 1 when the lease
 * was lost (nothing written), -1 on an SQLite failure. */
static int commit_progress(struct bus *b, struct bus_sub *s, const struct progress *p) {
  const char *failed = NULL;
  long long now = db_now_ms();
  sqlite3_stmt *st;
  int rc;

  if (db_begin(b->events) != SQLITE_OK) {
    bus_events_failed(b, "delivery begin");
    return -1;
  }
  if (!(st = db_stmt(b->events, sql_progress))) {
    failed = "delivery prepare";
    goto fail;
  }
  db_bind_int(st, 1, p->to_offset);
  db_bind_int(st, 2, p->delivered);
  db_bind_int(st, 3, p->redelivered);
  db_bind_int(st, 4, now + b->cfg.lease_ms);
  db_bind_text(st, 5, s->name);
  db_bind_text(st, 6, b->owner);
  db_bind_int(st, 7, p->from_offset);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    failed = "delivery update";
    goto fail;
  }
  if (sqlite3_changes(db_handle(b->events)) != 1) {
    db_rollback(b->events);
    s->held = 0;
    log_event(LOG_WARN, "bus_lease_lost", NULL,
              "subscription %s: lease lost during a batch; the new holder redelivers it",
              s->name);
    return 1;
  }
  if (p->clear_retry) {
    if (!(st = db_stmt(b->events, sql_retry_clear))) {
      failed = "delivery prepare";
      goto fail;
    }
    db_bind_text(st, 1, s->name);
    db_bind_int(st, 2, p->clear_retry);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
      failed = "clear retry";
      goto fail;
    }
  }
  if (p->retry_key) {
    if (!(st = db_stmt(b->events, sql_retry_set))) {
      failed = "delivery prepare";
      goto fail;
    }
    db_bind_text(st, 1, s->name);
    db_bind_int(st, 2, p->retry_key);
    db_bind_int(st, 3, p->retry_attempts);
    db_bind_int(st, 4, p->retry_next_at);
    db_bind_text(st, 5, p->error);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
      failed = "set retry";
      goto fail;
    }
  }
  if (p->dead) {
    if (!(st = db_stmt(b->events, sql_dead_insert))) {
      failed = "delivery prepare";
      goto fail;
    }
    db_bind_text(st, 1, s->name);
    db_bind_int(st, 2, p->dead->seq);
    db_bind_text(st, 3, p->dead->event_id);
    db_bind_text(st, 4, p->dead->type);
    db_bind_text(st, 5, p->dead->key);
    db_bind_text(st, 6, p->dead->payload);
    db_bind_int(st, 7, p->dead->created_at);
    db_bind_int(st, 8, p->dead_attempts);
    db_bind_text(st, 9, p->error);
    db_bind_int(st, 10, now);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
      failed = "dead letter";
      goto fail;
    }
  }
  if (p->replay_done) {
    if (!(st = db_stmt(b->events, sql_replay_delete))) {
      failed = "delivery prepare";
      goto fail;
    }
    db_bind_int(st, 1, p->replay_done);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
      failed = "delete replay";
      goto fail;
    }
  }
  if (db_commit(b->events) != SQLITE_OK) {
    failed = "delivery commit";
    goto fail;
  }
  s->known_offset = p->to_offset;
  s->lease_until = now + b->cfg.lease_ms;
  return 0;
fail:
  bus_events_failed(b, failed);
  db_rollback(b->events);
  return -1;
}

/* The oldest replayed dead letter of s, if any. Returns 1 when one was
 * delivered (look again), 0 when there is none, -1 when the subscription
 * must stop for now (retry wait, failure). */
static int pump_replay(struct bus *b, struct bus_sub *s, long long offset, long long *wake_at) {
  struct progress p;
  struct bus_row *row = NULL;
  sqlite3_stmt *st = db_stmt(b->events, sql_replay_head);
  int rc;

  if (!st) {
    bus_events_failed(b, "read replays");
    return -1;
  }
  db_bind_text(st, 1, s->name);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW && (row = bus_row_read(st, 1)) != NULL)
    row->id = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE)
    return 0;
  if (!row) {
    bus_events_failed(b, "read replays");
    return -1;
  }
  memset(&p, 0, sizeof p);
  p.from_offset = p.to_offset = offset;
  enum outcome o = attempt_head(b, s, row, -row->id, &p, wake_at);
  if (o == OUT_ACK || o == OUT_DEAD)
    p.replay_done = row->id;
  rc = -1;
  if (o != OUT_WAIT && o != OUT_ERROR && commit_progress(b, s, &p) == 0)
    rc = o == OUT_RETRY ? -1 : 1;
  free(row);
  return rc;
}

/* Delivers the log after offset: one batch, one commit. Returns 1 when
 * work is left. */
static int pump_log(struct bus *b, struct bus_sub *s, long long offset, long long *wake_at) {
  struct bus_row *rows[BUS_BATCH];
  struct progress p;
  long long start = db_now_ms();
  long long budget = BUS_BATCH_MS < b->cfg.lease_ms / 4 ? BUS_BATCH_MS : b->cfg.lease_ms / 4;
  int n = log_read(b, offset, rows), more, i;

  if (n <= 0)
    return 0;
  memset(&p, 0, sizeof p);
  p.from_offset = p.to_offset = offset;
  more = n == BUS_BATCH;
  for (i = 0; i < n; i++) {
    const struct bus_row *row = rows[i];
    if (!bus_type_matches(s->types, row->type)) {
      p.to_offset = row->seq;
      continue;
    }
    long long now = db_now_ms();
    if (__atomic_load_n(&b->stopping, __ATOMIC_RELAXED) || now - start >= budget ||
        now >= s->lease_until - (long long)b->cfg.lease_ms / 4) {
      more = 1;
      break;
    }
    enum outcome o = attempt_head(b, s, row, row->seq, &p, wake_at);
    if (o == OUT_ACK) {
      p.to_offset = row->seq;
      continue;
    }
    if (o == OUT_DEAD) {
      p.to_offset = row->seq;
      more = 1; /* one dead letter per commit; go on at once */
    } else {
      more = 0;
    }
    break;
  }
  if (!progress_empty(&p) && commit_progress(b, s, &p) != 0)
    more = 0;
  for (i = 0; i < n; i++)
    free(rows[i]);
  return more;
}

int bus_sub_pump(struct bus *b, struct bus_sub *s, long long last_seq, int replays,
                 long long *wake_at) {
  long long now = db_now_ms(), offset;

  /* The holder renews its lease even when idle, so a subscription stays
   * with one process instead of moving at every burst after a quiet spell. */
  if (s->held && !lease_hold(b, s, now))
    return 0;
  if (!replays && s->known_offset >= last_seq)
    return 0;
  if (s->wait_until > now) {
    lower(wake_at, s->wait_until);
    return 0;
  }
  s->wait_until = 0;
  if (!lease_hold(b, s, now) || offset_read(b, s, &offset) < 0)
    return 0;
  s->known_offset = offset;
  if (replays) {
    int rc = pump_replay(b, s, offset, wake_at);
    if (rc != 0)
      return rc > 0;
  }
  if (offset >= last_seq)
    return 0;
  return pump_log(b, s, offset, wake_at);
}

int bus_tail_pump(struct bus *b, struct bus_tail *t, long long last_seq) {
  struct bus_row *rows[BUS_BATCH];
  struct delivery d;

  if (t->offset >= last_seq)
    return 0;
  int n = log_read(b, t->offset, rows);
  if (n <= 0)
    return 0;
  for (int i = 0; i < n; i++) {
    if (bus_type_matches(t->types, rows[i]->type)) {
      delivery_init(&d, rows[i], NULL, 1);
      (void)t->handler(&d.ev, t->ctx);
    }
    t->offset = rows[i]->seq;
    free(rows[i]);
  }
  return n == BUS_BATCH;
}
