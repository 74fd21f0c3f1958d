/* Unit tests for src/core/strbuf.c.
 *
 * strbuf carries every response, log line and metrics page, and
 * strbuf_put_json_string() is what keeps client-controlled bytes (paths,
 * header values, error details) from breaking the JSON they are put into. So
 * besides exact expected escapes, every JSON string produced here is parsed
 * back with jansson, a parser that refuses invalid UTF-8, and compared with
 * what it should decode to. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

/* The huge-size tests expect NULL from malloc, which ASan turns into an
 * abort unless told otherwise. */
#define TEST_ALLOCATOR_MAY_RETURN_NULL
#include "../support.h"

#include "core/strbuf.h"

/* ---- helpers ---------------------------------------------------------- */

/* Escapes in[0..n) into a fresh buffer and returns it (caller frees). */
static struct strbuf escape(const void *in, size_t n) {
  struct strbuf sb;
  strbuf_init(&sb, 0);
  strbuf_put_json_string(&sb, in, n);
  assert_false(sb.failed);
  assert_non_null(sb.data);
  assert_int_equal(sb.data[sb.len], '\0');
  return sb;
}

/* Parses "<escaped>" with jansson; fails the test when it does not parse.
 * Returns the decoded string (a jansson object the caller decrefs). */
static json_t *parse_escaped(const char *escaped, size_t len) {
  json_error_t err;
  char *doc = malloc(len + 3);
  assert_non_null(doc);
  doc[0] = '"';
  memcpy(doc + 1, escaped, len);
  doc[len + 1] = '"';
  doc[len + 2] = '\0';
  json_t *j = json_loadb(doc, len + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
  if (!j)
    fail_msg("jansson rejects \"%s\": %s (col %d)", escaped, err.text, err.column);
  free(doc);
  assert_true(json_is_string(j));
  return j;
}

/* in (n bytes) must escape to exactly `escaped` and decode to `decoded`
 * (dn bytes). */
static void expect_json(const void *in, size_t n, const char *escaped, const void *decoded,
                        size_t dn) {
  struct strbuf sb = escape(in, n);
  if (sb.len != strlen(escaped) || memcmp(sb.data, escaped, sb.len) != 0)
    fail_msg("escaped to \"%s\", expected \"%s\"", sb.data, escaped);
  json_t *j = parse_escaped(sb.data, sb.len);
  assert_int_equal(json_string_length(j), dn);
  assert_memory_equal(json_string_value(j), decoded, dn);
  json_decref(j);
  strbuf_free(&sb);
}

/* Valid text comes back unchanged, both escaped and decoded. */
static void expect_kept(const char *s) { expect_json(s, strlen(s), s, s, strlen(s)); }

#define RAW(lit) lit, sizeof(lit) - 1

/* ---- growth ------------------------------------------------------------ */

static void test_append_growth(void **state) {
  struct strbuf sb;
  (void)state;
  strbuf_init(&sb, 0);
  assert_null(sb.data);
  for (unsigned i = 0; i < 10000; i++) {
    strbuf_putc(&sb, (char)('a' + i % 26));
    assert_true(sb.cap > sb.len);
    assert_int_equal(sb.data[sb.len], '\0');
  }
  assert_int_equal(sb.len, 10000);
  for (unsigned i = 0; i < 10000; i++)
    assert_int_equal(sb.data[i], 'a' + i % 26);
  /* One large append on top. */
  char big[70000];
  memset(big, 'Q', sizeof big);
  strbuf_append(&sb, big, sizeof big);
  assert_int_equal(sb.len, 10000 + sizeof big);
  assert_memory_equal(sb.data + 10000, big, sizeof big);
  assert_int_equal(sb.data[sb.len], '\0');
  strbuf_puts(&sb, "end");
  assert_string_equal(sb.data + sb.len - 3, "end");
  assert_false(sb.failed);
  /* An empty append is fine and leaves the text as it is. */
  strbuf_append(&sb, "", 0);
  assert_int_equal(sb.len, 10000 + sizeof big + 3);
  /* clear keeps the memory. */
  char *data = sb.data;
  size_t cap = sb.cap;
  strbuf_clear(&sb);
  assert_int_equal(sb.len, 0);
  assert_ptr_equal(sb.data, data);
  assert_int_equal(sb.cap, cap);
  strbuf_puts(&sb, "x");
  assert_string_equal(sb.data, "x");
  strbuf_free(&sb);
  assert_null(sb.data);
  strbuf_free(&sb); /* twice is harmless */
}

static void test_printf_growth(void **state) {
  struct strbuf sb;
  char long_arg[5000];
  (void)state;
  strbuf_init(&sb, 0);
  strbuf_printf(&sb, "%d-%s", 42, "x");
  assert_string_equal(sb.data, "42-x");
  /* Results around the 256-byte stack buffer strbuf_printf tries first. */
  static const size_t lens[] = {254, 255, 256, 257, 4999};
  for (unsigned i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    size_t n = lens[i];
    memset(long_arg, 'a' + (int)i, n);
    long_arg[n] = '\0';
    size_t before = sb.len;
    strbuf_printf(&sb, "<%s>", long_arg);
    assert_int_equal(sb.len, before + n + 2);
    assert_int_equal(sb.data[before], '<');
    assert_memory_equal(sb.data + before + 1, long_arg, n);
    assert_int_equal(sb.data[sb.len - 1], '>');
    assert_int_equal(sb.data[sb.len], '\0');
  }
  strbuf_printf(&sb, "%s", "");
  assert_false(sb.failed);
  strbuf_free(&sb);
}

static void test_put_integers(void **state) {
  struct strbuf sb;
  (void)state;
  strbuf_init(&sb, 0);
  strbuf_put_u64(&sb, 0);
  strbuf_putc(&sb, ' ');
  strbuf_put_u64(&sb, UINT64_MAX);
  strbuf_putc(&sb, ' ');
  strbuf_put_i64(&sb, INT64_MIN);
  strbuf_putc(&sb, ' ');
  strbuf_put_i64(&sb, INT64_MAX);
  strbuf_putc(&sb, ' ');
  strbuf_put_i64(&sb, -1);
  strbuf_putc(&sb, ' ');
  strbuf_put_i64(&sb, 0);
  assert_string_equal(sb.data, "0 18446744073709551615 -9223372036854775808 9223372036854775807 -1 0");
  strbuf_free(&sb);
}

static void test_u64_to_dec(void **state) {
  static const uint64_t values[] = {0,
                                    1,
                                    9,
                                    10,
                                    11,
                                    99,
                                    100,
                                    101,
                                    UINT32_MAX,
                                    (uint64_t)UINT32_MAX + 1,
                                    9999999999999999999ull,
                                    10000000000000000000ull,
                                    UINT64_MAX - 1,
                                    UINT64_MAX};
  char out[21], want[32];
  (void)state;
  for (unsigned i = 0; i < sizeof values / sizeof values[0]; i++) {
    int n = snprintf(want, sizeof want, "%" PRIu64, values[i]);
    memset(out, 'X', sizeof out);
    assert_int_equal(u64_to_dec(out, values[i]), (size_t)n);
    assert_string_equal(out, want);
  }
  /* Every power of ten and its neighbours. */
  uint64_t p = 1;
  for (int e = 0; e < 20; e++, p *= 10) {
    for (int d = -1; d <= 1; d++) {
      uint64_t v = p + (uint64_t)(int64_t)d;
      snprintf(want, sizeof want, "%" PRIu64, v);
      assert_int_equal(u64_to_dec(out, v), strlen(want));
      assert_string_equal(out, want);
    }
    if (e == 19)
      break;
  }
  /* The longest value needs all 21 bytes of out (20 digits + NUL). */
  assert_int_equal(u64_to_dec(out, UINT64_MAX), 20);
  assert_int_equal(out[20], '\0');
}

/* ---- the cap ------------------------------------------------------------ */

static void test_max_cap_sets_failed(void **state) {
  struct strbuf sb;
  (void)state;
  strbuf_init(&sb, 10);
  strbuf_puts(&sb, "12345");
  strbuf_puts(&sb, "67890"); /* exactly max: still fits */
  assert_false(sb.failed);
  assert_int_equal(sb.len, 10);
  assert_string_equal(sb.data, "1234567890");
  assert_true(sb.cap <= 11); /* never allocates beyond max + NUL */
  strbuf_putc(&sb, 'x');
  assert_true(sb.failed);
  assert_int_equal(sb.len, 10);
  assert_string_equal(sb.data, "1234567890");
  /* Once failed, everything is ignored, even what would fit. */
  strbuf_clear(&sb);
  assert_false(sb.failed);
  strbuf_puts(&sb, "abc");
  assert_string_equal(sb.data, "abc");
  sb.failed = 1;
  strbuf_puts(&sb, "d");
  strbuf_putc(&sb, 'e');
  strbuf_printf(&sb, "%d", 1);
  strbuf_put_u64(&sb, 7);
  strbuf_put_json_string(&sb, "f", 1);
  assert_int_equal(sb.len, 3);
  assert_int_equal(strbuf_reserve(&sb, 1), -1);
  strbuf_free(&sb);
}

static void test_max_cap_printf(void **state) {
  struct strbuf sb;
  char arg[400];
  (void)state;
  memset(arg, 'p', sizeof arg - 1);
  arg[sizeof arg - 1] = '\0';
  /* Short result over the cap (the stack-buffer path). */
  strbuf_init(&sb, 20);
  strbuf_printf(&sb, "%.21s", arg);
  assert_true(sb.failed);
  assert_int_equal(sb.len, 0);
  strbuf_clear(&sb);
  strbuf_printf(&sb, "%.20s", arg);
  assert_false(sb.failed);
  assert_int_equal(sb.len, 20);
  strbuf_free(&sb);
  /* Long result over the cap (the reserve-then-print path). */
  strbuf_init(&sb, 300);
  strbuf_printf(&sb, "%s", arg);
  assert_true(sb.failed);
  assert_int_equal(sb.len, 0);
  strbuf_free(&sb);
  strbuf_init(&sb, 399);
  strbuf_printf(&sb, "%s", arg);
  assert_false(sb.failed);
  assert_int_equal(sb.len, 399);
  assert_int_equal(sb.data[399], '\0');
  strbuf_free(&sb);
}

static void test_max_cap_large_append(void **state) {
  struct strbuf sb;
  (void)state;
  strbuf_init(&sb, 1000);
  char chunk[100];
  memset(chunk, 'c', sizeof chunk);
  for (int i = 0; i < 10; i++)
    strbuf_append(&sb, chunk, sizeof chunk);
  assert_false(sb.failed);
  assert_int_equal(sb.len, 1000);
  strbuf_append(&sb, chunk, 1);
  assert_true(sb.failed);
  assert_int_equal(sb.len, 1000);
  strbuf_free(&sb);
  /* A request that would overflow size_t fails instead of wrapping. */
  strbuf_init(&sb, 0);
  strbuf_puts(&sb, "ab");
  assert_int_equal(strbuf_reserve(&sb, SIZE_MAX - 1), -1);
  assert_true(sb.failed);
  assert_string_equal(sb.data, "ab");
  strbuf_free(&sb);
}

/* Run through in_child(); each arms a 3 s alarm first, so a reserve that
 * hangs kills the child (reported as signal 14, SIGALRM) instead of the run. */
static int reserve_half_of_size_max(void *arg) {
  struct strbuf sb;
  (void)arg;
  alarm(3);
  strbuf_init(&sb, 0);
  strbuf_puts(&sb, "ab");
  /* Cannot be allocated; must come back as -1 and failed, not hang. */
  int rc = strbuf_reserve(&sb, SIZE_MAX / 2);
  int ok = rc == -1 && sb.failed && sb.len == 2;
  strbuf_free(&sb);
  return ok ? 0 : 1;
}

static int reserve_quarter_of_size_max(void *arg) {
  struct strbuf sb;
  (void)arg;
  alarm(3);
  strbuf_init(&sb, 0);
  strbuf_puts(&sb, "ab");
  int rc = strbuf_reserve(&sb, SIZE_MAX / 4);
  int ok = rc == -1 && sb.failed && sb.len == 2;
  strbuf_free(&sb);
  return ok ? 0 : 1;
}

static void test_reserve_huge_fails(void **state) {
  (void)state;
  if (!in_child(reserve_quarter_of_size_max, NULL))
    fail_msg("strbuf_reserve(SIZE_MAX / 4) did not fail cleanly");
  if (!in_child(reserve_half_of_size_max, NULL))
    fail_msg("strbuf_reserve(SIZE_MAX / 2) did not fail cleanly");
}

/* The cap is about what is written: a JSON string whose escaped form fits
 * must not mark the buffer failed. */
static void test_max_cap_json_string_that_fits(void **state) {
  struct strbuf sb;
  (void)state;
  strbuf_init(&sb, 64);
  strbuf_puts(&sb, "{\"k\":\"");
  strbuf_put_json_string(&sb, "abcdefghijklmnopqrst", 20); /* 20 bytes out, 6 + 20 + 2 <= 64 */
  strbuf_puts(&sb, "\"}");
  int failed = sb.failed;
  int same = sb.data && strcmp(sb.data, "{\"k\":\"abcdefghijklmnopqrst\"}") == 0;
  strbuf_free(&sb);
  if (failed || !same)
    fail_msg("28 bytes of JSON in a buffer capped at 64: failed=%d", failed);
  /* And one that does not fit fails. */
  strbuf_init(&sb, 16);
  strbuf_put_json_string(&sb, RAW("\x01\x02\x03")); /* 18 bytes escaped */
  assert_true(sb.failed);
  strbuf_free(&sb);
}

/* ---- JSON escaping ----------------------------------------------------- */

static void test_json_plain_and_empty(void **state) {
  (void)state;
  expect_kept("");
  expect_kept("hello world");
  expect_kept(" !#$%&'()*+,-./0123456789:;<=>?@ABCXYZ[]^_`abcxyz{|}~");
  expect_kept("/users/42?x=1&y=2"); /* '/' need not be escaped */
}

static void test_json_quotes_and_backslash(void **state) {
  (void)state;
  expect_json(RAW("a\"b"), "a\\\"b", RAW("a\"b"));
  expect_json(RAW("\\"), "\\\\", RAW("\\"));
  expect_json(RAW("\"\\\""), "\\\"\\\\\\\"", RAW("\"\\\""));
  expect_json(RAW("C:\\path\\\"x\""), "C:\\\\path\\\\\\\"x\\\"", RAW("C:\\path\\\"x\""));
}

static void test_json_short_escapes(void **state) {
  (void)state;
  expect_json(RAW("a\nb"), "a\\nb", RAW("a\nb"));
  expect_json(RAW("\r\n"), "\\r\\n", RAW("\r\n"));
  expect_json(RAW("\tx\t"), "\\tx\\t", RAW("\tx\t"));
}

static void test_json_control_bytes(void **state) {
  char in[1], want[8];
  (void)state;
  /* Every control byte other than \n \r \t becomes \u00XX, lower-case hex. */
  for (int c = 0; c < 0x20; c++) {
    if (c == '\n' || c == '\r' || c == '\t')
      continue;
    in[0] = (char)c;
    snprintf(want, sizeof want, "\\u%04x", c);
    expect_json(in, 1, want, in, 1);
  }
  expect_json(RAW("\x7f"), "\\u007f", RAW("\x7f"));
  /* Embedded NUL: the length is what counts, not the terminator. */
  expect_json(RAW("a\0b"), "a\\u0000b", RAW("a\0b"));
  expect_json(RAW("\x1b[31mred\x1b[0m"), "\\u001b[31mred\\u001b[0m", RAW("\x1b[31mred\x1b[0m"));
}

static void test_json_valid_utf8_kept(void **state) {
  (void)state;
  expect_kept("caf\xc3\xa9");              /* é, 2 bytes */
  expect_kept("\xe2\x82\xac 10");          /* €, 3 bytes */
  expect_kept("\xf0\x9f\x98\x80");         /* 😀, 4 bytes */
  expect_kept("\xc2\x80");                 /* U+0080, smallest 2-byte */
  expect_kept("\xdf\xbf");                 /* U+07FF */
  expect_kept("\xe0\xa0\x80");             /* U+0800, smallest 3-byte */
  expect_kept("\xed\x9f\xbf");             /* U+D7FF, just below the surrogates */
  expect_kept("\xee\x80\x80");             /* U+E000, just above them */
  expect_kept("\xef\xbf\xbd");             /* U+FFFD itself */
  expect_kept("\xef\xbf\xbf");             /* U+FFFF */
  expect_kept("\xf0\x90\x80\x80");         /* U+10000, smallest 4-byte */
  expect_kept("\xf4\x8f\xbf\xbf");         /* U+10FFFF, the last code point */
  expect_kept("\xe6\x97\xa5\xe6\x9c\xac"); /* 日本 */
  /* Mixed with escapes. */
  expect_json(RAW("\"\xc3\xa9\"\n"), "\\\"\xc3\xa9\\\"\\n", RAW("\"\xc3\xa9\"\n"));
}

#define FFFD "\xef\xbf\xbd"

static void test_json_invalid_utf8_replaced(void **state) {
  (void)state;
  /* Each case is invalid byte by byte in the same way under the "maximal
   * subpart" practice of Unicode, so the number of U+FFFD is fixed. */
  expect_json(RAW("a\x80z"), "a" FFFD "z", RAW("a" FFFD "z"));    /* lone continuation */
  expect_json(RAW("\xbf"), FFFD, RAW(FFFD));                      /* lone continuation */
  expect_json(RAW("\xc0\x80"), FFFD FFFD, RAW(FFFD FFFD));        /* overlong NUL */
  expect_json(RAW("\xc1\xbf"), FFFD FFFD, RAW(FFFD FFFD));        /* overlong 0x7F */
  expect_json(RAW("\xe0\x80\x80"), FFFD FFFD FFFD, RAW(FFFD FFFD FFFD)); /* overlong 3-byte */
  expect_json(RAW("\xe0\x9f\xbf"), FFFD FFFD FFFD, RAW(FFFD FFFD FFFD)); /* overlong U+07FF */
  expect_json(RAW("\xed\xa0\x80"), FFFD FFFD FFFD, RAW(FFFD FFFD FFFD)); /* surrogate D800 */
  expect_json(RAW("\xed\xbf\xbf"), FFFD FFFD FFFD, RAW(FFFD FFFD FFFD)); /* surrogate DFFF */
  expect_json(RAW("\xf0\x80\x80\x80"), FFFD FFFD FFFD FFFD, RAW(FFFD FFFD FFFD FFFD)); /* overlong */
  expect_json(RAW("\xf4\x90\x80\x80"), FFFD FFFD FFFD FFFD, RAW(FFFD FFFD FFFD FFFD)); /* > U+10FFFF */
  expect_json(RAW("\xf5\x80\x80\x80"), FFFD FFFD FFFD FFFD, RAW(FFFD FFFD FFFD FFFD)); /* F5 */
  expect_json(RAW("\xf8\x88\x80\x80\x80"), FFFD FFFD FFFD FFFD FFFD,
              RAW(FFFD FFFD FFFD FFFD FFFD)); /* old 5-byte form */
  expect_json(RAW("\xfe\xff"), FFFD FFFD, RAW(FFFD FFFD));
  /* A valid sequence right after a bad byte is kept. */
  expect_json(RAW("\xff\xc3\xa9"), FFFD "\xc3\xa9", RAW(FFFD "\xc3\xa9"));
  /* A lead byte followed by ASCII: the ASCII is not swallowed. */
  expect_json(RAW("\xc3" "a\""), FFFD "a\\\"", RAW(FFFD "a\""));
  expect_json(RAW("\xe2\x82" "\n"), FFFD FFFD "\\n", RAW(FFFD FFFD "\n"));
}

static void test_json_truncated_sequences(void **state) {
  /* Cut at the end of the input: how many U+FFFD is a matter of policy (one
   * per byte here, one per sequence elsewhere); what matters is that the
   * output parses, holds no raw invalid byte, and keeps the valid prefix. */
  static const struct {
    const char *in;
    size_t n;
  } cases[] = {{RAW("ok\xc3")}, {RAW("ok\xe2\x82")}, {RAW("ok\xf0\x9f\x98")}, {RAW("ok\xf0")}};
  (void)state;
  for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct strbuf sb = escape(cases[i].in, cases[i].n);
    json_t *j = parse_escaped(sb.data, sb.len);
    const char *d = json_string_value(j);
    size_t dn = json_string_length(j);
    assert_true(dn >= 5);
    assert_memory_equal(d, "ok" FFFD, 5);
    for (size_t k = 2; k < dn; k += 3)
      assert_memory_equal(d + k, FFFD, 3);
    json_decref(j);
    strbuf_free(&sb);
  }
}

