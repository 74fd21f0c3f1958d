/* Payments repository: payments and idempotency keys in payments.db. */
#ifndef STRATA_PAYMENTS_REPO_H
#define STRATA_PAYMENTS_REPO_H

#include "core/arena.h"
#include "store/db.h"

enum idem_state {
  IDEM_RESERVED = 0, /* new key (or an abandoned reservation): go ahead */
  IDEM_IN_FLIGHT,    /* another request with this key is being processed */
  IDEM_MISMATCH,     /* the key was used with a different request */
  IDEM_DONE          /* finished: replay *status / *response */
};

/* Reserves (client, key) for request (canonical JSON) unless it exists.
 * A reservation older than stale_ms is taken over (its request crashed). */
int payments_repo_reserve(struct db *db, const char *client, const char *key, const char *request,
                          long long now_ms, long long stale_ms, struct arena *a,
                          enum idem_state *state, int *status, const char **response);
/* Stores the final response of a reserved key. */
int payments_repo_finish(struct db *db, const char *client, const char *key, int status,
                         const char *response);
/* Drops a reservation so the client may retry (after a 5xx). */
int payments_repo_release(struct db *db, const char *client, const char *key);
/* 0, or STRATA_ECONFLICT when the order already has a successful payment. */
int payments_repo_insert(struct db *db, const char *id, const char *order_id, long long amount,
                         const char *client, const char *key, long long now_ms);
int payments_repo_get_json(struct db *db, const char *id, struct arena *a, const char **json,
                           size_t *len);

#endif
