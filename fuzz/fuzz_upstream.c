/* libFuzzer target for the gateway's upstream response parser: the input is
 * what an upstream sends back. A real TCP connection on loopback carries it
 * (the upstream client connects to a listener of this process), so the
 * strict llhttp response parsing, the obs-fold / bare-LF / repeated-chunked
 * checks, body accumulation and the close-delimited and keep-alive paths all
 * see the bytes exactly as from a misbehaving server. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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

static void setup(void) {
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (listener < 0)
    setup();
  struct arena a;
  arena_init(&a, 4096);
  static const char req[] = "GET / HTTP/1.1\r\nHost: fuzz\r\n\r\n";
  int head = size > 0 && (data[0] & 1); /* also the answer to a HEAD */
  done = 0;
  if (upstream_request(host, req, sizeof req - 1, head, 2000, 1 << 20, &a, on_done, NULL, NULL) != 0) {
    arena_free(&a);
    return 0;
  }
  int peer = -1;
  size_t sent = 0;
  for (int i = 0; i < 5000 && !done; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
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
    if (sent < size) {
      ssize_t n = write(peer, data + sent, size - sent);
      if (n > 0)
        sent += (size_t)n;
    } else if (peer >= 0 && i > 50) {
      shutdown(peer, SHUT_WR); /* a close-delimited body ends here */
    }
  }
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
