"""Raw-socket HTTP/1.1 conformance suite (RFC 9112 framing, RFC 9110 semantics).

Table-driven: every Case is sent on a fresh connection and checked for
  - the final status (the status line must actually be received),
  - the interim 1xx responses, if any,
  - whether the server closes the connection afterwards:
      close      -> the response carries `Connection: close` and recv() == b''
                    follows it (no further bytes);
      kept open  -> no `Connection: close`, no stray bytes, and a second
                    request on the same socket is answered 200,
  - the JSON error body of every 4xx/5xx ({"error":{code,message,requestId}}),
and is followed by a liveness check on a fresh connection (GET /health/live
-> 200 and the process still running).

One server per class: DefaultLimits (built-in defaults), SmallLimits (tiny
limits and 1 s timeouts, for limit boundaries and timeouts) and
MaxConnections (max_connections: 5). One test method is generated per case
so each shows up on its own in the runner's output."""
import json
import re
import socket
import time
import unittest
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from harness import Server, parse_responses

IO_TIMEOUT = 2.0  # every expected response arrives in milliseconds

ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    501: "not_implemented",
    503: "service_unavailable",
    505: "http_version_not_supported",
}

LIVE_BODY = b'{"status":"up"}'
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def msg(*lines, body=b""):
    """Joins lines (str or bytes) with CRLF and ends the header section."""
    out = b"".join((ln.encode("latin-1") if isinstance(ln, str) else ln) + b"\r\n" for ln in lines)
    return out + b"\r\n" + body


def get(path="/health/live", *headers, version="HTTP/1.1", method="GET", host=True, body=b""):
    lines = [f"{method} {path} {version}"]
    if host:
        lines.append("Host: x")
    lines += list(headers)
    return msg(*lines, body=body)


def post(*headers, path="/health/live", body=b""):
    return get(path, *headers, method="POST", body=body)


def chunked(*chunks, trailers=()):
    """A chunked body; chunks are (size_text, data) or bytes."""
    out = b""
    for ch in chunks:
        if isinstance(ch, tuple):
            size, data = ch
            out += size.encode() + b"\r\n" + data + b"\r\n"
        else:
            out += b"%x\r\n" % len(ch) + ch + b"\r\n"
    out += b"0\r\n"
    for t in trailers:
        out += t.encode() + b"\r\n"
    return out + b"\r\n"


# ---- a tiny HTTP/1.1 response reader --------------------------------------

class Response:
    def __init__(self, status, reason, header_list, body, raw_head):
        self.status = status
        self.reason = reason
        self.header_list = header_list
        self.headers = {}
        for k, v in header_list:
            self.headers[k.lower()] = v
        self.body = body
        self.raw_head = raw_head

    def __repr__(self):
        return f"<{self.status} {self.reason} {self.header_list} {self.body[:200]!r}>"


STATUS_LINE = re.compile(rb"^HTTP/1\.1 (\d{3}) ([^\r\n]*)$")


