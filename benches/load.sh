#!/usr/bin/env bash
# Load test on loopback: the CPU a proxied request costs in tollgate vs nginx.
#
# Three targets (four with MASKING=1, below), measured in ALTERNATING rounds so that drift
# on a shared, noisy machine hits all of them alike:
#   direct    wrk -> echo_upstream
#   nginx     wrk -> nginx (plain reverse proxy, 1 worker, keep-alive upstream) -> echo
#   tollgate  wrk -> tollgate serve (1 tokio worker, RUST_LOG=warn) -> echo
#
# tollgate authenticates every API request, so every run sends
# "Authorization: Bearer <token>" (to all three targets, so the requests are the same bytes);
# the token comes from tollgate's own token endpoint during set-up (private_key_jwt, with a
# client assertion the script signs with openssl). nginx and the echo upstream ignore it.
#
# TLS=1: tollgate and nginx both terminate TLS on their listener (the same throwaway
# P-256 certificate, issued by a throwaway CA the script generates), and wrk speaks HTTPS
# to them; "direct" stays cleartext, as the upstream hop of both proxies does.
#
# For every run it prints requests/s and the proxy's CPU time per request (utime + stime
# from /proc/<pid>/stat, before and after, over requests completed); at the end, medians
# and the ratios docs/performance.md reports.
#
# MASKING=1: the measured route gets a response_schema (x-data-class marks: pii fields, a
# pci-pan, a pci-sad, and members the schema does not declare) and the bench partner's tier
# a masking profile (partial, hash, tokenize, remove; policies/masking.toml with a generated
# key), and the echo upstream answers every request with a ~2 KB record holding those fields
# (echo_upstream --body). A fourth target runs in the same alternating rounds:
#   passthru  wrk -> tollgate, on a second route of the same product with no response_schema
#             (the body streams through untouched) -> echo, same 2 KB body
# and the summary adds masked/passthrough ratios of requests/s and CPU per request (the
# issue's target: throughput with masking within 20% of passthrough).
# PAIRED=1 (with MASKING=1): only tollgate and passthru are measured, back to back in each
# round (the order alternating), so each round's ratio compares two adjacent windows. On a
# shared machine whose speed drifts over tens of seconds, the four-target rounds put up to
# three windows between the two; this mode is for the masking ratio alone (no nginx or
# direct figures). More, shorter rounds suit it: ROUNDS=15 DURATION=5.
#
# LIMITS=local: the bench partner's tier has a rate and both quotas (set far above what
# the run sends, so every call is checked and consumed but none refused), checked in the
# embedded store. LIMITS=redis: the same in cluster mode against Redis on 127.0.0.1:6379
# (which must be running), under a throwaway key prefix.
#
# METERING=1: billing is on. The measured route emits a billable event priced in a
# policies/pricing.toml, so every answered call hands a usage record to the meter, whose
# writer batches them into the SQLite ledger (data/usage.db in the bench's policy dir). At
# the end the script stops tollgate (which drains the writer) and compares the ledger's row
# count with the 2xx answers wrk counted for tollgate, and reads the meter's drops from
# /admin/metrics: the writer keeps up when no record was dropped and every call is a row.
#
# Usage: benches/load.sh            (from anywhere in the repository)
#        TLS=1 benches/load.sh      (HTTPS to both proxies)
#        LIMITS=local benches/load.sh, LIMITS=redis benches/load.sh
#        MASKING=1 benches/load.sh  (masked vs passthrough, 2 KB bodies; combines with the others)
#        MASKING=1 PAIRED=1 ROUNDS=15 DURATION=5 benches/load.sh  (that ratio alone, adjacent windows)
#        METERING=1 benches/load.sh (every call metered into the SQLite ledger; combines too)
# Knobs (environment): ROUNDS=3 DURATION=10 CONNECTIONS=32 THREADS=1 WARMUP=3 TLS=0 LIMITS=off
#                      MASKING=0 (1: about 4 minutes with the defaults) PAIRED=0
#                      BASE_PORT=19200 (uses BASE_PORT..BASE_PORT+3 on 127.0.0.1)
#                      SKIP_BUILD=1 to use the binaries already in target/release.
#                      PROFILE=DIR: perf records tollgate during each measured run, into
#                      DIR/<round>-<target>.data (perf report -i ...); perf takes CPU from the
#                      run it records, so figures from such a run are not comparable.
# Needs openssl (for the keys, the client assertion and, with TLS=1, the certificates).
# Only ever sends traffic to 127.0.0.1. Not run in CI. Takes about 2-3 minutes plus
# the build.

