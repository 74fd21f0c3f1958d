#!/usr/bin/env bash
# strata gateway vs nginx vs HAProxy as reverse proxies over the same two
# upstreams, side by side in one run.
#
#   bench/gateway.sh
#
# Upstreams: two nginx instances answering every path with 200
# {"status":"up"} (application/json, access log off, keepalive_requests
# 1000000), both pinned to CPU 1 together with wrk, so that CPU 0 holds the
# proxy alone. The same two serve all three proxies.
# Proxies, one at a time, pinned to CPU 0, one worker/thread each, keep-alive
# to the upstreams, round robin over both, no access logs:
#   strata   bin/strata gateway --workers 1 --log-level warn
#            --health-interval 1s --busy-poll BUSY_POLL (100us), its
#            default policies on (active health
#            checks, passive ejection, breakers, retries with a budget,
#            timeouts, metrics, X-Forwarded-* / X-Request-Id / traceparent).
#   nginx    upstream block with keepalive NGINX_KEEPALIVE (64) and
#            keepalive_requests 1000000, proxy_http_version 1.1, Connection
#            cleared, worker_processes 1 (master_process off).
#   haproxy  haproxy -db (a child of this script), nbthread 1, mode http,
#            option http-keep-alive, http-reuse always, balance roundrobin,
#            HTTP checks of /health/ready every 1 s (as strata's), no log,
#            busy-polling when strata busy-polls (BUSY_POLL not 0s): each
#            proxy's own answer to the cost of waking an idle vCPU (nginx
#            has none).
#   Both peers forward the client as a usual reverse-proxy setup does and as
#   strata always does: the client's Host kept, X-Forwarded-For appended to,
#   X-Forwarded-Proto and X-Forwarded-Host set (nginx: proxy_set_header;
#   HAProxy: option forwardfor, http-request set-header). PEER_HEADERS=bare
#   drops that (the comparison of the runs before 2026-11-28). Strata sends
#   more still (Forwarded, Via, X-Request-Id, traceparent, its deadline).
# First a sanity pass: with upstreams that tag their answers (X-Upstream:
# PORT, for this check only) each proxy must answer 200 from both upstreams;
# one response of each is printed.
# 1. Throughput and latency: wrk -t1 -cN -dDURATION --latency on PROXY_PATH
#    for N in CONNS_LIST, in alternating rounds (strata, nginx, haproxy;
#    round 2 starts with nginx, round 3 with haproxy, ...), each proxy
#    started fresh and warmed for 1 s. Prints requests/s, p50, p99, the
#    proxy's CPU use and the upstream connections it closed (new
#    TIME-WAITs) per round, the medians and their ratios, and the goal's
#    figures: per round, strata against that round's faster peer, and the
#    median of those paired ratios.
# 2. Instructions per proxied keep-alive request of the proxy process alone
#    under callgrind (nginx with master_process off, haproxy -db nbthread 1),
#    without busy polling in strata and HAProxy: under callgrind the client
#    is slow, and a spin would count the polling while it waits as work:
#    bench/kaclient.py sends N1 and then N2 sequential requests on one
#    connection in two separate runs; (Ir(N2) - Ir(N1)) / (N2 - N1).
#
# The results replace the block between the gateway markers in
# docs/benchmarks.md. Knobs: ROUNDS=7 DURATION=8s CONNS_LIST="50 200"
# N1=2000 N2=12000 PROXY_PATH=/ NGINX_KEEPALIVE=64 PEER_HEADERS=forwarding
# BUSY_POLL=100us (0s: neither strata nor HAProxy busy-polls), ports SPORT=18521
# NPORT=18522 HPORT=18523 UPORT1=18524 UPORT2=18525 (callgrind: SPORT+10).
# At the defaults it takes about 7 minutes (6.3 of them wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-7} DURATION=${DURATION:-8s} CONNS_LIST=${CONNS_LIST:-50 200}
N1=${N1:-2000} N2=${N2:-12000} PROXY_PATH=${PROXY_PATH:-/}
NGINX_KEEPALIVE=${NGINX_KEEPALIVE:-64} BUSY_POLL=${BUSY_POLL:-100us}
SPORT=${SPORT:-18521} NPORT=${NPORT:-18522} HPORT=${HPORT:-18523}
UPORT1=${UPORT1:-18524} UPORT2=${UPORT2:-18525}
BODY='{"status":"up"}'
UPSTREAMS="127.0.0.1:$UPORT1 127.0.0.1:$UPORT2"
GATEWAY_ARGS=(--health-interval 1s)
. bench/lib.sh
bench_init wrk nginx haproxy valgrind taskset curl python3 ss
case $PROXY_PATH in /health/* | /metrics*) echo "bench: the gateway answers $PROXY_PATH itself, choose a proxied path" >&2; exit 1 ;; esac

PROXIES=(strata nginx haproxy)
# busy polling (SPIN=1) in the throughput rounds only, not under callgrind
SPIN=1
busy_poll_on() { ! [[ $BUSY_POLL =~ ^0+(us|ms|s)?$ ]]; } # 0, 0s, 0us, 0ms: off
spinning() { [ "$SPIN" = 1 ] && busy_poll_on; }
start_strata_gateway() { # port [wrapper...]
  local spin=()
  spinning && spin=(--busy-poll "$BUSY_POLL")
  start_gateway "$@" -- "${GATEWAY_ARGS[@]}" "${spin[@]}"
}
start_haproxy_peer() { # port [wrapper...]
  if spinning; then HAPROXY_BUSY_POLLING=1 start_haproxy "$@"; else start_haproxy "$@"; fi
}
start_fn() { case $1 in strata) echo start_strata_gateway ;; nginx) echo start_nginx_proxy ;; haproxy) echo start_haproxy_peer ;; esac; }
port_of() { case $1 in strata) echo "$SPORT" ;; nginx) echo "$NPORT" ;; haproxy) echo "$HPORT" ;; esac; }
logs() { echo "$work/strata.err" "$work"/*/*.err "$work"/*/error.log; }
up() { # port: wait for a listener, print the logs if none comes
  # shellcheck disable=SC2046
  wait_port_log "$1" 200 $(logs)
}
start_upstreams() { # [tag]
  UPSTREAM_TAG=${1:-} start_upstream "$UPORT1" taskset -c 1; u1=$pid
  UPSTREAM_TAG=${1:-} start_upstream "$UPORT2" taskset -c 1; u2=$pid
  up "$UPORT1"; up "$UPORT2"
}
hz=$(getconf CLK_TCK)
# Connections to the upstreams in TIME-WAIT, i.e. closed by the proxy (the
# side that closes first keeps TIME-WAIT): a pool that keeps fewer idle
# connections than it has requests in flight opens and closes some per request.
tw_upstream() { ss -Htan state time-wait "( dport = :$UPORT1 or dport = :$UPORT2 )" | awk '{print $3, $4}' | sort; }

# --- sanity: 200 from both upstreams through every proxy ---------------------
echo "== sanity: each proxy answers 200 through both upstreams (tagged X-Upstream for this check only)"
start_upstreams 1
for who in "${PROXIES[@]}"; do
  port=$(port_of "$who")
  "$(start_fn "$who")" "$port" taskset -c 0; up "$port"
  echo "-- $who on :$port"
  answer=$(curl -si --max-time 5 "http://127.0.0.1:$port$PROXY_PATH" | tr -d '\r')
  printf '%s\n\n' "$answer"
  # every proxy tells the upstream about the client (PEER_HEADERS=bare: the peers do not)
  if [ "$who" = strata ] || [ "${PEER_HEADERS:-forwarding}" = forwarding ]; then
    grep -qi '^x-upstream-saw: xff=127.0.0.1 proto=http fhost=127.0.0.1:' <<<"$answer" ||
      { echo "bench: $who does not send X-Forwarded-For/-Proto/-Host upstream" >&2; exit 1; }
  fi
  seen="" bad=0
  for _ in 1 2 3 4 5 6; do
    read -r code tag < <(curl -s -o /dev/null --max-time 5 -w '%{http_code} %header{x-upstream}\n' "http://127.0.0.1:$port$PROXY_PATH" || echo "000 -")
    [ "$code" = 200 ] || bad=$((bad + 1))
    seen+="$tag"$'\n'
  done
  seen=$(sort -u <<<"${seen%$'\n'}" | tr '\n' ' ')
  echo "$who: 6 requests, $((6 - bad)) answered 200, upstreams seen: $seen"
  if [ "$bad" != 0 ] || [ "$seen" != "$UPORT1 $UPORT2 " ]; then
    echo "bench: $who does not answer 200 through both upstreams" >&2; exit 1
  fi
  stop_forget "$pid"
done
stop_forget "$u1"; stop_forget "$u2"
start_upstreams # the measured ones: untagged

# --- throughput rounds ---------------------------------------------------------
declare -A RPS P50 P99 CPU
table=""
declare -A RRPS RP99 # per round: "who conns round"
for r in $(seq "$ROUNDS"); do
  # each round starts with another proxy: a drift of the machine within a
  # round (the host's other tenants) falls on each in turn
  order=("${PROXIES[@]:$(((r - 1) % 3))}" "${PROXIES[@]:0:$(((r - 1) % 3))}")
  for CONNS in $CONNS_LIST; do
    for who in "${order[@]}"; do
      port=$(port_of "$who")
      "$(start_fn "$who")" "$port" taskset -c 0; up "$port"
      wrk_measure 1s "$port" "$PROXY_PATH" # warm-up
      tw0=$(tw_upstream)
      c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
      wrk_measure "$DURATION" "$port" "$PROXY_PATH"
      c1=$(cpu_ticks "$pid"); t1=$(date +%s.%N)
      closed=$(comm -13 <(echo "$tw0") <(tw_upstream) | wc -l)
      read -r reqs _ errs < <(wrk_counts)
      stop_forget "$pid"
      closed_pct=$(awk -v c="$closed" -v n="$reqs" 'BEGIN{printf "%.1f", n ? 100*c/n : 0}')
      cpu=$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v hz="$hz" 'BEGIN{printf "%.0f", 100*(b-a)/hz/(e-s)}')
      note=""
      [ "$errs" != 0 ] && { echo "bench: warning: $who: $errs of $reqs answers were errors (non-2xx or socket)" >&2; note=" **$errs errors**"; }
      printf 'round %d c=%-4s %-8s %10.0f req/s  p50 %8.1f us  p99 %8.1f us  proxy CPU %3s%%  upstream conns closed %6s (%s%% of requests)%s\n' \
        "$r" "$CONNS" "$who" "$rps" "$p50" "$p99" "$cpu" "$closed" "$closed_pct" "$note"
      table+="| $r | $CONNS | $who | $rps | $p50 | $p99 | $cpu% | $closed ($closed_pct%)$note |"$'\n'
      k="$who $CONNS"
      RPS[$k]+="$rps"$'\n'; P50[$k]+="$p50"$'\n'; P99[$k]+="$p99"$'\n'; CPU[$k]+="$cpu"$'\n'
      RRPS[$k $r]=$rps; RP99[$k $r]=$p99
    done
  done
done

declare -A MRPS MP50 MP99 MCPU
summary="" ratios="" paired=""
for CONNS in $CONNS_LIST; do
  for who in "${PROXIES[@]}"; do
    k="$who $CONNS"
    MRPS[$k]=$(median <<<"${RPS[$k]%$'\n'}"); MP50[$k]=$(median <<<"${P50[$k]%$'\n'}")
    MP99[$k]=$(median <<<"${P99[$k]%$'\n'}"); MCPU[$k]=$(median <<<"${CPU[$k]%$'\n'}")
    printf 'median c=%-4s %-8s %10s req/s  p50 %8s us  p99 %8s us  proxy CPU %s%%\n' "$CONNS" "$who" "${MRPS[$k]}" "${MP50[$k]}" "${MP99[$k]}" "${MCPU[$k]}"
    summary+="| $CONNS | $who | ${MRPS[$k]} | ${MP50[$k]} | ${MP99[$k]} | ${MCPU[$k]}% |"$'\n'
  done
  peer=nginx
  awk -v h="${MRPS[haproxy $CONNS]}" -v n="${MRPS[nginx $CONNS]}" 'BEGIN{exit !(h > n)}' && peer=haproxy
  k="strata $CONNS"
  r_n=$(ratio "${MRPS[$k]}" "${MRPS[nginx $CONNS]}" %.3f); r_h=$(ratio "${MRPS[$k]}" "${MRPS[haproxy $CONNS]}" %.3f)
  r_f=$(ratio "${MRPS[$k]}" "${MRPS[$peer $CONNS]}" %.3f); p99_f=$(ratio "${MP99[$k]}" "${MP99[$peer $CONNS]}" %.3f)
  echo "c=$CONNS ratio of medians: strata/nginx $r_n  strata/haproxy $r_h  strata/faster peer ($peer) $r_f  p99 strata/$peer $p99_f"
  ratios+="| $CONNS | $r_n | $r_h | $peer | $r_f | $p99_f |"$'\n'
  # Paired: in each round, strata against the faster peer of that round
  # (measured seconds apart), then the median of those ratios: slow drift
  # of a shared machine cancels out of each pair.
  pr="" pp=""
  for r in $(seq "$ROUNDS"); do
    s_r=${RRPS[strata $CONNS $r]} n_r=${RRPS[nginx $CONNS $r]} h_r=${RRPS[haproxy $CONNS $r]}
    rp=nginx; awk -v h="$h_r" -v n="$n_r" 'BEGIN{exit !(h > n)}' && rp=haproxy
    pr+="$(ratio "$s_r" "${RRPS[$rp $CONNS $r]}" %.3f)"$'\n'
    pp+="$(ratio "${RP99[strata $CONNS $r]}" "${RP99[$rp $CONNS $r]}" %.3f)"$'\n'
  done
  pr_m=$(median <<<"${pr%$'\n'}"); pp_m=$(median <<<"${pp%$'\n'}")
  echo "c=$CONNS per-round strata/faster peer: $(echo ${pr}) -> median $pr_m (goal >= 1.0); p99 $(echo ${pp}) -> median $pp_m (goal <= 1.0)"
  paired+="| $CONNS | $(echo ${pr} | sed 's/ /, /g') | **$pr_m** | $(echo ${pp} | sed 's/ /, /g') | **$pp_m** |"$'\n'
done

echo "(throughput rounds took $SECONDS s so far)"

# --- instructions per proxied request --------------------------------------------
t_cg=$SECONDS
echo "== callgrind: instructions per proxied keep-alive request, proxy process alone ($N1 and $N2 requests)"
declare -A IPR
SPIN=0
for who in "${PROXIES[@]}"; do
  fn=$(start_fn "$who")
  instr_start "$fn" "$N1" "$PROXY_PATH"; a=$ir
  instr_start "$fn" "$N2" "$PROXY_PATH"; b=$ir
  IPR[$who]=$(( (b - a) / (N2 - N1) ))
  echo "$who: Ir($N1) $a  Ir($N2) $b  -> ${IPR[$who]} per request"
done
echo "(callgrind took $((SECONDS - t_cg)) s)"
echo "strata: ${IPR[strata]} instructions/request   nginx: ${IPR[nginx]} (issue: about 21,000)   haproxy: ${IPR[haproxy]} (issue: about 31,000)"
fewer=no; [ "${IPR[strata]}" -lt "${IPR[nginx]}" ] && fewer=yes

# --- report ----------------------------------------------------------------------
cpu_model=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)
block=$(cat <<MD
<!-- gateway:begin -->
Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($cpu_model), $(./bin/strata --version), nginx $(nginx -v 2>&1 | sed 's/.*\///'), HAProxy $(haproxy -v | awk 'NR==1{print $3}'),
wrk -t1 -cN -d$DURATION --latency on \`$PROXY_PATH\`, $ROUNDS alternating rounds (strata, nginx, haproxy; each round starts one further along) at each N, each proxy started fresh, warmed 1 s and pinned to CPU 0 with one worker/thread;
wrk and the two upstream nginx instances on CPU 1. Proxy CPU = the proxy's user+system time over the wrk run (100% = CPU 0 saturated);
upstream connections closed = new TIME-WAIT sockets towards the upstreams during the run (the proxy closed them: its pool kept fewer idle connections than it had requests in flight).
$(if [ "${PEER_HEADERS:-forwarding}" = forwarding ]; then echo "nginx and HAProxy forward the client as strata does (Host kept, X-Forwarded-For appended to, X-Forwarded-Proto and X-Forwarded-Host set); strata also sends Forwarded, Via, X-Request-Id, traceparent and its deadline field."; else echo "PEER_HEADERS=bare: nginx and HAProxy send the upstream no forwarding fields (nginx sends Host: pool); strata sends X-Forwarded-*, Forwarded, Via, X-Request-Id, traceparent and its deadline field."; fi)
Command: \`bench/gateway.sh\` (ROUNDS=$ROUNDS DURATION=$DURATION CONNS_LIST="$CONNS_LIST" N1=$N1 N2=$N2 PROXY_PATH=$PROXY_PATH NGINX_KEEPALIVE=$NGINX_KEEPALIVE PEER_HEADERS=${PEER_HEADERS:-forwarding} BUSY_POLL=$BUSY_POLL).
$(if busy_poll_on; then echo "Busy polling in the throughput rounds: strata --busy-poll $BUSY_POLL (adaptive), HAProxy busy-polling (nginx has no such setting); both off under callgrind."; else echo "No busy polling (BUSY_POLL=$BUSY_POLL)."; fi)

| round | connections | proxy | requests/s | p50 (us) | p99 (us) | proxy CPU | upstream connections closed (% of requests) |
|---|---|---|---|---|---|---|---|
$table
| connections | proxy | requests/s (median) | p50, us (median) | p99, us (median) | proxy CPU (median) |
|---|---|---|---|---|---|
$summary
Ratios of the medians above:

| connections | strata/nginx requests/s | strata/haproxy requests/s | faster peer | strata/faster peer requests/s | strata/faster peer p99 |
|---|---|---|---|---|---|
$ratios
The goal, paired by round (each round's strata run against the faster peer of the same round, seconds apart; the median of those ratios, so that the machine's slow drift cancels out of each pair):

| connections | strata/faster peer requests/s, per round | median (goal ≥ 1.0) | strata/faster peer p99, per round | median (goal ≤ 1.0) |
|---|---|---|---|---|
$paired
| instructions per proxied keep-alive request (callgrind, proxy process alone) | strata | nginx | HAProxy |
|---|---|---|---|
| this run | **${IPR[strata]}** | ${IPR[nginx]} | ${IPR[haproxy]} |
| strata / peer | | $(ratio "${IPR[strata]}" "${IPR[nginx]}") | $(ratio "${IPR[strata]}" "${IPR[haproxy]}") |
| the gateway issue's figure for this machine | | about 21,000 | about 31,000 |

Fewer instructions per request than nginx: **$fewer**. The counts include the health checks that fall within the longer run (strata and HAProxy check both upstreams every second, some 30,000–40,000 instructions a second under callgrind; nginx has no active checks): a few instructions per request.
<!-- gateway:end -->
MD
)
docs_block gateway "$block" 'Gateway (`bench/gateway.sh`)'
echo "bench/gateway.sh finished in $SECONDS s"
