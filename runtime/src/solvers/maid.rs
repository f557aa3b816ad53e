//! MAID, the adaptively inexact first-order bilevel method (Salehi, Mukherjee, Roberts,
//! Ehrhardt): minimizes F(θ) = G(x̂(θ), θ) with x̂(θ) = argmin_x h(x, θ), h strongly convex in x.
//!
//! Each iteration computes an inexact hypergradient
//!   z = ∇_θ G(x̃, θ) − ∂²_{θx} h(x̃, θ) · q,   ∇²_xx h(x̃, θ) · q ≈ ∇_x G(x̃, θ),
//! from a lower-level solution x̃ with ‖∇_x h(x̃, θ)‖ ≤ μ·ε (so ‖x̃ − x̂‖ ≤ ε; L-BFGS, warm
//! started) and conjugate gradients stopped at residual δ. An a-posteriori bound ω on ‖z − ∇F‖
//! (the reference code's, with its constants estimated by perturbation, each a running maximum)
//! must satisfy ω ≤ (1 − η)‖z‖, so that z is a descent direction; otherwise ε and δ shrink by τ and
//! z is recomputed. A backtracking line search on inexact values (an upper bound on F(θ⁺)
//! against a lower bound on F(θ)) accepts θ − α z; after a success ε and δ grow by ν and the next
//! first step is the accepted one × 10/9; after a failed search (10 + j trials on retry j) ε and
//! δ shrink and the hypergradient is recomputed, until ε reaches rounding or the budget is spent.
//!
//! Bounds on θ are kept by projection P (projected MAID): trial points are P(θ − αz), sufficient
//! decrease is measured by ‖θ⁺ − θ‖²/α, and the descent and stationarity tests use the length of
//! the projected step ‖P(θ − z) − θ‖ in place of ‖z‖ (without bounds all three are MAID's own).

use super::lbfgs::{lbfgs, LbfgsOptions};
use super::options::impl_set_option;
use super::{dot, Bounds, Callback, Control, FnProblem, IterInfo, Report, Status};

/// The accuracy below which MAID stops tightening (the lower level's gradient test has reached
/// rounding).
const MIN_EPS: f64 = 1e-13;

/// Newton steps after L-BFGS in a lower-level solve that has not reached its accuracy.
const NEWTON_STEPS: usize = 8;

/// A bilevel problem: the outer variables θ, the lower level h(x, θ) and the upper level G(x, θ).
pub trait BilevelProblem {
    /// h(x, θ), with ∇_x h into `grad`.
    fn lower(&mut self, theta: &[f64], x: &[f64], grad: &mut [f64]) -> f64;
    /// ∇²_xx h(x, θ) · v into `out`.
    fn lower_hvp(&mut self, theta: &[f64], x: &[f64], v: &[f64], out: &mut [f64]);
    /// ∂²_{θx} h(x, θ) · q = ∇_θ ⟨∇_x h(x, θ), q⟩ into `out` (length outer).
    fn mixed(&mut self, theta: &[f64], x: &[f64], q: &[f64], out: &mut [f64]);
    /// G(x, θ), with ∇_x G into `grad_x` and ∇_θ G into `grad_theta`.
    fn upper(
        &mut self,
        theta: &[f64],
        x: &[f64],
        grad_x: &mut [f64],
        grad_theta: &mut [f64],
    ) -> f64;
}

/// MAID's options (`solve with maid(...)`), defaults of the reference code.
#[derive(Clone, Debug)]
pub struct MaidOptions {
    /// Stop when ‖P(θ − z) − θ‖ (‖z‖ without bounds) ≤ tol (1e-5).
    pub tol: f64,
    /// Initial lower-level accuracy ε (0.1) and CG residual δ (0.1).
    pub eps0: f64,
    pub delta0: f64,
    /// Descent constant η (1e-4): the bound test ω ≤ (1 − η)‖z‖, sufficient decrease η²‖z‖²α
    /// (with bounds: the projected step's length for ‖z‖, ‖θ⁺ − θ‖²/α for ‖z‖²α).
    pub eta: f64,
    /// Backtracking factor ρ (0.9), shrink factor τ of ε and δ (0.5), growth ν after a success (1.05).
    pub rho: f64,
    pub tau: f64,
    pub nu: f64,
    /// First step β₀ (0.1).
    pub beta0: f64,
    /// Outer iterations (100), lower-level L-BFGS iterations per solve (2000), CG iterations (2000).
    pub max_iter: usize,
    pub inner_max_iter: usize,
    pub cg_max_iter: usize,
    /// Lower-level plus CG iterations over the whole run (1e6).
    pub budget: usize,
    /// Strong-convexity constant of h in x; 0 (the default): estimated at the first lower-level
    /// solution as 0.9 × the smallest eigenvalue of ∇²_xx h (Lanczos).
    pub mu: f64,
}

