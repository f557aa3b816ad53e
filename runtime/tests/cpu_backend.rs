//! The native CPU backend against the reference interpreter: seeded random shapes (including 0, 1
//! and odd sizes) for every op (the adjoint ops of reverse mode included, and a random op-level
//! sweep), composite objectives, the value, gradient and Hessian-vector products of every example
//! model (raw and simplified), errors, and a snapshot of the CLIF.

use ndarray::{ArrayD, IxDyn};
use optc_compiler::autodiff::{gradient, hvp};
use optc_compiler::derive::differentiate;
use optc_compiler::driver::{compile, Until};
use optc_compiler::fusion::{ArgumentError, PlanError};
use optc_compiler::ir::{
    BinaryOp, ConstraintKind, Dim, InputId, InputKind, NodeId, Op, Program, Shape, Subproblem,
    SubproblemId, UnaryOp,
};
use optc_compiler::simplify::{simplify, CostModel};
use optc_runtime::cpu::{clif_text, CompiledFn, CpuError};
use optc_runtime::interp::{eval, Bindings, NoSubproblems};

#[macro_use]
#[path = "support/programs.rs"]
mod programs;

use programs::{Model, Rng, BINARY, UNARY};

impl Model {
    /// Native values of `roots`.
    fn native(&self, roots: &[NodeId]) -> Result<Vec<ArrayD<f64>>, CpuError> {
        native(&self.p, &self.b, roots)
    }

    /// Asserts that native and interpreted values of `roots` agree to relative error `tol`.
    fn check(&self, roots: &[NodeId], tol: f64) {
        assert_matches_interpreter(&self.p, &self.b, roots, tol);
    }

    /// `tanh` of a new variable: a value that is fused into its consumer unless it is a root.
    fn fused(&mut self, shape: Shape) -> NodeId {
        let x = self.var(shape);
        self.un(UnaryOp::Tanh, x)
    }

    /// Checks `y` as a root (buffered) and fused into a consumer, `sum(y .* w)`.
    fn check_in_context(&mut self, y: NodeId, tol: f64) {
        let w = self.var(self.p.graph.shape(y).clone());
        let yw = self.bin(BinaryOp::Mul, y, w);
        let s = self.add(Op::Sum { axis: None }, vec![yw]);
        self.check(&[y, yw, s], tol);
        self.check(&[s], tol);
    }
}

/// Native values of `roots` of `p` under `b`.
fn native(p: &Program, b: &Bindings, roots: &[NodeId]) -> Result<Vec<ArrayD<f64>>, CpuError> {
    let mut f = CompiledFn::compile(p, roots, &b.dims)?;
    let shapes = f.output_shapes().to_vec();
    programs::run_compiled(b, &shapes, |inputs, outputs| f.call(inputs, outputs))
}

/// Asserts that native and interpreted values of `roots` agree elementwise to relative error
/// `tol` (relative to max(|interpreter|, 1); NaN matches NaN).
fn assert_matches_interpreter(p: &Program, b: &Bindings, roots: &[NodeId], tol: f64) {
    let got = native(p, b, roots).expect("native");
    programs::assert_matches_interpreter(p, b, roots, &got, tol, "native");
}

fn check(m: &Model, roots: &[NodeId], tol: f64) {
    m.check(roots, tol);
}

backend_cases!(check);

/// 0.5/n · ‖X − X W‖² + λ ‖W‖₁ − logdet(s I − W∘W) + d log s.
fn dagma(m: &mut Model, x: NodeId, w: NodeId, n: Dim, d: Dim) -> NodeId {
    let xw = m.add(Op::MatMul, vec![x, w]);
    let r = m.bin(BinaryOp::Sub, x, xw);
    let two = m.c(2.0);
    let r2 = m.bin(BinaryOp::Pow, r, two);
    let sumsq = m.add(Op::Sum { axis: None }, vec![r2]);
    let half = m.c(0.5);
    let nn = m.add(Op::DimSize(n), vec![]);
    let scale = m.bin(BinaryOp::Div, half, nn);
    let loss = m.bin(BinaryOp::Mul, scale, sumsq);
    let aw = m.un(UnaryOp::Abs, w);
    let l1 = m.add(Op::Sum { axis: None }, vec![aw]);
    let lambda = m.c(0.02);
    let reg = m.bin(BinaryOp::Mul, lambda, l1);
    let s = m.c(1.0);
    let eye = m.add(Op::Eye(d), vec![]);
    let si = m.bin(BinaryOp::Mul, s, eye);
    let ww = m.bin(BinaryOp::Mul, w, w);
    let mmat = m.bin(BinaryOp::Sub, si, ww);
    let logdet = m.add(Op::LogDet, vec![mmat]);
    let dd = m.add(Op::DimSize(d), vec![]);
    let logs = m.un(UnaryOp::Log, s);
    let dlogs = m.bin(BinaryOp::Mul, dd, logs);
    let h = m.bin(BinaryOp::Sub, dlogs, logdet);
    let obj = m.bin(BinaryOp::Add, loss, reg);
    m.bin(BinaryOp::Add, obj, h)
}

