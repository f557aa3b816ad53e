//! Every IR op of the reference interpreter against hand-computed values, and its errors.

use ndarray::{arr0, array, ArrayD, IxDyn};
use optc_compiler::diag::Diagnostic;
use optc_compiler::ir::{
    BinaryOp, Dim, DimId, DimInfo, ElemType, InputKind, NodeId, Op, Program, Shape, Stage,
    Subproblem, SubproblemId, UnaryOp,
};
use optc_runtime::interp::{
    eval, eval_all, eval_checked, outer_nodes, Bindings, EvalError, NoSubproblems, SubproblemSolver,
};

/// A program under construction together with the values bound to it.
struct Model {
    p: Program,
    b: Bindings,
}

impl Model {
    fn new() -> Model {
        Model {
            p: Program::default(),
            b: Bindings::default(),
        }
    }

    fn dim(&mut self, name: &str, size: u64) -> DimId {
        self.p.dims.push(DimInfo {
            name: name.into(),
            default: None,
            span: None,
        });
        self.b.dims.push(size);
        DimId(self.p.dims.len() as u32 - 1)
    }

    /// An input of `kind` with a declared shape and (optionally) a bound value.
    fn input(
        &mut self,
        name: &str,
        kind: InputKind,
        shape: Shape,
        value: Option<ArrayD<f64>>,
    ) -> NodeId {
        let (_, node) = self.p.add_input(name, kind, ElemType::Real, shape);
        self.b.inputs.push(value);
        node
    }

    /// A data input whose declared shape is the (fixed) shape of its value.
    fn data(&mut self, name: &str, value: ArrayD<f64>) -> NodeId {
        let shape = value
            .shape()
            .iter()
            .map(|&s| Dim::fixed(s as i64))
            .collect();
        self.input(name, InputKind::Data, shape, Some(value))
    }

    fn c(&mut self, x: f64) -> NodeId {
        self.p.graph.constant(x)
    }

    fn add(&mut self, op: Op, args: Vec<NodeId>) -> NodeId {
        self.p.graph.add(op, args).expect("well-shaped test node")
    }

    fn eval(&self, node: NodeId) -> Result<ArrayD<f64>, EvalError> {
        Ok(eval(&self.p, &self.b, &[node], &mut NoSubproblems)?.remove(0))
    }

    fn value(&self, node: NodeId) -> ArrayD<f64> {
        self.eval(node).expect("evaluation succeeds")
    }
}

fn assert_close(got: &ArrayD<f64>, want: &ArrayD<f64>, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "shape of {got} vs {want}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= tol || (g.is_nan() && w.is_nan()) || g == w,
            "{got} differs from {want}"
        );
    }
}

fn s(x: f64) -> ArrayD<f64> {
    arr0(x).into_dyn()
}

#[test]
fn unary_ops() {
    let mut m = Model::new();
    let x = m.data("x", array![-1.0, 0.0, 2.0].into_dyn());
    let e = std::f64::consts::E;
    let cases: [(UnaryOp, [f64; 3]); 9] = [
        (UnaryOp::Neg, [1.0, 0.0, -2.0]),
        (UnaryOp::Exp, [1.0 / e, 1.0, e * e]),
        (UnaryOp::Log, [f64::NAN, f64::NEG_INFINITY, 2f64.ln()]),
        (UnaryOp::Sqrt, [f64::NAN, 0.0, 2f64.sqrt()]),
        (UnaryOp::Abs, [1.0, 0.0, 2.0]),
        (UnaryOp::Sign, [-1.0, 0.0, 1.0]),
        (
            UnaryOp::Tanh,
            [
                -(e * e - 1.0) / (e * e + 1.0),
                0.0,
                (e.powi(4) - 1.0) / (e.powi(4) + 1.0),
            ],
        ),
        (
            UnaryOp::Sigmoid,
            [1.0 / (1.0 + e), 0.5, 1.0 / (1.0 + e.powi(-2))],
        ),
        (
            UnaryOp::Softplus,
            [(1.0 + 1.0 / e).ln(), 2f64.ln(), (1.0 + e * e).ln()],
        ),
    ];
    for (op, want) in cases {
        let n = m.add(Op::Unary(op), vec![x]);
        assert_close(
            &m.value(n),
            &ArrayD::from_shape_vec(IxDyn(&[3]), want.to_vec()).unwrap(),
            1e-15,
        );
    }
}

