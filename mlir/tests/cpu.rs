//! The MLIR CPU path against the reference interpreter: seeded random shapes (including 0, 1 and
//! 7) for every op the backend lowers, composite objectives, errors (run-time indices of
//! `select` included), and snapshots of the text of a fused reduction and of an index check.

use ndarray::{ArrayD, IxDyn};
use optc_compiler::fusion::PlanError;
use optc_compiler::ir::{
    BinaryOp, Dim, DimId, DimInfo, ElemType, InputKind, NodeId, Op, Program, Shape, UnaryOp,
};
use optc_mlir::{mlir_text, MlirCpuFn, MlirError};
use optc_runtime::interp::{eval, Bindings, EvalError, NoSubproblems};

/// The runtime's kernel table, as `MlirCpuFn::compile` takes it.
fn symbols() -> Vec<(&'static str, *const u8)> {
    optc_runtime::cpu::symbols()
        .into_iter()
        .map(|s| (s.name, s.address))
        .collect()
}

/// xorshift64*: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// A program under construction and the values bound to it.
struct Model {
    p: Program,
    b: Bindings,
    rng: Rng,
}

impl Model {
    fn new(seed: u64) -> Model {
        Model {
            p: Program::default(),
            b: Bindings::default(),
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        }
    }

    fn dim(&mut self, name: &str, size: u64) -> Dim {
        self.p.dims.push(DimInfo {
            name: name.into(),
            default: None,
        });
        self.b.dims.push(size);
        Dim::sym(DimId(self.p.dims.len() as u32 - 1))
    }

    /// A variable of `shape` with random entries in [-1, 1).
    fn var(&mut self, shape: Shape) -> NodeId {
        let dims: Vec<usize> = shape
            .iter()
            .map(|d| d.eval(&self.b.dims) as usize)
            .collect();
        let n: usize = dims.iter().product();
        let data = (0..n).map(|_| self.rng.unit()).collect();
        let (_, node) = self.p.add_input(
            format!("x{}", self.p.inputs.len()),
            InputKind::Var,
            ElemType::Real,
            shape,
        );
        let value = ArrayD::from_shape_vec(IxDyn(&dims), data).expect("shape of the data");
        self.b.inputs.push(Some(value));
        node
    }

    /// A variable of `shape` holding `data` (row-major); returns the node and its input index.
    fn var_with(&mut self, shape: Shape, data: &[f64]) -> (NodeId, usize) {
        let node = self.var(shape);
        let input = self.b.inputs.len() - 1;
        self.set(input, data);
        (node, input)
    }

    /// Rebinds input `input` (of the same shape) to `data`.
    fn set(&mut self, input: usize, data: &[f64]) {
        let value = self.b.inputs[input].as_mut().expect("bound input");
        value.iter_mut().zip(data).for_each(|(v, d)| *v = *d);
    }

    fn add(&mut self, op: Op, args: Vec<NodeId>) -> NodeId {
        self.p.graph.add(op, args).expect("well-shaped test node")
    }

    fn c(&mut self, x: f64) -> NodeId {
        self.p.graph.constant(x)
    }

    fn bin(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
        self.add(Op::Binary(op), vec![a, b])
    }

    fn un(&mut self, op: UnaryOp, a: NodeId) -> NodeId {
        self.add(Op::Unary(op), vec![a])
    }
}

/// Values of `roots` computed through MLIR.
fn run_mlir(p: &Program, b: &Bindings, roots: &[NodeId]) -> Result<Vec<ArrayD<f64>>, MlirError> {
    let mut f = MlirCpuFn::compile(p, roots, &b.dims, &symbols())?;
    let inputs: Vec<&[f64]> = b
        .inputs
        .iter()
        .map(|v| v.as_ref().and_then(|a| a.as_slice()).unwrap_or(&[]))
        .collect();
    let shapes = f.output_shapes().to_vec();
    let mut data: Vec<Vec<f64>> = shapes
        .iter()
        .map(|s| vec![f64::NAN; s.iter().product()])
        .collect();
    let mut outputs: Vec<&mut [f64]> = data.iter_mut().map(|d| d.as_mut_slice()).collect();
    f.call(&inputs, &mut outputs)?;
    Ok(shapes
        .iter()
        .zip(data)
        .map(|(s, d)| ArrayD::from_shape_vec(IxDyn(s), d).expect("output shape"))
        .collect())
}

/// Asserts that MLIR and interpreted values of `roots` agree to relative error `tol`.
fn check(p: &Program, b: &Bindings, roots: &[NodeId], tol: f64) {
    let want = eval(p, b, roots, &mut NoSubproblems).expect("interpreter");
    let got = run_mlir(p, b, roots).expect("MLIR");
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.shape(), w.shape(), "root {k}");
        for (x, y) in g.iter().zip(w) {
            let ok =
                x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= tol * y.abs().max(1.0);
            assert!(
                ok,
                "root {k} ({:?}): MLIR {g} vs interpreter {w}",
                p.graph.node(roots[k]).op
            );
        }
    }
}