#[test]
fn composite_objectives() {
    for (seed, (n_size, d_size)) in [(20, 5), (7, 3), (1, 1), (13, 8)].into_iter().enumerate() {
        let mut m = Model::new(500 + seed as u64);
        let (n, d) = (m.dim("n", n_size), m.dim("d", d_size));
        let x = m.var(vec![n, d]);
        let w_small: Vec<f64> = (0..d_size * d_size).map(|_| 0.2 * m.rng.unit()).collect();
        let w0 = ArrayD::from_shape_vec(IxDyn(&[d_size as usize; 2]), w_small).unwrap();
        let w = m.var_with(vec![d, d], w0);
        let obj = dagma(&mut m, x, w, n, d);
        // Least squares + L1: ‖X w − y‖² + λ ‖w‖₁.
        let wv = m.var(vec![d]);
        let y = m.var(vec![n]);
        let xw = m.add(Op::MatMul, vec![x, wv]);
        let r = m.bin(BinaryOp::Sub, xw, y);
        let r2 = m.bin(BinaryOp::Mul, r, r);
        let sq = m.add(Op::Sum { axis: None }, vec![r2]);
        let a = m.un(UnaryOp::Abs, wv);
        let l1 = m.add(Op::Sum { axis: None }, vec![a]);
        let lam = m.c(0.1);
        let reg = m.bin(BinaryOp::Mul, lam, l1);
        let lasso = m.bin(BinaryOp::Add, sq, reg);
        m.check(&[obj, lasso, obj], 1e-9);
    }
}

#[test]
fn runtime_errors_and_unsupported_ops() {
    let mut m = Model::new(1);
    let n = m.dim("n", 2);
    let a = m.var_with(
        vec![n, n],
        ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![0.0, 1.0, 1.0, 0.0]).unwrap(),
    );
    let ld = m.add(Op::LogDet, vec![a]);
    assert_eq!(m.native(&[ld]).unwrap_err(), CpuError::LogdetDomain);
    // logdet and inv of the same matrix share one LU kernel, which reports the determinant.
    let inv_a = m.add(Op::Inv, vec![a]);
    for roots in [[ld, inv_a], [inv_a, ld]] {
        assert_eq!(m.native(&roots).unwrap_err(), CpuError::LogdetDomain);
    }
    let zero = m.c(0.0);
    let singular = m.bin(BinaryOp::Mul, a, zero);
    let inv = m.add(Op::Inv, vec![singular]);
    assert_eq!(m.native(&[inv]).unwrap_err(), CpuError::Singular);

    m.p.subproblems.push(Subproblem {
        var: InputId(0),
        objective: ld,
    });
    let argmin =
        m.p.graph
            .argmin(SubproblemId(0), vec![n], optc_compiler::ir::Stage::Var);
    assert!(matches!(
        CompiledFn::compile(&m.p, &[argmin], &m.b.dims),
        Err(CpuError::Unsupported(_))
    ));

    let mut f = CompiledFn::compile(&m.p, &[a], &m.b.dims).unwrap();
    let mut out = [0.0; 3];
    let err = f.call(&[&[1.0; 4]], &mut [&mut out]).unwrap_err();
    assert!(matches!(
        err,
        CpuError::Arguments(ArgumentError::Length { what: "output", .. })
    ));
}

#[test]
fn clif_of_a_fused_sum_of_squares() {
    // sum((x - y)^2) * 0.5 over x, y : [n] with n = 5: one fused loop of f64x2 steps into a
    // vector accumulator, a scalar step for the last element, the lanes' partial sums added, and
    // a scalar epilogue.
    let mut m = Model::new(3);
    let n = m.dim("n", 5);
    let x = m.var(vec![n]);
    let y = m.var(vec![n]);
    let diff = m.bin(BinaryOp::Sub, x, y);
    let two = m.c(2.0);
    let sq = m.bin(BinaryOp::Pow, diff, two);
    let s = m.add(Op::Sum { axis: None }, vec![sq]);
    let half = m.c(0.5);
    let root = m.bin(BinaryOp::Mul, s, half);
    insta::assert_snapshot!(clif_text(&m.p, &[root], &m.b.dims).unwrap());
}

