//! Prox operators and projections against hand-computed values, and `fista` enforcing `in` and
//! `card` constraints by projection: known solutions (projections of a point, minimum variance on
//! the simplex, sparsity per column and per row), and the compositions it refuses.

#[path = "support/solve.rs"]
mod support;

use ndarray::{array, Array2};
use optc_runtime::plan::{self, Method};
use optc_runtime::prox::*;
use optc_runtime::solvers::Status;
use support::{assert_close, go_on, model, solve_by};

#[test]
fn soft_threshold_shrinks_towards_zero() {
    let mut x = [3.0, -0.5, 0.2, -2.0, 0.0];
    soft_threshold(&mut x, 1.0);
    assert_eq!(x, [2.0, 0.0, 0.0, -1.0, 0.0]);
}

#[test]
fn group_shrink_scales_rows_and_columns_by_their_norms() {
    // Row (3, 4) has norm 5: factor 1 − 1/5; row (0.3, 0.4) has norm 0.5 < 1: zeroed.
    let mut m = array![[3.0, 4.0], [0.3, 0.4]];
    group_shrink_rows(&mut m, 1.0);
    assert_close(m.as_slice().unwrap(), &[2.4, 3.2, 0.0, 0.0], 1e-15);
    // Columns (3, 0.3) and (4, 0.4) with t = 0: unchanged; with t = ‖(4, .4)‖: second zeroed.
    let mut m = array![[3.0, 4.0], [0.3, 0.4]];
    group_shrink_cols(&mut m, (16.16f64).sqrt());
    assert_eq!(m.column(1).to_vec(), vec![0.0, 0.0]);
    assert!(m[[0, 0]] == 0.0, "column norm √9.09 < √16.16 is zeroed too");
}

#[test]
fn singular_value_threshold_on_known_svd() {
    // diag(3, 1) rotated: Y = Q·diag(3, 1) with Q a rotation; SVT(·, 0.5) = Q·diag(2.5, 0.5).
    let (c, s) = (0.6, 0.8);
    let y = array![[3.0 * c, -s], [3.0 * s, c]];
    let out = singular_value_threshold(&y, 0.5).unwrap();
    let expected = [2.5 * c, -0.5 * s, 2.5 * s, 0.5 * c];
    assert_close(out.as_slice().unwrap(), &expected, 1e-12);
    let zero = singular_value_threshold(&y, 3.0).unwrap();
    assert!(zero.iter().all(|v| *v == 0.0), "λ ≥ σ_max gives 0");
    let rect = Array2::from_shape_vec((2, 3), vec![1.0, 0.0, 0.0, 0.0, 2.0, 0.0]).unwrap();
    let out = singular_value_threshold(&rect, 1.5).unwrap();
    assert_close(
        out.as_slice().unwrap(),
        &[0.0, 0.0, 0.0, 0.0, 0.5, 0.0],
        1e-12,
    );
}

#[test]
fn projections_onto_nonneg_and_box() {
    let mut x = [-1.0, 0.5, 2.0];
    project_nonneg(&mut x);
    assert_eq!(x, [0.0, 0.5, 2.0]);
    let mut x = [-1.0, 0.5, 2.0];
    project_box(&mut x, 0.0, 1.0);
    assert_eq!(x, [0.0, 0.5, 1.0]);
}

#[test]
fn simplex_projection_known_values() {
    let mut x = [1.0, 0.5, -1.0];
    project_simplex(&mut x, 1.0);
    assert_close(&x, &[0.75, 0.25, 0.0], 1e-15);
    let mut x = [0.2, 0.3, 0.5];
    project_simplex(&mut x, 1.0);
    assert_close(&x, &[0.2, 0.3, 0.5], 1e-15);
    let mut x = [0.0, 0.0];
    project_simplex(&mut x, 2.0);
    assert_close(&x, &[1.0, 1.0], 1e-15);
}

#[test]
fn sparse_simplex_projection_matches_methods_check_value() {
    let mut x = [0.5, 0.3, 0.2, 0.9];
    project_sparse_simplex(&mut x, 2, 1.0);
    assert_close(&x, &[0.3, 0.0, 0.0, 0.7], 1e-15);
    let mut x = [0.5, 0.3, 0.2, 0.9];
    project_sparse_simplex(&mut x, 1, 1.0);
    assert_eq!(x, [0.0, 0.0, 0.0, 1.0]);
}

#[test]
fn hard_threshold_keeps_largest_magnitudes() {
    let mut x = [0.1, -3.0, 2.0, 0.5];
    hard_threshold_top_k(&mut x, 2);
    assert_eq!(x, [0.0, -3.0, 2.0, 0.0]);
    let mut m = array![[1.0, -5.0], [-2.0, 4.0], [3.0, 0.1]];
    hard_threshold_top_k_cols(&mut m, 1);
    assert_eq!(m, array![[0.0, -5.0], [0.0, 0.0], [3.0, 0.0]]);
    let mut m = array![[1.0, -5.0, 2.0], [-2.0, 4.0, 0.0]];
    hard_threshold_top_k_rows(&mut m, 2);
    assert_eq!(m, array![[0.0, -5.0, 2.0], [-2.0, 4.0, 0.0]]);
}

/// The solution of `source` (one variable) and the constraints' violations.
fn solve(source: &str) -> (Vec<f64>, Vec<f64>) {
    let mut m = model(source);
    let plan = plan::choose(&m.program).unwrap();
    assert_eq!(plan.method, Method::ProxGrad);
    assert!(plan.reason.contains("projection"), "{}", plan.reason);
    let outcome = plan::solve(&mut m, &plan, &mut go_on).unwrap();
    assert_eq!(outcome.report.status, Status::Converged);
    let violations = (0..m.program.constraints.len())
        .map(|i| m.violation(i).unwrap())
        .collect();
    (outcome.report.x, violations)
}

