//! L-BFGS-B for bound constraints l ≤ x ≤ u (Byrd, Lu, Nocedal & Zhu 1995; Zhu, Byrd, Lu &
//! Nocedal 1997; with the subspace-step projection of Morales & Nocedal 2011, "L-BFGS-B 3.0"),
//! the method of scipy's `minimize(method = "L-BFGS-B")`.
//!
//! Each iteration, from the iterate x with gradient g:
//! 1. **Model.** B = θI − W M Wᵀ is the compact limited-memory BFGS matrix of the last m pairs
//!    sᵢ = x_{i+1} − xᵢ, yᵢ = g_{i+1} − gᵢ (S, Y their n×m matrices): W = [Y, θS],
//!    M = [[−D, Lᵀ], [L, θSᵀS]]⁻¹ with D = diag(sᵢᵀyᵢ), L the strictly lower triangle of SᵀY,
//!    θ = yᵀy / sᵀy of the newest pair (θ = 1 and W empty while the memory is empty).
//! 2. **Generalized Cauchy point.** The first local minimiser x_c of the quadratic model
//!    m(z) = gᵀ(z − x) + ½(z − x)ᵀB(z − x) along the projected steepest-descent path
//!    x(t) = P(x − t g): the breakpoints where variables reach their bounds are visited in
//!    increasing order, and on each segment the model is a quadratic in t whose first and second
//!    derivatives are updated in O(m²) per breakpoint (Algorithm CP of the 1995 paper).
//! 3. **Subspace minimisation** (direct primal method). With the variables at a bound at x_c held
//!    fixed (Z selects the free ones), the model's minimiser over the free variables is
//!    x_c + Z d̂ with d̂ = −B̂⁻¹ r̂, r̂ = Zᵀ(g + θ(x_c − x) − W M Wᵀ(x_c − x)), B̂ = ZᵀBZ inverted
//!    by the Sherman–Morrison–Woodbury formula: d̂ = −r̂/θ − ZᵀW (M⁻¹ − WᵀZZᵀW/θ)⁻¹ WᵀZ r̂ / θ².
//!    Version 3.0 first projects x_c + Z d̂ onto the box and keeps that point if it is a descent
//!    direction from x; otherwise it backtracks along d̂ from x_c to the box boundary.
//! 4. **Line search** from x along d = x̄ − x (x̄ the point of step 3): Moré–Thuente with
//!    ftol = 1e-3, gtol = 0.9, xtol = 0.1, the largest feasible step as the upper limit, and first
//!    trial step 1, except in the first iteration of a problem that is not a full box:
//!    min(1/‖d‖₂, step limit) (the step limit of the first iteration of a bounded problem is 1).
//!    Non-finite values shrink the step towards the last good one. `max_linesearch` evaluations
//!    are allowed (scipy's `maxls` is 20).
//! 5. **Update.** (s, y) enters the memory unless sᵀy ≤ ε·(−gᵀs) (ε the machine epsilon). If the
//!    line search fails, or a small matrix is singular, the memory is cleared and the iteration
//!    restarts from the Cauchy step; a failure with an empty memory ends the solve.
//!
//! Problems without any finite bound skip step 2 once the memory is non-empty (x_c = x, all
//! variables free), which makes step 3 the L-BFGS step. The solve stops when the projected
//! gradient ‖P(x − g) − x‖∞ ≤ `gtol` (scipy's `gtol`/pgtol), when
//! (f_k − f_{k+1}) ≤ `ftol`·max(|f_k|, |f_{k+1}|, 1) (scipy's `ftol` = factr·ε), or after
//! `max_iter` iterations. The options `c1`/`c2` of [`LbfgsOptions`] apply to plain L-BFGS only.

use super::more_thuente::{LineSearch, Next, Tolerances};
use super::{
    dot, small_relative_decrease, Callback, Control, IterInfo, LbfgsOptions, Problem, Report,
    Status,
};
use crate::linalg::{Lu, Pivoting};
use ndarray::{Array1, Array2, ArrayView1, ArrayViewMut1, ShapeBuilder};
use std::collections::VecDeque;

/// The line-search constants of L-BFGS-B (ftol, gtol, xtol of its `dcsrch` call).
const LINE_SEARCH: Tolerances = Tolerances {
    ftol: 1e-3,
    gtol: 0.9,
    xtol: 0.1,
};

