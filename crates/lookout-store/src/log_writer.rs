//! The activity log's own SQLite connection: the writer that `lookout serve` logs every
//! request through, on a database file.
//!
//! Through sqlx's `Any` driver every event cost 16 bound values, each string copied twice (into
//! the driver's arguments, then owned again for its worker thread), plus a 1,024-parameter
//! statement to bind: at 77k DNS queries a second, a quarter of the gateway's CPU went to
//! logging. Here one connection on a blocking thread keeps a prepared insert of
//! [`ROWS_PER_INSERT`] rows (and one of a single row for a batch's last few) and binds each
//! event's strings where they lie, in one `BEGIN IMMEDIATE` transaction per batch.
//!
//! The connection is opened on the first batch, with the store's own settings (WAL, FULL
//! sync, busy timeout), beside the pool's connections: SQLite's write lock orders them. An
//! in-memory database has no file to share and keeps the pool's path.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};

use crate::events::{Event, INSERT_COLUMNS};
use crate::{StoreError, SQLITE_PRAGMAS};

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

/// One connection for the activity log, shared by a store's clones.
#[derive(Debug, Clone)]
pub(crate) struct LogWriter {
    path: PathBuf,
    conn: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
enum State {
    /// Before the first batch, and after a failed one (reopened next time: a connection
    /// left in an unknown state is not reused).
    #[default]
    Shut,
    Open(Connection),
    /// The store was closed: writes fail, as the pool's do.
    Closed,
}

impl LogWriter {
    /// A writer for the database file at `path`, or `None` for an in-memory database.
    pub(crate) fn for_file(path: PathBuf) -> Option<LogWriter> {
        let name = path.to_str().unwrap_or("");
        if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
            return None;
        }
        Some(LogWriter {
            path,
            conn: Arc::default(),
        })
    }

    /// Writes `events` in one transaction, on a blocking thread; hands the events back (for
    /// a retry, or to reuse the buffer) with the outcome.
    pub(crate) async fn write(
        &self,
        events: Vec<Event>,
        give_way: Option<GiveWay>,
    ) -> (Vec<Event>, Result<(), StoreError>) {
        let this = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            // A panic inside SQLite's binding must not take the events with it.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                this.write_now(&events, give_way.as_deref())
            }))
            .unwrap_or(Err(StoreError::Query(sqlx::Error::WorkerCrashed)));
            (events, outcome)
        })
        .await;
        // Only a runtime shutting down cancels the task; the caller counts what it sent.
        done.unwrap_or_else(|_| {
            (
                Vec::new(),
                Err(StoreError::Query(sqlx::Error::WorkerCrashed)),
            )
        })
    }

    fn write_now(
        &self,
        events: &[Event],
        give_way: Option<&(dyn Fn() -> bool + Send + Sync)>,
    ) -> Result<(), StoreError> {
        let mut state = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = match &mut *state {
            State::Closed => return Err(StoreError::Query(sqlx::Error::PoolClosed)),
            State::Open(conn) => insert(conn, events, give_way),
            State::Shut => self.open().and_then(|mut conn| {
                let outcome = insert(&mut conn, events, give_way);
                *state = State::Open(conn);
                outcome
            }),
        };
        if outcome.is_err() {
            // Rolled back (the transaction's drop); the connection is not trusted again.
            *state = State::Shut;
        }
        outcome
    }

    fn open(&self) -> Result<Connection, StoreError> {
        // The database exists (the pool made it and ran the migrations): never create one.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.execute_batch(SQLITE_PRAGMAS)?;
        conn.execute_batch(&format!("PRAGMA cache_size = -{CACHE_KIB};"))?;
        Ok(conn)
    }

    /// The value of the pragma `name` on the open connection (`None` before the first batch).
    #[cfg(test)]
    pub(crate) fn pragma(&self, name: &str) -> Option<i64> {
        match &*self.conn.lock().unwrap_or_else(|e| e.into_inner()) {
            State::Open(conn) => conn
                .query_row(&format!("PRAGMA {name}"), [], |row| row.get::<_, i64>(0))
                .ok(),
            _ => None,
        }
    }

    /// Whether the log's own connection is open (it has written a batch, and not failed since).
    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        matches!(
            *self.conn.lock().unwrap_or_else(|e| e.into_inner()),
            State::Open(_)
        )
    }

    /// Closes the connection (a store's `close`): the file is then the pool's alone.
    pub(crate) fn close(&self) {
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = State::Closed;
    }
}

/// Rows in one execution of the log's insert (`INSERT OR FAIL ... VALUES (..), (..), ...`).
///
/// Each execution of a statement opens a cursor on the table and on each index, finds the
/// table's last row and closes them all again when it halts: with one row an execution, that
/// was a fifth of a row's cost. A multi-row insert with SQLite's default conflict resolution
/// (`ABORT`) keeps a statement journal, so that a failing row can undo the rows before it:
/// every page the statement first touches is copied to it (`subjournalPageIfRequired`, ~1,000
/// instructions a row). `OR FAIL` keeps those rows instead, and a failed batch rolls back its
/// whole transaction anyway (`insert` returns the error and the transaction is dropped).
///
/// callgrind, `event_log/write/batch-512` (instructions a row, `LogWriter::write_now` and all
/// it calls, two runs each): one row an execution 14,831-14,887; 32 rows 13,079-13,091; 32
/// rows `OR FAIL` 11,587-11,687. The number of rows was chosen on an earlier form of this
/// code (counted from `insert` only, so not comparable with the above): 8 rows 12,594, 16
/// 12,025, 32 11,556-11,645, 64 11,901. A batch's last rows, fewer than this, go in one
/// execution per power of two they hold (`insert`).
pub(crate) const ROWS_PER_INSERT: usize = 32;

