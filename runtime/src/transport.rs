//! `solve with dual`: regularized optimal transport with at most k nonzeros per column, solved
//! through its concave dual (Liu, Puigcerver, Blondel 2023).
//!
//! The model is in the transport form of `optc_compiler::transport` (min ⟨C, T⟩ + (γ/2)‖T‖² over
//! T ≥ 0 with T·1 = a, Tᵀ·1 = b and card(T[:, j]) ≤ k). The problem is written here over
//! *units*: the columns of T when the sparsity bound is per column (or absent), its rows when it
//! is per row; each unit j has a cost vector c_j, a mass b_j and the units' other marginal is a.
//! Both duals below are minimized as their negatives by L-BFGS and share one formula: with
//! s_j = α + β_j − c_j (β = 0 in the semi-dual), each unit's plan is the projection
//!
//!   t_j = Proj_S(s_j / γ),   S = {t ≥ 0, ‖t‖₀ ≤ k}                       (full dual)
//!                            S = {t ≥ 0, ‖t‖₀ ≤ k, Σt = b_j}              (semi-dual)
//!
//! and contributes ⟨t_j, s_j⟩ − (γ/2)‖t_j‖² (the conjugate of the unit's regularizer at s_j),
//! so that
//!
//!   −D(α, β) = −⟨α, a⟩ − ⟨β, b⟩ + Σ_j [⟨t_j, s_j⟩ − (γ/2)‖t_j‖²],
//!   ∇_α = Σ_j t_j − a,   ∇_β_j = Σ t_j − b_j   (Danskin: no derivative through the projection).
//!
//! The plan T is the t_j at the dual solution. For 1 < k < m the dual is a relaxation: T meets the
//! sparsity exactly but may violate the marginals a little; `D` is a lower bound on the primal
//! optimum either way (weak duality), which the solve reports.

use crate::model::Model;
use crate::plan::Plan;
use crate::prox::{project_nonneg_sparse, project_sparse_simplex};
use crate::solvers::{lbfgs, Callback, Control, FnProblem, IterInfo, LbfgsOptions, Report, Status};
use optc_compiler::diag::Diagnostic;
use optc_compiler::transport::{TransportForm, Weighted};

/// Which dual `solve with dual(form = ...)` maximizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DualForm {
    /// Over α only: each unit's marginal is met exactly by its sparse-simplex projection.
    Semi,
    /// Over α and β.
    Full,
}

impl DualForm {
    pub fn parse(name: &str) -> Option<DualForm> {
        match name {
            "semi" => Some(DualForm::Semi),
            "full" => Some(DualForm::Full),
            _ => None,
        }
    }
}

/// A transport problem over units (see the module docs), with its numbers evaluated.
#[derive(Clone, Debug)]
pub struct Transport {
    /// Number of units (n) and the length of each (m).
    pub units: usize,
    pub len: usize,
    /// The units' cost vectors, one after the other (units × len).
    pub cost: Vec<f64>,
    /// The units' masses b (length `units`).
    pub mass: Vec<f64>,
    /// The other marginal a (length `len`).
    pub target: Vec<f64>,
    pub gamma: f64,
    /// Nonzeros allowed per unit (≥ len: no sparsity constraint).
    pub k: usize,
    /// Entries allowed to be nonzero (units × len), all when `None`: the support of the repair.
    pub support: Option<Vec<bool>>,
}

/// A part of the transport form, for a validation error to point at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Part {
    /// The objective's quadratic term.
    Gamma,
    /// The `card` constraint.
    Sparsity,
    /// The row-sum constraint (`target`) or the column-sum constraint (`mass`).
    Target,
    Mass,
    /// The linear term.
    Cost,
}

/// Why the dual method cannot take a transport problem's numbers: a sentence, the part it is
/// about, and how to fix it.
#[derive(Clone, Debug, PartialEq)]
pub struct Invalid {
    pub message: String,
    pub part: Part,
    pub hint: String,
}

