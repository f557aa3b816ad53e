#!/usr/bin/env bash
# Benchmark: the sparse minimum-variance portfolio (examples/finance/sparse_portfolio.opt:
# long-only, fully invested, a floor on the expected return, at most k of the 20 assets of
# examples/data/R.npy), a nonconvex problem: optc's `auglag` with proximal-gradient subproblems
# (staged `card`, then the search over swapped supports) against the exact optimum two ways:
# every support of k assets, each solved exactly by enumerating its active sets (the KKT
# system of each subset of the support with the floor active or not; numpy), and CVXPY with
# boolean indicators (w <= z, sum(z) <= k) solved by SCIP (a mixed-integer program, the form
# CVXPY needs; time limit LIMIT s). Prints, per k, each one's variance, its gap to the best
# support's (to the lowest of the others' where there are more than 50 000 supports, which are
# then not enumerated), its time (optc: `timings.solve_s` of `--json`, and the whole process's wall time)
# and the ratio of the peer's time to optc's solve time. One thread everywhere.
#
# Usage: scripts/bench-sparse-portfolio.sh [K ...]   (default: 2 3 5)
# Environment: VENV (default /tmp/optc-bench-ot-venv: numpy, cvxpy, pyscipopt), OPTC, TARGET
# (the return floor, default 0.11), LIMIT (SCIP's time limit in seconds, default 300), DATA (the
# returns, default examples/data/R.npy; e.g. from `optc simulate portfolio --p 100`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ks=("$@")
[[ ${#ks[@]} -gt 0 ]] || ks=(2 3 5)
work="$(mktemp -d /tmp/optc-bench-sparse-portfolio.XXXXXX)"
trap 'rm -rf "$work"' EXIT
source "$root/scripts/bench-peer-setup.sh"
peer_setup "import cvxpy, pyscipopt" numpy scipy cvxpy pyscipopt
model="$root/examples/finance/sparse_portfolio.opt"
target="${TARGET:-0.11}"
data="$(realpath "${DATA:-$root/examples/data/R.npy}")"

printf "%3s | %-16s %12s %9s %9s %9s | %9s | %s\n" k method variance gap "time s" "wall s" "peer/optc" status
for k in "${ks[@]}"; do
  start=$(date +%s.%N)
  json=$("$OPTC" run "$model" --param k="$k" --param target="$target" --data R="$data" --json -q)
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  echo "$json" > "$work/optc.json"
  PYTHONPATH="$root/scripts" "$venv/bin/python" - "$data" "$k" "$work/optc.json" "$wall" "${LIMIT:-300}" "$target" << 'EOF2'
import itertools, json, math, sys, time
import numpy as np, cvxpy as cp
from bench_cardinality import print_rows, solve_scip
data, k, wall, limit, target = sys.argv[1], int(sys.argv[2]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
optc = json.load(open(sys.argv[3]))
R = np.load(data)
n, p = R.shape
mu = R.mean(axis=0)
S = (R - mu).T @ (R - mu) / (n - 1)
def on_support(support):
    """The least wᵀSw over the simplex of `support` with mu·w >= target: the best feasible
    solution of the equality-constrained QPs of its subsets, with the floor active or not."""
    best = np.inf
    for size in range(1, len(support) + 1):
        for t in itertools.combinations(support, size):
            t = list(t)
            for rows in ([np.ones(size)], [np.ones(size), mu[t]]):
                E = np.array(rows)
                m = len(rows)
                K = np.block([[2 * S[np.ix_(t, t)], E.T], [E, np.zeros((m, m))]])
                rhs = np.concatenate([np.zeros(size), [1.0, target][:m]])
                try:
                    w = np.linalg.solve(K, rhs)[:size]
                except np.linalg.LinAlgError:
                    continue
                if np.all(w >= -1e-12) and mu[t] @ w >= target - 1e-12:
                    best = min(best, float(w @ S[np.ix_(t, t)] @ w))
    return best
enumerate_all = math.comb(p, k) <= 50000
best = np.nan
start = time.perf_counter()
if enumerate_all:
    best = min(on_support(s) for s in itertools.combinations(range(p), k))
enumeration = time.perf_counter() - start
w, z = cp.Variable(p), cp.Variable(p, boolean=True)
problem = cp.Problem(cp.Minimize(cp.quad_form(w, cp.psd_wrap(S))),
                     [w >= 0, cp.sum(w) == 1, mu @ w >= target, w <= z, cp.sum(z) <= k])
scip = solve_scip(problem, limit)
solve = optc["timings"]["solve_s"]
scip_value = float(w.value @ S @ w.value) if w.value is not None else np.nan
rows = [("optc auglag", optc["objective"], solve, wall, optc["status"]),
        ("every support", best, enumeration, None, ""),
        ("CVXPY+SCIP", scip_value, scip, None, problem.status)]
if not enumerate_all:
    rows.pop(1)
    best = min(np.nan_to_num(r[1], nan=np.inf) for r in rows)
print_rows(k, rows, best, solve)
EOF2
done
