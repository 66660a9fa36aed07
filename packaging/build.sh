#!/usr/bin/env bash
# Build herd to install as a tool: a release binary that needs only the C
# library (OpenSSL and zlib built from source and linked in: the `vendored`
# cargo feature), checked with ldd, and a .deb of it made by cargo-deb with
# the bash and fish completion scripts. The .deb's path is the last line
# printed on stdout.
#
#   packaging/build.sh     # -> target/packaging/debian/herdsman_<version>-1_<arch>.deb
#
# Needs cargo, a C compiler, make and perl (OpenSSL's build) and dpkg-dev
# (dpkg-shlibdeps works out the package's Depends). cargo-deb is installed
# at the pinned version with `cargo install --locked` when missing.
# Everything is built under target/packaging/, apart from the normal builds,
# so switching between the two never rebuilds either.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly CARGO_DEB_VERSION=3.8.0
# What a glibc program may link: the C library's own parts, the dynamic
# loader, the kernel's vDSO and GCC's unwinder (Rust's panics need it).
readonly GLIBC_ONLY='^(linux-vdso|linux-gate|ld-linux[-a-z0-9_.]*|libc|libm|libgcc_s|libpthread|libdl|librt|libutil)\.so'

log() { printf 'packaging: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ "$(cargo deb --version 2>/dev/null || true)" != *"$CARGO_DEB_VERSION"* ]]; then
  log "installing cargo-deb $CARGO_DEB_VERSION"
  env -u CARGO_TARGET_DIR cargo install --locked --version "=$CARGO_DEB_VERSION" cargo-deb >&2
fi

export CARGO_TARGET_DIR="$PWD/target/packaging"
bin="$CARGO_TARGET_DIR/release/herd"

start=$SECONDS
log "building herd (release, vendored OpenSSL and zlib)"
cargo build --release --locked --features vendored --bin herd >&2
log "built in $((SECONDS - start)) s"

# Only glibc may be left to the host: a libssl or libz here would break the
# promise of running on hosts with another OpenSSL (or none).
libs=$(ldd "$bin" | awk '{ print $1 }' | xargs -n1 basename)
extra=$(grep -Ev "$GLIBC_ONLY" <<<"$libs" || true)
[[ -z "$extra" ]] || die "$bin links more than glibc: $(tr '\n' ' ' <<<"$extra")"
log "links only glibc: $(tr '\n' ' ' <<<"$libs")"

# The scripts call back `herd` on PATH, where the package puts it.
completions="$CARGO_TARGET_DIR/completions"
mkdir -p "$completions"
for shell in bash fish; do
  PATH="$CARGO_TARGET_DIR/release:$PATH" herd completions "$shell" >"$completions/herd.$shell"
done

mkdir -p "$CARGO_TARGET_DIR/debian"
# Stripped in the package: the release profile's line tables are for
# backtraces of development builds, and make the binary many times larger.
deb=$(cargo deb --locked --no-build --strip --output "$CARGO_TARGET_DIR/debian" | tail -n 1)
[[ -f "$deb" ]] || die "cargo deb did not say where the package is (got: $deb)"
log "package: $deb ($(du -h "$deb" | cut -f1)), in $((SECONDS - start)) s"
printf '%s\n' "$deb"
