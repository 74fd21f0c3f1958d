/* Unit tests for src/gateway/auth.c.
 *
 * Every token here is made in the test: with libjwt (jwt_new, jwt_add_grant,
 * jwt_set_alg, jwt_encode_str) the way an identity provider would, and by
 * hand (base64url + HMAC or an EVP signature) where a token must be shaped
 * in a way libjwt would not produce: alg "none", duplicate header names,
 * `crit`, HS256 signed with an RSA public key as the secret (the classic
 * algorithm confusion), ES256 in the raw R||S form of RFC 7518. RSA and EC
 * keys are generated once per run with OpenSSL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "../support.h"

#include "core/error.h"
#include "gateway/auth.h"

#define NOW 1700000000ull

static const char hs_secret[] = "0123456789abcdef0123456789abcdef-strata-test";

static char *rsa_priv, *rsa_pub, *rsa2_priv, *rsa_small_pub, *ec_priv, *ec_pub;
static EVP_PKEY *rsa_key, *ec_key;

/* ---- keys and tokens --------------------------------------------------- */

static char *pem_of(EVP_PKEY *pk, int private) {
  BIO *bio = BIO_new(BIO_s_mem());
  assert_non_null(bio);
  if (private)
    assert_int_equal(PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL), 1);
  else
    assert_int_equal(PEM_write_bio_PUBKEY(bio, pk), 1);
  char *data;
  long n = BIO_get_mem_data(bio, &data);
  char *out = malloc((size_t)n + 1);
  memcpy(out, data, (size_t)n);
  out[n] = '\0';
  BIO_free(bio);
  return out;
}

static int setup_keys(void **state) {
  (void)state;
  rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  EVP_PKEY *rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
  ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  if (!rsa_key || !rsa2 || !small || !ec_key)
    return -1;
  rsa_priv = pem_of(rsa_key, 1);
  rsa_pub = pem_of(rsa_key, 0);
  rsa2_priv = pem_of(rsa2, 1);
  rsa_small_pub = pem_of(small, 0);
  ec_priv = pem_of(ec_key, 1);
  ec_pub = pem_of(ec_key, 0);
  EVP_PKEY_free(rsa2);
  EVP_PKEY_free(small);
  return 0;
}

static int teardown_keys(void **state) {
  (void)state;
  free(rsa_priv), free(rsa_pub), free(rsa2_priv), free(rsa_small_pub);
  free(ec_priv), free(ec_pub);
  EVP_PKEY_free(rsa_key);
  EVP_PKEY_free(ec_key);
  return 0;
}

static void b64url(const unsigned char *in, size_t n, char *out) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    acc = (acc << 8) | in[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out[o++] = tab[(acc >> bits) & 63];
    }
  }
  if (bits)
    out[o++] = tab[(acc << (6 - bits)) & 63];
  out[o] = '\0';
}

enum sign { SIGN_NONE, SIGN_HS256, SIGN_RS256, SIGN_ES256 };

/* header.payload.signature by hand; key: the HMAC secret (SIGN_HS256). */
static char *craft(const char *header, const char *payload, enum sign how, const char *secret,
                   size_t secret_len) {
  size_t cap = 4 * (strlen(header) + strlen(payload)) + 1024;
  char *tok = malloc(cap);
  b64url((const unsigned char *)header, strlen(header), tok);
  strcat(tok, ".");
  b64url((const unsigned char *)payload, strlen(payload), tok + strlen(tok));
  size_t signed_len = strlen(tok);
  strcat(tok, ".");
  unsigned char sig[512];
  size_t siglen = 0;
  if (how == SIGN_HS256) {
    unsigned int n = 0;
    assert_non_null(HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)tok,
                         signed_len, sig, &n));
    siglen = n;
  } else if (how == SIGN_RS256 || how == SIGN_ES256) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char der[512];
    size_t derlen = sizeof der;
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
                                        how == SIGN_RS256 ? rsa_key : ec_key), 1);
    assert_int_equal(EVP_DigestSign(md, der, &derlen, (const unsigned char *)tok, signed_len), 1);
    EVP_MD_CTX_free(md);
    if (how == SIGN_RS256) {
      memcpy(sig, der, derlen);
      siglen = derlen;
    } else { /* DER ECDSA-Sig-Value -> R || S, 32 bytes each (RFC 7518 3.4) */
      const unsigned char *p = der;
      ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
      assert_non_null(es);
      const BIGNUM *r, *s;
      ECDSA_SIG_get0(es, &r, &s);
      BN_bn2binpad(r, sig, 32);
      BN_bn2binpad(s, sig + 32, 32);
      ECDSA_SIG_free(es);
      siglen = 64;
    }
  }
  b64url(sig, siglen, tok + strlen(tok));
  return tok;
}

static char *craft_hs(const char *header, const char *payload) {
  return craft(header, payload, SIGN_HS256, hs_secret, strlen(hs_secret));
}

/* A token made by libjwt: claims as a JSON object, signed with alg/key. */
static char *libjwt_token(jwt_alg_t alg, const char *key, const char *claims_json) {
  jwt_t *jwt = NULL;
  assert_int_equal(jwt_new(&jwt), 0);
  assert_int_equal(jwt_add_grants_json(jwt, claims_json), 0);
  assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)strlen(key)), 0);
  char *s = jwt_encode_str(jwt);
  assert_non_null(s);
  jwt_free(jwt);
  return s; /* libjwt 1.10 has no jwt_free_str: free() it */
}

/* The usual claims: sub, scope, exp an hour after NOW. */
static char *libjwt_default(jwt_alg_t alg, const char *key) {
  jwt_t *jwt = NULL;
  assert_int_equal(jwt_new(&jwt), 0);
  assert_int_equal(jwt_add_grant(jwt, "sub", "user-42"), 0);
  assert_int_equal(jwt_add_grant(jwt, "scope", "orders:read users:read"), 0);
  assert_int_equal(jwt_add_grant_int(jwt, "exp", (long)NOW + 3600), 0);
  assert_int_equal(jwt_add_grant_int(jwt, "iat", (long)NOW), 0);
  assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)strlen(key)), 0);
  char *s = jwt_encode_str(jwt);
  assert_non_null(s);
  jwt_free(jwt);
  return s;
}

