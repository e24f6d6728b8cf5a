//! The activity log: events, the bounded queue that batches them into the database, and
//! queries over them.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::log_writer::GiveWay;
use crate::{now_ms, Dialect, Sql, Store, StoreError};

/// An event's text that many events share: a constant (`allow`, `GET`, a category's slug, a
/// reason without a detail) or a name interned for good (a group's, by
/// `lookout_policy::intern`), borrowed without an allocation; other text (a reason naming the
/// entry that matched, several categories, anything read back from the database) owned.
///
/// Each owned string is an allocation where the event is made, on a gateway's worker, and a
/// free where it is dropped, on the log's writer thread once it is written: a free of memory
/// another thread allocated, which cost jemalloc about three times a free of its own
/// (callgrind, `bench/proxy-instructions.sh`: an event's drop 940 instructions on the writer
/// against 284 on the worker, eight strings each).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(Cow<'static, str>);

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text as a `String` of its own (a copy only when borrowed).
    pub fn into_string(self) -> String {
        self.0.into_owned()
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Text {
        Text(Cow::Borrowed(s))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Cow::Owned(s))
    }
}

impl From<Cow<'static, str>> for Text {
    fn from(s: Cow<'static, str>) -> Text {
        Text(s)
    }
}

impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

/// One decision, as logged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// When, in milliseconds since the epoch.
    pub at_ms: i64,
    /// The reference shown on a block or warning page, to find the event again; empty for
    /// events that showed no page.
    pub reference: String,
    /// `proxy` or `dns`.
    pub service: &'static str,
    /// The client's address.
    pub client_ip: String,
    /// The signed-in user, if known.
    pub username: Option<String>,
    /// The group whose policy decided.
    pub group: Text,
    /// HTTP method, `CONNECT`, or the DNS query type.
    pub method: Text,
    /// The URL (or host for CONNECT and DNS).
    pub url: String,
    /// The host.
    pub host: String,
    /// A search term, when the URL is a search.
    pub search_term: Option<String>,
    /// Category slugs, comma-separated.
    pub categories: Text,
    /// `allow`, `warn`, `block`, or `continue` (a warning clicked through).
    pub action: Text,
    /// The rule kind (`category`, `illegal`, `download`, `sni-mismatch`, ...).
    pub rule: Text,
    /// The reason in words.
    pub reason: Text,
    /// HTTP status sent to the client, if any.
    pub status: Option<u16>,
    /// Response body bytes sent to the client.
    pub bytes: u64,
}

/// `method` (an HTTP request's) as an event's text: one of the standard methods borrowed,
/// any other owned, cut after 32 characters (`METHOD_KEPT`) and marked `…` where longer.
///
/// A method is a kind's text (`event_kinds`, found through an index of its first 64
/// characters): no client needs a longer one (WebDAV's longest is 16), and methods that
/// differ only after the index's characters would each cost the log's writer a pass over all
/// of them.
pub fn method_text(method: &str) -> Text {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "HEAD", "CONNECT", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE",
    ];
    if let Some(&m) = STANDARD.iter().find(|&&m| m == method) {
        return Text::from(m);
    }
    match method.char_indices().nth(METHOD_KEPT) {
        Some((cut, _)) => Text::from(format!("{}…", &method[..cut])),
        None => Text::from(method.to_owned()),
    }
}

/// The characters of a method an event keeps ([`method_text`]).
pub(crate) const METHOD_KEPT: usize = 32;

const _: () = assert!(METHOD_KEPT < KIND_METHOD_INDEXED);

/// `ip` as an event's `client_ip` holds it (the standard spelling, as `to_string` gives it).
/// An IPv4 address digit by digit into a string of its longest length: `to_string` goes
/// through the formatting machinery seven pieces at a time into a string that starts empty
/// and grows, ~1,600 instructions, twice in each proxied request (its event and its page's
/// capture) and once in each logged DNS query.
pub fn ip_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut s = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                if octet >= 100 {
                    s.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    s.push(char::from(b'0' + octet / 10 % 10));
                }
                s.push(char::from(b'0' + octet % 10));
            }
            s
        }
        std::net::IpAddr::V6(v6) => {
            use std::fmt::Write;
            // The longest spelling: eight groups with an IPv4 tail.
            let mut s = String::with_capacity(45);
            let _ = write!(s, "{v6}");
            s
        }
    }
}

/// A new event reference, e.g. `LK-7Q2M-X9KD`: shown on block pages and quoted to staff,
/// so it avoids characters that are easily misread (0/O, 1/I).
pub fn new_reference() -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut s = String::from("LK-");
    for i in 0..8 {
        if i == 4 {
            s.push('-');
        }
        s.push(char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]));
    }
    s
}

/// An event read back, with its row id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Row id: increases with insertion.
    pub id: i64,
    /// The event.
    pub event: Event,
    /// The site gateway that forwarded it (`None`: this server's own).
    pub site: Option<String>,
}

