//! Robustness of the parser: no input makes it panic or overflow the stack, and pathological
//! nesting is reported as E0003.

use optc_compiler::diag::SourceMap;
use optc_compiler::render::{render_human, render_json};
use optc_compiler::syntax::parse;
use proptest::prelude::*;

/// Parses `text` and renders every diagnostic both ways (rendering must not panic either).
fn parse_text(text: &str) -> (bool, Vec<&'static str>) {
    let mut sources = SourceMap::new();
    let file = sources.add("prop.opt", text);
    let (module, diags) = parse(&sources, file);
    render_human(&diags, &sources, false);
    for d in &diags {
        render_json(d, &sources);
    }
    assert_eq!(module.is_some(), diags.iter().all(|d| !d.is_error()));
    (module.is_some(), diags.iter().map(|d| d.code).collect())
}

const TOKENS: &[&str] = &[
    "dims",
    "data",
    "param",
    "var",
    "let",
    "fn",
    "minimize",
    "maximize",
    "subject",
    "to",
    "for",
    "in",
    "solve",
    "with",
    "output",
    "argmin",
    "true",
    "false",
    "real",
    "int",
    "bool",
    "x",
    "W",
    "n",
    "sum",
    "0",
    "1.5",
    "1e-3",
    "99999999999999999999",
    "\"a.npy\"",
    "\"",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ";",
    "=",
    "==",
    "<=",
    ">=",
    "<",
    "+",
    "-",
    "*",
    ".*",
    "/",
    "@",
    "^",
    "|>",
    "..",
    "#",
    "\n",
    " ",
    "\\",
    "λ",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        parse_text(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 0..80)) {
        parse_text(&tokens.join(" "));
    }

    #[test]
    fn token_soup_without_spaces_never_panics(tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 0..80)) {
        parse_text(&tokens.concat());
    }
}

#[test]
fn hundred_thousand_open_parens_is_e0003() {
    let (ok, codes) = parse_text(&format!("let x = {}", "(".repeat(100_000)));
    assert!(!ok);
    assert_eq!(codes, ["E0003"]);
}

#[test]
fn long_sum_chain_parses_or_is_e0003() {
    let chain = vec!["1"; 100_000].join("+");
    let (ok, codes) = parse_text(&format!("let x = {chain}\nminimize x\n"));
    assert!(ok || codes == ["E0003"], "{codes:?}");
}

#[test]
fn long_unary_and_power_chains_are_e0003() {
    for text in [
        format!("let x = {}1", "-".repeat(10_000)),
        format!("let x = 2{}", "^2".repeat(10_000)),
    ] {
        let (ok, codes) = parse_text(&text);
        assert!(!ok);
        assert_eq!(codes, ["E0003"]);
    }
}

#[test]
fn deeply_nested_for_constraints_do_not_crash() {
    let text = format!(
        "dims n\nvar x : real[n]\nminimize sum(x)\nsubject to\n  {}x[0] >= 0\n",
        "for i in 0..n: ".repeat(10_000)
    );
    let (ok, codes) = parse_text(&text);
    assert!(!ok);
    assert!(codes.contains(&"E0003"), "{codes:?}");
}

#[test]
fn moderate_nesting_still_parses() {
    let text = format!(
        "let x = {}1{}\nminimize x\n",
        "(".repeat(64),
        ")".repeat(64)
    );
    assert_eq!(parse_text(&text), (true, vec![]));
}

/// A non-ASCII character right before an error inside a type's brackets (found by the token
/// soup): the word before the error position was cut inside the character's bytes.
#[test]
fn a_multibyte_character_before_an_error_does_not_panic() {
    for text in [
        "minimize \" λ [ \" dims",
        "minimize\"λ[\"dims",
        "var x : real[n - λ]",
    ] {
        let (ok, codes) = parse_text(text);
        assert!(!ok && !codes.is_empty(), "{text}: {codes:?}");
    }
}
