#!/usr/bin/env bash
# run.sh — herd against ansible-playbook on the same 20-task playbook
# (bench/playbook.yml) and the same fleet hosts, and both against the
# physical floor: one plain ssh session per host running the 20 equivalent
# shell commands back to back. Writes bench/RESULTS.md.
#
#   sudo bench/run.sh                    # fleet of 10, then 50, then back to 8
#   HERD_BENCH_SIZES="4" HERD_BENCH_REUSE_FLEET=1 bench/run.sh
#                                        # develop on a fleet that is already up
#
# For every size N, on a fresh target directory (the "first" run) and again
# on the result (the "second", idempotent run):
#   wall time      date +%s%N around the command;
#   controller CPU user+sys of the command and every descendant it waited
#                  for (/usr/bin/time: getrusage of children), so ansible's
#                  forks and its ssh clients are included;
#   max RSS        /usr/bin/time's "maximum resident set size": the largest
#                  single process of the tree, not a sum (for herd, one
#                  process, that is its whole footprint);
#   tree RSS       the peak of the summed RSS of the whole process tree,
#                  sampled every 100 ms (ansible's forks and ssh clients).
# herd and the floor run HERD_BENCH_REPS times (median reported, every
# sample listed); ansible-playbook runs once per size (its variation is far
# below the ratios measured). Both tools get the same forks (N) and the same
# inventory; python3 is installed on the hosts beforehand (not timed).
#
# Network: only the fleet (10.77.0.x), the bridge's apt repository and PyPI
# (bench/setup-ansible.sh, on first use). Every wait is bounded.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly BENCH_DIR
REPO_DIR="$(dirname "$BENCH_DIR")"
readonly REPO_DIR
readonly FLEET_SH="$REPO_DIR/tests/fleet/fleet.sh"
# fleet.sh's state dir for HERD_FLEET_ID (0, the default, is /run/herd-fleet).
if [[ ${HERD_FLEET_ID:-0} == 0 ]]; then fleet_suffix=""; else fleet_suffix="-$HERD_FLEET_ID"; fi
readonly STATE_DIR="${HERD_FLEET_STATE:-/run/herd-fleet$fleet_suffix}"
readonly SIZES="${HERD_BENCH_SIZES:-10 50}"
readonly REPS="${HERD_BENCH_REPS:-3}"
readonly REUSE_FLEET="${HERD_BENCH_REUSE_FLEET:-0}"
# Which of herd, floor, ansible to run (development runs may skip some).
readonly TOOLS="${HERD_BENCH_TOOLS:-herd floor ansible}"
# Hosts to leave up at the end (the fleet other tests share); 0 = leave as is.
readonly RESTORE_HOSTS="${HERD_BENCH_RESTORE_HOSTS:-8}"
readonly RESULTS="${HERD_BENCH_RESULTS:-$BENCH_DIR/RESULTS.md}"
readonly PLAYBOOK="$BENCH_DIR/playbook.yml"
readonly HERD="$REPO_DIR/target/release/herd"
# The directory the playbook manages on every host.
readonly TARGET_DIR=/tmp/herd-bench
# The sysctl the playbook sets, and the value a fresh host has.
readonly SYSCTL_KEY=net.ipv4.tcp_keepalive_probes
readonly SYSCTL_DEFAULT=9
# Bounds, in seconds.
readonly SSH_TIMEOUT=60
readonly APT_TIMEOUT=300
readonly RUN_TIMEOUT=1800

WORK=""
ANSIBLE_PLAYBOOK=""
# Set once this script has brought a fleet up: it is put back at exit.
FLEET_CHANGED=0
declare -A RESULT=()

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }
now_ns() { date +%s%N; }

require_tools() {
  local missing=() tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) || die "missing tools: ${missing[*]}"
}

