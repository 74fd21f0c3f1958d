/* Types shared by the files of the embedded bus (bus.c: lifecycle and the
 * relay; deliver.c: subscriptions and tails; observe.c: metrics and health;
 * admin.c: the operator commands). Not part of the seam: business code
 * includes bus/bus.h only.
 *
 * Ownership by thread: fields marked "bus thread" are touched only by the
 * bus thread once bus_start() returned (and by the owner before/after);
 * fields marked "stats_lock" are published by the bus thread for the
 * metrics collector and the readiness check, which run on HTTP workers. */
#ifndef STRATA_BUS_INTERNAL_H
#define STRATA_BUS_INTERNAL_H

#include <pthread.h>
#include <uv.h>

#include "bus/bus.h"

/* Rows read per relay step, per delivery batch and per tail step. */
#define BUS_BATCH 256
/* A delivery batch stops after this long so the offset is committed often
 * and bus_stop() is never kept waiting. */
#define BUS_BATCH_MS 250

/* One registered domain database. */
struct bus_outbox {
  struct db *db;       /* bus thread */
  long long backlog;   /* bus thread: rows waiting, as last measured */
  int failing;         /* bus thread: last relay step failed (logged once) */
};

struct bus_sub {
  char name[BUS_NAME_MAX + 1];
  char **types; /* NULL = every type */
  bus_handler_cb handler;
  void (*cleanup)(void *ctx);
  void *ctx;

  /* bus thread */
  int held;                /* this process holds the lease */
  long long lease_until;   /* ms; our view of our own lease */
  long long wait_until;    /* ms; head event waits for its retry until then */
  long long known_offset;  /* offset as last read or written */

  /* stats_lock */
  long long pub_offset, pub_lag, pub_dead, pub_retrying, pub_lag_ms;
  /* process-local counters (relaxed atomics) */
  uint64_t delivered, redelivered;
};

struct bus_tail {
  char **types;
  bus_handler_cb handler;
  void *ctx;
  long long offset; /* bus thread: last log seq seen */
};

struct bus {
  struct bus_config cfg;
  char data_dir[1024];
  char events_path[1100];
  char owner[96]; /* lease owner id: host:pid:random */
  struct db *events;

  struct bus_outbox *outboxes;
  size_t n_outboxes;
  struct bus_sub **subs;
  size_t n_subs;
  struct bus_tail **tails;
  size_t n_tails;

  uv_loop_t loop;
  uv_thread_t thread;
  uv_timer_t timer;
  uv_async_t notify_async, stop_async;
  pthread_mutex_t notify_lock; /* guards `running` against bus_notify() */
  int running;                 /* notify_lock: asyncs may be sent */
  int stopping;                /* relaxed atomic: batches end early */
  int started, stopped, cleaned;
  uintptr_t observer_id;       /* key in observe.c's registry, 0 = none */

  /* bus thread: the current pump's events.db health */
  int events_failed;
  char events_error[200];
  long long last_seq;
  long long stats_at;

  /* stats_lock */
  pthread_mutex_t stats_lock;
  long long pub_backlog, pub_last_seq;
  int pub_running;
  char pub_events_error[200];  /* "" when events.db works */
  char pub_outbox_error[200];  /* "" when every outbox relays */
};

/* A row read from the log, redeliver or outbox table; strings live in the
 * same allocation. */
struct bus_row {
  long long seq;        /* log seq (outbox: outbox seq) */
  long long id;         /* redeliver id; 0 for log rows */
  long long created_at;
  const char *event_id, *type, *key, *payload;
};

/* Copies the current row of st: columns seq, event_id, type, key, payload,
 * created_at starting at column first. NULL when out of memory. */
struct bus_row *bus_row_read(sqlite3_stmt *st, int first);

/* Records an events.db failure for this pump (readiness "down"), logging it
 * once per change of message. */
void bus_events_failed(struct bus *b, const char *what);

int bus_types_copy(const char *const types[], char ***out);
void bus_types_free(char **types);
int bus_type_matches(char *const *types, const char *type);

/* deliver.c: one pump of a subscription / tail. Each returns 1 when it
 * stopped with work left (pump again at once), 0 otherwise, and lowers
 * *wake_at to when a waiting retry becomes due. */
int bus_sub_pump(struct bus *b, struct bus_sub *s, long long last_seq, int replays,
                 long long *wake_at);
int bus_tail_pump(struct bus *b, struct bus_tail *t, long long last_seq);
/* Gives up the leases this process holds (bus_stop). */
void bus_sub_release(struct bus *b, struct bus_sub *s);

/* observe.c */
void bus_stats_refresh(struct bus *b, long long now, int force);
int bus_observer_add(struct bus *b);
void bus_observer_remove(struct bus *b);

#endif
