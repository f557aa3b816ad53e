#!/usr/bin/env bash
# Benchmark: sparsity-constrained optimal transport (at most k nonzeros per column, gamma = 0.1)
# by optc's `solve with dual` (semi-dual, L-BFGS; then the support-restricted repair) against
# POT's `ot.smooth.smooth_ot_semi_dual` (scipy L-BFGS-B, its defaults), the reference
# implementation of Liu, Puigcerver & Blondel (2023), on the same data: m = n points in 2-D
# (source randn, target randn + 1, seeded), squared-Euclidean cost over its max, uniform marginals.
# Prints, per size, each one's time (POT: the solve alone, in-process; optc: the solve alone, from
# `--json` timings, and the whole process), the plan's largest marginal error, the objective
# <C,T> + gamma/2 |T|^2 and the ratio POT/optc of solve times. Single-threaded.
#
# Usage: scripts/bench-ot.sh [N ...]   (default: 100 300 1000)
# Environment: K (default 3), VENV (default /tmp/optc-bench-ot-venv: numpy, scipy, pot), OPTC.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(100 300 1000)
k="${K:-3}"
work="$(mktemp -d /tmp/optc-bench-ot.XXXXXX)"
trap 'rm -rf "$work"' EXIT
source "$root/scripts/bench-peer-setup.sh"
peer_setup "import ot" numpy scipy pot

cat > "$work/ot.opt" << EOF2
dims m, n
data a : real[m] = load("a.npy")
data b : real[n] = load("b.npy")
data C : real[m, n] = load("C.npy")
param gamma = 0.1
param k : int = $k
var T : real[m, n] >= 0
minimize sum(C .* T) + gamma / 2 * sumsq(T)
subject to
  rows: sum(T, axis = 1) == a
  cols: sum(T, axis = 0) == b
  sparse: for j in 0..n: card(T[:, j]) <= k
solve with dual(lbfgs(max_iter = 5000))
EOF2

printf "%6s %3s | %10s %10s %12s | %10s %10s %10s %12s | %6s\n" \
  N k "POT s" "POT err" "POT obj" "optc s" "optc wall" "optc err" "optc obj" "ratio"
for n in "${sizes[@]}"; do
  pot=$("$venv/bin/python" - "$work" "$n" "$k" << 'EOF2'
import contextlib, io, sys, time
import numpy as np, ot
work, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.RandomState(0)
xs, xt = rng.randn(n, 2), rng.randn(n, 2) + 1
C = ot.dist(xs, xt); C /= C.max()
a = b = np.ones(n) / n
for name, v in [("C", C), ("a", a), ("b", b)]:
    np.save(f"{work}/{name}.npy", v)
start = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    T = ot.smooth.smooth_ot_semi_dual(a, b, C, 0.1, reg_type="sparsity_constrained", max_nz=k)
t = time.perf_counter() - start
err = max(abs(T.sum(1) - a).max(), abs(T.sum(0) - b).max())
print(f"{t:.4f} {err:.1e} {np.sum(C * T) + 0.05 * np.sum(T * T):.6e}")
EOF2
)
  read -r pot_s pot_err pot_obj <<< "$pot"
  start=$(date +%s.%N)
  json=$(cd "$work" && "$OPTC" run ot.opt --json -q) || true
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  read -r optc_s optc_err optc_obj <<< "$(echo "$json" | python3 -c '
import json, sys
r = json.load(sys.stdin)
err = max(c["violation"] for c in r["constraints"])
t, f = r["timings"]["solve_s"], r["objective"]
print(f"{t:.4f} {err:.1e} {f:.6e}")')"
  printf "%6s %3s | %10s %10s %12s | %10s %10.4f %10s %12s | %6.1f\n" \
    "$n" "$k" "$pot_s" "$pot_err" "$pot_obj" "$optc_s" "$wall" "$optc_err" "$optc_obj" \
    "$(echo "$pot_s / $optc_s" | bc -l)"
done
