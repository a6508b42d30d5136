#!/bin/bash
# local-image.sh BIN [TAG]: make a Sol container image from a broker binary built on this (Debian 12) host,
# with no registry: a root filesystem holding BIN, the shared libraries it links (from ldd, at their
# paths, plus the dynamic loader), bash for the HTTP probe, a "sol" user and /var/lib/sol, imported with
# `docker import`. The image's runtime settings (ENV, EXPOSE, VOLUME, WORKDIR, USER,
# ENTRYPOINT, CMD) are read from the final stage of deploy/Dockerfile, so both images behave alike.
# Use it where deploy/Dockerfile cannot be built because its base image cannot be pulled.
#
#   deploy/local-image.sh build/sol sol:latest && docker compose up -d --no-build
set -euo pipefail

bin=${1:?usage: local-image.sh BIN [TAG]}
tag=${2:-sol:latest}
here=$(cd "$(dirname "$0")" && pwd)
dockerfile=$here/Dockerfile
[ -x "$bin" ] || { echo "local-image.sh: $bin is not an executable" >&2; exit 2; }

rootfs=$(mktemp -d /tmp/sol-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

# Merged-/usr layout as in Debian 12: /bin, /lib, /lib64 and /sbin are links into /usr.
mkdir -p "$rootfs"/usr/{bin,sbin,lib,lib64,local/bin} "$rootfs"/{etc,tmp,proc,sys,dev,run} \
    "$rootfs"/var/{lib/sol,tmp}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$rootfs/$d"; done
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"

# Copy a file to the same path inside the root filesystem, following links.
copy_in() {
    local src=$1 dst
    dst="$rootfs$(realpath -s "$src")"
    mkdir -p "$(dirname "$dst")"
    [ -e "$dst" ] || cp -L "$src" "$dst"
}

# Copy a program and every shared library ldd says it loads (the loader line has no "=>").
copy_with_libs() {
    local prog=$1 dst=$2 lib
    install -D -m 0755 "$prog" "$rootfs$dst"
    while read -r lib; do
        [ -n "$lib" ] && copy_in "$lib"
    done < <(ldd "$prog" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
}

copy_with_libs "$bin" /usr/local/bin/sol
copy_with_libs /usr/bin/bash /usr/bin/bash
copy_with_libs /usr/bin/sleep /usr/bin/sleep   # the Kubernetes preStop hook runs `sleep 5`
ln -s bash "$rootfs/usr/bin/sh"
install -m 0755 "$here/sol-http" "$rootfs/usr/local/bin/sol-http"

cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
sol:x:10001:10001::/var/lib/sol:/usr/sbin/nologin
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
sol:x:10001:
GROUP
echo "hosts: files dns" >"$rootfs/etc/nsswitch.conf"
chown 10001:10001 "$rootfs/var/lib/sol"
chmod 0750 "$rootfs/var/lib/sol"

# Runtime instructions of the Dockerfile's final stage, continuation lines joined.
changes=()
while IFS= read -r instr; do
    changes+=(--change "$instr")
done < <(awk '
    /^[[:space:]]*#/ { next }
    { line = cont ? cont " " $0 : $0 }
    /\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, "", line); cont = line; next }
    { cont = ""; if (line ~ /^FROM /) { n = 0; delete keep } keep[n++] = line }
    END { for (i = 0; i < n; i++) print keep[i] }' "$dockerfile" |
    grep -E '^(ENV|EXPOSE|VOLUME|WORKDIR|USER|ENTRYPOINT|CMD) ' | sed -E 's/[[:space:]]+/ /g')

tar --numeric-owner -C "$rootfs" -c . |
    docker import "${changes[@]}" --message "sol local image from $bin" - "$tag" >/dev/null
echo "$tag"