/* Appending to a buffer that already holds text keeps that text. */
static void test_json_appends(void **state) {
  struct strbuf sb;
  (void)state;
  strbuf_init(&sb, 0);
  strbuf_puts(&sb, "{\"a\":\"");
  strbuf_put_json_string(&sb, RAW("x\"y"));
  strbuf_puts(&sb, "\",\"b\":\"");
  strbuf_put_json_string(&sb, RAW("\xff\n"));
  strbuf_puts(&sb, "\"}");
  assert_string_equal(sb.data, "{\"a\":\"x\\\"y\",\"b\":\"" FFFD "\\n\"}");
  json_error_t err;
  json_t *j = json_loads(sb.data, 0, &err);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "a")), "x\"y");
  assert_string_equal(json_string_value(json_object_get(j, "b")), FFFD "\n");
  json_decref(j);
  /* Many small appends force growth mid-way through the escapes. */
  strbuf_clear(&sb);
  for (int i = 0; i < 500; i++)
    strbuf_put_json_string(&sb, RAW("\x01\"\xc3"));
  assert_false(sb.failed);
  json_t *s = parse_escaped(sb.data, sb.len);
  assert_int_equal(json_string_length(s), 500 * 5);
  json_decref(s);
  strbuf_free(&sb);
}

/* Deterministic PRNG (splitmix64) for the random inputs below. */
static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Random byte strings, biased towards bytes that matter to UTF-8: every
 * output must parse; valid UTF-8 (as jansson judges it) must come back
 * byte for byte; invalid input must come back with U+FFFD in it. */