impl Transport {
    /// Checks the numbers: γ > 0, k ≥ 1, nonnegative finite marginals of equal total mass, a
    /// finite cost.
    pub fn validate(&self) -> Result<(), Invalid> {
        let invalid = |part, message: String, hint: &str| Invalid {
            message,
            part,
            hint: hint.to_string(),
        };
        if !(self.gamma > 0.0 && self.gamma.is_finite()) {
            return Err(invalid(
                Part::Gamma,
                format!(
                    "the regularization weight γ (twice the weight of sumsq) must be positive, not {}",
                    self.gamma
                ),
                "give the quadratic term a positive weight",
            ));
        }
        if self.k == 0 {
            return Err(invalid(
                Part::Sparsity,
                "the cardinality bound k must be at least 1: a plan with no nonzero entry per line meets no marginal".into(),
                "give `card` a bound of 1 or more",
            ));
        }
        let first_bad = |v: &[f64]| v.iter().position(|x| !(x.is_finite() && *x >= 0.0));
        for (part, values) in [(Part::Target, &self.target), (Part::Mass, &self.mass)] {
            if let Some(i) = first_bad(values) {
                return Err(invalid(
                    part,
                    format!(
                        "the marginal's entry {i} is {}: marginals must be finite and nonnegative",
                        values[i]
                    ),
                    "clip tiny negative entries to 0 in the data (`np.maximum(b, 0)`), or solve with `--method auglag`, which takes any marginals",
                ));
            }
        }
        if self.cost.iter().any(|c| !c.is_finite()) {
            return Err(invalid(
                Part::Cost,
                "the cost has a non-finite entry".into(),
                "forbid a pair with a large finite cost instead of inf",
            ));
        }
        let (sa, sb) = (
            self.target.iter().sum::<f64>(),
            self.mass.iter().sum::<f64>(),
        );
        if (sa - sb).abs() > 1e-9 * sa.abs().max(sb.abs()).max(1.0) {
            return Err(invalid(
                Part::Mass,
                format!(
                    "the marginals have different total mass ({sa} and {sb}): no plan meets both"
                ),
                "rescale one marginal to the other's total in the data (e.g. `b * sum(a) / sum(b)`; marginals saved with few digits lose mass), or solve with `--method auglag` for the closest plan",
            ));
        }
        Ok(())
    }

    /// Number of dual variables of `form`.
    pub fn dual_dim(&self, form: DualForm) -> usize {
        match form {
            DualForm::Semi => self.len,
            DualForm::Full => self.len + self.units,
        }
    }

    /// Unit `j`'s plan at the dual point `y` (α, then β for the full form) into `t`; returns its
    /// conjugate term ⟨t, s⟩ − (γ/2)‖t‖², with s = α + β_j − c_j.
    fn unit_plan(&self, form: DualForm, y: &[f64], j: usize, s: &mut [f64], t: &mut [f64]) -> f64 {
        let alpha = &y[..self.len];
        let beta = match form {
            DualForm::Semi => 0.0,
            DualForm::Full => y[self.len + j],
        };
        let cost = &self.cost[j * self.len..(j + 1) * self.len];
        for ((si, a), c) in s.iter_mut().zip(alpha).zip(cost) {
            *si = a + beta - c;
        }
        t.iter_mut()
            .zip(s.iter())
            .for_each(|(ti, si)| *ti = si / self.gamma);
        match form {
            DualForm::Semi if self.mass[j] > 0.0 => {
                project_sparse_simplex(t, self.k.min(self.len), self.mass[j])
            }
            DualForm::Semi => t.fill(0.0),
            DualForm::Full => project_nonneg_sparse(t, self.k),
        }
        if let Some(support) = &self.support {
            let allowed = &support[j * self.len..(j + 1) * self.len];
            t.iter_mut()
                .zip(allowed)
                .filter(|(_, a)| !**a)
                .for_each(|(ti, _)| *ti = 0.0);
        }
        t.iter()
            .zip(s.iter())
            .map(|(ti, si)| ti * si - 0.5 * self.gamma * ti * ti)
            .sum()
    }

    /// −D at `y` with its gradient in `grad`.
    pub fn negative_dual(&self, form: DualForm, y: &[f64], grad: &mut [f64]) -> f64 {
        let (mut s, mut t) = (vec![0.0; self.len], vec![0.0; self.len]);
        let mut value = -crate::solvers::dot(&y[..self.len], &self.target);
        for (g, a) in grad.iter_mut().zip(&self.target) {
            *g = -a;
        }
        for j in 0..self.units {
            value += self.unit_plan(form, y, j, &mut s, &mut t);
            for (g, ti) in grad[..self.len].iter_mut().zip(&t) {
                *g += ti;
            }
            if form == DualForm::Full {
                let beta = y[self.len + j];
                value -= beta * self.mass[j];
                grad[self.len + j] = t.iter().sum::<f64>() - self.mass[j];
            }
        }
        value
    }

    /// The plan at the dual point `y`, unit after unit (units × len).
    pub fn plan(&self, form: DualForm, y: &[f64]) -> Vec<f64> {
        let mut s = vec![0.0; self.len];
        let mut plan = vec![0.0; self.units * self.len];
        for (j, t) in plan.chunks_exact_mut(self.len.max(1)).enumerate() {
            self.unit_plan(form, y, j, &mut s, t);
        }
        plan
    }
}

/// Iterations over which the nonsmooth dual must gain [`STALL_GAIN`] (relative) to go on.
const STALL_WINDOW: usize = 50;
const STALL_GAIN: f64 = 1e-7;

