#!/usr/bin/env bash
# Benchmark: compile latency of the GPU path, source to PTX, for every example at its data's
# sizes, with a release optc built with `--features mlir`:
#   - `emit`: `optc emit --stage ptx` (the objective's kernels: parse, check, lower, plan, MLIR
#     passes, NVPTX);
#   - `build f64` / `build f32`: `optc build --target gpu [--precision f32]`, the whole artifact
#     (the solver's functions differentiated, simplified and staged, then lowered to PTX, the
#     plan checked and written).
# Each figure is the median wall time of RUNS whole processes (process start included, the
# example's data not read). Baseline in the same script: JAX's first call of
# jit(value_and_grad) of the DAGMA objective at n = 1000, d = 100 on this CPU (trace + XLA
# compile), from scripts/bench_dagma_peers.py; the ratio column is that time over optc's.
#
# Usage: scripts/bench-ptx-compile.sh
# Environment: OPTC_MLIR (an optc built with `--features mlir`, default: build it in release;
# needs scripts/install-mlir.sh); RUNS (default 7); VENV (default /tmp/optc-bench-venv, created
# with jax and numpy on first use); CORE (default 0, the core everything is pinned to).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${RUNS:-7}"
venv="${VENV:-/tmp/optc-bench-venv}"
pin="taskset -c ${CORE:-0}"
cd "$root"

if [[ -z "${OPTC_MLIR:-}" ]]; then
  export MLIR_SYS_220_PREFIX="${MLIR_SYS_220_PREFIX:-/usr/lib/llvm-22}"
  export TABLEGEN_220_PREFIX="${TABLEGEN_220_PREFIX:-/usr/lib/llvm-22}"
  cargo build --release -q -p optc --features mlir
  # A copy: a build without the feature replaces target/release/optc.
  OPTC_MLIR="$(mktemp /tmp/optc-mlir-release.XXXXXX)"
  cp target/release/optc "$OPTC_MLIR"
  chmod +x "$OPTC_MLIR"
  trap 'rm -f "$OPTC_MLIR"' EXIT
fi
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q jax numpy
fi

work="$(mktemp -d /tmp/optc-ptx-compile.XXXXXX)"
jax_s=$($pin "$venv/bin/python" scripts/bench_dagma_peers.py --n 1000 --d 100 --time-ms 100 \
  | "$venv/bin/python" -c 'import json,sys; print(json.loads(sys.stdin.readline())["jax_first_call_s"])')

# Median wall time in ms of `runs` runs of the command.
median_ms() {
  "$venv/bin/python" - "$runs" "$@" << 'EOF'
import subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
times = []
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times.append(time.perf_counter() - t)
times.sort()
print(f"{1e3 * times[len(times) // 2]:.1f}")
EOF
}

printf 'JAX first call (DAGMA value_and_grad, d = 100, CPU): %.0f ms\n' "$(echo "$jax_s * 1000" | bc -l)"
printf '%-26s %-22s %9s %10s %10s %9s\n' example dims emit_ms build_f64 build_f32 xJAX
for file in examples/*/*.opt; do
  name="$(basename "$(dirname "$file")")/$(basename "$file" .opt)"
  dims=$("$OPTC_MLIR" bench "$file" --backend interp --time-ms 1 --json 2> /dev/null \
    | python3 -c 'import json,sys; d=json.load(sys.stdin)["dims"]; print(",".join(f"{k}={v}" for k,v in d.items()))' 2> /dev/null) \
    || { printf '%-26s no benchmarkable merit\n' "$name"; continue; }
  if ! "$OPTC_MLIR" build "$file" -o "$work/x.optx" --target gpu --dims "$dims" > /dev/null 2>&1; then
    printf '%-26s %-22s no GPU plan\n' "$name" "$dims"
    continue
  fi
  emit=$(median_ms $pin "$OPTC_MLIR" emit --stage ptx "$file" --dims "$dims")
  f64=$(median_ms $pin "$OPTC_MLIR" build "$file" -o "$work/x.optx" --target gpu --dims "$dims")
  f32=$(median_ms $pin "$OPTC_MLIR" build "$file" -o "$work/x.optx" --target gpu --dims "$dims" \
    --precision f32)
  ratio=$(echo "$jax_s * 1000 / $f64" | bc -l)
  printf '%-26s %-22s %9s %10s %10s %9.1f\n' "$name" "$dims" "$emit" "$f64" "$f32" "$ratio"
done
rm -rf "$work"
