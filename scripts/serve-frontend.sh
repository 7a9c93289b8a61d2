#!/usr/bin/env bash
# The dashboard for frontend work: `trunk serve` on http://127.0.0.1:8080,
# /api and /ws proxied to a coordinator on 8000 (Trunk.toml).
# Its development build (unoptimised, with trunk's auto-reload script) goes
# to target/trunk-serve, never to dist/, which the coordinator serves: a
# plain `trunk serve` would overwrite the release build there.
set -euo pipefail
cd "$(dirname "$0")/.."
export TRUNK_SKIP_VERSION_CHECK=true
exec trunk serve --dist target/trunk-serve "$@"
