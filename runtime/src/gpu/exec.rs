//! Runs a [`GpuPlan`] on a [`Device`]: setup once per solve (the setup values computed on the
//! host by the interpreter; data, parameters and setup values uploaded once), then each
//! evaluation uploads the variables, runs the steps on the device and downloads the objective
//! and gradient.
//!
//! Per evaluation the host sends the variables (`dim` values) and receives `1 + dim` values;
//! [`Step::Host`] steps also move their operands and result. The host works in f64; on an f32
//! plan the device rounds what it receives and the host widens what it gets back.
//!
//! A plan with Adam's step ([`AdamStep`]) has two phases: the steps of an evaluation and those
//! of the step. Its Adam iterates (point, moments, best point) stay on the device for a whole
//! path stage ([`Executor::start_adam`], [`Executor::rerun`], [`Executor::step_adam`]): per step
//! only scalars cross, besides what the evaluation's own steps read back (a log-determinant's LU
//! diagonal and pivots, host steps).
//!
//! L-BFGS on a plan of the objective, and proximal gradient on a plan with the prox step
//! ([`crate::plan::ProxStep`]), keep their vectors on the device too ([`Executor::allocate_vectors`],
//! [`Executor::evaluate_vector`], [`Executor::prox_vector`] and the BLAS-like calls on them):
//! the start point goes there once, the result comes back once.

use super::device::{DevBuf, DevPtr, Device, DeviceError, Gemm, KernelParam, LaunchCall};
use super::plan::{DeviceSolver, GpuPlan, LaunchOperand, Memory, Precision, Step, Storage};
use crate::interp::{self, Bindings, EvalError, NoSubproblems};
use crate::linalg::{self, PadeMatrix, PadeSteps, Pivoting, PADE_MATRICES};
use crate::plan::{AdamStep, ADAM_ROOTS_PER_VARIABLE};
use ndarray::{ArrayD, IxDyn};
use optc_compiler::ir::{InputId, InputKind, NodeId, Program, Stage};
use std::fmt;
use std::ops::Range;

/// Why the executor failed.
#[derive(Clone, Debug, PartialEq)]
pub enum ExecError {
    /// The bound dims differ from those the artifact was built for.
    Dims {
        built: Vec<u64>,
        bound: Vec<u64>,
    },
    /// The plan does not hold together (a damaged artifact).
    Plan(String),
    Device(DeviceError),
    /// The interpreter's error (setup values, host steps), or a non-positive determinant.
    Eval(EvalError),
    /// A finite value sent to an f32 device that f32 cannot hold (it would become infinite).
    Range {
        what: String,
        value: f64,
    },
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::Dims { built, bound } => write!(
                f,
                "the artifact was built for dims {built:?}, but the model is bound with {bound:?}"
            ),
            ExecError::Plan(m) => write!(f, "the artifact's GPU plan is inconsistent: {m}"),
            ExecError::Device(e) => write!(f, "{e}"),
            ExecError::Eval(e) => write!(f, "{e}"),
            ExecError::Range { what, value } => write!(
                f,
                "{what} holds {value:e}, outside the range of the artifact's f32 buffers (±{:e})",
                f32::MAX
            ),
        }
    }
}

impl std::error::Error for ExecError {}

impl From<DeviceError> for ExecError {
    fn from(e: DeviceError) -> ExecError {
        ExecError::Device(e)
    }
}

impl From<EvalError> for ExecError {
    fn from(e: EvalError) -> ExecError {
        ExecError::Eval(e)
    }
}

/// The value of `node` of the plan's function, computed by the interpreter from the stored values
/// it reads; `read(memory, offset, len)` gives those (row-major).
pub fn eval_stored(
    plan: &GpuPlan,
    node: NodeId,
    read: &mut dyn FnMut(Memory, usize, usize) -> Result<Vec<f64>, ExecError>,
) -> Result<ArrayD<f64>, ExecError> {
    let program: &Program = &plan.staged.function;
    let mut values: Vec<Option<ArrayD<f64>>> = vec![None; program.graph.len()];
    for leaf in plan.stored_leaves(node) {
        let (memory, offset) = plan
            .location(leaf)
            .ok_or_else(|| ExecError::Plan(format!("{leaf} is not stored")))?;
        let data = read(memory, offset, plan.numel(leaf))?;
        let shape = IxDyn(&plan.shapes[leaf.0 as usize]);
        values[leaf.0 as usize] = Some(
            ArrayD::from_shape_vec(shape, data)
                .map_err(|e| ExecError::Plan(format!("{leaf}: {e}")))?,
        );
    }
    let bindings = Bindings {
        dims: plan.staged.dims.clone(),
        inputs: vec![None; program.inputs.len()],
        loop_indices: Vec::new(),
    };
    interp::eval_into(
        program,
        &bindings,
        &mut values,
        &[node],
        &mut NoSubproblems,
        false,
    )?;
    let value = values[node.0 as usize]
        .take()
        .ok_or_else(|| ExecError::Plan(format!("{node} was not computed")))?;
    Ok(value.as_standard_layout().into_owned())
}

/// Refuses a finite value of `data` that `precision` cannot hold (f32 beyond ±3.4e38), naming
/// `what` holds it: rounded, it would reach the device as an infinity.
fn check_range(
    precision: Precision,
    what: &dyn Fn() -> String,
    data: &[f64],
) -> Result<(), ExecError> {
    if precision == Precision::F64 {
        return Ok(());
    }
    match data
        .iter()
        .find(|v| v.is_finite() && precision.round(**v).is_infinite())
    {
        Some(&value) => Err(ExecError::Range {
            what: what(),
            value,
        }),
        None => Ok(()),
    }
}

/// A singular matrix is the interpreter's coded error at the node.
fn singular(e: DeviceError, node: NodeId, op: &'static str) -> ExecError {
    match e {
        DeviceError::Singular => ExecError::Eval(EvalError::Singular { node, op }),
        other => ExecError::Device(other),
    }
}

