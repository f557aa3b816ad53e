//! The GPU backend: runs the staged plan of a `gpu` artifact ([`plan::GpuPlan`], written by
//! `optc build --target gpu` with the `mlir` feature) on a [`device::Device`].
//!
//! - [`device`]: what the executor needs from a device (buffers, copies, PTX launches, gemm, LU);
//! - [`exec`]: the executor (setup once per solve, value and gradient per evaluation; for the
//!   path's Adam stages and for L-BFGS, the iterates kept on the device);
//! - `cuda` (feature `cuda`): the device on an NVIDIA GPU through `cudarc` (driver API, cuBLAS,
//!   cuSOLVER, all loaded at run time: nothing CUDA is needed to build optc);
//! - [`mod@reference`]: the same device interface in host memory, with the kernels run by the
//!   interpreter, so the executor is tested on machines without a GPU;
//! - [`build`]: the plan of an artifact (its PTX with the `mlir` feature).
//!
//! A GPU run needs the NVIDIA driver's `libcuda`; it is looked for before anything touches CUDA
//! (cudarc panics without it), so its absence is a coded error, never a crash.

pub mod build;
pub mod device;
pub mod exec;
pub mod plan;
pub mod reference;

#[cfg(feature = "cuda")]
pub mod cuda;

use crate::artifact::{self, Artifact};
use crate::interp::Bindings;
use crate::solvers::Slot;
use device::Device;
use exec::{ExecError, Executor};
use optc_compiler::codes::CodeInfo;
use optc_compiler::diag::Diagnostic;
use std::time::{Duration, Instant};

pub const NO_DRIVER: &str = "E0380";
pub const NOT_IN_BUILD: &str = "E0381";
pub const DIMS_DIFFER: &str = "E0382";
pub const NEEDS_GPU_ARTIFACT: &str = "E0383";
pub const DEVICE_FAILED: &str = "E0384";
pub const METHOD_NOT_ON_GPU: &str = "E0385";
pub const OUTSIDE_F32: &str = "E0386";

/// Catalogue entries of GPU backend errors (E0380–E0389).
pub const GPU_CODES: &[CodeInfo] = &[
    CodeInfo {
        code: NO_DRIVER,
        title: "no CUDA driver found",
        explanation: "`--backend gpu` needs the NVIDIA driver's library `libcuda.so.1` (installed with the NVIDIA driver, not with the CUDA toolkit), and none was found on the library search path. Run on the machine with the GPU, or use `--backend cpu`.",
    },
    CodeInfo {
        code: NOT_IN_BUILD,
        title: "GPU runtime not available in this build",
        explanation: "The CUDA driver was found, but this optc was built without its GPU runtime (cargo feature `cuda`, on by default). Rebuild optc with default features, or use `--backend cpu`.",
    },
    CodeInfo {
        code: DIMS_DIFFER,
        title: "dimension sizes differ from the GPU artifact's",
        explanation: "A `gpu` artifact's kernels, buffers and launch sizes are planned at the dimension sizes given to `optc build --target gpu --dims ...` (or the model's defaults). Run it with those sizes (data of those shapes, `--dims` equal to them), or build another artifact for the new sizes.",
    },
    CodeInfo {
        code: NEEDS_GPU_ARTIFACT,
        title: "`--backend gpu` needs a gpu artifact",
        explanation: "The GPU backend runs the staged plan and PTX kernels of an artifact built with `optc build FILE.opt -o FILE.optx --target gpu` (by an optc with the `mlir` feature), in `optc bench` and `optc run`. A `.opt` source, a `cpu` artifact, or `optc eval` cannot run on it yet.",
    },
    CodeInfo {
        code: DEVICE_FAILED,
        title: "GPU device error",
        explanation: "A call to the CUDA driver, cuBLAS or cuSOLVER failed (a missing library such as libcublas or libcusolver, out of device memory, a kernel the driver rejects). The message gives CUDA's own error.",
    },
    CodeInfo {
        code: METHOD_NOT_ON_GPU,
        title: "the GPU plan lacks this problem's solver functions",
        explanation: "`optc run ART.optx --backend gpu` evaluates the solver's functions on the GPU and runs the solver on the host. That covers problems without constraints solved by `lbfgs`, projected `lbfgs` (bounds on the variables) or `adam`, whose merit is the objective itself; the central path (`solve with path(...)`, DAGMA, Adam or L-BFGS-B stages, and `colide`), whose stage merit μ·f(W) + h(W/√s), domain guard and h (and CoLiDE's noise-scale slopes) the artifact computes; the augmented Lagrangian (`auglag`), whose merit (with its multipliers and penalty as inputs) and gradient, objective without its L1 terms and constraint values the artifact computes; and proximal gradient (`fista`), whose objective without its prox terms the artifact computes. An artifact whose plan lacks the solver's functions (one written for another solver) is refused: rebuild it with `optc build --target gpu`, or use `--backend cpu`.",
    },
    CodeInfo {
        code: OUTSIDE_F32,
        title: "a value outside the range of f32",
        explanation: "An artifact built with `--precision f32` keeps its data, setup values and variables in single precision on the GPU. A finite value beyond ±3.4e38 (in the data, a parameter, a value computed from them once per solve, or the point a solver evaluates at) would become infinite there, so it is refused instead of being computed with. Build the artifact with `--precision f64` (the default), or rescale the data.",
    },
];

