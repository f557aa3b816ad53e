//! Projected L-BFGS for bound constraints l ≤ x ≤ u.
//!
//! Algorithm (a simple L-BFGS-B relative, in the spirit of projected quasi-Newton methods):
//! 1. The active set holds the variables at a bound whose gradient points outwards
//!    (x_i = l_i with g_i > 0, or x_i = u_i with g_i < 0); all others are free.
//! 2. The direction is the L-BFGS two-loop recursion applied to the gradient restricted to the
//!    free variables (active components of d are 0); if it is not a descent direction the memory
//!    is cleared and d = −g on the free variables.
//! 3. Projected backtracking: x(α) = P(x + αd), α halved until the Armijo condition
//!    f(x(α)) ≤ f(x) + c1·∇f(x)ᵀ(x(α) − x) holds with ∇f(x)ᵀ(x(α) − x) < 0; non-finite values
//!    backtrack. If backtracking fails along a quasi-Newton direction, steepest descent is tried.
//! 4. The pair (s, y) enters the memory when sᵀy > 0.
//!
//! Stops when the projected-gradient norm ‖P(x − ∇f) − x‖∞ ≤ gtol or on a small relative decrease.

use super::lbfgs::Memory;
use super::{
    dot, small_relative_decrease, Callback, Control, IterInfo, LbfgsOptions, Problem, Report,
    Status,
};

/// Box bounds; entries may be ±∞.
#[derive(Clone, Debug, PartialEq)]
pub struct Bounds {
    lower: Vec<f64>,
    upper: Vec<f64>,
}

impl Bounds {
    /// Bounds from per-variable limits; errors if lengths differ or some lower > upper or is NaN.
    pub fn new(lower: Vec<f64>, upper: Vec<f64>) -> Result<Self, String> {
        if lower.len() != upper.len() {
            return Err(format!(
                "bounds have {} lower and {} upper entries",
                lower.len(),
                upper.len()
            ));
        }
        if let Some(i) = (0..lower.len()).find(|&i| !(lower[i] <= upper[i])) {
            return Err(format!("bound {i}: lower {} > upper {}", lower[i], upper[i]));
        }
        Ok(Bounds { lower, upper })
    }

    /// x ≥ 0 for `n` variables.
    pub fn nonneg(n: usize) -> Self {
        Bounds { lower: vec![0.0; n], upper: vec![f64::INFINITY; n] }
    }

    /// No bounds for `n` variables.
    pub fn unbounded(n: usize) -> Self {
        Bounds { lower: vec![f64::NEG_INFINITY; n], upper: vec![f64::INFINITY; n] }
    }

    pub fn len(&self) -> usize {
        self.lower.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lower.is_empty()
    }

    pub fn lower(&self) -> &[f64] {
        &self.lower
    }

    pub fn upper(&self) -> &[f64] {
        &self.upper
    }

    /// Clamps `x` into the box in place.
    pub fn project(&self, x: &mut [f64]) {
        for ((xi, l), u) in x.iter_mut().zip(&self.lower).zip(&self.upper) {
            *xi = xi.clamp(*l, *u);
        }
    }

    /// ‖P(x − g) − x‖∞, the first-order optimality measure for the box.
    pub fn projected_gradient_norm(&self, x: &[f64], g: &[f64]) -> f64 {
        (0..x.len())
            .map(|i| ((x[i] - g[i]).clamp(self.lower[i], self.upper[i]) - x[i]).abs())
            .fold(0.0, f64::max)
    }

    fn free_mask(&self, x: &[f64], g: &[f64]) -> Vec<bool> {
        (0..x.len())
            .map(|i| !((x[i] <= self.lower[i] && g[i] > 0.0) || (x[i] >= self.upper[i] && g[i] < 0.0)))
            .collect()
    }
}

/// Minimises `problem` over `bounds` from `x0` (projected onto the box first).
/// Returns `Status::Diverged` with `x0` if `bounds` has the wrong length.
pub fn projected_lbfgs(
    problem: &mut dyn Problem,
    x0: &[f64],
    bounds: &Bounds,
    opts: &LbfgsOptions,
    callback: Callback,
) -> Report {
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut g = vec![0.0; n];
    let report = |status, iterations, x: Vec<f64>, f: f64, optimality: f64| Report {
        status,
        iterations,
        value: f,
        optimality,
        violation: 0.0,
        x,
    };
    if bounds.len() != n {
        return report(Status::Diverged, 0, x, f64::NAN, f64::NAN);
    }
    bounds.project(&mut x);
    let mut f = problem.value_grad(&x, &mut g);
    if !f.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return report(Status::Diverged, 0, x, f, f64::NAN);
    }
    let mut memory = Memory::new(opts.memory);
    let mut d = vec![0.0; n];
    let mut x_trial = vec![0.0; n];
    let mut g_trial = vec![0.0; n];
    for iter in 1..=opts.max_iter {
        let optimality = bounds.projected_gradient_norm(&x, &g);
        if optimality <= opts.gtol {
            return report(Status::Converged, iter - 1, x, f, optimality);
        }
        let free = bounds.free_mask(&x, &g);
        let accepted = loop {
            memory.direction(&g, Some(&free), &mut d);
            if !(dot(&g, &d) < 0.0) && !memory.is_empty() {
                memory.clear();
                continue;
            }
            let scale = d.iter().fold(0.0, |m: f64, v| m.max(v.abs()));
            let mut alpha = if memory.is_empty() { (1.0 / scale).min(1.0) } else { 1.0 };
            let mut found = None;
            for _ in 0..opts.max_linesearch {
                for i in 0..n {
                    x_trial[i] = x[i] + alpha * d[i];
                }
                bounds.project(&mut x_trial);
                let predicted: f64 = (0..n).map(|i| g[i] * (x_trial[i] - x[i])).sum();
                if !(predicted < 0.0) {
                    break;
                }
                let value = problem.value_grad(&x_trial, &mut g_trial);
                if value.is_finite() && value <= f + opts.c1 * predicted {
                    found = Some((alpha, value));
                    break;
                }
                alpha *= 0.5;
            }
            match found {
                Some(step) => break Some(step),
                None if !memory.is_empty() => memory.clear(),
                None => break None,
            }
        };
        let Some((alpha, value)) = accepted else {
            return report(Status::LineSearchFailed, iter - 1, x, f, optimality);
        };
        let s: Vec<f64> = x_trial.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_trial.iter().zip(&g).map(|(a, b)| a - b).collect();
        memory.push(s, y);
        let f_prev = f;
        std::mem::swap(&mut x, &mut x_trial);
        std::mem::swap(&mut g, &mut g_trial);
        f = value;
        let optimality = bounds.projected_gradient_norm(&x, &g);
        let info = IterInfo { iter, value: f, optimality, violation: 0.0, step: alpha };
        if callback(&info) == Control::Stop {
            return report(Status::Interrupted, iter, x, f, optimality);
        }
        if optimality <= opts.gtol || small_relative_decrease(f_prev, f, opts.ftol) {
            return report(Status::Converged, iter, x, f, optimality);
        }
    }
    let optimality = bounds.projected_gradient_norm(&x, &g);
    report(Status::MaxIter, opts.max_iter, x, f, optimality)
}