impl Default for MaidOptions {
    fn default() -> Self {
        MaidOptions {
            tol: 1e-5,
            eps0: 0.1,
            delta0: 0.1,
            eta: 1e-4,
            rho: 0.9,
            tau: 0.5,
            nu: 1.05,
            beta0: 0.1,
            max_iter: 100,
            inner_max_iter: 2000,
            cg_max_iter: 2000,
            budget: 1_000_000,
            mu: 0.0,
        }
    }
}

impl_set_option!(MaidOptions {
    tol: nonnegative,
    eps0: positive,
    delta0: positive,
    eta: fraction,
    rho: fraction,
    tau: fraction,
    nu: at_least_one,
    beta0: positive,
    max_iter: count,
    inner_max_iter: positive_count,
    cg_max_iter: positive_count,
    budget: count,
    mu: nonnegative,
});

/// The accuracies and step of one outer iteration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AccuracyStep {
    pub eps: f64,
    pub delta: f64,
    pub step: f64,
}

/// What MAID found: the report (x = θ, value = G at the last lower-level solution, optimality =
/// ‖z‖), μ and the accuracy trail.
#[derive(Clone, Debug)]
pub struct MaidReport {
    pub report: Report,
    pub mu: f64,
    pub trail: Vec<AccuracyStep>,
}

/// Why MAID could not start.
#[derive(Clone, Debug, PartialEq)]
pub enum MaidError {
    /// The estimated smallest eigenvalue of ∇²_xx h is not positive.
    NotStronglyConvex(f64),
}

fn norm(v: &[f64]) -> f64 {
    dot(v, v).sqrt()
}

/// The running state: the problem, counters and the estimated constants.
struct Run<'a> {
    problem: &'a mut dyn BilevelProblem,
    opts: &'a MaidOptions,
    bounds: &'a Bounds,
    mu: f64,
    /// Lower-level and CG iterations so far.
    spent: usize,
    /// Running maxima: ‖∂²_{θx}h‖ (B), its Lipschitz constant in x (L_B), ∇²_xx h's (L_H), ∇_x G's (L_g).
    b: f64,
    l_b: f64,
    l_h: f64,
    l_g: f64,
}

/// A hypergradient and the values it came with.
struct Hyper {
    value: f64,
    grad_x_norm: f64,
    z: Vec<f64>,
    /// ‖P(θ − z) − θ‖, the length of the projected step (‖z‖ without bounds).
    measure: f64,
    /// measure ≤ tol with the bound ω ≤ tol: θ is stationary to 2·tol.
    stationary: bool,
}

/// P(θ − αz), the step of length α along −z projected onto the bounds.
fn projected_trial(bounds: &Bounds, theta: &[f64], z: &[f64], alpha: f64) -> Vec<f64> {
    let mut trial: Vec<f64> = theta.iter().zip(z).map(|(t, z)| t - alpha * z).collect();
    bounds.project(&mut trial);
    trial
}

/// ‖a − b‖.
fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

