//! Adam (Kingma & Ba 2015) with bias correction; the step is also used by the DAGMA/CoLiDE path.
//!
//! Adam is not monotone: when the callback stops it, the best point seen is returned
//! ([`Iterates`] keeps it without copying).

use super::options::impl_set_option;
use super::{
    AdamConstants, AdamIterates, Bounds, Callback, Control, HostAdam, IterInfo, PathObjective,
    Problem, Report, Status,
};
use crate::dispatch::dispatch_fma;

/// Adam options (defaults in parentheses: Kingma & Ba's, except the stopping rules).
#[derive(Clone, Debug)]
pub struct AdamOptions {
    /// Learning rate (1e-3).
    pub lr: f64,
    /// First-moment decay (0.9).
    pub beta1: f64,
    /// Second-moment decay (0.999).
    pub beta2: f64,
    /// Denominator guard (1e-8).
    pub eps: f64,
    /// Maximum iterations (10000).
    pub max_iter: usize,
    /// Stop when ‖∇f‖∞ ≤ gtol (1e-6).
    pub gtol: f64,
    /// Every `checkpoint` iterations (1000), stop if |Δf / f| ≤ ftol.
    pub checkpoint: usize,
    /// Relative change of f between checkpoints that counts as converged (1e-6).
    pub ftol: f64,
}

impl Default for AdamOptions {
    fn default() -> Self {
        AdamOptions {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            max_iter: 10_000,
            gtol: 1e-6,
            checkpoint: 1000,
            ftol: 1e-6,
        }
    }
}

impl AdamOptions {
    /// Adam's decay rates and guard.
    pub fn constants(&self) -> AdamConstants {
        AdamConstants {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
        }
    }
}

impl_set_option!(AdamOptions {
    lr: positive,
    beta1: decay,
    beta2: decay,
    eps: positive,
    max_iter: count,
    gtol: nonnegative,
    checkpoint: positive_count,
    ftol: nonnegative,
});

/// Adam moment estimates.
#[derive(Clone, Debug)]
pub struct AdamState {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl AdamState {
    pub fn new(n: usize, beta1: f64, beta2: f64, eps: f64) -> Self {
        AdamState {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
            beta1,
            beta2,
            eps,
        }
    }

    /// Updates the moments with gradient `g` and writes the bias-corrected direction
    /// m̂ / (√v̂ + eps) into `update` (the caller applies x ← x − lr·update).
    pub fn direction(&mut self, g: &[f64], update: &mut [f64]) {
        self.t = self.t.saturating_add(1);
        let moments = Moments {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            inv_c1: 1.0 / (1.0 - self.beta1.powi(self.t)),
            inv_c2: 1.0 / (1.0 - self.beta2.powi(self.t)),
        };
        let (m, v) = (&mut self.m[..], &mut self.v[..]);
        adam_update_dispatch(moments, m, v, g, update);
    }
}

/// The constants of one Adam step: decay rates, ε and the bias corrections 1/(1 − βᵗ).
#[derive(Clone, Copy)]
struct Moments {
    beta1: f64,
    beta2: f64,
    eps: f64,
    inv_c1: f64,
    inv_c2: f64,
}

fn adam_update_dispatch(k: Moments, m: &mut [f64], v: &mut [f64], g: &[f64], u: &mut [f64]) {
    dispatch_fma!(adam_update(k: Moments, m: &mut [f64], v: &mut [f64], g: &[f64], u: &mut [f64]) -> ())
}

/// Updates the moments with `g` and writes the step direction m̂/(√v̂ + ε) to `u`; a loop that
/// vectorizes (its square roots and divisions dominate: 4-wide with AVX).
#[inline(always)]
fn adam_update<const FMA: bool>(
    k: Moments,
    m: &mut [f64],
    v: &mut [f64],
    g: &[f64],
    u: &mut [f64],
) {
    for (((m, v), &g), u) in m.iter_mut().zip(v.iter_mut()).zip(g).zip(u.iter_mut()) {
        *m = k.beta1 * *m + (1.0 - k.beta1) * g;
        *v = k.beta2 * *v + (1.0 - k.beta2) * g * g;
        *u = (*m * k.inv_c1) / ((*v * k.inv_c2).sqrt() + k.eps);
    }
}

/// The iterates of a method that is not monotone, with the best evaluated point kept without a
/// copy per step: when the current point is a new best, the step writes the next point into the
/// spare buffer and the two trade places, so the spare buffer always holds the best point unless
/// the current one is it.
pub struct Iterates {
    current: Vec<f64>,
    spare: Vec<f64>,
    best_value: f64,
    current_is_best: bool,
}

impl Iterates {
    pub fn new(x0: &[f64]) -> Iterates {
        Iterates {
            current: x0.to_vec(),
            spare: x0.to_vec(),
            best_value: f64::INFINITY,
            current_is_best: false,
        }
    }

    pub fn current(&self) -> &[f64] {
        &self.current
    }

    /// The current point, to change in place (a projection, a step taken back).
    pub fn current_mut(&mut self) -> &mut [f64] {
        &mut self.current
    }

    /// Records the objective at the current point.
    pub fn record(&mut self, value: f64) {
        if value < self.best_value {
            self.best_value = value;
            self.current_is_best = true;
        }
    }

