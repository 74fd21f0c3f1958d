/* Readiness registry; see health.h. */
#include "observe/health.h"

#include <pthread.h>
#include <string.h>

#define MAX_CHECKS 32

static struct {
  char name[64];
  health_check_cb cb;
  void *ctx;
} checks[MAX_CHECKS];
static int n_checks;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

int health_register(const char *name, health_check_cb cb, void *ctx) {
  int rc = -1;
  pthread_mutex_lock(&lock);
  if (n_checks < MAX_CHECKS) {
    size_t n = strlen(name);
    if (n >= sizeof checks[0].name)
      n = sizeof checks[0].name - 1;
    memcpy(checks[n_checks].name, name, n);
    checks[n_checks].name[n] = '\0';
    checks[n_checks].cb = cb;
    checks[n_checks].ctx = ctx;
    n_checks++;
    rc = 0;
  }
  pthread_mutex_unlock(&lock);
  return rc;
}

void health_reset(void) {
  pthread_mutex_lock(&lock);
  n_checks = 0;
  pthread_mutex_unlock(&lock);
}

const char *health_status_name(enum health_status s) {
  switch (s) {
  case HEALTH_UP: return "up";
  case HEALTH_DEGRADED: return "degraded";
  default: return "down";
  }
}

enum health_status health_write_ready(struct strbuf *sb) {
  enum health_status overall = HEALTH_UP;
  struct strbuf body;
  strbuf_init(&body, 0);
  pthread_mutex_lock(&lock);
  for (int i = 0; i < n_checks; i++) {
    char detail[256] = "";
    enum health_status s = checks[i].cb(checks[i].ctx, detail, sizeof detail);
    if (s > overall)
      overall = s;
    strbuf_puts(&body, i ? ",\"" : "\"");
    strbuf_put_json_string(&body, checks[i].name, strlen(checks[i].name));
    strbuf_puts(&body, "\":{\"status\":\"");
    strbuf_puts(&body, health_status_name(s));
    strbuf_putc(&body, '"');
    if (detail[0]) {
      strbuf_puts(&body, ",\"detail\":\"");
      strbuf_put_json_string(&body, detail, strlen(detail));
      strbuf_putc(&body, '"');
    }
    strbuf_putc(&body, '}');
  }
  pthread_mutex_unlock(&lock);
  strbuf_puts(sb, "{\"status\":\"");
  strbuf_puts(sb, health_status_name(overall));
  strbuf_puts(sb, "\",\"checks\":{");
  if (body.len)
    strbuf_append(sb, body.data, body.len);
  strbuf_puts(sb, "}}");
  strbuf_free(&body);
  return overall;
}
