#!/usr/bin/env bash
# Regenerates the data files of examples/ with optc's seeded simulator.
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
"$optc" simulate dag --n 200 --d 10 --graph er --degree 2 --noise gauss --seed 1 --out "$out"

# Regression (regression/lasso.opt, regression/ridge.opt): X_reg.npy, y_reg.npy, w_true_reg.npy
"$optc" simulate regression --n 100 --p 20 --nonzeros 5 --noise 0.5 --seed 2 --out "$out"

# Optimal transport (ot/sparse_ot.opt): a.npy, b.npy, C.npy
"$optc" simulate ot --m 20 --n 20 --seed 3 --out "$out"

# Bilevel TV denoising (bilevel/tv_denoise.opt): y.npy, x_clean.npy
"$optc" simulate denoise --n 64 --noise 0.1 --seed 4 --out "$out"
