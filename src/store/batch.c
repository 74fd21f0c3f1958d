/* Group commit; see batch.h. */
#include "store/batch.h"

#include <stdlib.h>

#include "core/error.h"
#include "observe/log.h"

struct pending {
  db_write_cb write;
  db_done_cb done;
  void *arg;
  int rc;
};

struct db_batch {
  uv_check_t check;  /* runs the batch after this turn's I/O callbacks */
  uv_idle_t idle;    /* keeps poll from blocking while writes wait */
  struct db *db;
  struct pending *q;
  size_t n, cap;
  unsigned long long commits, writes;
  int closing, handles_open;
};

static void run_batch(struct db_batch *b) {
  if (b->n == 0)
    return;
  /* Take the queue: completions may submit new writes for the next turn. */
  struct pending *q = b->q;
  size_t n = b->n;
  b->q = NULL;
  b->n = b->cap = 0;
  uv_idle_stop(&b->idle);

  int failed = 0;
  if (db_begin(b->db) != SQLITE_OK) {
    log_event(LOG_ERROR, "db_begin_failed", NULL, "%s: %s", db_path(b->db), db_errmsg(b->db));
    failed = 1;
  } else {
    for (size_t i = 0; i < n; i++) {
      db_exec(b->db, "SAVEPOINT w");
      q[i].rc = q[i].write(b->db, q[i].arg);
      if (q[i].rc < 0)
        db_exec(b->db, "ROLLBACK TO w");
      db_exec(b->db, "RELEASE w");
    }
    if (db_commit(b->db) != SQLITE_OK) {
      log_event(LOG_ERROR, "db_commit_failed", NULL, "%s: %s", db_path(b->db), db_errmsg(b->db));
      db_rollback(b->db);
      failed = 1;
    } else {
      b->commits++;
      b->writes += n;
    }
  }
  for (size_t i = 0; i < n; i++)
    q[i].done(failed ? STRATA_EUNAVAILABLE : q[i].rc, q[i].arg);
  free(q);
}

static void on_check(uv_check_t *h) { run_batch(h->data); }
static void on_idle(uv_idle_t *h) { (void)h; }

struct db_batch *db_batch_new(uv_loop_t *loop, struct db *db) {
  struct db_batch *b = calloc(1, sizeof *b);
  if (!b)
    return NULL;
  b->db = db;
  uv_check_init(loop, &b->check);
  uv_idle_init(loop, &b->idle);
  b->check.data = b->idle.data = b;
  uv_check_start(&b->check, on_check);
  uv_unref((uv_handle_t *)&b->check); /* a batch alone does not keep a loop alive */
  b->handles_open = 2;
  return b;
}

static void on_closed(uv_handle_t *h) {
  struct db_batch *b = h->data;
  if (--b->handles_open == 0) {
    free(b->q);
    free(b);
  }
}

void db_batch_free(struct db_batch *b) {
  if (!b || b->closing)
    return;
  b->closing = 1;
  for (size_t i = 0; i < b->n; i++)
    b->q[i].done(STRATA_EUNAVAILABLE, b->q[i].arg);
  b->n = 0;
  uv_close((uv_handle_t *)&b->check, on_closed);
  uv_close((uv_handle_t *)&b->idle, on_closed);
}

int db_batch_submit(struct db_batch *b, db_write_cb write, db_done_cb done, void *arg) {
  if (b->closing)
    return STRATA_EUNAVAILABLE;
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 16;
    struct pending *q = realloc(b->q, cap * sizeof *q);
    if (!q)
      return STRATA_EINTERNAL;
    b->q = q;
    b->cap = cap;
  }
  b->q[b->n++] = (struct pending){write, done, arg, 0};
  uv_idle_start(&b->idle, on_idle);
  return 0;
}

unsigned long long db_batch_commits(const struct db_batch *b) { return b->commits; }
unsigned long long db_batch_writes(const struct db_batch *b) { return b->writes; }
