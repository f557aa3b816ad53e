//! Tensor IR: an arena of nodes with typed handles, in topological order.
//!
//! Invariants (checked by [`verify`]):
//! - every argument of a node precedes it in the arena (the arena order is a topological order);
//! - each node's shape is the one [`infer_shape`] gives for its op and argument shapes;
//! - each node's stage is the maximum of its arguments' stages (inputs carry their own stage),
//!   except `Argmin`, whose stage is the maximum over the outer nodes its subproblem reads;
//! - nodes are hash-consed: the builder never adds two nodes with the same op and arguments;
//! - every node with a source span ([`Program::node_spans`]) is a node of the graph.
//!
//! All values are f64 tensors of rank 0 (scalars) and up; ints and bools of the surface language
//! are represented exactly as f64. Shapes are symbolic ([`Dim`]) and bound to sizes at run time.

mod print;
mod shape;
mod verify;

pub use print::{op_name, op_text, print_program};
pub use shape::{broadcast_shapes, infer_shape, ShapeError};
pub use verify::verify;

use crate::diag::Span;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// Index of a dimension symbol in [`Program::dims`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DimId(pub u32);

/// Index of an input (data, parameter or variable) in [`Program::inputs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InputId(pub u32);

/// Index of a node in a [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub u32);

/// Index of an `argmin` lower-level problem in [`Program::subproblems`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SubproblemId(pub u32);

/// A size: `offset`, plus the value of one dimension symbol if `sym` is set (`d`, `d - 1`, `3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dim {
    pub sym: Option<DimId>,
    pub offset: i64,
}

impl Dim {
    pub const fn fixed(n: i64) -> Dim {
        Dim {
            sym: None,
            offset: n,
        }
    }

    pub const fn sym(id: DimId) -> Dim {
        Dim {
            sym: Some(id),
            offset: 0,
        }
    }

    pub fn is_one(self) -> bool {
        self == Dim::fixed(1)
    }

    /// The size under a binding of dimension symbols to values.
    pub fn eval(self, dims: &[u64]) -> i64 {
        self.offset + self.sym.map_or(0, |s| dims[s.0 as usize] as i64)
    }

    /// `self - other` when that is again a `Dim` (same symbol or `other` fixed).
    pub fn minus(self, other: Dim) -> Option<Dim> {
        match (self.sym, other.sym) {
            (s, None) => Some(Dim {
                sym: s,
                offset: self.offset - other.offset,
            }),
            (Some(a), Some(b)) if a == b => Some(Dim::fixed(self.offset - other.offset)),
            _ => None,
        }
    }
}

pub type Shape = Vec<Dim>;

/// When a value can first be computed: constants, then data, then parameters, then variables.
/// Everything below `Var` can be hoisted into the per-solve setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Stage {
    Const,
    Data,
    Param,
    Var,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    /// sign(0) = 0.
    Sign,
    Tanh,
    Sigmoid,
    /// log(1 + exp(x)), computed stably.
    Softplus,
    /// Heaviside step: 1 where x >= 0, else 0 (masks of derivative rules; derivative 0).
    Step,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
}

impl UnaryOp {
    /// The op on one scalar: the single definition of its semantics, shared by the interpreter,
    /// the native kernels and constant folding. NaN propagates.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Abs => x.abs(),
            // ±0 stays 0 and NaN stays NaN.
            UnaryOp::Sign if x > 0.0 => 1.0,
            UnaryOp::Sign if x < 0.0 => -1.0,
            UnaryOp::Sign => x,
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sigmoid if x >= 0.0 => 1.0 / (1.0 + (-x).exp()),
            UnaryOp::Sigmoid => {
                let e = x.exp();
                e / (1.0 + e)
            }
            UnaryOp::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            UnaryOp::Step if x >= 0.0 => 1.0,
            UnaryOp::Step if x < 0.0 => 0.0,
            UnaryOp::Step => x,
        }
    }
}

