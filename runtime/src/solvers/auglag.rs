//! Augmented Lagrangian for min f(x) s.t. h(x) = 0 (optionally with bounds), NOTEARS schedule.
//!
//! L_ρ(x, α) = f(x) + αᵀh(x) + (ρ/2)‖h(x)‖². Starting from ρ = ρ₀, α = 0, ‖h_prev‖ = ∞, each
//! dual step re-solves min_x L_ρ from the current point, multiplying ρ by `rho_factor` while
//! ‖h_new‖ > `progress`·‖h_prev‖ (and ρ < ρ_max); then α ← α + ρ·h_new. The loop stops when
//! ‖h‖ ≤ h_tol, ρ ≥ ρ_max, or after `max_outer` dual steps.

use super::options::impl_set_option;
use super::{
    lbfgs, projected_lbfgs, Bounds, Callback, Control, IterInfo, LbfgsOptions, Problem, Report,
    Status,
};

/// An equality-constrained problem: objective f and constraints h: Rⁿ → Rᵖ.
pub trait ConstrainedProblem {
    /// Number of variables n.
    fn dim(&self) -> usize;
    /// Number of equality constraints p.
    fn num_constraints(&self) -> usize;
    /// Returns f(x) and writes ∇f(x) into `grad`.
    fn objective(&mut self, x: &[f64], grad: &mut [f64]) -> f64;
    /// Writes h(x) into `h` (length p) and the Jacobian into `jacobian` (p×n, row-major).
    fn constraints(&mut self, x: &[f64], h: &mut [f64], jacobian: &mut [f64]);
}

/// A [`ConstrainedProblem`] from two closures.
pub struct FnConstrained<F, H> {
    pub dim: usize,
    pub num_constraints: usize,
    pub objective: F,
    pub constraints: H,
}

impl<F, H> ConstrainedProblem for FnConstrained<F, H>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
    H: FnMut(&[f64], &mut [f64], &mut [f64]),
{
    fn dim(&self) -> usize {
        self.dim
    }
    fn num_constraints(&self) -> usize {
        self.num_constraints
    }
    fn objective(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        (self.objective)(x, grad)
    }
    fn constraints(&mut self, x: &[f64], h: &mut [f64], jacobian: &mut [f64]) {
        (self.constraints)(x, h, jacobian)
    }
}

/// The inner solver for each augmented-Lagrangian subproblem.
#[derive(Clone, Debug)]
pub enum InnerSolver {
    Lbfgs(LbfgsOptions),
    ProjectedLbfgs(LbfgsOptions, Bounds),
}

/// Augmented-Lagrangian options (NOTEARS defaults in parentheses).
#[derive(Clone, Debug)]
pub struct AugLagOptions {
    /// Initial penalty ρ₀ (1).
    pub rho_init: f64,
    /// Penalty growth factor (10).
    pub rho_factor: f64,
    /// Largest penalty ρ_max (1e16).
    pub rho_max: f64,
    /// Required reduction: grow ρ while ‖h_new‖ > progress·‖h_prev‖ (0.25).
    pub progress: f64,
    /// Feasibility tolerance on ‖h‖₂ (1e-8).
    pub h_tol: f64,
    /// Maximum dual steps (100).
    pub max_outer: usize,
}

impl Default for AugLagOptions {
    fn default() -> Self {
        AugLagOptions {
            rho_init: 1.0,
            rho_factor: 10.0,
            rho_max: 1e16,
            progress: 0.25,
            h_tol: 1e-8,
            max_outer: 100,
        }
    }
}

impl_set_option!(AugLagOptions {
    rho_init: float,
    rho_factor: float,
    rho_max: float,
    progress: float,
    h_tol: float,
    max_outer: count,
});

/// The augmented-Lagrangian outcome: `report.value` is f(x), `report.violation` is ‖h(x)‖₂,
/// `report.optimality` the last inner solve's optimality measure.
#[derive(Clone, Debug)]
pub struct AugLagReport {
    pub report: Report,
    /// Final multiplier estimate α.
    pub multipliers: Vec<f64>,
    /// Final penalty ρ.
    pub rho: f64,
    /// Total inner iterations.
    pub inner_iterations: usize,
}