    /// x ← x − lr·u.
    pub fn step(&mut self, lr: f64, u: &[f64]) {
        if self.current_is_best {
            for ((next, x), u) in self.spare.iter_mut().zip(&self.current).zip(u) {
                *next = x - lr * u;
            }
            std::mem::swap(&mut self.current, &mut self.spare);
            self.current_is_best = false;
        } else {
            for (x, u) in self.current.iter_mut().zip(u) {
                *x -= lr * u;
            }
        }
    }

    /// The lowest recorded objective (∞ before any) and its point (x0 before any).
    pub fn best(&self) -> (f64, &[f64]) {
        let x = if self.current_is_best {
            &self.current
        } else {
            &self.spare
        };
        (self.best_value, x)
    }

    /// Makes the best recorded point the current one.
    pub fn restore_best(&mut self) {
        if !self.current_is_best {
            self.current.copy_from_slice(&self.spare);
            self.current_is_best = self.best_value.is_finite();
        }
    }

    /// Whether the current point, of objective `value`, is at least as good as the best
    /// recorded one.
    fn current_is_better(&self, value: f64) -> bool {
        value < self.best_value || self.current_is_best
    }

    /// The current point if `value`, its objective, is below the best recorded one; otherwise
    /// the best point.
    pub fn better(&self, value: f64) -> &[f64] {
        if self.current_is_better(value) {
            &self.current
        } else {
            &self.spare
        }
    }
}

/// Minimises `problem` from `x0` with Adam.
pub fn adam(
    problem: &mut dyn Problem,
    x0: &[f64],
    opts: &AdamOptions,
    callback: Callback,
) -> Report {
    adam_within(problem, &Bounds::unbounded(x0.len()), x0, opts, callback)
}

/// Minimises `problem` within `bounds` from `x0` (projected on them, as each step is) with Adam.
pub fn adam_within(
    problem: &mut dyn Problem,
    bounds: &Bounds,
    x0: &[f64],
    opts: &AdamOptions,
    callback: Callback,
) -> Report {
    let mut start = x0.to_vec();
    bounds.project(&mut start);
    let x0 = start.as_slice();
    let mut objective = Within { problem, bounds };
    let mut iterates = HostAdam::new(&mut objective, x0, opts.constants());
    adam_in(&mut iterates, x0.len(), opts, callback)
}

/// `problem` within `bounds` as Adam's objective: each step projected onto the bounds, and the
/// optimality that of the projected gradient, which vanishes where a bound stops the descent.
struct Within<'a> {
    problem: &'a mut dyn Problem,
    bounds: &'a Bounds,
}

impl PathObjective for Within<'_> {
    fn dim(&self) -> usize {
        self.problem.dim()
    }
    fn value_grad(&mut self, x: &[f64], _mu: f64, _s: f64, grad: &mut [f64]) -> Option<f64> {
        Some(self.problem.value_grad(x, grad))
    }
    fn after_step(&mut self, x: &mut [f64]) {
        self.bounds.project(x)
    }
    fn optimality(&self, x: &[f64], grad: &[f64]) -> f64 {
        self.bounds.projected_gradient_norm(x, grad)
    }
}

/// Minimises with Adam from the current point of `x` (of `dim` variables), whose iterates
/// live on the host or on a device; the objective is `x`'s merit at μ = s = 1.
pub fn adam_in(
    x: &mut dyn AdamIterates,
    dim: usize,
    opts: &AdamOptions,
    callback: Callback,
) -> Report {
    // The objective at the current point (NaN where undefined) and its ‖∇‖∞.
    let evaluate = |x: &mut dyn AdamIterates| {
        let value = x.evaluate(1.0, 1.0).unwrap_or(f64::NAN);
        (value, x.optimality())
    };
    let finish = |x: &mut dyn AdamIterates, status, iterations, value, optimality| {
        let mut point = vec![0.0; dim];
        x.read(&mut point, None);
        Report::unconstrained(status, iterations, value, optimality, point)
    };
    let mut checkpoint_value = f64::INFINITY;
    for iter in 1..=opts.max_iter {
        let (value, optimality) = evaluate(x);
        if !value.is_finite() {
            return finish(x, Status::Diverged, iter - 1, value, optimality);
        }
        if optimality <= opts.gtol {
            return finish(x, Status::Converged, iter - 1, value, optimality);
        }
        if opts.checkpoint > 0 && (iter - 1) % opts.checkpoint == 0 && iter > 1 {
            if ((checkpoint_value - value) / checkpoint_value).abs() <= opts.ftol {
                return finish(x, Status::Converged, iter - 1, value, optimality);
            }
            checkpoint_value = value;
        }
        x.record(value);
        x.step(opts.lr);
        let info = IterInfo {
            iter,
            value,
            optimality,
            violation: 0.0,
            step: opts.lr,
        };
        if callback(&info) == Control::Stop {
            // The better of the current point and the best one seen.
            let (mut value, mut optimality) = evaluate(x);
            if !(value < x.best_value()) {
                x.restore_best();
                (value, optimality) = evaluate(x);
            }
            return finish(x, Status::Interrupted, iter, value, optimality);
        }
    }
    let (value, optimality) = evaluate(x);
    finish(x, Status::MaxIter, opts.max_iter, value, optimality)
}