#[test]
fn the_nearest_point_of_a_simplex_and_of_a_box() {
    // Sorted 1.2, 0.5, 0.3: the threshold is 0.35.
    let (x, v) = solve(
        "var x : real[3] = 0\nlet y = [0.5, 0.3, 1.2]\nminimize sumsq(x - y)\nsubject to\n  x in simplex\n",
    );
    assert_close(&x, &[0.15, 0.0, 0.85], 1e-12);
    assert_eq!(v, [0.0]);
    let (x, _) = solve(
        "var x : real[3] = 0\nlet y = [-1.0, 0.3, 1.2]\nminimize sumsq(x - y)\nsubject to\n  x in box(-0.5, 0.5)\n",
    );
    assert_close(&x, &[-0.5, 0.3, 0.5], 1e-12);
}

#[test]
fn minimum_variance_on_the_simplex_is_inverse_to_the_variances() {
    // min Σ sᵢxᵢ² on the simplex: xᵢ ∝ 1/sᵢ.
    let (x, v) = solve(
        "var x : real[3] = 0\nlet s = [1.0, 2.0, 4.0]\nminimize sum(s .* x .* x)\nsubject to\n  budget: x in simplex\n",
    );
    assert_close(&x, &[4.0 / 7.0, 2.0 / 7.0, 1.0 / 7.0], 1e-5);
    assert!(v[0] < 1e-12);
}

#[test]
fn cardinality_per_column_and_per_nonnegative_row() {
    let y = "let Y = [[0.5, -2.0], [-1.0, 0.1], [0.2, 0.3]]";
    // The largest magnitude of each column.
    let (w, v) = solve(&format!(
        "var W : real[3, 2] = 0\n{y}\nminimize 0.5 * sumsq(W - Y)\nsubject to\n  for j in 0..2: card(W[:, j]) <= 1\n"
    ));
    assert_close(&w, &[0.0, -2.0, -1.0, 0.0, 0.0, 0.0], 1e-12);
    assert_eq!(v, [0.0]);
    // Nonnegative: the largest positive entry of each row.
    let (w, _) = solve(&format!(
        "var W : real[3, 2] >= 0 = 0\n{y}\nminimize 0.5 * sumsq(W - Y)\nsubject to\n  for i in 0..3: card(W[i, :]) <= 1\n"
    ));
    assert_close(&w, &[0.5, 0.0, 0.0, 0.1, 0.0, 0.3], 1e-12);
}

fn refusal(source: &str) -> String {
    let mut m = model(source);
    let e = match plan::choose(&m.program) {
        Err(e) => e,
        Ok(plan) => plan::solve(&mut m, &plan, &mut go_on)
            .err()
            .expect("refused"),
    };
    assert_eq!(e.code, "E0360", "{}", e.message);
    e.message
}

#[test]
fn compositions_that_a_projection_would_not_solve_are_refused() {
    let base =
        "var x : real[3] BOUND = 0\nlet y = [0.5, 0.3, 1.2]\nminimize sumsq(x - y)\nsubject to\n";
    let with = |bound: &str, constraints: &str| base.replace("BOUND", bound) + constraints;
    assert!(refusal(&with(">= 0", "  s: x in simplex\n"))
        .contains("drop the variable's declared bound"));
    assert!(refusal(&with("", "  s: x in simplex\n  c: card(x) <= 1\n")).contains("one set"));
    assert!(refusal(&with(">= -1", "  c: card(x) <= 1\n")).contains("`>= 0` alone"));
    // A cardinality constraint on an expression is no projection (a set on an expression is
    // an inequality of `auglag`, tests/auglag.rs).
    assert!(refusal(&with("", "  e: card(x + 1) <= 1\n")).contains("cannot be handled"));
}

#[test]
fn a_start_outside_the_bounds_is_never_returned() {
    // From x = 0, outside x ≥ 1: the start's objective (0) is below every feasible one, and the
    // best point seen used to be that start. The solution is the bound, x = 1.
    for (method, chosen) in [
        ("fista", Method::ProxGrad),
        ("adam(max_iter = 20000)", Method::Adam),
    ] {
        let (_, outcome) = solve_by(
            &format!(
                "var x : real[2] >= 1 = 0\nminimize sumsq(x) + 0.1 * norm1(x)\nsolve with {method}\n"
            ),
            chosen,
        );
        assert_close(&outcome.report.x, &[1.0, 1.0], 1e-6);
        assert!(
            (outcome.report.value - 2.2).abs() < 1e-6,
            "{method}: {:?}",
            outcome.report
        );
    }
}

#[test]
fn a_maximized_objective_minus_an_l1_term_gets_its_prox() {
    // max −‖x − c‖² − 0.1‖x‖₁ is min ‖x − c‖² + 0.1‖x‖₁: x = soft(c, 0.05). Its L1 term used to
    // be taken for a smooth one (L-BFGS on a kink, ending in a failed line search).
    for objective in [
        "maximize -sumsq(x - c) - 0.1 * norm1(x)",
        "maximize -(sumsq(x - c) + 0.1 * norm1(x))",
    ] {
        let (_, outcome) = solve_by(
            &format!("var x : real[3] = 0\nlet c = [1.0, 0.02, -0.3]\n{objective}\n"),
            Method::ProxGrad,
        );
        assert_eq!(outcome.report.status, Status::Converged, "{objective}");
        assert_close(&outcome.report.x, &[0.95, 0.0, -0.25], 1e-9);
    }
}
