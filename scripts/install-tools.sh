#!/usr/bin/env bash
# Installs every tool the demo and the tests need, skipping each one that is
# already present at the right version (see ../shared/TOOLCHAIN.md for why
# these exact versions). Safe to run again: a warm re-run takes seconds.
#
# Usage: scripts/install-tools.sh [--no-browser]
set -euo pipefail

TRUNK_VERSION=0.21.14
WASM_BINDGEN_VERSION=0.2.130
BINARYEN_VERSION=132.0.0
PLAYWRIGHT_VERSION=1.65.1
SCHEMATHESIS_VERSION=4.32.5

want_browser=1
[ "${1:-}" = "--no-browser" ] && want_browser=0

root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs) and re-run." >&2
  exit 1
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$component"; then
    log "adding the $component component (the tests check formatting and lints)"
    rustup component add "$component"
  fi
done

if ! trunk --version 2>/dev/null | grep -q "$TRUNK_VERSION"; then
  log "installing trunk $TRUNK_VERSION (about 9 minutes on 2 cores, once)"
  cargo install --locked "trunk@$TRUNK_VERSION"
fi

if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 3 minutes, once)"
  # Not --locked: its lockfile names a webpki-roots version the registry lacks.
  cargo install --force "wasm-bindgen-cli@$WASM_BINDGEN_VERSION"
fi

# Debian's binaryen (108) silently breaks the wasm; use npm's.
if ! wasm-opt --version 2>/dev/null | grep -q "version ${BINARYEN_VERSION%%.*}"; then
  log "installing wasm-opt (binaryen $BINARYEN_VERSION from npm)"
  npm install -g "binaryen@$BINARYEN_VERSION" >/dev/null
fi

if [ "$want_browser" = 1 ]; then
  if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ]; then
    log "installing chromium and chromium-driver (Debian packages)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  fi
  if ! [ -d "$root/e2e/node_modules/playwright-core" ] || \
     ! grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$root/e2e/node_modules/playwright-core/package.json"; then
    log "installing playwright-core $PLAYWRIGHT_VERSION for the browser tests"
    # `npm ci` installs exactly what e2e/package-lock.json pins and never
    # rewrites the tracked package files.
    (cd "$root/e2e" && npm ci --no-audit --no-fund >/dev/null)
  fi
fi
# promtool checks and unit-tests the alert rules (ops/prometheus); it comes
# with Debian's prometheus package (the server is installed, not started).
if ! command -v promtool >/dev/null; then
  log "installing promtool (Debian's prometheus package)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# Schemathesis fuzzes the HTTP API against its OpenAPI document
# (scripts/schemathesis.sh); it lives in a virtual environment of its own
# at .venv-tools, never in the system's Python.
venv="$root/.venv-tools"
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into .venv-tools (the API fuzz test)"
  if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    log "installing python3 and python3-venv (Debian packages)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
log "tools ready"
