//! The DAGMA central path (Bello et al. 2022) over a generic objective, and CoLiDE's closed-form
//! noise-scale updates (Saboksayr et al. 2024).
//!
//! For stages t = 1..T the path minimises μ_t·score(x) + h^{s_t}(x), warm-started from the
//! previous stage, with μ_{t+1} = mu_factor·μ_t and s_t taken from the `s` list (its last value
//! repeated). Stages t < T run at most `warm_iter` inner iterations, the last one `max_iter`: a
//! last stage that meets that limit before its stopping test ends the path as `MaxIter`, and so
//! does an end point whose violation h(x) exceeds `h_tol` (the schedule was too short). The
//! objective reports whether x lies in the domain of h^s (for DAGMA: sI − W∘W an M-matrix, i.e.
//! (sI − W∘W)⁻¹ ≥ 0). Each stage is minimised by one of two inner solvers ([`PathInner`]):
//!
//! **Adam** (the DAGMA reference): every `checkpoint` steps a stage ends early if the best
//! objective of the stage improved by at most `tol` (relative) since the previous checkpoint. The
//! `dagma` package compares the objectives at two checkpoints instead, |Δobj/obj| ≤ tol, which
//! Adam's oscillation around a stage's minimizer (relative amplitude ~1e-4 with lr = 3e-4 at
//! d = 100, far above tol) can keep from firing until the iteration limit. Outside the domain:
//! - at a stage's first step, or when s ≤ 0.9: the stage restarts from its start point with the
//!   learning rate halved and s increased by `s_step`;
//! - otherwise the last step is undone, the learning rate halved and the step redone (the stage
//!   ends when the learning rate drops to 1e-16).
//!
//! Adam on this objective is not monotone: when the callback stops the path, the point returned
//! is the best one (lowest μ·score + h^s) seen in the current stage.
//!
//! **L-BFGS** ([`projected_lbfgs`] within the given bounds; the objective must be smooth there,
//! e.g. an L1 term split as W = W⁺ − W⁻): each stage minimises score + h^{s_t}/μ_t (the same
//! minimiser, so that the tolerances keep their meaning as μ shrinks) in the variables y = x/c,
//! c a diagonal scaling fixed at the stage's start point (`curvature_scaling`: cᵢ = ‖Hᵢ‖^{-1/2}
//! for the rows Hᵢ of the Hessian, estimated from a few gradient differences), until the
//! projected-gradient norm in y is at most `tol` or the relative decrease of an iteration is at
//! most `ftol`. The scaling keeps the bounds simple (c > 0) and does not change the minimiser;
//! it evens out the curvature of a badly scaled score (in a linear SEM the variances grow along
//! the causal order) and of the stiff h^s/μ of late stages. Points
//! outside the domain have a NaN objective, on which the line search backtracks. The stage
//! restarts from its start point with s increased by `s_step` when the start point is outside the
//! domain or no step from it decreases the objective (the line search fails before the first
//! iteration); when the line search fails later, the stage ends at the last point.
//!
//! Block-coordinate variants (CoLiDE: one Adam step on W, then the closed-form σ) use
//! [`PathObjective::after_step`], which may overwrite coordinates of the new point (Adam only).
//! An objective whose device keeps the Adam iterates ([`PathObjective::adam_iterates`]) does
//! that, and the projection, in its own step instead.

use super::options::{
    count, decay, fraction, invalid, nonnegative, positive, positive_count, unknown,
};
use super::{
    norm_inf, projected_lbfgs, AdamState, Bounds, Callback, Control, FnProblem, IterInfo, Iterates,
    LbfgsOptions, OptionError, Report, SetOption, Status,
};
use ndarray::{Array1, Array2, ArrayView2};

