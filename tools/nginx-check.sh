#!/usr/bin/env bash
# Scale-out check: two `loopvk serve` replicas behind nginx (tools/nginx-loopvk.conf).
#
# Starts two replicas of the bundled model on free loopback ports (--port 0, the bound port read
# from the "listening on" log line), writes a temporary nginx config from tools/nginx-loopvk.conf
# with those ports, runs nginx as a foreground child (nginx -p TMP -c nginx.conf -g 'daemon off;':
# pid, logs and temp files in TMP, no system config used or touched), then checks through nginx:
#   * GET /health;
#   * a non-streamed completion;
#   * a streamed completion that ends with data: [DONE], with its events arriving as they are
#     made (proxy_buffering off), not all at the end;
#   * requests reach both replicas (each replica's /metrics request counter, read directly);
#   * after one replica is killed (SIGKILL), completions (whole and streamed) still succeed
#     through the other one (passive failover: max_fails/fail_timeout, proxy_next_upstream).
# Everything it started is stopped on exit. Exits non-zero on any failure, saying what failed.
#
# Usage: tools/nginx-check.sh [loopvk serve arguments...]     e.g. tools/nginx-check.sh --cpu
#   LOOPVK  the binary (default ROOT/.build/debug/loopvk, what swift test builds)
#   MODEL   the model folder (default ROOT/Models/looped-arith)
#   NGINX   the nginx binary (default: nginx on PATH; Debian: apt-get install -y nginx)
#   TEMPLATE another nginx config to template (default tools/nginx-loopvk.conf)
#   KEEP_TMP=1 keeps the temp folder (config, logs) for a look afterwards.
# Needs curl and python3.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOOPVK=${LOOPVK:-$ROOT/.build/debug/loopvk}
MODEL=${MODEL:-$ROOT/Models/looped-arith}
NGINX=${NGINX:-nginx}
TEMPLATE=${TEMPLATE:-$ROOT/tools/nginx-loopvk.conf}
PROMPT='Q: 7 plus 5 minus 9 A:'
SERVE_ARGS=("$@")

die() { echo "nginx-check: $*" >&2; exit 2; }
command -v "$NGINX" >/dev/null || die "no nginx ($NGINX) on PATH: apt-get install -y nginx (or set NGINX)"
command -v curl >/dev/null || die "no curl"
command -v python3 >/dev/null || die "no python3"
[ -x "$LOOPVK" ] || die "no executable $LOOPVK (swift build, or set LOOPVK)"
[ -e "$MODEL" ] || die "no model at $MODEL"
[ -f "$TEMPLATE" ] || die "no $TEMPLATE"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/nginx-check.XXXXXX")
PIDS=()
NGINX_PID=
FAILURES=()