const _: () = assert!(GIVE_WAY_EVERY % ROWS_PER_INSERT == 0);

fn insert(
    conn: &mut Connection,
    events: &[Event],
    give_way: Option<&(dyn Fn() -> bool + Send + Sync)>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let whole = events.len() - events.len() % ROWS_PER_INSERT;
    insert_rows(&tx, &events[..whole], ROWS_PER_INSERT, give_way)?;
    // The last rows, fewer than ROWS_PER_INSERT: one execution of 16, 8, 4, 2 or 1 rows for
    // each power of two in their number (each statement prepared once and cached), not one
    // execution per row. A batch is that small whenever the gateway is not busy (200 ms of
    // a few hundred requests a second), and a row inserted alone cost ~14,400 instructions
    // against ~9,100 in a 32-row execution (callgrind, bench/proxy-instructions.sh).
    let mut rest = &events[whole..];
    let mut per = ROWS_PER_INSERT / 2;
    while !rest.is_empty() {
        if rest.len() >= per {
            let (these, others) = rest.split_at(per);
            insert_rows(&tx, these, per, give_way)?;
            rest = others;
        }
        per /= 2;
    }
    tx.commit()?;
    Ok(())
}

/// Inserts `rows` (a multiple of `per` of them), `per` rows an execution.
fn insert_rows(
    tx: &rusqlite::Transaction<'_>,
    rows: &[Event],
    per: usize,
    give_way: Option<&(dyn Fn() -> bool + Send + Sync)>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT OR FAIL INTO events ({INSERT_COLUMNS}) VALUES {}",
        vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; per].join(", ")
    ))?;
    // SQLite keeps a statement's bindings from one execution to the next, and most columns
    // repeat from row to row (service, group, method, action, rule, reason, categories, often
    // the client and host): only the values that changed since the row the same parameters
    // held before are bound. Each bound string is copied into SQLite (rusqlite binds text as
    // `SQLITE_TRANSIENT`): binding all 16 was ~2,800 of the ~17,000 instructions a row cost
    // (callgrind, `event_log/write/batch-512`). The statement's bindings are cleared when it
    // goes back to the cache, so a batch's first rows bind them all.
    let mut before: Option<&[Event]> = None;
    for (i, chunk) in rows.chunks_exact(per).enumerate() {
        if (i + 1) * per % GIVE_WAY_EVERY == 0 && give_way.is_some_and(|g| g()) {
            // Returns at once when no other thread waits for the core.
            std::thread::yield_now();
        }
        for (row, e) in chunk.iter().enumerate() {
            let mut changed = before.map_or(u16::MAX, |b| changed(&b[row], e));
            if changed == 0 {
                continue;
            }
            let values = values(e);
            while changed != 0 {
                let column = changed.trailing_zeros() as usize;
                changed &= changed - 1;
                stmt.raw_bind_parameter(
                    row * 16 + column + 1,
                    ToSqlOutput::Borrowed(values[column]),
                )?;
            }
        }
        stmt.raw_execute()?;
        before = Some(chunk);
    }
    Ok(())
}

/// The columns (bits, in [`INSERT_COLUMNS`]' order) whose values differ between `was` and `e`,
/// compared field by field: building both rows' [`values`] to compare them was ~1,400
/// instructions a row (callgrind, bench/proxy-instructions.sh).
fn changed(was: &Event, e: &Event) -> u16 {
    [
        was.at_ms != e.at_ms,
        was.reference != e.reference,
        was.service != e.service,
        was.client_ip != e.client_ip,
        was.username != e.username,
        was.group != e.group,
        was.method != e.method,
        was.url != e.url,
        was.host != e.host,
        was.search_term != e.search_term,
        was.categories != e.categories,
        was.action != e.action,
        was.rule != e.rule,
        was.reason != e.reason,
        was.status != e.status,
        was.bytes != e.bytes,
    ]
    .iter()
    .enumerate()
    .fold(0, |m, (column, &differs)| m | u16::from(differs) << column)
}

/// `e`'s values in [`INSERT_COLUMNS`]' order, as SQLite takes them.
fn values(e: &Event) -> [ValueRef<'_>; 16] {
    fn text(s: &str) -> ValueRef<'_> {
        ValueRef::Text(s.as_bytes())
    }
    fn text_or_null(s: Option<&str>) -> ValueRef<'_> {
        s.map_or(ValueRef::Null, text)
    }
    [
        ValueRef::Integer(e.at_ms),
        text(&e.reference),
        text(e.service),
        text(&e.client_ip),
        text_or_null(e.username.as_deref()),
        text(&e.group),
        text(&e.method),
        text(&e.url),
        text(&e.host),
        text_or_null(e.search_term.as_deref()),
        text(&e.categories),
        text(&e.action),
        text(&e.rule),
        text(&e.reason),
        e.status
            .map_or(ValueRef::Null, |s| ValueRef::Integer(i64::from(s))),
        ValueRef::Integer(i64::try_from(e.bytes).unwrap_or(i64::MAX)),
    ]
}
