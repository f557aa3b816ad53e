//! The MLIR CPU path against the reference interpreter: seeded random shapes (including 0, 1 and
//! 7) for every op the backend lowers, composite objectives, errors (run-time indices of
//! `select` included), snapshots of the text of a fused reduction and of an index check, and the
//! GPU kernels' math functions run on the host against libm.

use ndarray::ArrayD;
use optc_compiler::fusion::{ArgumentError, PlanError};
use optc_compiler::ir::{BinaryOp, Dim, NodeId, Op, Program, UnaryOp};
use optc_mlir::{mlir_text, MlirCpuFn, MlirError};
use optc_runtime::interp::{Bindings, EvalError};

#[macro_use]
#[path = "../../runtime/tests/support/programs.rs"]
mod programs;

use programs::Model;

/// A way of compiling a function through MLIR ([`MlirCpuFn::compile`], or with the kernels' math).
type Compile =
    fn(&Program, &[NodeId], &[u64], &[(&str, *const u8)]) -> Result<MlirCpuFn, MlirError>;

/// Values of `roots` computed through MLIR, compiled by `compile`.
fn run_with(
    compile: Compile,
    p: &Program,
    b: &Bindings,
    roots: &[NodeId],
) -> Result<Vec<ArrayD<f64>>, MlirError> {
    let mut f = compile(p, roots, &b.dims, &programs::kernel_symbols())?;
    let shapes = f.output_shapes().to_vec();
    programs::run_compiled(b, &shapes, |inputs, outputs| f.call(inputs, outputs))
}

/// Values of `roots` computed through MLIR.
fn run_mlir(p: &Program, b: &Bindings, roots: &[NodeId]) -> Result<Vec<ArrayD<f64>>, MlirError> {
    run_with(MlirCpuFn::compile, p, b, roots)
}

/// Asserts that MLIR and interpreted values of `roots` agree to relative error `tol`.
fn check(p: &Program, b: &Bindings, roots: &[NodeId], tol: f64) {
    let got = run_mlir(p, b, roots).expect("MLIR");
    programs::assert_matches_interpreter(p, b, roots, &got, tol, "MLIR");
}

impl Model {
    fn check(&self, roots: &[NodeId], tol: f64) {
        check(&self.p, &self.b, roots, tol);
    }
}

fn check_model(m: &Model, roots: &[NodeId], tol: f64) {
    m.check(roots, tol);
}

backend_cases!(check_model);

#[test]
fn pad_matches_the_interpreter() {
    // Along either axis of a matrix (fused into its consumer), with room before and after.
    for seed in 0..16 {
        let mut m = Model::new(700 + seed);
        let (r, c) = (m.rng.pick(&programs::SIZES), m.rng.pick(&programs::SIZES));
        let (n, k) = (m.dim("n", r), m.dim("k", c));
        let x = m.var(vec![n, k]);
        let doubled = m.bin(BinaryOp::Add, x, x);
        let axis = seed as u32 % 2;
        let len = [r, c][axis as usize] as i64;
        let start = (m.rng.next() % 3) as i64;
        let size = Dim::fixed(len + start + (m.rng.next() % 3) as i64);
        let start = Dim::fixed(start);
        let padded = m.add(Op::Pad { axis, start, size }, vec![doubled]);
        let y = m.add(Op::Unary(UnaryOp::Exp), vec![padded]);
        m.check(&[y], 1e-12);
    }
}

#[test]
fn kernel_failures_and_unsupported_ops_are_errors() {
    let mut m = Model::new(7);
    let n = m.dim("n", 3);
    let a = m.var(vec![n, n]);
    let zero = m.c(0.0);
    let singular = m.bin(BinaryOp::Mul, a, zero);
    let logdet = m.add(Op::LogDet, vec![singular]);
    assert!(matches!(
        run_mlir(&m.p, &m.b, &[logdet]),
        Err(MlirError::KernelStatus(s)) if s == optc_runtime::cpu::LOGDET_DOMAIN
    ));
    let inv = m.add(Op::Inv, vec![singular]);
    assert!(matches!(
        run_mlir(&m.p, &m.b, &[inv]),
        Err(MlirError::KernelStatus(s)) if s == optc_runtime::cpu::SINGULAR
    ));
    let at = m.c(1.0);
    let row = m.add(Op::Select { axis: 0 }, vec![a, at]);
    let scatter = m.add(Op::Scatter { axis: 0, size: n }, vec![row, at]);
    assert!(matches!(
        mlir_text(&m.p, &[scatter], &m.b.dims),
        Err(MlirError::Unsupported(_))
    ));
    let power = m.add(Op::MatPow(n), vec![a]);
    assert!(matches!(
        mlir_text(&m.p, &[power], &m.b.dims),
        Err(MlirError::Unsupported(what)) if what.contains("matpow")
    ));
    assert_eq!(
        MlirCpuFn::compile(&m.p, &[logdet], &m.b.dims, &[]).err(),
        Some(MlirError::MissingSymbol("optc_kernel_logdet"))
    );
    assert_eq!(
        mlir_text(&m.p, &[NodeId(999)], &m.b.dims).err(),
        Some(MlirError::Plan(PlanError::BadRoot(NodeId(999))))
    );
    let mut f = MlirCpuFn::compile(&m.p, &[a], &m.b.dims, &[]).expect("compiles");
    let short = [1.0; 4];
    let mut out = [0.0; 9];
    assert!(matches!(
        f.call(&[&short], &mut [&mut out]),
        Err(MlirError::Arguments(ArgumentError::Length {
            what: "input",
            ..
        }))
    ));
}

