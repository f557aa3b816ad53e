//! Abstract syntax tree of a `.opt` file, as produced by the parser.
//!
//! Every node carries the [`Span`] of the source it came from. Sugar is removed by the parser where
//! that loses nothing for diagnostics: `a |> f(b)` becomes the call `f(a, b)`.

use crate::diag::Span;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A whole source file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Module {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Item {
    pub kind: ItemKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ItemKind {
    /// `dims n, d = 10`
    Dims(Vec<DimDecl>),
    /// `data X : real[n, d] = load("X.npy")`; without `= ...` it must be bound by `--data`.
    Data {
        name: Ident,
        ty: TypeExpr,
        value: Option<Expr>,
    },
    /// `param lambda1 : real = 0.02`; the type defaults to `real`.
    Param {
        name: Ident,
        ty: Option<TypeExpr>,
        value: Expr,
    },
    /// `var W : real[d, d] >= 0 = 0`: bounds, then the initial value (default 0).
    Var {
        name: Ident,
        ty: TypeExpr,
        bounds: Vec<Bound>,
        init: Option<Expr>,
    },
    /// `let r = X - X @ W`
    Let { name: Ident, value: Expr },
    /// `fn f(W : real[d, d], s : real = 1) = expr`
    Fn {
        name: Ident,
        params: Vec<FnParam>,
        body: Expr,
    },
    /// `minimize expr` / `maximize expr`
    Objective { sense: Sense, expr: Expr },
    /// `subject to` followed by constraints.
    Constraints(Vec<Constraint>),
    /// `solve with method(options...)`: the method is an identifier or a call.
    Solve { method: Expr },
    /// `output W |> threshold(0.3), sigma`
    Output(Vec<OutputItem>),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DimDecl {
    pub name: Ident,
    pub default: Option<(u64, Span)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ElemType {
    Real,
    Int,
    Bool,
}

/// `real`, `int[n]`, `real[n, d]`, `real[3]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TypeExpr {
    pub elem: ElemType,
    pub dims: Vec<DimExpr>,
    pub span: Span,
}

/// A size in a type: a dim name shifted by a constant (`n`, `n - 1`, `d + 2`) or a literal.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum DimExpr {
    Named {
        name: Ident,
        offset: i64,
        span: Span,
    },
    Literal(u64, Span),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bound {
    pub op: CmpOp,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FnParam {
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Sense {
    Minimize,
    Maximize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CmpOp {
    Eq,
    Le,
    Ge,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Constraint {
    pub label: Option<Ident>,
    pub kind: ConstraintKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ConstraintKind {
    /// `lhs == rhs`, `lhs <= rhs`, `lhs >= rhs`
    Compare { lhs: Expr, op: CmpOp, rhs: Expr },
    /// `x in simplex`, `x in box(0, 1)`
    In { expr: Expr, set: Expr },
    /// `for j in 0..n: body`
    For {
        index: Ident,
        start: Expr,
        end: Expr,
        body: Box<Constraint>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutputItem {
    /// `output name = expr`; without a name the output is named after its leading identifier.
    pub name: Option<Ident>,
    pub expr: Expr,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum UnOp {
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BinOp {
    Add,
    Sub,
    /// `*`: scalar times anything.
    Mul,
    /// `.*`: elementwise product with broadcasting.
    ElemMul,
    /// `/`: elementwise division with broadcasting.
    Div,
    /// `@`: matrix product.
    MatMul,
    /// `^`: elementwise power.
    Pow,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ExprKind {
    Int(i64),
    Real(f64),
    Bool(bool),
    Str(String),
    Name(String),
    Unary {
        op: UnOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Call {
        func: Ident,
        args: Vec<Arg>,
    },
    Index {
        base: Box<Expr>,
        indices: Vec<IndexExpr>,
    },
    /// `[1, 0.9, 0.8]`
    Array(Vec<Expr>),
    /// `argmin z : real[N] { body }`
    Argmin {
        var: Ident,
        ty: TypeExpr,
        body: Box<Expr>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum IndexExpr {
    /// `x[i]`: selects one position and drops the axis.
    Single(Expr),
    /// `x[a:b]`, `x[:]`, `x[a:]`, `x[:b]`: keeps the axis.
    Range {
        start: Option<Expr>,
        end: Option<Expr>,
        span: Span,
    },
}
