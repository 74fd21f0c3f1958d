/* Cursor pagination; see paging.h. */
#include "app/paging.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/id.h"
#include "http/json_body.h"

int paging_read(struct http_exchange *ex, const char *id_prefix, struct page *p) {
  p->limit = 20;
  p->after = NULL;
  const char *limit = http_query_get(ex, "limit");
  if (limit) {
    long v = 0;
    size_t i = 0;
    for (; limit[i] >= '0' && limit[i] <= '9' && i < 4; i++)
      v = v * 10 + (limit[i] - '0');
    if (i == 0 || limit[i] || v < 1 || v > 100) {
      http_respond_error(ex, STRATA_EVALIDATION, "limit must be an integer from 1 to 100.", "limit");
      return -1;
    }
    p->limit = (int)v;
  }
  const char *after = http_query_get(ex, "after");
  if (after && *after) {
    if (!id_valid(id_prefix, after)) {
      http_respond_error(ex, STRATA_EVALIDATION, "after must be the next cursor of a previous page.",
                         "after");
      return -1;
    }
    p->after = after;
  }
  return 0;
}

void paging_respond(struct http_exchange *ex, const struct page *p, json_t *items) {
  json_t *next = json_null();
  if (json_array_size(items) > (size_t)p->limit) {
    json_array_remove(items, (size_t)p->limit);
    json_t *last = json_array_get(items, (size_t)p->limit - 1);
    next = json_incref(json_object_get(last, "id"));
  }
  json_t *out = json_pack("{s:o,s:o}", "items", items, "next", next);
  http_respond_json_value(ex, 200, out);
  json_decref(out);
}
