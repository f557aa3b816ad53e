//! Snapshots of the typed module (`sema::typed_to_text`) of every `tests/ok/*.opt`.
//!
//! `ok/` holds the parser's fixtures too, some of which are syntax-only (they use undeclared
//! names on purpose); for those the snapshot holds the checker's rendered diagnostics. The
//! semantic fixtures (`ok/sema_*.opt`) must check.

mod common;

#[test]
fn typed_modules() {
    insta::glob!("ok/*.opt", |path| {
        let semantic = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("sema_"));
        let text = match common::check_file(path) {
            Ok(typed) => optc_compiler::sema::typed_to_text(&typed),
            Err(e) if !semantic => format!("rejected by the checker:\n{e}"),
            Err(e) => panic!("{}:\n{e}", path.display()),
        };
        insta::assert_snapshot!(text);
    });
}
