//! Snapshots of the lowered IR of every `tests/ok/*.opt` the checker accepts (all of
//! `ok/sema_*.opt` must be accepted); each lowered program must pass `ir::verify`.

mod common;

use optc_compiler::{ir, lower};

#[test]
fn lowered_programs() {
    insta::glob!("ok/*.opt", |path| {
        let semantic = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("sema_"));
        let typed = match common::check_file(path) {
            Ok(typed) => typed,
            Err(_) if !semantic => return,
            Err(e) => panic!("{}:\n{e}", path.display()),
        };
        let program = lower::lower(&typed).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let problems = ir::verify(&program);
        assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
        insta::assert_snapshot!(ir::print_program(&program));
    });
}
