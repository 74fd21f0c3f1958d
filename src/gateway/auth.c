/* API keys and JWT bearer tokens; see auth.h for the rules and why each is
 * there. The order of checks in auth_jwt() is the point of this file:
 * structure, then our own reading of the header and the pinned algorithm,
 * then the signature (ours in constant time for HS256, then libjwt's), and
 * only then the claims, read from the signed bytes. */
#include "gateway/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "core/error.h"

/* ---- small helpers ----------------------------------------------------- */

static void set_why(char *why, size_t n, const char *msg) {
  if (why && n)
    snprintf(why, n, "%s", msg);
}

static int is_vchar(unsigned char c) { return c >= 0x21 && c <= 0x7e; }

/* RFC 6749 3.3 scope-token character. */
static int is_scope_char(unsigned char c) {
  return c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

static int all_vchar(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!is_vchar((unsigned char)s[i]))
      return 0;
  return 1;
}

static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int ieq(const char *s, size_t n, const char *lit) {
  size_t m = strlen(lit);
  if (n != m)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)s[i]) != lower((unsigned char)lit[i]))
      return 0;
  return 1;
}

/* Appends the scope-token s[0..n) to the list dst (length *len, capacity
 * AUTH_SCOPES_MAX + 1). Returns 0, or -1 when s is not a scope-token or the
 * list would be too long. */
static int scope_append(char *dst, size_t *len, const char *s, size_t n) {
  if (n == 0)
    return -1;
  for (size_t i = 0; i < n; i++)
    if (!is_scope_char((unsigned char)s[i]))
      return -1;
  size_t need = *len + (*len ? 1 : 0) + n;
  if (need > AUTH_SCOPES_MAX)
    return -1;
  if (*len)
    dst[(*len)++] = ' ';
  memcpy(dst + *len, s, n);
  *len += n;
  dst[*len] = '\0';
  return 0;
}

/* Appends every space-separated scope of s[0..n) (runs of spaces allowed). */
static int scope_append_list(char *dst, size_t *len, const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    while (i < n && s[i] == ' ')
      i++;
    size_t start = i;
    while (i < n && s[i] != ' ')
      i++;
    if (i > start && scope_append(dst, len, s + start, i - start) != 0)
      return -1;
  }
  return 0;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = lower(c);
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

