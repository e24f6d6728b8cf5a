//! Monitoring: texts (search terms and URLs from the activity log, page text, agents' typed
//! text and chats) are scanned for risk; findings at or above a group's threshold are stored as
//! alerts — grouped per person and category — and then announced: to the live stream at once,
//! by email and webhook for danger, in a digest for the rest.
//!
//! ```text
//!                                          model workers (searches, typed text, chats,
//!                                           ▲  │  window titles, borderline pages)
//!                                 (bounded) │  ▼
//! proxy / agents ──submit (never blocks)──▶ scanning thread ──findings──▶ recorder task
//!                                                                         │ store (one tx:
//!                                                                         │ alert + deliveries)
//!                                            live stream (broadcast) ◀────┤
//!                                            delivery worker (email, ◀────┘ notify
//!                                            webhook; resumes at start)
//! ```
//!
//! Invariants: `submit` never blocks the request path (a full queue drops and counts); an alert
//! is committed to the database before it is announced anywhere; a delivery is owed (a row) until
//! it succeeds or is given up after repeated failures, so a restart resumes it; emails and
//! webhooks carry the category and a link, never the flagged text or the person's name.

mod api;
mod deliver;
mod digest;
mod model;
mod observe;
mod training;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lookout_scan::{Finding, Scanner, Scratch, Severity};
use lookout_store::{Alert, NewFinding, Store, Subject};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use api::{
    authorize, internal, parse_ingest, router, serve_api, serve_api_tls, ApiError, ApiState,
    IngestError, Ingested,
};
pub use deliver::{Email, EmailTls, Webhook};
pub use digest::{compose_digest, next_digest, send_digest, DigestEvery};
pub use model::{ModelSource, ModelStage};
pub use observe::job_for_event;
pub use training::{reminder_loop, send_reminders, Reminded};

/// The category of alerts raised for concerns people report.
pub const CONCERN: &str = "concern";

/// Where a text came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A search term from the activity log.
    Search,
    /// The words of a requested URL.
    Url,
    /// A page's title and text (inspected responses).
    Page,
    /// Text typed on a monitored device.
    Typed,
    /// A chat message on a monitored device.
    Chat,
    /// A window title on a monitored device.
    WindowTitle,
}

impl Source {
    const ALL: [Source; 6] = [
        Source::Search,
        Source::Url,
        Source::Page,
        Source::Typed,
        Source::Chat,
        Source::WindowTitle,
    ];

    /// The source with this slug.
    pub fn from_slug(slug: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.slug() == slug)
    }

    pub fn slug(self) -> &'static str {
        match self {
            Source::Search => "search",
            Source::Url => "url",
            Source::Page => "page",
            Source::Typed => "typed",
            Source::Chat => "chat",
            Source::WindowTitle => "window-title",
        }
    }
}

/// One text to scan, with who and where.
#[derive(Clone, Debug)]
pub struct Job {
    pub at_ms: i64,
    pub source: Source,
    pub text: String,
    /// URL, application or window the text was in.
    pub location: String,
    pub subject: Subject,
}

/// How findings become alerts and reach people.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Per group, the lowest severity that alerts (`None`: off).
    pub thresholds: HashMap<String, Option<Severity>>,
    /// For groups not in `thresholds`.
    pub default_threshold: Option<Severity>,
    /// Findings about the same subject and category within this are grouped.
    pub window: Duration,
    /// Texts waiting to be scanned.
    pub queue: usize,
    pub email: Option<Email>,
    pub webhook: Option<Webhook>,
    /// How people reach the console: links in emails and webhooks.
    pub console_url: String,
    /// Pause between delivery retries.
    pub retry: Duration,
}

impl Settings {
    /// The lowest severity that alerts for `group`.
    pub fn threshold(&self, group: &str) -> Option<Severity> {
        self.thresholds
            .get(group)
            .copied()
            .unwrap_or(self.default_threshold)
    }

    /// The channels a danger alert is delivered on.
    fn danger_channels(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.email.is_some() {
            v.push("email");
        }
        if self.webhook.is_some() {
            v.push("webhook");
        }
        v
    }
}