static struct auth_jwt_config hs_config(void) {
  struct auth_jwt_config c;
  auth_jwt_config_init(&c);
  c.algs = AUTH_JWT_HS256;
  c.hs256_secret = (const unsigned char *)hs_secret;
  c.hs256_secret_len = strlen(hs_secret);
  return c;
}

static struct auth_jwt_config rs_config(void) {
  struct auth_jwt_config c;
  auth_jwt_config_init(&c);
  c.algs = AUTH_JWT_RS256;
  c.rs256_public_pem = rsa_pub;
  return c;
}

static struct auth_jwt_config all_config(void) {
  struct auth_jwt_config c = hs_config();
  c.algs = AUTH_JWT_HS256 | AUTH_JWT_RS256 | AUTH_JWT_ES256;
  c.rs256_public_pem = rsa_pub;
  c.es256_public_pem = ec_pub;
  return c;
}

static int verify(const struct auth_jwt_config *c, const char *tok, uint64_t now,
                  struct auth_identity *id, char *why) {
  return auth_jwt(c, tok, strlen(tok), now, id, why, AUTH_WHY_MAX);
}

/* tok must be refused with exactly this reason. */
static void expect_refused(const struct auth_jwt_config *c, const char *tok, uint64_t now,
                           const char *reason) {
  struct auth_identity id;
  char why[AUTH_WHY_MAX];
  int rc = verify(c, tok, now, &id, why);
  if (rc != STRATA_EUNAUTHORIZED)
    fail_msg("token accepted (rc %d), expected \"%s\": %s", rc, reason, tok);
  assert_string_equal(why, reason);
  assert_int_equal(id.kind, AUTH_KIND_NONE);
  assert_string_equal(id.subject, "");
}

static void expect_accepted(const struct auth_jwt_config *c, const char *tok, uint64_t now,
                            struct auth_identity *id) {
  char why[AUTH_WHY_MAX];
  int rc = verify(c, tok, now, id, why);
  if (rc != 0)
    fail_msg("token refused (rc %d): %s", rc, why);
  assert_int_equal(id->kind, AUTH_KIND_JWT);
}

/* ---- JWT: the happy paths ---------------------------------------------- */

static void test_jwt_hs256_valid(void **state) {
  (void)state;
  struct auth_jwt_config c = hs_config();
  assert_int_equal(auth_jwt_config_check(&c, NULL, 0), 0);
  char *tok = libjwt_default(JWT_ALG_HS256, hs_secret);
  struct auth_identity id;
  expect_accepted(&c, tok, NOW, &id);
  assert_string_equal(id.subject, "user-42");
  assert_string_equal(id.scopes, "orders:read users:read");
  assert_int_equal(id.expires_s, NOW + 3600);
  assert_true(auth_has_scope(&id, "orders:read"));
  assert_true(auth_has_scope(&id, "users:read"));
  assert_false(auth_has_scope(&id, "orders"));
  assert_false(auth_has_scope(&id, "orders:write"));
  assert_true(auth_has_scope(&id, NULL));
  free(tok);
}

static void test_jwt_rs256_and_es256_valid(void **state) {
  (void)state;
  struct auth_jwt_config c = all_config();
  char why[AUTH_WHY_MAX];
  assert_int_equal(auth_jwt_config_check(&c, why, sizeof why), 0);
  struct auth_identity id;
  char *rs = libjwt_default(JWT_ALG_RS256, rsa_priv);
  char *es = libjwt_default(JWT_ALG_ES256, ec_priv);
  expect_accepted(&c, rs, NOW, &id);
  assert_string_equal(id.subject, "user-42");
  expect_accepted(&c, es, NOW, &id);
  assert_string_equal(id.subject, "user-42");
  /* Tokens signed outside libjwt, in the encodings of RFC 7518. */
  const char *payload = "{\"sub\":\"svc\",\"exp\":1700003600}";
  char *rs2 = craft("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", payload, SIGN_RS256, NULL, 0);
  char *es2 = craft("{\"alg\":\"ES256\",\"kid\":\"k1\"}", payload, SIGN_ES256, NULL, 0);
  expect_accepted(&c, rs2, NOW, &id);
  assert_string_equal(id.subject, "svc");
  expect_accepted(&c, es2, NOW, &id);
  /* Each only under its own pinned algorithm. */
  struct auth_jwt_config only_es = c;
  only_es.algs = AUTH_JWT_ES256;
  expect_refused(&only_es, rs, NOW, "algorithm not accepted");
  expect_accepted(&only_es, es, NOW, &id);
  struct auth_jwt_config only_rs = rs_config();
  expect_refused(&only_rs, es, NOW, "algorithm not accepted");
  free(rs), free(es), free(rs2), free(es2);
}

/* ---- JWT: time --------------------------------------------------------- */

