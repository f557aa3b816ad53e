//! Solver tests on problems with known solutions.
#![allow(clippy::needless_range_loop, clippy::type_complexity)]

#[path = "support/solve.rs"]
mod support;

use optc_runtime::prox::soft_threshold;
use optc_runtime::simulate::regression;
use optc_runtime::solvers::{
    adam, adam_within, augmented_lagrangian, augmented_lagrangian_from, central_path,
    concomitant_scale, lbfgs, penalty, projected_lbfgs, proximal_gradient, AdamOptions,
    AugLagOptions, AugLagReport, Bounds, ConstrainedProblem, Control, DualStart, FnConstrained,
    FnPathObjective, FnProblem, InnerSolver, IterInfo, L1Penalty, LbfgsOptions, MaidOptions,
    PathInner, PathOptions, ProxGradOptions, Relation, SetOption, Status,
};
use support::{assert_close, go_on};

/// f(x) = ½ xᵀAx − bᵀx for a dense row-major SPD A.
fn quadratic(a: Vec<f64>, b: Vec<f64>) -> impl FnMut(&[f64], &mut [f64]) -> f64 {
    move |x, g| {
        let n = b.len();
        let mut value = 0.0;
        for i in 0..n {
            g[i] = (0..n).map(|j| a[i * n + j] * x[j]).sum::<f64>() - b[i];
            value += 0.5 * (g[i] - b[i]) * x[i];
        }
        value
    }
}

#[test]
fn lbfgs_solves_ill_conditioned_diagonal_quadratic() {
    let diag = [1.0, 10.0, 100.0, 1e4];
    let mut a = vec![0.0; 16];
    (0..4).for_each(|i| a[i * 5] = diag[i]);
    let b = vec![1.0, 2.0, 3.0, 4.0];
    let mut problem = FnProblem::new(4, quadratic(a, b));
    // Condition number 1e4: near x* the decrease of f drops below its round-off (|f| ≈ 0.75) once
    // ‖g‖ ≲ 1e-6, so the solve ends on "no further decrease" with ‖x − x*‖ ≤ ‖g‖/λ_min.
    let opts = LbfgsOptions {
        gtol: 1e-10,
        ftol: 0.0,
        ..Default::default()
    };
    let report = lbfgs(&mut problem, &[0.0; 4], &opts, &mut go_on);
    assert_eq!(report.status, Status::Converged);
    assert!(report.optimality < 1e-6, "{report:?}");
    assert_close(&report.x, &[1.0, 0.2, 0.03, 4e-4], 1e-6);
}

#[test]
fn lbfgs_solves_dense_quadratic() {
    // A = [[4,1,0],[1,3,1],[0,1,2]], b = A·(1, −2, 3) = (2, −2, 4).
    let a = vec![4.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 2.0];
    let mut problem = FnProblem::new(3, quadratic(a, vec![2.0, -2.0, 4.0]));
    let opts = LbfgsOptions {
        gtol: 1e-10,
        ftol: 0.0,
        ..Default::default()
    };
    let report = lbfgs(&mut problem, &[0.0; 3], &opts, &mut go_on);
    assert_eq!(report.status, Status::Converged);
    assert_close(&report.x, &[1.0, -2.0, 3.0], 1e-9);
}

fn rosenbrock(x: &[f64], g: &mut [f64]) -> f64 {
    let (a, b) = (x[0], x[1]);
    g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
    g[1] = 200.0 * (b - a * a);
    (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
}

#[test]
fn lbfgs_minimizes_rosenbrock() {
    let mut problem = FnProblem::new(2, rosenbrock);
    let opts = LbfgsOptions {
        gtol: 1e-9,
        ftol: 0.0,
        ..Default::default()
    };
    let report = lbfgs(&mut problem, &[-1.2, 1.0], &opts, &mut go_on);
    assert_eq!(report.status, Status::Converged);
    assert!(report.iterations < 100, "{} iterations", report.iterations);
    assert_close(&report.x, &[1.0, 1.0], 1e-7);
}

/// The chained Rosenbrock function Σ 100 (xᵢ₊₁ − xᵢ²)² + (1 − xᵢ)² (minimum 0 at x = 1), with its
/// gradient in `g`.
fn chained(x: &[f64], g: &mut [f64]) -> f64 {
    g.fill(0.0);
    let mut value = 0.0;
    for i in 0..x.len() - 1 {
        let t = x[i + 1] - x[i] * x[i];
        value += 100.0 * t * t + (1.0 - x[i]).powi(2);
        g[i] += -400.0 * x[i] * t - 2.0 * (1.0 - x[i]);
        g[i + 1] += 200.0 * t;
    }
    value
}

/// The classic start (−1.2, 1, −1.2, 1, …) of [`chained`] in `n` variables.
fn chained_start(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| if i % 2 == 0 { -1.2 } else { 1.0 })
        .collect()
}

#[test]
fn lbfgs_converges_with_every_memory_size() {
    // Chained Rosenbrock in 12 variables (minimum at x = 1): many more iterations than memory
    // pairs, so stored pairs are dropped and their slots reused; with memory 0 steepest descent
    // on a tridiagonal quadratic with condition number 3 (A = tridiag(−0.5, 2, −0.5)).
    let n = 12;
    let x0 = chained_start(n);
    let mut iterations = Vec::new();
    for memory in [1, 2, 5, 10] {
        let mut problem = FnProblem::new(n, chained);
        let opts = LbfgsOptions {
            memory,
            gtol: 1e-8,
            ftol: 0.0,
            max_iter: 5000,
            ..Default::default()
        };
        let report = lbfgs(&mut problem, &x0, &opts, &mut go_on);
        assert_eq!(report.status, Status::Converged, "memory {memory}");
        assert!(
            report.iterations > 2 * memory,
            "{} iterations",
            report.iterations
        );
        assert_close(&report.x, &[1.0; 12], 1e-6);
        iterations.push(report.iterations);
    }
    // More memory, fewer iterations, from one pair to ten.
    assert!(iterations[3] < iterations[0], "{iterations:?}");
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        a[i * n + i] = 2.0;
        if i + 1 < n {
            (a[i * n + i + 1], a[(i + 1) * n + i]) = (-0.5, -0.5);
        }
    }
    let x_star: Vec<f64> = (0..n).map(|i| (i as f64 - 5.5) / 4.0).collect();
    let b: Vec<f64> = (0..n)
        .map(|i| (0..n).map(|j| a[i * n + j] * x_star[j]).sum())
        .collect();
    let mut problem = FnProblem::new(n, quadratic(a, b));
    let opts = LbfgsOptions {
        memory: 0,
        gtol: 1e-10,
        ftol: 0.0,
        ..Default::default()
    };
    let report = lbfgs(&mut problem, &[0.0; 12], &opts, &mut go_on);
    assert_eq!(report.status, Status::Converged);
    // It ends when f stops decreasing in floating point: ‖x − x*‖ of order √ε.
    assert_close(&report.x, &x_star, 1e-7);
}

/// f(x) = Σ xᵢ − ln xᵢ (minimum 2 at x = 1; NaN for some xᵢ < 0), with its gradient in `g`.
fn x_minus_log_x(x: &[f64], g: &mut [f64]) -> f64 {
    let mut value = 0.0;
    for i in 0..x.len() {
        g[i] = 1.0 - 1.0 / x[i];
        value += x[i] - x[i].ln();
    }
    value
}

#[test]
fn lbfgs_line_search_backtracks_from_nan() {
    // f = Σ x_i − ln x_i is NaN for x_i < 0; from (5, 3) the second quasi-Newton step
    // overshoots into x < 0 (secant curvature 0.05 gives a step of −15 in x₀).
    let mut nan_seen = false;
    let mut problem = FnProblem::new(2, |x: &[f64], g: &mut [f64]| {
        let value = x_minus_log_x(x, g);
        nan_seen |= value.is_nan();
        value
    });
    let opts = LbfgsOptions {
        gtol: 1e-10,
        ftol: 0.0,
        ..Default::default()
    };
    let report = lbfgs(&mut problem, &[5.0, 3.0], &opts, &mut go_on);
    assert!(nan_seen, "the test should exercise a NaN trial point");
    assert_eq!(report.status, Status::Converged);
    assert_close(&report.x, &[1.0, 1.0], 1e-8);
}

