//! Rendering of diagnostics: the human form (like rustc, via codespan-reporting, with or without
//! ANSI colors) and the machine form (one JSON object per line).

use crate::diag::{Diagnostic, Label, Severity, SourceFile, SourceMap, Span};
use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, termcolor};
use serde_json::{json, Value};
use std::ops::Range;

fn file_of(sources: &SourceMap, span: Span) -> Option<&SourceFile> {
    sources.files().nth(span.file.0 as usize).map(|(_, f)| f)
}

/// The byte range of `span` clamped to `text` and widened to character boundaries.
fn byte_range(text: &str, span: Span) -> Range<usize> {
    let mut start = (span.start as usize).min(text.len());
    let mut end = (span.end as usize).clamp(start, text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    while !text.is_char_boundary(end) {
        end += 1;
    }
    start..end
}

fn to_codespan(diag: &Diagnostic, sources: &SourceMap) -> cs::Diagnostic<usize> {
    let severity = match diag.severity {
        Severity::Error => cs::Severity::Error,
        Severity::Warning => cs::Severity::Warning,
    };
    let labels = diag
        .labels
        .iter()
        .filter_map(|label| {
            let file = file_of(sources, label.span)?;
            let range = byte_range(&file.text, label.span);
            let id = label.span.file.0 as usize;
            let l = if label.primary {
                cs::Label::primary(id, range)
            } else {
                cs::Label::secondary(id, range)
            };
            Some(l.with_message(label.message.clone()))
        })
        .collect();
    let notes = diag
        .notes
        .iter()
        .map(|n| format!("note: {n}"))
        .chain(diag.hint.iter().map(|h| format!("help: {h}")))
        .collect();
    cs::Diagnostic::new(severity)
        .with_code(diag.code)
        .with_message(diag.message.clone())
        .with_labels(labels)
        .with_notes(notes)
}

/// Renders `diags` like rustc: `error[E0001]: message`, `--> file:line:col`, the source lines with
/// carets and label messages, then `= note: ...` and `= help: ...`.
pub fn render_human(diags: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    let mut files = SimpleFiles::new();
    for (_, file) in sources.files() {
        files.add(file.name.as_str(), file.text.as_str());
    }
    let config = term::Config {
        chars: term::Chars::ascii(),
        ..term::Config::default()
    };
    let mut out = Vec::new();
    for diag in diags {
        let rendered = to_codespan(diag, sources);
        let result = if color {
            term::emit_to_write_style(
                &mut termcolor::Ansi::new(&mut out),
                &config,
                &files,
                &rendered,
            )
        } else {
            term::emit_to_write_style(
                &mut termcolor::NoColor::new(&mut out),
                &config,
                &files,
                &rendered,
            )
        };
        if result.is_err() {
            out.extend(
                format!(
                    "{}[{}]: {}\n",
                    severity_word(diag.severity),
                    diag.code,
                    diag.message
                )
                .bytes(),
            );
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// `{"file","line","column","end_line","end_column"}` of `span` (1-based, columns in characters);
/// nulls when the span's file is unknown.
fn location(span: Span, sources: &SourceMap) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    let (file, (line, column), (end_line, end_column)) = match file_of(sources, span) {
        Some(f) => {
            let range = byte_range(&f.text, span);
            (
                json!(f.name),
                f.line_col(range.start),
                f.line_col(range.end),
            )
        }
        None => (Value::Null, (0, 0), (0, 0)),
    };
    let number = |n: usize| if n == 0 { Value::Null } else { json!(n) };
    map.insert("file".into(), file);
    map.insert("line".into(), number(line));
    map.insert("column".into(), number(column));
    map.insert("end_line".into(), number(end_line));
    map.insert("end_column".into(), number(end_column));
    map
}

/// One line of JSON: code, severity, message, the primary location (nulls without labels),
/// labels with their locations, notes and hint.
pub fn render_json(diag: &Diagnostic, sources: &SourceMap) -> String {
    let primary = diag
        .labels
        .iter()
        .find(|l| l.primary)
        .or(diag.labels.first());
    let mut object = serde_json::Map::new();
    object.insert("code".into(), json!(diag.code));
    object.insert("severity".into(), json!(severity_word(diag.severity)));
    object.insert("message".into(), json!(diag.message));
    let here = match primary {
        Some(label) => location(label.span, sources),
        None => ["file", "line", "column", "end_line", "end_column"]
            .into_iter()
            .map(|k| (k.to_string(), Value::Null))
            .collect(),
    };
    object.extend(here);
    let labels: Vec<Value> = diag
        .labels
        .iter()
        .map(
            |Label {
                 span,
                 message,
                 primary,
             }| {
                let mut l = location(*span, sources);
                l.insert("message".into(), json!(message));
                l.insert("primary".into(), json!(primary));
                Value::Object(l)
            },
        )
        .collect();
    object.insert("labels".into(), Value::Array(labels));
    object.insert("notes".into(), json!(diag.notes));
    object.insert("hint".into(), json!(diag.hint));
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::FileId;

    fn sample() -> (SourceMap, FileId) {
        let mut sources = SourceMap::new();
        let file = sources.add("m.opt", "param a = 1\nlet b = a +\n");
        (sources, file)
    }

    #[test]
    fn human_form_has_header_location_caret_and_help() {
        let (sources, file) = sample();
        let d = Diagnostic::error("E0001", "expected an expression, found end of line")
            .with_primary(Span::new(file, 20, 21), "expected an expression")
            .with_note("a note")
            .with_hint("a hint");
        let text = render_human(&[d], &sources, false);
        assert!(
            text.starts_with("error[E0001]: expected an expression"),
            "{text}"
        );
        assert!(text.contains("--> m.opt:2:9"), "{text}");
        assert!(text.contains("^ expected an expression"), "{text}");
        assert!(text.contains("= note: a note"), "{text}");
        assert!(text.contains("= help: a hint"), "{text}");
        assert!(!text.contains('\u{1b}'), "no escapes without color");
        let colored = render_human(&[Diagnostic::error("E0001", "x")], &sources, true);
        assert!(colored.contains('\u{1b}'));
    }

    #[test]
    fn diagnostics_without_labels_render() {
        let (sources, _) = sample();
        let d = Diagnostic::warning("E0001", "no objective");
        assert_eq!(
            render_human(std::slice::from_ref(&d), &sources, false).trim(),
            "warning[E0001]: no objective"
        );
        let v: Value = serde_json::from_str(&render_json(&d, &sources)).unwrap();
        assert_eq!(v["severity"], "warning");
        assert!(v["file"].is_null() && v["line"].is_null());
        assert_eq!(v["labels"], json!([]));
        assert!(v["hint"].is_null());
    }

    #[test]
    fn json_is_one_line_with_locations() {
        let (sources, file) = sample();
        let d = Diagnostic::error("E0006", "bad \"name\"")
            .with_primary(Span::new(file, 16, 17), "here")
            .with_label(Span::new(file, 6, 7), "declared")
            .with_hint("rename");
        let line = render_json(&d, &sources);
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["code"], "E0006");
        assert_eq!(v["message"], "bad \"name\"");
        assert_eq!(
            (v["file"].as_str(), v["line"].as_u64(), v["column"].as_u64()),
            (Some("m.opt"), Some(2), Some(5))
        );
        assert_eq!(
            (v["end_line"].as_u64(), v["end_column"].as_u64()),
            (Some(2), Some(6))
        );
        assert_eq!(v["labels"][1]["line"], 1);
        assert_eq!(v["labels"][1]["column"], 7);
        assert_eq!(v["labels"][1]["primary"], false);
        assert_eq!(v["hint"], "rename");
    }
}
