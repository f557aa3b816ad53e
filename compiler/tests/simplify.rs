//! Tests of e-graph simplification with staging: FLOP wins, staging, numeric equivalence (with
//! a small dense evaluator of the ops these programs use), verifier cleanliness, snapshots.

mod common;

use optc_compiler::autodiff::gradient;
use optc_compiler::ir::{
    print_program, verify, BinaryOp, Dim, DimId, DimInfo, ElemType, InputId, InputKind, NodeId,
    Objective, Op, Program, Sense, Shape, UnaryOp,
};
use optc_compiler::simplify::{flops, simplify, stage, CostModel, Simplified};

// ---------- building programs by hand ----------

struct Builder {
    p: Program,
}

impl Builder {
    fn new(dims: &[&str]) -> Builder {
        let p = Program {
            dims: dims
                .iter()
                .map(|d| DimInfo {
                    name: d.to_string(),
                    default: None,
                    span: None,
                })
                .collect(),
            ..Program::default()
        };
        Builder { p }
    }

    fn dim(&self, name: &str) -> Dim {
        Dim::sym(self.p.dim_by_name(name).unwrap())
    }

    fn input(&mut self, name: &str, kind: InputKind, shape: Shape) -> NodeId {
        let (_, node) = self.p.add_input(name, kind, ElemType::Real, shape);
        node
    }

    fn op(&mut self, op: Op, args: &[NodeId]) -> NodeId {
        self.p.graph.add(op, args.to_vec()).unwrap()
    }

    fn bin(&mut self, b: BinaryOp, x: NodeId, y: NodeId) -> NodeId {
        self.op(Op::Binary(b), &[x, y])
    }

    fn c(&mut self, v: f64) -> NodeId {
        self.p.graph.constant(v)
    }

    fn size(&mut self, name: &str) -> NodeId {
        let d = self.dim(name);
        self.op(Op::DimSize(d), &[])
    }

    fn sum(&mut self, x: NodeId) -> NodeId {
        self.op(Op::Sum { axis: None }, &[x])
    }

    fn sumsq(&mut self, x: NodeId) -> NodeId {
        let two = self.c(2.0);
        let sq = self.bin(BinaryOp::Pow, x, two);
        self.sum(sq)
    }

    fn minimize(&mut self, f: NodeId) {
        self.p.objective = Some(Objective {
            sense: Sense::Minimize,
            node: f,
        });
    }
}

/// `0.5 / n * sumsq(X - X @ W)`; returns the builder and the objective node.
fn least_squares() -> (Builder, NodeId) {
    let mut b = Builder::new(&["n", "d"]);
    let (n, d) = (b.dim("n"), b.dim("d"));
    let x = b.input("X", InputKind::Data, vec![n, d]);
    let w = b.input("W", InputKind::Var, vec![d, d]);
    let xw = b.op(Op::MatMul, &[x, w]);
    let r = b.bin(BinaryOp::Sub, x, xw);
    let half = b.c(0.5);
    let nn = b.size("n");
    let scale = b.bin(BinaryOp::Div, half, nn);
    let ss = b.sumsq(r);
    let f = b.bin(BinaryOp::Mul, scale, ss);
    b.minimize(f);
    (b, f)
}

/// The least-squares objective with its gradient by autodiff: (program, [f, ∇_W f]).
fn least_squares_with_gradient() -> (Program, Vec<NodeId>) {
    let (mut b, f) = least_squares();
    let w = b.p.input_by_name("W").unwrap();
    let g = gradient(&mut b.p, f, &[w]).unwrap();
    (b.p, vec![f, g[0]])
}

/// The same gradient written by hand: (1/n) Xᵀ (X W − X).
fn least_squares_hand_gradient() -> (Program, Vec<NodeId>) {
    let (mut b, f) = least_squares();
    let (x, w) = (b.p.input_nodes[0], b.p.input_nodes[1]);
    let xw = b.op(Op::MatMul, &[x, w]);
    let r = b.bin(BinaryOp::Sub, xw, x);
    let xt = b.op(Op::Transpose, &[x]);
    let g = b.op(Op::MatMul, &[xt, r]);
    let one = b.c(1.0);
    let nn = b.size("n");
    let inv_n = b.bin(BinaryOp::Div, one, nn);
    let g = b.bin(BinaryOp::Mul, inv_n, g);
    (b.p, vec![f, g])
}

