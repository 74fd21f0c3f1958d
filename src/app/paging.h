/* Cursor pagination shared by every list endpoint:
 * ?limit=1..100 (default 20) & after=<id of the last item of the previous
 * page>; the answer is {"items":[...],"next":"<cursor>"|null}. */
#ifndef STRATA_APP_PAGING_H
#define STRATA_APP_PAGING_H

#include <jansson.h>

#include "http/http.h"

struct page {
  int limit;
  const char *after; /* NULL: from the start */
};

/* Reads limit and after; answers 400 naming the parameter and returns -1
 * when one is invalid. id_prefix: the kind of id the cursor must be. */
int paging_read(struct http_exchange *ex, const char *id_prefix, struct page *p);

/* items holds up to limit + 1 entries (ask the repository for one more to
 * know whether a next page exists). Answers 200 and takes items. */
void paging_respond(struct http_exchange *ex, const struct page *p, json_t *items);

#endif