set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-3}
BASE_PORT=${BASE_PORT:-19200}
TLS=${TLS:-0}
LIMITS=${LIMITS:-off}
MASKING=${MASKING:-0}
PAIRED=${PAIRED:-0}
METERING=${METERING:-0}
PROFILE=${PROFILE:-}
HOST=127.0.0.1
# The Host (and, with TLS, the certificate name) partners would use.
API_HOST=api.bench
ECHO_PORT=$BASE_PORT
NGINX_PORT=$((BASE_PORT + 1))
TOLLGATE_PORT=$((BASE_PORT + 2))
ADMIN_PORT=$((BASE_PORT + 3))
REQUEST_PATH=/v1/items/rec-1f2e3d4c
# MASKING=1 only: the same product's route with no response_schema.
PLAIN_PATH=/v1/plain/items/rec-1f2e3d4c

for n in ROUNDS DURATION CONNECTIONS THREADS WARMUP BASE_PORT; do
    if ! [[ ${!n} =~ ^[0-9]+$ ]] || ((${!n} < 1)); then
        echo "error: $n must be a positive integer" >&2
        exit 2
    fi
done
if [[ $TLS != 0 && $TLS != 1 ]]; then
    echo "error: TLS must be 0 or 1" >&2
    exit 2
fi
if [[ $MASKING != 0 && $MASKING != 1 ]]; then
    echo "error: MASKING must be 0 or 1" >&2
    exit 2
fi
if [[ $PAIRED != 0 && ! ($PAIRED == 1 && $MASKING == 1) ]]; then
    echo "error: PAIRED=1 needs MASKING=1 (it measures the masked route against passthrough)" >&2
    exit 2
fi
if [[ $METERING != 0 && $METERING != 1 ]]; then
    echo "error: METERING must be 0 or 1" >&2
    exit 2
fi
if [[ -n $PROFILE ]]; then
    command -v perf >/dev/null || { echo "error: PROFILE needs perf" >&2; exit 2; }
    mkdir -p "$PROFILE" && PROFILE=$(cd "$PROFILE" && pwd)
fi
if [[ $LIMITS != off && $LIMITS != local && $LIMITS != redis ]]; then
    echo "error: LIMITS must be off, local or redis" >&2
    exit 2
fi
if ((ROUNDS > 20 || DURATION > 120)); then
    echo "error: ROUNDS <= 20 and DURATION <= 120, please" >&2
    exit 2
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The customer record, its response schema and masking profile (MASKING=1); benches/masking.rs
# projects the same record with the same plan.
FIXTURES=$REPO/benches/fixtures
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
command -v openssl >/dev/null || need_install+=(openssl)
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

# What is measured, in this order in round 1 (later rounds rotate it). passthru is
# tollgate too (same process), on the route with no response_schema.
TARGETS=(direct nginx tollgate)
[[ $MASKING == 1 ]] && TARGETS+=(passthru)
[[ $PAIRED == 1 ]] && TARGETS=(tollgate passthru)

port_of() { # target
    case $1 in
    direct) echo "$ECHO_PORT" ;;
    nginx) echo "$NGINX_PORT" ;;
    tollgate | passthru) echo "$TOLLGATE_PORT" ;;
    esac
}

