//! Lookout's database: users (argon2id password hashes, console roles, two-factor secrets),
//! signed-in addresses, the activity log, monitoring (API tokens, alerts, deliveries owed,
//! digests), the console (sessions, sealed signing keys, alert reviews) and the hash-chained
//! audit log, in SQLite (the embedded default) or PostgreSQL through sqlx's `Any` driver.
//!
//! The SQL is portable (no dialect-only syntax in queries, times as integer milliseconds).
//! Schema changes are migrations, one folder per dialect (`migrations/sqlite`,
//! `migrations/postgres`), applied by [`Store::open`] and [`Store::connect`].
//!
//! Events reach the database through [`EventLog`]: a bounded queue and one writer task that
//! stores them in batches, so the request path never waits on the disk. Events that cannot be
//! queued or stored are counted, and the count is itself written to `log_gaps`.

mod alerts;
mod audit;
mod backup;
mod briefings;
mod checks;
mod concerns;
mod console;
mod events;
mod import;
mod incidents;
mod log_writer;
mod privacy;
mod registers;
mod report;
mod retention;
mod reviews;
mod runs;
mod sites;
pub mod testing;
mod training;
mod triage;
mod unscanned;
mod users;

use std::path::Path;

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Arguments, Encode, Type};

pub use alerts::{
    Alert, ApiToken, Delivery, NewFinding, Recorded, StoredFinding, Subject, TokenScope,
};
pub use audit::{
    audit_hash, AuditEntry, AuditFilter, AuditProblem, AuditRow, AuditVerification, GENESIS,
};
pub use briefings::{Acceptance, Briefing, NewBriefing};
pub use checks::{check_hash, cosign_message, Check, CosignError};
pub use concerns::{Concern, NewConcern};
pub use console::{Account, NewSession, PasswordCheck, Session, StoredKey, LOCK_AFTER, LOCK_MS};
pub use events::{
    ip_text, method_text, new_reference, Event, EventFilter, EventLog, EventLogStats, EventWriter,
    LogFailure, LogGap, Observer, StoredEvent, Text,
};
pub use import::users_from_csv;
pub use incidents::{Incident, IncidentEntry, IncidentError, NewEntry};
pub use lookout_auth::Role;
pub use privacy::Held;
pub use registers::{
    csv_cell, csv_line, AccountFields, AdminEvent, PolicyReview, SocialAccount, SocialAdmin,
    TechAssessment, TechFields,
};
pub use report::{BoardFigures, BriefingUptake, Durations, Report};
pub use retention::{Purged, Retention};
pub use reviews::{DecisionError, NewReviewRequest, ReviewRequest, ReviewedAllow};
pub use runs::UncleanStop;
pub use sites::{
    Gateway, GatewayCall, Outbox, OutboxText, SiteEvent, SiteFigures, SiteTaken, SiteUser,
    INSTANCE_SILENT_MS,
};
pub use training::{
    status as training_status, tally, Completion, Course, CourseFields, Reminder, Requirement,
    Standing, Tally, DUE_SOON_DAYS,
};
pub use triage::{AlertReview, Inbox, ReviewAction, ReviewError};
pub use unscanned::Unscanned;
pub use users::{
    check_email, check_password, check_team, normalize_username, DirectoryPerson, DirectoryRecord,
    NewUser, User, UserError,
};

/// A database failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open the database {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot update the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    /// The activity log's own SQLite connection failed.
    #[error("database error: {0}")]
    Log(#[from] rusqlite::Error),
    /// What was asked is done by the database server's own tools on this dialect.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// Which database server a [`Store`] runs on. The queries are the same for both (numbered
/// `$1` parameters, which SQLite reads too; run-time SQL through `Sql`); the schema is written
/// once per dialect (`migrations/sqlite`, `migrations/postgres`), and the two differ only where
/// the servers do: identity columns, BIGINT, trigger functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded default: one file, no server.
    Sqlite,
    /// A PostgreSQL server (`postgres://` URL): several gateways and consoles share it.
    Postgres,
}

