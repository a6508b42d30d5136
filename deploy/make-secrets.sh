#!/bin/sh
# make-secrets.sh - what a secured Sol cluster needs: a gossip key file and, from a CA made here, one
# certificate per node naming the node (CN and DNS subjectAltName). Files already there are kept, so
# running it again adds missing nodes without replacing anything.
#
#   deploy/make-secrets.sh [DIR [NODE...]]     default DIR: $SOL_SECRETS_DIR or deploy/secrets;
#                                              default nodes: sol1 sol2 sol3
#
# Writes DIR/gossip.keys (one base64 32-byte key), DIR/ca.crt, DIR/ca.key (keep it offline in
# production: only ca.crt goes to the nodes) and DIR/NODE.crt, DIR/NODE.key for each node.
# Needs the openssl command (Debian: openssl).
set -eu

dir=${1:-${SOL_SECRETS_DIR:-deploy/secrets}}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- sol1 sol2 sol3
days=${SOL_CERT_DAYS:-825}

umask 022
mkdir -p "$dir"
if [ ! -s "$dir/gossip.keys" ]; then
    openssl rand -base64 32 >"$dir/gossip.keys.tmp"
    mv "$dir/gossip.keys.tmp" "$dir/gossip.keys"
fi
if [ ! -s "$dir/ca.crt" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
        -subj "/CN=sol cluster CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
fi
for node in "$@"; do
    [ -s "$dir/$node.crt" ] && continue
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$node" \
        -keyout "$dir/$node.key" -out "$dir/$node.csr" 2>/dev/null
    printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n' "$node" >"$dir/$node.ext"
    openssl x509 -req -in "$dir/$node.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days "$days" -extfile "$dir/$node.ext" -out "$dir/$node.crt" 2>/dev/null
    rm -f "$dir/$node.csr" "$dir/$node.ext"
done
rm -f "$dir/ca.srl"
# The nodes run as uid 10001: they must read their key from a bind mount (a Kubernetes Secret
# sets its own modes). The CA key stays the owner's alone.
chmod 0755 "$dir"
chmod 0644 "$dir"/*.crt "$dir"/*.key "$dir/gossip.keys"
chmod 0600 "$dir/ca.key"
echo "secrets in $dir: gossip.keys, ca.crt, $(printf '%s.crt/.key ' "$@")"