#[test]
fn text_of_a_fused_sum_of_squares() {
    let mut m = Model::new(1);
    let n = m.dim("n", 4);
    let x = m.var(vec![n]);
    let y = m.var(vec![n]);
    let d = m.bin(BinaryOp::Sub, x, y);
    let two = m.c(2.0);
    let sq = m.bin(BinaryOp::Pow, d, two);
    let s = m.add(Op::Sum { axis: None }, vec![sq]);
    insta::assert_snapshot!(mlir_text(&m.p, &[s], &m.b.dims).expect("lowers"));
}

/// `select` at an index read at run time (fused into a reduction, as a root, and an index that
/// is itself selected) agrees with the interpreter for an index in range, and for the others
/// fails with the fault the interpreter reports: same node and index, E0405 (out of range, with
/// the axis length) or E0406 (not an integer).
#[test]
fn run_time_indices_are_checked_as_by_the_interpreter() {
    let (mut m, at_input, root_sets) = programs::run_time_index_model(40);
    let (checked, failed) = programs::sweep_run_time_indices(
        &mut m,
        at_input,
        &root_sets,
        check_model,
        |m, index, roots, want| {
            let got = run_mlir(&m.p, &m.b, roots).expect_err("an invalid index");
            let MlirError::BadIndex {
                node,
                index: got_index,
                len,
            } = got
            else {
                panic!("index {index}: {got:?} instead of {want:?}");
            };
            let (want_node, want_index) = match want {
                EvalError::IndexOutOfRange {
                    node,
                    index,
                    len: want_len,
                } => {
                    assert_eq!(len, want_len, "index {index}");
                    (node, index)
                }
                EvalError::NonIntegralIndex { node, index } => (node, index),
                other => panic!("index {index}: the interpreter gave {other:?}"),
            };
            assert_eq!(node, want_node, "index {index}");
            assert_eq!(got_index.to_bits(), want_index.to_bits(), "index {index}");
        },
    );
    // In range: 0, 2 and -0 for every root set (picks 2, 1, 2); 3 for `column` only (the rows
    // are 3, and its pick, 5, is outside the 4 columns).
    assert_eq!((checked, failed), (10, 17));
}

/// A constant index in range reads its element without a check; one outside the axis fails when
/// the function runs, as in the interpreter.
#[test]
fn constant_indices_in_range_are_not_checked() {
    let mut m = Model::new(41);
    let n = m.dim("n", 3);
    let x = m.var(vec![n]);
    let two = m.c(2.0);
    let inside = m.add(Op::Select { axis: 0 }, vec![x, two]);
    let text = mlir_text(&m.p, &[inside], &m.b.dims).expect("lowers");
    assert!(!text.contains("cf.cond_br"), "{text}");
    m.check(&[inside], 0.0);
    let three = m.c(3.0);
    let outside = m.add(Op::Select { axis: 0 }, vec![x, three]);
    assert_eq!(
        run_mlir(&m.p, &m.b, &[outside]).err(),
        Some(MlirError::BadIndex {
            node: outside,
            index: 3.0,
            len: 3
        })
    );
}

#[test]
fn text_of_a_select_at_a_run_time_index() {
    // sum(x[:, at]) over x : [3, 4], `at` a scalar input: the index is checked once, before the
    // loop (the failing branch stores node, index and length after the scratch and returns 5),
    // and the loop reads column `at` at the checked position.
    let mut m = Model::new(42);
    let (n, k) = (m.dim("n", 3), m.dim("k", 4));
    let x = m.var(vec![n, k]);
    let (at, _) = m.var_data(vec![], &[1.0]);
    let column = m.add(Op::Select { axis: 1 }, vec![x, at]);
    let s = m.add(Op::Sum { axis: None }, vec![column]);
    insta::assert_snapshot!(mlir_text(&m.p, &[s], &m.b.dims).expect("lowers"));
}

/// The op-level cases again with exp, log, log1p, tanh and pow computed as GPU kernels compute
/// them (arithmetic, not libm), on the host; and those functions against libm on hard points.
mod kernel_math {
    use super::*;

    /// Values of `roots` with the kernels' math.
    fn run(m: &Model, roots: &[NodeId]) -> Vec<ArrayD<f64>> {
        run_with(MlirCpuFn::compile_with_kernel_math, &m.p, &m.b, roots).expect("MLIR")
    }

    fn check_model(m: &Model, roots: &[NodeId], tol: f64) {
        let got = run(m, roots);
        programs::assert_matches_interpreter(&m.p, &m.b, roots, &got, tol, "MLIR kernel math");
    }

