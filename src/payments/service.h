/* Payments service: the idempotent charge.
 *
 *   reserve key ──new──> get order (orders client) ──checks fail──> finish(4xx)
 *        │                     │ ok
 *        │                     └──> charge: payment + payment.succeeded + finish(201)
 *        ├─same key, same request, finished ──> replay stored answer
 *        ├─same key, same request, in flight ──> 409 (not stored)
 *        └─same key, other request ──────────> 422 (not stored)
 *
 * Each arrow into the database is one group-commit write; the final answer
 * is stored in the same transaction as the charge, so a crash can never
 * leave a charge without its stored answer (a replay would charge again) or
 * an answer without its charge. A reservation left by a crash is taken over
 * after STALE_MS. */
#ifndef STRATA_PAYMENTS_SERVICE_H
#define STRATA_PAYMENTS_SERVICE_H

#include "app/app.h"

struct payment_request {
  const char *me;         /* the caller is confined to this user's orders; NULL = any */
  const char *client;     /* idempotency scope */
  const char *key;        /* Idempotency-Key */
  const char *canonical;  /* the body, canonical JSON: what "same request" means */
  const char *order_id;
  long long amount_cents;
  const char *request_id; /* for error bodies */
  struct http_exchange *origin; /* the request paying: goes along on calls to orders */
};

/* The final answer: status and exact body bytes; replayed = from storage. */
typedef void (*payments_answer_cb)(int status, const char *body, size_t len, int replayed,
                                   void *arg);

/* r's strings must live in a until cb has run. */
int payments_service_pay(struct app_ctx *ctx, struct arena *a, const struct payment_request *r,
                         payments_answer_cb cb, void *arg);
int payments_service_get(struct app_ctx *ctx, struct arena *a, const char *id, const char **json,
                         size_t *len);

#endif
