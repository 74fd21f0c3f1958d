"""Feature tests of `strata gateway` (issue 4) against fake upstreams.

Every gateway here is the no-config form
    strata gateway --listen 127.0.0.1:P --upstream 127.0.0.1:U [...] --workers 1
with the default policies (see src/gateway/gateway.c: connect 1 s, try 10 s,
total 15 s, 3 attempts, backoff 25..250 ms, health every 1 s / 500 ms / rise 2
/ fall 2, trusted hops 0; breaker 50 % over 10 s with >= 20 calls, open 5 s,
3 probes; retry budget 20 % of requests + 10/s over a 10 s window). One
worker, so breakers, retry budgets and keep-alive pools (all per worker) give
a clean signal. The upstreams are tests/integration/fake_upstream.py
(in-process, switchable at run time)."""
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import tempfile
import time
import unittest

from fake_upstream import FakeUpstream
from harness import BIN, Server, free_port

IO = 3.0


# ---- the gateway process -----------------------------------------------------

class Gateway(Server):
    """A `strata gateway` process (Server's start/stop/http/raw/log_lines)."""

    def __init__(self, upstreams, *extra, workers=1, health_interval=None, log_level=None):
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="strata-gw-test-")
        self.log_path = os.path.join(self.tmp, "stdout.log")
        self.err_path = os.path.join(self.tmp, "stderr.log")
        cmd = [BIN, "gateway", "--listen", f"127.0.0.1:{self.port}", "--workers", str(workers)]
        for u in upstreams:
            cmd += ["--upstream", u if isinstance(u, str) else f"127.0.0.1:{u}"]
        if health_interval is not None:
            cmd += ["--health-interval", health_interval]
        if log_level:
            cmd += ["--log-level", log_level]
        self.cmd = cmd + list(extra)
        self.proc = None

    def stop_checked(self, test=None):
        """Stops it; fails when it died badly or a sanitizer complained."""
        rc = self.stop()
        err = self.stderr()
        if rc != 0 or "AddressSanitizer" in err or "runtime error:" in err:
            raise AssertionError(f"strata gateway exited {rc}; stderr: {err[-3000:]}")

    def metrics(self):
        status, _, body = self.http("GET", "/metrics")
        assert status == 200, status
        out = {}
        for line in body.decode().splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, val = line.rpartition(" ")
            out[name] = float(val)
        return out

    def metric(self, family, upstream_port=None, pool="default"):
        m = self.metrics()
        key = family if upstream_port is None else f'{family}{{pool="{pool}",upstream="127.0.0.1:{upstream_port}"}}'
        return m.get(key)

    def ready(self):
        status, _, body = self.http("GET", "/health/ready")
        return status, json.loads(body)


def wait_until(fn, timeout, interval=0.02):
    """Polls fn until it returns a true value; (value, seconds) or (None, timeout)."""
    t0 = time.monotonic()
    while True:
        v = fn()
        if v:
            return v, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            return None, time.monotonic() - t0
        time.sleep(interval)


def dead_port():
    """A loopback port with nothing listening (connect refused)."""
    return free_port()


# ---- a raw client --------------------------------------------------------------

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body

    def get(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:300]!r}>"


