#include "http/trysend.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

int stream_try_send(uv_stream_t *s, const uv_buf_t *bufs, unsigned n) {
  uv_os_fd_t fd;
  if (uv_stream_get_write_queue_size(s) != 0)
    return UV_EAGAIN; /* bytes queued by uv_write go first */
  if (uv_fileno((const uv_handle_t *)s, &fd) != 0)
    return uv_try_write(s, bufs, n);
  ssize_t w;
  do {
    if (n == 1) {
      w = send(fd, bufs[0].base, bufs[0].len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else {
      /* libuv documents uv_buf_t as laid out like struct iovec on Unix */
      struct msghdr m = {.msg_iov = (struct iovec *)bufs, .msg_iovlen = n};
      w = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
  } while (w < 0 && errno == EINTR);
  if (w > 0)
    return (int)w;
  if (w == 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
    return UV_EAGAIN;
  if (errno == ENOTSOCK)
    return uv_try_write(s, bufs, n);
  return -errno; /* libuv's errors are negated errno values on Unix */
}
