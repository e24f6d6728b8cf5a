//! Where the tests find the real weights (`scripts/fetch-model`).

use std::path::PathBuf;

/// The model directory: `LOOKOUT_MODEL_DIR`, or `models/use-multilingual-v3` in the
/// repository. Missing weights fail the test under `CI=true` and skip it (with a message)
/// elsewhere.
#[allow(dead_code)]
pub(crate) fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("LOOKOUT_MODEL_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/use-multilingual-v3"),
        PathBuf::from,
    );
    if dir.join("weights.npz").is_file() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "no model weights in {}: run scripts/fetch-model",
            dir.display()
        );
    }
    eprintln!(
        "skipped: no model weights in {} (run scripts/fetch-model)",
        dir.display()
    );
    None
}

/// The multilingual-e5-small directory (`models/multilingual-e5-small`).
#[allow(dead_code)]
pub(crate) fn e5_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/multilingual-e5-small");
    if dir.join("e5-small-q4.bin").is_file() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "no model weights in {}: run scripts/fetch-model",
            dir.display()
        );
    }
    eprintln!(
        "skipped: no model weights in {} (run scripts/fetch-model)",
        dir.display()
    );
    None
}
