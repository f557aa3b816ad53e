//! The e-graph language: one e-node per IR op, attributes (axis, dims, shapes) inside the
//! operator, arguments as children. Patterns in the rule files use short operator names
//! (`+ - * / pow @ T sum sum0 trace ...`) and numbers for scalar constants.

use crate::ir::{BinaryOp, Dim, InputId, Op, Shape, SubproblemId, UnaryOp};
use egg::{FromOp, Id, Language};
use smallvec::SmallVec;
use std::fmt;

/// An IR operator with totally ordered attributes (constants are kept as their bit pattern).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TensorOp {
    Input(InputId),
    Argmin(SubproblemId),
    Const(u64),
    DimSize(Dim),
    LoopIndex(u32),
    Unary(UnaryOp),
    Binary(BinaryOp),
    Sum(Option<u32>),
    Max(Option<u32>),
    LogSumExp(Option<u32>),
    MatMul,
    Transpose,
    Eye(Dim),
    Diag,
    DiagPart,
    Trace,
    Expm,
    MatPow(Dim),
    LogDet,
    Solve,
    Inv,
    Slice { axis: u32, start: Dim, end: Dim },
    Select(u32),
    Stack,
    BroadcastTo(Shape),
    SumTo(Shape),
    SortDesc,
    TopK(Dim),
    Card,
    NuclearNorm,
    Expand { axis: u32, size: Dim },
    ArgmaxMask(Option<u32>),
    Pad { axis: u32, start: Dim, size: Dim },
    Scatter { axis: u32, size: Dim },
    ExpmFrechet,
    ExpmFrechet2,
    MatPowFrechet(Dim),
    MatPowFrechet2(Dim),
    SortScatter,
    SortGather(Dim),
}

impl TensorOp {
    pub fn constant(value: f64) -> TensorOp {
        TensorOp::Const(value.to_bits())
    }

    pub fn from_ir(op: &Op) -> TensorOp {
        use TensorOp as T;
        match op {
            Op::Input(i) => T::Input(*i),
            Op::Argmin(s) => T::Argmin(*s),
            Op::Const(c) => T::constant(*c),
            Op::DimSize(d) => T::DimSize(*d),
            Op::LoopIndex(l) => T::LoopIndex(*l),
            Op::Unary(u) => T::Unary(*u),
            Op::Binary(b) => T::Binary(*b),
            Op::Sum { axis } => T::Sum(*axis),
            Op::Max { axis } => T::Max(*axis),
            Op::LogSumExp { axis } => T::LogSumExp(*axis),
            Op::MatMul => T::MatMul,
            Op::Transpose => T::Transpose,
            Op::Eye(d) => T::Eye(*d),
            Op::Diag => T::Diag,
            Op::DiagPart => T::DiagPart,
            Op::Trace => T::Trace,
            Op::Expm => T::Expm,
            Op::MatPow(k) => T::MatPow(*k),
            Op::LogDet => T::LogDet,
            Op::Solve => T::Solve,
            Op::Inv => T::Inv,
            Op::Slice { axis, start, end } => T::Slice {
                axis: *axis,
                start: *start,
                end: *end,
            },
            Op::Select { axis } => T::Select(*axis),
            Op::Stack => T::Stack,
            Op::BroadcastTo(s) => T::BroadcastTo(s.clone()),
            Op::SumTo(s) => T::SumTo(s.clone()),
            Op::SortDesc => T::SortDesc,
            Op::TopK(k) => T::TopK(*k),
            Op::Card => T::Card,
            Op::NuclearNorm => T::NuclearNorm,
            Op::Expand { axis, size } => T::Expand {
                axis: *axis,
                size: *size,
            },
            Op::ArgmaxMask { axis } => T::ArgmaxMask(*axis),
            Op::Pad { axis, start, size } => T::Pad {
                axis: *axis,
                start: *start,
                size: *size,
            },
            Op::Scatter { axis, size } => T::Scatter {
                axis: *axis,
                size: *size,
            },
            Op::ExpmFrechet => T::ExpmFrechet,
            Op::ExpmFrechet2 => T::ExpmFrechet2,
            Op::MatPowFrechet(k) => T::MatPowFrechet(*k),
            Op::MatPowFrechet2(k) => T::MatPowFrechet2(*k),
            Op::SortScatter => T::SortScatter,
            Op::SortGather(k) => T::SortGather(*k),
        }
    }