impl Run<'_> {
    /// Solves the lower level at θ from `x` until ‖∇_x h‖ ≤ μ·eps; returns the accuracy reached,
    /// ‖∇_x h‖/μ (a bound on the distance to the solution, below `eps` unless the solve stopped
    /// early).
    fn solve_lower(&mut self, theta: &[f64], x: &mut Vec<f64>, eps: f64) -> f64 {
        let n = x.len();
        let opts = LbfgsOptions {
            // L-BFGS tests the largest entry; ‖g‖₂ ≤ √n · that.
            gtol: self.mu * eps / (n.max(1) as f64).sqrt(),
            ftol: 0.0,
            max_iter: self.opts.inner_max_iter,
            ..LbfgsOptions::default()
        };
        let problem = &mut *self.problem;
        let mut lower = FnProblem::new(n, |z: &[f64], g: &mut [f64]| problem.lower(theta, z, g));
        let report = lbfgs(&mut lower, x, &opts, &mut |_| Control::Continue);
        self.spent += report.iterations.max(1);
        *x = report.x;
        let mut grad = vec![0.0; n];
        self.problem.lower(theta, x, &mut grad);
        // L-BFGS's line search compares values, which rounding stops at ‖∇h‖ ≈ √(L·ε·|h|).
        // Newton steps (CG on Hessian-vector products) accepted when they shrink the gradient
        // go further.
        let mut grad_norm = norm(&grad);
        let mut trial_grad = vec![0.0; n];
        for _ in 0..NEWTON_STEPS {
            if grad_norm <= self.mu * eps {
                break;
            }
            let step = self.cg(theta, x, &grad, 1e-3 * grad_norm);
            let trial: Vec<f64> = x.iter().zip(&step).map(|(xi, s)| xi - s).collect();
            self.problem.lower(theta, &trial, &mut trial_grad);
            let trial_norm = norm(&trial_grad);
            if !(trial_norm < grad_norm) {
                break;
            }
            *x = trial;
            std::mem::swap(&mut grad, &mut trial_grad);
            grad_norm = trial_norm;
        }
        grad_norm / self.mu
    }

    /// Conjugate gradients on ∇²_xx h · q = b to ‖r‖ ≤ delta, from 0.
    fn cg(&mut self, theta: &[f64], x: &[f64], b: &[f64], delta: f64) -> Vec<f64> {
        let n = b.len();
        let mut q = vec![0.0; n];
        let mut r = b.to_vec();
        let mut p = r.clone();
        let mut hp = vec![0.0; n];
        let mut rr = dot(&r, &r);
        for _ in 0..self.opts.cg_max_iter {
            if rr.sqrt() <= delta {
                break;
            }
            self.problem.lower_hvp(theta, x, &p, &mut hp);
            self.spent += 1;
            let curvature = dot(&p, &hp);
            if curvature <= 0.0 || !curvature.is_finite() {
                break;
            }
            let alpha = rr / curvature;
            for i in 0..n {
                q[i] += alpha * p[i];
                r[i] -= alpha * hp[i];
            }
            let rr_next = dot(&r, &r);
            let beta = rr_next / rr;
            rr = rr_next;
            for i in 0..n {
                p[i] = r[i] + beta * p[i];
            }
        }
        q
    }

    /// 0.9 × the smallest eigenvalue of ∇²_xx h at (x, θ), from the Ritz values of
    /// [`LANCZOS_STEPS`] Lanczos steps (fully reorthogonalized; exact when x has at most that
    /// many entries); an eigenvalue not clearly positive is returned as it is (≤ 0). Power
    /// iterations on λ_max·I − H took a rank-deficient Hessian (zero eigenvalues beside large
    /// ones) for a positive definite one.
    fn estimate_mu(&mut self, theta: &[f64], x: &[f64]) -> f64 {
        let n = x.len();
        let mut q: Vec<f64> = (0..n)
            .map(|i| 1.0 + 0.37 * ((i * 7919) % 13) as f64)
            .collect();
        let mut basis: Vec<Vec<f64>> = Vec::new();
        let (mut alphas, mut betas) = (Vec::new(), Vec::new());
        let mut hq = vec![0.0; n];
        for _ in 0..LANCZOS_STEPS.min(n) {
            // Orthogonal to the basis so far (twice: full reorthogonalization).
            for _ in 0..2 {
                for b in &basis {
                    let c = dot(&q, b);
                    q.iter_mut().zip(b).for_each(|(qi, bi)| *qi -= c * bi);
                }
            }
            let size = norm(&q);
            if !(size > 1e-12 * (1.0 + alphas.iter().fold(0.0f64, |m, a: &f64| m.max(a.abs())))) {
                break; // an invariant subspace: the Ritz values are exact
            }
            if !basis.is_empty() {
                betas.push(size);
            }
            q.iter_mut().for_each(|qi| *qi /= size);
            self.problem.lower_hvp(theta, x, &q, &mut hq);
            self.spent += 1;
            alphas.push(dot(&q, &hq));
            basis.push(std::mem::replace(&mut q, hq.clone()));
        }
        let m = alphas.len();
        let tridiagonal = ndarray::Array2::from_shape_fn((m, m), |(i, j)| match i.abs_diff(j) {
            0 => alphas[i],
            1 => betas[i.min(j)],
            _ => 0.0,
        });
        let ritz = match crate::linalg::symmetric_eigenvalues(tridiagonal.view()) {
            Ok(values) if !values.is_empty() => values,
            _ => return f64::NAN,
        };
        let (lambda_min, lambda_max) = (ritz[0], ritz[m - 1]);
        // Below rounding of λ_max, λ_min is indistinguishable from 0.
        if lambda_min <= 1e-10 * lambda_max.abs() {
            return lambda_min.min(0.0);
        }
        0.9 * lambda_min
    }

    /// The hypergradient at θ from x (of accuracy `accuracy`), shrinking eps and delta (and
    /// re-solving, which updates `accuracy`) until the bound test holds.
    fn hypergradient(
        &mut self,
        theta: &[f64],
        x: &mut Vec<f64>,
        eps: &mut f64,
        delta: &mut f64,
        accuracy: &mut f64,
    ) -> Hyper {
        let (n, p) = (x.len(), theta.len());
        let mut gx = vec![0.0; n];
        let mut gt = vec![0.0; p];
        let mut mixed = vec![0.0; p];
        let mut shifted = vec![0.0; p];
        let mut hq = vec![0.0; n];
        let mut hq_shifted = vec![0.0; n];
        let mut gx_shifted = vec![0.0; n];
        let mut gt_scratch = vec![0.0; p];
        loop {
            let value = self.problem.upper(theta, x, &mut gx, &mut gt);
            let q = self.cg(theta, x, &gx, *delta);
            self.problem.mixed(theta, x, &q, &mut mixed);
            let z: Vec<f64> = gt.iter().zip(&mixed).map(|(g, m)| g - m).collect();
            // Constants by a perturbation of x of size eps along q; along ∇_x G while q is 0
            // (‖∇_x G‖ ≤ δ, CG's tolerance): B must be measured before ω can bound the error of
            // a zero q (B = 0 certified any start stationary where ∇_x G was small).
            let q_norm = norm(&q);
            let probe_mixed;
            let (probe, probe_mixed) = if q_norm > 0.0 {
                (&q, &mixed)
            } else {
                let mut at_gx = vec![0.0; p];
                self.problem.mixed(theta, x, &gx, &mut at_gx);
                probe_mixed = at_gx;
                (&gx, &probe_mixed)
            };
            let probe_norm = norm(probe);
            if probe_norm > 0.0 {
                let u_scale = *eps / probe_norm;
                let moved: Vec<f64> = x
                    .iter()
                    .zip(probe)
                    .map(|(xi, qi)| xi + u_scale * qi)
                    .collect();
                let u_norm = u_scale * probe_norm;
                self.problem.mixed(theta, &moved, probe, &mut shifted);
                self.problem.lower_hvp(theta, x, probe, &mut hq);
                self.problem
                    .lower_hvp(theta, &moved, probe, &mut hq_shifted);
                self.problem
                    .upper(theta, &moved, &mut gx_shifted, &mut gt_scratch);
                let scale = u_norm * probe_norm;
                self.b = self.b.max(norm(probe_mixed) / probe_norm);
                self.l_b = self.l_b.max(distance(&shifted, probe_mixed) / scale);
                self.l_h = self.l_h.max(distance(&hq_shifted, &hq) / scale);
                self.l_g = self.l_g.max(distance(&gx_shifted, &gx) / u_norm);
            }
            let grad_x_norm = norm(&gx);
            let mu = self.mu;
            let l_inverse = self.l_h / (mu * mu);
            let c = self.b / mu + l_inverse * grad_x_norm * self.b + self.l_b * grad_x_norm / mu;
            let acc = *accuracy;
            let omega = c * acc + self.b / mu * *delta + self.l_b / mu * acc * acc;
            let measure = distance(&projected_trial(self.bounds, theta, &z, 1.0), theta);
            let exhausted = *eps < MIN_EPS || self.spent >= self.opts.budget;
            // A descent direction, or a small step certified small (the projection being
            // nonexpansive, the exact projected step is at most measure + ω ≤ 2·tol long).
            let descent = omega <= (1.0 - self.opts.eta) * measure;
            let stationary = measure <= self.opts.tol && omega <= self.opts.tol;
            if descent || stationary || exhausted {
                // Out of accuracy or budget before the test held: the measure of an estimate
                // that may be off by ω, reported as the bound measure + ω on the true one (a
                // spent budget left q at 0, and the measure 0, below any tolerance).
                let certified = descent || stationary;
                return Hyper {
                    value,
                    grad_x_norm,
                    z,
                    measure: if certified { measure } else { measure + omega },
                    stationary,
                };
            }
            *eps *= self.opts.tau;
            *delta *= self.opts.tau;
            *accuracy = self.solve_lower(theta, x, *eps);
        }
    }
}