/// A plan loaded on a device, with its data uploaded.
pub struct Executor<D: Device> {
    device: D,
    plan: GpuPlan,
    inputs: Vec<DevBuf>,
    outputs: Vec<DevBuf>,
    scratch: DevBuf,
    /// `(function input, length)` of each variable, in the flat vector's order, and where each
    /// starts in it.
    variables: Vec<(u32, usize)>,
    starts: Vec<usize>,
    /// The bindings of the plan's program (the artifact's, then the parameters the plan adds).
    bindings: Bindings,
    /// The interpreter's values of the setup computation, kept so that new parameter values
    /// recompute only what depends on parameters.
    setup: Vec<Option<ArrayD<f64>>>,
    /// Element counts of the input and output buffers ([`GpuPlan::input_lens`],
    /// [`GpuPlan::output_lens`]).
    input_lens: Vec<usize>,
    output_lens: Vec<usize>,
    /// The kernel parameters of each step that is a launch (empty for the others): the buffers
    /// are fixed, so they are made once.
    launch_params: Vec<Vec<KernelParam>>,
    /// The steps of an evaluation, and those of Adam's step ([`AdamStep`]; none without it),
    /// by index in the plan's steps.
    eval_steps: Vec<usize>,
    step_steps: Vec<usize>,
    /// The roots of an evaluation (all of them without an Adam step).
    eval_roots: usize,
    /// Adam's iterates on the device, for a plan with its step.
    adam: Option<ResidentAdam>,
    /// Flat vectors of the point's length, for a solver that keeps its iterates on the device
    /// ([`Executor::allocate_vectors`]).
    vectors: Vec<DevBuf>,
    /// The buffers of the matrix exponentials ([`Step::Expm`]), one workspace per size.
    expm_work: Vec<ExpmWorkspace>,
    /// The matrices of the `logdet` steps, factored without pivoting (whose pivots tell the
    /// domain, [`crate::linalg::Lu::logdet`]); the others with partial pivoting.
    logdet_matrices: Vec<NodeId>,
    /// The time the device took to load the kernels (for the CUDA driver: JIT-compiling the
    /// PTX).
    kernel_load: std::time::Duration,
}

/// The device side of Adam's iterates ([`AdamStep`]): the point lives in the variables' input
/// buffers, the moments in their own inputs, the stage's best point in `best`.
struct ResidentAdam {
    step: AdamStep,
    /// A buffer per variable holding the best recorded point.
    best: Vec<DevBuf>,
    best_value: f64,
    /// Adam's step count in the stage, and its decay rates.
    t: i32,
    beta1: f64,
    beta2: f64,
    /// The learning rate on the device (NaN before the first step).
    lr: f64,
}

impl<D: Device> Executor<D> {
    /// Checks the plan, loads the kernels, computes the setup values from `bindings` (the
    /// artifact program's inputs at its build-time dims) and uploads everything but the
    /// variables.
    pub fn new(
        mut device: D,
        plan: GpuPlan,
        kernels: &[(String, String)],
        bindings: &Bindings,
    ) -> Result<Executor<D>, ExecError> {
        plan.check().map_err(ExecError::Plan)?;
        if bindings.dims != plan.staged.dims {
            return Err(ExecError::Dims {
                built: plan.staged.dims.clone(),
                bound: bindings.dims.clone(),
            });
        }
        device.set_precision(plan.precision)?;
        let loading = std::time::Instant::now();
        for (name, ptx) in kernels {
            device.load_module(name, ptx)?;
        }
        let kernel_load = loading.elapsed();
        for step in &plan.steps {
            if let Step::Launch(l) = step {
                if !kernels.iter().any(|(name, _)| *name == l.module) {
                    return Err(ExecError::Plan(format!("no PTX for kernel `{}`", l.module)));
                }
            }
        }
        let derived = &plan.staged.derived;
        let mut bindings = bindings.clone();
        for k in bindings.inputs.len()..derived.inputs.len() {
            let default = derived.param_default(InputId(k as u32));
            bindings
                .inputs
                .push(default.map(|v| ArrayD::from_elem(IxDyn(&[]), v)));
        }
        let (input_lens, output_lens) = (plan.input_lens(), plan.output_lens());
        let inputs = input_lens
            .iter()
            .map(|&len| device.alloc(len))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = output_lens
            .iter()
            .map(|&len| device.alloc(len))
            .collect::<Result<Vec<_>, _>>()?;
        let scratch = device.alloc(plan.scratch_len)?;
        let variables = plan
            .staged
            .derived
            .variables()
            .map(|v| (v.0, input_lens[v.0 as usize]))
            .collect::<Vec<_>>();
        let starts = variables
            .iter()
            .scan(0, |at, &(_, len)| {
                *at += len;
                Some(*at - len)
            })
            .collect();
        let setup = vec![None; plan.staged.derived.graph.len()];
        let logdet_matrices = plan
            .steps
            .iter()
            .filter_map(|step| match *step {
                Step::LogDet { a, .. } => Some(a),
                _ => None,
            })
            .collect();
        let mut executor = Executor {
            device,
            plan,
            inputs,
            outputs,
            scratch,
            variables,
            starts,
            bindings,
            setup,
            input_lens,
            output_lens,
            launch_params: Vec::new(),
            eval_steps: Vec::new(),
            step_steps: Vec::new(),
            eval_roots: 0,
            adam: None,
            vectors: Vec::new(),
            expm_work: Vec::new(),
            logdet_matrices,
            kernel_load,
        };
        executor.split_steps()?;
        executor.allocate_expm_work()?;
        executor.launch_params = executor
            .plan
            .steps
            .iter()
            .map(|step| match step {
                Step::Launch(l) => executor.params(&l.operands),
                _ => Vec::new(),
            })
            .collect();
        executor.upload_setup(false)?;
        // The augmented Lagrangian's merit is defined before the solver sets its multipliers:
        // α = 0, ρ = 1 (the quadratic penalty).
        if let Some(DeviceSolver::Auglag { multipliers, .. }) = &executor.plan.staged.solver {
            let zeros = vec![0.0; multipliers.iter().map(|m| m.len).sum()];
            executor.set_multipliers(&zeros, 1.0)?;
        }
        Ok(executor)
    }