static void to_hex(const unsigned char *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

/* ---- credentials ------------------------------------------------------- */

static int is_token68_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

/* RFC 9110 11.2: token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static int is_token68(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && is_token68_char((unsigned char)s[i]))
    i++;
  if (i == 0)
    return 0;
  while (i < n && s[i] == '=')
    i++;
  return i == n;
}

int auth_credentials_parse(const char *authorization, size_t authorization_len,
                           const char *x_api_key, size_t x_api_key_len,
                           struct auth_credentials *out) {
  out->scheme = AUTH_SCHEME_NONE;
  out->value = NULL;
  out->len = 0;
  if (authorization && x_api_key)
    return STRATA_EBAD_REQUEST;
  if (x_api_key) {
    if (x_api_key_len == 0 || x_api_key_len > AUTH_KEY_MAX || !all_vchar(x_api_key, x_api_key_len))
      return STRATA_EBAD_REQUEST;
    out->scheme = AUTH_SCHEME_API_KEY;
    out->value = x_api_key;
    out->len = x_api_key_len;
    return 0;
  }
  if (!authorization)
    return 0;
  const char *a = authorization;
  size_t n = authorization_len, i = 0;
  while (i < n && a[i] != ' ')
    i++;
  size_t scheme_len = i;
  while (i < n && a[i] == ' ')
    i++;
  const char *cred = a + i;
  size_t cred_len = n - i;
  enum auth_scheme scheme;
  if (ieq(a, scheme_len, "Bearer"))
    scheme = AUTH_SCHEME_BEARER;
  else if (ieq(a, scheme_len, "ApiKey"))
    scheme = AUTH_SCHEME_API_KEY;
  else
    return scheme_len ? STRATA_EUNAUTHORIZED : STRATA_EBAD_REQUEST;
  if (cred_len == 0)
    return STRATA_EBAD_REQUEST;
  if (scheme == AUTH_SCHEME_BEARER ? !is_token68(cred, cred_len)
                                   : cred_len > AUTH_KEY_MAX || !all_vchar(cred, cred_len))
    return STRATA_EBAD_REQUEST;
  out->scheme = scheme;
  out->value = cred;
  out->len = cred_len;
  return 0;
}

/* ---- API keys ---------------------------------------------------------- */

struct key_entry {
  unsigned char digest[32]; /* SHA-256 of the key */
  char *id;
  char *scopes;
  int has_limit;
  struct ratelimit_policy limit;
};

/* Keys in insertion order, found through an open-addressing table (linear
 * probing, load <= 1/2) indexed by the digest's first bytes: digests are
 * uniform, so no further hashing is needed. */
struct auth_keyring {
  struct key_entry *keys;
  size_t n, cap;
  uint32_t *slot; /* index + 1 into keys; 0 = empty */
  size_t nslots;  /* power of two, or 0 */
  EVP_MD *sha256; /* fetched once: an implicit fetch per call is slow */
};

static size_t slot_of(const unsigned char digest[32], size_t mask) {
  uint64_t h = 0;
  for (int i = 0; i < 8; i++)
    h = (h << 8) | digest[i];
  return (size_t)(h & mask);
}

struct auth_keyring *auth_keyring_new(void) {
  struct auth_keyring *kr = calloc(1, sizeof *kr);
  if (!kr)
    return NULL;
  kr->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (!kr->sha256) {
    free(kr);
    return NULL;
  }
  return kr;
}

void auth_keyring_free(struct auth_keyring *kr) {
  if (!kr)
    return;
  for (size_t i = 0; i < kr->n; i++) {
    free(kr->keys[i].id);
    free(kr->keys[i].scopes);
  }
  free(kr->keys);
  free(kr->slot);
  EVP_MD_free(kr->sha256);
  free(kr);
}

size_t auth_keyring_count(const struct auth_keyring *kr) { return kr ? kr->n : 0; }

static int rehash(struct auth_keyring *kr, size_t nslots) {
  uint32_t *slot = calloc(nslots, sizeof *slot);
  if (!slot)
    return -1;
  for (size_t k = 0; k < kr->n; k++) {
    size_t i = slot_of(kr->keys[k].digest, nslots - 1);
    while (slot[i])
      i = (i + 1) & (nslots - 1);
    slot[i] = (uint32_t)k + 1;
  }
  free(kr->slot);
  kr->slot = slot;
  kr->nslots = nslots;
  return 0;
}

/* The entry with this digest, or NULL. Every candidate on the probe path is
 * compared in full and in constant time. */
static const struct key_entry *lookup(const struct auth_keyring *kr,
                                      const unsigned char digest[32]) {
  if (!kr->nslots)
    return NULL;
  const struct key_entry *found = NULL;
  for (size_t i = slot_of(digest, kr->nslots - 1); kr->slot[i]; i = (i + 1) & (kr->nslots - 1)) {
    const struct key_entry *e = &kr->keys[kr->slot[i] - 1];
    if (CRYPTO_memcmp(e->digest, digest, 32) == 0) {
      found = e;
      break;
    }
  }
  return found;
}

int auth_keyring_add(struct auth_keyring *kr, const char *id, const char *sha256_hex,
                     const char *const scopes[], const struct ratelimit_policy *limit,
                     char *why, size_t why_len) {
  unsigned char digest[32];
  char joined[AUTH_SCOPES_MAX + 1] = "";
  size_t jlen = 0;

  size_t idlen = id ? strlen(id) : 0;
  if (idlen == 0 || idlen > AUTH_SUBJECT_MAX || !all_vchar(id, idlen)) {
    set_why(why, why_len, "key id must be 1..255 visible ASCII characters");
    return STRATA_EVALIDATION;
  }
  if (!sha256_hex || strlen(sha256_hex) != 64) {
    set_why(why, why_len, "key hash must be 64 hex digits (SHA-256)");
    return STRATA_EVALIDATION;
  }
  for (int i = 0; i < 32; i++) {
    int hi = hexval((unsigned char)sha256_hex[2 * i]), lo = hexval((unsigned char)sha256_hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      set_why(why, why_len, "key hash must be 64 hex digits (SHA-256)");
      return STRATA_EVALIDATION;
    }
    digest[i] = (unsigned char)(hi << 4 | lo);
  }
  for (size_t i = 0; scopes && scopes[i]; i++) {
    if (scope_append(joined, &jlen, scopes[i], strlen(scopes[i])) != 0) {
      set_why(why, why_len, "scopes must be RFC 6749 scope-tokens, 1023 bytes in all");
      return STRATA_EVALIDATION;
    }
  }
  if (limit && ratelimit_policy_check(limit) != 0) {
    set_why(why, why_len, "key rate limit out of range");
    return STRATA_EVALIDATION;
  }
  for (size_t i = 0; i < kr->n; i++)
    if (strcmp(kr->keys[i].id, id) == 0) {
      set_why(why, why_len, "duplicate key id");
      return STRATA_EVALIDATION;
    }
  if (lookup(kr, digest)) {
    set_why(why, why_len, "duplicate key hash");
    return STRATA_EVALIDATION;
  }

  if (kr->n == kr->cap) {
    size_t cap = kr->cap ? kr->cap * 2 : 8;
    struct key_entry *keys = realloc(kr->keys, cap * sizeof *keys);
    if (!keys)
      goto oom;
    kr->keys = keys;
    kr->cap = cap;
  }
  struct key_entry *e = &kr->keys[kr->n];
  memset(e, 0, sizeof *e);
  memcpy(e->digest, digest, 32);
  e->id = strdup(id);
  e->scopes = strdup(joined);
  if (!e->id || !e->scopes) {
    free(e->id);
    free(e->scopes);
    goto oom;
  }
  if (limit) {
    e->has_limit = 1;
    e->limit = *limit;
    if (!e->limit.burst)
      e->limit.burst = e->limit.rate;
  }
  kr->n++;
  if (kr->n * 2 > kr->nslots) {
    if (rehash(kr, kr->nslots ? kr->nslots * 2 : 16) != 0) {
      kr->n--;
      free(e->id);
      free(e->scopes);
      goto oom;
    }
  } else {
    size_t i = slot_of(digest, kr->nslots - 1);
    while (kr->slot[i])
      i = (i + 1) & (kr->nslots - 1);
    kr->slot[i] = (uint32_t)kr->n;
  }
  return 0;
oom:
  set_why(why, why_len, "out of memory");
  return STRATA_EINTERNAL;
}

int auth_api_key(const struct auth_keyring *kr, const char *presented, size_t len,
                 struct auth_identity *out) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  memset(out, 0, sizeof *out);
  if (!kr || !presented || len == 0 || len > AUTH_KEY_MAX)
    return STRATA_EUNAUTHORIZED;
  if (!EVP_Digest(presented, len, digest, &dlen, kr->sha256, NULL) || dlen != 32) {
    ERR_clear_error();
    return STRATA_EINTERNAL;
  }
  const struct key_entry *e = lookup(kr, digest);
  if (!e)
    return STRATA_EUNAUTHORIZED;
  out->kind = AUTH_KIND_API_KEY;
  snprintf(out->subject, sizeof out->subject, "%s", e->id);
  snprintf(out->scopes, sizeof out->scopes, "%s", e->scopes);
  out->has_limit = e->has_limit;
  out->limit = e->limit;
  return 0;
}

