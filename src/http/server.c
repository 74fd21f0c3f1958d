/* Workers, listeners and the shutdown sequence; see server.h.
 *
 * NOTES ON THE DESIGN (shutdown)
 *
 *   RUNNING --SIGTERM/SIGINT--> DRAINING --all connections closed--> STOPPED
 *                                  |  drain_timeout or a second signal
 *                                  +--> FORCED (every connection cut) --> STOPPED
 *
 * on_signal() (main thread) flips s->draining and wakes every worker through
 * its uv_async. on_wakeup() (worker thread) closes the worker's listener and
 * its idle connections; busy ones close after their response (which says
 * Connection: close). When a worker has no connection left it closes its own
 * handles, its loop ends, and it tells the main loop; when all have, the main
 * loop ends and http_server_run() returns 0. */
#include "http/server.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/busypoll.h"
#include "http/internal.h"
#include "observe/health.h"
#include "observe/log.h"
#include "observe/trace.h"

static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static uv_async_t *main_wakeup; /* set while http_server_run() runs */

static enum health_status check_server(void *ctx, char *detail, size_t len) {
  struct http_server *s = ctx;
  if (http_server_draining(s)) {
    snprintf(detail, len, "shutting down");
    return HEALTH_DOWN;
  }
  return HEALTH_UP;
}

int http_server_draining(const struct http_server *s) {
  return __atomic_load_n(&s->draining, __ATOMIC_RELAXED);
}

/* Opens one listening socket on the address with SO_REUSEPORT. *port may be
 * 0 (the kernel picks; the chosen port is written back so the other workers
 * bind the same one). Returns the fd or -1 with errno set. */
static int open_listener(const char *host, uint16_t *port, int reuseport) {
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char portstr[8];
  snprintf(portstr, sizeof portstr, "%u", (unsigned)*port);
  int gai = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
  if (gai != 0) {
    errno = EINVAL;
    return -1;
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    goto fail;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    goto fail;
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0)
    goto fail;
  if (listen(fd, 4096) != 0)
    goto fail;
  if (*port == 0) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
  }
  freeaddrinfo(res);
  return fd;
fail:;
  int saved = errno;
  if (fd >= 0)
    close(fd);
  freeaddrinfo(res);
  errno = saved;
  return -1;
}

/* From the first listen() on, clients connect and a supervisor or a test
 * may already send SIGTERM: with no handler yet it would kill the process
 * instead of draining it. The stop signals wait, blocked on the creating
 * thread (and the threads it starts meanwhile), until http_server_run()
 * has its handlers; http_server_free() lets them go if it never ran. */
static void hold_stop_signals(struct http_server *s, int hold) {
  if (s->holding_stop_signals == hold)
    return;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
  s->holding_stop_signals = hold;
}

struct http_server *http_server_new(const struct strata_config *cfg, const struct router *router) {
  struct http_server *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  hold_stop_signals(s, 1);
  s->cfg = *cfg;
  s->router = router;
  s->n_workers = cfg->workers ? cfg->workers : (unsigned)uv_available_parallelism();
  s->workers = calloc(s->n_workers, sizeof *s->workers);
  if (!s->workers)
    goto fail;
  for (unsigned i = 0; i < s->n_workers; i++)
    s->workers[i].listen_fd = s->workers[i].extra_listen_fd = -1;
  /* SO_REUSEPORT would let us share a port another strata already serves,
   * splitting its traffic without a word. A plain bind first makes "address
   * in use" an error, as with nginx or HAProxy. */
  if (cfg->listen_port != 0) {
    uint16_t port = cfg->listen_port;
    int probe = open_listener(cfg->listen_host, &port, 0);
    if (probe < 0) {
      log_event(LOG_ERROR, "listen_failed", NULL, "cannot listen on %s:%u: %s", cfg->listen_host,
                (unsigned)cfg->listen_port, strerror(errno));
      goto fail;
    }
    close(probe);
  }
  for (unsigned i = 0; i < s->n_workers; i++) {
    int fd = open_listener(cfg->listen_host, &s->cfg.listen_port, 1);
    if (fd < 0) {
      log_event(LOG_ERROR, "listen_failed", NULL, "cannot listen on %s:%u: %s", cfg->listen_host,
                (unsigned)cfg->listen_port, strerror(errno));
      goto fail;
    }
    s->workers[i].listen_fd = fd;
  }
  if (metrics_init(s->n_workers) != 0)
    goto fail;
  health_register("server", check_server, s);
  return s;
fail:
  http_server_free(s);
  return NULL;
}

