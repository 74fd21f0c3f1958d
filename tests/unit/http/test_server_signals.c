/* Unit tests for the stop signals of src/http/server.c.
 *
 * http_server_new() holds SIGTERM/SIGINT back until http_server_run() has
 * its handlers. A server that is freed without running (its caller's start
 * failed) must not release a signal that came meanwhile to kill the
 * process: if it did, this test process would die of it. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "http/router.h"
#include "http/server.h"
#include "observe/log.h"
#include "observe/metrics.h"

static int is_blocked(int sig) {
  sigset_t now;
  pthread_sigmask(SIG_BLOCK, NULL, &now);
  return sigismember(&now, sig);
}

static int is_pending(int sig) {
  sigset_t pending;
  sigpending(&pending);
  return sigismember(&pending, sig);
}

static void freed_unrun(int sig) {
  struct strata_config cfg;
  config_defaults(&cfg);
  snprintf(cfg.listen_host, sizeof cfg.listen_host, "127.0.0.1");
  cfg.listen_port = 0; /* any free port */
  cfg.workers = 1;
  struct router *router = router_new();
  assert_non_null(router);
  assert_false(is_blocked(sig));
  struct http_server *s = http_server_new(&cfg, router);
  assert_non_null(s);
  assert_true(is_blocked(sig)); /* held from the first listen() on */
  assert_int_equal(raise(sig), 0);
  assert_true(is_pending(sig));
  http_server_free(s); /* without the fix the default action ends the test here */
  assert_false(is_pending(sig));
  assert_false(is_blocked(sig)); /* and the next one is not held back */
  router_free(router);
  metrics_shutdown();
}

static void test_sigterm_before_run_is_taken_by_free(void **state) {
  (void)state;
  freed_unrun(SIGTERM);
}

static void test_sigint_before_run_is_taken_by_free(void **state) {
  (void)state;
  freed_unrun(SIGINT);
}

int main(void) {
  log_set_level(LOG_OFF);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sigterm_before_run_is_taken_by_free),
      cmocka_unit_test(test_sigint_before_run_is_taken_by_free),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
