//! Lexical pre-scan run before pest: finds problems pest would report badly or could not survive
//! (bracket nesting deeper than [`MAX_BRACKET_DEPTH`], unclosed or mismatched brackets,
//! unterminated strings, bad escapes, stray characters) and records where statements start so the
//! parser can resume there after a syntax error. Strings and comments are skipped correctly.

use crate::diag::{Diagnostic, Diagnostics, FileId, Span};

/// Deepest bracket nesting accepted (E0003 beyond).
pub const MAX_BRACKET_DEPTH: usize = 64;
/// At most this many stray characters are reported.
const MAX_INVALID_CHARACTERS: usize = 20;

/// Keywords that begin a top-level statement.
pub const STATEMENT_KEYWORDS: &[&str] = &[
    "dims", "data", "param", "var", "let", "fn", "minimize", "maximize", "subject", "solve",
    "output",
];

/// Whether a pre-scan error leaves brackets or strings unbalanced, so that parsing cannot go on.
pub fn breaks_structure(code: &str) -> bool {
    matches!(code, "E0002" | "E0003" | "E0007" | "E0008")
}

/// What the pre-scan learned about a file.
pub struct Scan {
    pub diagnostics: Diagnostics,
    /// Byte offsets of statement keywords that begin a line (or follow `;`) at bracket depth 0.
    pub statement_starts: Vec<usize>,
}

fn is_allowed_punct(c: char) -> bool {
    "+-*/@^.,:;=<>()[]{}|".contains(c)
}

fn closer_of(open: char) -> char {
    match open {
        '(' => ')',
        '[' => ']',
        _ => '}',
    }
}

/// Scans `text` (file `file`).
pub fn scan(text: &str, file: FileId) -> Scan {
    let span = |start: usize, end: usize| Span::new(file, start, end);
    let mut diagnostics = Diagnostics::new();
    let mut statement_starts = Vec::new();
    let mut open: Vec<(char, usize)> = Vec::new();
    let mut brackets_ok = true;
    let mut at_statement_start = true;
    let mut invalid_characters = 0;
    let bytes = text.as_bytes();
    let mut chars = text.char_indices().peekable();

    while let Some((i, c)) = chars.next() {
        let starts_statement = std::mem::replace(&mut at_statement_start, false);
        match c {
            ' ' | '\t' | '\r' => at_statement_start = starts_statement,
            '\n' | ';' => at_statement_start = open.is_empty(),
            '#' => {
                while chars.next_if(|&(_, c)| c != '\n').is_some() {}
                at_statement_start = starts_statement;
            }
            '"' => {
                if let Some(d) = scan_string(text, i, &mut chars, span) {
                    // An unterminated string swallowed the rest of its line, brackets included.
                    brackets_ok &= d.code != "E0002";
                    diagnostics.push(d);
                }
            }
            '(' | '[' | '{' => {
                open.push((c, i));
                if open.len() > MAX_BRACKET_DEPTH {
                    diagnostics.push(
                        Diagnostic::error("E0003", "brackets are nested too deeply")
                            .with_primary(
                                span(i, i + 1),
                                format!("more than {MAX_BRACKET_DEPTH} open brackets here"),
                            )
                            .with_hint("split the expression with `let` statements"),
                    );
                    return Scan {
                        diagnostics,
                        statement_starts,
                    };
                }
            }
            ')' | ']' | '}' if brackets_ok => match open.pop() {
                Some((o, _)) if closer_of(o) == c => {}
                Some((o, at)) => {
                    brackets_ok = false;
                    diagnostics.push(
                        Diagnostic::error("E0008", format!("mismatched closing delimiter `{c}`"))
                            .with_primary(span(i, i + 1), format!("expected `{}`", closer_of(o)))
                            .with_label(span(at, at + 1), format!("`{o}` opened here")),
                    );
                }
                None => {
                    brackets_ok = false;
                    diagnostics.push(
                        Diagnostic::error("E0008", format!("unexpected closing delimiter `{c}`"))
                            .with_primary(span(i, i + 1), "no bracket is open here"),
                    );
                }
            },
            ')' | ']' | '}' => {}
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = i + 1;
                while end < bytes.len()
                    && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_')
                {
                    chars.next();
                    end += 1;
                }
                if starts_statement && STATEMENT_KEYWORDS.contains(&&text[i..end]) {
                    statement_starts.push(i);
                }
            }
            c if c.is_ascii_digit() || is_allowed_punct(c) => {}
            other => {
                invalid_characters += 1;
                if invalid_characters <= MAX_INVALID_CHARACTERS {
                    // `X'` (MATLAB's transpose) follows a name or a closing bracket.
                    let after_operand = text[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|p| p.is_ascii_alphanumeric() || matches!(p, '_' | ')' | ']'));
                    let d = invalid_character(other, span(i, i + other.len_utf8()));
                    diagnostics.push(match (other, after_operand) {
                        ('\'', true) => d.with_hint("to transpose, write `transpose(X)`; strings use double quotes: \"file.npy\""),
                        _ => d,
                    });
                }
            }
        }
    }
    if brackets_ok {
        if let Some(&(o, at)) = open.last() {
            diagnostics.push(
                Diagnostic::error("E0007", format!("unclosed delimiter `{o}`"))
                    .with_primary(span(at, at + 1), "this bracket is never closed")
                    .with_hint(format!("add the matching `{}`", closer_of(o))),
            );
        }
    }
    Scan {
        diagnostics,
        statement_starts,
    }
}

/// Scans a string literal starting at the quote at `start`; consumes it from `chars`.
fn scan_string(
    text: &str,
    start: usize,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    span: impl Fn(usize, usize) -> Span,
) -> Option<Diagnostic> {
    let mut bad_escape = None;
    loop {
        match chars.peek().copied() {
            None | Some((_, '\n')) => {
                let end = chars.peek().map_or(text.len(), |&(j, _)| j);
                return Some(
                    Diagnostic::error("E0002", "unterminated string literal")
                        .with_primary(span(start, end), "this string has no closing `\"`")
                        .with_note("strings end on the line where they start")
                        .with_hint("add a closing `\"`"),
                );
            }
            Some((_, '"')) => {
                chars.next();
                return bad_escape;
            }
            Some((j, '\\')) => {
                chars.next();
                if let Some((k, e)) = chars.next_if(|&(_, e)| e != '\n') {
                    if !matches!(e, '"' | '\\' | 'n') && bad_escape.is_none() {
                        bad_escape = Some(
                            Diagnostic::error("E0009", format!("invalid escape `\\{e}` in string"))
                                .with_primary(span(j, k + e.len_utf8()), "unknown escape")
                                .with_hint("the escapes are `\\\"`, `\\\\` and `\\n`"),
                        );
                    }
                }
            }
            Some(_) => {
                chars.next();
            }
        }
    }
}

fn invalid_character(c: char, span: Span) -> Diagnostic {
    let d = Diagnostic::error("E0010", format!("invalid character `{}`", c.escape_debug()))
        .with_primary(span, "not part of the language");
    match c {
        '!' => d.with_hint("`!=` is not supported; constraints use `==`, `<=` or `>=`"),
        '\'' => d.with_hint("strings use double quotes: \"file.npy\""),
        '%' => d.with_hint("comments start with `#`"),
        '&' => d.with_hint("write several constraints on separate lines instead of `&`"),
        c if c.is_alphabetic() => d.with_hint("names use ASCII letters, digits and `_`"),
        _ => d,
    }
}