/// The path objective μ·score(x) + h^s(x).
pub trait PathObjective {
    /// Number of variables.
    fn dim(&self) -> usize;
    /// Returns μ·score(x) + h^s(x) and writes its (sub)gradient into `grad`, or `None` if `x`
    /// is outside the domain of h^s.
    fn value_grad(&mut self, x: &[f64], mu: f64, s: f64, grad: &mut [f64]) -> Option<f64>;
    /// Called after every Adam step of [`HostAdam`] (not by the L-BFGS inner solver) with the
    /// new point, which it may change in place (projections, closed-form block updates). Does
    /// nothing by default.
    fn after_step(&mut self, _x: &mut [f64]) {}
    /// The constraint violation reported for the final point (0 by default).
    fn violation(&mut self, _x: &[f64]) -> f64 {
        0.0
    }
    /// The first-order measure at `x` of gradient `grad` that Adam stops on and reports: ‖∇‖∞
    /// by default; within bounds, that of the projected gradient.
    fn optimality(&self, _x: &[f64], grad: &[f64]) -> f64 {
        norm_inf(grad)
    }
    /// The iterates of one Adam stage from `x0` with Adam's `constants`: by default kept on the
    /// host and evaluated with [`PathObjective::value_grad`] ([`HostAdam`]); a device that
    /// runs Adam's step itself keeps them in its own memory.
    fn adam_iterates(
        &mut self,
        x0: &[f64],
        constants: AdamConstants,
    ) -> Box<dyn AdamIterates + '_> {
        Box::new(HostAdam::new(self, x0, constants))
    }
}

/// Adam's decay rates and denominator guard.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConstants {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

/// The state of one Adam stage of the path: the point, Adam's moments and last direction u,
/// and the stage's best point. The Adam stage of [`central_path`] is written once over
/// it, whether the state lives on the host ([`HostAdam`]) or on a device.
pub trait AdamIterates {
    /// The stage merit μ·score + h^s at the current point, or `None` outside the domain of h^s;
    /// its gradient is kept for the next [`AdamIterates::step`].
    fn evaluate(&mut self, mu: f64, s: f64) -> Option<f64>;
    /// The first-order measure of the last evaluation ([`PathObjective::optimality`]).
    fn optimality(&mut self) -> f64;
    /// Records `value`, the merit at the current point, for the best point.
    fn record(&mut self, value: f64);
    /// Adam's step with the last gradient: the moments updated, x ← x − lr·u, then
    /// [`PathObjective::after_step`].
    fn step(&mut self, lr: f64);
    /// x ← x + by·u (u of the last step).
    fn shift(&mut self, by: f64);
    /// The lowest recorded merit (∞ before any).
    fn best_value(&mut self) -> f64;
    /// Writes the current point to `x`; given `Some(value)`, the merit at the current point,
    /// the best point instead when it is lower.
    fn read(&mut self, x: &mut [f64], current_value: Option<f64>);
    /// Makes the best recorded point the current one (the start point before any).
    fn restore_best(&mut self);
}

/// [`AdamIterates`] in host memory, evaluated by a [`PathObjective`].
pub struct HostAdam<'a, O: PathObjective + ?Sized> {
    objective: &'a mut O,
    iterates: Iterates,
    adam: AdamState,
    grad: Vec<f64>,
    update: Vec<f64>,
}

impl<'a, O: PathObjective + ?Sized> HostAdam<'a, O> {
    pub fn new(objective: &'a mut O, x0: &[f64], c: AdamConstants) -> Self {
        let n = x0.len();
        HostAdam {
            objective,
            iterates: Iterates::new(x0),
            adam: AdamState::new(n, c.beta1, c.beta2, c.eps),
            grad: vec![0.0; n],
            update: vec![0.0; n],
        }
    }
}

impl<O: PathObjective + ?Sized> AdamIterates for HostAdam<'_, O> {
    fn evaluate(&mut self, mu: f64, s: f64) -> Option<f64> {
        self.objective
            .value_grad(self.iterates.current(), mu, s, &mut self.grad)
    }
    fn optimality(&mut self) -> f64 {
        self.objective
            .optimality(self.iterates.current(), &self.grad)
    }
    fn record(&mut self, value: f64) {
        self.iterates.record(value);
    }
    fn step(&mut self, lr: f64) {
        self.adam.direction(&self.grad, &mut self.update);
        self.iterates.step(lr, &self.update);
        self.objective.after_step(self.iterates.current_mut());
    }
    fn shift(&mut self, by: f64) {
        let x = self.iterates.current_mut();
        x.iter_mut()
            .zip(&self.update)
            .for_each(|(xi, u)| *xi += by * u);
    }
    fn best_value(&mut self) -> f64 {
        self.iterates.best().0
    }
    fn read(&mut self, x: &mut [f64], current_value: Option<f64>) {
        x.copy_from_slice(match current_value {
            Some(value) => self.iterates.better(value),
            None => self.iterates.current(),
        });
    }
    fn restore_best(&mut self) {
        self.iterates.restore_best();
    }
}

