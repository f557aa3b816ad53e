//! Proximal gradient and FISTA with backtracking (Beck & Teboulle 2009) for min f(x) + r(x),
//! f smooth (a [`Problem`]) and r given by its prox operator (a [`Regularizer`]).
//!
//! Backtracking increases the local Lipschitz estimate L by `eta` until
//! f(x) ≤ f(y) + ∇f(y)ᵀ(x − y) + (L/2)‖x − y‖², with x = prox_{r/L}(y − ∇f(y)/L).
//! Optional adaptive restart (O'Donoghue & Candès, gradient scheme) resets the momentum when
//! (y − x)ᵀ(x − x_prev) > 0. The optimality measure is the gradient mapping ‖L(y − x)‖∞.
//! The returned point is the best one seen (FISTA is not monotone).

use super::options::impl_set_option;
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
    /// Initial Lipschitz estimate L₀ (1).
    pub lipschitz: f64,
    /// Backtracking growth factor for L (2).
    pub eta: f64,
    /// Nesterov/FISTA momentum (true); false gives plain proximal gradient (ISTA).
    pub accelerated: bool,
    /// Adaptive momentum restart (false).
    pub restart: bool,
    /// Backtracking steps allowed per iteration (60).
    pub max_backtrack: usize,
}

impl Default for ProxGradOptions {
    fn default() -> Self {
        ProxGradOptions {
            max_iter: 5000,
            tol: 1e-6,
            lipschitz: 1.0,
            eta: 2.0,
            accelerated: true,
            restart: false,
            max_backtrack: 60,
        }
    }
}

impl_set_option!(ProxGradOptions {
    max_iter: count,
    tol: float,
    lipschitz: float,
    eta: float,
    accelerated: flag,
    restart: flag,
    max_backtrack: count,
});

/// Minimises f(x) + r(x) from `x0` (FISTA or ISTA with backtracking).
pub fn proximal_gradient(
    smooth: &mut dyn Problem,
    reg: &mut dyn Regularizer,
    x0: &[f64],
    opts: &ProxGradOptions,
    callback: Callback,
) -> Report {
    let n = x0.len();
    let mut lipschitz = opts.lipschitz;
    let mut x = x0.to_vec();
    let mut y = x0.to_vec();
    let mut gy = vec![0.0; n];
    let mut scratch = vec![0.0; n];
    let mut x_next = vec![0.0; n];
    let mut t: f64 = 1.0;
    let mut best_x = x.clone();
    let mut best_value = smooth.value_grad(&x, &mut scratch) + reg.value(&x);
    let mut optimality = f64::INFINITY;
    let finish = |status, iterations, x: Vec<f64>, value, optimality| Report {
        status,
        iterations,
        value,
        optimality,
        violation: 0.0,
        x,
    };
    if best_value.is_nan() {
        return finish(Status::Diverged, 0, best_x, best_value, optimality);
    }
    for iter in 1..=opts.max_iter {
        let fy = smooth.value_grad(&y, &mut gy);
        if !fy.is_finite() {
            return finish(Status::Diverged, iter - 1, best_x, best_value, optimality);
        }
        let mut accepted = None;
        for _ in 0..opts.max_backtrack {
            for i in 0..n {
                scratch[i] = y[i] - gy[i] / lipschitz;
            }
            reg.prox(&scratch, 1.0 / lipschitz, &mut x_next);
            let fx = smooth.value_grad(&x_next, &mut scratch);
            let (mut linear, mut quadratic) = (0.0, 0.0);
            for i in 0..n {
                let dx = x_next[i] - y[i];
                linear += gy[i] * dx;
                quadratic += dx * dx;
            }
            if fx.is_finite() && fx <= fy + linear + 0.5 * lipschitz * quadratic + 1e-12 * fy.abs()
            {
                accepted = Some(fx);
                break;
            }
            lipschitz *= opts.eta;
        }
        let Some(fx) = accepted else {
            return finish(Status::LineSearchFailed, iter - 1, best_x, best_value, optimality);
        };
        optimality = lipschitz * y.iter().zip(&x_next).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        let value = fx + reg.value(&x_next);
        if value < best_value || (value.is_finite() && !best_value.is_finite()) {
            best_value = value;
            best_x.copy_from_slice(&x_next);
        }
        let restart = opts.restart
            && (0..n).map(|i| (y[i] - x_next[i]) * (x_next[i] - x[i])).sum::<f64>() > 0.0;
        if !opts.accelerated || restart {
            t = 1.0;
            y.copy_from_slice(&x_next);
        } else {
            let t_next = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt());
            let momentum = (t - 1.0) / t_next;
            for i in 0..n {
                y[i] = x_next[i] + momentum * (x_next[i] - x[i]);
            }
            t = t_next;
        }
        std::mem::swap(&mut x, &mut x_next);
        let info = IterInfo { iter, value, optimality, violation: 0.0, step: 1.0 / lipschitz };
        if callback(&info) == Control::Stop {
            return finish(Status::Interrupted, iter, best_x, best_value, optimality);
        }
        if optimality <= opts.tol {
            return finish(Status::Converged, iter, best_x, best_value, optimality);
        }
    }
    finish(Status::MaxIter, opts.max_iter, best_x, best_value, optimality)
}