#[test]
fn clif_of_a_select_at_a_run_time_index() {
    // sum(x[:, at]) over x : [n, k] with n = 3, k = 4, `at` a scalar input: the index is checked
    // once, before the loop (a cold block stores the fault record and returns status 5), and the
    // loop (one f64x2 step and a scalar step) reads column `at` at the checked position.
    let mut m = Model::new(4);
    let (n, k) = (m.dim("n", 3), m.dim("k", 4));
    let x = m.var(vec![n, k]);
    let at = m.var_with(vec![], ArrayD::from_elem(IxDyn(&[]), 1.0));
    let column = m.add(Op::Select { axis: 1 }, vec![x, at]);
    let root = m.add(Op::Sum { axis: None }, vec![column]);
    insta::assert_snapshot!(clif_text(&m.p, &[root], &m.b.dims).unwrap());
}

/// Sizes of the adjoint-op and fuzz tests: 0, 1, and sizes that are no multiple of a SIMD width.
const ODD_SIZES: [u64; 8] = [0, 1, 2, 3, 5, 7, 9, 17];

/// A variable of `shape` with entries in {-1, 0, 1} (ties for argmax and sorting), and sometimes
/// a NaN or -∞.
fn tied_var(m: &mut Model, shape: Shape, special: bool) -> NodeId {
    let dims: Vec<usize> = shape.iter().map(|d| d.eval(&m.b.dims) as usize).collect();
    let value = ArrayD::from_shape_simple_fn(IxDyn(&dims), || match m.rng.next() % 16 {
        0 if special => f64::NAN,
        1 if special => f64::NEG_INFINITY,
        r => (r % 3) as f64 - 1.0,
    });
    m.var_with(shape, value)
}

#[test]
fn expand_matches_the_interpreter() {
    for seed in 0..24 {
        let mut m = Model::new(600 + seed);
        let (r, c, e) = (
            m.rng.pick(&ODD_SIZES),
            m.rng.pick(&ODD_SIZES),
            m.rng.pick(&ODD_SIZES),
        );
        let (n, k, size) = (m.dim("n", r), m.dim("k", c), m.dim("e", e));
        let x = m.fused(vec![n, k]);
        let axis = seed as u32 % 3;
        let y = m.add(Op::Expand { axis, size }, vec![x]);
        m.check_in_context(y, 1e-12);
    }
}

#[test]
fn pad_matches_the_interpreter() {
    for seed in 0..24 {
        let mut m = Model::new(700 + seed);
        let (r, c) = (m.rng.pick(&ODD_SIZES), m.rng.pick(&ODD_SIZES));
        let (n, k) = (m.dim("n", r), m.dim("k", c));
        let x = m.fused(vec![n, k]);
        let axis = seed as u32 % 2;
        let len = [r, c][axis as usize] as i64;
        let start = (m.rng.next() % 4) as i64;
        let size = Dim::fixed(len + start + (m.rng.next() % 4) as i64);
        let start = Dim::fixed(start);
        let y = m.add(Op::Pad { axis, start, size }, vec![x]);
        m.check_in_context(y, 1e-12);
    }
    // A range that does not fit is refused at compile time, not read out of bounds.
    let mut m = Model::new(799);
    let n = m.dim("n", 3);
    let x = m.var(vec![n]);
    let (start, size) = (Dim::fixed(2), Dim::fixed(4));
    let y = m.add(
        Op::Pad {
            axis: 0,
            start,
            size,
        },
        vec![x],
    );
    assert_eq!(
        m.native(&[y]).unwrap_err(),
        CpuError::Plan(PlanError::OutOfRange(y))
    );
}

#[test]
fn scatter_matches_the_interpreter() {
    for seed in 0..24 {
        let mut m = Model::new(800 + seed);
        let (r, c) = (m.rng.pick(&ODD_SIZES), m.rng.pick(&ODD_SIZES));
        let size = 1 + m.rng.next() % 5;
        let (n, k, s) = (m.dim("n", r), m.dim("k", c), m.dim("s", size));
        let x = m.fused(vec![n, k]);
        let at = (m.rng.next() % size) as f64;
        let at = m.c(at);
        let axis = seed as u32 % 3;
        let y = m.add(Op::Scatter { axis, size: s }, vec![x, at]);
        m.check_in_context(y, 1e-12);
    }
}

