//! PTX for sm_90 of the outlined pointwise kernels: a fused chain with broadcasting and a
//! transpose (in f64 and f32), a select at a run-time index, every example's objective and
//! gradient (all kernels in one module), and math functions (exp, log, tanh, pow and their kin)
//! as arithmetic in kernels, with no libdevice call.

use optc_compiler::derive::{cost_dims, differentiate, simplify};
use optc_compiler::driver::{compile, Until};
use optc_compiler::ir::{BinaryOp, Dim, DimId, DimInfo, ElemType, InputKind, Op, Program, UnaryOp};
use optc_mlir::{ptx_text, Precision};

fn dim(p: &mut Program, name: &str) -> Dim {
    p.dims.push(DimInfo {
        name: name.into(),
        default: None,
        span: None,
    });
    Dim::sym(DimId(p.dims.len() as u32 - 1))
}

#[test]
fn fused_chain_with_broadcast_and_transpose() {
    let (p, root) = fused_chain();
    insta::assert_snapshot!(ptx_text(&p, &[root], &[3, 5], Precision::F64).expect("PTX"));
}

#[test]
fn fused_chain_in_single_precision() {
    // f32 loads and stores 4 bytes apart, f32 arithmetic, |a| as the sign bit of a 32-bit word
    // cleared; no f64 anywhere.
    let (p, root) = fused_chain();
    let ptx = ptx_text(&p, &[root], &[3, 5], Precision::F32).expect("PTX");
    assert!(!ptx.contains("f64"), "{ptx}");
    assert!(
        ptx.contains("add.rn.f32") && ptx.contains("mul.rn.f32"),
        "{ptx}"
    );
    insta::assert_snapshot!(ptx);
}

#[test]
fn reductions_along_lines_are_kernels() {
    // Column sums of the fused chain: one kernel, a thread per column folding its rows.
    let (mut p, root) = fused_chain();
    let columns = p.graph.add(Op::Sum { axis: Some(0) }, vec![root]).unwrap();
    let ptx = ptx_text(&p, &[columns], &[3, 5], Precision::F64).expect("PTX");
    assert_eq!(ptx.matches(".visible .entry").count(), 1, "{ptx}");
    insta::assert_snapshot!(ptx);
    // Row maxima of exp(a): the exponential (arithmetic in kernels) is fused into the
    // reduction's kernel.
    let a = p.input_nodes[0];
    let e = p.graph.add(Op::Unary(UnaryOp::Exp), vec![a]).unwrap();
    let rows = p.graph.add(Op::Max { axis: Some(1) }, vec![e]).unwrap();
    let ptx = ptx_text(&p, &[rows], &[3, 5], Precision::F64).expect("PTX");
    assert_eq!(ptx.matches(".visible .entry").count(), 1, "{ptx}");
    // Row log-sum-exps: a kernel too.
    let lse = p
        .graph
        .add(Op::LogSumExp { axis: Some(1) }, vec![a])
        .unwrap();
    let ptx = ptx_text(&p, &[lse], &[3, 5], Precision::F32).expect("PTX");
    assert_eq!(ptx.matches(".visible .entry").count(), 1, "{ptx}");
    // Row maxima of a^0.5 (a general power): a kernel too.
    let half = p.graph.constant(0.5);
    let root = p
        .graph
        .add(Op::Binary(BinaryOp::Pow), vec![a, half])
        .unwrap();
    let rows = p.graph.add(Op::Max { axis: Some(1) }, vec![root]).unwrap();
    let ptx = ptx_text(&p, &[rows], &[3, 5], Precision::F64).expect("PTX");
    assert_eq!(ptx.matches(".visible .entry").count(), 1, "{ptx}");
}

#[test]
fn math_functions_in_kernels_are_arithmetic() {
    // exp, log, tanh, sigmoid, softplus and an integer power in one kernel: no libdevice call
    // (an unresolved `.extern` the driver would refuse), in both precisions; f32 kernels compute
    // them in f64.
    let (mut p, root) = fused_chain();
    let g = &mut p.graph;
    let mut x = root;
    for op in [
        UnaryOp::Exp,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Softplus,
        UnaryOp::Log,
    ] {
        x = g.add(Op::Unary(op), vec![x]).unwrap();
    }
    let exp_alone = g.add(Op::Unary(UnaryOp::Exp), vec![root]).unwrap();
    insta::assert_snapshot!(
        "exp_in_a_kernel",
        ptx_text(&p, &[exp_alone], &[3, 5], Precision::F64).expect("PTX")
    );
    let g = &mut p.graph;
    let cube = g.constant(-3.0);
    let root = g.add(Op::Binary(BinaryOp::Pow), vec![x, cube]).unwrap();
    for precision in [Precision::F64, Precision::F32] {
        let ptx = ptx_text(&p, &[root], &[3, 5], precision).expect("PTX");
        assert_eq!(ptx.matches(".visible .entry").count(), 1, "{ptx}");
        assert!(!ptx.contains(".extern") && !ptx.contains("call"), "{ptx}");
    }
    // A power with another exponent, and one whose exponent is a variable: arithmetic too.
    let half = p.graph.constant(0.5);
    let a = p.input_nodes[0];
    let g = &mut p.graph;
    let root = g.add(Op::Binary(BinaryOp::Pow), vec![root, half]).unwrap();
    let root = g.add(Op::Binary(BinaryOp::Pow), vec![root, a]).unwrap();
    for precision in [Precision::F64, Precision::F32] {
        let ptx = ptx_text(&p, &[root], &[3, 5], precision).expect("PTX");
        assert!(!ptx.contains(".extern") && !ptx.contains("call"), "{ptx}");
    }
}

