//! Semantic analysis: name resolution, element types, symbolic shapes and placement rules.
//!
//! [`check`] turns a parsed [`ast::Module`] (plus the parsed standard library) into a
//! [`TypedModule`]: every declaration with its resolved type and shape, every expression with its
//! element type, shape and a resolved reference. Shapes reuse the IR's symbolic [`Dim`](crate::ir::Dim); the
//! generic dims of a `fn` are extra dim symbols owned by that fn and bound at each call.

mod builtins;
mod check;
mod codes;
mod print;

pub use builtins::Builtin;
pub use check::{check, KNOWN_METHODS};
pub use codes::SEMA;
pub use print::typed_to_text;

use crate::ast::{self, BinOp, CmpOp, ElemType, Sense};
use crate::diag::{Diagnostics, Span};
use crate::ir::{DimId, Shape, SolveSpec};

/// The result of checking one file.
#[derive(Clone, Debug)]
pub struct TypedModule {
    /// Dimension symbols: the file's `dims` first, then the generic dims of every fn.
    pub dims: Vec<DimSym>,
    pub data: Vec<DataDecl>,
    pub params: Vec<ParamDecl>,
    pub vars: Vec<VarDecl>,
    pub lets: Vec<LetDecl>,
    /// Standard-library fns first, then the file's own.
    pub fns: Vec<FnDecl>,
    /// `argmin` variables, referenced by [`Ref::ArgminVar`].
    pub argmin_vars: Vec<ArgminVar>,
    pub objective: Objective,
    pub constraints: Vec<Constraint>,
    pub solve: Option<SolveSpec>,
    pub outputs: Vec<Output>,
    /// Non-fatal findings (e.g. an `argmin` body that ignores its variable).
    pub warnings: Diagnostics,
}

/// The type of a value: element type and symbolic shape (empty = scalar).
#[derive(Clone, Debug, PartialEq)]
pub struct Ty {
    pub elem: ElemType,
    pub shape: Shape,
}

impl Ty {
    pub fn scalar(elem: ElemType) -> Ty {
        Ty {
            elem,
            shape: Vec::new(),
        }
    }

    pub fn is_scalar(&self) -> bool {
        self.shape.is_empty()
    }
}

#[derive(Clone, Debug)]
pub struct DimSym {
    pub name: String,
    pub default: Option<u64>,
    /// `Some(f)` for a generic dim of fn `f`; `None` for a top-level `dims` symbol.
    pub owner: Option<FnId>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FnId(pub u32);

#[derive(Clone, Debug)]
pub struct DataDecl {
    pub name: String,
    pub ty: Ty,
    /// The path of `= load("path")`; `None` when bound on the command line.
    pub load: Option<String>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct ParamDecl {
    pub name: String,
    pub ty: Ty,
    pub value: TExpr,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct VarDecl {
    pub name: String,
    pub ty: Ty,
    pub lower: Option<TExpr>,
    pub upper: Option<TExpr>,
    /// The initial value; `None` means 0.
    pub init: Option<TExpr>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct LetDecl {
    pub name: String,
    pub value: TExpr,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct FnDecl {
    pub name: String,
    pub params: Vec<FnParam>,
    /// The fn's generic dims (indices into [`TypedModule::dims`]).
    pub generic_dims: Vec<DimId>,
    pub body: TExpr,
    pub from_stdlib: bool,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct FnParam {
    pub name: String,
    pub ty: Ty,
    /// Typed in the fn's scope (may read earlier params and the generic dims).
    pub default: Option<TExpr>,
}

#[derive(Clone, Debug)]
pub struct ArgminVar {
    pub name: String,
    pub ty: Ty,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Objective {
    pub sense: Sense,
    pub expr: TExpr,
}

#[derive(Clone, Debug)]
pub struct Constraint {
    /// The label, or `c<k>` for the k-th constraint (0-based).
    pub name: String,
    /// Enclosing `for` loops, outermost first; loop `i` is read by `Ref::LoopIndex(i)`.
    pub loops: Vec<Loop>,
    pub kind: ConstraintKind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Loop {
    pub index: String,
    pub start: crate::ir::Dim,
    pub end: crate::ir::Dim,
    /// Where `start..end` is written.
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum ConstraintKind {
    Compare {
        lhs: TExpr,
        op: CmpOp,
        rhs: TExpr,
    },
    In {
        expr: TExpr,
        set: SetExpr,
    },
    /// `card(expr) <= bound` (bound an int scalar).
    Card {
        expr: TExpr,
        bound: TExpr,
    },
}

#[derive(Clone, Debug)]
pub enum SetExpr {
    Nonneg,
    Simplex,
    /// A square matrix equal to its transpose.
    Symmetric,
    Box {
        lower: Box<TExpr>,
        upper: Box<TExpr>,
    },
}

#[derive(Clone, Debug)]
pub struct Output {
    pub name: String,
    pub expr: TExpr,
    pub post: Vec<crate::ir::PostOp>,
}

/// A typed expression.
#[derive(Clone, Debug)]
pub struct TExpr {
    pub kind: TExprKind,
    pub ty: Ty,
    pub span: Span,
}

/// What a name refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ref {
    /// A dimension symbol used as a value (an int scalar).
    Dim(DimId),
    Data(u32),
    Param(u32),
    Var(u32),
    Let(u32),
    /// Parameter `k` of the fn being defined.
    FnParam(u32),
    /// The index of loop `level` (0 = outermost) of the enclosing constraint.
    LoopIndex(u32),
    ArgminVar(u32),
}

#[derive(Clone, Debug)]
pub enum TExprKind {
    /// A numeric or boolean literal (booleans as 0/1; the element type says which).
    Const(f64),
    Ref(Ref),
    Neg(Box<TExpr>),
    Binary {
        op: BinOp,
        lhs: Box<TExpr>,
        rhs: Box<TExpr>,
    },
    Builtin {
        builtin: Builtin,
        args: Vec<TExpr>,
        /// Reductions: the axis; `None` reduces everything.
        axis: Option<u32>,
        /// `eye(n)`, `topk(x, k)`: the static size argument.
        size: Option<crate::ir::Dim>,
    },
    Call {
        func: FnId,
        /// One entry per fn parameter, in declaration order.
        args: Vec<CallArg>,
        /// The binding of the fn's generic dims (same order as [`FnDecl::generic_dims`]).
        dims: Vec<crate::ir::Dim>,
    },
    Index {
        base: Box<TExpr>,
        indices: Vec<TIndex>,
    },
    /// `[e1, e2, ...]`: equally shaped elements stacked along a new leading axis.
    Array(Vec<TExpr>),
    Argmin {
        var: u32,
        body: Box<TExpr>,
    },
}

#[derive(Clone, Debug)]
pub enum CallArg {
    Given(TExpr),
    /// The parameter's default expression, evaluated in the callee.
    Default,
}

#[derive(Clone, Debug)]
pub enum TIndex {
    /// Selects one position (an int scalar) and drops the axis.
    Single(TExpr),
    /// Keeps positions `start..end` of the axis.
    Range {
        start: crate::ir::Dim,
        end: crate::ir::Dim,
    },
}

/// The AST element type as the IR's.
pub fn ir_elem(e: ElemType) -> crate::ir::ElemType {
    match e {
        ElemType::Real => crate::ir::ElemType::Real,
        ElemType::Int => crate::ir::ElemType::Int,
        ElemType::Bool => crate::ir::ElemType::Bool,
    }
}