/// A [`PathObjective`] from closures: `value_grad(x, μ, s, grad) -> Option<value>` and an
/// optional `after_step(x)` that may change x in place.
pub struct FnPathObjective<F, A = fn(&mut [f64])> {
    dim: usize,
    value_grad: F,
    after_step: A,
}

impl<F> FnPathObjective<F>
where
    F: FnMut(&[f64], f64, f64, &mut [f64]) -> Option<f64>,
{
    pub fn new(dim: usize, value_grad: F) -> Self {
        FnPathObjective {
            dim,
            value_grad,
            after_step: |_| {},
        }
    }
}

impl<F, A> FnPathObjective<F, A>
where
    F: FnMut(&[f64], f64, f64, &mut [f64]) -> Option<f64>,
    A: FnMut(&mut [f64]),
{
    pub fn with_after_step(dim: usize, value_grad: F, after_step: A) -> Self {
        FnPathObjective {
            dim,
            value_grad,
            after_step,
        }
    }
}

impl<F, A> PathObjective for FnPathObjective<F, A>
where
    F: FnMut(&[f64], f64, f64, &mut [f64]) -> Option<f64>,
    A: FnMut(&mut [f64]),
{
    fn dim(&self) -> usize {
        self.dim
    }
    fn value_grad(&mut self, x: &[f64], mu: f64, s: f64, grad: &mut [f64]) -> Option<f64> {
        (self.value_grad)(x, mu, s, grad)
    }
    fn after_step(&mut self, x: &mut [f64]) {
        (self.after_step)(x)
    }
}

/// The solver that minimises each stage of the path.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum PathInner {
    /// Adam with `lr`, `beta1`, `beta2`, `eps`, stopping on `checkpoint`/`tol` (the DAGMA
    /// reference).
    #[default]
    Adam,
    /// Bound-constrained L-BFGS within these bounds, stopping on `tol`/`ftol`, with `memory`
    /// correction pairs.
    Lbfgs(Bounds),
}

impl PathInner {
    pub fn name(&self) -> &'static str {
        match self {
            PathInner::Adam => "adam",
            PathInner::Lbfgs(_) => "lbfgs",
        }
    }
}

/// Central-path options; `Default` is the DAGMA repository's `fit` defaults (Adam stages),
/// [`PathOptions::colide`] CoLiDE's `main.py` settings, [`PathOptions::lbfgs`] L-BFGS stages.
#[derive(Clone, Debug)]
pub struct PathOptions {
    /// The stage solver (Adam).
    pub inner: PathInner,
    /// Number of stages T (5).
    pub stages: usize,
    /// μ₁ (1).
    pub mu_init: f64,
    /// μ_{t+1} = mu_factor·μ_t (0.1).
    pub mu_factor: f64,
    /// s per stage, last value repeated ([1, .9, .8, .7, .6]).
    pub s: Vec<f64>,
    /// Increment of s when a stage restarts (0.1).
    pub s_step: f64,
    /// Inner iterations for stages t < T (Adam: 30000; L-BFGS: 2000).
    pub warm_iter: usize,
    /// Inner iterations for the last stage (Adam: 60000; L-BFGS: 5000).
    pub max_iter: usize,
    /// Adam learning rate (3e-4).
    pub lr: f64,
    /// Adam β1 (0.99).
    pub beta1: f64,
    /// Adam β2 (0.999).
    pub beta2: f64,
    /// Adam eps (1e-8).
    pub eps: f64,
    /// Adam steps between convergence checks (1000).
    pub checkpoint: usize,
    /// Adam: relative objective change between checkpoints that ends a stage (1e-6).
    /// L-BFGS: projected-gradient norm of score + h^s/μ (in the scaled variables) that ends a
    /// stage (1e-5).
    pub tol: f64,
    /// L-BFGS: relative decrease of score + h^s/μ in one iteration that ends a stage (1e-8).
    pub ftol: f64,
    /// L-BFGS correction pairs (10).
    pub memory: usize,
    /// Stage restarts allowed in total before giving up with `Status::Diverged` (50).
    pub max_restarts: usize,
    /// The largest violation h(x) the end point may have for the path to count as converged
    /// (1e-4); above it the schedule ended too early (too few stages, μ still too large).
    pub h_tol: f64,
}