/// `select` and `scatter` at an index read at run time (fused into a consumer, as a root, and an
/// index that is itself selected) agree with the interpreter for an index in range, and fail
/// with the interpreter's error (E0405 out of range, E0406 not an integer) for the others.
#[test]
fn run_time_indices_are_checked_as_by_the_interpreter() {
    let (mut m, at_input, mut root_sets) = programs::run_time_index_model(40);
    // `scatter` at the same index, fused into a reduction and as a root.
    let dim = |m: &Model, name| Dim::sym(m.p.dim_by_name(name).expect("the model's dim"));
    let (n, k, at) = (dim(&m, "n"), dim(&m, "k"), m.p.input_nodes[at_input]);
    let v = m.var(vec![k]);
    let w = m.var(vec![n, k]);
    let scattered = m.add(Op::Scatter { axis: 0, size: n }, vec![v, at]);
    let weighted = m.bin(BinaryOp::Mul, scattered, w);
    let scatter_sum = m.add(Op::Sum { axis: None }, vec![weighted]);
    root_sets.extend([vec![scatter_sum], vec![scattered]]);
    let (checked, failed) = programs::sweep_run_time_indices(
        &mut m,
        at_input,
        &root_sets,
        check,
        |m, index, roots, want| {
            let got = m
                .native(roots)
                .expect_err("an index the interpreter rejects");
            let CpuError::BadIndex(got) = got else {
                panic!("index {index}: {got:?} instead of {want:?}");
            };
            assert!(matches!(want.code(), "E0405" | "E0406"), "{want:?}");
            // Debug text: NaN indices compare unequal.
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "index {index}");
        },
    );
    // In range: 0, 2 and -0 for every root set (picks 2, 1, 2); 3 for `column` only (axis of 4;
    // its pick, 5, is out of range).
    assert_eq!((checked, failed), (16, 29));
}

#[test]
fn argmax_mask_matches_the_interpreter_with_ties_nan_and_infinity() {
    for seed in 0..30 {
        let mut m = Model::new(900 + seed);
        let (r, c) = (m.rng.pick(&ODD_SIZES), m.rng.pick(&ODD_SIZES));
        let (n, k) = (m.dim("n", r), m.dim("k", c));
        let x = tied_var(&mut m, vec![n, k], seed % 2 == 0);
        // Fused producer: the mask reads `-x` inside its own loops.
        let neg = m.un(UnaryOp::Neg, x);
        for axis in [None, Some(0), Some(1)] {
            let y = m.add(Op::ArgmaxMask { axis }, vec![neg]);
            m.check_in_context(y, 1e-12);
            let direct = m.add(Op::ArgmaxMask { axis }, vec![x]);
            m.check(&[direct], 1e-12);
        }
    }
    // All NaN, all -∞, and one NaN before a maximum: the first non-NaN entry, then the first max.
    for (values, want) in [
        (vec![f64::NAN, f64::NAN], vec![0.0, 0.0]),
        (vec![f64::NEG_INFINITY; 3], vec![1.0, 0.0, 0.0]),
        (vec![f64::NAN, 2.0, 5.0, 5.0], vec![0.0, 0.0, 1.0, 0.0]),
    ] {
        let mut m = Model::new(1);
        let n = m.dim("n", values.len() as u64);
        let x = m.var_with(
            vec![n],
            ArrayD::from_shape_vec(IxDyn(&[values.len()]), values).unwrap(),
        );
        let y = m.add(Op::ArgmaxMask { axis: None }, vec![x]);
        assert_eq!(
            m.native(&[y]).unwrap()[0].as_slice().unwrap(),
            want.as_slice()
        );
        m.check(&[y], 1e-12);
    }
}

/// A matrix of entries in [-s, s) and the node reading it (fused through `tanh` when `fused`).
fn matrix(m: &mut Model, n: Dim, fused: bool) -> NodeId {
    if fused {
        m.fused(vec![n, n])
    } else {
        m.var(vec![n, n])
    }
}

#[test]
fn expm_frechet_matches_the_interpreter() {
    for seed in 0..12 {
        let mut m = Model::new(1000 + seed);
        let size = m.rng.pick(&[0, 1, 2, 3, 5, 7]);
        let n = m.dim("n", size);
        let a = matrix(&mut m, n, seed % 2 == 0);
        let e = matrix(&mut m, n, seed % 3 == 0);
        let y = m.add(Op::ExpmFrechet, vec![a, e]);
        m.check_in_context(y, 1e-9);
    }
}

#[test]
fn expm_frechet2_matches_the_interpreter() {
    for seed in 0..12 {
        let mut m = Model::new(1100 + seed);
        let size = m.rng.pick(&[0, 1, 2, 3, 5, 7]);
        let n = m.dim("n", size);
        let a = matrix(&mut m, n, seed % 2 == 0);
        let e = matrix(&mut m, n, false);
        let f = matrix(&mut m, n, true);
        let y = m.add(Op::ExpmFrechet2, vec![a, e, f]);
        m.check_in_context(y, 1e-9);
    }
}

