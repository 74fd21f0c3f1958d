"""A small HTTP/1.1 upstream that misbehaves on demand, for the gateway tests.

Built on plain sockets and threads (not http.server) so it can hang, reset,
close early and send malformed responses. One thread accepts, one thread per
connection reads requests (keep-alive honoured) and answers them according
to the current behaviour, which the test switches at run time:

    up = FakeUpstream().start()          # or FakeUpstream(port=N) to reuse a port
    up.set("ok")                         # 200 JSON echo (the default)
    up.set("status", status=503, retry_after="1")
    up.set("status", status=503, times=1)    # once, then back to ok
    up.set("status", status=500, methods={"POST"})  # only POSTs; others ok
    up.set("hang") / up.set("reset") / up.set("close")
    up.set("malformed", kind="cl_te")    # see MALFORMED
    up.set("slow", delay_ms=300)
    up.set("flaky", fail_ratio=0.45, status=503)  # deterministic share of 503s
    up.set("sink", read_delay_ms=5, read_size=262144)  # streams the body in (see below)
    up.set("source", size=100 << 20, chunked=False, die_after=None, piece=65536)
    up.set_health("fail")                # /health/ready -> 503 (also "ok", "hang")
    up.stop()

/health/ready is answered by the health setting whatever the behaviour (a
behaviour applies to every other request). The echo body is
    {"method", "path", "query", "headers": [[name, value], ...], "bodyLength"}
(for HEAD: the same headers, Content-Length of that body, no body).
`extra_headers` (a list of (name, value)) is added to every ok/status answer.

Streaming modes, for bodies too large to keep: "sink" reads the request
body as it comes (read_size bytes a recv, sleeping read_delay_ms after each:
a slow reader), keeps only its length and SHA-256 (in `sunk`, one dict
{"bodyLength", "sha256", "complete"} per request, "complete" False when the
connection closed mid-body) and answers the echo with "sha256" added.
"source" answers any request with `size` bytes of source_bytes() (a fixed
pseudo-random pattern), with a Content-Length or chunked, in `piece`-byte
sends; with die_after=N it closes the connection after N body bytes; with
early=True it answers right after the request head, without reading the
request body, then closes the connection the way servers that answer early
do (lingering: write side first, the body read and dropped until EOF). Each
answer is noted in `sourced`: {"sent": body bytes, "complete": all sent}.

Counters (read them through the properties, or snapshot()):
    connections       connections accepted
    requests          complete requests received (health checks included)
    proxied           complete requests other than GET /health/ready
    raw_bytes         bytes received on every connection
    proxy_connections connections that carried at least one non-health request
and `recorded`, the list of non-health requests as dicts
    {"method", "path", "query", "headers": [(name, value), ...], "body": bytes}.

As a script:  python3 fake_upstream.py --port 8081 [--mode hang] [--health fail]
then commands on stdin, one a line: `ok`, `status 503 [retry-after]`, `hang`,
`reset`, `close`, `malformed KIND`, `slow MS`, `health ok|fail|hang`, `stats`.
"""
import argparse
import hashlib
import json
import random
import socket
import struct
import sys
import threading
import time

HEALTH_PATH = "/health/ready"

