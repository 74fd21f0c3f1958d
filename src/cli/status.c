/* `strata status`: what a `strata up` on this machine is running. Reads the
 * supervisor's state file (DATA/strata-up.json), asks every process for
 * GET /health/ready and the gateway's admin listener for GET /admin/status
 * (pools, hosts, breakers), all at once on one libuv loop through the
 * gateway's strict HTTP client, and prints a table (or JSON with --json).
 *
 * Tolerant by design: a missing field prints as "-", an admin listener
 * that is absent, refuses the token or answers something unexpected is
 * reported on its line and does not hide the rest.
 *
 * Exit status: 0 when the supervisor and every process are up and ready,
 * 1 when something is not, 3 when nothing runs under the data directory. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cli/cli.h"
#include "core/arena.h"
#include "core/config.h"
#include "gateway/upstream.h"
#include "app/topology.h"
#include "topology/plan.h"

#define FETCH_TIMEOUT_MS 2000
#define MAX_BODY (4u << 20)

/* One GET on the shared loop; the answer is copied out of the arena. */
struct fetch {
  struct upstream_host *host;
  struct arena arena;
  char request[1024];
  int started;
  int rc;      /* UPSTREAM_OK or an upstream_result */
  int status;  /* HTTP status when rc is OK */
  json_t *body; /* parsed JSON body, or NULL */
};

static void on_fetched(int rc, struct upstream_response *r, void *arg) {
  struct fetch *f = arg;
  f->rc = rc;
  if (rc == UPSTREAM_OK) {
    f->status = r->status;
    if (r->body_len)
      f->body = json_loadb(r->body, r->body_len, 0, NULL);
  }
  arena_reset(&f->arena);
}

/* "HOST:PORT" or "http://HOST:PORT[/...]" -> host, port. */
static int split_address(const char *text, char *host, size_t host_len, uint16_t *port) {
  char buf[256], why[160];
  if (strncmp(text, "http://", 7) == 0)
    text += 7;
  snprintf(buf, sizeof buf, "%s", text);
  char *slash = strchr(buf, '/');
  if (slash)
    *slash = '\0';
  return config_parse_listen(buf, host, host_len, port, why, sizeof why);
}

static void fetch_start(uv_loop_t *loop, struct fetch *f, const char *address, const char *path,
                        const char *token) {
  char host[64];
  uint16_t port;
  f->rc = UPSTREAM_ECONNECT;
  if (split_address(address, host, sizeof host, &port) != 0)
    return;
  if (strcmp(host, "0.0.0.0") == 0)
    strcpy(host, "127.0.0.1");
  f->host = upstream_host_new(loop, host, port, 0, FETCH_TIMEOUT_MS);
  if (!f->host)
    return;
  arena_init(&f->arena, 4096);
  int n = snprintf(f->request, sizeof f->request,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: strata-status\r\n"
                   "Accept: application/json\r\n%s%s%sConnection: close\r\n\r\n",
                   path, upstream_host_name(f->host), token ? "Authorization: Bearer " : "",
                   token ? token : "", token ? "\r\n" : "");
  if (n > 0 && (size_t)n < sizeof f->request &&
      upstream_request(f->host, f->request, (size_t)n, 0, FETCH_TIMEOUT_MS, MAX_BODY, &f->arena,
                       on_fetched, f, NULL) == 0)
    f->started = 1;
}

static void fetch_free(struct fetch *f) {
  upstream_host_free(f->host);
  arena_free(&f->arena);
  json_decref(f->body);
}

static int pid_alive(json_int_t pid) {
  return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

static const char *str_or(json_t *obj, const char *key, const char *dflt) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s && *s ? s : dflt;
}

/* Reads the first line of a token file (without its newline) into out. */
static int read_token(const char *path, char *out, size_t len) {
  FILE *f = path && *path ? fopen(path, "r") : NULL;
  if (!f)
    return -1;
  int ok = fgets(out, (int)len, f) != NULL;
  fclose(f);
  if (!ok)
    return -1;
  out[strcspn(out, "\r\n")] = '\0';
  return out[0] ? 0 : -1;
}

/* The health verdict of one process, as text and as JSON. */
static const char *health_text(const struct fetch *f, int alive, char *buf, size_t len) {
  if (!alive)
    return "-";
  if (!f->started || f->rc != UPSTREAM_OK) {
    snprintf(buf, len, "unreachable (%s)", upstream_result_name(f->rc));
    return buf;
  }
  const char *state = str_or(f->body, "status", "?");
  if (f->status == 200)
    snprintf(buf, len, "%s", state);
  else
    snprintf(buf, len, "%s (%d)", state, f->status);
  return buf;
}

static json_t *health_json(const struct fetch *f, int alive) {
  if (!alive)
    return json_null();
  if (!f->started || f->rc != UPSTREAM_OK)
    return json_pack("{s:s}", "error", upstream_result_name(f->rc));
  json_t *h = json_pack("{s:i}", "status", f->status);
  json_t *st = json_object_get(f->body, "status");
  if (json_is_string(st))
    json_object_set(h, "state", st);
  return h;
}

