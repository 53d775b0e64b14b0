# Sourced by packaging/test-systemd and packaging/test-journal: boots
# Debian 12 under a real systemd as PID 1 of a systemd-nspawn container and
# gives the checks their helpers. The caller sets test_name and runs from
# the repository's root.
#
# The root file system is made once with debootstrap and cached in
# target/systemd-root (about 75 s, then reused). Each run boots an overlay of
# it, so the cache stays clean and the container keeps its state across a
# reboot. Everything a run mounts, starts or creates is removed when it
# ends, also when it fails or is interrupted. Without a host systemd, nspawn
# needs --register=no --keep-unit, and commands enter the container with
# nsenter.

if [ "$(id -u)" -ne 0 ]; then
  echo "$test_name boots a container and installs a .deb in it: run it as root (CI does)" >&2
  exit 2
fi

started_at=$(date +%s)
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
check() { # check DESCRIPTION COMMAND...
  local description=$1
  shift
  if "$@"; then pass "$description"; else fail "$description"; fi
}
# matches PATTERN...: grep -q for the end of a pipeline. grep -q stops at the
# first match, and under pipefail the writer's SIGPIPE would fail the check.
matches() { grep "$@" >/dev/null; }
# within SECONDS COMMAND...: true once COMMAND succeeds, polled every 0.1 s.
within() {
  local deadline=$(($(date +%s%N) + $1 * 1000000000))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s%N)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

echo "== host tools"
missing=()
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Not the recommended libnss-mymachines: it would edit this host's nsswitch.conf.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

deb=$(ls target/debian/exim-pilot_*.deb 2>/dev/null | tail -1 || true)
[ -n "$deb" ] || { packaging/build-packages; deb=$(ls target/debian/exim-pilot_*.deb | tail -1); }
echo "package: $deb"

echo "== root file system (target/systemd-root)"
root=$PWD/target/systemd-root
packages=systemd,systemd-sysv,dbus,procps,exim4-daemon-light,swaks,logrotate
if [ "$(cat "$root/.exim-pilot-packages" 2>/dev/null)" != "$packages" ]; then
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2; exit}')
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$mirror" ] || { echo "no Debian mirror in apt's sources" >&2; exit 2; }
  rm -rf "$root" "$root.new"
  echo "debootstrap bookworm from $mirror"
  debootstrap --variant=minbase --include="$packages" bookworm "$root.new" "$mirror" >target/debootstrap.log 2>&1 \
    || { tail -20 target/debootstrap.log; exit 1; }
  rm -rf "$root.new/var/cache/apt/archives/"*.deb "$root.new/var/lib/apt/lists/"*
  echo "$packages" >"$root.new/.exim-pilot-packages"
  mv "$root.new" "$root"
else
  echo "reusing it"
fi

work=$(mktemp -d "$PWD/target/$test_name.XXXXXX")
merged=$work/merged
machine=$test_name-$$
cgroup=$test_name-$$
nspawn_pid=""
leader=""

