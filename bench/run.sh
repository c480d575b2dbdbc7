#!/usr/bin/env bash
# Load benchmark: the in-repo mock called directly, the baseline proxy and Tollgate (auth and
# ledger on), all in front of the same mock, under the same load, in the same run.
#
#   bench/run.sh                      # build (release), run every scenario, write the results
#   BENCH_SECONDS=30 bench/run.sh     # longer measurements
#
# Environment (all optional):
#   BENCH_SECONDS=15          measured seconds per target and scenario
#   BENCH_WARMUP_SECONDS=3    unmeasured warm-up before each measurement
#   BENCH_CONNECTIONS=64      connections held open by the load generator
#   BENCH_RATES="100 5000"    fixed-rate scenarios, requests/s (a saturated one always follows)
#   BENCH_OUT=bench/results/latest.md
#   BENCH_SKIP_BUILD=1        reuse target/release binaries and the built baseline proxy
#   BENCH_BASELINE_DIR=../shared/tools/baseline-proxy (relative to the repository)
#   BENCH_BASELINE_TARGET_DIR=/tmp/baseline-target
#   BENCH_ALERTS=1            1: the governed team has the default alert rule set on every
#                             campaign (evaluated every 5 s, as shipped); 0: [alerts] enabled = false
#   BENCH_MODEL_LIMITS=0      1: the governed experiment also limits the benchmarked model
#                             (an rpm and a total budget on gpt-4o-mini, inside its own)
#
# Needs: cargo, curl, jq, psql, and root or sudo for scripts/services.sh the first time. The
# load generator is oha (installed with `cargo install oha --locked` when missing). All traffic
# goes to 127.0.0.1 and every load run is bounded in time. See bench/README.md.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd -- "$SCRIPT_DIR/.." && pwd)

DURATION=${BENCH_SECONDS:-15}
WARMUP=${BENCH_WARMUP_SECONDS:-3}
CONNS=${BENCH_CONNECTIONS:-64}
RATES=${BENCH_RATES:-100 5000}
ALERTS=${BENCH_ALERTS:-1}
OUT=${BENCH_OUT:-$SCRIPT_DIR/results/latest.md}
BASELINE_DIR=${BENCH_BASELINE_DIR:-$REPO/../shared/tools/baseline-proxy}
BASELINE_TARGET=${BENCH_BASELINE_TARGET_DIR:-/tmp/baseline-target}

MOCK_ADDR=127.0.0.1:18080
PROXY_ADDR=127.0.0.1:18081
GW_ADDR=127.0.0.1:18090
ADMIN_ADDR=127.0.0.1:18091
PG_BASE=postgres://tollgate:tollgate@127.0.0.1:5432
DB_NAME=tollgate_bench
DB_URL=$PG_BASE/$DB_NAME
REDIS_URL=redis://127.0.0.1:6379
MODEL=gpt-4o-mini
BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}'

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in DURATION WARMUP CONNS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive whole number (got '${!v}')"
done
[[ $ALERTS =~ ^[01]$ ]] || die "BENCH_ALERTS must be 0 or 1 (got '$ALERTS')"
for r in $RATES; do
  [[ $r =~ ^[1-9][0-9]*$ ]] || die "BENCH_RATES must be positive whole numbers (got '$r')"
done
for tool in cargo curl jq psql; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

# The exact command, with the BENCH_* variables that were set, for the results file.
COMMAND=""
for v in BENCH_SECONDS BENCH_WARMUP_SECONDS BENCH_CONNECTIONS BENCH_RATES BENCH_OUT BENCH_SKIP_BUILD \
  BENCH_BASELINE_DIR BENCH_BASELINE_TARGET_DIR BENCH_ALERTS BENCH_GOVERNED_KEY_LIMITS BENCH_MODEL_LIMITS; do
  [ -z "${!v+set}" ] || COMMAND+="$v=$(printf '%q' "${!v}") "
done
COMMAND+="bench/run.sh${*:+ $*}"

# ---------------------------------------------------------------------------------------------
# Processes: everything started here is stopped on exit, by pid.
WORK=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
declare -A PIDS=()   # name -> pid
KEEP_WORK=0

stop_pid() { # name pid timeout_s: SIGTERM, then SIGKILL after the timeout; sets STOP_RC
  local name=$1 pid=$2 timeout=$3 i
  STOP_RC=0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || STOP_RC=$?; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) did not stop within ${timeout}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || STOP_RC=$?
}

