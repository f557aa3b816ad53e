//! The checker proper: one pass over the items in source order (names are declared before use).

use super::builtins::{Builtin, Kind};
use super::*;
use crate::ast::{
    Arg, ConstraintKind as AstConstraint, Expr, ExprKind, IndexExpr, Item, ItemKind, UnOp,
};
use crate::diag::{suggest, Diagnostic};
use crate::ir::{broadcast_shapes, Cutoff, Dim, OptionValue, PostOp, SpecSpans};
use std::collections::HashMap;

/// Element counts above this (with all sizes known) are rejected before anything is allocated.
const MAX_ELEMENTS: u64 = 1 << 34;

/// Methods `solve with` accepts.
pub const KNOWN_METHODS: &[&str] = &[
    "lbfgs",
    "fista",
    "prox_grad",
    "adam",
    "auglag",
    "path",
    "colide",
    "maid",
    "dual",
];

/// Checks `module` against the builtins and the standard-library `fn`s in `stdlib`.
pub fn check(module: &ast::Module, stdlib: &[ast::Module]) -> Result<TypedModule, Diagnostics> {
    let mut c = Checker::default();
    for m in stdlib {
        for item in &m.items {
            match &item.kind {
                ItemKind::Fn { name, params, body } => {
                    if let Some(id) = c.check_fn(name, params, body, item.span, true) {
                        c.stdlib_fns.insert(name.name.clone(), id);
                    }
                }
                _ => c.error(
                    Diagnostic::error("E0103", "the standard library may only define `fn`s")
                        .with_primary(item.span, "not a fn")
                        .with_hint("move this declaration into the model file"),
                ),
            }
        }
    }
    if module.items.is_empty() {
        return Err(vec![Diagnostic::error(
            "E0133",
            "nothing to solve: the file has no statements",
        )
        .with_hint(
            "add declarations and an objective, e.g. `var x : real[n]` and `minimize sumsq(x)`",
        )]);
    }
    for item in &module.items {
        c.last_item = Some(item.span);
        c.declaring = match &item.kind {
            ItemKind::Data { name, .. }
            | ItemKind::Param { name, .. }
            | ItemKind::Var { name, .. }
            | ItemKind::Let { name, .. } => Some(name.name.clone()),
            _ => None,
        };
        let errors_before = c.errors.len();
        c.check_item(item);
        if c.errors.len() > errors_before {
            c.poison(item);
        }
    }
    c.finish()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Global {
    Dim(DimId),
    Data(u32),
    Param(u32),
    Var(u32),
    Let(u32),
    Fn(FnId),
}

impl Global {
    fn what(self) -> &'static str {
        match self {
            Global::Dim(_) => "dimension",
            Global::Data(_) => "data",
            Global::Param(_) => "parameter",
            Global::Var(_) => "variable",
            Global::Let(_) => "let binding",
            Global::Fn(_) => "fn",
        }
    }
}

/// What the expression being checked may read.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    /// Objective, constraints, lets, outputs: everything declared so far.
    Model,
    /// A param's value: literals, dims, params.
    ParamValue,
    /// A var's initial value or bound: literals, dims, data, params.
    VarValue,
    /// A fn body or default: its params, generic dims, fns and builtins.
    FnBody(FnId),
}

#[derive(Clone, Debug)]
enum Local {
    FnParam(u32, Ty),
    Dim(DimId),
    /// A `for` index: its level and its range `start..end`.
    LoopIndex {
        level: u32,
        start: Dim,
        end: Dim,
    },
    ArgminVar(u32),
}

#[derive(Default)]
struct Checker {
    dims: Vec<DimSym>,
    data: Vec<DataDecl>,
    params: Vec<ParamDecl>,
    vars: Vec<VarDecl>,
    lets: Vec<LetDecl>,
    fns: Vec<Option<FnDecl>>,
    argmin_vars: Vec<ArgminVar>,
    objective: Option<(Objective, Span)>,
    constraints: Vec<Constraint>,
    solve: Option<(SolveSpec, Span)>,
    outputs: Vec<Output>,
    globals: HashMap<String, (Global, Span)>,
    /// Declarations that failed to check: uses of them are not reported again.
    poisoned: std::collections::HashSet<String>,
    /// The span of the last item, for diagnostics about the file as a whole.
    last_item: Option<Span>,
    stdlib_fns: HashMap<String, FnId>,
    locals: Vec<(String, Local)>,
    /// The fn whose body is being checked (a call to it is recursion).
    recursion_guard: Option<(String, Span)>,
    errors: Diagnostics,
    warnings: Diagnostics,
    /// The first expression that failed to check without reporting an error (a bug).
    unreported: Option<Span>,
    /// The name the item being checked declares (a `param`, `let`, `data` or `var`): a use of
    /// it in its own definition is reported as such.
    declaring: Option<String>,
}

fn elem_name(e: ElemType) -> &'static str {
    match e {
        ElemType::Real => "real",
        ElemType::Int => "int",
        ElemType::Bool => "bool",
    }
}

/// Whether a value of type `from` may be used where `to` is expected (int and bool promote to real).
fn elem_fits(from: ElemType, to: ElemType) -> bool {
    from == to || to == ElemType::Real || (from == ElemType::Bool && to == ElemType::Int)
}