/// What [`solve_dual`] found.
pub struct DualSolve {
    /// The L-BFGS report on −D, with `x` replaced by the plan (the model's flat variable) and
    /// `violation` by the marginals' residual ‖(T·1 − a, Tᵀ·1 − b)‖₂.
    pub report: Report,
    /// D at the returned dual point plus the objective's terms without T: a lower bound on
    /// the primal optimum.
    pub bound: f64,
}

/// Solves `model` (in `form`'s transport form) through the dual the plan names.
pub fn solve_dual(
    model: &mut Model,
    plan: &Plan,
    form: &TransportForm,
    callback: Callback,
) -> Result<DualSolve, Diagnostic> {
    // `plan::choose` accepted only known forms.
    let dual_form = plan
        .names
        .iter()
        .find(|(k, _)| k == "form")
        .and_then(|(_, v)| DualForm::parse(v))
        .unwrap_or(DualForm::Semi);
    let transport = evaluate(model, form)?;
    transport.validate().map_err(|e| {
        let constraint = match e.part {
            Part::Target => Some(form.rows.constraint),
            Part::Mass => Some(form.cols.constraint),
            Part::Sparsity => form.sparsity.as_ref().map(|s| s.constraint),
            Part::Gamma | Part::Cost => None,
        };
        let span = constraint.and_then(|c| model.program.constraints[c].span);
        Diagnostic::error("E0360", e.message)
            .with_primary_at(span, "the dual method cannot take this")
            .with_hint(e.hint)
    })?;
    // The dual's values are of the order of the cost times the mass: no relative-decrease test
    // (`ftol`), only the gradient, which is the marginals' residual: `tol` is relative to the
    // total mass.
    let base = LbfgsOptions {
        gtol: 1e-7,
        ftol: 0.0,
        ..LbfgsOptions::default()
    };
    let mut opts = crate::plan::lbfgs_options_from(plan, base, &plan.options)?;
    opts.gtol *= transport.mass.iter().sum::<f64>();
    let (mut report, mut units) = maximize(&transport, dual_form, &opts, 0, callback);
    // The terms without T (constants, data only) are left out of the dual: they are the
    // objective at T = 0, where the cost and the regularization vanish.
    let objective = model.program.objective.as_ref().map(|o| o.node);
    let constant = match objective {
        Some(node) => {
            model.set_x(&vec![0.0; model.dim()]);
            model.eval_scalar(node).map_err(Diagnostic::from)?
        }
        None => 0.0,
    };
    let bound = -report.value + constant;
    // A relaxed plan (1 < k < the support) meets the bound but may miss a marginal: the problem
    // restricted to its support is smooth and convex, and feasible plans there have k nonzeros.
    let stalled = matches!(report.status, Status::LineSearchFailed | Status::MaxIter);
    if stalled && transport.k < transport.len {
        let restricted = Transport {
            k: usize::MAX,
            support: Some(units.iter().map(|v| *v > 0.0).collect()),
            ..transport.clone()
        };
        let (repair, plan) = maximize(
            &restricted,
            DualForm::Full,
            &opts,
            report.iterations,
            callback,
        );
        if repair.status == Status::Converged {
            report.iterations += repair.iterations;
            report.status = Status::Converged;
            report.optimality = repair.optimality;
            units = plan;
        }
    }
    let (m, n) = shape(model, form);
    let columns = form.sparsity.as_ref().is_none_or(|s| s.axis == 1);
    // The model's plan is row-major m × n; units are its columns or its rows.
    let mut x = vec![0.0; m * n];
    for (j, unit) in units.chunks_exact(transport.len.max(1)).enumerate() {
        for (i, v) in unit.iter().enumerate() {
            let (r, c) = if columns { (i, j) } else { (j, i) };
            x[r * n + c] = *v;
        }
    }
    let mut residual = 0.0;
    for (j, unit) in units.chunks_exact(transport.len.max(1)).enumerate() {
        residual += (unit.iter().sum::<f64>() - transport.mass[j]).powi(2);
    }
    for (i, a) in transport.target.iter().enumerate() {
        let sum: f64 = (0..transport.units)
            .map(|j| units[j * transport.len + i])
            .sum();
        residual += (sum - a).powi(2);
    }
    report.violation = residual.sqrt();
    report.x = x;
    model.set_x(&report.x);
    report.value = match objective {
        Some(node) => model.eval_scalar(node).map_err(Diagnostic::from)?,
        None => f64::NAN,
    };
    Ok(DualSolve { report, bound })
}

