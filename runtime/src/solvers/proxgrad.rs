//! Proximal gradient and FISTA with backtracking (Beck & Teboulle 2009) for min f(x) + r(x),
//! f smooth (a [`Problem`]) and r given by its prox operator (a [`Regularizer`]).
//!
//! Backtracking increases the local Lipschitz estimate L by `eta` until
//! f(x) ≤ f(y) + ∇f(y)ᵀ(x − y) + (L/2)‖x − y‖², with x = prox_{r/L}(y − ∇f(y)/L).
//! Optional adaptive restart (O'Donoghue & Candès, gradient scheme) resets the momentum when
//! (y − x)ᵀ(x − x_prev) > 0; so does an extrapolated point where f is undefined (outside the
//! domain of a `logdet`). The optimality measure is the gradient mapping ‖L(y − x)‖∞.
//! The returned point is the best one seen (FISTA is not monotone). Written over
//! [`ProxVectors`]: the iterates live in host memory or on a device.

use super::options::impl_set_option;
use super::vectors::{HostVectors, ProxVectors, Slot};
use super::{Callback, Control, IterInfo, Problem, Report, Status};
use crate::prox::soft_threshold;

/// The nonsmooth part r(x) of a composite objective.
pub trait Regularizer {
    /// Writes prox_{step·r}(v) = argmin_x r(x)·step + ½‖x − v‖² into `out`.
    fn prox(&mut self, v: &[f64], step: f64, out: &mut [f64]);
    /// r(x) (may be +∞ outside the domain of an indicator).
    fn value(&mut self, x: &[f64]) -> f64;
}

/// r(x) = λ‖x‖₁.
#[derive(Clone, Copy, Debug)]
pub struct L1Penalty {
    pub lambda: f64,
}

impl Regularizer for L1Penalty {
    fn prox(&mut self, v: &[f64], step: f64, out: &mut [f64]) {
        out.copy_from_slice(v);
        soft_threshold(out, self.lambda * step);
    }
    fn value(&mut self, x: &[f64]) -> f64 {
        self.lambda * x.iter().map(|v| v.abs()).sum::<f64>()
    }
}

/// A [`Regularizer`] from two closures: `prox(v, step, out)` and `value(x)`.
pub struct FnRegularizer<P, V> {
    pub prox: P,
    pub value: V,
}

impl<P, V> Regularizer for FnRegularizer<P, V>
where
    P: FnMut(&[f64], f64, &mut [f64]),
    V: FnMut(&[f64]) -> f64,
{
    fn prox(&mut self, v: &[f64], step: f64, out: &mut [f64]) {
        (self.prox)(v, step, out)
    }
    fn value(&mut self, x: &[f64]) -> f64 {
        (self.value)(x)
    }
}

/// Proximal-gradient options (defaults in parentheses).
#[derive(Clone, Debug)]
pub struct ProxGradOptions {
    /// Maximum iterations (5000).
    pub max_iter: usize,
    /// Stop when the gradient mapping ‖L(y − x)‖∞ ≤ tol (1e-6).
    pub tol: f64,
    /// Initial Lipschitz estimate L₀; 0 (the default) estimates it by a secant along the
    /// gradient at the start (`secant_curvature`).
    pub lipschitz: f64,
    /// Backtracking growth factor for L (2).
    pub eta: f64,
    /// Nesterov/FISTA momentum (true); false gives plain proximal gradient (ISTA).
    pub accelerated: bool,
    /// Adaptive momentum restart (false).
    pub restart: bool,
    /// Backtracking steps allowed per iteration (60).
    pub max_backtrack: usize,
    /// Whether a model's `card` constraints are approached in stages (true): read by the plan,
    /// which runs this solver once per stage (`plan::run_prox_grad`).
    pub continuation: bool,
    /// The most supports of a `card` on a whole variable that the local search after the
    /// stages moves to (20; 0 turns it off): read by the plan (`plan::swaps`).
    pub swaps: usize,
}

impl Default for ProxGradOptions {
    fn default() -> Self {
        ProxGradOptions {
            max_iter: 5000,
            tol: 1e-6,
            lipschitz: 0.0,
            eta: 2.0,
            accelerated: true,
            restart: false,
            max_backtrack: 60,
            continuation: true,
            swaps: 20,
        }
    }
}

impl_set_option!(ProxGradOptions {
    max_iter: count,
    tol: nonnegative,
    lipschitz: nonnegative,
    eta: growth,
    accelerated: flag,
    restart: flag,
    max_backtrack: positive_count,
    continuation: flag,
    swaps: count,
});

/// Minimises f(x) + r(x) from `x0` (FISTA or ISTA with backtracking).
pub fn proximal_gradient(
    smooth: &mut dyn Problem,
    reg: &mut dyn Regularizer,
    x0: &[f64],
    opts: &ProxGradOptions,
    callback: Callback,
) -> Report {
    let mut vectors = HostVectors::new(smooth, Some(reg));
    proximal_gradient_in(&mut vectors, x0, opts, callback)
}