#[test]
fn stable_sigmoid_and_softplus_at_extremes() {
    let mut m = Model::new();
    let x = m.data("x", array![-800.0, 800.0].into_dyn());
    let sig = m.add(Op::Unary(UnaryOp::Sigmoid), vec![x]);
    let sp = m.add(Op::Unary(UnaryOp::Softplus), vec![x]);
    assert_close(&m.value(sig), &array![0.0, 1.0].into_dyn(), 0.0);
    assert_close(&m.value(sp), &array![0.0, 800.0].into_dyn(), 0.0);
}

#[test]
fn binary_ops_broadcast_like_numpy() {
    let mut m = Model::new();
    let col = m.data("col", array![[1.0], [2.0]].into_dyn()); // [2, 1]
    let row = m.data("row", array![10.0, 20.0, 30.0].into_dyn()); // [3]
    let add = m.add(Op::Binary(BinaryOp::Add), vec![col, row]);
    assert_close(
        &m.value(add),
        &array![[11.0, 21.0, 31.0], [12.0, 22.0, 32.0]].into_dyn(),
        0.0,
    );
    let sub = m.add(Op::Binary(BinaryOp::Sub), vec![row, col]);
    assert_close(
        &m.value(sub),
        &array![[9.0, 19.0, 29.0], [8.0, 18.0, 28.0]].into_dyn(),
        0.0,
    );
    let two = m.c(2.0);
    let mul = m.add(Op::Binary(BinaryOp::Mul), vec![two, row]);
    assert_close(&m.value(mul), &array![20.0, 40.0, 60.0].into_dyn(), 0.0);
    let div = m.add(Op::Binary(BinaryOp::Div), vec![row, col]);
    assert_close(
        &m.value(div),
        &array![[10.0, 20.0, 30.0], [5.0, 10.0, 15.0]].into_dyn(),
        0.0,
    );
    let pow = m.add(Op::Binary(BinaryOp::Pow), vec![col, two]);
    assert_close(&m.value(pow), &array![[1.0], [4.0]].into_dyn(), 0.0);
    let zero = m.c(0.0);
    let by_zero = m.add(Op::Binary(BinaryOp::Div), vec![row, zero]);
    assert!(m.value(by_zero).iter().all(|x| *x == f64::INFINITY));
}

#[test]
fn maximum_and_minimum_propagate_nan() {
    let mut m = Model::new();
    let a = m.data("a", array![1.0, f64::NAN, 5.0].into_dyn());
    let b = m.data("b", array![3.0, 0.0, 4.0].into_dyn());
    let max = m.add(Op::Binary(BinaryOp::Max), vec![a, b]);
    let min = m.add(Op::Binary(BinaryOp::Min), vec![a, b]);
    assert_close(&m.value(max), &array![3.0, f64::NAN, 5.0].into_dyn(), 0.0);
    assert_close(&m.value(min), &array![1.0, f64::NAN, 4.0].into_dyn(), 0.0);
}

#[test]
fn reductions_over_each_axis_and_all() {
    let mut m = Model::new();
    let x = m.data("x", array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn());
    let sum0 = m.add(Op::Sum { axis: Some(0) }, vec![x]);
    let sum1 = m.add(Op::Sum { axis: Some(1) }, vec![x]);
    let sum = m.add(Op::Sum { axis: None }, vec![x]);
    assert_close(&m.value(sum0), &array![5.0, 7.0, 9.0].into_dyn(), 0.0);
    assert_close(&m.value(sum1), &array![6.0, 15.0].into_dyn(), 0.0);
    assert_close(&m.value(sum), &s(21.0), 0.0);
    let max0 = m.add(Op::Max { axis: Some(0) }, vec![x]);
    let max1 = m.add(Op::Max { axis: Some(1) }, vec![x]);
    let max = m.add(Op::Max { axis: None }, vec![x]);
    assert_close(&m.value(max0), &array![4.0, 5.0, 6.0].into_dyn(), 0.0);
    assert_close(&m.value(max1), &array![3.0, 6.0].into_dyn(), 0.0);
    assert_close(&m.value(max), &s(6.0), 0.0);
}