/// DAGMA-like: 0.5/n‖X − XW‖² + λ·sum|W| − logdet(s·I − W∘W) + d·log s, and its gradient.
fn dagma() -> (Program, Vec<NodeId>) {
    let (mut b, lsq) = least_squares();
    let d = b.dim("d");
    let w = b.p.input_nodes[1];
    let lambda = b.input("lambda", InputKind::Param, vec![]);
    let s = b.input("s", InputKind::Param, vec![]);
    let absw = b.op(Op::Unary(UnaryOp::Abs), &[w]);
    let l1 = b.sum(absw);
    let reg = b.bin(BinaryOp::Mul, lambda, l1);
    let eye = b.op(Op::Eye(d), &[]);
    let si = b.bin(BinaryOp::Mul, s, eye);
    let ww = b.bin(BinaryOp::Mul, w, w);
    let m = b.bin(BinaryOp::Sub, si, ww);
    let ld = b.op(Op::LogDet, &[m]);
    let dd = b.size("d");
    let logs = b.op(Op::Unary(UnaryOp::Log), &[s]);
    let dlogs = b.bin(BinaryOp::Mul, dd, logs);
    let h = b.bin(BinaryOp::Sub, dlogs, ld);
    let f1 = b.bin(BinaryOp::Add, lsq, reg);
    let f = b.bin(BinaryOp::Add, f1, h);
    b.minimize(f);
    let wid = b.p.input_by_name("W").unwrap();
    let g = gradient(&mut b.p, f, &[wid]).unwrap();
    (b.p, vec![f, g[0]])
}

fn run(p: &Program, roots: &[NodeId], dims: Vec<u64>) -> Simplified {
    let s = simplify(p, roots, &CostModel::new(dims)).unwrap();
    assert_eq!(verify(&s.program), Vec::<String>::new());
    s
}

// ---------- a small dense evaluator for the numeric checks ----------

#[derive(Clone, Debug)]
struct Tensor {
    shape: Vec<usize>,
    data: Vec<f64>,
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// `x` broadcast (numpy rules) to `shape`.
fn broadcast(x: &Tensor, shape: &[usize]) -> Tensor {
    let offset = shape.len() - x.shape.len();
    let xs = strides(&x.shape);
    let n: usize = shape.iter().product();
    let out_strides = strides(shape);
    let data = (0..n)
        .map(|flat| {
            let mut src = 0;
            for (axis, &st) in out_strides.iter().enumerate() {
                let i = flat / st % shape[axis];
                if axis >= offset && x.shape[axis - offset] != 1 {
                    src += i * xs[axis - offset];
                }
            }
            x.data[src]
        })
        .collect();
    Tensor {
        shape: shape.to_vec(),
        data,
    }
}

fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    let (m, k) = if a.shape.len() == 2 {
        (a.shape[0], a.shape[1])
    } else {
        (1, a.shape[0])
    };
    let n = if b.shape.len() == 2 { b.shape[1] } else { 1 };
    let mut data = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            data[i * n + j] = (0..k).map(|l| a.data[i * k + l] * b.data[l * n + j]).sum();
        }
    }
    let mut shape = a.shape[..a.shape.len() - 1].to_vec();
    shape.extend_from_slice(&b.shape[1..]);
    Tensor { shape, data }
}