/// Minimises f(x) + r(x) of `v` from `x0`, its vectors kept by `v`.
pub fn proximal_gradient_in(
    v: &mut dyn ProxVectors,
    x0: &[f64],
    opts: &ProxGradOptions,
    callback: Callback,
) -> Report {
    // `diff` = x₊ − y (the step), `change` = x₊ − x (the momentum's direction).
    let [mut x, y, gy, scratch, mut x_next, best, diff, change] =
        [0, 1, 2, 3, 4, 5, 6, 7].map(Slot);
    v.allocate(8);
    // Start at the prox of x0 with step 0: x0 projected onto the bounds and sets, whose
    // indicators r leaves out of its value, so that an infeasible start is never the best point.
    v.write(y, x0);
    let r0 = v.prox(y, 0.0, x);
    v.copy(x, y);
    v.copy(x, best);
    let mut t: f64 = 1.0;
    let mut best_value = v.value_grad(x, scratch) + r0;
    let mut lipschitz = match opts.lipschitz {
        given if given > 0.0 => given,
        _ => secant_curvature(v, x, scratch, [gy, x_next]).unwrap_or(1.0),
    };
    // The start's prox-gradient residual stands until an iteration measures its own (what
    // `max_iter = 0` reports). `scratch` holds the gradient at x.
    v.copy(x, gy);
    v.axpy(-1.0 / lipschitz, scratch, gy);
    v.prox(gy, 1.0 / lipschitz, x_next);
    v.axpy(-1.0, x, x_next);
    let mut optimality = lipschitz * v.norm_inf(x_next);
    let finish = |v: &mut dyn ProxVectors, status, iterations, value, optimality| {
        let mut out = vec![0.0; x0.len()];
        v.read(best, &mut out);
        Report::unconstrained(status, iterations, value, optimality, out)
    };
    if best_value.is_nan() {
        return finish(v, Status::Diverged, 0, best_value, optimality);
    }
    // Whether y was extrapolated past x (momentum), and so may lie outside f's domain.
    let mut extrapolated = false;
    for iter in 1..=opts.max_iter {
        let mut fy = v.value_grad(y, gy);
        if !fy.is_finite() && extrapolated {
            // The momentum left f's domain (e.g. a logdet's) though x is inside: restart at x.
            v.copy(x, y);
            t = 1.0;
            fy = v.value_grad(y, gy);
        }
        if !fy.is_finite() {
            return finish(v, Status::Diverged, iter - 1, best_value, optimality);
        }
        let mut accepted = None;
        for _ in 0..opts.max_backtrack {
            v.copy(y, scratch);
            v.axpy(-1.0 / lipschitz, gy, scratch);
            let r_next = v.prox(scratch, 1.0 / lipschitz, x_next);
            let fx = v.value_grad(x_next, scratch);
            v.copy(x_next, diff);
            v.axpy(-1.0, y, diff);
            let (linear, quadratic) = (v.dot(gy, diff), v.dot(diff, diff));
            if fx.is_finite() && fx <= fy + linear + 0.5 * lipschitz * quadratic + 1e-12 * fy.abs()
            {
                accepted = Some(fx + r_next);
                break;
            }
            lipschitz *= opts.eta;
        }
        let Some(value) = accepted else {
            return finish(
                v,
                Status::LineSearchFailed,
                iter - 1,
                best_value,
                optimality,
            );
        };
        optimality = lipschitz * v.norm_inf(diff);
        if value < best_value || (value.is_finite() && !best_value.is_finite()) {
            best_value = value;
            v.copy(x_next, best);
        }
        if opts.accelerated || opts.restart {
            v.copy(x_next, change);
            v.axpy(-1.0, x, change);
        }
        // (y − x₊)·(x₊ − x) > 0: the momentum points uphill.
        let restart = opts.restart && v.dot(diff, change) < 0.0;
        v.copy(x_next, y);
        extrapolated = opts.accelerated && !restart && t > 1.0;
        if !opts.accelerated || restart {
            t = 1.0;
        } else {
            let t_next = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt());
            v.axpy((t - 1.0) / t_next, change, y);
            t = t_next;
        }
        std::mem::swap(&mut x, &mut x_next);
        let info = IterInfo {
            iter,
            value,
            optimality,
            violation: 0.0,
            step: 1.0 / lipschitz,
        };
        if callback(&info) == Control::Stop {
            return finish(v, Status::Interrupted, iter, best_value, optimality);
        }
        if optimality <= opts.tol {
            return finish(v, Status::Converged, iter, best_value, optimality);
        }
    }
    finish(v, Status::MaxIter, opts.max_iter, best_value, optimality)
}

/// ‖∇f(x − τg) − g‖ / ‖τg‖ for the gradient `g` at `x` and a step τ that moves x by 10⁻³ of
/// its largest entry (or of 1): the curvature of f along g, a first Lipschitz estimate that
/// backtracking then raises where needed. The start's default of 1 mistakes f's scale for its
/// curvature: a flat objective got steps far below 1/L, and a nonconvex set's projection
/// (`card`) then kept the support of its first point. None where f is linear along g or
/// undefined at the trial point. Uses the slots `work`.
fn secant_curvature(v: &mut dyn ProxVectors, x: Slot, g: Slot, work: [Slot; 2]) -> Option<f64> {
    let [g_trial, trial] = work;
    let g_norm = v.dot(g, g).sqrt();
    let g_max = v.norm_inf(g);
    if !(g_max > 0.0 && g_max.is_finite()) {
        return None;
    }
    let tau = 1e-3 * v.norm_inf(x).max(1.0) / g_max;
    v.copy(x, trial);
    v.axpy(-tau, g, trial);
    if !v.value_grad(trial, g_trial).is_finite() {
        return None;
    }
    v.axpy(-1.0, g, g_trial);
    let curvature = v.dot(g_trial, g_trial).sqrt() / (tau * g_norm);
    (curvature > 0.0 && curvature.is_finite()).then_some(curvature)
}
