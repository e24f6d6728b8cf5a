//! The activity log's own SQLite connection: the writer that `lookout serve` logs every
//! request through, on a database file.
//!
//! Through sqlx's `Any` driver every event cost 16 bound values, each string copied twice (into
//! the driver's arguments, then owned again for its worker thread), plus a 1,024-parameter
//! statement to bind: at 77k DNS queries a second, a quarter of the gateway's CPU went to
//! logging. Here one connection on a thread of its own keeps a prepared insert of
//! [`ROWS_PER_INSERT`] rows (and one each of 16, 8, 4, 2 and 1 rows for a batch's last few)
//! and binds each event's strings where they lie, in one `BEGIN IMMEDIATE` transaction per
//! batch. The thread owns the connection and its statements from one batch to the next, so a
//! statement keeps its bound values between batches too: a batch's first rows bind only what
//! differs from the rows the statement was last executed with, as every later row does. A
//! row names its kind (`event_kinds`, migration 0020) by id: the thread remembers the kinds
//! it has found or added, and looks one up only when an event's kind differs from the event
//! before it.
//!
//! The connection is opened on the first batch, with the store's own settings (WAL, FULL
//! sync, busy timeout), beside the pool's connections: SQLite's write lock orders them. An
//! in-memory database has no file to share and keeps the pool's path.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, Statement};
use tokio::sync::oneshot;

use crate::events::{
    find_kind_params, hours_of, kind_texts, widen_hour_sql, Event, ADD_KIND, FIND_KIND,
    INSERT_COLUMNS,
};
use crate::{Dialect, StoreError, SQLITE_PRAGMAS};

/// Whether the writer should give the core to other threads between rows now (asked every
/// [`GIVE_WAY_EVERY`] rows of a batch).
///
/// A batch at a college's peak is thousands of rows, and on a busy machine the scheduler let
/// the writer run through it for milliseconds while requests waited for a core: `wrk -t1 -c4`
/// through the proxy on 2 cores, logging every request, had a p99 of 1.6-2.0 ms against
/// 0.45-0.6 ms with allowed requests unlogged. Giving way always fixed that but, under 159k
/// DNS queries a second, left the writer behind until the queue dropped a third of the events:
/// the activity log asks the queue (`events::write_loop`), and gives way only while it keeps up.
pub(crate) type GiveWay = Arc<dyn Fn() -> bool + Send + Sync>;

/// Rows written between looks at [`GiveWay`] (about 0.1 ms of writing).
///
/// Each look that gives way is a `sched_yield` and, with a request waiting, a switch of threads
/// and the writer's SQLite pages out of the cache. `bench/proxy-vs-e2guardian.sh`'s two Lookouts
/// (one logging every request, 36k requests/s, 2 cores, one URL requested over and over), on a
/// build that also had 16 KiB pages (since dropped, see `SQLITE_PRAGMAS`): the writer thread's
/// CPU per request (from `/proc/PID/task`, 2-6 runs each) every 16 rows 1.74-1.79 us, every 64
/// 1.56-1.61, every 256 1.51-1.52, never 1.37-1.46; p99 at `wrk -t1 -c4`, three rounds of 16,
/// 64 and 256 alternating: 0.58-0.61 / 0.57-0.59 / 0.61-0.64 ms; three rounds of 16 and never:
/// 0.59-0.77 / 1.86-2.67 ms.
pub(crate) const GIVE_WAY_EVERY: usize = 64;

/// The writer connection's SQLite page cache, in KiB, instead of the store's 64 MiB: the log
/// only appends, so the pages it touches are the right edge of the table and of each index
/// (plus, in `events_user_at`, one leaf per user browsing), while a 64 MiB cache filled up with
/// pages written once. Under `bench/dns-vs-dnsmasq.sh` (every query logged, 130-146k queries/s
/// in every case) the whole process held 56-90 MB with 64 MiB, 62-65 MB with 8 MiB and 57-59 MB
/// with 4 MiB; 8 MiB leaves room for a leaf of `events_user_at` per user of a large college.
const CACHE_KIB: i64 = 8192;