impl Default for PathOptions {
    fn default() -> Self {
        PathOptions {
            inner: PathInner::Adam,
            stages: 5,
            mu_init: 1.0,
            mu_factor: 0.1,
            s: vec![1.0, 0.9, 0.8, 0.7, 0.6],
            s_step: 0.1,
            warm_iter: 30_000,
            max_iter: 60_000,
            lr: 3e-4,
            beta1: 0.99,
            beta2: 0.999,
            eps: 1e-8,
            checkpoint: 1000,
            tol: 1e-6,
            ftol: 1e-8,
            memory: 10,
            max_restarts: 50,
            h_tol: 1e-4,
        }
    }
}

const ADAM_ONLY: &[&str] = &["lr", "beta1", "beta2", "eps", "checkpoint"];
const LBFGS_ONLY: &[&str] = &["ftol", "memory"];

impl PathOptions {
    /// CoLiDE `main.py` settings: T = 4, s = [1, .9, .8, .7], warm_iter 2e4, max_iter 7e4.
    pub fn colide() -> Self {
        PathOptions {
            stages: 4,
            s: vec![1.0, 0.9, 0.8, 0.7],
            warm_iter: 20_000,
            max_iter: 70_000,
            ..PathOptions::default()
        }
    }

    /// The DAGMA schedule with L-BFGS stages within `bounds`: at most 2000 iterations per stage
    /// (5000 for the last), tol 1e-5, ftol 1e-8, memory 10.
    pub fn lbfgs(bounds: Bounds) -> Self {
        PathOptions {
            inner: PathInner::Lbfgs(bounds),
            warm_iter: 2000,
            max_iter: 5000,
            tol: 1e-5,
            ..PathOptions::default()
        }
    }

    fn s_at(&self, stage: usize) -> f64 {
        self.s.get(stage).or(self.s.last()).copied().unwrap_or(1.0)
    }
}

impl SetOption for PathOptions {
    const NAMES: &'static [&'static str] = &[
        "stages",
        "T",
        "mu",
        "decay",
        "s",
        "s_step",
        "warm_iter",
        "max_iter",
        "lr",
        "beta1",
        "beta2",
        "eps",
        "checkpoint",
        "tol",
        "ftol",
        "memory",
        "max_restarts",
        "h_tol",
    ];

    /// Numeric options by field name, but `mu` (μ₁) and `decay` (the factor of μ); `s` sets a
    /// constant s for all stages and `T` is an alias of `stages`. Options of the other inner
    /// solver than `inner` are rejected.
    fn set_option(&mut self, name: &str, value: f64) -> Result<(), OptionError> {
        let other = match self.inner {
            PathInner::Adam => ("lbfgs", LBFGS_ONLY),
            PathInner::Lbfgs(_) => ("adam", ADAM_ONLY),
        };
        if other.1.contains(&name) {
            return Err(invalid(
                name,
                &format!("applies only to `inner = {}`", other.0),
            ));
        }
        match name {
            "stages" | "T" => self.stages = positive_count(name, value)?,
            "mu" => self.mu_init = positive(name, value)?,
            "decay" => self.mu_factor = fraction(name, value)?,
            "s" => self.s = vec![positive(name, value)?],
            "s_step" => self.s_step = positive(name, value)?,
            "warm_iter" => self.warm_iter = count(name, value)?,
            "max_iter" => self.max_iter = count(name, value)?,
            "lr" => self.lr = positive(name, value)?,
            "beta1" => self.beta1 = decay(name, value)?,
            "beta2" => self.beta2 = decay(name, value)?,
            "eps" => self.eps = positive(name, value)?,
            "checkpoint" => self.checkpoint = positive_count(name, value)?,
            "tol" => self.tol = nonnegative(name, value)?,
            "ftol" => self.ftol = nonnegative(name, value)?,
            "memory" => self.memory = count(name, value)?,
            "max_restarts" => self.max_restarts = count(name, value)?,
            "h_tol" => self.h_tol = nonnegative(name, value)?,
            _ => return Err(unknown(name, Self::NAMES)),
        }
        Ok(())
    }
}