    backend_cases!(check_model);

    /// Points where the functions are hard: specials, the ends of the finite range, subnormals,
    /// the reduction boundaries, and a sweep over many magnitudes of both signs.
    fn hard_points() -> Vec<f64> {
        let mut xs = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            2.0,
            f64::MIN_POSITIVE,
            5e-324,
            1e-310,
            f64::MAX,
            -f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            709.78,
            709.79,
            710.0,
            -708.5,
            -745.1,
            -745.2,
            -746.0,
            std::f64::consts::LN_2 / 2.0,
            -std::f64::consts::LN_2 / 2.0,
            std::f64::consts::SQRT_2,
            std::f64::consts::FRAC_1_SQRT_2,
            1.0 + f64::EPSILON,
            1.0 - f64::EPSILON / 2.0,
            19.0,
            -19.0,
            40.0,
        ];
        for i in 0..=4000 {
            let t = -320.0 + 640.0 * f64::from(i) / 4000.0;
            xs.extend([10f64.powf(t), -(10f64.powf(t)), t / 8.0]);
        }
        xs
    }

    #[test]
    fn exp_log_tanh_and_their_kin_match_libm_to_a_few_ulp() {
        let xs = hard_points();
        let mut m = Model::new(1);
        let n = m.dim("n", xs.len() as u64);
        let (x, _) = m.var_data(vec![n], &xs);
        let ops = [
            UnaryOp::Exp,
            UnaryOp::Log,
            UnaryOp::Tanh,
            UnaryOp::Sigmoid,
            UnaryOp::Softplus,
        ];
        let roots: Vec<NodeId> = ops.iter().map(|&op| m.un(op, x)).collect();
        let got = run(&m, &roots);
        // The interpreter computes with Rust's f64 functions (the platform's libm).
        let want = optc_runtime::interp::eval(
            &m.p,
            &m.b,
            &roots,
            &mut optc_runtime::interp::NoSubproblems,
        )
        .unwrap();
        for (k, op) in ops.iter().enumerate() {
            let mut worst: f64 = 0.0;
            for ((g, w), x) in got[k].iter().zip(&want[k]).zip(&xs) {
                let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
                // Zeros keep their sign (tanh(−0) = −0).
                assert!(
                    *w != 0.0 || g.to_bits() == w.to_bits(),
                    "{op:?}({x:e}): {g:e} vs libm {w:e}"
                );
                // Relative error, with subnormal results judged by their absolute error.
                let error = (g - w).abs() / w.abs().max(f64::MIN_POSITIVE);
                assert!(
                    same || (g.is_finite() && error <= 1e-15) || (g - w).abs() <= 1e-322,
                    "{op:?}({x:e}): {g:e} vs libm {w:e}"
                );
                if !same && w.is_finite() && w.abs() >= f64::MIN_POSITIVE {
                    worst = worst.max(error);
                }
            }
            assert!(worst <= 1e-15, "{op:?}: worst relative error {worst:e}");
        }
    }

    #[test]
    fn powers_match_libm_with_its_special_cases() {
        // Every pair of bases and exponents: specials (±0, ±1, ±∞, NaN, integers odd and even,
        // halves, huge and tiny) and a spread of magnitudes, both signs.
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            2.0,
            -2.0,
            3.0,
            -3.0,
            0.5,
            -0.5,
            2.5,
            1e-300,
            1e300,
            5e-324,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            2f64.powi(53),
            2f64.powi(53) + 2.0,
            2f64.powi(52) + 1.0,
            1.0 + f64::EPSILON,
        ];
        for i in 0..=40 {
            let t = -8.0 + 16.0 * f64::from(i) / 40.0;
            values.extend([10f64.powf(t), -(10f64.powf(t)), t]);
        }
        let pairs: Vec<(f64, f64)> = values
            .iter()
            .flat_map(|&x| values.iter().map(move |&y| (x, y)))
            .collect();
        let mut m = Model::new(2);
        let n = m.dim("n", pairs.len() as u64);
        let xs: Vec<f64> = pairs.iter().map(|p| p.0).collect();
        let ys: Vec<f64> = pairs.iter().map(|p| p.1).collect();
        let (x, _) = m.var_data(vec![n], &xs);
        let (y, _) = m.var_data(vec![n], &ys);
        let root = m.bin(BinaryOp::Pow, x, y);
        let got = run(&m, &[root]);
        for (g, &(x, y)) in got[0].iter().zip(&pairs) {
            let w = x.powf(y);
            let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
            // e^(y·log|x|): the rounding of y·log|x| is amplified by its size.
            let scale = (y * x.abs().ln()).abs().max(1.0);
            let close = w.is_finite()
                && w != 0.0
                && (g - w).abs() <= 1e-15 * scale * w.abs().max(f64::MIN_POSITIVE);
            let tiny = w.abs() < f64::MIN_POSITIVE && (g - w).abs() <= 1e-300 * scale;
            assert!(same || close || tiny, "{x:e}^{y:e}: {g:e} vs libm {w:e}");
        }
    }
}
