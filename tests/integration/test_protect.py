"""Gateway protection: API keys (stored hashed), JWT bearer tokens (HS256,
pinned algorithms, exp/iss/aud, `none` refused), rate limits with the
RateLimit headers and 429 + Retry-After, and the verified identity passed
upstream (signed) as the payments' idempotency scope."""
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import subprocess
import tempfile
import time
import unittest
import http.client

from harness import BIN, free_port
from fake_upstream import FakeUpstream


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(claims, secret, alg="HS256"):
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()) if alg == "HS256" else ""
    return f"{head}.{body}.{sig}"


class Gateway:
    def __init__(self, *args):
        self.port = free_port()
        self.proc = subprocess.Popen([BIN, "gateway", "--listen", f"127.0.0.1:{self.port}", "--workers", "1",
                                      "--log-level", "warn", "--health-interval", "0s", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.proc.stderr.read().decode())
                time.sleep(0.05)

    def get(self, path="/x", headers=None, method="GET"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    def stop(self):
        self.proc.terminate()
        return self.proc.wait(10)


class ApiKeysAndJwt(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = FakeUpstream()
        cls.up.start()
        d = tempfile.mkdtemp()
        cls.key = "sk_test_" + secrets.token_hex(16)
        with open(os.path.join(d, "keys"), "w") as f:
            f.write("# id sha256 scopes\n")
            f.write(f"svc-a {hashlib.sha256(cls.key.encode()).hexdigest()} orders:read,orders:write\n")
        # text: the gateway trims a trailing CR/LF from the file, which 32
        # random bytes would end with now and then (a shorter, refused secret)
        cls.secret = secrets.token_hex(32).encode()
        with open(os.path.join(d, "jwt"), "wb") as f:
            f.write(cls.secret)
        with open(os.path.join(d, "identity"), "w") as f:
            f.write(secrets.token_hex(32))
        cls.gw = Gateway("--upstream", f"127.0.0.1:{cls.up.port}", "--api-keys", os.path.join(d, "keys"),
                         "--jwt-hs256-secret-file", os.path.join(d, "jwt"), "--jwt-issuer", "strata",
                         "--jwt-audience", "api", "--identity-secret-file", os.path.join(d, "identity"))

    @classmethod
    def tearDownClass(cls):
        assert cls.gw.stop() == 0
        cls.up.stop()

    def upstream_headers(self):
        req = self.up.recorded[-1]
        return {k.lower(): v for k, v in req["headers"]}

    def test_missing_credentials_401(self):
        status, h, body = self.gw.get()
        self.assertEqual(status, 401)
        self.assertIn("www-authenticate", h)
        self.assertEqual(json.loads(body)["error"]["code"], "unauthorized")

    def test_api_key_in_either_header(self):
        for headers in ({"X-Api-Key": self.key}, {"Authorization": f"ApiKey {self.key}"}):
            status, _, _ = self.gw.get(headers=headers)
            self.assertEqual(status, 200)
            up = self.upstream_headers()
            self.assertEqual(up["x-strata-identity"], "svc-a")
            self.assertEqual(up["x-client-id"], "svc-a")
            self.assertNotIn("x-api-key", {k for k in up if up[k] == self.key and k != "x-api-key"})

    def test_wrong_api_key_401(self):
        status, h, _ = self.gw.get(headers={"X-Api-Key": self.key + "x"})
        self.assertEqual(status, 401)
        # the error is the ApiKey challenge's, not the Bearer one's (no
        # bearer token was sent, RFC 6750 3.1); both schemes are offered
        www = h["www-authenticate"]
        self.assertIn('ApiKey realm="strata", error="invalid_token"', www)
        self.assertRegex(www, r'Bearer realm="strata"(,\s*ApiKey|$)')
        status, h, _ = self.gw.get(headers={"Authorization": "Bearer not.a.token"})
        www = h["www-authenticate"]
        self.assertIn('Bearer realm="strata", error="invalid_token"', www)
        self.assertRegex(www, r'ApiKey realm="strata"$')

    def test_jwt_valid_expired_wrong_audience_none(self):
        now = int(time.time())
        good = hs256({"sub": "user-7", "iss": "strata", "aud": "api", "exp": now + 60, "scope": "orders:read"}, self.secret)
        self.assertEqual(self.gw.get(headers={"Authorization": f"Bearer {good}"})[0], 200)
        self.assertEqual(self.upstream_headers()["x-strata-identity"], "user-7")
        expired = hs256({"sub": "u", "iss": "strata", "aud": "api", "exp": now - 3600}, self.secret)
        wrong_aud = hs256({"sub": "u", "iss": "strata", "aud": "other", "exp": now + 60}, self.secret)
        none = hs256({"sub": "u", "iss": "strata", "aud": "api", "exp": now + 60}, self.secret, alg="none")
        forged = hs256({"sub": "admin", "iss": "strata", "aud": "api", "exp": now + 60}, b"guessed-secret-guessed-secret-00")
        for token in (expired, wrong_aud, none, forged, "garbage"):
            status, h, _ = self.gw.get(headers={"Authorization": f"Bearer {token}"})
            self.assertEqual(status, 401, token)
            self.assertIn("Bearer", h["www-authenticate"])

    def test_credentials_sent_twice_are_refused(self):
        # Authorization and X-Api-Key are not lists (RFC 9110 5.3): the
        # upstream could read the copy the gateway did not check
        n = self.up.proxied
        for dup in ((f"Authorization: ApiKey {self.key}", "Authorization: Bearer evil.token.here"),
                    (f"X-Api-Key: {self.key}", "x-api-key: other")):
            raw = "GET /dup HTTP/1.1\r\nHost: t\r\n" + "\r\n".join(dup) + "\r\nConnection: close\r\n\r\n"
            with socket.create_connection(("127.0.0.1", self.gw.port), timeout=5) as s:
                s.sendall(raw.encode())
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data[:300])
            self.assertIn(b'error="invalid_request"', data)
        self.assertEqual(self.up.proxied, n, "a request with doubled credentials went upstream")

    def test_client_identity_headers_never_pass(self):
        self.gw.get(headers={"X-Api-Key": self.key, "X-Strata-Identity": "root", "X-Client-Id": "root"})
        up = self.upstream_headers()
        self.assertEqual(up["x-strata-identity"], "svc-a")
        self.assertEqual(up["x-client-id"], "svc-a")


class KeyedGatewayCase(unittest.TestCase):
    """A fresh upstream and a gateway with one API key "ops" (self.key), a
    HS256 secret (self.secret) and a rate limit of 2 a minute."""

    def setUp(self):
        self.up = FakeUpstream()
        self.up.start()
        d = tempfile.mkdtemp()
        self.key = "sk_test_" + secrets.token_hex(16)
        with open(os.path.join(d, "keys"), "w") as f:
            f.write(f"ops {hashlib.sha256(self.key.encode()).hexdigest()}\n")
        self.secret = secrets.token_hex(32).encode()
        with open(os.path.join(d, "jwt"), "wb") as f:
            f.write(self.secret)
        self.gw = Gateway("--upstream", f"127.0.0.1:{self.up.port}", "--api-keys", os.path.join(d, "keys"),
                          "--jwt-hs256-secret-file", os.path.join(d, "jwt"), "--rate-limit", "2/m")

    def tearDown(self):
        try:
            self.assertEqual(self.gw.stop(), 0)
        finally:
            self.up.stop()


class RateLimitNames(KeyedGatewayCase):
    def test_api_key_ids_and_jwt_subjects_have_separate_budgets(self):
        statuses = [self.gw.get(headers={"X-Api-Key": self.key})[0] for _ in range(3)]
        self.assertEqual(statuses, [200, 200, 429])
        # a token whose subject happens to be the key's id is someone else
        tok = hs256({"sub": "ops", "exp": int(time.time()) + 60}, self.secret)
        self.assertEqual(self.gw.get(headers={"Authorization": f"Bearer {tok}"})[0], 200)


class FailedAuthLimited(KeyedGatewayCase):
    def test_failed_attempts_spend_the_address_budget(self):
        # as nginx's limit_req runs before access checks: one address cannot
        # guess keys without limit; a good key keeps its own budget
        answers = [self.gw.get(headers={"X-Api-Key": f"guess-{i}"}) for i in range(3)]
        self.assertEqual([a[0] for a in answers], [401, 401, 429])
        self.assertIn("www-authenticate", answers[0][1])
        self.assertIn("retry-after", answers[2][1])
        self.assertEqual(self.gw.get()[0], 429)  # no credentials: the same address
        self.assertEqual(self.gw.get(headers={"X-Api-Key": self.key})[0], 200)


class RateLimit(unittest.TestCase):
    def test_limit_headers_429_and_retry_after(self):
        up = FakeUpstream()
        up.start()
        gw = Gateway("--upstream", f"127.0.0.1:{up.port}", "--rate-limit", "5/s")
        try:
            statuses, remaining = [], []
            for i in range(8):
                status, h, body = gw.get()
                statuses.append(status)
                # draft-ietf-httpapi-ratelimit-headers-11: Structured Field
                # items, a named policy with q/w, its state with r/t
                self.assertEqual(h.get("ratelimit-policy"), '"default";q=5;w=1', h)
                m = re.fullmatch(r'"default";r=(\d+);t=(\d+)', h.get("ratelimit", ""))
                self.assertIsNotNone(m, h)
                remaining.append(int(m.group(1)))
            self.assertEqual(statuses[:5], [200] * 5)
            self.assertEqual(remaining[:5], [4, 3, 2, 1, 0])
            self.assertIn(429, statuses[5:])
            status, h, body = gw.get()
            self.assertEqual(status, 429)
            self.assertGreaterEqual(int(h["retry-after"]), 1)
            # Retry-After and the reset point at the same moment (the draft's SHOULD)
            self.assertEqual(re.fullmatch(r'"default";r=0;t=(\d+)', h["ratelimit"]).group(1), h["retry-after"])
            self.assertEqual(json.loads(body)["error"]["code"], "too_many_requests")
            upstream_before = len(up.recorded)
            gw.get()
            self.assertEqual(len(up.recorded), upstream_before)  # a 429 never reaches the upstream
            time.sleep(1.1)
            self.assertEqual(gw.get()[0], 200)
        finally:
            self.assertEqual(gw.stop(), 0)
            up.stop()


if __name__ == "__main__":
    unittest.main()
