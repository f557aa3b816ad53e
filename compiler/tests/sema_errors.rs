//! Rendered diagnostics of every `tests/err/sema_*.opt` and, through the whole pipeline, the
//! warnings of every `tests/err/lower_*.opt` (each named after what it shows).

mod common;

#[test]
fn sema_errors() {
    insta::glob!("err/sema_*.opt", |path| {
        let text = common::diagnostics_text(path);
        assert!(!text.is_empty(), "{}: no diagnostic", path.display());
        insta::assert_snapshot!(text);
    });
}

/// Warnings about the lowered program (`tests/err/lower_*.opt`), through the whole pipeline.
#[test]
fn lowering_warnings() {
    insta::glob!("err/lower_*.opt", |path| {
        let text = std::fs::read_to_string(path).expect("fixture is readable");
        let name = path.file_name().unwrap().to_string_lossy();
        let compiled =
            optc_compiler::driver::compile(&name, &text, optc_compiler::driver::Until::Ir)
                .unwrap_or_else(|f| panic!("{}: {:?}", path.display(), f.diagnostics));
        let rendered =
            optc_compiler::render::render_human(&compiled.warnings, &compiled.sources, false);
        assert!(!rendered.is_empty(), "{}: no warning", path.display());
        insta::assert_snapshot!(rendered);
    });
}
