//! The whole catalogue of diagnostic codes: the compiler's areas followed by the runtime's.

use optc_compiler::codes::{self, CodeInfo};

const RUNTIME_AREAS: &[&[CodeInfo]] = &[
    crate::data::DATA,
    crate::model::BINDING_CODES,
    crate::plan::PLAN_CODES,
    crate::interp::EVAL,
    crate::artifact::ARTIFACT_CODES,
    crate::gpu::GPU_CODES,
    crate::cpu::NATIVE_CODES,
];

/// Every code any part of optc reports.
pub fn all() -> impl Iterator<Item = &'static CodeInfo> {
    codes::all().chain(RUNTIME_AREAS.iter().flat_map(|area| area.iter()))
}

/// The entry of `code`, if it exists.
pub fn lookup(code: &str) -> Option<&'static CodeInfo> {
    all().find(|info| info.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_across_compiler_and_runtime() {
        let mut seen = HashSet::new();
        for info in all() {
            assert!(seen.insert(info.code), "duplicate code {}", info.code);
            assert!(
                !info.explanation.trim().is_empty(),
                "{} lacks an explanation",
                info.code
            );
        }
    }
}
