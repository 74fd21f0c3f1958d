/* Prometheus metrics of a strata process.
 *
 * Each worker thread writes only its own shard (struct metrics_shard), so the
 * request path does no atomic read-modify-write and shares no cache line;
 * /metrics sums the shards with relaxed loads. Routes get a small integer id
 * at start-up (metrics_route_id), used to index the shard arrays. Other
 * modules add their own families through metrics_add_collector(). */
#ifndef STRATA_OBSERVE_METRICS_H
#define STRATA_OBSERVE_METRICS_H

#include <stdint.h>

#include "core/strbuf.h"
#include "observe/histogram.h"

#define METRICS_MAX_ROUTES 64
#define METRICS_ROUTE_NONE 0 /* requests that matched no route */

enum metrics_method {
  MM_GET = 0, /* one slot per common method; the rest share MM_OTHER */
  MM_HEAD,
  MM_POST,
  MM_PUT,
  MM_PATCH,
  MM_DELETE,
  MM_OPTIONS,
  MM_OTHER,
  MM_COUNT
};

struct metrics_shard {
  uint64_t requests[METRICS_MAX_ROUTES][MM_COUNT][5]; /* by status class 1xx..5xx */
  uint64_t in_flight;
  struct histogram *latency[METRICS_MAX_ROUTES];      /* allocated on first use */
};

/* Creates n shards (one per worker). Call once before workers start. */
int metrics_init(unsigned n_shards);
void metrics_shutdown(void);
struct metrics_shard *metrics_shard(unsigned i);

/* Registers a route label before workers start; returns its id (> 0), or
 * METRICS_ROUTE_NONE when the table is full. Same label, same id. */
int metrics_route_id(const char *label);

/* Counts one finished request on the calling worker's shard. */
void metrics_observe_request(struct metrics_shard *s, int route, enum metrics_method m,
                             int status, uint64_t duration_ns);

static inline void metrics_in_flight_add(struct metrics_shard *s, int delta) {
  __atomic_store_n(&s->in_flight, s->in_flight + (uint64_t)(int64_t)delta, __ATOMIC_RELAXED);
}

enum metrics_method metrics_method_of(const char *method, size_t len);

/* A collector appends whole metric families (HELP, TYPE, samples) to sb when
 * /metrics is served. Called from any worker thread: it must be thread-safe. */
typedef void (*metrics_collect_cb)(struct strbuf *sb, void *ctx);
int metrics_add_collector(metrics_collect_cb cb, void *ctx);

/* The HELP and TYPE lines that open a family (type: counter, gauge, ...). */
void metrics_family(struct strbuf *sb, const char *name, const char *type, const char *help);
/* Appends v as a label value, escaped as the text format asks (\\, \"
 * and \n): route patterns, pool and host names come from configuration. */
void metrics_label_value(struct strbuf *sb, const char *v);

/* Process-wide gauges and counters kept by the HTTP server. */
struct metrics_server_stats {
  uint64_t connections_open;
  uint64_t connections_total;
  uint64_t connections_refused;
};
extern struct metrics_server_stats metrics_server;

/* Appends the whole exposition (text format 0.0.4) to sb. */
void metrics_write_prometheus(struct strbuf *sb);

#endif
