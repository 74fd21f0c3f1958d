"""`strata gateway --config FILE`: routes and pools from the configuration
file (issue 4), against fake upstreams.

One gateway per class, from a YAML written here: routes by path prefix,
router pattern, method and Host to named pools; prefix strip and rewrite;
per-route timeouts, retries, rate limits, scopes, breakers and static
fallbacks; the admin listener (token, JSON status); per-route metrics and
readiness aggregated per pool."""
import hashlib
import json
import os
import re
import secrets
import subprocess
import tempfile
import time
import unittest

from fake_upstream import FakeUpstream
from harness import BIN, Server, free_port
from test_gateway import GatewayCase, exchange, req, status_line, wait_until


class ConfigGateway(Server):
    """A `strata gateway --config` process (Server's start/stop/http/log_lines)."""

    def __init__(self, yaml_text, *extra):
        self.port = free_port()
        self.admin_port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="strata-routes-test-")
        self.log_path = os.path.join(self.tmp, "stdout.log")
        self.err_path = os.path.join(self.tmp, "stderr.log")
        self.config = os.path.join(self.tmp, "gateway.yaml")
        with open(self.config, "w") as f:
            f.write(yaml_text.replace("PORT", str(self.port)).replace("ADMIN", str(self.admin_port)))
        self.cmd = [BIN, "gateway", "--config", self.config, "--workers", "1", *extra]
        self.proc = None

    def metrics(self):
        status, _, body = self.http("GET", "/metrics")
        assert status == 200, status
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, val = line.rpartition(" ")
                out[name] = float(val)
        return out

    def admin(self, path="/admin/status", token=None):
        hdrs = [f"Authorization: Bearer {token}"] if token is not None else []
        return exchange(self.admin_port, req("GET", path, *hdrs, host="127.0.0.1"))


def lines_for(gw, path, n=1, timeout=2.0):
    """The access lines of path, once at least n were written (the server
    writes a line after the response has gone out, so a client may read the
    log a moment before its request's line is there)."""
    got, _ = wait_until(lambda: [x for x in gw.log_lines() if x.get("path") == path][n - 1:] and
                        [x for x in gw.log_lines() if x.get("path") == path], timeout)
    return got or []


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class Routing(GatewayCase):
    @classmethod
    def setUpClass(cls):
        cls.users = FakeUpstream().start()
        cls.orders = FakeUpstream().start()
        cls.legacy = FakeUpstream().start()
        cls.gw = ConfigGateway(f"""
gateway:
  listen: 127.0.0.1:PORT
  pools:
    users: {{hosts: [127.0.0.1:{cls.users.port}]}}
    orders: {{hosts: [127.0.0.1:{cls.orders.port}]}}
    legacy: {{hosts: [127.0.0.1:{cls.legacy.port}]}}
  routes:
    - match: {{prefix: /api/users}}
      pool: users
    - match: {{prefix: /ro, methods: [GET, OPTIONS]}}
      pool: users
    - match: {{prefix: /api/orders, methods: [POST]}}
      pool: legacy
    - match: {{prefix: /api/orders}}
      pool: orders
    - match: {{path: /items/:id/parts/*}}
      pool: users
    - match: {{prefix: /old, host: legacy.example}}
      pool: legacy
      strip_prefix: true
    - match: {{prefix: /v1/}}
      pool: orders
      rewrite_prefix: /api/v2/
    - match: {{prefix: '/q"x\\y'}}
      pool: orders
""").start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop_checked() if hasattr(cls.gw, "stop_checked") else cls.gw.stop()
        for f in (cls.users, cls.orders, cls.legacy):
            f.stop()

    def last(self, fake):
        return fake.recorded[-1]

    def test_options_answered_at_max_forwards_zero_lists_the_routes_methods(self):
        # RFC 9110 9.3.7: the answer to OPTIONS SHOULD say what the target allows
        r = exchange(self.gw.port, req("OPTIONS", "/ro/x", "Max-Forwards: 0"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.get("allow"), "GET, HEAD, OPTIONS")
        r = exchange(self.gw.port, req("OPTIONS", "/api/orders/1", "Max-Forwards: 0"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.get("allow"), "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE")

    def test_prefix_routes_to_its_pool(self):
        r = self.get(self.gw, "/api/users/42?x=1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.last(self.users)["path"], "/api/users/42")
        self.assertEqual(self.last(self.users)["query"], "x=1")
        r = self.get(self.gw, "/api/orders")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.last(self.orders)["path"], "/api/orders")

    def test_prefix_matches_whole_segments(self):
        before = self.users.proxied
        r = self.get(self.gw, "/api/usersX")
        self.assert_json_error(r, 404, "not_found")
        self.assertEqual(self.users.proxied, before, "a partial segment reached the upstream")

    def test_method_picks_the_route(self):
        n = self.legacy.proxied
        r = exchange(self.gw.port, req("POST", "/api/orders", body=b"{}"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.legacy.proxied, n + 1, "POST /api/orders went elsewhere")
        self.assertEqual(self.last(self.legacy)["method"], "POST")

    def test_pattern_route(self):
        r = self.get(self.gw, "/items/7/parts/a/b")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.last(self.users)["path"], "/items/7/parts/a/b")
        self.assert_json_error(self.get(self.gw, "/items//parts/a"), 404)
        self.assert_json_error(self.get(self.gw, "/items/7/other"), 404)

    def test_host_route_and_strip_prefix(self):
        r = self.get(self.gw, "/old/thing", host="legacy.example:8080")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.last(self.legacy)["path"], "/thing")
        r = self.get(self.gw, "/old", host="LEGACY.example")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.last(self.legacy)["path"], "/")
        self.assert_json_error(self.get(self.gw, "/old/thing", host="other.example"), 404)

    def test_rewrite_prefix(self):
        r = self.get(self.gw, "/v1/orders/9")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.last(self.orders)["path"], "/api/v2/orders/9")

    def test_no_route_is_404_json(self):
        r = self.get(self.gw, "/nowhere")
        self.assert_json_error(r, 404, "not_found")

    def test_route_label_in_access_log_and_metrics(self):
        self.get(self.gw, "/api/users/1")
        lines = lines_for(self.gw, "/api/users/1")
        self.assertTrue(lines)
        self.assertEqual(lines[-1].get("route"), "/api/users/*")
        m = self.gw.metrics()
        self.assertTrue(any('route="/api/users/*"' in k and k.startswith("strata_http_requests_total")
                            for k in m), [k for k in m if "route=" in k][:20])
        self.assertIn('strata_gateway_upstream_requests_total{pool="users",upstream="127.0.0.1:%d"}'
                      % self.users.port, m)


    def test_label_values_are_escaped_in_metrics(self):
        # a route prefix with a quote and a backslash: an unescaped label
        # value breaks the whole scrape for Prometheus
        status, _, body = self.gw.http("GET", "/metrics")
        self.assertEqual(status, 200)
        text = body.decode()
        self.assertIn('strata_gateway_route_rate_limited_total{route="/q\\"x\\\\y/*"} 0', text)
        value = r'"(?:[^"\\\n]|\\[\\"n])*"'
        sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*=' + value +
                            r'(,[a-zA-Z_][a-zA-Z0-9_]*=' + value + r')*\})? \S+$')
        bad = [ln for ln in text.splitlines() if ln and not ln.startswith("#") and not sample.match(ln)]
        self.assertEqual(bad, [])


