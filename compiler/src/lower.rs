//! Lowering of a [`TypedModule`] to the tensor IR ([`ir::Program`]).
//!
//! fns (user and stdlib) are inlined at each call with their generic dims substituted; sugar
//! builtins become core ops (`mean` → sum / size, `min` → −max(−x), `sumsq` → sum(x^2),
//! `norm1` → sum(|x|), `norm2` → sqrt(sumsq)); `*` and `.*` both become `Mul` (broadcasting is
//! implicit in binary ops); `a >= b` becomes `b - a <= 0`; each `argmin` becomes a subproblem
//! over a fresh `InnerVar` input. [`constraints_without_variables`] warns about the constraints
//! of the lowered program that no variable reaches.

use crate::ast::{BinOp, CmpOp, Sense};
use crate::diag::{Diagnostic, Diagnostics, Span};
use crate::ir::{
    self, BinaryOp, DataSource, Dim, DimId, DimInfo, ForRange, InputId, InputKind, NodeId, Op,
    Program, Shape, Stage, Subproblem, SubproblemId, UnaryOp,
};
use crate::sema::{
    ir_elem, Builtin, CallArg, ConstraintKind, FnDecl, Ref, SetExpr, TExpr, TExprKind, TIndex, Ty,
    TypedModule,
};
use std::collections::HashMap;

/// Lowers a checked module. Errors here are internal (E0199): the checker accepted something
/// the IR's shape rules reject.
pub fn lower(typed: &TypedModule) -> Result<Program, Diagnostics> {
    let mut l = Lowerer::new(typed);
    l.program().map_err(|d| vec![d])?;
    Ok(l.p)
}

/// The bindings of an inlined fn: its generic dims and parameter values.
#[derive(Default, Clone)]
struct Env {
    dims: HashMap<DimId, Dim>,
    params: Vec<NodeId>,
}

struct Lowerer<'a> {
    m: &'a TypedModule,
    p: Program,
    /// Top-level sema dim → IR dim.
    dim_map: HashMap<DimId, DimId>,
    data: Vec<NodeId>,
    params: Vec<NodeId>,
    vars: Vec<NodeId>,
    lets: Vec<Option<NodeId>>,
    /// The input node of each `argmin` variable while its body is lowered.
    argmin_vars: HashMap<u32, NodeId>,
    /// While a fn is inlined: the outermost call, where its nodes are written for the user.
    call_site: Option<Span>,
}

type Lowered<T> = Result<T, Diagnostic>;