fn eval(p: &Program, roots: &[NodeId], inputs: &[Tensor], dims: &[usize]) -> Vec<Tensor> {
    let size = |d: Dim| (d.offset + d.sym.map_or(0, |s| dims[s.0 as usize] as i64)) as usize;
    let mut vals: Vec<Tensor> = Vec::new();
    for (_, node) in p.graph.nodes() {
        let a = |i: usize| &vals[node.args[i].0 as usize];
        let shape: Vec<usize> = node.shape.iter().map(|&d| size(d)).collect();
        let scalar = |v: f64| Tensor {
            shape: vec![],
            data: vec![v],
        };
        let map = |x: &Tensor, f: &dyn Fn(f64) -> f64| Tensor {
            shape: x.shape.clone(),
            data: x.data.iter().map(|&v| f(v)).collect(),
        };
        let v = match &node.op {
            Op::Input(i) => inputs[i.0 as usize].clone(),
            Op::Const(c) => scalar(*c),
            Op::DimSize(d) => scalar(size(*d) as f64),
            Op::Unary(u) => {
                let f: fn(f64) -> f64 = match u {
                    UnaryOp::Neg => |x| -x,
                    UnaryOp::Exp => f64::exp,
                    UnaryOp::Log => f64::ln,
                    UnaryOp::Abs => f64::abs,
                    UnaryOp::Sign => |x| if x == 0.0 { 0.0 } else { x.signum() },
                    other => panic!("evaluator lacks {other:?}"),
                };
                map(a(0), &f)
            }
            Op::Binary(bop) => {
                let (x, y) = (broadcast(a(0), &shape), broadcast(a(1), &shape));
                let f = |u: f64, v: f64| match bop {
                    BinaryOp::Add => u + v,
                    BinaryOp::Sub => u - v,
                    BinaryOp::Mul => u * v,
                    BinaryOp::Div => u / v,
                    BinaryOp::Pow => u.powf(v),
                    BinaryOp::Max => u.max(v),
                    BinaryOp::Min => u.min(v),
                };
                Tensor {
                    shape: shape.clone(),
                    data: x.data.iter().zip(&y.data).map(|(&u, &v)| f(u, v)).collect(),
                }
            }
            Op::Sum { axis: None } | Op::SumTo(_) if shape.is_empty() => {
                scalar(a(0).data.iter().sum())
            }
            Op::Sum { axis: Some(ax) } => {
                let x = a(0);
                let (rows, cols) = (x.shape[0], x.shape[1]);
                let data = if *ax == 0 {
                    (0..cols)
                        .map(|j| (0..rows).map(|i| x.data[i * cols + j]).sum())
                        .collect()
                } else {
                    (0..rows)
                        .map(|i| x.data[i * cols..(i + 1) * cols].iter().sum())
                        .collect()
                };
                Tensor {
                    shape: shape.clone(),
                    data,
                }
            }
            Op::SumTo(_) if shape == a(0).shape => a(0).clone(),
            Op::MatMul => matmul(a(0), a(1)),
            Op::Transpose => {
                let x = a(0);
                let (r, c) = (x.shape[0], x.shape[1]);
                let data = (0..c * r).map(|f| x.data[(f % r) * c + f / r]).collect();
                Tensor {
                    shape: shape.clone(),
                    data,
                }
            }
            Op::Eye(_) => {
                let n = shape[0];
                let data = (0..n * n)
                    .map(|f| if f / n == f % n { 1.0 } else { 0.0 })
                    .collect();
                Tensor {
                    shape: shape.clone(),
                    data,
                }
            }
            Op::Trace => {
                let x = a(0);
                let n = x.shape[0];
                scalar((0..n).map(|i| x.data[i * n + i]).sum())
            }
            Op::BroadcastTo(_) => broadcast(a(0), &shape),
            other => panic!("evaluator lacks {other:?}"),
        };
        assert_eq!(v.shape, shape, "evaluator shape for {:?}", node.op);
        vals.push(v);
    }
    roots.iter().map(|r| vals[r.0 as usize].clone()).collect()
}

/// Deterministic pseudo-random values in [-1, 1).
fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    Tensor {
        shape: shape.to_vec(),
        data,
    }
}

