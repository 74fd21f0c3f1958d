"""The public HTTP API of `strata serve`, endpoint by endpoint, against the
real binary: users, orders, payments, notifications, the user+orders
composition and /openapi.json.

Every response with a 4xx/5xx status that goes through `ApiCase.req` is
checked for the common error shape: a JSON object {"error": {...}} whose
code matches the status, a non-empty message, and a requestId equal to the
X-Request-Id response header (a replayed idempotent answer carries the
requestId of the request that produced it, so that one is compared with
the original instead).

One server per class (setUpClass); the cold-cache class runs a short-lived
second process on the same data directory first, so that the server under
test has never seen the rows it then reads."""
import json
import os
import random
import re
import socket
import tempfile
import time
import unittest
import http.client

from harness import Server, parse_responses, wait_until

# ---- helpers (copied in spirit from test_monolith.py; not imported) --------

_NO_BODY = object()

ERROR_CODES = {
    400: {"bad_request", "invalid_json", "validation_failed"},
    404: {"not_found"},
    405: {"method_not_allowed"},
    409: {"conflict"},
    413: {"payload_too_large"},
    415: {"unsupported_media_type"},
    422: {"unprocessable_entity"},
}

RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
USER_ID = re.compile(r"^usr_[0-9a-f]{22}$")
ORDER_ID = re.compile(r"^ord_[0-9a-f]{22}$")
PAY_ID = re.compile(r"^pay_[0-9a-f]{22}$")
NTF_ID = re.compile(r"^ntf_[0-9a-f]{22}$")

# well-formed ids that name nothing
NO_USER = "usr_000000000001aaaaaaaaaa"
NO_ORDER = "ord_000000000001aaaaaaaaaa"
NO_PAYMENT = "pay_000000000001aaaaaaaaaa"


class Resp:
    def __init__(self, status, headers, data):
        self.status = status
        self.headers = headers
        self.data = data
        self._json = _NO_BODY

    @property
    def json(self):
        if self._json is _NO_BODY:
            self._json = json.loads(self.data) if self.data else None
        return self._json

    def __repr__(self):
        return f"<{self.status} {self.data[:300]!r}>"


