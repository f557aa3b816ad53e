//! Math functions as f64 arithmetic, for GPU kernels: MLIR lowers `math.exp`, `math.log`,
//! `math.powf` and their kin to libdevice calls for NVPTX, and libdevice is not available (see
//! `mlir-gpu-notes.md`). Only `arith` operations and bit manipulation are used, so the text
//! lowers to plain PTX, and the same text runs on the CPU (the tests compare it with the
//! platform's libm there).
//!
//! - `exp`: Cody–Waite reduction x = k·ln 2 + r, |r| ≤ ln 2 / 2, the Taylor polynomial of e^r to
//!   degree 13 (truncation below 1e-17), scaled by 2^k as two powers of two (so that results
//!   down to the subnormals and up to the overflow are right);
//! - `log`: x = m·2^e with m in [√½, √2), log m = 2·atanh(s), s = (m − 1)/(m + 1), by its series
//!   to s²¹ (|s| ≤ 0.172: truncation below 1e-17), e·ln 2 added in two parts; subnormals are
//!   scaled first;
//! - `expm1` (Taylor polynomial for |y| < ln 2 / 2, else e^y − 1), `log1p` (log(1 + u)·u / ((1 +
//!   u) − 1), exact where 1 + u rounds), `tanh` (−expm1(−2|x|) / (2 + expm1(−2|x|)), x's sign
//!   bit copied on), `pow` (e^(y·log|x|) with libm's signs and special cases).
//!
//! Special values follow IEEE and libm: NaN in, NaN out; exp(±∞) = ∞, 0; log(0) = −∞, log of a
//! negative number NaN, log(∞) = ∞.

use crate::emit::float_literal;
use crate::Precision;

/// ln 2 in two parts (fdlibm's): `LN2_HI` has trailing zero bits, so k·`LN2_HI` is exact for
/// |k| < 2^11.
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
/// 1.5·2^52: adding and subtracting it rounds an f64 below 2^51 to an integer.
const ROUND_SHIFT: f64 = 6_755_399_441_055_744.0;
/// Below this, |y| uses expm1's polynomial.
const HALF_LN2: f64 = std::f64::consts::LN_2 / 2.0;
/// Taylor terms of e^r kept (degree).
const EXP_DEGREE: i32 = 13;
/// Terms 2/(2j + 1) of the atanh series kept after the first.
const LOG_TERMS: i32 = 10;

/// An SSA value name.
pub type Val = String;

/// Writes MLIR lines: the emitter's body, with fresh value names.
pub trait Lines {
    /// Writes `%v = rhs` and returns `%v`.
    fn assign(&mut self, rhs: &str) -> Val;
}

/// f64 arithmetic over [`Lines`].
pub struct F64<'a, L: Lines + ?Sized> {
    pub lines: &'a mut L,
}

