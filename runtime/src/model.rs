//! A model ready to evaluate: the lowered program, its bound inputs, and its variables packed
//! into one flat vector (the solvers' view).
//!
//! Values that depend only on data and parameters are computed once and kept (the setup cache),
//! so repeated evaluations during a solve only compute the per-iteration part.
//!
//! With a native backend ([`Backend::Cpu`], the Cranelift backend) each distinct list of roots
//! is compiled once, as the program cut at the setup values it reads ([`Program::cut`]); the setup
//! values themselves come from the interpreter, once per solve (and again after a parameter
//! changes). Roots the native backend cannot compile (e.g. `argmin`) fall back to the
//! interpreter, and the reason is kept in [`Model::fallbacks`]. A compiled function writes into
//! output arrays it keeps, and [`Model::eval_ref`] lends them: after the first call for a root
//! list, an evaluation on a native backend allocates nothing.

use crate::cpu::CompiledFn;
use crate::data;
use crate::interp::{self, Bindings, EvalError, SubproblemSolver};
use crate::solvers::{lbfgs, Control, FnProblem, LbfgsOptions};
use ndarray::{ArrayD, IxDyn};
use optc_compiler::autodiff;
use optc_compiler::codes::CodeInfo;
use optc_compiler::diag::Diagnostic;
use optc_compiler::ir::{
    ConstraintKind, Cutoff, DataSource, DimId, InputId, InputKind, NodeId, Op, Program, SetKind,
    Stage, SubproblemId,
};
use optc_compiler::simplify::{self, CostModel, SimplifyError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    CodeInfo {
        code: "E0352",
        title: "random data needs every dimension size",
        explanation: "`optc bench` with `--dims` fills the data arrays not given with `--data` with random values of their declared shape, so every dimension they use must have a size: from `--dims` or a default in the model (`dims n = 100`).",
    },
];

/// What the command line binds, by name.
#[derive(Clone, Debug, Default)]
pub struct BindSpec {
    pub data: Vec<(String, PathBuf)>,
    pub params: Vec<(String, f64)>,
    pub dims: Vec<(String, u64)>,
    /// Sizes fixed when an artifact was built (`optc build --dims`); `dims` override them.
    pub build_dims: Vec<(String, u64)>,
    /// Seed for data arrays not given on the command line: they get standard normal values of
    /// their declared shape instead of their file's contents (benchmarks at chosen sizes).
    pub random_data: Option<u64>,
}

fn unknown_name(kind: &str, name: &str, known: Vec<&str>) -> Diagnostic {
    let guess = optc_compiler::diag::suggest(name, known.iter().copied());
    let listed = if known.is_empty() {
        format!("the model declares no {kind}")
    } else {
        format!("the model's {kind} names are: {}", known.join(", "))
    };
    Diagnostic::error(
        "E0350",
        format!("the model declares no {kind} named `{name}`"),
    )
    .with_hint(match guess {
        Some(g) => format!("did you mean `{g}`? ({listed}; names are case-sensitive)"),
        None => listed,
    })
}

/// E0350 for each of `dims` that `program` does not declare.
pub fn unknown_dims(program: &Program, dims: &[(String, u64)]) -> Vec<Diagnostic> {
    dims.iter()
        .filter(|(name, _)| program.dim_by_name(name).is_none())
        .map(|(name, _)| {
            unknown_name(
                "dimension",
                name,
                program.dims.iter().map(|d| d.name.as_str()).collect(),
            )
        })
        .collect()
}

