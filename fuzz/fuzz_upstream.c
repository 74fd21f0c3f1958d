/* libFuzzer target for the gateway's upstream response parser: the input is
 * what an upstream sends back. A real TCP connection on loopback carries it
 * (the upstream client connects to a listener of this process), so the
 * strict llhttp response parsing, the obs-fold / bare-LF / repeated-chunked
 * checks, body accumulation and the close-delimited and keep-alive paths all
 * see the bytes exactly as from a misbehaving server.
 *
 * The first byte picks the call: bit 0 a HEAD request, bit 1 a streaming
 * call (upstream_stream) instead of a buffered one, bit 2 the body streamed
 * piece by piece (else kept whole), bit 3 reading paused after each piece
 * and resumed on the next loop turn, bit 4 a chunked request body written
 * after the head (on_drain, then upstream_stream_end), bit 5 the answer
 * written a byte per loop turn (lines split across reads). The rest of the
 * input is the answer. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/upstream.h"

static uv_loop_t loop;
static int listener = -1;
static struct upstream_host *host;
static int done;
static int flags;
static struct upstream_call *call;
static int paused;

static void setup(void) {
  /* the peer (the fuzz input) may close before the request body is all
   * written: a write must fail with EPIPE, not kill the process, as in the
   * gateway (http_server_run ignores SIGPIPE) */
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  bind(listener, (struct sockaddr *)&a, sizeof a);
  listen(listener, 16);
  socklen_t len = sizeof a;
  getsockname(listener, (struct sockaddr *)&a, &len);
  host = upstream_host_new(&loop, "127.0.0.1", ntohs(a.sin_port), 4, 1000);
}

static void on_done(int rc, struct upstream_response *r, void *arg) {
  (void)rc;
  (void)arg;
  if (r) /* touch what a proxy would relay */
    for (unsigned i = 0; i < r->n_headers; i++)
      (void)memchr(r->headers[i].value, 0, r->headers[i].value_len);
  done = 1;
}

static int on_head(struct upstream_response *r, void *arg) {
  on_done(UPSTREAM_OK, r, arg);
  done = 0;
  return flags & 4 ? UPSTREAM_BODY_STREAM : UPSTREAM_BODY_BUFFER;
}

static void on_data(const char *d, size_t n, void *arg) {
  (void)arg;
  if (n)
    (void)memchr(d, 0, n);
  if (flags & 8 && !paused) {
    paused = 1;
    upstream_stream_pause(call);
  }
}

static void on_drain(void *arg) {
  (void)arg;
  static const char body[] = "5\r\nhello\r\n0\r\n\r\n";
  uv_buf_t b = uv_buf_init((char *)body, sizeof body - 1);
  if (upstream_stream_write(call, &b, 1) >= 0)
    upstream_stream_end(call);
}

static void on_end(struct upstream_response *r, void *arg) { on_done(UPSTREAM_OK, r, arg); }
static void on_error(int rc, void *arg) { on_done(rc, NULL, arg); }

/* interim answers: their headers are read (the proxy copies them on) */
static void on_interim(const struct upstream_response *r, void *arg) {
  (void)arg;
  for (unsigned i = 0; i < r->n_headers; i++)
    if (r->headers[i].value_len)
      (void)memchr(r->headers[i].value, 0, r->headers[i].value_len);
}

static const struct upstream_stream_cbs cbs = {.on_head = on_head,
                                               .on_interim = on_interim,
                                               .on_data = on_data,
                                               .on_drain = on_drain,
                                               .on_end = on_end,
                                               .on_error = on_error};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (listener < 0)
    setup();
  struct arena a;
  arena_init(&a, 4096);
  static const char req[] = "GET / HTTP/1.1\r\nHost: fuzz\r\n\r\n";
  static const char post[] = "POST / HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n";
  flags = size > 0 ? data[0] : 0;
  int head = flags & 1; /* also the answer to a HEAD */
  done = 0;
  paused = 0;
  call = NULL;
  int rc;
  if (flags & 2) {
    struct upstream_stream_req r = {flags & 16 ? post : req,
                                    flags & 16 ? sizeof post - 1 : sizeof req - 1,
                                    head, flags & 16, 2000, 2000, 1 << 20};
    rc = upstream_stream(host, &r, &a, &cbs, NULL, &call);
  } else {
    rc = upstream_request(host, req, sizeof req - 1, head, 2000, 1 << 20, &a, on_done, NULL, NULL);
  }
  if (rc != 0) {
    arena_free(&a);
    return 0;
  }
  int peer = -1;
  size_t sent = 0;
  for (int i = 0; i < 5000 && !done; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    if (paused && !done) {
      paused = 0;
      upstream_stream_resume(call);
    }
    if (peer < 0) {
      struct pollfd p = {listener, POLLIN, 0};
      if (poll(&p, 1, 0) == 1) {
        peer = accept(listener, NULL, NULL);
        if (peer >= 0)
          fcntl(peer, F_SETFL, O_NONBLOCK);
      }
      continue;
    }
    char sink[4096];
    while (read(peer, sink, sizeof sink) > 0)
      ;
    if (sent + 1 < size) {
      size_t want = flags & 32 ? 1 : size - 1 - sent;
      ssize_t n = write(peer, data + 1 + sent, want);
      if (n > 0)
        sent += (size_t)n;
    } else if (peer >= 0 && i > 50) {
      shutdown(peer, SHUT_WR); /* a close-delimited body ends here */
    }
  }
  if (!done && call) /* a stall: drop it (no callback follows) */
    upstream_cancel(call);
  if (!done) /* a parked keep-alive reuse or a stall: give up on it */
    uv_run(&loop, UV_RUN_NOWAIT);
  if (peer >= 0)
    close(peer);
  /* let the client notice the close and drop the connection */
  for (int i = 0; i < 20; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  arena_free(&a);
  return 0;
}