impl<'a> Lowerer<'a> {
    fn new(m: &'a TypedModule) -> Lowerer<'a> {
        let mut p = Program::default();
        let mut dim_map = HashMap::new();
        for (i, d) in m.dims.iter().enumerate() {
            if d.owner.is_none() {
                dim_map.insert(DimId(i as u32), DimId(p.dims.len() as u32));
                p.dims.push(DimInfo {
                    name: d.name.clone(),
                    default: d.default,
                    span: Some(d.span),
                });
            }
        }
        Lowerer {
            m,
            p,
            dim_map,
            data: Vec::new(),
            params: Vec::new(),
            vars: Vec::new(),
            lets: vec![None; m.lets.len()],
            argmin_vars: HashMap::new(),
            call_site: None,
        }
    }

    fn internal(span: Span, what: impl std::fmt::Display) -> Diagnostic {
        Diagnostic::error("E0199", format!("internal error while lowering: {what}"))
            .with_primary(span, "while lowering this")
            .with_hint("this is a compiler bug; please report it with the model file")
    }

    fn add(&mut self, op: Op, args: Vec<NodeId>, span: Span) -> Lowered<NodeId> {
        self.p
            .graph
            .add(op, args)
            .map_err(|e| Self::internal(span, e))
    }

    fn dim(&self, d: Dim, env: &Env) -> Dim {
        match d.sym {
            None => d,
            Some(s) => match (self.dim_map.get(&s), env.dims.get(&s)) {
                (Some(&ir_dim), _) => Dim {
                    sym: Some(ir_dim),
                    offset: d.offset,
                },
                (None, Some(bound)) => Dim {
                    sym: bound.sym,
                    offset: bound.offset + d.offset,
                },
                (None, None) => d,
            },
        }
    }

    fn shape(&self, s: &Shape, env: &Env) -> Shape {
        s.iter().map(|&d| self.dim(d, env)).collect()
    }

    fn new_input(&mut self, name: &str, kind: InputKind, ty: &Ty, env: &Env) -> (InputId, NodeId) {
        let shape = self.shape(&ty.shape, env);
        self.p.add_input(name, kind, ir_elem(ty.elem), shape)
    }

    /// `e` lowered and broadcast to `shape` (when it is not already of that shape).
    fn value_of_shape(&mut self, e: &TExpr, shape: &Shape) -> Lowered<NodeId> {
        let n = self.expr(e, &Env::default())?;
        if self.p.graph.shape(n) == shape {
            Ok(n)
        } else {
            self.add(Op::BroadcastTo(shape.clone()), vec![n], e.span)
        }
    }

    fn program(&mut self) -> Lowered<()> {
        let m = self.m;
        let top = Env::default();
        for d in &m.data {
            let (id, node) = self.new_input(&d.name, InputKind::Data, &d.ty, &top);
            let input = &mut self.p.inputs[id.0 as usize];
            input.source = Some(d.load.clone().map_or(DataSource::Unbound, DataSource::File));
            input.span = Some(d.span);
            self.data.push(node);
        }
        for prm in &m.params {
            let shape = self.shape(&prm.ty.shape, &top);
            let value = self.value_of_shape(&prm.value, &shape)?;
            let (id, node) = self.new_input(&prm.name, InputKind::Param, &prm.ty, &top);
            let input = &mut self.p.inputs[id.0 as usize];
            input.value = Some(value);
            input.span = Some(prm.span);
            self.params.push(node);
        }
        for v in &m.vars {
            let shape = self.shape(&v.ty.shape, &top);
            let init = match &v.init {
                Some(e) => self.value_of_shape(e, &shape)?,
                None => {
                    let zero = self.p.graph.constant(0.0);
                    self.add(Op::BroadcastTo(shape.clone()), vec![zero], v.span)?
                }
            };
            let lower = v
                .lower
                .as_ref()
                .map(|e| self.value_of_shape(e, &shape))
                .transpose()?;
            let upper = v
                .upper
                .as_ref()
                .map(|e| self.value_of_shape(e, &shape))
                .transpose()?;
            let (id, node) = self.new_input(&v.name, InputKind::Var, &v.ty, &top);
            let input = &mut self.p.inputs[id.0 as usize];
            input.value = Some(init);
            input.lower = lower;
            input.upper = upper;
            input.span = Some(v.span);
            self.vars.push(node);
        }
        let objective = self.expr(&m.objective.expr, &top)?;
        let objective = crate::structure::distribute_factors(&mut self.p, objective);
        self.p.objective = Some(ir::Objective {
            sense: match m.objective.sense {
                Sense::Minimize => ir::Sense::Minimize,
                Sense::Maximize => ir::Sense::Maximize,
            },
            node: objective,
        });
        for c in &m.constraints {
            let ranges = c
                .loops
                .iter()
                .enumerate()
                .map(|(level, l)| ForRange {
                    level: level as u32,
                    start: self.dim(l.start, &top),
                    end: self.dim(l.end, &top),
                    span: Some(l.span),
                })
                .collect();
            let flipped = matches!(&c.kind, ConstraintKind::Compare { op: CmpOp::Ge, .. });
            let (node, kind) = match &c.kind {
                ConstraintKind::Compare { lhs, op, rhs } => {
                    let (a, b) = (self.expr(lhs, &top)?, self.expr(rhs, &top)?);
                    let (kind, args) = match op {
                        CmpOp::Eq => (ir::ConstraintKind::Eq, vec![a, b]),
                        CmpOp::Le => (ir::ConstraintKind::Le, vec![a, b]),
                        CmpOp::Ge => (ir::ConstraintKind::Le, vec![b, a]),
                    };
                    (self.add(Op::Binary(BinaryOp::Sub), args, c.span)?, kind)
                }
                ConstraintKind::In { expr, set } => {
                    let node = self.expr(expr, &top)?;
                    let set = match set {
                        SetExpr::Nonneg => ir::SetKind::Nonneg,
                        SetExpr::Simplex => ir::SetKind::Simplex,
                        SetExpr::Symmetric => ir::SetKind::Symmetric,
                        SetExpr::Box { lower, upper } => ir::SetKind::Box {
                            lower: self.expr(lower, &top)?,
                            upper: self.expr(upper, &top)?,
                        },
                    };
                    (node, ir::ConstraintKind::In(set))
                }
                ConstraintKind::Card { expr, bound } => {
                    let node = self.expr(expr, &top)?;
                    let bound = self.expr(bound, &top)?;
                    (node, ir::ConstraintKind::Card { bound })
                }
            };
            self.p.constraints.push(ir::Constraint {
                name: c.name.clone(),
                node,
                kind,
                ranges,
                flipped,
                span: Some(c.span),
            });
        }
        self.p.solve = m.solve.clone();
        for o in &m.outputs {
            let node = self.expr(&o.expr, &top)?;
            self.p.outputs.push(ir::Output {
                name: o.name.clone(),
                node,
                post: o.post.clone(),
            });
        }
        Ok(())
    }

    /// `e` lowered, with its source span recorded for the node (the first one written).
    fn expr(&mut self, e: &TExpr, env: &Env) -> Lowered<NodeId> {
        let node = self.expr_node(e, env)?;
        let span = self.call_site.unwrap_or(e.span);
        self.p.node_spans.entry(node).or_insert(span);
        Ok(node)
    }

    fn expr_node(&mut self, e: &TExpr, env: &Env) -> Lowered<NodeId> {
        let span = e.span;
        match &e.kind {
            TExprKind::Const(c) => Ok(self.p.graph.constant(*c)),
            TExprKind::Ref(r) => self.reference(*r, env, span),
            TExprKind::Neg(x) => {
                let x = self.expr(x, env)?;
                self.add(Op::Unary(UnaryOp::Neg), vec![x], span)
            }
            TExprKind::Binary { op, lhs, rhs } => {
                let (a, b) = (self.expr(lhs, env)?, self.expr(rhs, env)?);
                let op = match op {
                    BinOp::Add => Op::Binary(BinaryOp::Add),
                    BinOp::Sub => Op::Binary(BinaryOp::Sub),
                    BinOp::Mul | BinOp::ElemMul => Op::Binary(BinaryOp::Mul),
                    BinOp::Div => Op::Binary(BinaryOp::Div),
                    BinOp::Pow => Op::Binary(BinaryOp::Pow),
                    BinOp::MatMul => Op::MatMul,
                };
                self.add(op, vec![a, b], span)
            }
            TExprKind::Builtin {
                builtin,
                args,
                axis,
                size,
            } => {
                let args = args
                    .iter()
                    .map(|a| self.expr(a, env))
                    .collect::<Lowered<Vec<_>>>()?;
                let size = size.map(|s| self.dim(s, env));
                self.builtin(*builtin, args, *axis, size, span)
            }
            TExprKind::Call { func, args, dims } => {
                self.call(self.m.fns.get(func.0 as usize), args, dims, env, span)
            }
            TExprKind::Index { base, indices } => {
                let mut node = self.expr(base, env)?;
                let mut axis = 0u32;
                for ix in indices {
                    match ix {
                        TIndex::Single(i) => {
                            let i = self.expr(i, env)?;
                            node = self.add(Op::Select { axis }, vec![node, i], span)?;
                        }
                        TIndex::Range { start, end } => {
                            let (start, end) = (self.dim(*start, env), self.dim(*end, env));
                            let full = self.p.graph.shape(node)[axis as usize];
                            if start != Dim::fixed(0) || end != full {
                                node =
                                    self.add(Op::Slice { axis, start, end }, vec![node], span)?;
                            }
                            axis += 1;
                        }
                    }
                }
                Ok(node)
            }
            TExprKind::Array(items) => {
                let items = items
                    .iter()
                    .map(|x| self.expr(x, env))
                    .collect::<Lowered<Vec<_>>>()?;
                self.add(Op::Stack, items, span)
            }
            TExprKind::Argmin { var, body } => self.argmin(*var, body, &e.ty, env),
        }
    }

    fn reference(&mut self, r: Ref, env: &Env, span: Span) -> Lowered<NodeId> {
        match r {
            Ref::Dim(d) => {
                let d = self.dim(Dim::sym(d), env);
                match d.sym {
                    None => Ok(self.p.graph.constant(d.offset as f64)),
                    Some(_) => self.add(Op::DimSize(d), vec![], span),
                }
            }
            Ref::Data(i) => Ok(self.data[i as usize]),
            Ref::Param(i) => Ok(self.params[i as usize]),
            Ref::Var(i) => Ok(self.vars[i as usize]),
            Ref::Let(i) => match self.lets[i as usize] {
                Some(n) => Ok(n),
                None => {
                    let n = self.expr(&self.m.lets[i as usize].value, &Env::default())?;
                    self.lets[i as usize] = Some(n);
                    Ok(n)
                }
            },
            Ref::FnParam(k) => env
                .params
                .get(k as usize)
                .copied()
                .ok_or_else(|| Self::internal(span, "fn parameter outside its fn")),
            Ref::LoopIndex(level) => self.add(Op::LoopIndex(level), vec![], span),
            Ref::ArgminVar(v) => self
                .argmin_vars
                .get(&v)
                .copied()
                .ok_or_else(|| Self::internal(span, "argmin variable outside its body")),
        }
    }

    /// Inlines a fn: arguments in the caller's env, defaults and the body in the callee's.
    fn call(
        &mut self,
        decl: Option<&FnDecl>,
        args: &[CallArg],
        dims: &[Dim],
        env: &Env,
        span: Span,
    ) -> Lowered<NodeId> {
        let decl = decl.ok_or_else(|| Self::internal(span, "call of an unknown fn"))?;
        let mut callee = Env {
            dims: decl
                .generic_dims
                .iter()
                .zip(dims)
                .map(|(&g, &d)| (g, self.dim(d, env)))
                .collect(),
            params: Vec::new(),
        };
        for (arg, p) in args.iter().zip(&decl.params) {
            let node = match (arg, &p.default) {
                (CallArg::Given(x), _) => self.expr(x, env)?,
                (CallArg::Default, Some(d)) => self.in_call(span, |l| l.expr(d, &callee))?,
                (CallArg::Default, None) => return Err(Self::internal(span, "missing argument")),
            };
            callee.params.push(node);
        }
        self.in_call(span, |l| l.expr(&decl.body, &callee))
    }

    /// Runs `lower` inside a fn called at `span`: its nodes are attributed to the outermost call.
    fn in_call<T>(
        &mut self,
        span: Span,
        lower: impl FnOnce(&mut Self) -> Lowered<T>,
    ) -> Lowered<T> {
        let outer = self.call_site;
        self.call_site = Some(outer.unwrap_or(span));
        let result = lower(self);
        self.call_site = outer;
        result
    }

    /// The number of elements of `dims`, as a node.
    fn count(&mut self, dims: &[Dim], span: Span) -> Lowered<NodeId> {
        let mut fixed = 1i64;
        let mut node: Option<NodeId> = None;
        for &d in dims {
            if d.sym.is_none() {
                fixed *= d.offset;
                continue;
            }
            let size = self.add(Op::DimSize(d), vec![], span)?;
            node = Some(match node {
                None => size,
                Some(n) => self.add(Op::Binary(BinaryOp::Mul), vec![n, size], span)?,
            });
        }
        match node {
            None => Ok(self.p.graph.constant(fixed as f64)),
            Some(n) if fixed == 1 => Ok(n),
            Some(n) => {
                let f = self.p.graph.constant(fixed as f64);
                self.add(Op::Binary(BinaryOp::Mul), vec![f, n], span)
            }
        }
    }

    fn builtin(
        &mut self,
        b: Builtin,
        args: Vec<NodeId>,
        axis: Option<u32>,
        size: Option<Dim>,
        span: Span,
    ) -> Lowered<NodeId> {
        let unary = |u| Op::Unary(u);
        let arg = |i: usize| {
            args.get(i)
                .copied()
                .ok_or_else(|| Self::internal(span, "missing builtin argument"))
        };
        let simple = match b {
            Builtin::Exp => Some(unary(UnaryOp::Exp)),
            Builtin::Log => Some(unary(UnaryOp::Log)),
            Builtin::Sqrt => Some(unary(UnaryOp::Sqrt)),
            Builtin::Abs => Some(unary(UnaryOp::Abs)),
            Builtin::Sign => Some(unary(UnaryOp::Sign)),
            Builtin::Tanh => Some(unary(UnaryOp::Tanh)),
            Builtin::Sigmoid => Some(unary(UnaryOp::Sigmoid)),
            Builtin::Softplus => Some(unary(UnaryOp::Softplus)),
            Builtin::Maximum => Some(Op::Binary(BinaryOp::Max)),
            Builtin::Minimum => Some(Op::Binary(BinaryOp::Min)),
            Builtin::Sum => Some(Op::Sum { axis }),
            Builtin::Max => Some(Op::Max { axis }),
            Builtin::LogSumExp => Some(Op::LogSumExp { axis }),
            Builtin::NuclearNorm => Some(Op::NuclearNorm),
            Builtin::Transpose => Some(Op::Transpose),
            Builtin::Trace => Some(Op::Trace),
            Builtin::Expm => Some(Op::Expm),
            Builtin::LogDet => Some(Op::LogDet),
            Builtin::Solve => Some(Op::Solve),
            Builtin::Inv => Some(Op::Inv),
            Builtin::Sort => Some(Op::SortDesc),
            _ => None,
        };
        if let Some(op) = simple {
            return self.add(op, args, span);
        }
        match b {
            Builtin::Eye => {
                let n = size.ok_or_else(|| Self::internal(span, "eye without a size"))?;
                self.add(Op::Eye(n), vec![], span)
            }
            Builtin::TopK => {
                let k = size.ok_or_else(|| Self::internal(span, "topk without k"))?;
                self.add(Op::TopK(k), vec![arg(0)?], span)
            }
            Builtin::MatPow => {
                let k = size.ok_or_else(|| Self::internal(span, "matpow without k"))?;
                self.add(Op::MatPow(k), vec![arg(0)?], span)
            }
            Builtin::Diag => {
                let x = arg(0)?;
                let op = if self.p.graph.shape(x).len() == 1 {
                    Op::Diag
                } else {
                    Op::DiagPart
                };
                self.add(op, vec![x], span)
            }
            Builtin::Mean => {
                let x = arg(0)?;
                let shape = self.p.graph.shape(x).clone();
                let reduced: Vec<Dim> = match axis {
                    Some(a) => vec![shape[a as usize]],
                    None => shape,
                };
                let total = self.add(Op::Sum { axis }, vec![x], span)?;
                let n = self.count(&reduced, span)?;
                self.add(Op::Binary(BinaryOp::Div), vec![total, n], span)
            }
            Builtin::Min => {
                let neg = self.add(Op::Unary(UnaryOp::Neg), vec![arg(0)?], span)?;
                let m = self.add(Op::Max { axis }, vec![neg], span)?;
                self.add(Op::Unary(UnaryOp::Neg), vec![m], span)
            }
            Builtin::SumSq | Builtin::Norm2 => {
                let two = self.p.graph.constant(2.0);
                let sq = self.add(Op::Binary(BinaryOp::Pow), vec![arg(0)?, two], span)?;
                let s = self.add(Op::Sum { axis: None }, vec![sq], span)?;
                if b == Builtin::Norm2 {
                    self.add(Op::Unary(UnaryOp::Sqrt), vec![s], span)
                } else {
                    Ok(s)
                }
            }
            Builtin::Norm1 => {
                let a = self.add(Op::Unary(UnaryOp::Abs), vec![arg(0)?], span)?;
                self.add(Op::Sum { axis: None }, vec![a], span)
            }
            _ => Err(Self::internal(
                span,
                format!("`{}` outside its place", b.name()),
            )),
        }
    }

    fn argmin(&mut self, var: u32, body: &TExpr, ty: &Ty, env: &Env) -> Lowered<NodeId> {
        let name = self.m.argmin_vars[var as usize].name.clone();
        let (input, node) = self.new_input(&name, InputKind::InnerVar, ty, env);
        let saved = self.argmin_vars.insert(var, node);
        let objective = self.expr(body, env);
        match saved {
            Some(n) => self.argmin_vars.insert(var, n),
            None => self.argmin_vars.remove(&var),
        };
        let objective = objective?;
        let id = SubproblemId(self.p.subproblems.len() as u32);
        self.p.subproblems.push(Subproblem {
            var: input,
            objective,
        });
        let stage = self.outer_stage(objective, input);
        let shape = self.shape(&ty.shape, env);
        Ok(self.p.graph.argmin(id, shape, stage))
    }

    /// The latest stage among the outer values a subproblem objective reads.
    fn outer_stage(&self, objective: NodeId, own_var: InputId) -> Stage {
        let g = &self.p.graph;
        let mut seen = vec![false; g.len()];
        let mut stack = vec![objective];
        let mut stage = Stage::Const;
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut seen[n.0 as usize], true) {
                continue;
            }
            let node = g.node(n);
            match node.op {
                Op::Input(i) if i == own_var => {}
                Op::Input(_) | Op::Argmin(_) => stage = stage.max(node.stage),
                _ => stack.extend(&node.args),
            }
        }
        stage
    }
}

/// A warning (E0136) for each constraint whose value does not depend on any variable. The
/// lowered constraints are the checked ones, in order.
pub fn constraints_without_variables(typed: &TypedModule, program: &Program) -> Diagnostics {
    typed
        .constraints
        .iter()
        .zip(&program.constraints)
        .filter(|(_, c)| program.graph.stage(c.node) < Stage::Var)
        .map(|(checked, c)| {
            Diagnostic::warning(
                "E0136",
                format!("constraint `{}` does not depend on any variable", c.name),
            )
            .with_primary(checked.span, "reads only data, parameters and constants")
            .with_hint("it holds or fails whatever the solution; constrain a variable here")
        })
        .collect()
}
