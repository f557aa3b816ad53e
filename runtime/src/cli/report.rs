//! Printing diagnostics on stderr, as text (colour only on a terminal, `NO_COLOR` respected) or
//! one JSON object per line.

use super::args::ErrorFormat;
use optc_compiler::diag::{Diagnostic, SourceMap};
use optc_compiler::render::{render_human, render_json};
use std::io::IsTerminal;

/// Whether stderr gets colour.
pub fn stderr_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

pub fn print_diagnostics(diags: &[Diagnostic], sources: &SourceMap, format: ErrorFormat) {
    if diags.is_empty() {
        return;
    }
    match format {
        ErrorFormat::Human => eprint!("{}", render_human(diags, sources, stderr_color())),
        ErrorFormat::Json => {
            for d in diags {
                eprintln!("{}", render_json(d, sources));
            }
        }
    }
}
