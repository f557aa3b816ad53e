//! Translation of pest errors into user diagnostics: rule names become words ("expected an
//! expression", "expected `)`"), and common mistakes get their own code and a hint.

use super::lexical::STATEMENT_KEYWORDS;
use super::Rule;
use crate::diag::{Diagnostic, FileId, Span};
use pest::error::{Error, ErrorVariant, InputLocation};

const KEYWORDS: &[&str] = &[
    "dims", "data", "param", "var", "let", "fn", "minimize", "maximize", "subject", "to", "for",
    "in", "solve", "with", "output", "argmin", "true", "false", "real", "int", "bool",
];

const A_STATEMENT: &str = "a statement";
const AN_EXPRESSION: &str = "an expression";
const A_NAME: &str = "a name";
const A_TYPE: &str = "a type such as `real[n, d]`";
const A_COMPARISON: &str = "a comparison (`==`, `<=`, `>=`)";
const A_BOUND: &str = "a bound (`>=`, `<=`)";
const AN_OPERATOR: &str = "an operator";
const END_OF_STATEMENT: &str = "end of the statement";
/// What a dimension in a type may be, for E0011's hint.
pub(super) const DIM_HINT: &str = "a dimension is a name declared with `dims`, that name plus or minus an integer, or an integer literal: `real[n, 3]`, `real[n - 1]`";

/// What the parser wanted when it met rule `rule` at the error position, in words; `None` for
/// rules that add nothing useful to the message.
fn describe(rule: Rule) -> Option<&'static str> {
    use Rule::*;
    Some(match rule {
        step | dims_stmt | data_stmt | param_stmt | var_stmt | let_stmt | fn_stmt | objective
        | constraints | solve_stmt | output_stmt | kw_dims | kw_data | kw_param | kw_var
        | kw_let | kw_fn | kw_minimize | kw_maximize | kw_subject | kw_solve | kw_output => {
            A_STATEMENT
        }
        stmt_end | EOI => END_OF_STATEMENT,
        dim_decl | ident => A_NAME,
        bound | bound_op => A_BOUND,
        fn_param => "a parameter such as `W : real[d, d]`",
        output_item | expr | operand | call | arg | paren | array | argmin | number | string
        | kw_true | kw_false | kw_argmin | op_neg | range_index | solve_fn => AN_EXPRESSION,
        string_body => "the rest of the string",
        constraint | for_constraint | relation | kw_for => "a constraint",
        type_expr | elem_type | kw_real | kw_int | kw_bool => A_TYPE,
        dim => "a dimension (a name, `n - 1`, or an integer)",
        dim_shift => "`+` or `-` and an integer",
        index => return None,
        // Silent rules never appear in errors.
        WHITESPACE | bracketed_newline | COMMENT | cont | statement | infix | primary
        | index_item | lparen | lbracket | lbrace | ident_char | keyword | stmt_keyword => {
            return None
        }
        rparen => "`)`",
        rbracket => "`]`",
        rbrace => "`}`",
        comma => "`,`",
        colon => "`:`",
        assign => "`=`",
        range_dots => "`..`",
        cmp_op => A_COMPARISON,
        op_pipe | op_add | op_sub | op_elem_mul | op_mul | op_div | op_matmul | op_pow => {
            AN_OPERATOR
        }
        kw_to => "`to`",
        kw_in => "`in`",
        kw_with => "`with`",
    })
}