static void test_jwt_exp_nbf_and_leeway(void **state) {
  (void)state;
  struct auth_jwt_config c = hs_config();
  struct auth_identity id;
  char claims[256];
  char *tok;

  snprintf(claims, sizeof claims, "{\"sub\":\"u\",\"exp\":%llu}", NOW - 10);
  tok = libjwt_token(JWT_ALG_HS256, hs_secret, claims);
  expect_accepted(&c, tok, NOW, &id); /* 10 s late, within 30 s leeway */
  c.leeway_s = 0;
  expect_refused(&c, tok, NOW, "token expired");
  c.leeway_s = 30;
  free(tok);

  snprintf(claims, sizeof claims, "{\"sub\":\"u\",\"exp\":%llu}", NOW - 30);
  tok = libjwt_token(JWT_ALG_HS256, hs_secret, claims);
  expect_refused(&c, tok, NOW, "token expired"); /* exp + leeway is already too late */
  expect_accepted(&c, tok, NOW - 1, &id);
  free(tok);

  snprintf(claims, sizeof claims, "{\"sub\":\"u\",\"exp\":%llu,\"nbf\":%llu}", NOW + 600,
           NOW + 20);
  tok = libjwt_token(JWT_ALG_HS256, hs_secret, claims);
  expect_accepted(&c, tok, NOW, &id); /* not before NOW+20, leeway 30 */
  c.leeway_s = 10;
  expect_refused(&c, tok, NOW, "token not yet valid");
  expect_accepted(&c, tok, NOW + 10, &id);
  c.leeway_s = 30;
  free(tok);

  snprintf(claims, sizeof claims, "{\"sub\":\"u\",\"exp\":%llu,\"nbf\":%llu}", NOW + 600,
           NOW + 31);
  tok = libjwt_token(JWT_ALG_HS256, hs_secret, claims);
  expect_refused(&c, tok, NOW, "token not yet valid");
  free(tok);

  /* exp is required by default, and must be a number (a real is fine). */
  tok = libjwt_token(JWT_ALG_HS256, hs_secret, "{\"sub\":\"u\"}");
  expect_refused(&c, tok, NOW, "token has no exp");
  c.require_exp = 0;
  expect_accepted(&c, tok, NOW, &id);
  assert_int_equal(id.expires_s, 0);
  c.require_exp = 1;
  free(tok);
  tok = craft_hs("{\"alg\":\"HS256\"}", "{\"sub\":\"u\",\"exp\":\"1800000000\"}");
  expect_refused(&c, tok, NOW, "exp is not a number");
  free(tok);
  tok = craft_hs("{\"alg\":\"HS256\"}", "{\"sub\":\"u\",\"exp\":1700000100.5}");
  expect_accepted(&c, tok, NOW, &id);
  assert_int_equal(id.expires_s, NOW + 100);
  free(tok);
  tok = craft_hs("{\"alg\":\"HS256\"}", "{\"sub\":\"u\",\"exp\":1e300}");
  expect_accepted(&c, tok, NOW, &id);
  assert_int_equal(id.expires_s, UINT64_MAX);
  free(tok);
  tok = craft_hs("{\"alg\":\"HS256\"}", "{\"sub\":\"u\",\"exp\":1800000000,\"nbf\":null}");
  expect_refused(&c, tok, NOW, "nbf is not a number");
  free(tok);
}

/* ---- JWT: iss and aud -------------------------------------------------- */

static void test_jwt_issuer_and_audience(void **state) {
  (void)state;
  struct auth_jwt_config c = hs_config();
  c.issuer = "https://idp.example";
  c.audience = "strata";
  struct auth_identity id;
  static const struct {
    const char *claims;
    const char *refusal; /* NULL: accepted */
  } cases[] = {
      {"{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp.example\",\"aud\":\"strata\"}", NULL},
      {"{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp.example\",\"aud\":[\"billing\",\"strata\"]}", NULL},
      {"{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://evil.example\",\"aud\":\"strata\"}", "wrong issuer"},
      {"{\"sub\":\"u\",\"exp\":1800000000,\"aud\":\"strata\"}", "wrong issuer"},
      {"{\"sub\":\"u\",\"exp\":1800000000,\"iss\":[\"https://idp.example\"],\"aud\":\"strata\"}", "wrong issuer"},
      {"{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp.example\",\"aud\":\"billing\"}", "wrong audience"},
      {"{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp.example\",\"aud\":[\"billing\",\"x\"]}", "wrong audience"},
      {"{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp.example\",\"aud\":[]}", "wrong audience"},
      {"{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp.example\",\"aud\":\"Strata\"}", "wrong audience"},
      {"{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp.example\",\"aud\":7}", "wrong audience"},
      {"{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp.example\"}", "wrong audience"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *tok = libjwt_token(JWT_ALG_HS256, hs_secret, cases[i].claims);
    if (cases[i].refusal)
      expect_refused(&c, tok, NOW, cases[i].refusal);
    else
      expect_accepted(&c, tok, NOW, &id);
    free(tok);
  }
  /* With no audience configured, a token meant for some audience is not
   * ours to accept; one without aud is. */
  c.audience = NULL;
  char *tok = libjwt_token(JWT_ALG_HS256, hs_secret,
                           "{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp.example\",\"aud\":\"strata\"}");
  expect_refused(&c, tok, NOW, "wrong audience");
  free(tok);
  tok = libjwt_token(JWT_ALG_HS256, hs_secret,
                     "{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp.example\"}");
  expect_accepted(&c, tok, NOW, &id);
  free(tok);
}

/* ---- JWT: subject and scopes -------------------------------------------- */

static void test_jwt_subject_and_scopes(void **state) {
  (void)state;
  struct auth_jwt_config c = hs_config();
  struct auth_identity id;
  char *tok;

  tok = craft_hs("{\"alg\":\"HS256\"}", "{\"sub\":\"u\",\"exp\":1800000000,\"scp\":[\"a:read\",\"b:write\"]}");
  expect_accepted(&c, tok, NOW, &id);
  assert_string_equal(id.scopes, "a:read b:write");
  free(tok);
  tok = craft_hs("{\"alg\":\"HS256\"}", "{\"sub\":\"u\",\"exp\":1800000000,\"scp\":\"x y\"}");
  expect_accepted(&c, tok, NOW, &id);
  assert_string_equal(id.scopes, "x y");
  free(tok);
  /* scope wins over scp; runs of spaces collapse. */
  tok = craft_hs("{\"alg\":\"HS256\"}", "{\"sub\":\"u\",\"exp\":1800000000,\"scope\":\"  a   b \",\"scp\":[\"c\"]}");
  expect_accepted(&c, tok, NOW, &id);
  assert_string_equal(id.scopes, "a b");
  assert_false(auth_has_scope(&id, "c"));
  free(tok);
  tok = craft_hs("{\"alg\":\"HS256\"}", "{\"sub\":\"u\",\"exp\":1800000000}");
  expect_accepted(&c, tok, NOW, &id);
  assert_string_equal(id.scopes, "");
  assert_false(auth_has_scope(&id, "a"));
  free(tok);

  static const char *const bad_scopes[] = {
      "{\"sub\":\"u\",\"exp\":1800000000,\"scope\":\"a \\\"b\\\"\"}",
      "{\"sub\":\"u\",\"exp\":1800000000,\"scope\":\"a\\\\b\"}",
      "{\"sub\":\"u\",\"exp\":1800000000,\"scope\":[\"a\"]}",
      "{\"sub\":\"u\",\"exp\":1800000000,\"scp\":[\"a b\"]}",
      "{\"sub\":\"u\",\"exp\":1800000000,\"scp\":[\"\"]}",
      "{\"sub\":\"u\",\"exp\":1800000000,\"scp\":[1]}",
      "{\"sub\":\"u\",\"exp\":1800000000,\"scp\":\"caf\\u00e9\"}",
  };
  for (size_t i = 0; i < sizeof bad_scopes / sizeof bad_scopes[0]; i++) {
    tok = craft_hs("{\"alg\":\"HS256\"}", bad_scopes[i]);
    expect_refused(&c, tok, NOW, "invalid scope claim");
    free(tok);
  }
  /* Too many scopes for AUTH_SCOPES_MAX. */
  char big[4096] = "{\"sub\":\"u\",\"exp\":1800000000,\"scope\":\"";
  for (int i = 0; i < 300; i++)
    strcat(big, "abcd ");
  strcat(big, "\"}");
  tok = craft_hs("{\"alg\":\"HS256\"}", big);
  expect_refused(&c, tok, NOW, "invalid scope claim");
  free(tok);

  static const char *const bad_subs[] = {
      "{\"exp\":1800000000}",
      "{\"sub\":\"\",\"exp\":1800000000}",
      "{\"sub\":42,\"exp\":1800000000}",
      "{\"sub\":\"a b\",\"exp\":1800000000}",
      "{\"sub\":\"a\\nX-Strata-Identity: admin\",\"exp\":1800000000}",
      "{\"sub\":\"caf\\u00e9\",\"exp\":1800000000}",
  };
  for (size_t i = 0; i < sizeof bad_subs / sizeof bad_subs[0]; i++) {
    tok = craft_hs("{\"alg\":\"HS256\"}", bad_subs[i]);
    expect_refused(&c, tok, NOW, "missing or invalid sub");
    free(tok);
  }
  char longsub[400] = "{\"exp\":1800000000,\"sub\":\"";
  for (int i = 0; i < 256; i++)
    strcat(longsub, "s");
  strcat(longsub, "\"}");
  tok = craft_hs("{\"alg\":\"HS256\"}", longsub);
  expect_refused(&c, tok, NOW, "missing or invalid sub");
  free(tok);
}

/* ---- JWT: attacks ------------------------------------------------------ */

static void test_jwt_alg_none_always_refused(void **state) {
  (void)state;
  const char *payload = "{\"sub\":\"admin\",\"exp\":1800000000,\"scope\":\"admin\"}";
  static const char *const headers[] = {
      "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"none\"}", "{\"alg\":\"None\"}",
      "{\"alg\":\"NONE\"}", "{\"alg\":\"nOnE\"}", "{\"alg\":\"\"}",
  };
  struct auth_jwt_config configs[] = {hs_config(), rs_config(), all_config()};
  for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
    char *tok = craft(headers[i], payload, SIGN_NONE, NULL, 0); /* "h.p." */
    assert_int_equal(tok[strlen(tok) - 1], '.');
    for (size_t k = 0; k < 3; k++)
      expect_refused(&configs[k], tok, NOW, "unsigned token");
    free(tok);
    /* With some signature bytes attached, the alg itself is refused. */
    tok = craft(headers[i], payload, SIGN_HS256, hs_secret, strlen(hs_secret));
    for (size_t k = 0; k < 3; k++)
      expect_refused(&configs[k], tok, NOW, "algorithm not accepted");
    free(tok);
  }
  /* Even a config that pins nothing valid (or garbage bits) accepts none. */
  struct auth_jwt_config weird = hs_config();
  weird.algs = ~0u;
  char *tok = craft("{\"alg\":\"none\"}", payload, SIGN_HS256, hs_secret, strlen(hs_secret));
  expect_refused(&weird, tok, NOW, "algorithm not accepted");
  free(tok);
}

