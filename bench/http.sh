#!/usr/bin/env bash
# strata serve vs nginx on the same fixed JSON response, side by side.
#
#   bench/http.sh            (or: make bench)
#
# 1. Throughput and latency: wrk against each server in alternating rounds
#    (strata, nginx, strata, nginx, ...), the server pinned to CPU 0 and wrk
#    to CPU 1, one worker each, access logs off on both. Prints requests/s
#    and p50/p99 per round, the medians and the ratio strata/nginx.
# 2. Instructions per request under callgrind, which machine noise does not
#    move: each server answers N1 and then N2 sequential keep-alive requests
#    in two separate runs; (Ir(N2) - Ir(N1)) / (N2 - N1).
#
# The results replace the block between the http markers in
# docs/benchmarks.md. Knobs: ROUNDS=5 DURATION=10s CONNS=64 N1=2000 N2=12000.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-10s} CONNS=${CONNS:-64}
N1=${N1:-2000} N2=${N2:-12000}
BODY='{"status":"up"}'
SPORT=${SPORT:-18481} NPORT=${NPORT:-18482}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

for tool in wrk nginx valgrind taskset; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing (run scripts/deps.sh bench)" >&2; exit 1; }
done
[ -x bin/strata ] || make

nginx_conf() { # port [plain]: plain leaves out the request id header
  local reqid='add_header X-Request-Id $request_id;'
  [ "${2:-}" = plain ] && reqid=''
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
    listen 127.0.0.1:$1;
    location / {
      default_type application/json;
      $reqid
      return 200 '$BODY';
    }
  }
}
CONF
}

wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: nothing listening on $1" >&2; return 1
}

# start_* leave the server's PID in $pid (no subshell, so cleanup knows it)
start_strata() { # port [wrapper...]
  local port=$1; shift
  "$@" ./bin/strata serve --listen "127.0.0.1:$port" --workers 1 --log-level warn >/dev/null 2>"$work/strata.err" &
  pid=$!; pids+=("$pid")
}
start_nginx() { # port [wrapper...]; NGINX_PLAIN=1 drops the request id header
  local port=$1; shift
  nginx_conf "$port" "${NGINX_PLAIN:+plain}"
  "$@" nginx -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" >/dev/null 2>&1 &
  pid=$!; pids+=("$pid")
}
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# wrk prints latency like 45.00us / 1.20ms / 2.00s: normalise to microseconds
to_us() { awk -v v="$1" 'BEGIN{n=v+0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n*1000; else if (v ~ /s$/) print n*1000000; else print n}'; }