class RoutePolicies(GatewayCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="strata-routes-keys-")
        cls.reader_key = secrets.token_hex(16)
        cls.admin_key = secrets.token_hex(16)
        keys = write(cls.tmp, "keys",
                     f"reader {hashlib.sha256(cls.reader_key.encode()).hexdigest()} orders:read\n"
                     f"boss {hashlib.sha256(cls.admin_key.encode()).hexdigest()} admin,orders:read\n")
        cls.token_file = write(cls.tmp, "admin.token", secrets.token_hex(24) + "\n")
        cls.token = open(cls.token_file).read().strip()
        cls.up = FakeUpstream().start()
        cls.slow = FakeUpstream().start()
        cls.flaky = FakeUpstream().start()
        cls.gw = ConfigGateway(f"""
gateway:
  listen: 127.0.0.1:PORT
  admin: {{listen: 127.0.0.1:ADMIN, token_file: {cls.token_file}}}
  api_keys_file: {keys}
  pools:
    main: {{hosts: [127.0.0.1:{cls.up.port}]}}
    slow: {{hosts: [127.0.0.1:{cls.slow.port}]}}
    flaky: {{hosts: [127.0.0.1:{cls.flaky.port}], health: {{disabled: true}}}}
  routes:
    - match: {{prefix: /public}}
      pool: main
      auth: {{anonymous: true}}
    - match: {{prefix: /admin-only}}
      pool: main
      auth: {{scopes: [admin]}}
    - match: {{prefix: /open-scoped}}
      pool: main
      auth: {{anonymous: true, scopes: [admin]}}
    - match: {{prefix: /limited}}
      pool: main
      rate_limit: {{rate: 1, burst: 2}}
    - match: {{prefix: /slow}}
      pool: slow
      timeout: 300ms
    - match: {{prefix: /once}}
      pool: flaky
      retries: {{attempts: 1}}
    - match: {{prefix: /fallback}}
      pool: flaky
      retries: {{attempts: 1}}
      breaker: {{volume_threshold: 5, error_threshold: 50, reset_timeout: 30s}}
      fallback: {{status: 200, body: '{{"items":[],"degraded":true}}'}}
    - match: {{prefix: /}}
      pool: main
""").start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        for f in (cls.up, cls.slow, cls.flaky):
            f.stop()

    def key(self, k):
        return f"X-Api-Key: {k}"

    def test_anonymous_route_and_required_credentials(self):
        self.assertEqual(self.get(self.gw, "/public/x").status, 200)
        r = self.get(self.gw, "/other")
        self.assert_json_error(r, 401, "unauthorized")
        self.assertIn("www-authenticate", [k.lower() for k, _ in r.headers])
        self.assertEqual(self.get(self.gw, "/other", self.key(self.reader_key)).status, 200)
        # credentials sent to an anonymous route are still verified
        self.assert_json_error(self.get(self.gw, "/public/x", self.key("wrong")), 401)
        # a bearer token where only API keys are taken: a plain challenge,
        # no error that would blame a scheme not on offer (RFC 6750 3.1)
        r = self.get(self.gw, "/other", "Authorization: Bearer abc.def.ghi")
        self.assert_json_error(r, 401)
        self.assertEqual(r.get("www-authenticate"), 'ApiKey realm="strata"')

    def test_anonymous_request_on_a_scoped_route_is_401(self):
        # credentials would do, so 401 without an error, not 403 (RFC 6750 3.1)
        r = self.get(self.gw, "/open-scoped/x")
        self.assert_json_error(r, 401, "unauthorized")
        self.assertNotIn("error=", r.get("www-authenticate", ""))
        self.assert_json_error(self.get(self.gw, "/open-scoped/x", self.key(self.reader_key)), 403)
        self.assertEqual(self.get(self.gw, "/open-scoped/x", self.key(self.admin_key)).status, 200)

    def test_missing_scope_is_403(self):
        n = self.up.proxied
        r = self.get(self.gw, "/admin-only/x", self.key(self.reader_key))
        self.assert_json_error(r, 403, "forbidden")
        www = r.get("www-authenticate", "")
        self.assertIn('error="insufficient_scope"', www)
        self.assertIn('scope="admin"', www)
        self.assertEqual(self.up.proxied, n, "a forbidden request reached the upstream")
        self.assertEqual(self.get(self.gw, "/admin-only/x", self.key(self.admin_key)).status, 200)
        self.assert_json_error(self.get(self.gw, "/admin-only/x"), 401)

    def test_route_rate_limit(self):
        k = self.key(self.admin_key)
        statuses = [self.get(self.gw, "/limited/a", k).status for _ in range(4)]
        self.assertEqual(statuses[:2], [200, 200], statuses)
        self.assertIn(429, statuses[2:], statuses)
        r = self.get(self.gw, "/limited/a", k)
        self.assert_json_error(r, 429)
        self.assertTrue(r.get("retry-after", "").isdigit(), r)
        self.assertIn("ratelimit-policy", [h.lower() for h, _ in r.headers])
        # other routes keep their own (here: no) limit
        self.assertEqual([self.get(self.gw, "/other", k).status for _ in range(4)], [200] * 4)
        m = self.gw.metrics()
        self.assertGreaterEqual(m['strata_gateway_route_rate_limited_total{route="/limited/*"}'], 1)

    def test_route_timeout(self):
        self.slow.set("hang")
        try:
            t = time.monotonic()
            r = self.get(self.gw, "/slow/x", self.key(self.admin_key))
            took = time.monotonic() - t
            self.assert_json_error(r, 504)
            self.assertGreater(took, 0.25)
            self.assertLess(took, 1.5, f"the route's 300 ms timeout took {took:.2f} s")
        finally:
            self.slow.set("ok")

    def test_route_retries(self):
        self.flaky.set("status", status=503, times=1)
        n = self.flaky.proxied
        r = self.get(self.gw, "/once/x", self.key(self.admin_key))
        self.assertEqual(r.status, 503, r)
        self.assertEqual(self.flaky.proxied, n + 1, "a route with attempts: 1 retried")

    def test_route_breaker_and_static_fallback(self):
        k = self.key(self.admin_key)
        self.flaky.set("status", status=503)
        self.flaky.extra_headers = [("X-From-The-Error", "yes")]
        try:
            bodies = [self.get(self.gw, f"/fallback/{i}", k) for i in range(12)]
            for r in bodies:
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json(), {"items": [], "degraded": True})
                self.assertEqual(r.get("x-strata-fallback"), "static")
                self.assertIsNone(r.get("x-from-the-error"), r)
                self.assertEqual([n.lower() for n, _ in r.headers].count("content-type"), 1, r)
            reached = self.flaky.proxied
            t = time.monotonic()
            r = self.get(self.gw, "/fallback/more", k)
            self.assertLess(time.monotonic() - t, 0.05)
            self.assertEqual(r.status, 200)
            self.assertEqual(self.flaky.proxied, reached, "an open route breaker let a call through")
            m = self.gw.metrics()
            self.assertGreaterEqual(m['strata_gateway_route_breaker_open{route="/fallback/*"}'], 1)
            self.assertGreaterEqual(m['strata_gateway_route_fallbacks_total{route="/fallback/*"}'], 13)
            msgs = [x.get("msg", "") for x in self.gw.log_lines() if x.get("event") == "breaker"]
            self.assertTrue(any("route /fallback/*" in s and "-> open" in s for s in msgs), msgs)
        finally:
            self.flaky.set("ok")
            self.flaky.extra_headers = []

    def test_admin_requires_token(self):
        r = self.gw.admin()
        self.assert_json_error(r, 401, "unauthorized")
        self.assertEqual(r.get("www-authenticate"), 'Bearer realm="strata-admin"')
        r = self.gw.admin(token="nope")
        self.assert_json_error(r, 401, "unauthorized")
        # a token that was sent and is wrong says so (RFC 6750 3.1)
        self.assertEqual(r.get("www-authenticate"),
                         'Bearer realm="strata-admin", error="invalid_token"')
        self.assert_json_error(self.gw.admin(token=self.token[:-1]), 401, "unauthorized")
        self.assert_json_error(self.gw.admin(token=self.token + "x"), 401, "unauthorized")
        r = exchange(self.gw.admin_port, req("GET", "/admin/status", f"Authorization: Basic {self.token}",
                                             host="127.0.0.1"))
        self.assert_json_error(r, 401, "unauthorized")
        self.assertIn("Bearer", r.get("www-authenticate", ""))
        # the scheme is case-insensitive, spaces may be more than one (RFC 9110 11.1)
        for value in (f"bearer {self.token}", f"BEARER {self.token}", f"Bearer   {self.token}"):
            r = exchange(self.gw.admin_port, req("GET", "/admin/status", f"Authorization: {value}",
                                                 host="127.0.0.1"))
            self.assertEqual(r.status, 200, (value, r))
        # the token first, then the method: no 405 tells a stranger what is there
        post = lambda *h: exchange(self.gw.admin_port, req("POST", "/admin/status", *h,
                                                           "Content-Length: 0", host="127.0.0.1"))
        self.assert_json_error(post(), 401, "unauthorized")
        r = post(f"Authorization: Bearer {self.token}")
        self.assert_json_error(r, 405, "method_not_allowed")
        self.assertEqual(r.get("allow"), "GET, HEAD")
        r = exchange(self.gw.admin_port, req("HEAD", "/admin/status", f"Authorization: Bearer {self.token}",
                                             host="127.0.0.1"), head=True)
        self.assertEqual((r.status, r.body), (200, b""), r)
        r = self.gw.admin(token=self.token)
        self.assertEqual(r.status, 200, r)
        doc = r.json()
        pools = {p["name"]: p for p in doc["pools"]}
        self.assertEqual(set(pools), {"main", "slow", "flaky"})
        host = pools["main"]["hosts"][0]
        self.assertEqual(host["address"], f"127.0.0.1:{self.up.port}")
        for field in ("healthy", "ejected", "breaker", "active", "idle", "requests", "failures"):
            self.assertIn(field, host)
        self.assertEqual([x["match"] for x in doc["routes"]][:2], ["/public/*", "/admin-only/*"])
        self.assertIn(doc["routes"][0]["breaker"], ("closed", "open", "half_open"))

    def test_admin_listener_serves_no_proxy_traffic(self):
        r = exchange(self.gw.admin_port, req("GET", "/public/x", host="127.0.0.1"))
        self.assert_json_error(r, 404)


