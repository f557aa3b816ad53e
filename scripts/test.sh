#!/usr/bin/env bash
# The whole test suite (the README's test command). Snapshot tests fail on any change when CI=true.
# Installs LLVM/MLIR 22 first (apt, needs root), which the MLIR backend (crate optc-mlir, feature
# `mlir` of optc) builds against; everything else needs only the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-mlir.sh > /dev/null
export MLIR_SYS_220_PREFIX=/usr/lib/llvm-22 TABLEGEN_220_PREFIX=/usr/lib/llvm-22
cargo test --workspace "$@"
# The runtime with the MLIR backend compiled in: mlir-cpu against the interpreter, the CLI, and
# the GPU plans MLIR makes (their PTX, run on the reference device) and their artifacts.
cargo test -p optc --features mlir --test model_backend --test cli --test gpu --test artifact "$@"
