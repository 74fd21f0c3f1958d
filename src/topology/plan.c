/* From a topology config to the children `strata up` runs; see plan.h. */
#include "topology/plan.h"

#include "app/topology.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"

struct topology_forms topology_forms_default(void) {
  struct topology_forms f = {.serve_by_service = TOPOLOGY_SERVE_BY_SERVICE,
                             .gateway_by_config = TOPOLOGY_GATEWAY_BY_CONFIG};
  return f;
}


void topology_format_address(char *out, size_t len, const char *host, unsigned port) {
  if (strchr(host, ':'))
    snprintf(out, len, "[%s]:%u", host, port);
  else
    snprintf(out, len, "%s:%u", host, port);
}

/* Where to probe a listener: a wildcard address is reached on loopback. */
static const char *probe_host_of(const char *host) {
  if (strcmp(host, "0.0.0.0") == 0 || !host[0])
    return "127.0.0.1";
  if (strcmp(host, "::") == 0)
    return "::1";
  return host;
}

static int fail(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t why_len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, why_len, fmt, ap);
  va_end(ap);
  return -1;
}

/* Two listeners may collide: same port, and the same host or a wildcard. */
static int same_listener(const char *h1, unsigned p1, const char *h2, unsigned p2) {
  if (p1 != p2)
    return 0;
  return strcmp(h1, h2) == 0 || strcmp(h1, "0.0.0.0") == 0 || strcmp(h2, "0.0.0.0") == 0 ||
         strcmp(h1, "::") == 0 || strcmp(h2, "::") == 0;
}

/* The upstream groups the gateway routes to: its pools, and the services a
 * route names directly. The gateway form of today (one pool, no routing)
 * can run only one of them. */
static unsigned count_upstream_groups(const struct strata_config *cfg) {
  unsigned n = cfg->gateway.n_pools;
  for (uint32_t i = 0; i < cfg->gateway.n_routes; i++) {
    const char *p = cfg->gateway.routes[i].pool;
    if (config_find_pool(cfg, p))
      continue;
    int seen = 0;
    for (uint32_t j = 0; j < i && !seen; j++)
      seen = strcmp(cfg->gateway.routes[j].pool, p) == 0;
    n += !seen;
  }
  return n;
}

/* --upstream for every host of the one group (see count_upstream_groups). */
static int add_upstreams(struct sv_child_spec *c, const struct strata_config *cfg) {
  const struct pool_config *pool = cfg->gateway.n_pools ? &cfg->gateway.pools[0] : NULL;
  const char *service = pool ? pool->service : cfg->gateway.routes[0].pool;
  char addr[96];
  if (pool && pool->n_hosts) {
    for (uint32_t i = 0; i < pool->n_hosts; i++) {
      topology_format_address(addr, sizeof addr, probe_host_of(pool->hosts[i].host),
                              pool->hosts[i].port);
      if (sv_spec_arg(c, "--upstream") || sv_spec_arg(c, "%s", addr))
        return -1;
    }
    return 0;
  }
  const struct service_config *svc = config_find_service(cfg, service);
  if (!svc)
    return -1;
  for (uint32_t i = 0; i < svc->instances; i++) {
    topology_format_address(addr, sizeof addr, probe_host_of(svc->listen_host),
                            svc->listen_port + i);
    if (sv_spec_arg(c, "--upstream") || sv_spec_arg(c, "%s", addr))
      return -1;
  }
  return 0;
}

/* Every command line `strata up` runs is built here. svc == NULL is the
 * gateway, otherwise instance `instance` of svc. Returns 0 or -1 (too long). */
