#!/usr/bin/env bash
# setup-ansible.sh — install ansible-core from PyPI into a venv for the speed
# benchmark (bench/run.sh) and the parity test (tests/fleet_ansible_parity.rs).
# Idempotent: an existing venv with ansible-playbook is reused as it is.
#
#   bench/setup-ansible.sh            # venv in /var/cache/herd-bench/venv
#   HERD_BENCH_VENV=/x bench/setup-ansible.sh
#
# ansible-core is enough for the benchmark: its playbook uses only
# ansible.builtin modules (its sysctl step is lineinfile + command, because
# herd has no sysctl module yet and the full `ansible` package is ten times
# the size). The corpus test (tests/fleet_corpus.rs) runs public projects
# that also use ansible.posix and community.general modules, and the
# module parity tests use community.docker too: those collections are taken from the `ansible` package on PyPI (the only place
# they are published besides Galaxy) into $COLLECTIONS, the rest of that
# package is not kept.
set -euo pipefail

readonly VENV="${HERD_BENCH_VENV:-/var/cache/herd-bench/venv}"
# Pinned so benchmark runs stay comparable; bump on purpose.
readonly ANSIBLE_CORE_SPEC="${HERD_ANSIBLE_CORE_SPEC:-ansible-core==2.18.*}"
# Bounds pip's talk with PyPI: no endless retries on a bad network.
readonly PIP_TIMEOUT=60
readonly COLLECTIONS="${HERD_BENCH_COLLECTIONS:-$(dirname "$VENV")/collections}"
# The `ansible` release built for ansible-core 2.18.
readonly ANSIBLE_SPEC="${HERD_ANSIBLE_SPEC:-ansible==11.*}"
readonly KEEP_COLLECTIONS=(ansible/posix community/general community/docker)

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

collections_present() {
  local c
  for c in "${KEEP_COLLECTIONS[@]}"; do
    [[ -f $COLLECTIONS/ansible_collections/$c/MANIFEST.json ]] || return 1
  done
}

# Download the `ansible` wheel (no dependencies) and unpack only the
# collections in KEEP_COLLECTIONS, replacing what was there.
install_collections() {
  local tmp
  tmp=$(mktemp -d)
  log "collections ${KEEP_COLLECTIONS[*]} from $ANSIBLE_SPEC into $COLLECTIONS"
  timeout 900 "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps \
    --timeout "$PIP_TIMEOUT" --retries 2 -d "$tmp" "$ANSIBLE_SPEC" \
    || { rm -rf "$tmp"; die "pip download $ANSIBLE_SPEC failed"; }
  "$VENV/bin/python" - "$tmp"/ansible-*.whl "$tmp/unpacked" "${KEEP_COLLECTIONS[@]}" <<'PY' \
    || { rm -rf "$tmp"; die "unpacking the collections failed"; }
import sys, zipfile
wheel, dest, keep = sys.argv[1], sys.argv[2], sys.argv[3:]
prefixes = tuple(f"ansible_collections/{c}/" for c in keep)
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest, [n for n in z.namelist() if n.startswith(prefixes)])
PY
  local c
  for c in "${KEEP_COLLECTIONS[@]}"; do
    mkdir -p "$COLLECTIONS/ansible_collections/${c%/*}"
    rm -rf "${COLLECTIONS:?}/ansible_collections/$c"
    mv "$tmp/unpacked/ansible_collections/$c" "$COLLECTIONS/ansible_collections/$c"
  done
  rm -rf "$tmp"
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
  collections_present || install_collections
  echo "$VENV/bin/ansible-playbook"
}

main "$@"
