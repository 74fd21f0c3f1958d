/* Unit tests for src/bus: the outbox, the relay, durable subscriptions,
 * tails, retries, dead letters, replays, leases and the operator commands.
 *
 * Every test gets a fresh mkdtemp() data directory with a domain-like
 * database (orders.db: a business table, the outbox and the inbox) and runs
 * real buses on it: their own threads, loops and events.db. Handlers record
 * what they saw under a mutex; the test thread waits for the expected state
 * with a deadline instead of sleeping a fixed time. Short poll intervals and
 * backoffs (a few ms) and synchronous=NORMAL keep the whole file in a few
 * seconds, ASan included. */
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <fcntl.h>
#include <jansson.h>

#include "bus/bus.h"
#include "cli/cli.h"
#include "core/error.h"
#include "observe/health.h"
#include "observe/log.h"
#include "observe/metrics.h"

#define MAX_SEEN 4096

static const char orders_v1[] =
    "CREATE TABLE orders (id TEXT PRIMARY KEY, total INTEGER NOT NULL);";
static const struct db_migration orders_migrations[] = {
    {1, orders_v1},
    {2, BUS_OUTBOX_SCHEMA},
    {3, BUS_INBOX_SCHEMA},
};

static const char sql_order_insert[] = "INSERT INTO orders (id, total) VALUES (?1, ?2)";
static const char sql_outbox_count[] = "SELECT count(*) FROM outbox";
static const char sql_orders_count[] = "SELECT count(*) FROM orders";
static const char sql_log_count[] = "SELECT count(*), count(DISTINCT event_id) FROM log";
static const char sql_log_ids[] = "SELECT event_id FROM log ORDER BY seq";
static const char sql_log_preinsert[] =
    "INSERT INTO log (event_id, type, key, payload, created_at, appended_at)"
    " SELECT ?1, ?2, ?3, ?4, ?5, ?6";
static const char sql_outbox_rows[] =
    "SELECT event_id, type, key, payload, created_at FROM outbox ORDER BY seq LIMIT ?1";
static const char sql_retry_row[] =
    "SELECT attempts, next_at FROM retries WHERE subscription = ?1 AND seq = ?2";
static const char sql_sub_create[] = "INSERT INTO subscriptions (name) VALUES (?1)";

struct fixture {
  char dir[64];
  char orders_path[128];
  struct db *orders; /* the "domain" connection, test thread */
  struct bus_config cfg;
};

/* What a handler saw. fail_key: events with this key fail (fail_times
 * times, or always when fail_times < 0). */
struct seen {
  pthread_mutex_t lock;
  int n;
  char ids[MAX_SEEN][BUS_EVENT_ID_MAX];
  char keys[MAX_SEEN][32];
  int attempts[MAX_SEEN];
  long long seqs[MAX_SEEN];
  long long at_ms[MAX_SEEN];
  const char *fail_key;
  int fail_times;
  int failed;
  int delay_ms; /* handler takes this long (a slow consumer) */
  int cleanups;
  int cleanup_on_other_thread;
  pthread_t main_thread;
  /* retry checks: the retries row as seen at the next attempt */
  const char *events_path;
  struct db *events; /* opened lazily on the bus thread, closed by cleanup */
  long long last_fail_ms;
  int retry_checks, retry_bad;
  uint32_t base_ms, cap_ms;
};

/* --- helpers --------------------------------------------------------------- */

static long long now_ms(void) { return db_now_ms(); }

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void seen_init(struct seen *s) {
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->lock, NULL);
  s->main_thread = pthread_self();
}

static void seen_destroy(struct seen *s) { pthread_mutex_destroy(&s->lock); }

static int seen_count(struct seen *s) {
  pthread_mutex_lock(&s->lock);
  int n = s->n;
  pthread_mutex_unlock(&s->lock);
  return n;
}

/* Checks, at a retry, that the retries row written at the previous failure
 * scheduled a delay within [0, min(cap, base * 2^(failures-1))] and that
 * this attempt did not come before it was due. */
static void check_retry_row(struct seen *s, const struct bus_event *ev) {
  char why[256];
  if (!s->events && db_open(s->events_path, NULL, 0, DB_SYNC_NORMAL, &s->events, why,
                            sizeof why) != 0)
    return;
  sqlite3_stmt *st = db_stmt(s->events, sql_retry_row);
  if (!st)
    return;
  db_bind_text(st, 1, ev->subscription);
  db_bind_int(st, 2, ev->seq);
  if (sqlite3_step(st) == SQLITE_ROW) {
    int failures = sqlite3_column_int(st, 0);
    long long next_at = sqlite3_column_int64(st, 1);
    long long bound = s->base_ms;
    for (int i = 1; i < failures; i++)
      bound *= 2;
    if (bound > s->cap_ms)
      bound = s->cap_ms;
    long long scheduled = next_at - s->last_fail_ms;
    s->retry_checks++;
    if (failures != ev->attempt - 1 || scheduled < 0 || scheduled > bound + 3 ||
        now_ms() < next_at) {
      print_message("retry check: failures %d attempt %d scheduled %lld bound %lld early %lld\n",
                    failures, ev->attempt, scheduled, bound, next_at - now_ms());
      s->retry_bad++;
    }
  } else {
    s->retry_bad++;
  }
  sqlite3_reset(st);
}

static int on_event(const struct bus_event *ev, void *ctx) {
  struct seen *s = ctx;
  int rc = 0;
  pthread_mutex_lock(&s->lock);
  if (ev->attempt > 1 && s->events_path)
    check_retry_row(s, ev);
  if (s->n < MAX_SEEN) {
    snprintf(s->ids[s->n], sizeof s->ids[0], "%s", ev->event_id);
    snprintf(s->keys[s->n], sizeof s->keys[0], "%s", ev->key);
    s->attempts[s->n] = ev->attempt;
    s->seqs[s->n] = ev->seq;
    s->at_ms[s->n] = now_ms();
    s->n++;
  }
  if (s->fail_key && strcmp(ev->key, s->fail_key) == 0 &&
      (s->fail_times < 0 || s->failed < s->fail_times)) {
    s->failed++;
    bus_event_set_error(ev, "refused %s (attempt %d)", ev->key, ev->attempt);
    s->last_fail_ms = now_ms();
    rc = STRATA_EUNAVAILABLE;
  }
  int delay = s->delay_ms;
  pthread_mutex_unlock(&s->lock);
  if (delay)
    sleep_ms(delay);
  return rc;
}