impl BinaryOp {
    /// The op on two scalars (see [`UnaryOp::apply`]); `max`/`min` propagate NaN like numpy.
    pub fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Max | BinaryOp::Min if a.is_nan() || b.is_nan() => f64::NAN,
            BinaryOp::Max => a.max(b),
            BinaryOp::Min => a.min(b),
        }
    }
}

/// The operation of a node. Elementwise binary ops broadcast with numpy's rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// A data array, parameter or variable (by its stage).
    Input(InputId),
    /// A scalar constant.
    Const(f64),
    /// The value of a size, as a scalar.
    DimSize(Dim),
    /// The index of the innermost enclosing `for` constraint, as a scalar.
    LoopIndex(u32),
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// Sum over one axis (removing it) or over all axes (giving a scalar).
    Sum {
        axis: Option<u32>,
    },
    /// Maximum over one axis or all axes.
    Max {
        axis: Option<u32>,
    },
    /// log(sum(exp(x))) over one axis or all axes, computed stably.
    LogSumExp {
        axis: Option<u32>,
    },
    /// Matrix product; rank-1 operands act as row/column vectors and their axis is dropped.
    MatMul,
    /// Transpose of a matrix.
    Transpose,
    /// The identity matrix of the given size.
    Eye(Dim),
    /// Vector to diagonal matrix.
    Diag,
    /// Diagonal of a square matrix as a vector.
    DiagPart,
    Trace,
    /// Matrix exponential.
    Expm,
    /// The `k`-th power of a square matrix (A⁰ = I).
    MatPow(Dim),
    /// log |det A| of a square matrix; the runtime reports non-positive determinants.
    LogDet,
    /// `solve(A, B)` = A⁻¹B (B a vector or matrix).
    Solve,
    Inv,
    /// Elements `start..end` along `axis` (the axis stays).
    Slice {
        axis: u32,
        start: Dim,
        end: Dim,
    },
    /// The element at the index given by the second (scalar) argument along `axis` (the axis goes).
    Select {
        axis: u32,
    },
    /// Scalars (or equally shaped tensors) stacked along a new leading axis.
    Stack,
    /// Broadcast to the given shape.
    BroadcastTo(Shape),
    /// Sum broadcast axes away to reach the given shape (the adjoint of `BroadcastTo`).
    SumTo(Shape),
    /// A rank-1 tensor sorted, descending.
    SortDesc,
    /// The k largest entries of a rank-1 tensor, descending.
    TopK(Dim),
    /// Number of nonzero entries (constraints only; not differentiable).
    Card,
    /// Sum of singular values of a matrix.
    NuclearNorm,
    /// The solution of a lower-level problem.
    Argmin(SubproblemId),
    /// A new axis of length `size` inserted at position `axis`, repeating the argument along it
    /// (the adjoint of `Sum { axis: Some(axis) }`).
    Expand {
        axis: u32,
        size: Dim,
    },
    /// Same shape as the argument: 1 at the first maximal entry (of the whole tensor, or of each
    /// line along `axis`), 0 elsewhere. The subgradient mask of `Max`; derivative 0.
    ArgmaxMask {
        axis: Option<u32>,
    },
    /// Zeros whose `axis` has length `size`, with the argument placed at offsets
    /// `start..start + len` along it (the adjoint of `Slice`).
    Pad {
        axis: u32,
        start: Dim,
        size: Dim,
    },
    /// Args `(x, index)`: zeros with a new axis of length `size` inserted at `axis`, holding `x`
    /// at the (scalar) index along it (the adjoint of `Select`).
    Scatter {
        axis: u32,
        size: Dim,
    },
    /// Args `(A, E)`, square and equal: the Fréchet derivative of `expm` at `A` in direction `E`,
    /// L(A, E) = d/dt expm(A + tE) at t = 0 (the upper-right block of expm([[A, E], [0, A]])).
    ExpmFrechet,
    /// Args `(A, E, F)`, square and equal: the second derivative
    /// ∂²/∂s∂t expm(A + sE + tF) at 0, symmetric in E and F (the sum of the upper-right blocks of
    /// expm([[A, E, 0], [0, A, F], [0, 0, A]]) and of the same with E and F swapped).
    ExpmFrechet2,
    /// Args `(A, E)`, square and equal: the Fréchet derivative of `MatPow(k)` at `A` in direction
    /// `E`, d/dt (A + tE)^k at t = 0 (the upper-right block of [[A, E], [0, A]]^k).
    MatPowFrechet(Dim),
    /// Args `(A, E, F)`, square and equal: ∂²/∂s∂t (A + sE + tF)^k at 0, symmetric in E and F
    /// (the upper-right blocks of [[A, E, 0], [0, A, F], [0, 0, A]]^k and of the same with E and F
    /// swapped, summed).
    MatPowFrechet2(Dim),
    /// Args `(x, g)`, vectors with len(g) ≤ len(x): zeros shaped like `x`, with `g[i]` at the
    /// position of the i-th largest entry of `x` (ties in index order, as `SortDesc` orders
    /// them). The adjoint of `SortDesc` and `TopK`.
    SortScatter,
    /// Args `(x, h)`, equal vectors: the entries of `h` at the positions of the k largest entries
    /// of `x`, in descending order of `x` (the adjoint of `SortScatter` in `g`).
    SortGather(Dim),
}

