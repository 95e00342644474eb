#!/usr/bin/env bash
# The README's test command: installs what the tests need when this machine
# lacks it (Debian's chromium and chromium-driver, for the pages opened in a
# real browser; axe-core from npm, for their accessibility), then runs every test of the workspace. Arguments go to
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

# axe-core, the accessibility checker the browser tests inject in every
# page, from its npm package at a pinned version (into target/, not the tree).
AXE_VERSION=4.11.0
axe="target/test-tools/node_modules/axe-core/axe.min.js"
if [ ! -f "$axe" ] || ! grep -q "\"version\": \"$AXE_VERSION\"" target/test-tools/node_modules/axe-core/package.json 2>/dev/null; then
    echo "== installing axe-core $AXE_VERSION (npm package, for the accessibility checks)"
    if ! command -v npm >/dev/null 2>&1; then
        sudo=""
        if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
        $sudo apt-get update
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y npm
    fi
    mkdir -p target/test-tools
    npm install --silent --no-audit --no-fund --prefix target/test-tools "axe-core@$AXE_VERSION"
fi
export CLPS_AXE="$PWD/$axe"

echo "== cargo test --workspace"
exec cargo test --workspace --locked --no-fail-fast "$@"