fn assert_close(a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape, b.shape);
    let scale = a.data.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
    for (x, y) in a.data.iter().zip(&b.data) {
        assert!((x - y).abs() <= 1e-10 * scale, "{x} vs {y}");
    }
}

fn lsq_inputs(n: usize, d: usize) -> Vec<Tensor> {
    vec![random(&[n, d], 1), random(&[d, d], 2)]
}

// ---------- tests ----------

#[test]
fn least_squares_per_iteration_flops_drop_to_d_cubed() {
    let (p, roots) = least_squares_with_gradient();
    let dims = vec![1000, 100];
    let s = run(&p, &roots, dims.clone());
    let (setup0, iter0) = flops(&p, &roots, &dims);
    let (setup1, iter1) = flops(&s.program, &s.roots, &dims);
    println!(
        "least squares + gradient: per-iteration {iter0:.3e} -> {iter1:.3e} (x{:.1}), setup {setup0:.3e} -> {setup1:.3e}, e-graph {} nodes / {} classes, {} iterations ({})",
        iter0 / iter1,
        s.egraph_nodes,
        s.egraph_classes,
        s.iterations,
        s.stop_reason
    );
    println!("rules fired: {:?}", s.rules_fired);
    println!("{}", print_program(&s.program));
    assert!(iter1 * 10.0 <= iter0, "{iter1} vs {iter0}");
    // O(d³): a few d×d products per iteration, nothing of size n.
    assert!(iter1 <= 5.0 * 2.0 * 100f64.powi(3), "{iter1}");
    // Σ = XᵀX (a d×d product over n) is computed once, in setup.
    let plan = stage(&s.program, &s.roots);
    let g = &s.program.graph;
    let d = Dim::sym(DimId(1));
    let gram = plan.setup.iter().find(|&&id| {
        let node = g.node(id);
        node.op == Op::MatMul && node.shape == vec![d, d]
    });
    assert!(gram.is_some(), "no d×d product in setup");
    assert!(plan.handoff.contains(gram.unwrap()));
    assert!(plan
        .per_iteration
        .iter()
        .all(|&id| !g.node(id).shape.contains(&Dim::sym(DimId(0)))));
}

#[test]
fn least_squares_simplified_matches_original_numerically() {
    let (p, roots) = least_squares_with_gradient();
    let s = run(&p, &roots, vec![1000, 100]);
    let (n, d) = (7, 3);
    let inputs = lsq_inputs(n, d);
    let before = eval(&p, &roots, &inputs, &[n, d]);
    let after = eval(&s.program, &s.roots, &inputs, &[n, d]);
    for (x, y) in before.iter().zip(&after) {
        assert_close(x, y);
    }
    // The gradient is (1/n) Xᵀ(XW − X), computed independently.
    let (x, w) = (&inputs[0], &inputs[1]);
    let xw = matmul(x, w);
    let mut expected = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            expected[i * d + j] = (0..n)
                .map(|k| x.data[k * d + i] * (xw.data[k * d + j] - x.data[k * d + j]))
                .sum::<f64>()
                / n as f64;
        }
    }
    assert_close(
        &after[1],
        &Tensor {
            shape: vec![d, d],
            data: expected,
        },
    );
}

#[test]
fn hand_written_gradient_simplifies_like_autodiff_gradient() {
    let (p, roots) = least_squares_hand_gradient();
    let dims = vec![1000, 100];
    let s = run(&p, &roots, dims.clone());
    let (_, iter0) = flops(&p, &roots, &dims);
    let (_, iter1) = flops(&s.program, &s.roots, &dims);
    assert!(iter1 * 10.0 <= iter0, "{iter1} vs {iter0}");
    let inputs = lsq_inputs(5, 4);
    let before = eval(&p, &roots, &inputs, &[5, 4]);
    let after = eval(&s.program, &s.roots, &inputs, &[5, 4]);
    for (x, y) in before.iter().zip(&after) {
        assert_close(x, y);
    }
}