/// Names under which the driver library is looked for, most specific first.
const DRIVER_NAMES: &[&str] = &["libcuda.so.1", "libcuda.so"];

/// Environment variable that selects the device: `reference` runs the plan on the host
/// reference device (kernels by the interpreter), without a GPU; anything else, the CUDA device.
pub const DEVICE_ENV: &str = "OPTC_GPU_DEVICE";

/// Whether the CUDA driver library can be loaded on this machine.
pub fn driver_present() -> bool {
    DRIVER_NAMES.iter().any(|name| {
        // SAFETY: loading the NVIDIA driver library runs only its own initializers; nothing is
        // called from it and it is unloaded when the handle drops.
        unsafe { libloading::Library::new(name) }.is_ok()
    })
}

fn no_driver() -> Diagnostic {
    Diagnostic::error(
        NO_DRIVER,
        "no CUDA driver found (libcuda.so.1 is not on the library search path)",
    )
    .with_hint(
        "run on a machine with an NVIDIA GPU and its driver installed, or use `--backend cpu`",
    )
}

/// Why `--backend gpu` cannot run a `.opt` source or `optc eval`: the command needs a gpu
/// artifact (as for a cpu artifact), with a note when this machine has no driver either.
pub fn unavailable() -> Diagnostic {
    let d = Diagnostic::error(
        NEEDS_GPU_ARTIFACT,
        "`--backend gpu` runs gpu artifacts (`optc build --target gpu`) in `optc run` and `optc bench` (not `eval` yet)",
    )
    .with_hint(
        "build one with `optc build FILE.opt -o FILE.optx --target gpu`, or use `--backend cpu`",
    );
    match driver_present() || reference_chosen() {
        true => d,
        false => d.with_note(no_driver().message),
    }
}

/// Whether the device chosen by [`DEVICE_ENV`] is the host reference device.
fn reference_chosen() -> bool {
    std::env::var(DEVICE_ENV).is_ok_and(|v| v == "reference")
}

/// Checks, before any data is read, that `artifact` can run on the GPU here with the dim sizes
/// `given` on the command line: a gpu artifact with a plan (E0383), `given` equal to its
/// build-time sizes (E0382), a driver (E0380) and the GPU runtime in this build (E0381).
pub fn check_artifact(artifact: &Artifact, given: &[(String, u64)]) -> Result<(), Diagnostic> {
    if artifact.target != artifact::Target::Gpu || artifact.gpu.is_none() {
        return Err(Diagnostic::error(
            NEEDS_GPU_ARTIFACT,
            format!(
                "`--backend gpu` needs a gpu artifact, and this is a {} artifact without a GPU plan",
                artifact.target.name()
            ),
        )
        .with_hint("build one with `optc build FILE.opt -o FILE.optx --target gpu`"));
    }
    for (name, size) in given {
        let built = artifact.dims.iter().find(|(n, _)| n == name).map(|d| d.1);
        if built != Some(*size) {
            return Err(Diagnostic::error(
                DIMS_DIFFER,
                format!(
                    "`--dims {name}={size}`, but the gpu artifact was built for {name}={}",
                    built.map_or("its default".to_string(), |b| b.to_string())
                ),
            )
            .with_hint("drop `--dims`, or build an artifact for these sizes with `optc build --target gpu --dims ...`"));
        }
    }
    if reference_chosen() {
        return Ok(());
    }
    if !driver_present() {
        return Err(no_driver());
    }
    if cfg!(feature = "cuda") {
        Ok(())
    } else {
        Err(Diagnostic::error(
            NOT_IN_BUILD,
            "a CUDA driver is present, but this optc was built without its GPU runtime (feature `cuda`)",
        )
        .with_hint("rebuild optc with default features, or use `--backend cpu`"))
    }
}

