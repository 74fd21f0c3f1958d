"""The monolith's hard promises, against real strata processes and SQLite
files: cache coherence across instances sharing a data directory, exactly
one notification per order, crash safety under kill -9, idempotent
payments under concurrency, single flight under a stampede, and a bulk run
of orders through the event pipeline."""
import concurrent.futures
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest
import http.client

from harness import BIN, Server, free_port, wait_until
from harness import http_call as call


def jcall(port, method, path, body=None, headers=None):
    status, h, data = call(port, method, path, body, headers)
    return status, h, (json.loads(data) if data else None)


def new_user(port, tag=""):
    email = f"u{random.getrandbits(48):x}{tag}@example.com"
    s, _, u = jcall(port, "POST", "/api/users", {"name": "Test User", "email": email})
    assert s == 201, (s, u)
    return u


def new_order(port, user_id, qty=2, price=1250):
    s, _, o = jcall(port, "POST", "/api/orders",
                    {"userId": user_id, "items": [{"sku": "SKU-1", "quantity": qty, "unitPriceCents": price}]})
    assert s == 201, (s, o)
    return o


def metric(port, name, labels=""):
    _, _, body = call(port, "GET", "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name) and (not labels or labels in line):
            if line[len(name)] in " {":
                total += float(line.rsplit(" ", 1)[1])
    return total


class TwoInstances(unittest.TestCase):
    """Two strata serve processes, one data directory."""

    @classmethod
    def setUpClass(cls):
        cls.data = tempfile.mkdtemp(prefix="strata-shared-")
        cls.a = Server(workers=2, args=["--data", cls.data]).start()
        cls.b = Server(workers=2, args=["--data", cls.data]).start()

    @classmethod
    def tearDownClass(cls):
        cls.a.stop()
        cls.b.stop()

    def test_patch_through_one_is_visible_through_the_other(self):
        u = new_user(self.a.port)
        uid = u["id"]
        # warm both caches
        for srv in (self.a, self.b):
            jcall(srv.port, "GET", f"/api/users/{uid}")
            s, h, _ = jcall(srv.port, "GET", f"/api/users/{uid}")
            self.assertEqual(h["x-cache"], "HIT")
        for i in range(5):
            name = f"Renamed {i}"
            s, _, body = jcall(self.a.port, "PATCH", f"/api/users/{uid}", {"name": name})
            self.assertEqual((s, body["name"]), (200, name))
            t0 = time.time()
            seen = wait_until(lambda: jcall(self.b.port, "GET", f"/api/users/{uid}")[2]["name"] == name, 1.0, 0.01)
            self.assertTrue(seen, f"instance b still served the old name after {time.time() - t0:.2f}s")

    def test_delete_through_one_is_404_on_the_other(self):
        u = new_user(self.b.port)
        jcall(self.a.port, "GET", f"/api/users/{u['id']}")
        self.assertEqual(call(self.b.port, "DELETE", f"/api/users/{u['id']}")[0], 204)
        self.assertTrue(wait_until(lambda: call(self.a.port, "GET", f"/api/users/{u['id']}")[0] == 404, 1.0, 0.01))

    def test_each_order_yields_exactly_one_notification(self):
        u = new_user(self.a.port)
        orders = []
        for i in range(40):
            srv = self.a if i % 2 else self.b
            orders.append(new_order(srv.port, u["id"], qty=1 + i % 3))
        def notified():
            s, _, body = jcall(self.a.port, "GET", f"/api/notifications?userId={u['id']}&limit=100")
            return body["items"] if len(body["items"]) >= 40 else None
        items = wait_until(notified, 15)
        self.assertIsNotNone(items, "not every order was notified")
        time.sleep(0.5)  # would a duplicate still arrive?
        s, _, body = jcall(self.b.port, "GET", f"/api/notifications?userId={u['id']}&limit=100")
        kinds = [n for n in body["items"] if n["kind"] == "order_confirmation"]
        self.assertEqual(len(kinds), 40)
        self.assertEqual(len({n["eventId"] for n in kinds}), 40)
        for n in kinds:
            self.assertEqual(n["recipient"], u["email"])


class Idempotency(unittest.TestCase):
    def test_fifty_parallel_posts_one_key_charge_once(self):
        with Server(workers=2) as s:
            u = new_user(s.port)
            o = new_order(s.port, u["id"], qty=3, price=999)
            body = {"orderId": o["id"], "amountCents": o["totalCents"]}
            headers = {"Idempotency-Key": "key-" + o["id"]}

            def pay(_):
                return call(s.port, "POST", "/api/payments", body, headers)

            with concurrent.futures.ThreadPoolExecutor(50) as pool:
                results = list(pool.map(pay, range(50)))
            statuses = [r[0] for r in results]
            created = [r for r in results if r[0] == 201]
            self.assertTrue(created, statuses)
            self.assertTrue(all(st in (201, 409) for st in statuses), statuses)
            # every 201 carries the same bytes: one payment, replayed
            self.assertEqual(len({r[2] for r in created}), 1)
            payment_id = json.loads(created[0][2])["id"]
            s.stop()
            db = sqlite3.connect(os.path.join(s.tmp, "data", "payments.db"))
            self.assertEqual(db.execute("SELECT count(*) FROM payments").fetchone()[0], 1)
            self.assertEqual(db.execute("SELECT id FROM payments").fetchone()[0], payment_id)

    def test_replay_mismatch_and_missing_key(self):
        with Server() as s:
            u = new_user(s.port)
            o = new_order(s.port, u["id"])
            body = {"orderId": o["id"], "amountCents": o["totalCents"]}
            st, h1, b1 = call(s.port, "POST", "/api/payments", body, {"Idempotency-Key": "k1"})
            self.assertEqual(st, 201)
            st, h2, b2 = call(s.port, "POST", "/api/payments", body, {"Idempotency-Key": "k1"})
            self.assertEqual((st, b2), (201, b1))
            self.assertEqual(h2.get("idempotent-replayed"), "true")
            st, _, b3 = call(s.port, "POST", "/api/payments", {"orderId": o["id"], "amountCents": 1},
                             {"Idempotency-Key": "k1"})
            self.assertEqual(st, 422)
            st, _, b4 = call(s.port, "POST", "/api/payments", body)
            self.assertEqual(st, 400)
            self.assertEqual(json.loads(b4)["error"]["field"], "Idempotency-Key")
            # a second key for a paid order: 409, not a second charge
            st, _, b5 = call(s.port, "POST", "/api/payments", body, {"Idempotency-Key": "k2"})
            self.assertEqual(st, 409)
            # keys are scoped per client: for another client "k1" is a new
            # key, so the same body is not a replay but a second attempt on a
            # paid order
            st, h6, _ = call(s.port, "POST", "/api/payments", body,
                             {"Idempotency-Key": "k1", "X-Client-Id": "other-client"})
            self.assertEqual(st, 409)
            self.assertNotIn("idempotent-replayed", h6)
            # the order became paid through the event
            self.assertTrue(wait_until(lambda: jcall(s.port, "GET", f"/api/orders/{o['id']}")[2]["status"] == "paid", 5))


class Stampede(unittest.TestCase):
    def test_two_hundred_concurrent_gets_one_database_read(self):
        # the user is created by another process, so this one's cache is cold
        data = tempfile.mkdtemp()
        with Server(workers=1, args=["--data", data]) as writer:
            u = new_user(writer.port)
        with Server(workers=2, args=["--data", data]) as s:
            before = metric(s.port, "strata_cache_loads_total", 'cache="users"')
            barrier = threading.Barrier(200)

            def get(_):
                sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
                barrier.wait()
                sock.sendall(f"GET /api/users/{u['id']} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while True:
                    d = sock.recv(65536)
                    if not d:
                        break
                    data += d
                sock.close()
                return data.split(b" ", 2)[1]

            with concurrent.futures.ThreadPoolExecutor(200) as pool:
                statuses = list(pool.map(get, range(200)))
            self.assertEqual(statuses.count(b"200"), 200)
            loads = metric(s.port, "strata_cache_loads_total", 'cache="users"') - before
            self.assertEqual(loads, 1)


class Bulk(unittest.TestCase):
    def test_ten_thousand_orders_ten_thousand_notifications(self):
        n = int(os.environ.get("BULK_ORDERS", "10000"))
        with Server(workers=2, log_level="warn") as s:
            u = new_user(s.port)
            body = json.dumps({"userId": u["id"], "items": [{"sku": "B", "quantity": 1, "unitPriceCents": 100}]}).encode()

            def worker(count):
                sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
                req = (b"POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                ok = 0
                buf = b""
                for _ in range(count):
                    sock.sendall(req)
                    while True:
                        end = buf.find(b"\r\n\r\n")
                        if end >= 0:
                            m = re.search(rb"Content-Length: (\d+)", buf[:end])
                            total = end + 4 + int(m.group(1))
                            if len(buf) >= total:
                                ok += buf.startswith(b"HTTP/1.1 201")
                                buf = buf[total:]
                                break
                        buf += sock.recv(65536)
                sock.close()
                return ok

            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                created = sum(pool.map(worker, [n // 16] * 16))
            self.assertEqual(created, (n // 16) * 16)
            expected = created

            def count():
                return metric(s.port, "strata_bus_delivered_total", 'subscription="notifications-queue"') >= expected
            self.assertTrue(wait_until(count, 120, 0.5), "notifications did not catch up")
            s.stop()
            ndb = sqlite3.connect(os.path.join(s.tmp, "data", "notifications.db"))
            self.assertEqual(ndb.execute("SELECT count(*) FROM notifications WHERE kind='order_confirmation'").fetchone()[0], expected)
            self.assertEqual(ndb.execute("SELECT count(DISTINCT event_id) FROM notifications").fetchone()[0], expected)
            edb = sqlite3.connect(os.path.join(s.tmp, "data", "events.db"))
            self.assertEqual(edb.execute("SELECT count(*) FROM dead_letters").fetchone()[0], 0)


class CrashSafety(unittest.TestCase):
    """Orders are created while the process is kill -9'd at random moments
    and restarted; every order acknowledged with 201 must survive, with
    exactly one order.created in the log and one notification."""

    def test_kill_nine_fifty_times(self):
        kills = int(os.environ.get("CRASH_KILLS", "50"))
        data = tempfile.mkdtemp(prefix="strata-crash-")
        port = free_port()
        acked = []
        user = None
        rng = random.Random(11)
        for round_ in range(kills + 1):
            p = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--workers", "2",
                                  "--data", data, "--log-level", "warn"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                for _ in range(200):
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                        break
                    except OSError:
                        time.sleep(0.02)
                if user is None:
                    user = new_user(port)
                stop = threading.Event()

                def writer():
                    while not stop.is_set():
                        try:
                            s, _, body = call(port, "POST", "/api/orders",
                                              {"userId": user["id"], "items": [{"sku": "C", "quantity": 1, "unitPriceCents": 5}]},
                                              timeout=2)
                            if s == 201:
                                acked.append(json.loads(body)["id"])
                        except (OSError, http.client.HTTPException, ValueError):
                            pass

                threads = [threading.Thread(target=writer) for _ in range(4)]
                for t in threads:
                    t.start()
                time.sleep(rng.uniform(0.05, 0.4))
                if round_ < kills:
                    p.send_signal(signal.SIGKILL)
                stop.set()
                for t in threads:
                    t.join()
                if round_ == kills:
                    # final round: let the pipeline drain, then stop cleanly
                    self.assertTrue(wait_until(lambda: metric(port, "strata_bus_subscription_lag", 'subscription="notifications-queue"') == 0
                                               and metric(port, "strata_bus_outbox_backlog") == 0, 30, 0.2))
                    p.send_signal(signal.SIGTERM)
                p.wait(20)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        self.assertGreater(len(acked), kills)
        odb = sqlite3.connect(os.path.join(data, "orders.db"))
        have = {r[0] for r in odb.execute("SELECT id FROM orders")}
        self.assertEqual([a for a in acked if a not in have], [], "acknowledged orders lost")
        edb = sqlite3.connect(os.path.join(data, "events.db"))
        created = {}
        for (key,) in edb.execute("SELECT key FROM log WHERE type='order.created'"):
            created[key] = created.get(key, 0) + 1
        self.assertEqual([o for o in have if created.get(o) != 1], [], "orders without exactly one order.created")
        ndb = sqlite3.connect(os.path.join(data, "notifications.db"))
        per_order = {}
        for (subject,) in ndb.execute("SELECT subject FROM notifications WHERE kind='order_confirmation'"):
            oid = re.search(r"(ord_[0-9a-f]+)", subject).group(1)
            per_order[oid] = per_order.get(oid, 0) + 1
        self.assertEqual([o for o in have if per_order.get(o) != 1], [], "orders without exactly one notification")
        for name in ("users.db", "orders.db", "payments.db", "notifications.db", "events.db"):
            db = sqlite3.connect(os.path.join(data, name))
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok", name)


if __name__ == "__main__":
    unittest.main()