static void on_cleanup(void *ctx) {
  struct seen *s = ctx;
  pthread_mutex_lock(&s->lock);
  s->cleanups++;
  if (!pthread_equal(pthread_self(), s->main_thread))
    s->cleanup_on_other_thread = 1;
  db_close(s->events);
  s->events = NULL;
  pthread_mutex_unlock(&s->lock);
}

/* Waits up to timeout_ms for cond(arg); returns 1 when it became true. */
static int wait_for(int (*cond)(void *), void *arg, int timeout_ms) {
  long long end = now_ms() + timeout_ms;
  while (now_ms() < end) {
    if (cond(arg))
      return 1;
    sleep_ms(2);
  }
  return cond(arg);
}

struct count_goal {
  struct seen *s;
  int n;
};
static int reached(void *arg) {
  struct count_goal *g = arg;
  return seen_count(g->s) >= g->n;
}
static int wait_seen(struct seen *s, int n, int timeout_ms) {
  struct count_goal g = {s, n};
  return wait_for(reached, &g, timeout_ms);
}

static long long query1(struct db *db, const char *sql) {
  sqlite3_stmt *st = db_stmt(db, sql);
  assert_non_null(st);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  long long v = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return v;
}

/* Appends one order and its event in one transaction; commit or roll back.
 * Writes the event id into id when not NULL. */
static void append(struct fixture *f, const char *type, const char *key, int commit, char *id) {
  char order_id[64], payload[128], event_id[BUS_EVENT_ID_MAX];
  static int counter;
  snprintf(order_id, sizeof order_id, "ord_%d_%s", ++counter, key);
  snprintf(payload, sizeof payload, "{ \"order\": \"%s\", \"total\": %d }", order_id, counter);
  assert_int_equal(db_begin(f->orders), SQLITE_OK);
  sqlite3_stmt *st = db_stmt(f->orders, sql_order_insert);
  assert_non_null(st);
  db_bind_text(st, 1, order_id);
  db_bind_int(st, 2, counter);
  assert_int_equal(sqlite3_step(st), SQLITE_DONE);
  sqlite3_reset(st);
  assert_int_equal(bus_outbox_append(f->orders, type, key, payload, event_id), 0);
  if (commit)
    assert_int_equal(db_commit(f->orders), SQLITE_OK);
  else
    db_rollback(f->orders);
  if (id)
    memcpy(id, event_id, BUS_EVENT_ID_MAX);
}

/* Appends n events of type in transactions of `per_tx`. */
static void append_many(struct fixture *f, const char *type, int n, int per_tx) {
  char key[32];
  for (int i = 0; i < n;) {
    assert_int_equal(db_begin(f->orders), SQLITE_OK);
    for (int j = 0; j < per_tx && i < n; j++, i++) {
      snprintf(key, sizeof key, "k%d", i);
      assert_int_equal(bus_outbox_append(f->orders, type, key, "{\"n\":1}", NULL), 0);
    }
    assert_int_equal(db_commit(f->orders), SQLITE_OK);
  }
}

static struct bus *new_bus(struct fixture *f) {
  char why[256] = "";
  struct bus *b = bus_new(f->dir, &f->cfg, why, sizeof why);
  if (!b)
    print_message("bus_new: %s\n", why);
  assert_non_null(b);
  assert_int_equal(bus_add_outbox(b, f->orders_path), 0);
  return b;
}

static struct db *admin(struct fixture *f) {
  char why[256];
  struct db *db = NULL;
  assert_int_equal(bus_admin_open(f->dir, &db, why, sizeof why), 0);
  return db;
}

static int on_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int setup(void **state) {
  char why[256];
  struct fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->dir, sizeof f->dir, "/tmp/strata-bus-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->orders_path, sizeof f->orders_path, "%s/orders.db", f->dir);
  assert_int_equal(db_open(f->orders_path, orders_migrations, 3, DB_SYNC_NORMAL, &f->orders, why,
                           sizeof why),
                   0);
  bus_config_defaults(&f->cfg);
  f->cfg.poll_interval_ms = 5;
  f->cfg.backoff_base_ms = 5;
  f->cfg.backoff_cap_ms = 40;
  f->cfg.sync = DB_SYNC_NORMAL;
  health_reset();
  log_set_level(LOG_ERROR);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  db_close(f->orders);
  nftw(f->dir, on_rm, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  health_reset();
  metrics_shutdown();
  return 0;
}

/* --- producer side ------------------------------------------------------------- */

static int is_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return 1;
}

static void test_event_ids(void **state) {
  char a[BUS_EVENT_ID_MAX], b[BUS_EVENT_ID_MAX];
  (void)state;
  bus_event_id_new(a);
  sleep_ms(2);
  bus_event_id_new(b);
  assert_int_equal(strlen(a), 32);
  assert_memory_equal(a, "evt_", 4);
  assert_true(is_hex(a + 4, 28));
  assert_string_not_equal(a, b);
  /* Time first: a later id sorts after an earlier one. */
  assert_true(memcmp(a + 4, b + 4, 12) < 0);
}

