//! The classifier head over [sentence embedding | hashed n-grams]: a logistic "risky" gate
//! (any category against innocent text, the most data per decision), a softmax over the 12
//! categories trained on risky texts (the categories compete, so a text is not split
//! between look-alike ones), and a logistic "danger" head. A category's score is
//! p(risky) × p(category | risky). Trained with AdaGrad, calibrated by isotonic regression
//! on out-of-fold scores, saved in one file with the labelled examples that explain a
//! finding.

use std::io::Write;

use lookout_scan::{Risk, Sample, Severity};
use serde::{Deserialize, Serialize};

use crate::features::{self, BUCKETS};
use crate::{Encoder, ModelError, DIM};

/// Scores per text: 12 risk categories, danger, risky.
pub const HEADS: usize = 14;
pub(crate) const DANGER: usize = 12;
pub(crate) const RISKY: usize = 13;
const WIDTH: usize = DIM + BUCKETS;
const MAGIC: &[u8; 16] = b"LOOKOUT-HEAD-v4\n";
/// Share of risky texts the screen may let through unread, estimated out of fold.
const SCREEN_MISS: f32 = 0.01;

/// One text as the head sees it.
#[derive(Clone, Debug)]
pub struct Features {
    pub dense: Vec<f32>,
    pub sparse: Vec<(u32, f32)>,
}

impl Features {
    /// The n-gram features of one text alone, as the screen reads them (no embedding).
    pub fn sparse_only(text: &str) -> Features {
        let mut sparse = Vec::new();
        features::sparse(text, &mut sparse);
        Features {
            dense: Vec::new(),
            sparse,
        }
    }

    /// Features of many texts, the embeddings in batches.
    pub fn of_texts(encoder: &Encoder, texts: &[&str]) -> Vec<Features> {
        let mut out = Vec::with_capacity(texts.len());
        let mut scratch = crate::EncodeScratch::default();
        for chunk in texts.chunks(64) {
            let mut dense = ndarray::Array2::zeros((chunk.len(), DIM));
            encoder.encode_batch(chunk, &mut dense, &mut scratch);
            for (row, text) in dense.outer_iter().zip(chunk) {
                let mut sparse = Vec::new();
                features::sparse(text, &mut sparse);
                out.push(Features {
                    dense: row.to_vec(),
                    sparse,
                });
            }
        }
        out
    }
}

/// How the head is trained.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
    /// Weight of the n-gram part against the embedding (both have norm 1 before this).
    pub sparse_scale: f32,
    pub folds: usize,
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            epochs: 20,
            learning_rate: 0.2,
            l2: 1e-5,
            sparse_scale: 1.0,
            folds: 5,
            seed: 0x5eed,
        }
    }
}

/// The targets of one sample: its categories labelled caution or danger, danger where any
/// label is danger, and risky where it has any such category. Advisory labels count as not
/// alerting.
fn targets(sample: &Sample) -> [bool; HEADS] {
    let mut t = [false; HEADS];
    for (risk, severity) in &sample.labels {
        if *severity >= Severity::Caution {
            t[risk_index(*risk)] = true;
            t[RISKY] = true;
        }
        if *severity == Severity::Danger {
            t[DANGER] = true;
        }
    }
    t
}

