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
