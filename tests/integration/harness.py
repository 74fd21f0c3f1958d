"""Test harness: starts the real strata binary on a free loopback port and
talks to it like a client would (raw sockets, http.client, curl).

The binary is bin/strata, or $STRATA_BIN (the sanitizer run points it at the
ASan+UBSan build). Every server a test starts is stopped by its PID."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import http.client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("STRATA_BIN", os.path.join(ROOT, "bin", "strata"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(fn, timeout=10.0, step=0.05):
    """Calls fn until it returns something true (returned) or timeout
    seconds pass (None)."""
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return None


class Server:
    """A `strata serve` process. Use as a context manager."""

    def __init__(self, *extra, workers=1, config_text=None, log_level=None, args=None):
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="strata-test-")
        self.log_path = os.path.join(self.tmp, "stdout.log")
        self.err_path = os.path.join(self.tmp, "stderr.log")
        cmd = [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--workers", str(workers),
               "--data", os.path.join(self.tmp, "data")]
        if config_text is not None:
            cfg = os.path.join(self.tmp, "strata.yaml")
            with open(cfg, "w") as f:
                f.write(config_text)
            cmd += ["--config", cfg]
        if log_level:
            cmd += ["--log-level", log_level]
        cmd += list(extra) + list(args or [])
        self.cmd = cmd
        self.proc = None

    def start(self, timeout=10.0):
        with open(self.log_path, "ab") as out, open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"strata exited {self.proc.returncode}: {self.stderr()}")
            if self._answers(deadline):
                return self
            time.sleep(0.02)
        raise RuntimeError("strata did not start answering")

    def _answers(self, deadline):
        """True once the listener accepts and the process says it is
        listening (its workers run): the socket accepts from the moment it
        binds, and a test must not spend its own timeouts on the process
        starting. A log level above info hides that line: then a second
        after the first accepted connection will do."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            self._accepted_at = None
            return False
        if getattr(self, "_accepted_at", None) is None:
            self._accepted_at = time.time()
        try:
            with open(self.log_path, "rb") as f:
                if b'"event":"listening"' in f.read():
                    return True
        except OSError:
            pass
        return time.time() - self._accepted_at >= 1.0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Sends sig and waits; returns the exit code (kills after timeout)."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        """Every stdout line parsed as JSON (a line that does not parse fails the test)."""
        with open(self.log_path, "rb") as f:
            raw = f.read()
        return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]

    # ---- clients ---------------------------------------------------------
    def connect(self, timeout=5.0):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def raw(self, data, timeout=3.0, sock=None):
        """Sends data, reads until the server closes or timeout.
        Returns (bytes received, closed_by_server)."""
        s = sock or self.connect(timeout)
        s.settimeout(timeout)
        if data:
            s.sendall(data)
        buf, closed = b"", False
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    closed = True
                    break
                buf += d
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed = True
        if not sock:
            s.close()
        return buf, closed

    def http(self, method, path, body=None, headers=None, timeout=5.0):
        """One request on a fresh connection: (status, headers dict lower-cased, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def get_json(self, path):
        status, headers, body = self.http("GET", path)
        return status, json.loads(body)


def parse_responses(data):
    """Splits a byte stream into HTTP/1.1 responses (Content-Length framed).
    Returns a list of (status, headers dict lower-cased, body)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        n = int(headers.get("content-length", "0"))
        if status < 200 or status in (204, 304):
            n = 0
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out


def http_call(port, method, path, body=None, headers=None, timeout=10):
    """One request on a fresh connection to 127.0.0.1:port, body (any JSON
    value) sent as application/json: (status, headers lower-cased, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def wait_until(fn, timeout=10.0, step=0.05):
    """Calls fn until it returns something true (returned) or timeout passes
    (then fn's last answer is returned)."""
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()