static int build_argv(struct sv_child_spec *c, const struct strata_config *cfg,
                      const struct topology_plan *plan, const struct topology_forms *forms,
                      const struct service_config *svc, unsigned instance) {
  const struct gateway_config *g = &cfg->gateway;
  char addr[96];
  int rc = 0;
  if (svc) {
    rc |= sv_spec_arg(c, "serve") | sv_spec_arg(c, "--config") |
          sv_spec_arg(c, "%s", plan->config_path);
    if (forms->serve_by_service) {
      rc |= sv_spec_arg(c, "--service") | sv_spec_arg(c, "%s", svc->name) |
            sv_spec_arg(c, "--instance") | sv_spec_arg(c, "%u", instance) |
            sv_spec_arg(c, "--data") | sv_spec_arg(c, "%s", plan->root);
    } else {
      topology_format_address(addr, sizeof addr, svc->listen_host, svc->listen_port + instance);
      rc |= sv_spec_arg(c, "--listen") | sv_spec_arg(c, "%s", addr) | sv_spec_arg(c, "--data") |
            sv_spec_arg(c, "%s", c->data_dir) | sv_spec_arg(c, "--workers") |
            sv_spec_arg(c, "%u", svc->workers);
      if (g->identity_secret_file[0])
        rc |= sv_spec_arg(c, "--identity-secret-file") |
              sv_spec_arg(c, "%s", g->identity_secret_file);
    }
    return rc ? -1 : 0;
  }
  rc |= sv_spec_arg(c, "gateway");
  topology_format_address(addr, sizeof addr, g->listen_host, g->listen_port);
  if (forms->gateway_by_config) {
    rc |= sv_spec_arg(c, "--config") | sv_spec_arg(c, "%s", plan->config_path) |
          sv_spec_arg(c, "--data") | sv_spec_arg(c, "%s", plan->root) |
          sv_spec_arg(c, "--listen") | sv_spec_arg(c, "%s", addr);
    topology_format_address(addr, sizeof addr, g->admin_host, g->admin_port);
    rc |= sv_spec_arg(c, "--admin") | sv_spec_arg(c, "%s", addr);
    if (plan->token_generated)
      rc |= sv_spec_arg(c, "--admin-token-file") | sv_spec_arg(c, "%s", plan->token_path);
  } else {
    rc |= sv_spec_arg(c, "--listen") | sv_spec_arg(c, "%s", addr) | add_upstreams(c, cfg) |
          sv_spec_arg(c, "--workers") | sv_spec_arg(c, "%u", g->workers) |
          sv_spec_arg(c, "--log-level") |
          sv_spec_arg(c, "%s", config_log_level_name(cfg->log_level)) |
          sv_spec_arg(c, "--timeout") | sv_spec_arg(c, "%ums", g->total_timeout_ms) |
          sv_spec_arg(c, "--try-timeout") | sv_spec_arg(c, "%ums", g->try_timeout_ms);
    if (g->identity_secret_file[0])
      rc |= sv_spec_arg(c, "--identity-secret-file") |
            sv_spec_arg(c, "%s", g->identity_secret_file);
  }
  return rc ? -1 : 0;
}

static int add_child(struct topology_plan *plan, const struct sv_child_spec *c) {
  struct sv_child_spec *grown = realloc(plan->children, (plan->n_children + 1) * sizeof *grown);
  if (!grown)
    return -1;
  plan->children = grown;
  plan->children[plan->n_children++] = *c;
  return 0;
}

static int check_ports(const struct strata_config *cfg, int has_gateway, int has_admin,
                       char *why, size_t why_len) {
  const struct gateway_config *g = &cfg->gateway;
  if (has_gateway && has_admin &&
      same_listener(g->listen_host, g->listen_port, g->admin_host, g->admin_port))
    return fail(why, why_len, "the gateway's listen and admin listen are both port %u",
                g->listen_port);
  for (uint32_t i = 0; i < cfg->n_services && has_gateway; i++) {
    const struct service_config *s = &cfg->services[i];
    for (uint32_t k = 0; k < s->instances; k++) {
      unsigned port = s->listen_port + k;
      if (same_listener(s->listen_host, port, g->listen_host, g->listen_port) ||
          (has_admin && same_listener(s->listen_host, port, g->admin_host, g->admin_port)))
        return fail(why, why_len,
                    "services.%s instance %u would listen on port %u, which the gateway uses",
                    s->name, k, port);
    }
  }
  return 0;
}

