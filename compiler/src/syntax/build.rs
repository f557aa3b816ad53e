//! Pest pairs → AST. Applies operator precedence with an explicit operator stack (no recursion
//! over operator chains), bounds the expression depth (E0003), desugars `a |> f(b)` into
//! `f(a, b)`, and validates literals (E0004). Every node gets the span of its source text.

use super::{Rule, MAX_EXPR_DEPTH};
use crate::ast::*;
use crate::diag::{Diagnostic, Diagnostics, FileId, Span};
use pest::iterators::Pair;

/// Deepest nesting of `for` constraints accepted (E0003 beyond).
const MAX_FOR_DEPTH: u32 = 64;

/// An expression with the depth of its tree.
struct Node {
    expr: Expr,
    depth: u32,
}

#[derive(Clone, Copy)]
enum Infix {
    Pipe,
    Bin(BinOp),
}

/// An operator waiting on the operator stack.
#[derive(Clone, Copy)]
enum Pending {
    Neg(Span),
    Infix(Infix, Span),
}

const NEG_PRECEDENCE: u8 = 4;

fn precedence(op: Infix) -> u8 {
    match op {
        Infix::Pipe => 1,
        Infix::Bin(BinOp::Add | BinOp::Sub) => 2,
        Infix::Bin(BinOp::Mul | BinOp::ElemMul | BinOp::Div | BinOp::MatMul) => 3,
        Infix::Bin(BinOp::Pow) => 5,
    }
}

impl Pending {
    /// Whether this stacked operator applies before `incoming` is pushed.
    fn binds_before(self, incoming: Infix) -> bool {
        let p = precedence(incoming);
        match self {
            Pending::Neg(_) => NEG_PRECEDENCE >= p,
            Pending::Infix(op, _) => {
                let right_assoc = matches!(incoming, Infix::Bin(BinOp::Pow));
                precedence(op) > p || (precedence(op) == p && !right_assoc)
            }
        }
    }
}

/// Tokens that carry no information once the shape of a rule is known.
fn is_punctuation(rule: Rule) -> bool {
    use Rule::*;
    matches!(
        rule,
        comma
            | colon
            | assign
            | rparen
            | rbracket
            | rbrace
            | range_dots
            | stmt_end
            | EOI
            | kw_dims
            | kw_data
            | kw_param
            | kw_var
            | kw_let
            | kw_fn
            | kw_subject
            | kw_to
            | kw_for
            | kw_in
            | kw_solve
            | kw_with
            | kw_output
            | kw_argmin
    )
}

/// The meaningful children of `pair`.
fn parts(pair: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    pair.into_inner().filter(|p| !is_punctuation(p.as_rule()))
}

pub struct Builder<'d> {
    file: FileId,
    /// Byte offset of the parsed input within the file.
    base: usize,
    diagnostics: &'d mut Diagnostics,
}