cleanup() {
  local rc=$? name
  trap - EXIT INT TERM
  for name in "${!PIDS[@]}"; do stop_pid "$name" "${PIDS[$name]}" 5; done
  if [ "$rc" -ne 0 ] || [ "$KEEP_WORK" = 1 ]; then
    log "logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { ! (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; }

wait_ready() { # name url [curl args...]: polls until the URL answers 2xx (30 s)
  local name=$1 url=$2 i
  shift 2
  for ((i = 0; i < 300; i++)); do
    if curl -fsS -o /dev/null --max-time 2 "$@" "$url" 2>/dev/null; then return 0; fi
    if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
      tail -n 40 "$WORK/$name.log" >&2 || true
      die "$name exited during start-up (log above)"
    fi
    sleep 0.1
  done
  tail -n 40 "$WORK/$name.log" >&2 || true
  die "$name did not become ready at $url within 30s"
}

# ---------------------------------------------------------------------------------------------
# 1. Build.
cd "$REPO"
BIN=$REPO/target/release
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building tollgate, mock-provider and tollctl (release: lto, codegen-units = 1; slow)"
  cargo build --release -p tollgate -p mock-provider -p tollctl
fi
for b in tollgate mock-provider tollctl; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing; run without BENCH_SKIP_BUILD"
done

BASELINE=1
PROXY_BIN=$BASELINE_TARGET/release/proxy
if [ ! -f "$BASELINE_DIR/Cargo.toml" ]; then
  BASELINE=0
  log "baseline proxy not found at $BASELINE_DIR: skipping the baseline (set BENCH_BASELINE_DIR)"
else
  BASELINE_DIR=$(cd -- "$BASELINE_DIR" && pwd)
  if [ "${BENCH_SKIP_BUILD:-0}" != 1 ] || [ ! -x "$PROXY_BIN" ]; then
    log "building the baseline proxy ($BASELINE_DIR -> $BASELINE_TARGET)"
    cargo build --release --manifest-path "$BASELINE_DIR/Cargo.toml" --target-dir "$BASELINE_TARGET" --bin proxy
  fi
fi

# Load generator: oha.
OHA=$(command -v oha || true)
[ -n "$OHA" ] || { [ -x "$HOME/.cargo/bin/oha" ] && OHA=$HOME/.cargo/bin/oha; } || true
if [ -z "$OHA" ]; then
  log "installing the load generator: cargo install oha --locked"
  cargo install oha --locked
  OHA=$HOME/.cargo/bin/oha
fi
OHA_VERSION=$("$OHA" --version | head -n 1)

# ---------------------------------------------------------------------------------------------
# 2. Services, database, processes.
"$REPO/scripts/services.sh" >&2
psql -X -q -v ON_ERROR_STOP=1 "$PG_BASE/tollgate" \
  -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" -c "CREATE DATABASE $DB_NAME" >&2

for addr in "$MOCK_ADDR" "$GW_ADDR" "$ADMIN_ADDR"; do
  port_free "$addr" || die "$addr is already in use (another benchmark or gateway running?)"
done
[ "$BASELINE" = 0 ] || port_free "$PROXY_ADDR" || die "$PROXY_ADDR is already in use"

"$BIN/mock-provider" --listen "$MOCK_ADDR" >"$WORK/mock.log" 2>&1 &
PIDS[mock]=$!
wait_ready mock "http://$MOCK_ADDR/health"

if [ "$BASELINE" = 1 ]; then
  PROXY_ADDR=$PROXY_ADDR UPSTREAM="http://$MOCK_ADDR" "$PROXY_BIN" >"$WORK/proxy.log" 2>&1 &
  PIDS[proxy]=$!
  wait_ready proxy "http://$PROXY_ADDR/v1/chat/completions" \
    -X POST -H 'content-type: application/json' -d "$BODY"
fi

JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$WORK/journal"
cat >"$WORK/tollgate.toml" <<EOF
listen = "$GW_ADDR"
admin_listen = "$ADMIN_ADDR"
database_url = "$DB_URL"
redis_url = "$REDIS_URL"

[admin]
jwt_secret = "$JWT_SECRET"

[pricing]
dir = "$REPO/pricing"

[ledger]
journal_dir = "$WORK/journal"

[alerts]
enabled = $([ "$ALERTS" = 1 ] && echo true || echo false)

[[deployments]]
name = "mock"
kind = "openai"
base_url = "http://$MOCK_ADDR/v1"
models = { "$MODEL" = "$MODEL" }
EOF
chmod 600 "$WORK/tollgate.toml"
# The file is the whole configuration: no TOLLGATE_* variable from the caller's shell applies.
env $(compgen -e | grep '^TOLLGATE_' | sed 's/^/-u /') RUST_LOG=warn \
  "$BIN/tollgate" serve --config "$WORK/tollgate.toml" >"$WORK/tollgate.log" 2>&1 &
PIDS[tollgate]=$!
wait_ready tollgate "http://$GW_ADDR/healthz"

export TOLLGATE_ADMIN_URL="http://$ADMIN_ADDR"
export TOLLGATE_ADMIN_JWT_SECRET=$JWT_SECRET
TOLLGATE_ADMIN_TOKEN=$("$BIN/tollctl" token mint --role admin --subject bench --ttl 24h)
export TOLLGATE_ADMIN_TOKEN
"$BIN/tollctl" teams create bench >/dev/null
"$BIN/tollctl" experiments create --team bench run1 >/dev/null
KEY=$("$BIN/tollctl" keys issue --team bench --experiment run1 --format json 2>/dev/null | jq -er '.[0].key')
# A second campaign set up as users run one: the experiment carries requests- and
# tokens-per-minute limits and a total budget (`campaigns launch`), and its team a monthly
# budget; all far above what the load reaches, so nothing is refused. Every request through
# it takes one admission round trip to Redis (both scopes at once) and settles after its
# answer. BENCH_GOVERNED_KEY_LIMITS=1 adds limits and two budgets on the key itself too.
"$BIN/tollctl" teams create bench-governed >/dev/null
GOVERNED=$("$BIN/tollctl" campaigns launch --team bench-governed run1 --keys 1 --budget 1000000 --period total \
  --rpm 100000000 --tpm 100000000000 --format json 2>/dev/null)
KEY_GOVERNED=$(jq -er '.keys[0].key' <<<"$GOVERNED")
"$BIN/tollctl" limits set team bench-governed --budget monthly=1000000 >/dev/null
if [ "${BENCH_GOVERNED_KEY_LIMITS:-0}" = 1 ]; then
  "$BIN/tollctl" limits set key "$(jq -er '.keys[0].id' <<<"$GOVERNED")" --rpm 100000000 --tpm 100000000000 \
    --max-concurrent 100000 --budget total=1000000 --budget daily=1000000 >/dev/null
fi
if [ "${BENCH_MODEL_LIMITS:-0}" = 1 ]; then
  "$BIN/tollctl" limits set experiment run1 --team bench-governed --model gpt-4o-mini \
    --rpm 100000000 --budget total=1000000 >/dev/null
fi
if [ "$ALERTS" = 1 ]; then
  # The documented default for a team: every rule kind on every campaign. Nothing crosses a
  # threshold here, so the webhook (the mock, which would answer 404) is never called.
  "$BIN/tollctl" alerts add --team bench-governed --every-campaign \
    --webhook "http://$MOCK_ADDR/hooks/tollgate" >/dev/null
fi
unset TOLLGATE_ADMIN_TOKEN TOLLGATE_ADMIN_JWT_SECRET

# Smoke test through every target before loading them.
declare -A URL=([direct]="http://$MOCK_ADDR/v1/chat/completions"
  [baseline]="http://$PROXY_ADDR/v1/chat/completions"
  [tollgate]="http://$GW_ADDR/v1/chat/completions"
  [governed]="http://$GW_ADDR/v1/chat/completions")
declare -A KEY_OF=([direct]=$KEY [baseline]=$KEY [tollgate]=$KEY [governed]=$KEY_GOVERNED)
TARGETS=(direct)
[ "$BASELINE" = 0 ] || TARGETS+=(baseline)
TARGETS+=(tollgate governed)
is_gateway() { [ "$1" = tollgate ] || [ "$1" = governed ]; }
for t in "${TARGETS[@]}"; do
  code=$(curl -sS -o "$WORK/smoke-$t.json" -w '%{http_code}' --max-time 5 -X POST \
    -H "Authorization: Bearer ${KEY_OF[$t]}" -H 'content-type: application/json' -d "$BODY" "${URL[$t]}")
  [ "$code" = 200 ] || { cat "$WORK/smoke-$t.json" >&2; die "smoke request to $t answered $code"; }
done
TOLLGATE_OK=2 # the smoke requests; every 2xx the load generator gets from the gateway is added

# ---------------------------------------------------------------------------------------------
# 3-4. Load.
CLK_TCK=$(getconf CLK_TCK)
NPROC=$(nproc)
proc_ticks() { # pid -> utime+stime in clock ticks (0 when gone)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  stat=${stat##*) }   # fields from 3 on (the command name may contain spaces)
  set -- $stat
  echo $((${12} + ${13}))
}
redis_pid() { redis-cli -u "$REDIS_URL" info server 2>/dev/null | tr -d '\r' | awk -F: '/^process_id:/ { print $2 }'; }
pg_ticks() { # utime+stime of every PostgreSQL process (the postmaster, backends, workers)
  local sum=0 p
  for p in $(pgrep -x postgres); do sum=$((sum + $(proc_ticks "$p"))); done
  echo "$sum"
}
redis_calls() { # "all scripts": commands Redis ran (a script's own commands included) and script calls
  redis-cli -u "$REDIS_URL" info commandstats 2>/dev/null | tr -d '\r' | awk -F'[:=,]' '
    /^cmdstat_/ { all += $3; if ($1 ~ /^cmdstat_(evalsha|eval|fcall)$/) scripts += $3 }
    END { print all + 0, scripts + 0 }'
}
host_ticks() { # "busy total" from /proc/stat
  awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat
}

# oha: -z bounds the run; --wait-ongoing-requests-after-deadline lets requests in flight at the
# deadline finish, so every request sent is counted. Fixed rates use --latency-correction:
# latency is measured from when a request was due, not from when it could be sent, so a target
# that falls behind shows it in its percentiles (no coordinated omission).
oha_args() { # seconds rate(0 = saturated) url key
  local args=(-z "${1}s" -c "$CONNS" --no-tui --output-format json
    --wait-ongoing-requests-after-deadline -m POST
    -H "Authorization: Bearer $4" -H 'content-type: application/json' -d "$BODY")
  [ "$2" = 0 ] || args+=(-q "$2" --latency-correction)
  printf '%s\0' "${args[@]}" "$3"
}

run_oha() { # name seconds rate url key -> $WORK/name.json (+ .time, .err)
  local name=$1 args
  mapfile -d '' args < <(oha_args "$2" "$3" "$4" "$5")
  local TIMEFORMAT='%R %U %S'
  if ! { time "$OHA" "${args[@]}" >"$WORK/$name.json" 2>"$WORK/$name.err"; } 2>"$WORK/$name.time"; then
    cat "$WORK/$name.err" >&2
    die "oha failed ($name)"
  fi
}

ok_count() { jq '[.statusCodeDistribution // {} | to_entries[] | select(.key | test("^2")) | .value] | add // 0' "$1"; }

declare -A RES=()   # "scenario:target:field" -> value
SCENARIOS=()
for r in $RATES; do SCENARIOS+=("$r"); done
SCENARIOS+=(0)
scenario_name() { if [ "$1" = 0 ]; then echo "saturated (${CONNS} conns)"; else echo "fixed ${1} req/s"; fi; }

pid_of_target() { case $1 in direct) echo "${PIDS[mock]}" ;; baseline) echo "${PIDS[proxy]}" ;; tollgate | governed) echo "${PIDS[tollgate]}" ;; esac; }

