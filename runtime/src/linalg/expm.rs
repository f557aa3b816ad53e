//! The matrix exponential by scaling and squaring with the degree-13 Padé approximant (Higham
//! 2005), on row-major slices with a reusable workspace: once the workspace has grown to the
//! size, a call allocates nothing (the `expm` kernel keeps one workspace per thread, as the LU
//! kernels keep their factorization). Products go through faer's matrix product; the Padé
//! polynomials are combined in single passes.

use super::lu::Lu;
use faer::{Accum, MatMut, MatRef, Par};

/// θ₁₃: the largest ‖A‖₁ for which the degree-13 Padé approximant is accurate to double
/// precision (Higham 2005, Table 2.3).
const THETA13: f64 = 5.371_920_351_148_152;

/// Coefficients of the degree-13 Padé approximant of exp (Higham 2005, Table 10.4's `b_j`).
const PADE13: [f64; 14] = [
    64764752532480000.0,
    32382376266240000.0,
    7771770303897600.0,
    1187353796428800.0,
    129060195264000.0,
    10559470521600.0,
    670442572800.0,
    33522128640.0,
    1323241920.0,
    40840800.0,
    960960.0,
    16380.0,
    182.0,
    1.0,
];

/// Buffers of [`expm_into`], grown to the largest size seen.
#[derive(Default)]
pub struct ExpmWork {
    column_sums: Vec<f64>,
    scaled: Vec<f64>,
    a2: Vec<f64>,
    a4: Vec<f64>,
    a6: Vec<f64>,
    inner: Vec<f64>,
    poly: Vec<f64>,
    u: Vec<f64>,
    lu: Lu,
}

impl ExpmWork {
    pub const fn new() -> ExpmWork {
        ExpmWork {
            column_sums: Vec::new(),
            scaled: Vec::new(),
            a2: Vec::new(),
            a4: Vec::new(),
            a6: Vec::new(),
            inner: Vec::new(),
            poly: Vec::new(),
            u: Vec::new(),
            lu: Lu::new(),
        }
    }
}

/// `c = a · b` (`Accum::Replace`) or `c += a · b` (`Accum::Add`), all row-major `n × n`.
fn product(c: &mut [f64], a: &[f64], b: &[f64], n: usize, accum: Accum) {
    faer::linalg::matmul::matmul(
        MatMut::from_row_major_slice_mut(c, n, n),
        accum,
        MatRef::from_row_major_slice(a, n, n),
        MatRef::from_row_major_slice(b, n, n),
        1.0,
        Par::Seq,
    );
}

/// `out = c6·A⁶ + c4·A⁴ + c2·A² + c0·I` in one pass.
fn combine(out: &mut [f64], w: &ExpmWork, [c6, c4, c2, c0]: [f64; 4], n: usize) {
    for (((o, a6), a4), a2) in out.iter_mut().zip(&w.a6).zip(&w.a4).zip(&w.a2) {
        *o = c6 * a6 + c4 * a4 + c2 * a2;
    }
    for diagonal in out.iter_mut().step_by(n + 1) {
        *diagonal += c0;
    }
}

/// The largest absolute column sum of the row-major `n × n` matrix `a` (`sums`: scratch).
fn norm1(a: &[f64], n: usize, sums: &mut Vec<f64>) -> f64 {
    sums.clear();
    sums.resize(n, 0.0);
    for row in a.chunks_exact(n.max(1)) {
        for (s, x) in sums.iter_mut().zip(row) {
            *s += x.abs();
        }
    }
    sums.iter().copied().fold(0.0, f64::max)
}

