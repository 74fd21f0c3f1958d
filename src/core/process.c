/* Process ids for liveness checks across processes; see process.h. */
#include "core/process.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <pthread.h>
#include <unistd.h>

/* Cached with the pid it belongs to: a forked child gets its own. */
static char self_id[PROCESS_ID_MAX];
static long self_pid;
static pthread_mutex_t self_lock = PTHREAD_MUTEX_INITIALIZER;

static int read_boot_id(char *out, size_t cap) {
  FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
  if (!f)
    return -1;
  int ok = fgets(out, (int)cap, f) != NULL;
  fclose(f);
  if (!ok)
    return -1;
  out[strcspn(out, "\n")] = '\0';
  return out[0] ? 0 : -1;
}

/* Field 22 of /proc/PID/stat: start time in clock ticks after boot. The
 * command name (field 2) may hold spaces and parentheses: skip to its last
 * ')'. */
static int start_time(long pid, unsigned long long *out) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p)
    return -1;
  p++;
  for (int field = 3; field < 22; field++) { /* p is before field 3 */
    p = strchr(p + 1, ' ');
    if (!p)
      return -1;
  }
  char *end;
  *out = strtoull(p + 1, &end, 10);
  return end == p + 1 ? -1 : 0;
}

const char *process_self_id(void) {
  long pid = (long)getpid();
  pthread_mutex_lock(&self_lock);
  if (self_pid != pid) {
    char boot[64];
    unsigned long long st;
    self_id[0] = '\0';
    if (read_boot_id(boot, sizeof boot) == 0 && start_time(pid, &st) == 0)
      snprintf(self_id, sizeof self_id, "%s/%ld/%llu", boot, pid, st);
    self_pid = pid;
  }
  pthread_mutex_unlock(&self_lock);
  return self_id;
}

int process_id_alive(const char *id) {
  char boot[64], now_boot[64];
  long pid;
  unsigned long long st, now_st;
  if (!id || sscanf(id, "%63[^/]/%ld/%llu", boot, &pid, &st) != 3 || pid <= 0)
    return -1;
  if (read_boot_id(now_boot, sizeof now_boot) != 0)
    return -1;
  if (strcmp(boot, now_boot) != 0)
    return 0; /* a holder from before a reboot */
  if (start_time(pid, &now_st) != 0)
    return 0; /* no such process */
  return now_st == st; /* else the pid was reused */
}
