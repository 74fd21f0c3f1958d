/* Users service: the rules of the users domain, between its routes and its
 * repository. Reads go through the cache (cache-aside, single flight,
 * negative entries); writes go through this thread's group-commit batch
 * together with their event in the outbox, then update the cache
 * (write-through) — other instances drop their copy when the event reaches
 * them. */
#ifndef STRATA_USERS_SERVICE_H
#define STRATA_USERS_SERVICE_H

#include <jansson.h>

#include "app/app.h"
#include "cache/cache.h"

/* rc 0 with the user's JSON (in the caller's arena), or a STRATA_E*. */
typedef void (*users_done_cb)(int rc, const char *json, size_t len, void *arg);

int users_service_create(struct app_ctx *ctx, struct arena *a, const char *name,
                         const char *email, users_done_cb cb, void *arg);
int users_service_update(struct app_ctx *ctx, struct arena *a, const char *id, const char *name,
                         const char *email, users_done_cb cb, void *arg);
int users_service_delete(struct app_ctx *ctx, struct arena *a, const char *id, users_done_cb cb,
                         void *arg);
/* Synchronous read: 1 found (json in a), 0 absent, < 0 error; *how says
 * whether the cache answered. */
int users_service_get(struct app_ctx *ctx, struct arena *a, const char *id, const char **json,
                      size_t *len, enum cache_result *how);
/* Up to limit users after the cursor (only the user `only` when it is not
 * NULL: a caller confined to their own record) into *items (caller owns).
 * Returns 0 or < 0. */
int users_service_list(struct app_ctx *ctx, const char *only, const char *after, int limit,
                       json_t **items);

#endif