#[test]
fn logsumexp_is_exact_and_stable() {
    let mut m = Model::new();
    // Row 0: log(1 + 3) = log 4. Row 1: log(2 e^1000) = 1000 + log 2 (naive form overflows).
    let x = m.data("x", array![[0.0, 3f64.ln()], [1000.0, 1000.0]].into_dyn());
    let rows = m.add(Op::LogSumExp { axis: Some(1) }, vec![x]);
    assert_close(
        &m.value(rows),
        &array![4f64.ln(), 1000.0 + 2f64.ln()].into_dyn(),
        1e-12,
    );
    let cols = m.add(Op::LogSumExp { axis: Some(0) }, vec![x]);
    assert_close(&m.value(cols), &array![1000.0, 1000.0].into_dyn(), 1e-12);
    let all = m.add(Op::LogSumExp { axis: None }, vec![x]);
    assert_close(&m.value(all), &s(1000.0 + 2f64.ln()), 1e-12);
}

#[test]
fn matmul_with_vectors_and_matrices() {
    let mut m = Model::new();
    let a = m.data("A", array![[1.0, 2.0], [3.0, 4.0]].into_dyn());
    let v = m.data("v", array![5.0, 6.0].into_dyn());
    let av = m.add(Op::MatMul, vec![a, v]);
    let va = m.add(Op::MatMul, vec![v, a]);
    let vv = m.add(Op::MatMul, vec![v, v]);
    let aa = m.add(Op::MatMul, vec![a, a]);
    assert_close(&m.value(av), &array![17.0, 39.0].into_dyn(), 0.0);
    assert_close(&m.value(va), &array![23.0, 34.0].into_dyn(), 0.0);
    assert_close(&m.value(vv), &s(61.0), 0.0);
    assert_close(
        &m.value(aa),
        &array![[7.0, 10.0], [15.0, 22.0]].into_dyn(),
        0.0,
    );
}

#[test]
fn matrix_structure_ops() {
    let mut m = Model::new();
    let n = m.dim("n", 3);
    let a = m.data("A", array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn());
    let t = m.add(Op::Transpose, vec![a]);
    assert_close(
        &m.value(t),
        &array![[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]].into_dyn(),
        0.0,
    );
    let eye = m.add(Op::Eye(Dim::sym(n)), vec![]);
    assert_close(
        &m.value(eye),
        &array![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]].into_dyn(),
        0.0,
    );
    let v = m.data("v", array![1.0, -2.0].into_dyn());
    let diag = m.add(Op::Diag, vec![v]);
    assert_close(
        &m.value(diag),
        &array![[1.0, 0.0], [0.0, -2.0]].into_dyn(),
        0.0,
    );
    let sq = m.data("S", array![[1.0, 2.0], [3.0, 4.0]].into_dyn());
    let part = m.add(Op::DiagPart, vec![sq]);
    let trace = m.add(Op::Trace, vec![sq]);
    assert_close(&m.value(part), &array![1.0, 4.0].into_dyn(), 0.0);
    assert_close(&m.value(trace), &s(5.0), 0.0);
}

#[test]
fn expm_closed_forms() {
    let mut m = Model::new();
    // Nilpotent: exp(N) = I + N.
    let nil = m.data("N", array![[0.0, 1.0], [0.0, 0.0]].into_dyn());
    let e_nil = m.add(Op::Expm, vec![nil]);
    assert_close(
        &m.value(e_nil),
        &array![[1.0, 1.0], [0.0, 1.0]].into_dyn(),
        1e-15,
    );
    // Diagonal: elementwise exp of the diagonal.
    let d = m.data("D", array![[1.0, 0.0], [0.0, -2.0]].into_dyn());
    let e_d = m.add(Op::Expm, vec![d]);
    let e = std::f64::consts::E;
    assert_close(
        &m.value(e_d),
        &array![[e, 0.0], [0.0, 1.0 / (e * e)]].into_dyn(),
        1e-14,
    );
    // Rotation generator: exp([[0, −t], [t, 0]]) = [[cos t, −sin t], [sin t, cos t]].
    for t in [0.3, 2.5, 7.0] {
        let g = m.data(&format!("G{t}"), array![[0.0, -t], [t, 0.0]].into_dyn());
        let e_g = m.add(Op::Expm, vec![g]);
        let (c, sn) = (f64::cos(t), f64::sin(t));
        assert_close(&m.value(e_g), &array![[c, -sn], [sn, c]].into_dyn(), 1e-13);
    }
}