/// The activity log's connection, shared by a store's clones: the queue of the thread that
/// owns it (see [`run`]). `None` once the store is closed.
#[derive(Debug, Clone)]
pub(crate) struct LogWriter {
    jobs: Arc<Mutex<Option<mpsc::Sender<Job>>>>,
}

/// A batch's events handed back, with the outcome of writing them.
type Written = (Vec<Event>, Result<(), StoreError>);

/// What the writer's thread is asked to do, in the order asked.
enum Job {
    /// Write `events` in one transaction.
    Write {
        events: Vec<Event>,
        give_way: Option<GiveWay>,
        done: oneshot::Sender<Written>,
    },
    /// A pragma's value on the open connection, `None` while none is open (tests).
    #[cfg(test)]
    Pragma {
        name: &'static str,
        done: mpsc::Sender<Option<i64>>,
    },
    /// Close the connection and end the thread, after the jobs before this one.
    Close { done: oneshot::Sender<()> },
}

impl LogWriter {
    /// A writer for the database file at `path`, or `None` for an in-memory database (or
    /// when no thread can be started for it: the pool's path then writes the log).
    pub(crate) fn for_file(path: PathBuf) -> Option<LogWriter> {
        let name = path.to_str().unwrap_or("");
        if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
            return None;
        }
        let (jobs, queue) = mpsc::channel();
        let started = std::thread::Builder::new()
            .name("lookout-log".into())
            .spawn(move || run(&path, &queue));
        if let Err(e) = started {
            tracing::warn!("activity log: no thread for its own connection ({e}); it is written through the pool");
            return None;
        }
        Some(LogWriter {
            jobs: Arc::new(Mutex::new(Some(jobs))),
        })
    }

    /// Queues `job`; hands it back when the writer is closed.
    fn send(&self, job: Job) -> Result<(), Job> {
        match &*self.jobs.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(jobs) => jobs.send(job).map_err(|refused| refused.0),
            None => Err(job),
        }
    }

    /// Writes `events` in one transaction, on the writer's thread; hands events back with the
    /// outcome. After a failure they are the batch as sent, for a retry; after a success, an
    /// empty buffer to reuse: the writer thread keeps each statement's last rows (see
    /// [`Insert`]) and frees the others.
    pub(crate) async fn write(&self, events: Vec<Event>, give_way: Option<GiveWay>) -> Written {
        let (done, written) = oneshot::channel();
        if let Err(Job::Write { events, .. }) = self.send(Job::Write {
            events,
            give_way,
            done,
        }) {
            return (events, Err(StoreError::Query(sqlx::Error::PoolClosed)));
        }
        // The thread answers every write it takes; only its end (a panic outside a batch)
        // leaves this unanswered, and the caller counts what it sent.
        written.await.unwrap_or_else(|_| {
            (
                Vec::new(),
                Err(StoreError::Query(sqlx::Error::WorkerCrashed)),
            )
        })
    }

    /// The value of the pragma `name` on the open connection (`None` before the first batch).
    #[cfg(test)]
    pub(crate) fn pragma(&self, name: &'static str) -> Option<i64> {
        let (done, answer) = mpsc::channel();
        self.send(Job::Pragma { name, done }).ok()?;
        answer.recv().ok().flatten()
    }

    /// Whether the log's own connection is open (it has written a batch, and not failed since).
    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        self.pragma("cache_size").is_some()
    }

    /// Closes the connection once the batches queued before are written (a store's `close`):
    /// the file is then the pool's alone, and later writes are refused.
    pub(crate) async fn close(&self) {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        let (done, closed) = oneshot::channel();
        if jobs.is_some_and(|jobs| jobs.send(Job::Close { done }).is_ok()) {
            let _ = closed.await;
        }
    }
}

