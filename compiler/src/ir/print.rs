//! Stable text form of a [`Program`], used by `optc emit --stage ir` and the snapshot tests.

use super::{BinaryOp, ConstraintKind, DataSource, Node, Op, Program, SetKind, Stage, UnaryOp};
use std::fmt::Write;

fn stage_name(s: Stage) -> &'static str {
    match s {
        Stage::Const => "const",
        Stage::Data => "data",
        Stage::Param => "param",
        Stage::Var => "var",
    }
}

/// The name of an op in messages: its builtin's name where it has one (`nuclear_norm`, `inv`).
pub fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Input(_) => "input",
        Op::Const(_) => "const",
        Op::DimSize(_) => "dim",
        Op::LoopIndex(_) => "loop_index",
        Op::Unary(u) => match u {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Softplus => "softplus",
            UnaryOp::Step => "step",
        },
        Op::Binary(b) => match b {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Max => "maximum",
            BinaryOp::Min => "minimum",
        },
        Op::Sum { .. } => "sum",
        Op::Max { .. } => "max",
        Op::LogSumExp { .. } => "logsumexp",
        Op::MatMul => "matmul",
        Op::Transpose => "transpose",
        Op::Eye(_) => "eye",
        Op::Diag => "diag",
        Op::DiagPart => "diag_part",
        Op::Trace => "trace",
        Op::Expm => "expm",
        Op::MatPow(_) => "matpow",
        Op::LogDet => "logdet",
        Op::Solve => "solve",
        Op::Inv => "inv",
        Op::Slice { .. } => "slice",
        Op::Select { .. } => "select",
        Op::Stack => "stack",
        Op::BroadcastTo(_) => "broadcast_to",
        Op::SumTo(_) => "sum_to",
        Op::SortDesc => "sort",
        Op::TopK(_) => "topk",
        Op::Card => "card",
        Op::NuclearNorm => "nuclear_norm",
        Op::Argmin(_) => "argmin",
        Op::Expand { .. } => "expand",
        Op::ArgmaxMask { .. } => "argmax_mask",
        Op::Pad { .. } => "pad",
        Op::Scatter { .. } => "scatter",
        Op::ExpmFrechet => "expm_frechet",
        Op::ExpmFrechet2 => "expm_frechet2",
        Op::MatPowFrechet(_) => "matpow_frechet",
        Op::MatPowFrechet2(_) => "matpow_frechet2",
        Op::SortScatter => "sort_scatter",
        Op::SortGather(_) => "sort_gather",
    }
}

/// The op as it is printed: a lowercase name and its attributes.
pub fn op_text(p: &Program, op: &Op) -> String {
    let axis = |a: &Option<u32>| a.map_or(String::new(), |a| format!("{{axis={a}}}"));
    match op {
        Op::Input(i) => format!("input {}", p.input(*i).name),
        Op::Const(c) => format!("const {c:?}"),
        Op::DimSize(d) => format!("dim {}", p.dim_name(*d)),
        Op::LoopIndex(l) => format!("loop_index {l}"),
        Op::Unary(u) => format!("{u:?}").to_lowercase(),
        Op::Binary(b) => format!("{b:?}").to_lowercase(),
        Op::Sum { axis: a } => format!("sum{}", axis(a)),
        Op::Max { axis: a } => format!("max{}", axis(a)),
        Op::LogSumExp { axis: a } => format!("logsumexp{}", axis(a)),
        Op::Eye(d) => format!("eye {}", p.dim_name(*d)),
        Op::Slice { axis, start, end } => format!(
            "slice{{axis={axis}}} {}..{}",
            p.dim_name(*start),
            p.dim_name(*end)
        ),
        Op::Select { axis } => format!("select{{axis={axis}}}"),
        Op::BroadcastTo(s) => format!("broadcast_to {}", p.shape_name(s)),
        Op::SumTo(s) => format!("sum_to {}", p.shape_name(s)),
        Op::TopK(k) => format!("topk {}", p.dim_name(*k)),
        Op::MatPow(k) => format!("matpow {}", p.dim_name(*k)),
        Op::MatPowFrechet(k) => format!("matpow_frechet {}", p.dim_name(*k)),
        Op::MatPowFrechet2(k) => format!("matpow_frechet2 {}", p.dim_name(*k)),
        Op::SortGather(k) => format!("sort_gather {}", p.dim_name(*k)),
        Op::Argmin(s) => format!("argmin #{}", s.0),
        Op::Expand { axis, size } => format!("expand{{axis={axis}}} {}", p.dim_name(*size)),
        Op::ArgmaxMask { axis: a } => format!("argmax_mask{}", axis(a)),
        Op::Pad { axis, start, size } => format!(
            "pad{{axis={axis}}} at {} in {}",
            p.dim_name(*start),
            p.dim_name(*size)
        ),
        Op::Scatter { axis, size } => format!("scatter{{axis={axis}}} {}", p.dim_name(*size)),
        other => {
            // Unit variants: their name in snake case.
            let name = format!("{other:?}");
            let mut out = String::new();
            for (i, ch) in name.chars().enumerate() {
                if ch.is_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_lowercase());
            }
            out
        }
    }
}

