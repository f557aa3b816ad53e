//! The native CPU backend against the reference interpreter: seeded random shapes (including 0, 1
//! and odd sizes) for every op, composite objectives, errors, and a snapshot of the CLIF.

use ndarray::{ArrayD, IxDyn};
use optc_compiler::ir::{
    BinaryOp, Dim, DimId, DimInfo, ElemType, InputId, InputKind, NodeId, Op, Program, Shape,
    Subproblem, SubproblemId, UnaryOp,
};
use optc_runtime::cpu::{clif_text, CompiledFn, CpuError, JitCache};
use optc_runtime::interp::{eval, Bindings, NoSubproblems};

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
        self.var_with(shape, ArrayD::from_shape_vec(IxDyn(&dims), data).unwrap())
    }

    fn var_with(&mut self, shape: Shape, value: ArrayD<f64>) -> NodeId {
        let (_, node) = self.p.add_input(
            format!("x{}", self.p.inputs.len()),
            InputKind::Var,
            ElemType::Real,
            shape,
        );
        self.b.inputs.push(Some(value));
        node
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

    /// Native values of `roots`.
    fn native(&self, roots: &[NodeId]) -> Result<Vec<ArrayD<f64>>, CpuError> {
        let mut f = CompiledFn::compile(&self.p, roots, &self.b.dims)?;
        let inputs: Vec<&[f64]> = self
            .b
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
            .map(|(s, d)| ArrayD::from_shape_vec(IxDyn(s), d).unwrap())
            .collect())
    }

    /// Asserts that native and interpreted values of `roots` agree to relative error `tol`.
    fn check(&self, roots: &[NodeId], tol: f64) {
        let want = eval(&self.p, &self.b, roots, &mut NoSubproblems).expect("interpreter");
        let got = self.native(roots).expect("native");
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.shape(), w.shape(), "root {k}");
            for (x, y) in g.iter().zip(w) {
                let ok =
                    x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= tol * y.abs().max(1.0);
                assert!(
                    ok,
                    "root {k} ({:?}): native {g} vs interpreter {w}",
                    self.p.graph.node(roots[k]).op
                );
            }
        }
    }
}

const SIZES: [u64; 6] = [0, 1, 2, 3, 5, 7];
const UNARY: [UnaryOp; 9] = [
    UnaryOp::Neg,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Abs,
    UnaryOp::Sign,
    UnaryOp::Tanh,
    UnaryOp::Sigmoid,
    UnaryOp::Softplus,
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
        let chain = m.bin(op, ua, b);
        let swapped = m.bin(op, b, ua);
        let squared = m.c(2.0);
        let sq = m.bin(BinaryOp::Pow, chain, squared);
        m.check(&[chain, swapped, sq, ua], 1e-12);
    }
}

#[test]
fn reductions_fused_with_producers() {
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
        m.check(&roots, 1e-12);
    }
}

#[test]
fn square_matrix_ops_and_views() {
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
        let roots = vec![
            m.add(Op::MatMul, vec![a, b]),
            m.add(Op::MatMul, vec![a, t_bt]),
            m.add(Op::MatMul, vec![t_a, y]),
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
        m.check(&roots, 1e-9);
    }
}

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
    assert_eq!(
        m.native(&[ld]).unwrap_err(),
        CpuError::NonPositiveDeterminant
    );
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
    assert!(matches!(err, CpuError::ArrayLength { what: "output", .. }));
}

#[test]
fn cache_compiles_once_per_dims() {
    let mut m = Model::new(2);
    let n = m.dim("n", 3);
    let x = m.var(vec![n]);
    let s = m.add(Op::Sum { axis: None }, vec![x]);
    let mut cache = JitCache::new(vec![s]);
    let mut out = [0.0];
    for (size, want) in [(3usize, 6.0), (4, 10.0), (3, 6.0)] {
        let data: Vec<f64> = (1..=size).map(|i| i as f64).collect();
        let f = cache.get(&m.p, &[size as u64]).unwrap();
        f.call(&[&data], &mut [&mut out]).unwrap();
        assert_eq!(out[0], want);
    }
}

#[test]
fn clif_of_a_fused_sum_of_squares() {
    // sum((x - y)^2) * 0.5 over x, y : [n] with n = 3: one fused loop and a scalar epilogue.
    let mut m = Model::new(3);
    let n = m.dim("n", 3);
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
