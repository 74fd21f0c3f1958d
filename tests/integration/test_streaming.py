"""Streaming bodies through `strata gateway`: bounded memory both ways,
backpressure, Expect: 100-continue, and failures mid-body.

Every gateway here is the no-config form with one worker; most keep the
default request-body cap (1 GiB), so the 100 MB transfers are what a user of
the quick form gets out of the box. The
upstreams are fake_upstream.py in its "sink" mode (streams a request body
through, keeping only its length and SHA-256; optionally a slow reader) and
"source" mode (answers with N bytes of a fixed pattern, optionally dying
after some of them).

Memory is read from /proc/PID/status: the growth of the gateway's peak
resident set (VmHWM after the transfer minus VmRSS before it) over a 100 MB
upload or download must stay under RSS_LIMIT. The figures are printed to
stderr ("rss ...") for docs/gateway.md."""
import hashlib
import json
import signal
import socket
import sys
import time
import unittest

from fake_upstream import FakeUpstream, source_bytes, stream_body
from test_gateway import (Conn, Gateway, GatewayCase, OneUpstreamCase, dead_port, exchange, req,
                          wait_until)
from test_routes import ConfigGateway, write

MB = 1 << 20
BIG = 100 * MB
RSS_LIMIT = 16 * MB
IO = 5.0


def proc_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


class Rss:
    """Resident memory of a process before and after a transfer."""

    def __init__(self, pid):
        self.pid = pid
        self.before = proc_kb(pid, "VmRSS") * 1024

    def growth(self, label):
        peak = proc_kb(self.pid, "VmHWM") * 1024
        grown = peak - self.before
        sys.stderr.write(f"rss {label}: before {self.before / MB:.1f} MB, peak after "
                         f"{peak / MB:.1f} MB, growth {grown / MB:.2f} MB\n")
        return grown


def pattern_sha(size):
    h = hashlib.sha256()
    for block in source_bytes(size):
        h.update(block)
    return h.hexdigest()


def send_body(sock, size, chunked=False, piece=1 << 18):
    """Sends size bytes of the pattern; returns their SHA-256."""
    h = hashlib.sha256()
    sent = 0
    for block in source_bytes(size):
        h.update(block)
        for i in range(0, len(block), piece):
            part = block[i:i + piece]
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            sent += len(part)
    if chunked:
        sock.sendall(b"0\r\n\r\n")
    return h.hexdigest()


