/* The supervisor loop; the states, transitions and the reasons behind them
 * are in supervisor.h.
 *
 * Everything runs on one libuv loop in the calling thread: a 50 ms tick
 * drives the state machine (probes, restart delays, stop deadlines, the
 * progress line), SIGCHLD and the stop signals run the same step at once.
 * Readiness probes go through the gateway's strict HTTP/1.1 client
 * (gateway/upstream.h) without keep-alive, so each probe reaches the
 * current incarnation of the child. */
#include "topology/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "core/arena.h"
#include "core/strbuf.h"
#include "gateway/upstream.h"
#include "observe/log.h"

extern char **environ;

#define TICK_MS 50
#define PROBE_EVERY_MS 100
#define PROBE_TIMEOUT_MS 1000
#define TAIL_LINES 12
#define TAIL_BYTES 4096

enum sv_state {
  SV_IDLE = 0, /* not started: its stage has not come yet */
  SV_STARTING, /* running, not ready yet */
  SV_READY,    /* running and answered ready */
  SV_BACKOFF,  /* exited; spawned again at restart_at_ms */
  SV_STOPPING, /* SIGTERM sent */
  SV_STOPPED   /* gone for good */
};

static const char *const state_names[] = {"idle",    "starting", "ready",
                                          "backoff", "stopping", "stopped"};

enum sv_phase {
  PHASE_STARTING = 0, /* bringing the stages up one after the other */
  PHASE_RUNNING,      /* everything was ready once: an exit is restarted */
  PHASE_STOPPING,     /* stopping the stages, highest first */
  PHASE_DONE          /* every child is gone; the loop winds down */
};

static const char *const phase_names[] = {"starting", "running", "stopping", "stopped"};

struct sv_child {
  struct sv_child_spec spec;
  struct supervisor *sv;
  enum sv_state state;
  pid_t pid;           /* 0 when not running */
  unsigned generation; /* bumped at every exit: stale probe answers are ignored */
  unsigned restarts;
  uint64_t started_ms;
  uint64_t restart_at_ms;
  uint64_t stop_deadline_ms;
  uint64_t next_probe_ms;
  uint32_t backoff_ms; /* the delay before the next restart */
  int killed;          /* SIGKILL sent while stopping */
  off_t log_offset;    /* where this incarnation's output starts in its log */
  char last_exit[96];
  char last_probe[96]; /* why the last readiness probe failed */
  struct upstream_host *probe;
  struct upstream_call *call; /* the probe in flight, or NULL */
  unsigned call_generation;
  struct arena arena;
  char request[256];
};

struct supervisor {
  char *exe;
  char *state_path;
  json_t *info;
  struct sv_options opt;
  struct sv_child *children;
  unsigned n, cap;
  int min_stage, max_stage;
  uv_loop_t loop;
  uv_timer_t tick;
  uv_signal_t signals[4];
  enum sv_phase phase;
  int stage;          /* starting: the stage coming up; stopping: the one going down */
  int stage_signaled; /* stopping: the current stage has had its SIGTERM */
  uint64_t stage_deadline_ms;
  uint64_t t0;
  int exit_code;
  int dirty;     /* the state file needs rewriting */
  int live_line; /* a progress line is on the terminal */
  int ran;
};

/* ---- command lines ---------------------------------------------------- */

int sv_spec_arg(struct sv_child_spec *spec, const char *fmt, ...) {
  if (spec->argc >= SV_MAX_ARGS || spec->argbuf_len >= sizeof spec->argbuf)
    return -1;
  char *dst = spec->argbuf + spec->argbuf_len;
  size_t room = sizeof spec->argbuf - spec->argbuf_len;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(dst, room, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= room)
    return -1;
  spec->argbuf_len += (size_t)n + 1;
  spec->argc++;
  return 0;
}

const char *sv_spec_argv(const struct sv_child_spec *spec, unsigned i) {
  if (i >= spec->argc)
    return NULL;
  const char *p = spec->argbuf;
  while (i--)
    p += strlen(p) + 1;
  return p;
}

