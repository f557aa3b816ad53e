//! Rendered diagnostics of the fixtures in `tests/err/`, each named after what it shows:
//! - `data_*.opt`, errors in the data (it lives in `tests/err/data/` as readable csv): `optc eval`
//!   fails with exit 65 or 66;
//! - `plan_*.opt`, models that check but that the chosen method cannot solve as written (a bad
//!   option, a constraint the method cannot take, an op without a derivative), or that fail to
//!   evaluate at every point (an index out of range for the parameters given): `optc run` fails
//!   with exit 65 before solving, and the diagnostic points into the model;
//! - `solve_*.opt`, solves that stop on an evaluation error or a value that is not finite:
//!   `optc run` ends with exit 2 (diverged) and an error that points at the expression;
//! - `warn_*.opt`, models that `optc run` goes on to solve after a warning located in the model
//!   (exit 0, or 1 where the warning comes true and the solver stops short), or that it solves
//!   to a warning (E0366, constraints that look infeasible: exit 2).
//!
//! Snapshots have the fixture directory replaced by `$DIR`, and no progress rows (their times
//! vary).

use std::path::Path;
use std::process::Command;

/// `optc ARGS path`'s exit code and stderr, checked to be a coded diagnostic of `severity`.
fn rendered_as(severity: &str, args: &[&str], path: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_optc"))
        .args(args)
        .arg(path)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    let dir = path.parent().unwrap().display().to_string();
    // The progress table's times vary from run to run: its rows are left out. A row: an iteration number first, a time such as `0.01s` last.
    let timed = |line: &str| {
        let mut fields = line.split_whitespace();
        let iteration = fields.next().is_some_and(|f| f.parse::<u64>().is_ok());
        let time = fields
            .next_back()
            .and_then(|f| f.strip_suffix('s'))
            .is_some_and(|f| f.parse::<f64>().is_ok());
        iteration && time
    };
    let stderr: String = String::from_utf8_lossy(&out.stderr)
        .replace(&dir, "$DIR")
        .lines()
        .filter(|line| !timed(line))
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(stderr.contains(&format!("{severity}[E0")), "{stderr}");
    (code, stderr)
}

fn rendered(command: &str, path: &Path) -> (i32, String) {
    rendered_as("error", &[command], path)
}

#[test]
fn data_error_fixtures() {
    insta::glob!("err", "data_*.opt", |path| {
        let (code, stderr) = rendered("eval", path);
        assert!(code == 65 || code == 66, "{}: exit {code}", path.display());
        insta::assert_snapshot!(format!("exit {code}\n{stderr}"));
    });
}

/// `optc run path`, checked to exit with `expected` and an error located in the model.
fn located_run_error(path: &Path, expected: i32) -> String {
    let (code, stderr) = rendered("run", path);
    assert_eq!(code, expected, "{}: {stderr}", path.display());
    let located = format!("--> $DIR/{}:", path.file_name().unwrap().to_string_lossy());
    assert!(stderr.contains(&located), "no source location: {stderr}");
    format!("exit {code}\n{stderr}")
}

#[test]
fn plan_error_fixtures() {
    insta::glob!("err", "plan_*.opt", |path| {
        insta::assert_snapshot!(located_run_error(path, 65));
    });
}

#[test]
fn solve_error_fixtures() {
    insta::glob!("err", "solve_*.opt", |path| {
        insta::assert_snapshot!(located_run_error(path, 2));
    });
}

#[test]
fn warning_fixtures() {
    insta::glob!("err", "warn_*.opt", |path| {
        let (code, stderr) = rendered_as("warning", &["run", "--quiet"], path);
        assert!(
            code == 0 || code == 1 || (code == 2 && stderr.contains("warning[E0366]")),
            "{}: exit {code}: {stderr}",
            path.display()
        );
        let located = format!("--> $DIR/{}:", path.file_name().unwrap().to_string_lossy());
        assert!(stderr.contains(&located), "no source location: {stderr}");
        insta::assert_snapshot!(format!("exit {code}\n{stderr}"));
    });
}