impl Eq for Op {}

impl std::hash::Hash for Op {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Op::Const(c) => c.to_bits().hash(state),
            Op::Input(i) => i.hash(state),
            Op::DimSize(d)
            | Op::Eye(d)
            | Op::TopK(d)
            | Op::SortGather(d)
            | Op::MatPow(d)
            | Op::MatPowFrechet(d)
            | Op::MatPowFrechet2(d) => d.hash(state),
            Op::LoopIndex(i) => i.hash(state),
            Op::Unary(u) => u.hash(state),
            Op::Binary(b) => b.hash(state),
            Op::Sum { axis } | Op::Max { axis } | Op::LogSumExp { axis } => axis.hash(state),
            Op::Slice { axis, start, end } => (axis, start, end).hash(state),
            Op::Select { axis } => axis.hash(state),
            Op::BroadcastTo(s) | Op::SumTo(s) => s.hash(state),
            Op::Argmin(s) => s.hash(state),
            Op::Expand { axis, size } | Op::Scatter { axis, size } => (axis, size).hash(state),
            Op::ArgmaxMask { axis } => axis.hash(state),
            Op::Pad { axis, start, size } => (axis, start, size).hash(state),
            _ => {}
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub op: Op,
    pub args: Vec<NodeId>,
    pub shape: Shape,
    pub stage: Stage,
}

/// The node arena. Append-only; see the module docs for its invariants. Serialized as its list
/// of nodes (the hash-consing table is rebuilt on deserialization).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(into = "Vec<Node>", from = "Vec<Node>")]
pub struct Graph {
    nodes: Vec<Node>,
    dedup: HashMap<(Op, Vec<NodeId>), NodeId>,
}

impl From<Graph> for Vec<Node> {
    fn from(graph: Graph) -> Vec<Node> {
        graph.nodes
    }
}

