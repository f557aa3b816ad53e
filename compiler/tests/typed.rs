//! Snapshots of the typed module (`sema::typed_to_text`) of every `tests/ok/*.opt`.

mod common;

#[test]
fn typed_modules() {
    insta::glob!("ok/*.opt", |path| {
        let typed = common::check_file(path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
        insta::assert_snapshot!(optc_compiler::sema::typed_to_text(&typed));
    });
}