void sv_describe_exit(int st, char *out, size_t len) {
  if (WIFEXITED(st)) {
    snprintf(out, len, "exited with status %d", WEXITSTATUS(st));
  } else if (WIFSIGNALED(st)) {
    const char *abbrev = sigabbrev_np(WTERMSIG(st));
    if (abbrev)
      snprintf(out, len, "killed by SIG%s%s", abbrev, WCOREDUMP(st) ? " (core dumped)" : "");
    else
      snprintf(out, len, "killed by signal %d", WTERMSIG(st));
  } else {
    snprintf(out, len, "ended with wait status 0x%x", (unsigned)st);
  }
}

/* ---- small helpers ------------------------------------------------------ */

static uint64_t now_ms(struct supervisor *s) {
  uv_update_time(&s->loop);
  return uv_now(&s->loop);
}

static FILE *out_of(const struct supervisor *s) {
  return s->opt.progress ? s->opt.progress : stderr;
}

/* `"process":"app-1","pid":123`, the members every child event carries;
 * sb is left for more members and passed to log_event() as sb->data + 1. */
static void child_fields(struct strbuf *sb, const struct sv_child *c, pid_t pid) {
  strbuf_init(sb, 0);
  log_put_str(sb, "process", c->spec.name, strlen(c->spec.name));
  log_put_u64(sb, "pid", (uint64_t)pid);
}

static void put_exit_fields(struct strbuf *sb, int st) {
  if (WIFEXITED(st)) {
    log_put_u64(sb, "exitCode", (uint64_t)WEXITSTATUS(st));
  } else if (WIFSIGNALED(st)) {
    char name[32];
    const char *abbrev = sigabbrev_np(WTERMSIG(st));
    if (abbrev)
      snprintf(name, sizeof name, "SIG%s", abbrev);
    else
      snprintf(name, sizeof name, "%d", WTERMSIG(st));
    log_put_str(sb, "signal", name, strlen(name));
  }
}

static void progress_clear(struct supervisor *s) {
  if (s->live_line) {
    fputs("\r\033[K", out_of(s));
    fflush(out_of(s));
    s->live_line = 0;
  }
}

/* The last lines this incarnation of c wrote, indented, so a failed start
 * explains itself without opening the log. */
static void print_tail(struct supervisor *s, const struct sv_child *c) {
  FILE *out = out_of(s);
  char buf[TAIL_BYTES + 1];
  ssize_t n = 0;
  int fd = open(c->spec.log_path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    struct stat st;
    off_t from = c->log_offset;
    if (fstat(fd, &st) == 0 && st.st_size - from > TAIL_BYTES)
      from = st.st_size - TAIL_BYTES;
    n = pread(fd, buf, TAIL_BYTES, from);
    close(fd);
  }
  if (n <= 0) {
    fprintf(out, "    (it wrote nothing to %s)\n", c->spec.log_path);
    return;
  }
  buf[n] = '\0';
  while (n > 0 && buf[n - 1] == '\n')
    buf[--n] = '\0';
  const char *start = buf;
  int lines = 0;
  for (ssize_t i = n - 1; i >= 0; i--)
    if (buf[i] == '\n' && ++lines == TAIL_LINES) {
      start = buf + i + 1;
      break;
    }
  fprintf(out, "    last lines of %s:\n", c->spec.log_path);
  for (const char *p = start; *p;) {
    const char *e = strchr(p, '\n');
    int len = e ? (int)(e - p) : (int)strlen(p);
    fprintf(out, "    | %.*s\n", len, p);
    p = e ? e + 1 : p + len;
  }
}

/* ---- the state file -------------------------------------------------- */

static void write_state(struct supervisor *s) {
  s->dirty = 0;
  if (!s->state_path)
    return;
  json_t *root = json_object();
  json_t *procs = json_array();
  if (!root || !procs)
    goto done;
  json_object_set_new(root, "pid", json_integer((json_int_t)getpid()));
  json_object_set_new(root, "phase", json_string(phase_names[s->phase]));
  if (s->info)
    json_object_update(root, s->info);
  for (unsigned i = 0; i < s->n; i++) {
    const struct sv_child *c = &s->children[i];
    json_t *p = json_pack("{s:s,s:s,s:i,s:I,s:s,s:s,s:s,s:s,s:i}", "name", c->spec.name, "role",
                          c->spec.role, "stage", c->spec.stage, "pid", (json_int_t)c->pid,
                          "address", c->spec.address, "dataDir", c->spec.data_dir, "log",
                          c->spec.log_path, "state", state_names[c->state], "restarts",
                          (int)c->restarts);
    if (!p)
      continue;
    if (c->last_exit[0])
      json_object_set_new(p, "lastExit", json_string(c->last_exit));
    json_array_append_new(procs, p);
  }
  json_object_set(root, "processes", procs);
  /* write then rename: a reader never sees half a file */
  size_t len = strlen(s->state_path) + 5;
  char *tmp = malloc(len);
  if (tmp) {
    snprintf(tmp, len, "%s.tmp", s->state_path);
    if (json_dump_file(root, tmp, JSON_INDENT(2)) != 0 || rename(tmp, s->state_path) != 0) {
      log_event(LOG_WARN, "state_file_failed", NULL, "cannot write %s: %s", s->state_path,
                strerror(errno));
      unlink(tmp);
    }
    free(tmp);
  }
done:
  json_decref(procs);
  json_decref(root);
}