static void test_outbox_append_contract(void **state) {
  struct fixture *f = *state;
  char id[BUS_EVENT_ID_MAX];

  /* Outside a transaction: refused, nothing written. */
  assert_int_equal(bus_outbox_append(f->orders, "orders.created", "o1", "{}", id),
                   STRATA_EINTERNAL);
  assert_int_equal(db_begin(f->orders), SQLITE_OK);
  assert_int_equal(bus_outbox_append(f->orders, "", "o1", "{}", NULL), STRATA_EINTERNAL);
  assert_int_equal(bus_outbox_append(f->orders, "orders.*", "o1", "{}", NULL), STRATA_EINTERNAL);
  assert_int_equal(bus_outbox_append(f->orders, "orders.created", NULL, "{}", NULL),
                   STRATA_EINTERNAL);
  assert_int_equal(bus_outbox_append(f->orders, "orders.created", "o1", "{not json", NULL),
                   STRATA_EINTERNAL);
  assert_int_equal(bus_outbox_append(f->orders, "orders.created", "o1", "{ \"a\" : 1 }", id),
                   0);
  assert_int_equal(db_commit(f->orders), SQLITE_OK);
  assert_int_equal(query1(f->orders, sql_outbox_count), 1);
  assert_int_equal(strlen(id), 32);
}

static void test_inbox_dedupe(void **state) {
  struct fixture *f = *state;

  assert_int_equal(bus_inbox_mark(f->orders, "mailer", "evt_1"), STRATA_EINTERNAL); /* no tx */
  assert_int_equal(db_begin(f->orders), SQLITE_OK);
  assert_int_equal(bus_inbox_mark(f->orders, "mailer", "evt_1"), 1);
  assert_int_equal(bus_inbox_mark(f->orders, "mailer", "evt_1"), 0);
  assert_int_equal(bus_inbox_mark(f->orders, "audit", "evt_1"), 1); /* per subscription */
  assert_int_equal(db_commit(f->orders), SQLITE_OK);
  assert_int_equal(db_begin(f->orders), SQLITE_OK);
  assert_int_equal(bus_inbox_mark(f->orders, "mailer", "evt_1"), 0); /* after commit too */
  assert_int_equal(bus_inbox_mark(f->orders, "mailer", "evt_2"), 1);
  db_rollback(f->orders);
  assert_int_equal(db_begin(f->orders), SQLITE_OK);
  /* The rolled-back mark is gone with its transaction. */
  assert_int_equal(bus_inbox_mark(f->orders, "mailer", "evt_2"), 1);
  assert_int_equal(db_commit(f->orders), SQLITE_OK);
}

static void test_backoff_full_jitter(void **state) {
  (void)state;
  for (uint32_t n = 1; n <= 12; n++) {
    uint64_t bound = 100ULL << (n - 1);
    if (bound > 30000)
      bound = 30000;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 2000; i++) {
      uint64_t d = bus_backoff_delay_ms(100, 30000, n, (uint64_t)rand() * 2654435761ULL + i);
      assert_true(d <= bound);
      if (d < lo)
        lo = d;
      if (d > hi)
        hi = d;
    }
    /* Full jitter: the whole range is used, not just the top. */
    assert_true(lo < bound / 4 + 1);
    assert_true(hi > bound / 2);
  }
  assert_int_equal(bus_backoff_delay_ms(100, 30000, 1, 100), 100);
  assert_int_equal(bus_backoff_delay_ms(100, 30000, 1, 101), 0);
  assert_true(bus_backoff_delay_ms(100, 30000, 1000, UINT64_MAX) <= 30000);
  assert_int_equal(bus_backoff_delay_ms(5, 8, 3, 8), 8); /* capped */
}

/* --- relay and subscriptions ---------------------------------------------------- */

/* A rolled-back append never reaches anyone; the committed one arrives once,
 * for the subscription and for the tail. */
static void test_committed_only(void **state) {
  struct fixture *f = *state;
  struct seen sub, tail;
  char committed[BUS_EVENT_ID_MAX], rolled[BUS_EVENT_ID_MAX];
  seen_init(&sub);
  seen_init(&tail);

  struct bus *b = new_bus(f);
  const char *const types[] = {"orders.*", NULL};
  assert_int_equal(bus_subscribe(b, "mailer", types, on_event, NULL, &sub), 0);
  assert_int_equal(bus_tail(b, types, on_event, &tail), 0);
  assert_int_equal(bus_start(b), 0);
  append(f, "orders.created", "rolled", 0, rolled);
  append(f, "orders.created", "kept", 1, committed);
  bus_notify(b);
  assert_true(wait_seen(&sub, 1, 3000));
  assert_true(wait_seen(&tail, 1, 3000));
  sleep_ms(40); /* a few more polls: nothing else may arrive */
  assert_int_equal(seen_count(&sub), 1);
  assert_int_equal(seen_count(&tail), 1);
  assert_string_equal(sub.ids[0], committed);
  assert_string_equal(tail.ids[0], committed);
  assert_int_equal(sub.attempts[0], 1);
  assert_int_equal(query1(f->orders, sql_outbox_count), 0);
  assert_int_equal(query1(f->orders, sql_orders_count), 1);
  bus_free(b);
  seen_destroy(&sub);
  seen_destroy(&tail);
}

/* Events arrive in commit order, once each; other types only move the
 * offset; the offset survives a restart. */
static void test_order_and_types(void **state) {
  struct fixture *f = *state;
  struct seen s;
  char key[16];
  seen_init(&s);

  struct bus *b = new_bus(f);
  const char *const types[] = {"orders.created", "orders.paid", NULL};
  assert_int_equal(bus_subscribe(b, "billing", types, on_event, NULL, &s), 0);
  assert_int_equal(bus_start(b), 0);
  for (int i = 0; i < 60; i++) {
    snprintf(key, sizeof key, "k%02d", i);
    append(f, i % 3 == 2 ? "users.created" : (i % 3 ? "orders.paid" : "orders.created"), key, 1,
           NULL);
    if (i % 7 == 0)
      bus_notify(b);
  }
  bus_notify(b);
  assert_true(wait_seen(&s, 40, 5000));
  sleep_ms(30);
  assert_int_equal(seen_count(&s), 40);
  for (int i = 0, j = 0; i < 60; i++) {
    if (i % 3 == 2)
      continue;
    snprintf(key, sizeof key, "k%02d", i);
    assert_string_equal(s.keys[j], key);
    if (j > 0)
      assert_true(s.seqs[j] > s.seqs[j - 1]);
    j++;
  }
  bus_free(b);

  /* A new bus (a restarted process) continues after the stored offset. */
  struct seen s2;
  seen_init(&s2);
  b = new_bus(f);
  assert_int_equal(bus_subscribe(b, "billing", types, on_event, NULL, &s2), 0);
  assert_int_equal(bus_start(b), 0);
  append(f, "orders.paid", "after", 1, NULL);
  bus_notify(b);
  assert_true(wait_seen(&s2, 1, 3000));
  sleep_ms(30);
  assert_int_equal(seen_count(&s2), 1);
  assert_string_equal(s2.keys[0], "after");
  bus_free(b);
  seen_destroy(&s);
  seen_destroy(&s2);
}

