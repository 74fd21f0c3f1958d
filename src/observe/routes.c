/* Health and metrics endpoints; see routes.h. */
#include "observe/routes.h"

#include "core/strbuf.h"
#include "observe/health.h"
#include "observe/metrics.h"

static void on_live(struct http_exchange *ex, void *data) {
  (void)data;
  static const char body[] = "{\"status\":\"up\"}";
  http_respond_json(ex, 200, body, sizeof body - 1);
}

static void on_ready(struct http_exchange *ex, void *data) {
  (void)data;
  struct strbuf sb;
  strbuf_init(&sb, 0);
  enum health_status s = health_write_ready(&sb);
  http_respond_json(ex, s == HEALTH_DOWN ? 503 : 200, sb.data, sb.len);
  strbuf_free(&sb);
}

static void on_metrics(struct http_exchange *ex, void *data) {
  (void)data;
  struct strbuf sb;
  strbuf_init(&sb, 0);
  metrics_write_prometheus(&sb);
  if (sb.failed)
    http_respond_error(ex, -1, "Could not render metrics.", NULL);
  else
    http_respond(ex, 200, "text/plain; version=0.0.4; charset=utf-8", sb.data, sb.len);
  strbuf_free(&sb);
}

int observe_routes_register(struct router *r) {
  if (router_add(r, "GET", "/health/live", on_live, NULL) ||
      router_add(r, "GET", "/health/ready", on_ready, NULL) ||
      router_add(r, "GET", "/metrics", on_metrics, NULL))
    return -1;
  return 0;
}
