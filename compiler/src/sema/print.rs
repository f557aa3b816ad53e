//! A stable, readable text form of a [`TypedModule`] (used by the snapshot tests and `emit`).
//!
//! References carry their kind (`data:X`, `var:W`, `arg:W`, `dim:n`, `loop:j`, ...); each
//! top-level expression is followed by its type.

use super::*;
use crate::ir::Dim;
use std::fmt::Write;

struct Printer<'a> {
    m: &'a TypedModule,
    out: String,
}

fn elem_name(e: ElemType) -> &'static str {
    match e {
        ElemType::Real => "real",
        ElemType::Int => "int",
        ElemType::Bool => "bool",
    }
}

fn op_text(op: BinOp) -> &'static str {
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

impl Printer<'_> {
    fn dim(&self, d: Dim) -> String {
        match d.sym {
            None => d.offset.to_string(),
            Some(s) => {
                let name = &self.m.dims[s.0 as usize].name;
                match d.offset {
                    0 => name.clone(),
                    o if o > 0 => format!("{name}+{o}"),
                    o => format!("{name}{o}"),
                }
            }
        }
    }

    fn ty(&self, t: &Ty) -> String {
        if t.shape.is_empty() {
            return elem_name(t.elem).to_string();
        }
        let dims: Vec<String> = t.shape.iter().map(|&d| self.dim(d)).collect();
        format!("{}[{}]", elem_name(t.elem), dims.join(", "))
    }

    fn reference(&self, r: Ref, fn_ctx: Option<&FnDecl>) -> String {
        let m = self.m;
        match r {
            Ref::Dim(d) => format!("dim:{}", m.dims[d.0 as usize].name),
            Ref::Data(i) => format!("data:{}", m.data[i as usize].name),
            Ref::Param(i) => format!("param:{}", m.params[i as usize].name),
            Ref::Var(i) => format!("var:{}", m.vars[i as usize].name),
            Ref::Let(i) => format!("let:{}", m.lets[i as usize].name),
            Ref::FnParam(k) => format!(
                "arg:{}",
                fn_ctx.map_or("?", |f| f.params[k as usize].name.as_str())
            ),
            Ref::LoopIndex(l) => format!("loop:{l}"),
            Ref::ArgminVar(v) => format!("argmin:{}", m.argmin_vars[v as usize].name),
        }
    }

    fn expr(&self, e: &TExpr, f: Option<&FnDecl>) -> String {
        match &e.kind {
            TExprKind::Const(c) => match e.ty.elem {
                ElemType::Real => format!("{c:?}"),
                ElemType::Int => format!("{}", *c as i64),
                ElemType::Bool => (*c != 0.0).to_string(),
            },
            TExprKind::Ref(r) => self.reference(*r, f),
            TExprKind::Neg(x) => format!("(-{})", self.expr(x, f)),
            TExprKind::Binary { op, lhs, rhs } => {
                format!(
                    "({} {} {})",
                    self.expr(lhs, f),
                    op_text(*op),
                    self.expr(rhs, f)
                )
            }
            TExprKind::Builtin {
                builtin,
                args,
                axis,
                size,
            } => {
                let mut parts: Vec<String> = args.iter().map(|a| self.expr(a, f)).collect();
                if let Some(s) = size {
                    parts.push(self.dim(*s));
                }
                if let Some(a) = axis {
                    parts.push(format!("axis = {a}"));
                }
                format!("{}({})", builtin.name(), parts.join(", "))
            }
            TExprKind::Call { func, args, dims } => {
                let decl = &self.m.fns[func.0 as usize];
                let binding: Vec<String> = decl
                    .generic_dims
                    .iter()
                    .zip(dims)
                    .map(|(g, d)| format!("{} := {}", self.m.dims[g.0 as usize].name, self.dim(*d)))
                    .collect();
                let args: Vec<String> = args
                    .iter()
                    .zip(&decl.params)
                    .map(|(a, p)| match a {
                        CallArg::Given(x) => format!("{} = {}", p.name, self.expr(x, f)),
                        CallArg::Default => format!("{} = default", p.name),
                    })
                    .collect();
                let origin = if decl.from_stdlib { "stdlib" } else { "fn" };
                format!(
                    "{origin}:{}<{}>({})",
                    decl.name,
                    binding.join(", "),
                    args.join(", ")
                )
            }
            TExprKind::Index { base, indices } => {
                let parts: Vec<String> = indices
                    .iter()
                    .map(|i| match i {
                        TIndex::Single(x) => self.expr(x, f),
                        TIndex::Range { start, end } => {
                            format!("{}:{}", self.dim(*start), self.dim(*end))
                        }
                    })
                    .collect();
                format!("{}[{}]", self.expr(base, f), parts.join(", "))
            }
            TExprKind::Array(items) => {
                format!(
                    "[{}]",
                    items
                        .iter()
                        .map(|x| self.expr(x, f))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            TExprKind::Argmin { var, body } => {
                let v = &self.m.argmin_vars[*var as usize];
                format!(
                    "argmin {} : {} {{ {} }}",
                    v.name,
                    self.ty(&v.ty),
                    self.expr(body, f)
                )
            }
        }
    }

    /// An expression followed by its type.
    fn typed(&self, e: &TExpr, f: Option<&FnDecl>) -> String {
        format!("{} : {}", self.expr(e, f), self.ty(&e.ty))
    }

    fn line(&mut self, s: String) {
        self.out.push_str(&s);
        self.out.push('\n');
    }

    fn module(&mut self) {
        let m = self.m;
        for d in m.dims.iter().filter(|d| d.owner.is_none()) {
            let default = d.default.map_or(String::new(), |v| format!(" = {v}"));
            self.line(format!("dims {}{default}", d.name));
        }
        for d in &m.data {
            let load = d
                .load
                .as_ref()
                .map_or(" (bound by --data)".to_string(), |p| {
                    format!(" = load({p:?})")
                });
            self.line(format!("data {} : {}{load}", d.name, self.ty(&d.ty)));
        }
        for p in &m.params {
            self.line(format!(
                "param {} : {} = {}",
                p.name,
                self.ty(&p.ty),
                self.typed(&p.value, None)
            ));
        }
        for v in &m.vars {
            let mut s = format!("var {} : {}", v.name, self.ty(&v.ty));
            if let Some(l) = &v.lower {
                let _ = write!(s, " >= {}", self.expr(l, None));
            }
            if let Some(u) = &v.upper {
                let _ = write!(s, " <= {}", self.expr(u, None));
            }
            if let Some(i) = &v.init {
                let _ = write!(s, " = {}", self.expr(i, None));
            }
            self.line(s);
        }
        for f in m.fns.iter().filter(|f| !f.from_stdlib) {
            let params: Vec<String> = f
                .params
                .iter()
                .map(|p| {
                    let d = p
                        .default
                        .as_ref()
                        .map_or(String::new(), |e| format!(" = {}", self.expr(e, Some(f))));
                    format!("{} : {}{d}", p.name, self.ty(&p.ty))
                })
                .collect();
            self.line(format!(
                "fn {}({}) = {}",
                f.name,
                params.join(", "),
                self.typed(&f.body, Some(f))
            ));
        }
        for l in &m.lets {
            self.line(format!("let {} = {}", l.name, self.typed(&l.value, None)));
        }
        let sense = match m.objective.sense {
            Sense::Minimize => "minimize",
            Sense::Maximize => "maximize",
        };
        self.line(format!("{sense} {}", self.typed(&m.objective.expr, None)));
        for c in &m.constraints {
            let loops: String = c
                .loops
                .iter()
                .enumerate()
                .map(|(l, r)| {
                    format!(
                        "for {} (loop:{l}) in {}..{}: ",
                        r.index,
                        self.dim(r.start),
                        self.dim(r.end)
                    )
                })
                .collect();
            let body = match &c.kind {
                ConstraintKind::Compare { lhs, op, rhs } => {
                    let op = match op {
                        CmpOp::Eq => "==",
                        CmpOp::Le => "<=",
                        CmpOp::Ge => ">=",
                    };
                    format!("{} {op} {}", self.typed(lhs, None), self.typed(rhs, None))
                }
                ConstraintKind::In { expr, set } => {
                    let set = match set {
                        SetExpr::Nonneg => "nonneg".to_string(),
                        SetExpr::Simplex => "simplex".to_string(),
                        SetExpr::Symmetric => "symmetric".to_string(),
                        SetExpr::Box { lower, upper } => format!(
                            "box({}, {})",
                            self.expr(lower, None),
                            self.expr(upper, None)
                        ),
                    };
                    format!("{} in {set}", self.typed(expr, None))
                }
                ConstraintKind::Card { expr, bound } => {
                    format!(
                        "card({}) <= {}",
                        self.typed(expr, None),
                        self.expr(bound, None)
                    )
                }
            };
            self.line(format!("constraint {}: {loops}{body}", c.name));
        }
        if let Some(s) = &m.solve {
            self.line(format!("solve with {s}"));
        }
        for o in &m.outputs {
            let post: String = o.post.iter().map(|p| format!(" |> {p}")).collect();
            self.line(format!(
                "output {} = {}{post}",
                o.name,
                self.typed(&o.expr, None)
            ));
        }
        for w in &m.warnings {
            self.line(format!("warning[{}]: {}", w.code, w.message));
        }
    }
}

/// The typed module as text: declarations, user fns, objective, constraints, solve, outputs.
pub fn typed_to_text(m: &TypedModule) -> String {
    let mut p = Printer {
        m,
        out: String::new(),
    };
    p.module();
    p.out
}
