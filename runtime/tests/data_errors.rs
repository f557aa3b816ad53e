//! Rendered diagnostics of the data-error fixtures in `tests/err/` (each `data_*.opt` names what
//! it shows; its data lives in `tests/err/data/` as readable csv): `optc eval` must fail with
//! exit 65 or 66 and a coded diagnostic, snapshotted with the fixture directory replaced by `$DIR`.

use std::process::Command;

#[test]
fn data_error_fixtures() {
    insta::glob!("err", "data_*.opt", |path| {
        let out = Command::new(env!("CARGO_BIN_EXE_optc"))
            .arg("eval")
            .arg(path)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let code = out.status.code().unwrap();
        assert!(code == 65 || code == 66, "{}: exit {code}", path.display());
        let dir = path.parent().unwrap().display().to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).replace(&dir, "$DIR");
        assert!(stderr.contains("error[E0"), "{stderr}");
        insta::assert_snapshot!(format!("exit {code}\n{stderr}"));
    });
}
