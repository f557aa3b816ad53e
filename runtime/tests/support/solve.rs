//! Helpers of the suites that solve small problems (`solvers.rs`, `prox.rs`, `auglag.rs` include
//! this file by path): a callback that never stops, a tolerance check on vectors, a model from
//! source text, and its solve by the method optc chooses.
#![allow(dead_code)] // each suite uses only some of the helpers

use optc_compiler::driver::{compile, Until};
use optc_runtime::model::{bind, BindSpec, Model};
use optc_runtime::plan::{self, Method, Outcome};
use optc_runtime::solvers::{Control, IterInfo};
use std::path::Path;

pub fn go_on(_: &IterInfo) -> Control {
    Control::Continue
}

/// Each entry of `actual` within `tol` of `expected`'s.
pub fn assert_close(actual: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tol,
            "entry {i}: {a} vs {e} (tol {tol}); all: {actual:?}"
        );
    }
}

/// The model of `source` (a whole `.opt` file without data files) with its defaults bound.
pub fn model(source: &str) -> Model {
    let program = compile("model.opt", source, Until::Ir)
        .unwrap_or_else(|e| panic!("{:?}", e.diagnostics))
        .program
        .unwrap();
    let bindings = bind(&program, Path::new("."), &BindSpec::default()).unwrap();
    Model::new(program, bindings).unwrap()
}

/// The model of `source` solved by the method optc chooses, which must be `method`; the solve
/// met no evaluation error.
pub fn solve_by(source: &str, method: Method) -> (Model, Outcome) {
    let mut m = model(source);
    let plan = plan::choose(&m.program).unwrap();
    assert_eq!(plan.method, method, "{}", plan.reason);
    let outcome = plan::solve(&mut m, &plan, &mut go_on).unwrap();
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    (m, outcome)
}