class FallbackScope(GatewayCase):
    """A static fallback stands in for reads only, and carries nothing of
    the refusal it replaces."""

    @classmethod
    def setUpClass(cls):
        cls.up = FakeUpstream().start()
        cls.up2 = FakeUpstream().start()
        cls.gw = ConfigGateway(f"""
gateway:
  listen: 127.0.0.1:PORT
  pools:
    p: {{hosts: [127.0.0.1:{cls.up.port}], health: {{disabled: true}}}}
    q: {{hosts: [127.0.0.1:{cls.up2.port}], health: {{disabled: true}}}}
  routes:
    - match: {{prefix: /fb}}
      pool: p
      retries: {{attempts: 1}}
      breaker: {{volume_threshold: 1000}}
      fallback: {{status: 200, body: '{{"degraded":true}}'}}
    - match: {{prefix: /r3}}
      pool: q
      retries: {{attempts: 3, backoff_base: 1ms, backoff_cap: 2ms}}
      breaker: {{volume_threshold: 1000}}
""").start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.up.stop()
        cls.up2.stop()

    def test_last_upstream_answer_when_its_breaker_stops_the_retries(self):
        # as nginx: a request that reached the upstream gets the upstream's
        # last answer, not the gateway's own 503, when the host's breaker
        # (20 calls, 50 %) opens between its tries
        self.up2.set("status", status=503)
        self.up2.extra_headers = [("X-Upstream-Said", "no")]
        try:
            got = []
            for i in range(12):
                r = self.get(self.gw, f"/r3/{i}")
                got.append((r.status, r.get("x-upstream-said"), r.get("x-request-id")))
        finally:
            self.up2.set("ok")
            self.up2.extra_headers = []
        # tries per request, as the upstream saw them (by X-Request-Id)
        sent = [dict((k.lower(), v) for k, v in rec["headers"]).get("x-request-id")
                for rec in self.up2.recorded]
        tried = [sent.count(rid) for _, _, rid in got]
        self.assertIn(0, tried, "the breaker never opened: the test proves nothing")
        self.assertTrue(any(0 < t < 3 for t in tried), (tried, "no request straddled the opening"))
        for (status, said, rid), t in zip(got, tried):
            self.assertEqual(status, 503)
            self.assertEqual(said, "no" if t else None, (t, rid))

    def test_unsafe_methods_get_the_failure_not_the_fallback(self):
        self.up.set("status", status=503)
        r = self.get(self.gw, "/fb/items")
        self.assertEqual((r.status, r.get("x-strata-fallback")), (200, "static"), r)
        self.assertEqual(r.get("cache-control"), "no-store")
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            with self.subTest(method=method):
                r = exchange(self.gw.port, req(method, "/fb/items/1", "Content-Type: application/json",
                                               "Idempotency-Key: k-" + method, body=b"{}"))
                self.assertEqual(r.status, 503, r)
                self.assertIsNone(r.get("x-strata-fallback"), r)

    def test_no_retry_after_from_an_open_host_breaker(self):
        # the host breaker (20 calls, 50 %) opens; the fallback answers
        # without the Retry-After of the 503 it replaces
        self.up.set("status", status=503)
        for i in range(25):
            self.get(self.gw, f"/fb/burst/{i}")
        r = self.get(self.gw, "/fb/after")
        self.assertEqual((r.status, r.get("x-strata-fallback")), (200, "static"), r)
        self.assertIsNone(r.get("retry-after"), r)


