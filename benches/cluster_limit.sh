#!/usr/bin/env bash
# Two tollgate instances sharing one Redis: does the combined rate limit hold?
#
# Starts two `tollgate serve` processes on one policy set in cluster mode ([state] mode =
# "redis", a throwaway key prefix), gives the partner's tier RATE calls per second with a
# BURST, and drives both instances with wrk at once for DURATION seconds, far above the
# limit. The calls let through (2xx) by both instances together are compared with what the
# limit allows over the run: BURST + RATE * seconds. The issue's target: within 1%.
#
# The route is a sandbox mock, so no upstream is involved; the partner signs in with
# client_secret_basic (a secret made by `tollgate partner secret`).
#
# Usage: benches/cluster_limit.sh   Knobs: DURATION=60 RATE=200 BURST=200 CONNECTIONS=16
#                                          BASE_PORT=19300 SKIP_BUILD=1
# Needs redis-server running on 127.0.0.1:6379, wrk and curl. Only talks to 127.0.0.1.
# Not run in CI; takes DURATION seconds plus the build.

set -euo pipefail
DURATION=${DURATION:-60}
RATE=${RATE:-200}
BURST=${BURST:-200}
CONNECTIONS=${CONNECTIONS:-16}
BASE_PORT=${BASE_PORT:-19300}
HOST=127.0.0.1
for n in DURATION RATE BURST CONNECTIONS BASE_PORT; do
    { [[ ${!n} =~ ^[0-9]+$ ]] && ((${!n} > 0)); } || { echo "error: $n must be a positive integer" >&2; exit 2; }
done
((DURATION <= 600)) || { echo "error: DURATION <= 600, please" >&2; exit 2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-cluster.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
die() { echo "error: $*" >&2; exit 1; }

command -v wrk >/dev/null || die "wrk is needed (apt-get install wrk)"
redis-cli -h $HOST ping >/dev/null 2>&1 || die "Redis is not answering on $HOST:6379"
if [[ -z ${SKIP_BUILD:-} ]]; then
    (cd "$REPO" && cargo build --release --quiet --bin tollgate)
fi
TOLLGATE=$TARGET_DIR/release/tollgate
[[ -x $TOLLGATE ]] || die "$TOLLGATE not built"

POLICY=$WORK/policy
mkdir -p "$POLICY/policies/partners" "$POLICY/catalogue/bench" "$POLICY/keys"
SECRET_OUT=$("$TOLLGATE" partner secret)
SECRET=$(sed -n 's/^client_secret: //p' <<<"$SECRET_OUT")
HASH_LINE=$(grep '^secret_hash' <<<"$SECRET_OUT")
[[ -n $SECRET && -n $HASH_LINE ]] || die "cannot make a client secret"

cat >"$POLICY/policies/gateway.toml" <<EOF
[[listeners]]
name = "public"
address = "$HOST:$BASE_PORT"

[admin]
address = "$HOST:$((BASE_PORT + 2))"

[environments.sandbox]
hosts = ["sandbox.bench"]

[state]
mode = "redis"
url = "redis://$HOST:6379"
key_prefix = "clusterbench:$(date +%s%N):"

[oauth]
issuer = "https://auth.bench"
signing_key = "keys/token-signing.pem"
key_id = "cluster-bench"
generate_key = true
EOF
cat >"$POLICY/policies/scopes.toml" <<'EOF'
[scopes."items:read"]
description = "Read items"
EOF
cat >"$POLICY/policies/tiers.toml" <<EOF
[tiers.bench]
name = "Bench"
environments = ["sandbox"]
token_lifetime = "60m"
rate = "$RATE/s"
burst = $BURST
on_store_unavailable = "fail-closed"
EOF
cat >"$POLICY/policies/partners/bench.toml" <<EOF
id = "bench"
legal_name = "Cluster Bench Ltd"
tier = "bench"
environments = ["sandbox"]

[contract]
version = "2026.1"
accepted = "2026-01-15"

[grants]
products = ["items"]
scopes = ["items:read"]

[[credentials]]
client_id = "bench-sandbox"
environment = "sandbox"
method = "client_secret_basic"
$HASH_LINE
EOF
cat >"$POLICY/catalogue/bench/items.toml" <<'EOF'
id = "items"
name = "Items"
version = "1.0.0"
data_class = "public"

[upstream]
sandbox = "mock"

[[routes]]
id = "items.touch"
method = "GET"
path = "/v1/items"
scope = "items:read"
mock_status = 204
EOF

start() { # listen admin log
    RUST_LOG=warn "$TOLLGATE" serve --root "$POLICY" --no-watch --listen "$1" --admin "$2" >"$WORK/$3.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://$2/admin/health" && return 0
        sleep 0.1
    done
    die "tollgate ($3) did not start; see $WORK/$3.log"
}
start "$HOST:$BASE_PORT" "$HOST:$((BASE_PORT + 2))" a
start "$HOST:$((BASE_PORT + 1))" "$HOST:$((BASE_PORT + 3))" b

TOKEN=$(curl -s -u "bench-sandbox:$SECRET" -H 'Host: sandbox.bench' -d grant_type=client_credentials \
    "http://$HOST:$BASE_PORT/oauth2/token" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ -n $TOKEN ]] || die "no access token"