#[test]
fn matpow_by_hand() {
    let mut m = Model::new();
    let a = m.data("A", array![[1.0, 2.0], [3.0, 4.0]].into_dyn());
    // A² = [[7, 10], [15, 22]], A⁴ = [[199, 290], [435, 634]], A⁵ = A⁴A.
    let powers = [
        (0, array![[1.0, 0.0], [0.0, 1.0]]),
        (1, array![[1.0, 2.0], [3.0, 4.0]]),
        (2, array![[7.0, 10.0], [15.0, 22.0]]),
        (5, array![[1069.0, 1558.0], [2337.0, 3406.0]]),
    ];
    for (k, want) in powers {
        let p = m.add(Op::MatPow(Dim::fixed(k)), vec![a]);
        assert_close(&m.value(p), &want.into_dyn(), 0.0);
    }
    // A symbolic exponent d − 1 with d = 3: the shift matrix squared moves two places.
    let d = m.dim("d", 3);
    let shift = m.data(
        "S",
        array![[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]].into_dyn(),
    );
    let k = Dim::sym(d).minus(Dim::fixed(1)).expect("d - 1");
    let s2 = m.add(Op::MatPow(k), vec![shift]);
    let want = array![[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]];
    assert_close(&m.value(s2), &want.into_dyn(), 0.0);
    // Sizes 0 and 1.
    let empty = m.data("E", ArrayD::zeros(IxDyn(&[0, 0])));
    let e3 = m.add(Op::MatPow(Dim::fixed(3)), vec![empty]);
    assert_eq!(m.value(e3).shape(), &[0, 0]);
    let one = m.data("O", array![[-2.0]].into_dyn());
    let o3 = m.add(Op::MatPow(Dim::fixed(3)), vec![one]);
    assert_close(&m.value(o3), &array![[-8.0]].into_dyn(), 0.0);
    // A negative exponent (d − 4 = −1) is reported.
    let negative = Dim::sym(d).minus(Dim::fixed(4)).expect("d - 4");
    let bad = m.add(Op::MatPow(negative), vec![shift]);
    assert!(matches!(
        m.eval(bad),
        Err(EvalError::BadSize { op: "matpow", .. })
    ));
}

/// `W ∘ W` of a data matrix W, for the acyclicity check values.
fn squared(m: &mut Model, name: &str, w: ArrayD<f64>) -> (NodeId, i64) {
    let d = w.shape()[0] as i64;
    let w = m.data(name, w);
    (m.add(Op::Binary(BinaryOp::Mul), vec![w, w]), d)
}

/// h_expm(W) = trace(expm(W ∘ W)) − d.
fn h_expm(m: &mut Model, name: &str, w: ArrayD<f64>) -> NodeId {
    let (ww, d) = squared(m, name, w);
    let e = m.add(Op::Expm, vec![ww]);
    let tr = m.add(Op::Trace, vec![e]);
    let dd = m.c(d as f64);
    m.add(Op::Binary(BinaryOp::Sub), vec![tr, dd])
}

/// h_ldet(W) = −logdet(I − W ∘ W) (s = 1).
fn h_ldet(m: &mut Model, name: &str, w: ArrayD<f64>) -> NodeId {
    let (ww, d) = squared(m, name, w);
    let eye = m.add(Op::Eye(Dim::fixed(d)), vec![]);
    let a = m.add(Op::Binary(BinaryOp::Sub), vec![eye, ww]);
    let ld = m.add(Op::LogDet, vec![a]);
    m.add(Op::Unary(UnaryOp::Neg), vec![ld])
}

/// h_poly(W) = trace((I + W ∘ W / d)^d) − d (DAG-GNN).
fn h_poly(m: &mut Model, name: &str, w: ArrayD<f64>) -> NodeId {
    let (ww, d) = squared(m, name, w);
    let eye = m.add(Op::Eye(Dim::fixed(d)), vec![]);
    let dd = m.c(d as f64);
    let scaled = m.add(Op::Binary(BinaryOp::Div), vec![ww, dd]);
    let a = m.add(Op::Binary(BinaryOp::Add), vec![eye, scaled]);
    let power = m.add(Op::MatPow(Dim::fixed(d)), vec![a]);
    let tr = m.add(Op::Trace, vec![power]);
    m.add(Op::Binary(BinaryOp::Sub), vec![tr, dd])
}

