//! A compact, stable s-expression form of the AST (no spans), used by the AST snapshot tests and
//! by `optc emit --stage ast`. Calls print as `(call f args...)`, named arguments as `(name = v)`,
//! operators as `(+ a b)`, types as `real` or `(real n 3)`, missing range ends as `_`.

use crate::ast::*;
use std::fmt::Write;

/// The whole module, one item per line (constraint blocks one constraint per line).
pub fn ast_to_text(module: &Module) -> String {
    let mut out = String::new();
    for item in &module.items {
        item_text(&mut out, &item.kind);
        out.push('\n');
    }
    out
}

fn item_text(out: &mut String, item: &ItemKind) {
    match item {
        ItemKind::Dims(dims) => {
            out.push_str("(dims");
            for d in dims {
                match d.default {
                    Some((size, _)) => write!(out, " ({} = {size})", d.name.name).unwrap_or(()),
                    None => write!(out, " {}", d.name.name).unwrap_or(()),
                }
            }
            out.push(')');
        }
        ItemKind::Data { name, ty, value } => {
            write!(out, "(data {} : {}", name.name, type_text(ty)).unwrap_or(());
            if let Some(v) = value {
                write!(out, " = {}", expr_text(v)).unwrap_or(());
            }
            out.push(')');
        }
        ItemKind::Param { name, ty, value } => {
            write!(out, "(param {}", name.name).unwrap_or(());
            if let Some(t) = ty {
                write!(out, " : {}", type_text(t)).unwrap_or(());
            }
            write!(out, " = {})", expr_text(value)).unwrap_or(());
        }
        ItemKind::Var {
            name,
            ty,
            bounds,
            init,
        } => {
            write!(out, "(var {} : {}", name.name, type_text(ty)).unwrap_or(());
            for b in bounds {
                write!(out, " ({} {})", cmp_text(b.op), expr_text(&b.value)).unwrap_or(());
            }
            if let Some(v) = init {
                write!(out, " = {}", expr_text(v)).unwrap_or(());
            }
            out.push(')');
        }
        ItemKind::Let { name, value } => {
            write!(out, "(let {} {})", name.name, expr_text(value)).unwrap_or(())
        }
        ItemKind::Fn { name, params, body } => {
            write!(out, "(fn {} (", name.name).unwrap_or(());
            for (i, p) in params.iter().enumerate() {
                let sep = if i == 0 { "" } else { " " };
                write!(out, "{sep}({} : {}", p.name.name, type_text(&p.ty)).unwrap_or(());
                if let Some(d) = &p.default {
                    write!(out, " = {}", expr_text(d)).unwrap_or(());
                }
                out.push(')');
            }
            write!(out, ") {})", expr_text(body)).unwrap_or(());
        }
        ItemKind::Objective { sense, expr } => {
            let word = match sense {
                Sense::Minimize => "minimize",
                Sense::Maximize => "maximize",
            };
            write!(out, "({word} {})", expr_text(expr)).unwrap_or(());
        }
        ItemKind::Constraints(constraints) => {
            out.push_str("(subject-to");
            for c in constraints {
                write!(out, "\n  {}", constraint_text(c)).unwrap_or(());
            }
            out.push(')');
        }
        ItemKind::Solve { method } => write!(out, "(solve {})", expr_text(method)).unwrap_or(()),
        ItemKind::Output(items) => {
            out.push_str("(output");
            for o in items {
                match &o.name {
                    Some(n) => write!(out, " ({} = {})", n.name, expr_text(&o.expr)),
                    None => write!(out, " {}", expr_text(&o.expr)),
                }
                .unwrap_or(());
            }
            out.push(')');
        }
    }
}

fn cmp_text(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "==",
        CmpOp::Le => "<=",
        CmpOp::Ge => ">=",
    }
}

fn type_text(ty: &TypeExpr) -> String {
    let elem = match ty.elem {
        ElemType::Real => "real",
        ElemType::Int => "int",
        ElemType::Bool => "bool",
    };
    if ty.dims.is_empty() {
        return elem.to_string();
    }
    let dims: Vec<String> = ty
        .dims
        .iter()
        .map(|d| match d {
            DimExpr::Named { name, offset, .. } => match offset {
                0 => name.name.clone(),
                k => format!("{}{k:+}", name.name),
            },
            DimExpr::Literal(v, _) => v.to_string(),
        })
        .collect();
    format!("({elem} {})", dims.join(" "))
}

fn constraint_text(c: &Constraint) -> String {
    let body = match &c.kind {
        ConstraintKind::Compare { lhs, op, rhs } => {
            format!("({} {} {})", cmp_text(*op), expr_text(lhs), expr_text(rhs))
        }
        ConstraintKind::In { expr, set } => format!("(in {} {})", expr_text(expr), expr_text(set)),
        ConstraintKind::For {
            index,
            start,
            end,
            body,
        } => format!(
            "(for {} {} {} {})",
            index.name,
            expr_text(start),
            expr_text(end),
            constraint_text(body)
        ),
    };
    match &c.label {
        Some(l) => format!("({}: {body})", l.name),
        None => body,
    }
}

fn binop_text(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::ElemMul => ".*",
        BinOp::Div => "/",
        BinOp::MatMul => "@",
        BinOp::Pow => "^",
    }
}

/// One expression as an s-expression.
pub fn expr_text(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int(v) => v.to_string(),
        ExprKind::Real(v) => format!("{v:?}"),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::Name(n) => n.clone(),
        ExprKind::Unary {
            op: UnOp::Neg,
            expr,
        } => format!("(neg {})", expr_text(expr)),
        ExprKind::Binary { op, lhs, rhs } => {
            format!(
                "({} {} {})",
                binop_text(*op),
                expr_text(lhs),
                expr_text(rhs)
            )
        }
        ExprKind::Call { func, args } => {
            let mut s = format!("(call {}", func.name);
            for a in args {
                match &a.name {
                    Some(n) => write!(s, " ({} = {})", n.name, expr_text(&a.value)),
                    None => write!(s, " {}", expr_text(&a.value)),
                }
                .unwrap_or(());
            }
            s + ")"
        }
        ExprKind::Index { base, indices } => {
            let mut s = format!("(index {}", expr_text(base));
            for i in indices {
                match i {
                    IndexExpr::Single(x) => write!(s, " {}", expr_text(x)),
                    IndexExpr::Range { start, end, .. } => {
                        let end_text = |x: &Option<Expr>| x.as_ref().map_or("_".into(), expr_text);
                        write!(s, " (: {} {})", end_text(start), end_text(end))
                    }
                }
                .unwrap_or(());
            }
            s + ")"
        }
        ExprKind::Array(items) => {
            let inner: String = items.iter().map(|i| format!(" {}", expr_text(i))).collect();
            format!("(array{inner})")
        }
        ExprKind::Argmin { var, ty, body } => {
            format!(
                "(argmin {} : {} {})",
                var.name,
                type_text(ty),
                expr_text(body)
            )
        }
    }
}
