#!/usr/bin/env bash
# Every test, in layers, fastest first: formatting and lints, the pure
# protocol and codecs, the seeded simulation and the model checker, real
# processes (kill -9, chaos), the dashboard's unit tests, then the
# dashboard in headless Chromium.
# Installs whatever tool is missing first (once; a re-run skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-tools.sh
export PATH="$HOME/.cargo/bin:$PATH"
export TRUNK_SKIP_VERSION_CHECK=true
export CHROMEDRIVER=/usr/bin/chromedriver

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Everything the tests leave in the temp dir goes into one scratch dir that
# is removed at the end, pass or fail: chromedriver (the wasm tests) leaves a
# 100 MB Chromium profile behind per run otherwise, and a CI run once failed
# on a full disk.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/tpc-test.XXXXXX")
export TMPDIR="$scratch"
backend_pid=""
cleanup() {
  if [ -n "$backend_pid" ]; then kill -KILL -- "-$backend_pid" 2>/dev/null || true; fi
  rm -rf "$scratch"
}
trap cleanup EXIT

# A clean build of every layer takes about 6 GB under target/ (more with
# incremental caches); say so before cargo fails half-way with "No space
# left on device".
mkdir -p target
free_kb=$(df -Pk target | awk 'NR==2 {print $4}')
if [ "${free_kb:-0}" -lt $((8 * 1024 * 1024)) ]; then
  printf 'warning: %s GB free under %s/target; a clean build needs about 6 GB (free space, or `cargo clean` old builds)\n' \
    "$((free_kb / 1024 / 1024))" "$root" >&2
fi

step "lint: formatting (rustfmt) and clippy, warnings are errors"
cargo fmt --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "alert rules: promtool check and unit tests"
promtool check rules ops/prometheus/alerts.yml
promtool check config ops/prometheus/prometheus.yml
promtool test rules ops/prometheus/alerts_test.yml

step "build: coordinator, participant, dashboard"
cargo build -p backend -p participant
trunk build --release --dist dist

step "Rust tests: protocol, log, simulation, model checking, real processes"
cargo test --workspace --exclude frontend

step "the HTTP API against its OpenAPI document: Schemathesis, every check"
scripts/schemathesis.sh

step "dashboard unit tests (native, then wasm in headless Chromium)"
cargo test -p frontend
cargo test -p frontend --target wasm32-unknown-unknown

step "dashboard end to end in headless Chromium"
tmp=$(mktemp -d)
setsid target/debug/backend --demo --listen 127.0.0.1:0 --node-port-base 0 \
  --data-dir "$tmp/data" --static-dir "$root/dist" --ready-file "$tmp/ready" \
  >"$tmp/backend.out" 2>"$tmp/backend.err" &
backend_pid=$!
for _ in $(seq 600); do [ -s "$tmp/ready" ] && break; sleep 0.1; done
if ! [ -s "$tmp/ready" ]; then
  echo "the demo cluster did not start; its log:" >&2; cat "$tmp/backend.err" >&2; exit 1
fi
# The files share this one demo cluster, so they run one at a time, in
# name order: the heuristic scenario (scenarios.test.mjs) leaves the total
# wrong on purpose, and the chaos run's audit (chaos.test.mjs) needs it right.
E2E_BASE_URL="http://$(cat "$tmp/ready")" node --test --test-concurrency=1 e2e/
