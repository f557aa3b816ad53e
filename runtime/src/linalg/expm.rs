//! The matrix exponential by scaling and squaring with Padé approximants (Higham 2005,
//! Algorithm 2.3: degree 3, 5, 7 or 9 without scaling when ‖A‖₁ is small enough, else degree 13
//! after scaling), written once over where its matrices live ([`PadeSteps`],
//! [`scaling_and_squaring`]): on row-major host slices here ([`expm_into`]), on device buffers in
//! the GPU executor. On the host a workspace is reused: once it has grown to the size, a call
//! allocates nothing (the `expm` kernel keeps one workspace per thread, as the LU kernels keep
//! their factorization). Products go through faer's matrix product.

use super::lu::{Lu, Pivoting};
use faer::{Accum, MatMut, MatRef, Par};

/// θ₁₃: the largest ‖A‖₁ for which the degree-13 Padé approximant is accurate to double
/// precision (Higham 2005, Table 2.3).
const THETA13: f64 = 5.371_920_351_148_152;

/// The lower degrees m with their θₘ (Higham 2005, Table 2.3) and the coefficients bⱼ of their
/// Padé approximants (j = 0..=m), tried in order before scaling.
const LOW_DEGREES: [(f64, &[f64]); 4] = [
    (1.495_585_217_958_292e-2, &[120.0, 60.0, 12.0, 1.0]),
    (
        2.539_398_330_063_23e-1,
        &[30240.0, 15120.0, 3360.0, 420.0, 30.0, 1.0],
    ),
    (
        9.504_178_996_162_932e-1,
        &[
            17297280.0, 8648640.0, 1995840.0, 277200.0, 25200.0, 1512.0, 56.0, 1.0,
        ],
    ),
    (
        2.097_847_961_257_068,
        &[
            17643225600.0,
            8821612800.0,
            2075673600.0,
            302702400.0,
            30270240.0,
            2162160.0,
            110880.0,
            3960.0,
            90.0,
            1.0,
        ],
    ),
];

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

/// The matrices of the algorithm besides its input and output: the scaled input S, its powers
/// S², S⁴, S⁶, S⁸, two polynomial buffers, and U.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadeMatrix {
    Scaled,
    Square,
    Fourth,
    Sixth,
    Eighth,
    Inner,
    Poly,
    U,
}

/// The number of [`PadeMatrix`] buffers.
pub const PADE_MATRICES: usize = 8;

/// S², S⁴, S⁶, S⁸: the even powers a polynomial combines.
const EVEN_POWERS: [PadeMatrix; 4] = [
    PadeMatrix::Square,
    PadeMatrix::Fourth,
    PadeMatrix::Sixth,
    PadeMatrix::Eighth,
];

/// The steps of [`scaling_and_squaring`] on n × n matrices, wherever they live.
pub trait PadeSteps {
    type Error;
    /// ‖A‖₁ of the input A.
    fn norm1(&mut self) -> Result<f64, Self::Error>;
    /// S = factor·A.
    fn scale_input(&mut self, factor: f64) -> Result<(), Self::Error>;
    /// `c = a·b`, or `c += a·b` with `accumulate`.
    fn product(
        &mut self,
        c: PadeMatrix,
        a: PadeMatrix,
        b: PadeMatrix,
        accumulate: bool,
    ) -> Result<(), Self::Error>;
    /// `out = Σ cₖ·Mₖ + c·I` over `terms` (cₖ, Mₖ), at least one.
    fn combine(
        &mut self,
        out: PadeMatrix,
        terms: &[(f64, PadeMatrix)],
        identity: f64,
    ) -> Result<(), Self::Error>;
    /// The output = (V − U)⁻¹ (V + U), V in `Poly` (which may be overwritten, as `Inner`);
    /// false when V − U is singular.
    fn pade_quotient(&mut self) -> Result<bool, Self::Error>;
    /// The output squared.
    fn square_output(&mut self) -> Result<(), Self::Error>;
    /// The output set to NaN.
    fn output_nan(&mut self) -> Result<(), Self::Error>;
}

/// The number of squarings for an input of 1-norm `norm` (finite): none up to θ₁₃, else
/// enough to bring the norm below it.
fn squarings(norm: f64) -> i32 {
    if norm > THETA13 {
        (norm / THETA13).log2().ceil() as i32
    } else {
        0
    }
}

