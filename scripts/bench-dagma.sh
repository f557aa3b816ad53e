#!/usr/bin/env bash
# Benchmark: optc's examples/dag/dagma.opt against the `dagma` Python package (linear DAGMA) on
# the same data from `optc simulate dag` (ER2: 2d edges, n = 1000, Gaussian equal-variance noise),
# with the same hyperparameters (those of examples/dag/dagma.opt; see scripts/bench_dagma.py).
# With PEER=notears: examples/dag/notears.opt against linear NOTEARS in numpy/scipy, the authors'
# algorithm and defaults (scripts/notears_reference.py).
# Prints d, seed, SHD and wall time of each (whole process: optc includes compiling the model,
# the peer includes starting Python and importing numpy/scipy; the peer's fit alone in its own
# column) and the ratio of wall times peer/optc. Both run single-threaded (the peer with one BLAS
# thread).
#
# Usage: [PEER=dagma|notears] scripts/bench-dagma.sh [D ...]          (default: 20 50 100)
# Environment: OPTC (an optc binary to use instead of building target/release/optc);
# SEEDS (default "1"); VENV (default /tmp/optc-bench-dagma-venv, created on first use: numpy,
# scipy, tqdm, dagma without its torch/igraph dependencies); WORK (default: a fresh mktemp dir).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dims=("$@")
[[ ${#dims[@]} -gt 0 ]] || dims=(20 50 100)
read -r -a seeds <<< "${SEEDS:-1}"
venv="${VENV:-/tmp/optc-bench-dagma-venv}"
work="${WORK:-$(mktemp -d /tmp/optc-bench-dagma.XXXXXX)}"

if ! "$venv/bin/python" -c "from dagma.linear import DagmaLinear" 2> /dev/null; then
  echo "creating $venv (numpy, scipy, tqdm, dagma)" >&2
  python3 -m venv "$venv"
  # dagma.linear needs only numpy, scipy and tqdm; the package's declared torch and igraph
  # dependencies serve its nonlinear model and simulator (torch from PyPI is the CUDA build,
  # several gigabytes), so dagma is installed without them.
  "$venv/bin/pip" install -q numpy scipy tqdm
  "$venv/bin/pip" install -q --no-deps dagma
fi
python="$venv/bin/python"
bench="$root/scripts/bench_dagma.py"
peer="${PEER:-dagma}"
case "$peer" in
  dagma) mode=() ;;
  notears) mode=(notears) ;;
  *) echo "PEER is dagma or notears" >&2; exit 64 ;;
esac

if [[ -n "${OPTC:-}" ]]; then
  optc="$OPTC"
else
  (cd "$root" && cargo build --release -q -p optc)
  optc="$root/target/release/optc"
fi

now() { date +%s.%N; }

echo "data in $work" >&2
printf '%5s %5s %9s %10s %9s %10s %12s %7s\n' \
  d seed shd_optc "shd_$peer" t_optc_s "t_${peer}_s" "t_${peer}_fit_s" ratio
for d in "${dims[@]}"; do
  for seed in "${seeds[@]}"; do
    data="$work/d$d-s$seed"
    "$optc" simulate dag --graph ER --d "$d" --edges $((2 * d)) --n 1000 --noise gauss \
      --seed "$seed" --out "$data" > /dev/null

    start=$(now)
    # Exit code 1 means "stopped at a limit" and still writes W.npy.
    "$optc" run "$root/examples/dag/$peer.opt" --data "X=$data/X.npy" --out "$data/optc" \
      --json -q > "$data/optc.json" || [[ $? -eq 1 ]]
    t_optc=$(echo "$(now) - $start" | bc -l)
    shd_optc=$("$python" "$bench" shd "$data/optc/W.npy" "$data/W_true.npy")

    start=$(now)
    # Single-threaded BLAS, as optc (multi-threaded OpenBLAS thrashes on a shared machine).
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
      "$python" "$bench" "${mode[@]}" "$data" > "$data/$peer.json" 2> "$data/$peer.err" # tqdm bar
    t_peer=$(echo "$(now) - $start" | bc -l)
    read -r shd_peer t_fit < <("$python" -c \
      'import json, sys; r = json.load(open(sys.argv[1])); print(r["shd"], r["fit_seconds"])' \
      "$data/$peer.json")

    printf '%5s %5s %9s %10s %9.2f %10.2f %12.2f %7.2f\n' "$d" "$seed" "$shd_optc" \
      "$shd_peer" "$t_optc" "$t_peer" "$t_fit" "$(echo "$t_peer / $t_optc" | bc -l)"
  done
done