/// What the live stream carries for each alert change.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AlertNotice {
    /// `created`, `escalated` or `grouped` (another finding in an open alert).
    pub change: &'static str,
    pub id: i64,
    pub reference: String,
    pub category: String,
    pub category_label: String,
    pub severity: String,
    pub score: i64,
    pub subject: String,
    pub username: Option<String>,
    pub client_ip: Option<String>,
    pub device: Option<String>,
    pub group: String,
    pub source: String,
    pub findings: i64,
    /// The site gateway the text came through (`None`: this server).
    pub site: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// When the text that raised this change was seen (for latency measurement).
    pub seen_ms: i64,
    pub evidence: String,
    pub context: String,
    pub location: String,
}

impl AlertNotice {
    /// The alert as it now stands. Every announced change is to an open alert (findings only
    /// group into alerts not yet reviewed), so readers need not ask the database again.
    pub fn alert(&self) -> Alert {
        Alert {
            id: self.id,
            reference: self.reference.clone(),
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
            status: "new".to_owned(),
            category: self.category.clone(),
            severity: self.severity.clone(),
            score: self.score,
            subject: self.subject.clone(),
            username: self.username.clone(),
            client_ip: self.client_ip.clone(),
            device: self.device.clone(),
            group: self.group.clone(),
            source: self.source.clone(),
            findings: self.findings,
            site: self.site.clone(),
        }
    }
}

/// Counters for `/status` and the tests.
#[derive(Debug, Default)]
pub struct Stats {
    pub submitted: AtomicU64,
    pub dropped: AtomicU64,
    pub scanned: AtomicU64,
    pub findings: AtomicU64,
    pub alerts: AtomicU64,
    pub store_errors: AtomicU64,
    /// Texts whose scan panicked (contained; scanned again once with fresh state).
    pub scan_panics: AtomicU64,
    /// Of those, texts that failed again and were kept in the database for the next start.
    pub scan_kept: AtomicU64,
    /// Times the delivery worker panicked and was restarted.
    pub delivery_restarts: AtomicU64,
    /// Whether the model stage runs: 0 off, 1 on.
    pub model_on: AtomicU64,
    /// Texts handed to the model stage.
    pub model_queued: AtomicU64,
    /// Texts the model stage finished with (read by the encoder or kept away by the screen).
    pub model_scored: AtomicU64,
    /// Of those, texts the screen kept away from the encoder.
    pub model_screened: AtomicU64,
    /// Texts the model could not take (queue full): their phrase findings went unjudged.
    pub model_behind: AtomicU64,
    /// When the model last could not take a text (ms since the epoch; 0 never).
    pub model_behind_at_ms: std::sync::atomic::AtomicI64,
    /// Texts whose scoring failed (contained; their phrase findings went unjudged).
    pub model_failed: AtomicU64,
    /// Borderline phrase findings the model judged innocent.
    pub model_vetoed: AtomicU64,
    /// Findings the model found or changed.
    pub model_findings: AtomicU64,
    /// Time spent scoring, in microseconds.
    pub model_micros: AtomicU64,
}

impl Stats {
    /// The counters as JSON.
    pub fn snapshot(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let behind_at = self.model_behind_at_ms.load(Ordering::Relaxed);
        let queued = get(&self.model_queued);
        let done = get(&self.model_scored) + get(&self.model_failed);
        serde_json::json!({
            "submitted": get(&self.submitted),
            "dropped": get(&self.dropped),
            "scanned": get(&self.scanned),
            "findings": get(&self.findings),
            "alerts": get(&self.alerts),
            "store_errors": get(&self.store_errors),
            "scan_panics": get(&self.scan_panics),
            "scan_kept": get(&self.scan_kept),
            "delivery_restarts": get(&self.delivery_restarts),
            "model": {
                "state": if get(&self.model_on) == 1 { "on" } else { "off" },
                // Behind: the queue was full in the last minute.
                "behind": behind_at > 0 && lookout_store::now_ms() - behind_at < 60_000,
                "waiting": queued.saturating_sub(done),
                "queued": queued,
                "scored": get(&self.model_scored),
                "screened": get(&self.model_screened),
                "passed_unjudged": get(&self.model_behind),
                "failed": get(&self.model_failed),
                "vetoed": get(&self.model_vetoed),
                "findings": get(&self.model_findings),
                "mean_ms": if done > 0 { get(&self.model_micros) as f64 / done as f64 / 1000.0 } else { 0.0 },
            },
        })
    }
}

