# elasticsearch_cluster probe: the plan's one look at the host, and at the
# cluster through every node's `GET /`. Each line is `TAG value`; files come
# base64-encoded (`TAG -` when absent) so any content survives the lines.
# The module appends the call:
#   probe USER DATA_DIR LOG_DIR HOME CURRENT YML HEAP_FILE UNIT SYSCTL_FILE SERVICE [NODE_URL...]
file() { if [ -f "$2" ]; then printf '%s ' "$1"; base64 -w0 < "$2" || exit 3; echo; else echo "$1 -"; fi; }
yn() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }
probe() {
    user=$1 data_dir=$2 log_dir=$3 home=$4 current=$5
    yml=$6 heap=$7 unit=$8 sysctl_file=$9 service=${10}
    shift 10
    echo "USER $(yn getent passwd "$user")"
    d=no
    if [ "$(stat -c %U "$data_dir" 2>/dev/null)" = "$user" ] && [ "$(stat -c %U "$log_dir" 2>/dev/null)" = "$user" ]; then d=yes; fi
    echo "DIRS $d"
    echo "INST $(yn test -x "$home/bin/elasticsearch")"
    if [ -L "$current" ]; then echo "CUR $(readlink "$current")"; else echo 'CUR -'; fi
    file YML "$yml"
    file CYML "$current/config/elasticsearch.yml"
    file HEAP "$heap"
    file UNIT "$unit"
    file SYSF "$sysctl_file"
    m=/proc/sys/vm/max_map_count
    if [ -e $m ]; then if [ -w $m ]; then w=w; else w=r; fi; echo "MMC $w $(cat $m)"; else echo 'MMC -'; fi
    echo "MEM $(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
    echo "ACT $(systemctl is-active -- "$service" 2>/dev/null || true)"
    echo "ENA $(systemctl is-enabled -- "$service" 2>/dev/null || true)"
    echo "CURL $(yn command -v curl)"
    # Whether the cluster formed is what the nodes say (see the module doc).
    if command -v curl >/dev/null; then
        i=0
        for url in "$@"; do
            r=$(curl -s -m 3 -w ' %{http_code}' "$url" 2>/dev/null | tr -d '\n'); echo "N$i ${r:- 000}"
            i=$((i + 1))
        done
    fi
    true
}
