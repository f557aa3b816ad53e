//! Command-line arguments of `optc` (clap).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "optc",
    version,
    about = "A compiler for optimization problems",
    long_about = "optc compiles .opt models (objectives, regularizers, constraints) to derivatives and \
                  native code, and solves them.\n\nExit codes: 0 success, 1 stopped at a limit, \
                  2 infeasible or diverged, 64 usage error, 65 model or data error, 66 input file \
                  missing, 69 backend unavailable on this machine, 70 internal error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and check a model; print diagnostics only.
    Check(CheckArgs),
    /// Print an intermediate form of a model (the sizes of the sized stages, from
    /// `grad-simplified` on, are bound as `optc run` binds them: `--dims`, `--data`, the model's
    /// own data files).
    Emit(EmitArgs),
    /// Evaluate the objective and constraints at the initial point.
    Eval(EvalArgs),
    /// Solve a model (a .opt source or a .optx artifact).
    Run(RunArgs),
    /// Compile a model into a .optx artifact to run elsewhere (`optc run FILE.optx`).
    Build(BuildArgs),
    /// Explain a diagnostic code, or the cost of a model (`--cost FILE`).
    Explain(ExplainArgs),
    /// Generate seeded synthetic data (DAGs from linear SEMs, regression, OT, denoising).
    Simulate(SimulateArgs),
    /// Compile time, and evaluations per second of value+gradient and Hessian-vector products
    /// on each backend (with `--dims`, data not given by `--data` are random).
    Bench(BenchArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorFormat {
    Human,
    Json,
}

/// Options every command that reads a model shares.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// The .opt model file (`eval`, `run`, `bench`: or a .optx artifact of `optc build`).
    pub file: PathBuf,
    /// How diagnostics are printed on stderr.
    #[arg(long, value_enum, default_value = "human")]
    pub error_format: ErrorFormat,
}

/// Data, parameter and dimension bindings.
#[derive(Args, Debug, Clone, Default)]
pub struct BindArgs {
    /// Bind a data array: NAME=PATH (.npy or .csv); overrides `load(...)` in the file.
    #[arg(long = "data", value_name = "NAME=PATH")]
    pub data: Vec<String>,
    /// Set a parameter: NAME=VALUE.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Set dimension sizes: n=1000,d=100 (repeatable).
    #[arg(long, value_name = "n=..,d=..")]
    pub dims: Vec<String>,
}

impl BindArgs {
    /// Whether any binding is given.
    pub fn any(&self) -> bool {
        !(self.data.is_empty() && self.params.is_empty() && self.dims.is_empty())
    }
}

/// The engine that evaluates the model (`--backend`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendArg {
    /// Native code from Cranelift (setup values computed once, per-iteration code compiled).
    Cpu,
    /// Native code through MLIR's execution engine (an optc built with `--features mlir`).
    MlirCpu,
    /// The reference interpreter.
    Interp,
    /// An NVIDIA GPU through the CUDA driver: the plan of a gpu artifact (`run`, `bench`).
    Gpu,
}

/// Why a backend cannot run.
pub enum Unavailable {
    /// Not compiled into this optc (a usage error).
    #[cfg(not(feature = "mlir"))]
    NotBuilt(&'static str),
    /// Not usable on this machine or in this build.
    Here(optc_compiler::diag::Diagnostic),
}

impl BackendArg {
    /// The backend, or why it cannot run.
    pub fn backend(self) -> Result<optc_runtime::model::Backend, Unavailable> {
        use optc_runtime::model::Backend;
        match self {
            BackendArg::Cpu => Ok(Backend::Cpu),
            BackendArg::Interp => Ok(Backend::Interp),
            #[cfg(feature = "mlir")]
            BackendArg::MlirCpu => Ok(Backend::MlirCpu),
            #[cfg(not(feature = "mlir"))]
            BackendArg::MlirCpu => Err(Unavailable::NotBuilt(WITHOUT_MLIR)),
            BackendArg::Gpu => Err(Unavailable::Here(optc_runtime::gpu::unavailable())),
        }
    }
}

/// What a command that needs the MLIR backend says in a build without it.
#[cfg(not(feature = "mlir"))]
pub const WITHOUT_MLIR: &str = "this optc was built without the MLIR backend; build it with `cargo build --release -p optc --features mlir` (after `bash scripts/install-mlir.sh`)";

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub model: ModelArgs,
}

/// A form `optc emit` prints, in pipeline order.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Ast,
    Typed,
    Ir,
    Grad,
    GradSimplified,
    Setup,
    Clif,
    /// MLIR text of the objective (builds with `--features mlir`).
    Mlir,
    /// PTX of the objective's pointwise kernels for sm_90 (builds with `--features mlir`).
    Ptx,
}

/// The element type of GPU kernels and device buffers.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrecisionArg {
    #[default]
    F64,
    /// Single precision: half the memory traffic, and the GPU's higher f32 throughput.
    F32,
}

impl From<PrecisionArg> for optc_compiler::launch::Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F64 => Self::F64,
            PrecisionArg::F32 => Self::F32,
        }
    }
}

