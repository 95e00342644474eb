#!/usr/bin/env bash
# The README's main job: build everything (release), then run a throwaway
# federation of ten CLPS nodes and a hub on this machine. Arguments are passed
# on to clps-federation (e.g. --summary FILE, --keep-running, --dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "Compilation (cargo build --release), quelques minutes la première fois…" >&2
cargo build --release --quiet -p clps-node -p clps-hub -p clps-federation
exec target/release/clps-federation "$@"
