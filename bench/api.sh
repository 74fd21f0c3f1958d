#!/usr/bin/env bash
# The API under load: strata serve on three routes, and nginx returning the
# same bytes as the cached read, side by side in one run.
#
#   bench/api.sh
#
# Cases, run in alternating rounds (hit, nginx, miss, order, hit, ...), the
# server pinned to CPU 0 with one worker (--workers 1 --log-level warn) and
# wrk on CPU 1:
#   hit    GET /api/users/:id answered from the cache (X-Cache: HIT): one
#          user, read once before wrk so it is cached.
#   nginx  the same body, Content-Type, X-Request-Id ($request_id) and
#          X-Cache: HIT from nginx (`return 200`), for the ratio hit/nginx.
#   miss   GET /api/users/:id read from SQLite: USERS seeded users,
#          cache.max_entries 1 and bench/users_walk.lua walking their ids, so
#          almost every read misses.
#   order  POST /api/orders with a fixed valid body (bench/post_json.lua),
#          durable commits (storage.synchronous full, the default): group
#          commit runs the writes of one loop turn in one transaction, one
#          fsync. Each round starts from the same seeded data.
# The cache hit/miss share of each run is read from /metrics, the orders
# committed from orders.db. Then:
#   - how commits were batched: one more order run under strace, counting
#     the fsyncs of orders.db-wal (BATCH_TRACE=0 skips it);
#   - instructions per request under callgrind for hit, nginx and order:
#     (Ir(N2) - Ir(N1)) / (N2 - N1) over one keep-alive connection
#     (bench/kaclient.py), as in bench/http.sh. For order, PN1/PN2 requests.
#
# The results replace the block between the api markers in
# docs/benchmarks.md. Knobs: ROUNDS=3 DURATION=8s CONNS=64 USERS=5000
# N1=2000 N2=12000 PN1=500 PN2=2500 BATCH_TRACE=1. Data lives under $TMPDIR
# (default /tmp): it must be a disk, not tmpfs, for the fsyncs to cost.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-8s} CONNS=${CONNS:-64}
USERS=${USERS:-5000}
N1=${N1:-2000} N2=${N2:-12000} PN1=${PN1:-500} PN2=${PN2:-2500}
BATCH_TRACE=${BATCH_TRACE:-1}
SPORT=${SPORT:-18491} NPORT=${NPORT:-18492}
SEEDPORT=$((SPORT + 20))
. bench/lib.sh
bench_init wrk nginx valgrind taskset curl
[ "$BATCH_TRACE" = 1 ] && ! command -v strace >/dev/null && { echo "bench: strace missing, batching not traced" >&2; BATCH_TRACE=0; }

fstype=$(df --output=fstype "$work" | tail -1)
[ "$fstype" = tmpfs ] && echo "bench: warning: $work is on tmpfs, fsync costs nothing there (set TMPDIR to a disk)" >&2

metrics() { curl -sf --max-time 10 "http://127.0.0.1:$1/metrics"; } # port
mval() { awk -v k="$2" '$1==k{v=$2} END{print v+0}' <<<"$1"; }      # scrape name{labels}
# The cache share of users reads between two scrapes: "HIT 99.9%".
cache_share() { # before after HIT|MISS
  local h m
  h=$(( $(mval "$2" 'strata_cache_hits_total{cache="users"}') - $(mval "$1" 'strata_cache_hits_total{cache="users"}') ))
  m=$(( $(mval "$2" 'strata_cache_misses_total{cache="users"}') - $(mval "$1" 'strata_cache_misses_total{cache="users"}') ))
  awk -v h="$h" -v m="$m" -v w="$3" 'BEGIN{t=h+m; if (!t) {print w, "n/a"; exit} printf "%s %.1f%%\n", w, 100*(w=="HIT"?h:m)/t}'
}
bus_backlog() { # scrape -> outbox rows not yet relayed + events not yet consumed (0 = idle)
  awk '/^strata_bus_outbox_backlog |^strata_bus_subscription_lag\{/{s+=$2} END{print s+0}' <<<"$1"
}
wait_bus_idle() { # port: until every event is relayed and consumed (at most 2 minutes)
  local i
  for ((i = 0; i < 600; i++)); do
    [ "$(bus_backlog "$(metrics "$1")")" = 0 ] && return 0
    sleep 0.2
  done
  echo "bench: the bus did not catch up" >&2
}
orders_rows() { # data dir -> rows in orders (also while strata runs: WAL readers do not block)
  python3 -c 'import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=10)
print(db.execute("SELECT count(*) FROM orders").fetchone()[0])' "$1/orders.db"
}
fresh() { rm -rf "$2"; cp -a "$1" "$2"; } # seeded dir -> copy

