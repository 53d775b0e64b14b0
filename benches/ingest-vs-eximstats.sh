#!/usr/bin/env bash
# exim-pilot beside eximstats, on the same generated log, in one run.
#
# Usage: benches/ingest-vs-eximstats.sh [LINES] [RUNS]    (default 1000000 lines, 3 runs)
#
# Generates a realistic main log (src/synth.rs) with Exim 4.96's message ids,
# which Debian 12's eximstats counts correctly, then times, RUNS times each:
#   eximstats LOG                   its default report (what an operator runs)
#   exim-pilot ingest --db DB LOG   parse, model and commit into a new database, with
#                                   every index (a bulk ingest builds them at the end)
#   exim-pilot parse LOG            the parser alone
# and prints per run and the medians: lines/s, MB/s, peak RSS (from
# /usr/bin/time -v; also the largest of the runs), database bytes per log byte, and exim-pilot's speed as
# a multiple of eximstats'.
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
runs=${2:-3}

command -v eximstats >/dev/null || [ -x /usr/sbin/eximstats ] || { echo "needs eximstats (apt-get install exim4-base)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 2; }
eximstats=$(command -v eximstats || echo /usr/sbin/eximstats)

cargo build --release --quiet --features synth --bin exim-pilot --example generate_log
binary=target/release/exim-pilot
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$work/mainlog
target/release/examples/generate_log "$lines" 42 old >"$log" 2>"$work/truth"
log_lines=$(wc -l <"$log")
log_bytes=$(stat -c %s "$log")
echo "log: $log_lines lines, $log_bytes bytes ($(awk -v b="$log_bytes" 'BEGIN {printf "%.0f", b / 1048576}') MiB); truth: $(cat "$work/truth")"
echo "machine: $(nproc) cores, $(uname -r), eximstats from exim4-base $(dpkg-query -W -f '${Version}' exim4-base 2>/dev/null || echo '?')"

# timed NAME COMMAND...: runs it under /usr/bin/time -v and appends
# "NAME seconds peak_kib" to $work/results.
timed() {
  local name=$1
  shift
  /usr/bin/time -v "$@" >/dev/null 2>"$work/time" || { cat "$work/time" >&2; exit 1; }
  local seconds kib
  seconds=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$work/time")
  kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
  echo "$name $seconds $kib" >>"$work/results"
}

for run in $(seq "$runs"); do
  # On standard input: eximstats takes any path containing ".Z" or ".gz"
  # for a compressed file, and mktemp's names can contain ".Z".
  timed eximstats sh -c 'exec "$0" <"$1"' "$eximstats" "$log"
  rm -f "$work/db" "$work/db-wal" "$work/db-shm"
  timed ingest "$binary" ingest --db "$work/db" "$log"
  db_bytes=$(find "$work" -maxdepth 1 -name 'db*' -printf '%s\n' | awk '{s += $1} END {print s}')
  echo "dbsize $db_bytes 0" >>"$work/results"
  timed parse "$binary" parse "$log"
  echo "run $run: $(tail -4 "$work/results" | tr '\n' ' ')"
done

awk -v lines="$log_lines" -v bytes="$log_bytes" '
  function median(list, n,   sorted, i, j, t) {
    for (i = 1; i <= n; i++) sorted[i] = list[i]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (sorted[j] < sorted[i]) { t = sorted[i]; sorted[i] = sorted[j]; sorted[j] = t }
    return n % 2 ? sorted[(n + 1) / 2] : (sorted[n / 2] + sorted[n / 2 + 1]) / 2
  }
  { n[$1]++; secs[$1, n[$1]] = $2; rss[$1, n[$1]] = $3 }
  END {
    printf "\nmedians of %d runs, %d lines, %.1f MiB:\n", n["eximstats"], lines, bytes / 1048576
    printf "%-10s %10s %14s %8s %14s %14s\n", "", "seconds", "lines/s", "MB/s", "peak RSS MiB", "largest peak"
    for (k = 0; k < 3; k++) {
      name = k == 0 ? "eximstats" : k == 1 ? "ingest" : "parse"
      largest = 0
      for (i = 1; i <= n[name]; i++) { s[i] = secs[name, i]; r[i] = rss[name, i]; if (r[i] > largest) largest = r[i] }
      sec[name] = median(s, n[name]); mem = median(r, n[name]) / 1024
      printf "%-10s %10.2f %14.0f %8.1f %14.1f %14.1f\n", name, sec[name], lines / sec[name], bytes / 1e6 / sec[name], mem, largest / 1024
    }
    for (i = 1; i <= n["dbsize"]; i++) d[i] = secs["dbsize", i]
    printf "\ningest speed / eximstats speed: %.2fx   (target >= 1.0, aim 1.5)\n", sec["eximstats"] / sec["ingest"]
    printf "parse speed / eximstats speed:  %.2fx\n", sec["eximstats"] / sec["parse"]
    printf "database bytes per log byte:    %.2f   (target <= 2.0)\n", median(d, n["dbsize"]) / bytes
  }' "$work/results"