#[test]
fn poly_acyclicity_is_zero_exactly_on_dags() {
    let mut m = Model::new();
    // A DAG (strictly upper triangular, so W ∘ W / d is nilpotent): (I + N)^d has unit diagonal.
    let dag = array![
        [0.0, 0.7, -1.2, 0.3],
        [0.0, 0.0, 2.0, -0.4],
        [0.0, 0.0, 0.0, 1.5],
        [0.0, 0.0, 0.0, 0.0]
    ];
    let h = h_poly(&mut m, "dag", dag.into_dyn());
    assert_eq!(m.value(h)[[]], 0.0);
    // 2-cycle a = b = 0.5, d = 2: tr([[1, 1/8], [1/8, 1]]²) − 2 = 2 (1/8)² = 1/32 (spec/stdlib.md).
    let h = h_poly(&mut m, "two", array![[0.0, 0.5], [0.5, 0.0]].into_dyn());
    assert!((m.value(h)[[]] - 1.0 / 32.0).abs() < 1e-15);
    // 3-cycle of weight 0.8, c = 0.64: tr((I + cP/3)³) − 3 = 3 (c/3)³ (only P³ = I has a trace).
    let cycle = array![[0.0, 0.8, 0.0], [0.0, 0.0, 0.8], [0.8, 0.0, 0.0]];
    let h = h_poly(&mut m, "cycle", cycle.into_dyn());
    let c: f64 = 0.64;
    assert!((m.value(h)[[]] - c.powi(3) / 9.0).abs() < 1e-15);
}

#[test]
fn acyclicity_check_values_of_methods_md() {
    let mut m = Model::new();
    let two = |a: f64, b: f64| array![[0.0, a], [b, 0.0]].into_dyn();
    let cycle = array![[0.0, 0.8, 0.0], [0.0, 0.0, 0.8], [0.8, 0.0, 0.0]].into_dyn();
    // Table values, plus closed forms: 2×2: h_expm = 2cosh(ab) − 2, h_ldet = −log(1 − a²b²);
    // 3-cycle with c = 0.8²: trace(P^k) = 3 iff 3 | k, so h_expm = 3 Σ_{j≥1} c^{3j}/(3j)!, and
    // det(I − cP) = 1 − c³.
    let c: f64 = 0.64;
    let factorial = |k: i32| (1..=k).map(f64::from).product::<f64>();
    let cycle_expm: f64 = (1..=5)
        .map(|j| 3.0 * c.powi(3 * j) / factorial(3 * j))
        .sum();
    let cases = [
        (
            two(0.5, 0.5),
            0.0628261998,
            0.0645385211,
            2.0 * 0.25f64.cosh() - 2.0,
            -(1.0 - 1.0 / 16.0f64).ln(),
        ),
        (
            two(1.0, 0.3),
            0.0906770283,
            0.0943106795,
            2.0 * 0.3f64.cosh() - 2.0,
            -(1.0 - 0.09f64).ln(),
        ),
        (
            cycle,
            0.1313584801,
            0.3040065954,
            cycle_expm,
            -(1.0 - c.powi(3)).ln(),
        ),
    ];
    for (k, (w, table_expm, table_ldet, exact_expm, exact_ldet)) in cases.into_iter().enumerate() {
        let he = h_expm(&mut m, &format!("We{k}"), w.clone());
        let hl = h_ldet(&mut m, &format!("Wl{k}"), w);
        let (ve, vl) = (m.value(he)[[]], m.value(hl)[[]]);
        assert!(
            (ve - exact_expm).abs() < 1e-12,
            "h_expm {k}: {ve} vs {exact_expm}"
        );
        assert!(
            (vl - exact_ldet).abs() < 1e-12,
            "h_ldet {k}: {vl} vs {exact_ldet}"
        );
        // The table has 10 decimals.
        assert!(
            (ve - table_expm).abs() < 1e-9,
            "h_expm {k}: {ve} vs table {table_expm}"
        );
        assert!(
            (vl - table_ldet).abs() < 1e-9,
            "h_ldet {k}: {vl} vs table {table_ldet}"
        );
    }
}

#[test]
fn logdet_solve_inv() {
    let mut m = Model::new();
    let a = m.data("A", array![[2.0, 1.0], [1.0, 2.0]].into_dyn());
    let ld = m.add(Op::LogDet, vec![a]);
    assert_close(&m.value(ld), &s(3f64.ln()), 1e-15);
    let b = m.data("b", array![3.0, 3.0].into_dyn());
    let x = m.add(Op::Solve, vec![a, b]);
    assert_close(&m.value(x), &array![1.0, 1.0].into_dyn(), 1e-15);
    let bm = m.data("B", array![[3.0, 0.0], [3.0, 3.0]].into_dyn());
    let xm = m.add(Op::Solve, vec![a, bm]);
    assert_close(
        &m.value(xm),
        &array![[1.0, -1.0], [1.0, 2.0]].into_dyn(),
        1e-15,
    );
    let inv = m.add(Op::Inv, vec![a]);
    let third = 1.0 / 3.0;
    assert_close(
        &m.value(inv),
        &array![[2.0 * third, -third], [-third, 2.0 * third]].into_dyn(),
        1e-15,
    );
}