impl Checker {
    fn error(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    /// Marks the names an erroneous item declares, so later uses are not reported again.
    fn poison(&mut self, item: &Item) {
        let names: Vec<&ast::Ident> = match &item.kind {
            ItemKind::Dims(ds) => ds.iter().map(|d| &d.name).collect(),
            ItemKind::Data { name, .. }
            | ItemKind::Param { name, .. }
            | ItemKind::Var { name, .. }
            | ItemKind::Let { name, .. }
            | ItemKind::Fn { name, .. } => vec![name],
            _ => Vec::new(),
        };
        for n in names {
            if !self.globals.contains_key(&n.name) {
                self.poisoned.insert(n.name.clone());
            }
        }
    }

    fn finish(mut self) -> Result<TypedModule, Diagnostics> {
        if let (Some(span), true) = (self.unreported, self.errors.is_empty()) {
            self.errors.push(
                Diagnostic::error("E0199", "internal error: this expression failed to check")
                    .with_primary(span, "dropped without a diagnostic")
                    .with_hint("this is a compiler bug; please report it with the model file"),
            );
        }
        if self.objective.is_none() && self.errors.is_empty() {
            let mut d = Diagnostic::error("E0131", "the model has no objective")
                .with_hint("add `minimize expr` or `maximize expr`");
            if let Some(span) = self.last_item {
                d = d.with_primary(span, "the file ends here without `minimize` or `maximize`");
            }
            self.errors.push(d);
        }
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        let Some((objective, _)) = self.objective else {
            return Err(self.errors);
        };
        Ok(TypedModule {
            dims: self.dims,
            data: self.data,
            params: self.params,
            vars: self.vars,
            lets: self.lets,
            fns: self.fns.into_iter().flatten().collect(),
            argmin_vars: self.argmin_vars,
            objective,
            constraints: self.constraints,
            solve: self.solve.map(|(s, _)| s),
            outputs: self.outputs,
            warnings: self.warnings,
        })
    }

    // ----- shapes as text -------------------------------------------------------------------

    /// A note for shapes that differ where one has a size symbol whose default is the other's
    /// literal size (`dims n = 5` against `[1, 2, 3, 4, 5]`): they never match, since the symbol
    /// can be set otherwise.
    fn symbol_vs_literal(&self, a: &[Dim], b: &[Dim]) -> Option<String> {
        a.iter().rev().zip(b.iter().rev()).find_map(|(&x, &y)| {
            let (symbol, literal) = match (x.sym, y.sym) {
                (Some(s), None) if x.offset == 0 => (s, y.offset),
                (None, Some(s)) if y.offset == 0 => (s, x.offset),
                _ => return None,
            };
            let sym = &self.dims[symbol.0 as usize];
            let known = match sym.default {
                Some(d) => format!("default {d}, which `--dims` can change"),
                None => "its value comes from the data or `--dims` at run time".to_string(),
            };
            Some(format!(
                "`{name}` is a size symbol ({known}), so it never equals the literal size {literal}: write the size as {literal} (`real[{literal}]`), or keep `{name}` and read the values as data (`data v : real[{name}] = load(\"v.npy\")`)",
                name = sym.name
            ))
        })
    }

    fn dim_text(&self, d: Dim) -> String {
        match d.sym {
            None => d.offset.to_string(),
            Some(s) => {
                let name = &self.dims[s.0 as usize].name;
                match d.offset {
                    0 => name.clone(),
                    o if o > 0 => format!("{name} + {o}"),
                    o => format!("{name} - {}", -o),
                }
            }
        }
    }

    fn ty_text(&self, ty: &Ty) -> String {
        if ty.shape.is_empty() {
            return format!("{} scalar", elem_name(ty.elem));
        }
        let dims: Vec<String> = ty.shape.iter().map(|&d| self.dim_text(d)).collect();
        format!("{}[{}]", elem_name(ty.elem), dims.join(", "))
    }

    fn shape_text(&self, s: &Shape) -> String {
        let dims: Vec<String> = s.iter().map(|&d| self.dim_text(d)).collect();
        format!("[{}]", dims.join(", "))
    }

    // ----- declarations ---------------------------------------------------------------------

    /// Refuses a name that is a builtin or already declared at top level (pointing at both).
    /// `what` names the new declaration; a clash between two top-level ones is a duplicate.
    /// E0102 when `name` is a builtin's.
    fn not_a_builtin(&mut self, name: &ast::Ident, what: &str) -> bool {
        if Builtin::from_name(&name.name).is_some() {
            self.error(
                Diagnostic::error(
                    "E0102",
                    format!("{what} `{}` shadows the builtin of that name", name.name),
                )
                .with_primary(name.span, "shadows a builtin")
                .with_hint(format!("rename it, e.g. `{}_`", name.name)),
            );
            return false;
        }
        true
    }

    fn check_fresh(&mut self, name: &ast::Ident, what: &str, top_level: bool) -> bool {
        if !self.not_a_builtin(name, what) {
            return false;
        }
        if let Some(&(g, span)) = self.globals.get(&name.name) {
            let (code, msg) = if top_level {
                ("E0101", format!("`{}` is declared twice", name.name))
            } else {
                (
                    "E0102",
                    format!(
                        "{what} `{}` shadows the top-level {} of that name",
                        name.name,
                        g.what()
                    ),
                )
            };
            self.error(
                Diagnostic::error(code, msg)
                    .with_primary(name.span, "declared again here")
                    .with_label(span, format!("first declared here as a {}", g.what()))
                    .with_hint("give one of them another name"),
            );
            return false;
        }
        true
    }

    fn declare(&mut self, name: &ast::Ident, g: Global) {
        if self.check_fresh(name, g.what(), true) {
            self.globals.insert(name.name.clone(), (g, name.span));
        }
    }

    /// Rejects declared tensors whose element count is known and too large.
    fn check_size(&mut self, ty: &Ty, span: Span) {
        let mut count: Option<u64> = Some(1);
        for d in &ty.shape {
            let size = match d.sym {
                None => Some(d.offset.max(0) as u64),
                Some(s) => self.dims[s.0 as usize].default.map(|v| {
                    u64::try_from((i128::from(v) + i128::from(d.offset)).max(0)).unwrap_or(u64::MAX)
                }),
            };
            let Some(size) = size else { return };
            count = count.and_then(|c| c.checked_mul(size));
        }
        let too_big = match count {
            None => Some("overflows a 64-bit count".to_string()),
            Some(c) if c > MAX_ELEMENTS => Some(format!("has {c} elements")),
            _ => None,
        };
        if let Some(why) = too_big {
            self.error(
                Diagnostic::error("E0180", format!("the tensor {} {why}", self.ty_text(ty)))
                    .with_primary(span, format!("more than 2^34 = {MAX_ELEMENTS} elements"))
                    .with_hint("use smaller sizes; tensors are limited to 2^34 elements"),
            );
        }
    }

    /// Resolves a written type. In a fn signature (`generic = Some(f)`) every dim name is a
    /// generic dim of `f`; elsewhere names resolve to dims in scope.
    fn resolve_type(&mut self, ty: &ast::TypeExpr, generic: Option<FnId>) -> Option<Ty> {
        let mut shape = Vec::new();
        for d in &ty.dims {
            match d {
                ast::DimExpr::Literal(n, span) => {
                    if *n > MAX_ELEMENTS {
                        self.error(
                            Diagnostic::error("E0180", format!("the size {n} is larger than 2^34"))
                                .with_primary(*span, "size too large")
                                .with_hint(
                                    "use smaller sizes; tensors are limited to 2^34 elements",
                                ),
                        );
                        return None;
                    }
                    shape.push(Dim::fixed(*n as i64));
                }
                ast::DimExpr::Named {
                    name: id, offset, ..
                } => {
                    let dim = if let Some(f) = generic {
                        let existing = self
                            .dims
                            .iter()
                            .position(|s| s.owner == Some(f) && s.name == id.name);
                        match existing {
                            Some(i) => DimId(i as u32),
                            None => {
                                self.dims.push(DimSym {
                                    name: id.name.clone(),
                                    default: None,
                                    owner: Some(f),
                                    span: id.span,
                                });
                                DimId(self.dims.len() as u32 - 1)
                            }
                        }
                    } else {
                        self.resolve_dim_name(id)?
                    };
                    shape.push(Dim {
                        sym: Some(dim),
                        offset: *offset,
                    });
                }
            }
        }
        Some(Ty {
            elem: ty.elem,
            shape,
        })
    }

    fn resolve_dim_name(&mut self, id: &ast::Ident) -> Option<DimId> {
        for (name, local) in self.locals.iter().rev() {
            if *name == id.name {
                if let Local::Dim(d) = local {
                    return Some(*d);
                }
            }
        }
        match self.globals.get(&id.name) {
            Some((Global::Dim(d), _)) => Some(*d),
            Some((g, span)) => {
                let (g, span) = (*g, *span);
                self.error(
                    Diagnostic::error(
                        "E0105",
                        format!("`{}` is a {}, not a dimension", id.name, g.what()),
                    )
                    .with_primary(id.span, "used as a dimension here")
                    .with_label(span, "declared here")
                    .with_hint("declare the size with `dims`"),
                );
                None
            }
            None => {
                let dims: Vec<String> = self
                    .globals
                    .iter()
                    .filter(|(_, (g, _))| matches!(g, Global::Dim(_)))
                    .map(|(n, _)| n.clone())
                    .collect();
                let mut d =
                    Diagnostic::error("E0100", format!("undefined dimension `{}`", id.name))
                        .with_primary(id.span, "not declared");
                d = match suggest(&id.name, dims.iter().map(String::as_str)) {
                    Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                    None => d.with_hint(format!("declare it first: `dims {}`", id.name)),
                };
                self.error(d);
                None
            }
        }
    }

    fn check_item(&mut self, item: &Item) {
        match &item.kind {
            ItemKind::Dims(decls) => {
                for decl in decls {
                    let id = DimId(self.dims.len() as u32);
                    self.dims.push(DimSym {
                        name: decl.name.name.clone(),
                        default: decl.default.map(|(v, _)| v),
                        owner: None,
                        span: decl.name.span,
                    });
                    self.declare(&decl.name, Global::Dim(id));
                }
            }
            ItemKind::Data { name, ty, value } => {
                let Some(ty_r) = self.resolve_type(ty, None) else {
                    return;
                };
                self.check_size(&ty_r, ty.span);
                let load = value.as_ref().and_then(|v| self.data_source(v));
                let id = self.data.len() as u32;
                self.data.push(DataDecl {
                    name: name.name.clone(),
                    ty: ty_r,
                    load,
                    span: item.span,
                });
                self.declare(name, Global::Data(id));
            }
            ItemKind::Param { name, ty, value } => {
                let Some(v) = self.expr(value, Place::ParamValue) else {
                    return;
                };
                // Without a written type a param is real, shaped like its value.
                let ty_r = match ty {
                    Some(t) => {
                        let Some(ty_r) = self.resolve_type(t, None) else {
                            return;
                        };
                        self.check_size(&ty_r, t.span);
                        self.check_assignable(&v, &ty_r, name);
                        ty_r
                    }
                    None => Ty {
                        elem: ElemType::Real,
                        shape: v.ty.shape.clone(),
                    },
                };
                let id = self.params.len() as u32;
                self.params.push(ParamDecl {
                    name: name.name.clone(),
                    ty: ty_r,
                    value: v,
                    span: item.span,
                });
                self.declare(name, Global::Param(id));
            }
            ItemKind::Var {
                name,
                ty,
                bounds,
                init,
            } => {
                let Some(ty_r) = self.resolve_type(ty, None) else {
                    return;
                };
                self.check_size(&ty_r, ty.span);
                self.check_real_variable(&ty_r, ty.span);
                let (mut lower, mut upper) = (None, None);
                for b in bounds {
                    let Some(v) = self.expr(&b.value, Place::VarValue) else {
                        continue;
                    };
                    self.check_assignable(&v, &ty_r, name);
                    match b.op {
                        CmpOp::Ge => lower = Some(v),
                        CmpOp::Le => upper = Some(v),
                        CmpOp::Eq => self.error(
                            Diagnostic::error("E0172", "a variable bound must be `>=` or `<=`")
                                .with_primary(b.span, "`==` is not a bound")
                                .with_hint("to fix a value, declare a `param` instead, or add an `==` constraint under `subject to`"),
                        ),
                    }
                }
                let init = init.as_ref().and_then(|e| self.expr(e, Place::VarValue));
                if let Some(v) = &init {
                    self.check_assignable(v, &ty_r, name);
                }
                let id = self.vars.len() as u32;
                self.vars.push(VarDecl {
                    name: name.name.clone(),
                    ty: ty_r,
                    lower,
                    upper,
                    init,
                    span: item.span,
                });
                self.declare(name, Global::Var(id));
            }
            ItemKind::Let { name, value } => {
                let Some(v) = self.expr(value, Place::Model) else {
                    return;
                };
                let id = self.lets.len() as u32;
                self.lets.push(LetDecl {
                    name: name.name.clone(),
                    value: v,
                    span: item.span,
                });
                self.declare(name, Global::Let(id));
            }
            ItemKind::Fn { name, params, body } => {
                if let Some(id) = self.check_fn(name, params, body, item.span, false) {
                    self.declare(name, Global::Fn(id));
                }
            }
            ItemKind::Objective { sense, expr } => {
                let Some(e) = self.expr(expr, Place::Model) else {
                    return;
                };
                if !e.ty.is_scalar() {
                    self.error(
                        Diagnostic::error(
                            "E0130",
                            format!(
                                "the objective must be a scalar, but it is {}",
                                self.ty_text(&e.ty)
                            ),
                        )
                        .with_primary(expr.span, format!("this is {}", self.ty_text(&e.ty)))
                        .with_hint("reduce it to a scalar, e.g. with `sum(...)` or `sumsq(...)`"),
                    );
                    return;
                }
                if let Some((_, first)) = &self.objective {
                    let first = *first;
                    self.error(
                        Diagnostic::error(
                            "E0132",
                            "a model has exactly one objective, this is the second",
                        )
                        .with_primary(item.span, "second objective")
                        .with_label(first, "first objective")
                        .with_hint(
                            "combine them into one expression, e.g. `minimize f + lambda * g`",
                        ),
                    );
                    return;
                }
                self.objective = Some((
                    Objective {
                        sense: *sense,
                        expr: e,
                    },
                    item.span,
                ));
            }
            ItemKind::Constraints(cs) => {
                for c in cs {
                    self.constraint(c, Vec::new());
                }
            }
            ItemKind::Solve { method } => {
                let spec = self.solve_spec(method, true);
                if let Some((_, first)) = &self.solve {
                    let first = *first;
                    self.error(
                        Diagnostic::error("E0151", "only one `solve with` is allowed")
                            .with_primary(item.span, "second `solve with`")
                            .with_label(first, "first one here")
                            .with_hint("keep one; options go inside it: `solve with lbfgs(max_iter = 100)`"),
                    );
                } else if let Some(spec) = spec {
                    self.solve = Some((spec, item.span));
                }
            }
            ItemKind::Output(items) => {
                for o in items {
                    self.output(o);
                }
            }
        }
    }

    fn data_source(&mut self, value: &Expr) -> Option<String> {
        if let ExprKind::Call { func, args } = &value.kind {
            if func.name == "load" {
                let bound = self.bind_args("load", value.span, &[("path".into(), false)], args)?;
                if let Some(Some(Expr {
                    kind: ExprKind::Str(path),
                    ..
                })) = bound.first()
                {
                    return Some(path.clone());
                }
                self.error(
                    Diagnostic::error("E0143", "`load` takes a file path string")
                        .with_primary(value.span, "expected `load(\"file.npy\")`")
                        .with_hint("write the path in quotes, relative to the .opt file"),
                );
                return None;
            }
        }
        self.error(
            Diagnostic::error("E0143", "a data value must be `load(\"path\")`")
                .with_primary(value.span, "not a `load`")
                .with_hint("use `param` for values given in the file, or bind data with `--data NAME=path`"),
        );
        None
    }

    /// `value` may initialise something of type `ty`: compatible element type, broadcastable shape.
    fn check_assignable(&mut self, value: &TExpr, ty: &Ty, name: &ast::Ident) {
        if !elem_fits(value.ty.elem, ty.elem) {
            self.error(
                Diagnostic::error(
                    "E0110",
                    format!(
                        "`{}` is {} but this value is {}",
                        name.name,
                        elem_name(ty.elem),
                        elem_name(value.ty.elem)
                    ),
                )
                .with_primary(value.span, format!("{} value", elem_name(value.ty.elem)))
                .with_label(name.span, format!("declared {}", self.ty_text(ty)))
                .with_hint("change the declared element type or the value"),
            );
        }
        if broadcast_shapes(&value.ty.shape, &ty.shape).ok().as_ref() != Some(&ty.shape) {
            self.error(
                Diagnostic::error(
                    "E0120",
                    format!(
                        "a value of shape {} cannot be broadcast to {}",
                        self.shape_text(&value.ty.shape),
                        self.shape_text(&ty.shape)
                    ),
                )
                .with_primary(
                    value.span,
                    format!("shape {}", self.shape_text(&value.ty.shape)),
                )
                .with_label(name.span, format!("declared {}", self.ty_text(ty)))
                .with_hint("use a scalar or a value of the declared shape")
                .with_notes(self.symbol_vs_literal(&value.ty.shape, &ty.shape)),
            );
        }
    }

    fn check_fn(
        &mut self,
        name: &ast::Ident,
        params: &[ast::FnParam],
        body: &Expr,
        span: Span,
        from_stdlib: bool,
    ) -> Option<FnId> {
        if !from_stdlib && !self.check_fresh(name, "fn", true) {
            return None;
        }
        let id = FnId(self.fns.len() as u32);
        self.fns.push(None);
        let dims_before = self.dims.len();
        let mut typed_params = Vec::new();
        let saved = std::mem::take(&mut self.locals);
        let mut ok = true;
        for (k, p) in params.iter().enumerate() {
            // The body sees only its parameters: one may share a model name (`eps`, `X`).
            if !from_stdlib && !self.not_a_builtin(&p.name, "fn parameter") {
                ok = false;
            }
            if let Some(prev) = params[..k].iter().find(|q| q.name.name == p.name.name) {
                self.error(
                    Diagnostic::error(
                        "E0101",
                        format!("parameter `{}` is declared twice", p.name.name),
                    )
                    .with_primary(p.name.span, "declared again here")
                    .with_label(prev.name.span, "first declared here")
                    .with_hint("give each parameter its own name"),
                );
                ok = false;
            }
            let defaulted = params[..k].iter().find(|q| q.default.is_some());
            if let (None, Some(prev)) = (&p.default, defaulted) {
                self.error(
                    Diagnostic::error(
                        "E0165",
                        format!(
                            "parameter `{}` has no default but follows `{}`, which has one",
                            p.name.name, prev.name.name
                        ),
                    )
                    .with_primary(p.name.span, "no default")
                    .with_label(prev.name.span, "has a default")
                    .with_hint("put the parameters with defaults last"),
                );
                ok = false;
            }
            let Some(ty) = self.resolve_type(&p.ty, Some(id)) else {
                ok = false;
                continue;
            };
            for d in dims_before..self.dims.len() {
                let dim = &self.dims[d];
                if !self.locals.iter().any(|(n, _)| *n == dim.name) {
                    self.locals
                        .push((dim.name.clone(), Local::Dim(DimId(d as u32))));
                }
            }
            let default = match &p.default {
                Some(e) => match self.expr(e, Place::FnBody(id)) {
                    Some(v) => {
                        self.check_assignable(&v, &ty, &p.name);
                        Some(v)
                    }
                    None => {
                        ok = false;
                        None
                    }
                },
                None => None,
            };
            self.locals
                .push((p.name.name.clone(), Local::FnParam(k as u32, ty.clone())));
            typed_params.push(FnParam {
                name: p.name.name.clone(),
                ty,
                default,
            });
        }
        let body = self.fn_body(name, body, id);
        self.locals = saved;
        let body = body?;
        if !ok {
            return None;
        }
        let generic_dims = (dims_before..self.dims.len())
            .map(|d| DimId(d as u32))
            .collect();
        self.fns[id.0 as usize] = Some(FnDecl {
            name: name.name.clone(),
            params: typed_params,
            generic_dims,
            body,
            from_stdlib,
            span,
        });
        Some(id)
    }

    fn fn_body(&mut self, name: &ast::Ident, body: &Expr, id: FnId) -> Option<TExpr> {
        // The fn's own name resolves to it while its body is checked, so recursion is reported.
        self.recursion_guard = Some((name.name.clone(), name.span));
        let out = self.expr(body, Place::FnBody(id));
        self.recursion_guard = None;
        out
    }
}

// ----- expressions ------------------------------------------------------------------------------

fn mk(kind: TExprKind, ty: Ty, span: Span) -> TExpr {
    TExpr { kind, ty, span }
}

/// Whether `e` reads `argmin` variable `var` anywhere.
fn reads_argmin_var(e: &TExpr, var: u32) -> bool {
    any_subexpr(
        e,
        &mut |x| matches!(x.kind, TExprKind::Ref(Ref::ArgminVar(v)) if v == var),
    )
}

/// Whether `pred` holds for `e` or any expression inside it (not through `let`s and calls).
fn any_subexpr(e: &TExpr, pred: &mut dyn FnMut(&TExpr) -> bool) -> bool {
    if pred(e) {
        return true;
    }
    match &e.kind {
        TExprKind::Const(_) | TExprKind::Ref(_) => false,
        TExprKind::Neg(x) => any_subexpr(x, pred),
        TExprKind::Binary { lhs, rhs, .. } => any_subexpr(lhs, pred) || any_subexpr(rhs, pred),
        TExprKind::Builtin { args, .. } | TExprKind::Array(args) => {
            args.iter().any(|x| any_subexpr(x, pred))
        }
        TExprKind::Call { args, .. } => args
            .iter()
            .any(|a| matches!(a, CallArg::Given(x) if any_subexpr(x, pred))),
        TExprKind::Index { base, indices } => {
            any_subexpr(base, pred)
                || indices
                    .iter()
                    .any(|i| matches!(i, TIndex::Single(x) if any_subexpr(x, pred)))
        }
        TExprKind::Argmin { body, .. } => any_subexpr(body, pred),
    }
}

/// Result element type of arithmetic: int stays int under `+ - * .*`, everything else is real.
fn arith_elem(op: BinOp, a: ElemType, b: ElemType) -> ElemType {
    let int_like = |e| e == ElemType::Int;
    match op {
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::ElemMul if int_like(a) && int_like(b) => {
            ElemType::Int
        }
        _ => ElemType::Real,
    }
}

impl Checker {
    /// Types `e`; `None` after an error is reported (or for a use of a poisoned name). A `None`
    /// with no error at all is a checker bug: [`Checker::finish`] reports it (E0199) rather
    /// than let the statement vanish.
    fn expr(&mut self, e: &Expr, place: Place) -> Option<TExpr> {
        let errors_before = self.errors.len();
        let typed = self.type_expr(e, place);
        if typed.is_none() && self.errors.len() == errors_before && self.unreported.is_none() {
            self.unreported = Some(e.span);
        }
        typed
    }

