"""`strata up` and `strata status` against the real binary.

Each test runs the shipped monolith topology (config/monolith.yaml) from a
copy whose ports are replaced by free ones and whose workers are 1, with
its data under a temporary directory: the supervisor starts two service
instances and the gateway, and the tests talk to them like a client, kill
them, and look at /proc to make sure nothing is left behind. Every process
a test finds is one of the supervisor's children (by the pids in its state
file or by the unique data directory in its command line); only those are
ever signalled."""
import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest

from harness import BIN, ROOT, free_port, wait_until


def free_port_pair():
    """A port p with p and p+1 both free (the two instances of a service)."""
    for _ in range(50):
        p = free_port()
        if p >= 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports")


def call(port, method, path, body=None, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def answers(port, path="/health/ready"):
    """The status of GET path, or None when nothing answers."""
    try:
        return call(port, "GET", path, timeout=2)[0]
    except (OSError, http.client.HTTPException):
        return None


def metric(port, name, labels=""):
    _, body = call(port, "GET", "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name) and (not labels or labels in line) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


def gone(pid):
    """True when pid no longer runs (absent, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True


def pids_mentioning(needle):
    """Live processes whose command line contains needle."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if needle.encode() in f.read() and not gone(int(d)):
                    out.append(int(d))
        except OSError:
            pass
    return out


def topology(tmp, gateway, admin, base, name="monolith.yaml"):
    """A copy of a shipped topology on the given ports, one worker each."""
    with open(os.path.join(ROOT, "config", name)) as f:
        text = f.read()
    ports = {"8080": gateway, "9901": admin, "8081": base}
    text = re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{ports.get(m.group(1), m.group(1))}", text)
    text = re.sub(r"workers: \d+", "workers: 1", text)
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class Up:
    """A `strata up` of the monolith on free ports. Use as a context manager."""

    def __init__(self, extra=()):
        self.tmp = tempfile.mkdtemp(prefix="strata-up-")
        self.data = os.path.join(self.tmp, "data")
        # three different ports: two free_port() calls may return the same one
        while True:
            self.port, self.admin, self.base = free_port(), free_port(), free_port_pair()
            if len({self.port, self.admin, self.base, self.base + 1}) == 4:
                break
        self.config = topology(self.tmp, self.port, self.admin, self.base)
        self.state_path = os.path.join(self.data, "strata-up.json")
        self.out_path = os.path.join(self.tmp, "up.out")
        self.err_path = os.path.join(self.tmp, "up.err")
        self.cmd = [BIN, "up", "--config", self.config, "--data", self.data, *extra]
        self.proc = None
        self.children = set()

    def start(self):
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        return self

    def wait_ready(self, timeout=30):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"strata up exited {self.proc.returncode}: {self.stderr()}")
            st = self.state()
            return st if st and st.get("phase") == "running" else None
        st = wait_until(ready, timeout)
        assert st, f"not ready in {timeout} s: {self.stderr()}"
        return st

    def __enter__(self):
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, *exc):
        self.stop()
        # anything a failed test left: only our own children, by pid
        for pid in self.children | set(pids_mentioning(self.data)):
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)

    def stop(self, sig=signal.SIGTERM, timeout=40):
        if self.proc.poll() is None:
            self.children |= set(self.pids().values())
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode

    def state(self):
        try:
            with open(self.state_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def pids(self):
        st = self.state() or {}
        pids = {p["name"]: p["pid"] for p in st.get("processes", []) if p.get("pid")}
        self.children |= set(pids.values())
        return pids

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        with open(self.out_path, "rb") as f:
            return [json.loads(line) for line in f.read().decode().splitlines() if line.strip()]

    def status(self, *args):
        r = subprocess.run([BIN, "status", "--data", self.data, *args], capture_output=True,
                           timeout=20)
        return r.returncode, r.stdout.decode(), r.stderr.decode()


class Topology(unittest.TestCase):
    def test_shipped_configs_pass_check(self):
        for name in ("monolith.yaml", "microservices.yaml"):
            r = subprocess.run([BIN, "check", os.path.join(ROOT, "config", name)], capture_output=True)
            self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())

    def test_up_serves_the_api_through_the_gateway(self):
        with Up() as up:
            pids = up.pids()
            self.assertEqual(sorted(pids), ["app-0", "app-1", "gateway"])
            self.assertTrue(all(not gone(p) for p in pids.values()))
            err = up.stderr()
            self.assertIn(f"public   http://127.0.0.1:{up.port}", err)
            self.assertIn("curl", err)
            self.assertIn(os.path.join(up.data, "logs"), err)
            s, body = call(up.port, "POST", "/api/users", {"name": "Ada", "email": "ada-up@example.com"})
            self.assertEqual(s, 201, body)
            uid = json.loads(body)["id"]
            s, body = call(up.port, "GET", f"/api/users/{uid}")
            self.assertEqual((s, json.loads(body)["id"]), (200, uid))
            # both instances are behind the gateway and share one data directory
            for port in (up.base, up.base + 1):
                self.assertEqual(call(port, "GET", f"/api/users/{uid}")[0], 200)
            self.assertTrue(os.path.exists(os.path.join(up.data, "app", "users.db")))
            token = os.path.join(up.data, "admin.token")
            self.assertEqual(os.stat(token).st_mode & 0o777, 0o600)
            self.assertEqual(len(open(token).read().strip()), 64)
            for name in pids:
                self.assertTrue(os.path.exists(os.path.join(up.data, "logs", f"{name}.log")))
            self.assertEqual(up.stop(), 0)

    def test_kill_nine_of_a_service_is_restarted(self):
        with Up() as up:
            old = up.pids()["app-1"]
            os.kill(old, signal.SIGKILL)
            st = wait_until(lambda: next((p for p in (up.state() or {}).get("processes", [])
                                          if p["name"] == "app-1" and p["pid"] not in (0, old)
                                          and p["state"] == "ready"), None), 15)
            self.assertTrue(st, up.state())
            self.assertEqual(st["restarts"], 1)
            self.assertEqual(st["lastExit"], "killed by SIGKILL")
            exits = [l for l in up.log_lines() if l.get("event") == "process_exited"]
            self.assertEqual(len(exits), 1, exits)
            self.assertEqual((exits[0]["process"], exits[0]["pid"], exits[0]["signal"]), ("app-1", old, "SIGKILL"))
            self.assertIn("restartInMs", exits[0])
            self.assertEqual(answers(up.base + 1), 200)
            s, _ = call(up.port, "POST", "/api/users", {"name": "B", "email": "b-up@example.com"})
            self.assertEqual(s, 201)
            # the gateway is supervised the same way
            gw = up.pids()["gateway"]
            os.kill(gw, signal.SIGKILL)
            self.assertTrue(wait_until(lambda: up.pids().get("gateway") not in (None, gw) and
                                       answers(up.port) == 200, 15), up.state())
            s, _ = call(up.port, "POST", "/api/users", {"name": "C", "email": "c-up@example.com"})
            self.assertEqual(s, 201)
            self.assertEqual(up.stop(), 0)

    def test_kill_nine_under_writes_loses_nothing(self):
        """The acceptance scenario: orders written through the gateway while
        a service instance is killed -9; the supervisor restarts it and every
        acknowledged order is there with exactly one event and one
        notification."""
        with Up() as up:
            s, body = call(up.port, "POST", "/api/users", {"name": "W", "email": "w-up@example.com"})
            self.assertEqual(s, 201, body)
            uid = json.loads(body)["id"]
            acked, stop = [], threading.Event()

            def writer():
                while not stop.is_set():
                    try:
                        s, body = call(up.port, "POST", "/api/orders",
                                       {"userId": uid, "items": [{"sku": "K", "quantity": 1, "unitPriceCents": 7}]},
                                       timeout=5)
                        if s == 201:
                            acked.append(json.loads(body)["id"])
                    except (OSError, http.client.HTTPException, ValueError):
                        pass

            threads = [threading.Thread(target=writer, daemon=True) for _ in range(3)]
            for t in threads:
                t.start()
            try:
                time.sleep(0.5)
                victim = up.pids()["app-0"]
                os.kill(victim, signal.SIGKILL)
                restarted = wait_until(lambda: up.pids().get("app-0") not in (None, victim) and
                                       answers(up.base) == 200, 15)
                time.sleep(0.5)
            finally:
                stop.set()
                for t in threads:
                    t.join()
            self.assertTrue(restarted, up.state())
            self.assertGreater(len(acked), 10)

            def drained():
                return all(metric(p, "strata_bus_outbox_backlog") == 0 and
                           metric(p, "strata_bus_subscription_lag", 'subscription="notifications-queue"') == 0
                           for p in (up.base, up.base + 1))
            self.assertTrue(wait_until(drained, 30, 0.2), "the event pipeline did not drain")
            self.assertEqual(up.stop(), 0)
            app = os.path.join(up.data, "app")
            have = {r[0] for r in sqlite3.connect(os.path.join(app, "orders.db")).execute("SELECT id FROM orders")}
            self.assertEqual([a for a in acked if a not in have], [], "acknowledged orders lost")
            created = {}
            # the bus log lives in bus.dir, by default the data root every service shares
            for (key,) in sqlite3.connect(os.path.join(up.data, "events.db")).execute(
                    "SELECT key FROM log WHERE type='order.created'"):
                created[key] = created.get(key, 0) + 1
            self.assertEqual([o for o in have if created.get(o) != 1], [], "orders without exactly one event")
            per_order = {}
            for (subject,) in sqlite3.connect(os.path.join(app, "notifications.db")).execute(
                    "SELECT subject FROM notifications WHERE kind='order_confirmation'"):
                oid = re.search(r"(ord_[0-9a-f]+)", subject).group(1)
                per_order[oid] = per_order.get(oid, 0) + 1
            self.assertEqual([o for o in have if per_order.get(o) != 1], [], "orders without exactly one notification")

    def test_sigterm_stops_everything_gateway_first(self):
        with Up() as up:
            pids = up.pids()
            self.assertEqual(up.stop(signal.SIGTERM), 0)
            self.assertEqual([n for n, p in pids.items() if not gone(p)], [])
            self.assertEqual(pids_mentioning(up.data), [])
            self.assertFalse(os.path.exists(up.state_path))
            stops = [l["process"] for l in up.log_lines() if l.get("event") == "process_stopping"]
            self.assertEqual(stops[0], "gateway")
            self.assertEqual(sorted(stops[1:]), ["app-0", "app-1"])
            stopped = {l["process"]: l for l in up.log_lines() if l.get("event") == "process_stopped"}
            self.assertEqual({n: l.get("exitCode") for n, l in stopped.items()},
                             {"gateway": 0, "app-0": 0, "app-1": 0})
            # the gateway had exited before any service was asked to stop
            lines = [l for l in up.log_lines() if l.get("event") in ("process_stopping", "process_stopped")]
            order = [(l["event"], l["process"]) for l in lines]
            self.assertLess(order.index(("process_stopped", "gateway")), order.index(("process_stopping", "app-0")))
            self.assertIn("nothing left running", up.stderr())

    def test_sigint_stops_everything(self):
        with Up() as up:
            pids = up.pids()
            self.assertEqual(up.stop(signal.SIGINT), 0)
            self.assertEqual([n for n, p in pids.items() if not gone(p)], [])

    def test_ctrl_c_on_a_terminal_reaches_only_the_supervisor(self):
        """strata up on a pseudo-terminal, Ctrl-C typed on it: the terminal
        signals its foreground process group, which holds the supervisor
        alone; the services then get SIGTERM from it, after the gateway."""
        import pty
        up = Up()
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(BIN, up.cmd)
        screen = bytearray()

        def drain():
            while True:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    return
                if not data:
                    return
                screen.extend(data)
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            ready = wait_until(lambda: (up.state() or {}).get("phase") == "running", 30)
            self.assertTrue(ready, screen.decode(errors="replace"))
            pids = up.pids()
            os.write(fd, b"\x03")
            _, status = os.waitpid(pid, 0)
            reader.join(5)
            self.assertEqual(os.waitstatus_to_exitcode(status), 0, screen.decode(errors="replace"))
            self.assertEqual([n for n, p in pids.items() if not gone(p)], [])
            text = screen.decode(errors="replace")
            self.assertIn("starting: ", text)  # the live progress line
            self.assertIn("nothing left running", text)
            for name in ("app-0", "app-1"):
                with open(os.path.join(up.data, "logs", f"{name}.log")) as f:
                    log = f.read()
                self.assertIn("received SIGTERM", log)
                self.assertNotIn("SIGINT", log)
        finally:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            os.close(fd)
            for p in up.children | set(pids_mentioning(up.data)):
                if not gone(p):
                    os.kill(p, signal.SIGKILL)

    def test_kill_nine_of_the_supervisor_leaves_nothing(self):
        with Up() as up:
            pids = up.pids()
            up.proc.send_signal(signal.SIGKILL)
            up.proc.wait()
            left = wait_until(lambda: all(gone(p) for p in pids.values()), 1.0, 0.02)
            self.assertTrue(left, {n: p for n, p in pids.items() if not gone(p)})
            self.assertEqual(pids_mentioning(up.data), [])
            # the stale state file is recognised as such
            rc, out, _ = up.status()
            self.assertEqual(rc, 1)
            self.assertIn("NOT running", out)

    def test_a_child_that_cannot_start_fails_the_start_cleanly(self):
        up = Up()
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", up.base + 1))
        blocker.listen(1)
        try:
            up.start()
            rc = up.proc.wait(30)
            err = up.stderr()
            self.assertEqual(rc, 1, err)
            self.assertIn("app-1", err)
            self.assertIn("before it was ready", err)
            self.assertIn("in use", err)  # the child's own last log line says why
            self.assertEqual(pids_mentioning(up.data), [])
            self.assertEqual(pids_mentioning(f"127.0.0.1:{up.port}"), [])
            self.assertFalse(os.path.exists(up.state_path))
        finally:
            blocker.close()
            up.__exit__(None, None, None)

    def test_a_second_up_on_the_same_data_is_refused(self):
        with Up() as up:
            r = subprocess.run([BIN, "up", "--config", up.config, "--data", up.data],
                               capture_output=True, timeout=20)
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"pid {up.proc.pid}", r.stderr.decode())
            self.assertEqual(up.stop(), 0)

    def test_status_shows_every_process(self):
        with Up() as up:
            rc, out, err = up.status("--json")
            self.assertEqual(rc, 0, out + err)
            doc = json.loads(out)
            self.assertTrue(doc["running"])
            self.assertEqual(doc["supervisor"]["pid"], up.proc.pid)
            self.assertEqual(doc["public"], f"http://127.0.0.1:{up.port}")
            procs = {p["name"]: p for p in doc["processes"]}
            self.assertEqual(sorted(procs), ["app-0", "app-1", "gateway"])
            for name, p in procs.items():
                self.assertTrue(p["alive"], name)
                self.assertEqual(p["health"]["status"], 200, name)
                self.assertEqual(p["health"]["state"], "up", name)
                self.assertEqual(p["state"], "ready", name)
            self.assertEqual(procs["app-1"]["address"], f"127.0.0.1:{up.base + 1}")
            rc, out, _ = up.status()
            self.assertEqual(rc, 0, out)
            for name in procs:
                self.assertRegex(out, rf"\n  {name}\s+{procs[name]['pid']}\s")
            self.assertEqual(up.stop(), 0)
            rc, out, _ = up.status("--json")
            self.assertEqual((rc, json.loads(out)["running"]), (3, False))

    def test_status_reads_the_admin_listener(self):
        """--admin URL: pools, hosts and breakers from GET /admin/status with
        the bearer token, from a stand-in admin listener (any JSON missing
        fields must still print)."""
        import http.server

        seen = {}

        class Admin(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen["auth"] = self.headers.get("Authorization")
                body = json.dumps({"pools": [{"name": "app", "hosts": [
                    {"address": "127.0.0.1:1", "healthy": True, "ejected": False, "breaker": "closed",
                     "active": 0, "idle": 2, "requests": 10, "failures": 0},
                    {"address": "127.0.0.1:2", "breaker": "open"}]}],
                    "routes": [{"match": "/", "pool": "app", "breaker": "closed"}]}).encode()
                self.send_response(200 if self.path == "/admin/status" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), Admin)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            with Up() as up:
                url = f"http://127.0.0.1:{srv.server_address[1]}"
                rc, out, err = up.status("--admin", url)
                self.assertEqual(rc, 0, out + err)
                token = open(os.path.join(up.data, "admin.token")).read().strip()
                self.assertEqual(seen["auth"], f"Bearer {token}")
                self.assertRegex(out, r"app\s+127\.0\.0\.1:1\s+yes\s+no\s+closed\s+0\s+2\s+10\s+0")
                self.assertRegex(out, r"127\.0\.0\.1:2\s+-\s+-\s+open")
                rc, out, _ = up.status("--admin", url, "--json")
                admin = json.loads(out)["admin"]
                self.assertEqual(admin["httpStatus"], 200)
                self.assertEqual(admin["status"]["pools"][0]["name"], "app")
                rc, out, _ = up.status("--admin", "http://127.0.0.1:1")
                self.assertIn("unreachable", out)
        finally:
            srv.shutdown()
            srv.server_close()


if __name__ == "__main__":
    unittest.main()