impl From<ExecError> for Diagnostic {
    fn from(e: ExecError) -> Diagnostic {
        match e {
            ExecError::Dims { .. } => Diagnostic::error(DIMS_DIFFER, e.to_string()).with_hint(
                "bind data of the artifact's build-time shapes, or build an artifact for these sizes",
            ),
            ExecError::Plan(_) => Diagnostic::error(artifact::CORRUPT, e.to_string())
                .with_hint("rebuild the artifact with `optc build --target gpu`"),
            ExecError::Device(_) => Diagnostic::error(DEVICE_FAILED, e.to_string()),
            ExecError::Eval(e) => e.into(),
            ExecError::Range { .. } => Diagnostic::error(OUTSIDE_F32, e.to_string()).with_hint(
                "build the artifact with `--precision f64`, or rescale the data",
            ),
        }
    }
}

/// The device [`DEVICE_ENV`] chooses: the CUDA device (the first GPU), or the reference device.
fn device() -> Result<Box<dyn Device>, ExecError> {
    if reference_chosen() {
        return Ok(Box::new(reference::ReferenceDevice::new()));
    }
    #[cfg(feature = "cuda")]
    {
        if driver_present() {
            return Ok(Box::new(cuda::CudaDevice::new(0)?));
        }
    }
    Err(ExecError::Device(device::DeviceError::Library(
        "no CUDA driver, or no GPU runtime in this build".into(),
    )))
}

/// Loads the artifact's plan and kernels on the chosen device and uploads the data of
/// `bindings` (after [`check_artifact`]).
pub fn open(
    artifact: &Artifact,
    bindings: &Bindings,
) -> Result<Executor<Box<dyn Device>>, Diagnostic> {
    let plan = artifact
        .gpu
        .clone()
        .ok_or_else(|| Diagnostic::error(NEEDS_GPU_ARTIFACT, "the artifact has no GPU plan"))?;
    let kernels: Vec<(String, String)> = artifact
        .kernels
        .iter()
        .map(|k| (k.name.clone(), k.ptx.clone()))
        .collect();
    Ok(guarded(|| {
        Executor::new(device()?, plan, &kernels, bindings)
    })?)
}

/// Runs `f`, turning a panic inside it (cudarc panics when a CUDA library or symbol it needs is
/// missing) into a device error.
fn guarded<T>(f: impl FnOnce() -> Result<T, ExecError>) -> Result<T, ExecError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a CUDA library call panicked");
        Err(ExecError::Device(device::DeviceError::Library(
            why.to_string(),
        )))
    })
}

/// The executor as the solvers' other device ([`crate::plan::solve_external`]): a panic of a
/// CUDA library is a device error, and a non-positive determinant or singular matrix (outside
/// the merit's domain) gives NaN values.
impl<D: Device> crate::plan::External for Executor<D> {
    fn solver(&self) -> Option<&crate::plan::DeviceSolver> {
        Executor::solver(self)
    }

    fn set_path(&mut self, mu: f64, inv_sqrt_s: f64) -> Result<(), Diagnostic> {
        Ok(guarded(|| Executor::set_path(self, mu, inv_sqrt_s))?)
    }

    fn set_multipliers(&mut self, alpha: &[f64], rho: f64) -> Result<(), Diagnostic> {
        Ok(guarded(|| Executor::set_multipliers(self, alpha, rho))?)
    }