impl From<Vec<Node>> for Graph {
    fn from(nodes: Vec<Node>) -> Graph {
        let dedup = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| ((n.op.clone(), n.args.clone()), NodeId(i as u32)))
            .collect();
        Graph { nodes, dedup }
    }
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0 as usize]
    }

    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (NodeId(i as u32), n))
    }

    pub fn shape(&self, id: NodeId) -> &Shape {
        &self.node(id).shape
    }

    pub fn stage(&self, id: NodeId) -> Stage {
        self.node(id).stage
    }

    /// The value of a constant node, also broadcast (`broadcast_to` of a constant).
    pub fn const_value(&self, id: NodeId) -> Option<f64> {
        let node = self.node(id);
        match node.op {
            Op::Const(c) => Some(c),
            Op::BroadcastTo(_) => self.const_value(node.args[0]),
            _ => None,
        }
    }

    /// Adds an input node with the stage and shape of its declaration.
    pub fn input(&mut self, id: InputId, shape: Shape, stage: Stage) -> NodeId {
        self.push(Op::Input(id), Vec::new(), shape, stage)
    }

    /// Adds a node whose shape is inferred and whose stage is the max of its arguments'
    /// (or returns the existing identical node).
    pub fn add(&mut self, op: Op, args: Vec<NodeId>) -> Result<NodeId, ShapeError> {
        debug_assert!(!matches!(op, Op::Input(_) | Op::Argmin(_)));
        let shapes: Vec<&Shape> = args.iter().map(|&a| self.shape(a)).collect();
        let shape = infer_shape(&op, &shapes)?;
        let stage = args
            .iter()
            .map(|&a| self.stage(a))
            .max()
            .unwrap_or(Stage::Const);
        Ok(self.push(op, args, shape, stage))
    }

    /// Adds an `argmin` node; its shape and stage come from the subproblem.
    pub fn argmin(&mut self, id: SubproblemId, shape: Shape, stage: Stage) -> NodeId {
        self.push(Op::Argmin(id), Vec::new(), shape, stage)
    }

    pub fn constant(&mut self, value: f64) -> NodeId {
        self.push(Op::Const(value), Vec::new(), Vec::new(), Stage::Const)
    }

    /// Rebuilds the part of `root` that depends on node `from`, with `to` in its place (the same
    /// shape), and returns the new root. Nodes that do not depend on `from` are shared.
    pub fn substitute(
        &mut self,
        root: NodeId,
        from: NodeId,
        to: NodeId,
    ) -> Result<NodeId, ShapeError> {
        let mut mapped: HashMap<NodeId, NodeId> = HashMap::from([(from, to)]);
        for i in from.0..=root.0 {
            let id = NodeId(i);
            if id == from {
                continue;
            }
            let node = self.node(id).clone();
            if !node.args.iter().any(|a| mapped.contains_key(a)) {
                continue;
            }
            let args = node
                .args
                .iter()
                .map(|a| *mapped.get(a).unwrap_or(a))
                .collect();
            let new = match node.op {
                Op::Input(_) | Op::Argmin(_) => id,
                op => self.add(op, args)?,
            };
            mapped.insert(id, new);
        }
        Ok(*mapped.get(&root).unwrap_or(&root))
    }

    fn push(&mut self, op: Op, args: Vec<NodeId>, shape: Shape, stage: Stage) -> NodeId {
        let key = (op, args);
        if let Some(&id) = self.dedup.get(&key) {
            return id;
        }
        let id = NodeId(self.nodes.len() as u32);
        let (op, args) = key.clone();
        self.nodes.push(Node {
            op,
            args,
            shape,
            stage,
        });
        self.dedup.insert(key, id);
        id
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputKind {
    Data,
    Param,
    Var,
    /// The variable of an `argmin` lower-level problem.
    InnerVar,
    /// A direction vector added by second-order differentiation (Hessian-vector products);
    /// bound by the solver at each evaluation, like a variable.
    Direction,
}

impl InputKind {
    pub fn stage(self) -> Stage {
        match self {
            InputKind::Data => Stage::Data,
            InputKind::Param => Stage::Param,
            InputKind::Var | InputKind::InnerVar | InputKind::Direction => Stage::Var,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElemType {
    Real,
    Int,
    Bool,
}

/// Where the value of a data input comes from unless the command line overrides it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DataSource {
    /// `load("path")`, relative to the source file's directory.
    File(String),
    /// Must be bound on the command line.
    Unbound,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub name: String,
    pub kind: InputKind,
    pub elem: ElemType,
    pub shape: Shape,
    /// Data only: where the array comes from.
    pub source: Option<DataSource>,
    /// Params: default value; vars: initial value (data/param stage nodes, broadcast to `shape`).
    pub value: Option<NodeId>,
    /// Vars: elementwise lower and upper bounds (nodes of stage ≤ Param).
    pub lower: Option<NodeId>,
    pub upper: Option<NodeId>,
    /// Where the input is declared (not kept in artifacts; none for inputs the compiler adds).
    #[serde(skip)]
    pub span: Option<Span>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DimInfo {
    pub name: String,
    pub default: Option<u64>,
    /// Where the dim is declared (not kept in artifacts).
    #[serde(skip)]
    pub span: Option<Span>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sense {
    Minimize,
    Maximize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub sense: Sense,
    pub node: NodeId,
}

/// A named set a tensor is constrained to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SetKind {
    Nonneg,
    Simplex,
    /// A square matrix equal to its transpose.
    Symmetric,
    /// `box(lo, hi)` with scalar nodes.
    Box {
        lower: NodeId,
        upper: NodeId,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ConstraintKind {
    /// `node == 0` elementwise.
    Eq,
    /// `node <= 0` elementwise.
    Le,
    /// `node ∈ set`.
    In(SetKind),
    /// `card(node) <= bound`: at most `bound` nonzeros.
    Card { bound: NodeId },
}

/// `for index in start..end:` around a constraint; `LoopIndex(level)` nodes read the index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForRange {
    pub level: u32,
    pub start: Dim,
    pub end: Dim,
    /// Where `start..end` is written (not kept in artifacts).
    #[serde(skip)]
    pub span: Option<Span>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    pub name: String,
    /// For `Eq`/`Le`: lhs − rhs (≥ constraints are flipped). For `In`/`Card`: the constrained tensor.
    pub node: NodeId,
    pub kind: ConstraintKind,
    pub ranges: Vec<ForRange>,
    /// A `Le` written `lhs >= rhs` (its node is rhs − lhs); results show it as written.
    pub flipped: bool,
    /// Where the constraint is written (not kept in artifacts).
    #[serde(skip)]
    pub span: Option<Span>,
}

/// `argmin var { objective }`: the objective may read outer nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subproblem {
    pub var: InputId,
    pub objective: NodeId,
}

/// A literal option value of `solve with`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OptionValue {
    Number(f64),
    Str(String),
    Name(String),
    List(Vec<OptionValue>),
    Call(SolveSpec),
}

/// `solve with method(key = value, ...)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SolveSpec {
    pub method: String,
    pub positional: Vec<OptionValue>,
    pub options: Vec<(String, OptionValue)>,
    /// Where the method and its options are written (not kept in artifacts).
    #[serde(skip)]
    pub spans: SpecSpans,
}

/// The source spans of a [`SolveSpec`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpecSpans {
    /// The method's name.
    pub method: Option<Span>,
    /// Each `name = value`, in the order of [`SolveSpec::options`].
    pub options: Vec<Span>,
    /// Each positional value, in the order of [`SolveSpec::positional`].
    pub positional: Vec<Span>,
}

/// As written: `lbfgs(max_iter = 100, tol = 1e-8)`.
impl fmt::Display for SolveSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.positional.iter().map(|v| v.to_string()).collect();
        parts.extend(self.options.iter().map(|(k, v)| format!("{k} = {v}")));
        write!(f, "{}({})", self.method, parts.join(", "))
    }
}

impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Number(x) => write!(f, "{x:?}"),
            OptionValue::Str(s) => write!(f, "{s:?}"),
            OptionValue::Name(n) => f.write_str(n),
            OptionValue::List(items) => {
                let items: Vec<String> = items.iter().map(|v| v.to_string()).collect();
                write!(f, "[{}]", items.join(", "))
            }
            OptionValue::Call(s) => write!(f, "{s}"),
        }
    }
}

impl SolveSpec {
    /// Where the option `name` is written: among this method's options, else among those of
    /// the methods it takes as values (`dual(lbfgs(max_iter = 5))`).
    pub fn option_span(&self, name: &str) -> Option<Span> {
        let own = self.options.iter().zip(&self.spans.options);
        if let Some((_, &span)) = own.clone().find(|((key, _), _)| key == name) {
            return Some(span);
        }
        let mut nested = self
            .positional
            .iter()
            .chain(self.options.iter().map(|(_, v)| v));
        nested.find_map(|value| match value {
            OptionValue::Call(call) => call.option_span(name),
            _ => None,
        })
    }
}

/// A post-processing step of an output (`W |> threshold(0.3) |> as_dag`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PostOp {
    /// Entries of magnitude below the cutoff become 0.
    Threshold(Cutoff),
    AsDag,
}

