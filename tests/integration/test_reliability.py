"""Reliability under load (issue 4's acceptance): two `strata serve`
instances behind `strata gateway`, a 20 s wrk GET load at 50 connections,
kill -9 of one instance at t=5 s and its restart at t=12 s.

    A, B:    strata serve --workers 1 --log-level warn --data SHARED
    gateway: strata gateway --workers 1 --log-level warn --upstream A --upstream B
                            --health-interval 200ms      (rise 2, fall 2)
    load:    wrk -t2 -c50 -d20s --latency -s tests/integration/wrk_report.lua
                 http://127.0.0.1:GW/api/users/<id>

Wanted: 0 non-2xx responses and 0 socket errors; B gets no traffic later
than 1 s after the kill, and traffic again within 2 s of listening again.

Per-host traffic comes from the gateway's own counter of tries sent to each
host, strata_gateway_upstream_requests_total{pool="default",upstream="127.0.0.1:PORT"},
sampled every 100 ms from a thread. A sample is stamped with the time its
answer arrived, so a counter that moved in it moved at or before that time:
both timing figures are upper bounds with the sampling period as resolution.

The measured figures are printed as one JSON line on stdout (and appended to
the file $STRATA_RELIABILITY_OUT when set); docs/reliability.md quotes them.
Needs wrk (`bash scripts/deps.sh bench`); skipped with a message without it."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import ROOT, Server
from test_gateway import Gateway

DURATION = 20.0
KILL_AT = 5.0
RESTART_AT = 12.0
SAMPLE_EVERY = 0.1
CONNECTIONS = 50
MAX_SILENT_AFTER_KILL_MS = 1000
MAX_BACK_AFTER_RESTART_MS = 2000
LUA = os.path.join(ROOT, "tests", "integration", "wrk_report.lua")


def to_ms(text):
    """wrk's '512.00us' / '1.23ms' / '1.02s' / '2.00m' -> milliseconds."""
    m = re.match(r"^([0-9.]+)(us|ms|s|m)$", text)
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def parse_wrk(out):
    """The figures of one wrk run; every field None when wrk did not print it."""
    f = {"requests": None, "rps": None, "p50_ms": None, "p99_ms": None,
         "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0},
         "wrk_non2xx_or_3xx": 0, "lua_non2xx": None, "lua_responses": None, "lua_codes": ""}
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+\w+),", out, re.M)
    if m:
        f["requests"] = int(m.group(1))
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", out, re.M)
    if m:
        f["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}%\s+([0-9.]+\w+)\s*$", out, re.M)
        if m:
            f[key] = round(to_ms(m.group(1)), 3)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        f["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        f["wrk_non2xx_or_3xx"] = int(m.group(1))
    m = re.search(r"^strata-report non2xx=(\d+) responses=(\d+) codes=(\S*)", out, re.M)
    if m:
        f["lua_non2xx"], f["lua_responses"], f["lua_codes"] = int(m.group(1)), int(m.group(2)), m.group(3)
    return f


class Sampler(threading.Thread):
    """Reads the gateway's /metrics every SAMPLE_EVERY seconds: a list of
    (seconds since t0 when the answer arrived, {metric: value})."""

    def __init__(self, gw, t0, names):
        super().__init__(daemon=True)
        self.gw, self.t0, self.names = gw, t0, names
        self.samples, self.errors = [], []
        self.stop_flag = threading.Event()

    def run(self):
        next_at = time.monotonic()
        while not self.stop_flag.is_set():
            try:
                m = self.gw.metrics()
                t = time.monotonic() - self.t0
                self.samples.append((t, {k: m.get(v) for k, v in self.names.items()}))
            except Exception as e:  # noqa: BLE001 - a lost sample is reported, not fatal
                self.errors.append(f"{time.monotonic() - self.t0:.2f}s {type(e).__name__}: {e}")
            next_at += SAMPLE_EVERY
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop_flag.wait(delay)
            else:
                next_at = time.monotonic()


def first_change(samples, key, after, baseline, since):
    """Time (s) of the first sample stamped at or after `since`, taken after
    `after`, whose value for key exceeds baseline; None when none did."""
    for t, v in samples:
        if t > after and t >= since and v[key] is not None and v[key] > baseline:
            return t
    return None


def value_before(samples, key, t_limit):
    """The value of key in the last sample stamped before t_limit."""
    val = None
    for t, v in samples:
        if t >= t_limit:
            break
        val = v[key]
    return val


class KillAndRestartUnderLoad(unittest.TestCase):
    def test_kill_9_and_restart_one_instance_under_wrk_load(self):
        if not shutil.which("wrk"):
            self.skipTest("wrk is not installed: run `bash scripts/deps.sh bench` (Debian package wrk)")
        data = tempfile.mkdtemp(prefix="strata-rel-data-")
        a = Server(log_level="warn")
        b = Server(log_level="warn")
        for s in (a, b):  # one shared --data dir, as in the README's two-instance example
            s.cmd[s.cmd.index("--data") + 1] = data
        gw = wrk = sampler = None
        try:
            a.start()
            status, _, body = a.http("POST", "/api/users",
                                     json.dumps({"name": "Reliability Probe",
                                                 "email": f"rel-{os.getpid()}-{time.time_ns()}@example.com"}),
                                     {"Content-Type": "application/json"})
            self.assertEqual(status, 201, body)
            user_id = json.loads(body)["id"]
            b.start()
            self.assertEqual(b.http("GET", f"/api/users/{user_id}")[0], 200, "B does not see A's user")

            gw = Gateway([a.port, b.port], health_interval="200ms", log_level="warn").start()
            up_a, up_b = (f'pool="default",upstream="127.0.0.1:{a.port}"',
                          f'pool="default",upstream="127.0.0.1:{b.port}"')
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                m = gw.metrics()
                if m.get(f"strata_gateway_upstream_healthy{{{up_a}}}") == 1 and \
                        m.get(f"strata_gateway_upstream_healthy{{{up_b}}}") == 1:
                    break
                time.sleep(0.05)
            else:
                self.fail(f"the gateway never saw both instances healthy: {gw.stderr()[-2000:]}")
            path = f"/api/users/{user_id}"
            self.assertEqual(gw.http("GET", path)[0], 200)

            names = {
                "a_tries": f"strata_gateway_upstream_requests_total{{{up_a}}}",
                "b_tries": f"strata_gateway_upstream_requests_total{{{up_b}}}",
                "b_2xx": f'strata_gateway_upstream_responses_total{{{up_b},status="2xx"}}',
                "b_failures": f"strata_gateway_upstream_failures_total{{{up_b}}}",
                "b_retries": f"strata_gateway_upstream_retries_total{{{up_b}}}",
                "a_retries": f"strata_gateway_upstream_retries_total{{{up_a}}}",
                "b_healthy": f"strata_gateway_upstream_healthy{{{up_b}}}",
                "b_breaker_open": f"strata_gateway_breaker_open{{{up_b}}}",
                "budget_exhausted": "strata_gateway_retry_budget_exhausted_total",
            }
            url = f"http://127.0.0.1:{gw.port}{path}"
            cmd = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{int(DURATION)}s", "--latency", "-s", LUA, url]
            wrk_out = os.path.join(data, "wrk.out")
            with open(wrk_out, "wb") as out:
                t0 = time.monotonic()
                wrk = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            sampler = Sampler(gw, t0, names)
            sampler.start()

            time.sleep(max(0.0, t0 + KILL_AT - time.monotonic()))
            t_kill = time.monotonic() - t0
            os.kill(b.proc.pid, signal.SIGKILL)
            b.proc.wait()

            time.sleep(max(0.0, t0 + RESTART_AT - time.monotonic()))
            t_spawn = time.monotonic() - t0
            b.start()  # same command: same port, same data dir; returns once it accepts
            t_listen = time.monotonic() - t0

            try:
                rc = wrk.wait(timeout=DURATION + 20)
            except subprocess.TimeoutExpired:
                wrk.kill()
                wrk.wait()
                self.fail("wrk did not finish")
            sampler.stop_flag.set()
            sampler.join(5)
            with open(wrk_out, encoding="utf-8", errors="replace") as f:
                out = f.read()
            self.assertEqual(rc, 0, f"wrk exited {rc}: {out}")

            w = parse_wrk(out)
            S = sampler.samples
            self.assertGreater(len(S), int(DURATION / SAMPLE_EVERY * 0.5), f"too few samples: {sampler.errors}")
            gaps = [round((S[i][0] - S[i - 1][0]) * 1000) for i in range(1, len(S))]

            # B's last counted try after the kill: the last sample between the
            # kill and the restart in which B's counter had moved.
            last_after_kill = None
            for i in range(1, len(S)):
                t, v = S[i]
                if t_kill < t <= t_spawn and v["b_tries"] > S[i - 1][1]["b_tries"]:
                    last_after_kill = t
            last_after_kill_ms = 0 if last_after_kill is None else round((last_after_kill - t_kill) * 1000)
            base_tries = value_before(S, "b_tries", t_spawn)
            base_2xx = value_before(S, "b_2xx", t_spawn)
            first_try = first_change(S, "b_tries", t_spawn, base_tries, t_listen)
            first_2xx = first_change(S, "b_2xx", t_spawn, base_2xx, t_listen)
            unhealthy_at = next((t for t, v in S if t > t_kill and v["b_healthy"] == 0), None)
            healthy_at = next((t for t, v in S if t > t_listen and v["b_healthy"] == 1), None)
            end = S[-1][1]

            def ms(t, ref):
                return None if t is None else round((t - ref) * 1000)

            per_s = []  # tries sent to B in each second of the run
            for sec in range(int(DURATION)):
                lo = value_before(S, "b_tries", sec) or 0
                hi = value_before(S, "b_tries", sec + 1) or lo
                per_s.append(int(hi - lo))
            figures = {
                "test": "test_reliability", "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
                "cpus": os.cpu_count(),
                "command": " ".join(cmd[:-1] + ["http://127.0.0.1:GW/api/users/<id>"]),
                "requests": w["requests"], "rps": w["rps"], "p50_ms": w["p50_ms"], "p99_ms": w["p99_ms"],
                "non2xx": w["lua_non2xx"], "non2xx_codes": w["lua_codes"],
                "wrk_non2xx_or_3xx": w["wrk_non2xx_or_3xx"], "socket_errors": w["socket_errors"],
                "kill_at_s": round(t_kill, 3), "restart_spawned_at_s": round(t_spawn, 3),
                "listening_again_at_s": round(t_listen, 3),
                "last_traffic_to_b_after_kill_ms": last_after_kill_ms,
                "first_traffic_to_b_after_restart_ms": ms(first_try, t_listen),
                "first_traffic_to_b_after_restart_spawn_ms": ms(first_try, t_spawn),
                "first_2xx_from_b_after_restart_ms": ms(first_2xx, t_listen),
                "b_marked_unhealthy_after_kill_ms": ms(unhealthy_at, t_kill),
                "b_marked_healthy_after_restart_ms": ms(healthy_at, t_listen),
                "tries_a": end["a_tries"], "tries_b": end["b_tries"], "b_failures": end["b_failures"],
                "retries_after_failing_on_b": end["b_retries"], "retries_after_failing_on_a": end["a_retries"],
                "retry_budget_exhausted": end["budget_exhausted"], "b_tries_per_second": per_s,
                "samples": len(S), "max_sample_gap_ms": max(gaps) if gaps else None,
                "sample_errors": len(sampler.errors),
            }
            line = json.dumps(figures, sort_keys=False)
            print(line, flush=True)
            if os.environ.get("STRATA_RELIABILITY_OUT"):
                with open(os.environ["STRATA_RELIABILITY_OUT"], "a") as f:
                    f.write(line + "\n")
            events = [f'{x.get("event")}: {x.get("message", x.get("msg", ""))}' for x in gw.log_lines()
                      if x.get("event") != "request"]
            why = f"\nfigures: {line}\ngateway events: {events[-20:]}\nwrk:\n{out}"

            # the scenario is real: B served before the kill, A carried the load
            self.assertGreater(value_before(S, "b_tries", t_kill) or 0, 0, "B got no traffic before the kill" + why)
            self.assertIsNotNone(w["rps"], "wrk printed no Requests/sec" + why)
            self.assertGreater(w["rps"], 0, why)
            self.assertIsNotNone(w["requests"], "wrk printed no request count" + why)
            self.assertGreater(w["requests"], 0, why)
            self.assertIsNotNone(w["lua_non2xx"], "wrk_report.lua printed no report" + why)
            # the acceptance
            self.assertEqual(w["lua_non2xx"], 0, f"non-2xx responses ({w['lua_codes']})" + why)
            self.assertEqual(w["wrk_non2xx_or_3xx"], 0, why)
            self.assertEqual(sum(w["socket_errors"].values()), 0, f"socket errors {w['socket_errors']}" + why)
            self.assertLessEqual(last_after_kill_ms, MAX_SILENT_AFTER_KILL_MS,
                                 f"B still got tries {last_after_kill_ms} ms after the kill" + why)
            self.assertIsNotNone(first_try, "B got no traffic after the restart" + why)
            self.assertLessEqual(figures["first_traffic_to_b_after_restart_ms"], MAX_BACK_AFTER_RESTART_MS,
                                 f"B got traffic again only {figures['first_traffic_to_b_after_restart_ms']} ms "
                                 f"after listening again" + why)
            self.assertIsNotNone(first_2xx, "B answered nothing after the restart" + why)
        finally:
            if sampler:
                sampler.stop_flag.set()
            if wrk and wrk.poll() is None:
                wrk.kill()
                wrk.wait()
            try:
                if gw:
                    gw.stop_checked()
            finally:
                for s in (a, b):
                    try:
                        s.stop()
                    except Exception as e:  # noqa: BLE001
                        print(f"stopping a server: {e}", file=sys.stderr)
                shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