static void test_json_random_bytes_always_parse(void **state) {
  static const unsigned char interesting[] = {0x00, 0x1f, '"',  '\\', 0x7f, 0x80, 0xbf, 0xc0,
                                              0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4,
                                              0xf5, 0xff, 0xa0, 0x90, 0x8f, '\n', 'a'};
  uint64_t seed = 12345;
  unsigned char in[64];
  unsigned n_valid = 0, n_invalid = 0;
  (void)state;
  for (int iter = 0; iter < 20000; iter++) {
    /* Short strings often enough that a fair share is valid UTF-8. */
    size_t n = rng_next(&seed) % (iter % 2 ? sizeof in : 6);
    for (size_t i = 0; i < n; i++) {
      uint64_t r = rng_next(&seed);
      in[i] = r % 3 ? interesting[(r >> 8) % sizeof interesting] : (unsigned char)(r >> 16);
    }
    struct strbuf sb = escape(in, n);
    json_t *j = parse_escaped(sb.data, sb.len);
    json_t *as_is = json_stringn((const char *)in, n); /* NULL unless valid UTF-8 */
    if (as_is) {
      n_valid++;
      assert_int_equal(json_string_length(j), n);
      assert_memory_equal(json_string_value(j), in, n);
      json_decref(as_is);
    } else {
      n_invalid++;
      assert_non_null(memmem(json_string_value(j), json_string_length(j), FFFD, 3));
    }
    json_decref(j);
    strbuf_free(&sb);
  }
  assert_true(n_valid > 1000);
  assert_true(n_invalid > 1000);
}

