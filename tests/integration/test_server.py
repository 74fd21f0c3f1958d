"""Lifecycle, observability and CLI of `strata serve`, against the real binary."""
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import BIN, Server, free_port, parse_responses

GET_LIVE = b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n"


class HealthAndMetrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Server(workers=2).start()

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()

    def test_live(self):
        status, headers, body = self.s.http("GET", "/health/live")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {"status": "up"})
        self.assertEqual(headers["content-type"], "application/json")
        self.assertIn("date", headers)

    def test_ready_shape(self):
        status, headers, body = self.s.http("GET", "/health/ready")
        self.assertEqual(status, 200)
        doc = json.loads(body)
        self.assertIn(doc["status"], ("up", "degraded"))
        self.assertIsInstance(doc["checks"], dict)
        self.assertEqual(doc["checks"]["server"]["status"], "up")

    def test_metrics_pass_promtool(self):
        for _ in range(20):
            self.s.http("GET", "/health/live")
        self.s.http("GET", "/nope")
        self.s.http("POST", "/health/live")
        status, headers, body = self.s.http("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        text = body.decode()
        for family in ("strata_http_requests_total", "strata_http_request_duration_seconds_bucket",
                       "strata_http_requests_in_flight", "strata_http_connections_open",
                       "process_resident_memory_bytes", "process_cpu_seconds_total",
                       "process_open_fds"):
            self.assertIn(family, text)
        self.assertRegex(text, r'strata_http_requests_total\{route="/health/live",method="GET",status="2xx"\} \d+')
        self.assertRegex(text, r'strata_http_requests_total\{route="none",method="GET",status="4xx"\} \d+')
        self.assertRegex(text, r'strata_http_requests_total\{route="/health/live",method="POST",status="4xx"\} \d+|route="none",method="POST",status="4xx"')
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool (Debian package prometheus) is required")
        p = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())

    def test_head_has_no_body(self):
        data, closed = self.s.raw(b"HEAD /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        head, _, rest = data.partition(b"\r\n\r\n")
        self.assertIn(b"HTTP/1.1 200", head)
        self.assertIn(b"Content-Length: 15", head)
        self.assertEqual(rest, b"")
        self.assertTrue(closed)


def prom_quantile(buckets, q):
    """Prometheus histogram_quantile over [(le, cumulative)] sorted by le."""
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0
    for le, c in buckets:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-12)
        prev_le, prev_c = le, c
    return prev_le


def exact_quantile(values, q):
    """The value of rank ceil(q*n), as a histogram's cumulative count sees it."""
    v = sorted(values)
    return v[max(0, math.ceil(q * len(v)) - 1)]


class HistogramLayout(unittest.TestCase):
    def test_every_route_gives_the_same_edges(self):
        # Prometheus sums bucket series by le (histogram_quantile over
        # routes): every series of the family must give the same le values
        with Server(workers=1) as s:
            for i in range(300):
                s.http("GET", "/health/live" if i % 3 else "/health/ready")
            s.http("GET", "/missing")
            status, _, body = s.http("GET", "/metrics")
            self.assertEqual(status, 200)
        series = {}
        for m in re.finditer(r'strata_http_request_duration_seconds_bucket\{route="([^"]*)",le="([^"]+)"\} (\d+)',
                             body.decode()):
            series.setdefault(m.group(1), []).append((m.group(2), int(m.group(3))))
        self.assertGreaterEqual(len(series), 3, list(series))
        layouts = {tuple(le for le, _ in v) for v in series.values()}
        self.assertEqual(len(layouts), 1, "routes give different le values")
        total = [sum(v[i][1] for v in series.values()) for i in range(len(next(iter(layouts))))]
        self.assertEqual(total, sorted(total), "the sum by le goes down somewhere")


