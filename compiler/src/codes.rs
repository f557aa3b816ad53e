//! Catalogue of diagnostic codes (placeholder until the parser branch's catalogue is merged).

/// One diagnostic code with its long explanation.
#[derive(Clone, Copy, Debug)]
pub struct CodeInfo {
    pub code: &'static str,
    pub title: &'static str,
    pub explanation: &'static str,
}
