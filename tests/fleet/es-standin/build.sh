#!/bin/sh
# Package the stand-in like an Elasticsearch tarball:
#   build.sh VERSION OUT.tar.gz
# gives elasticsearch-VERSION/{bin/elasticsearch,config/,lib/} inside.
set -eu
version=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
top="$tmp/elasticsearch-$version"
mkdir -p "$top/bin" "$top/config/jvm.options.d" "$top/lib"
install -m 0755 "$here/elasticsearch" "$top/bin/elasticsearch"
install -m 0644 "$here/standin.py" "$top/lib/standin.py"
printf '%s\n' "$version" > "$top/lib/VERSION"
printf '# Elasticsearch stand-in: the defaults of a fresh tarball.\n' > "$top/config/elasticsearch.yml"
printf -- '-Xms1g\n-Xmx1g\n' > "$top/config/jvm.options"
# Fixed owner and times, so one version always packs to the same bytes.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
    -C "$tmp" -cf - "elasticsearch-$version" | gzip -n > "$out"