class Conn:
    """One raw client connection to the gateway."""

    def __init__(self, port, timeout=IO):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.closed = False

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def _fill(self, deadline):
        rem = deadline - time.monotonic()
        if rem <= 0 or self.closed:
            return False
        self.sock.settimeout(rem)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            self.closed = True
            return False
        if not d:
            self.closed = True
            return False
        self.buf += d
        return True

    def read(self, head=False, timeout=IO):
        """One response, or None when none came completely."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                return None
        head_bytes, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head_bytes.split(b"\r\n")
        m = re.match(rb"^HTTP/1\.1 (\d{3}) ", lines[0] + b" ")
        if not m:
            raise AssertionError(f"not a status line: {lines[0]!r}")
        status = int(m.group(1))
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        r = Resp(status, headers, b"")
        n = 0
        if not head and status >= 200 and status not in (204, 304):
            n = int(r.get("content-length", "0"))
        while len(rest) < n:
            if not self._fill(deadline):
                return None
            rest = self.buf.partition(b"\r\n\r\n")[2]
        r.body = rest[:n]
        self.buf = rest[n:]
        return r

    def read_final(self, head=False, timeout=IO):
        interim = []
        while True:
            r = self.read(head, timeout)
            if r is None or r.status >= 200:
                return interim, r
            interim.append(r.status)


def exchange(port, data, head=False, timeout=IO):
    c = Conn(port, timeout)
    try:
        c.send(data)
        return c.read(head=head, timeout=timeout)
    finally:
        c.close()


def status_line(port, path):
    """The first line of the answer to GET path (the rest is not waited for)."""
    c = Conn(port, IO)
    try:
        c.send(req("GET", path))
        deadline = time.monotonic() + IO
        while b"\r\n" not in c.buf and c._fill(deadline):
            pass
        return c.buf.split(b"\r\n")[0]
    finally:
        c.close()


def req(method, path, *headers, host="gw.test", body=b"", version="HTTP/1.1"):
    lines = [f"{method} {path} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += list(headers)
    if body and not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def upstream_headers(fake):
    """Headers of the last request the fake recorded, as a list of (name, value)."""
    recs = fake.recorded
    assert recs, "the upstream received no request"
    return recs[-1]["headers"]


def names_lower(headers):
    return [k.lower() for k, _ in headers]


def values(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


class GatewayCase(unittest.TestCase):
    def assert_json_error(self, r, status, code=None):
        self.assertIsNotNone(r, "no response")
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.get("content-type", "").startswith("application/json"), r)
        doc = json.loads(r.body)
        self.assertIsInstance(doc.get("error"), dict, doc)
        if code:
            self.assertEqual(doc["error"].get("code"), code, doc)
        self.assertTrue(doc["error"].get("message"), doc)

    def get(self, gw, path="/x", *headers, timeout=IO, **kw):
        return exchange(gw.port, req("GET", path, *headers, **kw), timeout=timeout)


# ---- basic proxying -------------------------------------------------------------

class OneUpstreamCase(GatewayCase):
    """A fake upstream and a gateway in front of it for the whole class
    (cls.fake, cls.gw); a class changes the gateway by overriding gateway()."""

    @classmethod
    def gateway(cls, port):
        return Gateway([port])

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeUpstream().start()
        cls.gw = cls.gateway(cls.fake.port).start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.stop_checked()
        finally:
            cls.fake.stop()


class Proxying(OneUpstreamCase):
    def setUp(self):
        self.fake.set("ok")
        self.fake.extra_headers = []

    def test_get_relays_status_headers_and_body(self):
        self.fake.extra_headers = [("X-Upstream", "yes"), ("Cache-Control", "no-store")]
        r = self.get(self.gw, "/api/users/42?x=1&y=two")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.get("x-upstream"), "yes")
        self.assertEqual(r.get("cache-control"), "no-store")
        self.assertEqual(r.get("content-type"), "application/json")
        doc = r.json()
        self.assertEqual((doc["method"], doc["path"], doc["query"], doc["bodyLength"]),
                         ("GET", "/api/users/42", "x=1&y=two", 0))
        self.assertEqual(doc["port"], self.fake.port)

    def test_post_body_relayed(self):
        body = bytes(range(256)) * 40
        r = exchange(self.gw.port, req("POST", "/api/orders", "Content-Type: application/octet-stream",
                                       body=body))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["bodyLength"], len(body))
        rec = self.fake.recorded[-1]
        self.assertEqual(rec["method"], "POST")
        self.assertEqual(rec["body"], body)
        self.assertEqual(values(rec["headers"], "content-length"), [str(len(body))])
        self.assertEqual(values(rec["headers"], "content-type"), ["application/octet-stream"])

    def test_chunked_request_body_relayed_whole(self):
        data = req("PUT", "/api/items/1", "Transfer-Encoding: chunked") + \
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        r = exchange(self.gw.port, data)
        self.assertEqual(r.status, 200, r)
        rec = self.fake.recorded[-1]
        self.assertEqual(rec["body"], b"hello world")
        self.assertNotIn("transfer-encoding", names_lower(rec["headers"]))
        self.assertEqual(values(rec["headers"], "content-length"), ["11"])

    def test_chunk_extensions_in_a_request_are_taken_and_dropped(self):
        # RFC 9112 7.1.1 (several, whitespace, on the last chunk), buffered
        # and streamed (over 64 KiB), sent whole and a few bytes a write
        big = b"b" * 70000
        for body, want in ((b"5;a=1;b=2\r\nhello\r\n6 ; c = \"d;e\"\r\n world\r\n0;z\r\n\r\n",
                            b"hello world"),
                           (b"%x;a=1;b=2\r\n" % len(big) + big + b"\r\n0 ;last=1\r\n\r\n", big)):
            for pieces in (False, True):
                with self.subTest(size=len(want), pieces=pieces):
                    head = req("PUT", "/api/items/ext", "Transfer-Encoding: chunked")
                    c = Conn(self.gw.port)
                    try:
                        if pieces:
                            c.send(head)
                            for i in range(0, len(body), 3 if len(body) < 1000 else 4096):
                                c.send(body[i:i + (3 if len(body) < 1000 else 4096)])
                                time.sleep(0.001)
                        else:
                            c.send(head + body)
                        r = c.read()
                    finally:
                        c.close()
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(self.fake.recorded[-1]["body"], want)

    def test_the_origins_date_is_relayed(self):
        # RFC 9110 6.6.1: Date is when the origin made the answer; a proxy
        # adds one only when it is missing (HAProxy and Envoy do the same)
        self.fake.extra_headers = [("Date", "Mon, 01 Jan 2024 00:00:00 GMT")]
        r = self.get(self.gw, "/dated")
        self.assertEqual(r.status, 200, r)
        self.assertEqual([v for k, v in r.headers if k.lower() == "date"],
                         ["Mon, 01 Jan 2024 00:00:00 GMT"])
        self.fake.extra_headers = []
        r = self.get(self.gw, "/undated")
        dates = [v for k, v in r.headers if k.lower() == "date"]
        self.assertEqual(len(dates), 1, r)
        self.assertTrue(dates[0].endswith(" GMT"), dates)

    def test_status_codes_relayed(self):
        for st in (201, 400, 404, 409, 429, 500):
            self.fake.set("status", status=st)
            r = self.get(self.gw, f"/s/{st}")
            self.assertEqual(r.status, st, r)
            self.assertEqual(r.json()["status"], st, "the upstream's body is relayed")

    def test_head_keeps_upstream_content_length_and_sends_no_body(self):
        self.fake.extra_headers = [("Content-Length", "12345")]
        c = Conn(self.gw.port)
        try:
            c.send(req("HEAD", "/files/big"))
            r = c.read(head=True)
            self.assertIsNotNone(r, f"no answer to HEAD: {c.buf!r}")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.get("content-length"), "12345")
            self.assertEqual(self.fake.recorded[-1]["method"], "HEAD")
            self.fake.extra_headers = []
            # no body bytes followed the HEAD answer: the next response starts cleanly
            c.send(req("GET", "/after-head"))
            r2 = c.read()
            self.assertIsNotNone(r2, f"no answer after HEAD: {c.buf!r}")
            self.assertEqual(r2.status, 200)
            self.assertEqual(r2.json()["path"], "/after-head")
        finally:
            c.close()

    def test_keep_alive_connections_to_upstream_reused(self):
        before = self.fake.connections
        for i in range(50):
            r = self.get(self.gw, f"/ka/{i}")
            self.assertEqual(r.status, 200, r)
        new = self.fake.connections - before
        self.assertLessEqual(new, 2, f"50 sequential requests opened {new} upstream connections")

    def test_keep_alive_client_connection_many_requests(self):
        c = Conn(self.gw.port)
        try:
            for i in range(20):
                c.send(req("GET", f"/same-conn/{i}"))
                r = c.read()
                self.assertIsNotNone(r)
                self.assertEqual(r.json()["path"], f"/same-conn/{i}")
        finally:
            c.close()

    def test_expect_100_continue(self):
        c = Conn(self.gw.port)
        try:
            c.send(req("POST", "/upload", "Expect: 100-continue", "Content-Length: 5"))
            r = c.read()
            self.assertIsNotNone(r, "no 100 Continue before the body was sent")
            self.assertEqual(r.status, 100)
            c.send(b"hello")
            r = c.read()
            self.assertEqual(r.status, 200, r)
            rec = self.fake.recorded[-1]
            self.assertEqual(rec["body"], b"hello")
            self.assertNotIn("expect", names_lower(rec["headers"]))
        finally:
            c.close()


# ---- header hygiene ------------------------------------------------------------------

HOP_BY_HOP = ["connection", "keep-alive", "te", "trailer", "upgrade", "proxy-connection",
              "proxy-authorization"]


class Hygiene(OneUpstreamCase):
    def setUp(self):
        self.fake.set("ok")
        self.fake.extra_headers = []

    def test_hop_by_hop_and_connection_named_headers_removed(self):
        hop = ["Keep-Alive: timeout=5", "TE: trailers", "Trailer: X-T", "Upgrade: websocket",
               "Proxy-Connection: keep-alive", "Proxy-Authorization: Basic Zm9vOmJhcg==",
               "X-Keep: yes"]
        r = self.get(self.gw, "/hop1", "Connection: close, X-Secret", "X-Secret: 1", *hop)
        self.assertEqual(r.status, 200, r)
        h = upstream_headers(self.fake)
        for name in HOP_BY_HOP + ["x-secret"]:
            self.assertNotIn(name, names_lower(h), f"{name} reached the upstream: {h}")
        self.assertEqual(values(h, "x-keep"), ["yes"])
        # tokens listed in a keep-alive Connection header too, in any case and spacing
        r = self.get(self.gw, "/hop2", "Connection: keep-alive,x-other ,  X-THIRD", "X-Other: 2",
                     "x-third: 3", "X-Keep: yes")
        self.assertEqual(r.status, 200, r)
        h = upstream_headers(self.fake)
        for name in ("connection", "x-other", "x-third"):
            self.assertNotIn(name, names_lower(h), f"{name} reached the upstream: {h}")
        self.assertEqual(values(h, "x-keep"), ["yes"])

    def test_forwarded_headers_rebuilt_client_copies_dropped(self):
        r = self.get(self.gw, "/fwd", "X-Forwarded-For: 203.0.113.7, 10.0.0.1",
                     "Forwarded: for=203.0.113.7;proto=https", "X-Forwarded-Proto: https",
                     "X-Forwarded-Host: evil.example", host="gw.example:8080")
        self.assertEqual(r.status, 200, r)
        h = upstream_headers(self.fake)
        self.assertEqual(values(h, "x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(values(h, "x-forwarded-proto"), ["http"])
        self.assertEqual(values(h, "x-forwarded-host"), ["gw.example:8080"])
        self.assertEqual(values(h, "forwarded"), ['for=127.0.0.1;proto=http;host="gw.example:8080"'])
        self.assertEqual(values(h, "host"), ["gw.example:8080"])

    def test_forwarded_headers_set_without_client_copies(self):
        r = self.get(self.gw, "/fwd2", host="api.test")
        self.assertEqual(r.status, 200, r)
        h = upstream_headers(self.fake)
        self.assertEqual(values(h, "x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(values(h, "forwarded"), ['for=127.0.0.1;proto=http;host="api.test"'])

    def test_via_names_the_gateway_after_the_clients_list(self):
        r = self.get(self.gw, "/via")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(values(upstream_headers(self.fake), "via"), ["1.1 strata"])
        r = self.get(self.gw, "/via2", "Via: 1.1 edge.example, 1.0 cdn")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(values(upstream_headers(self.fake), "via"),
                         ["1.1 edge.example, 1.0 cdn", "1.1 strata"])
        r = exchange(self.gw.port, req("GET", "/via3", version="HTTP/1.0"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(values(upstream_headers(self.fake), "via"), ["1.0 strata"])

    def test_request_id_valid_propagated_unchanged(self):
        r = self.get(self.gw, "/rid", "X-Request-Id: abc-123_X.y")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(values(upstream_headers(self.fake), "x-request-id"), ["abc-123_X.y"])
        self.assertEqual(r.all("x-request-id"), ["abc-123_X.y"])

    def test_request_id_generated_when_missing_or_invalid(self):
        for extra in ([], ["X-Request-Id: bad id!"], ["X-Request-Id: " + "b" * 129]):
            r = self.get(self.gw, "/rid2", *extra)
            self.assertEqual(r.status, 200, r)
            up = values(upstream_headers(self.fake), "x-request-id")
            self.assertEqual(len(up), 1, up)
            self.assertRegex(up[0], r"^[A-Za-z0-9._-]{1,128}$")
            self.assertNotIn(up[0], ("bad id!", "b" * 129))
            self.assertEqual(r.all("x-request-id"), up, "the upstream's id is the one the client got")

    def test_request_id_from_upstream_response_not_relayed(self):
        self.fake.extra_headers = [("X-Request-Id", "upstream-made-up")]
        r = self.get(self.gw, "/rid3", "X-Request-Id: client-1")
        self.assertEqual(r.all("x-request-id"), ["client-1"])

    def test_traceparent_continues_the_trace_with_a_new_parent(self):
        trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        r = self.get(self.gw, "/tp", f"traceparent: 00-{trace}-{parent}-01")
        self.assertEqual(r.status, 200, r)
        tp = values(upstream_headers(self.fake), "traceparent")
        self.assertEqual(len(tp), 1, tp)
        m = re.match(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$", tp[0])
        self.assertTrue(m, tp)
        self.assertEqual(m.group(1), trace)
        self.assertNotEqual(m.group(2), parent)
        self.assertNotEqual(m.group(2), "0" * 16)
        self.assertEqual(m.group(3), "01", "the sampled flag is kept")

    def test_traceparent_new_trace_when_missing_or_invalid(self):
        for extra in ([], ["traceparent: 00-" + "0" * 32 + "-00f067aa0ba902b7-01"],
                      ["traceparent: garbage"]):
            r = self.get(self.gw, "/tp2", *extra)
            self.assertEqual(r.status, 200, r)
            tp = values(upstream_headers(self.fake), "traceparent")
            self.assertEqual(len(tp), 1, tp)
            m = re.match(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$", tp[0])
            self.assertTrue(m, tp)
            self.assertNotEqual(m.group(1), "0" * 32)

    def test_identity_headers_from_client_dropped(self):
        r = self.get(self.gw, "/id", "X-Strata-Identity: user:admin", "X-Strata-Scopes: *",
                     "x-strata-identity-signature: deadbeef", "X-Strata-Identity-Time: 1",
                     "X-CLIENT-ID: client-7", "X-Keep: yes")
        self.assertEqual(r.status, 200, r)
        h = names_lower(upstream_headers(self.fake))
        for name in ("x-strata-identity", "x-strata-scopes", "x-strata-identity-signature",
                     "x-strata-identity-time", "x-client-id"):
            self.assertNotIn(name, h)
        self.assertIn("x-keep", h)

    def test_underscore_aliases_of_our_headers_dropped(self):
        # CGI-style upstreams read X_Client_Id as X-Client-Id (HTTP_X_CLIENT_ID)
        r = self.get(self.gw, "/id", "X_Strata_Identity: admin", "x_strata_scopes: *",
                     "X_Client_Id: admin", "X_Forwarded_For: 10.9.9.9", "X_Request_Id: forged",
                     "X_Strata_Deadline_Ms: 1", "Transfer_Encoding: chunked", "X_Api_Key: forged",
                     "X_Strata_Identity_" + "A" * 300 + ": admin", "X_Keep: yes")
        self.assertEqual(r.status, 200, r)
        h = names_lower(upstream_headers(self.fake))
        for name in ("x_strata_identity", "x_strata_scopes", "x_client_id", "x_forwarded_for",
                     "x_request_id", "x_strata_deadline_ms", "transfer_encoding", "x_api_key",
                     "x_strata_identity_" + "a" * 300):
            self.assertNotIn(name, h)
        self.assertIn("x_keep", h)  # other names with underscores pass, as HAProxy passes them

    def test_deadline_header_set_and_bounded(self):
        r = self.get(self.gw, "/dl", "X-Strata-Deadline-Ms: 999999")
        self.assertEqual(r.status, 200, r)
        v = values(upstream_headers(self.fake), "x-strata-deadline-ms")
        self.assertEqual(len(v), 1, f"exactly one deadline header, the gateway's: {v}")
        self.assertTrue(v[0].isdigit(), v)
        self.assertGreater(int(v[0]), 0)
        self.assertLessEqual(int(v[0]), 15000, "deadline above the total timeout")

    def test_response_hop_by_hop_headers_not_relayed(self):
        self.fake.extra_headers = [("Connection", "close, X-Private"), ("Keep-Alive", "timeout=5"),
                                   ("X-Private", "1"), ("Proxy-Authenticate", "Basic"),
                                   ("Trailer", "X-T"), ("Upgrade", "h2c"), ("X-Visible", "yes")]
        c = Conn(self.gw.port)
        try:
            c.send(req("GET", "/resp-hop"))
            r = c.read()
            self.assertEqual(r.status, 200, r)
            got = names_lower(r.headers)
            for name in ("keep-alive", "x-private", "proxy-authenticate", "trailer", "upgrade"):
                self.assertNotIn(name, got, r)
            self.assertNotIn("close", r.get("connection", "").lower(),
                             "the upstream's Connection: close was relayed to the client")
            self.assertEqual(r.get("x-visible"), "yes")
            # and the client connection stays usable
            self.fake.extra_headers = []
            c.send(req("GET", "/resp-hop-2"))
            r2 = c.read()
            self.assertIsNotNone(r2, "client connection closed after the upstream's Connection: close")
            self.assertEqual(r2.status, 200)
        finally:
            c.close()


class MaxForwards(OneUpstreamCase):
    """RFC 9110 7.6.2: an intermediary checks Max-Forwards on OPTIONS and
    TRACE: at 0 it answers as the final recipient, else it passes the
    request on with the count less one."""

    def setUp(self):
        self.fake.set("ok")

    def upstream_saw(self, path):
        return [r for r in self.fake.recorded if r["path"] == path]

    def test_trace_at_zero_is_echoed_here_without_credentials(self):
        r = exchange(self.gw.port, req("TRACE", "/mf/trace0?q=1", "Max-Forwards: 0", "X-Probe: seen",
                                       "Authorization: Bearer secret-token", "Cookie: sid=secret",
                                       "X-Api-Key: secret-key"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.get("content-type"), "message/http")
        self.assertTrue(r.body.startswith(b"TRACE /mf/trace0?q=1 HTTP/1.1\r\n"), r.body)
        self.assertIn(b"X-Probe: seen\r\n", r.body)
        self.assertIn(b"Max-Forwards: 0\r\n", r.body)
        self.assertNotIn(b"secret", r.body)
        self.assertTrue(r.body.endswith(b"\r\n\r\n"), r.body)
        self.assertEqual(self.upstream_saw("/mf/trace0"), [])

    def test_options_at_zero_is_answered_here(self):
        r = exchange(self.gw.port, req("OPTIONS", "/mf/options0", "Max-Forwards: 0"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.get("content-length"), "0")
        # the catch-all route takes every method
        self.assertEqual(r.get("allow"), "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE")
        self.assertEqual(self.upstream_saw("/mf/options0"), [])

    def test_count_above_zero_goes_on_less_one(self):
        for method, sent, passed in (("OPTIONS", "3", "2"), ("TRACE", "1", "0"),
                                     ("OPTIONS", "0012", "11"), ("TRACE", "99999999999999", "255"), ("OPTIONS", "256", "255")):
            with self.subTest(method=method, sent=sent):
                path = f"/mf/{method}/{sent}"
                r = exchange(self.gw.port, req(method, path, f"Max-Forwards: {sent}"))
                self.assertEqual(r.status, 200, r)
                (rec,) = self.upstream_saw(path)
                self.assertEqual(values(rec["headers"], "max-forwards"), [passed])

    def test_options_asterisk_answered_by_the_gateway(self):
        n = len(self.fake.recorded)
        r = exchange(self.gw.port, req("OPTIONS", "*", "Max-Forwards: 5"))
        self.assertEqual(r.status, 200, r)
        self.assertIn("GET", r.get("allow", ""))
        self.assertEqual(len(self.fake.recorded), n, "OPTIONS * went upstream")

    def test_not_a_number_is_400_and_goes_nowhere(self):
        for bad in ("abc", "-1", "1.5", "", "2, 3"):
            with self.subTest(value=bad):
                path = f"/mf/bad/{len(bad)}"
                r = exchange(self.gw.port, req("TRACE", path, f"Max-Forwards: {bad}"))
                self.assert_json_error(r, 400, "bad_request")
                self.assertIn("Max-Forwards", json.loads(r.body)["error"]["message"])
                self.assertEqual(self.upstream_saw(path), [])

    def test_other_methods_pass_it_unchanged(self):
        r = exchange(self.gw.port, req("GET", "/mf/get", "Max-Forwards: 0"))
        self.assertEqual(r.status, 200, r)
        (rec,) = self.upstream_saw("/mf/get")
        self.assertEqual(values(rec["headers"], "max-forwards"), ["0"])


class TrustedHops(OneUpstreamCase):
    @classmethod
    def gateway(cls, port):
        return Gateway([port], "--trusted-hops", "1")

    def test_last_client_entry_kept(self):
        r = self.get(self.gw, "/th", "X-Forwarded-For: 203.0.113.7, 198.51.100.2",
                     "Forwarded: for=203.0.113.7, for=198.51.100.2", host="h.test")
        self.assertEqual(r.status, 200, r)
        h = upstream_headers(self.fake)
        self.assertEqual(values(h, "x-forwarded-for"), ["198.51.100.2, 127.0.0.1"])
        self.assertEqual(values(h, "forwarded"),
                         ['for=198.51.100.2, for=127.0.0.1;proto=http;host="h.test"'])

    def test_last_of_several_header_lines_kept(self):
        r = self.get(self.gw, "/th2", "X-Forwarded-For: 203.0.113.7", "X-Forwarded-For: 198.51.100.9")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(values(upstream_headers(self.fake), "x-forwarded-for"),
                         ["198.51.100.9, 127.0.0.1"])

    def test_no_client_list_gives_client_ip_only(self):
        r = self.get(self.gw, "/th3")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(values(upstream_headers(self.fake), "x-forwarded-for"), ["127.0.0.1"])


# ---- upstream responses validated strictly -----------------------------------------

# kind -> why it is malformed (fake_upstream.MALFORMED holds the bytes)
MALFORMED_KINDS = {
    "cl_te": "Content-Length with Transfer-Encoding",
    "bad_chunk": "chunk size not hex",
    "bad_status_line": "status line without a code",
    "garbage_status_line": "not an HTTP status line",
    "bare_lf": "header line ended by a bare LF",
    "bare_lf_status_line": "status line ended by a bare LF",
    "obs_fold": "obs-fold continuation line",
    "obs_fold_empty_value": "obs-fold after an empty value",
    "dup_cl": "two different Content-Length values",
    "nul_in_header": "NUL in a header value",
    "bare_cr_in_header": "bare CR in a header value",
    "space_before_colon": "whitespace between field name and colon",
    "cl_negative": "negative Content-Length",
    "te_chunked_twice": "Transfer-Encoding: chunked, chunked",
    "http2_status_line": "HTTP/2.0 status line on an HTTP/1.1 connection",
    "cl_mismatch": "Content-Length larger than the body, then close",
    "te_gzip_chunked": "Transfer-Encoding: gzip, chunked (a coding not decoded)",
    "te_gzip": "Transfer-Encoding: gzip alone",
    "status_099": "status code below 100",
    "status_999": "status code above 599",
    "status_101": "101 Switching Protocols without an Upgrade request",
    "huge_header": "a 70 KiB header section",
}


class MalformedUpstream(OneUpstreamCase):
    """Each kind: the client gets a 502 JSON error, then the gateway keeps serving."""

    def run_kind(self, kind):
        self.fake.set("malformed", kind=kind)
        try:
            r = self.get(self.gw, f"/bad/{kind}")
        finally:
            self.fake.set("ok")
        # two good calls per bad one keep the breaker's failure rate under 50 %
        for i in range(2):
            ok = self.get(self.gw, f"/good/{kind}/{i}")
            self.assertIsNotNone(ok)
            self.assertEqual(ok.status, 200, f"gateway stopped serving after {kind}: {ok!r}")
        self.assertIsNone(self.gw.proc.poll(), "gateway exited")
        self.assert_json_error(r, 502, "bad_gateway")


def _add_malformed_tests():
    for kind, why in MALFORMED_KINDS.items():
        def test(self, kind=kind):
            self.run_kind(kind)
        test.__doc__ = f"upstream sends {why} -> 502"
        setattr(MalformedUpstream, f"test_malformed_{kind}", test)


_add_malformed_tests()


class UpstreamFraming(OneUpstreamCase):
    """Valid framings an upstream may use (RFC 9112 6.3), relayed whole and
    at once."""

    @classmethod
    def gateway(cls, port):
        return Gateway([port], health_interval="0s")

    def tearDown(self):
        self.fake.set("ok")

    def raw(self, data, path, *headers, method="GET", hold_s=3.0):
        self.fake.set("raw", data=data, hold_s=hold_s)
        t0 = time.monotonic()
        r = exchange(self.gw.port, req(method, path, *headers), head=method == "HEAD")
        return r, time.monotonic() - t0

    def get_decoded(self, path):
        """(status, body) with the body's chunked framing decoded; a cut
        body raises http.client.IncompleteRead."""
        c = http.client.HTTPConnection("127.0.0.1", self.gw.port, timeout=IO)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def test_chunk_extensions_rfc_9112_allows(self):
        # several extensions, whitespace around ; and =, quoted values, on
        # the last chunk too: ignored (RFC 9112 7.1.1), the body relayed
        # whole - also when the size lines arrive a byte at a time
        lines = (b"5;a=1;b=2", b"5 ;a=1", b"5\t; a = 1 ; b", b'5;a="x;y";b=2', b"5;a=b")
        for trickle in (False, True):
            for line in lines:
                with self.subTest(line=line, trickle=trickle):
                    body = line + b"\r\nhello\r\n" + b"0;last=1;more=\"yes\"\r\n\r\n"
                    self.fake.set("raw", hold_s=0.05, trickle=trickle, data=b"HTTP/1.1 200 OK\r\n"
                                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body)
                    self.assertEqual(self.get_decoded("/chunk-ext"), (200, b"hello"))
        # and in a streamed answer, past what the gateway relays whole
        big = b"q" * 300000
        self.fake.set("raw", hold_s=0.05, data=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                      b"Connection: close\r\n\r\n" + b"%x;a=1;b=2\r\n" % len(big) + big +
                      b"\r\n0;a=1;b=2\r\n\r\n")
        status, got = self.get_decoded("/chunk-ext-big")
        self.assertEqual((status, len(got)), (200, len(big)))
        # what the grammar does not allow is still a 502
        for line in (b"5;", b"5;a=", b"5;a b", b'5;a="open'):
            with self.subTest(bad=line):
                self.fake.set("raw", hold_s=0.05, data=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                              b"Connection: close\r\n\r\n" + line + b"\r\nhello\r\n0\r\n\r\n")
                r = exchange(self.gw.port, req("GET", "/chunk-ext-bad"))
                self.assertEqual(r.status, 502, r)

    def test_the_upstreams_reason_phrase_is_relayed(self):
        # as nginx and HAProxy do (RFC 9112 4: the phrase is the server's);
        # small answers are relayed whole, large ones streamed
        for status, reason, size in ((200, b"Fine, Thanks", 2), (418, b"I'm a teapot", 2),
                                     (299, b"", 2), (200, b"Streamed \xe9t\xe9", 300000)):
            with self.subTest(status=status, reason=reason, size=size):
                self.fake.set("raw", hold_s=0.05, data=b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n"
                              b"Connection: close\r\n\r\n" % (status, reason, size) + b"x" * size)
                self.assertEqual(status_line(self.gw.port, "/reason"), b"HTTP/1.1 %d %s" % (status, reason))
        # the gateway's own answers keep its phrases
        self.fake.set("malformed", kind="cl_te")
        self.assertEqual(status_line(self.gw.port, "/reason-own"), b"HTTP/1.1 502 Bad Gateway")

    def test_304_and_204_with_content_length_end_at_the_head(self):
        # the upstream keeps the connection open (closing it 3 s later; it
        # says so, so that the gateway does not park it): waiting for a body
        # would hang
        for data, status in ((b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"v1\"\r\n"
                              b"Connection: close\r\n\r\n", 304),
                             (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100000000\r\nETag: \"v1\"\r\n"
                              b"Connection: close\r\n\r\n", 304),
                             (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", 204)):
            r, took = self.raw(data, f"/nb/{status}", 'If-None-Match: "v1"')
            self.assertEqual(r.status, status, r)
            self.assertEqual(r.body, b"")
            self.assertLess(took, 1.5, f"{status} waited for a body")
            if status == 304:
                self.assertEqual(r.get("etag"), '"v1"')

    def test_close_delimited_answer_relayed_complete(self):
        import http.client
        for data in (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close body",
                     b"HTTP/1.0 200 OK\r\n\r\nuntil-close body"):
            self.fake.set("raw", data=data, hold_s=0.05)
            c = http.client.HTTPConnection("127.0.0.1", self.gw.port, timeout=IO)
            try:
                c.request("GET", "/eof")
                r = c.getresponse()
                self.assertEqual(r.status, 200)
                self.assertEqual(r.read(), b"until-close body")  # IncompleteRead if cut
            finally:
                c.close()
            line = lines_of(self.gw, "/eof")[-1]
            self.assertNotIn("upstreamError", line)

    def test_head_of_a_chunked_answer_announces_no_length(self):
        r, _ = self.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "/head-chunked",
                        method="HEAD", hold_s=0.05)
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.get("content-length"), "a HEAD answer announced a length the GET does not have")
        r, _ = self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", "/head-length",
                        method="HEAD", hold_s=0.05)
        self.assertEqual(r.get("content-length"), "1234")


class InterimAnswers(OneUpstreamCase):
    """RFC 9110 15.2: a proxy forwards the 1xx answers it did not ask for
    (103 Early Hints, 102) to HTTP/1.1 clients, never to HTTP/1.0 ones."""

    gateway = UpstreamFraming.gateway
    tearDown = UpstreamFraming.tearDown

    HINTS = (b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n"
             b"Connection: keep-alive\r\n\r\n"
             b"HTTP/1.1 102 Processing\r\n\r\n"
             b"HTTP/1.1 100 Continue\r\n\r\n"
             b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfinal")

    def read_all(self, data):
        c = Conn(self.gw.port, IO)
        try:
            c.send(data)
            deadline = time.monotonic() + IO
            while not c.buf.endswith(b"final") and c._fill(deadline):
                pass
            return c.buf
        finally:
            c.close()

    def test_early_hints_reach_an_http11_client_before_the_answer(self):
        self.fake.set("raw", data=self.HINTS, hold_s=0.05)
        got = self.read_all(req("GET", "/hints"))
        heads = [p.split(b"\r\n")[0] for p in got.split(b"\r\n\r\n")]
        self.assertEqual(heads[:3], [b"HTTP/1.1 103 Early Hints", b"HTTP/1.1 102 Processing",
                                     b"HTTP/1.1 200 OK"], got)
        first = got.split(b"\r\n\r\n")[0]
        self.assertIn(b"\r\nLink: </style.css>; rel=preload; as=style", first)
        self.assertNotIn(b"Connection", first, "a hop-by-hop field went along")
        self.assertNotIn(b"100 Continue", got, "the upstream's 100 is the gateway's own business")
        self.assertTrue(got.endswith(b"\r\n\r\nfinal"), got)

    def test_an_interim_answer_ends_at_its_empty_line(self):
        # RFC 9112 6.3 rule 1: whatever its fields say (a Connection: close,
        # a length, chunked), the final answer follows it on the connection
        for fields in (b"Connection: close\r\n", b"Content-Length: 5\r\n",
                       b"Transfer-Encoding: chunked\r\n", b"Connection: keep-alive\r\n", b""):
            with self.subTest(fields=fields):
                for version in (b"HTTP/1.1", b"HTTP/1.0"):  # 1.0: keep-alive or not
                    self.fake.set("raw", hold_s=0.05, data=version + b" 103 Early Hints\r\n" + fields +
                                  b"Link: </a.css>; rel=preload\r\n\r\n"
                                  b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
                    got = self.read_all(req("GET", "/hints-framing"))
                    hints, final = got.split(b"\r\n\r\n", 1)
                    self.assertEqual(hints, b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload", got)
                    self.assertTrue(final.startswith(b"HTTP/1.1 200 OK\r\n"), got)
                    self.assertTrue(final.endswith(b"\r\n\r\nfinal"), got)

    def test_fields_its_connection_names_stay_behind(self):
        # RFC 9110 7.6.1, as for a final answer
        self.fake.set("raw", hold_s=0.05, data=b"HTTP/1.1 103 Early Hints\r\nConnection: X-Secret\r\n"
                      b"X-Secret: s\r\nKeep-Alive: 5\r\nLink: </a.css>\r\n\r\n"
                      b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
        got = self.read_all(req("GET", "/hints-named"))
        self.assertTrue(got.startswith(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"), got)
        self.assertNotIn(b"X-Secret", got)

    def test_none_for_an_http10_client(self):
        self.fake.set("raw", data=self.HINTS, hold_s=0.05)
        got = self.read_all(req("GET", "/hints10", version="HTTP/1.0"))
        self.assertTrue(got.startswith(b"HTTP/1.1 200 OK\r\n"), got)
        self.assertTrue(got.endswith(b"\r\n\r\nfinal"), got)


class RequestChecks(OneUpstreamCase):
    """What a client sends that must not reach an upstream as sent."""

    @classmethod
    def gateway(cls, port):
        return Gateway([port], health_interval="0s")

    def test_request_trailers_never_become_headers(self):
        for size in (3, 100 * 1024):  # buffered, and streamed
            body = b"a" * size
            data = req("POST", f"/trailers/{size}", "Transfer-Encoding: chunked", host="a.test") + \
                b"%x\r\n" % size + body + b"\r\n0\r\nHost: admin.example\r\nX-Api-Key: bogus\r\n" \
                b"Authorization: ApiKey bogus\r\n\r\n"
            r = exchange(self.gw.port, data)
            self.assertEqual(r.status, 200, r)
            h = upstream_headers(self.fake)
            self.assertEqual(values(h, "host"), ["a.test"])
            self.assertEqual(values(h, "x-forwarded-host"), ["a.test"])
            self.assertEqual(values(h, "x-api-key"), [])
            self.assertEqual(values(h, "authorization"), [])

    def test_invalid_host_is_400(self):
        before = self.fake.proxied
        for host in ("a b", "a@b", "a/../b", '"a"', "a,for=6.6.6.6", "a;b", "[::1", "[]", ":80",
                     "a:8x", "a:123456", "exa\tmple"):
            r = exchange(self.gw.port, req("GET", "/h", host=host))
            self.assert_json_error(r, 400)
        self.assertEqual(self.fake.proxied, before, "a bad Host reached the upstream")
        for host in ("api.example", "api.example:8080", "127.0.0.1:80", "[::1]:8080", "my_host-1.internal"):
            r = exchange(self.gw.port, req("GET", "/h", host=host))
            self.assertEqual(r.status, 200, (host, r))
            self.assertEqual(values(upstream_headers(self.fake), "host"), [host])

    def test_dot_segments_are_400(self):
        before = self.fake.proxied
        for path in ("/public/../api/admin", "/a/./b", "/a/..", "/a/.", "/public/%2e%2e/admin",
                     "/public/.%2E/admin", "/public/%2e/x", "/public/..%2fadmin", "/public/..%5Cadmin"):
            r = exchange(self.gw.port, req("GET", path))
            self.assert_json_error(r, 400)
        self.assertEqual(self.fake.proxied, before, "a dot segment reached the upstream")
        for path in ("/a/.../b", "/a/..b/c", "/a/.well-known/x", "/v1.2/x", "/a/%2e%2ex"):
            r = exchange(self.gw.port, req("GET", path))
            self.assertEqual(r.status, 200, (path, r))

    def test_absolute_form_target_names_the_host(self):
        r = exchange(self.gw.port, req("GET", "http://other.example:81/abs?q=1", host="a.test"))
        self.assertEqual(r.status, 200, r)
        rec = self.fake.recorded[-1]
        self.assertEqual(rec["path"], "/abs")
        self.assertEqual(values(rec["headers"], "host"), ["other.example:81"])
        self.assertEqual(values(rec["headers"], "x-forwarded-host"), ["other.example:81"])
        r = exchange(self.gw.port, req("GET", "http://us@er@x/abs", host="a.test"))
        self.assert_json_error(r, 400)
        # no path: "/", and a '/' in the query stays in the query
        r = exchange(self.gw.port, req("GET", "http://b.example?x=/admin", host="a.test"))
        self.assertEqual(r.status, 200, r)
        rec = self.fake.recorded[-1]
        self.assertEqual((rec["path"], rec.get("query")), ("/", "x=/admin"), rec)
        self.assertEqual(values(rec["headers"], "host"), ["b.example"])


def lines_of(gw, path):
    got, _ = wait_until(lambda: [x for x in gw.log_lines() if x.get("path") == path], 2.0)
    return got or [{}]


# ---- retries -----------------------------------------------------------------------------

class Retries(GatewayCase):
    def setUp(self):
        self.fakes = []
        self.gw = None

    def tearDown(self):
        try:
            if self.gw:
                self.gw.stop_checked()
        finally:
            for f in self.fakes:
                f.stop()

    def fake(self):
        f = FakeUpstream().start()
        self.fakes.append(f)
        return f

    def test_get_retried_on_another_host_after_503(self):
        a, b = self.fake(), self.fake()
        a.set("status", status=503)
        self.gw = Gateway([a.port, b.port], health_interval="1h").start()
        r = self.get(self.gw, "/retry-get")
        self.assertEqual(r.status, 200, r)
        # round robin starts on the first host: A answers 503, the retry goes to B
        self.assertEqual((a.proxied, b.proxied), (1, 1))
        for i in range(9):
            r = self.get(self.gw, f"/retry-get/{i}")
            self.assertEqual(r.status, 200, r)
        self.assertEqual(b.proxied, 10, "every request ended on B exactly once")
        self.assertGreaterEqual(a.proxied, 1)
        self.assertEqual(self.gw.metric("strata_gateway_upstream_retries_total", a.port), a.proxied)

    def test_post_without_idempotency_key_not_retried(self):
        a = self.fake()
        a.set("status", status=503)
        self.gw = Gateway([a.port], health_interval="1h").start()
        r = exchange(self.gw.port, req("POST", "/orders", body=b'{"x":1}'))
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json()["status"], 503, "the upstream's own 503 is relayed")
        self.assertEqual(a.proxied, 1)

    def test_post_without_idempotency_key_not_retried_two_hosts(self):
        a, b = self.fake(), self.fake()
        a.set("status", status=503)
        self.gw = Gateway([a.port, b.port], health_interval="1h").start()
        r = exchange(self.gw.port, req("POST", "/orders", body=b'{"x":1}'))
        self.assertEqual(r.status, 503, r)
        self.assertEqual((a.proxied, b.proxied), (1, 0))

    def test_post_with_idempotency_key_retried(self):
        a = self.fake()
        a.set("status", status=503, times=1)
        self.gw = Gateway([a.port], health_interval="1h").start()
        r = exchange(self.gw.port, req("POST", "/payments", "Idempotency-Key: k-123",
                                       body=b'{"amount":5}'))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(a.proxied, 2)
        recs = a.recorded
        self.assertEqual([x["body"] for x in recs], [b'{"amount":5}'] * 2)
        self.assertEqual(values(recs[1]["headers"], "idempotency-key"), ["k-123"])

    def test_reset_retried_for_get_not_for_post(self):
        a, b = self.fake(), self.fake()
        a.set("reset")
        self.gw = Gateway([a.port, b.port], health_interval="1h").start()
        r = self.get(self.gw, "/reset-get")
        self.assertEqual(r.status, 200, r)
        self.assertEqual((a.proxied, b.proxied), (1, 1))
        # POSTs alternate between the hosts; the ones that meet A's reset are not retried
        statuses = [exchange(self.gw.port, req("POST", f"/reset-post/{i}", body=b"x")).status
                    for i in range(4)]
        self.assertIn(502, statuses, "no POST met the reset host")
        self.assertEqual(a.proxied - 1, statuses.count(502), statuses)
        self.assertEqual(b.proxied - 1, statuses.count(200), f"a reset POST was retried: {statuses}")

    def test_close_without_answer_retried_for_get(self):
        a, b = self.fake(), self.fake()
        a.set("close")
        self.gw = Gateway([a.port, b.port], health_interval="1h").start()
        for i in range(4):
            r = self.get(self.gw, f"/closed/{i}")
            self.assertEqual(r.status, 200, r)
        self.assertGreaterEqual(a.proxied, 1)
        self.assertEqual(b.proxied, 4)

    def test_connect_failure_retried_for_get_and_post(self):
        b = self.fake()
        dead = dead_port()
        # no active checks: every request meets the dead host through the balancer
        self.gw = Gateway([dead, b.port], health_interval="0s").start()
        for i in range(4):
            r = self.get(self.gw, f"/cf-get/{i}")
            self.assertEqual(r.status, 200, r)
            r = exchange(self.gw.port, req("POST", f"/cf-post/{i}", body=b"data"))
            self.assertEqual(r.status, 200, f"POST after a connect failure: {r!r}")
        self.assertEqual(b.proxied, 8)
        failures = self.gw.metric("strata_gateway_upstream_failures_total", dead)
        self.assertGreaterEqual(failures, 1, "the dead host was never tried")

    def test_retry_after_honoured(self):
        a = self.fake()
        a.set("status", status=503, retry_after=1, times=1)
        self.gw = Gateway([a.port], health_interval="1h").start()
        t0 = time.monotonic()
        r = self.get(self.gw, "/ra")
        took = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual(a.proxied, 2)
        self.assertGreaterEqual(took, 0.95, "retried before Retry-After: 1 had passed")
        self.assertLess(took, 2.0)

    def test_retry_after_beyond_deadline_relays_503(self):
        a = self.fake()
        a.set("status", status=503, retry_after=5)
        self.gw = Gateway([a.port], "--timeout", "1s", health_interval="1h").start()
        t0 = time.monotonic()
        r = self.get(self.gw, "/ra-long")
        took = time.monotonic() - t0
        # a retry after 5 s cannot fit in the 1 s total: the upstream's 503 is relayed at once
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.get("retry-after"), "5")
        self.assertEqual(a.proxied, 1)
        self.assertLess(took, 0.5)


# ---- timeouts ---------------------------------------------------------------------------

class Timeouts(OneUpstreamCase):
    @classmethod
    def gateway(cls, port):
        return Gateway([port], "--try-timeout", "300ms", "--timeout", "1s")

    def tearDown(self):
        self.fake.set("ok")

    def test_hung_upstream_504_at_total_timeout(self):
        self.fake.set("hang")
        before = self.fake.proxied
        t0 = time.monotonic()
        r = self.get(self.gw, "/hang", timeout=5)
        took = time.monotonic() - t0
        self.assert_json_error(r, 504, "gateway_timeout")
        self.assertGreaterEqual(took, 0.8, f"504 after {took:.3f} s")
        self.assertLessEqual(took, 2.5, f"504 after {took:.3f} s")
        self.assertGreaterEqual(self.fake.proxied - before, 2, "a GET is retried after a try timeout")

    def test_hung_upstream_post_504_after_one_try(self):
        self.fake.set("hang")
        before = self.fake.proxied
        t0 = time.monotonic()
        r = exchange(self.gw.port, req("POST", "/hang-post", body=b"x"), timeout=5)
        took = time.monotonic() - t0
        self.assert_json_error(r, 504, "gateway_timeout")
        self.assertGreaterEqual(took, 0.25)
        self.assertLess(took, 0.8, f"POST 504 after {took:.3f} s, want the 300 ms try timeout")
        self.assertEqual(self.fake.proxied - before, 1, "a timed-out POST is not retried")

    def test_slow_upstream_within_try_timeout_ok(self):
        self.fake.set("slow", delay_ms=100)
        r = self.get(self.gw, "/slow")
        self.assertEqual(r.status, 200, r)

    def test_deadline_header_is_the_try_budget(self):
        r = self.get(self.gw, "/dl")
        self.assertEqual(r.status, 200, r)
        v = int(values(upstream_headers(self.fake), "x-strata-deadline-ms")[0])
        self.assertGreater(v, 0)
        self.assertLessEqual(v, 300)


# ---- all upstreams down ------------------------------------------------------------------

class AllDown(GatewayCase):
    def test_fast_failure_readiness_and_recovery(self):
        pa, pb = dead_port(), dead_port()
        gw = Gateway([pa, pb], health_interval="200ms").start()
        fake = None
        try:
            t0 = time.monotonic()
            got, _ = wait_until(lambda: gw.ready()[0] == 503, 2.0)
            down_after = time.monotonic() - t0
            self.assertTrue(got, "gateway /health/ready never went 503")
            self.assertLessEqual(down_after, 1.0, f"/health/ready went down after {down_after:.2f} s")
            self.assertEqual(gw.ready()[1]["status"], "down")

            times, statuses = [], []
            for i in range(30):
                t = time.monotonic()
                r = self.get(gw, f"/down/{i}")
                times.append(time.monotonic() - t)
                statuses.append(r.status)
                self.assertIn(r.status, (502, 503), r)
                self.assertTrue(r.get("content-type", "").startswith("application/json"))
            med = statistics.median(times)
            self.assertLess(med, 0.050, f"median {med * 1000:.1f} ms, statuses {statuses}, "
                                        f"times {[round(x * 1000) for x in times]}")

            fake = FakeUpstream(port=pa).start()
            t1 = time.monotonic()
            r, _ = wait_until(lambda: self.get(gw, "/back").status == 200, 8.0)
            back_after = time.monotonic() - t1
            self.assertTrue(r, "traffic never flowed again (8 s)")
            # two health intervals (rise 2 x 200 ms) plus margin
            self.assertLessEqual(back_after, 1.0,
                                 f"traffic flowed again only {back_after:.2f} s after the upstream "
                                 f"came back (breaker_open={gw.metric('strata_gateway_breaker_open', pa)})")
        finally:
            try:
                gw.stop_checked()
            finally:
                if fake:
                    fake.stop()


# ---- active health checks -----------------------------------------------------------------

class HealthChecks(GatewayCase):
    def test_unhealthy_host_gets_no_traffic_then_returns(self):
        a, b = FakeUpstream().start(), FakeUpstream().start()
        gw = Gateway([a.port, b.port], health_interval="200ms").start()
        try:
            got, _ = wait_until(lambda: gw.metric("strata_gateway_upstream_healthy", a.port) == 1, 1.0)
            self.assertEqual(gw.ready()[1]["status"], "up")
            a.set_health("fail")
            got, took = wait_until(lambda: gw.metric("strata_gateway_upstream_healthy", a.port) == 0,
                                   2.0)
            self.assertTrue(got, "A never marked unhealthy")
            self.assertLessEqual(took, 1.0, f"A marked unhealthy after {took:.2f} s")
            status, doc = gw.ready()
            self.assertEqual(status, 200)
            self.assertEqual(doc["status"], "degraded", doc)
            self.assertEqual(gw.metric("strata_gateway_upstream_healthy", b.port), 1)
            before_a, before_b = a.proxied, b.proxied
            for i in range(20):
                r = self.get(gw, f"/h/{i}")
                self.assertEqual(r.status, 200, r)
            self.assertEqual(a.proxied - before_a, 0, "the unhealthy host still got traffic")
            self.assertEqual(b.proxied - before_b, 20)

            a.set_health("ok")
            got, took = wait_until(lambda: gw.metric("strata_gateway_upstream_healthy", a.port) == 1,
                                   2.0)
            self.assertTrue(got, "A never came back")
            self.assertLessEqual(took, 1.0)
            self.assertEqual(gw.ready()[1]["status"], "up")
            before_a = a.proxied
            for i in range(20):
                self.assertEqual(self.get(gw, f"/h2/{i}").status, 200)
            self.assertGreaterEqual(a.proxied - before_a, 5, "A got no traffic after recovering")
            events = [x.get("event") for x in gw.log_lines()]
            self.assertIn("upstream_unhealthy", events)
            self.assertIn("upstream_healthy", events)
        finally:
            try:
                gw.stop_checked()
            finally:
                a.stop()
                b.stop()

    def test_health_check_timeout_marks_unhealthy(self):
        a, b = FakeUpstream().start(), FakeUpstream().start()
        gw = Gateway([a.port, b.port], health_interval="200ms").start()
        try:
            a.set_health("hang")
            got, took = wait_until(lambda: gw.metric("strata_gateway_upstream_healthy", a.port) == 0,
                                   3.0)
            self.assertTrue(got, "a host whose /health/ready hangs stays healthy")
            before_a = a.proxied
            for i in range(10):
                self.assertEqual(self.get(gw, f"/ht/{i}").status, 200)
            self.assertEqual(a.proxied, before_a)
        finally:
            try:
                gw.stop_checked()
            finally:
                a.stop()
                b.stop()

    def test_health_path_option_checks_another_path(self):
        # an upstream that is not a strata service: no /health/ready (503
        # here), 200 on every other path
        a = FakeUpstream().start()
        a.set_health("fail")
        plain = Gateway([a.port], health_interval="200ms").start()
        gw = Gateway([a.port], "--health-path", "/healthz", health_interval="200ms").start()
        try:
            got, _ = wait_until(lambda: gw.metric("strata_gateway_upstream_healthy", a.port) == 1, 2.0)
            self.assertTrue(got, "a host answering 200 on --health-path stays unhealthy")
            self.assertEqual(gw.ready()[1]["status"], "up")
            checks = [r for r in a.recorded if r["path"] == "/healthz"]
            self.assertGreaterEqual(len(checks), 1, "no check reached /healthz")
            self.assertEqual(checks[0]["method"], "GET")
            got, _ = wait_until(lambda: plain.metric("strata_gateway_upstream_healthy", a.port) == 0, 2.0)
            self.assertTrue(got, "the default path /health/ready answered 503 and still passed")
            self.assertEqual(plain.ready()[1]["status"], "down")
            # panic mode: a pool whose hosts all fail their checks still gets traffic
            self.assertEqual(self.get(plain, "/x").status, 200)
        finally:
            try:
                gw.stop_checked()
                plain.stop_checked()
            finally:
                a.stop()

    def test_bad_quick_form_values_refused(self):
        for args, words in ((["--health-path", "healthz"], "--health-path"),
                            (["--health-path", "/a b"], "--health-path"),
                            (["--health-path", "/a\r\nX: y"], "--health-path"),
                            (["--trusted-hops", "two"], "--trusted-hops"),
                            (["--max-request-body", "lots"], "--max-request-body")):
            p = subprocess.run([BIN, "gateway", "--listen", f"127.0.0.1:{free_port()}",
                                "--upstream", "127.0.0.1:9", *args],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(words, p.stderr, args)


# ---- circuit breaker ----------------------------------------------------------------------

class Breaker(GatewayCase):
    def test_opens_fails_fast_and_recovers(self):
        a = FakeUpstream().start()
        a.set("status", status=500, methods={"POST"})
        gw = Gateway([a.port], health_interval="200ms").start()
        try:
            results = []
            opened_at = None
            for i in range(30):
                t = time.monotonic()
                r = exchange(gw.port, req("POST", f"/b/{i}", body=b"x"))
                results.append((r.status, time.monotonic() - t, r))
                if r.status == 503 and opened_at is None:
                    opened_at = t
            statuses = [s for s, _, _ in results]
            self.assertEqual(statuses[:20], [500] * 20, "the first 20 calls reach the upstream")
            self.assertIn(503, statuses, f"breaker never opened: {statuses}")
            first_503 = statuses.index(503)
            self.assertLessEqual(first_503, 21, statuses)
            self.assertEqual(a.proxied, first_503, "no call reached the upstream once open")
            for s, took, r in results[first_503:]:
                self.assertEqual(s, 503, r)
                self.assertLess(took, 0.05, f"open breaker answered in {took * 1000:.1f} ms")
                ra = r.get("retry-after")
                self.assertIsNotNone(ra, f"no Retry-After: {r!r}")
                self.assertTrue(ra.isdigit() and 1 <= int(ra) <= 5, ra)
                self.assert_json_error(r, 503, "service_unavailable")
            self.assertGreaterEqual(gw.metric("strata_gateway_breaker_open", a.port), 1)
            # the route's breaker (checked first) or the host's turned them away
            self.assertGreater(gw.metric("strata_gateway_breaker_rejected_total", a.port) +
                               gw.metrics()['strata_gateway_route_breaker_rejected_total{route="/*"}'], 0)
            lines = [x for x in gw.log_lines() if x.get("event") == "breaker"]
            self.assertTrue(any("open" in x.get("msg", "") for x in lines), lines)

            # the upstream recovers; after the 5 s cool-down the probes close the breaker
            a.set("ok")
            got, took = wait_until(
                lambda: exchange(gw.port, req("POST", "/probe", body=b"x")).status == 200, 8.0, 0.1)
            since_open = time.monotonic() - opened_at
            self.assertTrue(got, "traffic never recovered")
            self.assertGreaterEqual(since_open, 4.8, "breaker closed before its cool-down")
            self.assertLessEqual(since_open, 6.5, f"recovered {since_open:.2f} s after opening")
            for i in range(5):
                self.assertEqual(exchange(gw.port, req("POST", f"/after/{i}", body=b"x")).status, 200)
            self.assertEqual(gw.metric("strata_gateway_breaker_open", a.port), 0)
            msgs = [x.get("msg", "") for x in gw.log_lines() if x.get("event") == "breaker"]
            self.assertTrue(any("-> closed" in m for m in msgs), msgs)
        finally:
            try:
                gw.stop_checked()
            finally:
                a.stop()


# ---- retry budget ----------------------------------------------------------------------------

BUDGET_RATIO, BUDGET_RESERVE = 0.2, 10 * 10  # 10/s over the 10 s window (retry.h)


def paced(n, seconds, fn):
    t0 = time.monotonic()
    for i in range(n):
        target = t0 + i * seconds / n
        d = target - time.monotonic()
        if d > 0:
            time.sleep(d)
        fn(i)
    return time.monotonic() - t0


class RetryBudget(GatewayCase):
    def test_always_503_upstream_load_bounded(self):
        """Total outage: the breaker and the budget together keep the upstream's
        load within 1.2x the client's (+ the 10/s minimum)."""
        a = FakeUpstream().start()
        a.set("status", status=503)
        gw = Gateway([a.port], health_interval="1h").start()
        try:
            n = 300
            statuses = []
            took = paced(n, 3.0, lambda i: statuses.append(self.get(gw, f"/ab/{i}").status))
            self.assertEqual(set(statuses), {503})
            up = a.proxied
            bound = 1.2 * n + 10 * took
            self.assertLessEqual(up, bound, f"{up} upstream requests for {n} client requests")
        finally:
            try:
                gw.stop_checked()
            finally:
                a.stop()

    def test_budget_caps_retries(self):
        """45 % of calls fail with 503 (spread evenly, so the breaker stays
        closed at < 50 %): retries wanted ~0.65 per request, the budget admits
        0.2 per request + the reserve, and refuses the rest."""
        a = FakeUpstream().start()
        a.set("flaky", fail_ratio=0.45, status=503)
        gw = Gateway([a.port], health_interval="1h").start()
        try:
            n = 300
            took = paced(n, 3.0, lambda i: self.get(gw, f"/fb/{i}"))
            up = a.proxied
            retries = up - n
            exhausted = gw.metric("strata_gateway_retry_budget_exhausted_total")
            self.assertEqual(gw.metric("strata_gateway_breaker_open", a.port), 0,
                             "the breaker opened: the test no longer measures the budget")
            self.assertGreater(exhausted, 0, f"budget never refused a retry ({retries} retries)")
            self.assertLessEqual(up, BUDGET_RATIO * n + n + BUDGET_RESERVE,
                                 f"{up} upstream requests for {n} client requests in {took:.1f} s")
            self.assertEqual(gw.metric("strata_gateway_upstream_retries_total", a.port), retries)
        finally:
            try:
                gw.stop_checked()
            finally:
                a.stop()