    pub fn to_ir(&self) -> Op {
        use TensorOp as T;
        match self {
            T::Input(i) => Op::Input(*i),
            T::Argmin(s) => Op::Argmin(*s),
            T::Const(bits) => Op::Const(f64::from_bits(*bits)),
            T::DimSize(d) => Op::DimSize(*d),
            T::LoopIndex(l) => Op::LoopIndex(*l),
            T::Unary(u) => Op::Unary(*u),
            T::Binary(b) => Op::Binary(*b),
            T::Sum(axis) => Op::Sum { axis: *axis },
            T::Max(axis) => Op::Max { axis: *axis },
            T::LogSumExp(axis) => Op::LogSumExp { axis: *axis },
            T::MatMul => Op::MatMul,
            T::Transpose => Op::Transpose,
            T::Eye(d) => Op::Eye(*d),
            T::Diag => Op::Diag,
            T::DiagPart => Op::DiagPart,
            T::Trace => Op::Trace,
            T::Expm => Op::Expm,
            T::MatPow(k) => Op::MatPow(*k),
            T::LogDet => Op::LogDet,
            T::Solve => Op::Solve,
            T::Inv => Op::Inv,
            T::Slice { axis, start, end } => Op::Slice {
                axis: *axis,
                start: *start,
                end: *end,
            },
            T::Select(axis) => Op::Select { axis: *axis },
            T::Stack => Op::Stack,
            T::BroadcastTo(s) => Op::BroadcastTo(s.clone()),
            T::SumTo(s) => Op::SumTo(s.clone()),
            T::SortDesc => Op::SortDesc,
            T::TopK(k) => Op::TopK(*k),
            T::Card => Op::Card,
            T::NuclearNorm => Op::NuclearNorm,
            T::Expand { axis, size } => Op::Expand {
                axis: *axis,
                size: *size,
            },
            T::ArgmaxMask(axis) => Op::ArgmaxMask { axis: *axis },
            T::Pad { axis, start, size } => Op::Pad {
                axis: *axis,
                start: *start,
                size: *size,
            },
            T::Scatter { axis, size } => Op::Scatter {
                axis: *axis,
                size: *size,
            },
            T::ExpmFrechet => Op::ExpmFrechet,
            T::ExpmFrechet2 => Op::ExpmFrechet2,
            T::MatPowFrechet(k) => Op::MatPowFrechet(*k),
            T::MatPowFrechet2(k) => Op::MatPowFrechet2(*k),
            T::SortScatter => Op::SortScatter,
            T::SortGather(k) => Op::SortGather(*k),
        }
    }
}

/// Pattern names of the operators that rules mention (the rest print as their Debug form).
const NAMED_OPS: &[(&str, TensorOp)] = &[
    ("+", TensorOp::Binary(BinaryOp::Add)),
    ("-", TensorOp::Binary(BinaryOp::Sub)),
    ("*", TensorOp::Binary(BinaryOp::Mul)),
    ("/", TensorOp::Binary(BinaryOp::Div)),
    ("pow", TensorOp::Binary(BinaryOp::Pow)),
    ("neg", TensorOp::Unary(UnaryOp::Neg)),
    ("exp", TensorOp::Unary(UnaryOp::Exp)),
    ("log", TensorOp::Unary(UnaryOp::Log)),
    ("sqrt", TensorOp::Unary(UnaryOp::Sqrt)),
    ("sum", TensorOp::Sum(None)),
    ("sum0", TensorOp::Sum(Some(0))),
    ("sum1", TensorOp::Sum(Some(1))),
    ("@", TensorOp::MatMul),
    ("T", TensorOp::Transpose),
    ("trace", TensorOp::Trace),
    ("expm", TensorOp::Expm),
    ("expm_frechet", TensorOp::ExpmFrechet),
    ("expm_frechet2", TensorOp::ExpmFrechet2),
    ("logdet", TensorOp::LogDet),
    ("solve", TensorOp::Solve),
    ("inv", TensorOp::Inv),
];

/// Argument classes of an e-node, inline up to three (no allocation when egg copies nodes).
pub type NodeArgs = SmallVec<[Id; 3]>;

/// An e-node: an operator and its argument e-classes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorNode {
    pub op: TensorOp,
    pub args: NodeArgs,
}

impl TensorNode {
    pub fn new(op: TensorOp, args: impl Into<NodeArgs>) -> TensorNode {
        TensorNode {
            op,
            args: args.into(),
        }
    }
}

impl Language for TensorNode {
    type Discriminant = TensorOp;

    fn discriminant(&self) -> TensorOp {
        self.op.clone()
    }

    fn matches(&self, other: &Self) -> bool {
        self.op == other.op && self.args.len() == other.args.len()
    }

    fn children(&self) -> &[Id] {
        &self.args
    }

    fn children_mut(&mut self) -> &mut [Id] {
        &mut self.args
    }
}

/// Why a pattern operator could not be read.
#[derive(Debug)]
pub struct UnknownOp(pub String);

impl FromOp for TensorNode {
    type Error = UnknownOp;

    fn from_op(op: &str, children: Vec<Id>) -> Result<Self, UnknownOp> {
        if children.is_empty() {
            if let Ok(value) = op.parse::<f64>() {
                return Ok(TensorNode::new(TensorOp::constant(value), children));
            }
        }
        NAMED_OPS
            .iter()
            .find(|(name, _)| *name == op)
            .map(|(_, tensor_op)| TensorNode::new(tensor_op.clone(), children))
            .ok_or_else(|| UnknownOp(op.to_string()))
    }
}

impl fmt::Display for TensorNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let TensorOp::Const(bits) = self.op {
            return write!(f, "{}", f64::from_bits(bits));
        }
        match NAMED_OPS.iter().find(|(_, op)| *op == self.op) {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "{:?}", self.op),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_operators_round_trip() {
        for (name, op) in NAMED_OPS {
            let node = TensorNode::from_op(name, vec![]).unwrap();
            assert_eq!(node.op, *op);
            assert_eq!(node.to_string(), *name);
        }
        let c = TensorNode::from_op("-0.5", vec![]).unwrap();
        assert_eq!(c.op.to_ir(), Op::Const(-0.5));
        assert!(TensorNode::from_op("frobnicate", vec![]).is_err());
    }

    #[test]
    fn ir_ops_round_trip() {
        let ops = [
            Op::Const(1.5),
            Op::Sum { axis: Some(1) },
            Op::Eye(Dim::fixed(3)),
            Op::Pad {
                axis: 0,
                start: Dim::fixed(1),
                size: Dim::fixed(4),
            },
            Op::ExpmFrechet2,
            Op::MatPow(Dim::fixed(3)),
            Op::MatPowFrechet2(Dim::fixed(2)),
        ];
        for op in ops {
            assert_eq!(TensorOp::from_ir(&op).to_ir(), op);
        }
    }
}
