#!/usr/bin/env bash
# exim-pilot beside eximstats, on generated logs of every shape, in one run.
#
# Usage: benches/ingest-vs-eximstats.sh [LINES] [RUNS] [PROFILE...]
#        (default 1000000 lines, 3 runs, every profile of src/synth/mod.rs)
#
# For each profile (mixed, many-addresses, multi-recipient, attack,
# bounce-storm, long-lines, realistic, unique-texts) it generates a main log with Exim 4.96's message
# ids, which Debian 12's eximstats counts correctly, then times RUNS times:
#   eximstats <LOG                  its default report (what an operator runs)
#   exim-pilot ingest --db DB LOG   parse, model and commit into a new database
# and prints a row per profile with the medians: seconds, lines/s, ingest's
# speed as a multiple of eximstats', peak RSS (from /usr/bin/time -v) and
# database bytes per log byte; then the worst ratio over the profiles.
# Last, a catch-up row: `exim-pilot run` started on the first profile's log
# with an empty database, timed until every line is committed, beside
# ingest's time on the same log.
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
runs=${2:-3}
shift $(($# < 2 ? $# : 2))
profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || profiles=(mixed many-addresses multi-recipient attack bounce-storm long-lines realistic unique-texts)

command -v eximstats >/dev/null || [ -x /usr/sbin/eximstats ] || { echo "needs eximstats (apt-get install exim4-base)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "needs python3 (to count committed lines)" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "needs sqlite3 (apt-get install sqlite3)" >&2; exit 2; }
eximstats=$(command -v eximstats || echo /usr/sbin/eximstats)

cargo build --release --quiet --features synth --bin exim-pilot --example generate_log
binary=target/release/exim-pilot
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(uname -r), eximstats from exim4-base $(dpkg-query -W -f '${Version}' exim4-base 2>/dev/null || echo '?'), $runs run(s) each"

# timed COMMAND...: runs it under /usr/bin/time -v; prints "seconds peak_kib".
timed() {
  /usr/bin/time -v "$@" >/dev/null 2>"$work/time" || { cat "$work/time" >&2; exit 1; }
  awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; secs = s}
              /Maximum resident set size/ {kib = $2} END {print secs, kib}' "$work/time"
}

# median of the numbers on standard input.
median() { sort -g | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

printf '\n%-16s %9s %7s %10s %10s %7s %9s %9s %9s\n' profile lines MiB "eximstats" ingest ratio "RSS MiB" "db/log" "lines/s"
for profile in "${profiles[@]}"; do
  log=$work/$profile.log
  target/release/examples/generate_log "$lines" 42 old "$profile" >"$log" 2>"$work/$profile.truth"
  log_lines=$(wc -l <"$log")
  log_bytes=$(stat -c %s "$log")
  : >"$work/e" ; : >"$work/i"; : >"$work/r"; : >"$work/d"
  for _ in $(seq "$runs"); do
    # On standard input: eximstats takes any path containing ".Z" or ".gz"
    # for a compressed file, and mktemp's names can contain ".Z".
    timed sh -c 'exec "$0" <"$1"' "$eximstats" "$log" | awk '{print $1}' >>"$work/e"
    rm -f "$work/db" "$work/db-wal" "$work/db-shm"
    timed "$binary" ingest --db "$work/db" "$log" >"$work/t"
    awk '{print $1}' "$work/t" >>"$work/i"
    awk '{print $2 / 1024}' "$work/t" >>"$work/r"
    find "$work" -maxdepth 1 -name 'db*' -printf '%s\n' | awk -v b="$log_bytes" '{s += $1} END {print s / b}' >>"$work/d"
  done
  e=$(median <"$work/e"); i=$(median <"$work/i"); r=$(median <"$work/r"); d=$(median <"$work/d")
  echo "$profile $e $i" >>"$work/ratios"
  printf '%-16s %9d %7.0f %9.2fs %9.2fs %6.2fx %9.1f %9.2f %9.0f\n' "$profile" "$log_lines" \
    "$(awk -v b="$log_bytes" 'BEGIN {print b / 1048576}')" "$e" "$i" "$(awk -v e="$e" -v i="$i" 'BEGIN {print e / i}')" \
    "$r" "$d" "$(awk -v n="$log_lines" -v i="$i" 'BEGIN {print n / i}')"
done
awk '{r = $2 / $3; if (!seen || r < worst) {worst = r; name = $1; seen = 1}}
     END {printf "\nworst ingest/eximstats ratio: %.2fx (%s)   (target >= 1.5)\n", worst, name}' "$work/ratios"

# Catch-up: the daemon on a backlog, from an empty database.
profile=${profiles[0]}
log=$work/$profile.log
log_lines=$(wc -l <"$log")
ingest_seconds=$(awk -v p="$profile" '$1 == p {print $3}' "$work/ratios")
rm -f "$work/run.db"*
started=$(date +%s.%N)
"$binary" run --log "$log" --db "$work/run.db" 2>"$work/run.stderr" &
daemon=$!
peak=0
# Polls the read position, one row: counting the committed lines instead
# scanned every chunk twice a second and slowed the daemon it measured.
log_bytes=$(stat -c %s "$log")
position=0
while [ "$position" -lt "$log_bytes" ]; do
  sleep 0.2
  kill -0 "$daemon" 2>/dev/null || { cat "$work/run.stderr" >&2; exit 1; }
  # sqlite3, not python3: a Python start costs about 150 ms of CPU, which
  # five times a second took most of a core from the daemon it measured.
  position=$(sqlite3 -readonly "$work/run.db" \
    "SELECT coalesce(max(byte_offset), 0) FROM ingest_checkpoints" 2>/dev/null || echo 0)
  position=${position:-0}
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$daemon/status")
  [ "$hwm" -gt "$peak" ] && peak=$hwm
done
finished=$(date +%s.%N)
kill -TERM "$daemon"; wait "$daemon" || true
committed=$(python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT sum(lines) FROM log_chunks").fetchone()[0])' "$work/run.db")
[ "$committed" -eq "$log_lines" ] || { echo "catch-up committed $committed of $log_lines lines" >&2; exit 1; }
awk -v s="$started" -v f="$finished" -v n="$log_lines" -v i="$ingest_seconds" -v p="$peak" -v name="$profile" 'BEGIN {
  t = f - s
  printf "catch-up (%s): run committed %d lines in %.1f s (%.0f lines/s, peak RSS %.1f MiB): %.0f%% of ingest'"'"'s speed   (target >= 80%%)\n", name, n, t, n / t, p / 1024, 100 * i / t }'
