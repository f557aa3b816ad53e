"""Peers of `optc bench` for the DAGMA objective: value and gradient of

    f(W) = 0.5/n ||X - X W||_F^2 + lambda1 ||W||_1 - log det(s I - W*W) + d log s

(s = 1, lambda1 = 0.02), f64, on one thread, by
  - JAX: jit(value_and_grad(f)), first call timed apart (trace + compile);
  - numpy, hand-written gradient as usually written (X W every call);
  - numpy, hand-written and staged by hand (Sigma = X^T X / n once; O(d^3) per call).
Timing: one warm-up call, then 3 to 15 batches filling about --time-ms; median batch.
Prints one JSON object per d on stdout. Used by scripts/bench-cpu.sh; not part of optc.
"""

import argparse
import json
import time

import numpy as np


def median_seconds(f, budget):
    f()
    t = time.perf_counter()
    f()
    one = max(time.perf_counter() - t, 1e-7)
    total = budget / one
    batches = int(min(max(total, 3), 15))
    batch = max(int(total / batches), 1)
    times = []
    for _ in range(batches):
        t = time.perf_counter()
        for _ in range(batch):
            f()
        times.append((time.perf_counter() - t) / batch)
    times.sort()
    return times[len(times) // 2]


def numpy_value_grad(X, W, lam, s):
    n, d = X.shape
    R = X - X @ W
    M = s * np.eye(d) - W * W
    sign, logdet = np.linalg.slogdet(M)
    value = 0.5 / n * np.sum(R * R) + lam * np.abs(W).sum() - logdet + d * np.log(s)
    grad = -X.T @ R / n + lam * np.sign(W) + 2.0 * W * np.linalg.inv(M).T
    return value, grad


def numpy_staged_value_grad(Sigma, W, lam, s):
    d = W.shape[0]
    A = np.eye(d) - W
    SA = Sigma @ A
    M = s * np.eye(d) - W * W
    sign, logdet = np.linalg.slogdet(M)
    value = 0.5 * np.sum(A * SA) + lam * np.abs(W).sum() - logdet + d * np.log(s)
    grad = -SA + lam * np.sign(W) + 2.0 * W * np.linalg.inv(M).T
    return value, grad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--d", type=int, nargs="+", default=[20, 100, 500])
    ap.add_argument("--time-ms", type=float, default=2000)
    args = ap.parse_args()
    budget = args.time_ms / 1e3
    lam, s = 0.02, 1.0

    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    for d in args.d:
        rng = np.random.default_rng(d)
        X = rng.standard_normal((args.n, d))
        W = 0.01 * rng.standard_normal((d, d))
        Xj, Wj = jnp.asarray(X), jnp.asarray(W)

        def f(W):
            R = Xj - Xj @ W
            M = s * jnp.eye(d) - W * W
            return (
                0.5 / args.n * jnp.sum(R * R)
                + lam * jnp.sum(jnp.abs(W))
                - jnp.linalg.slogdet(M)[1]
                + d * jnp.log(s)
            )

        vg = jax.jit(jax.value_and_grad(f))
        t = time.perf_counter()
        jax.block_until_ready(vg(Wj))
        jax_first = time.perf_counter() - t
        jax_s = median_seconds(lambda: jax.block_until_ready(vg(Wj)), budget)

        # The three agree (a check that each peer computes the same function).
        v0, g0 = numpy_value_grad(X, W, lam, s)
        Sigma = X.T @ X / args.n
        v1, g1 = numpy_staged_value_grad(Sigma, W, lam, s)
        vj, gj = vg(Wj)
        assert abs(v0 - v1) <= 1e-8 * abs(v0) and np.allclose(g0, g1, atol=1e-8)
        assert abs(v0 - float(vj)) <= 1e-8 * abs(v0) and np.allclose(g0, np.asarray(gj), atol=1e-8)

        np_s = median_seconds(lambda: numpy_value_grad(X, W, lam, s), budget)
        np_staged_s = median_seconds(lambda: numpy_staged_value_grad(Sigma, W, lam, s), budget)
        print(
            json.dumps(
                {
                    "d": d,
                    "n": args.n,
                    "jax_first_call_s": jax_first,
                    "jax_value_grad_per_s": 1 / jax_s,
                    "numpy_value_grad_per_s": 1 / np_s,
                    "numpy_staged_value_grad_per_s": 1 / np_staged_s,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
