/* Payments service; see service.h. */
#include "payments/service.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/ownership.h"
#include "bus/bus.h"
#include "core/error.h"
#include "core/id.h"
#include "core/strbuf.h"
#include "http/http.h"
#include "orders/orders.h"
#include "payments/repo.h"

#define STALE_MS (60 * 1000)

struct pay_op {
  struct app_ctx *ctx;
  struct arena *a;
  struct payment_request r;
  enum idem_state state;
  int status;               /* final status to store / answer */
  const char *body;         /* final body */
  size_t len;
  char payment_id[ID_MAX];
  const char *user_id, *email;
  payments_answer_cb cb;
  void *arg;
};

static void answer(struct pay_op *op, int status, const char *body, size_t len, int replayed) {
  op->cb(status, body, len, replayed, op->arg);
}

/* An error body, kept in the arena (it may be stored for replays). */
static void set_error(struct pay_op *op, int err, const char *message, const char *field) {
  struct strbuf sb;
  strbuf_init(&sb, 0);
  http_error_json(&sb, err, message, field, op->r.request_id, strlen(op->r.request_id));
  op->status = strata_error_status(err);
  op->len = sb.len;
  op->body = sb.data ? arena_strndup(op->a, sb.data, sb.len) : "";
  strbuf_free(&sb);
}

static void answer_error(struct pay_op *op, int err, const char *message, const char *field) {
  set_error(op, err, message, field);
  answer(op, op->status, op->body, op->len, 0);
}

/* ---- storing a final answer --------------------------------------------- */

static int apply_finish(struct db *db, void *arg) {
  struct pay_op *op = arg;
  return payments_repo_finish(db, op->r.client, op->r.key, op->status, op->body);
}

static void on_finished(int rc, void *arg) {
  struct pay_op *op = arg;
  if (rc < 0)
    answer_error(op, STRATA_EUNAVAILABLE, "The payment could not be recorded; retry.", NULL);
  else
    answer(op, op->status, op->body, op->len, 0);
}

static void finish(struct pay_op *op, int err, const char *message, const char *field) {
  set_error(op, err, message, field);
  if (db_batch_submit(app_batch(op->ctx, DOMAIN_PAYMENTS), apply_finish, on_finished, op) != 0)
    answer(op, op->status, op->body, op->len, 0);
}

static int apply_release(struct db *db, void *arg) {
  struct pay_op *op = arg;
  return payments_repo_release(db, op->r.client, op->r.key);
}

static void on_released(int rc, void *arg) {
  (void)rc;
  struct pay_op *op = arg;
  answer(op, op->status, op->body, op->len, 0);
}

/* A failure that is not the request's fault: forget the key so a retry
 * goes through, answer 503. */
static void release(struct pay_op *op, const char *message) {
  set_error(op, STRATA_EUNAVAILABLE, message, NULL);
  if (db_batch_submit(app_batch(op->ctx, DOMAIN_PAYMENTS), apply_release, on_released, op) != 0)
    answer(op, op->status, op->body, op->len, 0);
}

/* ---- the charge --------------------------------------------------------- */

static int apply_charge(struct db *db, void *arg) {
  struct pay_op *op = arg;
  int rc = payments_repo_insert(db, op->payment_id, op->r.order_id, op->r.amount_cents,
                                op->r.client, op->r.key, db_now_ms());
  if (rc < 0)
    return rc;
  if (payments_repo_get_json(db, op->payment_id, op->a, &op->body, &op->len) != 1)
    return STRATA_EINTERNAL;
  json_t *event = json_pack("{s:s,s:s,s:s,s:s,s:I}", "paymentId", op->payment_id, "orderId",
                            op->r.order_id, "userId", op->user_id, "userEmail", op->email,
                            "amountCents", (json_int_t)op->r.amount_cents);
  char *text = event ? json_dumps(event, JSON_COMPACT) : NULL;
  json_decref(event);
  if (!text)
    return STRATA_EINTERNAL;
  char event_id[40];
  rc = bus_outbox_append(db, "payment.succeeded", op->r.order_id, text, event_id);
  free(text);
  if (rc < 0)
    return rc;
  op->status = 201;
  return payments_repo_finish(db, op->r.client, op->r.key, 201, op->body);
}