    /// Splits the steps into those of an evaluation (the nodes its roots need) and those of the
    /// solver's step (Adam's or the prox step: the rest), and allocates the best point's buffers
    /// of a plan with Adam's step.
    fn split_steps(&mut self) -> Result<(), ExecError> {
        let staged = &self.plan.staged;
        // The solver's roots; the exponentials' column sums come after them.
        let roots = &staged.function_roots[..staged.function_roots.len() - staged.expm_norms];
        let inputs = &staged.derived.inputs;
        // The step's inputs are the solver's, never data or setup values.
        let solver_inputs = |mut ids: Box<dyn Iterator<Item = u32> + '_>| {
            ids.all(|k| {
                inputs
                    .get(k as usize)
                    .is_some_and(|i| i.kind == InputKind::Direction)
            })
        };
        let first = 1 + self.variables.len();
        let vars = self.variables.len();
        let (step, valid) = match &self.plan.staged.solver {
            Some(DeviceSolver::Path {
                adam: Some(step), ..
            })
            | Some(DeviceSolver::Adam { adam: step }) => {
                self.eval_roots = step.first_root as usize;
                let valid = step.moments.len() == vars
                    && roots.len() == self.eval_roots + ADAM_ROOTS_PER_VARIABLE * vars
                    && solver_inputs(Box::new(
                        step.moments
                            .iter()
                            .flat_map(|&(m, v)| [m, v])
                            .chain(step.scalars),
                    ));
                (Some(step.clone()), valid)
            }
            Some(DeviceSolver::ProxGrad { prox: Some(prox) }) => {
                self.eval_roots = prox.first_root as usize;
                let valid = prox.points.len() == vars
                    && roots.len() == self.eval_roots + vars + 1
                    && solver_inputs(Box::new(prox.points.iter().copied().chain([prox.step])));
                (None, valid)
            }
            _ => {
                self.eval_roots = roots.len();
                (None, true)
            }
        };
        if !valid || self.eval_roots < first {
            return Err(ExecError::Plan(
                "the solver's step does not match the variables and roots".into(),
            ));
        }
        // Arguments precede their nodes in the graph: one backward sweep marks what the
        // evaluation's roots need.
        let graph = &self.plan.staged.function.graph;
        let mut needed = vec![false; graph.len()];
        let mark = |needed: &mut Vec<bool>, from: &[NodeId]| {
            for r in from {
                needed[r.0 as usize] = true;
            }
            for i in (0..graph.len()).rev() {
                if needed[i] {
                    for a in &graph.node(NodeId(i as u32)).args {
                        needed[a.0 as usize] = true;
                    }
                }
            }
        };
        mark(&mut needed, &roots[..self.eval_roots]);
        // An exponential's column sums are needed where it is.
        let all_roots = &self.plan.staged.function_roots;
        let sums: Vec<NodeId> = self
            .plan
            .steps
            .iter()
            .filter_map(|step| match *step {
                Step::Expm { node, norms, .. } if needed[node.0 as usize] => {
                    all_roots.get(norms as usize).copied()
                }
                _ => None,
            })
            .collect();
        mark(&mut needed, &sums);
        for (i, step) in self.plan.steps.iter().enumerate() {
            let of_eval = match *step {
                Step::Copy { output, node } => {
                    (output as usize) < self.eval_roots
                        || (output as usize >= roots.len() && needed[node.0 as usize])
                }
                Step::Launch(ref l) => needed[l.node.0 as usize],
                Step::Gemm { node, .. }
                | Step::LogDet { node, .. }
                | Step::Sum { node, .. }
                | Step::Inv { node, .. }
                | Step::Solve { node, .. }
                | Step::Expm { node, .. }
                | Step::Host { node } => needed[node.0 as usize],
            };
            if of_eval {
                self.eval_steps.push(i)
            } else {
                self.step_steps.push(i)
            }
        }
        if let Some(step) = step {
            let best = self
                .variables
                .iter()
                .map(|&(_, len)| self.device.alloc(len))
                .collect::<Result<_, _>>()?;
            self.adam = Some(ResidentAdam {
                step,
                best,
                best_value: f64::INFINITY,
                t: 0,
                beta1: f64::NAN,
                beta2: f64::NAN,
                lr: f64::NAN,
            });
        }
        Ok(())
    }

    /// A workspace for each size of matrix exponential the plan computes.
    fn allocate_expm_work(&mut self) -> Result<(), ExecError> {
        for step in &self.plan.steps {
            if let Step::Expm { n, .. } = *step {
                if !self.expm_work.iter().any(|w| w.n == n) {
                    let work = ExpmWorkspace::new(&mut self.device, n)?;
                    self.expm_work.push(work);
                }
            }
        }
        Ok(())
    }

    /// Computes the setup values on the host (with `params_only`, those that depend on
    /// parameters) and uploads them with the inputs they come from (all but the variables).
    fn upload_setup(&mut self, params_only: bool) -> Result<(), ExecError> {
        let derived = &self.plan.staged.derived;
        if params_only {
            for (id, node) in derived.graph.nodes() {
                if node.stage >= Stage::Param {
                    self.setup[id.0 as usize] = None;
                }
            }
        }
        interp::eval_into(
            derived,
            &self.bindings,
            &mut self.setup,
            &self.plan.staged.given,
            &mut NoSubproblems,
            false,
        )?;
        for (k, &len) in self.input_lens.iter().enumerate() {
            let value = match k.checked_sub(derived.inputs.len()) {
                Some(j) => {
                    let node = self.plan.staged.given[j];
                    if params_only && derived.graph.node(node).stage < Stage::Param {
                        continue;
                    }
                    self.setup[node.0 as usize].as_ref()
                }
                None if params_only && derived.inputs[k].kind != InputKind::Param => continue,
                None => self.bindings.inputs.get(k).and_then(Option::as_ref),
            };
            if let (Some(value), true) = (value, len > 0) {
                let data = value.as_standard_layout();
                let data = data.as_slice().expect("standard layout");
                if data.len() != len {
                    return Err(ExecError::Plan(format!(
                        "input {k} has {} elements, the plan {len}",
                        data.len()
                    )));
                }
                let what = || match derived.inputs.get(k) {
                    Some(input) => format!("`{}`", input.name),
                    None => "a value computed once per solve from the data".to_string(),
                };
                check_range(self.plan.precision, &what, data)?;
                self.device.upload(self.inputs[k].at(0), data)?;
            }
        }
        Ok(())
    }

    /// Sets the path's stage-merit parameters μ and 1/√s ([`DeviceSolver::Path`]) and uploads
    /// them with the setup values that depend on them.
    pub fn set_path(&mut self, mu: f64, inv_sqrt_s: f64) -> Result<(), ExecError> {
        let Some(DeviceSolver::Path {
            mu: mu_input,
            inv_sqrt_s: scale_input,
            ..
        }) = self.plan.staged.solver
        else {
            return Err(ExecError::Plan("the plan is not of a stage merit".into()));
        };
        for (input, value) in [(mu_input, mu), (scale_input, inv_sqrt_s)] {
            let slot = self
                .bindings
                .inputs
                .get_mut(input as usize)
                .ok_or_else(|| ExecError::Plan(format!("no input {input}")))?;
            *slot = Some(ArrayD::from_elem(IxDyn(&[]), value));
        }
        self.upload_setup(true)
    }

    /// Sets the augmented Lagrangian's multipliers α (every instance's, one after the other)
    /// and penalty ρ ([`DeviceSolver::Auglag`]): inputs of the merit, uploaded as they are.
    pub fn set_multipliers(&mut self, alpha: &[f64], rho: f64) -> Result<(), ExecError> {
        let Some(DeviceSolver::Auglag {
            rho: rho_input,
            multipliers,
        }) = &self.plan.staged.solver
        else {
            return Err(ExecError::Plan(
                "the plan is not of an augmented Lagrangian".into(),
            ));
        };
        let total: usize = multipliers.iter().map(|m| m.len).sum();
        if alpha.len() != total {
            return Err(ExecError::Plan(format!(
                "{} multipliers given, the plan has {total}",
                alpha.len()
            )));
        }
        let uploads: Vec<(u32, std::ops::Range<usize>)> = multipliers
            .iter()
            .scan(0, |at, m| {
                *at += m.len;
                Some((m.input, *at - m.len..*at))
            })
            .collect();
        let rho_input = *rho_input;
        let what = || "an augmented-Lagrangian multiplier".to_string();
        check_range(self.plan.precision, &what, alpha)?;
        check_range(self.plan.precision, &|| "the penalty ρ".into(), &[rho])?;
        for (input, range) in uploads {
            self.device
                .upload(self.inputs[input as usize].at(0), &alpha[range])?;
        }
        Ok(self
            .device
            .upload(self.inputs[rho_input as usize].at(0), &[rho])?)
    }

    pub fn device(&self) -> &D {
        &self.device
    }

    /// The time the device took to load the plan's kernels (the CUDA driver JIT-compiles the
    /// PTX then).
    pub fn kernel_load_time(&self) -> std::time::Duration {
        self.kernel_load
    }

    /// Length of the flat variable vector.
    pub fn dim(&self) -> usize {
        self.variables.iter().map(|v| v.1).sum()
    }

    /// The objective and its gradient (flat, variables in order) at `x`.
    pub fn value_grad(&mut self, x: &[f64]) -> Result<(f64, Vec<f64>), ExecError> {
        let mut grad = vec![0.0; x.len()];
        let value = self.evaluate(x, &mut grad)?;
        Ok((value, grad))
    }

    /// The first root (the merit) at `x`, its gradient written to `grad` (flat, variables in
    /// order); the roots after the gradient are read with [`Executor::rest_roots`].
    pub fn evaluate(&mut self, x: &[f64], grad: &mut [f64]) -> Result<f64, ExecError> {
        if x.len() != self.dim() || grad.len() != x.len() {
            return Err(ExecError::Plan(format!(
                "{} variable values for {} variables",
                x.len(),
                self.dim()
            )));
        }
        self.write_point(0, x)?;
        self.run_steps(Phase::Evaluation)?;
        let mut value = [0.0];
        self.device.download(self.outputs[0].at(0), &mut value)?;
        let mut at = 0;
        let lens = &self.output_lens;
        for (r, &len) in lens.iter().enumerate().skip(1).take(self.variables.len()) {
            self.device
                .download(self.outputs[r].at(0), &mut grad[at..at + len])?;
            at += len;
        }
        Ok(value[0])
    }

    /// Evaluates at the point on the device (that of the last [`Executor::evaluate`], or
    /// Adam's) and reads back only the merit: the gradient stays in its device buffers (what a
    /// solver on the device pays per step; `optc bench` times it).
    pub fn rerun(&mut self) -> Result<f64, ExecError> {
        self.run_steps(Phase::Evaluation)?;
        let mut value = [0.0];
        self.device.download(self.outputs[0].at(0), &mut value)?;
        Ok(value[0])
    }

    /// The number of values [`Executor::rest_roots`] writes.
    pub fn rest_len(&self) -> usize {
        self.output_lens[1 + self.variables.len()..self.eval_roots]
            .iter()
            .sum()
    }

    /// Writes the values of the roots after the gradient (the solver's other values,
    /// [`crate::plan::DeviceFunctions::roots`]) of the last evaluation ([`Executor::evaluate`]
    /// or [`Executor::rerun`]) to `rest`, flat.
    pub fn rest_roots(&mut self, rest: &mut [f64]) -> Result<(), ExecError> {
        if rest.len() != self.rest_len() {
            return Err(ExecError::Plan(format!(
                "{} values asked of roots with {}",
                rest.len(),
                self.rest_len()
            )));
        }
        let first = 1 + self.variables.len();
        let lens = &self.output_lens[first..self.eval_roots];
        let mut at = 0;
        for (r, &len) in lens.iter().enumerate() {
            let r = first + r;
            self.device
                .download(self.outputs[r].at(0), &mut rest[at..at + len])?;
            at += len;
        }
        Ok(())
    }

    /// The solver whose functions the plan computes (`None`: the objective's merit).
    pub fn solver(&self) -> Option<&DeviceSolver> {
        self.plan.staged.solver.as_ref()
    }

    fn buffer(&self, memory: Memory) -> DevBuf {
        match memory {
            Memory::Input(k) => self.inputs[k as usize],
            Memory::Output(k) => self.outputs[k as usize],
            Memory::Scratch => self.scratch,
        }
    }

    /// Where a stored node's value lives.
    fn place(&self, id: NodeId) -> Result<DevPtr, ExecError> {
        let (memory, offset) = self
            .plan
            .location(id)
            .ok_or_else(|| ExecError::Plan(format!("{id} is not stored")))?;
        Ok(self.buffer(memory).at(offset))
    }

    /// A matrix operand: where it lives and whether it is stored transposed.
    fn operand(&self, id: NodeId) -> Result<(DevPtr, bool), ExecError> {
        if self.plan.storage(id) == Storage::TransposeFlag {
            Ok((
                self.place(self.plan.staged.function.graph.node(id).args[0])?,
                true,
            ))
        } else {
            Ok((self.place(id)?, false))
        }
    }

    /// The kernel parameters of a launch's operands (a memref is five words: allocated and
    /// aligned pointer, offset 0, size, stride 1).
    fn params(&self, operands: &[LaunchOperand]) -> Vec<KernelParam> {
        let mut params = Vec::with_capacity(operands.len() * 5);
        for o in operands {
            match *o {
                LaunchOperand::Index(v) => params.push(KernelParam::Word(v as u64)),
                LaunchOperand::Memref(m) => {
                    let ptr = KernelParam::Ptr(self.buffer(m).at(0));
                    let len = match m {
                        Memory::Input(k) => self.input_lens[k as usize],
                        Memory::Output(k) => self.output_lens[k as usize],
                        Memory::Scratch => self.plan.scratch_len,
                    };
                    params.extend([
                        ptr,
                        ptr,
                        KernelParam::Word(0),
                        KernelParam::Word(len as u64),
                        KernelParam::Word(1),
                    ]);
                }
            }
        }
        params
    }

    /// Factorizes the matrix of node `a` unless the device holds its factors from this
    /// evaluation (`factored`): logdet, inverse and solves of one matrix share one LU. (Each node
    /// is computed once per evaluation, before the steps that read it.)
    fn factor(
        &mut self,
        a: NodeId,
        n: usize,
        factored: &mut Option<NodeId>,
    ) -> Result<(), ExecError> {
        if *factored != Some(a) {
            let pivoting = if self.logdet_matrices.contains(&a) {
                Pivoting::None
            } else {
                Pivoting::Partial
            };
            self.device.lu_factor(self.place(a)?, n, pivoting)?;
            *factored = Some(a);
        }
        Ok(())
    }

    fn run_steps(&mut self, phase: Phase) -> Result<(), ExecError> {
        let mut factored = None;
        let order = match phase {
            Phase::Evaluation => std::mem::take(&mut self.eval_steps),
            Phase::SolverStep => std::mem::take(&mut self.step_steps),
        };
        let done = self.run_in_order(&order, &mut factored);
        match phase {
            Phase::Evaluation => self.eval_steps = order,
            Phase::SolverStep => self.step_steps = order,
        }
        done
    }

    fn run_in_order(
        &mut self,
        order: &[usize],
        factored: &mut Option<NodeId>,
    ) -> Result<(), ExecError> {
        for &i in order {
            // Matched in place: the other steps' fields are copied out, a launch is borrowed.
            match self.plan.steps[i] {
                Step::Launch(ref l) => {
                    let call = LaunchCall {
                        module: &l.module,
                        entry: &l.entry,
                        grid: l.grid,
                        block: l.block,
                        params: &self.launch_params[i],
                        plan: &self.plan,
                        node: l.node,
                        operands: &l.operands,
                    };
                    self.device.launch(&call)?;
                }
                Step::Gemm {
                    node,
                    a,
                    b,
                    m,
                    k,
                    n,
                } => {
                    let (a, trans_a) = self.operand(a)?;
                    let (b, trans_b) = self.operand(b)?;
                    let c = self.place(node)?;
                    self.device.gemm(&Gemm {
                        a,
                        b,
                        c,
                        m,
                        k,
                        n,
                        trans_a,
                        trans_b,
                    })?;
                }
                Step::LogDet { node, a, n } => {
                    self.factor(a, n, factored)?;
                    let value =
                        self.device
                            .lu_logdet()?
                            .map_err(|outside| EvalError::LogdetDomain {
                                node,
                                minor: outside.order,
                            })?;
                    self.device.upload(self.place(node)?, &[value])?;
                }
                Step::Sum { node, a, len } => {
                    self.device.sum(self.place(a)?, len, self.place(node)?)?;
                }
                Step::Inv { node, a, n } => {
                    self.factor(a, n, factored)?;
                    let out = self.place(node)?;
                    self.device
                        .lu_inverse(out)
                        .map_err(|e| singular(e, node, "inv"))?;
                }
                Step::Solve { node, a, b, n, m } => {
                    self.factor(a, n, factored)?;
                    let (b, out) = (self.place(b)?, self.place(node)?);
                    self.device
                        .lu_solve(b, m, out)
                        .map_err(|e| singular(e, node, "solve"))?;
                }
                Step::Expm { node, a, n, norms } => {
                    self.expm(node, a, n, norms)?;
                    // Its Padé solve replaced the device's factors.
                    *factored = None;
                }
                Step::Host { node } => self.host_step(node)?,
                Step::Copy { node, output } => {
                    let len = self.plan.numel(node);
                    let src = self.place(node)?;
                    self.device
                        .copy(src, self.outputs[output as usize].at(0), len)?;
                }
            }
        }
        Ok(())
    }

    /// `node = exp(a)` on the device: [`linalg::scaling_and_squaring`] over the workspace of
    /// its size ([`DevicePade`]).
    fn expm(&mut self, node: NodeId, a: NodeId, n: usize, norms: u32) -> Result<(), ExecError> {
        let (input, out) = (self.place(a)?, self.place(node)?);
        let norms = self.outputs[norms as usize].at(0);
        let work = self
            .expm_work
            .iter()
            .find(|w| w.n == n)
            .ok_or_else(|| ExecError::Plan(format!("no exponential workspace of size {n}")))?;
        linalg::scaling_and_squaring(&mut DevicePade {
            device: &mut self.device,
            work,
            input,
            norms,
            out,
        })
    }

    /// Downloads what `node` reads, computes it on the host, uploads its value.
    fn host_step(&mut self, node: NodeId) -> Result<(), ExecError> {
        let buffers: Vec<DevBuf> = (0..self.inputs.len() as u32)
            .map(|k| self.buffer(Memory::Input(k)))
            .collect();
        let (outputs, scratch) = (self.outputs.clone(), self.scratch);
        let device = &mut self.device;
        let mut read = |memory: Memory, offset: usize, len: usize| {
            let buf = match memory {
                Memory::Input(k) => buffers[k as usize],
                Memory::Output(k) => outputs[k as usize],
                Memory::Scratch => scratch,
            };
            let mut data = vec![0.0; len];
            device.download(buf.at(offset), &mut data)?;
            Ok(data)
        };
        let value = eval_stored(&self.plan, node, &mut read)?;
        let data = value.as_slice().expect("standard layout");
        let place = self.place(node)?;
        self.device.upload(place, data)?;
        Ok(())
    }

    /// Waits for the device (for timings).
    pub fn synchronize(&mut self) -> Result<(), ExecError> {
        Ok(self.device.synchronize()?)
    }

    /// Adam's step the plan computes, if it does.
    pub fn adam_step(&self) -> Option<&AdamStep> {
        self.adam.as_ref().map(|a| &a.step)
    }

    fn resident(&mut self) -> Result<&mut ResidentAdam, ExecError> {
        self.adam
            .as_mut()
            .ok_or_else(|| ExecError::Plan("the plan has no Adam step".into()))
    }

    /// Starts an Adam stage at `x0` with decay rates `beta1`, `beta2` and guard `eps`: the
    /// point uploaded, the moments zeroed, `x0` the best point (of no recorded value).
    pub fn start_adam(
        &mut self,
        x0: &[f64],
        beta1: f64,
        beta2: f64,
        eps: f64,
    ) -> Result<(), ExecError> {
        self.write_point(0, x0)?;
        let adam = self.resident()?;
        (adam.t, adam.beta1, adam.beta2, adam.lr) = (0, beta1, beta2, f64::NAN);
        adam.best_value = f64::INFINITY;
        let [_, b1, b2, e, ..] = adam.step.scalars;
        for (input, value) in [(b1, beta1), (b2, beta2), (e, eps)] {
            self.set_scalar(input, value)?;
        }
        for k in 0..self.variables.len() {
            let (m, v) = self.resident()?.step.moments[k];
            let zeros = vec![0.0; self.variables[k].1];
            self.device.upload(self.inputs[m as usize].at(0), &zeros)?;
            self.device.upload(self.inputs[v as usize].at(0), &zeros)?;
        }
        self.keep_best()
    }

    fn set_scalar(&mut self, input: u32, value: f64) -> Result<(), ExecError> {
        check_range(self.plan.precision, &|| "an Adam constant".into(), &[value])?;
        Ok(self
            .device
            .upload(self.inputs[input as usize].at(0), &[value])?)
    }

    /// Copies the point into the best point's buffers.
    fn keep_best(&mut self) -> Result<(), ExecError> {
        for k in 0..self.variables.len() {
            let (x, len) = self.variables[k];
            let best = self.resident()?.best[k];
            self.device
                .copy(self.inputs[x as usize].at(0), best.at(0), len)?;
        }
        Ok(())
    }

    /// Copies the best point's buffers into the point (the start point before any record).
    pub fn restore_best(&mut self) -> Result<(), ExecError> {
        for k in 0..self.variables.len() {
            let (x, len) = self.variables[k];
            let best = self.resident()?.best[k];
            self.device
                .copy(best.at(0), self.inputs[x as usize].at(0), len)?;
        }
        Ok(())
    }

    /// ‖∇‖∞ of the last evaluation's gradient, on the device.
    pub fn gradient_norm(&mut self) -> Result<f64, ExecError> {
        let mut norm: f64 = 0.0;
        for k in 0..self.variables.len() {
            let len = self.output_lens[1 + k];
            norm = norm.max(self.device.max_abs(self.outputs[1 + k].at(0), len)?);
        }
        Ok(norm)
    }

    /// Records `value`, the merit at the point, for the best point.
    pub fn record(&mut self, value: f64) -> Result<(), ExecError> {
        let adam = self.resident()?;
        if value < adam.best_value {
            adam.best_value = value;
            self.keep_best()?;
        }
        Ok(())
    }

    /// The lowest recorded merit of the stage (∞ before any).
    pub fn best_value(&self) -> f64 {
        self.adam.as_ref().map_or(f64::INFINITY, |a| a.best_value)
    }

    /// Adam's step with the gradient of the last evaluation: the moments updated, the point
    /// moved to x − lr·u (projected on the bounds), u kept for [`Executor::shift`].
    pub fn step_adam(&mut self, lr: f64) -> Result<(), ExecError> {
        let adam = self.resident()?;
        adam.t = adam.t.saturating_add(1);
        let (t, beta1, beta2, lr_now) = (adam.t, adam.beta1, adam.beta2, adam.lr);
        adam.lr = lr;
        let [lr_input, _, _, _, c1, c2] = adam.step.scalars;
        let first = adam.step.first_root as usize;
        if lr != lr_now {
            self.set_scalar(lr_input, lr)?;
        }
        self.set_scalar(c1, 1.0 / (1.0 - beta1.powi(t)))?;
        self.set_scalar(c2, 1.0 / (1.0 - beta2.powi(t)))?;
        self.run_steps(Phase::SolverStep)?;
        for k in 0..self.variables.len() {
            let (m, v) = self.resident()?.step.moments[k];
            let (x, len) = self.variables[k];
            let roots = first + ADAM_ROOTS_PER_VARIABLE * k;
            for (root, input) in [(roots, m), (roots + 1, v), (roots + 3, x)] {
                self.device.copy(
                    self.outputs[root].at(0),
                    self.inputs[input as usize].at(0),
                    len,
                )?;
            }
        }
        Ok(())
    }

    /// x ← x + by·u, u the direction of the last [`Executor::step_adam`].
    pub fn shift(&mut self, by: f64) -> Result<(), ExecError> {
        let first = self.resident()?.step.first_root as usize;
        for k in 0..self.variables.len() {
            let (x, len) = self.variables[k];
            let u = self.outputs[first + ADAM_ROOTS_PER_VARIABLE * k + 2];
            self.device
                .axpy(by, u.at(0), self.inputs[x as usize].at(0), len)?;
        }
        Ok(())
    }

    /// Reads `out.len()` values of the flat point (variables in order) from `offset`: of the
    /// point on the device, or of the best one with `best`.
    pub fn read_point(
        &mut self,
        best: bool,
        offset: usize,
        out: &mut [f64],
    ) -> Result<(), ExecError> {
        self.check_span(offset, out.len())?;
        for k in 0..self.variables.len() {
            if let Some((range, at)) = self.piece(k, offset, out.len()) {
                let buf = match best {
                    true => self.resident()?.best[k],
                    false => self.inputs[self.variables[k].0 as usize],
                };
                self.device.download(buf.at(at), &mut out[range])?;
            }
        }
        Ok(())
    }

    /// Writes `values` into the flat point on the device from `offset`.
    pub fn write_point(&mut self, offset: usize, values: &[f64]) -> Result<(), ExecError> {
        check_range(self.plan.precision, &|| "the point".into(), values)?;
        self.check_span(offset, values.len())?;
        for k in 0..self.variables.len() {
            if let Some((range, at)) = self.piece(k, offset, values.len()) {
                let buf = self.inputs[self.variables[k].0 as usize];
                self.device.upload(buf.at(at), &values[range])?;
            }
        }
        Ok(())
    }

    /// Refuses values `offset..offset + len` beyond the flat point.
    fn check_span(&self, offset: usize, len: usize) -> Result<(), ExecError> {
        if offset + len > self.dim() {
            return Err(ExecError::Plan(format!(
                "values {offset}..{} of a point of {}",
                offset + len,
                self.dim()
            )));
        }
        Ok(())
    }

    /// Where the flat point's values `offset..offset + len` meet variable `k`: their range
    /// among those values and the offset in the variable (`None`: they miss it).
    fn piece(&self, k: usize, offset: usize, len: usize) -> Option<(Range<usize>, usize)> {
        let (start, n) = (self.starts[k], self.variables[k].1);
        let (from, to) = (offset.max(start), (offset + len).min(start + n));
        (from < to).then(|| (from - offset..to - offset, from - start))
    }
}

