/* Chunk-size lines (RFC 9112 7.1) reduced to the form Debian 12's llhttp
 * parses.
 *
 * The grammar allows any number of extensions, with optional whitespace
 * around ";" and "=":
 *
 *   chunk-size [ chunk-ext ] CRLF
 *   chunk-ext  = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
 *
 * llhttp 8.1 in strict mode refuses whitespace before ";" and, through a
 * bug in its state machine, a second extension after an unquoted value
 * ("5;a=1;b=2"). No recipient here uses an extension (they are to be
 * ignored when not understood, RFC 9112 7.1.1) and the gateway re-frames
 * what it relays, so a valid line is handed to llhttp as "HEX CRLF".
 *
 * Callers feed llhttp up to the start of each chunk-size line (a pause in
 * on_headers_complete / on_chunk_complete) and pass the line through
 * chunkline_reduce() first. */
#ifndef STRATA_HTTP_CHUNKLINE_H
#define STRATA_HTTP_CHUNKLINE_H

#include <stddef.h>

/* The longest chunk-size line taken (extensions included); nginx and
 * HAProxy bound it by their buffers. */
#define CHUNKLINE_MAX 4096

/* The reduced line: at most this many bytes. */
#define CHUNKLINE_OUT_MAX 36

/* Looks at the chunk-size line at the start of data[0, len).
 *   > 0  the line is whole and valid: its length (through its LF); *out
 *        holds "HEX\r\n" (the size digits as sent) and *out_len its length
 *        (out has room for CHUNKLINE_OUT_MAX bytes);
 *   0    no LF yet: wait for more bytes (only while len < CHUNKLINE_MAX);
 *   < 0  not a valid chunk-size line (or one over CHUNKLINE_MAX bytes, or
 *        with more than 32 size digits, which no length fits): the message
 *        is malformed. Stricter than llhttp, which takes "5;a=". */
long chunkline_reduce(const char *data, size_t len, char *out, size_t *out_len);

/* A chunk-size line that may arrive over several reads. */
struct chunkline_buf {
  char *data; /* CHUNKLINE_MAX bytes once a line was split; NULL before */
  size_t len;
};

/* Takes the bytes at *data (len *len) toward the chunk-size line that
 * starts where the body parser stopped:
 *   1   the line is whole and valid: out/out_len as chunkline_reduce(),
 *       *data and *len moved past it;
 *   0   all of them taken, the line goes on in the next read;
 *   -1  malformed (or out of memory): the message is.
 * The buffer is empty again after 1 or -1. */
int chunkline_take(struct chunkline_buf *b, const char **data, size_t *len, char *out,
                   size_t *out_len);

void chunkline_buf_free(struct chunkline_buf *b);

#endif
