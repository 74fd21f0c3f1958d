/* The producer and consumer halves of the bus that run on the caller's own
 * connection: the outbox append (in the business transaction) and the
 * inbox mark (in the consumer's transaction), plus event ids and the bus
 * configuration helpers. Nothing here touches events.db or the bus thread;
 * see bus.h for the contracts. */
#include "bus/bus.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "core/error.h"
#include "observe/trace.h"

const char *const BUS_OUTBOX_SQL = BUS_OUTBOX_SCHEMA;
const char *const BUS_INBOX_SQL = BUS_INBOX_SCHEMA;

/* json(?4) both validates and minifies the payload: a malformed payload is
 * refused here, in the producer's transaction, rather than found by every
 * consumer later. */
static const char sql_outbox_insert[] =
    "INSERT INTO outbox (event_id, type, key, payload, created_at)"
    " VALUES (?1, ?2, ?3, json(?4), ?5)";
static const char sql_inbox_insert[] =
    "INSERT OR IGNORE INTO processed_events (subscription, event_id, processed_at)"
    " VALUES (?1, ?2, ?3)";

void bus_event_id_new(char out[BUS_EVENT_ID_MAX]) {
  uint64_t r = 0;
  /* getrandom, not trace_random64(): that generator's state is per thread
   * and a fork()ed child would repeat its parent's sequence, and two equal
   * ids would make the log's INSERT OR IGNORE drop an event. */
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
    r = trace_random64();
  unsigned long long ms = (unsigned long long)db_now_ms() & 0xffffffffffffULL;
  snprintf(out, BUS_EVENT_ID_MAX, "evt_%012llx%016llx", ms, (unsigned long long)r);
}

/* An event type is a dotted name chosen by code, never by a client, so a bad
 * one is a programming error: refuse it loudly rather than store it. */
static int type_valid(const char *type) {
  size_t n = type ? strlen(type) : 0;
  if (n == 0 || n > BUS_TYPE_MAX)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (type[i] == '*' || (unsigned char)type[i] <= ' ')
      return 0;
  return 1;
}

int bus_outbox_append(struct db *db, const char *type, const char *key, const char *payload_json,
                      char event_id[BUS_EVENT_ID_MAX]) {
  char id[BUS_EVENT_ID_MAX];

  if (!db || !type_valid(type) || !key || strlen(key) > BUS_KEY_MAX || !payload_json)
    return STRATA_EINTERNAL;
  /* Outside a transaction the row would commit on its own, and the whole
   * point is that it commits with the business change or not at all. */
  if (sqlite3_get_autocommit(db_handle(db)))
    return STRATA_EINTERNAL;
  sqlite3_stmt *st = db_stmt(db, sql_outbox_insert);
  if (!st)
    return STRATA_EINTERNAL;
  bus_event_id_new(id);
  db_bind_text(st, 1, id);
  db_bind_text(st, 2, type);
  db_bind_text(st, 3, key);
  db_bind_text(st, 4, payload_json);
  db_bind_int(st, 5, db_now_ms());
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return STRATA_EINTERNAL;
  if (event_id)
    memcpy(event_id, id, sizeof id);
  return 0;
}

int bus_inbox_mark(struct db *db, const char *subscription, const char *event_id) {
  if (!db || !subscription || !*subscription || !event_id || !*event_id)
    return STRATA_EINTERNAL;
  if (sqlite3_get_autocommit(db_handle(db)))
    return STRATA_EINTERNAL;
  sqlite3_stmt *st = db_stmt(db, sql_inbox_insert);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, subscription);
  db_bind_text(st, 2, event_id);
  db_bind_int(st, 3, db_now_ms());
  int rc = sqlite3_step(st);
  int changed = sqlite3_changes(db_handle(db));
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return STRATA_EINTERNAL;
  return changed == 1 ? 1 : 0;
}

void bus_config_defaults(struct bus_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->max_attempts = 8;
  cfg->backoff_base_ms = 100;
  cfg->backoff_cap_ms = 30000;
  cfg->poll_interval_ms = 20;
  cfg->backlog_degraded = 1000;
  cfg->lease_ms = 5000;
  cfg->sync = DB_SYNC_FULL;
}

void bus_config_from(const struct strata_config *sc, struct bus_config *cfg) {
  bus_config_defaults(cfg);
  cfg->max_attempts = sc->bus.max_attempts;
  cfg->backoff_base_ms = sc->bus.backoff_base_ms;
  cfg->backoff_cap_ms = sc->bus.backoff_cap_ms;
  cfg->poll_interval_ms = sc->bus.poll_interval_ms;
  cfg->backlog_degraded = sc->bus.backlog_degraded;
  cfg->sync = sc->storage.synchronous;
}

uint64_t bus_backoff_delay_ms(uint32_t base_ms, uint32_t cap_ms, uint32_t failures, uint64_t rnd) {
  uint64_t bound = base_ms;
  /* base * 2^(failures-1), saturating at cap; 40 doublings pass any cap. */
  for (uint32_t i = 1; i < failures && i < 40 && bound < cap_ms; i++)
    bound *= 2;
  if (bound > cap_ms)
    bound = cap_ms;
  return rnd % (bound + 1);
}
