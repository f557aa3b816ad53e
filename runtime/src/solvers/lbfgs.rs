//! Limited-memory BFGS with a strong-Wolfe line search (bracketing + zoom with safeguarded cubic
//! interpolation, Nocedal & Wright Algorithms 3.5/3.6), over [`Vectors`]: the iterates, gradients
//! and correction pairs live in its slots, in host memory or on a device.
//!
//! The sufficient-decrease test allows a round-off slack of 8ε|f(x)|. Non-finite trial values are treated as "step too long": the line search shrinks the step
//! towards the last finite point instead of failing. If the search fails along a quasi-Newton
//! direction, the memory is cleared and steepest descent is tried once before giving up.

use super::options::impl_set_option;
use super::vectors::{HostVectors, Slot, Vectors};
use super::{small_relative_decrease, Callback, Control, IterInfo, Problem, Report, Status};
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
    gtol: nonnegative,
    ftol: nonnegative,
    c1: fraction,
    c2: fraction,
    max_linesearch: positive_count,
} check = |o| match o.c1 < o.c2 {
    true => Ok(()),
    false => Err(super::options::invalid(
        "c1",
        &format!("the Wolfe conditions need c1 < c2, got c1 = {} and c2 = {}", o.c1, o.c2),
    )),
});

/// A stored correction pair: s = x₊ − x, y = ∇f(x₊) − ∇f(x), ρ = 1/(s·y).
struct Pair {
    s: Slot,
    y: Slot,
    rho: f64,
}

/// Stored correction pairs (in slots of [`Vectors`]) and the two-loop recursion.
struct Memory {
    capacity: usize,
    /// Oldest first.
    pairs: VecDeque<Pair>,
    /// Slots for pairs not stored; the last one receives the next candidate pair.
    free: Vec<(Slot, Slot)>,
    /// s·y / y·y of the newest pair: H₀ = γ I.
    gamma: f64,
    /// The two-loop recursion's coefficients, one per pair (kept to reuse its allocation).
    alpha: Vec<f64>,
}

impl Memory {
    /// A memory of `capacity` pairs in the slots from `first` on (2·(capacity + 1) of them:
    /// one pair more, so that a candidate is computed without losing the oldest pair).
    fn new(capacity: usize, first: usize) -> Self {
        let free = (0..=capacity)
            .map(|k| (Slot(first + 2 * k), Slot(first + 2 * k + 1)))
            .collect();
        Memory {
            capacity,
            pairs: VecDeque::new(),
            free,
            gamma: 1.0,
            alpha: Vec::with_capacity(capacity),
        }
    }

    fn slots(capacity: usize) -> usize {
        2 * (capacity + 1)
    }

    fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    fn clear(&mut self) {
        self.free.extend(self.pairs.drain(..).map(|p| (p.s, p.y)));
    }

    /// Stores (x₊ − x, g₊ − g) if the curvature s·y is safely positive; returns whether it was
    /// stored.
    fn push(&mut self, v: &mut dyn Vectors, [x, x_next, g, g_next]: [Slot; 4]) -> bool {
        let Some(&(s, y)) = self.free.last().filter(|_| self.capacity > 0) else {
            return false;
        };
        v.copy(x_next, s);
        v.axpy(-1.0, x, s);
        v.copy(g_next, y);
        v.axpy(-1.0, g, y);
        let (sy, yy) = (v.dot(s, y), v.dot(y, y));
        if !(sy > 1e-12 * yy) || !sy.is_finite() {
            return false;
        }
        self.free.pop();
        if self.pairs.len() == self.capacity {
            let oldest = self.pairs.pop_front().expect("a full memory");
            self.free.push((oldest.s, oldest.y));
        }
        self.pairs.push_back(Pair {
            s,
            y,
            rho: 1.0 / sy,
        });
        self.gamma = sy / yy;
        true
    }

    /// Writes d = −H·g (two-loop recursion, H₀ = (s·y / y·y) I from the newest pair) and
    /// returns the slope g·d.
    fn direction(&mut self, v: &mut dyn Vectors, g: Slot, d: Slot) -> f64 {
        v.copy(g, d);
        v.scale(-1.0, d);
        let alpha = &mut self.alpha;
        alpha.clear();
        alpha.resize(self.pairs.len(), 0.0);
        for (a, p) in alpha.iter_mut().zip(&self.pairs).rev() {
            *a = p.rho * v.dot(p.s, d);
            v.axpy(-*a, p.y, d);
        }
        if !self.pairs.is_empty() {
            v.scale(self.gamma, d);
        }
        for (a, p) in alpha.iter().zip(&self.pairs) {
            let beta = p.rho * v.dot(p.y, d);
            v.axpy(a - beta, p.s, d);
        }
        v.dot(g, d)
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
    // Still expanding with every point decreasing enough: the function falls along the whole
    // ray as far as searched (unbounded below, or a minimum beyond), so the farthest point is
    // taken (the curvature condition aside) rather than no step at all.
    (alpha_max.is_infinite() && prev.alpha > 0.0).then_some(prev)
}

/// Shrinks the bracket [lo, hi] until a strong-Wolfe point is found. Values within `roundoff`
/// of each other count as equal, so near a minimiser the bracket is updated by slopes only.
/// When the evaluations run out (or the bracket collapses) first, `lo`, the best point with
/// sufficient decrease, is taken if it is a step at all: a bracket far wider than the region
/// where the curvature condition holds (a minimum 1e8 away, with the slope ±1 up to it) is
/// progress, not a failure.
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
            break;
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
    (lo.alpha > 0.0).then_some(lo)
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
    lbfgs_in(&mut HostVectors::new(problem, None), x0, opts, callback)
}

