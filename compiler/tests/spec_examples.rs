//! The language reference and the examples stay valid: every ```` ```opt ```` block of `spec/*.md`
//! and every `examples/**/*.opt` file must parse without diagnostics and pass the checker and the
//! lowering to IR without errors; every ```` ```opt-fragment ```` block must parse as statements,
//! constraints, types or expressions.

use optc_compiler::diag::{Diagnostic, Diagnostics, SourceMap};
use optc_compiler::driver::{compile, Until};
use optc_compiler::syntax::parse;
use std::fs;
use std::path::{Path, PathBuf};

/// A code block taken from a Markdown file.
struct Block {
    /// `file.md:line` of the opening fence, for failure messages.
    origin: String,
    /// The Markdown file, as the source name of diagnostics.
    file: String,
    /// The block's code, preceded by one empty line per line before it, so that diagnostics give
    /// line numbers of the Markdown file.
    text: String,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("compiler/ has a parent directory")
        .to_path_buf()
}

fn files_with_extension(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = fs::read_dir(&current)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", current.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == extension) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The code blocks of a Markdown text whose fence is tagged exactly `tag`.
fn fenced_blocks(name: &str, markdown: &str, tag: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, bool, Vec<&str>)> = None;
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match current.as_mut() {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    current = Some((index + 1, info.trim() == tag, Vec::new()));
                }
            }
            Some((start, wanted, lines)) => {
                if trimmed.starts_with("```") {
                    if *wanted {
                        blocks.push(Block {
                            origin: format!("{name}:{start}"),
                            file: name.to_string(),
                            text: "\n".repeat(*start) + &lines.join("\n") + "\n",
                        });
                    }
                    current = None;
                } else {
                    lines.push(line);
                }
            }
        }
    }
    assert!(current.is_none(), "{name}: unterminated code block");
    blocks
}

fn spec_blocks(tag: &str) -> Vec<Block> {
    let spec_dir = repo_root().join("spec");
    files_with_extension(&spec_dir, "md")
        .iter()
        .flat_map(|path| {
            let name = path.strip_prefix(repo_root()).unwrap_or(path);
            let text = fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            fenced_blocks(&name.display().to_string(), &text, tag)
        })
        .collect()
}

/// `  LINE:COL: CODE message` lines for `diagnostics`, positions taken from `sources`.
fn describe(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let mut report = String::new();
    for diagnostic in diagnostics {
        let position = diagnostic
            .labels
            .iter()
            .find(|label| label.primary)
            .or(diagnostic.labels.first())
            .map(|label| {
                let file = sources.get(label.span.file);
                let (line, col) = file.line_col(label.span.start as usize);
                format!("{}:{line}:{col}", file.name)
            })
            .unwrap_or_else(|| "?".to_string());
        report += &format!("  {position}: {} {}\n", diagnostic.code, diagnostic.message);
    }
    report
}

/// Parses `text` of source `name`; `Err` lists its diagnostics.
fn parse_problems(name: &str, text: &str) -> Result<(), String> {
    let mut sources = SourceMap::new();
    let file = sources.add(name, text);
    let (module, diagnostics): (_, Diagnostics) = parse(&sources, file);
    match (module, diagnostics.is_empty()) {
        (Some(_), true) => Ok(()),
        (None, true) => Err("  no module and no diagnostics\n".to_string()),
        _ => Err(describe(&diagnostics, &sources)),
    }
}

/// Parses without diagnostics, then checks and lowers to IR without errors.
fn model_problems(name: &str, text: &str) -> Result<(), String> {
    parse_problems(name, text)?;
    compile(name, text, Until::Ir)
        .map(|_| ())
        .map_err(|failed| describe(&failed.diagnostics, &failed.sources))
}

fn assert_all_compile(items: &[(String, String)]) {
    let failures: Vec<String> = items
        .iter()
        .filter_map(|(origin, text)| {
            model_problems(origin, text)
                .err()
                .map(|report| format!("{origin}:\n{report}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} models do not parse and check cleanly:\n{}",
        failures.len(),
        items.len(),
        failures.join("\n")
    );
}

#[test]
fn spec_opt_blocks_check() {
    let blocks: Vec<(String, String)> = spec_blocks("opt")
        .into_iter()
        .map(|block| (block.file, block.text))
        .collect();
    assert!(blocks.len() >= 8, "expected the spec's complete models");
    assert_all_compile(&blocks);
}

#[test]
fn example_files_check() {
    let root = repo_root();
    let examples: Vec<(String, String)> = files_with_extension(&root.join("examples"), "opt")
        .iter()
        .map(|path| {
            let name = path
                .strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string();
            let text = fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (name, text)
        })
        .collect();
    assert!(examples.len() >= 7, "expected the seven example models");
    assert_all_compile(&examples);
}

/// Ways a fragment can be completed into a parsable file: as it is (statements), as the constraints
/// of a `subject to` block, or line by line as types or expressions.
fn fragment_parses(origin: &str, text: &str) -> bool {
    if parse_problems(origin, text).is_ok() {
        return true;
    }
    if parse_problems(origin, &format!("subject to\n{text}")).is_ok() {
        return true;
    }
    let lines: Vec<&str> = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .collect();
    lines.iter().all(|line| {
        parse_problems(origin, &format!("data fragment_ : {line}\n")).is_ok()
            || parse_problems(origin, &format!("let fragment_ = {line}\n")).is_ok()
            || parse_problems(origin, &format!("subject to\n  {line}\n")).is_ok()
    })
}

#[test]
fn spec_fragments_parse() {
    let failures: Vec<String> = spec_blocks("opt-fragment")
        .into_iter()
        .filter(|block| !fragment_parses(&block.file, &block.text))
        .map(|block| format!("{}:\n{}", block.origin, block.text.trim_start()))
        .collect();
    assert!(
        failures.is_empty(),
        "fragments that parse neither as statements, constraints, types nor expressions:\n{}",
        failures.join("\n")
    );
}
