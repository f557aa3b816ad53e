//! Rendered diagnostics of every `tests/err/sema_*.opt` (each named after what it shows).

mod common;

#[test]
fn sema_errors() {
    insta::glob!("err/sema_*.opt", |path| {
        let text = common::diagnostics_text(path);
        assert!(!text.is_empty(), "{}: no diagnostic", path.display());
        insta::assert_snapshot!(text);
    });
}
