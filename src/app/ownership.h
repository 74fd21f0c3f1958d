/* Ownership: whose records a caller may see and change.
 *
 * Behind the gateway (`strata serve --identity-secret-file`), every API
 * request carries a verified identity (app/trust.h). Its subject is the
 * user id of an end user (an API key's id, a JWT's `sub`), so a caller is
 * confined to the records of that user:
 *
 *   identity                     confined to   records of others
 *   none (no identity secret)    nothing       all visible: the monolith without a gateway
 *   scope "admin"                nothing       all visible
 *   subject "usr_..."            that user     hidden: 404 by id, left out of lists
 *   anonymous (subject "")       -             401, except where a route says otherwise (signup)
 *
 * Hiding with 404 rather than refusing with 403 keeps the existence of
 * another user's record secret (GitHub does the same for private
 * repositories); a 403 is answered only where the request itself names
 * someone else as the owner of what it creates. Every rule per endpoint is
 * in docs/api.md, "Ownership".
 *
 * Routes call ownership_confine() once, then compare owners with
 * ownership_allows() or narrow their list filters with ownership_narrow();
 * services that find the owner on their own (an order being cancelled or
 * paid) get `me` passed down and use ownership_allows() themselves. */
#ifndef STRATA_APP_OWNERSHIP_H
#define STRATA_APP_OWNERSHIP_H

#include "http/http.h"

/* The scope that lifts the confinement (operators, back-office tools). */
#define OWNERSHIP_ADMIN_SCOPE "admin"

/* Decides who the caller acts for. Returns 0 and sets *me: NULL when the
 * caller is not confined (no verified identity, or the admin scope), else
 * the subject (valid as long as the exchange). For an anonymous verified
 * caller answers 401 (with WWW-Authenticate) and returns -1: the handler
 * must not answer again. */
int ownership_confine(struct http_exchange *ex, const char **me);

/* 1 when a caller confined to me (NULL = not confined) may see and change a
 * record owned by owner_user_id (NULL = no known owner: only unconfined
 * callers), else 0. */
int ownership_allows(const char *me, const char *owner_user_id);

/* The user filter a list applies for a caller confined to me: requested
 * (NULL or "" = no filter asked) narrowed to me. Returns 1 with *filter set
 * (NULL = no filter: only when me is NULL and none was asked), or 0 when
 * requested names another user: the list is empty for this caller. */
int ownership_narrow(const char *me, const char *requested, const char **filter);

#endif
