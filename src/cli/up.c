/* `strata up`: runs a whole topology on this machine. Loads the config,
 * turns it into a list of processes (topology/plan.h), prepares the data
 * root (directories, the admin token, a lock so one root has one
 * supervisor) and hands the processes to the supervisor
 * (topology/supervisor.h), which starts, watches and stops them.
 *
 * Human text (progress, the summary, failures) goes to stderr; stdout
 * carries the supervisor's JSON log lines like every strata process. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/config.h"
#include "observe/log.h"
#include "topology/plan.h"
#include "topology/supervisor.h"

#define DEFAULT_CONFIG "config/monolith.yaml"

struct up {
  struct strata_config cfg;
  struct topology_plan plan;
  struct supervisor *sv;
  char cwd[PATH_MAX];
  char exe[PATH_MAX];
  char data_arg[PATH_MAX]; /* the root as the user wrote it, for the hints */
};

/* path relative to the current directory when it is under it: the summary
 * is for reading. */
static const char *shown(const struct up *u, const char *path) {
  size_t n = strlen(u->cwd);
  if (n > 1 && strncmp(path, u->cwd, n) == 0 && path[n] == '/')
    return path + n + 1;
  return path;
}

static int make_dirs(const char *path) {
  if (mkdir(path, 0755) == 0 || errno == EEXIST)
    return 0;
  if (errno != ENOENT)
    return -1;
  char parent[PATH_MAX];
  snprintf(parent, sizeof parent, "%s", path);
  char *slash = strrchr(parent, '/');
  if (!slash || slash == parent)
    return -1;
  *slash = '\0';
  if (make_dirs(parent) != 0)
    return -1;
  return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/* A random bearer token in path (mode 0600), unless one is there already. */
static int ensure_token(const char *path) {
  struct stat st;
  if (stat(path, &st) == 0 && st.st_size > 0)
    return 0;
  unsigned char raw[32];
  char hex[2 * sizeof raw + 2];
  if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
    return -1;
  for (size_t i = 0; i < sizeof raw; i++)
    snprintf(hex + 2 * i, 3, "%02x", raw[i]);
  hex[2 * sizeof raw] = '\n';
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return -1;
  ssize_t w = write(fd, hex, 2 * sizeof raw + 1);
  int rc = w == (ssize_t)(2 * sizeof raw + 1) && fchmod(fd, 0600) == 0 ? 0 : -1;
  close(fd);
  return rc;
}

/* One supervisor per data root: the lock is held (by an open descriptor,
 * closed on exec) for the supervisor's life and released by the kernel
 * however it ends. */
static int take_lock(const struct topology_plan *plan) {
  int fd = open(plan->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "strata up: cannot open %s: %s\n", plan->lock_path, strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) == 0)
    return fd;
  long pid = 0;
  json_t *state = json_load_file(plan->state_path, 0, NULL);
  if (state)
    pid = (long)json_integer_value(json_object_get(state, "pid"));
  json_decref(state);
  fprintf(stderr,
          "strata up: %s is in use by another strata up (pid %ld); stop it first, or give "
          "another --data\n",
          plan->root, pid);
  close(fd);
  return -1;
}

static void on_ready(void *arg) {
  struct up *u = arg;
  const struct topology_plan *p = &u->plan;
  FILE *o = stderr;
  fprintf(o, "\nstrata is up: %u processes from %s\n\n", p->n_children,
          shown(u, p->config_path));
  fprintf(o, "  public   %s\n", p->public_url);
  if (p->admin_url[0])
    fprintf(o, "  admin    %s  (Authorization: Bearer <the token in %s>)\n", p->admin_url,
            shown(u, p->token_path));
  else if (p->token_path[0])
    fprintf(o, "  admin    not served by this build's gateway yet (it comes with "
               "`strata gateway --config`)\n");
  fprintf(o, "\n  %-16s %-8s %-22s %-26s %s\n", "PROCESS", "PID", "ADDRESS", "DATA", "LOG");
  for (unsigned i = 0; i < p->n_children; i++) {
    const struct sv_child_spec *c = &p->children[i];
    fprintf(o, "  %-16s %-8d %-22s %-26s %s\n", c->name, supervisor_child_pid(u->sv, i),
            c->address, shown(u, c->data_dir), shown(u, c->log_path));
  }
  const char *url = p->public_url;
  fprintf(o,
          "\n  try it:\n"
          "    curl -s -X POST %s/api/users -H 'Content-Type: application/json' \\\n"
          "         -d '{\"name\":\"Ada\",\"email\":\"ada@example.com\"}'\n"
          "    curl -s %s/api/users/<id>          # the id from the answer above\n"
          "    curl -s %s/health/ready\n"
          "    %s status --data %s\n"
          "\n  stop: Ctrl-C here, or kill -TERM %d (the gateway drains first, then the "
          "services)\n\n",
          url, url, url, shown(u, u->exe), u->data_arg, (int)getpid());
  fflush(o);
}

/* The top of the state file: what `strata status` needs besides the pids. */
static char *state_info(const struct up *u) {
  const struct topology_plan *p = &u->plan;
  json_t *info = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "version", STRATA_VERSION, "config",
                           p->config_path, "data", p->root, "public", p->public_url, "admin",
                           p->admin_url, "adminTokenFile", p->token_path);
  char *text = info ? json_dumps(info, JSON_COMPACT) : NULL;
  json_decref(info);
  return text;
}

static int usage_error(const char *msg, const char *arg) {
  fprintf(stderr, "strata up: %s%s (see strata --help)\n", msg, arg ? arg : "");
  return 2;
}

