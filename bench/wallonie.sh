#!/usr/bin/env bash
# The network-scale benchmark "wallonie" (see BENCHMARKS.md): builds every
# binary in release mode, then runs clps-bench-wallonie with the arguments
# given, e.g. `./bench/wallonie.sh --json wallonie.json` or `--records 20000`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bins -p clps-hub -p clps-node -p clps-bench
exec target/release/clps-bench-wallonie "$@"