def read_head(sock, timeout=IO):
    """Reads up to the end of a response head: (status, headers dict, rest)."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise AssertionError(f"closed before a head: {buf!r}")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode()
    return status, headers, rest


def read_answer(sock, timeout=IO):
    """One whole (Content-Length framed) answer: (status, body)."""
    status, headers, body = read_head(sock, timeout)
    while len(body) < int(headers.get("content-length", "0")):
        d = sock.recv(65536)
        if not d:
            break
        body += d
    return status, body


def upload(port, head, size, chunked=False, expect_100=False, timeout=IO):
    """Sends head then size bytes of the pattern on a new connection (after
    a 100 Continue when expect_100). Returns (status, answer body, the sent
    bytes' SHA-256)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head)
        if expect_100:
            status, _, _ = read_head(s, timeout)
            if status != 100:
                raise AssertionError(f"{status} instead of 100 Continue")
        sha = send_body(s, size, chunked=chunked)
        status, body = read_answer(s, timeout)
    finally:
        s.close()
    return status, body, sha


def read_body(sock, headers, rest, slow=0.0, piece=1 << 18, timeout=IO):
    """Reads a body framed by headers, hashing it. Returns (sha256, length,
    complete, closed): complete when the framing says the body ended."""
    h = hashlib.sha256()
    n = 0
    buf = bytearray(rest)
    closed = False
    sock.settimeout(timeout)

    def more():
        nonlocal closed
        if slow:
            time.sleep(slow)
        try:
            d = sock.recv(piece)
        except (ConnectionResetError, socket.timeout):
            d = b""
        closed = not d
        buf.extend(d)
        return bool(d)

    def on_data(data):
        nonlocal n
        h.update(data)
        n += len(data)

    chunked = headers.get("transfer-encoding", "").lower() == "chunked"
    complete = stream_body(more, buf, chunked, int(headers.get("content-length", "0")), on_data)
    return h.hexdigest(), n, complete, closed


def wait_closed(sock, timeout=IO):
    """True when the peer closes (EOF or reset) within timeout; bytes read meanwhile are dropped."""
    sock.settimeout(timeout)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return False


class StreamCase(OneUpstreamCase):
    @classmethod
    def gateway(cls, port):
        return Gateway([port], health_interval="0s")  # the default body cap

    def setUp(self):
        self.fake.set("ok")
        self.warm()
        self.fake.reset_counters()

    def warm(self):
        """One small request through, so the before figure is a serving gateway's."""
        r = exchange(self.gw.port, req("GET", "/warm"))
        self.assertEqual(r.status, 200, r)

    def upload(self, size, chunked=False, slow_ms=0):
        self.fake.set("sink", read_delay_ms=slow_ms, read_size=1 << 18)
        rss = Rss(self.gw.proc.pid)
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
        t0 = time.monotonic()
        status, body, sha = upload(self.gw.port, req("POST", "/upload", framing), size,
                                   chunked=chunked, timeout=30)
        took = time.monotonic() - t0
        self.assertEqual(status, 200, body[:300])
        doc = json.loads(body)
        self.assertEqual(doc["bodyLength"], size)
        self.assertEqual(doc["sha256"], sha, "the upstream got other bytes")
        sink = self.fake.sunk[-1]
        self.assertTrue(sink["complete"])
        sys.stderr.write(f"upload {size / MB:.0f} MB {'chunked' if chunked else 'length'}"
                         f"{' slow reader' if slow_ms else ''}: {took:.2f} s\n")
        return rss

    # ---- uploads --------------------------------------------------------------

    def test_upload_100mb_bounded_memory(self):
        rss = self.upload(BIG)
        self.assertLess(rss.growth("upload 100 MB"), RSS_LIMIT)

    def test_upload_100mb_chunked_to_a_slow_reader(self):
        rss = self.upload(BIG, chunked=True, slow_ms=4)
        self.assertLess(rss.growth("upload 100 MB chunked, slow upstream"), RSS_LIMIT)
        rec = self.fake.recorded[-1]
        names = [k.lower() for k, _ in rec["headers"]]
        self.assertIn("transfer-encoding", names)
        self.assertNotIn("content-length", names)

    # ---- downloads ------------------------------------------------------------

    def download(self, size, chunked, slow):
        self.fake.set("source", size=size, chunked=chunked)
        rss = Rss(self.gw.proc.pid)
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=30)
        try:
            s.sendall(req("GET", "/download"))
            t0 = time.monotonic()
            status, headers, rest = read_head(s)
            sha, n, complete, _ = read_body(s, headers, rest, slow=slow)
            took = time.monotonic() - t0
        finally:
            s.close()
        self.assertEqual(status, 200)
        self.assertTrue(complete, f"{n} bytes, then the body stopped")
        self.assertEqual(n, size)
        self.assertEqual(sha, pattern_sha(size), "the client got other bytes")
        sys.stderr.write(f"download {size / MB:.0f} MB {'chunked' if chunked else 'length'}"
                         f"{' slow client' if slow else ''}: {took:.2f} s\n")
        return rss, headers

    def test_download_100mb_to_a_slow_client(self):
        rss, headers = self.download(BIG, chunked=False, slow=0.004)
        self.assertEqual(headers.get("content-length"), str(BIG))
        self.assertLess(rss.growth("download 100 MB, slow client"), RSS_LIMIT)

    def test_download_chunked_upstream_relayed_chunked(self):
        rss, headers = self.download(20 * MB, chunked=True, slow=0)
        self.assertEqual(headers.get("transfer-encoding"), "chunked")
        self.assertNotIn("content-length", headers)
        self.assertLess(rss.growth("download 20 MB chunked"), RSS_LIMIT)

    def test_http10_client_gets_a_close_delimited_body(self):
        self.fake.set("source", size=2 * MB, chunked=True)
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=IO)
        try:
            s.sendall(req("GET", "/old", version="HTTP/1.0"))
            status, headers, rest = read_head(s)
            self.assertEqual(status, 200)
            self.assertNotIn("transfer-encoding", headers)
            self.assertNotIn("content-length", headers)
            h = hashlib.sha256(rest)
            n = len(rest)
            while True:
                d = s.recv(1 << 18)
                if not d:
                    break
                h.update(d)
                n += len(d)
        finally:
            s.close()
        self.assertEqual(n, 2 * MB)
        self.assertEqual(h.hexdigest(), pattern_sha(2 * MB))

    def test_keep_alive_after_a_streamed_answer(self):
        self.fake.set("source", size=3 * MB, chunked=True)
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=IO)
        try:
            for i in range(3):
                s.sendall(req("GET", f"/again/{i}"))
                status, headers, rest = read_head(s)
                sha, n, complete, closed = read_body(s, headers, rest)
                self.assertEqual((status, n, complete, closed), (200, 3 * MB, True, False))
        finally:
            s.close()

    def test_pipelined_streamed_bodies_answered_in_order(self):
        self.fake.set("sink")
        big = b"".join(source_bytes(300 * 1024))
        data = (req("POST", "/p1", "Transfer-Encoding: chunked") + b"a\r\n0123456789\r\n0\r\n\r\n" +
                req("PUT", "/p2", f"Content-Length: {len(big)}") + big +
                req("GET", "/p3"))
        c = Conn(self.gw.port)
        try:
            c.send(data)
            got = [c.read(timeout=IO) for _ in range(3)]
        finally:
            c.close()
        self.assertTrue(all(got), got)
        self.assertEqual([(r.status, r.json()["path"], r.json()["bodyLength"]) for r in got],
                         [(200, "/p1", 10), (200, "/p2", len(big)), (200, "/p3", 0)])
        self.assertEqual(got[1].json()["sha256"], hashlib.sha256(big).hexdigest())

    def test_head_of_a_large_answer(self):
        self.fake.set("source", size=5 * MB)
        c = Conn(self.gw.port)
        try:
            c.send(req("HEAD", "/big"))
            r = c.read(head=True)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.get("content-length"), str(5 * MB))
            self.fake.set("ok")
            c.send(req("GET", "/after-head"))
            r = c.read()
            self.assertEqual(r.json()["path"], "/after-head")
        finally:
            c.close()

    # ---- Expect: 100-continue ---------------------------------------------------

    def test_expect_continue_sent_when_the_body_is_wanted(self):
        self.fake.set("sink")
        size = 300 * 1024
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=IO)
        try:
            s.sendall(req("PUT", "/up", "Expect: 100-continue", f"Content-Length: {size}"))
            status, headers, rest = read_head(s)
            self.assertEqual(status, 100)
            self.assertEqual(self.fake.proxied, 0, "the upstream heard of it before the body")
            sha = send_body(s, size)
            status, body = read_answer(s)
            self.assertEqual(status, 200, body)
            doc = json.loads(body)
            self.assertEqual((doc["bodyLength"], doc["sha256"]), (size, sha))
            self.assertNotIn("expect", [k.lower() for k, _ in self.fake.recorded[-1]["headers"]])
        finally:
            s.close()

    def test_expect_continue_small_body_sent_whole(self):
        c = Conn(self.gw.port)
        try:
            c.send(req("POST", "/small", "Expect: 100-continue", "Content-Length: 11"))
            r = c.read()
            self.assertEqual(r.status, 100, r)
            c.send(b"hello world")
            r = c.read()
            self.assertEqual(r.status, 200, r)
            rec = self.fake.recorded[-1]
            self.assertEqual(rec["body"], b"hello world")
            self.assertEqual([v for k, v in rec["headers"] if k.lower() == "content-length"], ["11"])
        finally:
            c.close()

    def test_expect_continue_over_the_cap_is_413_without_100(self):
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=IO)
        try:
            s.sendall(req("POST", "/huge", "Expect: 100-continue",
                          f"Content-Length: {2048 * MB}"))  # over the 1 GiB default
            status, headers, _ = read_head(s)
            self.assertEqual(status, 413)
            self.assertEqual(headers.get("connection"), "close")
        finally:
            s.close()
        self.assertEqual(self.fake.proxied, 0)

    # ---- failures mid-body --------------------------------------------------------

    def test_upstream_dies_mid_download_with_length(self):
        self.fake.set("source", size=10 * MB, die_after=1 * MB)
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=IO)
        try:
            s.sendall(req("GET", "/dies"))
            status, headers, rest = read_head(s)
            self.assertEqual(status, 200)
            self.assertEqual(headers.get("content-length"), str(10 * MB))
            _, n, complete, closed = read_body(s, headers, rest)
        finally:
            s.close()
        self.assertFalse(complete)
        self.assertTrue(closed, "the client connection stayed open")
        self.assertLess(n, 10 * MB)
        self.assert_gateway_serves()

    def test_upstream_dies_mid_download_chunked(self):
        self.fake.set("source", size=10 * MB, chunked=True, die_after=1 * MB)
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=IO)
        try:
            s.sendall(req("GET", "/dies-chunked"))
            status, headers, rest = read_head(s)
            self.assertEqual(status, 200)
            self.assertEqual(headers.get("transfer-encoding"), "chunked")
            _, n, complete, closed = read_body(s, headers, rest)
        finally:
            s.close()
        self.assertFalse(complete, "a terminating chunk was sent for a cut body")
        self.assertTrue(closed)
        self.assert_gateway_serves()

    def test_upstream_answers_before_the_upload_ends(self):
        self.fake.set("source", size=1 * MB, early=True)
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=IO)
        try:
            s.sendall(req("POST", "/early", f"Content-Length: {50 * MB}"))
            for block in source_bytes(256 * 1024):
                s.sendall(block)
            status, headers, rest = read_head(s)
            sha, n, complete, _ = read_body(s, headers, rest)
            self.assertEqual((status, n, complete), (200, 1 * MB, True))
            self.assertEqual(sha, pattern_sha(1 * MB))
            self.assertEqual(headers.get("connection"), None)
            self.assertTrue(wait_closed(s), "the rest of the upload is never read: the "
                            "connection must close after the answer")
        finally:
            s.close()
        self.assert_gateway_serves()

    def test_client_aborts_mid_upload(self):
        self.fake.set("sink")
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=IO)
        s.sendall(req("POST", "/aborted", f"Content-Length: {50 * MB}"))
        sent = 0
        for block in source_bytes(5 * MB):
            s.sendall(block)
            sent += len(block)
        got, _ = wait_until(lambda: self.fake.raw_bytes > 2 * MB, IO)
        self.assertTrue(got, "the upload never reached the upstream")
        s.close()
        done, _ = wait_until(lambda: self.fake.sunk, IO)
        self.assertTrue(done, "the upstream connection was not closed")
        self.assertFalse(self.fake.sunk[-1]["complete"])
        self.assertLess(self.fake.sunk[-1]["bodyLength"], 50 * MB)
        self.assert_gateway_serves()
        lines = [l for l in self.gw.log_lines() if l.get("path") == "/aborted"]
        self.assertTrue(lines, "no access line for the aborted upload")
        self.assertEqual(lines[-1]["status"], 499)

    def test_client_closes_mid_download(self):
        self.fake.set("source", size=200 * MB, piece=1 << 18)
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=IO)
        s.sendall(req("GET", "/walk-away"))
        read_head(s)
        s.recv(1 << 16)
        s.close()
        # the gateway drops the upstream connection: the source's sends fail
        gone, _ = wait_until(lambda: self.fake.sourced, IO)
        self.assertTrue(gone, "the upstream connection stayed open")
        self.assertFalse(self.fake.sourced[-1]["complete"])
        self.assertLess(self.fake.sourced[-1]["sent"], 200 * MB)
        self.assert_gateway_serves()

    def test_bad_chunked_body_from_the_client(self):
        self.fake.set("sink")
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=IO)
        try:
            s.sendall(req("POST", "/bad", "Transfer-Encoding: chunked") +
                      b"10000\r\n" + b"x" * 0x10000 + b"\r\nzz\r\n")
            status, headers, _ = read_head(s)
            self.assertEqual(status, 400)
            self.assertEqual(headers.get("connection"), "close")
        finally:
            s.close()
        self.assert_gateway_serves()

    def assert_gateway_serves(self):
        self.fake.set("ok")
        r = exchange(self.gw.port, req("GET", "/still-here"))
        self.assertEqual(r.status, 200, r)


