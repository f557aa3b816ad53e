//! Numerical solvers over closures: the shared interface (problems, reports, progress callbacks,
//! options) and the algorithms (L-BFGS, L-BFGS-B for bounds, proximal gradient / FISTA, Adam,
//! augmented Lagrangian, the DAGMA / CoLiDE central path, MAID for bilevel problems).
//!
//! Solvers never print: each iteration is reported to a `&mut dyn FnMut(&IterInfo) -> Control`
//! callback, and returning [`Control::Stop`] ends the solve with [`Status::Interrupted`].

/// Iterates larger than this in magnitude (while the objective falls) end a quasi-Newton solve
/// as diverging: the problem is most likely unbounded below (Ipopt's test, at its default).
pub const DIVERGING: f64 = 1e20;

mod adam;
mod auglag;
mod dagma;
mod lbfgs;
mod lbfgsb;
mod maid;
mod more_thuente;
pub(crate) mod options;
mod proxgrad;
mod vectors;

pub use adam::{adam, adam_in, adam_within, AdamOptions, AdamState, Iterates};
pub use auglag::{
    augmented_lagrangian, augmented_lagrangian_from, penalty, AugLagOptions, AugLagReport,
    ConstrainedProblem, DualStart, FnConstrained, InnerSolver, MeritValue, Relation,
};
pub use dagma::{
    central_path, colide_sigma_ev, colide_sigma_nv, concomitant_scale, AdamConstants, AdamIterates,
    FnPathObjective, HostAdam, PathInner, PathObjective, PathOptions, PathReport,
};
pub use lbfgs::{lbfgs, lbfgs_in, LbfgsOptions};
pub use lbfgsb::{projected_lbfgs, Bounds};
pub use maid::{maid, AccuracyStep, BilevelProblem, MaidError, MaidOptions, MaidReport};
pub(crate) use options::did_you_mean;
pub use options::{OptionError, SetOption};
pub use proxgrad::{
    proximal_gradient, proximal_gradient_in, FnRegularizer, L1Penalty, ProxGradOptions, Regularizer,
};
pub use vectors::{ProxVectors, Slot, Vectors};

/// A smooth objective: value and gradient at a point.
pub trait Problem {
    /// Number of variables.
    fn dim(&self) -> usize;
    /// Returns f(x) and writes ∇f(x) into `grad` (same length as `x`).
    fn value_grad(&mut self, x: &[f64], grad: &mut [f64]) -> f64;
}

/// A [`Problem`] given by a closure `(x, grad) -> value`.
pub struct FnProblem<F> {
    dim: usize,
    f: F,
}

impl<F: FnMut(&[f64], &mut [f64]) -> f64> FnProblem<F> {
    /// Wraps `f` as a problem in `dim` variables.
    pub fn new(dim: usize, f: F) -> Self {
        FnProblem { dim, f }
    }
}

impl<F: FnMut(&[f64], &mut [f64]) -> f64> Problem for FnProblem<F> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn value_grad(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        (self.f)(x, grad)
    }
}

/// Why a solver stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The optimality (or feasibility) tolerance was met.
    Converged,
    /// The iteration budget ran out first.
    MaxIter,
    /// No acceptable step was found along the search direction.
    LineSearchFailed,
    /// The objective became non-finite (or the start point had a non-finite objective).
    Diverged,
    /// The constraint violation stopped decreasing while the penalty grew by a factor of at
    /// least 10⁶ (the augmented Lagrangian): the constraints are likely contradictory.
    Infeasible,
    /// The solver stopped on a negligible decrease with its optimality above its tolerance,
    /// where it differentiates a kink (set by the plan, not by the solvers): the point may not
    /// be a minimum.
    Stalled,
    /// The progress callback asked to stop.
    Interrupted,
}

/// The outcome of a solve.
#[derive(Clone, Debug)]
pub struct Report {
    pub status: Status,
    /// Iterations performed (outer iterations for the augmented Lagrangian, Adam steps for the path).
    pub iterations: usize,
    /// Objective value at `x` (including the nonsmooth part for proximal methods).
    pub value: f64,
    /// First-order optimality measure at `x`: ‖∇f‖∞, the prox-gradient mapping norm, or the
    /// projected-gradient norm, depending on the solver.
    pub optimality: f64,
    /// Constraint violation at `x` (the largest entry of (|h(x)|, max(g(x), 0)) for the augmented
    /// Lagrangian, h^s for the DAG path, else 0).
    pub violation: f64,
    /// The returned point.
    pub x: Vec<f64>,
}

impl Report {
    /// The report of a solver without constraints (violation 0).
    pub(crate) fn unconstrained(
        status: Status,
        iterations: usize,
        value: f64,
        optimality: f64,
        x: Vec<f64>,
    ) -> Report {
        Report {
            status,
            iterations,
            value,
            optimality,
            violation: 0.0,
            x,
        }
    }
}

/// Progress information passed to the callback once per iteration.
#[derive(Clone, Copy, Debug)]
pub struct IterInfo {
    pub iter: usize,
    pub value: f64,
    pub optimality: f64,
    pub violation: f64,
    /// Step length accepted in this iteration (penalty ρ for augmented-Lagrangian outer steps).
    pub step: f64,
}

/// What the callback wants the solver to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// The progress callback type used by every solver.
pub type Callback<'a> = &'a mut dyn FnMut(&IterInfo) -> Control;

/// xᵀy with four partial sums, which the compiler vectorizes (a single running sum is one
/// dependent addition per entry); the solvers' own work
/// over all n variables is mostly such products.
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0; 4];
    for (a4, b4) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for k in 0..4 {
            lanes[k] += a4[k] * b4[k];
        }
    }
    let tail = n - n % 4;
    let rest: f64 = (tail..n).map(|i| a[i] * b[i]).sum();
    (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]) + rest
}

pub(crate) fn norm_inf(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Relative decrease test shared by the quasi-Newton solvers:
/// (f_prev − f) ≤ tol · max(|f_prev|, |f|, 1).
pub(crate) fn small_relative_decrease(f_prev: f64, f: f64, tol: f64) -> bool {
    f_prev - f <= tol * f_prev.abs().max(f.abs()).max(1.0)
}
