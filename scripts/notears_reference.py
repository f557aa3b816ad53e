"""Linear NOTEARS (Zheng et al. 2018) in numpy/scipy, as the authors' `notears_linear` runs it:
the peer of examples/dag/notears.opt in scripts/bench-dagma.sh (PEER=notears).

Least squares 0.5/n ||X - X W||^2 (X centred) plus lambda1 |W|_1, subject to
h(W) = tr(exp(W * W)) - d = 0, by the augmented Lagrangian: each inner problem is solved by
scipy's L-BFGS-B on W = W+ - W- with W+, W- >= 0 (the L1 term becomes linear) and the diagonal
fixed at 0; rho grows tenfold while h does not fall below a quarter of its last value; the dual
step is alpha += rho h; stop at h <= h_tol or rho >= rho_max; threshold |W| < w_threshold to 0.
Written from the paper and the published defaults, not copied.
"""
import numpy as np
import scipy.linalg as sla
import scipy.optimize as sopt


def notears_linear(x, lambda1, max_iter=100, h_tol=1e-8, rho_max=1e16, w_threshold=0.3):
    n, d = x.shape
    x = x - x.mean(axis=0, keepdims=True)

    def unpack(z):
        return (z[: d * d] - z[d * d :]).reshape(d, d)

    def loss(w):
        r = x - x @ w
        return 0.5 / n * (r**2).sum(), -1.0 / n * x.T @ r

    def acyclicity(w):
        e = sla.expm(w * w)
        return np.trace(e) - d, e.T * w * 2

    def merit(z, rho, alpha):
        w = unpack(z)
        f, g_loss = loss(w)
        h, g_h = acyclicity(w)
        value = f + 0.5 * rho * h * h + alpha * h + lambda1 * z.sum()
        g = g_loss + (rho * h + alpha) * g_h
        return value, np.concatenate([g.ravel() + lambda1, -g.ravel() + lambda1])

    # W+ and W- are >= 0; their diagonals are held at 0 (no self-loops).
    bounds = [(0, 0) if i == j else (0, None) for _ in range(2) for i in range(d) for j in range(d)]
    z, rho, alpha, h = np.zeros(2 * d * d), 1.0, 0.0, np.inf
    for _ in range(max_iter):
        while rho < rho_max:
            solution = sopt.minimize(
                merit, z, args=(rho, alpha), method="L-BFGS-B", jac=True, bounds=bounds
            )
            z_new = solution.x
            h_new, _ = acyclicity(unpack(z_new))
            if h_new > 0.25 * h:
                rho *= 10
            else:
                break
        z, h = z_new, h_new
        alpha += rho * h
        if h <= h_tol or rho >= rho_max:
            break
    w = unpack(z)
    w[np.abs(w) < w_threshold] = 0
    return w