/* A handler failing twice, then succeeding: attempts 1, 2, 3, each retry
 * scheduled within its full-jitter bound and not delivered early; the next
 * event waits for it (order). */
static void test_retry_then_success(void **state) {
  struct fixture *f = *state;
  struct seen s;
  char events_path[128];
  seen_init(&s);
  snprintf(events_path, sizeof events_path, "%s/events.db", f->dir);
  s.fail_key = "flaky";
  s.fail_times = 2;
  s.events_path = events_path;
  s.base_ms = 5;
  s.cap_ms = 8;
  f->cfg.backoff_base_ms = 5;
  f->cfg.backoff_cap_ms = 8;

  struct bus *b = new_bus(f);
  assert_int_equal(bus_subscribe(b, "mailer", NULL, on_event, on_cleanup, &s), 0);
  assert_int_equal(bus_start(b), 0);
  append(f, "orders.created", "flaky", 1, NULL);
  append(f, "orders.created", "next", 1, NULL);
  bus_notify(b);
  assert_true(wait_seen(&s, 4, 3000));
  sleep_ms(30);
  assert_int_equal(seen_count(&s), 4);
  assert_string_equal(s.keys[0], "flaky");
  assert_string_equal(s.keys[1], "flaky");
  assert_string_equal(s.keys[2], "flaky");
  assert_string_equal(s.keys[3], "next");
  assert_int_equal(s.attempts[0], 1);
  assert_int_equal(s.attempts[1], 2);
  assert_int_equal(s.attempts[2], 3);
  assert_int_equal(s.attempts[3], 1);
  assert_string_equal(s.ids[0], s.ids[2]);
  assert_int_equal(s.retry_checks, 2);
  assert_int_equal(s.retry_bad, 0);
  /* Measured gaps agree with the bounds (plus scheduling slack). */
  assert_true(s.at_ms[1] - s.at_ms[0] <= 5 + 25);
  assert_true(s.at_ms[2] - s.at_ms[1] <= 8 + 25);

  struct db *db = admin(f);
  struct bus_subscription_stats *st = NULL;
  long long last = 0;
  assert_int_equal(bus_stats_read(db, &last, &st), 1);
  assert_string_equal(st[0].name, "mailer");
  assert_int_equal(st[0].offset, last);
  assert_int_equal(st[0].delivered, 2);
  assert_int_equal(st[0].redelivered, 2);
  assert_int_equal(st[0].retrying, 0);
  assert_int_equal(st[0].dead_letters, 0);
  free(st);
  db_close(db);
  bus_free(b);
  assert_int_equal(s.cleanups, 1);
  assert_true(s.cleanup_on_other_thread);
  seen_destroy(&s);
}

struct dead_walk {
  int n;
  char error[256];
  int attempts;
  long long id;
  char event_id[BUS_EVENT_ID_MAX];
};
static int on_dead(const struct bus_dead_letter *dl, void *ctx) {
  struct dead_walk *w = ctx;
  w->n++;
  snprintf(w->error, sizeof w->error, "%s", dl->error);
  snprintf(w->event_id, sizeof w->event_id, "%s", dl->event_id);
  w->attempts = dl->attempts;
  w->id = dl->id;
  return 0;
}

struct health_goal {
  struct bus *b;
  enum health_status want;
  char detail[256];
};
static int health_is(void *arg) {
  struct health_goal *g = arg;
  return bus_health(g->b, g->detail, sizeof g->detail) == g->want;
}

/* A handler that always fails: dead letter after max_attempts with its
 * error, the subscription moves on, readiness degrades; replay delivers it
 * again once the handler is fixed. */
static void test_dead_letter_and_replay(void **state) {
  struct fixture *f = *state;
  struct seen s;
  char poison[BUS_EVENT_ID_MAX];
  seen_init(&s);
  s.fail_key = "poison";
  s.fail_times = -1;
  f->cfg.max_attempts = 3;
  f->cfg.backoff_base_ms = 1;
  f->cfg.backoff_cap_ms = 2;

  struct bus *b = new_bus(f);
  assert_int_equal(bus_subscribe(b, "mailer", NULL, on_event, NULL, &s), 0);
  assert_int_equal(bus_start(b), 0);
  append(f, "orders.created", "poison", 1, poison);
  append(f, "orders.created", "healthy", 1, NULL);
  bus_notify(b);
  assert_true(wait_seen(&s, 4, 3000));
  sleep_ms(30);
  assert_int_equal(seen_count(&s), 4); /* 3 attempts, then the next event */
  assert_int_equal(s.attempts[2], 3);
  assert_string_equal(s.keys[3], "healthy");

  struct db *db = admin(f);
  struct dead_walk w = {0};
  assert_int_equal(bus_dead_letters_list(db, NULL, on_dead, &w), 1);
  assert_int_equal(w.n, 1);
  assert_int_equal(w.attempts, 3);
  assert_string_equal(w.event_id, poison);
  assert_string_equal(w.error, "refused poison (attempt 3)");
  memset(&w, 0, sizeof w);
  assert_int_equal(bus_dead_letters_list(db, "other", on_dead, &w), 0);

  struct health_goal g = {b, HEALTH_DEGRADED, ""};
  assert_true(wait_for(health_is, &g, 2000));
  assert_non_null(strstr(g.detail, "subscription mailer has 1 dead letters"));

  /* Fixed handler, replay: delivered again (attempt 1, same event), the
   * dead letter is gone, readiness recovers. */
  pthread_mutex_lock(&s.lock);
  s.fail_key = NULL;
  pthread_mutex_unlock(&s.lock);
  assert_int_equal(bus_dead_letters_replay(db, NULL, 12345), 0); /* no such id */
  assert_int_equal(bus_dead_letters_replay(db, "mailer", 0), 1);
  bus_notify(b);
  assert_true(wait_seen(&s, 5, 3000));
  assert_string_equal(s.ids[4], poison);
  assert_int_equal(s.attempts[4], 1);
  memset(&w, 0, sizeof w);
  assert_int_equal(bus_dead_letters_list(db, NULL, on_dead, &w), 0);
  g.want = HEALTH_UP;
  assert_true(wait_for(health_is, &g, 2000));

  struct strbuf sb;
  strbuf_init(&sb, 0);
  bus_write_metrics(b, &sb);
  strbuf_putc(&sb, '\0');
  assert_non_null(strstr(sb.data, "strata_bus_delivered_total{subscription=\"mailer\"} 2\n"));
  assert_non_null(strstr(sb.data, "strata_bus_redelivered_total{subscription=\"mailer\"} 3\n"));
  assert_non_null(strstr(sb.data, "strata_bus_dead_letters{subscription=\"mailer\"} 0\n"));
  strbuf_free(&sb);
  db_close(db);
  bus_free(b);
  seen_destroy(&s);
}