static void test_jwt_alg_confusion_refused(void **state) {
  (void)state;
  /* An attacker who knows the RSA public key signs HS256 with it as the
   * HMAC secret. A verifier that lets the token pick the algorithm would
   * check it with HMAC(public key) and accept. */
  char *tok = libjwt_default(JWT_ALG_HS256, rsa_pub);
  struct auth_jwt_config c = rs_config();
  expect_refused(&c, tok, NOW, "algorithm not accepted");
  /* Also when HS256 is pinned alongside, if its slot holds the PEM... */
  struct auth_jwt_config mixed = rs_config();
  mixed.algs |= AUTH_JWT_HS256;
  mixed.hs256_secret = (const unsigned char *)rsa_pub;
  mixed.hs256_secret_len = strlen(rsa_pub);
  char why[AUTH_WHY_MAX];
  assert_int_equal(auth_jwt_config_check(&mixed, why, sizeof why), STRATA_EVALIDATION);
  assert_non_null(strstr(why, "PEM"));
  expect_refused(&mixed, tok, NOW, "algorithm not accepted");
  /* ...and with a real HS secret, the RSA-keyed token fails its HMAC. */
  mixed.hs256_secret = (const unsigned char *)hs_secret;
  mixed.hs256_secret_len = strlen(hs_secret);
  expect_refused(&mixed, tok, NOW, "bad signature");
  free(tok);
  /* The same attack by hand, without libjwt. */
  tok = craft("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{\"sub\":\"admin\",\"exp\":1800000000}",
              SIGN_HS256, rsa_pub, strlen(rsa_pub));
  expect_refused(&c, tok, NOW, "algorithm not accepted");
  free(tok);
  /* An RS256 token checked against an EC key in the RS256 slot fails. */
  struct auth_jwt_config wrong = rs_config();
  wrong.rs256_public_pem = ec_pub;
  assert_int_equal(auth_jwt_config_check(&wrong, NULL, 0), STRATA_EVALIDATION);
  tok = libjwt_default(JWT_ALG_RS256, rsa_priv);
  expect_refused(&wrong, tok, NOW, "bad signature");
  free(tok);
  /* Other algorithms libjwt knows are not in the set we support. */
  tok = libjwt_default(JWT_ALG_HS512, hs_secret);
  struct auth_jwt_config hs = hs_config();
  expect_refused(&hs, tok, NOW, "algorithm not accepted");
  free(tok);
  tok = libjwt_default(JWT_ALG_RS512, rsa_priv);
  expect_refused(&c, tok, NOW, "algorithm not accepted");
  free(tok);
}

