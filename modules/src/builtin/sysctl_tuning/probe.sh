file() { if [ -f "$2" ]; then printf '%s ' "$1"; base64 -w0 < "$2" || exit 3; echo; else echo "$1 -"; fi; }
key() { if [ -e "$2" ]; then if [ -w "$2" ]; then w=w; else w=r; fi; printf '%s %s %s\n' "$1" "$w" "$(tr '\n\t' '  ' < "$2")"; else echo "$1 -"; fi; }
# sysctl_tuning probe: the plan's one look at the host. The three files it
# manages come base64-encoded (`TAG -` when absent), so any content survives
# the line protocol; each key as `K<i> w|r VALUE` (`K<i> -` when the kernel
# has no such key). The helpers come first: tests recognize the script by
# its start. The module appends the call:
#   probe SYSCTL_FILE LIMITS_FILE MODULES_FILE [PROC_PATH...]
probe() {
    file SF "$1"
    file LF "$2"
    file MF "$3"
    shift 3
    i=0
    for k in "$@"; do
        key "K$i" "$k"
        i=$((i + 1))
    done
    if [ -d /proc/sys/net/bridge ]; then echo BR yes; fi
    true
}