# wrk's own summary rounds the run's length (a 60 s run prints "1.00m", +/- 0.3 s, as much
# as the target) and lumps every non-2xx answer together, so a Lua hook counts the answers
# by status (2xx, 429, anything else) and prints the exact duration in microseconds.
cat >"$WORK/count.lua" <<'EOF'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok, limited, other = 0, 0, 0 end
function response(status, headers, body)
    if status >= 200 and status < 300 then ok = ok + 1
    elseif status == 429 then limited = limited + 1
    else other = other + 1 end
end
function done(summary, latency, requests)
    local o, l, x = 0, 0, 0
    for _, t in ipairs(threads) do o = o + t:get("ok"); l = l + t:get("limited"); x = x + t:get("other") end
    io.write(string.format("counted: %d %d %d %d %d\n", summary.requests, o, l, x, summary.duration))
end
EOF

echo "two instances, rate $RATE/s burst $BURST shared through Redis, wrk -c$CONNECTIONS -d${DURATION}s on each"
WRK=()
for port in "$BASE_PORT" "$((BASE_PORT + 1))"; do
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/count.lua" -H 'Host: sandbox.bench' \
        -H "Authorization: Bearer $TOKEN" "http://$HOST:$port/v1/items" >"$WORK/wrk-$port.txt" 2>&1 &
    WRK+=($!)
done
for pid in "${WRK[@]}"; do wait "$pid" || die "wrk failed: $(cat "$WORK"/wrk-*.txt)"; done

allowed=0 seconds=0
for port in "$BASE_PORT" "$((BASE_PORT + 1))"; do
    out=$(<"$WORK/wrk-$port.txt")
    read -r n ok limited other us < <(awk '/^counted:/ {print $2, $3, $4, $5, $6}' <<<"$out") ||
        die "cannot read wrk output: $out"
    [[ -n $us ]] || die "cannot read wrk output: $out"
    ((other == 0)) || die "instance on :$port answered $other calls with neither 2xx nor 429: $out"
    ((n == ok + limited)) || die "instance on :$port: $n calls but $ok + $limited counted: $out"
    allowed=$((allowed + ok))
    s=$(awk -v us="$us" 'BEGIN { printf "%.3f", us / 1e6 }')
    seconds=$(awk -v a="$seconds" -v b="$s" 'BEGIN { print (b > a ? b : a) }')
    echo "  instance on :$port: $n calls in ${s}s, $ok let through, $limited refused (429)"
done
# The limit is measured over the longer of the two runs; they start milliseconds apart.
awk -v ok="$allowed" -v rate="$RATE" -v burst="$BURST" -v s="$seconds" 'BEGIN {
    expected = burst + rate * s
    dev = (ok - expected) / expected * 100
    printf "let through: %d, the limit allows %.0f (burst %d + %d/s x %.3fs): %+.2f%%\n", ok, expected, burst, rate, s, dev
    if (dev < 0) dev = -dev
    printf "%s (target: within 1%%)\n", (dev <= 1 ? "holds" : "MISSED")
}'
