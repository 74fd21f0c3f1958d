/* The payments domain: charging a pending order exactly once.
 *
 * Every POST carries an Idempotency-Key; the key, the canonical request and
 * the final response are stored in payments.db, so a retried request is
 * answered with the first response byte for byte and never charges twice.
 * Emits payment.succeeded (orders marks the order paid; notifications tells
 * the buyer). */
#ifndef STRATA_PAYMENTS_PAYMENTS_H
#define STRATA_PAYMENTS_PAYMENTS_H

#include "app/app.h"

size_t payments_schema(const struct db_migration **out);
int payments_routes_register(struct app *app, struct router *r);

#endif