#[test]
fn matpow_and_its_frechet_derivatives_match_the_interpreter() {
    for seed in 0..12 {
        let mut m = Model::new(1150 + seed);
        let size = m.rng.pick(&[0, 1, 2, 3, 5, 7]);
        let n = m.dim("n", size);
        // k from the dim's size (n + offset) or a literal, 0 included.
        let k = match seed % 3 {
            0 => Dim::fixed(m.rng.pick(&[0, 1, 2, 6])),
            1 => n,
            _ => Dim::fixed(m.rng.pick(&[3, 4, 5])),
        };
        let a = matrix(&mut m, n, seed % 2 == 0);
        let e = matrix(&mut m, n, seed % 3 == 0);
        let f = matrix(&mut m, n, true);
        let power = m.add(Op::MatPow(k), vec![a]);
        m.check_in_context(power, 1e-9);
        let first = m.add(Op::MatPowFrechet(k), vec![a, e]);
        m.check_in_context(first, 1e-9);
        let second = m.add(Op::MatPowFrechet2(k), vec![a, e, f]);
        m.check_in_context(second, 1e-9);
    }
}

#[test]
fn matpow_with_a_negative_exponent_is_an_error() {
    let mut m = Model::new(1190);
    let n = m.dim("n", 2);
    let a = m.var(vec![n, n]);
    let k = n.minus(Dim::fixed(3)).expect("n - 3");
    let y = m.add(Op::MatPow(k), vec![a]);
    assert!(matches!(
        native(&m.p, &m.b, &[y]),
        Err(CpuError::Plan(PlanError::NegativeSize(_)))
    ));
}

#[test]
fn sort_scatter_matches_the_interpreter_with_ties() {
    for seed in 0..24 {
        let mut m = Model::new(1200 + seed);
        let size = m.rng.pick(&ODD_SIZES);
        let k = m.rng.next() % (size + 1);
        let (n, kd) = (m.dim("n", size), m.dim("k", k));
        let x = tied_var(&mut m, vec![n], seed % 2 == 0);
        let g = m.fused(vec![kd]);
        let y = m.add(Op::SortScatter, vec![x, g]);
        m.check_in_context(y, 1e-12);
    }
}

#[test]
fn sort_gather_matches_the_interpreter_with_ties() {
    for seed in 0..24 {
        let mut m = Model::new(1300 + seed);
        let size = m.rng.pick(&ODD_SIZES);
        let k = m.rng.next() % (size + 1);
        let n = m.dim("n", size);
        let x = tied_var(&mut m, vec![n], seed % 2 == 0);
        let h = m.fused(vec![n]);
        let y = m.add(Op::SortGather(Dim::fixed(k as i64)), vec![x, h]);
        m.check_in_context(y, 1e-12);
    }
    let mut m = Model::new(1);
    let n = m.dim("n", 2);
    let x = m.var(vec![n]);
    let y = m.add(Op::SortGather(Dim::fixed(3)), vec![x, x]);
    assert_eq!(m.native(&[y]).unwrap_err(), CpuError::BadTopK);
}

/// A random unary op of a new variable of `shape` (NaN where the op leaves its domain).
fn random_leaf(m: &mut Model, shape: Shape) -> NodeId {
    let x = m.var(shape);
    let u = m.rng.pick(&UNARY);
    m.un(u, x)
}