#[test]
fn lbfgs_reports_interrupt_with_current_point() {
    let mut problem = FnProblem::new(2, rosenbrock);
    let mut calls = 0;
    let mut stop_after_three = |_: &IterInfo| {
        calls += 1;
        if calls == 3 {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let report = lbfgs(
        &mut problem,
        &[-1.2, 1.0],
        &LbfgsOptions::default(),
        &mut stop_after_three,
    );
    assert_eq!(report.status, Status::Interrupted);
    assert_eq!(report.iterations, 3);
    let mut g = [0.0; 2];
    assert_eq!(rosenbrock(&report.x, &mut g), report.value);
    assert!(report.value < 24.2, "value must decrease from f(x0) = 24.2");
}

#[test]
fn lbfgs_reports_nonfinite_start_as_diverged() {
    let mut problem = FnProblem::new(1, |_: &[f64], g: &mut [f64]| {
        g[0] = 0.0;
        f64::NAN
    });
    let report = lbfgs(&mut problem, &[0.0], &LbfgsOptions::default(), &mut go_on);
    assert_eq!(report.status, Status::Diverged);
}

#[test]
fn projected_lbfgs_matches_kkt_point_of_box_quadratic() {
    // min ½xᵀAx − bᵀx on [0,1]³ with A = [[4,1,0],[1,3,1],[0,1,2]], b = (−1, 2.5, 4):
    // x* = (0, 0.5, 1) with ∇f(x*) = (1.5, 0, −1.5): lower bound active with g > 0, free with
    // g = 0, upper bound active with g < 0.
    let a = vec![4.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 2.0];
    let mut problem = FnProblem::new(3, quadratic(a, vec![-1.0, 2.5, 4.0]));
    let bounds = Bounds::new(vec![0.0; 3], vec![1.0; 3]).unwrap();
    let opts = LbfgsOptions {
        gtol: 1e-10,
        ftol: 0.0,
        ..Default::default()
    };
    let report = projected_lbfgs(&mut problem, &[0.5, 0.5, 0.5], &bounds, &opts, &mut go_on);
    assert_eq!(report.status, Status::Converged);
    assert_close(&report.x, &[0.0, 0.5, 1.0], 1e-9);
}

#[test]
fn projected_lbfgs_handles_nonneg_rosenbrock_with_active_bound() {
    // Rosenbrock with x₁ ≤ 0.5: the minimiser lies on the bound, where ∂f/∂x₁ ≤ 0 and
    // ∂f/∂x₂ = 0 ⇒ x₂ = 0.25.
    let mut problem = FnProblem::new(2, rosenbrock);
    let bounds = Bounds::new(vec![f64::NEG_INFINITY; 2], vec![0.5, f64::INFINITY]).unwrap();
    let opts = LbfgsOptions {
        gtol: 1e-9,
        ftol: 0.0,
        ..Default::default()
    };
    let report = projected_lbfgs(&mut problem, &[-1.2, 1.0], &bounds, &opts, &mut go_on);
    assert_eq!(report.status, Status::Converged);
    assert_close(&report.x, &[0.5, 0.25], 1e-7);
}

/// Counts the evaluations of a closure problem.
fn counted<'a>(
    evaluations: &'a std::cell::Cell<usize>,
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64 + 'a,
) -> impl FnMut(&[f64], &mut [f64]) -> f64 + 'a {
    move |x, g| {
        evaluations.set(evaluations.get() + 1);
        f(x, g)
    }
}

// Reference runs of scipy 1.17.1 `minimize(method = "L-BFGS-B")` (the iteration counts `nit`,
// evaluation counts `nfev` and values below), produced by this script:
//
//   import numpy as np; from scipy.optimize import minimize
//   def rosen(x):
//       return (100*(x[1]-x[0]**2)**2 + (1-x[0])**2,
//               np.array([-400*x[0]*(x[1]-x[0]**2) - 2*(1-x[0]), 200*(x[1]-x[0]**2)]))
//   minimize(rosen, [-1.2, 1.0], jac=True, method="L-BFGS-B", bounds=[(-2, .5), (-2, 2)],
//            options=dict(gtol=1e-10, ftol=0))                      # nit 20, nfev 30
//   A = np.array([[4., 1, 0], [1, 3, 1], [0, 1, 2]]); b = np.array([6., .5, 1])
//   minimize(lambda x: (.5*x@A@x - b@x, A@x - b), [.5]*3, jac=True, method="L-BFGS-B",
//            bounds=[(0, 1)]*3, options=dict(gtol=1e-12, ftol=0))   # nit 3, nfev 4
//   A2 = np.array([[3., 1], [1, 2]]); b2 = np.array([1., -1])
//   minimize(lambda x: (.5*x@A2@x - b2@x, A2@x - b2), [0., 0], jac=True, method="L-BFGS-B",
//            options=dict(gtol=1e-12, ftol=0))                      # nit 4, nfev 6
//   def chained(x):   # chained Rosenbrock, n = 12
//       t = x[1:] - x[:-1]**2; g = np.zeros_like(x)
//       g[:-1] += -400*x[:-1]*t - 2*(1 - x[:-1]); g[1:] += 200*t
//       return np.sum(100*t**2 + (1 - x[:-1])**2), g
//   minimize(chained, [-1.2, 1.0]*6, jac=True, method="L-BFGS-B",
//            bounds=[(-1, .8) if i % 3 == 0 else (-2, 2) for i in range(12)])
//                                              # defaults: nit 30, nfev 36, fun 7.98081014149448

#[test]
fn lbfgsb_matches_scipy_on_box_constrained_rosenbrock() {
    // On [−2, 0.5] × [−2, 2] the minimiser is (0.5, 0.25): x₁ = 0.5 is active with
    // ∂f/∂x₁ = −1 < 0, and ∂f/∂x₂ = 200(x₂ − x₁²) = 0; f* = (1 − 0.5)² = 0.25.
    let evaluations = std::cell::Cell::new(0);
    let mut problem = FnProblem::new(2, counted(&evaluations, rosenbrock));
    let bounds = Bounds::new(vec![-2.0, -2.0], vec![0.5, 2.0]).unwrap();
    let opts = LbfgsOptions {
        gtol: 1e-10,
        ftol: 0.0,
        max_linesearch: 20,
        ..Default::default()
    };
    let report = projected_lbfgs(&mut problem, &[-1.2, 1.0], &bounds, &opts, &mut go_on);
    assert_eq!(report.status, Status::Converged);
    assert_close(&report.x, &[0.5, 0.25], 1e-10);
    assert!((report.value - 0.25).abs() < 1e-14);
    assert_eq!((report.iterations, evaluations.get()), (20, 30));
}

#[test]
fn lbfgsb_matches_scipy_on_box_quadratic_with_active_bounds() {
    // min ½xᵀAx − bᵀx on [0, 1]³, A = [[4,1,0],[1,3,1],[0,1,2]], b = (6, 0.5, 1): at
    // x* = (1, 0, 0.5), ∇f = Ax* − b = (−2, 1, 0): upper bound active with g < 0, lower bound
    // active with g > 0, the third variable free with g = 0 (KKT, and f is convex).
    let a = vec![4.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 2.0];
    let evaluations = std::cell::Cell::new(0);
    let mut problem = FnProblem::new(3, counted(&evaluations, quadratic(a, vec![6.0, 0.5, 1.0])));
    let bounds = Bounds::new(vec![0.0; 3], vec![1.0; 3]).unwrap();
    let opts = LbfgsOptions {
        gtol: 1e-12,
        ftol: 0.0,
        ..Default::default()
    };
    let report = projected_lbfgs(&mut problem, &[0.5; 3], &bounds, &opts, &mut go_on);
    assert_eq!(report.status, Status::Converged);
    assert_close(&report.x, &[1.0, 0.0, 0.5], 1e-12);
    assert_eq!((report.iterations, evaluations.get()), (3, 4));
}

#[test]
fn lbfgsb_without_bounds_solves_a_2d_quadratic_in_few_iterations() {
    // A = [[3,1],[1,2]], b = (1, −1): x* = A⁻¹b = (3, −4)/5.
    let evaluations = std::cell::Cell::new(0);
    let mut problem = FnProblem::new(
        2,
        counted(
            &evaluations,
            quadratic(vec![3.0, 1.0, 1.0, 2.0], vec![1.0, -1.0]),
        ),
    );
    let opts = LbfgsOptions {
        gtol: 1e-12,
        ftol: 0.0,
        ..Default::default()
    };
    let report = projected_lbfgs(
        &mut problem,
        &[0.0, 0.0],
        &Bounds::unbounded(2),
        &opts,
        &mut go_on,
    );
    assert_eq!(report.status, Status::Converged);
    assert_close(&report.x, &[0.6, -0.8], 1e-12);
    assert_eq!((report.iterations, evaluations.get()), (4, 6));
}