class Client:
    """One raw connection with a receive buffer."""

    def __init__(self, port, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.closed = False
        self.reset = False

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline):
        """Reads once; False on EOF/reset or when the deadline passes."""
        if self.closed:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            self.closed = self.reset = True
            return False
        if not d:
            self.closed = True
            return False
        self.buf += d
        return True

    def read_response(self, head=False, timeout=IO_TIMEOUT):
        """One response (interim ones included) or None if none arrived completely."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                return None
        head_bytes, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head_bytes.split(b"\r\n")
        m = STATUS_LINE.match(lines[0])
        if not m:
            raise AssertionError(f"not a status line: {lines[0][:200]!r} (buffer {self.buf[:300]!r})")
        status = int(m.group(1))
        header_list = []
        for ln in lines[1:]:
            k, sep, v = ln.partition(b":")
            if not sep or not k or k != k.strip():
                raise AssertionError(f"malformed response header line {ln!r}")
            header_list.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        resp = Response(status, m.group(2).decode("latin-1"), header_list, b"", head_bytes)
        if status < 200 or status in (204, 304):
            n = 0
        else:
            cl = resp.headers.get("content-length")
            if cl is None or not cl.isdigit():
                raise AssertionError(f"response without a valid Content-Length: {resp!r}")
            n = 0 if head else int(cl)
        while len(rest) < n:
            if not self._fill(deadline):
                return None
            rest = self.buf.partition(b"\r\n\r\n")[2]
        resp.body = rest[:n]
        self.buf = rest[n:]
        return resp

    def read_final(self, head=False, timeout=IO_TIMEOUT):
        """(list of interim 1xx responses, final response or None)."""
        interim = []
        deadline = time.monotonic() + timeout
        while True:
            r = self.read_response(head=head, timeout=max(0.0, deadline - time.monotonic()))
            if r is None or r.status >= 200:
                return interim, r
            interim.append(r)

    def wait_closed(self, timeout=IO_TIMEOUT):
        """(closed by the server, bytes that came before the close)."""
        deadline = time.monotonic() + timeout
        start = len(self.buf)
        while self._fill(deadline):
            pass
        return self.closed, self.buf[start:]


# ---- the case table ---------------------------------------------------------

@dataclass
class Case:
    name: str
    request: object  # bytes, or a list of bytes sent as separate writes 50 ms apart
    status: int
    close: bool
    headers: Dict[str, str] = field(default_factory=dict)  # exact (case-insensitive name)
    interim: List[int] = field(default_factory=list)
    head: bool = False  # response to a HEAD: no body whatever Content-Length says
    check: Optional[Callable] = None  # check(testcase, response)
    # A known limitation, not a pass: the test still runs and is reported as
    # an expected failure; if it starts passing, unittest reports that too.
    known_limitation: str = ""
    note: str = ""


def check_live_body(t, r):
    t.assertEqual(r.body, LIVE_BODY)
    t.assertEqual(r.headers.get("content-length"), "15")


def check_request_id(expected):
    def chk(t, r):
        t.assertEqual(r.headers.get("x-request-id"), expected)
    return chk


def check_request_id_replaced(bad):
    def chk(t, r):
        rid = r.headers.get("x-request-id")
        t.assertIsNotNone(rid, "no X-Request-Id in the response")
        t.assertNotEqual(rid, bad)
        t.assertRegex(rid, REQUEST_ID_RE)
    return chk


def check_content_type(prefix):
    def chk(t, r):
        t.assertTrue(r.headers.get("content-type", "").startswith(prefix), r.headers)
    return chk


def check_no_keepalive_header(t, r):
    t.assertNotIn("keep-alive", r.headers.get("connection", "").lower())


ALLOW = {"allow": "GET, HEAD"}
RID_OK = "abc-123_X.y"
RID_128 = "a" * 128
RID_129 = "b" * 129

DEFAULT_CASES = [
    # --- well-formed requests and routing (kept open) -------------------
    Case("get_live", get(), 200, False, check=check_live_body),
    Case("get_ready", get("/health/ready"), 200, False, check=check_content_type("application/json")),
    Case("get_metrics", get("/metrics"), 200, False, check=check_content_type("text/plain")),
    Case("get_query_string", get("/health/live?x=1&y=2"), 200, False, check=check_live_body),
    Case("head_live", get(method="HEAD"), 200, False, head=True, headers={"content-length": "15"}),
    Case("head_unknown_404", get("/nope", method="HEAD"), 404, False, head=True),
    Case("unknown_path_404", get("/nope"), 404, False),
    Case("trailing_slash_404", get("/health/live/"), 404, False),
    Case("delete_405_allow", get(method="DELETE"), 405, False, headers=ALLOW),
    Case("put_metrics_405_allow", get("/metrics", "Content-Length: 0", method="PUT"), 405, False,
         headers=ALLOW),
    Case("post_405_content_length_body", post("Content-Length: 5", body=b"hello"), 405, False,
         headers=ALLOW),
    Case("get_content_length_0", get("/health/live", "Content-Length: 0"), 200, False),
    Case("content_length_leading_zeros", post("Content-Length: 005", body=b"hello"), 405, False),
    Case("content_length_ows", post("Content-Length:   5  ", body=b"hello"), 405, False),
    Case("absolute_form", msg("GET http://x/health/live HTTP/1.1", "Host: x"), 200, False,
         check=check_live_body),
    Case("leading_empty_line", b"\r\n" + get(), 200, False, check=check_live_body),
    # RFC 9110 7.8: a server may ignore Upgrade; the connection stays HTTP/1.1
    Case("upgrade_websocket_ignored", get("/health/live", "Connection: Upgrade", "Upgrade: websocket"),
         200, False, check=check_live_body),
    Case("upgrade_h2c_ignored", get("/health/live", "Connection: Upgrade, HTTP2-Settings",
                                    "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"),
         200, False, check=check_live_body),
    Case("connect_authority_form", msg("CONNECT example.com:443 HTTP/1.1", "Host: example.com:443"),
         400, True),
    Case("connect_with_chunked", msg("CONNECT example.com:443 HTTP/1.1", "Host: example.com:443",
                                     "Transfer-Encoding: chunked"), 400, True,
         note="a CONNECT's message ends at its head: no chunk-size line is awaited"),
    Case("http2_preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, True,
         check=lambda t, r: t.assertIn("HTTP/2", json.loads(r.body)["error"]["message"])),
    Case("htab_in_value", get("/health/live", "X-A: a\tb"), 200, False),
    Case("obs_text_in_value", get("/health/live", b"X-A: caf\xe9"), 200, False,
         note="RFC 9110 5.5: field-vchar includes obs-text (%x80-FF)"),
    Case("empty_host_value", msg("GET /health/live HTTP/1.1", "Host:"), 200, False),
    Case("connection_keep_alive_http11", get("/health/live", "Connection: keep-alive"), 200, False),
    Case("http10_no_host_closes", get(version="HTTP/1.0", host=False), 200, True,
         check=check_no_keepalive_header),
    Case("http10_keep_alive", get("/health/live", "Connection: keep-alive", version="HTTP/1.0"), 200,
         False, headers={"connection": "keep-alive"}),
    Case("http10_keep_alive_404", get("/nope", "Connection: keep-alive", version="HTTP/1.0"), 404,
         False, headers={"connection": "keep-alive"}),
    Case("http10_connection_close", get("/health/live", "Connection: close", version="HTTP/1.0"), 200,
         True),
    Case("http11_connection_close", get("/health/live", "Connection: close"), 200, True,
         check=check_live_body),
    Case("http11_connection_close_404", get("/nope", "Connection: close"), 404, True),
    Case("asterisk_form_with_get", msg("GET * HTTP/1.1", "Host: x"), 400, False,
         note="RFC 9112 3.2.4: asterisk-form only for OPTIONS; framing is fine so the "
              "connection may stay open"),
    # --- chunked request bodies that are well framed (kept open) --------
    Case("te_chunked", post("Transfer-Encoding: chunked", body=chunked(b"hello")), 405, False),
    Case("te_chunked_case_insensitive", post("Transfer-Encoding: Chunked", body=chunked(b"hello")),
         405, False, note="RFC 9112 7: transfer-coding names are case-insensitive"),
    Case("chunk_extension_single", post("Transfer-Encoding: chunked",
                                        body=chunked(("5;name=value", b"hello"))), 405, False),
    Case("chunk_extension_no_value", post("Transfer-Encoding: chunked",
                                          body=chunked(("5;flag", b"hello"))), 405, False),
    Case("chunk_extensions_multiple", post("Transfer-Encoding: chunked",
                                           body=chunked(("5;name=value;flag", b"hello"),
                                                        ("3;a=b;c=d", b"abc"))), 405, False,
         note="RFC 9112 7.1.1: chunk-ext = *( BWS \";\" BWS chunk-ext-name [ BWS \"=\" BWS "
              "chunk-ext-val ] ); a recipient MUST ignore unrecognized extensions. llhttp 8.1 "
              "(Debian 12) refuses a second one: src/http/chunkline.c reduces the line first"),
    Case("chunk_extension_whitespace", post("Transfer-Encoding: chunked",
                                            body=chunked(("5 ; a = 1 ;b", b"hello"))), 405, False,
         note="BWS around ; and = (RFC 9112 7.1.1)"),
    Case("chunk_extension_on_last_chunk", post("Transfer-Encoding: chunked",
                                               body=b"5\r\nhello\r\n0\t;last=1;b\r\n\r\n"), 405, False),
    Case("chunk_extension_no_name", post("Transfer-Encoding: chunked", body=chunked(("5;", b"hello"))),
         400, True),
    Case("chunk_extension_empty_value", post("Transfer-Encoding: chunked",
                                             body=chunked(("5;a=", b"hello"))), 400, True),
    Case("chunk_extension_open_quote", post("Transfer-Encoding: chunked",
                                            body=chunked(('5;a="x', b"hello"))), 400, True),
    Case("chunk_extension_quoted", post("Transfer-Encoding: chunked",
                                        body=chunked(('5;name="a b"', b"hello"))), 405, False),
    Case("chunk_trailers", post("Transfer-Encoding: chunked",
                                body=chunked(b"hello", trailers=["X-Trailer: v", "X-T2: w"])),
         405, False),
    Case("chunk_size_upper_hex_leading_zeros",
         post("Transfer-Encoding: chunked", body=chunked(("00A", b"0123456789"))), 405, False),
    Case("chunk_multiple", post("Transfer-Encoding: chunked",
                                body=chunked(b"a", b"bc", b"d" * 300)), 405, False),
    # --- X-Request-Id -----------------------------------------------------
    Case("request_id_valid_echoed", get("/health/live", f"X-Request-Id: {RID_OK}"), 200, False,
         check=check_request_id(RID_OK)),
    Case("request_id_valid_in_error_body", get("/nope", f"X-Request-Id: {RID_OK}"), 404, False,
         check=check_request_id(RID_OK)),
    Case("request_id_128_kept", get("/health/live", f"X-Request-Id: {RID_128}"), 200, False,
         check=check_request_id(RID_128)),
    Case("request_id_129_replaced", get("/health/live", f"X-Request-Id: {RID_129}"), 200, False,
         check=check_request_id_replaced(RID_129)),
    Case("request_id_invalid_replaced", get("/health/live", "X-Request-Id: bad id!"), 200, False,
         check=check_request_id_replaced("bad id!")),
    Case("request_id_generated", get(), 200, False, check=check_request_id_replaced("")),
    # --- Expect -----------------------------------------------------------
    Case("expect_100_with_body", post("Expect: 100-continue", "Content-Length: 5", body=b"hello"),
         405, False, interim=[100]),
    Case("expect_100_without_body", get("/health/live", "Expect: 100-continue"), 200, False),
    Case("expect_100_http10_ignored",
         post("Expect: 100-continue", "Content-Length: 5", body=b"hello").replace(b"HTTP/1.1",
                                                                                 b"HTTP/1.0"),
         405, True, note="RFC 9110 10.1.1: MUST ignore 100-continue in an HTTP/1.0 request"),
    Case("expect_other_417", get("/health/live", "Expect: something-else"), 417, True),
    # --- Content-Length framing errors ------------------------------------
    Case("cl_and_te", post("Content-Length: 5", "Transfer-Encoding: chunked", body=chunked(b"hello")),
         400, True),
    Case("te_and_cl", post("Transfer-Encoding: chunked", "Content-Length: 5", body=chunked(b"hello")),
         400, True),
    Case("cl_duplicate_same", post("Content-Length: 5", "Content-Length: 5", body=b"hello"), 400, True),
    Case("cl_duplicate_different", post("Content-Length: 5", "Content-Length: 6", body=b"hello!"),
         400, True),
    Case("cl_plus_sign", post("Content-Length: +5", body=b"hello"), 400, True),
    Case("cl_hex", post("Content-Length: 0x5", body=b"hello"), 400, True),
    Case("cl_negative", post("Content-Length: -1", body=b"hello"), 400, True),
    Case("cl_empty", post("Content-Length:", body=b"hello"), 400, True),
    Case("cl_space_separated", post("Content-Length: 5 5", body=b"hello"), 400, True),
    Case("cl_comma_list", post("Content-Length: 5, 5", body=b"hello"), 400, True),
    Case("cl_overflow", post("Content-Length: 99999999999999999999999", body=b"hello"), 400, True),
    Case("cl_alpha", post("Content-Length: five", body=b"hello"), 400, True),
    # --- Transfer-Encoding errors -----------------------------------------
    Case("te_gzip", post("Transfer-Encoding: gzip", body=b"hello"), 400, True),
    Case("te_chunked_then_gzip", post("Transfer-Encoding: chunked, gzip", body=chunked(b"hello")),
         400, True),
    Case("te_gzip_then_chunked_501", post("Transfer-Encoding: gzip, chunked", body=chunked(b"hello")),
         501, True),
    Case("te_identity", post("Transfer-Encoding: identity", body=b"hello"), 400, True),
    Case("te_in_http10", post("Transfer-Encoding: chunked", body=chunked(b"hello")).replace(
        b"HTTP/1.1", b"HTTP/1.0"), 400, True),
    Case("te_duplicate_headers", post("Transfer-Encoding: chunked", "Transfer-Encoding: chunked",
                                      body=chunked(b"hello")), 400, True),
    Case("te_chunked_twice_in_list", post("Transfer-Encoding: chunked, chunked",
                                          body=chunked(b"hello")), 400, True),
    # --- chunk framing errors ---------------------------------------------
    Case("chunk_size_non_hex", post("Transfer-Encoding: chunked", body=b"zz\r\nhello\r\n0\r\n\r\n"),
         400, True),
    Case("chunk_size_overflow", post("Transfer-Encoding: chunked",
                                     body=b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case("chunk_size_negative", post("Transfer-Encoding: chunked", body=b"-5\r\nhello\r\n0\r\n\r\n"),
         400, True),
    Case("chunk_missing_crlf_after_data",
         post("Transfer-Encoding: chunked", body=b"5\r\nhelloX0\r\n\r\n"), 400, True),
    Case("chunk_longer_than_declared",
         post("Transfer-Encoding: chunked", body=b"3\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case("chunk_size_empty", post("Transfer-Encoding: chunked", body=b"\r\nhello\r\n0\r\n\r\n"),
         400, True),
    # --- header field syntax errors ---------------------------------------
    Case("obs_fold_sp", get("/health/live", "X-A: a", " b"), 400, True),
    Case("obs_fold_htab", get("/health/live", "X-A: a", "\tb"), 400, True),
    Case("obs_fold_after_empty_host", msg("GET /health/live HTTP/1.1", "Host:", " x"), 400, True),
    Case("obs_fold_after_empty_value", get("/health/live", "X-Request-Id:", " folded"), 400, True),
    Case("obs_fold_after_trailing_space", get("/health/live", "X-A: ", "\tb"), 400, True),
    Case("space_before_colon", msg("GET /health/live HTTP/1.1", "Host : x"), 400, True),
    Case("tab_before_colon", get("/health/live", "X-A\t: a"), 400, True),
    Case("bare_cr_in_value", get("/health/live", b"X-A: a\rb"), 400, True),
    Case("cr_before_crlf_in_value", get("/health/live", b"X-A: a\r"), 400, True),
    Case("bare_cr_line_ending", b"GET /health/live HTTP/1.1\rHost: x\r\n\r\n", 400, True),
    Case("bare_cr_header_line_ending", b"GET /health/live HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400,
         True),
    Case("bare_lf_everywhere", b"GET /health/live HTTP/1.1\nHost: x\n\n", 400, True),
    Case("bare_lf_in_headers", b"GET /health/live HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400, True),
    Case("nul_in_value", get("/health/live", b"X-A: a\x00b"), 400, True),
    Case("del_in_value", get("/health/live", b"X-A: a\x7fb"), 400, True),
    Case("ctl_in_value", get("/health/live", b"X-A: a\x01b"), 400, True),
    Case("empty_header_name", get("/health/live", ": value"), 400, True),
    Case("header_without_colon", get("/health/live", "NoColonHere"), 400, True),
    Case("invalid_char_in_name", get("/health/live", "X(A: b"), 400, True),
    Case("space_in_name", get("/health/live", "X A: b"), 400, True),
    Case("missing_host_http11", get(host=False), 400, True),
    Case("duplicate_host", get("/health/live", "Host: y"), 400, True),
    Case("duplicate_host_same_value", get("/health/live", "Host: x"), 400, True),
    # --- header section split across reads (TCP segments) ---------------------
    Case("split_fold_after_empty_value", [get()[:-2] + b"X-A:\r\n", b" b\r\n\r\n"], 400, True),
    Case("split_fold_after_empty_value_ws", [get()[:-2] + b"X-A:\r\n ", b" b\r\n\r\n"], 400, True),
    Case("split_fold_at_crlf", [get()[:-2] + b"X-A: a\r\n", b" b\r\n\r\n"], 400, True),
    Case("split_fold_before_crlf", [get()[:-2] + b"X-A: a", b"\r\n\tb\r\n\r\n"], 400, True),
    Case("split_value_in_the_middle", [get()[:-2] + b"X-Request-Id: ab", b"cd\r\n\r\n"], 200, False,
         check=check_request_id("abcd")),
    Case("split_after_colon", [get()[:-2] + b"X-Request-Id:", b" abcd\r\n\r\n"], 200, False,
         check=check_request_id("abcd")),
    Case("split_inside_crlf", [get()[:-2] + b"X-A: a\r", b"\nX-Request-Id: s1\r\n\r\n"], 200, False,
         check=check_request_id("s1")),
    # --- request line errors ------------------------------------------------
    Case("version_http20_505", get(version="HTTP/2.0"), 505, True),
    Case("version_http12_505", get(version="HTTP/1.2"), 505, True,
         note="see report: RFC 9110 2.5 says SHOULD process as HTTP/1.1"),
    Case("version_http09_505", b"GET /health/live\r\n\r\n", 505, True),
    Case("version_lowercase_name", get(version="http/1.1"), 400, True),
    Case("method_invalid_token", get(method="G(T"), 400, True),
    Case("method_lowercase", get(method="get"), 400, True),
    Case("target_space", msg("GET /health/ live HTTP/1.1", "Host: x"), 400, True),
    Case("target_control_char", msg(b"GET /health/\x01live HTTP/1.1", "Host: x"), 400, True),
    Case("target_non_ascii", msg(b"GET /health/\xc3\xa9 HTTP/1.1", "Host: x"), 400, True),
    Case("target_del", msg(b"GET /health/\x7flive HTTP/1.1", "Host: x"), 400, True),
    Case("double_space_in_request_line_lenient", msg("GET  /health/live  HTTP/1.1", "Host: x"), 200,
         False, note="RFC 9112 3: recipients MAY parse on whitespace-delimited word boundaries; "
                     "pins the current (lenient) choice"),
    Case("trailing_space_after_version", msg("GET /health/live HTTP/1.1 ", "Host: x"), 400, True),
    # --- default limits -------------------------------------------------------
    Case("request_line_over_8k_414", get("/" + "a" * 9000), 414, True),
    Case("header_section_over_32k_431", get("/health/live", "X-Big: " + "v" * (33 * 1024)), 431, True),
    Case("header_section_many_fields_over_32k_431",
         get("/health/live", *[f"X-F{i}: " + "v" * 500 for i in range(70)]), 431, True),
    Case("headers_100_fields_ok", get("/health/live", *[f"X-F{i}: v" for i in range(99)]), 200,
         False),
    Case("headers_101_fields_431", get("/health/live", *[f"X-F{i}: v" for i in range(100)]), 431,
         True),
    Case("content_length_over_1m_413", post(f"Content-Length: {1024 * 1024 + 1}"), 413, True),
    Case("content_length_exactly_1m_ok", post(f"Content-Length: {1024 * 1024}",
                                              body=b"x" * (1024 * 1024)), 405, False),
]

SMALL_CONFIG = """http:
  max_request_line: 256
  max_header_bytes: 1k
  max_headers: 10
  max_body: 1k
  header_timeout: 1s
  body_timeout: 1s
  idle_timeout: 1s