    fn eval(&mut self, x: &[f64], g: &mut [f64], rest: &mut [f64]) -> Result<f64, Diagnostic> {
        let value = guarded(|| {
            let value = self.evaluate(x, g)?;
            self.rest_roots(rest)?;
            Ok(value)
        });
        undefined_is_nan(value, &mut [g, rest])
    }

    fn adam(&mut self) -> Option<&mut dyn crate::plan::DeviceAdam> {
        match self.adam_step() {
            Some(_) => Some(self),
            None => None,
        }
    }

    fn vectors(&mut self) -> Option<&mut dyn crate::plan::DeviceVectors> {
        use crate::plan::DeviceSolver;
        match Executor::solver(self) {
            None | Some(DeviceSolver::ProxGrad { prox: Some(_) }) => Some(self),
            Some(_) => None,
        }
    }
}

/// A point where the functions are undefined (a non-positive determinant, a singular matrix)
/// gives NaN values (`values` filled with NaN), other errors their diagnostic.
fn undefined_is_nan(
    value: Result<f64, ExecError>,
    values: &mut [&mut [f64]],
) -> Result<f64, Diagnostic> {
    match value {
        Ok(value) => Ok(value),
        Err(ExecError::Eval(
            crate::interp::EvalError::LogdetDomain { .. }
            | crate::interp::EvalError::Singular { .. },
        )) => {
            values.iter_mut().for_each(|v| v.fill(f64::NAN));
            Ok(f64::NAN)
        }
        Err(e) => Err(e.into()),
    }
}

/// The executor keeps the path's Adam iterates when its plan computes Adam's step.
impl<D: Device> crate::plan::DeviceAdam for Executor<D> {
    fn start(&mut self, x0: &[f64], c: crate::solvers::AdamConstants) -> Result<(), Diagnostic> {
        Ok(guarded(|| self.start_adam(x0, c.beta1, c.beta2, c.eps))?)
    }
    fn eval(&mut self, rest: &mut [f64]) -> Result<f64, Diagnostic> {
        let value = guarded(|| {
            let value = self.rerun()?;
            self.rest_roots(rest)?;
            Ok(value)
        });
        undefined_is_nan(value, &mut [rest])
    }
    fn optimality(&mut self) -> Result<f64, Diagnostic> {
        Ok(guarded(|| self.gradient_norm())?)
    }
    fn record(&mut self, value: f64) -> Result<(), Diagnostic> {
        Ok(guarded(|| Executor::record(self, value))?)
    }
    fn step(&mut self, lr: f64) -> Result<(), Diagnostic> {
        Ok(guarded(|| self.step_adam(lr))?)
    }
    fn shift(&mut self, by: f64) -> Result<(), Diagnostic> {
        Ok(guarded(|| Executor::shift(self, by))?)
    }
    fn best_value(&self) -> f64 {
        Executor::best_value(self)
    }
    fn read(&mut self, best: bool, offset: usize, out: &mut [f64]) -> Result<(), Diagnostic> {
        Ok(guarded(|| self.read_point(best, offset, out))?)
    }
    fn write(&mut self, offset: usize, values: &[f64]) -> Result<(), Diagnostic> {
        Ok(guarded(|| self.write_point(offset, values))?)
    }
    fn restore_best(&mut self) -> Result<(), Diagnostic> {
        Ok(guarded(|| Executor::restore_best(self))?)
    }
}

