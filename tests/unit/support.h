/* Helpers shared by the cmocka unit tests under tests/unit.
 *
 * Several tests run an input that may crash, hang or trip a sanitizer in a
 * child process, and some need malloc to return NULL under ASan; these
 * helpers were copied into each of them and kept drifting apart, so they
 * live here once. Each test is its own binary built from a single .c file
 * (see the Makefile), so everything is `static` and every binary gets its own
 * copy; a helper a test does not use is marked unused so -Werror stays quiet.
 *
 * Include it after <cmocka.h> with `#include "../support.h"`. A test that
 * asks malloc for sizes no machine has defines TEST_ALLOCATOR_MAY_RETURN_NULL
 * before the include: ASan otherwise turns such a failed malloc into an
 * abort instead of returning NULL. */
#ifndef STRATA_TESTS_UNIT_SUPPORT_H
#define STRATA_TESTS_UNIT_SUPPORT_H

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* TEST_ASAN: defined when built with AddressSanitizer (clang spells it
 * __has_feature, gcc __SANITIZE_ADDRESS__). */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(TEST_ASAN)
#define TEST_ASAN 1
#endif

/* ASan reads its defaults from this function; it must have external linkage,
 * hence the prototype (for -Wmissing-prototypes) and no `static`. */
#if defined(TEST_ASAN) && defined(TEST_ALLOCATOR_MAY_RETURN_NULL)
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }
#endif

/* cmocka catches crashes to report them and go on; in a child that would
 * resume the test run inside the child, so a crash there must just kill it. */
__attribute__((unused)) static void drop_cmocka_handlers(void) {
  static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS, SIGABRT};
  for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    signal(sigs[i], SIG_DFL);
}

/* Runs fn(arg) in a child process; returns 1 when it exited with status 0.
 * For inputs that may corrupt memory or trip a sanitizer: a bug then shows
 * as one failed test instead of ending the whole run. */
__attribute__((unused)) static int in_child(int (*fn)(void *), void *arg) {
  int st = 0;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    drop_cmocka_handlers();
    _exit(fn(arg) == 0 ? 0 : 1);
  }
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (WIFSIGNALED(st))
    print_message("child killed by signal %d\n", WTERMSIG(st));
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

#endif