struct http_server *http_server_new_unbound(const struct strata_config *cfg,
                                            const struct router *router) {
  struct http_server *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->cfg = *cfg;
  s->router = router;
  s->n_workers = 1;
  s->workers = calloc(1, sizeof *s->workers);
  if (!s->workers || metrics_init(1) != 0) {
    http_server_free(s);
    return NULL;
  }
  s->workers[0].listen_fd = s->workers[0].extra_listen_fd = -1;
  return s;
}

/* A server that never ran (its caller's start failed): a stop signal held
 * back meanwhile is taken here, not released to kill the process by the
 * default action while it cleans up and reports its own failure. */
static void drop_held_stop_signals(struct http_server *s) {
  if (!s->holding_stop_signals)
    return;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  const struct timespec now = {0, 0};
  int sig;
  while ((sig = sigtimedwait(&set, NULL, &now)) > 0)
    log_event(LOG_INFO, "stop_signal", NULL, "%s before the server ran: exiting",
              sig == SIGTERM ? "SIGTERM" : "SIGINT");
  hold_stop_signals(s, 0);
}

void http_server_free(struct http_server *s) {
  if (!s)
    return;
  drop_held_stop_signals(s);
  for (unsigned i = 0; s->workers && i < s->n_workers; i++)
    if (s->workers[i].listen_fd >= 0)
      close(s->workers[i].listen_fd);
  if (s->workers && s->workers[0].extra_listen_fd >= 0)
    close(s->workers[0].extra_listen_fd);
  free(s->workers);
  free(s);
}

/* ---- worker thread ------------------------------------------------------ */

static void on_connection(uv_stream_t *listener, int status) {
  struct worker *w = listener->data;
  if (status < 0)
    return;
  conn_accept(w, &w->listener, w->server->router);
}

static void on_extra_connection(uv_stream_t *listener, int status) {
  struct worker *w = listener->data;
  if (status < 0)
    return;
  conn_accept(w, &w->extra_listener, w->server->extra_router);
}

int http_server_add_listener(struct http_server *s, const char *host, uint16_t port,
                             const struct router *router) {
  uint16_t p = port;
  int fd = open_listener(host, &p, 0);
  if (fd < 0) {
    log_event(LOG_ERROR, "listen_failed", NULL, "cannot listen on %s:%u: %s", host,
              (unsigned)port, strerror(errno));
    return -1;
  }
  if (s->workers[0].extra_listen_fd >= 0)
    close(s->workers[0].extra_listen_fd);
  s->workers[0].extra_listen_fd = fd;
  s->extra_router = router;
  return 0;
}

static void on_sweep(uv_timer_t *t) {
  struct worker *w = t->data;
  worker_update_date(w);
  conn_sweep(w, uv_now(&w->loop));
}

static void on_flush(uv_prepare_t *p) {
  struct worker *w = p->data;
  conn_kicks(w);
  if (w->log.len)
    log_flush(&w->log);
}

static void close_list(struct conn_list *l, int only_unstarted) {
  struct conn *c = l->head;
  while (c) {
    struct conn *next = c->next;
    if (!only_unstarted || c->state == CS_IDLE)
      conn_close(c);
    c = next;
  }
}

/* Forced stop: closes the connections and this worker's own handles. Handles
 * the application added to the loop (batches, timers) are its own to close,
 * in the stop hook. */
static void close_everything(uv_handle_t *h, void *arg) {
  struct worker *w = arg;
  if (uv_is_closing(h))
    return;
  if (h == (uv_handle_t *)&w->listener || h == (uv_handle_t *)&w->extra_listener ||
      h == (uv_handle_t *)&w->wakeup ||
      h == (uv_handle_t *)&w->sweep || h == (uv_handle_t *)&w->flush)
    uv_close(h, NULL);
  else if (h->type == UV_TCP && h->data == h)
    conn_close((struct conn *)h); /* a conn's handle points at itself */
}

void worker_maybe_finish(struct worker *w) {
  if (w->stopping || !w->draining || w->n_conns > 0)
    return;
  log_flush(&w->log);
  pthread_mutex_lock(&wake_lock);
  w->stopping = 1;
  uv_close((uv_handle_t *)&w->wakeup, NULL);
  pthread_mutex_unlock(&wake_lock);
  uv_close((uv_handle_t *)&w->sweep, NULL);
  uv_close((uv_handle_t *)&w->flush, NULL);
}