/// Loads the data (files named in the model, relative to `model_dir`, or the command line's), sets
/// parameters and dimension sizes, and computes initial values.
pub fn bind(
    program: &Program,
    model_dir: &Path,
    spec: &BindSpec,
) -> Result<Bindings, Vec<Diagnostic>> {
    let names_of = |kind: InputKind| -> Vec<&str> {
        program
            .inputs
            .iter()
            .filter(|i| i.kind == kind)
            .map(|i| i.name.as_str())
            .collect()
    };
    let mut errors = unknown_dims(program, &spec.dims);
    let build_time = spec
        .build_dims
        .iter()
        .filter(|(name, _)| !spec.dims.iter().any(|(n, _)| n == name))
        .map(|dim| (dim, "the artifact's build-time `--dims`"));
    let dim_overrides: Vec<(DimId, u64, &str)> = spec
        .dims
        .iter()
        .map(|dim| (dim, "the command line"))
        .chain(build_time)
        .filter_map(|((name, size), origin)| Some((program.dim_by_name(name)?, *size, origin)))
        .collect();
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
                if let (None, Some(seed)) = (given, spec.random_data) {
                    match random_array(program, input, &dim_overrides, seed + index as u64) {
                        Ok(a) => arrays.push((id, a, "random data".into())),
                        Err(e) => errors.push(e),
                    }
                    continue;
                }
                let path = match (given, &input.source) {
                    (Some((_, p)), _) => p.clone(),
                    (None, Some(DataSource::File(f))) => model_dir.join(f),
                    _ => continue, // bind_inputs reports the missing array
                };
                match data::load(&path, input.shape.len()) {
                    Ok(a) => arrays.push((id, a, path.display().to_string())),
                    Err(e) => {
                        let label = match given {
                            Some(_) => format!("`{}`, given by `--data`", input.name),
                            None => format!("`{}` is read from this file", input.name),
                        };
                        errors.push(Diagnostic::from(e).with_primary_at(input.span, label))
                    }
                }
            }
            InputKind::Param => {
                let given = spec.params.iter().rev().find(|(n, _)| *n == input.name);
                match given {
                    Some(_) if !input.shape.is_empty() => errors.push(
                        Diagnostic::error(
                            data::WRONG_RANK,
                            format!(
                                "`--param {}=..` gives a number, but `{}` is an array parameter",
                                input.name, input.name
                            ),
                        )
                        .with_primary_at(input.span, "declared with a shape here")
                        .with_hint(
                            "`--param` sets scalar parameters; declare an array that changes \
                             between solves as `data` and bind it with `--data NAME=FILE`",
                        ),
                    ),
                    Some((_, v)) => {
                        arrays.push((id, ArrayD::from_elem(IxDyn(&[]), *v), "--param".into()))
                    }
                    None => {}
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

/// Seeded standard normal values in the shape of `input` under the given (or default) sizes.
fn random_array(
    program: &Program,
    input: &optc_compiler::ir::Input,
    dim_overrides: &[(DimId, u64, &str)],
    seed: u64,
) -> Result<ArrayD<f64>, Diagnostic> {
    let mut sizes = Vec::new();
    for (k, info) in program.dims.iter().enumerate() {
        let given = dim_overrides.iter().find(|(d, _, _)| d.0 as usize == k);
        sizes.push(given.map(|g| g.1).or(info.default));
    }
    // The sizes of the dims of this array's own shape.
    let mut missing: Vec<&str> = input
        .shape
        .iter()
        .filter_map(|d| d.sym)
        .filter(|s| sizes[s.0 as usize].is_none())
        .map(|s| program.dims[s.0 as usize].name.as_str())
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        return Err(Diagnostic::error(
            "E0352",
            format!(
                "random data for `{}` needs the size of {}",
                input.name,
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        )
        .with_primary_at(input.span, "declared here")
        .with_hint(format!(
            "give it with `--dims`, e.g. --dims {}=100",
            missing[0]
        )));
    }
    // Dims the shape does not use evaluate as 0 (their sizes do not matter here).
    let sizes: Vec<u64> = sizes.into_iter().map(|s| s.unwrap_or(0)).collect();
    let shape: Vec<usize> = input
        .shape
        .iter()
        .map(|d| d.eval(&sizes).max(0) as usize)
        .collect();
    let bytes = 8 * shape.iter().map(|&s| s as u128).product::<u128>();
    data::fits_in_memory(bytes, &format!("random data for `{}` need", input.name))
        .map_err(|e| Diagnostic::from(e).with_primary_at(input.span, "declared here"))?;
    let mut rng = crate::simulate::Rng::new(seed);
    Ok(ArrayD::from_shape_simple_fn(IxDyn(&shape), || rng.normal()))
}

/// E0311 when one value of the program (an intermediate such as `eye(n) @ x` too) would need
/// more memory than the machine has available at the bound sizes: evaluating it would end by an
/// allocation failure.
fn too_large_for_memory(program: &Program, dims: &[u64]) -> Result<(), Diagnostic> {
    let elements = |id: NodeId| -> u128 {
        let shape = program.graph.shape(id);
        shape.iter().map(|d| d.eval(dims).max(0) as u128).product()
    };
    let nodes = (0..program.graph.len() as u32).map(NodeId);
    let Some(largest) = nodes.max_by_key(|&id| elements(id)) else {
        return Ok(());
    };
    let shape = program.shape_name(program.graph.shape(largest));
    data::fits_in_memory(
        8 * elements(largest),
        &format!("a value of shape {shape} needs"),
    )
    .map_err(|e| Diagnostic::from(e).with_primary_at(program.node_span(largest), "this value"))
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

/// The places of `program`'s variables in the flat vector at the dim sizes `dims`.
pub fn var_slots(program: &Program, dims: &[u64]) -> Vec<VarSlot> {
    let mut slots = Vec::new();
    let mut offset = 0;
    for id in program.variables() {
        let input = program.input(id);
        let shape: Vec<usize> = input
            .shape
            .iter()
            .map(|d| d.eval(dims).max(0) as usize)
            .collect();
        let slot = VarSlot {
            input: id,
            name: input.name.clone(),
            offset,
            shape,
        };
        offset += slot.len();
        slots.push(slot);
    }
    slots
}

/// Which engine evaluates the per-iteration part of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Native code from the Cranelift backend (the default).
    Cpu,
    /// Native code through MLIR's execution engine (feature `mlir`).
    #[cfg(feature = "mlir")]
    MlirCpu,
    /// The reference interpreter.
    Interp,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            #[cfg(feature = "mlir")]
            Backend::MlirCpu => "mlir-cpu",
            Backend::Interp => "interp",
        }
    }
}

