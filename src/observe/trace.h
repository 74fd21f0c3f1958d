/* Request ids and W3C Trace Context (traceparent).
 *
 * A client's X-Request-Id is kept when it matches [A-Za-z0-9._-]{1,128};
 * otherwise the server makes one. A valid traceparent
 * (version-traceid-parentid-flags, https://www.w3.org/TR/trace-context/) is
 * kept so that calls this request makes downstream continue the same trace
 * with a new parent id (trace_child). */
#ifndef STRATA_OBSERVE_TRACE_H
#define STRATA_OBSERVE_TRACE_H

#include <stddef.h>
#include <stdint.h>

struct trace_context {
  int valid;
  char trace_id[33];  /* 32 lowercase hex + NUL */
  char parent_id[17]; /* 16 lowercase hex + NUL */
  uint8_t flags;
};

/* 1 when s (len bytes) is an acceptable client request id. */
int request_id_valid(const char *s, size_t len);

/* Parses a traceparent header value into out. Returns 0, or -1 (out->valid 0)
 * when it is malformed, uses version ff, or has an all-zero id. */
int trace_parse(const char *s, size_t len, struct trace_context *out);

/* Writes the traceparent for a downstream call: same trace id (a new random
 * one when parent is not valid), a new random parent id. out: 56 bytes. */
void trace_child(const struct trace_context *parent, char out[56]);

/* A fast per-thread pseudo-random generator (wyrand), seeded from
 * getrandom() on first use. Not for secrets. */
uint64_t trace_random64(void);

#endif
