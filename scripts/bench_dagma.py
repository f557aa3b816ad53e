"""Runs the `dagma` package's linear DAGMA on one simulated data set and prints one JSON line
({"shd", "edges", "fit_seconds"}); `notears` mode runs linear NOTEARS instead (a numpy/scipy
implementation of the authors' algorithm, notears_reference.py); `shd` mode prints the SHD of an
estimate.

Usage: python bench_dagma.py DIR             (DIR holds X.npy and W_true.npy from `optc simulate dag`)
       python bench_dagma.py steps DIR       (the same fit; also counts the Adam steps per stage)
       python bench_dagma.py notears DIR
       python bench_dagma.py shd W.npy W_true.npy
The hyperparameters are the ones of examples/dag/dagma.opt (the DAGMA repository's `fit`
defaults except lambda1 = 0.02, as in its test() and notebook) and of examples/dag/notears.opt
(the NOTEARS repository's `notears_linear` defaults with lambda1 = 0.1).
"""
import json
import sys
import time

import numpy as np


def shd(estimate, truth):
    """Extra + missing + reversed edges; a reversed edge counts once (as optc's dag::graph_metrics)."""
    b, g = estimate != 0, truth != 0
    reversed_ = b & ~g & g.T
    extra = b & ~g & ~g.T
    missing = g & ~b & ~b.T
    return int(extra.sum() + missing.sum() + reversed_.sum())


def main():
    if sys.argv[1] == "shd":
        print(shd(np.load(sys.argv[2]), np.load(sys.argv[3])))
        return
    if sys.argv[1] == "notears":
        from notears_reference import notears_linear

        x = np.load(f"{sys.argv[2]}/X.npy")
        truth = np.load(f"{sys.argv[2]}/W_true.npy")
        start = time.perf_counter()
        w = notears_linear(x, lambda1=0.1, w_threshold=0.3)
        seconds = time.perf_counter() - start
        print(json.dumps({"shd": shd(w, truth), "edges": int((w != 0).sum()), "fit_seconds": seconds}))
        return
    from dagma.linear import DagmaLinear

    count = sys.argv[1] == "steps"
    data = sys.argv[2] if count else sys.argv[1]
    x = np.load(f"{data}/X.npy")
    truth = np.load(f"{data}/W_true.npy")
    stages = []
    if count:
        # Each Adam step calls `_adam_update` once; `minimize` runs one stage (or a retry).
        minimize, adam_update, steps = DagmaLinear.minimize, DagmaLinear._adam_update, [0]

        def counted_update(self, *args, **kwargs):
            steps[0] += 1
            return adam_update(self, *args, **kwargs)

        def counted_minimize(self, w, mu, max_iter, s, lr, *args, **kwargs):
            before, t0 = steps[0], time.perf_counter()
            result = minimize(self, w, mu, max_iter, s, lr, *args, **kwargs)
            stages.append(
                {"mu": mu, "s": s, "steps": steps[0] - before, "seconds": time.perf_counter() - t0}
            )
            return result

        DagmaLinear._adam_update, DagmaLinear.minimize = counted_update, counted_minimize
    start = time.perf_counter()
    model = DagmaLinear(loss_type="l2")
    w = model.fit(
        x,
        lambda1=0.02,
        w_threshold=0.3,
        T=5,
        mu_init=1.0,
        mu_factor=0.1,
        s=[1.0, 0.9, 0.8, 0.7, 0.6],
        warm_iter=30000,
        max_iter=60000,
        lr=3e-4,
        checkpoint=1000,
    )
    seconds = time.perf_counter() - start
    result = {"shd": shd(w, truth), "edges": int((w != 0).sum()), "fit_seconds": seconds}
    if count:
        result["stages"] = stages
        result["steps"] = sum(st["steps"] for st in stages)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