/// A function compiled to native code by one of the backends, with the calling contract of
/// [`CompiledFn::call`].
trait NativeFunction {
    fn output_shapes(&self) -> &[Vec<usize>];
    /// False when the function failed (a kernel error): the interpreter then reports it.
    fn run(&mut self, inputs: &[&[f64]], outputs: &mut [&mut [f64]]) -> bool;
}

impl NativeFunction for CompiledFn {
    fn output_shapes(&self) -> &[Vec<usize>] {
        CompiledFn::output_shapes(self)
    }

    fn run(&mut self, inputs: &[&[f64]], outputs: &mut [&mut [f64]]) -> bool {
        self.call(inputs, outputs).is_ok()
    }
}

#[cfg(feature = "mlir")]
impl NativeFunction for optc_mlir::MlirCpuFn {
    fn output_shapes(&self) -> &[Vec<usize>] {
        optc_mlir::MlirCpuFn::output_shapes(self)
    }

    fn run(&mut self, inputs: &[&[f64]], outputs: &mut [&mut [f64]]) -> bool {
        self.call(inputs, outputs).is_ok()
    }
}

/// Natively compiled roots, reading the setup values of `given` after the program's inputs.
struct NativeEval {
    function: Box<dyn NativeFunction>,
    given: Vec<NodeId>,
    /// `program.inputs.len()` when compiled: adding an input makes the function stale.
    inputs: usize,
    /// The values of the roots, overwritten by every call.
    outputs: Vec<ArrayD<f64>>,
    /// The (empty) allocations of the argument lists of a call, kept for the next one.
    spare_inputs: Vec<&'static [f64]>,
    spare_outputs: Vec<&'static mut [f64]>,
}

/// `spare` emptied, as a vector of another element type that keeps its allocation: std collects
/// the adapters of a vector's `into_iter` in place when the element layouts agree (here
/// references of other lifetimes), so the argument lists of native calls reuse one allocation.
fn recycle<A, B>(spare: Vec<A>) -> Vec<B> {
    spare.into_iter().filter_map(|_| None).collect()
}

/// A program with bound inputs; evaluates nodes with a setup cache.
pub struct Model {
    pub program: Program,
    pub bindings: Bindings,
    pub vars: Vec<VarSlot>,
    /// Values of nodes that do not depend on variables (computed once, then reused).
    cache: Vec<Option<ArrayD<f64>>>,
    argmin: ArgminSolver,
    backend: Backend,
    /// Compiled functions by their roots; `None` when the roots run on the interpreter.
    native: HashMap<Vec<NodeId>, Option<NativeEval>>,
    /// The values of the last interpreted evaluation lent by [`Model::eval_ref`].
    interpreted: Vec<ArrayD<f64>>,
    fallbacks: Vec<String>,
    codegen_time: Duration,
}