impl<'d> Builder<'d> {
    pub fn new(file: FileId, base: usize, diagnostics: &'d mut Diagnostics) -> Builder<'d> {
        Builder {
            file,
            base,
            diagnostics,
        }
    }

    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, self.base + s.start(), self.base + s.end())
    }

    /// Records `diagnostic` and fails the current statement.
    fn fail<T>(&mut self, diagnostic: Diagnostic) -> Option<T> {
        self.diagnostics.push(diagnostic);
        None
    }

    /// Reports input the grammar should have excluded (kept so no input can panic the parser).
    fn malformed<T>(&mut self, span: Span) -> Option<T> {
        self.fail(Diagnostic::error("E0001", "malformed input").with_primary(span, "here"))
    }

    fn ident(&self, pair: &Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(pair),
        }
    }

    /// Builds the item of one `step` (None for a step without statement or after an error).
    pub fn step(&mut self, step: Pair<'_, Rule>) -> Option<Item> {
        let statement = parts(step).next()?;
        let span = self.span(&statement);
        let kind = self.statement(statement)?;
        Some(Item { kind, span })
    }

    fn statement(&mut self, pair: Pair<'_, Rule>) -> Option<ItemKind> {
        let rule = pair.as_rule();
        let span = self.span(&pair);
        let mut p = parts(pair).peekable();
        Some(match rule {
            Rule::dims_stmt => {
                ItemKind::Dims(p.map(|d| self.dim_decl(d)).collect::<Option<Vec<_>>>()?)
            }
            Rule::data_stmt => {
                let name = self.ident(&p.next()?);
                let ty = self.type_expr(p.next()?)?;
                let value = self.optional_expr(p.next())?;
                ItemKind::Data { name, ty, value }
            }
            Rule::param_stmt => {
                let name = self.ident(&p.next()?);
                let ty = match p.next_if(|t| t.as_rule() == Rule::type_expr) {
                    Some(t) => Some(self.type_expr(t)?),
                    None => None,
                };
                let value = self.expr(p.next()?)?;
                ItemKind::Param { name, ty, value }
            }
            Rule::var_stmt => {
                let name = self.ident(&p.next()?);
                let ty = self.type_expr(p.next()?)?;
                let mut bounds = Vec::new();
                while let Some(b) = p.next_if(|b| b.as_rule() == Rule::bound) {
                    bounds.push(self.bound(b)?);
                }
                let init = self.optional_expr(p.next())?;
                ItemKind::Var {
                    name,
                    ty,
                    bounds,
                    init,
                }
            }
            Rule::let_stmt => {
                let name = self.ident(&p.next()?);
                let value = self.expr(p.next()?)?;
                ItemKind::Let { name, value }
            }
            Rule::fn_stmt => {
                let name = self.ident(&p.next()?);
                let mut params = Vec::new();
                while let Some(param) = p.next_if(|q| q.as_rule() == Rule::fn_param) {
                    params.push(self.fn_param(param)?);
                }
                let body = self.expr(p.next()?)?;
                ItemKind::Fn { name, params, body }
            }
            Rule::objective => {
                let sense = match p.next()?.as_rule() {
                    Rule::kw_maximize => Sense::Maximize,
                    _ => Sense::Minimize,
                };
                let expr = self.expr(p.next()?)?;
                ItemKind::Objective { sense, expr }
            }
            Rule::constraints => ItemKind::Constraints(
                p.map(|c| self.constraint(c, 0))
                    .collect::<Option<Vec<_>>>()?,
            ),
            Rule::solve_stmt => ItemKind::Solve {
                method: self.expr(p.next()?)?,
            },
            Rule::output_stmt => {
                ItemKind::Output(p.map(|o| self.output_item(o)).collect::<Option<Vec<_>>>()?)
            }
            _ => return self.malformed(span),
        })
    }

    fn dim_decl(&mut self, pair: Pair<'_, Rule>) -> Option<DimDecl> {
        let mut p = parts(pair);
        let name = self.ident(&p.next()?);
        let default = match p.next() {
            Some(n) => {
                let span = self.span(&n);
                match n.as_str().parse::<u64>() {
                    Ok(v) => Some((v, span)),
                    Err(_) => {
                        return self.fail(
                            Diagnostic::error("E0004", "a dimension size must be a whole number")
                                .with_primary(span, "expected a non-negative integer")
                                .with_hint("write e.g. `dims n = 64`"),
                        );
                    }
                }
            }
            None => None,
        };
        Some(DimDecl { name, default })
    }

    fn type_expr(&mut self, pair: Pair<'_, Rule>) -> Option<TypeExpr> {
        let span = self.span(&pair);
        let mut p = parts(pair);
        let elem = match p.next()?.into_inner().next()?.as_rule() {
            Rule::kw_int => ElemType::Int,
            Rule::kw_bool => ElemType::Bool,
            _ => ElemType::Real,
        };
        let mut dims = Vec::new();
        for dim in p {
            let dspan = self.span(&dim);
            let mut inner = dim.into_inner();
            let d = inner.next()?;
            let parsed = match d.as_rule() {
                Rule::ident => {
                    let name = self.ident(&d);
                    match inner.next() {
                        None => Some(DimExpr::Named {
                            name,
                            offset: 0,
                            span: dspan,
                        }),
                        Some(shift) => {
                            let mut s = shift.into_inner();
                            let negative = s.next()?.as_rule() == Rule::op_sub;
                            s.next()?
                                .as_str()
                                .parse::<i64>()
                                .ok()
                                .map(|k| DimExpr::Named {
                                    name,
                                    offset: if negative { -k } else { k },
                                    span: dspan,
                                })
                        }
                    }
                }
                _ => d
                    .as_str()
                    .parse::<u64>()
                    .ok()
                    .map(|v| DimExpr::Literal(v, dspan)),
            };
            match parsed {
                Some(dim) => dims.push(dim),
                None => {
                    return self.fail(
                        Diagnostic::error("E0011", "invalid dimension in a type")
                            .with_primary(dspan, "expected a name, a name plus or minus an integer, or a non-negative integer")
                            .with_hint(super::errors::DIM_HINT),
                    );
                }
            }
        }
        Some(TypeExpr { elem, dims, span })
    }

    fn bound(&mut self, pair: Pair<'_, Rule>) -> Option<Bound> {
        let span = self.span(&pair);
        let mut p = parts(pair);
        let op = match p.next()?.as_str() {
            "<=" => CmpOp::Le,
            _ => CmpOp::Ge,
        };
        let value = self.expr(p.next()?)?;
        Some(Bound { op, value, span })
    }

    fn fn_param(&mut self, pair: Pair<'_, Rule>) -> Option<FnParam> {
        let mut p = parts(pair);
        let name = self.ident(&p.next()?);
        let ty = self.type_expr(p.next()?)?;
        let default = self.optional_expr(p.next())?;
        Some(FnParam { name, ty, default })
    }

    fn output_item(&mut self, pair: Pair<'_, Rule>) -> Option<OutputItem> {
        let mut p = parts(pair).peekable();
        let name = p
            .next_if(|n| n.as_rule() == Rule::ident)
            .map(|n| self.ident(&n));
        let expr = self.expr(p.next()?)?;
        Some(OutputItem { name, expr })
    }

    fn constraint(&mut self, pair: Pair<'_, Rule>, for_depth: u32) -> Option<Constraint> {
        let span = self.span(&pair);
        let mut p = parts(pair).peekable();
        let label = p
            .next_if(|n| n.as_rule() == Rule::ident)
            .map(|n| self.ident(&n));
        let body = p.next()?;
        let kind = match body.as_rule() {
            Rule::for_constraint => {
                if for_depth >= MAX_FOR_DEPTH {
                    return self.fail(
                        Diagnostic::error("E0003", "`for` constraints are nested too deeply")
                            .with_primary(
                                self.span(&body),
                                format!("more than {MAX_FOR_DEPTH} nested `for`"),
                            ),
                    );
                }
                let mut f = parts(body);
                let index = self.ident(&f.next()?);
                let start = self.expr(f.next()?)?;
                let end = self.expr(f.next()?)?;
                let body = self.constraint(f.next()?, for_depth + 1)?;
                ConstraintKind::For {
                    index,
                    start,
                    end,
                    body: Box::new(body),
                }
            }
            _ => {
                let mut r = body.into_inner();
                let lhs = self.expr(r.next()?)?;
                let op = r.next()?;
                let rhs = self.expr(r.next()?)?;
                match op.as_str() {
                    "in" => ConstraintKind::In {
                        expr: lhs,
                        set: rhs,
                    },
                    cmp => ConstraintKind::Compare {
                        lhs,
                        op: match cmp {
                            "<=" => CmpOp::Le,
                            ">=" => CmpOp::Ge,
                            _ => CmpOp::Eq,
                        },
                        rhs,
                    },
                }
            }
        };
        Some(Constraint { label, kind, span })
    }

    /// `Some(None)` without a pair, `None` when building it failed.
    fn optional_expr(&mut self, pair: Option<Pair<'_, Rule>>) -> Option<Option<Expr>> {
        match pair {
            Some(e) => Some(Some(self.expr(e)?)),
            None => Some(None),
        }
    }

    fn expr(&mut self, pair: Pair<'_, Rule>) -> Option<Expr> {
        self.expr_node(pair).map(|n| n.expr)
    }

    /// Makes a node, enforcing [`MAX_EXPR_DEPTH`].
    fn node(&mut self, kind: ExprKind, span: Span, depth: u32) -> Option<Node> {
        if depth > MAX_EXPR_DEPTH {
            return self.fail(
                Diagnostic::error("E0003", "expression is nested too deeply")
                    .with_primary(span, format!("deeper than {MAX_EXPR_DEPTH} levels"))
                    .with_hint("split the expression with `let` statements"),
            );
        }
        Some(Node {
            expr: Expr { kind, span },
            depth,
        })
    }

    /// A flat `expr` (prefix operators, operands, infix operators) → tree, by precedence.
    fn expr_node(&mut self, pair: Pair<'_, Rule>) -> Option<Node> {
        let span = self.span(&pair);
        let mut operands: Vec<Node> = Vec::new();
        let mut pending: Vec<Pending> = Vec::new();
        for part in pair.into_inner() {
            let op = match part.as_rule() {
                Rule::operand => {
                    operands.push(self.operand(part)?);
                    continue;
                }
                Rule::op_neg => {
                    pending.push(Pending::Neg(self.span(&part)));
                    continue;
                }
                Rule::op_pipe => Infix::Pipe,
                Rule::op_add => Infix::Bin(BinOp::Add),
                Rule::op_sub => Infix::Bin(BinOp::Sub),
                Rule::op_mul => Infix::Bin(BinOp::Mul),
                Rule::op_elem_mul => Infix::Bin(BinOp::ElemMul),
                Rule::op_div => Infix::Bin(BinOp::Div),
                Rule::op_matmul => Infix::Bin(BinOp::MatMul),
                Rule::op_pow => Infix::Bin(BinOp::Pow),
                _ => return self.malformed(self.span(&part)),
            };
            while let Some(&top) = pending.last() {
                if !top.binds_before(op) {
                    break;
                }
                pending.pop();
                self.apply(top, &mut operands)?;
            }
            pending.push(Pending::Infix(op, self.span(&part)));
        }
        while let Some(top) = pending.pop() {
            self.apply(top, &mut operands)?;
        }
        match (operands.pop(), operands.is_empty()) {
            (Some(node), true) => Some(node),
            _ => self.malformed(span),
        }
    }

    /// Applies a stacked operator to the operands on top of `operands`.
    fn apply(&mut self, op: Pending, operands: &mut Vec<Node>) -> Option<()> {
        let node = match op {
            Pending::Neg(at) => {
                let Some(x) = operands.pop() else {
                    return self.malformed(at);
                };
                let span = at.to(x.expr.span);
                let depth = x.depth + 1;
                let kind = ExprKind::Unary {
                    op: UnOp::Neg,
                    expr: Box::new(x.expr),
                };
                self.node(kind, span, depth)?
            }
            Pending::Infix(infix, at) => {
                let (Some(rhs), Some(lhs)) = (operands.pop(), operands.pop()) else {
                    return self.malformed(at);
                };
                let span = lhs.expr.span.to(rhs.expr.span);
                let depth = lhs.depth.max(rhs.depth) + 1;
                let kind = match infix {
                    Infix::Bin(op) => ExprKind::Binary {
                        op,
                        lhs: Box::new(lhs.expr),
                        rhs: Box::new(rhs.expr),
                    },
                    Infix::Pipe => self.pipe(lhs.expr, rhs.expr)?,
                };
                self.node(kind, span, depth)?
            }
        };
        operands.push(node);
        Some(())
    }

    /// `a |> f(b)` → `f(a, b)`; `a |> f` → `f(a)`.
    fn pipe(&mut self, input: Expr, target: Expr) -> Option<ExprKind> {
        let first = Arg {
            name: None,
            value: input,
        };
        match target.kind {
            ExprKind::Call { func, mut args } => {
                args.insert(0, first);
                Some(ExprKind::Call { func, args })
            }
            ExprKind::Name(name) => Some(ExprKind::Call {
                func: Ident {
                    name,
                    span: target.span,
                },
                args: vec![first],
            }),
            _ => self.fail(
                Diagnostic::error("E0016", "the right side of `|>` must be a function")
                    .with_primary(target.span, "not a function name or call")
                    .with_hint("write `x |> f` or `x |> f(more, args)`; use parentheses to pipe into part of an expression"),
            ),
        }
    }

    /// A primary or call followed by indexing.
    fn operand(&mut self, pair: Pair<'_, Rule>) -> Option<Node> {
        let mut p = pair.into_inner();
        let mut node = self.primary(p.next()?)?;
        for index in p {
            let span = node.expr.span.to(self.span(&index));
            let mut depth = node.depth;
            let mut indices = Vec::new();
            for item in parts(index) {
                let (built, d) = self.index_item(item)?;
                depth = depth.max(d);
                indices.push(built);
            }
            let kind = ExprKind::Index {
                base: Box::new(node.expr),
                indices,
            };
            node = self.node(kind, span, depth + 1)?;
        }
        Some(node)
    }

    fn index_item(&mut self, item: Pair<'_, Rule>) -> Option<(IndexExpr, u32)> {
        if item.as_rule() != Rule::range_index {
            let n = self.expr_node(item)?;
            return Some((IndexExpr::Single(n.expr), n.depth));
        }
        let span = self.span(&item);
        let (mut start, mut end, mut depth, mut after_colon) = (None, None, 0, false);
        for part in item.into_inner() {
            if part.as_rule() == Rule::colon {
                after_colon = true;
                continue;
            }
            let n = self.expr_node(part)?;
            depth = depth.max(n.depth);
            *(if after_colon { &mut end } else { &mut start }) = Some(n.expr);
        }
        Some((IndexExpr::Range { start, end, span }, depth))
    }

    /// Builds each pair of `items` as an expression; returns them with their greatest depth.
    fn expr_list<'i>(
        &mut self,
        items: impl Iterator<Item = Pair<'i, Rule>>,
    ) -> Option<(Vec<Expr>, u32)> {
        let mut depth = 0;
        let mut exprs = Vec::new();
        for item in items {
            let n = self.expr_node(item)?;
            depth = depth.max(n.depth);
            exprs.push(n.expr);
        }
        Some((exprs, depth))
    }

    fn primary(&mut self, pair: Pair<'_, Rule>) -> Option<Node> {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::number => self.number(pair.as_str(), span),
            Rule::string => {
                let body = pair.into_inner().next().map_or("", |b| b.as_str());
                self.node(ExprKind::Str(unescape(body)), span, 1)
            }
            Rule::kw_true => self.node(ExprKind::Bool(true), span, 1),
            Rule::kw_false => self.node(ExprKind::Bool(false), span, 1),
            Rule::ident => self.node(ExprKind::Name(pair.as_str().to_string()), span, 1),
            Rule::paren => {
                let inner = self.expr_node(pair.into_inner().next()?)?;
                self.node(inner.expr.kind, span, inner.depth)
            }
            Rule::array => {
                let (items, depth) = self.expr_list(parts(pair))?;
                self.node(ExprKind::Array(items), span, depth + 1)
            }
            Rule::call => self.call(pair, span),
            Rule::argmin => {
                let mut p = parts(pair);
                let var = self.ident(&p.next()?);
                let ty = self.type_expr(p.next()?)?;
                let body = self.expr_node(p.next()?)?;
                let kind = ExprKind::Argmin {
                    var,
                    ty,
                    body: Box::new(body.expr),
                };
                self.node(kind, span, body.depth + 1)
            }
            _ => self.malformed(span),
        }
    }

    fn call(&mut self, pair: Pair<'_, Rule>, span: Span) -> Option<Node> {
        let mut p = parts(pair);
        let func = self.ident(&p.next()?);
        let mut args: Vec<Arg> = Vec::new();
        let mut depth = 0;
        let mut named_seen: Option<Span> = None;
        for arg in p {
            let mut a = parts(arg).peekable();
            let name = a
                .next_if(|n| n.as_rule() == Rule::ident)
                .map(|n| self.ident(&n));
            let value = self.expr_node(a.next()?)?;
            depth = depth.max(value.depth);
            match (&name, named_seen) {
                (Some(n), _) => named_seen = Some(n.span),
                (None, Some(named)) => {
                    return self.fail(
                        Diagnostic::error("E0015", "positional argument after a named argument")
                            .with_primary(value.expr.span, "positional argument")
                            .with_label(named, "named argument given before it")
                            .with_hint("put positional arguments first"),
                    );
                }
                (None, None) => {}
            }
            args.push(Arg {
                name,
                value: value.expr,
            });
        }
        self.node(ExprKind::Call { func, args }, span, depth + 1)
    }

    fn number(&mut self, text: &str, span: Span) -> Option<Node> {
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<i64>() {
                Ok(v) => self.node(ExprKind::Int(v), span, 1),
                Err(_) => self.fail(
                    Diagnostic::error("E0004", "integer literal is too large")
                        .with_primary(span, format!("larger than {}", i64::MAX))
                        .with_hint(
                            "write it as a real number such as `1e20` if that is what you mean",
                        ),
                ),
            };
        }
        if is_real_literal(text) {
            return match text.parse::<f64>() {
                Ok(v) if v.is_finite() => self.node(ExprKind::Real(v), span, 1),
                _ => self.fail(
                    Diagnostic::error("E0004", "real literal is out of range")
                        .with_primary(span, "too large for a 64-bit float"),
                ),
            };
        }
        let hint = if text.ends_with(['e', 'E', '+', '-']) {
            "an exponent needs digits, as in `1e-3`"
        } else if text.matches('.').count() > 1 {
            "a number has at most one decimal point"
        } else {
            "a number cannot be followed directly by a letter; write `2 * x` for a product"
        };
        self.fail(
            Diagnostic::error("E0004", format!("invalid number literal `{text}`"))
                .with_primary(span, "not a valid number")
                .with_hint(hint),
        )
    }
}

/// `digits ("." digits)? ([eE] [+-]? digits)?` with at least a fraction or an exponent.
fn is_real_literal(text: &str) -> bool {
    fn digits(s: &str) -> usize {
        s.bytes().take_while(u8::is_ascii_digit).count()
    }
    let int_len = digits(text);
    let mut rest = &text[int_len..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = digits(frac);
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if let Some(exp) = rest.strip_prefix(['e', 'E']) {
        let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        let n = digits(exp);
        if n == 0 {
            return false;
        }
        rest = &exp[n..];
    }
    int_len > 0 && rest.is_empty()
}

/// Resolves the escapes `\"`, `\\`, `\n` (the pre-scan rejected all others).
fn unescape(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}
