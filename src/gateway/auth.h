/* Authentication at the edge: API keys and JWT bearer tokens.
 *
 * A request's credentials come from one of (auth_credentials_parse):
 *
 *   Authorization: Bearer <JWT>        -> auth_jwt()
 *   Authorization: ApiKey <key>        -> auth_api_key()
 *   X-Api-Key: <key>                   -> auth_api_key()
 *
 * Sending both headers is a malformed request (400), not a choice the
 * gateway makes for the client. Each check fills a struct auth_identity: a
 * subject (the API key's id or the token's `sub`), its scopes and, for an API
 * key, its own rate limit. The gateway then passes the identity upstream in
 * signed headers (identity.h).
 *
 * Outcomes and what the client gets (auth_www_authenticate builds the header,
 * RFC 6750 section 3):
 *
 *   no credentials                  401  WWW-Authenticate: Bearer realm="strata"
 *   malformed (both headers, ...)   400  error="invalid_request"
 *   bad key / bad or expired token  401  error="invalid_token"
 *   valid, but a scope is missing   403  error="insufficient_scope", scope="..."
 *
 * API keys are never held in clear: the keyring stores SHA-256 digests (from
 * the config, made with auth_hash_key or `printf %s KEY | sha256sum`), and a
 * presented key is hashed and compared in constant time (CRYPTO_memcmp).
 * The keyring is found by digest, so lookup timing depends only on the
 * presented key's own digest, which tells an attacker nothing about stored
 * keys.
 *
 * JWTs are verified with libjwt 1.10 under a pinned algorithm set, checked
 * before libjwt sees the token (libjwt verifies with whatever key it is handed
 * for the alg the token names, so the choice must never be the token's):
 *   - `alg` must be HS256, RS256 or ES256, in cfg->algs, and have its own
 *     key slot configured: an HS256 token is only ever checked against the
 *     HMAC secret, never against an RSA public key (the classic confusion);
 *     `none` is never accepted, whatever the config says;
 *   - HS256 signatures are also compared here in constant time first (libjwt
 *     1.10 compares with strcmp);
 *   - header and payload are decoded strictly by this module (base64url
 *     without padding, JSON with duplicate names refused, `crit` refused) and
 *     the claims are read from exactly the bytes that were signed;
 *   - exp (required unless cfg->require_exp is 0) and nbf with a leeway;
 *     iss when configured; aud when configured (a string or an array), and a
 *     token carrying aud is refused when no audience is configured (RFC 7519
 *     4.1.3: a recipient that cannot identify itself in aud must reject);
 *   - sub is required: 1..AUTH_SUBJECT_MAX visible ASCII characters;
 *   - scopes from `scope` (space-separated, RFC 8693) or else `scp` (string
 *     or array); each a scope-token of RFC 6749 3.3.
 * libjwt 1.10 refuses a `typ` other than "JWT" (so "at+jwt" tokens fail).
 *
 * Thread-safety: a keyring and a JWT config are read-only after setup and
 * may be shared by all workers. */
#ifndef STRATA_GATEWAY_AUTH_H
#define STRATA_GATEWAY_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/ratelimit.h"

#define AUTH_SUBJECT_MAX 255  /* bytes of a subject (key id or sub) */
#define AUTH_SCOPES_MAX 1023  /* bytes of the space-separated scope list */
#define AUTH_KEY_MAX 512      /* longest API key considered */
#define AUTH_JWT_MAX 8192     /* longest bearer token considered */
#define AUTH_JWT_DEFAULT_LEEWAY_S 30
#define AUTH_HS256_MIN_SECRET 32 /* bytes; RFC 7518 3.2 */
#define AUTH_WHY_MAX 96       /* every `why` text fits */

enum auth_kind {
  AUTH_KIND_NONE = 0, /* not authenticated */
  AUTH_KIND_API_KEY,  /* an API key of the keyring */
  AUTH_KIND_JWT,      /* a verified JWT */
  AUTH_KIND_GATEWAY,  /* asserted by the gateway's signed headers (identity.h) */
};

struct auth_identity {
  enum auth_kind kind;
  char subject[AUTH_SUBJECT_MAX + 1]; /* key id or `sub`; visible ASCII */
  char scopes[AUTH_SCOPES_MAX + 1];   /* "a b c": single spaces, may be "" */
  uint64_t expires_s;                 /* JWT exp (unix s), 0 when none */
  int has_limit;                      /* the API key has its own limit: */
  struct ratelimit_policy limit;      /*   use it for this identity */
};

/* ---- credentials ------------------------------------------------------- */

enum auth_scheme {
  AUTH_SCHEME_NONE = 0,        /* no credentials */
  AUTH_SCHEME_API_KEY = 1 << 0, /* Authorization: ApiKey, or X-Api-Key */
  AUTH_SCHEME_BEARER = 1 << 1,  /* Authorization: Bearer */
};

struct auth_credentials {
  enum auth_scheme scheme;
  const char *value; /* points into the header value given; not terminated */
  size_t len;
};

/* Picks the credentials out of the Authorization and X-Api-Key header values
 * (each NULL when absent; as the server hands them, trimmed). Scheme names
 * are case-insensitive; one or more spaces separate scheme and credential.
 * Returns 0 (out->scheme NONE when neither header is present),
 * STRATA_EBAD_REQUEST when both are present or one is empty or malformed,
 * STRATA_EUNAUTHORIZED for an Authorization scheme other than the two. */