# What the machine is already doing before any load (other builds, tests, ...).
read -r hb0 ht0 < <(host_ticks); sleep 3; read -r hb1 ht1 < <(host_ticks)
BACKGROUND=$(awk -v b0="$hb0" -v b1="$hb1" -v t0="$ht0" -v t1="$ht1" -v n="$NPROC" 'BEGIN { printf "%.2f", (t1 > t0) ? (b1 - b0) / (t1 - t0) * n : 0 }')
log "host CPU busy before load: $BACKGROUND of $NPROC cores"
if awk -v b="$BACKGROUND" 'BEGIN { exit !(b > 0.25) }'; then
  log "warning: the machine is already busy before the benchmark starts; expect noisy numbers"
fi

for s in "${SCENARIOS[@]}"; do
  for t in "${TARGETS[@]}"; do
    name="${t}-${s}"
    log "$(scenario_name "$s") -> $t: warm-up ${WARMUP}s, then ${DURATION}s"
    run_oha "warmup-$name" "$WARMUP" "$s" "${URL[$t]}" "${KEY_OF[$t]}"
    ! is_gateway "$t" || TOLLGATE_OK=$((TOLLGATE_OK + $(ok_count "$WORK/warmup-$name.json")))
    sleep 1

    tpid=$(pid_of_target "$t")
    rpid=$(redis_pid)
    t0=$(proc_ticks "$tpid"); m0=$(proc_ticks "${PIDS[mock]}"); r0=$(proc_ticks "$rpid"); p0=$(pg_ticks)
    read -r hb0 ht0 < <(host_ticks)
    read -r rc0 rs0 < <(redis_calls)
    run_oha "$name" "$DURATION" "$s" "${URL[$t]}" "${KEY_OF[$t]}"
    t1=$(proc_ticks "$tpid"); m1=$(proc_ticks "${PIDS[mock]}"); r1=$(proc_ticks "$rpid"); p1=$(pg_ticks)
    read -r hb1 ht1 < <(host_ticks)
    read -r rc1 rs1 < <(redis_calls)
    read -r wall user sys <"$WORK/$name.time"

    f="$WORK/$name.json"
    ok=$(ok_count "$f")
    ! is_gateway "$t" || TOLLGATE_OK=$((TOLLGATE_OK + ok))
    RES[$s:$t:ok]=$ok
    RES[$s:$t:non2xx]=$(jq '[.statusCodeDistribution // {} | to_entries[] | select(.key | test("^2") | not) | .value] | add // 0' "$f")
    RES[$s:$t:transport]=$(jq '[.errorDistribution // {} | .[]] | add // 0' "$f")
    RES[$s:$t:errkinds]=$(jq -r '[(.statusCodeDistribution // {} | to_entries[] | select(.key | test("^2") | not) | "HTTP \(.key) x\(.value)"), (.errorDistribution // {} | to_entries[] | "\(.key) x\(.value)")] | join("; ")' "$f")
    RES[$s:$t:rps]=$(jq '.summary.requestsPerSec' "$f")
    RES[$s:$t:p50]=$(jq '.latencyPercentiles.p50 // "null"' "$f")
    RES[$s:$t:p99]=$(jq '.latencyPercentiles.p99 // "null"' "$f")
    RES[$s:$t:cpu_target]=$(awk -v a="$t0" -v b="$t1" -v w="$wall" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz / w }')
    RES[$s:$t:cpu_mock]=$(awk -v a="$m0" -v b="$m1" -v w="$wall" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz / w }')
    RES[$s:$t:cpu_oha]=$(awk -v u="$user" -v s="$sys" -v w="$wall" 'BEGIN { printf "%.2f", (u + s) / w }')
    RES[$s:$t:cpu_host]=$(awk -v b0="$hb0" -v b1="$hb1" -v t0="$ht0" -v t1="$ht1" -v n="$NPROC" 'BEGIN { printf "%.2f", (t1 > t0) ? (b1 - b0) / (t1 - t0) * n : 0 }')
    # Everything else on the host: PostgreSQL and Redis, and whatever else the machine is doing.
    RES[$s:$t:cpu_rest]=$(awk -v h="${RES[$s:$t:cpu_host]}" -v tg="${RES[$s:$t:cpu_target]}" -v m="${RES[$s:$t:cpu_mock]}" \
      -v o="${RES[$s:$t:cpu_oha]}" -v d="$([ "$t" = direct ] && echo 1 || echo 0)" \
      'BEGIN { r = h - o - m - (d ? 0 : tg); printf "%.2f", r < 0 ? 0 : r }')
    # CPU time per request answered, in microseconds: the stable figure on a shared machine.
    answered=$((ok + ${RES[$s:$t:non2xx]}))
    per_request() { awk -v a="$1" -v b="$2" -v n="$answered" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", (b - a) / hz / n * 1e6; else print "-" }'; }
    RES[$s:$t:us_target]=$(per_request "$t0" "$t1")
    RES[$s:$t:us_redis]=$(per_request "$r0" "$r1")
    RES[$s:$t:us_pg]=$(per_request "$p0" "$p1")
    # Redis commands and script calls per request (INFO itself adds one command per reading).
    per_request_count() { awk -v a="$1" -v b="$2" -v n="$answered" 'BEGIN { if (n > 0) printf "%.3f", (b - a) / n; else print "-" }'; }
    RES[$s:$t:redis_cmds]=$(per_request_count "$rc0" "$rc1")
    RES[$s:$t:redis_scripts]=$(per_request_count "$rs0" "$rs1")
    log "  $t: $(printf '%.0f' "${RES[$s:$t:rps]}") req/s, p50 ${RES[$s:$t:p50]}s, p99 ${RES[$s:$t:p99]}s, errors $((${RES[$s:$t:non2xx]} + ${RES[$s:$t:transport]}))"
    sleep 1
  done
done

# ---------------------------------------------------------------------------------------------
# 5. Peak memory, then stop the gateway (SIGTERM drains the ledger) and check the ledger.
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
RSS_TOLLGATE=$(hwm_kb "${PIDS[tollgate]}")
RSS_MOCK=$(hwm_kb "${PIDS[mock]}")
RSS_PROXY=""
[ "$BASELINE" = 0 ] || RSS_PROXY=$(hwm_kb "${PIDS[proxy]}")

log "stopping tollgate (SIGTERM) so the ledger drains"
stop_pid tollgate "${PIDS[tollgate]}" 120
TOLLGATE_EXIT=$STOP_RC
unset 'PIDS[tollgate]'

read -r LEDGER_ROWS LEDGER_2XX < <(psql -X -qAt -F ' ' "$DB_URL" \
  -c "SELECT count(*), count(*) FILTER (WHERE status BETWEEN 200 AND 299) FROM request_log")
SPILLED=$(find "$WORK/journal" -type f -name "journal-*" | wc -l)
GW_LOG_LINES=$(grep -c . "$WORK/tollgate.log" || true)
if [ "$LEDGER_ROWS" = "$TOLLGATE_OK" ]; then LEDGER_VERDICT="match"; else LEDGER_VERDICT="MISMATCH"; fi
log "ledger: $LEDGER_ROWS rows in request_log ($LEDGER_2XX with a 2xx status); successful tollgate requests: $TOLLGATE_OK -> $LEDGER_VERDICT"

# ---------------------------------------------------------------------------------------------
# Report.
ms() { awk -v v="$1" 'BEGIN { if (v == "null" || v == "") print "-"; else printf "%.3f", v * 1000 }'; }
dms() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "null" || b == "null" || a == "" || b == "") print "-"; else printf "%+.3f", (a - b) * 1000 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM_TOTAL=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$REPO" status --porcelain -- . ':(exclude)bench' 2>/dev/null | wc -l)
[ "$DIRTY" = 0 ] || COMMIT+=" (working tree with $DIRTY uncommitted/untracked paths outside bench/)"
PG_VERSION=$(psql -X -qAt "$DB_URL" -c 'SHOW server_version' 2>/dev/null || echo unknown)
PG_FSYNC=$(psql -X -qAt "$DB_URL" -c 'SHOW fsync' 2>/dev/null || echo unknown)