/// Flat vectors on the device, for L-BFGS ([`crate::solvers::Vectors`]): its point, gradients
/// and correction pairs stay there, and per iteration only scalars cross (values, dot products,
/// norms).
impl<D: Device> Executor<D> {
    /// Makes sure there are `count` flat vectors of the point's length (zeroed when new),
    /// numbered from 0.
    pub fn allocate_vectors(&mut self, count: usize) -> Result<(), ExecError> {
        let dim = self.dim();
        while self.vectors.len() < count {
            let buf = self.device.alloc(dim)?;
            self.vectors.push(buf);
        }
        Ok(())
    }

    fn vector(&self, slot: usize) -> Result<DevBuf, ExecError> {
        self.vectors
            .get(slot)
            .copied()
            .ok_or_else(|| ExecError::Plan(format!("vector {slot} of {}", self.vectors.len())))
    }

    /// The objective at vector `x`, its gradient (flat) into vector `g`: the point and the
    /// gradient are copied on the device, only the value is read back.
    pub fn evaluate_vector(&mut self, x: usize, g: usize) -> Result<f64, ExecError> {
        let (x, g) = (self.vector(x)?, self.vector(g)?);
        for (k, &(input, len)) in self.variables.iter().enumerate() {
            let to = self.inputs[input as usize].at(0);
            self.device.copy(x.at(self.starts[k]), to, len)?;
        }
        let value = self.rerun()?;
        for (k, &(_, len)) in self.variables.iter().enumerate() {
            let from = self.outputs[1 + k].at(0);
            self.device.copy(from, g.at(self.starts[k]), len)?;
        }
        Ok(value)
    }

