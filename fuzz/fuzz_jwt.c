/* libFuzzer target for the gateway's credential parsing: the Authorization
 * / X-Api-Key header split, and JWT decoding and verification (header and
 * payload JSON, base64url, algorithm pinning, claims) against an HS256 key.
 * The input is the token (or header) as a client would send it. */
#include <stdint.h>
#include <string.h>

#include "gateway/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const unsigned char secret[] = "fuzzing-secret-of-32-bytes-long!";
  struct auth_jwt_config cfg;
  auth_jwt_config_init(&cfg);
  cfg.algs = AUTH_JWT_HS256;
  cfg.hs256_secret = secret;
  cfg.hs256_secret_len = sizeof secret - 1;
  cfg.issuer = "strata";
  cfg.audience = "api";
  struct auth_credentials cred;
  auth_credentials_parse((const char *)data, size, (const char *)data, size, &cred);
  struct auth_identity id;
  char why[256];
  auth_jwt(&cfg, (const char *)data, size, 1900000000, &id, why, sizeof why);
  return 0;
}
