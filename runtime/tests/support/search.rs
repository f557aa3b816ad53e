//! The minimizer of a unimodal function of one number, by golden-section search: an independent
//! reference for solvers and closed forms (`prox.rs`, `bilevel.rs` include this file by path).

/// The minimizer of `f`, unimodal on [lo, hi], to within `tol`.
pub fn golden_section(f: impl Fn(f64) -> f64, lo: f64, hi: f64, tol: f64) -> f64 {
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (lo, hi);
    while b - a > tol {
        let (c, d) = (b - ratio * (b - a), a + ratio * (b - a));
        if f(c) <= f(d) {
            b = d;
        } else {
            a = c;
        }
    }
    0.5 * (a + b)
}
