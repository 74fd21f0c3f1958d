/* Metrics registry and Prometheus exposition; see metrics.h. */
#include "observe/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

struct metrics_server_stats metrics_server;

static struct metrics_shard *shards;
static unsigned n_shards;
static char *route_labels[METRICS_MAX_ROUTES];
static int n_routes = 1; /* id 0 is METRICS_ROUTE_NONE */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static time_t start_time;

#define MAX_COLLECTORS 32
static struct collector {
  metrics_collect_cb cb;
  void *ctx;
} collectors[MAX_COLLECTORS];
static int n_collectors;

static const char *const method_names[MM_COUNT] = {"GET",   "HEAD",   "POST",    "PUT",
                                                   "PATCH", "DELETE", "OPTIONS", "OTHER"};

int metrics_init(unsigned n) {
  shards = calloc(n, sizeof *shards);
  if (!shards)
    return -1;
  n_shards = n;
  start_time = time(NULL);
  return 0;
}

void metrics_shutdown(void) {
  for (unsigned i = 0; i < n_shards; i++)
    for (int r = 0; r < METRICS_MAX_ROUTES; r++)
      free(shards[i].latency[r]);
  free(shards);
  shards = NULL;
  n_shards = 0;
  for (int r = 1; r < n_routes; r++) {
    free(route_labels[r]);
    route_labels[r] = NULL;
  }
  n_routes = 1;
  n_collectors = 0;
}

struct metrics_shard *metrics_shard(unsigned i) { return i < n_shards ? &shards[i] : NULL; }

int metrics_route_id(const char *label) {
  pthread_mutex_lock(&registry_lock);
  int id = METRICS_ROUTE_NONE;
  for (int r = 1; r < n_routes; r++)
    if (strcmp(route_labels[r], label) == 0) {
      id = r;
      goto done;
    }
  if (n_routes < METRICS_MAX_ROUTES) {
    route_labels[n_routes] = strdup(label);
    if (route_labels[n_routes])
      id = n_routes++;
  }
done:
  pthread_mutex_unlock(&registry_lock);
  return id;
}

enum metrics_method metrics_method_of(const char *m, size_t len) {
  for (int i = 0; i < MM_OTHER; i++)
    if (strlen(method_names[i]) == len && memcmp(method_names[i], m, len) == 0)
      return (enum metrics_method)i;
  return MM_OTHER;
}

void metrics_observe_request(struct metrics_shard *s, int route, enum metrics_method m,
                             int status, uint64_t duration_ns) {
  if (route < 0 || route >= METRICS_MAX_ROUTES)
    route = METRICS_ROUTE_NONE;
  int cls = status / 100 - 1;
  if (cls < 0 || cls > 4)
    cls = 4;
  uint64_t *c = &s->requests[route][m][cls];
  __atomic_store_n(c, *c + 1, __ATOMIC_RELAXED);
  struct histogram *h = s->latency[route];
  if (!h) {
    h = calloc(1, sizeof *h);
    if (!h)
      return;
    __atomic_store_n(&s->latency[route], h, __ATOMIC_RELEASE);
  }
  histogram_record(h, duration_ns);
}

void metrics_family(struct strbuf *sb, const char *name, const char *type, const char *help) {
  strbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int metrics_add_collector(metrics_collect_cb cb, void *ctx) {
  pthread_mutex_lock(&registry_lock);
  int rc = -1;
  if (n_collectors < MAX_COLLECTORS) {
    collectors[n_collectors].cb = cb;
    collectors[n_collectors].ctx = ctx;
    n_collectors++;
    rc = 0;
  }
  pthread_mutex_unlock(&registry_lock);
  return rc;
}

void metrics_label_value(struct strbuf *sb, const char *v) {
  for (; *v; v++) {
    if (*v == '\\' || *v == '"')
      strbuf_putc(sb, '\\');
    if (*v == '\n') {
      strbuf_puts(sb, "\\n");
      continue;
    }
    strbuf_putc(sb, *v);
  }
}

static const char *route_label(int r) { return r == METRICS_ROUTE_NONE ? "none" : route_labels[r]; }

static void write_requests(struct strbuf *sb) {
  static const char *const classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  strbuf_puts(sb, "# HELP strata_http_requests_total HTTP requests answered, by route, method "
                  "and status class.\n# TYPE strata_http_requests_total counter\n");
  for (int r = 0; r < n_routes; r++)
    for (int m = 0; m < MM_COUNT; m++)
      for (int c = 0; c < 5; c++) {
        uint64_t total = 0;
        for (unsigned i = 0; i < n_shards; i++)
          total += __atomic_load_n(&shards[i].requests[r][m][c], __ATOMIC_RELAXED);
        if (!total)
          continue;
        strbuf_puts(sb, "strata_http_requests_total{route=\"");
        metrics_label_value(sb, route_label(r));
        strbuf_printf(sb, "\",method=\"%s\",status=\"%s\"} %llu\n", method_names[m], classes[c],
                      (unsigned long long)total);
      }
}

/* Route r's latency summed over the workers' shards into sum; 0 when no
 * shard has one yet. */
static int route_latency(int r, struct histogram *sum) {
  memset(sum, 0, sizeof *sum);
  int any = 0;
  for (unsigned i = 0; i < n_shards; i++) {
    struct histogram *h = __atomic_load_n(&shards[i].latency[r], __ATOMIC_ACQUIRE);
    if (h) {
      histogram_merge(sum, h);
      any = 1;
    }
  }
  return any;
}

static void write_latency(struct strbuf *sb) {
  static struct histogram_edges edges; /* shared by every route, for good */
  strbuf_puts(sb, "# HELP strata_http_request_duration_seconds Time from the first byte of a "
                  "request to its response being queued, by route.\n"
                  "# TYPE strata_http_request_duration_seconds histogram\n");
  struct histogram *sum = malloc(sizeof *sum);
  if (!sum) {
    sb->failed = 1;
    return;
  }
  for (int r = 0; r < n_routes; r++)
    if (route_latency(r, sum))
      histogram_edges_add(&edges, sum);
  for (int r = 0; r < n_routes; r++) {
    if (!route_latency(r, sum))
      continue;
    struct strbuf label;
    strbuf_init(&label, 0);
    strbuf_puts(&label, "route=\"");
    metrics_label_value(&label, route_label(r));
    strbuf_putc(&label, '"');
    histogram_write_prometheus(sb, "strata_http_request_duration_seconds",
                               label.data ? label.data : "", sum, &edges);
    strbuf_free(&label);
  }
  free(sum);
}

static uint64_t count_open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return 0;
  uint64_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n > 0 ? n - 1 : 0; /* minus the directory handle itself */
}