    pub fn write_vector(&mut self, slot: usize, values: &[f64]) -> Result<(), ExecError> {
        check_range(self.plan.precision, &|| "the point".into(), values)?;
        self.check_span(0, values.len())?;
        let to = self.vector(slot)?;
        Ok(self.device.upload(to.at(0), values)?)
    }

    pub fn read_vector(&mut self, slot: usize, out: &mut [f64]) -> Result<(), ExecError> {
        self.check_span(0, out.len())?;
        let from = self.vector(slot)?;
        Ok(self.device.download(from.at(0), out)?)
    }

    pub fn vector_dot(&mut self, a: usize, b: usize) -> Result<f64, ExecError> {
        let (a, b, dim) = (self.vector(a)?, self.vector(b)?, self.dim());
        Ok(self.device.dot(a.at(0), b.at(0), dim)?)
    }

    pub fn vector_norm_inf(&mut self, a: usize) -> Result<f64, ExecError> {
        let (a, dim) = (self.vector(a)?, self.dim());
        Ok(self.device.max_abs(a.at(0), dim)?)
    }

    /// `y ← y + alpha·x`.
    pub fn vector_axpy(&mut self, alpha: f64, x: usize, y: usize) -> Result<(), ExecError> {
        let (x, y, dim) = (self.vector(x)?, self.vector(y)?, self.dim());
        Ok(self.device.axpy(alpha, x.at(0), y.at(0), dim)?)
    }