# At exit, also after a failure: masters, work files, and the fleet as it was.
cleanup() {
  if [[ $FLEET_CHANGED == 1 ]]; then
    restore_fleet
  fi
  if [[ -n $WORK && -d $WORK ]]; then
    # ControlPersist masters ansible left behind, by their own socket.
    local sock
    for sock in "$WORK"/cp/*; do
      if [[ -S $sock ]]; then
        timeout 5 ssh -o ControlPath="$sock" -O exit dummy >/dev/null 2>&1 || true
      fi
    done
    rm -rf "$WORK"
  fi
}

# ------------------------------------------------------------- setup ----

build_herd() {
  log "cargo build --release"
  (cd "$REPO_DIR" && cargo build --release --quiet) || die "cargo build failed"
  [[ -x $HERD ]] || die "no $HERD after the build"
}

prepare_ansible() {
  ANSIBLE_PLAYBOOK=$("$BENCH_DIR/setup-ansible.sh" | tail -n1)
  [[ -x $ANSIBLE_PLAYBOOK ]] || die "setup-ansible.sh gave no ansible-playbook"
}

fleet_up() {
  local n=$1
  if [[ $REUSE_FLEET == 1 ]]; then
    local have
    have=$(grep -c '^herd-' "$STATE_DIR/inventory.ini" 2>/dev/null || true)
    ((have >= n)) || die "HERD_BENCH_REUSE_FLEET=1 but only ${have:-0} hosts are up (need $n)"
    log "reusing the running fleet (first $n of $have hosts)"
  else
    log "fleet.sh up $n"
    FLEET_CHANGED=1
    "$FLEET_SH" up "$n" >/dev/null
  fi
}

# The first N hosts of the fleet inventory: both tools read this file.
write_inventory() {
  local n=$1 inv=$2
  {
    echo "[bench]"
    grep '^herd-' "$STATE_DIR/inventory.ini" | head -n "$n"
  } >"$inv"
  (($(grep -c '^herd-' "$inv") == n)) || die "the fleet inventory has fewer than $n hosts"
}

host_addrs() {
  sed -n 's/.* ansible_host=\([^ ]*\).*/\1/p' "$1"
}