/// One random op on fused random leaves of sizes from [`ODD_SIZES`]: the node under test and the
/// tolerance of its check (1e-12, or 1e-9 through linear algebra).
fn random_op(m: &mut Model) -> (NodeId, f64) {
    let (r, c) = (m.rng.pick(&ODD_SIZES), m.rng.pick(&ODD_SIZES));
    let (n, k) = (m.dim("n", r), m.dim("k", c));
    let one = Dim::fixed(1);
    let exact = 1e-12;
    let kind = m.rng.next() % 24;
    let x = random_leaf(m, vec![n, k]);
    let axis = m.rng.next() as u32 % 2;
    let len = [r, c][axis as usize];
    let reduce_axis = m.rng.pick(&[None, Some(0), Some(1)]);
    let node = match kind {
        0 => {
            let u = m.rng.pick(&UNARY);
            m.un(u, x)
        }
        1 => {
            let shapes = [vec![], vec![k], vec![one, k], vec![n, one], vec![n, k]];
            let other_shape = m.rng.pick(&shapes);
            let other = random_leaf(m, other_shape);
            let op = m.rng.pick(&BINARY);
            if m.rng.next().is_multiple_of(2) {
                m.bin(op, x, other)
            } else {
                m.bin(op, other, x)
            }
        }
        2 => m.add(Op::Sum { axis: reduce_axis }, vec![x]),
        3 => m.add(Op::Max { axis: reduce_axis }, vec![x]),
        4 => m.add(Op::LogSumExp { axis: reduce_axis }, vec![x]),
        5 => {
            let targets = [vec![], vec![k], vec![one, k], vec![n, one]];
            let target = m.rng.pick(&targets);
            m.add(Op::SumTo(target), vec![x])
        }
        6 => m.add(Op::Transpose, vec![x]),
        7 => {
            let start = m.rng.next() % (len + 1);
            let end = start + m.rng.next() % (len - start + 1);
            let (start, end) = (Dim::fixed(start as i64), Dim::fixed(end as i64));
            m.add(Op::Slice { axis, start, end }, vec![x])
        }
        8 if len > 0 => {
            let at = (m.rng.next() % len) as f64;
            let at = m.c(at);
            m.add(Op::Select { axis }, vec![x, at])
        }
        9 => {
            let row = random_leaf(m, vec![k]);
            m.add(Op::BroadcastTo(vec![n, k]), vec![row])
        }
        10 => {
            let y = random_leaf(m, vec![n, k]);
            m.add(Op::Stack, vec![x, y])
        }
        11 => {
            let v = random_leaf(m, vec![n]);
            m.add(Op::Diag, vec![v])
        }
        12 | 13 => {
            let a = random_leaf(m, vec![n, n]);
            let op = if kind == 12 { Op::DiagPart } else { Op::Trace };
            m.add(op, vec![a])
        }
        14 => {
            let axis = m.rng.next() as u32 % 3;
            let size = m.rng.pick(&ODD_SIZES);
            let size = m.dim("e", size);
            m.add(Op::Expand { axis, size }, vec![x])
        }
        15 => {
            let start = m.rng.next() % 3;
            let size = Dim::fixed((len + start + m.rng.next() % 3) as i64);
            let start = Dim::fixed(start as i64);
            m.add(Op::Pad { axis, start, size }, vec![x])
        }
        16 => {
            let axis = m.rng.next() as u32 % 3;
            let size = 1 + m.rng.next() % 4;
            let at = (m.rng.next() % size) as f64;
            let at = m.c(at);
            let size = Dim::fixed(size as i64);
            m.add(Op::Scatter { axis, size }, vec![x, at])
        }
        17 => m.add(Op::ArgmaxMask { axis: reduce_axis }, vec![x]),
        18 | 19 => {
            let v = random_leaf(m, vec![n]);
            let j = m.rng.next() % (r + 1);
            if kind == 18 {
                let g = random_leaf(m, vec![Dim::fixed(j as i64)]);
                m.add(Op::SortScatter, vec![v, g])
            } else {
                let h = random_leaf(m, vec![n]);
                m.add(Op::SortGather(Dim::fixed(j as i64)), vec![v, h])
            }
        }
        20 | 21 => {
            let v = random_leaf(m, vec![n]);
            let j = Dim::fixed((m.rng.next() % (r + 1)) as i64);
            let op = if kind == 20 {
                Op::SortDesc
            } else {
                Op::TopK(j)
            };
            m.add(op, vec![v])
        }
        22 => {
            let w = random_leaf(m, vec![k, n]);
            return (m.add(Op::MatMul, vec![x, w]), 1e-9);
        }
        _ => {
            // Expm and its derivatives on matrices of at most 7 rows (tanh keeps entries in (-1, 1)).
            let n = m.dim("s", r.min(7));
            let a = m.fused(vec![n, n]);
            let e = m.fused(vec![n, n]);
            let op = m.rng.pick(&[0, 1, 2]);
            let node = match op {
                0 => m.add(Op::Expm, vec![a]),
                1 => m.add(Op::ExpmFrechet, vec![a, e]),
                _ => {
                    let f = m.fused(vec![n, n]);
                    m.add(Op::ExpmFrechet2, vec![a, e, f])
                }
            };
            return (node, 1e-9);
        }
    };
    (node, exact)
}

#[test]
fn random_ops_agree_with_the_interpreter() {
    for case in 0..300 {
        let mut m = Model::new(20_000 + case);
        let (y, tol) = random_op(&mut m);
        m.check_in_context(y, tol);
    }
}

/// An operand for `[n, k]` read the way vector loops distinguish: a scalar, a row, a column, a
/// full matrix (stored, or fused) or a transposed one (a stored `[k, n]` read across its rows).
fn lane_operand(m: &mut Model, n: Dim, k: Dim, kind: u64) -> NodeId {
    let one = Dim::fixed(1);
    match kind {
        0 => m.var(vec![]),
        1 => m.var(vec![k]),
        2 => m.var(vec![one, k]),
        3 => m.var(vec![n, one]),
        4 => m.var(vec![n, k]),
        5 => m.fused(vec![n, k]),
        _ => {
            let t = m.var(vec![k, n]);
            m.add(Op::Transpose, vec![t])
        }
    }
}