#[test]
fn square_roots_in_kernels_are_the_sqrt_instruction() {
    // No libdevice call: LLVM's sqrt intrinsic, which NVPTX lowers to `sqrt.rn`.
    let (mut p, root) = fused_chain();
    let abs = p.graph.add(Op::Unary(UnaryOp::Abs), vec![root]).unwrap();
    let root = p.graph.add(Op::Unary(UnaryOp::Sqrt), vec![abs]).unwrap();
    for (precision, instruction) in [
        (Precision::F64, "sqrt.rn.f64"),
        (Precision::F32, "sqrt.rn.f32"),
    ] {
        let ptx = ptx_text(&p, &[root], &[3, 5], precision).expect("PTX");
        assert!(ptx.contains(instruction), "{ptx}");
        assert!(!ptx.contains(".extern"), "{ptx}");
    }
}

/// `|a| ∘ bᵀ + c` with `a` of `n × m` (a variable), `b` of `m × n`, `c` of `m`.
fn fused_chain() -> (Program, optc_compiler::ir::NodeId) {
    let mut p = Program::default();
    let (n, m) = (dim(&mut p, "n"), dim(&mut p, "m"));
    let (_, a) = p.add_input("a", InputKind::Var, ElemType::Real, vec![n, m]);
    let (_, b) = p.add_input("b", InputKind::Data, ElemType::Real, vec![m, n]);
    let (_, c) = p.add_input("c", InputKind::Data, ElemType::Real, vec![m]);
    let g = &mut p.graph;
    let bt = g.add(Op::Transpose, vec![b]).unwrap();
    let abs = g.add(Op::Unary(UnaryOp::Abs), vec![a]).unwrap();
    let prod = g.add(Op::Binary(BinaryOp::Mul), vec![abs, bt]).unwrap();
    let root = g.add(Op::Binary(BinaryOp::Add), vec![prod, c]).unwrap();
    (p, root)
}

#[test]
fn select_at_a_run_time_index_in_a_kernel() {
    // x[:, at] + 1: a kernel cannot return a status, so the index is not checked there: its
    // element is NaN when the index is invalid, and the read stays inside the axis (no libdevice
    // function either: the integer test converts and compares).
    let mut p = Program::default();
    let (n, m) = (dim(&mut p, "n"), dim(&mut p, "m"));
    let (_, x) = p.add_input("x", InputKind::Var, ElemType::Real, vec![n, m]);
    let (_, at) = p.add_input("at", InputKind::Param, ElemType::Int, vec![]);
    let g = &mut p.graph;
    let column = g.add(Op::Select { axis: 1 }, vec![x, at]).unwrap();
    let one = g.constant(1.0);
    let root = g.add(Op::Binary(BinaryOp::Add), vec![column, one]).unwrap();
    insta::assert_snapshot!(ptx_text(&p, &[root], &[3, 5], Precision::F64).expect("PTX"));
}

#[test]
fn examples_emit_ptx_or_refuse_libdevice_functions() {
    insta::glob!("../../examples", "*/*.opt", |path| {
        let text = std::fs::read_to_string(path).expect("example readable");
        let compiled =
            compile(&path.display().to_string(), &text, Until::Ir).expect("example compiles");
        let program = compiled.program.expect("lowered program");
        let Ok(derived) = differentiate(&program) else {
            return;
        };
        let s = simplify(&derived, &cost_dims(&program, &[])).expect("simplifies");
        let dims = vec![8; s.derived.program.dims.len()];
        match ptx_text(
            &s.derived.program,
            &s.derived.roots(),
            &dims,
            Precision::F64,
        ) {
            Ok(ptx) => {
                // Every kernel in one module (one NVPTX compilation), each under its own name.
                assert_eq!(ptx.matches("// gpu.module @").count(), 1, "{path:?}");
                let entries: Vec<&str> = ptx
                    .lines()
                    .filter_map(|l| l.strip_prefix(".visible .entry "))
                    .collect();
                let unique: std::collections::BTreeSet<_> = entries.iter().collect();
                assert_eq!(unique.len(), entries.len(), "{path:?}");
                insta::assert_snapshot!(ptx)
            }
            Err(e) => insta::assert_snapshot!(e.to_string()),
        }
    });
}
