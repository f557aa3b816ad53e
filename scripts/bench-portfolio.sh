#!/usr/bin/env bash
# Benchmark: the minimum-variance long-only portfolio with a floor on the expected return
# (examples/finance/portfolio.opt) by optc (augmented Lagrangian, inner L-BFGS-B) against CVXPY
# (Clarabel, interior point, and OSQP, ADMM; each at its default tolerances) and scipy's SLSQP, on
# the same data: `optc simulate portfolio` returns, n = 2p periods of p assets, the floor the
# midpoint between the minimum-variance portfolio's return and the largest mean return (binding).
# Prints, per size, each one's objective relative to the best found, its constraint violation
# (max of |sum(w) - 1|, the return shortfall and the negative weights), the solve time (CVXPY:
# `problem.solve()`, which includes its canonicalization; SLSQP: `minimize` from the uniform
# portfolio; optc: `timings.solve_s` of `--json`) and optc's whole-process wall time, and the
# ratios Clarabel/optc and SLSQP/optc of solve times. One thread everywhere.
#
# Usage: scripts/bench-portfolio.sh [P ...]   (default: 20 100 300)
# Environment: VENV (default /tmp/optc-bench-ot-venv: numpy, scipy, cvxpy), OPTC.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(20 100 300)
work="$(mktemp -d /tmp/optc-bench-portfolio.XXXXXX)"
trap 'rm -rf "$work"' EXIT
source "$root/scripts/bench-peer-setup.sh"
peer_setup "import cvxpy, scipy" numpy scipy cvxpy
sed 's|"../data/R.npy"|"R.npy"|' "$root/examples/finance/portfolio.opt" > "$work/portfolio.opt"

printf "%5s | %-9s %9s %9s %9s %9s | %9s %9s\n" p solver "rel obj" violation "solve s" "wall s" \
  "Cl/optc" "SLSQP/optc"
for p in "${sizes[@]}"; do
  "$OPTC" simulate portfolio --n $((2 * p)) --p "$p" --seed 5 --out "$work" > /dev/null
  target=$("$venv/bin/python" - "$work" << 'EOF2'
import sys
import numpy as np, cvxpy as cp
R = np.load(f"{sys.argv[1]}/R.npy"); n, p = R.shape
mu = R.mean(0); C = R - mu
w = cp.Variable(p)
cp.Problem(cp.Minimize(cp.sum_squares(C @ w) / (n - 1)), [cp.sum(w) == 1, w >= 0]).solve()
print((mu @ w.value + mu.max()) / 2)
EOF2
)
  start=$(date +%s.%N)
  json=$(cd "$work" && "$OPTC" run portfolio.opt --param target="$target" --json -q --out out) || true
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  optc_s=$(echo "$json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["timings"]["solve_s"])')
  "$venv/bin/python" - "$work" "$target" "$optc_s" "$wall" "$p" << 'EOF2'
import sys, time
import numpy as np, cvxpy as cp
from scipy.optimize import minimize
work, target, optc_s, wall, p = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
R = np.load(f"{work}/R.npy"); n = R.shape[0]
mu = R.mean(0); C = R - mu; S = C.T @ C / (n - 1)
def report(w):
    return w @ S @ w, max(abs(w.sum() - 1), max(target - mu @ w, 0), max(-w.min(), 0))
rows = {}
for solver in ["CLARABEL", "OSQP"]:
    w = cp.Variable(p)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(C @ w) / (n - 1)), [cp.sum(w) == 1, w >= 0, mu @ w >= target])
    start = time.perf_counter(); prob.solve(solver=solver); t = time.perf_counter() - start
    rows[solver.capitalize()] = (*report(w.value), t)
start = time.perf_counter()
r = minimize(lambda w: w @ S @ w, np.full(p, 1 / p), jac=lambda w: 2 * S @ w, method="SLSQP",
             bounds=[(0, None)] * p, options={"maxiter": 1000},
             constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1, "jac": lambda w: np.ones(p)},
                          {"type": "ineq", "fun": lambda w: mu @ w - target, "jac": lambda w: mu}])
rows["SLSQP"] = (*report(r.x), time.perf_counter() - start)
rows["optc"] = (*report(np.load(f"{work}/out/w.npy")), optc_s)
best = min(v[0] for v in rows.values() if v[1] < 1e-6)
for name, (f, viol, t) in rows.items():
    extra = f"{wall:9.3f}" if name == "optc" else " " * 9
    ratios = f"{rows['Clarabel'][2] / optc_s:9.1f} {rows['SLSQP'][2] / optc_s:9.1f}" if name == "optc" else ""
    print(f"{p:5d} | {name:<9} {(f - best) / best:9.1e} {viol:9.1e} {t:9.4f} {extra} | {ratios}")
EOF2
done
