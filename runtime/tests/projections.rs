//! `fista` with `in` and `card` constraints enforced by projection: known solutions (projections
//! of a point, minimum variance on the simplex, sparsity per column and per row), and the
//! compositions it refuses.

use optc_compiler::driver::{compile, Until};
use optc_runtime::model::{bind, BindSpec, Model};
use optc_runtime::plan::{self, Method};
use optc_runtime::solvers::{Control, IterInfo, Status};
use std::path::Path;

fn go_on(_: &IterInfo) -> Control {
    Control::Continue
}

fn model(source: &str) -> Model {
    let program = compile("sets.opt", source, Until::Ir)
        .unwrap_or_else(|e| panic!("{:?}", e.diagnostics))
        .program
        .unwrap();
    let bindings = bind(&program, Path::new("."), &BindSpec::default()).unwrap();
    Model::new(program, bindings).unwrap()
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

fn assert_close(x: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(x.len(), expected.len());
    for (a, b) in x.iter().zip(expected) {
        assert!((a - b).abs() <= tol, "{x:?} vs {expected:?}");
    }
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
    // A set on an expression is no projection.
    assert!(refusal(&with("", "  e: x + 1 in nonneg\n")).contains("cannot be handled"));
}
