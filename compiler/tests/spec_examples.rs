//! The language reference and the examples stay valid: every ```` ```opt ```` block of `spec/*.md`
//! and every `examples/**/*.opt` file must parse without diagnostics, and every
//! ```` ```opt-fragment ```` block must parse as statements, constraints, types or expressions.

use optc_compiler::diag::{Diagnostics, SourceMap};
use optc_compiler::syntax::parse;
use std::fs;
use std::path::{Path, PathBuf};

/// A code block taken from a Markdown file.
struct Block {
    /// `file.md:line` of the opening fence, for failure messages.
    origin: String,
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
                            text: lines.join("\n") + "\n",
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

/// Parses `text` and renders its diagnostics as `line:col: CODE message` lines (empty when clean).
fn parse_problems(origin: &str, text: &str) -> Result<(), String> {
    let mut sources = SourceMap::new();
    let file = sources.add(origin, text);
    let (module, diagnostics): (_, Diagnostics) = parse(&sources, file);
    if diagnostics.is_empty() && module.is_some() {
        return Ok(());
    }
    let source = sources.get(file);
    let mut report = String::new();
    for diagnostic in &diagnostics {
        let position = diagnostic
            .labels
            .iter()
            .find(|label| label.primary)
            .or(diagnostic.labels.first())
            .map(|label| {
                let (line, col) = source.line_col(label.span.start as usize);
                format!("{line}:{col}")
            })
            .unwrap_or_else(|| "?".to_string());
        report += &format!(
            "  block line {position}: {} {}\n",
            diagnostic.code, diagnostic.message
        );
    }
    if module.is_none() && diagnostics.is_empty() {
        report += "  no module and no diagnostics\n";
    }
    Err(report)
}

fn assert_all_parse(items: &[(String, String)]) {
    let failures: Vec<String> = items
        .iter()
        .filter_map(|(origin, text)| {
            parse_problems(origin, text)
                .err()
                .map(|report| format!("{origin}:\n{report}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} sources do not parse cleanly:\n{}",
        failures.len(),
        items.len(),
        failures.join("\n")
    );
}

#[test]
fn spec_opt_blocks_parse() {
    let blocks: Vec<(String, String)> = spec_blocks("opt")
        .into_iter()
        .map(|block| (block.origin, block.text))
        .collect();
    assert!(blocks.len() >= 8, "expected the spec's complete models");
    assert_all_parse(&blocks);
}

#[test]
fn example_files_parse() {
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
    assert_all_parse(&examples);
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
        .filter(|block| !fragment_parses(&block.origin, &block.text))
        .map(|block| format!("{}:\n{}", block.origin, block.text))
        .collect();
    assert!(
        failures.is_empty(),
        "fragments that parse neither as statements, constraints, types nor expressions:\n{}",
        failures.join("\n")
    );
}
