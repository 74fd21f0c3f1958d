/* The processes of a topology: from a config (src/core/config.h) to the
 * children `strata up` runs — their command lines, addresses, data
 * directories, log files and start order — and the URLs it prints.
 *
 * Pure: it reads no file and creates nothing (up.c makes the directories),
 * so the unit tests check every command line directly. The command lines
 * are all built in one place, build_argv() in plan.c. */
#ifndef STRATA_TOPOLOGY_PLAN_H
#define STRATA_TOPOLOGY_PLAN_H

#include <stddef.h>

#include "core/config.h"
#include "topology/supervisor.h"

/* Which command lines the children get. `strata serve --service` and
 * `strata gateway --config` are being built on other branches; until they
 * land the children run the forms that exist today. Flip each to 1 when
 * its form is in main:
 *   serve, 0:   strata serve --config F --listen H:P --data SERVICE_DIR --workers N
 *   serve, 1:   strata serve --config F --service NAME --instance I --data ROOT
 *   gateway, 0: strata gateway --listen H:P --upstream H:P ... --workers N --log-level L
 *   gateway, 1: strata gateway --config F --data ROOT --listen H:P --admin H:P
 *                              [--admin-token-file F] */
#define TOPOLOGY_SERVE_BY_SERVICE 1
#define TOPOLOGY_GATEWAY_BY_CONFIG 1

struct topology_forms {
  int serve_by_service;  /* TOPOLOGY_SERVE_BY_SERVICE */
  int gateway_by_config; /* TOPOLOGY_GATEWAY_BY_CONFIG; also: the gateway has an admin listener */
};

/* The forms above, as a struct. */
struct topology_forms topology_forms_default(void);

#define TOPOLOGY_PATH 1024

struct topology_plan {
  char root[TOPOLOGY_PATH];        /* every relative data directory is under it */
  char config_path[TOPOLOGY_PATH]; /* absolute */
  char logs_dir[TOPOLOGY_PATH];    /* ROOT/logs: one NAME.log per child */
  char state_path[TOPOLOGY_PATH];  /* ROOT/strata-up.json: what `strata status` reads */
  char lock_path[TOPOLOGY_PATH];   /* ROOT/strata-up.lock: one `strata up` per root */
  char token_path[TOPOLOGY_PATH];  /* the gateway's admin token; "" without a gateway */
  int token_generated;             /* token_path is ROOT/admin.token, made by strata up */
  char public_url[128];            /* the gateway's listener (or the first service's) */
  char admin_url[128];             /* "" when the gateway has no admin listener */
  struct sv_child_spec *children;  /* services (stage 0), then the gateway (stage 1) */
  unsigned n_children;
};

/* Fills plan for cfg, which was loaded from config_path, with every
 * relative data directory under root (relative paths in config_path and
 * root are taken from the current directory and made absolute). Returns 0,
 * or -1 with a sentence in why (nothing to run, pools the gateway form
 * cannot route, ports used twice). Free with topology_plan_free(). */
int topology_plan_build(const struct strata_config *cfg, const char *config_path,
                        const char *root, const struct topology_forms *forms,
                        struct topology_plan *plan, char *why, size_t why_len);

/* Accepts a zeroed or already freed plan. */
void topology_plan_free(struct topology_plan *plan);


/* "127.0.0.1:8080", "[::1]:8080". */
void topology_format_address(char *out, size_t len, const char *host, unsigned port);

#endif
