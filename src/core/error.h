/* The one table of errors strata can answer with.
 *
 * Every failure that reaches a client goes through here, so each has one HTTP
 * status, one stable machine-readable code and one default message; the JSON
 * error body is built from these (see http/response.h). Functions across the
 * code base return 0 or a negative STRATA_E* value (libuv-style). */
#ifndef STRATA_CORE_ERROR_H
#define STRATA_CORE_ERROR_H

/*        name                    status code                       default message */
#define STRATA_ERRORS(X)                                                                         \
  X(BAD_REQUEST,                  400, "bad_request",               "The request is malformed.") \
  X(INVALID_JSON,                 400, "invalid_json",              "The body is not valid JSON.") \
  X(VALIDATION,                   400, "validation_failed",         "A field is missing or invalid.") \
  X(UNAUTHORIZED,                 401, "unauthorized",              "Authentication is required.") \
  X(FORBIDDEN,                    403, "forbidden",                 "This operation is not allowed.") \
  X(NOT_FOUND,                    404, "not_found",                 "No resource matches this path.") \
  X(METHOD_NOT_ALLOWED,           405, "method_not_allowed",        "This method is not allowed on this path.") \
  X(REQUEST_TIMEOUT,              408, "request_timeout",           "The request was not received in time.") \
  X(CONFLICT,                     409, "conflict",                  "The request conflicts with the current state.") \
  X(LENGTH_REQUIRED,              411, "length_required",           "A Content-Length is required.") \
  X(PAYLOAD_TOO_LARGE,            413, "payload_too_large",         "The request body is too large.") \
  X(URI_TOO_LONG,                 414, "uri_too_long",              "The request line is too long.") \
  X(UNSUPPORTED_MEDIA_TYPE,       415, "unsupported_media_type",    "The body must be application/json.") \
  X(EXPECTATION_FAILED,           417, "expectation_failed",        "Only 100-continue is supported in Expect.") \
  X(UNPROCESSABLE,                422, "unprocessable_entity",      "The request is well-formed but cannot be processed.") \
  X(TOO_MANY_REQUESTS,            429, "too_many_requests",         "Too many requests; slow down.") \
  X(HEADERS_TOO_LARGE,            431, "headers_too_large",         "The request header section is too large.") \
  X(CLIENT_CLOSED,                499, "client_closed_request",     "The client closed the connection first.") \
  X(INTERNAL,                     500, "internal_error",            "An internal error occurred.") \
  X(NOT_IMPLEMENTED,              501, "not_implemented",           "This feature is not implemented.") \
  X(BAD_GATEWAY,                  502, "bad_gateway",               "The upstream answered badly.") \
  X(UNAVAILABLE,                  503, "service_unavailable",       "The service is unavailable.") \
  X(GATEWAY_TIMEOUT,              504, "gateway_timeout",           "The upstream did not answer in time.") \
  X(VERSION_NOT_SUPPORTED,        505, "http_version_not_supported", "Only HTTP/1.0 and HTTP/1.1 are supported.")

enum strata_error {
  STRATA_OK = 0, /* success; every error below is negative */
#define X(name, status, code, msg) STRATA_E##name,
  STRATA_ERROR_FIRST_ = -1000, /* errors count up from here */
  STRATA_ERRORS(X)
#undef X
  STRATA_ERROR_END_
};

/* Status, code and default message of err (a negative STRATA_E* value).
 * Unknown values map to STRATA_EINTERNAL. */
int strata_error_status(int err);
const char *strata_error_code(int err);
const char *strata_error_message(int err);

#endif
