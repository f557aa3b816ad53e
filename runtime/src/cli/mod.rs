//! Commands of the `optc` tool. Each returns the process exit code.

pub mod args;
mod bind;
mod report;

use optc_runtime::artifact::{self, Artifact};
use optc_runtime::model::{self, BindSpec, Model};

use args::{Cli, Command, ErrorFormat, ModelArgs, Unavailable};
use optc_compiler::derive;
use optc_compiler::diag::{Diagnostic, Severity, SourceMap};
use optc_compiler::driver::{self, Compiled, Until};

/// Exit codes, documented in README.md and spec/cli.md.
pub const EXIT_OK: u8 = 0;
pub const EXIT_LIMIT: u8 = 1;
pub const EXIT_INFEASIBLE: u8 = 2;
pub const EXIT_USAGE: u8 = 64;
pub const EXIT_MODEL: u8 = 65;
pub const EXIT_NO_INPUT: u8 = 66;
pub const EXIT_UNAVAILABLE: u8 = 69;
pub const EXIT_INTERNAL: u8 = 70;

pub fn dispatch(cli: Cli) -> u8 {
    let result = match cli.command {
        Command::Check(a) => check(&a.model),
        Command::Emit(a) => emit(&a),
        Command::Explain(a) => explain(&a),
        Command::Eval(a) => eval(&a),
        Command::Simulate(a) => simulate(&a),
        Command::Run(a) => run(&a),
        Command::Build(a) => build(&a),
        Command::Bench(a) => bench(&a),
    };
    result.unwrap_or_else(|code| code)
}

/// What a model file holds: a source, or an artifact of `optc build` (told apart by its magic).
enum Input {
    Source(String),
    Artifact(Box<Artifact>),
}