mkdir -p "$(dirname -- "$OUT")"
{
  echo "# Tollgate load benchmark: latest results"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Machine: $NPROC cores ($CPU_MODEL), $MEM_TOTAL RAM, Linux $(uname -r)"
  echo "- Commit: $COMMIT"
  echo "- Command: \`$COMMAND\`"
  echo "- Load generator: $OHA_VERSION, $CONNS connections, ${WARMUP}s warm-up then ${DURATION}s measured per row," \
    "non-streaming \`POST /v1/chat/completions\` with \`$BODY\`"
  echo "- Upstream for every target: the in-repo \`mock-provider\` (instant answers, usage 10/20)."
  echo "  Targets: **direct** = the mock itself; **baseline** = \`shared/tools/baseline-proxy\` \`proxy\`" \
    "(axum in, reqwest out, nothing checked); **tollgate** = the gateway (release build), virtual-key auth," \
    "pricing and the PostgreSQL ledger on (PostgreSQL $PG_VERSION, fsync=$PG_FSYNC; Redis);" \
    "**governed** = the same gateway with a campaign key: its experiment carries requests- and" \
    "tokens-per-minute limits and a total budget, its team a monthly budget$( [ "${BENCH_GOVERNED_KEY_LIMITS:-0}" = 1 ] && echo ", and the key itself rate, token, concurrency limits and two budgets")$( [ "${BENCH_MODEL_LIMITS:-0}" = 1 ] && echo ", and the experiment an rpm and a total budget on gpt-4o-mini")" \
    "(admitted from governance leases: each instance holds slices of the scopes' headroom and renews" \
    "them in the background, so a request makes no Redis call; limits far above the load, so nothing" \
    "is refused)."
  if [ "$ALERTS" = 1 ]; then
    echo "- Alerts: on, with the default rule set (thresholds, projection, expiry, refusals) on every campaign" \
      "of the governed team, evaluated every 5 s (\`BENCH_ALERTS=1\`)."
  else
    echo "- Alerts: off (\`[alerts] enabled = false\`, \`BENCH_ALERTS=0\`)."
  fi
  [ "$BASELINE" = 1 ] || echo "- **Baseline skipped**: $BASELINE_DIR not found."
  echo "- Everything (load generator, mock, proxy, gateway, PostgreSQL, Redis) shares the same $NPROC cores." \
    "Host CPU busy in the 3 s before the load started: $BACKGROUND cores."
  echo
  echo "## Results"
  echo
  echo "Latencies in milliseconds. Fixed-rate rows use oha's latency correction (measured from when each" \
    "request was due). CPU columns are cores used on average during the measured run (out of $NPROC):" \
    "the target process (gateway or proxy), the mock, oha, the rest of the host (PostgreSQL, Redis and anything" \
    "else running on the machine) and the whole host."
  echo
  echo "| scenario | target | req/s | p50 (ms) | p99 (ms) | errors | target CPU | mock CPU | oha CPU | rest of host | host busy |"
  echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
  for s in "${SCENARIOS[@]}"; do
    for t in "${TARGETS[@]}"; do
      errs=$((${RES[$s:$t:non2xx]} + ${RES[$s:$t:transport]}))
      tcpu=${RES[$s:$t:cpu_target]}
      [ "$t" != direct ] || tcpu="(= mock)"
      printf '| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(scenario_name "$s")" "$t" \
        "${RES[$s:$t:rps]}" "$(ms "${RES[$s:$t:p50]}")" "$(ms "${RES[$s:$t:p99]}")" "$errs" \
        "$tcpu" "${RES[$s:$t:cpu_mock]}" "${RES[$s:$t:cpu_oha]}" "${RES[$s:$t:cpu_rest]}" "${RES[$s:$t:cpu_host]}"
    done
  done
  echo
  echo "### CPU time per request (same run)"
  echo
  echo "Microseconds of CPU (user + system, from \`/proc/<pid>/stat\` before and after each measured run)" \
    "divided by the requests answered: the target process, Redis, and every PostgreSQL process" \
    "(ledger writes and anything else the database did meanwhile). For **direct** the target is the mock." \
    "Clock ticks are 1/$CLK_TCK s, so a figure is exact to about $((1000000 / CLK_TCK)) µs over the whole run, not per request."
  echo
  echo "Redis commands/req counts every command Redis ran (\`INFO commandstats\`, the commands a" \
    "script runs included), scripts/req the script calls alone (one per batch of admissions and settlements)."
  echo
  echo "| scenario | target | req/s | target µs/req | Redis µs/req | PostgreSQL µs/req | total µs/req | Redis commands/req | Redis scripts/req |"
  echo "|---|---|--:|--:|--:|--:|--:|--:|--:|"
  for s in "${SCENARIOS[@]}"; do
    for t in "${TARGETS[@]}"; do
      total=$(awk -v a="${RES[$s:$t:us_target]}" -v b="${RES[$s:$t:us_redis]}" -v c="${RES[$s:$t:us_pg]}" 'BEGIN { printf "%.1f", a + b + c }')
      printf '| %s | %s | %.0f | %s | %s | %s | %s | %s | %s |\n' "$(scenario_name "$s")" "$t" "${RES[$s:$t:rps]}" \
        "${RES[$s:$t:us_target]}" "${RES[$s:$t:us_redis]}" "${RES[$s:$t:us_pg]}" "$total" \
        "${RES[$s:$t:redis_cmds]}" "${RES[$s:$t:redis_scripts]}"
    done
  done
  echo
  echo "### Governance targets (same run)"
  echo
  echo "CPU per request of the gateway plus Redis (PostgreSQL is the same ledger work for both and left" \
    "out), governed over ungoverned; the ungoverned gateway over the baseline proxy (process CPU alone);" \
    "governed throughput over ungoverned; Redis commands per governed request. Targets: ≤ 1.15, ≤ 1.1," \
    "≥ 0.9 and ≤ 0.05 (saturated)."
  echo
  echo "| scenario | governed / ungoverned CPU (gateway + Redis) | ungoverned / baseline CPU | governed / ungoverned req/s | Redis commands per governed request |"
  echo "|---|--:|--:|--:|--:|"
  for s in "${SCENARIOS[@]}"; do
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
    gov=$(awk -v a="${RES[$s:governed:us_target]}" -v b="${RES[$s:governed:us_redis]}" 'BEGIN { print a + b }')
    ung=$(awk -v a="${RES[$s:tollgate:us_target]}" -v b="${RES[$s:tollgate:us_redis]}" 'BEGIN { print a + b }')
    if [ "$BASELINE" = 1 ]; then vbase=$(ratio "${RES[$s:tollgate:us_target]}" "${RES[$s:baseline:us_target]}"); else vbase="-"; fi
    printf '| %s | %s | %s | %s | %s |\n' "$(scenario_name "$s")" "$(ratio "$gov" "$ung")" "$vbase" \
      "$(ratio "${RES[$s:governed:rps]}" "${RES[$s:tollgate:rps]}")" "${RES[$s:governed:redis_cmds]}"
  done
  echo
  echo "### Tollgate overhead (same run)"
  echo
  echo "Overhead = tollgate minus direct at the same percentile, in milliseconds; the baseline proxy's own" \
    "overhead is the floor a Rust proxy pays, so \`tollgate − baseline\` is the cost of governance." \
    "Under saturation latency is set by throughput (64 connections / req/s), so compare req/s there."
  echo
  echo "| scenario | gateway | − direct p50 | − direct p99 | − baseline p50 | baseline − direct p50 | req/s / direct | req/s / baseline |"
  echo "|---|---|--:|--:|--:|--:|--:|--:|"
  for s in "${SCENARIOS[@]}"; do
    for g in tollgate governed; do
      if [ "$BASELINE" = 1 ]; then
        vb=$(dms "${RES[$s:$g:p50]}" "${RES[$s:baseline:p50]}")
        bd=$(dms "${RES[$s:baseline:p50]}" "${RES[$s:direct:p50]}")
        rb=$(awk -v a="${RES[$s:$g:rps]}" -v b="${RES[$s:baseline:rps]}" 'BEGIN { printf "%.2f", a / b }')
      else
        vb="-"; bd="-"; rb="-"
      fi
      printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(scenario_name "$s")" "$g" \
        "$(dms "${RES[$s:$g:p50]}" "${RES[$s:direct:p50]}")" \
        "$(dms "${RES[$s:$g:p99]}" "${RES[$s:direct:p99]}")" "$vb" "$bd" \
        "$(awk -v a="${RES[$s:$g:rps]}" -v b="${RES[$s:direct:rps]}" 'BEGIN { printf "%.2f", a / b }')" "$rb"
    done
  done
  echo
  echo "### Memory and ledger"
  echo
  echo "- Peak RSS (VmHWM at the end of the run): tollgate $(mib "$RSS_TOLLGATE"), mock $(mib "$RSS_MOCK")${RSS_PROXY:+, baseline proxy $(mib "$RSS_PROXY")}."
  echo "- Ledger after SIGTERM (exit status $TOLLGATE_EXIT): **$LEDGER_ROWS** rows in \`request_log\`" \
    "($LEDGER_2XX with a 2xx status); successful tollgate requests seen by the client (warm-ups and the" \
    "smoke request included): **$TOLLGATE_OK** → **$LEDGER_VERDICT**. Journal segments left: $SPILLED."
  echo "- Lines logged by tollgate at RUST_LOG=warn: $GW_LOG_LINES."
  errs_listed=0
  for s in "${SCENARIOS[@]}"; do
    for t in "${TARGETS[@]}"; do
      if [ -n "${RES[$s:$t:errkinds]}" ]; then
        [ "$errs_listed" = 1 ] || { echo; echo "### Errors"; echo; }
        errs_listed=1
        echo "- $(scenario_name "$s") / $t: ${RES[$s:$t:errkinds]}"
      fi
    done
  done
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
log "results written to ${OUT#"$REPO"/}"

if [ "$GW_LOG_LINES" != 0 ]; then
  KEEP_WORK=1
  log "tollgate logged $GW_LOG_LINES lines at warn level; first ones:"
  head -n 5 "$WORK/tollgate.log" >&2
fi
[ "$LEDGER_VERDICT" = match ] || die "the ledger does not match the successful requests"
