//! Random test programs shared by the backend suites (`runtime/tests/cpu_backend.rs`,
//! `mlir/tests/cpu.rs` and `mlir/tests/examples.rs` include this file by path): a seeded
//! generator, a program builder with the values bound to it, the harness that calls a compiled
//! function, and op-level cases that each backend checks against the interpreter with its own
//! [`Check`].
#![allow(dead_code, unused_macros)] // each suite uses only some of the helpers

use ndarray::{ArrayD, IxDyn};
use optc_compiler::ir::{
    BinaryOp, Dim, DimId, DimInfo, ElemType, InputKind, NodeId, Op, Program, Shape, UnaryOp,
};
use optc_runtime::interp::{eval, Bindings, EvalError, NoSubproblems};

/// xorshift64*: a small deterministic generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    pub fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize].clone()
    }
}

/// A program under construction and the values bound to it.
pub struct Model {
    pub p: Program,
    pub b: Bindings,
    pub rng: Rng,
}

impl Model {
    pub fn new(seed: u64) -> Model {
        Model {
            p: Program::default(),
            b: Bindings::default(),
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        }
    }

    pub fn dim(&mut self, name: &str, size: u64) -> Dim {
        self.p.dims.push(DimInfo {
            name: name.into(),
            default: None,
            span: None,
        });
        self.b.dims.push(size);
        Dim::sym(DimId(self.p.dims.len() as u32 - 1))
    }

    /// A variable of `shape` with random entries in [-1, 1).
    pub fn var(&mut self, shape: Shape) -> NodeId {
        let dims: Vec<usize> = shape
            .iter()
            .map(|d| d.eval(&self.b.dims) as usize)
            .collect();
        let n: usize = dims.iter().product();
        let data = (0..n).map(|_| self.rng.unit()).collect();
        self.var_with(shape, ArrayD::from_shape_vec(IxDyn(&dims), data).unwrap())
    }

    /// A variable of `shape` bound to `value`.
    pub fn var_with(&mut self, shape: Shape, value: ArrayD<f64>) -> NodeId {
        let (_, node) = self.p.add_input(
            format!("x{}", self.p.inputs.len()),
            InputKind::Var,
            ElemType::Real,
            shape,
        );
        self.b.inputs.push(Some(value));
        node
    }

    /// A variable of `shape` holding `data` (row-major); returns the node and its input index.
    pub fn var_data(&mut self, shape: Shape, data: &[f64]) -> (NodeId, usize) {
        let node = self.var(shape);
        let input = self.b.inputs.len() - 1;
        self.set(input, data);
        (node, input)
    }

    /// Rebinds input `input` (of the same shape) to `data` (row-major).
    pub fn set(&mut self, input: usize, data: &[f64]) {
        let value = self.b.inputs[input].as_mut().expect("bound input");
        value.iter_mut().zip(data).for_each(|(v, d)| *v = *d);
    }

    pub fn add(&mut self, op: Op, args: Vec<NodeId>) -> NodeId {
        self.p.graph.add(op, args).expect("well-shaped test node")
    }

    pub fn c(&mut self, x: f64) -> NodeId {
        self.p.graph.constant(x)
    }

    pub fn bin(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
        self.add(Op::Binary(op), vec![a, b])
    }

    pub fn un(&mut self, op: UnaryOp, a: NodeId) -> NodeId {
        self.add(Op::Unary(op), vec![a])
    }
}

/// The runtime's kernel table by name and address (as `optc_mlir::MlirCpuFn::compile` takes it).
pub fn kernel_symbols() -> Vec<(&'static str, *const u8)> {
    optc_runtime::cpu::symbols()
        .into_iter()
        .map(|s| (s.name, s.address))
        .collect()
}

/// Runs a compiled function's `call` on the inputs bound in `b` and outputs of `shapes` (filled
/// with NaN first); returns the outputs as arrays.
pub fn run_compiled<E>(
    b: &Bindings,
    shapes: &[Vec<usize>],
    call: impl FnOnce(&[&[f64]], &mut [&mut [f64]]) -> Result<(), E>,
) -> Result<Vec<ArrayD<f64>>, E> {
    let inputs: Vec<&[f64]> = b
        .inputs
        .iter()
        .map(|v| v.as_ref().and_then(|a| a.as_slice()).unwrap_or(&[]))
        .collect();
    let mut data: Vec<Vec<f64>> = shapes
        .iter()
        .map(|s| vec![f64::NAN; s.iter().product()])
        .collect();
    let mut outputs: Vec<&mut [f64]> = data.iter_mut().map(|d| d.as_mut_slice()).collect();
    call(&inputs, &mut outputs)?;
    Ok(shapes
        .iter()
        .zip(data)
        .map(|(s, d)| ArrayD::from_shape_vec(IxDyn(s), d).expect("output shape"))
        .collect())
}

/// A model whose `select`s read an index at run time, from the scalar input it returns: fused
/// into a reduction, as a root, and at an index that is itself selected (from picks 2, 0, 1, 5
/// along an axis of 4). The root sets are the three `select`s, one per set.
pub fn run_time_index_model(seed: u64) -> (Model, usize, Vec<Vec<NodeId>>) {
    let mut m = Model::new(seed);
    let (n, k) = (m.dim("n", 3), m.dim("k", 4));
    let x = m.var(vec![n, k]);
    let (picks, _) = m.var_data(vec![k], &[2.0, 0.0, 1.0, 5.0]);
    let (at, at_input) = m.var_data(vec![], &[0.0]);
    let tanh_x = m.un(UnaryOp::Tanh, x);
    let row = m.add(Op::Select { axis: 0 }, vec![tanh_x, at]);
    let row_sum = m.add(Op::Sum { axis: None }, vec![row]);
    let column = m.add(Op::Select { axis: 1 }, vec![x, at]);
    let pick = m.add(Op::Select { axis: 0 }, vec![picks, at]);
    let picked_column = m.add(Op::Select { axis: 1 }, vec![x, pick]);
    (
        m,
        at_input,
        vec![vec![row_sum], vec![column], vec![picked_column]],
    )
}

