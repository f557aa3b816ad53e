//! Evaluations per second of the DAGMA objective at n = 1000, d ∈ {20, 100}: native CPU backend
//! versus the reference interpreter. Run with `cargo bench -p optc --bench dagma_native`.

use ndarray::{ArrayD, IxDyn};
use optc_compiler::ir::{
    BinaryOp, Dim, DimId, DimInfo, ElemType, InputKind, NodeId, Op, Program, UnaryOp,
};
use optc_runtime::cpu::CompiledFn;
use optc_runtime::interp::{eval, Bindings, NoSubproblems};
use std::time::{Duration, Instant};

fn input(p: &mut Program, name: &str, shape: Vec<Dim>) -> NodeId {
    let (_, node) = p.add_input(name, InputKind::Var, ElemType::Real, shape);
    node
}

/// 0.5/n · ‖X − X W‖² + λ ‖W‖₁ − logdet(s I − W∘W) + d log s, with s = 1, λ = 0.02.
fn dagma() -> (Program, NodeId) {
    let mut p = Program::default();
    for name in ["n", "d"] {
        p.dims.push(DimInfo {
            name: name.into(),
            default: None,
        });
    }
    let (n, d) = (Dim::sym(DimId(0)), Dim::sym(DimId(1)));
    let x = input(&mut p, "X", vec![n, d]);
    let w = input(&mut p, "W", vec![d, d]);
    let g = &mut p.graph;
    let mut add = |op: Op, args: Vec<NodeId>| g.add(op, args).expect("well-shaped");
    let xw = add(Op::MatMul, vec![x, w]);
    let r = add(Op::Binary(BinaryOp::Sub), vec![x, xw]);
    let r2 = add(Op::Binary(BinaryOp::Mul), vec![r, r]);
    let sumsq = add(Op::Sum { axis: None }, vec![r2]);
    let nn = add(Op::DimSize(n), vec![]);
    let half = add(Op::Const(0.5), vec![]);
    let scale = add(Op::Binary(BinaryOp::Div), vec![half, nn]);
    let loss = add(Op::Binary(BinaryOp::Mul), vec![scale, sumsq]);
    let aw = add(Op::Unary(UnaryOp::Abs), vec![w]);
    let l1 = add(Op::Sum { axis: None }, vec![aw]);
    let lambda = add(Op::Const(0.02), vec![]);
    let reg = add(Op::Binary(BinaryOp::Mul), vec![lambda, l1]);
    let s = add(Op::Const(1.0), vec![]);
    let eye = add(Op::Eye(d), vec![]);
    let si = add(Op::Binary(BinaryOp::Mul), vec![s, eye]);
    let ww = add(Op::Binary(BinaryOp::Mul), vec![w, w]);
    let m = add(Op::Binary(BinaryOp::Sub), vec![si, ww]);
    let logdet = add(Op::LogDet, vec![m]);
    let dd = add(Op::DimSize(d), vec![]);
    let logs = add(Op::Unary(UnaryOp::Log), vec![s]);
    let dlogs = add(Op::Binary(BinaryOp::Mul), vec![dd, logs]);
    let h = add(Op::Binary(BinaryOp::Sub), vec![dlogs, logdet]);
    let obj = add(Op::Binary(BinaryOp::Add), vec![loss, reg]);
    let root = add(Op::Binary(BinaryOp::Add), vec![obj, h]);
    (p, root)
}

/// Calls `f` repeatedly for about `budget`; returns calls per second.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget {
        f();
        calls += 1;
    }
    calls as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let (program, root) = dagma();
    let n = 1000usize;
    for d in [20usize, 100] {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let x: Vec<f64> = (0..n * d).map(|_| next()).collect();
        let w: Vec<f64> = (0..d * d).map(|_| 0.1 * next() / d as f64).collect();
        let dims = [n as u64, d as u64];
        let bindings = Bindings {
            dims: dims.to_vec(),
            inputs: vec![
                Some(ArrayD::from_shape_vec(IxDyn(&[n, d]), x.clone()).expect("shape")),
                Some(ArrayD::from_shape_vec(IxDyn(&[d, d]), w.clone()).expect("shape")),
            ],
            loop_indices: Vec::new(),
        };
        let mut native = CompiledFn::compile(&program, &[root], &dims).expect("compiles");
        let mut out = [0.0];
        native.call(&[&x, &w], &mut [&mut out]).expect("runs");
        let interp_value = eval(&program, &bindings, &[root], &mut NoSubproblems).expect("interp")
            [0]
        .iter()
        .copied()
        .next()
        .unwrap_or(f64::NAN);
        let budget = Duration::from_millis(1500);
        let native_rate = rate(budget, || {
            native.call(&[&x, &w], &mut [&mut out]).expect("runs");
        });
        let interp_rate = rate(budget, || {
            eval(&program, &bindings, &[root], &mut NoSubproblems).expect("interp");
        });
        println!(
            "dagma n={n} d={d}: native {native_rate:.0} evals/s, interpreter {interp_rate:.0} evals/s, \
             ratio {:.1}x (values {:.12} vs {:.12})",
            native_rate / interp_rate,
            out[0],
            interp_value
        );
    }
}
