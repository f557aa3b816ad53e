//! The front-end pipeline, listed once: parse → check → lower (→ verify in debug builds).
//!
//! Every command of the CLI that reads a model goes through [`compile`], so `check`, `eval` and
//! `run` report exactly the same diagnostics for the same file.

use crate::ast::Module;
use crate::diag::{Diagnostics, FileId, SourceMap};
use crate::ir::Program;
use crate::sema::TypedModule;
use std::time::{Duration, Instant};

/// How far to take a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Until {
    Ast,
    Typed,
    Ir,
}

/// A model taken as far as asked, with the time each stage took.
#[derive(Debug)]
pub struct Compiled {
    pub sources: SourceMap,
    pub file: FileId,
    pub ast: Module,
    pub typed: Option<TypedModule>,
    pub program: Option<Program>,
    /// Warnings of every stage (errors stop the pipeline instead).
    pub warnings: Diagnostics,
    pub timings: Vec<(&'static str, Duration)>,
}

/// Diagnostics that stopped the pipeline, with the sources they point into.
#[derive(Debug)]
pub struct Failed {
    pub sources: SourceMap,
    pub diagnostics: Diagnostics,
}

fn split(diags: Diagnostics) -> (Diagnostics, Diagnostics) {
    diags.into_iter().partition(|d| d.is_error())
}

/// Runs the pipeline on the text of one file.
pub fn compile(name: &str, text: &str, until: Until) -> Result<Compiled, Box<Failed>> {
    let mut sources = SourceMap::new();
    let file = sources.add(name, text);
    let fail = |sources: SourceMap, diagnostics: Diagnostics| {
        Err(Box::new(Failed {
            sources,
            diagnostics,
        }))
    };
    let mut timings = Vec::new();

    let start = Instant::now();
    let (ast, diags) = crate::syntax::parse(&sources, file);
    let (errors, mut warnings) = split(diags);
    let Some(ast) = ast.filter(|_| errors.is_empty()) else {
        return fail(sources, errors);
    };
    timings.push(("parse", start.elapsed()));
    let mut compiled = Compiled {
        sources,
        file,
        ast,
        typed: None,
        program: None,
        warnings: Vec::new(),
        timings,
    };
    if until == Until::Ast {
        compiled.warnings = warnings;
        return Ok(compiled);
    }

    let start = Instant::now();
    let stdlib = match crate::stdlib::modules(&mut compiled.sources) {
        Ok(m) => m,
        Err(e) => return fail(compiled.sources, e),
    };
    let typed = match crate::sema::check(&compiled.ast, &stdlib) {
        Ok(t) => t,
        Err(e) => return fail(compiled.sources, e),
    };
    warnings.extend(typed.warnings.iter().cloned());
    compiled.timings.push(("check", start.elapsed()));
    if until == Until::Typed {
        compiled.typed = Some(typed);
        compiled.warnings = warnings;
        return Ok(compiled);
    }

    let start = Instant::now();
    let program = match crate::lower::lower(&typed) {
        Ok(p) => p,
        Err(e) => return fail(compiled.sources, e),
    };
    debug_assert!(crate::ir::verify(&program).is_empty());
    warnings.extend(crate::lower::constraints_without_variables(
        &typed, &program,
    ));
    compiled.timings.push(("lower", start.elapsed()));
    compiled.typed = Some(typed);
    compiled.program = Some(program);
    compiled.warnings = warnings;
    Ok(compiled)
}

/// Catalogue entries of the driver's own diagnostics (E0500–E0519).
pub const DRIVER: &[crate::codes::CodeInfo] = &[crate::codes::CodeInfo {
    code: "E0500",
    title: "cannot read the model file",
    explanation: "The .opt file named on the command line does not exist, is not readable, or is
not UTF-8 text.

Example:
    optc check modle.opt

Fix: check the path (it is relative to the current directory) and the file's permissions; save
the file as UTF-8.",
}];

/// The diagnostic for a model file that cannot be read.
pub fn unreadable_file(path: &str, error: &std::io::Error) -> crate::diag::Diagnostic {
    let hint = match error.kind() {
        std::io::ErrorKind::InvalidData => {
            "the file is not UTF-8 text: save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 old.opt > new.opt`)"
        }
        _ => "check the path and the file's permissions",
    };
    crate::diag::Diagnostic::error("E0500", format!("cannot read `{path}`: {error}"))
        .with_hint(hint)
}