impl Model {
    /// Prepares `program` (derivatives of lower-level problems are added) for evaluation.
    pub fn new(mut program: Program, bindings: Bindings) -> Result<Model, Diagnostic> {
        too_large_for_memory(&program, &bindings.dims)?;
        let argmin = ArgminSolver::new(&mut program)?;
        let vars = var_slots(&program, &bindings.dims);
        let cache = vec![None; program.graph.len()];
        Ok(Model {
            program,
            bindings,
            vars,
            cache,
            argmin,
            backend: Backend::Cpu,
            native: HashMap::new(),
            interpreted: Vec::new(),
            fallbacks: Vec::new(),
            codegen_time: Duration::ZERO,
        })
    }

    /// Chooses the engine of later evaluations.
    pub fn set_backend(&mut self, backend: Backend) {
        self.backend = backend;
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Why some evaluations ran on the interpreter although the CPU backend was chosen (one
    /// line per distinct reason).
    pub fn fallbacks(&self) -> &[String] {
        &self.fallbacks
    }

    /// Time spent generating native code so far.
    pub fn codegen_time(&self) -> Duration {
        self.codegen_time
    }

    /// Length of the flat variable vector.
    pub fn dim(&self) -> usize {
        self.vars.iter().map(VarSlot::len).sum()
    }

    /// The slot of the variable `input` in the flat vector (panics for another input).
    pub fn slot(&self, input: InputId) -> &VarSlot {
        self.vars
            .iter()
            .find(|v| v.input == input)
            .expect("a variable of the model")
    }

    /// A scalar weight of stage ≤ Param (a prox term's, a transport term's): 1 when absent.
    pub fn eval_weight(&mut self, weight: Option<NodeId>) -> Result<f64, Diagnostic> {
        match weight {
            Some(node) => self.eval_scalar(node).map_err(Diagnostic::from),
            None => Ok(1.0),
        }
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
            let slot = &mut self.bindings.inputs[v.input.0 as usize];
            bind_values(slot, &v.shape, &x[v.offset..v.offset + v.len()]);
        }
    }

    /// Binds `input` (a variable, or a variable-stage input the runtime added: a lower-level
    /// point, a direction) to `values` of `shape`, row-major.
    pub fn set_input(&mut self, input: InputId, shape: &[usize], values: &[f64]) {
        bind_values(&mut self.bindings.inputs[input.0 as usize], shape, values);
    }

    /// Adds a scalar parameter input with a value (used for penalty weights and path parameters).
    pub fn add_param(&mut self, name: &str, value: f64) -> (InputId, NodeId) {
        let (id, node) = self.program.add_param(name, value);
        self.bind_added_params();
        (id, node)
    }

    /// Binds the inputs added to the program since the model was made (scalar parameters of
    /// [`Program::add_param`]) to their default values.
    pub fn bind_added_params(&mut self) {
        for k in self.bindings.inputs.len()..self.program.inputs.len() {
            let value = self.program.param_default(InputId(k as u32)).unwrap_or(0.0);
            self.bindings
                .inputs
                .push(Some(ArrayD::from_elem(IxDyn(&[]), value)));
        }
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
        // The lower-level problems' functions are kept (and renamed) with the roots.
        let all: Vec<NodeId> = roots.iter().chain(&self.argmin.nodes()).copied().collect();
        let s = simplify::simplify(&self.program, &all, &cost)?;
        self.program = s.program;
        self.cache = vec![None; self.program.graph.len()];
        self.native.clear();
        let (roots, kept) = s.roots.split_at(roots.len());
        self.argmin.rename(kept);
        Ok(roots.to_vec())
    }

    /// Values of `roots` at the current variables.
    pub fn eval(&mut self, roots: &[NodeId]) -> Result<Vec<ArrayD<f64>>, EvalError> {
        self.eval_ref(roots).map(<[_]>::to_vec)
    }

    /// Values of `roots` at the current variables, lent from arrays the model reuses: on a
    /// native backend, every call after the first for a root list allocates nothing.
    pub fn eval_ref(&mut self, roots: &[NodeId]) -> Result<&[ArrayD<f64>], EvalError> {
        if self.backend == Backend::Interp || !self.eval_native(roots)? {
            self.interpreted = self.eval_interp(roots)?;
            return Ok(&self.interpreted);
        }
        match self.native.get(roots) {
            Some(Some(native)) => Ok(&native.outputs),
            _ => Err(EvalError::Internal {
                node: roots[0],
                message: "the native function of these roots is gone".into(),
            }),
        }
    }

    /// Evaluates `roots` with native code into the outputs of their [`NativeEval`]; false when
    /// the interpreter must do it (roots the backend cannot compile, nothing per-iteration to
    /// compile, or a kernel failure, which the interpreter then reports precisely).
    fn eval_native(&mut self, roots: &[NodeId]) -> Result<bool, EvalError> {
        let g = &self.program.graph;
        if roots.iter().all(|&r| g.stage(r) < Stage::Var) {
            return Ok(false);
        }
        let stale = match self.native.get(roots) {
            None => true,
            Some(entry) => entry
                .as_ref()
                .is_some_and(|e| e.inputs != self.program.inputs.len()),
        };
        if stale {
            let start = std::time::Instant::now();
            let compiled = compile_native(self.backend, &self.program, roots, &self.bindings.dims);
            self.codegen_time += start.elapsed();
            let entry = match compiled {
                Ok(e) => Some(e),
                Err(e) => {
                    let reason = e.to_string();
                    if !self.fallbacks.contains(&reason) {
                        self.fallbacks.push(reason);
                    }
                    None
                }
            };
            self.native.insert(roots.to_vec(), entry);
        }
        self.cache.resize(self.program.graph.len(), None);
        let missing = match self.native.get(roots) {
            Some(Some(native)) => native
                .given
                .iter()
                .any(|g| self.cache[g.0 as usize].is_none())
                .then(|| native.given.clone()),
            _ => return Ok(false),
        };
        if let Some(given) = missing {
            self.eval_interp(&given)?;
        }
        let Some(Some(native)) = self.native.get_mut(roots) else {
            return Ok(false);
        };
        // The native code reads row-major arrays.
        let row_major = |slot: &mut Option<ArrayD<f64>>| {
            if let Some(a) = slot.as_mut().filter(|a| !a.is_standard_layout()) {
                *a = a.as_standard_layout().into_owned();
            }
        };
        self.bindings.inputs.iter_mut().for_each(row_major);
        for g in &native.given {
            row_major(&mut self.cache[g.0 as usize]);
        }
        let cache = &self.cache;
        let mut inputs: Vec<&[f64]> = recycle(std::mem::take(&mut native.spare_inputs));
        inputs.extend(
            self.bindings
                .inputs
                .iter()
                .chain(native.given.iter().map(|g| &cache[g.0 as usize]))
                .map(|a| a.as_ref().and_then(|a| a.as_slice()).unwrap_or(&[])),
        );
        let mut outputs: Vec<&mut [f64]> = recycle(std::mem::take(&mut native.spare_outputs));
        outputs.extend(
            native
                .outputs
                .iter_mut()
                .map(|a| a.as_slice_mut().expect("output arrays are row-major")),
        );
        let ok = native.function.run(&inputs, &mut outputs);
        native.spare_inputs = recycle(inputs);
        native.spare_outputs = recycle(outputs);
        Ok(ok)
    }

    /// Values of `roots` computed by the interpreter, keeping the setup cache.
    fn eval_interp(&mut self, roots: &[NodeId]) -> Result<Vec<ArrayD<f64>>, EvalError> {
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

    /// Where the values of `roots` at the current point stop being finite: the first node (in
    /// arena order) with a NaN or infinite entry, found by a checked evaluation on the
    /// interpreter that recomputes the setup values too. `None` when all are finite (or another
    /// error stops the evaluation first).
    pub fn first_non_finite(&mut self, roots: &[NodeId]) -> Option<EvalError> {
        let checked = interp::eval_checked(&self.program, &self.bindings, roots, &mut self.argmin);
        match checked {
            Err(e @ EvalError::NonFinite { .. }) => Some(e),
            _ => None,
        }
    }

    /// A scalar node's value.
    pub fn eval_scalar(&mut self, node: NodeId) -> Result<f64, EvalError> {
        Ok(self.eval_ref(&[node])?[0]
            .iter()
            .next()
            .copied()
            .unwrap_or(f64::NAN))
    }

    /// Calls `visit` with the loop indices of constraint `index`'s `for` ranges bound, once per
    /// index combination (last range fastest; none when a range is empty), until it returns
    /// `Some`.
    fn at_each_index<T>(
        &mut self,
        index: usize,
        mut visit: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<T> {
        let ranges: Vec<(i64, i64)> = self.program.constraints[index]
            .ranges
            .iter()
            .map(|r| {
                (
                    r.start.eval(&self.bindings.dims),
                    r.end.eval(&self.bindings.dims),
                )
            })
            .collect();
        if ranges.iter().any(|(a, b)| a >= b) {
            return None;
        }
        let mut idx: Vec<i64> = ranges.iter().map(|r| r.0).collect();
        loop {
            self.bindings.loop_indices = idx.iter().map(|&i| i as u64).collect();
            let found = visit(self);
            self.bindings.loop_indices.clear();
            if found.is_some() {
                return found;
            }
            let mut level = idx.len();
            loop {
                if level == 0 {
                    return None;
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

    /// Evaluates a constraint for every index of its `for` ranges and returns its violation
    /// (0 when satisfied).
    pub fn violation(&mut self, index: usize) -> Result<f64, EvalError> {
        let c = self.program.constraints[index].clone();
        let mut roots = vec![c.node];
        if let ConstraintKind::Card { bound } = c.kind {
            roots.push(bound);
        }
        if let ConstraintKind::In(SetKind::Box { lower, upper }) = c.kind {
            roots.extend([lower, upper]);
        }
        let mut worst: f64 = 0.0;
        let failed = self.at_each_index(index, |model| {
            let v = interp::eval(&model.program, &model.bindings, &roots, &mut model.argmin);
            let v = match v {
                Ok(v) => v,
                Err(e) => return Some(e),
            };
            let x = &v[0];
            let amount = match &c.kind {
                ConstraintKind::Eq => x.iter().fold(0.0f64, |m, v| m.max(v.abs())),
                ConstraintKind::Le => x.iter().fold(0.0f64, |m, v| m.max(*v)),
                ConstraintKind::In(SetKind::Nonneg) => x.iter().fold(0.0f64, |m, v| m.max(-v)),
                ConstraintKind::In(SetKind::Simplex) => {
                    let neg = x.iter().fold(0.0f64, |m, v| m.max(-v));
                    neg.max((x.sum() - 1.0).abs())
                }
                ConstraintKind::In(SetKind::Symmetric) => {
                    let t = x.view().reversed_axes();
                    x.iter()
                        .zip(t.iter())
                        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
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
            None
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(worst),
        }
    }

    /// The value of a `threshold` cutoff: the number, or the parameter's bound value (E0190
    /// when that is below 0, which would zero nothing).
    pub fn cutoff(&mut self, cutoff: &Cutoff) -> Result<f64, Diagnostic> {
        let name = match cutoff {
            Cutoff::Value(v) => return Ok(*v),
            Cutoff::Param(name) => name,
        };
        let id = self
            .program
            .input_by_name(name)
            .expect("the checker resolved the cutoff's parameter");
        let node = self.program.input_nodes[id.0 as usize];
        let value = self
            .eval_scalar(node)
            .map_err(|e| e.diagnostic(&self.program))?;
        match value >= 0.0 {
            true => Ok(value),
            false => Err(Diagnostic::error(
                "E0190",
                format!("the cutoff `{name}` of `threshold` is {value}, below 0"),
            )
            .with_primary_at(self.program.input(id).span, "the parameter")
            .with_hint(format!(
                "a negative cutoff zeroes nothing: give `{name}` a value of 0 or more (`--param {name}=0.1`)"
            ))),
        }
    }

    /// The `for` indices (one per range, outermost first) where constraint `index` first fails
    /// to evaluate; `None` when it evaluates everywhere.
    pub fn failing_index(&mut self, index: usize) -> Option<Vec<u64>> {
        let node = self.program.constraints[index].node;
        self.at_each_index(index, |model| {
            let result = interp::eval(&model.program, &model.bindings, &[node], &mut model.argmin);
            result.err().map(|_| model.bindings.loop_indices.clone())
        })
    }

    /// Where constraint `index`'s value at the current point stops being finite, at the first
    /// index of its `for` ranges where it does (as [`Model::first_non_finite`]).
    pub fn constraint_non_finite(&mut self, index: usize) -> Option<EvalError> {
        let node = self.program.constraints[index].node;
        self.at_each_index(index, |model| model.first_non_finite(&[node]))
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

/// Compiles `roots` on `backend`, with the nodes below [`Stage::Var`] that per-iteration nodes
/// read as given values (the handoff from setup to the per-iteration function).
fn compile_native(
    backend: Backend,
    program: &Program,
    roots: &[NodeId],
    dims: &[u64],
) -> Result<NativeEval, String> {
    // The setup values per-iteration nodes read, except inputs (passed anyway) and constants
    // (free to recompute).
    let g = &program.graph;
    let given: Vec<NodeId> = simplify::stage(program, roots)
        .handoff
        .into_iter()
        .filter(|&id| {
            !matches!(
                g.node(id).op,
                Op::Input(_) | Op::Const(_) | Op::DimSize(_) | Op::Eye(_)
            )
        })
        .collect();
    let (cut, cut_roots) = program.cut(roots, &given).map_err(|e| e.to_string())?;
    let function: Box<dyn NativeFunction> = match backend {
        Backend::Cpu | Backend::Interp => {
            Box::new(CompiledFn::compile(&cut, &cut_roots, dims).map_err(|e| e.to_string())?)
        }
        #[cfg(feature = "mlir")]
        Backend::MlirCpu => {
            let symbols: Vec<(&str, *const u8)> = crate::cpu::symbols()
                .into_iter()
                .map(|s| (s.name, s.address))
                .collect();
            Box::new(
                optc_mlir::MlirCpuFn::compile(&cut, &cut_roots, dims, &symbols)
                    .map_err(|e| e.to_string())?,
            )
        }
    };
    let outputs = function
        .output_shapes()
        .iter()
        .map(|s| ArrayD::zeros(IxDyn(s)))
        .collect();
    Ok(NativeEval {
        function,
        given,
        inputs: program.inputs.len(),
        outputs,
        spare_inputs: Vec::new(),
        spare_outputs: Vec::new(),
    })
}

/// Sets `slot` to `values` of `shape`, overwriting the previous array in place when it has that
/// shape (no allocation).
fn bind_values(slot: &mut Option<ArrayD<f64>>, shape: &[usize], values: &[f64]) {
    let previous = slot.as_mut().filter(|a| a.shape() == shape);
    match previous.and_then(|a| a.as_slice_mut()) {
        Some(previous) => previous.copy_from_slice(values),
        _ => {
            *slot = Some(
                ArrayD::from_shape_vec(IxDyn(shape), values.to_vec())
                    .expect("values match the shape"),
            )
        }
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
            let grad =
                autodiff::gradient(program, sub.objective, &[sub.var]).map_err(|e| Diagnostic {
                    code: "E0351",
                    message: format!("the lower-level problem cannot be differentiated: {e}"),
                    ..e.diagnostic(program)
                })?;
            derivs.push((sub.objective, grad[0]));
        }
        let last = vec![None; derivs.len()];
        Ok(ArgminSolver { derivs, last })
    }

    /// The nodes it evaluates: each subproblem's objective and gradient.
    fn nodes(&self) -> Vec<NodeId> {
        self.derivs.iter().flat_map(|&(f, g)| [f, g]).collect()
    }

    /// Takes the new ids of [`ArgminSolver::nodes`], in order.
    fn rename(&mut self, nodes: &[NodeId]) {
        for (d, pair) in self.derivs.iter_mut().zip(nodes.chunks_exact(2)) {
            *d = (pair[0], pair[1]);
        }
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
        // To the gradient's rounding floor, not a relative decrease: what this solve reports
        // (outputs, the objective after a solve) must be the lower level's minimizer.
        let opts = LbfgsOptions {
            gtol: 1e-12,
            ftol: 0.0,
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