#[test]
fn vector_least_squares_hoists_gram_and_xty() {
    // 0.5 * sumsq(X @ w - y)
    let mut b = Builder::new(&["n", "d"]);
    let (n, d) = (b.dim("n"), b.dim("d"));
    let x = b.input("X", InputKind::Data, vec![n, d]);
    let y = b.input("y", InputKind::Data, vec![n]);
    let w = b.input("w", InputKind::Var, vec![d]);
    let xw = b.op(Op::MatMul, &[x, w]);
    let r = b.bin(BinaryOp::Sub, xw, y);
    let half = b.c(0.5);
    let ss = b.sumsq(r);
    let f = b.bin(BinaryOp::Mul, half, ss);
    b.minimize(f);
    let wid = b.p.input_by_name("w").unwrap();
    let g = gradient(&mut b.p, f, &[wid]).unwrap();
    let roots = vec![f, g[0]];
    let dims = vec![1000, 10];
    let s = run(&b.p, &roots, dims.clone());
    let (_, iter0) = flops(&b.p, &roots, &dims);
    let (_, iter1) = flops(&s.program, &s.roots, &dims);
    println!(
        "vector least squares: per-iteration {iter0:.3e} -> {iter1:.3e}, rules {:?}",
        s.rules_fired
    );
    println!("{}\n{}", print_program(&b.p), print_program(&s.program));
    assert!(iter1 * 10.0 <= iter0, "{iter1} vs {iter0}");
    let inputs = vec![random(&[6, 3], 3), random(&[6], 4), random(&[3], 5)];
    let before = eval(&b.p, &roots, &inputs, &[6, 3]);
    let after = eval(&s.program, &s.roots, &inputs, &[6, 3]);
    for (x, y) in before.iter().zip(&after) {
        assert_close(x, y);
    }
}

#[test]
fn scalar_constants_fold() {
    let mut b = Builder::new(&["d"]);
    let d = b.dim("d");
    let w = b.input("w", InputKind::Var, vec![d]);
    let two = b.c(2.0);
    let three = b.c(3.0);
    let six = b.bin(BinaryOp::Mul, two, three);
    let one = b.c(1.0);
    let seven = b.bin(BinaryOp::Add, six, one);
    let scaled = b.bin(BinaryOp::Mul, seven, w);
    let f = b.sum(scaled);
    b.minimize(f);
    let s = run(&b.p, &[f], vec![10]);
    insta::assert_snapshot!("constant_folding", print_program(&s.program));
}

#[test]
fn transposes_and_traces_simplify() {
    // trace((Aᵀ)ᵀ @ B) + sum((A @ B)ᵀ) with A data, B var.
    let mut b = Builder::new(&["m", "k"]);
    let (m, k) = (b.dim("m"), b.dim("k"));
    let a = b.input("A", InputKind::Data, vec![m, k]);
    let bb = b.input("B", InputKind::Var, vec![k, m]);
    let at = b.op(Op::Transpose, &[a]);
    let att = b.op(Op::Transpose, &[at]);
    let prod = b.op(Op::MatMul, &[att, bb]);
    let tr = b.op(Op::Trace, &[prod]);
    let abt = b.op(Op::Transpose, &[prod]);
    let total = b.sum(abt);
    let f = b.bin(BinaryOp::Add, tr, total);
    b.minimize(f);
    let s = run(&b.p, &[f], vec![50, 40]);
    insta::assert_snapshot!("transposes_and_traces", print_program(&s.program));
    let inputs = vec![random(&[4, 3], 6), random(&[3, 4], 7)];
    let before = eval(&b.p, &[f], &inputs, &[4, 3]);
    let after = eval(&s.program, &s.roots, &inputs, &[4, 3]);
    assert_close(&before[0], &after[0]);
}

#[test]
fn least_squares_snapshot() {
    let (p, roots) = least_squares_with_gradient();
    let s = run(&p, &roots, vec![1000, 100]);
    insta::assert_snapshot!("least_squares_with_gradient", print_program(&s.program));
}

