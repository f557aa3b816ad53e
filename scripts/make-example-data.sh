#!/usr/bin/env bash
# Regenerates the data files of examples/ with optc's seeded simulator (see spec/cli.md, `simulate`).
# Usage: scripts/make-example-data.sh [path/to/optc]   (default: target/release/optc, else optc on PATH)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
optc="${1:-}"
if [[ -z "$optc" ]]; then
  if [[ -x "$root/target/release/optc" ]]; then optc="$root/target/release/optc"; else optc=optc; fi
fi
out="$root/examples/data"
mkdir -p "$out"

# DAG learning (dag/notears.opt, dag/dagma.opt, dag/colide.opt): X.npy, W_true.npy
# n = 200 samples, d = 10 nodes, Erdos-Renyi with 2d = 20 edges (ER2), Gaussian equal-variance noise.
"$optc" simulate dag --n 200 --d 10 --graph ER --edges 20 --noise gauss --seed 1 --out "$out"

# Sparse regression (regression/lasso.opt, regression/ridge.opt): X_reg.npy, y_reg.npy, w_true_reg.npy
"$optc" simulate regression --n 100 --p 20 --seed 2 --out "$out"

# Optimal transport (ot/sparse_ot.opt): a.npy, b.npy, C.npy with m = n = 20
"$optc" simulate ot --p 20 --seed 3 --out "$out"

# Bilevel TV denoising (bilevel/tv_denoise.opt): y.npy, x_clean.npy with N = 64
"$optc" simulate denoise --n 64 --seed 4 --out "$out"

# Portfolios (finance/portfolio.opt, finance/index_tracking.opt, finance/sparse_portfolio.opt; bilevel/ridge_cv.opt): R.npy, 250 periods of returns of 20 assets
"$optc" simulate portfolio --n 250 --p 20 --seed 5 --out "$out"

# Isotonic regression (regression/isotonic.opt): y_iso.npy, f_iso.npy, 200 samples of a logistic curve
"$optc" simulate isotonic --n 200 --seed 6 --out "$out"

# Graphical lasso (covariance/graphical_lasso.opt): S_ggm.npy, X_ggm.npy, Theta_true.npy, 1000 samples of 20 variables
"$optc" simulate ggm --n 1000 --p 20 --seed 7 --out "$out"