#[test]
fn vector_loops_match_the_interpreter() {
    // Sizes 0, 1 and no multiple of the vector width, for elementwise chains (with calls and
    // lane masks), every operand layout, and reductions over each axis that keep or merge lanes.
    for seed in 0..60 {
        let mut m = Model::new(30_000 + seed);
        let (r, c) = (m.rng.pick(&ODD_SIZES), m.rng.pick(&ODD_SIZES));
        let (n, k) = (m.dim("n", r), m.dim("k", c));
        let (kind_a, kind_b) = (m.rng.next() % 7, m.rng.next() % 7);
        let a = lane_operand(&mut m, n, k, kind_a);
        let b = lane_operand(&mut m, n, k, kind_b);
        let op = m.rng.pick(&BINARY);
        let u = m.rng.pick(&UNARY);
        let full = m.var(vec![n, k]);
        let ua = m.un(u, full);
        let ab = m.bin(op, a, b);
        let chain = m.bin(BinaryOp::Mul, ua, ab);
        // `chain` is a root (a stored loop) and is fused into every reduction below.
        let mut roots = vec![chain];
        for axis in [None, Some(0), Some(1)] {
            roots.push(m.add(Op::Sum { axis }, vec![chain]));
            roots.push(m.add(Op::Max { axis }, vec![chain]));
        }
        let one = Dim::fixed(1);
        let wide = m.bin(BinaryOp::Sub, ab, full);
        roots.push(m.add(Op::SumTo(vec![k]), vec![wide]));
        roots.push(m.add(Op::SumTo(vec![n, one]), vec![wide]));
        roots.push(m.add(Op::Card, vec![ab]));
        roots.push(m.add(Op::LogSumExp { axis: None }, vec![wide]));
        // A broadcast read at one element for all lanes of a reduction over the lane axis.
        let column = m.var(vec![n, one]);
        let spread = m.add(Op::BroadcastTo(vec![n, k]), vec![column]);
        roots.push(m.add(Op::Sum { axis: Some(1) }, vec![spread]));
        roots.push(m.add(Op::Sum { axis: None }, vec![spread]));
        // Square matrices: `eye` and `diag` compare lane positions; a diagonal read stays scalar.
        let s = m.dim("s", c);
        let sq = m.var(vec![s, s]);
        let eye = m.add(Op::Eye(s), vec![]);
        let v = m.var(vec![s]);
        let diag = m.add(Op::Diag, vec![v]);
        let shifted = m.bin(BinaryOp::Sub, eye, sq);
        let with_diag = m.bin(BinaryOp::Mul, diag, shifted);
        let diag_part = m.add(Op::DiagPart, vec![with_diag]);
        roots.extend([with_diag, diag_part]);
        roots.push(m.add(Op::Sum { axis: Some(0) }, vec![with_diag]));
        m.check(&roots, 1e-12);
    }
}

#[test]
fn clif_vectorizes_loops_without_calls_only() {
    // f(x) * y + 1 over [3, 5] runs f64x2 steps with f = abs, also with `y` read transposed
    // (stored as [5, 3]: its two lanes are gathered by two scalar loads); it stays scalar with
    // f = tanh (a call).
    let clif = |transposed: bool, f: UnaryOp| {
        let mut m = Model::new(4);
        let (n, k) = (m.dim("n", 3), m.dim("k", 5));
        let x = m.var(vec![n, k]);
        let y = if transposed {
            let t = m.var(vec![k, n]);
            m.add(Op::Transpose, vec![t])
        } else {
            m.var(vec![n, k])
        };
        let fx = m.un(f, x);
        let prod = m.bin(BinaryOp::Mul, fx, y);
        let one = m.c(1.0);
        let root = m.bin(BinaryOp::Add, prod, one);
        clif_text(&m.p, &[root], &m.b.dims).unwrap()
    };
    let simd = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));
    let contiguous = clif(false, UnaryOp::Abs);
    assert_eq!(contiguous.contains("load.f64x2"), simd, "{contiguous}");
    let gathered = clif(true, UnaryOp::Abs);
    assert_eq!(gathered.contains("insertlane"), simd, "{gathered}");
    let scalar = clif(false, UnaryOp::Tanh);
    assert!(!scalar.contains("f64x2"), "{scalar}");
}

/// The example models, by path under `examples/`.
fn example_models() -> Vec<(String, Program)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut paths: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flat_map(|group| {
            std::fs::read_dir(group.unwrap().path())
                .into_iter()
                .flatten()
        })
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "opt"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 7, "{paths:?}");
    paths
        .into_iter()
        .map(|path| {
            let name = path.strip_prefix(&root).unwrap().display().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let compiled = compile(&name, &text, Until::Ir)
                .unwrap_or_else(|e| panic!("{name}: {:?}", e.diagnostics));
            (name, compiled.program.unwrap())
        })
        .collect()
}