/* ---- spawning --------------------------------------------------------- */

/* In the child, between fork and exec: only async-signal-safe calls. */
__attribute__((noreturn)) static void exec_child(const char *exe, char **argv, int in, int out,
                                                 pid_t parent) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; sig++)
    sigaction(sig, &dfl, NULL); /* SIGKILL, SIGSTOP and reserved ones fail: fine */
  /* If the supervisor dies, so does the child; and if it already died
   * before the prctl, getppid() is no longer it. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
    _exit(127);
  setpgid(0, 0);
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
    _exit(127);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(exe, argv, environ);
  static const char msg[] = "strata up: cannot execute the strata binary\n";
  ssize_t w = write(2, msg, sizeof msg - 1);
  (void)w;
  _exit(127);
}

/* Starts c: IDLE/BACKOFF -> STARTING. Returns 0, or -1 with the reason in
 * c->last_exit. */
static int spawn(struct supervisor *s, struct sv_child *c, uint64_t now) {
  char *argv[SV_MAX_ARGS + 2];
  unsigned k = 0;
  argv[k++] = s->exe;
  for (const char *p = c->spec.argbuf; k <= c->spec.argc; p += strlen(p) + 1)
    argv[k++] = (char *)p;
  argv[k] = NULL;

  int out = open(c->spec.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) {
    snprintf(c->last_exit, sizeof c->last_exit, "could not open its log: %s", strerror(errno));
    return -1;
  }
  int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    snprintf(c->last_exit, sizeof c->last_exit, "could not open /dev/null: %s", strerror(errno));
    close(out);
    return -1;
  }
  struct stat st;
  c->log_offset = fstat(out, &st) == 0 ? st.st_size : 0;

  /* No signal handler may run in the child before exec: libuv's would
   * write into the supervisor's signal pipe. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0)
    exec_child(s->exe, argv, in, out, parent);
  int err = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close(in);
  close(out);
  if (pid < 0) {
    snprintf(c->last_exit, sizeof c->last_exit, "could not fork: %s", strerror(err));
    return -1;
  }
  setpgid(pid, pid); /* also done by the child; whichever runs first wins */
  c->pid = pid;
  c->state = SV_STARTING;
  c->started_ms = now;
  c->next_probe_ms = now;
  c->killed = 0;
  c->last_probe[0] = '\0';
  s->dirty = 1;
  struct strbuf sb;
  child_fields(&sb, c, pid);
  log_put_u64(&sb, "restarts", c->restarts);
  log_event(c->restarts ? LOG_INFO : LOG_DEBUG, "process_started", sb.data + 1, "%s started (pid %d)",
            c->spec.name, (int)pid);
  strbuf_free(&sb);
  return 0;
}

/* ---- readiness ------------------------------------------------------- */

static void mark_ready(struct supervisor *s, struct sv_child *c, uint64_t now) {
  c->state = SV_READY;
  s->dirty = 1;
  double secs = (double)(now - c->started_ms) / 1000.0;
  struct strbuf sb;
  child_fields(&sb, c, c->pid);
  log_put_u64(&sb, "restarts", c->restarts);
  log_put_u64(&sb, "readyMs", now - c->started_ms);
  if (s->phase == PHASE_STARTING) {
    log_event(LOG_DEBUG, "process_ready", sb.data + 1, "%s is ready", c->spec.name);
    if (!s->opt.progress_live)
      fprintf(out_of(s), "  %-16s ready in %.1f s\n", c->spec.name, secs);
  } else {
    log_event(LOG_INFO, "process_ready", sb.data + 1, "%s is ready again (pid %d, restart %u)",
              c->spec.name, (int)c->pid, c->restarts);
  }
  strbuf_free(&sb);
}

