//! The IR that symbolic differentiation appends, for hand-built programs (snapshots), and its
//! error cases. Every pass must leave `ir::verify` clean.

use optc_compiler::autodiff::{gradient, hvp, mixed_vjp};
use optc_compiler::ir::{
    print_program, verify, BinaryOp, Dim, DimId, DimInfo, ElemType, InputId, InputKind, NodeId, Op,
    Program, Shape, Stage, Subproblem, SubproblemId, UnaryOp,
};

/// A program with dims `n, d` and the given inputs, built node by node.
struct Model {
    p: Program,
}

impl Model {
    fn new() -> Model {
        let mut p = Program::default();
        for name in ["n", "d"] {
            p.dims.push(DimInfo {
                name: name.into(),
                default: None,
                span: None,
            });
        }
        Model { p }
    }

    fn n() -> Dim {
        Dim::sym(DimId(0))
    }

    fn d() -> Dim {
        Dim::sym(DimId(1))
    }

    fn input(&mut self, name: &str, kind: InputKind, shape: Shape) -> (InputId, NodeId) {
        let (id, node) = self.p.add_input(name, kind, ElemType::Real, shape);
        (id, node)
    }

    fn op(&mut self, op: Op, args: &[NodeId]) -> NodeId {
        self.p.graph.add(op, args.to_vec()).expect("well-shaped")
    }

    fn un(&mut self, u: UnaryOp, x: NodeId) -> NodeId {
        self.op(Op::Unary(u), &[x])
    }

    fn bin(&mut self, b: BinaryOp, x: NodeId, y: NodeId) -> NodeId {
        self.op(Op::Binary(b), &[x, y])
    }

    fn sum(&mut self, x: NodeId) -> NodeId {
        self.op(Op::Sum { axis: None }, &[x])
    }

    fn c(&mut self, v: f64) -> NodeId {
        self.p.graph.constant(v)
    }
}

fn assert_verified(p: &Program) {
    let problems = verify(p);
    assert!(problems.is_empty(), "verifier: {problems:?}");
}

/// 0.5/n * sumsq(X - X @ W) + lambda * norm1(W).
fn least_squares_l1() -> (Model, NodeId, InputId) {
    let mut m = Model::new();
    let (_, x) = m.input("X", InputKind::Data, vec![Model::n(), Model::d()]);
    let (_, lambda) = m.input("lambda", InputKind::Param, Vec::new());
    let (w_id, w) = m.input("W", InputKind::Var, vec![Model::d(), Model::d()]);
    let xw = m.op(Op::MatMul, &[x, w]);
    let r = m.bin(BinaryOp::Sub, x, xw);
    let two = m.c(2.0);
    let r2 = m.bin(BinaryOp::Pow, r, two);
    let sumsq = m.sum(r2);
    let half = m.c(0.5);
    let n = m.op(Op::DimSize(Model::n()), &[]);
    let scale = m.bin(BinaryOp::Div, half, n);
    let loss = m.bin(BinaryOp::Mul, scale, sumsq);
    let abs = m.un(UnaryOp::Abs, w);
    let l1 = m.sum(abs);
    let reg = m.bin(BinaryOp::Mul, lambda, l1);
    let f = m.bin(BinaryOp::Add, loss, reg);
    (m, f, w_id)
}

/// -logdet(s I - W .* W) + d log(s), with s = 1.
fn dagma_logdet() -> (Model, NodeId, InputId) {
    let mut m = Model::new();
    let (w_id, w) = m.input("W", InputKind::Var, vec![Model::d(), Model::d()]);
    let s = m.c(1.0);
    let eye = m.op(Op::Eye(Model::d()), &[]);
    let si = m.bin(BinaryOp::Mul, s, eye);
    let ww = m.bin(BinaryOp::Mul, w, w);
    let mat = m.bin(BinaryOp::Sub, si, ww);
    let ld = m.op(Op::LogDet, &[mat]);
    let neg = m.un(UnaryOp::Neg, ld);
    let d = m.op(Op::DimSize(Model::d()), &[]);
    let logs = m.un(UnaryOp::Log, s);
    let shift = m.bin(BinaryOp::Mul, d, logs);
    let f = m.bin(BinaryOp::Add, neg, shift);
    (m, f, w_id)
}

