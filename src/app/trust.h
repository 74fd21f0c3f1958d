/* "Trust nobody but the gateway": with an identity secret configured,
 * `strata serve` answers 401 to any API request whose X-Strata-Identity-*
 * headers are missing or do not verify (HMAC by the gateway over identity,
 * method, path, request id and time; src/gateway/identity.h). Health and
 * metrics stay open for probes.
 *
 * The identity a request was verified with is kept on its exchange for the
 * handlers (trust_identity); what it may do with records is app/ownership.h. */
#ifndef STRATA_APP_TRUST_H
#define STRATA_APP_TRUST_H

#include <stddef.h>

#include "http/server.h"

/* Reads the shared secret from path (first line, at least 32 bytes) into
 * out. Returns 0, or -1 with a reason in why. */
int trust_read_secret(const char *path, char *out, size_t cap, char *why, size_t why_len);

/* The server filter enforcing it; ctx is the secret (NUL-terminated, must
 * outlive the server). */
int trust_filter(struct http_exchange *ex, void *ctx);

struct auth_identity;

/* The caller as the gateway signed it: kind AUTH_KIND_GATEWAY with subject
 * and scopes, or AUTH_KIND_NONE (subject "") for an anonymous request the
 * gateway let through. NULL when no identity was verified: the service runs
 * without an identity secret, or the path is a probe the filter leaves open.
 * Lives in the exchange's arena, like the request. */
const struct auth_identity *trust_identity(struct http_exchange *ex);

#endif
