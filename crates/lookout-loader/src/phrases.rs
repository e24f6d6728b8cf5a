//! Phrase libraries from disk: the shipped libraries plus the files `[scan]` names.

use std::path::{Path, PathBuf};

use lookout_config::ScanConfig;
use lookout_scan::{Library, LibraryError};

/// Why the phrase libraries could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PhraseLoadError {
    #[error("cannot read phrase file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem in the files, with file and line.
    #[error("{0}")]
    Invalid(#[from] LibraryError),
}

/// Builds the library `[scan]` describes. A file with any problem fails the whole load, so a
/// typo never silently turns detection off.
pub fn load_phrases(scan: &ScanConfig) -> Result<Library, PhraseLoadError> {
    let mut lib = if scan.builtin {
        Library::builtin()
    } else {
        Library::new()
    };
    let mut problems = Vec::new();
    for path in &scan.phrases {
        let text = read(path.get_ref())?;
        if let Err(e) = lib.add(&path.get_ref().display().to_string(), &text) {
            problems.extend(e.problems);
        }
    }
    for e in &scan.e2guardian {
        let path = e.file.get_ref();
        let text = read(path)?;
        let risk = e.risk().expect("validated with the configuration");
        if let Err(e) = lib.add_e2guardian(&path.display().to_string(), &text, risk) {
            problems.extend(e.problems);
        }
    }
    if problems.is_empty() {
        Ok(lib)
    } else {
        Err(LibraryError { problems }.into())
    }
}

/// Reads a phrase file; e2guardian's lists are often Latin-1, so bytes that are not UTF-8 are
/// read as Latin-1 rather than refused.
fn read(path: &Path) -> Result<String, PhraseLoadError> {
    let bytes = std::fs::read(path).map_err(|source| PhraseLoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    })
}