stop_container() {
  [ -n "$nspawn_pid" ] || return 0
  if kill -0 "$nspawn_pid" 2>/dev/null; then
    # SIGTERM to nspawn powers the container off cleanly.
    kill -TERM "$nspawn_pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$nspawn_pid" 2>/dev/null; then
      [ -z "$leader" ] || kill -KILL "$leader" 2>/dev/null || true
      kill -KILL "$nspawn_pid" 2>/dev/null || true
    fi
  fi
  wait "$nspawn_pid" 2>/dev/null || true
  nspawn_pid=""
  leader=""
  # /run is not a tmpfs here, and nspawn will not remove this itself.
  rm -rf "/run/systemd/nspawn/propagate/$machine"
}
cleanup() {
  set +e
  # A second signal must not cut the clean-up short.
  trap '' INT TERM
  stop_container
  # Without a host systemd, nspawn leaves its cgroups in the one it was
  # started in: ours, made for the purpose.
  for hierarchy in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
    [ -d "$hierarchy/$cgroup" ] && find "$hierarchy/$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  mountpoint -q "$merged" && umount "$merged"
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
# Interrupted or killed, it exits, and so still cleans up.
trap 'exit 130' INT
trap 'exit 143' TERM

# An overlay of the cached root: the container writes to $work/upper only,
# and keeps what it wrote across a reboot.
mkdir -p "$work/upper" "$work/overlay-work" "$merged"
mount -t overlay overlay -o "lowerdir=$root,upperdir=$work/upper,workdir=$work/overlay-work" "$merged"

IN() {
  nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb SYSTEMD_COLORS=0 \
    SYSTEMD_PAGER= LC_ALL=C.UTF-8 "$@"
}

boot() {
  local launcher
  mkfifo "$work/go"
  # nspawn waits on the fifo until it is in our own cgroup.
  bash -c 'read -r _ <"$1"; shift; exec systemd-nspawn "$@"' _ "$work/go" \
    -D "$merged" --machine="$machine" --hostname=pilot-test --register=no --keep-unit --boot \
    --private-network --console=read-only --volatile=no >>"$work/console.log" 2>&1 </dev/null &
  nspawn_pid=$!
  for hierarchy in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
    [ -d "$hierarchy" ] || continue
    mkdir -p "$hierarchy/$cgroup"
    echo "$nspawn_pid" >"$hierarchy/$cgroup/cgroup.procs"
  done
  if [ ! -d /sys/fs/cgroup/systemd ] && [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
    mkdir -p "/sys/fs/cgroup/$cgroup"
    echo "$nspawn_pid" >"/sys/fs/cgroup/$cgroup/cgroup.procs"
  fi
  echo go >"$work/go"
  rm -f "$work/go"
  for _ in $(seq 200); do
    leader=$(pgrep -P "$nspawn_pid" -x systemd || true)
    [ -z "$leader" ] || break
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$leader" ] || { cat "$work/console.log"; echo "the container's systemd never started" >&2; exit 1; }
  local state=""
  for _ in $(seq 300); do
    state=$(IN systemctl is-system-running --wait 2>/dev/null) || true
    case "$state" in running | degraded) break ;; esac
    sleep 0.1
  done
  echo "booted: $state"
  [ "$state" = running ] || IN systemctl --failed --no-pager || true
}

journal() { IN journalctl -u exim-pilot --no-pager "$@"; }
pilot() { IN exim-pilot "$@"; }
send() { IN swaks --server 127.0.0.1 --helo client.test "$@" 2>&1 || true; }
queued_id() { sed -n 's/.*250 OK id=\([^ ]*\).*/\1/p' | tail -1; }
mainlog_has() { IN grep -q -- "$1" /var/log/exim4/mainlog; }
# Every line of the log's generations is stored exactly once: the stored
# lines and the files' lines, sorted, are the same.
stored_once() {
  [ "$(pilot lines | sort | md5sum)" = "$(IN sh -c 'cat "$@"' _ "$@" | sort | md5sum)" ]
}
exactly_once() { # DESCRIPTION FILE...
  local description=$1
  shift
  if within 15 stored_once "$@"; then
    pass "$description: $(IN sh -c 'cat "$@"' _ "$@" | wc -l) lines, each stored once"
  else
    fail "$description: stored $(pilot lines | wc -l) lines ($(pilot lines | sort | uniq -d | wc -l) twice), the log has $(IN sh -c 'cat "$@"' _ "$@" | wc -l)"
  fi
}

# trace_reaches ID STATUS LOG_PATTERN: the message's status is STATUS within
# 2 s of the line matching LOG_PATTERN appearing in Exim's log.
trace_reaches() {
  local id=$1 status=$2 pattern=$3
  if [ -z "$id" ]; then fail "no message id for the $status message"; return; fi
  within 10 mainlog_has "$pattern" || { fail "$id: Exim never logged '$pattern'"; return; }
  local logged
  logged=$(date +%s%N)
  if within 2 sh -c "exec nsenter -t $leader -a exim-pilot trace --json $id | grep -m1 '\"status\"' | grep -q '\"$status\"'"; then
    pass "trace $id shows $status, $((($(date +%s%N) - logged) / 1000000)) ms after Exim's line"
  else
    fail "trace $id does not show $status 2 s after Exim's line: $(pilot trace --json "$id" 2>&1 | grep -m1 '"status"')"
    IN grep -F "$id" /var/log/exim4/mainlog >&2 || true
  fi
}
# prepare_exim: a local user alice, and mail for other domains sent to a
# smarthost on a closed port, so that it defers.
# (Not 127.0.0.1: Exim would see itself, freeze the message and bounce it.)
prepare_exim() {
  IN useradd --create-home alice
  IN sed -i -e "s/^dc_eximconfig_configtype=.*/dc_eximconfig_configtype='smarthost'/" \
    -e "s/^dc_smarthost=.*/dc_smarthost='127.0.0.2::2525'/" /etc/exim4/update-exim4.conf.conf
  IN update-exim4.conf
  IN systemctl restart exim4
  check "Exim runs in the container" within 10 IN systemctl is-active exim4
}

# install_package: apt install ./exim-pilot_*.deb in the container.
install_package() {
  cp "$deb" "$merged/root/exim-pilot.deb"
  IN env DEBIAN_FRONTEND=noninteractive apt-get install -y -q /root/exim-pilot.deb >"$work/apt.log" 2>&1 \
    || { cat "$work/apt.log"; fail "apt install ./exim-pilot.deb"; }
}

# finish: powers the container off and reports.
finish() {
  echo "== power off"
  IN systemctl poweroff || true
  for _ in $(seq 300); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
  stop_container
  echo "$test_name: $(($(date +%s) - started_at)) s"
  if [ "$failures" -gt 0 ]; then
    echo "$test_name: $failures check(s) failed" >&2
    exit 1
  fi
  echo "$test_name: every check passed"
}
