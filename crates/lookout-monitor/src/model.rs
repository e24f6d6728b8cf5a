//! The model stage's workers: texts the phrase stage has read go on, where the model should
//! read them too, through a bounded queue to a pool of threads that score them in batches and
//! combine both stages' findings. Never on the proxy's request path; when the queue is full
//! the text's phrase findings go through unjudged, and that is counted and logged.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use lookout_model::{combine, Detection, Model, Policy, Scores, Stage};
use lookout_scan::{Finding, Severity};
use lookout_store::NewFinding;

use crate::{finding_with_rules, new_finding, phrase_rules, Job, Source, Stats};

/// Where the workers get the model: ready, or loaded by the first worker (so `serve` does
/// not wait for it; texts queue meanwhile).
#[derive(Clone)]
pub enum ModelSource {
    Ready(Arc<Model>),
    Load(Arc<dyn Fn() -> Result<Model, String> + Send + Sync>),
}

impl std::fmt::Debug for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelSource::Ready(_) => "Ready",
            ModelSource::Load(_) => "Load",
        })
    }
}

/// The model stage's settings.
#[derive(Clone, Debug)]
pub struct ModelStage {
    pub model: ModelSource,
    pub policy: Policy,
    /// Threads scoring texts.
    pub workers: usize,
    /// Texts waiting for the model.
    pub queue: usize,
    /// Let the model's n-gram screen keep plainly ordinary texts (no phrase finding) away
    /// from the encoder.
    pub screen: bool,
}

/// Texts per batch a worker takes from the queue.
const BATCH: usize = 32;
/// Labelled examples shown with a model finding.
const EXAMPLES: usize = 3;

/// A text waiting for the model, with what the phrases found in it.
pub(crate) struct ModelJob {
    pub job: Job,
    pub phrase: Vec<Finding>,
    pub min: Severity,
}

/// Whether the model should read a text from `source`, given the phrase findings: searches
/// and what people type, chat and see in window titles always; pages only where the phrases
/// found something short of danger (for the model to judge); URLs never.
pub(crate) fn wanted(source: Source, phrase: &[Finding]) -> bool {
    match source {
        Source::Search | Source::Typed | Source::Chat | Source::WindowTitle => true,
        Source::Page => phrase.iter().any(|f| f.severity < Severity::Danger),
        Source::Url => false,
    }
}

pub(crate) type Emit = tokio::sync::mpsc::Sender<(Job, NewFinding)>;

/// Hands a text to the model, or, where the queue is full, lets its phrase findings through
/// unjudged (counted as `model_behind`).
pub(crate) fn hand_over(
    queue: &SyncSender<ModelJob>,
    stats: &Stats,
    mj: ModelJob,
    emit: &Emit,
) -> bool {
    match queue.try_send(mj) {
        Ok(()) => {
            stats.model_queued.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(TrySendError::Full(mj) | TrySendError::Disconnected(mj)) => {
            let n = stats.model_behind.fetch_add(1, Ordering::Relaxed);
            stats
                .model_behind_at_ms
                .store(lookout_store::now_ms(), Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    "the model stage is behind: {} text(s) so far passed on with phrase findings only",
                    n + 1
                );
            }
            pass_through(&mj, emit, stats)
        }
    }
}

/// The phrase findings short of danger (danger ones went already), unjudged.
fn pass_through(mj: &ModelJob, emit: &Emit, stats: &Stats) -> bool {
    for f in &mj.phrase {
        if f.severity >= mj.min && f.severity < Severity::Danger {
            stats.findings.fetch_add(1, Ordering::Relaxed);
            if emit
                .blocking_send((mj.job.clone(), new_finding(&mj.job, f)))
                .is_err()
            {
                return false;
            }
        }
    }
    true
}

/// The model, shared by the workers, loaded once.
pub(crate) type Loaded = Arc<std::sync::OnceLock<Option<Arc<Model>>>>;