int auth_hash_key(const char *key, char hex[65]) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  hex[0] = '\0';
  if (!key || !EVP_Digest(key, strlen(key), digest, &dlen, EVP_sha256(), NULL) || dlen != 32) {
    ERR_clear_error();
    return STRATA_EINTERNAL;
  }
  to_hex(digest, 32, hex);
  return 0;
}

/* ---- JWT: configuration ------------------------------------------------ */

void auth_jwt_config_init(struct auth_jwt_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->leeway_s = AUTH_JWT_DEFAULT_LEEWAY_S;
  cfg->require_exp = 1;
}

static int looks_like_pem(const unsigned char *s, size_t n) {
  return memmem(s, n, "-----BEGIN", 10) != NULL;
}

static int hs_secret_usable(const struct auth_jwt_config *cfg) {
  return cfg->hs256_secret && cfg->hs256_secret_len >= AUTH_HS256_MIN_SECRET &&
         cfg->hs256_secret_len <= INT32_MAX &&
         !looks_like_pem(cfg->hs256_secret, cfg->hs256_secret_len);
}

/* Parses a PEM public key; NULL when it is not one. */
static EVP_PKEY *read_public_pem(const char *pem) {
  BIO *bio = BIO_new_mem_buf(pem, -1);
  EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  ERR_clear_error();
  return pk;
}