class PoolReadiness(GatewayCase):
    def test_ready_is_down_when_a_pool_has_no_healthy_host(self):
        a, b = FakeUpstream().start(), FakeUpstream().start()
        gw = ConfigGateway(f"""
gateway:
  listen: 127.0.0.1:PORT
  pools:
    a: {{hosts: [127.0.0.1:{a.port}], health: {{interval: 100ms, timeout: 100ms, fall: 1, rise: 1}}}}
    b: {{hosts: [127.0.0.1:{b.port}], health: {{interval: 100ms, timeout: 100ms, fall: 1, rise: 1}}}}
  routes:
    - {{match: {{prefix: /a}}, pool: a}}
    - {{match: {{prefix: /b}}, pool: b}}
""").start()
        try:
            ok, _ = wait_until(lambda: gw.http("GET", "/health/ready")[0] == 200, 3.0)
            self.assertTrue(ok)
            b.set_health("fail")

            def down():
                status, _, body = gw.http("GET", "/health/ready")
                return status == 503 and b"pool b" in body
            ok, _ = wait_until(down, 3.0)
            self.assertTrue(ok, gw.http("GET", "/health/ready"))
            self.assertEqual(self.get(gw, "/a/x").status, 200, "pool a kept serving")
            b.set_health("ok")
            ok, _ = wait_until(lambda: gw.http("GET", "/health/ready")[0] == 200, 3.0)
            self.assertTrue(ok)
        finally:
            gw.stop()
            a.stop()
            b.stop()