cleanup() {
    local code=$?
    set +e
    if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
        kill -TERM "$NGINX_PID"; wait "$NGINX_PID" 2>/dev/null
    fi
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; fi
    done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    if [ "$code" -ne 0 ] || [ "${KEEP_TMP:-0}" = 1 ]; then
        for f in "$TMP"/replica*.log "$TMP"/error.log "$TMP"/access.log; do
            [ -s "$f" ] && { echo "--- $f (last lines)"; tail -n 15 "$f"; }
        done
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "nginx-check: kept $TMP"; else rm -rf "$TMP"; fi
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ok()   { echo "  ok   $*"; }
fail() { echo "  FAIL $*"; FAILURES+=("$*"); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }

# start_replica N -> sets REPLICA_PORT and appends the pid to PIDS.
start_replica() {
    local n=$1 log=$TMP/replica$1.log
    "$LOOPVK" serve --model "$MODEL" --host 127.0.0.1 --port 0 "${SERVE_ARGS[@]}" >/dev/null 2>"$log" &
    local pid=$!
    PIDS+=("$pid")
    local deadline=$((SECONDS + 300))
    REPLICA_PORT=
    while [ $SECONDS -lt $deadline ]; do
        REPLICA_PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -n 1)
        [ -n "$REPLICA_PORT" ] && break
        kill -0 "$pid" 2>/dev/null || die "replica $n (loopvk serve) exited before listening:
$(cat "$log")"
        sleep 0.2
    done
    [ -n "$REPLICA_PORT" ] || die "replica $n did not report its port within 300 s:
$(cat "$log")"
    echo "nginx-check: replica $n: pid $pid, port $REPLICA_PORT"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The value of loopvk_requests_total{endpoint="/v1/completions",status="200"} on a replica.
completions_served() {
    curl -sf --max-time 10 "http://127.0.0.1:$1/metrics" \
        | sed -n 's/^loopvk_requests_total{endpoint="\/v1\/completions",status="200"} \([0-9]*\)$/\1/p' | head -n 1 | grep . || echo 0
}

complete() {   # complete URL -> body on stdout, fails on a non-200 answer
    curl -sf --max-time 120 "$1/v1/completions" -H 'Content-Type: application/json' \
        -d "{\"prompt\": \"$PROMPT\", \"max_tokens\": 8, \"temperature\": 0}"
}

# stream_check URL MAX_TOKENS -> prints "events first_s total_s done" for a streamed completion.
stream_check() {
    python3 - "$1" "$2" "$PROMPT" <<'EOF'
import json, sys, time, urllib.request
url, max_tokens, prompt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True, "ignore_eos": True,
        "stream_options": {"include_usage": True}}
req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
t0 = time.perf_counter()
first, events, done, tokens = None, 0, False, None
try:
    with urllib.request.urlopen(req, timeout=300) as r:
        ctype = r.headers.get("Content-Type", "")
        for line in r:
            line = line.strip()
            if not line.startswith(b"data: "):
                continue
            data = line[6:]
            if data == b"[DONE]":
                done = True
                continue
            if done:
                done = False                  # an event after [DONE]: not the end
            ev = json.loads(data)
            events += 1
            if first is None:
                first = time.perf_counter() - t0
            if ev.get("usage"):
                tokens = ev["usage"].get("completion_tokens")
except Exception as e:
    print(f"error {type(e).__name__}: {e}")
    sys.exit(0)
print(events, f"{first if first is not None else -1:.3f}", f"{time.perf_counter() - t0:.3f}", int(done), tokens, ctype.split(";")[0])
EOF
}

echo "nginx-check: $LOOPVK, model $MODEL, serve arguments: ${SERVE_ARGS[*]:-(none)}; temp $TMP"
start_replica 1; P1=$REPLICA_PORT; PID1=${PIDS[0]}
start_replica 2; P2=$REPLICA_PORT
PN=$(free_port)

# The nginx config: the example with these ports.
sed -e "s/127\.0\.0\.1:8081/127.0.0.1:$P1/" -e "s/127\.0\.0\.1:8082/127.0.0.1:$P2/" \
    -e "s/listen 127\.0\.0\.1:8080;/listen 127.0.0.1:$PN;/" "$TEMPLATE" > "$TMP/nginx.conf"
for want in "server 127.0.0.1:$P1 " "server 127.0.0.1:$P2 " "listen 127.0.0.1:$PN;"; do
    grep -qF "$want" "$TMP/nginx.conf" || die "templating $TEMPLATE did not produce '$want' (did the example's addresses change?)"
done
mkdir -p "$TMP/tmp"
if [ "$(id -u)" = 0 ]; then chmod 755 "$TMP"; chmod 1777 "$TMP/tmp"; fi   # root's workers run as nobody
"$NGINX" -p "$TMP" -c nginx.conf -e "$TMP/error.log" -t -q || die "nginx -t rejects $TMP/nginx.conf"
"$NGINX" -p "$TMP" -c nginx.conf -e "$TMP/error.log" -g 'daemon off;' &
NGINX_PID=$!
LB=http://127.0.0.1:$PN
deadline=$((SECONDS + 20))
until curl -s -o /dev/null --max-time 2 "$LB/health"; do
    kill -0 "$NGINX_PID" 2>/dev/null || die "nginx exited: $(cat "$TMP/error.log" 2>/dev/null)"
    [ $SECONDS -lt $deadline ] || die "nginx does not answer on $LB"
    sleep 0.2
