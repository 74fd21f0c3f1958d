/* The bus seam: durable events between domains, embedded implementation.
 *
 * A domain writes an event into its own database's outbox table inside the
 * same transaction as the business change (bus_outbox_append), so the event
 * exists if and only if the change committed. A relay on the bus thread
 * moves committed outbox rows into one durable log, <data_dir>/events.db,
 * shared by every strata process of the host that uses the same data
 * directory. Durable subscriptions read the log in order with a stored
 * offset, retries with backoff and dead letters; tails read it best effort
 * from "now" in every process (cache invalidation).
 *
 *   domain tx: business rows + outbox row --COMMIT--> bus_notify()
 *        |                                              |
 *        v  relay (bus thread)                          v
 *   outbox ---INSERT OR IGNORE into log, then DELETE---> log (events.db)
 *                                                        |
 *          +---------------------------------------------+-----------+
 *          v  one process at a time (lease)                          v  every process
 *   subscription: offset, retries, dead letters               tail: in-memory offset
 *
 * Guarantees: no committed event is lost (the outbox row is only deleted
 * after the log row is committed); no event is duplicated in the log
 * (event_id is UNIQUE); a subscription delivers at least once, in log order,
 * and moves its offset only after its handler returned 0, so consumers must
 * be idempotent (bus_inbox_mark). One host only: events.db relies on SQLite
 * file locking; several hosts need the broker implementation (RabbitMQ).
 * The full story is in docs/events.md.
 *
 * Threads: bus_outbox_append() and bus_inbox_mark() run on the caller's
 * thread with the caller's connection. bus_notify() may be called from any
 * thread. Everything else is called by the owner (serve, tests) before
 * bus_start() or after bus_stop(); handlers and cleanups run on the bus's
 * own thread and loop, never on an HTTP worker. */
#ifndef STRATA_BUS_BUS_H
#define STRATA_BUS_BUS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/config.h"
#include "core/strbuf.h"
#include "observe/health.h"
#include "store/db.h"

/* --- producer side: the outbox, in a domain's database ------------------ */

/* Migration SQL a domain adds to its own migration list (one version step).
 * BUS_OUTBOX_SCHEMA is the same text as a literal, for static initializers
 * of struct db_migration arrays. */
#define BUS_OUTBOX_SCHEMA                                                          \
  "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"                    \
  " event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, key TEXT NOT NULL,"         \
  " payload TEXT NOT NULL, created_at INTEGER NOT NULL);"
extern const char *const BUS_OUTBOX_SQL;

/* "evt_" + 12 hex digits of milliseconds + 16 hex random digits + NUL = 33;
 * buffers are 40 bytes to leave room. */
#define BUS_EVENT_ID_MAX 40
/* Longest event type, key and subscription name accepted (bytes). */
#define BUS_TYPE_MAX 128
#define BUS_KEY_MAX 256
#define BUS_NAME_MAX 64

/* Writes a new event id: time-ordered at millisecond resolution, and unique
 * across processes (64 bits from getrandom(), not from a per-thread PRNG
 * that fork() would duplicate). */
void bus_event_id_new(char out[BUS_EVENT_ID_MAX]);

/* Inserts one event into db's outbox INSIDE the caller's open transaction
 * (it never begins, commits or rolls back). type ("orders.created", at most
 * BUS_TYPE_MAX bytes), key (what the event is about, e.g. an order id; may
 * be "") and payload_json (a JSON text, stored minified; invalid JSON is
 * refused) are copied. The new id is written into event_id when it is not
 * NULL. Returns 0; STRATA_EINTERNAL when no transaction is open, an argument
 * is missing or invalid, or SQLite fails. After the COMMIT the caller should
 * call bus_notify() so the relay moves the row at once instead of at its
 * next poll. */
int bus_outbox_append(struct db *db, const char *type, const char *key, const char *payload_json,
                      char event_id[BUS_EVENT_ID_MAX]);

/* --- consumer side: idempotency, in the consumer's database ------------- */

#define BUS_INBOX_SCHEMA                                                           \
  "CREATE TABLE processed_events (subscription TEXT NOT NULL,"                     \
  " event_id TEXT NOT NULL, processed_at INTEGER NOT NULL,"                        \
  " PRIMARY KEY (subscription, event_id)) WITHOUT ROWID;"
extern const char *const BUS_INBOX_SQL;