/// The augmented Lagrangian's NOTEARS terms ρ/2·h² + α·h, h = trace(expm(W∘W)) − d: the
/// gradient's Fréchet derivative in the direction (ρh + α)·I becomes the transpose of the
/// value's exponential (rules/matfn.rs), so one `expm` and no `expm_frechet` remain.
#[test]
fn trace_of_expm_gradient_snapshot() {
    let mut b = Builder::new(&["d"]);
    let d = b.dim("d");
    let w = b.input("W", InputKind::Var, vec![d, d]);
    let rho = b.input("rho", InputKind::Param, vec![]);
    let alpha = b.input("alpha", InputKind::Param, vec![]);
    let s = b.bin(BinaryOp::Mul, w, w);
    let e = b.op(Op::Expm, &[s]);
    let t = b.op(Op::Trace, &[e]);
    let size = b.size("d");
    let h = b.bin(BinaryOp::Sub, t, size);
    let h2 = b.bin(BinaryOp::Mul, h, h);
    let half = b.c(0.5);
    let scaled = b.bin(BinaryOp::Mul, half, rho);
    let penalty = b.bin(BinaryOp::Mul, scaled, h2);
    let dual = b.bin(BinaryOp::Mul, alpha, h);
    let f = b.bin(BinaryOp::Add, penalty, dual);
    b.minimize(f);
    let wid = b.p.input_by_name("W").unwrap();
    let g = gradient(&mut b.p, f, &[wid]).unwrap();
    let s = run(&b.p, &[f, g[0]], vec![20]);
    let count = |op: Op| s.program.graph.nodes().filter(|(_, n)| n.op == op).count();
    assert_eq!((count(Op::Expm), count(Op::ExpmFrechet)), (1, 0));
    insta::assert_snapshot!("trace_of_expm_gradient", print_program(&s.program));
}

#[test]
fn dagma_objective_simplifies_quickly_and_verifies() {
    let (p, roots) = dagma();
    let dims = vec![1000, 20];
    let s = run(&p, &roots, dims.clone());
    let (_, iter0) = flops(&p, &roots, &dims);
    let (_, iter1) = flops(&s.program, &s.roots, &dims);
    println!(
        "dagma: {} IR nodes -> {}, e-graph {} nodes / {} classes, {} iterations ({}), per-iteration {iter0:.3e} -> {iter1:.3e}",
        p.graph.len(),
        s.program.graph.len(),
        s.egraph_nodes,
        s.egraph_classes,
        s.iterations,
        s.stop_reason
    );
    println!("{}\n{}", print_program(&p), print_program(&s.program));
    assert!(iter1 < iter0);
    assert!(s.program.objective.is_some());
    assert_eq!(s.program.inputs.len(), p.inputs.len());
}

#[test]
fn staging_splits_setup_and_per_iteration_work() {
    let (p, roots) = least_squares_with_gradient();
    let plan = stage(&p, &roots);
    let g = &p.graph;
    assert!(plan
        .setup
        .iter()
        .all(|&id| g.stage(id) <= optc_compiler::ir::Stage::Param));
    assert!(plan
        .per_iteration
        .iter()
        .all(|&id| g.stage(id) == optc_compiler::ir::Stage::Var));
    // Unsimplified, the data matrix X itself is what setup hands over to every iteration.
    assert!(plan.handoff.contains(&p.input_nodes[0]));
    assert_eq!(plan.setup.len() + plan.per_iteration.len(), {
        let mut all = plan.setup.clone();
        all.extend(&plan.per_iteration);
        all.sort();
        all.dedup();
        all.len()
    });
}

#[test]
fn bad_roots_are_reported() {
    let (p, _) = least_squares();
    let err = simplify(&p.p, &[NodeId(9999)], &CostModel::new(vec![])).unwrap_err();
    assert!(err.message.contains("not a node"));
}