/// How the scanning thread scans one text: the phrase libraries, or (in tests of fault
/// containment) something wrapping them.
pub type ScanFn = Arc<dyn Fn(&mut Scratch, &str) -> Vec<Finding> + Send + Sync>;

/// How long a worker that panicked waits before it is started again (no busy loop if it
/// panics at once every time).
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// Runs the task `start` makes, and if it panics (and `stop` was not asked for), counts it
/// (`delivery_restarts`), says so, and starts a new one after `pause`. Ends when a task
/// returns or `stop` is cancelled.
fn restarting_on_panic<F, Fut>(
    what: &'static str,
    stats: Arc<Stats>,
    stop: CancellationToken,
    pause: Duration,
    start: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match tokio::spawn(start()).await {
                Err(e) if e.is_panic() && !stop.is_cancelled() => {
                    stats.delivery_restarts.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("monitoring: {what} panicked; restarting it in {pause:?}");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = stop.cancelled() => return,
                    }
                }
                _ => return,
            }
        }
    })
}

/// Scans `job` with `scan`, containing a panic: counted and logged, scanned once more with
/// fresh scratch state, and if that fails too, handed to `keep` (stored for the next start).
fn scan_contained(
    scan: &ScanFn,
    scratch: &mut Scratch,
    job: &Job,
    stats: &Stats,
    keep: &mpsc::UnboundedSender<lookout_store::Unscanned>,
) -> Option<Vec<Finding>> {
    let attempt = |scratch: &mut Scratch| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scan(scratch, &job.text)))
    };
    match attempt(scratch) {
        Ok(found) => return Some(found),
        Err(panic) => {
            stats.scan_panics.fetch_add(1, Ordering::Relaxed);
            *scratch = Scratch::default();
            tracing::warn!(
                "monitoring: scanning a {} text ({} bytes, group {}) panicked: {}; scanning it again",
                job.source.slug(),
                job.text.len(),
                job.subject.group,
                panic_message(&panic)
            );
        }
    }
    match attempt(scratch) {
        Ok(found) => Some(found),
        Err(panic) => {
            *scratch = Scratch::default();
            stats.scan_kept.fetch_add(1, Ordering::Relaxed);
            let error = panic_message(&panic);
            tracing::warn!("monitoring: the text failed again ({error}); kept in the database to scan at the next start");
            let _ = keep.send(lookout_store::Unscanned {
                id: 0,
                at_ms: job.at_ms,
                source: job.source.slug().to_owned(),
                text: job.text.clone(),
                location: job.location.clone(),
                subject: job.subject.clone(),
                error,
            });
            None
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Stores texts whose scan failed, after first handing back to the scanner those kept by an
/// earlier run.
async fn keeper(
    store: Store,
    jobs: mpsc::Sender<Option<Job>>,
    mut kept: mpsc::UnboundedReceiver<lookout_store::Unscanned>,
    stats: Arc<Stats>,
) {
    match store.unscanned().await {
        Ok(earlier) => {
            for u in earlier {
                let Some(source) = Source::from_slug(&u.source) else {
                    continue;
                };
                let job = Job {
                    at_ms: u.at_ms,
                    source,
                    text: u.text,
                    location: u.location,
                    subject: u.subject,
                };
                // Forgotten once queued: if it fails again it is kept again.
                if jobs.send(Some(job)).await.is_ok() {
                    stats.submitted.fetch_add(1, Ordering::Relaxed);
                    let _ = store.forget_unscanned(u.id).await;
                }
            }
        }
        Err(e) => {
            tracing::warn!("monitoring: texts kept from an earlier run could not be read: {e}")
        }
    }
    drop(jobs);
    while let Some(u) = kept.recv().await {
        if let Err(e) = store.keep_unscanned(&u).await {
            stats.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("monitoring: a text whose scan failed could not be kept: {e}");
        }
    }
}

/// The monitoring pipeline's handle: cheap to clone.
#[derive(Clone, Debug)]
pub struct Monitor {
    /// `None` is the end-of-work mark [`MonitorTasks::finish`] sends.
    jobs: mpsc::Sender<Option<Job>>,
    notices: broadcast::Sender<AlertNotice>,
    stats: Arc<Stats>,
    settings: Arc<Settings>,
    store: Store,
    deliveries: Arc<Notify>,
}

/// The pipeline's tasks, to await on shutdown.
#[derive(Debug)]
pub struct MonitorTasks {
    closer: mpsc::Sender<Option<Job>>,
    scanner: std::thread::JoinHandle<()>,
    model_workers: Vec<std::thread::JoinHandle<()>>,
    recorder: JoinHandle<()>,
    keeper: JoinHandle<()>,
    deliverer: JoinHandle<()>,
    stop_delivery: CancellationToken,
}

impl MonitorTasks {
    /// Scans every text queued so far, stores every finding, then stops the delivery worker
    /// (deliveries still owed are resumed at the next start). Texts submitted afterwards are
    /// dropped and counted.
    pub async fn finish(self) {
        let _ = self.closer.send(None).await;
        let scanner = self.scanner;
        let workers = self.model_workers;
        let _ = tokio::task::spawn_blocking(move || {
            let _ = scanner.join();
            // The scanning thread has closed the model queue: the workers finish what is in it.
            for w in workers {
                let _ = w.join();
            }
        })
        .await;
        let _ = self.recorder.await;
        // Texts whose scan failed are in the database before the store closes.
        let _ = self.keeper.await;
        self.stop_delivery.cancel();
        let _ = self.deliverer.await;
    }
}

impl Monitor {
    /// Starts the scanning thread, the model stage's workers (where there is a model), the
    /// recorder and the delivery worker (which first resumes deliveries owed from before a
    /// restart).
    pub fn start(
        scanner: Arc<Scanner>,
        store: Store,
        settings: Settings,
        model: Option<ModelStage>,
    ) -> (Monitor, MonitorTasks) {
        let scan: ScanFn = Arc::new(move |scratch, text| scanner.scan_with(scratch, text));
        Monitor::start_scanning_with(scan, store, settings, model)
    }

    /// As [`Monitor::start`], scanning each text with `scan`.
    pub fn start_scanning_with(
        scan: ScanFn,
        store: Store,
        settings: Settings,
        model: Option<ModelStage>,
    ) -> (Monitor, MonitorTasks) {
        let settings = Arc::new(settings);
        let (keep_tx, keep_rx) = mpsc::unbounded_channel();
        let (jobs, mut job_rx) = mpsc::channel::<Option<Job>>(settings.queue.max(1));
        let (found_tx, found_rx) = mpsc::channel::<(Job, NewFinding)>(4096);
        let (notices, _) = broadcast::channel(1024);
        let stats = Arc::new(Stats::default());
        let deliveries = Arc::new(Notify::new());

        let mut model_workers = Vec::new();
        let model_queue = model.map(|stage| {
            stats.model_on.store(1, Ordering::Relaxed);
            let (tx, rx) = std::sync::mpsc::sync_channel::<model::ModelJob>(stage.queue.max(1));
            let rx = Arc::new(std::sync::Mutex::new(rx));
            let loaded = model::Loaded::default();
            for i in 0..stage.workers.max(1) {
                let (stage, loaded, rx, emit, stats) = (
                    stage.clone(),
                    loaded.clone(),
                    rx.clone(),
                    found_tx.clone(),
                    stats.clone(),
                );
                model_workers.push(
                    std::thread::Builder::new()
                        .name(format!("lookout-model-{i}"))
                        .spawn(move || model::worker(stage, loaded, rx, emit, stats))
                        .expect("start a model worker"),
                );
            }
            tx
        });

        let scan_stats = stats.clone();
        let scan_settings = settings.clone();
        let scanner_thread = std::thread::Builder::new()
            .name("lookout-scan".into())
            .spawn(move || {
                let mut scratch = Scratch::default();
                while let Some(Some(job)) = next_job(&mut job_rx) {
                    scan_stats.scanned.fetch_add(1, Ordering::Relaxed);
                    let Some(min) = scan_settings.threshold(&job.subject.group) else {
                        continue;
                    };
                    let Some(found) =
                        scan_contained(&scan, &mut scratch, &job, &scan_stats, &keep_tx)
                    else {
                        continue;
                    };
                    let to_model = model_queue
                        .as_ref()
                        .filter(|_| model::wanted(job.source, &found));
                    for f in &found {
                        // With the model to judge them, only danger phrase findings go now.
                        if f.severity >= min
                            && (to_model.is_none() || f.severity == Severity::Danger)
                        {
                            scan_stats.findings.fetch_add(1, Ordering::Relaxed);
                            if found_tx
                                .blocking_send((job.clone(), new_finding(&job, f)))
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                    if let Some(queue) = to_model {
                        let mj = model::ModelJob {
                            job,
                            phrase: found,
                            min,
                        };
                        if !model::hand_over(queue, &scan_stats, mj, &found_tx) {
                            return;
                        }
                    }
                }
            })
            .expect("start the scanning thread");

        let monitor = Monitor {
            jobs,
            notices,
            stats,
            settings,
            store,
            deliveries,
        };
        let recorder = tokio::spawn(monitor.clone().record_loop(found_rx));
        let keeper = tokio::spawn(keeper(
            monitor.store.clone(),
            monitor.jobs.clone(),
            keep_rx,
            monitor.stats.clone(),
        ));
        let stop_delivery = CancellationToken::new();
        let (store, settings, notify, stop) = (
            monitor.store.clone(),
            monitor.settings.clone(),
            monitor.deliveries.clone(),
            stop_delivery.clone(),
        );
        // Deliveries owed are in the database, so a restarted worker picks them up.
        let deliverer = restarting_on_panic(
            "the delivery worker",
            monitor.stats.clone(),
            stop_delivery.clone(),
            RESTART_AFTER,
            move || {
                deliver::delivery_loop(
                    store.clone(),
                    settings.clone(),
                    notify.clone(),
                    stop.clone(),
                )
            },
        );
        let closer = monitor.jobs.clone();
        (
            monitor,
            MonitorTasks {
                closer,
                scanner: scanner_thread,
                model_workers,
                recorder,
                keeper,
                deliverer,
                stop_delivery,
            },
        )
    }

    /// Queues a text to scan; a full queue drops it and counts it. Never waits.
    pub fn submit(&self, job: Job) -> bool {
        self.stats.submitted.fetch_add(1, Ordering::Relaxed);
        match self.jobs.try_send(Some(job)) {
            Ok(()) => true,
            Err(_) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Raises an alert that did not come from scanning (a concern someone reported): stored
    /// as its own alert (never grouped), then announced and delivered like any other.
    pub async fn raise(
        &self,
        subject: &Subject,
        finding: &NewFinding,
    ) -> Result<Alert, lookout_store::StoreError> {
        let channels = self.settings.danger_channels();
        // A window of -1 ms matches no open alert: every raised alert stands alone.
        let r = self
            .store
            .record_finding(subject, finding, -1, &channels)
            .await?;
        self.stats.alerts.fetch_add(1, Ordering::Relaxed);
        let _ = self.notices.send(notice("created", &r.alert, finding));
        if !r.deliveries.is_empty() {
            self.deliveries.notify_one();
        }
        Ok(r.alert)
    }

    /// How many more texts the scanning queue takes now.
    pub fn free_capacity(&self) -> usize {
        self.jobs.capacity()
    }

    /// Texts waiting in the scanning queue now.
    pub fn queued(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    /// The live stream of alert changes.
    pub fn subscribe(&self) -> broadcast::Receiver<AlertNotice> {
        self.notices.subscribe()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// An observer for the activity log: search terms and page URLs go to scanning.
    pub fn observer(&self) -> lookout_store::Observer {
        let me = self.clone();
        lookout_store::Observer(Arc::new(move |e| {
            if let Some(job) = job_for_event(e) {
                me.submit(job);
            }
        }))
    }

    async fn record_loop(self, mut found: mpsc::Receiver<(Job, NewFinding)>) {
        let Monitor {
            notices,
            stats,
            settings,
            store,
            deliveries,
            jobs,
        } = self;
        drop(jobs);
        let window_ms = i64::try_from(settings.window.as_millis()).unwrap_or(i64::MAX);
        let channels = settings.danger_channels();
        while let Some((job, nf)) = found.recv().await {
            let mut delay = Duration::from_millis(50);
            let recorded = loop {
                match store
                    .record_finding(&job.subject, &nf, window_ms, &channels)
                    .await
                {
                    Ok(r) => break Some(r),
                    Err(e) if delay < Duration::from_secs(5) => {
                        tracing::warn!("storing an alert failed, retrying: {e}");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                    Err(e) => {
                        stats.store_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            "an alert could not be stored ({} for {}): {e}",
                            nf.category,
                            job.subject.key()
                        );
                        break None;
                    }
                }
            };
            let Some(r) = recorded else { continue };
            if r.created {
                stats.alerts.fetch_add(1, Ordering::Relaxed);
            }
            let change = if r.created {
                "created"
            } else if r.escalated {
                "escalated"
            } else {
                "grouped"
            };
            let _ = notices.send(notice(change, &r.alert, &nf));
            if !r.deliveries.is_empty() {
                deliveries.notify_one();
            }
        }
    }
}

pub(crate) fn new_finding(job: &Job, f: &Finding) -> NewFinding {
    finding_with_rules(job, f, phrase_rules(f))
}

/// The phrase rules that matched, as stored with a finding.
pub(crate) fn phrase_rules(f: &Finding) -> Vec<serde_json::Value> {
    f.matches
        .iter()
        .map(|m| {
            serde_json::json!({
                "stage": "phrase",
                "rule": m.phrase,
                "source": m.source,
                "language": m.language,
                "severity": m.severity.slug(),
                "weight": m.weight,
                "evidence": m.evidence,
                "count": m.count,
            })
        })
        .collect()
}

/// A phrase finding with `rules` (the phrase rules, and the model's part where it had one).
pub(crate) fn finding_with_rules(
    job: &Job,
    f: &Finding,
    rules: Vec<serde_json::Value>,
) -> NewFinding {
    let first = f.matches.first();
    NewFinding {
        at_ms: job.at_ms,
        source: job.source.slug().to_owned(),
        category: f.risk.slug().to_owned(),
        severity: f.severity.slug().to_owned(),
        score: i64::from(f.score),
        evidence: f
            .matches
            .iter()
            .map(|m| m.evidence.as_str())
            .collect::<Vec<_>>()
            .join(" · "),
        context: first.map(|m| m.context.clone()).unwrap_or_default(),
        rules: serde_json::Value::Array(rules).to_string(),
        location: job.location.clone(),
    }
}

fn notice(change: &'static str, a: &Alert, f: &NewFinding) -> AlertNotice {
    AlertNotice {
        change,
        id: a.id,
        reference: a.reference.clone(),
        category: a.category.clone(),
        category_label: category_label(&a.category),
        severity: a.severity.clone(),
        score: a.score,
        subject: a.subject.clone(),
        username: a.username.clone(),
        client_ip: a.client_ip.clone(),
        device: a.device.clone(),
        group: a.group.clone(),
        source: f.source.clone(),
        findings: a.findings,
        site: a.site.clone(),
        created_ms: a.created_ms,
        updated_ms: a.updated_ms,
        seen_ms: f.at_ms,
        evidence: f.evidence.clone(),
        context: f.context.clone(),
        location: f.location.clone(),
    }
}

/// "suicide" → "Suicide"; unknown slugs as they are.
pub fn category_label(slug: &str) -> String {
    if slug == CONCERN {
        return "Reported concern".to_owned();
    }
    lookout_scan::Risk::from_slug(slug).map_or_else(|| slug.to_owned(), |r| r.label().to_owned())
}

/// How often the scanning thread looks at an empty queue while texts keep coming, and for how
/// many looks before it sleeps until woken.
const POLL: Duration = Duration::from_millis(1);
const IDLE_POLLS: u32 = 20;

/// The scanning thread's next job (`None`: the queue is closed).
///
/// A thread asleep until woken costs whoever wakes it a system call and a switch, and at a
/// college's peak every proxied page and search is a job (perf under `wrk` through the proxy:
/// the wake-ups in `Monitor::submit` were 6% of the gateway's CPU). So while texts keep coming
/// the thread looks at the queue every `POLL` (one call a millisecond, on its own core time)
/// and the proxy's `try_send` only stores; after `IDLE_POLLS` empty looks it sleeps until
/// woken, so an idle gateway spends nothing. A text waits at most `POLL` longer to be scanned.
fn next_job<T>(rx: &mut mpsc::Receiver<T>) -> Option<T> {
    for _ in 0..IDLE_POLLS {
        match rx.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) => std::thread::sleep(POLL),
        }
    }
    rx.blocking_recv()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn the_scanning_thread_takes_jobs_while_polling_and_after_sleeping() {
        let (tx, mut rx) = mpsc::channel::<u32>(8);
        let sender = std::thread::spawn(move || {
            tx.blocking_send(1).expect("open");
            tx.blocking_send(2).expect("open");
            // Within the polling: taken by a look at the queue.
            std::thread::sleep(POLL * (IDLE_POLLS / 4));
            tx.blocking_send(3).expect("open");
            // Well after it: the thread sleeps until this job wakes it.
            std::thread::sleep(POLL * IDLE_POLLS * 5);
            tx.blocking_send(4).expect("open");
        });
        let got: Vec<u32> = std::iter::from_fn(|| next_job(&mut rx)).collect();
        sender.join().expect("the sender ends");
        assert_eq!(
            got,
            [1, 2, 3, 4],
            "every job, in order, then the end of the queue"
        );
    }

    /// A worker that panics twice is started again each time and the third one runs; the
    /// restarts are counted; cancelling `stop` ends it, panicking or not.
    #[tokio::test]
    async fn a_panicking_worker_is_restarted_and_counted() {
        let stats = Arc::new(Stats::default());
        let stop = CancellationToken::new();
        let started = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(tokio::sync::Notify::new());
        let (s, r, st) = (started.clone(), running.clone(), stop.clone());
        let task = restarting_on_panic(
            "the test worker",
            stats.clone(),
            stop.clone(),
            Duration::from_millis(10),
            move || {
                let (s, r, st) = (s.clone(), r.clone(), st.clone());
                async move {
                    if s.fetch_add(1, Ordering::SeqCst) < 2 {
                        panic!("worker failure (expected by this test)");
                    }
                    r.notify_one();
                    st.cancelled().await;
                }
            },
        );
        tokio::time::timeout(Duration::from_secs(10), running.notified())
            .await
            .expect("the third worker runs");
        assert_eq!(started.load(Ordering::SeqCst), 3);
        assert_eq!(stats.delivery_restarts.load(Ordering::Relaxed), 2);
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("stops when asked")
            .unwrap();

        // Asked to stop while a panicked worker waits to be restarted: not restarted.
        let stop = CancellationToken::new();
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let task = restarting_on_panic(
            "the test worker",
            stats.clone(),
            stop.clone(),
            Duration::from_secs(3600),
            move || {
                s.fetch_add(1, Ordering::SeqCst);
                async { panic!("worker failure (expected by this test)") }
            },
        );
        while stats.delivery_restarts.load(Ordering::Relaxed) < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("stops during the pause")
            .unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 1);
    }
}