/// Maximizes `form`'s dual of `transport` by L-BFGS from 0; returns the report on −D and the plan
/// at its point. The progress shows D itself, the marginals' residual (the gradient) as the
/// violation, and iterations counted after `done`.
fn maximize(
    transport: &Transport,
    form: DualForm,
    opts: &LbfgsOptions,
    done: usize,
    callback: Callback,
) -> (Report, Vec<f64>) {
    let dim = transport.dual_dim(form);
    let mut problem = FnProblem::new(dim, |y: &[f64], g: &mut [f64]| {
        transport.negative_dual(form, y, g)
    });
    // The nonsmooth dual (1 < k < the support) creeps along its kinks: it has stalled when D
    // gained less than STALL_GAIN (relative) over STALL_WINDOW iterations.
    let nonsmooth = transport.k < transport.len && transport.support.is_none();
    let mut history: Vec<f64> = Vec::new();
    let mut stalled = false;
    let mut as_dual = |info: &IterInfo| -> Control {
        let value = -info.value;
        history.push(value);
        if nonsmooth && history.len() > STALL_WINDOW {
            let before = history[history.len() - 1 - STALL_WINDOW];
            if value - before <= STALL_GAIN * value.abs() {
                stalled = true;
                return Control::Stop;
            }
        }
        callback(&IterInfo {
            iter: done + info.iter,
            value,
            violation: info.optimality,
            ..*info
        })
    };
    let mut report = lbfgs(&mut problem, &vec![0.0; dim], opts, &mut as_dual);
    // With `ftol` 0, L-BFGS's "converged" without a small gradient means a step that no longer
    // decreases: a kink of the nonsmooth dual, where it stalls, or an infeasible restriction.
    if stalled || (report.status == Status::Converged && report.optimality > opts.gtol) {
        report.status = Status::LineSearchFailed;
    }
    let plan = transport.plan(form, &report.x);
    (report, plan)
}

/// The sizes m × n of the plan variable.
fn shape(model: &Model, form: &TransportForm) -> (usize, usize) {
    let slot = model.slot(form.var);
    (slot.shape[0], slot.shape[1])
}

/// The numbers of the transport form at the model's bindings, over units.
fn evaluate(model: &mut Model, form: &TransportForm) -> Result<Transport, Diagnostic> {
    let (m, n) = shape(model, form);
    let scalar = |model: &mut Model, w: &Weighted| -> Result<f64, Diagnostic> {
        Ok(w.sign * model.eval_weight(w.weight)?)
    };
    let mut gamma = 0.0;
    for q in &form.quadratic {
        gamma += 2.0 * scalar(model, q)?;
    }
    // The summed cost, row-major m × n.
    let mut cost = vec![0.0; m * n];
    for term in &form.linear {
        let factor = scalar(model, term)?;
        let x = model
            .eval(&[term.node])
            .map_err(Diagnostic::from)?
            .remove(0);
        let x = x.broadcast(ndarray::IxDyn(&[m, n])).ok_or_else(|| {
            Diagnostic::error(
                "E0362",
                "a transport cost does not broadcast to the plan's shape",
            )
        })?;
        for (c, v) in cost.iter_mut().zip(x.iter()) {
            *c += factor * v;
        }
    }
    let vector = |model: &mut Model, node, len: usize| -> Result<Vec<f64>, Diagnostic> {
        let v = model.eval(&[node]).map_err(Diagnostic::from)?.remove(0);
        let v = v.broadcast(ndarray::IxDyn(&[len])).ok_or_else(|| {
            Diagnostic::error("E0362", "a marginal does not match the plan's shape")
        })?;
        Ok(v.iter().copied().collect())
    };
    let a = vector(model, form.rows.target, m)?;
    let b = vector(model, form.cols.target, n)?;
    let lower = model.program.input(form.var).lower;
    if let Some(lower) = lower {
        let l = model.eval(&[lower]).map_err(Diagnostic::from)?.remove(0);
        if l.iter().any(|v| *v != 0.0) {
            return Err(Diagnostic::error(
                "E0360",
                "the dual handles the bound `>= 0` on the transport plan, not another lower bound",
            )
            .with_primary_at(model.program.input(form.var).span, "another lower bound"));
        }
    }
    let k = match &form.sparsity {
        Some(s) => {
            let k = model.eval_scalar(s.bound).map_err(Diagnostic::from)?;
            if !(k >= 0.0 && k.fract() == 0.0) {
                return Err(Diagnostic::error(
                    "E0362",
                    format!("the cardinality bound must be a nonnegative integer, not {k}"),
                ));
            }
            k as usize
        }
        None => usize::MAX,
    };
    let columns = form.sparsity.as_ref().is_none_or(|s| s.axis == 1);
    let (units, len) = if columns { (n, m) } else { (m, n) };
    let mut unit_cost = vec![0.0; m * n];
    for r in 0..m {
        for c in 0..n {
            let (j, i) = if columns { (c, r) } else { (r, c) };
            unit_cost[j * len + i] = cost[r * n + c];
        }
    }
    let (mass, target) = if columns { (b, a) } else { (a, b) };
    Ok(Transport {
        units,
        len,
        cost: unit_cost,
        mass,
        target,
        gamma,
        k,
        support: None,
    })
}