/// The path outcome: `report.value` is the last stage's objective μ·score + h^s,
/// `report.iterations` the total number of inner iterations (Adam steps or L-BFGS iterations),
/// `report.violation` from [`PathObjective::violation`].
#[derive(Clone, Debug)]
pub struct PathReport {
    pub report: Report,
    /// The s actually used per completed stage (after restarts).
    pub s_used: Vec<f64>,
    /// Number of stage restarts.
    pub restarts: usize,
}

/// How a stage ended.
enum StageEnd {
    /// Its stopping test held (or it can make no more progress).
    Done,
    /// It ran out of iterations first: fine for a warm stage, an iteration limit for the last.
    Limit,
    /// It left the domain of h^s: restart it with a smaller step and a larger s.
    Restart,
    /// The callback stopped it.
    Stopped,
    Diverged,
}

struct Stage<'a> {
    objective: &'a mut dyn PathObjective,
    opts: &'a PathOptions,
    callback: Callback<'a>,
    total_steps: usize,
    last_value: f64,
    last_optimality: f64,
}

impl Stage<'_> {
    fn minimize(&mut self, x: &mut [f64], mu: f64, s: f64, max_iter: usize, lr: f64) -> StageEnd {
        match &self.opts.inner {
            PathInner::Adam => self.minimize_adam(x, mu, s, max_iter, lr),
            PathInner::Lbfgs(bounds) => self.minimize_lbfgs(x, mu, s, max_iter, bounds),
        }
    }

    /// One stage with L-BFGS on score + h^s/μ (see the module doc).
    fn minimize_lbfgs(
        &mut self,
        x: &mut [f64],
        mu: f64,
        s: f64,
        max_iter: usize,
        bounds: &Bounds,
    ) -> StageEnd {
        let mut g = vec![0.0; x.len()];
        bounds.project(x);
        if self.objective.value_grad(x, mu, s, &mut g).is_none() {
            return StageEnd::Restart;
        }
        let scale = if mu > 0.0 { 1.0 / mu } else { 1.0 };
        let opts = LbfgsOptions {
            memory: self.opts.memory,
            max_iter,
            gtol: self.opts.tol,
            ftol: self.opts.ftol,
            ..LbfgsOptions::default()
        };
        let c = curvature_scaling(self.objective, x, &g, mu, s);
        let scaled_bounds = bounds.scaled(&c);
        let y0: Vec<f64> = x.iter().zip(&c).map(|(xi, ci)| xi / ci).collect();
        let objective = &mut *self.objective;
        let mut z = vec![0.0; x.len()];
        let mut problem = FnProblem::new(x.len(), |y: &[f64], grad: &mut [f64]| {
            z.iter_mut()
                .zip(y.iter().zip(&c))
                .for_each(|(zi, (yi, ci))| *zi = yi * ci);
            match objective.value_grad(&z, mu, s, grad) {
                Some(value) => {
                    grad.iter_mut()
                        .zip(&c)
                        .for_each(|(gi, ci)| *gi *= scale * ci);
                    value * scale
                }
                None => f64::NAN,
            }
        });
        let offset = self.total_steps;
        let callback = &mut self.callback;
        let mut report_unscaled = |info: &IterInfo| {
            callback(&IterInfo {
                iter: offset + info.iter,
                value: info.value / scale,
                optimality: info.optimality / scale,
                ..*info
            })
        };
        let report = projected_lbfgs(
            &mut problem,
            &y0,
            &scaled_bounds,
            &opts,
            &mut report_unscaled,
        );
        x.iter_mut()
            .zip(report.x.iter().zip(&c))
            .for_each(|(xi, (yi, ci))| *xi = yi * ci);
        bounds.project(x);
        self.total_steps += report.iterations;
        self.last_value = report.value / scale;
        self.last_optimality = report.optimality / scale;
        match report.status {
            Status::Interrupted => StageEnd::Stopped,
            Status::Diverged | Status::Infeasible => StageEnd::Diverged,
            Status::LineSearchFailed if report.iterations == 0 => StageEnd::Restart,
            Status::MaxIter => StageEnd::Limit,
            Status::Converged | Status::LineSearchFailed | Status::Stalled => StageEnd::Done,
        }
    }

    fn minimize_adam(
        &mut self,
        x: &mut [f64],
        mu: f64,
        s: f64,
        max_iter: usize,
        lr: f64,
    ) -> StageEnd {
        let mut lr = lr;
        let constants = AdamConstants {
            beta1: self.opts.beta1,
            beta2: self.opts.beta2,
            eps: self.opts.eps,
        };
        let mut iterates = self.objective.adam_iterates(x, constants);
        // The best objective of the stage up to the last checkpoint (1e16 before the first).
        let mut best_before = 1e16;
        let end = 'steps: {
            for iter in 1..=max_iter {
                let mut value = iterates.evaluate(mu, s);
                while value.is_none() {
                    if iter == 1 || s <= 0.9 {
                        break 'steps StageEnd::Restart;
                    }
                    iterates.shift(lr);
                    lr *= 0.5;
                    if lr <= 1e-16 {
                        break 'steps StageEnd::Done;
                    }
                    iterates.shift(-lr);
                    value = iterates.evaluate(mu, s);
                }
                let Some(value) = value.filter(|v| v.is_finite()) else {
                    break 'steps StageEnd::Diverged;
                };
                iterates.record(value);
                // Before the step: `after_step` may evaluate at the new point.
                let optimality = iterates.optimality();
                iterates.step(lr);
                self.total_steps += 1;
                self.last_value = value;
                self.last_optimality = optimality;
                let info = IterInfo {
                    iter: self.total_steps,
                    value,
                    optimality,
                    violation: f64::NAN,
                    step: lr,
                };
                if (self.callback)(&info) == Control::Stop {
                    let value = iterates.evaluate(mu, s).unwrap_or(f64::INFINITY);
                    self.last_value = value.min(iterates.best_value());
                    iterates.read(x, Some(value));
                    return StageEnd::Stopped;
                }
                let at_checkpoint = iter == max_iter
                    || (self.opts.checkpoint > 0 && iter % self.opts.checkpoint == 0);
                if at_checkpoint {
                    if let Some(obj_new) = iterates.evaluate(mu, s) {
                        self.last_value = obj_new;
                        let best_now = iterates.best_value().min(obj_new);
                        if (best_before - best_now) / best_before.abs() <= self.opts.tol {
                            break 'steps StageEnd::Done;
                        }
                        best_before = best_now;
                    }
                }
            }
            StageEnd::Limit
        };
        iterates.read(x, None);
        end
    }
}

