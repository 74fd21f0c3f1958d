/* Resource ids; see id.h. */
#include "core/id.h"

#include <stdio.h>
#include <string.h>

#include "observe/trace.h"
#include "store/db.h"

void id_new(const char *prefix, char out[ID_MAX]) {
  unsigned long long ms = (unsigned long long)db_now_ms();
  unsigned long long rnd = trace_random64() & 0xffffffffffULL;
  snprintf(out, ID_MAX, "%s_%012llx%010llx", prefix, ms & 0xffffffffffffULL, rnd);
}

int id_valid(const char *prefix, const char *s) {
  size_t p = strlen(prefix);
  if (!s || strncmp(s, prefix, p) != 0 || s[p] != '_' || strlen(s) != p + 1 + 22)
    return 0;
  for (const char *c = s + p + 1; *c; c++)
    if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
      return 0;
  return 1;
}