/// The step limit along a direction that meets no bound, relative to max(1, ‖x‖∞): iterates
/// that run off to infinity grow geometrically and soon pass [`super::DIVERGING`].
const UNBOUNDED_STEP_MAX: f64 = 1e10;

/// Box bounds; entries may be ±∞.
#[derive(Clone, Debug, PartialEq)]
pub struct Bounds {
    lower: Vec<f64>,
    upper: Vec<f64>,
    /// The variables with a finite bound, the only ones projecting can move (solvers project
    /// every step, and most variables of most models are free).
    bounded: Vec<usize>,
}

impl Bounds {
    /// Bounds from per-variable limits; errors if lengths differ or some lower > upper or is NaN.
    pub fn new(lower: Vec<f64>, upper: Vec<f64>) -> Result<Self, String> {
        if lower.len() != upper.len() {
            return Err(format!(
                "bounds have {} lower and {} upper entries",
                lower.len(),
                upper.len()
            ));
        }
        if let Some(i) = (0..lower.len()).find(|&i| !(lower[i] <= upper[i])) {
            return Err(format!(
                "bound {i}: lower {} > upper {}",
                lower[i], upper[i]
            ));
        }
        Ok(Bounds::from_limits(lower, upper))
    }

    fn from_limits(lower: Vec<f64>, upper: Vec<f64>) -> Self {
        let bounded = (0..lower.len())
            .filter(|&i| lower[i].is_finite() || upper[i].is_finite())
            .collect();
        Bounds {
            lower,
            upper,
            bounded,
        }
    }

    /// x ≥ 0 for `n` variables.
    pub fn nonneg(n: usize) -> Self {
        Bounds::from_limits(vec![0.0; n], vec![f64::INFINITY; n])
    }

    /// No bounds for `n` variables.
    pub fn unbounded(n: usize) -> Self {
        Bounds::from_limits(vec![f64::NEG_INFINITY; n], vec![f64::INFINITY; n])
    }

    pub fn len(&self) -> usize {
        self.lower.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lower.is_empty()
    }

    pub fn lower(&self) -> &[f64] {
        &self.lower
    }

    pub fn upper(&self) -> &[f64] {
        &self.upper
    }

    /// The box of y = x / c for positive scales c (the bounds divided by c; ±∞ stay).
    pub fn scaled(&self, c: &[f64]) -> Bounds {
        let divide = |bound: &[f64]| bound.iter().zip(c).map(|(b, c)| b / c).collect();
        Bounds::from_limits(divide(&self.lower), divide(&self.upper))
    }

    /// Whether no variable has a finite bound (projecting is then the identity).
    pub fn is_unbounded(&self) -> bool {
        self.bounded.is_empty()
    }

    /// Clamps `x` into the box in place.
    pub fn project(&self, x: &mut [f64]) {
        debug_assert_eq!(x.len(), self.lower.len());
        for &i in &self.bounded {
            x[i] = x[i].clamp(self.lower[i], self.upper[i]);
        }
    }

    /// ‖P(x − g) − x‖∞, the first-order optimality measure for the box.
    pub fn projected_gradient_norm(&self, x: &[f64], g: &[f64]) -> f64 {
        (0..x.len())
            .map(|i| ((x[i] - g[i]).clamp(self.lower[i], self.upper[i]) - x[i]).abs())
            .fold(0.0, f64::max)
    }
}

/// The limited-memory matrix B = θI − W M Wᵀ, W = [Y, θS].
struct CompactMemory {
    capacity: usize,
    s: VecDeque<Vec<f64>>,
    y: VecDeque<Vec<f64>>,
    theta: f64,
    /// SᵀY and SᵀS (k×k, entry [i][j] = sᵢᵀyⱼ resp. sᵢᵀsⱼ), kept up to date pair by pair.
    sy: Vec<Vec<f64>>,
    ss: Vec<Vec<f64>>,
    /// M⁻¹ = [[−D, Lᵀ], [L, θSᵀS]] (2k×2k, row-major, k stored pairs).
    middle_inverse: Vec<f64>,
    /// M.
    middle: Vec<f64>,
}