static void on_probe_done(int rc, struct upstream_response *r, void *arg) {
  struct sv_child *c = arg;
  struct supervisor *s = c->sv;
  int ok = rc == UPSTREAM_OK && r->status == 200;
  if (rc == UPSTREAM_OK && !ok)
    snprintf(c->last_probe, sizeof c->last_probe, "GET /health/ready answered %d", r->status);
  else if (!ok)
    snprintf(c->last_probe, sizeof c->last_probe, "GET /health/ready: %s",
             upstream_result_name(rc));
  c->call = NULL;
  arena_reset(&c->arena);
  if (ok && c->call_generation == c->generation && c->state == SV_STARTING &&
      s->phase != PHASE_DONE)
    mark_ready(s, c, now_ms(s));
}

static void probe(struct supervisor *s, struct sv_child *c, uint64_t now) {
  if (c->call || now < c->next_probe_ms)
    return;
  if (!c->spec.probe_port) {
    mark_ready(s, c, now);
    return;
  }
  c->next_probe_ms = now + PROBE_EVERY_MS;
  if (!c->probe)
    c->probe = upstream_host_new(&s->loop, c->spec.probe_host, c->spec.probe_port, 0,
                                 PROBE_TIMEOUT_MS);
  if (!c->probe)
    return;
  int n = snprintf(c->request, sizeof c->request,
                   "GET /health/ready HTTP/1.1\r\nHost: %s\r\nUser-Agent: strata-up\r\n"
                   "Connection: close\r\n\r\n",
                   upstream_host_name(c->probe));
  c->call_generation = c->generation;
  if (upstream_request(c->probe, c->request, (size_t)n, 0, PROBE_TIMEOUT_MS, 65536, &c->arena,
                       on_probe_done, c, &c->call) != 0)
    c->call = NULL;
}

/* ---- stopping --------------------------------------------------------- */

static void on_closed(uv_handle_t *h) { (void)h; }

static void close_any(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, on_closed);
}

/* PHASE_DONE: releases the loop's handles so supervisor_run() returns. */
static void finish(struct supervisor *s) {
  s->phase = PHASE_DONE;
  progress_clear(s);
  for (unsigned i = 0; i < s->n; i++) {
    struct sv_child *c = &s->children[i];
    if (c->call)
      upstream_cancel(c->call); /* its callback clears c->call */
    upstream_host_free(c->probe);
    c->probe = NULL;
  }
  uv_close((uv_handle_t *)&s->tick, on_closed);
  for (size_t i = 0; i < sizeof s->signals / sizeof s->signals[0]; i++)
    uv_close((uv_handle_t *)&s->signals[i], on_closed);
  if (s->state_path)
    unlink(s->state_path);
  log_event(LOG_INFO, "stopped", NULL, "every process has stopped");
}

/* Stops the current stage: SIGTERM to its children, SIGKILL to those still
 * there after their stop timeout; then the stage below. */
static void stop_step(struct supervisor *s, uint64_t now) {
  while (s->stage >= s->min_stage) {
    unsigned alive = 0;
    for (unsigned i = 0; i < s->n; i++) {
      struct sv_child *c = &s->children[i];
      if (c->spec.stage != s->stage || !c->pid)
        continue;
      alive++;
      if (!s->stage_signaled) {
        kill(c->pid, SIGTERM);
        c->state = SV_STOPPING;
        c->stop_deadline_ms = now + c->spec.stop_timeout_ms;
        s->dirty = 1;
        struct strbuf sb;
        child_fields(&sb, c, c->pid);
        log_event(LOG_INFO, "process_stopping", sb.data + 1,
                  "stopping %s (SIGTERM; SIGKILL after %u ms)", c->spec.name,
                  c->spec.stop_timeout_ms);
        strbuf_free(&sb);
      } else if (!c->killed && now >= c->stop_deadline_ms) {
        kill(c->pid, SIGKILL);
        c->killed = 1;
        struct strbuf sb;
        child_fields(&sb, c, c->pid);
        log_event(LOG_WARN, "process_killed", sb.data + 1,
                  "%s did not stop within %u ms: SIGKILL", c->spec.name, c->spec.stop_timeout_ms);
        strbuf_free(&sb);
      }
    }
    s->stage_signaled = 1;
    if (alive)
      return;
    s->stage--;
    s->stage_signaled = 0;
  }
  finish(s);
}