pub(crate) fn risk_index(risk: Risk) -> usize {
    Risk::ALL
        .iter()
        .position(|r| *r == risk)
        .expect("every risk is in ALL")
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

fn softmax(z: &[f32]) -> Vec<f32> {
    let max = z.iter().copied().fold(f32::MIN, f32::max);
    let e: Vec<f32> = z.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// Logits to scores: per category p(risky) × p(category | risky), then danger, then risky.
fn probabilities(z: &[f32; HEADS]) -> [f32; HEADS] {
    let risky = sigmoid(z[RISKY]);
    let mut out = [0.0; HEADS];
    for (o, s) in out.iter_mut().zip(softmax(&z[..DANGER])) {
        *o = risky * s;
    }
    out[DANGER] = sigmoid(z[DANGER]);
    out[RISKY] = risky;
    out
}

/// Weights of all heads: per head, DIM dense weights then BUCKETS sparse ones.
#[derive(Clone)]
struct Linear {
    w: Vec<f32>,
    b: [f32; HEADS],
    sparse_scale: f32,
}

/// Every head's logit for `x` under weights `w` and biases `b`.
fn logits(w: &[f32], b: &[f32; HEADS], sparse_scale: f32, x: &Features) -> [f32; HEADS] {
    let mut out = [0.0; HEADS];
    for (h, o) in out.iter_mut().enumerate() {
        let wh = &w[h * WIDTH..(h + 1) * WIDTH];
        let dense: f32 = wh[..DIM].iter().zip(&x.dense).map(|(a, c)| a * c).sum();
        let sparse: f32 = x
            .sparse
            .iter()
            .map(|&(i, v)| wh[DIM + i as usize] * v)
            .sum::<f32>()
            * sparse_scale;
        *o = b[h] + dense + sparse;
    }
    out
}

impl Linear {
    /// [p(risky) × p(category | risky) per category, p(danger), p(risky)].
    fn raw(&self, x: &Features) -> [f32; HEADS] {
        probabilities(&logits(&self.w, &self.b, self.sparse_scale, x))
    }

    fn fit(xs: &[&Features], ys: &[[bool; HEADS]], p: &Params) -> Linear {
        let mut w = vec![0.0f32; HEADS * WIDTH];
        let mut g2 = vec![0.0f32; HEADS * WIDTH];
        let mut b = [0.0f32; HEADS];
        let mut gb = [0.0f32; HEADS];
        let mut pos_weight = [1.0f32; HEADS];
        for (h, pw) in pos_weight.iter_mut().enumerate() {
            let pos = ys.iter().filter(|y| y[h]).count().max(1) as f32;
            let neg = (ys.len() as f32 - pos).max(1.0);
            *pw = (neg / pos).sqrt().clamp(1.0, 10.0);
        }
        let mut order: Vec<usize> = (0..xs.len()).collect();
        let mut rng = p.seed | 1;
        for _ in 0..p.epochs {
            for i in (1..order.len()).rev() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                order.swap(i, (rng % (i as u64 + 1)) as usize);
            }
            for &i in &order {
                let x = xs[i];
                let y = &ys[i];
                let z = logits(&w, &b, p.sparse_scale, x);
                let soft = softmax(&z[..DANGER]);
                let labelled = y[..DANGER].iter().filter(|&&t| t).count().max(1) as f32;
                for h in 0..HEADS {
                    let g = if h < DANGER {
                        // The categories' softmax learns from risky texts only.
                        if !y[RISKY] {
                            continue;
                        }
                        let target = if y[h] { 1.0 / labelled } else { 0.0 };
                        soft[h] - target
                    } else {
                        let t = y[h];
                        (sigmoid(z[h]) - f32::from(u8::from(t)))
                            * if t { pos_weight[h] } else { 1.0 }
                    };
                    gb[h] += g * g;
                    b[h] -= p.learning_rate * g / (gb[h].sqrt() + 1e-8);
                    let base = h * WIDTH;
                    let (wh, gh) = (&mut w[base..base + WIDTH], &mut g2[base..base + WIDTH]);
                    for (j, &xj) in x.dense.iter().enumerate() {
                        let grad = g * xj + p.l2 * wh[j];
                        gh[j] += grad * grad;
                        wh[j] -= p.learning_rate * grad / (gh[j].sqrt() + 1e-8);
                    }
                    for &(k, v) in &x.sparse {
                        let j = DIM + k as usize;
                        let grad = g * v * p.sparse_scale + p.l2 * wh[j];
                        gh[j] += grad * grad;
                        wh[j] -= p.learning_rate * grad / (gh[j].sqrt() + 1e-8);
                    }
                }
            }
        }
        Linear {
            w,
            b,
            sparse_scale: p.sparse_scale,
        }
    }
}

/// Isotonic regression of outcomes on scores, as points joined by straight lines.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub points: Vec<(f32, f32)>,
}

