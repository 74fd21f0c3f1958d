# shellcheck shell=bash disable=SC2016,SC2034
# Helpers shared by the bench/*.sh scripts; source it from the repository
# root (the scripts cd there first):
#
#   cd "$(dirname "$0")/.."; . bench/lib.sh; bench_init wrk nginx ...
#
# Conventions: $work is the run's temp dir, every server started is recorded
# in $pids and ended on exit, start_* leave the server's PID in $pid, and
# run_wrk reads $CONNS and $DURATION.

bench_init() { # [tool...]: checks the tools, builds strata if needed, makes $work
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "bench: $tool missing (run scripts/deps.sh bench)" >&2; exit 1; }
  done
  work=$(mktemp -d)
  pids=()
  trap cleanup EXIT
  trap "exit 130" INT; trap "exit 143" TERM # so that cleanup runs
  [ -x bin/strata ] || make
}

# Ends every server this run started (by PID), then removes $work.
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}

# nginx answering every path with 200, BODY as application/json and the
# extra directives (one per argument, e.g. 'add_header X-Cache HIT;').
nginx_conf() { # port body [directive...]
  local port=$1 body=$2; shift 2
  case $body in *"'"* | *'\'* | *'$'*) echo "bench: nginx body must not contain ' \\ or \$" >&2; return 1 ;; esac
  local directives
  directives=$(printf '      %s\n' "$@")
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server_tokens off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$port;
    location / {
      default_type application/json;
$directives
      return 200 '$body';
    }
  }
}
CONF
}