/* A replayed dead letter that fails again goes back to dead_letters, keeps
 * its log seq, and other events are not held back forever. */
static void test_replay_fails_again(void **state) {
  struct fixture *f = *state;
  struct seen s;
  seen_init(&s);
  s.fail_key = "poison";
  s.fail_times = -1;
  f->cfg.max_attempts = 2;
  f->cfg.backoff_base_ms = 1;
  f->cfg.backoff_cap_ms = 1;

  struct bus *b = new_bus(f);
  assert_int_equal(bus_subscribe(b, "mailer", NULL, on_event, NULL, &s), 0);
  assert_int_equal(bus_start(b), 0);
  append(f, "orders.created", "poison", 1, NULL);
  bus_notify(b);
  assert_true(wait_seen(&s, 2, 3000));
  long long seq = s.seqs[0];
  struct db *db = admin(f);
  struct dead_walk w = {0};
  struct health_goal g = {b, HEALTH_DEGRADED, ""};
  assert_true(wait_for(health_is, &g, 2000));
  assert_int_equal(bus_dead_letters_list(db, NULL, on_dead, &w), 1);
  assert_int_equal(bus_dead_letters_replay(db, NULL, w.id), 1);
  append(f, "orders.created", "later", 1, NULL);
  bus_notify(b);
  assert_true(wait_seen(&s, 5, 3000));
  assert_string_equal(s.keys[2], "poison");
  assert_int_equal(s.seqs[2], seq);
  assert_string_equal(s.keys[4], "later");
  memset(&w, 0, sizeof w);
  assert_int_equal(bus_dead_letters_list(db, NULL, on_dead, &w), 1);
  assert_int_equal(w.attempts, 2);
  db_close(db);
  bus_free(b);
  seen_destroy(&s);
}

/* Two buses on one data dir (two processes): each event of a subscription
 * is delivered once overall, every tail sees every event; when the holder
 * stops, the other takes over at once and nothing is lost or repeated. */
static void test_two_buses(void **state) {
  struct fixture *f = *state;
  struct seen sa, sb, ta, tb;
  seen_init(&sa);
  seen_init(&sb);
  seen_init(&ta);
  seen_init(&tb);
  /* Slow handlers widen the window in which two deliverers would overlap
   * if the lease did not keep one of them out. */
  sa.delay_ms = sb.delay_ms = 1;

  struct bus *a = new_bus(f), *b = new_bus(f);
  assert_int_equal(bus_subscribe(a, "mailer", NULL, on_event, NULL, &sa), 0);
  assert_int_equal(bus_subscribe(b, "mailer", NULL, on_event, NULL, &sb), 0);
  assert_int_equal(bus_tail(a, NULL, on_event, &ta), 0);
  assert_int_equal(bus_tail(b, NULL, on_event, &tb), 0);
  assert_int_equal(bus_start(a), 0);
  assert_int_equal(bus_start(b), 0);
  for (int i = 0; i < 10; i++) {
    append_many(f, "orders.created", 20, 5);
    bus_notify(i % 2 ? a : b);
  }
  for (int i = 0; i < 300 && seen_count(&sa) + seen_count(&sb) < 200; i++)
    sleep_ms(5);
  assert_true(wait_seen(&ta, 200, 3000));
  assert_true(wait_seen(&tb, 200, 3000));
  sleep_ms(40);
  assert_int_equal(seen_count(&sa) + seen_count(&sb), 200);
  assert_int_equal(seen_count(&ta), 200);
  assert_int_equal(seen_count(&tb), 200);

  /* Stop the holder; the other continues after its offset. */
  int a_holds = seen_count(&sa) > 0;
  struct bus *holder = a_holds ? a : b, *other = a_holds ? b : a;
  struct seen *other_seen = a_holds ? &sb : &sa;
  int before = seen_count(other_seen);
  bus_stop(holder);
  append_many(f, "orders.created", 20, 20);
  bus_notify(other);
  assert_true(wait_seen(other_seen, before + 20, 3000));
  sleep_ms(40);
  assert_int_equal(seen_count(&sa) + seen_count(&sb), 220);

  /* No event twice, across both. */
  struct db *db = admin(f);
  sqlite3_stmt *st = db_stmt(db, sql_log_count);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(st, 0), 220);
  assert_int_equal(sqlite3_column_int(st, 1), 220);
  sqlite3_reset(st);
  st = db_stmt(db, sql_log_ids);
  int n = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *id = db_col_text(st, 0);
    int hits = 0;
    for (int i = 0; i < sa.n; i++)
      hits += strcmp(sa.ids[i], id) == 0;
    for (int i = 0; i < sb.n; i++)
      hits += strcmp(sb.ids[i], id) == 0;
    assert_int_equal(hits, 1);
    n++;
  }
  sqlite3_reset(st);
  assert_int_equal(n, 220);
  db_close(db);
  bus_free(a);
  bus_free(b);
  seen_destroy(&sa);
  seen_destroy(&sb);
  seen_destroy(&ta);
  seen_destroy(&tb);
}