class RefusedBeforeTheBody(GatewayCase):
    """A request refused before its handler reads the body never gets a 100
    Continue: the client keeps its body. From a config file: API keys, a rate
    limit, routes, and a short body timeout."""

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeUpstream().start()
        cls.fake.set("sink")
        cls.key = "k-" + hashlib.sha256(b"stream").hexdigest()[:24]
        import tempfile
        d = tempfile.mkdtemp(prefix="strata-stream-keys-")
        keys = write(d, "keys", f"svc {hashlib.sha256(cls.key.encode()).hexdigest()}\n")
        cls.gw = ConfigGateway(f"""
http:
  body_timeout: 500ms
gateway:
  listen: 127.0.0.1:PORT
  api_keys_file: {keys}
  max_request_body: 64m
  pools:
    up: {{hosts: [127.0.0.1:{cls.fake.port}]}}
  routes:
    - match: {{prefix: /limited}}
      pool: up
      rate_limit: {{rate: 1, burst: 1}}
    - match: {{prefix: /api}}
      pool: up
""").start()

    @classmethod
    def tearDownClass(cls):
        try:
            Gateway.stop_checked(cls.gw)
        finally:
            cls.fake.stop()

    def refused(self, path, *headers):
        before = self.fake.proxied
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=IO)
        try:
            s.sendall(req("POST", path, "Expect: 100-continue", f"Content-Length: {10 * MB}",
                          *headers))
            status, headers_, _ = read_head(s)
            closed = wait_closed(s)
        finally:
            s.close()
        self.assertEqual(self.fake.proxied, before, "the refused request reached the upstream")
        return status, headers_, closed

    def test_unauthenticated_is_401_without_100(self):
        status, headers, closed = self.refused("/api/files")
        self.assertEqual(status, 401)
        self.assertEqual(headers.get("connection"), "close")
        self.assertTrue(closed)

    def test_no_route_is_404_without_100(self):
        status, _, _ = self.refused("/nowhere", f"X-Api-Key: {self.key}")
        self.assertEqual(status, 404)

    def test_rate_limited_is_429_without_100(self):
        r = exchange(self.gw.port, req("GET", "/limited/a", f"X-Api-Key: {self.key}"))
        self.assertEqual(r.status, 200, r)
        status, headers, _ = self.refused("/limited/b", f"X-Api-Key: {self.key}")
        self.assertEqual(status, 429)
        self.assertIn("retry-after", headers)

    def test_accepted_gets_100_then_the_body_streams(self):
        size = 2 * MB
        status, body, sha = upload(self.gw.port, req("POST", "/api/up", "Expect: 100-continue",
                                                     f"Content-Length: {size}",
                                                     f"X-Api-Key: {self.key}"),
                                   size, expect_100=True)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["sha256"], sha)

    def test_stalled_body_is_408_and_the_upstream_is_dropped(self):
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=IO)
        try:
            s.sendall(req("PUT", "/api/stall", f"Content-Length: {1 * MB}",
                          f"X-Api-Key: {self.key}"))
            for block in source_bytes(200 * 1024):
                s.sendall(block)
            status, headers, _ = read_head(s)  # then nothing more is sent
            self.assertEqual(status, 408)
            self.assertEqual(headers.get("connection"), "close")
        finally:
            s.close()
        got, _ = wait_until(lambda: self.fake.sunk and not self.fake.sunk[-1]["complete"], IO)
        self.assertTrue(got, "the upstream kept waiting for the rest of the body")