/// The database.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) dialect: Dialect,
    /// The activity log's own connection, on a SQLite file (see `log_writer`).
    pub(crate) log_writer: Option<log_writer::LogWriter>,
    /// Counts briefings published through this `Store` (and its clones), so that a gateway in
    /// the same process asks for the new version at once rather than after its cache expires.
    pub(crate) briefings_published: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Set on every new SQLite connection, in this order (the busy timeout first, so that the
/// switch to WAL waits for a lock rather than failing).
///
/// FULL: every commit is on the disk before it is acknowledged, so a power cut, an OS crash or
/// a file system gone read-only after an error (which drops what was not yet synced: measured
/// with scripts/disk-full-test, NORMAL lost the whole first second of a new database) cannot
/// take back an acknowledged alert, incident entry or check. One fdatasync per transaction;
/// the activity log writes one transaction per batch, so its cost shrinks as load grows.
/// 64 MiB of page cache keeps the log's indexes in memory while it grows; the write-ahead log
/// is checkpointed every 32 MiB rather than every 4 MiB.
///
/// SQLite's 4 KiB pages are kept. 16 KiB pages took ~3% fewer instructions per row written in
/// the log's longest batches (callgrind, `event_log/write/batch-4096`: 16,191 -> 15,730), but
/// every commit writes each page it changed whole, and a third of the rows (those with a user
/// name) land all over `events_user_at`: criterion's `event_log/write/batch-512` fell from
/// 184-189k to 109-110k rows/s, `batch-64` from 133-136k to 84-86k.
pub(crate) const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536; \
     PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 8192;";

/// The key of the PostgreSQL advisory lock that [`Store::write_tx`] takes: one writer of
/// chained and numbered records at a time, as SQLite's `BEGIN IMMEDIATE` gives.
const PG_WRITE_LOCK: i64 = 0x004c_6f6f_6b6f_7574; // "Lookout" in ASCII

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let open_err = |why: String| StoreError::Open {
            path: shown.clone(),
            source: sqlx::Error::Configuration(why.into()),
        };
        // Absolute, so that the URL's first segment is not read as a host name; percent-encoded
        // as a file URL's path (sqlx decodes it).
        let absolute = std::path::absolute(path).map_err(|e| open_err(e.to_string()))?;
        let file = url::Url::from_file_path(&absolute)
            .map_err(|()| open_err("the path cannot be written as a URL".into()))?;
        Store::connect_url(&format!("sqlite://{}?mode=rwc", file.path()), &shown).await
    }

    /// Opens the database a `[store] url` names: `postgres://user@host/db` (PostgreSQL) or
    /// `sqlite://path` (SQLite), and applies migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_url(url, &shown_url(url)).await
    }

    async fn connect_url(url: &str, shown: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let open_err = |source| StoreError::Open {
            path: shown.to_owned(),
            source,
        };
        let dialect = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            return Err(open_err(sqlx::Error::Configuration(
                "the URL must start with postgres:// or sqlite://".into(),
            )));
        };
        let options: AnyConnectOptions = url.parse().map_err(open_err)?;
        let pool = AnyPoolOptions::new()
            .max_connections(match dialect {
                Dialect::Sqlite => 4,
                Dialect::Postgres => 8,
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        sqlx::Executor::execute(&mut *conn, SQLITE_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            // A connection whose COMMIT failed (disk full, I/O error) can come back with sqlx
            // still counting an open transaction (SQLite rolled it back, so sqlx's ROLLBACK
            // failed): its next "transaction" would be a savepoint and writes stay stuck until
            // a restart. Such a connection is closed instead of reused. The check reads a
            // counter: no round trip to the database.
            .before_acquire(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(options)
            .await
            .map_err(open_err)?;
        let log_writer = match dialect {
            Dialect::Sqlite => {
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                let file = url
                    .parse::<sqlx::sqlite::SqliteConnectOptions>()
                    .map_err(open_err)?
                    .get_filename()
                    .to_owned();
                log_writer::LogWriter::for_file(file)
            }
            Dialect::Postgres => {
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                None
            }
        };
        Ok(Store {
            pool,
            dialect,
            log_writer,
            briefings_published: std::sync::Arc::default(),
        })
    }

    /// Which server this store runs on.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// A transaction that writes chained or numbered records (the audit log, incident
    /// entries, register numbers): it holds the database's one write lock from its start, so
    /// two writers never read the same chain head. SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a
    /// transaction-scoped advisory lock, released at commit or rollback.
    pub(crate) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Any>, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => {
                let mut tx = self.pool.begin().await?;
                // pg_advisory_xact_lock returns void, which sqlx's Any rows cannot carry.
                sqlx::query("SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                    .bind(PG_WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    /// Closes every connection, after pending writes.
    pub async fn close(&self) {
        if let Some(w) = &self.log_writer {
            w.close().await;
        }
        self.pool.close().await;
    }
}

/// A database address as it may be shown (error messages, the start-up log): without its
/// password.
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            // Only fails for addresses that cannot have a password, which this one has.
            let _ = u.set_password(Some("***"));
            u.into()
        }
        _ => url.to_owned(),
    }
}

/// A query put together at run time, its parameters written as the dialect reads them fastest:
/// `?` on SQLite, `$1`, `$2`, ... on PostgreSQL (sqlx's `QueryBuilder` for `Any` writes `?`,
/// which PostgreSQL does not read). SQLite reads `$NNN` too, as a *named* parameter, and
/// looks each name up in a list: the activity log's 1,024-parameter insert ran at 24-31k
/// events/s with `$NNN` against 61-79k/s with `?` (`cargo bench -p lookout-store`).
pub(crate) struct Sql<'q> {
    text: String,
    args: AnyArguments<'q>,
    n: usize,
    dialect: Dialect,
    /// The first value that could not be bound: the query is not run without it.
    error: Option<sqlx::error::BoxDynError>,
}

impl<'q> Sql<'q> {
    pub(crate) fn new(dialect: Dialect, text: impl Into<String>) -> Sql<'q> {
        Sql {
            text: text.into(),
            args: AnyArguments::default(),
            n: 0,
            dialect,
            error: None,
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends the next parameter's placeholder and binds `value` to it.
    pub(crate) fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'q + Encode<'q, Any> + Type<Any>,
    {
        self.n += 1;
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.n.to_string());
            }
        }
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// The text and its arguments, for `sqlx::query_with`; an error if a value could not be
    /// bound (SQLite would otherwise read the missing parameter as NULL).
    pub(crate) fn into_parts(self) -> Result<(String, AnyArguments<'q>), sqlx::Error> {
        match self.error {
            Some(e) => Err(sqlx::Error::Encode(e)),
            None => Ok((self.text, self.args)),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
