//! Commands of the `optc` tool. Each returns the process exit code.

pub mod args;
mod bind;
mod report;

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
        Command::Eval(_) | Command::Run(_) | Command::Bench(_) | Command::Simulate(_) => {
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