/* Any phase -> PHASE_STOPPING (code is the exit status to return). Asked a
 * second time, it kills what is left at once. */
static void begin_stop(struct supervisor *s, int code) {
  uint64_t now = now_ms(s);
  if (s->phase == PHASE_DONE)
    return;
  if (s->phase == PHASE_STOPPING) {
    log_event(LOG_WARN, "stop_forced", NULL, "second stop request: SIGKILL to every process");
    for (unsigned i = 0; i < s->n; i++)
      if (s->children[i].pid && !s->children[i].killed) {
        kill(s->children[i].pid, SIGKILL);
        s->children[i].killed = 1;
      }
    s->exit_code = 1;
    return;
  }
  progress_clear(s);
  s->phase = PHASE_STOPPING;
  s->exit_code = code;
  s->dirty = 1;
  for (unsigned i = 0; i < s->n; i++) {
    struct sv_child *c = &s->children[i];
    if (c->state == SV_IDLE || c->state == SV_BACKOFF)
      c->state = SV_STOPPED;
  }
  s->stage = s->max_stage;
  s->stage_signaled = 0;
  stop_step(s, now);
}

/* ---- exits ------------------------------------------------------------ */

static void fail_start(struct supervisor *s, struct sv_child *c, const char *why) {
  progress_clear(s);
  fprintf(out_of(s), "strata up: %s (%s) %s before it was ready\n", c->spec.name,
          c->spec.address, why);
  print_tail(s, c);
  struct strbuf sb;
  child_fields(&sb, c, 0);
  log_event(LOG_ERROR, "start_failed", sb.data + 1, "%s %s before it was ready", c->spec.name, why);
  strbuf_free(&sb);
  begin_stop(s, 1);
}

static void on_child_exit(struct supervisor *s, struct sv_child *c, int st, uint64_t now) {
  pid_t pid = c->pid;
  char why[96];
  sv_describe_exit(st, why, sizeof why);
  snprintf(c->last_exit, sizeof c->last_exit, "%s", why);
  c->pid = 0;
  c->generation++;
  if (c->call)
    upstream_cancel(c->call);
  s->dirty = 1;
  struct strbuf sb;
  child_fields(&sb, c, pid);
  put_exit_fields(&sb, st);
  switch (s->phase) {
  case PHASE_STARTING:
    c->state = SV_STOPPED;
    strbuf_free(&sb);
    fail_start(s, c, why);
    return;
  case PHASE_RUNNING: {
    uint32_t min = s->opt.backoff_min_ms, max = s->opt.backoff_max_ms;
    if (now - c->started_ms >= s->opt.stable_ms)
      c->backoff_ms = min; /* it had been fine for a while: start over */
    uint32_t delay = c->backoff_ms;
    c->backoff_ms = delay > max / 2 ? max : delay * 2;
    c->state = SV_BACKOFF;
    c->restart_at_ms = now + delay;
    c->restarts++;
    log_put_u64(&sb, "restartInMs", delay);
    log_put_u64(&sb, "restarts", c->restarts);
    log_event(LOG_WARN, "process_exited", sb.data + 1, "%s (pid %d) %s; restarting in %u ms",
              c->spec.name, (int)pid, why, delay);
    break;
  }
  case PHASE_STOPPING:
  case PHASE_DONE:
    c->state = SV_STOPPED;
    log_event(LOG_INFO, "process_stopped", sb.data + 1, "%s (pid %d) %s", c->spec.name, (int)pid,
              why);
    break;
  }
  strbuf_free(&sb);
}

static void reap(struct supervisor *s, uint64_t now) {
  for (unsigned i = 0; i < s->n; i++) {
    struct sv_child *c = &s->children[i];
    int st;
    if (c->pid && waitpid(c->pid, &st, WNOHANG) == c->pid)
      on_child_exit(s, c, st, now);
  }
}

/* ---- starting and running --------------------------------------------- */