static int parse_args(int argc, char **argv, const char **config, const char **data,
                      const char **listen, const char **admin, uint32_t *timeout_ms) {
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      cli_usage(stdout);
      return 1;
    }
    if (!v)
      return usage_error("an option needs a value: ", a);
    i++;
    if (strcmp(a, "--config") == 0) {
      *config = v;
    } else if (strcmp(a, "--data") == 0) {
      *data = v;
    } else if (strcmp(a, "--listen") == 0) {
      *listen = v;
    } else if (strcmp(a, "--admin") == 0) {
      *admin = v;
    } else if (strcmp(a, "--timeout") == 0) {
      uint64_t ms;
      char why[128];
      if (config_parse_duration_ms(v, &ms, why, sizeof why) != 0 || !ms || ms > 3600000)
        return usage_error("--timeout needs a duration such as 30s, not ", v);
      *timeout_ms = (uint32_t)ms;
    } else {
      return usage_error("unknown option ", a);
    }
  }
  return 0;
}

static int load_config(struct up *u, const char *path, const char *listen, const char *admin) {
  struct config_errors errs = {0};
  config_defaults(&u->cfg);
  if (config_load(path, &u->cfg, &errs) != 0) {
    int shown_n = errs.count < CONFIG_MAX_ERRORS ? errs.count : CONFIG_MAX_ERRORS;
    for (int i = 0; i < shown_n; i++)
      fprintf(stderr, "%s:%d: %s\n", path, errs.items[i].line, errs.items[i].message);
    fprintf(stderr, "strata up: %s has errors (strata check %s explains them)\n", path, path);
    return -1;
  }
  struct gateway_config *g = &u->cfg.gateway;
  char why[160];
  if (listen && config_parse_listen(listen, g->listen_host, sizeof g->listen_host,
                                    &g->listen_port, why, sizeof why) != 0) {
    fprintf(stderr, "strata up: --listen %s: %s\n", listen, why);
    return -1;
  }
  if (admin && config_parse_listen(admin, g->admin_host, sizeof g->admin_host, &g->admin_port,
                                   why, sizeof why) != 0) {
    fprintf(stderr, "strata up: --admin %s: %s\n", admin, why);
    return -1;
  }
  return 0;
}

int cli_up(int argc, char **argv) {
  const char *config = NULL, *data = NULL, *listen = NULL, *admin = NULL;
  uint32_t timeout_ms = 60000;
  int rc = parse_args(argc, argv, &config, &data, &listen, &admin, &timeout_ms);
  if (rc)
    return rc == 1 ? 0 : rc;
  if (!config) {
    if (access(DEFAULT_CONFIG, R_OK) != 0) {
      fprintf(stderr, "strata up: no --config FILE and no %s here (shipped topologies: "
                      "config/monolith.yaml, config/microservices.yaml)\n", DEFAULT_CONFIG);
      return 2;
    }
    config = DEFAULT_CONFIG;
  }
  struct up *u = calloc(1, sizeof *u);
  if (!u)
    return 1;
  rc = 1;
  int lock_fd = -1;
  char *info = NULL;
  if (load_config(u, config, listen, admin) != 0)
    goto done;
  log_set_level(u->cfg.log_level);
  snprintf(u->data_arg, sizeof u->data_arg, "%s", data ? data : u->cfg.data_dir);
  char why[512];
  struct topology_forms forms = topology_forms_default();
  if (topology_plan_build(&u->cfg, config, u->data_arg, &forms, &u->plan, why, sizeof why) != 0) {
    fprintf(stderr, "strata up: %s\n", why);
    goto done;
  }
  const struct topology_plan *p = &u->plan;
  if (!getcwd(u->cwd, sizeof u->cwd))
    u->cwd[0] = '\0';
  ssize_t n = readlink("/proc/self/exe", u->exe, sizeof u->exe - 1);
  if (n <= 0) {
    fprintf(stderr, "strata up: cannot find my own binary (/proc/self/exe)\n");
    goto done;
  }
  u->exe[n] = '\0';
  if (make_dirs(p->root) != 0 || make_dirs(p->logs_dir) != 0) {
    fprintf(stderr, "strata up: cannot create %s: %s\n", p->logs_dir, strerror(errno));
    goto done;
  }
  if ((lock_fd = take_lock(p)) < 0)
    goto done;
  if (p->token_generated && ensure_token(p->token_path) != 0) {
    fprintf(stderr, "strata up: cannot write the admin token %s: %s\n", p->token_path,
            strerror(errno));
    goto done;
  }
  info = state_info(u);
  struct sv_options opt = {
      .exe = u->exe,
      .state_path = p->state_path,
      .state_info_json = info,
      .ready_timeout_ms = timeout_ms,
      .progress = stderr,
      .progress_live = isatty(STDERR_FILENO),
      .on_ready = on_ready,
      .arg = u,
  };
  u->sv = supervisor_new(&opt);
  if (!u->sv)
    goto done;
  for (unsigned i = 0; i < p->n_children; i++)
    if (supervisor_add(u->sv, &p->children[i]) != 0)
      goto done;
  fprintf(stderr, "strata up: starting %u processes from %s (data in %s, logs in %s)\n",
          p->n_children, shown(u, p->config_path), shown(u, p->root), shown(u, p->logs_dir));
  rc = supervisor_run(u->sv);
  fprintf(stderr, rc == 0 ? "strata up: stopped, nothing left running\n"
                          : "strata up: everything is stopped (exit status 1)\n");
done:
  supervisor_free(u->sv);
  free(info);
  if (lock_fd >= 0)
    close(lock_fd);
  topology_plan_free(&u->plan);
  free(u);
  return rc;
}