#[test]
fn least_squares_l1_gradient() {
    let (mut m, f, w) = least_squares_l1();
    let grads = gradient(&mut m.p, f, &[w]).unwrap();
    assert_verified(&m.p);
    assert_eq!(m.p.graph.shape(grads[0]), &vec![Model::d(), Model::d()]);
    insta::assert_snapshot!(format!(
        "{}gradient W = {}\n",
        print_program(&m.p),
        grads[0]
    ));
}

#[test]
fn dagma_logdet_gradient() {
    let (mut m, f, w) = dagma_logdet();
    let grads = gradient(&mut m.p, f, &[w]).unwrap();
    assert_verified(&m.p);
    insta::assert_snapshot!(format!(
        "{}gradient W = {}\n",
        print_program(&m.p),
        grads[0]
    ));
}

#[test]
fn notears_expm_hvp() {
    let mut m = Model::new();
    let (w_id, w) = m.input("W", InputKind::Var, vec![Model::d(), Model::d()]);
    let ww = m.bin(BinaryOp::Mul, w, w);
    let e = m.op(Op::Expm, &[ww]);
    let tr = m.op(Op::Trace, &[e]);
    let d = m.op(Op::DimSize(Model::d()), &[]);
    let f = m.bin(BinaryOp::Sub, tr, d);
    let nodes = hvp(&mut m.p, f, &[w_id]).unwrap();
    assert_verified(&m.p);
    assert_eq!(m.p.input(nodes.directions[0]).kind, InputKind::Direction);
    assert_eq!(m.p.graph.shape(nodes.hvp[0]), &vec![Model::d(), Model::d()]);
    insta::assert_snapshot!(format!(
        "{}gradient W = {}\nhvp W = {}\n",
        print_program(&m.p),
        nodes.gradient[0],
        nodes.hvp[0]
    ));
}

#[test]
fn poly_acyclic_matpow_hvp() {
    // tr((W .* W)^d): the gradient is one MatPowFrechet at the transpose (the trace adjoint is
    // constant), the HVP adds one MatPowFrechet2.
    let mut m = Model::new();
    let (w_id, w) = m.input("W", InputKind::Var, vec![Model::d(), Model::d()]);
    let ww = m.bin(BinaryOp::Mul, w, w);
    let power = m.op(Op::MatPow(Model::d()), &[ww]);
    let f = m.op(Op::Trace, &[power]);
    let nodes = hvp(&mut m.p, f, &[w_id]).unwrap();
    assert_verified(&m.p);
    assert_eq!(m.p.graph.shape(nodes.hvp[0]), &vec![Model::d(), Model::d()]);
    let ops = |op: fn(&Op) -> bool| m.p.graph.nodes().filter(|(_, n)| op(&n.op)).count();
    assert_eq!(ops(|o| matches!(o, Op::MatPowFrechet(_))), 1);
    assert_eq!(ops(|o| matches!(o, Op::MatPowFrechet2(_))), 1);
    insta::assert_snapshot!(format!(
        "{}gradient W = {}\nhvp W = {}\n",
        print_program(&m.p),
        nodes.gradient[0],
        nodes.hvp[0]
    ));
}

#[test]
fn third_derivatives_of_matpow_are_rejected() {
    // The gradient of ⟨G, D²(A)[E, F]⟩ in A would need a third derivative.
    let mut m = Model::new();
    let shape = vec![Model::d(), Model::d()];
    let (a_id, a) = m.input("A", InputKind::Var, shape.clone());
    let (_, e) = m.input("E", InputKind::Data, shape.clone());
    let y = m.op(Op::MatPowFrechet2(Dim::fixed(3)), &[a, e, e]);
    let f = m.sum(y);
    let err = gradient(&mut m.p, f, &[a_id]).unwrap_err();
    assert!(err.to_string().contains("third derivatives"), "{err}");
}

#[test]
fn mixed_vjp_differentiates_the_inner_gradient_by_the_parameter() {
    // f = sum(theta .* x^2): ∇ₓf = 2 theta x, ∇_θ⟨∇ₓf, v⟩ = 2 x .* v.
    let mut m = Model::new();
    let (x_id, x) = m.input("x", InputKind::InnerVar, vec![Model::d()]);
    let (theta_id, theta) = m.input("theta", InputKind::Param, vec![Model::d()]);
    let two = m.c(2.0);
    let x2 = m.bin(BinaryOp::Pow, x, two);
    let prod = m.bin(BinaryOp::Mul, theta, x2);
    let f = m.sum(prod);
    let nodes = mixed_vjp(&mut m.p, f, &[x_id], &[theta_id]).unwrap();
    assert_verified(&m.p);
    insta::assert_snapshot!(format!(
        "{}gradient x = {}\nmixed theta = {}\n",
        print_program(&m.p),
        nodes.gradient_x[0],
        nodes.mixed[0]
    ));
}