/// The executor keeps L-BFGS's vectors when its plan computes the objective, and proximal
/// gradient's when it computes the prox step.
impl<D: Device> crate::plan::DeviceVectors for Executor<D> {
    fn allocate(&mut self, count: usize) -> Result<(), Diagnostic> {
        Ok(guarded(|| self.allocate_vectors(count))?)
    }
    fn write(&mut self, slot: Slot, values: &[f64]) -> Result<(), Diagnostic> {
        Ok(guarded(|| self.write_vector(slot.0, values))?)
    }
    fn read(&mut self, slot: Slot, out: &mut [f64]) -> Result<(), Diagnostic> {
        Ok(guarded(|| self.read_vector(slot.0, out))?)
    }
    fn value_grad(&mut self, x: Slot, g: Slot) -> Result<f64, Diagnostic> {
        undefined_is_nan(guarded(|| self.evaluate_vector(x.0, g.0)), &mut [])
    }
    fn dot(&mut self, a: Slot, b: Slot) -> Result<f64, Diagnostic> {
        Ok(guarded(|| self.vector_dot(a.0, b.0))?)
    }
    fn norm_inf(&mut self, a: Slot) -> Result<f64, Diagnostic> {
        Ok(guarded(|| self.vector_norm_inf(a.0))?)
    }
    fn axpy(&mut self, alpha: f64, x: Slot, y: Slot) -> Result<(), Diagnostic> {
        Ok(guarded(|| self.vector_axpy(alpha, x.0, y.0))?)
    }
    fn scale(&mut self, alpha: f64, x: Slot) -> Result<(), Diagnostic> {
        Ok(guarded(|| self.vector_scale(alpha, x.0))?)
    }
    fn copy(&mut self, from: Slot, to: Slot) -> Result<(), Diagnostic> {
        Ok(guarded(|| self.vector_copy(from.0, to.0))?)
    }
    fn prox(&mut self, v: Slot, step: f64, out: Slot) -> Result<f64, Diagnostic> {
        Ok(guarded(|| self.prox_vector(v.0, step, out.0))?)
    }
}

/// What [`measure`] found.
pub struct Measured {
    /// The merit and its gradient at the point.
    pub value: f64,
    pub gradient: Vec<f64>,
    /// Value+gradient evaluations per second with the point and the gradient kept on the device
    /// (only the merit read back: [`Executor::rerun`]).
    pub resident_per_s: f64,
    /// The same, uploading the point and downloading the gradient each time, as a solver on the
    /// host does ([`Executor::value_grad`]).
    pub with_transfers_per_s: f64,
    /// For a plan with Adam's step ([`crate::plan::AdamStep`]): the path's Adam steps per second
    /// with the iterates on the device, each as the solver takes it (evaluate, read the merit,
    /// the other roots and ‖∇‖∞, record, step), with a learning rate of 0 so that the point
    /// stays.
    pub adam_steps_per_s: Option<f64>,
}

/// The merit and its gradient at `x`, then value+gradient evaluations (and Adam steps) per
/// second at `x`, each way measured for about `budget` after that first evaluation (the device
/// is drained at the end of each).
pub fn measure<D: Device>(
    executor: &mut Executor<D>,
    x: &[f64],
    budget: Duration,
) -> Result<Measured, ExecError> {
    let rate = |executor: &mut Executor<D>,
                once: &mut dyn FnMut(&mut Executor<D>) -> Result<(), ExecError>| {
        let start = Instant::now();
        let mut count = 0u64;
        while count == 0 || start.elapsed() < budget {
            once(executor)?;
            count += 1;
        }
        executor.synchronize()?;
        Ok::<f64, ExecError>(count as f64 / start.elapsed().as_secs_f64())
    };
    guarded(|| {
        let (value, gradient) = executor.value_grad(x)?;
        executor.synchronize()?;
        let with_transfers_per_s = rate(executor, &mut |e| e.value_grad(x).map(|_| ()))?;
        // The last evaluation was at `x`: it is on the device.
        let resident_per_s = rate(executor, &mut |e| e.rerun().map(|_| ()))?;
        let adam_steps_per_s = match executor.adam_step() {
            Some(_) => {
                let defaults = crate::solvers::PathOptions::default();
                executor.start_adam(x, defaults.beta1, defaults.beta2, defaults.eps)?;
                let mut rest = vec![0.0; executor.rest_len()];
                Some(rate(executor, &mut |e| {
                    let value = e.rerun()?;
                    e.rest_roots(&mut rest)?;
                    e.gradient_norm()?;
                    e.record(value)?;
                    e.step_adam(0.0)
                })?)
            }
            None => None,
        };
        Ok(Measured {
            value,
            gradient,
            resident_per_s,
            with_transfers_per_s,
            adam_steps_per_s,
        })
    })
}