/* A holder that hangs longer than its lease (a stuck handler, a paused
 * process): another process takes the expired lease and delivers from the
 * stored offset; when the stuck one comes back, its commit is refused
 * (lease and offset compare-and-set), so the offset never goes back and
 * the event was delivered twice at most, never lost. */
static void test_lease_expiry_takeover(void **state) {
  struct fixture *f = *state;
  struct seen sa, sb;
  seen_init(&sa);
  seen_init(&sb);
  sa.delay_ms = 700;
  f->cfg.lease_ms = 200;

  struct bus *a = new_bus(f), *b = new_bus(f);
  assert_int_equal(bus_subscribe(a, "mailer", NULL, on_event, NULL, &sa), 0);
  assert_int_equal(bus_subscribe(b, "mailer", NULL, on_event, NULL, &sb), 0);
  assert_int_equal(bus_start(a), 0);
  append(f, "orders.created", "first", 1, NULL);
  bus_notify(a);
  assert_true(wait_seen(&sa, 1, 3000)); /* a is inside its slow handler */
  assert_int_equal(bus_start(b), 0);
  assert_true(wait_seen(&sb, 1, 3000)); /* b took the expired lease */
  assert_string_equal(sb.ids[0], sa.ids[0]);
  sleep_ms(800); /* a's handler returns; its commit must be refused */
  append_many(f, "orders.created", 9, 3);
  bus_notify(a);
  bus_notify(b);
  assert_true(wait_seen(&sb, 10, 3000));
  sleep_ms(40);
  assert_int_equal(seen_count(&sa), 1);
  assert_int_equal(seen_count(&sb), 10);

  struct db *db = admin(f);
  struct bus_subscription_stats *st = NULL;
  long long last = 0;
  assert_int_equal(bus_stats_read(db, &last, &st), 1);
  assert_int_equal(last, 10);
  assert_int_equal(st[0].offset, 10);
  assert_int_equal(st[0].delivered, 10); /* a's ack was never recorded */
  free(st);
  db_close(db);
  bus_free(a);
  bus_free(b);
  seen_destroy(&sa);
  seen_destroy(&sb);
}

/* The relay crashed after its log commit and before its outbox delete:
 * the log already holds the first 6 of 10 outbox rows. The next relay moves
 * all 10 again; the log keeps 10 (no duplicates) in order, and the
 * subscription (which existed before) gets each once. */
static void test_relay_crash_between_steps(void **state) {
  struct fixture *f = *state;
  struct seen s;
  char ids[10][BUS_EVENT_ID_MAX], key[8];
  seen_init(&s);

  /* The subscription exists from offset 0 on (a previous run). */
  struct bus *b = new_bus(f);
  struct db *db = admin(f);
  sqlite3_stmt *st = db_stmt(db, sql_sub_create);
  db_bind_text(st, 1, "mailer");
  assert_int_equal(sqlite3_step(st), SQLITE_DONE);
  sqlite3_reset(st);

  for (int i = 0; i < 10; i++) {
    snprintf(key, sizeof key, "c%d", i);
    append(f, "orders.created", key, 1, ids[i]);
  }
  /* Step 1 of a relay that "crashed": copy the first 6 into the log. */
  sqlite3_stmt *rd = db_stmt(f->orders, sql_outbox_rows);
  db_bind_int(rd, 1, 6);
  assert_int_equal(db_begin(db), SQLITE_OK);
  while (sqlite3_step(rd) == SQLITE_ROW) {
    st = db_stmt(db, sql_log_preinsert);
    for (int c = 0; c < 4; c++)
      db_bind_text(st, c + 1, db_col_text(rd, c));
    db_bind_int(st, 5, sqlite3_column_int64(rd, 4));
    db_bind_int(st, 6, now_ms());
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_reset(st);
  }
  sqlite3_reset(rd);
  assert_int_equal(db_commit(db), SQLITE_OK);
  assert_int_equal(query1(db, sql_log_count), 6);
  assert_int_equal(query1(f->orders, sql_outbox_count), 10);

  assert_int_equal(bus_subscribe(b, "mailer", NULL, on_event, NULL, &s), 0);
  assert_int_equal(bus_start(b), 0);
  assert_true(wait_seen(&s, 10, 3000));
  sleep_ms(40);
  assert_int_equal(seen_count(&s), 10);
  assert_int_equal(query1(f->orders, sql_outbox_count), 0);
  st = db_stmt(db, sql_log_count);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(st, 0), 10);
  assert_int_equal(sqlite3_column_int(st, 1), 10);
  sqlite3_reset(st);
  for (int i = 0; i < 10; i++)
    assert_string_equal(s.ids[i], ids[i]);
  db_close(db);
  bus_free(b);
  seen_destroy(&s);
}

/* Relay only (no subscription, no tail): events still reach the log,
 * the outbox empties, readiness is up and the gauges say so. */
static void test_relay_only(void **state) {
  struct fixture *f = *state;
  struct bus *b = new_bus(f);
  assert_int_equal(bus_start(b), 0);
  append_many(f, "orders.created", 30, 10);
  bus_notify(b);
  struct db *db = admin(f);
  for (int i = 0; i < 500 && query1(db, sql_log_count) < 30; i++)
    sleep_ms(5);
  assert_int_equal(query1(db, sql_log_count), 30);
  assert_int_equal(query1(f->orders, sql_outbox_count), 0);
  struct health_goal g = {b, HEALTH_UP, ""};
  assert_true(wait_for(health_is, &g, 2000));
  sleep_ms(250); /* one statistics refresh */
  struct strbuf sb;
  strbuf_init(&sb, 0);
  bus_write_metrics(b, &sb);
  strbuf_putc(&sb, '\0');
  assert_non_null(strstr(sb.data, "strata_bus_outbox_backlog 0\n"));
  assert_non_null(strstr(sb.data, "strata_bus_log_last_seq 30\n"));
  assert_null(strstr(sb.data, "subscription="));
  strbuf_free(&sb);
  db_close(db);
  bus_stop(b);
  assert_int_equal(bus_health(b, g.detail, sizeof g.detail), HEALTH_DOWN);
  assert_string_equal(g.detail, "bus not running");
  bus_free(b);
}

