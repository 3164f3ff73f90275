#!/usr/bin/env bash
# Load test on loopback: the CPU a proxied request costs in tollgate vs nginx.
#
# Three targets, measured in ALTERNATING rounds so that drift on a shared, noisy machine
# hits all of them alike:
#   direct    wrk -> echo_upstream
#   nginx     wrk -> nginx (plain reverse proxy, 1 worker, keep-alive upstream) -> echo
#   tollgate  wrk -> tollgate serve (1 tokio worker, RUST_LOG=warn) -> echo
#
# For every run it prints requests/s and the proxy's CPU time per request (utime + stime
# from /proc/<pid>/stat, before and after, over requests completed); at the end, medians
# and the ratios docs/performance.md reports.
#
# Usage: benches/load.sh            (from anywhere in the repository)
# Knobs (environment): ROUNDS=3 DURATION=10 CONNECTIONS=32 THREADS=1 WARMUP=3
#                      BASE_PORT=19200 (uses BASE_PORT..BASE_PORT+3 on 127.0.0.1)
#                      SKIP_BUILD=1 to use the binaries already in target/release.
# Only ever sends traffic to 127.0.0.1. Not run in CI. Takes about 2-3 minutes plus
# the build.

set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-3}
BASE_PORT=${BASE_PORT:-19200}
HOST=127.0.0.1
ECHO_PORT=$BASE_PORT
NGINX_PORT=$((BASE_PORT + 1))
TOLLGATE_PORT=$((BASE_PORT + 2))
ADMIN_PORT=$((BASE_PORT + 3))
REQUEST_PATH=/v1/items/rec-1f2e3d4c

for n in ROUNDS DURATION CONNECTIONS THREADS WARMUP BASE_PORT; do
    if ! [[ ${!n} =~ ^[0-9]+$ ]] || ((${!n} < 1)); then
        echo "error: $n must be a positive integer" >&2
        exit 2
    fi
done
if ((ROUNDS > 20 || DURATION > 120)); then
    echo "error: ROUNDS <= 20 and DURATION <= 120, please" >&2
    exit 2
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-load.XXXXXX")
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Bounded wait: 5 s, then SIGKILL.
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- tools ----------------------------------------------------------------------------