static void on_wakeup(uv_async_t *a) {
  struct worker *w = a->data;
  struct http_server *s = w->server;
  if (w->stopping)
    return;
  if (__atomic_load_n(&s->draining, __ATOMIC_RELAXED) && !w->draining) {
    w->draining = 1;
    if (w->listening) {
      uv_close((uv_handle_t *)&w->listener, NULL);
      w->listening = 0;
    }
    if (w->extra_listening) {
      uv_close((uv_handle_t *)&w->extra_listener, NULL);
      w->extra_listening = 0;
    }
    close_list(&w->idle, 0);
    close_list(&w->head, 1); /* connected but never sent a byte */
  }
  if (__atomic_load_n(&s->force, __ATOMIC_RELAXED)) {
    pthread_mutex_lock(&wake_lock);
    w->stopping = 1; /* no more wake-ups: the async handle is about to close */
    pthread_mutex_unlock(&wake_lock);
    uv_walk(&w->loop, close_everything, w);
    return;
  }
  worker_maybe_finish(w);
}

void http_server_set_filter(struct http_server *s, http_filter_cb filter, void *ctx) {
  s->filter = filter;
  s->filter_ctx = ctx;
}

void http_server_set_worker_hooks(struct http_server *s, const struct http_worker_hooks *hooks) {
  s->hooks = *hooks;
}

static void worker_main(void *arg) {
  struct worker *w = arg;
  struct http_server *s = w->server;
  if (s->hooks.start && s->hooks.start(w->index, &w->loop, &w->data, s->hooks.ctx) != 0) {
    log_event(LOG_ERROR, "worker_start_failed", NULL, "worker %u could not start", w->index);
    __atomic_store_n(&s->draining, 1, __ATOMIC_RELAXED);
    if (main_wakeup) /* stop the whole server: it cannot serve everywhere */
      raise(SIGTERM);
  }
  int rc = uv_tcp_open(&w->listener, w->listen_fd);
  if (rc == 0) {
    w->listen_fd = -1; /* owned by the handle now */
    rc = uv_listen((uv_stream_t *)&w->listener, 4096, on_connection);
  }
  if (rc != 0) {
    log_event(LOG_ERROR, "listen_failed", NULL, "worker %u: %s", w->index, uv_strerror(rc));
  } else {
    w->listening = 1;
  }
  if (w->extra_listen_fd >= 0) {
    uv_tcp_init(&w->loop, &w->extra_listener);
    w->extra_listener.data = w;
    rc = uv_tcp_open(&w->extra_listener, w->extra_listen_fd);
    if (rc == 0) {
      w->extra_listen_fd = -1;
      rc = uv_listen((uv_stream_t *)&w->extra_listener, 128, on_extra_connection);
    }
    if (rc != 0) {
      log_event(LOG_ERROR, "listen_failed", NULL, "worker %u: second listener: %s", w->index,
                uv_strerror(rc));
      uv_close((uv_handle_t *)&w->extra_listener, NULL);
    } else
      w->extra_listening = 1;
  }
  struct busypoll busy;
  busypoll_init(&busy, s->cfg.http.busy_poll_us);
  busypoll_run(&busy, &w->loop);
  if (s->hooks.stop) {
    s->hooks.stop(w->index, &w->loop, w->data, s->hooks.ctx);
    uv_run(&w->loop, UV_RUN_DEFAULT); /* the close callbacks of what it closed */
  }
  strbuf_free(&w->out);
  strbuf_free(&w->log);
  strbuf_free(&w->err_body);
  pthread_mutex_lock(&wake_lock);
  w->finished = 1;
  if (main_wakeup)
    uv_async_send(main_wakeup);
  pthread_mutex_unlock(&wake_lock);
}

int worker_init(struct http_server *s, unsigned i) {
  struct worker *w = &s->workers[i];
  w->server = s;
  w->index = i;
  w->shard = metrics_shard(i);
  strbuf_init(&w->out, 0);
  strbuf_init(&w->log, 0);
  strbuf_init(&w->err_body, 0);
  w->idle.timeout_ms = s->cfg.http.idle_timeout_ms;
  w->head.timeout_ms = s->cfg.http.header_timeout_ms;
  w->body.timeout_ms = s->cfg.http.body_timeout_ms;
  w->linger.timeout_ms = 2000;
  snprintf(w->reqid_prefix, sizeof w->reqid_prefix, "%010llx-",
           (unsigned long long)(trace_random64() & 0xffffffffffULL));
  worker_update_date(w);
  if (uv_loop_init(&w->loop) != 0)
    return -1;
  uv_tcp_init(&w->loop, &w->listener);
  w->listener.data = w;
  uv_async_init(&w->loop, &w->wakeup, on_wakeup);
  w->wakeup.data = w;
  uv_timer_init(&w->loop, &w->sweep);
  w->sweep.data = w;
  uv_timer_start(&w->sweep, on_sweep, 100, 100);
  uv_prepare_init(&w->loop, &w->flush);
  w->flush.data = w;
  uv_prepare_start(&w->flush, on_flush);
  return 0;
}

