#!/usr/bin/env bash
# Benchmark: least squares in a norm ball — `minimize 0.5 / n * sumsq(X @ w - y)` subject to
# `norm1(w) <= r` (the constrained lasso) or `norm2(w) <= r` — by optc (`fista`, projecting onto
# the ball) against CVXPY (Clarabel, interior point; default tolerances) on the same data, and
# against optc with the same ball written as an inequality of `auglag` (`norm1(1 * w) <= r`, an
# expression, so not projected onto: what optc did before balls were projected; stopped after a
# minute).
# Data: `optc simulate regression` (n samples, p features, a sparse planted w); the radius is
# half the norm of the least-squares solution, so the ball binds.
# Prints, per size and ball, each one's objective relative to the best feasible one, its violation
# (norm − r, if positive), the ball's multiplier, and the solve time (CVXPY: `problem.solve()`,
# which includes its canonicalization; optc: `timings.solve_s` of `--json`), and the ratio
# Clarabel/optc of solve times. One thread everywhere.
#
# Usage: scripts/bench-norm-ball.sh [NxP ...]   (default: 200x50 1000x200 2000x1000)
# Environment: VENV (default /tmp/optc-bench-ot-venv: numpy, cvxpy), OPTC.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(200x50 1000x200 2000x1000)
work="$(mktemp -d /tmp/optc-bench-ball.XXXXXX)"
trap 'rm -rf "$work"' EXIT
source "$root/scripts/bench-peer-setup.sh"
peer_setup "import cvxpy" numpy cvxpy

model() { # NORM, the ball's argument
  cat << EOF
dims n, p
data X : real[n, p] = load("X_reg.npy")
data y : real[n] = load("y_reg.npy")
param r = 1
var w : real[p] = 0
minimize 0.5 / n * sumsq(X @ w - y)
subject to
  ball: $1($2) <= r
output w
EOF
}

printf "%10s %5s | %-18s %10s %10s %12s %9s | %8s\n" "n x p" ball solver "rel obj" violation \
  multiplier "solve s" "Cl/optc"
for size in "${sizes[@]}"; do
  n=${size%x*}
  p=${size#*x}
  "$OPTC" simulate regression --n "$n" --p "$p" --seed 3 --out "$work" > /dev/null
  for norm in norm1 norm2; do
    model "$norm" w > "$work/projected.opt"
    model "$norm" "1 * w" > "$work/inequality.opt"
    radius=$("$venv/bin/python" - "$work" "$norm" << 'EOF2'
import sys
import numpy as np
X = np.load(f"{sys.argv[1]}/X_reg.npy"); y = np.load(f"{sys.argv[1]}/y_reg.npy")
w = np.linalg.lstsq(X, y, rcond=None)[0]
print(0.5 * (np.abs(w).sum() if sys.argv[2] == "norm1" else np.linalg.norm(w)))
EOF2
)
    (cd "$work" && "$OPTC" run projected.opt --param r="$radius" --json -q > projected.json \
      2> /dev/null) || true
    # The inequality form may stall at the norm's kink: at most a minute.
    (cd "$work" && timeout 60 "$OPTC" run inequality.opt --param r="$radius" --json -q \
      > inequality.json 2> /dev/null) || true
    "$venv/bin/python" - "$work" "$norm" "$radius" "$size" << 'EOF2'
import json, sys, time
import numpy as np, cvxpy as cp
work, norm, r, size = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
X = np.load(f"{work}/X_reg.npy"); y = np.load(f"{work}/y_reg.npy"); n, p = X.shape
ball = (lambda v: np.abs(v).sum()) if norm == "norm1" else np.linalg.norm
objective = lambda v: 0.5 / n * np.sum((X @ v - y) ** 2)
rows = []
w = cp.Variable(p)
atom = cp.norm1(w) if norm == "norm1" else cp.norm2(w)
problem = cp.Problem(cp.Minimize(0.5 / n * cp.sum_squares(X @ w - y)), [atom <= r])
start = time.perf_counter(); problem.solve(solver="CLARABEL"); t = time.perf_counter() - start
rows.append(("CVXPY + Clarabel", objective(w.value), ball(w.value) - r,
             float(problem.constraints[0].dual_value), t, "optimal"))
for form, label in [("projected", "optc fista"), ("inequality", "optc auglag (ineq)")]:
    try:
        res = json.load(open(f"{work}/{form}.json"))
    except ValueError:
        rows.append((label, float("inf"), float("nan"), float("nan"), 60.0, "timed out at 60 s"))
        continue
    v = np.array(res["outputs"]["w"])
    c = res["constraints"][0]
    rows.append((label, objective(v), ball(v) - r, c.get("multiplier", float("nan")),
                 res["timings"]["solve_s"], res["status"]))
# The best objective among the feasible points (violation within 1e-6 of the radius).
best = min(o for _, o, viol, _, _, _ in rows if viol <= 1e-6 * max(r, 1.0))
optc_s = rows[1][4]
for label, o, viol, mu, t, status in rows:
    ratio = f"{rows[0][4] / optc_s:8.1f}" if label == "optc fista" else ""
    note = "" if status in ("optimal", "converged") else f"  ({status})"
    print(f"{size:>10} {norm:>5} | {label:<18} {(o - best) / abs(best):10.1e} {max(viol, 0):10.1e} "
          f"{mu:12.6g} {t:9.4f} | {ratio}{note}")
EOF2
  done
done
