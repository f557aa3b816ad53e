//! Rendered diagnostics (human form, no color) of the syntax error fixtures `tests/err/syntax_*.opt`.

use optc_compiler::codes;
use optc_compiler::diag::SourceMap;
use optc_compiler::render::{render_human, render_json};
use optc_compiler::syntax::parse;
use std::collections::BTreeSet;

#[test]
fn syntax_error_fixtures() {
    insta::glob!("err/syntax_*.opt", |path| {
        let text = std::fs::read_to_string(path).expect("fixture is readable");
        let mut sources = SourceMap::new();
        let file = sources.add(path.file_name().unwrap().to_string_lossy(), text);
        let (module, diags) = parse(&sources, file);
        assert!(module.is_none(), "a syntax error fixture must not parse");
        for d in &diags {
            assert!(d.code.starts_with("E00"), "{} is not a syntax code", d.code);
            assert!(
                codes::lookup(d.code).is_some(),
                "{} is not in the catalogue",
                d.code
            );
        }
        insta::assert_snapshot!(render_human(&diags, &sources, false));
    });
}

#[test]
fn json_form_of_syntax_errors() {
    let mut sources = SourceMap::new();
    let file = sources.add("m.opt", "dims n\nparam in = 3\nlet x = sum(x,, 1)\n");
    let (_, diags) = parse(&sources, file);
    let lines: Vec<String> = diags.iter().map(|d| render_json(d, &sources)).collect();
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn every_syntax_code_has_a_fixture() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/err");
    let mut reported = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("tests/err exists") {
        let path = entry.expect("readable directory").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("syntax_") && name.ends_with(".opt")) {
            continue;
        }
        let mut sources = SourceMap::new();
        let file = sources.add(
            name,
            std::fs::read_to_string(&path).expect("readable fixture"),
        );
        reported.extend(parse(&sources, file).1.iter().map(|d| d.code));
    }
    for info in optc_compiler::syntax::codes::SYNTAX {
        assert!(
            reported.contains(info.code),
            "no fixture shows {}",
            info.code
        );
    }
}
