/* Request ids and traceparent; see trace.h. */
#include "observe/trace.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

int request_id_valid(const char *s, size_t len) {
  if (len < 1 || len > 128)
    return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

static int lower_hex(const char *s, size_t n, int *all_zero) {
  *all_zero = 1;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return 0;
    if (c != '0')
      *all_zero = 0;
  }
  return 1;
}

int trace_parse(const char *s, size_t len, struct trace_context *out) {
  int zero;
  out->valid = 0;
  /* version 00 is exactly 55 chars; a later version may append fields after
   * a '-', which we ignore as the spec asks. */
  if (len < 55 || (len > 55 && (s[0] == '0' && s[1] == '0')) || (len > 55 && s[55] != '-'))
    return -1;
  if (!lower_hex(s, 2, &zero) || (s[0] == 'f' && s[1] == 'f'))
    return -1;
  if (s[2] != '-' || s[35] != '-' || s[52] != '-')
    return -1;
  if (!lower_hex(s + 3, 32, &zero) || zero)
    return -1;
  memcpy(out->trace_id, s + 3, 32);
  out->trace_id[32] = '\0';
  if (!lower_hex(s + 36, 16, &zero) || zero)
    return -1;
  memcpy(out->parent_id, s + 36, 16);
  out->parent_id[16] = '\0';
  if (!lower_hex(s + 53, 2, &zero))
    return -1;
  static const char hexv[] = "0123456789abcdef";
  out->flags = (uint8_t)(((strchr(hexv, s[53]) - hexv) << 4) | (strchr(hexv, s[54]) - hexv));
  out->valid = 1;
  return 0;
}

static _Thread_local uint64_t rng_state;

uint64_t trace_random64(void) {
  if (!rng_state) {
    if (getrandom(&rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state)
      rng_state = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&rng_state;
    rng_state |= 1;
  }
  /* wyrand */
  rng_state += 0xa0761d6478bd642fULL;
  __uint128_t m = (__uint128_t)rng_state * (rng_state ^ 0xe7037ed1a0b428dbULL);
  return (uint64_t)(m >> 64) ^ (uint64_t)m;
}

static void put_hex64(char *out, uint64_t v) {
  static const char hexv[] = "0123456789abcdef";
  for (int i = 15; i >= 0; i--) {
    out[i] = hexv[v & 15];
    v >>= 4;
  }
}

void trace_child(const struct trace_context *parent, char out[56]) {
  memcpy(out, "00-", 3);
  if (parent && parent->valid) {
    memcpy(out + 3, parent->trace_id, 32);
  } else {
    put_hex64(out + 3, trace_random64());
    put_hex64(out + 19, trace_random64() | 1);
  }
  out[35] = '-';
  put_hex64(out + 36, trace_random64() | 1);
  out[52] = '-';
  uint8_t flags = parent && parent->valid ? parent->flags : 0;
  static const char hexv[] = "0123456789abcdef";
  out[53] = hexv[flags >> 4];
  out[54] = hexv[flags & 15];
  out[55] = '\0';
}
