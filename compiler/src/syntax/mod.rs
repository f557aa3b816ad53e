//! The `.opt` parser: source text → [`ast::Module`] with precise spans, or diagnostics.
//!
//! Pipeline: a lexical pre-scan ([`lexical`]) rejects what pest should never see (too-deep nesting,
//! unbalanced brackets, broken strings) and reports stray characters and bad escapes; then, unless
//! the structure is broken, the pest grammar (`grammar.pest`,
//! the single source of truth for the syntax) parses one statement at a time, so that after a
//! syntax error the parser resumes at the next statement and reports several errors in one run;
//! `build` turns pest pairs into the AST (precedence, pipe desugaring, literal validation, depth
//! limit). Pest's rule names never reach the user: `errors` translates them into words.

mod build;
pub mod codes;
mod errors;
pub mod lexical;
mod print;

pub use print::{ast_to_text, expr_text};

use crate::ast;
use crate::diag::{Diagnostics, FileId, SourceMap};
use pest::Parser;

/// Deepest expression tree accepted (E0003 beyond).
pub const MAX_EXPR_DEPTH: u32 = 256;
/// Parsing stops after this many syntax errors.
const MAX_SYNTAX_ERRORS: usize = 20;

/// The pest parser; private so that rule names stay an implementation detail.
mod grammar {
    #[derive(pest_derive::Parser)]
    #[grammar = "syntax/grammar.pest"]
    pub struct Grammar;
}
use grammar::{Grammar, Rule};

/// Parses file `file` of `sources`. Returns the module when there is no error (warnings may still
/// be present), otherwise `None` and at least one error.
pub fn parse(sources: &SourceMap, file: FileId) -> (Option<ast::Module>, Diagnostics) {
    let text = sources.get(file).text.as_str();
    let scan = lexical::scan(text, file);
    if scan
        .diagnostics
        .iter()
        .any(|d| lexical::breaks_structure(d.code))
    {
        return (None, scan.diagnostics);
    }
    // Stray characters and bad escapes leave the structure intact: parse on, but do not repeat
    // a syntax error that a lexical error of the same statement already explains.
    let lexical_errors: Vec<usize> = scan
        .diagnostics
        .iter()
        .filter_map(|d| d.labels.first())
        .map(|l| l.span.start as usize)
        .collect();
    let mut diagnostics = scan.diagnostics;
    let mut items = Vec::new();
    let mut pos = 0;
    let mut syntax_errors = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        match Grammar::parse(Rule::step, rest) {
            Ok(mut pairs) => {
                let Some(step) = pairs.next() else { break };
                let consumed = step.as_span().end();
                let mut builder = build::Builder::new(file, pos, &mut diagnostics);
                if let Some(item) = builder.step(step) {
                    items.push(item);
                }
                if consumed == 0 {
                    break;
                }
                pos += consumed;
            }
            Err(error) => {
                let diagnostic = errors::translate(&error, text, pos, file);
                let error_pos = diagnostic
                    .labels
                    .first()
                    .map_or(pos, |l| l.span.start as usize);
                if !lexical_errors.iter().any(|&p| pos <= p && p <= error_pos) {
                    diagnostics.push(diagnostic);
                    syntax_errors += 1;
                }
                let resume = scan
                    .statement_starts
                    .iter()
                    .find(|&&s| s > pos && s >= error_pos);
                match resume {
                    Some(&next) if syntax_errors < MAX_SYNTAX_ERRORS => pos = next,
                    _ => break,
                }
            }
        }
    }
    diagnostics.sort_by_key(|d| d.labels.first().map(|l| l.span.start));
    if diagnostics.iter().any(|d| d.is_error()) {
        (None, diagnostics)
    } else {
        (Some(ast::Module { items }), diagnostics)
    }
}