class Caching(GatewayCase):
    """Response caching of GET routes: upstream Cache-Control, the route's
    ttl, coalescing of concurrent misses, stale-if-error, invalidation."""

    @classmethod
    def setUpClass(cls):
        cls.up = FakeUpstream().start()
        cls.gw = ConfigGateway(f"""
gateway:
  listen: 127.0.0.1:PORT
  pools:
    p: {{hosts: [127.0.0.1:{cls.up.port}], health: {{disabled: true}}}}
  routes:
    - match: {{prefix: /cached}}
      pool: p
      retries: {{attempts: 1}}
      cache: {{ttl: 1s, stale_if_error: 30s}}
    - match: {{prefix: /shop}}
      pool: p
      rewrite_prefix: /api
      cache: {{ttl: 60s}}
    - match: {{prefix: /legacy/}}
      pool: p
      strip_prefix: true
      cache: {{ttl: 60s}}
    - match: {{prefix: /}}
      pool: p
""").start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.up.stop()

    def setUp(self):
        self.up.set("ok")
        self.up.extra_headers = []

    def cache_lines(self, path, n=1):
        return [x.get("cache") for x in lines_for(self.gw, path, n)]

    def test_hit_within_ttl_then_expired(self):
        n = self.up.proxied
        r1 = self.get(self.gw, "/cached/a")
        r2 = self.get(self.gw, "/cached/a")
        self.assertEqual((r1.status, r2.status), (200, 200))
        self.assertEqual(r1.body, r2.body)
        self.assertEqual(self.up.proxied, n + 1, "the second GET reached the upstream")
        self.assertIsNotNone(r2.get("age"), r2)
        self.assertEqual(self.cache_lines("/cached/a", 2), ["MISS", "HIT"])
        time.sleep(1.1)
        r3 = self.get(self.gw, "/cached/a")
        self.assertEqual(self.up.proxied, n + 2, "served past the route's ttl")
        self.assertEqual(self.cache_lines("/cached/a", 3)[-1], "EXPIRED")
        # HEAD is answered from the stored GET (the refetched one: its echo
        # holds another request id, whose length may differ)
        r = exchange(self.gw.port, req("HEAD", "/cached/a"), head=True)
        self.assertEqual(r.status, 200)
        self.assertEqual(int(r.get("content-length")), len(r3.body))
        self.assertEqual(self.up.proxied, n + 2)

    def test_upstream_cache_control_wins(self):
        self.up.extra_headers = [("Cache-Control", "no-store")]
        n = self.up.proxied
        self.get(self.gw, "/cached/nostore")
        self.get(self.gw, "/cached/nostore")
        self.assertEqual(self.up.proxied, n + 2, "a no-store answer was cached")
        self.up.extra_headers = [("Cache-Control", "private, max-age=60")]
        self.get(self.gw, "/cached/private")
        self.get(self.gw, "/cached/private")
        self.assertEqual(self.up.proxied, n + 4, "a private answer was cached")
        self.up.extra_headers = [("Cache-Control", "max-age=60")]
        self.get(self.gw, "/cached/long")
        time.sleep(1.1)  # past the route's ttl, within max-age
        self.get(self.gw, "/cached/long")
        self.assertEqual(self.up.proxied, n + 5, "max-age=60 did not outlive the route's ttl")

    def test_client_no_cache_bypasses(self):
        n = self.up.proxied
        self.get(self.gw, "/cached/b")
        self.get(self.gw, "/cached/b", "Cache-Control: no-cache")
        self.assertEqual(self.up.proxied, n + 2)
        self.assertEqual(self.cache_lines("/cached/b", 2)[-1], "BYPASS")

    def get_concurrently(self, path, n, stagger_s=0.0):
        """n GETs of path from n threads (started stagger_s apart); their answers."""
        import threading
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.get(self.gw, path)))
                   for _ in range(n)]
        for t in threads:
            t.start()
            time.sleep(stagger_s)
        for t in threads:
            t.join()
        return results

    def test_concurrent_misses_are_coalesced(self):
        self.up.set("slow", delay_ms=300)
        n = self.up.proxied
        results = self.get_concurrently("/cached/herd", 10)
        self.assertEqual([r.status for r in results], [200] * 10)
        self.assertEqual(self.up.proxied, n + 1, "concurrent misses each reached the upstream")
        self.assertEqual(len({r.body for r in results}), 1)
        self.assertGreaterEqual(self.cache_lines("/cached/herd", 10).count("COALESCED"), 8,
                                [x for x in self.gw.log_lines() if x.get("path") == "/cached/herd"])

    def test_a_hit_keeps_the_upstreams_reason_phrase(self):
        # as nginx's cache does: a stored answer keeps the upstream's status
        # line, so a hit says what the miss said
        self.up.set("raw", hold_s=0.05, data=b"HTTP/1.1 200 Fine, Thanks\r\nContent-Length: 2\r\n"
                    b"Cache-Control: max-age=60\r\nConnection: close\r\n\r\nok")
        n = self.up.proxied
        lines = [status_line(self.gw.port, "/cached/reason") for _ in range(2)]
        self.assertEqual(lines, [b"HTTP/1.1 200 Fine, Thanks"] * 2)
        self.assertEqual(self.up.proxied, n + 1, "the second GET was not a hit")

    def test_waiters_on_a_failed_fetch_get_the_stale_copy(self):
        # RFC 5861: the leader's fetch failed and a stale copy may stand in;
        # the waiters take it rather than each trying the failing upstream
        self.get(self.gw, "/cached/failing")
        time.sleep(1.1)  # past the route's 1 s ttl, inside stale_if_error
        self.up.set("slow", delay_ms=400, status=503)
        n = self.up.proxied
        results = self.get_concurrently("/cached/failing", 8, stagger_s=0.01)
        self.assertEqual([(r.status, r.get("x-strata-fallback")) for r in results], [(200, "stale")] * 8)
        self.assertEqual(self.up.proxied, n + 1, "the waiters each tried the failing upstream")

    def test_a_newer_answer_that_may_not_be_kept_retires_the_stored_one(self):
        # the resource went away (404, no-store): a later failure must not
        # bring the old copy back as a stale fallback
        self.assertEqual(self.get(self.gw, "/cached/gone").status, 200)
        time.sleep(1.1)
        self.up.set("status", status=404)
        self.up.extra_headers = [("Cache-Control", "no-store")]
        self.assertEqual(self.get(self.gw, "/cached/gone").status, 404)
        self.up.extra_headers = []
        self.up.set("status", status=503)
        r = self.get(self.gw, "/cached/gone")
        self.assertEqual((r.status, r.get("x-strata-fallback")), (503, None), r)
        # a 304 to a conditional request says the copy is still good
        self.up.set("ok")
        self.assertEqual(self.get(self.gw, "/cached/kept").status, 200)
        time.sleep(1.1)
        self.up.set("raw", hold_s=0.05, data=b"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n")
        self.assertEqual(self.get(self.gw, "/cached/kept", 'If-None-Match: "x"').status, 304)
        self.up.set("status", status=503)
        r = self.get(self.gw, "/cached/kept")
        self.assertEqual((r.status, r.get("x-strata-fallback")), (200, "stale"), r)

    def test_conditional_request_answered_304_from_the_cache(self):
        # RFC 9111 4.3.2: the cache evaluates the client's validators
        self.up.extra_headers = [("ETag", '"abc"'), ("Cache-Control", "max-age=60")]
        self.assertEqual(self.get(self.gw, "/cached/cond").status, 200)
        n = self.up.proxied
        r = exchange(self.gw.port, req("GET", "/cached/cond", 'If-None-Match: "x", W/"abc"'), head=True)
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.get("etag"), '"abc"')
        self.assertEqual(r.get("cache-control"), "max-age=60")
        self.assertIsNone(r.get("content-type"), r)
        self.assertIsNone(r.get("content-length"), r)
        r = self.get(self.gw, "/cached/cond", 'If-None-Match: "other"')
        self.assertEqual((r.status, r.get("etag")), (200, '"abc"'))
        self.assertEqual(self.up.proxied, n, "a conditional request went upstream")

    def test_location_targets_of_a_write_are_invalidated(self):
        # RFC 9111 4.4: Location / Content-Location of a successful unsafe
        # request, on the same host; another host's are left alone
        for i, (field, value, dropped) in enumerate((
                ("Location", "/cached/loc/a", True),
                ("Content-Location", "http://GW.test/cached/loc/b?x=1", True),
                ("Location", "http://other.test/cached/loc/c", False))):
            with self.subTest(field=field, value=value):
                target = value.split("test", 1)[-1] if value.startswith("http") else value
                self.up.extra_headers = [("Cache-Control", "max-age=60")]
                self.assertEqual(self.get(self.gw, target).status, 200)
                n = self.up.proxied
                self.up.extra_headers = [(field, value)]
                r = exchange(self.gw.port, req("POST", f"/cached/loc/new{i}", "Content-Length: 0"))
                self.assertEqual(r.status, 200, r)
                self.up.extra_headers = [("Cache-Control", "max-age=60")]
                self.get(self.gw, target)
                self.assertEqual(self.up.proxied, n + 1 + (1 if dropped else 0), target)

    def test_location_in_the_upstreams_path_space_is_invalidated(self):
        # on a route that rewrites its prefix the upstream names its own
        # paths: /api/items/1 behind /shop -> /api is the client's /shop/items/1
        for target, location in (("/shop/items/1", "/api/items/1"), ("/shop", "/api"),
                                 ("/legacy/x?q=1", "/x?q=1"), ("/legacy/", "/")):
            with self.subTest(target=target, location=location):
                self.assertEqual(self.get(self.gw, target).status, 200)
                n = self.up.proxied
                self.get(self.gw, target)
                self.assertEqual(self.up.proxied, n, f"{target} was not stored")
                self.up.extra_headers = [("Location", location)]
                prefix = "/shop" if target.startswith("/shop") else "/legacy"
                r = exchange(self.gw.port, req("POST", f"{prefix}/new", "Content-Length: 0"))
                self.assertEqual(r.status, 200, r)
                self.up.extra_headers = []
                self.get(self.gw, target)
                self.assertEqual(self.up.proxied, n + 2, f"{location} did not invalidate {target}")
        # a path outside the upstream's prefix maps to no client path
        self.assertEqual(self.get(self.gw, "/shop/items/2").status, 200)
        n = self.up.proxied
        self.up.extra_headers = [("Location", "/apiary/items/2")]
        exchange(self.gw.port, req("POST", "/shop/new", "Content-Length: 0"))
        self.up.extra_headers = []
        self.get(self.gw, "/shop/items/2")
        self.assertEqual(self.up.proxied, n + 1, "an unrelated Location invalidated /shop/items/2")

    def test_only_if_cached(self):
        # RFC 9111 5.2.1.7: a stored answer or 504, never a fetch
        n = self.up.proxied
        r = self.get(self.gw, "/cached/oic", "Cache-Control: only-if-cached")
        self.assert_json_error(r, 504)
        self.assertEqual(self.up.proxied, n)
        self.assertEqual(self.get(self.gw, "/cached/oic").status, 200)
        r = self.get(self.gw, "/cached/oic", "Cache-Control: only-if-cached")
        self.assertEqual((r.status, self.up.proxied), (200, n + 1), r)

    def test_a_hit_keeps_the_origins_date(self):
        # Age counts from the origin's Date: a hit with the gateway's own
        # Date beside a stored Expires would age twice (RFC 9111 4.2)
        import email.utils
        origin = email.utils.formatdate(usegmt=True)
        self.up.extra_headers = [("Date", origin), ("Cache-Control", "max-age=60")]
        r1 = self.get(self.gw, "/cached/dated")
        time.sleep(1.1)
        r2 = self.get(self.gw, "/cached/dated")
        self.assertEqual(self.cache_lines("/cached/dated", 2), ["MISS", "HIT"])
        for r in (r1, r2):
            self.assertEqual([v for k, v in r.headers if k.lower() == "date"], [origin], r)
        self.assertGreaterEqual(int(r2.get("age")), 1, r2)

    def test_204_is_stored(self):
        # RFC 9110 15.3.5: cacheable by default; it has no body (and so,
        # from a well-behaved origin, no Content-Length)
        n = self.up.proxied
        self.up.set("raw", hold_s=0.05, data=b"HTTP/1.1 204 No Content\r\nCache-Control: max-age=60\r\nConnection: close\r\n"
                    b"X-Mark: first\r\n\r\n")
        r1 = self.get(self.gw, "/cached/empty")
        self.up.set("ok")
        r2 = self.get(self.gw, "/cached/empty")
        self.assertEqual((r1.status, r2.status), (204, 204))
        self.assertEqual(r2.get("x-mark"), "first", r2)
        self.assertEqual(self.up.proxied, n + 1)

    def test_stale_if_error(self):
        r1 = self.get(self.gw, "/cached/s")
        time.sleep(1.1)
        self.up.set("status", status=503)
        # the failed answer's own fields must not ride along on the stale one
        self.up.extra_headers = [("X-From-The-Error", "yes"), ("Set-Cookie", "err=1")]
        r2 = self.get(self.gw, "/cached/s")
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r2.body, r1.body)
        self.assertEqual(r2.get("x-strata-fallback"), "stale")
        self.assertIsNone(r2.get("x-from-the-error"), r2)
        self.assertIsNone(r2.get("set-cookie"), r2)
        self.assertEqual([k.lower() for k, _ in r2.headers].count("content-type"), 1, r2)
        self.assertEqual(self.cache_lines("/cached/s", 2)[-1], "STALE")
        self.up.set("reset")
        r3 = self.get(self.gw, "/cached/s")
        self.assertEqual((r3.status, r3.get("x-strata-fallback")), (200, "stale"))
        # nothing stored for this one: the error goes through
        self.up.set("status", status=503)
        self.assertEqual(self.get(self.gw, "/cached/never").status, 503)

    def test_unsafe_request_invalidates(self):
        n = self.up.proxied
        self.get(self.gw, "/cached/c")
        self.assertEqual(exchange(self.gw.port, req("POST", "/cached/c", body=b"{}")).status, 200)
        self.get(self.gw, "/cached/c")
        self.assertEqual(self.up.proxied, n + 3, "a POST did not invalidate the stored GET")

    def test_metrics(self):
        self.get(self.gw, "/cached/m")
        self.get(self.gw, "/cached/m")
        m = self.gw.metrics()
        self.assertGreaterEqual(m['strata_gateway_cache_lookups_total{result="hit"}'], 1)
        self.assertGreaterEqual(m["strata_gateway_cache_stores_total"], 1)
        self.assertGreaterEqual(m["strata_gateway_cache_entries"], 1)