#[test]
fn least_squares_hessian_vector_product_is_staged() {
    let (mut b, f) = least_squares();
    let w = b.p.input_by_name("W").unwrap();
    let h = optc_compiler::autodiff::hvp(&mut b.p, f, &[w]).unwrap();
    let roots = vec![f, h.gradient[0], h.hvp[0]];
    let dims = vec![1000, 100];
    let s = run(&b.p, &roots, dims.clone());
    let (_, iter0) = flops(&b.p, &roots, &dims);
    let (_, iter1) = flops(&s.program, &s.roots, &dims);
    println!("least squares + gradient + HVP: per-iteration {iter0:.3e} -> {iter1:.3e}");
    assert!(iter1 * 10.0 <= iter0, "{iter1} vs {iter0}");
    let (n, d) = (6, 3);
    let mut inputs = lsq_inputs(n, d);
    inputs.push(random(&[d, d], 8));
    let before = eval(&b.p, &roots, &inputs, &[n, d]);
    let after = eval(&s.program, &s.roots, &inputs, &[n, d]);
    for (x, y) in before.iter().zip(&after) {
        assert_close(x, y);
    }
}

/// Many small identities (exp/log, traces, transposes, scalars, sums of products), checked
/// numerically against the unsimplified program.
#[test]
fn assorted_identities_keep_values() {
    let mut b = Builder::new(&["m", "k"]);
    let (m, k) = (b.dim("m"), b.dim("k"));
    let a = b.input("A", InputKind::Data, vec![m, k]);
    let c = b.input("C", InputKind::Var, vec![k, m]);
    let x = b.input("x", InputKind::Var, vec![k]);
    let s = b.input("s", InputKind::Param, vec![]);
    let ex = b.op(Op::Unary(UnaryOp::Exp), &[x]);
    let e2 = b.bin(BinaryOp::Mul, ex, ex);
    let lx = b.op(Op::Unary(UnaryOp::Log), &[e2]);
    let t1 = b.sum(lx); // sum(log(exp x · exp x)) = 2 sum(x)
    let ac = b.op(Op::MatMul, &[a, c]);
    let sac = b.bin(BinaryOp::Mul, s, ac);
    let act = b.op(Op::Transpose, &[ac]);
    let eye = b.op(Op::Eye(m), &[]);
    let sum_in = b.bin(BinaryOp::Add, sac, eye);
    let t2 = b.op(Op::Trace, &[sum_in]); // s·trace(AC) + m
    let zero = b.c(0.0);
    let one = b.c(1.0);
    let ct = b.op(Op::Transpose, &[c]);
    let ctp = b.bin(BinaryOp::Add, ct, zero);
    let ctp = b.bin(BinaryOp::Mul, ctp, one);
    let diff = b.bin(BinaryOp::Sub, a, ctp);
    let dt = b.op(Op::Transpose, &[diff]);
    let prod = b.op(Op::MatMul, &[dt, act]);
    let t3 = b.sum(prod); // sum((A − Cᵀ)ᵀ (AC)ᵀ)
    let negx = b.op(Op::Unary(UnaryOp::Neg), &[x]);
    let nn = b.op(Op::Unary(UnaryOp::Neg), &[negx]);
    let ax = b.op(Op::MatMul, &[a, nn]);
    let t4 = b.op(Op::MatMul, &[ax, ax]); // ‖A x‖²
    let two = b.c(2.0);
    let half = b.bin(BinaryOp::Div, t4, two);
    let f1 = b.bin(BinaryOp::Add, t1, t2);
    let f2 = b.bin(BinaryOp::Add, t3, half);
    let f = b.bin(BinaryOp::Add, f1, f2);
    b.minimize(f);
    let vars: Vec<InputId> = vec![
        b.p.input_by_name("C").unwrap(),
        b.p.input_by_name("x").unwrap(),
    ];
    let g = gradient(&mut b.p, f, &vars).unwrap();
    let roots = vec![f, g[0], g[1]];
    let s = run(&b.p, &roots, vec![40, 30]);
    let dims = [4, 3];
    let inputs = vec![
        random(&[4, 3], 11),
        random(&[3, 4], 12),
        random(&[3], 13),
        random(&[], 14),
    ];
    let before = eval(&b.p, &roots, &inputs, &dims);
    let after = eval(&s.program, &s.roots, &inputs, &dims);
    for (x, y) in before.iter().zip(&after) {
        assert_close(x, y);
    }
}

