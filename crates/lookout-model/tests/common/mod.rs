//! Where the tests find the real weights (`scripts/fetch-model`).

use std::path::PathBuf;

#[allow(dead_code)]
pub(crate) fn model_dir() -> Option<PathBuf> {
    lookout_model::weights_for_tests()
}
