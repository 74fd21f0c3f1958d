/* What the bus shows to /metrics and /health/ready.
 *
 * The bus thread measures (bus_stats_refresh(), at most every 200 ms, from
 * the pump) and publishes plain numbers under stats_lock; the collector and
 * the readiness check run on HTTP workers and only read those numbers, so
 * a slow or broken events.db never slows a scrape or a health probe.
 *
 * The registrations with metrics and health cannot be undone (those
 * registries have no remove), so they carry a small integer id rather than
 * the bus pointer: bus_free() drops the id from the table below, and a
 * registration that outlives its bus reports nothing instead of reading
 * freed memory. */
#include "bus/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "observe/health.h"
#include "observe/metrics.h"

#define STATS_EVERY_MS 200

static const char sql_backlog[] = "SELECT coalesce(max(seq) - min(seq) + 1, 0) FROM outbox";
static const char sql_sub_offset[] = "SELECT \"offset\" FROM subscriptions WHERE name = ?1";
static const char sql_sub_dead[] = "SELECT count(*) FROM dead_letters WHERE subscription = ?1";
static const char sql_sub_retrying[] = "SELECT count(*) FROM retries WHERE subscription = ?1";
/* The oldest event the subscription has not delivered: its next log entry
 * or a pending replay (counted from the replay, not from the original). */
static const char sql_sub_oldest[] =
    "SELECT min(t) FROM (SELECT created_at AS t FROM log WHERE seq = (SELECT min(seq) FROM log"
    " WHERE seq > ?1) UNION ALL SELECT min(replayed_at) FROM redeliver WHERE subscription = ?2)";

/* Runs a one-value query; binds text as ?1 (when not NULL) and, for the
 * oldest-event query, num as ?1 and text as ?2. Clears *ok on failure. */