/// One node as `%7 : [d, d] var = matmul %2, %6`.
pub fn node_text(p: &Program, id: usize, node: &Node) -> String {
    let args: Vec<String> = node.args.iter().map(|a| a.to_string()).collect();
    let mut line = format!(
        "%{id} : {} {} = {}",
        p.shape_name(&node.shape),
        stage_name(node.stage),
        op_text(p, &node.op)
    );
    if !args.is_empty() {
        let _ = write!(line, " {}", args.join(", "));
    }
    line
}

/// The whole program: dims, inputs, nodes, then objective, constraints, outputs.
pub fn print_program(p: &Program) -> String {
    let mut out = String::new();
    if !p.dims.is_empty() {
        let dims: Vec<String> = p
            .dims
            .iter()
            .map(|d| match d.default {
                Some(v) => format!("{} = {v}", d.name),
                None => d.name.clone(),
            })
            .collect();
        let _ = writeln!(out, "dims {}", dims.join(", "));
    }
    for (i, input) in p.inputs.iter().enumerate() {
        let _ = write!(
            out,
            "input {} {:?} {:?}{}",
            input.name,
            input.kind,
            input.elem,
            p.shape_name(&input.shape)
        );
        if let Some(DataSource::File(f)) = &input.source {
            let _ = write!(out, " load {f:?}");
        }
        for (what, v) in [
            ("value", input.value),
            ("lower", input.lower),
            ("upper", input.upper),
        ] {
            if let Some(v) = v {
                let _ = write!(out, " {what}={v}");
            }
        }
        let _ = writeln!(
            out,
            " node={}",
            p.input_nodes.get(i).map_or("-".into(), |n| n.to_string())
        );
    }
    for (id, node) in p.graph.nodes() {
        let _ = writeln!(out, "{}", node_text(p, id.0 as usize, node));
    }
    for (i, s) in p.subproblems.iter().enumerate() {
        let _ = writeln!(
            out,
            "subproblem #{i}: argmin {} of {}",
            p.input(s.var).name,
            s.objective
        );
    }
    if let Some(o) = &p.objective {
        let _ = writeln!(out, "objective {:?} {}", o.sense, o.node);
    }
    for c in &p.constraints {
        let ranges: String = c
            .ranges
            .iter()
            .map(|r| {
                format!(
                    "for loop_index {} in {}..{}: ",
                    r.level,
                    p.dim_name(r.start),
                    p.dim_name(r.end)
                )
            })
            .collect();
        let what = match &c.kind {
            ConstraintKind::Eq => format!("{} == 0", c.node),
            ConstraintKind::Le => format!("{} <= 0", c.node),
            ConstraintKind::In(SetKind::Nonneg) => format!("{} in nonneg", c.node),
            ConstraintKind::In(SetKind::Simplex) => format!("{} in simplex", c.node),
            ConstraintKind::In(SetKind::Symmetric) => format!("{} in symmetric", c.node),
            ConstraintKind::In(SetKind::Box { lower, upper }) => {
                format!("{} in box({lower}, {upper})", c.node)
            }
            ConstraintKind::Card { bound } => format!("card({}) <= {bound}", c.node),
        };
        let _ = writeln!(out, "constraint {}: {ranges}{what}", c.name);
    }
    if let Some(s) = &p.solve {
        let _ = writeln!(out, "solve with {s}");
    }
    for o in &p.outputs {
        let post: Vec<String> = o.post.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(out, "output {} = {} [{}]", o.name, o.node, post.join(", "));
    }
    out
}