    /// `x ← alpha·x`.
    pub fn vector_scale(&mut self, alpha: f64, x: usize) -> Result<(), ExecError> {
        let (x, dim) = (self.vector(x)?, self.dim());
        Ok(self.device.scale(alpha, x.at(0), dim)?)
    }

    pub fn vector_copy(&mut self, from: usize, to: usize) -> Result<(), ExecError> {
        let (from, to, dim) = (self.vector(from)?, self.vector(to)?, self.dim());
        Ok(self.device.copy(from.at(0), to.at(0), dim)?)
    }

    /// The prox step ([`crate::plan::ProxStep`]) from vector `v` with step `step` into vector `out`; returns
    /// r at the result.
    pub fn prox_vector(&mut self, v: usize, step: f64, out: usize) -> Result<f64, ExecError> {
        let (v, out) = (self.vector(v)?, self.vector(out)?);
        let Some(DeviceSolver::ProxGrad { prox: Some(prox) }) = &self.plan.staged.solver else {
            return Err(ExecError::Plan("the plan has no prox step".into()));
        };
        for (k, &(_, len)) in self.variables.iter().enumerate() {
            let to = self.inputs[prox.points[k] as usize].at(0);
            self.device.copy(v.at(self.starts[k]), to, len)?;
        }
        check_range(self.plan.precision, &|| "the prox step".into(), &[step])?;
        self.device
            .upload(self.inputs[prox.step as usize].at(0), &[step])?;
        let first = prox.first_root as usize;
        self.run_steps(Phase::SolverStep)?;
        for (k, &(_, len)) in self.variables.iter().enumerate() {
            let from = self.outputs[first + k].at(0);
            self.device.copy(from, out.at(self.starts[k]), len)?;
        }
        let mut penalty = [0.0];
        let at = first + self.variables.len();
        self.device.download(self.outputs[at].at(0), &mut penalty)?;
        Ok(penalty[0])
    }
}