/// "a, b or c"
fn join_alternatives(words: &[&str]) -> String {
    match words {
        [] => "something else".to_string(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The token at byte `pos` of `text`: its end offset and a description such as "`)`".
fn token_at(text: &str, pos: usize) -> (usize, String) {
    let rest = &text[pos..];
    let Some(c) = rest.chars().next() else {
        return (pos, "end of file".to_string());
    };
    if c == '\n' || c == '\r' {
        return (pos, "end of line".to_string());
    }
    let len = if c.is_ascii_alphanumeric() || c == '_' {
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len())
    } else if ["==", "<=", ">=", "|>", ".*", "..", "!="]
        .iter()
        .any(|t| rest.starts_with(t))
    {
        2
    } else {
        c.len_utf8()
    };
    (pos + len, format!("`{}`", &rest[..len]))
}

/// The word (identifier-like) that ends right before byte `pos`, skipping spaces.
fn word_before(text: &str, pos: usize) -> &str {
    let before = text[..pos].trim_end_matches([' ', '\t']);
    // After the last character that is no word character (which may take several bytes).
    let start = before
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    &before[start..]
}

/// Whether the line at byte `pos` follows a `subject to` block's lines (the nearest line above
/// that starts with a statement keyword is `subject to`'s).
fn in_constraints(text: &str, pos: usize) -> bool {
    text[..pos]
        .lines()
        .rev()
        .filter_map(|line| line.split_whitespace().next())
        .find(|word| STATEMENT_KEYWORDS.contains(word))
        == Some("subject")
}

/// The first comparison on the line from `pos` (outside brackets, before a comment) that no
/// constraint takes: a single `=`, a strict `<` or `>`, or `!=`, with its byte position.
fn invalid_comparison(text: &str, pos: usize) -> Option<(usize, &'static str)> {
    let line = text[pos..].split('\n').next().unwrap_or_default();
    let bytes = line.as_bytes();
    let mut depth = 0i32;
    for (i, &b) in bytes.iter().enumerate() {
        let (before, after) = (i.checked_sub(1).map(|j| bytes[j]), bytes.get(i + 1));
        let token = match b {
            b'(' | b'[' => {
                depth += 1;
                continue;
            }
            b')' | b']' => {
                depth -= 1;
                continue;
            }
            b'#' => return None,
            _ if depth != 0 => continue,
            b'!' if after == Some(&b'=') => "!=",
            b'<' if after != Some(&b'=') => "<",
            b'>' if after != Some(&b'=') => ">",
            b'=' if !matches!(before, Some(b'=' | b'<' | b'>' | b'!')) && after != Some(&b'=') => {
                "="
            }
            _ => continue,
        };
        return Some((pos + i, token));
    }
    None
}

/// E0014 for the comparison `token` at byte `at`.
fn comparison_error(file: FileId, at: usize, token: &str) -> Diagnostic {
    let strict = "strict inequalities are not supported";
    let (what, fix) = match token {
        "=" => (
            "`=` is an assignment",
            "write `==` for an equality constraint",
        ),
        "<" => (strict, "use `<=`"),
        ">" => (strict, "use `>=`"),
        _ => (
            "`!=` is not supported",
            "constraints use `==`, `<=` or `>=`",
        ),
    };
    Diagnostic::error("E0014", format!("invalid comparison `{token}`"))
        .with_primary(Span::new(file, at, at + token.len()), what)
        .with_hint(fix)
}

/// Whether byte `pos` is inside the brackets of a type such as `real[n, d]`.
fn inside_type_brackets(text: &str, pos: usize) -> bool {
    let before = &text[..pos];
    let Some(open) = before.rfind(['[', ']', '(', ')', '\n']) else {
        return false;
    };
    before[open..].starts_with('[') && matches!(word_before(text, open), "real" | "int" | "bool")
}

/// Translates a pest error for the input that starts at byte `base` of `text`.
pub fn translate(error: &Error<Rule>, text: &str, base: usize, file: FileId) -> Diagnostic {
    let pos = base
        + match error.location {
            InputLocation::Pos(p) => p,
            InputLocation::Span((s, _)) => s,
        };
    let (end, found) = token_at(text, pos);
    let span = Span::new(file, pos, end);
    let positives: &[Rule] = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => positives,
        ErrorVariant::CustomError { .. } => {
            return Diagnostic::error("E0003", "the statement is nested too deeply")
                .with_primary(span, "the parser gave up here")
                .with_hint("split the statement with `let` statements");
        }
    };
    let mut expected: Vec<&str> = Vec::new();
    for word in positives.iter().filter_map(|&r| describe(r)) {
        if !expected.contains(&word) {
            expected.push(word);
        }
    }
    // Specific tokens first, the generic continuations last.
    expected.sort_by_key(|w| match *w {
        AN_OPERATOR => 2,
        END_OF_STATEMENT => 3,
        w if w.starts_with('`') => 0,
        _ => 1,
    });
    let wants = |w: &str| expected.contains(&w);
    let rest = &text[pos..];
    let word = &text[pos..end];

    let at_line_start = text[..pos].trim_end_matches([' ', '\t']).ends_with('\n');
    let continued_statement = at_line_start && STATEMENT_KEYWORDS.contains(&word);
    if wants(A_NAME) && KEYWORDS.contains(&word) && !continued_statement {
        return Diagnostic::error(
            "E0006",
            format!("`{word}` is a reserved keyword and cannot be used as a name"),
        )
        .with_primary(span, "expected a name, found a keyword")
        .with_hint(format!("choose another name, such as `{word}_`"));
    }
    if wants("`to`") && word_before(text, pos) == "subject" {
        return Diagnostic::error("E0005", "`subject` must be followed by `to`")
            .with_primary(span, "expected `to` here")
            .with_hint("constraints start with `subject to`");
    }
    if wants("`with`") && word_before(text, pos) == "solve" {
        return Diagnostic::error("E0005", "`solve` must be followed by `with`")
            .with_primary(span, "expected `with` here")
            .with_hint("write `solve with lbfgs` or `solve with path(mu = 1)`");
    }
    if wants(A_COMPARISON) || wants(A_BOUND) {
        let wrong = ["!=", "<", ">"]
            .into_iter()
            .chain(wants(A_COMPARISON).then_some("="))
            .find(|t| rest.starts_with(t));
        if let Some(token) = wrong {
            return comparison_error(file, pos, token);
        }
    }
    if let Some(d) = malformed_real(text, pos, span, wants(AN_EXPRESSION)) {
        return d;
    }
    if wants(AN_EXPRESSION) && rest.starts_with(',') {
        return Diagnostic::error("E0012", "empty argument or element")
            .with_primary(span, "expected an expression before this `,`")
            .with_hint("remove the extra `,`");
    }
    if wants(A_TYPE) {
        let hint = if word.starts_with(|c: char| c.is_ascii_alphabetic()) {
            "the element types are `real`, `int` and `bool`"
        } else {
            "write a type such as `real`, `int[n]` or `real[n, d]`"
        };
        return Diagnostic::error("E0011", format!("expected {A_TYPE}, found {found}"))
            .with_primary(span, "expected a type")
            .with_hint(hint);
    }
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let line_before = &text[line_start..pos];
    let after_type = rest.strip_prefix(']').unwrap_or(rest).trim_start();
    if line_before.contains("argmin")
        && (after_type.starts_with(">=") || after_type.starts_with("<="))
    {
        let at = pos + (rest.len() - after_type.len());
        return Diagnostic::error("E0011", "an `argmin` variable takes no bounds")
            .with_primary(Span::new(file, at, at + 2), "a bound on the lower-level variable")
            .with_hint("the lower level is unconstrained: write `argmin z : real[n] { ... }`, and keep `z` in range through its objective (a penalty or a change of variables such as `exp(z)`)");
    }
    if inside_type_brackets(text, pos) && word == "]" && line_before.trim_end().ends_with('[') {
        return Diagnostic::error("E0011", "a type's brackets list no dimension")
            .with_primary(span, "expected a dimension")
            .with_hint(
                "a scalar is `real` (no brackets); a vector is `real[n]`, a matrix `real[n, d]`",
            );
    }
    if inside_type_brackets(text, pos) {
        // Inside `real[...]` the only expression is the integer of a shift (`n - 1`).
        let label = match wants(AN_EXPRESSION) {
            true => "expected an integer literal after `+` or `-`",
            false => "expected `,` or `]` after a dimension",
        };
        return Diagnostic::error(
            "E0011",
            format!("invalid dimension in a type: found {found}"),
        )
        .with_primary(span, label)
        .with_hint(DIM_HINT);
    }
    let indented = text[..pos]
        .rsplit('\n')
        .next()
        .is_some_and(|s| !s.is_empty());
    if wants(A_STATEMENT) && indented && in_constraints(text, pos) {
        // An indented line after `subject to` that is no constraint ends the block; a single
        // `=` or a strict `<` is the usual reason.
        if let Some((at, token)) = invalid_comparison(text, pos) {
            return comparison_error(file, at, token);
        }
    }
    if wants(A_STATEMENT) {
        let mut d = Diagnostic::error("E0013", format!("expected a statement, found {found}"))
            .with_primary(span, "a statement starts with a keyword");
        let next = text[end..].trim_start_matches([' ', '\t']);
        d = if word
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && next.starts_with('=')
            && !next.starts_with("==")
        {
            d.with_hint(format!("to name an expression write `let {word} = ...`"))
        } else if rest.starts_with(['+', '-', '*', '/', '@', '^', '|', '.']) {
            d.with_hint("to continue an expression on the next line, end the previous line with the operator")
        } else if ["==", "<=", ">="]
            .iter()
            .any(|op| rest.lines().next().unwrap_or("").contains(op))
        {
            d.with_hint("a constraint goes in a `subject to` block: a line `subject to`, then the constraints indented below it")
        } else {
            d.with_hint(format!(
                "statements start with one of: {}",
                STATEMENT_KEYWORDS.join(", ")
            ))
        };
        return d;
    }
    let wanted = join_alternatives(&expected);
    let d = Diagnostic::error("E0001", format!("expected {wanted}, found {found}"))
        .with_primary(span, format!("expected {wanted}"));
    let line = text[..pos].rsplit('\n').next().unwrap_or("");
    let initial_value_first = line.trim_start().starts_with("var ")
        && line.replace(">=", "").replace("<=", "").contains('=')
        && (rest.starts_with("<=") || rest.starts_with(">="));
    // MATLAB's elementwise `./` and `.^` next to `.*`.
    let dotted = ["./", ".^"].into_iter().find(|op| rest.starts_with(op));
    if initial_value_first {
        d.with_hint("bounds come before the initial value: `var x : real[n] >= 0 <= 1 = 0.5`")
    } else if let Some(op) = dotted {
        d.with_hint(format!(
            "`{}` is already elementwise: write `{}` (`.*` is the elementwise product, `@` the \
             matrix product)",
            &op[1..],
            &op[1..]
        ))
    } else if ["<=", ">=", "=="].iter().any(|op| rest.starts_with(op))
        && ["minimize", "maximize", "let", "output"]
            .iter()
            .any(|k| line_before.trim_start().starts_with(k))
    {
        d.with_hint("comparisons are constraints: put it on its own line in a `subject to` block")
    } else if rest.starts_with('.')
        && line_before
            .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
            .ends_with("load(")
    {
        let stem = &line_before[line_before.rfind("load(").map_or(0, |i| i + 5)..];
        let tail = rest.lines().next().unwrap_or("");
        let path = format!("{stem}{}", &tail[..tail.find(')').unwrap_or(tail.len())]);
        d.with_hint(format!("paths are strings: `load(\"{}\")`", path.trim()))
    } else if let Some(op) = ["<=", ">="]
        .into_iter()
        .find(|op| rest.starts_with(op) && line_before.contains(op))
    {
        Diagnostic::error("E0014", format!("a chained comparison `... {op} ... {op} ...`"))
            .with_primary(span, "a second comparison")
            .with_hint("write two constraints, such as `w >= 0` and `w <= 1`, or declare the bounds with the variable: `var w : real[n] >= 0 <= 1`")
    } else if STATEMENT_KEYWORDS.contains(&word) && previous_line(text, pos) == Some("subject to") {
        d.with_note("`subject to` is followed by no constraint")
            .with_hint("indent the constraints below `subject to`, or remove it")
    } else if STATEMENT_KEYWORDS.contains(&word)
        && text[..pos].trim_end_matches([' ', '\t']).ends_with('\n')
    {
        d.with_note("the previous line ends with an operator or `,`, so its statement continues on this line")
    } else {
        d
    }
}

/// The last nonblank line before byte `pos`, trimmed (comments are not removed).
fn previous_line(text: &str, pos: usize) -> Option<&str> {
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
}

/// `.5` (where an expression is expected) or `1.` (right after digits): reals need digits on both
/// sides of the dot.
fn malformed_real(
    text: &str,
    pos: usize,
    span: Span,
    wants_expression: bool,
) -> Option<Diagnostic> {
    let rest = &text[pos..];
    let digit_at = |i: usize| rest.as_bytes().get(i).is_some_and(u8::is_ascii_digit);
    let after_digit = text[..pos].ends_with(|c: char| c.is_ascii_digit());
    let (label, hint) = if wants_expression && rest.starts_with('.') && digit_at(1) {
        (
            "digits are needed before the dot",
            "write `0.5` instead of `.5`",
        )
    } else if after_digit && rest.starts_with('.') && !rest.starts_with("..") && !digit_at(1) {
        (
            "digits are needed after the dot",
            "write `1.0` instead of `1.`",
        )
    } else {
        return None;
    };
    Some(
        Diagnostic::error("E0004", "invalid number literal")
            .with_primary(span, label)
            .with_hint(hint),
    )
}