/// Sets the scalar input `at_input` to indices in range, outside it and not integers (−0, 1.5,
/// NaN, ∞ included) and evaluates every root set at each: where the interpreter succeeds the
/// backend must agree (`check`); where it fails, `rejected` gets the index, the roots and the
/// interpreter's error. Returns how many evaluations were checked and how many rejected.
pub fn sweep_run_time_indices(
    m: &mut Model,
    at_input: usize,
    root_sets: &[Vec<NodeId>],
    check: Check,
    rejected: impl Fn(&Model, f64, &[NodeId], EvalError),
) -> (usize, usize) {
    let (mut checked, mut failed) = (0, 0);
    for index in [0.0, 2.0, 3.0, 4.0, -1.0, -0.0, 1.5, f64::NAN, f64::INFINITY] {
        m.set(at_input, &[index]);
        for roots in root_sets {
            match eval(&m.p, &m.b, roots, &mut NoSubproblems) {
                Ok(_) => {
                    check(m, roots, 1e-12);
                    checked += 1;
                }
                Err(want) => {
                    rejected(m, index, roots, want);
                    failed += 1;
                }
            }
        }
    }
    (checked, failed)
}

/// How a backend checks `roots` of a model against the interpreter, to relative error `tol`.
pub type Check = fn(&Model, &[NodeId], f64);

/// The shared op-level cases as `#[test]` functions of the including suite, checked by `$check`
/// (a [`Check`]).
macro_rules! backend_cases {
    ($check:path) => {
        #[test]
        fn elementwise_chains_with_broadcasting() {
            programs::elementwise_chains_with_broadcasting($check);
        }

        #[test]
        fn reductions_fused_with_producers() {
            programs::reductions_fused_with_producers($check);
        }

        #[test]
        fn square_matrix_ops_and_views() {
            programs::square_matrix_ops_and_views($check);
        }

        #[test]
        fn linear_algebra_kernels() {
            programs::linear_algebra_kernels($check);
        }

        #[test]
        fn lu_based_kernels_and_expm() {
            programs::lu_based_kernels_and_expm($check);
        }
    };
}

/// Asserts that `got`, the values of `roots` on `backend`, agree elementwise with the
/// interpreter's to relative error `tol` (relative to max(|interpreter|, 1); NaN matches NaN).
pub fn assert_matches_interpreter(
    p: &Program,
    b: &Bindings,
    roots: &[NodeId],
    got: &[ArrayD<f64>],
    tol: f64,
    backend: &str,
) {
    let want = eval(p, b, roots, &mut NoSubproblems).expect("interpreter");
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.shape(), w.shape(), "root {k}");
        for (x, y) in g.iter().zip(w) {
            let ok =
                x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= tol * y.abs().max(1.0);
            assert!(
                ok,
                "root {k} ({:?}): {backend} {g} vs interpreter {w}",
                p.graph.node(roots[k]).op
            );
        }
    }
}

pub const SIZES: [u64; 6] = [0, 1, 2, 3, 5, 7];
pub const UNARY: [UnaryOp; 10] = [
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
pub const BINARY: [BinaryOp; 7] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Pow,
    BinaryOp::Max,
    BinaryOp::Min,
];

/// A matrix `a : [n, m]` and a second operand of a random shape broadcasting against it.
pub fn operands(m: &mut Model) -> (NodeId, NodeId, Dim, Dim) {
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

/// Unary and binary chains over broadcast operands of random shapes.
pub fn elementwise_chains_with_broadcasting(check: Check) {
    for seed in 0..40 {
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
        check(&m, &[chain, swapped, sq, ua], 1e-12);
    }
}

/// Reductions (sum, max, log-sum-exp over all or one axis, sum-to, card) of a fused producer.
pub fn reductions_fused_with_producers(check: Check) {
    for seed in 0..30 {
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
        check(&m, &roots, 1e-12);
    }
}

/// Trace, diagonals, transposes, sorting, top-k, stacking, expansions and views of square
/// matrices.
pub fn square_matrix_ops_and_views(check: Check) {
    for seed in 0..20 {
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
            m.add(
                Op::Expand {
                    axis: 1,
                    size: Dim::fixed(3),
                },
                vec![v],
            ),
            a,
            a,
        ];
        // An expansion fused into its consumer.
        let rows = m.add(Op::Expand { axis: 0, size: n }, vec![v]);
        roots.push(m.bin(BinaryOp::Mul, rows, ex));
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
        check(&m, &roots, 1e-12);
    }
}

/// Matrix products (with transposed and fused operands), solves and inverses.
pub fn linear_algebra_kernels(check: Check) {
    for seed in 0..20 {
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
        check(&m, &roots, 1e-9);
    }
}

/// Log-determinants, inverses and solves sharing one matrix, and the matrix exponential.
pub fn lu_based_kernels_and_expm(check: Check) {
    for seed in 0..15 {
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
        check(&m, &roots, 1e-9);
    }
}
