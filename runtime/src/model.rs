//! A model ready to evaluate: the lowered program, its bound inputs, and its variables packed
//! into one flat vector (the solvers' view).
//!
//! Values that depend only on data and parameters are computed once and kept (the setup cache),
//! so repeated evaluations during a solve only compute the per-iteration part.

use crate::data;
use crate::interp::{self, Bindings, EvalError, SubproblemSolver};
use crate::solvers::{lbfgs, Control, FnProblem, LbfgsOptions};
use ndarray::{ArrayD, IxDyn};
use optc_compiler::autodiff;
use optc_compiler::codes::CodeInfo;
use optc_compiler::diag::Diagnostic;
use optc_compiler::ir::{
    ConstraintKind, DataSource, ElemType, InputId, InputKind, NodeId, Program, SetKind, Stage,
    SubproblemId,
};
use optc_compiler::simplify::{self, CostModel, SimplifyError};
use std::path::{Path, PathBuf};

/// Catalogue entries of binding errors (E0350–E0359).
pub const BINDING_CODES: &[CodeInfo] = &[
    CodeInfo {
        code: "E0350",
        title: "unknown name on the command line",
        explanation: "`--data`, `--param` or `--dims` names something the model does not declare as data, a parameter or a dimension. The message lists the names it does declare.",
    },
    CodeInfo {
        code: "E0351",
        title: "lower-level problem cannot be differentiated",
        explanation: "An `argmin` body uses an operation without a derivative, so its lower-level problem cannot be solved by a gradient method.",
    },
];

/// What the command line binds, by name.
#[derive(Clone, Debug, Default)]
pub struct BindSpec {
    pub data: Vec<(String, PathBuf)>,
    pub params: Vec<(String, f64)>,
    pub dims: Vec<(String, u64)>,
}

fn unknown_name(kind: &str, name: &str, known: Vec<&str>) -> Diagnostic {
    Diagnostic::error(
        "E0350",
        format!("the model declares no {kind} named `{name}`"),
    )
    .with_hint(if known.is_empty() {
        format!("the model declares no {kind}")
    } else {
        format!("the model's {kind} names are: {}", known.join(", "))
    })
}

