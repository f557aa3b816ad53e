#!/usr/bin/env bash
# Benchmark: the graphical lasso, min −log det Θ + tr(SΘ) + λ Σ_{i≠j} |Θᵢⱼ| over symmetric Θ
# (examples/covariance/graphical_lasso.opt: `fista` with `Theta in symmetric` and an
# off-diagonal L1 norm), against scikit-learn's `graphical_lasso` (coordinate descent on the
# dual, Friedman et al. 2008; same objective: `alpha` penalizes the off-diagonal entries) at its
# default tolerance and at 1e-8, and CVXPY + Clarabel (interior point on the PSD and exponential
# cones; p <= 50: at p = 100 it runs for more than ten minutes).
# Data: `optc simulate ggm` (p variables, about p edges, n = 5p samples); λ = 0.1.
# Prints, per size and solver, the objective relative to the best one, the largest entry
# difference to the best solution, the time (optc: `timings.total_s` of `--json`, compile
# included; the Python solvers: their call), and each peer's time over optc's. One thread
# everywhere.
#
# Usage: scripts/bench-graphical-lasso.sh [P ...]   (default: 20 50 100 200)
# Environment: VENV (default /tmp/optc-bench-ot-venv: numpy, scikit-learn, cvxpy), OPTC.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(20 50 100 200)
work="$(mktemp -d /tmp/optc-bench-glasso.XXXXXX)"
trap 'rm -rf "$work"' EXIT
source "$root/scripts/bench-peer-setup.sh"
peer_setup "import cvxpy, sklearn" numpy cvxpy scikit-learn

lambda=0.1
printf "%5s | %-24s %10s %10s %9s | %8s\n" p solver "rel obj" "max diff" "time s" "peer/optc"
for p in "${sizes[@]}"; do
  "$OPTC" simulate ggm --n $((5 * p)) --p "$p" --seed 3 --out "$work" > /dev/null
  "$OPTC" run "$root/examples/covariance/graphical_lasso.opt" --data S="$work/S_ggm.npy" \
    --param lambda=$lambda --json -q --out "$work" > "$work/optc.json" 2> /dev/null || true
  "$venv/bin/python" - "$work" "$p" "$lambda" << 'EOF'
import json, sys, time, warnings
import numpy as np
work, p, lam = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
S = np.load(f"{work}/S_ggm.npy")
off = ~np.eye(p, dtype=bool)

def objective(t):
    sign, logdet = np.linalg.slogdet(t)
    if sign <= 0 or np.linalg.eigvalsh((t + t.T) / 2).min() <= 0:
        return float("inf")
    return -logdet + np.sum(S * t) + lam * np.abs(t[off]).sum()

rows = []
res = json.load(open(f"{work}/optc.json"))
rows.append(("optc fista", np.load(f"{work}/Theta.npy"), res["timings"]["total_s"], res["status"]))
from sklearn.covariance import graphical_lasso
for tol, label in [(1e-4, "sklearn cd (tol 1e-4)"), (1e-8, "sklearn cd (tol 1e-8)")]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        _, precision = graphical_lasso(S, alpha=lam, tol=tol, max_iter=1000)
        t = time.perf_counter() - start
    rows.append((label, precision, t, "done"))
if p <= 50:
    import cvxpy as cp
    X = cp.Variable((p, p), symmetric=True)
    mask = 1.0 - np.eye(p)
    problem = cp.Problem(cp.Minimize(-cp.log_det(X) + cp.trace(S @ X)
                                     + lam * cp.sum(cp.abs(cp.multiply(mask, X)))))
    start = time.perf_counter(); problem.solve(solver="CLARABEL"); t = time.perf_counter() - start
    rows.append(("CVXPY + Clarabel", X.value, t, problem.status))
values = [objective(r[1]) for r in rows]
best = int(np.argmin(values))
optc_t = rows[0][2]
for (label, theta, t, status), v in zip(rows, values):
    rel = (v - values[best]) / abs(values[best])
    diff = np.abs(theta - rows[best][1]).max()
    ratio = "" if label == "optc fista" else f"{t / optc_t:8.1f}"
    note = "" if status in ("converged", "done", "optimal") else f"  ({status})"
    print(f"{p:5d} | {label:<24} {rel:10.1e} {diff:10.1e} {t:9.4f} | {ratio}{note}")
EOF
done