/// exp(A) by scaling and squaring: when ‖A‖₁ ≤ θₘ for m = 3, 5, 7 or 9, the degree-m Padé
/// approximant r(A) = (V − U)⁻¹ (V + U) (Higham 2005, Algorithm 2.3); else S = 2⁻ˢA with
/// ‖S‖₁ ≤ θ₁₃, the degree-13 approximant of S, then s squarings. Non-finite input, or a singular
/// V − U (which is well conditioned for these norms, Higham 2005 §2, so only non-finite input
/// makes it so), gives NaN.
pub fn scaling_and_squaring<P: PadeSteps>(p: &mut P) -> Result<(), P::Error> {
    use PadeMatrix::*;
    let norm = p.norm1()?;
    if !norm.is_finite() {
        return p.output_nan();
    }
    if let Some(&(_, b)) = LOW_DEGREES.iter().find(|(theta, _)| norm <= *theta) {
        return low_degree(p, b);
    }
    let squarings = squarings(norm);
    p.scale_input(2f64.powi(-squarings))?;
    p.product(Square, Scaled, Scaled, false)?;
    p.product(Fourth, Square, Square, false)?;
    p.product(Sixth, Fourth, Square, false)?;
    let b = &PADE13;
    // U = S (S⁶ (b13 S⁶ + b11 S⁴ + b9 S²) + b7 S⁶ + b5 S⁴ + b3 S² + b1 I).
    p.combine(
        Inner,
        &[(b[13], Sixth), (b[11], Fourth), (b[9], Square)],
        0.0,
    )?;
    p.combine(Poly, &[(b[7], Sixth), (b[5], Fourth), (b[3], Square)], b[1])?;
    p.product(Poly, Sixth, Inner, true)?;
    p.product(U, Scaled, Poly, false)?;
    // V = S⁶ (b12 S⁶ + b10 S⁴ + b8 S²) + b6 S⁶ + b4 S⁴ + b2 S² + b0 I, into `Poly`.
    p.combine(
        Inner,
        &[(b[12], Sixth), (b[10], Fourth), (b[8], Square)],
        0.0,
    )?;
    p.combine(Poly, &[(b[6], Sixth), (b[4], Fourth), (b[2], Square)], b[0])?;
    p.product(Poly, Sixth, Inner, true)?;
    if !p.pade_quotient()? {
        return p.output_nan();
    }
    for _ in 0..squarings {
        p.square_output()?;
    }
    Ok(())
}

/// The degree-m Padé approximant of A itself (m = b.len() − 1, odd, at most 9): the even powers
/// up to A^(m−1), U = A (Σ b₂ₖ₊₁ A²ᵏ), V = Σ b₂ₖ A²ᵏ, the quotient.
fn low_degree<P: PadeSteps>(p: &mut P, b: &[f64]) -> Result<(), P::Error> {
    use PadeMatrix::*;
    let powers = &EVEN_POWERS[..(b.len() - 2) / 2];
    p.scale_input(1.0)?;
    p.product(Square, Scaled, Scaled, false)?;
    for pair in powers.windows(2) {
        p.product(pair[1], pair[0], Square, false)?;
    }
    // (b₂ₖ₊₁, A²ᵏ) and (b₂ₖ, A²ᵏ) for k ≥ 1.
    let (mut odd, mut even) = ([(0.0, Square); 4], [(0.0, Square); 4]);
    for (k, &m) in powers.iter().enumerate() {
        odd[k] = (b[2 * k + 3], m);
        even[k] = (b[2 * k + 2], m);
    }
    p.combine(Poly, &odd[..powers.len()], b[1])?;
    p.product(U, Scaled, Poly, false)?;
    p.combine(Poly, &even[..powers.len()], b[0])?;
    if !p.pade_quotient()? {
        return p.output_nan();
    }
    Ok(())
}

/// Buffers of [`expm_into`] (one per [`PadeMatrix`]), grown to the largest size seen.
#[derive(Default)]
pub struct ExpmWork {
    column_sums: Vec<f64>,
    matrices: [Vec<f64>; PADE_MATRICES],
    lu: Lu,
}

impl ExpmWork {
    pub const fn new() -> ExpmWork {
        ExpmWork {
            column_sums: Vec::new(),
            matrices: [const { Vec::new() }; PADE_MATRICES],
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

/// [`PadeSteps`] on host slices.
struct HostPade<'a> {
    a: &'a [f64],
    out: &'a mut [f64],
    n: usize,
    w: &'a mut ExpmWork,
}

impl HostPade<'_> {
    fn matrix(&self, m: PadeMatrix) -> &[f64] {
        &self.w.matrices[m as usize]
    }
}

impl PadeSteps for HostPade<'_> {
    type Error = std::convert::Infallible;

    fn norm1(&mut self) -> Result<f64, Self::Error> {
        Ok(norm1(self.a, self.n, &mut self.w.column_sums))
    }

    fn scale_input(&mut self, factor: f64) -> Result<(), Self::Error> {
        let len = self.n * self.n;
        for buffer in &mut self.w.matrices {
            buffer.resize(len, 0.0);
        }
        for (s, x) in self.w.matrices[PadeMatrix::Scaled as usize]
            .iter_mut()
            .zip(self.a)
        {
            *s = x * factor;
        }
        Ok(())
    }

