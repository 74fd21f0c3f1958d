/* Group commit: many writes of one loop turn, one transaction, one fsync.
 *
 * Handlers submit a write (a function that runs inside the transaction) and
 * a completion. After the loop has run every I/O callback of the current
 * turn (a uv_check handle), the batch opens one BEGIN IMMEDIATE
 * transaction, runs each write in its own SAVEPOINT — a failing write is
 * rolled back alone and reports its own error — and COMMITs once. Only then
 * do the completions run, so a client is answered after its write is
 * durable. With 64 clients writing, one fsync covers up to 64 writes.
 *
 *   submit -> QUEUED --check phase--> APPLIED (savepoint) --COMMIT--> done(0)
 *                                        | write returned < 0 --> done(err)
 *                                        | COMMIT failed      --> done(EUNAVAILABLE)
 *
 * A batch belongs to one thread's loop and one connection; nothing here is
 * thread-safe. */
#ifndef STRATA_STORE_BATCH_H
#define STRATA_STORE_BATCH_H

#include <uv.h>

#include "store/db.h"

/* Runs inside the open transaction. Returns 0, or a negative STRATA_E* that
 * rolls this write back (only this one). Must not COMMIT or ROLLBACK. */
typedef int (*db_write_cb)(struct db *db, void *arg);
/* Called once, on the loop thread, after the commit (rc 0) or the failure
 * (rc < 0); never from inside db_batch_submit(). */
typedef void (*db_done_cb)(int rc, void *arg);

struct db_batch;

struct db_batch *db_batch_new(uv_loop_t *loop, struct db *db);
/* Fails every queued write with STRATA_EUNAVAILABLE, then frees the batch
 * once its handles have closed (the loop must run once more). */
void db_batch_free(struct db_batch *b);
int db_batch_submit(struct db_batch *b, db_write_cb write, db_done_cb done, void *arg);

/* Commits and writes since start, for metrics and tests. */
unsigned long long db_batch_commits(const struct db_batch *b);
unsigned long long db_batch_writes(const struct db_batch *b);

#endif
