/* Unit tests for src/app/topology.c: which domains a process hosts, where it
 * listens and keeps its files, and where the other domains are served.
 *
 * Configs are YAML text loaded through config_load_buffer(), the way
 * `strata serve --config` reads them, so the tests see the same defaults
 * (instances 1, data "") the binary sees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "app/topology.h"
#include "core/config.h"

static const char topology_yaml[] =
    "server: {data: /srv/micro, workers: 4}\n"
    "services:\n"
    "  front: {domains: [users, orders], listen: 127.0.0.1:8081, instances: 3, workers: 2}\n"
    "  payments: {domains: [payments], listen: 127.0.0.1:8090, data: pay}\n"
    "  notifications: {domains: [notifications], listen: 127.0.0.1:8095, data: /abs/notes}\n";

static void load(const char *text, struct strata_config *cfg) {
  struct config_errors errs;
  config_defaults(cfg);
  int rc = config_load_buffer(text, strlen(text), cfg, &errs);
  if (rc != 0)
    fail_msg("config: %s", errs.items[0].message);
}

static void test_domain_names(void **state) {
  (void)state;
  assert_string_equal(topology_domain_name(0), "users");
  assert_string_equal(topology_domain_name(1), "orders");
  assert_string_equal(topology_domain_name(2), "payments");
  assert_string_equal(topology_domain_name(3), "notifications");
  assert_null(topology_domain_name(4));
  assert_null(topology_domain_name(-1));
}

static void test_hosted(void **state) {
  (void)state;
  struct strata_config cfg;
  load(topology_yaml, &cfg);
  assert_int_equal(topology_hosted(&cfg, NULL), TOPOLOGY_ALL_DOMAINS);
  assert_int_equal(topology_hosted(&cfg, "front"), 0x3);
  assert_int_equal(topology_hosted(&cfg, "payments"), 0x4);
  assert_int_equal(topology_hosted(&cfg, "notifications"), 0x8);
  assert_int_equal(topology_hosted(&cfg, "nope"), 0);
}

static void test_path_join(void **state) {
  (void)state;
  char out[16];
  assert_int_equal(topology_path_join(out, sizeof out, "var", "users"), 0);
  assert_string_equal(out, "var/users");
  assert_int_equal(topology_path_join(out, sizeof out, "var/", "users"), 0);
  assert_string_equal(out, "var/users");
  assert_int_equal(topology_path_join(out, sizeof out, "var", "/abs"), 0);
  assert_string_equal(out, "/abs");
  assert_int_equal(topology_path_join(out, sizeof out, "var", ""), 0);
  assert_string_equal(out, "var");
  assert_int_equal(topology_path_join(out, sizeof out, "", "rel"), 0);
  assert_string_equal(out, "rel");
  assert_int_equal(topology_path_join(out, sizeof out, "0123456789", "abcdef"), -1);
  assert_string_equal(out, "");
  assert_int_equal(topology_path_join(out, sizeof out, "0123456789", "abcd"), 0); /* 15 bytes */
  /* "./" and a trailing "/" of a relative part go (`strata up` joins data dirs so) */
  char big[64];
  assert_int_equal(topology_path_join(big, sizeof big, "/r", "./var/"), 0);
  assert_string_equal(big, "/r/var");
  assert_int_equal(topology_path_join(big, sizeof big, "/r", "."), 0);
  assert_string_equal(big, "/r");
  assert_int_equal(topology_path_join(big, sizeof big, "/r", "/abs/dir"), 0);
  assert_string_equal(big, "/abs/dir");
}

static void test_place_monolith_keeps_its_files(void **state) {
  (void)state;
  struct strata_config cfg;
  load("server: {data: ./var, listen: 127.0.0.1:9000}\n", &cfg);
  struct strata_config before = cfg;
  char why[128];
  assert_int_equal(topology_place(&cfg, NULL, 0, why, sizeof why), 0);
  /* events.db stays in the data directory, nothing else moves */
  assert_string_equal(cfg.bus.dir, "./var");
  assert_string_equal(cfg.data_dir, "./var");
  assert_int_equal(cfg.listen_port, 9000);
  assert_int_equal(cfg.workers, before.workers);

  load("server: {data: ./var}\nbus: {dir: shared}\n", &cfg);
  assert_int_equal(topology_place(&cfg, NULL, 0, why, sizeof why), 0);
  assert_string_equal(cfg.bus.dir, "./var/shared");
}