/// The writer's thread: takes jobs in order until the store closes or every handle is gone.
/// The connection is opened for a batch and kept; after a failed batch it is closed (rolling
/// back) and the next batch opens another: a connection left in an unknown state is not
/// reused.
fn run(path: &Path, jobs: &mpsc::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Write {
                events,
                give_way,
                done,
            } => match open(path) {
                Ok(conn) => {
                    let first = Job::Write {
                        events,
                        give_way,
                        done,
                    };
                    if let Some(closed) = serve(&conn, first, jobs) {
                        drop(conn);
                        let _ = closed.map(|done| done.send(()));
                        return;
                    }
                }
                Err(e) => {
                    let _ = done.send((events, Err(e)));
                }
            },
            #[cfg(test)]
            Job::Pragma { done, .. } => {
                let _ = done.send(None);
            }
            Job::Close { done } => {
                let _ = done.send(());
                return;
            }
        }
    }
}

/// Takes jobs on the open connection `conn`, `first` first. Returns `None` after a failed
/// batch (the connection is to be closed, and another opened for the next), or
/// `Some(whom to tell)` when the thread is to end: closed (told once the connection is) or
/// every handle dropped.
fn serve(
    conn: &Connection,
    first: Job,
    jobs: &mpsc::Receiver<Job>,
) -> Option<Option<oneshot::Sender<()>>> {
    let mut inserts = Inserts::default();
    let mut job = first;
    loop {
        match job {
            Job::Write {
                mut events,
                give_way,
                done,
            } => {
                // A panic inside SQLite's binding must not take the events with it.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    inserts.write(conn, &mut events, give_way.as_deref())
                }))
                .unwrap_or(Err(StoreError::Query(sqlx::Error::WorkerCrashed)));
                let failed = outcome.is_err();
                if !failed {
                    // The batch's events are freed here, not by the queue's task on the
                    // gateway's runtime: at a peak a batch is thousands of events of a dozen
                    // strings each, freed in one go, while the requests on that worker wait.
                    events.clear();
                }
                let _ = done.send((events, outcome));
                if failed {
                    return None;
                }
            }
            #[cfg(test)]
            Job::Pragma { name, done } => {
                let value = conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0));
                let _ = done.send(value.ok());
            }
            Job::Close { done } => return Some(Some(done)),
        }
        job = match jobs.recv() {
            Ok(next) => next,
            Err(_) => return Some(None),
        };
    }
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    // The database exists (the pool made it and ran the migrations): never create one.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.execute_batch(SQLITE_PRAGMAS)?;
    conn.execute_batch(&format!("PRAGMA cache_size = -{CACHE_KIB};"))?;
    Ok(conn)
}

/// Rows in one execution of the log's insert (`INSERT OR FAIL ... VALUES (..), (..), ...`).
///
/// Each execution of a statement opens a cursor on the table and on each index, finds the
/// table's last row and closes them all again when it halts: with one row an execution, that
/// was a fifth of a row's cost. A multi-row insert with SQLite's default conflict resolution
/// (`ABORT`) keeps a statement journal, so that a failing row can undo the rows before it:
/// every page the statement first touches is copied to it (`subjournalPageIfRequired`, ~1,000
/// instructions a row). `OR FAIL` keeps those rows instead, and a failed batch rolls back its
/// whole transaction anyway (`Inserts::write` returns the error and the connection, closed,
/// rolls the transaction back).
///
/// callgrind, `event_log/write/batch-512` (instructions a row, the writer's `write_now` and
/// all it called, two runs each, in an earlier form of this code): one row an execution 14,831-14,887; 32 rows 13,079-13,091; 32
/// rows `OR FAIL` 11,587-11,687. The number of rows was chosen on an earlier form of this
/// code (counted from `insert` only, so not comparable with the above): 8 rows 12,594, 16
/// 12,025, 32 11,556-11,645, 64 11,901. A batch's last rows, fewer than this, go in one
/// execution per power of two they hold (`Inserts::write`).
pub(crate) const ROWS_PER_INSERT: usize = 32;