/// A recorded gap in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGap {
    /// When it was recorded.
    pub at_ms: i64,
    /// How many events were lost.
    pub dropped: i64,
    /// Why (`queue full`, `database error: ...`).
    pub cause: String,
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Events with id greater than this (for following the log).
    pub after_id: Option<i64>,
    /// From this time.
    pub since_ms: Option<i64>,
    /// Before this time.
    pub until_ms: Option<i64>,
    /// This user.
    pub username: Option<String>,
    /// This client address.
    pub client_ip: Option<String>,
    /// This action.
    pub action: Option<String>,
    /// This reference.
    pub reference: Option<String>,
    /// Host equal to, or a subdomain of, this.
    pub host: Option<String>,
    /// URL or search term containing this text (case-insensitive for ASCII).
    pub text: Option<String>,
    /// Category slug.
    pub category: Option<String>,
    /// Forwarded by this site gateway.
    pub site: Option<String>,
    /// The most rows (newest first); default 100.
    pub limit: Option<u32>,
}

/// Counters of the activity log, for status pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventLogStats {
    /// Events queued so far.
    pub queued: u64,
    /// Events written to the database.
    pub written: u64,
    /// Events lost (queue full, shut down, or the database failing).
    pub dropped: u64,
    /// Transactions that wrote events (`written / transactions` events each, on average).
    pub transactions: u64,
}

/// The database refusing the activity log's writes (disk full, read-only, locked, damaged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFailure {
    /// When writes started failing.
    pub since_ms: i64,
    /// The database's last error.
    pub error: String,
    /// Events lost since then (written to `log_gaps` once the database takes writes again).
    pub lost: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    transactions: AtomicU64,
    /// Dropped because the queue was full, not yet recorded in `log_gaps`.
    unrecorded_full: AtomicU64,
    /// The current failure, while the database refuses writes.
    failure: std::sync::Mutex<Option<LogFailure>>,
}

