/* This process's place in a topology; see topology.h. */
#include "app/topology.h"

#include <stdio.h>
#include <string.h>

static const char *const domain_names[TOPOLOGY_DOMAINS] = {"users", "orders", "payments",
                                                           "notifications"};

const char *topology_domain_name(int domain) {
  return domain >= 0 && domain < TOPOLOGY_DOMAINS ? domain_names[domain] : NULL;
}

unsigned topology_hosted(const struct strata_config *cfg, const char *service) {
  if (!service)
    return TOPOLOGY_ALL_DOMAINS;
  const struct service_config *s = config_find_service(cfg, service);
  unsigned mask = 0;
  for (int d = 0; s && d < TOPOLOGY_DOMAINS; d++)
    if (config_list_has(s->domains, domain_names[d]))
      mask |= 1u << d;
  return mask;
}

int topology_path_join(char *out, size_t cap, const char *root, const char *rel) {
  while (rel[0] == '.' && rel[1] == '/')
    rel += 2; /* "./app" is "app" */
  if (strcmp(rel, ".") == 0)
    rel = "";
  int n;
  if (!rel[0])
    n = snprintf(out, cap, "%s", root);
  else if (rel[0] == '/' || !root[0])
    n = snprintf(out, cap, "%s", rel);
  else
    n = snprintf(out, cap, "%s%s%s", root, root[strlen(root) - 1] == '/' ? "" : "/", rel);
  if (n < 0 || (size_t)n >= cap) {
    if (cap)
      out[0] = '\0';
    return -1;
  }
  while (n > 1 && out[n - 1] == '/')
    out[--n] = '\0'; /* "var/" and "var" are one directory */
  return 0;
}

int topology_place(struct strata_config *cfg, const char *service, unsigned instance, char *why,
                   size_t why_len) {
  char data[sizeof cfg->data_dir], bus[sizeof cfg->bus.dir];
  if (topology_path_join(bus, sizeof bus, cfg->data_dir, cfg->bus.dir) != 0) {
    snprintf(why, why_len, "bus.dir: the path is too long");
    return -1;
  }
  if (!service) {
    memcpy(cfg->bus.dir, bus, sizeof bus);
    return 0;
  }
  const struct service_config *s = config_find_service(cfg, service);
  if (!s) {
    snprintf(why, why_len, "the config has no services.%s", service);
    return -1;
  }
  unsigned instances = s->instances ? s->instances : 1;
  if (instance >= instances) {
    snprintf(why, why_len, "services.%s has %u instance%s (0 to %u); there is no instance %u",
             service, instances, instances == 1 ? "" : "s", instances - 1, instance);
    return -1;
  }
  if (!s->listen_port) {
    snprintf(why, why_len, "services.%s has no listen address", service);
    return -1;
  }
  if ((uint32_t)s->listen_port + instance > 65535) {
    snprintf(why, why_len, "services.%s: instance %u would listen past port 65535", service,
             instance);
    return -1;
  }
  if (topology_path_join(data, sizeof data, cfg->data_dir, s->data_dir[0] ? s->data_dir : s->name)
      != 0) {
    snprintf(why, why_len, "services.%s.data: the path is too long", service);
    return -1;
  }
  snprintf(cfg->listen_host, sizeof cfg->listen_host, "%s", s->listen_host);
  cfg->listen_port = (uint16_t)(s->listen_port + instance);
  if (s->workers)
    cfg->workers = s->workers;
  memcpy(cfg->data_dir, data, sizeof data);
  memcpy(cfg->bus.dir, bus, sizeof bus);
  return 0;
}

int topology_target_of(const struct strata_config *cfg, int domain, struct topology_target *t) {
  const char *name = topology_domain_name(domain);
  for (uint32_t i = 0; name && i < cfg->n_services; i++) {
    const struct service_config *s = &cfg->services[i];
    if (!config_list_has(s->domains, name))
      continue;
    memset(t, 0, sizeof *t);
    snprintf(t->service, sizeof t->service, "%s", s->name);
    /* A wildcard address is where a service listens, not one to dial:
     * every service of an embedded topology is on this host. */
    const char *host = s->listen_host;
    if (strcmp(host, "0.0.0.0") == 0 || !host[0])
      host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
      host = "::1";
    snprintf(t->host, sizeof t->host, "%s", host);
    t->port = s->listen_port;
    t->instances = s->instances ? s->instances : 1;
    return (int)i;
  }
  return -1;
}