path_of() { # target
    if [[ $1 == passthru ]]; then echo "$PLAIN_PATH"; else echo "$REQUEST_PATH"; fi
}

# The URL wrk uses for a target. The Host header (api.bench) is sent separately; with TLS,
# wrk's SNI is then 127.0.0.1, which both servers ignore (they have one certificate).
url_of() { # target
    if [[ $TLS == 1 && $1 != direct ]]; then
        echo "https://$HOST:$(port_of "$1")"
    else
        echo "http://$HOST:$(port_of "$1")"
    fi
}

# curl to a target, HTTP/1.1 like wrk. With TLS it connects to https://api.bench:PORT
# pinned to 127.0.0.1, so the certificate chain and name are verified against the bench CA.
curl_to() { # target path curl-args...
    local target=$1 path=$2 port
    shift 2
    port=$(port_of "$target")
    if [[ $TLS == 1 && $target != direct ]]; then
        curl -s --max-time 10 --http1.1 --cacert "$TLS_DIR/ca.pem" \
            --resolve "$API_HOST:$port:$HOST" "$@" "https://$API_HOST:$port$path"
    else
        curl -s --max-time 10 --http1.1 -H "Host: $API_HOST" "$@" "http://$HOST:$port$path"
    fi
}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# --- keys and certificates ------------------------------------------------------------

POLICY=$WORK/policy
TLS_DIR=$POLICY/tls
mkdir -p "$POLICY/policies/partners" "$POLICY/catalogue/bench" "$POLICY/keys" "$TLS_DIR"

# tollgate's token-signing key (EdDSA) and the bench partner's client-assertion key
# (Ed25519 too, so that openssl alone can sign the assertion: raw 64-byte signatures).
openssl genpkey -algorithm ed25519 -out "$POLICY/keys/token-signing.pem" 2>"$WORK/openssl.log" ||
    die "openssl cannot generate an Ed25519 key; see $WORK/openssl.log"
CLIENT_KEY=$WORK/client-assertion.pem
openssl genpkey -algorithm ed25519 -out "$CLIENT_KEY" 2>>"$WORK/openssl.log" ||
    die "openssl cannot generate an Ed25519 key; see $WORK/openssl.log"