#[test]
fn lbfgsb_matches_scipy_on_chained_rosenbrock_with_scipy_defaults() {
    // Twelve variables, every third one in [−1, 0.8], the others in [−2, 2]: more iterations
    // than memory pairs, and bounds that become active and inactive along the way.
    let n = 12;
    let x0 = chained_start(n);
    let third = |i: usize| i.is_multiple_of(3);
    let lower = (0..n).map(|i| if third(i) { -1.0 } else { -2.0 }).collect();
    let upper = (0..n).map(|i| if third(i) { 0.8 } else { 2.0 }).collect();
    let evaluations = std::cell::Cell::new(0);
    let mut problem = FnProblem::new(n, counted(&evaluations, chained));
    // scipy's defaults: gtol 1e-5, ftol = factr·ε = 1e7 · 2.22e-16, maxls 20.
    let opts = LbfgsOptions {
        gtol: 1e-5,
        ftol: 1e7 * f64::EPSILON,
        max_linesearch: 20,
        ..Default::default()
    };
    let bounds = Bounds::new(lower, upper).unwrap();
    let report = projected_lbfgs(&mut problem, &x0, &bounds, &opts, &mut go_on);
    assert_eq!(report.status, Status::Converged);
    assert_eq!((report.iterations, evaluations.get()), (30, 36));
    assert!(
        (report.value - 7.98081014149448).abs() < 1e-12,
        "{report:?}"
    );
    assert_eq!(report.x[0], 0.8);
}

#[test]
fn lbfgsb_stops_at_the_cauchy_point_when_it_is_the_corner_optimum() {
    // ½‖x − (5, −5)‖² on [0, 1]²: the projected steepest-descent path from (0.5, 0.5) passes both
    // breakpoints before the model's minimum, so the Cauchy point is the corner (1, 0), which is
    // optimal (g = (−4, 5) points out of the box); the first step reaches it.
    let evaluations = std::cell::Cell::new(0);
    let mut problem = FnProblem::new(
        2,
        counted(&evaluations, |x: &[f64], g: &mut [f64]| {
            g[0] = x[0] - 5.0;
            g[1] = x[1] + 5.0;
            0.5 * (g[0] * g[0] + g[1] * g[1])
        }),
    );
    let bounds = Bounds::new(vec![0.0; 2], vec![1.0; 2]).unwrap();
    let report = projected_lbfgs(
        &mut problem,
        &[0.5, 0.5],
        &bounds,
        &LbfgsOptions::default(),
        &mut go_on,
    );
    assert_eq!(report.status, Status::Converged);
    assert_eq!(report.x, vec![1.0, 0.0]);
    assert_eq!(report.optimality, 0.0);
    assert_eq!((report.iterations, evaluations.get()), (1, 2));
}

#[test]
fn lbfgsb_backtracks_from_nan_with_and_without_bounds() {
    // f = Σ x_i − ln x_i is NaN for x_i < 0, minimised at (1, 1); with x₁ ≤ 0.5 the minimiser
    // is (0.5, 1) (∂f/∂x₁ = 1 − 1/0.5 = −1 < 0 at the upper bound).
    for (upper, expected) in [(f64::INFINITY, [1.0, 1.0]), (0.5, [0.5, 1.0])] {
        let mut nan_seen = false;
        let mut problem = FnProblem::new(2, |x: &[f64], g: &mut [f64]| {
            let value = x_minus_log_x(x, g);
            nan_seen |= value.is_nan();
            value
        });
        let opts = LbfgsOptions {
            gtol: 1e-10,
            ftol: 0.0,
            ..Default::default()
        };
        let bounds = Bounds::new(vec![f64::NEG_INFINITY; 2], vec![upper, f64::INFINITY]).unwrap();
        let report = projected_lbfgs(&mut problem, &[5.0, 3.0], &bounds, &opts, &mut go_on);
        assert!(nan_seen, "the test should exercise a NaN trial point");
        assert_eq!(report.status, Status::Converged);
        assert!(report.value.is_finite());
        assert_close(&report.x, &expected, 1e-8);
    }
}

