/* Calls to a domain that another service of the topology hosts: the HTTP
 * half of the domain client seam (users/users.h, orders/orders.h).
 *
 * A client whose domain lives in this process calls its service directly;
 * otherwise it asks remote_get() for one URL on the hosting service and
 * decodes the JSON it gets back. Everything else is here, once:
 *
 *   - per worker loop, one keep-alive pool per instance of each remote
 *     service (the gateway's upstream client: strict response parsing),
 *     balanced round robin over the instances;
 *   - a circuit breaker per remote host: an instance that keeps failing is
 *     not called until a half-open probe succeeds, so a dead service costs
 *     its callers microseconds, not a connect timeout each;
 *   - retries (every remote call is an idempotent GET): at once to another
 *     instance after a connect failure or a stale keep-alive connection,
 *     after exponential backoff with full jitter otherwise, within a retry
 *     budget; a per-try timeout and an overall deadline, shortened to the
 *     deadline the incoming request carried (DEADLINE_HEADER) and passed on;
 *   - X-Request-Id and traceparent of the incoming request passed on, and,
 *     when the services share an identity secret, the caller's verified
 *     identity signed again for the internal call (identity.h).
 *
 * The contract matches the in-process call: the callback fires exactly
 * once, later, on the caller's loop, never from inside remote_get().
 *
 * NOTES ON THE DESIGN
 *
 *   remote_get --> pick instance (round robin, skipping open breakers)
 *                    | none: UNAVAILABLE
 *                    v
 *                  try --answer < 500-----------------------------> done(0, status)
 *                      --failure, tries, budget and deadline left--> backoff --> pick another
 *                      --failure, nothing left-------------------> done(UNAVAILABLE)
 *
 * Only finish() calls the callback, and only from a libuv callback (an
 * upstream answer or a timer), which keeps the "never from inside" rule in
 * one place. A struct remote outlives remote_free() while calls are in
 * flight: they end as UNAVAILABLE and the last one frees it. */
#ifndef STRATA_APP_REMOTE_H
#define STRATA_APP_REMOTE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "app/topology.h"
#include "core/arena.h"
#include "core/strbuf.h"
#include "gateway/auth.h"
#include "http/http.h"
#include "resilience/breaker.h"
#include "resilience/retry.h"

#define REMOTE_MAX_TARGETS CFG_MAX_SERVICES
#define REMOTE_MAX_INSTANCES 64
#define REMOTE_REQUEST_ID_MAX 129 /* the server's ids: [A-Za-z0-9._-]{1,128} */

/* How internal calls behave. No config keys yet: remote_settings_default()
 * is the one place the values come from (docs/architecture.md). */
struct remote_settings {
  uint32_t connect_timeout_ms; /* 500: TCP connect to an instance */
  unsigned max_idle;           /* 16: keep-alive connections per instance per worker */
  size_t max_response_bytes;   /* 8 MiB */
  struct retry_policy retry;   /* 3 tries, 25..250 ms backoff, 1 s per try, 3 s in all */
  struct breaker_config breaker; /* 50 % of >= 5 calls in 10 s opens; 1 s cool-down; 1 probe */
};

void remote_settings_default(struct remote_settings *s);

/* What an internal call carries on from the request that caused it. */
struct remote_origin {
  char request_id[REMOTE_REQUEST_ID_MAX];
  struct trace_context trace;  /* its traceparent (trace.valid) or none */
  struct auth_identity id;     /* kind AUTH_KIND_NONE: anonymous */
  uint64_t deadline_ms;        /* loop clock; DEADLINE_NONE when it had none */
};

/* Fills *o from ex (NULL: a call made for no request, e.g. on start-up: a
 * fresh request id, no trace, anonymous, no deadline). now_ms is the loop
 * clock; secret (NULL or "" = none) re-reads the identity the server's
 * trust filter verified. */
void remote_origin_from(struct http_exchange *ex, const char *secret, uint64_t now_ms,
                        struct remote_origin *o);

/* Appends one try's request to sb: GET path (with its query) to host
 * (its Host header), with X-Request-Id, a child traceparent, the deadline
 * (deadline_left_ms; UINT64_MAX = none, not sent) and, when secret is set,
 * the four identity headers for o->id signed at now_s. Returns 0, or -1 when
 * the identity cannot be signed (a field it refuses) or sb failed. */
int remote_format_request(struct strbuf *sb, const char *path, const char *host,
                          const struct remote_origin *o, uint64_t deadline_left_ms,
                          const char *secret, uint64_t now_s);

/* What a final answer means to a client: 1 for 2xx (found), 0 for 404 (no
 * such thing), STRATA_EUNAVAILABLE for 5xx, STRATA_EBAD_GATEWAY for any
 * other status (the two services disagree about the API). */
int remote_status_rc(int status);

/* rc 0: the service answered status (< 500) with body[0..len) in the
 * caller's arena. rc < 0: STRATA_EUNAVAILABLE (no instance reachable,
 * every breaker open, timeouts, 5xx, deadline passed) or STRATA_EINTERNAL;
 * status 0 and body NULL then. */
typedef void (*remote_done_cb)(int rc, int status, const char *body, size_t len, void *arg);

struct remote;

/* One per worker loop: pools and breakers for targets[0..n) (copied).
 * secret: NULL or "" = no identity headers; otherwise kept by pointer and
 * must outlive the remote. Returns NULL when out of memory. */
struct remote *remote_new(uv_loop_t *loop, const struct remote_settings *s,
                          const struct topology_target *targets, unsigned n,
                          const char *secret);

/* Closes the pools. Calls in flight end with STRATA_EUNAVAILABLE; the loop
 * must run once more. Accepts NULL. */
void remote_free(struct remote *r);

/* GET path_query on targets[target] (target < 0: a domain hosted nowhere,
 * which fails with STRATA_EUNAVAILABLE). origin (may be NULL) must stay
 * valid until cb has run; the response body is allocated in a. Returns 0,
 * or < 0 when the call could not even start (out of memory): cb will not
 * run then. */
int remote_get(struct remote *r, int target, struct http_exchange *origin, const char *path_query,
               struct arena *a, remote_done_cb cb, void *arg);

#endif
