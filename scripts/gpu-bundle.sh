#!/usr/bin/env bash
# Prepares, on this (CPU) machine, everything scripts/gpu-check.sh needs on a GPU machine that has
# the NVIDIA driver but no Rust or LLVM: an mlir-free optc (release, stripped; its GPU runtime
# loads CUDA at run time), gpu artifacts of every example at its data's sizes, in f64 and in f32,
# with the example data, reference results, and gpu artifacts of the DAGMA merit at n = 10000
# for the benchmark sizes, in both precisions (their data is drawn on the GPU machine by
# `optc bench --dims`, not shipped: X alone is 160 MB at d = 2000). Prints the bundle's size (the
# GPU machine takes at most 64 MiB).
#
# References: the merit `optc bench` times (objective plus scalar constraint functions) and its
# gradient at the initial point, by the interpreter through the same plan on the host reference
# device (OPTC_GPU_DEVICE=reference: every kernel computed by the interpreter, the linear algebra
# by its LU); the tests check that device against the interpreter alone.
#
# Usage: scripts/gpu-bundle.sh [OUT_DIR]   (default: target/gpu-bundle)
# Environment: OPTC_MLIR, an optc built with `--features mlir` to write the artifacts (default:
# `cargo build -p optc --features mlir`, needs scripts/install-mlir.sh); BENCH_D (default
# "100 500 1000 2000").
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/target/gpu-bundle}"
read -r -a bench_d <<< "${BENCH_D:-100 500 1000 2000}"

cd "$root"
cargo build --release -q -p optc
if [[ -z "${OPTC_MLIR:-}" ]]; then
  cargo build -q -p optc --features mlir
  # A copy: another build of the package (without the feature) would replace target/debug/optc.
  OPTC_MLIR="$(mktemp /tmp/optc-mlir.XXXXXX)"
  cp target/debug/optc "$OPTC_MLIR"
  chmod +x "$OPTC_MLIR" # mktemp makes it 0600
  trap 'rm -f "$OPTC_MLIR"' EXIT
fi

rm -rf "$out"
mkdir -p "$out/examples" "$out/ref" "$out/ref-f32" "$out/bench"
cp target/release/optc "$out/optc"
strip "$out/optc"
cp -r examples/data "$out/examples/data"
cp scripts/gpu-check.sh "$out/"

# The sizes of an example's data, as `--dims` (from `optc bench --json`, which binds the data).
data_dims() {
  "$OPTC_MLIR" bench "$1" --backend interp --time-ms 1 --json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin)["dims"]; print(",".join(f"{k}={v}" for k,v in d.items()))'
}

for file in examples/*/*.opt; do
  group=$(basename "$(dirname "$file")")
  name=$(basename "$file" .opt)
  mkdir -p "$out/examples/$group"
  art="$out/examples/$group/$name.optx"
  dims=$(data_dims "$file" 2> /dev/null) || { echo "skip $file: no benchmarkable merit" >&2; continue; }
  if ! "$OPTC_MLIR" build "$file" -o "$art" --target gpu --dims "$dims" 2> "$out/ref/$name.build.txt"; then
    echo "skip $file: $(tail -n 1 "$out/ref/$name.build.txt")" >&2
    continue
  fi
  rm -f "$out/ref/$name.build.txt"
  OPTC_GPU_DEVICE=reference "$out/optc" bench "$art" --backend gpu --time-ms 1 --json > "$out/ref/$name.json"
  # The same in single precision (references from the reference device's f32 buffers).
  "$OPTC_MLIR" build "$file" -o "${art%.optx}.f32.optx" --target gpu --precision f32 --dims "$dims" \
    2> "$out/ref/$name.build.txt" || { cat "$out/ref/$name.build.txt" >&2; exit 1; }
  rm -f "$out/ref/$name.build.txt"
  OPTC_GPU_DEVICE=reference "$out/optc" bench "${art%.optx}.f32.optx" --backend gpu --time-ms 1 --json \
    > "$out/ref-f32/$name.json"
  # Whole solves where the solver runs with its merit on the device (exit 69 otherwise; 1 is
  # a solve that ended at its iteration limit, still a result to compare).
  mkdir -p "$out/ref-run"
  rc=0
  OPTC_GPU_DEVICE=reference "$out/optc" run "$art" --backend gpu --json -q \
    > "$out/ref-run/$name.json" 2> /dev/null || rc=$?
  if (( rc > 1 )); then rm -f "$out/ref-run/$name.json"; fi
  echo "$group/$name: dims $dims"
done

# The DAGMA merit as the issue benchmarks it: least squares + L1 + the log-det acyclicity
# function (examples/dag/dagma.opt at its first path stage, mu = 1, s = 1).
cat > "$out/bench/dagma_merit.opt" << 'EOF'
dims n, d
data X : real[n, d]
param lambda1 = 0.02
let Xc = X - mean(X, axis = 0)
var W : real[d, d] = 0
minimize 0.5 / n * sumsq(Xc - Xc @ W) + lambda1 * norm1(W) - logdet(eye(d) - W .* W)
EOF
# And DAGMA's central path (examples/dag/dagma.opt) at the same sizes, whose Adam steps
# `optc bench` times with the iterates on the device.
for precision in f64 f32; do
  for d in "${bench_d[@]}"; do
    "$OPTC_MLIR" build "$out/bench/dagma_merit.opt" -o "$out/bench/dagma_${precision}_d$d.optx" \
      --target gpu --precision "$precision" --dims "n=10000,d=$d"
    "$OPTC_MLIR" build examples/dag/dagma.opt -o "$out/bench/path_${precision}_d$d.optx" \
      --target gpu --precision "$precision" --dims "n=10000,d=$d"
  done
done

du -sh "$out"
size=$(du -sb "$out" | cut -f1)
if (( size > 60 * 1024 * 1024 )); then
  echo "error: the bundle is $size bytes, over the 64 MiB the GPU machine takes" >&2
  exit 1
fi