static void on_charged(int rc, void *arg) {
  struct pay_op *op = arg;
  if (rc == STRATA_ECONFLICT) {
    finish(op, STRATA_ECONFLICT, "This order has already been paid.", NULL);
    return;
  }
  if (rc < 0) {
    release(op, "The payment could not be recorded; retry with the same key.");
    return;
  }
  app_events_committed(op->ctx->app);
  answer(op, 201, op->body, op->len, 0);
}

static void on_order(int rc, const struct order_view *o, void *arg) {
  struct pay_op *op = arg;
  if (rc < 0) {
    release(op, "The orders service could not be reached; retry with the same key.");
    return;
  }
  if (rc == 0 || !ownership_allows(op->r.me, o->user_id)) {
    /* another user's order is answered as no order at all */
    finish(op, STRATA_EUNPROCESSABLE, "orderId does not name an existing order.", "orderId");
    return;
  }
  if (strcmp(o->status, "pending") != 0) {
    char msg[96];
    snprintf(msg, sizeof msg, "The order is %s; only a pending order can be paid.", o->status);
    finish(op, STRATA_ECONFLICT, msg, NULL);
    return;
  }
  if (o->total_cents != op->r.amount_cents) {
    char msg[128];
    snprintf(msg, sizeof msg, "amountCents must equal the order total (%lld).", o->total_cents);
    finish(op, STRATA_EUNPROCESSABLE, msg, "amountCents");
    return;
  }
  op->user_id = o->user_id;
  op->email = o->user_email;
  id_new("pay", op->payment_id);
  if (db_batch_submit(app_batch(op->ctx, DOMAIN_PAYMENTS), apply_charge, on_charged, op) != 0)
    release(op, "The payment could not be queued; retry with the same key.");
}

/* ---- reserving the key -------------------------------------------------- */

static int apply_reserve(struct db *db, void *arg) {
  struct pay_op *op = arg;
  return payments_repo_reserve(db, op->r.client, op->r.key, op->r.canonical, db_now_ms(),
                               STALE_MS, op->a, &op->state, &op->status, &op->body);
}

static void on_reserved(int rc, void *arg) {
  struct pay_op *op = arg;
  if (rc < 0) {
    answer_error(op, STRATA_EUNAVAILABLE, "Payments are unavailable; retry with the same key.", NULL);
    return;
  }
  switch (op->state) {
  case IDEM_DONE:
    answer(op, op->status, op->body, strlen(op->body), 1);
    break;
  case IDEM_MISMATCH:
    answer_error(op, STRATA_EUNPROCESSABLE,
                 "This Idempotency-Key was already used with a different request.", NULL);
    break;
  case IDEM_IN_FLIGHT:
    answer_error(op, STRATA_ECONFLICT,
                 "A request with this Idempotency-Key is still being processed; retry later.", NULL);
    break;
  case IDEM_RESERVED:
    orders_client_get(op->ctx, op->r.origin, op->r.order_id, op->a, on_order, op);
    break;
  }
}

int payments_service_pay(struct app_ctx *ctx, struct arena *a, const struct payment_request *r,
                         payments_answer_cb cb, void *arg) {
  struct pay_op *op = arena_alloc(a, sizeof *op);
  if (!op)
    return STRATA_EINTERNAL;
  memset(op, 0, sizeof *op);
  op->ctx = ctx;
  op->a = a;
  op->r = *r;
  op->cb = cb;
  op->arg = arg;
  return db_batch_submit(app_batch(ctx, DOMAIN_PAYMENTS), apply_reserve, on_reserved, op);
}

int payments_service_get(struct app_ctx *ctx, struct arena *a, const char *id, const char **json,
                         size_t *len) {
  return payments_repo_get_json(app_db(ctx, DOMAIN_PAYMENTS), id, a, json, len);
}
