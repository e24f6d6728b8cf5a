//! Lookout's model stage: a multilingual sentence encoder and a trained classifier head that
//! score a text for the 12 risk categories, beside the phrase libraries of `lookout-scan`.
//!
//! - [`Encoder`]: the Universal Sentence Encoder multilingual v3 (Google, Apache-2.0), read
//!   from the files `scripts/fetch-model` installs, run in-process in safe Rust.
//! - [`Head`]: one-vs-rest logistic regressions over the text's embedding and hashed
//!   character and word n-grams of its normalised form (so spellings, leetspeak and languages
//!   the encoder does not know still carry signal), plus a danger head, with isotonic
//!   calibration fitted on out-of-fold scores; trained by [`train`] from labelled corpora.
//! - [`Model`]: both together; [`Model::score`] gives calibrated scores, and the closest
//!   labelled examples explain a finding.
//!
//! Invariants: scoring never panics on any `&str` (empty, huge, binary-looking, any script);
//! the same text and head always give the same scores; training is deterministic.

pub mod corpus;
mod detect;
mod e5;
pub mod features;
mod head;
mod model;
mod sentencepiece;

pub use detect::{combine, Detection, Policy, Stage};
pub use e5::{EncodeScratch, Encoder, DIM, MAX_TOKENS, WEIGHTS};
pub use head::{
    corpus_digest, cross_validate, Calibration, Calibrations, Example, Features, Head, HeadInfo,
    Params, HEADS,
};
pub use model::{chunks, Model, Neighbour, Scores, MAX_CHUNKS};
pub use sentencepiece::Tokenizer;

/// The encoder a head is trained for.
pub const ENCODER_NAME: &str = "multilingual-e5-small";

/// Where `scripts/fetch-model` puts the encoder, relative to the repository.
pub const DEFAULT_DIR: &str = "models/multilingual-e5-small";

use std::path::PathBuf;

/// What went wrong loading or using a model file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Format { file: String, message: String },
}

/// Whether `dir` holds the encoder's weights.
pub fn has_weights(dir: &std::path::Path) -> bool {
    dir.join(WEIGHTS).is_file()
}

/// For tests and benchmarks that need the real weights: `LOOKOUT_MODEL_DIR`, or
/// [`DEFAULT_DIR`] in this repository. Missing weights panic under `CI` (the CI script fetches
/// them) and give `None` (skip, with a message) elsewhere.
pub fn weights_for_tests() -> Option<PathBuf> {
    let dir = std::env::var_os("LOOKOUT_MODEL_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(DEFAULT_DIR),
        PathBuf::from,
    );
    if has_weights(&dir) {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "no model weights in {}: run scripts/fetch-model",
        dir.display()
    );
    eprintln!(
        "skipped: no model weights in {} (run scripts/fetch-model)",
        dir.display()
    );
    None
}
