#!/usr/bin/env bash
# The web view while the daemon ingests: latency as support staff see it
# on a busy mail host.
#
# Usage: benches/web-under-ingest.sh [LINES] [RATE] [SECONDS] [CLIENTS] [SCRAPE_MS] [PROFILE]
#        (default 1000000 lines, 5000 lines/s, 60 s, 20 clients, a scrape every 1000 ms,
#        the generator's mixed profile for the database served)
#
# Generates a log of LINES lines and ingests it, then, on the same database:
#   - `exim-pilot run` tails that log while `live_latency` appends RATE lines/s
#     to it and scrapes `/metrics` every SCRAPE_MS ms (the daemon at nice 10,
#     as its unit runs it);
#   - `exim-pilot serve` answers `web_load`'s CLIENTS clients (at nice 19, as
#     its unit runs it). SERVE_NICE and DAEMON_NICE set other priorities.
# Prints web_load's table (p50, p99, max per page, the worst p99), then the
# daemon's append-to-commit latency and the scrapes' times.
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
rate=${2:-5000}
seconds=${3:-60}
clients=${4:-20}
scrape_ms=${5:-1000}
profile=${6:-mixed}

cargo build --release --quiet --features synth --bin exim-pilot \
  --example generate_log --example live_latency --example web_load
binary=target/release/exim-pilot
work=$(mktemp -d)
serve_pid=
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
target/release/examples/generate_log "$lines" 42 new "$profile" >"$work/mainlog" 2>/dev/null
"$binary" ingest --db "$work/db" "$work/mainlog" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nice -n "${SERVE_NICE:-19}" "$binary" serve --db "$work/db" --listen "127.0.0.1:$port" 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/assets/style.css" >/dev/null 2>&1 && break
  sleep 0.1
done
# The daemon starts first and runs a little longer than the clients.
LIVE_LATENCY_LOG="$work/mainlog" LIVE_LATENCY_DATABASE="$work/db" \
  nice -n "${DAEMON_NICE:-10}" target/release/examples/live_latency "$rate" $((seconds + 10)) "$binary" "$scrape_ms" \
  >"$work/live.txt" &
live_pid=$!
sleep 5
target/release/examples/web_load "$port" "$work/db" "$clients" "$seconds"
wait "$live_pid"
echo "the daemon meanwhile (at $rate lines/s):"
cat "$work/live.txt"