/// The device buffers of a matrix exponential of size `n × n`: one per [`PadeMatrix`], a
/// product's temporary, and the identity.
struct ExpmWorkspace {
    n: usize,
    matrices: [DevBuf; PADE_MATRICES],
    temporary: DevBuf,
    identity: DevBuf,
}

impl ExpmWorkspace {
    fn new<D: Device>(device: &mut D, n: usize) -> Result<ExpmWorkspace, ExecError> {
        let mut buffers = (0..PADE_MATRICES + 2)
            .map(|_| device.alloc(n * n))
            .collect::<Result<Vec<_>, _>>()?;
        let (temporary, identity) = (buffers[PADE_MATRICES], buffers[PADE_MATRICES + 1]);
        buffers.truncate(PADE_MATRICES);
        let matrices = buffers.try_into().expect("one buffer per matrix");
        let eye: Vec<f64> = (0..n * n).map(|k| f64::from(k % (n + 1) == 0)).collect();
        device.upload(identity.at(0), &eye)?;
        Ok(ExpmWorkspace {
            n,
            matrices,
            temporary,
            identity,
        })
    }
}

/// [`PadeSteps`] on device buffers: the products are matrix products of the device's library,
/// the combinations copies, scalings and axpys, the quotient an LU solve; the 1-norm is the
/// largest of the column sums of |A| that the plan's kernel wrote to `norms`.
struct DevicePade<'a, D: Device> {
    device: &'a mut D,
    work: &'a ExpmWorkspace,
    input: DevPtr,
    norms: DevPtr,
    out: DevPtr,
}

