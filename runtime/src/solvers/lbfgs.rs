//! Limited-memory BFGS with a strong-Wolfe line search (bracketing + zoom with safeguarded cubic
//! interpolation, Nocedal & Wright Algorithms 3.5/3.6).
//!
//! The sufficient-decrease test allows a round-off slack of 8ε|f(x)|. Non-finite trial values are treated as "step too long": the line search shrinks the step
//! towards the last finite point instead of failing. If the search fails along a quasi-Newton
//! direction, the memory is cleared and steepest descent is tried once before giving up.

use super::options::impl_set_option;
use super::{
    dot, norm_inf, small_relative_decrease, Callback, Control, IterInfo, Problem, Report, Status,
};
use std::collections::VecDeque;

/// L-BFGS options (defaults in parentheses).
#[derive(Clone, Debug)]
pub struct LbfgsOptions {
    /// Number of stored correction pairs (10).
    pub memory: usize,
    /// Maximum iterations (1000).
    pub max_iter: usize,
    /// Stop when ‖∇f‖∞ ≤ gtol (1e-6).
    pub gtol: f64,
    /// Stop when (f_prev − f) ≤ ftol·max(|f_prev|, |f|, 1) (1e-12).
    pub ftol: f64,
    /// Sufficient-decrease constant (1e-4; L-BFGS-B uses its own 1e-3).
    pub c1: f64,
    /// Curvature constant (0.9; L-BFGS-B uses its own 0.9).
    pub c2: f64,
    /// Function evaluations allowed per line search (40).
    pub max_linesearch: usize,
}

impl Default for LbfgsOptions {
    fn default() -> Self {
        LbfgsOptions {
            memory: 10,
            max_iter: 1000,
            gtol: 1e-6,
            ftol: 1e-12,
            c1: 1e-4,
            c2: 0.9,
            max_linesearch: 40,
        }
    }
}

impl_set_option!(LbfgsOptions {
    memory: count,
    max_iter: count,
    gtol: float,
    ftol: float,
    c1: float,
    c2: float,
    max_linesearch: count,
});

/// Stored correction pairs and the two-loop recursion.
pub(crate) struct Memory {
    capacity: usize,
    s: VecDeque<Vec<f64>>,
    y: VecDeque<Vec<f64>>,
    rho: VecDeque<f64>,
}

impl Memory {
    pub(crate) fn new(capacity: usize) -> Self {
        Memory {
            capacity,
            s: VecDeque::new(),
            y: VecDeque::new(),
            rho: VecDeque::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.s.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.s.clear();
        self.y.clear();
        self.rho.clear();
    }

    /// Stores (s, y) if the curvature s·y is safely positive; returns whether it was stored.
    pub(crate) fn push(&mut self, s: Vec<f64>, y: Vec<f64>) -> bool {
        let sy = dot(&s, &y);
        let yy = dot(&y, &y);
        if self.capacity == 0 || !(sy > 1e-12 * yy) || !sy.is_finite() {
            return false;
        }
        if self.s.len() == self.capacity {
            self.s.pop_front();
            self.y.pop_front();
            self.rho.pop_front();
        }
        self.s.push_back(s);
        self.y.push_back(y);
        self.rho.push_back(1.0 / sy);
        true
    }

    /// Writes d = −H·g (two-loop recursion, H₀ = (s·y / y·y) I from the newest pair).
    /// Components where `mask` is false are treated as zero in g and set to zero in d.
    pub(crate) fn direction(&self, g: &[f64], mask: Option<&[bool]>, d: &mut [f64]) {
        let keep = |i: usize| mask.is_none_or(|m| m[i]);
        for (i, (di, gi)) in d.iter_mut().zip(g).enumerate() {
            *di = if keep(i) { -gi } else { 0.0 };
        }
        let k = self.s.len();
        let mut alpha = vec![0.0; k];
        for j in (0..k).rev() {
            alpha[j] = self.rho[j] * masked_dot(&self.s[j], d, &keep);
            axpy_masked(-alpha[j], &self.y[j], d, &keep);
        }
        if let (Some(s), Some(y)) = (self.s.back(), self.y.back()) {
            let gamma = dot(s, y) / dot(y, y);
            d.iter_mut().for_each(|v| *v *= gamma);
        }
        for (j, a) in alpha.iter().enumerate().take(k) {
            let beta = self.rho[j] * masked_dot(&self.y[j], d, &keep);
            axpy_masked(a - beta, &self.s[j], d, &keep);
        }
    }
}

fn masked_dot(a: &[f64], b: &[f64], keep: &impl Fn(usize) -> bool) -> f64 {
    a.iter()
        .zip(b)
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, (x, y))| x * y)
        .sum()
}

