//! Shared front end for the integration tests: stdlib + file → parse → check.
#![allow(dead_code)] // each test binary uses only some of these helpers

use optc_compiler::autodiff::gradient;
use optc_compiler::diag::{Diagnostics, SourceMap};
use optc_compiler::ir::{InputId, NodeId, Program};
use optc_compiler::sema::{self, TypedModule};
use optc_compiler::{render, stdlib, syntax};
use std::path::Path;

/// Loads the stdlib and the fixture into one source map, then parses and checks the fixture.
fn front_end(path: &Path) -> (SourceMap, Result<TypedModule, Diagnostics>) {
    let mut sources = SourceMap::new();
    let lib = match stdlib::modules(&mut sources) {
        Ok(lib) => lib,
        Err(d) => return (sources, Err(d)),
    };
    let name = path
        .file_name()
        .map_or("input.opt".into(), |n| n.to_string_lossy().into_owned());
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    let file = sources.add(name, text);
    let (module, diags) = syntax::parse(&sources, file);
    let result = match module {
        Some(module) => sema::check(&module, &lib),
        None => Err(diags),
    };
    (sources, result)
}

/// The typed module, or the rendered diagnostics (no colour).
pub fn check_file(path: &Path) -> Result<TypedModule, String> {
    let (sources, result) = front_end(path);
    result.map_err(|d| render::render_human(&d, &sources, false))
}

/// The rendered errors of a rejected file, or the warnings of an accepted one.
pub fn diagnostics_text(path: &Path) -> String {
    let (sources, result) = front_end(path);
    let diags = match result {
        Ok(typed) => typed.warnings,
        Err(d) => d,
    };
    render::render_human(&diags, &sources, false)
}

/// The lowered program of fixture `tests/ok/FILE` (an objective and a constraint) with roots: the
/// objective, the first constraint, then the gradient of each with respect to every variable.
pub fn objective_and_constraint_gradients(file: &str) -> (Program, Vec<NodeId>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ok")
        .join(file);
    let typed = check_file(&path).unwrap();
    let mut p = optc_compiler::lower::lower(&typed).unwrap();
    let vars: Vec<InputId> = p.variables().collect();
    let f = p.objective.as_ref().unwrap().node;
    let h = p.constraints[0].node;
    let mut roots = vec![f, h];
    roots.extend(gradient(&mut p, f, &vars).unwrap());
    roots.extend(gradient(&mut p, h, &vars).unwrap());
    (p, roots)
}