const _: () = assert!(GIVE_WAY_EVERY % ROWS_PER_INSERT == 0);

/// The sizes of the log's inserts, [`ROWS_PER_INSERT`] rows and each power of two below.
const SIZES: usize = ROWS_PER_INSERT.trailing_zeros() as usize + 1;

/// The log's prepared inserts on one connection, prepared as first needed: the one of
/// [`ROWS_PER_INSERT`] rows first, then 16, 8, 4, 2 and 1 rows.
#[derive(Default)]
struct Inserts<'c> {
    sizes: [Option<Insert<'c>>; SIZES],
    /// The kinds found or added, kept with the statements: dropped with them when a batch
    /// fails, as the kinds that batch added are rolled back.
    kinds: Kinds,
    /// The id of each event's kind in the batch being written.
    batch_kinds: Vec<i64>,
}

/// The ids of kinds of events (`event_kinds`) the writer has found or added, by their texts
/// ([`kind_texts`]). A batch's events are nearly all of a few kinds, and one of the same kind
/// as the event before it takes its id without a look-up here.
#[derive(Default)]
struct Kinds {
    ids: std::collections::HashMap<Box<[u8]>, i64>,
    /// A kind's texts as [`Kinds::ids`]' keys spell them: each text's length, then the text.
    key: Vec<u8>,
}

/// Kinds [`Kinds`] remembers at most: past that it starts again. The configuration bounds a
/// log's kinds but for the methods clients send, so its memory is bounded whatever they send.
pub(crate) const KINDS_KEPT: usize = 4096;

impl Kinds {
    /// The id of `e`'s kind, found in `event_kinds` or added to it (in the open transaction).
    fn id(&mut self, conn: &Connection, e: &Event) -> Result<i64, StoreError> {
        let texts = kind_texts(e);
        self.key.clear();
        for t in texts {
            self.key
                .extend_from_slice(&u32::try_from(t.len()).unwrap_or(u32::MAX).to_le_bytes());
            self.key.extend_from_slice(t.as_bytes());
        }
        if let Some(&id) = self.ids.get(self.key.as_slice()) {
            return Ok(id);
        }
        let found = conn
            .prepare_cached(FIND_KIND)?
            .query_row(find_kind_params(texts), |row| row.get(0));
        let id = match found {
            Ok(id) => id,
            Err(rusqlite::Error::QueryReturnedNoRows) => {
                conn.prepare_cached(ADD_KIND)?.execute(texts)?;
                conn.last_insert_rowid()
            }
            Err(e) => return Err(e.into()),
        };
        if self.ids.len() >= KINDS_KEPT {
            self.ids.clear();
        }
        self.ids.insert(self.key.as_slice().into(), id);
        Ok(id)
    }
}

/// A prepared insert of `n` rows, and the `n` events (and their kinds' ids) its parameters
/// were last bound from.
///
/// SQLite keeps a statement's bindings from one execution to the next, and most columns
/// repeat from row to row (the kind, action, reason, often the client and host): only the
/// values that changed since the row the same parameters held before are bound. Each bound
/// string is copied into SQLite (rusqlite binds text as `SQLITE_TRANSIENT`): binding all 16
/// columns the rows had before the kinds was ~2,800 of the ~17,000 instructions a row cost
/// (callgrind, `event_log/write/batch-512`). The statement and its last rows are kept from
/// batch to batch (statements from rusqlite's cache come back with their bindings cleared),
/// so a batch's first rows, too, bind only what changed: every value of 32 rows a batch was
/// ~137,000 instructions, ~900 a row in the 150-row batches of a gateway at 700 requests a
/// second.
struct Insert<'c> {
    statement: Statement<'c>,
    bound: Vec<Event>,
    /// The ids of the kinds of [`Insert::bound`]'s events.
    bound_kinds: Vec<i64>,
}

