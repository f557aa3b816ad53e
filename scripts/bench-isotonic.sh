#!/usr/bin/env bash
# Benchmark: isotonic regression, min sumsq(x - y) s.t. x nondecreasing, a chain of n - 1
# inequalities, by optc's augmented Lagrangian written two ways (`for i in 0..n - 1:
# x[i] <= x[i + 1]`, batched into one node, and the vector form `x[0:n - 1] <= x[1:n]`) against
# CVXPY (Clarabel, interior point; OSQP, ADMM; default tolerances), on the same data: a seeded
# random walk with steps N(0, 0.3²) plus N(0, 1) noise. The reference optimum is pooling
# adjacent violators (exact, O(n)). Prints, per size, each one's objective relative to that
# optimum, its largest violation max(x[i] - x[i + 1], 0), the solve time (CVXPY:
# `problem.solve()`, canonicalization included; optc: `timings.solve_s` of `--json`) and optc's
# whole-process wall time, and the ratio Clarabel/optc of solve times. One thread everywhere.
#
# Usage: scripts/bench-isotonic.sh [N ...]   (default: 100 300 1000)
# Environment: VENV (default /tmp/optc-bench-ot-venv: numpy, cvxpy), OPTC.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(100 300 1000)
work="$(mktemp -d /tmp/optc-bench-isotonic.XXXXXX)"
trap 'rm -rf "$work"' EXIT
source "$root/scripts/bench-peer-setup.sh"
peer_setup "import cvxpy" numpy cvxpy

for form in "for i in 0..n - 1: x[i] <= x[i + 1]" "x[0:n - 1] <= x[1:n]"; do
  name=$([[ $form == for* ]] && echo loop || echo vector)
  cat > "$work/$name.opt" << EOF2
dims n
data y : real[n] = load("y.npy")
var x : real[n] = 0
minimize sumsq(x - y)
subject to
  increasing: $form
output x
EOF2
done

printf "%5s | %-12s %9s %9s %9s %9s | %9s\n" n solver "rel obj" violation "solve s" "wall s" "Cl/optc"
for n in "${sizes[@]}"; do
  "$venv/bin/python" -c "
import numpy as np
rng = np.random.default_rng(0)
np.save('$work/y.npy', np.cumsum(0.3 * rng.standard_normal($n)) + rng.standard_normal($n))"
  rows=()
  for name in loop vector; do
    start=$(date +%s.%N)
    json=$(cd "$work" && "$OPTC" run "$name.opt" --json -q --out "out-$name") || true
    wall=$(echo "$(date +%s.%N) - $start" | bc)
    solve=$(echo "$json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["timings"]["solve_s"])')
    rows+=("$name" "$solve" "$wall")
  done
  "$venv/bin/python" - "$work" "$n" "${rows[@]}" << 'EOF2'
import sys, time
import numpy as np, cvxpy as cp
work, n = sys.argv[1], int(sys.argv[2])
optc = [(sys.argv[i], float(sys.argv[i + 1]), float(sys.argv[i + 2])) for i in range(3, len(sys.argv), 3)]
y = np.load(f"{work}/y.npy")
blocks = []
for v in y:
    blocks.append([v, 1])
    while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
        s, c = blocks.pop(); blocks[-1][0] += s; blocks[-1][1] += c
best = sum(c * (s / c) ** 2 for s, c in blocks) - 2 * sum(s * s / c for s, c in blocks) + y @ y
def report(x):
    return (((x - y) ** 2).sum() - best) / best, max((x[:-1] - x[1:]).max(), 0)
rows = {}
for solver in ["CLARABEL", "OSQP"]:
    x = cp.Variable(n)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(x - y)), [x[:-1] <= x[1:]])
    start = time.perf_counter(); problem.solve(solver=solver); t = time.perf_counter() - start
    rows[solver.capitalize()] = (*report(x.value), t, None)
for name, solve, wall in optc:
    rows[f"optc {name}"] = (*report(np.load(f"{work}/out-{name}/x.npy")), solve, wall)
for name, (gap, violation, t, wall) in rows.items():
    extra = f"{wall:9.3f} | {rows['Clarabel'][2] / t:9.2g}" if wall is not None else " " * 9 + " |"
    print(f"{n:5d} | {name:<12} {gap:9.1e} {violation:9.1e} {t:9.4f} {extra}")
EOF2
done
