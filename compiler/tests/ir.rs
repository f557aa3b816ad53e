//! Snapshots of the lowered IR of every `tests/ok/*.opt`; each must pass `ir::verify`.

mod common;

use optc_compiler::{ir, lower};

#[test]
fn lowered_programs() {
    insta::glob!("ok/*.opt", |path| {
        let typed = common::check_file(path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
        let program = lower::lower(&typed).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let problems = ir::verify(&program);
        assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
        insta::assert_snapshot!(ir::print_program(&program));
    });
}
