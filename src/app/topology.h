/* This process's place in a topology: which domains it hosts, where its
 * files live, and where the domains it does not host are served.
 *
 * One config file describes every service of a topology (services.NAME:
 * domains, instances, listen, data, workers; docs/config.md). `strata serve
 * --service NAME --instance I` runs one instance of one of them; without
 * --service the process is the monolith and hosts all four domains. These
 * functions turn the config into that picture. Pure: no I/O, no globals, so
 * the unit tests can check every rule (tests/unit/app/test_topology.c).
 *
 * Domains are numbered as enum app_domain (app.h): 0 users, 1 orders,
 * 2 payments, 3 notifications; a set of domains is a bit mask. */
#ifndef STRATA_APP_TOPOLOGY_H
#define STRATA_APP_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

#define TOPOLOGY_DOMAINS 4
#define TOPOLOGY_ALL_DOMAINS ((1u << TOPOLOGY_DOMAINS) - 1)

/* "users", "orders", "payments", "notifications"; NULL out of range. */
const char *topology_domain_name(int domain);

/* The domains service hosts (bit d = domain d); every domain when service
 * is NULL (the monolith); 0 when cfg has no such service. */
unsigned topology_hosted(const struct strata_config *cfg, const char *service);

/* Writes root joined with rel into out (cap bytes): rel itself when it is
 * absolute or root is empty, root when rel is empty, else root/rel. Returns
 * 0, or -1 when it does not fit (out is then ""). */
int topology_path_join(char *out, size_t cap, const char *root, const char *rel);

/* Places this process in cfg, which holds the file and the flags
 * (cfg->data_dir is server.data, already replaced by --data):
 *
 *   service NULL: only the bus moves: bus.dir becomes bus.dir resolved under
 *                 the data directory, or the data directory itself (where
 *                 events.db has always been).
 *   service set:  listen = services.NAME.listen host, port + instance;
 *                 workers = services.NAME.workers when set;
 *                 data_dir = services.NAME.data (default: the service's
 *                 name) resolved under server.data;
 *                 bus.dir resolved under server.data (default server.data),
 *                 so every service of the topology shares one events.db.
 *
 * Returns 0, or -1 with a sentence in why (no such service, instance out
 * of range, a path too long); cfg is then unchanged. */
int topology_place(struct strata_config *cfg, const char *service, unsigned instance, char *why,
                   size_t why_len);

/* Where a domain is served when it is not hosted here: the instances of the
 * service hosting it (instance i at host:port + i). */
struct topology_target {
  char service[CFG_NAME_MAX];
  char host[64]; /* an address to connect to: 0.0.0.0 / :: become loopback */
  uint16_t port; /* of instance 0 */
  unsigned instances;
};

/* Fills *t for domain. Returns the index of the hosting service in
 * cfg->services, or -1 when no service hosts it (a monolith config, or a
 * topology that leaves the domain out). */
int topology_target_of(const struct strata_config *cfg, int domain, struct topology_target *t);

#endif
