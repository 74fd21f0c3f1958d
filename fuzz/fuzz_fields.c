/* libFuzzer target for the header-field values the gateway reads from
 * clients and upstreams: HTTP-dates, Retry-After, the deadline header,
 * traceparent and request ids, and the response cache's reading of
 * Cache-Control, Vary, Date, Expires, Age and Pragma on both sides, and its
 * evaluation of If-None-Match / If-Modified-Since against a stored answer.
 *
 * The input is split at newlines into header lines "Name: value" (at most
 * 16); each value also goes through the single-value parsers, and the
 * input from each line on through the chunk-size line reducer. */
#include <stdint.h>
#include <string.h>

#include "core/httpdate.h"
#include "http/chunkline.h"
#include "gateway/respcache.h"
#include "observe/trace.h"
#include "resilience/retry.h"

#define MAX_FIELDS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = (const char *)data, *end = p + size;
  struct http_header h[MAX_FIELDS];
  unsigned n = 0;
  while (p < end && n < MAX_FIELDS) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = nl ? nl : end;
    const char *colon = memchr(p, ':', (size_t)(line_end - p));
    const char *v = colon ? colon + 1 : line_end;
    const char *ve = line_end;
    while (v < ve && (*v == ' ' || *v == '\t'))
      v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r'))
      ve--;
    h[n].name = p;
    h[n].name_len = (size_t)((colon ? colon : line_end) - p);
    h[n].value = v;
    h[n].value_len = (size_t)(ve - v);
    n++;

    int64_t ms;
    uint64_t left;
    struct trace_context tc;
    http_date_parse(v, (size_t)(ve - v), 1795824000000ull, &ms);
    retry_after_parse(v, (size_t)(ve - v), 1795824000000ull);
    deadline_parse(v, (size_t)(ve - v), &left);
    trace_parse(v, (size_t)(ve - v), &tc);
    request_id_valid(v, (size_t)(ve - v));
    char line[CHUNKLINE_OUT_MAX];
    size_t line_len;
    chunkline_reduce(p, (size_t)(end - p), line, &line_len);
    p = nl ? nl + 1 : end;
  }
  struct respcache_route route = {0};
  route.ttl_ms = 5000;
  struct respcache_policy pol;
  respcache_policy_from_response(200, h, n, 1795824000000ull, 3, &route, &pol);
  respcache_policy_from_response(404, h, n, 1795824000000ull, 3, NULL, &pol);
  struct respcache_request rq;
  respcache_request_init(&rq, "GET", h, n, n & 1);
  /* the same fields as both a request's validators and a stored answer */
  struct respcache_hit hit = {.status = RESPCACHE_STATUS_HIT, .http_status = 200, .headers = h,
                             .n_headers = n, .body = ""};
  respcache_not_modified(&rq, &hit, 1795824000000ull);
  for (unsigned i = 0; i < n; i++)
    respcache_field_in_304(&h[i]);
  return 0;
}