impl fmt::Display for PostOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostOp::Threshold(Cutoff::Value(v)) => write!(f, "threshold({v})"),
            PostOp::Threshold(Cutoff::Param(name)) => write!(f, "threshold({name})"),
            PostOp::AsDag => write!(f, "as_dag"),
        }
    }
}

/// The cutoff of `threshold`: a number, or a scalar parameter's value at the time of the solve
/// (so that `--param` can sweep it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Cutoff {
    Value(f64),
    Param(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub name: String,
    pub node: NodeId,
    pub post: Vec<PostOp>,
}

/// A whole lowered model.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Program {
    pub dims: Vec<DimInfo>,
    pub inputs: Vec<Input>,
    pub graph: Graph,
    /// The input node of each input, by `InputId`.
    pub input_nodes: Vec<NodeId>,
    pub objective: Option<Objective>,
    pub constraints: Vec<Constraint>,
    pub subproblems: Vec<Subproblem>,
    pub solve: Option<SolveSpec>,
    pub outputs: Vec<Output>,
    /// The source expression of each lowered node, the first one for a node shared by several
    /// (not kept in artifacts).
    #[serde(skip)]
    pub node_spans: HashMap<NodeId, Span>,
}

impl Program {
    pub fn input(&self, id: InputId) -> &Input {
        &self.inputs[id.0 as usize]
    }

    /// Where the expression of `node` is written, for a node lowered from the source.
    pub fn node_span(&self, node: NodeId) -> Option<Span> {
        self.node_spans.get(&node).copied()
    }

    /// Where the `solve with` method is named.
    pub fn method_span(&self) -> Option<Span> {
        self.solve.as_ref()?.spans.method
    }

    /// Declares a new input (no value, no bounds) and adds its node.
    pub fn add_input(
        &mut self,
        name: impl Into<String>,
        kind: InputKind,
        elem: ElemType,
        shape: Shape,
    ) -> (InputId, NodeId) {
        let id = InputId(self.inputs.len() as u32);
        self.inputs.push(Input {
            name: name.into(),
            kind,
            elem,
            shape: shape.clone(),
            source: None,
            value: None,
            lower: None,
            upper: None,
            span: None,
        });
        let node = self.graph.input(id, shape, kind.stage());
        self.input_nodes.push(node);
        (id, node)
    }

    /// Declares a scalar parameter input whose default value is `value` (the solvers' penalty
    /// weights and path parameters) and adds its node.
    pub fn add_param(&mut self, name: impl Into<String>, value: f64) -> (InputId, NodeId) {
        let (id, node) = self.add_input(name, InputKind::Param, ElemType::Real, Vec::new());
        let default = self.graph.constant(value);
        self.inputs[id.0 as usize].value = Some(default);
        (id, node)
    }

    /// The default value of a scalar input whose default is a constant (a parameter of
    /// [`Program::add_param`]).
    pub fn param_default(&self, id: InputId) -> Option<f64> {
        let input = self.inputs.get(id.0 as usize)?;
        match self.graph.node(input.value?).op {
            Op::Const(c) if input.shape.is_empty() => Some(c),
            _ => None,
        }
    }

    /// The objective as minimized (negated for `maximize`), or `None` without an objective.
    pub fn minimized_objective(&mut self) -> Option<NodeId> {
        let objective = self.objective.clone()?;
        Some(match objective.sense {
            Sense::Minimize => objective.node,
            Sense::Maximize => self
                .graph
                .add(Op::Unary(UnaryOp::Neg), vec![objective.node])
                .expect("negating a scalar"),
        })
    }

