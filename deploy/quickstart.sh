#!/usr/bin/env bash
# The README's first Quick start command: build, create a throwaway node for
# CLPS de Charleroi-Thuin, seed its calibrated 2021 year and print the
# published cross tables computed from the records.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "Compilation (cargo build --release)…" >&2
cargo build --release --quiet -p clps-node
node=target/release/clps-node

data=$(mktemp -d "${TMPDIR:-/tmp}/clps-demo.XXXXXX")
trap 'rm -rf "$data"' EXIT

"$node" --data "$data" init --centre charleroi-thuin
"$node" --data "$data" seed --year 2021 --calibration --seed 42
echo
"$node" --data "$data" stats --year 2021 --by sector
echo
"$node" --data "$data" stats --year 2021 --by theme
