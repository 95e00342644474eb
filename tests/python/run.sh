#!/usr/bin/env bash
# The "standard gRPC toolchain" check: builds Python stubs from proto/ with
# grpcio-tools, starts clps-hub on port 0 with fresh certificates, waits for
# the line where the hub prints its address, and runs list_spaces.py against
# it with a centre certificate.
#
# Env: CLPS_HUB (path to a built clps-hub; default: cargo build), PYTHON.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
hub_pid=""
cleanup() {
    if [ -n "$hub_pid" ]; then kill "$hub_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

python="${PYTHON:-python3}"
echo "== venv with grpcio, grpcio-tools"
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check grpcio grpcio-tools

echo "== stubs from proto/"
mkdir -p "$work/gen"
"$work/venv/bin/python" -m grpc_tools.protoc -I "$root/proto/proto" \
    --python_out="$work/gen" --grpc_python_out="$work/gen" clps/sync/v1/sync.proto

hub="${CLPS_HUB:-}"
if [ -z "$hub" ]; then
    (cd "$root" && cargo build --quiet -p clps-hub)
    hub="$root/target/debug/clps-hub"
fi

echo "== certificates"
"$hub" pki init --dir "$work/pki" >/dev/null
"$hub" pki issue --dir "$work/pki" --centre namur >/dev/null

cat > "$work/hub.toml" <<TOML
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
database = "$work/hub.sqlite"
[tls]
ca_cert = "$work/pki/ca.crt"
cert = "$work/pki/hub.crt"
key = "$work/pki/hub.key"
TOML

echo "== hub"
mkfifo "$work/hub.out"
"$hub" serve --config "$work/hub.toml" > "$work/hub.out" 2> "$work/hub.log" &
hub_pid=$!
exec 3< "$work/hub.out"
addr=""
# The hub prints « hub à l'écoute sur 127.0.0.1:PORT » once it listens.
while IFS= read -r -t 60 -u 3 line; do
    case "$line" in
        *"écoute sur "*) addr="${line##* }"; break ;;
    esac
done
if [ -z "$addr" ]; then
    echo "the hub did not print its address" >&2
    cat "$work/hub.log" >&2
    exit 1
fi
echo "hub listening on $addr"
# Keep draining the hub's stdout so it never blocks on a full pipe.
cat <&3 >/dev/null &

echo "== python client"
"$work/venv/bin/python" "$here/list_spaces.py" --gen "$work/gen" --addr "$addr" \
    --ca "$work/pki/ca.crt" --cert "$work/pki/centre-namur.crt" \
    --key "$work/pki/centre-namur.key" --expect-identity centre/namur