const SIZES: [u64; 5] = [0, 1, 2, 3, 7];
const UNARY: [UnaryOp; 10] = [
    UnaryOp::Neg,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Abs,
    UnaryOp::Sign,
    UnaryOp::Tanh,
    UnaryOp::Sigmoid,
    UnaryOp::Softplus,
    UnaryOp::Step,
];
const BINARY: [BinaryOp; 7] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Pow,
    BinaryOp::Max,
    BinaryOp::Min,
];

/// A matrix `a : [n, m]` and a second operand of a random shape broadcasting against it.
fn operands(m: &mut Model) -> (NodeId, NodeId, Dim, Dim) {
    let n_size = m.rng.pick(&SIZES);
    let m_size = m.rng.pick(&SIZES);
    let (n, k) = (m.dim("n", n_size), m.dim("m", m_size));
    let one = Dim::fixed(1);
    let b_shape = match m.rng.next() % 5 {
        0 => vec![],
        1 => vec![k],
        2 => vec![one, k],
        3 => vec![n, one],
        _ => vec![n, k],
    };
    let a = m.var(vec![n, k]);
    let b = m.var(b_shape);
    (a, b, n, k)
}

#[test]
fn elementwise_chains_with_broadcasting() {
    for seed in 0..20 {
        let mut m = Model::new(seed);
        let (a, b, _, _) = operands(&mut m);
        // Positive operands keep log, sqrt and pow real.
        let abs_a = m.un(UnaryOp::Abs, a);
        let half = m.c(0.5);
        let pos_a = m.bin(BinaryOp::Add, abs_a, half);
        let u = UNARY[seed as usize % UNARY.len()];
        let op = BINARY[seed as usize % BINARY.len()];
        let ua = m.un(u, pos_a);
        let ub = m.un(UNARY[(seed as usize + 3) % UNARY.len()], b);
        let chain = m.bin(op, ua, ub);
        let swapped = m.bin(op, b, ua);
        let two = m.c(2.0);
        let sq = m.bin(BinaryOp::Pow, chain, two);
        m.check(&[chain, swapped, sq, ua], 1e-12);
    }
}

#[test]
fn reductions_fused_with_producers() {
    for seed in 0..15 {
        let mut m = Model::new(100 + seed);
        let (a, b, n, k) = operands(&mut m);
        let prod = m.bin(BinaryOp::Mul, a, b);
        let e = m.un(UnaryOp::Tanh, prod);
        let mut roots = Vec::new();
        for axis in [None, Some(0), Some(1)] {
            roots.push(m.add(Op::Sum { axis }, vec![e]));
            roots.push(m.add(Op::Max { axis }, vec![e]));
            roots.push(m.add(Op::LogSumExp { axis }, vec![e]));
        }
        roots.push(m.add(Op::SumTo(vec![k]), vec![e]));
        roots.push(m.add(Op::SumTo(vec![n, Dim::fixed(1)]), vec![e]));
        roots.push(m.add(Op::SumTo(vec![]), vec![e]));
        roots.push(m.add(Op::Card, vec![b]));
        m.check(&roots, 1e-12);
    }
}

#[test]
fn square_matrix_ops_and_views() {
    for seed in 0..12 {
        let mut m = Model::new(200 + seed);
        let size = m.rng.pick(&SIZES);
        let n = m.dim("n", size);
        let a = m.var(vec![n, n]);
        let v = m.var(vec![n]);
        let ex = m.un(UnaryOp::Exp, a);
        let mut roots = vec![
            m.add(Op::Trace, vec![ex]),
            m.add(Op::DiagPart, vec![ex]),
            m.add(Op::Transpose, vec![ex]),
            m.add(Op::Diag, vec![v]),
            m.add(Op::Eye(n), vec![]),
            m.add(Op::SortDesc, vec![v]),
            m.add(Op::TopK(Dim::fixed(size.min(2) as i64)), vec![v]),
            m.add(Op::Stack, vec![v, v]),
            m.add(Op::DimSize(n), vec![]),
            a,
            a,
        ];
        let t = m.add(Op::Transpose, vec![a]);
        let plus = m.bin(BinaryOp::Add, a, t);
        roots.push(m.add(Op::Sum { axis: Some(0) }, vec![plus]));
        if size >= 2 {
            let lo = Dim::fixed(1);
            roots.push(m.add(
                Op::Slice {
                    axis: 1,
                    start: lo,
                    end: n,
                },
                vec![ex],
            ));
            let i = m.c(1.0);
            roots.push(m.add(Op::Select { axis: 0 }, vec![ex, i]));
            roots.push(m.add(Op::Select { axis: 1 }, vec![ex, i]));
        }
        m.check(&roots, 1e-12);
    }
}

