//! Commands of the `optc` tool. Each returns the process exit code.

pub mod args;
mod bind;
mod report;

use optc_runtime::model::{self, BindSpec, Model};

use args::{Cli, Command, ErrorFormat, ModelArgs};
use optc_compiler::diag::SourceMap;
use optc_compiler::driver::{self, Compiled, Until};

/// Exit codes, documented in README.md and spec/cli.md.
pub const EXIT_OK: u8 = 0;
pub const EXIT_LIMIT: u8 = 1;
pub const EXIT_INFEASIBLE: u8 = 2;
pub const EXIT_USAGE: u8 = 64;
pub const EXIT_MODEL: u8 = 65;
pub const EXIT_NO_INPUT: u8 = 66;
pub const EXIT_INTERNAL: u8 = 70;

pub fn dispatch(cli: Cli) -> u8 {
    let result = match cli.command {
        Command::Check(a) => check(&a.model),
        Command::Emit(a) => emit(&a),
        Command::Explain(a) => explain(&a),
        Command::Eval(a) => eval(&a),
        Command::Simulate(a) => simulate(&a),
        Command::Run(_) | Command::Bench(_) => {
            eprintln!("not wired yet");
            Err(EXIT_INTERNAL)
        }
    };
    result.unwrap_or_else(|code| code)
}

/// Reads and compiles the model as far as asked; on failure prints the diagnostics and gives the
/// exit code.
fn compile(model: &ModelArgs, until: Until) -> Result<Compiled, u8> {
    let path = model.file.display().to_string();
    let text = match std::fs::read_to_string(&model.file) {
        Ok(t) => t,
        Err(e) => {
            let d = driver::unreadable_file(&path, &e);
            report::print_diagnostics(&[d], &SourceMap::new(), model.error_format);
            return Err(if e.kind() == std::io::ErrorKind::NotFound {
                EXIT_NO_INPUT
            } else {
                EXIT_MODEL
            });
        }
    };
    match driver::compile(&path, &text, until) {
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

fn check(model: &ModelArgs) -> Result<u8, u8> {
    compile(model, Until::Ir)?;
    if model.error_format == ErrorFormat::Human {
        eprintln!("{}: ok", model.file.display());
    }
    Ok(EXIT_OK)
}

fn emit(a: &args::EmitArgs) -> Result<u8, u8> {
    use args::Stage;
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
        Stage::Grad | Stage::GradSimplified | Stage::Setup | Stage::Clif => {
            eprintln!("error: this stage is not available yet");
            return Err(EXIT_USAGE);
        }
    };
    print!("{text}");
    Ok(EXIT_OK)
}

fn explain(a: &args::ExplainArgs) -> Result<u8, u8> {
    use optc_compiler::codes;
    if a.list {
        for info in codes::all() {
            println!("{}  {}", info.code, info.title);
        }
        return Ok(EXIT_OK);
    }
    let Some(code) = &a.code else {
        eprintln!("error: give a diagnostic code (e.g. `optc explain E0001`) or `--list`");
        return Err(EXIT_USAGE);
    };
    match codes::lookup(&code.to_uppercase()) {
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
        spec.data.push((name.to_string(), path.into()));
    }
    for p in &b.params {
        let (name, value) = bind::split_assignment("--param", p).map_err(usage)?;
        let value = bind::parse_param_value(name, value).map_err(usage)?;
        spec.params.push((name.to_string(), value));
    }
    if let Some(dims) = &b.dims {
        spec.dims = bind::parse_dims(dims).map_err(usage)?;
    }
    Ok(spec)
}

/// Compiles the model and binds its data: everything `eval` and `run` need.
fn load_model(m: &ModelArgs, b: &args::BindArgs) -> Result<(Compiled, Model), u8> {
    let spec = bind_spec(b)?;
    let mut compiled = compile(m, Until::Ir)?;
    let program = compiled.program.take().expect("ir stage");
    let dir = m.file.parent().unwrap_or(std::path::Path::new("."));
    let bindings = match model::bind(&program, dir, &spec) {
        Ok(b) => b,
        Err(diags) => {
            report::print_diagnostics(&diags, &compiled.sources, m.error_format);
            let missing = diags
                .iter()
                .any(|d| d.code == optc_runtime::data::FILE_NOT_FOUND);
            return Err(if missing { EXIT_NO_INPUT } else { EXIT_MODEL });
        }
    };
    match Model::new(program, bindings) {
        Ok(model) => Ok((compiled, model)),
        Err(d) => {
            report::print_diagnostics(&[d], &compiled.sources, m.error_format);
            Err(EXIT_MODEL)
        }
    }
}

/// Prints an evaluation error and gives the exit code.
fn eval_failed(e: optc_runtime::interp::EvalError, c: &Compiled, m: &ModelArgs) -> u8 {
    report::print_diagnostics(&[e.into()], &c.sources, m.error_format);
    EXIT_MODEL
}

fn eval(a: &args::EvalArgs) -> Result<u8, u8> {
    let (compiled, mut model) = load_model(&a.model, &a.bind)?;
    let objective = match model.program.objective.clone() {
        Some(o) => model
            .eval_scalar(o.node)
            .map_err(|e| eval_failed(e, &compiled, &a.model))?,
        None => f64::NAN,
    };
    let mut constraints = Vec::new();
    for i in 0..model.program.constraints.len() {
        let v = model
            .violation(i)
            .map_err(|e| eval_failed(e, &compiled, &a.model))?;
        let c = &model.program.constraints[i];
        constraints.push((c.name.clone(), constraint_kind(&c.kind), v));
    }
    if a.json {
        let json = serde_json::json!({
            "objective": objective,
            "constraints": constraints.iter().map(|(n, k, v)| serde_json::json!({
                "name": n, "kind": k, "violation": v,
            })).collect::<Vec<_>>(),
        });
        println!("{json}");
    } else {
        println!("objective  {objective:.10e}");
        for (name, kind, v) in &constraints {
            println!("constraint {name} ({kind})  violation {v:.3e}");
        }
    }
    Ok(EXIT_OK)
}

fn constraint_kind(kind: &optc_compiler::ir::ConstraintKind) -> &'static str {
    use optc_compiler::ir::{ConstraintKind, SetKind};
    match kind {
        ConstraintKind::Eq => "==",
        ConstraintKind::Le => "<=",
        ConstraintKind::In(SetKind::Nonneg) => "in nonneg",
        ConstraintKind::In(SetKind::Simplex) => "in simplex",
        ConstraintKind::In(SetKind::Box { .. }) => "in box",
        ConstraintKind::Card { .. } => "card",
    }
}