need_install=()
command -v wrk >/dev/null || need_install+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need_install+=(nginx)
command -v curl >/dev/null || need_install+=(curl)
if ((${#need_install[@]})); then
    log "installing ${need_install[*]}"
    if ! apt-get install -y "${need_install[@]}" >"$WORK/apt.log" 2>&1; then
        apt-get update >>"$WORK/apt.log" 2>&1 || true
        apt-get install -y "${need_install[@]}" >>"$WORK/apt.log" 2>&1 ||
            die "apt-get install ${need_install[*]} failed; see $WORK/apt.log"
    fi
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
CLK_TCK=$(getconf CLK_TCK)

if [[ -z ${SKIP_BUILD:-} ]]; then
    log "building (release)"
    # Two invocations on purpose: building the example activates dev-dependency features
    # (tokio's test-util, whose clock takes a lock) for everything built in the same
    # invocation. The gateway under test must be the binary users run.
    (cd "$REPO" && cargo build --release --quiet --bin tollgate)
    (cd "$REPO" && cargo build --release --quiet --example echo_upstream)
fi
TOLLGATE=$TARGET_DIR/release/tollgate
ECHO=$TARGET_DIR/release/examples/echo_upstream
[[ -x $TOLLGATE ]] || die "$TOLLGATE not built"
[[ -x $ECHO ]] || die "$ECHO not built"

# --- helpers --------------------------------------------------------------------------

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

wait_for_port() { # port pid what
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || die "$3 exited during start-up; see $WORK/$3.log"
        port_busy "$1" && return 0
        sleep 0.1
    done
    die "$3 did not listen on $HOST:$1 within 10 s; see $WORK/$3.log"
}

# utime + stime of a process and all its threads, in clock ticks. Fields are counted
# after the ")" that closes the command name, which may itself hold spaces.
# After it, field 1 is the state (field 3 of proc(5)), so utime (14) and stime (15) are
# at indexes 11 and 12.
cpu_ticks() {
    local pid total=0 stat
    local -a f
    for pid in "$@"; do
        stat=$(<"/proc/$pid/stat") || die "process $pid is gone"
        read -ra f <<<"${stat##*) }"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

for port in "$ECHO_PORT" "$NGINX_PORT" "$TOLLGATE_PORT" "$ADMIN_PORT"; do
    port_busy "$port" && die "$HOST:$port is already in use; set BASE_PORT"
done

# --- echo upstream --------------------------------------------------------------------

# One worker thread, like the two proxies: on two cores, wrk, the proxy and the upstream
# already share the machine.
TOKIO_WORKER_THREADS=1 "$ECHO" "$HOST:$ECHO_PORT" >"$WORK/echo.log" 2>&1 &
ECHO_PID=$!
PIDS+=("$ECHO_PID")
wait_for_port "$ECHO_PORT" "$ECHO_PID" echo

# --- nginx ----------------------------------------------------------------------------

mkdir -p "$WORK/nginx"
nginx_user=""
[[ $(id -u) == 0 ]] && nginx_user="user root;"
cat >"$WORK/nginx/nginx.conf" <<EOF
$nginx_user
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    upstream echo {
        server $HOST:$ECHO_PORT;
        keepalive 64;
    }
    server {
        listen $HOST:$NGINX_PORT;
        location / {
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # What tollgate also sends upstream.
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
        }
    }
}
EOF
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_for_port "$NGINX_PORT" "$NGINX_PID" nginx
# The master only supervises; count it anyway, with its worker (its only child).
NGINX_WORKER=""
for _ in $(seq 50); do
    NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -n1) && [[ -n $NGINX_WORKER ]] && break
    sleep 0.1
done
[[ -n $NGINX_WORKER ]] || die "nginx started no worker; see $WORK/nginx/error.log"

# --- tollgate -------------------------------------------------------------------------

POLICY=$WORK/policy
mkdir -p "$POLICY/policies" "$POLICY/catalogue/bench"
cat >"$POLICY/policies/gateway.toml" <<EOF
[gateway]
name = "load bench"

[[listeners]]
name = "public"
address = "$HOST:$TOLLGATE_PORT"

[admin]
address = "$HOST:$ADMIN_PORT"

[environments.production]
hosts = ["api.bench"]

[upstreams.echo]
url = "http://$HOST:$ECHO_PORT/core"
connect_timeout = "1s"
timeout = "5s"
pool_max_idle = 128
EOF
cat >"$POLICY/catalogue/bench/items.toml" <<'EOF'
id = "items"
name = "Items"
version = "1.0.0"
data_class = "public"

[upstream]
production = "echo"

[[routes]]
id = "items.list"
method = "GET"
path = "/v1/items"
upstream_path = "/items"

[[routes]]
id = "items.get"
method = "GET"
path = "/v1/items/{item_id}"
upstream_path = "/items/{item_id}"
EOF
"$TOLLGATE" check --root "$POLICY" >"$WORK/check.log" 2>&1 ||
    die "the bench policy set does not compile: $(cat "$WORK/check.log")"
TOKIO_WORKER_THREADS=1 RUST_LOG=warn \
    "$TOLLGATE" serve --root "$POLICY" --no-watch >"$WORK/tollgate.log" 2>&1 &
TOLLGATE_PID=$!
PIDS+=("$TOLLGATE_PID")
wait_for_port "$TOLLGATE_PORT" "$TOLLGATE_PID" tollgate

# --- sanity: every target answers 200 with the echo body ------------------------------

for target in direct nginx tollgate; do
    case $target in
    direct) port=$ECHO_PORT ;;
    nginx) port=$NGINX_PORT ;;
    tollgate) port=$TOLLGATE_PORT ;;
    esac
    got=$(curl -s --max-time 5 -H "Host: api.bench" -o "$WORK/probe.json" -w '%{http_code}' \
        "http://$HOST:$port$REQUEST_PATH") || true
    [[ $got == 200 ]] && grep -q echo-upstream "$WORK/probe.json" ||
        die "$target answered $got: $(head -c 300 "$WORK/probe.json" 2>/dev/null)"
done

# --- runs -----------------------------------------------------------------------------