/// The subproblem L_ρ(·, α) as a [`Problem`]; also records f and h at the last evaluation.
struct Subproblem<'a> {
    inner: &'a mut dyn ConstrainedProblem,
    rho: f64,
    alpha: &'a [f64],
    h: Vec<f64>,
    jacobian: Vec<f64>,
}

impl Subproblem<'_> {
    /// f(x) and h(x) (stored in `self.h`) at `x`.
    fn evaluate(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        let f = self.inner.objective(x, grad);
        self.inner.constraints(x, &mut self.h, &mut self.jacobian);
        f
    }
}

impl Problem for Subproblem<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn value_grad(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        let f = self.evaluate(x, grad);
        let n = x.len();
        let mut value = f;
        for (k, hk) in self.h.iter().enumerate() {
            let weight = self.alpha[k] + self.rho * hk;
            value += self.alpha[k] * hk + 0.5 * self.rho * hk * hk;
            let row = &self.jacobian[k * n..(k + 1) * n];
            grad.iter_mut().zip(row).for_each(|(g, j)| *g += weight * j);
        }
        value
    }
}

fn norm2(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

/// Solves min f(x) s.t. h(x) = 0 from `x0` with the NOTEARS augmented-Lagrangian schedule.
/// The callback sees one [`IterInfo`] per dual step (value f, violation ‖h‖, step ρ).
pub fn augmented_lagrangian(
    problem: &mut dyn ConstrainedProblem,
    x0: &[f64],
    inner: &InnerSolver,
    opts: &AugLagOptions,
    callback: Callback,
) -> AugLagReport {
    let n = problem.dim();
    let p = problem.num_constraints();
    let mut alpha = vec![0.0; p];
    let mut rho = opts.rho_init;
    let mut x = x0.to_vec();
    let mut h_norm = f64::INFINITY;
    let mut inner_iterations = 0;
    let mut last = Report {
        status: Status::MaxIter,
        iterations: 0,
        value: f64::NAN,
        optimality: f64::NAN,
        violation: f64::INFINITY,
        x: x.clone(),
    };
    let mut status = Status::MaxIter;
    let mut outer = 0;
    while outer < opts.max_outer {
        outer += 1;
        let (x_new, h_new, inner_report) = loop {
            let mut sub = Subproblem {
                inner: &mut *problem,
                rho,
                alpha: &alpha,
                h: vec![0.0; p],
                jacobian: vec![0.0; p * n],
            };
            let mut silent = |_: &IterInfo| Control::Continue;
            let solved = match inner {
                InnerSolver::Lbfgs(o) => lbfgs(&mut sub, &x, o, &mut silent),
                InnerSolver::ProjectedLbfgs(o, b) => {
                    projected_lbfgs(&mut sub, &x, b, o, &mut silent)
                }
            };
            inner_iterations += solved.iterations;
            let mut grad = vec![0.0; n];
            let f = sub.evaluate(&solved.x, &mut grad);
            let h_new = sub.h.clone();
            let report = Report { value: f, violation: norm2(&h_new), ..solved };
            if norm2(&h_new) > opts.progress * h_norm && rho < opts.rho_max {
                rho *= opts.rho_factor;
            } else {
                break (report.x.clone(), h_new, report);
            }
        };
        if matches!(inner_report.status, Status::Diverged) {
            last = inner_report;
            status = Status::Diverged;
            break;
        }
        x = x_new;
        h_norm = norm2(&h_new);
        alpha.iter_mut().zip(&h_new).for_each(|(a, h)| *a += rho * h);
        last = inner_report;
        let info = IterInfo {
            iter: outer,
            value: last.value,
            optimality: last.optimality,
            violation: h_norm,
            step: rho,
        };
        if callback(&info) == Control::Stop {
            status = Status::Interrupted;
            break;
        }
        if h_norm <= opts.h_tol {
            status = Status::Converged;
            break;
        }
        if rho >= opts.rho_max {
            break;
        }
    }
    last.status = status;
    last.iterations = outer;
    last.x = x;
    AugLagReport { report: last, multipliers: alpha, rho, inner_iterations }
}
