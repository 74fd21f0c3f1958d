/* Supervisor: runs the processes of a topology on this machine, waits until
 * they are ready, keeps them running and stops them in order (the engine of
 * `strata up`; src/topology/plan.h decides which processes).
 *
 * Children come in stages: stage 0 (the services) is started first; stage
 * n+1 (the gateway in front of them) starts once every child of stage n
 * answers 200 on GET /health/ready. A stop goes the other way, highest
 * stage first, so the gateway has drained before its upstreams go away.
 *
 * One child:
 *
 *           spawn              200 on /health/ready
 *   IDLE ----------> STARTING -------------------> READY
 *                     ^   |                          |
 *        backoff over |   | exits (after the whole   | exits
 *        spawn again  |   v topology was ready once) v
 *                    BACKOFF <-----------------------+
 *
 *   any state --stop (SIGTERM/SIGINT/SIGHUP)--> STOPPING --exits--> STOPPED
 *
 * Transitions: spawn() (IDLE/BACKOFF -> STARTING), on_probe_done()
 * (-> READY), on_child_exit() (-> BACKOFF, or a failed start), stop_step()
 * (-> STOPPING, SIGKILL after the child's stop timeout).
 *
 * Invariants and reasons:
 *  - Children are forked here, not with uv_spawn(): between fork and exec
 *    the child sets PR_SET_PDEATHSIG(SIGKILL) and then checks getppid(), so
 *    a supervisor killed with SIGKILL leaves no process behind. libuv 1.44
 *    offers no hook to run code in the child. Only the loop thread forks,
 *    and it lives until the end (PDEATHSIG follows the forking thread).
 *  - Every child gets its own process group: Ctrl-C on the terminal reaches
 *    the supervisor alone, which then stops the children in order.
 *  - A child exiting before the whole topology was ready once is a failed
 *    start (a crash at start is a configuration problem, not bad luck):
 *    everything is stopped and supervisor_run() returns 1. Later, an exit is
 *    restarted after a backoff that doubles from backoff_min_ms to
 *    backoff_max_ms and starts over once a child stayed up stable_ms.
 *  - A readiness probe belongs to one incarnation (generation) of a child:
 *    an answer from a process that has since exited is ignored. */
#ifndef STRATA_TOPOLOGY_SUPERVISOR_H
#define STRATA_TOPOLOGY_SUPERVISOR_H

#include <stdint.h>
#include <stdio.h>

#define SV_MAX_ARGS 64
#define SV_ARGBUF 8192

/* What to run and how to watch it. Plain data: copied by supervisor_add(). */
struct sv_child_spec {
  char name[64];           /* "gateway", "users-0": in logs, messages, the state file */
  char role[16];           /* "gateway" or "service": shown by `strata status` */
  int stage;               /* 0 starts first and stops last */
  char address[96];        /* HOST:PORT it serves (shown, not used) */
  char probe_host[64];     /* GET /health/ready is sent here ... */
  uint16_t probe_port;     /* ... 0 = ready as soon as it is running */
  char data_dir[1024];     /* shown, not used */
  char log_path[1024];     /* the child's stdout and stderr are appended here */
  uint32_t stop_timeout_ms; /* after SIGTERM, SIGKILL once this has passed */
  /* The command line after the program: sv_spec_arg() appends to it. */
  unsigned argc;
  size_t argbuf_len;
  char argbuf[SV_ARGBUF]; /* argc NUL-terminated strings, one after another */
};

/* Appends one argument (printf-style) to spec's command line. Returns 0, or
 * -1 when SV_MAX_ARGS or SV_ARGBUF would be passed (spec unchanged). */
int sv_spec_arg(struct sv_child_spec *spec, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The i-th argument (0-based), or NULL past the end. */
const char *sv_spec_argv(const struct sv_child_spec *spec, unsigned i);

/* Fires once, when every stage is ready for the first time. */
typedef void (*sv_ready_cb)(void *arg);

struct sv_options {
  const char *exe;             /* the program every child runs (argv[0]) */
  const char *state_path;      /* JSON state file, rewritten on each change and
                                  removed on exit; NULL = none */
  const char *state_info_json; /* a JSON object whose members are copied to the
                                  top of the state file; NULL = none */
  uint32_t ready_timeout_ms;   /* each stage must be ready within; 0 = 60 s */
  uint32_t backoff_min_ms;     /* first restart delay; 0 = 100 ms */
  uint32_t backoff_max_ms;     /* longest restart delay; 0 = 10 s */
  uint32_t stable_ms;          /* up this long resets the delay; 0 = 30 s */
  FILE *progress;              /* human-readable progress and failures; NULL = stderr */
  int progress_live;           /* redraw one line (a terminal) instead of printing lines */
  sv_ready_cb on_ready;
  void *arg;
};

struct supervisor;

/* A supervisor with no children yet; strings in opt are copied. NULL when
 * out of memory or state_info_json is not a JSON object. */
struct supervisor *supervisor_new(const struct sv_options *opt);

/* Adds a child (copied). Only before supervisor_run(). Returns 0 or -1. */
int supervisor_add(struct supervisor *s, const struct sv_child_spec *spec);

/* Starts the children stage by stage, supervises them and returns after a
 * stop: 0 when stopped by SIGTERM, SIGINT or SIGHUP; 1 when the start
 * failed (a child exited or was not ready in time; what happened and the
 * child's last log lines went to opt->progress) or a second signal forced
 * the stop. No child is left running when it returns. Call it once. */
int supervisor_run(struct supervisor *s);

/* The pid of the i-th child added, 0 when it is not running. For the
 * on_ready callback's summary. */
int supervisor_child_pid(const struct supervisor *s, unsigned i);

/* Accepts NULL. */
void supervisor_free(struct supervisor *s);

/* "exited with status 1", "killed by SIGKILL" for a waitpid() status. */
void sv_describe_exit(int wstatus, char *out, size_t len);

#endif
