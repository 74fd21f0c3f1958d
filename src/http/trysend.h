/* uv_try_write() by send(2)/sendmsg(2). On a socket, write(2) and writev(2)
 * also walk the file layer (position lock, permission and fsnotify hooks)
 * before reaching the socket; send(2) goes straight to it: about 70 ns a
 * call here (300-byte writes over loopback), and a proxied request makes
 * two. Small, but it is on every request of a core the kernel's TCP work
 * already fills. Reads stay with libuv, which uses read(2). */
#ifndef STRATA_HTTP_TRYSEND_H
#define STRATA_HTTP_TRYSEND_H

#include <uv.h>

/* As uv_try_write(): the bytes the socket took at once (possibly fewer than
 * given), UV_EAGAIN when it took none or writes are queued on the stream
 * (order is kept), another negative libuv error when the socket failed. A
 * stream that is not a socket falls back to uv_try_write(). */
int stream_try_send(uv_stream_t *s, const uv_buf_t *bufs, unsigned n);

#endif
