//! Scratch directories of the test suites: fresh and empty, named after the suite, the process
//! and the test, and removed when dropped (also when the test panics).

use std::ops::Deref;
use std::path::{Path, PathBuf};

pub struct TempDir(PathBuf);

impl TempDir {
    /// `optc-{suite}-{pid}-{name}` under the system's temporary directory, empty.
    pub fn new(suite: &str, name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("optc-{suite}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        TempDir(dir)
    }
}

impl Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