class CachingAcrossWorkers(GatewayCase):
    """Each worker keeps its own cache; an unsafe request that one worker
    proxies must stop all of them serving the URI (RFC 9111 4.4)."""

    def test_unsafe_request_reaches_every_worker(self):
        up = FakeUpstream().start()
        gw = ConfigGateway(f"""
gateway:
  listen: 127.0.0.1:PORT
  pools:
    p: {{hosts: [127.0.0.1:{up.port}], health: {{disabled: true}}}}
  routes:
    - match: {{prefix: /}}
      pool: p
      cache: {{ttl: 60s}}
""", "--workers", "2").start()
        try:
            # new connections: the kernel spreads them over both workers,
            # and each worker fetches once for its own cache
            got, _ = wait_until(lambda: self.get(gw, "/w").status == 200 and up.proxied >= 2, 5.0, 0)
            self.assertTrue(got, "the second worker never fetched")
            self.assertEqual(up.proxied, 2)
            self.assertEqual(exchange(gw.port, req("PUT", "/w", body=b"{}")).status, 200)
            for _ in range(40):
                self.assertEqual(self.get(gw, "/w").status, 200)
            # the PUT, and one fetch per worker after it: a worker answering
            # from its old entry would leave it at 4
            self.assertEqual(up.proxied, 5, "a worker kept serving what the PUT changed")
        finally:
            gw.stop()
            up.stop()


