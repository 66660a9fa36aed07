#!/usr/bin/env bash
# smoke.sh — check that a running fleet is what the integration tests expect:
# every host answers ssh as root and as deploy, has its own hostname and
# address, systemd is up, sudo works, net.* sysctls are writable, and apt
# installs from the local repository. Run after `fleet.sh up N`.
set -euo pipefail

readonly STATE_DIR="${HERD_FLEET_STATE:-/run/herd-fleet}"
HERE=$(cd "$(dirname "$0")" && pwd)
readonly HERE

passes=0 failures=0
fail() { printf 'FAIL %s\n' "$*"; failures=$((failures + 1)); }
pass() { printf 'ok   %s\n' "$*"; passes=$((passes + 1)); }
# expect WHAT GOT WANT: pass when GOT is exactly WANT.
expect() {
  if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1: got '$2', want '$3'"; fi
}

[[ -f $STATE_DIR/inventory.ini ]] || { echo "no fleet is up; run $HERE/fleet.sh up N" >&2; exit 1; }

ssh_opts=(-o BatchMode=yes -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$STATE_DIR/known_hosts"
          -o ConnectTimeout=5 -o LogLevel=ERROR -i "$STATE_DIR/id_ed25519")
# Every remote command is bounded in time.
on() { local who=$1; shift; timeout 60 ssh "${ssh_opts[@]}" "$who" "$@" </dev/null; }

mapfile -t hosts < <(awk '/ansible_host=/ { sub("ansible_host=", "", $2); print $1, $2 }' "$STATE_DIR/inventory.ini")
((${#hosts[@]} > 0)) || { echo "inventory lists no hosts" >&2; exit 1; }

for entry in "${hosts[@]}"; do
  name=${entry% *} addr=${entry#* }

  got=$(on "root@$addr" hostname 2>&1) || true
  expect "$name: root ssh, hostname" "$got" "$name"

  got=$(on "root@$addr" "ip -4 -o addr show dev host0 | awk '{print \$4}'; ip route show default" 2>&1) || true
  expect "$name: address on host0, no default route" "$got" "$addr/24"

  state=$(on "root@$addr" systemctl is-system-running 2>/dev/null) || true
  case $state in
    running) pass "$name: systemd $state" ;;
    degraded) fail "$name: systemd degraded: $(on "root@$addr" systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')" ;;
    *) fail "$name: systemd '$state'" ;;
  esac

  got=$(on "deploy@$addr" 'sudo -n true && whoami && sudo -n whoami' 2>&1 | tr '\n' ' ') || true
  expect "$name: deploy ssh, sudo -n" "$got" "deploy root "

  got=$(on "deploy_pw@$addr" 'sudo -n true 2>/dev/null && echo nopasswd; echo deploy_pw | sudo -S -p "" whoami' 2>&1 | tr '\n' ' ') || true
  expect "$name: deploy_pw sudo needs its password" "$got" "root "

  got=$(on "root@$addr" 'sysctl -w net.ipv4.tcp_fin_timeout=20 && sysctl -n net.ipv4.tcp_fin_timeout' 2>&1 | tail -n1) || true
  expect "$name: net.* sysctl writable" "$got" 20

  got=$(on "root@$addr" 'command -v python3 python || echo none' 2>&1) || true
  expect "$name: no python" "$got" none
done

# Per-host sysctls: the change above must not leak to the test machine.
if [[ $(sysctl -n net.ipv4.tcp_fin_timeout) != 20 ]]; then
  pass "per-host sysctl did not reach the test machine"
else
  fail "net.ipv4.tcp_fin_timeout=20 leaked to the test machine"
fi

first=${hosts[0]#* }
got=$(on "root@$first" 'apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q hello >/dev/null 2>&1 && hello' 2>&1) || true
expect "${hosts[0]% *}: apt-get install hello from the local repo" "$got" "Hello, world!"

printf '%d passed, %d failed\n' "$passes" "$failures"
((failures == 0))