#[test]
fn singular_matrices_and_logdet_outside_its_domain_are_errors() {
    let mut m = Model::new();
    let sing = m.data("S", array![[1.0, 2.0], [2.0, 4.0]].into_dyn());
    let b = m.data("b", array![1.0, 1.0].into_dyn());
    let solve = m.add(Op::Solve, vec![sing, b]);
    let inv = m.add(Op::Inv, vec![sing]);
    let e = m.eval(solve).unwrap_err();
    assert_eq!(
        e,
        EvalError::Singular {
            node: solve,
            op: "solve"
        }
    );
    assert_eq!(e.code(), "E0407");
    assert_eq!(m.eval(inv).unwrap_err().code(), "E0407");
    let ld_sing = m.add(Op::LogDet, vec![sing]);
    assert_eq!(
        m.eval(ld_sing).unwrap_err(),
        EvalError::LogdetDomain {
            node: ld_sing,
            minor: 2
        }
    );
    // det = −1, and a zero first minor.
    let neg = m.data("N", array![[0.0, 1.0], [1.0, 0.0]].into_dyn());
    let ld_neg = m.add(Op::LogDet, vec![neg]);
    let e = m.eval(ld_neg).unwrap_err();
    assert_eq!(e.code(), "E0408");
    assert!(e.to_string().contains("leading 1×1 minor"), "{e}");
    // Symmetric with det = 2 > 0 but negative definite: outside, from the first minor on.
    let negdef = m.data("D", array![[-1.0, 0.0], [0.0, -2.0]].into_dyn());
    let ld_negdef = m.add(Op::LogDet, vec![negdef]);
    assert_eq!(
        m.eval(ld_negdef).unwrap_err(),
        EvalError::LogdetDomain {
            node: ld_negdef,
            minor: 1
        }
    );
}

#[test]
fn slice_select_and_loop_index() {
    let mut m = Model::new();
    let d = m.dim("d", 3);
    let x = m.input(
        "X",
        InputKind::Data,
        vec![Dim::fixed(2), Dim::sym(d)],
        Some(array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn()),
    );
    // X[:, 1:d]
    let sl = m.add(
        Op::Slice {
            axis: 1,
            start: Dim::fixed(1),
            end: Dim::sym(d),
        },
        vec![x],
    );
    assert_close(
        &m.value(sl),
        &array![[2.0, 3.0], [5.0, 6.0]].into_dyn(),
        0.0,
    );
    // X[:, j] for the loop index j = 2, and X[1, :].
    let j = m.add(Op::LoopIndex(0), vec![]);
    let col = m.add(Op::Select { axis: 1 }, vec![x, j]);
    m.b.loop_indices = vec![2];
    assert_close(&m.value(col), &array![3.0, 6.0].into_dyn(), 0.0);
    let one = m.c(1.0);
    let row = m.add(Op::Select { axis: 0 }, vec![x, one]);
    assert_close(&m.value(row), &array![4.0, 5.0, 6.0].into_dyn(), 0.0);
    // d − 1 as a value.
    let last = m.add(
        Op::DimSize(Dim {
            sym: Some(d),
            offset: -1,
        }),
        vec![],
    );
    assert_close(&m.value(last), &s(2.0), 0.0);
}