# --- seed: one user (hit, order) and USERS users (miss) ---------------------
printf 'storage:\n  synchronous: normal\n' >"$work/seed.yaml" # seeding is not measured
printf 'cache:\n  max_entries: 1\n' >"$work/miss.yaml"
./bin/strata check "$work/seed.yaml" >/dev/null && ./bin/strata check "$work/miss.yaml" >/dev/null
seed() { # dir n
  start_strata "$SEEDPORT" -- --data "$1" --config "$work/seed.yaml"
  wait_port "$SEEDPORT"
  python3 bench/kaclient.py "$SEEDPORT" "$2" --seed-users "$1.ids" --timeout 30
  stop "$pid"
}
t0=$(date +%s.%N)
seed "$work/base" 1; USER_ID=$(head -1 "$work/base.ids")
seed "$work/miss" "$USERS"
echo "seeded 1 + $USERS users in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
fresh "$work/base" "$work/hit"
USER_PATH=/api/users/$USER_ID
ORDER_BODY='{"userId":"'$USER_ID'","items":[{"sku":"BOOK-0001","quantity":2,"unitPriceCents":1250},{"sku":"PEN-0042","quantity":1,"unitPriceCents":199}]}'
USERS_ARGS=(bench/users_walk.lua "$work/miss.ids")
ORDER_ARGS=(bench/post_json.lua "$ORDER_BODY")

# --- the cached answer, and nginx returning the same bytes ------------------
warm_user() { # port: read the user until it is a cache hit
  local i
  for i in 1 2 3; do
    curl -sfi --max-time 5 "http://127.0.0.1:$1$USER_PATH" | grep -i '^X-Cache: HIT' >/dev/null && return 0
  done
  echo "bench: $USER_PATH is not a cache hit" >&2; return 1
}
start_strata "$SPORT" taskset -c 0 -- --data "$work/hit"; sp=$pid
wait_port "$SPORT"; warm_user "$SPORT"
NGINX_BODY=$(curl -sf --max-time 5 "http://127.0.0.1:$SPORT$USER_PATH")
NGINX_HEADERS='add_header X-Cache HIT;'
start_nginx "$NPORT" taskset -c 0; np=$pid; wait_port "$NPORT"
echo "== same bytes? (headers differ only in Server, Date, Connection and the request id value)"
curl -si "http://127.0.0.1:$SPORT$USER_PATH"; echo
curl -si "http://127.0.0.1:$NPORT$USER_PATH"; echo
[ "$(curl -sf --max-time 5 "http://127.0.0.1:$NPORT$USER_PATH")" = "$NGINX_BODY" ] || { echo "bench: nginx body differs" >&2; exit 1; }
stop "$sp"; stop "$np"

# --- throughput rounds -------------------------------------------------------
declare -A RPS P50 P99
for c in hit nginx miss order; do RPS[$c]=""; P50[$c]=""; P99[$c]=""; done
ORD_RATE="" table=""
label() { case $1 in hit) echo "GET user, cache HIT" ;; nginx) echo "nginx, same bytes" ;;
  miss) echo "GET user, cache MISS" ;; order) echo "POST order (durable)" ;; esac; }