class Reload(GatewayCase):
    """SIGHUP: a new configuration without dropping connections or requests
    in flight; a bad one is refused with its errors and the old one stays."""

    YAML = """
gateway:
  listen: 127.0.0.1:PORT
  pools:
    p: {{hosts: [127.0.0.1:{port}]}}
  routes:
    - {{match: {{prefix: /{prefix}}}, pool: p}}
"""

    def write_config(self, gw, port, prefix):
        with open(gw.config, "w") as f:
            f.write(self.YAML.format(port=port, prefix=prefix).replace("PORT", str(gw.port)))

    def test_reload_switches_routes_and_keeps_connections(self):
        from test_gateway import Conn
        import signal
        a, b = FakeUpstream().start(), FakeUpstream().start()
        gw = ConfigGateway(self.YAML.format(port=a.port, prefix="one"))
        gw.start()
        try:
            keep = Conn(gw.port)
            keep.send(req("GET", "/one/x"))
            self.assertEqual(keep.read().status, 200)
            # a request in flight across the reload
            a.set("slow", delay_ms=800)
            slow = Conn(gw.port)
            slow.send(req("GET", "/one/slow"))
            time.sleep(0.2)
            self.write_config(gw, b.port, "two")
            gw.proc.send_signal(signal.SIGHUP)
            ok, _ = wait_until(lambda: any(x.get("event") == "reloaded" for x in gw.log_lines()), 3.0)
            self.assertTrue(ok, "no reloaded line")
            r = slow.read(timeout=3.0)
            self.assertIsNotNone(r, "the request in flight was dropped")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["path"], "/one/slow")
            a.set("ok")
            # the same keep-alive connection, the new routes
            nb = b.proxied
            keep.send(req("GET", "/two/y"))
            r = keep.read()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(b.proxied, nb + 1)
            keep.send(req("GET", "/one/x"))
            self.assert_json_error(keep.read(), 404)
            keep.close()
            slow.close()
            m = gw.metrics()
            self.assertEqual(m['strata_gateway_config_reloads_total{result="ok"}'], 1)
            self.assertIn('strata_gateway_upstream_requests_total{pool="p",upstream="127.0.0.1:%d"}'
                          % b.port, m)
        finally:
            self.assertEqual(gw.stop(), 0)
            a.stop()
            b.stop()

    def test_http_section_changes_are_named_as_needing_a_restart(self):
        import signal
        a = FakeUpstream().start()
        gw = ConfigGateway(self.YAML.format(port=a.port, prefix="one"))
        gw.start()
        try:
            def reload(text):
                with open(gw.config, "w") as f:
                    f.write(text.replace("PORT", str(gw.port)))
                n = sum(1 for x in gw.log_lines() if x.get("event") == "reloaded")
                gw.proc.send_signal(signal.SIGHUP)
                ok, _ = wait_until(lambda: sum(1 for x in gw.log_lines()
                                               if x.get("event") == "reloaded") > n, 3.0)
                self.assertTrue(ok, "no reloaded line")
                return [x for x in gw.log_lines() if x.get("event") == "reload_partial"]
            same = self.YAML.format(port=a.port, prefix="two")
            self.assertEqual(reload(same), [], "a warning for a change that did reload")
            warned = reload("http:\n  busy_poll: 100us\n" + same)
            self.assertEqual(len(warned), 1, warned)
            self.assertIn("busy_poll", warned[0].get("msg", ""))
        finally:
            self.assertEqual(gw.stop(), 0)
            a.stop()

    BREAKER_YAML = """
gateway:
  listen: 127.0.0.1:PORT
  pools:
    p: {{hosts: [127.0.0.1:{port}], health: {{disabled: true}}}}
  routes:
    - match: {{prefix: /b}}
      pool: p
      retries: {{attempts: 1}}
      breaker: {{volume_threshold: 4, error_threshold: 50, reset_timeout: 30s}}
{extra}"""

    def test_open_breaker_and_counters_survive_a_reload(self):
        import signal
        a = FakeUpstream().start()
        gw = ConfigGateway(self.BREAKER_YAML.format(port=a.port, extra=""))
        gw.start()
        try:
            a.set("status", status=503)
            for i in range(6):
                self.get(gw, f"/b/{i}")
            reached = a.proxied
            self.assertEqual(self.get(gw, "/b/x").status, 503)
            self.assertEqual(a.proxied, reached, "the breaker did not open")
            sent = gw.metrics()['strata_gateway_upstream_requests_total{pool="p",upstream="127.0.0.1:%d"}'
                                % a.port]
            a.set("ok")  # healthy again, but the breaker waits out its 30 s
            with open(gw.config, "w") as f:
                f.write(self.BREAKER_YAML.format(
                    port=a.port, extra="    - {match: {prefix: /new}, pool: p}\n").replace("PORT", str(gw.port)))
            gw.proc.send_signal(signal.SIGHUP)
            ok, _ = wait_until(lambda: any(x.get("event") == "reloaded" for x in gw.log_lines()), 3.0)
            self.assertTrue(ok, "no reloaded line")
            self.assertEqual(self.get(gw, "/new/1").status, 200)  # the new conf is in force
            r = self.get(gw, "/b/after")
            self.assert_json_error(r, 503)
            self.assertEqual(a.proxied, reached + 1, "the reload closed the open breaker")
            m = gw.metrics()
            self.assertEqual(m['strata_gateway_route_breaker_open{route="/b/*"}'], 1)
            self.assertGreaterEqual(
                m['strata_gateway_upstream_requests_total{pool="p",upstream="127.0.0.1:%d"}' % a.port],
                sent + 1, "the host's counter started again from 0")
        finally:
            self.assertEqual(gw.stop(), 0)
            a.stop()

    LIMIT_YAML = """
gateway:
  listen: 127.0.0.1:PORT
  rate_limit: {{rate: 1, burst: 3}}
  pools:
    p: {{hosts: [127.0.0.1:{port}], health: {{disabled: true}}}}
  routes:
    - {{match: {{prefix: /r}}, pool: p, rate_limit: {{rate: {route_rate}, burst: 2}}}}
    - {{match: {{prefix: /}}, pool: p}}
"""

    def test_unchanged_rate_limits_keep_their_buckets_across_a_reload(self):
        import signal
        a = FakeUpstream().start()
        gw = ConfigGateway(self.LIMIT_YAML.format(port=a.port, route_rate=1))
        gw.start()
        try:
            # spend both buckets: the route's (burst 2) and the gateway's
            # (burst 3; /r has its own limit instead)
            for path in ("/r/1", "/g/1"):
                self.assertTrue(any(self.get(gw, path).status == 429 for _ in range(6)), path)
            spent = time.monotonic()

            def reload(route_rate):
                n = sum(1 for x in gw.log_lines() if x.get("event") == "reloaded")
                with open(gw.config, "w") as f:
                    f.write(self.LIMIT_YAML.format(port=a.port, route_rate=route_rate)
                            .replace("PORT", str(gw.port)))
                gw.proc.send_signal(signal.SIGHUP)
                ok, _ = wait_until(
                    lambda: sum(1 for x in gw.log_lines() if x.get("event") == "reloaded") > n, 3.0)
                self.assertTrue(ok, "no reloaded line")

            reload(1)  # the same limits: no fresh burst for anyone
            passed = {p: sum(self.get(gw, p).status == 200 for _ in range(3)) for p in ("/r/2", "/g/2")}
            # at 1 request/s only the time since they were spent refilled
            # them; fresh buckets would let 2 and 3 through
            allowed = int(time.monotonic() - spent)
            self.assertLessEqual(passed["/r/2"], allowed, passed)
            self.assertLessEqual(passed["/g/2"], allowed, passed)
            reload(100)  # the route's limit changed: its buckets start anew
            self.assertEqual([self.get(gw, "/r/3").status for _ in range(2)], [200, 200])
        finally:
            self.assertEqual(gw.stop(), 0)
            a.stop()

    def test_bad_config_is_refused_and_old_one_stays(self):
        import signal
        a = FakeUpstream().start()
        gw = ConfigGateway(self.YAML.format(port=a.port, prefix="one"))
        gw.start()
        try:
            with open(gw.config, "w") as f:
                f.write("gateway:\n  routes:\n    - {match: {prefix: /x}, pool: nope}\n")
            gw.proc.send_signal(signal.SIGHUP)

            def refused():
                return [x for x in gw.log_lines() if x.get("event") == "reload_refused"]
            lines, _ = wait_until(refused, 3.0)
            self.assertTrue(lines, "no reload_refused line")
            self.assertIn(':3: gateway.routes[0]: no pool or service named "nope"', lines[0]["msg"])
            self.assertEqual(self.get(gw, "/one/z").status, 200, "the old configuration stopped")
            m = gw.metrics()
            self.assertEqual(m['strata_gateway_config_reloads_total{result="refused"}'], 1)
            self.assertEqual(m['strata_gateway_config_reloads_total{result="ok"}'], 0)
        finally:
            self.assertEqual(gw.stop(), 0)
            a.stop()


