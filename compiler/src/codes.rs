//! The catalogue of diagnostic codes: a title and a long explanation (bad example, meaning, fix)
//! for every code any stage reports; `optc explain E0001` prints it. Each area of the compiler
//! owns one slice of codes; [`AREAS`] lists them.

/// One diagnostic code and its documentation.
#[derive(Debug)]
pub struct CodeInfo {
    pub code: &'static str,
    pub title: &'static str,
    pub explanation: &'static str,
}

/// The per-area slices of the catalogue.
pub const AREAS: &[&[CodeInfo]] = &[
    crate::syntax::codes::SYNTAX,
    crate::sema::SEMA,
    crate::driver::DRIVER,
];

/// Every known code, area by area.
pub fn all() -> impl Iterator<Item = &'static CodeInfo> {
    AREAS.iter().flat_map(|area| area.iter())
}

/// The entry of `code` (such as `E0001`), if it exists.
pub fn lookup(code: &str) -> Option<&'static CodeInfo> {
    all().find(|info| info.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_well_formed_and_explained() {
        let mut seen = HashSet::new();
        for info in all() {
            assert!(seen.insert(info.code), "duplicate code {}", info.code);
            let digits = info.code.strip_prefix('E').unwrap_or("");
            assert!(
                digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()),
                "malformed code {}",
                info.code
            );
            assert!(!info.title.trim().is_empty(), "{} has no title", info.code);
            assert!(
                !info.explanation.trim().is_empty(),
                "{} has no explanation",
                info.code
            );
        }
        assert!(!seen.is_empty());
    }

    #[test]
    fn lookup_finds_known_codes_only() {
        assert_eq!(lookup("E0001").map(|i| i.title), Some("unexpected token"));
        assert!(lookup("E9999").is_none());
    }
}
