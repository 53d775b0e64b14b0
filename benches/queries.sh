#!/usr/bin/env bash
# Query times as an operator sees them: whole processes on a large database.
# Needs bash 5 (EPOCHREALTIME).
#
# Usage: benches/queries.sh [LINES] [RUNS] [PROFILE]
#        (default 5000000 lines of the mixed profile, 5 runs of each query)
#
# Generates a log, ingests it into a new database, then times RUNS times
# each (the median and the worst, wall clock, /usr/bin/time):
#   trace ID              a message in the middle of the log, by its Exim id
#   trace ADDRESS         a busy sender's address (its first 1,000 messages)
#   stats --since 1d      one day back from the newest line
#   stats                 all time
#   stuck                 recipients still waiting
#   metrics               the Prometheus exposition (what a scrape reads)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-5000000}
runs=${2:-5}
profile=${3:-mixed}
[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "needs sqlite3 (apt-get install sqlite3)" >&2; exit 2; }

cargo build --release --quiet --features synth --bin exim-pilot --example generate_log
# EXIM_PILOT_BIN: another build to time (the one before a change, say).
binary=${EXIM_PILOT_BIN:-target/release/exim-pilot}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/examples/generate_log "$lines" 42 old "$profile" >"$work/mainlog" 2>/dev/null
/usr/bin/time -f "ingest: %e s, peak RSS %M KiB" "$binary" ingest --db "$work/db" "$work/mainlog" >/dev/null
echo "database: $(($(stat -c %s "$work/db") >> 20)) MiB for $(($(stat -c %s "$work/mainlog") >> 20)) MiB of log ($(wc -l <"$work/mainlog") lines)"

# A message from the middle of the log, and the busiest sender.
id=$(sqlite3 "$work/db" "SELECT exim_id FROM messages WHERE id = (SELECT max(id) / 2 FROM messages)")
sender=$(sqlite3 "$work/db" "SELECT sender FROM messages WHERE sender <> '<>' GROUP BY sender ORDER BY count(*) DESC LIMIT 1")

# timed NAME ARGS...: RUNS runs of `exim-pilot ARGS --db DB`; median and
# worst, in ms (bash's microsecond clock: GNU time counts hundredths).
timed() {
  local name=$1 started
  shift
  : >"$work/t"
  for _ in $(seq "$runs"); do
    started=$EPOCHREALTIME
    "$binary" "$@" --db "$work/db" >/dev/null
    awk -v s="$started" -v e="$EPOCHREALTIME" 'BEGIN {print e - s}' >>"$work/t"
  done
  sort -g "$work/t" | awk -v n="$name" '{v[NR] = $1} END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%-28s median %7.1f ms   worst %7.1f ms\n", n, m * 1000, v[NR] * 1000 }'
}

timed "trace $id" trace "$id"
timed "trace $sender" trace "$sender"
timed "stats --since 1d" stats --since 1d
timed "stats (all time)" stats
timed "stuck" stuck
timed "metrics" metrics
