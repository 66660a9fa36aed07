#!/usr/bin/env bash
# fleet.sh — a fleet of real Debian hosts (systemd + sshd, each in its own
# network namespace) for herdsman's integration tests, built with
# systemd-nspawn on this machine. See tests/fleet/README.md.
#
#   fleet.sh base          build (once) the cached Debian bookworm rootfs
#   fleet.sh repo          build (once) and serve the local apt repository
#   fleet.sh up N          start hosts herd-01..herd-NN (stops a running fleet first)
#   fleet.sh down          stop everything this script started; idempotent
#   fleet.sh status        which hosts are up
#   fleet.sh inventory     print the inventory path
#   fleet.sh kill NAME     kill one host hard (a host that dies mid-run)
#
# Network rule: the fleet lives on 10.77.0.0/24 behind bridge herdbr0
# (10.77.0.1); hosts have no default route and the test machine does not
# forward, so nothing a host sends can leave the bridge.
set -euo pipefail

# Bump when the base rootfs recipe changes: it is part of the base stamp.
readonly SCRIPT_VERSION=7

# Several fleets can run side by side (one per checkout under test):
# HERD_FLEET_ID=N (0..99, default 0) gives fleet N its own state dir,
# bridge herdbrN, subnet 10.77.N.0/24, link names and cgroups. They share the
# cached base and apt repository.
readonly FLEET_ID="${HERD_FLEET_ID:-0}"
if ! [[ $FLEET_ID =~ ^[0-9]{1,2}$ ]]; then
  printf '[fleet] error: HERD_FLEET_ID must be 0..99, not %s\n' "$FLEET_ID" >&2
  exit 2
fi
if ((FLEET_ID == 0)); then readonly FLEET_TAG=""; else readonly FLEET_TAG="$FLEET_ID"; fi
readonly CACHE_DIR="${HERD_FLEET_CACHE:-/var/cache/herd-fleet}"
readonly STATE_DIR="${HERD_FLEET_STATE:-/run/herd-fleet${FLEET_TAG:+-$FLEET_TAG}}"
readonly BASE_DIR="$CACHE_DIR/base"
readonly BOOTSTRAP_DIR="$CACHE_DIR/bootstrap"
readonly REPO_DIR="$CACHE_DIR/repo"
readonly SUITE=bookworm
readonly BRIDGE="herdbr$FLEET_ID"
readonly SUBNET_PREFIX="10.77.$FLEET_ID"
readonly BRIDGE_ADDR="$SUBNET_PREFIX.1"
readonly REPO_PORT=8080
readonly MAX_HOSTS=99
# Seconds to wait for every host's sshd after starting them (default: 120,
# plus 5 per host beyond 20, as the hosts boot side by side on the same few
# cores), and for a host to shut down cleanly before it is killed.
readonly BOOT_TIMEOUT_SET="${HERD_FLEET_BOOT_TIMEOUT:-}"
readonly STOP_TIMEOUT=10
# Cgroup subtree that holds one child group per host (see start_host).
readonly CGROUP_NAME="herd-fleet${FLEET_TAG:+-$FLEET_TAG}"

# Packages of the base rootfs. No python: herd must not need it on targets.
# curl: get_url, uri and unarchive of a URL fetch on the host itself.
readonly BASE_PACKAGES=(
  systemd systemd-sysv dbus openssh-server sudo iproute2 procps
  ca-certificates less gzip tar curl
)
# Packages served by the local apt repository (their dependencies that the
# base lacks are added automatically). Small, and cron brings a real service;
# unzip is what unarchive needs for zip files. python3 is only for running
# ansible-playbook against a host (the speed benchmark and the parity test
# install it); herd never needs it.
# docker.io and busybox-static are for the Docker modules' tests (busybox
# is the rootfs their images are built from with `docker import`);
# git and python3-venv are what the git and pip modules run on a host;
# docker-registry runs a registry on a host for the pull and login tests;
# aptitude, vim, git and ufw are what the corpus case do-setup installs
# (python3-apt is what Ansible's apt module needs on the host)
# (tests/fleet_corpus.rs).
# acl, at, rsync, iptables, locales, kmod, zip, bzip2 and xz-utils are what
# the community.general / ansible.posix modules run on a host (setfacl, at,
# rsync for synchronize, locale-gen, modprobe, archive's formats);
# python3-requests is what community.docker's modules need under Ansible,
# and python3-yaml what docker_compose_v2's `definition` needs there.
readonly REPO_PACKAGES=(hello tree cron unzip python3 python3-apt docker.io busybox-static git python3-venv docker-registry aptitude vim ufw
  acl at rsync iptables locales kmod zip bzip2 xz-utils python3-requests python3-yaml)
# Packages from a newer release, fetched with their own apt state: bookworm
# has only compose v1 (python); trixie's docker-compose is the v2 CLI
# plugin, a Go binary that needs nothing but libc6 (>= 2.34).
readonly REPO_EXTRA_SUITE=trixie
readonly REPO_EXTRA_PACKAGES=(docker-compose)
# A host that reboots makes nspawn exit with this status; the launcher starts
# it again, at most this many times per `up`.
readonly REBOOT_STATUS=133
readonly MAX_REBOOTS=20