/// Runs the central path from `x0`.
pub fn central_path(
    objective: &mut dyn PathObjective,
    x0: &[f64],
    opts: &PathOptions,
    callback: Callback,
) -> PathReport {
    let mut stage = Stage {
        objective,
        opts,
        callback,
        total_steps: 0,
        last_value: f64::NAN,
        last_optimality: f64::NAN,
    };
    let mut x = x0.to_vec();
    let mut mu = opts.mu_init;
    let mut s_used = Vec::new();
    let mut restarts = 0;
    let mut status = Status::Converged;
    'stages: for t in 0..opts.stages {
        let mut s = opts.s_at(t);
        let mut lr = opts.lr;
        let iters = if t + 1 == opts.stages {
            opts.max_iter
        } else {
            opts.warm_iter
        };
        loop {
            let mut trial = x.clone();
            match stage.minimize(&mut trial, mu, s, iters, lr) {
                StageEnd::Done => {
                    x = trial;
                    break;
                }
                StageEnd::Limit => {
                    x = trial;
                    if t + 1 == opts.stages {
                        status = Status::MaxIter;
                    }
                    break;
                }
                StageEnd::Restart if restarts < opts.max_restarts => {
                    restarts += 1;
                    lr *= 0.5;
                    s += opts.s_step;
                }
                StageEnd::Restart | StageEnd::Diverged => {
                    status = Status::Diverged;
                    break 'stages;
                }
                StageEnd::Stopped => {
                    x = trial;
                    status = Status::Interrupted;
                    break 'stages;
                }
            }
        }
        s_used.push(s);
        mu *= opts.mu_factor;
    }
    let violation = stage.objective.violation(&x);
    // The stages' own tests say nothing about feasibility: a schedule too short for it ends
    // short of a solution.
    if status == Status::Converged && !(violation <= opts.h_tol) {
        status = Status::MaxIter;
    }
    let report = Report {
        status,
        iterations: stage.total_steps,
        value: stage.last_value,
        optimality: stage.last_optimality,
        violation,
        x,
    };
    PathReport {
        report,
        s_used,
        restarts,
    }
}