# Malformed responses, each a framing or syntax error the gateway must refuse.
MALFORMED = {
    # Content-Length and Transfer-Encoding together (RFC 9112 6.3: smuggling vector)
    "cl_te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5\r\nhello\r\n0\r\n\r\n",
    # a chunk size that is not hex
    "bad_chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    # a status line without a status code
    "bad_status_line": b"HTTP/1.1 OK\r\nContent-Length: 2\r\n\r\nok",
    # a status line that is not HTTP at all
    "garbage_status_line": b"HELLO WORLD\r\nContent-Length: 2\r\n\r\nok",
    # a header line ended by a bare LF
    "bare_lf": b"HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 2\r\n\r\nok",
    # obs-fold (a continuation line), deprecated and to be rejected (RFC 9112 5.2)
    "obs_fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    # two different Content-Length values
    "dup_cl": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
    # a NUL byte in a header value
    "nul_in_header": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    # Content-Length announces more than is sent, then the connection closes
    "cl_mismatch": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
    # the status line ended by a bare LF
    "bare_lf_status_line": b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok",
    # obs-fold after an empty value (the whole value on the continuation line)
    "obs_fold_empty_value": b"HTTP/1.1 200 OK\r\nX-A:\r\n b\r\nContent-Length: 2\r\n\r\nok",
    # a bare CR inside a header value
    "bare_cr_in_header": b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok",
    # whitespace between the field name and the colon (RFC 9112 5.1: reject)
    "space_before_colon": b"HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 2\r\n\r\nok",
    # a negative Content-Length
    "cl_negative": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
    # chunked applied twice (RFC 9112 6.1: MUST NOT), a request gets 400 for it
    "te_chunked_twice": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
                        b"2\r\nok\r\n0\r\n\r\n",
    # a major version other than 1 on an HTTP/1.1 connection
    "http2_status_line": b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    # a coding the gateway does not decode: relayed as is it would reach the
    # client re-chunked without its Transfer-Encoding
    "te_gzip_chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                       b"2\r\nok\r\n0\r\n\r\n",
    "te_gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
    # status codes outside 100..599 (RFC 9110 15), and a 101 nobody asked for
    "status_099": b"HTTP/1.1 099 Weird\r\nContent-Length: 2\r\n\r\nok",
    "status_999": b"HTTP/1.1 999 Weird\r\nContent-Length: 2\r\n\r\nok",
    "status_101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    # a header section larger than the gateway reads (64 KiB)
    "huge_header": b"HTTP/1.1 200 OK\r\nX-Big: " + b"v" * (70 * 1024) + b"\r\nContent-Length: 2\r\n\r\nok",
}


_PATTERN = random.Random(4242).randbytes(1 << 16)


def source_bytes(size):
    """Yields the first `size` bytes of the source pattern, 64 KiB at a time."""
    left = size
    while left > 0:
        piece = _PATTERN[:min(left, len(_PATTERN))]
        left -= len(piece)
        yield piece


def stream_body(more, buf, chunked, length, on_data):
    """Decodes one body from buf (a bytearray) and more() (appends what it
    reads to buf; False at EOF), framed as chunked or by length, passing
    each piece to on_data. Returns True when the body ended as framed, False
    when the bytes ran out first; what follows the body stays in buf."""
    def take(left):
        while left:
            if not buf and not more():
                return False
            k = min(left, len(buf))
            on_data(bytes(buf[:k]))
            del buf[:k]
            left -= k
        return True

    if not chunked:
        return take(length)
    while True:
        while b"\r\n" not in buf:
            if not more():
                return False
        i = buf.index(b"\r\n")
        size = int(bytes(buf[:i]).split(b";")[0], 16)
        del buf[:i + 2]
        if not take(size):
            return False
        while len(buf) < 2:
            if not more():
                return False
        del buf[:2]
        if size == 0:
            return True  # (trailers are not expected)


def _reason(status):
    return {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}.get(status, "Status")