/// Reads a model file; on failure prints the diagnostic and gives the exit code.
fn read_input(model: &ModelArgs) -> Result<Input, u8> {
    let path = model.file.display().to_string();
    let unreadable = |e: std::io::Error| {
        let d = driver::unreadable_file(&path, &e);
        report::print_diagnostics(&[d], &SourceMap::new(), model.error_format);
        if e.kind() == std::io::ErrorKind::NotFound {
            EXIT_NO_INPUT
        } else {
            EXIT_MODEL
        }
    };
    let bytes = std::fs::read(&model.file).map_err(unreadable)?;
    if artifact::is_artifact(&bytes) {
        return match artifact::decode(&bytes) {
            Ok(a) => Ok(Input::Artifact(Box::new(a))),
            Err(e) => {
                let d = Diagnostic::from(e).with_note(format!("in artifact {path}"));
                report::print_diagnostics(&[d], &SourceMap::new(), model.error_format);
                Err(EXIT_MODEL)
            }
        };
    }
    String::from_utf8(bytes)
        .map(Input::Source)
        .map_err(|e| unreadable(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Compiles the source `text` of `model` as far as asked; on failure prints the diagnostics and
/// gives the exit code.
fn compile_text(model: &ModelArgs, text: &str, until: Until) -> Result<Compiled, u8> {
    match driver::compile(&model.file.display().to_string(), text, until) {
        Ok(c) => {
            report::print_diagnostics(&c.warnings, &c.sources, model.error_format);
            Ok(c)
        }
        Err(failed) => {
            report::print_diagnostics(&failed.diagnostics, &failed.sources, model.error_format);
            Err(EXIT_MODEL)
        }
    }
}

/// Reads and compiles a model source as far as asked (commands that need the source itself).
fn compile(model: &ModelArgs, until: Until) -> Result<Compiled, u8> {
    match read_input(model)? {
        Input::Source(text) => compile_text(model, &text, until),
        Input::Artifact(_) => {
            eprintln!(
                "error: {} is an optc artifact; this command needs the .opt source (artifacts run with `optc run`, `eval` and `bench`)",
                model.file.display()
            );
            Err(EXIT_USAGE)
        }
    }
}

/// A model after the front end, from its source or from an artifact.
struct Front {
    program: optc_compiler::ir::Program,
    /// What diagnostics point into (empty for an artifact: IR diagnostics carry no spans).
    sources: SourceMap,
    /// Time of each front-end stage (reading the artifact instead, for one).
    timings: Vec<(&'static str, std::time::Duration)>,
    /// The directory `load("...")` paths are relative to.
    data_dir: std::path::PathBuf,
    /// Dimension sizes fixed by `optc build --dims`.
    dims: Vec<(String, u64)>,
}

fn front_end(m: &ModelArgs) -> Result<Front, u8> {
    let start = std::time::Instant::now();
    match read_input(m)? {
        Input::Source(text) => {
            let mut c = compile_text(m, &text, Until::Ir)?;
            Ok(Front {
                program: c.program.take().expect("ir stage"),
                sources: c.sources,
                timings: c.timings,
                data_dir: source_dir(&m.file),
                dims: Vec::new(),
            })
        }
        Input::Artifact(a) => Ok(Front {
            program: a.program,
            sources: SourceMap::new(),
            timings: vec![("artifact", start.elapsed())],
            // Where the source was built, or (on another machine) beside the artifact.
            data_dir: Some(std::path::PathBuf::from(a.source_dir))
                .filter(|d| d.is_dir())
                .unwrap_or_else(|| source_dir(&m.file)),
            dims: a.dims,
        }),
    }
}

/// The directory of a source file (paths in `load` are relative to it).
fn source_dir(file: &std::path::Path) -> std::path::PathBuf {
    file.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf()
}

fn check(model: &ModelArgs) -> Result<u8, u8> {
    let c = compile(model, Until::Ir)?;
    // The solve's plan too: what needs no data (the method, what it can take, kinks).
    match optc_runtime::plan::choose(c.program.as_ref().expect("ir stage")) {
        Ok(plan) => report::print_diagnostics(&plan.warnings, &c.sources, model.error_format),
        Err(errors) => {
            report::print_diagnostics(&errors, &c.sources, model.error_format);
            return Err(EXIT_MODEL);
        }
    }
    if model.error_format == ErrorFormat::Human {
        eprintln!("{}: ok", model.file.display());
    }
    Ok(EXIT_OK)
}

fn emit(a: &args::EmitArgs) -> Result<u8, u8> {
    use args::Stage;
    if a.stage != Stage::Ptx && a.precision != args::PrecisionArg::F64 {
        eprintln!("error: `--precision` sets the element type of `--stage ptx` kernels");
        return Err(EXIT_USAGE);
    }
    let sized = a.stage >= Stage::GradSimplified;
    if !sized && a.bind.any() {
        eprintln!(
            "error: `--data`, `--param` and `--dims` bind the sizes of stages grad-simplified, \
             setup, clif, mlir and ptx; `--stage {}` does not depend on them",
            clap::ValueEnum::to_possible_value(&a.stage)
                .expect("no skipped stages")
                .get_name()
        );
        return Err(EXIT_USAGE);
    }
    let text = match a.stage {
        Stage::Ast => optc_compiler::syntax::ast_to_text(&compile(&a.model, Until::Ast)?.ast),
        Stage::Typed => {
            let c = compile(&a.model, Until::Typed)?;
            optc_compiler::sema::typed_to_text(c.typed.as_ref().expect("typed stage"))
        }
        Stage::Ir => {
            let c = compile(&a.model, Until::Ir)?;
            optc_compiler::ir::print_program(c.program.as_ref().expect("ir stage"))
        }
        Stage::Grad | Stage::GradSimplified | Stage::Setup => {
            let c = compile(&a.model, Until::Ir)?;
            let spec = bind_spec(&a.bind)?;
            // The data inputs show the files `--data` binds, as `run` reads them.
            let mut program = c.program.clone().expect("ir stage");
            for input in &mut program.inputs {
                if let Some((_, path)) = spec.data.iter().find(|(name, _)| *name == input.name) {
                    let path = path.display().to_string();
                    input.source = Some(optc_compiler::ir::DataSource::File(path));
                }
            }
            let program = &program;
            let derived = derive::differentiate(program)
                .map_err(|e| derive_failed(&e, program, &c.sources, &a.model))?;
            if a.stage == Stage::Grad {
                derived.text()
            } else {
                let sizes = plan_dims(program, &a.model, &c.sources, &spec)?;
                let s = derive::simplify(&derived, &sizes).map_err(|e| internal(&e))?;
                if a.stage == Stage::GradSimplified {
                    s.derived.text()
                } else {
                    derive::staged_text(&s.derived, &derive::stage(&s.derived))
                }
            }
        }
        Stage::Clif | Stage::Mlir | Stage::Ptx => {
            #[cfg(not(feature = "mlir"))]
            if a.stage != Stage::Clif {
                eprintln!("error: {}", args::WITHOUT_MLIR);
                return Err(EXIT_USAGE);
            }
            // The native code of the objective's value at the sizes `run` would bind.
            let c = compile(&a.model, Until::Ir)?;
            let program = c.program.as_ref().expect("ir stage");
            let sizes = plan_dims(program, &a.model, &c.sources, &bind_spec(&a.bind)?)?;
            let Some(objective) = &program.objective else {
                // The front end refuses a model without an objective (E0131).
                return Err(internal(&"a checked model without an objective"));
            };
            native_text(a.stage, program, objective.node, &sizes, a.precision.into())
                .map_err(|e| not_compilable(e, &c.sources, &a.model))?
        }
    };
    print!("{text}");
    Ok(EXIT_OK)
}

/// E0390 (exit 65): a native backend refused a function, for the reason `message`.
fn not_compilable(message: String, sources: &SourceMap, m: &ModelArgs) -> u8 {
    let d = optc_compiler::diag::Diagnostic::error(optc_runtime::cpu::NOT_COMPILABLE, message)
        .with_hint(
            "`optc run` and `eval` still run the model on the CPU (the interpreter computes \
             what the native backend cannot; `bench` too, for a model without `argmin`)",
        );
    report::print_diagnostics(&[d], sources, m.error_format);
    EXIT_MODEL
}

/// The CLIF, MLIR or PTX text of `root`'s function (PTX kernels over `precision` buffers), or
/// why the backend refused it. An optc without the `mlir` feature is told before (exit 64).
fn native_text(
    stage: args::Stage,
    program: &optc_compiler::ir::Program,
    root: optc_compiler::ir::NodeId,
    sizes: &[u64],
    precision: optc_compiler::launch::Precision,
) -> Result<String, String> {
    let _ = precision;
    match stage {
        args::Stage::Clif => {
            optc_runtime::cpu::clif_text(program, &[root], sizes).map_err(|e| e.to_string())
        }
        #[cfg(feature = "mlir")]
        args::Stage::Mlir => {
            optc_mlir::mlir_text(program, &[root], sizes).map_err(|e| e.to_string())
        }
        #[cfg(feature = "mlir")]
        args::Stage::Ptx => {
            optc_mlir::ptx_text(program, &[root], sizes, precision).map_err(|e| e.to_string())
        }
        _ => unreachable!("called for the native-code stages the build has"),
    }
}

/// `optc build`: the model after the front end (and, for `--target gpu`, its kernels) as an
/// artifact.
fn build(a: &args::BuildArgs) -> Result<u8, u8> {
    use artifact::Target;
    let c = compile(&a.model, Until::Ir)?;
    let program = c.program.expect("ir stage");
    let dims = given_dims(&a.dims)?;
    let unknown = model::unknown_dims(&program, &dims);
    if !unknown.is_empty() {
        return Err(bind_failed(&unknown, &c.sources, a.model.error_format));
    }
    if a.target == args::TargetArg::Cpu && a.precision != args::PrecisionArg::F64 {
        eprintln!(
            "error: `--precision` sets the GPU kernels' element type: use it with `--target gpu`"
        );
        return Err(EXIT_USAGE);
    }
    let mut timings = c.timings.clone();
    let (target, (kernels, gpu)) = match a.target {
        args::TargetArg::Cpu => (Target::Cpu, (Vec::new(), None)),
        args::TargetArg::Gpu => (
            Target::Gpu,
            gpu_kernels(
                &program,
                &dims,
                a.precision.into(),
                &c.sources,
                &a.model,
                &mut timings,
            )?,
        ),
    };
    let start = std::time::Instant::now();
    let dir = source_dir(&a.model.file);
    let artifact = Artifact {
        optc_version: artifact::OPTC_VERSION.into(),
        target,
        source_name: a.model.file.display().to_string(),
        source_dir: std::fs::canonicalize(&dir)
            .unwrap_or(dir)
            .display()
            .to_string(),
        program,
        dims,
        kernels,
        gpu,
    };
    if let Err(e) = artifact::write(&a.output, &artifact) {
        report::print_diagnostics(&[e.into()], &SourceMap::new(), a.model.error_format);
        return Err(EXIT_NO_INPUT);
    }
    timings.push(("write", start.elapsed()));
    if a.timings {
        for (stage, t) in &timings {
            eprintln!("time {stage:<10} {:>10.3} ms", t.as_secs_f64() * 1e3);
        }
    }
    if a.model.error_format == ErrorFormat::Human {
        eprintln!(
            "{}: wrote {} ({} target{})",
            a.model.file.display(),
            a.output.display(),
            artifact.target.name(),
            match &artifact.gpu {
                Some(plan) => {
                    let launches = plan
                        .steps
                        .iter()
                        .filter(|s| matches!(s, optc_runtime::gpu::plan::Step::Launch(_)))
                        .count();
                    let plural = if launches == 1 { "" } else { "s" };
                    format!(
                        ", {launches} GPU kernel{plural} in {}",
                        plan.precision.name()
                    )
                }
                None => String::new(),
            }
        );
    }
    Ok(EXIT_OK)
}

/// The PTX kernels and staged GPU plan of the simplified value and gradient at the given (or
/// default) sizes; the time of staging (derivatives, simplification) and of the lowering to PTX
/// are added to `timings`.
#[cfg(feature = "mlir")]
fn gpu_kernels(
    program: &optc_compiler::ir::Program,
    dims: &[(String, u64)],
    precision: optc_compiler::launch::Precision,
    sources: &SourceMap,
    m: &ModelArgs,
    timings: &mut Vec<(&'static str, std::time::Duration)>,
) -> Result<GpuParts, u8> {
    use optc_runtime::gpu::build;
    let start = std::time::Instant::now();
    derive::differentiate(program).map_err(|e| derive_failed(&e, program, sources, m))?;
    let spec = BindSpec {
        dims: dims.to_vec(),
        ..BindSpec::default()
    };
    let sizes = plan_dims(program, m, sources, &spec)?;
    let failed = |e: String| not_compilable(e, sources, m);
    let staged = build::stage(program, &sizes).map_err(|d| {
        report::print_diagnostics(&[d], sources, m.error_format);
        EXIT_MODEL
    })?;
    timings.push(("stage", start.elapsed()));
    let start = std::time::Instant::now();
    let (plan, kernels) = build::lower(staged, precision).map_err(failed)?;
    timings.push(("ptx", start.elapsed()));
    let kernels = kernels
        .into_iter()
        .map(|(name, ptx)| artifact::Kernel { name, ptx })
        .collect();
    Ok((kernels, Some(plan)))
}

#[cfg(not(feature = "mlir"))]
fn gpu_kernels(
    _: &optc_compiler::ir::Program,
    _: &[(String, u64)],
    _: optc_compiler::launch::Precision,
    _: &SourceMap,
    _: &ModelArgs,
    _: &mut Vec<(&'static str, std::time::Duration)>,
) -> Result<GpuParts, u8> {
    eprintln!("error: {}", args::WITHOUT_MLIR);
    Err(EXIT_USAGE)
}

/// The kernels and plan of a gpu artifact.
type GpuParts = (
    Vec<artifact::Kernel>,
    Option<optc_runtime::gpu::plan::GpuPlan>,
);

fn explain(a: &args::ExplainArgs) -> Result<u8, u8> {
    use optc_runtime::codes;
    if let Some(file) = &a.cost {
        return explain_cost(a, file);
    }
    if a.bind.any() {
        eprintln!("error: `--data`, `--param` and `--dims` bind the model of `--cost FILE`");
        return Err(EXIT_USAGE);
    }
    if a.list {
        let mut all: Vec<_> = codes::all().collect();
        all.sort_by_key(|info| info.code);
        if a.json {
            let list: Vec<_> = all
                .iter()
                .map(|info| serde_json::json!({"code": info.code, "title": info.title}))
                .collect();
            println!("{}", serde_json::Value::Array(list));
        } else {
            for info in all {
                println!("{}  {}", info.code, info.title);
            }
        }
        return Ok(EXIT_OK);
    }
    let Some(code) = &a.code else {
        eprintln!("error: give a diagnostic code (e.g. `optc explain E0001`) or `--list`");
        return Err(EXIT_USAGE);
    };
    match codes::lookup(&code.to_uppercase()) {
        Some(info) if a.json => {
            let json = serde_json::json!({
                "code": info.code,
                "title": info.title,
                "explanation": info.explanation,
            });
            println!("{json}");
            Ok(EXIT_OK)
        }
        Some(info) => {
            println!("{}: {}\n\n{}", info.code, info.title, info.explanation);
            Ok(EXIT_OK)
        }
        None => {
            eprintln!("error: unknown diagnostic code `{code}` (see `optc explain --list`)");
            Err(EXIT_USAGE)
        }
    }
}

/// Turns the command line's bindings into a [`BindSpec`], or a usage error.
fn bind_spec(b: &args::BindArgs) -> Result<BindSpec, u8> {
    let usage = |m: String| {
        eprintln!("error: {m}");
        EXIT_USAGE
    };
    let mut spec = BindSpec::default();
    for d in &b.data {
        let (name, path) = bind::split_assignment("--data", d).map_err(usage)?;
        if let Some((_, first)) = spec.data.iter().find(|(n, _)| n == name) {
            return Err(usage(bind::twice("--data", name, first.display(), path)));
        }
        spec.data.push((name.to_string(), path.into()));
    }
    for p in &b.params {
        let (name, value) = bind::split_assignment("--param", p).map_err(usage)?;
        let value = bind::parse_param_value(name, value).map_err(usage)?;
        if let Some((_, first)) = spec.params.iter().find(|(n, _)| n == name) {
            return Err(usage(bind::twice("--param", name, first, value)));
        }
        spec.params.push((name.to_string(), value));
    }
    spec.dims = bind::parse_dims(&b.dims).map_err(usage)?;
    Ok(spec)
}

/// The backend, or (printed) why it cannot run and the exit code.
fn choose_backend(arg: args::BackendArg, format: ErrorFormat) -> Result<model::Backend, u8> {
    arg.backend().map_err(|why| match why {
        #[cfg(not(feature = "mlir"))]
        Unavailable::NotBuilt(m) => {
            eprintln!("error: {m}");
            EXIT_USAGE
        }
        Unavailable::Here(d) => {
            report::print_diagnostics(&[d], &SourceMap::new(), format);
            EXIT_UNAVAILABLE
        }
    })
}

/// Reads the model (source or artifact) and binds its data: everything `eval` and `run` need.
fn load_model(
    m: &ModelArgs,
    b: &args::BindArgs,
    backend: args::BackendArg,
) -> Result<(Front, Model), u8> {
    load_model_with(m, bind_spec(b)?, backend)
}

fn load_model_with(
    m: &ModelArgs,
    mut spec: BindSpec,
    backend: args::BackendArg,
) -> Result<(Front, Model), u8> {
    let backend = choose_backend(backend, m.error_format)?;
    let mut front = front_end(m)?;
    // Sizes fixed at build time apply unless `--dims` gives them.
    spec.build_dims = std::mem::take(&mut front.dims);
    let program = std::mem::take(&mut front.program);
    let bindings = model::bind(&program, &front.data_dir, &spec)
        .map_err(|diags| bind_failed(&diags, &front.sources, m.error_format))?;
    match Model::new(program, bindings) {
        Ok(mut model) => {
            model.set_backend(backend);
            Ok((front, model))
        }
        Err(d) => {
            report::print_diagnostics(&[d], &front.sources, m.error_format);
            Err(EXIT_MODEL)
        }
    }
}

/// Prints the errors of binding a model and gives the exit code: 66 when a file is missing,
/// else 65.
fn bind_failed(diags: &[Diagnostic], sources: &SourceMap, format: ErrorFormat) -> u8 {
    report::print_diagnostics(diags, sources, format);
    let missing = diags
        .iter()
        .any(|d| d.code == optc_runtime::data::FILE_NOT_FOUND);
    if missing {
        EXIT_NO_INPUT
    } else {
        EXIT_MODEL
    }
}

/// Binding errors that only say the model's data are not here (a missing file or array, a
/// dimension no array sizes).
const ABSENT_DATA: [&str; 3] = [
    optc_runtime::data::FILE_NOT_FOUND,
    optc_runtime::data::MISSING_DATA,
    optc_runtime::data::UNBOUND_DIM,
];

/// The dim sizes of a plan made without solving (`emit`, `build --target gpu`,
/// `explain --cost`), in the program's order: `--dims` where given (the sizes to plan for), else
/// the sizes `run` binds from `--data` and the model's own `load` files. Bindings `run` would
/// refuse are refused alike. When the model's own data are absent here and no `--data` or
/// `--param` is given, the dims `--dims` leaves open take their declared defaults (else
/// [`DEFAULT_DIM_SIZE`](optc_compiler::simplify::cost::DEFAULT_DIM_SIZE)), with a note.
fn plan_dims(
    program: &optc_compiler::ir::Program,
    m: &ModelArgs,
    sources: &SourceMap,
    spec: &BindSpec,
) -> Result<Vec<u64>, u8> {
    let unknown = model::unknown_dims(program, &spec.dims);
    if !unknown.is_empty() {
        return Err(bind_failed(&unknown, sources, m.error_format));
    }
    let given = |name: &str| spec.dims.iter().find(|(n, _)| n == name).map(|d| d.1);
    let flags = !spec.data.is_empty() || !spec.params.is_empty();
    if !flags && program.dims.iter().all(|d| given(&d.name).is_some()) {
        return Ok(derive::cost_dims(program, &spec.dims));
    }
    let data_only = BindSpec {
        dims: Vec::new(),
        ..spec.clone()
    };
    match model::bind(program, &source_dir(&m.file), &data_only) {
        Ok(bound) => Ok(program
            .dims
            .iter()
            .zip(bound.dims)
            .map(|(d, size)| given(&d.name).unwrap_or(size))
            .collect()),
        Err(diags) if flags || diags.iter().any(|d| !ABSENT_DATA.contains(&d.code)) => {
            Err(bind_failed(&diags, sources, m.error_format))
        }
        Err(_) => {
            let sizes = derive::cost_dims(program, &spec.dims);
            if m.error_format == ErrorFormat::Human {
                let open: Vec<String> = program
                    .dims
                    .iter()
                    .zip(&sizes)
                    .filter(|(d, _)| given(&d.name).is_none())
                    .map(|(d, size)| format!("{}={size}", d.name))
                    .collect();
                eprintln!(
                    "note: the model's data cannot be bound here, so the plan is made for {} \
                     (the declared defaults, else 100; `--dims` or `--data` set them)",
                    open.join(",")
                );
            }
            Ok(sizes)
        }
    }
}

/// Prints an evaluation error that `eval` reports but goes on from (a value that is not
/// finite) as a warning.
fn warn_not_finite(
    e: Option<optc_runtime::interp::EvalError>,
    program: &optc_compiler::ir::Program,
    sources: &SourceMap,
    m: &ModelArgs,
) {
    if let Some(e) = e {
        let warning = Diagnostic {
            severity: Severity::Warning,
            ..e.diagnostic(program)
        };
        report::print_diagnostics(&[warning], sources, m.error_format);
    }
}

/// Prints an evaluation error and gives the exit code.
fn eval_failed(
    e: optc_runtime::interp::EvalError,
    program: &optc_compiler::ir::Program,
    sources: &SourceMap,
    m: &ModelArgs,
) -> u8 {
    report::print_diagnostics(&[e.diagnostic(program)], sources, m.error_format);
    EXIT_MODEL
}

fn eval(a: &args::EvalArgs) -> Result<u8, u8> {
    let (front, mut model) = load_model(&a.model, &a.bind, a.backend)?;
    report::print_diagnostics(
        &optc_runtime::plan::empty_ranges(&model),
        &front.sources,
        a.model.error_format,
    );
    let check = if a.check_grad {
        Some(grad_check(&model, &front.sources, &a.model)?)
    } else {
        None
    };
    let objective = match model.program.objective.clone() {
        Some(o) => {
            let value = model
                .eval_scalar(o.node)
                .map_err(|e| eval_failed(e, &model.program, &front.sources, &a.model))?;
            // Not an error (the value is what was asked for), but not silent either.
            let located = match value.is_finite() {
                true => None,
                false => model.first_non_finite(&[o.node]),
            };
            warn_not_finite(located, &model.program, &front.sources, &a.model);
            value
        }
        None => f64::NAN,
    };
    let mut constraints = Vec::new();
    for i in 0..model.program.constraints.len() {
        let v = model
            .violation(i)
            .map_err(|e| eval_failed(e, &model.program, &front.sources, &a.model))?;
        let located = model.constraint_non_finite(i);
        // The violation skips NaN entries: say NaN where those hid it.
        let v = match located.is_some() && v.is_finite() {
            true => f64::NAN,
            false => v,
        };
        warn_not_finite(located, &model.program, &front.sources, &a.model);
        let c = &model.program.constraints[i];
        constraints.push((c.name.clone(), constraint_kind(c), v));
    }
    let gradient_norm = gradient_norm(&mut model);
    if a.json {
        let mut json = serde_json::json!({
            "objective": objective,
            "gradient_norm": gradient_norm,
            "constraints": constraints.iter().map(|(n, k, v)| serde_json::json!({
                "name": n, "kind": k, "violation": v,
            })).collect::<Vec<_>>(),
        });
        if let Some(check) = check {
            json["grad_check"] = check;
        }
        println!("{json}");
    } else {
        println!("objective  {objective:.10e}");
        if let Some(g) = gradient_norm {
            println!("gradient   {g:.3e}  (largest entry, all variables)");
        }
        for (name, kind, v) in &constraints {
            println!("constraint {name} ({kind})  violation {v:.3e}");
        }
    }
    Ok(EXIT_OK)
}

/// The largest entry of the objective's gradient in all variables at their current values;
/// `None` without an objective or where it cannot be differentiated here (an `argmin`, whose
/// hypergradient MAID approximates) or evaluated.
fn gradient_norm(model: &mut Model) -> Option<f64> {
    let objective = model.program.objective.as_ref()?.node;
    let vars: Vec<_> = model.vars.iter().map(|v| v.input).collect();
    let grads = optc_compiler::autodiff::gradient(&mut model.program, objective, &vars).ok()?;
    let values = model.eval_ref(&grads).ok()?;
    Some(values.iter().flatten().fold(0.0f64, |m, g| m.max(g.abs())))
}

/// The constraint's relation as written (`>=` for a flipped `<=`).
fn constraint_kind(c: &optc_compiler::ir::Constraint) -> &'static str {
    use optc_compiler::ir::{ConstraintKind, SetKind};
    match &c.kind {
        ConstraintKind::Eq => "==",
        ConstraintKind::Le if c.flipped => ">=",
        ConstraintKind::Le => "<=",
        ConstraintKind::In(SetKind::Nonneg) => "in nonneg",
        ConstraintKind::In(SetKind::Simplex) => "in simplex",
        ConstraintKind::In(SetKind::Symmetric) => "in symmetric",
        ConstraintKind::In(SetKind::Box { .. }) => "in box",
        ConstraintKind::Card { .. } => "card",
    }
}

/// Creates the output directory `dir` and checks that a file can be written in it, before any
/// work whose results it would receive (E0314, exit 66, otherwise).
fn prepare_out_dir(dir: &std::path::Path, format: ErrorFormat) -> Result<(), u8> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Err(unwritable(dir, &e, format));
    }
    let probe = dir.join(format!(".optc-write-test-{}", std::process::id()));
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(unwritable(dir, &e, format)),
    }
}

/// Writes arrays as `.npy` files into `dir` (each atomically; `prepare_out_dir` made it),
/// listing them on stdout if `list`.
fn write_arrays<'a>(
    dir: &std::path::Path,
    arrays: impl IntoIterator<Item = (&'a str, &'a ndarray::ArrayD<f64>)>,
    list: bool,
    format: ErrorFormat,
) -> Result<(), u8> {
    for (name, array) in arrays {
        let path = dir.join(format!("{name}.npy"));
        if let Err(e) = optc_runtime::data::write_npy(&path, array) {
            report::print_diagnostics(&[e.into()], &SourceMap::new(), format);
            return Err(EXIT_NO_INPUT);
        }
        if list {
            println!("{}  {:?}", path.display(), array.shape());
        }
    }
    Ok(())
}

/// E0314 (exit 66): `path` cannot be created or written.
fn unwritable(path: &std::path::Path, e: &std::io::Error, format: ErrorFormat) -> u8 {
    let d = Diagnostic::error(
        optc_runtime::data::UNWRITABLE,
        format!("cannot write `{}`: {e}", path.display()),
    )
    .with_hint("check that the directory exists or can be created, and that it is writable");
    report::print_diagnostics(&[d], &SourceMap::new(), format);
    EXIT_NO_INPUT
}

/// Checks `simulate`'s flags against its kind, its sizes (at least 1) and the memory its arrays
/// need; notes an edge count above what the graph can have. A usage error (exit 64) otherwise.
fn simulate_sizes(a: &args::SimulateArgs) -> Result<(usize, usize, usize), u8> {
    use args::SimKind;
    let kind = clap::ValueEnum::to_possible_value(&a.kind)
        .expect("no skipped kinds")
        .get_name()
        .to_string();
    let takes = a.kind.flags();
    if let Some(flag) = a.given().into_iter().find(|f| !takes.contains(f)) {
        eprintln!(
            "error: `{flag}` does not apply to `simulate {kind}`, which takes {} (and --seed, --out)",
            takes.join(", ")
        );
        return Err(EXIT_USAGE);
    }
    let (n, d, p) = (a.n.unwrap_or(200), a.d.unwrap_or(10), a.p.unwrap_or(20));
    for (flag, size) in [("--n", n), ("--d", d), ("--p", p)] {
        if size == 0 && takes.contains(&flag) {
            eprintln!("error: `{flag} 0`: `simulate {kind}` needs sizes of at least 1");
            return Err(EXIT_USAGE);
        }
    }
    let (n, d, p) = (n as u128, d as u128, p as u128);
    // The arrays written, and the square work arrays beside them.
    let elements = match a.kind {
        SimKind::Dag => n * d + 2 * d * d,
        SimKind::Regression => n * p + n + p,
        SimKind::Ot => p * p + 2 * p,
        SimKind::Denoise | SimKind::Isotonic => 2 * n,
        SimKind::Portfolio => n * p,
        SimKind::Ggm => n * p + 3 * p * p,
    };
    let what = format!("the arrays of `simulate {kind}` need");
    if let Err(e) = optc_runtime::data::fits_in_memory(elements.saturating_mul(8), &what) {
        let sizes: Vec<&str> = ["--n", "--d", "--p"]
            .into_iter()
            .filter(|f| takes.contains(f))
            .collect();
        let d = Diagnostic::from(e).with_hint(format!("use smaller {}", sizes.join(" or ")));
        report::print_diagnostics(&[d], &SourceMap::new(), ErrorFormat::Human);
        return Err(EXIT_USAGE);
    }
    let nodes = if a.kind == SimKind::Dag { d } else { p };
    let most = nodes * nodes.saturating_sub(1) / 2;
    if let Some(edges) = a.edges.filter(|&e| e as u128 > most) {
        eprintln!(
            "note: `--edges {edges}` is more than the {most} edges a graph on {nodes} nodes can \
             have: every pair is joined"
        );
    }
    Ok((n as usize, d as usize, p as usize))
}

fn simulate(a: &args::SimulateArgs) -> Result<u8, u8> {
    use args::{GraphKind, NoiseKind, SimKind};
    use optc_runtime::simulate as sim;
    let (n, d, p) = simulate_sizes(a)?;
    prepare_out_dir(&a.out, ErrorFormat::Human)?;
    let arrays = match a.kind {
        SimKind::Dag => {
            let config = sim::SemConfig {
                d,
                edges: a.edges.unwrap_or(2 * d),
                n,
                graph: match a.graph.unwrap_or(GraphKind::Er) {
                    GraphKind::Er => sim::GraphKind::ErdosRenyi,
                    GraphKind::Sf => sim::GraphKind::ScaleFree,
                },
                noise: match a.noise.unwrap_or(NoiseKind::Gauss) {
                    NoiseKind::Gauss => sim::NoiseKind::Gauss,
                    NoiseKind::Exp => sim::NoiseKind::Exp,
                    NoiseKind::Gumbel => sim::NoiseKind::Gumbel,
                    NoiseKind::Laplace => sim::NoiseKind::Laplace,
                },
                variance: if a.unequal_variance {
                    sim::NoiseVariance::Unequal
                } else {
                    sim::NoiseVariance::Equal
                },
                seed: a.seed,
            };
            let sem = sim::simulate_linear_sem(&config);
            vec![("X", sem.x.into_dyn()), ("W_true", sem.w.into_dyn())]
        }
        SimKind::Regression => {
            let (x, y, beta) = sim::regression(n, p, p.div_ceil(4), 0.1, a.seed);
            vec![
                ("X_reg", x.into_dyn()),
                ("y_reg", y.into_dyn()),
                ("w_true_reg", beta.into_dyn()),
            ]
        }
        SimKind::Ot => {
            let (sa, sb, c) = sim::ot(p, p, a.seed);
            vec![
                ("a", sa.into_dyn()),
                ("b", sb.into_dyn()),
                ("C", c.into_dyn()),
            ]
        }
        SimKind::Denoise => {
            let (y, clean) = sim::denoise(n, a.seed);
            vec![("y", y.into_dyn()), ("x_clean", clean.into_dyn())]
        }
        SimKind::Portfolio => vec![("R", sim::portfolio(n, p, a.seed).into_dyn())],
        SimKind::Isotonic => {
            let (y, curve) = sim::isotonic(n, a.seed);
            vec![("y_iso", y.into_dyn()), ("f_iso", curve.into_dyn())]
        }
        SimKind::Ggm => {
            let (x, s, theta) = sim::ggm(n, p, a.edges.unwrap_or(p), a.seed);
            vec![
                ("X_ggm", x.into_dyn()),
                ("S_ggm", s.into_dyn()),
                ("Theta_true", theta.into_dyn()),
            ]
        }
    };
    write_arrays(
        &a.out,
        arrays.iter().map(|(n, a)| (*n, a)),
        true,
        ErrorFormat::Human,
    )?;
    Ok(EXIT_OK)
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The progress table on stderr: rows at iterations 1, 2, 4, 8, … and at least once a second; on a
/// terminal one line refreshed in place.
struct Progress {
    quiet: bool,
    tty: bool,
    start: std::time::Instant,
    last_print: std::time::Instant,
    next_iter: usize,
    rows: usize,
    /// The last iteration when it was not printed: [`Progress::finish`] prints it.
    pending: Option<optc_runtime::solvers::IterInfo>,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        use std::io::IsTerminal;
        let now = std::time::Instant::now();
        Progress {
            quiet,
            tty: std::io::stderr().is_terminal(),
            start: now,
            last_print: now,
            next_iter: 1,
            rows: 0,
            pending: None,
        }
    }

    fn row(&mut self, info: &optc_runtime::solvers::IterInfo) {
        if self.quiet {
            return;
        }
        let due = info.iter >= self.next_iter || self.last_print.elapsed().as_secs_f64() >= 1.0;
        if !due {
            self.pending = Some(*info);
            return;
        }
        self.print(info);
        while self.next_iter <= info.iter {
            self.next_iter *= 2;
        }
    }

    fn print(&mut self, info: &optc_runtime::solvers::IterInfo) {
        self.pending = None;
        if self.rows == 0 {
            eprintln!(
                "{:>8}  {:>14}  {:>10}  {:>10}  {:>10}  {:>8}",
                "iter", "objective", "optimality", "violation", "step", "time"
            );
        }
        let line = format!(
            "{:>8}  {:>14.7e}  {:>10.3e}  {:>10.3e}  {:>10.3e}  {:>7.2}s",
            info.iter,
            info.value,
            info.optimality,
            info.violation,
            info.step,
            self.start.elapsed().as_secs_f64()
        );
        if self.tty {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
        self.rows += 1;
        self.last_print = std::time::Instant::now();
    }

    /// Prints the last iteration if it was not, so the table ends where the solve did.
    fn finish(&mut self) {
        if let Some(last) = self.pending.take() {
            self.print(&last);
        }
        if !self.quiet && self.tty && self.rows > 0 {
            eprintln!();
        }
    }
}

fn status_name(s: optc_runtime::solvers::Status) -> (&'static str, u8) {
    use optc_runtime::solvers::Status;
    match s {
        Status::Converged => ("converged", EXIT_OK),
        Status::MaxIter => ("iteration_limit", EXIT_LIMIT),
        Status::LineSearchFailed => ("line_search_failed", EXIT_LIMIT),
        Status::Interrupted => ("interrupted", EXIT_LIMIT),
        Status::Diverged => ("diverged", EXIT_INFEASIBLE),
        Status::Infeasible => ("infeasible", EXIT_INFEASIBLE),
        Status::Stalled => ("stalled", EXIT_LIMIT),
    }
}

/// Writes `text` to `path` atomically (a temporary file in the same directory, then a rename).
fn write_atomic(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// An array as nested JSON lists.
fn array_json(a: &ndarray::ArrayD<f64>) -> serde_json::Value {
    fn rec(a: ndarray::ArrayViewD<f64>) -> serde_json::Value {
        if a.ndim() == 0 {
            return serde_json::json!(a.iter().next().copied().unwrap_or(f64::NAN));
        }
        serde_json::Value::Array(a.outer_iter().map(rec).collect())
    }
    rec(a.view())
}

/// An array as nested lists for the text summary: as [`array_json`], but NaN and infinities
/// spelled out (`NaN`, `inf`) where JSON has `null`.
fn array_text(a: &ndarray::ArrayD<f64>) -> String {
    fn rec(a: ndarray::ArrayViewD<f64>) -> String {
        if a.ndim() == 0 {
            let v = a.iter().next().copied().unwrap_or(f64::NAN);
            return match v.is_finite() {
                true => serde_json::json!(v).to_string(),
                false => v.to_string(),
            };
        }
        let items: Vec<String> = a.outer_iter().map(rec).collect();
        format!("[{}]", items.join(","))
    }
    rec(a.view())
}

fn run(a: &args::RunArgs) -> Result<u8, u8> {
    use optc_compiler::ir::PostOp;
    use optc_runtime::plan;
    use optc_runtime::solvers::Control;
    let total = std::time::Instant::now();
    if let Some(dir) = &a.out {
        prepare_out_dir(dir, a.model.error_format)?;
    }
    // With `--backend gpu` the objective and gradient run on the device and everything else
    // (the solver, outputs, violations) on the host, through a CPU model.
    let (front, mut model, mut device) = if a.backend == args::BackendArg::Gpu {
        let (front, model, executor) = open_gpu(&a.model, bind_spec(&a.bind)?)?;
        (front, model, Some(executor))
    } else {
        let (front, model) = load_model(&a.model, &a.bind, a.backend)?;
        (front, model, None)
    };
    let check = if a.check_grad {
        Some(grad_check(&model, &front.sources, &a.model)?)
    } else {
        None
    };
    let fail = |d: optc_compiler::diag::Diagnostic| {
        report::print_diagnostics(&[d], &front.sources, a.model.error_format);
        EXIT_MODEL
    };
    if let Some(name) = &a.method {
        use optc_compiler::sema::KNOWN_METHODS;
        // `projected_lbfgs` is how `lbfgs` with bounds reports itself.
        let name = if name == "projected_lbfgs" {
            "lbfgs"
        } else {
            name
        };
        if !KNOWN_METHODS.contains(&name) {
            let known = KNOWN_METHODS.join(", ");
            let lowered = name.to_ascii_lowercase();
            let guess = match KNOWN_METHODS.contains(&lowered.as_str()) {
                true => Some(lowered.as_str()),
                false => optc_compiler::diag::suggest(&lowered, KNOWN_METHODS.iter().copied()),
            };
            match guess {
                Some(s) => eprintln!("error: unknown method `{name}` for --method (did you mean `{s}`?); known methods: {known}"),
                None => eprintln!("error: unknown method `{name}` for --method; known methods: {known}"),
            }
            return Err(EXIT_USAGE);
        }
        model.program.solve = Some(optc_compiler::ir::SolveSpec {
            method: name.to_string(),
            positional: Vec::new(),
            options: Vec::new(),
            spans: Default::default(),
        });
    }
    let mut the_plan = plan::choose(&model.program).map_err(|errors| {
        report::print_diagnostics(&errors, &front.sources, a.model.error_format);
        EXIT_MODEL
    })?;
    if let Some(name) = &a.method {
        the_plan.reason = format!("`--method {name}` on the command line");
    }
    if let Some(m) = a.max_iter {
        // The method's own loop: `auglag`'s is its dual steps.
        let name = match the_plan.method {
            plan::Method::AugLag => "max_outer",
            _ => "max_iter",
        };
        the_plan.set_on_command_line(name, m as f64);
    }
    if let Some(t) = a.tol {
        // Adam's optimality tolerance is its `gtol` (its `ftol` is a checkpoint's decrease).
        let name = match the_plan.method {
            plan::Method::Adam => "gtol",
            _ => "tol",
        };
        the_plan.set_on_command_line(name, t);
    }
    if a.max_iter.is_some() || a.tol.is_some() {
        let errors: Vec<Diagnostic> = plan::check_options(&the_plan)
            .into_iter()
            .map(|e| match e.labels.is_empty() {
                true => e.with_note("given on the command line (`--max-iter`, `--tol`)"),
                false => e,
            })
            .collect();
        if !errors.is_empty() {
            report::print_diagnostics(&errors, &front.sources, a.model.error_format);
            return Err(EXIT_MODEL);
        }
    }
    the_plan.simplify = !a.no_simplify;
    if !a.quiet {
        eprintln!(
            "solver: {} ({})",
            plan::solver_name(&the_plan),
            the_plan.reason
        );
    }
    report::print_diagnostics(&the_plan.warnings, &front.sources, a.model.error_format);
    report::print_diagnostics(
        &plan::empty_ranges(&model),
        &front.sources,
        a.model.error_format,
    );
    if let Some(w) = plan::start_outside_bounds(&mut model) {
        report::print_diagnostics(&[w], &front.sources, a.model.error_format);
    }
    // A cutoff no solve changes is checked before solving.
    for out in model.program.outputs.clone() {
        for post in &out.post {
            if let PostOp::Threshold(cutoff) = post {
                model.cutoff(cutoff).map_err(fail)?;
            }
        }
    }
    if let Some(e) = plan::error_at_every_point(&mut model) {
        report::print_diagnostics(&[e], &front.sources, a.model.error_format);
        return Err(EXIT_MODEL);
    }
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst));
    let mut progress = Progress::new(a.quiet);
    let solve_start = std::time::Instant::now();
    let mut on_iteration = |info: &optc_runtime::solvers::IterInfo| {
        progress.row(info);
        if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let outcome = match device.as_mut() {
        Some(executor) => plan::solve_external(&mut model, &the_plan, executor, &mut on_iteration)
            .map_err(|d| {
                let code = gpu_exit_code(&d);
                report::print_diagnostics(&[d], &front.sources, a.model.error_format);
                code
            })?,
        None => plan::solve(&mut model, &the_plan, &mut on_iteration).map_err(fail)?,
    };
    progress.finish();
    // Code is generated lazily during the solve: report it apart.
    let codegen_time = model.codegen_time();
    let solve_time = solve_start.elapsed().saturating_sub(codegen_time);
    if !a.quiet {
        for reason in model.fallbacks() {
            eprintln!("note: some functions ran on the interpreter: {reason}");
        }
    }
    if let Some(e) = &outcome.error {
        // After a converged solve the error was met at a trial point the solver backed off
        // from: a warning, since the result does not depend on it.
        let shown = match outcome.report.status {
            optc_runtime::solvers::Status::Converged => Diagnostic {
                severity: Severity::Warning,
                message: format!("a trial point was rejected: {}", e.message),
                hint: Some("the solver backed off from it and converged elsewhere".into()),
                ..e.clone()
            },
            _ => e.clone(),
        };
        report::print_diagnostics(&[shown], &front.sources, a.model.error_format);
    }
    let report = &outcome.report;
    let (status, code) = status_name(report.status);

    // Objective and constraint violations at the returned point.
    let objective = match model.program.objective.clone() {
        Some(o) => model.eval_scalar(o.node).unwrap_or(f64::NAN),
        None => f64::NAN,
    };
    let mut constraints = Vec::new();
    for i in 0..model.program.constraints.len() {
        let v = model.violation(i).unwrap_or(f64::NAN);
        let c = &model.program.constraints[i];
        let mut entry = serde_json::json!({
            "name": c.name, "kind": constraint_kind(c), "violation": v,
        });
        if let Some(m) = outcome.details.multipliers(i) {
            entry["multiplier"] = array_json(m);
        }
        constraints.push(entry);
    }

    // Outputs: declared ones (post-processed), else every variable.
    let mut arrays: Vec<(String, ndarray::ArrayD<f64>)> = Vec::new();
    let mut certificates = serde_json::Map::new();
    let var_values = model.var_values();
    let outputs = model.program.outputs.clone();
    // Every variable without an output of its own name is written too.
    arrays.extend(
        var_values
            .iter()
            .filter(|(name, _)| !outputs.iter().any(|o| o.name == *name))
            .cloned(),
    );
    for out in &outputs {
        let mut value = model
            .eval(&[out.node])
            .map_err(|e| fail(e.diagnostic(&model.program)))?
            .remove(0);
        if value.iter().any(|v| !v.is_finite()) {
            let located = model.first_non_finite(&[out.node]);
            warn_not_finite(located, &model.program, &front.sources, &a.model);
        }
        for post in &out.post {
            let matrix = value.clone().into_dimensionality::<ndarray::Ix2>();
            match (post, matrix) {
                (PostOp::Threshold(cutoff), _) => {
                    let t = model.cutoff(cutoff).map_err(fail)?;
                    value.mapv_inplace(|v| if v.abs() < t { 0.0 } else { v })
                }
                (PostOp::AsDag, Ok(m)) => {
                    let dag = optc_runtime::dag::to_dag(m.view(), 0.0);
                    certificates.insert(out.name.clone(), serde_json::json!({
                        "acyclic": true,
                        "removed_edges": dag.removed.iter().map(|(i, j, w)| serde_json::json!([i, j, w])).collect::<Vec<_>>(),
                        "topological_order": dag.order,
                        "edges": dag.w.iter().filter(|v| **v != 0.0).count(),
                    }));
                    value = dag.w.into_dyn();
                }
                (PostOp::AsDag, Err(_)) => {}
            }
        }
        // A variable whose name an output takes keeps its value as NAME.raw, unless the
        // output is the variable itself.
        let var = model.vars.iter().find(|v| v.name == out.name);
        let itself = var.is_some_and(|v| {
            out.post.is_empty() && model.program.input_nodes[v.input.0 as usize] == out.node
        });
        arrays.push((out.name.clone(), value));
        if let (Some((_, raw)), false) = (var_values.iter().find(|(n, _)| *n == out.name), itself) {
            arrays.push((format!("{}.raw", out.name), raw.clone()));
        }
    }

    if report.status == optc_runtime::solvers::Status::Infeasible {
        let violations: Vec<f64> = constraints
            .iter()
            .map(|c| c["violation"].as_f64().unwrap_or(0.0))
            .collect();
        let warning = optc_runtime::plan::infeasibility_warning(&model.program, &violations);
        report::print_diagnostics(&[warning], &front.sources, a.model.error_format);
    }
    if let Some(note) = plan::stopped_short_note(&the_plan, report) {
        if a.model.error_format == ErrorFormat::Human {
            eprintln!("note: {note}");
        }
    }
    let tolerance = plan::stopping_tolerance(&the_plan);
    let small = |a: &ndarray::ArrayD<f64>| a.len() <= 10_000;
    let large: Vec<&str> = arrays
        .iter()
        .filter(|(_, v)| !small(v))
        .map(|(n, _)| n.as_str())
        .collect();
    if a.json && a.out.is_none() && !large.is_empty() {
        eprintln!(
            "note: {} above 10000 entries, left out of the JSON: `--out DIR` writes every output \
             as a .npy file",
            large.join(", ")
        );
    }
    let mut result = serde_json::json!({
        "status": status,
        "solver": plan::solver_name(&the_plan),
        "reason": the_plan.reason,
        "iterations": report.iterations,
        "objective": objective,
        "optimality": report.optimality,
        "tolerance": tolerance,
        "dual_bound": outcome.details.dual_bound(),
        "constraints": constraints,
        "outputs": arrays.iter().filter(|(_, v)| small(v)).map(|(n, v)| (n.clone(), array_json(v))).collect::<serde_json::Map<_, _>>(),
        "dag": certificates,
        "backend": if device.is_some() { "gpu" } else { model.backend().name() },
        "interpreter_fallbacks": model.fallbacks(),
        "timings": {
            "compile_s": front.timings.iter().map(|(_, t)| t.as_secs_f64()).sum::<f64>(),
            "codegen_s": codegen_time.as_secs_f64(),
            "solve_s": solve_time.as_secs_f64(),
            "total_s": total.elapsed().as_secs_f64(),
        },
    });
    if let optc_runtime::plan::Details::Maid { mu, trail } = &outcome.details {
        result["maid"] = serde_json::json!({
            "mu": mu,
            "trail": trail.iter().map(|t| serde_json::json!({
                "eps": t.eps, "delta": t.delta, "step": t.step,
            })).collect::<Vec<_>>(),
        });
    }
    if let Some(check) = check {
        result["grad_check"] = check;
    }
    if let Some(dir) = &a.out {
        // Scalars are only in result.json.
        let files = arrays.iter().filter(|(_, a)| a.ndim() > 0);
        let files = files.map(|(n, a)| (n.as_str(), a));
        write_arrays(dir, files, false, a.model.error_format)?;
        let text = serde_json::to_string_pretty(&result).expect("json");
        if let Err(e) = write_atomic(&dir.join("result.json"), &text) {
            return Err(unwritable(
                &dir.join("result.json"),
                &e,
                a.model.error_format,
            ));
        }
    }
    if a.timings {
        for (stage, t) in &front.timings {
            eprintln!("time {stage:<10} {:>10.3} ms", t.as_secs_f64() * 1e3);
        }
        eprintln!(
            "time {:<10} {:>10.3} ms",
            "codegen",
            codegen_time.as_secs_f64() * 1e3
        );
        eprintln!(
            "time {:<10} {:>10.3} ms",
            "solve",
            solve_time.as_secs_f64() * 1e3
        );
    }
    if a.json {
        println!("{result}");
    } else {
        println!(
            "status      {status} after {} iterations ({})",
            report.iterations,
            plan::solver_name(&the_plan)
        );
        println!("objective   {objective:.10e}");
        match tolerance {
            Some(tol) => println!("optimality  {:.3e}  (tol {tol:e})", report.optimality),
            None => println!("optimality  {:.3e}", report.optimality),
        }
        if let Some(bound) = outcome.details.dual_bound() {
            println!("dual bound  {bound:.10e}  (gap {:.3e})", objective - bound);
        }
        for c in &constraints {
            // A scalar multiplier is printed; arrays are in `--json` and result.json.
            let multiplier = match c.get("multiplier") {
                Some(serde_json::Value::Number(m)) => format!("  multiplier {m}"),
                _ => String::new(),
            };
            println!(
                "constraint  {} ({})  violation {:.3e}{multiplier}",
                c["name"].as_str().unwrap_or(""),
                c["kind"].as_str().unwrap_or(""),
                c["violation"].as_f64().unwrap_or(f64::NAN)
            );
        }
        for (name, cert) in &certificates {
            println!(
                "dag         {name}: {} edges, acyclic; topological order {}",
                cert["edges"], cert["topological_order"]
            );
        }
        for (name, v) in &arrays {
            if v.len() <= 20 {
                println!("{name:<11} {}", array_text(v));
            } else {
                println!("{name:<11} shape {:?}", v.shape());
            }
        }
    }
    Ok(code)
}

/// The `--dims` flags as pairs (empty without the flag), or a usage error.
fn given_dims(flags: &[String]) -> Result<Vec<(String, u64)>, u8> {
    bind::parse_dims(flags).map_err(|m| {
        eprintln!("error: {m}");
        EXIT_USAGE
    })
}

fn derive_failed(
    e: &optc_compiler::autodiff::AdError,
    program: &optc_compiler::ir::Program,
    sources: &SourceMap,
    m: &ModelArgs,
) -> u8 {
    report::print_diagnostics(&[e.diagnostic(program)], sources, m.error_format);
    EXIT_MODEL
}

/// A failed benchmark as a coded diagnostic (exit 65). The front end refuses a model without an
/// objective (E0131), and the simplifier does not fail on a valid program: those are bugs.
fn bench_failed(
    e: optc_runtime::bench::BenchError,
    program: &optc_compiler::ir::Program,
    sources: &SourceMap,
    m: &ModelArgs,
) -> u8 {
    use optc_runtime::bench::BenchError;
    match e {
        BenchError::Derivative(e) => derive_failed(&e, program, sources, m),
        BenchError::NoObjective | BenchError::Simplify(_) => internal(&e),
        BenchError::Eval(e) => eval_failed(e, program, sources, m),
    }
}

/// A failure that is a bug in optc.
fn internal(e: &dyn std::fmt::Display) -> u8 {
    eprintln!("internal error: {e}\nThis is a bug in optc; please report it.");
    EXIT_INTERNAL
}

/// `optc explain --cost FILE`: FLOPs per solve (setup) and per iteration, before and after
/// simplification, and the rules that fired.
fn explain_cost(a: &args::ExplainArgs, file: &std::path::Path) -> Result<u8, u8> {
    let model = ModelArgs {
        file: file.to_path_buf(),
        error_format: a.error_format,
    };
    let c = compile(&model, Until::Ir)?;
    let program = c.program.as_ref().expect("ir stage");
    let dims = plan_dims(program, &model, &c.sources, &bind_spec(&a.bind)?)?;
    let derived = derive::differentiate(program)
        .map_err(|e| derive_failed(&e, program, &c.sources, &model))?;
    let start = std::time::Instant::now();
    let s = derive::simplify(&derived, &dims).map_err(|e| internal(&e))?;
    let simplify_ms = start.elapsed().as_secs_f64() * 1e3;
    let (setup_before, iter_before) =
        optc_compiler::simplify::flops(&derived.program, &derived.roots(), &dims);
    let (setup_after, iter_after) =
        optc_compiler::simplify::flops(&s.derived.program, &s.derived.roots(), &dims);
    let sizes: serde_json::Map<String, serde_json::Value> = program
        .dims
        .iter()
        .zip(&dims)
        .map(|(d, v)| (d.name.clone(), serde_json::json!(v)))
        .collect();
    if a.json {
        let json = serde_json::json!({
            "dims": sizes,
            "setup_flops": setup_after,
            "per_iteration_flops": {"unsimplified": iter_before, "simplified": iter_after},
            "setup_flops_unsimplified": setup_before,
            "rules_fired": s.rules_fired,
            "egraph_nodes": s.egraph_nodes,
            "iterations": s.iterations,
            "stop_reason": s.stop_reason,
            "simplify_ms": simplify_ms,
        });
        println!("{json}");
    } else {
        let dims_text: Vec<String> = sizes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("cost of objective + gradient at {}", dims_text.join(", "));
        println!("  per iteration, unsimplified  {iter_before:>14.4e} flops");
        println!(
            "  per iteration, simplified    {iter_after:>14.4e} flops  ({:.1}x less)",
            iter_before / iter_after.max(1.0)
        );
        println!("  setup (once per solve)       {setup_after:>14.4e} flops");
        println!(
            "  e-graph: {} nodes after {} iterations ({}), {simplify_ms:.1} ms",
            s.egraph_nodes, s.iterations, s.stop_reason
        );
        println!("  rules fired: {}", s.rules_fired.join(", "));
    }
    Ok(EXIT_OK)
}

/// `optc bench`: compile time (source to native value+gradient code), and evaluations per second
/// of the merit's value+gradient and HVP on each backend.
fn bench(a: &args::BenchArgs) -> Result<u8, u8> {
    use args::BackendArg;
    use optc_runtime::bench;
    if a.backend == Some(BackendArg::Gpu) {
        return bench_gpu(a);
    }
    let mut spec = bind_spec(&a.bind)?;
    if !spec.dims.is_empty() {
        spec.random_data = Some(1);
    }
    let start = std::time::Instant::now();
    if let Some(backend) = a.backend {
        choose_backend(backend, a.model.error_format)?;
    }
    let (front, template) = load_model_with(&a.model, spec, BackendArg::Cpu)?;
    let front_end: std::time::Duration = front.timings.iter().map(|(_, t)| *t).sum();
    let load_time = start.elapsed();
    let backends = match a.backend {
        Some(b) => vec![b],
        None => vec![BackendArg::Cpu, BackendArg::Interp],
    };
    let budget = std::time::Duration::from_millis(a.time_ms);
    let fail = |e: bench::BenchError, model: &Model| {
        bench_failed(e, &model.program, &front.sources, &a.model)
    };
    let mut results = serde_json::Map::new();
    let mut compile = None;
    for backend in backends {
        let mut rates = Vec::new();
        let mut flops = Vec::new();
        let mut fallbacks: Vec<String> = Vec::new();
        for function in [bench::Function::ValueGrad, bench::Function::Hvp] {
            let mut model = Model::new(template.program.clone(), template.bindings.clone())
                .map_err(|d| {
                    report::print_diagnostics(&[d], &front.sources, a.model.error_format);
                    EXIT_MODEL
                })?;
            model.set_backend(choose_backend(backend, a.model.error_format)?);
            let derive_start = std::time::Instant::now();
            let roots = bench::prepare(&mut model, function, !a.no_simplify)
                .map_err(|e| fail(e, &model))?;
            let derive_time = derive_start.elapsed();
            let rate = bench::evals_per_second(&mut model, &roots, budget)
                .map_err(|e| fail(bench::BenchError::Eval(e), &model))?;
            flops.push(bench::flops_per_eval(&model, &roots));
            if backend == BackendArg::Cpu && function == bench::Function::ValueGrad {
                compile = Some((derive_time, model.codegen_time()));
            }
            rates.push(rate);
            fallbacks.extend(model.fallbacks().iter().cloned());
        }
        fallbacks.dedup();
        results.insert(
            backend.backend().map_or("?", |b| b.name()).into(),
            serde_json::json!({
                "value_grad_per_s": rates[0],
                "hvp_per_s": rates[1],
                "value_grad_gflops": rates[0] * flops[0] / 1e9,
                "hvp_gflops": rates[1] * flops[1] / 1e9,
                "flops_per_eval": {"value_grad": flops[0], "hvp": flops[1]},
                "interpreter_fallbacks": fallbacks,
            }),
        );
    }
    let ms = |t: std::time::Duration| t.as_secs_f64() * 1e3;
    let dims = dims_json(&template);
    const PEAK_SIZE: usize = 512;
    let mut json = serde_json::json!({
        "file": a.model.file.display().to_string(),
        "dims": dims,
        "simplified": !a.no_simplify,
        "load_ms": ms(load_time),
        "backends": results,
        "matmul_peak": {
            "size": PEAK_SIZE,
            "gflops": bench::matmul_gflops(PEAK_SIZE, budget),
        },
    });
    if let Some((derive_time, codegen)) = compile {
        json["compile_ms"] = serde_json::json!(ms(front_end + derive_time + codegen));
        json["compile_breakdown_ms"] = serde_json::json!({
            "front_end": ms(front_end),
            "differentiate_simplify": ms(derive_time),
            "codegen": ms(codegen),
        });
    }
    if let (Some(cpu), Some(interp)) = (results.get("cpu"), results.get("interp")) {
        let ratio = |k: &str| cpu[k].as_f64().unwrap_or(0.0) / interp[k].as_f64().unwrap_or(1.0);
        json["speedup_cpu_over_interp"] = serde_json::json!({
            "value_grad": ratio("value_grad_per_s"),
            "hvp": ratio("hvp_per_s"),
        });
    }
    if a.json {
        println!("{json}");
    } else {
        let dims_text: Vec<String> = dims.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("{} at {}", a.model.file.display(), dims_text.join(", "));
        if let Some(c) = json.get("compile_ms") {
            println!(
                "compile (source to native code)  {:.1} ms",
                c.as_f64().unwrap_or(f64::NAN)
            );
        }
        println!(
            "{:<8} {:>16} {:>10} {:>14} {:>10}",
            "backend", "value+grad /s", "GFLOP/s", "hvp /s", "GFLOP/s"
        );
        let number = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        for (name, r) in &results {
            println!(
                "{name:<8} {:>16.1} {:>10.2} {:>14.1} {:>10.2}",
                number(r, "value_grad_per_s"),
                number(r, "value_grad_gflops"),
                number(r, "hvp_per_s"),
                number(r, "hvp_gflops"),
            );
            for reason in r["interpreter_fallbacks"].as_array().into_iter().flatten() {
                println!(
                    "         note: ran on the interpreter: {}",
                    reason.as_str().unwrap_or("")
                );
            }
        }
        println!(
            "matmul peak (f64, {PEAK_SIZE}x{PEAK_SIZE}, one thread): {:.2} GFLOP/s",
            number(&json["matmul_peak"], "gflops")
        );
    }
    Ok(EXIT_OK)
}

/// The model's dimension sizes as a JSON object (`{"n": 1000, "d": 100}`).
fn dims_json(model: &Model) -> serde_json::Map<String, serde_json::Value> {
    let names = model.program.dims.iter().map(|d| d.name.clone());
    names
        .zip(&model.bindings.dims)
        .map(|(name, size)| (name, serde_json::json!(size)))
        .collect()
}

/// A gpu artifact's plan loaded on the device [`optc_runtime::gpu::DEVICE_ENV`] chooses.
type GpuExecutor = optc_runtime::gpu::exec::Executor<Box<dyn optc_runtime::gpu::device::Device>>;

/// The gpu artifact of `m` checked for this machine, its model bound by `spec` (on the CPU: it
/// serves everything but the objective's value and gradient) and the executor of its GPU plan
/// with the data uploaded. Exit codes: 64 for dims that differ from the artifact's, 69 for no
/// usable device (or a `.opt` source), 65 for the model's errors.
fn open_gpu(m: &ModelArgs, spec: BindSpec) -> Result<(Front, Model, GpuExecutor), u8> {
    use optc_runtime::gpu;
    let fail = |d: Diagnostic| {
        let code = gpu_exit_code(&d);
        report::print_diagnostics(&[d], &SourceMap::new(), m.error_format);
        code
    };
    let artifact = match read_input(m)? {
        Input::Artifact(art) => art,
        Input::Source(_) => return Err(fail(gpu::unavailable())),
    };
    gpu::check_artifact(&artifact, &spec.dims).map_err(fail)?;
    let (front, model) = load_model_with(m, spec, args::BackendArg::Cpu)?;
    let executor = gpu::open(&artifact, &model.bindings).map_err(fail)?;
    Ok((front, model, executor))
}

/// The exit code of a `--backend gpu` error: 64 for dims that differ from the artifact's, 69 for
/// what this machine or build cannot do (no driver or GPU runtime, not a gpu artifact, a failing
/// CUDA call or missing CUDA library, a plan without the solver's functions), 65 for the model's
/// errors.
fn gpu_exit_code(d: &Diagnostic) -> u8 {
    use optc_runtime::gpu;
    match d.code {
        c if c == gpu::DIMS_DIFFER => EXIT_USAGE,
        c if [
            gpu::NO_DRIVER,
            gpu::NOT_IN_BUILD,
            gpu::NEEDS_GPU_ARTIFACT,
            gpu::DEVICE_FAILED,
            gpu::METHOD_NOT_ON_GPU,
        ]
        .contains(&c) =>
        {
            EXIT_UNAVAILABLE
        }
        _ => EXIT_MODEL,
    }
}

/// `optc bench ART.optx --backend gpu`: the value and gradient at the initial point, and
/// value+gradient evaluations per second, on the device (`optc_runtime::gpu`).
fn bench_gpu(a: &args::BenchArgs) -> Result<u8, u8> {
    use optc_runtime::gpu;
    let mut spec = bind_spec(&a.bind)?;
    if !spec.dims.is_empty() {
        spec.random_data = Some(1);
    }
    let (_, model, mut executor) = open_gpu(&a.model, spec)?;
    // A failing CUDA call or missing CUDA library is the machine's (69); the rest the model's.
    let failed = |d: Diagnostic| {
        let code = gpu_exit_code(&d);
        report::print_diagnostics(&[d], &SourceMap::new(), a.model.error_format);
        code
    };
    let x = model.x();
    let budget = std::time::Duration::from_millis(a.time_ms);
    let gpu::Measured {
        value,
        gradient,
        resident_per_s: rate,
        with_transfers_per_s,
        adam_steps_per_s,
    } = gpu::measure(&mut executor, &x, budget).map_err(|e| failed(e.into()))?;
    let dims = dims_json(&model);
    let device = optc_runtime::gpu::device::Device::name(executor.device());
    let gradient_norm = gradient.iter().map(|g| g * g).sum::<f64>().sqrt();
    let kernel_load_ms = executor.kernel_load_time().as_secs_f64() * 1e3;
    if a.json {
        let mut entry = serde_json::json!({
            "device": device,
            "value_grad_per_s": rate,
            "value_grad_with_transfers_per_s": with_transfers_per_s,
            "kernel_load_ms": kernel_load_ms,
            "value": value,
            "gradient_norm": gradient_norm,
        });
        if let Some(steps) = adam_steps_per_s {
            entry["adam_steps_per_s"] = serde_json::json!(steps);
        }
        // The whole gradient for comparisons, unless it is large.
        if gradient.len() <= 100_000 {
            entry["gradient"] = serde_json::json!(gradient);
        }
        let json = serde_json::json!({
            "file": a.model.file.display().to_string(),
            "dims": dims,
            "backends": {"gpu": entry},
        });
        println!("{json}");
    } else {
        println!("{} on {device}", a.model.file.display());
        println!("kernels loaded in {kernel_load_ms:.1} ms");
        println!("value {value:.12e}, gradient norm {gradient_norm:.6e}");
        println!("value+grad /s {rate:.1} ({:.3} ms each)", 1e3 / rate);
        println!(
            "value+grad /s {with_transfers_per_s:.1} ({:.3} ms each) uploading the point and downloading the gradient",
            1e3 / with_transfers_per_s
        );
        if let Some(steps) = adam_steps_per_s {
            println!(
                "Adam steps /s {steps:.1} ({:.3} ms each) with the path's iterates on the device",
                1e3 / steps
            );
        }
    }
    Ok(EXIT_OK)
}

/// Relative gradient error above which `--check-grad` reports a bug in optc (exit 70).
const GRAD_CHECK_LIMIT: f64 = 1e-5;

/// Runs `--check-grad`; prints the human line on stderr and returns the JSON value.
fn grad_check(model: &Model, sources: &SourceMap, m: &ModelArgs) -> Result<serde_json::Value, u8> {
    use optc_runtime::gradcheck::{check_gradient, GradCheckError};
    let mut probe = Model::new(model.program.clone(), model.bindings.clone()).map_err(|d| {
        report::print_diagnostics(&[d], sources, m.error_format);
        EXIT_MODEL
    })?;
    probe.set_backend(model.backend());
    let r = match check_gradient(&mut probe, 1) {
        Ok(r) => r,
        Err(GradCheckError::Derivative(e)) => {
            return Err(derive_failed(&e, &probe.program, sources, m))
        }
        Err(GradCheckError::Eval(e)) => return Err(eval_failed(e, &probe.program, sources, m)),
    };
    let kinks = match r.kinks {
        0 => String::new(),
        k => format!(" ({k} skipped at kinks, where the derivative jumps)"),
    };
    let undefined = match r.undefined {
        0 => String::new(),
        k => format!("; {k} skipped where a probe point could not be evaluated"),
    };
    let left_out = match r.left_out {
        0 => String::new(),
        k => format!(
            "; {k} `nuclear_norm` term(s) left out (applied by their prox, not by gradients)"
        ),
    };
    eprintln!(
        "grad check: max relative error {:.2e} (gradient), {:.2e} (Hessian-vector product) at {} points, {} coordinates each{kinks}{undefined}{left_out}",
        r.max_rel_error, r.hvp_max_rel_error, r.points, r.coordinates
    );
    if r.max_rel_error > GRAD_CHECK_LIMIT || r.hvp_max_rel_error > GRAD_CHECK_LIMIT {
        eprintln!("internal error: the derivatives disagree with finite differences; this is a bug in optc, please report it");
        return Err(EXIT_INTERNAL);
    }
    Ok(serde_json::json!({
        "max_rel_error": r.max_rel_error,
        "hvp_max_rel_error": r.hvp_max_rel_error,
        "points": r.points,
        "coordinates": r.coordinates,
        "kinks": r.kinks,
        "undefined": r.undefined,
        "left_out": r.left_out,
    }))
}