int auth_credentials_parse(const char *authorization, size_t authorization_len,
                           const char *x_api_key, size_t x_api_key_len,
                           struct auth_credentials *out);

/* ---- API keys ---------------------------------------------------------- */

struct auth_keyring;

/* NULL when memory runs out. */
struct auth_keyring *auth_keyring_new(void);
/* Accepts NULL. */
void auth_keyring_free(struct auth_keyring *kr);

/* Adds a key: id (1..AUTH_SUBJECT_MAX visible ASCII, unique), the SHA-256
 * of the key as 64 hex digits (either case, unique), scopes as a
 * NULL-terminated array of RFC 6749 scope-tokens (scopes itself may be
 * NULL), and the key's own rate limit (NULL = the route's). Everything is
 * copied. Returns 0, STRATA_EVALIDATION with a reason in why (when not NULL),
 * or STRATA_EINTERNAL when memory runs out. */
int auth_keyring_add(struct auth_keyring *kr, const char *id, const char *sha256_hex,
                     const char *const scopes[], const struct ratelimit_policy *limit,
                     char *why, size_t why_len);
size_t auth_keyring_count(const struct auth_keyring *kr);

/* Checks a presented key (len bytes, 1..AUTH_KEY_MAX). Returns 0 and fills
 * *out, STRATA_EUNAUTHORIZED for an unknown key, or STRATA_EINTERNAL. */
int auth_api_key(const struct auth_keyring *kr, const char *presented, size_t len,
                 struct auth_identity *out);

/* The lowercase hex SHA-256 of a key (NUL-terminated), as the keyring wants
 * it. Returns 0, or STRATA_EINTERNAL. */
int auth_hash_key(const char *key, char hex[65]);

/* ---- JWT --------------------------------------------------------------- */

enum auth_jwt_alg {
  AUTH_JWT_HS256 = 1 << 0, /* HMAC-SHA256 with hs256_secret */
  AUTH_JWT_RS256 = 1 << 1, /* RSASSA-PKCS1-v1_5 SHA-256 with rs256_public_pem */
  AUTH_JWT_ES256 = 1 << 2, /* ECDSA P-256 SHA-256 with es256_public_pem */
};

/* Pointed-to strings and keys are not copied: they must outlive the config. */
struct auth_jwt_config {
  unsigned algs;                    /* pinned set, AUTH_JWT_* or'ed */
  const unsigned char *hs256_secret; /* >= AUTH_HS256_MIN_SECRET bytes */
  size_t hs256_secret_len;
  const char *rs256_public_pem;     /* "-----BEGIN PUBLIC KEY-----", RSA >= 2048 bits */
  const char *es256_public_pem;     /* "-----BEGIN PUBLIC KEY-----", EC P-256 */
  const char *issuer;               /* NULL: iss not checked */
  const char *audience;             /* NULL: tokens with aud refused */
  uint32_t leeway_s;                /* clock skew allowed on exp and nbf */
  int require_exp;                  /* refuse tokens without exp */
};

/* Zeroes cfg, then leeway AUTH_JWT_DEFAULT_LEEWAY_S and require_exp 1. */
void auth_jwt_config_init(struct auth_jwt_config *cfg);

/* For config loading: every pinned alg has a usable key of the right type
 * (an HS256 secret that looks like a PEM key is refused: it is the mistake
 * behind alg confusion). Parses the PEM keys. 0 or STRATA_EVALIDATION with a
 * reason in why. */
int auth_jwt_config_check(const struct auth_jwt_config *cfg, char *why, size_t why_len);

/* Verifies a bearer token (len bytes) at now_s (unix seconds). Returns 0 and
 * fills *out, STRATA_EUNAUTHORIZED with the reason in why (a fixed phrase,
 * safe for error_description; never token content), or STRATA_EINTERNAL. */
int auth_jwt(const struct auth_jwt_config *cfg, const char *token, size_t len, uint64_t now_s,
             struct auth_identity *out, char *why, size_t why_len);

/* ---- scopes and challenges -------------------------------------------- */

/* 1 when id holds scope (exact match of one of its scopes), else 0. A NULL
 * or empty scope is held by everyone. */
int auth_has_scope(const struct auth_identity *id, const char *scope);

enum auth_challenge {
  AUTH_CHALLENGE_MISSING = 0,        /* 401, no error attribute */
  AUTH_CHALLENGE_INVALID_REQUEST,    /* 400 */
  AUTH_CHALLENGE_INVALID_TOKEN,      /* 401 */
  AUTH_CHALLENGE_INSUFFICIENT_SCOPE, /* 403 */
};

/* The status for a challenge: 400, 401 or 403. */
int auth_challenge_status(enum auth_challenge c);

/* Writes the WWW-Authenticate value (no name, no CRLF): one challenge per
 * scheme in `schemes` (AUTH_SCHEME_* or'ed; NONE = Bearer), Bearer first:
 *   Bearer realm="strata", error="invalid_token", error_description="expired"
 * realm NULL = "strata". description (NULL = none) and scope (only with
 * INSUFFICIENT_SCOPE) are reduced to the characters RFC 6750 allows there.
 * Returns the length, or 0 when cap is too small (out is "" then). */
size_t auth_www_authenticate(unsigned schemes, enum auth_challenge c, const char *realm,
                             const char *description, const char *scope, char *out, size_t cap);

#endif
