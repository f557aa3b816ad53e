//! Augmented Lagrangian (Powell–Hestenes–Rockafellar) for min f(x) s.t. h(x) = 0, g(x) ≤ 0
//! (optionally with bounds on x), with the NOTEARS schedule.
//!
//! L_ρ(x, α) = f(x) + Σ_eq (αₖhₖ + (ρ/2)hₖ²) + Σ_ineq (max(0, αₖ + ρgₖ)² − αₖ²) / (2ρ).
//! Starting from ρ = ρ₀, α = 0, V_prev = ∞, each dual step re-solves min_x L_ρ from the current
//! point, multiplying ρ by `rho_factor` while V_new > `progress`·V_prev (and V_new > `h_tol`,
//! ρ < ρ_max, and the inner solver did not stop at its iteration limit: the subproblem would only
//! get harder); then
//! αₖ ← αₖ + ρhₖ for equalities and αₖ ← max(0, αₖ + ρgₖ) for inequalities. V is the largest entry
//! of (|h|, max(g, −α/ρ)) (the ∞-norm, so that `h_tol` bounds every component however many there
//! are): zero exactly at a feasible point where every inequality with a positive multiplier is
//! active (for one equality, |h| as in NOTEARS). The loop stops when
//! V ≤ h_tol, ρ ≥ ρ_max, or after `max_outer` dual steps. Stopping at ρ_max with a violation
//! that ρ's last factor of [`INFEASIBLE_GROWTH`] left above half of what it was is
//! [`Status::Infeasible`]: on a feasible problem the violation falls as ρ grows.

use super::options::impl_set_option;
use super::{
    lbfgs, projected_lbfgs, Bounds, Callback, Control, IterInfo, LbfgsOptions, Problem, Report,
    Status,
};

/// The relation of one constraint component to zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Relation {
    /// h(x) = 0.
    Equal,
    /// g(x) ≤ 0.
    AtMost,
}

/// One component's term of L_ρ and its derivative in the component's value `c`.
pub fn penalty(relation: Relation, alpha: f64, rho: f64, c: f64) -> (f64, f64) {
    match relation {
        Relation::Equal => (alpha * c + 0.5 * rho * c * c, alpha + rho * c),
        Relation::AtMost => {
            let w = (alpha + rho * c).max(0.0);
            ((w * w - alpha * alpha) / (2.0 * rho), w)
        }
    }
}

/// One evaluation of L_ρ(·, α).
#[derive(Clone, Copy, Debug)]
pub struct MeritValue {
    /// L_ρ(x, α).
    pub merit: f64,
    /// f(x).
    pub objective: f64,
}

/// A constrained problem as the augmented Lagrangian sees it: its merit L_ρ(·, α) for the
/// multipliers and penalty last set.
pub trait ConstrainedProblem {
    /// Number of variables n.
    fn dim(&self) -> usize;
    /// The relation of each constraint component (one per component).
    fn relations(&self) -> &[Relation];
    /// Sets α (one per component) and ρ for the following evaluations.
    fn set_multipliers(&mut self, alpha: &[f64], rho: f64);
    /// L_ρ(x, α) and f(x); writes ∇ₓL_ρ into `grad` and the constraints' values into
    /// `constraints` (one per component).
    fn merit(&mut self, x: &[f64], grad: &mut [f64], constraints: &mut [f64]) -> MeritValue;
    /// The objective reported at a subproblem's solution x, given f(x) from [`Self::merit`]:
    /// f(x) by default; a problem whose inner solver handles terms outside the merit (a prox)
    /// adds them here, once per dual step rather than per evaluation.
    fn reported_objective(&mut self, _x: &[f64], objective: f64) -> f64 {
        objective
    }
}

/// A [`ConstrainedProblem`] from two closures: f with its gradient, and the constraints with
/// their Jacobian (p×n, row-major).
pub struct FnConstrained<F, H> {
    dim: usize,
    relations: Vec<Relation>,
    objective: F,
    constraints: H,
    alpha: Vec<f64>,
    rho: f64,
    jacobian: Vec<f64>,
}