/* A stuck subscription (every attempt fails, long backoff) degrades
 * readiness once its lag passes backlog_degraded, and the lag gauges show it. */
static void test_lag_degrades(void **state) {
  struct fixture *f = *state;
  struct seen s;
  seen_init(&s);
  s.fail_key = "k0";
  s.fail_times = -1;
  f->cfg.backlog_degraded = 5;
  f->cfg.backoff_base_ms = 10000;
  f->cfg.backoff_cap_ms = 10000;

  struct bus *b = new_bus(f);
  assert_int_equal(bus_subscribe(b, "stuck", NULL, on_event, NULL, &s), 0);
  assert_int_equal(bus_start(b), 0);
  append_many(f, "orders.created", 10, 10);
  bus_notify(b);
  struct health_goal g = {b, HEALTH_DEGRADED, ""};
  assert_true(wait_for(health_is, &g, 3000));
  assert_non_null(strstr(g.detail, "subscription stuck lag 10 > 5"));
  struct strbuf sb;
  strbuf_init(&sb, 0);
  bus_write_metrics(b, &sb);
  strbuf_putc(&sb, '\0');
  assert_non_null(strstr(sb.data, "strata_bus_subscription_lag{subscription=\"stuck\"} 10\n"));
  assert_non_null(strstr(sb.data, "strata_bus_delivery_lag_seconds{subscription=\"stuck\"} "));
  strbuf_free(&sb);
  assert_true(seen_count(&s) <= 2); /* waiting for its retry, not spinning */
  bus_free(b);
  seen_destroy(&s);
}

/* 2000 events: 2000 deliveries, no duplicate, no dead letter. */
static void test_many_events(void **state) {
  struct fixture *f = *state;
  struct seen *s = calloc(1, sizeof *s);
  assert_non_null(s);
  seen_init(s);

  struct bus *b = new_bus(f);
  assert_int_equal(bus_subscribe(b, "bulk", NULL, on_event, NULL, s), 0);
  assert_int_equal(bus_start(b), 0);
  for (int i = 0; i < 20; i++) {
    append_many(f, "orders.created", 100, 100);
    bus_notify(b);
  }
  assert_true(wait_seen(s, 2000, 10000));
  sleep_ms(40);
  assert_int_equal(seen_count(s), 2000);
  for (int i = 1; i < 2000; i++)
    assert_true(s->seqs[i] == s->seqs[i - 1] + 1);
  struct db *db = admin(f);
  struct dead_walk w = {0};
  assert_int_equal(bus_dead_letters_list(db, NULL, on_dead, &w), 0);
  struct bus_subscription_stats *st = NULL;
  long long last = 0;
  assert_int_equal(bus_stats_read(db, &last, &st), 1);
  assert_int_equal(last, 2000);
  assert_int_equal(st[0].offset, 2000);
  assert_int_equal(st[0].delivered, 2000);
  assert_int_equal(st[0].redelivered, 0);
  free(st);
  db_close(db);
  bus_free(b);
  seen_destroy(s);
  free(s);
}

static int noop_handler(const struct bus_event *ev, void *ctx) {
  (void)ev;
  (void)ctx;
  return 0;
}

static void test_registration_rules(void **state) {
  struct fixture *f = *state;
  struct seen s;
  char why[256];
  seen_init(&s);

  assert_null(bus_new("/nonexistent/dir/deeper", NULL, why, sizeof why));
  assert_true(why[0] != '\0');

  struct bus *b = new_bus(f);
  const char *const bad_glob[] = {"orders*", NULL};
  const char *const bad_mid[] = {"*.created", NULL};
  const char *const ok[] = {"*", "orders.*", "users.created", NULL};
  assert_int_equal(bus_subscribe(b, "", NULL, noop_handler, NULL, NULL), STRATA_EVALIDATION);
  assert_int_equal(bus_subscribe(b, "has space", NULL, noop_handler, NULL, NULL),
                   STRATA_EVALIDATION);
  assert_int_equal(bus_subscribe(b, "a", bad_glob, noop_handler, NULL, NULL), STRATA_EVALIDATION);
  assert_int_equal(bus_subscribe(b, "a", bad_mid, noop_handler, NULL, NULL), STRATA_EVALIDATION);
  assert_int_equal(bus_subscribe(b, "a", NULL, NULL, NULL, NULL), STRATA_EVALIDATION);
  assert_int_equal(bus_subscribe(b, "a", ok, noop_handler, on_cleanup, &s), 0);
  assert_int_equal(bus_subscribe(b, "a", ok, noop_handler, NULL, NULL), STRATA_ECONFLICT);
  assert_int_equal(bus_tail(b, bad_glob, noop_handler, NULL), STRATA_EVALIDATION);
  assert_null(bus_loop(b));
  bus_notify(b); /* before start: a no-op */
  bus_free(b);   /* never started: cleanup runs here, on this thread */
  assert_int_equal(s.cleanups, 1);
  assert_false(s.cleanup_on_other_thread);

  b = new_bus(f);
  assert_int_equal(bus_start(b), 0);
  assert_non_null(bus_loop(b));
  assert_int_equal(bus_start(b), STRATA_ECONFLICT);
  assert_int_equal(bus_subscribe(b, "late", NULL, noop_handler, NULL, NULL), STRATA_ECONFLICT);
  assert_int_equal(bus_tail(b, NULL, noop_handler, NULL), STRATA_ECONFLICT);
  assert_int_equal(bus_add_outbox(b, f->orders_path), STRATA_ECONFLICT);
  bus_stop(b);
  assert_null(bus_loop(b));
  bus_stop(b);   /* idempotent */
  bus_notify(b); /* after stop: a no-op */
  bus_free(b);
  bus_free(NULL);
  seen_destroy(&s);

  struct db *db = NULL;
  assert_int_equal(bus_admin_open("/nonexistent", &db, why, sizeof why), -1);
  assert_non_null(strstr(why, "does not exist"));
}