/// Odd sizes for the dims, random data and directions, parameters at their defaults, and
/// variables in [0.05, 0.3) (inside the domain of DAGMA's log-determinant and of `sigma > 0`).
fn example_bindings(p: &Program, seed: u64) -> Bindings {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut b = Bindings {
        dims: (0..p.dims.len()).map(|i| [7, 5, 3][i % 3]).collect(),
        ..Bindings::default()
    };
    for input in &p.inputs {
        let shape: Vec<usize> = input
            .shape
            .iter()
            .map(|d| d.eval(&b.dims) as usize)
            .collect();
        let value = match (input.kind, input.value) {
            (InputKind::Param, Some(default)) => {
                let v = eval(p, &b, &[default], &mut NoSubproblems).unwrap();
                v[0].broadcast(IxDyn(&shape)).unwrap().to_owned()
            }
            // The initial value (in the objective's domain: `eye(p)` for the `logdet` of a
            // precision matrix) plus noise.
            (InputKind::Var, start) => {
                let noise =
                    ArrayD::from_shape_simple_fn(IxDyn(&shape), || 0.175 + 0.125 * rng.unit());
                match start {
                    Some(start) => noise + &eval(p, &b, &[start], &mut NoSubproblems).unwrap()[0],
                    None => noise,
                }
            }
            _ => ArrayD::from_shape_simple_fn(IxDyn(&shape), || rng.unit()),
        };
        b.inputs.push(Some(value));
    }
    b
}

/// For every example: the (minimized) objective with its reverse-mode gradient and
/// Hessian-vector product, and every scalar equality/inequality constraint with its gradient
/// and Hessian-vector product, compiled natively — both the raw derivative graph (which holds
/// the adjoint ops) and its simplified form — against the interpreter at random points.
#[test]
fn example_gradients_match_the_interpreter() {
    let mut compiled = Vec::new();
    let mut frechet_ops = std::collections::BTreeSet::new();
    for (name, program) in example_models() {
        let derived = match differentiate(&program) {
            Ok(d) => d,
            Err(e) => {
                // bilevel/tv_denoise: the objective reads `argmin`, whose gradient the bilevel
                // solver computes by implicit differentiation. The backend refuses lower-level
                // problems with `Unsupported`.
                assert!(!program.subproblems.is_empty(), "{name}: {e}");
                let objective = program.objective.as_ref().unwrap().node;
                let dims = example_bindings(&program, 0).dims;
                let err = CompiledFn::compile(&program, &[objective], &dims).err();
                assert!(
                    matches!(err, Some(CpuError::Unsupported(_))),
                    "{name}: {err:?}"
                );
                continue;
            }
        };
        let mut p = derived.program.clone();
        let vars: Vec<InputId> = p.variables().collect();
        let mut roots = derived.roots();
        let mut differentiable = vec![derived.objective];
        for c in &program.constraints {
            if !c.ranges.is_empty() {
                // `for` constraints read the loop index, which the backend does not compile.
                let dims = example_bindings(&p, 0).dims;
                let err = CompiledFn::compile(&p, &[c.node], &dims).err();
                assert!(
                    matches!(err, Some(CpuError::Unsupported(_))),
                    "{name}: {err:?}"
                );
                continue;
            }
            if !matches!(c.kind, ConstraintKind::Eq | ConstraintKind::Le) {
                continue;
            }
            roots.push(c.node);
            if p.graph.shape(c.node).is_empty() {
                roots.extend(gradient(&mut p, c.node, &vars).unwrap());
                differentiable.push(c.node);
            }
        }
        let mut all = roots.clone();
        for f in differentiable {
            let h = hvp(&mut p, f, &vars).unwrap_or_else(|e| panic!("{name}: {e}"));
            all.extend(h.hvp);
        }
        let dims = example_bindings(&p, 0).dims;
        let s = simplify(&p, &roots, &CostModel::new(dims)).unwrap();
        for seed in 0..2 {
            let b = example_bindings(&p, seed);
            assert_matches_interpreter(&p, &b, &all, 1e-9);
            assert_matches_interpreter(&s.program, &b, &s.roots, 1e-9);
        }
        frechet_ops.extend(p.graph.nodes().filter_map(|(_, node)| match node.op {
            Op::ExpmFrechet => Some("expm_frechet"),
            Op::ExpmFrechet2 => Some("expm_frechet2"),
            _ => None,
        }));
        compiled.push(name);
    }
    // NOTEARS' gradient and Hessian-vector product go through the adjoint kernels.
    assert_eq!(
        frechet_ops.into_iter().collect::<Vec<_>>(),
        ["expm_frechet", "expm_frechet2"]
    );
    for name in [
        "dag/colide.opt",
        "dag/dagma.opt",
        "dag/notears.opt",
        "regression/ridge.opt",
    ] {
        assert!(
            compiled.iter().any(|c| c == name),
            "{name} not checked: {compiled:?}"
        );
    }
}
