//! Small dense linear-algebra kernels: LU with partial pivoting on row-major slices ([`Lu`], in
//! `lu.rs`) and the matrix exponential (scaling and squaring with Padé approximants of degree
//! 3 to 13, Higham 2005; [`expm_into`], in `expm.rs`), both with reusable workspaces; on `ndarray`
//! matrices, what is built on them (solve, inverse, log-determinant, `expm`), integer matrix
//! powers (repeated squaring), the first and second Fréchet derivatives of both, and singular
//! values (via faer).
//!
//! Used by the reference interpreter and by the native backend's kernels; the GPU executor runs
//! the exponential's algorithm ([`scaling_and_squaring`]) on device buffers.

use ndarray::{s, Array2, ArrayView2};
use std::fmt;

mod expm;
mod lu;
pub use expm::{expm_into, scaling_and_squaring, ExpmWork, PadeMatrix, PadeSteps, PADE_MATRICES};
pub use lu::{logdet_of_pivots, Lu, NonPositiveMinor, Pivoting};

/// Why a kernel could not produce a result.
#[derive(Clone, Debug, PartialEq)]
pub enum LinalgError {
    /// A pivot of the LU factorization vanished (relative to the size of the matrix).
    Singular,
    /// The singular value decomposition did not converge.
    SvdNoConvergence,
}

impl fmt::Display for LinalgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinalgError::Singular => f.write_str("the matrix is singular"),
            LinalgError::SvdNoConvergence => {
                f.write_str("the singular value decomposition did not converge")
            }
        }
    }
}

/// A faer copy of an ndarray matrix.
fn to_faer(a: ArrayView2<f64>) -> faer::Mat<f64> {
    faer::Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]])
}

/// The entries of `a` in row-major order.
fn row_major(a: ArrayView2<f64>) -> Vec<f64> {
    a.iter().copied().collect()
}

/// The LU factors of a square ndarray matrix.
fn factor(a: ArrayView2<f64>) -> Lu {
    assert_eq!(a.nrows(), a.ncols(), "LU needs a square matrix");
    Lu::factor(&row_major(a), a.nrows(), Pivoting::Partial)
}