/* Records that subscription processed event_id, inside the caller's open
 * transaction — the same one that applies the event's side effect, so the
 * two commit or roll back together. Returns 1 when newly recorded (apply
 * the effect), 0 when it was already recorded (a duplicate delivery: skip
 * the effect, still return 0 from the handler), or STRATA_EINTERNAL (no
 * transaction open, bad argument, SQLite error). */
int bus_inbox_mark(struct db *db, const char *subscription, const char *event_id);

/* --- the runtime ---------------------------------------------------------- */

struct bus_config {
  uint32_t max_attempts;     /* deliveries of one event before it is dead-lettered */
  uint32_t backoff_base_ms;  /* first retry waits up to this long */
  uint32_t backoff_cap_ms;   /* no retry waits longer than this */
  uint32_t poll_interval_ms; /* relay and log poll period (bus_notify is immediate) */
  uint32_t backlog_degraded; /* readiness degraded above this backlog or lag */
  uint32_t lease_ms;         /* subscription lease; not in the config file (5 s) */
  enum db_sync sync;         /* events.db durability (storage.synchronous) */
};

/* Fills cfg with the documented defaults (8, 100 ms, 30 s, 20 ms, 1000, 5 s,
 * DB_SYNC_FULL). */
void bus_config_defaults(struct bus_config *cfg);
/* Fills cfg from the bus.* and storage.synchronous keys of a loaded config. */
void bus_config_from(const struct strata_config *sc, struct bus_config *cfg);

/* The wait before retry number `failures` (failures >= 1 handler failures
 * so far): uniform in [0, min(cap_ms, base_ms * 2^(failures-1))] drawn from
 * rnd ("full jitter"). Exposed for tests. */
uint64_t bus_backoff_delay_ms(uint32_t base_ms, uint32_t cap_ms, uint32_t failures, uint64_t rnd);

/* An event as handed to a handler. Every pointer is valid only during the
 * call; copy what must outlive it. */
struct bus_event {
  long long seq;            /* position in the log (a replayed dead letter keeps its own) */
  const char *event_id;     /* unique id: the idempotency key */
  const char *type;
  const char *key;
  const char *payload;      /* JSON text */
  long long created_at;     /* ms since the epoch, when the producer committed */
  int attempt;              /* 1 for the first delivery, 2.. for retries */
  const char *subscription; /* the subscription delivering it; NULL for a tail */
};

/* A handler applies ev. Returns 0 when applied (ack: the offset moves past
 * it), < 0 (a STRATA_E*) when it failed (retried after a backoff, dead-
 * lettered after max_attempts). Runs on the bus thread; it may block on its
 * own I/O (the bus thread does nothing else meanwhile) but should not take
 * longer than the lease (5 s), or another process may deliver the same event
 * too. For tails the return value is ignored. */
typedef int (*bus_handler_cb)(const struct bus_event *ev, void *ctx);

/* Called by a failing handler before it returns < 0: the text (truncated to
 * 255 bytes) is stored as the retry's last_error and, at the end, the dead
 * letter's error. Without it the error is the STRATA_E* code's message. */
