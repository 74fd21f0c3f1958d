/* Notifications: repository, the event consumer (service) and the route,
 * small enough to share one file. See notifications.h. */
#include "notifications/notifications.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/ownership.h"
#include "app/paging.h"
#include "bus/bus.h"
#include "core/error.h"
#include "core/id.h"
#include "http/json_body.h"

static const char schema_v1[] =
    "CREATE TABLE notifications ("
    "  id TEXT PRIMARY KEY,"
    "  user_id TEXT NOT NULL,"
    "  event_id TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL,"
    "  channel TEXT NOT NULL,"
    "  recipient TEXT NOT NULL,"
    "  subject TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX notifications_by_user ON notifications(user_id, id);";

size_t notifications_schema(const struct db_migration **out) {
  static struct db_migration steps[2];
  steps[0] = (struct db_migration){1, schema_v1};
  steps[1] = (struct db_migration){2, BUS_INBOX_SQL};
  *out = steps;
  return 2;
}

static const char sql_insert[] =
    "INSERT INTO notifications (id, user_id, event_id, kind, channel, recipient, subject, body,"
    " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
static const char sql_list[] =
    "SELECT json_object('id', id, 'userId', user_id, 'eventId', event_id, 'kind', kind,"
    " 'channel', channel, 'recipient', recipient, 'subject', subject, 'body', body,"
    " 'createdAt', strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch'))"
    " FROM notifications WHERE user_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3";

static int store_send(const struct notification_sender *s, struct db *db,
                      const struct notification *n) {
  (void)s;
  sqlite3_stmt *st = db_stmt(db, sql_insert);
  if (!st)
    return STRATA_EINTERNAL;
  db_bind_text(st, 1, n->id);
  db_bind_text(st, 2, n->user_id);
  db_bind_text(st, 3, n->event_id);
  db_bind_text(st, 4, n->kind);
  db_bind_text(st, 5, n->channel);
  db_bind_text(st, 6, n->recipient);
  db_bind_text(st, 7, n->subject);
  db_bind_text(st, 8, n->body);
  db_bind_int(st, 9, db_now_ms());
  return sqlite3_step(st) == SQLITE_DONE ? 0 : STRATA_EINTERNAL;
}

const struct notification_sender notifications_store_sender = {"store", store_send};

/* ---- consumer ----------------------------------------------------------- */

struct consumer {
  struct app_ctx *ctx;
  const struct notification_sender *sender;
};

/* The seed's sendOrderConfirmationEmail, and its sibling for payments. */
static int compose(const struct bus_event *ev, json_t *p, struct notification *n, char *subject,
                   size_t subject_len, char *body, size_t body_len) {
  if (strcmp(ev->type, "order.created") == 0) {
    const char *order_id = json_string_value(json_object_get(p, "id"));
    n->user_id = json_string_value(json_object_get(p, "userId"));
    n->recipient = json_string_value(json_object_get(p, "userEmail"));
    json_int_t total = json_integer_value(json_object_get(p, "totalCents"));
    if (!order_id || !n->user_id || !n->recipient)
      return STRATA_EVALIDATION;
    n->kind = "order_confirmation";
    snprintf(subject, subject_len, "Your order %s is confirmed", order_id);
    snprintf(body, body_len, "Thank you for your order %s. Total: %lld.%02lld. We will let you "
             "know when the payment is through.", order_id, (long long)total / 100,
             (long long)total % 100);
  } else {
    const char *order_id = json_string_value(json_object_get(p, "orderId"));
    n->user_id = json_string_value(json_object_get(p, "userId"));
    n->recipient = json_string_value(json_object_get(p, "userEmail"));
    json_int_t amount = json_integer_value(json_object_get(p, "amountCents"));
    if (!order_id || !n->user_id || !n->recipient)
      return STRATA_EVALIDATION;
    n->kind = "payment_receipt";
    snprintf(subject, subject_len, "Payment received for order %s", order_id);
    snprintf(body, body_len, "We received your payment of %lld.%02lld for order %s.",
             (long long)amount / 100, (long long)amount % 100, order_id);
  }
  n->channel = "email";
  n->subject = subject;
  n->body = body;
  n->event_id = ev->event_id;
  return 0;
}

static int on_event(const struct bus_event *ev, void *arg) {
  struct consumer *c = arg;
  struct db *db = app_db(c->ctx, DOMAIN_NOTIFICATIONS);
  json_t *p = json_loads(ev->payload, 0, NULL);
  if (!p)
    return STRATA_EVALIDATION;
  char subject[160], body[512], id[ID_MAX];
  struct notification n = {0};
  int rc = compose(ev, p, &n, subject, sizeof subject, body, sizeof body);
  if (rc == 0) {
    id_new("ntf", id);
    n.id = id;
    rc = db_begin(db) == SQLITE_OK ? 0 : STRATA_EUNAVAILABLE;
    if (rc == 0) {
      int fresh = bus_inbox_mark(db, "notifications-queue", ev->event_id);
      rc = fresh < 0 ? fresh : fresh == 1 ? c->sender->send(c->sender, db, &n) : 0;
      if (rc == 0 && db_commit(db) != SQLITE_OK)
        rc = STRATA_EUNAVAILABLE;
      if (rc != 0)
        db_rollback(db);
    }
  }
  json_decref(p);
  return rc;
}

static void consumer_free(void *arg) {
  struct consumer *c = arg;
  app_ctx_release(c->ctx);
  free(c);
}

int notifications_events_register(struct app *app) {
  static const char *const types[] = {"order.created", "payment.succeeded", NULL};
  struct consumer *c = calloc(1, sizeof *c);
  if (!c)
    return -1;
  c->ctx = app_ctx_for_bus(app);
  c->sender = &notifications_store_sender;
  if (!c->ctx || bus_subscribe(app->bus, "notifications-queue", types, on_event, consumer_free, c) != 0) {
    if (c->ctx)
      app_ctx_release(c->ctx);
    free(c);
    return -1;
  }
  return 0;
}

/* ---- route -------------------------------------------------------------- */

/* A confined caller (app/ownership.h) reads their own notifications: userId
 * may be left out, and naming another user gives an empty list. */
static void list_notifications(struct http_exchange *ex, void *data) {
  (void)data;
  const char *me, *user_id;
  if (ownership_confine(ex, &me) != 0)
    return;
  int visible = ownership_narrow(me, http_query_get(ex, "userId"), &user_id);
  if (!user_id) {
    http_respond_error(ex, STRATA_EVALIDATION, "userId is required.", "userId");
    return;
  }
  struct page page;
  if (paging_read(ex, "ntf", &page) != 0)
    return;
  if (!visible) {
    paging_respond(ex, &page, json_array());
    return;
  }
  struct app_ctx *ctx = http_worker_data(ex);
  sqlite3_stmt *st = db_stmt(app_db(ctx, DOMAIN_NOTIFICATIONS), sql_list);
  json_t *items = json_array();
  if (!st || !items) {
    json_decref(items);
    http_respond_error(ex, STRATA_EINTERNAL, NULL, NULL);
    return;
  }
  db_bind_text(st, 1, user_id);
  db_bind_text(st, 2, page.after ? page.after : "");
  db_bind_int(st, 3, page.limit + 1);
  if (db_collect_json(st, items) < 0) {
    json_decref(items);
    http_respond_error(ex, STRATA_EINTERNAL, NULL, NULL);
    return;
  }
  paging_respond(ex, &page, items);
}

int notifications_routes_register(struct app *app, struct router *r) {
  (void)app;
  return router_add(r, "GET", "/api/notifications", list_notifications, NULL);
}