/// Number of random probes of [`curvature_scaling`].
const CURVATURE_PROBES: usize = 4;

/// A diagonal change of variables x = c∘y for one L-BFGS stage: cᵢ = 1/√rᵢ with rᵢ an estimate
/// of the 2-norm of row i of the Hessian of μ·score + h^s at x (row-norm equilibration), from
/// gradient differences along random ±1 probes v: E[((Hv)ᵢ)²] = ‖Hᵢ‖². Estimates below 1e-10 of
/// the largest are raised to it; all ones if no probe point is in the domain.
fn curvature_scaling(
    objective: &mut dyn PathObjective,
    x: &[f64],
    g: &[f64],
    mu: f64,
    s: f64,
) -> Vec<f64> {
    let n = x.len();
    let step = 1e-6 * norm_inf(x).max(1.0);
    let mut squares = vec![0.0; n];
    let mut probe = vec![0.0; n];
    let mut g_probe = vec![0.0; n];
    let mut used = 0;
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..CURVATURE_PROBES {
        for (pi, xi) in probe.iter_mut().zip(x) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *pi = xi + if state & 1 == 0 { step } else { -step };
        }
        if objective.value_grad(&probe, mu, s, &mut g_probe).is_none() {
            continue;
        }
        used += 1;
        for i in 0..n {
            let hv = (g_probe[i] - g[i]) / step;
            squares[i] += hv * hv;
        }
    }
    let largest = squares.iter().copied().fold(0.0, f64::max);
    if used == 0 || !(largest > 0.0) || !largest.is_finite() {
        return vec![1.0; n];
    }
    squares
        .iter()
        .map(|sq| 1.0 / sq.max(1e-10 * largest).sqrt().sqrt())
        .collect()
}

/// Diagonal of (I − W)ᵀ Σ̂ (I − W): the residual variance of each column under W.
fn residual_variances(cov: ArrayView2<f64>, w: ArrayView2<f64>) -> Array1<f64> {
    let d = w.nrows();
    let i_minus_w = Array2::<f64>::eye(d) - w;
    let m = cov.dot(&i_minus_w);
    (&i_minus_w * &m).sum_axis(ndarray::Axis(0))
}

/// CoLiDE-EV closed-form noise scale σ = sqrt(tr((I − W)ᵀ Σ̂ (I − W)) / d) (no σ₀ floor, as in
/// the authors' code).
pub fn colide_sigma_ev(cov: ArrayView2<f64>, w: ArrayView2<f64>) -> f64 {
    let d = w.nrows() as f64;
    (residual_variances(cov, w).sum() / d).sqrt()
}

/// CoLiDE-NV closed-form noise scales σ_j = sqrt([(I − W)ᵀ Σ̂ (I − W)]_jj).
pub fn colide_sigma_nv(cov: ArrayView2<f64>, w: ArrayView2<f64>) -> Array1<f64> {
    residual_variances(cov, w).mapv(f64::sqrt)
}

/// The closed-form minimiser σ* = √(a/b) of φ(σ) = a/σ + b·σ (plus terms without σ), from two
/// slopes at some σ > 0: φ'(σ) = −a/σ² + b and φ'(2σ) = −a/(4σ²) + b, so a = (4/3)·σ²·(φ'(2σ) − φ'(σ))
/// and b = φ'(σ) + a/σ². This is CoLiDE's concomitant noise-scale step for any score of that
/// form: EV with one σ, NV with one σ per variable (each σ_j separately).
/// `None` when the slopes do not come from such a φ with a ≥ 0 and b > 0.
pub fn concomitant_scale(sigma: f64, slope: f64, slope_at_double: f64) -> Option<f64> {
    if !(sigma > 0.0) {
        return None;
    }
    let a = 4.0 / 3.0 * sigma * sigma * (slope_at_double - slope);
    let b = slope + a / (sigma * sigma);
    let a = if a < 0.0 && a > -1e-12 * b * sigma * sigma {
        0.0
    } else {
        a
    };
    (a >= 0.0 && b > 0.0 && a.is_finite() && b.is_finite()).then(|| (a / b).sqrt())
}