impl<'c> Inserts<'c> {
    /// Writes `events` in one transaction. On success, the rows each statement was last
    /// executed with are moved from `events` into it (its [`Insert::bound`]); what is left is
    /// a buffer to reuse. On failure `events` is as it was. Out of line, so that profiles
    /// name the writer's work (`bench/proxy-instructions.sh`).
    #[inline(never)]
    fn write(
        &mut self,
        conn: &'c Connection,
        events: &mut Vec<Event>,
        give_way: Option<&(dyn Fn() -> bool + Send + Sync)>,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        // Dropped with the connection on failure: closing it rolls the transaction back.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        // Each row takes the table's highest id plus one (an INTEGER PRIMARY KEY, the write
        // lock held): this batch's ids run from here to the last inserted.
        let first: i64 = conn
            .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM event_rows")?
            .query_row([], |row| row.get(0))?;
        self.find_kinds(conn, events)?;
        let whole = events.len() - events.len() % ROWS_PER_INSERT;
        let rest = events.len() - whole;
        self.rows(conn, &events[..whole], 0, ROWS_PER_INSERT, give_way)?;
        // The last rows, fewer than ROWS_PER_INSERT: one execution of 16, 8, 4, 2 or 1 rows for
        // each power of two in their number, not one execution per row. A batch is that small
        // whenever the gateway is not busy (200 ms of a few hundred requests a second), and a
        // row inserted alone cost ~14,400 instructions against ~9,100 in a 32-row execution
        // (callgrind, bench/proxy-instructions.sh).
        let mut start = whole;
        for per in (0..SIZES - 1).map(|k| ROWS_PER_INSERT >> (k + 1)) {
            if rest & per != 0 {
                self.rows(conn, &events[start..start + per], start, per, give_way)?;
                start += per;
            }
        }
        let last = conn.last_insert_rowid();
        let mut widen = conn.prepare_cached(widen_hour_sql(Dialect::Sqlite))?;
        for hour in hours_of(events.iter().map(|e| e.at_ms)) {
            widen.execute([hour, first, last])?;
        }
        conn.execute_batch("COMMIT")?;
        // Each statement's last rows, from the end (the smallest inserts' rows are last), so
        // that nothing after them moves.
        for (k, insert) in self.sizes.iter_mut().enumerate().rev() {
            let per = ROWS_PER_INSERT >> k;
            let used = if per == ROWS_PER_INSERT {
                whole > 0
            } else {
                rest & per != 0
            };
            if let (true, Some(insert)) = (used, insert) {
                let from = events.len() - per;
                insert.bound.clear();
                insert.bound.extend(events.drain(from..));
                insert.bound_kinds.clear();
                insert.bound_kinds.extend(self.batch_kinds.drain(from..));
            }
        }
        Ok(())
    }

    /// Fills [`Inserts::batch_kinds`] with the id of each event's kind.
    fn find_kinds(&mut self, conn: &Connection, events: &[Event]) -> Result<(), StoreError> {
        self.batch_kinds.clear();
        let mut before: Option<(&Event, i64)> = None;
        for e in events {
            let id = match before {
                Some((b, id)) if kind_texts(b) == kind_texts(e) => id,
                _ => self.kinds.id(conn, e)?,
            };
            self.batch_kinds.push(id);
            before = Some((e, id));
        }
        Ok(())
    }

