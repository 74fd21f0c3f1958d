/* Gateway-signed identity check for services; see trust.h. */
#include "app/trust.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "gateway/auth.h"
#include "gateway/identity.h"

int trust_read_secret(const char *path, char *out, size_t cap, char *why, size_t why_len) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(why, why_len, "cannot read %s: %s", path, strerror(errno));
    return -1;
  }
  int ok = fgets(out, (int)cap, f) != NULL;
  fclose(f);
  if (!ok) {
    snprintf(why, why_len, "%s is empty", path);
    return -1;
  }
  out[strcspn(out, "\r\n")] = '\0';
  if (strlen(out) < IDENTITY_MIN_SECRET) {
    snprintf(why, why_len, "the secret in %s is shorter than %d bytes", path, IDENTITY_MIN_SECRET);
    return -1;
  }
  return 0;
}

int trust_filter(struct http_exchange *ex, void *ctx) {
  const char *secret = ctx;
  struct http_request *req = http_request_of(ex);
  if (strncmp(req->path, "/health/", 8) == 0 || strcmp(req->path, "/metrics") == 0)
    return 0;
  struct auth_identity *id = arena_alloc(http_arena(ex), sizeof *id);
  if (!id) {
    http_respond_error(ex, STRATA_EINTERNAL, NULL, NULL);
    return 1;
  }
  if (identity_from_request(secret, req, (uint64_t)time(NULL), IDENTITY_DEFAULT_SKEW_S, id) == 0) {
    http_set_filter_data(ex, id);
    return 0;
  }
  http_add_header(ex, "WWW-Authenticate", "StrataIdentity realm=\"strata\"");
  http_respond_error(ex, STRATA_EUNAUTHORIZED,
                     "This service accepts only requests signed by the gateway.", NULL);
  return 1;
}

const struct auth_identity *trust_identity(struct http_exchange *ex) {
  return http_filter_data(ex);
}