impl Counters {
    fn failure(&self) -> std::sync::MutexGuard<'_, Option<LogFailure>> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending side of the activity log: cheap to clone (one shared count: a request that
/// logs when its body ends holds a clone), never blocks.
#[derive(Debug, Clone)]
pub struct EventLog(Arc<Sending>);

/// What every clone of an [`EventLog`] shares. Cloning the queue's sender and the observer
/// lists for each logged request cost two allocations and half a dozen counts that both cores
/// write (`EventLog::clone` alone was ~0.2% of the logging proxy's CPU in perf).
#[derive(Debug, Clone)]
struct Sending {
    tx: mpsc::Sender<Event>,
    /// Woken when the writer, gathering for `flush`, has a batch: once a batch rather than once
    /// an event.
    batch_ready: Arc<Notify>,
    /// The queue's free room at which the writer has a batch (`usize::MAX`: not gathering).
    wake_at: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    /// See the events the log keeps.
    observers: Vec<Observer>,
    /// See every decision, kept or not (`[log] allowed = false` keeps blocks only).
    decision_observers: Vec<Observer>,
}

/// Sees every event as it is recorded (before it is queued): the monitoring's tap on the
/// activity log. It must not block.
#[derive(Clone)]
pub struct Observer(pub Arc<dyn Fn(&Event) + Send + Sync>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

/// The writer task, to await on shutdown.
#[derive(Debug)]
pub struct EventWriter {
    handle: JoinHandle<()>,
    shutdown: Arc<Notify>,
}

impl EventWriter {
    /// Stops taking events, writes every queued one, and returns when they are stored.
    pub async fn finish(self) {
        self.shutdown.notify_one();
        let _ = self.handle.await;
    }
}

impl EventLog {
    /// Starts the writer: up to `queue` events wait; up to `batch` are written per transaction,
    /// gathered for up to `flush` after the first one arrives (zero: written at once).
    pub fn start(
        store: Store,
        queue: usize,
        batch: usize,
        flush: Duration,
    ) -> (EventLog, EventWriter) {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let counters = Arc::new(Counters::default());
        let shutdown = Arc::new(Notify::new());
        let batch_ready = Arc::new(Notify::new());
        let wake_at = Arc::new(AtomicUsize::new(usize::MAX));
        let handle = tokio::spawn(write_loop(
            store,
            rx,
            keeping_up(tx.downgrade(), batch.max(1)),
            batch.max(1),
            flush,
            counters.clone(),
            Wakes {
                batch_ready: batch_ready.clone(),
                wake_at: wake_at.clone(),
                shutdown: shutdown.clone(),
            },
        ));
        (
            EventLog(Arc::new(Sending {
                tx,
                batch_ready,
                wake_at,
                counters,
                observers: Vec::new(),
                decision_observers: Vec::new(),
            })),
            EventWriter { handle, shutdown },
        )
    }

    /// Shows every recorded event to `observer` too (whether or not the queue has room),
    /// after the observers added before it: a copy of the log (a SIEM's).
    pub fn with_observer(mut self, observer: Observer) -> EventLog {
        Arc::make_mut(&mut self.0).observers.push(observer);
        self
    }

    /// Shows `observer` every decision, the log's own and those [`EventLog::pass`]es over
    /// (allowed requests when they are not logged): the monitoring's scanning of search terms
    /// does not depend on what the log keeps.
    pub fn with_decision_observer(mut self, observer: Observer) -> EventLog {
        Arc::make_mut(&mut self.0).decision_observers.push(observer);
        self
    }

    /// Whether anything sees the decisions the log does not keep: if not, a caller need not
    /// build their events.
    pub fn watches_unlogged(&self) -> bool {
        !self.0.decision_observers.is_empty()
    }

    /// A decision the log does not keep: shown to the decision observers only, not queued.
    pub fn pass(&self, event: &Event) {
        for o in &self.0.decision_observers {
            (o.0)(event);
        }
    }

    /// Queues an event; when the queue is full it is dropped and counted, never waited for.
    pub fn record(&self, event: Event) {
        self.pass(&event);
        for o in &self.0.observers {
            (o.0)(&event);
        }
        match self.0.tx.try_send(event) {
            Ok(()) => {
                self.0.counters.queued.fetch_add(1, Ordering::Relaxed);
                // Only the event that made it a batch wakes the writer (another sender's event
                // in between can hide the crossing: the writer then wakes at its deadline).
                if self.0.tx.capacity() == self.0.wake_at.load(Ordering::Relaxed) {
                    self.0.batch_ready.notify_one();
                }
            }
            Err(_) => {
                self.0.counters.dropped.fetch_add(1, Ordering::Relaxed);
                self.0
                    .counters
                    .unrecorded_full
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> EventLogStats {
        EventLogStats {
            queued: self.0.counters.queued.load(Ordering::Relaxed),
            written: self.0.counters.written.load(Ordering::Relaxed),
            dropped: self.0.counters.dropped.load(Ordering::Relaxed),
            transactions: self.0.counters.transactions.load(Ordering::Relaxed),
        }
    }

    /// The database refusing writes, while it does (the gateway keeps filtering meanwhile).
    pub fn failure(&self) -> Option<LogFailure> {
        self.0.counters.failure().clone()
    }

    /// Events waiting to be written.
    pub fn backlog(&self) -> usize {
        waiting(&self.0.tx)
    }
}

/// What wakes the writer besides the first event of a batch.
struct Wakes {
    /// The writer has a batch (see [`Sending::batch_ready`]).
    batch_ready: Arc<Notify>,
    /// See [`Sending::wake_at`].
    wake_at: Arc<AtomicUsize>,
    /// [`EventWriter::finish`].
    shutdown: Arc<Notify>,
}

async fn write_loop(
    store: Store,
    mut rx: mpsc::Receiver<Event>,
    give_way: GiveWay,
    batch: usize,
    flush: Duration,
    counters: Arc<Counters>,
    wakes: Wakes,
) {
    let shutdown = &wakes.shutdown;
    let mut buf = Vec::with_capacity(batch);
    loop {
        let mut closing = tokio::select! {
            n = rx.recv_many(&mut buf, batch) => n == 0,
            () = shutdown.notified() => true,
        };
        // Gather for up to `flush` after the first event: at a college's peak one transaction
        // (one sync of the disk, each page written once) carries hundreds of events rather than
        // a few, which is most of what logging costs the gateway. Meanwhile the writer sleeps
        // until the deadline or a whole batch: woken for every event, it cost the gateway a
        // wake each (a futex call when it ran on another runtime than the senders).
        let deadline = tokio::time::Instant::now() + flush;
        while !closing && !flush.is_zero() && buf.len() < batch {
            let room = batch - buf.len();
            // Set before looking at the queue: an event queued meanwhile either sees it or is
            // seen here. (One missed in a race costs waiting until the deadline, never an event.)
            let max = rx.max_capacity();
            wakes
                .wake_at
                .store(max.saturating_sub(room), Ordering::Relaxed);
            if rx.len() >= room {
                rx.recv_many(&mut buf, room).await;
                break;
            }
            let due = tokio::select! {
                () = wakes.batch_ready.notified() => false,
                () = tokio::time::sleep_until(deadline) => true,
                () = shutdown.notified() => {
                    closing = true;
                    true
                }
            };
            // What is waiting, without waiting (the only receiver: a non-empty queue stays so).
            if !rx.is_empty() {
                rx.recv_many(&mut buf, room).await;
            }
            if due {
                break;
            }
        }
        wakes.wake_at.store(usize::MAX, Ordering::Relaxed);
        if closing {
            rx.close();
            // Whatever is already queued is still written.
            while rx.recv_many(&mut buf, batch).await > 0 {
                store_batch(&store, &mut buf, &counters, None).await;
            }
            store_batch(&store, &mut buf, &counters, None).await;
            if let Some(f) = counters.failure().as_ref() {
                tracing::warn!("activity log: stopped while the database refuses writes ({}): {} events could not be written; the next start records the gap", f.error, f.lost);
            }
            return;
        }
        store_batch(&store, &mut buf, &counters, Some(&give_way)).await;
    }
}

/// Events in the queue, not yet taken by the writer.
fn waiting(tx: &mpsc::Sender<Event>) -> usize {
    tx.max_capacity() - tx.capacity()
}

/// The writer's [`GiveWay`]: while less than a batch waits in the queue it is keeping up, and
/// gives the core to the gateway's threads between rows. With a batch or more waiting it
/// writes flat out, so giving way never costs events (the queue holds `queue` of them). A
/// weak handle: the writer must not keep the queue open.
fn keeping_up(tx: mpsc::WeakSender<Event>, batch: usize) -> GiveWay {
    Arc::new(move || tx.upgrade().is_some_and(|tx| waiting(&tx) < batch))
}

/// Writes `buf` (retrying a failing database a few times) and records any gap. While the
/// database refuses writes, losses are counted and the failure is shown by
/// [`EventLog::failure`]; the gap is written to `log_gaps` as soon as it takes writes again.
///
/// While running, the retries' back-off lets the queue hold events through a short failure.
/// When `closing` and the database already refuses writes, one attempt per batch: a stop must
/// not wait most of a second for every batch of a long queue.
///
/// `give_way` is `None` when closing: a stop writes flat out.
async fn store_batch(
    store: &Store,
    buf: &mut Vec<Event>,
    counters: &Counters,
    give_way: Option<&GiveWay>,
) {
    let closing = give_way.is_none();
    if buf.is_empty() && counters.unrecorded_full.load(Ordering::Relaxed) == 0 {
        return;
    }
    let attempts = if closing && counters.failure().is_some() {
        1
    } else {
        4
    };
    let mut last_error = None;
    // Counted now: a batch the writer could not hand back is still counted as lost.
    let n = buf.len() as u64;
    for attempt in 0..attempts {
        let (back, outcome) = store
            .write_events_giving_way(std::mem::take(buf), give_way)
            .await;
        *buf = back;
        match outcome {
            Ok(()) => {
                counters.written.fetch_add(n, Ordering::Relaxed);
                if n > 0 {
                    counters.transactions.fetch_add(1, Ordering::Relaxed);
                }
                buf.clear();
                record_gaps(store, counters).await;
                return;
            }
            Err(e) => {
                last_error = Some(e);
                if buf.len() as u64 != n {
                    break; // the batch did not come back: nothing to retry
                }
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
        }
    }
    counters.dropped.fetch_add(n, Ordering::Relaxed);
    let error = last_error.map_or_else(String::new, |e| e.to_string());
    let mut failure = counters.failure();
    match failure.as_mut() {
        Some(f) => {
            f.lost += n;
            f.error = error;
        }
        None => {
            tracing::warn!("activity log: the database refuses writes ({error}); events are counted and lost until it takes them again; the gateway keeps filtering");
            *failure = Some(LogFailure {
                since_ms: now_ms(),
                error,
                lost: n,
            });
        }
    }
    buf.clear();
}

/// Writes the gaps not yet on record (queue full; the database failing) now that it takes
/// writes; what cannot be written stays counted for the next time.
async fn record_gaps(store: &Store, counters: &Counters) {
    let full = counters.unrecorded_full.swap(0, Ordering::Relaxed);
    if full > 0 && store.record_gap(full as i64, "queue full").await.is_err() {
        counters.unrecorded_full.fetch_add(full, Ordering::Relaxed);
    }
    // Cleared only once the gap is on record (a status page never sees it gone before).
    let ended = counters.failure().clone();
    if let Some(f) = ended {
        let when = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms).map_or_else(
                || ms.to_string(),
                |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            )
        };
        let cause = format!(
            "database error from {} to {}: {}",
            when(f.since_ms),
            when(now_ms()),
            f.error
        );
        match store.record_gap(f.lost as i64, &cause).await {
            Ok(()) => {
                *counters.failure() = None;
                tracing::warn!("activity log: the database takes writes again; {} events lost meanwhile, recorded as a gap", f.lost);
            }
            Err(e) => tracing::warn!("activity log: the gap could not be recorded yet: {e}"),
        }
    }
}

/// The span of an hour in the activity log's time map (`event_hours`, migration 0019).
pub(crate) const HOUR_MS: i64 = 3_600_000;

/// The hour `at_ms` falls in, in `event_hours`: divided as SQL divides integers (rounded
/// toward zero), as the migration filled the table.
pub(crate) fn hour_of(at_ms: i64) -> i64 {
    at_ms / HOUR_MS
}

/// The hours of `at_ms` values, each once, in ascending order: every transaction widens its
/// hours' rows in one order, so that on PostgreSQL two writers never wait for each other's row
/// locks in a circle.
pub(crate) fn hours_of(at_ms: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut hours: Vec<i64> = Vec::new();
    // A batch's events are nearly all of one hour: skip repeats as they come.
    for hour in at_ms.map(hour_of) {
        if hours.last() != Some(&hour) {
            hours.push(hour);
        }
    }
    hours.sort_unstable();
    hours.dedup();
    hours
}

/// Widens an hour's row in `event_hours` (the first parameter) to ids from the second to the
/// third (created if the hour has none).
///
/// Every insert into the log (`event_rows`) runs it, in the same transaction, for each hour
/// among the inserted events with the lowest and highest id it inserted: the time map then
/// names, for each hour, ids from below its first event to above its last (other hours'
/// events between are harmless: a period's queries test `at_ms` too).
pub(crate) fn widen_hour_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "INSERT INTO event_hours (hour, first_id, last_id) VALUES (?1, ?2, ?3) \
             ON CONFLICT (hour) DO UPDATE SET first_id = MIN(event_hours.first_id, excluded.first_id), \
             last_id = MAX(event_hours.last_id, excluded.last_id)"
        }
        Dialect::Postgres => {
            "INSERT INTO event_hours (hour, first_id, last_id) VALUES ($1, $2, $3) \
             ON CONFLICT (hour) DO UPDATE SET first_id = LEAST(event_hours.first_id, excluded.first_id), \
             last_id = GREATEST(event_hours.last_id, excluded.last_id)"
        }
    }
}

/// Widens the time map for events of times `at_ms`, stored in the transaction `tx` with ids
/// from `first` to `last`.
pub(crate) async fn widen_hours(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dialect: Dialect,
    at_ms: impl Iterator<Item = i64>,
    (first, last): (i64, i64),
) -> Result<(), StoreError> {
    for hour in hours_of(at_ms) {
        sqlx::query(widen_hour_sql(dialect))
            .bind(hour)
            .bind(first)
            .bind(last)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The hours a period of `at_ms` in `[since, until)` falls in, `i64::MIN` and `i64::MAX` for
/// a side left open.
pub(crate) fn period_hours(since: Option<i64>, until: Option<i64>) -> (i64, i64) {
    (
        since.map_or(i64::MIN, hour_of),
        until.map_or(i64::MAX, |u| hour_of(u.saturating_sub(1))),
    )
}

/// `AND` the events of `[since, until)` (`None`: that side open) to a query on `events`:
/// tests `at_ms`, and reads only the ids the time map (`event_hours`) names for the period's
/// hours, as a range of the table's ids (none when no hour of it is on record): the table has
/// no index on time.
pub(crate) fn push_period(q: &mut Sql<'_>, since: Option<i64>, until: Option<i64>) {
    if let Some(v) = since {
        q.push(" AND at_ms >= ").push_bind(v);
    }
    if let Some(v) = until {
        q.push(" AND at_ms < ").push_bind(v);
    }
    if since.is_none() && until.is_none() {
        return;
    }
    let (a, b) = period_hours(since, until);
    q.push(" AND id >= (SELECT COALESCE(MIN(first_id), 1) FROM event_hours WHERE hour >= ")
        .push_bind(a)
        .push(" AND hour <= ")
        .push_bind(b)
        .push(") AND id <= (SELECT COALESCE(MAX(last_id), 0) FROM event_hours WHERE hour >= ")
        .push_bind(a)
        .push(" AND hour <= ")
        .push_bind(b)
        .push(")");
}

/// Rows per multi-row insert through the pool (12 columns each, 14 for a site's events: well
/// under SQLite's parameter limit).
pub(crate) const INSERT_ROWS: usize = 64;

pub(crate) fn insert_query<'q>(dialect: Dialect, rows: &'q [Event], kinds: &[i64]) -> Sql<'q> {
    let mut q = Sql::new(
        dialect,
        format!("INSERT INTO event_rows ({INSERT_COLUMNS}) VALUES "),
    );
    for (i, (e, &kind)) in rows.iter().zip(kinds).enumerate() {
        q.push(if i == 0 { "(" } else { ", (" });
        push_event_values(&mut q, e, kind);
        q.push(")");
    }
    q
}

/// The columns of `event_rows` [`push_event_values`] gives values for, in order: an event's
/// own, and the id of its kind (its [`kind_texts`], kept once in `event_kinds`).
pub(crate) const INSERT_COLUMNS: &str =
    "at_ms, reference, client_ip, username, url, host, search_term, kind, action, reason, status, bytes";

/// One event's values, comma-separated, as [`INSERT_COLUMNS`] names them, `kind` the id of its
/// kind in `event_kinds`.
pub(crate) fn push_event_values<'q>(q: &mut Sql<'q>, e: &'q Event, kind: i64) {
    q.push_bind(e.at_ms)
        .push(", ")
        .push_bind(e.reference.as_str())
        .push(", ")
        .push_bind(e.client_ip.as_str())
        .push(", ")
        .push_bind(e.username.as_deref())
        .push(", ")
        .push_bind(e.url.as_str())
        .push(", ")
        .push_bind(e.host.as_str())
        .push(", ")
        .push_bind(e.search_term.as_deref())
        .push(", ")
        .push_bind(kind)
        .push(", ")
        .push_bind(e.action.as_str())
        .push(", ")
        .push_bind(e.reason.as_str())
        .push(", ")
        .push_bind(e.status.map(i64::from))
        .push(", ")
        .push_bind(i64::try_from(e.bytes).unwrap_or(i64::MAX));
}