void bus_event_set_error(const struct bus_event *ev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

struct bus;

/* Creates a bus on <data_dir>/events.db: opens it and applies its
 * migrations now, so a bad data directory fails at start-up. cfg NULL means
 * bus_config_defaults(). Returns NULL with a reason in why. The bus owns no
 * thread until bus_start(). */
struct bus *bus_new(const char *data_dir, const struct bus_config *cfg, char *why, size_t why_len);

/* Registers a domain database (path) whose outbox this bus relays. Opens a
 * connection for the bus thread now (the outbox table itself may be created
 * later by the domain's migrations). Before bus_start() only. Returns 0,
 * STRATA_ECONFLICT after start, STRATA_EINTERNAL when it cannot be opened. */
int bus_add_outbox(struct bus *b, const char *db_path);

/* Adds a durable subscription: handler(ev, ctx) gets every event whose type
 * matches types — a NULL-terminated list of exact types, "prefix.*" or "*"
 * (types NULL means every event) — in log order, at least once. A name seen
 * for the first time starts at the log's end (history is not replayed into
 * a new subscription); after that its offset lives in events.db. The name
 * ([A-Za-z0-9._-], 1..BUS_NAME_MAX bytes) identifies its offset in
 * events.db: processes subscribing with the same name compete (one delivers
 * at a time). cleanup(ctx), when not NULL, runs once on the bus thread at
 * bus_stop() (or in bus_free() when the bus never started). Before
 * bus_start() only. Returns 0, STRATA_EVALIDATION for a bad name or type,
 * STRATA_ECONFLICT for a duplicate name or after start. */
int bus_subscribe(struct bus *b, const char *subscription, const char *const types[],
                  bus_handler_cb handler, void (*cleanup)(void *ctx), void *ctx);

/* Adds a non-durable tail: handler(ev, ctx) gets, best effort and in log
 * order, every matching event appended to the log after bus_start(), in
 * every process that has the tail (a broadcast, for cache invalidation).
 * The handler's result is ignored; nothing is stored. Before bus_start()
 * only. Returns 0, STRATA_EVALIDATION or STRATA_ECONFLICT. */
int bus_tail(struct bus *b, const char *const types[], bus_handler_cb handler, void *ctx);

/* Starts the bus thread, its loop, the relay and deliveries, and registers
 * the metrics collector and the "bus" readiness check. Returns 0 or
 * STRATA_EINTERNAL (events.db unusable, thread not created). */
int bus_start(struct bus *b);

/* Nudges the relay after an outbox commit. Any thread, any time (a no-op
 * before bus_start() and after bus_stop()); never blocks on the bus. */
void bus_notify(struct bus *b);

/* The bus thread's loop, for consumers that need libuv handles (timers,
 * group commit) on the thread their handler runs on. Use it only from a
 * handler or cleanup; NULL before bus_start() and after bus_stop(). Never
 * call bus_stop() or bus_free() from a handler (the thread would join
 * itself). */
uv_loop_t *bus_loop(struct bus *b);

/* Stops deliveries, releases the leases this process holds (so another
 * process takes over at once), runs every cleanup on the bus thread, closes
 * the loop and joins the thread. A handler already running finishes first.
 * Idempotent; NULL ok. */
void bus_stop(struct bus *b);

/* Stops the bus if needed and frees it. NULL ok. */
void bus_free(struct bus *b);

/* --- observability --------------------------------------------------------- */

/* Appends the strata_bus_* metric families (Prometheus text) to sb from
 * values the bus thread published; never touches SQLite. Thread-safe. The
 * collector bus_start() registers calls this. */
void bus_write_metrics(struct bus *b, struct strbuf *sb);

/* The "bus" readiness check: down when events.db cannot be used or the bus
 * is not running, degraded when the outbox backlog or a subscription's lag
 * exceeds backlog_degraded or there are dead letters, up otherwise; detail
 * says why. Thread-safe, no SQLite. */
enum health_status bus_health(struct bus *b, char *detail, size_t detail_len);

/* --- operator commands (strata events) on <data_dir>/events.db ------------ */

/* Opens an existing events.db for the commands below (never creates one:
 * a mistyped --data must not look like an empty bus). Returns 0 or -1 with a
 * reason in why. Close with db_close(). */
int bus_admin_open(const char *data_dir, struct db **out, char *why, size_t why_len);

struct bus_dead_letter {
  long long id; /* dead_letters.id: what `replay --id` takes */
  const char *subscription;
  long long seq;
  const char *event_id, *type, *key, *payload;
  long long created_at; /* ms */
  int attempts;
  const char *error;
  long long failed_at; /* ms */
};

/* Calls cb for each dead letter (of subscription, or all when NULL), oldest
 * first; cb returning non-zero stops the walk. Returns the number visited
 * or STRATA_EINTERNAL. */
int bus_dead_letters_list(struct db *db, const char *subscription,
                          int (*cb)(const struct bus_dead_letter *dl, void *ctx), void *ctx);

/* Moves dead letters back to their subscription (delivered again before new
 * log entries, with fresh attempts): the one with id (id > 0) or all of them
 * (id == 0), restricted to subscription when not NULL. One transaction.
 * Returns how many moved (0 when none matched) or STRATA_EINTERNAL. */
long long bus_dead_letters_replay(struct db *db, const char *subscription, long long id);

struct bus_subscription_stats {
  char name[BUS_NAME_MAX + 1];
  long long offset;
  long long lag; /* log last seq - offset */
  long long delivered, redelivered; /* totals over every process */
  long long dead_letters, retrying, replays_pending;
  char lease_owner[96];
  long long lease_until; /* ms; in the past when nobody holds it */
};

/* Reads every subscription row of events.db into *out (malloc'd array,
 * caller frees) and the log's last seq. Returns the count or
 * STRATA_EINTERNAL. */
int bus_stats_read(struct db *db, long long *log_last_seq, struct bus_subscription_stats **out);

#endif