impl CompactMemory {
    fn new(capacity: usize) -> Self {
        CompactMemory {
            capacity,
            s: VecDeque::new(),
            y: VecDeque::new(),
            theta: 1.0,
            sy: Vec::new(),
            ss: Vec::new(),
            middle_inverse: Vec::new(),
            middle: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.s.is_empty()
    }

    /// 2k, the number of columns of W.
    fn width(&self) -> usize {
        2 * self.s.len()
    }

    fn clear(&mut self) {
        self.s.clear();
        self.y.clear();
        self.theta = 1.0;
        self.sy.clear();
        self.ss.clear();
        self.middle_inverse.clear();
        self.middle.clear();
    }

    /// Adds a pair (dropping the oldest beyond the capacity), sets θ = yᵀy/sᵀy and rebuilds M;
    /// returns false (the memory is then unusable) if M⁻¹ is singular.
    fn push(&mut self, s: Vec<f64>, y: Vec<f64>) -> bool {
        if self.capacity == 0 {
            return true;
        }
        if self.s.len() == self.capacity {
            self.s.pop_front();
            self.y.pop_front();
            for products in [&mut self.sy, &mut self.ss] {
                products.remove(0);
                products.iter_mut().for_each(|row| {
                    row.remove(0);
                });
            }
        }
        self.theta = dot(&y, &y) / dot(&s, &y);
        for (i, si) in self.s.iter().enumerate() {
            self.sy[i].push(dot(si, &y));
            self.ss[i].push(dot(si, &s));
        }
        let mut sy_row: Vec<f64> = self.y.iter().map(|yj| dot(&s, yj)).collect();
        sy_row.push(dot(&s, &y));
        let mut ss_row: Vec<f64> = self.s.iter().map(|sj| dot(&s, sj)).collect();
        ss_row.push(dot(&s, &s));
        self.sy.push(sy_row);
        self.ss.push(ss_row);
        self.s.push_back(s);
        self.y.push_back(y);
        let k = self.s.len();
        let w = 2 * k;
        let mut a = vec![0.0; w * w];
        for i in 0..k {
            a[i * w + i] = -self.sy[i][i];
            for j in 0..i {
                a[(k + i) * w + j] = self.sy[i][j];
                a[j * w + k + i] = self.sy[i][j];
            }
            for j in 0..k {
                a[(k + i) * w + k + j] = self.theta * self.ss[i][j];
            }
        }
        let mut middle = vec![0.0; w * w];
        match Lu::factor(&a, w, Pivoting::Partial).inverse_into(&mut middle) {
            Ok(()) => {
                self.middle = middle;
                self.middle_inverse = a;
                true
            }
            Err(_) => false,
        }
    }

    /// The rows `indices` of W, as a matrix (column-major: each column is gathered from one
    /// stored vector).
    fn rows(&self, indices: &[usize]) -> Array2<f64> {
        let k = self.s.len();
        let mut rows = Array2::zeros((indices.len(), 2 * k).f());
        for (j, (s, y)) in self.s.iter().zip(&self.y).enumerate() {
            let gather = |column: ArrayViewMut1<f64>, v: &[f64], factor: f64| {
                column
                    .into_iter()
                    .zip(indices)
                    .for_each(|(c, &i)| *c = factor * v[i])
            };
            gather(rows.column_mut(j), y, 1.0);
            gather(rows.column_mut(k + j), s, self.theta);
        }
        rows
    }

    /// Row `i` of W: (y₁ᵢ, …, y_kᵢ, θs₁ᵢ, …, θs_kᵢ).
    fn w_row(&self, i: usize) -> Vec<f64> {
        let ys = self.y.iter().map(|y| y[i]);
        let ss = self.s.iter().map(|s| self.theta * s[i]);
        ys.chain(ss).collect()
    }

    /// Wᵀv.
    fn w_transpose_times(&self, v: &[f64]) -> Vec<f64> {
        let ys = self.y.iter().map(|y| dot(y, v));
        let ss = self.s.iter().map(|s| self.theta * dot(s, v));
        ys.chain(ss).collect()
    }

    /// M v.
    fn middle_times(&self, v: &[f64]) -> Vec<f64> {
        self.middle
            .chunks(v.len().max(1))
            .map(|row| dot(row, v))
            .collect()
    }
}

/// The generalized Cauchy point and what the subspace step needs from its computation.
struct CauchyPoint {
    x: Vec<f64>,
    /// Wᵀ(x_c − x).
    c: Vec<f64>,
    /// Variables not at a bound at x_c (nor fixed by l = u).
    free: Vec<bool>,
}

impl CauchyPoint {
    /// x itself with every variable free (the start of an unconstrained L-BFGS step).
    fn at(x: &[f64], width: usize) -> Self {
        CauchyPoint {
            x: x.to_vec(),
            c: vec![0.0; width],
            free: vec![true; x.len()],
        }
    }
}

/// The first local minimiser of the model along the projected steepest-descent path
/// P(x − t g), t ≥ 0 (Algorithm CP of Byrd, Lu, Nocedal & Zhu 1995).
fn cauchy_point(x: &[f64], g: &[f64], bounds: &Bounds, memory: &CompactMemory) -> CauchyPoint {
    let n = x.len();
    let theta = memory.theta;
    let mut point = CauchyPoint::at(x, memory.width());
    // d: the path direction −g of the variables still moving; breakpoints (t, i).
    let mut d = vec![0.0; n];
    let mut breakpoints = Vec::new();
    for i in 0..n {
        let (l, u) = (bounds.lower[i], bounds.upper[i]);
        let blocked = l == u || (x[i] <= l && g[i] >= 0.0) || (x[i] >= u && g[i] <= 0.0);
        if blocked {
            point.free[i] = false;
        } else if g[i] != 0.0 {
            d[i] = -g[i];
            let t = if g[i] < 0.0 {
                (u - x[i]) / -g[i]
            } else {
                (x[i] - l) / g[i]
            };
            if t.is_finite() {
                breakpoints.push((t, i));
            }
        }
    }
    // Derivatives of the model along the current segment z + Δt·d, with p = Wᵀd, c = Wᵀz:
    // f' = gᵀd + θdᵀz − pᵀMc, f'' = θdᵀd − pᵀMp.
    let mut p = memory.w_transpose_times(&d);
    let mut slope = -dot(&d, &d);
    if slope == 0.0 {
        return point;
    }
    let mut curvature = -theta * slope - dot(&p, &memory.middle_times(&p));
    let initial_curvature = curvature;
    let mut to_minimum = -slope / curvature;
    let mut t_previous = 0.0;
    breakpoints.sort_by(|a, b| a.0.total_cmp(&b.0));
    for &(t, b) in &breakpoints {
        let segment = t - t_previous;
        if to_minimum < segment {
            break;
        }
        // Variable b reaches its bound and stops moving.
        let bound = if d[b] > 0.0 {
            bounds.upper[b]
        } else {
            bounds.lower[b]
        };
        let gb = g[b];
        let zb = bound - x[b];
        point.x[b] = bound;
        point.free[b] = false;
        d[b] = 0.0;
        point
            .c
            .iter_mut()
            .zip(&p)
            .for_each(|(c, p)| *c += segment * p);
        let wb = memory.w_row(b);
        let m_wb = memory.middle_times(&wb);
        slope += segment * curvature + gb * gb + theta * gb * zb - gb * dot(&m_wb, &point.c);
        curvature -= theta * gb * gb + 2.0 * gb * dot(&m_wb, &p) + gb * gb * dot(&m_wb, &wb);
        curvature = curvature.max(f64::EPSILON * initial_curvature);
        p.iter_mut().zip(&wb).for_each(|(p, w)| *p += gb * w);
        to_minimum = -slope / curvature;
        t_previous = t;
    }
    let to_minimum = to_minimum.max(0.0);
    let t = t_previous + to_minimum;
    for i in (0..n).filter(|&i| d[i] != 0.0) {
        point.x[i] = (x[i] + t * d[i]).clamp(bounds.lower[i], bounds.upper[i]);
    }
    point
        .c
        .iter_mut()
        .zip(&p)
        .for_each(|(c, p)| *c += to_minimum * p);
    point
}

/// The point x̄ of step 3 (module docs): the model minimised over the variables free at the
/// Cauchy point, projected or backtracked into the box. `None` if the reduced system is singular.
fn subspace_point(
    x: &[f64],
    g: &[f64],
    bounds: &Bounds,
    memory: &CompactMemory,
    cauchy: CauchyPoint,
) -> Option<Vec<f64>> {
    let free: Vec<usize> = (0..x.len()).filter(|&i| cauchy.free[i]).collect();
    if memory.is_empty() || free.is_empty() {
        return Some(cauchy.x);
    }
    let theta = memory.theta;
    let width = memory.width();
    let m_c = memory.middle_times(&cauchy.c);
    // r̂ = Zᵀ(g + θ(x_c − x) − W M c); the system (M⁻¹ − WᵀZZᵀW/θ) v = WᵀZ r̂.
    let wz = memory.rows(&free);
    let reduced: Array1<f64> = free
        .iter()
        .zip(wz.dot(&ArrayView1::from(&m_c)))
        .map(|(&i, w_mc)| g[i] + theta * (cauchy.x[i] - x[i]) - w_mc)
        .collect();
    let rhs = wz.t().dot(&reduced);
    let gram = wz.t().dot(&wz);
    let system: Vec<f64> = (memory.middle_inverse.iter().zip(gram.iter()))
        .map(|(m, a)| m - a / theta)
        .collect();
    let mut v = rhs.to_vec();
    Lu::factor(&system, width, Pivoting::Partial)
        .solve_in_place(&mut v, 1)
        .ok()?;
    let step: Vec<f64> = (reduced / -theta - wz.dot(&Array1::from(v)) / (theta * theta)).to_vec();
    // L-BFGS-B 3.0: the projected subspace point, if no bound cuts it or it is still a
    // descent direction from x.
    let mut target = cauchy.x.clone();
    let mut clipped = false;
    for (&i, s) in free.iter().zip(&step) {
        let (l, u) = (bounds.lower[i], bounds.upper[i]);
        target[i] = (cauchy.x[i] + s).clamp(l, u);
        clipped |= target[i] == l || target[i] == u;
    }
    let descent = (0..x.len()).map(|i| (target[i] - x[i]) * g[i]).sum::<f64>() <= 0.0;
    if !clipped || descent {
        return Some(target);
    }
    // Otherwise the longest feasible fraction of the step from the Cauchy point; the variable
    // that blocks it is put exactly on its bound.
    let mut fraction = 1.0;
    let mut blocking = None;
    for (k, (&i, &s)) in free.iter().zip(&step).enumerate() {
        let room = if s < 0.0 {
            bounds.lower[i] - cauchy.x[i]
        } else {
            bounds.upper[i] - cauchy.x[i]
        };
        let ratio = if s == 0.0 {
            f64::INFINITY
        } else {
            (room / s).max(0.0)
        };
        if ratio < fraction {
            fraction = ratio;
            blocking = Some(k);
        }
    }
    let mut target = cauchy.x;
    for (k, (&i, &s)) in free.iter().zip(&step).enumerate() {
        target[i] = if Some(k) == blocking {
            if s > 0.0 {
                bounds.upper[i]
            } else {
                bounds.lower[i]
            }
        } else {
            target[i] + fraction * s
        };
    }
    Some(target)
}

/// The largest α with x + α d inside the box (`cap` if nothing limits it).
fn step_to_boundary(x: &[f64], d: &[f64], bounds: &Bounds, cap: f64) -> f64 {
    let mut limit = cap;
    for i in 0..x.len() {
        let room = if d[i] < 0.0 {
            bounds.lower[i] - x[i]
        } else if d[i] > 0.0 {
            bounds.upper[i] - x[i]
        } else {
            continue;
        };
        limit = limit.min((room / d[i]).max(0.0));
    }
    limit
}

/// Buffers for the trial point of a line search.
struct Trial {
    x: Vec<f64>,
    g: Vec<f64>,
}

/// Searches along x + α d (α = 1 is exactly `target`); on success returns (α, f) with the
/// accepted point and its gradient in `trial`.
#[allow(clippy::too_many_arguments)]
fn search_line(
    problem: &mut dyn Problem,
    x: &[f64],
    f: f64,
    slope: f64,
    d: &[f64],
    target: &[f64],
    (first_step, step_max): (f64, f64),
    max_evaluations: usize,
    bounds: &Bounds,
    trial: &mut Trial,
) -> Option<(f64, f64)> {
    let mut search = LineSearch::new(f, slope, first_step, 0.0, step_max, LINE_SEARCH);
    let mut step = search.first_step();
    for _ in 0..max_evaluations {
        if step == 1.0 {
            trial.x.copy_from_slice(target);
        } else {
            for i in 0..x.len() {
                trial.x[i] = x[i] + step * d[i];
            }
            bounds.project(&mut trial.x);
        }
        let value = problem.value_grad(&trial.x, &mut trial.g);
        match search.update(value, dot(&trial.g, d)) {
            Next::Accept => return Some((step, value)),
            Next::Evaluate(next) => step = next,
        }
    }
    None
}

/// Minimises `problem` over `bounds` from `x0` (projected onto the box first) with L-BFGS-B.
/// Returns `Status::Diverged` with `x0` if `bounds` has the wrong length or f(x0) is not finite,
/// `Status::LineSearchFailed` at the last iterate if no step is found even along the Cauchy step.
pub fn projected_lbfgs(
    problem: &mut dyn Problem,
    x0: &[f64],
    bounds: &Bounds,
    opts: &LbfgsOptions,
    callback: Callback,
) -> Report {
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut g = vec![0.0; n];
    let report = |status, iterations, x: Vec<f64>, f: f64, optimality: f64| Report {
        status,
        iterations,
        value: f,
        optimality,
        violation: 0.0,
        x,
    };
    if bounds.len() != n {
        return report(Status::Diverged, 0, x, f64::NAN, f64::NAN);
    }
    bounds.project(&mut x);
    let mut f = problem.value_grad(&x, &mut g);
    if !f.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return report(Status::Diverged, 0, x, f, f64::NAN);
    }
    let constrained = bounds
        .lower
        .iter()
        .chain(&bounds.upper)
        .any(|v| v.is_finite());
    let boxed = bounds
        .lower
        .iter()
        .chain(&bounds.upper)
        .all(|v| v.is_finite());
    let mut memory = CompactMemory::new(opts.memory);
    let mut trial = Trial {
        x: vec![0.0; n],
        g: vec![0.0; n],
    };
    let mut optimality = bounds.projected_gradient_norm(&x, &g);
    if optimality <= opts.gtol {
        return report(Status::Converged, 0, x, f, optimality);
    }
    let mut iter = 0;
    while iter < opts.max_iter {
        let cauchy = if constrained || memory.is_empty() {
            cauchy_point(&x, &g, bounds, &memory)
        } else {
            CauchyPoint::at(&x, memory.width())
        };
        let Some(target) = subspace_point(&x, &g, bounds, &memory, cauchy) else {
            memory.clear();
            continue;
        };
        let d: Vec<f64> = target.iter().zip(&x).map(|(t, x)| t - x).collect();
        let slope = dot(&g, &d);
        let unbounded_step = UNBOUNDED_STEP_MAX * x.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let step_max = match (constrained, iter) {
            (false, _) => unbounded_step,
            (true, 0) => 1.0,
            (true, _) => step_to_boundary(&x, &d, bounds, unbounded_step),
        };
        let first_step = if iter == 0 && !boxed {
            (1.0 / dot(&d, &d).sqrt()).min(step_max)
        } else {
            1.0
        };
        let accepted = if slope < 0.0 {
            search_line(
                problem,
                &x,
                f,
                slope,
                &d,
                &target,
                (first_step, step_max),
                opts.max_linesearch,
                bounds,
                &mut trial,
            )
        } else {
            None
        };
        let Some((step, value)) = accepted else {
            if memory.is_empty() {
                return report(Status::LineSearchFailed, iter, x, f, optimality);
            }
            memory.clear();
            continue;
        };
        iter += 1;
        let s: Vec<f64> = trial.x.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = trial.g.iter().zip(&g).map(|(a, b)| a - b).collect();
        let descent = -dot(&g, &s);
        let f_previous = f;
        std::mem::swap(&mut x, &mut trial.x);
        std::mem::swap(&mut g, &mut trial.g);
        f = value;
        optimality = bounds.projected_gradient_norm(&x, &g);
        let info = IterInfo {
            iter,
            value: f,
            optimality,
            violation: 0.0,
            step,
        };
        if callback(&info) == Control::Stop {
            return report(Status::Interrupted, iter, x, f, optimality);
        }
        // First: beyond 1e20 a unit of gradient no longer moves x (x + 1 = x), and the
        // projected gradient reads 0.
        if x.iter().any(|v| v.abs() > super::DIVERGING) {
            return report(Status::Diverged, iter, x, f, optimality);
        }
        if optimality <= opts.gtol || small_relative_decrease(f_previous, f, opts.ftol) {
            return report(Status::Converged, iter, x, f, optimality);
        }
        if dot(&s, &y) > f64::EPSILON * descent && !memory.push(s, y) {
            memory.clear();
        }
    }
    report(Status::MaxIter, iter, x, f, optimality)
}
