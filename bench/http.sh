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
. bench/lib.sh
bench_init wrk nginx valgrind taskset

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
    warm_wrk "$port"
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
ratio=$(ratio "$s_rps" "$n_rps" %.3f)
echo "median strata $s_rps req/s p50 $s_p50 us p99 $s_p99 us"
echo "median nginx  $n_rps req/s p50 $n_p50 us p99 $n_p99 us"
echo "ratio strata/nginx requests/s: $ratio"

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
| p50 latency, us (median) | $s_p50 | $n_p50 | $(ratio "$s_p50" "$n_p50") |
| p99 latency, us (median) | $s_p99 | $n_p99 | $(ratio "$s_p99" "$n_p99") |
| instructions per request (callgrind) | $s_ipr | $n_ipr | $(ratio "$s_ipr" "$n_ipr") |
| same, nginx without \`add_header X-Request-Id\` | $s_ipr | $p_ipr | $(ratio "$s_ipr" "$p_ipr") |
<!-- http:end -->
MD
)
docs_block http "$block"
