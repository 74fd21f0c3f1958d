/* Unit tests for src/topology/plan.c (and the plain-data helpers of
 * src/topology/supervisor.c): which processes a topology config becomes,
 * with which command lines, data directories and logs, and the errors that
 * stop `strata up` before it starts anything. The command lines are the
 * contract with `strata serve` and `strata gateway`, so both forms (today's
 * flags and the --config forms) are checked word by word. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "core/config.h"
#include "app/topology.h"
#include "topology/plan.h"
#include "topology/supervisor.h"

static const char monolith[] =
    "gateway:\n"
    "  listen: 127.0.0.1:8080\n"
    "  admin: {listen: 127.0.0.1:9901}\n"
    "  pools: {app: {service: app}}\n"
    "  routes:\n"
    "    - {match: {prefix: /}, pool: app}\n"
    "services:\n"
    "  app: {domains: [users, orders, payments, notifications], instances: 2,\n"
    "        listen: 127.0.0.1:8081, data: app, workers: 2}\n";

static const char micro[] =
    "gateway:\n"
    "  listen: 127.0.0.1:8080\n"
    "  admin: {listen: 127.0.0.1:9901, token_file: /etc/strata/admin.token}\n"
    "  pools: {users: {service: users}, orders: {service: orders}}\n"
    "  routes:\n"
    "    - {match: {prefix: /api/users}, pool: users}\n"
    "    - {match: {prefix: /api/orders}, pool: orders}\n"
    "services:\n"
    "  users: {domains: [users], listen: 127.0.0.1:8101, data: users}\n"
    "  orders: {domains: [orders, payments, notifications], listen: 127.0.0.1:8111,\n"
    "           data: /srv/orders}\n";

static void load(const char *yaml, struct strata_config *cfg) {
  struct config_errors errs = {0};
  config_defaults(cfg);
  int rc = config_load_buffer(yaml, strlen(yaml), cfg, &errs);
  if (rc != 0)
    fail_msg("config: line %d: %s", errs.items[0].line, errs.items[0].message);
}

/* Loads yaml and builds its plan for config file `config` under /d with
 * today's forms (later = 0) or the --config forms (later = 1). */
static void plan_of(const char *yaml, const char *config, int later, struct strata_config *cfg,
                    struct topology_plan *p) {
  struct topology_forms forms = {later, later};
  char why[256];
  load(yaml, cfg);
  if (topology_plan_build(cfg, config, "/d", &forms, p, why, sizeof why) != 0)
    fail_msg("plan: %s", why);
}

/* The command line of c as one string, arguments joined by spaces. */
static const char *joined(const struct sv_child_spec *c) {
  static char buf[SV_ARGBUF];
  buf[0] = '\0';
  for (unsigned i = 0; i < c->argc; i++) {
    if (i)
      strcat(buf, " ");
    strcat(buf, sv_spec_argv(c, i));
  }
  return buf;
}

static void test_format_address(void **state) {
  (void)state;
  char out[64];
  topology_format_address(out, sizeof out, "::1", 80);
  assert_string_equal(out, "[::1]:80");
  topology_format_address(out, sizeof out, "127.0.0.1", 8080);
  assert_string_equal(out, "127.0.0.1:8080");
}

static void test_monolith_today(void **state) {
  (void)state;
  struct strata_config cfg;
  struct topology_plan p;
  plan_of(monolith, "/c/monolith.yaml", 0, &cfg, &p);
  assert_int_equal(p.n_children, 3);
  assert_string_equal(p.root, "/d");
  assert_string_equal(p.state_path, "/d/strata-up.json");
  assert_string_equal(p.token_path, "/d/admin.token");
  assert_true(p.token_generated);
  assert_string_equal(p.public_url, "http://127.0.0.1:8080");
  assert_string_equal(p.admin_url, ""); /* today's gateway has no admin listener */

  const struct sv_child_spec *a1 = &p.children[1];
  assert_string_equal(a1->name, "app-1");
  assert_int_equal(a1->stage, 0);
  assert_string_equal(a1->address, "127.0.0.1:8082");
  assert_int_equal(a1->probe_port, 8082);
  assert_string_equal(a1->data_dir, "/d/app");
  assert_string_equal(a1->log_path, "/d/logs/app-1.log");
  assert_int_equal(a1->stop_timeout_ms, cfg.http.drain_timeout_ms + 5000);
  assert_string_equal(joined(a1), "serve --config /c/monolith.yaml --listen 127.0.0.1:8082 "
                                  "--data /d/app --workers 2");

  const struct sv_child_spec *gw = &p.children[2];
  assert_string_equal(gw->name, "gateway");
  assert_int_equal(gw->stage, 1);
  assert_int_equal(gw->probe_port, 8080);
  assert_string_equal(joined(gw), "gateway --listen 127.0.0.1:8080 --upstream 127.0.0.1:8081 "
                                  "--upstream 127.0.0.1:8082 --workers 0 --log-level info "
                                  "--timeout 15000ms --try-timeout 10000ms");
  topology_plan_free(&p);
  topology_plan_free(&p); /* twice is fine */
}

