/* libFuzzer target over the whole request path: bytes go through a real
 * connection (a socketpair adopted by conn_open_fd), so llhttp, the parser
 * glue, the limits, the router, the handlers' query/param decoding and the
 * JSON body decoder all see them exactly as they would from a client. The
 * same bytes are also decoded directly as a JSON body. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/internal.h"
#include "http/json_body.h"
#include "observe/log.h"
#include "observe/routes.h"

static struct http_server *server;
static struct router *router;

static void on_item(struct http_exchange *ex, void *data) {
  (void)data;
  const char *id = http_param_get(ex, "id");
  const char *q = http_query_get(ex, "q");
  json_t *body = http_json_body(ex);
  if (!body)
    return;
  const char *name = NULL;
  json_int_t qty = 0;
  static const char *const allowed[] = {"name", "qty", NULL};
  if (json_fields_only(ex, body, allowed) == 0 &&
      json_field_string(ex, body, "name", 1, 1, 64, &name) == 0 &&
      json_field_int(ex, body, "qty", 0, 0, 1000, &qty) == 0) {
    json_t *out = json_pack("{s:s?,s:s?,s:s,s:I}", "id", id, "q", q, "name", name, "qty", qty);
    if (out) {
      http_respond_json_value(ex, 200, out);
      json_decref(out);
    } else {
      http_respond_error(ex, -1, NULL, NULL);
    }
  }
  json_decref(body);
}

static void setup(void) {
  struct strata_config cfg;
  config_defaults(&cfg);
  cfg.http.max_body_bytes = 4096;
  cfg.http.max_header_bytes = 2048;
  cfg.http.max_request_line = 512;
  cfg.http.max_headers = 20;
  cfg.http.max_json_depth = 8;
  router = router_new();
  observe_routes_register(router);
  router_add(router, "POST", "/api/items/:id", on_item, NULL);
  router_add(router, "GET", "/static/*", on_item, NULL);
  server = http_server_new_unbound(&cfg, router);
  worker_init(server, 0);
  int devnull = open("/dev/null", O_WRONLY);
  dup2(devnull, STDOUT_FILENO); /* access logs are produced, not shown */
  close(devnull);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!server)
    setup();
  struct worker *w = &server->workers[0];

  json_t *j = NULL;
  char why[256];
  if (json_body_decode((const char *)data, size, 8, &j, why, sizeof why) == 0)
    json_decref(j);

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
    return 0;
  if (conn_open_fd(w, sv[0]) != 0) {
    close(sv[1]);
    return 0;
  }
  size_t sent = 0;
  int shut = 0;
  char sink[65536];
  for (int i = 0; i < 2000 && w->n_conns > 0; i++) {
    if (sent < size) {
      ssize_t n = write(sv[1], data + sent, size - sent);
      if (n > 0)
        sent += (size_t)n;
    } else if (!shut) {
      shutdown(sv[1], SHUT_WR);
      shut = 1;
    }
    uv_run(&w->loop, UV_RUN_NOWAIT);
    while (read(sv[1], sink, sizeof sink) > 0)
      ;
  }
  close(sv[1]);
  /* Whatever is still open (it should not be) is closed before the next input. */
  for (int i = 0; i < 100 && w->n_conns > 0; i++) {
    struct conn_list *lists[] = {&w->idle, &w->head, &w->body, &w->linger};
    for (int k = 0; k < 4; k++)
      while (lists[k]->head)
        conn_close(lists[k]->head);
    uv_run(&w->loop, UV_RUN_NOWAIT);
  }
  return 0;
}
