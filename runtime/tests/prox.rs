//! Prox operators and projections against hand-computed values.

use ndarray::{array, Array2};
use optc_runtime::prox::*;

fn assert_close(actual: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len());
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() <= tol, "{actual:?} vs {expected:?}");
    }
}

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
    assert_close(out.as_slice().unwrap(), &[0.0, 0.0, 0.0, 0.0, 0.5, 0.0], 1e-12);
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