static void test_config_forms(void **state) {
  (void)state;
  struct strata_config cfg;
  struct topology_plan p;
  plan_of(micro, "/c/m.yaml", 1, &cfg, &p);
  assert_int_equal(p.n_children, 3);
  assert_string_equal(p.admin_url, "http://127.0.0.1:9901");
  assert_false(p.token_generated);
  assert_string_equal(p.token_path, "/etc/strata/admin.token");
  assert_string_equal(joined(&p.children[0]),
                      "serve --config /c/m.yaml --service users --instance 0 --data /d");
  assert_string_equal(p.children[1].data_dir, "/srv/orders"); /* absolute stays */
  assert_string_equal(joined(&p.children[2]),
                      "gateway --config /c/m.yaml --data /d --listen 127.0.0.1:8080 "
                      "--admin 127.0.0.1:9901");
  topology_plan_free(&p);

  plan_of(monolith, "/c/m.yaml", 1, &cfg, &p);
  assert_string_equal(joined(&p.children[2]),
                      "gateway --config /c/m.yaml --data /d --listen 127.0.0.1:8080 "
                      "--admin 127.0.0.1:9901 --admin-token-file /d/admin.token");
  topology_plan_free(&p);
}

static void test_errors(void **state) {
  (void)state;
  struct strata_config cfg;
  struct topology_plan p;
  struct topology_forms today = {0, 0}, later = {1, 1};
  char why[256];

  load(micro, &cfg);
  assert_int_equal(topology_plan_build(&cfg, "m.yaml", "/d", &today, &p, why, sizeof why), -1);
  assert_non_null(strstr(why, "m.yaml routes to 2 pools"));
  assert_null(p.children);

  load("log: {level: warn}\n", &cfg);
  assert_int_equal(topology_plan_build(&cfg, "e.yaml", "/d", &later, &p, why, sizeof why), -1);
  assert_non_null(strstr(why, "nothing to run"));

  load(monolith, &cfg);
  cfg.gateway.admin_port = 8082; /* an instance's port */
  assert_int_equal(topology_plan_build(&cfg, "m.yaml", "/d", &later, &p, why, sizeof why), -1);
  assert_string_equal(why, "services.app instance 1 would listen on port 8082, which the "
                           "gateway uses");
  cfg.gateway.admin_port = 8080;
  assert_int_equal(topology_plan_build(&cfg, "m.yaml", "/d", &later, &p, why, sizeof why), -1);
  assert_non_null(strstr(why, "listen and admin listen are both port 8080"));
}

static void test_relative_paths_are_made_absolute(void **state) {
  (void)state;
  struct strata_config cfg;
  struct topology_plan p;
  struct topology_forms today = {0, 0};
  char why[256], cwd[512], want[600];
  load(monolith, &cfg);
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(topology_plan_build(&cfg, "config/m.yaml", "./var", &today, &p, why,
                                       sizeof why), 0);
  snprintf(want, sizeof want, "%s/var", cwd);
  assert_string_equal(p.root, want);
  snprintf(want, sizeof want, "%s/config/m.yaml", cwd);
  assert_string_equal(p.config_path, want);
  snprintf(want, sizeof want, "%s/var/logs/gateway.log", cwd);
  assert_string_equal(p.children[2].log_path, want);
  topology_plan_free(&p);
}

static void test_spec_args(void **state) {
  (void)state;
  struct sv_child_spec *c = calloc(1, sizeof *c);
  assert_non_null(c);
  assert_int_equal(sv_spec_arg(c, "serve"), 0);
  assert_int_equal(sv_spec_arg(c, "--port=%d", 80), 0);
  assert_string_equal(sv_spec_argv(c, 1), "--port=80");
  assert_null(sv_spec_argv(c, 2));
  for (unsigned i = 2; i < SV_MAX_ARGS; i++)
    assert_int_equal(sv_spec_arg(c, "x"), 0);
  assert_int_equal(sv_spec_arg(c, "one too many"), -1);
  assert_int_equal(c->argc, SV_MAX_ARGS);
  memset(c, 0, sizeof *c);
  char big[SV_ARGBUF + 1]; /* one byte more than the whole buffer */
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(sv_spec_arg(c, "%s", big), -1);
  assert_int_equal(c->argc, 0);
  free(c);
}

static void test_describe_exit(void **state) {
  (void)state;
  char out[64];
  sv_describe_exit(1 << 8, out, sizeof out); /* what waitpid() reports for exit(1) */
  assert_string_equal(out, "exited with status 1");
  sv_describe_exit(9, out, sizeof out); /* SIGKILL */
  assert_string_equal(out, "killed by SIGKILL");
  sv_describe_exit(11 | 0x80, out, sizeof out); /* SIGSEGV with a core */
  assert_string_equal(out, "killed by SIGSEGV (core dumped)");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_format_address),
      cmocka_unit_test(test_monolith_today),
      cmocka_unit_test(test_config_forms),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_relative_paths_are_made_absolute),
      cmocka_unit_test(test_spec_args),
      cmocka_unit_test(test_describe_exit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
