/* Unit tests for src/core/process.c: ids of live and dead processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/process.h"

static void test_self_is_alive(void **state) {
  (void)state;
  const char *id = process_self_id();
  assert_true(strlen(id) > 10);
  assert_ptr_equal(id, process_self_id()); /* computed once */
  char pid[32];
  snprintf(pid, sizeof pid, "/%ld/", (long)getpid());
  assert_non_null(strstr(id, pid));
  assert_int_equal(process_id_alive(id), 1);
}

static void test_exited_child_is_dead(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t child = fork();
  if (child == 0) {
    /* the child's own id, computed in the child */
    char buf[PROCESS_ID_MAX];
    snprintf(buf, sizeof buf, "%s", process_self_id());
    (void)!write(fds[1], buf, strlen(buf) + 1);
    _exit(0);
  }
  close(fds[1]);
  char id[PROCESS_ID_MAX] = "";
  assert_true(read(fds[0], id, sizeof id) > 0);
  close(fds[0]);
  waitpid(child, NULL, 0);
  assert_true(strlen(id) > 10);
  assert_int_equal(process_id_alive(id), 0); /* exited and reaped */
}

static void test_reused_pid_and_other_boot(void **state) {
  (void)state;
  char boot[64], id[PROCESS_ID_MAX];
  long pid;
  unsigned long long st;
  assert_int_equal(sscanf(process_self_id(), "%63[^/]/%ld/%llu", boot, &pid, &st), 3);
  snprintf(id, sizeof id, "%s/%ld/%llu", boot, pid, st + 1); /* same pid, another start */
  assert_int_equal(process_id_alive(id), 0);
  snprintf(id, sizeof id, "00000000-0000-0000-0000-000000000000/%ld/%llu", pid, st);
  assert_int_equal(process_id_alive(id), 0);
}

static void test_unknown(void **state) {
  (void)state;
  assert_int_equal(process_id_alive(NULL), -1);
  assert_int_equal(process_id_alive(""), -1);
  assert_int_equal(process_id_alive("garbage"), -1);
  assert_int_equal(process_id_alive("a/-3/5"), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_self_is_alive),
      cmocka_unit_test(test_exited_child_is_dead),
      cmocka_unit_test(test_reused_pid_and_other_boot),
      cmocka_unit_test(test_unknown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
