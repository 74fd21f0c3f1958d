"""Leak and memory-error check: strata under valgrind memcheck serves a mixed
load (good requests, pipelining, errors, timeouts, aborted connections), is
stopped with SIGTERM, and must exit 0 with no error and nothing lost.
Skipped under the sanitizer build (ASan and valgrind do not mix)."""
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import BIN, free_port

REQUESTS = [
    b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /health/ready HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /nope?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HEAD /health/live HTTP/1.1\r\nHost: x\r\n\r\n",
]
BAD = [
    b"GET / HTTP/1.1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
    b"\x00\x01\x02garbage\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
]


@unittest.skipIf("san" in os.path.basename(os.path.dirname(BIN)) or not shutil.which("valgrind"),
                 "valgrind does not run the sanitizer build")
class Memcheck(unittest.TestCase):
    def test_no_leaks_no_errors(self):
        port = free_port()
        tmp = tempfile.mkdtemp()
        vlog = os.path.join(tmp, "valgrind.log")
        cfg = os.path.join(tmp, "c.yaml")
        with open(cfg, "w") as f:
            f.write("http:\n  header_timeout: 1s\n  body_timeout: 1s\n")
        p = subprocess.Popen(["valgrind", "--tool=memcheck", "--leak-check=full",
                              "--show-leak-kinds=definite,indirect,possible", "--errors-for-leak-kinds=definite,indirect,possible",
                              "--error-exitcode=99", f"--log-file={vlog}", BIN, "serve", "--listen",
                              f"127.0.0.1:{port}", "--workers", "2", "--config", cfg],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.1)
            rng = random.Random(7)
            for i in range(300):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                kind = i % 4
                if kind == 0:    # keep-alive run, pipelined
                    s.sendall(b"".join(rng.choice(REQUESTS) for _ in range(5)))
                elif kind == 1:  # a framing error
                    s.sendall(rng.choice(BAD))
                elif kind == 2:  # aborted mid-request
                    s.sendall(b"GET /health/live HTTP/1.1\r\nHo")
                    s.close()
                    continue
                else:
                    s.sendall(rng.choice(REQUESTS))
                s.settimeout(0.5)
                try:
                    while s.recv(65536):
                        pass
                except (socket.timeout, ConnectionResetError):
                    pass
                s.close()
            # one connection left waiting for the header timeout, one idle
            stuck = socket.create_connection(("127.0.0.1", port))
            stuck.sendall(b"GET /he")
            time.sleep(1.5)
            idle = socket.create_connection(("127.0.0.1", port))
            idle.sendall(REQUESTS[0])
            idle.recv(4096)
        finally:
            p.send_signal(signal.SIGTERM)
            rc = p.wait(120)
        with open(vlog) as f:
            report = f.read()
        self.assertEqual(rc, 0, report[-3000:])
        self.assertRegex(report, r"ERROR SUMMARY: 0 errors")
        self.assertTrue("All heap blocks were freed" in report or
                        re.search(r"definitely lost: 0 bytes", report), report[-3000:])


if __name__ == "__main__":
    unittest.main()
