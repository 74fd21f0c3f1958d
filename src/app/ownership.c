/* Ownership rules for the domains' routes; see ownership.h. */
#include "app/ownership.h"

#include <string.h>

#include "app/trust.h"
#include "core/error.h"
#include "gateway/auth.h"

int ownership_confine(struct http_exchange *ex, const char **me) {
  const struct auth_identity *id = trust_identity(ex);
  *me = NULL;
  if (!id)
    return 0;
  if (id->kind == AUTH_KIND_NONE || !id->subject[0]) {
    /* The gateway that let it through authenticates nobody: say how to
     * authenticate the way the gateway itself does. */
    http_add_header(ex, "WWW-Authenticate", "Bearer realm=\"strata\"");
    http_respond_error(ex, STRATA_EUNAUTHORIZED,
                       "These records belong to a user: authenticate to reach them.", NULL);
    return -1;
  }
  if (!auth_has_scope(id, OWNERSHIP_ADMIN_SCOPE))
    *me = id->subject;
  return 0;
}

int ownership_allows(const char *me, const char *owner_user_id) {
  return !me || (owner_user_id && strcmp(me, owner_user_id) == 0);
}

int ownership_narrow(const char *me, const char *requested, const char **filter) {
  if (requested && !*requested)
    requested = NULL;
  *filter = me ? me : requested;
  return !requested || ownership_allows(me, requested);
}