# run TARGET SECONDS -> prints "requests rps proxy_ticks echo_ticks"
run() {
    local target=$1 seconds=$2 port out before=0 after=0 ebefore eafter requests rps
    local -a pids=()
    case $target in
    direct) port=$ECHO_PORT ;;
    nginx) port=$NGINX_PORT pids=("$NGINX_PID" "$NGINX_WORKER") ;;
    tollgate) port=$TOLLGATE_PORT pids=("$TOLLGATE_PID") ;;
    esac
    if ((${#pids[@]})); then before=$(cpu_ticks "${pids[@]}"); fi
    ebefore=$(cpu_ticks "$ECHO_PID")
    out=$(timeout $((seconds + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${seconds}s" \
        -H "Host: api.bench" "http://$HOST:$port$REQUEST_PATH") ||
        die "wrk against $target failed"
    eafter=$(cpu_ticks "$ECHO_PID")
    if ((${#pids[@]})); then after=$(cpu_ticks "${pids[@]}"); fi
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
        die "$target: errors during the run:"$'\n'"$out"
    fi
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    [[ -n $requests && -n $rps ]] || die "cannot read wrk output:"$'\n'"$out"
    echo "$requests $rps $((after - before)) $((eafter - ebefore))"
}

us_per_request() { # ticks requests
    awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz / n * 1e6 }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

log "machine: $(nproc) cores, $(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2 }')"
log "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds x 3 targets, GET $REQUEST_PATH"
log "warming up (${WARMUP}s each)"
for target in direct nginx tollgate; do
    run "$target" "$WARMUP" >/dev/null
done

declare -A RPS CPU
printf '%-6s %-9s %12s %12s %16s %15s\n' round target requests req/s proxy_cpu_us/req echo_cpu_us/req
for round in $(seq "$ROUNDS"); do
    # Rotate the order each round so no target always runs first or last.
    case $((round % 3)) in
    1) order="direct nginx tollgate" ;;
    2) order="nginx tollgate direct" ;;
    0) order="tollgate direct nginx" ;;
    esac
    for target in $order; do
        result=$(run "$target" "$DURATION")
        read -r requests rps ticks eticks <<<"$result"
        cpu=$(us_per_request "$ticks" "$requests")
        RPS[$target,$round]=$rps
        CPU[$target,$round]=$cpu
        [[ $target == direct ]] && cpu="-"
        printf '%-6s %-9s %12s %12s %16s %15s\n' "$round" "$target" "$requests" "$rps" "$cpu" \
            "$(us_per_request "$eticks" "$requests")"
    done
done

# Ratios per round (runs of one round are minutes apart at most), then their median.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
cpu_ratio=() tg_direct=() ng_direct=()
for round in $(seq "$ROUNDS"); do
    cpu_ratio+=("$(ratio "${CPU[tollgate,$round]}" "${CPU[nginx,$round]}")")
    tg_direct+=("$(ratio "${RPS[tollgate,$round]}" "${RPS[direct,$round]}")")
    ng_direct+=("$(ratio "${RPS[nginx,$round]}" "${RPS[direct,$round]}")")
done
med() { printf '%s\n' "$@" | median; }
echo
echo "median over $ROUNDS rounds:"
for target in direct nginx tollgate; do
    rps=() cpu=()
    for round in $(seq "$ROUNDS"); do
        rps+=("${RPS[$target,$round]}")
        cpu+=("${CPU[$target,$round]}")
    done
    if [[ $target == direct ]]; then
        printf '  %-9s %10.0f req/s\n' "$target" "$(med "${rps[@]}")"
    else
        printf '  %-9s %10.0f req/s  %6.2f us CPU/req\n' "$target" "$(med "${rps[@]}")" "$(med "${cpu[@]}")"
    fi
done
echo
echo "ratios (per round: ${cpu_ratio[*]} | ${tg_direct[*]} | ${ng_direct[*]}):"
printf '  tollgate/nginx CPU per request   %.3f  (target: <= 1.0)\n' "$(med "${cpu_ratio[@]}")"
printf '  tollgate/direct throughput       %.3f\n' "$(med "${tg_direct[@]}")"
printf '  nginx/direct throughput          %.3f\n' "$(med "${ng_direct[@]}")"