static void write_process(struct strbuf *sb) {
  long pages_resident = 0, page = sysconf(_SC_PAGESIZE);
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    long size;
    if (fscanf(f, "%ld %ld", &size, &pages_resident) != 2)
      pages_resident = 0;
    fclose(f);
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  strbuf_printf(sb,
                "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                "# TYPE process_resident_memory_bytes gauge\n"
                "process_resident_memory_bytes %lld\n"
                "# HELP process_cpu_seconds_total User and system CPU time spent in seconds.\n"
                "# TYPE process_cpu_seconds_total counter\n"
                "process_cpu_seconds_total %.3f\n"
                "# HELP process_open_fds Number of open file descriptors.\n"
                "# TYPE process_open_fds gauge\n"
                "process_open_fds %llu\n"
                "# HELP process_max_fds Maximum number of open file descriptors.\n"
                "# TYPE process_max_fds gauge\n"
                "process_max_fds %llu\n"
                "# HELP process_start_time_seconds Start time of the process since unix epoch.\n"
                "# TYPE process_start_time_seconds gauge\n"
                "process_start_time_seconds %lld\n",
                (long long)pages_resident * page, cpu, (unsigned long long)count_open_fds(),
                (unsigned long long)rl.rlim_cur, (long long)start_time);
}

void metrics_write_prometheus(struct strbuf *sb) {
  write_requests(sb);
  write_latency(sb);
  uint64_t in_flight = 0;
  for (unsigned i = 0; i < n_shards; i++)
    in_flight += __atomic_load_n(&shards[i].in_flight, __ATOMIC_RELAXED);
  strbuf_printf(sb,
                "# HELP strata_http_requests_in_flight Requests received and not yet answered.\n"
                "# TYPE strata_http_requests_in_flight gauge\n"
                "strata_http_requests_in_flight %llu\n"
                "# HELP strata_http_connections_open Client connections open now.\n"
                "# TYPE strata_http_connections_open gauge\n"
                "strata_http_connections_open %llu\n"
                "# HELP strata_http_connections_total Client connections accepted.\n"
                "# TYPE strata_http_connections_total counter\n"
                "strata_http_connections_total %llu\n"
                "# HELP strata_http_connections_refused_total Connections refused because "
                "http.max_connections was reached.\n"
                "# TYPE strata_http_connections_refused_total counter\n"
                "strata_http_connections_refused_total %llu\n",
                (unsigned long long)in_flight,
                (unsigned long long)__atomic_load_n(&metrics_server.connections_open, __ATOMIC_RELAXED),
                (unsigned long long)__atomic_load_n(&metrics_server.connections_total, __ATOMIC_RELAXED),
                (unsigned long long)__atomic_load_n(&metrics_server.connections_refused, __ATOMIC_RELAXED));
  write_process(sb);
  /* Collectors may be added from worker threads while another renders. */
  pthread_mutex_lock(&registry_lock);
  int n = n_collectors;
  struct collector list[MAX_COLLECTORS];
  memcpy(list, collectors, (size_t)n * sizeof list[0]);
  pthread_mutex_unlock(&registry_lock);
  for (int i = 0; i < n; i++)
    list[i].cb(sb, list[i].ctx);
}