impl Calibration {
    /// Pool-adjacent-violators over (score, outcome) pairs.
    pub fn fit(mut pairs: Vec<(f32, bool)>) -> Calibration {
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Blocks of (sum of scores, sum of outcomes, count).
        let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
        for (s, y) in pairs {
            blocks.push((f64::from(s), f64::from(u8::from(y)), 1.0));
            while blocks.len() > 1 {
                let n = blocks.len();
                let (a, c) = (blocks[n - 2], blocks[n - 1]);
                if a.1 / a.2 < c.1 / c.2 {
                    break;
                }
                blocks.truncate(n - 2);
                blocks.push((a.0 + c.0, a.1 + c.1, a.2 + c.2));
            }
        }
        Calibration {
            points: blocks
                .iter()
                .map(|(s, y, n)| ((s / n) as f32, (y / n) as f32))
                .collect(),
        }
    }

    pub fn apply(&self, score: f32) -> f32 {
        let p = &self.points;
        let (Some(first), Some(last)) = (p.first(), p.last()) else {
            return score;
        };
        if score <= first.0 {
            return first.1;
        }
        // The first point at or past the score; the points are sorted by score.
        let i = p.partition_point(|q| q.0 < score);
        let Some(&(x1, y1)) = p.get(i) else {
            return last.1;
        };
        let (x0, y0) = p[i - 1];
        let t = if x1 > x0 {
            (score - x0) / (x1 - x0)
        } else {
            1.0
        };
        y0 + t * (y1 - y0)
    }
}

/// A labelled training text kept to explain findings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub text: String,
    pub language: String,
    pub labels: String,
    #[serde(skip)]
    pub embedding: Vec<f32>,
}

/// What a head file says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadInfo {
    pub encoder: String,
    pub samples: usize,
    /// xxh3 of the training lines (language, labels, text), sorted: the same corpus gives
    /// the same digest.
    pub corpus: String,
    pub params: Params,
    pub calibration: Calibrations,
    /// The screen's raw "risky" score below which a text with no phrase finding is not given
    /// to the encoder: out of fold, all but [`SCREEN_MISS`] of the risky training texts
    /// reach it.
    pub screen: f32,
    pub examples: Vec<Example>,
}

/// The calibrations a head's raw scores go through: one for the categories (pooled), one for
/// danger, one for risky.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Calibrations {
    pub risk: Calibration,
    pub danger: Calibration,
    pub risky: Calibration,
}

impl Calibrations {
    /// Fitted on out-of-fold raw scores of `samples` (from [`cross_validate`]).
    pub fn fit(oof: &[[f32; HEADS]], samples: &[Sample]) -> Calibrations {
        let mut risk = Vec::with_capacity(oof.len() * DANGER);
        let mut danger = Vec::with_capacity(oof.len());
        let mut risky = Vec::with_capacity(oof.len());
        for (s, sample) in oof.iter().zip(samples) {
            let y = targets(sample);
            for h in 0..DANGER {
                risk.push((s[h], y[h]));
            }
            danger.push((s[DANGER], y[DANGER]));
            risky.push((s[RISKY], y[RISKY]));
        }
        Calibrations {
            risk: Calibration::fit(risk),
            danger: Calibration::fit(danger),
            risky: Calibration::fit(risky),
        }
    }

    /// Raw scores to calibrated ones: per category, then danger, then risky.
    pub fn apply(&self, mut s: [f32; HEADS]) -> [f32; HEADS] {
        for v in &mut s[..DANGER] {
            *v = self.risk.apply(*v);
        }
        s[DANGER] = self.danger.apply(s[DANGER]);
        s[RISKY] = self.risky.apply(s[RISKY]);
        s
    }
}

/// A trained head.
#[derive(Clone)]
pub struct Head {
    linear: Linear,
    /// The same heads over the n-grams alone: cheap enough to read every text, it decides
    /// which texts the encoder reads.
    screen: Linear,
    pub info: HeadInfo,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("samples", &self.info.samples)
            .field("corpus", &self.info.corpus)
            .finish()
    }
}

