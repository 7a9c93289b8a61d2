#!/usr/bin/env bash
# The demo in one command: installs whatever is missing (wasm target, trunk,
# wasm-bindgen-cli, wasm-opt), builds the dashboard and the processes, and
# runs the coordinator with participants 6001 (account A) and 6002
# (account B) in demo mode. Open the URL it prints. Ctrl-C stops everything.
#
# Any coordinator flag can be added, e.g.:
#   scripts/demo.sh --fresh              start again from $1000.00 each
#   scripts/demo.sh --nodes 3            a third node with account C
#   scripts/demo.sh --listen 127.0.0.1:8080
#   scripts/demo.sh --ack-wait-ms 0      answer transfers at the commit point
# See `target/release/backend --help` for all of them.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-tools.sh --no-browser
export PATH="$HOME/.cargo/bin:$PATH"
export TRUNK_SKIP_VERSION_CHECK=true

echo "[demo] building the dashboard (trunk build --release --dist dist)"
trunk build --release --dist dist
echo "[demo] building the coordinator and the participant"
cargo build --release -p backend -p participant
echo "[demo] starting; the data lives in ./data (durable across runs; --fresh starts over)"
exec target/release/backend --demo --static-dir dist "$@"
