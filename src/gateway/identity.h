/* The verified identity, passed from the gateway to the services it fronts.
 *
 * After auth.h has verified a request, the gateway sets four headers on the
 * request it sends upstream:
 *
 *   X-Strata-Identity: <subject>              ("" for an anonymous request)
 *   X-Strata-Scopes: <scope> <scope> ...
 *   X-Strata-Identity-Time: <unix seconds>
 *   X-Strata-Identity-Signature: v1=<hex HMAC-SHA256(secret, canonical)>
 *
 * over the canonical string (no field may hold a newline, which keeps it
 * unambiguous):
 *
 *   v1\n<subject>\n<scopes>\n<method>\n<path>\n<request id>\n<time>
 *
 * path is the path the upstream receives (after any rewrite), without the
 * query; request id is the X-Request-Id sent with it. The gateway drops every
 * copy of these headers a client sent (identity_is_reserved_header) before
 * adding its own, so only the gateway can speak them; a `strata serve`
 * configured with the same secret refuses a request whose signature is
 * missing, wrong or outside the skew window (identity_from_request), so a
 * service trusts nobody but the gateway. The signature binds identity to
 * method, path and request id: a captured header set cannot be moved to
 * another request, and goes stale after max_skew_s.
 *
 * The secret is a NUL-terminated string of at least IDENTITY_MIN_SECRET
 * bytes shared by the gateway and the services; a shorter one is refused.
 * Signature comparison is constant-time (CRYPTO_memcmp). All functions are
 * thread-safe. */
#ifndef STRATA_GATEWAY_IDENTITY_H
#define STRATA_GATEWAY_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/auth.h"

#define IDENTITY_HEADER_SUBJECT "X-Strata-Identity"
#define IDENTITY_HEADER_SCOPES "X-Strata-Scopes"
#define IDENTITY_HEADER_TIME "X-Strata-Identity-Time"
#define IDENTITY_HEADER_SIGNATURE "X-Strata-Identity-Signature"
#define IDENTITY_SIGNATURE_SIZE 68  /* "v1=" + 64 hex digits + NUL */
#define IDENTITY_DEFAULT_SKEW_S 60
#define IDENTITY_MIN_SECRET 32
#define IDENTITY_PATH_MAX 8192
#define IDENTITY_REQUEST_ID_MAX 200
/* identity_headers() output never needs more than this. */
#define IDENTITY_HEADERS_MAX (AUTH_SUBJECT_MAX + AUTH_SCOPES_MAX + 200)

/* Signs: writes "v1=<64 hex>" into sig. subject: "" or 1..AUTH_SUBJECT_MAX
 * visible ASCII; scopes: "" or scope-tokens separated by single spaces
 * (<= AUTH_SCOPES_MAX); method: an HTTP token; path: 1..IDENTITY_PATH_MAX
 * bytes without controls or spaces; request_id: 1..IDENTITY_REQUEST_ID_MAX
 * visible ASCII. Returns 0, STRATA_EVALIDATION when a field is not allowed
 * (sig is "" then), or STRATA_EINTERNAL (short secret, crypto failure). */
int identity_sign(const char *secret, const char *subject, const char *scopes, const char *method,
                  const char *path, const char *request_id, uint64_t timestamp,
                  char sig[IDENTITY_SIGNATURE_SIZE]);

/* Verifies header values as received: timestamp is the X-Strata-Identity-Time
 * value (decimal, no sign or leading zero), signature the
 * X-Strata-Identity-Signature value. Returns 0 when the signature is right
 * and |now_s - timestamp| <= max_skew_s; STRATA_EUNAUTHORIZED otherwise
 * (missing = NULL fields included); STRATA_EINTERNAL for a short secret. */
int identity_verify(const char *secret, const char *subject, const char *scopes,
                    const char *method, const char *path, const char *request_id,
                    const char *timestamp, const char *signature, uint64_t now_s,
                    uint32_t max_skew_s);

/* Gateway side: the four header lines (each ending in CRLF) for identity id
 * (NULL = anonymous) on an upstream request, signed at now_s. Returns the
 * length written (out NUL-terminated), or 0 when a field is not allowed, the
 * secret is short or cap is too small (IDENTITY_HEADERS_MAX suffices). */
size_t identity_headers(const char *secret, const struct auth_identity *id, const char *method,
                        const char *path, const char *request_id, uint64_t now_s, char *out,
                        size_t cap);

/* 1 when a request header called name[0..len) is one only the gateway may
 * set (the four above, case-insensitively, and anything else starting with
 * X-Strata-Identity): the gateway drops client copies of these. */
int identity_is_reserved_header(const char *name, size_t len);

struct http_request;

/* Service side: checks the identity headers of req (method, path and
 * request id are the request's own) and fills *out: kind AUTH_KIND_GATEWAY
 * with subject and scopes, or AUTH_KIND_NONE for a signed anonymous request.
 * Returns 0, STRATA_EUNAUTHORIZED when a header is missing, malformed or
 * does not verify, or STRATA_EINTERNAL. */
int identity_from_request(const char *secret, const struct http_request *req, uint64_t now_s,
                          uint32_t max_skew_s, struct auth_identity *out);

#endif