impl<F, H> FnConstrained<F, H>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
    H: FnMut(&[f64], &mut [f64], &mut [f64]),
{
    pub fn new(dim: usize, relations: Vec<Relation>, objective: F, constraints: H) -> Self {
        let p = relations.len();
        FnConstrained {
            dim,
            relations,
            objective,
            constraints,
            alpha: vec![0.0; p],
            rho: 1.0,
            jacobian: vec![0.0; p * dim],
        }
    }
}

impl<F, H> ConstrainedProblem for FnConstrained<F, H>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
    H: FnMut(&[f64], &mut [f64], &mut [f64]),
{
    fn dim(&self) -> usize {
        self.dim
    }
    fn relations(&self) -> &[Relation] {
        &self.relations
    }
    fn set_multipliers(&mut self, alpha: &[f64], rho: f64) {
        self.alpha.copy_from_slice(alpha);
        self.rho = rho;
    }
    fn merit(&mut self, x: &[f64], grad: &mut [f64], constraints: &mut [f64]) -> MeritValue {
        let objective = (self.objective)(x, grad);
        (self.constraints)(x, constraints, &mut self.jacobian);
        let mut merit = objective;
        for (k, &c) in constraints.iter().enumerate() {
            let (value, weight) = penalty(self.relations[k], self.alpha[k], self.rho, c);
            merit += value;
            let row = &self.jacobian[k * self.dim..(k + 1) * self.dim];
            grad.iter_mut().zip(row).for_each(|(g, j)| *g += weight * j);
        }
        MeritValue { merit, objective }
    }
}

/// The inner solver for each augmented-Lagrangian subproblem.
pub enum InnerSolver<'a> {
    Lbfgs(LbfgsOptions),
    ProjectedLbfgs(LbfgsOptions, Bounds),
    /// A solver of min L_ρ(x, α) + r(x) for a nonsmooth r it handles itself, such as proximal
    /// gradient with its prox (the plan's, for `card` constraints): `solve(subproblem, x0)`.
    Proximal(&'a mut dyn FnMut(&mut dyn Problem, &[f64]) -> Report),
}

impl InnerSolver<'_> {
    fn solve(&mut self, problem: &mut dyn Problem, x0: &[f64]) -> Report {
        let mut silent = |_: &IterInfo| Control::Continue;
        match self {
            InnerSolver::Lbfgs(o) => lbfgs(problem, x0, o, &mut silent),
            InnerSolver::ProjectedLbfgs(o, b) => projected_lbfgs(problem, x0, b, o, &mut silent),
            InnerSolver::Proximal(solve) => solve(problem, x0),
        }
    }

    /// The gradient tolerance below which an L-BFGS solve is not resumed; None for a solver
    /// without a memory to refresh.
    fn resume_tol(&self) -> Option<f64> {
        match self {
            InnerSolver::Lbfgs(o) | InnerSolver::ProjectedLbfgs(o, _) => Some(o.gtol),
            InnerSolver::Proximal(_) => None,
        }
    }
}

/// How many times one subproblem's solve is resumed after a stall (see [`augmented_lagrangian`]).
const MAX_RESUMES: usize = 20;

/// Augmented-Lagrangian options (NOTEARS defaults in parentheses).
#[derive(Clone, Debug)]
pub struct AugLagOptions {
    /// Initial penalty ρ₀ (1).
    pub rho_init: f64,
    /// Penalty growth factor (10).
    pub rho_factor: f64,
    /// Largest penalty ρ_max (1e16).
    pub rho_max: f64,
    /// Required reduction: grow ρ while V_new > progress·V_prev (0.25).
    pub progress: f64,
    /// Tolerance on V, the largest entry of (|h|, max(g, −α/ρ)) (1e-8).
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
    rho_init: positive,
    rho_factor: growth,
    rho_max: positive,
    progress: fraction,
    h_tol: nonnegative,
    max_outer: count,
});

/// The augmented-Lagrangian outcome: `report.value` is f(x), `report.violation` the largest
/// entry of (|h(x)|, max(g(x), 0)), `report.optimality` the last inner solve's optimality
/// measure.
#[derive(Clone, Debug)]
pub struct AugLagReport {
    pub report: Report,
    /// Final multiplier estimate α.
    pub multipliers: Vec<f64>,
    /// Final penalty ρ.
    pub rho: f64,
    /// Total inner iterations.
    pub inner_iterations: usize,
    /// The Lagrangian's gradient ∇f + Σ αₖ∇cₖ at the returned point with the returned
    /// multipliers: the last subproblem's merit gradient there, whose weights αₖ + ρcₖ (clamped
    /// at 0 for inequalities) are the returned α. Where the inner solver has bounds, its entries
    /// at an active bound are that bound's multiplier (signed).
    pub lagrangian_gradient: Vec<f64>,
}