class LatencyHistogramAccuracy(unittest.TestCase):
    """p50/p95/p99 read from /metrics agree within 10% with the true values:
    the per-request durations the server itself logs (same clock reading)."""

    def test_quantiles_match_logged_durations(self):
        with Server(workers=1) as s:
            sock = s.connect()
            n = 3000
            for i in range(n):
                # mixing routes of different cost spreads the distribution
                path = b"/health/ready" if i % 3 else b"/health/live"
                sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n")
                buf = b""
                while b"\r\n\r\n" not in buf or len(parse_responses(buf)) < 1 or len(buf) < buf.index(b"\r\n\r\n") + 4 + int(re.search(rb"Content-Length: (\d+)", buf).group(1)):
                    buf += sock.recv(65536)
            sock.close()
            status, _, body = s.http("GET", "/metrics")
            time.sleep(0.3)  # access lines are flushed once per loop turn
            lines = [l for l in s.log_lines() if l.get("event") == "request"]
        for route in ("/health/live", "/health/ready"):
            durations = [l["durationMs"] / 1000.0 for l in lines if l["route"] == route]
            self.assertGreater(len(durations), 900)
            buckets = []
            for m in re.finditer(r'strata_http_request_duration_seconds_bucket\{route="%s",le="([^"]+)"\} (\d+)' % re.escape(route), body.decode()):
                le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
                buckets.append((le, int(m.group(2))))
            self.assertEqual(buckets[-1][1], len(durations))
            for q in (0.5, 0.95, 0.99):
                truth = exact_quantile(durations, q)
                est = prom_quantile(buckets, q)
                self.assertLess(abs(est - truth) / truth, 0.10, f"{route} p{int(q*100)}: est {est} true {truth}")


