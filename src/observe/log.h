/* Structured JSON logs on stdout, one object per line.
 *
 * Two kinds of lines: events (lifecycle, "breaker opened", ...) written at
 * once through log_event(), and access lines that each worker gathers in its
 * own buffer (struct log_buf) and writes in one go per loop turn, so the hot
 * path makes no system call per request. Every write holds one process-wide
 * lock, so lines from different threads never interleave. */
#ifndef STRATA_OBSERVE_LOG_H
#define STRATA_OBSERVE_LOG_H

#include "core/config.h"
#include "core/strbuf.h"

/* Current threshold; lines below it are not written. Changeable at run time. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
static inline int log_enabled(enum log_level level);

/* Writes {"time":..,"level":..,"event":event,"msg":<fmt>} plus, when
 * fields_json is not NULL, the members it holds (a JSON object body without
 * braces, e.g. "\"port\":8080"). */
void log_event(enum log_level level, const char *event, const char *fields_json,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Starts a line in sb: `{"time":"...","level":"<level>"` — the caller appends
 * its members (each starting with ',') and calls log_line_end(). */
void log_line_begin(struct strbuf *sb, enum log_level level);
void log_line_end(struct strbuf *sb);

/* Writes sb's bytes to stdout under the log lock and clears it. */
void log_flush(struct strbuf *sb);

/* Appends ,"key":"<escaped value>" / ,"key":<number>. */
void log_put_str(struct strbuf *sb, const char *key, const char *v, size_t n);
void log_put_u64(struct strbuf *sb, const char *key, uint64_t v);

/* Formats the current UTC time as RFC 3339 with milliseconds into out (at
 * least 25 bytes): 2026-11-27T23:59:01.123Z. Returns the length. */
size_t log_format_time(char *out);

extern int log_level_current_;
static inline int log_enabled(enum log_level level) {
  return (int)level >= __atomic_load_n(&log_level_current_, __ATOMIC_RELAXED);
}

#endif