/// An event's texts that `event_kinds` keeps (migration 0020), in the order of
/// [`ADD_KIND`]'s parameters and of `event_kinds_texts`' columns.
pub(crate) fn kind_texts(e: &Event) -> [&str; 5] {
    [&e.group, &e.rule, &e.categories, e.service, &e.method]
}

/// [`FIND_KIND`]'s parameters for a kind's `texts` ([`kind_texts`]): the four short texts, the
/// method's first [`KIND_METHOD_INDEXED`] characters (as `event_kinds_texts` holds it; SQLite
/// reads an expression index only for a term `substr(method, 1, 64) = ?`, not for one that
/// computes the right side), and the whole method.
pub(crate) fn find_kind_params(texts: [&str; 5]) -> [&str; 6] {
    let [group, rule, categories, service, method] = texts;
    let cut = method
        .char_indices()
        .nth(KIND_METHOD_INDEXED)
        .map_or(method.len(), |(at, _)| at);
    [group, rule, categories, service, &method[..cut], method]
}

/// The characters of a kind's method that `event_kinds_texts` holds: written out as `64` in
/// [`FIND_KIND`] and in migration 0020, which must not change.
pub(crate) const KIND_METHOD_INDEXED: usize = 64;

/// The id of a kind of the texts [`find_kind_params`] gives (the lowest, should two hold
/// them), by one search of `event_kinds_texts`.
pub(crate) const FIND_KIND: &str =
    "SELECT id FROM event_kinds WHERE group_name = $1 AND rule = $2 \
     AND categories = $3 AND service = $4 AND substr(method, 1, 64) = $5 AND method = $6 \
     ORDER BY id LIMIT 1";