/// Random well-shaped expressions over a data matrix, variables and a parameter: the simplified
/// program computes the same values (a soundness check of the rule set as a whole).
#[test]
fn random_expressions_keep_values() {
    for seed in 0..8u64 {
        let mut b = Builder::new(&["m", "k"]);
        let (m, k) = (b.dim("m"), b.dim("k"));
        let mut pool = vec![
            b.input("A", InputKind::Data, vec![m, k]),
            b.input("B", InputKind::Var, vec![k, m]),
            b.input("w", InputKind::Var, vec![k]),
            b.input("s", InputKind::Param, vec![]),
        ];
        let two = b.c(2.0);
        pool.push(b.op(Op::Eye(k), &[]));
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..30 {
            let (x, y) = (pool[next(pool.len())], pool[next(pool.len())]);
            let added = match next(9) {
                0 => b.p.graph.add(Op::Binary(BinaryOp::Add), vec![x, y]),
                1 => b.p.graph.add(Op::Binary(BinaryOp::Sub), vec![x, y]),
                2 => b.p.graph.add(Op::Binary(BinaryOp::Mul), vec![x, y]),
                3 | 4 => b.p.graph.add(Op::MatMul, vec![x, y]),
                5 => b.p.graph.add(Op::Transpose, vec![x]),
                6 => b.p.graph.add(Op::Unary(UnaryOp::Neg), vec![x]),
                7 => b.p.graph.add(Op::Binary(BinaryOp::Pow), vec![x, two]),
                _ => b.p.graph.add(Op::Trace, vec![x]),
            };
            if let Ok(id) = added {
                pool.push(id);
            }
        }
        let mut f = b.c(0.0);
        for &node in &pool[5..] {
            let total = b.sum(node);
            f = b.bin(BinaryOp::Add, f, total);
        }
        b.minimize(f);
        let s = run(&b.p, &[f], vec![30, 20]);
        let dims = [4, 3];
        let inputs = vec![
            random(&[4, 3], seed),
            random(&[3, 4], seed + 100),
            random(&[3], seed + 200),
            random(&[], seed + 300),
        ];
        let before = eval(&b.p, &[f], &inputs, &dims);
        let after = eval(&s.program, &s.roots, &inputs, &dims);
        assert_close(&before[0], &after[0]);
    }
}

/// The `.opt` front end's DAGMA and NOTEARS programs: objective and constraint with their
/// gradients simplify to verified programs whose per-iteration work no longer scales with n.
#[test]
fn lowered_dag_programs_are_staged() {
    for file in ["dagma_full.opt", "sema_notears.opt"] {
        let (p, roots) = common::objective_and_constraint_gradients(file);
        let n = p.dim_by_name("n").unwrap().0 as usize;
        let mut dims = vec![20; p.dims.len()];
        dims[n] = 1000;
        let s = run(&p, &roots, dims.clone());
        let (_, iter0) = flops(&p, &roots, &dims);
        let (setup1, iter1) = flops(&s.program, &s.roots, &dims);
        println!(
            "{file}: {} IR nodes -> {}, e-graph {} nodes, {} iterations ({}), per-iteration {iter0:.3e} -> {iter1:.3e}, setup {setup1:.3e}",
            p.graph.len(),
            s.program.graph.len(),
            s.egraph_nodes,
            s.iterations,
            s.stop_reason
        );
        let n_dim = Dim::sym(optc_compiler::ir::DimId(n as u32));
        let plan = stage(&s.program, &s.roots);
        let g = &s.program.graph;
        assert!(
            plan.per_iteration
                .iter()
                .all(|&id| !g.node(id).shape.contains(&n_dim)),
            "{file}: per-iteration work still has an n axis:\n{}",
            print_program(&s.program)
        );
        assert!(iter1 < iter0);
    }
}