#[test]
fn linear_algebra_kernels() {
    for seed in 0..12 {
        let mut m = Model::new(300 + seed);
        let (p, q, r) = (m.rng.pick(&SIZES), m.rng.pick(&SIZES), m.rng.pick(&SIZES));
        let (p, q, r) = (m.dim("p", p), m.dim("q", q), m.dim("r", r));
        let a = m.var(vec![p, q]);
        let b = m.var(vec![q, r]);
        let bt = m.var(vec![r, q]);
        let x = m.var(vec![q]);
        let y = m.var(vec![p]);
        let t_bt = m.add(Op::Transpose, vec![bt]);
        let t_a = m.add(Op::Transpose, vec![a]);
        let e = m.un(UnaryOp::Exp, a);
        let t_e = m.add(Op::Transpose, vec![e]);
        let roots = vec![
            m.add(Op::MatMul, vec![a, b]),
            m.add(Op::MatMul, vec![a, t_bt]),
            m.add(Op::MatMul, vec![t_a, y]),
            m.add(Op::MatMul, vec![t_e, y]),
            m.add(Op::MatMul, vec![a, x]),
            m.add(Op::MatMul, vec![y, a]),
            m.add(Op::MatMul, vec![x, x]),
            m.add(Op::NuclearNorm, vec![a]),
        ];
        m.check(&roots, 1e-9);
    }
}

#[test]
fn lu_based_kernels_and_expm() {
    for seed in 0..10 {
        let mut m = Model::new(400 + seed);
        let size = m.rng.pick(&SIZES);
        let n = m.dim("n", size);
        let a = m.var(vec![n, n]);
        let rhs = m.var(vec![n, Dim::fixed(3)]);
        let v = m.var(vec![n]);
        // A Aᵀ + n I is symmetric positive definite: positive determinant, well conditioned.
        let at = m.add(Op::Transpose, vec![a]);
        let gram = m.add(Op::MatMul, vec![a, at]);
        let eye = m.add(Op::Eye(n), vec![]);
        let dn = m.add(Op::DimSize(n), vec![]);
        let shift = m.bin(BinaryOp::Mul, dn, eye);
        let spd = m.bin(BinaryOp::Add, gram, shift);
        let roots = vec![
            m.add(Op::LogDet, vec![spd]),
            m.add(Op::Solve, vec![spd, rhs]),
            m.add(Op::Solve, vec![spd, v]),
            m.add(Op::Inv, vec![spd]),
            m.add(Op::Expm, vec![a]),
        ];
        m.check(&roots, 1e-9);
    }
}

impl Model {
    fn check(&self, roots: &[NodeId], tol: f64) {
        check(&self.p, &self.b, roots, tol);
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
        Err(MlirError::KernelStatus(s)) if s == optc_runtime::cpu::NONPOSITIVE_DET
    ));
    let inv = m.add(Op::Inv, vec![singular]);
    assert!(matches!(
        run_mlir(&m.p, &m.b, &[inv]),
        Err(MlirError::KernelStatus(s)) if s == optc_runtime::cpu::SINGULAR
    ));
    let expand = m.add(
        Op::Expand {
            axis: 0,
            size: Dim::fixed(2),
        },
        vec![a],
    );
    assert!(matches!(
        mlir_text(&m.p, &[expand], &m.b.dims),
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
        Err(MlirError::ArrayLength { what: "input", .. })
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
    let mut m = Model::new(40);
    let (n, k) = (m.dim("n", 3), m.dim("k", 4));
    let x = m.var(vec![n, k]);
    let (picks, _) = m.var_with(vec![k], &[2.0, 0.0, 1.0, 5.0]);
    let (at, at_input) = m.var_with(vec![], &[0.0]);
    let tanh_x = m.un(UnaryOp::Tanh, x);
    let row = m.add(Op::Select { axis: 0 }, vec![tanh_x, at]);
    let row_sum = m.add(Op::Sum { axis: None }, vec![row]);
    let column = m.add(Op::Select { axis: 1 }, vec![x, at]);
    let pick = m.add(Op::Select { axis: 0 }, vec![picks, at]);
    let picked_column = m.add(Op::Select { axis: 1 }, vec![x, pick]);
    let root_sets = [vec![row_sum], vec![column], vec![picked_column]];

    let indices = [0.0, 2.0, 3.0, 4.0, -1.0, -0.0, 1.5, f64::NAN, f64::INFINITY];
    let (mut checked, mut failed) = (0, 0);
    for index in indices {
        m.set(at_input, &[index]);
        for roots in &root_sets {
            match eval(&m.p, &m.b, roots, &mut NoSubproblems) {
                Ok(_) => {
                    m.check(roots, 1e-12);
                    checked += 1;
                }
                Err(want) => {
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
                    failed += 1;
                }
            }
        }
    }
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
    let (at, _) = m.var_with(vec![], &[1.0]);
    let column = m.add(Op::Select { axis: 1 }, vec![x, at]);
    let s = m.add(Op::Sum { axis: None }, vec![column]);
    insta::assert_snapshot!(mlir_text(&m.p, &[s], &m.b.dims).expect("lowers"));
}