#[test]
fn lbfgsb_reports_interrupt_and_iteration_limit_with_the_current_point() {
    let mut problem = FnProblem::new(2, rosenbrock);
    let bounds = Bounds::nonneg(2);
    let mut stop_at_3 = |info: &IterInfo| {
        if info.iter == 3 {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let opts = LbfgsOptions::default();
    let report = projected_lbfgs(&mut problem, &[2.0, 2.0], &bounds, &opts, &mut stop_at_3);
    assert_eq!((report.status, report.iterations), (Status::Interrupted, 3));
    let mut g = [0.0; 2];
    assert_eq!(report.value, rosenbrock(&report.x, &mut g));
    let opts = LbfgsOptions {
        max_iter: 2,
        ..Default::default()
    };
    let report = projected_lbfgs(&mut problem, &[2.0, 2.0], &bounds, &opts, &mut go_on);
    assert_eq!((report.status, report.iterations), (Status::MaxIter, 2));
}

#[test]
fn lbfgsb_reports_a_failed_line_search_at_the_last_iterate() {
    // The gradient has the wrong sign, so no step along −g decreases f = x². (scipy ends with
    // ABNORMAL_TERMINATION_IN_LNSRCH and nit = 0 here too.)
    let mut problem = FnProblem::new(1, |x: &[f64], g: &mut [f64]| {
        g[0] = -2.0 * x[0];
        x[0] * x[0]
    });
    let report = projected_lbfgs(
        &mut problem,
        &[1.0],
        &Bounds::new(vec![-10.0], vec![10.0]).unwrap(),
        &LbfgsOptions {
            max_linesearch: 20,
            ..Default::default()
        },
        &mut go_on,
    );
    assert_eq!(report.status, Status::LineSearchFailed);
    assert_eq!((report.x, report.iterations), (vec![1.0], 0));
}

#[test]
fn bounds_reject_inverted_limits() {
    assert!(Bounds::new(vec![1.0], vec![0.0]).is_err());
    assert!(Bounds::new(vec![0.0, 0.0], vec![1.0]).is_err());
}

/// Lasso ½n⁻¹‖y − Xβ‖² + λ‖β‖₁ by cyclic coordinate descent (the reference).
fn lasso_coordinate_descent(
    x: &ndarray::Array2<f64>,
    y: &ndarray::Array1<f64>,
    lambda: f64,
) -> Vec<f64> {
    let (n, p) = x.dim();
    let mut beta = vec![0.0; p];
    let mut residual = y.to_vec();
    for _ in 0..2000 {
        for j in 0..p {
            let column = x.column(j);
            let norm2 = column.dot(&column) / n as f64;
            let rho: f64 =
                (0..n).map(|i| column[i] * residual[i]).sum::<f64>() / n as f64 + norm2 * beta[j];
            let mut new = [rho];
            soft_threshold(&mut new, lambda);
            let new = new[0] / norm2;
            (0..n).for_each(|i| residual[i] -= column[i] * (new - beta[j]));
            beta[j] = new;
        }
    }
    beta
}

#[test]
fn fista_and_ista_match_coordinate_descent_on_lasso() {
    let (x, y, _) = regression(60, 12, 3, 0.1, 3);
    let lambda = 0.1;
    let reference = lasso_coordinate_descent(&x, &y, lambda);
    assert!(
        reference.iter().filter(|v| **v == 0.0).count() >= 3,
        "the test needs zeros"
    );
    let n = x.nrows() as f64;
    let smooth = |beta: &[f64], g: &mut [f64]| {
        let b = ndarray::ArrayView1::from(beta);
        let r = x.dot(&b) - &y;
        let grad = x.t().dot(&r) / n;
        g.copy_from_slice(grad.as_slice().unwrap());
        0.5 * r.dot(&r) / n
    };
    for (accelerated, restart) in [(true, false), (true, true), (false, false)] {
        let mut problem = FnProblem::new(12, smooth);
        let opts = ProxGradOptions {
            tol: 1e-10,
            accelerated,
            restart,
            max_iter: 20_000,
            ..Default::default()
        };
        let report = proximal_gradient(
            &mut problem,
            &mut L1Penalty { lambda },
            &[0.0; 12],
            &opts,
            &mut go_on,
        );
        assert_eq!(
            report.status,
            Status::Converged,
            "accelerated {accelerated} restart {restart}"
        );
        assert_close(&report.x, &reference, 1e-8);
    }
}

#[test]
fn fista_restarts_its_momentum_where_it_leaves_the_domain() {
    // f = Σ c_i x_i − log x_i, undefined (NaN) at x_i ≤ 0, plus λ‖x‖₁: the minimum is
    // x_i = 1 / (c_i + λ). From 1 the momentum carries the stiff entries past 0; those points
    // are rejected (backtracking, or a momentum restart at the last iterate) and the solve
    // converges inside the domain.
    let (c, lambda) = ([100.0, 30.0, 10.0], 0.1);
    let mut outside = 0;
    let mut problem = FnProblem::new(3, |x: &[f64], g: &mut [f64]| {
        if x.iter().any(|&v| v <= 0.0) {
            outside += 1;
            g.fill(f64::NAN);
            return f64::NAN;
        }
        (0..3).for_each(|i| g[i] = c[i] - 1.0 / x[i]);
        (0..3).map(|i| c[i] * x[i] - x[i].ln()).sum()
    });
    let opts = ProxGradOptions::default();
    let report = proximal_gradient(
        &mut problem,
        &mut L1Penalty { lambda },
        &[1.0; 3],
        &opts,
        &mut go_on,
    );
    assert_eq!(report.status, Status::Converged, "{report:?}");
    let expected: Vec<f64> = c.iter().map(|c| 1.0 / (c + lambda)).collect();
    assert_close(&report.x, &expected, 1e-5);
    assert!(outside > 0, "no point outside the domain was tried");
}

#[test]
fn proximal_gradient_steps_by_the_curvature_it_measures_at_the_start() {
    // f = (c/2)‖x − y‖² has curvature c along every direction: the secant's first estimate is
    // c, accepted without backtracking, so every step is 1/c (with the former L₀ = 1, 1 on this
    // flat objective, as L only grows) and the unaccelerated method lands on y at once.
    let (c, y) = (0.01, [3.0, -1.0, 2.0]);
    let mut problem = FnProblem::new(3, |x: &[f64], g: &mut [f64]| {
        (0..3).for_each(|i| g[i] = c * (x[i] - y[i]));
        0.5 * c * (0..3).map(|i| (x[i] - y[i]).powi(2)).sum::<f64>()
    });
    let opts = ProxGradOptions {
        accelerated: false,
        ..Default::default()
    };
    let mut steps = Vec::new();
    let report = proximal_gradient(
        &mut problem,
        &mut L1Penalty { lambda: 0.0 },
        &[0.0; 3],
        &opts,
        &mut |info: &IterInfo| {
            steps.push(info.step);
            Control::Continue
        },
    );
    assert_eq!(report.status, Status::Converged);
    assert!(report.iterations <= 2, "{report:?}");
    assert_close(&report.x, &y, 1e-10);
    assert!(
        steps.iter().all(|s| (s * c - 1.0).abs() < 1e-9),
        "{steps:?}"
    );
}

#[test]
fn proximal_gradient_without_iterations_reports_the_starts_residual() {
    // ½‖x − y‖² + λ‖x‖₁ at x = 0, curvature 1: the residual is ‖0 − soft(y, λ)‖∞ = 2.5 (it
    // was reported as inf).
    let (y, lambda) = ([3.0, -1.0, 0.2], 0.5);
    let mut problem = FnProblem::new(3, |x: &[f64], g: &mut [f64]| {
        (0..3).for_each(|i| g[i] = x[i] - y[i]);
        0.5 * (0..3).map(|i| (x[i] - y[i]).powi(2)).sum::<f64>()
    });
    let opts = ProxGradOptions {
        max_iter: 0,
        ..Default::default()
    };
    let report = proximal_gradient(
        &mut problem,
        &mut L1Penalty { lambda },
        &[0.0; 3],
        &opts,
        &mut go_on,
    );
    assert_eq!(report.status, Status::MaxIter);
    assert!((report.optimality - 2.5).abs() < 1e-9, "{report:?}");
}

#[test]
fn adam_minimizes_quadratic() {
    let a = vec![2.0, 0.5, 0.5, 1.0];
    let mut problem = FnProblem::new(2, quadratic(a, vec![1.0, -1.0]));
    let opts = AdamOptions {
        lr: 0.01,
        max_iter: 20_000,
        gtol: 1e-7,
        ..Default::default()
    };
    let report = adam(&mut problem, &[0.0, 0.0], &opts, &mut go_on);
    assert_ne!(report.status, Status::Diverged);
    // A⁻¹b for A = [[2, .5], [.5, 1]], b = (1, −1): det 1.75 → (1.5, −2.5)/1.75.
    assert_close(&report.x, &[1.5 / 1.75, -2.5 / 1.75], 1e-4);
}

#[test]
fn adam_within_bounds_ends_at_the_kkt_point() {
    // The same quadratic on x₂ ≥ −1: the bound is active; x₁ minimises with x₂ = −1:
    // 2·x₁ + 0.5·(−1) = 1 → x₁ = 0.75.
    let a = vec![2.0, 0.5, 0.5, 1.0];
    let mut problem = FnProblem::new(2, quadratic(a, vec![1.0, -1.0]));
    let opts = AdamOptions {
        lr: 0.01,
        max_iter: 20_000,
        gtol: 0.0,
        ..Default::default()
    };
    let bounds = Bounds::new(vec![f64::NEG_INFINITY, -1.0], vec![f64::INFINITY; 2]).unwrap();
    let mut lowest = f64::INFINITY;
    let mut watch = |info: &IterInfo| {
        lowest = lowest.min(info.value);
        Control::Continue
    };
    let report = adam_within(&mut problem, &bounds, &[0.0, 0.0], &opts, &mut watch);
    assert_ne!(report.status, Status::Diverged);
    assert_close(&report.x, &[0.75, -1.0], 1e-4);
    assert!(report.x[1] >= -1.0);
    // The optimality reported is the projected gradient's: the bound absorbs ∂f/∂x₂ = 0.375.
    assert!(report.optimality < 1e-3, "{}", report.optimality);
    // Every evaluated point is in the box: no value below the box's minimum f(0.75, −1) =
    // −1.0625 (the unconstrained minimum is lower).
    let f_min = 0.5 * (2.0 * 0.5625 - 0.75 + 1.0) - (0.75 + 1.0);
    assert!(
        lowest >= f_min - 1e-12,
        "{lowest} below the box's minimum {f_min}"
    );
}

fn stop(_: &IterInfo) -> Control {
    Control::Stop
}

/// Adam with β1 = 0 on f(x) = x² from x = 1: the first direction is g/(|g| + eps) ≈ 1, so the
/// first step moves x to ≈ 1 − lr.
fn adam_first_step_then_stop(lr: f64) -> optc_runtime::solvers::Report {
    let mut problem = FnProblem::new(1, |x: &[f64], g: &mut [f64]| {
        g[0] = 2.0 * x[0];
        x[0] * x[0]
    });
    let opts = AdamOptions {
        lr,
        beta1: 0.0,
        ..Default::default()
    };
    adam(&mut problem, &[1.0], &opts, &mut stop)
}

#[test]
fn adam_interrupt_returns_the_best_point_seen() {
    // lr = 3 overshoots to x ≈ −2 (f ≈ 4 > f(1) = 1): the start point is returned.
    let overshoot = adam_first_step_then_stop(3.0);
    assert_eq!(overshoot.status, Status::Interrupted);
    assert_eq!((overshoot.x[0], overshoot.value), (1.0, 1.0));
    // lr = 1.5 improves to x ≈ −0.5 (f ≈ 0.25): the new point is returned.
    let improved = adam_first_step_then_stop(1.5);
    assert_eq!(improved.status, Status::Interrupted);
    assert_close(&improved.x, &[-0.5], 1e-7);
    assert!((improved.value - 0.25).abs() < 1e-7);
}

#[test]
fn path_interrupt_returns_the_best_point_of_the_stage() {
    // One stage of μ·(x − 2)² (h = 0) from x = 0 with β1 = 0: the first Adam step moves x by
    // ≈ lr towards 2.
    let run = |lr: f64| {
        let mut objective =
            FnPathObjective::new(1, |x: &[f64], mu: f64, _s: f64, g: &mut [f64]| {
                g[0] = mu * 2.0 * (x[0] - 2.0);
                Some(mu * (x[0] - 2.0).powi(2))
            });
        let opts = PathOptions {
            stages: 1,
            lr,
            beta1: 0.0,
            ..PathOptions::default()
        };
        central_path(&mut objective, &[0.0], &opts, &mut stop).report
    };
    // lr = 5 overshoots to x ≈ 5 (value 9 > 4): the stage's start point is returned.
    let overshoot = run(5.0);
    assert_eq!(overshoot.status, Status::Interrupted);
    assert_eq!((overshoot.x[0], overshoot.value), (0.0, 4.0));
    // lr = 1 reaches x ≈ 1 (value 1 < 4): the new point is returned.
    let improved = run(1.0);
    assert_eq!(improved.status, Status::Interrupted);
    assert_close(&improved.x, &[1.0], 1e-7);
    assert!((improved.value - 1.0).abs() < 1e-7);
}

#[test]
fn adam_path_stage_ends_when_its_best_objective_stops_improving() {
    // One stage of μ·((x − 1)² + 1) with a large learning rate: Adam keeps oscillating around
    // x = 1, so the objective at consecutive checkpoints differs by far more than tol, but the best
    // objective soon stops improving, which ends the stage long before max_iter.
    let mut objective = FnPathObjective::new(1, |x: &[f64], mu: f64, _s: f64, g: &mut [f64]| {
        g[0] = mu * 2.0 * (x[0] - 1.0);
        Some(mu * ((x[0] - 1.0).powi(2) + 1.0))
    });
    let opts = PathOptions {
        stages: 1,
        max_iter: 100_000,
        lr: 0.05,
        checkpoint: 100,
        tol: 1e-6,
        ..PathOptions::default()
    };
    let mut values = Vec::new();
    let mut record = |info: &IterInfo| {
        values.push(info.value);
        Control::Continue
    };
    let result = central_path(&mut objective, &[0.0], &opts, &mut record).report;
    assert_eq!(result.status, Status::Converged);
    assert!(
        result.iterations < 2_000,
        "{} iterations",
        result.iterations
    );
    assert_close(&result.x, &[1.0], 0.3);
    // The test the `dagma` package uses would not have fired: the objective still moves by far
    // more than tol between the last two checkpoints.
    let (previous, last) = (values[values.len() - 101], values[values.len() - 1]);
    assert!(
        ((last - previous) / previous).abs() > 1e-4,
        "{previous} {last}"
    );
}

#[test]
fn a_path_whose_last_stage_runs_out_of_iterations_reports_the_limit() {
    // μ·(x − 2)² from x = 0 with a small learning rate: a stage of 50 Adam steps moves x by
    // about 50·lr = 0.05, far from its minimizer, whichever inner solver.
    let quadratic = |x: &[f64], mu: f64, _s: f64, g: &mut [f64]| {
        g[0] = mu * 2.0 * (x[0] - 2.0);
        Some(mu * (x[0] - 2.0).powi(2))
    };
    let short = |warm_iter: usize, max_iter: usize| {
        let mut objective = FnPathObjective::new(1, quadratic);
        let opts = PathOptions {
            stages: 2,
            warm_iter,
            max_iter,
            lr: 1e-3,
            checkpoint: 10,
            ..PathOptions::default()
        };
        central_path(&mut objective, &[0.0], &opts, &mut go_on).report
    };
    // Warm stages are meant to be cut short; only the last one's limit is the path's.
    let cut_last = short(50, 50);
    assert_eq!(cut_last.status, Status::MaxIter);
    let cut_warm = short(50, 100_000);
    assert_eq!(cut_warm.status, Status::Converged);
    assert_close(&cut_warm.x, &[2.0], 1e-2);
    // The same with L-BFGS stages limited to one iteration each.
    let mut objective = FnPathObjective::new(1, quadratic);
    let opts = PathOptions {
        stages: 2,
        warm_iter: 1,
        max_iter: 1,
        tol: 1e-14,
        ..PathOptions::lbfgs(Bounds::nonneg(1))
    };
    let lbfgs = central_path(&mut objective, &[5.0], &opts, &mut go_on).report;
    assert_eq!(lbfgs.status, Status::MaxIter);
}

#[test]
fn lbfgs_path_on_split_l1_reaches_the_soft_threshold() {
    // Stages of μ·(½‖x − a‖² + λ‖x‖₁) with h ≡ 0 over the split x = p − q, p, q ≥ 0: every stage
    // has the minimiser x = soft(a, λ) (the L1 term smooth and linear in (p, q)).
    let a = [2.0, -1.0, 0.05, -0.3];
    let lambda = 0.1;
    let n = a.len();
    let mut objective =
        FnPathObjective::new(2 * n, |z: &[f64], mu: f64, _s: f64, g: &mut [f64]| {
            let mut value = 0.0;
            for i in 0..n {
                let r = z[i] - z[n + i] - a[i];
                value += mu * (0.5 * r * r + lambda * (z[i] + z[n + i]));
                g[i] = mu * (r + lambda);
                g[n + i] = mu * (-r + lambda);
            }
            Some(value)
        });
    let opts = PathOptions {
        stages: 3,
        tol: 1e-10,
        ..PathOptions::lbfgs(Bounds::nonneg(2 * n))
    };
    let result = central_path(&mut objective, &vec![0.0; 2 * n], &opts, &mut go_on);
    assert_eq!(result.report.status, Status::Converged);
    assert_eq!(result.restarts, 0);
    let z = &result.report.x;
    let x: Vec<f64> = (0..n).map(|i| z[i] - z[n + i]).collect();
    // soft(a, 0.1) = sign(a)·max(|a| − 0.1, 0).
    assert_close(&x, &[1.9, -0.9, 0.0, -0.2], 1e-9);
    // Where x = 0 both parts sit at their bound: the L1 term equals λ|x| there.
    assert_eq!((z[2], z[n + 2]), (0.0, 0.0));
}

/// Stationary point of μ(x − a)²/2 − log(1 − x²) on (−1, 1) (a > 0), by bisection on the
/// derivative μ(x − a) + 2x/(1 − x²), which increases from −μa at 0 to +∞ at 1.
fn barrier_minimiser(mu: f64, a: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 1.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mu * (mid - a) + 2.0 * mid / (1.0 - mid * mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[test]
fn lbfgs_path_backtracks_from_points_outside_the_domain() {
    // μ(x − 30)²/2 + h(x) with h(x) = −log(1 − x²), whose domain is |x| < 1 (None outside). The
    // first quasi-Newton step extrapolates the secant far past the boundary: the line search
    // must back off, and each stage ends at the barrier minimiser.
    let outside = std::cell::Cell::new(0);
    let mut objective = FnPathObjective::new(1, |x: &[f64], mu: f64, _s: f64, g: &mut [f64]| {
        let x = x[0];
        if x.abs() >= 1.0 {
            outside.set(outside.get() + 1);
            return None;
        }
        g[0] = mu * (x - 30.0) + 2.0 * x / (1.0 - x * x);
        Some(mu * 0.5 * (x - 30.0).powi(2) - (1.0 - x * x).ln())
    });
    // Stages stop on the gradient alone (no relative-decrease rule), so x is exact to ~1e-12.
    let opts = PathOptions {
        stages: 3,
        tol: 1e-12,
        ftol: 0.0,
        ..PathOptions::lbfgs(Bounds::unbounded(1))
    };
    let result = central_path(&mut objective, &[0.0], &opts, &mut go_on);
    assert_eq!(result.report.status, Status::Converged);
    assert!(outside.get() > 0, "no trial point left the domain");
    assert_eq!(result.restarts, 0);
    let x = result.report.x[0];
    assert!(x.is_finite() && x.abs() < 1.0);
    assert!((x - barrier_minimiser(0.01, 30.0)).abs() < 1e-8, "{x}");
    assert!(result.report.value.is_finite());
}

#[test]
fn lbfgs_path_restarts_with_larger_s_from_a_start_outside_the_domain() {
    // μ(x − 0.5)²/2 on the domain |x| < s, from x = 1.45 with s = 1: the first stage restarts
    // with s = 1.1, …, 1.5 (five restarts), then reaches 0.5; the second stage (s = 1) starts
    // inside its domain.
    let mut objective = FnPathObjective::new(1, |x: &[f64], mu: f64, s: f64, g: &mut [f64]| {
        if x[0].abs() >= s {
            return None;
        }
        g[0] = mu * (x[0] - 0.5);
        Some(mu * 0.5 * (x[0] - 0.5).powi(2))
    });
    let opts = PathOptions {
        stages: 2,
        s: vec![1.0],
        tol: 1e-12,
        ..PathOptions::lbfgs(Bounds::unbounded(1))
    };
    let result = central_path(&mut objective, &[1.45], &opts, &mut go_on);
    assert_eq!(result.report.status, Status::Converged);
    assert_eq!(result.restarts, 5);
    assert!(
        (result.s_used[0] - 1.5).abs() < 1e-12,
        "{:?}",
        result.s_used
    );
    assert_eq!(result.s_used[1], 1.0);
    assert_close(&result.report.x, &[0.5], 1e-9);
}

#[test]
fn lbfgs_path_stage_is_scaled_by_the_curvature_of_its_start_point() {
    // μ·½Σ aᵢ(xᵢ − 1)² with curvatures aᵢ = 10^{-2 … 3} and x ≥ 0: the Hessian is diagonal,
    // so the stage's scaling cᵢ = aᵢ^{-1/2} makes it the identity in y = x/c and the first
    // L-BFGS-B step (x_c to the unconstrained minimiser) solves each stage. Unscaled, the
    // condition number 10⁵ takes L-BFGS tens of iterations.
    let n = 11;
    let a: Vec<f64> = (0..n).map(|i| 10f64.powf(-2.0 + 0.5 * i as f64)).collect();
    let mut objective = FnPathObjective::new(n, |x: &[f64], mu: f64, _s: f64, g: &mut [f64]| {
        let mut value = 0.0;
        for i in 0..n {
            g[i] = mu * a[i] * (x[i] - 1.0);
            value += 0.5 * mu * a[i] * (x[i] - 1.0).powi(2);
        }
        Some(value)
    });
    let opts = PathOptions {
        stages: 2,
        tol: 1e-9,
        ..PathOptions::lbfgs(Bounds::nonneg(n))
    };
    let result = central_path(&mut objective, &vec![0.0; n], &opts, &mut go_on);
    assert_eq!(result.report.status, Status::Converged);
    assert_close(&result.report.x, &vec![1.0; n], 1e-6);
    assert!(
        result.report.iterations <= 4,
        "{} iterations",
        result.report.iterations
    );
}

#[test]
fn bounds_scaled_divides_finite_bounds_by_positive_scales() {
    let bounds = Bounds::new(
        vec![0.0, -2.0, f64::NEG_INFINITY],
        vec![f64::INFINITY, 6.0, 1.0],
    )
    .unwrap();
    let scaled = bounds.scaled(&[4.0, 2.0, 0.5]);
    assert_eq!(scaled.lower(), &[0.0, -1.0, f64::NEG_INFINITY]);
    assert_eq!(scaled.upper(), &[f64::INFINITY, 3.0, 2.0]);
}

#[test]
fn concomitant_scale_is_the_minimiser_of_a_over_sigma_plus_b_sigma() {
    // φ(σ) = a/σ + bσ with a = 2, b = 1/2 has its minimum at σ* = √(a/b) = 2.
    let slope = |sigma: f64| -2.0 / (sigma * sigma) + 0.5;
    for sigma in [0.1, 1.0, 3.0] {
        let s = concomitant_scale(sigma, slope(sigma), slope(2.0 * sigma)).unwrap();
        assert!((s - 2.0).abs() < 1e-12, "from σ = {sigma}: {s}");
    }
    // a = 0 (a perfect fit): σ* = 0.
    assert_eq!(concomitant_scale(1.0, 0.5, 0.5), Some(0.0));
    // φ(σ) = −σ (b < 0) and φ(σ) = −1/σ (a < 0) have no minimiser: no closed form.
    assert_eq!(concomitant_scale(1.0, -1.0, -1.0), None);
    assert_eq!(concomitant_scale(1.0, 1.0, 0.25), None);
    assert_eq!(concomitant_scale(0.0, -1.0, 0.0), None);
}

/// ½‖x − c‖² with its gradient.
fn distance_to(c: &[f64], x: &[f64], g: &mut [f64]) -> f64 {
    x.iter()
        .zip(c)
        .zip(g)
        .map(|((x, c), g)| {
            *g = x - c;
            0.5 * *g * *g
        })
        .sum()
}

/// min ½‖x − c‖² s.t. x₁ + x₂ + x₃ = 1, x₁ − x₃ = 0.
fn equality_qp(c: [f64; 3]) -> impl ConstrainedProblem {
    FnConstrained::new(
        3,
        vec![Relation::Equal; 2],
        move |x: &[f64], g: &mut [f64]| distance_to(&c, x, g),
        |x: &[f64], h: &mut [f64], jac: &mut [f64]| {
            h[0] = x[0] + x[1] + x[2] - 1.0;
            h[1] = x[0] - x[2];
            jac.copy_from_slice(&[1.0, 1.0, 1.0, 1.0, 0.0, -1.0]);
        },
    )
}

#[test]
fn augmented_lagrangian_matches_kkt_solution() {
    // KKT: x = c − Aᵀλ, Ax = b; for c = (1, 2, 3): λ = (5/3, −1), x = (1/3, 1/3, 1/3).
    let mut problem = equality_qp([1.0, 2.0, 3.0]);
    let mut inner = InnerSolver::Lbfgs(LbfgsOptions {
        gtol: 1e-12,
        ftol: 0.0,
        ..Default::default()
    });
    let result = augmented_lagrangian(
        &mut problem,
        &[0.0; 3],
        &mut inner,
        &AugLagOptions::default(),
        &mut go_on,
    );
    assert_eq!(result.report.status, Status::Converged);
    assert!(result.report.violation <= 1e-8);
    assert_close(&result.report.x, &[1.0 / 3.0; 3], 1e-7);
    assert_close(&result.multipliers, &[5.0 / 3.0, -1.0], 1e-5);
    // Warm started from these multipliers and ρ, one dual step lands there again.
    let start = DualStart {
        alpha: result.multipliers.clone(),
        rho: result.rho,
    };
    let warm = augmented_lagrangian_from(
        &mut problem,
        &[0.0; 3],
        start,
        &mut inner,
        &AugLagOptions::default(),
        &mut go_on,
    );
    assert_eq!(
        (warm.report.status, warm.report.iterations),
        (Status::Converged, 1)
    );
    assert_close(&warm.report.x, &[1.0 / 3.0; 3], 1e-7);
}

#[test]
fn a_violation_within_tolerance_does_not_raise_the_penalty() {
    // min ½‖x‖² s.t. x = 1 from α = 0, ρ = 1: the first subproblem gives x = 1/2 (violation
    // 1/2), the second (α = −1/2) x = 3/4 (violation 1/4). That is too little progress
    // (above 0.25 · 1/2), but within h_tol = 0.3: the solve converges at ρ = 1.
    let mut problem = FnConstrained::new(
        1,
        vec![Relation::Equal],
        move |x: &[f64], g: &mut [f64]| distance_to(&[0.0], x, g),
        |x: &[f64], h: &mut [f64], jac: &mut [f64]| {
            h[0] = x[0] - 1.0;
            jac[0] = 1.0;
        },
    );
    let mut inner = InnerSolver::Lbfgs(LbfgsOptions {
        gtol: 1e-12,
        ftol: 0.0,
        ..Default::default()
    });
    let opts = AugLagOptions {
        h_tol: 0.3,
        ..Default::default()
    };
    let result = augmented_lagrangian(&mut problem, &[0.0], &mut inner, &opts, &mut go_on);
    assert_eq!(result.report.status, Status::Converged);
    assert_eq!(result.rho, 1.0);
    assert_close(&result.report.x, &[0.75], 1e-9);
}

#[test]
fn the_augmented_lagrangians_tolerance_bounds_each_component() {
    // min ½‖x − 1‖² s.t. xᵢ = 0 (4 components): the first subproblem (α = 0, ρ = 1) gives
    // x = 1/2, each component violated by 1/2, their 2-norm 1. With h_tol = 0.6 one dual step
    // converges: the tolerance bounds the largest component, as the results report it.
    let ones = [1.0; 4];
    let mut problem = FnConstrained::new(
        4,
        vec![Relation::Equal; 4],
        move |x: &[f64], g: &mut [f64]| distance_to(&ones, x, g),
        |x: &[f64], h: &mut [f64], jac: &mut [f64]| {
            h.copy_from_slice(x);
            jac.fill(0.0);
            (0..4).for_each(|i| jac[i * 4 + i] = 1.0);
        },
    );
    let mut inner = InnerSolver::Lbfgs(LbfgsOptions {
        gtol: 1e-12,
        ftol: 0.0,
        ..Default::default()
    });
    let opts = AugLagOptions {
        h_tol: 0.6,
        max_outer: 1,
        ..Default::default()
    };
    let result = augmented_lagrangian(&mut problem, &[0.0; 4], &mut inner, &opts, &mut go_on);
    assert_eq!(result.report.status, Status::Converged);
    assert!(
        (result.report.violation - 0.5).abs() < 1e-10,
        "{:?}",
        result.report
    );
}

#[test]
fn augmented_lagrangian_with_bounds_projects_onto_simplex() {
    // min ½‖x − c‖² s.t. Σx = 1, x ≥ 0 is the simplex projection of c = (1, 0.5, −1):
    // threshold θ = 0.25 gives (0.75, 0.25, 0).
    let c = [1.0, 0.5, -1.0];
    let mut problem = FnConstrained::new(
        3,
        vec![Relation::Equal],
        move |x: &[f64], g: &mut [f64]| distance_to(&c, x, g),
        |x: &[f64], h: &mut [f64], jac: &mut [f64]| {
            h[0] = x.iter().sum::<f64>() - 1.0;
            jac.fill(1.0);
        },
    );
    let opts = LbfgsOptions {
        gtol: 1e-12,
        ftol: 0.0,
        ..Default::default()
    };
    let mut inner = InnerSolver::ProjectedLbfgs(opts, Bounds::nonneg(3));
    let result = augmented_lagrangian(
        &mut problem,
        &[0.0; 3],
        &mut inner,
        &AugLagOptions::default(),
        &mut go_on,
    );
    assert_eq!(result.report.status, Status::Converged);
    assert_close(&result.report.x, &[0.75, 0.25, 0.0], 1e-7);
}

/// Solves min ½‖x − c‖² over the simplex {Σx = 1, x ≥ 0} with x₁ ≥ 0.5 (the inequality
/// 0.5 − x₁ ≤ 0) to a tight inner tolerance.
fn simplex_with_floor(c: [f64; 3]) -> AugLagReport {
    let mut problem = FnConstrained::new(
        3,
        vec![Relation::Equal, Relation::AtMost],
        move |x: &[f64], g: &mut [f64]| distance_to(&c, x, g),
        |x: &[f64], h: &mut [f64], jac: &mut [f64]| {
            h[0] = x.iter().sum::<f64>() - 1.0;
            h[1] = 0.5 - x[0];
            jac.copy_from_slice(&[1.0, 1.0, 1.0, -1.0, 0.0, 0.0]);
        },
    );
    let opts = LbfgsOptions {
        gtol: 1e-12,
        ftol: 0.0,
        ..Default::default()
    };
    let mut inner = InnerSolver::ProjectedLbfgs(opts, Bounds::nonneg(3));
    let start = [1.0 / 3.0; 3];
    let result = augmented_lagrangian(
        &mut problem,
        &start,
        &mut inner,
        &AugLagOptions::default(),
        &mut go_on,
    );
    assert_eq!(result.report.status, Status::Converged);
    result
}

#[test]
fn augmented_lagrangian_with_an_active_inequality_matches_kkt_solution() {
    // c = (0.1, 0.6, 0.5): the floor is active, x₁ = 0.5 and (x₂, x₃) is the projection of
    // (0.6, 0.5) onto {sum = 0.5}: (0.3, 0.2). Stationarity x − c + ν·1 − λe₁ = 0 gives
    // ν = 0.3 (from x₂) and λ = 0.7 (from x₁).
    let result = simplex_with_floor([0.1, 0.6, 0.5]);
    let violation = result.report.violation;
    assert!(violation <= 1e-8, "{violation}");
    assert_close(&result.report.x, &[0.5, 0.3, 0.2], 1e-7);
    assert_close(&result.multipliers, &[0.3, 0.7], 1e-5);
}

#[test]
fn augmented_lagrangian_with_an_inactive_inequality_keeps_its_multiplier_at_zero() {
    // c = (0.9, 0.3, 0.1): the simplex projection (θ = 0.1) is (0.8, 0.2, 0), above the floor.
    let result = simplex_with_floor([0.9, 0.3, 0.1]);
    assert_close(&result.report.x, &[0.8, 0.2, 0.0], 1e-7);
    assert_eq!(result.multipliers[1], 0.0);
}

/// A covariance (AᵀA/20 of a 20 × 8 Gaussian A) and mean returns for `stalled_inner_solves_resume`.
const COVARIANCE: [[f64; 8]; 8] = [
    [
        1.12322376346817,
        -0.16318038613542524,
        0.28233564809906214,
        -0.6042879262450993,
        -0.22345805550861644,
        0.3032343868343298,
        0.31116512999482043,
        -0.2029814173309481,
    ],
    [
        -0.16318038613542524,
        1.1421913259634286,
        0.14925449148080755,
        -0.20502863725983542,
        0.3663031622605214,
        0.0023722247562681987,
        -0.4318203272749422,
        0.1469899738734567,
    ],
    [
        0.28233564809906214,
        0.14925449148080755,
        0.7070005150810443,
        -0.4619870764176296,
        -0.13808240952326475,
        0.5188723047401577,
        0.018307250559748585,
        -0.007666722486725416,
    ],
    [
        -0.6042879262450993,
        -0.20502863725983542,
        -0.4619870764176296,
        1.180161282056949,
        0.014150267004811737,
        -0.19425252520130723,
        -0.008122819767260776,
        0.2058567247741831,
    ],
    [
        -0.22345805550861644,
        0.3663031622605214,
        -0.13808240952326475,
        0.014150267004811737,
        0.7007635447738367,
        -0.23339974398836763,
        -0.5251830170175239,
        -0.10200938085479419,
    ],
    [
        0.3032343868343298,
        0.0023722247562681987,
        0.5188723047401577,
        -0.19425252520130723,
        -0.23339974398836763,
        1.0891966024339665,
        -0.12463418885824744,
        0.13321317596634077,
    ],
    [
        0.31116512999482043,
        -0.4318203272749422,
        0.018307250559748585,
        -0.008122819767260776,
        -0.5251830170175239,
        -0.12463418885824744,
        1.6055459720053071,
        0.224697696278053,
    ],
    [
        -0.2029814173309481,
        0.1469899738734567,
        -0.007666722486725416,
        0.2058567247741831,
        -0.10200938085479419,
        0.13321317596634077,
        0.224697696278053,
        1.1735242222675333,
    ],
];
const RETURNS: [f64; 8] = [
    0.052446287358665925,
    0.04689148560917992,
    0.061220146557185225,
    0.05577401170563699,
    0.038030140090018615,
    0.042143651433123666,
    0.08538950569320812,
    0.03258393983399234,
];

#[test]
fn stalled_inner_solves_resume_from_a_fresh_memory() {
    // min xᵀSx on the simplex with μ·x ≥ 0.07: at ρ = 1e4 an inner L-BFGS-B solve stalls with
    // a projected gradient of 0.37 (scipy's does too); without resuming, ρ then climbs to ρ_max
    // and the run ends at 0.2647, infeasible. The optimum, by scipy's SLSQP (ftol 1e-15), is
    // 0.3532085287.
    let n = 8;
    let mut problem = FnConstrained::new(
        n,
        vec![Relation::Equal, Relation::AtMost],
        |x: &[f64], g: &mut [f64]| {
            let mut f = 0.0;
            for i in 0..n {
                let sx: f64 = (0..n).map(|j| COVARIANCE[i][j] * x[j]).sum();
                g[i] = 2.0 * sx;
                f += x[i] * sx;
            }
            f
        },
        |x: &[f64], c: &mut [f64], jac: &mut [f64]| {
            c[0] = x.iter().sum::<f64>() - 1.0;
            c[1] = 0.07 - RETURNS.iter().zip(x).map(|(m, x)| m * x).sum::<f64>();
            jac[..n].fill(1.0);
            jac[n..].iter_mut().zip(RETURNS).for_each(|(j, m)| *j = -m);
        },
    );
    let mut inner = InnerSolver::ProjectedLbfgs(LbfgsOptions::default(), Bounds::nonneg(n));
    let result = augmented_lagrangian(
        &mut problem,
        &[0.1; 8],
        &mut inner,
        &AugLagOptions::default(),
        &mut go_on,
    );
    assert_eq!(result.report.status, Status::Converged);
    assert!(
        result.report.violation <= 1e-8,
        "{}",
        result.report.violation
    );
    assert!(
        (result.report.value - 0.3532085287).abs() < 1e-6,
        "{}",
        result.report.value
    );
}

#[test]
fn the_penalty_terms_derivative_matches_finite_differences() {
    let h = 1e-6;
    for relation in [Relation::Equal, Relation::AtMost] {
        for (alpha, rho, c) in [
            (0.7, 10.0, 0.3),
            (0.7, 10.0, -0.3),
            (0.0, 1.0, -0.5),
            (-0.2, 3.0, 0.1),
        ] {
            if relation == Relation::AtMost && alpha < 0.0 {
                continue;
            }
            let (_, derivative) = penalty(relation, alpha, rho, c);
            let fd = (penalty(relation, alpha, rho, c + h).0
                - penalty(relation, alpha, rho, c - h).0)
                / (2.0 * h);
            assert!(
                (derivative - fd).abs() < 1e-6,
                "{relation:?} α={alpha} ρ={rho} c={c}: {derivative} vs {fd}"
            );
        }
    }
    // An inactive inequality (α + ρc ≤ 0) contributes −α²/(2ρ) and no gradient.
    assert_eq!(penalty(Relation::AtMost, 1.0, 2.0, -1.0), (-0.25, 0.0));
}

#[test]
fn options_are_set_by_name_and_unknown_names_are_rejected() {
    let pairs = |v: &[(&str, f64)]| {
        v.iter()
            .map(|(k, x)| (k.to_string(), *x))
            .collect::<Vec<_>>()
    };
    let opts = LbfgsOptions::from_options(&pairs(&[("memory", 5.0), ("gtol", 1e-3)])).unwrap();
    assert_eq!((opts.memory, opts.gtol, opts.max_iter), (5, 1e-3, 1000));
    let err = LbfgsOptions::from_options(&pairs(&[("memroy", 5.0)])).unwrap_err();
    assert_eq!(err.name, "memroy");
    assert!(
        err.accepted.as_ref().unwrap().iter().any(|a| a == "memory"),
        "{err:?}"
    );
    assert!(LbfgsOptions::from_options(&pairs(&[("memory", 2.5)])).is_err());
    assert!(ProxGradOptions::from_options(&pairs(&[("restart", 2.0)])).is_err());
    let path = PathOptions::from_options(&pairs(&[("T", 3.0), ("s", 0.8), ("lr", 1e-3)])).unwrap();
    assert_eq!((path.stages, path.s.clone(), path.lr), (3, vec![0.8], 1e-3));
    let colide = PathOptions::colide();
    assert_eq!(
        (colide.stages, colide.warm_iter, colide.max_iter),
        (4, 20_000, 70_000)
    );
    // Options of the other inner solver are rejected.
    let mut lbfgs = PathOptions::lbfgs(Bounds::unbounded(1));
    assert_eq!(lbfgs.inner, PathInner::Lbfgs(Bounds::unbounded(1)));
    lbfgs.set_option("memory", 5.0).unwrap();
    assert_eq!(lbfgs.memory, 5);
    let err = lbfgs.set_option("lr", 1e-3).unwrap_err();
    assert!(err.message.contains("inner = adam"), "{err}");
    let err = PathOptions::default().set_option("ftol", 1e-9).unwrap_err();
    assert!(err.message.contains("inner = lbfgs"), "{err}");
}

/// A function unbounded below ends `diverged` once the iterates pass 1e20: linear (no
/// curvature pair, each search starting where the last one reached) and, within bounds,
/// concave along a free direction. A search that expands without bracketing takes its farthest
/// point instead of failing.
#[test]
fn unbounded_functions_diverge_quickly() {
    let c = [1.0, -2.0, 0.5];
    let mut linear = FnProblem::new(3, |x: &[f64], g: &mut [f64]| {
        g.copy_from_slice(&c);
        x.iter().zip(&c).map(|(a, b)| a * b).sum()
    });
    let r = lbfgs(&mut linear, &[0.0; 3], &LbfgsOptions::default(), &mut go_on);
    assert_eq!(r.status, Status::Diverged, "{r:?}");
    assert!(
        r.iterations <= 5 && r.x.iter().any(|v| v.abs() > 1e20),
        "{r:?}"
    );
    let mut concave = FnProblem::new(2, |x: &[f64], g: &mut [f64]| {
        g[0] = -2.0 * x[0];
        g[1] = 1.0;
        x[1] - x[0] * x[0]
    });
    let r = projected_lbfgs(
        &mut concave,
        &[0.5, 0.0],
        &Bounds::new(vec![0.0, 0.0], vec![f64::INFINITY; 2]).unwrap(),
        &LbfgsOptions::default(),
        &mut go_on,
    );
    assert_eq!(r.status, Status::Diverged, "{r:?}");
    assert!(r.x[0] > 1e20, "{r:?}");
}

/// Values that would hang a solver (a penalty that never grows), make it stand still (a zero
/// learning rate) or break its line search (c1 ≥ c2) are refused by name; the edges of each
/// range are accepted.
#[test]
fn option_values_out_of_their_ranges_are_refused() {
    fn refuses<O: SetOption>(name: &str, bad: &[f64], good: &[f64]) {
        for &v in bad {
            let err = O::from_options(&[(name.to_string(), v)]).err();
            assert!(err.is_some_and(|e| e.name == name), "{name} = {v} accepted");
        }
        for &v in good {
            assert!(
                O::from_options(&[(name.to_string(), v)]).is_ok(),
                "{name} = {v} refused"
            );
        }
    }
    refuses::<AugLagOptions>("rho_init", &[0.0, -1.0, f64::NAN], &[1e-3]);
    refuses::<AugLagOptions>("rho_factor", &[1.0, 0.5], &[1.5]);
    refuses::<AugLagOptions>("progress", &[0.0, 1.0], &[0.9]);
    refuses::<AdamOptions>("lr", &[0.0, -1.0], &[1e-4]);
    refuses::<AdamOptions>("beta1", &[1.0, -0.1], &[0.0, 0.99]);
    refuses::<AdamOptions>("checkpoint", &[0.0], &[1.0]);
    refuses::<ProxGradOptions>("lipschitz", &[-1.0], &[0.0, 10.0]);
    refuses::<ProxGradOptions>("eta", &[1.0, 0.5], &[1.5]);
    refuses::<LbfgsOptions>("c2", &[0.0, 1.0], &[0.5]);
    refuses::<LbfgsOptions>("max_linesearch", &[0.0], &[1.0]);
    refuses::<MaidOptions>("rho", &[0.0, 1.0], &[0.5]);
    refuses::<MaidOptions>("nu", &[0.9], &[1.0, 1.05]);
    refuses::<PathOptions>("decay", &[0.0, 1.0], &[0.5]);
    refuses::<PathOptions>("mu", &[0.0, -1.0], &[0.1]);
    refuses::<PathOptions>("lr", &[0.0], &[1e-4]);
    // c1 < c2, whatever the order they are given in.
    let wolfe = |c1: f64, c2: f64| {
        LbfgsOptions::from_options(&[("c2".to_string(), c2), ("c1".to_string(), c1)])
    };
    assert!(wolfe(0.95, 0.9).is_err());
    assert!(wolfe(1e-4, 0.1).is_ok());
}

#[test]
fn iterates_keep_the_best_point_through_steps_that_swap_buffers() {
    use optc_runtime::solvers::Iterates;
    let mut x = Iterates::new(&[1.0, 2.0]);
    assert_eq!(x.best(), (f64::INFINITY, &[1.0, 2.0][..]));
    x.record(5.0); // (1, 2) is the best: the step writes into the spare buffer
    x.step(0.5, &[2.0, 2.0]);
    assert_eq!(x.current(), &[0.0, 1.0]);
    assert_eq!(x.best(), (5.0, &[1.0, 2.0][..]));
    x.record(7.0); // worse: the step is in place, the best stays
    x.step(1.0, &[1.0, 0.0]);
    assert_eq!(x.current(), &[-1.0, 1.0]);
    assert_eq!(x.best(), (5.0, &[1.0, 2.0][..]));
    x.record(3.0);
    assert_eq!(x.best(), (3.0, &[-1.0, 1.0][..]));
    x.step(1.0, &[1.0, 1.0]);
    assert_eq!(x.best(), (3.0, &[-1.0, 1.0][..]));
    x.current_mut()[0] = 10.0;
    assert_eq!(x.best(), (3.0, &[-1.0, 1.0][..]));
    assert_eq!(x.better(4.0), &[-1.0, 1.0]);
    assert_eq!(x.better(2.0), &[10.0, 0.0]);
    // Back to the best point: it is current, and stays the best.
    x.restore_best();
    assert_eq!(x.current(), &[-1.0, 1.0]);
    assert_eq!(x.best(), (3.0, &[-1.0, 1.0][..]));
}

#[test]
fn projection_clamps_bounded_entries_and_leaves_free_ones() {
    let inf = f64::INFINITY;
    let bounds = Bounds::new(vec![-inf, 0.0, -inf, -1.0], vec![inf, inf, 2.0, 1.0]).unwrap();
    let mut x = vec![-5.0, -5.0, 5.0, 0.5];
    bounds.project(&mut x);
    assert_eq!(x, vec![-5.0, 0.0, 2.0, 0.5]);
    assert!(!bounds.is_unbounded());
    assert!(Bounds::unbounded(3).is_unbounded());
    let mut y = vec![-1e300, 1e300, f64::NAN];
    Bounds::unbounded(3).project(&mut y);
    assert_eq!(&y[..2], &[-1e300, 1e300]);
    assert!(y[2].is_nan());
}