/* ---- main thread -------------------------------------------------------- */

static void wake_workers(struct http_server *s) {
  pthread_mutex_lock(&wake_lock);
  for (unsigned i = 0; i < s->n_workers; i++)
    if (!s->workers[i].stopping)
      uv_async_send(&s->workers[i].wakeup);
  pthread_mutex_unlock(&wake_lock);
}

static void on_drain_timeout(uv_timer_t *t) {
  struct http_server *s = t->data;
  log_event(LOG_WARN, "drain_timeout", NULL, "drain timeout passed; closing remaining connections");
  __atomic_store_n(&s->force, 1, __ATOMIC_RELAXED);
  wake_workers(s);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct http_server *s = h->data;
  if (__atomic_load_n(&s->draining, __ATOMIC_RELAXED)) {
    log_event(LOG_WARN, "shutdown_forced", NULL, "second signal: closing every connection now");
    __atomic_store_n(&s->force, 1, __ATOMIC_RELAXED);
    wake_workers(s);
    return;
  }
  log_event(LOG_INFO, "draining", NULL, "received %s; draining (up to %u ms)",
            signum == SIGTERM ? "SIGTERM" : "SIGINT", s->cfg.http.drain_timeout_ms);
  __atomic_store_n(&s->draining, 1, __ATOMIC_RELAXED);
  uv_timer_start(&s->drain_timer, on_drain_timeout, s->cfg.http.drain_timeout_ms, 0);
  wake_workers(s);
}

static void on_worker_done(uv_async_t *a) {
  struct http_server *s = a->data;
  unsigned done = 0;
  pthread_mutex_lock(&wake_lock);
  for (unsigned i = 0; i < s->n_workers; i++)
    done += s->workers[i].finished;
  if (done < s->n_workers) {
    pthread_mutex_unlock(&wake_lock);
    return;
  }
  main_wakeup = NULL;
  pthread_mutex_unlock(&wake_lock);
  uv_close((uv_handle_t *)a, NULL);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
  uv_close((uv_handle_t *)&s->sigint, NULL);
  uv_close((uv_handle_t *)&s->drain_timer, NULL);
}

int http_server_run(struct http_server *s) {
  signal(SIGPIPE, SIG_IGN);
  uv_async_t done;
  if (uv_loop_init(&s->main_loop) != 0)
    return -1;
  uv_signal_init(&s->main_loop, &s->sigterm);
  uv_signal_init(&s->main_loop, &s->sigint);
  s->sigterm.data = s->sigint.data = s;
  uv_signal_start(&s->sigterm, on_signal, SIGTERM);
  uv_signal_start(&s->sigint, on_signal, SIGINT);
  hold_stop_signals(s, 0); /* one that came meanwhile is taken now */
  uv_timer_init(&s->main_loop, &s->drain_timer);
  s->drain_timer.data = s;
  uv_async_init(&s->main_loop, &done, on_worker_done);
  done.data = s;
  main_wakeup = &done;

  unsigned started = 0;
  for (; started < s->n_workers; started++) {
    if (worker_init(s, started) != 0 ||
        uv_thread_create(&s->workers[started].thread, worker_main, &s->workers[started]) != 0)
      break;
  }
  if (started < s->n_workers) {
    log_event(LOG_ERROR, "start_failed", NULL, "could not start worker %u", started);
    __atomic_store_n(&s->draining, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&s->force, 1, __ATOMIC_RELAXED);
    s->n_workers = started;
    wake_workers(s);
  } else {
    char fields[160];
    snprintf(fields, sizeof fields, "\"listen\":\"%s:%u\",\"workers\":%u", s->cfg.listen_host,
             (unsigned)s->cfg.listen_port, s->n_workers);
    log_event(LOG_INFO, "listening", fields, "strata serving on http://%s:%u", s->cfg.listen_host,
              (unsigned)s->cfg.listen_port);
  }
  uv_run(&s->main_loop, UV_RUN_DEFAULT);
  for (unsigned i = 0; i < started; i++) {
    uv_thread_join(&s->workers[i].thread);
    uv_loop_close(&s->workers[i].loop);
  }
  uv_loop_close(&s->main_loop);
  log_event(LOG_INFO, "stopped", NULL, "all connections closed; exiting");
  return started == s->n_workers ? 0 : -1;
}