    fn type_expr(&mut self, e: &Expr, place: Place) -> Option<TExpr> {
        let span = e.span;
        match &e.kind {
            ExprKind::Int(v) => Some(mk(
                TExprKind::Const(*v as f64),
                Ty::scalar(ElemType::Int),
                span,
            )),
            ExprKind::Real(v) => Some(mk(TExprKind::Const(*v), Ty::scalar(ElemType::Real), span)),
            ExprKind::Bool(b) => Some(mk(
                TExprKind::Const(f64::from(u8::from(*b))),
                Ty::scalar(ElemType::Bool),
                span,
            )),
            ExprKind::Str(_) => {
                self.error(
                    Diagnostic::error("E0146", "a string is not a value")
                        .with_primary(span, "string here")
                        .with_hint(
                            "strings are only used as `load(\"path\")` and as `solve with` options",
                        ),
                );
                None
            }
            ExprKind::Name(name) => self.name(name, span, place),
            ExprKind::Unary { expr, .. } => {
                let x = self.expr(expr, place)?;
                let elem = if x.ty.elem == ElemType::Int {
                    ElemType::Int
                } else {
                    ElemType::Real
                };
                let ty = Ty {
                    elem,
                    shape: x.ty.shape.clone(),
                };
                Some(mk(TExprKind::Neg(Box::new(x)), ty, span))
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let a = self.expr(lhs, place);
                let b = self.expr(rhs, place);
                self.binary(*op, a?, b?, span)
            }
            ExprKind::Call { func, args } => self.call(func, args, span, place),
            ExprKind::Index { base, indices } => {
                let b = self.expr(base, place)?;
                self.index(b, indices, span, place)
            }
            ExprKind::Array(items) => {
                let typed: Vec<Option<TExpr>> = items.iter().map(|x| self.expr(x, place)).collect();
                let typed: Vec<TExpr> = typed.into_iter().collect::<Option<_>>()?;
                let Some(first) = typed.first() else {
                    self.error(
                        Diagnostic::error("E0147", "an empty array `[]` has no shape")
                            .with_primary(span, "no elements")
                            .with_hint(
                                "an array literal needs at least one element to take its \
                                 length and element shape from",
                            ),
                    );
                    return None;
                };
                if let Some(bad) = typed.iter().find(|x| x.ty.shape != first.ty.shape) {
                    self.error(
                        Diagnostic::error(
                            "E0129",
                            format!(
                                "array elements differ in shape: {} and {}",
                                self.shape_text(&first.ty.shape),
                                self.shape_text(&bad.ty.shape)
                            ),
                        )
                        .with_primary(
                            bad.span,
                            format!("shape {}", self.shape_text(&bad.ty.shape)),
                        )
                        .with_label(
                            first.span,
                            format!("shape {}", self.shape_text(&first.ty.shape)),
                        )
                        .with_hint("all elements of `[...]` must have the same shape"),
                    );
                    return None;
                }
                let elem = typed
                    .iter()
                    .map(|x| x.ty.elem)
                    .fold(ElemType::Int, |acc, e| {
                        if e == ElemType::Int {
                            acc
                        } else {
                            ElemType::Real
                        }
                    });
                let mut shape = vec![Dim::fixed(typed.len() as i64)];
                shape.extend_from_slice(&first.ty.shape);
                Some(mk(TExprKind::Array(typed), Ty { elem, shape }, span))
            }
            ExprKind::Argmin { var, ty, body } => {
                let ty = self.resolve_type(ty, None)?;
                self.check_size(&ty, var.span);
                self.check_real_variable(&ty, var.span);
                if !self.check_fresh(var, "argmin variable", false) {
                    return None;
                }
                let id = self.argmin_vars.len() as u32;
                self.argmin_vars.push(ArgminVar {
                    name: var.name.clone(),
                    ty: ty.clone(),
                    span: var.span,
                });
                self.locals.push((var.name.clone(), Local::ArgminVar(id)));
                let body_t = self.expr(body, place);
                self.locals.pop();
                let body_t = body_t?;
                if !body_t.ty.is_scalar() {
                    self.error(
                        Diagnostic::error(
                            "E0134",
                            format!(
                                "the body of `argmin` must be a scalar, but it is {}",
                                self.ty_text(&body_t.ty)
                            ),
                        )
                        .with_primary(body.span, format!("this is {}", self.ty_text(&body_t.ty)))
                        .with_label(var.span, "minimized over this variable")
                        .with_hint("reduce the body to a scalar, e.g. with `sumsq(...)`"),
                    );
                    return None;
                }
                if self.reads_an_argmin(&body_t) {
                    self.error(
                        Diagnostic::error("E0139", "an `argmin` inside the objective of another `argmin`")
                            .with_primary(body.span, "reads another `argmin`")
                            .with_hint("lower levels are solved side by side, not nested: give each `argmin` an objective of the outer variables, data and parameters"),
                    );
                    return None;
                }
                if !reads_argmin_var(&body_t, id) {
                    self.warnings.push(
                        Diagnostic::warning(
                            "E0135",
                            format!("the body of `argmin` does not depend on `{}`", var.name),
                        )
                        .with_primary(body.span, format!("`{}` does not appear here", var.name))
                        .with_label(var.span, "variable declared here")
                        .with_hint("every point is a minimizer; use the variable in the body"),
                    );
                }
                Some(mk(
                    TExprKind::Argmin {
                        var: id,
                        body: Box::new(body_t),
                    },
                    ty,
                    span,
                ))
            }
        }
    }

