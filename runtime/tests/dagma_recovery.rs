//! Planted-DAG recovery with the DAGMA central path and a hand-written linear-SEM objective.

use ndarray::{Array2, ArrayView2, Axis};
use optc_runtime::dag::{graph_metrics, logdet_acyclicity, to_dag};
use optc_runtime::simulate::{simulate_linear_sem, GraphKind, NoiseKind, NoiseVariance, SemConfig};
use optc_runtime::solvers::{
    central_path, colide_sigma_ev, Control, FnPathObjective, IterInfo, PathOptions, Status,
};
use std::cell::Cell;

fn planted() -> (Array2<f64>, Array2<f64>) {
    let sem = simulate_linear_sem(&SemConfig {
        d: 10,
        edges: 20,
        n: 1000,
        graph: GraphKind::ErdosRenyi,
        noise: NoiseKind::Gauss,
        variance: NoiseVariance::Equal,
        seed: 1,
    });
    let centred = &sem.x - &sem.x.mean_axis(Axis(0)).unwrap();
    let cov = centred.t().dot(&centred) / sem.x.nrows() as f64;
    (cov, sem.b)
}

/// μ·(score(W) + λ‖W‖₁) + h^s(W) with DAGMA's score ½tr((I−W)ᵀΣ̂(I−W)) when `sigma` is None,
/// CoLiDE-EV's ½tr((I−W)ᵀΣ̂(I−W))/σ + dσ/2 otherwise.
fn score_value_grad(
    cov: ArrayView2<f64>,
    w: &[f64],
    mu: f64,
    s: f64,
    lambda: f64,
    sigma: Option<f64>,
    grad: &mut [f64],
) -> Option<f64> {
    let d = cov.nrows();
    let w = ArrayView2::from_shape((d, d), w).unwrap();
    let (h, h_grad) = logdet_acyclicity(w, s)?;
    let residual = Array2::<f64>::eye(d) - w;
    let cov_residual = cov.dot(&residual);
    let (scale, sigma_term) = sigma.map_or((1.0, 0.0), |sigma| (sigma, 0.5 * d as f64 * sigma));
    let fit = 0.5 * (&residual * &cov_residual).sum() / scale;
    let l1 = w.iter().map(|v| v.abs()).sum::<f64>();
    for (k, g) in grad.iter_mut().enumerate() {
        let (i, j) = (k / d, k % d);
        let sign = w[[i, j]].signum() * f64::from(u8::from(w[[i, j]] != 0.0));
        *g = mu * (-cov_residual[[i, j]] / scale + lambda * sign) + h_grad[[i, j]];
    }
    Some(mu * (fit + sigma_term + lambda * l1) + h)
}

fn go_on(_: &IterInfo) -> Control {
    Control::Continue
}

#[test]
fn dagma_path_recovers_planted_er2_graph() {
    let (cov, truth) = planted();
    let d = cov.nrows();
    let mut objective = FnPathObjective::new(d * d, |w: &[f64], mu: f64, s: f64, g: &mut [f64]| {
        score_value_grad(cov.view(), w, mu, s, 0.02, None, g)
    });
    let result = central_path(
        &mut objective,
        &vec![0.0; d * d],
        &PathOptions::default(),
        &mut go_on,
    );
    assert_eq!(result.report.status, Status::Converged);
    let w = Array2::from_shape_vec((d, d), result.report.x).unwrap();
    let dag = to_dag(w.view(), 0.3);
    let metrics = graph_metrics(dag.w.view(), truth.view());
    assert!(metrics.shd <= 2, "{metrics:?}");
}

#[test]
fn colide_ev_path_recovers_planted_er2_graph() {
    let (cov, truth) = planted();
    let d = cov.nrows();
    // Initial σ: min_j ‖X_j‖/√n = min_j √Σ̂_jj (centred X).
    let sigma = Cell::new(
        cov.diag()
            .iter()
            .fold(f64::INFINITY, |m, v| m.min(v.sqrt())),
    );
    let mut objective = FnPathObjective::with_after_step(
        d * d,
        |w: &[f64], mu: f64, s: f64, g: &mut [f64]| {
            score_value_grad(cov.view(), w, mu, s, 0.05, Some(sigma.get()), g)
        },
        |w: &mut [f64]| {
            sigma.set(colide_sigma_ev(
                cov.view(),
                ArrayView2::from_shape((d, d), &*w).unwrap(),
            ))
        },
    );
    let result = central_path(
        &mut objective,
        &vec![0.0; d * d],
        &PathOptions::colide(),
        &mut go_on,
    );
    assert_eq!(result.report.status, Status::Converged);
    let w = Array2::from_shape_vec((d, d), result.report.x).unwrap();
    let metrics = graph_metrics(to_dag(w.view(), 0.3).w.view(), truth.view());
    assert!(metrics.shd <= 2, "{metrics:?}");
    assert!(
        (sigma.get() - 1.0).abs() < 0.1,
        "EV noise has σ = 1, got {}",
        sigma.get()
    );
}

#[test]
fn colide_closed_form_sigmas_by_hand() {
    use ndarray::array;
    use optc_runtime::solvers::colide_sigma_nv;
    // Σ̂ = I, W = [[0, .5], [0, 0]]: (I−W)ᵀ(I−W) has diagonal (1, 1.25).
    let cov = Array2::<f64>::eye(2);
    let w = array![[0.0, 0.5], [0.0, 0.0]];
    assert!((colide_sigma_ev(cov.view(), w.view()) - (2.25f64 / 2.0).sqrt()).abs() < 1e-15);
    let nv = colide_sigma_nv(cov.view(), w.view());
    assert!((nv[0] - 1.0).abs() < 1e-15 && (nv[1] - 1.25f64.sqrt()).abs() < 1e-15);
}