class CachingRoute(GatewayCase):
    """On a route with a response cache, an answer the cache can hold is kept
    whole and stored; a larger one streams and is not stored."""

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeUpstream().start()
        cls.gw = ConfigGateway(f"""
gateway:
  listen: 127.0.0.1:PORT
  pools:
    up: {{hosts: [127.0.0.1:{cls.fake.port}]}}
  routes:
    - match: {{prefix: /}}
      pool: up
      cache: {{ttl: 60s}}
""").start()

    @classmethod
    def tearDownClass(cls):
        try:
            Gateway.stop_checked(cls.gw)
        finally:
            cls.fake.stop()

    def get_twice(self, path, size):
        self.fake.set("source", size=size)
        before = self.fake.proxied
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=IO)
            try:
                s.sendall(req("GET", path))
                status, headers, rest = read_head(s)
                sha, n, complete, _ = read_body(s, headers, rest)
            finally:
                s.close()
            self.assertEqual((status, n, complete), (200, size, True))
            self.assertEqual(sha, pattern_sha(size))
        return self.fake.proxied - before, headers

    def test_answer_the_cache_can_hold_is_stored(self):
        fetched, headers = self.get_twice("/small-enough", 1 * MB)
        self.assertEqual(fetched, 1, "the second GET should be a cache hit")
        self.assertIn("age", headers)

    def test_larger_answer_streams_and_is_not_stored(self):
        rss = Rss(self.gw.proc.pid)
        fetched, _ = self.get_twice("/too-big", 40 * MB)
        self.assertEqual(fetched, 2)
        self.assertLess(rss.growth("cached route, 2 x 40 MB streamed"), RSS_LIMIT)