/// Adds a kind of the texts [`kind_texts`] gives.
pub(crate) const ADD_KIND: &str =
    "INSERT INTO event_kinds (group_name, rule, categories, service, method) VALUES ($1, $2, $3, $4, $5)";

/// The id of each event's kind, in order, found in `event_kinds` or added to it in `tx`: one
/// look-up for each kind among the events.
pub(crate) async fn kind_ids<'e>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    events: impl Iterator<Item = &'e Event>,
) -> Result<Vec<i64>, StoreError> {
    let mut known: std::collections::HashMap<[&str; 5], i64> = Default::default();
    let mut ids = Vec::new();
    for e in events {
        let texts = kind_texts(e);
        let id = match known.get(&texts) {
            Some(&id) => id,
            None => {
                let id = kind_id(tx, texts).await?;
                known.insert(texts, id);
                id
            }
        };
        ids.push(id);
    }
    Ok(ids)
}

/// The id of the kind of `texts` ([`kind_texts`]), added in `tx` if none holds them.
async fn kind_id<'t>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    texts: [&'t str; 5],
) -> Result<i64, StoreError> {
    let bind = |sql, values: &[&'t str]| values.iter().fold(sqlx::query(sql), |q, t| q.bind(*t));
    let found = bind(FIND_KIND, &find_kind_params(texts))
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(row) = found {
        return Ok(row.get("id"));
    }
    let added = format!("{ADD_KIND} RETURNING id");
    Ok(bind(&added, &texts).fetch_one(&mut **tx).await?.get("id"))
}

pub(crate) const EVENT_COLUMNS: &str = "id, at_ms, reference, service, client_ip, username, group_name, method, url, host, search_term, categories, action, rule, reason, status, bytes, site";

impl Store {
    /// Writes events in one transaction as the activity log's writer does: on a SQLite file
    /// through its own connection (`log_writer`), otherwise as [`Store::insert_events`]. After
    /// a failure the events come back as sent, for a retry; after a success, the buffer to
    /// reuse: empty from the SQLite file's writer, which frees the events on its own thread
    /// (keeping the rows its statements were last executed with), the batch as sent from the
    /// pool.
    pub async fn write_events(&self, events: Vec<Event>) -> (Vec<Event>, Result<(), StoreError>) {
        self.write_events_giving_way(events, None).await
    }

    /// [`Store::write_events`], giving the core to other threads between rows while
    /// `give_way` says so (the SQLite file's writer only).
    pub(crate) async fn write_events_giving_way(
        &self,
        events: Vec<Event>,
        give_way: Option<&GiveWay>,
    ) -> (Vec<Event>, Result<(), StoreError>) {
        match &self.log_writer {
            Some(w) => w.write(events, give_way.cloned()).await,
            None => {
                let outcome = self.insert_events(&events).await;
                (events, outcome)
            }
        }
    }

    /// A transaction that writes the activity log through the pool. On SQLite it holds the
    /// write lock from its start (`BEGIN IMMEDIATE`): a batch's kinds are looked up before its
    /// rows are written, and a read lock that had to become a write lock would fail at once
    /// while another connection writes, rather than wait. On PostgreSQL a plain one: the log's
    /// writers need no order among themselves (not [`Store::write_tx`]'s lock, which chained
    /// records take).
    pub(crate) async fn log_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        })
    }

    /// Inserts events in one transaction, through the pool.
    pub async fn insert_events(&self, events: &[Event]) -> Result<(), StoreError> {
        let mut tx = self.log_tx().await?;
        // Two statement shapes only (ROWS rows, and one row), so both stay prepared in the
        // connection's statement cache whatever the batch size.
        let mut chunks = events.chunks_exact(INSERT_ROWS);
        let remainder = chunks.remainder();
        let mut ids = (i64::MAX, i64::MIN);
        let kinds = kind_ids(&mut tx, events.iter()).await?;
        let mut at = 0;
        for chunk in chunks.by_ref().chain(remainder.chunks(1)) {
            let mut q = insert_query(self.dialect, chunk, &kinds[at..at + chunk.len()]);
            at += chunk.len();
            q.push(" RETURNING id");
            let (sql, args) = q.into_parts()?;
            for row in sqlx::query_with(&sql, args).fetch_all(&mut *tx).await? {
                let id: i64 = row.get("id");
                ids = (ids.0.min(id), ids.1.max(id));
            }
        }
        if !events.is_empty() {
            widen_hours(&mut tx, self.dialect, events.iter().map(|e| e.at_ms), ids).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records that `dropped` events were lost.
    pub async fn record_gap(&self, dropped: i64, cause: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO log_gaps (at_ms, dropped, cause) VALUES ($1, $2, $3)")
            .bind(now_ms())
            .bind(dropped)
            .bind(cause)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Recorded gaps, newest first.
    pub async fn log_gaps(&self) -> Result<Vec<LogGap>, StoreError> {
        let rows = sqlx::query("SELECT at_ms, dropped, cause FROM log_gaps ORDER BY id DESC")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| LogGap {
                at_ms: r.get("at_ms"),
                dropped: r.get("dropped"),
                cause: r.get("cause"),
            })
            .collect())
    }

    /// Events matching `filter`, newest first.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        let (sql, args) = events_query(self.dialect, "", filter).into_parts()?;
        let rows = sqlx::query_with(&sql, args).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(event_from_row).collect())
    }
}