/// The digest [`HeadInfo::corpus`] records.
pub fn corpus_digest(samples: &[Sample]) -> String {
    let mut lines: Vec<String> = samples
        .iter()
        .map(|s| {
            let labels: Vec<String> = s.labels.iter().map(|(r, v)| format!("{r}:{v}")).collect();
            format!("{}\t{}\t{}", s.language, labels.join(","), s.text)
        })
        .collect();
    lines.sort();
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(lines.join("\n").as_bytes())
    )
}

/// Out-of-fold calibrated-scale scores for every sample, from `folds` heads each trained
/// without that fold: what the head would say on text it has not seen.
pub fn cross_validate(xs: &[Features], samples: &[Sample], p: &Params) -> Vec<[f32; HEADS]> {
    let ys: Vec<[bool; HEADS]> = samples.iter().map(targets).collect();
    let folds = p.folds.max(2);
    let mut out = vec![[0.0; HEADS]; xs.len()];
    for fold in 0..folds {
        let (train, test): (Vec<usize>, Vec<usize>) =
            (0..xs.len()).partition(|i| i % folds != fold);
        let lin = Linear::fit(
            &train.iter().map(|&i| &xs[i]).collect::<Vec<_>>(),
            &train.iter().map(|&i| ys[i]).collect::<Vec<_>>(),
            p,
        );
        for i in test {
            out[i] = lin.raw(&xs[i]);
        }
    }
    out
}

impl Head {
    /// Trains a head on `samples` (features from [`Features::of_texts`], in the same order):
    /// cross-validated scores for the calibration, then the final fit on everything.
    pub fn train(xs: &[Features], samples: &[Sample], p: &Params) -> Head {
        let oof = cross_validate(xs, samples, p);
        Head::train_with(xs, samples, p, &oof)
    }