int auth_jwt_config_check(const struct auth_jwt_config *cfg, char *why, size_t why_len) {
  int rc = STRATA_EVALIDATION;
  EVP_PKEY *pk = NULL;
  if (!cfg || !cfg->algs || (cfg->algs & ~(unsigned)(AUTH_JWT_HS256 | AUTH_JWT_RS256 | AUTH_JWT_ES256))) {
    set_why(why, why_len, "pin at least one algorithm of HS256, RS256, ES256");
    return rc;
  }
  if (cfg->algs & AUTH_JWT_HS256) {
    if (!cfg->hs256_secret || cfg->hs256_secret_len < AUTH_HS256_MIN_SECRET) {
      set_why(why, why_len, "HS256 secret must be at least 32 bytes");
      return rc;
    }
    if (!hs_secret_usable(cfg)) {
      set_why(why, why_len, "HS256 secret is a PEM key: configure it as RS256/ES256 instead");
      return rc;
    }
  }
  if (cfg->algs & AUTH_JWT_RS256) {
    pk = cfg->rs256_public_pem ? read_public_pem(cfg->rs256_public_pem) : NULL;
    if (!pk || EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
      set_why(why, why_len, "RS256 key must be an RSA public key in PEM");
      goto done;
    }
    if (EVP_PKEY_get_bits(pk) < 2048) {
      set_why(why, why_len, "RS256 key must have at least 2048 bits");
      goto done;
    }
    EVP_PKEY_free(pk);
    pk = NULL;
  }
  if (cfg->algs & AUTH_JWT_ES256) {
    char group[64] = "";
    pk = cfg->es256_public_pem ? read_public_pem(cfg->es256_public_pem) : NULL;
    if (!pk || EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC ||
        !EVP_PKEY_get_group_name(pk, group, sizeof group, NULL) ||
        strcmp(group, "prime256v1") != 0) {
      set_why(why, why_len, "ES256 key must be an EC P-256 public key in PEM");
      goto done;
    }
  }
  if (cfg->leeway_s > 600) {
    set_why(why, why_len, "JWT leeway must be at most 600 s");
    goto done;
  }
  rc = 0;
done:
  EVP_PKEY_free(pk);
  ERR_clear_error();
  return rc;
}

/* ---- JWT: verification ------------------------------------------------- */

static int b64url_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-')
    return 62;
  if (c == '_')
    return 63;
  return -1;
}

/* Strict base64url without padding (RFC 7515 2): unused trailing bits must
 * be zero, so every byte string has exactly one encoding. out holds at least
 * n * 3 / 4 bytes. Returns the decoded length, or -1. */
static long b64url_decode(const char *in, size_t n, unsigned char *out) {
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  if (n % 4 == 1)
    return -1;
  for (size_t i = 0; i < n; i++) {
    int v = b64url_value((unsigned char)in[i]);
    if (v < 0)
      return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0)
    return -1;
  return (long)o;
}

/* Decodes a base64url segment holding a JSON object; NULL when it is not
 * one, has duplicate names or holds NUL characters. */
static json_t *decode_json_segment(const char *seg, size_t n) {
  unsigned char *buf = malloc(n * 3 / 4 + 1);
  if (!buf)
    return NULL;
  long len = b64url_decode(seg, n, buf);
  json_t *j = NULL;
  if (len > 0)
    j = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
  free(buf);
  if (j && !json_is_object(j)) {
    json_decref(j);
    j = NULL;
  }
  return j;
}

/* NumericDate claim: -1 absent, -2 not a number, else 0 and *out. */
static int numeric_date(const json_t *claims, const char *name, double *out) {
  const json_t *v = json_object_get(claims, name);
  if (!v)
    return -1;
  if (!json_is_number(v))
    return -2;
  *out = json_number_value(v);
  return 0;
}

