//! The standard library: `.opt` files under `stdlib/`, embedded in the compiler and auto-imported.
//!
//! They define only `fn`s; [`crate::sema::check`] takes their parsed modules and makes the fns
//! callable from every model.

use crate::ast::Module;
use crate::diag::{Diagnostics, SourceMap};

/// The embedded files as (name, source text), in dependency order.
pub const SOURCES: &[(&str, &str)] = &[
    ("<stdlib>/dag.opt", include_str!("../../stdlib/dag.opt")),
    (
        "<stdlib>/losses.opt",
        include_str!("../../stdlib/losses.opt"),
    ),
    (
        "<stdlib>/regularizers.opt",
        include_str!("../../stdlib/regularizers.opt"),
    ),
];

/// Adds the standard-library files to `sources` and parses them (once per compilation; their
/// spans point into `sources`, so diagnostics about them render like any other file's).
pub fn modules(sources: &mut SourceMap) -> Result<Vec<Module>, Diagnostics> {
    let mut out = Vec::new();
    let mut errors = Diagnostics::new();
    for (name, text) in SOURCES {
        let id = sources.add(*name, *text);
        let (module, diags) = crate::syntax::parse(sources, id);
        errors.extend(diags.into_iter().filter(|d| d.is_error()));
        if let Some(m) = module {
            out.push(m);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::ItemKind;

    #[test]
    fn stdlib_parses_and_defines_the_documented_fns() {
        let mut sources = SourceMap::new();
        let modules = modules(&mut sources).expect("stdlib parses");
        let names: Vec<&str> = modules
            .iter()
            .flat_map(|m| &m.items)
            .filter_map(|i| match &i.kind {
                ItemKind::Fn { name, .. } => Some(name.name.as_str()),
                _ => None,
            })
            .collect();
        for expected in [
            "notears",
            "dagma_logdet",
            "poly_acyclic",
            "lsq",
            "lsq_vec",
            "logistic",
            "poisson",
            "elastic_net",
            "group_lasso",
            "tv",
            "tv_smooth",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from the stdlib"
            );
        }
    }
}
