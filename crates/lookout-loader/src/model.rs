//! Loading the model stage: the encoder from its folder, and the classifier head from the
//! configured file or, by default, the head trained from the built-in corpus (trained once
//! and kept beside the encoder, keyed by the corpus's digest).

use std::path::{Path, PathBuf};

use lookout_config::ModelConfig;
use lookout_model::{corpus, corpus_digest, Encoder, Features, Head, Model, ModelError, Params};

#[derive(Debug, thiserror::Error)]
pub enum ModelLoadError {
    #[error("no model weights in {} (run scripts/fetch-model, or set [scan.model] enabled = false)", dir.display())]
    Missing { dir: PathBuf },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("cannot write the classifier head {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `Missing` where the encoder's folder has no weights.
pub fn load_encoder_check(model: &ModelConfig) -> Result<(), ModelLoadError> {
    let dir = model.dir();
    if !lookout_model::has_weights(&dir) {
        return Err(ModelLoadError::Missing { dir });
    }
    Ok(())
}

/// The encoder, or `Missing` where its folder has no weights.
pub fn load_encoder(model: &ModelConfig) -> Result<Encoder, ModelLoadError> {
    load_encoder_check(model)?;
    Ok(Encoder::load(&model.dir())?)
}

/// Trains a head on `samples` (embedding them first).
pub fn train_head(encoder: &Encoder, samples: &[lookout_scan::Sample], params: &Params) -> Head {
    let texts: Vec<&str> = samples.iter().map(|s| s.text.as_str()).collect();
    let xs = Features::of_texts(encoder, &texts);
    Head::train(&xs, samples, params)
}

/// Writes `head` to `path` through a temporary file, so a reader never sees half a head.
pub fn write_head(head: &Head, path: &Path) -> Result<(), ModelLoadError> {
    let err = |source| ModelLoadError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut buf = Vec::new();
    head.write(&mut buf).map_err(err)?;
    std::fs::write(&tmp, &buf).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn read_head(path: &Path) -> Result<Head, ModelLoadError> {
    let data = std::fs::read(path).map_err(|source| ModelError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(Head::read(&path.display().to_string(), &data)?)
}

/// Where the built-in head for this Lookout's corpus is kept.
pub fn builtin_head_path(model: &ModelConfig) -> PathBuf {
    model.dir().join("heads").join(format!(
        "builtin-{}.head",
        corpus_digest(&corpus::training())
    ))
}

/// How the head was found, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadSource {
    /// The configured (or data-folder) head file.
    File(PathBuf),
    /// The built-in corpus's head, kept beside the encoder.
    Builtin(PathBuf),
    /// Trained from the built-in corpus just now.
    Trained(PathBuf),
}

/// The model, or `None` where `[scan.model]` is off. The head comes from the head file
/// where there is one, else from the built-in corpus (trained and kept on first use).
pub fn load_model(
    model: &ModelConfig,
    data_dir: &Path,
) -> Result<Option<(Model, HeadSource)>, ModelLoadError> {
    if !model.enabled {
        return Ok(None);
    }
    let encoder = load_encoder(model)?;
    let own = model.head(data_dir);
    if own.is_file() {
        let head = read_head(&own)?;
        return Ok(Some((Model::new(encoder, head), HeadSource::File(own))));
    }
    let builtin = builtin_head_path(model);
    if builtin.is_file() {
        if let Ok(head) = read_head(&builtin) {
            return Ok(Some((
                Model::new(encoder, head),
                HeadSource::Builtin(builtin),
            )));
        }
    }
    let head = train_head(&encoder, &corpus::training(), &Params::default());
    // Beside the encoder where that folder is writable (shared by every data folder on
    // the machine), else in the data folder.
    let at = match write_head(&head, &builtin) {
        Ok(()) => builtin,
        Err(_) => {
            write_head(&head, &own)?;
            own
        }
    };
    Ok(Some((Model::new(encoder, head), HeadSource::Trained(at))))
}