class BodyCaps(GatewayCase):
    """gateway.max_request_body and a route's own max_request_body: 413
    with nothing sent upstream; the running configuration decides, so a
    reload changes the caps."""

    YAML = """
gateway:
  listen: 127.0.0.1:PORT
  max_request_body: {cap}
  pools:
    p: {{hosts: [127.0.0.1:{port}]}}
  routes:
    - {{match: {{prefix: /avatars}}, pool: p, max_request_body: 8k}}
    - {{match: {{prefix: /}}, pool: p}}
"""

    def post(self, gw, path, size, chunked=False):
        body = b"x" * size
        if chunked:
            data = req("POST", path, "Transfer-Encoding: chunked") + \
                b"%x\r\n" % size + body + b"\r\n0\r\n\r\n"
        else:
            data = req("POST", path, body=body)
        return exchange(gw.port, data)

    def test_route_cap_gateway_cap_and_reload(self):
        import signal
        a = FakeUpstream().start()
        gw = ConfigGateway(self.YAML.format(cap="4k", port=a.port))
        gw.start()
        try:
            self.assertEqual(self.post(gw, "/avatars/1", 6000).status, 200)  # the route's 8k
            self.assert_json_error(self.post(gw, "/avatars/2", 9000), 413)
            self.assert_json_error(self.post(gw, "/avatars/3", 9000, chunked=True), 413)
            self.assertEqual(self.post(gw, "/docs/1", 4000).status, 200)
            self.assert_json_error(self.post(gw, "/docs/2", 6000), 413)  # the gateway's 4k
            self.assert_json_error(self.post(gw, "/docs/3", 6000, chunked=True), 413)
            paths = [r["path"] for r in a.recorded]
            self.assertEqual(paths, ["/avatars/1", "/docs/1"], "an over-long body reached the upstream")
            with open(gw.config, "w") as f:
                f.write(self.YAML.format(cap="16k", port=a.port).replace("PORT", str(gw.port)))
            gw.proc.send_signal(signal.SIGHUP)
            ok, _ = wait_until(lambda: any(x.get("event") == "reloaded" for x in gw.log_lines()), 3.0)
            self.assertTrue(ok, "no reloaded line")
            self.assertEqual(self.post(gw, "/docs/4", 12000).status, 200)
            self.assertEqual(self.post(gw, "/docs/5", 12000, chunked=True).status, 200)
            self.assert_json_error(self.post(gw, "/docs/6", 17000), 413)
            self.assert_json_error(self.post(gw, "/avatars/4", 9000), 413)
        finally:
            self.assertEqual(gw.stop(), 0)
            a.stop()


class HashParam(GatewayCase):
    def test_same_path_parameter_same_host(self):
        a, b = FakeUpstream().start(), FakeUpstream().start()
        gw = ConfigGateway(f"""
gateway:
  listen: 127.0.0.1:PORT
  pools:
    p: {{hosts: [127.0.0.1:{a.port}, 127.0.0.1:{b.port}], balance: hash-param:id}}
  routes:
    - {{match: {{path: /users/:id/orders}}, pool: p}}
""").start()
        try:
            seen = {}
            for i in range(20):
                for _ in range(3):
                    na, nb = a.proxied, b.proxied
                    self.assertEqual(self.get(gw, f"/users/u{i}/orders").status, 200)
                    host = "a" if a.proxied > na else "b"
                    self.assertEqual(seen.setdefault(i, host), host, f"u{i} moved between hosts")
            self.assertEqual(set(seen.values()), {"a", "b"}, "every key landed on one host")
            m = gw.metrics()
            self.assertTrue(any(k.startswith("strata_gateway_upstream_duration_seconds_count{pool=\"p\"")
                                for k in m), "no upstream latency histogram")
        finally:
            gw.stop()
            a.stop()
            b.stop()


class ConfigErrors(unittest.TestCase):
    def run_gateway(self, yaml_text):
        d = tempfile.mkdtemp()
        path = write(d, "g.yaml", yaml_text)
        return subprocess.run([BIN, "gateway", "--config", path], capture_output=True, text=True,
                              timeout=10)

    def test_bad_config_is_refused_with_its_line(self):
        p = self.run_gateway("gateway:\n  routes:\n    - {match: {prefix: /a}, pool: nope}\n")
        self.assertEqual(p.returncode, 2)
        self.assertIn(':3: gateway.routes[0]: no pool or service named "nope"', p.stderr)

    def test_upstream_flag_conflicts_with_config(self):
        d = tempfile.mkdtemp()
        path = write(d, "g.yaml", "gateway:\n  pools: {a: {hosts: [127.0.0.1:1]}}\n"
                                  "  routes: [{match: {prefix: /}, pool: a}]\n")
        p = subprocess.run([BIN, "gateway", "--config", path, "--upstream", "127.0.0.1:2"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--upstream is for the no-config form", p.stderr)

    def test_scopes_without_credentials_are_refused(self):
        p = self.run_gateway("gateway:\n  pools: {a: {hosts: [127.0.0.1:1]}}\n"
                             "  routes: [{match: {prefix: /}, pool: a, auth: {scopes: [x]}}]\n")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("needs scopes, but no API keys or JWT are configured", p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main()