for r in $(seq "$ROUNDS"); do
  for c in hit nginx miss order; do
    check="" port=$SPORT path=$USER_PATH script=()
    case $c in
      hit) start_strata "$SPORT" taskset -c 0 -- --data "$work/hit"; wait_port "$SPORT"; warm_user "$SPORT" ;;
      nginx) start_nginx "$NPORT" taskset -c 0; port=$NPORT check=-; wait_port "$NPORT" ;;
      miss) start_strata "$SPORT" taskset -c 0 -- --data "$work/miss" --config "$work/miss.yaml"
        path=/api/users script=("${USERS_ARGS[@]}"); wait_port "$SPORT" ;;
      order) fresh "$work/base" "$work/order-data"
        start_strata "$SPORT" taskset -c 0 -- --data "$work/order-data"
        path=/api/orders script=("${ORDER_ARGS[@]}"); wait_port "$SPORT" ;;
    esac
    warm_wrk "$port" "$path" "${script[@]}"
    [ $c != nginx ] && before=$(metrics "$port")
    [ $c = order ] && rows0=$(orders_rows "$work/order-data")
    read -r rps p50 p99 < <(run_wrk "$port" "$path" "${script[@]}")
    read -r reqs secs errs < <(wrk_counts)
    case $c in
      hit) check=$(cache_share "$before" "$(metrics "$port")" HIT) ;;
      miss) check=$(cache_share "$before" "$(metrics "$port")" MISS) ;;
      order) after=$(metrics "$port")
        rows=$(( $(orders_rows "$work/order-data") - rows0 ))
        rate=$(awk -v n="$rows" -v s="$secs" 'BEGIN{printf "%.0f", n/s}'); ORD_RATE+="$rate"$'\n'
        check="$rows orders committed = $rate/s; at the end outbox backlog $(mval "$after" strata_bus_outbox_backlog), notifications lag $(mval "$after" 'strata_bus_subscription_lag{subscription="notifications-queue"}') events"
        grep '^strata_db_' <<<"$after" >"$work/db_metrics" || true ;;
    esac
    stop "$pid"
    [ "$errs" != 0 ] && { echo "bench: warning: $errs of $reqs answers were errors (non-2xx or socket)" >&2; check+="${check:+, }**$errs errors**"; }
    printf 'round %d %-6s %10.0f req/s  p50 %8.1f us  p99 %8.1f us  %s\n' "$r" "$c" "$rps" "$p50" "$p99" "$check"
    table+="| $r | $(label $c) | $rps | $p50 | $p99 | $check |"$'\n'
    RPS[$c]+="$rps"$'\n'; P50[$c]+="$p50"$'\n'; P99[$c]+="$p99"$'\n'
  done
done
declare -A MRPS MP50 MP99
for c in hit nginx miss order; do
  MRPS[$c]=$(median <<<"${RPS[$c]%$'\n'}"); MP50[$c]=$(median <<<"${P50[$c]%$'\n'}"); MP99[$c]=$(median <<<"${P99[$c]%$'\n'}")
  printf 'median %-6s %10s req/s  p50 %8s us  p99 %8s us\n' "$c" "${MRPS[$c]}" "${MP50[$c]}" "${MP99[$c]}"
done
ord_rate=$(median <<<"${ORD_RATE%$'\n'}")
hit_ratio=$(ratio "${MRPS[hit]}" "${MRPS[nginx]}" %.3f)
echo "ratio strata HIT / nginx requests/s: $hit_ratio (goal >= 0.8)"
echo "orders: median $ord_rate committed/s (rows in orders.db); group commit runs the writes of one loop turn in one transaction, one fsync per batch"

# --- how the order commits were batched ---------------------------------------
batch="" db_metrics=""
[ -s "$work/db_metrics" ] && db_metrics=$(tr '\n' ' ' <"$work/db_metrics")
if [ "$BATCH_TRACE" = 1 ]; then
  echo "== group commit: one order run under strace, counting fsyncs"
  fresh "$work/base" "$work/order-data"
  start_strata "$SPORT" taskset -c 0 strace -f -qq -e signal=none --seccomp-bpf -y -e trace=fsync,fdatasync -o "$work/strace.out" -- --data "$work/order-data"
  wait_port "$SPORT" 400
  tpid=$(pgrep -P "$pid" | head -1); pids+=("$tpid") # strata, strace's child
  run_wrk "$SPORT" /api/orders "${ORDER_ARGS[@]}" >/dev/null
  read -r reqs secs errs < <(wrk_counts)
  kill -TERM "$tpid"; wait "$pid" || true # strace ends with its tracee
  rows=$(orders_rows "$work/order-data")
  # fsyncs per file, e.g. "orders.db-wal 325, events.db-wal 1200"
  per_file=$(sed -nE 's/^[0-9]+ +f(data)?sync\([0-9]+<[^>]*\/([^/>]+)>.*/\2/p' "$work/strace.out" | sort | uniq -c | sort -rn | awk '{printf "%s%s %d", (NR>1?", ":""), $2, $1}')
  wal=$(awk -v f=orders.db-wal '$1==f{print $2+0}' RS=', ' <<<"$per_file"); wal=${wal:-0}
  batch="$rows orders committed in $secs s with $wal fsyncs of orders.db-wal: **$(ratio "$rows" "$((wal > 0 ? wal : 1))" %.1f) orders per fsync** (all fsyncs: ${per_file:-none}; $errs wrk errors). strace stops the process at each fsync, which lengthens a commit a little and so favours batching."
  echo "$batch"
