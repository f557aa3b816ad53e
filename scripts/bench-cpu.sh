#!/usr/bin/env bash
# The CPU backend against its peers on the DAGMA objective (value + gradient, f64, one thread):
# `optc bench` (cpu and interp backends) and scripts/bench_dagma_peers.py (JAX jit, numpy as
# usually written, numpy staged by hand), at n = 1000 and d in $DS (default "20 100 500").
# Everything runs pinned to one core ($CORE, default 0). Python peers live in a throwaway venv ($VENV).
# Usage: bash scripts/bench-cpu.sh            (prints a table; JSON lines kept in $OUT)
set -euo pipefail
cd "$(dirname "$0")/.."
DS=${DS:-"20 100 500"}
N=${N:-1000}
TIME_MS=${TIME_MS:-2000}
VENV=${VENV:-/tmp/optc-bench-venv}
OUT=${OUT:-/tmp/optc-bench-cpu}
mkdir -p "$OUT"

cargo build --release -q -p optc
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q jax numpy
fi

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
PIN="taskset -c ${CORE:-0}"

for d in $DS; do
  backends=(--backend cpu)
  # The interpreter is the baseline of the staging/codegen win; it is slow at large d.
  if [ "$d" -le 100 ]; then backends=(); fi
  $PIN target/release/optc bench examples/dag/dagma.opt --dims "n=$N,d=$d" \
    --time-ms "$TIME_MS" --json "${backends[@]}" > "$OUT/optc-d$d.json"
done
# shellcheck disable=SC2086
$PIN "$VENV/bin/python" scripts/bench_dagma_peers.py --n "$N" --d $DS --time-ms "$TIME_MS" \
  > "$OUT/peers.jsonl"

"$VENV/bin/python" - "$OUT" $DS <<'EOF'
import json, sys
out, ds = sys.argv[1], [int(d) for d in sys.argv[2:]]
peers = {p["d"]: p for p in map(json.loads, open(f"{out}/peers.jsonl"))}
print(f"{'d':>5} {'optc cpu/s':>11} {'GFLOP/s':>8} {'peak':>6} {'interp/s':>9} {'jax/s':>9} "
      f"{'numpy/s':>9} {'np staged/s':>11} {'x jax':>6} {'x numpy':>8} {'x np st.':>8} {'compile ms':>10} {'jax 1st s':>9}")
for d in ds:
    o = json.load(open(f"{out}/optc-d{d}.json"))
    p = peers[d]
    cpu = o["backends"]["cpu"]["value_grad_per_s"]
    interp = o["backends"].get("interp", {}).get("value_grad_per_s", float("nan"))
    print(f"{d:>5} {cpu:>11.1f} {o['backends']['cpu']['value_grad_gflops']:>8.2f} "
          f"{o['matmul_peak']['gflops']:>6.1f} {interp:>9.1f} {p['jax_value_grad_per_s']:>9.1f} "
          f"{p['numpy_value_grad_per_s']:>9.1f} {p['numpy_staged_value_grad_per_s']:>11.1f} "
          f"{cpu / p['jax_value_grad_per_s']:>6.1f} {cpu / p['numpy_value_grad_per_s']:>8.1f} "
          f"{cpu / p['numpy_staged_value_grad_per_s']:>8.1f} {o['compile_ms']:>10.1f} "
          f"{p['jax_first_call_s']:>9.2f}")
EOF