done
echo "nginx-check: nginx pid $NGINX_PID on $LB -> 127.0.0.1:$P1, 127.0.0.1:$P2"

echo "== through nginx, both replicas up"
health=$(curl -s --max-time 10 -w ' %{http_code}' "$LB/health" || true)
check "GET /health -> 200 ok ($health)" bash -c '[[ "$1" == *"\"status\":\"ok\""*" 200" ]]' _ "$health"

body=$(complete "$LB" || true)
check "non-streamed completion: 200 with text and usage" \
    python3 -c 'import json, sys; r = json.loads(sys.argv[1]); assert r["choices"][0]["text"] and r["usage"]["completion_tokens"] >= 1' "$body"
echo "       ${body:0:160}"

read -r events first total done tokens ctype <<<"$(stream_check "$LB" 8)"
check "streamed completion: $events events, ends with data: [DONE], usage $tokens tokens, $ctype" \
    bash -c '[ "$1" = 1 ] && [ "$2" -ge 2 ] && [ "$3" = 8 ] && [ "$4" = text/event-stream ]' _ "$done" "$events" "$tokens" "$ctype"

# A longer stream: its first event must arrive well before its end (nginx passes events on as
# they come). nginx 1.22 also forwarded these events promptly with proxy_buffering on, so this
# guards the streaming path as a whole more than that one setting.
read -r events first total done tokens ctype <<<"$(stream_check "$LB" 200)"
check "200-token stream is not buffered: first event at ${first} s of ${total} s, [DONE] $done" \
    python3 -c 'import sys; f, t, d = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]; assert d == "1" and 0 <= f < 0.5 * t' "$first" "$total" "$done"

before1=$(completions_served "$P1"); before2=$(completions_served "$P2")
for i in 1 2 3 4 5 6; do complete "$LB" >/dev/null || fail "completion $i of 6 through nginx"; done
after1=$(completions_served "$P1"); after2=$(completions_served "$P2")
d1=$((after1 - before1)); d2=$((after2 - before2))
check "6 completions reached both replicas (replica 1 +$d1, replica 2 +$d2)" \
    bash -c '[ "$1" -ge 1 ] && [ "$2" -ge 1 ] && [ $(($1 + $2)) -eq 6 ]' _ "$d1" "$d2"

echo "== replica 1 (port $P1) killed"
kill -KILL "$PID1"; wait "$PID1" 2>/dev/null || true
check "replica 1 is gone (its port refuses)" bash -c '! curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/health"' _ "$P1"
before2=$(completions_served "$P2")
okc=0
for i in 1 2 3 4 5 6; do
    if complete "$LB" >/dev/null; then okc=$((okc + 1)); fi
done
check "6 of 6 completions still succeed through nginx ($okc)" [ "$okc" = 6 ]
read -r events first total done tokens ctype <<<"$(stream_check "$LB" 8)"
check "streamed completion after the failover ends with [DONE] ($events events, $tokens tokens)" \
    bash -c '[ "$1" = 1 ] && [ "$2" = 8 ]' _ "$done" "$tokens"
health=$(curl -s --max-time 10 -w ' %{http_code}' "$LB/health" || true)
check "GET /health after the failover -> 200" bash -c '[[ "$1" == *" 200" ]]' _ "$health"
d2=$(( $(completions_served "$P2") - before2 ))
check "replica 2 served them all (+$d2 completions)" [ "$d2" = 7 ]
retried=$(grep -c "upstream=127.0.0.1:$P1, 127.0.0.1:$P2" "$TMP/access.log" || true)
check "nginx's access log shows requests retried from replica 1 on replica 2 ($retried)" [ "$retried" -ge 1 ]

if [ ${#FAILURES[@]} -gt 0 ]; then
    echo "nginx-check: ${#FAILURES[@]} failure(s):"
    printf '  %s\n' "${FAILURES[@]}"
    exit 1
fi
echo "nginx-check: all checks passed"