int topology_plan_build(const struct strata_config *cfg, const char *config_path,
                        const char *root, const struct topology_forms *forms,
                        struct topology_plan *plan, char *why, size_t why_len) {
  memset(plan, 0, sizeof *plan);
  char cwd[TOPOLOGY_PATH];
  if (!getcwd(cwd, sizeof cwd))
    return fail(why, why_len, "cannot read the current directory");
  const struct gateway_config *g = &cfg->gateway;
  int has_gateway = g->n_pools > 0 || g->n_routes > 0;
  int has_admin = has_gateway && forms->gateway_by_config;
  if (!cfg->n_services && !has_gateway)
    return fail(why, why_len, "%s has no services and no gateway: nothing to run (see "
                              "docs/topologies.md)", config_path);
  if (has_gateway && !forms->gateway_by_config && count_upstream_groups(cfg) > 1)
    return fail(why, why_len,
                "%s routes to %u pools; this build's `strata gateway` has one pool and no "
                "routes (config routes come with `strata gateway --config`)",
                config_path, count_upstream_groups(cfg));
  if (check_ports(cfg, has_gateway, has_admin, why, why_len) != 0)
    return -1;
  if (topology_path_join(plan->root, sizeof plan->root, cwd, root) != 0 ||
      topology_path_join(plan->config_path, sizeof plan->config_path, cwd, config_path) != 0 ||
      topology_path_join(plan->logs_dir, sizeof plan->logs_dir, plan->root, "logs") != 0 ||
      topology_path_join(plan->state_path, sizeof plan->state_path, plan->root,
                         "strata-up.json") != 0 ||
      topology_path_join(plan->lock_path, sizeof plan->lock_path, plan->root,
                         "strata-up.lock") != 0)
    return fail(why, why_len, "the data directory path is too long");
  if (has_gateway) {
    plan->token_generated = !g->admin_token_file[0];
    if (topology_path_join(plan->token_path, sizeof plan->token_path,
                           plan->token_generated ? plan->root : cwd,
                           plan->token_generated ? "admin.token" : g->admin_token_file) != 0)
      return fail(why, why_len, "gateway.admin.token_file: path too long");
  }

  uint32_t stop_ms = cfg->http.drain_timeout_ms + 5000;
  for (uint32_t i = 0; i < cfg->n_services; i++) {
    const struct service_config *svc = &cfg->services[i];
    for (uint32_t k = 0; k < svc->instances; k++) {
      struct sv_child_spec c;
      memset(&c, 0, sizeof c);
      snprintf(c.name, sizeof c.name, "%s-%u", svc->name, k);
      snprintf(c.role, sizeof c.role, "service");
      c.stage = 0;
      topology_format_address(c.address, sizeof c.address, svc->listen_host,
                              svc->listen_port + k);
      snprintf(c.probe_host, sizeof c.probe_host, "%s", probe_host_of(svc->listen_host));
      c.probe_port = (uint16_t)(svc->listen_port + k);
      c.stop_timeout_ms = stop_ms;
      int bad = topology_path_join(c.data_dir, sizeof c.data_dir, plan->root, svc->data_dir);
      bad |= snprintf(c.log_path, sizeof c.log_path, "%s/%s.log", plan->logs_dir, c.name) >=
             (int)sizeof c.log_path;
      if (bad || build_argv(&c, cfg, plan, forms, svc, k) != 0)
        goto too_long;
      if (add_child(plan, &c) != 0)
        goto no_memory;
    }
  }
  if (has_gateway) {
    struct sv_child_spec c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "gateway");
    snprintf(c.role, sizeof c.role, "gateway");
    c.stage = 1;
    topology_format_address(c.address, sizeof c.address, g->listen_host, g->listen_port);
    snprintf(c.probe_host, sizeof c.probe_host, "%s", probe_host_of(g->listen_host));
    c.probe_port = g->listen_port;
    c.stop_timeout_ms = stop_ms;
    snprintf(c.data_dir, sizeof c.data_dir, "%s", plan->root);
    if (snprintf(c.log_path, sizeof c.log_path, "%s/gateway.log", plan->logs_dir) >=
            (int)sizeof c.log_path ||
        build_argv(&c, cfg, plan, forms, NULL, 0) != 0)
      goto too_long;
    if (add_child(plan, &c) != 0)
      goto no_memory;
    snprintf(plan->public_url, sizeof plan->public_url, "http://%s", c.address);
    if (has_admin) {
      char addr[96];
      topology_format_address(addr, sizeof addr, g->admin_host, g->admin_port);
      snprintf(plan->admin_url, sizeof plan->admin_url, "http://%s", addr);
    }
  } else {
    snprintf(plan->public_url, sizeof plan->public_url, "http://%s", plan->children[0].address);
  }
  return 0;
too_long:
  topology_plan_free(plan);
  return fail(why, why_len, "a command line or path is too long (data directory too deep?)");
no_memory:
  topology_plan_free(plan);
  return fail(why, why_len, "out of memory");
}

void topology_plan_free(struct topology_plan *plan) {
  free(plan->children);
  plan->children = NULL;
  plan->n_children = 0;
}
