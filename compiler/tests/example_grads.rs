//! Snapshots of every example's gradient IR before and after e-graph simplification, with the
//! staged split (setup vs per iteration) of the simplified form; `ir::verify` after each pass.
//! For a bilevel model (an `argmin`), whose outer gradient the bilevel solver computes by
//! implicit differentiation, the snapshot shows what that solver evaluates instead: the
//! lower-level gradient, its Hessian-vector product and the mixed product ∇_θ⟨∇_z g, v⟩.

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
            Err(e) if !program.subproblems.is_empty() => {
                format!("outer gradient: {e}\n{}", lower_level_derivatives(&program))
            }
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

/// The derivatives of each lower-level objective g(z; θ) that the bilevel solver evaluates, before
/// and after simplification.
fn lower_level_derivatives(program: &ir::Program) -> String {
    use optc_compiler::autodiff::{hvp, mixed_vjp};
    use optc_compiler::simplify::{simplify, CostModel};
    let mut out = String::new();
    for sub in program.subproblems.clone() {
        let mut p = program.clone();
        let outer: Vec<ir::InputId> = p.variables().collect();
        let m = mixed_vjp(&mut p, sub.objective, &[sub.var], &outer).expect("mixed product");
        let h = hvp(&mut p, sub.objective, &[sub.var]).expect("HVP");
        let roots: Vec<ir::NodeId> = m
            .gradient_x
            .iter()
            .chain(&h.hvp)
            .chain(&m.mixed)
            .copied()
            .collect();
        assert!(ir::verify(&p).is_empty());
        let names = |roots: &[ir::NodeId]| {
            let labels = ["gradient z", "hvp z", "mixed theta"];
            labels
                .iter()
                .zip(roots)
                .map(|(l, r)| format!("{l} = {r}\n"))
                .collect::<String>()
        };
        let dims = derive::cost_dims(&p, &[]);
        let s = simplify(&p, &roots, &CostModel::new(dims)).expect("simplifies");
        assert!(ir::verify(&s.program).is_empty());
        out += &format!(
            "== lower level {}: gradient, HVP, mixed product\n{}{}\n== simplified\n{}{}",
            p.input(sub.var).name,
            ir::print_program(&p),
            names(&roots),
            ir::print_program(&s.program),
            names(&s.roots)
        );
    }
    out
}