/// The query of [`Store::events`], after `prefix` (`EXPLAIN QUERY PLAN ` in tests).
pub(crate) fn events_query(dialect: Dialect, prefix: &str, filter: &EventFilter) -> Sql<'static> {
    let mut q = Sql::new(
        dialect,
        format!("{prefix}SELECT {EVENT_COLUMNS} FROM events WHERE 1 = 1"),
    );
    if let Some(v) = filter.after_id {
        q.push(" AND id > ").push_bind(v);
    }
    push_period(&mut q, filter.since_ms, filter.until_ms);
    if let Some(v) = &filter.username {
        q.push(" AND username = ").push_bind(v.to_lowercase());
    }
    if let Some(v) = &filter.client_ip {
        q.push(" AND client_ip = ").push_bind(v.clone());
    }
    if let Some(v) = &filter.action {
        q.push(" AND action = ").push_bind(v.clone());
    }
    if let Some(v) = &filter.reference {
        // `reference <> ''` as well, in the words of `events_reference`'s condition: SQLite
        // uses a partial index only for a query that says its condition, and cannot tell
        // that a bound reference is not empty. Without it, every review request's lookup
        // of its block page's event read the whole log. An empty reference finds nothing.
        q.push(" AND reference <> '' AND reference = ")
            .push_bind(v.to_uppercase());
    }
    if let Some(v) = &filter.host {
        let v = v.to_lowercase();
        q.push(" AND (host = ")
            .push_bind(v.clone())
            .push(" OR host LIKE ")
            .push_bind(format!("%.{}", escape_like(&v)))
            .push(" ESCAPE '\\')");
    }
    if let Some(v) = &filter.text {
        let pattern = format!("%{}%", escape_like(&v.to_lowercase()));
        q.push(" AND (LOWER(url) LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR LOWER(search_term) LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
    if let Some(v) = &filter.site {
        q.push(" AND site = ").push_bind(v.clone());
    }
    if let Some(v) = &filter.category {
        q.push(" AND (',' || categories || ',') LIKE ")
            .push_bind(format!("%,{},%", escape_like(v)))
            .push(" ESCAPE '\\'");
    }
    q.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(filter.limit.unwrap_or(100)));
    q
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn event_from_row(r: &sqlx::any::AnyRow) -> StoredEvent {
    let service: String = r.get("service");
    StoredEvent {
        id: r.get("id"),
        event: Event {
            at_ms: r.get("at_ms"),
            reference: r.get("reference"),
            service: if service == "dns" { "dns" } else { "proxy" },
            client_ip: r.get("client_ip"),
            username: r.get("username"),
            group: r.get::<String, _>("group_name").into(),
            method: r.get::<String, _>("method").into(),
            url: r.get("url"),
            host: r.get("host"),
            search_term: r.get("search_term"),
            categories: r.get::<String, _>("categories").into(),
            action: r.get::<String, _>("action").into(),
            rule: r.get::<String, _>("rule").into(),
            reason: r.get::<String, _>("reason").into(),
            status: r
                .get::<Option<i64>, _>("status")
                .and_then(|s| u16::try_from(s).ok()),
            bytes: u64::try_from(r.get::<i64, _>("bytes")).unwrap_or(0),
        },
        site: r.get("site"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `method_text` keeps every method as it came, borrowing the standard ones.
    #[test]
    fn method_text_borrows_the_standard_methods() {
        let long = "X".repeat(5_000);
        let cut = format!("{}…", "X".repeat(METHOD_KEPT));
        let kept = "Y".repeat(METHOD_KEPT);
        let table: [(&str, &str, bool); 9] = [
            ("GET", "GET", true),
            ("CONNECT", "CONNECT", true),
            ("PATCH", "PATCH", true),
            ("PROPFIND", "PROPFIND", false),
            ("get", "get", false),
            ("", "", false),
            (&kept, &kept, false),
            (&long[..METHOD_KEPT + 1], &cut, false),
            (&long, &cut, false),
        ];
        for (method, want, borrowed) in table {
            let text = method_text(method);
            assert_eq!(text, want, "{}", method.len());
            assert_eq!(matches!(text.0, Cow::Borrowed(_)), borrowed, "{method}");
        }
    }

    /// A kind is looked up by the texts `event_kinds_texts` holds, the method's first 64
    /// characters (not bytes: as SQL's `substr` counts) among them.
    #[test]
    fn a_kinds_search_gives_the_index_its_method_prefix() {
        let long = format!("{}é{}", "M".repeat(63), "Z".repeat(10));
        let table: [(&str, &str); 4] = [
            ("GET", "GET"),
            ("", ""),
            (&long, &long[..long.len() - 10]),
            ("éééé", "éééé"),
        ];
        for (method, prefix) in table {
            let params = find_kind_params(["g", "r", "c", "proxy", method]);
            assert_eq!(params, ["g", "r", "c", "proxy", prefix, method]);
        }
        assert_eq!(long[..long.len() - 10].chars().count(), KIND_METHOD_INDEXED);
    }

    /// `ip_text` spells every kind of address as `to_string` does, the longest ones included,
    /// without growing its string.
    #[test]
    fn ip_text_is_the_standard_spelling() {
        let table = [
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "10.1.20.3",
            "::1",
            "::",
            "2001:db8::8a2e:370:7334",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
            "fe80::1:2:3:4",
        ];
        for text in table {
            let ip: std::net::IpAddr = text.parse().expect("an address");
            let got = ip_text(ip);
            assert_eq!(got, ip.to_string(), "{text}");
            assert!(
                got.capacity() <= if ip.is_ipv4() { 15 } else { 45 },
                "{text} grew"
            );
        }
        // Every octet value in every place.
        for octet in 0..=255u8 {
            for place in 0..4 {
                let mut octets = [7, 70, 200, 1];
                octets[place] = octet;
                let ip = std::net::IpAddr::from(octets);
                assert_eq!(ip_text(ip), ip.to_string());
            }
        }
    }

    #[test]
    fn the_writer_gives_way_only_while_less_than_a_batch_waits() {
        let (tx, mut rx) = mpsc::channel(200);
        let give_way = keeping_up(tx.downgrade(), 64);
        // (events sent, taken by the writer, gives way)
        let table = [
            (0, 0, true),
            (63, 0, true),
            (1, 0, false),
            (0, 1, true),
            (100, 100, true),
        ];
        let mut queued = 0;
        for (sent, taken, gives_way) in table {
            for _ in 0..sent {
                tx.try_send(Event::default()).expect("room");
            }
            for _ in 0..taken {
                rx.try_recv().expect("queued");
            }
            queued = queued + sent - taken;
            assert_eq!(give_way(), gives_way, "{queued} waiting");
        }
        // Once every sender is gone the queue is closing: no giving way.
        drop(tx);
        assert!(!give_way());
    }
}