/// One worker: takes batches until the queue is closed and empty.
pub(crate) fn worker(
    stage: ModelStage,
    loaded: Loaded,
    queue: Arc<Mutex<Receiver<ModelJob>>>,
    emit: Emit,
    stats: Arc<Stats>,
) {
    let model = loaded
        .get_or_init(|| match &stage.model {
            ModelSource::Ready(m) => Some(m.clone()),
            ModelSource::Load(load) => {
                let started = std::time::Instant::now();
                match load() {
                    Ok(m) => {
                        tracing::info!(
                            "model stage ready ({:.2} s)",
                            started.elapsed().as_secs_f64()
                        );
                        Some(Arc::new(m))
                    }
                    Err(e) => {
                        stats.model_on.store(0, Ordering::Relaxed);
                        tracing::error!("model stage off: {e}");
                        None
                    }
                }
            }
        })
        .clone();
    loop {
        let batch: Vec<ModelJob> = {
            let rx = queue.lock().unwrap_or_else(|e| e.into_inner());
            let Ok(first) = rx.recv() else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            batch
        };
        let Some(model) = &model else {
            // No model after all: the phrase findings go through as they are.
            for mj in &batch {
                if !pass_through(mj, &emit, &stats) {
                    return;
                }
            }
            continue;
        };
        let texts: Vec<&str> = batch.iter().map(|m| m.job.text.as_str()).collect();
        let started = std::time::Instant::now();
        let always: Vec<bool> = batch
            .iter()
            .map(|m| !stage.screen || !m.phrase.is_empty())
            .collect();
        let scored =
            std::panic::catch_unwind(AssertUnwindSafe(|| model.score_screened(&texts, &always)));
        stats.model_micros.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let Ok(scores) = scored else {
            stats
                .model_failed
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            tracing::error!(
                "the model failed on a batch of {} text(s); their phrase findings went through unjudged",
                batch.len()
            );
            for mj in &batch {
                if !pass_through(mj, &emit, &stats) {
                    return;
                }
            }
            continue;
        };
        for (mj, s) in batch.into_iter().zip(scores) {
            stats.model_scored.fetch_add(1, Ordering::Relaxed);
            let Some(s) = s else {
                // The screen kept it from the encoder: no phrase findings, nothing to say.
                stats.model_screened.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if !judge(&stage, model, mj, &s, &emit, &stats) {
                return;
            }
        }
    }
}

fn judge(
    stage: &ModelStage,
    model: &Model,
    mj: ModelJob,
    s: &Scores,
    emit: &Emit,
    stats: &Stats,
) -> bool {
    let phrase_danger: Vec<_> = mj
        .phrase
        .iter()
        .filter(|f| f.severity == Severity::Danger)
        .map(|f| f.risk)
        .collect();
    let borderline = mj
        .phrase
        .iter()
        .filter(|f| f.severity < Severity::Danger)
        .count();
    let found = combine(mj.phrase, Some(s), &stage.policy);
    let kept_borderline = found
        .iter()
        .filter(|d| {
            d.phrase
                .as_ref()
                .is_some_and(|f| f.severity < Severity::Danger)
        })
        .count();
    stats
        .model_vetoed
        .fetch_add((borderline - kept_borderline) as u64, Ordering::Relaxed);
    for d in found {
        // Danger phrase findings were recorded before the text reached the model.
        if d.severity < mj.min || phrase_danger.contains(&d.risk) {
            continue;
        }
        if d.stage != Stage::Phrase {
            stats.model_findings.fetch_add(1, Ordering::Relaxed);
        }
        stats.findings.fetch_add(1, Ordering::Relaxed);
        let nf = detection_finding(model, &mj.job, &d, s);
        if emit.blocking_send((mj.job.clone(), nf)).is_err() {
            return false;
        }
    }
    true
}

/// A detection as a stored finding: the phrase rules where the phrases found it, and the
/// model's scores with the closest labelled examples where the model did.
fn detection_finding(model: &Model, job: &Job, d: &Detection, s: &Scores) -> NewFinding {
    let mut rules = d.phrase.as_ref().map(phrase_rules).unwrap_or_default();
    if d.stage != Stage::Phrase {
        let examples: Vec<serde_json::Value> = model
            .neighbours(s, d.risk, EXAMPLES)
            .into_iter()
            .map(|n| {
                serde_json::json!({
                    "text": n.text,
                    "language": n.language,
                    "labels": n.labels,
                    "similarity": (n.similarity * 1000.0).round() / 1000.0,
                })
            })
            .collect();
        rules.push(serde_json::json!({
            "stage": "model",
            "score": (d.score.unwrap_or(0.0) * 1000.0).round() / 1000.0,
            "danger": (d.danger.unwrap_or(0.0) * 1000.0).round() / 1000.0,
            "examples": examples,
        }));
    }
    let mut nf = match &d.phrase {
        Some(f) => finding_with_rules(job, f, rules),
        None => NewFinding {
            at_ms: job.at_ms,
            source: job.source.slug().to_owned(),
            category: d.risk.slug().to_owned(),
            severity: String::new(),
            score: (d.score.unwrap_or(0.0) * 100.0).round() as i64,
            evidence: cut(&job.text, 160).to_owned(),
            context: cut(&job.text, 400).to_owned(),
            rules: serde_json::Value::Array(rules).to_string(),
            location: job.location.clone(),
        },
    };
    nf.severity = d.severity.slug().to_owned();
    nf
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