"""

SMALL_CASES = [
    Case("small_request_line_under_limit", get("/health/live?" + "q" * 200), 200, False),
    Case("small_request_line_over_limit_414", get("/health/live?" + "q" * 300), 414, True),
    Case("small_10_fields_ok", get("/health/live", *[f"X-F{i}: v" for i in range(9)]), 200, False),
    Case("small_11_fields_431", get("/health/live", *[f"X-F{i}: v" for i in range(10)]), 431, True),
    Case("small_header_bytes_431", get("/health/live", "X-Big: " + "v" * 1100), 431, True),
    Case("small_body_exactly_max_ok", post("Content-Length: 1024", body=b"x" * 1024), 405, False),
    Case("small_body_over_max_413_headers_only", post("Content-Length: 1025"), 413, True),
    Case("small_chunked_over_max_413",
         post("Transfer-Encoding: chunked", body=chunked(b"x" * 1280)), 413, True),
    Case("small_chunked_many_chunks_over_max_413",
         post("Transfer-Encoding: chunked", body=chunked(*[b"y" * 300] * 4)), 413, True),
    Case("small_chunked_exactly_max_ok",
         post("Transfer-Encoding: chunked", body=chunked(*[b"y" * 256] * 4)), 405, False),
]


# ---- test classes -------------------------------------------------------------

class ConformanceBase(unittest.TestCase):
    CONFIG = None
    server = None
    _probe = 0

    @classmethod
    def setUpClass(cls):
        cls.server = Server(config_text=cls.CONFIG).start()

    @classmethod
    def tearDownClass(cls):
        if not cls.server:
            return
        rc = cls.server.stop()
        err = cls.server.stderr()
        # reported as an error of the class if the server died badly or a
        # sanitizer (STRATA_BIN=build/san/strata) complained
        if rc != 0 or "AddressSanitizer" in err or "runtime error:" in err:
            raise AssertionError(f"strata exited {rc}; stderr: {err[-3000:]}")

    # -- helpers --
    def client(self, timeout=IO_TIMEOUT):
        return Client(self.server.port, timeout)

    def assert_alive(self):
        self.assertIsNone(self.server.proc.poll(), "strata exited: " + self.server.stderr()[-2000:])
        c = self.client()
        try:
            c.send(get("/health/live", "Connection: close"))
            r = c.read_response()
            self.assertIsNotNone(r, f"liveness check: no response (got {c.buf!r})")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, LIVE_BODY)
        finally:
            c.close()

    def assert_error_body(self, r):
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"), r)
        try:
            doc = json.loads(r.body)
        except ValueError:
            self.fail(f"error body is not JSON: {r.body!r}")
        err = doc.get("error")
        self.assertIsInstance(err, dict, doc)
        if r.status in ERROR_CODES:
            self.assertEqual(err.get("code"), ERROR_CODES[r.status], doc)
        self.assertIsInstance(err.get("message"), str)
        self.assertTrue(err["message"])
        self.assertTrue(err.get("requestId"), doc)
        self.assertEqual(err["requestId"], r.headers.get("x-request-id"), doc)

    def assert_kept_open(self, c):
        """The connection still answers a second request."""
        ConformanceBase._probe += 1
        rid = f"probe-{ConformanceBase._probe}"
        try:
            c.send(get("/health/live", f"X-Request-Id: {rid}"))
        except OSError as e:
            self.fail(f"connection not kept open: send failed ({e})")
        r = c.read_response()
        self.assertIsNotNone(r, f"connection not kept open: no answer to a second request "
                                f"(closed={c.closed}, got {c.buf!r})")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-request-id"), rid)
        self.assertEqual(r.body, LIVE_BODY)

    def assert_closes(self, c, timeout=IO_TIMEOUT):
        closed, extra = c.wait_closed(timeout)
        self.assertTrue(closed, f"server did not close the connection (got {extra!r})")
        self.assertEqual(extra, b"", "bytes after the final response")

    def run_case(self, case):
        c = self.client()
        try:
            pieces = case.request if isinstance(case.request, list) else [case.request]
            try:
                for i, piece in enumerate(pieces):
                    if i:
                        time.sleep(0.05)  # separate reads on the server side
                    c.send(piece)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer and close before reading all of it
            interim, r = c.read_final(head=case.head)
            self.assertIsNotNone(r, f"no complete response: got {c.buf[:500]!r} (closed={c.closed})")
            self.assertEqual(r.status, case.status, f"{case.name}: {r!r}")
            self.assertEqual([i.status for i in interim], case.interim)
            for k, v in case.headers.items():
                self.assertEqual(r.headers.get(k.lower()), v, f"header {k}: {r!r}")
            if r.status >= 400 and not case.head:
                self.assert_error_body(r)
            if case.head:
                self.assertEqual(r.body, b"")
            connection = r.headers.get("connection", "").lower()
            if case.close:
                self.assertEqual(connection, "close", f"no Connection: close on {r!r}")
                self.assert_closes(c)
            else:
                self.assertNotEqual(connection, "close", r)
                self.assertFalse(c.closed, "server closed the connection")
                self.assert_kept_open(c)
            if case.check:
                case.check(self, r)
        finally:
            c.close()
        self.assert_alive()


def add_cases(cls, cases):
    names = set()
    for i, case in enumerate(cases):
        assert case.name not in names, case.name
        names.add(case.name)

        def test(self, case=case):
            self.run_case(case)
        if case.known_limitation:
            test = unittest.expectedFailure(test)
        test.__name__ = f"test_{i:03d}_{case.name}"
        test.__doc__ = None
        setattr(cls, test.__name__, test)
    return cls


class DefaultLimits(ConformanceBase):
    """Built-in limits: 8 KiB request line, 32 KiB / 100 header fields, 1 MiB body."""

    def test_head_has_no_body_sequential(self):
        c = self.client()
        try:
            c.send(get(method="HEAD"))
            deadline = time.monotonic() + IO_TIMEOUT
            while b"\r\n\r\n" not in c.buf:
                self.assertTrue(c._fill(deadline), f"no HEAD response: {c.buf!r}")
            head, _, rest = c.buf.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
            self.assertIn(b"\r\nContent-Length: 15", head)
            # wait a little: a stray body would show up now
            c._fill(time.monotonic() + 0.2)
            self.assertEqual(c.buf.partition(b"\r\n\r\n")[2], b"", "HEAD response carried a body")
            c.buf = b""
            c.send(get())
            c._fill(time.monotonic() + IO_TIMEOUT)
            self.assertTrue(c.buf.startswith(b"HTTP/1.1 200 "), c.buf[:100])
            r = c.read_response()
            self.assertEqual(r.body, LIVE_BODY)
        finally:
            c.close()
        self.assert_alive()

    def test_head_has_no_body_pipelined(self):
        c = self.client()
        try:
            c.send(get("/health/live", "X-Request-Id: h1", method="HEAD") + get("/health/live", "X-Request-Id: g2"))
            r1 = c.read_response(head=True)
            self.assertIsNotNone(r1)
            self.assertEqual((r1.status, r1.headers.get("x-request-id")), (200, "h1"))
            self.assertEqual(r1.headers.get("content-length"), "15")
            r2 = c.read_response()  # would fail on the status line if HEAD sent a body
            self.assertIsNotNone(r2)
            self.assertEqual((r2.status, r2.headers.get("x-request-id")), (200, "g2"))
            self.assertEqual(r2.body, LIVE_BODY)
        finally:
            c.close()
        self.assert_alive()

    def test_options_asterisk_is_about_the_server(self):
        # RFC 9110 9.3.7: OPTIONS * names no resource; any other method with
        # "*" is a malformed target
        c = self.client()
        try:
            c.send(get("*", method="OPTIONS"))
            r = c.read_response()
            self.assertIsNotNone(r, c.buf)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers.get("content-length"), "0")
            self.assertIn("OPTIONS", r.headers.get("allow", ""))
            self.assert_kept_open(c)
            c.send(get("*"))
            r = c.read_response()
            self.assertEqual(r.status, 400, r)
        finally:
            c.close()
        self.assert_alive()

    def test_expect_100_continue_interim_before_body(self):
        """Headers only: the server must send 100 Continue before it gets the body."""
        c = self.client()
        try:
            c.send(post("Expect: 100-continue", "Content-Length: 5", "X-Request-Id: e1"))
            r = c.read_response()
            self.assertIsNotNone(r, f"no 100 Continue: {c.buf!r}")
            self.assertEqual(r.status, 100)
            self.assertEqual(r.raw_head, b"HTTP/1.1 100 Continue")
            c.send(b"hello")
            r = c.read_response()
            self.assertIsNotNone(r, f"no final response: {c.buf!r}")
            self.assertEqual(r.status, 405)
            self.assertEqual(r.headers.get("x-request-id"), "e1")
            self.assert_error_body(r)
            self.assert_kept_open(c)
        finally:
            c.close()
        self.assert_alive()

    def test_pipelining_five_in_order(self):
        reqs = (get("/health/live", "X-Request-Id: p1")
                + get("/nope", "X-Request-Id: p2")
                + post("Content-Length: 3", "X-Request-Id: p3", body=b"abc")
                + get("/health/ready", "X-Request-Id: p4")
                + post("Transfer-Encoding: chunked", "X-Request-Id: p5", body=chunked(b"xyz")))
        c = self.client()
        try:
            c.send(reqs)
            got = []
            for _ in range(5):
                r = c.read_response()
                self.assertIsNotNone(r, f"only {len(got)} responses: {c.buf!r}")
                got.append((r.headers.get("x-request-id"), r.status))
            self.assertEqual(got, [("p1", 200), ("p2", 404), ("p3", 405), ("p4", 200), ("p5", 405)])
            self.assertEqual(c.buf, b"")
            self.assert_kept_open(c)
        finally:
            c.close()
        self.assert_alive()

    def test_pipelining_three_parse_responses(self):
        """The same with harness.parse_responses over the raw stream."""
        reqs = b"".join(get("/health/live", f"X-Request-Id: q{i}") for i in (1, 2, 3))
        reqs += get("/health/live", "X-Request-Id: q4", "Connection: close")
        data, closed = self.server.raw(reqs, timeout=IO_TIMEOUT)
        self.assertTrue(closed)
        rs = parse_responses(data)
        self.assertEqual([(s, h.get("x-request-id")) for s, h, _ in rs],
                         [(200, "q1"), (200, "q2"), (200, "q3"), (200, "q4")])
        self.assertTrue(all(b == LIVE_BODY for _, _, b in rs))
        self.assertEqual(rs[3][1].get("connection"), "close")
        self.assert_alive()

    def test_pipelining_second_malformed(self):
        reqs = (get("/health/live", "X-Request-Id: m1")
                + post("Content-Length: +5", "X-Request-Id: m2", body=b"hello")
                + get("/health/live", "X-Request-Id: m3"))
        c = self.client()
        try:
            c.send(reqs)
            r1 = c.read_response()
            self.assertIsNotNone(r1, c.buf)
            self.assertEqual((r1.status, r1.headers.get("x-request-id")), (200, "m1"))
            self.assertNotEqual(r1.headers.get("connection", "").lower(), "close")
            r2 = c.read_response()
            self.assertIsNotNone(r2, c.buf)
            self.assertEqual(r2.status, 400, r2)
            self.assertEqual(r2.headers.get("connection", "").lower(), "close")
            self.assert_error_body(r2)
            self.assert_closes(c)  # and m3 is never answered
        finally:
            c.close()
        self.assert_alive()

    def test_keep_alive_20_sequential(self):
        c = self.client()
        try:
            for i in range(20):
                path = "/health/live" if i % 4 else "/nope"
                c.send(get(path, f"X-Request-Id: k{i}"))
                r = c.read_response()
                self.assertIsNotNone(r, f"request {i}: no response (closed={c.closed})")
                self.assertEqual(r.status, 200 if i % 4 else 404)
                self.assertEqual(r.headers.get("x-request-id"), f"k{i}")
                self.assertNotEqual(r.headers.get("connection", "").lower(), "close")
            self.assertFalse(c.closed)
        finally:
            c.close()
        self.assert_alive()

    def test_413_answered_without_waiting_for_body(self):
        c = self.client()
        try:
            t0 = time.monotonic()
            c.send(post(f"Content-Length: {2 * 1024 * 1024}", "X-Request-Id: big"))
            r = c.read_response(timeout=1.0)
            elapsed = time.monotonic() - t0
            self.assertIsNotNone(r, f"no 413 within 1 s (got {c.buf!r})")
            self.assertEqual(r.status, 413)
            self.assertLess(elapsed, 1.0)
            self.assertEqual(r.headers.get("connection", "").lower(), "close")
            self.assert_error_body(r)
            self.assert_closes(c)
        finally:
            c.close()
        self.assert_alive()

    def test_request_split_across_many_writes(self):
        """Byte-by-byte delivery must not be mistaken for obs-fold or bad framing."""
        data = post("X-A: some value", "Content-Length: 5", "X-Request-Id: split", body=b"hello")
        c = self.client()
        try:
            for i in range(len(data)):
                c.send(data[i:i + 1])
                time.sleep(0.001)
            r = c.read_response()
            self.assertIsNotNone(r, c.buf)
            self.assertEqual((r.status, r.headers.get("x-request-id")), (405, "split"))
            self.assert_kept_open(c)
        finally:
            c.close()
        self.assert_alive()


class SmallLimits(ConformanceBase):
    """Tiny limits and 1 s header/body/idle timeouts."""
    CONFIG = SMALL_CONFIG

    def _expect_408(self, c, t0):
        r = c.read_response(timeout=3.0)
        elapsed = time.monotonic() - t0
        self.assertIsNotNone(r, f"no 408 (closed={c.closed}, got {c.buf!r})")
        self.assertEqual(r.status, 408, r)
        self.assertGreaterEqual(elapsed, 0.8, "answered before the timeout")
        self.assertLess(elapsed, 2.5)
        self.assertEqual(r.headers.get("connection", "").lower(), "close")
        self.assert_error_body(r)
        self.assert_closes(c)

    def test_header_timeout_partial_request_line(self):
        c = self.client(timeout=4.0)
        try:
            t0 = time.monotonic()
            c.send(b"GET /health/li")
            self._expect_408(c, t0)
        finally:
            c.close()
        self.assert_alive()

    def test_header_timeout_partial_headers(self):
        c = self.client(timeout=4.0)
        try:
            t0 = time.monotonic()
            c.send(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-A: b")
            self._expect_408(c, t0)
        finally:
            c.close()
        self.assert_alive()

    def test_header_timeout_not_reset_by_trickle(self):
        """Slowloris: a byte every 250 ms must not extend the header timeout."""
        c = self.client(timeout=4.0)
        try:
            t0 = time.monotonic()
            data = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
            i = 0
            while time.monotonic() - t0 < 2.5 and not c.buf and not c.closed:
                try:
                    c.send(data[i:i + 1])
                except OSError:
                    break
                i += 1
                c._fill(time.monotonic() + 0.25)
            elapsed = time.monotonic() - t0
            r = c.read_response(timeout=1.0)
            self.assertIsNotNone(r, f"no 408 to a trickling client (closed={c.closed}, {c.buf!r})")
            self.assertEqual(r.status, 408)
            self.assertLess(elapsed, 2.0, "header timeout extended by trickled bytes")
            self.assert_closes(c)
        finally:
            c.close()
        self.assert_alive()

    def test_header_timeout_second_request_on_keepalive(self):
        """A partial second request on a kept-alive connection also gets 408."""
        c = self.client(timeout=4.0)
        try:
            c.send(get())
            r = c.read_response()
            self.assertIsNotNone(r)
            self.assertEqual(r.status, 200)
            t0 = time.monotonic()
            c.send(b"GET /health/live HTTP/1.1\r\nHo")
            self._expect_408(c, t0)
        finally:
            c.close()
        self.assert_alive()

    def test_silent_close_when_nothing_sent(self):
        c = self.client(timeout=4.0)
        try:
            t0 = time.monotonic()
            closed, data = c.wait_closed(timeout=3.0)
            elapsed = time.monotonic() - t0
            self.assertTrue(closed, "idle fresh connection not closed after header_timeout")
            self.assertEqual(data, b"", "bytes sent on a silent close")
            self.assertGreaterEqual(elapsed, 0.8)
            self.assertLess(elapsed, 2.5)
        finally:
            c.close()
        self.assert_alive()

    def test_idle_keepalive_closed_silently(self):
        c = self.client(timeout=4.0)
        try:
            c.send(get())
            r = c.read_response()
            self.assertIsNotNone(r)
            self.assertEqual(r.status, 200)
            self.assertNotEqual(r.headers.get("connection", "").lower(), "close")
            t0 = time.monotonic()
            closed, data = c.wait_closed(timeout=3.0)
            elapsed = time.monotonic() - t0
            self.assertTrue(closed, "idle keep-alive connection not closed after idle_timeout")
            self.assertEqual(data, b"", "bytes sent when closing an idle connection")
            self.assertGreaterEqual(elapsed, 0.8)
            self.assertLess(elapsed, 2.5)
        finally:
            c.close()
        self.assert_alive()

    def test_idle_timer_restarts_after_each_request(self):
        c = self.client(timeout=4.0)
        try:
            for i in range(3):
                c.send(get("/health/live", f"X-Request-Id: idle{i}"))
                r = c.read_response()
                self.assertIsNotNone(r, f"request {i} after {0.6 * i:.1f}s idle: closed={c.closed}")
                self.assertEqual((r.status, r.headers.get("x-request-id")), (200, f"idle{i}"))
                time.sleep(0.6)
        finally:
            c.close()
        self.assert_alive()

    def test_body_timeout_content_length(self):
        c = self.client(timeout=4.0)
        try:
            c.send(post("Content-Length: 10", body=b"abc"))
            t0 = time.monotonic()
            self._expect_408(c, t0)
        finally:
            c.close()
        self.assert_alive()

    def test_body_timeout_chunked(self):
        c = self.client(timeout=4.0)
        try:
            c.send(post("Transfer-Encoding: chunked", body=b"a\r\nabc"))
            t0 = time.monotonic()
            self._expect_408(c, t0)
        finally:
            c.close()
        self.assert_alive()


class MaxConnections(ConformanceBase):
    CONFIG = "http:\n  max_connections: 5\n"

    def test_sixth_connection_gets_503_then_recovers(self):
        time.sleep(0.2)  # let the server see the startup probe's close
        held = []
        try:
            for i in range(5):
                c = self.client()
                held.append(c)
                c.send(get("/health/live", f"X-Request-Id: held{i}"))
                r = c.read_response()
                self.assertIsNotNone(r, f"connection {i + 1} of 5 not served")
                self.assertEqual(r.status, 200)
                self.assertNotEqual(r.headers.get("connection", "").lower(), "close")
            sixth = self.client()
            try:
                r = sixth.read_response()
                self.assertIsNotNone(r, f"6th connection: no 503 (closed={sixth.closed}, {sixth.buf!r})")
                self.assertEqual(r.status, 503, r)
                self.assertEqual(r.headers.get("connection", "").lower(), "close")
                self.assert_error_body(r)
                self.assert_closes(sixth)
            finally:
                sixth.close()
            # the five are still served
            for i, c in enumerate(held):
                c.send(get("/health/live", f"X-Request-Id: again{i}"))
                r = c.read_response()
                self.assertIsNotNone(r, f"held connection {i} dropped")
                self.assertEqual(r.status, 200)
        finally:
            for c in held:
                c.close()
        deadline = time.monotonic() + 3.0
        while True:
            c = self.client()
            try:
                c.send(get())
                r = c.read_response()
            finally:
                c.close()
            if r is not None and r.status == 200:
                break
            self.assertLess(time.monotonic(), deadline,
                            f"server did not recover after the 5 were closed: {r!r}")
            time.sleep(0.05)
        self.assert_alive()


add_cases(DefaultLimits, DEFAULT_CASES)
add_cases(SmallLimits, SMALL_CASES)

if __name__ == "__main__":
    unittest.main()