static int audience_matches(const json_t *aud, const char *want) {
  if (json_is_string(aud))
    return strcmp(json_string_value(aud), want) == 0;
  if (json_is_array(aud)) {
    size_t i;
    const json_t *v;
    json_array_foreach(aud, i, v) {
      if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
        return 1;
    }
  }
  return 0;
}

/* Fills out->scopes from `scope` or else `scp`; -1 when malformed. */
static int claim_scopes(const json_t *claims, struct auth_identity *out) {
  size_t len = 0;
  const json_t *v = json_object_get(claims, "scope");
  if (v && !json_is_string(v))
    return -1; /* RFC 8693 4.2: a space-separated string */
  if (!v)
    v = json_object_get(claims, "scp");
  if (!v)
    return 0;
  if (json_is_string(v))
    return scope_append_list(out->scopes, &len, json_string_value(v), json_string_length(v));
  if (!json_is_array(v))
    return -1;
  size_t i;
  const json_t *s;
  json_array_foreach(v, i, s) {
    if (!json_is_string(s) ||
        scope_append(out->scopes, &len, json_string_value(s), json_string_length(s)) != 0)
      return -1;
  }
  return 0;
}

static int check_claims(const struct auth_jwt_config *cfg, const json_t *claims, uint64_t now_s,
                        struct auth_identity *out, char *why, size_t why_len) {
  const double now = (double)now_s, leeway = cfg->leeway_s;
  double t = 0;
  int r = numeric_date(claims, "exp", &t);
  if (r == -2 || (r == -1 && cfg->require_exp)) {
    set_why(why, why_len, r == -2 ? "exp is not a number" : "token has no exp");
    return -1;
  }
  if (r == 0) {
    if (now >= t + leeway) {
      set_why(why, why_len, "token expired");
      return -1;
    }
    out->expires_s = t <= 0 ? 0 : t >= 1.8e19 ? UINT64_MAX : (uint64_t)t;
  }
  r = numeric_date(claims, "nbf", &t);
  if (r == -2) {
    set_why(why, why_len, "nbf is not a number");
    return -1;
  }
  if (r == 0 && now + leeway < t) {
    set_why(why, why_len, "token not yet valid");
    return -1;
  }
  const json_t *iss = json_object_get(claims, "iss");
  if (cfg->issuer && (!json_is_string(iss) || strcmp(json_string_value(iss), cfg->issuer) != 0)) {
    set_why(why, why_len, "wrong issuer");
    return -1;
  }
  const json_t *aud = json_object_get(claims, "aud");
  if (cfg->audience ? !aud || !audience_matches(aud, cfg->audience) : aud != NULL) {
    set_why(why, why_len, "wrong audience");
    return -1;
  }
  const json_t *sub = json_object_get(claims, "sub");
  size_t sublen = json_is_string(sub) ? json_string_length(sub) : 0;
  if (sublen == 0 || sublen > AUTH_SUBJECT_MAX || !all_vchar(json_string_value(sub), sublen)) {
    set_why(why, why_len, "missing or invalid sub");
    return -1;
  }
  memcpy(out->subject, json_string_value(sub), sublen);
  out->subject[sublen] = '\0';
  if (claim_scopes(claims, out) != 0) {
    set_why(why, why_len, "invalid scope claim");
    return -1;
  }
  return 0;
}