# Settings of a careful Ansible user: pipelining, persistent connections,
# one fork per host, strict host keys from the fleet's known_hosts.
write_ansible_cfg() {
  local n=$1 cfg=$2
  mkdir -p "$WORK/cp"
  cat >"$cfg" <<EOF
[defaults]
forks = $n
host_key_checking = True
gathering = explicit
interpreter_python = auto_silent
retry_files_enabled = False
stdout_callback = default

[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=$STATE_DIR/known_hosts -o StrictHostKeyChecking=yes -o ConnectTimeout=10
control_path_dir = $WORK/cp
EOF
}

ssh_base() {
  printf '%s\n' -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o "UserKnownHostsFile=$STATE_DIR/known_hosts" -o ConnectTimeout=10 \
    -o ControlMaster=no -o ControlPath=none -o LogLevel=ERROR \
    -i "$STATE_DIR/id_ed25519"
}

# Run a shell command on every host of an inventory at once, as root, each
# bounded by TIMEOUT seconds; fails naming the hosts where it failed.
on_all_hosts() {
  local inv=$1 timeout_s=$2 command=$3 addr failed=()
  local -a opts pids=() addrs=()
  mapfile -t opts < <(ssh_base)
  while read -r addr; do
    timeout "$timeout_s" ssh "${opts[@]}" "root@$addr" "$command" </dev/null >"$WORK/on-$addr.log" 2>&1 &
    pids+=("$!"); addrs+=("$addr")
  done < <(host_addrs "$inv")
  local i
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed+=("${addrs[$i]}")
  done
  if ((${#failed[@]} > 0)); then
    tail -n 5 "$WORK/on-${failed[0]}.log" >&2 || true
    die "'$command' failed on: ${failed[*]}"
  fi
}

install_python() {
  local inv=$1
  log "installing python3 on the hosts for ansible (not timed)"
  on_all_hosts "$inv" "$APT_TIMEOUT" \
    "command -v python3 >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null; }"
}

# A fresh target: no bench directory, the sysctl at its default.
reset_targets() {
  on_all_hosts "$1" "$SSH_TIMEOUT" "rm -rf $TARGET_DIR && sysctl -qw $SYSCTL_KEY=$SYSCTL_DEFAULT"
}

# ------------------------------------------------------------ floor ----

# The 20 tasks as plain shell, for one host, doing every step
# unconditionally (a first run's work with no checks): what one ssh session
# per host costs at the least.
floor_script() {
  local host=$1 d=$TARGET_DIR i
  cat <<EOF
set -e
mkdir -p $d/etc && chmod 0755 $d/etc
mkdir -p $d/data && chmod 0750 $d/data
cp /etc/debian_version $d/data/debian_version
echo "$host \$(uname -s)" > $d/data/uname.txt
printf 'Managed by the bench playbook.\n' > $d/etc/motd && chmod 0644 $d/etc/motd
cat > $d/etc/app.conf <<'CONF' && chmod 0640 $d/etc/app.conf
$(cat "$BENCH_DIR/files/app.conf")
CONF
cat > $d/etc/app.ini <<'INI' && chmod 0644 $d/etc/app.ini
; herdbench settings for $host
[server]
name = herdbench
host = $host
port = 8081
workers = 4
$(for i in 0 1 2 3; do echo "worker$i = $d/run/herdbench-$i.sock"; done)
INI
grep -q '^port=' $d/etc/app.local 2>/dev/null && sed -i 's/^port=.*/port=8081/' $d/etc/app.local || echo port=8081 >> $d/etc/app.local
grep -qxF 'log_dir=$d/log' $d/etc/app.local || echo 'log_dir=$d/log' >> $d/etc/app.local
grep -qxF 'sshd: 10.77.0.0/24' $d/etc/hosts.allow 2>/dev/null || echo 'sshd: 10.77.0.0/24' >> $d/etc/hosts.allow
stat -c '%s %a %U' $d/etc/app.ini > /dev/null
sha1sum < $d/etc/app.ini | cut -d' ' -f1 > $d/data/app.ini.sha1
grep -q '^net.ipv4.tcp_keepalive_probes' $d/etc/sysctl-bench.conf 2>/dev/null || echo 'net.ipv4.tcp_keepalive_probes = 7' >> $d/etc/sysctl-bench.conf
sysctl -q -p $d/etc/sysctl-bench.conf
sysctl -n net.ipv4.tcp_keepalive_probes > /dev/null
ln -sfn $d/etc/app.ini $d/current.ini
chown nobody:nogroup $d/data/uname.txt && chmod 0600 $d/data/uname.txt
chgrp daemon $d/etc/app.conf && chmod 0640 $d/etc/app.conf
printf 'token for $host\n' > $d/data/token && chown daemon:daemon $d/data/token && chmod 0440 $d/data/token
rm -f $d/etc/app.conf.orig
EOF
}

# One ssh process per host, no ControlMaster, all in parallel; the
# command waits for all of them.
write_floor_runner() {
  local inv=$1 runner=$2 name addr
  local -a opts
  mapfile -t opts < <(ssh_base)
  mkdir -p "$WORK/floor"
  {
    echo "#!/usr/bin/env bash"
    echo "set -euo pipefail"
    echo "pids=()"
    while read -r name addr; do
      floor_script "$name" >"$WORK/floor/$name.sh"
      printf 'timeout %d ssh' "$SSH_TIMEOUT"
      printf ' %q' "${opts[@]}" "root@$addr" "sh -s"
      printf ' <%q &\npids+=("$!")\n' "$WORK/floor/$name.sh"
    done < <(sed -n 's/^\(herd-[0-9]*\) ansible_host=\([^ ]*\).*/\1 \2/p' "$inv")
    # shellcheck disable=SC2016 # expanded by the runner, not here
    echo 'rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done; exit "$rc"'
  } >"$runner"
  chmod +x "$runner"
}

# ---------------------------------------------------------- measure ----

# CPU time (microseconds) used so far by every fleet host together, from
# the cgroup fleet.sh puts the hosts in; 0 when it cannot be read.
fleet_cpu_usec() {
  local f
  for f in "/sys/fs/cgroup/unified/herd-fleet$fleet_suffix/cpu.stat" "/sys/fs/cgroup/herd-fleet$fleet_suffix/cpu.stat"; do
    if [[ -r $f ]]; then
      awk '$1 == "usage_usec" { print $2; found = 1 } END { if (!found) print 0 }' "$f"
      return 0
    fi
  done
  echo 0
}

# Peak of the summed RSS (KiB) of ROOT's descendants, sampled every 100 ms
# while ROOT lives (bounded by RUN_TIMEOUT).
sample_tree_rss() {
  local root=$1 out=$2 peak=0 now i
  for ((i = 0; i < RUN_TIMEOUT * 10; i++)); do
    kill -0 "$root" 2>/dev/null || break
    now=$(ps -e -o pid=,ppid=,rss= | awk -v root="$root" '
      { parent[$1] = $2; rss[$1] = $3 }
      END {
        for (p in parent) {
          q = parent[p]; hops = 0
          while (q != root && q in parent && hops++ < 64) q = parent[q]
          if (q == root) sum += rss[p]
        }
        print sum + 0
      }')
    ((now > peak)) && peak=$now
    sleep 0.1
  done
  echo "$peak" >"$out"
}

# measure KEY LOG COMMAND...: run COMMAND (stdout+stderr to LOG), record
# wall seconds, CPU seconds, max RSS and tree RSS (MiB) under KEY.
measure() {
  local key=$1 logfile=$2; shift 2
  local tfile="$WORK/$key.time" rfile="$WORK/$key.rss" start end pid rc=0 cpu0 cpu1
  cpu0=$(fleet_cpu_usec)
  start=$(now_ns)
  timeout "$RUN_TIMEOUT" /usr/bin/time -f '%U %S %M' -o "$tfile" "$@" >"$logfile" 2>&1 &
  pid=$!
  sample_tree_rss "$pid" "$rfile" &
  local sampler=$!
  wait "$pid" || rc=$?
  end=$(now_ns)
  cpu1=$(fleet_cpu_usec)
  wait "$sampler" || true
  if ((rc != 0)); then
    tail -n 30 "$logfile" >&2
    die "$key failed (exit $rc); log: $logfile"
  fi
  local user sys maxrss tree
  read -r user sys maxrss < <(grep -v '^Command' "$tfile" | tail -n1)
  tree=$(cat "$rfile")
  RESULT[$key.wall]=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  RESULT[$key.cpu]=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  RESULT[$key.rss]=$(awk -v k="$maxrss" 'BEGIN { printf "%.1f", k / 1024 }')
  RESULT[$key.tree]=$(awk -v k="$tree" 'BEGIN { printf "%.1f", k / 1024 }')
  RESULT[$key.target]=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
  log "$key: wall ${RESULT[$key.wall]} s, cpu ${RESULT[$key.cpu]} s, max rss ${RESULT[$key.rss]} MiB, tree rss ${RESULT[$key.tree]} MiB, target cpu ${RESULT[$key.target]} s"
}

# Sum of changed= and of failed=+unreachable= over a PLAY RECAP.
recap_counts() {
  awk '/^PLAY RECAP/ { on = 1; next }
       on && / : ok=/ {
         for (i = 1; i <= NF; i++) {
           split($i, kv, "=")
           if (kv[1] == "changed") c += kv[2]
           if (kv[1] == "failed" || kv[1] == "unreachable") f += kv[2]
         }
       }
       END { printf "%d %d\n", c, f }' "$1"
}

check_recap() {
  local key=$1 logfile=$2 changed bad
  read -r changed bad < <(recap_counts "$logfile")
  ((bad == 0)) || die "$key: $bad failed/unreachable host results; log: $logfile"
  RESULT[$key.changed]=$changed
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# herd, the floor and ansible on N hosts.
bench_size() {
  local n=$1 r phase
  local inv="$WORK/inventory-$n.ini" cfg="$WORK/ansible-$n.cfg" runner="$WORK/floor-$n.sh"
  fleet_up "$n"
  write_inventory "$n" "$inv"
  write_ansible_cfg "$n" "$cfg"
  write_floor_runner "$inv" "$runner"
  if wants ansible; then install_python "$inv"; fi
  RESULT[$n.load]=$(cut -d' ' -f1-3 /proc/loadavg)

  for ((r = 1; r <= REPS; r++)); do
    wants herd || break
    reset_targets "$inv"
    for phase in first second; do
      measure "$n.herd.$phase.$r" "$WORK/herd-$n-$phase-$r.log" \
        "$HERD" run "$PLAYBOOK" -i "$inv" --known-hosts "$STATE_DIR/known_hosts" \
        --host-key-checking strict --forks "$n" --profile
      check_recap "$n.herd.$phase.$r" "$WORK/herd-$n-$phase-$r.log"
    done
  done
  for ((r = 1; r <= REPS; r++)); do
    wants floor || break
    reset_targets "$inv"
    measure "$n.floor.first.$r" "$WORK/floor-$n-$r.log" "$runner"
  done
  reset_targets "$inv"
  for phase in first second; do
    wants ansible || break
    measure "$n.ansible.$phase.1" "$WORK/ansible-$n-$phase.log" \
      env ANSIBLE_CONFIG="$cfg" ANSIBLE_NOCOLOR=1 "$ANSIBLE_PLAYBOOK" -i "$inv" "$PLAYBOOK"
    check_recap "$n.ansible.$phase.1" "$WORK/ansible-$n-$phase.log"
  done
  RESULT[$n.load_after]=$(cut -d' ' -f1-3 /proc/loadavg)
  if wants herd; then
    cp "$WORK/herd-$n-first-1.log" "$WORK/profile-$n-first.log"
    cp "$WORK/herd-$n-second-1.log" "$WORK/profile-$n-second.log"
  fi
}

wants() { [[ " $TOOLS " == *" $1 "* ]]; }

# ----------------------------------------------------------- report ----

# The median of metric M over the herd/floor repetitions.
med() {
  local n=$1 tool=$2 phase=$3 m=$4 r vals=()
  for ((r = 1; r <= REPS; r++)); do vals+=("${RESULT[$n.$tool.$phase.$r.$m]:--}"); done
  if [[ ${vals[0]} == - ]]; then echo -; else median "${vals[@]}"; fi
}

samples() {
  local n=$1 tool=$2 phase=$3 m=$4 r vals=()
  for ((r = 1; r <= REPS; r++)); do vals+=("${RESULT[$n.$tool.$phase.$r.$m]:--}"); done
  local joined
  joined=$(IFS=,; echo "${vals[*]}")
  echo "${joined//,/, }"
}

per_task_ms() { awk -v s="$1" -v n="$2" -v t="$3" 'BEGIN { if (s != "-") printf "%.0f", s * 1000 / (n * t); else print "-" }'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b > 0) printf "%.1f", a / b; else print "-" }'; }

# at_least A B LIMIT / at_most A B LIMIT: is A/B on the right side of LIMIT?
# (false when a value is missing)
at_least() { awk -v a="$1" -v b="$2" -v l="$3" 'BEGIN { exit !(a != "-" && b != "-" && b > 0 && a / b >= l) }'; }
at_most() { awk -v a="$1" -v b="$2" -v l="$3" 'BEGIN { exit !(a != "-" && b != "-" && b > 0 && a / b <= l) }'; }

verdict() {
  local what=$1 ok=$2
  if [[ $ok == 1 ]]; then echo "- $what: **held**"; else echo "- $what: **not met**"; fi
}

# Lines of the PROFILE table from a herd log.
profile_table() {
  sed -n '/^PROFILE/,$p' "$1" | sed '1d'
}

# Names of profiled tasks costing more than 2 round trips per run, or "none".
over_two_trips() {
  profile_table "$1" | awk 'NR > 1 && $1 != "TOTAL" && $(NF - 4) > 2 {
      name = $1; for (i = 2; i <= NF - 8; i++) name = name " " $i
      list = list (list ? ", " : "") name " (" $(NF - 4) ")"
    }
    END { print (list ? list : "none") }'
}

write_results() {
  local n phase herd ans floor largest ok30=1 ok2=1 okmem=1
  largest=$(tr ' ' '\n' <<<"$SIZES" | sort -n | tail -n1)
  {
    echo "# herd vs ansible-playbook: speed benchmark"
    echo
    echo "Written by \`bench/run.sh\` (one run of the script for every size below)."
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory, kernel $(uname -r); shared with other builds"
    for n in $SIZES; do
      echo "- load average (1/5/15 min) at $n hosts: before ${RESULT[$n.load]}, after ${RESULT[$n.load_after]}"
    done
    echo "- herd: commit $(git -C "$REPO_DIR" rev-parse --short HEAD)$(git -C "$REPO_DIR" diff --quiet HEAD -- src modules Cargo.toml Cargo.lock || echo ' (with uncommitted changes)'), $("$HERD" --version)"
    echo "- ansible: $("$ANSIBLE_PLAYBOOK" --version | head -n1), $("$(dirname "$ANSIBLE_PLAYBOOK")/python" --version)"
    echo "- ssh: $(ssh -V 2>&1)"
    echo "- targets: Debian bookworm systemd-nspawn hosts on this machine (tests/fleet), python3 installed for ansible"
    echo
    echo "## Wall time, CPU, memory"
    echo
    echo "herd and the floor: median of $REPS runs (all samples below); ansible-playbook: one run."
    echo "\"first\" starts from an empty $TARGET_DIR; \"second\" runs again on the result (nothing to change)."
    echo
    echo "| hosts | run | herd s | ansible s | ansible/herd | floor s | herd/floor | herd CPU s | ansible CPU s | herd RSS MiB | ansible max RSS MiB | ansible tree RSS MiB | changed herd/ansible |"
    echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for n in $SIZES; do
      floor=$(med "$n" floor first wall)
      for phase in first second; do
        herd=$(med "$n" herd "$phase" wall)
        ans=${RESULT[$n.ansible.$phase.1.wall]:--}
        echo "| $n | $phase | $herd | $ans | $(ratio "$ans" "$herd") | $floor | $(ratio "$herd" "$floor") | $(med "$n" herd "$phase" cpu) | ${RESULT[$n.ansible.$phase.1.cpu]:--} | $(med "$n" herd "$phase" rss) | ${RESULT[$n.ansible.$phase.1.rss]:--} | ${RESULT[$n.ansible.$phase.1.tree]:--} | ${RESULT[$n.herd.$phase.1.changed]:--}/${RESULT[$n.ansible.$phase.1.changed]:--} |"
        at_least "$ans" "$herd" 30 || ok30=0
        if [[ $phase == first ]]; then
          at_most "$herd" "$floor" 2 || ok2=0
        fi
        if [[ $n == "$largest" ]]; then
          # RSS in MiB against 100 MB (95.4 MiB).
          at_most "$(med "$n" herd "$phase" rss)" 1 95.3 || okmem=0
        fi
      done
    done
    echo
    echo "CPU used on the targets (all hosts together, from the fleet's cgroup; the targets share this machine's cores with the controller):"
    echo
    echo "| hosts | run | herd s | ansible s | floor s | herd ms per task and host | ansible ms per task and host |"
    echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"
    local tasks
    tasks=$(grep -c '^    - name:' "$PLAYBOOK")
    for n in $SIZES; do
      for phase in first second; do
        herd=$(med "$n" herd "$phase" target)
        ans=${RESULT[$n.ansible.$phase.1.target]:--}
        echo "| $n | $phase | $herd | $ans | $(med "$n" floor first target) | $(per_task_ms "$herd" "$n" "$tasks") | $(per_task_ms "$ans" "$n" "$tasks") |"
      done
    done
    echo
    echo "Goals:"
    echo
    verdict "herd at least 30x faster than ansible-playbook (wall time, every size and run)" "$ok30"
    verdict "herd's first run within 2x of the floor" "$ok2"
    verdict "herd's RSS under 100 MB at $largest hosts" "$okmem"
    echo
    echo "What is measured:"
    echo
    echo "- wall: \`date +%s%N\` around the command, on the controller."
    echo "- CPU: user+sys of the command and every descendant it waited for (\`/usr/bin/time\`), controller only: ansible's forks and ssh clients are included; the targets' CPU is not."
    echo "- herd RSS: \`/usr/bin/time\` maximum resident set size; herd is one process."
    echo "- ansible max RSS: the same number for ansible-playbook, which is the largest *single* process of its tree (getrusage of children), not a sum."
    echo "- ansible tree RSS: the peak of the summed RSS of ansible-playbook, its forks and their ssh clients, sampled every 100 ms (shared pages counted once per process)."
    echo "- ansible's ControlPersist master ssh processes detach from its tree, so their CPU and memory are in none of ansible's numbers (this understates ansible)."
    echo "- floor: one \`ssh\` per host, all in parallel, no ControlMaster, running the 20 tasks' shell equivalents back to back with no checks (\`bench/run.sh\`, floor_script)."
    echo "- both tools: same inventory, forks = hosts, gather_facts off. ansible: pipelining on, ControlMaster=auto with ControlPersist=60s (its second run reuses the masters the first one left), strict host keys. herd: strict host keys, \`--profile\` on (counters only)."
    echo
    echo "### Samples"
    echo
    echo "| hosts | what | wall s | CPU s | max RSS MiB |"
    echo "| ---: | --- | --- | --- | --- |"
    for n in $SIZES; do
      for phase in first second; do
        echo "| $n | herd $phase | $(samples "$n" herd "$phase" wall) | $(samples "$n" herd "$phase" cpu) | $(samples "$n" herd "$phase" rss) |"
      done
      echo "| $n | floor | $(samples "$n" floor first wall) | $(samples "$n" floor first cpu) | $(samples "$n" floor first rss) |"
    done
    for n in $largest; do
      wants herd || break
      echo
      echo "## Round trips per task (herd --profile, $n hosts, first run)"
      echo
      echo '```'
      profile_table "$WORK/profile-$n-first.log"
      echo '```'
      echo
      echo "Tasks over 2 round trips per host (execs + transfers per run): $(over_two_trips "$WORK/profile-$n-first.log")."
      echo
      echo "Second run (nothing to change):"
      echo
      echo '```'
      profile_table "$WORK/profile-$n-second.log"
      echo '```'
    done
  } >"$RESULTS.new"
  mv "$RESULTS.new" "$RESULTS"
  log "wrote $RESULTS"
}

restore_fleet() {
  if [[ $RESTORE_HOSTS != 0 ]]; then
    log "fleet.sh up $RESTORE_HOSTS (as the machine was)"
    "$FLEET_SH" up "$RESTORE_HOSTS" >/dev/null || log "warning: fleet.sh up $RESTORE_HOSTS failed"
  fi
}

main() {
  [[ $EUID -eq 0 ]] || die "must run as root (fleet.sh)"
  require_tools cargo ssh awk ps timeout git
  [[ -x /usr/bin/time ]] || die "/usr/bin/time is needed (apt-get install time)"
  WORK=$(mktemp -d /tmp/herd-bench-controller.XXXXXX)
  trap cleanup EXIT
  build_herd
  prepare_ansible
  local n
  for n in $SIZES; do
    bench_size "$n"
  done
  write_results
  cat "$RESULTS"
}

main "$@"
