//! Snapshots of every example's gradient IR before and after e-graph simplification, with the
//! staged split (setup vs per iteration) of the simplified form; `ir::verify` after each pass.

use optc_compiler::derive;
use optc_compiler::driver::{compile, Until};
use optc_compiler::ir;

#[test]
fn example_gradients_before_and_after_simplification() {
    insta::glob!("../../examples", "**/*.opt", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let compiled = compile(&name, &text, Until::Ir).expect("examples compile");
        let program = compiled.program.unwrap();
        let snapshot = match derive::differentiate(&program) {
            Err(e) => format!("not differentiable symbolically: {e}\n"),
            Ok(derived) => {
                assert!(ir::verify(&derived.program).is_empty());
                let dims = derive::cost_dims(&derived.program, &[]);
                let simplified = derive::simplify(&derived, &dims).expect("simplifies");
                assert!(ir::verify(&simplified.derived.program).is_empty());
                let plan = derive::stage(&simplified.derived);
                format!(
                    "== gradient\n{}\n== simplified\n{}",
                    derived.text(),
                    derive::staged_text(&simplified.derived, &plan)
                )
            }
        };
        insta::assert_snapshot!(snapshot);
    });
}