/// Writes arrays as `.npy` files into `dir` (each atomically) and lists them on stdout.
fn write_arrays(dir: &std::path::Path, arrays: Vec<(&str, ndarray::ArrayD<f64>)>) -> Result<(), u8> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("error: cannot create `{}`: {e}", dir.display());
        return Err(EXIT_NO_INPUT);
    }
    for (name, array) in arrays {
        let path = dir.join(format!("{name}.npy"));
        if let Err(e) = optc_runtime::data::write_npy(&path, &array) {
            report::print_diagnostics(&[e.into()], &SourceMap::new(), ErrorFormat::Human);
            return Err(EXIT_MODEL);
        }
        println!("{}  {:?}", path.display(), array.shape());
    }
    Ok(())
}

fn simulate(a: &args::SimulateArgs) -> Result<u8, u8> {
    use args::{GraphKind, NoiseKind, SimKind};
    use optc_runtime::simulate as sim;
    let arrays = match a.kind {
        SimKind::Dag => {
            let config = sim::SemConfig {
                d: a.d,
                edges: a.edges.unwrap_or(2 * a.d),
                n: a.n,
                graph: match a.graph {
                    GraphKind::Er => sim::GraphKind::ErdosRenyi,
                    GraphKind::Sf => sim::GraphKind::ScaleFree,
                },
                noise: match a.noise {
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
            let (x, y, beta) = sim::regression(a.n, a.p, a.p.div_ceil(4), 0.1, a.seed);
            vec![
                ("X_reg", x.into_dyn()),
                ("y_reg", y.into_dyn()),
                ("w_true_reg", beta.into_dyn()),
            ]
        }
        SimKind::Ot => {
            let (sa, sb, c) = sim::ot(a.p, a.p, a.seed);
            vec![("a", sa.into_dyn()), ("b", sb.into_dyn()), ("C", c.into_dyn())]
        }
        SimKind::Denoise => {
            let (y, clean) = sim::denoise(a.n, a.seed);
            vec![("y", y.into_dyn()), ("x_clean", clean.into_dyn())]
        }
    };
    write_arrays(&a.out, arrays)?;
    Ok(EXIT_OK)
}
