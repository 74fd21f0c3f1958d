/* JSON request bodies and JSON responses, through jansson.
 *
 * A body is checked in this order, each failure answered for the handler:
 *   Content-Type not application/json (or +json)  -> 415
 *   empty body, nesting deeper than http.max_json_depth, invalid UTF-8,
 *   invalid JSON, duplicate keys                  -> 400 invalid_json
 *   top level not an object                       -> 400 validation_failed
 * (the size limit is the server's: 413 before the handler runs). The field
 * helpers answer 400 validation_failed with "field":<name> when a field is
 * missing, of the wrong type or out of range, so a client always learns which
 * field was wrong. */
#ifndef STRATA_HTTP_JSON_BODY_H
#define STRATA_HTTP_JSON_BODY_H

#include <jansson.h>
#include <stddef.h>

#include "http/http.h"

/* Decodes body (len bytes) as a JSON object without touching HTTP. Returns 0
 * and *out (caller owns: json_decref), or a negative STRATA_E* with a reason
 * in why. Used by http_json_body() and the fuzz target. */
int json_body_decode(const char *body, size_t len, unsigned max_depth, json_t **out, char *why,
                     size_t why_len);

/* Nesting depth of the JSON text (arrays and objects), counted without
 * parsing; stops counting past limit. Strings are skipped correctly. */
unsigned json_body_depth(const char *body, size_t len, unsigned limit);

/* The request body of ex as an object (caller owns), or NULL after having
 * answered the request with the error. */
json_t *http_json_body(struct http_exchange *ex);

/* Field helpers. On a problem they answer 400 naming the field and return
 * -1; the handler then returns without answering again. A missing optional
 * field returns 0 and leaves *out untouched; present fields must not be null. */
int json_field_string(struct http_exchange *ex, json_t *obj, const char *name, int required,
                      size_t min_len, size_t max_len, const char **out);
int json_field_int(struct http_exchange *ex, json_t *obj, const char *name, int required,
                   json_int_t min, json_int_t max, json_int_t *out);
/* Answers 400 naming the first member of obj not listed in allowed
 * (NULL-terminated). Unknown fields are refused, never silently dropped. */
int json_fields_only(struct http_exchange *ex, json_t *obj, const char *const allowed[]);
/* The same, and a member listed in server_owned (id, status, createdAt, ...)
 * gets its own message: it exists but only the server sets it. */
int json_fields_check(struct http_exchange *ex, json_t *obj, const char *const writable[],
                      const char *const server_owned[]);

/* Answers status with v serialised compactly (v not consumed). */
void http_respond_json_value(struct http_exchange *ex, int status, const json_t *v);

#endif