/* Runs `strata events ARGS` with stdout and stderr captured into out
 * (NUL-terminated); returns the exit status. */
static int run_cli(char *out, size_t out_len, int argc, char **argv) {
  char path[] = "/tmp/strata-cli-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  fflush(stdout);
  fflush(stderr);
  int saved_out = dup(STDOUT_FILENO), saved_err = dup(STDERR_FILENO);
  assert_true(dup2(fd, STDOUT_FILENO) >= 0);
  assert_true(dup2(fd, STDERR_FILENO) >= 0);
  int rc = cli_events(argc, argv);
  fflush(stdout);
  fflush(stderr);
  dup2(saved_out, STDOUT_FILENO);
  dup2(saved_err, STDERR_FILENO);
  close(saved_out);
  close(saved_err);
  ssize_t n = pread(fd, out, out_len - 1, 0);
  out[n > 0 ? n : 0] = '\0';
  close(fd);
  unlink(path);
  return rc;
}

/* The operator commands end to end: dead letters as JSON lines, replay by
 * id, stats as one JSON document, and the failures' exit statuses. */
static void test_cli_events(void **state) {
  struct fixture *f = *state;
  struct seen s;
  char out[8192], id_text[32];
  seen_init(&s);
  s.fail_key = "poison";
  s.fail_times = -1;
  f->cfg.max_attempts = 1;

  struct bus *b = new_bus(f);
  assert_int_equal(bus_subscribe(b, "mailer", NULL, on_event, NULL, &s), 0);
  assert_int_equal(bus_start(b), 0);
  append(f, "orders.created", "poison", 1, NULL);
  append(f, "orders.created", "fine", 1, NULL);
  bus_notify(b);
  assert_true(wait_seen(&s, 2, 3000));
  bus_stop(b);

  char *dead[] = {"dead", "--data", f->dir, "--subscription", "mailer"};
  assert_int_equal(run_cli(out, sizeof out, 5, dead), 0);
  json_error_t err;
  json_t *line = json_loads(out, JSON_DISABLE_EOF_CHECK, &err);
  assert_non_null(line);
  assert_string_equal(json_string_value(json_object_get(line, "key")), "poison");
  assert_string_equal(json_string_value(json_object_get(line, "error")),
                      "refused poison (attempt 1)");
  assert_true(json_is_object(json_object_get(line, "payload"))); /* embedded, not a string */
  assert_int_equal(json_integer_value(json_object_get(line, "attempts")), 1);
  snprintf(id_text, sizeof id_text, "%lld",
           (long long)json_integer_value(json_object_get(line, "id")));
  json_decref(line);
  assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out)); /* one line */

  char *missing[] = {"replay", "--data", f->dir, "--id", "999"};
  assert_int_equal(run_cli(out, sizeof out, 5, missing), 1);
  assert_string_equal(out, "strata events replay: no dead letter with id 999\n");
  char *both[] = {"replay", "--data", f->dir, "--all", "--id", "1"};
  assert_int_equal(run_cli(out, sizeof out, 6, both), 2);
  assert_non_null(strstr(out, "replay needs exactly one of --all and --id N\nusage:"));
  char *bad_id[] = {"replay", "--data", f->dir, "--id", "-1"};
  assert_int_equal(run_cli(out, sizeof out, 5, bad_id), 2);
  assert_non_null(strstr(out, "--id \"-1\" is not a dead letter id"));
  char *nodir[] = {"stats", "--data", "/nonexistent-strata"};
  assert_int_equal(run_cli(out, sizeof out, 3, nodir), 1);
  assert_string_equal(out, "strata events stats: /nonexistent-strata/events.db does not exist "
                           "(is --data the directory strata serve uses?)\n");
  char *replay[] = {"replay", "--data", f->dir, "--id", id_text};
  assert_int_equal(run_cli(out, sizeof out, 5, replay), 0);
  assert_string_equal(out, "replayed 1 dead letter\n");

  char *stats[] = {"stats", "--data", f->dir};
  assert_int_equal(run_cli(out, sizeof out, 3, stats), 0);
  json_t *doc = json_loads(out, 0, &err);
  assert_non_null(doc);
  assert_int_equal(json_integer_value(json_object_get(doc, "log_last_seq")), 2);
  json_t *sub = json_array_get(json_object_get(doc, "subscriptions"), 0);
  assert_string_equal(json_string_value(json_object_get(sub, "name")), "mailer");
  assert_int_equal(json_integer_value(json_object_get(sub, "offset")), 2);
  assert_int_equal(json_integer_value(json_object_get(sub, "lag")), 0);
  assert_int_equal(json_integer_value(json_object_get(sub, "dead_letters")), 0);
  assert_int_equal(json_integer_value(json_object_get(sub, "replays_pending")), 1);
  assert_true(json_is_null(json_object_get(sub, "lease_owner"))); /* released at stop */
  json_decref(doc);
  bus_free(b);
  seen_destroy(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_event_ids),
      cmocka_unit_test(test_backoff_full_jitter),
      cmocka_unit_test_setup_teardown(test_outbox_append_contract, setup, teardown),
      cmocka_unit_test_setup_teardown(test_inbox_dedupe, setup, teardown),
      cmocka_unit_test_setup_teardown(test_committed_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_order_and_types, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retry_then_success, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dead_letter_and_replay, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replay_fails_again, setup, teardown),
      cmocka_unit_test_setup_teardown(test_two_buses, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lease_expiry_takeover, setup, teardown),
      cmocka_unit_test_setup_teardown(test_relay_crash_between_steps, setup, teardown),
      cmocka_unit_test_setup_teardown(test_relay_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lag_degrades, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_events, setup, teardown),
      cmocka_unit_test_setup_teardown(test_registration_rules, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_events, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