int auth_jwt(const struct auth_jwt_config *cfg, const char *token, size_t len, uint64_t now_s,
             struct auth_identity *out, char *why, size_t why_len) {
  int rc = STRATA_EUNAUTHORIZED;
  json_t *header = NULL, *claims = NULL;
  char *copy = NULL;
  jwt_t *jwt = NULL;

  memset(out, 0, sizeof *out);
  set_why(why, why_len, "");
  if (!cfg || !token)
    return STRATA_EINTERNAL;
  if (len == 0 || len > AUTH_JWT_MAX) {
    set_why(why, why_len, len ? "token too long" : "empty token");
    return rc;
  }

  /* Structure: three base64url segments; header and payload non-empty. */
  size_t dot1 = 0, dot2 = 0, dots = 0;
  for (size_t i = 0; i < len; i++) {
    if (token[i] == '.') {
      if (++dots == 1)
        dot1 = i;
      else if (dots == 2)
        dot2 = i;
      else
        break;
    } else if (b64url_value((unsigned char)token[i]) < 0) {
      dots = 99;
      break;
    }
  }
  if (dots != 2 || dot1 == 0 || dot2 == dot1 + 1) {
    set_why(why, why_len, "malformed token");
    return rc;
  }
  if (dot2 + 1 == len) {
    set_why(why, why_len, "unsigned token");
    return rc;
  }

  /* The algorithm, read by us and checked against the pinned set. */
  header = decode_json_segment(token, dot1);
  const char *alg = header ? json_string_value(json_object_get(header, "alg")) : NULL;
  if (!alg) {
    set_why(why, why_len, "malformed token header");
    goto done;
  }
  if (json_object_get(header, "crit")) {
    set_why(why, why_len, "unsupported critical header");
    goto done;
  }
  unsigned want;
  jwt_alg_t jalg;
  const unsigned char *key = NULL;
  size_t keylen = 0;
  if (strcmp(alg, "HS256") == 0) {
    want = AUTH_JWT_HS256, jalg = JWT_ALG_HS256;
    if (hs_secret_usable(cfg))
      key = cfg->hs256_secret, keylen = cfg->hs256_secret_len;
  } else if (strcmp(alg, "RS256") == 0) {
    want = AUTH_JWT_RS256, jalg = JWT_ALG_RS256;
    if (cfg->rs256_public_pem)
      key = (const unsigned char *)cfg->rs256_public_pem, keylen = strlen(cfg->rs256_public_pem);
  } else if (strcmp(alg, "ES256") == 0) {
    want = AUTH_JWT_ES256, jalg = JWT_ALG_ES256;
    if (cfg->es256_public_pem)
      key = (const unsigned char *)cfg->es256_public_pem, keylen = strlen(cfg->es256_public_pem);
  } else {
    want = 0, jalg = JWT_ALG_INVAL; /* "none" and everything else */
  }
  if (!(cfg->algs & want) || !key || keylen == 0 || keylen > INT32_MAX) {
    set_why(why, why_len, "algorithm not accepted");
    goto done;
  }

  /* HS256: our own constant-time check before libjwt's strcmp() sees it. */
  if (want == AUTH_JWT_HS256) {
    unsigned char sig[64], mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t siglen = len - dot2 - 1;
    long n = siglen <= 86 ? b64url_decode(token + dot2 + 1, siglen, sig) : -1;
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)token, dot2, mac, &maclen)) {
      ERR_clear_error();
      rc = STRATA_EINTERNAL;
      goto done;
    }
    if (n != 32 || maclen != 32 || CRYPTO_memcmp(sig, mac, 32) != 0) {
      set_why(why, why_len, "bad signature");
      goto done;
    }
  }

  /* Claims, from the payload bytes the signature covers: read before
   * libjwt, whose refusal of a payload it cannot parse looks like a bad
   * signature. */
  claims = decode_json_segment(token + dot1 + 1, dot2 - dot1 - 1);
  if (!claims) {
    set_why(why, why_len, "malformed token payload");
    goto done;
  }

  copy = malloc(len + 1);
  if (!copy) {
    rc = STRATA_EINTERNAL;
    goto done;
  }
  memcpy(copy, token, len);
  copy[len] = '\0';
  int jr = jwt_decode(&jwt, copy, key, (int)keylen);
  ERR_clear_error();
  if (jr != 0 || !jwt) {
    if (jr == ENOMEM)
      rc = STRATA_EINTERNAL;
    set_why(why, why_len, "bad signature");
    goto done;
  }
  if (jwt_get_alg(jwt) != jalg) {
    set_why(why, why_len, "algorithm not accepted");
    goto done;
  }

  if (check_claims(cfg, claims, now_s, out, why, why_len) != 0)
    goto done;
  out->kind = AUTH_KIND_JWT;
  set_why(why, why_len, "");
  rc = 0;
