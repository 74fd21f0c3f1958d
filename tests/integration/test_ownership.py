"""Ownership behind the gateway: a user sees and changes only their own
users/orders/payments/notifications records, whatever ids or filters they
try (docs/api.md, "Ownership").

Topology, all on loopback, one identity secret shared by the three:

  anonymous gateway (no keys, no JWT) --+
                                        +--> strata serve --identity-secret-file
  keyed gateway (API keys + HS256 JWT) -+

Alice and Bob sign up anonymously (the one thing an anonymous caller may
do), then get API keys whose ids are their user ids, and JWTs whose `sub` is.
An `admin` key reads everything, so each attempt on Bob's records is followed
by an admin read showing that nothing changed. Statuses and error bodies are
asserted exactly: a hidden record must be answered like an unknown id, byte
for byte apart from the request id."""
import hashlib
import json
import os
import secrets
import tempfile
import time
import unittest
import http.client

from harness import Server
from test_gateway import Gateway
from test_protect import hs256

NO_USER = "usr_000000000001aaaaaaaaaa"
NO_ORDER = "ord_000000000001aaaaaaaaaa"
NO_PAYMENT = "pay_000000000001aaaaaaaaaa"
ITEMS = [{"sku": "BOOK", "quantity": 2, "unitPriceCents": 1250}]
TOTAL = 2500

NOT_FOUND = {
    "user": "No user with this id.",
    "order": "No order with this id.",
    "payment": "No payment with this id.",
}


class Resp:
    def __init__(self, status, headers, data):
        self.status, self.headers, self.data = status, headers, data

    @property
    def json(self):
        return json.loads(self.data) if self.data else None

    def __repr__(self):
        return f"<{self.status} {self.data[:300]!r}>"


def call(port, method, path, body=None, headers=None):
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        c.close()


