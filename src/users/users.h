/* The users domain: people who place orders.
 *
 * Other domains use users only through the client below (an in-process call
 * when users runs in the same process, HTTP through the resilience layer
 * when it runs elsewhere — the same interface either way) or through its events (user.created,
 * user.updated, user.deleted). Never through its tables. */
#ifndef STRATA_USERS_USERS_H
#define STRATA_USERS_USERS_H

#include "app/app.h"
#include "core/arena.h"

struct user_view {
  const char *id;
  const char *name;
  const char *email;
};

/* rc: 1 found (*u valid until the arena is reset), 0 no such user, < 0 a
 * STRATA_E* error (e.g. users unavailable). */
typedef void (*users_get_cb)(int rc, const struct user_view *u, void *arg);

/* Looks a user up: in process when users runs here, else GET /api/users/:id
 * on the users service (app_remote_get). origin is the request the lookup
 * is made for (its id, trace, deadline and identity go along; NULL: none)
 * and must outlive cb. cb fires once, later, on ctx's loop. */
void users_client_get(struct app_ctx *ctx, struct http_exchange *origin, const char *id,
                      struct arena *a, users_get_cb cb, void *arg);

/* Wiring (app.c). */
/* The versioned schema of users.db (tables + the outbox). */
size_t users_schema(const struct db_migration **out);
int users_routes_register(struct app *app, struct router *r);
/* Subscribes this process' cache to user.* events (every instance drops its
 * copy when any instance changes a user). */
int users_events_register(struct app *app);

#endif