#[test]
fn hvp_of_every_hessian_free_op_is_zero_shaped() {
    // f linear in W: the gradient is data, the HVP a zero tensor of W's shape.
    let mut m = Model::new();
    let (_, c) = m.input("C", InputKind::Data, vec![Model::d(), Model::d()]);
    let (w_id, w) = m.input("W", InputKind::Var, vec![Model::d(), Model::d()]);
    let prod = m.bin(BinaryOp::Mul, c, w);
    let f = m.sum(prod);
    let nodes = hvp(&mut m.p, f, &[w_id]).unwrap();
    assert_verified(&m.p);
    assert_eq!(nodes.gradient[0], c);
    let zero = &m.p.graph.node(nodes.hvp[0]);
    assert_eq!(zero.shape, vec![Model::d(), Model::d()]);
    assert!(matches!(zero.op, Op::BroadcastTo(_)));
}

#[test]
fn non_differentiable_ops_name_the_op_and_node() {
    let cases: [(Op, &str); 2] = [
        (
            Op::Card,
            "cannot differentiate `card`: a cardinality constraint",
        ),
        (
            Op::NuclearNorm,
            "cannot differentiate `nuclear_norm`: it is handled by its prox",
        ),
    ];
    for (op, expected) in cases {
        let mut m = Model::new();
        let (w_id, w) = m.input("W", InputKind::Var, vec![Model::d(), Model::d()]);
        let y = m.op(op, &[w]);
        let f = m.sum(y);
        let err = gradient(&mut m.p, f, &[w_id]).unwrap_err();
        assert_eq!(err.node, y);
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[test]
fn a_vector_objective_has_no_gradient() {
    let mut m = Model::new();
    let (w_id, w) = m.input("w", InputKind::Var, vec![Model::d()]);
    let err = gradient(&mut m.p, w, &[w_id]).unwrap_err();
    assert!(err.message.contains("scalar"), "{err}");
}

#[test]
fn data_only_subtrees_get_no_adjoints() {
    // sum(w ^ p) with a data exponent: no log(w) node is added.
    let mut m = Model::new();
    let (_, p) = m.input("p", InputKind::Data, Vec::new());
    let (w_id, w) = m.input("w", InputKind::Var, vec![Model::d()]);
    let pow = m.bin(BinaryOp::Pow, w, p);
    let f = m.sum(pow);
    gradient(&mut m.p, f, &[w_id]).unwrap();
    assert_verified(&m.p);
    let has_log =
        m.p.graph
            .nodes()
            .any(|(_, n)| n.op == Op::Unary(UnaryOp::Log));
    assert!(!has_log);
}

#[test]
fn argmin_is_left_to_the_bilevel_solver() {
    // f = sum(argmin_z sumsq(z - theta)) + sum(w .* w): through theta the argmin is an error; with
    // respect to w, whose path avoids the argmin, the gradient is fine.
    let mut m = Model::new();
    let (theta_id, theta) = m.input("theta", InputKind::Var, vec![Model::d()]);
    let (w_id, w) = m.input("w", InputKind::Var, vec![Model::d()]);
    let (z_id, z) = m.input("z", InputKind::InnerVar, vec![Model::d()]);
    let diff = m.bin(BinaryOp::Sub, z, theta);
    let sq = m.bin(BinaryOp::Mul, diff, diff);
    let inner = m.sum(sq);
    m.p.subproblems.push(Subproblem {
        var: z_id,
        objective: inner,
    });
    let z_star =
        m.p.graph
            .argmin(SubproblemId(0), vec![Model::d()], Stage::Var);
    let outer = m.sum(z_star);
    let ww = m.bin(BinaryOp::Mul, w, w);
    let reg = m.sum(ww);
    let f = m.bin(BinaryOp::Add, outer, reg);
    let err = gradient(&mut m.p, f, &[theta_id]).unwrap_err();
    assert_eq!(err.node, z_star);
    assert!(err.message.contains("bilevel"), "{err}");
    gradient(&mut m.p, f, &[w_id]).unwrap();
    assert_verified(&m.p);
}