    /// Whether `e` holds an `argmin`, directly or through the `let`s it reads.
    fn reads_an_argmin(&self, e: &TExpr) -> bool {
        any_subexpr(e, &mut |x| match x.kind {
            TExprKind::Argmin { .. } => true,
            TExprKind::Ref(Ref::Let(i)) => self.reads_an_argmin(&self.lets[i as usize].value),
            _ => false,
        })
    }

    fn name(&mut self, name: &str, span: Span, place: Place) -> Option<TExpr> {
        let int = Ty::scalar(ElemType::Int);
        if let Some((_, local)) = self.locals.iter().rev().find(|(n, _)| n == name) {
            return Some(match local.clone() {
                Local::FnParam(k, ty) => mk(TExprKind::Ref(Ref::FnParam(k)), ty, span),
                Local::Dim(d) => mk(TExprKind::Ref(Ref::Dim(d)), int, span),
                Local::LoopIndex { level, .. } => {
                    mk(TExprKind::Ref(Ref::LoopIndex(level)), int, span)
                }
                Local::ArgminVar(v) => {
                    let ty = self.argmin_vars[v as usize].ty.clone();
                    mk(TExprKind::Ref(Ref::ArgminVar(v)), ty, span)
                }
            });
        }
        if let Some(&(g, decl)) = self.globals.get(name) {
            let allowed = match (place, g) {
                (_, Global::Fn(_)) => true,
                (Place::FnBody(_), _) => false,
                (Place::ParamValue, Global::Dim(_) | Global::Param(_)) => true,
                (Place::ParamValue, _) => false,
                (Place::VarValue, Global::Dim(_) | Global::Param(_) | Global::Data(_)) => true,
                (Place::VarValue, _) => false,
                (Place::Model, _) => true,
            };
            if !allowed {
                let (code, why, hint) = match place {
                    Place::FnBody(_) => ("E0103", "a fn body sees only its parameters, its dims and other fns", "pass it to the fn as a parameter"),
                    Place::ParamValue => ("E0144", "a param value may use only literals, dims and other params", "compute it in a `let` instead"),
                    _ => ("E0145", "a variable's initial value and bounds may use only literals, dims, data and params", "set a constant start value; use constraints for relations between variables"),
                };
                self.error(
                    Diagnostic::error(
                        code,
                        format!("the {} `{name}` cannot be used here: {why}", g.what()),
                    )
                    .with_primary(span, "not visible here")
                    .with_label(decl, "declared here")
                    .with_hint(hint),
                );
                return None;
            }
            let (r, ty) = match g {
                Global::Dim(d) => (Ref::Dim(d), int),
                Global::Data(i) => (Ref::Data(i), self.data[i as usize].ty.clone()),
                Global::Param(i) => (Ref::Param(i), self.params[i as usize].ty.clone()),
                Global::Var(i) => (Ref::Var(i), self.vars[i as usize].ty.clone()),
                Global::Let(i) => (Ref::Let(i), self.lets[i as usize].value.ty.clone()),
                Global::Fn(_) => return self.not_a_value(name, span, "fn"),
            };
            return Some(mk(TExprKind::Ref(r), ty, span));
        }
        if self.stdlib_fns.contains_key(name) {
            return self.not_a_value(name, span, "fn");
        }
        if self.poisoned.contains(name) {
            return None;
        }
        if Builtin::from_name(name).is_some() {
            return self.not_a_value(name, span, "builtin function");
        }
        self.undefined(name, span);
        None
    }

    fn not_a_value(&mut self, name: &str, span: Span, what: &str) -> Option<TExpr> {
        self.error(
            Diagnostic::error("E0105", format!("`{name}` is a {what}, not a value"))
                .with_primary(span, "used as a value")
                .with_hint(format!("call it: `{name}(...)`")),
        );
        None
    }

    fn undefined(&mut self, name: &str, span: Span) {
        if self.declaring.as_deref() == Some(name) {
            self.error(
                Diagnostic::error("E0100", format!("`{name}` is used in its own definition"))
                    .with_primary(span, "not declared yet")
                    .with_hint(format!(
                        "a definition reads only names declared before it: give the new value another name (`{name}2 = ...`)"
                    )),
            );
            return;
        }
        let mut candidates: Vec<String> = self.locals.iter().map(|(n, _)| n.clone()).collect();
        candidates.extend(self.globals.keys().cloned());
        candidates.extend(self.stdlib_fns.keys().cloned());
        candidates.extend(Builtin::names().map(String::from));
        candidates.sort();
        let mut d = Diagnostic::error("E0100", format!("undefined name `{name}`"))
            .with_primary(span, "not declared");
        d = match suggest(name, candidates.iter().map(String::as_str)) {
            Some(s) => d.with_hint(format!("did you mean `{s}`?")),
            None => d.with_hint(format!(
                "declare it before its first use, e.g. `param {name} = 0.1` (a value, also set by `--param`) or with `data`, `var` or `let`"
            )),
        };
        self.error(d);
    }

    /// E0100 for a call of `name`, which is no function: the closest function's name, or where
    /// functions come from.
    fn undefined_function(&mut self, name: &str, span: Span) {
        let mut candidates: Vec<String> = self
            .globals
            .iter()
            .filter(|(_, (g, _))| matches!(g, Global::Fn(_)))
            .map(|(n, _)| n.clone())
            .collect();
        candidates.extend(self.stdlib_fns.keys().cloned());
        candidates.extend(Builtin::names().map(String::from));
        candidates.sort();
        let d = Diagnostic::error("E0100", format!("undefined function `{name}`"))
            .with_primary(span, "no function of this name");
        let d = match suggest(name, candidates.iter().map(String::as_str)) {
            Some(s) => d.with_hint(format!("did you mean `{s}`?")),
            None => d.with_hint(format!(
                "functions are the builtins, the standard library's and those declared with `fn {name}(...) = ...` (`optc explain E0100`)"
            )),
        };
        self.error(d);
    }

    fn broadcast(&mut self, a: &TExpr, b: &TExpr, what: &str) -> Option<Shape> {
        match broadcast_shapes(&a.ty.shape, &b.ty.shape) {
            Ok(s) => Some(s),
            Err(_) => {
                let (sa, sb) = (self.shape_text(&a.ty.shape), self.shape_text(&b.ty.shape));
                self.error(
                    Diagnostic::error("E0120", format!("shapes {sa} and {sb} cannot be broadcast together in {what}"))
                        .with_primary(b.span, format!("shape {sb}"))
                        .with_label(a.span, format!("shape {sa}"))
                        .with_hint("trailing dimensions must be equal or 1; check the operands, or use `transpose`/`@`")
                        .with_notes(self.symbol_vs_literal(&a.ty.shape, &b.ty.shape)),
                );
                None
            }
        }
    }

    fn binary(&mut self, op: BinOp, a: TExpr, b: TExpr, span: Span) -> Option<TExpr> {
        let elem = arith_elem(op, a.ty.elem, b.ty.elem);
        let shape = match op {
            BinOp::Mul if !a.ty.is_scalar() && !b.ty.is_scalar() => {
                let (sa, sb) = (self.shape_text(&a.ty.shape), self.shape_text(&b.ty.shape));
                self.error(
                    Diagnostic::error(
                        "E0122",
                        format!("`*` needs a scalar operand, but both are tensors ({sa} and {sb})"),
                    )
                    .with_primary(b.span, format!("shape {sb}"))
                    .with_label(a.span, format!("shape {sa}"))
                    .with_hint("use `.*` for elementwise or `@` for the matrix product"),
                );
                return None;
            }
            BinOp::MatMul => self.matmul_shape(&a, &b)?,
            _ => self.broadcast(&a, &b, "this operation")?,
        };
        Some(mk(
            TExprKind::Binary {
                op,
                lhs: Box::new(a),
                rhs: Box::new(b),
            },
            Ty { elem, shape },
            span,
        ))
    }

    fn matmul_shape(&mut self, a: &TExpr, b: &TExpr) -> Option<Shape> {
        let (sa, sb) = (&a.ty.shape, &b.ty.shape);
        for x in [a, b] {
            if !(1..=2).contains(&x.ty.shape.len()) {
                self.error(
                    Diagnostic::error(
                        "E0123",
                        format!(
                            "`@` needs vectors or matrices, but this operand is {}",
                            self.ty_text(&x.ty)
                        ),
                    )
                    .with_primary(x.span, format!("rank {}", x.ty.shape.len()))
                    .with_hint("use `*` to scale by a scalar"),
                );
                return None;
            }
        }
        let (ia, ib) = (sa[sa.len() - 1], sb[0]);
        if ia != ib {
            let (ta, tb) = (self.shape_text(sa), self.shape_text(sb));
            self.error(
                Diagnostic::error("E0121", format!("inner dimensions of `@` differ: {ta} @ {tb}"))
                    .with_primary(b.span, format!("shape {tb}, first dimension {}", self.dim_text(ib)))
                    .with_label(a.span, format!("shape {ta}, last dimension {}", self.dim_text(ia)))
                    .with_hint("the last dimension of the left operand must equal the first of the right one; maybe transpose one of them")
                    .with_notes(self.symbol_vs_literal(&[ia], &[ib])),
            );
            return None;
        }
        let mut out: Shape = sa[..sa.len() - 1].to_vec();
        out.extend_from_slice(&sb[1..]);
        Some(out)
    }