log() { printf '[fleet %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[fleet] error: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }
elapsed() { local start=$1; printf '%d.%03ds' $(( ($(now_ms) - start) / 1000 )) $(( ($(now_ms) - start) % 1000 )); }

require_root() {
  [[ $EUID -eq 0 ]] || die "must run as root (namespaces, mounts, bridge)"
}

require_tools() {
  local missing=() tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (apt-get install debootstrap systemd-container iproute2 openssh-client dpkg-dev python3)"
}

host_name() { printf 'herd-%02d' "$1"; }
host_addr() { printf '%s.%d' "$SUBNET_PREFIX" $((10 + $1)); }
host_dir() { printf '%s/hosts/%s' "$STATE_DIR" "$1"; }
# Host-side end of a host's veth pair (interface names are at most 15 bytes).
host_veth() { printf 'vh%s-%s' "$FLEET_TAG" "$1"; }
guest_veth() { printf 'vc%s-%s' "$FLEET_TAG" "$1"; }

# Every host name recorded in the state dir, in order.
recorded_hosts() {
  [[ -d $STATE_DIR/hosts ]] || return 0
  find "$STATE_DIR/hosts" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort
}

pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# The mirror debootstrap uses: the first Debian URI apt is configured with,
# so the fleet is built from the same place as this machine's packages.
debian_mirror() {
  if [[ -n ${HERD_FLEET_MIRROR:-} ]]; then
    echo "$HERD_FLEET_MIRROR"; return
  fi
  local uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        | grep -oE 'https?://[^ ]*/debian/?( |$)' | head -n1 | tr -d ' ' || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

# ---------------------------------------------------------------- base ----

base_stamp() {
  printf '%s\n' "version=$SCRIPT_VERSION" "suite=$SUITE" "${BASE_PACKAGES[@]}" | sha256sum | cut -d' ' -f1
}

base_is_current() {
  [[ -f $BASE_DIR/.herd-stamp && $(cat "$BASE_DIR/.herd-stamp") == "$(base_stamp)" ]]
}

# Configure a freshly bootstrapped rootfs: users, sudo, sshd, masked units,
# apt pointed at the bridge only. Per-host identity (hostname, machine-id,
# host key, authorized keys) is added at `up`, in each host's overlay.
configure_base() {
  local root=$1

  # Users: deploy sudoes without a password, deploy_pw must type its own.
  chroot "$root" useradd --uid 1000 --create-home --shell /bin/bash deploy
  chroot "$root" useradd --uid 1001 --create-home --shell /bin/bash deploy_pw
  printf '%s\n' deploy:deploy deploy_pw:deploy_pw | chroot "$root" chpasswd
  cat >"$root/etc/sudoers.d/herd" <<'EOF'
deploy ALL=(ALL:ALL) NOPASSWD: ALL
deploy_pw ALL=(ALL:ALL) ALL
EOF
  chmod 0440 "$root/etc/sudoers.d/herd"
  install -d -m 0700 "$root/root/.ssh"
  install -d -m 0700 -o 1000 -g 1000 "$root/home/deploy/.ssh"
  install -d -m 0700 -o 1001 -g 1001 "$root/home/deploy_pw/.ssh"

  # sshd: keys for root, passwords for first-contact tests, one ed25519 host
  # key generated per host at `up` (the base carries none).
  rm -f "$root"/etc/ssh/ssh_host_*
  cat >"$root/etc/ssh/sshd_config.d/herd.conf" <<'EOF'
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication yes
UseDNS no
# Tests open many sessions at once.
MaxStartups 100:30:200
MaxSessions 100
EOF

  # Units that cannot work or only slow boot down inside a container.
  systemctl --root="$root" mask \
    console-getty.service getty@.service serial-getty@.service \
    systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
    systemd-journald-audit.socket e2scrub_all.timer e2scrub_reap.service \
    fstrim.timer systemd-remount-fs.service sys-kernel-config.mount \
    sys-kernel-debug.mount sys-kernel-tracing.mount >/dev/null 2>&1

  # apt talks only to the local repository served on the bridge.
  rm -f "$root/etc/apt/sources.list" "$root"/etc/apt/sources.list.d/*
  echo "deb [trusted=yes] http://$BRIDGE_ADDR:$REPO_PORT ./" >"$root/etc/apt/sources.list.d/herd-local.list"
  cat >"$root/etc/apt/apt.conf.d/90herd" <<'EOF'
Acquire::Languages "none";
Acquire::http::Timeout "10";
Acquire::Retries "0";
APT::Install-Recommends "false";
EOF
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb

  # The fleet address: the interface nspawn moved in becomes host0 with a
  # static address and no default route. IPv6 is turned off before any link
  # comes up (systemd-sysctl runs first).
  printf 'net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n' \
    >"$root/etc/sysctl.d/10-herd-no-ipv6.conf"
  cat >"$root/etc/systemd/system/herd-net.service" <<'EOF'
[Unit]
Description=Fleet address on host0
DefaultDependencies=no
After=systemd-sysctl.service
Before=network.target sysinit.target ssh.service shutdown.target
Conflicts=shutdown.target
Wants=network.target
ConditionPathExists=/etc/herd/net.env

[Service]
Type=oneshot
RemainAfterExit=yes
EnvironmentFile=/etc/herd/net.env
ExecStart=/bin/sh -c 'if ip link show "$HERD_IF" >/dev/null 2>&1; then ip link set "$HERD_IF" name host0; fi'
ExecStart=/sbin/ip addr replace ${HERD_ADDR} dev host0
ExecStart=/sbin/ip link set host0 up
# On reboot nspawn moves the interface back out under the name it moved in
# (and fails, exit 1 instead of 133, if that name is gone): restore it.
ExecStop=/bin/sh -c 'ip link set host0 down; ip link set host0 name "$HERD_IF"'

[Install]
WantedBy=sysinit.target
EOF
  systemctl --root="$root" enable herd-net.service >/dev/null 2>&1

  # Journal in memory: faster boots, nothing piles up in the overlays.
  mkdir -p "$root/etc/systemd/journald.conf.d"
  printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\n' >"$root/etc/systemd/journald.conf.d/herd.conf"

  # Identity comes per host; an empty machine-id marks "not yet set".
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  echo herd-base >"$root/etc/hostname"

  if [[ -e $root/usr/bin/python3 ]]; then
    die "python3 ended up in the base rootfs; targets must not have it"
  fi
}

bootstrap_stamp() {
  printf '%s\n' "suite=$SUITE" "mirror=$1" "${BASE_PACKAGES[@]}" | sha256sum | cut -d' ' -f1
}

# The pristine debootstrap tree is cached on its own (keyed by suite, mirror
# and package list), so changing only configure_base costs seconds, not a
# download.
ensure_bootstrap() {
  local mirror include start tmp="$CACHE_DIR/bootstrap.new"
  mirror=$(debian_mirror)
  if [[ -f $BOOTSTRAP_DIR/.herd-stamp && $(cat "$BOOTSTRAP_DIR/.herd-stamp") == "$(bootstrap_stamp "$mirror")" ]]; then
    return 0
  fi
  require_tools debootstrap
  start=$(now_ms)
  mkdir -p "$CACHE_DIR"
  rm -rf "$tmp"
  include=$(IFS=,; echo "${BASE_PACKAGES[*]}")
  log "debootstrap $SUITE (minbase + $include) from $mirror"
  if ! debootstrap --variant=minbase --include="$include" "$SUITE" "$tmp" "$mirror" >"$CACHE_DIR/debootstrap.log" 2>&1; then
    tail -n 20 "$CACHE_DIR/debootstrap.log" >&2
    die "debootstrap failed; full log: $CACHE_DIR/debootstrap.log"
  fi
  bootstrap_stamp "$mirror" >"$tmp/.herd-stamp"
  rm -rf "$BOOTSTRAP_DIR"; mv "$tmp" "$BOOTSTRAP_DIR"
  log "debootstrap done in $(elapsed "$start")"
}

cmd_base() {
  require_root
  if base_is_current; then
    log "base is current: $BASE_DIR"
    return 0
  fi
  require_tools chroot systemctl
  local start tmp="$CACHE_DIR/base.new"
  start=$(now_ms)
  if [[ -d $BASE_DIR ]] && grep -q "lowerdir=$BASE_DIR" /proc/self/mounts; then
    die "the base is in use by running hosts; run 'fleet.sh down' first"
  fi
  ensure_bootstrap
  rm -rf "$tmp"
  cp -a "$BOOTSTRAP_DIR" "$tmp"
  rm -f "$tmp/.herd-stamp"
  configure_base "$tmp"
  base_stamp >"$tmp/.herd-stamp"
  # Swap in whole so a failed build never leaves a half base behind.
  rm -rf "$BASE_DIR"
  mv "$tmp" "$BASE_DIR"
  log "base built in $(elapsed "$start"): $BASE_DIR ($(du -sh "$BASE_DIR" | cut -f1))"
}

# ---------------------------------------------------------------- repo ----

repo_stamp() {
  printf '%s\n' "$(base_stamp)" "${REPO_PACKAGES[@]}" "$REPO_EXTRA_SUITE" "${REPO_EXTRA_PACKAGES[@]}" \
    | sha256sum | cut -d' ' -f1
}

# Download REPO_PACKAGES and whatever they need beyond the base, resolved by
# apt against the base's own dpkg status, from the same release as the base.
build_repo() {
  require_tools apt-get dpkg-scanpackages
  local start tmp pkgs
  start=$(now_ms)
  tmp="$CACHE_DIR/repo.new"
  rm -rf "$tmp"; mkdir -p "$tmp"
  pkgs=$(apt-get install -s -qq --no-install-recommends \
           -o APT::Default-Release="$SUITE" \
           -o Dir::State::status="$BASE_DIR/var/lib/dpkg/status" \
           "${REPO_PACKAGES[@]}" \
         | awk '$1 == "Inst" { gsub(/[()]/, "", $3); print $2 "=" $3 }')
  [[ -n $pkgs ]] || die "apt resolved nothing for: ${REPO_PACKAGES[*]}"
  log "repo: downloading $(echo "$pkgs" | tr '\n' ' ')"
  # shellcheck disable=SC2086 # one package=version per word
  (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root $pkgs) || die "apt-get download failed"
  download_extra_packages "$tmp"
  (cd "$tmp" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages && gzip -9kf Packages)
  repo_stamp >"$tmp/.herd-stamp"
  rm -rf "$REPO_DIR"; mv "$tmp" "$REPO_DIR"
  log "repo built in $(elapsed "$start"): $(find "$REPO_DIR" -name '*.deb' | wc -l) packages"
}

# REPO_EXTRA_PACKAGES from REPO_EXTRA_SUITE, through a private apt config
# and state under the cache: this machine's own apt sources stay untouched.
download_extra_packages() {
  local dest=$1 dir="$CACHE_DIR/apt-$REPO_EXTRA_SUITE" mirror
  mirror=$(debian_mirror)
  rm -rf "$dir"; mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $REPO_EXTRA_SUITE main" >"$dir/sources.list"
  local -a opts=(-o "Dir::Etc::sourcelist=$dir/sources.list" -o Dir::Etc::sourceparts=-
                 -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o APT::Sandbox::User=root)
  log "repo: apt-get update for $REPO_EXTRA_SUITE (${REPO_EXTRA_PACKAGES[*]})"
  timeout 300 apt-get "${opts[@]}" update -qq || die "apt-get update for $REPO_EXTRA_SUITE failed"
  (cd "$dest" && timeout 300 apt-get "${opts[@]}" download -qq "${REPO_EXTRA_PACKAGES[@]}") \
    || die "apt-get download ${REPO_EXTRA_PACKAGES[*]} from $REPO_EXTRA_SUITE failed"
  rm -rf "$dir"
}

repo_is_current() {
  [[ -f $REPO_DIR/.herd-stamp && $(cat "$REPO_DIR/.herd-stamp") == "$(repo_stamp)" && -f $REPO_DIR/Packages.gz ]]
}

# Serve the repository on the bridge address only (never on 0.0.0.0).
serve_repo() {
  local pidfile="$STATE_DIR/repo-http.pid" pid i
  if pid_alive "$(cat "$pidfile" 2>/dev/null)"; then
    return 0
  fi
  require_tools python3
  mkdir -p "$STATE_DIR"
  setsid python3 -m http.server --bind "$BRIDGE_ADDR" --directory "$REPO_DIR" "$REPO_PORT" \
    >"$STATE_DIR/repo-http.log" 2>&1 </dev/null 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$pidfile"
  for ((i = 0; i < 50; i++)); do
    if python3 - "$BRIDGE_ADDR" "$REPO_PORT" <<'EOF' 2>/dev/null; then
import socket, sys
socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
EOF
      log "repo served at http://$BRIDGE_ADDR:$REPO_PORT/ (pid $pid)"
      return 0
    fi
    pid_alive "$pid" || break
    sleep 0.1
  done
  cat "$STATE_DIR/repo-http.log" >&2 || true
  die "repo HTTP server did not start on $BRIDGE_ADDR:$REPO_PORT"
}

cmd_repo() {
  require_root
  ensure_cache
  ensure_bridge
  serve_repo
}

# ------------------------------------------------------------- network ----

# The bridge holds 10.77.0.1/24, so 10.77.0.x is on-link here and never goes
# to the default gateway. IPv6 is off on every fleet link so hosts send no
# router solicitations or other multicast chatter.
ensure_bridge() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    # No multicast snooping: the bridge would join 224.0.0.106 and announce
    # it with IGMP; nothing here needs multicast.
    ip link add "$BRIDGE" type bridge mcast_snooping 0
  fi
  sysctl -qw "net.ipv6.conf.$BRIDGE.disable_ipv6=1"
  if ! ip -4 addr show dev "$BRIDGE" | grep -q "inet $BRIDGE_ADDR/24"; then
    ip addr add "$BRIDGE_ADDR/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
}

delete_bridge() {
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link del "$BRIDGE"
  fi
}

# A host's link: a veth pair whose host end (vh-NAME) joins the bridge and
# whose other end (vc-NAME) nspawn moves into the host's own network
# namespace (--network-interface), where herd-net.service renames it host0
# and gives it its address. IPv6 is off on both ends so nothing but our IPv4
# traffic ever reaches the bridge.
create_host_veth() {
  local name=$1 outer inner
  outer=$(host_veth "$name"); inner=$(guest_veth "$name")
  ip link del "$outer" 2>/dev/null || true
  ip link add "$outer" type veth peer name "$inner"
  sysctl -qw "net.ipv6.conf.$outer.disable_ipv6=1" "net.ipv6.conf.$inner.disable_ipv6=1"
  ip link set "$outer" master "$BRIDGE" up
}

# Deleting either end of a veth pair deletes both.
delete_host_veth() {
  local name=$1
  ip link del "$(host_veth "$name")" 2>/dev/null || true
  ip link del "$(guest_veth "$name")" 2>/dev/null || true
}

# -------------------------------------------------------------- cgroups ----

# PID 1 here is not systemd, so nobody hands nspawn a cgroup: each host gets
# its own group under $CGROUP_NAME in the name=systemd (v1) and the unified
# (v2) hierarchy, and the container's systemd runs in the v2 one
# (SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1).
cgroup_roots() {
  local d
  for d in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do
    [[ -d $d ]] && echo "$d"
  done
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    echo /sys/fs/cgroup
  fi
}

remove_cgroup_tree() {
  local root=$1 dir
  [[ -d $root ]] || return 0
  # Children first; rmdir only succeeds on empty groups, which is the point.
  find "$root" -depth -mindepth 0 -type d -print0 2>/dev/null | while IFS= read -r -d '' dir; do
    rmdir "$dir" 2>/dev/null || true
  done
}

# ---------------------------------------------------------------- hosts ----

# Per-host identity, written through the overlay into the host's upper dir.
write_host_identity() {
  local name=$1 addr=$2 root=$3 count=$4 i
  echo "$name" >"$root/etc/hostname"
  {
    echo "127.0.0.1 localhost"
    echo "127.0.1.1 $name"
    for ((i = 1; i <= count; i++)); do
      echo "$(host_addr "$i") $(host_name "$i")"
    done
  } >"$root/etc/hosts"
  mkdir -p "$root/etc/herd"
  printf 'HERD_IF=%s\nHERD_ADDR=%s/24\n' "$(guest_veth "$name")" "$addr" >"$root/etc/herd/net.env"
  # The base points apt at fleet 0's bridge; every fleet uses its own.
  echo "deb [trusted=yes] http://$BRIDGE_ADDR:$REPO_PORT ./" >"$root/etc/apt/sources.list.d/herd-local.list"
  # A fresh random machine-id and host key per host, generated at every `up`.
  tr -d '-' </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
  ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$root/etc/ssh/ssh_host_ed25519_key"
  install -m 0600 "$STATE_DIR/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
  install -m 0600 -o 1000 -g 1000 "$STATE_DIR/id_ed25519.pub" "$root/home/deploy/.ssh/authorized_keys"
  install -m 0600 -o 1001 -g 1001 "$STATE_DIR/id_ed25519.pub" "$root/home/deploy_pw/.ssh/authorized_keys"
}

mount_host_overlay() {
  local dir=$1
  mkdir -p "$dir/upper" "$dir/work" "$dir/root" "$dir/docker"
  mount -t overlay "herd-$(basename "$dir")" \
    -o "lowerdir=$BASE_DIR,upperdir=$dir/upper,workdir=$dir/work" "$dir/root"
}

# Start one host in the background. The launcher moves itself into the
# host's cgroups, records its PID and execs systemd-nspawn, so the recorded
# PID is nspawn's.
start_host() {
  local name=$1 dir=$2
  local -a groups=()
  local croot
  while read -r croot; do
    mkdir -p "$croot/$CGROUP_NAME/$name"
    groups+=("$croot/$CGROUP_NAME/$name")
  done < <(cgroup_roots)
  # --register=no/--keep-unit: no machined or systemd PID 1 on this machine.
  # --network-interface: moves the veth end into a new network namespace;
  # unlike --network-namespace-path it counts as a private network, so the
  # host gets CAP_NET_ADMIN and a writable /proc/sys/net.
  # nspawn refuses an interface udev has not "initialized" whenever /sys is
  # writable, and no udev runs here: in a private mount namespace the
  # launcher makes its own view of /sys read-only (this mount only; the
  # cgroup mounts below it stay writable), which tells nspawn there is no udev.
  # --console=read-only: boot messages go to console.log, nothing reads stdin.
  # Docker runs inside a host (the ops modules' tests): it needs every
  # capability, the keyring and bpf syscalls nspawn filters out by default
  # (runc makes a session keyring per container; dockerd loads device
  # filters as BPF programs on cgroup v2), and /var/lib/docker on a plain
  # ext4 directory, because overlay2 cannot stack on the host's overlay root.
  # A reboot inside the host ends nspawn with status $REBOOT_STATUS: the
  # launcher (the recorded PID) then starts it again, bounded by
  # MAX_REBOOTS. The host's veth pair died with its network namespace, so
  # it is made again first. SIGTERM (stop_hosts) is passed on to nspawn and
  # ends the loop.
  # shellcheck disable=SC2016 # the scripts are for the inner bash and sh
  SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 SYSTEMD_NSPAWN_TMPFS_TMP=0 \
  HERD_BRIDGE="$BRIDGE" HERD_VH="$(host_veth "$name")" HERD_VC="$(guest_veth "$name")" HERD_REBOOT_STATUS="$REBOOT_STATUS" HERD_MAX_REBOOTS="$MAX_REBOOTS" \
  setsid bash -c '
    pidfile=$1 name=$2 dir=$3; shift 3
    for g in "$@"; do echo $$ >"$g/cgroup.procs"; done
    echo $$ >"$pidfile"
    exec unshare --mount --propagation=private -- /bin/sh -c "
      mount -o remount,bind,ro /sys || exit 1
      n=0 stop=
      while :; do
        if ! ip link show \$HERD_VC >/dev/null 2>&1; then
          ip link del \$HERD_VH 2>/dev/null
          ip link add \$HERD_VH type veth peer name \$HERD_VC &&
            sysctl -qw net.ipv6.conf.\$HERD_VH.disable_ipv6=1 net.ipv6.conf.\$HERD_VC.disable_ipv6=1 &&
            ip link set \$HERD_VH master \$HERD_BRIDGE up || exit 1
        fi
        \"\$0\" \"\$@\" & child=\$!
        trap \"stop=1; kill -TERM \$child 2>/dev/null\" TERM
        wait \$child; rc=\$?
        while kill -0 \$child 2>/dev/null; do wait \$child; rc=\$?; done
        trap - TERM
        if [ -n \"\$stop\" ] || [ \$rc -ne \$HERD_REBOOT_STATUS ] || [ \$n -ge \$HERD_MAX_REBOOTS ]; then exit \$rc; fi
        n=\$((n + 1))
        echo \"[herd-launch] $name rebooted (\$n); starting it again\"
      done" \
      systemd-nspawn --quiet --boot --register=no --keep-unit \
      --machine="$name" --hostname="$name" --directory="$dir/root" \
      --network-interface="$HERD_VC" \
      --capability=all --system-call-filter="@keyring bpf" \
      --bind="$dir/docker:/var/lib/docker" \
      --console=read-only --link-journal=no --resolv-conf=off --timezone=off
  ' herd-launch "$dir/pid" "$name" "$dir" "${groups[@]}" >"$dir/console.log" 2>&1 </dev/null 8>&- 9>&- &
}

# Stop hosts together: SIGTERM asks each nspawn to power its container off
# (SIGRTMIN+3 to the container's systemd); whatever still runs after
# STOP_TIMEOUT seconds is killed. Then overlays, links and cgroups go.
stop_hosts() {
  local name pid i
  local -A pids=()
  for name in "$@"; do
    pid=$(cat "$(host_dir "$name")/pid" 2>/dev/null || true)
    if pid_alive "$pid" && is_our_nspawn "$pid" "$name"; then
      pids[$name]=$pid
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    for name in "${!pids[@]}"; do
      pid_alive "${pids[$name]}" || unset "pids[$name]"
    done
    ((${#pids[@]} == 0)) && break
    sleep 0.1
  done
  for name in "${!pids[@]}"; do
    log "$name did not stop in ${STOP_TIMEOUT}s; killing it"
    kill_host_processes "$name" "${pids[$name]}"
  done
  for name in "$@"; do
    release_host "$name"
  done
}

release_host() {
  local name=$1 dir croot
  dir=$(host_dir "$name")
  if mountpoint -q "$dir/root"; then
    umount "$dir/root" 2>/dev/null || umount -l "$dir/root"
  fi
  delete_host_veth "$name"
  while read -r croot; do
    remove_cgroup_tree "$croot/$CGROUP_NAME/$name"
  done < <(cgroup_roots)
}

# Guard against a recycled PID: only signal the nspawn we started for NAME.
is_our_nspawn() {
  local pid=$1 name=$2
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null \
    | grep -q -- "systemd-nspawn .*--machine=$name .*--directory=$(host_dir "$name")/root "
}

# Kill nspawn and everything in the host's cgroup (the container's init and
# its children), by PID, bounded.
kill_host_processes() {
  local name=$1 pid=$2 croot procs p i
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    procs=""
    while read -r croot; do
      if [[ -d $croot/$CGROUP_NAME/$name ]]; then
        procs+=" $(find "$croot/$CGROUP_NAME/$name" -name cgroup.procs -exec cat {} + 2>/dev/null | tr '\n' ' ')"
      fi
    done < <(cgroup_roots)
    [[ -z ${procs// /} ]] && ! pid_alive "$pid" && return 0
    for p in $procs; do kill -KILL "$p" 2>/dev/null || true; done
    sleep 0.1
  done
  log "warning: processes of $name still present after SIGKILL:$procs"
}

ensure_client_key() {
  if [[ ! -f $STATE_DIR/id_ed25519 ]]; then
    ssh-keygen -q -t ed25519 -N '' -C herd-fleet -f "$STATE_DIR/id_ed25519"
  fi
}

ssh_opts() {
  printf '%s\n' -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o "UserKnownHostsFile=$STATE_DIR/known_hosts" -o ConnectTimeout=2 \
    -o LogLevel=ERROR -i "$STATE_DIR/id_ed25519"
}

host_answers_ssh() {
  local addr=$1
  local -a opts
  mapfile -t opts < <(ssh_opts)
  timeout 5 ssh "${opts[@]}" "root@$addr" true </dev/null >/dev/null 2>&1
}

write_known_hosts() {
  local count=$1 i name
  : >"$STATE_DIR/known_hosts"
  for ((i = 1; i <= count; i++)); do
    name=$(host_name "$i")
    # One line per name: some clients do not split comma-separated hosts.
    for h in "$(host_addr "$i")" "$name"; do
      echo "$h $(cut -d' ' -f1,2 "$(host_dir "$name")/root/etc/ssh/ssh_host_ed25519_key.pub")"
    done >>"$STATE_DIR/known_hosts"
  done
}

write_inventory() {
  local count=$1 i name
  {
    echo "# written by tests/fleet/fleet.sh up $count"
    echo "[fleet]"
    for ((i = 1; i <= count; i++)); do
      name=$(host_name "$i")
      echo "$name ansible_host=$(host_addr "$i") ansible_user=root ansible_ssh_private_key_file=$STATE_DIR/id_ed25519"
    done
  } >"$STATE_DIR/inventory.ini"
}

write_hosts_json() {
  local count=$1 i name sep=""
  {
    printf '{\n  "subnet": "%s.0/24",\n  "bridge": "%s",\n  "bridge_address": "%s",\n' "$SUBNET_PREFIX" "$BRIDGE" "$BRIDGE_ADDR"
    printf '  "apt_repo": "http://%s:%s/",\n' "$BRIDGE_ADDR" "$REPO_PORT"
    printf '  "private_key": "%s",\n  "known_hosts": "%s",\n  "inventory": "%s",\n' \
      "$STATE_DIR/id_ed25519" "$STATE_DIR/known_hosts" "$STATE_DIR/inventory.ini"
    printf '  "users": {"root": null, "deploy": "deploy", "deploy_pw": "deploy_pw"},\n'
    printf '  "hosts": ['
    for ((i = 1; i <= count; i++)); do
      name=$(host_name "$i")
      printf '%s\n    {"name": "%s", "address": "%s", "port": 22, "pid": %s, "host_key": "%s"}' \
        "$sep" "$name" "$(host_addr "$i")" "$(cat "$(host_dir "$name")/pid")" \
        "$(cut -d' ' -f1,2 "$(host_dir "$name")/root/etc/ssh/ssh_host_ed25519_key.pub")"
      sep=","
    done
    printf '\n  ]\n}\n'
  } >"$STATE_DIR/hosts.json"
}

# Poll one host until its sshd accepts our key or the deadline passes;
# touches READY_FILE on success. A cheap port probe comes first so a host
# still booting costs no ssh process.
await_host_ssh() {
  local name=$1 addr=$2 ready_file=$3 deadline=$4 pid
  pid=$(cat "$(host_dir "$name")/pid" 2>/dev/null || true)
  while (($(date +%s) < deadline)); do
    pid_alive "$pid" || return 0
    if timeout 1 bash -c ">/dev/tcp/$addr/22" 2>/dev/null && host_answers_ssh "$addr"; then
      : >"$ready_file"
      return 0
    fi
    sleep 0.3
  done
}

# Wait until every host's sshd accepts our key: all hosts are polled at
# once, the whole wait is bounded by HERD_FLEET_BOOT_TIMEOUT seconds (or the default above).
wait_for_hosts() {
  local count=$1 deadline i name ready_dir failed=() boot_timeout
  boot_timeout=${BOOT_TIMEOUT_SET:-$(( 120 + (count > 20 ? (count - 20) * 5 : 0) ))}
  deadline=$(( $(date +%s) + boot_timeout ))
  ready_dir="$STATE_DIR/ready"
  rm -rf "$ready_dir"; mkdir -p "$ready_dir"
  local -a waiters=()
  for ((i = 1; i <= count; i++)); do
    name=$(host_name "$i")
    await_host_ssh "$name" "$(host_addr "$i")" "$ready_dir/$name" "$deadline" &
    waiters+=("$!")
  done
  wait "${waiters[@]}" || true
  for ((i = 1; i <= count; i++)); do
    name=$(host_name "$i")
    [[ -e $ready_dir/$name ]] || failed+=("$name")
  done
  rm -rf "$ready_dir"
  if ((${#failed[@]} > 0)); then
    for name in "${failed[@]}"; do
      if ! pid_alive "$(cat "$(host_dir "$name")/pid" 2>/dev/null)"; then
        log "$name exited during boot; last console lines:"
        tail -n 10 "$(host_dir "$name")/console.log" >&2 || true
      fi
    done
    die "hosts not answering ssh within ${boot_timeout}s: ${failed[*]} (console logs: $STATE_DIR/hosts/NAME/console.log)"
  fi
}

# Many systemd instances need more inotify instances than the default 128.
raise_inotify_limit() {
  local count=$1 want cur
  # Other fleets may run beside this one: leave room for all of them.
  want=$(( 512 + (count + 32) * 64 ))
  cur=$(sysctl -n fs.inotify.max_user_instances)
  if ((cur < want)); then
    sysctl -qw fs.inotify.max_user_instances="$want"
  fi
}

cmd_up() {
  require_root
  local count=${1:-}
  if ! [[ $count =~ ^[0-9]+$ ]] || ((count < 1 || count > MAX_HOSTS)); then
    die "usage: fleet.sh up N (1..$MAX_HOSTS)"
  fi
  require_tools systemd-nspawn ip ssh ssh-keygen mount setsid timeout
  local start t i name
  start=$(now_ms)
  if [[ -n $(recorded_hosts) ]]; then
    log "a fleet is already up; taking it down first"
    cmd_down
  fi
  ensure_cache
  # From here on a failure leaves things running: on_up_failure cleans up.
  trap 'on_up_failure' EXIT
  mkdir -p "$STATE_DIR/hosts"
  ensure_client_key
  ensure_bridge
  serve_repo
  raise_inotify_limit "$count"

  t=$(now_ms)
  for ((i = 1; i <= count; i++)); do
    name=$(host_name "$i")
    mkdir -p "$(host_dir "$name")"
    mount_host_overlay "$(host_dir "$name")"
    write_host_identity "$name" "$(host_addr "$i")" "$(host_dir "$name")/root" "$count"
    create_host_veth "$name"
  done
  write_known_hosts "$count"
  write_inventory "$count"
  log "prepared $count overlays and links in $(elapsed "$t")"

  t=$(now_ms)
  for ((i = 1; i <= count; i++)); do
    name=$(host_name "$i")
    start_host "$name" "$(host_dir "$name")"
  done
  # Wait (bounded) for every launcher to record its PID.
  for ((i = 1; i <= count; i++)); do
    local n
    for ((n = 0; n < 50; n++)); do
      [[ -s $(host_dir "$(host_name "$i")")/pid ]] && break
      sleep 0.1
    done
    [[ -s $(host_dir "$(host_name "$i")")/pid ]] || die "$(host_name "$i") did not start"
  done
  wait_for_hosts "$count"
  trap - EXIT
  write_hosts_json "$count"
  log "$count hosts answer ssh $(elapsed "$t") after start ($(elapsed "$start") total)"
  echo "$STATE_DIR/inventory.ini"
}

# A half-up fleet is no use to a test run: keep the console logs for
# diagnosis, then take everything down (HERD_FLEET_KEEP_FAILED=1 keeps it).
on_up_failure() {
  local rc=$?
  trap - EXIT
  ((rc != 0)) || return 0
  if [[ ${HERD_FLEET_KEEP_FAILED:-0} == 1 ]]; then
    log "leaving the failed fleet up (HERD_FLEET_KEEP_FAILED=1); 'fleet.sh down' cleans up"
    exit "$rc"
  fi
  rm -rf "$CACHE_DIR/failed-up"; mkdir -p "$CACHE_DIR/failed-up"
  local f
  for f in "$STATE_DIR"/hosts/*/console.log; do
    [[ -f $f ]] && cp "$f" "$CACHE_DIR/failed-up/$(basename "$(dirname "$f")").log"
  done
  log "console logs kept in $CACHE_DIR/failed-up/; taking the fleet down"
  cmd_down || true
  exit "$rc"
}

cmd_down() {
  require_root
  local start name pid
  start=$(now_ms)
  local -a names
  mapfile -t names < <(recorded_hosts)
  if ((${#names[@]} > 0)); then
    stop_hosts "${names[@]}"
  fi
  local pidfile="$STATE_DIR/repo-http.pid"
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if pid_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'http.server'; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do pid_alive "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  local croot
  while read -r croot; do
    remove_cgroup_tree "$croot/$CGROUP_NAME"
  done < <(cgroup_roots)
  delete_bridge
  # Refuse to delete state that still has a mount in it.
  if [[ -d $STATE_DIR ]]; then
    if grep -q " $STATE_DIR/" /proc/self/mounts; then
      die "mounts remain under $STATE_DIR; not removing it"
    fi
    rm -rf "$STATE_DIR"
  fi
  log "down in $(elapsed "$start")"
}

cmd_status() {
  local name pid any=0 addr state
  for name in $(recorded_hosts); do
    any=1
    pid=$(cat "$(host_dir "$name")/pid" 2>/dev/null || true)
    addr=$(host_addr "$((10#${name#herd-}))")
    if pid_alive "$pid"; then
      if host_answers_ssh "$addr"; then state=up; else state="running, ssh not answering"; fi
    else
      state=down
    fi
    printf '%s\t%s\tpid=%s\t%s\n' "$name" "$addr" "${pid:--}" "$state"
  done
  ((any)) || echo "no fleet is up"
}

cmd_inventory() {
  [[ -f $STATE_DIR/inventory.ini ]] || die "no fleet is up (no $STATE_DIR/inventory.ini)"
  echo "$STATE_DIR/inventory.ini"
}

# Kill one host hard, as if it lost power: its processes die at once and its
# link is removed, so its address stops answering (no RST, no ARP reply).
cmd_kill() {
  require_root
  local name=${1:-} dir pid
  [[ $name =~ ^herd-[0-9]{2}$ ]] || die "usage: fleet.sh kill herd-NN"
  dir=$(host_dir "$name")
  [[ -d $dir ]] || die "$name is not part of the fleet"
  pid=$(cat "$dir/pid" 2>/dev/null || true)
  delete_host_veth "$name"
  if pid_alive "$pid" && is_our_nspawn "$pid" "$name"; then
    kill_host_processes "$name" "$pid"
  fi
  log "killed $name"
}

# Two locks. fd 9, per fleet: one command at a time changes a fleet (its
# bridge, state dir and hosts). fd 8, per machine: one command at a time
# builds the shared base and repository; it is held only while building, so
# one fleet booting never stalls a command on another (a `kill` that waited
# for another fleet's `up` would come too late for its test).
# Children started in the background close both fds so they never keep
# holding a lock.
take_lock() {
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR/.lock-fleet-$FLEET_ID"
  flock -w 300 9 || die "another fleet.sh is still running on fleet $FLEET_ID after 300s"
}

# The base and the repository, built when missing or stale.
ensure_cache() {
  exec 8>"$CACHE_DIR/.lock"
  flock -w 900 8 || die "another fleet.sh is still building the cache after 900s ($CACHE_DIR/.lock)"
  cmd_base
  repo_is_current || build_repo
  flock -u 8
  exec 8>&-
}

ensure_cache_base() {
  exec 8>"$CACHE_DIR/.lock"
  flock -w 900 8 || die "another fleet.sh is still building the cache after 900s ($CACHE_DIR/.lock)"
  cmd_base
}

main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    base | repo | up | down | kill) require_root; take_lock ;;
  esac
  case $cmd in
    base) ensure_cache_base ;;
    repo) cmd_repo ;;
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    inventory) cmd_inventory ;;
    kill) cmd_kill "$@" ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"