/// Writes `exp(A)` of the row-major `n × n` matrix `a` to `out` (row-major). Non-finite input
/// gives non-finite output (no error).
pub fn expm_into(a: &[f64], n: usize, out: &mut [f64], w: &mut ExpmWork) {
    let len = n * n;
    assert!(
        a.len() == len && out.len() == len,
        "expm needs square n × n buffers"
    );
    let norm = norm1(a, n, &mut w.column_sums);
    if !norm.is_finite() {
        out.fill(f64::NAN);
        return;
    }
    let squarings = if norm > THETA13 {
        (norm / THETA13).log2().ceil() as i32
    } else {
        0
    };
    for buffer in [
        &mut w.scaled,
        &mut w.a2,
        &mut w.a4,
        &mut w.a6,
        &mut w.inner,
        &mut w.poly,
        &mut w.u,
    ] {
        buffer.resize(len, 0.0);
    }
    let scale = 2f64.powi(-squarings);
    for (s, x) in w.scaled.iter_mut().zip(a) {
        *s = x * scale;
    }
    product(&mut w.a2, &w.scaled, &w.scaled, n, Accum::Replace);
    product(&mut w.a4, &w.a2, &w.a2, n, Accum::Replace);
    product(&mut w.a6, &w.a4, &w.a2, n, Accum::Replace);
    let b = &PADE13;
    // U = A (A⁶ (b13 A⁶ + b11 A⁴ + b9 A²) + b7 A⁶ + b5 A⁴ + b3 A² + b1 I).
    let mut inner = std::mem::take(&mut w.inner);
    let mut poly = std::mem::take(&mut w.poly);
    combine(&mut inner, w, [b[13], b[11], b[9], 0.0], n);
    combine(&mut poly, w, [b[7], b[5], b[3], b[1]], n);
    product(&mut poly, &w.a6, &inner, n, Accum::Add);
    product(&mut w.u, &w.scaled, &poly, n, Accum::Replace);
    // V = A⁶ (b12 A⁶ + b10 A⁴ + b8 A²) + b6 A⁶ + b4 A⁴ + b2 A² + b0 I, into `poly`.
    combine(&mut inner, w, [b[12], b[10], b[8], 0.0], n);
    combine(&mut poly, w, [b[6], b[4], b[2], b[0]], n);
    product(&mut poly, &w.a6, &inner, n, Accum::Add);
    // r = (V − U)⁻¹ (V + U): V − U is well conditioned for ‖A‖₁ ≤ θ₁₃ (Higham 2005, §2), so
    // the solve fails only for non-finite input, which gives NaN.
    for ((d, v), u) in inner.iter_mut().zip(&poly).zip(&w.u) {
        *d = v - u;
    }
    for (o, (v, u)) in out.iter_mut().zip(poly.iter().zip(&w.u)) {
        *o = v + u;
    }
    w.lu.refactor(&inner, n);
    if w.lu.solve_in_place(out, n).is_err() {
        out.fill(f64::NAN);
    }
    for _ in 0..squarings {
        product(&mut inner, out, out, n, Accum::Replace);
        out.copy_from_slice(&inner);
    }
    w.inner = inner;
    w.poly = poly;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expm_fresh(a: &[f64], n: usize) -> Vec<f64> {
        let mut out = vec![0.0; n * n];
        expm_into(a, n, &mut out, &mut ExpmWork::new());
        out
    }

    fn product_of(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
        let mut c = vec![0.0; n * n];
        product(&mut c, a, b, n, Accum::Replace);
        c
    }

    /// Deterministic pseudo-random entries in [−scale, scale).
    fn matrix(n: usize, seed: u64, scale: f64) -> Vec<f64> {
        let mut state = seed;
        (0..n * n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                scale * (2.0 * ((state >> 11) as f64 / (1u64 << 53) as f64) - 1.0)
            })
            .collect()
    }

    #[test]
    fn exp_of_a_and_of_minus_a_are_inverse_with_and_without_squaring() {
        for (n, scale) in [(1, 0.3), (7, 0.1), (30, 0.05), (30, 2.0)] {
            let a = matrix(n, n as u64, scale);
            let minus: Vec<f64> = a.iter().map(|x| -x).collect();
            let identity = product_of(&expm_fresh(&a, n), &expm_fresh(&minus, n), n);
            for i in 0..n {
                for j in 0..n {
                    let want = if i == j { 1.0 } else { 0.0 };
                    let got = identity[i * n + j];
                    assert!(
                        (got - want).abs() < 1e-9,
                        "n {n} scale {scale}: [{i},{j}] = {got}"
                    );
                }
            }
        }
    }

    #[test]
    fn exp_matches_its_taylor_series_to_rounding() {
        // ‖A‖₁ ≈ 1.2–10: the series (80 terms) converges to rounding; both Padé branches run.
        for (n, scale) in [(6, 0.2), (20, 0.1), (20, 0.5)] {
            let a = matrix(n, 11 + n as u64, scale);
            let mut term: Vec<f64> = (0..n * n).map(|k| f64::from(k % (n + 1) == 0)).collect();
            let mut series = term.clone();
            for k in 1..80 {
                term = product_of(&term, &a, n);
                term.iter_mut().for_each(|t| *t /= k as f64);
                series.iter_mut().zip(&term).for_each(|(s, t)| *s += t);
            }
            let got = expm_fresh(&a, n);
            let largest = series.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            for (g, s) in got.iter().zip(&series) {
                assert!(
                    (g - s).abs() <= 1e-13 * largest,
                    "n {n} scale {scale}: {g} vs {s}"
                );
            }
        }
    }

    #[test]
    fn exp_of_a_nilpotent_matrix_is_its_finite_series() {
        // N strictly upper triangular (N⁴ = 0): exp(N) = I + N + N²/2 + N³/6.
        let n = 4;
        let mut a = matrix(n, 3, 1.5);
        for i in 0..n {
            for j in 0..=i {
                a[i * n + j] = 0.0;
            }
        }
        let a2 = product_of(&a, &a, n);
        let a3 = product_of(&a2, &a, n);
        let got = expm_fresh(&a, n);
        for k in 0..n * n {
            let identity = if k % (n + 1) == 0 { 1.0 } else { 0.0 };
            let want = identity + a[k] + a2[k] / 2.0 + a3[k] / 6.0;
            assert!((got[k] - want).abs() < 1e-13, "{k}: {} vs {want}", got[k]);
        }
    }

    #[test]
    fn a_reused_workspace_gives_what_a_fresh_one_gives_at_every_size() {
        let mut work = ExpmWork::new();
        for (n, scale) in [(9, 1.0), (3, 4.0), (12, 0.2), (0, 1.0), (5, 30.0)] {
            let a = matrix(n, 7 + n as u64, scale);
            let mut out = vec![0.0; n * n];
            expm_into(&a, n, &mut out, &mut work);
            assert_eq!(out, expm_fresh(&a, n), "n = {n}");
        }
        let mut nan = vec![0.0; 4];
        expm_into(&[1.0, f64::INFINITY, 0.0, 1.0], 2, &mut nan, &mut work);
        assert!(nan.iter().all(|x| x.is_nan()));
    }
}