static void start_stage(struct supervisor *s, uint64_t now) {
  s->stage_deadline_ms = now + s->opt.ready_timeout_ms;
  for (unsigned i = 0; i < s->n && s->phase == PHASE_STARTING; i++) {
    struct sv_child *c = &s->children[i];
    if (c->spec.stage == s->stage && spawn(s, c, now) != 0)
      fail_start(s, c, c->last_exit);
  }
}

static void draw_progress(struct supervisor *s, uint64_t now) {
  unsigned ready = 0, total = s->n;
  char waiting[160] = "";
  size_t used = 0;
  for (unsigned i = 0; i < s->n; i++) {
    const struct sv_child *c = &s->children[i];
    if (c->state == SV_READY) {
      ready++;
    } else if (c->state == SV_STARTING && used < sizeof waiting - 1) {
      int n = snprintf(waiting + used, sizeof waiting - used, "%s%s", used ? ", " : "",
                       c->spec.name);
      used = n > 0 ? used + (size_t)n : used;
    }
  }
  if (used >= 60)
    strcpy(waiting + 56, "...");
  fprintf(out_of(s), "\r\033[K  starting: %u of %u ready%s%s%s  %.1f s", ready, total,
          used ? " (waiting for " : "", waiting, used ? ")" : "",
          (double)(now - s->t0) / 1000.0);
  fflush(out_of(s));
  s->live_line = 1;
}

static void starting_step(struct supervisor *s, uint64_t now) {
  int all_ready = 1;
  for (unsigned i = 0; i < s->n; i++) {
    struct sv_child *c = &s->children[i];
    if (c->spec.stage != s->stage)
      continue;
    if (c->state == SV_STARTING)
      probe(s, c, now);
    if (c->state != SV_READY)
      all_ready = 0;
  }
  if (s->phase != PHASE_STARTING)
    return;
  if (all_ready) {
    if (s->stage < s->max_stage) {
      s->stage++;
      start_stage(s, now);
      return;
    }
    progress_clear(s);
    s->phase = PHASE_RUNNING;
    s->dirty = 1;
    log_event(LOG_INFO, "ready", NULL, "%u processes ready in %.1f s", s->n,
              (double)(now - s->t0) / 1000.0);
    if (s->opt.on_ready)
      s->opt.on_ready(s->opt.arg);
    return;
  }
  if (now < s->stage_deadline_ms)
    return;
  progress_clear(s);
  for (unsigned i = 0; i < s->n; i++) {
    struct sv_child *c = &s->children[i];
    if (c->spec.stage != s->stage || c->state == SV_READY)
      continue;
    fprintf(out_of(s), "strata up: %s (%s) was not ready within %.0f s (%s)\n", c->spec.name,
            c->spec.address, s->opt.ready_timeout_ms / 1000.0,
            c->last_probe[0] ? c->last_probe : "no answer yet");
    print_tail(s, c);
  }
  log_event(LOG_ERROR, "start_failed", NULL, "not every process was ready within %u ms",
            s->opt.ready_timeout_ms);
  begin_stop(s, 1);
}

static void running_step(struct supervisor *s, uint64_t now) {
  for (unsigned i = 0; i < s->n; i++) {
    struct sv_child *c = &s->children[i];
    if (c->state == SV_BACKOFF && now >= c->restart_at_ms && spawn(s, c, now) != 0) {
      struct strbuf sb;
      child_fields(&sb, c, 0);
      log_event(LOG_ERROR, "restart_failed", sb.data + 1, "cannot restart %s: %s; trying again in %u ms",
                c->spec.name, c->last_exit, c->backoff_ms);
      strbuf_free(&sb);
      c->restart_at_ms = now + c->backoff_ms;
    }
    if (c->state == SV_STARTING)
      probe(s, c, now);
  }
}

static void step(struct supervisor *s) {
  uint64_t now = now_ms(s);
  reap(s, now);
  switch (s->phase) {
  case PHASE_STARTING:
    starting_step(s, now);
    break;
  case PHASE_RUNNING:
    running_step(s, now);
    break;
  case PHASE_STOPPING:
    stop_step(s, now);
    break;
  case PHASE_DONE:
    break;
  }
  if (s->phase == PHASE_STARTING && s->opt.progress_live)
    draw_progress(s, now);
  if (s->dirty && s->phase != PHASE_DONE)
    write_state(s);
}