fn axpy_masked(a: f64, x: &[f64], y: &mut [f64], keep: &impl Fn(usize) -> bool) {
    for (i, (yi, xi)) in y.iter_mut().zip(x).enumerate() {
        if keep(i) {
            *yi += a * xi;
        }
    }
}

/// A point on the search line: step α, φ(α) and φ'(α).
#[derive(Clone, Copy)]
struct LinePoint {
    alpha: f64,
    value: f64,
    slope: f64,
}

/// Strong-Wolfe line search on φ(α) = f(x + α d). `phi` evaluates a trial step and returns
/// (φ, φ'); on success the accepted step is the last one evaluated.
fn strong_wolfe(
    phi: &mut dyn FnMut(f64) -> (f64, f64),
    f0: f64,
    slope0: f64,
    alpha_init: f64,
    opts: &LbfgsOptions,
) -> Option<LinePoint> {
    // The round-off allowance lets the search finish near a minimiser, where decreases of f fall
    // below the precision of f itself.
    let roundoff = 8.0 * f64::EPSILON * f0.abs();
    let sufficient = |p: &LinePoint| p.value <= f0 + opts.c1 * p.alpha * slope0 + roundoff;
    let curvature = |p: &LinePoint| p.slope.abs() <= -opts.c2 * slope0;
    let mut prev = LinePoint {
        alpha: 0.0,
        value: f0,
        slope: slope0,
    };
    let mut alpha = alpha_init;
    let mut alpha_max = f64::INFINITY;
    let mut evals = 0;
    while evals < opts.max_linesearch {
        let (value, slope) = phi(alpha);
        evals += 1;
        let point = LinePoint {
            alpha,
            value,
            slope,
        };
        if !value.is_finite() || !slope.is_finite() {
            alpha_max = alpha;
            alpha = prev.alpha + 0.5 * (alpha - prev.alpha);
            continue;
        }
        if !sufficient(&point) || (prev.alpha > 0.0 && value >= prev.value + roundoff) {
            return zoom(
                phi,
                prev,
                point,
                opts,
                evals,
                roundoff,
                &sufficient,
                &curvature,
            );
        }
        if curvature(&point) {
            return Some(point);
        }
        if slope >= 0.0 {
            return zoom(
                phi,
                point,
                prev,
                opts,
                evals,
                roundoff,
                &sufficient,
                &curvature,
            );
        }
        prev = point;
        alpha = if alpha_max.is_finite() {
            0.5 * (alpha + alpha_max)
        } else {
            2.0 * alpha
        };
    }
    None
}

/// Shrinks the bracket [lo, hi] until a strong-Wolfe point is found. Values within `roundoff`
/// of each other count as equal, so near a minimiser the bracket is updated by slopes only.
#[allow(clippy::too_many_arguments)]
fn zoom(
    phi: &mut dyn FnMut(f64) -> (f64, f64),
    mut lo: LinePoint,
    mut hi: LinePoint,
    opts: &LbfgsOptions,
    mut evals: usize,
    roundoff: f64,
    sufficient: &dyn Fn(&LinePoint) -> bool,
    curvature: &dyn Fn(&LinePoint) -> bool,
) -> Option<LinePoint> {
    while evals < opts.max_linesearch {
        if (hi.alpha - lo.alpha).abs() <= 1e-16 * lo.alpha.abs().max(1.0) {
            return None;
        }
        let alpha = safeguarded_interpolation(&lo, &hi, roundoff);
        let (value, slope) = phi(alpha);
        evals += 1;
        let point = LinePoint {
            alpha,
            value,
            slope,
        };
        if !value.is_finite() || !slope.is_finite() {
            hi = LinePoint {
                alpha,
                value: f64::INFINITY,
                slope: f64::NAN,
            };
            continue;
        }
        if !sufficient(&point) || value >= lo.value + roundoff {
            hi = point;
        } else {
            if curvature(&point) {
                return Some(point);
            }
            if slope * (hi.alpha - lo.alpha) >= 0.0 {
                hi = lo;
            }
            lo = point;
        }
    }
    None
}