impl<D: Device> DevicePade<'_, D> {
    fn len(&self) -> usize {
        self.work.n * self.work.n
    }

    fn at(&self, m: PadeMatrix) -> DevPtr {
        self.work.matrices[m as usize].at(0)
    }

    fn gemm(&mut self, c: DevPtr, a: DevPtr, b: DevPtr) -> Result<(), ExecError> {
        let n = self.work.n;
        Ok(self.device.gemm(&Gemm {
            a,
            b,
            c,
            m: n,
            k: n,
            n,
            trans_a: false,
            trans_b: false,
        })?)
    }
}

impl<D: Device> PadeSteps for DevicePade<'_, D> {
    type Error = ExecError;

    fn norm1(&mut self) -> Result<f64, ExecError> {
        // The column sums are not negative: the largest magnitude is the largest sum.
        Ok(self.device.max_abs(self.norms, self.work.n)?)
    }

    fn scale_input(&mut self, factor: f64) -> Result<(), ExecError> {
        let (scaled, len) = (self.at(PadeMatrix::Scaled), self.len());
        self.device.copy(self.input, scaled, len)?;
        Ok(self.device.scale(factor, scaled, len)?)
    }

    fn product(
        &mut self,
        c: PadeMatrix,
        a: PadeMatrix,
        b: PadeMatrix,
        accumulate: bool,
    ) -> Result<(), ExecError> {
        let (a, b, c) = (self.at(a), self.at(b), self.at(c));
        if accumulate {
            let temporary = self.work.temporary.at(0);
            self.gemm(temporary, a, b)?;
            Ok(self.device.axpy(1.0, temporary, c, self.len())?)
        } else {
            self.gemm(c, a, b)
        }
    }

    fn combine(
        &mut self,
        out: PadeMatrix,
        terms: &[(f64, PadeMatrix)],
        identity: f64,
    ) -> Result<(), ExecError> {
        let (out, len) = (self.at(out), self.len());
        let ((c, first), rest) = terms
            .split_first()
            .ok_or_else(|| ExecError::Plan("an empty Padé combination".into()))?;
        self.device.copy(self.at(*first), out, len)?;
        self.device.scale(*c, out, len)?;
        for &(c, m) in rest {
            self.device.axpy(c, self.at(m), out, len)?;
        }
        if identity != 0.0 {
            self.device
                .axpy(identity, self.work.identity.at(0), out, len)?;
        }
        Ok(())
    }

    fn pade_quotient(&mut self) -> Result<bool, ExecError> {
        use PadeMatrix::*;
        let (n, len) = (self.work.n, self.len());
        let (inner, poly, u) = (self.at(Inner), self.at(Poly), self.at(U));
        self.device.copy(poly, inner, len)?;
        self.device.axpy(-1.0, u, inner, len)?;
        self.device.axpy(1.0, u, poly, len)?;
        self.device.lu_factor(inner, n, Pivoting::Partial)?;
        match self.device.lu_solve(poly, n, self.out) {
            Ok(()) => Ok(true),
            Err(DeviceError::Singular) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn square_output(&mut self) -> Result<(), ExecError> {
        let temporary = self.work.temporary.at(0);
        self.gemm(temporary, self.out, self.out)?;
        Ok(self.device.copy(temporary, self.out, self.len())?)
    }

    fn output_nan(&mut self) -> Result<(), ExecError> {
        let nan = vec![f64::NAN; self.len()];
        Ok(self.device.upload(self.out, &nan)?)
    }
}

/// Which steps [`Executor::run_steps`] runs.
#[derive(Clone, Copy)]
enum Phase {
    Evaluation,
    /// Adam's step or the prox step.
    SolverStep,
}
