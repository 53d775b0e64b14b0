#!/usr/bin/env bash
# CPU seconds `exim-pilot run` uses while the log is idle.
# Usage: benches/idle-cpu.sh [SECONDS] [BINARY]   (default 60 s, target/release/exim-pilot)
set -euo pipefail
seconds=${1:-60}
binary=${2:-target/release/exim-pilot}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
cp "$(dirname "$0")/../fixtures/sample/mainlog" "$dir/mainlog"
"$binary" run --log "$dir/mainlog" --db "$dir/x.db" 2>"$dir/stderr" &
pid=$!
sleep 3   # start-up and the first read are not idle time
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
before=$(cpu)
sleep "$seconds"
after=$(cpu)
echo "idle for ${seconds}s: $(awk -v d=$((after - before)) -v t="$ticks" 'BEGIN {printf "%.2f", d / t}') CPU seconds"