static long long scalar(struct db *db, const char *sql, const char *text, long long num,
                        int *ok) {
  sqlite3_stmt *st = db_stmt(db, sql);
  long long v = 0;
  if (!st) {
    *ok = 0;
    return 0;
  }
  if (sql == sql_sub_oldest) {
    db_bind_int(st, 1, num);
    db_bind_text(st, 2, text);
  } else if (text) {
    db_bind_text(st, 1, text);
  }
  if (sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  else
    *ok = 0;
  sqlite3_reset(st);
  return v;
}

void bus_stats_refresh(struct bus *b, long long now, int force) {
  if (!force && now - b->stats_at < STATS_EVERY_MS)
    return;
  b->stats_at = now;

  long long backlog = 0;
  char outbox_error[sizeof b->pub_outbox_error] = "";
  for (size_t i = 0; i < b->n_outboxes; i++) {
    struct bus_outbox *ox = &b->outboxes[i];
    int ok = 1;
    long long v = scalar(ox->db, sql_backlog, NULL, 0, &ok);
    ox->backlog = ok ? v : 0; /* no outbox table yet: nothing waits */
    backlog += ox->backlog;
    if (ox->failing && !outbox_error[0])
      snprintf(outbox_error, sizeof outbox_error, "outbox %s cannot be emptied",
               db_path(ox->db));
  }

  int all_ok = 1;
  for (size_t i = 0; i < b->n_subs; i++) {
    struct bus_sub *s = b->subs[i];
    int ok = 1;
    long long offset = scalar(b->events, sql_sub_offset, s->name, 0, &ok);
    long long dead = scalar(b->events, sql_sub_dead, s->name, 0, &ok);
    long long retrying = scalar(b->events, sql_sub_retrying, s->name, 0, &ok);
    long long oldest = scalar(b->events, sql_sub_oldest, s->name, offset, &ok);
    if (!ok) {
      all_ok = 0;
      continue;
    }
    pthread_mutex_lock(&b->stats_lock);
    s->pub_offset = offset;
    s->pub_lag = b->last_seq > offset ? b->last_seq - offset : 0;
    s->pub_dead = dead;
    s->pub_retrying = retrying;
    s->pub_lag_ms = oldest > 0 && now > oldest ? now - oldest : 0;
    pthread_mutex_unlock(&b->stats_lock);
  }
  if (!all_ok)
    bus_events_failed(b, "read statistics");

  pthread_mutex_lock(&b->stats_lock);
  b->pub_backlog = backlog;
  b->pub_last_seq = b->last_seq;
  snprintf(b->pub_events_error, sizeof b->pub_events_error, "%s",
           b->events_failed ? b->events_error : "");
  snprintf(b->pub_outbox_error, sizeof b->pub_outbox_error, "%s", outbox_error);
  pthread_mutex_unlock(&b->stats_lock);
}

/* --- metrics ------------------------------------------------------------------ */

void bus_write_metrics(struct bus *b, struct strbuf *sb) {
  pthread_mutex_lock(&b->stats_lock);
  metrics_family(sb, "strata_bus_outbox_backlog", "gauge",
         "Events committed in registered outboxes and not yet in the log, as last measured.");
  strbuf_printf(sb, "strata_bus_outbox_backlog %lld\n", b->pub_backlog);
  metrics_family(sb, "strata_bus_log_last_seq", "gauge", "Sequence number of the newest log entry.");
  strbuf_printf(sb, "strata_bus_log_last_seq %lld\n", b->pub_last_seq);
  if (b->n_subs == 0) {
    pthread_mutex_unlock(&b->stats_lock);
    return;
  }
  /* Names are [A-Za-z0-9._-] (bus_subscribe), so labels need no escaping. */
  metrics_family(sb, "strata_bus_subscription_lag", "gauge",
         "Log entries after the subscription's offset (last seq - offset).");
  for (size_t i = 0; i < b->n_subs; i++)
    strbuf_printf(sb, "strata_bus_subscription_lag{subscription=\"%s\"} %lld\n",
                  b->subs[i]->name, b->subs[i]->pub_lag);
  metrics_family(sb, "strata_bus_delivered_total", "counter",
         "Events this process delivered and its handler acknowledged.");
  for (size_t i = 0; i < b->n_subs; i++)
    strbuf_printf(sb, "strata_bus_delivered_total{subscription=\"%s\"} %" PRIu64 "\n",
                  b->subs[i]->name,
                  __atomic_load_n(&b->subs[i]->delivered, __ATOMIC_RELAXED));
  metrics_family(sb, "strata_bus_redelivered_total", "counter",
         "Deliveries by this process that were retries or replays of dead letters.");
  for (size_t i = 0; i < b->n_subs; i++)
    strbuf_printf(sb, "strata_bus_redelivered_total{subscription=\"%s\"} %" PRIu64 "\n",
                  b->subs[i]->name,
                  __atomic_load_n(&b->subs[i]->redelivered, __ATOMIC_RELAXED));
  metrics_family(sb, "strata_bus_dead_letters", "gauge",
         "Events of the subscription waiting in dead_letters.");
  for (size_t i = 0; i < b->n_subs; i++)
    strbuf_printf(sb, "strata_bus_dead_letters{subscription=\"%s\"} %lld\n", b->subs[i]->name,
                  b->subs[i]->pub_dead);
  metrics_family(sb, "strata_bus_delivery_lag_seconds", "gauge",
         "Age of the oldest event the subscription has not delivered; 0 when caught up.");
  for (size_t i = 0; i < b->n_subs; i++)
    strbuf_printf(sb, "strata_bus_delivery_lag_seconds{subscription=\"%s\"} %.3f\n",
                  b->subs[i]->name, (double)b->subs[i]->pub_lag_ms / 1000.0);
  pthread_mutex_unlock(&b->stats_lock);
}

/* --- readiness ------------------------------------------------------------------ */

enum health_status bus_health(struct bus *b, char *detail, size_t detail_len) {
  enum health_status st = HEALTH_UP;
  size_t used = 0;
  long long threshold = b->cfg.backlog_degraded;

#define SAY(...)                                                                         \
  do {                                                                                   \
    if (used < detail_len) {                                                             \
      int n_ = snprintf(detail + used, detail_len - used, "%s", used ? "; " : "");       \
      if (n_ > 0)                                                                        \
        used += (size_t)n_;                                                              \
    }                                                                                    \
    if (used < detail_len) {                                                             \
      int n_ = snprintf(detail + used, detail_len - used, __VA_ARGS__);                  \
      if (n_ > 0)                                                                        \
        used += (size_t)n_;                                                              \
    }                                                                                    \
  } while (0)

  if (detail_len)
    detail[0] = '\0';
  pthread_mutex_lock(&b->stats_lock);
  if (!b->pub_running) {
    SAY("bus not running");
    st = HEALTH_DOWN;
  } else if (b->pub_events_error[0]) {
    SAY("%s", b->pub_events_error);
    st = HEALTH_DOWN;
  }
  if (st != HEALTH_DOWN) {
    if (b->pub_backlog > threshold) {
      SAY("outbox backlog %lld > %lld", b->pub_backlog, threshold);
      st = HEALTH_DEGRADED;
    }
    if (b->pub_outbox_error[0]) {
      SAY("%s", b->pub_outbox_error);
      st = HEALTH_DEGRADED;
    }
    for (size_t i = 0; i < b->n_subs; i++) {
      const struct bus_sub *s = b->subs[i];
      if (s->pub_lag > threshold) {
        SAY("subscription %s lag %lld > %lld", s->name, s->pub_lag, threshold);
        st = HEALTH_DEGRADED;
      }
      if (s->pub_dead > 0) {
        SAY("subscription %s has %lld dead letters", s->name, s->pub_dead);
        st = HEALTH_DEGRADED;
      }
    }
  }
  pthread_mutex_unlock(&b->stats_lock);
#undef SAY
  return st;
}

/* --- registrations ---------------------------------------------------------------- */

#define MAX_LIVE 32

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  uintptr_t id;
  struct bus *b;
} live[MAX_LIVE];
static uintptr_t next_id;