    fn product(
        &mut self,
        c: PadeMatrix,
        a: PadeMatrix,
        b: PadeMatrix,
        accumulate: bool,
    ) -> Result<(), Self::Error> {
        let mut target = std::mem::take(&mut self.w.matrices[c as usize]);
        let accum = if accumulate {
            Accum::Add
        } else {
            Accum::Replace
        };
        product(&mut target, self.matrix(a), self.matrix(b), self.n, accum);
        self.w.matrices[c as usize] = target;
        Ok(())
    }

    fn combine(
        &mut self,
        out: PadeMatrix,
        terms: &[(f64, PadeMatrix)],
        identity: f64,
    ) -> Result<(), Self::Error> {
        let mut target = std::mem::take(&mut self.w.matrices[out as usize]);
        let ((c, first), rest) = terms.split_first().expect("a term to combine");
        for (o, x) in target.iter_mut().zip(self.matrix(*first)) {
            *o = c * x;
        }
        for &(c, m) in rest {
            for (o, x) in target.iter_mut().zip(self.matrix(m)) {
                *o += c * x;
            }
        }
        for diagonal in target.iter_mut().step_by(self.n + 1) {
            *diagonal += identity;
        }
        self.w.matrices[out as usize] = target;
        Ok(())
    }

    fn pade_quotient(&mut self) -> Result<bool, Self::Error> {
        use PadeMatrix::*;
        let [.., inner, poly, u] = &mut self.w.matrices;
        for ((d, v), u) in inner.iter_mut().zip(poly.iter()).zip(u.iter()) {
            *d = v - u;
        }
        for (o, (v, u)) in self.out.iter_mut().zip(poly.iter().zip(u.iter())) {
            *o = v + u;
        }
        self.w
            .lu
            .refactor(&self.w.matrices[Inner as usize], self.n, Pivoting::Partial);
        Ok(self.w.lu.solve_in_place(self.out, self.n).is_ok())
    }

    fn square_output(&mut self) -> Result<(), Self::Error> {
        let inner = &mut self.w.matrices[PadeMatrix::Inner as usize];
        product(inner, self.out, self.out, self.n, Accum::Replace);
        self.out.copy_from_slice(inner);
        Ok(())
    }

    fn output_nan(&mut self) -> Result<(), Self::Error> {
        self.out.fill(f64::NAN);
        Ok(())
    }
}

/// Writes `exp(A)` of the row-major `n × n` matrix `a` to `out` (row-major). Non-finite input
/// gives non-finite output (no error).
pub fn expm_into(a: &[f64], n: usize, out: &mut [f64], w: &mut ExpmWork) {
    assert!(
        a.len() == n * n && out.len() == n * n,
        "expm needs square n × n buffers"
    );
    let Ok(()) = scaling_and_squaring(&mut HostPade { a, out, n, w });
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

    /// exp(A) of the row-major `n × n` matrix `a` against its Taylor series (80 terms, which
    /// converge to rounding for ‖A‖₁ up to about 10), to `tol` of the largest entry.
    fn assert_matches_taylor(a: &[f64], n: usize, tol: f64, what: &str) {
        let mut term: Vec<f64> = (0..n * n).map(|k| f64::from(k % (n + 1) == 0)).collect();
        let mut series = term.clone();
        for k in 1..80 {
            term = product_of(&term, a, n);
            term.iter_mut().for_each(|t| *t /= k as f64);
            series.iter_mut().zip(&term).for_each(|(s, t)| *s += t);
        }
        let got = expm_fresh(a, n);
        let largest = series.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (g, s) in got.iter().zip(&series) {
            assert!((g - s).abs() <= tol * largest, "{what}: {g} vs {s}");
        }
    }

    #[test]
    fn exp_matches_its_taylor_series_to_rounding() {
        // ‖A‖₁ ≈ 1.2–10: degree 9, and 13 with and without squaring.
        for (n, scale) in [(6, 0.2), (20, 0.1), (20, 0.5)] {
            let a = matrix(n, 11 + n as u64, scale);
            assert_matches_taylor(&a, n, 1e-13, &format!("n {n} scale {scale}"));
        }
    }

    #[test]
    fn every_pade_degree_matches_the_taylor_series() {
        // ‖A‖₁ at 0.01, 0.2, 0.9, 2 and 4 selects degree 3, 5, 7, 9 and 13 (no squaring).
        for (k, target) in [0.01, 0.2, 0.9, 2.0, 4.0].into_iter().enumerate() {
            let n = 12;
            let mut a = matrix(n, 40 + k as u64, 1.0);
            let norm = norm1(&a, n, &mut Vec::new());
            a.iter_mut().for_each(|x| *x *= target / norm);
            assert_matches_taylor(&a, n, 1e-14, &format!("‖A‖₁ = {target}"));
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
