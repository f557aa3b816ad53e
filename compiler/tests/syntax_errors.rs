//! Rendered diagnostics (human form, no color) of the syntax error fixtures `tests/err/syntax_*.opt`.

use optc_compiler::diag::SourceMap;
use optc_compiler::render::{render_human, render_json};
use optc_compiler::syntax::parse;

#[test]
fn syntax_error_fixtures() {
    insta::glob!("err/syntax_*.opt", |path| {
        let text = std::fs::read_to_string(path).expect("fixture is readable");
        let mut sources = SourceMap::new();
        let file = sources.add(path.file_name().unwrap().to_string_lossy(), text);
        let (module, diags) = parse(&sources, file);
        assert!(module.is_none(), "a syntax error fixture must not parse");
        assert!(diags.iter().all(|d| d.code.starts_with("E00")));
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