    /// Inserts `rows` (a multiple of `per` of them, from `start` in the batch), `per` rows an
    /// execution.
    fn rows(
        &mut self,
        conn: &'c Connection,
        rows: &[Event],
        start: usize,
        per: usize,
        give_way: Option<&(dyn Fn() -> bool + Send + Sync)>,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let slot = &mut self.sizes[(ROWS_PER_INSERT / per).trailing_zeros() as usize];
        let Insert {
            statement,
            bound,
            bound_kinds,
        } = match slot {
            Some(insert) => insert,
            None => slot.insert(Insert {
                statement: conn.prepare(&format!(
                    "INSERT OR FAIL INTO event_rows ({INSERT_COLUMNS}) VALUES {}",
                    vec![ROW_PARAMETERS; per].join(", ")
                ))?,
                bound: Vec::new(),
                bound_kinds: Vec::new(),
            }),
        };
        let kinds = &self.batch_kinds[start..start + rows.len()];
        let mut before = (bound.len() == per).then_some((&bound[..], &bound_kinds[..]));
        for (i, (chunk, chunk_kinds)) in rows
            .chunks_exact(per)
            .zip(kinds.chunks_exact(per))
            .enumerate()
        {
            if (i + 1) * per % GIVE_WAY_EVERY == 0 && give_way.is_some_and(|g| g()) {
                // Returns at once when no other thread waits for the core.
                std::thread::yield_now();
            }
            for (row, (e, &kind)) in chunk.iter().zip(chunk_kinds).enumerate() {
                let mut changed = before.map_or(u16::MAX >> (16 - COLUMNS), |(b, k)| {
                    changed(&b[row], k[row], e, kind)
                });
                if changed == 0 {
                    continue;
                }
                let values = values(e, kind);
                while changed != 0 {
                    let column = changed.trailing_zeros() as usize;
                    changed &= changed - 1;
                    statement.raw_bind_parameter(
                        row * COLUMNS + column + 1,
                        ToSqlOutput::Borrowed(values[column]),
                    )?;
                }
            }
            statement.raw_execute()?;
            before = Some((chunk, chunk_kinds));
        }
        Ok(())
    }
}

/// The columns of a row ([`INSERT_COLUMNS`]).
const COLUMNS: usize = 12;

/// One row's parameters in the log's insert.
const ROW_PARAMETERS: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// The columns (bits, in [`INSERT_COLUMNS`]' order) whose values differ between `was` (of the
/// kind `was_kind`) and `e` (of `kind`), compared field by field: building both rows' [`values`]
/// to compare them was ~1,400 instructions a row (callgrind, bench/proxy-instructions.sh).
fn changed(was: &Event, was_kind: i64, e: &Event, kind: i64) -> u16 {
    [
        was.at_ms != e.at_ms,
        was.reference != e.reference,
        was.client_ip != e.client_ip,
        was.username != e.username,
        was.url != e.url,
        was.host != e.host,
        was.search_term != e.search_term,
        was_kind != kind,
        was.action != e.action,
        was.reason != e.reason,
        was.status != e.status,
        was.bytes != e.bytes,
    ]
    .iter()
    .enumerate()
    .fold(0, |m, (column, &differs)| m | u16::from(differs) << column)
}

/// `e`'s values in [`INSERT_COLUMNS`]' order, as SQLite takes them, `kind` its kind's id.
fn values(e: &Event, kind: i64) -> [ValueRef<'_>; COLUMNS] {
    fn text(s: &str) -> ValueRef<'_> {
        ValueRef::Text(s.as_bytes())
    }
    fn text_or_null(s: Option<&str>) -> ValueRef<'_> {
        s.map_or(ValueRef::Null, text)
    }
    [
        ValueRef::Integer(e.at_ms),
        text(&e.reference),
        text(&e.client_ip),
        text_or_null(e.username.as_deref()),
        text(&e.url),
        text(&e.host),
        text_or_null(e.search_term.as_deref()),
        ValueRef::Integer(kind),
        text(&e.action),
        text(&e.reason),
        e.status
            .map_or(ValueRef::Null, |s| ValueRef::Integer(i64::from(s))),
        ValueRef::Integer(i64::try_from(e.bytes).unwrap_or(i64::MAX)),
    ]
}