static void test_jwt_tampering_refused(void **state) {
  (void)state;
  struct auth_jwt_config c = all_config();
  const jwt_alg_t algs[] = {JWT_ALG_HS256, JWT_ALG_RS256, JWT_ALG_ES256};
  const char *keys[] = {hs_secret, rsa_priv, ec_priv};
  for (int a = 0; a < 3; a++) {
    char *tok = libjwt_default(algs[a], keys[a]);
    char *dot1 = strchr(tok, '.'), *dot2 = strchr(dot1 + 1, '.');
    struct auth_identity id;
    expect_accepted(&c, tok, NOW, &id);
    /* Swap the payload for one claiming more. */
    char forged_payload[256];
    const char *claims = "{\"sub\":\"admin\",\"scope\":\"admin\",\"exp\":1800000000}";
    b64url((const unsigned char *)claims, strlen(claims), forged_payload);
    char forged[4096];
    snprintf(forged, sizeof forged, "%.*s.%s%s", (int)(dot1 - tok), tok, forged_payload, dot2);
    expect_refused(&c, forged, NOW, "bad signature");
    /* Flip one character of the payload, then of the signature. */
    char *copy = strdup(tok);
    copy[dot1 - tok + 3] = copy[dot1 - tok + 3] == 'A' ? 'B' : 'A';
    struct auth_identity junk;
    char why[AUTH_WHY_MAX];
    assert_int_equal(verify(&c, copy, NOW, &junk, why), STRATA_EUNAUTHORIZED);
    free(copy);
    copy = strdup(tok);
    copy[dot2 - tok + 5] = copy[dot2 - tok + 5] == 'A' ? 'B' : 'A';
    expect_refused(&c, copy, NOW, "bad signature");
    free(copy);
    /* Signature from another key. */
    if (algs[a] == JWT_ALG_RS256) {
      char *other = libjwt_default(JWT_ALG_RS256, rsa2_priv);
      expect_refused(&c, other, NOW, "bad signature");
      free(other);
    }
    /* Signature cut off. */
    copy = strdup(tok);
    copy[dot2 - tok + 1] = '\0';
    expect_refused(&c, copy, NOW, "unsigned token");
    free(copy);
    free(tok);
  }
}

static void test_jwt_header_strictness(void **state) {
  (void)state;
  struct auth_jwt_config c = hs_config();
  const char *p = "{\"sub\":\"u\",\"exp\":1800000000}";
  char *tok;
  struct auth_identity id;
  /* Duplicate names: a second "alg" must not smuggle a choice past us. */
  tok = craft_hs("{\"alg\":\"HS256\",\"alg\":\"none\"}", p);
  expect_refused(&c, tok, NOW, "malformed token header");
  free(tok);
  tok = craft_hs("{\"alg\":\"HS256\"}", "{\"sub\":\"u\",\"sub\":\"admin\",\"exp\":1800000000}");
  expect_refused(&c, tok, NOW, "malformed token payload");
  free(tok);
  tok = craft_hs("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", p);
  expect_refused(&c, tok, NOW, "unsupported critical header");
  free(tok);
  tok = craft_hs("{\"typ\":\"JWT\"}", p);
  expect_refused(&c, tok, NOW, "malformed token header");
  free(tok);
  tok = craft_hs("{\"alg\":256}", p);
  expect_refused(&c, tok, NOW, "malformed token header");
  free(tok);
  tok = craft_hs("[\"HS256\"]", p);
  expect_refused(&c, tok, NOW, "malformed token header");
  free(tok);
  tok = craft_hs("{\"alg\":\"hs256\"}", p);
  expect_refused(&c, tok, NOW, "algorithm not accepted");
  free(tok);
  tok = craft_hs("{\"alg\":\"HS256\"}", "[1,2]");
  expect_refused(&c, tok, NOW, "malformed token payload");
  free(tok);
  /* correctly signed, yet no claims: said as such (libjwt's refusal of
   * these read as "bad signature") */
  static const char *const bad_payloads[] = {
      "hello", "{\"sub\":\"u\",\"exp\":1800000000} x", "{\"sub\":\"u\",\"exp\":9223372036854775808}",
      "{\"sub\":\"u\\u0000v\",\"exp\":1800000000}"};
  for (size_t i = 0; i < sizeof bad_payloads / sizeof bad_payloads[0]; i++) {
    tok = craft_hs("{\"alg\":\"HS256\"}", bad_payloads[i]);
    expect_refused(&c, tok, NOW, "malformed token payload");
    free(tok);
  }
  tok = craft_hs("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", p); /* libjwt 1.10 refuses */
  expect_refused(&c, tok, NOW, "bad signature");
  free(tok);
  tok = craft_hs("{\"alg\":\"HS256\",\"kid\":\"whatever\",\"typ\":\"jwt\"}", p);
  expect_accepted(&c, tok, NOW, &id);
  free(tok);
  /* Non-canonical base64url: the header "{}" is "e30"; "e31" has the same
   * 2 bytes with a stray bit set. */
  tok = craft_hs("{\"alg\":\"HS256\"}", p);
  char *dot = strchr(tok, '.');
  char last = dot[-1];
  assert_int_equal(last, '9'); /* eyJhbGciOiJIUzI1NiJ9 */
  dot[-1] = '8';
  expect_refused(&c, tok, NOW, "malformed token header");
  free(tok);
}