static void on_collect(struct strbuf *sb, void *ctx) {
  pthread_mutex_lock(&live_lock);
  for (int i = 0; i < MAX_LIVE; i++)
    if (live[i].id == (uintptr_t)ctx && live[i].b)
      bus_write_metrics(live[i].b, sb);
  pthread_mutex_unlock(&live_lock);
}

static enum health_status on_health(void *ctx, char *detail, size_t detail_len) {
  enum health_status st = HEALTH_UP;
  pthread_mutex_lock(&live_lock);
  int found = 0;
  for (int i = 0; i < MAX_LIVE && !found; i++)
    if (live[i].id == (uintptr_t)ctx && live[i].b) {
      st = bus_health(live[i].b, detail, detail_len);
      found = 1;
    }
  pthread_mutex_unlock(&live_lock);
  /* A registration that outlived its bus (bus_free) says so and does not
   * hold readiness down: there is no bus left to be unhealthy. */
  if (!found)
    snprintf(detail, detail_len, "bus closed");
  return st;
}

int bus_observer_add(struct bus *b) {
  int slot = -1;
  pthread_mutex_lock(&live_lock);
  for (int i = 0; i < MAX_LIVE && slot < 0; i++)
    if (!live[i].b)
      slot = i;
  if (slot >= 0) {
    live[slot].id = ++next_id;
    live[slot].b = b;
    b->observer_id = live[slot].id;
  }
  pthread_mutex_unlock(&live_lock);
  if (slot < 0)
    return -1;
  void *ctx = (void *)b->observer_id;
  if (metrics_add_collector(on_collect, ctx) != 0 || health_register("bus", on_health, ctx) != 0)
    return -1;
  return 0;
}

void bus_observer_remove(struct bus *b) {
  if (!b->observer_id)
    return;
  pthread_mutex_lock(&live_lock);
  for (int i = 0; i < MAX_LIVE; i++)
    if (live[i].id == b->observer_id) {
      live[i].id = 0;
      live[i].b = NULL;
    }
  pthread_mutex_unlock(&live_lock);
  b->observer_id = 0;
}
