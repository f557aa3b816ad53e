//! Scratch directories of the test suites: fresh and empty, named after the suite, the process,
//! the test and a counter (two tests of one process may ask for the same name at once), and
//! removed when dropped (also when the test panics).

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct TempDir(PathBuf);

impl TempDir {
    /// `optc-{suite}-{pid}-{k}-{name}` under the system's temporary directory, empty, with `k`
    /// the number of directories this process made before.
    pub fn new(suite: &str, name: &str) -> TempDir {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let k = MADE.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("optc-{suite}-{}-{k}-{name}", std::process::id()));
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