    /// [`Head::train`] with the out-of-fold scores already computed.
    pub fn train_with(
        xs: &[Features],
        samples: &[Sample],
        p: &Params,
        oof: &[[f32; HEADS]],
    ) -> Head {
        assert_eq!(xs.len(), samples.len(), "one feature row per sample");
        let ys: Vec<[bool; HEADS]> = samples.iter().map(targets).collect();
        let linear = Linear::fit(&xs.iter().collect::<Vec<_>>(), &ys, p);
        let sparse: Vec<Features> = xs
            .iter()
            .map(|x| Features {
                dense: Vec::new(),
                sparse: x.sparse.clone(),
            })
            .collect();
        let screen = Linear::fit(&sparse.iter().collect::<Vec<_>>(), &ys, p);
        let mut risky: Vec<f32> = cross_validate(&sparse, samples, p)
            .iter()
            .zip(&ys)
            .filter(|(_, y)| y[RISKY])
            .map(|(s, _)| s[RISKY])
            .collect();
        risky.sort_by(f32::total_cmp);
        let at = (risky.len() as f32 * SCREEN_MISS) as usize;
        let screen_at = risky.get(at).copied().unwrap_or(0.0);
        let examples = samples
            .iter()
            .zip(xs)
            .filter(|(s, _)| !s.labels.is_empty())
            .map(|(s, x)| Example {
                text: s.text.clone(),
                language: s.language.clone(),
                labels: s
                    .labels
                    .iter()
                    .map(|(r, v)| format!("{r}:{v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                embedding: x.dense.clone(),
            })
            .collect();
        Head {
            linear,
            screen,
            info: HeadInfo {
                encoder: crate::ENCODER_NAME.into(),
                samples: samples.len(),
                corpus: corpus_digest(samples),
                params: *p,
                calibration: Calibrations::fit(oof, samples),
                screen: screen_at,
                examples,
            },
        }
    }

    /// Uncalibrated probabilities: per category, then danger, then risky.
    pub fn raw(&self, x: &Features) -> [f32; HEADS] {
        self.linear.raw(x)
    }

    /// Calibrated scores: per category, then danger, then risky.
    pub fn calibrated(&self, x: &Features) -> [f32; HEADS] {
        self.info.calibration.apply(self.raw(x))
    }

    /// The screen's raw "risky" score for n-gram features ([`Features::sparse_only`]).
    pub fn screen(&self, x: &Features) -> f32 {
        self.screen.raw(x)[RISKY]
    }

    /// Writes the head: a magic line, the JSON header's length and the header, then the
    /// weights, biases and example embeddings as little-endian f32.
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let header = serde_json::to_vec(&self.info).map_err(std::io::Error::other)?;
        out.write_all(MAGIC)?;
        out.write_all(&(header.len() as u64).to_le_bytes())?;
        out.write_all(&header)?;
        out.write_all(&self.linear.sparse_scale.to_le_bytes())?;
        let mut buf = Vec::with_capacity(self.linear.w.len() * 8);
        for lin in [&self.linear, &self.screen] {
            for v in lin.w.iter().chain(&lin.b) {
                buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        for e in &self.info.examples {
            for v in &e.embedding {
                buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        out.write_all(&buf)
    }

    /// Reads what [`Head::write`] wrote; anything else is an error saying what is wrong.
    pub fn read(file: &str, data: &[u8]) -> Result<Head, ModelError> {
        let err = |message: &str| ModelError::Format {
            file: file.into(),
            message: message.into(),
        };
        let rest = data
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| err("not a Lookout classifier head (run `lookout scan train`)"))?;
        let len = rest
            .get(..8)
            .ok_or_else(|| err("truncated header"))?
            .try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| err("truncated header"))?;
        let len = usize::try_from(len).map_err(|_| err("header too long"))?;
        let header = rest
            .get(8..8usize.saturating_add(len))
            .ok_or_else(|| err("truncated header"))?;
        let mut info: HeadInfo = serde_json::from_slice(header)
            .map_err(|e| err(&format!("header is not valid: {e}")))?;
        if info.encoder != crate::ENCODER_NAME {
            return Err(err(&format!(
                "trained for encoder {:?}, this Lookout has {:?}",
                info.encoder,
                crate::ENCODER_NAME
            )));
        }
        let floats = &rest[8 + len..];
        let want = 1 + 2 * (HEADS * WIDTH + HEADS) + info.examples.len() * DIM;
        if floats.len() != want * 4 {
            return Err(err(&format!(
                "expected {} bytes of weights, found {}",
                want * 4,
                floats.len()
            )));
        }
        let mut values = floats
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        let mut take = |n: usize| values.by_ref().take(n).collect::<Vec<f32>>();
        let sparse_scale = take(1)[0];
        let mut linear = || -> Result<Linear, ModelError> {
            let w = take(HEADS * WIDTH);
            let b: [f32; HEADS] = take(HEADS).try_into().map_err(|_| err("biases"))?;
            if w.iter().chain(&b).any(|v| !v.is_finite()) || !sparse_scale.is_finite() {
                return Err(err("weights are not all finite numbers"));
            }
            Ok(Linear { w, b, sparse_scale })
        };
        let (linear, screen) = (linear()?, linear()?);
        for e in &mut info.examples {
            e.embedding = take(DIM);
        }
        if !info.screen.is_finite() {
            return Err(err("the screen threshold is not a finite number"));
        }
        Ok(Head {
            linear,
            screen,
            info,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_calibration_is_monotone() {
        let c = Calibration::fit(vec![
            (0.1, false),
            (0.2, false),
            (0.3, true),
            (0.4, false),
            (0.8, true),
            (0.9, true),
        ]);
        assert!(c.points.windows(2).all(|w| w[0].1 <= w[1].1), "{c:?}");
        assert_eq!(c.apply(0.0), 0.0);
        assert_eq!(c.apply(1.0), 1.0);
        assert!((c.apply(0.35) - 0.5).abs() < 1e-6, "{}", c.apply(0.35));
        assert_eq!(Calibration::default().apply(0.3), 0.3);
    }

    #[test]
    fn bad_head_files_are_errors() {
        for (data, want) in [
            (&b""[..], "not a Lookout classifier head"),
            (&b"LOOKOUT-HEAD-v4\n\x05"[..], "truncated header"),
            (
                &b"LOOKOUT-HEAD-v4\n\x02\0\0\0\0\0\0\0{}"[..],
                "header is not valid",
            ),
        ] {
            let e = Head::read("h.bin", data).unwrap_err().to_string();
            assert!(e.starts_with("h.bin: ") && e.contains(want), "{e}");
        }
    }
}
