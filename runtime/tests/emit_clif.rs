//! `optc emit --stage clif` for every example: the Cranelift IR of the objective at the sizes of
//! the example's data, as `optc run` binds them (snapshots), or the error when the objective
//! cannot be compiled (an `argmin`).

use std::process::Command;

#[test]
fn every_example_emits_clif() {
    insta::glob!("../../examples", "*/*.opt", |path| {
        let o = Command::new(env!("CARGO_BIN_EXE_optc"))
            .args(["emit", "--stage", "clif"])
            .arg(path)
            .env("NO_COLOR", "1")
            .output()
            .expect("optc runs");
        let code = o.status.code().expect("exit code");
        let text = if code == 0 {
            String::from_utf8_lossy(&o.stdout).into_owned()
        } else {
            String::from_utf8_lossy(&o.stderr).into_owned()
        };
        assert!(!text.trim().is_empty(), "{}: no output", path.display());
        insta::assert_snapshot!(format!("exit {code}\n{text}"));
    });
}