static const char *yes_no(json_t *v) {
  return json_is_boolean(v) ? (json_is_true(v) ? "yes" : "no") : "-";
}

static void put_num(char *buf, size_t len, json_t *v) {
  if (json_is_integer(v))
    snprintf(buf, len, "%lld", (long long)json_integer_value(v));
  else
    snprintf(buf, len, "-");
}

static void print_admin(const char *url, const struct fetch *f, int have_token) {
  printf("\ngateway admin %s", url);
  if (!f->started || f->rc != UPSTREAM_OK) {
    printf(": unreachable (%s)\n", upstream_result_name(f->rc));
    return;
  }
  if (f->status == 401 || f->status == 403) {
    printf(": %d, the token was %s\n", f->status, have_token ? "refused" : "not found");
    return;
  }
  if (f->status != 200 || !json_is_object(f->body)) {
    printf(": answered %d%s\n", f->status, json_is_object(f->body) ? "" : " without a JSON object");
    return;
  }
  printf("\n  %-14s %-22s %-8s %-8s %-10s %7s %5s %9s %9s\n", "POOL", "HOST", "HEALTHY",
         "EJECTED", "BREAKER", "ACTIVE", "IDLE", "REQUESTS", "FAILURES");
  size_t i, k;
  json_t *pool, *host, *route;
  json_array_foreach(json_object_get(f->body, "pools"), i, pool) {
    json_t *hosts = json_object_get(pool, "hosts");
    if (!json_array_size(hosts))
      printf("  %-14s (no hosts)\n", str_or(pool, "name", "-"));
    json_array_foreach(hosts, k, host) {
      char active[24], idle[24], requests[24], failures[24];
      put_num(active, sizeof active, json_object_get(host, "active"));
      put_num(idle, sizeof idle, json_object_get(host, "idle"));
      put_num(requests, sizeof requests, json_object_get(host, "requests"));
      put_num(failures, sizeof failures, json_object_get(host, "failures"));
      printf("  %-14s %-22s %-8s %-8s %-10s %7s %5s %9s %9s\n", k ? "" : str_or(pool, "name", "-"),
             str_or(host, "address", "-"), yes_no(json_object_get(host, "healthy")),
             yes_no(json_object_get(host, "ejected")), str_or(host, "breaker", "-"), active, idle,
             requests, failures);
    }
  }
  json_t *routes = json_object_get(f->body, "routes");
  if (json_array_size(routes)) {
    printf("\n  %-30s %-14s %s\n", "ROUTE", "POOL", "BREAKER");
    json_array_foreach(routes, i, route) {
      printf("  %-30s %-14s %s\n", str_or(route, "match", "-"), str_or(route, "pool", "-"),
             str_or(route, "breaker", "-"));
    }
  }
}

struct status_args {
  const char *config, *data, *admin;
  int json;
};

static int parse_args(int argc, char **argv, struct status_args *a) {
  for (int i = 0; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(o, "--json") == 0) {
      a->json = 1;
    } else if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
      cli_usage(stdout);
      return 1;
    } else if (v && (strcmp(o, "--config") == 0 || strcmp(o, "--data") == 0 ||
                     strcmp(o, "--admin") == 0)) {
      *(o[2] == 'c' ? &a->config : o[2] == 'd' ? &a->data : &a->admin) = v;
      i++;
    } else {
      fprintf(stderr, "strata status: unknown or incomplete option '%s' (see strata --help)\n", o);
      return 2;
    }
  }
  return 0;
}

/* The data root: --data, else the config's server.data (--config, or
 * config/monolith.yaml when it is here), else ./var. */
static int find_root(const struct status_args *a, char *root, size_t len) {
  char cwd[PATH_MAX];
  const char *data = a->data;
  struct strata_config *cfg = NULL;
  const char *config = a->config;
  if (!config && access("config/monolith.yaml", R_OK) == 0)
    config = "config/monolith.yaml";
  if (!data && config) {
    cfg = malloc(sizeof *cfg);
    struct config_errors errs = {0};
    if (!cfg)
      return -1;
    config_defaults(cfg);
    if (config_load(config, cfg, &errs) != 0) {
      fprintf(stderr, "strata status: %s has errors (see strata check %s)\n", config, config);
      free(cfg);
      return -1;
    }
    data = cfg->data_dir;
  }
  int rc = getcwd(cwd, sizeof cwd) ? topology_path_join(root, len, cwd, data ? data : "./var")
                                   : -1;
  free(cfg);
  return rc;
}

