/* JSON log writer; see log.h. */
#include "observe/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int log_level_current_ = LOG_INFO;
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

void log_set_level(enum log_level level) {
  __atomic_store_n(&log_level_current_, (int)level, __ATOMIC_RELAXED);
}

enum log_level log_get_level(void) {
  return (enum log_level)__atomic_load_n(&log_level_current_, __ATOMIC_RELAXED);
}

/* The second-resolution part of the timestamp changes once a second; each
 * thread caches it so a log line costs one clock read and a copy. */
static _Thread_local time_t cached_sec = -1;
static _Thread_local char cached_prefix[24]; /* 2026-11-27T23:59:01 */

size_t log_format_time(char *out) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (ts.tv_sec != cached_sec) {
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(cached_prefix, sizeof cached_prefix, "%Y-%m-%dT%H:%M:%S", &tm);
    cached_sec = ts.tv_sec;
  }
  memcpy(out, cached_prefix, 19);
  unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
  out[19] = '.';
  out[20] = (char)('0' + ms / 100);
  out[21] = (char)('0' + ms / 10 % 10);
  out[22] = (char)('0' + ms % 10);
  out[23] = 'Z';
  out[24] = '\0';
  return 24;
}

void log_line_begin(struct strbuf *sb, enum log_level level) {
  char t[32];
  size_t n = log_format_time(t);
  strbuf_append(sb, "{\"time\":\"", 9);
  strbuf_append(sb, t, n);
  strbuf_append(sb, "\",\"level\":\"", 11);
  strbuf_puts(sb, config_log_level_name(level));
  strbuf_putc(sb, '"');
}

void log_line_end(struct strbuf *sb) { strbuf_append(sb, "}\n", 2); }

void log_put_str(struct strbuf *sb, const char *key, const char *v, size_t n) {
  strbuf_append(sb, ",\"", 2);
  strbuf_puts(sb, key);
  strbuf_append(sb, "\":\"", 3);
  strbuf_put_json_string(sb, v, n);
  strbuf_putc(sb, '"');
}

void log_put_u64(struct strbuf *sb, const char *key, uint64_t v) {
  strbuf_append(sb, ",\"", 2);
  strbuf_puts(sb, key);
  strbuf_append(sb, "\":", 2);
  strbuf_put_u64(sb, v);
}

void log_flush(struct strbuf *sb) {
  if (sb->len == 0)
    return;
  pthread_mutex_lock(&write_lock);
  const char *p = sb->data;
  size_t left = sb->len;
  while (left > 0) {
    ssize_t n = write(STDOUT_FILENO, p, left);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      break; /* stdout gone: logs are lost, serving goes on */
    }
    p += n;
    left -= (size_t)n;
  }
  pthread_mutex_unlock(&write_lock);
  strbuf_clear(sb);
}

void log_event(enum log_level level, const char *event, const char *fields_json,
               const char *fmt, ...) {
  if (!log_enabled(level))
    return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0)
    n = 0;
  if ((size_t)n >= sizeof msg)
    n = sizeof msg - 1;
  struct strbuf sb;
  strbuf_init(&sb, 0);
  log_line_begin(&sb, level);
  log_put_str(&sb, "event", event, strlen(event));
  log_put_str(&sb, "msg", msg, (size_t)n);
  if (fields_json && *fields_json) {
    strbuf_putc(&sb, ',');
    strbuf_puts(&sb, fields_json);
  }
  log_line_end(&sb);
  log_flush(&sb);
  strbuf_free(&sb);
}