class Shutdown(GatewayCase):
    def test_second_signal_cuts_transfers_in_both_directions(self):
        fake = FakeUpstream().start()
        gw = Gateway([fake.port], "--max-request-body", "256m", health_interval="0s").start()
        try:
            fake.set("source", size=200 * MB)
            down = socket.create_connection(("127.0.0.1", gw.port), timeout=IO)
            down.sendall(req("GET", "/long-download"))
            read_head(down)
            up = socket.create_connection(("127.0.0.1", gw.port), timeout=IO)
            up.sendall(req("POST", "/long-upload", f"Content-Length: {200 * MB}"))
            for block in source_bytes(2 * MB):
                up.sendall(block)
            gw.proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)  # draining: both transfers still run
            gw.proc.send_signal(signal.SIGINT)
            rc = gw.proc.wait(10)
            err = gw.stderr()
            self.assertEqual(rc, 0, err[-2000:])
            self.assertNotIn("AddressSanitizer", err)
            self.assertNotIn("runtime error:", err)
            self.assertTrue(wait_closed(down), "the download was not cut")
            down.close()
            up.close()
        finally:
            if gw.proc.poll() is None:
                gw.proc.kill()
            fake.stop()


class Retries(GatewayCase):
    """Retries where the body can be sent again."""

    def tearDown(self):
        for x in getattr(self, "cleanup", []):
            x()

    def start(self, *ups):
        fakes = [FakeUpstream().start() for _ in ups]
        hosts = [f.port if u else dead_port() for f, u in zip(fakes, ups)]
        gw = Gateway(hosts, "--max-request-body", "64m", health_interval="0s").start()
        self.cleanup = [gw.stop_checked] + [f.stop for f in fakes]
        return gw, fakes

    def test_small_chunked_body_retried_after_503(self):
        gw, (fake,) = self.start(True)
        fake.set("status", status=503, times=1)
        body = b"x" * 10000
        data = req("POST", "/retry", "Idempotency-Key: k1", "Transfer-Encoding: chunked") + \
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        r = exchange(gw.port, data)
        self.assertEqual(r.status, 200, r)
        recs = fake.recorded
        self.assertEqual(len(recs), 2)
        self.assertEqual([x["body"] for x in recs], [body, body])

    def test_large_body_retried_when_nothing_was_sent(self):
        gw, (_, fake) = self.start(False, True)
        fake.set("sink")
        size = 5 * MB
        status, body, sha = upload(gw.port, req("POST", "/connect-fails-first",
                                                f"Content-Length: {size}"), size)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["sha256"], sha)

    def test_large_body_not_retried_once_sent(self):
        gw, (fake,) = self.start(True)
        fake.set("status", status=503, times=1)
        size = 1 * MB
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=IO)
        try:
            s.sendall(req("PUT", "/no-replay", "Idempotency-Key: k2", f"Content-Length: {size}"))
            send_body(s, size)
            status, _, _ = read_head(s)
        finally:
            s.close()
        self.assertEqual(status, 503, "past the retry buffer a failed try is not retried")
        self.assertEqual(fake.proxied, 1)


if __name__ == "__main__":
    unittest.main()
