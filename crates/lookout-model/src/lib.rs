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
pub mod e5;
mod encoder;
pub mod features;
mod head;
mod model;
mod sentencepiece;

pub use detect::{combine, Detection, Policy, Stage};
pub use encoder::{EncodeScratch, Encoder, DIM, MAX_TOKENS};
pub use head::{
    corpus_digest, cross_validate, Calibration, Calibrations, Example, Features, Head, HeadInfo,
    Params, HEADS,
};
pub use model::{chunks, Model, Neighbour, Scores, MAX_CHUNKS};
pub use sentencepiece::Tokenizer;

/// The encoder a head is trained for.
pub const ENCODER_NAME: &str = "use-multilingual-v3";

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
