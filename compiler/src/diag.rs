//! Diagnostics: the one error/warning type of the whole project.
//!
//! Every user-facing problem is a [`Diagnostic`] with a stable code (`E0001`…), a severity, a
//! message, labelled source spans, notes and an optional hint. Library code only *returns*
//! diagnostics; the CLI renders them (human form like rustc, or one JSON object per line).
//! The catalogue of codes with their long explanations lives in [`crate::codes`].

use serde::Serialize;

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

/// Index of a source file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize)]
pub struct FileId(pub u32);

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: the distance between a[..i] and b[..j] (insertions, deletions, substitutions,
    // and swaps of two adjacent characters, the commonest typo: `nrom1` for `norm1`).
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = d[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = substitution.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// A candidate that differs from the name in case only (`N` for `n`), else the closest within a
/// third of the name's length (at least 1 edit; none for one-letter names, where every other
/// short name would be "close").
pub fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let len = name.chars().count();
    let limit = (len / 3).max(1);
    let others: Vec<&str> = candidates.filter(|c| *c != name).collect();
    if let Some(same) = others.iter().find(|c| c.eq_ignore_ascii_case(name)) {
        return Some(same);
    }
    if len < 2 {
        return None;
    }
    others
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A span with a message; the primary label is where the caret goes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Label {
    pub span: Span,
    pub message: String,
    pub primary: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnostic {
    /// Stable code such as `E0101`; see [`crate::codes`].
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub labels: Vec<Label>,
    pub notes: Vec<String>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            labels: Vec::new(),
            notes: Vec::new(),
            hint: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    /// Adds the primary label (the caret).
    pub fn with_primary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: true,
        });
        self
    }

    /// Adds a secondary label.
    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: false,
        });
        self
    }

    /// Adds the primary label where the source is known: checks after lowering point into the
    /// model when it was compiled from source, and at nothing for a model read from an artifact.
    pub fn with_primary_at(self, span: Option<Span>, message: impl Into<String>) -> Diagnostic {
        match span {
            Some(span) => self.with_primary(span, message),
            None => self,
        }
    }

    /// Adds a secondary label where the source is known (see [`Diagnostic::with_primary_at`]).
    pub fn with_label_at(self, span: Option<Span>, message: impl Into<String>) -> Diagnostic {
        match span {
            Some(span) => self.with_label(span, message),
            None => self,
        }
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// With each of `notes` (e.g. an `Option` of one).
    pub fn with_notes(mut self, notes: impl IntoIterator<Item = String>) -> Diagnostic {
        self.notes.extend(notes);
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A collection of diagnostics produced by one stage.
pub type Diagnostics = Vec<Diagnostic>;

/// Source files known to one compilation (the user's file, stdlib files, ...).
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
    /// Byte offsets at which lines start.
    line_starts: Vec<usize>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        self.files.push(SourceFile {
            name: name.into(),
            text,
            line_starts,
        });
        FileId(self.files.len() as u32 - 1)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }
}

impl SourceFile {
    /// 1-based (line, column) of a byte offset; the column counts characters.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(l) => l,
            Err(l) => l - 1,
        };
        let start = self.line_starts[line];
        let col = self.text[start..offset].chars().count();
        (line + 1, col + 1)
    }

    pub fn line_starts(&self) -> &[usize] {
        &self.line_starts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_insertions_deletions_substitutions() {
        assert_eq!(edit_distance("weights", "weigths"), 1, "a swap is one edit");
        assert_eq!(edit_distance("nrom1", "norm1"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("axis", "axs"), 1);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn suggestions_pick_the_closest_name_within_reach() {
        let names = ["weights", "W", "lambda1", "sumsq"];
        assert_eq!(suggest("weigths", names.into_iter()), Some("weights"));
        assert_eq!(suggest("lambda", names.into_iter()), Some("lambda1"));
        assert_eq!(suggest("zzz", names.into_iter()), None);
        // One letter: only a case-only difference is close enough.
        assert_eq!(suggest("w", names.into_iter()), Some("W"));
        assert_eq!(suggest("x", names.into_iter()), None);
        assert_eq!(suggest("LAMBDA1", names.into_iter()), Some("lambda1"));
    }
}
