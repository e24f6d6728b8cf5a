//! The encoder and a head together: calibrated scores for any text, and the labelled
//! examples closest to it.

use std::path::Path;

use lookout_scan::Risk;

use crate::head::{risk_index, Features, Head, DANGER, RISKY};
use crate::{Encoder, ModelError};

/// Bytes of text per piece the model reads; longer texts are read piece by piece.
const CHUNK_BYTES: usize = 600;
/// Pieces of one text the model reads at most (the phrase stage reads all of it).
pub const MAX_CHUNKS: usize = 16;

/// A loaded model.
#[derive(Debug)]
pub struct Model {
    encoder: Encoder,
    head: Head,
}

/// What the model says of one text.
#[derive(Clone, Debug)]
pub struct Scores {
    /// Calibrated score per category, in `Risk::ALL` order: about this fraction of texts
    /// scored so were of the category in held-out text.
    pub risks: [f32; 12],
    /// Calibrated score that the text needs someone at once.
    pub danger: f32,
    /// Calibrated score that the text is of any risk category.
    pub risky: f32,
    /// Embedding of the piece that scored highest.
    embedding: Vec<f32>,
}

impl Scores {
    /// Scores from elsewhere (cross-validation), with no embedding to explain them.
    pub fn from_parts(risks: [f32; 12], danger: f32, risky: f32) -> Scores {
        Scores {
            risks,
            danger,
            risky,
            embedding: Vec::new(),
        }
    }

    pub fn risk(&self, risk: Risk) -> f32 {
        self.risks[risk_index(risk)]
    }

    /// The category with the highest score.
    pub fn top(&self) -> (Risk, f32) {
        Risk::ALL
            .into_iter()
            .zip(self.risks)
            .fold(
                (Risk::Suicide, f32::MIN),
                |a, b| if b.1 > a.1 { b } else { a },
            )
    }
}

/// A labelled training text close to the scored one.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbour {
    pub text: String,
    pub language: String,
    pub labels: String,
    pub similarity: f32,
}

/// Splits `text` into pieces of about [`CHUNK_BYTES`] at spaces, at most [`MAX_CHUNKS`].
pub fn chunks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while out.len() < MAX_CHUNKS {
        if rest.len() <= CHUNK_BYTES {
            out.push(rest);
            break;
        }
        let mut cut = CHUNK_BYTES;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let at = rest[..cut]
            .rfind(char::is_whitespace)
            .filter(|&i| i > CHUNK_BYTES / 2);
        let cut = at.unwrap_or(cut);
        out.push(&rest[..cut]);
        rest = rest[cut..].trim_start();
        if rest.is_empty() {
            break;
        }
    }
    out
}

impl Model {
    pub fn new(encoder: Encoder, head: Head) -> Model {
        Model { encoder, head }
    }

    /// Loads the encoder from `dir` and the head from `head`.
    pub fn load(dir: &Path, head: &Path) -> Result<Model, ModelError> {
        let encoder = Encoder::load(dir)?;
        let data = std::fs::read(head).map_err(|source| ModelError::Read {
            path: head.to_owned(),
            source,
        })?;
        let head = Head::read(&head.display().to_string(), &data)?;
        Ok(Model { encoder, head })
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Uses `head` from now on, giving back the one it replaces.
    pub fn replace_head(&mut self, head: Head) -> Head {
        std::mem::replace(&mut self.head, head)
    }

    /// Whether the encoder should read `text`: some piece of it reaches the screen's
    /// threshold (the n-gram heads alone, microseconds a text). Texts below it are, out of
    /// fold, almost never risky; a text with a phrase finding is read whatever it says.
    pub fn passes_screen(&self, text: &str) -> bool {
        chunks(text)
            .into_iter()
            .any(|c| self.head.screen(&Features::sparse_only(c)) >= self.head.info.screen)
    }

    /// Scores of the texts that pass the screen or are marked `always`; `None` for the rest.
    pub fn score_screened(&self, texts: &[&str], always: &[bool]) -> Vec<Option<Scores>> {
        let read: Vec<bool> = texts
            .iter()
            .zip(always)
            .map(|(t, &a)| a || self.passes_screen(t))
            .collect();
        let chosen: Vec<&str> = texts
            .iter()
            .zip(&read)
            .filter(|(_, &r)| r)
            .map(|(t, _)| *t)
            .collect();
        let mut scored = self.score_batch(&chosen).into_iter();
        read.into_iter()
            .map(|r| if r { scored.next() } else { None })
            .collect()
    }

    pub fn score(&self, text: &str) -> Scores {
        self.score_batch(&[text])
            .pop()
            .expect("one text, one score")
    }

    /// Scores several texts, their pieces encoded together.
    pub fn score_batch(&self, texts: &[&str]) -> Vec<Scores> {
        let mut pieces = Vec::new();
        let mut owner = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            for c in chunks(t) {
                pieces.push(c);
                owner.push(i);
            }
        }
        let feats = Features::of_texts(&self.encoder, &pieces);
        let mut out: Vec<Option<(f32, Scores)>> = vec![None; texts.len()];
        for (f, i) in feats.into_iter().zip(owner) {
            let s = self.head.calibrated(&f);
            let best = s[..DANGER].iter().copied().fold(f32::MIN, f32::max);
            let slot = &mut out[i];
            match slot {
                Some((b, scores)) => {
                    for (r, v) in scores.risks.iter_mut().zip(&s[..DANGER]) {
                        *r = r.max(*v);
                    }
                    if best > *b {
                        *b = best;
                        scores.danger = s[DANGER];
                        scores.risky = s[RISKY];
                        scores.embedding = f.dense;
                    }
                }
                None => {
                    let mut risks = [0.0; 12];
                    risks.copy_from_slice(&s[..DANGER]);
                    *slot = Some((
                        best,
                        Scores {
                            risks,
                            danger: s[DANGER],
                            risky: s[RISKY],
                            embedding: f.dense,
                        },
                    ));
                }
            }
        }
        out.into_iter()
            .map(|s| s.expect("every text has a piece").1)
            .collect()
    }

    /// The `n` training examples labelled `risk` closest to the scored text.
    pub fn neighbours(&self, scores: &Scores, risk: Risk, n: usize) -> Vec<Neighbour> {
        let slug = risk.slug();
        let mut near: Vec<Neighbour> = self
            .head
            .info
            .examples
            .iter()
            .filter(|e| {
                e.labels
                    .split(',')
                    .any(|l| l.split(':').next() == Some(slug))
            })
            .map(|e| Neighbour {
                text: e.text.clone(),
                language: e.language.clone(),
                labels: e.labels.clone(),
                similarity: e
                    .embedding
                    .iter()
                    .zip(&scores.embedding)
                    .map(|(a, b)| a * b)
                    .sum(),
            })
            .collect();
        near.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        near.truncate(n);
        near
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_read_in_bounded_pieces() {
        assert_eq!(chunks(""), [""]);
        assert_eq!(chunks("short"), ["short"]);
        let long = "word ".repeat(1000);
        let c = chunks(&long);
        assert!(c.len() > 1 && c.len() <= MAX_CHUNKS);
        assert!(c
            .iter()
            .all(|p| p.len() <= CHUNK_BYTES && !p.starts_with(' ')));
        let huge = "ż".repeat(5_000_000);
        let c = chunks(&huge);
        assert_eq!(c.len(), MAX_CHUNKS);
        assert!(c.iter().all(|p| p.len() <= CHUNK_BYTES));
    }
}
