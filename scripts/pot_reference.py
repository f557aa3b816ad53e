"""Check values of sparsity-constrained optimal transport from POT (PythonOT), the reference
implementation of Liu, Puigcerver & Blondel (2023), for runtime/tests/transport.rs.

Writes the test case of ../shared/design/methods.md section 2 (m = n = 20 points: source
randn(2) from RandomState(0), target randn(2) + 1, squared-Euclidean cost divided by its max,
uniform marginals) to runtime/tests/data/pot_ot/{C,a,b}.npy and prints POT's plans' costs for
gamma = 0.1 and several k, for both duals.

Usage (a throwaway venv; POT is never a dependency of optc):
  python3 -m venv /tmp/potenv && /tmp/potenv/bin/pip install numpy scipy pot
  /tmp/potenv/bin/python scripts/pot_reference.py
"""
import contextlib
import io
import os

import numpy as np
import ot

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
out = os.path.join(root, "runtime", "tests", "data", "pot_ot")
os.makedirs(out, exist_ok=True)

rng = np.random.RandomState(0)
m = n = 20
xs = rng.randn(m, 2)
xt = rng.randn(n, 2) + 1
C = ot.dist(xs, xt)
C /= C.max()
a = np.ones(m) / m
b = np.ones(n) / n
for name, array in [("C", C), ("a", a), ("b", b)]:
    np.save(os.path.join(out, f"{name}.npy"), array)

gamma = 0.1
print(f"EMD cost {np.sum(ot.emd(a, b, C) * C):.6f}")
for k in [1, 2, 3, 5, 10, 19]:
    for name, solver in [("semi", ot.smooth.smooth_ot_semi_dual), ("dual", ot.smooth.smooth_ot_dual)]:
        with contextlib.redirect_stdout(io.StringIO()):  # POT prints shapes
            T = solver(a, b, C, gamma, reg_type="sparsity_constrained", max_nz=k)
        print(
            f"k={k:2d} {name}: <T,C> {np.sum(T * C):.6f}  max col nnz {(T > 1e-12).sum(0).max()}"
            f"  row err {np.abs(T.sum(1) - a).max():.1e}  col err {np.abs(T.sum(0) - b).max():.1e}"
        )