/* Reference decoder for utf8_sequence_len(): decode, then check ranges. */
static size_t ref_utf8_len(const unsigned char *s, size_t avail) {
  unsigned c = s[0];
  size_t n;
  uint32_t cp, min;
  if (c < 0x80)
    return 1;
  if ((c & 0xE0) == 0xC0)
    n = 2, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0)
    n = 3, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0)
    n = 4, cp = c & 0x07, min = 0x10000;
  else
    return 0;
  if (avail < n)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

static void test_utf8_sequence_len(void **state) {
  unsigned char s[4];
  static const unsigned char tails[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff};
  (void)state;
  /* Every lead byte against every second byte, with several tails. */
  for (unsigned a = 0; a < 256; a++)
    for (unsigned b = 0; b < 256; b++)
      for (unsigned t = 0; t < sizeof tails; t++) {
        s[0] = (unsigned char)a;
        s[1] = (unsigned char)b;
        s[2] = s[3] = tails[t];
        for (size_t avail = 1; avail <= 4; avail++)
          if (utf8_sequence_len(s, avail) != ref_utf8_len(s, avail))
            fail_msg("utf8_sequence_len(%02x %02x %02x %02x, %zu) = %zu, want %zu", a, b, s[2], s[3],
                     avail, utf8_sequence_len(s, avail), ref_utf8_len(s, avail));
      }
  /* Every code point, encoded: full length, and 0 when cut short. */
  for (uint32_t cp = 0x80; cp <= 0x10FFFF; cp++) {
    size_t n;
    if (cp >= 0xD800 && cp <= 0xDFFF)
      continue;
    if (cp < 0x800) {
      s[0] = (unsigned char)(0xC0 | cp >> 6), s[1] = (unsigned char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
      s[0] = (unsigned char)(0xE0 | cp >> 12), s[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
      s[2] = (unsigned char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
      s[0] = (unsigned char)(0xF0 | cp >> 18), s[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
      s[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F)), s[3] = (unsigned char)(0x80 | (cp & 0x3F));
      n = 4;
    }
    if (utf8_sequence_len(s, n) != n)
      fail_msg("U+%04X not accepted", (unsigned)cp);
    if (utf8_sequence_len(s, n - 1) != 0)
      fail_msg("U+%04X accepted when cut short", (unsigned)cp);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_append_growth),
      cmocka_unit_test(test_printf_growth),
      cmocka_unit_test(test_put_integers),
      cmocka_unit_test(test_u64_to_dec),
      cmocka_unit_test(test_max_cap_sets_failed),
      cmocka_unit_test(test_max_cap_printf),
      cmocka_unit_test(test_max_cap_large_append),
      cmocka_unit_test(test_reserve_huge_fails),
      cmocka_unit_test(test_max_cap_json_string_that_fits),
      cmocka_unit_test(test_json_plain_and_empty),
      cmocka_unit_test(test_json_quotes_and_backslash),
      cmocka_unit_test(test_json_short_escapes),
      cmocka_unit_test(test_json_control_bytes),
      cmocka_unit_test(test_json_valid_utf8_kept),
      cmocka_unit_test(test_json_invalid_utf8_replaced),
      cmocka_unit_test(test_json_truncated_sequences),
      cmocka_unit_test(test_json_appends),
      cmocka_unit_test(test_json_random_bytes_always_parse),
      cmocka_unit_test(test_utf8_sequence_len),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