/// `A⁻¹ B` for a square `a` and a matrix `b` with as many rows.
pub fn solve(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Result<Array2<f64>, LinalgError> {
    let mut x = row_major(b);
    factor(a).solve_in_place(&mut x, b.ncols())?;
    Ok(Array2::from_shape_vec(b.raw_dim(), x).expect("same shape as b"))
}

/// `A⁻¹`.
pub fn inv(a: ArrayView2<f64>) -> Result<Array2<f64>, LinalgError> {
    let mut x = vec![0.0; a.len()];
    factor(a).inverse_into(&mut x)?;
    Ok(Array2::from_shape_vec(a.raw_dim(), x).expect("same shape as a"))
}

/// log det A where every leading principal minor of A is positive ([`Lu::logdet`]).
pub fn logdet(a: ArrayView2<f64>) -> Result<f64, NonPositiveMinor> {
    assert_eq!(a.nrows(), a.ncols(), "logdet needs a square matrix");
    Lu::factor(&row_major(a), a.nrows(), Pivoting::None).logdet()
}

/// The matrix exponential: a Padé approximant of degree 3 to 9 when ‖A‖₁ is small, else scale by
/// 2⁻ˢ so that ‖A‖₁ ≤ θ₁₃, take the degree-13 approximant, square `s` times ([`expm_into`], with
/// a workspace of its own). Non-finite input gives
/// non-finite output (no error).
pub fn expm(a: ArrayView2<f64>) -> Array2<f64> {
    let n = a.nrows();
    assert_eq!(n, a.ncols(), "expm needs a square matrix");
    let mut out = vec![0.0; n * n];
    expm_into(&row_major(a), n, &mut out, &mut ExpmWork::new());
    Array2::from_shape_vec((n, n), out).expect("n × n")
}

/// The Fréchet derivative of `expm` at `a` in direction `e`: d/dt expm(A + tE) at t = 0, the
/// upper-right block of expm([[A, E], [0, A]]) (Higham 2008, Theorem 3.6).
pub fn expm_frechet(a: ArrayView2<f64>, e: ArrayView2<f64>) -> Array2<f64> {
    block_corner(expm, a, &[e])
}

/// The second derivative ∂²/∂s∂t expm(A + sE + tF) at 0: the upper-right blocks of
/// expm([[A, E, 0], [0, A, F], [0, 0, A]]) and of the same with E and F swapped, summed.
pub fn expm_frechet2(a: ArrayView2<f64>, e: ArrayView2<f64>, f: ArrayView2<f64>) -> Array2<f64> {
    block_corner(expm, a, &[e, f]) + block_corner(expm, a, &[f, e])
}

/// A^k by repeated squaring (about 2·log2(k) products); A⁰ = I.
pub fn matpow(a: ArrayView2<f64>, k: usize) -> Array2<f64> {
    let n = a.nrows();
    assert_eq!(n, a.ncols(), "matpow needs a square matrix");
    let mut result: Option<Array2<f64>> = None;
    let mut square = a.to_owned();
    let mut k = k;
    while k > 0 {
        if k & 1 == 1 {
            result = Some(match result {
                Some(r) => r.dot(&square),
                None => square.clone(),
            });
        }
        k >>= 1;
        if k > 0 {
            square = square.dot(&square);
        }
    }
    result.unwrap_or_else(|| Array2::eye(n))
}

/// The Fréchet derivative of A^k in direction `e`: d/dt (A + tE)^k at t = 0, the upper-right
/// block of [[A, E], [0, A]]^k.
pub fn matpow_frechet(a: ArrayView2<f64>, e: ArrayView2<f64>, k: usize) -> Array2<f64> {
    block_corner(|m| matpow(m, k), a, &[e])
}

/// The second derivative ∂²/∂s∂t (A + sE + tF)^k at 0: the upper-right blocks of
/// [[A, E, 0], [0, A, F], [0, 0, A]]^k and of the same with E and F swapped, summed.
pub fn matpow_frechet2(
    a: ArrayView2<f64>,
    e: ArrayView2<f64>,
    f: ArrayView2<f64>,
    k: usize,
) -> Array2<f64> {
    let power = |m: ArrayView2<f64>| matpow(m, k);
    block_corner(power, a, &[e, f]) + block_corner(power, a, &[f, e])
}

/// The upper-right n×n block of `function` (a matrix power series: expm, a power) of the block
/// upper-triangular matrix with `a` on every diagonal block and `superdiagonal[i]` in block
/// (i, i + 1).
fn block_corner(
    function: impl Fn(ArrayView2<f64>) -> Array2<f64>,
    a: ArrayView2<f64>,
    superdiagonal: &[ArrayView2<f64>],
) -> Array2<f64> {
    let n = a.nrows();
    let k = superdiagonal.len() + 1;
    let mut m = Array2::zeros((k * n, k * n));
    for i in 0..k {
        m.slice_mut(s![i * n..(i + 1) * n, i * n..(i + 1) * n])
            .assign(&a);
    }
    for (i, e) in superdiagonal.iter().enumerate() {
        m.slice_mut(s![i * n..(i + 1) * n, (i + 1) * n..(i + 2) * n])
            .assign(e);
    }
    function(m.view())
        .slice(s![0..n, (k - 1) * n..k * n])
        .to_owned()
}

/// Eigenvalues of the symmetric matrix `a` (its lower triangle read), nondecreasing.
pub fn symmetric_eigenvalues(a: ArrayView2<f64>) -> Result<Vec<f64>, LinalgError> {
    to_faer(a)
        .self_adjoint_eigenvalues(faer::Side::Lower)
        .map_err(|_| LinalgError::SvdNoConvergence)
}

/// Singular values, nonincreasing.
pub fn singular_values(a: ArrayView2<f64>) -> Result<Vec<f64>, LinalgError> {
    to_faer(a)
        .singular_values()
        .map_err(|_| LinalgError::SvdNoConvergence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn close(a: &Array2<f64>, b: &Array2<f64>, tol: f64) -> bool {
        a.shape() == b.shape() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn lu_solve_needs_pivoting() {
        // The (0, 0) entry is zero: without pivoting the first step divides by zero.
        let a = array![[0.0, 1.0], [2.0, 3.0]];
        let b = array![[1.0], [8.0]];
        // 0x + y = 1, 2x + 3y = 8 → y = 1, x = 2.5.
        let x = solve(a.view(), b.view()).unwrap();
        assert!(close(&x, &array![[2.5], [1.0]], 1e-15));
    }

    #[test]
    fn singular_matrix_is_reported() {
        let a = array![[1.0, 2.0], [2.0, 4.0]];
        assert_eq!(inv(a.view()), Err(LinalgError::Singular));
        assert_eq!(logdet(a.view()), Err(NonPositiveMinor { order: 2 }));
    }

    #[test]
    fn inverse_of_2x2() {
        let a = array![[4.0, 7.0], [2.0, 6.0]];
        // det = 10; inverse = [[6, −7], [−2, 4]] / 10.
        let expected = array![[0.6, -0.7], [-0.2, 0.4]];
        assert!(close(&inv(a.view()).unwrap(), &expected, 1e-15));
    }

    #[test]
    fn logdet_of_a_positive_definite_matrix() {
        // det [[4, 2], [2, 3]] = 8; its minors 4 and 8 are positive.
        let value = logdet(array![[4.0, 2.0], [2.0, 3.0]].view()).unwrap();
        assert!((value - 8f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn matpow_by_hand() {
        let a = array![[1.0, 2.0], [3.0, 4.0]];
        assert_eq!(matpow(a.view(), 0), Array2::<f64>::eye(2));
        assert_eq!(matpow(a.view(), 1), a);
        assert_eq!(matpow(a.view(), 2), array![[7.0, 10.0], [15.0, 22.0]]);
        // A⁵ = A⁴ A with A⁴ = (A²)² = [[199, 290], [435, 634]].
        assert_eq!(
            matpow(a.view(), 5),
            array![[1069.0, 1558.0], [2337.0, 3406.0]]
        );
        assert_eq!(matpow(Array2::<f64>::zeros((0, 0)).view(), 3).dim(), (0, 0));
    }

    #[test]
    fn matpow_frechet_derivatives_by_hand() {
        // d/dt (A + tE)² = AE + EA; ∂²/∂s∂t (A + sE + tF)² = EF + FE.
        let a = array![[1.0, 2.0], [0.0, -1.0]];
        let e = array![[0.5, 0.0], [1.0, 2.0]];
        let f = array![[0.0, 1.0], [-1.0, 3.0]];
        let first = matpow_frechet(a.view(), e.view(), 2);
        assert!(close(&first, &(a.dot(&e) + e.dot(&a)), 1e-12));
        let second = matpow_frechet2(a.view(), e.view(), f.view(), 2);
        assert!(close(&second, &(e.dot(&f) + f.dot(&e)), 1e-12));
        // k = 3: ∂²/∂s∂t = Σ over orders of A, E, F: AEF + AFE + EAF + FAE + EFA + FEA.
        let want = a.dot(&e).dot(&f)
            + a.dot(&f).dot(&e)
            + e.dot(&a).dot(&f)
            + f.dot(&a).dot(&e)
            + e.dot(&f).dot(&a)
            + f.dot(&e).dot(&a);
        let second = matpow_frechet2(a.view(), e.view(), f.view(), 3);
        assert!(close(&second, &want, 1e-12));
        // Powers 0 and 1 have derivatives 0 and E (first) and 0 (second).
        assert!(close(
            &matpow_frechet(a.view(), e.view(), 0),
            &Array2::zeros((2, 2)),
            0.0
        ));
        assert!(close(&matpow_frechet(a.view(), e.view(), 1), &e, 0.0));
        let zero = matpow_frechet2(a.view(), e.view(), f.view(), 1);
        assert!(close(&zero, &Array2::zeros((2, 2)), 0.0));
    }

    #[test]
    fn expm_of_large_rotation_generator_uses_squaring() {
        // ‖A‖₁ = 10 > θ₁₃, so this goes through the scaling and squaring branch.
        let t = 10.0;
        let e = expm(array![[0.0, -t], [t, 0.0]].view());
        let expected = array![[t.cos(), -t.sin()], [t.sin(), t.cos()]];
        assert!(close(&e, &expected, 1e-12));
    }

    #[test]
    fn expm_frechet_derivatives_of_commuting_diagonals() {
        // Diagonal matrices commute: L(A, E) = E exp(A) and the second derivative is E F exp(A).
        let (e1, e2) = (1f64.exp(), 2f64.exp());
        let a = array![[1.0, 0.0], [0.0, 2.0]];
        let e = array![[3.0, 0.0], [0.0, 4.0]];
        let f = array![[5.0, 0.0], [0.0, 6.0]];
        let first = expm_frechet(a.view(), e.view());
        assert!(close(
            &first,
            &array![[3.0 * e1, 0.0], [0.0, 4.0 * e2]],
            1e-12
        ));
        let second = expm_frechet2(a.view(), e.view(), f.view());
        assert!(close(
            &second,
            &array![[15.0 * e1, 0.0], [0.0, 24.0 * e2]],
            1e-11
        ));
    }

    #[test]
    fn expm_frechet_matches_central_differences() {
        let a = array![[0.3, -1.2], [0.8, 0.1]];
        let e = array![[0.5, 0.2], [-0.7, 1.0]];
        let h = 1e-6;
        let diff = (expm((&a + &(&e * h)).view()) - expm((&a - &(&e * h)).view())) / (2.0 * h);
        assert!(close(&expm_frechet(a.view(), e.view()), &diff, 1e-8));
    }

    #[test]
    fn singular_values_of_diagonal_and_rank_one() {
        let s = singular_values(array![[3.0, 0.0], [0.0, -4.0]].view()).unwrap();
        assert!((s[0] - 4.0).abs() < 1e-14 && (s[1] - 3.0).abs() < 1e-14);
        // u vᵀ with |u| = √2 and |v| = √3: one singular value √6.
        let r1 = singular_values(array![[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]].view()).unwrap();
        assert!((r1[0] - 6f64.sqrt()).abs() < 1e-14 && r1[1].abs() < 1e-14);
    }
}
