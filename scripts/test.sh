#!/usr/bin/env bash
# The whole test suite (the README's test command). Snapshot tests fail on any change when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
# optc-mlir needs LLVM/MLIR 22 (scripts/install-mlir.sh); .ci/run tests it separately.
cargo test --workspace --exclude optc-mlir "$@"
