#!/bin/bash
# Fleet replication lag: two daemons at RATE lines/s each replicating to
# one throwaway PostgreSQL (initdb/pg_ctl in a temporary directory, as
# `nobody` when run as root), for each pair of log shapes; prints each
# host's lag p50/p99/max (append to row in PostgreSQL), CPU and peak RSS;
# then the local writer's own append-to-commit delay (live_latency) without
# and with replication, to show what replicating costs it.
#
#   benches/fleet-lag.sh [RATE] [SECONDS] [SHAPE_A SHAPE_B]...
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-2000}
seconds=${2:-60}
shift $(( $# > 2 ? 2 : $# ))
pairs=("$@")
[ ${#pairs[@]} -gt 0 ] || pairs=(mixed multi-recipient many-addresses bounce-storm attack long-lines)
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cargo build --release --locked --features synth --bin exim-pilot --example fleet_lag --example live_latency
dir=$(mktemp -d /tmp/pgbench.XXXX)
as=()
if [ "$(id -u)" = 0 ]; then chown nobody:nogroup "$dir"; as=(runuser -u nobody --); fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >/dev/null
trap '"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-k $dir -c listen_addresses='' -p $port" start >/dev/null
for ((i = 0; i + 1 < ${#pairs[@]}; i += 2)); do
  psql -X -q -h "$dir" -p "$port" -U postgres -c 'DROP SCHEMA IF EXISTS exim_pilot CASCADE' 2>/dev/null
  target/release/examples/fleet_lag "host=$dir port=$port user=postgres dbname=postgres" \
    "$rate" "$seconds" "${pairs[i]}" "${pairs[i+1]}"
done
echo "the local writer at $rate lines/s, without and with replication:"
target/release/examples/live_latency "$rate" "$seconds" target/release/exim-pilot 0 | tail -2
target/release/examples/live_latency "$rate" "$seconds" target/release/exim-pilot 0 \
  "host=$dir port=$port user=postgres dbname=postgres" | tail -2