/// How often (in iterations) L-BFGS tests whether its iterates ran off beyond
/// [`super::DIVERGING`] when its last step gave curvature information.
const RUNAWAY_TEST_EVERY: usize = 10;

/// Minimises the objective of `v` from `x0` with L-BFGS, its vectors kept by `v`.
pub fn lbfgs_in(
    v: &mut dyn Vectors,
    x0: &[f64],
    opts: &LbfgsOptions,
    callback: Callback,
) -> Report {
    let [mut x, mut g, d, mut x_trial, mut g_trial] = [0, 1, 2, 3, 4].map(Slot);
    // No more pairs than iterations are ever stored: a huge `memory` allocates no more.
    let capacity = opts.memory.min(opts.max_iter);
    let mut memory = Memory::new(capacity, 5);
    v.allocate(5 + Memory::slots(capacity));
    v.write(x, x0);
    let mut f = v.value_grad(x, g);
    let mut g_norm = v.norm_inf(g);
    let report = |v: &mut dyn Vectors, status, iterations, x: Slot, f: f64, g_norm: f64| {
        let mut out = vec![0.0; x0.len()];
        v.read(x, &mut out);
        Report::unconstrained(status, iterations, f, g_norm, out)
    };
    // ‖g‖∞ passes over NaN; g·g does not (and a NaN gradient has no optimality to report).
    let squared = v.dot(g, g);
    if !f.is_finite() || !squared.is_finite() {
        let optimality = if squared.is_nan() { f64::NAN } else { g_norm };
        return report(v, Status::Diverged, 0, x, f, optimality);
    }
    // The step of the last iteration when it gave no curvature pair (a function falling
    // linearly along it, as far as searched): the next search starts there, not over again.
    let mut reach = 0.0f64;
    for iter in 1..=opts.max_iter {
        if g_norm <= opts.gtol {
            return report(v, Status::Converged, iter - 1, x, f, g_norm);
        }
        let mut slope = memory.direction(v, g, d);
        if !(slope < 0.0) {
            memory.clear();
            slope = memory.direction(v, g, d);
        }
        let accepted = loop {
            // Without pairs d = −g.
            let alpha_init = if memory.is_empty() {
                (1.0 / g_norm).min(1.0).max(reach)
            } else {
                1.0
            };
            let mut phi = |alpha: f64| {
                v.copy(x, x_trial);
                v.axpy(alpha, d, x_trial);
                let value = v.value_grad(x_trial, g_trial);
                (value, v.dot(g_trial, d))
            };
            match strong_wolfe(&mut phi, f, slope, alpha_init, opts) {
                Some(point) => break Some(point),
                None if !memory.is_empty() => {
                    memory.clear();
                    slope = memory.direction(v, g, d);
                }
                None => break None,
            }
        };
        let Some(point) = accepted else {
            return report(v, Status::LineSearchFailed, iter - 1, x, f, g_norm);
        };
        reach = match memory.push(v, [x, x_trial, g, g_trial]) {
            true => 0.0,
            false => point.alpha,
        };
        let f_prev = f;
        std::mem::swap(&mut x, &mut x_trial);
        std::mem::swap(&mut g, &mut g_trial);
        f = point.value;
        g_norm = v.norm_inf(g);
        let info = IterInfo {
            iter,
            value: f,
            optimality: g_norm,
            violation: 0.0,
            step: point.alpha,
        };
        if callback(&info) == Control::Stop {
            return report(v, Status::Interrupted, iter, x, f, g_norm);
        }
        if g_norm <= opts.gtol || small_relative_decrease(f_prev, f, opts.ftol) {
            return report(v, Status::Converged, iter, x, f, g_norm);
        }
        // Iterates run off along steps without curvature (a function falling linearly), tested
        // after each, or along directions without curvature while others have some, where the
        // steps grow geometrically: tested every tenth iteration, so the extra reduction (a
        // device round trip on a GPU) costs little.
        let suspect = reach > 0.0 || iter % RUNAWAY_TEST_EVERY == 0;
        if suspect && v.norm_inf(x) > super::DIVERGING {
            return report(v, Status::Diverged, iter, x, f, g_norm);
        }
    }
    report(v, Status::MaxIter, opts.max_iter, x, f, g_norm)
}
