#!/usr/bin/env bash
# Benchmark: sparse index tracking (examples/finance/index_tracking.opt: track the equal-weighted
# index of the 20 assets of examples/data/R.npy with at most k of them, long-only, fully
# invested), a nonconvex problem: optc's `fista` with staged cardinality against the exact
# optimum two ways: every support of k assets, each a nonnegative least squares with the budget
# as a heavily weighted row (scipy's NNLS; numpy), and CVXPY with boolean indicators (w <= z,
# sum(z) <= k) solved by SCIP (a mixed-integer program, the form CVXPY needs; time limit
# LIMIT s). Prints, per k, each one's tracking objective, its gap to the best support's, its
# time (optc: `timings.solve_s` of `--json`, and the whole process's wall time) and the ratio of
# the peer's time to optc's solve time. One thread everywhere.
#
# Usage: scripts/bench-index-tracking.sh [K ...]   (default: 3 5)
# Environment: VENV (default /tmp/optc-bench-ot-venv: numpy, scipy, cvxpy, pyscipopt), OPTC,
# LIMIT (SCIP's time limit in seconds, default 300).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ks=("$@")
[[ ${#ks[@]} -gt 0 ]] || ks=(3 5)
work="$(mktemp -d /tmp/optc-bench-tracking.XXXXXX)"
trap 'rm -rf "$work"' EXIT
source "$root/scripts/bench-peer-setup.sh"
peer_setup "import cvxpy, scipy, pyscipopt" numpy scipy cvxpy pyscipopt
model="$root/examples/finance/index_tracking.opt"

printf "%3s | %-16s %12s %9s %9s %9s | %9s | %s\n" k method objective gap "time s" "wall s" "peer/optc" status
for k in "${ks[@]}"; do
  start=$(date +%s.%N)
  json=$("$OPTC" run "$model" --param k="$k" --json -q)
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  echo "$json" > "$work/optc.json"
  PYTHONPATH="$root/scripts" "$venv/bin/python" - "$root" "$k" "$work/optc.json" "$wall" "${LIMIT:-300}" << 'EOF2'
import itertools, json, sys, time
import numpy as np, cvxpy as cp
from bench_cardinality import print_rows, solve_scip
from scipy.optimize import nnls
root, k, wall, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[4]), float(sys.argv[5])
optc = json.load(open(sys.argv[3]))
R = np.load(f"{root}/examples/data/R.npy")
n, p = R.shape
index = R.mean(axis=1)
def objective(w):
    return float(np.sum((R @ w - index) ** 2) / n)
start = time.perf_counter()
best = np.inf
for support in itertools.combinations(range(p), k):
    A = np.vstack([R[:, support], 1e4 * np.ones(k)])
    w, _ = nnls(A, np.append(index, 1e4))
    full = np.zeros(p)
    full[list(support)] = w / w.sum()
    best = min(best, objective(full))
enumeration = time.perf_counter() - start
w, z = cp.Variable(p), cp.Variable(p, boolean=True)
problem = cp.Problem(cp.Minimize(cp.sum_squares(R @ w - index) / n),
                     [w >= 0, cp.sum(w) == 1, w <= z, cp.sum(z) <= k])
scip = solve_scip(problem, limit)
solve = optc["timings"]["solve_s"]
rows = [("optc fista", optc["objective"], solve, wall, optc["status"]),
        ("every support", best, enumeration, None, ""),
        ("CVXPY+SCIP", objective(w.value), scip, None, problem.status)]
print_rows(k, rows, best, solve)
EOF2
done
