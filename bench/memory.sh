#!/usr/bin/env bash
# Memory of strata serve: idle RSS, then RSS with CONNS idle keep-alive
# connections (each has served one request, so its per-request arena is
# allocated). Rewrites the memory block of docs/benchmarks.md.
#   bench/memory.sh            CONNS=10000 WORKERS=1
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-10000} WORKERS=${WORKERS:-1} PORT=${PORT:-18581}
[ -x bin/strata ] || make
ulimit -n "$(ulimit -Hn)" # client and server each hold CONNS descriptors
work=$(mktemp -d)
printf 'http:\n  max_connections: %d\n  idle_timeout: 10m\n  header_timeout: 10m\n' $((CONNS + 100)) >"$work/cfg.yaml"
./bin/strata serve --config "$work/cfg.yaml" --listen "127.0.0.1:$PORT" --workers "$WORKERS" --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
out=$(python3 - "$pid" "$PORT" "$CONNS" <<'PY'
import socket, sys, time
pid, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def rss_kb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", port)).close(); break
    except OSError:
        time.sleep(0.05)
# one request first, so the idle figure includes what serving once allocates
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"); s.recv(4096); s.close()
time.sleep(0.5)
idle = rss_kb()
socks = []
req = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
for i in range(n):
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(req)
    data = b""
    while not data.endswith(b'{"status":"up"}'):
        data += c.recv(4096)
    socks.append(c)
time.sleep(0.5)
busy = rss_kb()
print(idle, busy, (busy - idle) * 1024 / n)
PY
)
read -r idle busy per <<<"$out"
printf 'idle RSS %d KiB; with %d keep-alive connections %d KiB; %.0f bytes per connection\n' "$idle" "$CONNS" "$busy" "$per"
block=$(cat <<MD
<!-- memory:begin -->
Measured $(date -u +%Y-%m-%dT%H:%MZ), \`bench/memory.sh\` (CONNS=$CONNS WORKERS=$WORKERS): RSS from /proc/PID/status.

| | value | target |
|---|---|---|
| idle RSS (after one request) | $idle KiB | < 10 MB |
| RSS with $CONNS idle keep-alive connections | $busy KiB | |
| per idle keep-alive connection | $(printf '%.0f' "$per") bytes | < 10 KB |
<!-- memory:end -->
MD
)
python3 - docs/benchmarks.md "$block" <<'PY'
import re, sys
path, block = sys.argv[1], sys.argv[2]
text = open(path).read()
text = re.sub(r"<!-- memory:begin -->.*?<!-- memory:end -->", lambda m: block, text, flags=re.S)
open(path, "w").write(text)
PY
