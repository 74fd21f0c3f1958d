"""Gateway balancing algorithms and the upstream side of its access log:
round robin spreads evenly, consistent hashing on a header or the client
address keeps a key on one host, least-request steers away from a slow
host, and each access line names the upstream, the attempts, the breaker
state and the time spent upstream."""
import json
import os
import socket
import subprocess
import tempfile
import time
import unittest
import http.client

from harness import BIN, free_port
from fake_upstream import FakeUpstream


class Gateway:
    def __init__(self, upstreams, *args):
        self.port = free_port()
        self.log = tempfile.mktemp(prefix="gw-", suffix=".log")
        cmd = [BIN, "gateway", "--listen", f"127.0.0.1:{self.port}", "--workers", "1",
               "--health-interval", "0s", *args]
        for u in upstreams:
            cmd += ["--upstream", f"127.0.0.1:{u.port}"]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)

    def get(self, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request("GET", "/x", headers=headers or {})
        r = c.getresponse()
        r.read()
        c.close()
        return r.status

    def stop(self):
        self.proc.terminate()
        return self.proc.wait(10)

    def lines(self):
        with open(self.log) as f:
            return [json.loads(l) for l in f if l.strip()]


class Balance(unittest.TestCase):
    def setUp(self):
        self.ups = [FakeUpstream() for _ in range(3)]
        for u in self.ups:
            u.start()

    def tearDown(self):
        for u in self.ups:
            u.stop()

    def counts(self):
        return [len(u.recorded) for u in self.ups]

    def test_round_robin_is_even(self):
        gw = Gateway(self.ups, "--balance", "round-robin", "--log-level", "warn")
        try:
            for _ in range(30):
                self.assertEqual(gw.get(), 200)
            self.assertEqual(self.counts(), [10, 10, 10])
        finally:
            self.assertEqual(gw.stop(), 0)

    def test_hash_header_keeps_a_key_on_one_host(self):
        gw = Gateway(self.ups, "--balance", "hash-header:X-User", "--log-level", "warn")
        try:
            homes = {}
            for user in range(30):
                before = self.counts()
                for _ in range(5):
                    self.assertEqual(gw.get({"X-User": f"user-{user}"}), 200)
                delta = [a - b for a, b in zip(self.counts(), before)]
                self.assertEqual(sorted(delta), [0, 0, 5], f"user-{user} moved between hosts: {delta}")
                homes[user] = delta.index(5)
            self.assertGreater(len(set(homes.values())), 1, "every key on one host")
        finally:
            self.assertEqual(gw.stop(), 0)

    def test_hash_client_address(self):
        gw = Gateway(self.ups, "--balance", "hash-client", "--log-level", "warn")
        try:
            for _ in range(12):
                self.assertEqual(gw.get(), 200)
            self.assertEqual(sorted(self.counts()), [0, 0, 12])
        finally:
            self.assertEqual(gw.stop(), 0)

    def test_least_request_avoids_a_slow_host(self):
        self.ups[0].set("slow", ms=300)
        gw = Gateway(self.ups, "--balance", "least-request", "--log-level", "warn")
        try:
            import concurrent.futures
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _: gw.get(), range(120)))
            c = self.counts()
            self.assertLess(c[0], min(c[1], c[2]), c)
        finally:
            self.assertEqual(gw.stop(), 0)

    def test_access_line_names_the_upstream(self):
        self.ups[1].set("status", status=503)
        gw = Gateway(self.ups, "--balance", "round-robin", "--log-level", "info")
        try:
            for _ in range(6):
                self.assertEqual(gw.get(), 200)
        finally:
            self.assertEqual(gw.stop(), 0)
        lines = [l for l in gw.lines() if l.get("event") == "request" and l.get("path") == "/x"]
        self.assertEqual(len(lines), 6)
        ports = {str(u.port) for u in self.ups}
        for l in lines:
            self.assertIn(l["upstream"].rsplit(":", 1)[1], ports)
            self.assertIn(l["breaker"], ("closed", "open", "half_open"))
            self.assertGreaterEqual(l["attempts"], 1)
            self.assertGreaterEqual(l["upstreamUs"], 0)
        self.assertTrue(any(l["attempts"] == 2 for l in lines), "a retry after the 503 host shows 2 attempts")


if __name__ == "__main__":
    unittest.main()