class Logs(unittest.TestCase):
    def test_every_line_is_json_with_the_fields(self):
        with Server() as s:
            s.http("GET", "/health/live", headers={"X-Request-Id": "client-id.1_2"})
            s.http("GET", "/missing?x=1")
            # hostile bytes: every answer must still log a parseable line
            for junk in (b"GET /\x01\x02 HTTP/1.1\r\n\r\n", b"\xff\xfe\x00garbage\r\n\r\n",
                         b"GET /a\"b\\c HTTP/1.1\r\nHost: x\r\n\r\n",
                         b"GET /\xc3\x28 HTTP/1.1\r\nHost: x\r\n\r\n",
                         b"GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: bad id\x07\r\n\r\n"):
                s.raw(junk, timeout=1)
            s.stop()
            with open(s.log_path, "rb") as f:
                raw = f.read()
        text = raw.decode("utf-8")  # strict: invalid UTF-8 would raise
        lines = [json.loads(l) for l in text.splitlines()]
        req = [l for l in lines if l.get("event") == "request"]
        self.assertGreaterEqual(len(req), 7)
        for l in req:
            for k in ("time", "level", "requestId", "method", "path", "route", "status",
                      "durationMs", "bytesIn", "bytesOut", "remote"):
                self.assertIn(k, l)
            self.assertEqual(l["level"], "info")
            self.assertRegex(l["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        first = req[0]
        self.assertEqual(first["requestId"], "client-id.1_2")
        self.assertEqual(first["route"], "/health/live")
        self.assertEqual(first["status"], 200)
        self.assertGreater(first["bytesIn"], 30)
        self.assertGreater(first["bytesOut"], 100)
        self.assertTrue(first["remote"].startswith("127.0.0.1:"))
        events = [l["event"] for l in lines]
        self.assertIn("listening", events)
        self.assertIn("stopped", events)

    def test_log_level_warn_silences_access_lines(self):
        with Server(log_level="warn") as s:
            for _ in range(5):
                s.http("GET", "/health/live")
            s.stop()
            lines = s.log_lines()
        self.assertFalse([l for l in lines if l.get("event") == "request"])
        self.assertFalse([l for l in lines if l.get("level") == "info"])


class RequestIds(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Server().start()

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()

    def test_valid_id_is_echoed(self):
        rid = "A" * 128
        _, h, _ = self.s.http("GET", "/health/live", headers={"X-Request-Id": rid})
        self.assertEqual(h["x-request-id"], rid)

    def test_invalid_ids_are_replaced(self):
        for bad in ("A" * 129, "has space", "semi;colon", "ünï"):
            _, h, _ = self.s.http("GET", "/health/live", headers={"X-Request-Id": bad.encode("utf-8") if not bad.isascii() else bad})
            self.assertNotEqual(h["x-request-id"], bad)
            self.assertRegex(h["x-request-id"], r"^[A-Za-z0-9._-]{1,128}$")

    def test_generated_ids_are_unique(self):
        ids = {self.s.http("GET", "/health/live")[1]["x-request-id"] for _ in range(50)}
        self.assertEqual(len(ids), 50)

    def test_error_body_carries_request_id(self):
        status, h, body = self.s.http("GET", "/nope", headers={"X-Request-Id": "trace-me"})
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body)["error"], {"code": "not_found", "message": "No resource matches this path.", "requestId": "trace-me"})

    def test_traceparent_is_logged(self):
        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        self.s.http("GET", "/health/live", headers={"traceparent": tp, "X-Request-Id": "tp-1"})
        self.s.http("GET", "/health/live", headers={"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "X-Request-Id": "tp-2"})
        time.sleep(0.3)
        lines = {l.get("requestId"): l for l in self.s.log_lines()}
        self.assertEqual(lines["tp-1"]["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736")
        self.assertNotIn("traceId", lines["tp-2"])


class Shutdown(unittest.TestCase):
    def test_sigterm_lets_in_flight_requests_finish(self):
        with Server(workers=2) as s:
            # three requests in flight: a body half sent, headers half sent,
            # and a request whose body arrives in pieces
            a = s.connect(); a.sendall(b"POST /health/live HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234")
            b = s.connect(); b.sendall(b"GET /health/live HTTP/1.1\r\nHo")
            idle = s.connect(); idle.sendall(GET_LIVE); idle.recv(4096)  # now idle keep-alive
            time.sleep(0.2)
            s.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            # the idle connection is closed at once
            idle.settimeout(2)
            self.assertEqual(idle.recv(4096), b"")
            # readiness would say down now, but new connections are refused
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", s.port), timeout=1).recv(1)
            a.sendall(b"56789")
            b.sendall(b"st: t\r\n\r\n")
            ra, _ = s.raw(b"", sock=a, timeout=3)
            rb, _ = s.raw(b"", sock=b, timeout=3)
            self.assertIn(b"HTTP/1.1 405", ra)  # POST on a GET route: answered, in full
            self.assertIn(b"Connection: close", ra)
            self.assertIn(b"HTTP/1.1 200", rb)
            self.assertIn(b"Connection: close", rb)
            self.assertEqual(s.proc.wait(5), 0)

    def test_drain_timeout_cuts_stragglers(self):
        with Server(config_text="http:\n  drain_timeout: 1s\n") as s:
            c = s.connect(); c.sendall(b"GET /health/live HTTP/1.1\r\nHo")
            time.sleep(0.1)
            t0 = time.time()
            s.proc.send_signal(signal.SIGTERM)
            self.assertEqual(s.proc.wait(5), 0)
            self.assertLess(time.time() - t0, 3)
            self.assertGreaterEqual(time.time() - t0, 0.9)

    def test_sigterm_as_soon_as_it_accepts_drains_cleanly(self):
        # the listener accepts before the signal handlers exist; a SIGTERM
        # in that gap (a supervisor stopping a child it just started) used
        # to kill the process outright (-15) in about a third of the tries
        for i in range(30):
            port = free_port()
            data = tempfile.mkdtemp(prefix="strata-early-term-")
            # serve, and the gateway (which also holds SIGHUP back meanwhile)
            cmd = ["serve", "--data", data] if i % 2 else ["gateway", "--upstream", "127.0.0.1:9"]
            p = subprocess.Popen([BIN, *cmd, "--listen", f"127.0.0.1:{port}", "--workers", "2"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                deadline = time.time() + 10
                while time.time() < deadline:
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                        break
                    except OSError:
                        time.sleep(0.001)
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(10), 0, f"try {i}: {cmd[0]}")
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                shutil.rmtree(data, ignore_errors=True)

    def test_sigint_exits_zero_when_idle(self):
        with Server() as s:
            s.http("GET", "/health/live")
            self.assertEqual(s.stop(signal.SIGINT), 0)

    def test_keepalive_clients_under_sigterm_get_complete_answers(self):
        with Server(workers=2) as s:
            errors, outcome = [], {}

            def read_answer(sock):
                """One whole answer's head, or None when the server closed
                between answers (allowed while it drains)."""
                data = b""
                while b"\r\n\r\n" not in data:
                    d = sock.recv(4096)
                    if not d:
                        if data:
                            raise AssertionError(f"closed inside a head: {data!r}")
                        return None
                    data += d
                head, _, rest = data.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                want = int(m.group(1)) if m else 0
                while len(rest) < want:
                    d = sock.recv(4096)
                    if not d:
                        raise AssertionError(f"closed inside a body: {head!r} {rest!r}")
                    rest += d
                return head

            def client(k):
                # until the server closes, bounded in time, not in requests
                # (a fast machine once ran out of a request count first)
                stop_at = time.monotonic() + 20
                try:
                    sock = s.connect()
                    while time.monotonic() < stop_at:
                        try:
                            sock.sendall(GET_LIVE)
                            head = read_answer(sock)
                        except (ConnectionResetError, BrokenPipeError):
                            head = None
                        if head is None:
                            outcome[k] = "closed between answers"
                            return
                        if not head.startswith(b"HTTP/1.1 200"):
                            errors.append(head)
                        if b"Connection: close" in head:
                            outcome[k] = "told to close"
                            return
                    outcome[k] = "never closed"
                except (OSError, AssertionError) as e:
                    errors.append(e)
                    outcome[k] = repr(e)

            threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            s.proc.send_signal(signal.SIGTERM)
            for t in threads:
                t.join(25)
            self.assertEqual(s.proc.wait(10), 0)
            self.assertEqual(errors, [])
            self.assertEqual(sorted(outcome), list(range(8)), outcome)
            self.assertNotIn("never closed", outcome.values(), outcome)


class Cli(unittest.TestCase):
    def run_bin(self, *args):
        return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=10)

    def test_help_and_version(self):
        r = self.run_bin("--help")
        self.assertEqual(r.returncode, 0)
        for word in ("serve", "check", "--listen", "--workers", "--data", "--config"):
            self.assertIn(word, r.stdout)
        r = self.run_bin("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^strata \d+\.\d+\.\d+")

    def test_unknown_command_and_option(self):
        self.assertEqual(self.run_bin("frobnicate").returncode, 2)
        self.assertEqual(self.run_bin("serve", "--bogus").returncode, 2)
        r = self.run_bin("serve", "--listen", "nonsense")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--listen", r.stderr)

    def test_check_reports_every_error_with_its_line(self):
        d = tempfile.mkdtemp()
        good = os.path.join(d, "good.yaml")
        with open(good, "w") as f:
            f.write("server:\n  listen: 127.0.0.1:9000\n  workers: 2\nhttp:\n  max_body: 2m\n")
        r = self.run_bin("check", good)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ok", r.stdout)
        bad = os.path.join(d, "bad.yaml")
        with open(bad, "w") as f:
            f.write("server:\n  lisen: 1.2.3.4:80\n  workers: lots\nhttp:\n  max_body: 12q\n  header_timeout: 10\n")
        r = self.run_bin("check", bad)
        self.assertEqual(r.returncode, 1)
        out = r.stdout
        self.assertIn(f"{bad}:2:", out)
        self.assertIn(f"{bad}:3:", out)
        self.assertIn(f"{bad}:5:", out)
        self.assertIn(f"{bad}:6:", out)
        self.assertIn("listen", out)  # the suggestion for the typo

    def test_check_reads_the_files_a_gateway_section_names(self):
        # what `strata gateway --config` would refuse at start: a token or
        # key file it cannot read, a keys file it cannot parse
        d = tempfile.mkdtemp()
        keys = os.path.join(d, "keys")
        with open(keys, "w") as f:
            f.write("ops not-a-sha256\n")
        base = ("gateway:\n  listen: 127.0.0.1:8080\n  pools:\n    p: {hosts: [127.0.0.1:9001]}\n"
                "  routes:\n    - {match: {prefix: /}, pool: p}\n")
        for extra, want in (
                (f"  admin: {{listen: 127.0.0.1:9901, token_file: {d}/missing}}\n",
                 f"gateway: cannot read {d}/missing: No such file or directory"),
                (f"  api_keys_file: {keys}\n", f"gateway: {keys}:1:"),
                ("", "ok")):
            path = os.path.join(d, "gw.yaml")
            with open(path, "w") as f:
                f.write(base + extra)
            r = self.run_bin("check", path)
            self.assertEqual(r.returncode, 0 if want == "ok" else 1, r.stdout + r.stderr)
            self.assertIn(f"{path}: {want}", r.stdout)

    def test_serve_refuses_a_bad_config(self):
        d = tempfile.mkdtemp()
        bad = os.path.join(d, "bad.yaml")
        with open(bad, "w") as f:
            f.write("http:\n  max_headers: -3\n")
        r = self.run_bin("serve", "--config", bad)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(":2:", r.stderr)

    def test_port_in_use_is_reported(self):
        with Server() as s:
            r = subprocess.run([BIN, "serve", "--listen", f"127.0.0.1:{s.port}", "--workers", "1"],
                               capture_output=True, text=True, timeout=10)
            # the workers share the port through SO_REUSEPORT, but a second
            # process must not silently join them
            self.assertEqual(r.returncode, 1)
            self.assertIn("Address already in use", r.stdout)
            self.assertEqual(s.http("GET", "/health/live")[0], 200)


if __name__ == "__main__":
    unittest.main()


class WithCurl(unittest.TestCase):
    """The same server seen by curl, the client most people reach for."""

    @classmethod
    def setUpClass(cls):
        cls.curl = shutil.which("curl")
        cls.s = Server(workers=2).start()

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()

    def curl_run(self, *args):
        self.assertIsNotNone(self.curl, "curl is required (scripts/deps.sh installs it)")
        return subprocess.run([self.curl, "-sS", *args], capture_output=True, timeout=20)

    def url(self, path):
        return f"http://127.0.0.1:{self.s.port}{path}"

    def test_get_with_headers(self):
        r = self.curl_run("-i", "-H", "X-Request-Id: curl-1", self.url("/health/live"))
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(out.startswith("HTTP/1.1 200 OK\r\n"), out)
        self.assertIn("X-Request-Id: curl-1\r\n", out)
        self.assertTrue(out.endswith('{"status":"up"}'))

    def test_keepalive_reuses_one_connection(self):
        r = self.curl_run("-v", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                          self.url("/health/live"), self.url("/health/ready"), self.url("/metrics"))
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        self.assertEqual(err.count("Connected to"), 1, err)
        self.assertEqual(err.count("Re-using existing connection") + err.count("Reusing existing connection"), 2, err)

    def test_head(self):
        r = self.curl_run("-I", self.url("/health/live"))
        out = r.stdout.decode()
        self.assertIn("HTTP/1.1 200", out)
        self.assertIn("Content-Length: 15", out)

    def test_post_with_expect_100_continue_and_chunked_body(self):
        body = os.path.join(tempfile.mkdtemp(), "body.json")
        with open(body, "w") as f:
            f.write('{"x":"' + "a" * 5000 + '"}')
        r = self.curl_run("-v", "-H", "Expect: 100-continue", "-H", "Transfer-Encoding: chunked",
                          "-H", "Content-Type: application/json", "--data-binary", "@" + body,
                          "-w", "%{http_code}", "-o", "/dev/null", self.url("/health/live"))
        self.assertEqual(r.stdout.decode(), "405")
        self.assertIn("HTTP/1.1 100 Continue", r.stderr.decode())

    def test_body_over_limit_is_413_without_upload(self):
        big = os.path.join(tempfile.mkdtemp(), "big.bin")
        with open(big, "wb") as f:
            f.write(b"x" * (3 << 20))
        r = self.curl_run("-H", "Expect: 100-continue", "--data-binary", "@" + big,
                          "-w", "%{http_code} %{size_upload}", "-o", "/dev/null", self.url("/anything"))
        code, uploaded = r.stdout.decode().split()
        self.assertEqual(code, "413")
        self.assertLess(float(uploaded), 3 << 20)  # refused before the body was sent

    def test_error_body_is_json(self):
        r = self.curl_run("-X", "DELETE", self.url("/health/live"), "-w", "\n%{http_code}")
        body, code = r.stdout.decode().rsplit("\n", 1)
        self.assertEqual(code, "405")
        self.assertEqual(json.loads(body)["error"]["code"], "method_not_allowed")