    /// A program with this one's dims and inputs (same ids; no defaults or bounds) and no other
    /// node: the start of a program rebuilt from this one.
    pub fn inputs_only(&self) -> Program {
        let mut out = Program {
            dims: self.dims.clone(),
            ..Program::default()
        };
        for input in &self.inputs {
            out.add_input(
                input.name.clone(),
                input.kind,
                input.elem,
                input.shape.clone(),
            );
        }
        out
    }

    /// A program computing `roots` in which each `given` node is replaced by a new data input,
    /// declared after the existing inputs in the order of `given` (so a caller passes its value
    /// there), and nothing else is kept: this is how setup values computed once reach a function
    /// compiled for the per-iteration work. Returns the program and the roots' ids in it.
    /// Inputs keep their ids but not their defaults or bounds; subproblems are not kept.
    pub fn cut(
        &self,
        roots: &[NodeId],
        given: &[NodeId],
    ) -> Result<(Program, Vec<NodeId>), ShapeError> {
        let mut out = self.inputs_only();
        let g = &self.graph;
        let mut mapped: Vec<Option<NodeId>> = vec![None; g.len()];
        for (j, &node) in given.iter().enumerate() {
            let shape = g.shape(node).clone();
            let (_, new) =
                out.add_input(format!("given{j}"), InputKind::Data, ElemType::Real, shape);
            mapped[node.0 as usize] = Some(new);
        }
        let mut needed = vec![false; g.len()];
        for r in roots {
            needed[r.0 as usize] = true;
        }
        for i in (0..g.len()).rev() {
            if needed[i] && mapped[i].is_none() {
                for a in &g.node(NodeId(i as u32)).args {
                    needed[a.0 as usize] = true;
                }
            }
        }
        for (id, node) in g.nodes() {
            let i = id.0 as usize;
            if !needed[i] || mapped[i].is_some() {
                continue;
            }
            let new = match node.op {
                Op::Input(k) => out.input_nodes[k.0 as usize],
                Op::Argmin(sub) => out.graph.argmin(sub, node.shape.clone(), node.stage),
                ref op => {
                    let args = node
                        .args
                        .iter()
                        .map(|a| mapped[a.0 as usize].expect("arguments come first"))
                        .collect();
                    out.graph.add(op.clone(), args)?
                }
            };
            mapped[i] = Some(new);
        }
        let roots = roots
            .iter()
            .map(|r| mapped[r.0 as usize].expect("roots are kept"))
            .collect();
        Ok((out, roots))
    }

    pub fn input_by_name(&self, name: &str) -> Option<InputId> {
        self.inputs
            .iter()
            .position(|i| i.name == name)
            .map(|i| InputId(i as u32))
    }

    pub fn dim_by_name(&self, name: &str) -> Option<DimId> {
        self.dims
            .iter()
            .position(|d| d.name == name)
            .map(|i| DimId(i as u32))
    }

    /// The variables of the top-level problem, in declaration order.
    pub fn variables(&self) -> impl Iterator<Item = InputId> + '_ {
        self.inputs
            .iter()
            .enumerate()
            .filter(|(_, i)| i.kind == InputKind::Var)
            .map(|(i, _)| InputId(i as u32))
    }

    /// Writes a dim for humans: `d`, `d-1`, `3`.
    pub fn dim_name(&self, d: Dim) -> String {
        match d.sym {
            None => d.offset.to_string(),
            Some(s) => {
                let name = &self.dims[s.0 as usize].name;
                match d.offset {
                    0 => name.clone(),
                    o if o > 0 => format!("{name}+{o}"),
                    o => format!("{name}{o}"),
                }
            }
        }
    }

    pub fn shape_name(&self, shape: &[Dim]) -> String {
        let parts: Vec<String> = shape.iter().map(|&d| self.dim_name(d)).collect();
        format!("[{}]", parts.join(", "))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}