/// Lanczos steps of the strong-convexity estimate (`Run::estimate_mu`).
const LANCZOS_STEPS: usize = 60;

/// Runs MAID from θ₀ (projected onto `bounds`; the lower level warm-started from `x0`).
pub fn maid(
    problem: &mut dyn BilevelProblem,
    theta0: &[f64],
    x0: &[f64],
    bounds: &Bounds,
    opts: &MaidOptions,
    callback: Callback,
) -> Result<MaidReport, MaidError> {
    let mut theta = theta0.to_vec();
    bounds.project(&mut theta);
    let mut x = x0.to_vec();
    let (mut eps, mut delta, mut beta) = (opts.eps0, opts.delta0, opts.beta0);
    let mut run = Run {
        problem,
        opts,
        bounds,
        mu: if opts.mu > 0.0 { opts.mu } else { 1.0 },
        spent: 0,
        b: 0.0,
        l_b: 0.0,
        l_h: 0.0,
        l_g: 0.0,
    };
    let mut accuracy = run.solve_lower(&theta, &mut x, eps);
    if opts.mu <= 0.0 {
        run.mu = run.estimate_mu(&theta, &x);
        if !(run.mu > 0.0) {
            return Err(MaidError::NotStronglyConvex(run.mu));
        }
        // The first solve assumed μ = 1.
        accuracy = run.solve_lower(&theta, &mut x, eps);
    }
    let mut trail = Vec::new();
    let mut hyper = run.hypergradient(&theta, &mut x, &mut eps, &mut delta, &mut accuracy);
    let mut status = Status::MaxIter;
    let mut iterations = 0;
    let mut gx = vec![0.0; x.len()];
    let mut gt = vec![0.0; theta.len()];
    for iter in 1..=opts.max_iter {
        if hyper.stationary {
            status = Status::Converged;
            break;
        }
        if run.spent >= opts.budget {
            break;
        }
        let mut accepted = None;
        // After a failed search, retry with tighter accuracies while they can still tighten.
        'retries: for retry in 0.. {
            if eps < MIN_EPS || run.spent >= opts.budget || hyper.stationary {
                break;
            }
            let lower_bound = hyper.value - hyper.grad_x_norm * accuracy;
            let mut alpha = beta;
            for _ in 0..10 + retry {
                let trial = projected_trial(bounds, &theta, &hyper.z, alpha);
                let moved = distance(&trial, &theta);
                let mut trial_x = x.clone();
                let trial_accuracy = run.solve_lower(&trial, &mut trial_x, eps);
                let value = run.problem.upper(&trial, &trial_x, &mut gx, &mut gt);
                let upper_bound = value
                    + norm(&gx) * trial_accuracy
                    + 0.5 * run.l_g * trial_accuracy * trial_accuracy;
                if upper_bound - lower_bound <= -opts.eta * opts.eta * moved * moved / alpha {
                    accepted = Some((alpha, trial, trial_x, trial_accuracy));
                    break 'retries;
                }
                alpha *= opts.rho;
            }
            eps *= opts.tau;
            delta *= opts.tau;
            accuracy = run.solve_lower(&theta, &mut x, eps);
            hyper = run.hypergradient(&theta, &mut x, &mut eps, &mut delta, &mut accuracy);
        }
        let Some((alpha, trial, trial_x, trial_accuracy)) = accepted else {
            status = if hyper.stationary {
                Status::Converged
            } else if run.spent >= opts.budget {
                Status::MaxIter
            } else {
                Status::LineSearchFailed
            };
            break;
        };
        theta = trial;
        x = trial_x;
        accuracy = trial_accuracy;
        beta = alpha * 10.0 / 9.0;
        trail.push(AccuracyStep {
            eps,
            delta,
            step: alpha,
        });
        eps *= opts.nu;
        delta *= opts.nu;
        iterations = iter;
        hyper = run.hypergradient(&theta, &mut x, &mut eps, &mut delta, &mut accuracy);
        let info = IterInfo {
            iter,
            value: hyper.value,
            optimality: hyper.measure,
            violation: 0.0,
            step: alpha,
        };
        if callback(&info) == Control::Stop {
            status = Status::Interrupted;
            break;
        }
    }
    if hyper.stationary {
        status = Status::Converged;
    }
    Ok(MaidReport {
        report: Report::unconstrained(status, iterations, hyper.value, hyper.measure, theta),
        mu: run.mu,
        trail,
    })
}
