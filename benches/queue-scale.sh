#!/usr/bin/env bash
# Exim's queue at scale: for each count (default 10000 and 100000), a
# private Exim spool is filled with that many queued messages (one
# `exim -bS -odq` reading batched SMTP: unique senders, Message-IDs and
# subjects, one to three recipients), 1% of them frozen, and the queue is
# read the ways exim-pilot reads it:
#   - Exim's own listing (`exim -bpr`), the floor;
#   - `exim-pilot queue count` and `queue list --json` through the release
#     helper, served per connection as systemd's Accept=yes does
#     (systemd-socket-activate --accept --inetd: the connection as standard input and output), as Debian-exim under
#     NoNewPrivileges;
#   - the web view's /api/v1/queue and /queue (which show at most 1,000);
# printing wall time and peak RSS of each reader, and the caps: an action
# on a selection of the whole queue is refused at [queue] bulk_limit.
#
# Usage: benches/queue-scale.sh [COUNT...]   (as root: Exim's -C and the
# helper's user need it; builds the release binaries if needed)
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "run as root (Exim's -C, the helper as Debian-exim)" >&2; exit 2; }
for tool in exim4 setpriv systemd-socket-activate curl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (exim4-daemon-light, util-linux, systemd, curl, time)" >&2; exit 2; }
done
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10000 100000)

cargo build --release --locked --quiet
pilot=$PWD/target/release/exim-pilot
exim4=$(command -v exim4)

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# peak_rss_kib PID: the process's high-water mark of resident memory.
peak_rss_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
# timed LABEL COMMAND...: runs COMMAND (output to /dev/null), prints its
# wall time and peak RSS (the largest of it and the children it waited for).
timed() {
  local label=$1
  shift
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null
  read -r seconds kib <"$work/time"
  printf '  %-44s %7.2f s  %7d KiB peak RSS\n' "$label" "$seconds" "$kib"
}

for count in "${counts[@]}"; do
  dir=$work/$count
  mkdir -p "$dir"/{spool,log,mail,actions}
  chmod 755 "$dir"
  cp tests/exim/queue.conf "$dir/queue.conf"
  cp target/release/exim-pilot-queue-helper "$dir/helper"
  printf '#!/bin/sh\nexec %s -C %s/queue.conf -DDIR=%s "$@"\n' "$exim4" "$dir" "$dir" >"$dir/exim"
  chmod 755 "$dir/exim" "$dir/helper"
  chown -R Debian-exim:Debian-exim "$dir"/{spool,log,mail,actions}
  port=$((20000 + RANDOM % 20000))
  cat >"$dir/pilot.toml" <<EOF
[database]
path = "$dir/pilot.db"

[web]
listen = "127.0.0.1:$port"
auth = "proxy"
proxy_user_header = "X-User"
proxy_addresses = ["127.0.0.1"]
proxy_role = "admin"

[queue]
actions = true
exim = "$dir/exim"
socket = "$dir/queue.sock"
deliver_socket = "$dir/deliver.sock"
actions_log = "$dir/actions/actions.log"
EOF

  echo "== $count queued messages"
  started=$(date +%s%N)
  # Four streams at once: Exim syncs each message's spool files to disk,
  # and the syncs of parallel streams overlap.
  streams=()
  for part in 0 1 2 3; do
  awk -v n="$count" -v part="$part" 'BEGIN {
    for (i = 1 + part; i <= n; i += 4) {
      printf "MAIL FROM:<sender%d@s%d.example>\r\n", i, i % 977
      r = 1 + i % 3
      for (j = 0; j < r; j++) printf "RCPT TO:<user%d.%d@remote.example>\r\n", i, j
      printf "DATA\r\nMessage-ID: <%d.%d@bench.example>\r\nSubject: queued message %d of %d\r\n\r\n", i, i * 7919, i, n
      printf "This message stays on the queue.\r\n.\r\n"
    }
    printf "QUIT\r\n"
  }' | "$dir/exim" -bS -odq >/dev/null &
  streams+=($!)
  done
  wait "${streams[@]}"
  queued=$("$dir/exim" -bpc)
  echo "  queued $queued in $((($(date +%s%N) - started) / 1000000)) ms"
  [ "$queued" -eq "$count" ] || { echo "expected $count queued" >&2; exit 1; }
  mapfile -t to_freeze < <("$dir/exim" -bpr | awk 'NF >= 3 && $1 ~ /^[0-9]+[mhd]$/ {print $3}' | head -n $((count / 100)))
  "$dir/exim" -Mf "${to_freeze[@]}" >/dev/null
  "$pilot" ingest --db "$dir/pilot.db" fixtures/sample/mainlog >/dev/null 2>&1

  # The helper, one process per connection, as its first tier's unit runs it.
  systemd-socket-activate --accept --inetd -l "$dir/queue.sock" \
    setpriv --reuid=Debian-exim --regid=Debian-exim --init-groups --no-new-privs -- \
    /usr/bin/time -f '%M' -a -o "$dir/actions/helper-rss" "$dir/helper" --tier 1 --config "$dir/pilot.toml" \
    >/dev/null 2>&1 &
  activator=$!
  pids+=("$activator")
  for _ in $(seq 100); do [ -S "$dir/queue.sock" ] && break; sleep 0.05; done
  chmod 666 "$dir/queue.sock"

  timed "exim -bpr (Exim alone)" "$dir/exim" -bpr
  timed "exim-pilot queue count" "$pilot" queue count --config "$dir/pilot.toml"
  [ "$("$pilot" queue count --config "$dir/pilot.toml")" -eq "$count" ] || { echo "queue count is wrong" >&2; exit 1; }
  timed "exim-pilot queue list --json" "$pilot" queue list --json --config "$dir/pilot.toml"
  timed "exim-pilot queue list --frozen" "$pilot" queue list --frozen --config "$dir/pilot.toml"
  timed "exim-pilot queue summary" "$pilot" queue summary --config "$dir/pilot.toml"
  echo "  the helper and its Exim, the larger peak RSS of any request: $(sort -n "$dir/actions/helper-rss" | tail -1) KiB"

  "$pilot" serve --config "$dir/pilot.toml" >/dev/null 2>"$dir/serve.log" &
  web=$!
  pids+=("$web")
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.1; done
  for path in "/api/v1/queue" "/queue" "/queue?frozen=1" "/api/v1/queue?younger=1h&limit=10"; do
    read -r status seconds bytes < <(curl -s -o /dev/null -H 'X-User: bench' \
      -w '%{http_code} %{time_total} %{size_download}\n' "http://127.0.0.1:$port$path")
    printf '  web %-40s %7.2f s  HTTP %s, %d bytes\n' "$path" "$seconds" "$status" "$bytes"
  done
  rows=$(curl -s -H 'X-User: bench' "http://127.0.0.1:$port/api/v1/queue" | grep -o '"queue_id"' | wc -l)
  echo "  web rows in /api/v1/queue: $rows (at most 1000 shown)"
  echo "  the web view's peak RSS: $(peak_rss_kib "$web") KiB"
  kill "$web"

  # The caps: a selection of everything is refused, naming bulk_limit.
  if out=$("$pilot" queue freeze --older 0s --yes --config "$dir/pilot.toml" 2>&1); then
    echo "  FAIL: an action on the whole queue ran: $out" >&2
    exit 1
  fi
  echo "  an action on all $count: refused: ${out##*exim-pilot: }"
  kill "$activator"
  rm -rf "$dir"
done
