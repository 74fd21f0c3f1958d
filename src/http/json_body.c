/* JSON bodies; see json_body.h. */
#include "http/json_body.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/error.h"

unsigned json_body_depth(const char *s, size_t len, unsigned limit) {
  unsigned depth = 0, max = 0;
  int in_string = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (in_string) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_string = 0;
    } else if (c == '"') {
      in_string = 1;
    } else if (c == '{' || c == '[') {
      if (++depth > max && (max = depth) > limit)
        return max;
    } else if ((c == '}' || c == ']') && depth) {
      depth--;
    }
  }
  return max;
}

int json_body_decode(const char *body, size_t len, unsigned max_depth, json_t **out, char *why,
                     size_t why_len) {
  *out = NULL;
  if (len == 0) {
    snprintf(why, why_len, "The request body is empty; a JSON object is expected.");
    return STRATA_EINVALID_JSON;
  }
  unsigned depth = json_body_depth(body, len, max_depth);
  if (depth > max_depth) {
    snprintf(why, why_len, "The JSON body is nested deeper than %u levels.", max_depth);
    return STRATA_EINVALID_JSON;
  }
  json_error_t err;
  json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
  if (!v) {
    snprintf(why, why_len, "Invalid JSON at line %d, column %d: %s.", err.line, err.column,
             err.text);
    return STRATA_EINVALID_JSON;
  }
  if (!json_is_object(v)) {
    json_decref(v);
    snprintf(why, why_len, "The body must be a JSON object.");
    return STRATA_EVALIDATION;
  }
  *out = v;
  return 0;
}

static int is_json_type(const char *ct, size_t n) {
  /* media type up to ';', case-insensitive: application/json or */
  /* application/<something>+json */
  size_t end = 0;
  while (end < n && ct[end] != ';' && ct[end] != ' ' && ct[end] != '\t')
    end++;
  if (end == 16 && strncasecmp(ct, "application/json", 16) == 0)
    return 1;
  return end > 17 && strncasecmp(ct, "application/", 12) == 0 &&
         strncasecmp(ct + end - 5, "+json", 5) == 0;
}

json_t *http_json_body(struct http_exchange *ex) {
  struct http_request *req = http_request_of(ex);
  size_t ct_len = 0;
  const char *ct = http_header_get(req, "content-type", &ct_len);
  if (!ct || !is_json_type(ct, ct_len)) {
    http_respond_error(ex, STRATA_EUNSUPPORTED_MEDIA_TYPE,
                       "The body must be JSON (Content-Type: application/json).", NULL);
    return NULL;
  }
  char why[256];
  json_t *v;
  int rc = json_body_decode(req->body, req->body_len, http_limits_of(ex)->max_json_depth, &v, why,
                            sizeof why);
  if (rc != 0) {
    http_respond_error(ex, rc, why, NULL);
    return NULL;
  }
  return v;
}

static int field_error(struct http_exchange *ex, const char *name, const char *fmt, const char *detail) {
  char msg[256];
  snprintf(msg, sizeof msg, fmt, name, detail ? detail : "");
  http_respond_error(ex, STRATA_EVALIDATION, msg, name);
  return -1;
}

/* Looks up a field for the typed helpers: returns 1 with *v when present and
 * of the wanted type, 0 when absent and optional, -1 after answering 400. */
static int lookup(struct http_exchange *ex, json_t *obj, const char *name, int required,
                  json_type type, const char *type_name, json_t **v) {
  *v = json_object_get(obj, name);
  if (!*v)
    return required ? field_error(ex, name, "%s is required.%s", NULL) : 0;
  if (json_typeof(*v) != type) {
    char what[48];
    snprintf(what, sizeof what, " %s.", type_name);
    return field_error(ex, name, "%s must be%s", what);
  }
  return 1;
}

int json_field_string(struct http_exchange *ex, json_t *obj, const char *name, int required,
                      size_t min_len, size_t max_len, const char **out) {
  json_t *v;
  int found = lookup(ex, obj, name, required, JSON_STRING, "a string", &v);
  if (found <= 0)
    return found;
  size_t n = json_string_length(v);
  if (n < min_len || n > max_len) {
    char range[64];
    snprintf(range, sizeof range, " (%zu to %zu characters)", min_len, max_len);
    return field_error(ex, name, "%s has the wrong length%s.", range);
  }
  *out = json_string_value(v);
  return 0;
}

int json_field_int(struct http_exchange *ex, json_t *obj, const char *name, int required,
                   json_int_t min, json_int_t max, json_int_t *out) {
  json_t *v;
  int found = lookup(ex, obj, name, required, JSON_INTEGER, "an integer", &v);
  if (found <= 0)
    return found;
  json_int_t i = json_integer_value(v);
  if (i < min || i > max) {
    char range[96];
    snprintf(range, sizeof range, " (%" JSON_INTEGER_FORMAT " to %" JSON_INTEGER_FORMAT ")", min,
             max);
    return field_error(ex, name, "%s is out of range%s.", range);
  }
  *out = i;
  return 0;
}

static int listed(const char *const list[], const char *key) {
  for (int i = 0; list && list[i]; i++)
    if (strcmp(list[i], key) == 0)
      return 1;
  return 0;
}

int json_fields_check(struct http_exchange *ex, json_t *obj, const char *const writable[],
                      const char *const server_owned[]) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    if (listed(server_owned, key))
      return field_error(ex, key, "%s is set by the server and cannot be given.%s", NULL);
    if (!listed(writable, key))
      return field_error(ex, key, "%s is not a field of this resource.%s", NULL);
  }
  return 0;
}

int json_fields_only(struct http_exchange *ex, json_t *obj, const char *const allowed[]) {
  return json_fields_check(ex, obj, allowed, NULL);
}

void http_respond_json_value(struct http_exchange *ex, int status, const json_t *v) {
  char *s = json_dumps(v, JSON_COMPACT);
  if (!s) {
    http_respond_error(ex, STRATA_EINTERNAL, NULL, NULL);
    return;
  }
  http_respond_json(ex, status, s, strlen(s));
  free(s);
}
