# docker_install probe: the plan's one look at the host. Each line is
# `TAG value`; files come base64-encoded (`TAG -` when absent); dpkg's and
# apt-cache's own output is passed through (`PKG` lines, and the policy
# between `POLICY` and `ENDPOLICY`). The module appends the call:
#   probe PACKAGES DAEMON_JSON KEYRING SOURCES_FILE GROUP [USER...]
# PACKAGES is one argument: the package names, separated by spaces.
file() { if [ -f "$2" ]; then printf '%s ' "$1"; base64 -w0 < "$2" || exit 3; echo; else echo "$1 -"; fi; }
probe() {
    pkgs=$1 daemon_json=$2 keyring=$3 sources=$4 group=$5
    shift 5
    . /etc/os-release 2>/dev/null
    echo "OS ${ID:-unknown} ${VERSION_CODENAME:-unknown}"
    echo "ARCH $(dpkg --print-architecture 2>/dev/null)"
    if ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then echo 'LISTS yes'; fi
    # $pkgs unquoted: one word per package.
    dpkg-query -W -f='PKG ${Package} ${Status} ${Version}\n' -- $pkgs 2>/dev/null
    echo POLICY
    apt-cache policy -- $pkgs 2>/dev/null
    echo ENDPOLICY
    file DJ "$daemon_json"
    file KEY "$keyring"
    file SRC "$sources"
    a=$(systemctl is-active docker.service 2>/dev/null); echo "ACTIVE $a"
    echo "ENABLED $(systemctl is-enabled docker.service 2>/dev/null)"
    if [ "$a" = active ] && command -v docker >/dev/null 2>&1; then
        echo "SERVER $(timeout 15 docker version --format '{{.Server.Version}}' 2>/dev/null)"
        echo "COMPOSE $(timeout 15 docker compose version --short 2>/dev/null)"
    fi
    getent group "$group" | sed 's/^/G /'
    if [ $# -gt 0 ]; then getent passwd -- "$@" | sed 's/^/U /'; fi
    true
}