int cli_status(int argc, char **argv) {
  struct status_args a = {0};
  int rc = parse_args(argc, argv, &a);
  if (rc)
    return rc == 1 ? 0 : rc;
  char root[TOPOLOGY_PATH], state_path[TOPOLOGY_PATH + 32];
  if (find_root(&a, root, sizeof root) != 0)
    return 2;
  snprintf(state_path, sizeof state_path, "%s/strata-up.json", root);
  json_t *state = json_load_file(state_path, 0, NULL);
  if (!json_is_object(state)) {
    json_decref(state);
    if (a.json) {
      json_t *doc = json_pack("{s:b,s:s}", "running", 0, "data", root);
      char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
      if (text)
        printf("%s\n", text);
      free(text);
      json_decref(doc);
    } else {
      printf("strata status: nothing is running under %s (no readable strata-up.json)\n", root);
    }
    return 3;
  }

  json_int_t sv_pid = json_integer_value(json_object_get(state, "pid"));
  int sv_alive = pid_alive(sv_pid);
  json_t *procs = json_object_get(state, "processes");
  size_t n = json_array_size(procs);
  struct fetch *fetches = calloc(n + 1, sizeof *fetches);
  if (!fetches) {
    json_decref(state);
    return 1;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  for (size_t i = 0; i < n; i++) {
    json_t *p = json_array_get(procs, i);
    if (pid_alive(json_integer_value(json_object_get(p, "pid"))))
      fetch_start(&loop, &fetches[i], str_or(p, "address", ""), "/health/ready", NULL);
  }
  const char *admin_url = a.admin ? a.admin : str_or(state, "admin", NULL);
  char token[512] = "";
  const char *token_file = str_or(state, "adminTokenFile", NULL);
  char fallback[TOPOLOGY_PATH + 32];
  snprintf(fallback, sizeof fallback, "%s/admin.token", root);
  int have_token = read_token(token_file, token, sizeof token) == 0 ||
                   read_token(fallback, token, sizeof token) == 0;
  struct fetch *admin = &fetches[n];
  if (admin_url)
    fetch_start(&loop, admin, admin_url, "/admin/status", have_token ? token : NULL);
  uv_run(&loop, UV_RUN_DEFAULT);

  int all_ok = sv_alive;
  json_t *out_procs = json_array();
  if (!a.json) {
    printf("strata up (pid %lld) %s; data %s\npublic %s\n\n", (long long)sv_pid,
           sv_alive ? "running" : "is NOT running (stale state file)", root,
           str_or(state, "public", "-"));
    printf("  %-16s %-8s %-22s %-9s %-24s %-8s %s\n", "PROCESS", "PID", "ADDRESS", "STATE",
           "HEALTH", "RESTARTS", "LAST EXIT");
  }
  for (size_t i = 0; i < n; i++) {
    json_t *p = json_array_get(procs, i);
    json_int_t pid = json_integer_value(json_object_get(p, "pid"));
    int alive = pid_alive(pid);
    const struct fetch *f = &fetches[i];
    int ready = alive && f->started && f->rc == UPSTREAM_OK && f->status == 200;
    all_ok &= ready;
    if (a.json) {
      json_t *o = json_deep_copy(p);
      json_object_set_new(o, "alive", json_boolean(alive));
      json_object_set_new(o, "health", health_json(f, alive));
      json_array_append_new(out_procs, o);
      continue;
    }
    char pidtxt[24], health[96], restarts[24];
    snprintf(pidtxt, sizeof pidtxt, alive ? "%lld" : "-", (long long)pid);
    put_num(restarts, sizeof restarts, json_object_get(p, "restarts"));
    printf("  %-16s %-8s %-22s %-9s %-24s %-8s %s\n", str_or(p, "name", "-"), pidtxt,
           str_or(p, "address", "-"), str_or(p, "state", "-"),
           health_text(f, alive, health, sizeof health), restarts, str_or(p, "lastExit", ""));
  }
  if (a.json) {
    json_t *doc = json_pack("{s:b,s:{s:I,s:b},s:s,s:s,s:s,s:o}", "running", sv_alive,
                            "supervisor", "pid", sv_pid, "alive", sv_alive, "data", root, "config",
                            str_or(state, "config", ""), "public", str_or(state, "public", ""),
                            "processes", out_procs);
    out_procs = NULL;
    if (doc && admin_url) {
      json_t *ad = json_pack("{s:s}", "url", admin_url);
      if (!admin->started || admin->rc != UPSTREAM_OK)
        json_object_set_new(ad, "error", json_string(upstream_result_name(admin->rc)));
      else
        json_object_set_new(ad, "httpStatus", json_integer(admin->status));
      if (admin->status == 200 && json_is_object(admin->body))
        json_object_set(ad, "status", admin->body);
      json_object_set_new(doc, "admin", ad);
    }
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (text)
      printf("%s\n", text);
    free(text);
    json_decref(doc);
  } else if (admin_url) {
    print_admin(admin_url, admin, have_token);
  } else {
    printf("\ngateway admin: not served by this topology's gateway\n");
  }
  json_decref(out_procs);

  for (size_t i = 0; i <= n; i++)
    fetch_free(&fetches[i]);
  uv_run(&loop, UV_RUN_DEFAULT); /* lets the closed connections finish */
  uv_loop_close(&loop);
  free(fetches);
  json_decref(state);
  return all_ok ? 0 : 1;
}