class FakeUpstream:
    def __init__(self, port=0, host="127.0.0.1"):
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._behaviour = {"mode": "ok"}
        self._health = "ok"
        self.extra_headers = []
        self._stop = threading.Event()
        self._listener = None
        self._accept_thread = None
        self._conns = set()
        self._threads = []
        self._flaky_n = 0
        self.reset_counters()

    # ---- control ---------------------------------------------------------
    def set(self, mode, **kw):
        """Switches the behaviour for non-health requests (thread-safe)."""
        if mode not in ("ok", "status", "hang", "reset", "close", "malformed", "slow", "flaky",
                        "sink", "source", "raw"):
            raise ValueError(f"unknown mode {mode}")
        if mode == "malformed" and kw.get("kind") not in MALFORMED:
            raise ValueError(f"unknown malformed kind {kw.get('kind')}")
        with self._lock:
            self._behaviour = dict(kw, mode=mode)
            self._flaky_n = 0

    def set_health(self, state):
        if state not in ("ok", "fail", "hang"):
            raise ValueError(state)
        with self._lock:
            self._health = state

    def reset_counters(self):
        with getattr(self, "_lock", threading.Lock()):
            self._connections = 0
            self._requests = 0
            self._proxied = 0
            self._raw_bytes = 0
            self._proxy_connections = 0
            self._recorded = []
            self._sunk = []
            self._sourced = []

    @property
    def connections(self):
        with self._lock:
            return self._connections

    @property
    def requests(self):
        with self._lock:
            return self._requests

    @property
    def proxied(self):
        with self._lock:
            return self._proxied

    @property
    def raw_bytes(self):
        with self._lock:
            return self._raw_bytes

    @property
    def proxy_connections(self):
        with self._lock:
            return self._proxy_connections

    @property
    def recorded(self):
        with self._lock:
            return list(self._recorded)

    @property
    def sunk(self):
        with self._lock:
            return list(self._sunk)

    @property
    def sourced(self):
        with self._lock:
            return list(self._sourced)

    def snapshot(self):
        with self._lock:
            return {"connections": self._connections, "requests": self._requests,
                    "proxied": self._proxied, "raw_bytes": self._raw_bytes,
                    "proxy_connections": self._proxy_connections}

    # ---- lifecycle -------------------------------------------------------
    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(128)
        s.settimeout(0.1)
        self.port = s.getsockname()[1]
        self._listener = s
        self._stop.clear()
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept_thread.start()
        return self

    def stop(self):
        """Stops listening and closes every connection (nothing listens after)."""
        self._stop.set()
        if self._accept_thread:
            self._accept_thread.join(2)
        if self._listener:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(2)
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- serving -----------------------------------------------------------
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections += 1
                self._conns.add(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _recv(self, conn, size=65536):
        """One recv (0.1 s steps so stop() is noticed); b'' on EOF/stop."""
        while not self._stop.is_set():
            try:
                d = conn.recv(size)
            except socket.timeout:
                continue
            except OSError:
                return b""
            with self._lock:
                self._raw_bytes += len(d)
            return d
        return b""

    def _read_request(self, conn, buf):
        """Reads one request. Returns (request dict or None on EOF, rest of buf).
        In "sink" mode the body is streamed through (see the module notes)."""
        while b"\r\n\r\n" not in buf:
            d = self._recv(conn)
            if not d:
                return None, buf
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        with self._lock:
            beh = dict(self._behaviour)
        health = head.startswith((b"GET " + HEALTH_PATH.encode(), b"HEAD " + HEALTH_PATH.encode()))
        if beh["mode"] == "sink" and not health:
            return self._sink_request(conn, head, rest, beh)
        if beh["mode"] == "source" and beh.get("early") and not health:
            req = self._parse_head(head)
            req["early"] = True
            return req, b""
        req = self._parse_head(head)
        headers = req["headers"]
        hl = {k.lower(): v for k, v in headers}
        body = b""
        if "chunked" in hl.get("transfer-encoding", "").lower():
            while True:
                while b"\r\n" not in rest:
                    d = self._recv(conn)
                    if not d:
                        return None, b""
                    rest += d
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(rest) < size + 2:
                    d = self._recv(conn)
                    if not d:
                        return None, b""
                    rest += d
                body += rest[:size]
                rest = rest[size + 2:]
                if size == 0:
                    break  # (trailers are not expected from the gateway)
        else:
            n = int(hl.get("content-length", "0") or 0)
            while len(rest) < n:
                d = self._recv(conn)
                if not d:
                    return None, b""
                rest += d
            body, rest = rest[:n], rest[n:]
        req["body"] = body
        return req, rest

    @staticmethod
    def _parse_head(head):
        lines = head.split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ")
        method, target = (parts[0], parts[1]) if len(parts) >= 2 else ("?", "/")
        path, _, query = target.partition("?")
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        return {"method": method, "path": path, "query": query, "headers": headers, "body": b"",
                "version": parts[2] if len(parts) > 2 else ""}

    def _sink_request(self, conn, head, rest, beh):
        """Streams the body through: its length and SHA-256 only."""
        req = self._parse_head(head)
        hl = {k.lower(): v for k, v in req["headers"]}
        delay = beh.get("read_delay_ms", 0) / 1000.0
        size = beh.get("read_size", 65536)
        h = hashlib.sha256()
        n = 0
        buf = bytearray(rest)

        def more():
            if delay and self._stop.wait(delay):
                return False
            d = self._recv(conn, size)
            buf.extend(d)
            return bool(d)

        def piece(data):
            nonlocal n
            h.update(data)
            n += len(data)

        complete = stream_body(more, buf, "chunked" in hl.get("transfer-encoding", "").lower(),
                               int(hl.get("content-length", "0") or 0), piece)
        with self._lock:
            self._sunk.append({"bodyLength": n, "sha256": h.hexdigest(), "complete": complete})
        if not complete:
            return None, b""
        req["bodyLength"] = n
        req["sha256"] = h.hexdigest()
        return req, bytes(buf)

    def _send_source(self, conn, beh, keep, head_only):
        """The "source" answer: size bytes of the pattern, maybe cut short."""
        size = beh.get("size", 1 << 20)
        chunked = beh.get("chunked", False)
        die = beh.get("die_after")
        piece = beh.get("piece", 65536)
        hdr = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        hdr += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n"
        if not keep:
            hdr += "Connection: close\r\n"
        sent = 0

        def note(complete):
            with self._lock:
                self._sourced.append({"sent": sent, "complete": complete})
            return complete

        try:
            conn.sendall((hdr + "\r\n").encode())
            if head_only:
                return True
            for block in source_bytes(size):
                for i in range(0, len(block), piece):
                    part = block[i:i + piece]
                    if die is not None and sent + len(part) > die:
                        part = part[:die - sent]
                        conn.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked and part else part)
                        conn.shutdown(socket.SHUT_RDWR)
                        return note(False)
                    conn.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                    sent += len(part)
            if chunked:
                conn.sendall(b"0\r\n\r\n")
            return note(True)
        except OSError:
            return note(False)

    def _serve(self, conn):
        conn.settimeout(0.1)
        buf = b""
        carried_proxy = False
        try:
            while not self._stop.is_set():
                req, buf = self._read_request(conn, buf)
                if req is None:
                    return
                health = req["method"] in ("GET", "HEAD") and req["path"] == HEALTH_PATH
                with self._lock:
                    self._requests += 1
                    if not health:
                        self._proxied += 1
                        self._recorded.append(req)
                        if not carried_proxy:
                            self._proxy_connections += 1
                            carried_proxy = True
                    beh = dict(self._behaviour)
                    health_state = self._health
                    if beh["mode"] == "status" and beh.get("times") is not None and not health:
                        # counts down; back to ok when spent
                        if not beh.get("methods") or req["method"] in beh["methods"]:
                            self._behaviour["times"] = beh["times"] - 1
                            if beh["times"] <= 0:
                                self._behaviour = {"mode": "ok"}
                                beh = {"mode": "ok"}
                    flaky_fail = False
                    if beh["mode"] == "flaky" and not health:
                        # fail call n when floor((n+1)r) > floor(n r): every prefix of
                        # the call sequence holds floor(n r) failures, no bunching
                        r = beh.get("fail_ratio", 0.5)
                        n = self._flaky_n
                        self._flaky_n += 1
                        flaky_fail = int((n + 1) * r) > int(n * r)
                keep = self._keep_alive(req)
                if health:
                    if health_state == "hang":
                        self._hang(conn)
                        return
                    st = 200 if health_state == "ok" else 503
                    body = json.dumps({"status": "up" if st == 200 else "down"}, separators=(",", ":")).encode()
                    if not self._send(conn, st, [("Content-Type", "application/json")], body,
                                      keep, req["method"] == "HEAD"):
                        return
                    if not keep:
                        return
                    continue
                mode = beh["mode"]
                if beh.get("methods") and req["method"] not in beh["methods"]:
                    mode = "ok"
                if mode == "hang":
                    self._hang(conn)
                    return
                if mode == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.close()
                    return
                if mode == "close":
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "malformed":
                    conn.sendall(MALFORMED[beh["kind"]])
                    time.sleep(0.05)
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "raw":
                    # these bytes, then close after hold_s (the connection
                    # stays open meanwhile: a reader that waits for more hangs)
                    if beh.get("trickle"):  # a byte a send, 1 ms apart
                        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        for i in range(len(beh["data"])):
                            conn.sendall(beh["data"][i:i + 1])
                            time.sleep(0.001)
                    else:
                        conn.sendall(beh["data"])
                    self._stop.wait(beh.get("hold_s", 0.05))
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "slow":
                    if self._stop.wait(beh.get("delay_ms", 100) / 1000.0):
                        return
                if mode == "source":
                    keep = keep and not req.get("early")
                    sent = self._send_source(conn, beh, keep, req["method"] == "HEAD")
                    if sent and req.get("early"):
                        self._linger(conn)
                    if not sent or not keep:
                        return
                    continue
                status, extra = 200, []
                if mode == "status" or (mode == "flaky" and flaky_fail) or \
                        (mode == "slow" and "status" in beh):  # slow: delay_ms, then that status
                    status = beh.get("status", 503)
                    if beh.get("retry_after") is not None:
                        extra.append(("Retry-After", str(beh["retry_after"])))
                echo = {"method": req["method"], "path": req["path"], "query": req["query"],
                        "headers": [[k, v] for k, v in req["headers"]],
                        "bodyLength": req.get("bodyLength", len(req["body"])), "status": status,
                        "port": self.port}
                if "sha256" in req:
                    echo["sha256"] = req["sha256"]
                body = json.dumps(echo).encode()
                hdrs = [("Content-Type", "application/json")] + extra + list(self.extra_headers)
                if any(k.lower() == "connection" and "close" in v.lower() for k, v in hdrs):
                    keep = False
                if not self._send(conn, status, hdrs, body, keep, req["method"] == "HEAD"):
                    return
                if not keep:
                    return
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    @staticmethod
    def _keep_alive(req):
        conn_tokens = [t.strip().lower() for k, v in req["headers"] if k.lower() == "connection"
                       for t in v.split(",")]
        if req["version"] == "HTTP/1.0":
            return "keep-alive" in conn_tokens
        return "close" not in conn_tokens

    def _linger(self, conn, seconds=3.0):
        """Half-closes, then reads and drops until the peer closes."""
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            return
        end = time.monotonic() + seconds
        while time.monotonic() < end and self._recv(conn):
            pass

    def _hang(self, conn):
        """Never answers; keeps the connection until the peer closes or stop()."""
        while not self._stop.is_set():
            try:
                d = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not d:
                return
            with self._lock:
                self._raw_bytes += len(d)

    def _send(self, conn, status, headers, body, keep, head):
        out = f"HTTP/1.1 {status} {_reason(status)}\r\n".encode()
        names = {k.lower() for k, _ in headers}
        for k, v in headers:
            out += f"{k}: {v}\r\n".encode("latin-1")
        if "content-length" not in names:
            out += f"Content-Length: {len(body)}\r\n".encode()
        if not keep and "connection" not in names:
            out += b"Connection: close\r\n"
        out += b"\r\n"
        if not head:
            out += body
        try:
            conn.sendall(out)
            return True
        except OSError:
            return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--health", default="ok")
    a = ap.parse_args()
    up = FakeUpstream(port=a.port).start()
    up.set_health(a.health)
    if a.mode != "ok":
        apply_command(up, a.mode.split())
    print(f"fake upstream on 127.0.0.1:{up.port}", flush=True)
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            try:
                apply_command(up, words)
            except (ValueError, IndexError) as e:
                print(f"error: {e}", flush=True)
        # stdin closed (e.g. started in the background): serve until killed
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        up.stop()


def apply_command(up, words):
    cmd = words[0]
    if cmd == "stats":
        print(json.dumps(up.snapshot()), flush=True)
    elif cmd == "health":
        up.set_health(words[1])
    elif cmd == "status":
        up.set("status", status=int(words[1]), retry_after=words[2] if len(words) > 2 else None)
    elif cmd == "malformed":
        up.set("malformed", kind=words[1])
    elif cmd == "slow":
        up.set("slow", delay_ms=int(words[1]))
    else:
        up.set(cmd)


if __name__ == "__main__":
    main()
