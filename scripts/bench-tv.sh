#!/usr/bin/env bash
# Benchmark: 1-D total-variation problems, `0.5 * sumsq(x - y) + lambda * tv(x)` (denoising) and
# `0.5 / m * sumsq(A @ x - b) + l1 * norm1(x) + lambda * tv(x)` within bounds (the fused lasso of
# a least-squares fit), where `tv(x)` is a prox term of `fista` (Condat's direct algorithm;
# before, the same models were solved by L-BFGS through the subgradient: the `lbfgs` rows, run
# with `--method lbfgs`), against CVXPY + Clarabel (interior point). Data: a piecewise-constant
# signal of n entries plus noise (seeded); the fused lasso with m = n / 2 Gaussian rows.
# Prints, per problem and solver, the objective relative to the best one, the time (optc:
# `timings.total_s` of `--json`, compile included; CVXPY: its solve call) and CVXPY's time over
# optc fista's. One thread everywhere.
#
# Usage: scripts/bench-tv.sh [N ...]   (default: 1000 10000 100000)
# Environment: VENV (default /tmp/optc-bench-ot-venv: numpy, cvxpy), OPTC.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(1000 10000 100000)
work="$(mktemp -d /tmp/optc-bench-tv.XXXXXX)"
trap 'rm -rf "$work"' EXIT
source "$root/scripts/bench-peer-setup.sh"
peer_setup "import cvxpy" numpy cvxpy

cat > "$work/denoise.opt" << 'EOF'
dims n
data y : real[n] = load("y.npy")
param lambda = 2
var x : real[n] = 0
minimize 0.5 * sumsq(x - y) + lambda * tv(x)
EOF
cat > "$work/fused.opt" << 'EOF'
dims m, n
data A : real[m, n] = load("A.npy")
data b : real[m] = load("b.npy")
param l1 = 0.01
param lambda = 0.05
var x : real[n] >= -1 <= 3 = 0
minimize 0.5 / m * sumsq(A @ x - b) + l1 * norm1(x) + lambda * tv(x)
EOF

printf "%-8s %7s | %-18s %10s %9s | %8s\n" problem n solver "rel obj" "time s" "cvxpy/optc"
for n in "${sizes[@]}"; do
  "$venv/bin/python" - "$work" "$n" << 'EOF'
import sys
import numpy as np
work, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(5)
levels = rng.normal(0, 2, 20)
signal = np.repeat(levels, -(-n // 20))[:n]
np.save(f"{work}/y.npy", signal + rng.normal(0, 1, n))
m = n // 2
A = rng.normal(size=(m, n)) if n <= 2000 else np.zeros((1, n))
np.save(f"{work}/A.npy", A)
np.save(f"{work}/b.npy", A @ np.clip(signal / 4, -1, 3) + 0.1 * rng.normal(size=A.shape[0]))
EOF
  for problem in denoise fused; do
    # The fused lasso's design is n/2 × n, dense: it runs up to n = 2000.
    [[ $problem == fused && $n -gt 2000 ]] && continue
    for method in fista lbfgs; do
      "$OPTC" run "$work/$problem.opt" --method "$method" --max-iter 20000 --json -q \
        --out "$work/$method" > "$work/$method.json" 2> /dev/null || true
    done
    "$venv/bin/python" - "$work" "$n" "$problem" << 'EOF'
import json, sys, time
import numpy as np
import cvxpy as cp
work, n, problem = sys.argv[1], int(sys.argv[2]), sys.argv[3]
y = np.load(f"{work}/y.npy")
A, b = np.load(f"{work}/A.npy"), np.load(f"{work}/b.npy")
m = A.shape[0]

def objective(x):
    tv = np.abs(np.diff(x)).sum()
    if problem == "denoise":
        return 0.5 * np.sum((x - y) ** 2) + 2 * tv
    inside = np.all(x >= -1 - 1e-9) and np.all(x <= 3 + 1e-9)
    fit = 0.5 / m * np.sum((A @ x - b) ** 2) + 0.01 * np.abs(x).sum() + 0.05 * tv
    return fit if inside else float("inf")

rows = []
for method, label in [("fista", "optc fista (prox)"), ("lbfgs", "optc lbfgs (subgr)")]:
    res = json.load(open(f"{work}/{method}.json"))
    rows.append((label, np.load(f"{work}/{method}/x.npy"), res["timings"]["total_s"], res["status"]))
x = cp.Variable(n)
if problem == "denoise":
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - y) + 2 * cp.norm1(cp.diff(x))))
else:
    prob = cp.Problem(cp.Minimize(0.5 / m * cp.sum_squares(A @ x - b) + 0.01 * cp.norm1(x)
                                  + 0.05 * cp.norm1(cp.diff(x))), [x >= -1, x <= 3])
start = time.perf_counter(); prob.solve(solver="CLARABEL"); t = time.perf_counter() - start
rows.append(("CVXPY + Clarabel", x.value, t, prob.status))
values = [objective(r[1]) for r in rows]
best = min(values)
fista_t = rows[0][2]
for (label, _, t, status), v in zip(rows, values):
    rel = (v - best) / abs(best)
    ratio = f"{t / fista_t:8.1f}" if label.startswith("CVXPY") else ""
    note = "" if status in ("converged", "optimal") else f"  ({status})"
    print(f"{problem:<8} {n:7d} | {label:<18} {rel:10.1e} {t:9.4f} | {ratio}{note}")
EOF
  done
done