#[test]
fn index_errors() {
    let mut m = Model::new();
    let x = m.data("x", array![1.0, 2.0, 3.0].into_dyn());
    let three = m.c(3.0);
    let out = m.add(Op::Select { axis: 0 }, vec![x, three]);
    let e = m.eval(out).unwrap_err();
    assert_eq!(
        e,
        EvalError::IndexOutOfRange {
            node: out,
            index: 3.0,
            len: 3
        }
    );
    assert_eq!(e.code(), "E0405");
    let minus = m.c(-1.0);
    let neg = m.add(Op::Select { axis: 0 }, vec![x, minus]);
    assert_eq!(m.eval(neg).unwrap_err().code(), "E0405");
    let half = m.c(0.5);
    let frac = m.add(Op::Select { axis: 0 }, vec![x, half]);
    assert_eq!(
        m.eval(frac).unwrap_err(),
        EvalError::NonIntegralIndex {
            node: frac,
            index: 0.5
        }
    );
    let j = m.add(Op::LoopIndex(0), vec![]);
    let by_loop = m.add(Op::Select { axis: 0 }, vec![x, j]);
    assert_eq!(
        m.eval(by_loop).unwrap_err(),
        EvalError::UnboundLoopIndex { level: 0 }
    );
    // A slice whose end exceeds the axis.
    let n = m.dim("n", 5);
    let sl = m.add(
        Op::Slice {
            axis: 0,
            start: Dim::fixed(0),
            end: Dim::sym(n),
        },
        vec![x],
    );
    assert_eq!(m.eval(sl).unwrap_err().code(), "E0404");
}

#[test]
fn stack_broadcast_sum_to() {
    let mut m = Model::new();
    let a = m.c(1.0);
    let b = m.c(2.0);
    let st = m.add(Op::Stack, vec![a, b, a]);
    assert_close(&m.value(st), &array![1.0, 2.0, 1.0].into_dyn(), 0.0);
    let v = m.data("v", array![1.0, 2.0].into_dyn());
    let w = m.data("w", array![3.0, 4.0].into_dyn());
    let rows = m.add(Op::Stack, vec![v, w]);
    assert_close(
        &m.value(rows),
        &array![[1.0, 2.0], [3.0, 4.0]].into_dyn(),
        0.0,
    );
    let bc = m.add(Op::BroadcastTo(vec![Dim::fixed(3), Dim::fixed(2)]), vec![v]);
    assert_close(
        &m.value(bc),
        &array![[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]].into_dyn(),
        0.0,
    );
    let x = m.data("x", array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn());
    let to_row = m.add(Op::SumTo(vec![Dim::fixed(3)]), vec![x]);
    assert_close(&m.value(to_row), &array![5.0, 7.0, 9.0].into_dyn(), 0.0);
    let to_col = m.add(Op::SumTo(vec![Dim::fixed(2), Dim::fixed(1)]), vec![x]);
    assert_close(&m.value(to_col), &array![[6.0], [15.0]].into_dyn(), 0.0);
    let to_scalar = m.add(Op::SumTo(vec![]), vec![x]);
    assert_close(&m.value(to_scalar), &s(21.0), 0.0);
}

#[test]
fn sorting_topk_card_nuclear_norm() {
    let mut m = Model::new();
    let x = m.data("x", array![0.0, -2.0, 5.0, 0.0, 3.0].into_dyn());
    let sorted = m.add(Op::SortDesc, vec![x]);
    assert_close(
        &m.value(sorted),
        &array![5.0, 3.0, 0.0, 0.0, -2.0].into_dyn(),
        0.0,
    );
    let top = m.add(Op::TopK(Dim::fixed(2)), vec![x]);
    assert_close(&m.value(top), &array![5.0, 3.0].into_dyn(), 0.0);
    let too_many = m.add(Op::TopK(Dim::fixed(6)), vec![x]);
    assert_eq!(m.eval(too_many).unwrap_err().code(), "E0404");
    let card = m.add(Op::Card, vec![x]);
    assert_close(&m.value(card), &s(3.0), 0.0);
    // Singular values 4 and 3; and √6 for the rank-one all-ones 2×3 matrix.
    let a = m.data("A", array![[3.0, 0.0], [0.0, -4.0]].into_dyn());
    let nn = m.add(Op::NuclearNorm, vec![a]);
    assert_close(&m.value(nn), &s(7.0), 1e-14);
    let ones = m.data("O", ArrayD::ones(IxDyn(&[2, 3])));
    let nn1 = m.add(Op::NuclearNorm, vec![ones]);
    assert_close(&m.value(nn1), &s(6f64.sqrt()), 1e-14);
}

#[test]
fn unbound_things_are_reported() {
    let mut m = Model::new();
    let d = m.dim("d", 2);
    m.b.dims.clear();
    let size = m.add(Op::DimSize(Dim::sym(d)), vec![]);
    assert_eq!(
        m.eval(size).unwrap_err(),
        EvalError::UnboundDim { dim: "d".into() }
    );
    m.b.dims = vec![2];
    let x = m.input("X", InputKind::Data, vec![Dim::sym(d)], None);
    assert_eq!(
        m.eval(x).unwrap_err(),
        EvalError::UnboundInput { input: "X".into() }
    );
    m.b.inputs[0] = Some(array![1.0, 2.0, 3.0].into_dyn());
    let e = m.eval(x).unwrap_err();
    assert_eq!(
        e,
        EvalError::InputShape {
            input: "X".into(),
            expected: vec![2],
            found: vec![3]
        }
    );
    let diag: Diagnostic = e.into();
    assert_eq!(diag.code, "E0403");
}