# ---- request smuggling corpus ----------------------------------------------------------------

def _m(*lines, body=b""):
    out = b"".join((ln.encode("latin-1") if isinstance(ln, str) else ln) + b"\r\n" for ln in lines)
    return out + b"\r\n" + body


def _post(*headers, body=b"", version="HTTP/1.1"):
    return _m(f"POST /api/x {version}", "Host: gw.test", *headers, body=body)


def _get(*headers, target="/api/x", version="HTTP/1.1", host=True, method="GET"):
    return _m(f"{method} {target} {version}", *(["Host: gw.test"] if host else []), *headers)


CHUNKED_HELLO = b"5\r\nhello\r\n0\r\n\r\n"

# (name, raw request, expected status): every one must be refused before routing
SMUGGLING = [
    ("cl_te", _post("Content-Length: 5", "Transfer-Encoding: chunked", body=CHUNKED_HELLO), 400),
    ("te_cl", _post("Transfer-Encoding: chunked", "Content-Length: 5", body=CHUNKED_HELLO), 400),
    ("cl_te_classic_smuggle", _post("Content-Length: 6", "Transfer-Encoding: chunked",
                                    body=b"0\r\n\r\nG"), 400),
    ("te_cl_smuggle_get", _post("Transfer-Encoding: chunked", "Content-Length: 4",
                                body=b"5c\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n0\r\n\r\n"), 400),
    ("cl_duplicate_same", _post("Content-Length: 5", "Content-Length: 5", body=b"hello"), 400),
    ("cl_duplicate_different", _post("Content-Length: 5", "Content-Length: 6", body=b"hello!"), 400),
    ("cl_plus", _post("Content-Length: +5", body=b"hello"), 400),
    ("cl_hex", _post("Content-Length: 0x5", body=b"hello"), 400),
    ("cl_negative", _post("Content-Length: -1", body=b"hello"), 400),
    ("cl_empty", _post("Content-Length:", body=b"hello"), 400),
    ("cl_two_numbers", _post("Content-Length: 5 5", body=b"hello"), 400),
    ("cl_comma_list", _post("Content-Length: 5, 5", body=b"hello"), 400),
    ("cl_overflow", _post("Content-Length: 99999999999999999999999", body=b"hello"), 400),
    ("cl_alpha", _post("Content-Length: five", body=b"hello"), 400),
    ("te_gzip", _post("Transfer-Encoding: gzip", body=b"hello"), 400),
    ("te_chunked_gzip", _post("Transfer-Encoding: chunked, gzip", body=CHUNKED_HELLO), 400),
    ("te_gzip_chunked", _post("Transfer-Encoding: gzip, chunked", body=CHUNKED_HELLO), 501),
    ("te_identity", _post("Transfer-Encoding: identity", body=b"hello"), 400),
    ("te_xchunked", _post("Transfer-Encoding: xchunked", body=CHUNKED_HELLO), 400),
    ("te_http10", _post("Transfer-Encoding: chunked", body=CHUNKED_HELLO, version="HTTP/1.0"), 400),
    ("te_duplicate", _post("Transfer-Encoding: chunked", "Transfer-Encoding: chunked",
                           body=CHUNKED_HELLO), 400),
    ("te_chunked_twice", _post("Transfer-Encoding: chunked, chunked", body=CHUNKED_HELLO), 400),
    ("te_space_before_colon", _post("Transfer-Encoding : chunked", body=CHUNKED_HELLO), 400),
    ("te_obs_fold", _post("Transfer-Encoding:", " chunked", body=CHUNKED_HELLO), 400),
    ("te_nul", _post(b"Transfer-Encoding: chunked\x00", body=CHUNKED_HELLO), 400),
    ("chunk_size_non_hex", _post("Transfer-Encoding: chunked", body=b"zz\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk_size_overflow", _post("Transfer-Encoding: chunked",
                                  body=b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk_size_negative", _post("Transfer-Encoding: chunked", body=b"-5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk_no_crlf_after_data", _post("Transfer-Encoding: chunked", body=b"5\r\nhelloX0\r\n\r\n"),
     400),
    ("chunk_longer_than_size", _post("Transfer-Encoding: chunked", body=b"3\r\nhello\r\n0\r\n\r\n"),
     400),
    ("chunk_size_empty", _post("Transfer-Encoding: chunked", body=b"\r\nhello\r\n0\r\n\r\n"), 400),
    ("obs_fold_sp", _get("X-A: a", " b"), 400),
    ("obs_fold_htab", _get("X-A: a", "\tb"), 400),
    ("obs_fold_after_empty_value", _get("X-Request-Id:", " folded"), 400),
    ("space_before_colon", _m("GET /api/x HTTP/1.1", "Host : gw.test"), 400),
    ("tab_before_colon", _get("X-A\t: a"), 400),
    ("bare_cr_in_value", _get(b"X-A: a\rb"), 400),
    ("bare_cr_line_ending", b"GET /api/x HTTP/1.1\rHost: gw.test\r\n\r\n", 400),
    ("bare_lf_everywhere", b"GET /api/x HTTP/1.1\nHost: gw.test\n\n", 400),
    ("bare_lf_in_headers", b"GET /api/x HTTP/1.1\r\nHost: gw.test\nX-A: b\r\n\r\n", 400),
    ("nul_in_value", _get(b"X-A: a\x00b"), 400),
    ("del_in_value", _get(b"X-A: a\x7fb"), 400),
    ("ctl_in_value", _get(b"X-A: a\x01b"), 400),
    ("empty_header_name", _get(": value"), 400),
    ("header_without_colon", _get("NoColonHere"), 400),
    ("space_in_name", _get("X A: b"), 400),
    ("missing_host", _get(host=False), 400),
    ("duplicate_host", _get("Host: other.test"), 400),
    ("version_http20", _get(version="HTTP/2.0"), 505),
    ("version_lowercase", _get(version="http/1.1"), 400),
    ("version_http09", b"GET /api/x\r\n\r\n", 505),
    ("method_lowercase", _get(method="get"), 400),
    ("method_invalid_token", _get(method="G(T"), 400),
    ("target_space", _m("GET /api/ x HTTP/1.1", "Host: gw.test"), 400),
    ("target_control_char", _m(b"GET /api/\x01x HTTP/1.1", "Host: gw.test"), 400),
    ("target_nul", _m(b"GET /api/\x00x HTTP/1.1", "Host: gw.test"), 400),
    ("http2_preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    ("connect_method", _m("CONNECT internal.test:443 HTTP/1.1", "Host: internal.test:443"), 400),
    ("request_line_too_long", _get(target="/" + "a" * 9000), 414),
    ("header_too_large", _get("X-Big: " + "v" * (33 * 1024)), 431),
    ("too_many_headers", _get(*[f"X-F{i}: v" for i in range(100)]), 431),
    ("body_too_large", _post(f"Content-Length: {1024 ** 3 + 1}"), 413),  # over the 1 GiB default cap
    ("expect_unknown", _get("Expect: something-else"), 417),
]


class Smuggling(OneUpstreamCase):
    """Each request is refused with its status and not one byte reaches the
    upstream (active checks off, so the fake's byte counter sees only what the
    proxy sends)."""

    @classmethod
    def gateway(cls, port):
        return Gateway([port], health_interval="0s")

    def run_case(self, name, data, status):
        before = self.fake.snapshot()
        c = Conn(self.gw.port)
        try:
            try:
                c.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            _, r = c.read_final()
        finally:
            c.close()
        time.sleep(0.02)
        after = self.fake.snapshot()
        self.assertEqual(after["raw_bytes"] - before["raw_bytes"], 0,
                         f"{name}: {after['raw_bytes'] - before['raw_bytes']} bytes reached the "
                         f"upstream: {self.fake.recorded[-1:]}")
        self.assertEqual(after["connections"], before["connections"], f"{name}: upstream connected")
        self.assertIsNotNone(r, f"{name}: no response")
        self.assertEqual(r.status, status, f"{name}: {r!r}")
        self.assert_json_error(r, status)

    def test_corpus_is_large_enough(self):
        self.assertGreaterEqual(len(SMUGGLING), 40)

    def test_valid_request_does_reach_the_upstream(self):
        """The counter works: a well-formed request is counted."""
        before = self.fake.raw_bytes
        r = self.get(self.gw, "/api/valid")
        self.assertEqual(r.status, 200, r)
        self.assertGreater(self.fake.raw_bytes, before)


def _add_smuggling_tests():
    for name, data, status in SMUGGLING:
        def test(self, name=name, data=data, status=status):
            self.run_case(name, data, status)
        setattr(Smuggling, f"test_smuggle_{name}", test)


_add_smuggling_tests()


# ---- observability ------------------------------------------------------------------------------

GATEWAY_FAMILIES = [
    "strata_gateway_upstream_requests_total",
    "strata_gateway_upstream_responses_total",
    "strata_gateway_upstream_failures_total",
    "strata_gateway_upstream_retries_total",
    "strata_gateway_breaker_rejected_total",
    "strata_gateway_breaker_open",
    "strata_gateway_upstream_healthy",
    "strata_gateway_retry_budget_exhausted_total",
]


class Observability(OneUpstreamCase):
    def test_metrics_families(self):
        for i in range(3):
            self.assertEqual(self.get(self.gw, f"/m/{i}").status, 200)
        status, headers, body = self.gw.http("GET", "/metrics")
        self.assertEqual(status, 200)
        text = body.decode()
        for fam in GATEWAY_FAMILIES:
            self.assertIn(f"# TYPE {fam} ", text)
        up = f'pool="default",upstream="127.0.0.1:{self.fake.port}"'
        m = self.gw.metrics()
        self.assertGreaterEqual(m[f"strata_gateway_upstream_requests_total{{{up}}}"], 3)
        self.assertGreaterEqual(
            m[f'strata_gateway_upstream_responses_total{{{up},status="2xx"}}'], 3)
        self.assertEqual(m[f"strata_gateway_upstream_healthy{{{up}}}"], 1)
        self.assertEqual(m[f"strata_gateway_breaker_open{{{up}}}"], 0)

    def test_gateway_health_endpoints(self):
        status, _, body = self.gw.http("GET", "/health/live")
        self.assertEqual((status, json.loads(body)), (200, {"status": "up"}))
        status, doc = self.gw.ready()
        self.assertEqual(status, 200)
        self.assertEqual(doc["checks"]["upstreams"]["status"], "up", doc)

    def test_access_log_lines_are_json(self):
        r = self.get(self.gw, "/logged/path", "X-Request-Id: log-test-1")
        self.assertEqual(r.status, 200)
        lines, _ = wait_until(lambda: [x for x in self.gw.log_lines()
                                       if x.get("requestId") == "log-test-1"], 2.0)
        self.assertTrue(lines, "no access log line for the request")
        line = lines[0]
        self.assertEqual(line.get("event"), "request")
        self.assertEqual(line.get("path"), "/logged/path")
        self.assertEqual(line.get("status"), 200)
        self.assertEqual(line.get("method"), "GET")


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BusyPoll(OneUpstreamCase):
    """--busy-poll: the worker spins for the next event before sleeping, only
    while events keep coming within the limit (http.busy_poll)."""

    @classmethod
    def gateway(cls, port):
        return Gateway([port], "--busy-poll", "10ms", health_interval="60s")

    def load(self, port, seconds, pause=0.0, path="/busy/"):
        """Sequential keep-alive GETs for about `seconds`, `pause` seconds
        apart; returns how many."""
        c = Conn(port)
        n, end = 0, time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                c.send(req("GET", f"{path}{n}" if path.endswith("/") else path))
                r = c.read()
                self.assertEqual(r.status if r else None, 200, r)
                n += 1
                time.sleep(pause)
        finally:
            c.close()
        return n

    def cpu_under_load(self, server, path="/busy/"):
        """CPU seconds the process uses over 1 s of GETs 2ms apart."""
        self.load(server.port, 0.3, 0.002, path)  # let the window settle
        t0 = cpu_seconds(server.proc.pid)
        self.load(server.port, 1.0, 0.002, path)
        return cpu_seconds(server.proc.pid) - t0

    def test_keep_alive_and_new_connections_are_served(self):
        self.assertGreater(self.load(self.gw.port, 0.3), 0)
        for i in range(30):  # a new connection's first request is not held up by a spin
            r = self.get(self.gw, f"/fresh/{i}", "Connection: close")
            self.assertEqual(r.status, 200, r)

    def test_spins_under_load_and_not_when_idle(self):
        plain = Gateway([self.fake.port], health_interval="60s").start()
        try:
            used = {"plain": self.cpu_under_load(plain), "busy": self.cpu_under_load(self.gw)}
        finally:
            plain.stop_checked()
        # Between requests (2ms apart, under the 10ms limit) the busy
        # gateway keeps polling instead of sleeping.
        self.assertGreater(used["busy"], 2 * used["plain"] + 0.05, used)
        # Idle, the window decays to nothing within a few sleeps (a window
        # that stayed at 10ms would spin after every 100ms timer tick: 0.2s).
        time.sleep(1.0)
        t0 = cpu_seconds(self.gw.proc.pid)
        time.sleep(2.0)
        self.assertLess(cpu_seconds(self.gw.proc.pid) - t0, 0.05)

    def test_bad_values_are_refused(self):
        for args, why in ((["gateway", "--listen", "127.0.0.1:1", "--upstream", "127.0.0.1:2",
                            "--busy-poll", "100"], "--busy-poll 100: has no unit"),
                          (["serve", "--busy-poll", "11ms"], "--busy-poll 11ms: is out of range (0s .. 10ms)")):
            p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 2, p)
            self.assertIn(why, p.stderr)

    def test_serve_takes_it_too(self):
        with Server() as plain, Server("--busy-poll", "10ms") as busy:
            used = {"plain": self.cpu_under_load(plain, "/health/live"),
                    "busy": self.cpu_under_load(busy, "/health/live")}
        self.assertGreater(used["busy"], 2 * used["plain"] + 0.05, used)


if __name__ == "__main__":
    unittest.main()