impl<L: Lines + ?Sized> F64<'_, L> {
    fn c(&mut self, x: f64) -> Val {
        self.lines.assign(&format!(
            "arith.constant {} : f64",
            float_literal(x, Precision::F64)
        ))
    }

    fn int(&mut self, n: i64) -> Val {
        self.lines.assign(&format!("arith.constant {n} : i64"))
    }

    fn op(&mut self, name: &str, a: &Val, b: &Val) -> Val {
        self.lines.assign(&format!("{name} {a}, {b} : f64"))
    }

    fn iop(&mut self, name: &str, a: &Val, b: &Val) -> Val {
        self.lines.assign(&format!("{name} {a}, {b} : i64"))
    }

    fn add(&mut self, a: &Val, b: &Val) -> Val {
        self.op("arith.addf", a, b)
    }

    fn sub(&mut self, a: &Val, b: &Val) -> Val {
        self.op("arith.subf", a, b)
    }

    fn mul(&mut self, a: &Val, b: &Val) -> Val {
        self.op("arith.mulf", a, b)
    }

    fn div(&mut self, a: &Val, b: &Val) -> Val {
        self.op("arith.divf", a, b)
    }

    fn cmp(&mut self, pred: &str, a: &Val, b: &Val) -> Val {
        self.lines
            .assign(&format!("arith.cmpf {pred}, {a}, {b} : f64"))
    }

    fn select(&mut self, cond: &Val, a: &Val, b: &Val) -> Val {
        self.lines
            .assign(&format!("arith.select {cond}, {a}, {b} : f64"))
    }

    fn bits_of(&mut self, x: &Val) -> Val {
        self.lines
            .assign(&format!("arith.bitcast {x} : f64 to i64"))
    }

    fn float_of(&mut self, x: &Val) -> Val {
        self.lines
            .assign(&format!("arith.bitcast {x} : i64 to f64"))
    }

    /// |x| (the sign bit cleared).
    fn abs(&mut self, x: &Val) -> Val {
        let bits = self.bits_of(x);
        let mask = self.int(i64::MAX);
        let cleared = self.iop("arith.andi", &bits, &mask);
        self.float_of(&cleared)
    }

    /// Σ coefficients[i]·y^i by Horner's rule (highest degree last in `coefficients`).
    fn polynomial(&mut self, y: &Val, coefficients: &[f64]) -> Val {
        let (last, rest) = coefficients.split_last().expect("a coefficient");
        let mut p = self.c(*last);
        for &c in rest.iter().rev() {
            let scaled = self.mul(&p, y);
            let c = self.c(c);
            p = self.add(&scaled, &c);
        }
        p
    }

    /// 2^k for an i64 `k` in the normal exponents' range.
    fn power_of_two(&mut self, k: &Val) -> Val {
        let bias = self.int(1023);
        let biased = self.iop("arith.addi", k, &bias);
        let shift = self.int(52);
        let bits = self.iop("arith.shli", &biased, &shift);
        self.float_of(&bits)
    }

    pub fn exp(&mut self, x: &Val) -> Val {
        let nan = self.cmp("uno", x, x);
        let zero = self.c(0.0);
        let x0 = self.select(&nan, &zero, x);
        // Beyond these e^x is 0 or ∞ in f64; k then stays within two normal powers of two.
        let (low, high) = (self.c(-746.0), self.c(710.0));
        let above = self.op("arith.maximumf", &x0, &low);
        let xc = self.op("arith.minimumf", &above, &high);
        let log2e = self.c(std::f64::consts::LOG2_E);
        let t = self.mul(&xc, &log2e);
        let shift = self.c(ROUND_SHIFT);
        let shifted = self.add(&t, &shift);
        let kf = self.sub(&shifted, &shift);
        let (hi, lo) = (self.c(LN2_HI), self.c(LN2_LO));
        let k_hi = self.mul(&kf, &hi);
        let r1 = self.sub(&xc, &k_hi);
        let k_lo = self.mul(&kf, &lo);
        let r = self.sub(&r1, &k_lo);
        let taylor = taylor_exp();
        let p = self.polynomial(&r, &taylor);
        let k = self
            .lines
            .assign(&format!("arith.fptosi {kf} : f64 to i64"));
        let one = self.int(1);
        let k1 = self.iop("arith.shrsi", &k, &one);
        let k2 = self.iop("arith.subi", &k, &k1);
        let (s1, s2) = (self.power_of_two(&k1), self.power_of_two(&k2));
        let scaled = self.mul(&p, &s1);
        let e = self.mul(&scaled, &s2);
        self.select(&nan, x, &e)
    }

    pub fn log(&mut self, x: &Val) -> Val {
        // Subnormals: scaled by 2^54 into the normal range first.
        let min_normal = self.c(f64::MIN_POSITIVE);
        let small = self.cmp("olt", x, &min_normal);
        let scale = self.c(2f64.powi(54));
        let scaled = self.mul(x, &scale);
        let xs = self.select(&small, &scaled, x);
        let bits = self.bits_of(&xs);
        let (fifty_two, exponent_mask) = (self.int(52), self.int(0x7ff));
        let shifted = self.iop("arith.shrui", &bits, &fifty_two);
        let biased = self.iop("arith.andi", &shifted, &exponent_mask);
        let (fraction_mask, one_bits) = (self.int((1i64 << 52) - 1), self.int(1023i64 << 52));
        let fraction = self.iop("arith.andi", &bits, &fraction_mask);
        let m_bits = self.iop("arith.ori", &fraction, &one_bits);
        let m = self.float_of(&m_bits);
        // m in [1, 2); above √2 it is halved (exact) and the exponent raised.
        let sqrt2 = self.c(std::f64::consts::SQRT_2);
        let big = self.cmp("ogt", &m, &sqrt2);
        let half = self.c(0.5);
        let halved = self.mul(&m, &half);
        let m = self.select(&big, &halved, &m);
        let ef = self
            .lines
            .assign(&format!("arith.sitofp {biased} : i64 to f64"));
        let (bias, fifty_four, zero, one) =
            (self.c(1023.0), self.c(54.0), self.c(0.0), self.c(1.0));
        let unbiased = self.sub(&ef, &bias);
        let less = self.select(&small, &fifty_four, &zero);
        let more = self.select(&big, &one, &zero);
        let e1 = self.sub(&unbiased, &less);
        let e = self.add(&e1, &more);
        let f = self.sub(&m, &one);
        let two = self.c(2.0);
        let denominator = self.add(&f, &two);
        let s = self.div(&f, &denominator);
        let z = self.mul(&s, &s);
        // log m = 2s + s·z·(2/3 + 2/5·z + …).
        let series: Vec<f64> = (1..=LOG_TERMS)
            .map(|j| 2.0 / f64::from(2 * j + 1))
            .collect();
        let p = self.polynomial(&z, &series);
        let sz = self.mul(&s, &z);
        let tail = self.mul(&sz, &p);
        let two_s = self.add(&s, &s);
        let log_m = self.add(&two_s, &tail);
        let (hi, lo) = (self.c(LN2_HI), self.c(LN2_LO));
        let e_lo = self.mul(&e, &lo);
        let low_part = self.add(&e_lo, &log_m);
        let e_hi = self.mul(&e, &hi);
        let finite = self.add(&e_hi, &low_part);
        // log(∞) = ∞, log(±0) = −∞, log(x < 0) = NaN, NaN stays NaN.
        let inf = self.c(f64::INFINITY);
        let is_inf = self.cmp("oeq", x, &inf);
        let r = self.select(&is_inf, &inf, &finite);
        let is_zero = self.cmp("oeq", x, &zero);
        let minus_inf = self.c(f64::NEG_INFINITY);
        let r = self.select(&is_zero, &minus_inf, &r);
        let invalid = self.cmp("ult", x, &zero);
        let nan = self.c(f64::NAN);
        self.select(&invalid, &nan, &r)
    }

    pub fn expm1(&mut self, y: &Val) -> Val {
        let a = self.abs(y);
        let limit = self.c(HALF_LN2);
        let small = self.cmp("olt", &a, &limit);
        // Σ_{i ≥ 1} y^i / i! = y·(1 + y/2 + y²/6 + …).
        let taylor = taylor_exp();
        let q = self.polynomial(y, &taylor[1..]);
        let near = self.mul(&q, y);
        let e = self.exp(y);
        let one = self.c(1.0);
        let far = self.sub(&e, &one);
        self.select(&small, &near, &far)
    }

    pub fn log1p(&mut self, u: &Val) -> Val {
        let one = self.c(1.0);
        let w = self.add(&one, u);
        let log_w = self.log(&w);
        let w_minus_one = self.sub(&w, &one);
        let ratio = self.div(u, &w_minus_one);
        let corrected = self.mul(&log_w, &ratio);
        let exact = self.cmp("oeq", &w, &one);
        let r = self.select(&exact, u, &corrected);
        let inf = self.c(f64::INFINITY);
        let is_inf = self.cmp("oeq", u, &inf);
        self.select(&is_inf, u, &r)
    }

    /// Whether `y` is an integer, and whether it is an odd one (i1 values).
    fn integer_and_odd(&mut self, y: &Val) -> (Val, Val) {
        // Every f64 of magnitude ≥ 2^52 is an integer, and every one ≥ 2^53 even; below 2^52,
        // adding and subtracting 2^52 to |y| rounds it to the nearest integer (the sum lies where
        // the spacing is 1).
        let a = self.abs(y);
        let (two52, two53) = (self.c(2f64.powi(52)), self.c(2f64.powi(53)));
        let shifted = self.add(&a, &two52);
        let rounded = self.sub(&shifted, &two52);
        let exact = self.cmp("oeq", &rounded, &a);
        let large = self.cmp("oge", &a, &two52);
        let integer = self
            .lines
            .assign(&format!("arith.ori {exact}, {large} : i1"));
        let small = self.cmp("olt", &a, &two53);
        let zero = self.c(0.0);
        let whole = self.select(&large, &a, &rounded);
        let safe = self.select(&small, &whole, &zero);
        let n = self
            .lines
            .assign(&format!("arith.fptosi {safe} : f64 to i64"));
        let one = self.int(1);
        let low_bit = self.iop("arith.andi", &n, &one);
        let odd_bit = self
            .lines
            .assign(&format!("arith.cmpi eq, {low_bit}, {one} : i64"));
        let odd = self
            .lines
            .assign(&format!("arith.andi {odd_bit}, {integer} : i1"));
        (integer, odd)
    }

    /// x^y as libm's `pow`: e^(y·log|x|), negated for a negative x (or −0, −∞) and an odd integer
    /// y, NaN for a negative finite x and a non-integer y; x^±0 = 1 and 1^y = 1 even for NaN,
    /// (−1)^±∞ = 1. The relative error grows with |y·log x| (about 1e-16 per unit).
    pub fn pow(&mut self, x: &Val, y: &Val) -> Val {
        let ax = self.abs(x);
        let log = self.log(&ax);
        let exponent = self.mul(y, &log);
        let magnitude = self.exp(&exponent);
        // |x| = 1 with y = ±∞ (0·∞): 1.
        let one = self.c(1.0);
        let unit = self.cmp("oeq", &ax, &one);
        let magnitude = self.select(&unit, &one, &magnitude);
        let (integer, odd) = self.integer_and_odd(y);
        let (x_bits, m_bits) = (self.bits_of(x), self.bits_of(&magnitude));
        let sign = self.int(i64::MIN);
        let x_sign = self.iop("arith.andi", &x_bits, &sign);
        let zero_bits = self.int(0);
        let kept = self
            .lines
            .assign(&format!("arith.select {odd}, {x_sign}, {zero_bits} : i64"));
        let signed_bits = self.iop("arith.ori", &m_bits, &kept);
        let signed = self.float_of(&signed_bits);
        // A negative finite x and a non-integer y: NaN.
        let zero = self.c(0.0);
        let negative = self.cmp("olt", x, &zero);
        let inf = self.c(f64::INFINITY);
        let finite = self.cmp("one", &ax, &inf);
        let negative_finite = self
            .lines
            .assign(&format!("arith.andi {negative}, {finite} : i1"));
        let true_bit = self.lines.assign("arith.constant true");
        let fractional = self
            .lines
            .assign(&format!("arith.xori {integer}, {true_bit} : i1"));
        let invalid = self
            .lines
            .assign(&format!("arith.andi {negative_finite}, {fractional} : i1"));
        let nan = self.c(f64::NAN);
        let r = self.select(&invalid, &nan, &signed);
        // x^±0 = 1 and 1^y = 1, NaN or not.
        let y_zero = self.cmp("oeq", y, &zero);
        let x_one = self.cmp("oeq", x, &one);
        let trivial = self
            .lines
            .assign(&format!("arith.ori {y_zero}, {x_one} : i1"));
        self.select(&trivial, &one, &r)
    }

    pub fn tanh(&mut self, x: &Val) -> Val {
        let a = self.abs(x);
        let minus_two = self.c(-2.0);
        let y = self.mul(&a, &minus_two);
        let e = self.expm1(&y);
        let two = self.c(2.0);
        let denominator = self.add(&e, &two);
        let quotient = self.div(&e, &denominator);
        let t = self.lines.assign(&format!("arith.negf {quotient} : f64"));
        // x's sign on |tanh x| (so that tanh(−0) = −0).
        let (x_bits, t_bits) = (self.bits_of(x), self.bits_of(&t));
        let sign = self.int(i64::MIN);
        let x_sign = self.iop("arith.andi", &x_bits, &sign);
        let signed = self.iop("arith.ori", &t_bits, &x_sign);
        self.float_of(&signed)
    }
}

/// 1/i! for i = 0..=EXP_DEGREE.
fn taylor_exp() -> Vec<f64> {
    let mut terms = vec![1.0];
    for i in 1..=EXP_DEGREE {
        let previous = terms[terms.len() - 1];
        terms.push(previous / f64::from(i));
    }
    terms
}
