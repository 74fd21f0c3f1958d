/* Users repository: the SQL of users.db, nothing else. All statements are
 * prepared literals; values are bound, never spliced. Functions that write
 * run inside the caller's transaction (a group-commit batch). */
#ifndef STRATA_USERS_REPO_H
#define STRATA_USERS_REPO_H

#include <jansson.h>

#include "core/arena.h"
#include "store/db.h"

/* 0, or STRATA_ECONFLICT when the email is taken, or STRATA_EINTERNAL. */
int users_repo_insert(struct db *db, const char *id, const char *name, const char *email,
                      long long now_ms);
/* 1 and the user's JSON in a (NUL-terminated), 0 when absent, < 0 on error. */
int users_repo_get_json(struct db *db, const char *id, struct arena *a, const char **json,
                        size_t *len);
/* Changes the given fields (NULL = keep). 1 updated, 0 absent, STRATA_ECONFLICT. */
int users_repo_update(struct db *db, const char *id, const char *name, const char *email,
                      long long now_ms);
/* 1 deleted, 0 absent. */
int users_repo_delete(struct db *db, const char *id);
/* Appends up to limit users with id > after (NULL = from the start), in id
 * order, to items; only the user `only` when it is not NULL. Returns the
 * number appended or < 0. */
int users_repo_list(struct db *db, const char *only, const char *after, int limit, json_t *items);

#endif