static void on_tick(uv_timer_t *t) { step(t->data); }

static void on_signal(uv_signal_t *h, int signum) {
  struct supervisor *s = h->data;
  if (signum == SIGCHLD) {
    step(s);
    return;
  }
  progress_clear(s);
  const char *abbrev = sigabbrev_np(signum);
  log_event(LOG_INFO, "stop_requested", NULL, "received SIG%s: stopping (the gateway first)",
            abbrev ? abbrev : "?");
  begin_stop(s, 0);
  if (s->dirty && s->phase != PHASE_DONE)
    write_state(s);
}

/* ---- life cycle --------------------------------------------------------- */

struct supervisor *supervisor_new(const struct sv_options *opt) {
  struct supervisor *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->opt = *opt;
  s->exe = strdup(opt->exe ? opt->exe : "/proc/self/exe");
  s->state_path = opt->state_path ? strdup(opt->state_path) : NULL;
  if (!s->exe || (opt->state_path && !s->state_path))
    goto fail;
  if (opt->state_info_json) {
    json_error_t err;
    s->info = json_loads(opt->state_info_json, 0, &err);
    if (!json_is_object(s->info))
      goto fail;
  }
  s->opt.exe = s->exe;
  s->opt.state_path = s->state_path;
  s->opt.state_info_json = NULL;
  if (!s->opt.ready_timeout_ms)
    s->opt.ready_timeout_ms = 60000;
  if (!s->opt.backoff_min_ms)
    s->opt.backoff_min_ms = 100;
  if (!s->opt.backoff_max_ms)
    s->opt.backoff_max_ms = 10000;
  if (s->opt.backoff_max_ms < s->opt.backoff_min_ms)
    s->opt.backoff_max_ms = s->opt.backoff_min_ms;
  if (!s->opt.stable_ms)
    s->opt.stable_ms = 30000;
  return s;
fail:
  supervisor_free(s);
  return NULL;
}

int supervisor_add(struct supervisor *s, const struct sv_child_spec *spec) {
  if (s->ran)
    return -1;
  if (s->n == s->cap) {
    unsigned cap = s->cap ? s->cap * 2 : 8;
    struct sv_child *grown = realloc(s->children, cap * sizeof *grown);
    if (!grown)
      return -1;
    s->children = grown;
    s->cap = cap;
  }
  struct sv_child *c = &s->children[s->n];
  memset(c, 0, sizeof *c);
  c->spec = *spec;
  if (!s->n || spec->stage < s->min_stage)
    s->min_stage = spec->stage;
  if (!s->n || spec->stage > s->max_stage)
    s->max_stage = spec->stage;
  s->n++;
  return 0;
}

int supervisor_run(struct supervisor *s) {
  static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD};
  if (s->ran || !s->n)
    return 1;
  s->ran = 1;
  signal(SIGPIPE, SIG_IGN);
  if (uv_loop_init(&s->loop) != 0)
    return 1;
  for (unsigned i = 0; i < s->n; i++) {
    struct sv_child *c = &s->children[i];
    c->sv = s;
    c->backoff_ms = s->opt.backoff_min_ms;
    arena_init(&c->arena, 4096);
  }
  uv_timer_init(&s->loop, &s->tick);
  s->tick.data = s;
  uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
  for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++) {
    uv_signal_init(&s->loop, &s->signals[i]);
    s->signals[i].data = s;
    uv_signal_start(&s->signals[i], on_signal, stop_signals[i]);
  }
  s->t0 = now_ms(s);
  s->phase = PHASE_STARTING;
  s->stage = s->min_stage;
  start_stage(s, s->t0);
  if (s->phase != PHASE_DONE)
    write_state(s);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&s->loop) != 0) {
    /* something was still open (it should not be): close it and drain */
    uv_walk(&s->loop, close_any, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
  }
  return s->exit_code;
}

int supervisor_child_pid(const struct supervisor *s, unsigned i) {
  return i < s->n ? (int)s->children[i].pid : 0;
}

void supervisor_free(struct supervisor *s) {
  if (!s)
    return;
  for (unsigned i = 0; i < s->n; i++)
    arena_free(&s->children[i].arena);
  free(s->children);
  json_decref(s->info);
  free(s->exe);
  free(s->state_path);
  free(s);
}