#[derive(Args, Debug)]
pub struct EmitArgs {
    /// Which form to print.
    #[arg(long, value_enum)]
    pub stage: Stage,
    /// Element type of the kernels of `--stage ptx`.
    #[arg(long, value_enum, default_value = "f64")]
    pub precision: PrecisionArg,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub bind: BindArgs,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub bind: BindArgs,
    /// Which engine evaluates the model.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendArg,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Compare the gradient and Hessian-vector products with central finite differences.
    #[arg(long)]
    pub check_grad: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub bind: BindArgs,
    /// Which engine evaluates the model.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendArg,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write result.json and one .npy per variable and output into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// No progress table.
    #[arg(short, long)]
    pub quiet: bool,
    /// Compare the gradient and Hessian-vector products with central finite differences
    /// before solving.
    #[arg(long)]
    pub check_grad: bool,
    /// Print the time of each compiler stage, of code generation and of the solve.
    #[arg(long)]
    pub timings: bool,
    /// Solve with this method (lbfgs, fista, adam, auglag, path, colide, dual, maid) instead of
    /// the model's `solve with` (whose options are dropped) or optc's choice.
    #[arg(long, value_name = "NAME")]
    pub method: Option<String>,
    /// Override the solver's iteration limit.
    #[arg(long)]
    pub max_iter: Option<usize>,
    /// Override the solver's tolerance.
    #[arg(long)]
    pub tol: Option<f64>,
    /// Evaluate the derivatives as differentiated, without e-graph simplification.
    #[arg(long)]
    pub no_simplify: bool,
}

/// What `optc build` compiles for.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetArg {
    /// The IR after the front end; native code is generated where the artifact runs.
    Cpu,
    /// As `cpu`, plus the PTX of the value and gradient kernels at `--dims` (builds with
    /// `--features mlir`).
    Gpu,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The artifact to write (by convention FILE.optx).
    #[arg(short, long, value_name = "OUT.optx")]
    pub output: PathBuf,
    /// The machine the artifact is for.
    #[arg(long, value_enum, default_value = "cpu")]
    pub target: TargetArg,
    /// Fix dimension sizes (the defaults of `optc run`'s `--dims`; the sizes of the GPU kernels).
    #[arg(long, value_name = "n=..,d=..")]
    pub dims: Vec<String>,
    /// Element type of the GPU kernels and device buffers (`--target gpu`); the solver on the
    /// host works in f64 either way.
    #[arg(long, value_enum, default_value = "f64")]
    pub precision: PrecisionArg,
    /// Print the time of each stage (front end; with `--target gpu` staging and PTX; writing).
    #[arg(long)]
    pub timings: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub bind: BindArgs,
    /// Only this backend (default: cpu and interp).
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Time spent measuring each function on each backend, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub time_ms: u64,
    /// Benchmark the derivatives as differentiated, without e-graph simplification.
    #[arg(long)]
    pub no_simplify: bool,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// A diagnostic code such as E0101.
    pub code: Option<String>,
    /// List every diagnostic code.
    #[arg(long, conflicts_with_all = ["code", "cost"])]
    pub list: bool,
    /// Explain the per-iteration cost of this model instead (at the sizes `optc run` binds).
    #[arg(long, value_name = "FILE", conflicts_with = "code")]
    pub cost: Option<PathBuf>,
    /// The bindings of `--cost`'s model.
    #[command(flatten)]
    pub bind: BindArgs,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// How diagnostics about `--cost`'s model are printed on stderr.
    #[arg(long, value_enum, default_value = "human")]
    pub error_format: ErrorFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimKind {
    Dag,
    Regression,
    Ot,
    Denoise,
    Portfolio,
    Isotonic,
    /// A Gaussian graphical model (sparse precision matrix).
    Ggm,
}

impl SimKind {
    /// The flags that select this kind's data (besides `--seed` and `--out`).
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            SimKind::Dag => &[
                "--graph",
                "--d",
                "--edges",
                "--n",
                "--noise",
                "--unequal-variance",
            ],
            SimKind::Regression | SimKind::Portfolio => &["--n", "--p"],
            SimKind::Ot => &["--p"],
            SimKind::Denoise | SimKind::Isotonic => &["--n"],
            SimKind::Ggm => &["--n", "--p", "--edges"],
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphKind {
    #[value(name = "ER")]
    Er,
    #[value(name = "SF")]
    Sf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseKind {
    Gauss,
    Exp,
    Gumbel,
    Laplace,
}

/// `optc simulate`'s flags; each kind takes those its documentation names (see
/// [`SimKind::flags`]), and sizes not given take the defaults shown.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    #[arg(value_enum)]
    pub kind: SimKind,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// DAG: graph model [default: ER].
    #[arg(long, value_enum)]
    pub graph: Option<GraphKind>,
    /// DAG: number of nodes [default: 10].
    #[arg(long)]
    pub d: Option<usize>,
    /// DAG: expected number of edges (default 2·d); GGM: of the precision's graph (default p).
    #[arg(long)]
    pub edges: Option<usize>,
    /// Number of samples (DAG, regression, isotonic, GGM), signal length (denoise) or periods
    /// (portfolio) [default: 200].
    #[arg(long)]
    pub n: Option<usize>,
    /// DAG: noise distribution [default: gauss].
    #[arg(long, value_enum)]
    pub noise: Option<NoiseKind>,
    /// DAG: unequal noise variances (U[0.5, 10]).
    #[arg(long)]
    pub unequal_variance: bool,
    /// Regression: number of features; OT: number of sources/targets; portfolio: assets; GGM:
    /// variables [default: 20].
    #[arg(long)]
    pub p: Option<usize>,
}

impl SimulateArgs {
    /// The flags given on the command line that `--seed` and `--out` aside select data.
    pub fn given(&self) -> Vec<&'static str> {
        let flags = [
            ("--graph", self.graph.is_some()),
            ("--d", self.d.is_some()),
            ("--edges", self.edges.is_some()),
            ("--n", self.n.is_some()),
            ("--noise", self.noise.is_some()),
            ("--unequal-variance", self.unequal_variance),
            ("--p", self.p.is_some()),
        ];
        flags.iter().filter(|f| f.1).map(|f| f.0).collect()
    }
}
