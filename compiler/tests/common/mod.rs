//! Shared front end for the integration tests: stdlib + file → parse → check.
#![allow(dead_code)] // each test binary uses only some of these helpers

use optc_compiler::diag::{Diagnostics, SourceMap};
use optc_compiler::sema::{self, TypedModule};
use optc_compiler::{render, stdlib, syntax};
use std::path::Path;

/// Parses and checks one fixture; `Err` holds the rendered diagnostics (no colour).
pub fn check_file(path: &Path) -> Result<TypedModule, String> {
    let mut sources = SourceMap::new();
    let lib =
        stdlib::modules(&mut sources).map_err(|d| render::render_human(&d, &sources, false))?;
    let name = path
        .file_name()
        .map_or("input.opt".into(), |n| n.to_string_lossy().into_owned());
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    let file = sources.add(name, text);
    let render = |d: &Diagnostics| render::render_human(d, &sources, false);
    let (module, diags) = syntax::parse(&sources, file);
    let Some(module) = module else {
        return Err(render(&diags));
    };
    sema::check(&module, &lib).map_err(|d| render(&d))
}

/// Like [`check_file`], but renders the warnings of a successful check too.
pub fn diagnostics_text(path: &Path) -> String {
    let mut sources = SourceMap::new();
    let lib = match stdlib::modules(&mut sources) {
        Ok(lib) => lib,
        Err(d) => return render::render_human(&d, &sources, false),
    };
    let name = path
        .file_name()
        .map_or("input.opt".into(), |n| n.to_string_lossy().into_owned());
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    let file = sources.add(name, text);
    let (module, diags) = syntax::parse(&sources, file);
    let Some(module) = module else {
        return render::render_human(&diags, &sources, false);
    };
    match sema::check(&module, &lib) {
        Ok(typed) => render::render_human(&typed.warnings, &sources, false),
        Err(d) => render::render_human(&d, &sources, false),
    }
}
