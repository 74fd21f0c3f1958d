"""Sends N sequential keep-alive requests on one connection and reads each
response in full (Content-Length framed). Used by bench/http.sh for the
callgrind instructions-per-request figure, where only the server is measured.
usage: kaclient.py PORT N [PATH]"""
import socket
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
path = sys.argv[3] if len(sys.argv) > 3 else "/health/live"
req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
s = socket.create_connection(("127.0.0.1", port))
buf = b""
for _ in range(n):
    s.sendall(req)
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].lower()
            i = head.find(b"content-length:")
            length = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) >= 0 else None]) if i >= 0 else 0
            if len(buf) >= end + 4 + length:
                buf = buf[end + 4 + length:]
                break
        d = s.recv(65536)
        if not d:
            sys.exit("server closed the connection")
        buf += d
s.close()