/// The subproblem L_ρ(·, α) as a [`Problem`].
struct Subproblem<'a> {
    inner: &'a mut dyn ConstrainedProblem,
    constraints: Vec<f64>,
}

impl Problem for Subproblem<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn value_grad(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.inner.merit(x, grad, &mut self.constraints).merit
    }
}

fn norm_inf(v: impl Iterator<Item = f64>) -> f64 {
    v.fold(0.0, |m: f64, a| m.max(a.abs()))
}

/// The largest entry of (|h|, max(g, −α/ρ)), the progress measure V.
fn progress_measure(relations: &[Relation], alpha: &[f64], rho: f64, c: &[f64]) -> f64 {
    norm_inf(
        relations
            .iter()
            .zip(alpha)
            .zip(c)
            .map(|((r, a), c)| match r {
                Relation::Equal => *c,
                Relation::AtMost => c.max(-a / rho),
            }),
    )
}

/// The factor of ρ over which a violation that stays above half its value is taken as
/// infeasibility: on a feasible problem it falls like 1/ρ, or like a power of 1/ρ where the
/// constraints are degenerate (NOTEARS's h(W) = 0 falls like ρ^(-2/3)).
pub const INFEASIBLE_GROWTH: f64 = 1e6;

/// Whether the last violation of `trail` ((ρ, violation) of each subproblem) is above
/// 1000·`h_tol` and above half the violation at ρ / [`INFEASIBLE_GROWTH`] or less.
fn stagnated(trail: &[(f64, f64)], h_tol: f64) -> bool {
    let Some(&(rho, violation)) = trail.last() else {
        return false;
    };
    let earlier = trail
        .iter()
        .rev()
        .find(|(r, _)| *r * INFEASIBLE_GROWTH <= rho);
    match earlier {
        Some(&(_, before)) => violation > 1e3 * h_tol && violation > 0.5 * before,
        None => false,
    }
}

/// The largest entry of (|h|, max(g, 0)), the violation of the constraints.
fn infeasibility(relations: &[Relation], c: &[f64]) -> f64 {
    norm_inf(relations.iter().zip(c).map(|(r, c)| match r {
        Relation::Equal => *c,
        Relation::AtMost => c.max(0.0),
    }))
}

/// Solves min f(x) s.t. h(x) = 0, g(x) ≤ 0 from `x0` with the NOTEARS augmented-Lagrangian
/// schedule. The callback sees one [`IterInfo`] per dual step (value f, the violation, step ρ).
pub fn augmented_lagrangian(
    problem: &mut dyn ConstrainedProblem,
    x0: &[f64],
    inner: &mut InnerSolver,
    opts: &AugLagOptions,
    callback: Callback,
) -> AugLagReport {
    let start = DualStart {
        alpha: vec![0.0; problem.relations().len()],
        rho: opts.rho_init,
    };
    augmented_lagrangian_from(problem, x0, start, inner, opts, callback)
}

/// The multipliers and penalty an augmented-Lagrangian solve starts from.
#[derive(Clone, Debug)]
pub struct DualStart {
    /// α, one per constraint component.
    pub alpha: Vec<f64>,
    /// ρ.
    pub rho: f64,
}