run_wrk() { # port -> "rps p50us p99us"
  local out
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$1/health/live")
  local rps p50 p99
  rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
  p50=$(awk '$1=="50%"{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  echo "$rps $(to_us "$p50") $(to_us "$p99")"
}

median() { sort -g | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "== same bytes? (headers differ only in Server, Date and the request id value)"
start_strata "$SPORT" taskset -c 0; sp=$pid; start_nginx "$NPORT" taskset -c 0; np=$pid
wait_port "$SPORT"; wait_port "$NPORT"
curl -si "http://127.0.0.1:$SPORT/health/live"; echo
curl -si "http://127.0.0.1:$NPORT/health/live"; echo
stop "$sp"; stop "$np"

declare -a S_RPS S_P50 S_P99 N_RPS N_P50 N_P99
table=""
for r in $(seq "$ROUNDS"); do
  for who in strata nginx; do
    if [ $who = strata ]; then start_strata "$SPORT" taskset -c 0; port=$SPORT
    else start_nginx "$NPORT" taskset -c 0; port=$NPORT; fi
    wait_port "$port"
    taskset -c 1 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$port/health/live" >/dev/null # warm-up
    read -r rps p50 p99 < <(run_wrk "$port")
    stop "$pid"
    printf 'round %d %-6s %10.0f req/s  p50 %7.1f us  p99 %7.1f us\n' "$r" "$who" "$rps" "$p50" "$p99"
    table+="| $r | $who | $rps | $p50 | $p99 |"$'\n'
    if [ $who = strata ]; then S_RPS+=("$rps"); S_P50+=("$p50"); S_P99+=("$p99")
    else N_RPS+=("$rps"); N_P50+=("$p50"); N_P99+=("$p99"); fi
  done
done
s_rps=$(printf '%s\n' "${S_RPS[@]}" | median); n_rps=$(printf '%s\n' "${N_RPS[@]}" | median)
s_p50=$(printf '%s\n' "${S_P50[@]}" | median); n_p50=$(printf '%s\n' "${N_P50[@]}" | median)
s_p99=$(printf '%s\n' "${S_P99[@]}" | median); n_p99=$(printf '%s\n' "${N_P99[@]}" | median)
ratio=$(awk -v a="$s_rps" -v b="$n_rps" 'BEGIN{printf "%.3f", a/b}')
echo "median strata $s_rps req/s p50 $s_p50 us p99 $s_p99 us"
echo "median nginx  $n_rps req/s p50 $n_p50 us p99 $n_p99 us"
echo "ratio strata/nginx requests/s: $ratio"

instr() { # strata|nginx N -> sets $ir to the total Ir of the server process
  local who=$1 n=$2 port=$((SPORT + 10)) out=$work/cg.$1.$2
  if [ "$who" = strata ]; then
    start_strata "$port" valgrind --tool=callgrind --callgrind-out-file="$out"
  else
    start_nginx "$port" valgrind --tool=callgrind --callgrind-out-file="$out"
  fi
  wait_port "$port"
  python3 bench/kaclient.py "$port" "$n"
  stop "$pid"
  ir=$(awk '/^summary:/{print $2}' "$out")
}
echo "== callgrind: instructions per keep-alive request ($N1 and $N2 requests)"
instr strata "$N1"; s1=$ir; instr strata "$N2"; s2=$ir
instr nginx "$N1"; n1=$ir; instr nginx "$N2"; n2=$ir
NGINX_PLAIN=1 instr nginx "$N1"; p1=$ir; NGINX_PLAIN=1 instr nginx "$N2"; p2=$ir
s_ipr=$(( (s2 - s1) / (N2 - N1) )); n_ipr=$(( (n2 - n1) / (N2 - N1) )); p_ipr=$(( (p2 - p1) / (N2 - N1) ))
echo "strata: $s_ipr instructions/request   nginx: $n_ipr   nginx without the request id: $p_ipr"

cpu=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)
block=$(cat <<MD
<!-- http:begin -->
Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($cpu), nginx $(nginx -v 2>&1 | sed 's/.*\///'), wrk -t1 -c$CONNS -d$DURATION,
$ROUNDS alternating rounds, each server pinned to CPU 0 with one worker, wrk on CPU 1, access logs off on both.
Command: \`bench/http.sh\` (ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS N1=$N1 N2=$N2).

| round | server | requests/s | p50 (us) | p99 (us) |
|---|---|---|---|---|
$table
| | strata | nginx | strata/nginx |
|---|---|---|---|
| requests/s (median) | $s_rps | $n_rps | **$ratio** |
| p50 latency, us (median) | $s_p50 | $n_p50 | $(awk -v a="$s_p50" -v b="$n_p50" 'BEGIN{printf "%.2f", a/b}') |
| p99 latency, us (median) | $s_p99 | $n_p99 | $(awk -v a="$s_p99" -v b="$n_p99" 'BEGIN{printf "%.2f", a/b}') |
| instructions per request (callgrind) | $s_ipr | $n_ipr | $(awk -v a="$s_ipr" -v b="$n_ipr" 'BEGIN{printf "%.2f", a/b}') |
| same, nginx without \`add_header X-Request-Id\` | $s_ipr | $p_ipr | $(awk -v a="$s_ipr" -v b="$p_ipr" 'BEGIN{printf "%.2f", a/b}') |
<!-- http:end -->
MD
)
doc=docs/benchmarks.md
if [ -f $doc ] && grep -q '<!-- http:begin -->' $doc; then
  python3 - "$doc" "$block" <<'PY'
import re, sys
path, block = sys.argv[1], sys.argv[2]
text = open(path).read()
text = re.sub(r"<!-- http:begin -->.*?<!-- http:end -->", lambda m: block, text, flags=re.S)
open(path, "w").write(text)
PY
  echo "updated $doc"
else
  echo "$block"
fi
