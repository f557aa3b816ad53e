//! The graphical lasso (`examples/covariance/graphical_lasso.opt`): a symmetric variable, a
//! `logdet` that must stay positive definite, and an off-diagonal L1 norm with entry weights,
//! solved by `fista`. Checked by the optimality conditions of the convex problem at the
//! solution (not by a stored answer), and by recovering a planted sparse precision matrix.

#[path = "support/solve.rs"]
mod support;
#[path = "support/temp.rs"]
mod temp;

use ndarray::Array2;
use optc_compiler::driver::{compile, Until};
use optc_runtime::linalg;
use optc_runtime::model::{bind, BindSpec, Model};
use optc_runtime::plan::{self, Method};
use optc_runtime::simulate::ggm;
use optc_runtime::solvers::Status;
use std::path::{Path, PathBuf};
use support::go_on;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/covariance/graphical_lasso.opt")
}

/// The example solved with `S` bound to `s` (its own data when `None`) and `lambda`: Θ, S.
fn solve(s: Option<&Path>, lambda: f64) -> (Array2<f64>, Array2<f64>) {
    let path = example();
    let source = std::fs::read_to_string(&path).unwrap();
    let program = compile("graphical_lasso.opt", &source, Until::Ir)
        .unwrap_or_else(|e| panic!("{:?}", e.diagnostics))
        .program
        .unwrap();
    let spec = BindSpec {
        data: s
            .map(|s| vec![("S".into(), s.to_path_buf())])
            .unwrap_or_default(),
        params: vec![("lambda".into(), lambda)],
        ..BindSpec::default()
    };
    let bindings = bind(&program, path.parent().unwrap(), &spec).unwrap();
    let covariance = bindings.inputs[0].clone().unwrap();
    let mut m = Model::new(program, bindings).unwrap();
    let plan = plan::choose(&m.program).unwrap();
    assert_eq!(plan.method, Method::ProxGrad, "{}", plan.reason);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let outcome = plan::solve(&mut m, &plan, &mut go_on).unwrap();
    assert_eq!(
        outcome.report.status,
        Status::Converged,
        "{:?}",
        outcome.report
    );
    let p = covariance.shape()[0];
    let theta = Array2::from_shape_vec((p, p), outcome.report.x).unwrap();
    (theta, covariance.into_dimensionality().unwrap())
}

#[test]
fn the_example_meets_the_optimality_conditions() {
    // Stationarity of −log det Θ + tr(SΘ) + λ Σ_{i≠j} |Θᵢⱼ| over symmetric Θ ≻ 0 (both S and
    // Θ⁻¹ are symmetric, so the symmetry's multiplier is 0): G = S − Θ⁻¹ has a zero diagonal,
    // Gᵢⱼ = −λ sign Θᵢⱼ where Θᵢⱼ ≠ 0 and |Gᵢⱼ| ≤ λ where Θᵢⱼ = 0. Convex: this is the minimum.
    let lambda = 0.05;
    let (theta, s) = solve(None, lambda);
    assert_eq!(theta, theta.t(), "exactly symmetric");
    assert!(linalg::logdet(theta.view()).is_ok(), "positive definite");
    let g = &s - &linalg::inv(theta.view()).unwrap();
    let tol = 1e-6;
    let mut zeros = 0;
    for ((i, j), &t) in theta.indexed_iter() {
        let gij = g[[i, j]];
        if i == j {
            assert!(gij.abs() < tol, "G[{i}, {i}] = {gij}");
        } else if t == 0.0 {
            zeros += 1;
            assert!(gij.abs() <= lambda + tol, "G[{i}, {j}] = {gij} at a zero");
        } else {
            assert!(
                (gij + lambda * t.signum()).abs() < tol,
                "G[{i}, {j}] = {gij}, Θ = {t}"
            );
        }
    }
    assert!(
        zeros > 100,
        "only {zeros} zeros: the L1 term is not doing its work"
    );
}

#[test]
fn a_planted_sparse_precision_matrix_is_recovered() {
    // 10 000 samples of a 20-variable Gaussian graphical model with 26 edges: at λ = 0.02 the
    // estimate's large entries (|Θᵢⱼ| > 0.1) are exactly the planted edges, with their signs.
    let (_, s, truth) = ggm(10_000, 20, 20, 7);
    let dir = temp::TempDir::new("covariance", "planted");
    let file = dir.join("S.npy");
    optc_runtime::data::write_npy(&file, &s.into_dyn()).unwrap();
    let (theta, _) = solve(Some(&file), 0.02);
    let mut edges = 0;
    for ((i, j), &t) in theta.indexed_iter().filter(|((i, j), _)| i != j) {
        let planted = truth[[i, j]];
        if planted != 0.0 {
            edges += 1;
            assert!(
                t.abs() > 0.1 && t.signum() == planted.signum(),
                "edge ({i}, {j}): {t} vs {planted}"
            );
        } else {
            assert!(t.abs() < 0.1, "no edge at ({i}, {j}), estimated {t}");
        }
    }
    assert_eq!(edges / 2, 26);
}
