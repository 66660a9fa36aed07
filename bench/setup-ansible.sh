#!/usr/bin/env bash
# setup-ansible.sh — install ansible-core from PyPI into a venv for the speed
# benchmark (bench/run.sh) and the parity test (tests/fleet_ansible_parity.rs).
# Idempotent: an existing venv with ansible-playbook is reused as it is.
#
#   bench/setup-ansible.sh            # venv in /var/cache/herd-bench/venv
#   HERD_BENCH_VENV=/x bench/setup-ansible.sh
#
# ansible-core is enough: the benchmark playbook uses only ansible.builtin
# modules (its sysctl step is lineinfile + command, because herd has no
# sysctl module yet and the full `ansible` package is ten times the size).
set -euo pipefail

readonly VENV="${HERD_BENCH_VENV:-/var/cache/herd-bench/venv}"
# Pinned so benchmark runs stay comparable; bump on purpose.
readonly ANSIBLE_CORE_SPEC="${HERD_ANSIBLE_CORE_SPEC:-ansible-core==2.18.*}"
# Bounds pip's talk with PyPI: no endless retries on a bad network.
readonly PIP_TIMEOUT=60

log() { printf '[setup-ansible] %s\n' "$*" >&2; }
die() { printf '[setup-ansible] error: %s\n' "$*" >&2; exit 1; }

venv_has_ansible() {
  [[ -x $VENV/bin/ansible-playbook ]] && "$VENV/bin/ansible-playbook" --version >/dev/null 2>&1
}

create_venv() {
  command -v python3 >/dev/null 2>&1 || die "python3 is needed on the controller"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
}

install_ansible_core() {
  log "pip install $ANSIBLE_CORE_SPEC into $VENV"
  timeout 900 "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    --timeout "$PIP_TIMEOUT" --retries 2 "$ANSIBLE_CORE_SPEC" \
    || die "pip install $ANSIBLE_CORE_SPEC failed"
}

main() {
  if venv_has_ansible; then
    log "reusing $VENV ($("$VENV/bin/ansible-playbook" --version | head -n1))"
  else
    [[ -x $VENV/bin/pip ]] || create_venv
    install_ansible_core
    venv_has_ansible || die "ansible-playbook does not run from $VENV"
    log "installed $("$VENV/bin/ansible-playbook" --version | head -n1)"
  fi
  echo "$VENV/bin/ansible-playbook"
}

main "$@"