static void test_jwt_garbage(void **state) {
  (void)state;
  struct auth_jwt_config c = all_config();
  static const struct {
    const char *tok;
    const char *why;
  } cases[] = {
      {"abc", "malformed token"},
      {"a.b", "malformed token"},
      {"a.b.c.d", "malformed token"},
      {".b.c", "malformed token"},
      {"a..c", "malformed token"},
      {"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0=.c2ln", "malformed token"},
      {"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln=", "malformed token"},
      {"eyJhbGciOiJIUzI1NiJ9.eyJzdWIi+OiJ1In0.c2ln", "malformed token"},
      {"eyJhbGciOiJIUzI1NiJ9 .eyJzdWIiOiJ1In0.c2ln", "malformed token"},
      {"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln", "malformed token"},
      {"x.y.z", "malformed token header"},
      {"e30.e30.e30", "malformed token header"},
      {"eyJhbGciOiJIUzI1NiJ9.e30.c2ln", "bad signature"},
      {"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln", "bad signature"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    expect_refused(&c, cases[i].tok, NOW, cases[i].why);
  struct auth_identity id;
  char why[AUTH_WHY_MAX];
  assert_int_equal(auth_jwt(&c, "", 0, NOW, &id, why, sizeof why), STRATA_EUNAUTHORIZED);
  assert_string_equal(why, "empty token");
  char *huge = malloc(AUTH_JWT_MAX + 2);
  memset(huge, 'A', AUTH_JWT_MAX + 1);
  huge[AUTH_JWT_MAX + 1] = '\0';
  expect_refused(&c, huge, NOW, "token too long");
  free(huge);
  /* Embedded NUL: the length given is what counts. */
  char *tok = libjwt_default(JWT_ALG_HS256, hs_secret);
  size_t n = strlen(tok);
  char *nul = malloc(n + 2);
  memcpy(nul, tok, n);
  nul[n] = '\0';
  nul[n + 1] = 'A';
  assert_int_equal(auth_jwt(&c, nul, n + 2, NOW, &id, why, sizeof why), STRATA_EUNAUTHORIZED);
  assert_int_equal(auth_jwt(&c, nul, n, NOW, &id, why, sizeof why), 0);
  free(nul);
  free(tok);
  /* why may be NULL. */
  assert_int_equal(auth_jwt(&c, "abc", 3, NOW, &id, NULL, 0), STRATA_EUNAUTHORIZED);
}

static void test_jwt_config_check(void **state) {
  (void)state;
  char why[AUTH_WHY_MAX];
  struct auth_jwt_config c;
  auth_jwt_config_init(&c);
  assert_int_equal(c.leeway_s, AUTH_JWT_DEFAULT_LEEWAY_S);
  assert_int_equal(c.require_exp, 1);
  assert_int_equal(auth_jwt_config_check(&c, why, sizeof why), STRATA_EVALIDATION);
  c.algs = AUTH_JWT_HS256;
  c.hs256_secret = (const unsigned char *)"short";
  c.hs256_secret_len = 5;
  assert_int_equal(auth_jwt_config_check(&c, why, sizeof why), STRATA_EVALIDATION);
  assert_non_null(strstr(why, "32 bytes"));
  /* A short secret is refused at verification too, not just at load. */
  char *tok = libjwt_default(JWT_ALG_HS256, "short");
  expect_refused(&c, tok, NOW, "algorithm not accepted");
  free(tok);
  c = rs_config();
  assert_int_equal(auth_jwt_config_check(&c, why, sizeof why), 0);
  c.rs256_public_pem = rsa_small_pub;
  assert_int_equal(auth_jwt_config_check(&c, why, sizeof why), STRATA_EVALIDATION);
  assert_non_null(strstr(why, "2048"));
  c.rs256_public_pem = "not a key";
  assert_int_equal(auth_jwt_config_check(&c, why, sizeof why), STRATA_EVALIDATION);
  c.rs256_public_pem = NULL;
  assert_int_equal(auth_jwt_config_check(&c, why, sizeof why), STRATA_EVALIDATION);
  c.algs = AUTH_JWT_ES256;
  c.es256_public_pem = rsa_pub;
  assert_int_equal(auth_jwt_config_check(&c, why, sizeof why), STRATA_EVALIDATION);
  c.es256_public_pem = ec_pub;
  assert_int_equal(auth_jwt_config_check(&c, why, sizeof why), 0);
  c.leeway_s = 3600;
  assert_int_equal(auth_jwt_config_check(&c, why, sizeof why), STRATA_EVALIDATION);
  c.leeway_s = 30;
  c.algs = 1u << 7;
  assert_int_equal(auth_jwt_config_check(&c, why, sizeof why), STRATA_EVALIDATION);
  /* A pinned alg whose key is missing is refused at verification. */
  c = rs_config();
  c.rs256_public_pem = NULL;
  tok = libjwt_default(JWT_ALG_RS256, rsa_priv);
  expect_refused(&c, tok, NOW, "algorithm not accepted");
  free(tok);
}

/* ---- API keys ---------------------------------------------------------- */

static void test_hash_key(void **state) {
  (void)state;
  char hex[65];
  assert_int_equal(auth_hash_key("abc", hex), 0);
  assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert_int_equal(auth_hash_key("", hex), 0);
  assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_keyring_lookup(void **state) {
  (void)state;
  struct auth_keyring *kr = auth_keyring_new();
  assert_non_null(kr);
  char hex[65], why[AUTH_WHY_MAX];
  const char *const scopes[] = {"orders:read", "orders:write", NULL};
  struct ratelimit_policy gold = {1000, 60000, 0};
  assert_int_equal(auth_hash_key("sk_live_alpha", hex), 0);
  assert_int_equal(auth_keyring_add(kr, "alpha", hex, scopes, &gold, why, sizeof why), 0);
  assert_int_equal(auth_hash_key("sk_live_beta", hex), 0);
  for (char *p = hex; *p; p++) /* upper-case hex is accepted too */
    if (*p >= 'a' && *p <= 'f')
      *p = (char)(*p - 32);
  assert_int_equal(auth_keyring_add(kr, "beta", hex, NULL, NULL, why, sizeof why), 0);
  assert_int_equal(auth_keyring_count(kr), 2);

  struct auth_identity id;
  assert_int_equal(auth_api_key(kr, "sk_live_alpha", 13, &id), 0);
  assert_int_equal(id.kind, AUTH_KIND_API_KEY);
  assert_string_equal(id.subject, "alpha");
  assert_string_equal(id.scopes, "orders:read orders:write");
  assert_true(id.has_limit);
  assert_int_equal(id.limit.rate, 1000);
  assert_int_equal(id.limit.burst, 1000); /* 0 resolved to the rate */
  assert_true(auth_has_scope(&id, "orders:write"));
  assert_false(auth_has_scope(&id, "users:read"));

  assert_int_equal(auth_api_key(kr, "sk_live_beta", 12, &id), 0);
  assert_string_equal(id.subject, "beta");
  assert_string_equal(id.scopes, "");
  assert_false(id.has_limit);

  static const char *const wrong[] = {"sk_live_alphA", "sk_live_alph", "sk_live_alpha ",
                                      "SK_LIVE_ALPHA", "alpha", "x"};
  for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
    assert_int_equal(auth_api_key(kr, wrong[i], strlen(wrong[i]), &id), STRATA_EUNAUTHORIZED);
    assert_int_equal(id.kind, AUTH_KIND_NONE);
    assert_string_equal(id.subject, "");
  }
  /* The presented length counts, NULs included. */
  assert_int_equal(auth_api_key(kr, "sk_live_alpha\0", 14, &id), STRATA_EUNAUTHORIZED);
  assert_int_equal(auth_api_key(kr, "", 0, &id), STRATA_EUNAUTHORIZED);
  char big[AUTH_KEY_MAX + 2];
  memset(big, 'k', sizeof big);
  assert_int_equal(auth_api_key(kr, big, sizeof big, &id), STRATA_EUNAUTHORIZED);
  auth_keyring_free(kr);
  auth_keyring_free(NULL);
}

static void test_keyring_compares_whole_digests(void **state) {
  (void)state;
  /* Decoys whose digests share the real one's first 31 bytes (so they sit
   * on the same probe path) must not match: every candidate is compared in
   * full. */
  struct auth_keyring *kr = auth_keyring_new();
  char real[65], decoy[65], id[16];
  assert_int_equal(auth_hash_key("the-real-key", real), 0);
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) {
    memcpy(decoy, real, 65);
    decoy[63] = digits[i];
    if (strcmp(decoy, real) == 0)
      continue;
    snprintf(id, sizeof id, "decoy%d", i);
    assert_int_equal(auth_keyring_add(kr, id, decoy, NULL, NULL, NULL, 0), 0);
  }
  struct auth_identity out;
  assert_int_equal(auth_api_key(kr, "the-real-key", 12, &out), STRATA_EUNAUTHORIZED);
  assert_int_equal(auth_keyring_add(kr, "real", real, NULL, NULL, NULL, 0), 0);
  assert_int_equal(auth_api_key(kr, "the-real-key", 12, &out), 0);
  assert_string_equal(out.subject, "real");
  auth_keyring_free(kr);
}

static void test_keyring_many_keys(void **state) {
  (void)state;
  struct auth_keyring *kr = auth_keyring_new();
  char key[32], id[32], hex[65];
  for (int i = 0; i < 3000; i++) {
    snprintf(key, sizeof key, "key-%d", i);
    snprintf(id, sizeof id, "id-%d", i);
    assert_int_equal(auth_hash_key(key, hex), 0);
    assert_int_equal(auth_keyring_add(kr, id, hex, NULL, NULL, NULL, 0), 0);
  }
  struct auth_identity out;
  for (int i = 0; i < 3000; i += 7) {
    snprintf(key, sizeof key, "key-%d", i);
    snprintf(id, sizeof id, "id-%d", i);
    assert_int_equal(auth_api_key(kr, key, strlen(key), &out), 0);
    assert_string_equal(out.subject, id);
  }
  assert_int_equal(auth_api_key(kr, "key-3000", 8, &out), STRATA_EUNAUTHORIZED);
  auth_keyring_free(kr);
}

static void test_keyring_add_validation(void **state) {
  (void)state;
  struct auth_keyring *kr = auth_keyring_new();
  char hex[65], why[AUTH_WHY_MAX];
  assert_int_equal(auth_hash_key("k1", hex), 0);
  const char *const bad_scope[] = {"ok", "not ok", NULL};
  const char *const quote_scope[] = {"a\"b", NULL};
  const char *const empty_scope[] = {"", NULL};
  struct ratelimit_policy bad_limit = {0, 1000, 0};
  char long_id[300];
  memset(long_id, 'i', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = '\0';
  assert_int_equal(auth_keyring_add(kr, "", hex, NULL, NULL, why, sizeof why), STRATA_EVALIDATION);
  assert_int_equal(auth_keyring_add(kr, NULL, hex, NULL, NULL, why, sizeof why), STRATA_EVALIDATION);
  assert_int_equal(auth_keyring_add(kr, "a b", hex, NULL, NULL, why, sizeof why), STRATA_EVALIDATION);
  assert_int_equal(auth_keyring_add(kr, long_id, hex, NULL, NULL, why, sizeof why), STRATA_EVALIDATION);
  assert_int_equal(auth_keyring_add(kr, "id", "abc", NULL, NULL, why, sizeof why), STRATA_EVALIDATION);
  assert_non_null(strstr(why, "64 hex"));
  char nothex[65];
  memcpy(nothex, hex, 65);
  nothex[10] = 'g';
  assert_int_equal(auth_keyring_add(kr, "id", nothex, NULL, NULL, why, sizeof why), STRATA_EVALIDATION);
  assert_int_equal(auth_keyring_add(kr, "id", NULL, NULL, NULL, why, sizeof why), STRATA_EVALIDATION);
  assert_int_equal(auth_keyring_add(kr, "id", hex, bad_scope, NULL, why, sizeof why), STRATA_EVALIDATION);
  assert_int_equal(auth_keyring_add(kr, "id", hex, quote_scope, NULL, why, sizeof why), STRATA_EVALIDATION);
  assert_int_equal(auth_keyring_add(kr, "id", hex, empty_scope, NULL, why, sizeof why), STRATA_EVALIDATION);
  assert_int_equal(auth_keyring_add(kr, "id", hex, NULL, &bad_limit, why, sizeof why), STRATA_EVALIDATION);
  assert_int_equal(auth_keyring_count(kr), 0);
  assert_int_equal(auth_keyring_add(kr, "id", hex, NULL, NULL, why, sizeof why), 0);
  assert_int_equal(auth_keyring_add(kr, "id", hex, NULL, NULL, why, sizeof why), STRATA_EVALIDATION);
  assert_string_equal(why, "duplicate key id");
  assert_int_equal(auth_keyring_add(kr, "id2", hex, NULL, NULL, why, sizeof why), STRATA_EVALIDATION);
  assert_string_equal(why, "duplicate key hash");
  assert_int_equal(auth_keyring_count(kr), 1);
  auth_keyring_free(kr);
}

/* ---- credentials and challenges ---------------------------------------- */

static void test_credentials_parse(void **state) {
  (void)state;
  struct auth_credentials c;
#define PARSE(a, x) \
  auth_credentials_parse(a, (a) ? strlen(a) : 0, x, (x) ? strlen(x) : 0, &c)
  const char *none = NULL;
  assert_int_equal(PARSE(none, none), 0);
  assert_int_equal(c.scheme, AUTH_SCHEME_NONE);
  assert_int_equal(PARSE("Bearer abc.def.ghi", none), 0);
  assert_int_equal(c.scheme, AUTH_SCHEME_BEARER);
  assert_int_equal(c.len, 11);
  assert_memory_equal(c.value, "abc.def.ghi", 11);
  assert_int_equal(PARSE("bearer   abc", none), 0);
  assert_int_equal(c.scheme, AUTH_SCHEME_BEARER);
  assert_memory_equal(c.value, "abc", 3);
  assert_int_equal(PARSE("ApiKey sk_live_1", none), 0);
  assert_int_equal(c.scheme, AUTH_SCHEME_API_KEY);
  assert_memory_equal(c.value, "sk_live_1", 9);
  assert_int_equal(PARSE("APIKEY k", none), 0);
  assert_int_equal(c.scheme, AUTH_SCHEME_API_KEY);
  assert_int_equal(PARSE(none, "sk_live_2"), 0);
  assert_int_equal(c.scheme, AUTH_SCHEME_API_KEY);
  assert_int_equal(c.len, 9);
  assert_int_equal(PARSE("Bearer a==", none), 0);

  assert_int_equal(PARSE("Bearer x", "y"), STRATA_EBAD_REQUEST);
  assert_int_equal(PARSE("Bearer", none), STRATA_EBAD_REQUEST);
  assert_int_equal(PARSE("Bearer ", none), STRATA_EBAD_REQUEST);
  assert_int_equal(PARSE("Bearer a b", none), STRATA_EBAD_REQUEST);
  assert_int_equal(PARSE("Bearer a=b", none), STRATA_EBAD_REQUEST);
  assert_int_equal(PARSE("ApiKey a b", none), STRATA_EBAD_REQUEST);
  assert_int_equal(PARSE("", none), STRATA_EBAD_REQUEST);
  assert_int_equal(PARSE(" Bearer x", none), STRATA_EBAD_REQUEST);
  assert_int_equal(PARSE(none, ""), STRATA_EBAD_REQUEST);
  assert_int_equal(PARSE(none, "a b"), STRATA_EBAD_REQUEST);
  assert_int_equal(PARSE("Basic dXNlcjpwYXNz", none), STRATA_EUNAUTHORIZED);
  assert_int_equal(PARSE("Bearerx abc", none), STRATA_EUNAUTHORIZED);
  assert_int_equal(c.scheme, AUTH_SCHEME_NONE);
#undef PARSE
}

static void test_www_authenticate(void **state) {
  (void)state;
  char out[512];
  size_t n = auth_www_authenticate(AUTH_SCHEME_BEARER, AUTH_CHALLENGE_MISSING, NULL, "ignored",
                                   NULL, out, sizeof out);
  assert_string_equal(out, "Bearer realm=\"strata\"");
  assert_int_equal(n, strlen(out));
  auth_www_authenticate(AUTH_SCHEME_BEARER | AUTH_SCHEME_API_KEY, AUTH_CHALLENGE_MISSING, "api",
                        NULL, NULL, out, sizeof out);
  assert_string_equal(out, "Bearer realm=\"api\", ApiKey realm=\"api\"");
  auth_www_authenticate(AUTH_SCHEME_BEARER, AUTH_CHALLENGE_INVALID_TOKEN, NULL, "token expired",
                        NULL, out, sizeof out);
  assert_string_equal(out, "Bearer realm=\"strata\", error=\"invalid_token\", "
                           "error_description=\"token expired\"");
  auth_www_authenticate(AUTH_SCHEME_API_KEY, AUTH_CHALLENGE_INVALID_TOKEN, NULL, NULL, NULL, out,
                        sizeof out);
  assert_string_equal(out, "ApiKey realm=\"strata\", error=\"invalid_token\"");
  auth_www_authenticate(AUTH_SCHEME_NONE, AUTH_CHALLENGE_INSUFFICIENT_SCOPE, NULL, NULL,
                        "orders:write", out, sizeof out);
  assert_string_equal(out, "Bearer realm=\"strata\", error=\"insufficient_scope\", "
                           "scope=\"orders:write\"");
  auth_www_authenticate(AUTH_SCHEME_BEARER, AUTH_CHALLENGE_INVALID_REQUEST, NULL, NULL, NULL, out,
                        sizeof out);
  assert_string_equal(out, "Bearer realm=\"strata\", error=\"invalid_request\"");
  /* Quotes, backslashes and controls cannot break out of the value. */
  auth_www_authenticate(AUTH_SCHEME_BEARER, AUTH_CHALLENGE_INVALID_TOKEN, "a\"b",
                        "x\", error=\"y\\\r\nSet-Cookie: z", NULL, out, sizeof out);
  assert_string_equal(out, "Bearer realm=\"ab\", error=\"invalid_token\", "
                           "error_description=\"x, error=ySet-Cookie: z\"");
  assert_int_equal(auth_www_authenticate(AUTH_SCHEME_BEARER, AUTH_CHALLENGE_MISSING, NULL, NULL,
                                         NULL, out, 10), 0);
  assert_string_equal(out, "");
  assert_int_equal(auth_challenge_status(AUTH_CHALLENGE_MISSING), 401);
  assert_int_equal(auth_challenge_status(AUTH_CHALLENGE_INVALID_TOKEN), 401);
  assert_int_equal(auth_challenge_status(AUTH_CHALLENGE_INVALID_REQUEST), 400);
  assert_int_equal(auth_challenge_status(AUTH_CHALLENGE_INSUFFICIENT_SCOPE), 403);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jwt_hs256_valid),
      cmocka_unit_test(test_jwt_rs256_and_es256_valid),
      cmocka_unit_test(test_jwt_exp_nbf_and_leeway),
      cmocka_unit_test(test_jwt_issuer_and_audience),
      cmocka_unit_test(test_jwt_subject_and_scopes),
      cmocka_unit_test(test_jwt_alg_none_always_refused),
      cmocka_unit_test(test_jwt_alg_confusion_refused),
      cmocka_unit_test(test_jwt_tampering_refused),
      cmocka_unit_test(test_jwt_header_strictness),
      cmocka_unit_test(test_jwt_garbage),
      cmocka_unit_test(test_jwt_config_check),
      cmocka_unit_test(test_hash_key),
      cmocka_unit_test(test_keyring_lookup),
      cmocka_unit_test(test_keyring_compares_whole_digests),
      cmocka_unit_test(test_keyring_many_keys),
      cmocka_unit_test(test_keyring_add_validation),
      cmocka_unit_test(test_credentials_parse),
      cmocka_unit_test(test_www_authenticate),
  };
  return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