    /// A size written as an expression: an int literal, a dim, or a dim plus/minus an int literal.
    fn static_dim(&mut self, e: &Expr) -> Option<Dim> {
        match &e.kind {
            ExprKind::Int(v) if (0..=MAX_ELEMENTS as i64).contains(v) => Some(Dim::fixed(*v)),
            ExprKind::Name(n) => {
                let local = self
                    .locals
                    .iter()
                    .rev()
                    .find(|(m, _)| m == n)
                    .map(|(_, l)| l.clone());
                match local {
                    Some(Local::Dim(d)) => Some(Dim::sym(d)),
                    Some(_) => None,
                    None => match self.globals.get(n) {
                        Some((Global::Dim(d), _)) => Some(Dim::sym(*d)),
                        _ => None,
                    },
                }
            }
            ExprKind::Binary {
                op: op @ (BinOp::Add | BinOp::Sub),
                lhs,
                rhs,
            } => {
                let base = self.static_dim(lhs)?;
                let ExprKind::Int(k) = rhs.kind else {
                    return None;
                };
                if k.unsigned_abs() > MAX_ELEMENTS {
                    return None;
                }
                let k = if *op == BinOp::Add { k } else { -k };
                Some(Dim {
                    sym: base.sym,
                    offset: base.offset.checked_add(k)?,
                })
            }
            _ => None,
        }
    }

    /// E0113 when a decision variable's type `ty` (written at `span`) is not `real`.
    fn check_real_variable(&mut self, ty: &Ty, span: Span) {
        if ty.elem != ElemType::Real {
            let elem = match ty.elem {
                ElemType::Int => "int",
                _ => "bool",
            };
            self.error(
                Diagnostic::error("E0113", format!("a variable must be real, not `{elem}`"))
                    .with_primary(span, "not real")
                    .with_hint("optc does not do integer programming: declare it `real` (a relaxation such as `real[n] >= 0 <= 1` for 0/1 choices) and round the result if needed"),
            );
        }
    }

    /// E0137 when `topk`'s count `k` (written `e`) is known to be below 1 or beyond the
    /// vector's length `len`.
    fn check_topk_count(&mut self, e: &Expr, k: Dim, len: Dim) {
        let below_one = k.sym.is_none() && k.offset < 1;
        let beyond = k
            .minus(len)
            .is_some_and(|d| d.sym.is_none() && d.offset > 0);
        if below_one || beyond {
            let (k, len) = (self.dim_text(k), self.dim_text(len));
            self.error(
                Diagnostic::error(
                    "E0137",
                    format!("`topk` keeps {k} entries of a vector of length {len}"),
                )
                .with_primary(e.span, "count out of range")
                .with_hint(format!(
                    "k must be at least 1 and at most the length, {len}"
                )),
            );
        }
    }

    fn require_static_dim(&mut self, e: &Expr, what: &str) -> Option<Dim> {
        let d = self.static_dim(e);
        if d.is_none() {
            self.error(
                Diagnostic::error(
                    "E0128",
                    format!("{what} must be a size known before solving"),
                )
                .with_primary(e.span, "not a size")
                .with_hint(
                    "write an int literal, a dim, or a dim plus or minus a literal (`n - 1`)",
                ),
            );
        }
        d
    }

    /// The least and greatest value an index takes when that is known before solving: a size
    /// (`3`, `n - 1`), or a `for` index plus or minus literals (`i + 1`) over its range, if the
    /// range is not empty.
    fn index_extent(&mut self, e: &Expr) -> Option<(Dim, Dim)> {
        if let Some(d) = self.static_dim(e) {
            return Some((d, d));
        }
        let shift = |d: Dim, k: i64| {
            Some(Dim {
                sym: d.sym,
                offset: d.offset.checked_add(k)?,
            })
        };
        match &e.kind {
            ExprKind::Name(n) => match self.locals.iter().rev().find(|(m, _)| m == n) {
                Some((_, Local::LoopIndex { start, end, .. })) => {
                    let empty = end
                        .minus(*start)
                        .is_none_or(|len| len.sym.is_none() && len.offset <= 0);
                    if empty {
                        None
                    } else {
                        Some((*start, shift(*end, -1)?))
                    }
                }
                _ => None,
            },
            ExprKind::Unary {
                op: UnOp::Neg,
                expr,
            } => match expr.kind {
                ExprKind::Int(k) => Some((Dim::fixed(k.checked_neg()?), Dim::fixed(-k))),
                _ => None,
            },
            ExprKind::Binary {
                op: op @ (BinOp::Add | BinOp::Sub),
                lhs,
                rhs,
            } => {
                let (inner, k) = match (&lhs.kind, &rhs.kind) {
                    (_, ExprKind::Int(k)) => (
                        lhs,
                        if *op == BinOp::Add {
                            *k
                        } else {
                            k.checked_neg()?
                        },
                    ),
                    (ExprKind::Int(k), _) if *op == BinOp::Add => (rhs, *k),
                    _ => return None,
                };
                let (lo, hi) = self.index_extent(inner)?;
                Some((shift(lo, k)?, shift(hi, k)?))
            }
            _ => None,
        }
    }

    fn index(
        &mut self,
        base: TExpr,
        indices: &[IndexExpr],
        span: Span,
        place: Place,
    ) -> Option<TExpr> {
        let rank = base.ty.shape.len();
        if indices.len() > rank {
            self.error(
                Diagnostic::error(
                    "E0127",
                    format!(
                        "{} indices given, but the value has rank {rank}",
                        indices.len()
                    ),
                )
                .with_primary(span, "too many indices")
                .with_label(base.span, format!("this is {}", self.ty_text(&base.ty)))
                .with_hint("give at most one index or range per axis"),
            );
            return None;
        }
        let mut shape = Vec::new();
        let mut typed = Vec::new();
        for (axis, ix) in indices.iter().enumerate() {
            let axis_dim = base.ty.shape[axis];
            match ix {
                IndexExpr::Single(e) => {
                    let i = self.expr(e, place)?;
                    if !i.ty.is_scalar() || i.ty.elem != ElemType::Int {
                        self.error(
                            Diagnostic::error("E0111", format!("an index must be an int scalar, but this is {}", self.ty_text(&i.ty)))
                                .with_primary(e.span, "not an int")
                                .with_hint("use an int literal, a dim, or a `for` index; `a:b` selects a range"),
                        );
                        return None;
                    }
                    if let Some((lo, hi)) = self.index_extent(e) {
                        let negative = lo.sym.is_none() && lo.offset < 0;
                        let past_end = hi
                            .minus(axis_dim)
                            .is_some_and(|over| over.sym.is_none() && over.offset >= 0);
                        if negative || past_end {
                            let message = if lo == hi {
                                format!(
                                    "the index {} is outside an axis of size {}",
                                    self.dim_text(lo),
                                    self.dim_text(axis_dim)
                                )
                            } else {
                                format!(
                                    "the index runs from {} to {}, outside an axis of size {}",
                                    self.dim_text(lo),
                                    self.dim_text(hi),
                                    self.dim_text(axis_dim)
                                )
                            };
                            let last = self.dim_text(Dim {
                                offset: axis_dim.offset - 1,
                                ..axis_dim
                            });
                            let hint = match negative {
                                true => format!("negative indices do not count from the end: write `{last}` for the last entry"),
                                false => format!("indices are 0-based: this axis of size {} has the indices 0 to {last}", self.dim_text(axis_dim)),
                            };
                            self.error(
                                Diagnostic::error("E0127", message)
                                    .with_primary(e.span, "out of range")
                                    .with_label(
                                        base.span,
                                        format!("this is {}", self.ty_text(&base.ty)),
                                    )
                                    .with_hint(hint),
                            );
                            return None;
                        }
                    }
                    typed.push(TIndex::Single(i));
                }
                IndexExpr::Range {
                    start,
                    end,
                    span: rspan,
                } => {
                    let s = match start {
                        Some(e) => self.require_static_dim(e, "a range bound")?,
                        None => Dim::fixed(0),
                    };
                    let t = match end {
                        Some(e) => self.require_static_dim(e, "a range bound")?,
                        None => axis_dim,
                    };
                    let out_of_range = t
                        .minus(axis_dim)
                        .is_some_and(|over| over.sym.is_none() && over.offset > 0)
                        || s.offset < 0 && s.sym.is_none();
                    let Some(len) = t.minus(s).filter(|l| !(l.sym.is_none() && l.offset < 0))
                    else {
                        self.error(
                            Diagnostic::error("E0128", format!("the range {}:{} has no known length", self.dim_text(s), self.dim_text(t)))
                                .with_primary(*rspan, "range here")
                                .with_hint("both ends must use the same dim (`1:n`, `0:n - 1`) or be literals, start ≤ end"),
                        );
                        return None;
                    };
                    if out_of_range {
                        self.error(
                            Diagnostic::error(
                                "E0127",
                                format!(
                                    "the range {}:{} exceeds the axis of size {}",
                                    self.dim_text(s),
                                    self.dim_text(t),
                                    self.dim_text(axis_dim)
                                ),
                            )
                            .with_primary(*rspan, "out of range")
                            .with_label(base.span, format!("this is {}", self.ty_text(&base.ty)))
                            .with_hint("ranges are 0-based and end-exclusive"),
                        );
                        return None;
                    }
                    shape.push(len);
                    typed.push(TIndex::Range { start: s, end: t });
                }
            }
        }
        shape.extend_from_slice(&base.ty.shape[indices.len()..]);
        let ty = Ty {
            elem: base.ty.elem,
            shape,
        };
        Some(mk(
            TExprKind::Index {
                base: Box::new(base),
                indices: typed,
            },
            ty,
            span,
        ))
    }