done:
  if (rc != 0) {
    out->kind = AUTH_KIND_NONE;
    out->subject[0] = out->scopes[0] = '\0';
    out->expires_s = 0;
  }
  jwt_free(jwt);
  free(copy);
  json_decref(header);
  json_decref(claims);
  return rc;
}

/* ---- scopes and challenges -------------------------------------------- */

int auth_has_scope(const struct auth_identity *id, const char *scope) {
  if (!scope || !*scope)
    return 1;
  if (!id)
    return 0;
  size_t n = strlen(scope);
  const char *p = id->scopes;
  while (*p) {
    const char *end = strchr(p, ' ');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && memcmp(p, scope, n) == 0)
      return 1;
    if (!end)
      break;
    p = end + 1;
  }
  return 0;
}

int auth_challenge_status(enum auth_challenge c) {
  switch (c) {
  case AUTH_CHALLENGE_INVALID_REQUEST:
    return 400;
  case AUTH_CHALLENGE_INSUFFICIENT_SCOPE:
    return 403;
  case AUTH_CHALLENGE_MISSING:
  case AUTH_CHALLENGE_INVALID_TOKEN:
  default:
    return 401;
  }
}

struct out {
  char *p;
  size_t len, cap;
  int full;
};

static void put(struct out *o, const char *s, size_t n) {
  if (o->full || o->len + n >= o->cap) {
    o->full = 1;
    return;
  }
  memcpy(o->p + o->len, s, n);
  o->len += n;
  o->p[o->len] = '\0';
}

static void puts_(struct out *o, const char *s) { put(o, s, strlen(s)); }

/* Appends <sep>name="value" with value reduced to the characters allowed,
 * at most 200 of them. scope_list: the scope grammar (scope-tokens and
 * spaces); else RFC 6750's error_description set (%x20-21 / %x23-5B /
 * %x5D-7E), which is also a safe quoted-string for realm. */
static void put_param(struct out *o, const char *sep, const char *name, const char *value,
                      int scope_list) {
  puts_(o, sep);
  puts_(o, name);
  puts_(o, "=\"");
  size_t kept = 0;
  for (const char *s = value; *s && kept < 200; s++) {
    unsigned char c = (unsigned char)*s;
    if (scope_list ? is_scope_char(c) || c == ' ' : c == 0x20 || is_scope_char(c)) {
      put(o, s, 1);
      kept++;
    }
  }
  puts_(o, "\"");
}

size_t auth_www_authenticate(unsigned schemes, enum auth_challenge c, const char *realm,
                             const char *description, const char *scope, char *out, size_t cap) {
  static const char *const errors[] = {
      [AUTH_CHALLENGE_INVALID_REQUEST] = "invalid_request",
      [AUTH_CHALLENGE_INVALID_TOKEN] = "invalid_token",
      [AUTH_CHALLENGE_INSUFFICIENT_SCOPE] = "insufficient_scope",
  };
  struct out o = {out, 0, cap, 0};
  if (!out || cap == 0)
    return 0;
  out[0] = '\0';
  if (!(schemes & (AUTH_SCHEME_BEARER | AUTH_SCHEME_API_KEY)))
    schemes = AUTH_SCHEME_BEARER;
  static const struct {
    unsigned bit;
    const char *name;
  } order[] = {{AUTH_SCHEME_BEARER, "Bearer"}, {AUTH_SCHEME_API_KEY, "ApiKey"}};
  int first = 1;
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    if (!(schemes & order[i].bit))
      continue;
    if (!first)
      puts_(&o, ", ");
    first = 0;
    puts_(&o, order[i].name);
    put_param(&o, " ", "realm", realm ? realm : "strata", 0);
    if (c > AUTH_CHALLENGE_MISSING && c <= AUTH_CHALLENGE_INSUFFICIENT_SCOPE) {
      put_param(&o, ", ", "error", errors[c], 0);
      if (description && *description)
        put_param(&o, ", ", "error_description", description, 0);
      if (c == AUTH_CHALLENGE_INSUFFICIENT_SCOPE && scope && *scope)
        put_param(&o, ", ", "scope", scope, 1);
    }
  }
  if (o.full) {
    out[0] = '\0';
    return 0;
  }
  return o.len;
}
