"""Services behind the gateway trust nobody else: with the same identity
secret on both, `strata serve` refuses unsigned or forged API requests
(401) and serves the ones the gateway signed."""
import json
import os
import secrets
import subprocess
import tempfile
import unittest

from harness import BIN, Server, free_port, parse_responses
import socket
import time


class Trust(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        d = tempfile.mkdtemp()
        cls.secret_file = os.path.join(d, "secret")
        with open(cls.secret_file, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        cls.svc = Server(args=["--identity-secret-file", cls.secret_file]).start()
        cls.gw_port = free_port()
        cls.gw = subprocess.Popen([BIN, "gateway", "--listen", f"127.0.0.1:{cls.gw_port}", "--workers", "1",
                                   "--upstream", f"127.0.0.1:{cls.svc.port}", "--log-level", "warn",
                                   "--identity-secret-file", cls.secret_file],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", cls.gw_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        cls.gw.terminate()
        try:
            rc = cls.gw.wait(10)  # parked upstream connections must not hold the drain
        except subprocess.TimeoutExpired:
            cls.gw.kill()
            cls.gw.wait()
            rc = "no exit within 10 s"
        finally:
            cls.svc.stop()
        assert rc == 0, f"gateway exited {rc} on SIGTERM"

    def test_direct_request_is_refused(self):
        status, headers, body = self.svc.http("GET", "/api/users")
        self.assertEqual(status, 401)
        self.assertIn("www-authenticate", headers)
        self.assertEqual(json.loads(body)["error"]["code"], "unauthorized")

    def test_forged_identity_is_refused(self):
        status, _, _ = self.svc.http("GET", "/api/users", headers={
            "X-Strata-Identity": "admin", "X-Strata-Scopes": "all",
            "X-Strata-Identity-Time": str(int(time.time())),
            "X-Strata-Identity-Signature": "v1=" + "0" * 64})
        self.assertEqual(status, 401)

    def test_probes_stay_open(self):
        self.assertEqual(self.svc.http("GET", "/health/ready")[0], 200)
        self.assertEqual(self.svc.http("GET", "/metrics")[0], 200)

    def test_through_the_gateway(self):
        s = socket.create_connection(("127.0.0.1", self.gw_port), timeout=5)
        body = json.dumps({"name": "Via Gateway", "email": f"v{secrets.token_hex(4)}@example.com"}).encode()
        s.sendall(b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"X-Strata-Identity: admin\r\n"  # a client's copy: dropped, never trusted
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body +
                  b"GET /api/users HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        responses = parse_responses(data)
        # signup is open to an anonymous caller; the list of users is not
        # (ownership, test_ownership.py): the gateway signed both, the
        # service answered both
        self.assertEqual([r[0] for r in responses], [201, 401])
        self.assertEqual(json.loads(responses[1][2])["error"]["code"], "unauthorized")


if __name__ == "__main__":
    unittest.main()