# The public key is the last 32 bytes of its SubjectPublicKeyInfo DER.
CLIENT_X=$(openssl pkey -in "$CLIENT_KEY" -pubout -outform DER | tail -c 32 | b64url)
[[ ${#CLIENT_X} == 43 ]] || die "cannot read the client public key"

if [[ $TLS == 1 ]]; then
    # A throwaway CA and a P-256 server certificate for api.bench and 127.0.0.1, valid 2
    # days. Both proxies serve the same certificate and key.
    {
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS_DIR/ca.key" &&
            openssl req -x509 -new -key "$TLS_DIR/ca.key" -sha256 -days 2 \
                -subj "/CN=tollgate load bench CA" \
                -addext "basicConstraints=critical,CA:TRUE" \
                -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$TLS_DIR/ca.pem" &&
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS_DIR/server.key" &&
            openssl req -new -key "$TLS_DIR/server.key" -subj "/CN=$API_HOST" -out "$TLS_DIR/server.csr" &&
            printf '%s\n' "basicConstraints = critical, CA:FALSE" \
                "keyUsage = critical, digitalSignature" \
                "extendedKeyUsage = serverAuth" \
                "subjectAltName = DNS:$API_HOST, IP:$HOST" >"$TLS_DIR/server.ext" &&
            openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
                -set_serial "0x$(openssl rand -hex 8)" -days 2 -sha256 -extfile "$TLS_DIR/server.ext" \
                -out "$TLS_DIR/server.pem"
    } >>"$WORK/openssl.log" 2>&1 || die "cannot generate the bench certificates; see $WORK/openssl.log"
fi

# --- MASKING=1: the record the upstream answers --------------------------------------

# About 2 KB of compact JSON, as a core would send it: a customer's personal data, an
# account, a card with its PAN and CVV, four transactions, and members the response schema
# (below) does not declare (kyc_risk_rating, marketing_consent, internal_ledger_id,
# pin_offset, fraud_score, core_trace). benches/fixtures/customer_record.json is indented,
# one member per line, and compacted here by stripping each line's indent and the newlines
# (no value holds a newline).
RECORD=$WORK/record.json
echo_args=("$HOST:$ECHO_PORT")
if [[ $MASKING == 1 ]]; then
    sed 's/^ *//' "$FIXTURES/customer_record.json" | tr -d '\n' >"$RECORD"
    echo_args+=(--body "$RECORD")
fi

# --- echo upstream --------------------------------------------------------------------

# One worker thread, like the two proxies: on two cores, wrk, the proxy and the upstream
# already share the machine.
TOKIO_WORKER_THREADS=1 "$ECHO" "${echo_args[@]}" >"$WORK/echo.log" 2>&1 &
ECHO_PID=$!
PIDS+=("$ECHO_PID")
wait_for_port "$ECHO_PORT" "$ECHO_PID" echo

# --- nginx ----------------------------------------------------------------------------

mkdir -p "$WORK/nginx"
nginx_listen="$HOST:$NGINX_PORT"
nginx_tls=""
if [[ $TLS == 1 ]]; then
    nginx_listen+=" ssl"
    # wrk keeps its connections open for the whole run, and tollgate (hyper) sets no limit
    # on requests per connection; nginx's default keepalive_requests (1000) would add a
    # TLS handshake every 1000 requests to nginx's side only.
    nginx_tls="ssl_certificate $TLS_DIR/server.pem;
        ssl_certificate_key $TLS_DIR/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        keepalive_requests 1000000000;"
fi
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
        listen $nginx_listen;
        $nginx_tls
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

ISSUER=https://auth.bench
CLIENT_ID=bench-production
CLIENT_KID=bench-client-1
listener_tls=""
if [[ $TLS == 1 ]]; then
    listener_tls='
[listeners.tls]
certificate = "tls/server.pem"
private_key = "tls/server.key"'
fi
cat >"$POLICY/policies/gateway.toml" <<EOF
[gateway]
name = "load bench"

[[listeners]]
name = "public"
address = "$HOST:$TOLLGATE_PORT"
$listener_tls

[admin]
address = "$HOST:$ADMIN_PORT"

[environments.production]
hosts = ["$API_HOST"]

[upstreams.echo]
url = "http://$HOST:$ECHO_PORT/core"
connect_timeout = "1s"
timeout = "5s"
pool_max_idle = 128

[oauth]
issuer = "$ISSUER"
signing_key = "keys/token-signing.pem"
key_id = "load-bench"
EOF
if [[ $LIMITS == redis ]]; then
    redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || die "LIMITS=redis needs Redis on 127.0.0.1:6379"
    cat >>"$POLICY/policies/gateway.toml" <<EOF

[state]
mode = "redis"
url = "redis://127.0.0.1:6379"
key_prefix = "loadbench:$(openssl rand -hex 6):"
EOF
fi
tier_limits=""
if [[ $LIMITS != off ]]; then
    # Far above what one run can send: every call is checked and consumed, none refused.
    tier_limits='rate = "1000000/s"
burst = 1000000
quota = { day = 1000000000, month = 1000000000 }'
fi
cat >"$POLICY/policies/scopes.toml" <<'EOF'
[scopes."items:read"]
description = "Read items"
EOF
tier_masking=""
[[ $MASKING == 1 ]] && tier_masking='masking = "bench"'
tier_plan="" items_get_billing=""
if [[ $METERING == 1 ]]; then
    tier_plan='plan = "bench"'
    items_get_billing='billable_event = "items.read"'
    cat >"$POLICY/policies/pricing.toml" <<'EOF'
[plans.bench]
name = "Bench"
currency = "GBP"
subscription = "100.00"
included_calls = 1000

[plans.bench.events]
"items.read" = { bands = [{ from = 1, to = 1000000, price = "0.002" }, { from = 1000001, price = "0.001" }] }
EOF
fi
# Tokens live as long as tollgate allows (60m); ensure_token renews older ones.
cat >"$POLICY/policies/tiers.toml" <<EOF
[tiers.bench]
name = "Bench"
environments = ["production"]
token_lifetime = "60m"
$tier_masking
$tier_limits
$tier_plan
EOF
cat >"$POLICY/policies/partners/bench.toml" <<EOF
id = "bench"
legal_name = "Load Bench Ltd"
tier = "bench"
environments = ["production"]

[contract]
version = "2026.1"
accepted = "2026-01-15"

[grants]
products = ["items"]
scopes = ["items:read"]

[[credentials]]
client_id = "$CLIENT_ID"
environment = "production"
method = "private_key_jwt"
jwks = { keys = [{ kty = "OKP", crv = "Ed25519", x = "$CLIENT_X", kid = "$CLIENT_KID", alg = "EdDSA", use = "sig" }] }
EOF
product_class=public items_get_schema=""
if [[ $MASKING == 1 ]]; then
    # The record's personal data makes the product `pii`. Not `pci`: that would require a
    # PCI DSS attestation, and the bench partner has none, so the gateway takes the costlier
    # path of an unattested partner (the card-number safety net looks at every field not
    # classed public; the profile tokenizes the PAN).
    product_class=pii
    items_get_schema='response_schema = "schemas/record.json"'
fi
cat >"$POLICY/catalogue/bench/items.toml" <<EOF
id = "items"
name = "Items"
version = "1.0.0"
data_class = "$product_class"

[upstream]
production = "echo"

[[routes]]
id = "items.list"
method = "GET"
path = "/v1/items"
scope = "items:read"
upstream_path = "/items"

[[routes]]
id = "items.get"
method = "GET"
path = "/v1/items/{item_id}"
scope = "items:read"
upstream_path = "/items/{item_id}"
$items_get_schema
$items_get_billing
EOF
if [[ $MASKING == 1 ]]; then
    # The passthrough route: same product, scope and upstream, no response_schema, so the
    # body streams through as the core sent it (the "passthru" target).
    cat >>"$POLICY/catalogue/bench/items.toml" <<'EOF'

[[routes]]
id = "items.get-plain"
method = "GET"
path = "/v1/plain/items/{item_id}"
scope = "items:read"
upstream_path = "/items/{item_id}"
EOF
    # What the partner may receive of the record (projection drops the rest), with its data
    # classes: 12 pii fields, the PAN (pci-pan) and the CVV (pci-sad, removed for everyone).
    mkdir -p "$POLICY/catalogue/bench/schemas"
    cp "$FIXTURES/customer_record.schema.json" "$POLICY/catalogue/bench/schemas/record.json"
    # The tier's profile. Every pii field must be covered, or the set does not compile.
    cp "$FIXTURES/customer_record.masking.toml" "$POLICY/policies/masking.toml"
fi
"$TOLLGATE" check --root "$POLICY" >"$WORK/check.log" 2>&1 ||
    die "the bench policy set does not compile: $(cat "$WORK/check.log")"
TOKIO_WORKER_THREADS=1 RUST_LOG=warn \
    "$TOLLGATE" serve --root "$POLICY" --no-watch >"$WORK/tollgate.log" 2>&1 &
TOLLGATE_PID=$!
PIDS+=("$TOLLGATE_PID")
wait_for_port "$TOLLGATE_PORT" "$TOLLGATE_PID" tollgate

# --- an access token from tollgate's token endpoint -----------------------------------

# A client assertion (RFC 7523) for the bench credential, signed Ed25519 by openssl.
client_assertion() {
    local now header claims signature
    now=$(date +%s)
    header=$(printf '{"alg":"EdDSA","typ":"JWT","kid":"%s"}' "$CLIENT_KID" | b64url)
    claims=$(printf '{"iss":"%s","sub":"%s","aud":"%s/oauth2/token","jti":"%s","iat":%d,"exp":%d}' \
        "$CLIENT_ID" "$CLIENT_ID" "$ISSUER" "$(openssl rand -hex 16)" "$now" $((now + 60)) | b64url)
    printf '%s.%s' "$header" "$claims" >"$WORK/assertion.txt"
    signature=$(openssl pkeyutl -sign -rawin -inkey "$CLIENT_KEY" -in "$WORK/assertion.txt" | b64url)
    [[ ${#signature} == 86 ]] || die "openssl did not sign the client assertion"
    printf '%s.%s' "$header.$claims" "$signature"
}

# POST /oauth2/token (client_credentials, private_key_jwt); prints the access token.
fetch_token() {
    local assertion code token
    assertion=$(client_assertion)
    code=$(curl_to tollgate /oauth2/token -o "$WORK/token.json" -w '%{http_code}' \
        -H 'Content-Type: application/x-www-form-urlencoded' \
        --data "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=$assertion") ||
        true
    [[ $code == 200 ]] || die "the token endpoint answered $code: $(head -c 300 "$WORK/token.json" 2>/dev/null)"
    token=$(sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p' "$WORK/token.json")
    [[ -n $token ]] || die "no access_token in $(head -c 300 "$WORK/token.json")"
    echo "$token"
}

TOKEN="" TOKEN_AT=0
# Renews the token once it is 50 minutes old, so that long runs (ROUNDS=20 DURATION=120
# is about 2 hours) never send an expired one. Call it in the main shell, not in $(...).
ensure_token() {
    local now
    now=$(date +%s)
    if ((now - TOKEN_AT > 3000)); then
        TOKEN=$(fetch_token)
        TOKEN_AT=$now
    fi
}
ensure_token

# --- sanity: every target answers 200 with the echo body ------------------------------

# With MASKING=1, the upstream's record must come through the direct, nginx and passthrough
# targets byte for byte, and through the masked route treated: projected, the CVV removed,
# the PAN tokenized (digits replaced but the last four), personal data masked.
for target in "${TARGETS[@]}"; do
    got=$(curl_to "$target" "$(path_of "$target")" -H "Authorization: Bearer $TOKEN" \
        -o "$WORK/probe.json" -w '%{http_code}') || true
    { [[ $got == 200 ]] && grep -q echo-upstream "$WORK/probe.json"; } ||
        die "$target answered $got: $(head -c 300 "$WORK/probe.json" 2>/dev/null)"
    if [[ $MASKING == 1 && $target != tollgate ]]; then
        cmp -s "$RECORD" "$WORK/probe.json" || die "$target changed the record: $(head -c 300 "$WORK/probe.json")"
    elif [[ $MASKING == 1 ]]; then
        for leak in 4111111111111111 '"cvv"' jane.doe@example.com 1984-07-19 'Harbour Street' \
            31926819 GB29NWBK60161331926819 kyc_risk_rating internal_ledger_id pin_offset \
            fraud_score core_trace 11223344; do
            grep -qF -- "$leak" "$WORK/probe.json" &&
                die "the masked route let $leak through: $(head -c 2100 "$WORK/probe.json")"
        done
        { grep -qE '"pan":"[0-9]{12}1111"' "$WORK/probe.json" &&
            grep -qF '"name":"J*****************"' "$WORK/probe.json"; } ||
            die "the masked route did not tokenize the PAN and mask the name: $(head -c 2100 "$WORK/probe.json")"
        MASKED_BYTES=$(wc -c <"$WORK/probe.json")
    fi
done
# ... and tollgate does check the token on the route measured.
got=$(curl_to tollgate "$REQUEST_PATH" -o /dev/null -w '%{http_code}') || true
[[ $got == 401 ]] || die "tollgate answered $got without a token; expected 401"
got=$(curl_to tollgate "$REQUEST_PATH" -H "Authorization: Bearer ${TOKEN%?????}AAAAA" \
    -o /dev/null -w '%{http_code}') || true
[[ $got == 401 ]] || die "tollgate answered $got to a forged token; expected 401"

# The TLS version, suite, certificate signature, key exchange and certificate check of a
# proxy's listener, as wrk will get them (the same OpenSSL with the same defaults).
tls_summary() { # target
    timeout 10 openssl s_client -brief -connect "$HOST:$(port_of "$1")" -servername "$API_HOST" \
        -CAfile "$TLS_DIR/ca.pem" </dev/null 2>&1 |
        awk -F': ' '/^(Protocol version|Ciphersuite|Signature type|Server Temp Key|Verification):/ {
            printf "%s%s", sep, ($1 == "Verification" ? "verify " : "") $2; sep = ", " } END { print "" }'
}

# --- runs -----------------------------------------------------------------------------

# run TARGET SECONDS [ROUND] -> prints "requests rps proxy_ticks echo_ticks"; with PROFILE,
# a measured round's run of tollgate is recorded into PROFILE/ROUND-TARGET.data.
run() {
    local target=$1 seconds=$2 round=${3:-} out before=0 after=0 ebefore eafter requests rps
    local -a pids=()
    case $target in
    nginx) pids=("$NGINX_PID" "$NGINX_WORKER") ;;
    tollgate | passthru) pids=("$TOLLGATE_PID") ;;
    esac
    local perf_pid=""
    if [[ -n $PROFILE && -n $round && ($target == tollgate || $target == passthru) ]]; then
        perf record -F 999 -g -p "${pids[0]}" -o "$PROFILE/$round-$target.data" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    if ((${#pids[@]})); then before=$(cpu_ticks "${pids[@]}"); fi
    ebefore=$(cpu_ticks "$ECHO_PID")
    out=$(timeout $((seconds + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${seconds}s" \
        -H "Host: $API_HOST" -H "Authorization: Bearer $TOKEN" "$(url_of "$target")$(path_of "$target")") ||
        die "wrk against $target failed"
    eafter=$(cpu_ticks "$ECHO_PID")
    if ((${#pids[@]})); then after=$(cpu_ticks "${pids[@]}"); fi
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
    fi
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
log "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds x ${#TARGETS[@]} targets, GET $REQUEST_PATH with a bearer token, limits: $LIMITS"
if [[ $TLS == 1 ]]; then
    log "TLS to nginx and tollgate; direct stays cleartext"
    log "  nginx:    $(tls_summary nginx)"
    log "  tollgate: $(tls_summary tollgate)"
else
    log "cleartext HTTP to every target"
fi
if [[ $MASKING == 1 ]]; then
    log "masking: the upstream answers a $(wc -c <"$RECORD")-byte record; tollgate masks it to $MASKED_BYTES bytes on"
    log "  $REQUEST_PATH (profile bench); passthru is tollgate on $PLAIN_PATH (no response_schema)"
fi
log "warming up (${WARMUP}s each)"
TG_CALLS=0 # every answer wrk counted from tollgate's metered route (METERING=1)
for target in "${TARGETS[@]}"; do
    ensure_token
    result=$(run "$target" "$WARMUP")
    [[ $target == tollgate ]] && TG_CALLS=$((TG_CALLS + ${result%% *}))
done

declare -A RPS CPU
printf '%-6s %-9s %12s %12s %16s %15s\n' round target requests req/s proxy_cpu_us/req echo_cpu_us/req
for round in $(seq "$ROUNDS"); do
    # Rotate the order each round so no target always runs first or last.
    shift_by=$(((round - 1) % ${#TARGETS[@]}))
    order=("${TARGETS[@]:shift_by}" "${TARGETS[@]:0:shift_by}")
    for target in "${order[@]}"; do
        ensure_token
        result=$(run "$target" "$DURATION" "$round")
        read -r requests rps ticks eticks <<<"$result"
        cpu=$(us_per_request "$ticks" "$requests")
        RPS[$target,$round]=$rps
        CPU[$target,$round]=$cpu
        [[ $target == tollgate ]] && TG_CALLS=$((TG_CALLS + requests))
        [[ $target == direct ]] && cpu="-"
        printf '%-6s %-9s %12s %12s %16s %15s\n' "$round" "$target" "$requests" "$rps" "$cpu" \
            "$(us_per_request "$eticks" "$requests")"
    done
done

# Ratios per round (runs of one round are minutes apart at most), then their median.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
cpu_ratio=() tg_direct=() ng_direct=() mask_rps=() mask_cpu=()
for round in $(seq "$ROUNDS"); do
    if [[ $PAIRED == 0 ]]; then
        cpu_ratio+=("$(ratio "${CPU[tollgate,$round]}" "${CPU[nginx,$round]}")")
        tg_direct+=("$(ratio "${RPS[tollgate,$round]}" "${RPS[direct,$round]}")")
        ng_direct+=("$(ratio "${RPS[nginx,$round]}" "${RPS[direct,$round]}")")
    fi
    if [[ $MASKING == 1 ]]; then
        mask_rps+=("$(ratio "${RPS[tollgate,$round]}" "${RPS[passthru,$round]}")")
        mask_cpu+=("$(ratio "${CPU[tollgate,$round]}" "${CPU[passthru,$round]}")")
    fi
done
med() { printf '%s\n' "$@" | median; }
echo
echo "median over $ROUNDS rounds ($([[ $TLS == 1 ]] && echo "TLS to both proxies" || echo cleartext), bearer token, limits: $LIMITS, masking: $([[ $MASKING == 1 ]] && echo on || echo off)):"
for target in "${TARGETS[@]}"; do
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
if [[ $PAIRED == 0 ]]; then
    echo
    echo "ratios (per round: ${cpu_ratio[*]} | ${tg_direct[*]} | ${ng_direct[*]}):"
    printf '  tollgate/nginx CPU per request   %.3f  (target: <= 1.0)\n' "$(med "${cpu_ratio[@]}")"
    printf '  tollgate/direct throughput       %.3f\n' "$(med "${tg_direct[@]}")"
    printf '  nginx/direct throughput          %.3f\n' "$(med "${ng_direct[@]}")"
fi
if [[ $MASKING == 1 ]]; then
    echo
    echo "masked (tollgate) / passthrough (passthru), same process$([[ $PAIRED == 1 ]] && echo ", adjacent windows") (per round: ${mask_rps[*]} | ${mask_cpu[*]}):"
    printf '  throughput                       %.3f  (target: >= 0.80, i.e. within 20%%)\n' "$(med "${mask_rps[@]}")"
    printf '  CPU per request                  %.3f\n' "$(med "${mask_cpu[@]}")"
fi
if [[ $METERING == 1 ]]; then
    # Stop tollgate (SIGTERM drains the meter's writer), then count the ledger's rows.
    dropped=$(curl -s "http://$HOST:$ADMIN_PORT/admin/metrics" | awk '/^tollgate_meter_dropped_total/ { print $2 }')
    kill -TERM "$TOLLGATE_PID" 2>/dev/null || true
    wait "$TOLLGATE_PID" 2>/dev/null || true
    rows=$("$TOLLGATE" billing usage --root "$POLICY" | tail -n +2 | wc -l)
    echo
    echo "metering: $rows usage rows for $TG_CALLS calls wrk counted on tollgate (plus the set-up checks' calls); $dropped dropped"
    if [[ ${dropped:-1} != 0 ]] || ((rows < TG_CALLS)); then
        echo "  the writer did NOT keep up"
    else
        echo "  the writer kept up: every call is a row, none dropped"
    fi
fi
