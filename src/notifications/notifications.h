/* The notifications domain: tells users what happened to their orders.
 *
 * It has no write API: it consumes order.created and payment.succeeded
 * (durable subscription "notifications-queue") and records one message per
 * event through a pluggable sender. Every delivery is recorded in the same
 * transaction as the event id it came from, so a redelivery sends nothing
 * twice. */
#ifndef STRATA_NOTIFICATIONS_NOTIFICATIONS_H
#define STRATA_NOTIFICATIONS_NOTIFICATIONS_H

#include "app/app.h"

struct notification {
  const char *id;
  const char *user_id;
  const char *event_id;
  const char *kind;      /* "order_confirmation", "payment_receipt" */
  const char *channel;   /* "email" */
  const char *recipient;
  const char *subject;
  const char *body;
};

/* Where a notification goes. send runs inside the consumer's transaction on
 * db (notifications.db); returns 0 or a STRATA_E* (the event is retried). */
struct notification_sender {
  const char *name;
  int (*send)(const struct notification_sender *s, struct db *db, const struct notification *n);
};

/* The default sender: records the message in notifications.db (an outbox a
 * mail relay would drain); GET /api/notifications reads it. */
extern const struct notification_sender notifications_store_sender;

size_t notifications_schema(const struct db_migration **out);
int notifications_routes_register(struct app *app, struct router *r);
int notifications_events_register(struct app *app);

#endif