#[test]
fn only_needed_nodes_are_evaluated() {
    let mut m = Model::new();
    let unbound = m.input("U", InputKind::Data, vec![], None);
    let x = m.data("x", s(2.0));
    let needs_unbound = m.add(Op::Unary(UnaryOp::Exp), vec![unbound]);
    let sq = m.add(Op::Binary(BinaryOp::Mul), vec![x, x]);
    assert_close(&m.value(sq), &s(4.0), 0.0);
    let all = eval_all(&m.p, &m.b, &mut NoSubproblems).unwrap();
    assert!(all[needs_unbound.0 as usize].is_none() && all[unbound.0 as usize].is_none());
    assert_close(all[sq.0 as usize].as_ref().unwrap(), &s(4.0), 0.0);
}

#[test]
fn checked_evaluation_names_the_first_non_finite_node() {
    let mut m = Model::new();
    let x = m.data("x", array![1.0, -1.0].into_dyn());
    let log = m.add(Op::Unary(UnaryOp::Log), vec![x]);
    let exp = m.add(Op::Unary(UnaryOp::Exp), vec![log]);
    // Unchecked: IEEE values.
    assert!(m.value(exp)[[1]].is_nan());
    let e = eval_checked(&m.p, &m.b, &[exp], &mut NoSubproblems).unwrap_err();
    match &e {
        EvalError::NonFinite {
            node, op, index, ..
        } => {
            assert_eq!((*node, *op, index.as_slice()), (log, "log", &[1usize][..]));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(e.code(), "E0409");
    assert!(e.to_string().contains("log produced NaN"), "{e}");
}

#[test]
fn deep_chains_do_not_recurse() {
    let mut m = Model::new();
    let mut node = m.c(0.0);
    let one = m.c(1.0);
    for _ in 0..20_000 {
        node = m.add(Op::Binary(BinaryOp::Add), vec![node, one]);
    }
    assert_close(&m.value(node), &s(20_000.0), 0.0);
}

/// Solves `argmin z sum((z − c)²)` in closed form (z = c), reading `c` from the outer values.
struct ClosedForm {
    c: NodeId,
    two: NodeId,
    calls: usize,
}

impl SubproblemSolver for ClosedForm {
    fn solve(
        &mut self,
        program: &Program,
        sub: SubproblemId,
        _bindings: &Bindings,
        outer: &[Option<ArrayD<f64>>],
    ) -> Result<ArrayD<f64>, EvalError> {
        self.calls += 1;
        assert_eq!(outer_nodes(program, sub), vec![self.c, self.two]);
        Ok(outer[self.c.0 as usize]
            .clone()
            .expect("outer value filled"))
    }
}

#[test]
fn argmin_is_delegated_with_its_outer_values() {
    let mut m = Model::new();
    let c = m.data("c", array![1.0, 2.0].into_dyn());
    let z = m.input("z", InputKind::InnerVar, vec![Dim::fixed(2)], None);
    let shifted = m.add(Op::Binary(BinaryOp::Sub), vec![z, c]);
    let two = m.c(2.0);
    let sq = m.add(Op::Binary(BinaryOp::Pow), vec![shifted, two]);
    let objective = m.add(Op::Sum { axis: None }, vec![sq]);
    m.p.subproblems.push(Subproblem {
        var: optc_compiler::ir::InputId(1),
        objective,
    });
    let zhat =
        m.p.graph
            .argmin(SubproblemId(0), vec![Dim::fixed(2)], Stage::Data);
    let total = m.add(Op::Sum { axis: None }, vec![zhat]);
    let mut solver = ClosedForm { c, two, calls: 0 };
    let got = eval(&m.p, &m.b, &[total], &mut solver).unwrap();
    assert_close(&got[0], &s(3.0), 0.0);
    assert_eq!(solver.calls, 1);
    assert_eq!(
        m.eval(total).unwrap_err(),
        EvalError::Subproblem {
            sub: SubproblemId(0),
            message: "no solver for lower-level problems is available here".into()
        }
    );
}