def call(port, method, path, body=_NO_BODY, headers=None, timeout=10):
    """One request on a fresh connection. body: a JSON-able value (sent as
    JSON with Content-Type: application/json unless headers say otherwise),
    bytes (sent as is, no Content-Type added) or _NO_BODY."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {}
        data = None
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif body is not _NO_BODY:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}  # None: leave that header out
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, raw)
    finally:
        c.close()


def rand_email(tag="u"):
    return f"{tag}{random.getrandbits(48):x}@example.com"


class ApiCase(unittest.TestCase):
    srv = None
    workers = 2

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(workers=cls.workers).start()

    @classmethod
    def tearDownClass(cls):
        if cls.srv:
            rc = cls.srv.stop()
            err = cls.srv.stderr()
            # a crash, or a sanitizer report (BUILD=build/san), fails the class
            if rc != 0 or "Sanitizer" in err or "runtime error" in err:
                raise AssertionError(f"strata exited {rc}; stderr:\n{err[-3000:]}")

    # -- transport --------------------------------------------------------
    def req(self, method, path, body=_NO_BODY, headers=None):
        r = call(self.srv.port, method, path, body, headers)
        if r.status >= 400:
            self.check_error_body(r)
        return r

    def check_error_body(self, r, original_request_id=None):
        """The error shape every 4xx/5xx must have (see module docstring)."""
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"),
                        f"error without a JSON content type: {r.headers} {r!r}")
        try:
            doc = json.loads(r.data)
        except ValueError:
            self.fail(f"error body is not JSON: {r!r}")
        self.assertIsInstance(doc, dict, r)
        self.assertEqual(set(doc), {"error"}, r)
        err = doc["error"]
        self.assertIsInstance(err, dict, r)
        self.assertIn(r.status, ERROR_CODES, f"unexpected error status {r!r}")
        self.assertIn(err.get("code"), ERROR_CODES[r.status], f"code does not match status: {r!r}")
        self.assertIsInstance(err.get("message"), str, r)
        self.assertTrue(err["message"], r)
        self.assertIn("x-request-id", r.headers, r)
        self.assertCompact(r)
        if r.headers.get("idempotent-replayed") == "true":
            # replayed bytes: the requestId is the one of the request that made them
            if original_request_id is not None:
                self.assertEqual(err.get("requestId"), original_request_id, r)
        else:
            self.assertEqual(err.get("requestId"), r.headers["x-request-id"],
                             f"error.requestId differs from X-Request-Id: {r.headers} {r!r}")
        return err

    def assertError(self, r, status, code=None, field=_NO_BODY, msg=None):
        """status (and code, and field: a name, None for 'no field', or
        unchecked when left out)."""
        self.assertEqual(r.status, status, msg or r)
        err = self.check_error_body(r)
        if code is not None:
            self.assertEqual(err["code"], code, r)
        if field is None:
            self.assertNotIn("field", err, r)
        elif field is not _NO_BODY:
            self.assertEqual(err.get("field"), field, r)
        return err

    def assertCompact(self, r):
        """Responses are compact JSON: no whitespace between tokens."""
        again = json.dumps(json.loads(r.data), separators=(",", ":"), ensure_ascii=False).encode()
        self.assertEqual(r.data, again, "response body is not compact JSON")

    def assertJsonOk(self, r, status):
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"), r.headers)
        self.assertIn("x-request-id", r.headers)
        self.assertCompact(r)
        return r.json

    def assertAllow(self, r, methods):
        self.assertError(r, 405, "method_not_allowed")
        self.assertIn("allow", r.headers, r.headers)
        self.assertEqual(set(m.strip() for m in r.headers["allow"].split(",")), set(methods),
                         r.headers["allow"])

    # -- fixtures ---------------------------------------------------------
    def new_user(self, name="Test User", email=None):
        email = email or rand_email()
        r = self.req("POST", "/api/users", {"name": name, "email": email})
        self.assertEqual(r.status, 201, r)
        return r.json

    def new_order(self, user_id, items=None):
        items = items or [{"sku": "SKU-1", "quantity": 2, "unitPriceCents": 1250}]
        r = self.req("POST", "/api/orders", {"userId": user_id, "items": items})
        self.assertEqual(r.status, 201, r)
        return r.json

    def pay(self, order, key=None, amount=None, headers=None):
        h = {"Idempotency-Key": key or f"k-{random.getrandbits(64):x}"}
        h.update(headers or {})
        body = {"orderId": order["id"], "amountCents": order["totalCents"] if amount is None else amount}
        return self.req("POST", "/api/payments", body, h)

    def order_status(self, oid):
        r = self.req("GET", f"/api/orders/{oid}")
        self.assertEqual(r.status, 200, r)
        return r.json["status"]

    def walk(self, path, limit):
        """Follows next cursors from path (which has a query string or not);
        returns the pages."""
        sep = "&" if "?" in path else "?"
        pages, after = [], None
        for _ in range(1000):
            url = f"{path}{sep}limit={limit}" + (f"&after={after}" if after else "")
            r = self.req("GET", url)
            body = self.assertJsonOk(r, 200)
            self.assertEqual(set(body), {"items", "next"}, body)
            self.assertIsInstance(body["items"], list)
            self.assertLessEqual(len(body["items"]), limit)
            pages.append(body["items"])
            if body["next"] is None:
                return pages
            # a full page, and the cursor is its last id
            self.assertEqual(len(body["items"]), limit, body)
            self.assertEqual(body["next"], body["items"][-1]["id"], body)
            after = body["next"]
        self.fail("pagination did not end")

    def assertIdsStrictlyIncreasing(self, pages):
        ids = [it["id"] for page in pages for it in page]
        self.assertEqual(len(ids), len(set(ids)), "duplicate ids across pages")
        self.assertEqual(ids, sorted(ids))
        for a, b in zip(ids, ids[1:]):
            self.assertLess(a, b)
        return ids


def assert_user_shape(tc, u, name=None, email=None):
    tc.assertEqual(set(u), {"id", "name", "email", "createdAt", "updatedAt"}, u)
    tc.assertRegex(u["id"], USER_ID)
    tc.assertRegex(u["createdAt"], RFC3339_MS)
    tc.assertRegex(u["updatedAt"], RFC3339_MS)
    if name is not None:
        tc.assertEqual(u["name"], name)
    if email is not None:
        tc.assertEqual(u["email"], email)


# =============================================================================
class UsersApi(ApiCase):

    def test_create_201_location_and_shape(self):
        email = rand_email()
        r = self.req("POST", "/api/users", {"name": "Ada Lovelace", "email": email})
        u = self.assertJsonOk(r, 201)
        assert_user_shape(self, u, "Ada Lovelace", email)
        self.assertEqual(u["createdAt"], u["updatedAt"])
        self.assertEqual(r.headers.get("location"), f"/api/users/{u['id']}")
        g = self.req("GET", r.headers["location"])
        self.assertEqual(self.assertJsonOk(g, 200), u)

    def test_create_accepts_json_with_parameters(self):
        r = self.req("POST", "/api/users", json.dumps({"name": "P", "email": rand_email()}).encode(),
                     {"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(r.status, 201, r)

    def test_duplicate_email_409(self):
        email = rand_email("dup")
        self.new_user(email=email)
        r = self.req("POST", "/api/users", {"name": "Again", "email": email})
        self.assertError(r, 409, "conflict", "email")

    def test_duplicate_email_differing_in_case_409(self):
        email = rand_email("case")
        self.new_user(email=email)
        r = self.req("POST", "/api/users", {"name": "Again", "email": email.upper()})
        self.assertError(r, 409, "conflict", "email")

    def test_missing_fields_400(self):
        self.assertError(self.req("POST", "/api/users", {"email": rand_email()}), 400,
                         "validation_failed", "name")
        self.assertError(self.req("POST", "/api/users", {"name": "N"}), 400, "validation_failed", "email")
        self.assertError(self.req("POST", "/api/users", {}), 400, "validation_failed")

    def test_wrong_types_400(self):
        for bad in (42, None, ["a"], {"x": 1}, True, 1.5):
            with self.subTest(name=bad):
                self.assertError(self.req("POST", "/api/users", {"name": bad, "email": rand_email()}),
                                 400, "validation_failed", "name")
            with self.subTest(email=bad):
                self.assertError(self.req("POST", "/api/users", {"name": "N", "email": bad}),
                                 400, "validation_failed", "email")

    def test_empty_and_too_long_name_400(self):
        self.assertError(self.req("POST", "/api/users", {"name": "", "email": rand_email()}),
                         400, "validation_failed", "name")
        self.assertError(self.req("POST", "/api/users", {"name": "x" * 201, "email": rand_email()}),
                         400, "validation_failed", "name")
        # the boundary is accepted
        self.assertEqual(self.req("POST", "/api/users", {"name": "x" * 200, "email": rand_email()}).status, 201)
        # lengths are UTF-8 bytes: 200 two-byte characters are 400 bytes
        self.assertError(self.req("POST", "/api/users", {"name": "\u00e9" * 200, "email": rand_email()}),
                         400, "validation_failed", "name")
        u = self.new_user(name="\u00e9" * 100)
        self.assertEqual(u["name"], "\u00e9" * 100)

    def test_bad_emails_400(self):
        for bad in ("no-at-sign.example.com", "two@@example.com", "a@b@example.com",
                    "sp ace@example.com", "space@exa mple.com", " lead@example.com",
                    "nodot@localhost", "@example.com", "user@", "user@.com", "user@example.",
                    "tab\t@example.com", ""):
            with self.subTest(email=bad):
                self.assertError(self.req("POST", "/api/users", {"name": "N", "email": bad}),
                                 400, "validation_failed", "email")

    def test_unknown_field_400_names_it(self):
        r = self.req("POST", "/api/users", {"name": "N", "email": rand_email(), "nickname": "n"})
        self.assertError(r, 400, "validation_failed", "nickname")

    def test_server_owned_fields_400_name_them(self):
        for f, v in (("id", "usr_00000000000000000000ab"), ("createdAt", "2020-01-01T00:00:00.000Z"),
                     ("updatedAt", "2020-01-01T00:00:00.000Z")):
            with self.subTest(field=f):
                r = self.req("POST", "/api/users", {"name": "N", "email": rand_email(), f: v})
                self.assertError(r, 400, "validation_failed", f)

    def test_non_json_content_type_415(self):
        body = json.dumps({"name": "N", "email": rand_email()}).encode()
        self.assertError(self.req("POST", "/api/users", body, {"Content-Type": "text/plain"}),
                         415, "unsupported_media_type")
        self.assertError(self.req("POST", "/api/users", body), 415, "unsupported_media_type")  # none
        self.assertError(self.req("POST", "/api/users", body, {"Content-Type": "application/jsonx"}),
                         415, "unsupported_media_type")

    def test_invalid_json_400(self):
        for raw in (b'{"name": "N", "email":', b"{name: 1}", b"", b'{"name":"a","name":"b","email":"a@b.co"}'):
            with self.subTest(raw=raw):
                r = self.req("POST", "/api/users", raw, {"Content-Type": "application/json"})
                self.assertError(r, 400, "invalid_json")

    def test_plus_json_media_type_accepted(self):
        r = self.req("POST", "/api/users", json.dumps({"name": "V", "email": rand_email()}).encode(),
                     {"Content-Type": "application/vnd.strata+json"})
        self.assertEqual(r.status, 201, r)

    def test_invalid_utf8_and_depth_400(self):
        r = self.req("POST", "/api/users", b'{"name":"\xff\xfe","email":"utf@example.com"}',
                     {"Content-Type": "application/json"})
        self.assertError(r, 400, "invalid_json")
        # 32 levels (the object and 31 arrays) decode, and the type is what is wrong
        ok = b'{"email":"d@example.com","name":' + b"[" * 31 + b"]" * 31 + b"}"
        self.assertError(self.req("POST", "/api/users", ok, {"Content-Type": "application/json"}),
                         400, "validation_failed", "name")
        deep = b'{"email":"d@example.com","name":' + b"[" * 32 + b"]" * 32 + b"}"
        self.assertError(self.req("POST", "/api/users", deep, {"Content-Type": "application/json"}),
                         400, "invalid_json")

    def test_invalid_request_id_is_replaced(self):
        for bad in ("has space", "x" * 129, "semi;colon"):
            with self.subTest(rid=bad[:20]):
                r = self.req("POST", "/api/users", {"name": "N"}, {"X-Request-Id": bad})
                self.assertError(r, 400)
                self.assertNotEqual(r.headers["x-request-id"], bad)
                self.assertRegex(r.headers["x-request-id"], r"^[A-Za-z0-9._-]{1,128}$")
        r = self.req("GET", "/api/users?limit=1", headers={"X-Request-Id": "x" * 128})
        self.assertEqual(r.headers.get("x-request-id"), "x" * 128)

    def test_json_array_body_400(self):
        r = self.req("POST", "/api/users", [{"name": "N", "email": rand_email()}])
        self.assertError(r, 400)
        self.assertIn(r.json["error"]["code"], ("validation_failed", "bad_request"))
        self.assertError(self.req("POST", "/api/users", "just a string"), 400)

    def test_body_over_one_mebibyte_413(self):
        limit = 1024 * 1024
        head = (f"POST /api/users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                f"X-Request-Id: big-body-1\r\nContent-Length: {limit + 1}\r\n\r\n").encode()
        data, closed = self.srv.raw(head + b'{"name":"' + b"x" * 65536)
        self.assertTrue(closed, "the connection is closed after a 413")
        resps = parse_responses(data)
        self.assertTrue(resps, data[:300])
        status, headers, body = resps[0]
        r = Resp(status, headers, body)
        self.assertError(r, 413, "payload_too_large")
        self.assertEqual(headers.get("x-request-id"), "big-body-1")

    def test_body_over_one_mebibyte_chunked_413(self):
        chunk = b"x" * 65536
        head = (b"POST /api/users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        payload = head + b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(17)) + b"0\r\n\r\n"
        s = self.srv.connect()
        try:
            try:
                s.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass
            data, closed = self.srv.raw(b"", sock=s)
        finally:
            s.close()
        self.assertTrue(closed, "the connection is closed after a 413")
        resps = parse_responses(data)
        self.assertTrue(resps, data[:300])
        self.assertError(Resp(*resps[0]), 413, "payload_too_large")

    def test_body_of_exactly_one_mebibyte_is_read(self):
        # at the limit the body is accepted and validated: the name is too long
        limit = 1024 * 1024
        prefix = b'{"email":"big@example.com","name":"'
        body = prefix + b"x" * (limit - len(prefix) - 2) + b'"}'
        self.assertEqual(len(body), limit)
        r = self.req("POST", "/api/users", body, {"Content-Type": "application/json"})
        self.assertError(r, 400, "validation_failed", "name")

    def test_custom_request_id_is_echoed(self):
        r = self.req("POST", "/api/users", {"name": "N"}, {"X-Request-Id": "my-req.42_A"})
        self.assertEqual(r.headers.get("x-request-id"), "my-req.42_A")
        self.assertEqual(self.assertError(r, 400)["requestId"], "my-req.42_A")

    def test_get_then_repeat_is_cache_hit(self):
        u = self.new_user()
        r1 = self.req("GET", f"/api/users/{u['id']}")
        self.assertEqual(self.assertJsonOk(r1, 200), u)
        self.assertIn(r1.headers.get("x-cache"), ("MISS", "HIT"))
        # created through this instance: the write went through to the cache
        self.assertEqual(r1.headers.get("x-cache"), "HIT",
                         "a user created through this instance is cached write-through")
        r2 = self.req("GET", f"/api/users/{u['id']}")
        self.assertEqual(r2.json, u)
        self.assertEqual(r2.headers.get("x-cache"), "HIT")

    def test_head_user(self):
        u = self.new_user()
        r = self.req("HEAD", f"/api/users/{u['id']}")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.data, b"")
        self.assertEqual(int(r.headers["content-length"]), len(json.dumps(u, separators=(",", ":"))))

    def test_get_unknown_404(self):
        for path in (f"/api/users/{NO_USER}", "/api/users/garbage", "/api/users/usr_XYZ",
                     "/api/users/ord_000000000001aaaaaaaaaa", "/api/users/usr_000000000001AAAAAAAAAA"):
            with self.subTest(path=path):
                self.assertError(self.req("GET", path), 404, "not_found")

    def test_unknown_id_404_has_x_cache_miss_then_hit(self):
        uid = f"usr_{random.getrandbits(88):022x}"
        r1 = self.req("GET", f"/api/users/{uid}")
        self.assertError(r1, 404, "not_found", None)
        self.assertEqual(r1.headers.get("x-cache"), "MISS")
        r2 = self.req("GET", f"/api/users/{uid}")
        self.assertError(r2, 404, "not_found", None)
        self.assertEqual(r2.headers.get("x-cache"), "HIT", "the absence is cached (negative caching)")

    def test_patch_name(self):
        u = self.new_user(name="Before")
        time.sleep(0.01)
        r = self.req("PATCH", f"/api/users/{u['id']}", {"name": "After"})
        p = self.assertJsonOk(r, 200)
        assert_user_shape(self, p, "After", u["email"])
        self.assertEqual(p["id"], u["id"])
        self.assertEqual(p["createdAt"], u["createdAt"])
        self.assertGreater(p["updatedAt"], u["updatedAt"])
        g = self.req("GET", f"/api/users/{u['id']}")
        self.assertEqual(g.json["name"], "After")

    def test_patch_email(self):
        u = self.new_user()
        new = rand_email("patched")
        p = self.assertJsonOk(self.req("PATCH", f"/api/users/{u['id']}", {"email": new}), 200)
        self.assertEqual((p["email"], p["name"]), (new, u["name"]))
        # the old address is free again
        self.new_user(email=u["email"])

    def test_patch_email_taken_409(self):
        a, b = self.new_user(), self.new_user()
        self.assertError(self.req("PATCH", f"/api/users/{b['id']}", {"email": a["email"]}),
                         409, "conflict", "email")
        self.assertError(self.req("PATCH", f"/api/users/{b['id']}", {"email": a["email"].upper()}),
                         409, "conflict", "email")
        self.assertEqual(self.req("GET", f"/api/users/{b['id']}").json["email"], b["email"])

    def test_patch_empty_400(self):
        u = self.new_user()
        self.assertError(self.req("PATCH", f"/api/users/{u['id']}", {}), 400, "validation_failed")

    def test_patch_invalid_values_400(self):
        u = self.new_user()
        self.assertError(self.req("PATCH", f"/api/users/{u['id']}", {"name": ""}), 400,
                         "validation_failed", "name")
        self.assertError(self.req("PATCH", f"/api/users/{u['id']}", {"email": "nope"}), 400,
                         "validation_failed", "email")
        self.assertError(self.req("PATCH", f"/api/users/{u['id']}", {"name": None}), 400,
                         "validation_failed", "name")
        self.assertError(self.req("PATCH", f"/api/users/{u['id']}", {"role": "admin"}), 400,
                         "validation_failed", "role")
        self.assertError(self.req("PATCH", f"/api/users/{u['id']}", b"name=x",
                                  {"Content-Type": "application/x-www-form-urlencoded"}),
                         415, "unsupported_media_type")
        self.assertError(self.req("PATCH", f"/api/users/{u['id']}", b"{", {"Content-Type": "application/json"}),
                         400, "invalid_json")

    def test_patch_unknown_404(self):
        self.assertError(self.req("PATCH", f"/api/users/{NO_USER}", {"name": "X"}), 404, "not_found")
        self.assertError(self.req("PATCH", "/api/users/garbage", {"name": "X"}), 404, "not_found")

    def test_patch_server_owned_400(self):
        u = self.new_user()
        for f, v in (("id", "usr_00000000000000000000ab"), ("createdAt", "2020-01-01T00:00:00.000Z"),
                     ("updatedAt", "2020-01-01T00:00:00.000Z")):
            with self.subTest(field=f):
                self.assertError(self.req("PATCH", f"/api/users/{u['id']}", {"name": "X", f: v}),
                                 400, "validation_failed", f)
        self.assertEqual(self.req("GET", f"/api/users/{u['id']}").json["name"], u["name"])

    def test_delete(self):
        u = self.new_user()
        self.req("GET", f"/api/users/{u['id']}")  # cached
        r = self.req("DELETE", f"/api/users/{u['id']}")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.data, b"")
        self.assertNotIn("content-type", r.headers)
        self.assertError(self.req("GET", f"/api/users/{u['id']}"), 404, "not_found")
        self.assertError(self.req("DELETE", f"/api/users/{u['id']}"), 404, "not_found")
        self.assertError(self.req("PATCH", f"/api/users/{u['id']}", {"name": "Z"}), 404, "not_found")
        self.assertError(self.req("DELETE", "/api/users/garbage"), 404, "not_found")
        # the address can be used again
        self.new_user(email=u["email"])

    def test_list_pagination(self):
        mine = {self.new_user(name=f"Paged {i}")["id"] for i in range(5)}
        pages = self.walk("/api/users", 2)
        ids = self.assertIdsStrictlyIncreasing(pages)
        self.assertTrue(mine <= set(ids), mine - set(ids))
        self.assertGreaterEqual(len(pages), 3)
        for page in pages:
            for u in page:
                assert_user_shape(self, u)
        # the default page
        body = self.assertJsonOk(self.req("GET", "/api/users"), 200)
        self.assertEqual(set(body), {"items", "next"})
        self.assertLessEqual(len(body["items"]), 20)

    def test_list_after_last_is_empty(self):
        ids = self.assertIdsStrictlyIncreasing(self.walk("/api/users", 100))
        body = self.req("GET", f"/api/users?after={ids[-1]}").json if ids else None
        if body is not None:
            self.assertEqual(body, {"items": [], "next": None})

    def test_list_bad_params_400(self):
        for q in ("limit=0", "limit=101", "limit=abc", "limit=-1", "limit=", "limit=1.5", "limit=%2B5",
                  "limit=5x", "limit=0x10"):
            with self.subTest(q=q):
                self.assertError(self.req("GET", f"/api/users?{q}"), 400, "validation_failed", "limit")
        for q in ("after=garbage", "after=ord_000000000001aaaaaaaaaa", "after=usr_1"):
            with self.subTest(q=q):
                self.assertError(self.req("GET", f"/api/users?{q}"), 400, "validation_failed", "after")
        self.assertEqual(self.req("GET", "/api/users?limit=100").status, 200)
        self.assertEqual(self.req("GET", "/api/users?limit=1").status, 200)

    def test_list_limit_with_leading_whitespace_400(self):
        # paging.c refuses a sign ('+5', '-5') but strtol() skips leading
        # whitespace, so " 5" (also spelled "+5" in a query string, where '+'
        # is a space) passes as 5. The limit must be digits only.
        # Every list endpoint shares paging_read(), so all of them are checked.
        accepted = []
        for path in ("/api/users?", "/api/orders?", f"/api/notifications?userId={NO_USER}&"):
            for q in ("limit=%205", "limit=+5", "limit=%095", "limit=%0A5"):
                r = self.req("GET", path + q)
                if r.status != 400:
                    accepted.append(f"GET {path}{q} -> {r.status}")
                else:
                    self.assertError(r, 400, "validation_failed", "limit")
        self.assertEqual(accepted, [], "a limit with leading whitespace was accepted")

    def test_method_not_allowed(self):
        u = self.new_user()
        r = self.req("PUT", f"/api/users/{u['id']}", {"name": "X", "email": rand_email()})
        self.assertAllow(r, {"GET", "HEAD", "PATCH", "DELETE"})
        self.assertAllow(self.req("DELETE", "/api/users"), {"GET", "HEAD", "POST"})
        self.assertAllow(self.req("POST", f"/api/users/{u['id']}/orders", {}), {"GET", "HEAD"})

    def test_unknown_path_404(self):
        self.assertError(self.req("GET", "/api/nothing-here"), 404, "not_found")
        self.assertError(self.req("GET", f"/api/users/{NO_USER}/nothing"), 404, "not_found")


# =============================================================================
class OrdersApi(ApiCase):
    ITEMS = [{"sku": "A-1", "quantity": 3, "unitPriceCents": 199},
             {"sku": "B-22", "quantity": 1, "unitPriceCents": 10000},
             {"sku": "C-333", "quantity": 7, "unitPriceCents": 0},
             {"sku": "D", "quantity": 12, "unitPriceCents": 5}]

    def test_create_201(self):
        u = self.new_user()
        r = self.req("POST", "/api/orders", {"userId": u["id"], "items": self.ITEMS})
        o = self.assertJsonOk(r, 201)
        self.assertEqual(set(o), {"id", "userId", "status", "items", "totalCents", "createdAt", "updatedAt"}, o)
        self.assertRegex(o["id"], ORDER_ID)
        self.assertEqual(o["userId"], u["id"])
        self.assertEqual(o["status"], "pending")
        self.assertEqual(o["items"], self.ITEMS)
        self.assertEqual(o["totalCents"], sum(i["quantity"] * i["unitPriceCents"] for i in self.ITEMS))
        self.assertEqual(o["totalCents"], 3 * 199 + 10000 + 0 + 60)
        self.assertRegex(o["createdAt"], RFC3339_MS)
        self.assertRegex(o["updatedAt"], RFC3339_MS)
        self.assertEqual(r.headers.get("location"), f"/api/orders/{o['id']}")
        g = self.req("GET", r.headers["location"])
        self.assertEqual(self.assertJsonOk(g, 200), o)

    def test_create_large_total(self):
        u = self.new_user()
        items = [{"sku": f"S{i}", "quantity": 10000, "unitPriceCents": 100000000} for i in range(100)]
        o = self.new_order(u["id"], items)
        self.assertEqual(o["totalCents"], 100 * 10000 * 100000000)
        self.assertEqual(len(o["items"]), 100)
        self.assertEqual([i["sku"] for i in o["items"]], [f"S{i}" for i in range(100)])

    def test_unknown_user_422(self):
        for uid in (NO_USER, "garbage", "usr_XYZ"):
            with self.subTest(userId=uid):
                r = self.req("POST", "/api/orders", {"userId": uid, "items": self.ITEMS})
                self.assertError(r, 422, "unprocessable_entity", "userId")

    def test_deleted_user_422(self):
        u = self.new_user()
        self.assertEqual(self.req("DELETE", f"/api/users/{u['id']}").status, 204)
        r = self.req("POST", "/api/orders", {"userId": u["id"], "items": self.ITEMS})
        self.assertError(r, 422, "unprocessable_entity", "userId")

    def test_user_id_missing_or_wrong_type_400(self):
        self.assertError(self.req("POST", "/api/orders", {"items": self.ITEMS}), 400, "validation_failed", "userId")
        for bad in (1, None, [], ""):
            with self.subTest(userId=bad):
                self.assertError(self.req("POST", "/api/orders", {"userId": bad, "items": self.ITEMS}),
                                 400, "validation_failed", "userId")

    def test_items_invalid_400(self):
        u = self.new_user()
        one = {"sku": "X", "quantity": 1, "unitPriceCents": 1}
        cases = {"missing": _NO_BODY, "empty": [], "object": one, "string": "x", "null": None,
                 "101 items": [one] * 101}
        for name, items in cases.items():
            with self.subTest(items=name):
                body = {"userId": u["id"]}
                if items is not _NO_BODY:
                    body["items"] = items
                self.assertError(self.req("POST", "/api/orders", body), 400, "validation_failed", "items")
        # 100 is the limit, and allowed
        self.assertEqual(self.req("POST", "/api/orders", {"userId": u["id"], "items": [one] * 100}).status, 201)

    def test_item_errors_name_the_item_field(self):
        u = self.new_user()
        good = {"sku": "OK", "quantity": 1, "unitPriceCents": 100}
        cases = [
            ({"sku": "X", "quantity": 0, "unitPriceCents": 1}, "items[1].quantity"),
            ({"sku": "X", "quantity": -1, "unitPriceCents": 1}, "items[1].quantity"),
            ({"sku": "X", "quantity": 10001, "unitPriceCents": 1}, "items[1].quantity"),
            ({"sku": "X", "quantity": 1.5, "unitPriceCents": 1}, "items[1].quantity"),
            ({"sku": "X", "quantity": "2", "unitPriceCents": 1}, "items[1].quantity"),
            ({"sku": "X", "unitPriceCents": 1}, "items[1].quantity"),
            ({"sku": "X", "quantity": 1, "unitPriceCents": -1}, "items[1].unitPriceCents"),
            ({"sku": "X", "quantity": 1, "unitPriceCents": 100000001}, "items[1].unitPriceCents"),
            ({"sku": "X", "quantity": 1}, "items[1].unitPriceCents"),
            ({"sku": "X" * 65, "quantity": 1, "unitPriceCents": 1}, "items[1].sku"),
            ({"sku": "", "quantity": 1, "unitPriceCents": 1}, "items[1].sku"),
            ({"sku": 5, "quantity": 1, "unitPriceCents": 1}, "items[1].sku"),
            ({"quantity": 1, "unitPriceCents": 1}, "items[1].sku"),
            ({"sku": "X", "quantity": 1, "unitPriceCents": 1, "color": "red"}, "items[1].color"),
            ("not an object", "items[1]"),
        ]
        for item, field in cases:
            with self.subTest(item=item):
                r = self.req("POST", "/api/orders", {"userId": u["id"], "items": [good, item]})
                self.assertError(r, 400, "validation_failed", field)
        # the boundaries are accepted
        edge = {"sku": "X" * 64, "quantity": 10000, "unitPriceCents": 100000000}
        self.assertEqual(self.req("POST", "/api/orders", {"userId": u["id"], "items": [good, edge]}).status, 201)

    def test_server_owned_and_unknown_fields_400(self):
        u = self.new_user()
        for f, v in (("totalCents", 1), ("status", "paid"), ("id", "ord_00000000000000000000ab"),
                     ("createdAt", "2020-01-01T00:00:00.000Z"), ("coupon", "FREE")):
            with self.subTest(field=f):
                r = self.req("POST", "/api/orders", {"userId": u["id"], "items": self.ITEMS, f: v})
                self.assertError(r, 400, "validation_failed", f)

    def test_create_body_errors(self):
        u = self.new_user()
        body = json.dumps({"userId": u["id"], "items": self.ITEMS}).encode()
        self.assertError(self.req("POST", "/api/orders", body, {"Content-Type": "text/plain"}), 415)
        self.assertError(self.req("POST", "/api/orders", body), 415)
        self.assertError(self.req("POST", "/api/orders", body[:-1], {"Content-Type": "application/json"}),
                         400, "invalid_json")
        self.assertError(self.req("POST", "/api/orders", [1, 2]), 400)

    def test_get_and_cache_header(self):
        u = self.new_user()
        o = self.new_order(u["id"])
        r1 = self.req("GET", f"/api/orders/{o['id']}")
        self.assertEqual(self.assertJsonOk(r1, 200), o)
        self.assertEqual(r1.headers.get("x-cache"), "HIT",
                         "an order created through this instance is cached write-through")
        r2 = self.req("GET", f"/api/orders/{o['id']}")
        self.assertEqual((r2.json, r2.headers.get("x-cache")), (o, "HIT"))

    def test_get_unknown_404(self):
        for path in (f"/api/orders/{NO_ORDER}", "/api/orders/garbage", f"/api/orders/{NO_USER}"):
            with self.subTest(path=path):
                self.assertError(self.req("GET", path), 404, "not_found")

    def test_unknown_id_404_x_cache(self):
        oid = f"ord_{random.getrandbits(88):022x}"
        r1 = self.req("GET", f"/api/orders/{oid}")
        self.assertError(r1, 404, "not_found", None)
        self.assertEqual(r1.headers.get("x-cache"), "MISS")
        r2 = self.req("GET", f"/api/orders/{oid}")
        self.assertError(r2, 404, "not_found", None)
        self.assertEqual(r2.headers.get("x-cache"), "HIT")
        r3 = self.req("GET", "/api/orders/not-an-id")
        self.assertError(r3, 404, "not_found", None)
        self.assertNotIn("x-cache", r3.headers, "a malformed id is answered without X-Cache")

    def test_cancel_ignores_a_body(self):
        u = self.new_user()
        o1, o2 = self.new_order(u["id"]), self.new_order(u["id"])
        r = self.req("POST", f"/api/orders/{o1['id']}/cancel", {"reason": "changed my mind"})
        self.assertEqual((r.status, r.json["status"]), (200, "cancelled"), r)
        r = self.req("POST", f"/api/orders/{o2['id']}/cancel", b"whatever", {"Content-Type": "text/plain"})
        self.assertEqual((r.status, r.json["status"]), (200, "cancelled"), r)

    def test_list_by_user_status_and_pages(self):
        u, other = self.new_user(), self.new_user()
        mine = [self.new_order(u["id"], [{"sku": f"L{i}", "quantity": i + 1, "unitPriceCents": 10}])
                for i in range(5)]
        theirs = self.new_order(other["id"])
        pages = self.walk(f"/api/orders?userId={u['id']}", 2)
        self.assertEqual([len(p) for p in pages], [2, 2, 1])
        ids = self.assertIdsStrictlyIncreasing(pages)
        self.assertEqual(set(ids), {o["id"] for o in mine})
        by_id = {o["id"]: o for o in mine}
        for page in pages:
            for o in page:
                self.assertEqual(o, by_id[o["id"]])
        # cancel one: the status filters split them
        c = self.req("POST", f"/api/orders/{mine[2]['id']}/cancel")
        self.assertEqual(c.status, 200, c)
        pend = self.req("GET", f"/api/orders?userId={u['id']}&status=pending&limit=100").json
        self.assertEqual({o["id"] for o in pend["items"]}, {o["id"] for o in mine} - {mine[2]["id"]})
        self.assertIsNone(pend["next"])
        canc = self.req("GET", f"/api/orders?userId={u['id']}&status=cancelled").json
        self.assertEqual([o["id"] for o in canc["items"]], [mine[2]["id"]])
        self.assertEqual(canc["items"][0]["status"], "cancelled")
        paid = self.req("GET", f"/api/orders?userId={u['id']}&status=paid").json
        self.assertEqual(paid, {"items": [], "next": None})
        # without userId: every user's orders
        every = self.assertIdsStrictlyIncreasing(self.walk("/api/orders", 100))
        self.assertIn(theirs["id"], every)
        self.assertTrue({o["id"] for o in mine} <= set(every))
        # status alone
        all_cancelled = self.req("GET", "/api/orders?status=cancelled&limit=100").json["items"]
        self.assertTrue(all(o["status"] == "cancelled" for o in all_cancelled))
        self.assertIn(mine[2]["id"], {o["id"] for o in all_cancelled})
        # an unknown user has no orders (a filter, not a lookup)
        self.assertEqual(self.req("GET", f"/api/orders?userId={NO_USER}").json, {"items": [], "next": None})

    def test_list_bad_params_400(self):
        for q in ("status=shipped", "status=PENDING", "status="):
            with self.subTest(q=q):
                self.assertError(self.req("GET", f"/api/orders?{q}"), 400, "validation_failed", "status")
        for q in ("limit=0", "limit=101", "limit=abc"):
            with self.subTest(q=q):
                self.assertError(self.req("GET", f"/api/orders?{q}"), 400, "validation_failed", "limit")
        for q in ("after=garbage", f"after={NO_USER}"):
            with self.subTest(q=q):
                self.assertError(self.req("GET", f"/api/orders?{q}"), 400, "validation_failed", "after")

    def test_cancel(self):
        u = self.new_user()
        o = self.new_order(u["id"])
        self.assertEqual(self.req("GET", f"/api/orders/{o['id']}").headers.get("x-cache"), "HIT")  # cached
        time.sleep(0.005)
        r = self.req("POST", f"/api/orders/{o['id']}/cancel")
        c = self.assertJsonOk(r, 200)
        self.assertEqual(c["status"], "cancelled")
        self.assertEqual(c["id"], o["id"])
        self.assertEqual(c["items"], o["items"])
        self.assertEqual(c["totalCents"], o["totalCents"])
        self.assertEqual(c["createdAt"], o["createdAt"])
        self.assertGreater(c["updatedAt"], o["updatedAt"])
        self.assertNotIn("location", r.headers)
        # the cached copy follows the write
        for _ in range(3):
            g = self.req("GET", f"/api/orders/{o['id']}")
            self.assertEqual(g.json, c)
        self.assertError(self.req("POST", f"/api/orders/{o['id']}/cancel"), 409, "conflict")
        self.assertEqual(self.req("GET", f"/api/orders/{o['id']}").json["status"], "cancelled")

    def test_cancel_unknown_404(self):
        self.assertError(self.req("POST", f"/api/orders/{NO_ORDER}/cancel"), 404, "not_found")
        self.assertError(self.req("POST", "/api/orders/garbage/cancel"), 404, "not_found")

    def test_method_not_allowed(self):
        u = self.new_user()
        o = self.new_order(u["id"])
        self.assertAllow(self.req("DELETE", f"/api/orders/{o['id']}"), {"GET", "HEAD"})
        self.assertAllow(self.req("GET", f"/api/orders/{o['id']}/cancel"), {"POST"})
        self.assertAllow(self.req("PUT", "/api/orders", {}), {"GET", "HEAD", "POST"})
        self.assertEqual(self.order_status(o["id"]), "pending")


# =============================================================================
class PaymentsApi(ApiCase):

    def order(self, **kw):
        u = self.new_user()
        return u, self.new_order(u["id"], kw.get("items", [{"sku": "P", "quantity": 3, "unitPriceCents": 999},
                                                             {"sku": "Q", "quantity": 1, "unitPriceCents": 1}]))

    def test_idempotency_key_required_and_checked(self):
        _, o = self.order()
        body = {"orderId": o["id"], "amountCents": o["totalCents"]}
        self.assertError(self.req("POST", "/api/payments", body), 400, "bad_request", "Idempotency-Key")
        for key in ("", "k" * 256, "has space", "tab\tkey"):
            with self.subTest(key=key[:20]):
                r = self.req("POST", "/api/payments", body, {"Idempotency-Key": key})
                self.assertError(r, 400, "bad_request", "Idempotency-Key")
        # non-ASCII (UTF-8 bytes on the wire)
        r = self.req("POST", "/api/payments", body, {"Idempotency-Key": "clé-1".encode("utf-8")})
        self.assertError(r, 400, "bad_request", "Idempotency-Key")
        # 255 visible characters are a valid key: the body is what is checked next
        r = self.req("POST", "/api/payments", {"amountCents": 1}, {"Idempotency-Key": "k" * 255})
        self.assertError(r, 400, "validation_failed", "orderId")
        # nothing was charged
        self.assertEqual(self.order_status(o["id"]), "pending")

    def test_crash_abandoned_reservation_is_taken_over_at_once(self):
        """A reservation left by a process that died is taken over by the
        next request with its key (the holder's boot id, pid and start time
        are recorded); one held by a live process, or by an unknown one
        (a row from an older strata), stays in flight (409)."""
        import sqlite3
        _, o = self.order()
        body = {"orderId": o["id"], "amountCents": 1}  # wrong amount: a stored 422
        self.assertError(self.req("POST", "/api/payments", body, {"Idempotency-Key": f"src-{o['id']}"}),
                         422, "unprocessable_entity", "amountCents")
        db = sqlite3.connect(os.path.join(self.srv.tmp, "data", "payments.db"), timeout=10)
        (request,) = db.execute("SELECT request FROM idempotency_keys WHERE key = ?",
                                (f"src-{o['id']}",)).fetchone()

        def proc_id(pid, start_shift=0):
            with open("/proc/sys/kernel/random/boot_id") as f:
                boot = f.read().strip()
            with open(f"/proc/{pid}/stat") as f:
                start = int(f.read().rsplit(")", 1)[1].split()[19])
            return f"{boot}/{pid}/{start + start_shift}"
        now = int(time.time() * 1000)
        holders = {"dead": proc_id(self.srv.proc.pid, 1),  # that pid, another start: gone
                   "live": proc_id(self.srv.proc.pid), "unknown": None}
        for name, owner in holders.items():
            db.execute("INSERT INTO idempotency_keys (client_id, key, request, status, created_at, owner)"
                       " VALUES ('anonymous', ?, ?, 0, ?, ?)", (f"{name}-{o['id']}", request, now, owner))
        db.commit()
        db.close()
        self.assertError(self.req("POST", "/api/payments", body, {"Idempotency-Key": f"dead-{o['id']}"}),
                         422, "unprocessable_entity", "amountCents")
        for name in ("live", "unknown"):
            with self.subTest(holder=name):
                self.assertError(self.req("POST", "/api/payments", body,
                                          {"Idempotency-Key": f"{name}-{o['id']}"}), 409, "conflict")

    def test_body_validation(self):
        _, o = self.order()
        h = {"Idempotency-Key": f"val-{o['id']}"}
        cases = [
            ({"amountCents": o["totalCents"]}, "orderId"),
            ({"orderId": 5, "amountCents": o["totalCents"]}, "orderId"),
            ({"orderId": o["id"]}, "amountCents"),
            ({"orderId": o["id"], "amountCents": 0}, "amountCents"),
            ({"orderId": o["id"], "amountCents": -5}, "amountCents"),
            ({"orderId": o["id"], "amountCents": str(o["totalCents"])}, "amountCents"),
            ({"orderId": o["id"], "amountCents": float(o["totalCents"]) + 0.5}, "amountCents"),
            ({"orderId": o["id"], "amountCents": None}, "amountCents"),
            ({"orderId": o["id"], "amountCents": o["totalCents"], "currency": "EUR"}, "currency"),
            ({"orderId": o["id"], "amountCents": o["totalCents"], "status": "succeeded"}, "status"),
            ({"orderId": o["id"], "amountCents": o["totalCents"], "id": "pay_00000000000000000000ab"}, "id"),
        ]
        for body, field in cases:
            with self.subTest(body=body):
                self.assertError(self.req("POST", "/api/payments", body, h), 400, "validation_failed", field)
        raw = json.dumps({"orderId": o["id"], "amountCents": o["totalCents"]}).encode()
        self.assertError(self.req("POST", "/api/payments", raw, dict(h, **{"Content-Type": "text/plain"})), 415)
        self.assertError(self.req("POST", "/api/payments", raw[:-2], dict(h, **{"Content-Type": "application/json"})),
                         400, "invalid_json")
        # the key was never used: it still works for the real request
        self.assertEqual(self.pay(o, key=h["Idempotency-Key"]).status, 201)

    def test_amount_mismatch_422(self):
        _, o = self.order()
        r = self.pay(o, amount=o["totalCents"] + 1)
        self.assertError(r, 422, "unprocessable_entity", "amountCents")
        self.assertEqual(self.order_status(o["id"]), "pending")

    def test_unknown_order_422(self):
        for oid in (NO_ORDER, "garbage"):
            with self.subTest(orderId=oid):
                r = self.req("POST", "/api/payments", {"orderId": oid, "amountCents": 100},
                             {"Idempotency-Key": f"unknown-{oid}"})
                self.assertError(r, 422, "unprocessable_entity", "orderId")

    def test_cancelled_order_409(self):
        _, o = self.order()
        self.assertEqual(self.req("POST", f"/api/orders/{o['id']}/cancel").status, 200)
        self.assertError(self.pay(o), 409, "conflict")

    def test_success_replay_and_paid(self):
        u, o = self.order()
        key = f"pay-{o['id']}"
        r = self.pay(o, key=key)
        p = self.assertJsonOk(r, 201)
        self.assertEqual(set(p), {"id", "orderId", "amountCents", "status", "createdAt"}, p)
        self.assertRegex(p["id"], PAY_ID)
        self.assertEqual((p["orderId"], p["amountCents"], p["status"]),
                         (o["id"], o["totalCents"], "succeeded"))
        self.assertRegex(p["createdAt"], RFC3339_MS)
        self.assertEqual(r.headers.get("location"), f"/api/payments/{p['id']}")
        self.assertNotIn("idempotent-replayed", r.headers)

        # replay: the same bytes, marked
        r2 = self.pay(o, key=key)
        self.assertEqual(r2.status, 201, r2)
        self.assertEqual(r2.data, r.data)
        self.assertEqual(r2.headers.get("idempotent-replayed"), "true")
        self.assertEqual(r2.headers.get("location"), r.headers["location"])
        # the same request with its keys in another order is the same request
        r3 = self.req("POST", "/api/payments",
                      json.dumps({"amountCents": o["totalCents"], "orderId": o["id"]}).encode(),
                      {"Idempotency-Key": key, "Content-Type": "application/json"})
        self.assertEqual((r3.status, r3.data, r3.headers.get("idempotent-replayed")), (201, r.data, "true"))

        # same key, other body: 422, no field, nothing charged
        r4 = self.pay(o, key=key, amount=o["totalCents"] + 1)
        self.assertError(r4, 422, "unprocessable_entity", None)
        self.assertNotIn("idempotent-replayed", r4.headers)

        # another key for the paid order: 409
        self.assertError(self.pay(o, key=key + "-other"), 409, "conflict")

        # GET the payment
        g = self.req("GET", f"/api/payments/{p['id']}")
        self.assertEqual(self.assertJsonOk(g, 200), p)

        # the orders domain consumes payment.succeeded; the first read that
        # shows "paid" comes from the database (the cached pending copy was dropped)
        seen = []

        def paid_now():
            g = self.req("GET", f"/api/orders/{o['id']}")
            seen.append((g.json["status"], g.headers.get("x-cache")))
            return g.json["status"] == "paid"
        self.assertTrue(wait_until(paid_now, 5), "the order did not become paid within 5 s")
        self.assertEqual(seen[-1], ("paid", "MISS"), seen)
        paid = self.req("GET", f"/api/orders/{o['id']}").json
        self.assertEqual(paid["status"], "paid")
        self.assertGreaterEqual(paid["updatedAt"], o["updatedAt"])
        listed = self.req("GET", f"/api/orders?userId={u['id']}&status=paid").json
        self.assertEqual([x["id"] for x in listed["items"]], [o["id"]])
        self.assertEqual(self.req("GET", f"/api/orders?userId={u['id']}&status=pending").json["items"], [])

        # a paid order cannot be cancelled
        self.assertError(self.req("POST", f"/api/orders/{o['id']}/cancel"), 409, "conflict")
        self.assertEqual(self.order_status(o["id"]), "paid")
        # and a fresh key still cannot pay it again
        self.assertError(self.pay(o), 409, "conflict")

    def test_replayed_error_is_byte_for_byte(self):
        _, o = self.order()
        key = f"mismatch-{o['id']}"
        r1 = self.pay(o, key=key, amount=1, headers={"X-Request-Id": "orig-req-1"})
        self.assertError(r1, 422, "unprocessable_entity", "amountCents")
        self.assertEqual(r1.json["error"]["requestId"], "orig-req-1")
        r2 = self.pay(o, key=key, amount=1)
        self.assertEqual(r2.status, 422, r2)
        self.assertEqual(r2.data, r1.data)
        self.assertEqual(r2.headers.get("idempotent-replayed"), "true")
        self.check_error_body(r2, original_request_id="orig-req-1")
        # the key stays bound to that answer; the order is still payable with another key
        self.assertEqual(self.pay(o).status, 201)
        r3 = self.pay(o, key=key, amount=1)
        self.assertEqual((r3.status, r3.data), (422, r1.data))

    def test_replayed_unknown_order_and_conflict(self):
        key = f"unk-{random.getrandbits(32):x}"
        body = {"orderId": NO_ORDER, "amountCents": 100}
        r1 = self.req("POST", "/api/payments", body, {"Idempotency-Key": key})
        self.assertError(r1, 422, "unprocessable_entity", "orderId")
        r2 = self.req("POST", "/api/payments", body, {"Idempotency-Key": key})
        self.assertEqual((r2.status, r2.data, r2.headers.get("idempotent-replayed")), (422, r1.data, "true"))
        _, o = self.order()
        self.req("POST", f"/api/orders/{o['id']}/cancel")
        ck = f"cancelled-{o['id']}"
        c1 = self.pay(o, key=ck)
        self.assertError(c1, 409, "conflict")
        c2 = self.pay(o, key=ck)
        self.assertEqual((c2.status, c2.data, c2.headers.get("idempotent-replayed")), (409, c1.data, "true"))

    def test_keys_are_scoped_per_client(self):
        _, o = self.order()
        key = f"scoped-{o['id']}"
        a1 = self.pay(o, key=key, amount=1, headers={"X-Client-Id": "client-a"})
        self.assertError(a1, 422, "unprocessable_entity", "amountCents")
        # the same key for another client is a new key: this body is processed
        b1 = self.pay(o, key=key, headers={"X-Client-Id": "client-b"})
        self.assertEqual(b1.status, 201, b1)
        self.assertNotIn("idempotent-replayed", b1.headers)
        # and anonymous is a third scope (a malformed client id counts as anonymous)
        # (the right amount: 409 whether or not the order has turned paid yet)
        n1 = self.pay(o, key=key, headers={"X-Client-Id": "not valid!"})
        self.assertError(n1, 409, "conflict")  # a fresh key, but the order is already paid
        n2 = self.pay(o, key=key)
        self.assertEqual((n2.status, n2.data, n2.headers.get("idempotent-replayed")), (409, n1.data, "true"))
        a2 = self.pay(o, key=key, amount=1, headers={"X-Client-Id": "client-a"})
        self.assertEqual((a2.status, a2.data, a2.headers.get("idempotent-replayed")), (422, a1.data, "true"))

    def test_get_unknown_404(self):
        for path in (f"/api/payments/{NO_PAYMENT}", "/api/payments/garbage", f"/api/payments/{NO_ORDER}"):
            with self.subTest(path=path):
                self.assertError(self.req("GET", path), 404, "not_found")

    def test_method_not_allowed(self):
        self.assertAllow(self.req("GET", "/api/payments"), {"POST"})
        self.assertAllow(self.req("DELETE", f"/api/payments/{NO_PAYMENT}"), {"GET", "HEAD"})


# =============================================================================
class NotificationsApi(ApiCase):

    def test_order_and_payment_notify(self):
        u = self.new_user()
        o = self.new_order(u["id"], [{"sku": "N", "quantity": 2, "unitPriceCents": 1234}])
        r = self.pay(o)
        self.assertEqual(r.status, 201, r)

        def both():
            b = self.req("GET", f"/api/notifications?userId={u['id']}").json
            kinds = sorted(n["kind"] for n in b["items"])
            return b if kinds == ["order_confirmation", "payment_receipt"] else None
        body = wait_until(both, 5)
        self.assertIsNotNone(body, self.req("GET", f"/api/notifications?userId={u['id']}").json)
        time.sleep(0.2)  # a duplicate would show up now
        body = self.assertJsonOk(self.req("GET", f"/api/notifications?userId={u['id']}"), 200)
        self.assertEqual(set(body), {"items", "next"})
        self.assertIsNone(body["next"])
        self.assertEqual(len(body["items"]), 2, body)
        by_kind = {n["kind"]: n for n in body["items"]}
        for n in body["items"]:
            self.assertEqual(set(n), {"id", "userId", "eventId", "kind", "channel", "recipient",
                                      "subject", "body", "createdAt"}, n)
            self.assertRegex(n["id"], NTF_ID)
            self.assertEqual(n["userId"], u["id"])
            self.assertEqual(n["recipient"], u["email"])
            self.assertEqual(n["channel"], "email")
            self.assertIn(o["id"], n["subject"])
            self.assertIn(o["id"], n["body"])
            self.assertRegex(n["createdAt"], RFC3339_MS)
        self.assertNotEqual(by_kind["order_confirmation"]["eventId"], by_kind["payment_receipt"]["eventId"])
        self.assertIn("24.68", by_kind["order_confirmation"]["body"])
        self.assertIn("24.68", by_kind["payment_receipt"]["body"])
        self.assertEqual([n["id"] for n in body["items"]], sorted(n["id"] for n in body["items"]))

    def test_pagination(self):
        u = self.new_user()
        for i in range(3):
            self.new_order(u["id"])
        self.assertTrue(wait_until(lambda: len(self.req(
            "GET", f"/api/notifications?userId={u['id']}&limit=100").json["items"]) == 3, 5))
        pages = self.walk(f"/api/notifications?userId={u['id']}", 2)
        self.assertEqual([len(p) for p in pages], [2, 1])
        self.assertIdsStrictlyIncreasing(pages)
        self.assertTrue(all(n["kind"] == "order_confirmation" for p in pages for n in p))

    def test_other_users_see_nothing(self):
        self.assertEqual(self.assertJsonOk(self.req("GET", f"/api/notifications?userId={NO_USER}"), 200),
                         {"items": [], "next": None})

    def test_user_id_required_400(self):
        self.assertError(self.req("GET", "/api/notifications"), 400, "validation_failed", "userId")
        self.assertError(self.req("GET", "/api/notifications?userId="), 400, "validation_failed", "userId")
        self.assertError(self.req("GET", "/api/notifications?limit=5"), 400, "validation_failed", "userId")

    def test_bad_paging_400(self):
        u = self.new_user()
        self.assertError(self.req("GET", f"/api/notifications?userId={u['id']}&limit=0"), 400,
                         "validation_failed", "limit")
        self.assertError(self.req("GET", f"/api/notifications?userId={u['id']}&limit=101"), 400,
                         "validation_failed", "limit")
        self.assertError(self.req("GET", f"/api/notifications?userId={u['id']}&after=garbage"), 400,
                         "validation_failed", "after")

    def test_method_not_allowed(self):
        self.assertAllow(self.req("POST", "/api/notifications", {}), {"GET", "HEAD"})


# =============================================================================
class CompositionAndDocs(ApiCase):

    def test_user_with_orders(self):
        u, other = self.new_user(), self.new_user()
        mine = [self.new_order(u["id"], [{"sku": f"C{i}", "quantity": 1, "unitPriceCents": 100 + i}])
                for i in range(3)]
        self.new_order(other["id"])
        r = self.req("GET", f"/api/users/{u['id']}/orders")
        body = self.assertJsonOk(r, 200)
        self.assertEqual(set(body), {"user", "orders"}, body)  # no "partial"
        self.assertEqual(body["user"], u)
        self.assertEqual(body["orders"], sorted(mine, key=lambda o: o["id"]))

    def test_at_most_one_hundred_orders_oldest_first(self):
        u = self.new_user()
        item = [{"sku": "M", "quantity": 1, "unitPriceCents": 1}]
        ids = sorted(self.new_order(u["id"], item)["id"] for _ in range(101))
        body = self.assertJsonOk(self.req("GET", f"/api/users/{u['id']}/orders"), 200)
        self.assertEqual(set(body), {"user", "orders"})
        self.assertEqual([o["id"] for o in body["orders"]], ids[:100])

    def test_user_without_orders(self):
        u = self.new_user()
        body = self.assertJsonOk(self.req("GET", f"/api/users/{u['id']}/orders"), 200)
        self.assertEqual(body, {"user": u, "orders": []})

    def test_composition_reflects_cancel(self):
        u = self.new_user()
        o = self.new_order(u["id"])
        self.req("POST", f"/api/orders/{o['id']}/cancel")
        body = self.req("GET", f"/api/users/{u['id']}/orders").json
        self.assertEqual([x["status"] for x in body["orders"]], ["cancelled"])

    def test_unknown_user_404(self):
        for uid in (NO_USER, "garbage"):
            with self.subTest(uid=uid):
                self.assertError(self.req("GET", f"/api/users/{uid}/orders"), 404, "not_found")
        u = self.new_user()
        self.req("DELETE", f"/api/users/{u['id']}")
        self.assertError(self.req("GET", f"/api/users/{u['id']}/orders"), 404, "not_found")

    def test_openapi(self):
        r = self.req("GET", "/openapi.json")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"), r.headers)
        doc = json.loads(r.data)
        self.assertIsInstance(doc, dict)
        self.assertIsInstance(doc.get("openapi"), str)
        self.assertTrue(doc["openapi"].startswith("3."), doc.get("openapi"))
        self.assertIsInstance(doc.get("paths"), dict)
        if not doc["paths"]:
            self.skipTest("docs/openapi.json is still a placeholder with empty paths "
                          "(another engineer is writing it); paths not checked")
        self.assertIn("/api/users", doc["paths"])

    def test_openapi_method_not_allowed(self):
        self.assertAllow(self.req("POST", "/openapi.json", {}), {"GET", "HEAD"})


# =============================================================================
class ColdCache(ApiCase):
    """X-Cache: MISS on the first read, HIT on the repeat, for rows the
    server under test has never seen (written by another process on the
    same data directory, which is stopped before this server starts)."""

    @classmethod
    def setUpClass(cls):
        data = tempfile.mkdtemp(prefix="strata-api-cold-")
        writer = Server(workers=1, args=["--data", data]).start()
        try:
            s = call(writer.port, "POST", "/api/users", {"name": "Cold", "email": rand_email("cold")})
            assert s.status == 201, s
            cls.user = s.json
            o = call(writer.port, "POST", "/api/orders",
                     {"userId": cls.user["id"], "items": [{"sku": "Z", "quantity": 1, "unitPriceCents": 7}]})
            assert o.status == 201, o
            cls.order = o.json
            s2 = call(writer.port, "POST", "/api/users", {"name": "Cold 2", "email": rand_email("cold")})
            assert s2.status == 201, s2
            cls.user2 = s2.json
            o2 = call(writer.port, "POST", "/api/orders",
                      {"userId": cls.user2["id"], "items": [{"sku": "Y", "quantity": 2, "unitPriceCents": 8}]})
            assert o2.status == 201, o2
            cls.order2 = o2.json
        finally:
            writer.stop()
        cls.srv = Server(workers=2, args=["--data", data]).start()

    def test_user_miss_then_hit(self):
        r1 = self.req("GET", f"/api/users/{self.user['id']}")
        self.assertEqual((r1.status, r1.headers.get("x-cache")), (200, "MISS"))
        self.assertEqual(r1.json, self.user)
        r2 = self.req("GET", f"/api/users/{self.user['id']}")
        self.assertEqual((r2.status, r2.headers.get("x-cache")), (200, "HIT"))
        self.assertEqual(r2.data, r1.data)

    def test_order_miss_then_hit(self):
        r1 = self.req("GET", f"/api/orders/{self.order['id']}")
        self.assertEqual((r1.status, r1.headers.get("x-cache")), (200, "MISS"))
        self.assertEqual(r1.json, self.order)
        r2 = self.req("GET", f"/api/orders/{self.order['id']}")
        self.assertEqual((r2.status, r2.headers.get("x-cache")), (200, "HIT"))
        self.assertEqual(r2.data, r1.data)

    def test_rows_of_the_other_process_are_usable(self):
        # (user2/order2: the other tests read user/order cold)
        body = self.req("GET", f"/api/users/{self.user2['id']}/orders").json
        self.assertEqual(body, {"user": self.user2, "orders": [self.order2]})
        self.assertEqual(self.req("GET", "/api/orders?limit=100").json["items"],
                         sorted([self.order, self.order2], key=lambda o: o["id"]))


if __name__ == "__main__":
    unittest.main()