wait_port() { # port [tries of 50 ms, default 200]
  local i
  for ((i = 0; i < ${2:-200}; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: nothing listening on $1" >&2
  [ -s "$work/strata.err" ] && sed 's/^/bench: strata: /' "$work/strata.err" >&2
  return 1
}

# start_* run the server in the background (no subshell, so cleanup knows
# the PID) and leave its PID in $pid.
start_strata() { # port [wrapper...] [-- strata serve arg...]
  local port=$1; shift
  local wrap=() args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do wrap+=("$1"); shift; done
  [ $# -gt 0 ] && { shift; args=("$@"); }
  "${wrap[@]}" ./bin/strata serve --listen "127.0.0.1:$port" --workers 1 --log-level warn "${args[@]}" >/dev/null 2>"$work/strata.err" &
  pid=$!; pids+=("$pid")
}
# Answers NGINX_BODY (default $BODY) with an X-Request-Id header
# (NGINX_PLAIN=1 leaves it out) and the directives in NGINX_HEADERS.
start_nginx() { # port [wrapper...]
  local port=$1; shift
  local d=()
  [ -z "${NGINX_PLAIN:-}" ] && d+=('add_header X-Request-Id $request_id;')
  [ -n "${NGINX_HEADERS:-}" ] && d+=("$NGINX_HEADERS")
  nginx_conf "$port" "${NGINX_BODY:-$BODY}" "${d[@]}"
  "$@" nginx -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" >/dev/null 2>&1 &
  pid=$!; pids+=("$pid")
}
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# wrk prints latency like 45.00us / 1.20ms / 2.00s: normalise to microseconds
to_us() { awk -v v="$1" 'BEGIN{n=v+0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n*1000; else if (v ~ /s$/) print n*1000000; else print n}'; }

# wrk on CPU 1, one thread, $CONNS connections. SCRIPT is a wrk Lua script,
# ARGs are passed to its init(). The full output stays in $work/wrk.out
# (see wrk_counts).
wrk_cmd() { # duration port path [script [arg...]]
  local dur=$1 port=$2 path=$3; shift 3
  local s=()
  [ $# -gt 0 ] && { s=(-s "$1"); shift; }
  taskset -c 1 wrk -t1 -c"$CONNS" -d"$dur" "${s[@]}" --latency "http://127.0.0.1:$port$path" ${1+--} "$@"
}
warm_wrk() { # port [path [script [arg...]]]: one second, output dropped
  local port=$1 path=${2:-/health/live}; shift; [ $# -gt 0 ] && shift
  wrk_cmd 1s "$port" "$path" "$@" >/dev/null
}
run_wrk() { # port [path [script [arg...]]] -> "rps p50us p99us"
  local port=$1 path=${2:-/health/live}; shift; [ $# -gt 0 ] && shift
  local out
  out=$(wrk_cmd "$DURATION" "$port" "$path" "$@")
  printf '%s\n' "$out" >"$work/wrk.out"
  local rps p50 p99
  rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
  p50=$(awk '$1=="50%"{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  echo "$rps $(to_us "$p50") $(to_us "$p99")"
}
# Of the last run_wrk: "requests seconds errors", errors being non-2xx/3xx
# answers plus socket errors (connect, read, write, timeout).
wrk_counts() {
  awk '/ requests in /{n=$1; s=$4+0; if ($4 ~ /ms,$/) s/=1000; else if ($4 ~ /m,$/) s*=60}
       /Non-2xx or 3xx responses:/{e+=$NF}
       /Socket errors:/{gsub(/,/,""); e+=$4+$6+$8+$10}
       END{print n+0, s+0, e+0}' "$work/wrk.out"
}

median() { sort -g | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Total instructions of the server process under callgrind while
# bench/kaclient.py sends N sequential keep-alive requests. KACLIENT args
# choose the path and mode (e.g. /api/orders --post BODY); strata args
# follow a --. If INSTR_AFTER names a command, it runs with the port after
# the client, before the server is stopped (e.g. to wait for async work).
instr() { # strata|nginx N [kaclient arg...] [-- strata arg...] -> $ir
  local who=$1 n=$2; shift 2
  local port=$((SPORT + 10)) out=$work/cg.$who.$n
  local ka=() args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do ka+=("$1"); shift; done
  [ $# -gt 0 ] && { shift; args=("$@"); }
  if [ "$who" = strata ]; then
    start_strata "$port" valgrind --tool=callgrind --callgrind-out-file="$out" -- "${args[@]}"
  else
    start_nginx "$port" valgrind --tool=callgrind --callgrind-out-file="$out"
  fi
  wait_port "$port" 1200
  python3 bench/kaclient.py "$port" "$n" "${ka[@]}"
  [ -n "${INSTR_AFTER:-}" ] && $INSTR_AFTER "$port"
  stop "$pid"
  ir=$(awk '/^summary:/{print $2}' "$out")
}

ratio() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN{printf f, a/b}'; } # a b [printf format]

# Replaces the <!-- NAME:begin -->...<!-- NAME:end --> block of
# docs/benchmarks.md with BLOCK (which carries the markers). Without the
# markers: appends "## HEADER" and the block if HEADER is given, else prints
# the block.
docs_block() { # name block [header]
  local name=$1 block=$2 header=${3:-} doc=docs/benchmarks.md
  if [ -f $doc ] && grep -q "<!-- $name:begin -->" $doc; then
    python3 - "$doc" "$name" "$block" <<'PY'
import re, sys
path, name, block = sys.argv[1:4]
text = open(path).read()
text = re.sub(r"<!-- %s:begin -->.*?<!-- %s:end -->" % (name, name), lambda m: block, text, flags=re.S)
open(path, "w").write(text)
PY
    echo "updated $doc"
  elif [ -f $doc ] && [ -n "$header" ]; then
    printf '\n## %s\n\n%s\n' "$header" "$block" >>$doc
    echo "updated $doc (added the $name block)"
  else
    echo "$block"
  fi
}

# --- reverse proxies (bench/gateway.sh) ---------------------------------------
# Several nginx instances at once each get their own DIR; UPSTREAMS holds the
# pool as "HOST:PORT HOST:PORT ...". The start_* below take the same
# "port [wrapper...]" as start_nginx and leave the PID in $pid.

# DIR/nginx.conf: one worker in the foreground (no master, no daemon), logs
# and temp files in DIR, access log off, keep-alive for 1000000 requests; the
# http block gets the lines given (one per argument).
nginx_dir_conf() { # dir [http line...]
  local dir=$1; shift
  mkdir -p "$dir"
  {
    cat <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server_tokens off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
CONF
    printf '  %s\n' "$@"
    echo '}'
  } >"$dir/nginx.conf"
}
start_nginx_dir() { # dir [wrapper...]
  local dir=$1; shift
  "$@" nginx -c "$dir/nginx.conf" -e "$dir/error.log" >/dev/null 2>"$dir/nginx.err" &
  pid=$!; pids+=("$pid")
}

# A fixed-response upstream: 200 {"status":"up"} (BODY if set) as
# application/json on every path. UPSTREAM_TAG=1 adds "X-Upstream: PORT",
# so a check can see which upstream answered.
start_upstream() { # port [wrapper...]
  local port=$1; shift
  local body=${BODY:-'{"status":"up"}'} tag=""
  case $body in *"'"* | *'\'* | *'$'*) echo "bench: nginx body must not contain ' \\ or \$" >&2; return 1 ;; esac
  # the tag also echoes the forwarding fields the proxy sent, so the sanity
  # pass shows that every proxy does the same header work
  [ -n "${UPSTREAM_TAG:-}" ] && tag="add_header X-Upstream $port always; add_header X-Upstream-Saw 'xff=\$http_x_forwarded_for proto=\$http_x_forwarded_proto fhost=\$http_x_forwarded_host rid=\$http_x_request_id' always;"
  nginx_dir_conf "$work/upstream.$port" \
    "server { listen 127.0.0.1:$port; location / { default_type application/json; $tag return 200 '$body'; } }"
  start_nginx_dir "$work/upstream.$port" "$@"
}

# strata gateway over UPSTREAMS, one worker, access lines off; gateway args
# (e.g. --health-interval 1s) follow a --. Errors go to $work/strata.err,
# which wait_port prints.
start_gateway() { # port [wrapper...] [-- gateway arg...]
  local port=$1; shift
  local wrap=() args=() u
  while [ $# -gt 0 ] && [ "$1" != -- ]; do wrap+=("$1"); shift; done
  [ $# -gt 0 ] && { shift; args=("$@"); }
  for u in $UPSTREAMS; do args+=(--upstream "$u"); done
  "${wrap[@]}" ./bin/strata gateway --listen "127.0.0.1:$port" --workers 1 --log-level warn "${args[@]}" >/dev/null 2>"$work/strata.err" &
  pid=$!; pids+=("$pid")
}

# PEER_HEADERS says what nginx and HAProxy tell the upstream about the
# client, as strata always does: "forwarding" (the default) is the usual
# reverse-proxy setup, the client's Host passed on and X-Forwarded-For
# (appended to), X-Forwarded-Proto and X-Forwarded-Host set; "bare" sets
# none of them (nginx then sends Host: pool). Neither peer is asked for what
# strata adds beyond that (Forwarded, Via, X-Request-Id, traceparent, the
# deadline field), so the peers still send fewer bytes upstream.
peer_headers() { case ${PEER_HEADERS:-forwarding} in forwarding | bare) ;; *) echo "bench: PEER_HEADERS is forwarding or bare, not $PEER_HEADERS" >&2; return 1 ;; esac; }

# nginx as a reverse proxy over UPSTREAMS: one worker, round robin, an
# upstream keep-alive cache of NGINX_KEEPALIVE (default 64) idle connections
# that serve up to 1000000 requests each, HTTP/1.1 upstream with Connection
# cleared, access log off; PEER_HEADERS as above.
start_nginx_proxy() { # port [wrapper...]
  local port=$1; shift
  local servers="" u fwd=""
  peer_headers || return 1
  for u in $UPSTREAMS; do servers+="server $u; "; done
  [ "${PEER_HEADERS:-forwarding}" = forwarding ] &&
    fwd='proxy_set_header Host $http_host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $http_host;'
  nginx_dir_conf "$work/nginx-proxy.$port" \
    "upstream pool { $servers keepalive ${NGINX_KEEPALIVE:-64}; keepalive_requests 1000000; }" \
    "server { listen 127.0.0.1:$port; location / { proxy_pass http://pool; proxy_http_version 1.1; proxy_set_header Connection \"\"; $fwd } }"
  start_nginx_dir "$work/nginx-proxy.$port" "$@"
}

# HAProxy as a reverse proxy over UPSTREAMS, in the foreground (-db): one
# thread, mode http, keep-alive both ways, http-reuse always, round robin,
# HTTP health checks of /health/ready every second (as the gateway's), no
# logging; PEER_HEADERS as for nginx; HAPROXY_BUSY_POLLING=1 adds the
# global busy-polling (never sleep in the poller).
# Errors and warnings go to $work/haproxy.$port/haproxy.err.
start_haproxy() { # port [wrapper...]
  local port=$1; shift
  local dir=$work/haproxy.$port u i=0
  peer_headers || return 1
  mkdir -p "$dir"
  {
    cat <<CFG
global
  nbthread 1
  maxconn 4096
$([ -n "${HAPROXY_BUSY_POLLING:-}" ] && echo "  busy-polling")
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s
frontend fe
  bind 127.0.0.1:$port
  default_backend pool
$([ "${PEER_HEADERS:-forwarding}" = forwarding ] && cat <<'FWD'
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
FWD
)
backend pool
  balance roundrobin
  option httpchk GET /health/ready
  default-server inter 1s
CFG
    for u in $UPSTREAMS; do i=$((i + 1)); echo "  server s$i $u check"; done
  } >"$dir/haproxy.cfg"
  "$@" haproxy -f "$dir/haproxy.cfg" -db >/dev/null 2>"$dir/haproxy.err" &
  pid=$!; pids+=("$pid")
}

# wait_port, and on failure the last lines of the given logs.
wait_port_log() { # port tries [log...]
  local port=$1 tries=$2; shift 2
  wait_port "$port" "$tries" && return 0
  tail -n 20 "$@" 2>/dev/null | sed 's/^/bench: /' >&2
  return 1
}

# Drops PIDs from $pids: once a process has been reaped its PID may be given
# to another process, which cleanup must not signal.
forget() { # pid...
  local p q keep=()
  for p in "${pids[@]}"; do
    for q in "$@"; do [ "$p" = "$q" ] && continue 2; done
    keep+=("$p")
  done
  pids=("${keep[@]}")
}
stop_forget() { stop "$1"; forget "$1"; } # pid

# Runs a command in the background as a recorded process and waits for it,
# so that INT/TERM run cleanup at once (which ends it) instead of after it;
# returns its status.
run_recorded() { # command [arg...]
  local p rc=0
  "$@" &
  p=$!; pids+=("$p")
  wait "$p" || rc=$?
  forget "$p"
  return "$rc"
}

# wrk as run_wrk does (CPU 1, one thread, $CONNS connections), as a recorded
# process; output in $work/wrk.out (see wrk_counts), results in $rps, $p50
# and $p99 (us).
wrk_measure() { # duration port [path]
  local dur=$1 port=$2 path=${3:-/health/live}
  run_recorded taskset -c 1 wrk -t1 -c"$CONNS" -d"$dur" --latency "http://127.0.0.1:$port$path" >"$work/wrk.out"
  rps=$(awk '/^Requests\/sec:/{print $2}' "$work/wrk.out")
  p50=$(to_us "$(awk '$1=="50%"{print $2}' "$work/wrk.out")")
  p99=$(to_us "$(awk '$1=="99%"{print $2}' "$work/wrk.out")")
}

# CPU time of a process so far, in clock ticks (utime + stime).
cpu_ticks() { # pid
  awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"
}

# Total instructions of the server START_FN starts (called as START_FN PORT
# valgrind ...) under callgrind while bench/kaclient.py sends N sequential
# keep-alive requests (kaclient args choose the path). Port: CGPORT, else
# SPORT + 10.
instr_start() { # start_fn N [kaclient arg...] -> $ir
  local start=$1 n=$2; shift 2
  local port=${CGPORT:-$((SPORT + 10))} out=$work/cg.$start.$n
  "$start" "$port" valgrind --tool=callgrind --callgrind-out-file="$out"
  wait_port_log "$port" 1200 "$work/strata.err" "$work"/*/*.err "$work"/*/error.log
  run_recorded python3 bench/kaclient.py "$port" "$n" "$@"
  stop_forget "$pid"
  ir=$(awk '/^summary:/{print $2}' "$out")
  [ -n "$ir" ] || { echo "bench: no callgrind summary in $out" >&2; return 1; }
}