class Ownership(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        d = tempfile.mkdtemp(prefix="strata-ownership-")
        secret_file = os.path.join(d, "identity")
        with open(secret_file, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        cls.jwt_secret = secrets.token_hex(32).encode()
        jwt_file = os.path.join(d, "jwt")
        with open(jwt_file, "wb") as f:
            f.write(cls.jwt_secret)
        cls.svc = Server(args=["--identity-secret-file", secret_file]).start()
        cls.gateways = []
        try:
            cls.anon = Gateway([cls.svc.port], "--identity-secret-file", secret_file,
                               log_level="warn").start()
            cls.gateways.append(cls.anon)
            # Signup: anonymous, through the gateway.
            cls.signup = {}
            for name in ("alice", "bob", "carol"):
                r = call(cls.anon.port, "POST", "/api/users",
                         {"name": name.title(), "email": f"{name}-{secrets.token_hex(4)}@example.com"})
                assert r.status == 201, r
                cls.signup[name] = r.json
            cls.alice_id = cls.signup["alice"]["id"]
            cls.bob_id = cls.signup["bob"]["id"]
            cls.carol_id = cls.signup["carol"]["id"]
            # Credentials issued for those users: key id = user id.
            cls.keys = {name: "sk_" + secrets.token_hex(16) for name in ("alice", "bob", "admin")}
            keys_file = os.path.join(d, "keys")
            with open(keys_file, "w") as f:
                f.write("# <id> <sha256 hex> [scopes]\n")
                for name, uid in (("alice", cls.alice_id), ("bob", cls.bob_id), ("admin", "ops")):
                    digest = hashlib.sha256(cls.keys[name].encode()).hexdigest()
                    f.write(f"{uid} {digest}{' admin' if name == 'admin' else ''}\n")
            cls.gw = Gateway([cls.svc.port], "--identity-secret-file", secret_file, "--api-keys",
                             keys_file, "--jwt-hs256-secret-file", jwt_file, log_level="warn").start()
            cls.gateways.append(cls.gw)
            cls.make_records()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for g in cls.gateways:
                g.stop_checked()
        finally:
            svc = cls.svc.stop()  # non-zero under the sanitizers on a leak or UB
        assert svc == 0, f"strata serve exited {svc}: {cls.svc.stderr()[-2000:]}"

    # ---- clients -----------------------------------------------------------
    @classmethod
    def as_(cls, who, method, path, body=None, headers=None):
        h = {"X-Api-Key": cls.keys[who]}
        h.update(headers or {})
        return call(cls.gw.port, method, path, body, h)

    def alice(self, method, path, body=None, headers=None):
        return self.as_("alice", method, path, body, headers)

    def admin(self, method, path, body=None, headers=None):
        return self.as_("admin", method, path, body, headers)

    def bearer(self, sub, scope=None):
        claims = {"sub": sub, "exp": int(time.time()) + 300}
        if scope:
            claims["scope"] = scope
        return {"Authorization": "Bearer " + hs256(claims, self.jwt_secret)}

    # ---- records -------------------------------------------------------------
    @classmethod
    def make_records(cls):
        """Bob: an order left pending, an order paid (a payment) and the
        notifications both caused; Alice the same, so her own lists are not
        empty and must hold exactly hers."""
        cls.recs = {}
        for who, uid in (("alice", cls.alice_id), ("bob", cls.bob_id)):
            pending = cls.as_(who, "POST", "/api/orders", {"userId": uid, "items": ITEMS})
            paid = cls.as_(who, "POST", "/api/orders", {"userId": uid, "items": ITEMS})
            assert pending.status == 201 and paid.status == 201, (pending, paid)
            pay = cls.as_(who, "POST", "/api/payments", {"orderId": paid.json["id"], "amountCents": TOTAL},
                          {"Idempotency-Key": f"setup-{who}"})
            assert pay.status == 201, pay
            cls.recs[who] = {"pending": pending.json["id"], "paid": paid.json["id"],
                             "payment": pay.json["id"]}
        # Events are asynchronous: wait for the order to be paid and the
        # three notifications (two confirmations, one receipt) of each user.
        deadline = time.time() + 10
        for who, uid in (("alice", cls.alice_id), ("bob", cls.bob_id)):
            while True:
                o = cls.as_("admin", "GET", f"/api/orders/{cls.recs[who]['paid']}").json
                n = cls.as_("admin", "GET", f"/api/notifications?userId={uid}").json
                if o["status"] == "paid" and len(n["items"]) == 3:
                    break
                assert time.time() < deadline, (o, n)
                time.sleep(0.05)

    def bob_state(self):
        """Everything of Bob's, as the admin reads it."""
        b = self.recs["bob"]
        out = {
            "user": self.admin("GET", f"/api/users/{self.bob_id}").json,
            "orders": self.admin("GET", f"/api/orders?userId={self.bob_id}&limit=100").json,
            "payment": self.admin("GET", f"/api/payments/{b['payment']}").json,
            "notifications": self.admin("GET", f"/api/notifications?userId={self.bob_id}&limit=100").json,
        }
        self.assertEqual(out["user"]["id"], self.bob_id)
        self.assertEqual(len(out["orders"]["items"]), 2)
        return out

    # ---- assertions ------------------------------------------------------------
    def assertErrorBody(self, r, status, code, message=None, field=None):
        self.assertEqual(r.status, status, r)
        err = r.json["error"]
        self.assertEqual(err["code"], code, r)
        if message is not None:
            self.assertEqual(err["message"], message, r)
        if field is not None:
            self.assertEqual(err.get("field"), field, r)
        else:
            self.assertNotIn("field", err, r)
        self.assertEqual(err["requestId"], r.headers["x-request-id"])

    def assertSameAnswer(self, hidden, unknown):
        """A hidden record is answered exactly like one that does not exist:
        status, headers that could tell them apart, and body but for the id."""
        self.assertEqual(hidden.status, unknown.status, (hidden, unknown))
        for h in ("x-cache", "content-type", "www-authenticate"):
            self.assertEqual(hidden.headers.get(h), unknown.headers.get(h), h)

        def strip(r):
            body = r.json
            body["error"].pop("requestId")
            return body
        self.assertEqual(strip(hidden), strip(unknown))

    def assertHidden(self, r, kind, unknown=None):
        self.assertErrorBody(r, 404, "not_found", NOT_FOUND[kind])
        self.assertNotIn("x-cache", r.headers)
        if unknown is not None:
            self.assertSameAnswer(r, unknown)

    def assertPage(self, r, ids):
        self.assertEqual(r.status, 200, r)
        self.assertEqual([it["id"] for it in r.json["items"]], ids)
        self.assertIsNone(r.json["next"])

    # ---- the service trusts nobody but the gateway ----------------------------
    def test_direct_unsigned_request_is_401(self):
        for method, path in (("GET", f"/api/users/{self.bob_id}"), ("GET", "/api/orders"),
                             ("GET", f"/api/payments/{self.recs['bob']['payment']}")):
            r = self.svc.http(method, path, headers={"X-Strata-Identity": self.bob_id,
                                                     "X-Strata-Scopes": "admin"})
            self.assertEqual(r[0], 401)
            self.assertEqual(json.loads(r[2])["error"]["code"], "unauthorized")

    # ---- anonymous: signup only ---------------------------------------------------
    def test_anonymous_signup_is_allowed(self):
        for name in ("alice", "bob", "carol"):
            self.assertRegex(self.signup[name]["id"], r"^usr_[0-9a-f]{22}$")
        r = call(self.anon.port, "POST", "/api/users", {"name": "Dan", "email": f"dan-{secrets.token_hex(4)}@example.com"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.headers["location"], f"/api/users/{r.json['id']}")

    def test_anonymous_gets_401_on_every_record(self):
        b = self.recs["bob"]
        before = self.bob_state()
        attempts = [
            ("GET", "/api/users", None, {}),
            ("GET", f"/api/users/{self.bob_id}", None, {}),
            ("GET", f"/api/users/{NO_USER}", None, {}),
            ("PATCH", f"/api/users/{self.bob_id}", {"name": "Mallory"}, {}),
            ("DELETE", f"/api/users/{self.bob_id}", None, {}),
            ("GET", f"/api/users/{self.bob_id}/orders", None, {}),
            ("POST", "/api/orders", {"userId": self.bob_id, "items": ITEMS}, {}),
            ("GET", "/api/orders", None, {}),
            ("GET", f"/api/orders?userId={self.bob_id}", None, {}),
            ("GET", f"/api/orders/{b['pending']}", None, {}),
            ("POST", f"/api/orders/{b['pending']}/cancel", None, {}),
            ("POST", "/api/payments", {"orderId": b["pending"], "amountCents": TOTAL},
             {"Idempotency-Key": "anon-1"}),
            ("GET", f"/api/payments/{b['payment']}", None, {}),
            ("GET", f"/api/notifications?userId={self.bob_id}", None, {}),
        ]
        for method, path, body, headers in attempts:
            with self.subTest(method=method, path=path):
                r = call(self.anon.port, method, path, body, headers)
                self.assertErrorBody(r, 401, "unauthorized",
                                     "These records belong to a user: authenticate to reach them.")
                self.assertEqual(r.headers.get("www-authenticate"), 'Bearer realm="strata"')
        self.assertEqual(self.bob_state(), before)

    # ---- Alice against Bob's records -------------------------------------------------
    def test_users_of_others_are_hidden(self):
        before = self.bob_state()
        self.assertHidden(self.alice("GET", f"/api/users/{self.bob_id}"), "user",
                          self.alice("GET", f"/api/users/{NO_USER}"))
        # the path id is decoded before the check: %75 is "u"
        self.assertHidden(self.alice("GET", "/api/users/%75" + self.bob_id[1:]), "user")
        r = self.alice("HEAD", f"/api/users/{self.bob_id}")
        self.assertEqual(r.status, 404)
        self.assertNotIn("x-cache", r.headers)
        self.assertHidden(self.alice("PATCH", f"/api/users/{self.bob_id}", {"name": "Mallory"}), "user",
                          self.alice("PATCH", f"/api/users/{NO_USER}", {"name": "Mallory"}))
        self.assertHidden(self.alice("PATCH", f"/api/users/{self.bob_id}",
                                     {"email": "mallory@example.com"}), "user")
        self.assertHidden(self.alice("DELETE", f"/api/users/{self.bob_id}"), "user",
                          self.alice("DELETE", f"/api/users/{NO_USER}"))
        self.assertHidden(self.alice("GET", f"/api/users/{self.bob_id}/orders"), "user",
                          self.alice("GET", f"/api/users/{NO_USER}/orders"))
        self.assertEqual(self.bob_state(), before)

    def test_user_list_holds_only_the_caller(self):
        self.assertPage(self.alice("GET", "/api/users"), [self.alice_id])
        self.assertPage(self.alice("GET", "/api/users?limit=1"), [self.alice_id])
        # a cursor past or before her record moves nothing into view
        self.assertPage(self.alice("GET", f"/api/users?after={self.alice_id}"), [])
        self.assertPage(self.alice("GET", f"/api/users?after={NO_USER}"), [self.alice_id])
        # the admin sees everyone
        every = self.admin("GET", "/api/users?limit=100").json["items"]
        self.assertTrue({self.alice_id, self.bob_id} <= {u["id"] for u in every})  # carol may be gone

    def test_orders_of_others_are_hidden(self):
        b = self.recs["bob"]
        before = self.bob_state()
        for oid in (b["pending"], b["paid"]):
            self.admin("GET", f"/api/orders/{oid}")  # cached: a HIT must not show either
            self.assertHidden(self.alice("GET", f"/api/orders/{oid}"), "order",
                              self.alice("GET", f"/api/orders/{NO_ORDER}"))
            self.assertHidden(self.alice("POST", f"/api/orders/{oid}/cancel"), "order",
                              self.alice("POST", f"/api/orders/{NO_ORDER}/cancel"))
        self.assertEqual(self.bob_state(), before)
        # the list's order between two orders made in one millisecond is the
        # ids' (random) order: look Bob's pending one up by its id
        status = {o["id"]: o["status"] for o in before["orders"]["items"]}
        self.assertEqual(status[b["pending"]], "pending")

    def test_order_for_another_user_is_403(self):
        before = self.bob_state()
        for uid in (self.bob_id, NO_USER, "ops"):
            with self.subTest(userId=uid):
                r = self.alice("POST", "/api/orders", {"userId": uid, "items": ITEMS})
                self.assertErrorBody(r, 403, "forbidden", "You can only place orders for yourself.",
                                     field="userId")
        # an invalid body is still a 400 first
        r = self.alice("POST", "/api/orders", {"userId": self.bob_id, "items": []})
        self.assertErrorBody(r, 400, "validation_failed", field="items")
        self.assertEqual(self.bob_state(), before)

    def test_order_filters_never_reach_others(self):
        a, b = self.recs["alice"], self.recs["bob"]
        bob = self.bob_id
        mine = self.alice("GET", f"/api/orders?userId={self.alice_id}&limit=100").json["items"]
        self.assertIn(a["pending"], [o["id"] for o in mine])
        self.assertTrue(all(o["userId"] == self.alice_id for o in mine))
        for q in (f"userId={bob}", f"userId={bob}&status=pending", f"userId={bob}&status=paid",
                  f"userId={bob}&limit=100", f"userId={bob}&userId={self.alice_id}",
                  f"userId=%75{bob[1:]}", f"userId={bob}&after={NO_ORDER}"):
            with self.subTest(q=q):
                self.assertPage(self.alice("GET", f"/api/orders?{q}"), [])
        # no filter, an empty one, a cursor at Bob's order: only Alice's orders
        for q in ("", "?userId=", "?limit=100", f"?after={NO_ORDER}", "?status=paid",
                  f"?userId={self.alice_id}&userId={bob}"):
            with self.subTest(q=q):
                r = self.alice("GET", f"/api/orders{q}")
                self.assertEqual(r.status, 200, r)
                self.assertTrue(r.json["items"], r)
                self.assertTrue(all(o["userId"] == self.alice_id for o in r.json["items"]), r)
                self.assertFalse({b["pending"], b["paid"]} & {o["id"] for o in r.json["items"]})
        r = self.alice("GET", f"/api/orders?after={b['pending']}&limit=100")
        self.assertTrue(all(o["userId"] == self.alice_id for o in r.json["items"]), r)

    def test_payments_of_others_are_hidden(self):
        b = self.recs["bob"]
        self.assertHidden(self.alice("GET", f"/api/payments/{b['payment']}"), "payment",
                          self.alice("GET", f"/api/payments/{NO_PAYMENT}"))

    def test_paying_another_users_order_is_no_such_order(self):
        b = self.recs["bob"]
        before = self.bob_state()
        r = self.alice("POST", "/api/payments", {"orderId": b["pending"], "amountCents": TOTAL},
                       {"Idempotency-Key": "alice-pays-bob"})
        unknown = self.alice("POST", "/api/payments", {"orderId": NO_ORDER, "amountCents": TOTAL},
                             {"Idempotency-Key": "alice-pays-nobody"})
        self.assertErrorBody(r, 422, "unprocessable_entity", "orderId does not name an existing order.",
                             field="orderId")
        self.assertSameAnswer(r, unknown)
        # the already paid order: the same answer, not "already paid"
        r = self.alice("POST", "/api/payments", {"orderId": b["paid"], "amountCents": TOTAL},
                       {"Idempotency-Key": "alice-pays-bob-again"})
        self.assertErrorBody(r, 422, "unprocessable_entity", "orderId does not name an existing order.",
                             field="orderId")
        # Bob's idempotency key, replayed by Alice: her own scope, so nothing of Bob's
        r = self.alice("POST", "/api/payments", {"orderId": b["paid"], "amountCents": TOTAL},
                       {"Idempotency-Key": "setup-bob", "X-Client-Id": self.bob_id})
        self.assertErrorBody(r, 422, "unprocessable_entity", "orderId does not name an existing order.",
                             field="orderId")
        self.assertNotIn("idempotent-replayed", r.headers)
        time.sleep(0.3)  # a charge would move the order to paid and add a receipt by now
        self.assertEqual(self.bob_state(), before)

    def test_notifications_of_others_are_never_listed(self):
        bob = self.bob_id
        for q in (f"userId={bob}", f"userId={bob}&limit=100", f"userId={bob}&userId={self.alice_id}",
                  f"userId=%75{bob[1:]}"):
            with self.subTest(q=q):
                self.assertPage(self.alice("GET", f"/api/notifications?{q}"), [])
        # hers: what the admin sees of hers, no more and no less (other
        # tests may add to them meanwhile: compare with a fresh admin read)
        for q in ("?limit=100", "?userId=&limit=100", f"?userId={self.alice_id}&limit=100",
                  f"?userId={self.alice_id}&userId={bob}&limit=100"):
            with self.subTest(q=q):
                r = self.alice("GET", f"/api/notifications{q}")
                want = self.admin("GET", f"/api/notifications?userId={self.alice_id}&limit=100")
                self.assertEqual(r.status, 200, r)
                self.assertGreaterEqual(len(r.json["items"]), 3, r)
                self.assertEqual(r.json["items"], want.json["items"])

    def test_spoofed_identity_headers_change_nothing(self):
        h = {"X-Strata-Identity": self.bob_id, "X-Strata-Scopes": "admin", "X-Client-Id": self.bob_id,
             "X-Strata-Identity-Time": str(int(time.time())), "X-Strata-Identity-Signature": "v1=" + "0" * 64}
        self.assertHidden(self.alice("GET", f"/api/users/{self.bob_id}", headers=h), "user")
        self.assertPage(self.alice("GET", "/api/users", headers=h), [self.alice_id])

    # ---- Alice on her own records -----------------------------------------------------
    def test_alice_reads_and_changes_her_own_records(self):
        a = self.recs["alice"]
        r = self.alice("GET", f"/api/users/{self.alice_id}")
        self.assertEqual(r.status, 200, r)
        self.assertIn(r.headers["x-cache"], ("HIT", "MISS"))
        self.assertEqual(r.json["id"], self.alice_id)
        r = self.alice("PATCH", f"/api/users/{self.alice_id}", {"name": "Alice Liddell"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["name"], "Alice Liddell")
        r = self.alice("GET", f"/api/users/{self.alice_id}/orders")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["user"]["id"], self.alice_id)
        self.assertEqual({o["id"] for o in r.json["orders"]} >= {a["pending"], a["paid"]}, True)
        r = self.alice("GET", f"/api/orders/{a['paid']}")
        self.assertEqual((r.status, r.json["status"]), (200, "paid"), r)
        self.assertIn(r.headers["x-cache"], ("HIT", "MISS"))
        r = self.alice("GET", f"/api/payments/{a['payment']}")
        self.assertEqual((r.status, r.json["orderId"]), (200, a["paid"]), r)
        # a new order, paid, and one cancelled
        new = self.alice("POST", "/api/orders", {"userId": self.alice_id, "items": ITEMS})
        self.assertEqual(new.status, 201, new)
        self.assertEqual(new.headers["location"], f"/api/orders/{new.json['id']}")
        pay = self.alice("POST", "/api/payments", {"orderId": new.json["id"], "amountCents": TOTAL},
                         {"Idempotency-Key": "alice-own-1"})
        self.assertEqual(pay.status, 201, pay)
        again = self.alice("POST", "/api/payments", {"orderId": new.json["id"], "amountCents": TOTAL},
                           {"Idempotency-Key": "alice-own-1"})
        self.assertEqual((again.status, again.data), (201, pay.data))
        self.assertEqual(again.headers.get("idempotent-replayed"), "true")
        other = self.alice("POST", "/api/orders", {"userId": self.alice_id, "items": ITEMS})
        r = self.alice("POST", f"/api/orders/{other.json['id']}/cancel")
        self.assertEqual((r.status, r.json["status"]), (200, "cancelled"), r)
        r = self.alice("POST", f"/api/orders/{other.json['id']}/cancel")
        self.assertErrorBody(r, 409, "conflict", "Only a pending order can be cancelled.")
        self.assertPage(self.alice("GET", f"/api/orders?status=cancelled&userId={self.alice_id}"),
                        [other.json["id"]])

    def test_a_user_may_delete_themselves(self):
        carol = self.bearer(self.carol_id)
        self.assertEqual(self.alice("DELETE", f"/api/users/{self.carol_id}").status, 404)
        r = call(self.gw.port, "DELETE", f"/api/users/{self.carol_id}", headers=carol)
        self.assertEqual((r.status, r.data), (204, b""))
        r = call(self.gw.port, "GET", f"/api/users/{self.carol_id}", headers=carol)
        self.assertErrorBody(r, 404, "not_found", NOT_FOUND["user"])
        self.assertEqual(self.admin("GET", f"/api/users/{self.carol_id}").status, 404)

    # ---- JWTs, admin, subjects that are no user ----------------------------------------
    def test_jwt_subject_is_confined_like_a_key(self):
        h = self.bearer(self.alice_id)
        r = call(self.gw.port, "GET", f"/api/users/{self.alice_id}", headers=h)
        self.assertEqual((r.status, r.json["id"]), (200, self.alice_id), r)
        self.assertHidden(call(self.gw.port, "GET", f"/api/users/{self.bob_id}", headers=h), "user")
        self.assertHidden(call(self.gw.port, "GET", f"/api/orders/{self.recs['bob']['pending']}", headers=h),
                          "order")
        self.assertPage(call(self.gw.port, "GET", f"/api/orders?userId={self.bob_id}", headers=h), [])
        # scopes other than admin lift nothing
        h = self.bearer(self.alice_id, "orders:read users:read administrator")
        self.assertHidden(call(self.gw.port, "GET", f"/api/users/{self.bob_id}", headers=h), "user")

    def test_admin_scope_sees_and_changes_everything(self):
        h = self.bearer("ops-jwt", "admin")
        r = call(self.gw.port, "GET", f"/api/users/{self.bob_id}", headers=h)
        self.assertEqual((r.status, r.json["id"]), (200, self.bob_id), r)
        r = call(self.gw.port, "GET", f"/api/orders?userId={self.bob_id}", headers=h)
        self.assertEqual(len(r.json["items"]), 2, r)
        r = self.admin("GET", f"/api/payments/{self.recs['bob']['payment']}")
        self.assertEqual(r.status, 200, r)
        r = self.admin("GET", "/api/notifications")
        self.assertErrorBody(r, 400, "validation_failed", "userId is required.", field="userId")
        # the admin may place an order for a user, and cancel it (a user of
        # its own: the others' records are counted by other tests)
        dan = call(self.anon.port, "POST", "/api/users",
                   {"name": "Dan", "email": f"dan-{secrets.token_hex(4)}@example.com"}).json["id"]
        r = self.admin("POST", "/api/orders", {"userId": dan, "items": ITEMS})
        self.assertEqual(r.status, 201, r)
        c = self.admin("POST", f"/api/orders/{r.json['id']}/cancel")
        self.assertEqual((c.status, c.json["status"]), (200, "cancelled"), c)

    def test_a_subject_that_is_no_user_sees_nothing(self):
        h = self.bearer("svc-reporting", "orders:read")
        self.assertPage(call(self.gw.port, "GET", "/api/users", headers=h), [])
        self.assertPage(call(self.gw.port, "GET", "/api/orders", headers=h), [])
        self.assertPage(call(self.gw.port, "GET", "/api/notifications", headers=h), [])
        self.assertHidden(call(self.gw.port, "GET", f"/api/users/{self.bob_id}", headers=h), "user")


if __name__ == "__main__":
    unittest.main()