fi

# --- instructions per request ---------------------------------------------------
echo "== callgrind: instructions per keep-alive request (GET: $N1 and $N2 requests, POST: $PN1 and $PN2)"
instr strata "$N1" "$USER_PATH" -- --data "$work/hit"; s1=$ir
instr strata "$N2" "$USER_PATH" -- --data "$work/hit"; s2=$ir
instr nginx "$N1" "$USER_PATH"; n1=$ir; instr nginx "$N2" "$USER_PATH"; n2=$ir
fresh "$work/base" "$work/cg"; INSTR_AFTER=wait_bus_idle instr strata "$PN1" /api/orders --post "$ORDER_BODY" -- --data "$work/cg"; o1=$ir
fresh "$work/base" "$work/cg"; INSTR_AFTER=wait_bus_idle instr strata "$PN2" /api/orders --post "$ORDER_BODY" -- --data "$work/cg"; o2=$ir
s_ipr=$(( (s2 - s1) / (N2 - N1) )); n_ipr=$(( (n2 - n1) / (N2 - N1) )); o_ipr=$(( (o2 - o1) / (PN2 - PN1) ))
echo "GET user HIT: $s_ipr instructions/request   nginx same bytes: $n_ipr   POST order: $o_ipr (fsync time not counted)"

# --- report ---------------------------------------------------------------------
cpu=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)
row() { # case [instructions] [vs nginx]
  echo "| $(label "$1") | ${MRPS[$1]} | ${MP50[$1]} | ${MP99[$1]} | ${2:--} | ${3:--} |"
}
block=$(cat <<MD
<!-- api:begin -->
Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($cpu), nginx $(nginx -v 2>&1 | sed 's/.*\///'), wrk -t1 -c$CONNS -d$DURATION,
$ROUNDS alternating rounds (hit, nginx, miss, order), strata pinned to CPU 0 with \`--workers 1 --log-level warn\`, nginx likewise with one worker, wrk on CPU 1, data on $fstype.
Command: \`bench/api.sh\` (ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS USERS=$USERS N1=$N1 N2=$N2 PN1=$PN1 PN2=$PN2).

| round | case | requests/s | p50 (us) | p99 (us) | check |
|---|---|---|---|---|---|
$table
| median | requests/s | p50 (us) | p99 (us) | instructions/request (callgrind) | requests/s vs nginx |
|---|---|---|---|---|---|
$(row hit "$s_ipr" "**$hit_ratio**")
$(row nginx "$n_ipr" 1)
$(row miss "" "$(ratio "${MRPS[miss]}" "${MRPS[nginx]}" %.3f)")
$(row order "$o_ipr")

- Cached read vs nginx returning the same bytes: **$hit_ratio×** the requests/s (goal ≥ 0.8×), $(ratio "$s_ipr" "$n_ipr")× the instructions.
- Durable orders: median $ord_rate orders committed/s (rows in orders.db over wrk's run time). Group commit runs the writes of one loop turn in one transaction with one fsync, so $CONNS clients share fsyncs.${batch:+ Under strace: $batch}${db_metrics:+ Store metrics: \`$db_metrics\`.}
- Instructions per order come from one sequential client, so every transaction holds a single write (no batching); they include the order.created event and its notification (the run waits for the bus to drain). The fsync itself is a system call: callgrind counts no kernel time.
<!-- api:end -->
MD
)
docs_block api "$block" 'API (`bench/api.sh`)'
echo "bench/api.sh finished in $SECONDS s"