/// Loads the data (files named in the model, relative to `model_dir`, or the command line's), sets
/// parameters and dimension sizes, and computes initial values.
pub fn bind(
    program: &Program,
    model_dir: &Path,
    spec: &BindSpec,
) -> Result<Bindings, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let names_of = |kind: InputKind| -> Vec<&str> {
        program
            .inputs
            .iter()
            .filter(|i| i.kind == kind)
            .map(|i| i.name.as_str())
            .collect()
    };
    let mut dim_overrides = Vec::new();
    for (name, size) in &spec.dims {
        match program.dim_by_name(name) {
            Some(d) => dim_overrides.push((d, *size)),
            None => errors.push(unknown_name(
                "dimension",
                name,
                program.dims.iter().map(|d| d.name.as_str()).collect(),
            )),
        }
    }
    let mut arrays = Vec::new();
    for (name, _) in &spec.data {
        match program.input_by_name(name) {
            Some(id) if program.input(id).kind == InputKind::Data => {}
            _ => errors.push(unknown_name("data array", name, names_of(InputKind::Data))),
        }
    }
    for (index, input) in program.inputs.iter().enumerate() {
        let id = InputId(index as u32);
        match input.kind {
            InputKind::Data => {
                let given = spec.data.iter().rev().find(|(n, _)| *n == input.name);
                let path = match (given, &input.source) {
                    (Some((_, p)), _) => p.clone(),
                    (None, Some(DataSource::File(f))) => model_dir.join(f),
                    _ => continue, // bind_inputs reports the missing array
                };
                match data::load(&path, input.shape.len()) {
                    Ok(a) => arrays.push((id, a, path.display().to_string())),
                    Err(e) => errors.push(e.into()),
                }
            }
            InputKind::Param => {
                if let Some((_, v)) = spec.params.iter().rev().find(|(n, _)| *n == input.name) {
                    arrays.push((id, ArrayD::from_elem(IxDyn(&[]), *v), "--param".into()));
                }
            }
            _ => {}
        }
    }
    for (name, _) in &spec.params {
        match program.input_by_name(name) {
            Some(id) if program.input(id).kind == InputKind::Param => {}
            _ => errors.push(unknown_name("parameter", name, names_of(InputKind::Param))),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    data::bind_inputs(program, arrays, &dim_overrides)
}

/// A variable's place in the flat vector.
#[derive(Clone, Debug)]
pub struct VarSlot {
    pub input: InputId,
    pub name: String,
    pub offset: usize,
    pub shape: Vec<usize>,
}

impl VarSlot {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A program with bound inputs; evaluates nodes with a setup cache.
pub struct Model {
    pub program: Program,
    pub bindings: Bindings,
    pub vars: Vec<VarSlot>,
    /// Values of nodes that do not depend on variables (computed once, then reused).
    cache: Vec<Option<ArrayD<f64>>>,
    argmin: ArgminSolver,
}

impl Model {
    /// Prepares `program` (derivatives of lower-level problems are added) for evaluation.
    pub fn new(mut program: Program, bindings: Bindings) -> Result<Model, Diagnostic> {
        let argmin = ArgminSolver::new(&mut program)?;
        let mut vars = Vec::new();
        let mut offset = 0;
        for id in program.variables().collect::<Vec<_>>() {
            let input = program.input(id);
            let shape: Vec<usize> = input
                .shape
                .iter()
                .map(|d| d.eval(&bindings.dims).max(0) as usize)
                .collect();
            let slot = VarSlot {
                input: id,
                name: input.name.clone(),
                offset,
                shape,
            };
            offset += slot.len();
            vars.push(slot);
        }
        let cache = vec![None; program.graph.len()];
        Ok(Model {
            program,
            bindings,
            vars,
            cache,
            argmin,
        })
    }

    /// Length of the flat variable vector.
    pub fn dim(&self) -> usize {
        self.vars.iter().map(VarSlot::len).sum()
    }

    /// The current variable values, flattened.
    pub fn x(&self) -> Vec<f64> {
        let mut x = Vec::with_capacity(self.dim());
        for v in &self.vars {
            let a = self.bindings.inputs[v.input.0 as usize]
                .as_ref()
                .expect("variables have initial values");
            x.extend(a.iter().copied());
        }
        x
    }

    /// Sets the variables from a flat vector.
    pub fn set_x(&mut self, x: &[f64]) {
        for v in &self.vars {
            let a =
                ArrayD::from_shape_vec(IxDyn(&v.shape), x[v.offset..v.offset + v.len()].to_vec())
                    .expect("slot length matches its shape");
            self.bindings.inputs[v.input.0 as usize] = Some(a);
        }
    }

    /// Adds a scalar parameter input with a value (used for penalty weights and path parameters).
    pub fn add_param(&mut self, name: &str, value: f64) -> (InputId, NodeId) {
        let (id, node) = self
            .program
            .add_input(name, InputKind::Param, ElemType::Real, Vec::new());
        let default = self.program.graph.constant(value);
        self.program.inputs[id.0 as usize].value = Some(default);
        self.bindings
            .inputs
            .push(Some(ArrayD::from_elem(IxDyn(&[]), value)));
        (id, node)
    }

    /// Sets a parameter (a scalar broadcast to its shape) and forgets cached values that depend
    /// on parameters.
    pub fn set_param(&mut self, id: InputId, value: f64) {
        let shape: Vec<usize> = match &self.bindings.inputs[id.0 as usize] {
            Some(a) => a.shape().to_vec(),
            None => Vec::new(),
        };
        self.bindings.inputs[id.0 as usize] = Some(ArrayD::from_elem(IxDyn(&shape), value));
        self.cache.resize(self.program.graph.len(), None);
        for (i, (_, node)) in self.program.graph.nodes().enumerate() {
            if node.stage >= Stage::Param {
                self.cache[i] = None;
            }
        }
    }

    /// Replaces the program by its simplification (egg, cost model at the bound sizes) and
    /// returns the new ids of `roots`. Inputs keep their ids; cached values are dropped.
    pub fn simplify(&mut self, roots: &[NodeId]) -> Result<Vec<NodeId>, SimplifyError> {
        let cost = CostModel::new(self.bindings.dims.clone());
        let s = simplify::simplify(&self.program, roots, &cost)?;
        self.program = s.program;
        self.cache = vec![None; self.program.graph.len()];
        Ok(s.roots)
    }

    /// Values of `roots` at the current variables.
    pub fn eval(&mut self, roots: &[NodeId]) -> Result<Vec<ArrayD<f64>>, EvalError> {
        self.cache.resize(self.program.graph.len(), None);
        let mut values = std::mem::take(&mut self.cache);
        let result = interp::eval_into(
            &self.program,
            &self.bindings,
            &mut values,
            roots,
            &mut self.argmin,
            false,
        );
        let out = result.map(|()| {
            roots
                .iter()
                .map(|r| values[r.0 as usize].clone().expect("root computed"))
                .collect()
        });
        // Keep only what does not depend on variables.
        for (i, (_, node)) in self.program.graph.nodes().enumerate() {
            if node.stage == Stage::Var {
                values[i] = None;
            }
        }
        self.cache = values;
        out
    }

    /// A scalar node's value.
    pub fn eval_scalar(&mut self, node: NodeId) -> Result<f64, EvalError> {
        Ok(self.eval(&[node])?[0]
            .iter()
            .next()
            .copied()
            .unwrap_or(f64::NAN))
    }

    /// Evaluates a constraint for every index of its `for` ranges and returns its violation
    /// (0 when satisfied).
    pub fn violation(&mut self, index: usize) -> Result<f64, EvalError> {
        let c = self.program.constraints[index].clone();
        let ranges: Vec<(i64, i64)> = c
            .ranges
            .iter()
            .map(|r| {
                (
                    r.start.eval(&self.bindings.dims),
                    r.end.eval(&self.bindings.dims),
                )
            })
            .collect();
        let mut worst: f64 = 0.0;
        let mut idx: Vec<i64> = ranges.iter().map(|r| r.0).collect();
        if ranges.iter().any(|(a, b)| a >= b) {
            return Ok(0.0);
        }
        loop {
            let mut bindings = self.bindings.clone();
            bindings.loop_indices = idx.iter().map(|&i| i as u64).collect();
            let mut roots = vec![c.node];
            if let ConstraintKind::Card { bound } = c.kind {
                roots.push(bound);
            }
            if let ConstraintKind::In(SetKind::Box { lower, upper }) = c.kind {
                roots.extend([lower, upper]);
            }
            let v = interp::eval(&self.program, &bindings, &roots, &mut self.argmin)?;
            let x = &v[0];
            let amount = match &c.kind {
                ConstraintKind::Eq => x.iter().fold(0.0f64, |m, v| m.max(v.abs())),
                ConstraintKind::Le => x.iter().fold(0.0f64, |m, v| m.max(*v)),
                ConstraintKind::In(SetKind::Nonneg) => x.iter().fold(0.0f64, |m, v| m.max(-v)),
                ConstraintKind::In(SetKind::Simplex) => {
                    let neg = x.iter().fold(0.0f64, |m, v| m.max(-v));
                    neg.max((x.sum() - 1.0).abs())
                }
                ConstraintKind::In(SetKind::Box { .. }) => {
                    let (lo, hi) = (scalar(&v[1]), scalar(&v[2]));
                    x.iter().fold(0.0f64, |m, v| m.max(lo - v).max(v - hi))
                }
                ConstraintKind::Card { .. } => {
                    let nnz = x.iter().filter(|v| **v != 0.0).count() as f64;
                    (nnz - scalar(&v[1])).max(0.0)
                }
            };
            worst = worst.max(amount);
            // Next index combination (last range fastest).
            let mut level = idx.len();
            loop {
                if level == 0 {
                    return Ok(worst);
                }
                level -= 1;
                idx[level] += 1;
                if idx[level] < ranges[level].1 {
                    break;
                }
                idx[level] = ranges[level].0;
            }
        }
    }

    /// The current value of every variable, by name.
    pub fn var_values(&self) -> Vec<(String, ArrayD<f64>)> {
        self.vars
            .iter()
            .map(|v| {
                (
                    v.name.clone(),
                    self.bindings.inputs[v.input.0 as usize]
                        .clone()
                        .expect("variables are bound"),
                )
            })
            .collect()
    }
}

fn scalar(a: &ArrayD<f64>) -> f64 {
    a.iter().next().copied().unwrap_or(f64::NAN)
}

/// Solves `argmin` lower-level problems with L-BFGS, warm-started from the previous solution.
struct ArgminSolver {
    /// (objective, gradient) per subproblem.
    derivs: Vec<(NodeId, NodeId)>,
    last: Vec<Option<ArrayD<f64>>>,
}

impl ArgminSolver {
    fn new(program: &mut Program) -> Result<ArgminSolver, Diagnostic> {
        let mut derivs = Vec::new();
        for i in 0..program.subproblems.len() {
            let sub = program.subproblems[i].clone();
            let grad = autodiff::gradient(program, sub.objective, &[sub.var]).map_err(|e| {
                Diagnostic::error(
                    "E0351",
                    format!("the lower-level problem cannot be differentiated: {e}"),
                )
            })?;
            derivs.push((sub.objective, grad[0]));
        }
        let last = vec![None; derivs.len()];
        Ok(ArgminSolver { derivs, last })
    }
}

impl SubproblemSolver for ArgminSolver {
    fn solve(
        &mut self,
        program: &Program,
        sub: SubproblemId,
        bindings: &Bindings,
        outer: &[Option<ArrayD<f64>>],
    ) -> Result<ArrayD<f64>, EvalError> {
        let (objective, grad) = self.derivs[sub.0 as usize];
        let var = program.subproblems[sub.0 as usize].var;
        let shape: Vec<usize> = program
            .input(var)
            .shape
            .iter()
            .map(|d| d.eval(&bindings.dims).max(0) as usize)
            .collect();
        let n: usize = shape.iter().product();
        let z0: Vec<f64> = match &self.last[sub.0 as usize] {
            Some(z) if z.len() == n => z.iter().copied().collect(),
            _ => vec![0.0; n],
        };
        let mut inner = bindings.clone();
        let mut failure = None;
        let mut problem = FnProblem::new(n, |z: &[f64], g: &mut [f64]| {
            inner.inputs[var.0 as usize] =
                Some(ArrayD::from_shape_vec(IxDyn(&shape), z.to_vec()).expect("shape"));
            let mut values = outer.to_vec();
            match interp::eval_into(
                program,
                &inner,
                &mut values,
                &[objective, grad],
                &mut interp::NoSubproblems,
                false,
            ) {
                Ok(()) => {
                    let gv = values[grad.0 as usize].as_ref().expect("gradient");
                    for (gi, v) in g.iter_mut().zip(gv.iter()) {
                        *gi = *v;
                    }
                    scalar(values[objective.0 as usize].as_ref().expect("objective"))
                }
                Err(e) => {
                    failure = Some(e);
                    f64::NAN
                }
            }
        });
        let opts = LbfgsOptions {
            gtol: 1e-9,
            max_iter: 2000,
            ..LbfgsOptions::default()
        };
        let report = lbfgs(&mut problem, &z0, &opts, &mut |_| Control::Continue);
        if let Some(e) = failure {
            return Err(e);
        }
        let z = ArrayD::from_shape_vec(IxDyn(&shape), report.x).expect("shape");
        self.last[sub.0 as usize] = Some(z.clone());
        Ok(z)
    }
}
