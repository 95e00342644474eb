#!/usr/bin/env bash
# The README's test command: installs what the tests need when this machine
# lacks it (Debian's chromium and chromium-driver, for the pages opened in a
# real browser), then runs every test of the workspace. Arguments go to
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]} (Debian packages, needed by the browser tests)"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${need[@]}"
fi

echo "== cargo test --workspace"
exec cargo test --workspace --locked --no-fail-fast "$@"
