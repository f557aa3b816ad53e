"""Shared by the cardinality benchmarks (bench-index-tracking.sh, bench-sparse-portfolio.sh):
CVXPY's mixed-integer problem solved by SCIP within a time limit, and the rows of their table."""
import time
import warnings


def solve_scip(problem, limit):
    """Solves the CVXPY `problem` by SCIP within `limit` seconds; returns the seconds taken."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "may be inaccurate": SCIP stopped at its time limit
        problem.solve(solver="SCIP", scip_params={"limits/time": limit})
    return time.perf_counter() - start


def print_rows(k, rows, best, solve):
    """Prints one line per row (name, value, seconds, whole-process seconds or None, status):
    the value's gap to `best` and, for the peers (no whole-process time), their time over optc's
    solve time `solve`."""
    for name, value, t, whole, status in rows:
        tail = f"{whole:9.3f} | {'':>9}" if whole is not None else f"{'':>9} | {t / solve:9.3g}"
        print(f"{k:3d} | {name:<16} {value:12.6e} {value / best - 1:9.2%} {t:9.3f} {tail} | {status}")