/// Minimiser of the cubic through (lo, hi) with their slopes (the secant root of the slopes when
/// the values differ by less than `roundoff`), kept inside the middle 80% of the bracket; falls
/// back to bisection when the interpolant is unusable.
fn safeguarded_interpolation(lo: &LinePoint, hi: &LinePoint, roundoff: f64) -> f64 {
    let (a, b) = (lo.alpha, hi.alpha);
    let width = b - a;
    let bisect = a + 0.5 * width;
    if !hi.value.is_finite() || !hi.slope.is_finite() {
        return bisect;
    }
    let t = if (hi.value - lo.value).abs() <= roundoff {
        a - lo.slope * width / (hi.slope - lo.slope)
    } else {
        let d1 = lo.slope + hi.slope - 3.0 * (lo.value - hi.value) / (a - b);
        let disc = d1 * d1 - lo.slope * hi.slope;
        if disc < 0.0 {
            return bisect;
        }
        let d2 = width.signum() * disc.sqrt();
        b - width * (hi.slope + d2 - d1) / (hi.slope - lo.slope + 2.0 * d2)
    };
    let (min, max) = if width > 0.0 {
        (a + 0.1 * width, b - 0.1 * width)
    } else {
        (b - 0.1 * width, a + 0.1 * width)
    };
    if t.is_finite() {
        t.clamp(min, max)
    } else {
        bisect
    }
}

/// Minimises `problem` from `x0` with L-BFGS.
pub fn lbfgs(
    problem: &mut dyn Problem,
    x0: &[f64],
    opts: &LbfgsOptions,
    callback: Callback,
) -> Report {
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut g = vec![0.0; n];
    let mut f = problem.value_grad(&x, &mut g);
    let report = |status, iterations, x: Vec<f64>, f: f64, g: &[f64]| Report {
        status,
        iterations,
        value: f,
        optimality: norm_inf(g),
        violation: 0.0,
        x,
    };
    if !f.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return report(Status::Diverged, 0, x, f, &g);
    }
    let mut memory = Memory::new(opts.memory);
    let mut d = vec![0.0; n];
    let mut x_trial = vec![0.0; n];
    let mut g_trial = vec![0.0; n];
    for iter in 1..=opts.max_iter {
        if norm_inf(&g) <= opts.gtol {
            return report(Status::Converged, iter - 1, x, f, &g);
        }
        memory.direction(&g, None, &mut d);
        let mut slope = dot(&g, &d);
        if !(slope < 0.0) {
            memory.clear();
            memory.direction(&g, None, &mut d);
            slope = dot(&g, &d);
        }
        let accepted = loop {
            let alpha_init = if memory.is_empty() {
                (1.0 / norm_inf(&d)).min(1.0)
            } else {
                1.0
            };
            let mut phi = |alpha: f64| {
                for i in 0..n {
                    x_trial[i] = x[i] + alpha * d[i];
                }
                let value = problem.value_grad(&x_trial, &mut g_trial);
                (value, dot(&g_trial, &d))
            };
            match strong_wolfe(&mut phi, f, slope, alpha_init, opts) {
                Some(point) => break Some(point),
                None if !memory.is_empty() => {
                    memory.clear();
                    memory.direction(&g, None, &mut d);
                    slope = dot(&g, &d);
                }
                None => break None,
            }
        };
        let Some(point) = accepted else {
            return report(Status::LineSearchFailed, iter - 1, x, f, &g);
        };
        let s: Vec<f64> = x_trial.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_trial.iter().zip(&g).map(|(a, b)| a - b).collect();
        memory.push(s, y);
        let f_prev = f;
        std::mem::swap(&mut x, &mut x_trial);
        std::mem::swap(&mut g, &mut g_trial);
        f = point.value;
        let info = IterInfo {
            iter,
            value: f,
            optimality: norm_inf(&g),
            violation: 0.0,
            step: point.alpha,
        };
        if callback(&info) == Control::Stop {
            return report(Status::Interrupted, iter, x, f, &g);
        }
        if norm_inf(&g) <= opts.gtol || small_relative_decrease(f_prev, f, opts.ftol) {
            return report(Status::Converged, iter, x, f, &g);
        }
    }
    report(Status::MaxIter, opts.max_iter, x, f, &g)
}
