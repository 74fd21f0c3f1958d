"""Sends N sequential keep-alive requests on one connection and reads each
response in full (Content-Length framed). Used by bench/http.sh and
bench/api.sh for the callgrind instructions-per-request figure, where only
the server is measured, and by bench/api.sh to seed data.

usage: kaclient.py PORT N [PATH]                  GET PATH (default /health/live)
       kaclient.py PORT N PATH --post BODY        POST BODY as application/json
       kaclient.py PORT N --seed-users FILE       POST /api/users N times (emails
                                                  bench-<i>@example.com), ids to FILE

Every answer must be 2xx, else the client stops with an error."""
import argparse
import json
import socket
import sys

ap = argparse.ArgumentParser(usage=__doc__.split("usage: ")[1])
ap.add_argument("port", type=int)
ap.add_argument("n", type=int)
ap.add_argument("path", nargs="?", default=None)
mode = ap.add_mutually_exclusive_group()
mode.add_argument("--post", metavar="BODY")
mode.add_argument("--seed-users", metavar="FILE")
ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one answer")
a = ap.parse_args()


def post(path, body):
    body = body.encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


s = socket.create_connection(("127.0.0.1", a.port), timeout=a.timeout)
buf = b""


def exchange(req):
    """Sends one request, returns (status, body) of its answer."""
    global buf
    s.sendall(req)
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].lower()
            i = head.find(b"content-length:")
            length = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) >= 0 else None]) if i >= 0 else 0
            if len(buf) >= end + 4 + length:
                status = int(head.split(b" ", 2)[1])
                body = buf[end + 4:end + 4 + length]
                buf = buf[end + 4 + length:]
                if not 200 <= status < 300:
                    sys.exit(f"kaclient: answer {status}: {body[:300].decode(errors='replace')}")
                return status, body
        d = s.recv(65536)
        if not d:
            sys.exit("server closed the connection")
        buf += d


if a.seed_users:
    with open(a.seed_users, "w") as out:
        for i in range(a.n):
            _, body = exchange(post("/api/users", json.dumps(
                {"name": f"Bench User {i}", "email": f"bench-{i}@example.com"}, separators=(",", ":"))))
            out.write(json.loads(body)["id"] + "\n")
elif a.post is not None:
    req = post(a.path or "/", a.post)
    for _ in range(a.n):
        exchange(req)
else:
    req = f"GET {a.path or '/health/live'} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    for _ in range(a.n):
        exchange(req)
s.close()