static void test_place_service(void **state) {
  (void)state;
  struct strata_config cfg;
  char why[128];
  load(topology_yaml, &cfg);
  assert_int_equal(topology_place(&cfg, "front", 2, why, sizeof why), 0);
  assert_string_equal(cfg.listen_host, "127.0.0.1");
  assert_int_equal(cfg.listen_port, 8083);
  assert_int_equal(cfg.workers, 2);
  assert_string_equal(cfg.data_dir, "/srv/micro/front"); /* default: the service's name */
  assert_string_equal(cfg.bus.dir, "/srv/micro");        /* shared by every service */

  load(topology_yaml, &cfg);
  assert_int_equal(topology_place(&cfg, "payments", 0, why, sizeof why), 0);
  assert_int_equal(cfg.listen_port, 8090);
  assert_int_equal(cfg.workers, 4); /* the service sets none: the file's */
  assert_string_equal(cfg.data_dir, "/srv/micro/pay");

  load(topology_yaml, &cfg);
  assert_int_equal(topology_place(&cfg, "notifications", 0, why, sizeof why), 0);
  assert_string_equal(cfg.data_dir, "/abs/notes");

  /* `--data DIR` replaces server.data before placing: everything under it */
  load("server: {data: ./a}\nbus: {dir: log}\n"
       "services: {users: {domains: [users], listen: 127.0.0.1:7000}}\n",
       &cfg);
  strcpy(cfg.data_dir, "/tmp/up");
  assert_int_equal(topology_place(&cfg, "users", 0, why, sizeof why), 0);
  assert_string_equal(cfg.data_dir, "/tmp/up/users");
  assert_string_equal(cfg.bus.dir, "/tmp/up/log");
}

static void test_place_errors_leave_cfg_alone(void **state) {
  (void)state;
  struct strata_config cfg, before;
  char why[128];
  load(topology_yaml, &cfg);
  before = cfg;
  assert_int_equal(topology_place(&cfg, "front", 3, why, sizeof why), -1);
  assert_string_equal(why, "services.front has 3 instances (0 to 2); there is no instance 3");
  assert_memory_equal(&cfg, &before, sizeof cfg);
  assert_int_equal(topology_place(&cfg, "payments", 1, why, sizeof why), -1);
  assert_string_equal(why, "services.payments has 1 instance (0 to 0); there is no instance 1");
  assert_int_equal(topology_place(&cfg, "gateway", 0, why, sizeof why), -1);
  assert_string_equal(why, "the config has no services.gateway");
  assert_memory_equal(&cfg, &before, sizeof cfg);
}

static void test_targets(void **state) {
  (void)state;
  struct strata_config cfg;
  struct topology_target t;
  load(topology_yaml, &cfg);
  assert_int_equal(topology_target_of(&cfg, 1, &t), 0);
  assert_string_equal(t.service, "front");
  assert_string_equal(t.host, "127.0.0.1");
  assert_int_equal(t.port, 8081);
  assert_int_equal(t.instances, 3);
  assert_int_equal(topology_target_of(&cfg, 2, &t), 1);
  assert_int_equal(t.instances, 1);
  assert_int_equal(topology_target_of(&cfg, 3, &t), 2);
  assert_int_equal(t.port, 8095);
  assert_int_equal(topology_target_of(&cfg, 7, &t), -1);

  /* a wildcard listen address is dialled on loopback */
  load("services: {n: {domains: [notifications], listen: 0.0.0.0:8095}}\n", &cfg);
  assert_int_equal(topology_target_of(&cfg, 3, &t), 0);
  assert_string_equal(t.host, "127.0.0.1");

  load("services: {o: {domains: [orders], listen: '[::]:9000'}}\n", &cfg);
  assert_int_equal(topology_target_of(&cfg, 1, &t), 0);
  assert_string_equal(t.host, "::1");
  assert_int_equal(topology_target_of(&cfg, 0, &t), -1); /* users: hosted nowhere */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_domain_names),
      cmocka_unit_test(test_hosted),
      cmocka_unit_test(test_path_join),
      cmocka_unit_test(test_place_monolith_keeps_its_files),
      cmocka_unit_test(test_place_service),
      cmocka_unit_test(test_place_errors_leave_cfg_alone),
      cmocka_unit_test(test_targets),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