    /// Matches call arguments to parameters (`(name, optional)`), reporting arity and keyword errors.
    fn bind_args<'e>(
        &mut self,
        callee: &str,
        span: Span,
        params: &[(String, bool)],
        args: &'e [Arg],
    ) -> Option<Vec<Option<&'e Expr>>> {
        let mut bound: Vec<Option<&Expr>> = vec![None; params.len()];
        let mut spans: Vec<Option<Span>> = vec![None; params.len()];
        let mut seen_keyword = false;
        let mut ok = true;
        let signature = params
            .iter()
            .map(|(n, opt)| {
                if *opt {
                    format!("{n} = ...")
                } else {
                    n.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut positional = 0;
        for arg in args {
            let slot = match &arg.name {
                None => {
                    if seen_keyword {
                        self.error(
                            Diagnostic::error(
                                "E0164",
                                "a positional argument follows a keyword argument",
                            )
                            .with_primary(arg.value.span, "positional argument")
                            .with_hint("put positional arguments first"),
                        );
                        ok = false;
                        continue;
                    }
                    positional += 1;
                    if positional > params.len() {
                        self.error(
                            Diagnostic::error(
                                "E0160",
                                format!(
                                    "`{callee}` takes {} argument(s) but {} were given",
                                    params.len(),
                                    args.len()
                                ),
                            )
                            .with_primary(arg.value.span, "extra argument")
                            .with_label(span, format!("`{callee}({signature})`"))
                            .with_hint("remove the extra arguments"),
                        );
                        return None;
                    }
                    positional - 1
                }
                Some(name) => {
                    seen_keyword = true;
                    match params.iter().position(|(n, _)| *n == name.name) {
                        Some(k) => k,
                        None => {
                            let mut d = Diagnostic::error(
                                "E0161",
                                format!("`{callee}` has no parameter `{}`", name.name),
                            )
                            .with_primary(name.span, "unknown keyword argument")
                            .with_label(span, format!("`{callee}({signature})`"));
                            d = match suggest(&name.name, params.iter().map(|(n, _)| n.as_str())) {
                                Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                                None => d.with_hint(format!("the parameters are: {signature}")),
                            };
                            self.error(d);
                            ok = false;
                            continue;
                        }
                    }
                }
            };
            if let Some(first) = spans[slot] {
                self.error(
                    Diagnostic::error(
                        "E0162",
                        format!("argument `{}` of `{callee}` is given twice", params[slot].0),
                    )
                    .with_primary(arg.value.span, "given again here")
                    .with_label(first, "first given here")
                    .with_hint("pass each argument once"),
                );
                ok = false;
                continue;
            }
            bound[slot] = Some(&arg.value);
            spans[slot] = Some(arg.value.span);
        }
        for (k, (name, optional)) in params.iter().enumerate() {
            if bound[k].is_none() && !optional {
                self.error(
                    Diagnostic::error(
                        "E0163",
                        format!("`{callee}` is missing its argument `{name}`"),
                    )
                    .with_primary(span, format!("`{name}` not given"))
                    .with_hint(format!("the call is `{callee}({signature})`")),
                );
                ok = false;
            }
        }
        ok.then_some(bound)
    }

    fn call(&mut self, func: &ast::Ident, args: &[Arg], span: Span, place: Place) -> Option<TExpr> {
        let name = func.name.as_str();
        if let Some((guard, gspan)) = &self.recursion_guard {
            if guard == name {
                let gspan = *gspan;
                self.error(
                    Diagnostic::error("E0104", format!("fn `{name}` calls itself"))
                        .with_primary(func.span, "recursive call")
                        .with_label(gspan, "in the body of this fn")
                        .with_hint(
                            "fns are inlined and cannot be recursive; write the expression out",
                        ),
                );
                return None;
            }
        }
        if self.locals.iter().any(|(n, _)| n == name) {
            return self.not_callable(func, None);
        }
        match self.globals.get(name).copied() {
            Some((Global::Fn(id), _)) => return self.fn_call(id, func, args, span, place),
            Some((_, decl)) => return self.not_callable(func, Some(decl)),
            None => {}
        }
        if let Some(&id) = self.stdlib_fns.get(name) {
            return self.fn_call(id, func, args, span, place);
        }
        let Some(b) = Builtin::from_name(name) else {
            if !self.poisoned.contains(name) {
                self.undefined_function(name, func.span);
            }
            return None;
        };
        let where_ok = match b {
            Builtin::Card => Some((
                "E0141",
                "`card` is only allowed in a constraint `card(x) <= k`",
                "write `card(x) <= k` under `subject to`",
            )),
            Builtin::Threshold | Builtin::AsDag => Some((
                "E0140",
                "only allowed as the last steps of an `output`",
                "write `output W |> threshold(0.3) |> as_dag`",
            )),
            Builtin::Load => Some((
                "E0142",
                "`load` is only allowed as the value of a `data` declaration",
                "declare `data X : real[n, d] = load(\"X.npy\")` and use `X`",
            )),
            _ => None,
        };
        if let Some((code, why, hint)) = where_ok {
            self.error(
                Diagnostic::error(code, format!("`{name}` cannot be used here: {why}"))
                    .with_primary(func.span, "not allowed here")
                    .with_hint(hint),
            );
            return None;
        }
        let params: Vec<(String, bool)> = b
            .params()
            .iter()
            .map(|(n, o)| (n.to_string(), *o))
            .collect();
        let bound = self.bind_args(name, span, &params, args)?;
        self.builtin(b, &bound, span, place)
    }

    fn not_callable(&mut self, func: &ast::Ident, decl: Option<Span>) -> Option<TExpr> {
        let mut d = Diagnostic::error("E0106", format!("`{}` is not a function", func.name))
            .with_primary(func.span, "called here")
            .with_hint("index a tensor with `x[i]`, not `x(i)`");
        if let Some(s) = decl {
            d = d.with_label(s, "declared here");
        }
        self.error(d);
        None
    }

    fn need_rank(&mut self, x: &TExpr, name: &str, ok: bool, what: &str) -> Option<()> {
        if ok {
            return Some(());
        }
        self.error(
            Diagnostic::error(
                "E0123",
                format!(
                    "`{name}` needs {what}, but its argument is {}",
                    self.ty_text(&x.ty)
                ),
            )
            .with_primary(x.span, format!("this is {}", self.ty_text(&x.ty)))
            .with_hint(format!("pass {what}")),
        );
        None
    }

    fn need_square(&mut self, x: &TExpr, name: &str) -> Option<Dim> {
        match x.ty.shape.as_slice() {
            [a, b] if a == b => Some(*a),
            _ => {
                self.error(
                    Diagnostic::error(
                        "E0124",
                        format!(
                            "`{name}` needs a square matrix, but its argument is {}",
                            self.ty_text(&x.ty)
                        ),
                    )
                    .with_primary(x.span, format!("this is {}", self.ty_text(&x.ty)))
                    .with_hint("the argument must have shape [n, n]"),
                );
                None
            }
        }
    }

    fn builtin(
        &mut self,
        b: Builtin,
        bound: &[Option<&Expr>],
        span: Span,
        place: Place,
    ) -> Option<TExpr> {
        let name = b.name();
        let real = ElemType::Real;
        let first = bound[0]?;
        let x = self.expr(first, place)?;
        let mut args = vec![];
        let mut axis = None;
        let mut size = None;
        let shape: Shape = match b.kind() {
            Kind::Elementwise => x.ty.shape.clone(),
            Kind::Elementwise2 => {
                let y = self.expr(bound[1]?, place)?;
                let s = self.broadcast(&x, &y, &format!("`{name}`"))?;
                args.push(y);
                s
            }
            Kind::Reduction => match bound[1] {
                None => Vec::new(),
                Some(a) => {
                    let rank = x.ty.shape.len();
                    let k = match a.kind {
                        ExprKind::Int(k) if k >= 0 && (k as usize) < rank => k as u32,
                        ExprKind::Int(k) => {
                            self.error(
                                Diagnostic::error("E0125", format!("axis {k} is out of range for `{name}` of a value of rank {rank}"))
                                    .with_primary(a.span, "axis out of range")
                                    .with_label(x.span, format!("this is {}", self.ty_text(&x.ty)))
                                    .with_hint(format!("axes are 0-based: use 0..{rank}")),
                            );
                            return None;
                        }
                        _ => {
                            self.error(
                                Diagnostic::error("E0125", "an axis must be an int literal")
                                    .with_primary(a.span, "not an int literal")
                                    .with_hint("write e.g. `axis = 0`"),
                            );
                            return None;
                        }
                    };
                    axis = Some(k);
                    let mut s = x.ty.shape.clone();
                    s.remove(k as usize);
                    s
                }
            },
            Kind::ToScalar => Vec::new(),
            Kind::Special => {
                match b {
                    Builtin::NuclearNorm => {
                        self.need_rank(&x, name, x.ty.shape.len() == 2, "a matrix")?;
                        Vec::new()
                    }
                    Builtin::Transpose => {
                        self.need_rank(&x, name, x.ty.shape.len() == 2, "a matrix")?;
                        vec![x.ty.shape[1], x.ty.shape[0]]
                    }
                    Builtin::Eye => {
                        let n = self.require_static_dim(first, "the size of `eye`")?;
                        size = Some(n);
                        return Some(mk(
                            TExprKind::Builtin {
                                builtin: b,
                                args: vec![],
                                axis,
                                size,
                            },
                            Ty {
                                elem: real,
                                shape: vec![n, n],
                            },
                            span,
                        ));
                    }
                    Builtin::Diag => match x.ty.shape.len() {
                        1 => vec![x.ty.shape[0], x.ty.shape[0]],
                        _ => vec![self.need_square(&x, name)?],
                    },
                    Builtin::Trace | Builtin::LogDet => {
                        self.need_square(&x, name)?;
                        Vec::new()
                    }
                    Builtin::Expm | Builtin::Inv => {
                        self.need_square(&x, name)?;
                        x.ty.shape.clone()
                    }
                    Builtin::MatPow => {
                        self.need_square(&x, name)?;
                        let k = self.require_static_dim(bound[1]?, "`k` of `matpow`")?;
                        size = Some(k);
                        x.ty.shape.clone()
                    }
                    Builtin::Solve => {
                        let n = self.need_square(&x, name)?;
                        let y = self.expr(bound[1]?, place)?;
                        if !(1..=2).contains(&y.ty.shape.len()) || y.ty.shape[0] != n {
                            let (sa, sb) =
                                (self.shape_text(&x.ty.shape), self.shape_text(&y.ty.shape));
                            self.error(
                            Diagnostic::error("E0121", format!("`solve(A, b)` needs b with as many rows as A: {sa} and {sb}"))
                                .with_primary(span, "row counts differ")
                                .with_label(x.span, format!("shape {sa}"))
                                .with_label(y.span, format!("shape {sb}"))
                                .with_hint("b must be a vector of length n or a matrix with n rows"),
                        );
                            return None;
                        }
                        let s = y.ty.shape.clone();
                        args.push(y);
                        s
                    }
                    Builtin::Sort => {
                        self.need_rank(&x, name, x.ty.shape.len() == 1, "a vector")?;
                        x.ty.shape.clone()
                    }
                    Builtin::TopK => {
                        self.need_rank(&x, name, x.ty.shape.len() == 1, "a vector")?;
                        let k = self.require_static_dim(bound[1]?, "`k` of `topk`")?;
                        self.check_topk_count(bound[1]?, k, x.ty.shape[0]);
                        size = Some(k);
                        vec![k]
                    }
                    _ => return None,
                }
            }
        };
        args.insert(0, x);
        Some(mk(
            TExprKind::Builtin {
                builtin: b,
                args,
                axis,
                size,
            },
            Ty { elem: real, shape },
            span,
        ))
    }

    fn fn_call(
        &mut self,
        id: FnId,
        func: &ast::Ident,
        args: &[Arg],
        span: Span,
        place: Place,
    ) -> Option<TExpr> {
        let decl = self.fns[id.0 as usize].clone()?;
        let params: Vec<(String, bool)> = decl
            .params
            .iter()
            .map(|p| (p.name.clone(), p.default.is_some()))
            .collect();
        let bound = self.bind_args(&func.name, span, &params, args)?;
        let mut binding: HashMap<DimId, (Dim, Span)> = HashMap::new();
        let mut typed_args = Vec::new();
        let mut ok = true;
        for (p, arg) in decl.params.iter().zip(&bound) {
            let Some(arg) = arg else {
                typed_args.push(CallArg::Default);
                continue;
            };
            let Some(a) = self.expr(arg, place) else {
                ok = false;
                continue;
            };
            if !elem_fits(a.ty.elem, p.ty.elem) {
                self.error(
                    Diagnostic::error(
                        "E0110",
                        format!(
                            "parameter `{}` of `{}` is {}, but the argument is {}",
                            p.name,
                            func.name,
                            elem_name(p.ty.elem),
                            elem_name(a.ty.elem)
                        ),
                    )
                    .with_primary(a.span, format!("{} argument", elem_name(a.ty.elem)))
                    .with_label(decl.span, "fn defined here")
                    .with_hint("pass a value of the parameter's element type"),
                );
                ok = false;
            }
            if !self.unify(&p.ty, &a, &func.name, &p.name, &mut binding) {
                ok = false;
            }
            typed_args.push(CallArg::Given(a));
        }
        if !ok {
            return None;
        }
        let mut dims = Vec::new();
        for g in &decl.generic_dims {
            match binding.get(g) {
                Some((d, _)) => dims.push(*d),
                None => {
                    self.error(
                        Diagnostic::error(
                            "E0126",
                            format!(
                                "the size `{}` of `{}` is not fixed by the arguments",
                                self.dims[g.0 as usize].name, func.name
                            ),
                        )
                        .with_primary(span, "cannot infer this size")
                        .with_label(decl.span, "fn defined here")
                        .with_hint("pass the arguments whose types mention this dim"),
                    );
                    return None;
                }
            }
        }
        let subst = |d: Dim| match d
            .sym
            .and_then(|s| decl.generic_dims.iter().position(|g| *g == s))
        {
            Some(k) => Dim {
                sym: dims[k].sym,
                offset: dims[k].offset + d.offset,
            },
            None => d,
        };
        let shape = decl.body.ty.shape.iter().map(|&d| subst(d)).collect();
        let ty = Ty {
            elem: decl.body.ty.elem,
            shape,
        };
        Some(mk(
            TExprKind::Call {
                func: id,
                args: typed_args,
                dims,
            },
            ty,
            span,
        ))
    }

    /// Binds the generic dims of a fn parameter's type to the argument's shape.
    fn unify(
        &mut self,
        param: &Ty,
        arg: &TExpr,
        fname: &str,
        pname: &str,
        binding: &mut HashMap<DimId, (Dim, Span)>,
    ) -> bool {
        let mismatch = |c: &mut Checker,
                        binding: &HashMap<DimId, (Dim, Span)>,
                        other: Option<Span>,
                        hint: String| {
            // The parameter's type with the sizes earlier arguments fixed.
            let bound = |d: &Dim| match d.sym.and_then(|g| binding.get(&g)) {
                Some((size, _)) => Dim {
                    sym: size.sym,
                    offset: size.offset + d.offset,
                },
                None => *d,
            };
            let expected = c.ty_text(&Ty {
                elem: param.elem,
                shape: param.shape.iter().map(bound).collect(),
            });
            let got = c.ty_text(&arg.ty);
            let mut d = Diagnostic::error(
                "E0126",
                format!("argument `{pname}` of `{fname}` should be {expected}, but it is {got}"),
            )
            .with_primary(arg.span, format!("this is {got}"));
            if let Some(o) = other {
                d = d.with_label(o, "this argument fixed the size already");
            }
            c.error(d.with_hint(hint));
            false
        };
        if param.shape.len() != arg.ty.shape.len() {
            let hint = format!(
                "`{pname}` has {} axes in the fn's signature",
                param.shape.len()
            );
            return mismatch(self, binding, None, hint);
        }
        for (p, a) in param.shape.iter().zip(&arg.ty.shape) {
            match p.sym {
                // `g + p.offset` is the argument's size, so g is that size minus the offset.
                Some(g) => match binding.get(&g) {
                    Some((d, s)) if d.offset + p.offset != a.offset || d.sym != a.sym => {
                        let s = *s;
                        let hint = "arguments sharing a dim name in the fn's signature must have \
                                    equal sizes"
                            .to_string();
                        return mismatch(self, binding, Some(s), hint);
                    }
                    Some(_) => {}
                    None if a.sym.is_none() && a.offset < p.offset => {
                        let name = self.dim_text(Dim::sym(g));
                        let hint = format!(
                            "`{name}` would be {} - {} = {}: a size cannot be negative",
                            a.offset,
                            p.offset,
                            a.offset - p.offset
                        );
                        return mismatch(self, binding, None, hint);
                    }
                    None => {
                        let size = Dim {
                            sym: a.sym,
                            offset: a.offset - p.offset,
                        };
                        binding.insert(g, (size, arg.span));
                    }
                },
                None if p != a => {
                    let hint = "the fn's signature fixes this axis's size".to_string();
                    return mismatch(self, binding, None, hint);
                }
                None => {}
            }
        }
        true
    }
}

// ----- constraints, solve, outputs ---------------------------------------------------------------

impl Checker {
    fn constraint(&mut self, c: &ast::Constraint, loops: Vec<Loop>) {
        match &c.kind {
            AstConstraint::For {
                index,
                start,
                end,
                body,
            } => {
                if !self.check_fresh(index, "loop index", false) {
                    return;
                }
                if loops.iter().any(|l| l.index == index.name) {
                    self.error(
                        Diagnostic::error(
                            "E0102",
                            format!(
                                "loop index `{}` shadows the index of an enclosing `for`",
                                index.name
                            ),
                        )
                        .with_primary(index.span, "declared again here")
                        .with_hint(
                            "give each nested `for` its own index: `for i in ...: for j in ...:`",
                        ),
                    );
                    return;
                }
                let range_span = start.span.to(end.span);
                let s = self.require_static_dim(start, "the start of a `for` range");
                let e = self.require_static_dim(end, "the end of a `for` range");
                let (Some(start), Some(end)) = (s, e) else {
                    return;
                };
                if end
                    .minus(start)
                    .is_some_and(|len| len.sym.is_none() && len.offset <= 0)
                {
                    let range = format!("{}..{}", self.dim_text(start), self.dim_text(end));
                    self.warnings.push(
                        Diagnostic::warning(
                            "E0138",
                            format!(
                                "the range `{range}` is empty: this constraint constrains nothing"
                            ),
                        )
                        .with_primary(range_span, "no index")
                        .with_hint(
                            "a range `a..b` runs over a <= i < b: check the order of its bounds",
                        ),
                    );
                }
                let level = loops.len() as u32;
                let mut inner = loops;
                inner.push(Loop {
                    index: index.name.clone(),
                    start,
                    end,
                    span: range_span,
                });
                self.locals
                    .push((index.name.clone(), Local::LoopIndex { level, start, end }));
                // The label of a `for` applies to the constraint it wraps.
                let body_c = ast::Constraint {
                    label: c.label.clone().or_else(|| body.label.clone()),
                    ..(**body).clone()
                };
                self.constraint(&body_c, inner);
                self.locals.pop();
            }
            AstConstraint::Compare { lhs, op, rhs } => {
                let card_side = |e: &Expr| matches!(&e.kind, ExprKind::Call { func, .. } if func.name == "card");
                if card_side(lhs) || card_side(rhs) {
                    self.card_constraint(c, lhs, *op, rhs, loops);
                    return;
                }
                let l = self.expr(lhs, Place::Model);
                let r = self.expr(rhs, Place::Model);
                let (Some(l), Some(r)) = (l, r) else { return };
                if self.broadcast(&l, &r, "a constraint").is_none() {
                    return;
                }
                self.push_constraint(
                    c,
                    loops,
                    ConstraintKind::Compare {
                        lhs: l,
                        op: *op,
                        rhs: r,
                    },
                );
            }
            AstConstraint::In { expr, set } => {
                let Some(x) = self.expr(expr, Place::Model) else {
                    return;
                };
                let Some(set) = self.set(set, &x) else { return };
                self.push_constraint(c, loops, ConstraintKind::In { expr: x, set });
            }
        }
    }

    fn push_constraint(&mut self, c: &ast::Constraint, loops: Vec<Loop>, kind: ConstraintKind) {
        let name = match &c.label {
            Some(l) => l.name.clone(),
            None => format!("c{}", self.constraints.len()),
        };
        if let Some(earlier) = self.constraints.iter().find(|e| e.name == name) {
            let here = c.label.as_ref().map_or(c.span, |l| l.span);
            let (this, that) = match &c.label {
                Some(_) => ("this label", "has the name of this constraint"),
                None => ("named by its position", "labelled with that name"),
            };
            self.error(
                Diagnostic::error("E0192", format!("two constraints are named `{name}`"))
                    .with_primary(here, this)
                    .with_label(earlier.span, that)
                    .with_hint("constraints are reported by name: label them apart (`budget: ...`), choosing labels other than `c` and a number"),
            );
        }
        self.constraints.push(Constraint {
            name,
            loops,
            kind,
            span: c.span,
        });
    }

    /// `card(x) <= k` or `k >= card(x)`, with `k` an int scalar.
    fn card_constraint(
        &mut self,
        c: &ast::Constraint,
        lhs: &Expr,
        op: CmpOp,
        rhs: &Expr,
        loops: Vec<Loop>,
    ) {
        let (card, bound) = match (op, &lhs.kind) {
            (CmpOp::Le, ExprKind::Call { func, .. }) if func.name == "card" => (lhs, rhs),
            (CmpOp::Ge, _) if matches!(&rhs.kind, ExprKind::Call { func, .. } if func.name == "card") => {
                (rhs, lhs)
            }
            _ => {
                self.error(
                    Diagnostic::error("E0141", "`card` is only allowed as `card(x) <= k`")
                        .with_primary(c.span, "unsupported use of `card`")
                        .with_hint("bound the number of nonzeros from above: `card(x) <= k`"),
                );
                return;
            }
        };
        let ExprKind::Call { args, .. } = &card.kind else {
            return;
        };
        let Some(bound_args) = self.bind_args("card", card.span, &[("x".into(), false)], args)
        else {
            return;
        };
        let Some(x) = bound_args[0].and_then(|a| self.expr(a, Place::Model)) else {
            return;
        };
        let Some(k) = self.expr(bound, Place::Model) else {
            return;
        };
        if k.ty.elem != ElemType::Int
            || !k.ty.is_scalar()
            || !matches!(
                k.kind,
                TExprKind::Const(_) | TExprKind::Ref(Ref::Param(_) | Ref::Dim(_))
            )
        {
            self.error(
                Diagnostic::error(
                    "E0112",
                    format!(
                        "the bound of `card` must be an int literal or int param, but it is {}",
                        self.ty_text(&k.ty)
                    ),
                )
                .with_primary(bound.span, "not an int")
                .with_hint("write e.g. `card(x) <= 5` or declare `param k : int = 5`"),
            );
            return;
        }
        self.push_constraint(c, loops, ConstraintKind::Card { expr: x, bound: k });
    }

    fn set(&mut self, set: &Expr, x: &TExpr) -> Option<SetExpr> {
        let known = "`nonneg`, `simplex`, `symmetric` or `box(lo, hi)`";
        match &set.kind {
            ExprKind::Name(n) if n == "nonneg" => Some(SetExpr::Nonneg),
            ExprKind::Name(n) if n == "simplex" => {
                if x.ty.shape.len() != 1 {
                    self.error(
                        Diagnostic::error(
                            "E0123",
                            format!(
                                "`simplex` constrains a vector, but this is {}",
                                self.ty_text(&x.ty)
                            ),
                        )
                        .with_primary(x.span, format!("this is {}", self.ty_text(&x.ty)))
                        .with_hint("constrain each row in a `for` loop"),
                    );
                    return None;
                }
                Some(SetExpr::Simplex)
            }
            ExprKind::Name(n) if n == "symmetric" => {
                self.need_square(x, "symmetric")?;
                Some(SetExpr::Symmetric)
            }
            ExprKind::Call { func, args } if func.name == "box" => {
                let params = [("lo".to_string(), false), ("hi".to_string(), false)];
                let bound = self.bind_args("box", set.span, &params, args)?;
                let lo = self.expr(bound[0]?, Place::VarValue);
                let hi = self.expr(bound[1]?, Place::VarValue);
                let (lo, hi) = (lo?, hi?);
                for b in [&lo, &hi] {
                    if !b.ty.is_scalar() {
                        self.error(
                            Diagnostic::error(
                                "E0120",
                                format!(
                                    "the bounds of `box` must be scalars, but this is {}",
                                    self.ty_text(&b.ty)
                                ),
                            )
                            .with_primary(b.span, "not a scalar")
                            .with_hint("use `lhs <= rhs` constraints for elementwise bounds"),
                        );
                        return None;
                    }
                }
                Some(SetExpr::Box {
                    lower: Box::new(lo),
                    upper: Box::new(hi),
                })
            }
            ExprKind::Call { func, .. }
                if ["nonneg", "simplex", "symmetric"].contains(&func.name.as_str()) =>
            {
                let name = &func.name;
                let hint = match name.as_str() {
                    "simplex" => "write `w in simplex` (sum 1); for another sum s, `sum(w) == s` \
                                  with `w in nonneg`"
                        .to_string(),
                    _ => format!("write `in {name}` without arguments"),
                };
                self.error(
                    Diagnostic::error("E0170", format!("the set `{name}` takes no arguments"))
                        .with_primary(set.span, "written with arguments")
                        .with_hint(hint),
                );
                None
            }
            _ => {
                let name = match &set.kind {
                    ExprKind::Name(n) => n.clone(),
                    ExprKind::Call { func, .. } => func.name.clone(),
                    _ => "this".into(),
                };
                let mut d = Diagnostic::error("E0170", format!("unknown set `{name}`"))
                    .with_primary(set.span, "not a set");
                d = match suggest(&name, ["nonneg", "simplex", "symmetric", "box"].into_iter()) {
                    Some(s) => d.with_hint(format!("did you mean `{s}`? Known sets: {known}")),
                    None => d.with_hint(format!("known sets: {known}")),
                };
                self.error(d);
                None
            }
        }
    }

    /// `solve with method(...)`; nested calls (`dual(lbfgs)`) are option values, not checked by name.
    fn solve_spec(&mut self, method: &Expr, top: bool) -> Option<SolveSpec> {
        let (name, args): (&ast::Ident, &[Arg]) = match &method.kind {
            ExprKind::Name(n) => {
                let id = ast::Ident {
                    name: n.clone(),
                    span: method.span,
                };
                return self.solve_method(&id, &[], top);
            }
            ExprKind::Call { func, args } => (func, args),
            _ => {
                self.error(
                    Diagnostic::error("E0150", "`solve with` needs a method name")
                        .with_primary(method.span, "not a method")
                        .with_hint(format!("known methods: {}", KNOWN_METHODS.join(", "))),
                );
                return None;
            }
        };
        self.solve_method(name, args, top)
    }

    fn solve_method(&mut self, name: &ast::Ident, args: &[Arg], top: bool) -> Option<SolveSpec> {
        if top && !KNOWN_METHODS.contains(&name.name.as_str()) {
            let mut d = Diagnostic::error("E0150", format!("unknown solve method `{}`", name.name))
                .with_primary(name.span, "unknown method");
            d = match suggest(&name.name, KNOWN_METHODS.iter().copied()) {
                Some(s) => d.with_hint(format!(
                    "did you mean `{s}`? Known methods: {}",
                    KNOWN_METHODS.join(", ")
                )),
                None => d.with_hint(format!("known methods: {}", KNOWN_METHODS.join(", "))),
            };
            self.error(d);
            return None;
        }
        let mut spec = SolveSpec {
            method: name.name.clone(),
            positional: Vec::new(),
            options: Vec::new(),
            spans: SpecSpans {
                method: Some(name.span),
                ..SpecSpans::default()
            },
        };
        for a in args {
            let v = self.option_value(&a.value)?;
            match &a.name {
                Some(n) => {
                    if spec.options.iter().any(|(k, _)| *k == n.name) {
                        self.error(
                            Diagnostic::error(
                                "E0162",
                                format!("option `{}` is given twice", n.name),
                            )
                            .with_primary(n.span, "given again here")
                            .with_hint("give each option once"),
                        );
                        return None;
                    }
                    spec.options.push((n.name.clone(), v));
                    spec.spans.options.push(n.span.to(a.value.span));
                }
                None => {
                    spec.positional.push(v);
                    spec.spans.positional.push(a.value.span);
                }
            }
        }
        Some(spec)
    }

    fn option_value(&mut self, e: &Expr) -> Option<OptionValue> {
        match &e.kind {
            ExprKind::Int(v) => Some(OptionValue::Number(*v as f64)),
            ExprKind::Real(v) => Some(OptionValue::Number(*v)),
            ExprKind::Unary { expr, .. } => match expr.kind {
                ExprKind::Int(v) => Some(OptionValue::Number(-(v as f64))),
                ExprKind::Real(v) => Some(OptionValue::Number(-v)),
                _ => self.bad_option(e),
            },
            ExprKind::Bool(b) => Some(OptionValue::Name(b.to_string())),
            ExprKind::Str(s) => Some(OptionValue::Str(s.clone())),
            ExprKind::Name(n) => Some(OptionValue::Name(n.clone())),
            ExprKind::Array(items) => items
                .iter()
                .map(|i| self.option_value(i))
                .collect::<Option<_>>()
                .map(OptionValue::List),
            ExprKind::Call { .. } => self.solve_spec(e, false).map(OptionValue::Call),
            _ => self.bad_option(e),
        }
    }

    fn bad_option(&mut self, e: &Expr) -> Option<OptionValue> {
        self.error(
            Diagnostic::error("E0152", "a solve option must be a literal")
                .with_primary(e.span, "not a number, string, name, list or call")
                .with_hint("compute values with `param`s instead, e.g. `param tol = 1e-6`"),
        );
        None
    }

    /// The cutoff `t` of `threshold`: a number of 0 or more, or a scalar `param` (E0190).
    fn cutoff(&mut self, t: &Expr) -> Option<Cutoff> {
        let literal = |e: &Expr| match e.kind {
            ExprKind::Int(v) => Some(v as f64),
            ExprKind::Real(v) => Some(v),
            _ => None,
        };
        let negated = match &t.kind {
            ExprKind::Unary {
                op: UnOp::Neg,
                expr,
            } => literal(expr).map(|v| -v),
            _ => None,
        };
        let param = match &t.kind {
            ExprKind::Name(name) => match self.globals.get(name) {
                Some(&(Global::Param(i), _)) => Some((name, &self.params[i as usize].ty)),
                _ => None,
            },
            _ => None,
        };
        let why = match (literal(t).or(negated), param) {
            (Some(v), _) if v >= 0.0 => return Some(Cutoff::Value(v)),
            (Some(_), _) => "a negative cutoff zeroes nothing",
            (None, Some((name, ty))) if ty.shape.is_empty() => {
                return Some(Cutoff::Param(name.clone()))
            }
            (None, Some(_)) => "an array parameter is not one cutoff",
            (None, None) => "not a number or a parameter",
        };
        self.error(
            Diagnostic::error(
                "E0190",
                "the cutoff of `threshold` must be a number of 0 or more or a scalar `param`",
            )
            .with_primary(t.span, why)
            .with_hint("write the cutoff (`threshold(0.3)`), or name a parameter (`param tau = 0.3`, then `threshold(tau)`, which `--param tau=0.1` changes)"),
        );
        None
    }

    fn output(&mut self, o: &ast::OutputItem) {
        let mut expr = &o.expr;
        let mut post = Vec::new();
        while let ExprKind::Call { func, args } = &expr.kind {
            let op = match func.name.as_str() {
                "as_dag" => {
                    let Some(b) = self.bind_args("as_dag", expr.span, &[("W".into(), false)], args)
                    else {
                        return;
                    };
                    let Some(inner) = b[0] else { return };
                    (PostOp::AsDag, inner)
                }
                "threshold" => {
                    let params = [("W".to_string(), false), ("t".to_string(), false)];
                    let Some(b) = self.bind_args("threshold", expr.span, &params, args) else {
                        return;
                    };
                    let (Some(inner), Some(t)) = (b[0], b[1]) else {
                        return;
                    };
                    let Some(cutoff) = self.cutoff(t) else {
                        return;
                    };
                    (PostOp::Threshold(cutoff), inner)
                }
                _ => break,
            };
            post.push(op.0);
            expr = op.1;
        }
        post.reverse();
        let name = match (&o.name, &expr.kind) {
            (Some(n), _) => n.name.clone(),
            (None, ExprKind::Name(n)) => n.clone(),
            (None, ExprKind::Call { func, .. }) => func.name.clone(),
            (None, _) => format!("output{}", self.outputs.len()),
        };
        let Some(e) = self.expr(expr, Place::Model) else {
            return;
        };
        if post.contains(&PostOp::AsDag) && self.need_square(&e, "as_dag").is_none() {
            return;
        }
        if let Some(earlier) = self.outputs.iter().find(|out| out.name == name) {
            let here = o.name.as_ref().map_or(o.expr.span, |n| n.span);
            self.error(
                Diagnostic::error("E0191", format!("two outputs are named `{name}`"))
                    .with_primary(here, "this output")
                    .with_label(earlier.expr.span, "has the name of this one")
                    .with_hint(format!(
                        "each output is written under its name (`{name}.npy`, `{name}` in result.json): name one of them, as in `output total = sum(x)`"
                    )),
            );
            return;
        }
        self.outputs.push(Output {
            name,
            expr: e,
            post,
        });
    }
}