/// [`augmented_lagrangian`] from the multipliers and penalty of `start` (those of a nearby
/// problem's solution, to warm start it) instead of α = 0, ρ = ρ₀.
pub fn augmented_lagrangian_from(
    problem: &mut dyn ConstrainedProblem,
    x0: &[f64],
    start: DualStart,
    inner: &mut InnerSolver,
    opts: &AugLagOptions,
    callback: Callback,
) -> AugLagReport {
    let n = problem.dim();
    let relations = problem.relations().to_vec();
    let p = relations.len();
    let piecewise = relations.contains(&Relation::AtMost);
    let DualStart { mut alpha, mut rho } = start;
    let mut x = x0.to_vec();
    let mut measure = f64::INFINITY;
    let mut inner_iterations = 0;
    // The start point's figures stand until a subproblem is solved (`max_outer = 0`).
    let mut grad = vec![0.0; n];
    let mut c = vec![0.0; p];
    problem.set_multipliers(&alpha, rho);
    let start = problem.merit(&x, &mut grad, &mut c);
    let mut last = Report {
        status: Status::MaxIter,
        iterations: 0,
        value: problem.reported_objective(&x, start.objective),
        optimality: norm_inf(grad.iter().copied()),
        violation: infeasibility(&relations, &c),
        x: x.clone(),
    };
    let mut status = Status::MaxIter;
    // (ρ, violation) of every subproblem solved, for the infeasibility test.
    let mut trail: Vec<(f64, f64)> = Vec::new();
    let mut outer = 0;
    while outer < opts.max_outer {
        outer += 1;
        let (c, new_measure, inner_report) = loop {
            problem.set_multipliers(&alpha, rho);
            let mut sub = Subproblem {
                inner: &mut *problem,
                constraints: vec![0.0; p],
            };
            let mut solved = inner.solve(&mut sub, &x);
            inner_iterations += solved.iterations;
            // With inequalities the merit is only piecewise smooth, and L-BFGS can stall on a
            // negligible decrease far from stationarity, its memory holding curvature of
            // another piece: resume from a fresh memory while that makes progress.
            if let (true, Some(tol)) = (piecewise, inner.resume_tol()) {
                for _ in 0..MAX_RESUMES {
                    if solved.status != Status::Converged || solved.optimality <= tol {
                        break;
                    }
                    let resumed = inner.solve(&mut sub, &solved.x);
                    inner_iterations += resumed.iterations;
                    if resumed.value >= solved.value {
                        break;
                    }
                    solved = resumed;
                }
            }
            let mut c = vec![0.0; p];
            let value = problem.merit(&solved.x, &mut grad, &mut c);
            let new_measure = progress_measure(&relations, &alpha, rho, &c);
            let report = Report {
                value: problem.reported_objective(&solved.x, value.objective),
                violation: infeasibility(&relations, &c),
                ..solved
            };
            trail.push((rho, report.violation));
            // A subproblem the inner solver could not solve within its iterations only gets
            // harder with a larger ρ: then the dual step is taken at this ρ. So it is once V
            // meets `h_tol`, where too little progress no longer matters.
            let solved_inner = report.status != Status::MaxIter;
            let short = new_measure > opts.h_tol && new_measure > opts.progress * measure;
            if solved_inner && short && rho < opts.rho_max {
                rho *= opts.rho_factor;
            } else {
                break (c, new_measure, report);
            }
        };
        // A diverged subproblem ends the solve at its last iterate, where the diagnostics look
        // for what ran off (a value that is not finite, iterates beyond 1e20).
        x.copy_from_slice(&inner_report.x);
        if matches!(inner_report.status, Status::Diverged) {
            last = inner_report;
            status = Status::Diverged;
            break;
        }
        measure = new_measure;
        for ((a, r), c) in alpha.iter_mut().zip(&relations).zip(&c) {
            *a = match r {
                Relation::Equal => *a + rho * c,
                Relation::AtMost => (*a + rho * c).max(0.0),
            };
        }
        last = inner_report;
        let info = IterInfo {
            iter: outer,
            value: last.value,
            optimality: last.optimality,
            violation: last.violation,
            step: rho,
        };
        if callback(&info) == Control::Stop {
            status = Status::Interrupted;
            break;
        }
        // Feasible is not enough: an L-BFGS subproblem stopped by its iteration limit is not
        // solved, and goes on from here at the next dual step. (A proximal subproblem with a
        // nonconvex set, `card`, seldom meets its tolerance: its feasible point stands.)
        let unsolved = last.status == Status::MaxIter && inner.resume_tol().is_some();
        if measure <= opts.h_tol && !unsolved {
            status = Status::Converged;
            break;
        }
        if rho >= opts.rho_max {
            if stagnated(&trail, opts.h_tol) {
                status = Status::Infeasible;
            }
            break;
        }
    }
    last.status = status;
    last.iterations = outer;
    last.x = x;
    AugLagReport {
        report: last,
        multipliers: alpha,
        rho,
        inner_iterations,
        lagrangian_gradient: grad,
    }
}
