#!/usr/bin/env bash
# The whole test suite (the README's test command). Snapshot tests fail on any change when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace "$@"
